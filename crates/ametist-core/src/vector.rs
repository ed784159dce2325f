//! Validation and preparation of incoming vectors.

use crate::distance::Metric;
use crate::error::CoreError;

/// Checks that `v` has `dim` finite components.
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
    Ok(())
}

/// The largest magnitude a component of a `dim`-dimensional vector may have under a metric
/// that does not normalise (dot, euclid, manhattan): with every component within it, a
/// squared euclidean distance (at most `dim * (2 * limit)^2`) and so every dot product and
/// Manhattan distance stay below `f32::MAX`. Finite inputs like 1e38 used to overflow to an
/// infinite distance, answered as `"score": null`.
pub fn magnitude_limit(dim: usize) -> f32 {
    (f32::MAX as f64 / (4.0 * dim.max(1) as f64)).sqrt() as f32
}

/// Validates `v` and brings it to the form the metric stores: unit length for cosine,
/// unchanged otherwise. A zero vector cannot be normalised and is rejected for cosine;
/// for the other metrics, components beyond [`magnitude_limit`] are rejected.
pub fn prepare(metric: Metric, dim: usize, mut v: Vec<f32>) -> Result<Vec<f32>, CoreError> {
    validate(dim, &v)?;
    if metric.normalises() {
        // In f64, where no f32 input can overflow the sum of squares.
        let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Err(CoreError::ZeroVector);
        }
        v.iter_mut().for_each(|x| *x = (*x as f64 / norm) as f32);
    } else {
        let limit = magnitude_limit(dim);
        if let Some((position, &value)) = v.iter().enumerate().find(|(_, x)| x.abs() > limit) {
            return Err(CoreError::TooLarge { position, value, limit, metric, dim });
        }
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
    fn huge_components_are_refused_where_they_would_overflow_and_normalised_otherwise() {
        for dim in [1, 2, 50, 784, 65_536] {
            let limit = magnitude_limit(dim);
            // The worst case within the limit stays finite for every metric.
            let a = vec![limit; dim];
            let b = vec![-limit; dim];
            for m in [Metric::Dot, Metric::Euclid, Metric::Manhattan] {
                assert!(m.distance(&a, &b).is_finite(), "{m:?} at dim {dim}");
                assert!(m.distance(&a, &a).is_finite(), "{m:?} at dim {dim}");
                let mut over = vec![0.0; dim];
                over[dim - 1] = limit * 1.01;
                assert!(matches!(prepare(m, dim, over), Err(CoreError::TooLarge { .. })), "{m:?} at dim {dim}");
            }
            let v = prepare(Metric::Cosine, dim, vec![3.0e38; dim]).expect("cosine normalises any finite vector");
            assert!(v.iter().all(|x| x.is_finite() && (*x - 1.0 / (dim as f32).sqrt()).abs() < 1e-3));
        }
        assert!(prepare(Metric::Dot, 3, vec![1.0e38, 0.0, 0.0]).unwrap_err().to_string().contains("too large"));
    }

    #[test]
    fn cosine_vectors_are_normalised() {
        let v = prepare(Metric::Cosine, 2, vec![3.0, 4.0]).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert_eq!(prepare(Metric::Dot, 2, vec![3.0, 4.0]).unwrap(), vec![3.0, 4.0]);
    }
}
