//! Named dense vectors and sparse vectors through the actors: search correctness against
//! brute force, collection-wide idf, deletions in the statistics, validation and recovery.
//!
//! Randomised tests print their seed; set `AMETIST_TEST_SEED` to replay one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ametist_core::filter::Filter;
use ametist_core::sparse::{SparseModifier, SparseVector};
use ametist_core::{Metric, PointId};
use ametist_engine::collection::{Branch, Collection, Fusion, SparseQuery, Target};
use ametist_engine::messages::NamedVectors;
use ametist_engine::{Ametist, CollectionConfig, EngineConfig, SearchRequest};
use ametist_engine::{InsertVector, UpdateVector};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

fn seeded(test: &str) -> StdRng {
    let seed: u64 = std::env::var("AMETIST_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_nanos() as u64
    });
    println!("{test}: seed {seed} (replay with AMETIST_TEST_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let p = std::env::temp_dir().join(format!("ametist-named-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A named-only collection: `text` (4-d cosine), `image` (3-d euclid), `words` (sparse, idf).
fn config(partitions: usize) -> CollectionConfig {
    CollectionConfig::new(0, Metric::Cosine)
        .with_vector("text", 4, Metric::Cosine)
        .with_vector("image", 3, Metric::Euclid)
        .with_sparse_vector("words", SparseModifier::Idf)
        .with_partitions(partitions)
}

fn sparse(rng: &mut StdRng) -> SparseVector {
    let n = rng.random_range(1..6);
    let mut indices: Vec<u32> = (0..n).map(|_| rng.random_range(0..20)).collect();
    indices.sort_unstable();
    indices.dedup();
    let values = indices.iter().map(|_| rng.random_range(0.1f32..2.0)).collect();
    SparseVector { indices, values }
}

/// Points that each carry a random subset of the names.
fn points(rng: &mut StdRng, n: u64) -> Vec<InsertVector> {
    (0..n)
        .map(|i| {
            let mut named = NamedVectors::default();
            if rng.random_bool(0.8) {
                named.dense.insert("text".into(), (0..4).map(|_| rng.random_range(-1.0f32..1.0)).collect());
            }
            if rng.random_bool(0.7) {
                named.dense.insert("image".into(), (0..3).map(|_| rng.random_range(-1.0f32..1.0)).collect());
            }
            if rng.random_bool(0.8) {
                named.sparse.insert("words".into(), sparse(rng));
            }
            InsertVector { id: PointId::Num(i), vectors: named, metadata: json!({"group": i % 3}).as_object().cloned() }
        })
        .collect()
}

async fn all(c: &Collection, n: u64) -> BTreeMap<u64, NamedVectors> {
    let records = c.get((0..n).map(PointId::Num).collect(), false, true).await.unwrap();
    records
        .into_iter()
        .map(|r| match r.id {
            PointId::Num(i) => (i, r.vectors.expect("vectors were asked for")),
            PointId::Str(_) => unreachable!("numeric ids only"),
        })
        .collect()
}

fn sparse_query(name: &str, vector: SparseVector, k: usize) -> SparseQuery {
    SparseQuery {
        name: name.into(),
        vector,
        k,
        offset: 0,
        filter: None,
        with_payload: false,
        with_vector: false,
        score_threshold: None,
    }
}

fn idf(n: u64, df: u64) -> f64 {
    (1.0 + (n as f64 - df as f64 + 0.5) / (df as f64 + 0.5)).ln()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_dense_search_matches_brute_force() {
    let mut rng = seeded("named_dense_search_matches_brute_force");
    let db = Ametist::in_memory(EngineConfig::default());
    db.create_collection("c", config(3)).await.unwrap();
    let c = db.collection("c").unwrap();
    c.upsert(points(&mut rng, 300), true).await.unwrap();
    let stored = all(&c, 300).await;
    for name in ["text", "image"] {
        let metric = if name == "text" { Metric::Cosine } else { Metric::Euclid };
        let dim = if name == "text" { 4 } else { 3 };
        for _ in 0..10 {
            let q: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let group = rng.random_range(0..3u64);
            let filter = Filter::from_value(json!({"must": [{"key": "group", "match": {"value": group}}]})).unwrap();
            let mut req = SearchRequest::new(q.clone(), 10);
            req.using = name.into();
            req.filter = Some(filter);
            let hits = c.search(req).await.unwrap().results;
            let prepared = ametist_core::vector::prepare(metric, dim, q).unwrap();
            let mut expected: Vec<(f32, u64)> = stored
                .iter()
                .filter(|(i, _)| *i % 3 == group)
                .filter_map(|(i, v)| v.dense.get(name).map(|v| (metric.distance(&prepared, v), *i)))
                .collect();
            expected.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let want: Vec<u64> = expected.iter().take(10).map(|e| e.1).collect();
            let got: Vec<u64> = hits.iter().map(|h| if let PointId::Num(i) = h.id { i } else { 0 }).collect();
            assert_eq!(got, want, "vector {name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_search_matches_brute_force_without_modifier() {
    let mut rng = seeded("sparse_search_matches_brute_force_without_modifier");
    let db = Ametist::in_memory(EngineConfig::default());
    let cfg = CollectionConfig::new(2, Metric::Dot).with_sparse_vector("s", SparseModifier::None).with_partitions(4);
    db.create_collection("c", cfg).await.unwrap();
    let c = db.collection("c").unwrap();
    let docs: Vec<SparseVector> = (0..200).map(|_| sparse(&mut rng)).collect();
    let points = docs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut vectors = NamedVectors::unnamed(vec![1.0, 0.0]);
            vectors.sparse.insert("s".to_string(), v.clone());
            InsertVector { id: PointId::Num(i as u64), vectors, metadata: None }
        })
        .collect();
    c.upsert(points, true).await.unwrap();
    for _ in 0..10 {
        let q = sparse(&mut rng);
        let hits = c.sparse_search(sparse_query("s", q.clone(), 10)).await.unwrap().results;
        let mut expected: Vec<(f32, u64)> = docs
            .iter()
            .enumerate()
            .filter(|(_, d)| d.indices.iter().any(|i| q.indices.contains(i)))
            .map(|(i, d)| (d.dot(&q), i as u64))
            .collect();
        expected.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        assert_eq!(hits.len(), expected.len().min(10));
        for (h, e) in hits.iter().zip(&expected) {
            assert!((h.score - e.0).abs() < 1e-4, "{} vs {}", h.score, e.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idf_is_collection_wide_and_follows_deletions() {
    let mut rng = seeded("idf_is_collection_wide_and_follows_deletions");
    let pts = points(&mut rng, 120);
    let db = Ametist::in_memory(EngineConfig::default());
    let mut answers = Vec::new();
    for partitions in [1, 5] {
        let name = format!("p{partitions}");
        db.create_collection(&name, config(partitions)).await.unwrap();
        let c = db.collection(&name).unwrap();
        c.upsert(pts.clone(), true).await.unwrap();
        let q = SparseVector { indices: vec![1, 5, 7], values: vec![1.0, 0.5, 2.0] };
        let hits = c.sparse_search(sparse_query("words", q, 20)).await.unwrap().results;
        answers.push(hits.iter().map(|h| (h.id.clone(), h.score.to_bits())).collect::<Vec<_>>());
    }
    assert_eq!(answers[0], answers[1], "scores must not depend on the partition count");

    // Hand-computed idf of dimension 3 before and after deleting its holders one by one.
    let c = db.collection("p5").unwrap();
    let holders: Vec<u64> = pts
        .iter()
        .filter(|p| p.vectors.sparse.get("words").is_some_and(|v| v.indices.contains(&3)))
        .map(|p| if let PointId::Num(i) = p.id { i } else { 0 })
        .collect();
    let with_words = pts.iter().filter(|p| p.vectors.sparse.contains_key("words")).count() as u64;
    assert!(holders.len() >= 2, "the random corpus uses dimension 3");
    let q = SparseVector { indices: vec![3], values: vec![1.0] };
    let check = |hits: &[ametist_engine::ScoredDoc], n: u64, df: u64| {
        for h in hits {
            let i = if let PointId::Num(i) = h.id { i } else { 0 };
            let v = pts[i as usize].vectors.sparse["words"].clone();
            let value = v.values[v.indices.iter().position(|&d| d == 3).unwrap()];
            let want = (value as f64 * idf(n, df)) as f32;
            assert!((h.score - want).abs() < 1e-5, "point {i}: {} vs {want}", h.score);
        }
    };
    let hits = c.sparse_search(sparse_query("words", q.clone(), 200)).await.unwrap().results;
    assert_eq!(hits.len(), holders.len());
    check(&hits, with_words, holders.len() as u64);
    c.delete(vec![PointId::Num(holders[0])], true).await.unwrap();
    // A point losing its sparse vector counts out of N and df as well.
    c.delete_vectors(Target::Ids(vec![PointId::Num(holders[1])]), vec!["words".into()], true).await.unwrap();
    let hits = c.sparse_search(sparse_query("words", q, 200)).await.unwrap().results;
    assert_eq!(hits.len(), holders.len() - 2);
    check(&hits, with_words - 2, holders.len() as u64 - 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_dimensions_change_nothing() {
    let db = Ametist::in_memory(EngineConfig::default());
    db.create_collection("c", config(2)).await.unwrap();
    let c = db.collection("c").unwrap();
    let good = InsertVector {
        id: PointId::Num(1),
        vectors: NamedVectors { dense: [("text".to_string(), vec![1.0, 0.0, 0.0, 0.0])].into(), ..Default::default() },
        metadata: None,
    };
    let mut unknown = good.clone();
    unknown.id = PointId::Num(2);
    unknown.vectors.dense.insert("audio".into(), vec![1.0]);
    let e = c.upsert(vec![good.clone(), unknown], true).await.unwrap_err();
    assert!(e.is_bad_input() && e.to_string().contains("audio"), "{e}");
    let mut wrong_dim = good.clone();
    wrong_dim.vectors.dense.insert("image".into(), vec![1.0, 2.0]);
    let e = c.upsert(vec![wrong_dim], true).await.unwrap_err();
    assert!(e.is_bad_input() && e.to_string().contains("image"), "{e}");
    let mut unnamed = good.clone();
    unnamed.vectors.dense.insert(String::new(), vec![1.0; 4]);
    assert!(c.upsert(vec![unnamed], true).await.unwrap_err().is_bad_input());
    assert_eq!(c.count(None).await.unwrap(), 0, "nothing was written");

    c.upsert(vec![good], true).await.unwrap();
    let mut req = SearchRequest::new(vec![1.0; 4], 3);
    req.using = "nope".into();
    assert!(c.search(req).await.unwrap_err().to_string().contains("nope"));
    assert!(c.search(SearchRequest::new(vec![1.0; 4], 3)).await.unwrap_err().is_bad_input());
    let e = c.sparse_search(sparse_query("text", SparseVector::default(), 3)).await.unwrap_err();
    assert!(e.is_bad_input());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_fuses_dense_and_sparse_branches() {
    let mut rng = seeded("hybrid_fuses_dense_and_sparse_branches");
    let db = Ametist::in_memory(EngineConfig::default());
    db.create_collection("c", config(3)).await.unwrap();
    let c = db.collection("c").unwrap();
    c.upsert(points(&mut rng, 100), true).await.unwrap();
    let mut dense = SearchRequest::new(vec![0.5, 0.1, -0.2, 0.3], 10);
    dense.using = "text".into();
    let sq = sparse_query("words", SparseVector { indices: vec![2, 4], values: vec![1.0, 1.0] }, 10);
    let d = c.search(dense.clone()).await.unwrap().results;
    let s = c.sparse_search(sq.clone()).await.unwrap().results;
    let fused =
        c.hybrid(vec![Branch::Vector(dense.clone()), Branch::Sparse(sq.clone())], Fusion::Rrf, 5).await.unwrap();
    let ids = |l: &[ametist_engine::ScoredDoc]| l.iter().map(|h| h.id.clone()).collect::<Vec<_>>();
    let want = ametist_core::text::fusion::rrf(&[ids(&d), ids(&s)], 2.0);
    assert_eq!(ids(&fused.results), want.iter().take(5).map(|w| w.0.clone()).collect::<Vec<_>>());
    // Weighted RRF: a zero weight leaves only the other branch's order.
    let weighted = Fusion::WeightedRrf { k: 2.0, weights: vec![0.0, 1.0] };
    let only_sparse =
        c.hybrid(vec![Branch::Vector(dense.clone()), Branch::Sparse(sq.clone())], weighted, 5).await.unwrap();
    assert_eq!(ids(&only_sparse.results), ids(&s).into_iter().take(5).collect::<Vec<_>>());
    // Settings whose scores would not be finite numbers (`"score": null` in JSON) are
    // refused: k below 1 divides by zero at the top hit, huge weights overflow the sum.
    for (k, weights, named) in [(0.0, vec![], "k must be at least 1"), (1.0, vec![f32::MAX; 2], "too large")] {
        let fusion = Fusion::WeightedRrf { k, weights };
        let e = c.hybrid(vec![Branch::Vector(dense.clone()), Branch::Sparse(sq.clone())], fusion, 5).await.unwrap_err();
        assert!(e.is_bad_input() && e.to_string().contains(named), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_and_sparse_vectors_survive_restart_from_log_and_snapshot() {
    let mut rng = seeded("named_and_sparse_vectors_survive_restart_from_log_and_snapshot");
    let dir = TempDir::new("restart");
    let pts = points(&mut rng, 80);
    let q = SparseVector { indices: vec![1, 2, 3], values: vec![1.0, 1.0, 1.0] };
    let search = |c: Collection| {
        let q = q.clone();
        async move {
            let mut req = SearchRequest::new(vec![0.1, 0.2, 0.3], 5);
            req.using = "image".into();
            let dense = c.search(req).await.unwrap().results;
            let sparse = c.sparse_search(sparse_query("words", q, 5)).await.unwrap().results;
            (dense, sparse)
        }
    };
    let db = Ametist::open(&dir.0, EngineConfig::default()).await.unwrap();
    db.create_collection("c", config(2)).await.unwrap();
    let c = db.collection("c").unwrap();
    c.upsert(pts, true).await.unwrap();
    c.delete_vectors(Target::Ids(vec![PointId::Num(3)]), vec!["image".into()], true).await.unwrap();
    // By filter: every point of group 2 loses its `text` vector.
    let group2 = Filter::from_value(json!({"must": [{"key": "group", "match": {"value": 2}}]})).unwrap();
    c.delete_vectors(Target::Filter(group2), vec!["text".into()], true).await.unwrap();
    let mut update = NamedVectors::default();
    update.dense.insert("image".into(), vec![0.1, 0.2, 0.3]);
    c.update_vectors(vec![UpdateVector { id: PointId::Num(4), vectors: update }], true).await.unwrap();
    let before = (all(&c, 80).await, search(c.clone()).await);
    assert!(!before.0[&3].dense.contains_key("image"));
    assert!(before.0.iter().all(|(i, v)| i % 3 != 2 || !v.dense.contains_key("text")));
    assert_eq!(before.1 .0[0].id, PointId::Num(4));
    // Crash-like stop: the partitions replay their logs (no snapshot is due yet).
    drop(c);
    drop(db);
    let db = Ametist::open(&dir.0, EngineConfig::default()).await.unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!((all(&c, 80).await, search(c.clone()).await), before, "after log replay");
    // A clean shutdown writes snapshots; the next start loads them.
    db.shutdown().await;
    let db = Ametist::open(&dir.0, EngineConfig::default()).await.unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!((all(&c, 80).await, search(c.clone()).await), before, "after snapshot load");
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_graph_search_has_high_recall_with_and_without_filter() {
    let mut rng = seeded("named_graph_search_has_high_recall_with_and_without_filter");
    let db = Ametist::in_memory(EngineConfig::default());
    // A tiny full-scan threshold: every search walks the named vector's graph.
    let index = ametist_engine::config::IndexConfig { full_scan_threshold: 10, ..Default::default() };
    let cfg = CollectionConfig { partitions: Some(2), index: Some(index), ..CollectionConfig::new(0, Metric::Euclid) }
        .with_vector("v", 8, Metric::Euclid);
    db.create_collection("c", cfg).await.unwrap();
    let c = db.collection("c").unwrap();
    let vectors: Vec<Vec<f32>> = (0..3000).map(|_| (0..8).map(|_| rng.random_range(-1.0f32..1.0)).collect()).collect();
    // One batch of more than 1024 new points links in parallel.
    let points: Vec<InsertVector> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| InsertVector {
            id: PointId::Num(i as u64),
            vectors: NamedVectors { dense: [("v".to_string(), v.clone())].into(), ..Default::default() },
            metadata: json!({"group": i % 3}).as_object().cloned(),
        })
        .collect();
    c.upsert(points, true).await.unwrap();
    let (mut found, mut total) = (0usize, 0usize);
    for q in 0..30 {
        let query: Vec<f32> = (0..8).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let group = (q % 2 == 0).then_some(1u64);
        let mut req = SearchRequest::new(query.clone(), 10);
        req.using = "v".into();
        req.filter =
            group.map(|g| Filter::from_value(json!({"must": [{"key": "group", "match": {"value": g}}]})).unwrap());
        let hits = c.search(req).await.unwrap().results;
        let mut exact: Vec<(f32, u64)> = vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| group.is_none_or(|g| *i as u64 % 3 == g))
            .map(|(i, v)| (Metric::Euclid.distance(&query, v), i as u64))
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0));
        let want: std::collections::HashSet<u64> = exact.iter().take(10).map(|e| e.1).collect();
        for h in &hits {
            let PointId::Num(i) = h.id else { unreachable!("numeric ids") };
            assert!(group.is_none_or(|g| i % 3 == g), "a hit outside the filter");
            found += usize::from(want.contains(&i));
        }
        total += 10;
    }
    let recall = found as f64 / total as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_named_vector_in_a_mixed_update_changes_nothing() {
    let db = Ametist::in_memory(EngineConfig::default());
    let cfg = CollectionConfig::new(2, Metric::Euclid).with_vector("t", 3, Metric::Euclid).with_partitions(2);
    db.create_collection("c", cfg).await.unwrap();
    let c = db.collection("c").unwrap();
    let mut vectors = NamedVectors::unnamed(vec![1.0, 1.0]);
    vectors.dense.insert("t".to_string(), vec![1.0, 2.0, 3.0]);
    c.upsert(vec![InsertVector { id: PointId::Num(1), vectors, metadata: None }], true).await.unwrap();
    let before = c.get(vec![PointId::Num(1)], false, true).await.unwrap();
    let update = |t: Vec<f32>| {
        let mut vectors = NamedVectors::unnamed(vec![5.0, 5.0]);
        vectors.dense.insert("t".to_string(), t);
        vec![UpdateVector { id: PointId::Num(1), vectors }]
    };
    let e = c.update_vectors(update(vec![1.0]), true).await.unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    assert_eq!(c.get(vec![PointId::Num(1)], false, true).await.unwrap(), before, "nothing changed");
    c.update_vectors(update(vec![0.0, 0.0, 7.0]), true).await.unwrap();
    let after = c.get(vec![PointId::Num(1)], false, true).await.unwrap().remove(0);
    assert_eq!(after.vector(), Some(&[5.0, 5.0][..]));
    assert_eq!(after.vectors.unwrap().dense["t"], vec![0.0, 0.0, 7.0]);
}
