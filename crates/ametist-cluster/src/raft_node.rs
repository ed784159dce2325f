//! The node's Raft side, shared by the running node and the node-to-node service: the
//! state every task of a member holds ([`NodeInner`]), joining a cluster, proposing
//! metadata commands (forwarded to the leader when this node is not it) and counting the
//! live voters that placement may use.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use ametist_engine::{Ametist, EngineError};

use crate::error::ClusterError;
use crate::metadata::Metadata;
use crate::options::ClusterOptions;
use crate::raft::{place, Command, CommandResult, Member, NodeId, Raft};
use crate::transport::Transport;
use crate::wire::{self, kind};

const JOIN_PATIENCE: Duration = Duration::from_secs(60);
/// How long a metadata change waits for a leader, to be committed, and for the local
/// database to follow. Committing needs the bound too: a node that only believes it leads
/// (killed as the leader and restarted at its old term) appends the change to a log no
/// quorum follows, and openraft's `client_write` waits until a newer leader's log replaces
/// the entry, which may be never; the caller gets a retryable error instead.
pub(crate) const CHANGE_PATIENCE: Duration = Duration::from_secs(15);

/// Asks a member to add the sender to the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub id: NodeId,
    pub member: Member,
}

pub(crate) struct NodeInner {
    pub(crate) id: NodeId,
    pub(crate) raft: Raft,
    pub(crate) metadata: Arc<Metadata>,
    pub(crate) transport: Arc<Transport>,
    pub(crate) db: Ametist,
    pub(crate) member: Member,
    pub(crate) opts: ClusterOptions,
    /// What the node's partition fronts and writers share.
    pub(crate) shared: Arc<crate::router::Shared>,
}

impl NodeInner {
    /// Asks the seeds until one of them (or the leader it forwards to) has added this node.
    pub(crate) async fn join(&self) -> Result<(), ClusterError> {
        let req = JoinRequest { id: self.id, member: self.member.clone() };
        let deadline = tokio::time::Instant::now() + JOIN_PATIENCE;
        loop {
            for seed in &self.opts.seeds {
                let env = wire::envelope(kind::JOIN, "", 0, &req);
                match self.transport.call(seed, env, Duration::from_secs(20)).await {
                    Ok(answer) => match wire::decode_answer::<()>(&answer) {
                        Ok(Ok(())) => {
                            tracing::info!(node = self.id, seed = %seed, "joined the cluster");
                            return Ok(());
                        }
                        Ok(Err(e)) => tracing::warn!(seed = %seed, error = %e.message, "join refused; retrying"),
                        Err(e) => tracing::warn!(seed = %seed, error = %e, "bad join answer; retrying"),
                    },
                    Err(s) if s.code() == tonic::Code::Unauthenticated => {
                        return Err(ClusterError::Unauthenticated { peer: seed.clone(), message: s.message().into() })
                    }
                    Err(s) => tracing::warn!(seed = %seed, error = %s.message(), "seed unreachable; retrying"),
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ClusterError::Unavailable(format!(
                    "no seed of {:?} added this node within {JOIN_PATIENCE:?}",
                    self.opts.seeds
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Served on the leader (forwarded there otherwise): adds a node as learner, then as
    /// voter. A node that is already a voter at that address is left as it is.
    pub(crate) async fn handle_join(&self, req: JoinRequest) -> Result<(), EngineError> {
        let Some(leader) = self.leader().await? else {
            let membership = self.raft.metrics().borrow().membership_config.clone();
            let m = membership.membership();
            if m.voter_ids().any(|v| v == req.id) && m.get_node(&req.id) == Some(&req.member) {
                return Ok(());
            }
            self.raft.add_learner(req.id, req.member.clone(), true).await.map_err(internal)?;
            self.raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([req.id])), false)
                .await
                .map_err(internal)?;
            tracing::info!(node = req.id, member = %req.member, "node joined as a voter");
            return Ok(());
        };
        self.forward(&leader, kind::JOIN, &req).await
    }

    /// Commits a metadata change through the leader. On the leader a new collection is
    /// placed first, over the members that answer a ping.
    pub(crate) async fn propose(&self, mut cmd: Command) -> Result<CommandResult, EngineError> {
        let Some(leader) = self.leader().await? else {
            if let Command::CreateCollection { spec, replicas } = &mut cmd {
                if replicas.is_empty() {
                    let copies = spec.replication.factor;
                    // Live members first; a copy placed on a member that is down now is
                    // recovered from its primary when the member comes back.
                    // A draining member is on its way out: nothing new goes there.
                    let draining = self.metadata.state().draining;
                    let mut nodes = self.live_voters().await;
                    nodes.retain(|n| !draining.contains(n));
                    if nodes.len() < copies {
                        nodes = self.voters();
                        nodes.retain(|n| !draining.contains(n));
                    }
                    if nodes.len() < copies {
                        return Err(EngineError::InvalidInput(format!(
                            "replication_factor {copies} exceeds the number of cluster members ({}): the copies of \
                             a partition live on distinct members",
                            nodes.len()
                        )));
                    }
                    let offset = self.metadata.state().collections.len();
                    *replicas = place(spec.partitions, copies, &nodes, offset);
                }
            }
            let written = tokio::time::timeout(CHANGE_PATIENCE, self.raft.client_write(cmd)).await.map_err(|_| {
                unavailable(format!(
                    "the metadata change was not committed within {CHANGE_PATIENCE:?} (this node may no longer \
                     lead the cluster); it may or may not have been applied; retry is safe"
                ))
            })?;
            let resp = written.map_err(|e| match e {
                openraft::error::RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(f)) => {
                    unavailable(format!("leadership moved to {:?} during the change; retry", f.leader_id))
                }
                other => internal(other),
            })?;
            return Ok(resp.data);
        };
        self.forward(&leader, kind::PROPOSE, &cmd).await
    }

    /// The index of the last metadata change the cluster committed, once this node
    /// confirmed with a quorum that it is still the leader and applied up to it itself;
    /// `None` when it is not the leader (or cannot reach a quorum within `patience`).
    ///
    /// Raft's metrics are not enough: a leader that was killed and restarted comes back
    /// believing it still leads at its old term (openraft restores it as the leader) until
    /// a member answers with the newer term, and meanwhile its metadata misses every change
    /// the cluster made while it was down.
    pub(crate) async fn confirmed_leader_applied(&self, patience: Duration) -> Option<u64> {
        match tokio::time::timeout(patience, self.raft.ensure_linearizable()).await {
            Ok(Ok(read)) => Some(read.map_or(0, |l| l.index)),
            Ok(Err(e)) => {
                tracing::debug!(node = self.id, error = %e, "not a confirmed leader");
                None
            }
            Err(_) => None,
        }
    }

    /// `None` when this node is the leader, else the leader's address. Waits a little for
    /// an election.
    async fn leader(&self) -> Result<Option<Member>, EngineError> {
        let metrics = self
            .raft
            .wait(Some(Duration::from_secs(5)))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .map_err(|_| unavailable("the cluster has no leader (too few members reachable?)".into()))?;
        let leader = metrics.current_leader.expect("waited for a leader");
        if leader == self.id {
            return Ok(None);
        }
        metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()
            .map(Some)
            .ok_or_else(|| unavailable(format!("leader {leader} has no known address")))
    }

    async fn forward<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        leader: &Member,
        what: &str,
        req: &Req,
    ) -> Result<Resp, EngineError> {
        let env = wire::envelope(what, "", 0, req);
        let answer = self
            .transport
            .call(&leader.grpc, env, CHANGE_PATIENCE)
            .await
            .map_err(|s| unavailable(format!("leader at {} unreachable: {}", leader.grpc, s.message())))?;
        match wire::decode_answer::<Resp>(&answer) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.into_engine(0)),
            Err(e) => Err(EngineError::Internal(format!("bad answer from the leader: {e}"))),
        }
    }

    /// Every voter, sorted by id.
    pub(crate) fn voters(&self) -> Vec<NodeId> {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let mut voters: Vec<NodeId> = membership.membership().voter_ids().collect();
        voters.sort_unstable();
        voters
    }

    /// Voters that answer a ping now (this node always counts), sorted by id.
    async fn live_voters(&self) -> Vec<NodeId> {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let mut live = vec![self.id];
        let mut pings = Vec::new();
        for id in membership.membership().voter_ids().filter(|&v| v != self.id) {
            let Some(member) = membership.membership().get_node(&id).cloned() else { continue };
            let transport = self.transport.clone();
            pings.push(tokio::spawn(async move {
                let env = wire::envelope(kind::PING, "", 0, &());
                transport.call(&member.grpc, env, Duration::from_millis(500)).await.is_ok().then_some(id)
            }));
        }
        for p in pings {
            if let Ok(Some(id)) = p.await {
                live.push(id);
            }
        }
        live.sort_unstable();
        live
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

pub(crate) fn unavailable(reason: String) -> EngineError {
    EngineError::PartitionUnavailable { partition: 0, reason }
}
