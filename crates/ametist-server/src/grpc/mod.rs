//! Qdrant's client-facing gRPC API on `server.grpc_port`: the services `qdrant.Qdrant`
//! (health check), `qdrant.Collections` and `qdrant.Points`, with Qdrant's package,
//! messages and field numbers (`proto/`), so Qdrant's clients work with `prefer_grpc`.
//!
//! One implementation per operation: each call's message is turned into the request type
//! the REST handler parses its JSON into, and handed to the same function the REST handler
//! calls (`api::points::query_points`, `api::collections::create_collection`, ...). The
//! JSON-shaped answer those functions give is turned into the proto answer. Parts of a
//! request that REST keeps as JSON (filters, selectors, queries) are converted to that JSON
//! (`convert.rs`), so the REST parsers and checks apply to them unchanged; dense vectors
//! go straight into the typed request, never through JSON.
//!
//! * `health.rs`: `Qdrant/HealthCheck`.
//! * `collections.rs`: the `Collections` service.
//! * `points.rs`: the `Points` service.
//! * `convert.rs`: proto messages to and from the REST request and answer shapes.
//! * `codec.rs`: prost's codec, with undecodable messages as INVALID_ARGUMENT.
//! * `listener.rs`: the connection limit and the first-bytes timeout, as REST has them.
//! * `metered.rs`: every call counted in the request statistics (`/telemetry`, `/metrics`).
//!
//! What REST's middleware does around a handler is done per call here, through the same
//! functions: the API key (`api-key` metadata or `authorization: Bearer`; health checks
//! open, as in Qdrant), the request size (`server.max_request_bytes`, as tonic's decoding
//! limit), the write budget (a write holds its message's encoded size), strict mode's
//! rate limits and `max_timeout`, and `read_consistency`. Errors carry the REST message
//! with the gRPC code of its HTTP status ([`status`]).

pub mod codec;
pub mod collections;
pub mod convert;
pub mod health;
pub mod listener;
pub mod metered;
pub mod points;

use std::future::Future;

use axum::http::StatusCode;
use tokio::net::TcpListener;
use tonic::{Code, Status};

use crate::api::envelope::ApiError;
use crate::api::AppState;

/// The messages and services generated from `proto/` (package `qdrant`).
#[allow(clippy::all, clippy::pedantic, missing_docs, dead_code)]
pub mod proto {
    tonic::include_proto!("qdrant");
}

/// A REST error as a gRPC status: the same message, the code of its HTTP status.
pub fn status(e: ApiError) -> Status {
    let code = match e.status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::UNPROCESSABLE_ENTITY => {
            Code::InvalidArgument
        }
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::CONFLICT => Code::AlreadyExists,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::PAYLOAD_TOO_LARGE => Code::ResourceExhausted,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
        _ => Code::Internal,
    };
    if code == Code::Internal {
        tracing::error!(status = %e.status, error = %e.message, "gRPC call failed");
    }
    Status::new(code, e.message)
}

/// A bad request found while converting a message: INVALID_ARGUMENT naming the problem,
/// worded as REST words its 400s.
pub fn invalid(message: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("Wrong input: {message}"))
}

/// What Ametist does not serve over gRPC yet: UNIMPLEMENTED naming the call.
pub fn unimplemented(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} is not implemented by Ametist's gRPC API yet"))
}

/// With `service.api_key` set, a call to `Collections` or `Points` must carry it (`api-key`
/// metadata, or `authorization: Bearer <key>`), compared in constant time as on REST.
/// Qdrant answers UNAUTHENTICATED both without a key and with a wrong one.
#[derive(Clone)]
pub struct ApiKeyCheck {
    key: Option<std::sync::Arc<str>>,
}

impl tonic::service::Interceptor for ApiKeyCheck {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let Some(expected) = self.key.as_deref() else { return Ok(req) };
        let meta = req.metadata();
        let given = meta.get("api-key").and_then(|v| v.to_str().ok()).or_else(|| {
            meta.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
        });
        match given {
            Some(g) if ametist_cluster::transport::secrets_match(g.as_bytes(), expected.as_bytes()) => Ok(req),
            Some(_) => Err(Status::unauthenticated("Invalid API key")),
            None => Err(Status::unauthenticated("Must provide an API key or an Authorization bearer token")),
        }
    }
}

/// Serves the gRPC API on `listener` until `shutdown` completes; calls in progress then
/// finish (tonic's graceful shutdown) before it returns. Every call is counted in `metrics`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let config = state.config.clone();
    let (max_in, max_out) = (config.server.max_request_bytes, config.limits.max_response_bytes);
    let auth = ApiKeyCheck { key: config.service.api_key.as_deref().map(std::sync::Arc::from) };
    let collections =
        proto::collections_server::CollectionsServer::new(collections::CollectionsService::new(state.clone()))
            .max_decoding_message_size(max_in)
            .max_encoding_message_size(max_out);
    let points = proto::points_server::PointsServer::new(points::PointsService::new(state.clone()))
        .max_decoding_message_size(max_in)
        .max_encoding_message_size(max_out);
    let incoming = listener::incoming(listener, config.server.max_connections, config.server.header_read_timeout);
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .layer(metered::MeteredLayer { metrics })
        .add_service(proto::qdrant_server::QdrantServer::new(health::HealthService))
        .add_service(tonic::service::interceptor::InterceptedService::new(collections, auth.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(points, auth))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
