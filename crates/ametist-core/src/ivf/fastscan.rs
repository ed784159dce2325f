//! Fast-scan: 4-bit codes laid out so that one SIMD shuffle looks up 32 codes at once.
//!
//! A list's codes are stored in blocks of [`BLOCK`] vectors. Inside a block, sub-space `m`
//! takes 16 bytes: byte `j` holds the code of vector `j` in its low nibble and the code of
//! vector `j + 16` in its high nibble. Sub-spaces follow each other, so two neighbouring
//! sub-spaces fill one 32-byte AVX2 register, and the look-up table of the query (16 `u8`
//! entries per sub-space, [`QuantizedLut`]) is laid out the same way: `pshufb` then turns 32
//! codes of two sub-spaces into 64 table entries in one instruction. This is the layout of
//! faiss's fast-scan and of ScaNN's 4-bit look-up tables, written anew for Ametist.
//!
//! The sums are kept in `u16`. [`QuantizedLut::new`] picks the table's scale so that no sum
//! can exceed `u16::MAX`, which makes every kernel exact integer arithmetic: the AVX2 kernel,
//! the portable kernel and the scalar reference must agree bit for bit, and the tests check it.
//! Table entries are at most [`MAX_ENTRY`] (7 bits): two look-ups then add in a byte without
//! overflow, and the AVX2 kernel widens to `u16` once per two pairs of sub-spaces instead of
//! once per pair, which saves a third of its instructions. The 8th bit bought little: the
//! error of a 4-bit code of 2 dimensions is far larger than a 7-bit table's rounding.

/// Vectors per block: the number of codes one AVX2 shuffle pair covers.
pub const BLOCK: usize = 32;

/// The largest table entry (so that two entries add up within a byte).
pub const MAX_ENTRY: u8 = 127;

/// Bytes one block takes for `subspaces` (an even count) sub-spaces.
pub fn block_bytes(subspaces: usize) -> usize {
    subspaces * 16
}

/// Writes `codes` (one 4-bit code per sub-space, in `0..16`) as vector `pos` of a list whose
/// blocks are `out`; grows `out` by a zeroed block when `pos` starts a new one.
pub fn put(out: &mut Vec<u8>, subspaces: usize, pos: usize, codes: &[u8]) {
    debug_assert_eq!(codes.len(), subspaces);
    let bb = block_bytes(subspaces);
    let block = pos / BLOCK;
    if out.len() < (block + 1) * bb {
        out.resize((block + 1) * bb, 0);
    }
    let j = pos % BLOCK;
    let (byte, shift) = (j % 16, if j < 16 { 0 } else { 4 });
    let base = block * bb;
    for (m, &c) in codes.iter().enumerate() {
        let b = &mut out[base + m * 16 + byte];
        *b = (*b & !(0x0f << shift)) | ((c & 0x0f) << shift);
    }
}

/// Reads back the code of sub-space `m` of vector `pos` (the layout's inverse, for tests and
/// for re-encoding a list when it is rebuilt).
pub fn get(codes: &[u8], subspaces: usize, pos: usize, m: usize) -> u8 {
    let j = pos % BLOCK;
    let b = codes[(pos / BLOCK) * block_bytes(subspaces) + m * 16 + j % 16];
    if j < 16 {
        b & 0x0f
    } else {
        b >> 4
    }
}

/// A query's look-up table quantized to `u8`: `estimate = sum / scale + bias`.
#[derive(Debug, Clone)]
pub struct QuantizedLut {
    /// 16 entries per sub-space, sub-spaces back to back (an even count).
    pub table: Vec<u8>,
    /// Quantized units per unit of distance.
    pub scale: f32,
    /// What the quantization subtracted (each sub-space's minimum), to add back.
    pub bias: f32,
}

impl QuantizedLut {
    /// Quantizes a float table (16 entries per sub-space, an even number of sub-spaces).
    ///
    /// Each sub-space is shifted so its smallest entry is 0; one scale for all sub-spaces
    /// keeps the sums comparable, and it is the largest that keeps every entry within `u8`
    /// and every possible sum within `u16` (the sum of the largest entries, each rounded up).
    pub fn new(lut: &[f32]) -> Self {
        let subspaces = lut.len() / 16;
        let mut table = vec![0u8; lut.len()];
        let mut mins = Vec::with_capacity(subspaces);
        let (mut max_range, mut sum_range, mut bias) = (0f32, 0f32, 0f32);
        for sub in lut.chunks_exact(16) {
            let lo = sub.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = sub.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            mins.push(lo);
            bias += lo;
            max_range = max_range.max(hi - lo);
            sum_range += hi - lo;
        }
        // Rounding adds at most one unit per sub-space; keep that much headroom below u16::MAX.
        let limit = (u16::MAX as f32 - subspaces as f32 - 1.0).max(1.0);
        let scale = if max_range > 0.0 { (MAX_ENTRY as f32 / max_range).min(limit / sum_range) } else { 1.0 };
        for ((sub, out), lo) in lut.chunks_exact(16).zip(table.chunks_exact_mut(16)).zip(&mins) {
            for (o, &v) in out.iter_mut().zip(sub) {
                *o = ((v - lo) * scale).round().clamp(0.0, MAX_ENTRY as f32) as u8;
            }
        }
        QuantizedLut { table, scale, bias }
    }

    /// The quantized bound a sum must not exceed for its estimate to be at most `distance`
    /// (rounded up, so that no candidate the float comparison would keep is dropped).
    pub fn bound(&self, distance: f32, extra_bias: f32) -> u16 {
        let q = ((distance - self.bias - extra_bias) * self.scale).ceil();
        if q.is_nan() || q < 0.0 {
            0
        } else if q >= u16::MAX as f32 {
            u16::MAX
        } else {
            q as u16
        }
    }

    /// The estimated distance of a quantized sum.
    pub fn estimate(&self, sum: u16, extra_bias: f32) -> f32 {
        sum as f32 / self.scale + self.bias + extra_bias
    }
}

/// Sums of one block: `out[j]` is the table sum of vector `j`; returns the mask of vectors
/// whose sum is at most `bound` (bit `j` for vector `j`). Chooses AVX2 when the CPU has it.
/// Table entries must be at most [`MAX_ENTRY`].
#[inline]
pub fn scan_block(codes: &[u8], table: &[u8], bound: u16, out: &mut [u16; BLOCK]) -> u32 {
    let subspaces = table.len() / 16;
    assert!(
        subspaces.is_multiple_of(2) && codes.len() >= block_bytes(subspaces),
        "fast-scan: block and table disagree"
    );
    debug_assert!(table.iter().all(|&t| t <= MAX_ENTRY), "fast-scan: table entry above MAX_ENTRY");
    #[cfg(target_arch = "x86_64")]
    if crate::distance::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 (checked above) and the lengths were checked against the
        // number of sub-spaces the kernel reads.
        return unsafe { avx2::scan_block(codes.as_ptr(), table.as_ptr(), subspaces / 2, bound, out) };
    }
    portable::scan_block(codes, table, bound, out)
}

/// Scans a whole list: for every block, the kernel's sums and mask (less the block's bits in
/// `dead`) go to `on_block(block, mask, sums)`, which answers the bound for the next block.
///
/// One call per list rather than per block lets the AVX2 path compile the caller's
/// candidate handling into the same `target_feature` function: no call, no feature check
/// and no bounds checks per 32 codes.
#[inline]
pub fn scan_list(
    codes: &[u8],
    dead: &[u32],
    table: &[u8],
    bound: u16,
    mut on_block: impl FnMut(usize, u32, &[u16; BLOCK]) -> u16,
) {
    let subspaces = table.len() / 16;
    let bb = block_bytes(subspaces);
    assert!(subspaces.is_multiple_of(2) && codes.len() >= dead.len() * bb, "fast-scan: list and table disagree");
    debug_assert!(table.iter().all(|&t| t <= MAX_ENTRY), "fast-scan: table entry above MAX_ENTRY");
    #[cfg(target_arch = "x86_64")]
    if crate::distance::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 (checked above); `codes` holds `dead.len()` blocks of
        // `bb` bytes and `table` holds `subspaces * 16`, as the kernel reads.
        unsafe { avx2::scan_list(codes, dead, table, bound, &mut on_block) };
        return;
    }
    let mut sums = [0u16; BLOCK];
    let mut bound = bound;
    for (b, (block, &d)) in codes.chunks_exact(bb).zip(dead).enumerate() {
        let mask = portable::scan_block(block, table, bound, &mut sums) & !d;
        bound = on_block(b, mask, &sums);
    }
}

/// The portable kernel: the same sums without SIMD intrinsics.
pub mod portable {
    use super::BLOCK;

    pub fn scan_block(codes: &[u8], table: &[u8], bound: u16, out: &mut [u16; BLOCK]) -> u32 {
        let mut lo = [0u16; 16];
        let mut hi = [0u16; 16];
        for (sub, lut) in codes.chunks_exact(16).zip(table.chunks_exact(16)) {
            for j in 0..16 {
                let b = sub[j];
                lo[j] = lo[j].wrapping_add(lut[(b & 0x0f) as usize] as u16);
                hi[j] = hi[j].wrapping_add(lut[(b >> 4) as usize] as u16);
            }
        }
        out[..16].copy_from_slice(&lo);
        out[16..].copy_from_slice(&hi);
        let mut mask = 0u32;
        for (j, &s) in out.iter().enumerate() {
            mask |= ((s <= bound) as u32) << j;
        }
        mask
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use std::arch::x86_64::*;

    use super::BLOCK;

    /// [`super::scan_list`] on AVX2: the block kernel inlined into the list loop.
    ///
    /// # Safety
    /// The CPU must have AVX2; `codes` must hold `dead.len()` blocks for `table`'s sub-spaces.
    #[target_feature(enable = "avx2")]
    pub unsafe fn scan_list(
        codes: &[u8],
        dead: &[u32],
        table: &[u8],
        mut bound: u16,
        on_block: &mut impl FnMut(usize, u32, &[u16; BLOCK]) -> u16,
    ) {
        let pairs = table.len() / 32;
        let bb = pairs * 32;
        let mut sums = [0u16; BLOCK];
        for (b, &d) in dead.iter().enumerate() {
            let mask = scan_block_inline(codes.as_ptr().add(b * bb), table.as_ptr(), pairs, bound, &mut sums) & !d;
            bound = on_block(b, mask, &sums);
        }
    }

    /// # Safety
    /// As [`scan_block_inline`].
    #[target_feature(enable = "avx2")]
    pub unsafe fn scan_block(
        codes: *const u8,
        table: *const u8,
        pairs: usize,
        bound: u16,
        out: &mut [u16; BLOCK],
    ) -> u32 {
        scan_block_inline(codes, table, pairs, bound, out)
    }

    /// `pairs` pairs of sub-spaces, 32 code bytes and 32 table bytes per pair.
    ///
    /// The shuffle results are bytes; they are widened into `u16` without unpacking by
    /// adding the even bytes (masked) and the odd bytes (shifted down) to separate
    /// accumulators, as faiss does; the lanes (two sub-spaces of the same vectors) and the
    /// even/odd halves are put back together once per block.
    ///
    /// # Safety
    /// The CPU must have AVX2; `codes` and `table` must hold `pairs * 32` bytes.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn scan_block_inline(
        codes: *const u8,
        table: *const u8,
        pairs: usize,
        bound: u16,
        out: &mut [u16; BLOCK],
    ) -> u32 {
        let nib = _mm256_set1_epi8(0x0f);
        let low_byte = _mm256_set1_epi16(0x00ff);
        let (mut lo_even, mut lo_odd) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        let (mut hi_even, mut hi_odd) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        // Two pairs at a time: their look-ups (at most 127 each) add up in bytes, then widen.
        let mut p = 0;
        while p + 2 <= pairs {
            let c0 = _mm256_loadu_si256(codes.add(p * 32) as *const __m256i);
            let t0 = _mm256_loadu_si256(table.add(p * 32) as *const __m256i);
            let c1 = _mm256_loadu_si256(codes.add(p * 32 + 32) as *const __m256i);
            let t1 = _mm256_loadu_si256(table.add(p * 32 + 32) as *const __m256i);
            let lo = _mm256_add_epi8(
                _mm256_shuffle_epi8(t0, _mm256_and_si256(c0, nib)),
                _mm256_shuffle_epi8(t1, _mm256_and_si256(c1, nib)),
            );
            let hi = _mm256_add_epi8(
                _mm256_shuffle_epi8(t0, _mm256_and_si256(_mm256_srli_epi16(c0, 4), nib)),
                _mm256_shuffle_epi8(t1, _mm256_and_si256(_mm256_srli_epi16(c1, 4), nib)),
            );
            lo_even = _mm256_add_epi16(lo_even, _mm256_and_si256(lo, low_byte));
            lo_odd = _mm256_add_epi16(lo_odd, _mm256_srli_epi16(lo, 8));
            hi_even = _mm256_add_epi16(hi_even, _mm256_and_si256(hi, low_byte));
            hi_odd = _mm256_add_epi16(hi_odd, _mm256_srli_epi16(hi, 8));
            p += 2;
        }
        if p < pairs {
            let c = _mm256_loadu_si256(codes.add(p * 32) as *const __m256i);
            let t = _mm256_loadu_si256(table.add(p * 32) as *const __m256i);
            let lo = _mm256_shuffle_epi8(t, _mm256_and_si256(c, nib));
            let hi = _mm256_shuffle_epi8(t, _mm256_and_si256(_mm256_srli_epi16(c, 4), nib));
            lo_even = _mm256_add_epi16(lo_even, _mm256_and_si256(lo, low_byte));
            lo_odd = _mm256_add_epi16(lo_odd, _mm256_srli_epi16(lo, 8));
            hi_even = _mm256_add_epi16(hi_even, _mm256_and_si256(hi, low_byte));
            hi_odd = _mm256_add_epi16(hi_odd, _mm256_srli_epi16(hi, 8));
        }
        // Each lane summed half the sub-spaces of the same 16 vectors: add the lanes.
        let fold = |v: __m256i| _mm_add_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let (le, lo, he, ho) = (fold(lo_even), fold(lo_odd), fold(hi_even), fold(hi_odd));
        // Interleave even and odd vectors back into order 0..32.
        let v0 = _mm256_set_m128i(_mm_unpackhi_epi16(le, lo), _mm_unpacklo_epi16(le, lo));
        let v1 = _mm256_set_m128i(_mm_unpackhi_epi16(he, ho), _mm_unpacklo_epi16(he, ho));
        _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, v0);
        _mm256_storeu_si256(out.as_mut_ptr().add(16) as *mut __m256i, v1);
        // sum <= bound exactly when max(sum, bound) == bound (unsigned).
        let b = _mm256_set1_epi16(bound as i16);
        let k0 = _mm256_cmpeq_epi16(_mm256_max_epu16(v0, b), b);
        let k1 = _mm256_cmpeq_epi16(_mm256_max_epu16(v1, b), b);
        // Pack the 16-bit masks to bytes; packing works per lane, the permute restores order.
        let packed = _mm256_permute4x64_epi64(_mm256_packs_epi16(k0, k1), 0b11_01_10_00);
        _mm256_movemask_epi8(packed) as u32
    }
}

/// The scalar reference the kernels are tested against: plain sums in `u32` over the codes
/// read back one at a time.
#[cfg(test)]
pub fn reference(codes: &[u8], table: &[u8], count: usize) -> Vec<u32> {
    let subspaces = table.len() / 16;
    (0..count)
        .map(|pos| (0..subspaces).map(|m| table[m * 16 + get(codes, subspaces, pos, m) as usize] as u32).sum())
        .collect()
}
