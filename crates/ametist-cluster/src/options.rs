//! A member's settings.

use std::path::PathBuf;

use crate::router::Deadlines;

/// What a node needs to know to take part in a cluster (`remoting` in `ametist.yaml`).
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The node's data directory; cluster state goes to `<data_dir>/cluster`.
    pub data_dir: PathBuf,
    /// Where the node-to-node service listens (that address only).
    pub host: String,
    pub port: u16,
    /// The `host:port` other nodes dial to reach this one.
    pub advertise: String,
    /// The REST address clients and `GET /cluster` see (`host:port`).
    pub rest_addr: String,
    /// Addresses (`host:port`) of existing members to join through; empty for the first node.
    pub seeds: Vec<String>,
    /// The shared cluster secret every node-to-node call carries.
    pub secret: String,
    /// Deadlines of forwarded partition calls.
    pub deadlines: Deadlines,
    /// How long a partition's primary may not answer the leader's pings before an in-sync
    /// replica is promoted in its place.
    pub failover_timeout: std::time::Duration,
    /// How long a member may not answer the leader's pings before its copies are
    /// re-created on other members and dropped from it.
    pub replace_dead_after: std::time::Duration,
}
