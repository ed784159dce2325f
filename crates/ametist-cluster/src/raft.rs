//! Raft types: who the members are and which metadata changes the log carries.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use ametist_engine::collection::CollectionSpec;

use crate::metadata::{ClusterState, CollectionPlacement};
pub use crate::metadata::{IndexDef, Member, NodeId};

openraft::declare_raft_types!(
    /// The cluster's Raft: metadata commands, applied to [`ClusterState`].
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;

/// A metadata change, as the log records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Creates a collection with the given placement (chosen by the leader when it
    /// proposed the command, so that every node applies the same one).
    CreateCollection {
        spec: CollectionSpec,
        replicas: Vec<Vec<NodeId>>,
    },
    DeleteCollection {
        name: String,
    },
    /// Defines (`Some`) or drops (`None`) a payload or text index of a collection, so that
    /// every node knows it: the nodes serving its partitions re-create it whenever they
    /// rebuild one, and every node can coordinate queries that need it.
    SetIndex {
        collection: String,
        key: String,
        index: Option<IndexDef>,
    },
    /// Makes `node`, an in-sync replica, the primary of a partition whose primary is at
    /// `term`, at `term + 1`; the old primary leaves the in-sync set (it may hold writes
    /// nobody acknowledged, and comes back only through a recovery). Proposed by the leader
    /// when a primary is lost. Refused when the term moved on meanwhile.
    Promote {
        collection: String,
        partition: usize,
        term: u64,
        node: NodeId,
    },
    /// Takes a replica out of the in-sync set: its primary (at `term`) could not ship it
    /// a record. Refused when the term moved on: a replaced primary cannot evict anyone.
    MarkStale {
        collection: String,
        partition: usize,
        term: u64,
        node: NodeId,
    },
    /// Puts a recovered replica back into the in-sync set; proposed by its primary (at
    /// `term`) once the copy holds everything the primary has.
    MarkInSync {
        collection: String,
        partition: usize,
        term: u64,
        node: NodeId,
    },
}

/// The outcome of applying a command: `None` when it was applied, else why not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    pub refused: Option<Refusal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Refusal {
    Exists(String),
    NotFound(String),
    /// A change to a partition's copies that no longer applies (the term moved on, or the
    /// node is not where the change assumed); says why.
    Outdated(String),
}

impl Command {
    /// Applies the command. Deterministic: every node reaches the same state.
    pub fn apply(&self, state: &mut ClusterState) -> CommandResult {
        let refused = match self {
            Command::CreateCollection { spec, replicas } => {
                if state.collections.contains_key(&spec.name) {
                    Some(Refusal::Exists(spec.name.clone()))
                } else {
                    state.deleted.remove(&spec.name);
                    state.collections.insert(
                        spec.name.clone(),
                        CollectionPlacement {
                            spec: spec.clone(),
                            replicas: replicas.clone(),
                            indexes: Default::default(),
                            shards: Default::default(),
                        },
                    );
                    None
                }
            }
            Command::DeleteCollection { name } => {
                if state.collections.remove(name).is_some() {
                    state.deleted.insert(name.clone());
                    None
                } else {
                    Some(Refusal::NotFound(name.clone()))
                }
            }
            Command::Promote { collection, partition, term, node } => {
                copies(state, collection, *partition, *term, *node, |placement, p, node| {
                    if placement.replicas[p].first() == Some(&node) {
                        return Some(format!("node {node} is the primary already"));
                    }
                    if placement.shard(p).stale.contains(&node) {
                        return Some(format!("node {node} is not in sync"));
                    }
                    let copies = &mut placement.replicas[p];
                    let old = copies[0];
                    copies.retain(|&n| n != node);
                    copies.insert(0, node);
                    let shard = placement.shard_mut(p);
                    shard.term += 1;
                    shard.stale.insert(old);
                    None
                })
            }
            Command::MarkStale { collection, partition, term, node } => {
                copies(state, collection, *partition, *term, *node, |placement, p, node| {
                    if placement.replicas[p].first() == Some(&node) {
                        return Some(format!("node {node} is the primary"));
                    }
                    placement.shard_mut(p).stale.insert(node);
                    None
                })
            }
            Command::MarkInSync { collection, partition, term, node } => {
                copies(state, collection, *partition, *term, *node, |placement, p, node| {
                    placement.shard_mut(p).stale.remove(&node);
                    None
                })
            }
            Command::SetIndex { collection, key, index } => match state.collections.get_mut(collection) {
                None => Some(Refusal::NotFound(collection.clone())),
                Some(placement) => {
                    match index {
                        Some(def) => drop(placement.indexes.insert(key.clone(), def.clone())),
                        None => drop(placement.indexes.remove(key)),
                    }
                    None
                }
            },
        };
        CommandResult { refused }
    }
}

/// Applies a change to the copies of `partition` of `collection` whose primary is at
/// `term` and which `node` holds; `change` answers why it does not apply, if it does not.
fn copies(
    state: &mut ClusterState,
    collection: &str,
    partition: usize,
    term: u64,
    node: NodeId,
    change: impl FnOnce(&mut CollectionPlacement, usize, NodeId) -> Option<String>,
) -> Option<Refusal> {
    let Some(placement) = state.collections.get_mut(collection) else {
        return Some(Refusal::NotFound(collection.to_string()));
    };
    if partition >= placement.replicas.len() {
        return Some(Refusal::Outdated(format!("`{collection}` has no partition {partition}")));
    }
    let now = placement.shard(partition).term;
    if now != term {
        return Some(Refusal::Outdated(format!("partition {partition} is at term {now}, not {term}")));
    }
    if !placement.replicas[partition].contains(&node) {
        return Some(Refusal::Outdated(format!("node {node} holds no copy of partition {partition}")));
    }
    change(placement, partition, node).map(Refusal::Outdated)
}

/// Round-robin placement of `partitions` with `copies` copies each over `nodes` (sorted,
/// deduplicated), starting at `offset` so that consecutive collections do not all start on
/// the same node. The copies of a partition are on distinct nodes, and primaries are spread
/// as evenly as the partitions.
pub fn place(partitions: usize, copies: usize, nodes: &[NodeId], offset: usize) -> Vec<Vec<NodeId>> {
    assert!(!nodes.is_empty(), "placement needs at least one live node");
    assert!(copies <= nodes.len(), "the caller checked copies against the members");
    (0..partitions).map(|p| (0..copies).map(|k| nodes[(p + offset + k) % nodes.len()]).collect()).collect()
}
