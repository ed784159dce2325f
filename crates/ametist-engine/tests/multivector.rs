//! Multivector fields (late interaction) through the actors: the graph walk and the exact
//! scan both equal a brute-force MaxSim on clustered data, for the unnamed field and a named
//! one, with filters, after updates and vector deletes, and after a restart from the WAL
//! and from partition images.
//!
//! Randomised tests print their seed; set `AMETIST_TEST_SEED` to replay one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ametist_core::filter::Filter;
use ametist_core::{multivector, vector, Metric, PointId};
use ametist_engine::collection::{Collection, Target};
use ametist_engine::config::{Comparator, IndexConfig, StorageOptions, VectorParams};
use ametist_engine::messages::NamedVectors;
use ametist_engine::{Ametist, CollectionConfig, EngineConfig, InsertVector, SearchRequest, UpdateVector};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const DIM: usize = 8;
const CLUSTERS: usize = 12;

fn seeded(test: &str) -> (u64, StdRng) {
    let seed: u64 = std::env::var("AMETIST_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_nanos() as u64
    });
    println!("{test}: seed {seed} (replay with AMETIST_TEST_SEED={seed})");
    (seed, StdRng::seed_from_u64(seed))
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
        let p = std::env::temp_dir().join(format!("ametist-multi-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The unnamed field is a cosine multivector, `late` a euclid one, `plain` a single dense
/// vector; a small full-scan threshold makes partitions walk their graphs.
fn config() -> CollectionConfig {
    let mut c = CollectionConfig::new(0, Metric::Cosine).with_partitions(2);
    c.vectors.insert(String::new(), VectorParams::new(DIM, Metric::Cosine).multi(Comparator::MaxSim));
    c.vectors.insert("late".into(), VectorParams::new(DIM, Metric::Euclid).multi(Comparator::MaxSim));
    c.vectors.insert("plain".into(), VectorParams::new(4, Metric::Dot));
    c.index = Some(IndexConfig { full_scan_threshold: 10, ..IndexConfig::default() });
    c
}

fn engine() -> EngineConfig {
    EngineConfig {
        storage: StorageOptions {
            snapshot_wal_bytes: 16 << 10,
            snapshot_interval: Duration::from_secs(3600),
            wal_segment_bytes: 8 << 10,
        },
        ..EngineConfig::default()
    }
}

/// A multivector of 1 to `max` vectors, each near one of the cluster centres.
fn multi(rng: &mut StdRng, centres: &[Vec<f32>], max: usize) -> Vec<f32> {
    let n = rng.random_range(1..=max);
    let mut out = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let c = &centres[rng.random_range(0..centres.len())];
        out.extend(c.iter().map(|x| x + rng.random_range(-0.15f32..0.15)));
    }
    out
}

fn centres(rng: &mut StdRng) -> Vec<Vec<f32>> {
    (0..CLUSTERS).map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()).collect()
}

/// Points with every subset of the three fields (some with none).
fn points(rng: &mut StdRng, centres: &[Vec<f32>], n: u64) -> Vec<InsertVector> {
    (0..n)
        .map(|i| {
            let mut v = NamedVectors::default();
            if i % 4 != 1 {
                v.dense.insert(String::new(), multi(rng, centres, 6));
            }
            if i % 3 != 2 {
                v.dense.insert("late".into(), multi(rng, centres, 4));
            }
            if i % 5 == 0 {
                v.dense.insert("plain".into(), (0..4).map(|_| rng.random_range(-1.0f32..1.0)).collect());
            }
            InsertVector {
                id: PointId::Num(i),
                vectors: v,
                metadata: json!({ "odd": i % 2 == 1 }).as_object().cloned(),
            }
        })
        .collect()
}

/// The expected top-k by brute force over what the test sent: (id, score).
fn brute(
    sent: &BTreeMap<u64, NamedVectors>,
    field: &str,
    metric: Metric,
    query: &[f32],
    k: usize,
    only_odd: bool,
) -> Vec<(u64, f32)> {
    let q = multivector::prepare(metric, DIM, query.to_vec()).expect("valid query");
    let mut all: Vec<(u64, f32)> = sent
        .iter()
        .filter(|(id, _)| !only_odd || *id % 2 == 1)
        .filter_map(|(id, v)| v.dense.get(field).map(|p| (*id, p)))
        .map(|(id, p)| {
            let p = multivector::prepare(metric, DIM, p.clone()).expect("valid point");
            (id, multivector::max_sim(metric, DIM, &q, &p))
        })
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all.into_iter().map(|(id, d)| (id, metric.score(d))).collect()
}

async fn search(c: &Collection, field: &str, query: &[f32], k: usize, exact: bool, only_odd: bool) -> Vec<(u64, f32)> {
    let mut req = SearchRequest::new(query.to_vec(), k);
    req.using = field.to_string();
    req.exact = exact;
    req.ef = Some(64);
    if only_odd {
        req.filter = Some(
            serde_json::from_value::<Filter>(json!({ "must": [{ "key": "odd", "match": { "value": true } }] }))
                .expect("filter"),
        );
    }
    let r = c.search(req).await.expect("search");
    assert!(r.missing_partitions.is_empty());
    r.results
        .into_iter()
        .map(|d| match d.id {
            PointId::Num(n) => (n, d.score),
            other => panic!("unexpected id {other:?}"),
        })
        .collect()
}

/// Compares ids in order (ties may swap: equal scores are checked instead) and scores.
fn same(got: &[(u64, f32)], want: &[(u64, f32)], what: &str, seed: u64) {
    assert_eq!(got.len(), want.len(), "{what} (seed {seed}): {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        let close = (g.1 - w.1).abs() <= 1e-4 * w.1.abs().max(1.0);
        assert!(close && (g.0 == w.0 || want.iter().any(|x| x.0 == g.0)), "{what} (seed {seed}): {got:?} vs {want:?}");
    }
}

async fn check_all(
    c: &Collection,
    sent: &BTreeMap<u64, NamedVectors>,
    rng: &mut StdRng,
    centres: &[Vec<f32>],
    seed: u64,
) {
    for round in 0..12 {
        let (field, metric) = if round % 2 == 0 { ("", Metric::Cosine) } else { ("late", Metric::Euclid) };
        let query = multi(rng, centres, 4);
        let only_odd = round % 3 == 0;
        let want = brute(sent, field, metric, &query, 10, only_odd);
        let exact = search(c, field, &query, 10, true, only_odd).await;
        same(&exact, &want, &format!("exact `{field}` round {round}"), seed);
        let walk = search(c, field, &query, 10, false, only_odd).await;
        same(&walk, &want, &format!("graph `{field}` round {round}"), seed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxsim_search_equals_brute_force_through_updates_deletes_and_restarts() {
    let (seed, mut rng) = seeded("maxsim_search_equals_brute_force_through_updates_deletes_and_restarts");
    let centres = centres(&mut rng);
    let dir = TempDir::new("maxsim");
    let mut sent: BTreeMap<u64, NamedVectors> = BTreeMap::new();
    {
        let db = Ametist::open(&dir.0, engine()).await.expect("open");
        db.create_collection("m", config()).await.expect("create");
        let c = db.collection("m").expect("collection");
        for chunk in 0..4u64 {
            let batch: Vec<InsertVector> = points(&mut rng, &centres, 150)
                .into_iter()
                .map(|mut p| {
                    let PointId::Num(i) = p.id else { unreachable!() };
                    p.id = PointId::Num(i + chunk * 150);
                    p
                })
                .collect();
            for p in &batch {
                let PointId::Num(i) = p.id else { unreachable!() };
                sent.insert(i, p.vectors.clone());
            }
            c.upsert(batch, true).await.expect("upsert");
        }
        check_all(&c, &sent, &mut rng, &centres, seed).await;

        // Replace some points' multivectors (fewer or more vectors than before) and delete
        // others' fields; the rest of each point is kept.
        let mut updates = Vec::new();
        let chosen: Vec<u64> = (0..600u64).filter(|i| i % 7 == 0 && sent[i].dense.contains_key("")).collect();
        for i in chosen {
            let v = multi(&mut rng, &centres, 6);
            sent.get_mut(&i).expect("sent").dense.insert(String::new(), v.clone());
            updates.push(UpdateVector { id: PointId::Num(i), vectors: NamedVectors::unnamed(v) });
        }
        c.update_vectors(updates, true).await.expect("update");
        let gone: Vec<PointId> = (0..600u64).filter(|i| i % 11 == 3).map(PointId::Num).collect();
        for id in &gone {
            let PointId::Num(i) = id else { unreachable!() };
            sent.get_mut(i).expect("sent").dense.remove("late");
        }
        c.delete_vectors(Target::Ids(gone), vec!["late".into()], true).await.expect("delete vectors");
        check_all(&c, &sent, &mut rng, &centres, seed).await;

        // What a point returns is what it was sent (normalised for cosine), in order.
        let got = c.get(vec![PointId::Num(0), PointId::Num(3)], false, true).await.expect("get");
        for r in got {
            let PointId::Num(i) = r.id else { unreachable!() };
            let v = r.vectors.expect("asked for vectors");
            for (name, metric) in [("", Metric::Cosine), ("late", Metric::Euclid)] {
                let want =
                    sent[&i].dense.get(name).map(|v| multivector::prepare(metric, DIM, v.clone()).expect("valid"));
                assert_eq!(v.dense.get(name), want.as_ref(), "point {i} field `{name}` (seed {seed})");
            }
        }
        db.shutdown().await;
    }
    let images = walk(&dir.0)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("snapshot-")))
        .count();
    assert!(images > 0, "the partitions wrote images, so that reopening reads multivector chains from them");
    // Reopened: images (the small WAL threshold made partitions write some) plus the WAL.
    let db = Ametist::open(&dir.0, engine()).await.expect("reopen");
    let c = db.collection("m").expect("collection");
    check_all(&c, &sent, &mut rng, &centres, seed).await;
    db.shutdown().await;
}

#[tokio::test]
async fn malformed_multivectors_are_refused_and_change_nothing() {
    let db = Ametist::in_memory(EngineConfig::default());
    db.create_collection("m", config()).await.expect("create");
    let c = db.collection("m").expect("collection");
    let ok = NamedVectors::unnamed(vec![0.5; DIM * 2]);
    c.upsert(vec![InsertVector { id: PointId::Num(1), vectors: ok, metadata: None }], true).await.expect("valid");
    let cases: Vec<(Vec<f32>, &str)> = vec![
        (vec![0.5; DIM + 3], "dim"),
        (vec![], "empty"),
        ([vec![0.5; DIM], vec![0.0; DIM]].concat(), "non-zero"),
        ([vec![0.5; DIM], vec![f32::NAN; DIM]].concat(), "vector 1 of the multivector"),
        (vec![0.5; DIM * (multivector::MAX_VECTORS + 1)], "at most"),
    ];
    for (v, expect) in cases {
        let bad = InsertVector { id: PointId::Num(2), vectors: NamedVectors::unnamed(v), metadata: None };
        let e = c.upsert(vec![bad], true).await.expect_err("refused");
        assert!(e.to_string().contains(expect), "{e} should mention {expect}");
        let e = search_err(&c, vec![0.5; DIM + 1]).await;
        assert!(e.contains("dim"), "{e}");
    }
    assert_eq!(c.get(vec![PointId::Num(2)], false, false).await.expect("get").len(), 0);
    // Limits of each vector apply inside a multivector too.
    let mut huge = vec![0.5; DIM * 2];
    huge[DIM + 1] = vector::magnitude_limit(DIM) * 2.0;
    let bad = InsertVector { id: PointId::Num(3), vectors: NamedVectors::default(), metadata: None };
    let mut bad = bad;
    bad.vectors.dense.insert("late".into(), huge);
    let e = c.upsert(vec![bad], true).await.expect_err("refused");
    assert!(e.to_string().contains("vector 1 of the multivector"), "{e}");
}

async fn search_err(c: &Collection, query: Vec<f32>) -> String {
    c.search(SearchRequest::new(query, 3)).await.expect_err("refused").to_string()
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
