//! Shard keys (custom sharding) and aliases: isolation between keys, the writes a scope
//! needs, durability of keys and aliases across a restart.

use std::path::PathBuf;

use ametist_core::{Metric, PointId};
use ametist_engine::spec::{CollectionSettings, ShardKey, ShardingMethod};
use ametist_engine::{AliasAction, Ametist, CollectionConfig, EngineConfig, EngineError, InsertVector, SearchRequest};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let p = std::env::temp_dir().join(format!("ametist-shardkeys-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key(s: &str) -> ShardKey {
    ShardKey::Str(s.to_string())
}

fn points(n: u64, salt: f32) -> Vec<InsertVector> {
    (0..n)
        .map(|i| InsertVector { id: PointId::Num(i), vectors: vec![i as f32, salt, 1.0].into(), metadata: None })
        .collect()
}

fn custom() -> CollectionSettings {
    CollectionSettings { sharding_method: ShardingMethod::Custom, ..CollectionSettings::default() }
}

async fn make(db: &Ametist) {
    let config = CollectionConfig::new(3, Metric::Euclid).with_partitions(2);
    db.create_collection_with("c", config, custom()).await.unwrap();
    let c = db.collection("c").unwrap();
    c.create_shard_key(key("a"), None).await.unwrap();
    c.create_shard_key(key("b"), Some(1)).await.unwrap();
    let a = c.with_shard_keys(Some(vec![key("a")])).unwrap();
    let b = c.with_shard_keys(Some(vec![key("b")])).unwrap();
    a.upsert(points(20, 1.0), true).await.unwrap();
    b.upsert(points(10, 2.0), true).await.unwrap();
}

async fn check(db: &Ametist, name: &str) {
    let c = db.collection(name).unwrap();
    let a = c.with_shard_keys(Some(vec![key("a")])).unwrap();
    let b = c.with_shard_keys(Some(vec![key("b")])).unwrap();
    assert_eq!(a.count(None).await.unwrap(), 20);
    assert_eq!(b.count(None).await.unwrap(), 10);
    assert_eq!(c.count(None).await.unwrap(), 30);
    // The same ids in both keys are two points; each key sees its own.
    let hits = b.search(SearchRequest::new(vec![0.0, 1.0, 1.0], 50)).await.unwrap().results;
    assert_eq!(hits.len(), 10);
    let got = a.get(vec![PointId::Num(3)], false, true).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].vector().unwrap()[1], 1.0);
    assert_eq!(c.get(vec![PointId::Num(3)], false, false).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_isolate_points_and_need_a_key_to_write() {
    let db = Ametist::in_memory(EngineConfig::default());
    make(&db).await;
    check(&db, "c").await;
    let c = db.collection("c").unwrap();
    // No key, an unknown key, a key on an auto collection: refused, nothing written.
    assert!(matches!(c.upsert(points(1, 9.0), true).await, Err(EngineError::InvalidInput(_))));
    assert!(c.with_shard_keys(Some(vec![key("z")])).is_err());
    db.create_collection("auto", CollectionConfig::new(3, Metric::Euclid)).await.unwrap();
    assert!(db.collection("auto").unwrap().with_shard_keys(Some(vec![key("a")])).is_err());
    assert_eq!(c.count(None).await.unwrap(), 30);
    // Deleting by filter without a key reaches every key; deleting a key drops its points.
    assert!(c.delete_shard_key(&key("b")).await.unwrap());
    assert_eq!(c.count(None).await.unwrap(), 20);
    assert!(!c.delete_shard_key(&key("b")).await.unwrap());
    assert_eq!(c.shard_keys(), vec![key("a")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_aliases_survive_a_restart() {
    let dir = TempDir::new("restart");
    {
        let db = Ametist::open(&dir.0, EngineConfig::default()).await.unwrap();
        make(&db).await;
        let c = db.collection("c").unwrap();
        c.create_shard_key(key("gone"), Some(2)).await.unwrap();
        c.with_shard_keys(Some(vec![key("gone")])).unwrap().upsert(points(5, 3.0), true).await.unwrap();
        c.delete_shard_key(&key("gone")).await.unwrap();
        db.update_aliases(vec![AliasAction::Create { alias: "al".into(), collection: "c".into() }]).await.unwrap();
        // All or nothing.
        let bad = vec![
            AliasAction::Rename { old: "al".into(), new: "al2".into() },
            AliasAction::Delete { alias: "missing".into() },
        ];
        assert!(matches!(db.update_aliases(bad).await, Err(EngineError::NotFound(_))));
        db.shutdown().await;
    }
    let db = Ametist::open(&dir.0, EngineConfig::default()).await.unwrap();
    check(&db, "c").await;
    check(&db, "al").await;
    assert_eq!(db.list_aliases(), vec![("al".to_string(), "c".to_string())]);
    let c = db.collection("c").unwrap();
    assert_eq!(c.shard_keys(), vec![key("a"), key("b")]);
    // A new key takes the deleted key's partition ids, and starts empty.
    c.create_shard_key(key("new"), Some(2)).await.unwrap();
    assert_eq!(c.with_shard_keys(Some(vec![key("new")])).unwrap().count(None).await.unwrap(), 0);
    db.shutdown().await;
}
