//! Shard keys (Qdrant's user-defined sharding): the routes that create, list and delete
//! them, and the `shard_key` selector every point route reads.
//!
//! A collection created with `sharding_method: custom` starts without partitions; each
//! shard key brings its own (`shards_number`, unset: the collection's `shard_number`). A
//! write names its key and its points live only in that key's partitions; a read with a
//! key sees only its points, a read without one sees every key's. The engine does the
//! routing ([`Collection::with_shard_keys`]); this module turns Qdrant's JSON into keys.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;
use serde_json::{json, Value};

use ametist_engine::collection::Collection;
use ametist_engine::spec::{ShardKey, ShardingMethod};

use super::envelope::{parse_body, wait_param, Answer, ApiError, ApiResult};
use super::AppState;

/// `PUT /collections/{name}/shards`: Qdrant's `CreateShardingKey`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateShardKey {
    pub shard_key: ShardKey,
    #[serde(default)]
    pub shards_number: Option<usize>,
    /// Only 1 (one replica per partition, as every partition here).
    #[serde(default)]
    pub replication_factor: Option<usize>,
    /// Peers to place the key's partitions on: a cluster setting, refused on one node.
    #[serde(default)]
    pub placement: Option<Vec<u64>>,
    #[serde(default)]
    pub initial_state: Option<String>,
}

/// `POST /collections/{name}/shards/delete`: Qdrant's `DropShardingKey`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropShardKey {
    pub shard_key: ShardKey,
}

/// Shard keys live in the collection's settings on this node; a cluster's metadata does
/// not carry them yet, so on a cluster they are refused rather than kept on one node only.
fn refuse_on_cluster(state: &AppState, started: Instant) -> Result<(), ApiError> {
    if state.cluster.is_some() {
        return Err(ApiError::bad_request("Wrong input: shard keys are not yet supported in cluster mode", started));
    }
    Ok(())
}

pub async fn create(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<bool> {
    let started = Instant::now();
    let _ = wait_param(query.as_deref(), started)?;
    let c = state.db.collection(&name).map_err(|e| ApiError::from_engine(e, started))?;
    let req: CreateShardKey = parse_body(&body, started)?;
    create_shard_key(&state, &c, req, started).await
}

/// Creates a shard key and its partitions (REST and gRPC `CreateShardKey`).
pub(crate) async fn create_shard_key(
    state: &AppState,
    c: &Collection,
    req: CreateShardKey,
    started: Instant,
) -> ApiResult<bool> {
    refuse_on_cluster(state, started)?;
    if let Some(r) = req.replication_factor.filter(|r| *r != 1) {
        return Err(ApiError::bad_request(
            format!("Wrong input: replication_factor = {r} is not supported yet (only 1 is)"),
            started,
        ));
    }
    if req.placement.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(ApiError::bad_request(
            "Wrong input: placement is not supported yet (a single node holds every partition)",
            started,
        ));
    }
    if let Some(s) = req.initial_state.as_deref().filter(|s| *s != "Active") {
        return Err(ApiError::bad_request(
            format!("Wrong input: initial_state = \"{s}\" is not supported yet (partitions start Active)"),
            started,
        ));
    }
    c.create_shard_key(req.shard_key, req.shards_number).await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(true, started))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<bool> {
    let started = Instant::now();
    let _ = wait_param(query.as_deref(), started)?;
    let c = state.db.collection(&name).map_err(|e| ApiError::from_engine(e, started))?;
    let req: DropShardKey = parse_body(&body, started)?;
    delete_shard_key(&state, &c, req, started).await
}

/// Deletes a shard key and its points (REST and gRPC `DeleteShardKey`); 404 when absent.
pub(crate) async fn delete_shard_key(
    state: &AppState,
    c: &Collection,
    req: DropShardKey,
    started: Instant,
) -> ApiResult<bool> {
    refuse_on_cluster(state, started)?;
    if !c.delete_shard_key(&req.shard_key).await.map_err(|e| ApiError::from_engine(e, started))? {
        return Err(ApiError {
            status: axum::http::StatusCode::NOT_FOUND,
            message: format!("Not found: Shard key {} does not exist", req.shard_key),
            started,
        });
    }
    Ok(Answer::new(true, started))
}

/// `GET /collections/{name}/shards`: Qdrant's `ShardKeysResponse` (`shard_keys` is null
/// for a collection without custom sharding).
pub async fn list(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Value> {
    let started = Instant::now();
    let c = state.db.collection(&name).map_err(|e| ApiError::from_engine(e, started))?;
    list_shard_keys(&c, started)
}

/// A collection's shard keys (REST and gRPC `ListShardKeys`): `{"shard_keys": [{key}] | null}`.
pub(crate) fn list_shard_keys(c: &Collection, started: Instant) -> ApiResult<Value> {
    let keys = match c.settings().sharding_method {
        ShardingMethod::Custom => json!(c.shard_keys().into_iter().map(|k| json!({ "key": k })).collect::<Vec<_>>()),
        ShardingMethod::Auto => Value::Null,
    };
    Ok(Answer::new(json!({ "shard_keys": keys }), started))
}

/// Qdrant's `ShardKeySelector`: a key, a list of keys, or `{"target", "fallback"}` (the
/// target when it exists, else the fallback). `None` (or null) selects every key.
pub fn parse_selector(
    c: &Collection,
    selector: Option<Value>,
    started: Instant,
) -> Result<Option<Vec<ShardKey>>, ApiError> {
    let bad = |what: String| ApiError::bad_request(format!("Format error in JSON body: shard_key: {what}"), started);
    let one = |v: Value| -> Result<ShardKey, ApiError> {
        serde_json::from_value(v.clone())
            .map_err(|_| bad(format!("a shard key is a string or an unsigned integer, got {v}")))
    };
    match selector {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items.into_iter().map(one).collect::<Result<_, _>>()?)),
        Some(Value::Object(mut m)) => {
            let (Some(target), Some(fallback)) = (m.remove("target"), m.remove("fallback")) else {
                return Err(bad("an object selector has `target` and `fallback`".into()));
            };
            if let Some(k) = m.keys().next() {
                return Err(bad(format!("unknown field `{k}` (expected `target` and `fallback`)")));
            }
            let (target, fallback) = (one(target)?, one(fallback)?);
            Ok(Some(vec![if c.shard_keys().contains(&target) { target } else { fallback }]))
        }
        Some(v) => Ok(Some(vec![one(v)?])),
    }
}

/// `c` seen through the request's `shard_key` selector (see [`parse_selector`]).
pub fn scoped(c: &Collection, selector: Option<Value>, started: Instant) -> Result<Collection, ApiError> {
    let keys = parse_selector(c, selector, started)?;
    c.with_shard_keys(keys).map_err(|e| ApiError::from_engine(e, started))
}
