//! Validation and preparation of incoming vectors.

use crate::distance::{dot, Metric};
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
    fn cosine_vectors_are_normalised() {
        let v = prepare(Metric::Cosine, 2, vec![3.0, 4.0]).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert_eq!(prepare(Metric::Dot, 2, vec![3.0, 4.0]).unwrap(), vec![3.0, 4.0]);
    }
}
