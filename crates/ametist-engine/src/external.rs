//! The seam through which partitions that live elsewhere enter a collection.
//!
//! A clustered node holds some of a collection's partitions and reaches the others over
//! the network. The engine does not know about networks: when a collection starts, it asks
//! its [`PartitionProvider`] (if the database has one) whether it keeps a copy of each
//! partition, and which handle the coordinator should use for it. A replicated partition
//! gets a front (see [`PartitionRef::external`]) that routes writes to its primary and
//! reads to an in-sync copy; the coordinator treats every handle alike. The local copy
//! stays reachable ([`crate::collection::Collection::local_copy`]) for the node-to-node
//! service. `ametist-cluster` implements the trait; the engine never depends on it.

use crate::partition::PartitionRef;
use crate::spec::CollectionSpec;

/// Decides which partitions of a collection this process keeps a copy of, and puts a
/// front before any partition whose copies live (also) elsewhere.
pub trait PartitionProvider: Send + Sync + 'static {
    /// Whether this process keeps a copy of partition `partition` of `spec`: an actor and
    /// files here. Without one the engine starts no actor and opens no files for it.
    fn holds(&self, spec: &CollectionSpec, partition: usize) -> bool;

    /// The handle the coordinator sends the partition's messages to. `local` is this
    /// process's copy when it holds one. `None`: the local copy itself (a partition with no
    /// copy elsewhere, or a collection the provider does not manage).
    fn front(
        &self,
        spec: &CollectionSpec,
        partition: usize,
        mailbox: usize,
        local: Option<&PartitionRef>,
    ) -> Option<PartitionRef>;
}
