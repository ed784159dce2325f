//! Collection snapshots in Qdrant's shapes: create, list, download, delete, recover.
//!
//! A snapshot is one file under `<data_dir>/snapshots/<collection>/` holding every
//! partition's image (points, payloads and the HNSW graph). Recovering replaces (or
//! creates) the collection from such a file, crash-safely; see `docs/storage.md`.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::envelope::{parse_body, Answer, ApiError, ApiResult};
use super::points::collection;
use super::AppState;

/// `POST /collections/{name}/snapshots`: `{name, creation_time, size}`.
pub async fn create(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let d = c.create_snapshot().await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(json!(d), started))
}

/// `GET /collections/{name}/snapshots`: every snapshot of the collection.
pub async fn list(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let all = c.list_snapshots().map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(json!(all), started))
}

/// `GET /collections/{name}/snapshots/{snapshot}`: the file itself.
pub async fn download(
    State(state): State<AppState>,
    Path((name, snapshot)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let path = c.snapshot_path(&snapshot).map_err(|e| not_found_or(e, &snapshot, started))?;
    // Snapshot files can be large: read them off the async runtime's threads.
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| snapshot_not_found(&snapshot, started))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{snapshot}\"")),
        ],
        Body::from(bytes),
    )
        .into_response())
}

/// `DELETE /collections/{name}/snapshots/{snapshot}`.
pub async fn delete(State(state): State<AppState>, Path((name, snapshot)): Path<(String, String)>) -> ApiResult<bool> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let deleted = c.delete_snapshot(&snapshot).map_err(|e| not_found_or(e, &snapshot, started))?;
    if !deleted {
        return Err(snapshot_not_found(&snapshot, started));
    }
    Ok(Answer::new(true, started))
}

#[derive(Debug, Deserialize)]
pub struct Recover {
    /// `file:///absolute/path`, a path on the server, or the name of one of this
    /// collection's snapshots.
    pub location: String,
    #[serde(default)]
    pub priority: Option<Value>,
    #[serde(default)]
    pub checksum: Option<String>,
}

/// `PUT /collections/{name}/snapshots/recover`: replaces (or creates) the collection from
/// a snapshot file on the server.
pub async fn recover(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<bool> {
    let started = Instant::now();
    let req: Recover = parse_body(&body, started)?;
    if req.location.starts_with("http://") || req.location.starts_with("https://") {
        return Err(ApiError::bad_request(
            "Wrong input: recovering from a URL is not supported; upload the file or give a path on the server",
            started,
        ));
    }
    let path = match req.location.strip_prefix("file://") {
        Some(p) => std::path::PathBuf::from(p),
        None if !req.location.contains('/') => match state.db.collection(&name) {
            Ok(c) => c.snapshot_path(&req.location).map_err(|e| not_found_or(e, &req.location, started))?,
            Err(_) => std::path::PathBuf::from(&req.location),
        },
        None => std::path::PathBuf::from(&req.location),
    };
    if !path.is_file() {
        return Err(ApiError::bad_request(format!("Wrong input: no snapshot file at {}", path.display()), started));
    }
    state.db.restore_collection(&name, &path).await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(true, started))
}

/// `POST /collections/{name}/snapshots/upload`: the snapshot file as the request body
/// (`application/octet-stream`); replaces (or creates) the collection from it.
pub async fn upload(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<bool> {
    let started = Instant::now();
    if body.is_empty() {
        return Err(ApiError::bad_request("Wrong input: the uploaded snapshot is empty", started));
    }
    let dir = tempdir_in(&state, started)?;
    let path = dir.join(format!("upload-{}.snapshot", std::process::id()));
    let (to, data) = (path.clone(), body.clone());
    tokio::task::spawn_blocking(move || std::fs::write(to, data))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|e| ApiError::from_engine(ametist_engine::EngineError::Internal(e), started))?;
    let result = state.db.restore_collection(&name, &path).await;
    let _ = std::fs::remove_file(&path);
    result.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(true, started))
}

fn tempdir_in(state: &AppState, started: Instant) -> Result<std::path::PathBuf, ApiError> {
    let dir = state.config.storage.data_dir.join(".uploads");
    std::fs::create_dir_all(&dir)
        .map_err(|e| ApiError::from_engine(ametist_engine::EngineError::Internal(e.to_string()), started))?;
    Ok(dir)
}

fn snapshot_not_found(name: &str, started: Instant) -> ApiError {
    ApiError { status: StatusCode::NOT_FOUND, message: format!("Not found: Snapshot {name} not found"), started }
}

/// Unknown snapshot names are 404 rather than the engine's generic bad input.
fn not_found_or(e: ametist_engine::EngineError, name: &str, started: Instant) -> ApiError {
    match e {
        ametist_engine::EngineError::InvalidInput(msg) if msg.contains("no snapshot") || msg.contains("not found") => {
            snapshot_not_found(name, started)
        }
        other => ApiError::from_engine(other, started),
    }
}
