//! What the benchmark binaries share: reading the TEXMEX `.fvecs`/`.ivecs` files that
//! `shared/data/prepare.py` writes, and reading this process's CPU time and memory.
//!
//! * `ametist-bench` (src/main.rs): the bare index (HNSW, or the IVF fast-scan index with
//!   `--index ivf|auto`) against hnswlib (`bench/compare.py`) and against hnswlib, faiss and
//!   ScaNN (`bench/speed.py`).
//! * `stack` (src/bin/stack.rs): the same data through the actor stack, and filtered search.
//! * `scan` (src/bin/scan.rs): exact scans against the machine's memory bandwidth.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Reads a `.fvecs` or `.ivecs` file: (dimension, rows back to back as raw 32-bit words).
pub fn read_vecs(path: &Path) -> Result<(usize, Vec<u32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() < 4 {
        bail!("{}: empty", path.display());
    }
    let dim = u32::from_le_bytes(bytes[..4].try_into()?) as usize;
    let row = 4 * (dim + 1);
    if dim == 0 || bytes.len() % row != 0 {
        bail!("{}: not a .fvecs/.ivecs file", path.display());
    }
    let mut out = Vec::with_capacity(bytes.len() / row * dim);
    for r in bytes.chunks_exact(row) {
        if u32::from_le_bytes(r[..4].try_into()?) as usize != dim {
            bail!("{}: rows of different dimensions", path.display());
        }
        out.extend(r[4..].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
    }
    Ok((dim, out))
}

/// Reads a `.fvecs` file: (dimension, vectors back to back).
pub fn fvecs(path: &Path) -> Result<(usize, Vec<f32>)> {
    let (d, w) = read_vecs(path)?;
    Ok((d, w.into_iter().map(f32::from_bits).collect()))
}

/// CPU time of the calling thread in nanoseconds (first field of /proc/thread-self/schedstat),
/// so that queries per CPU-second can be reported on a machine shared with other work.
pub fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of this process in KiB (VmRSS).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
