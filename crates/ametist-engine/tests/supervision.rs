//! Supervision, timeouts and backpressure with real partition actors.

mod common;

use std::time::{Duration, Instant};

use ametist_core::{Metric, PointId};
use ametist_engine::messages::Fault;
use ametist_engine::supervisor::ActorState;
use ametist_engine::{
    Ametist, CollectionConfig, EngineConfig, EngineError, InsertVector, RestartStrategy, SearchRequest,
    SupervisionPolicy,
};

fn points(range: std::ops::Range<u64>) -> Vec<InsertVector> {
    range.map(|i| InsertVector { id: PointId::Num(i), vectors: vec![i as f32, 1.0].into(), metadata: None }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_partition_restarts_then_stops_past_the_limit() {
    let config = EngineConfig {
        supervision: SupervisionPolicy {
            strategy: RestartStrategy::Restart,
            max_restarts: 3,
            within: Duration::from_secs(60),
        },
        search_timeout: Duration::from_secs(5),
        allow_partial_results: true,
        ..EngineConfig::default()
    };
    let db = Ametist::in_memory(config);
    db.create_collection("c", CollectionConfig::new(2, Metric::Euclid).with_partitions(3)).await.unwrap();
    let c = db.collection("c").unwrap();
    c.upsert(points(0..300), true).await.unwrap();
    let total = |r: &ametist_engine::SearchResult| r.results.len();

    // Panic partition 1 three times, with searches and writes in between: each time it
    // comes back with every acknowledged point.
    for round in 0..3u64 {
        c.inject_fault(1, Fault::Panic(format!("round {round}"))).await.unwrap();
        // Searches keep answering while it restarts; once it is back they are complete.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = c.search(SearchRequest::new(vec![0.0, 1.0], 400)).await.unwrap();
            if !r.is_partial() && total(&r) as u64 == 300 + round * 10 {
                break;
            }
            assert!(Instant::now() < deadline, "partition 1 did not come back: {r:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        c.upsert(points(300 + round * 10..310 + round * 10), true).await.unwrap();
    }
    let parts = c.partitions().await.unwrap();
    assert_eq!(parts[1].0.restarts, 3);
    assert_eq!(parts[1].0.state, ActorState::Running);
    assert!(parts[1].0.last_failure.as_deref().unwrap().contains("round 2"));
    assert_eq!(parts[0].0.restarts, 0);

    // The fourth failure within the window is past max-restarts: the partition stops,
    // is reported, and searches answer from the others, flagged partial.
    c.inject_fault(1, Fault::Panic("one too many".into())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.partitions().await.unwrap()[1].0.state != ActorState::Stopped {
        assert!(Instant::now() < deadline, "partition 1 was not stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let info = &c.partitions().await.unwrap()[1].0;
    assert!(info.stop_reason.as_deref().unwrap().contains("max-restarts 3"), "{info:?}");
    let r = c.search(SearchRequest::new(vec![0.0, 1.0], 400)).await.unwrap();
    assert_eq!(r.missing_partitions.len(), 1);
    assert_eq!(r.missing_partitions[0].partition, 1);
    assert!(total(&r) > 0 && total(&r) < 330);
    // A write routed to the stopped partition fails with an error naming it.
    let to_p1 = (1000..2000u64).find(|i| PointId::Num(*i).partition(3) == 1).unwrap();
    let e = c.upsert(points(to_p1..to_p1 + 1), true).await.unwrap_err();
    assert!(matches!(e, EngineError::PartitionUnavailable { partition: 1, .. }), "{e:?}");
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_strategy_stops_at_first_failure() {
    let config = EngineConfig {
        supervision: SupervisionPolicy { strategy: RestartStrategy::Stop, ..SupervisionPolicy::default() },
        ..EngineConfig::default()
    };
    let db = Ametist::in_memory(config);
    db.create_collection("c", CollectionConfig::new(2, Metric::Dot).with_partitions(2)).await.unwrap();
    let c = db.collection("c").unwrap();
    c.inject_fault(0, Fault::Panic("boom".into())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.partitions().await.unwrap()[0].0.state != ActorState::Stopped {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(c.partitions().await.unwrap()[0].0.restarts, 0);
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_partition_gives_a_partial_result_within_the_timeout() {
    let timeout = Duration::from_millis(300);
    let db = Ametist::in_memory(EngineConfig {
        search_timeout: timeout,
        allow_partial_results: true,
        ..EngineConfig::default()
    });
    db.create_collection("c", CollectionConfig::new(2, Metric::Euclid).with_partitions(2)).await.unwrap();
    let c = db.collection("c").unwrap();
    c.upsert(points(0..100), true).await.unwrap();
    c.inject_fault(0, Fault::Stall(Duration::from_secs(3))).await.unwrap();
    let started = Instant::now();
    let r = c.search(SearchRequest::new(vec![0.0, 1.0], 100)).await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "search took {took:?}");
    assert_eq!(r.missing_partitions.len(), 1);
    assert_eq!(r.missing_partitions[0].partition, 0);
    assert!(r.missing_partitions[0].reason.contains("timeout"));
    assert!(!r.results.is_empty());

    // With partial results disallowed, the same situation is a retryable error.
    let strict = Ametist::in_memory(EngineConfig {
        search_timeout: timeout,
        allow_partial_results: false,
        ..EngineConfig::default()
    });
    strict.create_collection("c", CollectionConfig::new(2, Metric::Euclid).with_partitions(2)).await.unwrap();
    let s = strict.collection("c").unwrap();
    s.inject_fault(1, Fault::Stall(Duration::from_secs(2))).await.unwrap();
    let e = s.search(SearchRequest::new(vec![0.0, 1.0], 10)).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    db.shutdown().await;
    strict.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_gives_a_retryable_error_and_loses_no_acknowledged_write() {
    let db = Ametist::in_memory(EngineConfig { partition_mailbox: 2, ..EngineConfig::default() });
    db.create_collection("c", CollectionConfig::new(2, Metric::Euclid).with_partitions(2)).await.unwrap();
    let c = db.collection("c").unwrap();
    // Stall both partitions so that their tiny mailboxes fill up.
    c.inject_fault(0, Fault::Stall(Duration::from_millis(300))).await.unwrap();
    c.inject_fault(1, Fault::Stall(Duration::from_millis(300))).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { (i, c.upsert(points(i..i + 1), true).await) }));
    }
    let mut acked = Vec::new();
    let mut overloaded = 0;
    for t in tasks {
        let (i, r) = t.await.unwrap();
        match r {
            Ok(_) => acked.push(i),
            Err(EngineError::Overloaded(msg)) => {
                assert!(msg.contains("mailbox"), "{msg}");
                overloaded += 1;
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert!(overloaded > 0, "a flood against a mailbox of 2 must be refused in part");
    assert!(!acked.is_empty());
    let got = c.get(acked.iter().map(|i| PointId::Num(*i)).collect(), false, false).await.unwrap();
    assert_eq!(got.len(), acked.len(), "every acknowledged write is stored");
    let r = c.search(SearchRequest::new(vec![0.0, 1.0], 1000)).await.unwrap();
    assert_eq!(r.results.len(), acked.len(), "every acknowledged write is searchable, nothing else");
    db.shutdown().await;
}

/// Keyword and sparse searches go through the same scatter as vector search: a stalled
/// partition is named in `missing_partitions` within the timeout (both of their phases,
/// statistics and search, have the deadline), and the other partitions' hits come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_sparse_searches_give_partial_results_within_the_timeout() {
    use ametist_core::sparse::{SparseModifier, SparseVector};
    use ametist_core::text::TextIndexConfig;
    use ametist_engine::collection::{SparseQuery, TextQuery};
    use ametist_engine::messages::NamedVectors;

    let db = Ametist::in_memory(EngineConfig {
        search_timeout: Duration::from_millis(300),
        allow_partial_results: true,
        ..EngineConfig::default()
    });
    let config =
        CollectionConfig::new(2, Metric::Dot).with_partitions(2).with_sparse_vector("words", SparseModifier::Idf);
    db.create_collection("c", config).await.unwrap();
    let c = db.collection("c").unwrap();
    c.create_text_index("title", TextIndexConfig::default()).await.unwrap();
    let points: Vec<InsertVector> = (0..60u64)
        .map(|i| {
            let mut vectors = NamedVectors::unnamed(vec![i as f32, 1.0]);
            vectors.sparse.insert("words".into(), SparseVector { indices: vec![1, 2], values: vec![1.0, i as f32] });
            let payload = serde_json::json!({ "title": format!("red apple number {i}") });
            InsertVector { id: PointId::Num(i), vectors, metadata: payload.as_object().cloned() }
        })
        .collect();
    c.upsert(points, true).await.unwrap();
    c.inject_fault(0, Fault::Stall(Duration::from_secs(3))).await.unwrap();

    let started = Instant::now();
    let text = TextQuery {
        field: "title".into(),
        text: "red apple".into(),
        k: 100,
        offset: 0,
        filter: None,
        with_payload: false,
        with_vector: false,
    };
    let r = c.text_search(text).await.expect("partial keyword result");
    assert_eq!(r.missing_partitions.iter().map(|m| m.partition).collect::<Vec<_>>(), vec![0]);
    assert!(!r.results.is_empty() && r.results.len() < 60, "only the live partition's hits: {}", r.results.len());

    let sparse = SparseQuery {
        name: "words".into(),
        vector: SparseVector { indices: vec![2], values: vec![1.0] },
        k: 100,
        offset: 0,
        filter: None,
        with_payload: false,
        with_vector: false,
        score_threshold: None,
    };
    let r = c.sparse_search(sparse).await.expect("partial sparse result");
    assert_eq!(r.missing_partitions.iter().map(|m| m.partition).collect::<Vec<_>>(), vec![0]);
    assert!(!r.results.is_empty() && r.results.len() < 60);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "both searches took {took:?}: each phase has the deadline");
    db.shutdown().await;
}
