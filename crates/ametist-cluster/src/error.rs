//! The cluster layer's errors, grouped like the engine's: bad input, retry, fatal.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClusterError {
    // --- bad input: nothing was changed -------------------------------------------------
    #[error("{0}")]
    InvalidInput(String),
    #[error("Collection `{0}` already exists")]
    CollectionExists(String),
    #[error("Collection `{0}` doesn't exist")]
    CollectionNotFound(String),
    #[error("Peer {0} is not a cluster member")]
    PeerNotFound(u64),

    // --- retry: no leader yet, a peer is unreachable ------------------------------------
    #[error("cluster unavailable: {0}; retry later")]
    Unavailable(String),

    // --- fatal: configuration or disk ---------------------------------------------------
    /// A peer refused our cluster secret (or we refused its): this node cannot join.
    #[error("refused by {peer}: {message} (is `remoting.secret` the same on every node?)")]
    Unauthenticated { peer: String, message: String },
    #[error("cluster storage: {0}")]
    Storage(String),
    #[error("internal cluster error: {0}")]
    Internal(String),
}

impl ClusterError {
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::InvalidInput(_) | Self::CollectionExists(_) | Self::CollectionNotFound(_) | Self::PeerNotFound(_)
        )
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}
