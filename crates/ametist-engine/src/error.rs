//! The engine's errors, grouped by what the caller should do about them.

use thiserror::Error;

use ametist_core::CoreError;

/// Everything the engine can answer instead of a result.
///
/// * Bad input ([`EngineError::is_bad_input`]): fix the request; nothing was changed.
/// * Retry ([`EngineError::is_retryable`]): the system is overloaded or a partition is
///   recovering; the same request may succeed later. Upserts and deletes are idempotent,
///   so retrying a write whose outcome was unknown is safe.
/// * Fatal: something is broken and needs an operator.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EngineError {
    // --- bad input: nothing was changed -------------------------------------------------
    #[error("Collection `{0}` doesn't exist")]
    CollectionNotFound(String),
    #[error("Collection `{0}` already exists")]
    CollectionExists(String),
    /// A write names a point that does not exist (updates, payload changes).
    #[error("No point with id {0} found")]
    PointNotFound(ametist_core::PointId),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Core(#[from] CoreError),

    // --- retry: overloaded or recovering ------------------------------------------------
    #[error("overloaded: {0}; retry later")]
    Overloaded(String),
    #[error("partition {partition} is unavailable: {reason}")]
    PartitionUnavailable { partition: usize, reason: String },
    #[error("no partition answered within {0:?}; retry later")]
    Timeout(std::time::Duration),
    #[error("the database is shutting down")]
    ShuttingDown,

    // --- fatal --------------------------------------------------------------------------
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// True for errors caused by the request itself; nothing was changed.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            EngineError::CollectionNotFound(_)
                | EngineError::CollectionExists(_)
                | EngineError::PointNotFound(_)
                | EngineError::InvalidInput(_)
                | EngineError::Core(_)
        )
    }

    /// True for errors after which the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            EngineError::Overloaded(_)
                | EngineError::PartitionUnavailable { .. }
                | EngineError::Timeout(_)
                | EngineError::ShuttingDown
        )
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        EngineError::InvalidInput(msg.into())
    }
}
