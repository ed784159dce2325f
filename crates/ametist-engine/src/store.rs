//! Where a partition's acknowledged writes live, apart from the actor's own state.
//!
//! A partition actor that panics may leave its in-memory state half-updated, so a
//! restarted actor never reuses it: it rebuilds from its [`PartitionStore`], which holds
//! every write that was acknowledged. The store is owned by the partition's supervisor,
//! not by the actor, so it survives restarts.
//!
//! * [`MemoryStore`] keeps the latest value of each point in memory; it survives actor
//!   restarts but not the process (`Ametist::in_memory`).
//! * [`DurableStore`] is a write-ahead log and snapshots on disk (`Ametist::open`), built on
//!   `ametist-storage`: one WAL record per write batch, the partition's version is the
//!   record's LSN, and a snapshot taken at version V pairs with the log after V.
//!
//! Group commit: [`PartitionStore::append`] only buffers a batch; [`PartitionStore::commit`]
//! makes everything appended so far durable (one fsync). The actor acknowledges writes only
//! after `commit` returned `Ok`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use ametist_core::{Payload, PointId};
use ametist_storage::{ErrorClass, Fs, SnapshotStore, StdFs, StorageError, Wal, WalOptions, MAX_RECORD_BYTES};

use crate::codec::{self, PartitionImage};
use crate::config::StorageOptions;
use crate::error::EngineError;
use crate::messages::{NamedVectors, WriteOp};

/// How many snapshots a durable partition keeps. The log is kept from the oldest one on, so
/// a corrupt newest snapshot falls back to the previous one plus the log.
pub const SNAPSHOTS_KEPT: usize = 2;

/// A point as the memory store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    pub vector: Vec<f32>,
    pub payload: Option<Payload>,
    pub version: u64,
    /// Named dense and sparse vectors.
    pub named: NamedVectors,
}

/// What a partition starts from before replaying the log.
#[derive(Debug, Default)]
pub enum Base {
    /// Nothing: a new partition, or a log without snapshot.
    #[default]
    Empty,
    /// Points by value (the memory store); their index is built on recovery.
    Points(Vec<(PointId, StoredPoint)>),
    /// A snapshot: entries plus the index graph, loaded without rebuilding it.
    Image(Box<PartitionImage>),
}

/// The state a (re)started partition rebuilds from: `base`, then every batch of `replay`
/// applied in order as operation `lsn`.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The last operation number that was stored.
    pub version: u64,
    pub base: Base,
    pub replay: Vec<(u64, Vec<WriteOp>)>,
}

/// The record of a partition's acknowledged writes. Only the partition's thread calls it.
pub trait PartitionStore: Send + Sync {
    /// (Re)opens the store from what it really holds and returns the state to rebuild from.
    /// Any handle of a previous actor incarnation is dropped first.
    fn recover(&self) -> Result<Recovered, EngineError>;

    /// Records a batch of per-point writes (filter ops expanded; the caller has checked that
    /// every op applies) and returns its operation number. Not durable until [`commit`].
    ///
    /// [`commit`]: PartitionStore::commit
    fn append(&self, ops: &[WriteOp]) -> Result<u64, EngineError>;

    /// Makes every appended batch durable. When this fails nothing appended since the last
    /// successful commit may be acknowledged, and the store is [`failed`].
    ///
    /// [`failed`]: PartitionStore::failed
    fn commit(&self) -> Result<(), EngineError>;

    /// `Some(reason)` when the store cannot go on (a failed write or fsync): the actor must be
    /// rebuilt through [`PartitionStore::recover`], which reads what really is on disk.
    fn failed(&self) -> Option<String> {
        None
    }

    /// True when the snapshot policy (log size, time) asks for a snapshot.
    fn snapshot_due(&self) -> bool {
        false
    }

    /// True when the log holds writes that no snapshot covers (a clean shutdown then writes
    /// one, so that the next start replays nothing).
    fn snapshot_due_on_stop(&self) -> bool {
        false
    }

    /// Writes a snapshot of the state at `version` (the last committed operation) through
    /// `write`, then drops the log it makes unnecessary. `Ok(false)` when this store keeps no
    /// snapshots.
    fn snapshot(
        &self,
        version: u64,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<bool, EngineError>;

    /// Replaces everything with `image` (a restore), durably, as a new operation whose number
    /// is returned and written into `image.version`.
    fn reset(&self, image: &mut PartitionImage) -> Result<u64, EngineError>;

    /// True when acknowledged writes survive a restart of the process.
    fn is_durable(&self) -> bool;
}

// ----- memory ---------------------------------------------------------------------------

/// A [`PartitionStore`] in memory: survives actor restarts, not the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    version: u64,
    points: Vec<(PointId, StoredPoint)>,
    /// Index of each id in `points`, so that applying an op does not scan.
    positions: HashMap<PointId, usize>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PartitionStore for MemoryStore {
    fn recover(&self) -> Result<Recovered, EngineError> {
        let inner = self.lock();
        Ok(Recovered { version: inner.version, base: Base::Points(inner.points.clone()), replay: Vec::new() })
    }

    fn append(&self, ops: &[WriteOp]) -> Result<u64, EngineError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.version += 1;
        let version = inner.version;
        for op in ops {
            match op {
                WriteOp::Insert(_) | WriteOp::InsertNamed(_) => {
                    let p = match op {
                        WriteOp::Insert(p) => crate::messages::InsertNamed::from(p.clone()),
                        WriteOp::InsertNamed(p) => p.clone(),
                        _ => unreachable!("matched above"),
                    };
                    let stored =
                        StoredPoint { vector: p.vector.clone(), payload: p.metadata.clone(), version, named: p.named };
                    match inner.positions.get(&p.id) {
                        Some(&i) => inner.points[i].1 = stored,
                        None => {
                            inner.positions.insert(p.id.clone(), inner.points.len());
                            inner.points.push((p.id.clone(), stored));
                        }
                    }
                }
                WriteOp::Update(u) => {
                    if let Some(&i) = inner.positions.get(&u.id) {
                        inner.points[i].1.vector = u.vector.clone();
                        inner.points[i].1.version = version;
                    }
                }
                WriteOp::UpdateNamed { id, vectors } => {
                    if let Some(&i) = inner.positions.get(id) {
                        let point = &mut inner.points[i].1;
                        point.named.dense.extend(vectors.dense.iter().map(|(k, v)| (k.clone(), v.clone())));
                        point.named.sparse.extend(vectors.sparse.iter().map(|(k, v)| (k.clone(), v.clone())));
                        point.version = version;
                    }
                }
                WriteOp::DeleteVectors { id, names } => {
                    if let Some(&i) = inner.positions.get(id) {
                        let point = &mut inner.points[i].1;
                        for n in names {
                            point.named.dense.remove(n);
                            point.named.sparse.remove(n);
                        }
                        point.version = version;
                    }
                }
                op @ (WriteOp::SetPayload { .. }
                | WriteOp::OverwritePayload { .. }
                | WriteOp::DeletePayload { .. }
                | WriteOp::ClearPayload { .. }) => {
                    let id = op.id().expect("payload ops name their point");
                    if let Some(&i) = inner.positions.get(id) {
                        op.apply_to_payload(&mut inner.points[i].1.payload);
                        inner.points[i].1.version = version;
                    }
                }
                WriteOp::ByFilter { .. } => {
                    unreachable!("partitions expand filter ops into per-id ops before storing them")
                }
                WriteOp::Delete(d) => {
                    if let Some(i) = inner.positions.remove(&d.id) {
                        inner.points.swap_remove(i);
                        if let Some((moved, _)) = inner.points.get(i) {
                            inner.positions.insert(moved.clone(), i);
                        }
                    }
                }
            }
        }
        Ok(version)
    }

    fn commit(&self) -> Result<(), EngineError> {
        Ok(())
    }

    fn snapshot(&self, _: u64, _: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> Result<bool, EngineError> {
        Ok(false)
    }

    fn reset(&self, image: &mut PartitionImage) -> Result<u64, EngineError> {
        let mut inner = self.lock();
        inner.version += 1;
        image.version = inner.version;
        inner.points = image
            .entries
            .iter()
            .map(|e| {
                // Collections without an unnamed vector keep an empty placeholder index.
                let vector = if image.dim > 0 { image.index.vector(e.slot).to_vec() } else { Vec::new() };
                let p = StoredPoint {
                    vector,
                    payload: e.payload.clone(),
                    version: e.version,
                    named: image.named.get(e.slot),
                };
                (e.id.clone(), p)
            })
            .collect();
        let positions = inner.points.iter().enumerate().map(|(i, (id, _))| (id.clone(), i)).collect();
        inner.positions = positions;
        Ok(inner.version)
    }

    fn is_durable(&self) -> bool {
        false
    }
}

// ----- durable --------------------------------------------------------------------------

/// A partition's write-ahead log and snapshots, in `<dir>/wal` and `<dir>/snapshots`.
pub struct DurableStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    partition: usize,
    options: StorageOptions,
    open: Mutex<Option<OpenStore>>,
}

struct OpenStore {
    wal: Wal,
    snapshots: SnapshotStore,
    /// Log bytes appended since the last snapshot (or since opening).
    logged_bytes: u64,
    last_snapshot_at: Instant,
    /// The version of the last snapshot written or loaded.
    last_snapshot_version: u64,
    /// Its size in bytes (0 when there is none).
    last_snapshot_bytes: u64,
}

/// Below this much log since the last snapshot, only the configured size and time trigger one.
const ADAPTIVE_MIN_BYTES: u64 = 4 << 20;

impl DurableStore {
    /// A store on the real file system. Nothing is read until [`PartitionStore::recover`].
    pub fn new(dir: impl Into<PathBuf>, partition: usize, options: StorageOptions) -> Self {
        Self::with_fs(Arc::new(StdFs), dir, partition, options)
    }

    /// A store on any [`Fs`] (tests use `MemFs` to simulate crashes and disk errors).
    pub fn with_fs(fs: Arc<dyn Fs>, dir: impl Into<PathBuf>, partition: usize, options: StorageOptions) -> Self {
        DurableStore { fs, dir: dir.into(), partition, options, open: Mutex::new(None) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, Option<OpenStore>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self, e: StorageError) -> EngineError {
        storage_error(self.partition, e)
    }

    fn not_open(&self) -> EngineError {
        EngineError::PartitionUnavailable {
            partition: self.partition,
            reason: format!("the store in {} is not open (recovering)", self.dir.display()),
        }
    }

    fn wal_options(&self) -> WalOptions {
        WalOptions { segment_bytes: self.options.wal_segment_bytes.max(64), ..WalOptions::default() }
    }

    /// Keeps the log from the oldest kept snapshot on, so that it can still be replayed on
    /// top of that one if the newest is found corrupt.
    fn truncate_log(&self, open: &mut OpenStore) -> Result<(), EngineError> {
        let kept = open.snapshots.list().map_err(|e| self.err(e))?;
        if let Some(oldest) = kept.last() {
            open.wal.truncate_through(oldest.lsn).map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

/// Maps a storage error to what the engine's callers see: damaged data is an internal error
/// naming the file; I/O failures make the partition unavailable (retryable).
fn storage_error(partition: usize, e: StorageError) -> EngineError {
    match e.class() {
        ErrorClass::Corrupt => EngineError::Internal(format!("partition {partition}: {e}")),
        ErrorClass::InvalidInput => EngineError::InvalidInput(format!("{e}; split the batch")),
        ErrorClass::Io | ErrorClass::Fatal => EngineError::PartitionUnavailable {
            partition,
            reason: format!("storage failure, nothing acknowledged: {e}"),
        },
    }
}

impl PartitionStore for DurableStore {
    fn recover(&self) -> Result<Recovered, EngineError> {
        let mut guard = self.lock();
        // Drop the previous incarnation's handles first: a poisoned WAL is never reused.
        *guard = None;
        let snapshots =
            SnapshotStore::open_with(self.fs.clone(), &self.dir.join("snapshots")).map_err(|e| self.err(e))?;
        // A snapshot whose checksum holds but whose image does not decode (written by a
        // build with a bug, say) counts as corrupt too: the previous one plus the log
        // replaces it, as for a torn file. The log is kept from the oldest kept snapshot on.
        let (loaded, skipped) = snapshots
            .load_latest_decoded(|_, data| {
                PartitionImage::read(&data)
                    .map_err(|e| format!("passed its checksum but does not decode: {e}"))
            })
            .map_err(|e| self.err(e))?;
        for s in &skipped {
            tracing::error!(
                partition = self.partition,
                path = %s.path.display(),
                reason = %s.reason,
                quarantined_as = ?s.quarantined_as,
                "unreadable snapshot skipped; falling back to the previous snapshot and the log"
            );
        }
        let (base, after, last_snapshot_bytes) = match loaded {
            Some((info, image)) => (Base::Image(Box::new(image)), info.lsn, info.size),
            None => (Base::Empty, 0, 0),
        };
        if !skipped.is_empty() && after == 0 {
            // Falling back to "no snapshot" is only right when the log still starts at the
            // beginning; `Wal::open_with` checks that the log is contiguous from `after`.
            tracing::warn!(partition = self.partition, "no readable snapshot left: replaying the whole log");
        }
        let wal_dir = self.dir.join("wal");
        let (wal, recovered) =
            Wal::open_with(self.fs.clone(), &wal_dir, after, self.wal_options()).map_err(|e| self.err(e))?;
        if let Some(t) = &recovered.truncated {
            tracing::warn!(
                segment = %t.segment.display(),
                offset = t.offset,
                bytes_dropped = t.bytes_dropped,
                reason = %t.reason,
                "WAL had a torn tail (a write interrupted by a crash); cut at the last valid record"
            );
        }
        let mut replay = Vec::with_capacity(recovered.records.len());
        let mut logged_bytes = 0u64;
        for (lsn, bytes) in recovered.records {
            logged_bytes += bytes.len() as u64;
            let ops = codec::decode_ops(&bytes).map_err(|e| {
                EngineError::Internal(format!(
                    "partition {}: WAL record {lsn} in {} passed its checksum but does not decode: {e}",
                    self.partition,
                    wal_dir.display()
                ))
            })?;
            replay.push((lsn, ops));
        }
        let version = wal.last_lsn().max(after);
        *guard = Some(OpenStore {
            wal,
            snapshots,
            logged_bytes,
            last_snapshot_at: Instant::now(),
            last_snapshot_version: after,
            last_snapshot_bytes,
        });
        Ok(Recovered { version, base, replay })
    }

    fn append(&self, ops: &[WriteOp]) -> Result<u64, EngineError> {
        let record = codec::encode_ops(ops).map_err(|e| EngineError::invalid(format!("cannot log the batch: {e}")))?;
        if record.len() > MAX_RECORD_BYTES {
            return Err(EngineError::invalid(format!(
                "the batch takes {} bytes in the log, more than the maximum of {MAX_RECORD_BYTES}; split it",
                record.len()
            )));
        }
        let mut guard = self.lock();
        let open = guard.as_mut().ok_or_else(|| self.not_open())?;
        let lsn = open.wal.append(&record).map_err(|e| self.err(e))?;
        open.logged_bytes += record.len() as u64;
        Ok(lsn)
    }

    fn commit(&self) -> Result<(), EngineError> {
        let mut guard = self.lock();
        let open = guard.as_mut().ok_or_else(|| self.not_open())?;
        open.wal.sync().map_err(|e| self.err(e))
    }

    fn failed(&self) -> Option<String> {
        match &*self.lock() {
            None => Some(format!("the store in {} is not open", self.dir.display())),
            Some(o) if o.wal.is_poisoned() => {
                Some(format!("the write-ahead log in {} failed a write or fsync", o.wal.dir().display()))
            }
            Some(_) => None,
        }
    }

    fn snapshot_due(&self) -> bool {
        match &*self.lock() {
            Some(o) => {
                let dirty = o.wal.last_lsn() > o.last_snapshot_version;
                // The log since the last snapshot is replayed (the index rebuilt for it) after a
                // crash: beyond the configured size and time, a log larger than the last
                // snapshot (and at least 4 MiB) triggers one too, so that replay stays short
                // while a partition grows, at a cost of at most about twice the log in writes.
                dirty
                    && (o.logged_bytes >= self.options.snapshot_wal_bytes
                        || (o.logged_bytes >= ADAPTIVE_MIN_BYTES && o.logged_bytes >= o.last_snapshot_bytes)
                        || o.last_snapshot_at.elapsed() >= self.options.snapshot_interval)
            }
            None => false,
        }
    }

    fn snapshot_due_on_stop(&self) -> bool {
        match &*self.lock() {
            Some(o) => o.wal.last_lsn() > o.last_snapshot_version && !o.wal.is_poisoned(),
            None => false,
        }
    }

    fn snapshot(
        &self,
        version: u64,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<bool, EngineError> {
        let mut guard = self.lock();
        let open = guard.as_mut().ok_or_else(|| self.not_open())?;
        if version != open.wal.last_lsn() || open.wal.synced_lsn() != version {
            return Err(EngineError::Internal(format!(
                "partition {}: snapshot at version {version}, but the log is at {} (synced {})",
                self.partition,
                open.wal.last_lsn(),
                open.wal.synced_lsn()
            )));
        }
        let info = open.snapshots.write(version, SNAPSHOTS_KEPT, write).map_err(|e| self.err(e))?;
        open.logged_bytes = 0;
        open.last_snapshot_at = Instant::now();
        open.last_snapshot_version = version;
        open.last_snapshot_bytes = info.size;
        tracing::info!(path = %info.path.display(), bytes = info.size, "partition snapshot written");
        self.truncate_log(open)?;
        Ok(true)
    }

    fn reset(&self, image: &mut PartitionImage) -> Result<u64, EngineError> {
        let mut guard = self.lock();
        let open = guard.as_mut().ok_or_else(|| self.not_open())?;
        open.wal.sync().map_err(|e| self.err(e))?;
        // The restored state becomes a snapshot one past the log's end: recovery loads it and
        // replays nothing older. The log is reopened after it so that its next record follows.
        let lsn = open.wal.last_lsn() + 1;
        image.version = lsn;
        let info = open.snapshots.write(lsn, SNAPSHOTS_KEPT, &mut |w| image.write_to(w)).map_err(|e| self.err(e))?;
        let snapshots = open.snapshots.clone();
        *guard = None;
        let (wal, recovered) =
            Wal::open_with(self.fs.clone(), &self.dir.join("wal"), lsn, self.wal_options()).map_err(|e| self.err(e))?;
        debug_assert!(recovered.records.is_empty());
        let mut open = OpenStore {
            wal,
            snapshots,
            logged_bytes: 0,
            last_snapshot_at: Instant::now(),
            last_snapshot_version: lsn,
            last_snapshot_bytes: info.size,
        };
        tracing::info!(path = %info.path.display(), "partition restored from a snapshot");
        let truncated = self.truncate_log(&mut open);
        *guard = Some(open);
        truncated.map(|()| lsn)
    }

    fn is_durable(&self) -> bool {
        true
    }
}
