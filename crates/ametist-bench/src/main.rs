//! Ametist's HNSW or IVF fast-scan index on a TEXMEX-format data set (base.fvecs, query.fvecs, gt.ivecs as written by the data preparation script), for side-by-side runs with
//! hnswlib, faiss and ScaNN (see `bench/compare.py` and `bench/speed.py`).
//!
//! ```text
//! ametist-bench DATA_DIR [--metric euclid|cosine|dot] [--gt gt] [--m 16] [--ef-construction 200]
//!               [--threads 2] [--ef 10,20,40,50,80,100,150,200,300] [--k 10] [--queries N] [--json]
//!               [--quantization none|int4|int8|binary|binary_two_bits|binary_one_and_half_bits]
//!               [--index hnsw|ivf|auto] [--lists N] [--probe LISTS/RERANK,...]
//! ```
//!
//! With codes, `ef` is the walk's beam, all of it re-scored with the f32 vectors: a search
//! for `k` with Qdrant's `oversampling: o` walks with `max(ef_search, k·o)`, so the rows at
//! `ef = 10·o` are what oversampling `o` gives at `k = 10`.
//!
//! With `--index ivf` a search parameter is `LISTS/RERANK` (lists probed / estimates
//! re-scored exactly) where the graph takes `ef`; `auto` is IVF below 256 dimensions and the
//! graph with int4 codes from 256.
//!
//! Prints build time, resident memory per vector (VmRSS before and after the build), and for
//! every ef: recall@10 (plain id overlap and the ann-benchmarks rule, where a hit is any
//! returned point within the 10th true distance + 1e-3), queries per second with one and
//! with two search threads, and p50/p99 single-thread latency.

use std::path::PathBuf;
use std::time::Instant;

use ametist_bench::{fvecs, read_vecs, rss_kib, thread_cpu_ns};
use ametist_core::flat::Candidate;
use ametist_core::hnsw::{Hnsw, HnswParams, Quantization};
use ametist_core::ivf::{Ivf, IvfParams, Probe};
use ametist_core::Metric;
use anyhow::{bail, Context, Result};

struct Args {
    dir: PathBuf,
    metric: Metric,
    gt: String,
    m: usize,
    ef_construction: usize,
    threads: usize,
    efs: Vec<usize>,
    k: usize,
    queries: Option<usize>,
    json: bool,
    repeat: usize,
    serve: bool,
    cache: Option<PathBuf>,
    base_limit: Option<usize>,
    exact: usize,
    quantization: Quantization,
    index: String,
    lists: usize,
    spherical: bool,
    params: Vec<String>,
}

/// The index under test.
enum Index {
    Hnsw(Hnsw),
    Ivf(Ivf),
}

impl Index {
    /// One search; `param` is `ef` for the graph and `LISTS/RERANK` for IVF.
    fn search(&self, q: &[f32], k: usize, param: &Param) -> Vec<Candidate> {
        match (self, param) {
            (Index::Hnsw(h), Param::Ef(ef)) => h.search(q, k, *ef, None),
            (Index::Ivf(i), Param::Probe(p)) => i.search(q, k, *p, None),
            _ => panic!("search parameter does not fit the index"),
        }
    }

    fn search_exact(&self, q: &[f32], k: usize) -> Vec<Candidate> {
        match self {
            Index::Hnsw(h) => h.search_exact(q, k, None),
            Index::Ivf(i) => i.search_exact(q, k, None),
        }
    }
}

#[derive(Clone, Copy)]
enum Param {
    Ef(usize),
    Probe(Probe),
}

fn param(s: &str) -> Result<Param> {
    Ok(match s.split_once('/') {
        Some((l, r)) => Param::Probe(Probe { lists: l.parse()?, rerank: r.parse()? }),
        None => Param::Ef(s.parse()?),
    })
}

fn parse() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        dir: PathBuf::new(),
        metric: Metric::Euclid,
        gt: "gt".into(),
        m: 16,
        ef_construction: 200,
        threads: 2,
        efs: vec![10, 20, 40, 50, 80, 100, 150, 200, 300],
        k: 10,
        queries: None,
        json: false,
        repeat: 1,
        serve: false,
        cache: None,
        base_limit: None,
        exact: 0,
        quantization: Quantization::None,
        index: "hnsw".into(),
        lists: 0,
        spherical: true,
        params: Vec::new(),
    };
    let mut dir = None;
    while let Some(arg) = it.next() {
        let mut val = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--metric" => {
                a.metric = match val()?.as_str() {
                    "euclid" | "l2" => Metric::Euclid,
                    "cosine" | "angular" => Metric::Cosine,
                    "dot" | "ip" => Metric::Dot,
                    m => bail!("unknown metric {m}"),
                }
            }
            "--gt" => a.gt = val()?,
            "--m" => a.m = val()?.parse()?,
            "--ef-construction" => a.ef_construction = val()?.parse()?,
            "--threads" => a.threads = val()?.parse()?,
            "--ef" => a.efs = val()?.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?,
            // IVF search parameters, LISTS/RERANK,...
            "--probe" => a.params = val()?.split(',').map(|s| s.trim().to_string()).collect(),
            "--index" => a.index = val()?,
            "--lists" => a.lists = val()?.parse()?,
            "--no-spherical" => a.spherical = false,
            "--k" => a.k = val()?.parse()?,
            "--queries" => a.queries = Some(val()?.parse()?),
            "--repeat" => a.repeat = val()?.parse()?,
            "--json" => a.json = true,
            // Load the index from this snapshot file if it exists, else build and write it
            // (for quick search-side experiments; build figures are then meaningless).
            // Index only the first N base vectors (recall then counts against the full set).
            "--base-limit" => a.base_limit = Some(val()?.parse()?),
            "--index-cache" => a.cache = Some(PathBuf::from(val()?)),
            // Also time N exact searches (`Hnsw::search_exact`, the engine's exact path).
            "--exact" => a.exact = val()?.parse()?,
            // Walk on codes, re-scoring with the f32 vectors (`Hnsw::set_quantization`).
            "--quantization" => a.quantization = val()?.parse().map_err(anyhow::Error::msg)?,
            // Build, print the build line, then answer `EF REPEAT` lines from stdin with a
            // JSON row each (used by bench/compare.py to interleave with hnswlib).
            "--serve" => {
                a.serve = true;
                a.json = true;
            }
            "-h" | "--help" => {
                println!("usage: ametist-bench DATA_DIR [--metric euclid|cosine|dot] [--gt gt] [--m 16] [--ef-construction 200] [--threads 2] [--ef 10,20,..] [--k 10] [--queries N] [--repeat 1] [--json] [--quantization none|int4|int8|binary|binary_two_bits|binary_one_and_half_bits]");
                std::process::exit(0);
            }
            _ if dir.is_none() && !arg.starts_with("--") => dir = Some(PathBuf::from(arg)),
            _ => bail!("unknown argument {arg}"),
        }
    }
    a.dir = dir.context("usage: ametist-bench DATA_DIR [options] (--help)")?;
    Ok(a)
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Distance as ann-benchmarks compares it, in f64: euclid distance, or minus the similarity.
fn exact_distance(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    match metric {
        Metric::Euclid => a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>().sqrt(),
        _ => -a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>(),
    }
}

fn main() -> Result<()> {
    let a = parse()?;
    let (dim, mut base) = fvecs(&a.dir.join("base.fvecs"))?;
    let (qdim, mut queries) = fvecs(&a.dir.join("query.fvecs"))?;
    let (gk, gt) = read_vecs(&a.dir.join(format!("{}.ivecs", a.gt)))?;
    if qdim != dim || gk < a.k {
        bail!("dimensions do not match (base {dim}, queries {qdim}, ground truth k {gk})");
    }
    if a.metric.normalises() {
        base.chunks_exact_mut(dim).for_each(normalise);
        queries.chunks_exact_mut(dim).for_each(normalise);
    }
    if let Some(limit) = a.base_limit {
        base.truncate(limit * dim);
    }
    let n = base.len() / dim;
    let nq = a.queries.unwrap_or(usize::MAX).min(queries.len() / dim);
    let params = HnswParams { m: a.m, ef_construction: a.ef_construction, ef_search: 50 };

    // `auto`: the fast-scan IVF below 256 dimensions, the graph with int4 codes from 256
    // (where a 2-dimensional sub-space code per 4 bits no longer pays for its table).
    let kind = match a.index.as_str() {
        "auto" if dim < 256 => "ivf",
        "auto" => "hnsw-int4",
        "hnsw" | "ivf" => a.index.as_str(),
        other => bail!("unknown index {other} (hnsw, ivf or auto)"),
    };
    let quantization = if kind == "hnsw-int4" { Quantization::Int4 } else { a.quantization };
    let rss0 = rss_kib();
    let t = Instant::now();
    let index = if kind == "ivf" {
        let mut index =
            Ivf::new(a.metric, dim, IvfParams { lists: a.lists, spherical: a.spherical, ..IvfParams::default() });
        let refs: Vec<&[f32]> = base.chunks_exact(dim).collect();
        index.insert_batch(&refs, a.threads);
        Index::Ivf(index)
    } else {
        let mut index = match &a.cache {
            Some(p) if p.exists() => Hnsw::read_from(&mut std::io::BufReader::new(std::fs::File::open(p)?))?,
            _ => {
                let mut index = Hnsw::new(a.metric, dim, params);
                index.set_quantization(quantization);
                let refs: Vec<&[f32]> = base.chunks_exact(dim).collect();
                index.insert_batch(&refs, a.threads);
                if let Some(p) = &a.cache {
                    index.write_to(&mut std::io::BufWriter::new(std::fs::File::create(p)?))?;
                }
                index
            }
        };
        // A cached index is read in plain; codes are added here (the store is laid out again).
        index.set_quantization(quantization);
        Index::Hnsw(index)
    };
    let build_s = t.elapsed().as_secs_f64();
    let rss1 = rss_kib();
    let mem_per_vector = (rss1.saturating_sub(rss0) * 1024) as f64 / n as f64;
    let (index_bytes, levels) = match &index {
        Index::Hnsw(h) => (h.stats().bytes, h.stats().levels),
        Index::Ivf(i) => (i.bytes(), i.lists()),
    };
    if !a.json {
        println!(
            "ametist: {} n={n} dim={dim} metric={:?} M={} ef_construction={} threads={}",
            a.dir.display(),
            a.metric,
            a.m,
            a.ef_construction,
            a.threads
        );
        println!(
            "build {build_s:.2} s ({kind}), RSS +{:.1} MiB = {mem_per_vector:.0} B/vector (index says {:.0} B/vector, {} levels or lists)",
            (rss1 - rss0) as f64 / 1024.0,
            index_bytes as f64 / n as f64,
            levels
        );
        println!(
            "{:>5} {:>8} {:>9} {:>10} {:>10} {:>10} {:>9} {:>9}",
            "ef", "recall", "recall_ab", "qps_1t", "qps_cpu", "qps_2t", "p50_us", "p99_us"
        );
    }
    let qs: Vec<&[f32]> = queries.chunks_exact(dim).take(nq).collect();
    let measure = |ef: &str, repeat: usize| -> String {
        let p = param(ef).expect("a search parameter: ef, or LISTS/RERANK for IVF");
        let mut best_1t = 0f64;
        let mut best_2t = 0f64;
        let mut best_cpu = 0f64;
        let mut lat = Vec::new();
        let mut results = Vec::new();
        for _ in 0..repeat.max(1) {
            // One search thread, one query per call.
            let mut l = Vec::with_capacity(nq);
            let mut res = Vec::with_capacity(nq);
            let t = Instant::now();
            let cpu0 = thread_cpu_ns();
            for q in &qs {
                let t1 = Instant::now();
                let r = index.search(q, a.k, &p);
                l.push(t1.elapsed().as_nanos() as u64);
                res.push(r);
            }
            let cpu = (thread_cpu_ns() - cpu0) as f64 / 1e9;
            best_cpu = best_cpu.max(nq as f64 / cpu);
            let qps = nq as f64 / t.elapsed().as_secs_f64();
            if qps > best_1t {
                best_1t = qps;
                lat = l;
            }
            results = res;
            // Two search threads, each taking half the queries.
            let t = Instant::now();
            std::thread::scope(|s| {
                for part in qs.chunks(nq.div_ceil(2)) {
                    let index = &index;
                    s.spawn(move || {
                        for q in part {
                            std::hint::black_box(index.search(q, a.k, &p));
                        }
                    });
                }
            });
            best_2t = best_2t.max(nq as f64 / t.elapsed().as_secs_f64());
        }
        lat.sort_unstable();
        let p50 = lat[lat.len() / 2] as f64 / 1000.0;
        let p99 = lat[(lat.len() * 99 / 100).min(lat.len() - 1)] as f64 / 1000.0;
        let (mut hits, mut hits_ab) = (0usize, 0usize);
        for (i, r) in results.iter().enumerate() {
            let truth = &gt[i * gk..i * gk + a.k];
            // ann-benchmarks' rule, on distances recomputed in f64 on both sides (the stored
            // ground-truth distances carry ~1e-3 of float32 rounding).
            let q = qs[i];
            let exact = |slot: u32| exact_distance(a.metric, q, &base[slot as usize * dim..(slot as usize + 1) * dim]);
            let kth = truth.iter().map(|&t| exact(t)).fold(f64::MIN, f64::max);
            hits += r.iter().filter(|c| truth.contains(&c.slot)).count();
            hits_ab += r.iter().filter(|c| exact(c.slot) <= kth + 1e-3).count();
        }
        let recall = hits as f64 / (nq * a.k) as f64;
        let recall_ab = hits_ab as f64 / (nq * a.k) as f64;
        if !a.json {
            println!(
                "{ef:>7} {recall:>8.4} {recall_ab:>9.4} {best_1t:>10.0} {best_cpu:>10.0} {best_2t:>10.0} {p50:>9.1} {p99:>9.1}"
            );
        }
        format!(
            "{{\"ef\":\"{ef}\",\"recall\":{recall:.5},\"recall_ab\":{recall_ab:.5},\"qps_1t\":{best_1t:.1},\"qps_2t\":{best_2t:.1},\"qps_cpu\":{best_cpu:.1},\"p50_us\":{p50:.2},\"p99_us\":{p99:.2}}}"
        )
    };
    let head = format!(
        "{{\"name\":\"ametist\",\"index\":\"{kind}\",\"n\":{n},\"dim\":{dim},\"build_s\":{build_s:.3},\"mem_per_vector\":{mem_per_vector:.1},\"index_bytes_per_vector\":{:.1}",
        index_bytes as f64 / n as f64
    );
    if a.serve {
        use std::io::{BufRead, Write};
        println!("{head}}}");
        std::io::stdout().flush()?;
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            let mut w = line.split_whitespace();
            let Some(ef) = w.next() else { continue };
            if ef == "quit" {
                break;
            }
            let repeat = w.next().map_or(Ok(1), str::parse)?;
            println!("{}", measure(ef, repeat));
            std::io::stdout().flush()?;
        }
        return Ok(());
    }
    let params: Vec<String> = if !a.params.is_empty() {
        a.params.clone()
    } else if kind == "ivf" {
        ["8/40", "16/60", "24/80", "32/100", "48/150", "64/200", "96/300"].map(String::from).to_vec()
    } else {
        a.efs.iter().map(usize::to_string).collect()
    };
    let rows: Vec<String> = params.iter().map(|p| measure(p, a.repeat)).collect();
    if a.exact > 0 {
        // One query at a time on one thread; every live node's vector is read once per query.
        let mut times: Vec<f64> = qs
            .iter()
            .take(a.exact)
            .map(|q| {
                let t = Instant::now();
                std::hint::black_box(index.search_exact(q, a.k));
                t.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let vector_bytes = (n * dim * 4) as f64;
        let (best, median) = (times[0], times[times.len() / 2]);
        println!(
            "exact search (index path), {} queries: best {:.2} ms, median {:.2} ms = {:.0} QPS; vectors read at {:.1} GB/s (best) / {:.1} GB/s (median)",
            times.len(),
            best * 1e3,
            median * 1e3,
            1.0 / median,
            vector_bytes / best / 1e9,
            vector_bytes / median / 1e9
        );
    }
    if a.json {
        println!("{head},\"rows\":[{}]}}", rows.join(","));
    }
    Ok(())
}
