//! Tests of the IVF fast-scan index: kernels against the scalar reference, recall on a
//! clustered set, and the visibility of writes while the index grows.

use super::fastscan::{self, QuantizedLut, BLOCK};
use super::kmeans::Rng;
use super::*;

/// The seed of a randomized test: `AMETIST_TEST_SEED` replays a failure, otherwise the clock.
fn seed(what: &str) -> u64 {
    let seed = std::env::var("AMETIST_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7)
    });
    eprintln!("{what}: seed {seed} (replay with AMETIST_TEST_SEED={seed})");
    seed
}

fn unit(rng: &mut Rng) -> f32 {
    (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
}

#[test]
fn layout_round_trips() {
    let seed = seed("layout");
    let mut rng = Rng(seed);
    for subspaces in [2usize, 4, 26] {
        let count: usize = 77;
        let codes: Vec<Vec<u8>> = (0..count).map(|_| (0..subspaces).map(|_| rng.below(16) as u8).collect()).collect();
        let mut blocks = Vec::new();
        for (pos, c) in codes.iter().enumerate() {
            fastscan::put(&mut blocks, subspaces, pos, c);
        }
        assert_eq!(blocks.len(), count.div_ceil(BLOCK) * fastscan::block_bytes(subspaces));
        for (pos, c) in codes.iter().enumerate() {
            for m in 0..subspaces {
                assert_eq!(fastscan::get(&blocks, subspaces, pos, m), c[m], "pos {pos} m {m} seed {seed}");
            }
        }
    }
}

#[test]
fn kernels_match_the_scalar_reference() {
    let seed = seed("fast-scan kernels");
    let mut rng = Rng(seed);
    // 392 sub-spaces is fashion-mnist's 784 dimensions: tables there are scaled down so the
    // u16 sums cannot wrap, which the tables built here must respect too.
    for subspaces in [2usize, 4, 10, 26, 64, 392] {
        for round in 0..30 {
            let count = 1 + rng.below(3 * BLOCK);
            let mut blocks = Vec::new();
            for pos in 0..count {
                let c: Vec<u8> = (0..subspaces).map(|_| rng.below(16) as u8).collect();
                fastscan::put(&mut blocks, subspaces, pos, &c);
            }
            let floats: Vec<f32> = (0..subspaces * 16).map(|_| unit(&mut rng) * 10.0).collect();
            let lut = QuantizedLut::new(&floats);
            let reference = fastscan::reference(&blocks, &lut.table, count);
            assert!(reference.iter().all(|&s| s <= u16::MAX as u32), "sums fit u16 (seed {seed})");
            let bb = fastscan::block_bytes(subspaces);
            for (b, block) in blocks.chunks_exact(bb).enumerate() {
                let bound = if round % 3 == 0 { u16::MAX } else { rng.below(u16::MAX as usize) as u16 };
                let (mut a, mut p) = ([0u16; BLOCK], [0u16; BLOCK]);
                let mask_a = fastscan::scan_block(block, &lut.table, bound, &mut a);
                let mask_p = fastscan::portable::scan_block(block, &lut.table, bound, &mut p);
                assert_eq!(a, p, "dispatched and portable kernels differ: subspaces {subspaces} seed {seed}");
                assert_eq!(mask_a, mask_p, "masks differ: subspaces {subspaces} bound {bound} seed {seed}");
                for j in 0..BLOCK {
                    let pos = b * BLOCK + j;
                    if pos < count {
                        assert_eq!(a[j] as u32, reference[pos], "pos {pos} subspaces {subspaces} seed {seed}");
                    }
                    assert_eq!(mask_a >> j & 1 == 1, a[j] <= bound, "mask bit {j} seed {seed}");
                }
            }
        }
    }
}

#[test]
fn quantized_estimates_track_the_float_sums() {
    let seed = seed("quantized tables");
    let mut rng = Rng(seed);
    let subspaces = 26;
    let floats: Vec<f32> = (0..subspaces * 16).map(|_| unit(&mut rng)).collect();
    let lut = QuantizedLut::new(&floats);
    for _ in 0..100 {
        let codes: Vec<usize> = (0..subspaces).map(|_| rng.below(16)).collect();
        let exact: f32 = codes.iter().enumerate().map(|(m, &c)| floats[m * 16 + c]).sum();
        let sum: u32 = codes.iter().enumerate().map(|(m, &c)| lut.table[m * 16 + c] as u32).sum();
        let est = lut.estimate(sum as u16, 0.5);
        // Each entry is off by at most half a unit.
        let tol = subspaces as f32 * 0.5 / lut.scale + 1e-4;
        assert!((est - 0.5 - exact).abs() <= tol, "estimate {est} exact {exact} seed {seed}");
        // The bound of an estimate lets that estimate through.
        assert!(sum as u16 <= lut.bound(est, 0.5), "bound seed {seed}");
    }
}

/// `count` points around `clusters` random centres in `dim` dimensions.
fn clustered(rng: &mut Rng, count: usize, clusters: usize, dim: usize) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| (0..dim).map(|_| unit(rng) * 4.0).collect()).collect();
    (0..count).map(|_| centres[rng.below(clusters)].iter().map(|c| c + unit(rng) * 0.7).collect()).collect()
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn recall(index: &Ivf, queries: &[Vec<f32>], k: usize, probe: Probe) -> f64 {
    let mut hits = 0;
    for q in queries {
        let truth: Vec<u32> = index.search_exact(q, k, None).iter().map(|c| c.slot).collect();
        hits += index.search(q, k, probe, None).iter().filter(|c| truth.contains(&c.slot)).count();
    }
    hits as f64 / (queries.len() * k) as f64
}

#[test]
fn recall_on_a_clustered_set() {
    let seed = seed("ivf recall");
    let mut rng = Rng(seed);
    for (metric, dim) in [(Metric::Euclid, 16), (Metric::Cosine, 24), (Metric::Dot, 9)] {
        let mut points = clustered(&mut rng, 4000, 40, dim);
        let mut queries = clustered(&mut rng, 50, 40, dim);
        if metric == Metric::Cosine {
            points = points.into_iter().map(normalised).collect();
            queries = queries.into_iter().map(normalised).collect();
        }
        let mut index = Ivf::new(metric, dim, IvfParams { seed, ..IvfParams::default() });
        let refs: Vec<&[f32]> = points.iter().map(Vec::as_slice).collect();
        index.insert_batch(&refs, 2);
        assert!(index.lists() > 1, "{metric:?}: trained");
        let r = recall(&index, &queries, 10, Probe { lists: 16, rerank: 100 });
        assert!(r >= 0.9, "{metric:?}: recall {r} (seed {seed})");
        // Probing every list and re-ranking everything is exact.
        let all = Probe { lists: index.lists(), rerank: points.len() };
        assert_eq!(recall(&index, &queries, 10, all), 1.0, "{metric:?}: exhaustive probe (seed {seed})");
    }
}

#[test]
fn writes_are_visible_before_and_after_training_and_while_growing() {
    let seed = seed("ivf writes");
    let mut rng = Rng(seed);
    let dim = 12;
    let points = clustered(&mut rng, 3000, 20, dim);
    let mut index = Ivf::new(Metric::Euclid, dim, IvfParams { train_at: 200, seed, ..IvfParams::default() });
    let probe = Probe { lists: 4, rerank: 20 };
    let mut lists_seen = Vec::new();
    for (i, chunk) in points.chunks(100).enumerate() {
        let refs: Vec<&[f32]> = chunk.iter().map(Vec::as_slice).collect();
        let slots = index.insert_batch(&refs, 1 + i % 2);
        // Every new point is its own nearest neighbour at once.
        for (&slot, p) in slots.iter().zip(chunk).step_by(17) {
            let top = index.search(p, 1, probe, None);
            assert_eq!(top[0].slot, slot, "insert visible, batch {i} (seed {seed})");
        }
        lists_seen.push(index.lists());
    }
    assert_eq!(lists_seen[0], 0, "not trained below train_at");
    assert!(lists_seen.windows(2).any(|w| w[0] > 0 && w[1] > w[0]), "re-trained while growing: {lists_seen:?}");
    assert_eq!(index.len(), 3000);

    // Deletes: gone from every later answer, whatever the probe.
    for slot in (0..3000u32).step_by(7) {
        index.delete(slot);
    }
    for slot in (0..3000u32).step_by(7).take(50) {
        let hits = index.search(index.vector(slot), 10, Probe { lists: index.lists(), rerank: 3000 }, None);
        assert!(hits.iter().all(|c| c.slot % 7 != 0), "deleted slot returned (seed {seed})");
    }
    assert_eq!(index.len(), 3000 - 3000usize.div_ceil(7));

    // Updates: found at the new place, not at the old one.
    let far: Vec<f32> = (0..dim).map(|d| 100.0 + d as f32).collect();
    let old = index.vector(1).to_vec();
    index.update(1, &far);
    assert_eq!(index.search(&far, 1, probe, None)[0].slot, 1, "updated point found at its new place");
    let near_old = index.search(&old, 10, Probe { lists: index.lists(), rerank: 3000 }, None);
    assert!(near_old.iter().all(|c| c.slot != 1 || c.distance > 1000.0), "stale entry not used (seed {seed})");

    // A filter is applied to what is returned.
    let even = |s: u32| s % 2 == 0;
    let hits = index.search(&points[3], 10, probe, Some(&even));
    assert!(!hits.is_empty() && hits.iter().all(|c| c.slot % 2 == 0), "filter (seed {seed})");
}

#[test]
fn small_and_empty_indexes_answer_exactly() {
    let mut index = Ivf::new(Metric::Dot, 3, IvfParams::default());
    assert!(index.search(&[1.0, 0.0, 0.0], 5, Probe { lists: 1, rerank: 1 }, None).is_empty());
    let a = index.insert(&[1.0, 0.0, 0.0]);
    let b = index.insert(&[0.0, 1.0, 0.0]);
    let top = index.search(&[0.9, 0.1, 0.0], 5, Probe { lists: 1, rerank: 1 }, None);
    assert_eq!(top.iter().map(|c| c.slot).collect::<Vec<_>>(), vec![a, b]);
    index.delete(a);
    let top = index.search(&[0.9, 0.1, 0.0], 5, Probe { lists: 1, rerank: 1 }, None);
    assert_eq!(top.iter().map(|c| c.slot).collect::<Vec<_>>(), vec![b]);
}

#[test]
fn list_scan_matches_block_by_block() {
    let seed = seed("fast-scan list");
    let mut rng = Rng(seed);
    for subspaces in [2usize, 6, 26] {
        let count = 1 + rng.below(5 * BLOCK);
        let mut codes = Vec::new();
        for pos in 0..count {
            let c: Vec<u8> = (0..subspaces).map(|_| rng.below(16) as u8).collect();
            fastscan::put(&mut codes, subspaces, pos, &c);
        }
        let blocks = count.div_ceil(BLOCK);
        let dead: Vec<u32> = (0..blocks).map(|_| rng.next_u64() as u32 & rng.next_u64() as u32).collect();
        let floats: Vec<f32> = (0..subspaces * 16).map(|_| unit(&mut rng)).collect();
        let lut = QuantizedLut::new(&floats);
        let bounds: Vec<u16> = (0..=blocks).map(|_| rng.below(u16::MAX as usize) as u16).collect();
        let mut seen = Vec::new();
        fastscan::scan_list(&codes, &dead, &lut.table, bounds[0], |b, mask, sums| {
            seen.push((b, mask, *sums));
            bounds[b + 1]
        });
        assert_eq!(seen.len(), blocks, "seed {seed}");
        let bb = fastscan::block_bytes(subspaces);
        for (b, mask, sums) in seen {
            let mut expect = [0u16; BLOCK];
            let m = fastscan::portable::scan_block(&codes[b * bb..(b + 1) * bb], &lut.table, bounds[b], &mut expect)
                & !dead[b];
            assert_eq!((mask, sums), (m, expect), "block {b} subspaces {subspaces} seed {seed}");
        }
    }
}
