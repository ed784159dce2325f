//! Qdrant's cluster-management routes that change where partitions live:
//! `POST /collections/{name}/cluster` (move, replicate, drop a copy, abort a transfer) and
//! `DELETE /cluster/peer/{id}` (drain a member, then remove it).
//!
//! Each operation becomes one committed metadata change (see `ametist_cluster::node`); a
//! transfer answers once it started, and `GET /collections/{name}/cluster` shows it in
//! `shard_transfers` until the new copy is in sync.

use std::time::{Duration, Instant};

use axum::http::StatusCode;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use serde::de::IgnoredAny;
use serde::Deserialize;

use ametist_cluster::CopyChange;

use super::collections::from_cluster;
use super::envelope::{parse_body, wait_param, Answer, ApiError, ApiResult};
use super::AppState;

/// Qdrant's `ClusterOperations`: one operation per request, named by its key. The ones
/// refused are refused by name; their bodies are not read.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClusterOperation {
    MoveShard(ShardTransfer),
    ReplicateShard(ShardTransfer),
    AbortTransfer(AbortTransfer),
    DropReplica(Replica),
    CreateShardingKey(IgnoredAny),
    DropShardingKey(IgnoredAny),
    RestartTransfer(IgnoredAny),
    StartResharding(IgnoredAny),
    AbortResharding(IgnoredAny),
    ReplicatePoints(IgnoredAny),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardTransfer {
    pub shard_id: usize,
    pub from_peer_id: u64,
    pub to_peer_id: u64,
    /// Only `snapshot`: a new copy is always made from its primary's image (then kept in
    /// sync by the primary's shipped records).
    #[serde(default)]
    pub method: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortTransfer {
    pub shard_id: usize,
    pub from_peer_id: u64,
    pub to_peer_id: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replica {
    pub shard_id: usize,
    pub peer_id: u64,
}

/// `POST /collections/{name}/cluster`.
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<bool> {
    let started = Instant::now();
    let _ = wait_param(query.as_deref(), started)?;
    let op: ClusterOperation = parse_body(&body, started)?;
    let Some(cluster) = state.cluster.as_ref() else {
        return Err(ApiError::bad_request(
            "Bad request: Distributed mode disabled: a single node holds every partition (start the nodes with \
             remoting enabled to move partitions)",
            started,
        ));
    };
    // The collection's own name, when `name` is an alias.
    let c = state.db.collection(&name).map_err(|e| ApiError::from_engine(e, started))?;
    let name = c.spec().name.clone();
    let change = match op {
        ClusterOperation::MoveShard(t) | ClusterOperation::ReplicateShard(t) if !snapshot_method(&t) => {
            return Err(ApiError::bad_request(
                format!(
                    "Wrong input: transfer method `{}` is not supported: Ametist makes a new copy from its primary's \
                     image (`snapshot`) and then ships it every write",
                    t.method.unwrap_or_default()
                ),
                started,
            ))
        }
        ClusterOperation::MoveShard(t) => {
            CopyChange::Move { partition: t.shard_id, from: t.from_peer_id, to: t.to_peer_id }
        }
        ClusterOperation::ReplicateShard(t) => {
            CopyChange::Replicate { partition: t.shard_id, from: t.from_peer_id, to: t.to_peer_id }
        }
        ClusterOperation::AbortTransfer(t) => {
            CopyChange::Abort { partition: t.shard_id, from: t.from_peer_id, to: t.to_peer_id }
        }
        ClusterOperation::DropReplica(r) => CopyChange::Drop { partition: r.shard_id, node: r.peer_id },
        ClusterOperation::CreateShardingKey(_) | ClusterOperation::DropShardingKey(_) => {
            return Err(ApiError::bad_request("Wrong input: shard keys are not yet supported in cluster mode", started))
        }
        ClusterOperation::RestartTransfer(_)
        | ClusterOperation::StartResharding(_)
        | ClusterOperation::AbortResharding(_)
        | ClusterOperation::ReplicatePoints(_) => {
            return Err(ApiError::bad_request(
                "Wrong input: restart_transfer, resharding and replicate_points are not supported: a collection \
                 keeps its partition count; move_shard, replicate_shard, drop_replica and abort_transfer are",
                started,
            ))
        }
    };
    cluster.change_copies(&name, change).await.map_err(|e| from_cluster(e, started))?;
    Ok(Answer::new(true, started))
}

fn snapshot_method(t: &ShardTransfer) -> bool {
    t.method.as_deref().is_none_or(|m| m == "snapshot")
}

/// How long `DELETE /cluster/peer/{id}` waits for the member to drain, unless `timeout`
/// says otherwise.
const DRAIN_PATIENCE_DEFAULT: Duration = Duration::from_secs(60);
const DRAIN_PATIENCE_MAX: Duration = Duration::from_secs(3600);

/// `DELETE /cluster/peer/{id}` (Qdrant's route): drains the member (its copies move to
/// the others) and then removes it from the cluster; answers `true` once it left. Query:
/// `timeout` (seconds to wait, default 60); `force=true` (Qdrant's "remove even if it holds
/// shards") is refused: a member always drains first, so no copy is lost.
pub async fn remove_peer(
    State(state): State<AppState>,
    Path(peer): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<bool> {
    let started = Instant::now();
    let peer: u64 = peer.parse().map_err(|_| {
        ApiError::bad_request(format!("Format error in path: peer id `{peer}` is not an integer"), started)
    })?;
    let mut patience = DRAIN_PATIENCE_DEFAULT;
    for pair in query.as_deref().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "timeout" => {
                let secs: u64 = v.parse().ok().filter(|&s| s > 0).ok_or_else(|| {
                    ApiError::bad_request(
                        format!(
                            "Format error in query string: timeout must be a positive number of seconds, got `{v}`"
                        ),
                        started,
                    )
                })?;
                patience = Duration::from_secs(secs).min(DRAIN_PATIENCE_MAX);
            }
            "force" if v == "false" => {}
            "force" => {
                return Err(ApiError::bad_request(
                    "Wrong input: force is not supported: a member is always drained first (its copies move to the \
                     other members) so that no copy is lost; remove it without force",
                    started,
                ))
            }
            other => {
                return Err(ApiError::bad_request(
                    format!("Format error in query string: unknown parameter `{other}` (timeout and force are known)"),
                    started,
                ))
            }
        }
    }
    let Some(cluster) = state.cluster.as_ref() else {
        return Err(ApiError::bad_request(
            "Bad request: Distributed mode disabled: there are no peers to remove",
            started,
        ));
    };
    if cluster.remove_peer(peer, patience).await.map_err(|e| from_cluster(e, started))? {
        return Ok(Answer::new(true, started));
    }
    Err(ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: format!(
            "Service unavailable: peer {peer} is still draining after {}s: its copies are moving to the other members \
             (GET /collections/{{name}}/cluster shows the transfers); it leaves the cluster once they have, and \
             repeating this request waits for that",
            patience.as_secs()
        ),
        started,
    })
}
