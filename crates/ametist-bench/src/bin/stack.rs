//! Ametist through its actor stack (CollectionActor → PartitionActors), side by side with
//! the bare index in the same run; and filtered search at several selectivities.
//!
//! ```text
//! stack DATA_DIR [--metric euclid|cosine|dot] [--partitions 1,2,4] [--ef 20,50,100,200]
//!       [--queries N] [--limit N] [--filtered] [--quantization none|int4|int8|binary|...]
//! ```
//!
//! For each partition count: build time (upserts of 10,000 points with `wait`), then per
//! ef: recall@10 and queries per second with one client and with two concurrent clients.
//! The bare index (`Hnsw` called directly, one thread) is measured in the same run at the
//! same ef. `--filtered` adds a payload field `bucket = i % 100`, indexes it, and measures
//! recall@10 against exact filtered ground truth (a flat scan here, independent of the
//! engine) and queries per second for filters matching 1%, 10% and 50% of the points.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use ametist_bench::fvecs;
use ametist_core::filter::Filter;
use ametist_core::hnsw::{Hnsw, HnswParams};
use ametist_core::payload_index::FieldType;
use ametist_core::{flat, vector, Metric, PointId};
use ametist_engine::collection::Collection;
use ametist_engine::config::{IndexConfig, Quantization};
use ametist_engine::{Ametist, CollectionConfig, EngineConfig, InsertVector, SearchRequest};
use anyhow::{bail, Context, Result};
use serde_json::json;

const USAGE: &str = "usage: stack DATA_DIR [--metric euclid|cosine|dot] [--partitions 1,2,4] [--ef 20,50,100] \
                     [--queries N] [--limit N] [--filtered] [--quantization none|int4|int8|binary|...]";

struct Args {
    dir: PathBuf,
    metric: Metric,
    partitions: Vec<usize>,
    efs: Vec<usize>,
    queries: usize,
    limit: Option<usize>,
    filtered: bool,
    quantization: Quantization,
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let (dim, mut base) = fvecs(&args.dir.join("base.fvecs"))?;
    let (qdim, queries) = fvecs(&args.dir.join("query.fvecs"))?;
    if dim != qdim {
        bail!("base has dimension {dim}, queries {qdim}");
    }
    let n = (base.len() / dim).min(args.limit.unwrap_or(usize::MAX));
    base.truncate(n * dim);
    let nq = (queries.len() / dim).min(args.queries);
    let metric = args.metric;
    // Stored form (normalised for cosine) for the bare index and the ground truth.
    let prepared: Vec<f32> =
        base.chunks_exact(dim).flat_map(|v| vector::prepare(metric, dim, v.to_vec()).expect("finite data")).collect();
    let qs: Vec<Vec<f32>> = queries
        .chunks_exact(dim)
        .take(nq)
        .map(|q| vector::prepare(metric, dim, q.to_vec()).expect("finite data"))
        .collect();
    eprintln!("{n} base vectors of dimension {dim}, {nq} queries, metric {metric:?}; computing exact top-10 …");
    let truth: Vec<HashSet<u32>> = qs
        .iter()
        .map(|q| flat::search(metric, dim, &prepared, q, 10, |_| true).iter().map(|c| c.slot).collect())
        .collect();

    // The bare index, built and searched in this same run.
    let params = HnswParams { m: 16, ef_construction: 200, ef_search: 50 };
    let t = Instant::now();
    let mut bare = Hnsw::new(metric, dim, params);
    bare.set_quantization(args.quantization);
    let refs: Vec<&[f32]> = prepared.chunks_exact(dim).collect();
    bare.insert_batch(&refs, 2);
    println!("bare index: build {:.1} s (2 threads)", t.elapsed().as_secs_f64());
    println!("| setup | ef | recall@10 | QPS 1 client | QPS 2 clients |");
    println!("|---|---|---|---|---|");
    qs.iter().take(500).for_each(|q| drop(bare.search(q, 10, args.efs.first().copied().unwrap_or(50), None)));
    for &ef in &args.efs {
        let t = Instant::now();
        let mut hits = 0;
        for (q, tr) in qs.iter().zip(&truth) {
            hits += bare.search(q, 10, ef, None).iter().filter(|c| tr.contains(&c.slot)).count();
        }
        let qps1 = nq as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        std::thread::scope(|s| {
            for half in qs.chunks(nq.div_ceil(2)) {
                let bare = &bare;
                s.spawn(move || half.iter().for_each(|q| drop(bare.search(q, 10, ef, None))));
            }
        });
        let qps2 = nq as f64 / t.elapsed().as_secs_f64();
        println!("| bare index | {ef} | {:.4} | {qps1:.0} | {qps2:.0} |", hits as f64 / (nq * 10) as f64);
    }
    drop(bare);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    for &p in &args.partitions {
        rt.block_on(stack_run(&args, p, dim, &base, &qs, &truth, &prepared))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn stack_run(
    args: &Args,
    partitions: usize,
    dim: usize,
    base: &[f32],
    qs: &[Vec<f32>],
    truth: &[HashSet<u32>],
    prepared: &[f32],
) -> Result<()> {
    let engine = EngineConfig { max_batch: 10_000, ..EngineConfig::default() };
    let db = Ametist::in_memory(engine);
    let index = IndexConfig { full_scan_threshold: 1000, quantization: args.quantization, ..IndexConfig::default() };
    let config = CollectionConfig {
        partitions: Some(partitions),
        index: Some(index),
        ..CollectionConfig::new(dim, args.metric)
    };
    db.create_collection("bench", config).await?;
    let c = db.collection("bench")?;
    let t = Instant::now();
    for (b, chunk) in base.chunks(10_000 * dim).enumerate() {
        let points = chunk
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| {
                let id = (b * 10_000 + i) as u64;
                let payload = if args.filtered { json!({ "bucket": id % 100 }).as_object().cloned() } else { None };
                InsertVector { id: PointId::Num(id), vectors: v.to_vec().into(), metadata: payload }
            })
            .collect();
        c.upsert(points, true).await?;
    }
    println!("actor stack, {partitions} partition(s): build {:.1} s", t.elapsed().as_secs_f64());
    let nq = qs.len();
    // One untimed pass first, as the bare index gets: the first searches after a build
    // start the search pool's threads and fault in the scratch memory.
    run_queries(&c, &qs[..nq.min(500)], &truth[..nq.min(500)], args.efs.first().copied().unwrap_or(50), None).await?;
    for &ef in &args.efs {
        let (recall, qps1) = run_queries(&c, qs, truth, ef, None).await?;
        let t = Instant::now();
        let mut tasks = Vec::new();
        for half in qs.chunks(nq.div_ceil(2)) {
            let c = c.clone();
            let half: Vec<Vec<f32>> = half.to_vec();
            tasks.push(tokio::spawn(async move {
                for q in half {
                    let mut req = SearchRequest::new(q, 10);
                    req.ef = Some(ef);
                    c.search(req).await.expect("search");
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let qps2 = nq as f64 / t.elapsed().as_secs_f64();
        println!("| actor stack, {partitions} partition(s) | {ef} | {recall:.4} | {qps1:.0} | {qps2:.0} |");
    }
    if args.filtered {
        c.create_field_index("bucket", FieldType::Integer).await?;
        println!("| filter (share of points) | recall@10 vs exact filtered | QPS 1 client | non-matching hits |");
        println!("|---|---|---|---|");
        for share in [1u64, 10, 50] {
            let f = Filter::from_value(json!({"must": [{"key": "bucket", "range": {"lt": share}}]}))?;
            let ftruth: Vec<HashSet<u32>> = qs
                .iter()
                .map(|q| {
                    flat::search(args.metric, dim, prepared, q, 10, |s| (s as u64 % 100) < share)
                        .iter()
                        .map(|c| c.slot)
                        .collect()
                })
                .collect();
            let (recall, qps, wrong) = run_filtered(&c, qs, &ftruth, &f, share).await?;
            println!("| bucket < {share} ({share}%) | {recall:.4} | {qps:.0} | {wrong} |");
        }
    }
    db.shutdown().await;
    Ok(())
}

async fn run_queries(
    c: &Collection,
    qs: &[Vec<f32>],
    truth: &[HashSet<u32>],
    ef: usize,
    filter: Option<&Filter>,
) -> Result<(f64, f64)> {
    let t = Instant::now();
    let mut hits = 0;
    for (q, tr) in qs.iter().zip(truth) {
        let mut req = SearchRequest::new(q.clone(), 10);
        req.ef = Some(ef);
        req.filter = filter.cloned();
        let r = c.search(req).await?;
        hits += r.results.iter().filter(|d| matches!(d.id, PointId::Num(i) if tr.contains(&(i as u32)))).count();
    }
    Ok((hits as f64 / (qs.len() * 10) as f64, qs.len() as f64 / t.elapsed().as_secs_f64()))
}

async fn run_filtered(
    c: &Collection,
    qs: &[Vec<f32>],
    truth: &[HashSet<u32>],
    f: &Filter,
    share: u64,
) -> Result<(f64, f64, usize)> {
    let t = Instant::now();
    let (mut hits, mut wrong, mut expected) = (0, 0, 0);
    for (q, tr) in qs.iter().zip(truth) {
        let mut req = SearchRequest::new(q.clone(), 10);
        req.filter = Some(f.clone());
        let r = c.search(req).await?;
        for d in &r.results {
            let PointId::Num(i) = d.id else { continue };
            hits += usize::from(tr.contains(&(i as u32)));
            wrong += usize::from(i % 100 >= share);
        }
        expected += tr.len();
    }
    Ok((hits as f64 / expected.max(1) as f64, qs.len() as f64 / t.elapsed().as_secs_f64(), wrong))
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        dir: PathBuf::new(),
        metric: Metric::Euclid,
        partitions: vec![1, 2, 4],
        efs: vec![20, 50, 100, 200],
        queries: 2000,
        limit: None,
        filtered: false,
        quantization: Quantization::None,
    };
    let list = |s: String| -> Result<Vec<usize>> { s.split(',').map(|x| Ok(x.trim().parse()?)).collect() };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--metric" => {
                args.metric = match it.next().as_deref() {
                    Some("euclid") => Metric::Euclid,
                    Some("cosine") => Metric::Cosine,
                    Some("dot") => Metric::Dot,
                    other => bail!("unknown metric {other:?}"),
                }
            }
            "--partitions" => args.partitions = list(it.next().context("--partitions needs a list")?)?,
            "--ef" => args.efs = list(it.next().context("--ef needs a list")?)?,
            "--queries" => args.queries = it.next().context("--queries needs a number")?.parse()?,
            "--limit" => args.limit = Some(it.next().context("--limit needs a number")?.parse()?),
            "--filtered" => args.filtered = true,
            "--quantization" => {
                args.quantization =
                    it.next().context("--quantization needs a setting")?.parse().map_err(anyhow::Error::msg)?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            dir if !dir.starts_with("--") && args.dir.as_os_str().is_empty() => args.dir = PathBuf::from(dir),
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if args.dir.as_os_str().is_empty() {
        bail!("{USAGE}");
    }
    Ok(args)
}
