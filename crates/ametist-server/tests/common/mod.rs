//! Helpers of the multi-node tests: real `ametist serve` processes on 127.0.0.1.
#![allow(dead_code)]

pub mod replicas;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::Value;

pub const SECRET: &str = "test-cluster-secret";

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ametist-cluster-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct NodeSpec {
    pub dir: PathBuf,
    pub rest: u16,
    pub grpc: Option<u16>,
    pub seeds: Vec<u16>,
    pub secret: String,
    pub extra: Vec<String>,
}

pub struct Node {
    pub child: Child,
    pub base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeSpec {
    pub fn new(dir: &Path, clustered: bool) -> Self {
        NodeSpec {
            dir: dir.to_path_buf(),
            rest: free_port(),
            grpc: clustered.then(free_port),
            seeds: Vec::new(),
            secret: SECRET.into(),
            extra: Vec::new(),
        }
    }

    pub fn spawn(&self) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ametist"));
        cmd.arg("serve")
            .args(["--port", &self.rest.to_string(), "--data-dir", self.dir.to_str().unwrap()])
            // No gRPC listener: the default port would clash between the nodes.
            .args(["--set", "server.grpc_port=null"])
            .args(["--set", "limits.search_timeout=2s", "--set", "limits.write_timeout=2s"])
            // openraft warns at every heartbeat to a killed node: expected here.
            .env("RUST_LOG", std::env::var("AMETIST_TEST_LOG").unwrap_or_else(|_| "warn,openraft=off".into()))
            .env_remove("AMETIST_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(grpc) = self.grpc {
            let seeds: Vec<String> = self.seeds.iter().map(|p| format!("127.0.0.1:{p}")).collect();
            cmd.args(["--set", "remoting.enabled=true", "--set", "remoting.host=127.0.0.1"])
                .args(["--set", &format!("remoting.port={grpc}")])
                .env("AMETIST__REMOTING__SEEDS", seeds.join(","))
                .env("AMETIST__REMOTING__SECRET", &self.secret);
        }
        for e in &self.extra {
            cmd.args(["--set", e]);
        }
        cmd.spawn().expect("start ametist")
    }

    /// Starts the node and waits until its REST API answers.
    pub fn start(&self) -> Node {
        let mut node = Node { child: self.spawn(), base: format!("http://127.0.0.1:{}", self.rest) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http().get(format!("{}/healthz", node.base)).send().is_err() {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("node on {} exited: {status}", node.base);
            }
            assert!(Instant::now() < deadline, "node on {} did not start", node.base);
            std::thread::sleep(Duration::from_millis(25));
        }
        node
    }
}

pub fn http() -> Client {
    Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

pub fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let c = http();
    let req = match method {
        "GET" => c.get(url),
        "PUT" => c.put(url),
        "POST" => c.post(url),
        "DELETE" => c.delete(url),
        _ => unreachable!(),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let resp = req.send().unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

pub fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
