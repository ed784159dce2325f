//! A running cluster member.
//!
//! Start-up is in two steps because the database and the cluster need each other: the
//! database must know, while it opens its collections, which partitions live elsewhere
//! (the Raft state on disk says), and the gRPC service needs the open database to serve
//! its partitions. So: [`PreparedNode::prepare`] loads the node's identity and Raft state
//! and returns the engine's `PartitionProvider`; the server opens the database with it;
//! [`PreparedNode::start`] then starts the gRPC server and Raft, and joins the cluster.
//!
//! A node's identity is a random id persisted in `<data_dir>/cluster/node_id`; its Raft
//! log, vote and state machine are in `<data_dir>/cluster/raft.json`. A restarted node
//! keeps both, so it is the same member with the same partitions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use serde_json::{json, Value};

use ametist_engine::external::PartitionProvider;
use ametist_engine::{Ametist, CollectionConfig, EngineError};

use crate::error::ClusterError;
use crate::metadata::{Metadata, Transfer, TransferKind};
pub use crate::options::ClusterOptions;
use crate::raft::{Command, IndexDef, Member, NodeId, Raft, Refusal};
use crate::raft_network::Network;
use crate::raft_node::{NodeInner, CHANGE_PATIENCE};
use crate::raft_store::FileStore;
use crate::router::{RemotePartitions, Shared};
use crate::service::{authenticated, Service};
use crate::transport::Transport;
use crate::wire::{ErrorClass, WireError};

/// Step one of start-up: identity and Raft state loaded, nothing running yet.
pub struct PreparedNode {
    id: NodeId,
    opts: ClusterOptions,
    store: Arc<FileStore>,
    metadata: Arc<Metadata>,
    transport: Arc<Transport>,
    shared: Arc<Shared>,
}

impl PreparedNode {
    /// Loads (or creates) the node's identity and Raft state; returns the provider the
    /// database must be opened with.
    pub fn prepare(opts: ClusterOptions) -> Result<(Self, Arc<dyn PartitionProvider>), ClusterError> {
        if opts.secret.is_empty() {
            return Err(ClusterError::InvalidInput(
                "remoting.secret must be set when remoting is enabled: nodes authenticate each other with it".into(),
            ));
        }
        let dir = opts.data_dir.join("cluster");
        std::fs::create_dir_all(&dir).map_err(|e| ClusterError::Storage(format!("{}: {e}", dir.display())))?;
        let id = load_or_create_id(&dir)?;
        let metadata = Arc::new(Metadata::new());
        let store = FileStore::open(&dir, metadata.clone())?;
        let transport = Arc::new(Transport::new(opts.secret.clone()));
        let shared = Arc::new(Shared {
            node_id: id,
            transport: transport.clone(),
            metadata: metadata.clone(),
            deadlines: opts.deadlines,
            node: Default::default(),
            controls: Default::default(),
            transfers: dir.join("transfers"),
            caught_up: Default::default(),
            recoveries: Default::default(),
        });
        let provider = Arc::new(RemotePartitions { shared: shared.clone() });
        Ok((PreparedNode { id, opts, store, metadata, transport, shared }, provider))
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Step two: serve the node-to-node protocol, start Raft, join (or found) the cluster
    /// and keep `db` in line with the metadata.
    pub async fn start(self, db: Ametist) -> Result<ClusterNode, ClusterError> {
        let PreparedNode { id, opts, store, metadata, transport, shared } = self;
        let addr = format!("{}:{}", opts.host, opts.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| ClusterError::Internal(format!("cannot listen on {addr} (remoting): {e}")))?;
        let config = openraft::Config {
            cluster_name: "ametist".into(),
            heartbeat_interval: 250,
            election_timeout_min: 1000,
            election_timeout_max: 2000,
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(|e| ClusterError::Internal(e.to_string()))?);
        let fresh = store.is_fresh();
        let raft =
            Raft::new(id, config, Network { transport: transport.clone() }, store.log_store(), store.state_machine())
                .await
                .map_err(|e| ClusterError::Internal(format!("cannot start raft: {e}")))?;
        let member = Member { grpc: opts.advertise.clone(), rest: opts.rest_addr.clone() };
        let inner = Arc::new(NodeInner { id, raft, metadata, transport, db, member, opts, shared });
        if inner.shared.node.set(inner.clone()).is_err() {
            unreachable!("a prepared node starts once");
        }
        let service =
            authenticated(Service { node: inner.clone(), images: Default::default() }, inner.opts.secret.clone());
        // Small request/answer messages: without TCP_NODELAY an answer can wait for the
        // peer's delayed ACK (tens of milliseconds).
        let incoming = tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |s| {
            if let Ok(s) = &s {
                let _ = s.set_nodelay(true);
            }
            s
        });
        tokio::spawn(async move {
            if let Err(e) = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await
            {
                tracing::error!(error = %e, "the node-to-node server stopped");
            }
        });
        tracing::info!(node = id, address = %addr, fresh, "cluster node started");
        if fresh {
            if inner.opts.seeds.is_empty() {
                let members = BTreeMap::from([(id, inner.member.clone())]);
                inner
                    .raft
                    .initialize(members)
                    .await
                    .map_err(|e| ClusterError::Internal(format!("cannot found the cluster: {e}")))?;
                tracing::info!(node = id, "founded a new cluster");
            } else {
                inner.join().await?;
            }
        }
        tokio::spawn(reconcile_loop(inner.clone()));
        let caught_up = tokio::spawn(crate::failover::catch_up(inner.clone()));
        // Serving starts caught up when the leader answers soon; otherwise the node answers
        // "catching up" (retryable) until it is.
        if tokio::time::timeout(Duration::from_secs(5), caught_up).await.is_err() {
            tracing::warn!(
                node = id,
                "not caught up with the cluster's metadata yet; serving reads and writes once it is"
            );
        }
        tokio::spawn(crate::failover::detect_failures(inner.clone()));
        tokio::spawn(crate::failover::request_recoveries(inner.clone()));
        Ok(ClusterNode { inner })
    }
}

/// A change to where a collection's partitions live (Qdrant's cluster operations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyChange {
    /// Makes a copy on `to` from the partition's primary, then removes `from`'s copy.
    Move { partition: usize, from: NodeId, to: NodeId },
    /// Makes one more copy, on `to`.
    Replicate { partition: usize, from: NodeId, to: NodeId },
    /// Ends the transfer from `from` to `to` and removes the copy it was making.
    Abort { partition: usize, from: NodeId, to: NodeId },
    /// Removes `node`'s copy (a primary hands over to an in-sync replica first).
    Drop { partition: usize, node: NodeId },
}

/// A handle to the running cluster member. Cheap to clone.
#[derive(Clone)]
pub struct ClusterNode {
    inner: Arc<NodeInner>,
}

impl ClusterNode {
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// Creates a collection on the cluster: the leader places its partitions round-robin
    /// over the live members, Raft commits it, and this returns once this node opened it.
    pub async fn create_collection(&self, name: &str, config: CollectionConfig) -> Result<(), ClusterError> {
        ametist_engine::db::validate_name(name).map_err(engine_input)?;
        let spec = ametist_engine::collection::Collection::resolve(name, &config, self.inner.db.config())
            .map_err(engine_input)?;
        // The leader checks the copies against its members when it places the partitions.
        let result = self.inner.propose(Command::CreateCollection { spec, replicas: Vec::new() }).await?;
        match result.refused {
            Some(Refusal::Exists(n)) => return Err(ClusterError::CollectionExists(n)),
            Some(Refusal::NotFound(n)) => return Err(ClusterError::CollectionNotFound(n)),
            Some(Refusal::Outdated(why)) => return Err(ClusterError::Unavailable(why)),
            None => {}
        }
        self.wait_local(name, true).await
    }

    /// Records an index definition (`None`: drops it) in the cluster's metadata, so that
    /// every node knows it; the caller then builds (or drops) the index itself.
    pub async fn set_index(&self, collection: &str, key: &str, index: Option<IndexDef>) -> Result<(), ClusterError> {
        let cmd = Command::SetIndex { collection: collection.to_string(), key: key.to_string(), index };
        match self.inner.propose(cmd).await?.refused {
            Some(Refusal::NotFound(n)) => Err(ClusterError::CollectionNotFound(n)),
            Some(Refusal::Exists(n)) => Err(ClusterError::CollectionExists(n)),
            Some(Refusal::Outdated(why)) => Err(ClusterError::Unavailable(why)),
            None => Ok(()),
        }
    }

    /// Applies a change to where `collection`'s partitions live. A transfer returns once it
    /// started; it ends when the primary has brought the new copy in sync (see
    /// `GET /collections/{name}/cluster`'s `shard_transfers`).
    pub async fn change_copies(&self, collection: &str, change: CopyChange) -> Result<(), ClusterError> {
        let placement = self
            .inner
            .metadata
            .placement(collection)
            .ok_or_else(|| ClusterError::CollectionNotFound(collection.to_string()))?;
        let partitions = placement.replicas.len();
        let members = self.inner.metadata.members();
        let check = |partition: usize, peers: &[NodeId]| -> Result<(), ClusterError> {
            if partition >= partitions {
                return Err(ClusterError::InvalidInput(format!(
                    "collection `{collection}` has no shard {partition} (it has {partitions})"
                )));
            }
            match peers.iter().find(|p| !members.contains_key(p)) {
                Some(p) => Err(ClusterError::InvalidInput(format!("peer {p} is not a cluster member"))),
                None => Ok(()),
            }
        };
        let name = collection.to_string();
        let cmd = match change {
            CopyChange::Move { partition, from, to } | CopyChange::Replicate { partition, from, to } => {
                check(partition, &[from, to])?;
                let kind = if matches!(change, CopyChange::Move { .. }) {
                    TransferKind::Move
                } else {
                    TransferKind::Replicate
                };
                Command::StartTransfer { collection: name, transfer: Transfer { partition, from, to, kind } }
            }
            CopyChange::Abort { partition, from, to } => {
                check(partition, &[])?;
                if !placement.transfers.iter().any(|t| t.partition == partition && t.from == from && t.to == to) {
                    return Err(ClusterError::InvalidInput(format!(
                        "shard {partition} has no transfer from peer {from} to peer {to}"
                    )));
                }
                Command::AbortTransfer { collection: name, partition, to }
            }
            CopyChange::Drop { partition, node } => {
                check(partition, &[])?;
                Command::DropCopy { collection: name, partition, node }
            }
        };
        match self.inner.propose(cmd).await?.refused {
            None => Ok(()),
            Some(Refusal::NotFound(n)) => Err(ClusterError::CollectionNotFound(n)),
            Some(Refusal::Exists(n)) => Err(ClusterError::CollectionExists(n)),
            Some(Refusal::Outdated(why)) => Err(ClusterError::InvalidInput(why)),
        }
    }

    /// Removes a member from the cluster (`DELETE /cluster/peer/{id}`): marks it draining
    /// (a committed metadata change, so the removal survives a change of leader), after
    /// which the leader's rebalancer moves its copies to the other members and, once it
    /// holds none, takes it out of the Raft membership. Waits up to `patience` for that.
    ///
    /// Refused, with nothing changed, when fewer members than a collection's replication
    /// factor would remain, or when the member does not answer and holds the only in-sync
    /// copy of a partition. `Ok(false)`: the member is still draining when `patience` ran
    /// out; the removal goes on, and calling again waits for it again.
    pub async fn remove_peer(&self, peer: NodeId, patience: Duration) -> Result<bool, ClusterError> {
        let members = self.inner.metadata.members();
        if !members.contains_key(&peer) {
            return Err(ClusterError::PeerNotFound(peer));
        }
        let remaining = members.len() - 1;
        let state = self.inner.metadata.state();
        if remaining == 0 {
            return Err(ClusterError::InvalidInput(format!("peer {peer} is the only member: a cluster keeps one")));
        }
        if let Some((name, p)) = state
            .collections
            .iter()
            .filter(|(_, p)| p.spec.replication.factor > remaining)
            .max_by_key(|(_, p)| p.spec.replication.factor)
        {
            return Err(ClusterError::InvalidInput(format!(
                "removing peer {peer} would leave {remaining} members, fewer than the replication_factor {} of \
                 collection `{name}` (the copies of a partition live on distinct members)",
                p.spec.replication.factor
            )));
        }
        // A member that does not answer cannot give its copies away: when it holds the only
        // in-sync copy of a partition, its drain could never finish.
        if !state.draining.contains(&peer) && !self.answers(peer).await {
            let only = state.collections.iter().find_map(|(name, placement)| {
                (0..placement.replicas.len()).find(|&p| placement.in_sync(p) == [peer]).map(|p| (name, p))
            });
            if let Some((name, p)) = only {
                return Err(ClusterError::InvalidInput(format!(
                    "peer {peer} does not answer and holds the only in-sync copy of partition {p} of collection \
                     `{name}`: it cannot be drained; start it again first"
                )));
            }
        }
        if !state.draining.contains(&peer) {
            self.inner.propose(Command::SetDraining { node: peer, draining: true }).await?;
            tracing::info!(peer, "member draining: its copies move to the others, then it leaves");
        }
        let deadline = tokio::time::Instant::now() + patience;
        while self.still_member(peer).await {
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(true)
    }

    /// Whether `peer` answers a ping now (this node always does).
    async fn answers(&self, peer: NodeId) -> bool {
        let Some(member) = self.inner.metadata.member(peer) else { return false };
        if peer == self.inner.id {
            return true;
        }
        let env = crate::wire::envelope(crate::wire::kind::PING, "", 0, &());
        self.inner.transport.call(&member.grpc, env, Duration::from_secs(1)).await.is_ok()
    }

    /// Whether `peer` is still a member. A member being removed may never learn of its own
    /// removal (the last membership change need not reach it), so about itself it asks the
    /// others; when none answers, it counts as still a member.
    async fn still_member(&self, peer: NodeId) -> bool {
        let members = self.inner.metadata.members();
        if peer != self.inner.id {
            return members.contains_key(&peer);
        }
        for (_, m) in members.iter().filter(|(&id, _)| id != peer) {
            let env = crate::wire::envelope(crate::wire::kind::MEMBERS, "", 0, &());
            let Ok(answer) = self.inner.transport.call(&m.grpc, env, Duration::from_secs(1)).await else { continue };
            if let Ok(Ok(ids)) = crate::wire::decode_answer::<Vec<NodeId>>(&answer) {
                return ids.contains(&peer);
            }
        }
        true
    }

    /// Deletes a collection on every node. Returns false when the cluster had none.
    pub async fn delete_collection(&self, name: &str) -> Result<bool, ClusterError> {
        let result = self.inner.propose(Command::DeleteCollection { name: name.to_string() }).await?;
        if result.refused.is_some() {
            // Not a cluster collection: perhaps a local one from before clustering.
            return self.inner.db.delete_collection(name).await.map_err(|e| ClusterError::Internal(e.to_string()));
        }
        self.wait_local(name, false).await?;
        Ok(true)
    }

    /// Waits until the local database has (or no longer has) the collection.
    async fn wait_local(&self, name: &str, present: bool) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + CHANGE_PATIENCE;
        while self.inner.db.collection(name).is_ok() != present {
            if tokio::time::Instant::now() > deadline {
                return Err(ClusterError::Unavailable(format!(
                    "the change to `{name}` is committed but this node has not applied it yet"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// `GET /cluster`: this node, the leader, the term, members and placement.
    pub fn status(&self) -> Value {
        let m = self.inner.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let peers: serde_json::Map<String, Value> = membership
            .nodes()
            .map(|(id, n)| {
                (
                    id.to_string(),
                    json!({ "uri": format!("http://{}", n.grpc), "rest": n.rest, "voter": voters.contains(id) }),
                )
            })
            .collect();
        let collections: serde_json::Map<String, Value> =
            self.inner.metadata.state().collections.iter().map(|(name, p)| (name.clone(), placement_json(p))).collect();
        json!({
            "status": "enabled",
            "peer_id": self.inner.id,
            "peers": peers,
            "raft_info": {
                "term": m.current_term,
                "commit": m.last_applied.map(|l| l.index),
                "leader": m.current_leader,
                "role": role(m.state),
                "is_voter": voters.contains(&self.inner.id),
            },
            "collections": collections,
            "recoveries": {
                "from_log": self.inner.shared.recoveries.tail.load(std::sync::atomic::Ordering::Relaxed),
                "from_image": self.inner.shared.recoveries.image.load(std::sync::atomic::Ordering::Relaxed),
            },
        })
    }

    /// `GET /collections/{name}/cluster`, in Qdrant's shape: which partitions (shards)
    /// this node holds a copy of and which other nodes hold the rest, with each copy's
    /// state: `Active` (in sync; the primary first), `Partial` (a new copy a transfer is
    /// making) or `Dead` (stale: it missed writes and waits for a recovery from its
    /// primary); only `Active` copies serve. Transfers in progress are in `shard_transfers`.
    pub fn collection_status(&self, name: &str) -> Option<Value> {
        let placement = self.inner.metadata.placement(name)?;
        let (mut local, mut remote) = (Vec::new(), Vec::new());
        for (shard, replicas) in placement.replicas.iter().enumerate() {
            let state_of = placement.shard(shard);
            for (i, &node) in replicas.iter().enumerate() {
                let moving = placement.transfers.iter().any(|t| t.partition == shard && t.to == node);
                let state = match (state_of.stale.contains(&node), moving) {
                    (false, _) => "Active",
                    (true, true) => "Partial",
                    (true, false) => "Dead",
                };
                let copy = json!({ "shard_id": shard, "peer_id": node, "state": state, "primary": i == 0, "term": state_of.term });
                if node == self.inner.id {
                    local.push(copy);
                } else {
                    remote.push(copy);
                }
            }
        }
        Some(json!({
            "peer_id": self.inner.id,
            "shard_count": placement.replicas.len(),
            "replication_factor": placement.spec.replication.factor,
            "local_shards": local,
            "remote_shards": remote,
            "shard_transfers": placement.transfers.iter().map(|t| json!({
                "shard_id": t.partition,
                "from": t.from,
                "to": t.to,
                "sync": t.kind == TransferKind::Replicate,
                "method": "snapshot",
            })).collect::<Vec<_>>(),
        }))
    }

    /// `GET /collections/{name}/partitions/{id}/copies`: each copy of the partition with its
    /// state and its digest (ids, versions, payloads, vectors), asked of its node; copies in
    /// sync have equal digests.
    pub async fn copy_digests(&self, name: &str, partition: usize) -> Option<Value> {
        let placement = self.inner.metadata.placement(name)?;
        let copies = placement.replicas.get(partition)?.clone();
        let shard = placement.shard(partition);
        let mut out = Vec::new();
        for (i, node) in copies.into_iter().enumerate() {
            let call = crate::wire::PartitionCall::Digest;
            let shared = &self.inner.shared;
            let timeout = shared.deadlines.search;
            let answer: Result<ametist_engine::messages::PartitionDigest, _> =
                shared.call(node, name, partition, &call, Vec::new(), timeout).await;
            let state = if shard.stale.contains(&node) { "Dead" } else { "Active" };
            let mut copy = json!({ "peer_id": node, "primary": i == 0, "state": state });
            match answer {
                Ok(d) => {
                    copy["version"] = json!(d.version);
                    copy["points"] = json!(d.points);
                    copy["digest"] = json!(d.digest);
                }
                Err(e) => copy["error"] = json!(e.to_string()),
            }
            out.push(copy);
        }
        Some(json!({ "partition": partition, "term": shard.term, "copies": out }))
    }

    /// How many copies of each partition of `name` are in sync now (`None`: not a cluster
    /// collection).
    pub fn in_sync_counts(&self, name: &str) -> Option<Vec<usize>> {
        let placement = self.inner.metadata.placement(name)?;
        Some((0..placement.replicas.len()).map(|p| placement.in_sync(p).len()).collect())
    }

    /// Every node's view of partition `partition`'s copies: primary first, the stale ones
    /// named (for tests and the dashboard).
    pub fn partition_copies(&self, name: &str, partition: usize) -> Option<(Vec<NodeId>, Vec<NodeId>, u64)> {
        let placement = self.inner.metadata.placement(name)?;
        let shard = placement.shard(partition);
        Some((placement.replicas.get(partition)?.clone(), shard.stale.into_iter().collect(), shard.term))
    }

    /// Whether `name` is a collection the cluster placed (rather than a local one).
    pub fn knows(&self, name: &str) -> bool {
        self.inner.metadata.placement(name).is_some()
    }

    pub async fn shutdown(&self) {
        let _ = self.inner.raft.shutdown().await;
    }
}

/// Keeps the local database in line with the metadata: opens collections the cluster
/// created (local partitions here, proxies for the others), starts and removes this
/// node's copies as transfers place them, and removes deleted collections.
async fn reconcile_loop(node: Arc<NodeInner>) {
    let mut changes = node.metadata.subscribe();
    loop {
        let state = node.metadata.state();
        for (name, placement) in &state.collections {
            if let Ok(c) = node.db.collection(name) {
                note_indexes(&c, &placement.indexes).await;
                // Only once caught up: an old view may not show a copy placed here lately.
                if node.shared.is_caught_up() {
                    reconcile_copies(&node, &c, placement).await;
                }
                continue;
            }
            let spec = &placement.spec;
            let mut config = CollectionConfig::new(spec.dim, spec.metric).with_partitions(spec.partitions);
            config.index = Some(spec.index);
            config.vectors = spec.vectors.clone();
            config.sparse_vectors = spec.sparse_vectors.clone();
            config.replication_factor = Some(spec.replication.factor);
            config.write_consistency_factor = Some(spec.replication.write_consistency);
            match node.db.create_collection(name, config).await {
                Ok(()) | Err(EngineError::CollectionExists(_)) => {
                    tracing::info!(collection = %name, "opened cluster collection");
                    if let Ok(c) = node.db.collection(name) {
                        note_indexes(&c, &placement.indexes).await;
                    }
                }
                Err(e) => tracing::error!(collection = %name, error = %e, "cannot open cluster collection"),
            }
        }
        for name in state.deleted.iter().filter(|n| !state.collections.contains_key(*n)) {
            if node.db.collection(name).is_ok() {
                if let Err(e) = node.db.delete_collection(name).await {
                    tracing::error!(collection = %name, error = %e, "cannot delete cluster collection");
                }
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Starts the copies the metadata places on this node and removes the ones it no longer
/// does. A new copy starts empty and stale; its primary recovers it (see `failover`).
async fn reconcile_copies(
    node: &NodeInner,
    c: &ametist_engine::collection::Collection,
    placement: &crate::metadata::CollectionPlacement,
) {
    let held = c.local_copies();
    for (p, copies) in placement.replicas.iter().enumerate() {
        let here = copies.contains(&node.id);
        let result = match (here, held.contains(&p)) {
            (true, false) => c.add_copy(p).await,
            // Also removes the files of a copy dropped while this node was down.
            (false, _) => c.remove_copy(p).await.map(drop),
            (true, true) => Ok(()),
        };
        if let Err(e) = result {
            tracing::error!(collection = %c.spec().name, partition = p, error = %e, "cannot bring this node's copy in line with the cluster's placement");
        }
    }
}

/// Brings this node's copy of a collection's index schema in line with the cluster's:
/// definitions it lacks are recorded, ones the cluster dropped are removed. Only the
/// schema changes here (the partitions get the index messages from whichever node
/// coordinated the change); it is what a rebuilt partition and a coordinator read.
async fn note_indexes(c: &ametist_engine::collection::Collection, wanted: &BTreeMap<String, IndexDef>) {
    let (fields, texts) = (c.payload_schema(), c.text_schema());
    for (key, def) in wanted {
        let result = match def {
            IndexDef::Field(kind) if fields.get(key) != Some(kind) => c.note_field_index(key, Some(*kind)).await,
            IndexDef::Text(config) if texts.get(key) != Some(config) => c.note_text_index(key, config.clone()).await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::error!(collection = %c.spec().name, key = %key, error = %e, "cannot record an index definition");
        }
    }
    for key in fields.keys().chain(texts.keys()) {
        if !wanted.contains_key(key) {
            if let Err(e) = c.note_field_index(key, None).await {
                tracing::error!(collection = %c.spec().name, key = %key, error = %e, "cannot drop an index definition");
            }
        }
    }
}

fn placement_json(placement: &crate::metadata::CollectionPlacement) -> Value {
    let copies = placement.replicas.iter().enumerate().map(|(p, nodes)| {
        let shard = placement.shard(p);
        json!({ "partition": p, "replicas": nodes, "primary": nodes.first(), "term": shard.term, "stale": shard.stale })
    });
    Value::Array(copies.collect())
}

fn role(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "Leader",
        ServerState::Follower => "Follower",
        ServerState::Candidate => "Candidate",
        ServerState::Learner => "Learner",
        ServerState::Shutdown => "Shutdown",
    }
}

fn load_or_create_id(dir: &Path) -> Result<NodeId, ClusterError> {
    let path = dir.join("node_id");
    let storage = |e: std::io::Error| ClusterError::Storage(format!("{}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().parse().map_err(|e| ClusterError::Storage(format!("{} is damaged: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::hash::{BuildHasher, Hasher};
            // Random enough for an id: std's per-process random hash keys, plus the time.
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
            );
            h.write_u32(std::process::id());
            // Kept below 2^53 so that JSON clients read it exactly.
            let id = (h.finish() >> 11).max(1);
            ametist_storage::replace::replace_bytes(&ametist_storage::StdFs, &path, id.to_string().as_bytes())
                .map_err(storage)?;
            Ok(id)
        }
        Err(e) => Err(storage(e)),
    }
}

fn engine_input(e: EngineError) -> ClusterError {
    ClusterError::InvalidInput(e.to_string())
}

impl From<EngineError> for ClusterError {
    fn from(e: EngineError) -> Self {
        let w = WireError::from(&e);
        match w.class {
            ErrorClass::BadInput => ClusterError::InvalidInput(w.message),
            ErrorClass::Internal => ClusterError::Internal(w.message),
            _ => ClusterError::Unavailable(w.message),
        }
    }
}
