//! Lloyd's k-means, for the coarse partition of the index and for the small codebooks of
//! the product quantizer.
//!
//! Seeded and deterministic for a given thread count, so that a build can be replayed.

use crate::distance::l2_squared;

/// SplitMix64: a small seeded generator (the crate takes no `rand` dependency outside tests).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// `k` centroids of `data` (rows of `dim` floats), after `iters` rounds of Lloyd's
/// algorithm, starting from `k` distinct random rows. Clusters that empty out are refilled
/// by splitting the largest one, so that every list of the index is used. `spherical`
/// scales every centroid to unit length after each round (for unit-length data compared by
/// direction, where the nearest unit centroid is the one of largest dot product).
pub fn train(data: &[f32], dim: usize, k: usize, iters: usize, seed: u64, threads: usize, spherical: bool) -> Vec<f32> {
    let n = data.len() / dim;
    assert!(n > 0 && k > 0, "k-means needs data and at least one centroid");
    let k = k.min(n);
    let mut rng = Rng(seed);
    // k distinct starting rows: a partial Fisher-Yates shuffle of the row numbers.
    let mut order: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + rng.below(n - i);
        order.swap(i, j);
    }
    let mut centroids: Vec<f32> =
        order[..k].iter().flat_map(|&r| data[r * dim..(r + 1) * dim].iter().copied()).collect();
    for _ in 0..iters {
        let assign = nearest(data, dim, &centroids, threads);
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (row, &c) in data.chunks_exact(dim).zip(&assign) {
            counts[c as usize] += 1;
            for (s, &x) in sums[c as usize * dim..(c as usize + 1) * dim].iter_mut().zip(row) {
                *s += x as f64;
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                for d in 0..dim {
                    centroids[c * dim + d] = (sums[c * dim + d] / counts[c] as f64) as f32;
                }
            }
        }
        // An empty cluster takes half of the largest: a copy of its centroid, both nudged
        // apart a little (faiss does the same).
        for c in 0..k {
            if counts[c] > 0 {
                continue;
            }
            let big = (0..k).max_by_key(|&i| counts[i]).expect("k > 0");
            for d in 0..dim {
                let v = centroids[big * dim + d];
                let nudge = if rng.next_u64() & 1 == 0 { 1.0 + 1e-4 } else { 1.0 - 1e-4 };
                centroids[c * dim + d] = v * nudge;
                centroids[big * dim + d] = v / nudge;
            }
            counts[c] = counts[big] / 2;
            counts[big] -= counts[c];
        }
        if spherical {
            for c in centroids.chunks_exact_mut(dim) {
                let norm = c.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 0.0 {
                    c.iter_mut().for_each(|x| *x /= norm);
                }
            }
        }
    }
    centroids
}

/// The nearest centroid (squared euclidean) of every row, split over `threads` threads.
pub fn nearest(data: &[f32], dim: usize, centroids: &[f32], threads: usize) -> Vec<u32> {
    let n = data.len() / dim;
    let mut out = vec![0u32; n];
    let chunk = n.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        for (rows, dst) in data.chunks(chunk * dim).zip(out.chunks_mut(chunk)) {
            s.spawn(move || {
                for (row, o) in rows.chunks_exact(dim).zip(dst.iter_mut()) {
                    *o = nearest_one(row, dim, centroids);
                }
            });
        }
    });
    out
}

/// The nearest centroid of one row.
pub fn nearest_one(row: &[f32], dim: usize, centroids: &[f32]) -> u32 {
    let mut best = (f32::INFINITY, 0u32);
    for (c, cen) in centroids.chunks_exact(dim).enumerate() {
        let d = l2_squared(row, cen);
        if d < best.0 {
            best = (d, c as u32);
        }
    }
    best.1
}
