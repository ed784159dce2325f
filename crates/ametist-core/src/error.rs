//! Errors raised by the core. Every one of them is bad input: the caller sent something
//! the core cannot store or compute, and nothing was changed.

use thiserror::Error;

/// Bad input detected by the core. Nothing was changed when one of these is returned.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CoreError {
    #[error("vector dimension error: expected dim: {expected}, got {got}")]
    WrongDimension { expected: usize, got: usize },
    #[error("vector contains a non-finite value ({value}) at position {position}")]
    NonFinite { position: usize, value: f32 },
    #[error(
        "vector component {value} at position {position} is too large for the {metric:?} metric: components \
         of {dim}-dimensional vectors must lie within ±{limit:.3e}, so that scores stay finite"
    )]
    TooLarge { position: usize, value: f32, limit: f32, metric: crate::Metric, dim: usize },
    #[error("vector must not be empty")]
    EmptyVector,
    #[error("cosine distance needs a non-zero vector")]
    ZeroVector,
    #[error("vector {index} of the multivector: {error}")]
    InMultivector { index: usize, error: Box<CoreError> },
    #[error("a multivector may hold at most {limit} vectors, got {got}")]
    TooManyVectors { got: usize, limit: usize },
    #[error("invalid point id: {0}")]
    InvalidId(String),
}
