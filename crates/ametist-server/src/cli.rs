//! Client subcommands: `ametist import`, `ametist search`, `ametist collections`.
//!
//! They talk to a running server over its REST API, exactly as any other client would.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

/// Where the server is.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Base URL of the server.
    #[arg(long, env = "AMETIST_URL", default_value = "http://127.0.0.1:6333")]
    pub url: String,
    /// The server's API key (`service.api_key`), sent as the `api-key` header.
    #[arg(long, env = "AMETIST_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Target collection.
    #[arg(long, short = 'n')]
    pub collection: String,
    /// Vectors to import: `.fvecs`, `.npy` (float32 or float64, 2-D) or `.jsonl`
    /// (one `{"id", "vector", "payload"}` object per line).
    pub file: PathBuf,
    /// Create the collection first (its size is taken from the file).
    #[arg(long)]
    pub create: bool,
    /// Metric of a created collection: Cosine, Dot, Euclid or Manhattan.
    #[arg(long, default_value = "Cosine")]
    pub distance: String,
    /// Partitions of a created collection (default: the server's).
    #[arg(long)]
    pub partitions: Option<usize>,
    /// Points per request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// First id for files without ids (.fvecs, .npy): row i gets id `id_start + i`.
    #[arg(long, default_value_t = 0)]
    pub id_start: u64,
    /// Import at most this many points.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long, short = 'n')]
    pub collection: String,
    /// The query vector as JSON, e.g. `[0.1, 0.2, 0.3]`.
    #[arg(long)]
    pub vector: String,
    #[arg(long, short = 'k', default_value_t = 10)]
    pub limit: usize,
    /// A Qdrant filter as JSON.
    #[arg(long)]
    pub filter: Option<String>,
    /// Print payloads.
    #[arg(long)]
    pub with_payload: bool,
    /// Beam width of the graph search.
    #[arg(long)]
    pub ef: Option<usize>,
    /// Exact search.
    #[arg(long)]
    pub exact: bool,
}

/// `ametist import`: streams a file of vectors into a collection, with a progress bar
/// and a final points-per-second figure.
pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let mut source = open_source(&args.file, args.id_start)?;
    let total = match (source.len, args.limit) {
        (Some(n), Some(l)) => Some(n.min(l)),
        (n, l) => n.or(l),
    };
    if args.create {
        let body = json!({
            "vectors": {"size": source.dim, "distance": args.distance},
            "shard_number": args.partitions,
        });
        client.call("PUT", &format!("/collections/{}", args.collection), Some(body))?;
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n as u64),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} points ({per_sec}, eta {eta})")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut done = 0usize;
    loop {
        let want = match args.limit {
            Some(l) => args.batch.min(l - done),
            None => args.batch,
        };
        if want == 0 {
            break;
        }
        let batch = source.next_batch(want)?;
        if batch.is_empty() {
            break;
        }
        let n = batch.len();
        let path = format!("/collections/{}/points?wait=true", args.collection);
        client.call_with_retry("PUT", &path, json!({ "points": batch }))?;
        done += n;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {done} points into `{}` in {secs:.1} s: {:.0} points/s",
        args.collection,
        done as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// `ametist search`: one query, results printed as JSON lines.
pub fn search(args: SearchArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let vector: Value = serde_json::from_str(&args.vector).context("--vector must be a JSON list of numbers")?;
    let mut body = json!({ "query": vector, "limit": args.limit, "with_payload": args.with_payload });
    if let Some(f) = &args.filter {
        body["filter"] = serde_json::from_str(f).context("--filter must be JSON")?;
    }
    if args.ef.is_some() || args.exact {
        body["params"] = json!({ "hnsw_ef": args.ef, "exact": args.exact });
    }
    let v = client.call("POST", &format!("/collections/{}/points/query", args.collection), Some(body))?;
    for p in v["result"]["points"].as_array().into_iter().flatten() {
        println!("{p}");
    }
    if let Some(partial) = v.get("partial") {
        eprintln!("partial result: {partial}");
    }
    Ok(())
}

/// `ametist collections`: each collection with its point count and status.
pub fn collections(args: ServerArgs) -> anyhow::Result<()> {
    let client = Client::new(&args)?;
    let v = client.call("GET", "/collections", None)?;
    for c in v["result"]["collections"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or_default();
        let info = client.call("GET", &format!("/collections/{name}"), None)?;
        let r = &info["result"];
        println!(
            "{name}\t{} points\t{} dims\t{}\t{} partitions\t{}",
            r["points_count"],
            r["config"]["params"]["vectors"]["size"],
            r["config"]["params"]["vectors"]["distance"].as_str().unwrap_or("?"),
            r["config"]["params"]["shard_number"],
            r["status"].as_str().unwrap_or("?"),
        );
    }
    Ok(())
}

struct Client {
    base: String,
    api_key: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    fn new(server: &ServerArgs) -> anyhow::Result<Self> {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build()?;
        Ok(Client { base: server.url.trim_end_matches('/').to_string(), api_key: server.api_key.clone(), http })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, v) = self.send(method, path, body)?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {}", v["status"]["error"].as_str().unwrap_or(&v.to_string()));
        }
        Ok(v)
    }

    /// Retries writes the server refused as overloaded (429/503), honouring its advice.
    fn call_with_retry(&self, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let mut delay = Duration::from_millis(100);
        for _ in 0..20 {
            let (status, v) = self.send(method, path, Some(body.clone()))?;
            if status.is_success() {
                return Ok(v);
            }
            if status.as_u16() != 429 && status.as_u16() != 503 {
                bail!("{method} {path}: {status}: {}", v["status"]["error"].as_str().unwrap_or(&v.to_string()));
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        bail!("{method} {path}: still overloaded after 20 retries")
    }

    fn send(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let url = format!("{}{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.http.request(method, &url);
        if let Some(key) = &self.api_key {
            req = req.header("api-key", key);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        let text = resp.text()?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v))
    }
}

/// A file of vectors read batch by batch.
struct Source {
    dim: usize,
    len: Option<usize>,
    next_id: u64,
    kind: SourceKind,
}

enum SourceKind {
    Fvecs(BufReader<File>),
    /// Row-major matrix data after the header; `f64` when the file holds doubles.
    Npy {
        reader: BufReader<File>,
        f64: bool,
        rows_left: usize,
    },
    Jsonl {
        lines: std::io::Lines<BufReader<File>>,
        line_no: usize,
    },
}

fn open_source(path: &Path, id_start: u64) -> anyhow::Result<Source> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata()?.len();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    let mut reader = BufReader::new(file);
    match ext.as_str() {
        "fvecs" => {
            let mut head = [0u8; 4];
            reader.read_exact(&mut head).context("empty .fvecs file")?;
            let dim = i32::from_le_bytes(head);
            if dim <= 0 {
                bail!("{}: first row has dimension {dim}", path.display());
            }
            let dim = dim as usize;
            let row = 4 + 4 * dim as u64;
            let file = File::open(path)?;
            Ok(Source {
                dim,
                len: Some((size / row) as usize),
                next_id: id_start,
                kind: SourceKind::Fvecs(BufReader::new(file)),
            })
        }
        "npy" => {
            let (dim, rows, f64) = read_npy_header(&mut reader).with_context(|| format!("{}", path.display()))?;
            Ok(Source {
                dim,
                len: Some(rows),
                next_id: id_start,
                kind: SourceKind::Npy { reader, f64, rows_left: rows },
            })
        }
        "jsonl" | "ndjson" => {
            // The dimension is read from the first line.
            let mut first = String::new();
            BufReader::new(File::open(path)?).read_line(&mut first)?;
            let v: Value = serde_json::from_str(&first).context("first line is not JSON")?;
            let dim = v["vector"].as_array().map(|a| a.len()).ok_or_else(|| anyhow!("first line has no `vector`"))?;
            Ok(Source {
                dim,
                len: None,
                next_id: id_start,
                kind: SourceKind::Jsonl { lines: reader.lines(), line_no: 0 },
            })
        }
        other => bail!("unsupported file type `.{other}`: use .fvecs, .npy or .jsonl"),
    }
}

impl Source {
    fn next_batch(&mut self, n: usize) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::with_capacity(n);
        match &mut self.kind {
            SourceKind::Fvecs(r) => {
                let mut buf = vec![0u8; 4 + 4 * self.dim];
                while out.len() < n {
                    match r.read_exact(&mut buf) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                        Err(e) => return Err(e.into()),
                    }
                    let d = i32::from_le_bytes(buf[..4].try_into().expect("4 bytes"));
                    if d as usize != self.dim {
                        bail!("row {} has dimension {d}, expected {}", self.next_id, self.dim);
                    }
                    let v: Vec<f32> =
                        buf[4..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
                    out.push(json!({ "id": self.next_id, "vector": v }));
                    self.next_id += 1;
                }
            }
            SourceKind::Npy { reader, f64, rows_left } => {
                let width = if *f64 { 8 } else { 4 };
                let mut buf = vec![0u8; width * self.dim];
                while out.len() < n && *rows_left > 0 {
                    reader.read_exact(&mut buf)?;
                    let v: Vec<f32> = if *f64 {
                        buf.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect()
                    } else {
                        buf.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
                    };
                    out.push(json!({ "id": self.next_id, "vector": v }));
                    self.next_id += 1;
                    *rows_left -= 1;
                }
            }
            SourceKind::Jsonl { lines, line_no } => {
                while out.len() < n {
                    let Some(line) = lines.next() else { break };
                    *line_no += 1;
                    let line = line?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let mut v: Value =
                        serde_json::from_str(&line).with_context(|| format!("line {line_no} is not JSON"))?;
                    if v.get("vector").is_none() {
                        bail!("line {line_no} has no `vector`");
                    }
                    if v.get("id").is_none() {
                        v["id"] = json!(self.next_id);
                        self.next_id += 1;
                    }
                    out.push(v);
                }
            }
        }
        Ok(out)
    }
}

/// Reads a NumPy `.npy` header: a 2-D little-endian float32/float64 array in C order.
fn read_npy_header(r: &mut impl Read) -> anyhow::Result<(usize, usize, bool)> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic[..6] != b"\x93NUMPY" {
        bail!("not a .npy file");
    }
    let header_len = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)?;
            u32::from_le_bytes(b) as usize
        }
        v => bail!("unsupported .npy version {v}"),
    };
    let mut header = vec![0u8; header_len];
    r.read_exact(&mut header)?;
    let header = String::from_utf8_lossy(&header);
    let f64 = if header.contains("'<f4'") {
        false
    } else if header.contains("'<f8'") {
        true
    } else {
        bail!("only little-endian float32/float64 arrays are supported: {header}");
    };
    if header.contains("'fortran_order': True") {
        bail!("Fortran-ordered arrays are not supported");
    }
    let shape = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| anyhow!("no shape in header: {header}"))?;
    let dims: Vec<usize> =
        shape.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect::<Result<_, _>>()?;
    match dims.as_slice() {
        [rows, dim] => Ok((*dim, *rows, f64)),
        _ => bail!("expected a 2-D array, shape is ({shape})"),
    }
}
