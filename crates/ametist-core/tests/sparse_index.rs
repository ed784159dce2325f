//! Sparse vectors: validation, dot-product search against brute force, the idf modifier
//! with collection-wide statistics, writes and snapshots.
//!
//! Random tests print their seed; replay one with `AMETIST_TEST_SEED=<seed>`.

use ametist_core::sparse::{SparseError, SparseIndex, SparseModifier, SparseStats, SparseVector};
use ametist_core::text::bm25::idf;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn rng(test: &str) -> StdRng {
    let seed = match std::env::var("AMETIST_TEST_SEED") {
        Ok(s) => s.parse().expect("AMETIST_TEST_SEED must be a u64"),
        Err(_) => rand::rng().random(),
    };
    println!("{test}: seed {seed} (replay with AMETIST_TEST_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

fn random_vector(rng: &mut StdRng, dims: u32, max_nnz: usize) -> SparseVector {
    let nnz = rng.random_range(0..=max_nnz);
    let mut indices: Vec<u32> = (0..nnz).map(|_| rng.random_range(0..dims)).collect();
    indices.sort_unstable();
    indices.dedup();
    // Shuffle the order: input order must not matter.
    for i in (1..indices.len()).rev() {
        indices.swap(i, rng.random_range(0..=i));
    }
    let values = indices.iter().map(|_| rng.random_range(-1.0f32..1.0)).collect();
    SparseVector::new(indices, values).unwrap()
}

fn sv(indices: &[u32], values: &[f32]) -> SparseVector {
    SparseVector::new(indices.to_vec(), values.to_vec()).unwrap()
}

/// Brute force: every stored vector sharing a dimension with the query, scored by `score`,
/// best first, ties by slot.
fn brute(docs: &[Option<SparseVector>], query: &SparseVector, score: impl Fn(&SparseVector) -> f32) -> Vec<(u32, f32)> {
    let mut out: Vec<(u32, f32)> = docs
        .iter()
        .enumerate()
        .filter_map(|(s, d)| d.as_ref().map(|d| (s as u32, d)))
        .filter(|(_, d)| d.indices.iter().any(|i| query.indices.contains(i)))
        .map(|(s, d)| (s, score(d)))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

#[test]
fn validation() {
    assert!(matches!(
        SparseVector::new(vec![1, 2], vec![1.0]),
        Err(SparseError::LengthMismatch { indices: 2, values: 1 })
    ));
    assert_eq!(SparseVector::new(vec![3, 1, 3], vec![1.0, 2.0, 3.0]), Err(SparseError::DuplicateIndex(3)));
    assert!(matches!(SparseVector::new(vec![1], vec![f32::NAN]), Err(SparseError::NonFinite { index: 1, .. })));
    assert!(matches!(SparseVector::new(vec![1], vec![f32::INFINITY]), Err(SparseError::NonFinite { .. })));
    // Finite values whose products overflow f32: scores would be infinite (`null` in JSON).
    assert!(matches!(SparseVector::new(vec![1, 2], vec![1e38, -1e38]), Err(SparseError::TooLarge { .. })));
    assert!(SparseVector::new(vec![], vec![]).is_ok());
    let v: SparseVector = serde_json::from_str(r#"{"indices": [5, 1], "values": [0.5, -2]}"#).unwrap();
    assert_eq!(v.sorted_pairs(), [(1, -2.0), (5, 0.5)]);
    assert!(serde_json::from_str::<SparseVector>(r#"{"indices": [1], "values": [1], "x": 1}"#).is_err());
    // The index refuses invalid vectors and queries, changing nothing.
    let mut index = SparseIndex::new(SparseModifier::None);
    let bad = SparseVector { indices: vec![1, 1], values: vec![1.0, 2.0] };
    assert!(index.add(0, &bad).is_err());
    assert!(index.is_empty());
    assert!(index.search(&bad, &SparseStats::default(), 10, None).is_err());
    assert_eq!(serde_json::from_str::<SparseModifier>(r#""idf""#).unwrap(), SparseModifier::Idf);
    assert_eq!(serde_json::to_string(&SparseModifier::None).unwrap(), r#""none""#);
}

#[test]
fn dot_product_search_equals_brute_force() {
    let mut rng = rng("dot_product_search_equals_brute_force");
    let mut index = SparseIndex::new(SparseModifier::None);
    let mut docs: Vec<Option<SparseVector>> = vec![None; 600];
    for op in 0..1500 {
        if op % 500 == 499 {
            index.compact();
        }
        // Adds, updates (add on an occupied slot) and removes in random slot order.
        let slot = rng.random_range(0..600u32);
        if rng.random_bool(0.2) {
            assert_eq!(index.remove(slot), docs[slot as usize].is_some());
            docs[slot as usize] = None;
        } else {
            let v = random_vector(&mut rng, 200, 12);
            index.add(slot, &v).unwrap();
            docs[slot as usize] = Some(v);
        }
    }
    assert_eq!(index.len(), docs.iter().filter(|d| d.is_some()).count());
    for (s, d) in docs.iter().enumerate() {
        let got = index.get(s as u32);
        assert_eq!(got.map(|g| g.sorted_pairs()), d.as_ref().map(|d| d.sorted_pairs()));
    }
    // The same contents built fresh give the same snapshot bytes.
    let mut fresh = SparseIndex::new(SparseModifier::None);
    for (s, d) in docs.iter().enumerate() {
        if let Some(d) = d {
            fresh.add(s as u32, d).unwrap();
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    index.write_to(&mut a).unwrap();
    fresh.write_to(&mut b).unwrap();
    assert!(a == b, "snapshots differ");
    assert_eq!((index.postings(), index.dimensions()), (fresh.postings(), fresh.dimensions()));
    let none = SparseStats::default();
    for round in 0..100 {
        let q = random_vector(&mut rng, 200, 20);
        let want = brute(&docs, &q, |d| d.dot(&q));
        let k = [1, 5, 10, 1000][round % 4];
        let got = index.search(&q, &none, k, None).unwrap();
        assert_eq!(got.len(), want.len().min(k));
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "query {q:?}");
        }
        for &(s, score) in &got {
            assert_eq!(index.score(s, &q, &none), Some(score));
        }
        // With a filter.
        let accept = |s: u32| !matches!(s % 3, 0);
        let got = index.search(&q, &none, 1000, Some(&accept)).unwrap();
        let want: Vec<(u32, f32)> = want.into_iter().filter(|w| accept(w.0)).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn idf_modifier_uses_collection_wide_stats() {
    let mut rng = rng("idf_modifier_uses_collection_wide_stats");
    let docs: Vec<SparseVector> = (0..500).map(|_| random_vector(&mut rng, 60, 8)).collect();
    let mut whole = SparseIndex::new(SparseModifier::Idf);
    let mut parts: Vec<SparseIndex> = (0..5).map(|_| SparseIndex::new(SparseModifier::Idf)).collect();
    for (i, d) in docs.iter().enumerate() {
        whole.add(i as u32, d).unwrap();
        parts[i % 5].add((i / 5) as u32, d).unwrap();
    }
    let docs_opt: Vec<Option<SparseVector>> = docs.iter().cloned().map(Some).collect();
    for _ in 0..30 {
        let q = random_vector(&mut rng, 60, 6);
        let stats = whole.term_stats(&q);
        let global = SparseStats::sum(parts.iter().map(|p| p.term_stats(&q)).collect::<Vec<_>>().iter());
        assert_eq!(global, stats);
        // Brute force with the idf-weighted query.
        let n = docs.len() as u64;
        let weighted = SparseVector::new(
            q.indices.clone(),
            q.indices
                .iter()
                .zip(&q.values)
                .map(|(d, v)| {
                    let df = docs.iter().filter(|x| x.indices.contains(d)).count() as u64;
                    (*v as f64 * idf(n, df)) as f32
                })
                .collect(),
        )
        .unwrap();
        let want = brute(&docs_opt, &q, |d| d.dot(&weighted));
        let got = whole.search(&q, &stats, 1000, None).unwrap();
        assert_eq!(got, want);
        // Five partitions with the summed stats: the same scores, bit for bit.
        let mut merged: Vec<(u32, f32)> = parts
            .iter()
            .enumerate()
            .flat_map(|(p, idx)| {
                idx.search(&q, &global, 1000, None).unwrap().into_iter().map(move |(s, v)| (s * 5 + p as u32, v))
            })
            .collect();
        merged.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(merged, got);
    }
    // The idf by hand on a tiny index: N = 3, dimension 1 in 2 vectors, dimension 2 in 1.
    let mut tiny = SparseIndex::new(SparseModifier::Idf);
    tiny.add(0, &sv(&[1], &[1.0])).unwrap();
    tiny.add(1, &sv(&[1, 2], &[2.0, 1.0])).unwrap();
    tiny.add(2, &sv(&[3], &[1.0])).unwrap();
    let q = sv(&[1, 2], &[1.0, 1.0]);
    let hits = tiny.search(&q, &SparseStats::default(), 10, None).unwrap();
    let idf1 = (1.0f64 + (3.0 - 2.0 + 0.5) / (2.0 + 0.5)).ln();
    let idf2 = (1.0f64 + (3.0 - 1.0 + 0.5) / (1.0 + 0.5)).ln();
    assert_eq!(hits[0].0, 1);
    assert!((hits[0].1 as f64 - (2.0 * idf1 + idf2)).abs() < 1e-6);
    assert!((hits[1].1 as f64 - idf1).abs() < 1e-6);
}

#[test]
fn remove_and_update() {
    let mut index = SparseIndex::new(SparseModifier::None);
    index.add(0, &sv(&[1, 2], &[1.0, 1.0])).unwrap();
    index.add(1, &sv(&[2, 3], &[2.0, 1.0])).unwrap();
    index.add(2, &sv(&[], &[])).unwrap();
    assert_eq!((index.len(), index.dimensions()), (3, 3));
    let q = sv(&[2], &[1.0]);
    let none = SparseStats::default();
    assert_eq!(index.search(&q, &none, 10, None).unwrap(), [(1, 2.0), (0, 1.0)]);
    index.update(1, &sv(&[3], &[5.0])).unwrap();
    assert_eq!(index.search(&q, &none, 10, None).unwrap(), [(0, 1.0)]);
    assert_eq!(
        index.term_stats(&sv(&[2, 3, 9], &[1.0, 1.0, 1.0])).doc_freq.values().copied().collect::<Vec<_>>(),
        [1, 1, 0]
    );
    assert!(index.remove(0));
    assert!(!index.remove(0));
    assert!(index.search(&q, &none, 10, None).unwrap().is_empty());
    assert_eq!((index.len(), index.dimensions()), (2, 1));
    assert_eq!(index.score(0, &q, &none), None);
    assert_eq!(index.score(2, &q, &none), Some(0.0));
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

#[test]
fn snapshot_round_trip_and_corruption() {
    let mut rng = rng("sparse snapshot_round_trip_and_corruption");
    let mut index = SparseIndex::new(SparseModifier::Idf);
    for s in 0..60u32 {
        index.add(s, &random_vector(&mut rng, 40, 6)).unwrap();
    }
    for s in (0..60).step_by(7) {
        index.remove(s);
    }
    let mut bytes = Vec::new();
    index.write_to(&mut bytes).unwrap();
    let back = SparseIndex::read_from(&mut bytes.as_slice()).unwrap();
    assert_eq!((back.len(), back.dimensions(), back.modifier()), (index.len(), index.dimensions(), index.modifier()));
    for s in 0..60 {
        assert_eq!(back.get(s), index.get(s));
    }
    for _ in 0..20 {
        let q = random_vector(&mut rng, 40, 5);
        let st = index.term_stats(&q);
        assert_eq!(back.search(&q, &st, 100, None).unwrap(), index.search(&q, &st, 100, None).unwrap());
    }
    let mut again = Vec::new();
    back.write_to(&mut again).unwrap();
    assert_eq!(again, bytes);
    for cut in 0..bytes.len() {
        assert!(SparseIndex::read_from(&mut &bytes[..cut]).is_err(), "cut at {cut}");
    }
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 1 << (i % 8);
        assert!(SparseIndex::read_from(&mut bad.as_slice()).is_err(), "flip at {i}");
    }
    // Corruption with a valid checksum (a forged file) is caught by the structural checks
    // or gives a usable index; it never panics.
    let body = bytes.len() - 8;
    for i in 0..body {
        for x in [1u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] ^= x;
            let sum = fnv(&bad[..body]);
            bad[body..].copy_from_slice(&sum.to_le_bytes());
            if let Ok(idx) = SparseIndex::read_from(&mut bad.as_slice()) {
                let q = sv(&[1, 2, 3], &[1.0, 1.0, 1.0]);
                let _ = idx.search(&q, &idx.term_stats(&q), 10, None).unwrap();
                let mut out = Vec::new();
                idx.write_to(&mut out).unwrap();
            }
        }
    }
    assert!(SparseIndex::read_from(&mut &b"AMTEXT\0\0\x01\0\0\0"[..]).is_err());
}
