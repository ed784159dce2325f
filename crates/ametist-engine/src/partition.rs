//! The PartitionActor: one shard's points, payloads and index, on a thread of its own.
//!
//! Nothing outside this module touches a partition's state: callers hold a
//! [`PartitionRef`] and send [`PartitionMsg`]s through a bounded mailbox. A full mailbox
//! is an explicit, retryable "overloaded" error, never a silent drop or an unbounded queue.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use ametist_core::filter::Filter;
use ametist_core::hnsw::{CodeUse, Quantization};
use ametist_core::payload_index::{values_at, FieldType, PayloadIndex};
use ametist_core::text::{TextIndex, TextIndexConfig};
use ametist_core::{Metric, Payload, PointId};

use crate::codec::{self, PartitionImage};
use crate::config::{IndexConfig, IndexKind, SparseVectorParams, SupervisionPolicy, VectorParams, EF_SEARCH_RANGE};
use crate::error::EngineError;
use crate::messages::{
    Append, DeleteVector, Fault, FilterAction, IndexStats, LoggedWrite, NamedVectors, PartitionDigest,
    PartitionInstall, PartitionMsg, PartitionRestore, PartitionSnapshot, Record, Reply, ScoredDoc, ScrollRequest,
    SearchRequest, SparseSearchRequest, TextSearchRequest, WriteAck, WriteOp,
};
use crate::read_pool::{Handed, ReadOnly, ReadSide};
use crate::store::{Base, PartitionStore, Recovered, StoreFailure};
use crate::supervisor::{supervise, ActorState, PartitionStatus, RunEnd, StorageErrorInfo, StorageProblem};
use crate::vector_fields::{Plan, VectorFields};

/// A stable handle to a partition actor. It stays valid across restarts: the supervisor
/// resumes a restarted actor on the same mailbox.
#[derive(Clone)]
pub struct PartitionRef {
    id: usize,
    tx: mpsc::Sender<PartitionMsg>,
    status: Arc<PartitionStatus>,
    capacity: usize,
    /// Where read-only messages run concurrently while the actor runs.
    reads: Arc<ReadSide<PartitionActor>>,
    /// Served by something other than a local actor (see [`PartitionRef::external`]).
    external: bool,
}

/// The largest beam of a search that [`PartitionPermit::send_here`] runs on an async
/// worker without handing the worker over (a graph walk at this `ef` takes about a
/// millisecond on 784-dimensional vectors).
const SHORT_SEARCH_EF: usize = 256;

/// A place reserved in a partition's mailbox (see [`PartitionRef::try_reserve`]).
pub struct PartitionPermit<'a> {
    permit: mpsc::Permit<'a, PartitionMsg>,
    partition: &'a PartitionRef,
}

impl PartitionPermit<'_> {
    /// Sends the message. A read-only one runs on the search pool when the partition is
    /// running and nothing is queued before it; everything else goes through the mailbox.
    pub fn send(self, msg: PartitionMsg) {
        // A read given to the pool runs there.
        drop(self.send_or_run(msg, false));
    }

    /// Like [`PartitionPermit::send`], but a read-only message that would go to the search
    /// pool runs on the calling thread instead, which saves two thread wake-ups. Inside a
    /// multi-threaded tokio runtime, a search that is sure to be short (a graph walk without
    /// a filter, at a moderate `ef`: well under a millisecond) runs on the worker as is;
    /// anything that may take longer (exact scans, filters, huge beams) hands the worker
    /// over first (`block_in_place`), which costs a thread hand-off per call. In a
    /// current-thread runtime the message is sent as usual.
    pub fn send_here(self, msg: PartitionMsg) {
        match RunHere::for_message(&msg) {
            RunHere::AsIs => drop(self.send_or_run(msg, true)),
            RunHere::HandingOver => tokio::task::block_in_place(|| drop(self.send_or_run(msg, true))),
            RunHere::Never => drop(self.send_or_run(msg, false)),
        }
    }

    /// Like [`PartitionPermit::send`], but when the message goes to the search pool, the
    /// returned [`Reclaimable`] lets the caller run it itself as long as no search thread
    /// has started it.
    pub(crate) fn send_reclaimable(self, msg: PartitionMsg) -> Option<Reclaimable> {
        let here = RunHere::for_message(&msg);
        self.send_or_run(msg, false).map(|handed| Reclaimable { handed, here })
    }

    fn send_or_run(self, msg: PartitionMsg, here: bool) -> Option<Handed> {
        let msg = if msg.is_read_only() {
            let p = self.partition;
            match p.reads.try_dispatch(msg, &p.tx, here) {
                Ok(handed) => return handed,
                Err(msg) => msg,
            }
        } else {
            self.partition.reads.write_sent();
            msg
        };
        self.permit.send(msg);
        None
    }
}

/// A read given to the search pool by [`PartitionPermit::send_reclaimable`].
pub(crate) struct Reclaimable {
    handed: Handed,
    here: RunHere,
}

impl Reclaimable {
    /// Runs the read on this thread, under the rules of [`PartitionPermit::send_here`], if
    /// no search thread has started it yet; otherwise leaves it to the pool.
    pub(crate) fn reclaim(self) {
        match self.here {
            RunHere::AsIs => {
                if let Some(job) = self.handed.take_back() {
                    job();
                }
            }
            // Checked first so that the worker is handed over only for a read still to run.
            RunHere::HandingOver => {
                if let Some(job) = self.handed.take_back() {
                    tokio::task::block_in_place(job);
                }
            }
            RunHere::Never => {}
        }
    }
}

/// Whether the calling thread may run a read itself, and how.
#[derive(Clone, Copy)]
enum RunHere {
    /// Outside any runtime, or a short search on a multi-threaded runtime's worker.
    AsIs,
    /// On a multi-threaded runtime's worker, after handing the worker over.
    HandingOver,
    /// Never: the thread is a current-thread runtime's only one.
    Never,
}

impl RunHere {
    fn for_message(msg: &PartitionMsg) -> RunHere {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let short = matches!(msg, PartitionMsg::Search(req, _)
            if req.filter.is_none() && !req.exact && req.ef.is_none_or(|ef| ef <= SHORT_SEARCH_EF));
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) if short => RunHere::AsIs,
            Ok(RuntimeFlavor::MultiThread) => RunHere::HandingOver,
            Ok(_) => RunHere::Never,
            Err(_) => RunHere::AsIs,
        }
    }
}

/// A snapshot of a partition's health, for the partitions route and metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionInfo {
    pub id: usize,
    pub state: ActorState,
    pub restarts: u32,
    pub mailbox_depth: usize,
    pub mailbox_capacity: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// Why the partition is read-only (its storage cannot be written), while it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_error: Option<StorageErrorInfo>,
}

/// What a partition needs to know about its collection.
#[derive(Debug, Clone)]
pub struct PartitionSpec {
    pub collection: String,
    pub id: usize,
    pub dim: usize,
    pub metric: Metric,
    pub index: IndexConfig,
    pub mailbox: usize,
    pub policy: SupervisionPolicy,
    /// The collection's indexed payload fields, shared with the coordinator, so that a
    /// restarted actor re-creates indexes made after it was first started.
    pub payload_schema: Arc<RwLock<BTreeMap<String, FieldType>>>,
    /// The collection's full-text indexed fields, shared the same way.
    pub text_schema: Arc<RwLock<BTreeMap<String, TextIndexConfig>>>,
    /// Named dense vectors (`dim` 0 means the collection has only these).
    pub vectors: BTreeMap<String, VectorParams>,
    /// Named sparse vectors.
    pub sparse_vectors: BTreeMap<String, SparseVectorParams>,
}

impl PartitionSpec {
    /// Every dense field, the unnamed one (`""`) included.
    pub fn dense_fields(&self) -> BTreeMap<String, VectorParams> {
        crate::config::dense_fields(self.dim, self.metric, &self.vectors)
    }
}

/// Starts a partition actor under supervision. The returned join handle finishes when the
/// partition has stopped for good.
pub fn spawn_partition(spec: PartitionSpec, store: Arc<dyn PartitionStore>) -> (PartitionRef, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(spec.mailbox.max(1));
    let status = Arc::new(PartitionStatus::new());
    let reads = Arc::new(ReadSide::new(spec.id, spec.mailbox.max(1)));
    let handle = PartitionRef {
        id: spec.id,
        tx,
        status: status.clone(),
        capacity: spec.mailbox.max(1),
        reads: reads.clone(),
        external: false,
    };
    let name = format!("{}/{}", spec.collection, spec.id);
    let thread = std::thread::Builder::new()
        .name(format!("partition-{name}"))
        .spawn(move || {
            // The mailbox outlives each actor incarnation: a restarted actor resumes on it.
            let rx = std::cell::RefCell::new(rx);
            supervise(
                &name,
                spec.policy,
                &status,
                || PartitionActor::recover(&spec, store.clone()),
                |(actor, failed)| {
                    let state = Arc::new(RwLock::new(actor));
                    let _published = reads.publish(state.clone());
                    PartitionActor::run(&state, &reads, &mut rx.borrow_mut(), &status, failed)
                },
                || {
                    // Close and drain: queued callers see their reply dropped at once
                    // instead of waiting out their deadline.
                    let mut rx = rx.borrow_mut();
                    rx.close();
                    while rx.try_recv().is_ok() {}
                },
            );
        })
        .expect("spawning a partition thread only fails when the OS is out of threads");
    (handle, thread)
}

impl PartitionRef {
    /// A handle whose mailbox is served by something other than a local actor: a partition
    /// on another node, whose proxy (in `ametist-cluster`) owns the returned receiver and
    /// answers every message's reply. The coordinator cannot tell it from a local
    /// partition. Its status reads "running"; the proxy may publish a stop through it.
    pub fn external(id: usize, capacity: usize) -> (PartitionRef, mpsc::Receiver<PartitionMsg>, Arc<PartitionStatus>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let status = Arc::new(PartitionStatus::new());
        status.set_state(ActorState::Running);
        // Nothing is ever published on its read side: every message goes through the
        // mailbox to the proxy.
        let reads = Arc::new(ReadSide::new(id, capacity.max(1)));
        (PartitionRef { id, tx, status: status.clone(), capacity: capacity.max(1), reads, external: true }, rx, status)
    }

    pub fn id(&self) -> usize {
        self.id
    }

    /// True for a partition served elsewhere (another node), false for a local actor.
    pub fn is_external(&self) -> bool {
        self.external
    }

    /// Reserves a place in the mailbox without waiting. Reserving first lets the
    /// coordinator send a multi-partition write only when every partition can take it.
    pub fn try_reserve(&self) -> Result<PartitionPermit<'_>, EngineError> {
        let permit = self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => EngineError::Overloaded(format!(
                "partition {} has {} messages waiting (its mailbox bound)",
                self.id, self.capacity
            )),
            mpsc::error::TrySendError::Closed(()) => self.unavailable(),
        })?;
        Ok(PartitionPermit { permit, partition: self })
    }

    /// The raw mailbox, for senders that may wait for room (shutdown).
    pub(crate) fn sender(&self) -> &mpsc::Sender<PartitionMsg> {
        &self.tx
    }

    /// Sends a message, failing at once if the mailbox is full or closed.
    pub fn try_send(&self, msg: PartitionMsg) -> Result<(), EngineError> {
        self.try_reserve()?.send(msg);
        Ok(())
    }

    /// The error a caller reports when this partition dropped its reply or is closed.
    pub fn unavailable(&self) -> EngineError {
        let reason = match self.status.state() {
            ActorState::Stopped => self.status.stop_reason().unwrap_or_else(|| "stopped".to_string()),
            _ => match self.status.last_failure() {
                Some(f) => format!("failed while handling the request ({f}); restarting"),
                None => "failed while handling the request; restarting".to_string(),
            },
        };
        EngineError::PartitionUnavailable { partition: self.id, reason }
    }

    pub fn info(&self) -> PartitionInfo {
        PartitionInfo {
            id: self.id,
            state: self.status.state(),
            restarts: self.status.restarts(),
            mailbox_depth: self.capacity - self.tx.capacity().min(self.capacity),
            mailbox_capacity: self.capacity,
            last_failure: self.status.last_failure(),
            stop_reason: self.status.stop_reason(),
            storage_error: self.status.storage_error(),
        }
    }

    /// While the partition is read-only (its storage cannot be written, say the disk is
    /// full), the error a write to it gets at once, before anything is sent anywhere.
    pub fn write_refusal(&self) -> Option<EngineError> {
        if self.status.state() != ActorState::ReadOnly {
            return None;
        }
        let e = self.status.storage_error()?;
        Some(EngineError::StorageUnavailable {
            partition: Some(self.id),
            message: format!(
                "not written: {}; nothing of this request was acknowledged; the partition answers reads and \
                 retries its log by itself (next attempt in {}); retry later",
                e.reason,
                seconds(e.next_retry_ms)
            ),
        })
    }
}

/// Milliseconds as a short duration for messages: "2s", "0.3s".
fn seconds(ms: u64) -> String {
    if ms >= 10_000 || ms.is_multiple_of(1000) {
        format!("{}s", ms.div_ceil(1000))
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// A live point: its id, the operation that last wrote it, its payload. Its vectors live
/// in the fields' indexes, keyed by the point's slot.
struct Entry {
    id: PointId,
    version: u64,
    payload: Option<Payload>,
}

/// The actor's state. Built only by [`PartitionActor::recover`], changed only by its handler.
struct PartitionActor {
    spec: PartitionSpec,
    store: Arc<dyn PartitionStore>,
    /// Id → slot, in id order (scroll pages walk it).
    slots: BTreeMap<PointId, u32>,
    /// Slot → entry; `None` for free slots.
    entries: Vec<Option<Entry>>,
    /// Every vector field, dense (the unnamed vector is the field `""`) and sparse, keyed
    /// by point slot.
    fields: VectorFields,
    /// Point slots freed by deletes, reused by the next inserts.
    free_slots: Vec<u32>,
    payload_index: PayloadIndex,
    /// BM25 indexes by payload key.
    text_indexes: BTreeMap<String, TextIndex>,
    /// The last operation applied; with a durable store, the LSN of its WAL record.
    version: u64,
    /// Writes applied and appended to the store, waiting for the group's commit.
    pending: Vec<Pending>,
}

/// A write waiting for its group's commit, with the answer it gets once the group is durable.
enum Pending {
    Ack(Reply<WriteAck>, WriteAck),
    Logged(Reply<LoggedWrite>, LoggedWrite),
}

impl Pending {
    fn succeed(self) {
        match self {
            Pending::Ack(reply, ack) => drop(reply.send(Ok(ack))),
            Pending::Logged(reply, logged) => drop(reply.send(Ok(logged))),
        }
    }

    fn fail(self, e: EngineError) {
        match self {
            Pending::Ack(reply, _) => drop(reply.send(Err(e))),
            Pending::Logged(reply, _) => drop(reply.send(Err(e))),
        }
    }
}

/// How many queued messages one group commit takes at most.
const GROUP_MAX: usize = 256;

/// How many points a filter is tried on to estimate how many match.
const FILTER_SAMPLE: usize = 256;

impl PartitionActor {
    /// Builds the actor's state from its store: the snapshot (or points) it holds, then
    /// the log after it, batch by batch. When the store cannot be opened for writing (a full
    /// disk), the state is read without writing anything and the actor starts read-only,
    /// with the failure returned: it retries the log by itself.
    fn recover(spec: &PartitionSpec, store: Arc<dyn PartitionStore>) -> Result<(Self, Option<StoreFailure>), String> {
        match store.recover() {
            Ok(recovered) => Ok((Self::build(spec, store, recovered)?, None)),
            Err(e @ EngineError::StorageUnavailable { .. }) => {
                let recovered = store
                    .recover_read_only()
                    .map_err(|r| format!("{e}; reading the state without writing failed too: {r}"))?;
                let failure = store.failed().unwrap_or(StoreFailure { reason: e.to_string(), disk_full: false });
                tracing::warn!(
                    partition = %format!("{}/{}", spec.collection, spec.id),
                    reason = %failure.reason,
                    "storage cannot be written: starting read-only; the log is retried by itself"
                );
                Ok((Self::build(spec, store, recovered)?, Some(failure)))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Builds the actor's state from what its store recovered.
    fn build(spec: &PartitionSpec, store: Arc<dyn PartitionStore>, recovered: Recovered) -> Result<Self, String> {
        let started = std::time::Instant::now();
        let mut actor = PartitionActor {
            spec: spec.clone(),
            store,
            slots: BTreeMap::new(),
            entries: Vec::new(),
            fields: VectorFields::new(&spec.dense_fields(), &spec.sparse_vectors, &spec.index),
            free_slots: Vec::new(),
            payload_index: PayloadIndex::new(),
            text_indexes: BTreeMap::new(),
            version: 0,
            pending: Vec::new(),
        };
        // Field indexes first, empty: inserting the points (or adopting an image) fills them.
        let schema = spec.payload_schema.read().expect("the schema lock is never held across a panic").clone();
        for (key, kind) in schema {
            actor.payload_index.create_field(&key, kind, std::iter::empty());
        }
        actor.reset_text_indexes()?;
        let from_snapshot = matches!(recovered.base, Base::Image(_));
        match recovered.base {
            Base::Empty => {}
            Base::Points(points) => {
                actor.insert_fresh(points.into_iter().map(|(id, p)| (id, p.payload, p.version, p.vectors)).collect())
            }
            Base::Image(image) => actor.adopt(*image)?,
        }
        let replayed = recovered.replay.len();
        for (lsn, ops) in recovered.replay {
            actor.check(&ops).map_err(|e| format!("WAL record {lsn} does not apply to the state before it: {e}"))?;
            actor.apply(ops, lsn);
        }
        actor.version = recovered.version;
        let level = if actor.store.is_durable() { tracing::Level::INFO } else { tracing::Level::DEBUG };
        let partition = format!("{}/{}", spec.collection, spec.id);
        let (points, ms) = (actor.slots.len(), started.elapsed().as_millis() as u64);
        if level == tracing::Level::INFO {
            tracing::info!(%partition, points, version = actor.version, from_snapshot, replayed, ms, "recovered");
        } else {
            tracing::debug!(%partition, points, version = actor.version, from_snapshot, replayed, ms, "recovered");
        }
        Ok(actor)
    }

    /// Replaces the state with a snapshot image (whose entries and fields were validated).
    fn adopt(&mut self, image: PartitionImage) -> Result<(), String> {
        if image.dim != self.spec.dim || image.metric != self.spec.metric {
            return Err(format!(
                "the snapshot holds {}-dimensional {:?} vectors, the partition {}-dimensional {:?}",
                image.dim, image.metric, self.spec.dim, self.spec.metric
            ));
        }
        let PartitionImage { entries, mut fields, version, .. } = image;
        fields.conform(&self.spec.dense_fields(), &self.spec.sparse_vectors, &self.spec.index)?;
        self.slots.clear();
        self.entries.clear();
        let top = entries.iter().map(|e| e.slot as usize + 1).max().unwrap_or(0);
        self.entries.resize_with(top, || None);
        for e in entries {
            self.slots.insert(e.id.clone(), e.slot);
            self.entries[e.slot as usize] = Some(Entry { id: e.id, version: e.version, payload: e.payload });
        }
        self.fields = fields;
        self.free_slots =
            (0..self.entries.len() as u32).rev().filter(|&s| self.entries[s as usize].is_none()).collect();
        self.version = version;
        // Payload and text indexes are not in the image: rebuild them from the entries.
        let schema = self.payload_index.fields();
        self.payload_index = PayloadIndex::new();
        for (key, kind) in schema {
            self.create_field_index(&key, kind);
        }
        self.reset_text_indexes()?;
        let live: Vec<(u32, Option<Payload>)> = self.live().map(|(s, e)| (s, e.payload.clone())).collect();
        if !self.text_indexes.is_empty() {
            for (slot, payload) in live {
                self.index_text(slot, payload.as_ref());
            }
        }
        Ok(())
    }

    /// Empty text indexes for every text field of the collection's schema.
    fn reset_text_indexes(&mut self) -> Result<(), String> {
        let text_schema = self.spec.text_schema.read().expect("the schema lock is never held across a panic").clone();
        self.text_indexes.clear();
        for (key, config) in text_schema {
            let index = TextIndex::new(config).map_err(|e| format!("text index `{key}`: {e}"))?;
            self.text_indexes.insert(key, index);
        }
        Ok(())
    }

    /// Takes messages until told to stop. Writes are grouped: the messages already queued
    /// (up to [`GROUP_MAX`]) are taken together under the state's write lock, each write is
    /// checked, appended to the store and applied, then one commit makes the group durable
    /// and only then are the writes acknowledged. The commit (an fsync) runs after the lock
    /// is released, so concurrent reads go on meanwhile; reads may see writes that are
    /// applied but not yet committed, as reads in the group always could. Any message other
    /// than a write or a read ends a group that holds writes: it is handled first in the
    /// next group, after the commit.
    ///
    /// When the log fails (a full disk), the writers of the group get an error saying the
    /// outcome is unknown, the state goes back to what is durable ([`Self::roll_back`]) and
    /// the partition turns read-only: reads are answered, writes refused at once, and the
    /// log is retried with a backoff ([`Self::try_resume`]) until it takes writes again.
    /// `failed` is set when the actor was started read-only.
    fn run(
        state: &RwLock<Self>,
        reads: &ReadSide<Self>,
        rx: &mut mpsc::Receiver<PartitionMsg>,
        status: &PartitionStatus,
        failed: Option<StoreFailure>,
    ) -> RunEnd {
        let mut log = LogHealth::new(status);
        match failed {
            Some(failure) => log.failed(failure),
            None => status.set_storage(None),
        }
        let (store, id) = {
            let actor = state.read().expect("a poisoned lock belongs to a run that panicked and ended");
            (actor.store.clone(), actor.spec.id)
        };
        let mut timer = None;
        let mut carried: Option<PartitionMsg> = None;
        loop {
            let first = match carried.take() {
                Some(msg) => msg,
                None => match next_message(rx, log.retry_at(), &mut timer) {
                    Next::Msg(msg) => msg,
                    Next::Closed => break,
                    Next::Retry => {
                        Self::try_resume(state, &mut log);
                        continue;
                    }
                },
            };
            let mut actor = state.write().expect("a poisoned lock belongs to a run that panicked and ended");
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(msg) = next.take() {
                let ends_group = !msg.is_read_only()
                    && !matches!(
                        msg,
                        PartitionMsg::Write(..)
                            | PartitionMsg::WriteLogged(..)
                            | PartitionMsg::Append(..)
                            | PartitionMsg::Tick
                    );
                if ends_group && !actor.pending.is_empty() {
                    // Handled after the commit, so that it sees only durable writes (and a
                    // failed commit is rolled back before it).
                    carried = Some(msg);
                    break;
                }
                taken += 1;
                if !msg.is_read_only() && !matches!(msg, PartitionMsg::Stop) {
                    reads.write_taken();
                }
                match msg {
                    PartitionMsg::Write(ops, reply) => match log.refusal(id) {
                        Some(e) => drop(reply.send(Err(e))),
                        None => match actor.write(ops, false) {
                            Ok(logged) => actor.pending.push(Pending::Ack(reply, logged.ack)),
                            Err(e) => drop(reply.send(Err(e))),
                        },
                    },
                    PartitionMsg::WriteLogged(ops, reply) => match log.refusal(id) {
                        Some(e) => drop(reply.send(Err(e))),
                        None => match actor.write(ops, true) {
                            Ok(logged) => actor.pending.push(Pending::Logged(reply, logged)),
                            Err(e) => drop(reply.send(Err(e))),
                        },
                    },
                    PartitionMsg::Append(record, reply) => match log.refusal(id) {
                        Some(e) => drop(reply.send(Err(e))),
                        None => match actor.append(record) {
                            Ok(Some(ack)) => actor.pending.push(Pending::Ack(reply, ack)),
                            // A record the copy already has: durable once the records
                            // before it are, so it waits for this group's commit too.
                            Ok(None) => {
                                let ack = WriteAck { operation_id: actor.version, completed: true };
                                actor.pending.push(Pending::Ack(reply, ack));
                            }
                            Err(e) => drop(reply.send(Err(e))),
                        },
                    },
                    PartitionMsg::Stop => {
                        if log.is_ok() {
                            actor.snapshot_on_stop();
                        }
                        return RunEnd::Stopped;
                    }
                    PartitionMsg::Restore(_, reply) if !log.is_ok() => {
                        let e = log.refusal(id).expect("the log is not ok");
                        drop(reply.send(Err(e)));
                    }
                    msg if msg.is_read_only() => actor.read(msg),
                    msg => actor.handle(msg),
                }
                if taken < GROUP_MAX {
                    next = rx.try_recv().ok();
                }
            }
            let pending = std::mem::take(&mut actor.pending);
            drop(actor);
            let wrote = !pending.is_empty();
            if let Err(failure) = commit_pending(&*store, id, pending) {
                Self::roll_back(state, &mut log, failure);
                continue;
            }
            if wrote {
                log.committed();
            }
            // A failed truncation after a snapshot, or a restore, can fail the store too.
            if let Some(failure) = store.failed().filter(|_| log.is_ok()) {
                Self::roll_back(state, &mut log, failure);
                continue;
            }
            if log.is_ok() && store.snapshot_due() {
                // A snapshot only reads the state: searches go on while it is written.
                let actor = state.read().expect("a poisoned lock belongs to a run that panicked and ended");
                if let Err(e) = actor.take_snapshot() {
                    tracing::error!(partition = %actor.name(), error = %e, "periodic snapshot failed; the log is kept");
                }
                drop(actor);
                if let Some(failure) = store.failed() {
                    Self::roll_back(state, &mut log, failure);
                }
            }
        }
        RunEnd::Stopped
    }

    /// After the log failed: the partition turns read-only, and its state goes back to what
    /// is durable. The store drops the failed log and, when the state holds writes that are
    /// not durable (the failed group's), reads the durable state without writing anything;
    /// the new state is built beside the old one, which keeps answering reads meanwhile
    /// (those reads may still see the failed group's writes, as reads inside a group always
    /// could; their writers were told the outcome is unknown), then replaces it.
    fn roll_back(state: &RwLock<Self>, log: &mut LogHealth<'_>, failure: StoreFailure) {
        let (spec, store, applied, name) = {
            let actor = state.read().expect("a poisoned lock belongs to a run that panicked and ended");
            (actor.spec.clone(), actor.store.clone(), actor.version, actor.name())
        };
        tracing::error!(partition = %name, reason = %failure.reason, "the log failed: read-only until it can be written again");
        log.failed(failure);
        let recovered = match store.close_log(applied) {
            Ok(None) => return,
            Ok(Some(recovered)) => recovered,
            // Reading what is durable failed too: only a restart from disk is left.
            Err(e) => panic!("the log failed and the durable state cannot be read back: {e}"),
        };
        let fresh = match Self::build(&spec, store, recovered) {
            Ok(fresh) => fresh,
            Err(e) => panic!("the log failed and the durable state does not rebuild: {e}"),
        };
        tracing::info!(partition = %name, from = applied, to = fresh.version, "state rolled back to what is durable");
        *state.write().expect("a poisoned lock belongs to a run that panicked and ended") = fresh;
    }

    /// Tries to reopen the log (see [`PartitionStore::reopen`]); on success the batches the
    /// log holds beyond the state (written before the failure, durable after all) are
    /// applied and the partition takes writes again; otherwise the next try is scheduled.
    fn try_resume(state: &RwLock<Self>, log: &mut LogHealth<'_>) {
        let (store, applied, name) = {
            let actor = state.read().expect("a poisoned lock belongs to a run that panicked and ended");
            (actor.store.clone(), actor.version, actor.name())
        };
        match store.reopen(applied) {
            Ok(replay) => {
                if !replay.is_empty() {
                    let mut actor = state.write().expect("a poisoned lock belongs to a run that panicked and ended");
                    for (lsn, ops) in replay {
                        if let Err(e) = actor.check(&ops) {
                            panic!("WAL record {lsn} found on reopening does not apply to the state before it: {e}");
                        }
                        actor.apply(ops, lsn);
                        actor.version = lsn;
                    }
                }
                tracing::info!(partition = %name, "the log can be written again: taking writes");
                log.resumed();
            }
            // The log on disk and the state disagree: rebuild everything from disk.
            Err(e @ EngineError::Internal(_)) => panic!("reopening the log: {e}"),
            Err(e) => {
                let failure = store.failed().unwrap_or(StoreFailure { reason: e.to_string(), disk_full: false });
                tracing::warn!(partition = %name, reason = %failure.reason, "the log still cannot be written");
                log.retry_failed(failure);
            }
        }
    }

    fn name(&self) -> String {
        format!("{}/{}", self.spec.collection, self.spec.id)
    }

    /// A clean shutdown writes a snapshot when the log holds writes since the last one, so
    /// that the next start does not replay them. A snapshot that fails (a full disk) keeps
    /// the log, which the next start replays.
    fn snapshot_on_stop(&mut self) {
        if self.store.is_durable() && self.store.snapshot_due_on_stop() {
            if let Err(e) = self.take_snapshot() {
                tracing::warn!(partition = %self.name(), error = %e, "snapshot at shutdown failed; the log is kept");
            }
        }
    }

    /// Writes a durable snapshot of the committed state and lets the store drop the log it
    /// covers.
    fn take_snapshot(&self) -> Result<bool, EngineError> {
        let version = self.version;
        let entries: Vec<(u32, u64, &PointId, Option<&Payload>)> =
            self.live().map(|(slot, e)| (slot, e.version, &e.id, e.payload.as_ref())).collect();
        let (dim, metric, fields) = (self.spec.dim, self.spec.metric, &self.fields);
        self.store
            .snapshot(version, &mut |w| codec::write_image(w, dim, metric, version, entries.iter().copied(), fields))
    }

    fn handle(&mut self, msg: PartitionMsg) {
        match msg {
            PartitionMsg::Write(..) | PartitionMsg::WriteLogged(..) | PartitionMsg::Append(..) => {
                unreachable!("writes are grouped and committed by run")
            }
            msg @ (PartitionMsg::Search(..)
            | PartitionMsg::Get { .. }
            | PartitionMsg::Scroll(..)
            | PartitionMsg::Count(..)
            | PartitionMsg::TextStats { .. }
            | PartitionMsg::TextSearch(..)
            | PartitionMsg::SparseStats { .. }
            | PartitionMsg::SparseSearch(..)
            | PartitionMsg::Stats(..)
            | PartitionMsg::Digest(..)) => self.read(msg),
            PartitionMsg::CreateFieldIndex { key, kind, reply } => {
                self.create_field_index(&key, kind);
                let _ = reply.send(Ok(()));
            }
            PartitionMsg::DropFieldIndex { key, reply } => {
                self.payload_index.drop_field(&key);
                self.text_indexes.remove(&key);
                let _ = reply.send(Ok(()));
            }
            PartitionMsg::CreateTextIndex { key, config, reply } => {
                let _ = reply.send(self.create_text_index(&key, config));
            }
            PartitionMsg::RebuildIndex(_, reply) => {
                self.fields.rebuild(build_threads(self.slots.len()));
                let _ = reply.send(Ok(self.stats()));
            }
            PartitionMsg::Snapshot(req, reply) => {
                let _ = reply.send(self.snapshot(&req));
            }
            PartitionMsg::Restore(req, reply) => {
                // A store that failed on the way is noticed by `run` after this group.
                let _ = reply.send(self.restore(&req));
            }
            PartitionMsg::Install(req, reply) => {
                let _ = reply.send(self.install(&req));
            }
            PartitionMsg::ReadLog { after, reply } => {
                let records = self
                    .store
                    .read_log(after)
                    .map(|r| r.map(|batches| batches.into_iter().map(|(lsn, ops)| Append { lsn, ops }).collect()));
                let _ = reply.send(records);
            }
            PartitionMsg::Tick => {}
            PartitionMsg::Fault(Fault::Panic(msg)) => panic!("injected fault: {msg}"),
            PartitionMsg::Fault(Fault::Stall(d)) => std::thread::sleep(d),
            PartitionMsg::Stop => unreachable!("handled by run"),
        }
    }

    fn live(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.entries.iter().enumerate().filter_map(|(slot, e)| e.as_ref().map(|e| (slot as u32, e)))
    }

    /// A search by one dense field (`req.using`; `""` is the unnamed vector): one planner
    /// and one path for every dense field. Points without the field are not seen.
    fn search(&self, req: &SearchRequest) -> Result<Vec<ScoredDoc>, EngineError> {
        if let Some(q) = &req.examples {
            return self.search_examples(req, q);
        }
        let field = req.using.as_str();
        let metric = self.fields.metric(field)?;
        let want = req.offset.saturating_add(req.k);
        let filter = req.filter.as_ref();
        let (ef, codes) = self.beam(req, want, self.fields.quantization(field)?);
        let (plan, candidates) = self.plan(req, filter, ef, self.fields.dense_len(field)?);
        // With index candidates, a bitmap rejects most non-matching nodes before the
        // (costlier) full filter is evaluated on a payload.
        let allowed: Option<Vec<bool>> = candidates.map(|c| {
            let mut bits = vec![false; self.entries.len()];
            c.iter().for_each(|&s| bits[s as usize] = true);
            bits
        });
        // When the indexes answer the filter exactly, their candidates (or the bitmap of
        // them) are the whole check: no payload is read.
        let covered = filter.is_some_and(|f| self.payload_index.covers(f));
        let scoring_candidates = matches!(plan, Plan::Candidates(_));
        let accept = |slot: u32| match (filter, self.entries.get(slot as usize)) {
            (_, None | Some(None)) => false,
            (None, Some(Some(_))) => true,
            (Some(f), Some(Some(e))) => match &allowed {
                Some(bits) if covered => bits[slot as usize],
                Some(bits) => bits[slot as usize] && self.passes(f, slot, e),
                // Candidates of a covered filter match by construction.
                None if covered && scoring_candidates => true,
                // A walk over a broad indexed filter checks the nodes it visits in the
                // index: listing every match first would cost more than the walk.
                None if covered => self.payload_index.covered_match(f, slot),
                None => self.passes(f, slot, e),
            },
        };
        let accept_dyn: Option<&dyn Fn(u32) -> bool> = if filter.is_some() { Some(&accept) } else { None };
        let hits = self.fields.search_dense(field, &req.query_vector, want, &plan, codes, accept_dyn)?;
        let threshold = req.score_threshold;
        Ok(hits
            .into_iter()
            .map(|c| (c.slot, metric.score(c.distance)))
            .filter(|(_, score)| match threshold {
                None => true,
                Some(t) if metric.higher_is_better() => *score >= t,
                Some(t) => *score <= t,
            })
            .map(|(slot, score)| self.scored(slot, score, req.with_payload, req.with_vector))
            .collect())
    }

    /// An example query (see `scoring.rs`): every matching point with the field, scored
    /// exactly; higher is better whatever the metric.
    fn search_examples(
        &self,
        req: &SearchRequest,
        q: &crate::messages::ExampleQuery,
    ) -> Result<Vec<ScoredDoc>, EngineError> {
        let field = req.using.as_str();
        let metric = self.fields.metric(field)?;
        let mut hits: Vec<(f32, u32)> = self
            .filtered_slots(req.filter.as_ref())
            .into_iter()
            .filter_map(|s| {
                self.fields.dense_vector(field, s).map(|v| (crate::scoring::example_score(metric, q, &v), s))
            })
            .filter(|(score, _)| req.score_threshold.is_none_or(|t| *score > t))
            .collect();
        let id = |s: u32| &self.entries[s as usize].as_ref().expect("live slot").id;
        hits.sort_by(|a, b| ametist_core::topk::compare(ametist_core::Metric::Dot, (a.0, id(a.1)), (b.0, id(b.1))));
        hits.truncate(req.offset.saturating_add(req.k));
        Ok(hits.into_iter().map(|(score, s)| self.scored(s, score, req.with_payload, req.with_vector)).collect())
    }

    /// The live slots `filter` lets through (all without one), in slot order.
    fn filtered_slots(&self, filter: Option<&Filter>) -> Vec<u32> {
        match filter {
            Some(f) => self.matching(f),
            None => self.live().map(|(s, _)| s).collect(),
        }
    }

    /// Exact scan or graph walk. Small partitions, flat collections and `exact` requests
    /// scan. With a filter, the number of matching points is estimated from a sample: few
    /// matches are scanned exactly (a graph walk would have to wade through many
    /// rejected nodes), many are walked with a beam widened for the rejected share.
    ///
    /// `live` is how many points have the searched field. Besides the plan, returns the
    /// candidates a payload index listed for a walk, to reject nodes early.
    fn plan(&self, req: &SearchRequest, filter: Option<&Filter>, ef: usize, live: usize) -> (Plan, Option<Vec<u32>>) {
        let exact_anyway =
            req.exact || self.spec.index.kind == IndexKind::Flat || live < self.spec.index.full_scan_threshold;
        let Some(f) = filter else {
            return (if exact_anyway { Plan::Exact } else { Plan::Graph { ef } }, None);
        };
        // The share of points the filter matches: counted from payload indexes when they
        // narrow it, else estimated from a sample.
        // One indexed condition: its posting lists count the matches exactly, without
        // listing them. Several: the estimate is only the smallest one's count, so the
        // candidates are listed and counted (an intersection can be far smaller).
        let conditions =
            f.must.as_ref().map_or(0, Vec::len) + f.should.as_ref().map_or(0, |s| usize::from(!s.is_empty()));
        let mut listed = None;
        let estimate = match self.payload_index.estimate(f) {
            Some(_) if conditions > 1 => {
                listed = self.payload_index.candidates(f);
                listed.as_ref().map(Vec::len)
            }
            e => e,
        };
        let share = match estimate {
            Some(n) => n as f64 / live.max(1) as f64,
            None => {
                let stride = (self.entries.len() / FILTER_SAMPLE).max(1);
                let (mut seen, mut hit) = (0usize, 0usize);
                for (slot, e) in self.entries.iter().enumerate().step_by(stride) {
                    if let Some(e) = e {
                        seen += 1;
                        hit += usize::from(self.passes(f, slot as u32, e));
                    }
                }
                if seen == 0 {
                    1.0
                } else {
                    hit as f64 / seen as f64
                }
            }
        };
        // A graph walk with a beam widened for the rejected share computes about
        // `ef * 2m / share` distances (it wades through rejected nodes), each dearer than
        // a sequential one (random access, heap upkeep: about twice); scoring the
        // candidates costs one distance each. Take the cheaper.
        let boosted_ef = ef.saturating_mul((1.0 / share.max(1e-9)).ceil().min(4.0) as usize);
        let walk_cost = (boosted_ef as f64 * (2 * self.spec.index.m) as f64 / share.max(1e-3) * 2.0) as usize;
        if let Some(n) = estimate {
            // Listed once: above for several conditions, here otherwise.
            let list = move || {
                listed.or_else(|| self.payload_index.candidates(f)).expect("the indexes bound this filter (estimate)")
            };
            if exact_anyway || n <= walk_cost.max(self.spec.index.full_scan_threshold) {
                return (Plan::Candidates(list()), None);
            }
            // A filter the indexes answer exactly is checked per visited node (see
            // `search`); another one gets a bitmap of its candidates to reject most
            // nodes before their payload is read.
            let candidates = if self.payload_index.covers(f) { None } else { Some(list()) };
            return (Plan::Graph { ef: boosted_ef }, candidates);
        }
        if exact_anyway || (share * live as f64) < self.spec.index.full_scan_threshold as f64 || share < 0.02 {
            return (Plan::Exact, None);
        }
        (Plan::Graph { ef: boosted_ef }, None)
    }

    /// Applies a batch: expands filter ops, checks that every op applies, records the
    /// batch in the store, then changes the state. Either all of it applies or nothing.
    /// The store only buffers the batch: the caller acknowledges it after the group's commit.
    /// With `keep_record` (a primary that ships it) the answer carries the record as
    /// logged; otherwise its `ops` are empty, so a write without replicas copies nothing.
    fn write(&mut self, ops: Vec<WriteOp>, keep_record: bool) -> Result<LoggedWrite, EngineError> {
        let ops = self.resolve(ops);
        self.check(&ops)?;
        if ops.is_empty() {
            let ack = WriteAck { operation_id: self.version, completed: true };
            return Ok(LoggedWrite { ack, lsn: None, ops });
        }
        let version = self.store.append(&ops)?;
        self.version = version;
        let record = if keep_record { ops.clone() } else { Vec::new() };
        self.apply(ops, version);
        Ok(LoggedWrite { ack: WriteAck { operation_id: version, completed: true }, lsn: Some(version), ops: record })
    }

    /// Appends a record shipped by the primary exactly at its LSN. `Ok(None)`: the copy
    /// already has it. A record that would leave a gap, or that the store would log at
    /// another LSN, is refused before anything changes.
    fn append(&mut self, record: Append) -> Result<Option<WriteAck>, EngineError> {
        let partition = self.spec.id;
        if record.lsn <= self.version {
            return Ok(None);
        }
        if record.lsn != self.version + 1 {
            return Err(EngineError::OutOfOrder { partition, expected: self.version + 1, got: record.lsn });
        }
        // Shipped records are expanded already; checking them against this copy's state
        // catches a copy that diverged from its primary.
        self.check(&record.ops)?;
        let next = self.store.next_lsn()?;
        if next != record.lsn {
            return Err(EngineError::OutOfOrder { partition, expected: next, got: record.lsn });
        }
        let version = self.store.append(&record.ops)?;
        debug_assert_eq!(version, record.lsn, "next_lsn said where the record goes");
        self.version = version;
        self.apply(record.ops, version);
        Ok(Some(WriteAck { operation_id: version, completed: true }))
    }

    /// Turns a batch into the per-id ops it stands for, against the state it meets: a
    /// filter op becomes one op per point matching before the batch; a conditional op
    /// becomes its op or nothing, judged against its point as the earlier ops of the batch
    /// leave it.
    ///
    /// The log records what this returns, never a filter or a condition. Evaluating the
    /// condition again on replay would give the same state too (a record is replayed onto
    /// exactly the state it was written against), but only for as long as every build
    /// evaluates filters exactly as this one; a resolved record replays by itself, on this
    /// partition after a crash and on a replica the primary ships it to, and the codec and
    /// the replicas' checks stay those of plain ops.
    fn resolve(&self, ops: Vec<WriteOp>) -> Vec<WriteOp> {
        let conditional = ops.iter().any(|op| matches!(op, WriteOp::Conditional { .. }));
        if !conditional && !ops.iter().any(|op| matches!(op, WriteOp::ByFilter { .. })) {
            return ops;
        }
        // Points as the batch has left them so far (`None`: deleted), kept only when a
        // condition may need them.
        let mut seen: HashMap<PointId, Option<Seen>> = HashMap::new();
        let mut out = Vec::with_capacity(ops.len());
        let mut push = |op: WriteOp, seen: &mut HashMap<PointId, Option<Seen>>| {
            if conditional {
                self.note(seen, &op);
            }
            out.push(op);
        };
        for op in ops {
            match op {
                WriteOp::ByFilter { filter, action } => {
                    for slot in self.matching(&filter) {
                        let id = self.entries[slot as usize].as_ref().expect("matching returns live slots").id.clone();
                        let op = match &action {
                            FilterAction::Delete => WriteOp::Delete(DeleteVector { id }),
                            FilterAction::SetPayload(p) => WriteOp::SetPayload { id, payload: p.clone() },
                            FilterAction::OverwritePayload(p) => WriteOp::OverwritePayload { id, payload: p.clone() },
                            FilterAction::DeletePayload(keys) => WriteOp::DeletePayload { id, keys: keys.clone() },
                            FilterAction::ClearPayload => WriteOp::ClearPayload { id },
                            FilterAction::DeleteVectors(names) => WriteOp::DeleteVectors { id, names: names.clone() },
                        };
                        push(op, &mut seen);
                    }
                }
                WriteOp::Conditional { when, op } => {
                    let id = op.id().expect("conditional ops name their point");
                    let admitted = match seen.get(id) {
                        Some(None) => when.admits(None),
                        Some(Some(s)) => when.admits(Some(&|f: &Filter| {
                            f.matches_point(id, s.payload.as_ref(), &|n| s.vectors.contains(n))
                        })),
                        None => match self.slots.get(id) {
                            None => when.admits(None),
                            Some(&slot) => {
                                let e = self.entries[slot as usize].as_ref().expect("slots point at live entries");
                                when.admits(Some(&|f: &Filter| self.passes(f, slot, e)))
                            }
                        },
                    };
                    if admitted {
                        push(*op, &mut seen);
                    }
                }
                op => push(op, &mut seen),
            }
        }
        out
    }

    /// Records in `seen` what `op` leaves of its point.
    fn note(&self, seen: &mut HashMap<PointId, Option<Seen>>, op: &WriteOp) {
        let Some(id) = op.id() else { return };
        let point = seen.entry(id.clone()).or_insert_with(|| {
            self.slots.get(id).map(|&slot| Seen {
                payload: self.entries[slot as usize].as_ref().and_then(|e| e.payload.clone()),
                vectors: self.fields.names_of(slot),
            })
        });
        let names = |v: &NamedVectors| v.dense.keys().chain(v.sparse.keys()).cloned().collect::<Vec<_>>();
        match (op, point.as_mut()) {
            (WriteOp::Insert(p), _) => {
                *point = Some(Seen { payload: p.metadata.clone(), vectors: names(&p.vectors).into_iter().collect() })
            }
            (WriteOp::Delete(_), _) => *point = None,
            (WriteOp::Update(u), Some(s)) => s.vectors.extend(names(&u.vectors)),
            (WriteOp::DeleteVectors { names, .. }, Some(s)) => s.vectors.retain(|n| !names.contains(n)),
            (payload_op, Some(s)) => payload_op.apply_to_payload(&mut s.payload),
            (_, None) => {}
        }
    }

    /// Checks a batch against the state it will meet, op by op: vectors are valid, and
    /// vector and payload updates name points that exist at that moment.
    fn check(&self, ops: &[WriteOp]) -> Result<(), EngineError> {
        let mut created: HashMap<&PointId, bool> = HashMap::new();
        for op in ops {
            let exists = |id: &PointId, created: &HashMap<&PointId, bool>| {
                created.get(id).copied().unwrap_or_else(|| self.slots.contains_key(id))
            };
            match op {
                WriteOp::Insert(p) => {
                    self.fields.check(&p.vectors)?;
                    created.insert(&p.id, true);
                }
                WriteOp::Delete(d) => {
                    created.insert(&d.id, false);
                }
                WriteOp::Update(u) => {
                    self.fields.check(&u.vectors)?;
                    if !exists(&u.id, &created) {
                        return Err(EngineError::PointNotFound(u.id.clone()));
                    }
                }
                WriteOp::DeleteVectors { id, names } => {
                    self.fields.check_names(names)?;
                    if !exists(id, &created) {
                        return Err(EngineError::PointNotFound(id.clone()));
                    }
                }
                WriteOp::ByFilter { .. } | WriteOp::Conditional { .. } => unreachable!("resolved before checking"),
                payload_op => {
                    let id = payload_op.id().expect("payload ops name their point");
                    if !exists(id, &created) {
                        return Err(EngineError::PointNotFound(id.clone()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies a checked batch. New points are gathered and linked into the graphs at the
    /// end in one parallel batch; later ops on a gathered point change it in place.
    fn apply(&mut self, ops: Vec<WriteOp>, version: u64) {
        let mut fresh: Vec<Option<FreshPoint>> = Vec::new();
        let mut fresh_pos: HashMap<PointId, usize> = HashMap::new();
        for op in ops {
            let id = op.id().expect("filter ops were expanded").clone();
            if let Some(&i) = fresh_pos.get(&id) {
                let f = fresh[i].as_mut().expect("a removed fresh point leaves fresh_pos");
                match op {
                    WriteOp::Insert(p) => *f = (p.id, p.metadata, version, p.vectors),
                    WriteOp::Update(u) => f.3.extend(u.vectors),
                    WriteOp::DeleteVectors { names, .. } => f.3.remove_names(&names),
                    WriteOp::Delete(_) => {
                        fresh[i] = None;
                        fresh_pos.remove(&id);
                    }
                    payload_op => payload_op.apply_to_payload(&mut f.1),
                }
                continue;
            }
            match (op, self.slots.get(&id).copied()) {
                (WriteOp::Insert(p), None) => {
                    fresh_pos.insert(id, fresh.len());
                    fresh.push(Some((p.id, p.metadata, version, p.vectors)));
                }
                (WriteOp::Insert(p), Some(slot)) => {
                    self.fields.set_all(slot, &p.vectors);
                    let e = self.entries[slot as usize].as_mut().expect("slots point at live entries");
                    e.payload = p.metadata;
                    e.version = version;
                    self.payload_index.remove(slot);
                    self.payload_index.insert(slot, e.payload.as_ref());
                    let payload = e.payload.clone();
                    self.index_text(slot, payload.as_ref());
                }
                (WriteOp::Update(u), Some(slot)) => {
                    self.fields.update(slot, &u.vectors);
                    self.entries[slot as usize].as_mut().expect("slots point at live entries").version = version;
                }
                (WriteOp::DeleteVectors { names, .. }, Some(slot)) => {
                    self.fields.remove_names(slot, &names);
                    self.entries[slot as usize].as_mut().expect("slots point at live entries").version = version;
                }
                (WriteOp::Delete(_), Some(slot)) => {
                    self.fields.remove(slot);
                    self.free_slots.push(slot);
                    self.payload_index.remove(slot);
                    for t in self.text_indexes.values_mut() {
                        t.remove(slot);
                    }
                    self.entries[slot as usize] = None;
                    self.slots.remove(&id);
                }
                (WriteOp::Delete(_), None) => {}
                (payload_op, Some(slot)) => {
                    let e = self.entries[slot as usize].as_mut().expect("slots point at live entries");
                    payload_op.apply_to_payload(&mut e.payload);
                    e.version = version;
                    self.payload_index.remove(slot);
                    self.payload_index.insert(slot, e.payload.as_ref());
                    let payload = e.payload.clone();
                    self.index_text(slot, payload.as_ref());
                }
                (_, None) => unreachable!("checked: updates name existing points"),
            }
        }
        self.insert_fresh(fresh.into_iter().flatten().collect());
    }

    /// Records new points in freed slots (then new ones) and links their vectors into the
    /// fields' indexes (in parallel for large batches).
    fn insert_fresh(&mut self, points: Vec<FreshPoint>) {
        if points.is_empty() {
            return;
        }
        let threads = build_threads(points.len());
        let mut vectors = Vec::with_capacity(points.len());
        for (id, payload, version, v) in points {
            let slot = self.free_slots.pop().unwrap_or(self.entries.len() as u32);
            let i = slot as usize;
            if i >= self.entries.len() {
                self.entries.resize_with(i + 1, || None);
            }
            vectors.push((slot, v));
            self.slots.insert(id.clone(), slot);
            self.payload_index.insert(slot, payload.as_ref());
            if !self.text_indexes.is_empty() {
                self.index_text(slot, payload.as_ref());
            }
            self.entries[i] = Some(Entry { id, version, payload });
        }
        self.fields.insert_new(&vectors, threads);
    }

    /// The beam width of a graph walk for `want` hits on an index with `quantization`, and
    /// how the walk uses codes: it reads them only when the index has them and the request
    /// does not `ignore` them. A walk on codes re-scores its whole beam (unless the request
    /// says `rescore: false`), so `oversampling` widens the beam: `want × oversampling`
    /// candidates, or `ef` when that is wider, are re-scored.
    fn beam(&self, req: &SearchRequest, want: usize, quantization: Quantization) -> (usize, CodeUse) {
        let codes = if quantization == Quantization::None { CodeUse::Ignore } else { req.quantization.code_use() };
        let oversampling = req.quantization.oversampling.filter(|_| codes == CodeUse::Rescore).unwrap_or(1.0).max(1.0);
        // No beam wider than the widest `ef` accepted (or than the hits wanted): anything
        // wider is an exact scan done slowly, with memory for the whole beam.
        let widest = (*EF_SEARCH_RANGE.end()).max(want);
        let beam = (want as f64 * oversampling as f64).ceil().min(widest as f64) as usize;
        (req.ef.unwrap_or(self.spec.index.ef_search).max(want).max(beam).min(widest), codes)
    }

    /// Sparse dot-product top-k, with collection-wide idf statistics in the request.
    fn sparse_search(&self, req: &SparseSearchRequest) -> Result<Vec<ScoredDoc>, EngineError> {
        let accept = self.live_matching(req.filter.as_ref());
        let hits = self.fields.search_sparse(&req.name, &req.query, &req.global, req.k, Some(&accept))?;
        Ok(hits.into_iter().map(|(slot, score)| self.scored(slot, score, req.with_payload, req.with_vector)).collect())
    }

    /// Whether a slot holds a live point that `filter` (if any) lets through, read from its
    /// payload: the check of the text and sparse searches.
    fn live_matching<'a>(&'a self, filter: Option<&'a Filter>) -> impl Fn(u32) -> bool + 'a {
        move |slot: u32| {
            self.entries
                .get(slot as usize)
                .and_then(Option::as_ref)
                .is_some_and(|e| filter.is_none_or(|f| self.passes(f, slot, e)))
        }
    }

    /// Whether the live point at `slot` passes `f`: its id, payload and vector fields.
    fn passes(&self, f: &Filter, slot: u32, e: &Entry) -> bool {
        f.matches_point(&e.id, e.payload.as_ref(), &|name| self.fields.has(slot, name))
    }

    fn scored(&self, slot: u32, score: f32, with_payload: bool, with_vector: bool) -> ScoredDoc {
        let e = self.entries[slot as usize].as_ref().expect("searches return only live slots");
        ScoredDoc {
            id: e.id.clone(),
            version: e.version,
            score,
            payload: if with_payload { Some(e.payload.clone().unwrap_or_default()) } else { None },
            vectors: with_vector.then(|| self.fields.get(slot)),
        }
    }

    /// Slots whose points match `filter`, using the payload indexes when they help.
    fn matching(&self, filter: &Filter) -> Vec<u32> {
        let check = |slot: u32| self.entries[slot as usize].as_ref().is_some_and(|e| self.passes(filter, slot, e));
        match self.payload_index.candidates(filter) {
            Some(cands) => cands.into_iter().filter(|&s| check(s)).collect(),
            None => self.live().map(|(s, _)| s).filter(|&s| check(s)).collect(),
        }
    }

    fn create_field_index(&mut self, key: &str, kind: FieldType) {
        let entries = &self.entries;
        let points = entries.iter().enumerate().filter_map(|(s, e)| e.as_ref().map(|e| (s as u32, e.payload.as_ref())));
        self.payload_index.create_field(key, kind, points);
    }

    fn create_text_index(&mut self, key: &str, config: TextIndexConfig) -> Result<(), EngineError> {
        let mut index = TextIndex::new(config).map_err(|e| EngineError::invalid(e.to_string()))?;
        for (slot, e) in self.live() {
            if let Some(text) = text_at(e.payload.as_ref(), key) {
                index.add(slot, &text);
            }
        }
        self.text_indexes.insert(key.to_string(), index);
        Ok(())
    }

    /// Brings every text index up to date with a slot's payload.
    fn index_text(&mut self, slot: u32, payload: Option<&Payload>) {
        for (key, index) in &mut self.text_indexes {
            match text_at(payload, key) {
                Some(text) => index.add(slot, &text),
                None => {
                    index.remove(slot);
                }
            }
        }
    }

    fn text_search(&self, req: &TextSearchRequest) -> Result<Vec<ScoredDoc>, EngineError> {
        let index = self
            .text_indexes
            .get(&req.field)
            .ok_or_else(|| EngineError::invalid(format!("payload field `{}` has no text index", req.field)))?;
        let accept = self.live_matching(req.filter.as_ref());
        let hits = index.search(&req.terms, &req.global, req.k, Some(&accept));
        Ok(hits.into_iter().map(|(slot, score)| self.scored(slot, score, req.with_payload, req.with_vector)).collect())
    }

    fn get(&self, ids: &[PointId], with_payload: bool, with_vector: bool) -> Vec<Record> {
        ids.iter()
            .filter_map(|id| self.slots.get(id).map(|&slot| self.record(slot, with_payload, with_vector)))
            .collect()
    }

    fn scroll(&self, req: &ScrollRequest) -> Vec<Record> {
        if let Some(order) = &req.order {
            let slots = self.filtered_slots(req.filter.as_ref());
            let points = slots.into_iter().map(|s| {
                let e = self.entries[s as usize].as_ref().expect("live slot");
                (s, &e.id, e.payload.as_ref())
            });
            return crate::scoring::ordered(order, req.limit, points)
                .into_iter()
                .map(|(s, value)| Record {
                    order_value: Some(value),
                    ..self.record(s, req.with_payload, req.with_vector)
                })
                .collect();
        }
        let from = match &req.offset {
            Some(id) => std::ops::Bound::Included(id.clone()),
            None => std::ops::Bound::Unbounded,
        };
        self.slots
            .range((from, std::ops::Bound::Unbounded))
            .filter(|(_, &slot)| {
                let e = self.entries[slot as usize].as_ref().expect("slots point at live entries");
                req.filter.as_ref().is_none_or(|f| self.passes(f, slot, e))
            })
            .take(req.limit)
            .map(|(_, &slot)| self.record(slot, req.with_payload, req.with_vector))
            .collect()
    }

    fn record(&self, slot: u32, with_payload: bool, with_vector: bool) -> Record {
        let e = self.entries[slot as usize].as_ref().expect("slots point at live entries");
        Record {
            id: e.id.clone(),
            version: e.version,
            payload: if with_payload { Some(e.payload.clone().unwrap_or_default()) } else { None },
            vectors: with_vector.then(|| self.fields.get(slot)),
            order_value: None,
        }
    }

    fn digest(&self) -> PartitionDigest {
        // FNV-1a: tiny, stable across builds and machines, enough to tell copies apart.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &slot in self.slots.values() {
            let record = self.record(slot, true, true);
            let bytes = serde_json::to_vec(&record).expect("records serialise to JSON");
            for b in bytes {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        PartitionDigest { version: self.version, points: self.slots.len(), digest: format!("{h:016x}") }
    }

    fn stats(&self) -> IndexStats {
        // The unnamed vector's index is the partition's own in what it reports (the
        // named ones are listed per name), as before it was a field like the others.
        let s = self.fields.index_stats(crate::messages::UNNAMED);
        let payload_fields = self
            .payload_index
            .fields()
            .into_iter()
            .map(|(key, kind)| {
                let points = self.payload_index.points_with(&key).unwrap_or(0);
                (key, kind, points)
            })
            .collect();
        IndexStats {
            doc_count: self.slots.len(),
            version: self.version,
            index_size: self.fields.bytes(),
            deleted: s.as_ref().map_or(0, |s| s.deleted),
            levels: s.as_ref().map_or(0, |s| s.levels),
            quantization: s.as_ref().map_or(self.spec.index.quantization, |s| s.quantization),
            code_range: s.and_then(|s| s.code_range),
            vectors: self.fields.named_stats(),
            payload_fields,
            text_fields: self.text_indexes.iter().map(|(key, index)| (key.clone(), index.len())).collect(),
        }
    }

    /// Writes the partition's image (the durable snapshot format: points, payloads, the
    /// index graph with its vectors, a checksum) to `path`, through a temporary file that is
    /// fsynced and renamed, then the directory is fsynced: `path` is the old file or the new.
    fn snapshot(&self, req: &PartitionSnapshot) -> Result<IndexStats, EngineError> {
        let entries: Vec<(u32, u64, &PointId, Option<&Payload>)> =
            self.live().map(|(slot, e)| (slot, e.version, &e.id, e.payload.as_ref())).collect();
        let (dim, metric, version, fields) = (self.spec.dim, self.spec.metric, self.version, &self.fields);
        write_file_atomically(Path::new(&req.path), &mut |w| {
            codec::write_image(w, dim, metric, version, entries.iter().copied(), fields)
        })
        .map_err(|e| EngineError::io(format!("snapshot to {}", req.path), &e))?;
        Ok(self.stats())
    }

    /// Replaces the partition's points with those of the image at `path`. The file is read
    /// and validated completely before anything changes; then the store records the new
    /// state durably (a snapshot past the log's end) and only then does the state change.
    fn restore(&mut self, req: &PartitionRestore) -> Result<IndexStats, EngineError> {
        let image = self.read_image(&req.path)?;
        self.take_image(image, false)
    }

    /// Replaces this copy with a primary's image, taking the image's version (see
    /// [`PartitionInstall`]).
    fn install(&mut self, req: &PartitionInstall) -> Result<IndexStats, EngineError> {
        let image = self.read_image(&req.path)?;
        self.take_image(image, true)
    }

    /// Reads and checks an image file against this partition's configuration. Nothing
    /// changes here.
    fn read_image(&self, path: &str) -> Result<PartitionImage, EngineError> {
        let bad = |msg: String| EngineError::invalid(format!("snapshot {path}: {msg}"));
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut image = PartitionImage::read(&bytes).map_err(|e| bad(e.to_string()))?;
        drop(bytes);
        if image.dim != self.spec.dim || image.metric != self.spec.metric {
            return Err(bad(format!(
                "holds {}-dimensional {:?} vectors, this partition {}-dimensional {:?}",
                image.dim, image.metric, self.spec.dim, self.spec.metric
            )));
        }
        // Checked before the store takes the image, so that a mismatch changes nothing.
        image
            .fields
            .conform(&self.spec.dense_fields(), &self.spec.sparse_vectors, &self.spec.index)
            .map_err(|e| bad(e.to_string()))?;
        Ok(image)
    }

    /// Makes a checked image the partition's state, durably first: as a new operation on
    /// top of the log (a restore), or at the image's own version (`install`).
    fn take_image(&mut self, mut image: PartitionImage, install: bool) -> Result<IndexStats, EngineError> {
        let version = if install { self.store.install(&image)? } else { self.store.reset(&mut image)? };
        self.adopt(image).map_err(EngineError::Internal)?;
        self.version = version;
        Ok(self.stats())
    }
}

/// Writes a file crash-safely (see [`ametist_storage::replace`]): `path` is the old file or
/// the new, whole, at every point of a crash, and the new one once this returns `Ok`.
pub(crate) fn write_file_atomically(
    path: &Path,
    write: &mut dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    ametist_storage::replace::replace(&ametist_storage::StdFs, path, write)
}

/// fsyncs a directory, so that entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    use ametist_storage::Fs;
    ametist_storage::StdFs.sync_dir(dir)
}

/// A point gathered by a batch before it is linked: id, unnamed vector, payload, version,
/// named vectors.
/// A point new to the partition, gathered while its batch applies: id, payload, the
/// version that wrote it, its vectors.
type FreshPoint = (PointId, Option<Payload>, u64, NamedVectors);

/// A point as the earlier ops of a batch leave it, for judging a conditional op: what a
/// filter reads (its payload and which vectors it has).
struct Seen {
    payload: Option<Payload>,
    vectors: std::collections::BTreeSet<String>,
}

/// The text at `key`: its strings joined by spaces, or `None` when there are none.
fn text_at(payload: Option<&Payload>, key: &str) -> Option<String> {
    let parts: Vec<&str> = values_at(payload?, key).into_iter().filter_map(|v| v.as_str()).collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Threads to link a batch of `n` new points with: all cores for large batches, one for
/// small ones (where spawning threads costs more than it saves).
fn build_threads(n: usize) -> usize {
    if n < 1024 {
        1
    } else {
        std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1)
    }
}

impl ReadOnly for PartitionActor {
    /// Answers a read-only message; it runs on the actor's thread or on the search pool.
    fn read(&self, msg: PartitionMsg) {
        match msg {
            PartitionMsg::Search(req, reply) => {
                let _ = reply.send(self.search(&req));
            }
            PartitionMsg::Get { ids, with_payload, with_vector, reply } => {
                let _ = reply.send(Ok(self.get(&ids, with_payload, with_vector)));
            }
            PartitionMsg::Scroll(req, reply) => {
                let _ = reply.send(Ok(self.scroll(&req)));
            }
            PartitionMsg::Count(filter, reply) => {
                let n = match &filter {
                    None => self.slots.len(),
                    Some(f) => self.matching(f).len(),
                };
                let _ = reply.send(Ok(n));
            }
            PartitionMsg::TextStats { field, terms, reply } => {
                let stats = match self.text_indexes.get(&field) {
                    Some(index) => Ok(index.term_stats(&terms)),
                    None => Err(EngineError::invalid(format!("payload field `{field}` has no text index"))),
                };
                let _ = reply.send(stats);
            }
            PartitionMsg::TextSearch(req, reply) => {
                let _ = reply.send(self.text_search(&req));
            }
            PartitionMsg::Stats(reply) => {
                let _ = reply.send(Ok(self.stats()));
            }
            PartitionMsg::Digest(reply) => {
                let _ = reply.send(Ok(self.digest()));
            }
            PartitionMsg::SparseStats { name, query, reply } => {
                let _ = reply.send(self.fields.sparse_stats(&name, &query));
            }
            PartitionMsg::SparseSearch(req, reply) => {
                let _ = reply.send(self.sparse_search(&req));
            }
            msg => unreachable!("not a read-only message: {msg:?}"),
        }
    }
}

/// Commits a group's writes and acknowledges them. If the commit fails, every writer of
/// the group gets an error saying that its write may or may not have been applied (its
/// record may have reached the disk before the failure), and the failure is returned: the
/// caller rolls the state back to what is durable. No fsync is retried on the same file.
fn commit_pending(store: &dyn PartitionStore, partition: usize, pending: Vec<Pending>) -> Result<(), StoreFailure> {
    if pending.is_empty() {
        return Ok(());
    }
    match store.commit() {
        Ok(()) => {
            pending.into_iter().for_each(Pending::succeed);
            Ok(())
        }
        Err(e) => {
            let failure = store.failed().unwrap_or(StoreFailure { reason: e.to_string(), disk_full: false });
            let e = EngineError::StorageUnavailable {
                partition: Some(partition),
                message: format!(
                    "the write-ahead log failed ({}); the write was not acknowledged and may or may not have \
                     been applied; retrying it is safe",
                    failure.reason
                ),
            };
            for p in pending {
                p.fail(e.clone());
            }
            Err(failure)
        }
    }
}

/// The retry of the first failed log is after this; each failed retry doubles the wait, up
/// to [`LOG_RETRY_MAX`], and a successful commit resets it.
const LOG_RETRY_FIRST: Duration = Duration::from_secs(1);
const LOG_RETRY_MAX: Duration = Duration::from_secs(30);

/// Whether a partition's log can be written, as its thread sees it, and when it is retried.
/// Every change is published in the partition's status (read-only or running).
struct LogHealth<'a> {
    status: &'a PartitionStatus,
    problem: Option<StorageProblem>,
    /// The wait before the next retry.
    backoff: Duration,
}

impl<'a> LogHealth<'a> {
    fn new(status: &'a PartitionStatus) -> Self {
        LogHealth { status, problem: None, backoff: LOG_RETRY_FIRST }
    }

    fn is_ok(&self) -> bool {
        self.problem.is_none()
    }

    /// When the log is to be retried, while it is failed.
    fn retry_at(&self) -> Option<Instant> {
        self.problem.as_ref().map(|p| p.next_retry)
    }

    /// The log failed (or the actor started without it).
    fn failed(&mut self, failure: StoreFailure) {
        let now = Instant::now();
        self.problem = Some(StorageProblem {
            reason: failure.reason,
            disk_full: failure.disk_full,
            since: now,
            retries: 0,
            next_retry: now + self.backoff,
        });
        self.status.set_storage(self.problem.clone());
    }

    /// A retry failed: the next one waits twice as long.
    fn retry_failed(&mut self, failure: StoreFailure) {
        self.backoff = (self.backoff * 2).min(LOG_RETRY_MAX);
        let now = Instant::now();
        match &mut self.problem {
            Some(p) => {
                p.reason = failure.reason;
                p.disk_full = failure.disk_full;
                p.retries += 1;
                p.next_retry = now + self.backoff;
            }
            None => return self.failed(failure),
        }
        self.status.set_storage(self.problem.clone());
    }

    /// The log takes writes again. The backoff stays until a commit succeeds, so that a
    /// disk with barely any room does not make the partition flap every second.
    fn resumed(&mut self) {
        self.problem = None;
        self.status.set_storage(None);
    }

    /// A group of writes was committed: the log works.
    fn committed(&mut self) {
        self.backoff = LOG_RETRY_FIRST;
    }

    /// The error a write gets while the log is failed: refused before anything is done.
    fn refusal(&self, partition: usize) -> Option<EngineError> {
        let p = self.problem.as_ref()?;
        let next = p.next_retry.saturating_duration_since(Instant::now()).as_millis() as u64;
        Some(EngineError::StorageUnavailable {
            partition: Some(partition),
            message: format!(
                "not written: {}; nothing of this write was applied in this partition, which answers reads and \
                 retries its log by itself (next attempt in {}); retry later",
                p.reason,
                seconds(next)
            ),
        })
    }
}

/// What the actor's thread does next.
// Returned once per message and taken apart at once: boxing the message would cost an
// allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
enum Next {
    Msg(PartitionMsg),
    /// Every handle is gone.
    Closed,
    /// The failed log is due for a retry.
    Retry,
}

/// The next message, or, while the log is failed, a retry once `retry_at` has come. Waiting
/// with a deadline needs a timer, so a small runtime (one thread: this one) is built the
/// first time the log fails.
fn next_message(
    rx: &mut mpsc::Receiver<PartitionMsg>,
    retry_at: Option<Instant>,
    timer: &mut Option<tokio::runtime::Runtime>,
) -> Next {
    let Some(at) = retry_at else {
        return rx.blocking_recv().map_or(Next::Closed, Next::Msg);
    };
    if at <= Instant::now() {
        return Next::Retry;
    }
    let rt = timer.get_or_insert_with(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime with a timer needs no threads and no I/O driver")
    });
    rt.block_on(async {
        match tokio::time::timeout_at(tokio::time::Instant::from_std(at), rx.recv()).await {
            Ok(Some(msg)) => Next::Msg(msg),
            Ok(None) => Next::Closed,
            Err(_) => Next::Retry,
        }
    })
}
