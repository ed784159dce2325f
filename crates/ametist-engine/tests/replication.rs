//! The partition side of replication (issue 14): a primary logs a batch and hands back the
//! record as logged; a replica appends shipped records exactly at their LSN, refusing gaps;
//! a replica that diverged is replaced by the primary's image at the primary's version, and
//! nothing of its own tail comes back, not even after a restart. Stores are durable on the
//! storage crate's in-memory file system (`MemFs`). Seeds are printed (replay with
//! `AMETIST_TEST_SEED=<seed>`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ametist_core::filter::Filter;
use ametist_core::{Metric, PointId};
use ametist_engine::config::{IndexConfig, StorageOptions};
use ametist_engine::messages::{
    Append, FilterAction, InsertVector, LoggedWrite, PartitionInstall, PartitionMsg, PartitionSnapshot, Record,
    ScrollRequest, WriteAck, WriteOp,
};
use ametist_engine::partition::{spawn_partition, PartitionRef, PartitionSpec};
use ametist_engine::store::{DurableStore, PartitionStore};
use ametist_engine::supervisor::ActorState;
use ametist_engine::EngineError;
use ametist_storage::MemFs;
use rand::rngs::StdRng;
use rand::Rng;

const DIR: &str = "/data/collections/c/partitions/0";

fn spec() -> PartitionSpec {
    PartitionSpec {
        collection: "c".into(),
        id: 0,
        dim: 3,
        metric: Metric::Euclid,
        index: IndexConfig::default(),
        mailbox: 256,
        policy: Default::default(),
        payload_schema: Default::default(),
        text_schema: Default::default(),
        vectors: Default::default(),
        sparse_vectors: Default::default(),
    }
}

struct Copy {
    fs: MemFs,
    p: PartitionRef,
    t: Option<std::thread::JoinHandle<()>>,
}

impl Copy {
    fn start(fs: MemFs) -> Copy {
        let options = StorageOptions {
            snapshot_wal_bytes: u64::MAX,
            snapshot_interval: Duration::from_secs(3600),
            wal_segment_bytes: 4096,
        };
        let store: Arc<dyn PartitionStore> = Arc::new(DurableStore::with_fs(Arc::new(fs.clone()), DIR, 0, options));
        let (p, t) = spawn_partition(spec(), store);
        let deadline = Instant::now() + Duration::from_secs(20);
        while p.info().state == ActorState::Recovering {
            assert!(Instant::now() < deadline, "the partition did not recover");
            std::thread::sleep(Duration::from_millis(1));
        }
        Copy { fs, p, t: Some(t) }
    }

    /// Stops the actor (as a process exit would) and starts it again on the same files.
    fn restart(mut self) -> Copy {
        let _ = self.p.try_send(PartitionMsg::Stop);
        self.t.take().expect("running").join().expect("the actor thread ends");
        Copy::start(self.fs.clone())
    }

    fn ask<T>(
        &self,
        make: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, EngineError>>) -> PartitionMsg,
    ) -> Result<T, EngineError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.p.try_send(make(tx))?;
        rx.blocking_recv().map_err(|_| self.p.unavailable())?
    }

    fn write_logged(&self, ops: Vec<WriteOp>) -> LoggedWrite {
        self.ask(|r| PartitionMsg::WriteLogged(ops, r)).expect("the primary takes the write")
    }

    fn append(&self, lsn: u64, ops: Vec<WriteOp>) -> Result<WriteAck, EngineError> {
        self.ask(|r| PartitionMsg::Append(Append { lsn, ops }, r))
    }

    /// Every point with its version, payload and vectors, in id order.
    fn records(&self) -> Vec<Record> {
        let req = ScrollRequest {
            filter: None,
            offset: None,
            limit: 100_000,
            with_payload: true,
            with_vector: true,
            order: None,
        };
        self.ask(|r| PartitionMsg::Scroll(req, r)).expect("scroll answers")
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = self.p.try_send(PartitionMsg::Stop);
        if let Some(t) = self.t.take() {
            let _ = t.join();
        }
    }
}

fn point(rng: &mut StdRng, id: u64) -> WriteOp {
    let payload = serde_json::json!({ "group": rng.random_range(0..4), "n": id });
    WriteOp::Insert(InsertVector {
        id: PointId::Num(id),
        vectors: common::random_vector(rng, 3).into(),
        metadata: Some(serde_json::from_value(payload).expect("a payload object")),
    })
}

/// A random batch: inserts and overwrites, deletes by id, and now and then a delete by
/// filter, which the primary expands into the deletes it made, or a conditional upsert,
/// which it resolves into the point or nothing.
fn batch(rng: &mut StdRng) -> Vec<WriteOp> {
    let n = rng.random_range(1..8);
    let mut ops: Vec<WriteOp> = (0..n)
        .map(|_| {
            let id = rng.random_range(0..60);
            point(rng, id)
        })
        .collect();
    if rng.random_bool(0.3) {
        ops.push(WriteOp::Delete(ametist_engine::messages::DeleteVector { id: PointId::Num(rng.random_range(0..60)) }));
    }
    if rng.random_bool(0.1) {
        let filter: Filter = serde_json::from_value(serde_json::json!({
            "must": [{ "key": "group", "match": { "value": rng.random_range(0..4) } }]
        }))
        .expect("a filter");
        ops.push(WriteOp::ByFilter { filter, action: FilterAction::Delete });
    }
    if rng.random_bool(0.3) {
        // A conditional upsert: the primary logs the point or nothing.
        use ametist_engine::messages::{UpdateMode, WriteCondition};
        let filter: Filter = serde_json::from_value(serde_json::json!({
            "must": [{ "key": "group", "match": { "value": rng.random_range(0..4) } }]
        }))
        .expect("a filter");
        let mode = [UpdateMode::Upsert, UpdateMode::InsertOnly, UpdateMode::UpdateOnly][rng.random_range(0..3)];
        let id = rng.random_range(0..60);
        let when = WriteCondition { mode, filter: rng.random_bool(0.5).then_some(filter) };
        ops.push(WriteOp::Conditional { when, op: Box::new(point(rng, id)) });
    }
    ops
}

/// Records shipped in order build an identical copy: same ids, versions, payloads and
/// vectors, also after both restart. A record shipped twice changes nothing; a gap is
/// refused and leaves the copy as it was.
#[test]
fn shipped_records_make_an_identical_copy_and_gaps_are_refused() {
    let mut rng = common::seeded_rng("shipped_records_make_an_identical_copy_and_gaps_are_refused");
    let primary = Copy::start(MemFs::new());
    let replica = Copy::start(MemFs::new());
    let mut last = 0;
    for _ in 0..60 {
        let logged = primary.write_logged(batch(&mut rng));
        let Some(lsn) = logged.lsn else {
            assert!(logged.ops.is_empty(), "a batch that logged nothing changes nothing");
            continue;
        };
        assert_eq!(lsn, last + 1, "the primary's records are consecutive");
        assert!(
            logged.ops.iter().all(|op| !matches!(op, WriteOp::ByFilter { .. } | WriteOp::Conditional { .. })),
            "filter and conditional ops are resolved"
        );
        let ack = replica.append(lsn, logged.ops.clone()).expect("the next record is taken");
        assert_eq!(ack.operation_id, lsn);
        // The same record again: the copy has it already.
        replica.append(lsn, logged.ops).expect("a duplicate is answered as applied");
        last = lsn;
    }
    assert_eq!(primary.records(), replica.records());

    let before = replica.records();
    let e = replica.append(last + 2, vec![point(&mut rng, 1)]).unwrap_err();
    assert!(
        matches!(e, EngineError::OutOfOrder { expected, got, .. } if expected == last + 1 && got == last + 2),
        "{e:?}"
    );
    assert!(e.is_retryable());
    assert_eq!(replica.records(), before, "a refused record changes nothing");

    let (primary, replica) = (primary.restart(), replica.restart());
    assert_eq!(primary.records(), replica.records(), "both copies recover the same state");
    let logged = primary.write_logged(vec![point(&mut rng, 7)]);
    replica.append(logged.lsn.expect("an insert is logged"), logged.ops).expect("records follow on after a restart");
    assert_eq!(primary.records(), replica.records());
}

/// A replica that holds a tail its primary never acknowledged (and the primary does not
/// have) is replaced by the primary's image: it takes the primary's state and version, its
/// own tail never comes back (not after a restart either), and the primary's next record
/// follows on.
#[test]
fn an_installed_image_replaces_a_diverged_copy_for_good() {
    let mut rng = common::seeded_rng("an_installed_image_replaces_a_diverged_copy_for_good");
    let primary = Copy::start(MemFs::new());
    let replica = Copy::start(MemFs::new());
    for _ in 0..20 {
        let logged = primary.write_logged(batch(&mut rng));
        if let Some(lsn) = logged.lsn {
            replica.append(lsn, logged.ops).expect("in order");
        }
    }
    // The replica gets records of its own past the primary's log (as a stale primary would).
    let stale_id = 1_000_000;
    let own = replica.ask(|r| PartitionMsg::Write(vec![point(&mut rng, stale_id)], r)).expect("written");
    for _ in 0..3 {
        replica.ask(|r| PartitionMsg::Write(vec![point(&mut rng, stale_id + 1)], r)).expect("written");
    }
    // Meanwhile the primary moves on.
    let moved_on = primary.write_logged(vec![point(&mut rng, 5), point(&mut rng, 6)]);
    assert!(own.operation_id >= moved_on.lsn.unwrap(), "the tails overlap in LSNs");

    let dir = tempdir();
    let image = dir.join("image");
    let path = image.to_string_lossy().into_owned();
    primary.ask(|r| PartitionMsg::Snapshot(PartitionSnapshot { path: path.clone() }, r)).expect("image written");
    replica.ask(|r| PartitionMsg::Install(PartitionInstall { path }, r)).expect("image installed");
    assert_eq!(primary.records(), replica.records());
    let ids = |c: &Copy| c.records().into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert!(!ids(&replica).contains(&PointId::Num(stale_id)));

    let replica = replica.restart();
    assert_eq!(primary.records(), replica.records(), "the own tail does not come back at recovery");
    let next = primary.write_logged(vec![point(&mut rng, 8)]);
    replica.append(next.lsn.expect("logged"), next.ops).expect("the primary's next record follows the image");
    let replica = replica.restart();
    assert_eq!(primary.records(), replica.records());
    let _ = std::fs::remove_dir_all(dir);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ametist-replication-{}-{:?}", std::process::id(), Instant::now()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

/// A replica that fell behind gets the records it misses from the primary's log, as long as
/// the log holds them; once a snapshot truncated the log, there is no tail to give.
#[test]
fn the_log_gives_a_lagging_copy_its_missing_records_until_a_snapshot_truncates_it() {
    let mut rng = common::seeded_rng("the_log_gives_a_lagging_copy_its_missing_records_until_a_snapshot_truncates_it");
    let primary = Copy::start(MemFs::new());
    let replica = Copy::start(MemFs::new());
    let mut shipped = 0;
    for i in 0..40 {
        let logged = primary.write_logged(batch(&mut rng));
        if let Some(lsn) = logged.lsn {
            if i < 15 {
                replica.append(lsn, logged.ops).expect("in order");
                shipped = lsn;
            }
        }
    }
    let tail = |after: u64| primary.ask(|r| PartitionMsg::ReadLog { after, reply: r }).expect("the log reads");
    let records = tail(shipped).expect("the log holds everything after the replica's version");
    assert_eq!(records.first().map(|a| a.lsn), Some(shipped + 1));
    for record in records {
        replica.append(record.lsn, record.ops).expect("the tail follows on");
    }
    assert_eq!(primary.records(), replica.records());
    let version = primary.ask(PartitionMsg::Stats).expect("stats").version;
    assert_eq!(tail(version).map(|r| r.len()), Some(0), "nothing after the last record");

    // Fill a few log segments; a clean stop writes a snapshot and drops the log before it.
    for _ in 0..60 {
        primary.write_logged(batch(&mut rng));
    }
    let primary = primary.restart();
    let tail = |after: u64| primary.ask(|r| PartitionMsg::ReadLog { after, reply: r }).expect("the log reads");
    assert!(tail(shipped).is_none(), "the records after {shipped} were truncated: an image is needed");
    let version = primary.ask(PartitionMsg::Stats).expect("stats").version;
    assert_eq!(tail(version).map(|r| r.len()), Some(0));
}
