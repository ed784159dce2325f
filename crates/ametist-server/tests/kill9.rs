//! kill -9 during writes: the real `ametist serve` process, concurrent clients upserting
//! with `wait=true`, killed with SIGKILL at a random moment, restarted on the same data
//! directory, several rounds. After every restart:
//!
//! * the server starts (the store always opens);
//! * every acknowledged point is there with the identical vector and payload;
//! * a point whose write was not acknowledged is either absent or exactly as sent (never
//!   half-written).
//!
//! `kill9_rounds` runs a few rounds (CI); `kill9_soak` (ignored) runs many:
//! `cargo test -p ametist-server --test kill9 -- --ignored`. The seed is printed; replay
//! with `AMETIST_TEST_SEED=<seed>`.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::blocking::Client;
use serde_json::{json, Value};

const DIM: usize = 8;
const COLLECTION: &str = "k9";

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> Client {
    Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

fn start(dir: &Path) -> Server {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_ametist"))
        .arg("serve")
        .args(["--port", &port.to_string(), "--data-dir", dir.to_str().unwrap()])
        .args(["--set", "server.grpc_port=null"])
        // Small log sizes so that snapshots, truncations and segment rollovers happen
        // while the process is being killed.
        .args(["--set", "storage.snapshot_wal_bytes=200000", "--set", "storage.wal_segment_bytes=65536"])
        .env("RUST_LOG", "warn")
        .env_remove("AMETIST_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ametist");
    let server = Server { child, base: format!("http://127.0.0.1:{port}") };
    let client = http();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(&server.base).send().is_err() {
        assert!(Instant::now() < deadline, "the server did not start on {}", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

#[derive(Clone, Debug, PartialEq)]
struct Sent {
    vector: Vec<f32>,
    payload: Value,
}

#[derive(Default)]
struct Log {
    acked: BTreeMap<u64, Sent>,
    unacked: BTreeMap<u64, Sent>,
}

fn random_point(rng: &mut StdRng, id: u64) -> Sent {
    let vector: Vec<f32> = (0..DIM).map(|_| rng.random_range(-10.0f32..10.0)).collect();
    let text: String = (0..rng.random_range(0..40)).map(|_| rng.random_range(b'a'..=b'z') as char).collect();
    Sent {
        vector,
        payload: json!({"id": id, "text": text, "n": rng.random_range(0..1_000_000u32), "nested": {"x": [1, 2]}}),
    }
}

/// One client: upserts small batches with wait=true until told to stop or the server dies.
fn writer(base: String, seed: u64, next_id: Arc<AtomicU64>, stop: Arc<AtomicBool>, log: Arc<Mutex<Log>>) {
    let client = http();
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) {
        let n = rng.random_range(1..6);
        let batch: Vec<(u64, Sent)> = (0..n)
            .map(|_| {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                (id, random_point(&mut rng, id))
            })
            .collect();
        {
            let mut log = log.lock().unwrap();
            for (id, s) in &batch {
                log.unacked.insert(*id, s.clone());
            }
        }
        let body = json!({"points": batch.iter().map(|(id, s)| json!({"id": id, "vector": s.vector, "payload": s.payload})).collect::<Vec<_>>()});
        let resp = client.put(format!("{base}/collections/{COLLECTION}/points?wait=true")).json(&body).send();
        match resp {
            Ok(r) if r.status() == 200 => {
                let mut log = log.lock().unwrap();
                for (id, s) in batch {
                    log.unacked.remove(&id);
                    log.acked.insert(id, s);
                }
            }
            Ok(r) if r.status() == 429 || r.status() == 503 => std::thread::sleep(Duration::from_millis(5)),
            Ok(r) => panic!("unexpected answer {}: {:?}", r.status(), r.text()),
            Err(_) => return, // killed
        }
    }
}

fn retrieve(base: &str, ids: &[u64]) -> BTreeMap<u64, Sent> {
    let client = http();
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(1000) {
        let r = client
            .post(format!("{base}/collections/{COLLECTION}/points"))
            .json(&json!({"ids": chunk, "with_payload": true, "with_vector": true}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        for p in v["result"].as_array().unwrap() {
            let id = p["id"].as_u64().unwrap();
            let vector = p["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            out.insert(id, Sent { vector, payload: p["payload"].clone() });
        }
    }
    out
}

fn check(base: &str, log: &Log, round: usize) {
    let acked: Vec<u64> = log.acked.keys().copied().collect();
    let got = retrieve(base, &acked);
    for (id, sent) in &log.acked {
        match got.get(id) {
            Some(g) => assert_eq!(g, sent, "round {round}: acknowledged point {id} differs"),
            None => panic!("round {round}: acknowledged point {id} is missing ({} acknowledged)", acked.len()),
        }
    }
    let unacked: Vec<u64> = log.unacked.keys().copied().collect();
    let got = retrieve(base, &unacked);
    for (id, g) in &got {
        assert_eq!(g, &log.unacked[id], "round {round}: unacknowledged point {id} is present but not as sent");
    }
    println!(
        "round {round}: {} acknowledged points all present; {} unacknowledged, {} of them present (intact)",
        acked.len(),
        unacked.len(),
        got.len()
    );
}

fn run(rounds: usize, writers: usize) {
    let seed: u64 = std::env::var("AMETIST_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("kill9: seed {seed} (replay with AMETIST_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = TempDir(std::env::temp_dir().join(format!("ametist-kill9-{}-{seed}", std::process::id())));
    let server = start(&dir.0);
    let r = http()
        .put(format!("{}/collections/{COLLECTION}", server.base))
        .json(&json!({"vectors": {"size": DIM, "distance": "Euclid"}, "shard_number": 2}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut server = Some(server);
    let log = Arc::new(Mutex::new(Log::default()));
    let next_id = Arc::new(AtomicU64::new(1));
    for round in 0..rounds {
        let s = server.take().unwrap_or_else(|| start(&dir.0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..writers)
            .map(|w| {
                let (base, next_id, stop, log) = (s.base.clone(), next_id.clone(), stop.clone(), log.clone());
                let seed = rng.random();
                let _ = w;
                std::thread::spawn(move || writer(base, seed, next_id, stop, log))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.random_range(150..1200)));
        drop(s); // SIGKILL (Child::kill), then reaped
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        let s = start(&dir.0);
        check(&s.base, &log.lock().unwrap(), round);
        server = Some(s);
    }
    assert!(log.lock().unwrap().acked.len() > 50, "too few writes were acknowledged to test anything");
}

#[test]
fn kill9_rounds() {
    run(5, 4);
}

#[test]
#[ignore]
fn kill9_soak() {
    run(40, 8);
}
