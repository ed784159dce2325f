//! `GET /openapi.json` from a real server process: behind the API key like every route, and
//! every operation it documents reaches a handler (the unit tests in `api::openapi` check
//! the other direction, that every route `router()` registers is documented).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::Value;

struct Killed(Child, std::path::PathBuf);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

const KEY: &str = "openapi-test-key";

fn start() -> (Killed, String) {
    let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("an address").port();
    let dir = std::env::temp_dir().join(format!("ametist-openapi-test-{}-{port}", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_ametist"))
        .args(["serve", "--port", &port.to_string(), "--data-dir", dir.to_str().expect("a UTF-8 temp dir")])
        .args(["--set", "server.grpc_port=null"])
        .args(["--set", &format!("service.api_key={KEY}")])
        .env("RUST_LOG", "warn")
        .env_remove("AMETIST_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ametist");
    let server = Killed(child, dir);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::blocking::get(format!("{base}/healthz")).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, base)
}

#[test]
fn the_document_is_served_behind_the_key_and_every_operation_reaches_a_handler() {
    let (_server, base) = start();
    let http = Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");

    let anonymous = http.get(format!("{base}/openapi.json")).send().expect("GET /openapi.json");
    assert_eq!(anonymous.status(), 401, "the document follows the API key like every route");
    let resp = http.get(format!("{base}/openapi.json")).header("api-key", KEY).send().expect("GET /openapi.json");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().expect("ASCII").starts_with("application/json"));
    let doc: Value = resp.json().expect("the document is JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));

    let create = http
        .put(format!("{base}/collections/oa"))
        .header("api-key", KEY)
        .json(&serde_json::json!({"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 1}))
        .send()
        .expect("create a collection");
    assert_eq!(create.status(), 200);

    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("a path item") {
            let Ok(m) = method.to_uppercase().parse::<Method>() else { continue };
            if !matches!(m, Method::GET | Method::PUT | Method::POST | Method::DELETE | Method::PATCH) {
                continue;
            }
            // Deleting and recovering go to a collection that does not exist, so that the
            // others keep theirs; the route is matched all the same.
            let destructive = (m == Method::DELETE && path == "/collections/{name}")
                || path.ends_with("/recover")
                || path.ends_with("/upload");
            let name = if destructive { "oa-other" } else { "oa" };
            let url = path
                .replace("{name}", name)
                .replace("{id}", "1")
                .replace("{field}", "f")
                .replace("{snapshot}", "none.snapshot");
            let mut req = http.request(m.clone(), format!("{base}{url}")).header("api-key", KEY);
            if matches!(m, Method::PUT | Method::POST | Method::PATCH) {
                req = req.header("content-type", "application/json").body("{}");
            }
            let resp = req.send().unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let status = resp.status();
            let text = resp.text().unwrap_or_default();
            assert_ne!(status, 405, "{method} {path}: the method is not served");
            assert!(!text.contains("no route for"), "{method} {path}: no route ({status}: {text})");
            assert!(!status.is_server_error(), "{method} {path}: {status}: {text}");
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} operations in the document");
}
