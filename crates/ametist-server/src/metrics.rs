//! `GET /metrics`: Prometheus text exposition; `GET /metrics/history`: the last minutes of
//! request rates and latency percentiles per route, as JSON.
//!
//! Request counts and latency histograms per route and status are recorded by a
//! middleware for REST, and per RPC and status code by a layer of the gRPC server
//! (`grpc::metered`); collection and partition figures (points, mailbox depth, restarts, actor
//! state) are read from the engine when the endpoint is scraped. The same middleware also
//! files every request in a time slot of [`History`], which is what the dashboard draws
//! its charts from: Prometheus counters only grow, so a rate or a percentile over the last
//! minutes needs a scraper that keeps the past, and the dashboard has none.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use ametist_engine::supervisor::ActorState;
use ametist_engine::Ametist;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Request statistics, shared by the middleware and the endpoint.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Series>>,
    /// gRPC calls by RPC path (`/qdrant.Points/Search`) and status code.
    grpc: Mutex<BTreeMap<(String, i32), Series>>,
    history: Mutex<History>,
    /// When this process started serving, and a random id of this run (telemetry's `id`).
    started: Option<(SystemTime, String)>,
}

#[derive(Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Clone)]
struct MetricsState {
    metrics: Arc<Metrics>,
    db: Ametist,
}

impl Metrics {
    /// The statistics of this process run, starting now.
    pub fn new() -> Arc<Metrics> {
        let run_id = format!("{:016x}{:016x}", rand_u64(), rand_u64());
        Arc::new(Metrics { started: Some((SystemTime::now(), run_id)), ..Metrics::default() })
    }

    /// Files one gRPC call to `rpc` (its path, `/qdrant.Points/Search`) that ended with
    /// status `code` after `secs`.
    pub fn record_grpc(&self, rpc: &str, code: tonic::Code, secs: f64) {
        self.history.lock().expect("the history lock is never held across a panic").record(
            unix_secs(),
            "gRPC",
            rpc,
            code != tonic::Code::Ok,
            secs,
        );
        let mut map = self.grpc.lock().expect("the metrics lock is never held across a panic");
        map.entry((rpc.to_string(), code as i32)).or_default().add(secs);
    }
}

/// Adds `GET /metrics`, `GET /metrics/history` and `GET /telemetry` to `app` and records
/// every request `app` serves in `metrics`.
pub fn install(app: Router, db: Ametist, metrics: Arc<Metrics>) -> Router {
    let state = MetricsState { metrics, db };
    app.layer(middleware::from_fn_with_state(state.clone(), track)).merge(
        Router::new()
            .route("/metrics", get(render))
            .route("/metrics/history", get(history))
            .route("/telemetry", get(telemetry))
            .with_state(state),
    )
}

async fn track(State(state): State<MetricsState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let secs = started.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    state.metrics.history.lock().expect("the history lock is never held across a panic").record(
        unix_secs(),
        &method,
        &route,
        status >= 400,
        secs,
    );
    let mut map = state.metrics.requests.lock().expect("the metrics lock is never held across a panic");
    map.entry((method, route, status)).or_default().add(secs);
    resp
}

impl Series {
    fn add(&mut self, secs: f64) {
        self.count += 1;
        self.sum += secs;
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i] += 1;
            }
        }
    }

    /// This series as the lines of Prometheus histogram `name` with `labels`.
    fn write_histogram(&self, out: &mut String, name: &str, labels: &str) {
        for (le, n) in BUCKETS.iter().zip(self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// 64 random bits from the standard library's randomly seeded hasher (no RNG crate needed
/// for an id).
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

/// `GET /telemetry`: Qdrant's `TelemetryData`, with what Ametist knows: the build (name,
/// version, commit, start time), the collections with their points and partitions, and the
/// requests this process answered: REST per route and status, gRPC per RPC (count, failed
/// calls and total time). `id` is random per process run. Figures Ametist
/// does not keep (segments, optimizer runs, memory by kind) are left out, not made up.
/// Query: `details_level` (a number; at 1 or more each collection is listed),
/// `anonymize=true` and `per_collection=true` are refused (400): Ametist keeps no
/// per-collection request figures and does not anonymise names.
async fn telemetry(State(state): State<MetricsState>, uri: axum::http::Uri) -> Response {
    let started = Instant::now();
    let bad = |msg: String| {
        let body = json!({"status": {"error": format!("Wrong input: {msg}")}, "time": started.elapsed().as_secs_f64()});
        (axum::http::StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    };
    let mut details = 0u64;
    for pair in uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (k, v) {
            ("details_level", v) => match v.parse() {
                Ok(n) => details = n,
                Err(_) => return bad(format!("details_level must be a non-negative integer, got `{v}`")),
            },
            ("anonymize" | "per_collection", "false") => {}
            ("anonymize", _) => return bad("anonymized telemetry is not supported; leave out `anonymize`".into()),
            ("per_collection", _) => {
                return bad("per-collection request figures are not kept; leave out `per_collection`".into())
            }
            ("timeout", v) if v.parse::<u64>().is_ok() => {}
            ("timeout", v) => return bad(format!("timeout must be a positive integer, got `{v}`")),
            _ => {}
        }
    }
    let mut collections = Vec::new();
    let names = state.db.list_collections();
    if details >= 1 {
        for name in &names {
            let Ok(c) = state.db.collection(name) else { continue };
            let Ok(parts) = c.partitions().await else { continue };
            let points: usize = parts.iter().filter_map(|(_, s)| s.as_ref().map(|s| s.doc_count)).sum();
            let answering = parts.iter().filter(|(_, s)| s.is_some()).count();
            collections.push(json!({
                "id": name,
                // Ametist's own: points in the partitions that answered, and how many did.
                "points": points,
                "partitions": parts.len(),
                "partitions_answering": answering,
            }));
        }
    }
    let mut responses: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    {
        let map = state.metrics.requests.lock().expect("the metrics lock is never held across a panic");
        for ((m, r, status), v) in map.iter() {
            responses.entry(format!("{m} {r}")).or_default().insert(
                status.to_string(),
                json!({"count": v.count, "total_duration_micros": (v.sum * 1e6).round() as u64}),
            );
        }
    }
    // Qdrant's shape: per RPC, per status code (its number, as REST's statuses are keyed).
    let mut grpc: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    {
        let map = state.metrics.grpc.lock().expect("the metrics lock is never held across a panic");
        for ((rpc, code), v) in map.iter() {
            let failed = if *code == tonic::Code::Ok as i32 { 0 } else { v.count };
            grpc.entry(rpc.clone()).or_default().insert(
                code.to_string(),
                json!({"count": v.count, "fail_count": failed, "total_duration_micros": (v.sum * 1e6).round() as u64}),
            );
        }
    }
    let (start, id) = state.metrics.started.clone().unwrap_or((SystemTime::now(), String::new()));
    let result = json!({
        "id": id,
        "app": {
            "name": "ametist",
            "version": env!("CARGO_PKG_VERSION"),
            "commit": env!("AMETIST_GIT_COMMIT"),
            "startup": format!("{}Z", ametist_engine::snapshots::format_time(start)),
        },
        "collections": if details >= 1 {
            json!({"number_of_collections": names.len(), "collections": collections})
        } else {
            json!({"number_of_collections": names.len()})
        },
        "requests": {"rest": {"responses": responses}, "grpc": {"responses": grpc}},
    });
    axum::Json(json!({"result": result, "status": "ok", "time": started.elapsed().as_secs_f64()})).into_response()
}

fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Seconds one slot of [`History`] covers.
pub const SLOT_SECS: u64 = 5;
/// Slots [`History`] keeps: ten minutes.
pub const SLOTS: usize = 120;
/// Latency buckets of a slot: bucket `i` holds durations up to `FIRST_BOUND * 2^(i/4)`
/// seconds (the last one everything longer), so a percentile read from them is within
/// about 19 % of the true value, from 10 µs to about 8 minutes.
const LATENCY_BUCKETS: usize = 104;
const FIRST_BOUND: f64 = 1e-5;

fn bucket_of(secs: f64) -> usize {
    if secs <= FIRST_BOUND {
        return 0;
    }
    let i = ((secs / FIRST_BOUND).log2() * 4.0).ceil() as usize;
    i.min(LATENCY_BUCKETS - 1)
}

fn bucket_bound(i: usize) -> f64 {
    FIRST_BOUND * 2f64.powf(i as f64 / 4.0)
}

/// One route's requests within one slot.
#[derive(Clone)]
struct SlotSeries {
    count: u64,
    /// Answers with a 4xx or 5xx status, or gRPC calls that did not end `Ok`.
    errors: u64,
    latency: [u32; LATENCY_BUCKETS],
}

impl Default for SlotSeries {
    fn default() -> Self {
        SlotSeries { count: 0, errors: 0, latency: [0; LATENCY_BUCKETS] }
    }
}

impl SlotSeries {
    fn add(&mut self, other: &SlotSeries) {
        self.count += other.count;
        self.errors += other.errors;
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            *a += b;
        }
    }

    /// The duration (seconds) below which a share `q` of the requests finished: the
    /// bound of the bucket holding that rank, interpolated in log scale within it.
    fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().map(|&n| u64::from(n)).sum();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).max(1.0);
        let mut seen = 0u64;
        for (i, &n) in self.latency.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let before = seen as f64;
            seen += u64::from(n);
            if seen as f64 >= rank {
                let upper = bucket_bound(i);
                let lower = if i == 0 { upper / 2.0 } else { bucket_bound(i - 1) };
                let within = (rank - before) / f64::from(n);
                return Some(lower * (upper / lower).powf(within));
            }
        }
        Some(bucket_bound(LATENCY_BUCKETS - 1))
    }
}

/// One slot: its start (Unix seconds) and the requests of each (method, route) in it.
type Slot = (u64, BTreeMap<(String, String), SlotSeries>);

/// Requests per route in slots of [`SLOT_SECS`] over the last [`SLOTS`] slots, oldest
/// first. Slots without requests are not stored.
#[derive(Default)]
pub struct History {
    slots: VecDeque<Slot>,
}

impl History {
    /// Files one request answered at `now` (Unix seconds).
    fn record(&mut self, now: u64, method: &str, route: &str, failed: bool, secs: f64) {
        let start = now - now % SLOT_SECS;
        if self.slots.back().is_none_or(|(s, _)| *s < start) {
            self.slots.push_back((start, BTreeMap::new()));
        }
        let oldest = start.saturating_sub(SLOT_SECS * (SLOTS as u64 - 1));
        while self.slots.front().is_some_and(|(s, _)| *s < oldest) {
            self.slots.pop_front();
        }
        // The clock may step back: such a request is filed in the newest slot.
        let (_, routes) = self.slots.back_mut().expect("a slot was just pushed");
        let s = routes.entry((method.to_string(), route.to_string())).or_default();
        s.count += 1;
        if failed {
            s.errors += 1;
        }
        s.latency[bucket_of(secs)] += 1;
    }

    /// The answer of `GET /metrics/history` at `now` (Unix seconds): the start of every
    /// slot of the window, and per route (plus `"*"`, every route together) the requests,
    /// the errors and the 50th, 90th and 99th latency percentiles (milliseconds, null
    /// without requests) of each slot and of the whole window.
    pub fn to_json(&self, now: u64) -> Value {
        let last = now - now % SLOT_SECS;
        let first = last.saturating_sub(SLOT_SECS * (SLOTS as u64 - 1));
        let starts: Vec<u64> = (first..=last).step_by(SLOT_SECS as usize).collect();
        let mut per_route: BTreeMap<(String, String), Vec<Option<&SlotSeries>>> = BTreeMap::new();
        for (start, routes) in &self.slots {
            if *start < first || *start > last {
                continue;
            }
            let at = ((start - first) / SLOT_SECS) as usize;
            for (key, series) in routes {
                per_route.entry(key.clone()).or_insert_with(|| vec![None; starts.len()])[at] = Some(series);
            }
        }
        let mut all = vec![SlotSeries::default(); starts.len()];
        for slots in per_route.values() {
            for (sum, s) in all.iter_mut().zip(slots) {
                if let Some(s) = s {
                    sum.add(s);
                }
            }
        }
        let ms = |v: Option<f64>| v.map(|s| (s * 1e6).round() / 1e3);
        let describe = |method: &str, route: &str, slots: Vec<Option<&SlotSeries>>| {
            let mut window = SlotSeries::default();
            slots.iter().flatten().for_each(|s| window.add(s));
            let column = |f: &dyn Fn(&SlotSeries) -> Value| -> Vec<Value> {
                slots.iter().map(|s| s.map_or(Value::Null, f)).collect()
            };
            json!({
                "method": method,
                "route": route,
                "count": window.count,
                "errors": window.errors,
                "p50_ms": ms(window.quantile(0.5)),
                "p90_ms": ms(window.quantile(0.9)),
                "p99_ms": ms(window.quantile(0.99)),
                "slots": {
                    "count": slots.iter().map(|s| s.map_or(0, |s| s.count)).collect::<Vec<_>>(),
                    "errors": slots.iter().map(|s| s.map_or(0, |s| s.errors)).collect::<Vec<_>>(),
                    "p50_ms": column(&|s| json!(ms(s.quantile(0.5)))),
                    "p90_ms": column(&|s| json!(ms(s.quantile(0.9)))),
                    "p99_ms": column(&|s| json!(ms(s.quantile(0.99)))),
                },
            })
        };
        let mut routes = vec![describe("*", "*", all.iter().map(|s| Some(s).filter(|s| s.count > 0)).collect())];
        routes.extend(per_route.into_iter().map(|((m, r), slots)| describe(&m, &r, slots)));
        json!({
            "slot_seconds": SLOT_SECS,
            "slot_starts": starts,
            "now": now,
            "routes": routes,
        })
    }
}

/// `GET /metrics/history`, behind the API key like every route but `/metrics` with
/// `service.metrics_public`.
async fn history(State(state): State<MetricsState>) -> crate::api::envelope::ApiResult<Value> {
    let started = Instant::now();
    let body =
        state.metrics.history.lock().expect("the history lock is never held across a panic").to_json(unix_secs());
    Ok(crate::api::envelope::Answer::new(body, started))
}

async fn render(State(state): State<MetricsState>) -> impl IntoResponse {
    let mut out = String::new();
    let series: Vec<_> = {
        let map = state.metrics.requests.lock().expect("the metrics lock is never held across a panic");
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    out.push_str("# HELP ametist_http_requests_total HTTP requests served, by method, route and status.\n");
    out.push_str("# TYPE ametist_http_requests_total counter\n");
    for ((m, r, s), v) in &series {
        let _ = writeln!(out, "ametist_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {}", v.count);
    }
    out.push_str("# HELP ametist_http_request_duration_seconds Time to answer HTTP requests.\n");
    out.push_str("# TYPE ametist_http_request_duration_seconds histogram\n");
    for ((m, r, s), v) in &series {
        let labels = format!("method=\"{m}\",route=\"{r}\",status=\"{s}\"");
        v.write_histogram(&mut out, "ametist_http_request_duration_seconds", &labels);
    }
    let grpc: Vec<_> = {
        let map = state.metrics.grpc.lock().expect("the metrics lock is never held across a panic");
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    out.push_str("# HELP ametist_grpc_requests_total gRPC calls served, by RPC and status code.\n");
    out.push_str("# TYPE ametist_grpc_requests_total counter\n");
    for ((rpc, code), v) in &grpc {
        let _ = writeln!(
            out,
            "ametist_grpc_requests_total{{rpc=\"{rpc}\",code=\"{:?}\"}} {}",
            tonic::Code::from_i32(*code),
            v.count
        );
    }
    out.push_str("# HELP ametist_grpc_request_duration_seconds Time to answer gRPC calls.\n");
    out.push_str("# TYPE ametist_grpc_request_duration_seconds histogram\n");
    for ((rpc, code), v) in &grpc {
        let labels = format!("rpc=\"{rpc}\",code=\"{:?}\"", tonic::Code::from_i32(*code));
        v.write_histogram(&mut out, "ametist_grpc_request_duration_seconds", &labels);
    }

    let mut points = String::new();
    let mut depth = String::new();
    let mut restarts = String::new();
    let mut up = String::new();
    let mut writable = String::new();
    for name in state.db.list_collections() {
        let Ok(c) = state.db.collection(&name) else { continue };
        let Ok(parts) = c.partitions().await else { continue };
        for (info, stats) in parts {
            let labels = format!("collection=\"{name}\",partition=\"{}\"", info.id);
            if let Some(s) = stats {
                let _ = writeln!(points, "ametist_partition_points{{{labels}}} {}", s.doc_count);
            }
            let _ = writeln!(depth, "ametist_partition_mailbox_depth{{{labels}}} {}", info.mailbox_depth);
            let _ = writeln!(restarts, "ametist_partition_restarts_total{{{labels}}} {}", info.restarts);
            // Up while it answers: a read-only partition (full disk) serves reads; whether it
            // takes writes is `ametist_partition_writable`.
            let serving = matches!(info.state, ActorState::Running | ActorState::ReadOnly);
            let _ = writeln!(up, "ametist_partition_up{{{labels}}} {}", u8::from(serving));
            let _ = writeln!(
                writable,
                "ametist_partition_writable{{{labels}}} {}",
                u8::from(info.state == ActorState::Running)
            );
        }
    }
    out.push_str(
        "# HELP ametist_partition_points Live points held by a partition.\n# TYPE ametist_partition_points gauge\n",
    );
    out.push_str(&points);
    out.push_str("# HELP ametist_partition_mailbox_depth Messages waiting in a partition's mailbox.\n# TYPE ametist_partition_mailbox_depth gauge\n");
    out.push_str(&depth);
    out.push_str("# HELP ametist_partition_restarts_total Restarts of a partition actor after failures.\n# TYPE ametist_partition_restarts_total counter\n");
    out.push_str(&restarts);
    out.push_str(
        "# HELP ametist_partition_up 1 when the partition actor is running and answers (also read-only).\n# TYPE ametist_partition_up gauge\n",
    );
    out.push_str(&up);
    out.push_str(
        "# HELP ametist_partition_writable 1 when the partition takes writes (0 while its storage cannot be written, e.g. a full disk).\n# TYPE ametist_partition_writable gauge\n",
    );
    out.push_str(&writable);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_ten_minutes_of_slots_and_reads_percentiles_from_them() {
        let mut h = History::default();
        let t0 = 1_000_000 - 1_000_000 % SLOT_SECS;
        // 100 requests in one slot: 1 ms to 100 ms.
        for i in 1..=100 {
            h.record(t0 + 1, "GET", "/collections", i % 10 == 0, i as f64 / 1000.0);
        }
        h.record(t0 + SLOT_SECS, "POST", "/collections/{name}/points/query", false, 0.002);
        let v = h.to_json(t0 + SLOT_SECS + 1);
        assert_eq!(v["slot_seconds"], SLOT_SECS);
        let starts = v["slot_starts"].as_array().unwrap();
        assert_eq!(starts.len(), SLOTS);
        assert_eq!(starts.last().unwrap(), &json!(t0 + SLOT_SECS));
        let routes = v["routes"].as_array().unwrap();
        assert_eq!(routes[0]["route"], "*");
        assert_eq!(routes[0]["count"], 101);
        let get = routes.iter().find(|r| r["route"] == "/collections").unwrap();
        assert_eq!(get["count"], 100);
        assert_eq!(get["errors"], 10);
        // Within a bucket's width (19 %) of the true percentiles.
        for (key, truth) in [("p50_ms", 50.0), ("p90_ms", 90.0), ("p99_ms", 99.0)] {
            let got = get[key].as_f64().unwrap();
            assert!((got / truth - 1.0).abs() < 0.2, "{key}: {got} for {truth}");
        }
        let counts = get["slots"]["count"].as_array().unwrap();
        assert_eq!(counts[SLOTS - 2], 100);
        assert_eq!(counts[SLOTS - 1], 0);
        assert_eq!(get["slots"]["p50_ms"][SLOTS - 1], Value::Null);

        // Ten minutes later the first slot has left the window, in the answer and in memory.
        let later = t0 + SLOT_SECS * SLOTS as u64;
        h.record(later, "GET", "/collections", false, 0.001);
        let v = h.to_json(later);
        let get = v["routes"].as_array().unwrap().iter().find(|r| r["route"] == "/collections").unwrap().clone();
        assert_eq!(get["count"], 1);
        assert_eq!(h.slots.len(), 2);
    }

    #[test]
    fn latency_buckets_cover_microseconds_to_minutes() {
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(1e-5), 0);
        assert!(bucket_bound(bucket_of(0.003)) >= 0.003);
        assert!(bucket_bound(bucket_of(0.003) - 1) < 0.003);
        assert_eq!(bucket_of(1e9), LATENCY_BUCKETS - 1);
        assert!(bucket_bound(LATENCY_BUCKETS - 2) > 300.0);
    }
}
