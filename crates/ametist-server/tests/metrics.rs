//! `GET /metrics` in Prometheus text format and `GET /metrics/history` as JSON, from a real
//! server process; and where `GET /` sends a browser.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn metrics_report_requests_latency_points_and_partitions() {
    let dir = std::env::temp_dir().join(format!("ametist-metrics-test-{}", std::process::id()));
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_ametist"))
            .args(["serve", "--port", &port.to_string(), "--data-dir", dir.to_str().unwrap()])
            .args(["--set", "server.grpc_port=null"])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(&base).send().is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    http.put(format!("{base}/collections/m"))
        .body(r#"{"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 2}"#)
        .header("content-type", "application/json")
        .send()
        .unwrap();
    http.put(format!("{base}/collections/m/points?wait=true"))
        .body(r#"{"points": [{"id": 1, "vector": [1, 2]}, {"id": 2, "vector": [3, 4]}, {"id": 3, "vector": [5, 6]}]}"#)
        .header("content-type", "application/json")
        .send()
        .unwrap();
    http.get(format!("{base}/collections/missing")).send().unwrap();

    let resp = http.get(format!("{base}/metrics")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = resp.text().unwrap();
    assert!(
        text.contains(r#"ametist_http_requests_total{method="PUT",route="/collections/{name}/points",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"ametist_http_requests_total{method="GET",route="/collections/{name}",status="404"} 1"#));
    assert!(text.contains("ametist_http_request_duration_seconds_bucket{"));
    let points: u64 = text
        .lines()
        .filter(|l| l.starts_with("ametist_partition_points{collection=\"m\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(points, 3);
    assert!(text.contains(r#"ametist_partition_mailbox_depth{collection="m",partition="1"} 0"#));
    assert!(text.contains(r#"ametist_partition_restarts_total{collection="m",partition="0"} 0"#));
    assert!(text.contains(r#"ametist_partition_up{collection="m",partition="0"} 1"#));

    // The same requests in the history the dashboard charts.
    let history: serde_json::Value = http.get(format!("{base}/metrics/history")).send().unwrap().json().unwrap();
    let routes = history["result"]["routes"].as_array().expect("routes");
    let upsert = routes.iter().find(|r| r["method"] == "PUT" && r["route"] == "/collections/{name}/points").unwrap();
    assert_eq!(upsert["count"], 1);
    assert!(upsert["p99_ms"].as_f64().unwrap() > 0.0);
    let missing = routes.iter().find(|r| r["method"] == "GET" && r["route"] == "/collections/{name}").unwrap();
    assert_eq!(missing["errors"], 1);
    assert!(routes[0]["route"] == "*" && routes[0]["count"].as_u64().unwrap() >= 4);
    let slots = history["result"]["slot_starts"].as_array().unwrap().len();
    assert_eq!(upsert["slots"]["count"].as_array().unwrap().len(), slots);

    // A browser opening the server is sent to the dashboard; API clients get JSON as before.
    let no_redirect = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = no_redirect.get(&base).header("accept", "text/html,*/*;q=0.8").send().unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/dashboard");
    let resp = http.get(&base).send().unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let resp = http.get(format!("{base}/dashboard")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(resp.text().unwrap().contains("/dashboard/app.js"));
    let _ = std::fs::remove_dir_all(&dir);
}
