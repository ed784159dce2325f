//! Scalar codes (4 or 8 bits per dimension): a compact copy of every vector that the graph
//! walk reads instead of the f32 originals, which then re-score the walk's final candidates.
//!
//! Why: on high-dimensional data (784-dim fashion-mnist: 3,136 bytes per vector) a query's
//! time goes into fetching the few hundred vectors the walk visits from memory. Their 4-bit
//! codes are an eighth of that (416 bytes), and the ranking they induce keeps the true
//! neighbours among the walk's `ef` best, so re-scoring those with the originals gives the
//! exact distances and nearly the same recall. On low-dimensional data (glove-50) the walk
//! is bound by computation, not memory, and 4 bits lose too much: the option stays off.
//! 8-bit codes (Qdrant's `scalar int8`) cost a byte per dimension and keep more of the
//! ranking, for data whose neighbours differ by less than a sixteenth of the value range.
//!
//! Code of a value: `round((x - lo) / step)` clamped to `0..=15` (4 bits) or `0..=255`
//! (8 bits), with one `lo` and `step` for every dimension (chosen from quantiles of a
//! sample, see [`Scale::train`]). With 4 bits, dimension `2j` sits in the low nibble of byte
//! `j`, `2j + 1` in the high one; with 8 bits dimension `j` is byte `j`. The code is padded
//! with zeros to a multiple of 16 bytes, so the kernels need no scalar tail (both sides pad
//! alike, and zero against zero adds nothing to any of the sums).
//!
//! Distances between codes are computed in integers and scaled back:
//! * euclid: `step² · Σ(a - b)²`;
//! * dot (and cosine, on normalised vectors): `-(n·lo² + lo·step·(Σa + Σb) + step²·Σab)`,
//!   which needs each code's sum `Σa`, stored beside it;
//! * manhattan: `step · Σ|a - b|`.

use crate::distance::Metric;

/// Which compact copy of the vectors an index walks on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// The walk reads the f32 vectors.
    #[default]
    None,
    /// The walk reads 4-bit codes; the `ef` best are re-scored with the f32 vectors.
    Int4,
    /// The walk reads 8-bit codes; the `ef` best are re-scored with the f32 vectors.
    Int8,
}

impl Quantization {
    /// Bits per dimension of the codes (0 for none).
    pub fn bits(self) -> usize {
        match self {
            Quantization::None => 0,
            Quantization::Int4 => 4,
            Quantization::Int8 => 8,
        }
    }
}

/// The share of the sampled values that the codes' range holds by default, centred: the
/// lowest and the highest 0.1% are clamped to its ends. (Qdrant's `quantile`; Qdrant's own
/// default is the whole range.)
pub const DEFAULT_QUANTILE: f32 = 0.998;

/// A quantile brought into `[0.5, 1]` (Qdrant's range); not a number gives the default.
pub(crate) fn clamp_quantile(quantile: f32) -> f32 {
    if quantile.is_nan() {
        DEFAULT_QUANTILE
    } else {
        quantile.clamp(0.5, 1.0)
    }
}

/// The scale shared by all codes of an index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scale {
    pub lo: f32,
    pub step: f32,
    /// 4 or 8.
    pub bits: u8,
}

/// Bytes of one code of `bits` bits for `dim` dimensions (padded to 16).
pub(crate) fn code_bytes(dim: usize, bits: usize) -> usize {
    (dim * bits).div_ceil(8).div_ceil(16) * 16
}

impl Scale {
    /// Chooses `lo` and `step` from the values of `sample` (vectors): the range that holds
    /// the central `quantile` of them (see [`DEFAULT_QUANTILE`]), so a few outliers do not
    /// stretch the step for everyone; values outside it are clamped (the re-scoring
    /// corrects what that costs).
    pub(crate) fn train<'a>(sample: impl Iterator<Item = &'a [f32]>, bits: u8, quantile: f32) -> Scale {
        assert!(bits == 4 || bits == 8, "codes have 4 or 8 bits");
        let mut values: Vec<f32> = sample.flat_map(|v| v.iter().copied()).filter(|x| x.is_finite()).collect();
        if values.is_empty() {
            return Scale { lo: 0.0, step: 1.0, bits };
        }
        let n = values.len();
        let lo_at = ((n as f64 * (1.0 - clamp_quantile(quantile) as f64) / 2.0) as usize).min(n - 1);
        let hi_at = (n - 1 - lo_at).max(lo_at);
        let (_, &mut lo, _) = values.select_nth_unstable_by(lo_at, f32::total_cmp);
        let (_, &mut hi, _) = values.select_nth_unstable_by(hi_at, f32::total_cmp);
        let step = if hi > lo { (hi - lo) / Self::top(bits) } else { 1.0 };
        Scale { lo, step, bits }
    }

    /// True when codes made with `self` would be about the same as with `other`: both ends
    /// of the range are within 1/64 of `other`'s range (a quarter step with 4 bits, four
    /// steps of 256 with 8), so that keeping `other` costs the walk nothing measurable,
    /// while quantiles drawn from a new sample of the same data always differ a little.
    pub(crate) fn close_to(&self, other: &Scale) -> bool {
        let ((lo, hi), (other_lo, other_hi)) = (self.range(), other.range());
        let slack = (other_hi - other_lo) / 64.0;
        self.bits == other.bits && (lo - other_lo).abs() <= slack && (hi - other_hi).abs() <= slack
    }

    /// The lowest and the highest value codes tell apart.
    pub(crate) fn range(&self) -> (f32, f32) {
        (self.lo, self.lo + self.step * Self::top(self.bits))
    }

    /// The largest code value.
    fn top(bits: u8) -> f32 {
        ((1u32 << bits) - 1) as f32
    }

    /// Writes the code of `v` into `out` (`code_bytes(v.len(), bits)` bytes) and returns
    /// its sum.
    pub(crate) fn encode(&self, v: &[f32], out: &mut [u8]) -> u32 {
        out.fill(0);
        let (lo, inv, top) = (self.lo, 1.0 / self.step, Self::top(self.bits));
        // Clamped first, then rounded half up by truncation (the value is not negative
        // then): unlike `f32::round`, this compiles to vector instructions, and every
        // search encodes its query.
        let code = |x: f32| (((x - lo) * inv).max(0.0).min(top) + 0.5) as u8;
        if self.bits == 8 {
            for (o, &x) in out.iter_mut().zip(v) {
                *o = code(x);
            }
        } else {
            for (o, pair) in out.iter_mut().zip(v.chunks(2)) {
                *o = code(pair[0]) | pair.get(1).map_or(0, |&x| code(x) << 4);
            }
        }
        out.iter().map(|&b| if self.bits == 8 { b as u32 } else { (b & 15) as u32 + (b >> 4) as u32 }).sum()
    }

    /// Turns a kernel's integer result into a distance for `metric` (lower is closer).
    #[inline(always)]
    pub(crate) fn finish(&self, metric: Metric, raw: u32, sum_a: u32, sum_b: u32, dim: usize) -> f32 {
        let raw = raw as f32;
        match metric {
            Metric::Euclid => self.step * self.step * raw,
            Metric::Manhattan => self.step * raw,
            Metric::Cosine | Metric::Dot => {
                let (lo, s) = (self.lo, self.step);
                -(dim as f32 * lo * lo + lo * s * (sum_a + sum_b) as f32 + s * s * raw)
            }
        }
    }
}

/// The integer part of a code distance: `Σ(a-b)²`, `Σab` or `Σ|a-b|` over the code values.
pub(crate) trait CodeKernel: Copy + Send + Sync {
    /// # Safety
    /// `a` and `b` must be valid for `bytes` reads, `bytes` a multiple of 16, and the CPU
    /// must have the kernel's features.
    unsafe fn raw(self, a: *const u8, b: *const u8, bytes: usize) -> u32;
}

/// Portable kernels.
pub(crate) mod scalar {
    use super::CodeKernel;

    /// A kernel summing `$term` over the code values of two codes of `$bits` bits.
    macro_rules! scalar_kernel {
        ($name:ident, $bits:literal, |$x:ident, $y:ident| $term:expr) => {
            #[derive(Clone, Copy, Default)]
            pub(crate) struct $name;
            impl CodeKernel for $name {
                #[inline(always)]
                unsafe fn raw(self, a: *const u8, b: *const u8, bytes: usize) -> u32 {
                    // SAFETY: the caller guarantees both pointers are valid for `bytes` reads.
                    let (a, b) =
                        unsafe { (std::slice::from_raw_parts(a, bytes), std::slice::from_raw_parts(b, bytes)) };
                    let mut acc = 0u32;
                    for (&p, &q) in a.iter().zip(b) {
                        for shift in (0..8).step_by($bits) {
                            let mask = ((1u32 << $bits) - 1) as u8;
                            let ($x, $y) = (((p >> shift) & mask) as i32, ((q >> shift) & mask) as i32);
                            acc = acc.wrapping_add(($term) as u32);
                        }
                    }
                    acc
                }
            }
        };
    }
    scalar_kernel!(L2, 4, |x, y| (x - y) * (x - y));
    scalar_kernel!(Dot, 4, |x, y| x * y);
    scalar_kernel!(L1, 4, |x, y| (x - y).unsigned_abs());
    scalar_kernel!(L2x8, 8, |x, y| (x - y) * (x - y));
    scalar_kernel!(Dotx8, 8, |x, y| x * y);
    scalar_kernel!(L1x8, 8, |x, y| (x - y).unsigned_abs());
}

/// AVX2 kernels, 32 code bytes per step: 4-bit codes are split into nibbles with a shift
/// and a mask and multiplied with `maddubs` (values are at most 15, so the pairs never
/// saturate); 8-bit codes are widened to 16 bits and multiplied with `madd` (products at
/// most 255², summed in pairs, fit the i32 lanes).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::CodeKernel;
    use std::arch::x86_64::*;

    /// A kernel whose `$step` turns 32 bytes of each side (`$x`, `$y`) into i32 lanes to
    /// add up. A macro rather than a closure, so that the intrinsics are expanded right
    /// inside the loop that the caller compiles with AVX2 enabled.
    macro_rules! avx_kernel {
        ($name:ident, |$x:ident, $y:ident| $step:expr) => {
            /// Only constructed after `has_avx2_fma()` said yes.
            #[derive(Clone, Copy)]
            pub(crate) struct $name;
            impl CodeKernel for $name {
                #[inline(always)]
                unsafe fn raw(self, a: *const u8, b: *const u8, bytes: usize) -> u32 {
                    // SAFETY: the caller checked AVX2 and that both pointers are valid for
                    // `bytes` reads (a multiple of 16).
                    unsafe {
                        let mut acc = _mm256_setzero_si256();
                        let mut i = 0;
                        while i < bytes {
                            // A last half step loads 16 bytes and zeros the upper lanes
                            // of both sides, which then add nothing.
                            let ($x, $y) = if i + 32 <= bytes {
                                (
                                    _mm256_loadu_si256(a.add(i) as *const __m256i),
                                    _mm256_loadu_si256(b.add(i) as *const __m256i),
                                )
                            } else {
                                (
                                    _mm256_zextsi128_si256(_mm_loadu_si128(a.add(i) as *const __m128i)),
                                    _mm256_zextsi128_si256(_mm_loadu_si128(b.add(i) as *const __m128i)),
                                )
                            };
                            acc = _mm256_add_epi32(acc, $step);
                            i += 32;
                        }
                        let s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
                        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
                        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
                        _mm_cvtsi128_si32(s) as u32
                    }
                }
            }
        };
    }

    /// The low and the high nibbles of 32 bytes, each as bytes.
    #[inline(always)]
    unsafe fn nibbles(x: __m256i) -> (__m256i, __m256i) {
        // SAFETY: the callers run with AVX2 (see `avx_kernel!`).
        unsafe {
            let mask = _mm256_set1_epi8(15);
            (_mm256_and_si256(x, mask), _mm256_and_si256(_mm256_srli_epi16(x, 4), mask))
        }
    }

    /// The two halves of 32 bytes widened to 16 bits.
    #[inline(always)]
    unsafe fn widen(x: __m256i) -> (__m256i, __m256i) {
        // SAFETY: the callers run with AVX2 (see `avx_kernel!`).
        unsafe {
            (_mm256_cvtepu8_epi16(_mm256_castsi256_si128(x)), _mm256_cvtepu8_epi16(_mm256_extracti128_si256(x, 1)))
        }
    }

    avx_kernel!(L2, |x, y| {
        let ((xl, xh), (yl, yh)) = (nibbles(x), nibbles(y));
        let dl = _mm256_abs_epi8(_mm256_sub_epi8(xl, yl));
        let dh = _mm256_abs_epi8(_mm256_sub_epi8(xh, yh));
        let sq = _mm256_add_epi16(_mm256_maddubs_epi16(dl, dl), _mm256_maddubs_epi16(dh, dh));
        _mm256_madd_epi16(sq, _mm256_set1_epi16(1))
    });
    avx_kernel!(Dot, |x, y| {
        let ((xl, xh), (yl, yh)) = (nibbles(x), nibbles(y));
        let p = _mm256_add_epi16(_mm256_maddubs_epi16(xl, yl), _mm256_maddubs_epi16(xh, yh));
        _mm256_madd_epi16(p, _mm256_set1_epi16(1))
    });
    // `sad` sums absolute byte differences into four u64 lanes; their values are small, so
    // adding them as i32 lanes is exact (the upper halves stay zero). The nibbles' sum is
    // the sum over both of them, so the 4-bit kernel can take the bytes' `sad` of each.
    avx_kernel!(L1, |x, y| {
        let ((xl, xh), (yl, yh)) = (nibbles(x), nibbles(y));
        _mm256_add_epi64(_mm256_sad_epu8(xl, yl), _mm256_sad_epu8(xh, yh))
    });
    avx_kernel!(L2x8, |x, y| {
        let ((xa, xb), (ya, yb)) = (widen(x), widen(y));
        let (da, db) = (_mm256_sub_epi16(xa, ya), _mm256_sub_epi16(xb, yb));
        _mm256_add_epi32(_mm256_madd_epi16(da, da), _mm256_madd_epi16(db, db))
    });
    avx_kernel!(Dotx8, |x, y| {
        let ((xa, xb), (ya, yb)) = (widen(x), widen(y));
        _mm256_add_epi32(_mm256_madd_epi16(xa, ya), _mm256_madd_epi16(xb, yb))
    });
    avx_kernel!(L1x8, |x, y| _mm256_sad_epu8(x, y));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: &mut u64) -> f32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed >> 40) as f32 / (1u64 << 24) as f32
    }

    /// The range holds the central `quantile` of the values: all of them at 1, half at 0.5.
    #[test]
    fn the_range_holds_the_central_quantile() {
        let values: Vec<f32> = (0..=1000).map(|i| i as f32).collect();
        let range = |quantile: f32| Scale::train(std::iter::once(values.as_slice()), 8, quantile).range();
        assert_eq!(range(1.0), (0.0, 1000.0));
        assert_eq!(range(0.5), (250.0, 750.0));
        assert_eq!(range(DEFAULT_QUANTILE), (1.0, 999.0));
        // Outside Qdrant's range, the nearest end of it.
        assert_eq!(range(0.1), range(0.5));
        assert_eq!(range(3.0), range(1.0));
        assert_eq!(range(f32::NAN), range(DEFAULT_QUANTILE));
    }

    /// Codes of random vectors: the AVX2 kernels equal the portable ones, and the portable
    /// ones equal the distance between the decoded vectors.
    #[test]
    fn kernels_match_the_decoded_distance() {
        let seed = std::env::var("AMETIST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x1234_5678_u64);
        println!("seed {seed} (replay with AMETIST_SEED={seed})");
        let mut s = seed;
        for (dim, bits) in [1, 3, 7, 15, 17, 33, 64, 65, 784].into_iter().flat_map(|d| [(d, 4u8), (d, 8)]) {
            let vecs: Vec<Vec<f32>> = (0..20).map(|_| (0..dim).map(|_| rng(&mut s) * 4.0 - 2.0).collect()).collect();
            let q = Scale::train(vecs.iter().map(|v| v.as_slice()), bits, DEFAULT_QUANTILE);
            let bytes = code_bytes(dim, bits as usize);
            let codes: Vec<(Vec<u8>, u32)> = vecs
                .iter()
                .map(|v| {
                    let mut c = vec![0u8; bytes];
                    let sum = q.encode(v, &mut c);
                    (c, sum)
                })
                .collect();
            let decode = |c: &[u8]| -> Vec<f32> {
                let value = |j: usize| if bits == 8 { c[j] } else { (c[j / 2] >> ((j % 2) * 4)) & 15 };
                (0..dim).map(|j| q.lo + q.step * value(j) as f32).collect()
            };
            for (a, sa) in &codes {
                for (b, sb) in &codes {
                    let (da, db) = (decode(a), decode(b));
                    let expect_l2: f32 = da.iter().zip(&db).map(|(x, y)| (x - y) * (x - y)).sum();
                    let expect_dot: f32 = -da.iter().zip(&db).map(|(x, y)| x * y).sum::<f32>();
                    let expect_l1: f32 = da.iter().zip(&db).map(|(x, y)| (x - y).abs()).sum();
                    // SAFETY: both codes hold `bytes` bytes.
                    let raw = unsafe {
                        if bits == 8 {
                            raw3((scalar::L2x8, scalar::Dotx8, scalar::L1x8), a, b)
                        } else {
                            raw3((scalar::L2, scalar::Dot, scalar::L1), a, b)
                        }
                    };
                    let tol = |e: f32| 1e-3 * (1.0 + e.abs());
                    let got = q.finish(Metric::Euclid, raw[0], *sa, *sb, dim);
                    assert!((got - expect_l2).abs() < tol(expect_l2), "l2 dim {dim} {bits} bits: {got} vs {expect_l2}");
                    let got = q.finish(Metric::Dot, raw[1], *sa, *sb, dim);
                    assert!((got - expect_dot).abs() < tol(expect_dot), "dot dim {dim}: {got} vs {expect_dot}");
                    let got = q.finish(Metric::Manhattan, raw[2], *sa, *sb, dim);
                    assert!((got - expect_l1).abs() < tol(expect_l1), "l1 dim {dim}: {got} vs {expect_l1}");
                    #[cfg(target_arch = "x86_64")]
                    if crate::distance::has_avx2_fma() {
                        // SAFETY: AVX2 checked; both codes hold `bytes` bytes.
                        let avx = unsafe {
                            if bits == 8 {
                                raw3((avx2::L2x8, avx2::Dotx8, avx2::L1x8), a, b)
                            } else {
                                raw3((avx2::L2, avx2::Dot, avx2::L1), a, b)
                            }
                        };
                        assert_eq!(avx, raw, "avx2 vs portable, dim {dim}, {bits} bits");
                    }
                }
            }
        }
    }

    /// The euclid, dot and manhattan kernels' results for two codes of the same length.
    ///
    /// # Safety
    /// The CPU must have the kernels' features.
    unsafe fn raw3(k: (impl CodeKernel, impl CodeKernel, impl CodeKernel), a: &[u8], b: &[u8]) -> [u32; 3] {
        assert_eq!(a.len(), b.len());
        // SAFETY: both slices hold `len` bytes; the caller vouches for the CPU.
        unsafe {
            [
                k.0.raw(a.as_ptr(), b.as_ptr(), a.len()),
                k.1.raw(a.as_ptr(), b.as_ptr(), a.len()),
                k.2.raw(a.as_ptr(), b.as_ptr(), a.len()),
            ]
        }
    }

    /// Encoding clamps out-of-range values and rounds to the nearest level.
    #[test]
    fn encode_rounds_and_clamps() {
        let q = Scale { lo: 0.0, step: 1.0, bits: 4 };
        let mut c = vec![0u8; code_bytes(4, 4)];
        let sum = q.encode(&[-3.0, 2.4, 2.6, 99.0], &mut c);
        assert_eq!(&c[..2], &[2 << 4, 15 << 4 | 3]);
        assert_eq!(sum, 2 + 3 + 15);
        assert!(c[2..].iter().all(|&b| b == 0), "padding stays zero");
        let q = Scale { lo: 0.0, step: 1.0, bits: 8 };
        let mut c = vec![0u8; code_bytes(4, 8)];
        let sum = q.encode(&[-3.0, 2.4, 2.6, 999.0], &mut c);
        assert_eq!(&c[..4], &[0, 2, 3, 255]);
        assert_eq!(sum, 2 + 3 + 255);
        assert!(c[4..].iter().all(|&b| b == 0), "padding stays zero");
    }
}
