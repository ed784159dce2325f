//! 8-bit scalar codes of every vector, for the first of two re-ranking steps.
//!
//! Re-ranking a few hundred candidates with their f32 vectors is a cache miss per 64 bytes
//! of vector, and at 50 dimensions it took a third of a query's time. Each vector is
//! therefore also kept as one byte per dimension (per-dimension minimum and step, trained on
//! the data), padded to whole 64-byte lines: re-ranking reads one line per candidate at 64
//! dimensions and below, and only the few best go on to the exact f32 distance. The error
//! of 8 bits per dimension is small next to the gaps between neighbours, so this second
//! estimate orders the candidates almost exactly.

use crate::distance::Metric;

/// One cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

#[derive(Clone)]
pub struct Sq8 {
    dim: usize,
    /// Lines per vector.
    lines: usize,
    min: Vec<f32>,
    step: Vec<f32>,
    codes: Vec<Line>,
}

impl std::fmt::Debug for Sq8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sq8").field("dim", &self.dim).field("vectors", &(self.codes.len() / self.lines.max(1))).finish()
    }
}

/// A query prepared for one metric: `estimate = constant + sum(f(weight_d, code_d))`.
pub struct Sq8Query {
    metric: Metric,
    /// Dot: `query_d * step_d`; euclid: `query_d - min_d`.
    a: Vec<f32>,
    /// Euclid: `step_d` (unused for dot).
    b: Vec<f32>,
    constant: f32,
}

impl Sq8 {
    /// Per-dimension range of `rows` (row-major, `dim` floats each).
    pub fn train(rows: &[f32], dim: usize) -> Self {
        let mut lo = vec![f32::INFINITY; dim];
        let mut hi = vec![f32::NEG_INFINITY; dim];
        for r in rows.chunks_exact(dim) {
            for d in 0..dim {
                lo[d] = lo[d].min(r[d]);
                hi[d] = hi[d].max(r[d]);
            }
        }
        let step = lo.iter().zip(&hi).map(|(l, h)| if h > l { (h - l) / 255.0 } else { 1.0 }).collect();
        let min = lo.into_iter().map(|l| if l.is_finite() { l } else { 0.0 }).collect();
        Sq8 { dim, lines: dim.div_ceil(64), min, step, codes: Vec::new() }
    }

    /// Writes the code of `v` as vector `slot` (growing the store as needed).
    pub fn set(&mut self, slot: u32, v: &[f32]) {
        let at = slot as usize * self.lines;
        if self.codes.len() < at + self.lines {
            self.codes.resize(at + self.lines, Line([0; 64]));
        }
        for (d, &x) in v.iter().enumerate() {
            let q = ((x - self.min[d]) / self.step[d]).round().clamp(0.0, 255.0) as u8;
            self.codes[at + d / 64].0[d % 64] = q;
        }
    }

    pub fn bytes(&self) -> usize {
        self.codes.len() * 64 + self.min.len() * 8
    }

    fn code(&self, slot: u32) -> &[u8] {
        let at = slot as usize * self.lines;
        // SAFETY: `Line` is 64 plain bytes with no padding, so `lines` consecutive lines are
        // `64 * lines` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.codes[at..at + self.lines].as_ptr() as *const u8, self.dim) }
    }

    /// Asks the memory system for the code of `slot`.
    #[inline]
    pub fn prefetch(&self, slot: u32) {
        #[cfg(target_arch = "x86_64")]
        if let Some(line) = self.codes.get(slot as usize * self.lines) {
            // SAFETY: a prefetch is a hint; the address is inside the store.
            unsafe {
                std::arch::x86_64::_mm_prefetch(line as *const Line as *const i8, std::arch::x86_64::_MM_HINT_T0)
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    /// Prepares `query` (internal distances: `-dot` for dot and cosine, squared euclid).
    pub fn query(&self, metric: Metric, query: &[f32]) -> Sq8Query {
        match metric {
            Metric::Euclid => Sq8Query {
                metric,
                a: query.iter().zip(&self.min).map(|(q, m)| q - m).collect(),
                b: self.step.clone(),
                constant: 0.0,
            },
            _ => Sq8Query {
                metric,
                a: query.iter().zip(&self.step).map(|(q, s)| q * s).collect(),
                b: Vec::new(),
                constant: query.iter().zip(&self.min).map(|(q, m)| q * m).sum(),
            },
        }
    }

    /// The estimated internal distance of `slot` to the prepared query.
    #[inline]
    pub fn distance(&self, q: &Sq8Query, slot: u32) -> f32 {
        let code = self.code(slot);
        match q.metric {
            Metric::Euclid => kernels::l2(&q.a, &q.b, code),
            _ => -(q.constant + kernels::dot(&q.a, code)),
        }
    }
}

/// `sum(a_d * code_d)` and `sum((a_d - b_d * code_d)^2)`, AVX2 when the CPU has it.
pub mod kernels {
    #[inline]
    pub fn dot(a: &[f32], code: &[u8]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if crate::distance::has_avx2_fma() {
            // SAFETY: AVX2 and FMA are present; the lengths are checked inside.
            return unsafe { avx2::dot(a, code) };
        }
        portable_dot(a, code)
    }

    #[inline]
    pub fn l2(a: &[f32], b: &[f32], code: &[u8]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if crate::distance::has_avx2_fma() {
            // SAFETY: as in `dot`.
            return unsafe { avx2::l2(a, b, code) };
        }
        portable_l2(a, b, code)
    }

    pub fn portable_dot(a: &[f32], code: &[u8]) -> f32 {
        a.iter().zip(code).map(|(x, &c)| x * c as f32).sum()
    }

    pub fn portable_l2(a: &[f32], b: &[f32], code: &[u8]) -> f32 {
        a.iter().zip(b).zip(code).map(|((x, s), &c)| (x - s * c as f32) * (x - s * c as f32)).sum()
    }

    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        use std::arch::x86_64::*;

        #[target_feature(enable = "avx2,fma")]
        unsafe fn hsum(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
            _mm_cvtss_f32(s)
        }

        /// Eight codes widened to floats.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn widen(p: *const u8) -> __m256 {
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i)))
        }

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn dot(a: &[f32], code: &[u8]) -> f32 {
            let n = a.len().min(code.len());
            let mut acc = _mm256_setzero_ps();
            let mut i = 0;
            while i + 8 <= n {
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(i)), widen(code.as_ptr().add(i)), acc);
                i += 8;
            }
            let mut s = hsum(acc);
            while i < n {
                s += a[i] * code[i] as f32;
                i += 1;
            }
            s
        }

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn l2(a: &[f32], b: &[f32], code: &[u8]) -> f32 {
            let n = a.len().min(b.len()).min(code.len());
            let mut acc = _mm256_setzero_ps();
            let mut i = 0;
            while i + 8 <= n {
                let d = _mm256_fnmadd_ps(
                    _mm256_loadu_ps(b.as_ptr().add(i)),
                    widen(code.as_ptr().add(i)),
                    _mm256_loadu_ps(a.as_ptr().add(i)),
                );
                acc = _mm256_fmadd_ps(d, d, acc);
                i += 8;
            }
            let mut s = hsum(acc);
            while i < n {
                let d = a[i] - b[i] * code[i] as f32;
                s += d * d;
                i += 1;
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::kmeans::Rng;
    use super::*;

    #[test]
    fn kernels_agree_and_estimates_are_close() {
        let seed = std::env::var("AMETIST_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xC0DE);
        eprintln!("sq8: seed {seed} (replay with AMETIST_TEST_SEED={seed})");
        let mut rng = Rng(seed);
        let mut f = || (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
        for dim in [1usize, 7, 8, 9, 50, 64, 65, 130] {
            let rows: Vec<f32> = (0..50 * dim).map(|_| f()).collect();
            let mut sq = Sq8::train(&rows, dim);
            for (i, r) in rows.chunks_exact(dim).enumerate() {
                sq.set(i as u32, r);
            }
            let q: Vec<f32> = (0..dim).map(|_| f()).collect();
            for metric in [Metric::Dot, Metric::Euclid] {
                let prepared = sq.query(metric, &q);
                for (i, r) in rows.chunks_exact(dim).enumerate() {
                    let code = sq.code(i as u32);
                    let (simd, portable) = match metric {
                        Metric::Euclid => (
                            kernels::l2(&prepared.a, &prepared.b, code),
                            kernels::portable_l2(&prepared.a, &prepared.b, code),
                        ),
                        _ => (kernels::dot(&prepared.a, code), kernels::portable_dot(&prepared.a, code)),
                    };
                    assert!(
                        (simd - portable).abs() <= 1e-4 * portable.abs().max(1.0),
                        "dim {dim} {metric:?} seed {seed}"
                    );
                    let exact = metric.distance(&q, r);
                    // Each dimension is off by at most half a step (2/255 wide here).
                    let est = sq.distance(&prepared, i as u32);
                    assert!(
                        (est - exact).abs() <= 0.01 * dim as f32,
                        "dim {dim} {metric:?}: {est} vs {exact} seed {seed}"
                    );
                }
            }
        }
    }
}
