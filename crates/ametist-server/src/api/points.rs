//! Point routes in Qdrant's shapes: upsert, query (single and batch), search (single and
//! batch), retrieve, delete, scroll and count.
//!
//! Request shapes follow qdrant-client's pydantic models (`PointsList`, `PointsBatch`,
//! `QueryRequest`, `QueryRequestBatch`, `SearchRequest`, `PointRequest`, `ScrollRequest`,
//! `CountRequest`, `PointIdsList`, `FilterSelector`); unknown fields are refused with 400
//! rather than ignored, so a client never gets an answer that silently dropped part of
//! its request. What the engine cannot do yet answers 400 "... is not supported yet" after
//! the request was parsed and validated.
//!
//! Vectors: a point's `vector` is a list (the unnamed vector) or a map of names to lists
//! (named dense vectors) and `{"indices", "values"}` objects (named sparse vectors); `""`
//! names the unnamed vector. Answers give the map when the collection has named vectors.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use ametist_core::filter::{Condition, Filter};
use ametist_core::sparse::SparseVector;
use ametist_core::{Payload, PointId};
use ametist_engine::collection::{Collection, CollectionSpec, Fusion, PreparedWrite, SparseQuery, Target, TextQuery};
use ametist_engine::messages::{
    ContextPair, ExampleQuery, MissingPartition, NamedVectors, QuantizationParams, Record, ScoredDoc, ScrollOrder,
    ScrollRequest, UpdateMode, WriteAck, WriteCondition, UNNAMED,
};
use ametist_engine::{InsertVector, SearchRequest, UpdateVector};

use super::envelope::{parse_body, wait_param, Answer, ApiError, ApiResult};
use super::limits::Cost;
use super::selectors::{parse_with_vector, with_vector_names, PayloadSelector};
use super::AppState;

/// `PUT /collections/{name}/points`: a list of points, or the column-wise batch form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertPoints {
    #[serde(default)]
    pub points: Option<Vec<PointStruct>>,
    #[serde(default)]
    pub batch: Option<Batch>,
    /// Qdrant's `ShardKeySelector` (see `shards::parse_selector`).
    #[serde(default)]
    pub shard_key: Option<Value>,
    /// Qdrant's conditional update: an existing point is replaced only if it matches this
    /// filter; new points are inserted whatever it says.
    #[serde(default)]
    pub update_filter: Option<Value>,
    /// `upsert` (the default), `insert_only` (existing points are left as they are) or
    /// `update_only` (absent points are not inserted).
    #[serde(default)]
    pub update_mode: Option<String>,
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

pub use super::vector_json::{QueryInput, VectorInput};

impl VectorInput {
    fn dense(self, started: Instant) -> Result<Vec<f32>, ApiError> {
        match self {
            VectorInput::Dense(v) => Ok(v),
            _ => Err(ApiError::bad_request("Wrong input: a vector must be a list of numbers", started)),
        }
    }

    /// The point's vectors by field: a bare list (or list of lists, for a multivector) is
    /// the unnamed vector (`""`); a map may hold any subset of the fields, the unnamed one
    /// as `""`, or none (`{}`).
    fn into_fields(self, spec: &CollectionSpec, started: Instant) -> Result<NamedVectors, ApiError> {
        let bad = |what: String| ApiError::bad_request(format!("Wrong input: {what}"), started);
        match self {
            VectorInput::Dense(v) => {
                Ok(NamedVectors::unnamed(dense_value(spec, UNNAMED, DenseInput::One(v)).map_err(bad)?))
            }
            VectorInput::Other(Value::Array(rows)) => {
                let rows = serde_json::from_value(Value::Array(rows))
                    .map_err(|_| bad("a vector must be a list of numbers, or a list of such lists".into()))?;
                Ok(NamedVectors::unnamed(dense_value(spec, UNNAMED, DenseInput::Many(rows)).map_err(bad)?))
            }
            VectorInput::Other(Value::Object(m)) => {
                let mut named = NamedVectors::default();
                for (name, v) in m {
                    match v {
                        Value::Array(items) => {
                            let input = if items.first().is_some_and(Value::is_array) {
                                DenseInput::Many(
                                    serde_json::from_value(Value::Array(items))
                                        .map_err(|e| bad(format!("multivector `{name}`: {e}")))?,
                                )
                            } else {
                                DenseInput::One(
                                    serde_json::from_value(Value::Array(items))
                                        .map_err(|e| bad(format!("vector `{name}`: {e}")))?,
                                )
                            };
                            let v = dense_value(spec, &name, input).map_err(bad)?;
                            named.dense.insert(name, v);
                        }
                        Value::Object(o) if !name.is_empty() && o.contains_key("indices") => {
                            let v: SparseVector = serde_json::from_value(Value::Object(o))
                                .map_err(|e| bad(format!("sparse vector `{name}`: {e}")))?;
                            named.sparse.insert(name, v);
                        }
                        Value::Object(_) => {
                            return Err(not_supported(
                                format!("vector `{name}`: inference objects are not supported; send numbers"),
                                started,
                            ))
                        }
                        other => return Err(bad(format!("vector `{name}` must be a list of numbers, got {other}"))),
                    }
                }
                Ok(named)
            }
            VectorInput::Other(other) => {
                Err(bad(format!("a vector must be a list of numbers or a map of named vectors, got {other}")))
            }
        }
    }
}

/// A dense value as sent: one vector, or a multivector's vectors.
enum DenseInput {
    One(Vec<f32>),
    Many(Vec<Vec<f32>>),
}

/// The engine's form of a dense value for the field `name`: a multivector field takes a
/// list of vectors, each of the field's size, and holds them concatenated; a single-vector
/// field takes one list. A field the collection lacks is left to the engine to refuse.
/// `query` also lets a multivector field be searched with one vector (a multivector of one).
fn dense_value(spec: &CollectionSpec, name: &str, input: DenseInput) -> Result<Vec<f32>, String> {
    dense_value_for(spec, name, input, false)
}

fn dense_value_for(spec: &CollectionSpec, name: &str, input: DenseInput, query: bool) -> Result<Vec<f32>, String> {
    let field = spec.dense_field(name);
    let what = if name.is_empty() { "the vector".to_string() } else { format!("vector `{name}`") };
    match (input, field) {
        (DenseInput::One(_), Some(p)) if p.multivector.is_some() && !query => {
            Err(format!("{what} is a multivector: send a list of vectors of size {} (e.g. [[...], [...]])", p.dim))
        }
        (DenseInput::One(v), _) => Ok(v),
        (DenseInput::Many(rows), Some(p)) if p.multivector.is_some() => {
            if rows.is_empty() {
                return Err(format!("{what}: a multivector must hold at least one vector"));
            }
            let mut flat = Vec::with_capacity(rows.len() * p.dim);
            for (i, row) in rows.into_iter().enumerate() {
                if row.len() != p.dim {
                    return Err(format!(
                        "{what}: vector {i} of the multivector has {} dimensions, the field has {}",
                        row.len(),
                        p.dim
                    ));
                }
                flat.extend(row);
            }
            Ok(flat)
        }
        (DenseInput::Many(_), Some(_)) => {
            Err(format!("{what} is not a multivector field (no multivector_config): send one list of numbers"))
        }
        (DenseInput::Many(_), None) => Err(if name.is_empty() {
            "the collection has no unnamed vector: send and search its vectors by name".to_string()
        } else {
            format!("Not existing vector name error: {name}")
        }),
    }
}

/// `POST /collections/{name}/points/query` (and each entry of `points/query/batch`).
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
    pub shard_key: Option<Value>,
    #[serde(default)]
    pub lookup_from: Option<Value>,
    #[serde(default)]
    pub prefetch: Option<Value>,
}

/// `POST /collections/{name}/points/query/batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryBatch {
    pub searches: Vec<QueryPoints>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SearchParams {
    #[serde(default)]
    pub hnsw_ef: Option<usize>,
    #[serde(default)]
    pub exact: Option<bool>,
    /// `{ignore, rescore, oversampling}`: acted on when the collection walks on codes
    /// (`int4`, `int8` or binary); see [`QuantizationParams::code_use`] for what scores mean
    /// with `rescore: false`.
    #[serde(default)]
    pub quantization: Option<QuantizationSearchParams>,
    /// `indexed_only`, `acorn`, `idf`: accepted, nothing to act on.
    #[serde(flatten)]
    pub _ignored: serde_json::Map<String, Value>,
}

impl SearchParams {
    /// The fields strict mode limits, as JSON.
    pub fn as_value(&self) -> Value {
        json!({
            "hnsw_ef": self.hnsw_ef,
            "exact": self.exact,
            "quantization": { "oversampling": self.quantization.as_ref().and_then(|q| q.oversampling) },
        })
    }
}

/// Qdrant's `QuantizationSearchParams`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizationSearchParams {
    #[serde(default)]
    pub ignore: Option<bool>,
    /// Re-score the walk's candidates with the f32 vectors (unset: yes).
    #[serde(default)]
    pub rescore: Option<bool>,
    #[serde(default)]
    pub oversampling: Option<f64>,
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
    pub shard_key: Option<Value>,
}

/// `POST /collections/{name}/points/search/batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBatch {
    pub searches: Vec<SearchPoints>,
}

/// `PUT /collections/{name}/points/vectors`: replaces the vectors of existing points,
/// keeping their payloads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateVectors {
    pub points: Vec<PointVectors>,
    #[serde(default)]
    pub shard_key: Option<Value>,
    #[serde(default)]
    pub update_filter: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointVectors {
    pub id: PointId,
    pub vector: VectorInput,
}

/// `POST /collections/{name}/points/delete`: `PointIdsList` or `FilterSelector`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletePoints {
    #[serde(default)]
    pub points: Option<Vec<PointId>>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub shard_key: Option<Value>,
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
    pub shard_key: Option<Value>,
}

/// `POST /collections/{name}/points/scroll`: answers `{"points": [Record], "next_page_offset": id|null}`.
#[allow(dead_code)] // some fields are read once the engine has the feature
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrollPoints {
    #[serde(default)]
    pub offset: Option<PointId>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub with_payload: Option<Value>,
    #[serde(default, alias = "with_vectors")]
    pub with_vector: Option<Value>,
    #[serde(default)]
    pub order_by: Option<Value>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

/// `POST /collections/{name}/points/count`: answers `{"count": n}`.
#[allow(dead_code)] // some fields are read once the engine has the feature
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountPoints {
    #[serde(default)]
    pub filter: Option<Value>,
    /// Ametist's counts are always exact.
    #[serde(default)]
    pub exact: Option<bool>,
    #[serde(default)]
    pub shard_key: Option<Value>,
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
    upsert_points(&c, req, wait, started).await
}

/// Upserts parsed points (REST's and gRPC's `Upsert` both end here).
pub(crate) async fn upsert_points(c: &Collection, req: UpsertPoints, wait: bool, started: Instant) -> ApiResult<Value> {
    let (c, w) = prepare_upsert(c, req, started).await?;
    apply(&c, w, wait, started).await
}

/// Applies a prepared write and answers Qdrant's `UpdateResult`.
pub(crate) async fn apply(c: &Collection, w: PreparedWrite, wait: bool, started: Instant) -> ApiResult<Value> {
    let ack = c.apply(w, wait).await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(update_result(ack), started))
}

/// Qdrant's `update_mode` and `update_filter` as the engine's condition.
fn write_condition(
    c: &Collection,
    mode: Option<&str>,
    filter: Option<Value>,
    started: Instant,
) -> Result<WriteCondition, ApiError> {
    super::strict::check_update_filter(c, filter.as_ref(), started)?;
    let mode = match mode {
        None | Some("upsert") => UpdateMode::Upsert,
        Some("insert_only") => UpdateMode::InsertOnly,
        Some("update_only") => UpdateMode::UpdateOnly,
        Some(other) => {
            return Err(ApiError::bad_request(
                format!(
                    "Format error in JSON body: unknown update_mode `{other}` (upsert, insert_only or update_only)"
                ),
                started,
            ))
        }
    };
    Ok(WriteCondition { mode, filter: parse_filter(filter, started)? })
}

/// Checks an upsert (`PointsList` or `PointsBatch`) completely, strict mode included, and
/// prepares it on the collection its `shard_key` scopes.
pub(crate) async fn prepare_upsert(
    c: &Collection,
    mut req: UpsertPoints,
    started: Instant,
) -> Result<(Collection, PreparedWrite), ApiError> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    let when = write_condition(&c, req.update_mode.as_deref(), req.update_filter.take(), started)?;
    let point = |id: PointId, v: VectorInput, metadata: Option<Payload>| -> Result<InsertVector, ApiError> {
        Ok(InsertVector { id, vectors: v.into_fields(c.spec(), started)?, metadata })
    };
    let points = match (req.points, req.batch) {
        (Some(points), None) => {
            points.into_iter().map(|p| point(p.id, p.vector, p.payload)).collect::<Result<Vec<_>, ApiError>>()?
        }
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
                .map(|((id, v), payload)| point(id, v, payload))
                .collect::<Result<Vec<_>, ApiError>>()?
        }
        _ => {
            return Err(ApiError::bad_request(
                "Format error in JSON body: send either `points` (a list) or `batch` (ids and vectors)",
                started,
            ))
        }
    };
    super::strict::check_upsert(&c, &points, started).await?;
    let w = c.prepare_upsert(points, when).map_err(|e| ApiError::from_engine(e, started))?;
    Ok((c, w))
}

pub async fn update_vectors(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Value> {
    let started = Instant::now();
    let wait = wait_param(query.as_deref(), started)?;
    let c = collection(&state, &name, started)?;
    let req: UpdateVectors = parse_body(&body, started)?;
    update_point_vectors(&c, req, wait, started).await
}

/// Replaces vectors of existing points (REST and gRPC `UpdateVectors`). One write: a bad
/// vector anywhere changes nothing. Every point must exist (404 naming the first that does
/// not, as Qdrant answers, also without `wait`); with `update_filter`, the points that do
/// not match it are left as they are.
pub(crate) async fn update_point_vectors(
    c: &Collection,
    req: UpdateVectors,
    wait: bool,
    started: Instant,
) -> ApiResult<Value> {
    let (c, w) = prepare_update_vectors(c, req, started)?;
    apply(&c, w, wait, started).await
}

/// Checks and prepares `UpdateVectors`.
pub(crate) fn prepare_update_vectors(
    c: &Collection,
    mut req: UpdateVectors,
    started: Instant,
) -> Result<(Collection, PreparedWrite), ApiError> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    super::strict::check_update_filter(&c, req.update_filter.as_ref(), started)?;
    let filter = parse_filter(req.update_filter, started)?;
    let mut updates = Vec::new();
    for p in req.points {
        let vectors = p.vector.into_fields(c.spec(), started)?;
        if !vectors.is_empty() {
            updates.push(UpdateVector { id: p.id, vectors });
        }
    }
    if updates.is_empty() {
        return Err(ApiError::bad_request("Wrong input: `points` is empty", started));
    }
    let w = c.prepare_update_vectors(updates, filter).map_err(|e| ApiError::from_engine(e, started))?;
    Ok((c, w))
}

/// `POST /collections/{name}/points/vectors/delete`: Qdrant's `DeleteVectors`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteVectorsRequest {
    #[serde(default)]
    pub points: Option<Vec<PointId>>,
    #[serde(default)]
    pub filter: Option<Value>,
    /// The names of the vectors to remove.
    pub vector: Vec<String>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

/// `POST /collections/{name}/points/vectors/delete`: removes named vectors from points.
pub async fn delete_vectors(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Value> {
    let started = Instant::now();
    let wait = wait_param(query.as_deref(), started)?;
    let c = collection(&state, &name, started)?;
    let req: DeleteVectorsRequest = parse_body(&body, started)?;
    delete_point_vectors(&c, req, wait, started).await
}

/// Removes named vectors from points (REST and gRPC `DeleteVectors`).
pub(crate) async fn delete_point_vectors(
    c: &Collection,
    req: DeleteVectorsRequest,
    wait: bool,
    started: Instant,
) -> ApiResult<Value> {
    let (c, w) = prepare_delete_vectors(c, req, started)?;
    apply(&c, w, wait, started).await
}

/// Checks and prepares `DeleteVectors`: named points must exist (404 naming the first
/// that does not).
pub(crate) fn prepare_delete_vectors(
    c: &Collection,
    mut req: DeleteVectorsRequest,
    started: Instant,
) -> Result<(Collection, PreparedWrite), ApiError> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    super::strict::check_update_filter(&c, req.filter.as_ref(), started)?;
    let target = match (req.points, parse_filter(req.filter, started)?) {
        (Some(ids), None) if !ids.is_empty() => Target::Ids(ids),
        (None, Some(filter)) => Target::Filter(filter),
        _ => {
            return Err(ApiError::bad_request(
                "Format error in JSON body: send either `points` (a non-empty list of ids) or `filter`",
                started,
            ))
        }
    };
    let w = c.prepare_delete_vectors(target, req.vector).map_err(|e| ApiError::from_engine(e, started))?;
    Ok((c, w))
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
    delete_points(&c, req, wait, started).await
}

/// Deletes points by ids or filter (REST and gRPC `Delete`).
pub(crate) async fn delete_points(c: &Collection, req: DeletePoints, wait: bool, started: Instant) -> ApiResult<Value> {
    let (c, w) = prepare_delete(c, req, started)?;
    apply(&c, w, wait, started).await
}

/// Checks and prepares a delete: `PointIdsList` or `FilterSelector`.
pub(crate) fn prepare_delete(
    c: &Collection,
    mut req: DeletePoints,
    started: Instant,
) -> Result<(Collection, PreparedWrite), ApiError> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    super::strict::check_update_filter(&c, req.filter.as_ref(), started)?;
    let target = match (req.points, parse_filter(req.filter, started)?) {
        (Some(ids), None) if !ids.is_empty() => Target::Ids(ids),
        (Some(_), None) => return Err(ApiError::bad_request("Wrong input: `points` is empty", started)),
        (None, Some(filter)) => Target::Filter(filter),
        _ => {
            return Err(ApiError::bad_request(
                "Format error in JSON body: send either `points` (a list of ids) or `filter`",
                started,
            ))
        }
    };
    let w = c.prepare_delete(target).map_err(|e| ApiError::from_engine(e, started))?;
    Ok((c, w))
}

pub async fn query(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: QueryPoints = parse_body(&body, started)?;
    query_points(&state, &c, req, started).await
}

/// One query (REST and gRPC `Query`): `{"points": [ScoredPoint]}`.
pub(crate) async fn query_points(
    state: &AppState,
    c: &Collection,
    mut req: QueryPoints,
    started: Instant,
) -> ApiResult<Value> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    super::strict::check_query(&c, &req, started)?;
    let plan = QueryPlan::new(req, started)?;
    plan.cost(c.spec()).check(&state.config.limits, started)?;
    let (points, missing) = plan.run(state, &c, started).await?;
    let mut answer = Answer::new(points_answer(points), started);
    answer.missing = missing;
    Ok(answer)
}

pub async fn query_batch(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: QueryBatch = parse_body(&body, started)?;
    query_points_batch(&state, &c, req, started).await
}

/// Several queries (REST and gRPC `QueryBatch`): a list of `{"points": [...]}`.
pub(crate) async fn query_points_batch(
    state: &AppState,
    c: &Collection,
    req: QueryBatch,
    started: Instant,
) -> ApiResult<Value> {
    check_batch_len(state, req.searches.len(), started)?;
    super::strict::check_search_batch(c, req.searches.len(), started)?;
    // Every request is checked before any is run, so a bad one fails the batch at once.
    let plans = req
        .searches
        .into_iter()
        .map(|mut q| {
            let c = super::shards::scoped(c, q.shard_key.take(), started)?;
            super::strict::check_query(&c, &q, started)?;
            Ok((c, QueryPlan::new(q, started)?))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    plans.iter().fold(Cost::default(), |sum, (_, p)| sum.add(p.cost(c.spec()))).check(&state.config.limits, started)?;
    let mut results = Vec::with_capacity(plans.len());
    let mut missing_all = Vec::new();
    for (c, plan) in plans {
        let (points, missing) = plan.run(state, &c, started).await?;
        merge_missing(&mut missing_all, missing);
        results.push(points_answer(points));
    }
    let mut answer = Answer::new(Value::Array(results), started);
    answer.missing = missing_all;
    Ok(answer)
}

pub async fn search(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: SearchPoints = parse_body(&body, started)?;
    search_points(&state, &c, req, started).await
}

/// The older search (REST and gRPC `Search`): a list of `ScoredPoint`s.
pub(crate) async fn search_points(
    state: &AppState,
    c: &Collection,
    mut req: SearchPoints,
    started: Instant,
) -> ApiResult<Value> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    super::strict::check_search(&c, &req, started)?;
    let plan = QueryPlan::from_search(req, started)?;
    plan.cost(c.spec()).check(&state.config.limits, started)?;
    let (points, missing) = plan.run(state, &c, started).await?;
    let mut answer = Answer::new(Value::Array(points), started);
    answer.missing = missing;
    Ok(answer)
}

pub async fn search_batch(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: SearchBatch = parse_body(&body, started)?;
    search_points_batch(&state, &c, req, started).await
}

/// Several older searches (REST and gRPC `SearchBatch`): a list of lists of `ScoredPoint`s.
pub(crate) async fn search_points_batch(
    state: &AppState,
    c: &Collection,
    req: SearchBatch,
    started: Instant,
) -> ApiResult<Value> {
    check_batch_len(state, req.searches.len(), started)?;
    super::strict::check_search_batch(c, req.searches.len(), started)?;
    let plans = req
        .searches
        .into_iter()
        .map(|mut s| {
            let c = super::shards::scoped(c, s.shard_key.take(), started)?;
            super::strict::check_search(&c, &s, started)?;
            Ok((c, QueryPlan::from_search(s, started)?))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    plans.iter().fold(Cost::default(), |sum, (_, p)| sum.add(p.cost(c.spec()))).check(&state.config.limits, started)?;
    let mut results = Vec::with_capacity(plans.len());
    let mut missing_all = Vec::new();
    for (c, plan) in plans {
        let (points, missing) = plan.run(state, &c, started).await?;
        merge_missing(&mut missing_all, missing);
        results.push(Value::Array(points));
    }
    let mut answer = Answer::new(Value::Array(results), started);
    answer.missing = missing_all;
    Ok(answer)
}

pub async fn retrieve(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: RetrievePoints = parse_body(&body, started)?;
    retrieve_points(&state, &c, req, started).await
}

/// Points by id (REST and gRPC `Get`): a list of `Record`s.
pub(crate) async fn retrieve_points(
    state: &AppState,
    c: &Collection,
    mut req: RetrievePoints,
    started: Instant,
) -> ApiResult<Value> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    let payload = PayloadSelector::parse(&req.with_payload, true, started)?;
    let with_vector = parse_with_vector(&req.with_vector, false, started)?;
    if req.ids.is_empty() {
        return Ok(Answer::new(json!([]), started));
    }
    let names = with_vector_names(&req.with_vector);
    check_batch_len(state, req.ids.len(), started)?;
    Cost::of_hits(c.spec(), req.ids.len(), with_vector, names.as_deref()).check(&state.config.limits, started)?;
    let records =
        c.get(req.ids, payload.wants_payload(), with_vector).await.map_err(|e| ApiError::from_engine(e, started))?;
    let points = records.into_iter().map(|r| record_json(r, &payload, names.as_deref(), c.spec())).collect();
    Ok(Answer::new(Value::Array(points), started))
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
        Some(r) => Ok(Answer::new(record_json(r, &PayloadSelector::All, None, c.spec()), started)),
        None => Err(point_not_found(&id, started)),
    }
}

pub async fn scroll(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: ScrollPoints = parse_body(&body, started)?;
    scroll_points(&state, &c, req, started).await
}

/// A page of points (REST and gRPC `Scroll`): `{"points", "next_page_offset"}`.
pub(crate) async fn scroll_points(
    state: &AppState,
    c: &Collection,
    mut req: ScrollPoints,
    started: Instant,
) -> ApiResult<Value> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    super::strict::check_read(&c, req.limit, req.filter.as_ref(), None, started)?;
    let filter = parse_filter(req.filter, started)?;
    let payload = PayloadSelector::parse(&req.with_payload, true, started)?;
    let with_vector = parse_with_vector(&req.with_vector, false, started)?;
    if req.limit == Some(0) {
        return Err(ApiError::bad_request("Wrong input: limit must be at least 1", started));
    }
    let order = match req.order_by {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_order_by(&v, started)?),
    };
    if order.is_some() && req.offset.is_some() {
        return Err(ApiError::bad_request(
            "Wrong input: `offset` cannot be used with `order_by`; use `order_by.start_from`",
            started,
        ));
    }
    let scroll = ScrollRequest {
        filter,
        offset: req.offset,
        limit: req.limit.unwrap_or(10),
        with_payload: payload.wants_payload(),
        with_vector,
        order,
    };
    let names = with_vector_names(&req.with_vector);
    Cost::of_hits(c.spec(), scroll.limit, with_vector, names.as_deref()).check(&state.config.limits, started)?;
    let (records, next) = c.scroll(scroll).await.map_err(|e| ApiError::from_engine(e, started))?;
    let points: Vec<Value> =
        records.into_iter().map(|r| record_json(r, &payload, names.as_deref(), c.spec())).collect();
    Ok(Answer::new(json!({ "points": points, "next_page_offset": next }), started))
}

pub async fn count(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: CountPoints = if body.is_empty() { CountPoints::default() } else { parse_body(&body, started)? };
    count_points(&c, req, started).await
}

/// The number of points, all or matching a filter (REST and gRPC `Count`): `{"count": n}`.
pub(crate) async fn count_points(c: &Collection, mut req: CountPoints, started: Instant) -> ApiResult<Value> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    super::strict::check_read(&c, None, req.filter.as_ref(), Some(req.exact.unwrap_or(true)), started)?;
    // Scoped to shard keys, the points of those keys' partitions are counted.
    if c.scope().is_some() {
        let n = c.count(parse_filter(req.filter, started)?).await.map_err(|e| ApiError::from_engine(e, started))?;
        return Ok(Answer::new(json!({ "count": n }), started));
    }
    if let Some(filter) = parse_filter(req.filter, started)? {
        let n = c.count(Some(filter)).await.map_err(|e| ApiError::from_engine(e, started))?;
        return Ok(Answer::new(json!({ "count": n }), started));
    }
    // Without a filter: the live points of every partition. A partition that did not
    // answer makes the count unknown, which is an error rather than a smaller number.
    let parts = c.partitions().await.map_err(|e| ApiError::from_engine(e, started))?;
    let mut total = 0;
    for (info, stats) in &parts {
        match stats {
            Some(s) => total += s.doc_count,
            None => {
                return Err(ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: format!("Service unavailable: partition {} did not answer; the count is unknown", info.id),
                    started,
                })
            }
        }
    }
    Ok(Answer::new(json!({ "count": total }), started))
}

/// The widest oversampling a query may ask for: beyond it the re-scored beam would be a
/// scan of the whole partition anyway.
const MAX_OVERSAMPLING: f64 = 1000.0;

/// One nearest-neighbour query, parsed and checked, ready to run.
#[derive(Clone)]
pub(crate) struct QueryPlan {
    target: QueryTarget,
    limit: usize,
    offset: usize,
    payload: PayloadSelector,
    with_vector: bool,
    /// The names `with_vector` selects, when it is a list.
    vector_names: Option<Vec<String>>,
    score_threshold: Option<f32>,
    ef: Option<usize>,
    exact: bool,
    quantization: QuantizationParams,
    filter: Option<Filter>,
    /// The named vector (dense or sparse) to search; empty for the unnamed one.
    using: String,
    /// Where examples given by id are read: another collection, and its vector.
    lookup_from: Option<LookupFrom>,
    /// Queries whose hits this one fuses or re-ranks (each may have its own).
    prefetch: Vec<QueryPlan>,
}

/// Qdrant's `lookup_from`: `{"collection", "vector"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LookupFrom {
    collection: String,
    #[serde(default)]
    vector: Option<String>,
}

/// A hit of any query: a scored point, and the value it was ordered by (`order_by`).
pub(crate) struct Hit {
    pub doc: ScoredDoc,
    pub order_value: Option<serde_json::Number>,
}

impl Hit {
    fn scored(doc: ScoredDoc) -> Hit {
        Hit { doc, order_value: None }
    }

    /// Qdrant's `ScoredPoint`.
    pub(crate) fn json(self, payload: &PayloadSelector, names: Option<&[String]>, spec: &CollectionSpec) -> Value {
        let mut v = scored_json(self.doc, payload, names, spec);
        if let Some(o) = self.order_value {
            v["order_value"] = Value::Number(o);
        }
        v
    }
}

/// An example of a recommend, discover or context query: a stored point or a vector.
#[derive(Debug, Clone)]
pub(crate) enum Example {
    Id(PointId),
    Vector(Vec<f32>),
}

/// Qdrant's recommend strategies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Strategy {
    AverageVector,
    BestScore,
    SumScores,
}

/// A query by examples.
#[derive(Debug, Clone)]
pub(crate) enum Examples {
    Recommend { positive: Vec<Example>, negative: Vec<Example>, strategy: Strategy },
    Discover { target: Example, context: Vec<(Example, Example)> },
    Context { context: Vec<(Example, Example)> },
}

/// What a query is near to.
#[derive(Clone)]
enum QueryTarget {
    /// No `query`: points in id order.
    List,
    /// `order_by` (a payload value) or `sample: random`.
    Order(ScrollOrder),
    /// Recommend, discover or context.
    Examples(Examples),
    /// Nearest neighbours re-ranked for diversity (`{"nearest", "mmr"}`).
    Mmr {
        vector: Vec<f32>,
        diversity: f32,
        candidates: Option<usize>,
    },
    Vector(Vec<f32>),
    /// A multivector query (a list of vectors), for a multivector `using`.
    Multi(Vec<Vec<f32>>),
    /// A sparse query vector (`{"indices", "values"}`), for a sparse `using`.
    Sparse(SparseVector),
    /// The vector of a stored point; the point itself is left out of the hits.
    Point(PointId),
    /// BM25 over a text-indexed payload field (Ametist's `{"bm25": {"field", "text"}}`).
    Text {
        field: String,
        text: String,
    },
    /// Qdrant's `{"fusion": "rrf" | "dbsf"}` (or `{"rrf": ...}`) over the `prefetch` queries.
    Fusion(Fusion),
}

impl QueryPlan {
    pub(crate) fn new(req: QueryPoints, started: Instant) -> Result<Self, ApiError> {
        Self::parse(req, started)
    }

    fn parse(req: QueryPoints, started: Instant) -> Result<Self, ApiError> {
        let filter = parse_filter(req.filter, started)?;
        let lookup_from =
            match req.lookup_from {
                None | Some(Value::Null) => None,
                Some(v) => Some(serde_json::from_value::<LookupFrom>(v).map_err(|e| {
                    ApiError::bad_request(format!("Format error in JSON body: lookup_from: {e}"), started)
                })?),
            };
        let prefetch = match req.prefetch {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(one) => vec![one],
        };
        let prefetch = prefetch
            .into_iter()
            .map(|p| {
                let sub: QueryPoints = serde_json::from_value(p)
                    .map_err(|e| ApiError::bad_request(format!("Format error in JSON body: prefetch: {e}"), started))?;
                Self::parse(sub, started)
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let json = req.query.as_ref().and_then(QueryInput::as_value);
        let is_fusion = json.is_some_and(|q| q.get("fusion").is_some() || q.get("rrf").is_some());
        let target = if is_fusion {
            if prefetch.is_empty() {
                return Err(ApiError::bad_request("Wrong input: a fusion query needs `prefetch`", started));
            }
            QueryTarget::Fusion(parse_fusion(json, started)?)
        } else if !prefetch.is_empty() && req.query.as_ref().is_none_or(|q| q.as_value().is_some_and(Value::is_null)) {
            return Err(ApiError::bad_request(
                "Wrong input: query: a query is needed to merge the prefetches",
                started,
            ));
        } else if json.is_some_and(|q| q.get("formula").is_some()) {
            return Err(not_supported("`formula` queries are not supported yet", started));
        } else {
            parse_query(req.query, started)?
        };
        Self::build(
            target,
            req.limit.unwrap_or(10),
            req.offset,
            &req.with_payload,
            &req.with_vector,
            req.score_threshold,
            req.params,
            false,
            started,
        )
        .map(|plan| QueryPlan { filter, using: req.using.unwrap_or_default(), lookup_from, prefetch, ..plan })
    }

    pub(crate) fn from_search(req: SearchPoints, started: Instant) -> Result<Self, ApiError> {
        let filter = parse_filter(req.filter, started)?;
        let vector = req.vector.dense(started)?;
        Self::build(
            QueryTarget::Vector(vector),
            req.limit,
            req.offset,
            &req.with_payload,
            &req.with_vector,
            req.score_threshold,
            req.params,
            false,
            started,
        )
        .map(|plan| QueryPlan { filter, ..plan })
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        target: QueryTarget,
        limit: usize,
        offset: Option<usize>,
        with_payload: &Option<Value>,
        with_vector: &Option<Value>,
        score_threshold: Option<f32>,
        params: Option<SearchParams>,
        default_payload: bool,
        started: Instant,
    ) -> Result<Self, ApiError> {
        let params = params.unwrap_or_default();
        if limit == 0 {
            return Err(ApiError::bad_request("Wrong input: limit must be at least 1", started));
        }
        let ef_range = ametist_engine::config::EF_SEARCH_RANGE;
        if let Some(ef) = params.hnsw_ef.filter(|ef| !ef_range.contains(ef)) {
            return Err(ApiError::bad_request(
                format!(
                    "Wrong input: params.hnsw_ef must be between {} and {}, got {ef}",
                    ef_range.start(),
                    ef_range.end()
                ),
                started,
            ));
        }
        let q = params.quantization.unwrap_or_default();
        if let Some(o) = q.oversampling.filter(|o| !(1.0..=MAX_OVERSAMPLING).contains(o)) {
            return Err(ApiError::bad_request(
                format!(
                    "Wrong input: params.quantization.oversampling must be between 1 and {MAX_OVERSAMPLING}, got {o}"
                ),
                started,
            ));
        }
        let quantization = QuantizationParams {
            ignore: q.ignore.unwrap_or(false),
            rescore: q.rescore,
            oversampling: q.oversampling.map(|o| o as f32),
        };
        Ok(QueryPlan {
            target,
            limit,
            offset: offset.unwrap_or(0),
            payload: PayloadSelector::parse(with_payload, default_payload, started)?,
            with_vector: parse_with_vector(with_vector, false, started)?,
            vector_names: with_vector_names(with_vector),
            score_threshold,
            ef: params.hnsw_ef,
            exact: params.exact.unwrap_or(false),
            quantization,
            filter: None,
            using: String::new(),
            lookup_from: None,
            prefetch: Vec::new(),
        })
    }

    /// Runs the query: the hits as Qdrant's `ScoredPoint`s, and the partitions missing
    /// from them.
    pub(crate) async fn run(
        self,
        state: &AppState,
        c: &Collection,
        started: Instant,
    ) -> Result<(Vec<Value>, Vec<MissingPartition>), ApiError> {
        let (payload, names) = (self.payload.clone(), self.vector_names.clone());
        let (hits, missing) = self.run_hits(state, c, started).await?;
        Ok((hits.into_iter().map(|h| h.json(&payload, names.as_deref(), c.spec())).collect(), missing))
    }

    /// Runs the query: its hits with their payloads and vectors as the engine gave them.
    pub(crate) async fn run_hits(
        self,
        state: &AppState,
        c: &Collection,
        started: Instant,
    ) -> Result<(Vec<Hit>, Vec<MissingPartition>), ApiError> {
        let engine = |e| ApiError::from_engine(e, started);
        if !self.prefetch.is_empty() {
            return Box::pin(self.run_prefetched(state, c, started)).await;
        }
        let target = match self.target {
            QueryTarget::List | QueryTarget::Order(_) => {
                let order = match self.target {
                    QueryTarget::Order(o) => Some(o),
                    _ => None,
                };
                // Random samples have no offset (as in Qdrant).
                let skip = if matches!(order, Some(ScrollOrder::Random { .. })) { 0 } else { self.offset };
                let random = matches!(order, Some(ScrollOrder::Random { .. }));
                let scroll = ScrollRequest {
                    filter: self.filter,
                    offset: None,
                    limit: skip.saturating_add(self.limit),
                    with_payload: self.payload.wants_payload(),
                    with_vector: self.with_vector,
                    order,
                };
                let (records, _) = c.scroll(scroll).await.map_err(engine)?;
                let hits = records
                    .into_iter()
                    .skip(skip)
                    .map(|r| Hit {
                        doc: ScoredDoc {
                            id: r.id,
                            version: r.version,
                            score: 1.0,
                            payload: r.payload,
                            vectors: r.vectors,
                        },
                        order_value: if random { None } else { r.order_value },
                    })
                    .collect();
                return Ok((hits, Vec::new()));
            }
            QueryTarget::Examples(examples) => {
                let plan = QueryPlan { target: QueryTarget::List, ..self };
                return plan.run_examples(examples, state, c, started).await;
            }
            QueryTarget::Mmr { vector, diversity, candidates } => {
                let plan = QueryPlan { target: QueryTarget::List, ..self };
                return plan.run_mmr(vector, diversity, candidates, c, started).await;
            }
            other => other,
        };
        let target = match target {
            QueryTarget::Text { field, text } => {
                let q = TextQuery {
                    field,
                    text,
                    k: self.limit,
                    offset: self.offset,
                    filter: self.filter,
                    with_payload: self.payload.wants_payload(),
                    with_vector: self.with_vector,
                };
                let r = c.text_search(q).await.map_err(engine)?;
                let points = r.results.into_iter().map(Hit::scored).collect();
                return Ok((points, r.missing_partitions));
            }
            QueryTarget::Fusion(_) => unreachable!("a fusion has prefetches, run first"),
            other => other,
        };
        let (query, exclude, k, offset) = match target {
            QueryTarget::Point(id) => {
                let query = point_vector(c, &id, &self.using, started).await?;
                // One more than needed from the top, since the point itself is dropped.
                (query, Some(id), self.offset.saturating_add(self.limit).saturating_add(1), 0)
            }
            other => (query_vector(c, other, &self.using, started)?, None, self.limit, self.offset),
        };
        let vector = match query {
            QueryVector::Dense(v) => v,
            QueryVector::Sparse(vector) => {
                let q = SparseQuery {
                    name: self.using.clone(),
                    vector,
                    k,
                    offset,
                    filter: self.filter,
                    with_payload: self.payload.wants_payload(),
                    with_vector: self.with_vector,
                    score_threshold: self.score_threshold,
                };
                let r = c.sparse_search(q).await.map_err(engine)?;
                let mut hits = r.results;
                if let Some(id) = exclude {
                    hits.retain(|h| h.id != id);
                    hits = hits.into_iter().skip(self.offset).take(self.limit).collect();
                }
                let points = hits.into_iter().map(Hit::scored).collect();
                return Ok((points, r.missing_partitions));
            }
        };
        let mut req = SearchRequest::new(vector, k);
        req.using = self.using.clone();
        req.offset = offset;
        req.with_payload = self.payload.wants_payload();
        req.with_vector = self.with_vector;
        req.score_threshold = self.score_threshold;
        req.ef = self.ef;
        req.exact = self.exact;
        req.quantization = self.quantization;
        req.filter = self.filter;
        let result = c.search(req).await.map_err(|e| ApiError::from_engine(e, started))?;
        let mut hits = result.results;
        if let Some(id) = exclude {
            hits.retain(|h| h.id != id);
            hits = hits.into_iter().skip(self.offset).take(self.limit).collect();
        }
        let points = hits.into_iter().map(Hit::scored).collect();
        Ok((points, result.missing_partitions))
    }
}

impl QueryPlan {
    /// What this query asks for: the hits of it and its prefetches, and the answer's size.
    pub(crate) fn cost(&self, spec: &CollectionSpec) -> Cost {
        let own = Cost::of_hits(spec, self.limit, self.with_vector, self.vector_names.as_deref());
        let want = self.limit.saturating_add(self.offset);
        let mut cost = Cost { results: want, largest: want, ..own };
        for p in &self.prefetch {
            cost = cost.add(Cost { answer_bytes: 0, ..p.cost(spec) });
        }
        cost
    }

    /// Runs the prefetches (each with this query's filter added to its own, as Qdrant
    /// propagates filters to the leaves), then fuses their hits, or runs this query over
    /// them only (a re-rank: the query's filter plus `has_id` of their hits), as Qdrant's
    /// local mode does.
    async fn run_prefetched(
        mut self,
        state: &AppState,
        c: &Collection,
        started: Instant,
    ) -> Result<(Vec<Hit>, Vec<MissingPartition>), ApiError> {
        let engine = |e| ApiError::from_engine(e, started);
        let mut lists = Vec::with_capacity(self.prefetch.len());
        let mut missing = Vec::new();
        for mut p in std::mem::take(&mut self.prefetch) {
            p.filter = and_filters(self.filter.clone(), p.filter.take());
            let (hits, m) = Box::pin(p.run_hits(state, c, started)).await?;
            merge_missing(&mut missing, m);
            lists.push(hits.into_iter().map(|h| h.doc).collect::<Vec<_>>());
        }
        if let QueryTarget::Fusion(fusion) = self.target {
            let want = self.offset.saturating_add(self.limit);
            let mut fused = ametist_engine::collection::fuse(lists, fusion, want).map_err(engine)?;
            if let Some(t) = self.score_threshold {
                fused.retain(|d| d.score >= t);
            }
            let fused: Vec<ScoredDoc> = fused.into_iter().skip(self.offset).collect();
            // The prefetches fetched neither payloads nor vectors: read those asked for.
            let (with_payload, with_vector) = (self.payload.wants_payload(), self.with_vector);
            let mut found = std::collections::HashMap::new();
            if (with_payload || with_vector) && !fused.is_empty() {
                let ids = fused.iter().map(|d| d.id.clone()).collect();
                for r in c.get(ids, with_payload, with_vector).await.map_err(engine)? {
                    found.insert(r.id.clone(), r);
                }
            }
            let hits = fused
                .into_iter()
                .map(|mut d| {
                    if let Some(r) = found.remove(&d.id) {
                        d.payload = r.payload;
                        d.vectors = r.vectors;
                    }
                    Hit::scored(d)
                })
                .collect();
            return Ok((hits, missing));
        }
        let ids: std::collections::BTreeSet<PointId> = lists.into_iter().flatten().map(|d| d.id).collect();
        if ids.is_empty() {
            return Ok((Vec::new(), missing));
        }
        let only = Filter {
            must: Some(vec![Condition::HasId(ametist_core::filter::HasIdCondition { has_id: ids })]),
            ..Filter::default()
        };
        self.filter = and_filters(self.filter.take(), Some(only));
        let (hits, m) = Box::pin(self.run_hits(state, c, started)).await?;
        merge_missing(&mut missing, m);
        Ok((hits, missing))
    }
}

/// Reads `query`: a vector, a point id, or `{"nearest": vector or id}`.
fn parse_query(query: Option<QueryInput>, started: Instant) -> Result<QueryTarget, ApiError> {
    let query = match query {
        Some(QueryInput::Dense(v)) => return Ok(QueryTarget::Vector(v)),
        Some(QueryInput::Other(v)) => Some(v),
        None => None,
    };
    let value = match query {
        None | Some(Value::Null) => return Ok(QueryTarget::List),
        Some(Value::Object(m)) if m.len() == 1 && m.contains_key("recommend") => {
            return parse_recommend(&m["recommend"], started).map(QueryTarget::Examples)
        }
        Some(Value::Object(m)) if m.len() == 1 && m.contains_key("discover") => {
            return parse_discover(&m["discover"], started).map(QueryTarget::Examples)
        }
        Some(Value::Object(m)) if m.len() == 1 && m.contains_key("context") => {
            let context = parse_context(&m["context"], "context", started)?;
            return Ok(QueryTarget::Examples(Examples::Context { context }));
        }
        Some(Value::Object(m)) if m.len() == 1 && m.contains_key("order_by") => {
            return parse_order_by(&m["order_by"], started).map(QueryTarget::Order)
        }
        Some(Value::Object(m)) if m.len() == 1 && m.contains_key("sample") => {
            return match m["sample"].as_str() {
                Some("random") => Ok(QueryTarget::Order(ScrollOrder::Random { seed: random_seed() })),
                _ => Err(ApiError::bad_request(
                    format!("Format error in JSON body: sample: unknown variant {}, expected `random`", m["sample"]),
                    started,
                )),
            };
        }
        Some(Value::Object(m)) if m.contains_key("bm25") => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Bm25 {
                field: String,
                text: String,
            }
            let q: Bm25 = serde_json::from_value(m["bm25"].clone())
                .map_err(|e| ApiError::bad_request(format!("Format error in JSON body: bm25: {e}"), started))?;
            return Ok(QueryTarget::Text { field: q.field, text: q.text });
        }
        // A sparse vector sent as the query itself.
        Some(Value::Object(m)) if m.contains_key("indices") => Value::Object(m),
        Some(Value::Object(mut m)) => {
            let Some(nearest) = m.remove("nearest") else {
                let kind = m.keys().next().cloned().unwrap_or_default();
                return Err(not_supported(
                    format!("`{kind}` queries are not supported yet; send a vector or {{\"nearest\": vector}}"),
                    started,
                ));
            };
            if let Some(mmr) = m.remove("mmr").filter(|v| !v.is_null()) {
                return parse_mmr(nearest, mmr, started);
            }
            if let Some((k, _)) = m.iter().find(|(_, v)| !v.is_null()) {
                return Err(not_supported(format!("`nearest` with `{k}` is not supported yet"), started));
            }
            nearest
        }
        Some(v) => v,
    };
    if value.get("indices").is_some() {
        return serde_json::from_value::<SparseVector>(value)
            .map(QueryTarget::Sparse)
            .map_err(|e| ApiError::bad_request(format!("Wrong input: sparse query: {e}"), started));
    }
    match value {
        Value::Array(ref items) if items.first().is_some_and(Value::is_array) => {
            serde_json::from_value::<Vec<Vec<f32>>>(value).map(QueryTarget::Multi).map_err(|e| {
                ApiError::bad_request(
                    format!("Wrong input: a multivector query must be lists of numbers: {e}"),
                    started,
                )
            })
        }
        Value::Array(_) => serde_json::from_value::<Vec<f32>>(value).map(QueryTarget::Vector).map_err(|e| {
            ApiError::bad_request(format!("Wrong input: a query vector must be a list of numbers: {e}"), started)
        }),
        Value::Number(_) | Value::String(_) => serde_json::from_value::<PointId>(value)
            .map(QueryTarget::Point)
            .map_err(|e| ApiError::bad_request(format!("Wrong input: query: {e}"), started)),
        Value::Object(_) => Err(not_supported(
            "sparse vectors and inference objects are not supported yet; send a list of numbers",
            started,
        )),
        other => Err(ApiError::bad_request(
            format!("Wrong input: query must be a vector or a point id, got {other}"),
            started,
        )),
    }
}

/// `{"nearest": vector, "mmr": {"diversity", "candidates_limit"}}` (dense vectors only).
fn parse_mmr(nearest: Value, mmr: Value, started: Instant) -> Result<QueryTarget, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Mmr {
        #[serde(default)]
        diversity: Option<f32>,
        #[serde(default)]
        candidates_limit: Option<usize>,
    }
    let mmr: Mmr = serde_json::from_value(mmr).map_err(|e| bad_field("mmr", e, started))?;
    let diversity = mmr.diversity.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&diversity) {
        return Err(bad_field("mmr.diversity", format!("must be between 0 and 1, got {diversity}"), started));
    }
    if mmr.candidates_limit == Some(0) {
        return Err(bad_field("mmr.candidates_limit", "must be at least 1", started));
    }
    let vector = match nearest {
        Value::Array(ref items) if !items.first().is_some_and(Value::is_array) => {
            serde_json::from_value::<Vec<f32>>(nearest).map_err(|e| bad_field("nearest", e, started))?
        }
        _ => {
            return Err(not_supported(
                "`mmr` with a sparse, multivector or point id query is not supported yet; send a dense vector",
                started,
            ))
        }
    };
    Ok(QueryTarget::Mmr { vector, diversity, candidates: mmr.candidates_limit })
}

/// The index of the last largest value (as Qdrant's `max_by_key`).
fn last_argmax(xs: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, x) in xs.enumerate() {
        if i == 0 || x >= best.1 {
            best = (i, x);
        }
    }
    best.0
}

impl QueryPlan {
    /// Maximal marginal relevance: the `candidates_limit` nearest points, then, one at a
    /// time, the candidate with the best `λ·sim(query) − (1−λ)·max sim(chosen)` (λ = 1 −
    /// diversity), starting from the nearest. Hits keep their similarity to the query as
    /// their score. Qdrant's tie rules (the last best; the chosen one swapped out with the
    /// last pending) are kept, so answers match.
    async fn run_mmr(
        self,
        vector: Vec<f32>,
        diversity: f32,
        candidates: Option<usize>,
        c: &Collection,
        started: Instant,
    ) -> Result<(Vec<Hit>, Vec<MissingPartition>), ApiError> {
        let bad = |e: String| ApiError::bad_request(format!("Wrong input: {e}"), started);
        let field = match c.spec().dense_field(&self.using) {
            Some(f) if f.multivector.is_none() => f.clone(),
            Some(_) => return Err(not_supported("`mmr` over a multivector is not supported yet", started)),
            None if c.spec().sparse_vectors.contains_key(&self.using) => {
                return Err(not_supported("`mmr` over a sparse vector is not supported yet", started))
            }
            None => return Err(bad(format!("Not existing vector name error: {}", self.using))),
        };
        let query = field.prepare(vector).map_err(|e| bad(format!("query: {e}")))?;
        let mut req = SearchRequest::new(query.clone(), candidates.unwrap_or(self.limit));
        req.using = self.using.clone();
        req.with_payload = self.payload.wants_payload();
        req.with_vector = true;
        req.score_threshold = self.score_threshold;
        req.ef = self.ef;
        req.exact = self.exact;
        req.quantization = self.quantization;
        req.filter = self.filter;
        let r = c.search(req).await.map_err(|e| ApiError::from_engine(e, started))?;
        let mut docs = r.results;
        let vectors: Vec<Vec<f32>> = docs
            .iter_mut()
            .map(|d| d.vectors.as_mut().and_then(|v| v.dense.get(&self.using).cloned()).unwrap_or_default())
            .collect();
        if docs.is_empty() {
            return Ok((Vec::new(), r.missing_partitions));
        }
        let sim = |a: &[f32], b: &[f32]| -field.metric.distance(a, b);
        let relevance: Vec<f32> = vectors.iter().map(|v| sim(&query, v)).collect();
        let lambda = 1.0 - diversity;
        let want = self.offset.saturating_add(self.limit);
        let mut pending: Vec<usize> = (0..docs.len()).collect();
        let first = last_argmax(pending.iter().map(|&i| relevance[i]));
        let mut selected = vec![pending.swap_remove(first)];
        while selected.len() < want && !pending.is_empty() {
            let scores: Vec<f32> = pending
                .iter()
                .map(|&i| {
                    let nearest =
                        selected.iter().map(|&j| sim(&vectors[i], &vectors[j])).fold(f32::NEG_INFINITY, f32::max);
                    lambda * relevance[i] - (1.0 - lambda) * nearest
                })
                .collect();
            if scores.iter().all(|s| *s == f32::NEG_INFINITY) {
                break;
            }
            selected.push(pending.swap_remove(last_argmax(scores.into_iter())));
        }
        let mut slots: Vec<Option<ScoredDoc>> = docs.into_iter().map(Some).collect();
        let hits = selected
            .into_iter()
            .skip(self.offset)
            .filter_map(|i| slots[i].take())
            .map(|mut d| {
                if !self.with_vector {
                    d.vectors = None;
                }
                Hit::scored(d)
            })
            .collect();
        Ok((hits, r.missing_partitions))
    }
}

/// Both filters (either may be absent).
fn and_filters(a: Option<Filter>, b: Option<Filter>) -> Option<Filter> {
    match (a, b) {
        (Some(a), Some(b)) => {
            Some(Filter { must: Some(vec![Condition::Filter(a), Condition::Filter(b)]), ..Filter::default() })
        }
        (a, b) => a.or(b),
    }
}

/// A seed for `sample: random`: a fresh one per query.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

fn bad_field(field: &str, e: impl std::fmt::Display, started: Instant) -> ApiError {
    ApiError::bad_request(format!("Format error in JSON body: {field}: {e}"), started)
}

/// An example: a point id or a dense vector.
fn parse_example(v: &Value, field: &str, started: Instant) -> Result<Example, ApiError> {
    match v {
        Value::Number(_) | Value::String(_) => {
            serde_json::from_value::<PointId>(v.clone()).map(Example::Id).map_err(|e| bad_field(field, e, started))
        }
        Value::Array(items) if items.first().is_some_and(Value::is_array) => {
            Err(not_supported(format!("{field}: multivector examples are not supported yet"), started))
        }
        Value::Array(_) => {
            serde_json::from_value::<Vec<f32>>(v.clone()).map(Example::Vector).map_err(|e| bad_field(field, e, started))
        }
        Value::Object(_) => Err(not_supported(format!("{field}: sparse examples are not supported yet"), started)),
        other => Err(bad_field(field, format!("expected a point id or a vector, got {other}"), started)),
    }
}

fn parse_examples(v: Option<&Value>, field: &str, started: Instant) -> Result<Vec<Example>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|x| parse_example(x, field, started)).collect(),
        Some(other) => Err(bad_field(field, format!("expected a list, got {other}"), started)),
    }
}

/// `{"positive", "negative", "strategy"}` of a recommend query.
pub(crate) fn parse_recommend(v: &Value, started: Instant) -> Result<Examples, ApiError> {
    let m = v.as_object().ok_or_else(|| bad_field("recommend", "expected an object", started))?;
    if let Some(k) = m.keys().find(|k| !["positive", "negative", "strategy"].contains(&k.as_str())) {
        return Err(bad_field("recommend", format!("unknown field `{k}`"), started));
    }
    let strategy = match m.get("strategy") {
        None | Some(Value::Null) => Strategy::AverageVector,
        Some(s) => match s.as_str() {
            Some("average_vector") => Strategy::AverageVector,
            Some("best_score") => Strategy::BestScore,
            Some("sum_scores") => Strategy::SumScores,
            _ => {
                return Err(bad_field(
                    "recommend.strategy",
                    format!("unknown variant {s}, expected `average_vector`, `best_score` or `sum_scores`"),
                    started,
                ))
            }
        },
    };
    let positive = parse_examples(m.get("positive"), "recommend.positive", started)?;
    let negative = parse_examples(m.get("negative"), "recommend.negative", started)?;
    if strategy == Strategy::AverageVector && positive.is_empty() {
        return Err(ApiError::bad_request(
            "Wrong input: recommend.positive is empty: the average_vector strategy needs a positive example",
            started,
        ));
    }
    if positive.is_empty() && negative.is_empty() {
        return Err(ApiError::bad_request("Wrong input: recommend needs positive or negative examples", started));
    }
    Ok(Examples::Recommend { positive, negative, strategy })
}

/// `[{"positive", "negative"}, ...]` of a discover or context query.
pub(crate) fn parse_context(v: &Value, field: &str, started: Instant) -> Result<Vec<(Example, Example)>, ApiError> {
    let pairs = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items.iter().collect::<Vec<_>>(),
        one @ Value::Object(_) => vec![one],
        other => return Err(bad_field(field, format!("expected a list of pairs, got {other}"), started)),
    };
    pairs
        .into_iter()
        .map(|p| {
            let m = p.as_object().ok_or_else(|| bad_field(field, "a pair is {\"positive\", \"negative\"}", started))?;
            if let Some(k) = m.keys().find(|k| !["positive", "negative"].contains(&k.as_str())) {
                return Err(bad_field(field, format!("unknown field `{k}` in a pair"), started));
            }
            let (Some(pos), Some(neg)) = (m.get("positive"), m.get("negative")) else {
                return Err(bad_field(field, "a pair needs `positive` and `negative`", started));
            };
            Ok((parse_example(pos, field, started)?, parse_example(neg, field, started)?))
        })
        .collect()
}

/// `{"target", "context"}` of a discover query.
pub(crate) fn parse_discover(v: &Value, started: Instant) -> Result<Examples, ApiError> {
    let m = v.as_object().ok_or_else(|| bad_field("discover", "expected an object", started))?;
    if let Some(k) = m.keys().find(|k| !["target", "context"].contains(&k.as_str())) {
        return Err(bad_field("discover", format!("unknown field `{k}`"), started));
    }
    let target = m
        .get("target")
        .filter(|t| !t.is_null())
        .ok_or_else(|| bad_field("discover", "missing field `target`", started))?;
    let target = parse_example(target, "discover.target", started)?;
    let context = parse_context(m.get("context").unwrap_or(&Value::Null), "discover.context", started)?;
    Ok(Examples::Discover { target, context })
}

/// `order_by`: a key, or `{"key", "direction", "start_from"}`.
pub(crate) fn parse_order_by(v: &Value, started: Instant) -> Result<ScrollOrder, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct OrderBy {
        key: String,
        #[serde(default)]
        direction: Option<String>,
        #[serde(default)]
        start_from: Option<Value>,
    }
    let o: OrderBy = match v {
        Value::String(key) => OrderBy { key: key.clone(), direction: None, start_from: None },
        other => serde_json::from_value(other.clone()).map_err(|e| bad_field("order_by", e, started))?,
    };
    if o.key.trim().is_empty() {
        return Err(bad_field("order_by.key", "must not be empty", started));
    }
    let descending = match o.direction.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(d) => {
            return Err(bad_field(
                "order_by.direction",
                format!("unknown variant `{d}`, expected `asc` or `desc`"),
                started,
            ))
        }
    };
    let start_from = match o.start_from {
        None | Some(Value::Null) => None,
        Some(v) => match ametist_engine::scoring::order_value(&v).and_then(|n| n.as_f64()) {
            Some(x) => Some(x),
            None => {
                return Err(bad_field(
                    "order_by.start_from",
                    format!("expected a number or a datetime, got {v}"),
                    started,
                ))
            }
        },
    };
    Ok(ScrollOrder::Payload { key: o.key, descending, start_from })
}

impl QueryPlan {
    /// This query asking for its best `k` with whole payloads, to group them.
    pub(crate) fn for_groups(&self, k: usize) -> QueryPlan {
        QueryPlan { limit: k, offset: 0, payload: PayloadSelector::All, ..self.clone() }
    }

    /// The payload selector and the vector names of the answer.
    pub(crate) fn selectors(&self) -> (PayloadSelector, Option<Vec<String>>) {
        (self.payload.clone(), self.vector_names.clone())
    }

    /// Runs a recommend, discover or context query: examples by id are read (from
    /// `lookup_from` when set, else from this collection, whose example points are then
    /// left out of the hits), then an average vector is searched, or the examples scored.
    async fn run_examples(
        self,
        examples: Examples,
        state: &AppState,
        c: &Collection,
        started: Instant,
    ) -> Result<(Vec<Hit>, Vec<MissingPartition>), ApiError> {
        let (source, vector_name) = match &self.lookup_from {
            Some(l) => {
                (collection(state, &l.collection, started)?, l.vector.clone().unwrap_or_else(|| self.using.clone()))
            }
            None => (c.clone(), self.using.clone()),
        };
        if c.spec().sparse_vectors.contains_key(&self.using) {
            return Err(not_supported(
                format!(
                    "recommend, discover and context queries of the sparse vector `{}` are not supported yet",
                    self.using
                ),
                started,
            ));
        }
        let same = self.lookup_from.is_none();
        let mut mentioned = std::collections::BTreeSet::new();
        let mut resolve = async |e: Example| -> Result<Vec<f32>, ApiError> {
            match e {
                Example::Vector(v) => Ok(v),
                Example::Id(id) => {
                    let v = match point_vector(&source, &id, &vector_name, started).await? {
                        QueryVector::Dense(v) => v,
                        QueryVector::Sparse(_) => {
                            return Err(not_supported("sparse examples are not supported yet", started))
                        }
                    };
                    if same {
                        mentioned.insert(id);
                    }
                    Ok(v)
                }
            }
        };
        let mut pairs = Vec::new();
        let (query, examples) = match examples {
            Examples::Recommend { positive, negative, strategy } => {
                let mut pos = Vec::with_capacity(positive.len());
                for e in positive {
                    pos.push(resolve(e).await?);
                }
                let mut neg = Vec::with_capacity(negative.len());
                for e in negative {
                    neg.push(resolve(e).await?);
                }
                match strategy {
                    Strategy::AverageVector => (average_vector(&pos, &neg, started)?, None),
                    Strategy::BestScore => (Vec::new(), Some(ExampleQuery::BestScore { positive: pos, negative: neg })),
                    Strategy::SumScores => (Vec::new(), Some(ExampleQuery::SumScores { positive: pos, negative: neg })),
                }
            }
            Examples::Discover { target, context } => {
                let target = resolve(target).await?;
                for (p, n) in context {
                    pairs.push(ContextPair { positive: resolve(p).await?, negative: resolve(n).await? });
                }
                (Vec::new(), Some(ExampleQuery::Discover { target, pairs }))
            }
            Examples::Context { context } => {
                if context.is_empty() {
                    return Err(ApiError::bad_request("Wrong input: context needs at least one pair", started));
                }
                for (p, n) in context {
                    pairs.push(ContextPair { positive: resolve(p).await?, negative: resolve(n).await? });
                }
                (Vec::new(), Some(ExampleQuery::Context { pairs }))
            }
        };
        let mut filter = self.filter;
        if !mentioned.is_empty() {
            let not_examples = Condition::HasId(ametist_core::filter::HasIdCondition { has_id: mentioned });
            let f = filter.get_or_insert_with(Filter::default);
            f.must_not.get_or_insert_with(Vec::new).push(not_examples);
        }
        let mut req = SearchRequest::new(query, self.limit);
        req.using = self.using.clone();
        req.offset = self.offset;
        req.with_payload = self.payload.wants_payload();
        req.with_vector = self.with_vector;
        req.score_threshold = self.score_threshold;
        req.ef = self.ef;
        req.exact = self.exact;
        req.quantization = self.quantization;
        req.filter = filter;
        req.examples = examples;
        let r = c.search(req).await.map_err(|e| ApiError::from_engine(e, started))?;
        Ok((r.results.into_iter().map(Hit::scored).collect(), r.missing_partitions))
    }
}

/// Qdrant's average-vector recommendation: `2 · mean(positive) − mean(negative)`, or the
/// positive mean alone.
fn average_vector(positive: &[Vec<f32>], negative: &[Vec<f32>], started: Instant) -> Result<Vec<f32>, ApiError> {
    let mean = |xs: &[Vec<f32>]| -> Result<Vec<f32>, ApiError> {
        let dim = xs[0].len();
        if xs.iter().any(|x| x.len() != dim) {
            return Err(ApiError::bad_request("Wrong input: the examples have different dimensions", started));
        }
        let mut m = vec![0f64; dim];
        for x in xs {
            m.iter_mut().zip(x).for_each(|(a, b)| *a += f64::from(*b));
        }
        Ok(m.into_iter().map(|a| (a / xs.len() as f64) as f32).collect())
    };
    let pos = mean(positive)?;
    if negative.is_empty() {
        return Ok(pos);
    }
    let neg = mean(negative)?;
    if neg.len() != pos.len() {
        return Err(ApiError::bad_request("Wrong input: the examples have different dimensions", started));
    }
    Ok(pos.iter().zip(&neg).map(|(p, n)| p + p - n).collect())
}

/// A query vector resolved against the collection's vectors.
enum QueryVector {
    Dense(Vec<f32>),
    Sparse(SparseVector),
}

/// Checks that a query's vector fits the vector `using` names: dense for the unnamed or a
/// named dense vector, sparse for a named sparse vector.
fn query_vector(c: &Collection, target: QueryTarget, using: &str, started: Instant) -> Result<QueryVector, ApiError> {
    let spec = c.spec();
    let is_sparse = spec.sparse_vectors.contains_key(using);
    if !using.is_empty() && !is_sparse && !spec.vectors.contains_key(using) {
        return Err(ApiError::bad_request(format!("Wrong input: Not existing vector name error: {using}"), started));
    }
    let dense = |input| {
        dense_value_for(spec, using, input, true)
            .map(QueryVector::Dense)
            .map_err(|e| ApiError::bad_request(format!("Wrong input: query: {e}"), started))
    };
    match target {
        QueryTarget::Vector(v) if !is_sparse => dense(DenseInput::One(v)),
        QueryTarget::Multi(rows) if !is_sparse => dense(DenseInput::Many(rows)),
        QueryTarget::Sparse(v) if is_sparse => Ok(QueryVector::Sparse(v)),
        QueryTarget::Vector(_) | QueryTarget::Multi(_) => Err(ApiError::bad_request(
            format!("Wrong input: `{using}` is a sparse vector: query it with {{\"indices\", \"values\"}}"),
            started,
        )),
        QueryTarget::Sparse(_) => Err(ApiError::bad_request(
            "Wrong input: a sparse query needs `using` to name a sparse vector of the collection",
            started,
        )),
        _ => unreachable!("points, text and fusion queries are resolved by the caller"),
    }
}

/// The vector `using` names of a stored point, as a query.
async fn point_vector(c: &Collection, id: &PointId, using: &str, started: Instant) -> Result<QueryVector, ApiError> {
    let mut records = c.get(vec![id.clone()], false, true).await.map_err(|e| ApiError::from_engine(e, started))?;
    let r = records.pop().ok_or_else(|| point_not_found(id, started))?;
    let missing =
        || ApiError::bad_request(format!("Wrong input: point {id} has no vector `{using}` to search with"), started);
    let mut named = r.vectors.unwrap_or_default();
    if let Some(v) = named.dense.remove(using) {
        return Ok(QueryVector::Dense(v));
    }
    if let Some(v) = named.sparse.remove(using) {
        return Ok(QueryVector::Sparse(v));
    }
    let spec = c.spec();
    if spec.dense_field(using).is_none() && !spec.sparse_vectors.contains_key(using) {
        return Err(ApiError::bad_request(format!("Wrong input: Not existing vector name error: {using}"), started));
    }
    Err(missing())
}

/// Reads the fusion of a query with `prefetch`: `{"fusion": "rrf" | "dbsf"}`, or Qdrant's
/// parametrised `{"rrf": {"k": 2, "weights": [w, ...]}}` (one weight per prefetch).
fn parse_fusion(query: Option<&Value>, started: Instant) -> Result<Fusion, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rrf {
        #[serde(default)]
        k: Option<f32>,
        #[serde(default)]
        weights: Option<Vec<f32>>,
    }
    match query {
        Some(q) if q.get("fusion").and_then(Value::as_str) == Some("rrf") => Ok(Fusion::Rrf),
        Some(q) if q.get("fusion").and_then(Value::as_str) == Some("dbsf") => Ok(Fusion::Dbsf),
        Some(Value::Object(m)) if m.contains_key("rrf") => {
            let rrf: Rrf = serde_json::from_value(m["rrf"].clone())
                .map_err(|e| ApiError::bad_request(format!("Format error in JSON body: rrf: {e}"), started))?;
            Ok(Fusion::WeightedRrf {
                k: rrf.k.unwrap_or(ametist_core::text::fusion::DEFAULT_RRF_K),
                weights: rrf.weights.unwrap_or_default(),
            })
        }
        _ => Err(not_supported(
            "with `prefetch`, only `query: {\"fusion\": \"rrf\" | \"dbsf\"}` or `{\"rrf\": {\"k\", \"weights\"}}` is supported yet",
            started,
        )),
    }
}

/// Parses and checks a filter, so that a malformed one is a 400 naming the problem.
pub(crate) fn parse_filter(v: Option<Value>, started: Instant) -> Result<Option<Filter>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Filter::from_value(v)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("Wrong input: bad filter: {e}"), started)),
    }
}

/// 400 for something Ametist understands but cannot do yet.
pub(crate) fn not_supported(what: impl std::fmt::Display, started: Instant) -> ApiError {
    ApiError::bad_request(format!("Wrong input: {what}"), started)
}

pub(crate) fn collection(state: &AppState, name: &str, started: Instant) -> Result<Collection, ApiError> {
    state.db.collection(name).map_err(|e| ApiError::from_engine(e, started))
}

fn point_not_found(id: &PointId, started: Instant) -> ApiError {
    ApiError { status: StatusCode::NOT_FOUND, message: format!("Not found: No point with id {id} found"), started }
}

fn check_batch_len(state: &AppState, n: usize, started: Instant) -> Result<(), ApiError> {
    let max = state.config.limits.max_batch;
    if n > max {
        return Err(ApiError::bad_request(
            format!("Wrong input: {n} items in one request, more than limits.max_batch ({max})"),
            started,
        ));
    }
    Ok(())
}

fn merge_missing(all: &mut Vec<MissingPartition>, more: Vec<MissingPartition>) {
    for m in more {
        if !all.iter().any(|a| a.partition == m.partition) {
            all.push(m);
        }
    }
}

/// Qdrant's `UpdateResult`.
pub(crate) fn update_result(ack: WriteAck) -> Value {
    json!({
        "operation_id": ack.operation_id,
        "status": if ack.completed { "completed" } else { "acknowledged" },
    })
}

/// `{"points": points}`, moving the points in (`json!` would copy each of them).
fn points_answer(points: Vec<Value>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("points".into(), Value::Array(points));
    Value::Object(m)
}

/// Qdrant's `ScoredPoint`; `payload` and `vector` only when asked for.
fn scored_json(d: ScoredDoc, payload: &PayloadSelector, names: Option<&[String]>, spec: &CollectionSpec) -> Value {
    let mut v = json!({ "id": d.id, "version": d.version, "score": d.score });
    if let Some(p) = payload.apply(d.payload) {
        v["payload"] = Value::Object(p);
    }
    if let Some(vectors) = d.vectors {
        v["vector"] = vector_json(vectors, names, spec);
    }
    v
}

/// Qdrant's `Record`; `payload` and `vector` only when asked for.
pub(crate) fn record_json(
    r: Record,
    payload: &PayloadSelector,
    names: Option<&[String]>,
    spec: &CollectionSpec,
) -> Value {
    let mut v = json!({ "id": r.id });
    if let Some(o) = r.order_value {
        v["order_value"] = Value::Number(o);
    }
    if let Some(p) = payload.apply(r.payload) {
        v["payload"] = Value::Object(p);
    }
    if let Some(vectors) = r.vectors {
        v["vector"] = vector_json(vectors, names, spec);
    }
    v
}

/// A point's vectors as Qdrant answers them: a list for a collection whose only field is
/// the unnamed vector, else a map of the fields the point has (`""` for the unnamed one)
/// to lists and sparse objects; `names` (a `with_vector` list) keeps only those.
fn vector_json(mut vectors: NamedVectors, names: Option<&[String]>, spec: &CollectionSpec) -> Value {
    let wanted = |n: &str| names.is_none_or(|names| names.iter().any(|w| w == n));
    // A multivector field's value is its vectors concatenated; clients get the list.
    let value = |n: &str, v: Vec<f32>| match spec.dense_field(n) {
        Some(p) if p.multivector.is_some() => json!(v.chunks_exact(p.dim).collect::<Vec<_>>()),
        _ => json!(v),
    };
    let fields = spec.dense_fields();
    if fields.len() == 1 && fields.contains_key(UNNAMED) && spec.sparse_vectors.is_empty() {
        if let Some(v) = vectors.dense.remove(UNNAMED).filter(|_| wanted(UNNAMED)) {
            return value(UNNAMED, v);
        }
    }
    let mut m = serde_json::Map::new();
    for (n, v) in vectors.dense.into_iter().filter(|(n, _)| wanted(n)) {
        let v = value(&n, v);
        m.insert(n, v);
    }
    for (n, v) in vectors.sparse.into_iter().filter(|(n, _)| wanted(n)) {
        m.insert(n, json!({ "indices": v.indices, "values": v.values }));
    }
    Value::Object(m)
}
