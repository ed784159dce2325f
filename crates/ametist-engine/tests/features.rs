//! Index, filters, payload updates, scroll and count through the actors.

mod common;

use std::collections::HashSet;

use ametist_core::filter::Filter;
use ametist_core::{flat, vector, Metric, PointId};
use ametist_engine::collection::Target;
use ametist_engine::config::IndexConfig;
use ametist_engine::messages::{FilterAction, ScrollRequest};
use ametist_engine::{Ametist, CollectionConfig, EngineConfig, InsertVector, SearchRequest};
use rand::Rng;
use serde_json::json;

fn filter(v: serde_json::Value) -> Filter {
    Filter::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_search_has_high_recall_and_exact_is_exact() {
    let mut rng = common::seeded_rng("graph_search_has_high_recall_and_exact_is_exact");
    let db = Ametist::in_memory(EngineConfig::default());
    // full_scan_threshold 0: every partition walks its graph.
    let index = IndexConfig { full_scan_threshold: 0, ..IndexConfig::default() };
    let dim = 16;
    let config =
        CollectionConfig { partitions: Some(2), index: Some(index), ..CollectionConfig::new(dim, Metric::Euclid) };
    db.create_collection("c", config).await.unwrap();
    let c = db.collection("c").unwrap();
    // Clustered data, like real embeddings.
    let centres: Vec<Vec<f32>> = (0..20).map(|_| common::random_vector(&mut rng, dim)).collect();
    let n = 4000;
    let mut data = Vec::with_capacity(n * dim);
    let mut batch = Vec::new();
    for i in 0..n {
        let centre = &centres[rng.random_range(0..centres.len())];
        let v: Vec<f32> = centre.iter().map(|x| x + rng.random_range(-0.2f32..0.2)).collect();
        data.extend_from_slice(&v);
        batch.push(InsertVector { id: PointId::Num(i as u64), vectors: v.into(), metadata: None });
        if batch.len() == 1000 {
            c.upsert(std::mem::take(&mut batch), true).await.unwrap();
        }
    }
    let mut hits = 0;
    let queries = 50;
    for _ in 0..queries {
        let q = common::random_vector(&mut rng, dim);
        let truth: HashSet<u64> =
            flat::search(Metric::Euclid, dim, &data, &q, 10, |_| true).iter().map(|c| c.slot as u64).collect();
        let got = c.search(SearchRequest::new(q.clone(), 10)).await.unwrap();
        hits += got.results.iter().filter(|d| matches!(d.id, PointId::Num(i) if truth.contains(&i))).count();
        let mut exact = SearchRequest::new(q, 10);
        exact.exact = true;
        let got = c.search(exact).await.unwrap();
        let ids: HashSet<u64> = got
            .results
            .iter()
            .map(|d| match d.id {
                PointId::Num(i) => i,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(ids, truth, "params.exact must be exact");
    }
    let recall = hits as f64 / (queries * 10) as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");
    let parts = c.partitions().await.unwrap();
    assert!(parts.iter().all(|(_, s)| s.as_ref().unwrap().levels >= 1));
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_search_returns_only_matching_points() {
    let mut rng = common::seeded_rng("filtered_search_returns_only_matching_points");
    let db = Ametist::in_memory(EngineConfig::default());
    for threshold in [0usize, 100_000] {
        let name = format!("c{threshold}");
        let index = IndexConfig { full_scan_threshold: threshold, ..IndexConfig::default() };
        let config =
            CollectionConfig { partitions: Some(3), index: Some(index), ..CollectionConfig::new(8, Metric::Cosine) };
        db.create_collection(&name, config).await.unwrap();
        let c = db.collection(&name).unwrap();
        let mut points = Vec::new();
        let mut vectors = Vec::new();
        for i in 0..3000u64 {
            let v = common::random_vector(&mut rng, 8);
            vectors.push(vector::prepare(Metric::Cosine, 8, v.clone()).unwrap());
            let payload = json!({"bucket": i % 10, "tag": if i % 2 == 0 { "even" } else { "odd" }});
            points.push(InsertVector {
                id: PointId::Num(i),
                vectors: v.into(),
                metadata: payload.as_object().cloned(),
            });
        }
        c.upsert(points, true).await.unwrap();
        for (f, pred) in [
            (
                json!({"must": [{"key": "bucket", "match": {"value": 3}}]}),
                Box::new(|i: u64| i % 10 == 3) as Box<dyn Fn(u64) -> bool>,
            ),
            (json!({"must": [{"key": "tag", "match": {"value": "even"}}]}), Box::new(|i: u64| i.is_multiple_of(2))),
            (json!({"must_not": [{"key": "bucket", "range": {"lt": 9}}]}), Box::new(|i: u64| i % 10 == 9)),
        ] {
            for _ in 0..10 {
                let q = common::random_vector(&mut rng, 8);
                let mut req = SearchRequest::new(q.clone(), 10);
                req.filter = Some(filter(f.clone()));
                req.with_payload = true;
                let got = c.search(req).await.unwrap();
                assert_eq!(got.results.len(), 10);
                let pq = vector::prepare(Metric::Cosine, 8, q).unwrap();
                let flat_all: Vec<f32> = vectors.iter().flatten().copied().collect();
                let truth: HashSet<u64> = flat::search(Metric::Cosine, 8, &flat_all, &pq, 10, |s| pred(s as u64))
                    .iter()
                    .map(|c| c.slot as u64)
                    .collect();
                let mut found = 0;
                for d in &got.results {
                    let PointId::Num(i) = d.id else { unreachable!() };
                    assert!(pred(i), "point {i} does not match {f}");
                    found += usize::from(truth.contains(&i));
                }
                assert!(found >= 8, "filtered recall too low: {found}/10 for {f} (threshold {threshold})");
            }
        }
    }
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_updates_scroll_count_and_delete_by_filter() {
    let db = Ametist::in_memory(EngineConfig::default());
    db.create_collection("c", CollectionConfig::new(2, Metric::Dot).with_partitions(3)).await.unwrap();
    let c = db.collection("c").unwrap();
    let points = (0..100u64)
        .map(|i| InsertVector {
            id: PointId::Num(i),
            vectors: vec![1.0, i as f32].into(),
            metadata: json!({"n": i, "group": i % 4}).as_object().cloned(),
        })
        .collect();
    c.upsert(points, true).await.unwrap();
    assert_eq!(c.count(None).await.unwrap(), 100);
    assert_eq!(c.count(Some(filter(json!({"must": {"key": "group", "match": {"value": 1}}})))).await.unwrap(), 25);

    // Scroll pages cover every point once, in id order.
    let mut seen = Vec::new();
    let mut offset = None;
    loop {
        let req = ScrollRequest {
            filter: None,
            offset: offset.clone(),
            limit: 30,
            with_payload: true,
            with_vector: false,
            order: None,
        };
        let (page, next) = c.scroll(req).await.unwrap();
        seen.extend(page.iter().map(|r| r.id.clone()));
        match next {
            Some(n) => offset = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, (0..100u64).map(PointId::Num).collect::<Vec<_>>());

    // Set keys on ids, overwrite by filter, delete keys, clear.
    let set = json!({"color": "red"}).as_object().cloned().unwrap();
    c.update_payload(Target::Ids(vec![PointId::Num(1), PointId::Num(2)]), FilterAction::SetPayload(set), true)
        .await
        .unwrap();
    let r = c.get(vec![PointId::Num(1)], true, false).await.unwrap();
    assert_eq!(serde_json::Value::Object(r[0].payload.clone().unwrap()), json!({"n": 1, "group": 1, "color": "red"}));
    let over = json!({"only": true}).as_object().cloned().unwrap();
    let g2 = filter(json!({"must": {"key": "group", "match": {"value": 2}}}));
    c.update_payload(Target::Filter(g2.clone()), FilterAction::OverwritePayload(over), true).await.unwrap();
    assert_eq!(c.count(Some(filter(json!({"must": {"key": "only", "match": {"value": true}}})))).await.unwrap(), 25);
    c.update_payload(Target::Ids(vec![PointId::Num(1)]), FilterAction::DeletePayload(vec!["color".into()]), true)
        .await
        .unwrap();
    let r = c.get(vec![PointId::Num(1)], true, false).await.unwrap();
    assert_eq!(serde_json::Value::Object(r[0].payload.clone().unwrap()), json!({"n": 1, "group": 1}));
    c.update_payload(Target::Ids(vec![PointId::Num(3)]), FilterAction::ClearPayload, true).await.unwrap();
    let r = c.get(vec![PointId::Num(3)], true, false).await.unwrap();
    assert_eq!(r[0].payload.as_ref().unwrap().len(), 0);
    // A payload update naming a missing point fails and changes nothing.
    let set = json!({"x": 1}).as_object().cloned().unwrap();
    let e =
        c.update_payload(Target::Ids(vec![PointId::Num(999)]), FilterAction::SetPayload(set), true).await.unwrap_err();
    assert!(e.is_bad_input() && e.to_string().contains("999"), "{e}");

    // Delete by filter: the matching points are gone from search, scroll and count.
    let g0 = filter(json!({"must": {"key": "group", "match": {"value": 0}}}));
    c.delete_by_filter(g0.clone(), true).await.unwrap();
    assert_eq!(c.count(None).await.unwrap(), 75);
    assert_eq!(c.count(Some(g0)).await.unwrap(), 0);
    let got = c.search(SearchRequest::new(vec![1.0, 1.0], 100)).await.unwrap();
    assert_eq!(got.results.len(), 75);
    assert!(got.results.iter().all(|d| matches!(d.id, PointId::Num(i) if i % 4 != 0)));
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_indexes_answer_selective_filters_exactly_and_survive_restarts() {
    let mut rng = common::seeded_rng("payload_indexes_answer_selective_filters_exactly_and_survive_restarts");
    let db = Ametist::in_memory(EngineConfig::default());
    let index = IndexConfig { full_scan_threshold: 500, ..IndexConfig::default() };
    let config =
        CollectionConfig { partitions: Some(2), index: Some(index), ..CollectionConfig::new(8, Metric::Euclid) };
    db.create_collection("c", config).await.unwrap();
    let c = db.collection("c").unwrap();
    let mut vectors = Vec::new();
    let mut points = Vec::new();
    for i in 0..4000u64 {
        let v = common::random_vector(&mut rng, 8);
        vectors.extend_from_slice(&v);
        let payload = json!({"shop": format!("s{}", i % 100), "price": (i % 1000) as f64 / 10.0, "ok": i % 3 == 0});
        points.push(InsertVector { id: PointId::Num(i), vectors: v.into(), metadata: payload.as_object().cloned() });
    }
    c.upsert(points, true).await.unwrap();
    c.create_field_index("shop", ametist_core::payload_index::FieldType::Keyword).await.unwrap();
    c.create_field_index("price", ametist_core::payload_index::FieldType::Float).await.unwrap();
    assert_eq!(c.payload_schema().len(), 2);

    let check = |c: ametist_engine::collection::Collection, vectors: Vec<f32>, q: Vec<f32>| async move {
        let f = json!({"must": [{"key": "shop", "match": {"value": "s7"}}, {"key": "price", "range": {"lt": 50.0}}]});
        let mut req = SearchRequest::new(q.clone(), 5);
        req.filter = Some(filter(f));
        let got = c.search(req).await.unwrap();
        let pred = |i: u64| i % 100 == 7 && ((i % 1000) as f64 / 10.0) < 50.0;
        let truth: Vec<u64> = flat::search(Metric::Euclid, 8, &vectors, &q, 5, |s| pred(s as u64))
            .iter()
            .map(|c| c.slot as u64)
            .collect();
        let ids: Vec<u64> =
            got.results.iter().map(|d| if let PointId::Num(i) = d.id { i } else { unreachable!() }).collect();
        assert_eq!(ids, truth, "indexed selective filters are answered exactly");
    };
    for _ in 0..5 {
        check(c.clone(), vectors.clone(), common::random_vector(&mut rng, 8)).await;
    }
    let count =
        c.count(Some(filter(json!({"must": [{"key": "shop", "match": {"any": ["s1", "s2"]}}]})))).await.unwrap();
    assert_eq!(count, 80);

    // A restarted partition re-creates its field indexes.
    c.inject_fault(0, ametist_engine::messages::Fault::Panic("drill".into())).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let parts = c.partitions().await.unwrap();
        if parts[0].0.restarts == 1 && parts[0].1.as_ref().is_some_and(|s| s.payload_fields.len() == 2) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no restart with indexes: {parts:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    check(c.clone(), vectors.clone(), common::random_vector(&mut rng, 8)).await;
    assert!(c.drop_field_index("shop").await.unwrap());
    assert!(!c.drop_field_index("shop").await.unwrap());
    check(c.clone(), vectors.clone(), common::random_vector(&mut rng, 8)).await;
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broad_indexed_filters_walk_the_graph_with_high_recall() {
    let mut rng = common::seeded_rng("broad_indexed_filters_walk_the_graph_with_high_recall");
    let db = Ametist::in_memory(EngineConfig::default());
    // m = 4 keeps the walk cheaper than scoring 6,000 candidates, so the planner walks.
    let index = IndexConfig { full_scan_threshold: 100, m: 4, ..IndexConfig::default() };
    let dim = 12;
    let config =
        CollectionConfig { partitions: Some(1), index: Some(index), ..CollectionConfig::new(dim, Metric::Dot) };
    db.create_collection("c", config).await.unwrap();
    let c = db.collection("c").unwrap();
    c.create_field_index("half", ametist_core::payload_index::FieldType::Bool).await.unwrap();
    let mut data = Vec::new();
    for chunk in 0..4 {
        let mut points = Vec::new();
        for i in chunk * 3000..(chunk + 1) * 3000u64 {
            let v = common::random_vector(&mut rng, dim);
            data.extend_from_slice(&v);
            points.push(InsertVector {
                id: PointId::Num(i),
                vectors: v.into(),
                metadata: json!({"half": i % 2 == 0}).as_object().cloned(),
            });
        }
        c.upsert(points, true).await.unwrap();
    }
    // 6,000 candidates: more than a widened walk visits, so the graph is walked with the
    // candidates as a pre-filter.
    let f = filter(json!({"must": [{"key": "half", "match": {"value": true}}]}));
    let mut hits = 0;
    for _ in 0..30 {
        let q = common::random_vector(&mut rng, dim);
        let mut req = SearchRequest::new(q.clone(), 10);
        req.filter = Some(f.clone());
        let got = c.search(req).await.unwrap();
        let truth: HashSet<u64> =
            flat::search(Metric::Dot, dim, &data, &q, 10, |s| s % 2 == 0).iter().map(|c| c.slot as u64).collect();
        for d in &got.results {
            let PointId::Num(i) = d.id else { unreachable!() };
            assert_eq!(i % 2, 0, "non-matching point returned");
            hits += usize::from(truth.contains(&i));
        }
    }
    let recall = hits as f64 / 300.0;
    assert!(recall >= 0.9, "filtered recall@10 {recall}");
    db.shutdown().await;
}
