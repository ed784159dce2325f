//! A partition's writer: on the primary's node it orders, logs and ships the partition's
//! writes; on every other node it forwards them to the primary.
//!
//! The partition's WAL is the replication log. The primary logs a group of writes on its
//! local copy (`WriteLogged`: each batch becomes one record at LSN L, filter operations
//! expanded), then ships `(term, records)` to every in-sync replica. A replica appends each
//! record exactly at its LSN and fsyncs before it answers, refusing gaps and records of an
//! older term (see the service). A write is acknowledged only when every in-sync copy has
//! it durably, or when a copy that failed to take it has first been removed from the
//! in-sync set by a committed Raft entry (`MarkStale`, which names the primary's term: a
//! primary that was replaced cannot evict anyone, so it can never get a write
//! acknowledged). Fewer in-sync copies than `write_consistency_factor` refuse writes.
//!
//! Records stay in `outstanding` until every in-sync replica acknowledged them, so that a
//! replica that missed an answer gets them again with the next group (a duplicate is
//! answered as applied). A replica that fell behind beyond what is kept, or diverged,
//! answers "out of order" and is marked stale; it comes back through [`Control::Recover`],
//! with writes paused: a copy that left the in-sync set during this term holds a prefix of
//! this primary's log and gets the records it misses from the log (while the log still
//! holds them); any other copy (one a promotion made stale, or one behind a snapshot's
//! truncation) gets the primary's image (points, payloads and graph, at the primary's
//! version) and replaces its copy with it. Then the primary proposes it back into the
//! in-sync set. A recovery that does not pause writes while an image travels (image, then
//! the log since it) is the next step.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use ametist_engine::messages::{Append, LoggedWrite, PartitionMsg, Reply, WriteAck, WriteOp};
use ametist_engine::EngineError;

use crate::metadata::ShardState;
use crate::raft::{Command, NodeId};
use crate::router::{Router, LONG_CALL};
use crate::wire::PartitionCall;

/// How long a primary waits for a replica to take a group of records before it proposes
/// to take the replica out of the in-sync set. Also bounds how long a frozen replica holds
/// writes up.
pub(crate) const REPLICA_PATIENCE: Duration = Duration::from_secs(2);

/// How long a writer waits for its own node to apply a change it committed.
const APPLY_PATIENCE: Duration = Duration::from_secs(5);

/// How many queued writes one group takes at most.
const GROUP_MAX: usize = 64;

/// Requests a partition's writer serves between groups of writes.
pub(crate) enum Control {
    /// Brings `node`'s stale copy, at `version`, back in sync (see the module's
    /// documentation).
    Recover { node: NodeId, version: Option<u64>, reply: oneshot::Sender<Result<(), EngineError>> },
}

pub(crate) struct Writer {
    router: Arc<Router>,
    /// The primary term the state below belongs to; a new term starts it afresh.
    term: Option<u64>,
    /// Per replica, the highest LSN it acknowledged.
    acked: HashMap<NodeId, u64>,
    /// Records logged here that some in-sync replica may not have yet, in LSN order.
    outstanding: VecDeque<Append>,
}

impl Writer {
    pub(crate) fn new(router: Arc<Router>) -> Self {
        Writer { router, term: None, acked: HashMap::new(), outstanding: VecDeque::new() }
    }

    pub(crate) async fn run(
        mut self,
        mut writes: mpsc::Receiver<(Vec<WriteOp>, Reply<WriteAck>)>,
        mut controls: mpsc::Receiver<Control>,
    ) {
        loop {
            tokio::select! {
                write = writes.recv() => {
                    let Some(first) = write else { return };
                    let mut group = vec![first];
                    while group.len() < GROUP_MAX {
                        match writes.try_recv() {
                            Ok(w) => group.push(w),
                            Err(_) => break,
                        }
                    }
                    self.write(group).await;
                }
                Some(control) = controls.recv() => match control {
                    Control::Recover { node, version, reply } => {
                        let _ = reply.send(self.recover(node, version).await);
                    }
                },
            }
        }
    }

    async fn write(&mut self, group: Vec<(Vec<WriteOp>, Reply<WriteAck>)>) {
        let r = self.router.clone();
        let me = r.shared.node_id;
        let Some(placement) = r.shared.metadata.placement(&r.collection) else {
            for (_, reply) in group {
                let _ = reply.send(Err(r.unavailable("the cluster no longer places this partition")));
            }
            return;
        };
        if placement.primary(r.partition) == Some(me) && !r.shared.is_caught_up() {
            let e = r.unavailable(
                "this node is catching up with the cluster's metadata after a start; nothing was written; retry later",
            );
            for (_, reply) in group {
                let _ = reply.send(Err(e.clone()));
            }
            return;
        }
        let local = match r.local() {
            Some(local) if placement.primary(r.partition) == Some(me) => local,
            // Not the primary here: forward, one write at a time, in order.
            _ => {
                self.reset(None);
                for (ops, reply) in group {
                    let answer = r.write_on_primary(&PartitionCall::Write(ops), r.shared.deadlines.write).await;
                    let _ = reply.send(answer);
                }
                return;
            }
        };
        let shard = placement.shard(r.partition);
        self.reset(Some(shard.term));
        let in_sync = placement.in_sync(r.partition);
        let needed = placement.spec.replication.write_consistency;
        if in_sync.len() < needed {
            let e = EngineError::PartitionUnavailable {
                partition: r.partition,
                reason: format!(
                    "{} in-sync cop{} of the partition, fewer than write_consistency_factor {needed}; nothing was \
                     written; retry later",
                    in_sync.len(),
                    if in_sync.len() == 1 { "y" } else { "ies" }
                ),
            };
            for (_, reply) in group {
                let _ = reply.send(Err(e.clone()));
            }
            return;
        }

        // Log the group on the local copy; its actor commits it as one group.
        let mut logging = Vec::with_capacity(group.len());
        for (ops, reply) in group {
            let (tx, rx) = oneshot::channel();
            match local.try_send(PartitionMsg::WriteLogged(ops, tx)) {
                Ok(()) => logging.push((reply, rx)),
                Err(e) => drop(reply.send(Err(e))),
            }
        }
        let mut logged: Vec<(Reply<WriteAck>, WriteAck)> = Vec::with_capacity(logging.len());
        for (reply, rx) in logging {
            match rx.await {
                Ok(Ok(LoggedWrite { ack, lsn, ops })) => {
                    if let Some(lsn) = lsn {
                        self.outstanding.push_back(Append { lsn, ops });
                    }
                    logged.push((reply, ack));
                }
                Ok(Err(e)) => drop(reply.send(Err(e))),
                Err(_) => drop(reply.send(Err(unknown(r.partition, "the local copy stopped while logging it")))),
            }
        }
        if logged.is_empty() {
            return;
        }
        let replicas: Vec<NodeId> = in_sync.into_iter().filter(|&n| n != me).collect();
        let outcome = self.ship(shard.term, &replicas).await;
        let answer = match outcome {
            Ok(kept) if kept + 1 >= needed => Ok(()),
            Ok(kept) => Err(unknown(
                r.partition,
                &format!(
                    "only {} in-sync cop{} of the partition took it, fewer than write_consistency_factor {needed}",
                    kept + 1,
                    if kept == 0 { "y" } else { "ies" }
                ),
            )),
            Err(why) => Err(unknown(r.partition, &why)),
        };
        for (reply, ack) in logged {
            let _ = reply.send(answer.clone().map(|()| ack));
        }
    }

    /// Ships the outstanding records to `replicas` (the in-sync ones). Replicas that do not
    /// take them are proposed out of the in-sync set; returns how many replicas hold every
    /// record now, or why the outcome is unknown (a proposal failed: this node may have
    /// been replaced as the primary).
    async fn ship(&mut self, term: u64, replicas: &[NodeId]) -> Result<usize, String> {
        let r = self.router.clone();
        let Some(last) = self.outstanding.back().map(|a| a.lsn) else { return Ok(replicas.len()) };
        let mut calls = Vec::with_capacity(replicas.len());
        for &node in replicas {
            let from = self.acked.get(&node).copied().unwrap_or(0);
            let records: Vec<Append> = self.outstanding.iter().filter(|a| a.lsn > from).cloned().collect();
            let (r, call) = (r.clone(), PartitionCall::Replicate { term, records });
            calls.push(tokio::spawn(async move {
                let answer: Result<u64, EngineError> =
                    r.shared.call(node, &r.collection, r.partition, &call, Vec::new(), REPLICA_PATIENCE).await;
                (node, answer)
            }));
        }
        let mut failed = Vec::new();
        for call in calls {
            let (node, answer) = call.await.map_err(|e| format!("a shipping task failed: {e}"))?;
            match answer {
                Ok(version) if version >= last => drop(self.acked.insert(node, version)),
                Ok(version) => failed.push((node, format!("it answered with operation {version}, not {last}"))),
                Err(e) => failed.push((node, e.to_string())),
            }
        }
        for (node, why) in &failed {
            tracing::warn!(collection = %r.collection, partition = r.partition, node, reason = %why, "a replica did not take records: taking it out of the in-sync set");
            let cmd =
                Command::MarkStale { collection: r.collection.clone(), partition: r.partition, term, node: *node };
            match self.propose(cmd, |s| s.stale.contains(node)).await {
                Ok(()) => drop(self.acked.remove(node)),
                Err(e) => {
                    return Err(format!(
                        "replica on node {node} did not take it ({why}) and could not be taken out of the in-sync set ({e})"
                    ))
                }
            }
        }
        let kept = replicas.len() - failed.len();
        // Every remaining in-sync replica has everything up to `last`.
        let floor = replicas.iter().filter_map(|n| self.acked.get(n)).min().copied().unwrap_or(last);
        while self.outstanding.front().is_some_and(|a| a.lsn <= floor) {
            self.outstanding.pop_front();
        }
        Ok(kept)
    }

    /// Brings `node`'s stale copy back in sync and proposes it back into the in-sync set.
    /// Writes wait meanwhile, so the copy misses nothing. A copy whose log is a prefix of
    /// this one's (it left the in-sync set during this term) gets the records it misses
    /// when the log still holds them; any other copy gets this copy's image.
    async fn recover(&mut self, node: NodeId, version: Option<u64>) -> Result<(), EngineError> {
        let r = self.router.clone();
        let me = r.shared.node_id;
        let placement =
            r.shared.metadata.placement(&r.collection).ok_or_else(|| r.unavailable("unknown to the cluster"))?;
        let local = match r.local() {
            Some(local) if placement.primary(r.partition) == Some(me) => local,
            _ => return Err(r.unavailable(&format!("node {me} is not the primary"))),
        };
        let shard = placement.shard(r.partition);
        if !shard.stale.contains(&node) {
            return Ok(());
        }
        self.reset(Some(shard.term));
        let started = std::time::Instant::now();
        let tail = match version.filter(|_| shard.tail_ok.contains(&node)) {
            Some(after) => {
                let (tx, rx) = oneshot::channel();
                local.try_send(PartitionMsg::ReadLog { after, reply: tx })?;
                rx.await.map_err(|_| r.unavailable("the local copy stopped"))??
            }
            None => None,
        };
        let how = match tail {
            Some(records) => {
                let count = records.len();
                let call = PartitionCall::Replicate { term: shard.term, records };
                let _: u64 = r.shared.call(node, &r.collection, r.partition, &call, Vec::new(), LONG_CALL).await?;
                r.shared.recoveries.tail.fetch_add(1, Ordering::Relaxed);
                format!("{count} records from the log")
            }
            None => {
                let (points, bytes) = self.send_image(&local, node, shard.term).await?;
                r.shared.recoveries.image.fetch_add(1, Ordering::Relaxed);
                format!("an image of {points} points ({bytes} bytes)")
            }
        };
        let cmd =
            Command::MarkInSync { collection: r.collection.clone(), partition: r.partition, term: shard.term, node };
        self.propose(cmd, |s| !s.stale.contains(&node)).await?;
        // The copy is at this copy's version: records still outstanding are duplicates.
        self.acked.remove(&node);
        tracing::info!(collection = %r.collection, partition = r.partition, node, took = ?started.elapsed(), "replica recovered from {how} and back in sync");
        Ok(())
    }

    /// Sends this copy's image to `node`, which replaces its copy with it. Returns the
    /// points and bytes sent.
    async fn send_image(
        &self,
        local: &ametist_engine::partition::PartitionRef,
        node: NodeId,
        term: u64,
    ) -> Result<(usize, usize), EngineError> {
        let r = &self.router;
        let (stats, image) = r.shared.image_of(local, &format!("{}.{}.to-{node}", r.collection, r.partition)).await?;
        let bytes = image.len();
        let call = PartitionCall::Install { term };
        let () = r.shared.call(node, &r.collection, r.partition, &call, image, LONG_CALL).await?;
        Ok((stats.doc_count, bytes))
    }

    /// Starts afresh when the term changed (or this node is not the primary): what was
    /// outstanding belongs to another primary's history.
    fn reset(&mut self, term: Option<u64>) {
        if self.term != term {
            self.term = term;
            self.acked.clear();
            self.outstanding.clear();
        }
    }

    /// Commits a change to the partition's copies, then waits until this node's own view
    /// of the metadata shows it (`applied`): the next write must ship to exactly the copies
    /// the cluster now holds in sync, and this node's state machine may apply the entry a
    /// little after the leader answered.
    async fn propose(&self, cmd: Command, applied: impl Fn(&ShardState) -> bool) -> Result<(), EngineError> {
        let r = &self.router;
        let node = r.shared.node.get().ok_or_else(|| r.unavailable("the cluster node is starting"))?;
        if let Some(refusal) = node.propose(cmd).await?.refused {
            return Err(r.unavailable(&format!("the cluster refused the change: {refusal:?}")));
        }
        let deadline = tokio::time::Instant::now() + APPLY_PATIENCE;
        loop {
            let shard = r.shared.metadata.placement(&r.collection).map(|p| p.shard(r.partition));
            if shard.as_ref().is_some_and(&applied) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(r.unavailable("the change is committed but this node has not applied it yet"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// A write whose outcome is not known: it is in this copy's log, but not known to be on
/// enough copies to survive the loss of this node.
fn unknown(partition: usize, why: &str) -> EngineError {
    EngineError::PartitionUnavailable {
        partition,
        reason: format!(
            "the write was not acknowledged: {why}; it may or may not have been applied; retrying it is safe"
        ),
    }
}
