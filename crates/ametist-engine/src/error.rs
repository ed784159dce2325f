//! The engine's errors, grouped by what the caller should do about them.

use thiserror::Error;

use ametist_core::CoreError;

/// Everything the engine can answer instead of a result.
///
/// * Bad input ([`EngineError::is_bad_input`]): fix the request; nothing was changed.
/// * Retry ([`EngineError::is_retryable`]): the system is overloaded, a partition is
///   recovering, or storage cannot take writes (a full disk); the same request may succeed
///   later. Upserts and deletes are idempotent, so retrying a write whose outcome was
///   unknown is safe.
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
    /// A replica was shipped a record that does not follow its last one (it missed some,
    /// or diverged): it takes no more records until it is recovered from its primary.
    #[error("partition {partition}: a replicated record arrived out of order (expected operation {expected}, got {got}); this copy needs recovery from its primary")]
    OutOfOrder { partition: usize, expected: u64, got: u64 },
    /// Storage cannot take writes: the disk is full (ENOSPC, a quota) or failing. Reads go
    /// on from memory; a partition retries its log by itself and takes writes again once it
    /// can (see its `storage_error` on the partitions route). The message says what was
    /// written: nothing, or (for a write whose log commit failed) that it is not known.
    #[error("{}", storage_message(*partition, message))]
    StorageUnavailable { partition: Option<usize>, message: String },

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
                | EngineError::StorageUnavailable { .. }
                | EngineError::OutOfOrder { .. }
        )
    }

    /// The error for a file operation that failed while creating or changing something
    /// (`what` says what): retryable [`EngineError::StorageUnavailable`] when the storage is
    /// full, [`EngineError::Internal`] otherwise. The caller has undone what it started.
    pub(crate) fn io(what: impl std::fmt::Display, e: &std::io::Error) -> Self {
        match storage_full_label(e) {
            Some(label) => EngineError::StorageUnavailable {
                partition: None,
                message: format!("{what}: {label}: {e}; nothing was changed; free space and retry"),
            },
            None => EngineError::Internal(format!("{what}: {e}")),
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        EngineError::InvalidInput(msg.into())
    }
}

fn storage_message(partition: Option<usize>, message: &str) -> String {
    match partition {
        Some(p) => format!("partition {p}: {message}"),
        None => message.to_string(),
    }
}

/// How a full storage is named in messages; `None` when `e` is not about room.
pub(crate) fn storage_full_label(e: &std::io::Error) -> Option<&'static str> {
    match e.kind() {
        std::io::ErrorKind::StorageFull => Some("disk full (ENOSPC)"),
        std::io::ErrorKind::QuotaExceeded => Some("disk quota exceeded (EDQUOT)"),
        _ => None,
    }
}
