//! Payload routes in Qdrant's shapes: set, overwrite, delete keys, clear, and payload
//! indexes.
//!
//! The requests are parsed and checked here (ids or a valid filter, not both), so a
//! malformed one is a 400 naming its problem; the engine applies them to every point
//! named (which must exist) or matching. Each answers Qdrant's `UpdateResult`.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;
use serde_json::Value;

use ametist_core::payload_index::FieldType;
use ametist_core::{Payload, PointId};
use ametist_engine::collection::{Collection, PreparedWrite, Target};
use ametist_engine::messages::FilterAction;

use super::envelope::{parse_body, wait_param, Answer, ApiError, ApiResult};
use super::points::{apply, collection, not_supported, parse_filter};
use super::AppState;

/// `POST /collections/{name}/points/payload` (set keys) and `PUT` (overwrite).
#[allow(dead_code)] // some fields are read once the engine has the feature
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPayload {
    pub payload: Payload,
    #[serde(default)]
    pub points: Option<Vec<PointId>>,
    #[serde(default)]
    pub filter: Option<Value>,
    /// Sets the payload under this (dot-path) key instead of at the top level.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

/// `POST /collections/{name}/points/payload/delete`.
#[allow(dead_code)] // some fields are read once the engine has the feature
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletePayload {
    pub keys: Vec<String>,
    #[serde(default)]
    pub points: Option<Vec<PointId>>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

/// `POST /collections/{name}/points/payload/clear`: a `PointIdsList` or a `FilterSelector`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointsSelector {
    #[serde(default)]
    pub points: Option<Vec<PointId>>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

/// `PUT /collections/{name}/index`.
#[allow(dead_code)] // some fields are read once the engine has the feature
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateFieldIndex {
    pub field_name: String,
    /// `"keyword"`, `"integer"`, ... or an object with `type` and its options.
    #[serde(default)]
    pub field_schema: Option<Value>,
}

fn target(points: Option<Vec<PointId>>, filter: Option<Value>, started: Instant) -> Result<Target, ApiError> {
    match (points, parse_filter(filter, started)?) {
        (Some(ids), None) if !ids.is_empty() => Ok(Target::Ids(ids)),
        (Some(_), None) => Err(ApiError::bad_request("Wrong input: `points` is empty", started)),
        (None, Some(f)) => Ok(Target::Filter(f)),
        _ => Err(ApiError::bad_request(
            "Format error in JSON body: send either `points` (a list of ids) or `filter`",
            started,
        )),
    }
}

pub async fn set(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Value> {
    write_payload(state, name, query, body, false).await
}

pub async fn overwrite(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Value> {
    write_payload(state, name, query, body, true).await
}

async fn write_payload(
    state: AppState,
    name: String,
    query: Option<String>,
    body: Bytes,
    overwrite: bool,
) -> ApiResult<Value> {
    let started = Instant::now();
    let wait = wait_param(query.as_deref(), started)?;
    let c = collection(&state, &name, started)?;
    let req: SetPayload = parse_body(&body, started)?;
    set_payload(&c, req, overwrite, wait, started).await
}

/// Sets payload keys, or replaces whole payloads with `overwrite` (REST, and gRPC's
/// `SetPayload` and `OverwritePayload`).
pub(crate) async fn set_payload(
    c: &Collection,
    req: SetPayload,
    overwrite: bool,
    wait: bool,
    started: Instant,
) -> ApiResult<Value> {
    let (c, w) = prepare_set(c, req, overwrite, started)?;
    apply(&c, w, wait, started).await
}

/// Checks and prepares `SetPayload` (set keys, or overwrite the whole payload).
pub(crate) fn prepare_set(
    c: &Collection,
    req: SetPayload,
    overwrite: bool,
    started: Instant,
) -> Result<(Collection, PreparedWrite), ApiError> {
    let c = super::shards::scoped(c, req.shard_key, started)?;
    super::strict::check_update_filter(&c, req.filter.as_ref(), started)?;
    let target = target(req.points, req.filter, started)?;
    if req.key.is_some() {
        return Err(not_supported("setting a payload under a `key` is not supported yet", started));
    }
    let action =
        if overwrite { FilterAction::OverwritePayload(req.payload) } else { FilterAction::SetPayload(req.payload) };
    prepare(c, target, action, started)
}

pub async fn delete_keys(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Value> {
    let started = Instant::now();
    let wait = wait_param(query.as_deref(), started)?;
    let c = collection(&state, &name, started)?;
    let req: DeletePayload = parse_body(&body, started)?;
    delete_payload_keys(&c, req, wait, started).await
}

/// Removes payload keys (REST and gRPC `DeletePayload`).
pub(crate) async fn delete_payload_keys(
    c: &Collection,
    req: DeletePayload,
    wait: bool,
    started: Instant,
) -> ApiResult<Value> {
    let (c, w) = prepare_delete_keys(c, req, started)?;
    apply(&c, w, wait, started).await
}

/// Checks and prepares `DeletePayload`.
pub(crate) fn prepare_delete_keys(
    c: &Collection,
    req: DeletePayload,
    started: Instant,
) -> Result<(Collection, PreparedWrite), ApiError> {
    let c = super::shards::scoped(c, req.shard_key, started)?;
    super::strict::check_update_filter(&c, req.filter.as_ref(), started)?;
    let target = target(req.points, req.filter, started)?;
    prepare(c, target, FilterAction::DeletePayload(req.keys), started)
}

pub async fn clear(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Value> {
    let started = Instant::now();
    let wait = wait_param(query.as_deref(), started)?;
    let c = collection(&state, &name, started)?;
    let req: PointsSelector = parse_body(&body, started)?;
    clear_payload(&c, req, wait, started).await
}

/// Clears whole payloads (REST and gRPC `ClearPayload`).
pub(crate) async fn clear_payload(
    c: &Collection,
    req: PointsSelector,
    wait: bool,
    started: Instant,
) -> ApiResult<Value> {
    let (c, w) = prepare_clear(c, req, started)?;
    apply(&c, w, wait, started).await
}

/// Checks and prepares a payload clear (`PointsSelector`).
pub(crate) fn prepare_clear(
    c: &Collection,
    req: PointsSelector,
    started: Instant,
) -> Result<(Collection, PreparedWrite), ApiError> {
    let c = super::shards::scoped(c, req.shard_key, started)?;
    super::strict::check_update_filter(&c, req.filter.as_ref(), started)?;
    let target = target(req.points, req.filter, started)?;
    prepare(c, target, FilterAction::ClearPayload, started)
}

fn prepare(
    c: Collection,
    target: Target,
    action: FilterAction,
    started: Instant,
) -> Result<(Collection, PreparedWrite), ApiError> {
    let w = c.prepare_update_payload(target, action).map_err(|e| ApiError::from_engine(e, started))?;
    Ok((c, w))
}

pub async fn create_index(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Value> {
    let started = Instant::now();
    let _wait = wait_param(query.as_deref(), started)?;
    let c = collection(&state, &name, started)?;
    let req: CreateFieldIndex = parse_body(&body, started)?;
    create_field_index(&state, &name, &c, req, started).await
}

/// Makes a payload index (REST and gRPC `CreateFieldIndex`); done when it answers.
pub(crate) async fn create_field_index(
    state: &AppState,
    name: &str,
    c: &Collection,
    req: CreateFieldIndex,
    started: Instant,
) -> ApiResult<Value> {
    if req.field_name.is_empty() {
        return Err(ApiError::bad_request("Wrong input: `field_name` is empty", started));
    }
    super::strict::check_new_index(c, &req.field_name, started)?;
    // On a cluster the definition goes into the cluster's metadata first, so that every
    // node knows it (see `ClusterNode::set_index`); this node then builds the index.
    let define = |def: ametist_cluster::IndexDef| async {
        match &state.cluster {
            Some(cluster) => cluster
                .set_index(name, &req.field_name, Some(def))
                .await
                .map_err(|e| super::collections::from_cluster(e, started)),
            None => Ok(()),
        }
    };
    if let Some(config) = text_config(req.field_schema.as_ref(), started)? {
        // Checked before the cluster records it, so that a bad config changes nothing.
        ametist_core::text::TextIndex::new(config.clone())
            .map_err(|e| ApiError::bad_request(format!("Wrong input: {e}"), started))?;
        define(ametist_cluster::IndexDef::Text(config.clone())).await?;
        c.create_text_index(&req.field_name, config).await.map_err(|e| ApiError::from_engine(e, started))?;
        return Ok(Answer::new(serde_json::json!({"operation_id": 0, "status": "completed"}), started));
    }
    let kind = field_type(req.field_schema.as_ref(), started)?;
    define(ametist_cluster::IndexDef::Field(kind)).await?;
    // Building the index finishes before the answer, so `wait` makes no difference.
    c.create_field_index(&req.field_name, kind).await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(serde_json::json!({"operation_id": 0, "status": "completed"}), started))
}

pub async fn delete_index(
    State(state): State<AppState>,
    Path((name, field)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult<Value> {
    let started = Instant::now();
    let _wait = wait_param(query.as_deref(), started)?;
    let c = collection(&state, &name, started)?;
    delete_field_index(&state, &name, &c, &field, started).await
}

/// Drops a payload index (REST and gRPC `DeleteFieldIndex`).
pub(crate) async fn delete_field_index(
    state: &AppState,
    name: &str,
    c: &Collection,
    field: &str,
    started: Instant,
) -> ApiResult<Value> {
    if let Some(cluster) = &state.cluster {
        cluster.set_index(name, field, None).await.map_err(|e| super::collections::from_cluster(e, started))?;
    }
    c.drop_field_index(field).await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(serde_json::json!({"operation_id": 0, "status": "completed"}), started))
}

/// Reads `field_schema`: a type name or `{"type": name, ...}`. Ametist indexes keyword,
/// integer, float, bool, datetime, uuid and geo fields (text goes to `text_config`).
fn field_type(schema: Option<&Value>, started: Instant) -> Result<FieldType, ApiError> {
    let name = match schema {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Object(m)) => m.get("type").and_then(Value::as_str).unwrap_or(""),
        None | Some(Value::Null) => {
            return Err(ApiError::bad_request("Wrong input: `field_schema` is required (e.g. \"keyword\")", started))
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!("Wrong input: `field_schema` {other} is not a type"), started))
        }
    };
    let kind = match name {
        "keyword" => FieldType::Keyword,
        "integer" => FieldType::Integer,
        "float" => FieldType::Float,
        "bool" => FieldType::Bool,
        "datetime" => FieldType::Datetime,
        "uuid" => FieldType::Uuid,
        "geo" => FieldType::Geo,
        "text" => return Err(not_supported(format!("payload index type `{name}` is not supported yet"), started)),
        other => {
            return Err(ApiError::bad_request(format!("Wrong input: unknown payload index type `{other}`"), started))
        }
    };
    if let Some(Value::Object(params)) = schema {
        index_params(kind, params, started)?;
    }
    Ok(kind)
}

/// Checks the params object of a datetime, uuid or geo index (Qdrant's
/// `DatetimeIndexParams`, `UuidIndexParams`, `GeoIndexParams`). Their options but one only
/// tune Qdrant's internals (`on_disk`, `memory`: where Qdrant stores the index;
/// `is_principal`, `is_tenant`: its storage layout; `enable_hnsw`: its payload-aware graph
/// links), and Ametist keeps every index in memory and plans from its counts, so they are
/// accepted and change nothing. `nested` (one index entry per array element) changes what
/// a filter matches and is not implemented: it is refused by name, as is any unknown key.
/// The older types' params are left as they were (ignored), so existing clients keep working.
fn index_params(kind: FieldType, params: &serde_json::Map<String, Value>, started: Instant) -> Result<(), ApiError> {
    let allowed: &[&str] = match kind {
        FieldType::Datetime => &["type", "on_disk", "memory", "enable_hnsw", "is_principal"],
        FieldType::Uuid => &["type", "on_disk", "memory", "enable_hnsw", "is_tenant"],
        FieldType::Geo => &["type", "on_disk", "memory", "enable_hnsw"],
        FieldType::Keyword | FieldType::Integer | FieldType::Float | FieldType::Bool => return Ok(()),
    };
    let name = params.get("type").and_then(Value::as_str).unwrap_or("");
    for (k, v) in params {
        if k == "nested" {
            return Err(not_supported(
                "field_schema: `nested` (an index entry per array element) is not supported yet",
                started,
            ));
        }
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad_request(
                format!(
                    "Wrong input: field_schema: `{k}` is not a parameter of a `{name}` index (known: {})",
                    allowed[1..].join(", ")
                ),
                started,
            ));
        }
        let fits = match k.as_str() {
            "type" => true,
            "memory" => v.is_string() || v.is_null(),
            _ => v.is_boolean() || v.is_null(),
        };
        if !fits {
            let want = if k == "memory" { "a string" } else { "a boolean" };
            return Err(ApiError::bad_request(
                format!("Wrong input: field_schema: `{k}` must be {want}, got {v}"),
                started,
            ));
        }
    }
    Ok(())
}

/// A full-text index schema (`"text"` or Qdrant's `TextIndexParams`) as a BM25 index
/// configuration; `None` for other types. `stemmer: {"type": "snowball", "language"}`,
/// `stopwords` (a language or `{"languages", "custom"}`), `lowercase`, `min_token_len`
/// and `max_token_len` are honoured; Ametist-only `k1` and `b` tune BM25.
fn text_config(
    schema: Option<&Value>,
    started: Instant,
) -> Result<Option<ametist_core::text::TextIndexConfig>, ApiError> {
    use ametist_core::text::{Bm25Params, TextIndexConfig, TokenizerConfig};
    let bad = |m: String| ApiError::bad_request(format!("Wrong input: field_schema: {m}"), started);
    let params = match schema {
        Some(Value::String(s)) if s == "text" => return Ok(Some(TextIndexConfig::default())),
        Some(Value::Object(m)) if m.get("type").and_then(Value::as_str) == Some("text") => m,
        _ => return Ok(None),
    };
    let mut tokenizer = TokenizerConfig::default();
    let mut bm25 = Bm25Params::default();
    for (k, v) in params {
        match k.as_str() {
            "type" | "tokenizer" | "on_disk" | "phrase_matching" | "ascii_folding" => {}
            "lowercase" => {
                tokenizer.lowercase = v.as_bool().ok_or_else(|| bad("lowercase must be a boolean".into()))?
            }
            "min_token_len" | "max_token_len" => {
                let n = v.as_u64().ok_or_else(|| bad(format!("{k} must be a number")))? as usize;
                if k == "min_token_len" {
                    tokenizer.min_token_len = n;
                } else {
                    tokenizer.max_token_len = n;
                }
            }
            "stopwords" => {
                tokenizer.stopwords =
                    Some(serde_json::from_value(v.clone()).map_err(|e| bad(format!("stopwords: {e}")))?)
            }
            "stemmer" => {
                let lang = v.get("language").cloned().ok_or_else(|| bad("stemmer needs a `language`".into()))?;
                tokenizer.stemmer = Some(serde_json::from_value(lang).map_err(|e| bad(format!("stemmer: {e}")))?);
            }
            "k1" => bm25.k1 = v.as_f64().ok_or_else(|| bad("k1 must be a number".into()))? as f32,
            "b" => bm25.b = v.as_f64().ok_or_else(|| bad("b must be a number".into()))? as f32,
            other => return Err(bad(format!("unknown text index option `{other}`"))),
        }
    }
    let config = TextIndexConfig { tokenizer, bm25 };
    config.validate().map_err(|e| bad(e.to_string()))?;
    Ok(Some(config))
}
