//! Scatter-gather over partitions equals one exact search over all data.

mod common;

use ametist_core::{flat, topk, vector, Metric, PointId};
use ametist_engine::{Ametist, CollectionConfig, EngineConfig, InsertVector, SearchRequest};
use rand::Rng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scatter_gather_equals_exact_search() {
    let mut rng = common::seeded_rng("scatter_gather_equals_exact_search");
    let db = Ametist::in_memory(EngineConfig::default());
    for case in 0..12 {
        let metric = [Metric::Cosine, Metric::Dot, Metric::Euclid, Metric::Manhattan][case % 4];
        let partitions = [1, 2, 3, 8][rng.random_range(0..4)];
        // Dimension 1 would make every cosine score +1 or -1: ties everywhere, and which of
        // the tied points fill the last places of a top-k is not defined.
        let dim = rng.random_range(2..24);
        let n = rng.random_range(1..400);
        let name = format!("c{case}");
        db.create_collection(&name, CollectionConfig::new(dim, metric).with_partitions(partitions)).await.unwrap();
        let c = db.collection(&name).unwrap();

        // Mix numeric and string ids, and overwrite some points to exercise upserts.
        let mut ids: Vec<PointId> = Vec::new();
        let mut stored: std::collections::HashMap<PointId, Vec<f32>> = Default::default();
        let mut batch = Vec::new();
        for i in 0..n {
            let id = if rng.random_bool(0.5) { PointId::Num(i as u64) } else { PointId::Str(format!("p-{i}")) };
            let v = common::random_vector(&mut rng, dim);
            ids.push(id.clone());
            stored.insert(id.clone(), vector::prepare(metric, dim, v.clone()).unwrap());
            batch.push(InsertVector { id, vectors: v.into(), metadata: None });
        }
        c.upsert(batch, true).await.unwrap();
        let mut batch = Vec::new();
        for _ in 0..n / 4 {
            let id = ids[rng.random_range(0..ids.len())].clone();
            let v = common::random_vector(&mut rng, dim);
            stored.insert(id.clone(), vector::prepare(metric, dim, v.clone()).unwrap());
            batch.push(InsertVector { id, vectors: v.into(), metadata: None });
        }
        if !batch.is_empty() {
            // Later entries for the same id win, as in the stored map above.
            c.upsert(batch, true).await.unwrap();
        }

        let all_ids: Vec<PointId> = stored.keys().cloned().collect();
        let flat_vectors: Vec<f32> = all_ids.iter().flat_map(|id| stored[id].clone()).collect();
        for _ in 0..5 {
            let k = rng.random_range(1..20);
            let offset = rng.random_range(0..3);
            let q = common::random_vector(&mut rng, dim);
            let mut req = SearchRequest::new(q.clone(), k);
            req.offset = offset;
            let got = c.search(req).await.unwrap();
            assert!(!got.is_partial());

            let pq = vector::prepare(metric, dim, q).unwrap();
            let exact = flat::search(metric, dim, &flat_vectors, &pq, all_ids.len(), |_| true);
            let exact: Vec<(f32, PointId)> =
                exact.iter().map(|c| (metric.score(c.distance), all_ids[c.slot as usize].clone())).collect();
            let expected = topk::merge(metric, vec![exact], offset, k, |(s, id)| (*s, id));
            assert_eq!(got.results.len(), expected.len(), "case {case}: {metric:?}, {partitions} partitions");
            for (g, (score, id)) in got.results.iter().zip(&expected) {
                assert_eq!(&g.id, id, "case {case}: {metric:?}, {partitions} partitions, k {k}, offset {offset}");
                assert!((g.score - score).abs() <= 1e-5 * score.abs().max(1.0));
            }
        }
    }
    db.shutdown().await;
}
