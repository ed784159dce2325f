//! The serving side of the node-to-node protocol: one gRPC method, `Call`, dispatched on
//! the envelope's kind. Every call must carry the cluster secret; the check happens in an
//! interceptor before any of this runs.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use ametist_engine::messages::{PartitionMsg, RebuildIndex, Reply};
use ametist_engine::partition::PartitionRef;
use ametist_engine::EngineError;

use crate::raft::Command;
use crate::raft_node::{JoinRequest, NodeInner};
use crate::transport::{secrets_match, SECRET_HEADER};
use crate::wire::grpc::node_server::{Node as NodeRpc, NodeServer};
use crate::wire::{self, kind, Envelope, PartitionCall, WireError};

pub struct Service {
    pub(crate) node: Arc<NodeInner>,
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
                self.partition_call(&env.collection, env.partition as usize, call).await
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
            other => return Err(Status::unimplemented(format!("unknown call kind `{other}`"))),
        };
        Ok(Response::new(answer))
    }
}

impl Service {
    async fn partition_call(&self, collection: &str, partition: usize, call: PartitionCall) -> Envelope {
        let node = &self.node;
        let unavailable = |reason: String| WireError::from(&EngineError::PartitionUnavailable { partition, reason });
        // Serve only what the metadata places here: a proxy must never answer a proxy.
        match node.metadata.owner(collection, partition) {
            Some(owner) if owner == node.id => {}
            Some(owner) => {
                return wire::answer::<()>(Err(unavailable(format!(
                    "node {} does not serve it (node {owner} does)",
                    node.id
                ))))
            }
            None => {
                return wire::answer::<()>(Err(unavailable(format!("node {} does not know `{collection}`", node.id))))
            }
        }
        let coll = node.db.collection(collection);
        let p = match coll.as_ref().map(|c| c.partition(partition)) {
            Ok(Some(p)) => p,
            Ok(None) => return wire::answer::<()>(Err(unavailable("no such partition".into()))),
            Err(_) => {
                return wire::answer::<()>(Err(unavailable(format!(
                    "node {} has not opened `{collection}` yet",
                    node.id
                ))))
            }
        };
        match call {
            PartitionCall::Search(req) => ask(&p, |r| PartitionMsg::Search(req, r)).await,
            PartitionCall::Write(ops) => ask(&p, |r| PartitionMsg::Write(ops, r)).await,
            PartitionCall::Get { ids, with_payload, with_vector } => {
                ask(&p, |reply| PartitionMsg::Get { ids, with_payload, with_vector, reply }).await
            }
            PartitionCall::Scroll(req) => ask(&p, |r| PartitionMsg::Scroll(req, r)).await,
            PartitionCall::Count(filter) => ask(&p, |r| PartitionMsg::Count(filter, r)).await,
            // Index definitions are recorded in this node's schema too, so that its
            // partitions re-create them when they are rebuilt (a restart of this node).
            PartitionCall::CreateFieldIndex { key, kind } => {
                let coll = coll.expect("checked above");
                if let Err(e) = coll.note_field_index(&key, Some(kind)).await {
                    return wire::answer::<()>(Err(WireError::from(&e)));
                }
                ask(&p, |reply| PartitionMsg::CreateFieldIndex { key, kind, reply }).await
            }
            PartitionCall::DropFieldIndex { key } => {
                let coll = coll.expect("checked above");
                if let Err(e) = coll.note_field_index(&key, None).await {
                    return wire::answer::<()>(Err(WireError::from(&e)));
                }
                ask(&p, |reply| PartitionMsg::DropFieldIndex { key, reply }).await
            }
            PartitionCall::CreateTextIndex { key, config } => {
                let coll = coll.expect("checked above");
                if let Err(e) = coll.note_text_index(&key, config.clone()).await {
                    return wire::answer::<()>(Err(WireError::from(&e)));
                }
                ask(&p, |reply| PartitionMsg::CreateTextIndex { key, config, reply }).await
            }
            PartitionCall::TextStats { field, terms } => {
                ask(&p, |reply| PartitionMsg::TextStats { field, terms, reply }).await
            }
            PartitionCall::TextSearch(req) => ask(&p, |r| PartitionMsg::TextSearch(req, r)).await,
            PartitionCall::SparseStats { name, query } => {
                ask(&p, |reply| PartitionMsg::SparseStats { name, query, reply }).await
            }
            PartitionCall::SparseSearch(req) => ask(&p, |r| PartitionMsg::SparseSearch(req, r)).await,
            PartitionCall::RebuildIndex => ask(&p, |r| PartitionMsg::RebuildIndex(RebuildIndex, r)).await,
            PartitionCall::Stats => ask(&p, PartitionMsg::Stats).await,
            PartitionCall::Snapshot(req) => ask(&p, |r| PartitionMsg::Snapshot(req, r)).await,
            PartitionCall::Restore(req) => ask(&p, |r| PartitionMsg::Restore(req, r)).await,
            PartitionCall::Fault(fault) => {
                wire::answer(p.try_send(PartitionMsg::Fault(fault)).map_err(|e| WireError::from(&e)))
            }
        }
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
