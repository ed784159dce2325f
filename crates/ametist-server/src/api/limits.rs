//! What one request may cost: the bytes of writes being handled at once, the hits a
//! request asks for, and the size of an answer.
//!
//! A 34 KB `query/batch` (500 searches with `limit` 10,000) once built a 254 MB answer and
//! held several GB while doing it, and 100 concurrent 30 MB upserts held 5.4 GB. Each bound
//! here is refused at once with a message naming the setting, before the work is done:
//!
//! * writes hold a share of `limits.write_bytes_in_flight` (and of the collection's
//!   `limits.collection_write_bytes_in_flight`) for their body's size while they are
//!   handled; a write that does not fit is a 429 (retryable), never queued;
//! * a request's queries may ask for `limits.max_batch_results` hits in all (`limit +
//!   offset` of every query and prefetch), and their answers, estimated from the limits
//!   and the vectors asked for, must fit `limits.max_response_bytes`;
//! * an answer that turns out larger (payloads cannot be estimated) is replaced by a 400
//!   rather than sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Body as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use ametist_engine::collection::CollectionSpec;

use super::envelope::ApiError;
use super::AppState;
use crate::config::LimitsConfig;

/// Permits count KiB, so that a budget of gigabytes fits a semaphore.
const UNIT: usize = 1024;

/// The bytes of writes being handled, on the server and per collection.
pub struct WriteBudget {
    server: Arc<Semaphore>,
    server_bytes: usize,
    collection_bytes: usize,
    /// The body size a write without `content-length` (chunked) is charged.
    unknown_length: usize,
    collections: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl WriteBudget {
    pub fn new(limits: &LimitsConfig, max_request_bytes: usize) -> Self {
        WriteBudget {
            server: Arc::new(Semaphore::new(units(limits.write_bytes_in_flight))),
            server_bytes: limits.write_bytes_in_flight,
            collection_bytes: limits.collection_write_bytes_in_flight,
            unknown_length: max_request_bytes,
            collections: Mutex::new(HashMap::new()),
        }
    }

    fn collection(&self, name: &str) -> Arc<Semaphore> {
        let mut map = self.collections.lock().expect("the budget lock is never held across a panic");
        map.entry(name.to_string()).or_insert_with(|| Arc::new(Semaphore::new(units(self.collection_bytes)))).clone()
    }
}

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

/// The routes that write points, as `(method, route)`. Their bodies are held, parsed and
/// turned into write batches while they are handled, so they share the write budget.
const WRITE_ROUTES: &[(Method, &str)] = &[
    (Method::PUT, "/collections/{name}/points"),
    (Method::PUT, "/collections/{name}/points/vectors"),
    (Method::POST, "/collections/{name}/points/vectors/delete"),
    (Method::POST, "/collections/{name}/points/delete"),
    (Method::POST, "/collections/{name}/points/payload"),
    (Method::PUT, "/collections/{name}/points/payload"),
    (Method::POST, "/collections/{name}/points/payload/delete"),
    (Method::POST, "/collections/{name}/points/payload/clear"),
    (Method::POST, "/collections/{name}/points/batch"),
];

/// Middleware: admits a write if its body fits both budgets, holding its share until the
/// answer is made; otherwise answers 429 at once. Other requests pass.
pub async fn admit_write(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let budget = state.budget.clone();
    let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    if !WRITE_ROUTES.iter().any(|(m, r)| m == req.method() && Some(*r) == route) {
        return next.run(req).await;
    }
    let bytes = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(budget.unknown_length);
    let name = req.uri().path().split('/').nth(2).unwrap_or("").to_string();
    let shares = match budget.admit(&state, &name, bytes, started) {
        Ok(shares) => shares,
        Err(e) => return e.into_response(),
    };
    let response = next.run(req).await;
    drop(shares);
    response
}

/// The shares of the write budgets a write holds until it is answered.
pub struct WriteShares {
    _server: OwnedSemaphorePermit,
    _collection: Option<OwnedSemaphorePermit>,
}

impl WriteBudget {
    /// Admits a write of `bytes` to collection `name` if it fits both budgets; a 429 naming
    /// the setting otherwise. REST charges a body's length, gRPC a message's encoded size.
    pub fn admit(&self, state: &AppState, name: &str, bytes: usize, started: Instant) -> Result<WriteShares, ApiError> {
        // Only existing collections get a budget of their own (any other name is a 404 from
        // the handler), so that made-up names cannot grow the map.
        let collection = state.db.collection(name).is_ok().then(|| self.collection(name));
        let n = u32::try_from(units(bytes).max(1)).unwrap_or(u32::MAX);
        let overloaded = |where_: String, setting: &str, limit: usize| ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "Service overloaded: this write of {bytes} bytes does not fit beside the writes being handled \
                 {where_} ({setting} = {limit} bytes); nothing of it was applied; retry later"
            ),
            started,
        };
        let Ok(server) = self.server.clone().try_acquire_many_owned(n) else {
            return Err(overloaded("on this server".into(), "limits.write_bytes_in_flight", self.server_bytes));
        };
        let collection = match collection.map(|sem| sem.try_acquire_many_owned(n)) {
            Some(Err(_)) => {
                return Err(overloaded(
                    format!("on collection `{name}`"),
                    "limits.collection_write_bytes_in_flight",
                    self.collection_bytes,
                ))
            }
            Some(Ok(share)) => Some(share),
            None => None,
        };
        Ok(WriteShares { _server: server, _collection: collection })
    }
}

/// Middleware: a JSON answer larger than `limits.max_response_bytes` is not sent; the
/// client gets a 400 naming the limit and how to ask for less.
pub async fn cap_response(max: usize, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(req).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let size = response.body().size_hint().exact().map_or(0, |n| n as usize);
    if !is_json || size <= max {
        return response;
    }
    drop(response);
    too_large(size, max, started).into_response()
}

fn too_large(size: usize, max: usize, started: Instant) -> ApiError {
    ApiError::bad_request(
        format!(
            "Wrong input: the answer would take {} bytes, more than limits.max_response_bytes ({max}); ask for \
             fewer points (a smaller limit, pages with offset), leave out vectors or payloads",
            size
        ),
        started,
    )
}

/// What the queries of one request ask for, summed, to check before they run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cost {
    /// Hits the partitions must find: `limit + offset` of every query and prefetch.
    pub results: usize,
    /// Bytes the answer will take at least: the hits returned with the vectors asked for.
    pub answer_bytes: usize,
    /// The most hits one query or prefetch asks for.
    pub largest: usize,
}

impl Cost {
    pub fn add(self, other: Cost) -> Cost {
        Cost {
            results: self.results.saturating_add(other.results),
            answer_bytes: self.answer_bytes.saturating_add(other.answer_bytes),
            largest: self.largest.max(other.largest),
        }
    }

    /// The cost of returning `hits` points, with their vectors when `with_vector` (all
    /// dense vectors of the collection, or the named ones).
    pub fn of_hits(spec: &CollectionSpec, hits: usize, with_vector: bool, names: Option<&[String]>) -> Cost {
        Cost {
            results: hits,
            answer_bytes: hits.saturating_mul(bytes_per_hit(spec, with_vector, names)),
            largest: hits,
        }
    }

    /// Refuses a request whose queries ask for more than the limits allow.
    pub fn check(self, limits: &LimitsConfig, started: Instant) -> Result<(), ApiError> {
        if self.largest > limits.max_limit {
            return Err(ApiError::bad_request(
                format!(
                    "Wrong input: limit + offset is {}, larger than the maximum of {} (limits.max_limit)",
                    self.largest, limits.max_limit
                ),
                started,
            ));
        }
        if self.results > limits.max_batch_results {
            return Err(ApiError::bad_request(
                format!(
                    "Wrong input: the request asks for {} hits in all (limit + offset of every query and \
                     prefetch), more than limits.max_batch_results ({}); split it",
                    self.results, limits.max_batch_results
                ),
                started,
            ));
        }
        if self.answer_bytes > limits.max_response_bytes {
            return Err(too_large(self.answer_bytes, limits.max_response_bytes, started));
        }
        Ok(())
    }
}

/// Bytes of one hit in a JSON answer, without its payload: id, score and version, and
/// about 10 bytes per vector component.
fn bytes_per_hit(spec: &CollectionSpec, with_vector: bool, names: Option<&[String]>) -> usize {
    const FIXED: usize = 64;
    const PER_COMPONENT: usize = 10;
    if !with_vector {
        return FIXED;
    }
    let wanted = |name: &str| names.is_none_or(|n| n.iter().any(|x| x == name));
    let mut dims = if wanted("") { spec.dim } else { 0 };
    dims += spec.vectors.iter().filter(|(n, _)| wanted(n)).map(|(_, p)| p.dim).sum::<usize>();
    FIXED + dims * PER_COMPONENT
}
