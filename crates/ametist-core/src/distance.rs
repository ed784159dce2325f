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

/// Dot product.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    scalar::dot(a, b)
}

/// Squared euclidean distance.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    scalar::l2_squared(a, b)
}

/// Manhattan (L1) distance.
#[inline]
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    scalar::l1(a, b)
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
