//! The front of a partition whose copies live (also) on other nodes, behind an ordinary
//! [`PartitionRef`], and [`RemotePartitions`], the engine's `PartitionProvider`.
//!
//! When a collection the cluster placed starts, every partition gets a [`Router`]: a task
//! that owns the receiver of the partition's mailbox and sends each message where it
//! belongs, so the CollectionActor has no local/remote/replica branches. Every partition,
//! even one whose only copy is here, because copies move: a transfer adds a copy to a
//! node and removes another while the collection runs, and the router looks the local copy
//! up at every message (`LocalCopies`) rather than keep one.
//!
//! * writes go to the partition's [`Writer`](crate::replicator::Writer): on the primary's
//!   node it logs them on the local copy and ships the records to the in-sync replicas; on
//!   any other node it forwards them to the primary, one at a time in mailbox order, so
//!   that writes from one caller keep their order;
//! * reads go to the local copy when it is in sync, else to an in-sync copy on another
//!   node, trying the next one when a node cannot be reached;
//! * index changes go to every copy; snapshots and restores to the primary.
//!
//! A peer that cannot be reached answers `PartitionUnavailable` (retryable) at once, and
//! the coordinator's rules for partial results apply unchanged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use ametist_engine::collection::CollectionSpec;
use ametist_engine::external::{LocalCopies, PartitionProvider};
use ametist_engine::messages::{IndexStats, PartitionMsg, PartitionSnapshot, Reply, WriteAck, WriteOp};
use ametist_engine::partition::PartitionRef;
use ametist_engine::supervisor::ActorState;
use ametist_engine::EngineError;

use crate::metadata::Metadata;
use crate::raft::NodeId;
use crate::raft_node::NodeInner;
use crate::replicator::{Control, Writer};
use crate::transport::Transport;
use crate::wire::{self, kind, PartitionCall};

/// How long calls that build or rebuild indexes, or move partition images, may take: they
/// have no deadline locally either, but a call over the network must end some time.
pub(crate) const LONG_CALL: Duration = Duration::from_secs(3600);

/// A node-to-node call that failed on the way: it may not have reached the node, or its
/// answer was lost. Says which node and why.
#[derive(Debug)]
pub(crate) struct Unreachable(pub(crate) String);

/// Deadlines of forwarded calls; the coordinator applies the same ones to local partitions.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub search: Duration,
    pub write: Duration,
}

/// What every router and writer of a node shares.
pub(crate) struct Shared {
    pub(crate) node_id: NodeId,
    pub(crate) transport: Arc<Transport>,
    pub(crate) metadata: Arc<Metadata>,
    pub(crate) deadlines: Deadlines,
    /// The running member, set once it started: writers propose in-sync changes through it.
    pub(crate) node: OnceLock<Arc<NodeInner>>,
    /// The control channel of each partition's writer on this node, for recoveries that
    /// replicas ask the primary for.
    pub(crate) controls: Mutex<HashMap<(String, usize), mpsc::Sender<Control>>>,
    /// Where partition images in transit are kept (`<data_dir>/cluster/transfers`).
    pub(crate) transfers: PathBuf,
    /// Set once this node applied every metadata change the leader had committed when the
    /// node started (see `failover::catch_up`). Before that, its view may be old (a node
    /// that was down missed promotions): it must neither act as a primary nor serve reads
    /// from its copies.
    pub(crate) caught_up: AtomicBool,
    /// Recoveries this node made as a primary, by path.
    pub(crate) recoveries: Recoveries,
}

/// How many stale copies this node's primaries recovered, from the log or from an image.
#[derive(Default)]
pub(crate) struct Recoveries {
    pub(crate) tail: std::sync::atomic::AtomicU64,
    pub(crate) image: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub(crate) fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// The writer of `partition` of `collection` on this node, if it runs.
    pub(crate) fn control(&self, collection: &str, partition: usize) -> Option<mpsc::Sender<Control>> {
        let controls = self.controls.lock().expect("the controls lock is never held across a panic");
        controls.get(&(collection.to_string(), partition)).cloned()
    }

    /// One partition call to `node`; errors come back as the engine's (unreachable nodes
    /// as `PartitionUnavailable`, retryable).
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        node: NodeId,
        collection: &str,
        partition: usize,
        call: &PartitionCall,
        blob: Vec<u8>,
        timeout: Duration,
    ) -> Result<T, EngineError> {
        self.call_for_blob(node, collection, partition, call, blob, timeout).await.map(|(v, _)| v)
    }

    /// [`Shared::call`], also returning the raw bytes the answer carries.
    pub(crate) async fn call_for_blob<T: DeserializeOwned>(
        &self,
        node: NodeId,
        collection: &str,
        partition: usize,
        call: &PartitionCall,
        blob: Vec<u8>,
        timeout: Duration,
    ) -> Result<(T, Vec<u8>), EngineError> {
        match self.exchange(node, collection, partition, call, blob, timeout).await {
            Ok(answer) => answer,
            Err(Unreachable(reason)) => Err(EngineError::PartitionUnavailable { partition, reason }),
        }
    }

    /// One partition call to `node`, telling a call that may not have reached it (or whose
    /// answer was lost) apart from an answer: a write in that case may or may not have
    /// been applied, and its caller must say so.
    pub(crate) async fn exchange<T: DeserializeOwned>(
        &self,
        node: NodeId,
        collection: &str,
        partition: usize,
        call: &PartitionCall,
        blob: Vec<u8>,
        timeout: Duration,
    ) -> Result<Result<(T, Vec<u8>), EngineError>, Unreachable> {
        let Some(member) = self.metadata.member(node) else {
            let reason = format!("node {node} is not a cluster member");
            return Ok(Err(EngineError::PartitionUnavailable { partition, reason }));
        };
        let mut env = wire::envelope(kind::PARTITION, collection, partition as u32, call);
        env.blob = blob;
        match self.transport.call(&member.grpc, env, timeout).await {
            Ok(answer) => Ok(match wire::decode_answer::<T>(&answer) {
                Ok(Ok(v)) => Ok((v, answer.blob)),
                Ok(Err(e)) => Err(e.into_engine(partition)),
                Err(e) => Err(EngineError::Internal(format!("node {node} sent an answer we cannot read: {e}"))),
            }),
            Err(status) => Err(Unreachable(format!(
                "node {node} ({}) is unreachable: {} ({:?})",
                member.grpc,
                status.message(),
                status.code()
            ))),
        }
    }

    /// The image of a local copy (the snapshot format: points, payloads, graph) as bytes,
    /// through a file in the transfers directory (`tag` names it).
    pub(crate) async fn image_of(&self, local: &PartitionRef, tag: &str) -> Result<(IndexStats, Vec<u8>), EngineError> {
        let dir = self.transfers.clone();
        let path = dir.join(format!("{tag}.image"));
        tokio::task::spawn_blocking(move || std::fs::create_dir_all(&dir))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .map_err(|e| EngineError::Internal(format!("{}: {e}", self.transfers.display())))?;
        let (tx, rx) = oneshot::channel();
        local.try_send(PartitionMsg::Snapshot(PartitionSnapshot { path: path.to_string_lossy().into_owned() }, tx))?;
        let stats = rx.await.map_err(|_| local.unavailable())??;
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let image = std::fs::read(&path);
                let _ = std::fs::remove_file(&path);
                image
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
        };
        let image = read.map_err(|e| EngineError::Internal(format!("{}: {e}", path.display())))?;
        Ok((stats, image))
    }
}

/// The cluster's [`PartitionProvider`]: copies placed here run here; partitions with copies
/// elsewhere get a [`Router`].
pub struct RemotePartitions {
    pub(crate) shared: Arc<Shared>,
}

impl PartitionProvider for RemotePartitions {
    fn holds(&self, spec: &CollectionSpec, partition: usize) -> bool {
        // A collection the cluster does not know (made before clustering) stays local.
        match self.shared.metadata.placement(&spec.name) {
            None => true,
            Some(p) => p.replicas.get(partition).is_some_and(|r| r.contains(&self.shared.node_id)),
        }
    }

    fn front(
        &self,
        spec: &CollectionSpec,
        partition: usize,
        mailbox: usize,
        locals: &LocalCopies,
    ) -> Option<PartitionRef> {
        // A collection the cluster does not know (made before clustering) stays local.
        self.shared.metadata.placement(&spec.name)?;
        let (handle, rx, _status) = PartitionRef::external(partition, mailbox);
        let router = Arc::new(Router {
            collection: spec.name.clone(),
            partition,
            locals: locals.clone(),
            shared: self.shared.clone(),
        });
        tokio::spawn(router.run(rx, mailbox));
        Some(handle)
    }
}

/// Routes one partition's messages (see the module's documentation).
pub(crate) struct Router {
    pub(crate) collection: String,
    pub(crate) partition: usize,
    /// This node's copies of the collection's partitions (looked up at every message:
    /// transfers add and remove them).
    pub(crate) locals: LocalCopies,
    pub(crate) shared: Arc<Shared>,
}

impl Router {
    /// This node's copy of the partition, when it holds one now.
    pub(crate) fn local(&self) -> Option<PartitionRef> {
        self.locals.get(self.partition)
    }

    async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<PartitionMsg>, mailbox: usize) {
        let (writes, queued) = mpsc::channel::<(Vec<WriteOp>, Reply<WriteAck>)>(mailbox.max(1));
        let (control, controls) = mpsc::channel::<Control>(16);
        let key = (self.collection.clone(), self.partition);
        self.shared
            .controls
            .lock()
            .expect("the controls lock is never held across a panic")
            .insert(key.clone(), control.clone());
        let writer = tokio::spawn(Writer::new(self.clone()).run(queued, controls));
        let (search, long) = (self.shared.deadlines.search, LONG_CALL);
        while let Some(msg) = rx.recv().await {
            match msg {
                PartitionMsg::Write(ops, reply) => {
                    // Waits when the writer is behind: the bounded mailbox then fills and
                    // the coordinator reports "overloaded", as for a local partition.
                    let _ = writes.send((ops, reply)).await;
                }
                // Listed, not matched by `is_read_only`: the match stays exhaustive, so a new
                // message kind must be routed here on purpose.
                msg @ (PartitionMsg::Search(..)
                | PartitionMsg::Get { .. }
                | PartitionMsg::Scroll(..)
                | PartitionMsg::Count(..)
                | PartitionMsg::TextStats { .. }
                | PartitionMsg::TextSearch(..)
                | PartitionMsg::SparseStats { .. }
                | PartitionMsg::SparseSearch(..)
                | PartitionMsg::Stats(..)
                | PartitionMsg::Digest(..)) => self.read(msg, search),
                PartitionMsg::CreateFieldIndex { key, kind, reply } => {
                    let local = |r| PartitionMsg::CreateFieldIndex { key: key.clone(), kind, reply: r };
                    self.everywhere(PartitionCall::CreateFieldIndex { key: key.clone(), kind }, local, reply)
                }
                PartitionMsg::DropFieldIndex { key, reply } => {
                    let local = |r| PartitionMsg::DropFieldIndex { key: key.clone(), reply: r };
                    self.everywhere(PartitionCall::DropFieldIndex { key: key.clone() }, local, reply)
                }
                PartitionMsg::CreateTextIndex { key, config, reply } => {
                    let local =
                        |r| PartitionMsg::CreateTextIndex { key: key.clone(), config: config.clone(), reply: r };
                    self.everywhere(
                        PartitionCall::CreateTextIndex { key: key.clone(), config: config.clone() },
                        local,
                        reply,
                    )
                }
                PartitionMsg::RebuildIndex(req, reply) => {
                    self.everywhere(PartitionCall::RebuildIndex, |r| PartitionMsg::RebuildIndex(req, r), reply)
                }
                PartitionMsg::Snapshot(req, reply) => match self.local_primary() {
                    Some(local) => local.send_or_fail(PartitionMsg::Snapshot(req, reply)),
                    // The image is written here, where the caller assembles the snapshot:
                    // the primary sends it over.
                    None => {
                        let this = self.clone();
                        tokio::spawn(async move {
                            let _ = reply.send(this.fetch_image(req.path).await);
                        });
                    }
                },
                PartitionMsg::Restore(req, reply) => {
                    if self.copies() > 1 {
                        let _ = reply.send(Err(EngineError::InvalidInput(
                            "restoring a partition image into a replicated collection is not supported yet".into(),
                        )));
                    } else {
                        self.spawn_primary(PartitionCall::Restore(req), long, reply)
                    }
                }
                PartitionMsg::Fault(fault) => match self.local() {
                    Some(local) => {
                        let _ = local.try_send(PartitionMsg::Fault(fault));
                    }
                    None => {
                        let this = self.clone();
                        tokio::spawn(async move {
                            let _: Result<(), _> = this.on_primary(&PartitionCall::Fault(fault), search).await;
                        });
                    }
                },
                PartitionMsg::Tick => {
                    if let Some(local) = self.local() {
                        let _ = local.try_send(PartitionMsg::Tick);
                    }
                }
                PartitionMsg::Stop => {
                    if let Some(local) = self.local() {
                        let _ = local.try_send(PartitionMsg::Stop);
                    }
                    break;
                }
                // Only a primary's writer sends these, to its own local copy.
                msg @ (PartitionMsg::WriteLogged(..)
                | PartitionMsg::Append(..)
                | PartitionMsg::Install(..)
                | PartitionMsg::ReadLog { .. }) => {
                    msg.fail(EngineError::Internal("replication messages do not go through a partition's front".into()))
                }
            }
        }
        drop(writes);
        let _ = writer.await;
        let mut controls = self.shared.controls.lock().expect("the controls lock is never held across a panic");
        if controls.get(&key).is_some_and(|c| c.same_channel(&control)) {
            controls.remove(&key);
        }
    }

    /// Copies of this partition in the metadata.
    fn copies(&self) -> usize {
        self.shared
            .metadata
            .placement(&self.collection)
            .and_then(|p| p.replicas.get(self.partition).map(Vec::len))
            .unwrap_or(0)
    }

    /// The copies that may serve reads now, in the order to try them: this node's first.
    pub(crate) fn readable(&self) -> Vec<NodeId> {
        let Some(placement) = self.shared.metadata.placement(&self.collection) else { return Vec::new() };
        let mut copies = placement.in_sync(self.partition);
        if let Some(i) = copies.iter().position(|&n| n == self.shared.node_id) {
            copies.remove(i);
            copies.insert(0, self.shared.node_id);
        }
        copies
    }

    /// The local copy, when this node holds the partition's primary.
    fn local_primary(&self) -> Option<PartitionRef> {
        let primary = self.shared.metadata.owner(&self.collection, self.partition)?;
        self.local().filter(|_| primary == self.shared.node_id)
    }

    /// A read: the local copy when it is in sync and running, else the in-sync copies on
    /// other nodes, the next one tried when one cannot be reached. A recovering copy
    /// never serves.
    fn read(self: &Arc<Self>, msg: PartitionMsg, timeout: Duration) {
        let copies = self.readable();
        if let Some(local) = self.local().filter(|l| {
            self.shared.is_caught_up()
                && copies.first() == Some(&self.shared.node_id)
                && matches!(l.info().state, ActorState::Running | ActorState::ReadOnly)
        }) {
            return local.send_or_fail(msg);
        }
        let others: Vec<NodeId> = copies.into_iter().filter(|&n| n != self.shared.node_id).collect();
        match msg {
            PartitionMsg::Search(req, reply) => self.spawn_read(others, PartitionCall::Search(req), timeout, reply),
            PartitionMsg::Get { ids, with_payload, with_vector, reply } => {
                self.spawn_read(others, PartitionCall::Get { ids, with_payload, with_vector }, timeout, reply)
            }
            PartitionMsg::Scroll(req, reply) => self.spawn_read(others, PartitionCall::Scroll(req), timeout, reply),
            PartitionMsg::Count(filter, reply) => self.spawn_read(others, PartitionCall::Count(filter), timeout, reply),
            PartitionMsg::TextStats { field, terms, reply } => {
                self.spawn_read(others, PartitionCall::TextStats { field, terms }, timeout, reply)
            }
            PartitionMsg::TextSearch(req, reply) => {
                self.spawn_read(others, PartitionCall::TextSearch(req), timeout, reply)
            }
            PartitionMsg::SparseStats { name, query, reply } => {
                self.spawn_read(others, PartitionCall::SparseStats { name, query }, timeout, reply)
            }
            PartitionMsg::SparseSearch(req, reply) => {
                self.spawn_read(others, PartitionCall::SparseSearch(req), timeout, reply)
            }
            PartitionMsg::Stats(reply) => self.spawn_read(others, PartitionCall::Stats, timeout, reply),
            PartitionMsg::Digest(reply) => self.spawn_read(others, PartitionCall::Digest, timeout, reply),
            other => other.fail(EngineError::Internal("not a read".into())),
        }
    }

    fn spawn_read<T: DeserializeOwned + Send + 'static>(
        self: &Arc<Self>,
        copies: Vec<NodeId>,
        call: PartitionCall,
        timeout: Duration,
        reply: Reply<T>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut last = EngineError::PartitionUnavailable {
                partition: this.partition,
                reason: "no in-sync copy of it can serve reads now (a failover or a recovery may be in progress)"
                    .into(),
            };
            for node in copies {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                match this.shared.call(node, &this.collection, this.partition, &call, Vec::new(), left).await {
                    Ok(v) => return drop(reply.send(Ok(v))),
                    Err(e) if e.is_retryable() => last = e,
                    Err(e) => return drop(reply.send(Err(e))),
                }
            }
            let _ = reply.send(Err(last));
        });
    }

    /// A change every copy makes (index definitions, rebuilds): the local copy and every
    /// other copy, each on its node. It succeeds when every in-sync copy succeeded; a copy
    /// that is not in sync gets it when it is recovered (the schema travels in the
    /// metadata and the node's collection file).
    fn everywhere<T: DeserializeOwned + Send + 'static>(
        self: &Arc<Self>,
        call: PartitionCall,
        local: impl FnOnce(Reply<T>) -> PartitionMsg,
        reply: Reply<T>,
    ) {
        let local_rx = self.local().map(|l| {
            let (tx, rx) = oneshot::channel();
            l.send_or_fail(local(tx));
            rx
        });
        let this = self.clone();
        tokio::spawn(async move {
            let in_sync = this.readable();
            let me = this.shared.node_id;
            let remote = this
                .shared
                .metadata
                .placement(&this.collection)
                .and_then(|p| p.replicas.get(this.partition).cloned())
                .unwrap_or_default()
                .into_iter()
                .filter(|&n| n != me);
            let calls: Vec<_> = remote
                .map(|node| {
                    let (this, call) = (this.clone(), call.clone());
                    tokio::spawn(async move {
                        let shared = &this.shared;
                        (
                            node,
                            shared
                                .call::<T>(node, &this.collection, this.partition, &call, Vec::new(), LONG_CALL)
                                .await,
                        )
                    })
                })
                .collect();
            let mut results = Vec::with_capacity(calls.len() + 1);
            for call in calls {
                match call.await {
                    Ok(result) => results.push(result),
                    Err(e) => results.push((0, Err(EngineError::Internal(format!("a call task failed: {e}"))))),
                }
            }
            if let Some(rx) = local_rx {
                let answer = rx.await.unwrap_or_else(|_| Err(this.unavailable("the local copy stopped")));
                results.insert(0, (me, answer));
            }
            let mut answer = None;
            for (node, result) in results {
                match result {
                    Err(e) if in_sync.contains(&node) => return drop(reply.send(Err(e))),
                    Err(e) => {
                        tracing::warn!(collection = %this.collection, partition = this.partition, node, error = %e, "a copy out of sync did not take an index change")
                    }
                    Ok(v) if answer.is_none() => answer = Some(v),
                    Ok(_) => {}
                }
            }
            let _ = reply.send(answer.ok_or_else(|| this.unavailable("no copy took the change")));
        });
    }

    fn spawn_primary<T: DeserializeOwned + Send + 'static>(
        self: &Arc<Self>,
        call: PartitionCall,
        timeout: Duration,
        reply: Reply<T>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let _ = reply.send(this.on_primary(&call, timeout).await);
        });
    }

    /// One call to the partition's primary, wherever it is (looked up for every call, so a
    /// promotion is followed).
    pub(crate) async fn on_primary<T: DeserializeOwned>(
        &self,
        call: &PartitionCall,
        timeout: Duration,
    ) -> Result<T, EngineError> {
        let primary = self.primary()?;
        self.shared.call(primary, &self.collection, self.partition, call, Vec::new(), timeout).await
    }

    /// A write forwarded to the partition's primary. When the call fails on the way, the
    /// primary may have applied the write before the answer was lost: the error says so.
    pub(crate) async fn write_on_primary(
        &self,
        call: &PartitionCall,
        timeout: Duration,
    ) -> Result<WriteAck, EngineError> {
        let primary = self.primary()?;
        match self.shared.exchange(primary, &self.collection, self.partition, call, Vec::new(), timeout).await {
            Ok(answer) => answer.map(|(ack, _)| ack),
            Err(Unreachable(why)) => Err(self.unavailable(&format!(
                "the write was not acknowledged: {why}; it may or may not have been applied; retrying it is safe"
            ))),
        }
    }

    /// The primary's image, written to `path` on this node.
    async fn fetch_image(&self, path: String) -> Result<IndexStats, EngineError> {
        let primary = self.primary()?;
        let (stats, image): (IndexStats, Vec<u8>) = self
            .shared
            .call_for_blob(primary, &self.collection, self.partition, &PartitionCall::Image, Vec::new(), LONG_CALL)
            .await?;
        tokio::task::spawn_blocking(move || std::fs::write(&path, image).map_err(|e| (path, e)))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .map_err(|(path, e)| EngineError::Internal(format!("{path}: {e}")))?;
        Ok(stats)
    }

    /// The partition's primary now (looked up at every call, so a promotion is followed).
    fn primary(&self) -> Result<NodeId, EngineError> {
        let owner = self.shared.metadata.owner(&self.collection, self.partition);
        owner.ok_or_else(|| self.unavailable("the cluster no longer places this partition"))
    }

    pub(crate) fn unavailable(&self, reason: &str) -> EngineError {
        EngineError::PartitionUnavailable { partition: self.partition, reason: reason.to_string() }
    }
}

/// Sending to a local copy without waiting: a full mailbox or a stopped actor answers
/// the message's reply with the error at once.
trait SendOrFail {
    fn send_or_fail(&self, msg: PartitionMsg);
}

impl SendOrFail for PartitionRef {
    fn send_or_fail(&self, msg: PartitionMsg) {
        match self.try_reserve() {
            Ok(permit) => permit.send(msg),
            Err(e) => msg.fail(e),
        }
    }
}
