//! Remote partition proxies: a partition that lives on another node, behind an ordinary
//! [`PartitionRef`].
//!
//! [`RemotePartitions`] is the engine's [`PartitionProvider`]: when a collection starts,
//! every partition the cluster metadata places on another node gets a mailbox whose
//! receiver a proxy task owns. The proxy turns each `PartitionMsg` into a
//! [`PartitionCall`], sends it to the owner over gRPC with a deadline, and answers the
//! message's reply channel, so the CollectionActor has no local/remote branches. A peer
//! that cannot be reached answers `PartitionUnavailable` (retryable) at once, and the
//! coordinator's rules for partial results apply unchanged.
//!
//! Ordering: writes to one partition are forwarded one at a time, in mailbox order, so
//! that writes from one caller reach the owner in the order they were sent (as they reach
//! a local partition). Reads are forwarded concurrently.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use ametist_engine::collection::CollectionSpec;
use ametist_engine::external::PartitionProvider;
use ametist_engine::messages::{PartitionMsg, Reply, WriteAck, WriteOp};
use ametist_engine::partition::PartitionRef;
use ametist_engine::EngineError;

use crate::metadata::Metadata;
use crate::raft::NodeId;
use crate::transport::Transport;
use crate::wire::{self, kind, PartitionCall};

/// How long calls that build or rebuild indexes may take: they have no deadline locally
/// either, but a call over the network must end some time.
const LONG_CALL: Duration = Duration::from_secs(3600);

/// Deadlines of forwarded calls; the coordinator applies the same ones to local partitions.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub search: Duration,
    pub write: Duration,
}

/// The cluster's [`PartitionProvider`]: partitions placed on other nodes become proxies.
pub struct RemotePartitions {
    pub(crate) node_id: NodeId,
    pub(crate) transport: Arc<Transport>,
    pub(crate) metadata: Arc<Metadata>,
    pub(crate) deadlines: Deadlines,
}

impl PartitionProvider for RemotePartitions {
    fn external(&self, spec: &CollectionSpec, partition: usize, mailbox: usize) -> Option<PartitionRef> {
        // A collection the cluster does not know (made before clustering) stays local.
        let owner = self.metadata.owner(&spec.name, partition)?;
        if owner == self.node_id {
            return None;
        }
        let (handle, rx, _status) = PartitionRef::external(partition, mailbox);
        let proxy = Arc::new(Proxy {
            collection: spec.name.clone(),
            partition,
            transport: self.transport.clone(),
            metadata: self.metadata.clone(),
            deadlines: self.deadlines,
        });
        tokio::spawn(proxy.run(rx, mailbox));
        Some(handle)
    }
}

struct Proxy {
    collection: String,
    partition: usize,
    transport: Arc<Transport>,
    metadata: Arc<Metadata>,
    deadlines: Deadlines,
}

impl Proxy {
    async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<PartitionMsg>, mailbox: usize) {
        let (writes, mut queued) = mpsc::channel::<(Vec<WriteOp>, Reply<WriteAck>)>(mailbox.max(1));
        let writer = {
            let this = self.clone();
            tokio::spawn(async move {
                while let Some((ops, reply)) = queued.recv().await {
                    let answer = this.call(PartitionCall::Write(ops), this.deadlines.write).await;
                    let _ = reply.send(answer);
                }
            })
        };
        let (search, long) = (self.deadlines.search, LONG_CALL);
        while let Some(msg) = rx.recv().await {
            match msg {
                PartitionMsg::Search(req, reply) => self.spawn(PartitionCall::Search(req), search, reply),
                PartitionMsg::Write(ops, reply) => {
                    // Waits when the writer is behind: the bounded mailbox then fills and
                    // the coordinator reports "overloaded", as for a local partition.
                    let _ = writes.send((ops, reply)).await;
                }
                PartitionMsg::Get { ids, with_payload, with_vector, reply } => {
                    self.spawn(PartitionCall::Get { ids, with_payload, with_vector }, search, reply)
                }
                PartitionMsg::Scroll(req, reply) => self.spawn(PartitionCall::Scroll(req), search, reply),
                PartitionMsg::Count(filter, reply) => self.spawn(PartitionCall::Count(filter), search, reply),
                PartitionMsg::CreateFieldIndex { key, kind, reply } => {
                    self.spawn(PartitionCall::CreateFieldIndex { key, kind }, long, reply)
                }
                PartitionMsg::DropFieldIndex { key, reply } => {
                    self.spawn(PartitionCall::DropFieldIndex { key }, long, reply)
                }
                PartitionMsg::CreateTextIndex { key, config, reply } => {
                    self.spawn(PartitionCall::CreateTextIndex { key, config }, long, reply)
                }
                PartitionMsg::TextStats { field, terms, reply } => {
                    self.spawn(PartitionCall::TextStats { field, terms }, search, reply)
                }
                PartitionMsg::TextSearch(req, reply) => self.spawn(PartitionCall::TextSearch(req), search, reply),
                PartitionMsg::SparseStats { name, query, reply } => {
                    self.spawn(PartitionCall::SparseStats { name, query }, search, reply)
                }
                PartitionMsg::SparseSearch(req, reply) => self.spawn(PartitionCall::SparseSearch(req), search, reply),
                PartitionMsg::RebuildIndex(_, reply) => self.spawn(PartitionCall::RebuildIndex, long, reply),
                PartitionMsg::Stats(reply) => self.spawn(PartitionCall::Stats, search, reply),
                PartitionMsg::Snapshot(req, reply) => self.spawn(PartitionCall::Snapshot(req), long, reply),
                PartitionMsg::Restore(req, reply) => self.spawn(PartitionCall::Restore(req), long, reply),
                PartitionMsg::Fault(fault) => {
                    let this = self.clone();
                    tokio::spawn(async move {
                        let _: Result<(), _> = this.call(PartitionCall::Fault(fault), search).await;
                    });
                }
                // The owner's own coordinator wakes its partitions; nothing to forward.
                PartitionMsg::Tick => {}
                PartitionMsg::Stop => break,
            }
        }
        drop(writes);
        let _ = writer.await;
    }

    fn spawn<T: DeserializeOwned + Send + 'static>(
        self: &Arc<Self>,
        call: PartitionCall,
        timeout: Duration,
        reply: Reply<T>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let answer = this.call(call, timeout).await;
            let _ = reply.send(answer);
        });
    }

    async fn call<T: DeserializeOwned>(&self, call: PartitionCall, timeout: Duration) -> Result<T, EngineError> {
        let unavailable = |reason: String| EngineError::PartitionUnavailable { partition: self.partition, reason };
        // The owner is looked up for every call, so a moved partition is followed.
        let owner = self
            .metadata
            .owner(&self.collection, self.partition)
            .ok_or_else(|| unavailable("the cluster no longer places this partition".into()))?;
        let member =
            self.metadata.member(owner).ok_or_else(|| unavailable(format!("node {owner} is not a cluster member")))?;
        let env = wire::envelope(kind::PARTITION, &self.collection, self.partition as u32, &call);
        match self.transport.call(&member.grpc, env, timeout).await {
            Ok(answer) => match wire::decode_answer::<T>(&answer) {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(e.into_engine(self.partition)),
                Err(e) => Err(EngineError::Internal(format!("node {owner} sent an answer we cannot read: {e}"))),
            },
            Err(status) => Err(unavailable(format!(
                "node {owner} ({}) is unreachable: {} ({:?})",
                member.grpc,
                status.message(),
                status.code()
            ))),
        }
    }
}
