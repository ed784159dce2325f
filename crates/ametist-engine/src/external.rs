//! The seam through which partitions that live elsewhere enter a collection.
//!
//! A clustered node holds some of a collection's partitions and reaches the others over
//! the network. The engine does not know about networks: when a collection starts, it asks
//! its [`PartitionProvider`] (if the database has one) whether each partition is served
//! from outside; those arrive as ordinary [`PartitionRef`]s (see
//! [`PartitionRef::external`]), so the coordinator treats local and remote partitions
//! alike. `ametist-cluster` implements the trait; the engine never depends on it.

use crate::partition::PartitionRef;
use crate::spec::CollectionSpec;

/// Supplies the partitions of a collection that this process does not run itself.
pub trait PartitionProvider: Send + Sync + 'static {
    /// `Some(handle)` when partition `partition` of `spec` is served from outside (the
    /// engine then starts no actor and opens no files for it); `None` to run it locally.
    fn external(&self, spec: &CollectionSpec, partition: usize, mailbox: usize) -> Option<PartitionRef>;
}
