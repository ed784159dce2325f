//! The embedded API in a few lines: `cargo run -p ametist-engine --example quickstart`.

use ametist_core::{Metric, PointId};
use ametist_engine::{Ametist, CollectionConfig, EngineConfig, InsertVector, SearchRequest};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In memory; `Ametist::open("./my-data", EngineConfig::default())` for a data directory.
    let db = Ametist::in_memory(EngineConfig::default());
    db.create_collection("articles", CollectionConfig::new(4, Metric::Cosine).with_partitions(2)).await?;
    let articles = db.collection("articles")?;

    let docs = [
        (1, [0.9, 0.1, 0.0, 0.0], "Rust actors"),
        (2, [0.1, 0.9, 0.0, 0.0], "Cooking pasta"),
        (3, [0.8, 0.2, 0.1, 0.0], "Tokio runtime internals"),
    ];
    let points = docs
        .iter()
        .map(|(id, v, title)| InsertVector {
            id: PointId::Num(*id),
            vectors: v.to_vec().into(),
            metadata: json!({ "title": title }).as_object().cloned(),
        })
        .collect();
    // `wait = true`: answered once every partition has applied the write.
    articles.upsert(points, true).await?;

    let mut query = SearchRequest::new(vec![1.0, 0.0, 0.0, 0.0], 2);
    query.with_payload = true;
    let found = articles.search(query).await?;
    for hit in &found.results {
        println!("{} {:.3} {}", hit.id, hit.score, hit.payload.as_ref().unwrap()["title"]);
    }

    for (partition, stats) in articles.partitions().await? {
        println!("partition {}: {:?}, {} points", partition.id, partition.state, stats.map_or(0, |s| s.doc_count));
    }
    db.shutdown().await;
    Ok(())
}
