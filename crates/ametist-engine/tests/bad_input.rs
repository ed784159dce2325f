//! Bad input gets a clear error naming the problem and changes nothing.

use ametist_core::{Metric, PointId};
use ametist_engine::{Ametist, CollectionConfig, EngineConfig, EngineError, InsertVector, SearchRequest};

fn point(id: u64, v: Vec<f32>) -> InsertVector {
    InsertVector { id: PointId::Num(id), vectors: v.into(), metadata: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_changes_nothing() {
    let config = EngineConfig { max_batch: 100, max_limit: 1000, ..EngineConfig::default() };
    let db = Ametist::in_memory(config);
    db.create_collection("c", CollectionConfig::new(3, Metric::Euclid).with_partitions(3)).await.unwrap();
    let c = db.collection("c").unwrap();
    c.upsert(vec![point(1, vec![1.0, 0.0, 0.0]), point(2, vec![0.0, 1.0, 0.0])], true).await.unwrap();

    let err = |e: EngineError| {
        assert!(e.is_bad_input(), "{e:?} should be bad input");
        e.to_string()
    };
    // Wrong dimension in the middle of a batch: nothing of the batch is stored.
    let e = c.upsert(vec![point(3, vec![0.0, 0.0, 1.0]), point(4, vec![1.0])], true).await.unwrap_err();
    assert!(err(e).contains("expected dim: 3, got 1"));
    let e = c.upsert(vec![point(5, vec![f32::NAN, 0.0, 0.0])], true).await.unwrap_err();
    assert!(err(e).contains("non-finite"));
    let e = c.upsert(vec![point(5, vec![f32::INFINITY, 0.0, 0.0])], true).await.unwrap_err();
    assert!(err(e).contains("non-finite"));
    let e = c.upsert(vec![], true).await.unwrap_err();
    assert!(err(e).contains("empty"));
    let big: Vec<InsertVector> = (0..101).map(|i| point(100 + i, vec![0.0, 0.0, 1.0])).collect();
    let e = c.upsert(big, true).await.unwrap_err();
    assert!(err(e).contains("maximum of 100"));
    let e = c.search(SearchRequest::new(vec![1.0, 0.0, 0.0], 0)).await.unwrap_err();
    assert!(err(e).contains("limit"));
    let e = c.search(SearchRequest::new(vec![1.0, 0.0, 0.0], 1_000_000)).await.unwrap_err();
    assert!(err(e).contains("maximum of 1000"));
    let e = c.search(SearchRequest::new(vec![1.0, 0.0], 3)).await.unwrap_err();
    assert!(err(e).contains("expected dim: 3, got 2"));
    let e = c
        .update_vectors(
            vec![ametist_engine::UpdateVector { id: PointId::Num(77), vectors: vec![1.0, 1.0, 1.0].into() }],
            true,
        )
        .await
        .unwrap_err();
    assert!(err(e).contains("No point with id 77"));

    let e = db.collection("nope").err().unwrap();
    assert!(matches!(e, EngineError::CollectionNotFound(_)));
    assert!(err(e).contains("nope"));
    let e = db.create_collection("c", CollectionConfig::new(3, Metric::Dot)).await.unwrap_err();
    assert!(matches!(e, EngineError::CollectionExists(_)));
    for bad in ["", "a/b", "../x", ".hidden"] {
        let e = db.create_collection(bad, CollectionConfig::new(3, Metric::Dot)).await.unwrap_err();
        err(e);
    }
    let e = db.create_collection("zero", CollectionConfig::new(0, Metric::Dot)).await.unwrap_err();
    err(e);
    let e = db.create_collection("parts", CollectionConfig::new(3, Metric::Dot).with_partitions(0)).await.unwrap_err();
    err(e);
    assert_eq!(db.list_collections(), vec!["c".to_string()]);

    // The stored data is exactly the first batch.
    let info = c.info().await.unwrap();
    assert_eq!(info.points, 2);
    let got = c.get((1..=5).map(PointId::Num).collect(), true, true).await.unwrap();
    assert_eq!(got.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), vec![PointId::Num(1), PointId::Num(2)]);
    assert_eq!(got[0].vector(), Some(&[1.0, 0.0, 0.0][..]));
    db.shutdown().await;
}

/// Every index number is checked against what the index files hold before a collection
/// exists: a setting that a restart could not read back is refused, never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_settings_out_of_range_create_nothing() {
    use ametist_engine::config::IndexConfig;
    let db = Ametist::in_memory(EngineConfig::default());
    let with = |index: IndexConfig| CollectionConfig { index: Some(index), ..CollectionConfig::new(4, Metric::Dot) };
    let cases = [
        (IndexConfig { ef_construction: 4_294_967_296, ..IndexConfig::default() }, "ef_construction"),
        (IndexConfig { ef_construction: 0, ..IndexConfig::default() }, "ef_construction"),
        (IndexConfig { m: 1_000_000_000, ..IndexConfig::default() }, "m must be between 2 and 1024"),
        (IndexConfig { m: 1, ..IndexConfig::default() }, "m must be"),
        (IndexConfig { ef_search: 0, ..IndexConfig::default() }, "ef_search"),
        (IndexConfig { full_scan_threshold: usize::MAX, ..IndexConfig::default() }, "full_scan_threshold"),
        (IndexConfig { quantile: Some(0.1), ..IndexConfig::default() }, "quantile"),
    ];
    for (index, field) in cases {
        let e = db.create_collection("c", with(index)).await.unwrap_err();
        assert!(e.is_bad_input() && e.to_string().contains(field), "{field}: {e}");
        assert!(db.list_collections().is_empty());
    }
    let e = db.create_collection("c", CollectionConfig::new(4, Metric::Dot).with_partitions(5000)).await.unwrap_err();
    assert!(e.to_string().contains("between 1 and 1024, got 5000"), "{e}");
    db.create_collection("c", with(IndexConfig { m: 1024, ef_construction: 10_000, ..IndexConfig::default() }))
        .await
        .unwrap();
}

/// A write over several partitions that names a point missing on one of them (not the
/// first) changes nothing on any partition: vector updates and payload updates alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_naming_a_missing_point_changes_nothing_anywhere() {
    use ametist_engine::collection::Target;
    use ametist_engine::messages::FilterAction;
    use ametist_engine::UpdateVector;

    let db = Ametist::in_memory(EngineConfig::default());
    db.create_collection("c", CollectionConfig::new(2, Metric::Dot).with_partitions(4)).await.unwrap();
    let c = db.collection("c").unwrap();
    c.upsert((0..40).map(|i| point(i, vec![i as f32, 1.0])).collect(), true).await.unwrap();
    let before = c.get((0..40).map(PointId::Num).collect(), true, true).await.unwrap();
    // A missing id routed to the last partition, not the first.
    let missing = (1000u64..).map(PointId::Num).find(|id| id.partition(4) == 3).expect("some id routes there");
    let mut updates: Vec<UpdateVector> =
        (0..40).map(|i| UpdateVector { id: PointId::Num(i), vectors: vec![9.0, 9.0].into() }).collect();
    updates.push(UpdateVector { id: missing.clone(), vectors: vec![9.0, 9.0].into() });
    let e = c.update_vectors(updates, true).await.unwrap_err();
    assert!(matches!(&e, EngineError::PointNotFound(id) if *id == missing), "{e:?}");
    let mut ids: Vec<PointId> = (0..40).map(PointId::Num).collect();
    ids.push(missing.clone());
    let payload = serde_json::json!({"x": 1}).as_object().cloned().expect("an object");
    let e = c.update_payload(Target::Ids(ids), FilterAction::SetPayload(payload), true).await.unwrap_err();
    assert!(matches!(&e, EngineError::PointNotFound(id) if *id == missing), "{e:?}");
    assert_eq!(c.get((0..40).map(PointId::Num).collect(), true, true).await.unwrap(), before, "nothing changed");
}
