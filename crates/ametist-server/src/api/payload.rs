//! Payload routes in Qdrant's shapes: set, overwrite, delete keys, clear, and payload
//! indexes.
//!
//! The requests are parsed and checked here (ids or a valid filter, not both), so a
//! malformed one is a 400 naming its problem. Applying them needs the engine's payload
//! updates and payload indexes, which have not landed yet: until then each route answers
//! 400 "... is not supported yet". Each answers Qdrant's `UpdateResult` once wired.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;
use serde_json::Value;

use ametist_core::filter::Filter;
use ametist_core::{Payload, PointId};

use super::envelope::{parse_body, wait_param, ApiError, ApiResult};
use super::points::{collection, not_supported, parse_filter};
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
    #[serde(default, rename = "shard_key")]
    pub _shard_key: Option<Value>,
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
    #[serde(default, rename = "shard_key")]
    pub _shard_key: Option<Value>,
}

/// `POST /collections/{name}/points/payload/clear`: a `PointIdsList` or a `FilterSelector`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointsSelector {
    #[serde(default)]
    pub points: Option<Vec<PointId>>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default, rename = "shard_key")]
    pub _shard_key: Option<Value>,
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

/// Which points a payload write changes.
#[allow(dead_code)] // read once the engine's payload updates are wired in
pub enum Target {
    Ids(Vec<PointId>),
    Filter(Filter),
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
    let _wait = wait_param(query.as_deref(), started)?;
    let _c = collection(&state, &name, started)?;
    let req: SetPayload = parse_body(&body, started)?;
    let _target = target(req.points, req.filter, started)?;
    if req.key.is_some() {
        return Err(not_supported("setting a payload under a `key` is not supported yet", started));
    }
    let what = if overwrite { "overwriting payloads" } else { "setting payload keys" };
    Err(not_supported(format!("{what} is not supported yet"), started))
}

pub async fn delete_keys(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Value> {
    let started = Instant::now();
    let _wait = wait_param(query.as_deref(), started)?;
    let _c = collection(&state, &name, started)?;
    let req: DeletePayload = parse_body(&body, started)?;
    let _target = target(req.points, req.filter, started)?;
    Err(not_supported("deleting payload keys is not supported yet", started))
}

pub async fn clear(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Value> {
    let started = Instant::now();
    let _wait = wait_param(query.as_deref(), started)?;
    let _c = collection(&state, &name, started)?;
    let req: PointsSelector = parse_body(&body, started)?;
    let _target = target(req.points, req.filter, started)?;
    Err(not_supported("clearing payloads is not supported yet", started))
}

pub async fn create_index(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Value> {
    let started = Instant::now();
    let _wait = wait_param(query.as_deref(), started)?;
    let _c = collection(&state, &name, started)?;
    let req: CreateFieldIndex = parse_body(&body, started)?;
    if req.field_name.is_empty() {
        return Err(ApiError::bad_request("Wrong input: `field_name` is empty", started));
    }
    Err(not_supported("payload indexes are not supported yet", started))
}

pub async fn delete_index(
    State(state): State<AppState>,
    Path((name, _field)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult<Value> {
    let started = Instant::now();
    let _wait = wait_param(query.as_deref(), started)?;
    let _c = collection(&state, &name, started)?;
    Err(not_supported("payload indexes are not supported yet", started))
}
