//! Metrics and their kernels.
//!
//! Inside Ametist every comparison is a *distance*: lower is closer, for every metric, so
//! heaps and graphs need no per-metric branches. Clients see Qdrant's *score* instead:
//! cosine and dot return similarity (higher is better), euclid and manhattan return the
//! distance (lower is better). [`Metric::score`] and [`Metric::distance_from_score`] convert.
//!
//! | metric    | stored vector | internal distance     | score shown        |
//! |-----------|---------------|-----------------------|--------------------|
//! | cosine    | normalised    | `-dot(a, b)`          | `dot(a, b)`        |
//! | dot       | as given      | `-dot(a, b)`          | `dot(a, b)`        |
//! | euclid    | as given      | `sum((a - b)^2)`      | `sqrt(distance)`   |
//! | manhattan | as given      | `sum(abs(a - b))`     | `distance`         |

use serde::{Deserialize, Serialize};

/// How two vectors are compared. Serialised with Qdrant's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Metric {
    Cosine,
    Dot,
    Euclid,
    Manhattan,
}

impl Metric {
    /// Internal distance between `a` and `b` (lower is closer). For cosine both vectors
    /// must already be normalised.
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        match self {
            Metric::Cosine | Metric::Dot => -dot(a, b),
            Metric::Euclid => l2_squared(a, b),
            Metric::Manhattan => l1(a, b),
        }
    }

    /// The score a client sees for an internal distance.
    #[inline]
    pub fn score(self, distance: f32) -> f32 {
        match self {
            Metric::Cosine | Metric::Dot => -distance,
            Metric::Euclid => distance.max(0.0).sqrt(),
            Metric::Manhattan => distance,
        }
    }

    /// The internal distance for a client-visible score: the inverse of [`Metric::score`].
    #[inline]
    pub fn distance_from_score(self, score: f32) -> f32 {
        match self {
            Metric::Cosine | Metric::Dot => -score,
            Metric::Euclid => score * score,
            Metric::Manhattan => score,
        }
    }

    /// True when a higher score means a closer point (cosine, dot).
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::Cosine | Metric::Dot)
    }

    /// True when vectors are normalised to unit length at insert and at query time.
    pub fn normalises(self) -> bool {
        matches!(self, Metric::Cosine)
    }
}

/// A distance kernel: `f(a, b)` over two slices of equal length.
pub type Kernel = fn(&[f32], &[f32]) -> f32;

/// The kernels chosen for this CPU, once, at first use.
struct Kernels {
    dot: unsafe fn(&[f32], &[f32]) -> f32,
    l2_squared: unsafe fn(&[f32], &[f32]) -> f32,
    l1: unsafe fn(&[f32], &[f32]) -> f32,
}

fn kernels() -> &'static Kernels {
    static KERNELS: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
    KERNELS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            return Kernels { dot: avx2::dot, l2_squared: avx2::l2_squared, l1: avx2::l1 };
        }
        Kernels { dot: scalar_dot, l2_squared: scalar_l2_squared, l1: scalar_l1 }
    })
}

// `unsafe fn` shims so that the scalar and SIMD kernels share one pointer type.
unsafe fn scalar_dot(a: &[f32], b: &[f32]) -> f32 {
    scalar::dot(a, b)
}
unsafe fn scalar_l2_squared(a: &[f32], b: &[f32]) -> f32 {
    scalar::l2_squared(a, b)
}
unsafe fn scalar_l1(a: &[f32], b: &[f32]) -> f32 {
    scalar::l1(a, b)
}

/// True when this CPU runs the AVX2+FMA kernels (detected once, then cached).
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Dot product (AVX2+FMA when the CPU has it).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: length mismatch");
    // SAFETY: the pointer was chosen by `kernels()` after checking the CPU features it needs.
    unsafe { (kernels().dot)(a, b) }
}

/// Squared euclidean distance (AVX2+FMA when the CPU has it).
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "l2_squared: length mismatch");
    // SAFETY: as in `dot`.
    unsafe { (kernels().l2_squared)(a, b) }
}

/// Manhattan (L1) distance (AVX2+FMA when the CPU has it).
#[inline]
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "l1: length mismatch");
    // SAFETY: as in `dot`.
    unsafe { (kernels().l1)(a, b) }
}

/// AVX2+FMA kernels. Every function requires that the CPU supports `avx2` and `fma`
/// (check [`has_avx2_fma`]) and that `a.len() == b.len()`; callers that already run
/// inside a `#[target_feature(enable = "avx2,fma")]` function get them inlined.
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use std::arch::x86_64::*;

    /// Lane masks for the last `n % 8` elements: `MASKS[8 - r..16 - r]` enables `r` lanes.
    static MASK_TABLE: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

    #[inline(always)]
    unsafe fn tail_mask(r: usize) -> __m256i {
        // SAFETY: r < 8, so 8 - r + 8 <= 16.
        _mm256_loadu_si256(MASK_TABLE.as_ptr().add(8 - r) as *const __m256i)
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
        _mm_cvtss_f32(s)
    }

    macro_rules! kernel {
        ($(#[$doc:meta])* $name:ident, $ptr_name:ident, |$acc:ident, $x:ident, $y:ident| $step:expr) => {
            $(#[$doc])*
            ///
            /// # Safety
            /// The CPU must support AVX2 and FMA, and `a.len() == b.len()`.
            #[target_feature(enable = "avx2,fma")]
            #[inline]
            pub unsafe fn $name(a: &[f32], b: &[f32]) -> f32 {
                debug_assert_eq!(a.len(), b.len());
                $ptr_name(a.as_ptr(), b.as_ptr(), a.len())
            }

            /// Raw-pointer form of the kernel of the same name.
            ///
            /// # Safety
            /// The CPU must support AVX2 and FMA; `a` and `b` must be valid for `n` reads.
            #[target_feature(enable = "avx2,fma")]
            #[inline]
            pub unsafe fn $ptr_name(a: *const f32, b: *const f32, n: usize) -> f32 {
                #[allow(unused_unsafe)]
                unsafe {
                    let mut acc0 = _mm256_setzero_ps();
                    let mut acc1 = _mm256_setzero_ps();
                    let mut acc2 = _mm256_setzero_ps();
                    let mut acc3 = _mm256_setzero_ps();
                    let mut i = 0;
                    while i + 32 <= n {
                        {
                            let $acc = acc0;
                            let $x = _mm256_loadu_ps(a.add(i));
                            let $y = _mm256_loadu_ps(b.add(i));
                            acc0 = $step;
                        }
                        {
                            let $acc = acc1;
                            let $x = _mm256_loadu_ps(a.add(i + 8));
                            let $y = _mm256_loadu_ps(b.add(i + 8));
                            acc1 = $step;
                        }
                        {
                            let $acc = acc2;
                            let $x = _mm256_loadu_ps(a.add(i + 16));
                            let $y = _mm256_loadu_ps(b.add(i + 16));
                            acc2 = $step;
                        }
                        {
                            let $acc = acc3;
                            let $x = _mm256_loadu_ps(a.add(i + 24));
                            let $y = _mm256_loadu_ps(b.add(i + 24));
                            acc3 = $step;
                        }
                        i += 32;
                    }
                    if i + 16 <= n {
                        {
                            let $acc = acc0;
                            let $x = _mm256_loadu_ps(a.add(i));
                            let $y = _mm256_loadu_ps(b.add(i));
                            acc0 = $step;
                        }
                        {
                            let $acc = acc1;
                            let $x = _mm256_loadu_ps(a.add(i + 8));
                            let $y = _mm256_loadu_ps(b.add(i + 8));
                            acc1 = $step;
                        }
                        i += 16;
                    }
                    if i + 8 <= n {
                        let $acc = acc2;
                        let $x = _mm256_loadu_ps(a.add(i));
                        let $y = _mm256_loadu_ps(b.add(i));
                        acc2 = $step;
                        i += 8;
                    }
                    let r = n - i;
                    if r > 0 {
                        // Masked loads never touch the lanes that are switched off, so no
                        // read goes past the end of either slice.
                        let m = tail_mask(r);
                        let $acc = acc3;
                        let $x = _mm256_maskload_ps(a.add(i), m);
                        let $y = _mm256_maskload_ps(b.add(i), m);
                        acc3 = $step;
                    }
                    hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)))
                }
            }
        };
    }

    /// Squared euclidean distance that may stop early: returns the distance when it is
    /// below `bound` (equal to [`l2_squared`] up to rounding of the summation order),
    /// otherwise some partial sum `>= bound` (partial sums of squares only grow, also in
    /// floating point, so stopping never drops a point that is closer than `bound`).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `a` and `b` must be valid for `n` reads.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub unsafe fn l2_squared_bounded_ptr(a: *const f32, b: *const f32, n: usize, bound: f32) -> f32 {
        #[allow(unused_unsafe)]
        unsafe {
            let mut acc0 = _mm256_setzero_ps();
            let mut acc1 = _mm256_setzero_ps();
            let mut acc2 = _mm256_setzero_ps();
            let mut acc3 = _mm256_setzero_ps();
            let mut i = 0;
            while i + 32 <= n {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)));
                let d1 = _mm256_sub_ps(_mm256_loadu_ps(a.add(i + 8)), _mm256_loadu_ps(b.add(i + 8)));
                let d2 = _mm256_sub_ps(_mm256_loadu_ps(a.add(i + 16)), _mm256_loadu_ps(b.add(i + 16)));
                let d3 = _mm256_sub_ps(_mm256_loadu_ps(a.add(i + 24)), _mm256_loadu_ps(b.add(i + 24)));
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
                acc1 = _mm256_fmadd_ps(d1, d1, acc1);
                acc2 = _mm256_fmadd_ps(d2, d2, acc2);
                acc3 = _mm256_fmadd_ps(d3, d3, acc3);
                i += 32;
                // Every 128 floats (8 cache lines, what the graph walk prefetches ahead of a
                // distance): checking every 64 costs more in horizontal sums than it saves
                // in loads (fashion-mnist, 784 dimensions: 5-10% fewer queries per second).
                if i % 128 == 0 && i + 32 <= n {
                    let partial = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
                    if partial >= bound {
                        return partial;
                    }
                }
            }
            let rest = l2_squared_ptr(a.add(i), b.add(i), n - i);
            hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3))) + rest
        }
    }

    kernel!(
        /// Dot product.
        dot, dot_ptr, |acc, x, y| _mm256_fmadd_ps(x, y, acc)
    );
    kernel!(
        /// Squared euclidean distance.
        l2_squared, l2_squared_ptr, |acc, x, y| {
            let d = _mm256_sub_ps(x, y);
            _mm256_fmadd_ps(d, d, acc)
        }
    );
    kernel!(
        /// Manhattan distance.
        l1, l1_ptr, |acc, x, y| {
            let d = _mm256_sub_ps(x, y);
            _mm256_add_ps(acc, _mm256_andnot_ps(_mm256_set1_ps(-0.0), d))
        }
    );
}

/// Plain scalar kernels: the portable fallback and the reference the SIMD kernels are
/// tested against.
pub mod scalar {
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
    }

    pub fn l1(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64: a tiny seeded generator, so a failure can be replayed from its seed.
    struct Rng(u64);
    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn f32(&mut self) -> f32 {
            ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    fn seed() -> u64 {
        let seed = std::env::var("AMETIST_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7)
        });
        eprintln!("distance kernels: seed {seed} (replay with AMETIST_TEST_SEED={seed})");
        seed
    }

    fn close(simd: f32, reference: f32, scale: f32) -> bool {
        (simd - reference).abs() <= 1e-5 * scale.max(1.0)
    }

    #[test]
    fn simd_matches_scalar() {
        let seed = seed();
        let mut rng = Rng(seed);
        for &dim in &[1usize, 2, 3, 4, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 50, 63, 64, 65, 100, 128, 784, 1000] {
            for _ in 0..20 {
                let a: Vec<f32> = (0..dim).map(|_| rng.f32() * 10.0).collect();
                let b: Vec<f32> = (0..dim).map(|_| rng.f32() * 10.0).collect();
                // Scale for the tolerance: the sum of the magnitudes of the terms.
                let mag_dot: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
                let mag_l2 = scalar::l2_squared(&a, &b);
                let mag_l1 = scalar::l1(&a, &b);
                let (d, l2, m) = (dot(&a, &b), l2_squared(&a, &b), l1(&a, &b));
                assert!(close(d, scalar::dot(&a, &b), mag_dot), "dot dim {dim} seed {seed}");
                assert!(close(l2, mag_l2, mag_l2), "l2 dim {dim} seed {seed}");
                assert!(close(m, mag_l1, mag_l1), "l1 dim {dim} seed {seed}");
                for metric in [Metric::Cosine, Metric::Dot, Metric::Euclid, Metric::Manhattan] {
                    let reference = match metric {
                        Metric::Cosine | Metric::Dot => -scalar::dot(&a, &b),
                        Metric::Euclid => mag_l2,
                        Metric::Manhattan => mag_l1,
                    };
                    let scale = mag_dot.max(mag_l2).max(mag_l1);
                    assert!(close(metric.distance(&a, &b), reference, scale), "{metric:?} dim {dim} seed {seed}");
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn bounded_l2_is_exact_below_the_bound() {
        if !has_avx2_fma() {
            return;
        }
        let seed = seed();
        let mut rng = Rng(seed);
        for &dim in &[1usize, 7, 33, 127, 128, 129, 300, 784] {
            for _ in 0..50 {
                let a: Vec<f32> = (0..dim).map(|_| rng.f32()).collect();
                let b: Vec<f32> = (0..dim).map(|_| rng.f32()).collect();
                let exact = l2_squared(&a, &b);
                let bound = exact * (rng.f32() + 1.0) * 1.5; // somewhere in [0, 3 * exact)
                                                             // SAFETY: features checked above; both slices hold `dim` floats.
                let got = unsafe { avx2::l2_squared_bounded_ptr(a.as_ptr(), b.as_ptr(), dim, bound) };
                if got < bound {
                    assert!((got - exact).abs() <= 1e-5 * exact.max(1.0), "dim {dim} seed {seed}");
                } else {
                    assert!(exact >= bound * (1.0 - 1e-5), "dim {dim} seed {seed}: stopped early wrongly");
                }
            }
        }
    }

    #[test]
    fn empty_and_exact_values() {
        assert_eq!(dot(&[], &[]), 0.0);
        assert_eq!(l2_squared(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.0);
        assert_eq!(l1(&[1.0, -2.0, 3.0], &[0.0, 0.0, 0.0]), 6.0);
        let a: Vec<f32> = (0..17).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), (0..17).map(|i| (i * i) as f32).sum::<f32>());
    }

    #[test]
    fn scores_round_trip() {
        for metric in [Metric::Cosine, Metric::Dot, Metric::Euclid, Metric::Manhattan] {
            let d = 4.0;
            assert!((metric.distance_from_score(metric.score(d)) - d).abs() < 1e-6);
        }
    }
}
