//! `GET /metrics`: Prometheus text exposition.
//!
//! Request counts and latency histograms per route and status are recorded by a
//! middleware; collection and partition figures (points, mailbox depth, restarts, actor
//! state) are read from the engine when the endpoint is scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use ametist_engine::supervisor::ActorState;
use ametist_engine::Ametist;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Request statistics, shared by the middleware and the endpoint.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Series>>,
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

/// Adds `GET /metrics` to `app` and records every request `app` serves.
pub fn install(app: Router, db: Ametist) -> Router {
    let state = MetricsState { metrics: Arc::new(Metrics::default()), db };
    app.layer(middleware::from_fn_with_state(state.clone(), track))
        .merge(Router::new().route("/metrics", get(render)).with_state(state))
}

async fn track(State(state): State<MetricsState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let secs = started.elapsed().as_secs_f64();
    let mut map = state.metrics.requests.lock().expect("the metrics lock is never held across a panic");
    let s = map.entry((method, route, resp.status().as_u16())).or_default();
    s.count += 1;
    s.sum += secs;
    for (i, le) in BUCKETS.iter().enumerate() {
        if secs <= *le {
            s.buckets[i] += 1;
        }
    }
    resp
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
