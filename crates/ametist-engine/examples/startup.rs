//! Start-up time of a durable database versus the time to build it: loads a TEXMEX
//! `base.fvecs` (e.g. glove-50 from the data preparation script) into a collection opened
//! on a directory, shuts down, and opens the directory again (recovery loads each
//! partition's snapshot, graph included, instead of rebuilding the index). Also measures
//! the start after a "crash" (the files copied before shutdown, so the log tail written
//! since the last periodic snapshot is replayed).
//!
//! ```text
//! cargo run --release -p ametist-engine --example startup -- DATA_DIR/glove-50 [cosine] [partitions]
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use ametist_core::{Metric, PointId};
use ametist_engine::{Ametist, CollectionConfig, EngineConfig, InsertVector, SearchRequest};

fn fvecs(path: &Path) -> (usize, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let dim = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    let mut out = Vec::with_capacity(bytes.len() / 4);
    for row in bytes.chunks_exact(4 * (dim + 1)) {
        out.extend(row[4..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())));
    }
    (dim, out)
}

fn du(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() { du(&e.path()) } else { m.len() };
    }
    total
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(args.get(1).expect("usage: startup DATA_DIR [cosine|euclid|dot] [partitions]"));
    let metric = match args.get(2).map(String::as_str) {
        Some("euclid") => Metric::Euclid,
        Some("dot") => Metric::Dot,
        _ => Metric::Cosine,
    };
    let partitions: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let (dim, base) = fvecs(&data.join("base.fvecs"));
    let n = base.len() / dim;
    let root = std::env::temp_dir().join(format!("ametist-startup-{}", std::process::id()));
    let (dir, crashed) = (root.join("db"), root.join("crashed"));
    println!("{n} vectors of {dim} dimensions, {metric:?}, {partitions} partitions, data in {}", root.display());

    let db = Ametist::open(&dir, EngineConfig::default()).await.unwrap();
    db.create_collection("c", CollectionConfig::new(dim, metric).with_partitions(partitions)).await.unwrap();
    let c = db.collection("c").unwrap();
    let t = Instant::now();
    for (chunk_no, chunk) in base.chunks(10_000 * dim).enumerate() {
        let points = chunk
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| InsertVector {
                id: PointId::Num((chunk_no * 10_000 + i) as u64),
                vectors: v.to_vec().into(),
                metadata: None,
            })
            .collect();
        c.upsert(points, true).await.unwrap();
    }
    let build = t.elapsed();
    println!("build (upsert wait=true, batches of 10000, logged and indexed): {build:.2?}");
    let q = base[..dim].to_vec();
    let hits = c.search(SearchRequest::new(q.clone(), 10)).await.unwrap().results;
    copy_tree(&dir, &crashed);
    let t = Instant::now();
    db.shutdown().await;
    println!("shutdown (writes a snapshot of every partition): {:.2?}; on disk: {} MiB", t.elapsed(), du(&dir) >> 20);

    let t = Instant::now();
    let db = Ametist::open(&dir, EngineConfig::default()).await.unwrap();
    let startup = t.elapsed();
    let c = db.collection("c").unwrap();
    assert_eq!(c.count(None).await.unwrap(), n);
    assert_eq!(c.search(SearchRequest::new(q.clone(), 10)).await.unwrap().results, hits);
    println!("start-up after a clean shutdown (snapshot with graph, no rebuild): {startup:.2?}");
    db.shutdown().await;

    let t = Instant::now();
    let db = Ametist::open(&crashed, EngineConfig::default()).await.unwrap();
    let startup = t.elapsed();
    let c = db.collection("c").unwrap();
    assert_eq!(c.count(None).await.unwrap(), n);
    println!("start-up after a crash (last periodic snapshot + log tail replayed): {startup:.2?}");
    db.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}
