//! Ametist's durable storage: the write-ahead log, snapshots and recovery.
//!
//! Synchronous and runtime-free: the partition actors call it from their own threads. The
//! engine keeps one [`Wal`] and one [`SnapshotStore`] per partition (for example
//! `<partition>/wal/` and `<partition>/snapshots/`); records and snapshot contents are opaque
//! bytes here. The byte formats and the recovery algorithm are in `docs/storage.md`.
//!
//! # Example: a partition's life
//!
//! ```
//! use std::io::Write;
//! use ametist_storage::{SnapshotStore, Wal, WalOptions};
//! # let root = std::env::temp_dir().join(format!("ametist-storage-doc-{}", std::process::id()));
//! let partition = root.join("p0");
//!
//! // Start-up: newest valid snapshot, then the WAL records after it.
//! let snapshots = SnapshotStore::open(&partition.join("snapshots"))?;
//! let load = snapshots.load_latest()?;
//! let after = load.snapshot.as_ref().map_or(0, |s| s.info.lsn);
//! let (mut wal, recovered) = Wal::open(&partition.join("wal"), after, WalOptions::default())?;
//! for (_lsn, _record) in &recovered.records { /* apply to the in-memory state */ }
//!
//! // Group commit: append a batch, sync once, then acknowledge every write in it.
//! let first = wal.append(b"upsert point 1")?;
//! let second = wal.append(b"upsert point 2")?;
//! wal.sync()?;
//! assert_eq!((first, second), (1, 2));
//!
//! // Snapshot, and only once it is durable, drop the WAL it covers.
//! let info = snapshots.write(wal.last_lsn(), 2, &mut |w: &mut dyn Write| w.write_all(b"state"))?;
//! wal.truncate_through(info.lsn)?;
//! # drop(wal);
//! # std::fs::remove_dir_all(&root).ok();
//! # Ok::<(), ametist_storage::StorageError>(())
//! ```
//!
//! # Durability contract
//!
//! Each call either fails, or has done exactly what is listed here by the time it returns:
//!
//! | call | when it returns `Ok` |
//! |---|---|
//! | [`Wal::open`] | The log ends at its last valid record, and that is durable (a torn tail was truncated and fsynced, a segment with a torn header removed and the directory fsynced). An active segment exists, durable with its directory entry. [`Recovered::records`] holds every record above `after_lsn`. |
//! | [`Wal::append`] | The record has an LSN and sits in memory. **Nothing is durable yet.** |
//! | [`Wal::sync`] | Every record appended so far is written and `fdatasync`ed: it survives a crash, byte for byte. Acknowledge writes only now. |
//! | [`Wal::truncate_through`] | Segments whose records are all `<= lsn` are removed, and the removal is fsynced in the directory. |
//! | [`SnapshotStore::write`] | The snapshot is written, fsynced, renamed to its final name, and the directory fsynced: it survives a crash, and the WAL may now be truncated through its LSN. |
//! | [`SnapshotStore::load_latest`] | Returns the newest snapshot whose checksums verify; corrupt newer ones are reported and quarantined. |
//! | [`replace::replace`] | The file holds exactly the new content and its name is durable. A crash at any earlier point leaves the old content or the new, whole (used for `collection.json`, the Raft state, the node id and snapshot files). |
//!
//! Group commit is the caller's: append a batch of records from many writers, call `sync`
//! once, then acknowledge all of them.
//!
//! # Failures
//!
//! A failed write or fsync **poisons** the [`Wal`]: every later fallible call returns
//! [`StorageError::Poisoned`]. After a failed `fsync` the kernel may have dropped the dirty
//! pages and a second `fsync` on the same descriptor can report success (PostgreSQL's
//! "fsyncgate"), so the only safe way on is to drop the handle and [`Wal::open`] again, which
//! reads what is really on disk. Records appended since the last successful `sync` may or may
//! not be there; none of them was acknowledged.
//!
//! Errors are one enum, [`StorageError`]; [`StorageError::class`] says what to do:
//! [`ErrorClass::Corrupt`] (operator attention), [`ErrorClass::Io`] (retry; for a WAL, by
//! reopening), [`ErrorClass::Fatal`] (this handle is done), [`ErrorClass::InvalidInput`].
//!
//! # Crash recovery, in short
//!
//! A crash can leave the last WAL segment with a torn tail: a partial record, zeros, or
//! garbage. Records carry a crc32c over their length, LSN and payload, and must carry the
//! expected next LSN, so such bytes are never taken for a record; recovery cuts the segment at
//! the last valid record. Damage anywhere else (a segment that was followed by a newer one was
//! fsynced in full before that one was created) is an error.
//!
//! # Testing seam
//!
//! All file operations go through the [`Fs`] trait: [`StdFs`] is the real one, [`MemFs`] an
//! in-memory one that tracks what is durable, can simulate a crash ([`MemFs::crash`]) and
//! inject I/O errors ([`MemFs::inject`]). Use [`Wal::open_with`] and
//! [`SnapshotStore::open_with`] to run on it.

mod error;
mod format;
mod fs;
mod memfs;
pub mod replace;
mod snapshot;
mod wal;

/// Log sequence number: strictly increasing, starts at 1, never reused (it survives restarts
/// and WAL truncation). 0 means "nothing".
pub type Lsn = u64;

pub use error::{is_storage_full, ErrorClass, Result, StorageError};
pub use format::{MAX_RECORD_BYTES, RECORD_HEADER_LEN, WAL_HEADER_LEN};
pub use fs::{probe_write, FileStat, Fs, FsFile, StdFs, PROBE_FILE};
pub use memfs::{CrashMode, Fault, FsOp, MemFs};
pub use snapshot::{snapshot_file_name, LoadedSnapshot, SkippedSnapshot, SnapshotInfo, SnapshotLoad, SnapshotStore};
pub use wal::{segment_file_name, Recovered, TornTail, Wal, WalOptions};

#[cfg(test)]
mod tests {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_can_move_to_actor_threads() {
        send::<crate::Wal>();
        send_sync::<crate::SnapshotStore>();
        send_sync::<crate::MemFs>();
        send_sync::<crate::StorageError>();
    }
}
