//! Point routes in Qdrant's shapes: upsert, query, search, retrieve, delete.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;
use serde_json::{json, Value};

use ametist_core::{Payload, PointId};
use ametist_engine::collection::Collection;
use ametist_engine::messages::{Record, ScoredDoc, WriteAck};
use ametist_engine::{InsertVector, SearchRequest, SearchResult};

use super::envelope::{parse_body, wait_param, Answer, ApiError, ApiResult};
use super::AppState;

/// `PUT /collections/{name}/points`: a list of points, or the column-wise batch form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertPoints {
    #[serde(default)]
    pub points: Option<Vec<PointStruct>>,
    #[serde(default)]
    pub batch: Option<Batch>,
    /// Accepted for compatibility; Ametist has no shard keys.
    #[serde(default)]
    #[serde(rename = "shard_key")]
    pub _shard_key: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointStruct {
    pub id: PointId,
    pub vector: VectorInput,
    #[serde(default)]
    pub payload: Option<Payload>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub ids: Vec<PointId>,
    pub vectors: Vec<VectorInput>,
    #[serde(default)]
    pub payloads: Option<Vec<Option<Payload>>>,
}

/// A vector as sent: a plain list (named vectors are not supported yet).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum VectorInput {
    Dense(Vec<f32>),
    Other(Value),
}

impl VectorInput {
    fn dense(self, started: Instant) -> Result<Vec<f32>, ApiError> {
        match self {
            VectorInput::Dense(v) => Ok(v),
            VectorInput::Other(Value::Object(_)) => Err(ApiError::bad_request(
                "Wrong input: named and sparse vectors are not supported yet; send a list of numbers",
                started,
            )),
            VectorInput::Other(other) => Err(ApiError::bad_request(
                format!("Wrong input: a vector must be a list of numbers, got {other}"),
                started,
            )),
        }
    }
}

/// `POST /collections/{name}/points/query`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryPoints {
    #[serde(default)]
    pub query: Option<QueryInput>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub offset: Option<usize>,
    #[serde(default)]
    pub with_payload: Option<Value>,
    #[serde(default, alias = "with_vectors")]
    pub with_vector: Option<Value>,
    #[serde(default)]
    pub score_threshold: Option<f32>,
    #[serde(default)]
    pub params: Option<SearchParams>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub using: Option<String>,
    #[serde(default)]
    #[serde(rename = "shard_key")]
    pub _shard_key: Option<Value>,
    #[serde(default)]
    pub lookup_from: Option<Value>,
    #[serde(default)]
    pub prefetch: Option<Value>,
}

/// What to search for: a vector, or `{"nearest": vector}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum QueryInput {
    Vector(Vec<f32>),
    Nearest { nearest: Vec<f32> },
    Other(Value),
}

#[derive(Debug, Default, Deserialize)]
pub struct SearchParams {
    #[serde(default)]
    pub hnsw_ef: Option<usize>,
    #[serde(default)]
    pub exact: Option<bool>,
    #[serde(flatten)]
    pub _ignored: serde_json::Map<String, Value>,
}

/// `POST /collections/{name}/points/search` (Qdrant's older search route).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchPoints {
    pub vector: VectorInput,
    pub limit: usize,
    #[serde(default)]
    pub offset: Option<usize>,
    #[serde(default)]
    pub with_payload: Option<Value>,
    #[serde(default, alias = "with_vectors")]
    pub with_vector: Option<Value>,
    #[serde(default)]
    pub score_threshold: Option<f32>,
    #[serde(default)]
    pub params: Option<SearchParams>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    #[serde(rename = "shard_key")]
    pub _shard_key: Option<Value>,
}

/// `POST /collections/{name}/points/delete`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletePoints {
    #[serde(default)]
    pub points: Option<Vec<PointId>>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    #[serde(rename = "shard_key")]
    pub _shard_key: Option<Value>,
}

/// `POST /collections/{name}/points`: retrieve by ids.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievePoints {
    pub ids: Vec<PointId>,
    #[serde(default)]
    pub with_payload: Option<Value>,
    #[serde(default, alias = "with_vectors")]
    pub with_vector: Option<Value>,
    #[serde(default)]
    #[serde(rename = "shard_key")]
    pub _shard_key: Option<Value>,
}

pub async fn upsert(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Value> {
    let started = Instant::now();
    let wait = wait_param(query.as_deref(), started)?;
    let c = collection(&state, &name, started)?;
    let req: UpsertPoints = parse_body(&body, started)?;
    let points = match (req.points, req.batch) {
        (Some(points), None) => points
            .into_iter()
            .map(|p| Ok(InsertVector { id: p.id, vector: p.vector.dense(started)?, metadata: p.payload }))
            .collect::<Result<Vec<_>, ApiError>>()?,
        (None, Some(batch)) => {
            let n = batch.ids.len();
            if batch.vectors.len() != n {
                return Err(ApiError::bad_request(
                    format!("Wrong input: batch has {n} ids but {} vectors", batch.vectors.len()),
                    started,
                ));
            }
            let mut payloads = batch.payloads.unwrap_or_default();
            if !payloads.is_empty() && payloads.len() != n {
                return Err(ApiError::bad_request(
                    format!("Wrong input: batch has {n} ids but {} payloads", payloads.len()),
                    started,
                ));
            }
            payloads.resize(n, None);
            batch
                .ids
                .into_iter()
                .zip(batch.vectors)
                .zip(payloads)
                .map(|((id, v), payload)| Ok(InsertVector { id, vector: v.dense(started)?, metadata: payload }))
                .collect::<Result<Vec<_>, ApiError>>()?
        }
        _ => {
            return Err(ApiError::bad_request(
                "Format error in JSON body: send either `points` (a list) or `batch` (ids and vectors)",
                started,
            ))
        }
    };
    let ack = c.upsert(points, wait).await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(update_result(ack), started))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Value> {
    let started = Instant::now();
    let wait = wait_param(query.as_deref(), started)?;
    let c = collection(&state, &name, started)?;
    let req: DeletePoints = parse_body(&body, started)?;
    if req.filter.is_some() {
        return Err(ApiError::bad_request(
            "Wrong input: delete by filter is not supported yet; list `points`",
            started,
        ));
    }
    let ids = req
        .points
        .ok_or_else(|| ApiError::bad_request("Format error in JSON body: missing field `points`", started))?;
    let ack = c.delete(ids, wait).await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(update_result(ack), started))
}

pub async fn query(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: QueryPoints = parse_body(&body, started)?;
    reject_unsupported(&req.filter, &req.prefetch, &req.lookup_from, started)?;
    if req.using.is_some() {
        return Err(ApiError::bad_request("Wrong input: named vectors (`using`) are not supported yet", started));
    }
    let vector = match req.query {
        Some(QueryInput::Vector(v)) | Some(QueryInput::Nearest { nearest: v }) => v,
        Some(QueryInput::Other(other)) => {
            return Err(ApiError::bad_request(
                format!("Wrong input: unsupported query {other}; send a vector or {{\"nearest\": vector}}"),
                started,
            ))
        }
        None => return Err(ApiError::bad_request("Wrong input: `query` is required", started)),
    };
    let search = build_search(
        vector,
        req.limit.unwrap_or(10),
        req.offset,
        &req.with_payload,
        &req.with_vector,
        req.score_threshold,
        req.params,
        started,
    )?;
    let result = run_search(&c, search, started).await?;
    let missing = result.missing_partitions.clone();
    let points: Vec<Value> = result.results.into_iter().map(scored_json).collect();
    let mut answer = Answer::new(json!({ "points": points }), started);
    answer.missing = missing;
    Ok(answer)
}

pub async fn search(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: SearchPoints = parse_body(&body, started)?;
    reject_unsupported(&req.filter, &None, &None, started)?;
    let vector = req.vector.dense(started)?;
    let search = build_search(
        vector,
        req.limit,
        req.offset,
        &req.with_payload,
        &req.with_vector,
        req.score_threshold,
        req.params,
        started,
    )?;
    let result = run_search(&c, search, started).await?;
    let missing = result.missing_partitions.clone();
    let points: Vec<Value> = result.results.into_iter().map(scored_json).collect();
    let mut answer = Answer::new(Value::Array(points), started);
    answer.missing = missing;
    Ok(answer)
}

pub async fn retrieve(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: RetrievePoints = parse_body(&body, started)?;
    let with_payload = flag(&req.with_payload, true, "with_payload", started)?;
    let with_vector = flag(&req.with_vector, false, "with_vector", started)?;
    if req.ids.is_empty() {
        return Ok(Answer::new(json!([]), started));
    }
    let records = c.get(req.ids, with_payload, with_vector).await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(Value::Array(records.into_iter().map(record_json).collect()), started))
}

pub async fn get_one(State(state): State<AppState>, Path((name, id)): Path<(String, String)>) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let id = match id.parse::<u64>() {
        Ok(n) => PointId::Num(n),
        Err(_) => PointId::from_string(&id).map_err(|e| ApiError::bad_request(format!("Wrong input: {e}"), started))?,
    };
    let mut records = c.get(vec![id.clone()], true, true).await.map_err(|e| ApiError::from_engine(e, started))?;
    match records.pop() {
        Some(r) => Ok(Answer::new(record_json(r), started)),
        None => Err(ApiError {
            status: axum::http::StatusCode::NOT_FOUND,
            message: format!("Not found: No point with id {id} found"),
            started,
        }),
    }
}

fn collection(state: &AppState, name: &str, started: Instant) -> Result<Collection, ApiError> {
    state.db.collection(name).map_err(|e| ApiError::from_engine(e, started))
}

fn reject_unsupported(
    filter: &Option<Value>,
    prefetch: &Option<Value>,
    lookup_from: &Option<Value>,
    started: Instant,
) -> Result<(), ApiError> {
    let unsupported = [("filter", filter), ("prefetch", prefetch), ("lookup_from", lookup_from)];
    for (name, value) in unsupported {
        if value.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ApiError::bad_request(format!("Wrong input: `{name}` is not supported yet"), started));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn build_search(
    vector: Vec<f32>,
    limit: usize,
    offset: Option<usize>,
    with_payload: &Option<Value>,
    with_vector: &Option<Value>,
    score_threshold: Option<f32>,
    params: Option<SearchParams>,
    started: Instant,
) -> Result<SearchRequest, ApiError> {
    let params = params.unwrap_or_default();
    let mut req = SearchRequest::new(vector, limit);
    req.offset = offset.unwrap_or(0);
    req.with_payload = flag(with_payload, false, "with_payload", started)?;
    req.with_vector = flag(with_vector, false, "with_vector", started)?;
    req.score_threshold = score_threshold;
    req.ef = params.hnsw_ef;
    req.exact = params.exact.unwrap_or(false);
    Ok(req)
}

async fn run_search(c: &Collection, req: SearchRequest, started: Instant) -> Result<SearchResult, ApiError> {
    c.search(req).await.map_err(|e| ApiError::from_engine(e, started))
}

/// Reads a `with_payload`/`with_vector` selector. Booleans are supported; field lists
/// (`["a", "b"]`, `{"include": ..}`) are treated as "with payload" for now.
fn flag(v: &Option<Value>, default: bool, name: &str, started: Instant) -> Result<bool, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Array(_)) | Some(Value::Object(_)) => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            format!("Format error in JSON body: `{name}` must be a boolean or a list of fields, got {other}"),
            started,
        )),
    }
}

fn update_result(ack: WriteAck) -> Value {
    json!({
        "operation_id": ack.operation_id,
        "status": if ack.completed { "completed" } else { "acknowledged" },
    })
}

fn scored_json(d: ScoredDoc) -> Value {
    json!({
        "id": d.id,
        "version": d.version,
        "score": d.score,
        "payload": d.payload,
        "vector": d.vector,
    })
}

fn record_json(r: Record) -> Value {
    json!({
        "id": r.id,
        "payload": r.payload,
        "vector": r.vector,
    })
}
