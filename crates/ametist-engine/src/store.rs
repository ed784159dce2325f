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
use std::time::{Duration, Instant};

use ametist_core::{Payload, PointId};
use ametist_storage::{ErrorClass, Fs, SnapshotStore, StdFs, StorageError, Wal, WalOptions, MAX_RECORD_BYTES};

use crate::codec::{self, PartitionImage};
use crate::config::StorageOptions;
use crate::error::{storage_full_label, EngineError};
use crate::messages::{NamedVectors, WriteOp};

/// How many snapshots a durable partition keeps. The log is kept from the oldest one on, so
/// a corrupt newest snapshot falls back to the previous one plus the log.
pub const SNAPSHOTS_KEPT: usize = 2;

/// A point as the memory store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    pub payload: Option<Payload>,
    pub version: u64,
    /// Every vector field the point has.
    pub vectors: NamedVectors,
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

/// Write batches with their operation numbers (LSNs), in order.
pub type Batches = Vec<(u64, Vec<WriteOp>)>;

/// The state a (re)started partition rebuilds from: `base`, then every batch of `replay`
/// applied in order as operation `lsn`.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The last operation number that was stored.
    pub version: u64,
    pub base: Base,
    pub replay: Batches,
}

/// Why a store cannot take writes.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreFailure {
    /// What failed, naming the file (the first failure; later calls only repeat it):
    /// "disk full (ENOSPC): I/O error: fsync <segment>: No space left on device (os error 28)".
    pub reason: String,
    /// The storage is full (ENOSPC or a quota): freeing space is what helps.
    pub disk_full: bool,
}

impl StoreFailure {
    fn from_storage(e: &StorageError) -> Self {
        let label = match e {
            StorageError::Io { source, .. } => storage_full_label(source),
            _ => None,
        };
        match label {
            Some(label) => StoreFailure { reason: format!("{label}: {e}"), disk_full: true },
            None => StoreFailure { reason: format!("storage failure: {e}"), disk_full: false },
        }
    }
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

    /// The operation number the next [`append`](PartitionStore::append) will get.
    fn next_lsn(&self) -> Result<u64, EngineError>;

    /// Every committed record after operation `after`, in order, when the log still holds
    /// all of them; `None` otherwise (a snapshot truncated it, or there is no log).
    fn read_log(&self, after: u64) -> Result<Option<Vec<(u64, Vec<WriteOp>)>>, EngineError>;

    /// `Some(why)` when the store cannot take writes (a failed write or fsync of its log):
    /// nothing appended since the last successful commit may be acknowledged, the state in
    /// memory must go back to what is durable ([`PartitionStore::close_log`]), and writes
    /// wait until [`PartitionStore::reopen`] succeeds.
    fn failed(&self) -> Option<StoreFailure> {
        None
    }

    /// After [`PartitionStore::failed`]: drops the log handle (a failed one is never written
    /// to again) and, when the state in memory (at version `applied`) holds writes that are
    /// not durable, returns the durable state to rebuild from, read without writing anything
    /// (so it works on a full disk): the snapshot plus the log up to the last successful
    /// commit. `None` when everything applied is durable. Reads keep working meanwhile;
    /// writes wait for [`PartitionStore::reopen`].
    fn close_log(&self, _applied: u64) -> Result<Option<Recovered>, EngineError> {
        Ok(None)
    }

    /// [`PartitionStore::recover`] for a start on storage that cannot be written: the state
    /// on disk, read without writing anything, with the log left closed (as after
    /// [`PartitionStore::close_log`]) until [`PartitionStore::reopen`] succeeds.
    fn recover_read_only(&self) -> Result<Recovered, EngineError> {
        self.recover()
    }

    /// Tries to take writes again after a failure: checks that there is room (a probe write
    /// and fsync), then reopens the log from disk as recovery does (no fsync is retried on a
    /// failed file). Returns the batches found in the log after `applied` (written before the
    /// failure and durable after all), which the state in memory must apply to catch up.
    /// An error leaves the log closed.
    fn reopen(&self, _applied: u64) -> Result<Batches, EngineError> {
        Ok(Vec::new())
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

    /// Replaces everything with `image` at the image's own version (a replica taking its
    /// primary's state), durably. Everything the store held before is dropped first, its log
    /// and snapshots included, so that none of it can be recovered later: a crash midway
    /// leaves an empty or an older copy, never a mix. Returns `image.version`.
    fn install(&self, image: &PartitionImage) -> Result<u64, EngineError>;

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
                WriteOp::Insert(p) => {
                    let stored = StoredPoint { payload: p.metadata.clone(), version, vectors: p.vectors.clone() };
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
                        let point = &mut inner.points[i].1;
                        point.vectors.extend(u.vectors.clone());
                        point.version = version;
                    }
                }
                WriteOp::DeleteVectors { id, names } => {
                    if let Some(&i) = inner.positions.get(id) {
                        let point = &mut inner.points[i].1;
                        point.vectors.remove_names(names);
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
                WriteOp::ByFilter { .. } | WriteOp::Conditional { .. } => {
                    unreachable!("partitions resolve filter and conditional ops into per-id ops before storing them")
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

    fn next_lsn(&self) -> Result<u64, EngineError> {
        Ok(self.lock().version + 1)
    }

    fn read_log(&self, _after: u64) -> Result<Option<Vec<(u64, Vec<WriteOp>)>>, EngineError> {
        Ok(None)
    }

    fn reset(&self, image: &mut PartitionImage) -> Result<u64, EngineError> {
        let version = self.lock().version + 1;
        image.version = version;
        self.install(image)
    }

    fn install(&self, image: &PartitionImage) -> Result<u64, EngineError> {
        let mut inner = self.lock();
        inner.version = image.version;
        inner.points = image
            .entries
            .iter()
            .map(|e| {
                let p =
                    StoredPoint { payload: e.payload.clone(), version: e.version, vectors: image.fields.get(e.slot) };
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
    /// Why the last [`PartitionStore::recover`] could not open the store for writing.
    open_failure: Mutex<Option<StoreFailure>>,
}

struct OpenStore {
    /// `None` while the log is closed after a failure (see [`PartitionStore::close_log`]).
    wal: Option<Wal>,
    snapshots: SnapshotStore,
    /// The first failure of the log since it was opened; it stays until a reopen.
    failure: Option<StoreFailure>,
    /// Every record up to here is durable (the last successful commit when the log failed).
    durable_lsn: u64,
    /// Log bytes appended since the last snapshot (or since opening).
    logged_bytes: u64,
    last_snapshot_at: Instant,
    /// The version of the last snapshot written or loaded.
    last_snapshot_version: u64,
    /// Its size in bytes (0 when there is none).
    last_snapshot_bytes: u64,
    /// After a failed snapshot (a full disk, say), none is tried before this.
    snapshot_retry_at: Option<Instant>,
    /// The wait after the next failed snapshot.
    snapshot_backoff: Duration,
}

impl OpenStore {
    fn wal(&mut self) -> Option<&mut Wal> {
        self.wal.as_mut().filter(|w| !w.is_poisoned())
    }

    /// Keeps the first failure of the log (later calls fail as `Poisoned`, which says less).
    fn note(&mut self, e: &StorageError) {
        if self.failure.is_none() && matches!(e.class(), ErrorClass::Io | ErrorClass::Fatal) {
            self.failure = Some(StoreFailure::from_storage(e));
        }
    }
}

/// Below this much log since the last snapshot, only the configured size and time trigger one.
const ADAPTIVE_MIN_BYTES: u64 = 4 << 20;

/// The first wait after a failed snapshot; it doubles up to [`SNAPSHOT_RETRY_MAX`]. A snapshot
/// writes the whole partition, so on a full disk it is not retried after every write.
const SNAPSHOT_RETRY_FIRST: Duration = Duration::from_secs(5);
const SNAPSHOT_RETRY_MAX: Duration = Duration::from_secs(300);

/// How much room [`PartitionStore::reopen`] wants to find before it takes writes again: a
/// log's write buffer, so that a disk with a few bytes free does not flap between taking a
/// write and failing it.
const PROBE_BYTES: usize = 1 << 20;

impl DurableStore {
    /// A store on the real file system. Nothing is read until [`PartitionStore::recover`].
    pub fn new(dir: impl Into<PathBuf>, partition: usize, options: StorageOptions) -> Self {
        Self::with_fs(Arc::new(StdFs), dir, partition, options)
    }

    /// A store on any [`Fs`] (tests use `MemFs` to simulate crashes and disk errors).
    pub fn with_fs(fs: Arc<dyn Fs>, dir: impl Into<PathBuf>, partition: usize, options: StorageOptions) -> Self {
        DurableStore { fs, dir: dir.into(), partition, options, open: Mutex::new(None), open_failure: Mutex::new(None) }
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

    /// [`DurableStore::err`] for a failure while opening: an I/O failure is kept, so that a
    /// read-only start can say why the store could not be opened.
    fn open_err(&self, e: StorageError) -> EngineError {
        if matches!(e.class(), ErrorClass::Io | ErrorClass::Fatal) {
            *self.open_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(StoreFailure::from_storage(&e));
        }
        self.err(e)
    }

    fn not_open(&self) -> EngineError {
        EngineError::PartitionUnavailable {
            partition: self.partition,
            reason: format!("the store in {} is not open (recovering)", self.dir.display()),
        }
    }

    /// The error of a call on a closed or failed log.
    fn closed(&self, open: &OpenStore) -> EngineError {
        let why = open.failure.as_ref().map_or_else(|| "the log is closed".to_string(), |f| f.reason.clone());
        EngineError::StorageUnavailable {
            partition: Some(self.partition),
            message: format!("not written: {why}; the log takes writes again once it is reopened; retry later"),
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
            let Some(wal) = open.wal() else { return Err(self.closed(open)) };
            if let Err(e) = wal.truncate_through(oldest.lsn) {
                open.note(&e);
                return Err(self.err(e));
            }
        }
        Ok(())
    }

    /// The newest readable snapshot, decoded (unreadable newer ones are quarantined and
    /// logged): `(base, its LSN, its size)`.
    fn load_snapshot(&self, snapshots: &SnapshotStore) -> Result<(Base, u64, u64), EngineError> {
        // A snapshot whose checksum holds but whose image does not decode (written by a
        // build with a bug, say) counts as corrupt too: the previous one plus the log
        // replaces it, as for a torn file. The log is kept from the oldest kept snapshot on.
        let (loaded, skipped) = snapshots
            .load_latest_decoded(|_, data| {
                PartitionImage::read(&data).map_err(|e| format!("passed its checksum but does not decode: {e}"))
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
        let (base, after, bytes) = match loaded {
            Some((info, image)) => (Base::Image(Box::new(image)), info.lsn, info.size),
            None => (Base::Empty, 0, 0),
        };
        if !skipped.is_empty() && after == 0 {
            // Falling back to "no snapshot" is only right when the log still starts at the
            // beginning; reading the log checks that it is contiguous from `after`.
            tracing::warn!(partition = self.partition, "no readable snapshot left: replaying the whole log");
        }
        Ok((base, after, bytes))
    }

    /// Decodes log records into batches.
    fn decode(&self, records: Vec<(u64, Vec<u8>)>) -> Result<(Batches, u64), EngineError> {
        let mut replay = Vec::with_capacity(records.len());
        let mut bytes = 0u64;
        for (lsn, record) in records {
            bytes += record.len() as u64;
            let ops = codec::decode_ops(&record).map_err(|e| {
                EngineError::Internal(format!(
                    "partition {}: WAL record {lsn} in {} passed its checksum but does not decode: {e}",
                    self.partition,
                    self.dir.join("wal").display()
                ))
            })?;
            replay.push((lsn, ops));
        }
        Ok((replay, bytes))
    }

    /// The durable state read without writing anything: the newest readable snapshot, then
    /// the log after it, through `through` when given (every record up to it must be there)
    /// or up to its last valid record (a torn tail is left for the next open to cut).
    fn load_read_only(&self, snapshots: &SnapshotStore, through: Option<u64>) -> Result<ReadOnlyLoad, EngineError> {
        let (base, after, snapshot_bytes) = self.load_snapshot(snapshots)?;
        let log = Wal::read_only(self.fs.clone(), &self.dir.join("wal"), after, through).map_err(|e| self.err(e))?;
        let (replay, logged_bytes) = self.decode(log.records)?;
        let version = replay.last().map_or(after, |(lsn, _)| *lsn).max(after);
        Ok(ReadOnlyLoad { recovered: Recovered { version, base, replay }, after, snapshot_bytes, logged_bytes })
    }
}

/// What [`DurableStore::load_read_only`] read.
struct ReadOnlyLoad {
    recovered: Recovered,
    /// The LSN of the snapshot it starts from (0 for none) and the snapshot's size.
    after: u64,
    snapshot_bytes: u64,
    /// Bytes of the log records after the snapshot.
    logged_bytes: u64,
}

/// Maps a storage error to what the engine's callers see: damaged data is an internal error
/// naming the file; I/O failures (a full disk) make the partition's storage unavailable
/// (retryable); a batch too large for the log is bad input.
fn storage_error(partition: usize, e: StorageError) -> EngineError {
    match e.class() {
        ErrorClass::Corrupt => EngineError::Internal(format!("partition {partition}: {e}")),
        ErrorClass::InvalidInput => EngineError::InvalidInput(format!("{e}; split the batch")),
        ErrorClass::Io | ErrorClass::Fatal => {
            let what = StoreFailure::from_storage(&e).reason;
            EngineError::StorageUnavailable {
                partition: Some(partition),
                message: format!("{what}; nothing acknowledged"),
            }
        }
    }
}

impl PartitionStore for DurableStore {
    fn recover(&self) -> Result<Recovered, EngineError> {
        let mut guard = self.lock();
        // Drop the previous incarnation's handles first: a poisoned WAL is never reused.
        *guard = None;
        *self.open_failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let snapshots =
            SnapshotStore::open_with(self.fs.clone(), &self.dir.join("snapshots")).map_err(|e| self.open_err(e))?;
        let (base, after, last_snapshot_bytes) = self.load_snapshot(&snapshots)?;
        let wal_dir = self.dir.join("wal");
        let (wal, recovered) =
            Wal::open_with(self.fs.clone(), &wal_dir, after, self.wal_options()).map_err(|e| self.open_err(e))?;
        if let Some(t) = &recovered.truncated {
            warn_cut_tail(t, "WAL had a torn tail (a write interrupted by a crash); cut at the last valid record");
        }
        let (replay, logged_bytes) = self.decode(recovered.records)?;
        let version = wal.last_lsn().max(after);
        *guard = Some(OpenStore {
            durable_lsn: wal.synced_lsn(),
            wal: Some(wal),
            snapshots,
            failure: None,
            logged_bytes,
            last_snapshot_at: Instant::now(),
            last_snapshot_version: after,
            last_snapshot_bytes,
            snapshot_retry_at: None,
            snapshot_backoff: SNAPSHOT_RETRY_FIRST,
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
        let Some(wal) = open.wal() else { return Err(self.closed(open)) };
        match wal.append(&record) {
            Ok(lsn) => {
                open.logged_bytes += record.len() as u64;
                Ok(lsn)
            }
            Err(e) if matches!(e.class(), ErrorClass::Io | ErrorClass::Fatal) => {
                open.note(&e);
                // A write of the buffer that failed may have put part of it, or all of it,
                // into the file: the outcome is not known.
                Err(EngineError::StorageUnavailable {
                    partition: Some(self.partition),
                    message: format!(
                        "the write-ahead log failed ({}); the write was not acknowledged and may or may not have \
                         been applied; retrying it is safe",
                        StoreFailure::from_storage(&e).reason
                    ),
                })
            }
            Err(e) => Err(self.err(e)),
        }
    }

    fn commit(&self) -> Result<(), EngineError> {
        let mut guard = self.lock();
        let open = guard.as_mut().ok_or_else(|| self.not_open())?;
        let Some(wal) = open.wal() else { return Err(self.closed(open)) };
        match wal.sync() {
            Ok(()) => {
                open.durable_lsn = wal.synced_lsn();
                Ok(())
            }
            Err(e) => {
                open.note(&e);
                Err(self.err(e))
            }
        }
    }

    fn failed(&self) -> Option<StoreFailure> {
        match &*self.lock() {
            None => Some(StoreFailure {
                reason: format!("the store in {} is not open", self.dir.display()),
                disk_full: false,
            }),
            Some(o) => match &o.wal {
                Some(w) if !w.is_poisoned() => None,
                Some(w) => Some(o.failure.clone().unwrap_or_else(|| StoreFailure {
                    reason: format!("the write-ahead log in {} failed a write or fsync", w.dir().display()),
                    disk_full: false,
                })),
                None => Some(o.failure.clone().unwrap_or_else(|| StoreFailure {
                    reason: format!("the write-ahead log in {} is closed", self.dir.join("wal").display()),
                    disk_full: false,
                })),
            },
        }
    }

    fn close_log(&self, applied: u64) -> Result<Option<Recovered>, EngineError> {
        let mut guard = self.lock();
        let Some(open) = guard.as_mut() else {
            // Nothing open (a restore failed between its snapshot and reopening the log):
            // read everything that is on disk.
            drop(guard);
            return self.recover_read_only().map(Some);
        };
        // Dropping the handle closes the file; it is never written to again.
        open.wal = None;
        if applied <= open.durable_lsn {
            return Ok(None);
        }
        let snapshots = open.snapshots.clone();
        let through = open.durable_lsn;
        drop(guard);
        Ok(Some(self.load_read_only(&snapshots, Some(through))?.recovered))
    }

    fn recover_read_only(&self) -> Result<Recovered, EngineError> {
        let mut guard = self.lock();
        let previous = guard.take();
        let failure = previous
            .and_then(|o| o.failure)
            .or_else(|| self.open_failure.lock().unwrap_or_else(|e| e.into_inner()).clone());
        // Opening the snapshot directory removes leftover temp files (that only frees
        // space); a directory that cannot even be created means there is nothing to read.
        let snapshots =
            SnapshotStore::open_with(self.fs.clone(), &self.dir.join("snapshots")).map_err(|e| self.err(e))?;
        let load = self.load_read_only(&snapshots, None)?;
        *guard = Some(OpenStore {
            wal: None,
            snapshots,
            failure,
            durable_lsn: load.recovered.version,
            logged_bytes: load.logged_bytes,
            last_snapshot_at: Instant::now(),
            last_snapshot_version: load.after,
            last_snapshot_bytes: load.snapshot_bytes,
            snapshot_retry_at: None,
            snapshot_backoff: SNAPSHOT_RETRY_FIRST,
        });
        Ok(load.recovered)
    }

    fn reopen(&self, applied: u64) -> Result<Batches, EngineError> {
        let mut guard = self.lock();
        let open = guard.as_mut().ok_or_else(|| self.not_open())?;
        if open.wal().is_some() {
            return Ok(Vec::new());
        }
        let wal_dir = self.dir.join("wal");
        // Reopening an intact log allocates nothing, so only a real write tells whether
        // there is room again. A log directory that does not exist yet is created (and its
        // first segment written) by the open below, which is test enough.
        let probe = match self.fs.list(&wal_dir) {
            Ok(_) => ametist_storage::probe_write(self.fs.as_ref(), &wal_dir, PROBE_BYTES),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::Io { op: "list directory", path: wal_dir.clone(), source: e }),
        };
        if let Err(e) = probe {
            open.failure = Some(StoreFailure::from_storage(&e));
            return Err(self.err(e));
        }
        // From the snapshot the state is based on, so that a log found shorter than the
        // state is noticed rather than continued with a hole.
        let after = open.last_snapshot_version;
        let (wal, recovered) = Wal::open_with(self.fs.clone(), &wal_dir, after, self.wal_options()).map_err(|e| {
            if matches!(e.class(), ErrorClass::Io | ErrorClass::Fatal) {
                open.failure = Some(StoreFailure::from_storage(&e));
            }
            self.err(e)
        })?;
        if wal.last_lsn() < applied {
            return Err(EngineError::Internal(format!(
                "partition {}: the log in {} ends at {}, but the partition holds writes up to {applied}",
                self.partition,
                wal_dir.display(),
                wal.last_lsn()
            )));
        }
        if let Some(t) = &recovered.truncated {
            warn_cut_tail(t, "WAL tail left by the failed write cut at the last valid record");
        }
        let newer: Vec<(u64, Vec<u8>)> = recovered.records.into_iter().filter(|(lsn, _)| *lsn > applied).collect();
        let (replay, bytes) = self.decode(newer)?;
        open.logged_bytes += bytes;
        open.durable_lsn = wal.synced_lsn();
        open.wal = Some(wal);
        open.failure = None;
        Ok(replay)
    }

    fn snapshot_due(&self) -> bool {
        match &*self.lock() {
            Some(o) => {
                let Some(wal) = o.wal.as_ref().filter(|w| !w.is_poisoned()) else { return false };
                if o.snapshot_retry_at.is_some_and(|at| Instant::now() < at) {
                    return false;
                }
                let dirty = wal.last_lsn() > o.last_snapshot_version;
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
            Some(o) => o.wal.as_ref().is_some_and(|w| w.last_lsn() > o.last_snapshot_version && !w.is_poisoned()),
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
        let Some(wal) = open.wal() else { return Err(self.closed(open)) };
        if version != wal.last_lsn() || wal.synced_lsn() != version {
            return Err(EngineError::Internal(format!(
                "partition {}: snapshot at version {version}, but the log is at {} (synced {})",
                self.partition,
                wal.last_lsn(),
                wal.synced_lsn()
            )));
        }
        let info = match open.snapshots.write(version, SNAPSHOTS_KEPT, write) {
            Ok(info) => info,
            Err(e) => {
                // Nothing changed and the log is kept; on a full disk, writing the whole
                // partition again after every write would only burn the disk's bandwidth.
                open.snapshot_retry_at = Some(Instant::now() + open.snapshot_backoff);
                open.snapshot_backoff = (open.snapshot_backoff * 2).min(SNAPSHOT_RETRY_MAX);
                return Err(self.err(e));
            }
        };
        open.snapshot_retry_at = None;
        open.snapshot_backoff = SNAPSHOT_RETRY_FIRST;
        open.logged_bytes = 0;
        open.last_snapshot_at = Instant::now();
        open.last_snapshot_version = version;
        open.last_snapshot_bytes = info.size;
        tracing::info!(path = %info.path.display(), bytes = info.size, "partition snapshot written");
        self.truncate_log(open)?;
        Ok(true)
    }

    fn next_lsn(&self) -> Result<u64, EngineError> {
        let mut guard = self.lock();
        let open = guard.as_mut().ok_or_else(|| self.not_open())?;
        let Some(wal) = open.wal() else { return Err(self.closed(open)) };
        Ok(wal.last_lsn() + 1)
    }

    fn read_log(&self, after: u64) -> Result<Option<Vec<(u64, Vec<WriteOp>)>>, EngineError> {
        let (first, last) = {
            let mut guard = self.lock();
            let open = guard.as_mut().ok_or_else(|| self.not_open())?;
            let Some(wal) = open.wal() else { return Err(self.closed(open)) };
            (wal.first_lsn(), wal.synced_lsn())
        };
        if after + 1 < first || after > last {
            return Ok(None);
        }
        let recovered =
            Wal::read_only(self.fs.clone(), &self.dir.join("wal"), after, Some(last)).map_err(|e| self.err(e))?;
        let records: Vec<(u64, Vec<u8>)> = recovered.records.into_iter().take_while(|(lsn, _)| *lsn <= last).collect();
        // A record missing in between (a snapshot truncated the log meanwhile) leaves a gap.
        if records.first().is_some_and(|(lsn, _)| *lsn != after + 1) {
            return Ok(None);
        }
        let (batches, _) = self.decode(records)?;
        Ok(Some(batches))
    }

    fn reset(&self, image: &mut PartitionImage) -> Result<u64, EngineError> {
        let mut guard = self.lock();
        let open = guard.as_mut().ok_or_else(|| self.not_open())?;
        let Some(wal) = open.wal() else { return Err(self.closed(open)) };
        if let Err(e) = wal.sync() {
            open.note(&e);
            return Err(self.err(e));
        }
        // The restored state becomes a snapshot one past the log's end: recovery loads it and
        // replays nothing older. The log is reopened after it so that its next record follows.
        let lsn = wal.last_lsn() + 1;
        image.version = lsn;
        self.take(guard, image)
    }

    fn install(&self, image: &PartitionImage) -> Result<u64, EngineError> {
        let mut guard = self.lock();
        let open = guard.as_mut().ok_or_else(|| self.not_open())?;
        // Order matters for a crash midway: the log goes first (a copy with an old snapshot
        // and no log is merely old), then every snapshot (one of them may be newer than the
        // image and would win at recovery), then the image is written.
        let wal_dir = self.dir.join("wal");
        open.wal = None;
        Wal::remove_all(self.fs.as_ref(), &wal_dir).map_err(|e| self.err(e))?;
        open.snapshots.remove_all().map_err(|e| self.err(e))?;
        self.take(guard, image)
    }

    fn is_durable(&self) -> bool {
        true
    }
}

impl DurableStore {
    /// Writes `image` as the snapshot at its version and reopens the log after it.
    fn take(&self, mut guard: MutexGuard<'_, Option<OpenStore>>, image: &PartitionImage) -> Result<u64, EngineError> {
        let lsn = image.version;
        let open = guard.as_mut().ok_or_else(|| self.not_open())?;
        let info = open.snapshots.write(lsn, SNAPSHOTS_KEPT, &mut |w| image.write_to(w)).map_err(|e| self.err(e))?;
        let snapshots = open.snapshots.clone();
        *guard = None;
        let (wal, recovered) =
            Wal::open_with(self.fs.clone(), &self.dir.join("wal"), lsn, self.wal_options()).map_err(|e| self.err(e))?;
        debug_assert!(recovered.records.is_empty());
        let mut open = OpenStore {
            durable_lsn: wal.synced_lsn(),
            wal: Some(wal),
            snapshots,
            failure: None,
            logged_bytes: 0,
            last_snapshot_at: Instant::now(),
            last_snapshot_version: lsn,
            last_snapshot_bytes: info.size,
            snapshot_retry_at: None,
            snapshot_backoff: SNAPSHOT_RETRY_FIRST,
        };
        tracing::info!(path = %info.path.display(), "partition state replaced by an image");
        let truncated = self.truncate_log(&mut open);
        *guard = Some(open);
        truncated.map(|()| lsn)
    }
}

/// Logs where a log was cut at its last valid record, and why (`what` says what left the tail).
fn warn_cut_tail(t: &ametist_storage::TornTail, what: &str) {
    tracing::warn!(
        segment = %t.segment.display(),
        offset = t.offset,
        bytes_dropped = t.bytes_dropped,
        reason = %t.reason,
        "{what}"
    );
}
