//! Where copies should move: the leader's plan after a member joins, while one drains,
//! and when one has been dead too long.
//!
//! [`plan`] is a pure function of the metadata and of which members are usable (live and
//! not draining) and which are leaving (draining, or dead past
//! `remoting.replace_dead_after`); the leader runs it every few seconds (see `failover`)
//! and proposes what it returns, a few transfers at a time. Each step is one
//! `StartTransfer` of kind `Move`: the new copy is made from the partition's primary, and
//! the copy it replaces goes only once the new one is in sync, so no step ever lowers the
//! number of in-sync copies.
//!
//! Order of work: first copies on leaving members (to the usable member with the fewest
//! copies that has none of that partition), then balance: while the most loaded usable
//! member holds two or more copies more than the least loaded, one of its copies moves
//! there, a primary when it also holds more primaries (a moved primary makes the new copy
//! the primary), else a replica (which needs no new term).

use std::collections::{BTreeMap, BTreeSet};

use crate::metadata::{ClusterState, Transfer, TransferKind};
use crate::raft::{Command, NodeId};

/// At most this many transfers run at once, over the whole cluster: each pauses its
/// partition's writes while the image is made and sent.
pub(crate) const MAX_TRANSFERS: usize = 2;

/// The transfers to start now (see the module's documentation). `live`: the members that
/// answer (usable ones and draining ones); a partition moves only while its primary does,
/// since the primary makes the new copy.
pub(crate) fn plan(
    state: &ClusterState,
    usable: &[NodeId],
    leaving: &BTreeSet<NodeId>,
    live: &BTreeSet<NodeId>,
) -> Vec<Command> {
    let running: usize = state.collections.values().map(|p| p.transfers.len()).sum();
    let mut budget = MAX_TRANSFERS.saturating_sub(running);
    if budget == 0 || usable.is_empty() {
        return Vec::new();
    }
    // Copies and primaries per usable member.
    let mut load: BTreeMap<NodeId, (usize, usize)> = usable.iter().map(|&n| (n, (0, 0))).collect();
    for placement in state.collections.values() {
        let mut all = BTreeMap::new();
        placement.load(&mut all);
        for (n, (c, p)) in all {
            if let Some(l) = load.get_mut(&n) {
                l.0 += c;
                l.1 += p;
            }
        }
    }
    let mut busy: BTreeSet<(String, usize)> = state
        .collections
        .iter()
        .flat_map(|(name, p)| p.transfers.iter().map(move |t| (name.clone(), t.partition)))
        .collect();
    let mut out = Vec::new();
    let start = |out: &mut Vec<Command>, name: &str, partition: usize, from: NodeId, to: NodeId| {
        let transfer = Transfer { partition, from, to, kind: TransferKind::Move };
        out.push(Command::StartTransfer { collection: name.to_string(), transfer });
    };

    // Copies on leaving members go first.
    for (name, placement) in &state.collections {
        for (p, copies) in placement.replicas.iter().enumerate() {
            for &from in copies.iter().filter(|n| leaving.contains(n)) {
                if budget == 0 || busy.contains(&(name.clone(), p)) {
                    continue;
                }
                // A dead primary is replaced by the failure detector first.
                if !placement.primary(p).is_some_and(|primary| live.contains(&primary)) {
                    continue;
                }
                let Some(&to) = usable.iter().filter(|n| !copies.contains(n)).min_by_key(|n| (load[n].0, **n)) else {
                    continue;
                };
                start(&mut out, name, p, from, to);
                busy.insert((name.clone(), p));
                load.get_mut(&to).expect("a usable member").0 += 1;
                budget -= 1;
            }
        }
    }

    // Then even shares over the usable members.
    while budget > 0 {
        let (&hi, &(hi_copies, hi_primaries)) =
            load.iter().max_by_key(|(n, l)| (l.0, std::cmp::Reverse(**n))).expect("usable is not empty");
        let (&lo, &(lo_copies, lo_primaries)) =
            load.iter().min_by_key(|(n, l)| (l.0, **n)).expect("usable is not empty");
        if hi_copies < lo_copies + 2 {
            break;
        }
        let want_primary = hi_primaries > lo_primaries + 1;
        let mut best: Option<(bool, String, usize)> = None;
        for (name, placement) in &state.collections {
            for (p, copies) in placement.replicas.iter().enumerate() {
                if !copies.contains(&hi) || copies.contains(&lo) || busy.contains(&(name.clone(), p)) {
                    continue;
                }
                let primary = placement.primary(p);
                if !primary.is_some_and(|n| live.contains(&n)) {
                    continue;
                }
                let is_primary = primary == Some(hi);
                let fits = is_primary == want_primary;
                if best.as_ref().is_none_or(|(b, ..)| fits && !b) {
                    best = Some((fits, name.clone(), p));
                }
            }
        }
        let Some((_, name, p)) = best else { break };
        let moved_primary = state.collections[&name].primary(p) == Some(hi);
        start(&mut out, &name, p, hi, lo);
        busy.insert((name, p));
        let h = load.get_mut(&hi).expect("a usable member");
        h.0 -= 1;
        if moved_primary {
            h.1 -= 1;
        }
        let l = load.get_mut(&lo).expect("a usable member");
        l.0 += 1;
        if moved_primary {
            l.1 += 1;
        }
        budget -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::CollectionPlacement;
    use ametist_core::Metric;
    use ametist_engine::collection::CollectionSpec;
    use ametist_engine::config::IndexConfig;

    fn state(replicas: Vec<Vec<NodeId>>) -> ClusterState {
        let spec = CollectionSpec {
            name: "c".into(),
            dim: 4,
            metric: Metric::Cosine,
            partitions: replicas.len(),
            index: IndexConfig::default(),
            vectors: Default::default(),
            sparse_vectors: Default::default(),
            replication: Default::default(),
        };
        let placement = CollectionPlacement {
            spec,
            replicas,
            indexes: Default::default(),
            shards: Default::default(),
            transfers: Default::default(),
        };
        ClusterState { collections: BTreeMap::from([("c".to_string(), placement)]), ..Default::default() }
    }

    /// Applies every planned transfer as if each new copy recovered at once.
    fn settle(state: &mut ClusterState, usable: &[NodeId], leaving: &BTreeSet<NodeId>, live: &[NodeId]) -> usize {
        let live: BTreeSet<NodeId> = live.iter().copied().collect();
        let mut rounds = 0;
        loop {
            let moves = plan(state, usable, leaving, &live);
            if moves.is_empty() {
                return rounds;
            }
            rounds += 1;
            assert!(moves.len() <= MAX_TRANSFERS, "{moves:?}");
            for m in moves {
                assert_eq!(m.apply(state).refused, None, "{m:?}");
                let Command::StartTransfer { collection, transfer } = m else { unreachable!("only moves") };
                let term = state.collections[&collection].shard(transfer.partition).term;
                let done = Command::MarkInSync { collection, partition: transfer.partition, term, node: transfer.to };
                assert_eq!(done.apply(state).refused, None);
            }
            assert!(rounds < 100, "the plan does not converge");
        }
    }

    fn loads(state: &ClusterState) -> BTreeMap<NodeId, (usize, usize)> {
        let mut load = BTreeMap::new();
        state.collections["c"].load(&mut load);
        load
    }

    #[test]
    fn a_joined_member_gets_an_even_share_of_copies_and_primaries() {
        // 6 partitions, 2 copies, on 3 members; member 4 joins.
        let mut s = state(crate::raft::place(6, 2, &[1, 2, 3], 0));
        settle(&mut s, &[1, 2, 3, 4], &BTreeSet::new(), &[1, 2, 3, 4]);
        let load = loads(&s);
        let copies: Vec<usize> = load.values().map(|l| l.0).collect();
        let primaries: Vec<usize> = load.values().map(|l| l.1).collect();
        assert_eq!(load.len(), 4, "{load:?}");
        assert!(copies.iter().max().unwrap() - copies.iter().min().unwrap() <= 1, "{load:?}");
        assert!(primaries.iter().max().unwrap() - primaries.iter().min().unwrap() <= 1, "{load:?}");
        for copies in &s.collections["c"].replicas {
            assert_eq!(copies.len(), 2);
            assert_ne!(copies[0], copies[1]);
        }
    }

    #[test]
    fn a_draining_member_is_emptied_and_nothing_moves_to_it() {
        let mut s = state(crate::raft::place(6, 2, &[1, 2, 3], 0));
        let leaving = BTreeSet::from([3]);
        settle(&mut s, &[1, 2], &leaving, &[1, 2, 3]);
        let load = loads(&s);
        assert!(!load.contains_key(&3), "{load:?}");
        assert_eq!(load[&1].0 + load[&2].0, 12);
    }

    #[test]
    fn nothing_moves_when_balanced_or_without_a_live_primary() {
        let s = state(crate::raft::place(6, 2, &[1, 2, 3], 0));
        assert!(plan(&s, &[1, 2, 3], &BTreeSet::new(), &BTreeSet::from([1, 2, 3])).is_empty());
        // Member 3 is dead past the timeout and primary of some partitions: those wait for
        // a promotion; the replicas it holds move.
        let moves = plan(&s, &[1, 2], &BTreeSet::from([3]), &BTreeSet::from([1, 2]));
        for m in &moves {
            let Command::StartTransfer { transfer, .. } = m else { unreachable!() };
            assert_ne!(s.collections["c"].primary(transfer.partition), Some(3), "{m:?}");
        }
        assert!(!moves.is_empty());
    }
}
