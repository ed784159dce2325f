//! The serving side of the node-to-node protocol: one gRPC method, `Call`, dispatched on
//! the envelope's kind. Every call must carry the cluster secret; the check happens in an
//! interceptor before any of this runs.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use ametist_engine::messages::{PartitionInstall, PartitionMsg, RebuildIndex, Reply};
use ametist_engine::partition::PartitionRef;
use ametist_engine::EngineError;

use crate::raft::{Command, NodeId};
use crate::raft_node::{JoinRequest, NodeInner};
use crate::replicator::Control;
use crate::transport::{secrets_match, SECRET_HEADER};
use crate::wire::grpc::node_server::{Node as NodeRpc, NodeServer};
use crate::wire::{self, kind, Envelope, PartitionCall, WireError};

/// Shipped records queued on a replica's copy at once.
const APPEND_CHUNK: usize = 128;

pub struct Service {
    pub(crate) node: Arc<NodeInner>,
    /// Numbers the temporary files of images sent out, so that two at once do not collide.
    pub(crate) images: std::sync::atomic::AtomicU64,
}

/// The service wrapped in the secret check.
pub fn authenticated(
    service: Service,
    secret: String,
) -> tonic::service::interceptor::InterceptedService<
    NodeServer<Service>,
    impl tonic::service::Interceptor + Clone + Send + Sync + 'static,
> {
    let server = NodeServer::new(service).max_decoding_message_size(usize::MAX).max_encoding_message_size(usize::MAX);
    let check = move |req: Request<()>| -> Result<Request<()>, Status> {
        match req.metadata().get(SECRET_HEADER) {
            Some(v) if secrets_match(v.as_bytes(), secret.as_bytes()) => Ok(req),
            Some(_) => Err(Status::unauthenticated("wrong cluster secret")),
            None => Err(Status::unauthenticated("missing cluster secret")),
        }
    };
    tonic::service::interceptor::InterceptedService::new(server, check)
}

fn bad_body(e: serde_json::Error) -> Status {
    Status::invalid_argument(format!("cannot read the request body: {e}"))
}

#[tonic::async_trait]
impl NodeRpc for Service {
    async fn call(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let env = request.into_inner();
        let node = &self.node;
        let answer = match env.kind.as_str() {
            kind::PARTITION => {
                let call: PartitionCall = serde_json::from_slice(&env.body).map_err(bad_body)?;
                self.partition_call(&env.collection, env.partition as usize, call, env.blob).await
            }
            kind::RAFT_APPEND => {
                let req = serde_json::from_slice(&env.body).map_err(bad_body)?;
                wire::answer::<_>(Ok(node.raft.append_entries(req).await))
            }
            kind::RAFT_VOTE => {
                let req = serde_json::from_slice(&env.body).map_err(bad_body)?;
                wire::answer::<_>(Ok(node.raft.vote(req).await))
            }
            kind::RAFT_SNAPSHOT => {
                let req = serde_json::from_slice(&env.body).map_err(bad_body)?;
                wire::answer::<_>(Ok(node.raft.install_snapshot(req).await))
            }
            kind::JOIN => {
                let req: JoinRequest = serde_json::from_slice(&env.body).map_err(bad_body)?;
                wire::answer(node.handle_join(req).await.map_err(|e| WireError::from(&e)))
            }
            kind::PROPOSE => {
                let cmd: Command = serde_json::from_slice(&env.body).map_err(bad_body)?;
                wire::answer(node.propose(cmd).await.map_err(|e| WireError::from(&e)))
            }
            kind::PING => wire::answer::<u64>(Ok(node.id)),
            kind::MEMBERS => wire::answer::<Vec<NodeId>>(Ok(node.metadata.members().into_keys().collect())),
            kind::APPLIED => {
                // Answered only by a leader a quorum confirmed: a restarted former leader
                // believes it leads for a while, with old metadata (see
                // `confirmed_leader_applied`), and must not mark a starting node caught up.
                match node.confirmed_leader_applied(crate::failover::LEADER_CONFIRM).await {
                    Some(index) => wire::answer::<Option<u64>>(Ok(Some(index))),
                    None => wire::answer::<Option<u64>>(Err(WireError::from(&crate::raft_node::unavailable(format!(
                        "node {} is not a confirmed leader",
                        node.id
                    ))))),
                }
            }
            other => return Err(Status::unimplemented(format!("unknown call kind `{other}`"))),
        };
        Ok(Response::new(answer))
    }
}

impl Service {
    fn next_tag(&self) -> u64 {
        self.images.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    async fn partition_call(&self, collection: &str, partition: usize, call: PartitionCall, blob: Vec<u8>) -> Envelope {
        let node = &self.node;
        let refuse = |reason: String| {
            wire::answer::<()>(Err(WireError::from(&EngineError::PartitionUnavailable { partition, reason })))
        };
        if !node.shared.is_caught_up() {
            return refuse(format!("node {} is catching up with the cluster's metadata after a start", node.id));
        }
        // Serve only copies the metadata places here: a front must never answer a front.
        let Some(placement) = node.metadata.placement(collection) else {
            return refuse(format!("node {} does not know `{collection}`", node.id));
        };
        let Some(copies) = placement.replicas.get(partition) else {
            return refuse("no such partition".into());
        };
        if !copies.contains(&node.id) {
            return refuse(format!("node {} holds no copy of it (nodes {copies:?} do)", node.id));
        }
        let shard = placement.shard(partition);
        let primary = copies[0] == node.id;
        let coll = match node.db.collection(collection) {
            Ok(c) => c,
            Err(_) => return refuse(format!("node {} has not opened `{collection}` yet", node.id)),
        };
        let Some(p) = coll.local_copy(partition) else {
            return refuse(format!("node {} has not opened its copy yet", node.id));
        };
        match call {
            // Writes go through the partition's front here, whose writer logs and ships them.
            PartitionCall::Write(ops) => {
                if !primary {
                    return refuse(format!(
                        "node {} is not its primary (node {} is); nothing was written; retry is safe",
                        node.id, copies[0]
                    ));
                }
                let front = coll.partition(partition).expect("a local copy has a front");
                ask(&front, |r| PartitionMsg::Write(ops, r)).await
            }
            PartitionCall::Replicate { term, records } => {
                // Term fencing: a primary that was replaced ships at an older term. A newer
                // term than this node knows is refused too: this copy's view is behind, and
                // it might have taken records of the replaced primary meanwhile; the new
                // primary then takes it out of the in-sync set and recovers it.
                if term != shard.term || primary {
                    return refuse(format!(
                        "records of primary term {term} refused: the partition is at term {} (primary: node {})",
                        shard.term, copies[0]
                    ));
                }
                // Queued together, the records are committed as one group (one fsync);
                // in chunks, so that a long log tail does not overflow the mailbox.
                let mut version = 0;
                let mut records = records.into_iter().peekable();
                while records.peek().is_some() {
                    let mut replies = Vec::with_capacity(APPEND_CHUNK);
                    for record in records.by_ref().take(APPEND_CHUNK) {
                        let (tx, rx) = oneshot::channel();
                        if let Err(e) = p.try_send(PartitionMsg::Append(record, tx)) {
                            return wire::answer::<u64>(Err(WireError::from(&e)));
                        }
                        replies.push(rx);
                    }
                    for rx in replies {
                        match rx.await {
                            Ok(Ok(ack)) => version = ack.operation_id,
                            Ok(Err(e)) => return wire::answer::<u64>(Err(WireError::from(&e))),
                            Err(_) => return wire::answer::<u64>(Err(WireError::from(&p.unavailable()))),
                        }
                    }
                }
                wire::answer::<u64>(Ok(version))
            }
            PartitionCall::Install { term } => {
                if term != shard.term || primary {
                    return refuse(format!(
                        "an image of primary term {term} refused (term {}, primary node {})",
                        shard.term, copies[0]
                    ));
                }
                self.install(collection, partition, &p, blob).await
            }
            PartitionCall::Recover { node: asking, version } => {
                let Some(control) = node.shared.control(collection, partition) else {
                    return refuse(format!("node {} runs no writer for it", node.id));
                };
                let (tx, rx) = oneshot::channel();
                if control.send(Control::Recover { node: asking, version, reply: tx }).await.is_err() {
                    return refuse("its writer stopped".into());
                }
                let result = rx.await.unwrap_or_else(|_| Err(p.unavailable()));
                wire::answer(result.map_err(|e| WireError::from(&e)))
            }
            PartitionCall::Digest => ask(&p, PartitionMsg::Digest).await,
            PartitionCall::Image => {
                if !primary {
                    return refuse(format!("node {} is not its primary (node {} is)", node.id, copies[0]));
                }
                let tag = format!("{collection}.{partition}.out-{}", self.next_tag());
                match node.shared.image_of(&p, &tag).await {
                    Ok((stats, image)) => {
                        let mut env = wire::answer::<ametist_engine::messages::IndexStats>(Ok(stats));
                        env.blob = image;
                        env
                    }
                    Err(e) => wire::answer::<()>(Err(WireError::from(&e))),
                }
            }
            call @ (PartitionCall::Search(_)
            | PartitionCall::Get { .. }
            | PartitionCall::Scroll(_)
            | PartitionCall::Count(_)
            | PartitionCall::TextStats { .. }
            | PartitionCall::TextSearch(_)
            | PartitionCall::SparseStats { .. }
            | PartitionCall::SparseSearch(_)
            | PartitionCall::Stats) => {
                // A copy that is not in sync (it missed writes) never serves.
                if shard.stale.contains(&node.id) {
                    return refuse(format!("the copy on node {} is not in sync (it is recovering)", node.id));
                }
                self.read(&p, call).await
            }
            // Index definitions are recorded in this node's schema too, so that its
            // partitions re-create them when they are rebuilt (a restart of this node).
            PartitionCall::CreateFieldIndex { key, kind } => {
                if let Err(e) = coll.note_field_index(&key, Some(kind)).await {
                    return wire::answer::<()>(Err(WireError::from(&e)));
                }
                ask(&p, |reply| PartitionMsg::CreateFieldIndex { key, kind, reply }).await
            }
            PartitionCall::DropFieldIndex { key } => {
                if let Err(e) = coll.note_field_index(&key, None).await {
                    return wire::answer::<()>(Err(WireError::from(&e)));
                }
                ask(&p, |reply| PartitionMsg::DropFieldIndex { key, reply }).await
            }
            PartitionCall::CreateTextIndex { key, config } => {
                if let Err(e) = coll.note_text_index(&key, config.clone()).await {
                    return wire::answer::<()>(Err(WireError::from(&e)));
                }
                ask(&p, |reply| PartitionMsg::CreateTextIndex { key, config, reply }).await
            }
            PartitionCall::RebuildIndex => ask(&p, |r| PartitionMsg::RebuildIndex(RebuildIndex, r)).await,
            PartitionCall::Snapshot(req) => ask(&p, |r| PartitionMsg::Snapshot(req, r)).await,
            PartitionCall::Restore(req) => ask(&p, |r| PartitionMsg::Restore(req, r)).await,
            PartitionCall::Fault(fault) => {
                wire::answer(p.try_send(PartitionMsg::Fault(fault)).map_err(|e| WireError::from(&e)))
            }
        }
    }

    /// A read on this node's copy.
    async fn read(&self, p: &PartitionRef, call: PartitionCall) -> Envelope {
        match call {
            PartitionCall::Search(req) => ask(p, |r| PartitionMsg::Search(req, r)).await,
            PartitionCall::Get { ids, with_payload, with_vector } => {
                ask(p, |reply| PartitionMsg::Get { ids, with_payload, with_vector, reply }).await
            }
            PartitionCall::Scroll(req) => ask(p, |r| PartitionMsg::Scroll(req, r)).await,
            PartitionCall::Count(filter) => ask(p, |r| PartitionMsg::Count(filter, r)).await,
            PartitionCall::TextStats { field, terms } => {
                ask(p, |reply| PartitionMsg::TextStats { field, terms, reply }).await
            }
            PartitionCall::TextSearch(req) => ask(p, |r| PartitionMsg::TextSearch(req, r)).await,
            PartitionCall::SparseStats { name, query } => {
                ask(p, |reply| PartitionMsg::SparseStats { name, query, reply }).await
            }
            PartitionCall::SparseSearch(req) => ask(p, |r| PartitionMsg::SparseSearch(req, r)).await,
            PartitionCall::Stats => ask(p, PartitionMsg::Stats).await,
            _ => wire::answer::<()>(Err(WireError::from(&EngineError::Internal("not a read".into())))),
        }
    }

    /// Takes the primary's image: written to a file beside the cluster state, then
    /// installed by the local copy, which replaces its state (and drops its own log).
    async fn install(&self, collection: &str, partition: usize, p: &PartitionRef, image: Vec<u8>) -> Envelope {
        let dir = &self.node.shared.transfers;
        let path = dir.join(format!("{collection}.{partition}.incoming.image"));
        let written = {
            let (dir, path) = (dir.clone(), path.clone());
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir)?;
                std::fs::write(&path, image)
            })
            .await
        };
        if let Err(e) = written.map_err(std::io::Error::other).and_then(|r| r) {
            let e = EngineError::Internal(format!("{}: {e}", path.display()));
            return wire::answer::<()>(Err(WireError::from(&e)));
        }
        let req = PartitionInstall { path: path.to_string_lossy().into_owned() };
        let (tx, rx) = oneshot::channel();
        let result = match p.try_send(PartitionMsg::Install(req, tx)) {
            Ok(()) => rx.await.unwrap_or_else(|_| Err(p.unavailable())),
            Err(e) => Err(e),
        };
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
        wire::answer(result.map(|_| ()).map_err(|e| WireError::from(&e)))
    }
}

/// Sends a message to a local partition and turns its reply into an answer envelope. No
/// deadline here: the caller's `grpc-timeout` ends the call (and drops this future).
async fn ask<T: Serialize>(p: &PartitionRef, make: impl FnOnce(Reply<T>) -> PartitionMsg) -> Envelope {
    let (tx, rx) = oneshot::channel();
    if let Err(e) = p.try_send(make(tx)) {
        return wire::answer::<T>(Err(WireError::from(&e)));
    }
    let result = match rx.await {
        Ok(r) => r,
        Err(_) => Err(p.unavailable()),
    };
    wire::answer(result.map_err(|e| WireError::from(&e)))
}
