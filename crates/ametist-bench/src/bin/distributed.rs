//! Search latency and throughput of 3 local cluster nodes against 1 node, same data.
//!
//! ```text
//! distributed AMETIST_BIN [--points N] [--dim D] [--partitions P] [--queries Q] [--clients C]
//! ```
//!
//! Starts `AMETIST_BIN serve` processes on 127.0.0.1 (data in a temp directory, removed at
//! the end): first one node alone, then a 3-node cluster. In each, creates a cosine
//! collection of `P` partitions, upserts `N` random points (seeded, identical in both
//! runs) through the first node, and sends `Q` searches (top 10, default HNSW settings)
//! from `C` client threads, spread round-robin over the nodes. Prints build time, p50/p99
//! latency and queries per second. All processes share one machine, so the 3-node figures
//! measure the protocol's cost (serialisation, gRPC hops, the extra coordinator), not the
//! gain of more hardware.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

struct Args {
    bin: PathBuf,
    points: usize,
    dim: usize,
    partitions: usize,
    queries: usize,
    clients: usize,
}

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let root = std::env::temp_dir().join(format!("ametist-distributed-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let result = (|| -> Result<()> {
        println!(
            "points={} dim={} partitions={} queries={} clients={}",
            args.points, args.dim, args.partitions, args.queries, args.clients
        );
        println!("{:<8} {:>10} {:>10} {:>10} {:>10}", "nodes", "build s", "p50 ms", "p99 ms", "QPS");
        for nodes in [1usize, 3] {
            let (build, p50, p99, qps) = run(&args, &root.join(format!("n{nodes}")), nodes)?;
            println!("{nodes:<8} {build:>10.2} {p50:>10.2} {p99:>10.2} {qps:>10.0}");
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn run(args: &Args, dir: &Path, nodes: usize) -> Result<(f64, f64, f64, f64)> {
    let mut procs = Vec::new();
    let mut bases = Vec::new();
    let mut seeds = Vec::new();
    for i in 0..nodes {
        let rest = free_port()?;
        let grpc = free_port()?;
        let mut cmd = Command::new(&args.bin);
        cmd.arg("serve")
            .args(["--port", &rest.to_string(), "--set", "server.grpc_port=null", "--data-dir"])
            .arg(dir.join(i.to_string()))
            .env("RUST_LOG", "warn,openraft=error")
            .stdout(Stdio::null());
        if nodes > 1 {
            cmd.args(["--set", "remoting.enabled=true", "--set", "remoting.host=127.0.0.1"])
                .args(["--set", &format!("remoting.port={grpc}")])
                .env("AMETIST__REMOTING__SECRET", "bench")
                .env("AMETIST__REMOTING__SEEDS", seeds.join(","));
        }
        procs.push(Node(cmd.spawn().context("start ametist")?));
        let base = format!("http://127.0.0.1:{rest}");
        wait_up(&base)?;
        bases.push(base);
        seeds.push(format!("127.0.0.1:{grpc}"));
    }
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let create = json!({ "vectors": { "size": args.dim, "distance": "Cosine" }, "shard_number": args.partitions });
    check(client.put(format!("{}/collections/bench", bases[0])).json(&create).send()?)?;
    for b in &bases {
        while client.get(format!("{b}/collections/bench")).send()?.status() != 200 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut rng = Lcg(42);
    let started = Instant::now();
    for chunk in (0..args.points).collect::<Vec<_>>().chunks(1000) {
        let pts: Vec<Value> = chunk
            .iter()
            .map(|&id| json!({ "id": id, "vector": (0..args.dim).map(|_| rng.next()).collect::<Vec<f32>>() }))
            .collect();
        check(
            client
                .put(format!("{}/collections/bench/points?wait=true", bases[0]))
                .json(&json!({ "points": pts }))
                .send()?,
        )?;
    }
    let build = started.elapsed().as_secs_f64();
    let queries: Arc<Vec<Vec<f32>>> =
        Arc::new((0..args.queries).map(|_| (0..args.dim).map(|_| rng.next()).collect()).collect());
    let bases = Arc::new(bases);
    // Warm-up: connections and caches.
    for q in queries.iter().take(50) {
        check(
            client
                .post(format!("{}/collections/bench/points/search", bases[0]))
                .json(&json!({ "vector": q, "limit": 10 }))
                .send()?,
        )?;
    }
    let started = Instant::now();
    let threads: Vec<_> = (0..args.clients)
        .map(|t| {
            let (queries, bases, clients) = (queries.clone(), bases.clone(), args.clients);
            std::thread::spawn(move || -> Result<Vec<f64>> {
                let client = reqwest::blocking::Client::new();
                let mut lat = Vec::new();
                for (i, q) in queries.iter().enumerate().skip(t).step_by(clients) {
                    let base = &bases[i % bases.len()];
                    let s = Instant::now();
                    check(
                        client
                            .post(format!("{base}/collections/bench/points/search"))
                            .json(&json!({ "vector": q, "limit": 10 }))
                            .send()?,
                    )?;
                    lat.push(s.elapsed().as_secs_f64() * 1000.0);
                }
                Ok(lat)
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in threads {
        lat.extend(t.join().map_err(|_| anyhow::anyhow!("client thread panicked"))??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    drop(procs);
    Ok((build, pct(0.5), pct(0.99), lat.len() as f64 / elapsed))
}

fn check(resp: reqwest::blocking::Response) -> Result<()> {
    if !resp.status().is_success() {
        bail!("{}: {}", resp.status(), resp.text().unwrap_or_default());
    }
    Ok(())
}

fn wait_up(base: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::blocking::get(format!("{base}/healthz")).is_err() {
        if Instant::now() > deadline {
            bail!("{base} did not start");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A small deterministic generator: the same data in both runs without a rand dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let bin = PathBuf::from(it.next().context("usage: distributed AMETIST_BIN [--points N] ...")?);
    let mut a = Args { bin, points: 20_000, dim: 128, partitions: 6, queries: 2000, clients: 4 };
    while let Some(flag) = it.next() {
        let v: usize = it.next().context("flag value")?.parse()?;
        match flag.as_str() {
            "--points" => a.points = v,
            "--dim" => a.dim = v,
            "--partitions" => a.partitions = v,
            "--queries" => a.queries = v,
            "--clients" => a.clients = v,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}
