//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A seeded RNG: the seed comes from `AMETIST_TEST_SEED` when set (to replay a failure),
/// otherwise from the clock, and is printed either way.
pub fn seeded_rng(test: &str) -> StdRng {
    let seed = std::env::var("AMETIST_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("{test}: seed {seed} (replay with AMETIST_TEST_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

pub fn random_vector(rng: &mut StdRng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}
