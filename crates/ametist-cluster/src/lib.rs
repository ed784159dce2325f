//! Ametist's cluster: partitions on several nodes, cluster metadata in Raft.
//!
//! Map of the crate, from the outside in:
//!
//! * [`node`]: [`node::ClusterNode`], a running cluster member: starts the gRPC server
//!   and Raft, joins through a seed, creates and deletes collections through Raft, keeps
//!   the local database in line with the metadata, and reports status for `GET /cluster`.
//! * `raft_node`: the state a member's tasks share (`NodeInner`): joining, proposing
//!   metadata commands (forwarded to the leader), live voters. Both the node and the
//!   service use it, so neither imports the other's internals.
//! * [`options`]: a member's settings.
//! * [`router`]: the front of a partition with copies on other nodes, behind an ordinary
//!   `PartitionRef` (writes to the primary, reads to an in-sync copy), and
//!   [`router::RemotePartitions`], the engine's `PartitionProvider`.
//! * `replicator`: a partition's writer: on the primary it logs writes and ships the
//!   records to the in-sync replicas (the WAL is the replication log), and recovers stale
//!   replicas from an image.
//! * `rebalance`: where copies should move after a join, during a drain, or when a member
//!   stayed dead too long; the leader proposes its plan a few transfers at a time.
//! * `failover`: the leader's failure detector (promotes an in-sync replica over a lost
//!   primary) and each node's requests to recover its stale copies.
//! * [`service`]: the serving side: partition calls to local partitions, Raft RPCs, joins,
//!   proposals forwarded to the leader; all behind the cluster-secret check.
//! * [`transport`]: the client side: per-peer channels, the secret, deadlines.
//! * [`wire`]: the protobuf envelope and the serde bodies it carries.
//! * [`raft`], [`raft_store`], [`raft_network`]: openraft's types, durable storage (one
//!   fsynced file) and network (over the same gRPC service).
//! * [`metadata`]: what the cluster agrees on (collections, placement) and the node's
//!   shared view of it.
//! * [`error`]: this layer's error enum.
//!
//! The engine does not depend on this crate: remote partitions enter a collection through
//! the engine's `external::PartitionProvider` seam as ordinary partition handles.

pub mod error;
mod failover;
pub mod metadata;
pub mod node;
pub mod options;
pub mod raft;
pub mod raft_network;
mod raft_node;
pub mod raft_store;
mod rebalance;
mod replicator;
pub mod router;
pub mod service;
pub mod transport;
pub mod wire;

pub use error::ClusterError;
pub use node::{ClusterNode, CopyChange, PreparedNode};
pub use options::ClusterOptions;
pub use raft::IndexDef;
