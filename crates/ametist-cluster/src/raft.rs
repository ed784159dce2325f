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

/// Round-robin placement of `partitions` over `nodes` (sorted, deduplicated), starting at
/// `offset` so that consecutive collections do not all start on the same node.
pub fn place(partitions: usize, nodes: &[NodeId], offset: usize) -> Vec<Vec<NodeId>> {
    assert!(!nodes.is_empty(), "placement needs at least one live node");
    (0..partitions).map(|p| vec![nodes[(p + offset) % nodes.len()]]).collect()
}
