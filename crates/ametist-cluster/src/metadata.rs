//! Cluster metadata as the Raft state machine holds it, and the shared, read-only view of
//! it that the rest of the node consults (proxies, the partition service, the routes).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use ametist_core::payload_index::FieldType;
use ametist_core::text::TextIndexConfig;
use ametist_engine::collection::CollectionSpec;

pub type NodeId = u64;

/// How to reach a member: its node-to-node (gRPC) address and its REST address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub grpc: String,
    pub rest: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "grpc={} rest={}", self.grpc, self.rest)
    }
}

/// An index definition as the metadata keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum IndexDef {
    Field(FieldType),
    Text(TextIndexConfig),
}

/// What the cluster agrees on, besides its membership (which openraft keeps).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    pub collections: BTreeMap<String, CollectionPlacement>,
    /// Collections deleted through the cluster; a node that still has one removes it.
    #[serde(default)]
    pub deleted: BTreeSet<String>,
    /// Members being removed: the leader moves their copies away, and places nothing new
    /// on them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub draining: BTreeSet<NodeId>,
}

/// Where a collection's partitions live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionPlacement {
    pub spec: CollectionSpec,
    /// For each partition, the nodes holding a copy; the first one is its primary, which
    /// orders and ships its writes.
    pub replicas: Vec<Vec<NodeId>>,
    /// Payload and text indexes by payload key.
    #[serde(default)]
    pub indexes: BTreeMap<String, IndexDef>,
    /// For each partition, its primary term and the copies that are not in sync. Absent in
    /// metadata written before replication: every partition then has term 0 and all its
    /// copies (one each) in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardState>,
    /// Copies being made (at most one per partition): the new copy is in `replicas` and
    /// stale until its primary recovered it; then the transfer ends, and a move removes the
    /// copy it replaces in the same step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfers: Vec<Transfer>,
}

/// A copy of a partition being made on `to`, as Qdrant's shard transfers name it: `from` is
/// the copy it comes from (the data comes from the partition's primary, which is where
/// every recovery starts), and a move removes `from` once `to` is in sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub partition: usize,
    pub from: NodeId,
    pub to: NodeId,
    pub kind: TransferKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferKind {
    /// `from` loses its copy when `to` has one in sync (Qdrant's `move_shard`).
    Move,
    /// `from` keeps its copy: one more copy (Qdrant's `replicate_shard`).
    Replicate,
}

/// What the cluster agrees on about one partition's copies, beyond where they are.
///
/// The design follows Elasticsearch's primary terms and in-sync allocation ids: the
/// primary's `term` goes up by one at every promotion, every shipped record carries it,
/// and a copy refuses records of an older term, so a primary that was replaced can never
/// get a write acknowledged again. A copy is in sync unless it is in `stale`; a write is
/// acknowledged only once every in-sync copy has it durably, so any in-sync copy may be
/// promoted without losing an acknowledged write. Copies leave the in-sync set only by a
/// committed Raft entry (proposed by the primary when a copy fails to take a record, or by
/// the leader when it promotes a replica over a lost primary), and come back only after a
/// recovery from the primary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardState {
    pub term: u64,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub stale: BTreeSet<NodeId>,
    /// Stale copies that left the in-sync set during this term by a `MarkStale`: every
    /// record they hold came from this term's primary (or its image), so their log is a
    /// prefix of the primary's and the records they miss are enough to bring them back. A
    /// promotion empties it: the copies it makes stale need an image.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub tail_ok: BTreeSet<NodeId>,
}

impl CollectionPlacement {
    /// The cluster's view of partition `p`'s copies (the default for metadata written
    /// before replication).
    pub fn shard(&self, p: usize) -> ShardState {
        self.shards.get(p).cloned().unwrap_or_default()
    }

    pub fn primary(&self, p: usize) -> Option<NodeId> {
        self.replicas.get(p)?.first().copied()
    }

    /// The copies of partition `p` that are in sync, the primary first.
    pub fn in_sync(&self, p: usize) -> Vec<NodeId> {
        let shard = self.shard(p);
        self.replicas
            .get(p)
            .map(|r| r.iter().copied().filter(|n| !shard.stale.contains(n)).collect())
            .unwrap_or_default()
    }

    /// How many copies (and how many primaries) each node holds, over this placement.
    pub fn load(&self, into: &mut BTreeMap<NodeId, (usize, usize)>) {
        for copies in &self.replicas {
            for (i, n) in copies.iter().enumerate() {
                let e = into.entry(*n).or_default();
                e.0 += 1;
                if i == 0 {
                    e.1 += 1;
                }
            }
        }
    }

    pub(crate) fn shard_mut(&mut self, p: usize) -> &mut ShardState {
        if self.shards.len() < self.replicas.len() {
            self.shards.resize(self.replicas.len(), ShardState::default());
        }
        &mut self.shards[p]
    }
}

/// The node's view of the metadata: updated by the state machine, read by everyone else.
pub struct Metadata {
    view: RwLock<View>,
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct View {
    state: ClusterState,
    members: BTreeMap<NodeId, Member>,
}

impl Metadata {
    pub fn new() -> Self {
        Metadata { view: RwLock::new(View::default()), changed: watch::channel(0).0 }
    }

    /// The primary of `partition` of `collection` now; `None` when the cluster does not
    /// know the collection.
    pub fn owner(&self, collection: &str, partition: usize) -> Option<NodeId> {
        self.read().state.collections.get(collection)?.primary(partition)
    }

    pub fn member(&self, id: NodeId) -> Option<Member> {
        self.read().members.get(&id).cloned()
    }

    pub fn members(&self) -> BTreeMap<NodeId, Member> {
        self.read().members.clone()
    }

    pub fn state(&self) -> ClusterState {
        self.read().state.clone()
    }

    pub fn placement(&self, collection: &str) -> Option<CollectionPlacement> {
        self.read().state.collections.get(collection).cloned()
    }

    /// Wakes up when the metadata changed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub(crate) fn publish(&self, state: &ClusterState, members: BTreeMap<NodeId, Member>) {
        {
            let mut v = self.view.write().expect("the metadata lock is never held across a panic");
            v.state = state.clone();
            v.members = members;
        }
        self.changed.send_modify(|n| *n += 1);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().expect("the metadata lock is never held across a panic")
    }
}

impl Default for Metadata {
    fn default() -> Self {
        Self::new()
    }
}
