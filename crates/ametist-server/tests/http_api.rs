//! The real `ametist serve` process on a free 127.0.0.1 port, driven over HTTP.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A running server; killed when dropped.
struct Server {
    child: Child,
    base: String,
    http: Client,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("ametist-http-test-{}-{port}", std::process::id()));
        let child = Command::new(env!("CARGO_BIN_EXE_ametist"))
            .arg("serve")
            .args(["--port", &port.to_string(), "--data-dir", dir.to_str().unwrap()])
            .args(["--set", "server.grpc_port=null"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .env_remove("AMETIST_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ametist");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            _dir: TempDir(dir),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.http.get(&server.base).send().is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "PUT" => self.http.put(url),
            "POST" => self.http.post(url),
            "DELETE" => self.http.delete(url),
            _ => unreachable!(),
        };
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(b.to_string()),
            None => req,
        };
        let resp = req.send().expect("request");
        let status = resp.status();
        let text = resp.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn json(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(method, path, Some(&body.to_string()))
    }

    fn points_count(&self, collection: &str) -> u64 {
        let (s, v) = self.call("GET", &format!("/collections/{collection}"), None);
        assert_eq!(s, 200, "{v}");
        v["result"]["points_count"].as_u64().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn error_of(v: &Value) -> String {
    v["status"]["error"].as_str().unwrap_or_else(|| panic!("no error message in {v}")).to_string()
}

#[test]
fn serves_qdrant_shaped_routes() {
    let s = Server::start(&[]);
    let (status, root) = s.call("GET", "/", None);
    assert_eq!(status, 200);
    assert!(root["title"].as_str().unwrap().contains("ametist"));
    assert!(root["version"].is_string());

    let (status, v) =
        s.json("PUT", "/collections/docs", json!({"vectors": {"size": 3, "distance": "Cosine"}, "shard_number": 3}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"], true);
    assert_eq!(v["status"], "ok");
    assert!(v["time"].is_number());

    let (status, v) = s.call("GET", "/collections", None);
    assert_eq!(status, 200);
    assert_eq!(v["result"]["collections"], json!([{"name": "docs"}]));

    let (status, v) = s.json(
        "PUT",
        "/collections/docs/points?wait=true",
        json!({"points": [
            {"id": 1, "vector": [1.0, 0.0, 0.0], "payload": {"title": "one", "tags": ["a", "b"]}},
            {"id": "550e8400-e29b-41d4-a716-446655440000", "vector": [0.0, 1.0, 0.0], "payload": {"title": "uuid"}},
            {"id": 3, "vector": [0.0, 0.0, 2.0]}
        ]}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["status"], "completed");
    // The column-wise batch form.
    let (status, v) = s.json(
        "PUT",
        "/collections/docs/points?wait=true",
        json!({"batch": {"ids": [4, 5], "vectors": [[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]], "payloads": [{"n": 4}, null]}}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(s.points_count("docs"), 5);

    let (status, v) = s.json(
        "POST",
        "/collections/docs/points/query",
        json!({"query": [1.0, 0.1, 0.0], "limit": 2, "with_payload": true}),
    );
    assert_eq!(status, 200, "{v}");
    let points = v["result"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0]["id"], 1);
    assert_eq!(points[0]["payload"]["title"], "one");
    assert_eq!(points[1]["id"], 4);
    // Cosine scores are similarities of normalised vectors.
    let expected = 1.0 / (1.0f64 + 0.01).sqrt();
    assert!((points[0]["score"].as_f64().unwrap() - expected).abs() < 1e-5);
    assert!(v.get("partial").is_none());

    let (status, v) =
        s.json("POST", "/collections/docs/points/query", json!({"query": {"nearest": [0.0, 1.0, 0.0]}, "limit": 1}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["points"][0]["id"], "550e8400-e29b-41d4-a716-446655440000");

    let (status, v) = s.json("POST", "/collections/docs/points", json!({"ids": [3, 1, 99], "with_vector": true}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"].as_array().unwrap().len(), 2);
    assert_eq!(v["result"][0]["id"], 3);
    assert_eq!(v["result"][0]["vector"], json!([0.0, 0.0, 1.0]), "cosine vectors are stored normalised");

    let (status, v) = s.json("POST", "/collections/docs/points/delete?wait=true", json!({"points": [1, 3]}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(s.points_count("docs"), 3);
    let (_, v) = s.json("POST", "/collections/docs/points/query", json!({"query": [1.0, 0.0, 0.0], "limit": 10}));
    let ids: Vec<&Value> = v["result"]["points"].as_array().unwrap().iter().map(|p| &p["id"]).collect();
    assert!(!ids.contains(&&json!(1)) && !ids.contains(&&json!(3)));

    let (status, v) = s.call("GET", "/collections/docs/partitions", None);
    assert_eq!(status, 200);
    let parts = v["result"]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts.iter().map(|p| p["points"].as_u64().unwrap()).sum::<u64>(), 3);
    assert!(parts.iter().all(|p| p["state"] == "running" && p["restarts"] == 0));

    // Euclid returns distances, smallest first.
    s.json("PUT", "/collections/e", json!({"vectors": {"size": 2, "distance": "Euclid"}}));
    s.json(
        "PUT",
        "/collections/e/points?wait=true",
        json!({"points": [{"id": 1, "vector": [3.0, 4.0]}, {"id": 2, "vector": [1.0, 0.0]}]}),
    );
    let (_, v) = s.json("POST", "/collections/e/points/query", json!({"query": [0.0, 0.0], "limit": 2}));
    assert_eq!(v["result"]["points"][0]["id"], 2);
    assert!((v["result"]["points"][1]["score"].as_f64().unwrap() - 5.0).abs() < 1e-6);

    let (status, v) = s.call("DELETE", "/collections/docs", None);
    assert_eq!(status, 200);
    assert_eq!(v["result"], true);
    let (status, v) = s.call("DELETE", "/collections/docs", None);
    assert_eq!(status, 200);
    assert_eq!(v["result"], false);
}

#[test]
fn bad_input_gets_a_4xx_naming_the_problem_and_changes_nothing() {
    let s = Server::start(&["--set", "limits.max_batch=50", "--set", "limits.max_limit=500"]);
    s.json("PUT", "/collections/c", json!({"vectors": {"size": 3, "distance": "Dot"}, "shard_number": 2}));
    s.json(
        "PUT",
        "/collections/c/points?wait=true",
        json!({"points": [{"id": 1, "vector": [1.0, 2.0, 3.0], "payload": {"k": "v"}}]}),
    );

    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "PUT",
            "/collections/c/points?wait=true",
            json!({"points": [{"id": 2, "vector": [1.0, 2.0, 3.0]}, {"id": 3, "vector": [1.0]}]}).to_string(),
            400,
            "expected dim: 3, got 1",
        ),
        (
            "PUT",
            "/collections/c/points?wait=true",
            r#"{"points": [{"id": 2, "vector": [NaN, 1, 2]}]}"#.to_string(),
            400,
            "Format error",
        ),
        (
            "PUT",
            "/collections/c/points?wait=true",
            r#"{"points": [{"id": 2, "vector": [1e999, 1, 2]}]}"#.to_string(),
            400,
            "",
        ),
        ("PUT", "/collections/c/points?wait=true", json!({"points": []}).to_string(), 400, "empty"),
        (
            "PUT",
            "/collections/c/points?wait=true",
            json!({"points": (0..51).map(|i| json!({"id": i + 10, "vector": [1.0, 1.0, 1.0]})).collect::<Vec<_>>()})
                .to_string(),
            400,
            "maximum of 50",
        ),
        (
            "PUT",
            "/collections/c/points?wait=true",
            json!({"points": [{"id": -1, "vector": [1.0, 2.0, 3.0]}]}).to_string(),
            400,
            "negative",
        ),
        (
            "PUT",
            "/collections/c/points?wait=true",
            r#"{"points": [{"id": 2, "vector": [1, 2, 3]}"#.to_string(),
            400,
            "Format error in JSON body",
        ),
        (
            "PUT",
            "/collections/c/points?wait=maybe",
            json!({"points": [{"id": 2, "vector": [1.0, 2.0, 3.0]}]}).to_string(),
            400,
            "wait",
        ),
        (
            "PUT",
            "/collections/c/points?wait=true",
            json!({"batch": {"ids": [7, 8], "vectors": [[1.0, 2.0, 3.0]]}}).to_string(),
            400,
            "2 ids but 1 vectors",
        ),
        (
            "PUT",
            "/collections/nope/points?wait=true",
            json!({"points": [{"id": 2, "vector": [1.0, 2.0, 3.0]}]}).to_string(),
            404,
            "nope",
        ),
        ("POST", "/collections/nope/points/query", json!({"query": [1.0, 2.0, 3.0]}).to_string(), 404, "doesn't exist"),
        (
            "POST",
            "/collections/c/points/query",
            json!({"query": [1.0, 2.0, 3.0], "limit": 0}).to_string(),
            400,
            "limit",
        ),
        (
            "POST",
            "/collections/c/points/query",
            json!({"query": [1.0, 2.0, 3.0], "limit": 100000000}).to_string(),
            400,
            "maximum of 500",
        ),
        (
            "POST",
            "/collections/c/points/query",
            json!({"query": [1.0, 2.0]}).to_string(),
            400,
            "expected dim: 3, got 2",
        ),
        ("POST", "/collections/c/points/query", json!({"qeury": [1.0, 2.0, 3.0]}).to_string(), 400, "qeury"),
        (
            "PUT",
            "/collections/c",
            json!({"vectors": {"size": 3, "distance": "Dot"}}).to_string(),
            409,
            "already exists",
        ),
        ("PUT", "/collections/d", json!({"vectors": {"size": 3, "distance": "Cosinus"}}).to_string(), 400, "Cosinus"),
        ("PUT", "/collections/d", json!({"vectors": {"size": 0, "distance": "Dot"}}).to_string(), 400, "size"),
        ("PUT", "/collections/d", "{".to_string(), 400, "Format error in JSON body"),
        (
            "PUT",
            "/collections/d",
            json!({"vectors": {"size": 3, "distance": "Dot"}, "shard_number": 0}).to_string(),
            400,
            "shard_number",
        ),
        ("GET", "/collections/nope", String::new(), 404, "nope"),
        ("GET", "/no/such/route", String::new(), 404, "no route"),
    ];
    for (method, path, body, want, needle) in cases {
        let (status, v) = s.call(method, path, if body.is_empty() { None } else { Some(&body) });
        assert_eq!(status.as_u16(), want, "{method} {path} {body}: {v}");
        let msg = error_of(&v);
        assert!(msg.contains(needle), "{method} {path}: `{msg}` should mention `{needle}`");
    }
    // Nothing changed: one collection, one point, the original vector and payload.
    let (_, v) = s.call("GET", "/collections", None);
    assert_eq!(v["result"]["collections"], json!([{"name": "c"}]));
    assert_eq!(s.points_count("c"), 1);
    let (_, v) = s.json("POST", "/collections/c/points", json!({"ids": [1, 2, 3], "with_vector": true}));
    assert_eq!(v["result"], json!([{"id": 1, "payload": {"k": "v"}, "vector": [1.0, 2.0, 3.0]}]));
}

#[test]
fn stalled_partition_answers_partial_and_restarts_are_visible() {
    let s = Server::start(&[
        "--set",
        "server.enable_fault_injection=true",
        "--set",
        "limits.search_timeout=300ms",
        "--set",
        "limits.allow_partial_results=true",
    ]);
    s.json("PUT", "/collections/c", json!({"vectors": {"size": 2, "distance": "Euclid"}, "shard_number": 2}));
    let points: Vec<Value> = (0..50).map(|i| json!({"id": i, "vector": [i as f32, 0.0]})).collect();
    s.json("PUT", "/collections/c/points?wait=true", json!({"points": points}));

    let (status, v) = s.json("POST", "/collections/c/partitions/1/fault", json!({"stall_ms": 2000}));
    assert_eq!(status, 200, "{v}");
    let started = Instant::now();
    let resp = s
        .http
        .post(format!("{}/collections/c/points/query", s.base))
        .body(json!({"query": [0.0, 0.0], "limit": 50}).to_string())
        .header("content-type", "application/json")
        .send()
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ametist-partial"], "true");
    let v: Value = resp.json().unwrap();
    assert_eq!(v["partial"]["missing_partitions"][0]["partition"], 1);
    let n = v["result"]["points"].as_array().unwrap().len();
    assert!(n > 0 && n < 50);

    // A panic: the partition restarts, the count shows, and searches are complete again.
    let (status, _) = s.json("POST", "/collections/c/partitions/0/fault", json!({"panic": "drill"}));
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, v) = s.call("GET", "/collections/c/partitions", None);
        let p0 = &v["result"]["partitions"][0];
        let (_, q) = s.json("POST", "/collections/c/points/query", json!({"query": [0.0, 0.0], "limit": 50}));
        if p0["restarts"] == 1 && p0["state"] == "running" && q.get("partial").is_none() {
            assert!(p0["last_failure"].as_str().unwrap().contains("drill"));
            assert_eq!(q["result"]["points"].as_array().unwrap().len(), 50);
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {v} {q}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn overload_is_a_retryable_429_and_acknowledged_writes_are_kept() {
    let s = Server::start(&["--set", "server.enable_fault_injection=true", "--set", "limits.partition_mailbox=2"]);
    s.json("PUT", "/collections/c", json!({"vectors": {"size": 2, "distance": "Euclid"}, "shard_number": 1}));
    s.json("POST", "/collections/c/partitions/0/fault", json!({"stall_ms": 500}));
    let results: Vec<(u64, StatusCode, Option<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40u64)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    let resp = s
                        .http
                        .put(format!("{}/collections/c/points?wait=true", s.base))
                        .header("content-type", "application/json")
                        .body(json!({"points": [{"id": i, "vector": [i as f32, 1.0]}]}).to_string())
                        .send()
                        .unwrap();
                    let retry = resp.headers().get("retry-after").map(|h| h.to_str().unwrap().to_string());
                    (i, resp.status(), retry)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let acked: Vec<u64> = results.iter().filter(|r| r.1 == 200).map(|r| r.0).collect();
    let refused: Vec<_> = results.iter().filter(|r| r.1 == 429).collect();
    assert_eq!(acked.len() + refused.len(), 40, "only 200 or 429: {results:?}");
    assert!(!refused.is_empty(), "a flood against a mailbox of 2 must be refused in part");
    assert!(refused.iter().all(|r| r.2.as_deref() == Some("1")), "429 carries Retry-After");
    let (_, v) = s.json("POST", "/collections/c/points/query", json!({"query": [0.0, 0.0], "limit": 100}));
    let mut got: Vec<u64> =
        v["result"]["points"].as_array().unwrap().iter().map(|p| p["id"].as_u64().unwrap()).collect();
    got.sort();
    let mut want = acked.clone();
    want.sort();
    assert_eq!(got, want, "exactly the acknowledged writes are searchable");
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut s = Server::start(&[]);
    s.json("PUT", "/collections/c", json!({"vectors": {"size": 2, "distance": "Dot"}}));
    let pid = s.child.id();
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(code) = s.child.try_wait().unwrap() {
            assert!(code.success(), "exit status {code:?}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut err = String::new();
    s.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn batch_queries_selectors_scroll_count_payload_and_indexes() {
    let s = Server::start(&[]);
    s.json("PUT", "/collections/b", json!({"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 2}));
    let (status, v) = s.json(
        "PUT",
        "/collections/b/points?wait=true",
        json!({"points": [
            {"id": 1, "vector": [1.0, 0.0], "payload": {"a": 1, "m": {"x": 1, "y": 2}}},
            {"id": 2, "vector": [0.8, 0.1]},
            {"id": 3, "vector": [0.0, 1.0], "payload": {"a": 3}}
        ]}),
    );
    assert_eq!(status, 200, "{v}");

    // Batch query: one answer per request, in order.
    let (status, v) = s.json(
        "POST",
        "/collections/b/points/query/batch",
        json!({"searches": [
            {"query": [1.0, 0.0], "limit": 1},
            {"query": {"nearest": [0.0, 1.0]}, "limit": 2, "offset": 1, "with_payload": true}
        ]}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"][0]["points"][0]["id"], 1);
    assert!(v["result"][0]["points"][0].get("payload").is_none(), "no payload unless asked: {v}");
    // Dot scores for [0, 1]: 3 (1.0), 2 (0.1), 1 (0.0); offset 1 skips 3.
    assert_eq!(v["result"][1]["points"][0]["id"], 2);
    assert_eq!(v["result"][1]["points"][0]["payload"], json!({}), "a point without payload reads as {{}}");
    assert_eq!(v["result"][1]["points"][1]["id"], 1);
    // One bad request fails the whole batch.
    let (status, v) = s.json(
        "POST",
        "/collections/b/points/query/batch",
        json!({"searches": [{"query": [1.0, 0.0]}, {"query": [1.0]}]}),
    );
    assert_eq!(status, 400, "{v}");
    let (status, v) =
        s.json("POST", "/collections/b/points/search/batch", json!({"searches": [{"vector": [1.0, 0.0], "limit": 2}]}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"][0].as_array().unwrap().len(), 2);

    // Payload selectors: include (dot paths) and exclude.
    let (_, v) = s.json("POST", "/collections/b/points", json!({"ids": [1], "with_payload": ["m.y"]}));
    assert_eq!(v["result"][0]["payload"], json!({"m": {"y": 2}}));
    let (_, v) = s.json("POST", "/collections/b/points", json!({"ids": [1], "with_payload": {"exclude": ["m"]}}));
    assert_eq!(v["result"][0]["payload"], json!({"a": 1}));
    let (status, v) = s.json("POST", "/collections/b/points", json!({"ids": [1], "with_payload": 7}));
    assert_eq!(status, 400, "{v}");

    // Query by point id: that point's vector, the point itself left out.
    let (status, v) = s.json("POST", "/collections/b/points/query", json!({"query": 1, "limit": 1}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["points"][0]["id"], 2);
    let (status, v) = s.json("POST", "/collections/b/points/query", json!({"query": {"nearest": 99}}));
    assert_eq!(status, 404, "{v}");

    // Count without a filter.
    let (status, v) = s.json("POST", "/collections/b/points/count", json!({"exact": true}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["count"], 3);

    // Scroll pages, count with a filter, payload writes, payload indexes, delete by filter.
    let (status, v) = s.json("POST", "/collections/b/points/scroll", json!({"limit": 2}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["points"].as_array().unwrap().len(), 2);
    assert_eq!(v["result"]["next_page_offset"], 3);
    let (_, v) = s.json("POST", "/collections/b/points/scroll", json!({"limit": 2, "offset": 3}));
    assert_eq!(v["result"]["points"][0]["id"], 3);
    assert_eq!(v["result"]["next_page_offset"], Value::Null);
    let a1 = json!({"must": [{"key": "a", "match": {"value": 1}}]});
    let (status, v) = s.json("POST", "/collections/b/points/count", json!({"filter": a1}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["count"], 1);
    for (method, path, body) in [
        ("POST", "/collections/b/points/payload?wait=true", json!({"payload": {"z": 1}, "points": [1]})),
        ("PUT", "/collections/b/points/payload?wait=true", json!({"payload": {"z": 2, "a": 1}, "points": [1]})),
        ("POST", "/collections/b/points/payload/delete?wait=true", json!({"keys": ["z"], "points": [1]})),
        ("POST", "/collections/b/points/payload/clear?wait=true", json!({"points": [2]})),
        ("PUT", "/collections/b/index", json!({"field_name": "a", "field_schema": "integer"})),
    ] {
        let (status, v) = s.json(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {v}");
    }
    let (_, v) = s.json("POST", "/collections/b/points", json!({"ids": [1, 2]}));
    assert_eq!(v["result"][0]["payload"], json!({"a": 1}));
    assert_eq!(v["result"][1]["payload"], json!({}));
    let (_, v) = s.call("GET", "/collections/b", None);
    assert_eq!(v["result"]["payload_schema"]["a"]["data_type"], "integer");
    assert!(v["result"]["payload_schema"]["a"]["points"].as_u64().unwrap() >= 1);
    let (status, v) =
        s.json("POST", "/collections/b/points/payload?wait=true", json!({"payload": {"z": 1}, "points": [77]}));
    assert_eq!(status, 404, "{v}");
    assert!(error_of(&v).contains("77"), "{v}");
    let (status, v) = s.json("POST", "/collections/b/points/query", json!({"query": [1.0, 0.0], "filter": a1}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["points"].as_array().unwrap().len(), 1);
    assert_eq!(v["result"]["points"][0]["id"], 1);
    let (status, v) = s.json(
        "PUT",
        "/collections/b/index",
        json!({"field_name": "a", "field_schema": {"type": "geo", "nested": "offers"}}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(error_of(&v).contains("`nested` (an index entry per array element) is not supported yet"), "{v}");
    let (status, v) = s.json("POST", "/collections/b/points/query", json!({"query": [1.0, 0.0], "using": "image"}));
    assert_eq!(status, 400, "{v}");
    assert!(error_of(&v).contains("Not existing vector name error: image"), "{v}");
    let (status, v) = s.call("DELETE", "/collections/b/index/a", None);
    assert_eq!(status, 200, "{v}");
    // A malformed filter is named as such, not as "not supported".
    let (status, v) = s.json("POST", "/collections/b/points/count", json!({"filter": {"must": [{"bogus": 1}]}}));
    assert_eq!(status, 400, "{v}");
    assert!(error_of(&v).contains("filter"), "{v}");
    assert_eq!(s.points_count("b"), 3, "nothing changed");
    let (status, v) =
        s.json("POST", "/collections/b/points/delete?wait=true", json!({"filter": {"must": [{"has_id": [1]}]}}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(s.points_count("b"), 2);
}
