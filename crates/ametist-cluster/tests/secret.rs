//! The node-to-node service refuses calls that do not carry the cluster secret, before
//! they reach a partition or Raft; with the secret, a partition call is served.

use std::time::Duration;

use ametist_cluster::router::Deadlines;
use ametist_cluster::transport::Transport;
use ametist_cluster::wire::{self, kind, PartitionCall};
use ametist_cluster::{ClusterOptions, PreparedNode};
use ametist_core::Metric;
use ametist_engine::{Ametist, CollectionConfig, EngineConfig, ScoredDoc, SearchRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_the_secret_are_refused() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ametist-cluster-secret-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let opts = ClusterOptions {
        data_dir: dir.clone(),
        host: "127.0.0.1".into(),
        port,
        advertise: addr.clone(),
        rest_addr: "127.0.0.1:1".into(),
        seeds: Vec::new(),
        secret: "right".into(),
        deadlines: Deadlines { search: Duration::from_secs(2), write: Duration::from_secs(2) },
        failover_timeout: Duration::from_secs(3),
        replace_dead_after: Duration::from_secs(300),
    };
    let (prepared, provider) = PreparedNode::prepare(opts)?;
    let db = Ametist::open_with(&dir, EngineConfig::default(), Some(provider)).await?;
    let node = prepared.start(db.clone()).await?;
    node.create_collection("c", CollectionConfig::new(4, Metric::Cosine).with_partitions(2)).await?;

    let call = PartitionCall::Search(SearchRequest::new(vec![1.0, 0.0, 0.0, 0.0], 3));
    let env = || wire::envelope(kind::PARTITION, "c", 0, &call);
    let timeout = Duration::from_secs(5);
    for wrong in ["wrong", "", "right "] {
        let status = Transport::new(wrong).call(&addr, env(), timeout).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    }
    let status = Transport::new("wrong").call(&addr, wire::envelope(kind::RAFT_VOTE, "", 0, &()), timeout).await;
    assert_eq!(status.expect_err("raft refused too").code(), tonic::Code::Unauthenticated);

    let answer = Transport::new("right").call(&addr, env(), timeout).await?;
    let hits: Vec<ScoredDoc> = wire::decode_answer(&answer)?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(hits.is_empty(), "an empty partition has no hits");

    node.shutdown().await;
    db.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
