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
    #[error("vector must not be empty")]
    EmptyVector,
    #[error("vector is too long: its length is {length:e}, more than {max:e}, beyond which scores could overflow")]
    TooLong { length: f64, max: f64 },
    #[error("cosine distance needs a non-zero vector")]
    ZeroVector,
    #[error("invalid point id: {0}")]
    InvalidId(String),
}
