// `%` keeps the tests readable on the workspace MSRV (1.85), where is_multiple_of is not stable.
#![allow(clippy::manual_is_multiple_of)]

use super::*;
use crate::flat;

/// SplitMix64 with a printed seed, replayable through `AMETIST_TEST_SEED`.
struct Rng(u64);
impl Rng {
    fn seeded(test: &str) -> Self {
        let seed = std::env::var("AMETIST_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        });
        eprintln!("{test}: seed {seed} (replay with AMETIST_TEST_SEED={seed})");
        Rng(seed)
    }
    fn u64(&mut self) -> u64 {
        splitmix(&mut self.0)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.u64() % n as u64) as usize
    }
    fn f32(&mut self) -> f32 {
        (self.u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.f32()).collect()
    }
}

/// Clustered data: `clusters` centres in [-1, 1]^dim, `n` points and `nq` queries
/// scattered around them.
fn clustered2(rng: &mut Rng, n: usize, nq: usize, dim: usize, clusters: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| rng.vector(dim)).collect();
    let point = |rng: &mut Rng| -> Vec<f32> {
        let c = &centres[rng.below(clusters)];
        c.iter().map(|x| x + 0.15 * rng.f32()).collect()
    };
    let data = (0..n).map(|_| point(rng)).collect();
    let queries = (0..nq).map(|_| point(rng)).collect();
    (data, queries)
}

fn clustered(rng: &mut Rng, n: usize, dim: usize, clusters: usize) -> Vec<Vec<f32>> {
    clustered2(rng, n, 0, dim, clusters).0
}

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let n = crate::distance::dot(&v, &v).sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn build(metric: Metric, data: &[Vec<f32>], params: HnswParams, threads: usize) -> Hnsw {
    let mut h = Hnsw::new(metric, data[0].len(), params);
    let refs: Vec<&[f32]> = data.iter().map(|v| v.as_slice()).collect();
    let slots = h.insert_batch(&refs, threads);
    assert_eq!(slots, (0..data.len() as u32).collect::<Vec<_>>());
    h
}

fn recall(h: &Hnsw, data: &[Vec<f32>], queries: &[Vec<f32>], k: usize, ef: usize) -> f64 {
    let flat_data: Vec<f32> = data.iter().flatten().copied().collect();
    let mut hits = 0;
    for q in queries {
        let truth = flat::search(h.metric(), h.dim(), &flat_data, q, k, |_| true);
        let got = h.search(q, k, ef, None);
        assert_eq!(got.len(), k);
        assert!(got.windows(2).all(|w| w[0].distance <= w[1].distance), "results not sorted");
        hits += got.iter().filter(|c| truth.iter().any(|t| t.slot == c.slot)).count();
    }
    hits as f64 / (queries.len() * k) as f64
}

#[test]
fn is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Hnsw>();
}

#[test]
fn empty_and_tiny() {
    let mut h = Hnsw::new(Metric::Euclid, 3, HnswParams::default());
    assert!(h.search(&[0.0; 3], 5, 10, None).is_empty());
    let a = h.insert(&[1.0, 0.0, 0.0]);
    assert_eq!(h.search(&[0.0; 3], 5, 10, None), vec![Candidate { slot: a, distance: 1.0 }]);
    let b = h.insert(&[0.0, 0.5, 0.0]);
    let got: Vec<u32> = h.search(&[0.0; 3], 5, 10, None).iter().map(|c| c.slot).collect();
    assert_eq!(got, vec![b, a]);
    h.delete(b);
    assert_eq!(h.len(), 1);
    assert_eq!(h.search(&[0.0; 3], 5, 10, None).len(), 1);
    h.delete(a);
    assert!(h.search(&[0.0; 3], 5, 10, None).is_empty());
    h.repair();
    h.check(true).unwrap();
    assert_eq!(h.stats().deleted, 2);
    let c = h.insert(&[0.0, 0.0, 2.0]);
    assert!(c < 2, "freed slot reused");
    assert_eq!(h.search(&[0.0; 3], 5, 10, None)[0].slot, c);
    h.check(true).unwrap();
}

#[test]
fn recall_on_clustered_data() {
    let mut rng = Rng::seeded("recall_on_clustered_data");
    let (data, queries) = clustered2(&mut rng, 20_000, 200, 32, 50);
    let h = build(Metric::Euclid, &data, HnswParams::default(), 2);
    h.check(true).unwrap();
    let r = recall(&h, &data, &queries, 10, 50);
    eprintln!("recall@10 euclid ef=50: {r:.4}");
    assert!(r >= 0.95, "recall {r}");
    // Exact search agrees with the flat scan.
    let flat_data: Vec<f32> = data.iter().flatten().copied().collect();
    for q in queries.iter().take(20) {
        let a = h.search_exact(q, 10, None);
        let b = flat::search(Metric::Euclid, 32, &flat_data, q, 10, |_| true);
        assert_eq!(a.iter().map(|c| c.slot).collect::<Vec<_>>(), b.iter().map(|c| c.slot).collect::<Vec<_>>());
    }
    let stats = h.stats();
    assert_eq!(stats.points, 20_000);
    assert!(stats.levels >= 2);
}

#[test]
fn recall_cosine_single_thread() {
    let mut rng = Rng::seeded("recall_cosine_single_thread");
    let (data, queries) = clustered2(&mut rng, 5_000, 100, 24, 20);
    let data: Vec<Vec<f32>> = data.into_iter().map(normalise).collect();
    let queries: Vec<Vec<f32>> = queries.into_iter().map(normalise).collect();
    let h = build(Metric::Cosine, &data, HnswParams { m: 8, ef_construction: 100, ef_search: 50 }, 1);
    h.check(true).unwrap();
    let r = recall(&h, &data, &queries, 10, 64);
    eprintln!("recall@10 cosine: {r:.4}");
    assert!(r >= 0.95, "recall {r}");
}

#[test]
fn degree_limits_and_filters() {
    let mut rng = Rng::seeded("degree_limits_and_filters");
    let data = clustered(&mut rng, 3_000, 8, 10);
    let h = build(Metric::Manhattan, &data, HnswParams { m: 6, ef_construction: 64, ef_search: 32 }, 2);
    h.check(true).unwrap();
    let even = |s: u32| s % 2 == 0;
    for _ in 0..50 {
        let q = rng.vector(8);
        let got = h.search(&q, 10, 64, Some(&even));
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|c| c.slot % 2 == 0));
        let exact = h.search_exact(&q, 10, Some(&even));
        assert!(exact.iter().all(|c| c.slot % 2 == 0));
        assert!(got[0].distance >= exact[0].distance);
    }
    // A filter that accepts nothing returns nothing (and terminates).
    assert!(h.search(&rng.vector(8), 10, 64, Some(&|_| false)).is_empty());
}

#[test]
fn deletes_and_repair_keep_the_graph_sound() {
    let mut rng = Rng::seeded("deletes_and_repair_keep_the_graph_sound");
    let (data, queries) = clustered2(&mut rng, 4_000, 100, 16, 20);
    let mut h = build(Metric::Euclid, &data, HnswParams { m: 8, ef_construction: 100, ef_search: 50 }, 2);
    let mut deleted = std::collections::HashSet::new();
    while deleted.len() < 1_500 {
        let s = rng.below(4_000) as u32;
        h.delete(s);
        deleted.insert(s);
    }
    assert_eq!(h.len(), 2_500);
    h.check(false).unwrap();
    for _ in 0..50 {
        let got = h.search(&rng.vector(16), 10, 50, None);
        assert!(got.iter().all(|c| !deleted.contains(&c.slot)));
    }
    h.repair();
    h.check(true).unwrap();
    assert_eq!(h.stats().deleted, 1_500);
    // Recall on the remaining points is still good.
    let live: Vec<u32> = (0..4_000).filter(|s| !deleted.contains(s)).collect();
    let mut hits = 0;
    for q in &queries {
        let truth = h.search_exact(q, 10, None);
        let got = h.search(q, 10, 64, None);
        assert!(got.iter().all(|c| live.binary_search(&c.slot).is_ok()));
        hits += got.iter().filter(|c| truth.iter().any(|t| t.slot == c.slot)).count();
    }
    let r = hits as f64 / 1000.0;
    eprintln!("recall after deleting 37%: {r:.4}");
    assert!(r >= 0.9, "recall after repair {r}");
    // Freed slots are reused.
    let s = h.insert(&data[0]);
    assert!(deleted.contains(&s));
    h.check(true).unwrap();
}

#[test]
fn random_operations() {
    random_operations_with(Quantization::None, "random_operations");
}

/// The same with a walk on codes: trained at 256 live points, retrained at 512, while
/// inserts, updates and deletes go on.
#[test]
fn random_operations_int4() {
    random_operations_with(Quantization::Int4, "random_operations_int4");
}

fn random_operations_with(quantization: Quantization, name: &str) {
    let mut rng = Rng::seeded(name);
    let dim = 8;
    let mut h = Hnsw::new(Metric::Euclid, dim, HnswParams { m: 6, ef_construction: 48, ef_search: 32 });
    h.set_quantization(quantization);
    let mut model: std::collections::HashMap<u32, Vec<f32>> = Default::default();
    for step in 0..3_000 {
        match rng.below(10) {
            0..=4 => {
                let v = rng.vector(dim);
                let s = h.insert(&v);
                assert!(model.insert(s, v).is_none(), "step {step}: slot {s} handed out twice");
            }
            5 | 6 if !model.is_empty() => {
                let s = *model.keys().nth(rng.below(model.len())).unwrap();
                let v = rng.vector(dim);
                h.update(s, &v);
                model.insert(s, v.clone());
                let got = h.search(&v, 1, 64, None);
                assert_eq!(got[0].distance, 0.0, "step {step}: updated vector of slot {s} not found");
            }
            7..=9 if !model.is_empty() => {
                let s = *model.keys().nth(rng.below(model.len())).unwrap();
                h.delete(s);
                model.remove(&s);
                assert!(!h.is_live(s));
            }
            _ => {}
        }
        if step % 97 == 0 {
            let q = rng.vector(dim);
            for c in h.search(&q, 10, 32, None) {
                assert!(model.contains_key(&c.slot), "step {step}: deleted slot {} returned", c.slot);
                assert_eq!(h.vector(c.slot), model[&c.slot].as_slice());
            }
            h.check(false).unwrap();
        }
        assert_eq!(h.len(), model.len());
    }
    h.repair();
    h.check(true).unwrap();
    for (s, v) in &model {
        assert!(h.is_live(*s));
        assert_eq!(h.vector(*s), v.as_slice());
    }
}

#[test]
fn churn_keeps_memory_flat() {
    let mut rng = Rng::seeded("churn_keeps_memory_flat");
    let dim = 16;
    let mut h = Hnsw::new(Metric::Dot, dim, HnswParams { m: 8, ef_construction: 64, ef_search: 32 });
    let mut live: Vec<u32> = (0..2_000).map(|_| h.insert(&rng.vector(dim))).collect();
    let mut peak_bytes = 0;
    let mut peak_slots = 0;
    for round in 0..40 {
        // Upsert: delete 100 random points and add 100 new ones.
        for _ in 0..100 {
            let i = rng.below(live.len());
            h.delete(live.swap_remove(i));
        }
        let vs: Vec<Vec<f32>> = (0..100).map(|_| rng.vector(dim)).collect();
        let refs: Vec<&[f32]> = vs.iter().map(|v| v.as_slice()).collect();
        live.extend(h.insert_batch(&refs, 2));
        assert_eq!(h.len(), 2_000);
        if round == 10 {
            peak_bytes = h.stats().bytes;
            peak_slots = h.slots();
        }
        if round > 10 {
            assert!(h.slots() <= peak_slots + 300, "round {round}: slots grew to {}", h.slots());
            assert!(h.stats().bytes <= peak_bytes + peak_bytes / 5, "round {round}: bytes grew");
        }
    }
    h.check(false).unwrap();
}

#[test]
fn rebuild_keeps_slots() {
    let mut rng = Rng::seeded("rebuild_keeps_slots");
    let data = clustered(&mut rng, 3_000, 16, 10);
    let mut h = build(Metric::Euclid, &data, HnswParams { m: 8, ef_construction: 64, ef_search: 32 }, 2);
    for s in (0..3_000).step_by(3) {
        h.delete(s);
    }
    h.delete(2_999);
    h.rebuild(2);
    h.check(true).unwrap();
    assert_eq!(h.len(), 1_999);
    assert_eq!(h.slots(), 2_999);
    let (mut probes, mut found) = (0, 0);
    for (s, v) in data.iter().enumerate().take(2_999) {
        let s = s as u32;
        assert_eq!(h.is_live(s), s % 3 != 0);
        if s % 3 != 0 {
            assert_eq!(h.vector(s), v.as_slice());
            if s % 10 == 1 {
                probes += 1;
                found += (h.search(v, 1, 64, None)[0].distance == 0.0) as usize;
            }
        }
    }
    // An approximate index may miss the odd point; nearly all must be found.
    assert!(found * 100 >= probes * 98, "found {found} of {probes} points after rebuild");
}

#[test]
fn snapshot_round_trip_and_corruption() {
    let mut rng = Rng::seeded("snapshot_round_trip_and_corruption");
    let data = clustered(&mut rng, 2_000, 12, 10);
    let mut h = build(Metric::Cosine, &data.into_iter().map(normalise).collect::<Vec<_>>(), HnswParams::default(), 2);
    for s in 0..100 {
        h.delete(s * 7);
    }
    let mut bytes = Vec::new();
    h.write_to(&mut bytes).unwrap();
    let back = Hnsw::read_from(&mut bytes.as_slice()).unwrap();
    assert_eq!((back.len(), back.dim(), back.metric(), back.params()), (h.len(), h.dim(), h.metric(), h.params()));
    for _ in 0..50 {
        let q = normalise(rng.vector(12));
        assert_eq!(back.search(&q, 10, 40, None), h.search(&q, 10, 40, None));
    }
    let mut again = Vec::new();
    back.write_to(&mut again).unwrap();
    assert_eq!(again, bytes);
    // Truncation anywhere, and flipped bytes anywhere, give errors (never panics).
    for cut in [0, 5, 8, 40, bytes.len() / 2, bytes.len() - 1] {
        assert!(Hnsw::read_from(&mut &bytes[..cut]).is_err(), "cut at {cut}");
    }
    for _ in 0..200 {
        let mut bad = bytes.clone();
        let i = rng.below(bad.len());
        bad[i] ^= 1 << rng.below(8);
        assert!(Hnsw::read_from(&mut bad.as_slice()).is_err(), "flip at {i}");
    }
    // A header claiming a huge size does not allocate it.
    let mut huge = bytes[..64].to_vec();
    huge[32..40].copy_from_slice(&(u32::MAX as u64 - 1).to_le_bytes());
    assert!(Hnsw::read_from(&mut huge.as_slice()).is_err());
}

/// Exact search over a slot list equals a brute-force scan of those slots: deleted and
/// out-of-range slots are skipped, `accept` applies, ties and bounded distances included.
#[test]
fn search_slots_is_exact_over_the_list() {
    let mut rng = Rng::seeded("search_slots_is_exact_over_the_list");
    for metric in [Metric::Euclid, Metric::Dot, Metric::Manhattan] {
        let dim = [3, 17, 130][rng.below(3)];
        let data = clustered(&mut rng, 600, dim, 5);
        let mut h = build(metric, &data, HnswParams::default(), 1);
        let deleted: Vec<u32> = (0..60).map(|_| rng.below(600) as u32).collect();
        deleted.iter().for_each(|&s| h.delete(s));
        let mut slots: Vec<u32> = (0..300).map(|_| rng.below(650) as u32).collect();
        slots.sort_unstable();
        slots.dedup();
        let odd = |s: u32| s % 2 == 1;
        for _ in 0..20 {
            let q = rng.vector(dim);
            let k = 1 + rng.below(15);
            let mut expected: Vec<flat::Candidate> = slots
                .iter()
                .filter(|&&s| (s as usize) < data.len() && !deleted.contains(&s) && odd(s))
                .map(|&s| flat::Candidate { slot: s, distance: metric.distance(&q, &data[s as usize]) })
                .collect();
            expected.sort_unstable();
            expected.truncate(k);
            let got = h.search_slots(&q, k, &slots, Some(&odd));
            assert_eq!(got.len(), expected.len(), "{metric:?}");
            for (g, e) in got.iter().zip(&expected) {
                assert!(
                    (g.distance - e.distance).abs() <= 1e-4 * e.distance.abs().max(1.0),
                    "{metric:?}: {g:?} vs {e:?}"
                );
            }
        }
    }
}

/// Walking on 4-bit and 8-bit codes: recall stays high for every metric, results carry
/// the exact f32 distances, and switching the codes off again gives the plain walk's
/// results back.
#[test]
fn code_walks_keep_recall_and_exact_distances() {
    let mut rng = Rng::seeded("code_walks_keep_recall_and_exact_distances");
    let (data, queries) = clustered2(&mut rng, 5_000, 100, 64, 30);
    let cases = [Metric::Euclid, Metric::Cosine, Metric::Manhattan]
        .into_iter()
        .flat_map(|m| [(m, Quantization::Int4), (m, Quantization::Int8)]);
    for (metric, quantization) in cases {
        let prep = |v: &Vec<f32>| if metric == Metric::Cosine { normalise(v.clone()) } else { v.clone() };
        let data: Vec<Vec<f32>> = data.iter().map(prep).collect();
        let queries: Vec<Vec<f32>> = queries.iter().map(prep).collect();
        let mut h = build(metric, &data, HnswParams::default(), 2);
        let plain: Vec<Vec<Candidate>> = queries.iter().map(|q| h.search(q, 10, 50, None)).collect();
        let plain_bytes = h.stats().bytes;
        h.set_quantization(quantization);
        h.check(true).unwrap();
        assert_eq!(h.stats().quantization, quantization);
        assert!(h.stats().bytes > plain_bytes, "codes take room");
        let ignoring: Vec<Vec<Candidate>> =
            queries.iter().map(|q| h.search_walk(q, 10, 50, None, CodeUse::Ignore)).collect();
        assert_eq!(ignoring, plain, "{metric:?}: search_walk without codes walks on the f32 vectors");
        // These clusters are tight: neighbours differ by about one 4-bit step per
        // dimension, so 4-bit codes need a wider beam than the f32 walk (ef 50 gives 0.93
        // for euclid and 0.5 for cosine here); ef 200 re-scores enough candidates. 8-bit
        // codes do at ef 50 what the f32 walk does. A broken kernel or walk would not get
        // near 0.95 at any ef on 5,000 points.
        let ef = if quantization == Quantization::Int8 { 50 } else { 200 };
        let r = recall(&h, &data, &queries, 10, ef);
        eprintln!("{metric:?}: recall@10 with {quantization:?} walk, ef={ef}: {r:.4}");
        assert!(r >= 0.95, "{metric:?} {quantization:?}: recall {r}");
        let flat_data: Vec<f32> = data.iter().flatten().copied().collect();
        for q in queries.iter().take(20) {
            let got = h.search(q, 10, 200, None);
            let all = flat::search(metric, 64, &flat_data, q, data.len(), |_| true);
            for c in &got {
                let exact = all.iter().find(|t| t.slot == c.slot).expect("every slot is in the flat scan").distance;
                assert!((c.distance - exact).abs() <= 1e-4 * (1.0 + exact.abs()), "{metric:?}: re-scored distance");
            }
        }
        // Filters still apply inside the walk.
        let even = |s: u32| s % 2 == 0;
        for c in h.search(&queries[0], 10, 50, Some(&even)) {
            assert!(even(c.slot));
        }
        h.set_quantization(Quantization::None);
        h.check(true).unwrap();
        let again: Vec<Vec<Candidate>> = queries.iter().map(|q| h.search(q, 10, 50, None)).collect();
        assert_eq!(again, plain, "{metric:?} {quantization:?}: the graph survives two re-layouts");
    }
}

/// Retraining as the index doubles keeps the scale (and every code made with it) while the
/// data's range stays put, and takes a new one, encoding every node again, when it moves;
/// in both cases the points inserted in the batch that triggered it get codes.
#[test]
fn a_retrained_scale_is_kept_while_the_range_stays() {
    let mut rng = Rng::seeded("a_retrained_scale_is_kept_while_the_range_stays");
    let mut h = Hnsw::new(Metric::Euclid, 64, HnswParams::default());
    h.set_quantization(Quantization::Int4);
    let data = clustered(&mut rng, 1_024, 64, 10);
    let refs: Vec<&[f32]> = data.iter().map(|v| v.as_slice()).collect();
    h.insert_batch(&refs[..300], 1);
    let first = h.codebook.clone().expect("trained at 256 points");
    assert_eq!(h.trained_at, 300);
    h.insert_batch(&refs[300..], 1);
    assert_eq!(h.trained_at, 1_024, "retrained at twice the points");
    assert_eq!(h.codebook, Some(first.clone()), "same distribution, same range: the scale is kept");
    // Points three times as far out: the range moves, so the scale does, for every code.
    let far: Vec<Vec<f32>> = data.iter().map(|v| v.iter().map(|x| 3.0 * x).collect()).collect();
    let far_refs: Vec<&[f32]> = far.iter().map(|v| v.as_slice()).collect();
    h.insert_batch(&far_refs, 1);
    assert_eq!(h.trained_at, 2_048);
    let second = h.codebook.clone().expect("still trained");
    assert!(!second.close_to(&first), "the range grew threefold: {first:?} → {second:?}");
    let bytes = codes::code_bytes(64, 4);
    for s in 0..h.store.len() as u32 {
        let mut code = vec![0u8; bytes];
        let sum = second.encode(h.store.vector(s), &mut code);
        // SAFETY: `s` is a node of the store, whose codes are `bytes` long.
        let stored = unsafe { std::slice::from_raw_parts(h.store.code_ptr(s), bytes) };
        assert_eq!((stored, h.store.code_sum(s)), (&code[..], sum), "node {s} is encoded with the new scale");
    }
    h.check(true).unwrap();
    // Two groups of points, one three times the other's size, make a hard case for one
    // scale of 16 levels: at ef 20 a walk that starts among the smaller points now and then
    // stays there (in about one seed in ten), so the beam is wider here.
    for (i, v) in data.iter().chain(&far).enumerate().step_by(31) {
        let got = h.search(v, 1, 100, None);
        assert_eq!((got[0].slot, got[0].distance), (i as u32, 0.0), "point {i} finds itself");
    }
}

/// Setting the quantile of a trained index trains its codes again over the new range.
#[test]
fn a_new_quantile_retrains_the_codes() {
    let mut rng = Rng::seeded("a_new_quantile_retrains_the_codes");
    let mut h = Hnsw::new(Metric::Euclid, 32, HnswParams::default());
    h.set_quantization(Quantization::Int8);
    let data = clustered(&mut rng, 600, 32, 5);
    for v in &data {
        h.insert(v);
    }
    let Some(Codebook::Scalar(default)) = h.codebook.clone() else { panic!("trained at 256 points") };
    h.set_quantile(1.0);
    let Some(Codebook::Scalar(whole)) = h.codebook.clone() else { panic!("trained again") };
    let (min, max) = data.iter().flatten().fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    assert_eq!(whole.lo, min, "the whole range starts at the smallest value");
    assert!((whole.lo + whole.step * 255.0 - max).abs() <= 1e-4 * max.abs().max(1.0), "and ends at the largest");
    assert!(whole.step > default.step, "the whole range is wider than the central 99.8%");
    for (i, v) in data.iter().enumerate().step_by(17) {
        assert_eq!(h.search(v, 1, 20, None)[0].slot, i as u32, "point {i} finds itself");
    }
}

/// A small index walks on f32 until it has enough points to train codes; inserts after
/// training get codes too, and a rebuild retrains.
#[test]
fn int4_codes_train_when_due() {
    let mut rng = Rng::seeded("int4_codes_train_when_due");
    let mut h = Hnsw::new(Metric::Euclid, 16, HnswParams::default());
    h.set_quantization(Quantization::Int4);
    let data = clustered(&mut rng, 2_000, 16, 10);
    for v in &data[..100] {
        h.insert(v);
    }
    assert!(h.codebook.is_none(), "100 points walk on f32");
    assert_eq!(h.search(&data[7], 1, 20, None)[0].slot, 7);
    for v in &data[100..] {
        h.insert(v);
    }
    assert!(h.codebook.is_some() && h.trained_at >= 1_024, "retrained as the index grew: {}", h.trained_at);
    for (i, v) in data.iter().enumerate().step_by(97) {
        let got = h.search(v, 1, 20, None);
        assert_eq!((got[0].slot, got[0].distance), (i as u32, 0.0), "point {i} finds itself");
    }
    for s in 0..1_500 {
        h.delete(s);
    }
    h.rebuild(2);
    h.check(true).unwrap();
    assert_eq!(h.trained_at, 500, "a rebuild retrains on what is live");
    // Every point, not a sample: a two-thread rebuild of these 500 clustered points used to
    // leave a few of them unreachable (see `Hnsw::link_all`).
    for (i, v) in data.iter().enumerate().skip(1_500) {
        assert_eq!(h.search(v, 1, 20, None)[0].slot, i as u32, "after the rebuild, point {i} finds itself");
    }
}

/// Embedding-like data: `clusters` random directions in `dim` dimensions, points spread
/// widely around them (noise as large as the centres), normalised. Components are centred
/// on zero, as binary codes expect.
fn embeddings(rng: &mut Rng, n: usize, nq: usize, dim: usize, clusters: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| rng.vector(dim)).collect();
    let point = |rng: &mut Rng| -> Vec<f32> {
        let c = &centres[rng.below(clusters)];
        normalise(c.iter().map(|x| x + 0.8 * rng.f32()).collect())
    };
    let data = (0..n).map(|_| point(rng)).collect();
    let queries = (0..nq).map(|_| point(rng)).collect();
    (data, queries)
}

/// Binary codes (each encoding, each metric) re-scored with the f32 vectors reach the
/// recall of the f32 walk once the beam is widened: the f32 walk at `ef = k` (no
/// oversampling) against the binary walk at `ef = k × 8` (oversampling 8). On this data
/// (128 dimensions, seeds tried: 0.92 for the f32 walk) one bit gives about 0.51 / 0.76 /
/// 0.97 at oversampling 2 / 4 / 8, two bits 0.67 / 0.89 / 0.99, one and a half 0.60 / 0.84 /
/// 0.98 (the f32 walk at ef 80 itself reaches about 0.998: codes trade recall per beam
/// width for bytes read). Results carry exact distances; without re-scoring they carry the
/// `±1` codes' distances, in the codes' order.
#[test]
fn binary_walks_with_rescoring_match_the_f32_walk() {
    let mut rng = Rng::seeded("binary_walks_with_rescoring_match_the_f32_walk");
    let (data, queries) = embeddings(&mut rng, 4_000, 100, 128, 40);
    const K: usize = 10;
    const OVERSAMPLING: usize = 8;
    for metric in [Metric::Cosine, Metric::Euclid, Metric::Dot] {
        let mut h = build(metric, &data, HnswParams::default(), 2);
        let f32_recall = recall(&h, &data, &queries, K, K);
        for quantization in [Quantization::Binary, Quantization::BinaryTwoBits, Quantization::BinaryOneAndHalfBits] {
            h.set_quantization(quantization);
            h.check(true).unwrap();
            assert_eq!(h.stats().quantization, quantization);
            assert_eq!(h.stats().code_range, None, "binary codes have no range");
            let r = recall(&h, &data, &queries, K, K * OVERSAMPLING);
            eprintln!(
                "{metric:?} {quantization:?}: recall@{K} f32 walk ef={K}: {f32_recall:.4}; \
                 binary walk ef={}: {r:.4}",
                K * OVERSAMPLING
            );
            assert!(r >= f32_recall, "{metric:?} {quantization:?}: recall {r} < f32 walk's {f32_recall}");
            let flat_data: Vec<f32> = data.iter().flatten().copied().collect();
            for q in queries.iter().take(10) {
                let got = h.search(q, K, 40, None);
                let all = flat::search(metric, 128, &flat_data, q, data.len(), |_| true);
                for c in &got {
                    let exact = all.iter().find(|t| t.slot == c.slot).expect("every slot is scanned").distance;
                    assert!((c.distance - exact).abs() <= 1e-4 * (1.0 + exact.abs()), "{metric:?}: re-scored distance");
                }
                // Not re-scored: the codes' distances, sorted, each the `±1` vectors' distance.
                let raw = h.search_walk(q, K, 40, None, CodeUse::CodeDistances);
                assert_eq!(raw.len(), K);
                assert!(raw.windows(2).all(|w| w[0].distance <= w[1].distance), "code order");
                let Some(Codebook::Binary(bits)) = h.codebook.clone() else { panic!("binary codes trained") };
                let bytes = quantization.code_bytes(128);
                let mut code = vec![0u8; bytes];
                bits.encode(q, &mut code);
                for c in &raw {
                    // SAFETY: node codes hold `bytes` bytes.
                    let node = unsafe { std::slice::from_raw_parts(h.store.code_ptr(c.slot), bytes) };
                    let hamming: u32 = code.iter().zip(node).map(|(a, b)| (a ^ b).count_ones()).sum();
                    assert_eq!(c.distance, Bits::finish(metric, hamming, bits.code_bits() as f32));
                }
            }
        }
        h.set_quantization(Quantization::None);
    }
}

/// Binary codes survive a snapshot: the index is written without them and a reopened index
/// given the same setting trains and answers the same.
#[test]
fn binary_codes_after_a_snapshot() {
    let mut rng = Rng::seeded("binary_codes_after_a_snapshot");
    let (data, queries) = embeddings(&mut rng, 1_000, 20, 64, 10);
    let mut h = build(Metric::Cosine, &data, HnswParams::default(), 1);
    h.set_quantization(Quantization::BinaryTwoBits);
    let before: Vec<Vec<Candidate>> = queries.iter().map(|q| h.search(q, 10, 40, None)).collect();
    let mut bytes = Vec::new();
    h.write_to(&mut bytes).expect("writes to memory");
    let mut back = Hnsw::read_from(&mut bytes.as_slice()).expect("reads back");
    back.set_quantization(Quantization::BinaryTwoBits);
    let after: Vec<Vec<Candidate>> = queries.iter().map(|q| back.search(q, 10, 40, None)).collect();
    assert_eq!(after, before);
}

/// The portable kernels walk exactly as the ones this CPU runs (AVX2 here): both count the
/// same integers, so a walk on binary or 8-bit codes through the portable space visits the
/// same nodes and returns the same candidates, with the same code distances, as the
/// dispatched one.
#[test]
fn portable_and_dispatched_code_walks_agree() {
    let mut rng = Rng::seeded("portable_and_dispatched_code_walks_agree");
    let (data, queries) = embeddings(&mut rng, 1_500, 20, 96, 12);
    for (metric, quantization) in [
        (Metric::Cosine, Quantization::Binary),
        (Metric::Euclid, Quantization::BinaryTwoBits),
        (Metric::Dot, Quantization::BinaryOneAndHalfBits),
        (Metric::Euclid, Quantization::Int8),
    ] {
        let mut h = build(metric, &data, HnswParams::default(), 1);
        h.set_quantization(quantization);
        for q in &queries {
            for codes in [CodeUse::Rescore, CodeUse::CodeDistances] {
                let dispatched = h.search_walk(q, 10, 40, None, codes);
                let mut sc = Scratch::new();
                let search = Search { index: &h, query: q, k: 10, ef: 40, accept: None, codes, sc: &mut sc };
                let portable = match metric {
                    Metric::Euclid => search.run(space::ScalarL2),
                    Metric::Cosine | Metric::Dot => search.run(space::ScalarDot),
                    Metric::Manhattan => search.run(space::ScalarL1),
                };
                // Same walk, same candidates; the f32 re-scoring sums in another order, so
                // its distances may differ in the last bits.
                if codes == CodeUse::CodeDistances {
                    assert_eq!(portable, dispatched, "{metric:?} {quantization:?} {codes:?}");
                    continue;
                }
                let by_slot = |r: &[Candidate]| {
                    let mut r = r.to_vec();
                    r.sort_by_key(|c| c.slot);
                    r
                };
                let (p, d) = (by_slot(&portable), by_slot(&dispatched));
                assert_eq!(p.len(), d.len());
                for (p, d) in p.iter().zip(&d) {
                    assert_eq!(p.slot, d.slot, "{metric:?} {quantization:?}: the same candidates");
                    assert!((p.distance - d.distance).abs() <= 1e-5 * (1.0 + d.distance.abs()), "{p:?} vs {d:?}");
                }
            }
        }
    }
}
