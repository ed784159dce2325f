//! `ametist import`, `search` and `collections` against a real server process.

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

fn ametist(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ametist")).args(args).output().expect("run ametist");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn import_search_and_list_through_the_cli() {
    let dir = std::env::temp_dir().join(format!("ametist-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_ametist"))
            .args(["serve", "--port", &port.to_string(), "--data-dir", dir.join("data").to_str().unwrap()])
            .args(["--set", "server.grpc_port=null"])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // .fvecs: 25 rows of dimension 3, row i = [i, 1, 0].
    let mut fvecs = Vec::new();
    for i in 0..25 {
        fvecs.extend_from_slice(&3i32.to_le_bytes());
        for x in [i as f32, 1.0, 0.0] {
            fvecs.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(dir.join("a.fvecs"), &fvecs).unwrap();
    // .npy (version 1, float64): 4 rows of dimension 3.
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 3), }";
    let mut padded = header.to_string();
    while !(10 + padded.len() + 1).is_multiple_of(64) {
        padded.push(' ');
    }
    padded.push('\n');
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    npy.extend_from_slice(padded.as_bytes());
    for i in 0..4 {
        for x in [100.0 + i as f64, 1.0, 0.0] {
            npy.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(dir.join("b.npy"), &npy).unwrap();
    // .jsonl with ids and payloads.
    std::fs::write(
        dir.join("c.jsonl"),
        "{\"id\": \"doc-1\", \"vector\": [0, 0, 5], \"payload\": {\"kind\": \"doc\"}}\n{\"id\": \"doc-2\", \"vector\": [0, 0, 6]}\n",
    )
    .unwrap();

    let a = dir.join("a.fvecs");
    let (ok, out, err) = ametist(&[
        "import",
        "--url",
        &url,
        "-n",
        "v",
        "--create",
        "--distance",
        "Euclid",
        "--batch",
        "10",
        a.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("imported 25 points") && out.contains("points/s"), "{out}");
    let b = dir.join("b.npy");
    let (ok, out, err) = ametist(&["import", "--url", &url, "-n", "v", "--id-start", "1000", b.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("imported 4 points"), "{out}");
    let c = dir.join("c.jsonl");
    let (ok, _, err) = ametist(&["import", "--url", &url, "-n", "v", c.to_str().unwrap()]);
    assert!(ok, "{err}");

    let (ok, out, err) = ametist(&["collections", "--url", &url]);
    assert!(ok, "{err}");
    assert!(out.starts_with("v\t31 points\t3 dims\tEuclid"), "{out}");

    let (ok, out, err) = ametist(&["search", "--url", &url, "-n", "v", "--vector", "[101, 1, 0]", "-k", "2"]);
    assert!(ok, "{err}");
    let ids: Vec<serde_json::Value> =
        out.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].clone()).collect();
    assert_eq!(ids, vec![serde_json::json!(1001), serde_json::json!(1000)]);
    let (ok, out, _) =
        ametist(&["search", "--url", &url, "-n", "v", "--vector", "[0, 0, 5]", "-k", "1", "--with-payload"]);
    assert!(ok);
    assert!(out.contains("\"doc-1\"") && out.contains("\"kind\":\"doc\""), "{out}");

    // Errors name the problem.
    let (ok, _, err) = ametist(&["import", "--url", &url, "-n", "missing", a.to_str().unwrap()]);
    assert!(!ok && err.contains("404"), "{err}");
    let (ok, _, err) = ametist(&["search", "--url", &url, "-n", "v", "--vector", "[1, 2]"]);
    assert!(!ok && err.contains("expected dim: 3, got 2"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
