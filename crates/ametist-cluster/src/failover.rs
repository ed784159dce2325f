//! Keeping partitions served when nodes fail, and bringing copies back.
//!
//! * [`detect_failures`] runs on every node and acts on the Raft leader only: it pings the
//!   members, and when a partition's primary has not answered for the failover timeout, it
//!   promotes an in-sync replica on a live member (`Promote`: term + 1, the old primary out
//!   of the in-sync set). Only in-sync copies are promoted, so no acknowledged write is
//!   lost; when no in-sync copy is alive the partition stays unavailable rather than serve
//!   old data. Then it rebalances: copies on draining members, or on members silent for
//!   `remoting.replace_dead_after`, move to the others, and copies spread evenly over the
//!   members (see `rebalance`).
//! * [`request_recoveries`] runs on every node: for each stale copy this node holds (it
//!   missed writes, or was a primary that got replaced), it asks the primary to recover it
//!   (see `replicator`), one at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use tokio::time::Instant;

use crate::metadata::Member;
use crate::raft::{Command, NodeId};
use crate::raft_node::NodeInner;
use crate::rebalance;
use crate::router::LONG_CALL;
use crate::wire::{self, kind, PartitionCall};

/// How often the leader pings the members.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long a ping may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// Raft's shortest election timeout (see `node.rs`): how long a leader was silent, at
/// least, when another node wins an election.
const ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(1000);
/// How long a leader may take to confirm with a quorum that it still leads.
pub(crate) const LEADER_CONFIRM: Duration = Duration::from_millis(1500);
/// How often a node looks for stale copies of its own to recover.
const RECOVERY_EVERY: Duration = Duration::from_secs(1);

/// Marks the node caught up once it applied every metadata change the leader had applied
/// when asked (on the leader: once a quorum confirmed its leadership and it applied what
/// was committed). Until then the node's view may be old: it neither acts as a primary nor
/// serves reads from its copies.
pub(crate) async fn catch_up(node: Arc<NodeInner>) {
    loop {
        let leader = node.raft.metrics().borrow().current_leader;
        let target = match leader {
            // Not "at once": a restarted leader believes it still leads (see
            // `confirmed_leader_applied`) with the metadata it had when it stopped.
            Some(l) if l == node.id => node.confirmed_leader_applied(LEADER_CONFIRM).await,
            Some(l) => match node.metadata.member(l) {
                Some(m) => {
                    let env = wire::envelope(kind::APPLIED, "", 0, &());
                    match node.transport.call(&m.grpc, env, LEADER_CONFIRM + PROBE_TIMEOUT).await {
                        Ok(answer) => wire::decode_answer::<Option<u64>>(&answer)
                            .ok()
                            .and_then(Result::ok)
                            .map(|a| a.unwrap_or(0)),
                        Err(_) => None,
                    }
                }
                None => None,
            },
            None => None,
        };
        if let Some(target) = target {
            let reached = node
                .raft
                .wait(Some(Duration::from_secs(10)))
                .metrics(|m| m.last_applied.is_some_and(|l| l.index >= target) || target == 0, "metadata caught up")
                .await;
            if reached.is_ok() {
                node.shared.caught_up.store(true, std::sync::atomic::Ordering::Release);
                tracing::info!(node = node.id, applied = target, "caught up with the cluster's metadata");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn detect_failures(node: Arc<NodeInner>) {
    let mut last_seen: HashMap<NodeId, Instant> = HashMap::new();
    let mut ticker = tokio::time::interval(PROBE_EVERY);
    // The leader this node followed last: when it wins an election, that leader has been
    // silent for at least an election timeout already.
    let mut previous_leader = None;
    loop {
        ticker.tick().await;
        let leader = node.raft.metrics().borrow().current_leader;
        if leader != Some(node.id) {
            // A new leader starts with every member given the benefit of the doubt...
            last_seen.clear();
            previous_leader = leader.or(previous_leader);
            continue;
        }
        let now = Instant::now();
        if let Some(old) = previous_leader.take().filter(|&old| old != node.id) {
            // ...except the leader it replaced, silent since before the election.
            last_seen.insert(old, now.checked_sub(ELECTION_TIMEOUT_MIN).unwrap_or(now));
        }
        let members = node.metadata.members();
        let mut pings = Vec::new();
        for (&id, member) in members.iter().filter(|(&id, _)| id != node.id) {
            last_seen.entry(id).or_insert(now);
            let (transport, addr) = (node.transport.clone(), member.grpc.clone());
            pings.push(tokio::spawn(async move {
                let env = wire::envelope(kind::PING, "", 0, &());
                (id, transport.call(&addr, env, PROBE_TIMEOUT).await.is_ok())
            }));
        }
        for ping in pings {
            if let Ok((id, true)) = ping.await {
                last_seen.insert(id, Instant::now());
            }
        }
        last_seen.insert(node.id, Instant::now());
        let alive = |id: NodeId| last_seen.get(&id).is_some_and(|t| t.elapsed() < PROBE_EVERY * 3);
        let timeout = node.opts.failover_timeout;
        for (name, placement) in node.metadata.state().collections {
            for p in 0..placement.replicas.len() {
                let Some(primary) = placement.primary(p) else { continue };
                if last_seen.get(&primary).is_none_or(|t| t.elapsed() < timeout) {
                    continue;
                }
                let term = placement.shard(p).term;
                let Some(&candidate) = placement.in_sync(p).iter().find(|&&n| n != primary && alive(n)) else {
                    tracing::warn!(collection = %name, partition = p, primary, "primary lost and no live in-sync replica: the partition stays unavailable");
                    continue;
                };
                let cmd = Command::Promote { collection: name.clone(), partition: p, term, node: candidate };
                match node.propose(cmd).await {
                    Ok(r) if r.refused.is_none() => {
                        tracing::warn!(collection = %name, partition = p, old = primary, new = candidate, term = term + 1, "primary lost: promoted an in-sync replica")
                    }
                    Ok(r) => {
                        tracing::info!(collection = %name, partition = p, refused = ?r.refused, "promotion not applied")
                    }
                    Err(e) => tracing::warn!(collection = %name, partition = p, error = %e, "promotion failed"),
                }
            }
        }
        rebalance(&node, &members, &last_seen).await;
    }
}

/// The leader's rebalancing step (see `rebalance`): transfers whose new copy's member has
/// been silent for the failover timeout are aborted (so none waits forever on a lost
/// member), then the planned transfers are started.
async fn rebalance(node: &NodeInner, members: &BTreeMap<NodeId, Member>, last_seen: &HashMap<NodeId, Instant>) {
    let silent_for = |id: NodeId| last_seen.get(&id).map_or(Duration::ZERO, |t| t.elapsed());
    let state = node.metadata.state();
    let mut commands = Vec::new();
    for (name, placement) in &state.collections {
        for t in placement.transfers.iter().filter(|t| silent_for(t.to) >= node.opts.failover_timeout) {
            commands.push(Command::AbortTransfer { collection: name.clone(), partition: t.partition, to: t.to });
        }
    }
    let live: BTreeSet<NodeId> = members.keys().copied().filter(|&id| silent_for(id) < PROBE_EVERY * 3).collect();
    let leaving: BTreeSet<NodeId> = members
        .keys()
        .copied()
        .filter(|id| state.draining.contains(id) || silent_for(*id) >= node.opts.replace_dead_after)
        .collect();
    let usable: Vec<NodeId> = live.iter().copied().filter(|id| !leaving.contains(id)).collect();
    if commands.is_empty() {
        commands = rebalance::plan(&state, &usable, &leaving, &live);
    }
    // A draining member that holds nothing any more leaves the Raft membership; once it
    // left, its draining mark goes.
    for &id in &state.draining {
        if !members.contains_key(&id) {
            commands.push(Command::SetDraining { node: id, draining: false });
            continue;
        }
        let holds = state.collections.values().any(|p| {
            p.replicas.iter().any(|copies| copies.contains(&id))
                || p.transfers.iter().any(|t| t.to == id || t.from == id)
        });
        if !holds {
            let removed = node.raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false).await;
            match removed {
                Ok(_) => tracing::warn!(node = id, "drained member removed from the cluster"),
                Err(e) => tracing::warn!(node = id, error = %e, "removing the drained member failed; retrying"),
            }
        }
    }
    for cmd in commands {
        let what = format!("{cmd:?}");
        match node.propose(cmd).await {
            Ok(r) if r.refused.is_none() => tracing::info!(command = %what, "rebalancing"),
            Ok(r) => tracing::info!(command = %what, refused = ?r.refused, "rebalancing step not applied"),
            Err(e) => tracing::warn!(command = %what, error = %e, "rebalancing step failed"),
        }
    }
}

pub(crate) async fn request_recoveries(node: Arc<NodeInner>) {
    let mut ticker = tokio::time::interval(RECOVERY_EVERY);
    loop {
        ticker.tick().await;
        for (name, placement) in node.metadata.state().collections {
            let Ok(collection) = node.db.collection(&name) else { continue };
            for p in 0..placement.replicas.len() {
                let Some(primary) = placement.primary(p) else { continue };
                if primary == node.id || !placement.shard(p).stale.contains(&node.id) {
                    continue;
                }
                let Some(local) = collection.local_copy(p) else { continue };
                // The copy's version lets the primary send only the records it misses.
                let (tx, rx) = tokio::sync::oneshot::channel();
                let version = match local.try_send(ametist_engine::messages::PartitionMsg::Stats(tx)) {
                    Ok(()) => rx.await.ok().and_then(Result::ok).map(|s| s.version),
                    Err(_) => None,
                };
                let call = PartitionCall::Recover { node: node.id, version };
                let shared = &node.shared;
                let started = std::time::Instant::now();
                match shared.call::<()>(primary, &name, p, &call, Vec::new(), LONG_CALL).await {
                    Ok(()) => {
                        tracing::info!(collection = %name, partition = p, primary, took = ?started.elapsed(), "copy recovered from the primary")
                    }
                    Err(e) => {
                        tracing::info!(collection = %name, partition = p, primary, error = %e, "recovery not done yet; retrying")
                    }
                }
            }
        }
    }
}
