//! BM25 keyword search and hybrid fusion through the actors.

use std::collections::BTreeMap;

use ametist_core::filter::Filter;
use ametist_core::text::{fusion, CorpusStats, TextIndex, TextIndexConfig};
use ametist_core::{Metric, PointId};
use ametist_engine::collection::{Branch, Fusion, TextQuery};
use ametist_engine::messages::Fault;
use ametist_engine::{Ametist, CollectionConfig, EngineConfig, InsertVector, SearchRequest};
use serde_json::json;

const DOCS: [&str; 12] = [
    "error code E1234 when the disk is full",
    "the disk is full again",
    "rust actors and supervision trees",
    "error handling in rust with thiserror",
    "vector databases index embeddings",
    "hybrid search fuses keyword and vector results",
    "E1234 appears after an upgrade",
    "keyword search with bm25 scoring",
    "the cat sat on the mat",
    "supervision restarts failed actors",
    "full text search needs a tokenizer",
    "error error error repeated words",
];

fn query(field: &str, text: &str, k: usize) -> TextQuery {
    TextQuery {
        field: field.into(),
        text: text.into(),
        k,
        offset: 0,
        filter: None,
        with_payload: true,
        with_vector: false,
    }
}

async fn collection(db: &Ametist, name: &str, partitions: usize) -> ametist_engine::collection::Collection {
    db.create_collection(name, CollectionConfig::new(3, Metric::Cosine).with_partitions(partitions)).await.unwrap();
    let c = db.collection(name).unwrap();
    c.create_text_index("body", TextIndexConfig::default()).await.unwrap();
    let points = DOCS
        .iter()
        .enumerate()
        .map(|(i, text)| InsertVector {
            id: PointId::Num(i as u64),
            vectors: vec![1.0, i as f32, (i % 3) as f32].into(),
            metadata: json!({"body": text, "group": i % 2}).as_object().cloned(),
        })
        .collect();
    c.upsert(points, true).await.unwrap();
    c
}

/// Scores from one index holding every document: the reference.
fn reference(docs: &[(u64, &str)], text: &str) -> BTreeMap<u64, f32> {
    let mut index = TextIndex::new(TextIndexConfig::default()).unwrap();
    for (id, d) in docs {
        index.add(*id as u32, d);
    }
    let terms = index.tokenize(text);
    let global = CorpusStats::sum([index.term_stats(&terms)].iter());
    index.search(&terms, &global, 100, None).into_iter().map(|(s, score)| (s as u64, score)).collect()
}

fn scores(r: &ametist_engine::SearchResult) -> BTreeMap<u64, f32> {
    r.results.iter().map(|d| (if let PointId::Num(i) = d.id { i } else { unreachable!() }, d.score)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bm25_scores_do_not_depend_on_partitioning() {
    let db = Ametist::in_memory(EngineConfig::default());
    let one = collection(&db, "one", 1).await;
    let five = collection(&db, "five", 5).await;
    let all: Vec<(u64, &str)> = DOCS.iter().enumerate().map(|(i, d)| (i as u64, *d)).collect();
    for q in ["error E1234", "disk full", "supervision actors rust", "search", "nothing-matches-this"] {
        let a = one.text_search(query("body", q, 20)).await.unwrap();
        let b = five.text_search(query("body", q, 20)).await.unwrap();
        assert_eq!(scores(&a), scores(&b), "{q}: 1 vs 5 partitions");
        assert_eq!(scores(&a), reference(&all, q), "{q}: against one index");
        // Best first.
        assert!(a.results.windows(2).all(|w| w[0].score >= w[1].score));
    }
    // The filter applies to keyword search.
    let mut q = query("body", "error", 20);
    q.filter = Some(Filter::from_value(json!({"must": [{"key": "group", "match": {"value": 1}}]})).unwrap());
    let r = five.text_search(q).await.unwrap();
    assert!(!r.results.is_empty());
    assert!(r.results.iter().all(|d| d.payload.as_ref().unwrap()["group"] == 1));

    // Deletes and updates change the statistics exactly as a fresh index would.
    five.delete(vec![PointId::Num(0)], true).await.unwrap();
    let upd = InsertVector {
        id: PointId::Num(1),
        vectors: vec![1.0, 1.0, 1.0].into(),
        metadata: json!({"body": "error E1234 again and again", "group": 1}).as_object().cloned(),
    };
    five.upsert(vec![upd], true).await.unwrap();
    let mut now: Vec<(u64, &str)> = all.iter().filter(|(i, _)| *i > 1).cloned().collect();
    now.push((1, "error E1234 again and again"));
    let r = five.text_search(query("body", "error E1234", 20)).await.unwrap();
    assert_eq!(scores(&r), reference(&now, "error E1234"));

    // A restarted partition rebuilds its text index from its store.
    five.inject_fault(2, Fault::Panic("drill".into())).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(r) = five.text_search(query("body", "error E1234", 20)).await {
            if scores(&r) == reference(&now, "error E1234") {
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "text index not recovered");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Searching a field without a text index is bad input.
    assert!(five.text_search(query("group", "x", 5)).await.unwrap_err().is_bad_input());
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_fuses_vector_and_keyword_branches() {
    let db = Ametist::in_memory(EngineConfig::default());
    let c = collection(&db, "h", 3).await;
    let dense = SearchRequest::new(vec![1.0, 6.0, 0.0], 5);
    let text = query("body", "error E1234", 5);
    let vector_hits = c.search(dense.clone()).await.unwrap();
    let text_hits = c.text_search(text.clone()).await.unwrap();
    let ids = |r: &ametist_engine::SearchResult| r.results.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
    let expected = fusion::rrf(&[ids(&vector_hits), ids(&text_hits)], fusion::DEFAULT_RRF_K);
    let fused =
        c.hybrid(vec![Branch::Vector(dense.clone()), Branch::Text(text.clone())], Fusion::Rrf, 4).await.unwrap();
    let got: Vec<(PointId, f32)> = fused.results.iter().map(|d| (d.id.clone(), d.score)).collect();
    assert_eq!(got, expected.into_iter().take(4).collect::<Vec<_>>());
    // By hand: the top of one list is worth 1/(2+0) = 0.5.
    assert!(got.iter().all(|(_, s)| *s <= 1.0 + 1e-6));

    // Filters on every branch filter the fused result.
    let only0 = Filter::from_value(json!({"must": [{"key": "group", "match": {"value": 0}}]})).unwrap();
    let mut dense_f = dense;
    dense_f.filter = Some(only0.clone());
    dense_f.with_payload = true;
    let mut text_f = text;
    text_f.filter = Some(only0);
    let fused = c.hybrid(vec![Branch::Vector(dense_f), Branch::Text(text_f)], Fusion::Dbsf, 10).await.unwrap();
    assert!(!fused.results.is_empty());
    assert!(fused.results.iter().all(|d| d.payload.as_ref().unwrap()["group"] == 0));
    db.shutdown().await;
}
