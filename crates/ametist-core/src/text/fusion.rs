//! Fusion of several ranked lists into one (hybrid search), as Qdrant does it.
//!
//! Every function takes lists best first and returns `(id, fused score)` pairs, higher
//! fused score first, ties broken by id (ascending) so the result is deterministic. An id
//! repeated within one list counts once, at its first (best) position. Scores given to the
//! score-based fusions must be "higher is better" (negate a distance first).
//!
//! * [`rrf`] / [`weighted_rrf`]: Reciprocal Rank Fusion, `Σ_lists 1/(k + rank)` with the rank
//!   **0-based** and **`k = 2`** by default ([`DEFAULT_RRF_K`]), which is Qdrant's choice
//!   (`1/(k + r)` with 1-based ranks and `k = 60` is the paper's; Qdrant's is equivalent to
//!   `k = 1` with 1-based ranks). Weighted (Qdrant ≥ 1.16): `1/((rank + 1)/w + k − 1)`,
//!   which is the plain formula for `w = 1`.
//! * [`dbsf`]: Distribution-Based Score Fusion: each list is normalised to
//!   `(s − (μ − 3σ)) / (6σ)` (μ the mean, σ the **sample** standard deviation of that
//!   list's scores; not clamped, so outliers may leave [0, 1]); a list of one score, or of
//!   equal scores, normalises to 0.5; then the normalised scores are summed.
//! * [`linear`]: `Σ_lists w · s`, raw scores; [`score_fusion`] is the general form with a
//!   choice of [`Normalization`].

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// Qdrant's RRF constant (with 0-based ranks).
pub const DEFAULT_RRF_K: f32 = 2.0;

/// Reciprocal Rank Fusion of lists of ids (best first): `Σ 1/(k + rank)`, rank 0-based.
pub fn rrf<T: Clone + Eq + Hash + Ord>(lists: &[Vec<T>], k: f32) -> Vec<(T, f32)> {
    weighted_rrf(lists, k, &[])
}

/// Weighted RRF: list `i` contributes `1/((rank + 1)/w_i + k − 1)`; a missing weight is 1,
/// a weight ≤ 0 contributes 0 (its ids still appear, with what the other lists give them).
pub fn weighted_rrf<T: Clone + Eq + Hash + Ord>(lists: &[Vec<T>], k: f32, weights: &[f32]) -> Vec<(T, f32)> {
    let mut fused: HashMap<T, f32> = HashMap::new();
    for (l, list) in lists.iter().enumerate() {
        let w = weights.get(l).copied().unwrap_or(1.0);
        let mut seen = HashSet::new();
        let mut rank = 0usize;
        for id in list {
            if !seen.insert(id) {
                continue;
            }
            let score = if w > 0.0 { 1.0 / ((rank + 1) as f32 / w + k - 1.0) } else { 0.0 };
            *fused.entry(id.clone()).or_insert(0.0) += score;
            rank += 1;
        }
    }
    sorted(fused)
}

/// How each list's scores are normalised before they are weighted and summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    /// Raw scores.
    None,
    /// `(s − min) / (max − min)`; a single score is left as is, equal scores give 0.5.
    MinMax,
    /// `(s − (μ − 3σ)) / (6σ)`, sample σ; a single score or equal scores give 0.5.
    Distribution,
}

/// Distribution-Based Score Fusion (Qdrant's `dbsf`) of scored lists.
pub fn dbsf<T: Clone + Eq + Hash + Ord>(lists: &[Vec<(T, f32)>]) -> Vec<(T, f32)> {
    score_fusion(lists, &[], Normalization::Distribution)
}

/// Weighted linear fusion of raw scores: `Σ w_i · s_i` (a missing weight is 1, a list a
/// point is absent from contributes 0).
pub fn linear<T: Clone + Eq + Hash + Ord>(lists: &[Vec<(T, f32)>], weights: &[f32]) -> Vec<(T, f32)> {
    score_fusion(lists, weights, Normalization::None)
}

/// Normalises each list with `norm`, multiplies it by its weight (missing: 1) and sums.
pub fn score_fusion<T: Clone + Eq + Hash + Ord>(
    lists: &[Vec<(T, f32)>],
    weights: &[f32],
    norm: Normalization,
) -> Vec<(T, f32)> {
    let mut fused: HashMap<T, f32> = HashMap::new();
    for (l, list) in lists.iter().enumerate() {
        let w = weights.get(l).copied().unwrap_or(1.0);
        let mut seen = HashSet::new();
        let list: Vec<&(T, f32)> = list.iter().filter(|(id, _)| seen.insert(id)).collect();
        let scores: Vec<f32> = list.iter().map(|(_, s)| *s).collect();
        let normalised = normalise(&scores, norm);
        for ((id, _), s) in list.into_iter().zip(normalised) {
            *fused.entry(id.clone()).or_insert(0.0) += w * s;
        }
    }
    sorted(fused)
}

/// The scores of one list normalised with `norm`.
pub fn normalise(scores: &[f32], norm: Normalization) -> Vec<f32> {
    let (lo, hi) = match norm {
        Normalization::None => return scores.to_vec(),
        _ if scores.len() < 2 && norm == Normalization::MinMax => return scores.to_vec(),
        _ if scores.len() < 2 => return vec![0.5; scores.len()],
        Normalization::MinMax => {
            let lo = scores.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            (lo as f64, hi as f64)
        }
        Normalization::Distribution => {
            let n = scores.len() as f64;
            let mean = scores.iter().map(|&s| s as f64).sum::<f64>() / n;
            let var = scores.iter().map(|&s| (s as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let sd = var.sqrt();
            (mean - 3.0 * sd, mean + 3.0 * sd)
        }
    };
    if hi <= lo {
        return vec![0.5; scores.len()];
    }
    scores.iter().map(|&s| ((s as f64 - lo) / (hi - lo)) as f32).collect()
}

fn sorted<T: Ord>(fused: HashMap<T, f32>) -> Vec<(T, f32)> {
    let mut out: Vec<(T, f32)> = fused.into_iter().collect();
    out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}
