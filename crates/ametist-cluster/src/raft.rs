//! Raft types: who the members are and which metadata changes the log carries.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use ametist_engine::collection::CollectionSpec;

use crate::metadata::{ClusterState, CollectionPlacement, Transfer, TransferKind};
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
    /// `term`, at `term + 1`; every other copy leaves the in-sync set (the old primary may
    /// hold writes nobody acknowledged, another replica records the new primary lacks) and
    /// comes back only through a recovery. Proposed by the leader when a primary is lost.
    /// Refused when the term moved on meanwhile.
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
    /// `term`) once the copy holds everything the primary has. A transfer to that copy
    /// ends with it: a move removes the copy it replaces in the same step (see
    /// [`Command::DropCopy`] for what removing a primary does).
    MarkInSync {
        collection: String,
        partition: usize,
        term: u64,
        node: NodeId,
    },
    /// Starts a transfer: `transfer.to` gets a new, stale copy, which the partition's
    /// primary then recovers (from its image). Refused when `from` holds no copy, `to`
    /// holds one already, or the partition has a transfer in progress.
    StartTransfer {
        collection: String,
        transfer: Transfer,
    },
    /// Ends the partition's transfer to `to` without finishing it: the new copy is removed
    /// (unless a failover made it the primary meanwhile; then only the record goes).
    AbortTransfer {
        collection: String,
        partition: usize,
        to: NodeId,
    },
    /// Removes `node`'s copy of a partition. A primary is replaced first by an in-sync
    /// replica at the next term, and every other copy then leaves the in-sync set, as in
    /// a promotion. Refused for the last in-sync copy.
    DropCopy {
        collection: String,
        partition: usize,
        node: NodeId,
    },
    /// Marks a member as being removed (`true`): its copies move to the others. `false`
    /// when it left (or the removal was called off).
    SetDraining {
        node: NodeId,
        draining: bool,
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
                            transfers: Default::default(),
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
                    promote(placement, p, node);
                    None
                })
            }
            Command::MarkStale { collection, partition, term, node } => {
                copies(state, collection, *partition, *term, *node, |placement, p, node| {
                    if placement.replicas[p].first() == Some(&node) {
                        return Some(format!("node {node} is the primary"));
                    }
                    let shard = placement.shard_mut(p);
                    shard.tail_ok.insert(node);
                    shard.stale.insert(node);
                    None
                })
            }
            Command::MarkInSync { collection, partition, term, node } => {
                copies(state, collection, *partition, *term, *node, |placement, p, node| {
                    let shard = placement.shard_mut(p);
                    shard.stale.remove(&node);
                    shard.tail_ok.remove(&node);
                    if let Some(i) = placement.transfers.iter().position(|t| t.partition == p && t.to == node) {
                        let done = placement.transfers.remove(i);
                        if done.kind == TransferKind::Move && done.from != node {
                            // The new copy takes over from the one it replaces, as the
                            // primary too when that one was.
                            let _ = drop_copy(placement, p, done.from, Some(node));
                        }
                    }
                    None
                })
            }
            Command::StartTransfer { collection, transfer } => {
                placed(state, collection, transfer.partition, |placement, p| {
                    let holders = &placement.replicas[p];
                    if !holders.contains(&transfer.from) {
                        return Some(format!("node {} holds no copy of partition {p}", transfer.from));
                    }
                    if holders.contains(&transfer.to) {
                        return Some(format!("node {} holds a copy of partition {p} already", transfer.to));
                    }
                    if placement.transfers.iter().any(|t| t.partition == p) {
                        return Some(format!("partition {p} has a transfer in progress"));
                    }
                    placement.replicas[p].push(transfer.to);
                    placement.shard_mut(p).stale.insert(transfer.to);
                    placement.transfers.push(transfer.clone());
                    None
                })
            }
            Command::AbortTransfer { collection, partition, to } => {
                placed(state, collection, *partition, |placement, p| {
                    let Some(i) = placement.transfers.iter().position(|t| t.partition == p && t.to == *to) else {
                        return Some(format!("partition {p} has no transfer to node {to}"));
                    };
                    placement.transfers.remove(i);
                    if placement.primary(p) != Some(*to) {
                        let _ = drop_copy(placement, p, *to, None);
                    }
                    None
                })
            }
            Command::DropCopy { collection, partition, node } => {
                placed(state, collection, *partition, |placement, p| {
                    placement.transfers.retain(|t| !(t.partition == p && t.to == *node));
                    drop_copy(placement, p, *node, None)
                })
            }
            Command::SetDraining { node, draining } => {
                if *draining {
                    state.draining.insert(*node);
                } else {
                    state.draining.remove(node);
                }
                None
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

/// Makes `node` (a copy of partition `p`) the primary at the next term; every other copy
/// leaves the in-sync set, the old primary included: a replica may hold a record of the
/// old primary that the new one never got (it was not acknowledged), at an LSN the new
/// primary will use for another record. Each comes back through a recovery from the new
/// primary's image, so no two copies ever differ at one LSN.
fn promote(placement: &mut CollectionPlacement, p: usize, node: NodeId) {
    let copies = &mut placement.replicas[p];
    copies.retain(|&n| n != node);
    copies.insert(0, node);
    let others: Vec<NodeId> = copies[1..].to_vec();
    let shard = placement.shard_mut(p);
    shard.term += 1;
    shard.stale.remove(&node);
    shard.stale.extend(others);
    shard.tail_ok.clear();
}

/// Removes `node`'s copy of partition `p`; a primary is first replaced by `successor` (or
/// the first other in-sync copy). Says why not when it cannot be removed.
fn drop_copy(placement: &mut CollectionPlacement, p: usize, node: NodeId, successor: Option<NodeId>) -> Option<String> {
    if !placement.replicas[p].contains(&node) {
        return Some(format!("node {node} holds no copy of partition {p}"));
    }
    if placement.primary(p) == Some(node) {
        let in_sync = placement.in_sync(p);
        let Some(next) = successor.filter(|s| in_sync.contains(s)).or_else(|| in_sync.into_iter().find(|&n| n != node))
        else {
            return Some(format!("node {node} holds the only in-sync copy of partition {p}"));
        };
        promote(placement, p, next);
    }
    placement.replicas[p].retain(|&n| n != node);
    let shard = placement.shard_mut(p);
    shard.stale.remove(&node);
    shard.tail_ok.remove(&node);
    None
}

/// Applies a change to partition `partition` of `collection`; `change` answers why it
/// does not apply, if it does not.
fn placed(
    state: &mut ClusterState,
    collection: &str,
    partition: usize,
    change: impl FnOnce(&mut CollectionPlacement, usize) -> Option<String>,
) -> Option<Refusal> {
    let Some(placement) = state.collections.get_mut(collection) else {
        return Some(Refusal::NotFound(collection.to_string()));
    };
    if partition >= placement.replicas.len() {
        return Some(Refusal::Outdated(format!("`{collection}` has no partition {partition}")));
    }
    change(placement, partition).map(Refusal::Outdated)
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

#[cfg(test)]
mod tests {
    use super::*;
    use ametist_core::Metric;
    use ametist_engine::config::IndexConfig;

    fn state_with(copies: Vec<NodeId>) -> ClusterState {
        let spec = CollectionSpec {
            name: "c".into(),
            dim: 4,
            metric: Metric::Cosine,
            partitions: 1,
            index: IndexConfig::default(),
            vectors: Default::default(),
            sparse_vectors: Default::default(),
            replication: Default::default(),
        };
        let mut state = ClusterState::default();
        assert_eq!(Command::CreateCollection { spec, replicas: vec![copies] }.apply(&mut state).refused, None);
        state
    }

    fn cmd(kind: &str, term: u64, node: NodeId) -> Command {
        let (collection, partition) = ("c".to_string(), 0);
        match kind {
            "promote" => Command::Promote { collection, partition, term, node },
            "stale" => Command::MarkStale { collection, partition, term, node },
            _ => Command::MarkInSync { collection, partition, term, node },
        }
    }

    #[test]
    fn placement_puts_copies_on_distinct_nodes_and_spreads_primaries() {
        let nodes = [1, 2, 3];
        let placed = place(6, 2, &nodes, 1);
        for copies in &placed {
            assert_eq!(copies.len(), 2);
            assert_ne!(copies[0], copies[1]);
        }
        for n in nodes {
            assert_eq!(placed.iter().filter(|c| c[0] == n).count(), 2, "primaries spread evenly: {placed:?}");
        }
    }

    /// A replaced primary cannot evict anyone: its changes name an old term.
    #[test]
    fn changes_of_an_older_term_are_refused() {
        let mut state = state_with(vec![1, 2, 3]);
        assert_eq!(cmd("promote", 0, 2).apply(&mut state).refused, None);
        let p = &state.collections["c"];
        assert_eq!((p.primary(0), p.shard(0).term), (Some(2), 1));
        assert_eq!(p.in_sync(0), vec![2], "every other copy must recover from the new primary");
        assert!(p.shard(0).tail_ok.is_empty(), "and from an image: their logs may differ from the new primary's");
        for (kind, node) in [("stale", 3), ("insync", 3), ("promote", 3)] {
            let refused = cmd(kind, 0, node).apply(&mut state).refused;
            assert!(matches!(refused, Some(Refusal::Outdated(_))), "{kind}: {refused:?}");
        }
        assert_eq!(cmd("insync", 1, 3).apply(&mut state).refused, None);
        assert_eq!(state.collections["c"].in_sync(0), vec![2, 3]);
    }

    /// Only an in-sync copy is promoted; the primary is never marked stale.
    #[test]
    fn a_stale_copy_is_never_promoted() {
        let mut state = state_with(vec![1, 2]);
        assert_eq!(cmd("stale", 0, 2).apply(&mut state).refused, None);
        assert!(
            state.collections["c"].shard(0).tail_ok.contains(&2),
            "a copy that missed records of this term may take them"
        );
        assert!(matches!(cmd("promote", 0, 2).apply(&mut state).refused, Some(Refusal::Outdated(_))));
        assert!(matches!(cmd("stale", 0, 1).apply(&mut state).refused, Some(Refusal::Outdated(_))));
        assert!(matches!(cmd("promote", 0, 9).apply(&mut state).refused, Some(Refusal::Outdated(_))));
        assert_eq!(state.collections["c"].in_sync(0), vec![1]);
    }

    fn transfer(from: NodeId, to: NodeId, kind: TransferKind) -> Command {
        Command::StartTransfer { collection: "c".into(), transfer: Transfer { partition: 0, from, to, kind } }
    }

    /// A move adds a stale copy, and once it is in sync removes the copy it replaces in the
    /// same step; a replica moves without a new term.
    #[test]
    fn a_move_replaces_the_copy_once_the_new_one_is_in_sync() {
        let mut state = state_with(vec![1, 2]);
        assert_eq!(transfer(2, 3, TransferKind::Move).apply(&mut state).refused, None);
        let p = &state.collections["c"];
        assert_eq!((p.replicas[0].clone(), p.in_sync(0)), (vec![1, 2, 3], vec![1, 2]), "the new copy starts stale");
        assert_eq!(p.transfers.len(), 1);
        for refused in [transfer(1, 3, TransferKind::Replicate), transfer(1, 4, TransferKind::Replicate)] {
            assert!(matches!(refused.apply(&mut state).refused, Some(Refusal::Outdated(_))), "one transfer at a time");
        }
        assert_eq!(cmd("insync", 0, 3).apply(&mut state).refused, None);
        let p = &state.collections["c"];
        assert_eq!((p.replicas[0].clone(), p.in_sync(0), p.shard(0).term), (vec![1, 3], vec![1, 3], 0));
        assert!(p.transfers.is_empty());
    }

    /// Moving the primary promotes the new copy at the next term; the other copies then
    /// need a recovery, as after any promotion.
    #[test]
    fn moving_the_primary_promotes_the_new_copy() {
        let mut state = state_with(vec![1, 2]);
        assert_eq!(transfer(1, 3, TransferKind::Move).apply(&mut state).refused, None);
        assert_eq!(cmd("insync", 0, 3).apply(&mut state).refused, None);
        let p = &state.collections["c"];
        assert_eq!((p.replicas[0].clone(), p.shard(0).term, p.in_sync(0)), (vec![3, 2], 1, vec![3]));
    }

    /// A replication keeps the source; an abort removes the new copy; the last in-sync copy
    /// cannot be dropped, and dropping a primary promotes an in-sync replica.
    #[test]
    fn replicate_abort_and_drop() {
        let mut state = state_with(vec![1]);
        assert!(matches!(transfer(2, 3, TransferKind::Move).apply(&mut state).refused, Some(Refusal::Outdated(_))));
        assert!(matches!(transfer(1, 1, TransferKind::Move).apply(&mut state).refused, Some(Refusal::Outdated(_))));
        assert_eq!(transfer(1, 2, TransferKind::Replicate).apply(&mut state).refused, None);
        let abort = Command::AbortTransfer { collection: "c".into(), partition: 0, to: 2 };
        assert_eq!(abort.clone().apply(&mut state).refused, None);
        assert_eq!(state.collections["c"].replicas[0], vec![1]);
        assert!(matches!(abort.apply(&mut state).refused, Some(Refusal::Outdated(_))), "nothing left to abort");
        let drop = |node| Command::DropCopy { collection: "c".into(), partition: 0, node };
        assert!(matches!(drop(1).apply(&mut state).refused, Some(Refusal::Outdated(_))), "the only copy stays");
        assert_eq!(transfer(1, 2, TransferKind::Replicate).apply(&mut state).refused, None);
        assert!(matches!(drop(1).apply(&mut state).refused, Some(Refusal::Outdated(_))), "its replica is not in sync");
        assert_eq!(cmd("insync", 0, 2).apply(&mut state).refused, None);
        assert_eq!(state.collections["c"].replicas[0], vec![1, 2], "a replication keeps the source");
        assert_eq!(drop(1).apply(&mut state).refused, None);
        let p = &state.collections["c"];
        assert_eq!((p.replicas[0].clone(), p.shard(0).term, p.in_sync(0)), (vec![2], 1, vec![2]));
    }

    /// Metadata written before replication reads as term 0 with every copy in sync.
    #[test]
    fn placements_written_before_replication_read_as_in_sync() {
        let state = state_with(vec![7]);
        let mut json = serde_json::to_value(&state).expect("serialises");
        json["collections"]["c"].as_object_mut().expect("an object").remove("shards");
        let old: ClusterState = serde_json::from_value(json).expect("the older shape reads");
        assert_eq!(old.collections["c"].shard(0), Default::default());
        assert_eq!(old.collections["c"].in_sync(0), vec![7]);
    }
}
