//! Where a partition's acknowledged writes live, apart from the actor's own state.
//!
//! A partition actor that panics may leave its in-memory state half-updated, so a
//! restarted actor never reuses it: it rebuilds from its [`PartitionStore`], which holds
//! every write that was acknowledged. The store is owned by the partition's supervisor,
//! not by the actor, so it survives restarts.
//!
//! [`MemoryStore`] keeps the latest value of each point in memory; it survives actor
//! restarts but not the process. The write-ahead log (issue 4) is the durable
//! implementation of the same trait.

use std::collections::HashMap;
use std::sync::Mutex;

use ametist_core::{Payload, PointId};

use crate::error::EngineError;
use crate::messages::WriteOp;

/// A point as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    pub vector: Vec<f32>,
    pub payload: Option<Payload>,
    pub version: u64,
}

/// The state a restarted partition rebuilds from.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The last operation number that was stored.
    pub version: u64,
    pub points: Vec<(PointId, StoredPoint)>,
}

/// The record of a partition's acknowledged writes.
pub trait PartitionStore: Send + Sync {
    /// Records a batch of writes as operation `version`. When this returns `Ok`, the batch
    /// survives a restart of the actor; when it returns `Err`, nothing was recorded. The
    /// caller has already checked that every op applies (an `Update` names a point that
    /// exists), so the store applies them without checking.
    fn append(&self, version: u64, ops: &[WriteOp]) -> Result<(), EngineError>;

    /// Replaces everything with `points` (a restore from a snapshot), as operation `version`.
    fn reset(&self, version: u64, points: Vec<(PointId, StoredPoint)>) -> Result<(), EngineError>;

    /// Everything needed to rebuild the partition's state.
    fn recover(&self) -> Result<Recovered, EngineError>;
}

/// A [`PartitionStore`] in memory: survives actor restarts, not the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Recovered>,
    /// Index of each id in `inner.points`, so that applying an op does not scan.
    positions: Mutex<HashMap<PointId, usize>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl PartitionStore for MemoryStore {
    fn append(&self, version: u64, ops: &[WriteOp]) -> Result<(), EngineError> {
        let mut inner = self.inner.lock().expect("the store's lock is never held across a panic");
        let mut positions = self.positions.lock().expect("the store's lock is never held across a panic");
        inner.version = version;
        for op in ops {
            match op {
                WriteOp::Insert(p) => {
                    let stored = StoredPoint { vector: p.vector.clone(), payload: p.metadata.clone(), version };
                    match positions.get(&p.id) {
                        Some(&i) => inner.points[i].1 = stored,
                        None => {
                            positions.insert(p.id.clone(), inner.points.len());
                            inner.points.push((p.id.clone(), stored));
                        }
                    }
                }
                WriteOp::Update(u) => {
                    if let Some(&i) = positions.get(&u.id) {
                        inner.points[i].1.vector = u.vector.clone();
                        inner.points[i].1.version = version;
                    }
                }
                op @ (WriteOp::SetPayload { .. }
                | WriteOp::OverwritePayload { .. }
                | WriteOp::DeletePayload { .. }
                | WriteOp::ClearPayload { .. }) => {
                    let id = op.id().expect("payload ops name their point");
                    if let Some(&i) = positions.get(id) {
                        op.apply_to_payload(&mut inner.points[i].1.payload);
                        inner.points[i].1.version = version;
                    }
                }
                WriteOp::ByFilter { .. } => {
                    unreachable!("partitions expand filter ops into per-id ops before storing them")
                }
                WriteOp::Delete(d) => {
                    if let Some(i) = positions.remove(&d.id) {
                        inner.points.swap_remove(i);
                        if let Some((moved, _)) = inner.points.get(i) {
                            positions.insert(moved.clone(), i);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn reset(&self, version: u64, points: Vec<(PointId, StoredPoint)>) -> Result<(), EngineError> {
        let mut inner = self.inner.lock().expect("the store's lock is never held across a panic");
        let mut positions = self.positions.lock().expect("the store's lock is never held across a panic");
        positions.clear();
        for (i, (id, _)) in points.iter().enumerate() {
            positions.insert(id.clone(), i);
        }
        inner.points = points;
        inner.version = version;
        Ok(())
    }

    fn recover(&self) -> Result<Recovered, EngineError> {
        let inner = self.inner.lock().expect("the store's lock is never held across a panic");
        Ok(Recovered { version: inner.version, points: inner.points.clone() })
    }
}
