//! Ametist-only routes about partitions and the actors that own them.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{json, Value};

use ametist_engine::messages::Fault;

use super::envelope::{parse_body, Answer, ApiError, ApiResult};
use super::{done, AppState};

/// `GET /collections/{name}/partitions/{id}/copies` (a cluster): each copy of the partition,
/// its state (`Active` in sync, `Dead` stale) and a digest of its points; copies in sync
/// hold equal digests.
pub async fn copies(State(state): State<AppState>, Path((name, id)): Path<(String, usize)>) -> ApiResult<Value> {
    let started = Instant::now();
    state.db.collection(&name).map_err(|e| ApiError::from_engine(e, started))?;
    let Some(cluster) = &state.cluster else {
        return Err(ApiError::bad_request("Wrong input: copies of partitions exist only in a cluster", started));
    };
    match cluster.copy_digests(&name, id).await {
        Some(v) => Ok(Answer::new(v, started)),
        None => {
            Err(ApiError::bad_request(format!("Wrong input: `{name}` has no partition {id} in the cluster"), started))
        }
    }
}

/// `GET /collections/{name}/partitions`: each partition's id, point count, actor state,
/// restart count, mailbox depth and index statistics. A partition whose storage cannot be
/// written (a full disk) is `"state": "read_only"` with a `storage_error`: the reason, since
/// when, how many retries of its log, and when the next one is.
pub async fn list(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Value> {
    let started = Instant::now();
    let c = state.db.collection(&name).map_err(|e| ApiError::from_engine(e, started))?;
    let parts = c.partitions().await.map_err(|e| ApiError::from_engine(e, started))?;
    let list: Vec<Value> = parts
        .into_iter()
        .map(|(info, stats)| {
            json!({
                "id": info.id,
                "state": info.state,
                "restarts": info.restarts,
                "points": stats.as_ref().map(|s| s.doc_count),
                "index": stats,
                "mailbox_depth": info.mailbox_depth,
                "mailbox_capacity": info.mailbox_capacity,
                "last_failure": info.last_failure,
                "stop_reason": info.stop_reason,
                "storage_error": info.storage_error,
            })
        })
        .collect();
    Ok(Answer::new(json!({ "partitions": list }), started))
}

/// Body of the fault-injection route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum FaultRequest {
    /// `{"panic": "message"}`
    Panic(String),
    /// `{"stall_ms": 500}`
    #[serde(rename = "stall_ms")]
    StallMs(u64),
}

/// `POST /collections/{name}/partitions/{id}/fault` (only with
/// `server.enable_fault_injection`): makes a partition panic or stall.
pub async fn fault(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, usize)>,
    body: Bytes,
) -> ApiResult<bool> {
    let started = Instant::now();
    let c = state.db.collection(&name).map_err(|e| ApiError::from_engine(e, started))?;
    let req: FaultRequest = parse_body(&body, started)?;
    let fault = match req {
        FaultRequest::Panic(msg) => Fault::Panic(msg),
        FaultRequest::StallMs(ms) => Fault::Stall(Duration::from_millis(ms)),
    };
    c.inject_fault(id, fault).await.map_err(|e| ApiError::from_engine(e, started))?;
    done(started)
}
