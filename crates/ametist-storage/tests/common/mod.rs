//! Shared test helpers: seeds, temp dirs, payload generators.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The seed for a randomised test: `AMETIST_TEST_SEED` if set, else fresh. Always printed
/// (shown by `cargo test` for a failing test) so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("AMETIST_TEST_SEED") {
        Ok(s) => s.parse().expect("AMETIST_TEST_SEED must be a u64"),
        Err(_) => {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
            t ^ (std::process::id() as u64).rotate_left(32)
        }
    };
    println!("{test}: seed = {seed} (replay with AMETIST_TEST_SEED={seed})");
    seed
}

pub fn rng(test: &str) -> StdRng {
    StdRng::seed_from_u64(seed(test))
}

/// A payload of `len` non-zero random bytes.
pub fn payload(rng: &mut StdRng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.random_range(1..=255u8)).collect()
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "ametist-storage-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
