//! Exact search against the machine's memory bandwidth, in one run.
//!
//! ```text
//! scan [DATA_DIR] [--n 1000000] [--dim 128] [--queries 20] [--metric euclid|cosine|dot]
//! ```
//!
//! With a DATA_DIR, scans its `base.fvecs` (e.g. glove-50, 390k × 50); otherwise
//! `--n` × `--dim` random vectors (by default 1M × 128: 512 MB, far beyond any cache).
//! First it measures how fast this machine reads memory: a plain sum over the same
//! bytes, with one thread and with two, best of five passes. Then one exact top-10 query
//! at a time (`flat::search`, the scan the engine's flat path uses), best of `--queries`,
//! and prints the scan's bytes per second as a share of the one-thread read bandwidth
//! (a single query runs on one thread).

use std::path::PathBuf;
use std::time::Instant;

use ametist_bench::fvecs;
use ametist_core::{flat, vector, Metric};
use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let mut it = std::env::args().skip(1);
    let (mut dir, mut n, mut dim, mut queries, mut metric) = (None, 1_000_000usize, 128usize, 20usize, Metric::Euclid);
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--n" => n = val()?.parse()?,
            "--dim" => dim = val()?.parse()?,
            "--queries" => queries = val()?.parse()?,
            "--metric" => {
                metric = match val()?.as_str() {
                    "euclid" => Metric::Euclid,
                    "cosine" => Metric::Cosine,
                    "dot" => Metric::Dot,
                    m => bail!("unknown metric {m}"),
                }
            }
            d if !d.starts_with("--") && dir.is_none() => dir = Some(PathBuf::from(d)),
            other => {
                bail!("unknown argument {other} (usage: scan [DATA_DIR] [--n N] [--dim D] [--queries Q] [--metric M])")
            }
        }
    }
    let data: Vec<f32> = match &dir {
        Some(d) => {
            let (d_dim, mut base) = fvecs(&d.join("base.fvecs"))?;
            dim = d_dim;
            if metric.normalises() {
                base = base
                    .chunks_exact(dim)
                    .flat_map(|v| vector::prepare(metric, dim, v.to_vec()).expect("finite data"))
                    .collect();
            }
            base
        }
        None => {
            // xorshift64*: deterministic, no dependency, good enough for a scan.
            let mut s = 0x9e37_79b9_7f4a_7c15u64;
            (0..n * dim)
                .map(|_| {
                    s ^= s >> 12;
                    s ^= s << 25;
                    s ^= s >> 27;
                    (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect()
        }
    };
    n = data.len() / dim;
    let bytes = (data.len() * 4) as f64;
    println!(
        "{} vectors of dimension {dim} ({:.0} MB), metric {metric:?}, AVX2+FMA kernels: {}",
        n,
        bytes / 1e6,
        ametist_core::distance::has_avx2_fma()
    );

    let read_1t = best_of(5, || {
        let t = Instant::now();
        std::hint::black_box(sum(&data));
        bytes / t.elapsed().as_secs_f64()
    });
    let read_2t = best_of(5, || {
        let t = Instant::now();
        std::thread::scope(|s| {
            for half in data.chunks(data.len().div_ceil(2)) {
                s.spawn(move || std::hint::black_box(sum(half)));
            }
        });
        bytes / t.elapsed().as_secs_f64()
    });
    println!("memory read bandwidth: {:.1} GB/s (1 thread), {:.1} GB/s (2 threads)", read_1t / 1e9, read_2t / 1e9);

    let query: Vec<f32> = data[..dim].iter().map(|x| x + 0.01).collect();
    let mut times = Vec::with_capacity(queries);
    for _ in 0..queries.max(1) {
        let t = Instant::now();
        std::hint::black_box(flat::search(metric, dim, &data, &query, 10, |_| true));
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let (best, median) = (times[0], times[times.len() / 2]);
    println!(
        "exact top-10, one query on one thread: best {:.2} ms = {:.1} GB/s ({:.0}% of 1-thread read bandwidth), median {:.2} ms = {:.1} GB/s ({:.0}%)",
        best * 1e3,
        bytes / best / 1e9,
        100.0 * bytes / best / read_1t,
        median * 1e3,
        bytes / median / 1e9,
        100.0 * bytes / median / read_1t
    );
    Ok(())
}

fn best_of(times: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..times).map(|_| f()).fold(0.0, f64::max)
}

/// Reads every value once: the squared norm of each 64 KiB block, computed by the same
/// AVX2+FMA kernel (four accumulators) the scans use, so that the arithmetic keeps up with
/// memory and the loop measures reading.
fn sum(v: &[f32]) -> f32 {
    v.chunks(16 * 1024).map(|c| ametist_core::distance::dot(c, c)).sum()
}
