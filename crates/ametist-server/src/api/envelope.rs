//! Qdrant's response envelope, errors as HTTP answers, and request-body parsing.
//!
//! Success: `{"result": ..., "status": "ok", "time": seconds}`.
//! Failure: `{"status": {"error": "..."}, "time": seconds}` with a 4xx or 5xx code;
//! retryable failures (429, 503) carry `Retry-After`.

use std::time::Instant;

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use ametist_engine::messages::MissingPartition;
use ametist_engine::EngineError;

/// A successful answer.
pub struct Answer<T> {
    pub result: T,
    pub started: Instant,
    /// Partitions missing from a search answer (a partial result).
    pub missing: Vec<MissingPartition>,
}

impl<T: Serialize> Answer<T> {
    pub fn new(result: T, started: Instant) -> Self {
        Answer { result, started, missing: Vec::new() }
    }
}

impl<T: Serialize> IntoResponse for Answer<T> {
    /// The envelope is written straight to bytes: building it as a `Value` first copied the
    /// whole result once more.
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Envelope<'a, T> {
            result: &'a T,
            status: &'static str,
            time: f64,
            #[serde(skip_serializing_if = "Option::is_none")]
            partial: Option<Partial<'a>>,
        }
        #[derive(Serialize)]
        struct Partial<'a> {
            missing_partitions: &'a [MissingPartition],
        }
        let partial = !self.missing.is_empty();
        let envelope = Envelope {
            result: &self.result,
            status: "ok",
            time: self.started.elapsed().as_secs_f64(),
            partial: partial.then_some(Partial { missing_partitions: &self.missing }),
        };
        let mut resp = (StatusCode::OK, axum::Json(envelope)).into_response();
        if partial {
            resp.headers_mut().insert("x-ametist-partial", HeaderValue::from_static("true"));
        }
        resp
    }
}

/// A failed answer: an HTTP status and a message naming the problem.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub started: Instant,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, started: Instant) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into(), started }
    }

    pub fn from_engine(e: EngineError, started: Instant) -> Self {
        let (status, message) = match &e {
            EngineError::CollectionNotFound(_) => (StatusCode::NOT_FOUND, format!("Not found: {e}!")),
            EngineError::PointNotFound(_) | EngineError::NotFound(_) => {
                (StatusCode::NOT_FOUND, format!("Not found: {e}"))
            }
            EngineError::CollectionExists(_) => (StatusCode::CONFLICT, format!("Wrong input: {e}!")),
            EngineError::InvalidInput(_) | EngineError::Core(_) => {
                (StatusCode::BAD_REQUEST, format!("Wrong input: {e}"))
            }
            EngineError::Overloaded(_) => (StatusCode::TOO_MANY_REQUESTS, format!("Service overloaded: {e}")),
            EngineError::PartitionUnavailable { .. }
            | EngineError::OutOfOrder { .. }
            | EngineError::Timeout(_)
            | EngineError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, format!("Service unavailable: {e}")),
            // A full disk is retryable (503 with Retry-After), not a server fault: reads go
            // on, and writes come back once there is room. The message names the cause
            // (ENOSPC) and what was written.
            EngineError::StorageUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, format!("Service unavailable: {e}"))
            }
            EngineError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, format!("Service internal error: {e}")),
        };
        ApiError { status, message, started }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() && self.status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(status = %self.status, error = %self.message, "request failed");
        } else {
            tracing::debug!(status = %self.status, error = %self.message, "request rejected");
        }
        let body = json!({
            "status": { "error": self.message },
            "time": self.started.elapsed().as_secs_f64(),
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS || self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

pub type ApiResult<T> = Result<Answer<T>, ApiError>;

/// Parses a JSON request body, answering 400 with serde's description of what is wrong.
pub fn parse_body<T: DeserializeOwned>(body: &Bytes, started: Instant) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("Format error in JSON body: the request body is empty", started));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Format error in JSON body: {e}"), started))
}

/// Reads the `wait` query parameter (`true`/`false`, default false as in Qdrant).
pub fn wait_param(query: Option<&str>, started: Instant) -> Result<bool, ApiError> {
    let Some(q) = query else { return Ok(false) };
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "wait" {
            return match v {
                "true" | "" => Ok(true),
                "false" => Ok(false),
                other => Err(ApiError::bad_request(
                    format!("Format error in query string: wait must be true or false, got `{other}`"),
                    started,
                )),
            };
        }
    }
    Ok(false)
}

/// Middleware: every error answer is in Qdrant's JSON envelope, also those made before a
/// handler runs (an oversized body's 413, a body that could not be read, a 405). Clients
/// parse error bodies as JSON; a plain-text one made qdrant-client raise a parsing error
/// instead of the server's message.
pub async fn json_errors(
    max_request_bytes: usize,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    // A body declared larger than the limit is refused from its head, before a byte of it
    // is read: a client then sees the 413 instead of a connection closed while it sends.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_request_bytes as u64) && !path.ends_with("/snapshots/upload") {
        return ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: too_large(max_request_bytes),
            started: Instant::now(),
        }
        .into_response();
    }
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // Plain-text errors are a line or two; a larger body is cut, not buffered.
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_string());
    let detail = text.ok().filter(|t| !t.is_empty());
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(max_request_bytes),
        StatusCode::METHOD_NOT_ALLOWED => format!("Method not allowed: {method} {path}"),
        _ => format!(
            "{}: {}",
            status.canonical_reason().unwrap_or("Error"),
            detail.unwrap_or_else(|| "the request could not be served".into())
        ),
    };
    let mut fixed = ApiError { status, message, started: Instant::now() }.into_response();
    // Keep what the original answer told the client to do (`Allow`, `Retry-After`).
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            fixed.headers_mut().insert(name, v.clone());
        }
    }
    fixed
}

fn too_large(max_request_bytes: usize) -> String {
    format!(
        "Payload too large: the request body is larger than server.max_request_bytes ({max_request_bytes} bytes); \
         split it"
    )
}

/// Middleware: a request body must be JSON, sent as such (`content-type:
/// application/json`) and not compressed. A body sent as `text/plain` or with no type was
/// parsed as JSON anyway, and a gzip body failed with a confusing JSON error; both are now
/// a 415 naming what to send. Snapshot uploads (multipart or raw bytes) are the exception.
pub async fn require_json_body(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let headers = req.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0");
    if !has_body || req.uri().path().ends_with("/snapshots/upload") {
        return next.run(req).await;
    }
    let unsupported = |message: String| {
        ApiError { status: StatusCode::UNSUPPORTED_MEDIA_TYPE, message, started: Instant::now() }.into_response()
    };
    if let Some(encoding) = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .filter(|e| e != "identity")
    {
        return unsupported(format!(
            "Unsupported media type: content-encoding `{encoding}` is not accepted; send the body uncompressed"
        ));
    }
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?").to_ascii_lowercase());
    let json = content_type.as_deref().is_some_and(|t| {
        let essence = t.split(';').next().unwrap_or("").trim();
        essence == "application/json" || essence.ends_with("+json")
    });
    if !json {
        return unsupported(format!(
            "Unsupported media type: the body must be JSON sent with `content-type: application/json`, got {}",
            content_type.map_or("no content-type".to_string(), |t| format!("`{t}`"))
        ));
    }
    next.run(req).await
}
