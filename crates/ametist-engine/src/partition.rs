//! The PartitionActor: one shard's points, payloads and index, on a thread of its own.
//!
//! Nothing outside this module touches a partition's state: callers hold a
//! [`PartitionRef`] and send [`PartitionMsg`]s through a bounded mailbox. A full mailbox
//! is an explicit, retryable "overloaded" error, never a silent drop or an unbounded queue.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use ametist_core::{flat, vector, Metric, Payload, PointId};

use crate::config::SupervisionPolicy;
use crate::error::EngineError;
use crate::messages::{
    Fault, IndexStats, PartitionMsg, PartitionRestore, PartitionSnapshot, Record, ScoredDoc, SearchRequest, WriteAck,
    WriteOp,
};
use crate::store::{PartitionStore, StoredPoint};
use crate::supervisor::{supervise, ActorState, PartitionStatus, RunEnd};

/// A stable handle to a partition actor. It stays valid across restarts: the supervisor
/// resumes a restarted actor on the same mailbox.
#[derive(Clone)]
pub struct PartitionRef {
    id: usize,
    tx: mpsc::Sender<PartitionMsg>,
    status: Arc<PartitionStatus>,
    capacity: usize,
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
}

/// What a partition needs to know about its collection.
#[derive(Debug, Clone)]
pub struct PartitionSpec {
    pub collection: String,
    pub id: usize,
    pub dim: usize,
    pub metric: Metric,
    pub mailbox: usize,
    pub policy: SupervisionPolicy,
}

/// Starts a partition actor under supervision. The returned join handle finishes when the
/// partition has stopped for good.
pub fn spawn_partition(spec: PartitionSpec, store: Arc<dyn PartitionStore>) -> (PartitionRef, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(spec.mailbox.max(1));
    let status = Arc::new(PartitionStatus::new());
    let handle = PartitionRef { id: spec.id, tx, status: status.clone(), capacity: spec.mailbox.max(1) };
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
                |mut actor| actor.run(&mut rx.borrow_mut()),
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
    pub fn id(&self) -> usize {
        self.id
    }

    /// Reserves a place in the mailbox without waiting. Reserving first lets the
    /// coordinator send a multi-partition write only when every partition can take it.
    pub fn try_reserve(&self) -> Result<mpsc::Permit<'_, PartitionMsg>, EngineError> {
        self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => EngineError::Overloaded(format!(
                "partition {} has {} messages waiting (its mailbox bound)",
                self.id, self.capacity
            )),
            mpsc::error::TrySendError::Closed(()) => self.unavailable(),
        })
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
        }
    }
}

/// One live point's metadata; its vector lives in the index at `slot`.
struct PointMeta {
    slot: u32,
    version: u64,
    payload: Option<Payload>,
}

/// The actor's state. Built only by [`PartitionActor::recover`], changed only by its handler.
struct PartitionActor {
    spec: PartitionSpec,
    store: Arc<dyn PartitionStore>,
    points: HashMap<PointId, PointMeta>,
    index: FlatIndex,
    /// The point id held in each slot (`None` for a free slot).
    slot_ids: Vec<Option<PointId>>,
    version: u64,
}

impl PartitionActor {
    /// Builds the actor's state from its store.
    fn recover(spec: &PartitionSpec, store: Arc<dyn PartitionStore>) -> Result<Self, String> {
        let recovered = store.recover().map_err(|e| e.to_string())?;
        let mut actor = PartitionActor {
            spec: spec.clone(),
            store,
            points: HashMap::with_capacity(recovered.points.len()),
            index: FlatIndex::new(spec.dim),
            slot_ids: Vec::with_capacity(recovered.points.len()),
            version: recovered.version,
        };
        for (id, p) in recovered.points {
            actor.put(id, p.vector, p.payload, p.version);
        }
        tracing::debug!(partition = %format!("{}/{}", spec.collection, spec.id), points = actor.points.len(), "recovered");
        Ok(actor)
    }

    fn run(&mut self, rx: &mut mpsc::Receiver<PartitionMsg>) -> RunEnd {
        while let Some(msg) = rx.blocking_recv() {
            if let PartitionMsg::Stop = msg {
                return RunEnd::Stopped;
            }
            self.handle(msg);
        }
        RunEnd::Stopped
    }

    fn handle(&mut self, msg: PartitionMsg) {
        match msg {
            PartitionMsg::Search(req, reply) => {
                let _ = reply.send(self.search(&req));
            }
            PartitionMsg::Write(ops, reply) => {
                let _ = reply.send(self.write(ops));
            }
            PartitionMsg::Get { ids, with_payload, with_vector, reply } => {
                let _ = reply.send(Ok(self.get(&ids, with_payload, with_vector)));
            }
            PartitionMsg::RebuildIndex(_, reply) => {
                self.index.compact_free_list();
                let _ = reply.send(Ok(self.stats()));
            }
            PartitionMsg::Stats(reply) => {
                let _ = reply.send(Ok(self.stats()));
            }
            PartitionMsg::Snapshot(req, reply) => {
                let _ = reply.send(self.snapshot(&req));
            }
            PartitionMsg::Restore(req, reply) => {
                let _ = reply.send(self.restore(&req));
            }
            PartitionMsg::Fault(Fault::Panic(msg)) => panic!("injected fault: {msg}"),
            PartitionMsg::Fault(Fault::Stall(d)) => std::thread::sleep(d),
            PartitionMsg::Stop => unreachable!("handled by run"),
        }
    }

    fn search(&self, req: &SearchRequest) -> Result<Vec<ScoredDoc>, EngineError> {
        vector::validate(self.spec.dim, &req.query_vector)?;
        let metric = self.spec.metric;
        let want = req.offset.saturating_add(req.k);
        let hits = self.index.search(metric, &req.query_vector, want);
        let threshold = req.score_threshold;
        let docs = hits
            .into_iter()
            .map(|c| (c.slot, metric.score(c.distance)))
            .filter(|(_, score)| match threshold {
                None => true,
                Some(t) if metric.higher_is_better() => *score >= t,
                Some(t) => *score <= t,
            })
            .map(|(slot, score)| {
                let id = self.slot_ids[slot as usize].clone().expect("the index returns only live slots");
                let meta = &self.points[&id];
                ScoredDoc {
                    version: meta.version,
                    score,
                    payload: if req.with_payload { Some(meta.payload.clone().unwrap_or_default()) } else { None },
                    vector: if req.with_vector { Some(self.index.vector(slot).to_vec()) } else { None },
                    id,
                }
            })
            .collect();
        Ok(docs)
    }

    /// Applies a batch: checks that every op applies, records it in the store, then
    /// changes the state. Either the whole batch is applied or nothing is.
    fn write(&mut self, ops: Vec<WriteOp>) -> Result<WriteAck, EngineError> {
        for op in &ops {
            match op {
                WriteOp::Insert(p) => vector::validate(self.spec.dim, &p.vector)?,
                WriteOp::Update(u) => {
                    vector::validate(self.spec.dim, &u.vector)?;
                    if !self.points.contains_key(&u.id) {
                        return Err(EngineError::invalid(format!("No point with id {} found", u.id)));
                    }
                }
                WriteOp::Delete(_) => {}
            }
        }
        let version = self.version + 1;
        self.store.append(version, &ops)?;
        self.version = version;
        for op in ops {
            match op {
                WriteOp::Insert(p) => self.put(p.id, p.vector, p.metadata, version),
                WriteOp::Update(u) => {
                    let meta = self.points.get_mut(&u.id).expect("checked above");
                    meta.version = version;
                    self.index.set(meta.slot, &u.vector);
                }
                WriteOp::Delete(d) => {
                    if let Some(meta) = self.points.remove(&d.id) {
                        self.index.remove(meta.slot);
                        self.slot_ids[meta.slot as usize] = None;
                    }
                }
            }
        }
        Ok(WriteAck { operation_id: version, completed: true })
    }

    fn put(&mut self, id: PointId, vector: Vec<f32>, payload: Option<Payload>, version: u64) {
        if let Some(meta) = self.points.get_mut(&id) {
            self.index.set(meta.slot, &vector);
            meta.payload = payload;
            meta.version = version;
            return;
        }
        let slot = self.index.add(&vector);
        if slot as usize == self.slot_ids.len() {
            self.slot_ids.push(Some(id.clone()));
        } else {
            self.slot_ids[slot as usize] = Some(id.clone());
        }
        self.points.insert(id, PointMeta { slot, version, payload });
    }

    fn get(&self, ids: &[PointId], with_payload: bool, with_vector: bool) -> Vec<Record> {
        ids.iter()
            .filter_map(|id| {
                self.points.get(id).map(|meta| Record {
                    id: id.clone(),
                    version: meta.version,
                    payload: if with_payload { Some(meta.payload.clone().unwrap_or_default()) } else { None },
                    vector: if with_vector { Some(self.index.vector(meta.slot).to_vec()) } else { None },
                })
            })
            .collect()
    }

    fn stats(&self) -> IndexStats {
        IndexStats {
            doc_count: self.points.len(),
            index_size: self.index.bytes() as u64,
            deleted: self.index.free.len(),
            levels: 0,
        }
    }

    /// Writes every point to `path` (JSON lines behind a header), through a temporary file
    /// that is flushed and renamed, so that `path` is either the old file or the new one.
    fn snapshot(&self, req: &PartitionSnapshot) -> Result<IndexStats, EngineError> {
        let io = |e: std::io::Error| EngineError::Internal(format!("snapshot to {}: {e}", req.path));
        let tmp = format!("{}.tmp", req.path);
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
        let header = SnapshotHeader { dim: self.spec.dim, metric: self.spec.metric, version: self.version };
        serde_json::to_writer(&mut out, &header).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
        for (id, meta) in &self.points {
            let line = SnapshotPoint {
                id: id.clone(),
                version: meta.version,
                vector: self.index.vector(meta.slot).to_vec(),
                payload: meta.payload.clone(),
            };
            serde_json::to_writer(&mut out, &line).map_err(|e| io(e.into()))?;
            out.write_all(b"\n").map_err(io)?;
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &req.path).map_err(io)?;
        Ok(self.stats())
    }

    /// Replaces the partition's points with those in the snapshot at `path`. The file is
    /// read and checked completely before anything changes.
    fn restore(&mut self, req: &PartitionRestore) -> Result<IndexStats, EngineError> {
        let bad = |msg: String| EngineError::invalid(format!("snapshot {}: {msg}", req.path));
        let text = std::fs::read_to_string(&req.path).map_err(|e| bad(e.to_string()))?;
        let mut lines = text.lines();
        let header: SnapshotHeader = serde_json::from_str(lines.next().ok_or_else(|| bad("empty file".into()))?)
            .map_err(|e| bad(format!("bad header: {e}")))?;
        if header.dim != self.spec.dim || header.metric != self.spec.metric {
            return Err(bad(format!(
                "holds {}-dimensional {:?} vectors, this partition {}-dimensional {:?}",
                header.dim, header.metric, self.spec.dim, self.spec.metric
            )));
        }
        let mut points = Vec::new();
        for (n, line) in lines.enumerate() {
            let p: SnapshotPoint = serde_json::from_str(line).map_err(|e| bad(format!("line {}: {e}", n + 2)))?;
            vector::validate(self.spec.dim, &p.vector).map_err(|e| bad(format!("line {}: {e}", n + 2)))?;
            points.push((p.id, StoredPoint { vector: p.vector, payload: p.payload, version: p.version }));
        }
        let version = self.version.max(header.version) + 1;
        self.store.reset(version, points.clone())?;
        self.points.clear();
        self.slot_ids.clear();
        self.index = FlatIndex::new(self.spec.dim);
        self.version = version;
        for (id, p) in points {
            self.put(id, p.vector, p.payload, p.version);
        }
        Ok(self.stats())
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    dim: usize,
    metric: Metric,
    version: u64,
}

#[derive(Serialize, Deserialize)]
struct SnapshotPoint {
    id: PointId,
    version: u64,
    vector: Vec<f32>,
    payload: Option<Payload>,
}

/// Vectors back to back with a free list of deleted slots; searched by exact scan.
struct FlatIndex {
    dim: usize,
    vectors: Vec<f32>,
    live: Vec<bool>,
    free: Vec<u32>,
}

impl FlatIndex {
    fn new(dim: usize) -> Self {
        FlatIndex { dim, vectors: Vec::new(), live: Vec::new(), free: Vec::new() }
    }

    fn add(&mut self, v: &[f32]) -> u32 {
        if let Some(slot) = self.free.pop() {
            self.set(slot, v);
            self.live[slot as usize] = true;
            return slot;
        }
        self.vectors.extend_from_slice(v);
        self.live.push(true);
        (self.live.len() - 1) as u32
    }

    fn set(&mut self, slot: u32, v: &[f32]) {
        let start = slot as usize * self.dim;
        self.vectors[start..start + self.dim].copy_from_slice(v);
    }

    fn remove(&mut self, slot: u32) {
        self.live[slot as usize] = false;
        self.free.push(slot);
    }

    fn vector(&self, slot: u32) -> &[f32] {
        let start = slot as usize * self.dim;
        &self.vectors[start..start + self.dim]
    }

    fn search(&self, metric: Metric, query: &[f32], k: usize) -> Vec<flat::Candidate> {
        flat::search(metric, self.dim, &self.vectors, query, k, |slot| self.live[slot as usize])
    }

    /// Keeps the free list in slot order so that slots are reused from the front.
    fn compact_free_list(&mut self) {
        self.free.sort_unstable_by(|a, b| b.cmp(a));
    }

    fn bytes(&self) -> usize {
        self.vectors.capacity() * 4 + self.live.capacity() + self.free.capacity() * 4
    }
}
