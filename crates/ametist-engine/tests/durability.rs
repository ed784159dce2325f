//! A database opened on a directory: restarts, crashes, supervised restarts, snapshots.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ametist_core::{Metric, Payload, PointId};
use ametist_engine::config::StorageOptions;
use ametist_engine::messages::{Fault, FilterAction, ScrollRequest};
use ametist_engine::supervisor::ActorState;
use ametist_engine::{Ametist, CollectionConfig, EngineConfig, InsertVector, SearchRequest, SupervisionPolicy};
use rand::Rng;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let p = std::env::temp_dir().join(format!("ametist-durability-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type State = Vec<(PointId, Vec<f32>, Payload, u64)>;

async fn state(db: &Ametist, name: &str) -> State {
    let c = db.collection(name).unwrap();
    let mut out = Vec::new();
    let mut offset = None;
    loop {
        let req =
            ScrollRequest { filter: None, offset, limit: 1000, with_payload: true, with_vector: true, order: None };
        let (page, next) = c.scroll(req).await.unwrap();
        out.extend(
            page.into_iter()
                .map(|r| (r.vector().unwrap().to_vec(), r))
                .map(|(v, r)| (r.id, v, r.payload.unwrap(), r.version)),
        );
        match next {
            Some(n) => offset = Some(n),
            None => return out,
        }
    }
}

fn point(i: u64, dim: usize, salt: f32) -> InsertVector {
    let mut p = Payload::new();
    p.insert("i".into(), serde_json::json!(i));
    p.insert("salt".into(), serde_json::json!(salt));
    let id = if i.is_multiple_of(3) { PointId::Str(format!("id-{i}")) } else { PointId::Num(i) };
    InsertVector {
        id,
        vectors: ((0..dim).map(|d| (i as f32 + d as f32 * 0.5 + salt).sin()).collect::<Vec<f32>>()).into(),
        metadata: Some(p),
    }
}

fn small_snapshots() -> EngineConfig {
    EngineConfig {
        storage: StorageOptions {
            snapshot_wal_bytes: 8 << 10,
            snapshot_interval: Duration::from_secs(3600),
            wal_segment_bytes: 4 << 10,
        },
        ..EngineConfig::default()
    }
}

/// Writes a mix of upserts, overwrites, deletes and payload updates.
async fn workload(db: &Ametist, name: &str, dim: usize) {
    let c = db.collection(name).unwrap();
    for chunk in 0..10u64 {
        let pts = (chunk * 30..chunk * 30 + 30).map(|i| point(i, dim, 0.0)).collect();
        c.upsert(pts, true).await.unwrap();
    }
    let pts = (0..50).map(|i| point(i * 2, dim, 1.5)).collect();
    c.upsert(pts, true).await.unwrap();
    c.delete((0..40).map(|i| PointId::Num(i * 7 + 1)).collect(), true).await.unwrap();
    let mut p = Payload::new();
    p.insert("flag".into(), serde_json::json!(true));
    let filter =
        serde_json::from_value(serde_json::json!({"must": [{"key": "i", "range": {"gte": 10, "lt": 60}}]})).unwrap();
    c.update_payload(ametist_engine::collection::Target::Filter(filter), FilterAction::SetPayload(p), true)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_clean_shutdown_gives_identical_state() {
    let dir = TempDir::new("clean");
    let db = Ametist::open(&dir.0, small_snapshots()).await.unwrap();
    db.create_collection("a", CollectionConfig::new(8, Metric::Cosine).with_partitions(3)).await.unwrap();
    db.create_collection("b", CollectionConfig::new(4, Metric::Euclid).with_partitions(1)).await.unwrap();
    workload(&db, "a", 8).await;
    workload(&db, "b", 4).await;
    let (a, b) = (state(&db, "a").await, state(&db, "b").await);
    assert!(a.len() > 200);
    let hits = db.collection("a").unwrap().search(SearchRequest::new(vec![0.3; 8], 10)).await.unwrap();
    db.shutdown().await;

    let db = Ametist::open(&dir.0, small_snapshots()).await.unwrap();
    assert_eq!(db.list_collections(), vec!["a".to_string(), "b".to_string()]);
    assert_eq!(db.collection("a").unwrap().spec().partitions, 3);
    assert_eq!(state(&db, "a").await, a);
    assert_eq!(state(&db, "b").await, b);
    let again = db.collection("a").unwrap().search(SearchRequest::new(vec![0.3; 8], 10)).await.unwrap();
    assert_eq!(again.results, hits.results, "the graph was loaded, not rebuilt differently");
    // Deleting is durable too.
    assert!(db.delete_collection("b").await.unwrap());
    db.shutdown().await;
    let db = Ametist::open(&dir.0, small_snapshots()).await.unwrap();
    assert_eq!(db.list_collections(), vec!["a".to_string()]);
    assert_eq!(state(&db, "a").await, a);
    db.shutdown().await;
}

/// Copies a directory tree: what a process crash leaves on disk, taken while the database
/// is idle (every acknowledged write is in the files; nothing was shut down).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_a_crash_gives_identical_state() {
    let dir = TempDir::new("crash");
    let db = Ametist::open(&dir.0, small_snapshots()).await.unwrap();
    db.create_collection("a", CollectionConfig::new(8, Metric::Dot).with_partitions(2)).await.unwrap();
    workload(&db, "a", 8).await;
    let a = state(&db, "a").await;
    // "Crash": the files as they are now, without any shutdown work.
    let crashed = TempDir::new("crash-copy");
    copy_tree(&dir.0, &crashed.0);
    db.shutdown().await;

    for _ in 0..2 {
        let db = Ametist::open(&crashed.0, small_snapshots()).await.unwrap();
        assert_eq!(state(&db, "a").await, a);
        db.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_restarts_mid_stream_lose_no_acknowledged_write() {
    let mut rng = common::seeded_rng("supervised_restarts_mid_stream_lose_no_acknowledged_write");
    let dir = TempDir::new("supervised");
    let config = EngineConfig {
        supervision: SupervisionPolicy { max_restarts: 1000, ..SupervisionPolicy::default() },
        ..small_snapshots()
    };
    let db = Ametist::open(&dir.0, config.clone()).await.unwrap();
    db.create_collection("c", CollectionConfig::new(4, Metric::Euclid).with_partitions(3)).await.unwrap();
    let c = db.collection("c").unwrap();
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (c, acked) = (c.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..150u64 {
                let id = w * 10_000 + i;
                let p = InsertVector {
                    id: PointId::Num(id),
                    vectors: vec![id as f32, 1.0, 2.0, 3.0].into(),
                    metadata: None,
                };
                if c.upsert(vec![p], true).await.is_ok() {
                    acked.lock().unwrap().push(id);
                }
            }
        }));
    }
    let mut panics = 0;
    while !writers.iter().all(|w| w.is_finished()) {
        let p = rng.random_range(0..3);
        if c.inject_fault(p, Fault::Panic("mid-stream".into())).await.is_ok() {
            panics += 1;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(1..15))).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(panics > 3, "only {panics} faults injected");
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.partitions().await.unwrap().iter().any(|(p, _)| p.state != ActorState::Running) {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "{} writes acknowledged", acked.len());
    let check = |records: Vec<ametist_engine::messages::Record>| {
        assert_eq!(records.len(), acked.len(), "every acknowledged write is there");
        for (r, id) in records.iter().zip(&acked) {
            assert_eq!(r.id, PointId::Num(*id));
            assert_eq!(r.vector(), Some(&[*id as f32, 1.0, 2.0, 3.0][..]));
        }
    };
    let ids: Vec<PointId> = acked.iter().map(|i| PointId::Num(*i)).collect();
    check(c.get(ids.clone(), false, true).await.unwrap());
    db.shutdown().await;
    // And after a restart of the process.
    let db = Ametist::open(&dir.0, config).await.unwrap();
    check(db.collection("c").unwrap().get(ids, false, true).await.unwrap());
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_compacted_by_snapshots() {
    let dir = TempDir::new("compaction");
    let db = Ametist::open(&dir.0, small_snapshots()).await.unwrap();
    db.create_collection("c", CollectionConfig::new(16, Metric::Euclid).with_partitions(1)).await.unwrap();
    let c = db.collection("c").unwrap();
    for round in 0..60u64 {
        let pts = (0..20).map(|i| point(round * 20 + i, 16, 0.0)).collect();
        c.upsert(pts, true).await.unwrap();
    }
    let p0 = dir.0.join("collections/c/partitions/0");
    let count = |sub: &str, ext: &str| {
        std::fs::read_dir(p0.join(sub))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(ext))
            .count()
    };
    // 60 batches of ~1.5 KiB: ~90 KiB of log, snapshots every 8 KiB, 4 KiB segments. A
    // snapshot is written after the write's acknowledgement, and the oldest is pruned just
    // after the newest is renamed in: wait for the partition to settle.
    let deadline = Instant::now() + Duration::from_secs(10);
    while count("snapshots", ".snap") != 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(count("snapshots", ".snap") == 2, "two snapshots are kept");
    assert!(count("wal", ".wal") <= 8, "the log was truncated: {} segments", count("wal", ".wal"));
    let s = state(&db, "c").await;
    assert_eq!(s.len(), 1200);
    db.shutdown().await;
    let db = Ametist::open(&dir.0, small_snapshots()).await.unwrap();
    assert_eq!(state(&db, "c").await, s);
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_newest_snapshot_falls_back_to_the_previous_one_and_the_log() {
    let dir = TempDir::new("corrupt");
    let db = Ametist::open(&dir.0, small_snapshots()).await.unwrap();
    db.create_collection("c", CollectionConfig::new(16, Metric::Euclid).with_partitions(1)).await.unwrap();
    let c = db.collection("c").unwrap();
    for round in 0..30u64 {
        let pts = (0..20).map(|i| point(round * 20 + i, 16, 0.0)).collect();
        c.upsert(pts, true).await.unwrap();
    }
    let s = state(&db, "c").await;
    db.shutdown().await;
    let snaps = dir.0.join("collections/c/partitions/0/snapshots");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&snaps).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 2);
    let newest = files.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(newest, bytes).unwrap();

    let db = Ametist::open(&dir.0, small_snapshots()).await.unwrap();
    assert_eq!(state(&db, "c").await, s, "older snapshot + log give the same state");
    assert!(std::fs::read_dir(&snaps).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".corrupt")));
    db.shutdown().await;
}

/// A newest snapshot whose checksum holds but whose image does not decode (say, written by
/// a build that stored a setting it could not read back) is passed over like a torn one:
/// the partition serves from the older snapshot and the log instead of stopping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_newest_snapshot_falls_back_to_the_previous_one_and_the_log() {
    let dir = TempDir::new("undecodable");
    let db = Ametist::open(&dir.0, small_snapshots()).await.unwrap();
    db.create_collection("c", CollectionConfig::new(16, Metric::Euclid).with_partitions(1)).await.unwrap();
    let c = db.collection("c").unwrap();
    for round in 0..30u64 {
        let pts = (0..20).map(|i| point(round * 20 + i, 16, 0.0)).collect();
        c.upsert(pts, true).await.unwrap();
    }
    let s = state(&db, "c").await;
    db.shutdown().await;
    let snaps = dir.0.join("collections/c/partitions/0/snapshots");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&snaps).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 2);
    let newest = files.last().unwrap();
    let lsn: u64 = newest.file_stem().unwrap().to_str().unwrap().trim_start_matches("snapshot-").parse().unwrap();
    // Rewritten through the storage layer: a valid trailer and checksum around bytes that
    // are not a partition image.
    let store = ametist_storage::SnapshotStore::open(&snaps).unwrap();
    store.write(lsn, 2, &mut |w| w.write_all(b"not a partition image")).unwrap();

    let db = Ametist::open(&dir.0, small_snapshots()).await.unwrap();
    let c = db.collection("c").unwrap();
    assert!(c.partitions().await.unwrap().iter().all(|(p, _)| p.state == ActorState::Running));
    assert_eq!(state(&db, "c").await, s, "older snapshot + log give the same state");
    assert!(std::fs::read_dir(&snaps).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".corrupt")));
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_name_snapshots_restores_and_deletes() {
    // Every file and hidden directory named after a collection must fit in a file name: a
    // 255-byte name used to fail half-way through snapshots, restores and deletes.
    let dir = TempDir::new("long-names");
    let db = Ametist::open(&dir.0, EngineConfig::default()).await.unwrap();
    let too_long = "n".repeat(ametist_engine::db::MAX_NAME_BYTES + 1);
    let e = db.create_collection(&too_long, CollectionConfig::new(8, Metric::Dot)).await.unwrap_err();
    assert!(e.is_bad_input() && e.to_string().contains("at most"), "{e}");
    let name = "n".repeat(ametist_engine::db::MAX_NAME_BYTES);
    db.create_collection(&name, CollectionConfig::new(8, Metric::Dot).with_partitions(16)).await.unwrap();
    workload(&db, &name, 8).await;
    let before = state(&db, &name).await;
    let c = db.collection(&name).unwrap();
    let snap = c.create_snapshot().await.unwrap();
    db.restore_collection(&name, c.snapshot_path(&snap.name).unwrap()).await.unwrap();
    assert_eq!(state(&db, &name).await, before);
    assert!(db.delete_collection(&name).await.unwrap());
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_snapshots_list_download_and_restore() {
    let dir = TempDir::new("collection-snapshots");
    let db = Ametist::open(&dir.0, EngineConfig::default()).await.unwrap();
    db.create_collection("a", CollectionConfig::new(8, Metric::Cosine).with_partitions(3)).await.unwrap();
    workload(&db, "a", 8).await;
    let a = state(&db, "a").await;
    let c = db.collection("a").unwrap();
    let snap = c.create_snapshot().await.unwrap();
    assert!(snap.name.starts_with("a-") && snap.name.ends_with(".snapshot"), "{snap:?}");
    assert!(snap.size > 1000);
    assert!(snap.creation_time.as_deref().unwrap().contains('T'));
    assert_eq!(c.list_snapshots().unwrap(), vec![snap.clone()]);
    let path = c.snapshot_path(&snap.name).unwrap();
    assert!(c.snapshot_path("../../etc/passwd").is_err());
    assert!(c.snapshot_path("nope.snapshot").is_err());

    // Restore under another name, and over the original after changing it.
    db.restore_collection("copy", &path).await.unwrap();
    assert_eq!(state(&db, "copy").await, a);
    assert_eq!(db.collection("copy").unwrap().spec().partitions, 3);
    c.delete((0..300).map(PointId::Num).collect(), true).await.unwrap();
    assert_ne!(state(&db, "a").await, a);
    db.restore_collection("a", &path).await.unwrap();
    assert_eq!(state(&db, "a").await, a);
    // A damaged file is refused and changes nothing.
    let bad = dir.0.join("bad.snapshot");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 3] ^= 1;
    std::fs::write(&bad, &bytes).unwrap();
    let e = db.restore_collection("a", &bad).await.unwrap_err();
    assert!(e.is_bad_input() && e.to_string().contains("checksum"), "{e}");
    assert_eq!(state(&db, "a").await, a);
    // Restored collections are durable and take writes.
    db.collection("copy").unwrap().upsert(vec![point(5000, 8, 0.0)], true).await.unwrap();
    let copy = state(&db, "copy").await;
    db.shutdown().await;
    let db = Ametist::open(&dir.0, EngineConfig::default()).await.unwrap();
    assert_eq!(state(&db, "a").await, a);
    assert_eq!(state(&db, "copy").await, copy);
    assert!(db.collection("a").unwrap().delete_snapshot(&snap.name).unwrap());
    assert!(db.collection("a").unwrap().list_snapshots().unwrap().is_empty());
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_snapshot_and_restore_messages_use_the_image_format() {
    use ametist_engine::messages::{PartitionRestore, PartitionSnapshot};
    let dir = TempDir::new("partition-messages");
    let db = Ametist::open(&dir.0, EngineConfig::default()).await.unwrap();
    db.create_collection("a", CollectionConfig::new(4, Metric::Euclid).with_partitions(1)).await.unwrap();
    workload(&db, "a", 4).await;
    let a = state(&db, "a").await;
    let file = dir.0.join("p0.image");
    let c = db.collection("a").unwrap();
    let stats = c.partition_snapshot(0, PartitionSnapshot { path: file.to_string_lossy().into() }).await.unwrap();
    assert_eq!(stats.doc_count, a.len());
    c.delete((0..300).map(PointId::Num).collect(), true).await.unwrap();
    // A bad file is refused before anything changes.
    std::fs::write(dir.0.join("junk"), b"junk").unwrap();
    let junk = PartitionRestore { path: dir.0.join("junk").to_string_lossy().into() };
    assert!(c.partition_restore(0, junk).await.is_err());
    let changed = state(&db, "a").await;
    assert_ne!(changed, a);
    c.partition_restore(0, PartitionRestore { path: file.to_string_lossy().into() }).await.unwrap();
    let strip = |s: State| s.into_iter().map(|(id, v, p, _)| (id, v, p)).collect::<Vec<_>>();
    assert_eq!(strip(state(&db, "a").await), strip(a.clone()));
    // The restore is durable.
    db.shutdown().await;
    let db = Ametist::open(&dir.0, EngineConfig::default()).await.unwrap();
    assert_eq!(strip(state(&db, "a").await), strip(a));
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_index_schema_survives_a_restart() {
    let dir = TempDir::new("schemas");
    let db = Ametist::open(&dir.0, EngineConfig::default()).await.unwrap();
    db.create_collection("a", CollectionConfig::new(4, Metric::Euclid).with_partitions(2)).await.unwrap();
    let c = db.collection("a").unwrap();
    c.create_text_index("body", Default::default()).await.unwrap();
    let schema = c.text_schema();
    assert!(schema.contains_key("body"));
    db.shutdown().await;
    let db = Ametist::open(&dir.0, EngineConfig::default()).await.unwrap();
    assert_eq!(db.collection("a").unwrap().text_schema(), schema);
    db.shutdown().await;
}

/// Conditional upserts (`update_mode`, `update_filter`) are judged by the partition against
/// the point as the batch finds it, and the log holds what they resolved to: a crash copy
/// and a clean reopen give the same state, which is the one the conditions decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_upserts_resolve_in_the_partition_and_replay_identically() {
    use ametist_core::filter::Filter;
    use ametist_engine::messages::{UpdateMode, WriteCondition};
    let dir = TempDir::new("conditional");
    let db = Ametist::open(&dir.0, small_snapshots()).await.unwrap();
    db.create_collection("a", CollectionConfig::new(4, Metric::Dot).with_partitions(2)).await.unwrap();
    let c = db.collection("a").unwrap();
    c.upsert((0..20).map(|i| point(i, 4, 0.0)).collect(), true).await.unwrap();
    let filter = Filter::from_value(serde_json::json!({"must": [{"key": "i", "range": {"lt": 10}}]})).unwrap();
    // Points 0..10 match the filter and are replaced; 10..20 do not and stay; 20..25 are new
    // and inserted whatever the filter says.
    let when = WriteCondition { mode: UpdateMode::Upsert, filter: Some(filter) };
    c.upsert_if((0..25).map(|i| point(i, 4, 1.0)).collect(), when, true).await.unwrap();
    // insert_only: 0..25 exist and stay; 25..30 are new. A point twice in one batch is
    // inserted by the first and left alone by the second.
    let mut twice: Vec<InsertVector> = (20..30).map(|i| point(i, 4, 2.0)).collect();
    twice.push(point(29, 4, 3.0));
    let insert_only = WriteCondition { mode: UpdateMode::InsertOnly, filter: None };
    c.upsert_if(twice, insert_only, true).await.unwrap();
    // update_only: 25..30 exist and are replaced; 30..35 are not inserted.
    let update_only = WriteCondition { mode: UpdateMode::UpdateOnly, filter: None };
    c.upsert_if((25..35).map(|i| point(i, 4, 4.0)).collect(), update_only, true).await.unwrap();
    let salt = |s: &State, i: u64| {
        let id = if i.is_multiple_of(3) { PointId::Str(format!("id-{i}")) } else { PointId::Num(i) };
        s.iter().find(|p| p.0 == id).map(|p| p.2["salt"].as_f64().unwrap())
    };
    let a = state(&db, "a").await;
    assert_eq!(a.len(), 30);
    for i in 0..35 {
        let want = match i {
            0..10 => Some(1.0),
            10..20 => Some(0.0),
            20..25 => Some(1.0),
            25..30 => Some(4.0),
            _ => None,
        };
        assert_eq!(salt(&a, i), want, "point {i}");
    }
    let crashed = TempDir::new("conditional-copy");
    copy_tree(&dir.0, &crashed.0);
    db.shutdown().await;
    for d in [&crashed.0, &dir.0] {
        let db = Ametist::open(d, small_snapshots()).await.unwrap();
        assert_eq!(state(&db, "a").await, a);
        db.shutdown().await;
    }
}
