//! The seam through which partitions that live elsewhere enter a collection.
//!
//! A clustered node holds some of a collection's partitions and reaches the others over
//! the network. The engine does not know about networks: when a collection starts, it asks
//! its [`PartitionProvider`] (if the database has one) whether it keeps a copy of each
//! partition, and which handle the coordinator should use for it. A replicated partition
//! gets a front (see [`PartitionRef::external`]) that routes writes to its primary and
//! reads to an in-sync copy; the coordinator treats every handle alike. The local copies
//! stay reachable through [`LocalCopies`] (for the fronts and the node-to-node service),
//! and may come and go while the collection runs
//! ([`crate::collection::Collection::add_copy`], `remove_copy`): a front looks its local
//! copy up at every message rather than keep one. `ametist-cluster` implements the trait;
//! the engine never depends on it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::partition::PartitionRef;
use crate::spec::CollectionSpec;

/// This process's copy of each partition of a collection that it holds, by partition id:
/// the collection starts and stops them, fronts and the node-to-node service send them
/// messages. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct LocalCopies(Arc<RwLock<BTreeMap<usize, PartitionRef>>>);

impl LocalCopies {
    /// The local copy of partition `id`, when this process holds one now.
    pub fn get(&self, id: usize) -> Option<PartitionRef> {
        self.0.read().expect("the local copies lock is never held across a panic").get(&id).cloned()
    }

    pub(crate) fn insert(&self, id: usize, copy: PartitionRef) {
        self.0.write().expect("the local copies lock is never held across a panic").insert(id, copy);
    }

    pub(crate) fn remove(&self, id: usize) -> Option<PartitionRef> {
        self.0.write().expect("the local copies lock is never held across a panic").remove(&id)
    }

    pub(crate) fn retain(&self, keep: impl FnMut(&usize, &mut PartitionRef) -> bool) {
        self.0.write().expect("the local copies lock is never held across a panic").retain(keep)
    }

    /// The ids of the partitions held here.
    pub fn ids(&self) -> Vec<usize> {
        self.0.read().expect("the local copies lock is never held across a panic").keys().copied().collect()
    }
}

/// Decides which partitions of a collection this process keeps a copy of, and puts a
/// front before any partition whose copies live (also) elsewhere.
pub trait PartitionProvider: Send + Sync + 'static {
    /// Whether this process keeps a copy of partition `partition` of `spec`: an actor and
    /// files here. Without one the engine starts no actor and opens no files for it.
    fn holds(&self, spec: &CollectionSpec, partition: usize) -> bool;

    /// The handle the coordinator sends the partition's messages to. `locals` holds this
    /// process's copy when it holds one (now or later: copies may be added and removed
    /// while the collection runs). `None`: the local copy itself, for good (a collection
    /// the provider does not manage).
    fn front(
        &self,
        spec: &CollectionSpec,
        partition: usize,
        mailbox: usize,
        locals: &LocalCopies,
    ) -> Option<PartitionRef>;
}
