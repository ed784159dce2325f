//! Strict mode (Qdrant's `strict_mode_config`): limits on what one request may ask of a
//! collection, checked before the request does anything. The settings live in the engine
//! (`collection.json`); the checks are here because they are about requests.
//!
//! A refusal is a 403 worded as Qdrant words it (`Forbidden: Limit exceeded 5 > 1 for
//! "limit". Help: ...`). A setting Ametist cannot enforce is refused when it is set (400
//! naming it), so strict mode never promises a limit it does not keep.

use std::time::Instant;

use axum::http::StatusCode;
use serde_json::Value;

use ametist_engine::collection::Collection;
use ametist_engine::spec::StrictModeConfig;

use super::envelope::ApiError;
use super::points::{QueryPoints, SearchPoints};

/// Settings of Qdrant's strict mode that Ametist does not enforce yet, with why.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("max_collection_payload_size_bytes", "payload storage size is not measured yet"),
    ("max_resident_memory_percent", "memory quotas are not enforced (and Qdrant deprecated this field)"),
];

/// Parses a `strict_mode_config` body: unknown fields and settings that cannot be enforced
/// are refused naming them; limits must be at least 1.
pub fn parse(value: Value, path: &str) -> Result<StrictModeConfig, String> {
    let Value::Object(fields) = value else {
        return Err(format!("Format error in JSON body: {path} must be an object"));
    };
    for (key, v) in &fields {
        if v.is_null() {
            continue;
        }
        if let Some((_, why)) = UNSUPPORTED.iter().find(|(k, _)| k == key) {
            return Err(format!("Wrong input: {path}.{key} is not supported yet ({why})"));
        }
    }
    let fields: serde_json::Map<String, Value> = fields.into_iter().filter(|(_, v)| !v.is_null()).collect();
    let config: StrictModeConfig =
        serde_json::from_value(Value::Object(fields)).map_err(|e| format!("Format error in JSON body: {path}: {e}"))?;
    let limits = [
        ("read_rate_limit", config.read_rate_limit),
        ("write_rate_limit", config.write_rate_limit),
        ("max_query_limit", config.max_query_limit),
        ("max_timeout", config.max_timeout),
        ("search_max_hnsw_ef", config.search_max_hnsw_ef),
        ("upsert_max_batchsize", config.upsert_max_batchsize),
        ("search_max_batchsize", config.search_max_batchsize),
        ("filter_max_conditions", config.filter_max_conditions),
        ("condition_max_size", config.condition_max_size),
    ];
    if let Some((name, _)) = limits.iter().find(|(_, v)| *v == Some(0)) {
        return Err(format!("Wrong input: {path}.{name} must be at least 1"));
    }
    if let Some(o) = config.search_max_oversampling.filter(|o| !o.is_finite() || *o < 1.0) {
        return Err(format!("Wrong input: {path}.search_max_oversampling must be at least 1, got {o}"));
    }
    Ok(config)
}

/// The collection's strict mode, when it is enabled.
fn active(c: &Collection) -> Option<StrictModeConfig> {
    c.settings().strict_mode.filter(StrictModeConfig::is_enabled)
}

/// Qdrant's strict-mode refusal: 403, the problem and what to do.
fn forbidden(description: impl std::fmt::Display, help: impl std::fmt::Display, started: Instant) -> ApiError {
    ApiError { status: StatusCode::FORBIDDEN, message: format!("Forbidden: {description}. Help: {help}"), started }
}

fn limit<T: PartialOrd + std::fmt::Display>(
    value: Option<T>,
    max: Option<T>,
    name: &str,
    started: Instant,
) -> Result<(), ApiError> {
    match (value, max) {
        (Some(v), Some(m)) if v > m => Err(forbidden(
            format!("Limit exceeded {v} > {m} for \"{name}\""),
            format!("Reduce the \"{name}\" parameter to or below {m}."),
            started,
        )),
        _ => Ok(()),
    }
}

fn exact(asked: bool, config: &StrictModeConfig, started: Instant) -> Result<(), ApiError> {
    if asked && config.search_allow_exact == Some(false) {
        return Err(forbidden("Exact search disabled!", "Set exact=false.", started));
    }
    Ok(())
}

/// `params` of a query or search: `hnsw_ef`, `exact`, `quantization.oversampling`.
fn params(p: &Value, config: &StrictModeConfig, started: Instant) -> Result<(), ApiError> {
    let oversampling = p.pointer("/quantization/oversampling").and_then(Value::as_f64);
    limit(oversampling, config.search_max_oversampling, "oversampling", started)?;
    limit(p.get("hnsw_ef").and_then(Value::as_u64).map(|v| v as usize), config.search_max_hnsw_ef, "hnsw_ef", started)?;
    exact(p.get("exact").and_then(Value::as_bool).unwrap_or(false), config, started)
}

/// A filter's limits and, when `unindexed` is `Some(false)`, its keys' indexes.
fn filter(
    c: &Collection,
    f: Option<&Value>,
    unindexed: Option<bool>,
    config: &StrictModeConfig,
    started: Instant,
) -> Result<(), ApiError> {
    let Some(f) = f.filter(|f| !f.is_null()) else { return Ok(()) };
    if unindexed == Some(false) {
        let indexed: Vec<String> = c.payload_schema().into_keys().chain(c.text_schema().into_keys()).collect();
        let mut keys = Vec::new();
        filter_keys(f, &mut keys);
        if let Some((key, kinds)) = keys.into_iter().find(|(k, _)| !indexed.contains(k)) {
            return Err(forbidden(
                format!("Index required but not found for \"{key}\" of one of the following types: [{kinds}]"),
                "Create an index for this key or use a different filter.",
                started,
            ));
        }
    }
    if let Some(max) = config.filter_max_conditions {
        let n = conditions(f);
        if n > max {
            return Err(forbidden(
                format!("Filter condition limit reached ({n} > {max})"),
                "Reduce the amount of conditions of your filter.",
                started,
            ));
        }
    }
    if let Some(max) = config.condition_max_size {
        let n = largest_condition(f);
        if n > max {
            return Err(forbidden(
                format!("Condition size limit reached ({n} > {max})"),
                "Reduce the size of your condition.",
                started,
            ));
        }
    }
    Ok(())
}

const CLAUSES: [&str; 3] = ["must", "should", "must_not"];

/// The conditions of a filter's clauses (`min_should` included), each a list or one.
fn clauses(f: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for clause in CLAUSES {
        match f.get(clause) {
            Some(Value::Array(items)) => out.extend(items.iter()),
            Some(v) if v.is_object() => out.push(v),
            _ => {}
        }
    }
    if let Some(Value::Array(items)) = f.pointer("/min_should/conditions") {
        out.extend(items.iter());
    }
    out
}

fn is_filter(c: &Value) -> bool {
    CLAUSES.iter().any(|k| c.get(k).is_some()) || c.get("min_should").is_some()
}

/// Leaf conditions, counted through nested filters (Qdrant's `total_conditions_count`).
fn conditions(f: &Value) -> usize {
    clauses(f)
        .into_iter()
        .map(|c| {
            if is_filter(c) {
                conditions(c)
            } else if let Some(inner) = c.pointer("/nested/filter") {
                conditions(inner)
            } else {
                1
            }
        })
        .sum()
}

/// The largest input of one condition: values of `match.any`/`except`, ids of `has_id`,
/// points of a polygon.
fn largest_condition(f: &Value) -> usize {
    clauses(f)
        .into_iter()
        .map(|c| {
            if is_filter(c) {
                return largest_condition(c);
            }
            if let Some(inner) = c.pointer("/nested/filter") {
                return largest_condition(inner);
            }
            let len = |p: &str| c.pointer(p).and_then(Value::as_array).map_or(0, Vec::len);
            [len("/match/any"), len("/match/except"), len("/has_id"), len("/geo_polygon/exterior/points"), 1]
                .into_iter()
                .max()
                .unwrap_or(1)
        })
        .max()
        .unwrap_or(0)
}

/// The payload keys a filter reads, with the index types that would serve each.
fn filter_keys(f: &Value, out: &mut Vec<(String, &'static str)>) {
    for c in clauses(f) {
        if is_filter(c) {
            filter_keys(c, out);
            continue;
        }
        if let Some(nested) = c.get("nested") {
            if let Some(key) = nested.get("key").and_then(Value::as_str) {
                out.push((key.to_string(), "keyword, integer, float"));
            }
            continue;
        }
        for wrapper in ["is_empty", "is_null"] {
            if let Some(key) = c.pointer(&format!("/{wrapper}/key")).and_then(Value::as_str) {
                out.push((key.to_string(), "keyword, integer, float, bool, text"));
            }
        }
        let Some(key) = c.get("key").and_then(Value::as_str) else { continue };
        let kinds = if let Some(m) = c.get("match") {
            let value = m.get("value").or_else(|| m.pointer("/any/0")).or_else(|| m.pointer("/except/0"));
            match value {
                _ if m.get("text").is_some() || m.get("phrase").is_some() || m.get("text_any").is_some() => "text",
                Some(Value::Bool(_)) => "bool",
                Some(Value::Number(_)) => "integer",
                _ => "keyword",
            }
        } else if c.get("range").is_some() {
            "datetime, float, integer"
        } else if c.get("geo_radius").is_some() || c.get("geo_bounding_box").is_some() || c.get("geo_polygon").is_some()
        {
            "geo"
        } else {
            "keyword, integer, float, bool, text"
        };
        out.push((key.to_string(), kinds));
    }
}

/// A query (`points/query`), its prefetches included.
pub fn check_query(c: &Collection, q: &QueryPoints, started: Instant) -> Result<(), ApiError> {
    let Some(config) = active(c) else { return Ok(()) };
    limit(Some(q.limit.unwrap_or(10)), config.max_query_limit, "limit", started)?;
    filter(c, q.filter.as_ref(), config.unindexed_filtering_retrieve, &config, started)?;
    if let Some(p) = &q.params {
        params(&p.as_value(), &config, started)?;
    }
    let prefetch: Vec<&Value> = match &q.prefetch {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v) if v.is_object() => vec![v],
        _ => Vec::new(),
    };
    for p in prefetch {
        limit(p.get("limit").and_then(Value::as_u64).map(|v| v as usize), config.max_query_limit, "limit", started)?;
        filter(c, p.get("filter"), config.unindexed_filtering_retrieve, &config, started)?;
        if let Some(params_value) = p.get("params") {
            params(params_value, &config, started)?;
        }
    }
    Ok(())
}

/// A search (`points/search`).
pub fn check_search(c: &Collection, s: &SearchPoints, started: Instant) -> Result<(), ApiError> {
    let Some(config) = active(c) else { return Ok(()) };
    limit(Some(s.limit), config.max_query_limit, "limit", started)?;
    filter(c, s.filter.as_ref(), config.unindexed_filtering_retrieve, &config, started)?;
    if let Some(p) = &s.params {
        params(&p.as_value(), &config, started)?;
    }
    Ok(())
}

/// A batch of queries or searches.
pub fn check_search_batch(c: &Collection, n: usize, started: Instant) -> Result<(), ApiError> {
    let Some(config) = active(c) else { return Ok(()) };
    limit(Some(n), config.search_max_batchsize, "searches", started)
}

/// A scroll or count: its limit and filter; a count is exact (as Qdrant's client asks by
/// default), so `search_allow_exact: false` refuses it as Qdrant does.
pub fn check_read(
    c: &Collection,
    read_limit: Option<usize>,
    read_filter: Option<&Value>,
    count_exact: Option<bool>,
    started: Instant,
) -> Result<(), ApiError> {
    let Some(config) = active(c) else { return Ok(()) };
    limit(read_limit, config.max_query_limit, "limit", started)?;
    if let Some(asked) = count_exact {
        exact(asked, &config, started)?;
    }
    filter(c, read_filter, config.unindexed_filtering_retrieve, &config, started)
}

/// A write by filter (delete, payload changes, vector deletes).
pub fn check_update_filter(c: &Collection, f: Option<&Value>, started: Instant) -> Result<(), ApiError> {
    let Some(config) = active(c) else { return Ok(()) };
    filter(c, f, config.unindexed_filtering_update, &config, started)
}

/// An upsert: batch size, the points and vector bytes the collection would reach, and per
/// point the multivector and sparse limits. `vectors` is each point's (field, dense
/// components or sparse length, vectors in a multivector).
pub async fn check_upsert(
    c: &Collection,
    points: &[ametist_engine::InsertVector],
    started: Instant,
) -> Result<(), ApiError> {
    let Some(config) = active(c) else { return Ok(()) };
    limit(Some(points.len()), config.upsert_max_batchsize, "upsert", started)?;
    let spec = c.spec();
    for p in points {
        for (name, v) in &p.vectors.dense {
            let max = config.multivector_config.as_ref().and_then(|m| m.get(name)).and_then(|m| m.max_vectors);
            if let (Some(max), Some(field)) = (max, spec.dense_field(name)) {
                let n = v.len().checked_div(field.dim).unwrap_or(0);
                if field.multivector.is_some() && n > max {
                    return Err(forbidden(
                        format!("Limit exceeded {n} > {max} for \"max_vectors\" of multivector `{name}`"),
                        format!("Reduce the number of vectors of `{name}` to or below {max}."),
                        started,
                    ));
                }
            }
        }
        for (name, v) in &p.vectors.sparse {
            let max = config.sparse_config.as_ref().and_then(|m| m.get(name)).and_then(|m| m.max_length);
            limit(Some(v.indices.len()), max, &format!("max_length of sparse vector `{name}`"), started)?;
        }
    }
    if config.max_points_count.is_none() && config.max_collection_vector_size_bytes.is_none() {
        return Ok(());
    }
    // Upserts may replace points: counting every point of the batch as new is the
    // estimate Qdrant makes too (it checks before the write).
    let now = c.count(None).await.map_err(|e| ApiError::from_engine(e, started))?;
    let after = now.saturating_add(points.len());
    if let Some(max) = config.max_points_count {
        if now >= max || after > max {
            return Err(forbidden(
                format!("Max points count limit reached ({after} > {max})"),
                "Delete unused points or increase max_points_count.",
                started,
            ));
        }
    }
    if let Some(max) = config.max_collection_vector_size_bytes {
        // Every dense field's f32 components per point (multivectors: per vector).
        let per_point: usize = spec.dense_fields().values().map(|f| f.dim * 4).sum();
        let bytes = after.saturating_mul(per_point);
        if bytes > max {
            return Err(forbidden(
                format!("Max vector storage size limit reached ({bytes} > {max} bytes)"),
                "Delete unused points or increase max_collection_vector_size_bytes.",
                started,
            ));
        }
    }
    Ok(())
}

/// A new payload index: `max_payload_index_count`.
pub fn check_new_index(c: &Collection, field: &str, started: Instant) -> Result<(), ApiError> {
    let Some(config) = active(c) else { return Ok(()) };
    let mut keys: Vec<String> = c.payload_schema().into_keys().chain(c.text_schema().into_keys()).collect();
    keys.sort();
    keys.dedup();
    if keys.iter().any(|k| k == field) {
        return Ok(());
    }
    limit(Some(keys.len() + 1), config.max_payload_index_count, "max_payload_index_count", started)
}

/// Token buckets of `read_rate_limit` and `write_rate_limit`, per collection and kind:
/// each holds up to a minute's worth of requests and refills continuously.
#[derive(Default)]
pub struct Rates {
    buckets: std::sync::Mutex<std::collections::HashMap<(String, bool), Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    per_minute: usize,
}

impl Rates {
    /// Takes one request's token from the bucket of `collection`'s reads or writes; false
    /// when it is empty.
    fn take(&self, collection: &str, write: bool, per_minute: usize) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let b = buckets.entry((collection.to_string(), write)).or_insert(Bucket {
            tokens: per_minute as f64,
            at: now,
            per_minute,
        });
        if b.per_minute != per_minute {
            // The limit was changed: start again from a full bucket of the new size.
            *b = Bucket { tokens: per_minute as f64, at: now, per_minute };
        }
        let refill = now.duration_since(b.at).as_secs_f64() * per_minute as f64 / 60.0;
        b.tokens = (b.tokens + refill).min(per_minute as f64);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Whether a request to `/collections/{name}/<rest>` reads points (`Some(false)`),
/// writes them (`Some(true)`), or is neither (collection settings, snapshots...).
fn kind_of(method: &axum::http::Method, rest: &[&str]) -> Option<bool> {
    use axum::http::Method;
    match (method, rest) {
        (&Method::GET, ["points", _]) => Some(false),
        (&Method::POST, ["points"]) => Some(false),
        (&Method::POST, ["points", "query" | "search" | "scroll" | "count"]) => Some(false),
        (&Method::POST, ["points", "query" | "search", "batch"]) => Some(false),
        (&Method::PUT, ["points"]) => Some(true),
        (&Method::POST, ["points", "delete" | "batch"]) => Some(true),
        (&Method::PUT, ["points", "vectors"]) => Some(true),
        (&Method::POST, ["points", "vectors", "delete"]) => Some(true),
        (&Method::POST | &Method::PUT, ["points", "payload"]) => Some(true),
        (&Method::POST, ["points", "payload", "delete" | "clear"]) => Some(true),
        (&Method::PUT, ["index"]) | (&Method::DELETE, ["index", _]) => Some(true),
        _ => None,
    }
}

/// Middleware for every `/collections/{name}/...` route of a collection in strict mode:
/// the `timeout` query parameter against `max_timeout`, and each request that reads or
/// writes points against `read_rate_limit` / `write_rate_limit` (one token per request;
/// 429 with `Retry-After` when the minute's budget is spent, as Qdrant answers).
pub async fn request_layer(
    axum::extract::State(state): axum::extract::State<super::AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path: Vec<&str> = req.uri().path().split('/').skip(1).collect();
    if let ["collections", name, rest @ ..] = path.as_slice() {
        if let Ok(c) = state.db.collection(name) {
            let started = Instant::now();
            if let Err(e) = check_timeout(&c, req.uri().query(), started) {
                return e.into_response();
            }
            if let Some(write) = kind_of(req.method(), rest) {
                if let Err(e) = admit(&state.rates, &c, write, started) {
                    return e.into_response();
                }
            }
        }
    }
    next.run(req).await
}

/// Takes a read's or a write's token of a collection in strict mode with a rate limit; a
/// 429 naming the limit when the minute's budget is spent. REST's `request_layer` and each
/// gRPC call that reads or writes points come through here.
pub fn admit(rates: &Rates, c: &Collection, write: bool, started: Instant) -> Result<(), ApiError> {
    let Some(config) = active(c) else { return Ok(()) };
    let limit = if write { config.write_rate_limit } else { config.read_rate_limit };
    let Some(per_minute) = limit else { return Ok(()) };
    if rates.take(&c.spec().name, write, per_minute) {
        return Ok(());
    }
    let which = if write { "Write" } else { "Read" };
    Err(ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        message: format!("Rate limiting exceeded: {which} rate limit exceeded ({per_minute} per minute), retry later"),
        started,
    })
}

/// The `timeout` query parameter of any collection route.
pub fn check_timeout(c: &Collection, query: Option<&str>, started: Instant) -> Result<(), ApiError> {
    let Some(config) = active(c) else { return Ok(()) };
    let timeout = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "timeout")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    limit(timeout, config.max_timeout, "timeout", started)
}
