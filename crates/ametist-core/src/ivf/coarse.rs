//! The coarse quantizer: the centroids of the lists, and which lists a query probes.
//!
//! Every query compares itself with every centroid (about 2·√n of them), which at low
//! dimension costs as much as scanning the codes. The centroids are therefore stored
//! transposed in blocks of 8 (dimension-major inside a block), so that the AVX2 kernel
//! computes 8 dot products per fused multiply-add and keeps 4 blocks in flight.

use crate::distance::Metric;

/// Centroids per block.
const LANES: usize = 8;

#[derive(Debug, Clone)]
pub struct Coarse {
    dim: usize,
    /// Centroids row by row (for residuals and assignment).
    pub centroids: Vec<f32>,
    /// The same, transposed in blocks of [`LANES`], zero-padded to a whole block.
    blocked: Vec<f32>,
    /// Squared norm of every centroid (for euclid: `|q - c|^2 = |q|^2 - 2<q, c> + |c|^2`).
    norms: Vec<f32>,
}

impl Coarse {
    pub fn new(centroids: Vec<f32>, dim: usize) -> Self {
        let n = centroids.len() / dim;
        let blocks = n.div_ceil(LANES);
        let mut blocked = vec![0f32; blocks * LANES * dim];
        for (c, row) in centroids.chunks_exact(dim).enumerate() {
            let (b, l) = (c / LANES, c % LANES);
            for (d, &x) in row.iter().enumerate() {
                blocked[b * LANES * dim + d * LANES + l] = x;
            }
        }
        let norms = centroids.chunks_exact(dim).map(|c| c.iter().map(|x| x * x).sum()).collect();
        Coarse { dim, centroids, blocked, norms }
    }

    pub fn len(&self) -> usize {
        self.norms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.norms.is_empty()
    }

    pub fn centroid(&self, list: usize) -> &[f32] {
        &self.centroids[list * self.dim..(list + 1) * self.dim]
    }

    /// Every list's distance to `query` as the metric ranks them (for euclid without the
    /// constant `|q|^2`; for dot and cosine exactly `-<q, c>`), in `out` (resized).
    pub fn distances(&self, metric: Metric, query: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.blocked.len() / self.dim, 0.0);
        dots(&self.blocked, self.dim, query, out);
        out.truncate(self.len());
        match metric {
            Metric::Euclid => out.iter_mut().zip(&self.norms).for_each(|(o, n)| *o = n - 2.0 * *o),
            _ => out.iter_mut().for_each(|o| *o = -*o),
        }
    }

    /// The list nearest to `v` for `metric` (where a new point goes).
    pub fn assign(&self, metric: Metric, v: &[f32], scratch: &mut Vec<f32>) -> u32 {
        self.distances(metric, v, scratch);
        let mut best = (f32::INFINITY, 0u32);
        for (i, &d) in scratch.iter().enumerate() {
            if d < best.0 {
                best = (d, i as u32);
            }
        }
        best.1
    }
}

/// `out[c] = <query, centroid c>` for every centroid of `blocked` (a whole number of blocks).
fn dots(blocked: &[f32], dim: usize, query: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::distance::has_avx2_fma() {
        // SAFETY: AVX2 and FMA are present; `blocked` holds `out.len() / 8` blocks of
        // `8 * dim` floats and `query` holds `dim`.
        unsafe { avx2_dots(blocked, dim, query, out) };
        return;
    }
    portable_dots(blocked, dim, query, out);
}

fn portable_dots(blocked: &[f32], dim: usize, query: &[f32], out: &mut [f32]) {
    for (b, o) in blocked.chunks_exact(dim * LANES).zip(out.chunks_exact_mut(LANES)) {
        let mut acc = [0f32; LANES];
        for (d, &q) in query.iter().enumerate() {
            for (a, &c) in acc.iter_mut().zip(&b[d * LANES..(d + 1) * LANES]) {
                *a += q * c;
            }
        }
        o.copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_dots(blocked: &[f32], dim: usize, query: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let blocks = out.len() / LANES;
    assert!(blocked.len() >= blocks * LANES * dim && query.len() >= dim);
    let p = blocked.as_ptr();
    let mut b = 0;
    // Four blocks at a time: four independent accumulators hide the FMA latency.
    while b + 4 <= blocks {
        let (mut a0, mut a1, mut a2, mut a3) =
            (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        for d in 0..dim {
            let q = _mm256_set1_ps(*query.get_unchecked(d));
            a0 = _mm256_fmadd_ps(q, _mm256_loadu_ps(p.add(b * LANES * dim + d * LANES)), a0);
            a1 = _mm256_fmadd_ps(q, _mm256_loadu_ps(p.add((b + 1) * LANES * dim + d * LANES)), a1);
            a2 = _mm256_fmadd_ps(q, _mm256_loadu_ps(p.add((b + 2) * LANES * dim + d * LANES)), a2);
            a3 = _mm256_fmadd_ps(q, _mm256_loadu_ps(p.add((b + 3) * LANES * dim + d * LANES)), a3);
        }
        let o = out.as_mut_ptr().add(b * LANES);
        _mm256_storeu_ps(o, a0);
        _mm256_storeu_ps(o.add(8), a1);
        _mm256_storeu_ps(o.add(16), a2);
        _mm256_storeu_ps(o.add(24), a3);
        b += 4;
    }
    while b < blocks {
        let mut a = _mm256_setzero_ps();
        for d in 0..dim {
            let q = _mm256_set1_ps(*query.get_unchecked(d));
            a = _mm256_fmadd_ps(q, _mm256_loadu_ps(p.add(b * LANES * dim + d * LANES)), a);
        }
        _mm256_storeu_ps(out.as_mut_ptr().add(b * LANES), a);
        b += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_distances_match_the_plain_ones() {
        let dim = 13;
        let seed = 11u64;
        let mut rng = super::super::kmeans::Rng(seed);
        for n in [1usize, 7, 8, 9, 31, 32, 33, 70] {
            let c: Vec<f32> = (0..n * dim).map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0).collect();
            let q: Vec<f32> = (0..dim).map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0).collect();
            let coarse = Coarse::new(c.clone(), dim);
            let mut out = Vec::new();
            coarse.distances(Metric::Dot, &q, &mut out);
            let mut portable = vec![0f32; coarse.blocked.len() / dim];
            portable_dots(&coarse.blocked, dim, &q, &mut portable);
            for i in 0..n {
                let exact: f32 = -q.iter().zip(&c[i * dim..(i + 1) * dim]).map(|(a, b)| a * b).sum::<f32>();
                assert!((out[i] - exact).abs() < 1e-4, "n {n} centroid {i}: {} vs {exact} (seed {seed})", out[i]);
                assert!((-portable[i] - exact).abs() < 1e-4, "portable, n {n} centroid {i} (seed {seed})");
            }
        }
    }
}
