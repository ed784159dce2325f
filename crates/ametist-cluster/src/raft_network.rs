//! openraft's network over the node-to-node gRPC service: each Raft RPC is one `Call`
//! whose body is openraft's own (serde) request type.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::raft::{Member, NodeId, TypeConfig};
use crate::transport::Transport;
use crate::wire::{self, kind};

pub struct Network {
    pub(crate) transport: Arc<Transport>,
}

pub struct Connection {
    transport: Arc<Transport>,
    target: NodeId,
    addr: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Connection {
        Connection { transport: self.transport.clone(), target, addr: node.grpc.clone() }
    }
}

impl Connection {
    async fn send<Req, Resp, E>(
        &self,
        what: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<NodeId, Member, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let env = wire::envelope(what, "", 0, req);
        let answer = self
            .transport
            .call(&self.addr, env, timeout)
            .await
            .map_err(|status| RPCError::Unreachable(Unreachable::new(&status)))?;
        match wire::decode_answer::<Result<Resp, E>>(&answer) {
            Ok(Ok(Ok(resp))) => Ok(resp),
            Ok(Ok(Err(remote))) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            Ok(Err(e)) => Err(RPCError::Network(NetworkError::new(&std::io::Error::other(e.message)))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.send(kind::RAFT_APPEND, &req, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.send(kind::RAFT_SNAPSHOT, &req, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        req: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.send(kind::RAFT_VOTE, &req, option.hard_ttl()).await
    }
}
