//! Qdrant's client-facing gRPC API.

/// The messages and services generated from `proto/` (package `qdrant`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("qdrant");
}
