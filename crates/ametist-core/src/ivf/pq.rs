//! The product quantizer of the index: every residual (a vector minus its list's centroid)
//! is cut into 2-dimensional sub-spaces, and each sub-space is coded by the nearest of 16
//! codewords (4 bits).
//!
//! Two dimensions per 4-bit code is ScaNN's choice for its fast-scan tables: the codebook of
//! a sub-space is small enough to fit the quantization error of 2 dimensions well, and the
//! look-up table of a query (16 entries per sub-space) fits a SIMD register. The count of
//! sub-spaces is padded to an even number (the kernels take them in pairs); a padded
//! sub-space has an all-zero codebook, so it adds nothing to any distance.

use super::kmeans;

/// Codewords per sub-space (4-bit codes).
pub const CODES: usize = 16;

#[derive(Debug, Clone)]
pub struct Pq {
    dim: usize,
    /// Sub-spaces, padded to an even count.
    subspaces: usize,
    /// First and second coordinate of codeword `c` of sub-space `m` at `m * 16 + c`
    /// (two arrays, so that building a table is a straight loop the compiler vectorizes).
    cx: Vec<f32>,
    cy: Vec<f32>,
}

/// The two coordinates of sub-space `m` of `v` (0 past the end when `dim` is odd).
#[inline]
fn pair(v: &[f32], m: usize) -> (f32, f32) {
    (v.get(2 * m).copied().unwrap_or(0.0), v.get(2 * m + 1).copied().unwrap_or(0.0))
}

impl Pq {
    /// Trains the codebooks on `residuals` (rows of `dim` floats).
    pub fn train(residuals: &[f32], dim: usize, seed: u64) -> Self {
        let real = dim.div_ceil(2);
        let subspaces = real + real % 2;
        let n = residuals.len() / dim;
        let mut cx = vec![0f32; subspaces * CODES];
        let mut cy = vec![0f32; subspaces * CODES];
        let mut points = Vec::with_capacity(n * 2);
        for m in 0..real {
            points.clear();
            for row in residuals.chunks_exact(dim) {
                let (x, y) = pair(row, m);
                points.push(x);
                points.push(y);
            }
            let book = kmeans::train(&points, 2, CODES, 12, seed.wrapping_add(m as u64), 1, false);
            // Fewer rows than codewords leaves the rest of the book at 0; they are never
            // nearer than a trained codeword that equals a row, so that is harmless.
            for (c, w) in book.chunks_exact(2).enumerate() {
                cx[m * CODES + c] = w[0];
                cy[m * CODES + c] = w[1];
            }
        }
        Pq { dim, subspaces, cx, cy }
    }

    /// Sub-spaces (even): code bytes per vector in the fast-scan layout, times two.
    pub fn subspaces(&self) -> usize {
        self.subspaces
    }

    /// The code of every sub-space of `residual`.
    pub fn encode(&self, residual: &[f32], out: &mut [u8]) {
        debug_assert_eq!(residual.len(), self.dim);
        for (m, o) in out.iter_mut().enumerate().take(self.subspaces) {
            let (x, y) = pair(residual, m);
            let mut best = (f32::INFINITY, 0u8);
            for c in 0..CODES {
                let (dx, dy) = (x - self.cx[m * CODES + c], y - self.cy[m * CODES + c]);
                let d = dx * dx + dy * dy;
                if d < best.0 {
                    best = (d, c as u8);
                }
            }
            *o = best.1;
        }
    }

    /// The vector a code stands for (for tests).
    #[cfg(test)]
    pub fn decode(&self, codes: &[u8]) -> Vec<f32> {
        let mut v = Vec::with_capacity(self.subspaces * 2);
        for (m, &c) in codes.iter().enumerate() {
            v.push(self.cx[m * CODES + c as usize]);
            v.push(self.cy[m * CODES + c as usize]);
        }
        v.truncate(self.dim);
        v
    }

    /// Table for minus the dot product: entry `(m, c)` is `-<query_m, codeword(m, c)>`, so
    /// that a sum over a code is `-<query, residual>` (lower is closer, as every distance).
    pub fn table_dot(&self, query: &[f32], out: &mut [f32]) {
        for m in 0..self.subspaces {
            let (x, y) = pair(query, m);
            let (cx, cy) = (&self.cx[m * CODES..][..CODES], &self.cy[m * CODES..][..CODES]);
            for ((o, &a), &b) in out[m * CODES..][..CODES].iter_mut().zip(cx).zip(cy) {
                *o = -(x * a + y * b);
            }
        }
    }

    /// Table for the squared distance to `residual_query` (the query minus a list's
    /// centroid): entry `(m, c)` is `|residual_query_m - codeword(m, c)|^2`.
    pub fn table_l2(&self, residual_query: &[f32], out: &mut [f32]) {
        for m in 0..self.subspaces {
            let (x, y) = pair(residual_query, m);
            let (cx, cy) = (&self.cx[m * CODES..][..CODES], &self.cy[m * CODES..][..CODES]);
            for ((o, &a), &b) in out[m * CODES..][..CODES].iter_mut().zip(cx).zip(cy) {
                let (dx, dy) = (x - a, y - b);
                *o = dx * dx + dy * dy;
            }
        }
    }
}
