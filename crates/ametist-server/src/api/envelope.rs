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
    fn into_response(self) -> Response {
        let mut body = json!({
            "result": self.result,
            "status": "ok",
            "time": self.started.elapsed().as_secs_f64(),
        });
        let partial = !self.missing.is_empty();
        if partial {
            body["partial"] = json!({ "missing_partitions": self.missing });
        }
        let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
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
            EngineError::CollectionExists(_) => (StatusCode::CONFLICT, format!("Wrong input: {e}!")),
            EngineError::InvalidInput(_) | EngineError::Core(_) => {
                (StatusCode::BAD_REQUEST, format!("Wrong input: {e}"))
            }
            EngineError::Overloaded(_) => (StatusCode::TOO_MANY_REQUESTS, format!("Service overloaded: {e}")),
            EngineError::PartitionUnavailable { .. } | EngineError::Timeout(_) | EngineError::ShuttingDown => {
                (StatusCode::SERVICE_UNAVAILABLE, format!("Service unavailable: {e}"))
            }
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
