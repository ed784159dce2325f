//! Validation and preparation of incoming vectors.

use crate::distance::{dot, Metric};
use crate::error::CoreError;

/// The largest squared length a vector may have, dense or sparse, stored or queried.
///
/// Finite components are not enough: `[1e38, 1e38]` is finite, but its dot product with
/// itself is not, and an infinite score reaches clients as `"score": null`. With |a|² and
/// |b|² at most this bound every score stays a finite f32 with room for rounding: a dot
/// product is at most |a||b|, a squared euclidean distance (|a| + |b|)², a manhattan
/// distance √dim · (|a| + |b|) (dim ≤ 65 536), a sparse score |a||b| times an idf (below
/// 50). The bound is a length of about 5.8e17, far beyond any embedding.
pub const MAX_SQUARED_NORM: f64 = f32::MAX as f64 / 1024.0;

/// The squared length of `values`, in f64 so that it does not overflow itself.
pub fn squared_norm(values: &[f32]) -> f64 {
    values.iter().map(|&x| f64::from(x) * f64::from(x)).sum()
}

/// Checks that `v` has `dim` finite components and a length whose scores cannot overflow
/// ([`MAX_SQUARED_NORM`]).
pub fn validate(dim: usize, v: &[f32]) -> Result<(), CoreError> {
    if v.is_empty() {
        return Err(CoreError::EmptyVector);
    }
    if v.len() != dim {
        return Err(CoreError::WrongDimension { expected: dim, got: v.len() });
    }
    if let Some((position, value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(CoreError::NonFinite { position, value: *value });
    }
    let squared = squared_norm(v);
    if squared > MAX_SQUARED_NORM {
        return Err(CoreError::TooLong { length: squared.sqrt(), max: MAX_SQUARED_NORM.sqrt() });
    }
    Ok(())
}

/// Validates `v` and brings it to the form the metric stores: unit length for cosine,
/// unchanged otherwise. A zero vector cannot be normalised and is rejected for cosine.
pub fn prepare(metric: Metric, dim: usize, mut v: Vec<f32>) -> Result<Vec<f32>, CoreError> {
    validate(dim, &v)?;
    if metric.normalises() {
        let norm = dot(&v, &v).sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return Err(CoreError::ZeroVector);
        }
        let inv = 1.0 / norm;
        v.iter_mut().for_each(|x| *x *= inv);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_vectors() {
        assert_eq!(validate(3, &[1.0, 2.0]), Err(CoreError::WrongDimension { expected: 3, got: 2 }));
        assert!(matches!(validate(2, &[1.0, f32::NAN]), Err(CoreError::NonFinite { position: 1, .. })));
        assert!(matches!(validate(2, &[f32::INFINITY, 0.0]), Err(CoreError::NonFinite { position: 0, .. })));
        assert_eq!(prepare(Metric::Cosine, 2, vec![0.0, 0.0]), Err(CoreError::ZeroVector));
    }

    #[test]
    fn vectors_whose_scores_would_overflow_are_refused() {
        // Finite, but 1e38² overflows f32: the score used to be infinite (`null` in JSON).
        for metric in [Metric::Dot, Metric::Euclid, Metric::Manhattan, Metric::Cosine] {
            assert!(matches!(prepare(metric, 2, vec![1e38, 1e38]), Err(CoreError::TooLong { .. })), "{metric:?}");
        }
        // The largest vectors allowed still score finitely against each other.
        let edge = (MAX_SQUARED_NORM / 2.0).sqrt() as f32 * 0.999;
        let (a, b) = (vec![edge, edge], vec![-edge, -edge]);
        validate(2, &a).expect("at the bound");
        for metric in [Metric::Dot, Metric::Euclid, Metric::Manhattan] {
            let d = metric.distance(&a, &b);
            assert!(d.is_finite() && metric.score(d).is_finite(), "{metric:?}: {d}");
        }
    }

    #[test]
    fn cosine_vectors_are_normalised() {
        let v = prepare(Metric::Cosine, 2, vec![3.0, 4.0]).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert_eq!(prepare(Metric::Dot, 2, vec![3.0, 4.0]).unwrap(), vec![3.0, 4.0]);
    }
}
