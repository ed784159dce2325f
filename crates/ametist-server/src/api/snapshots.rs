//! Collection snapshots in Qdrant's shapes: create, list, download, delete, recover.
//!
//! A snapshot is one file under `<data_dir>/snapshots/<collection>/` holding every
//! partition's image (points, payloads and the HNSW graph). Recovering replaces (or
//! creates) the collection from such a file, crash-safely; see `docs/storage.md`.

use std::path::PathBuf;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, RawQuery, Request, State};
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
    /// Qdrant's replica priority; with a single copy of every partition every value means
    /// the same, so it is only checked.
    #[serde(default)]
    pub priority: Option<Value>,
    /// A SHA-256 the snapshot must have: Ametist does not compute SHA-256 (its files carry
    /// CRC-32C checksums, verified on every read), so a request that asks for this check
    /// is refused rather than answered as if the check had been made.
    #[serde(default)]
    pub checksum: Option<String>,
}

/// Refuses what `Recover` (and the upload's query string) may carry but Ametist cannot
/// honour: an unknown priority, or a SHA-256 check it does not perform.
fn check_recover_options(priority: Option<&str>, checksum: Option<&str>, started: Instant) -> Result<(), ApiError> {
    if let Some(p) = priority.filter(|p| !matches!(*p, "snapshot" | "replica" | "no_sync")) {
        return Err(ApiError::bad_request(
            format!("Wrong input: unknown snapshot priority `{p}` (snapshot, replica or no_sync)"),
            started,
        ));
    }
    if checksum.is_some() {
        return Err(ApiError::bad_request(
            "Wrong input: SHA-256 `checksum` verification is not supported; snapshot files carry CRC-32C \
             checksums that are always verified, so leave it out",
            started,
        ));
    }
    Ok(())
}

/// `PUT /collections/{name}/snapshots/recover`: replaces (or creates) the collection from
/// a snapshot file on the server.
pub async fn recover(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<bool> {
    let started = Instant::now();
    let req: Recover = parse_body(&body, started)?;
    check_recover_options(req.priority.as_ref().and_then(Value::as_str), req.checksum.as_deref(), started)?;
    if req.priority.as_ref().is_some_and(|p| !p.is_string() && !p.is_null()) {
        return Err(ApiError::bad_request("Wrong input: `priority` must be a string", started));
    }
    if req.location.starts_with("http://") || req.location.starts_with("https://") {
        return Err(ApiError::bad_request(
            "Wrong input: recovering from a URL is not supported; upload the file or give a path on the server",
            started,
        ));
    }
    let path = recover_path(&state, &name, &req.location, started)?;
    state.db.restore_collection(&name, &path).await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(true, started))
}

/// The file a recover `location` names, if the server may read it: a snapshot name (one of
/// the collection's own snapshots), or a path (`file://` or not) to a file inside the
/// snapshots directory or one of `storage.recover_from_dirs`. Anything else is refused
/// with the same message whether or not it exists, so that the answer tells nothing about
/// files outside those directories.
fn recover_path(state: &AppState, name: &str, location: &str, started: Instant) -> Result<PathBuf, ApiError> {
    let snapshots_root = state.config.storage.data_dir.join("snapshots");
    let raw = location.strip_prefix("file://").unwrap_or(location);
    if !raw.contains('/') {
        // A bare name: one of this collection's snapshots.
        return ametist_engine::snapshots::path_of(&snapshots_root.join(name), raw)
            .map_err(|e| not_found_or(e, raw, started));
    }
    let refused = || {
        ApiError::bad_request(
            format!(
                "Wrong input: `location` must be a snapshot file in the snapshots directory or in one of \
                 storage.recover_from_dirs; {location} is not one the server may read"
            ),
            started,
        )
    };
    let wanted = std::path::Path::new(raw);
    // `..` could climb out of an allowed directory before the file is resolved.
    if !wanted.is_absolute() || wanted.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(refused());
    }
    // Resolved (symbolic links followed) on both sides, so a link inside an allowed
    // directory cannot point outside it.
    let resolved = std::fs::canonicalize(wanted).map_err(|_| refused())?;
    let allowed = std::iter::once(&snapshots_root)
        .chain(state.config.storage.recover_from_dirs.iter())
        .filter_map(|d| std::fs::canonicalize(d).ok())
        .any(|d| resolved.starts_with(&d));
    if !allowed || !resolved.is_file() {
        return Err(refused());
    }
    Ok(resolved)
}

/// `POST /collections/{name}/snapshots/upload`: the snapshot file as a multipart form
/// (field `snapshot`, what qdrant-client's `recover_from_uploaded_snapshot` sends), streamed
/// to a temporary file chunk by chunk, or as the raw request body
/// (`application/octet-stream`). Replaces (or creates) the collection from it.
pub async fn upload(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> ApiResult<bool> {
    let started = Instant::now();
    let param = |key: &str| {
        query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=').map(str::to_string))
    };
    check_recover_options(param("priority").as_deref(), param("checksum").as_deref(), started)?;
    let dir = tempdir_in(&state, started)?;
    // Unique per upload: two concurrent uploads must not share a file.
    static UPLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = UPLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("upload-{}-{n}.snapshot", std::process::id()));
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let written = if is_multipart {
        let multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| ApiError::bad_request(format!("Format error in multipart body: {e}"), started))?;
        stream_snapshot_field(multipart, &path, started).await
    } else {
        stream_body(request.into_body(), &path, started).await
    };
    let result = match written {
        Ok(0) => Err(ApiError::bad_request("Wrong input: the uploaded snapshot is empty", started)),
        Ok(_) => state.db.restore_collection(&name, &path).await.map_err(|e| ApiError::from_engine(e, started)),
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(&path);
    result?;
    Ok(Answer::new(true, started))
}

/// Writes the `snapshot` field of a multipart form to `path` as it arrives; returns the
/// bytes written. Other fields are skipped; a form without the field is refused.
async fn stream_snapshot_field(mut form: Multipart, path: &std::path::Path, started: Instant) -> Result<u64, ApiError> {
    let bad = |e: String| ApiError::bad_request(format!("Format error in multipart body: {e}"), started);
    while let Some(mut field) = form.next_field().await.map_err(|e| bad(e.to_string()))? {
        if field.name() != Some("snapshot") {
            continue;
        }
        let mut sink = FileSink::create(path);
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if !sink.push(chunk).await {
                        break; // the writer failed; its error is reported by finish
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    drop(sink.finish(started).await);
                    return Err(bad(e.to_string()));
                }
            }
        }
        return sink.finish(started).await;
    }
    Err(bad("no `snapshot` field".into()))
}

/// Writes a raw request body (`application/octet-stream`) to `path` as it arrives.
async fn stream_body(mut body: Body, path: &std::path::Path, started: Instant) -> Result<u64, ApiError> {
    use http_body_util::BodyExt as _;
    let mut sink = FileSink::create(path);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    if !sink.push(data).await {
                        break;
                    }
                }
            }
            Err(e) => {
                drop(sink.finish(started).await);
                return Err(ApiError::bad_request(format!("Format error in body: {e}"), started));
            }
        }
    }
    sink.finish(started).await
}

/// A file written by a blocking thread from chunks sent to it, so that the file I/O of an
/// upload of any size stays off the async threads and only a few chunks are in memory.
struct FileSink {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    writer: tokio::task::JoinHandle<std::io::Result<u64>>,
}

impl FileSink {
    fn create(path: &std::path::Path) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let to = path.to_path_buf();
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            use std::io::Write as _;
            let mut out = std::io::BufWriter::new(std::fs::File::create(to)?);
            let mut total = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                out.write_all(&chunk)?;
                total += chunk.len() as u64;
            }
            out.flush()?;
            Ok(total)
        });
        FileSink { tx, writer }
    }

    /// Hands a chunk to the writer; false when the writer has failed.
    async fn push(&mut self, chunk: Bytes) -> bool {
        self.tx.send(chunk).await.is_ok()
    }

    /// Waits for the writer; the bytes written.
    async fn finish(self, started: Instant) -> Result<u64, ApiError> {
        drop(self.tx);
        let internal = |e: String| ApiError::from_engine(ametist_engine::EngineError::Internal(e), started);
        self.writer.await.map_err(|e| internal(e.to_string()))?.map_err(|e| internal(e.to_string()))
    }
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

// ----- full-storage snapshots (`/snapshots`) -----------------------------------------------

/// `POST /snapshots`: snapshots every collection and the aliases into one file.
pub async fn create_full(State(state): State<AppState>) -> ApiResult<Value> {
    let started = Instant::now();
    if state.cluster.is_some() {
        return Err(ApiError::bad_request(
            "Wrong input: full-storage snapshots are not supported in cluster mode yet",
            started,
        ));
    }
    let d = ametist_engine::full_snapshots::create(&state.db).await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(json!(d), started))
}

/// `GET /snapshots`: the full-storage snapshots.
pub async fn list_full(State(state): State<AppState>) -> ApiResult<Value> {
    let started = Instant::now();
    let all = ametist_engine::full_snapshots::list(&state.db).map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(json!(all), started))
}

/// `GET /snapshots/{snapshot}`: the file.
pub async fn download_full(State(state): State<AppState>, Path(snapshot): Path<String>) -> Result<Response, ApiError> {
    let started = Instant::now();
    let path = ametist_engine::full_snapshots::path_of(&state.db, &snapshot)
        .map_err(|e| not_found_or(e, &snapshot, started))?;
    send_file(path, &snapshot, started).await
}

/// `DELETE /snapshots/{snapshot}`.
pub async fn delete_full(State(state): State<AppState>, Path(snapshot): Path<String>) -> ApiResult<bool> {
    let started = Instant::now();
    let deleted = ametist_engine::full_snapshots::delete(&state.db, &snapshot)
        .map_err(|e| not_found_or(e, &snapshot, started))?;
    if !deleted {
        return Err(snapshot_not_found(&snapshot, started));
    }
    Ok(Answer::new(true, started))
}

/// A snapshot file as the answer, read off the async runtime's threads.
async fn send_file(path: PathBuf, name: &str, started: Instant) -> Result<Response, ApiError> {
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| snapshot_not_found(name, started))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        Body::from(bytes),
    )
        .into_response())
}

// ----- shard snapshots (`/collections/{name}/shards/{shard_id}/snapshots`) ----------------
//
// A shard is a partition; its snapshot is the partition's image (points, payloads, graph),
// kept in `<data_dir>/snapshots/<collection>/shards/<id>/`.

fn shard_id(raw: &str, started: Instant) -> Result<usize, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("Wrong input: shard id must be a number, got `{raw}`"), started))
}

/// `POST /collections/{name}/shards/{shard_id}/snapshots`.
pub async fn create_shard(
    State(state): State<AppState>,
    Path((name, shard)): Path<(String, String)>,
) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let d = c.create_shard_snapshot(shard_id(&shard, started)?).await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(json!(d), started))
}

/// `GET /collections/{name}/shards/{shard_id}/snapshots`.
pub async fn list_shard(
    State(state): State<AppState>,
    Path((name, shard)): Path<(String, String)>,
) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let all = c.list_shard_snapshots(shard_id(&shard, started)?).map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(json!(all), started))
}

/// `GET /collections/{name}/shards/{shard_id}/snapshots/{snapshot}`: the file.
pub async fn download_shard(
    State(state): State<AppState>,
    Path((name, shard, snapshot)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let path = c
        .shard_snapshot_path(shard_id(&shard, started)?, &snapshot)
        .map_err(|e| not_found_or(e, &snapshot, started))?;
    send_file(path, &snapshot, started).await
}

/// `DELETE /collections/{name}/shards/{shard_id}/snapshots/{snapshot}`.
pub async fn delete_shard(
    State(state): State<AppState>,
    Path((name, shard, snapshot)): Path<(String, String, String)>,
) -> ApiResult<bool> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let deleted = c
        .delete_shard_snapshot(shard_id(&shard, started)?, &snapshot)
        .map_err(|e| not_found_or(e, &snapshot, started))?;
    if !deleted {
        return Err(snapshot_not_found(&snapshot, started));
    }
    Ok(Answer::new(true, started))
}

/// Qdrant's `ShardSnapshotRecover`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRecover {
    pub location: String,
    #[serde(default)]
    pub priority: Option<Value>,
    #[serde(default)]
    pub checksum: Option<String>,
    /// For fetching from a URL, which Ametist does not do: refused when set.
    #[serde(default)]
    pub api_key: Option<String>,
}

/// `PUT /collections/{name}/shards/{shard_id}/snapshots/recover`: `{"location"}` is one of
/// the shard's snapshot names, or a path in the snapshots directory or
/// `storage.recover_from_dirs`; the partition's points are replaced by the image's (which
/// must belong to this shard).
pub async fn recover_shard(
    State(state): State<AppState>,
    Path((name, shard)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<bool> {
    let started = Instant::now();
    let req: ShardRecover = parse_body(&body, started)?;
    check_recover_options(req.priority.as_ref().and_then(Value::as_str), req.checksum.as_deref(), started)?;
    if req.priority.as_ref().is_some_and(|p| !p.is_string() && !p.is_null()) {
        return Err(ApiError::bad_request("Wrong input: `priority` must be a string", started));
    }
    if req.api_key.is_some() {
        return Err(ApiError::bad_request(
            "Wrong input: `api_key` is for fetching a snapshot from a URL, which is not supported; leave it out",
            started,
        ));
    }
    if state.cluster.is_some() {
        return Err(ApiError::bad_request(
            "Wrong input: shard snapshot recovery is not supported in cluster mode yet",
            started,
        ));
    }
    let c = collection(&state, &name, started)?;
    let id = shard_id(&shard, started)?;
    let raw = req.location.strip_prefix("file://").unwrap_or(&req.location);
    let path = if raw.contains('/') {
        recover_path(&state, &name, &req.location, started)?
    } else {
        c.shard_snapshot_path(id, raw).map_err(|e| not_found_or(e, raw, started))?
    };
    c.recover_shard_snapshot(id, &path).await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(true, started))
}
