//! `GET /metrics`: Prometheus text exposition; `GET /metrics/history`: the last minutes of
//! request rates and latency percentiles per route, as JSON.
//!
//! Request counts and latency histograms per route and status are recorded by a
//! middleware; collection and partition figures (points, mailbox depth, restarts, actor
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
    history: Mutex<History>,
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

/// Adds `GET /metrics` and `GET /metrics/history` to `app` and records every request
/// `app` serves.
pub fn install(app: Router, db: Ametist) -> Router {
    let state = MetricsState { metrics: Arc::new(Metrics::default()), db };
    app.layer(middleware::from_fn_with_state(state.clone(), track))
        .merge(Router::new().route("/metrics", get(render)).route("/metrics/history", get(history)).with_state(state))
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
        status,
        secs,
    );
    let mut map = state.metrics.requests.lock().expect("the metrics lock is never held across a panic");
    let s = map.entry((method, route, status)).or_default();
    s.count += 1;
    s.sum += secs;
    for (i, le) in BUCKETS.iter().enumerate() {
        if secs <= *le {
            s.buckets[i] += 1;
        }
    }
    resp
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
    /// Answers with a 4xx or 5xx status.
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
    fn record(&mut self, now: u64, method: &str, route: &str, status: u16, secs: f64) {
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
        if status >= 400 {
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
        for (le, n) in BUCKETS.iter().zip(v.buckets) {
            let _ = writeln!(out, "ametist_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "ametist_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", v.count);
        let _ = writeln!(out, "ametist_http_request_duration_seconds_sum{{{labels}}} {}", v.sum);
        let _ = writeln!(out, "ametist_http_request_duration_seconds_count{{{labels}}} {}", v.count);
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
            h.record(t0 + 1, "GET", "/collections", if i % 10 == 0 { 500 } else { 200 }, i as f64 / 1000.0);
        }
        h.record(t0 + SLOT_SECS, "POST", "/collections/{name}/points/query", 200, 0.002);
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
        h.record(later, "GET", "/collections", 200, 0.001);
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
