//! The REST API: a subset of Qdrant's, plus Ametist's own routes.
//!
//! * [`collections`]: `GET /collections`, `GET/PUT/DELETE /collections/{name}`.
//! * [`points`]: upsert, query (single and batch), search, retrieve, delete, scroll, count.
//! * [`batch`]: `POST /collections/{name}/points/batch`, point operations applied in order.
//! * [`payload`]: payload updates and payload indexes (shapes only until the engine has them).
//! * [`selectors`]: `with_payload` / `with_vector` selectors.
//! * [`vector_json`]: vectors and queries as JSON sends them, read straight into `f32`s.
//! * [`shards`]: shard keys (custom sharding): their routes and the `shard_key` selector.
//! * [`strict`]: strict mode, checked before a request does anything.
//! * [`partitions`]: Ametist-only routes about partitions and their actors.
//! * [`cluster`]: moving partitions (`POST /collections/{name}/cluster`) and removing members.
//! * [`openapi`]: `GET /openapi.json`, the OpenAPI document of every route here.
//! * [`envelope`]: Qdrant's response envelope, error mapping and body parsing.
//! * [`auth`]: the API key.
//! * [`limits`]: what one request may cost (bytes of writes in flight, hits, answer size).

pub mod auth;
pub mod batch;
pub mod cluster;
pub mod collections;
pub mod consistency;
pub mod envelope;
pub mod explore;
pub mod limits;
pub mod openapi;
pub mod partitions;
pub mod payload;
pub mod points;
pub mod selectors;
pub mod shards;
pub mod snapshots;
pub mod strict;
pub mod vector_json;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{delete, get, post, put};
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

/// The title on `GET /` and in gRPC's health check.
pub const TITLE: &str = "ametist - vector search engine";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Ametist,
    pub config: Arc<AmetistConfig>,
    /// This node's cluster membership, when `remoting.enabled`.
    pub cluster: Option<ametist_cluster::ClusterNode>,
    /// The bytes of writes being handled, shared by REST and gRPC.
    pub budget: Arc<limits::WriteBudget>,
    /// Strict mode's rate limits, shared by REST and gRPC.
    pub rates: Arc<strict::Rates>,
}

impl AppState {
    pub fn new(db: Ametist, config: Arc<AmetistConfig>, cluster: Option<ametist_cluster::ClusterNode>) -> Self {
        let budget = Arc::new(limits::WriteBudget::new(&config.limits, config.server.max_request_bytes));
        AppState { db, config, cluster, budget, rates: Arc::new(strict::Rates::default()) }
    }
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
        .route("/collections/aliases", get(collections::aliases))
        .route("/collections/{name}/shards", get(shards::list).put(shards::create))
        .route("/collections/{name}/shards/delete", post(shards::delete))
        .route("/collections/aliases", post(collections::update_aliases))
        .route("/collections/{name}/aliases", get(collections::collection_aliases))
        .route("/collections/{name}/exists", get(collections::exists))
        .route("/collections/{name}/points", put(points::upsert).post(points::retrieve))
        .route("/collections/{name}/points/{id}", get(points::get_one))
        .route("/collections/{name}/points/query", post(points::query))
        .route("/collections/{name}/points/query/batch", post(points::query_batch))
        .route("/collections/{name}/points/search", post(points::search))
        .route("/collections/{name}/points/search/batch", post(points::search_batch))
        .route("/collections/{name}/points/query/groups", post(explore::query_groups))
        .route("/collections/{name}/points/search/groups", post(explore::search_groups))
        .route("/collections/{name}/points/recommend", post(explore::recommend))
        .route("/collections/{name}/points/recommend/batch", post(explore::recommend_batch))
        .route("/collections/{name}/points/recommend/groups", post(explore::recommend_groups))
        .route("/collections/{name}/points/discover", post(explore::discover))
        .route("/collections/{name}/points/discover/batch", post(explore::discover_batch))
        .route("/collections/{name}/facet", post(explore::facet))
        .route("/collections/{name}/points/search/matrix/pairs", post(explore::matrix_pairs))
        .route("/collections/{name}/points/search/matrix/offsets", post(explore::matrix_offsets))
        .route("/collections/{name}/points/delete", post(points::delete))
        .route("/collections/{name}/points/batch", post(batch::update))
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
        .route("/collections/{name}/partitions/{id}/copies", get(partitions::copies))
        .route("/cluster", get(collections::cluster_status))
        .route("/cluster/peer/{peer_id}", delete(cluster::remove_peer))
        .route("/collections/{name}/cluster", get(collections::cluster_info).post(cluster::update))
        .route("/collections/{name}/optimizations", get(collections::optimizations))
        .route("/collections/{name}/snapshots", get(snapshots::list).post(snapshots::create))
        .route("/collections/{name}/snapshots/recover", put(snapshots::recover))
        // Uploads are streamed to a file, never held in memory: no body limit.
        .route("/collections/{name}/snapshots/upload", post(snapshots::upload).layer(DefaultBodyLimit::disable()))
        .route("/collections/{name}/snapshots/{snapshot}", get(snapshots::download).delete(snapshots::delete))
        .route(
            "/collections/{name}/shards/{shard_id}/snapshots",
            get(snapshots::list_shard).post(snapshots::create_shard),
        )
        .route("/collections/{name}/shards/{shard_id}/snapshots/recover", put(snapshots::recover_shard))
        .route(
            "/collections/{name}/shards/{shard_id}/snapshots/{snapshot}",
            get(snapshots::download_shard).delete(snapshots::delete_shard),
        )
        .route("/snapshots", get(snapshots::list_full).post(snapshots::create_full))
        .route("/snapshots/{snapshot}", get(snapshots::download_full).delete(snapshots::delete_full));
    if state.config.server.enable_fault_injection {
        r = r.route("/collections/{name}/partitions/{id}/fault", post(partitions::fault));
    }
    let max_response = state.config.limits.max_response_bytes;
    r.fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), consistency::check))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::admit_write))
        .layer(axum::middleware::from_fn_with_state(state.clone(), strict::request_layer))
        .layer(axum::middleware::from_fn(move |req, next| limits::cap_response(max_response, req, next)))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// What every request passes before its route, outermost first: errors of every layer
/// are answered in Qdrant's JSON envelope; the API key is checked (`/metrics` too, unless
/// `service.metrics_public`); a request body must be JSON (snapshot uploads excepted), not
/// compressed, and arrive within `server.body_read_timeout`.
pub fn protect(app: Router, config: &AmetistConfig) -> Router {
    let (body_timeout, max_request) = (config.server.body_read_timeout, config.server.max_request_bytes);
    let key = auth::ApiKey::new(config.service.api_key.as_deref(), config.service.metrics_public);
    app.layer(axum::middleware::from_fn(move |req, next| crate::http::body_deadline(body_timeout, req, next)))
        .layer(axum::middleware::from_fn(envelope::require_json_body))
        .layer(axum::middleware::from_fn(move |req, next| auth::require_api_key(key.clone(), req, next)))
        .layer(axum::middleware::from_fn(move |req, next| envelope::json_errors(max_request, req, next)))
}

/// `GET /`: the title and versions as JSON, as Qdrant answers it; a browser (asking for
/// HTML) is sent to the dashboard instead.
async fn root(State(state): State<AppState>, headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    if crate::dashboard::wants_html(&headers) {
        return crate::dashboard::root_redirect();
    }
    axum::Json(json!({
        "title": TITLE,
        "version": QDRANT_COMPAT_VERSION,
        // The git commit built from (`unknown` outside a checkout; see build.rs).
        "commit": env!("AMETIST_GIT_COMMIT"),
        "ametist_version": env!("CARGO_PKG_VERSION"),
        "name": state.config.name,
    }))
    .into_response()
}

async fn health() -> &'static str {
    "healthz check passed"
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
