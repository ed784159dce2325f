//! Ametist's durable storage: the write-ahead log, snapshots and recovery.
//!
//! Synchronous and runtime-free: the partition actors call it from their own threads.
