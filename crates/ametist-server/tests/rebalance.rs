//! Moving partitions and members with real processes (issue 14, item 5): `ametist serve`
//! nodes on 127.0.0.1.
//!
//! * `copies_move_by_hand`: Qdrant's `POST /collections/{name}/cluster` operations
//!   (`move_shard`, `replicate_shard`, `drop_replica`, `abort_transfer`) on three nodes;
//!   transfers show in `shard_transfers` and clear; no point is lost; what cannot be done
//!   is a 400 naming why, and changes nothing.
//! * `join_then_drain_under_load`: three nodes, 6 partitions with 2 copies, a continuous
//!   load of unique-id `wait=true` upserts. A fourth node joins: transfers appear and clear
//!   and every node ends with an even share of copies and primaries. Then a member is
//!   removed (`DELETE /cluster/peer/{id}`): its copies move away before it leaves, and once
//!   it is stopped the load sees no error at all. Every acknowledged id is readable at the
//!   end and both copies of every partition are identical.
//! * `a_dead_members_copies_are_recreated_elsewhere`: a member killed for longer than
//!   `remoting.replace_dead_after` loses its copies to the others (its removal is refused
//!   while it holds the only copy of a partition), and gets an even share back when it
//!   returns.
//!
//! The seed is printed (replay with `AMETIST_TEST_SEED=<seed>`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use common::replicas::*;
use common::*;

fn node_spec(tmp: &TempDir, name: &str, seeds: &[NodeSpec]) -> NodeSpec {
    let mut spec = NodeSpec::new(&tmp.0.join(name), true);
    spec.seeds = seeds.iter().map(|s| s.grpc.expect("clustered")).collect();
    spec.extra.push("remoting.failover_timeout=2s".into());
    spec
}

fn peer_id(base: &str) -> u64 {
    let (s, b) = call("GET", &format!("{base}/cluster"), None);
    assert_eq!(s, 200, "{b}");
    b["result"]["peer_id"].as_u64().expect("a clustered node has an id")
}

/// The nodes holding `partition`, when every copy of it is in sync and nothing moves.
fn settled_copies(base: &str, name: &str, partition: u64) -> Option<BTreeSet<u64>> {
    let (copies, transfers) = placement(base, name);
    if !transfers.is_empty() {
        return None;
    }
    let mine: Vec<_> = copies.iter().filter(|c| c.0 == partition).collect();
    mine.iter().all(|c| c.2 == "Active").then(|| mine.iter().map(|c| c.1).collect())
}

fn cluster_op(base: &str, name: &str, op: Value) -> (u16, Value) {
    call("POST", &format!("{base}/collections/{name}/cluster"), Some(op))
}

fn count(base: &str, name: &str) -> u64 {
    let (s, b) = call("POST", &format!("{base}/collections/{name}/points/count"), Some(json!({ "exact": true })));
    assert_eq!(s, 200, "{b}");
    b["result"]["count"].as_u64().expect("a count")
}

#[test]
fn copies_move_by_hand() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = TempDir::new("moves");
    let mut specs: Vec<NodeSpec> = Vec::new();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let spec = node_spec(&tmp, name, &specs);
        nodes.push(spec.start());
        specs.push(spec);
    }
    let base = nodes[0].base.clone();
    let (s, b) = call(
        "PUT",
        &format!("{base}/collections/mv"),
        Some(json!({ "vectors": { "size": DIM, "distance": "Cosine" }, "shard_number": 3 })),
    );
    assert_eq!(s, 200, "create: {b}");
    let pts: Vec<Value> = (0..300).map(|id| point(id, &mut rng)).collect();
    let (s, b) = call("PUT", &format!("{base}/collections/mv/points?wait=true"), Some(json!({ "points": pts })));
    assert_eq!(s, 200, "{b}");
    let ids: Vec<u64> = nodes.iter().map(|n| peer_id(&n.base)).collect();

    // Move partition 0 to a member that has no copy of it.
    let holders = settled_copies(&base, "mv", 0).expect("settled after create");
    let from = *holders.iter().next().unwrap();
    let to = *ids.iter().find(|id| !holders.contains(id)).unwrap();
    let third = *ids.iter().find(|&&id| id != from && id != to).unwrap();
    let (s, b) =
        cluster_op(&base, "mv", json!({ "move_shard": { "shard_id": 0, "from_peer_id": from, "to_peer_id": to } }));
    assert_eq!(s, 200, "move: {b}");
    wait_for("the move", Duration::from_secs(30), || settled_copies(&base, "mv", 0) == Some(BTreeSet::from([to])));
    assert_eq!(count(&base, "mv"), 300);

    // Replicate it to the third member: two identical copies.
    let op =
        json!({ "replicate_shard": { "shard_id": 0, "from_peer_id": to, "to_peer_id": third, "method": "snapshot" } });
    let (s, b) = cluster_op(&nodes[2].base, "mv", op);
    assert_eq!(s, 200, "replicate: {b}");
    wait_for("the replica", Duration::from_secs(30), || {
        settled_copies(&base, "mv", 0) == Some(BTreeSet::from([to, third]))
    });
    assert_copies_identical(&base, "mv", 0, 2);
    // Writes reach both copies.
    let pts: Vec<Value> = (300..400).map(|id| point(id, &mut rng)).collect();
    let (s, b) = call("PUT", &format!("{base}/collections/mv/points?wait=true"), Some(json!({ "points": pts })));
    assert_eq!(s, 200, "{b}");
    assert_copies_identical(&base, "mv", 0, 2);

    // What cannot be done is refused, naming why, and changes nothing.
    let refusals = [
        (json!({ "move_shard": { "shard_id": 9, "from_peer_id": to, "to_peer_id": from } }), "no shard 9"),
        (json!({ "move_shard": { "shard_id": 0, "from_peer_id": to, "to_peer_id": 12345 } }), "12345"),
        (json!({ "replicate_shard": { "shard_id": 0, "from_peer_id": to, "to_peer_id": third } }), "already"),
        (
            json!({ "move_shard": { "shard_id": 0, "from_peer_id": to, "to_peer_id": from, "method": "wal_delta" } }),
            "wal_delta",
        ),
        (json!({ "abort_transfer": { "shard_id": 0, "from_peer_id": to, "to_peer_id": from } }), "no transfer"),
        (json!({ "start_resharding": { "direction": "up" } }), "resharding"),
        (json!({ "move_shard": { "shard_id": 0 } }), "from_peer_id"),
    ];
    for (op, needle) in refusals {
        let (s, b) = cluster_op(&base, "mv", op.clone());
        let msg = b["status"]["error"].as_str().unwrap_or_default();
        assert_eq!(s, 400, "{op}: {b}");
        assert!(msg.contains(needle), "{op}: `{msg}` should name `{needle}`");
    }
    assert_eq!(settled_copies(&base, "mv", 0), Some(BTreeSet::from([to, third])));

    // Dropping the primary promotes the other copy; the last copy cannot be dropped.
    let (copies, _) = placement(&base, "mv");
    let primary = copies.iter().find(|c| c.0 == 0 && c.3).unwrap().1;
    let other = if primary == to { third } else { to };
    let (s, b) = cluster_op(&base, "mv", json!({ "drop_replica": { "shard_id": 0, "peer_id": primary } }));
    assert_eq!(s, 200, "drop: {b}");
    wait_for("the drop", Duration::from_secs(20), || settled_copies(&base, "mv", 0) == Some(BTreeSet::from([other])));
    let (s, b) = cluster_op(&base, "mv", json!({ "drop_replica": { "shard_id": 0, "peer_id": other } }));
    assert_eq!(s, 400, "dropping the last copy: {b}");
    assert_eq!(count(&base, "mv"), 400);

    // A transfer aborted while it runs leaves no copy behind; one that finished first
    // is no longer a transfer to abort.
    let op = json!({ "replicate_shard": { "shard_id": 0, "from_peer_id": other, "to_peer_id": primary } });
    let (s, b) = cluster_op(&base, "mv", op);
    assert_eq!(s, 200, "replicate again: {b}");
    let abort = json!({ "abort_transfer": { "shard_id": 0, "from_peer_id": other, "to_peer_id": primary } });
    let (s, b) = cluster_op(&base, "mv", abort);
    if s == 200 {
        wait_for("the abort", Duration::from_secs(20), || {
            settled_copies(&base, "mv", 0) == Some(BTreeSet::from([other]))
        });
    } else {
        assert_eq!(s, 400, "abort: {b}");
        assert_eq!(settled_copies(&base, "mv", 0), Some(BTreeSet::from([other, primary])));
    }
    // Every point is still there, read through every node.
    for n in &nodes {
        assert_eq!(count(&n.base, "mv"), 400);
    }
}

#[test]
fn join_then_drain_under_load() {
    let seed = seed();
    let tmp = TempDir::new("rebalance");
    let mut specs: Vec<NodeSpec> = Vec::new();
    let mut nodes: Vec<Option<Node>> = Vec::new();
    for name in ["a", "b", "c"] {
        let spec = node_spec(&tmp, name, &specs);
        nodes.push(Some(spec.start()));
        specs.push(spec);
    }
    let bases: Vec<String> = nodes.iter().map(|n| n.as_ref().unwrap().base.clone()).collect();
    let (s, b) = call(
        "PUT",
        &format!("{}/collections/rep", bases[0]),
        Some(json!({ "vectors": { "size": DIM, "distance": "Cosine" }, "shard_number": 6, "replication_factor": 2 })),
    );
    assert_eq!(s, 200, "create: {b}");
    for base in &bases {
        wait_for("the collection on every node", Duration::from_secs(20), || {
            call("GET", &format!("{base}/collections/rep"), None).0 == 200
        });
    }

    // The load: unique ids through the nodes in `live`; (time sent, status, body) of every
    // answer.
    let live: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(bases.clone()));
    let acked: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let answers: Arc<Mutex<Vec<(Instant, u16, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let next_id = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (live, acked, answers, stop, next_id) =
                (live.clone(), acked.clone(), answers.clone(), stop.clone(), next_id.clone());
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed + w);
                let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let base = {
                        let live = live.lock().unwrap();
                        live[rng.random_range(0..live.len())].clone()
                    };
                    let ids: Vec<u64> = (0..5).map(|_| next_id.fetch_add(1, Ordering::Relaxed)).collect();
                    let pts: Vec<Value> = ids.iter().map(|&id| point(id, &mut rng)).collect();
                    let sent = Instant::now();
                    let resp = client
                        .put(format!("{base}/collections/rep/points?wait=true"))
                        .json(&json!({ "points": pts }))
                        .send();
                    let (status, text) = match resp {
                        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
                        Err(e) => (0, e.to_string()),
                    };
                    if status == 200 {
                        acked.lock().unwrap().extend(ids);
                    }
                    answers.lock().unwrap().push((sent, status, text));
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));

    // A fourth member joins; the leader moves copies to it until the shares are even.
    let spec = node_spec(&tmp, "d", &specs);
    nodes.push(Some(spec.start()));
    specs.push(spec);
    let bases: Vec<String> = nodes.iter().map(|n| n.as_ref().unwrap().base.clone()).collect();
    live.lock().unwrap().push(bases[3].clone());
    let mut saw_transfer = false;
    let even = |copies: &[Shown], members: usize| {
        let mut per_node: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
        for c in copies {
            let e = per_node.entry(c.1).or_default();
            e.0 += 1;
            e.1 += c.3 as usize;
        }
        let (all, primaries): (Vec<usize>, Vec<usize>) = per_node.values().copied().unzip();
        per_node.len() == members
            && copies.iter().all(|c| c.2 == "Active")
            && all.iter().max().unwrap() - all.iter().min().unwrap() <= 1
            && primaries.iter().max().unwrap() - primaries.iter().min().unwrap() <= 1
    };
    wait_for("an even share on four members", Duration::from_secs(120), || {
        let (copies, transfers) = placement(&bases[0], "rep");
        saw_transfer |= !transfers.is_empty();
        transfers.is_empty() && copies.len() == 12 && even(&copies, 4)
    });
    assert!(saw_transfer, "no transfer was seen while the new member got its share");
    eprintln!("balanced on four members: {:?}", placement(&bases[0], "rep").0);

    // Removal is refused, changing nothing, when too few members would remain for a
    // collection's copies, for an unknown member, and with `force`.
    let (s, b) = call("DELETE", &format!("{}/cluster/peer/{}?force=true", bases[0], peer_id(&bases[3])), None);
    assert_eq!(s, 400, "force: {b}");
    let (s, b) = call("DELETE", &format!("{}/cluster/peer/4242", bases[0]), None);
    assert_eq!(s, 404, "unknown peer: {b}");

    // Member c drains and leaves; then it is stopped.
    let victim = 2;
    let victim_id = peer_id(&bases[victim]);
    live.lock().unwrap().retain(|b| *b != bases[victim]);
    let started = Instant::now();
    loop {
        let (s, b) = call("DELETE", &format!("{}/cluster/peer/{victim_id}?timeout=20", bases[victim]), None);
        if s == 200 {
            break;
        }
        assert_eq!(s, 503, "remove: {b}");
        assert!(started.elapsed() < Duration::from_secs(120), "the drain did not finish: {b}");
    }
    eprintln!("member {victim_id} drained and removed in {:?}", started.elapsed());
    let (copies, transfers) = placement(&bases[0], "rep");
    assert!(transfers.is_empty(), "{transfers:?}");
    assert!(copies.iter().all(|c| c.1 != victim_id), "the removed member still holds copies: {copies:?}");
    let (_, b) = call("GET", &format!("{}/cluster", bases[0]), None);
    assert!(b["result"]["peers"].get(victim_id.to_string()).is_none(), "still a member: {b}");
    let stopped_at = Instant::now();
    nodes[victim].take();
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }

    // Only retryable 503s before the member left; nothing but successes after it stopped.
    let answers = answers.lock().unwrap();
    let bad: Vec<_> = answers.iter().filter(|a| a.1 != 200 && a.1 != 503).collect();
    assert!(bad.is_empty(), "errors other than retryable 503s: {bad:?}");
    for (sent, status, body) in answers.iter().filter(|a| a.1 != 200) {
        let when = if *sent > stopped_at { "after" } else { "before" };
        eprintln!("a write sent {when} the member stopped answered {status}: {body}");
    }
    let after: Vec<_> = answers.iter().filter(|a| a.0 > stopped_at).collect();
    assert!(after.len() > 10, "too few writes after the member stopped: {}", after.len());
    let failed: Vec<_> = after.iter().filter(|a| a.1 != 200).collect();
    assert!(failed.is_empty(), "writes failed after the drained member stopped: {failed:?}");

    let bases: Vec<String> = nodes.iter().flatten().map(|n| n.base.clone()).collect();
    wait_for("every copy in sync", Duration::from_secs(30), || {
        let (copies, transfers) = placement(&bases[0], "rep");
        transfers.is_empty() && copies.len() == 12 && copies.iter().all(|c| c.2 == "Active")
    });
    for p in 0..6 {
        assert_copies_identical(&bases[0], "rep", p, 2);
    }
    assert_acked_readable(&bases, "rep", &acked.lock().unwrap());

    // Three members remain: a collection with three copies cannot lose another.
    let (s, b) = call(
        "PUT",
        &format!("{}/collections/three", bases[0]),
        Some(json!({ "vectors": { "size": DIM, "distance": "Cosine" }, "shard_number": 1, "replication_factor": 3 })),
    );
    assert_eq!(s, 200, "create: {b}");
    let (s, b) = call("DELETE", &format!("{}/cluster/peer/{}", bases[0], peer_id(&bases[1])), None);
    let msg = b["status"]["error"].as_str().unwrap_or_default().to_string();
    assert_eq!(s, 400, "{b}");
    assert!(msg.contains("leave 2 members") && msg.contains("replication_factor 3"), "{msg}");
}

#[test]
fn a_dead_members_copies_are_recreated_elsewhere() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = TempDir::new("dead-member");
    let mut specs: Vec<NodeSpec> = Vec::new();
    let mut nodes: Vec<Option<Node>> = Vec::new();
    for name in ["a", "b", "c"] {
        let mut spec = node_spec(&tmp, name, &specs);
        spec.extra.push("remoting.replace_dead_after=3s".into());
        nodes.push(Some(spec.start()));
        specs.push(spec);
    }
    let bases: Vec<String> = nodes.iter().map(|n| n.as_ref().unwrap().base.clone()).collect();
    let (s, b) = call(
        "PUT",
        &format!("{}/collections/rep", bases[0]),
        Some(json!({ "vectors": { "size": DIM, "distance": "Cosine" }, "shard_number": 6, "replication_factor": 2 })),
    );
    assert_eq!(s, 200, "create: {b}");
    let pts: Vec<Value> = (0..600).map(|id| point(id, &mut rng)).collect();
    let (s, b) = call("PUT", &format!("{}/collections/rep/points?wait=true", bases[0]), Some(json!({ "points": pts })));
    assert_eq!(s, 200, "{b}");
    // One copy per partition of this one: the copy on the member that dies has no other.
    let (s, b) = call(
        "PUT",
        &format!("{}/collections/solo", bases[0]),
        Some(json!({ "vectors": { "size": DIM, "distance": "Cosine" }, "shard_number": 3 })),
    );
    assert_eq!(s, 200, "create: {b}");
    let dead_id = peer_id(&bases[2]);
    nodes[2].take();

    // Past the timeout, the dead member's copies are made again on the two others.
    wait_for("two live copies of every partition", Duration::from_secs(60), || {
        let (copies, transfers) = placement(&bases[0], "rep");
        transfers.is_empty() && copies.len() == 12 && copies.iter().all(|c| c.1 != dead_id && c.2 == "Active")
    });
    for p in 0..6 {
        assert_copies_identical(&bases[0], "rep", p, 2);
    }
    assert_eq!(count(&bases[1], "rep"), 600);
    // It cannot be removed while it holds the only copy of a partition.
    let (s, b) = call("DELETE", &format!("{}/cluster/peer/{dead_id}", bases[0]), None);
    let msg = b["status"]["error"].as_str().unwrap_or_default().to_string();
    assert_eq!(s, 400, "{b}");
    assert!(msg.contains("only in-sync copy") && msg.contains("`solo`"), "{msg}");

    // It comes back empty-handed and gets its share again.
    nodes[2] = Some(specs[2].start());
    wait_for("an even share on three members", Duration::from_secs(60), || {
        let (copies, transfers) = placement(&bases[0], "rep");
        let on_it = copies.iter().filter(|c| c.1 == dead_id).count();
        transfers.is_empty() && copies.len() == 12 && on_it >= 3 && copies.iter().all(|c| c.2 == "Active")
    });
    for p in 0..6 {
        assert_copies_identical(&bases[2], "rep", p, 2);
    }
    assert_eq!(count(&bases[2], "rep"), 600);
}
