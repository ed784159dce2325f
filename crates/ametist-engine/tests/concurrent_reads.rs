//! Read-only requests run on the search pool, several at once, beside the partition's
//! writes: they must still see whole groups of writes, see every acknowledged write, and
//! a stalled partition must not hold up the pool other partitions share.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ametist_core::{Metric, PointId};
use ametist_engine::messages::Fault;
use ametist_engine::{Ametist, CollectionConfig, EngineConfig, InsertVector, SearchRequest};

fn point(i: u64) -> InsertVector {
    InsertVector { id: PointId::Num(i), vectors: vec![i as f32 + 1.0, 1.0].into(), metadata: None }
}

/// Writers upsert pairs of points in one batch while readers count and search: a reader
/// never sees half a batch, and after a write is acknowledged every read sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_see_whole_write_groups_and_every_acknowledged_write() {
    let db = Ametist::in_memory(EngineConfig::default());
    // One partition, so that both points of a batch land in the same group.
    db.create_collection("c", CollectionConfig::new(2, Metric::Euclid).with_partitions(1)).await.unwrap();
    let c = db.collection("c").unwrap();
    let done = Arc::new(AtomicBool::new(false));

    let mut readers = Vec::new();
    for _ in 0..3 {
        let (c, done) = (c.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            while !done.load(Ordering::Acquire) {
                let n = c.count(None).await.unwrap();
                assert_eq!(n % 2, 0, "a read saw half of a two-point batch ({n} points)");
                let r = c.search(SearchRequest::new(vec![0.0, 1.0], 1000)).await.unwrap();
                assert_eq!(r.results.len() % 2, 0, "a search saw half of a batch");
                reads += 1;
            }
            reads
        }));
    }
    for i in 0..300u64 {
        c.upsert(vec![point(2 * i), point(2 * i + 1)], true).await.unwrap();
        // Acknowledged: every read from now on sees both points.
        let n = c.count(None).await.unwrap();
        assert!(n >= 2 * (i as usize + 1), "an acknowledged write is not visible: {n} points after batch {i}");
        let got = c.get(vec![PointId::Num(2 * i + 1)], false, false).await.unwrap();
        assert_eq!(got.len(), 1, "point {} acknowledged but not found", 2 * i + 1);
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
    db.shutdown().await;
}

/// A partition stalled in a write (holding its state's write lock) must not take the
/// search threads with it: searches on another collection keep answering meanwhile, and
/// the stalled partition's own search is answered once the stall ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_partition_does_not_hold_up_other_partitions_searches() {
    let config = EngineConfig { search_timeout: Duration::from_secs(30), ..EngineConfig::default() };
    let db = Ametist::in_memory(config);
    for name in ["stalled", "busy"] {
        db.create_collection(name, CollectionConfig::new(2, Metric::Euclid).with_partitions(1)).await.unwrap();
        db.collection(name).unwrap().upsert((0..50).map(point).collect(), true).await.unwrap();
    }
    let (stalled, busy) = (db.collection("stalled").unwrap(), db.collection("busy").unwrap());
    stalled.inject_fault(0, Fault::Stall(Duration::from_secs(3))).await.unwrap();
    // Let the actor take the stall before the searches arrive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting: Vec<_> = (0..8)
        .map(|_| {
            let s = stalled.clone();
            tokio::spawn(async move { s.search(SearchRequest::new(vec![0.0, 1.0], 5)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // More stalled searches than search threads are waiting; the other collection answers.
    for _ in 0..50 {
        let r = busy.search(SearchRequest::new(vec![0.0, 1.0], 5)).await.unwrap();
        assert_eq!(r.results.len(), 5);
    }
    assert!(
        waiting.iter().all(|w| !w.is_finished()),
        "searches on the stalled partition finished before the other collection's: they waited for the stall (or it never stalled)"
    );
    for w in waiting {
        assert_eq!(w.await.unwrap().unwrap().results.len(), 5);
    }
    db.shutdown().await;
}

/// More concurrent clients than cores on a collection of several partitions: the search
/// threads cannot start every partition's search at once, so callers take back and run
/// the searches the pool has not started. Every answer must still be the one a lone
/// client gets, each partition searched exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_scattered_searches_answer_as_one_client_does() {
    let db = Ametist::in_memory(EngineConfig::default());
    db.create_collection("c", CollectionConfig::new(2, Metric::Euclid).with_partitions(4)).await.unwrap();
    let c = db.collection("c").unwrap();
    c.upsert((0..400).map(point).collect(), true).await.unwrap();
    let query = |i: u64| {
        let mut req = SearchRequest::new(vec![(i % 400) as f32 + 0.25, 1.0], 10);
        req.exact = i.is_multiple_of(3);
        req
    };
    let mut expected = Vec::new();
    for i in 0..40u64 {
        expected.push(c.search(query(i)).await.unwrap().results);
    }
    let expected = Arc::new(expected);
    let clients: Vec<_> = (0..8u64)
        .map(|client| {
            let (c, expected) = (c.clone(), expected.clone());
            tokio::spawn(async move {
                for round in 0..50u64 {
                    let i = (client * 7 + round) % 40;
                    let got = c.search(query(i)).await.unwrap();
                    assert!(got.missing_partitions.is_empty());
                    let ids = |r: &[ametist_engine::ScoredDoc]| r.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
                    assert_eq!(ids(&got.results), ids(&expected[i as usize]), "query {i} from client {client}");
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    db.shutdown().await;
}
