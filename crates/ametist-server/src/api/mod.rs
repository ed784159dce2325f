//! The REST API: a subset of Qdrant's, plus Ametist's own routes.
//!
//! * [`collections`]: `GET /collections`, `GET/PUT/DELETE /collections/{name}`.
//! * [`points`]: upsert, query (single and batch), search, retrieve, delete, scroll, count.
//! * [`payload`]: payload updates and payload indexes (shapes only until the engine has them).
//! * [`selectors`]: `with_payload` / `with_vector` selectors.
//! * [`partitions`]: Ametist-only routes about partitions and their actors.
//! * [`openapi`]: `GET /openapi.json`, the OpenAPI document of every route here.
//! * [`envelope`]: Qdrant's response envelope, error mapping and body parsing.

pub mod collections;
pub mod envelope;
pub mod openapi;
pub mod partitions;
pub mod payload;
pub mod points;
pub mod selectors;
pub mod snapshots;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{any, delete, get, post, put};
use axum::Router;
use serde_json::json;

use ametist_engine::Ametist;

use crate::config::AmetistConfig;
use envelope::{Answer, ApiResult};

/// The Qdrant version whose REST API this server follows. Clients compare it with their
/// own version, so it is reported as `version` on `GET /`: qdrant-client warns unless the
/// major versions match and the minors differ by at most one. The Python tests run
/// qdrant-client 1.20.0 and check its response models against our answers.
pub const QDRANT_COMPAT_VERSION: &str = "1.20.0";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Ametist,
    pub config: Arc<AmetistConfig>,
    /// This node's cluster membership, when `remoting.enabled`.
    pub cluster: Option<ametist_cluster::ClusterNode>,
}

/// All routes.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.server.max_request_bytes;
    let mut r = Router::new()
        .route("/", get(root))
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(health))
        .route("/openapi.json", get(openapi::get))
        .route("/collections", get(collections::list))
        .route(
            "/collections/{name}",
            get(collections::info).put(collections::create).delete(collections::delete).patch(collections::update),
        )
        .route("/aliases", get(collections::aliases))
        .route("/collections/aliases", post(collections::update_aliases))
        .route("/collections/{name}/aliases", get(collections::collection_aliases))
        .route("/collections/{name}/exists", get(collections::exists))
        .route("/collections/{name}/points", put(points::upsert).post(points::retrieve))
        .route("/collections/{name}/points/{id}", get(points::get_one))
        .route("/collections/{name}/points/query", post(points::query))
        .route("/collections/{name}/points/query/batch", post(points::query_batch))
        .route("/collections/{name}/points/search", post(points::search))
        .route("/collections/{name}/points/search/batch", post(points::search_batch))
        .route("/collections/{name}/points/delete", post(points::delete))
        .route("/collections/{name}/points/vectors", put(points::update_vectors))
        .route("/collections/{name}/points/vectors/delete", post(points::delete_vectors))
        .route("/collections/{name}/points/scroll", post(points::scroll))
        .route("/collections/{name}/points/count", post(points::count))
        .route("/collections/{name}/points/payload", post(payload::set).put(payload::overwrite))
        .route("/collections/{name}/points/payload/delete", post(payload::delete_keys))
        .route("/collections/{name}/points/payload/clear", post(payload::clear))
        .route("/collections/{name}/index", put(payload::create_index))
        .route("/collections/{name}/index/{field}", delete(payload::delete_index))
        .route("/collections/{name}/partitions", get(partitions::list))
        .route("/cluster", get(collections::cluster_status))
        .route("/collections/{name}/cluster", get(collections::cluster_info))
        .route("/collections/{name}/snapshots", get(snapshots::list).post(snapshots::create))
        .route("/collections/{name}/snapshots/recover", put(snapshots::recover))
        .route("/collections/{name}/snapshots/upload", post(snapshots::upload))
        .route("/collections/{name}/snapshots/{snapshot}", get(snapshots::download).delete(snapshots::delete));
    // Qdrant routes Ametist does not serve yet: a 400 naming the feature, rather than a
    // 404 that a client could take for "collection not found".
    for (path, what) in [
        ("/collections/{name}/points/batch", "batch update operations are"),
        ("/collections/{name}/points/query/groups", "grouped queries are"),
        ("/collections/{name}/points/search/groups", "grouped search is"),
        ("/collections/{name}/points/recommend", "recommend queries are"),
        ("/collections/{name}/points/recommend/batch", "recommend queries are"),
        ("/collections/{name}/points/recommend/groups", "recommend queries are"),
        ("/collections/{name}/points/discover", "discover queries are"),
        ("/collections/{name}/points/discover/batch", "discover queries are"),
        ("/collections/{name}/facet", "facet counts are"),
        ("/collections/{name}/points/search/matrix/pairs", "distance matrices are"),
        ("/collections/{name}/points/search/matrix/offsets", "distance matrices are"),
        ("/snapshots", "full-storage snapshots are"),
    ] {
        r = r.route(path, any(move || unsupported(what)));
    }
    if state.config.server.enable_fault_injection {
        r = r.route("/collections/{name}/partitions/{id}/fault", post(partitions::fault));
    }
    let api_key = state.config.service.api_key.clone().map(Arc::<str>::from);
    r.fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(move |req, next| require_api_key(api_key.clone(), req, next)))
        .with_state(state)
}

/// With `service.api_key` set, refuses requests that do not carry it (`api-key: <key>` or
/// `Authorization: Bearer <key>`, as Qdrant's clients send it): 401 without a key, 403
/// with a wrong one. Health checks stay open, as in Qdrant, so that probes need no secret.
async fn require_api_key(
    key: Option<Arc<str>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(key) = key else { return next.run(req).await };
    if matches!(req.uri().path(), "/healthz" | "/livez" | "/readyz") {
        return next.run(req).await;
    }
    let headers = req.headers();
    let given = headers.get("api-key").and_then(|v| v.to_str().ok()).or_else(|| {
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
    });
    let status = match given {
        Some(g) if ametist_cluster::transport::secrets_match(g.as_bytes(), key.as_bytes()) => {
            return next.run(req).await
        }
        Some(_) => axum::http::StatusCode::FORBIDDEN,
        None => axum::http::StatusCode::UNAUTHORIZED,
    };
    let message = if status == axum::http::StatusCode::FORBIDDEN {
        "Invalid API key"
    } else {
        "Must provide an API key or an Authorization bearer token"
    };
    (status, axum::Json(json!({ "status": { "error": message }, "time": 0.0 }))).into_response()
}

async fn root(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "title": "ametist - vector search engine",
        "version": QDRANT_COMPAT_VERSION,
        "ametist_version": env!("CARGO_PKG_VERSION"),
        "name": state.config.name,
    }))
}

async fn health() -> &'static str {
    "healthz check passed"
}

async fn unsupported(what: &'static str) -> envelope::ApiError {
    envelope::ApiError::bad_request(format!("Wrong input: {what} not supported yet"), Instant::now())
}

async fn not_found(uri: axum::http::Uri) -> envelope::ApiError {
    envelope::ApiError {
        status: axum::http::StatusCode::NOT_FOUND,
        message: format!("Not found: no route for {}", uri.path()),
        started: Instant::now(),
    }
}

/// `{"result": true}`-style answers.
pub(crate) fn done(started: Instant) -> ApiResult<bool> {
    Ok(Answer::new(true, started))
}
