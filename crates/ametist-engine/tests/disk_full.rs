//! A full disk (issue 21, item 7), on the storage crate's in-memory file system (`MemFs`)
//! with injected ENOSPC faults.
//!
//! When the log of a partition cannot be written, the partition must keep answering reads
//! from memory, refuse writes at once with a retryable error naming ENOSPC, never
//! acknowledge a write that is not durable, roll its state back to what is durable, never
//! be stopped by its supervisor, and take writes again by itself once there is room, with
//! no restart. Randomised cases print their seed (replay with `AMETIST_TEST_SEED=<seed>`).

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ametist_core::{Metric, PointId};
use ametist_engine::config::{IndexConfig, StorageOptions};
use ametist_engine::messages::{InsertVector, PartitionMsg, ScrollRequest, SearchRequest, WriteAck, WriteOp};
use ametist_engine::partition::{spawn_partition, PartitionRef, PartitionSpec};
use ametist_engine::store::{DurableStore, PartitionStore};
use ametist_engine::supervisor::ActorState;
use ametist_engine::{EngineError, SupervisionPolicy};
use ametist_storage::{CrashMode, Fault, FsOp, MemFs};
use rand::Rng;

const DIR: &str = "/data/collections/c/partitions/0";

fn options() -> StorageOptions {
    // No snapshot gets in the way unless a test asks for one.
    StorageOptions {
        snapshot_wal_bytes: u64::MAX,
        snapshot_interval: Duration::from_secs(3600),
        wal_segment_bytes: 4096,
    }
}

fn spec() -> PartitionSpec {
    PartitionSpec {
        collection: "c".into(),
        id: 0,
        dim: 3,
        metric: Metric::Euclid,
        index: IndexConfig::default(),
        mailbox: 256,
        // Stricter than the default: a partition that failed even twice would be stopped.
        policy: SupervisionPolicy { max_restarts: 1, ..SupervisionPolicy::default() },
        payload_schema: Default::default(),
        text_schema: Default::default(),
        vectors: Default::default(),
        sparse_vectors: Default::default(),
    }
}

fn start_with(fs: &MemFs, options: StorageOptions) -> (PartitionRef, std::thread::JoinHandle<()>) {
    let store: Arc<dyn PartitionStore> = Arc::new(DurableStore::with_fs(Arc::new(fs.clone()), DIR, 0, options));
    spawn_partition(spec(), store)
}

fn start(fs: &MemFs) -> (PartitionRef, std::thread::JoinHandle<()>) {
    start_with(fs, options())
}

fn stop(p: PartitionRef, t: std::thread::JoinHandle<()>) {
    let _ = p.try_send(PartitionMsg::Stop);
    drop(p);
    t.join().unwrap();
}

/// A power loss: every later mutation fails, the partition stops, unsynced data is lost.
fn power_loss(fs: &MemFs, p: PartitionRef, t: std::thread::JoinHandle<()>) {
    fs.crash_after_mutations(0);
    stop(p, t);
    fs.crash(CrashMode::DropUnsynced, 0);
}

fn settle(p: &PartitionRef) -> ActorState {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = p.info().state;
        if s != ActorState::Recovering {
            return s;
        }
        assert!(Instant::now() < deadline, "partition did not finish recovering");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Point `i`: its own id, so that the state is the set of ids whose write was applied.
fn point(i: u64) -> WriteOp {
    WriteOp::Insert(InsertVector { id: PointId::Num(i), vectors: vec![i as f32, 1.0, -1.0].into(), metadata: None })
}

fn write(p: &PartitionRef, ops: Vec<WriteOp>) -> Result<WriteAck, EngineError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    p.try_send(PartitionMsg::Write(ops, tx))?;
    rx.blocking_recv().map_err(|_| p.unavailable())?
}

/// Reads: ids by scroll, the count and a search must all answer, and agree (call it while
/// no write is in flight).
fn ids(p: &PartitionRef) -> BTreeSet<u64> {
    let (ids, count, hits) = reads(p);
    assert_eq!(count, ids.len());
    assert_eq!(hits, ids.len().min(3));
    ids
}

/// Scroll, count and search, each of which must answer: ids, count, number of hits.
fn reads(p: &PartitionRef) -> (BTreeSet<u64>, usize, usize) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let req = ScrollRequest {
        filter: None,
        offset: None,
        limit: 100_000,
        with_payload: true,
        with_vector: true,
        order: None,
    };
    p.try_send(PartitionMsg::Scroll(req, tx)).expect("reads are accepted");
    let records = rx.blocking_recv().expect("the partition answers reads").expect("scroll succeeds");
    let ids: BTreeSet<u64> = records
        .into_iter()
        .map(|r| match r.id {
            PointId::Num(n) => n,
            other => panic!("unexpected id {other:?}"),
        })
        .collect();
    let (tx, rx) = tokio::sync::oneshot::channel();
    p.try_send(PartitionMsg::Count(None, tx)).expect("reads are accepted");
    let count = rx.blocking_recv().expect("the partition answers reads").expect("count succeeds");
    let (tx, rx) = tokio::sync::oneshot::channel();
    p.try_send(PartitionMsg::Search(SearchRequest::new(vec![0.0, 1.0, -1.0], 3), tx)).expect("reads are accepted");
    let hits = rx.blocking_recv().expect("the partition answers reads").expect("search succeeds");
    (ids, count, hits.len())
}

fn storage_message(e: &EngineError) -> &str {
    match e {
        EngineError::StorageUnavailable { message, .. } => message,
        other => panic!("expected a storage error, got {other:?}"),
    }
}

fn wait_for(p: &PartitionRef, state: ActorState, within: Duration) {
    let deadline = Instant::now() + within;
    while p.info().state != state {
        assert!(Instant::now() < deadline, "not {state:?} within {within:?}: {:?}", p.info());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The disk fills up for the log's writes: the failed write is not acknowledged, the state
/// goes back to what is durable, reads answer, writes are refused at once, and once there is
/// room the partition takes writes again by itself.
#[test]
fn a_full_disk_makes_the_partition_read_only_until_there_is_room() {
    let fs = MemFs::new();
    let (p, t) = start(&fs);
    assert_eq!(settle(&p), ActorState::Running);
    for i in 0..10 {
        write(&p, vec![point(i)]).expect("room on the disk");
    }
    let acked: BTreeSet<u64> = (0..10).collect();

    fs.inject(Fault::new(FsOp::Write).on_path(DIR).sticky().disk_full());
    let e = write(&p, vec![point(10), point(11)]).unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    let msg = storage_message(&e);
    assert!(msg.contains("ENOSPC") && msg.contains("may or may not have been applied"), "{msg}");
    wait_for(&p, ActorState::ReadOnly, Duration::from_secs(30));
    let info = p.info();
    let storage = info.storage_error.as_ref().expect("a read-only partition says why");
    assert!(storage.disk_full && storage.reason.contains("ENOSPC"), "{storage:?}");

    // Reads answer from memory, and hold exactly the acknowledged writes: the failed write
    // never reached the disk, and the state was rolled back to what is durable.
    assert_eq!(ids(&p), acked);
    // Writes are refused at once, saying nothing was written.
    let e = write(&p, vec![point(12)]).unwrap_err();
    let msg = storage_message(&e);
    assert!(msg.contains("not written") && msg.contains("ENOSPC"), "{msg}");
    assert!(e.to_string().contains("partition 0"), "{e}");
    assert!(p.write_refusal().is_some(), "the coordinator refuses before sending anything");

    // The partition retries its log (and fails while the disk is full) without a restart.
    // Polled rather than slept: on a loaded machine the first retry may come late.
    let deadline = Instant::now() + Duration::from_secs(30);
    let info = loop {
        let info = p.info();
        if info.storage_error.as_ref().is_some_and(|s| s.retries >= 1) || Instant::now() > deadline {
            break info;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(info.state, ActorState::ReadOnly, "{info:?}");
    assert_eq!(info.restarts, 0, "{info:?}");
    assert!(info.storage_error.as_ref().expect("still read-only").retries >= 1, "{info:?}");
    assert_eq!(ids(&p), acked);

    // Room again: writes come back by themselves within a few seconds.
    fs.clear_faults();
    wait_for(&p, ActorState::Running, Duration::from_secs(30));
    assert!(p.info().storage_error.is_none());
    assert!(p.write_refusal().is_none());
    for i in 20..25 {
        write(&p, vec![point(i)]).expect("room again");
    }
    let acked: BTreeSet<u64> = acked.into_iter().chain(20..25).collect();
    assert_eq!(ids(&p), acked);
    assert_eq!(p.info().restarts, 0);

    // Everything acknowledged survives a power loss.
    power_loss(&fs, p, t);
    let (p, t) = start(&fs);
    assert_eq!(settle(&p), ActorState::Running);
    assert_eq!(ids(&p), acked);
    stop(p, t);
}

/// An fsync that fails after its write reached the file: the outcome is unknown, the state
/// in memory drops the write (it is not durable), and when the log is reopened the record
/// found in it is made durable and applied, so reads and the disk agree again.
#[test]
fn a_failed_fsync_rolls_back_and_the_log_found_on_reopening_is_applied() {
    let fs = MemFs::new();
    let (p, t) = start(&fs);
    assert_eq!(settle(&p), ActorState::Running);
    for i in 0..5 {
        write(&p, vec![point(i)]).unwrap();
    }
    fs.inject(Fault::new(FsOp::Sync).on_path("/wal/").sticky().disk_full());
    let e = write(&p, vec![point(5)]).unwrap_err();
    assert!(storage_message(&e).contains("may or may not have been applied"), "{e}");
    wait_for(&p, ActorState::ReadOnly, Duration::from_secs(30));
    assert_eq!(ids(&p), (0..5).collect(), "not durable, so not kept in memory");
    fs.clear_faults();
    wait_for(&p, ActorState::Running, Duration::from_secs(30));
    // The record was in the file; reopening the log made it durable and it was applied.
    assert_eq!(ids(&p), (0..6).collect());
    write(&p, vec![point(6)]).unwrap();
    power_loss(&fs, p, t);
    let (p, t) = start(&fs);
    assert_eq!(settle(&p), ActorState::Running);
    assert_eq!(ids(&p), (0..7).collect());
    assert_eq!(p.info().restarts, 0);
    stop(p, t);
}

/// A partition started on a disk it cannot write comes up read-only with its data, and
/// takes writes once there is room.
#[test]
fn a_partition_started_on_a_full_disk_serves_reads_and_resumes() {
    let fs = MemFs::new();
    let (p, t) = start(&fs);
    assert_eq!(settle(&p), ActorState::Running);
    for i in 0..8 {
        write(&p, vec![point(i)]).unwrap();
    }
    power_loss(&fs, p, t);
    // Opening the log fsyncs its tail: that fails now, as does any write.
    fs.inject(Fault::new(FsOp::Sync).on_path("/wal/").sticky().disk_full());
    fs.inject(Fault::new(FsOp::Write).on_path(DIR).sticky().disk_full());
    let (p, t) = start(&fs);
    assert_eq!(settle(&p), ActorState::ReadOnly, "{:?}", p.info());
    assert_eq!(ids(&p), (0..8).collect());
    let e = write(&p, vec![point(100)]).unwrap_err();
    assert!(storage_message(&e).contains("ENOSPC"), "{e}");
    fs.clear_faults();
    wait_for(&p, ActorState::Running, Duration::from_secs(30));
    write(&p, vec![point(8)]).unwrap();
    assert_eq!(ids(&p), (0..9).collect());
    assert_eq!(p.info().restarts, 0);
    stop(p, t);
}

/// Snapshots that fail for lack of room keep the log and do not stop the partition; a clean
/// stop whose snapshot fails loses nothing either.
#[test]
fn failed_snapshots_keep_the_log_and_the_partition() {
    let fs = MemFs::new();
    let tiny = StorageOptions { snapshot_wal_bytes: 200, ..options() };
    let (p, t) = start_with(&fs, tiny);
    assert_eq!(settle(&p), ActorState::Running);
    fs.inject(Fault::new(FsOp::Write).on_path("/snapshots/").sticky().disk_full());
    for i in 0..40 {
        write(&p, vec![point(i)]).expect("the log has room, the snapshots do not");
    }
    assert_eq!(p.info().state, ActorState::Running);
    assert_eq!(p.info().restarts, 0);
    assert!(!fs.paths().iter().any(|f| f.to_string_lossy().ends_with(".snap")), "{:?}", fs.paths());
    // The snapshot at shutdown fails too; the log is all there is, and it is enough.
    stop(p, t);
    fs.crash(CrashMode::DropUnsynced, 0);
    let (p, t) = start_with(&fs, tiny);
    assert_eq!(settle(&p), ActorState::Running);
    assert_eq!(ids(&p), (0..40).collect());
    stop(p, t);
}

/// Random fault windows (ENOSPC on log writes or fsyncs, sticky for a while, then cleared)
/// under a stream of writes and concurrent readers: every read answers, every acknowledged
/// write is there, nothing refused up front is there, the partition is never stopped or
/// restarted, and after the last window it takes writes again; also after a power loss.
#[test]
fn random_full_disk_windows_lose_no_acknowledged_write() {
    let mut rng = common::seeded_rng("random_full_disk_windows_lose_no_acknowledged_write");
    let fs = MemFs::new();
    let (p, t) = start(&fs);
    assert_eq!(settle(&p), ActorState::Running);

    let stop_readers = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (p, stop_readers, answered) = (p.clone(), stop_readers.clone(), answered.clone());
            std::thread::spawn(move || {
                while !stop_readers.load(Ordering::Relaxed) {
                    // Writes go on meanwhile: the three reads need not agree, only answer.
                    reads(&p);
                    answered.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();

    let (mut acked, mut refused, mut unknown) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut next = 0u64;
    for window in 0..3 {
        // Some writes with room.
        for _ in 0..rng.random_range(3..15) {
            let batch: Vec<u64> = (next..next + rng.random_range(1..4)).collect();
            next += batch.len() as u64;
            write(&p, batch.iter().map(|&i| point(i)).collect()).expect("room on the disk");
            acked.extend(batch);
        }
        let op = if rng.random_bool(0.5) { FsOp::Write } else { FsOp::Sync };
        fs.inject(Fault::new(op).on_path("/wal/").after(rng.random_range(0..3)).sticky().disk_full());
        let full_for = Duration::from_millis(rng.random_range(300..2500));
        let until = Instant::now() + full_for;
        while Instant::now() < until {
            let batch: Vec<u64> = (next..next + rng.random_range(1..4)).collect();
            next += batch.len() as u64;
            match write(&p, batch.iter().map(|&i| point(i)).collect()) {
                Ok(_) => acked.extend(batch),
                Err(e) => {
                    assert!(e.is_retryable(), "window {window}: {e:?}");
                    let msg = storage_message(&e).to_string();
                    if msg.contains("not written") {
                        refused.extend(batch);
                    } else {
                        assert!(msg.contains("may or may not"), "{msg}");
                        unknown.extend(batch);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(0..20)));
        }
        assert!(!refused.is_empty() || !unknown.is_empty(), "window {window}: the disk was full for {full_for:?}");
        fs.clear_faults();
        wait_for(&p, ActorState::Running, Duration::from_secs(40));
        let now = ids(&p);
        assert!(acked.is_subset(&now), "window {window}: acknowledged writes missing: {:?}", acked.difference(&now));
        assert!(now.is_disjoint(&refused), "window {window}: refused writes applied: {:?}", now.intersection(&refused));
        let info = p.info();
        assert_eq!(info.restarts, 0, "window {window}: {info:?}");
    }
    // Writes work after the last window.
    write(&p, vec![point(next)]).expect("room again");
    acked.insert(next);
    stop_readers.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("every read answered");
    }
    assert!(answered.load(Ordering::Relaxed) > 10);
    let before = ids(&p);
    power_loss(&fs, p, t);
    let (p, t) = start(&fs);
    assert_eq!(settle(&p), ActorState::Running);
    let after = ids(&p);
    assert_eq!(after, before, "the state read before the power loss is what is durable");
    assert!(acked.is_subset(&after));
    assert!(after.is_subset(&acked.union(&unknown).copied().collect()));
    stop(p, t);
}
