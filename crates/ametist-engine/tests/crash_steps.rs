//! Crash at every step of a durable partition's life, on the storage crate's in-memory file
//! system (`MemFs`), which models what is durable and simulates power loss.
//!
//! A scripted sequence of writes (upserts, deletes, payload and vector updates) runs against
//! a real partition actor whose store is a `DurableStore` on `MemFs`, with a snapshot policy
//! that snapshots (and truncates the log) every few writes, and a clean stop at the end
//! (which snapshots too). For every N, the file system "dies" after N mutations (every
//! later write, fsync, rename fails, as if the process had died there), then loses power in
//! one of four modes; the partition is started again and its state must equal the model
//! of the acknowledged writes (or that plus the one write in flight, whose outcome was
//! unknown). Then it is stopped, loses power again, and a second restart must find the same
//! state. Also: every byte offset of a truncated log tail recovers exactly a prefix.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ametist_core::{Metric, Payload, PointId};
use ametist_engine::config::{IndexConfig, StorageOptions};
use ametist_engine::messages::{
    DeleteVector, InsertVector, PartitionMsg, ScrollRequest, UpdateVector, WriteAck, WriteOp,
};
use ametist_engine::partition::{spawn_partition, PartitionRef, PartitionSpec};
use ametist_engine::store::{DurableStore, PartitionStore};
use ametist_engine::supervisor::ActorState;
use ametist_engine::{EngineError, SupervisionPolicy};
use ametist_storage::{CrashMode, MemFs};

const DIR: &str = "/data/collections/c/partitions/0";

fn options() -> StorageOptions {
    StorageOptions { snapshot_wal_bytes: 400, snapshot_interval: Duration::from_secs(3600), wal_segment_bytes: 256 }
}

fn spec() -> PartitionSpec {
    PartitionSpec {
        collection: "c".into(),
        id: 0,
        dim: 3,
        metric: Metric::Euclid,
        index: IndexConfig::default(),
        mailbox: 64,
        policy: SupervisionPolicy { max_restarts: 2, ..SupervisionPolicy::default() },
        payload_schema: Default::default(),
        text_schema: Default::default(),
        vectors: Default::default(),
        sparse_vectors: Default::default(),
    }
}

fn payload(i: u64) -> Payload {
    let mut p = Payload::new();
    p.insert("n".into(), serde_json::json!(i));
    p.insert("tag".into(), serde_json::json!(format!("t{}", i % 3)));
    p
}

/// A deterministic script of write batches.
fn script() -> Vec<Vec<WriteOp>> {
    let mut out = Vec::new();
    for step in 0..36u64 {
        let id = |k: u64| if k % 4 == 3 { PointId::Str(format!("s{k}")) } else { PointId::Num(k) };
        let v = |k: u64| vec![k as f32, step as f32, (k * step % 7) as f32 - 3.0];
        let batch = match step % 6 {
            0 | 1 => (0..3)
                .map(|j| {
                    let k = (step * 3 + j) % 14;
                    WriteOp::Insert(InsertVector { id: id(k), vectors: v(k).into(), metadata: Some(payload(step)) })
                })
                .collect(),
            2 => vec![WriteOp::Delete(DeleteVector { id: id(step % 14) })],
            3 => vec![
                WriteOp::Insert(InsertVector { id: id(step % 14), vectors: v(step).into(), metadata: None }),
                WriteOp::SetPayload { id: id(step % 14), payload: payload(step * 10) },
            ],
            4 => vec![
                WriteOp::Insert(InsertVector { id: id(20), vectors: v(20).into(), metadata: Some(payload(1)) }),
                WriteOp::Update(UpdateVector { id: id(20), vectors: v(21).into() }),
                WriteOp::DeletePayload { id: id(20), keys: vec!["tag".into()] },
            ],
            _ => vec![
                WriteOp::Insert(InsertVector { id: id(21), vectors: v(22).into(), metadata: Some(payload(2)) }),
                WriteOp::ClearPayload { id: id(21) },
            ],
        };
        out.push(batch);
    }
    out
}

type State = BTreeMap<PointId, (Vec<f32>, Payload)>;

/// The model: the state after the first `n` batches.
fn model(script: &[Vec<WriteOp>], n: usize) -> State {
    let mut s: BTreeMap<PointId, (Vec<f32>, Option<Payload>)> = BTreeMap::new();
    for op in script[..n].iter().flatten() {
        match op {
            WriteOp::Insert(p) => {
                s.insert(
                    p.id.clone(),
                    (
                        p.vectors.unnamed_vector().expect("the script writes unnamed vectors").to_vec(),
                        p.metadata.clone(),
                    ),
                );
            }
            WriteOp::Delete(d) => {
                s.remove(&d.id);
            }
            WriteOp::Update(u) => {
                s.get_mut(&u.id).unwrap().0 =
                    u.vectors.unnamed_vector().expect("the script writes unnamed vectors").to_vec()
            }
            op => op.apply_to_payload(&mut s.get_mut(op.id().unwrap()).unwrap().1),
        }
    }
    s.into_iter().map(|(id, (v, p))| (id, (v, p.unwrap_or_default()))).collect()
}

fn start(fs: &MemFs) -> (PartitionRef, std::thread::JoinHandle<()>) {
    let store: Arc<dyn PartitionStore> = Arc::new(DurableStore::with_fs(Arc::new(fs.clone()), DIR, 0, options()));
    spawn_partition(spec(), store)
}

fn wait_settled(p: &PartitionRef) -> ActorState {
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

fn write(p: &PartitionRef, ops: Vec<WriteOp>) -> Result<WriteAck, EngineError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    p.try_send(PartitionMsg::Write(ops, tx))?;
    rx.blocking_recv().map_err(|_| p.unavailable())?
}

fn read_all(p: &PartitionRef) -> State {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let req =
        ScrollRequest { filter: None, offset: None, limit: 10_000, with_payload: true, with_vector: true, order: None };
    p.try_send(PartitionMsg::Scroll(req, tx)).unwrap();
    let records = rx.blocking_recv().expect("partition answers").unwrap();
    records
        .into_iter()
        .map(|r| (r.vector().unwrap().to_vec(), r))
        .map(|(v, r)| (r.id, (v, r.payload.unwrap())))
        .collect()
}

fn stop(p: PartitionRef, t: std::thread::JoinHandle<()>) {
    let _ = p.try_send(PartitionMsg::Stop);
    drop(p);
    t.join().unwrap();
}

fn mode(n: u64) -> CrashMode {
    [CrashMode::DropUnsynced, CrashMode::KeepPrefix, CrashMode::KeepPrefixThenZeros, CrashMode::KeepPrefixThenGarbage]
        [(n % 4) as usize]
}

/// Runs the script until a write fails; returns how many were acknowledged.
fn run_script(p: &PartitionRef, script: &[Vec<WriteOp>]) -> usize {
    for (i, ops) in script.iter().enumerate() {
        if write(p, ops.clone()).is_err() {
            return i;
        }
    }
    script.len()
}

#[test]
fn crash_after_every_mutation_recovers_the_acknowledged_writes() {
    let script = script();
    // A clean run: how many mutations the workload (with its snapshots and the stop) makes.
    let fs = MemFs::new();
    let (p, t) = start(&fs);
    assert_eq!(wait_settled(&p), ActorState::Running);
    assert_eq!(run_script(&p, &script), script.len());
    assert_eq!(read_all(&p), model(&script, script.len()));
    stop(p, t);
    let total = fs.mutations();
    let snapshots = fs.paths().iter().filter(|p| p.to_string_lossy().ends_with(".snap")).count();
    assert!(snapshots >= 1, "the policy must have snapshotted: {:?}", fs.paths());
    println!("{total} mutations in the clean run; files at the end: {:?}", fs.paths());

    for n in 0..=total {
        let fs = MemFs::new();
        fs.crash_after_mutations(n);
        let (p, t) = start(&fs);
        let acked = if wait_settled(&p) == ActorState::Running { run_script(&p, &script) } else { 0 };
        stop(p, t);
        fs.crash(mode(n), n);

        // First restart.
        let (p, t) = start(&fs);
        assert_eq!(wait_settled(&p), ActorState::Running, "n={n}: {:?}", p.info());
        let got = read_all(&p);
        let ok = got == model(&script, acked) || (acked < script.len() && got == model(&script, acked + 1));
        assert!(ok, "n={n} mode={:?}: {acked} writes acknowledged, state {got:?}", mode(n));
        // Writes go on after recovery.
        let more = write(&p, script[0].clone()).is_ok();
        assert!(more, "n={n}: the recovered partition takes writes");
        let after = read_all(&p);
        stop(p, t);
        fs.crash(mode(n + 1), n + 1000);

        // Second restart, after a clean stop and another power loss: nothing changes.
        let (p, t) = start(&fs);
        assert_eq!(wait_settled(&p), ActorState::Running, "n={n} (second restart): {:?}", p.info());
        assert_eq!(read_all(&p), after, "n={n}: the second restart changed the state");
        stop(p, t);
    }
}

#[test]
fn crash_during_recovery_then_again() {
    let script = script();
    let fs = MemFs::new();
    let (p, t) = start(&fs);
    wait_settled(&p);
    assert_eq!(run_script(&p, &script[..20]), 20);
    // Crash without a clean stop: the partition is dropped while the file system dies.
    fs.crash_after_mutations(0);
    stop(p, t);
    fs.crash(CrashMode::KeepPrefixThenGarbage, 7);
    let expected = model(&script, 20);
    // Die again at every step of the recovery itself.
    for n in 0..40 {
        fs.crash_after_mutations(n);
        let (p, t) = start(&fs);
        wait_settled(&p);
        stop(p, t);
        fs.crash(mode(n), n);
        let (p, t) = start(&fs);
        assert_eq!(wait_settled(&p), ActorState::Running);
        assert_eq!(read_all(&p), expected, "crash after {n} mutations of recovery");
        stop(p, t);
        fs.crash(CrashMode::DropUnsynced, 0);
    }
}

#[test]
fn every_truncation_of_the_log_tail_recovers_a_prefix() {
    let script = script();
    let fs = MemFs::new();
    let big = StorageOptions { snapshot_wal_bytes: u64::MAX, wal_segment_bytes: 1 << 20, ..options() };
    let store = DurableStore::with_fs(Arc::new(fs.clone()), DIR, 0, big);
    store.recover().unwrap();
    for ops in &script {
        store.append(ops).unwrap();
    }
    store.commit().unwrap();
    drop(store);
    let segment = fs
        .paths()
        .into_iter()
        .find(|p| p.starts_with(Path::new(DIR).join("wal")) && p.to_string_lossy().ends_with(".wal"))
        .unwrap();
    let full = fs.file_bytes(&segment).unwrap();
    for cut in 0..=full.len() {
        fs.write_file_durable(&segment, &full[..cut]);
        let store = DurableStore::with_fs(Arc::new(fs.clone()), DIR, 0, big);
        let rec = store.recover().unwrap();
        let n = rec.replay.len();
        let replayed: Vec<&Vec<WriteOp>> = rec.replay.iter().map(|(_, ops)| ops).collect();
        assert_eq!(replayed, script[..n].iter().collect::<Vec<_>>(), "cut at {cut}");
        assert!(rec.replay.iter().enumerate().all(|(i, (lsn, _))| *lsn == i as u64 + 1));
        if cut == full.len() {
            assert_eq!(n, script.len());
        }
    }
}

#[test]
fn a_failed_fsync_is_never_acknowledged_and_the_partition_rolls_back_to_disk() {
    use ametist_storage::{Fault as FsFault, FsOp};
    let script = script();
    let fs = MemFs::new();
    let (p, t) = start(&fs);
    wait_settled(&p);
    assert_eq!(run_script(&p, &script[..10]), 10);
    // The next WAL fsync fails once.
    fs.inject(FsFault::new(FsOp::Sync).on_path("/wal/"));
    let e = write(&p, script[10].clone()).unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    // The partition turned read-only and rolled back to what is durable; after its backoff
    // it reopened the log from disk (a new handle, no fsync retried on the failed one) and
    // takes writes again, without a restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.info().state != ActorState::ReadOnly {
        assert!(Instant::now() < deadline, "{:?}", p.info());
        std::thread::sleep(Duration::from_millis(1));
    }
    while p.info().state != ActorState::Running {
        assert!(Instant::now() < deadline, "{:?}", p.info());
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(p.info().restarts, 0, "{:?}", p.info());
    let got = read_all(&p);
    assert!(got == model(&script, 10) || got == model(&script, 11), "{got:?}");
    // It takes writes again; after a power loss everything acknowledged is there.
    assert_eq!(run_script(&p, &script[11..]), script.len() - 11);
    assert_eq!(read_all(&p), model(&script, script.len()));
    fs.crash_after_mutations(0);
    stop(p, t);
    fs.crash(CrashMode::DropUnsynced, 1);
    let (p, t) = start(&fs);
    assert_eq!(wait_settled(&p), ActorState::Running);
    assert_eq!(read_all(&p), model(&script, script.len()));
    stop(p, t);
}

#[test]
fn damage_in_the_durable_log_stops_the_partition_naming_the_file() {
    let script = script();
    let fs = MemFs::new();
    let opts = StorageOptions { snapshot_wal_bytes: u64::MAX, ..options() };
    let store: Arc<dyn PartitionStore> = Arc::new(DurableStore::with_fs(Arc::new(fs.clone()), DIR, 0, opts));
    let (p, t) = spawn_partition(spec(), store.clone());
    wait_settled(&p);
    assert_eq!(run_script(&p, &script), script.len());
    fs.crash_after_mutations(0);
    stop(p, t);
    fs.crash(CrashMode::DropUnsynced, 0);
    // Garble a record in the first of several segments (not the tail: durable data).
    let mut segments: Vec<_> = fs.paths().into_iter().filter(|p| p.to_string_lossy().ends_with(".wal")).collect();
    segments.sort();
    assert!(segments.len() > 2, "{segments:?}");
    let mut bytes = fs.file_bytes(&segments[0]).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 0x55;
    fs.write_file_durable(&segments[0], &bytes);
    let (p, t) = spawn_partition(spec(), store);
    assert_eq!(wait_settled(&p), ActorState::Stopped);
    let reason = p.info().stop_reason.unwrap();
    let name = segments[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(reason.contains(&name) && reason.contains("corrupt"), "{reason}");
    drop(p);
    t.join().unwrap();
}
