//! Compact codes of the vectors: a copy of every vector that the graph walk reads instead
//! of the f32 originals, which then re-score the walk's final candidates.
//!
//! Why: on high-dimensional data (784-dim fashion-mnist: 3,136 bytes per vector) a query's
//! time goes into fetching the few hundred vectors the walk visits from memory. Their 4-bit
//! codes are an eighth of that (416 bytes), and the ranking they induce keeps the true
//! neighbours among the walk's `ef` best, so re-scoring those with the originals gives the
//! exact distances and nearly the same recall. On low-dimensional data (glove-50) the walk
//! is bound by computation, not memory, and 4 bits lose too much: the option stays off.
//! 8-bit codes (Qdrant's `scalar int8`) cost a byte per dimension and keep more of the
//! ranking, for data whose neighbours differ by less than a sixteenth of the value range.
//! Binary codes (Qdrant's `binary`) keep one bit (or two, or one and a half) per dimension:
//! a 32nd of the f32 vector, compared with XOR and popcount; they suit embeddings whose
//! components are centred on zero, and need a wider beam (`oversampling`) to keep recall.
//!
//! ## Scalar codes
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
//!
//! ## Binary codes
//!
//! Qdrant's encodings, bit for bit, so that a collection moved between the two behaves alike:
//! * `one_bit`: bit `j` is set when `x_j > 0`. No centring: Qdrant expects embeddings whose
//!   components spread around zero, and so does this code (data that is all positive, such
//!   as pixel intensities, gets little from it: use `two_bits` there, or int8);
//! * `two_bits`: per dimension, the z-score `z = (x_j - mean_j) / stddev_j` (mean and
//!   standard deviation from a sample of the data, see [`Bits::train`]) falls in one of three
//!   bands: `z <= -2/3` gives bits `00`, `-2/3 < z < 2/3` gives `10`, `z >= 2/3` gives `11`
//!   (first bit at `j`, second at `dim + j`). A dimension whose deviation is zero falls back
//!   to `x_j > 0` for the first bit;
//! * `one_and_half_bits`: as `two_bits`, but the second bits of dimensions `2i` and `2i + 1`
//!   are OR-ed into one bit at `dim + i`.
//!
//! Bits are packed least significant first and padded with zeros to 16 bytes, like the
//! scalar codes. The distance is the Hamming distance `h` (popcount of the XOR) over all
//! `n` code bits, turned into the metric's units as the distance between the codes read as
//! vectors of `±1` (see [`Bits::finish`]): monotone in `h`, so the walk's order is the
//! Hamming order, and a search that is not re-scored reports a meaningful score.

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
    /// The walk reads 1-bit codes (Qdrant's `binary`, `encoding: one_bit`).
    Binary,
    /// The walk reads 2-bit codes (Qdrant's `binary`, `encoding: two_bits`).
    #[serde(rename = "binary_two_bits")]
    BinaryTwoBits,
    /// The walk reads 1.5-bit codes (Qdrant's `binary`, `encoding: one_and_half_bits`).
    #[serde(rename = "binary_one_and_half_bits")]
    BinaryOneAndHalfBits,
}

impl Quantization {
    /// Bytes of one code for `dim` dimensions (0 for none), padded to 16 for the kernels.
    pub fn code_bytes(self, dim: usize) -> usize {
        match self {
            Quantization::None => 0,
            Quantization::Int4 => code_bytes(dim, 4),
            Quantization::Int8 => code_bytes(dim, 8),
            _ => BinaryEncoding::of(self).map_or(0, |e| e.code_bits(dim).div_ceil(8).div_ceil(16) * 16),
        }
    }

    /// True for the binary codes.
    pub fn is_binary(self) -> bool {
        BinaryEncoding::of(self).is_some()
    }

    /// The name in `ametist.yaml` and in `collection.json`.
    pub fn name(self) -> &'static str {
        match self {
            Quantization::None => "none",
            Quantization::Int4 => "int4",
            Quantization::Int8 => "int8",
            Quantization::Binary => "binary",
            Quantization::BinaryTwoBits => "binary_two_bits",
            Quantization::BinaryOneAndHalfBits => "binary_one_and_half_bits",
        }
    }

    /// Every setting, for messages that list them.
    pub const ALL: [Quantization; 6] = [
        Quantization::None,
        Quantization::Int4,
        Quantization::Int8,
        Quantization::Binary,
        Quantization::BinaryTwoBits,
        Quantization::BinaryOneAndHalfBits,
    ];
}

impl std::str::FromStr for Quantization {
    type Err = String;

    /// Reads a setting by its [`Quantization::name`]; the error lists every name.
    fn from_str(s: &str) -> Result<Self, String> {
        Quantization::ALL.into_iter().find(|q| q.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Quantization::ALL.iter().map(|q| q.name()).collect();
            format!("unknown quantization {s} (one of {})", names.join(", "))
        })
    }
}

/// How a search uses the index's codes, when it has them (Qdrant's `params.quantization`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CodeUse {
    /// The walk reads the f32 vectors (Qdrant's `ignore: true`).
    Ignore,
    /// The walk reads the codes and its `ef` best are re-scored with the f32 vectors, so
    /// results carry exact distances (Qdrant's `rescore: true`, the default).
    #[default]
    Rescore,
    /// The walk reads the codes and results carry the code distances (Qdrant's
    /// `rescore: false`): approximate distances in the metric's units for scalar codes, and
    /// for binary codes the distance between the codes read as `±1` vectors (see
    /// [`Bits::finish`]).
    CodeDistances,
}

/// Qdrant's binary `encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryEncoding {
    OneBit,
    TwoBits,
    OneAndHalfBits,
}

impl BinaryEncoding {
    pub(crate) fn of(q: Quantization) -> Option<BinaryEncoding> {
        match q {
            Quantization::Binary => Some(BinaryEncoding::OneBit),
            Quantization::BinaryTwoBits => Some(BinaryEncoding::TwoBits),
            Quantization::BinaryOneAndHalfBits => Some(BinaryEncoding::OneAndHalfBits),
            _ => None,
        }
    }

    /// Bits of a code of `dim` dimensions (before padding).
    pub(crate) fn code_bits(self, dim: usize) -> usize {
        match self {
            BinaryEncoding::OneBit => dim,
            BinaryEncoding::TwoBits => 2 * dim,
            BinaryEncoding::OneAndHalfBits => dim + dim.div_ceil(2),
        }
    }
}

/// What turns vectors into codes: one of the two families, trained on a sample.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Codebook {
    Scalar(Scale),
    Binary(Bits),
}

impl Codebook {
    /// Trains the codebook of `quantization` (not `None`) on a sample of vectors.
    pub(crate) fn train<'a>(
        sample: impl Iterator<Item = &'a [f32]>,
        quantization: Quantization,
        quantile: f32,
        dim: usize,
    ) -> Codebook {
        match (quantization, BinaryEncoding::of(quantization)) {
            (_, Some(encoding)) => Codebook::Binary(Bits::train(sample, encoding, dim)),
            (Quantization::Int8, None) => Codebook::Scalar(Scale::train(sample, 8, quantile)),
            (_, None) => Codebook::Scalar(Scale::train(sample, 4, quantile)),
        }
    }

    /// True when codes made with `self` would be about the same as with `other`, so that
    /// the nodes need not be encoded again.
    pub(crate) fn close_to(&self, other: &Codebook) -> bool {
        match (self, other) {
            (Codebook::Scalar(a), Codebook::Scalar(b)) => a.close_to(b),
            (Codebook::Binary(a), Codebook::Binary(b)) => a.close_to(b),
            _ => false,
        }
    }

    /// Writes the code of `v` into `out` and returns the word stored beside it (the scalar
    /// code's sum; 0 for binary codes, which need none).
    pub(crate) fn encode(&self, v: &[f32], out: &mut [u8]) -> u32 {
        match self {
            Codebook::Scalar(s) => s.encode(v, out),
            Codebook::Binary(b) => {
                b.encode(v, out);
                0
            }
        }
    }

    /// The values scalar codes tell apart (none for binary codes).
    pub(crate) fn range(&self) -> Option<(f32, f32)> {
        match self {
            Codebook::Scalar(s) => Some(s.range()),
            Codebook::Binary(_) => None,
        }
    }
}

/// The binary codebook: the encoding, and for two and one and a half bits every
/// dimension's mean and the inverse of its standard deviation (0 when it does not vary).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bits {
    pub encoding: BinaryEncoding,
    pub dim: usize,
    pub stats: Vec<(f32, f32)>,
}

/// Qdrant's band around the mean for two-bit codes, in standard deviations.
const SIGMAS: f32 = 2.0 / 3.0;

impl Bits {
    /// Measures every dimension's mean and standard deviation on `sample` (only for the
    /// encodings that use them).
    pub(crate) fn train<'a>(sample: impl Iterator<Item = &'a [f32]>, encoding: BinaryEncoding, dim: usize) -> Bits {
        if encoding == BinaryEncoding::OneBit {
            return Bits { encoding, dim, stats: Vec::new() };
        }
        // Sums in f64: a sample holds up to 2^18 values, too many for f32 sums of squares.
        let (mut sum, mut sq, mut n) = (vec![0f64; dim], vec![0f64; dim], 0usize);
        for v in sample {
            for (j, &x) in v.iter().enumerate().take(dim) {
                sum[j] += x as f64;
                sq[j] += x as f64 * x as f64;
            }
            n += 1;
        }
        let n = n.max(1) as f64;
        let stats = (0..dim)
            .map(|j| {
                let mean = sum[j] / n;
                let sd = (sq[j] / n - mean * mean).max(0.0).sqrt() as f32;
                (mean as f32, if sd < f32::EPSILON { 0.0 } else { 1.0 / sd })
            })
            .collect();
        Bits { encoding, dim, stats }
    }

    /// True when every dimension's band edges moved by less than a sixteenth of a standard
    /// deviation: few values change bands, and re-encoding every node would cost more than
    /// those few bits. One-bit codes need no statistics and never move.
    pub(crate) fn close_to(&self, other: &Bits) -> bool {
        self.encoding == other.encoding
            && self.dim == other.dim
            && self.stats.iter().zip(&other.stats).all(|(&(m, inv), &(om, oinv))| {
                let (sd, osd) = (if inv > 0.0 { 1.0 / inv } else { 0.0 }, if oinv > 0.0 { 1.0 / oinv } else { 0.0 });
                (m - om).abs() <= osd / 16.0 && (sd - osd).abs() <= osd / 16.0
            })
    }

    /// Bits of a code (before padding).
    pub(crate) fn code_bits(&self) -> usize {
        self.encoding.code_bits(self.dim)
    }

    /// Writes the code of `v` into `out` (`Quantization::code_bytes` bytes).
    pub(crate) fn encode(&self, v: &[f32], out: &mut [u8]) {
        out.fill(0);
        let set = |out: &mut [u8], bit: usize| out[bit / 8] |= 1 << (bit % 8);
        let dim = self.dim;
        for (j, &x) in v.iter().enumerate() {
            let (first, second) = match self.stats.get(j) {
                // One bit, or a dimension that does not vary (no z-score): the sign.
                None | Some(&(_, 0.0)) => (x > 0.0, false),
                Some(&(mean, inv)) => {
                    let z = (x - mean) * inv;
                    (z > -SIGMAS, z >= SIGMAS)
                }
            };
            if first {
                set(out, j);
            }
            if second {
                match self.encoding {
                    BinaryEncoding::OneBit => {}
                    BinaryEncoding::TwoBits => set(out, dim + j),
                    BinaryEncoding::OneAndHalfBits => set(out, dim + j / 2),
                }
            }
        }
    }

    /// Turns a Hamming distance `h` over the `n` code bits into a distance for `metric`
    /// (lower is closer): the distance between the two codes read as vectors of `n` values
    /// `±1`. Cosine: `1 - 2h/n` is their cosine, so the distance is `2h/n - 1`; dot: their
    /// dot product is `n - 2h`; euclid: their squared distance is `4h` (the score `2√h`);
    /// manhattan: `2h`.
    #[inline(always)]
    pub(crate) fn finish(metric: Metric, h: u32, n: f32) -> f32 {
        let h = h as f32;
        match metric {
            Metric::Cosine => 2.0 * h / n - 1.0,
            Metric::Dot => 2.0 * h - n,
            Metric::Euclid => 4.0 * h,
            Metric::Manhattan => 2.0 * h,
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

    /// The Hamming distance between two bit codes: popcount of their XOR, eight bytes at a
    /// time.
    #[derive(Clone, Copy, Default)]
    pub(crate) struct Hamming;
    impl CodeKernel for Hamming {
        #[inline(always)]
        unsafe fn raw(self, a: *const u8, b: *const u8, bytes: usize) -> u32 {
            // SAFETY: the caller guarantees both pointers are valid for `bytes` reads.
            let (a, b) = unsafe { (std::slice::from_raw_parts(a, bytes), std::slice::from_raw_parts(b, bytes)) };
            let word = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("chunks of eight bytes"));
            let mut acc = 0u32;
            for (p, q) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
                acc += (word(p) ^ word(q)).count_ones();
            }
            for (&p, &q) in a.chunks_exact(8).remainder().iter().zip(b.chunks_exact(8).remainder()) {
                acc += (p ^ q).count_ones();
            }
            acc
        }
    }
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
    // Hamming distance: the XOR's bits counted per nibble with a 16-entry table (`shuffle`,
    // Muła's method), then the byte counts summed into u64 lanes with `sad` against zero,
    // which add up as i32 lanes as in `L1`. AVX2 has no vector popcount of its own.
    avx_kernel!(Hamming, |x, y| {
        let table = _mm256_setr_epi8(
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
        );
        let (lo, hi) = nibbles(_mm256_xor_si256(x, y));
        let counts = _mm256_add_epi8(_mm256_shuffle_epi8(table, lo), _mm256_shuffle_epi8(table, hi));
        _mm256_sad_epu8(counts, _mm256_setzero_si256())
    });
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

    /// Binary codes of random vectors, at lengths around every step of the kernels: the
    /// AVX2 kernel and the portable one both equal a bit-by-bit count of differing bits,
    /// and the portable one handles any length (not only multiples of 16).
    #[test]
    fn hamming_kernels_match_a_bit_count() {
        let seed = std::env::var("AMETIST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x9e37_79b9_u64);
        println!("seed {seed} (replay with AMETIST_SEED={seed})");
        let mut s = seed;
        for q in [Quantization::Binary, Quantization::BinaryTwoBits, Quantization::BinaryOneAndHalfBits] {
            for dim in [1, 7, 8, 63, 64, 65, 127, 128, 129, 255, 256, 257, 384, 784, 1536] {
                let vecs: Vec<Vec<f32>> =
                    (0..12).map(|_| (0..dim).map(|_| rng(&mut s) * 2.0 - 0.8).collect()).collect();
                let encoding = BinaryEncoding::of(q).expect("a binary setting");
                let bits = Bits::train(vecs.iter().map(|v| v.as_slice()), encoding, dim);
                let bytes = q.code_bytes(dim);
                assert_eq!(bytes % 16, 0);
                assert!(bytes * 8 >= bits.code_bits());
                let codes: Vec<Vec<u8>> = vecs
                    .iter()
                    .map(|v| {
                        let mut c = vec![0u8; bytes];
                        bits.encode(v, &mut c);
                        c
                    })
                    .collect();
                for a in &codes {
                    for b in &codes {
                        let expect: u32 =
                            (0..bytes * 8).map(|i| ((a[i / 8] >> (i % 8)) ^ (b[i / 8] >> (i % 8))) as u32 & 1).sum();
                        // SAFETY: both codes hold `bytes` bytes.
                        let got = unsafe { scalar::Hamming.raw(a.as_ptr(), b.as_ptr(), bytes) };
                        assert_eq!(got, expect, "portable, {q:?} dim {dim}");
                        // Any length, for the portable kernel's tail.
                        let cut = bytes - 3;
                        let expect_cut: u32 = (0..cut).map(|i| (a[i] ^ b[i]).count_ones()).sum();
                        // SAFETY: both codes hold more than `cut` bytes.
                        let got = unsafe { scalar::Hamming.raw(a.as_ptr(), b.as_ptr(), cut) };
                        assert_eq!(got, expect_cut, "portable tail, {q:?} dim {dim}");
                        #[cfg(target_arch = "x86_64")]
                        if crate::distance::has_avx2_fma() {
                            // SAFETY: AVX2 checked; both codes hold `bytes` bytes, a multiple of 16.
                            let avx = unsafe { avx2::Hamming.raw(a.as_ptr(), b.as_ptr(), bytes) };
                            assert_eq!(avx, expect, "avx2, {q:?} dim {dim}");
                        }
                    }
                }
            }
        }
    }

    /// The encodings set the bits Qdrant's do: one bit is the sign; two bits split the
    /// z-score into three bands; one and a half bits OR the second bits of a pair.
    #[test]
    fn binary_encodings_follow_qdrant() {
        let one = Bits { encoding: BinaryEncoding::OneBit, dim: 10, stats: Vec::new() };
        let mut c = vec![0u8; Quantization::Binary.code_bytes(10)];
        assert_eq!(c.len(), 16);
        one.encode(&[1.0, -1.0, 0.0, 0.5, -0.0, 3.0, -2.0, 0.1, 0.2, -0.2], &mut c);
        assert_eq!(&c[..2], &[0b1010_1001, 0b01]);
        assert!(c[2..].iter().all(|&b| b == 0), "padding stays zero");
        // Mean 0 and deviation 1 everywhere, except the last dimension, which does not vary.
        let stats = vec![(0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (0.0, 0.0)];
        let two = Bits { encoding: BinaryEncoding::TwoBits, dim: 4, stats: stats.clone() };
        let mut c = vec![0u8; Quantization::BinaryTwoBits.code_bytes(4)];
        // Bands: low (00), middle (10), high (11); the flat dimension is its sign (1, 0).
        two.encode(&[-1.0, 0.0, 1.0, 5.0], &mut c);
        assert_eq!(c[0], 0b0100_1110);
        let half = Bits { encoding: BinaryEncoding::OneAndHalfBits, dim: 4, stats };
        let mut c = vec![0u8; Quantization::BinaryOneAndHalfBits.code_bytes(4)];
        // Second bits of the pairs (0, 1) and (2, 3): 0|0 = 0 and 1|0 = 1, at bits 4 and 5.
        half.encode(&[-1.0, 0.0, 1.0, 5.0], &mut c);
        assert_eq!(c[0], 0b10_1110);
        // Trained statistics: mean and inverse deviation of each dimension.
        let sample = [vec![1.0f32, 5.0], vec![3.0, 5.0]];
        let t = Bits::train(sample.iter().map(|v| v.as_slice()), BinaryEncoding::TwoBits, 2);
        assert_eq!(t.stats, vec![(2.0, 1.0), (5.0, 0.0)]);
    }

    /// Code distances of binary codes are the `±1` vectors' distances, and increase with
    /// the Hamming distance for every metric.
    #[test]
    fn binary_finish_is_the_sign_vectors_distance() {
        for metric in [Metric::Cosine, Metric::Dot, Metric::Euclid, Metric::Manhattan] {
            let d: Vec<f32> = (0..=64).map(|h| Bits::finish(metric, h, 64.0)).collect();
            assert!(d.windows(2).all(|w| w[0] < w[1]), "{metric:?} increases with h");
        }
        assert_eq!(Metric::Cosine.score(Bits::finish(Metric::Cosine, 0, 64.0)), 1.0);
        assert_eq!(Metric::Cosine.score(Bits::finish(Metric::Cosine, 64, 64.0)), -1.0);
        assert_eq!(Metric::Dot.score(Bits::finish(Metric::Dot, 16, 64.0)), 32.0);
        assert_eq!(Metric::Euclid.score(Bits::finish(Metric::Euclid, 16, 64.0)), 8.0);
        assert_eq!(Metric::Manhattan.score(Bits::finish(Metric::Manhattan, 16, 64.0)), 32.0);
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
