//! What the replication and rebalancing tests share: seeds, points, and the checks that
//! nothing acknowledged was lost and that the copies of a partition agree.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

use super::call;

/// The dimension of the test points.
pub const DIM: usize = 8;

/// The test's seed: `AMETIST_TEST_SEED`, else the clock; printed so a run can be replayed.
pub fn seed() -> u64 {
    let seed = std::env::var("AMETIST_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("seed {seed} (replay with AMETIST_TEST_SEED={seed})");
    seed
}

/// A point with a random vector and its own id as payload `n`.
pub fn point(id: u64, rng: &mut StdRng) -> Value {
    let v: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
    json!({ "id": id, "vector": v, "payload": { "n": id } })
}

/// The `expected` copies of a partition are in sync and hold the same ids, versions,
/// payloads and vectors.
pub fn assert_copies_identical(base: &str, name: &str, partition: usize, expected: usize) {
    let (s, b) = call("GET", &format!("{base}/collections/{name}/partitions/{partition}/copies"), None);
    assert_eq!(s, 200, "{b}");
    let copies = b["result"]["copies"].as_array().expect("copies");
    assert_eq!(copies.len(), expected, "{b}");
    for c in copies {
        assert_eq!(c["state"], "Active", "{b}");
        assert!(c["digest"].is_string(), "{b}");
        assert_eq!(
            (&c["digest"], &c["points"], &c["version"]),
            (&copies[0]["digest"], &copies[0]["points"], &copies[0]["version"]),
            "copies differ: {b}"
        );
    }
}

/// Every acknowledged id is readable with its payload through every node, and each
/// node's exact count is at least the number acknowledged.
pub fn assert_acked_readable(bases: &[String], name: &str, acked: &BTreeSet<u64>) {
    assert!(acked.len() > 100, "the load got too few writes through: {}", acked.len());
    let ids: Vec<u64> = acked.iter().copied().collect();
    for base in bases {
        for chunk in ids.chunks(500) {
            let (s, b) = call(
                "POST",
                &format!("{base}/collections/{name}/points"),
                Some(json!({ "ids": chunk, "with_payload": true })),
            );
            assert_eq!(s, 200, "{b}");
            let got: BTreeSet<u64> = b["result"]
                .as_array()
                .expect("a list of points")
                .iter()
                .filter(|p| p["payload"]["n"] == p["id"])
                .map(|p| p["id"].as_u64().expect("integer ids"))
                .collect();
            let missing: Vec<&u64> = chunk.iter().filter(|id| !got.contains(id)).collect();
            assert!(missing.is_empty(), "acknowledged ids missing through {base}: {missing:?}");
        }
        let (s, b) = call("POST", &format!("{base}/collections/{name}/points/count"), Some(json!({ "exact": true })));
        assert_eq!(s, 200, "{b}");
        assert!(b["result"]["count"].as_u64().expect("a count") as usize >= acked.len(), "{b}");
    }
}

/// A copy as `GET /collections/{name}/cluster` shows it: (partition, node, state, primary).
pub type Shown = (u64, u64, String, bool);

/// `GET /collections/{name}/cluster` on `base`: every copy as (partition, node, state,
/// primary), sorted, and the transfers in progress.
pub fn placement(base: &str, name: &str) -> (Vec<Shown>, Vec<Value>) {
    let (s, b) = call("GET", &format!("{base}/collections/{name}/cluster"), None);
    assert_eq!(s, 200, "{b}");
    let r = &b["result"];
    let mut out = Vec::new();
    for list in [&r["local_shards"], &r["remote_shards"]] {
        for c in list.as_array().expect("a list of shards") {
            out.push((
                c["shard_id"].as_u64().unwrap(),
                c["peer_id"].as_u64().unwrap(),
                c["state"].as_str().unwrap().to_string(),
                c["primary"].as_bool().unwrap(),
            ));
        }
    }
    out.sort();
    (out, r["shard_transfers"].as_array().expect("a list of transfers").clone())
}
