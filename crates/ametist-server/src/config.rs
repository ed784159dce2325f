//! `ametist.yaml`: the server's configuration, in the shape of the design note.
//!
//! Every field has a default, so no file is needed. Values are layered, later wins:
//! defaults, the YAML file, environment variables `AMETIST__<SECTION>__<FIELD>` (for
//! example `AMETIST__PARTITIONS__COUNT=4`), `--set section.field=value` flags, and the
//! dedicated flags `--host`, `--port` and `--data-dir`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use ametist_engine::config::{IndexConfig, StorageOptions, MAX_PARTITIONS};
use ametist_engine::spec::MAX_REPLICATION_FACTOR;
use ametist_engine::{EngineConfig, SupervisionPolicy};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmetistConfig {
    /// The name of this node or cluster, shown in logs and on `GET /`.
    pub name: String,
    pub partitions: PartitionsConfig,
    pub remoting: RemotingConfig,
    pub service: ServiceConfig,
    pub supervision: SupervisionPolicy,
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
}

impl Default for AmetistConfig {
    fn default() -> Self {
        AmetistConfig {
            name: "ametist".into(),
            partitions: PartitionsConfig::default(),
            remoting: RemotingConfig::default(),
            service: ServiceConfig::default(),
            supervision: SupervisionPolicy::default(),
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PartitionsConfig {
    /// Partitions of a new collection that does not name a count (`shard_number`).
    /// Defaults to the number of CPU cores.
    pub count: usize,
    pub index: IndexConfig,
    /// Index memory on transparent huge pages (Linux): faster graph walks, and up to 2 MiB
    /// more memory per partition's index. Off: ordinary 4 KiB pages.
    pub huge_pages: bool,
    /// Copies of each partition of a new collection that does not name
    /// `replication_factor` (a cluster keeps them on distinct members).
    pub replication_factor: usize,
}

impl Default for PartitionsConfig {
    fn default() -> Self {
        PartitionsConfig {
            replication_factor: 1,
            count: EngineConfig::default().default_partitions,
            index: IndexConfig::default(),
            huge_pages: true,
        }
    }
}

/// Clustering: the node-to-node (gRPC) service, how to join, and the shared secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemotingConfig {
    /// Runs this node as a cluster member (partitions spread over the members).
    pub enabled: bool,
    /// The address the node-to-node service binds to (and only that address).
    pub host: String,
    pub port: u16,
    /// The `host:port` other nodes dial to reach this one; defaults to `host:port`, which
    /// must then be reachable (not `0.0.0.0`).
    pub advertise: Option<String>,
    /// Node-to-node addresses (`host:port`) of members to join through. Empty on the
    /// first node, which founds the cluster. From the environment: comma-separated.
    #[serde(deserialize_with = "list_or_csv")]
    pub seeds: Vec<String>,
    /// The secret every node-to-node call carries; peers with another one are refused.
    /// Required when `enabled`. Prefer `AMETIST__REMOTING__SECRET` to a file.
    pub secret: String,
    /// How long a partition's primary may not answer before the leader promotes an in-sync
    /// replica in its place (collections with `replication_factor` above 1).
    #[serde(with = "humantime_serde")]
    pub failover_timeout: Duration,
    /// How long a member may not answer before the leader re-creates its copies on the
    /// other members (from each partition's primary) and drops them from it.
    #[serde(with = "humantime_serde")]
    pub replace_dead_after: Duration,
}

impl Default for RemotingConfig {
    fn default() -> Self {
        RemotingConfig {
            enabled: false,
            host: "0.0.0.0".into(),
            port: 9000,
            advertise: None,
            seeds: Vec::new(),
            secret: String::new(),
            failover_timeout: Duration::from_secs(2),
            replace_dead_after: Duration::from_secs(300),
        }
    }
}

impl RemotingConfig {
    /// The address other nodes dial.
    pub fn advertised(&self) -> String {
        self.advertise.clone().unwrap_or_else(|| format!("{}:{}", self.host, self.port))
    }
}

/// Qdrant's `service` section: the REST API key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// When set, every REST request (health checks excepted) must carry it in the
    /// `api-key` header or as `Authorization: Bearer <key>`, as Qdrant clients send it.
    pub api_key: Option<String>,
    /// Serves `GET /metrics` without the API key (for a scraper that cannot send one).
    /// Off by default: the metrics name collections and count their points.
    pub metrics_public: bool,
}

/// A list, or one comma-separated string (as an environment variable gives it), or nothing.
fn list_or_csv<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<String>),
        Csv(String),
    }
    // An empty environment variable reads as null: no seeds.
    Ok(match Option::<ListOrCsv>::deserialize(d)? {
        None => Vec::new(),
        Some(ListOrCsv::List(l)) => l,
        Some(ListOrCsv::Csv(s)) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Qdrant's gRPC API (services `Qdrant`, `Collections`, `Points`) on `host`, beside
    /// REST; `null` turns it off.
    pub grpc_port: Option<u16>,
    /// Largest request body accepted, in bytes (Qdrant's default is 32 MiB).
    pub max_request_bytes: usize,
    /// Enables `POST /collections/{name}/partitions/{id}/fault`, which makes a partition
    /// panic or stall on purpose (for resilience drills and tests). Off by default.
    pub enable_fault_injection: bool,
    /// Connections served at once, on the REST port and on the gRPC port each; more wait
    /// to be accepted until one closes.
    pub max_connections: usize,
    /// How long a client may take to send a request's head (method, path, headers), from
    /// when the connection opens or finished its previous request: idle keep-alive
    /// connections are closed after this too.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body, from its head; slower is a 408.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 6333,
            grpc_port: Some(6334),
            max_request_bytes: 32 * 1024 * 1024,
            enable_fault_injection: false,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// A partition snapshots (and drops the log the snapshot covers) once this many bytes
    /// were logged since its last snapshot.
    pub snapshot_wal_bytes: u64,
    /// ... or once this much time passed since its last snapshot, if it was written to.
    #[serde(with = "humantime_serde")]
    pub snapshot_interval: Duration,
    /// Size of a write-ahead log segment file.
    pub wal_segment_bytes: u64,
    /// Directories besides `<data_dir>/snapshots` whose files `snapshots/recover` may read
    /// (`file://` locations). Empty by default: a request cannot make the server read an
    /// arbitrary file it has access to. From the environment: comma-separated.
    #[serde(deserialize_with = "list_or_csv_paths")]
    pub recover_from_dirs: Vec<PathBuf>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let s = StorageOptions::default();
        StorageConfig {
            data_dir: PathBuf::from("./ametist-data"),
            snapshot_wal_bytes: s.snapshot_wal_bytes,
            snapshot_interval: s.snapshot_interval,
            wal_segment_bytes: s.wal_segment_bytes,
            recover_from_dirs: Vec::new(),
        }
    }
}

fn list_or_csv_paths<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    Ok(list_or_csv(d)?.into_iter().map(PathBuf::from).collect())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub partition_mailbox: usize,
    pub collection_mailbox: usize,
    #[serde(with = "humantime_serde")]
    pub search_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    pub allow_partial_results: bool,
    pub max_batch: usize,
    pub max_limit: usize,
    /// Most hits one request may ask for in all: the sum of `limit + offset` over a batch's
    /// queries and their prefetches.
    pub max_batch_results: usize,
    /// Largest answer, in bytes, one request may get: a query whose answer would be larger
    /// (estimated from its limits and vectors before it runs, measured after) is a 400.
    pub max_response_bytes: usize,
    /// Bytes of write requests (upserts, updates, deletes) being handled at once on this
    /// server; a write beyond it is a 429 at once.
    pub write_bytes_in_flight: usize,
    /// The same, per collection, so that one collection's writers cannot take it all.
    pub collection_write_bytes_in_flight: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let e = EngineConfig::default();
        LimitsConfig {
            partition_mailbox: e.partition_mailbox,
            collection_mailbox: e.collection_mailbox,
            search_timeout: e.search_timeout,
            write_timeout: e.write_timeout,
            allow_partial_results: e.allow_partial_results,
            max_batch: e.max_batch,
            max_limit: e.max_limit,
            max_batch_results: 100_000,
            max_response_bytes: 64 << 20,
            write_bytes_in_flight: 256 << 20,
            collection_write_bytes_in_flight: 128 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `ametist_engine=debug,info`; `RUST_LOG` wins.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: LogFormat::Text }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A configuration error, naming the file or override at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("override `{0}`: expected section.field=value")]
    BadOverride(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl AmetistConfig {
    /// Loads the configuration: `path` if given (it must exist), else `./ametist.yaml` if
    /// present, else defaults; then applies `env` (name, value) pairs and `--set` overrides.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        sets: &[String],
    ) -> Result<Self, ConfigError> {
        let (source, text) = match path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| ConfigError::Read { path: p.to_path_buf(), source: e })?;
                (p.display().to_string(), text)
            }
            None if Path::new("ametist.yaml").exists() => {
                let p = Path::new("ametist.yaml");
                let text =
                    std::fs::read_to_string(p).map_err(|e| ConfigError::Read { path: p.to_path_buf(), source: e })?;
                (p.display().to_string(), text)
            }
            None => ("(defaults)".to_string(), String::new()),
        };
        let mut tree: Value = if text.trim().is_empty() {
            Value::Mapping(Default::default())
        } else {
            serde_yaml_ng::from_str(&text)
                .map_err(|e| ConfigError::Parse { path: source.clone(), message: e.to_string() })?
        };
        if tree.is_null() {
            tree = Value::Mapping(Default::default());
        }
        for (key, value) in env {
            if let Some(rest) = key.strip_prefix("AMETIST__") {
                let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
                set_path(&mut tree, &path, &value);
            }
        }
        for s in sets {
            let (k, v) = s.split_once('=').ok_or_else(|| ConfigError::BadOverride(s.clone()))?;
            let path: Vec<String> = k.trim().split('.').map(str::to_string).collect();
            if path.iter().any(|p| p.is_empty()) {
                return Err(ConfigError::BadOverride(s.clone()));
            }
            set_path(&mut tree, &path, v.trim());
        }
        // The error names the field at fault (`partitions.count: invalid value ...`), wherever
        // its value came from.
        let config: AmetistConfig = serde_path_to_error::deserialize(tree).map_err(|e| ConfigError::Parse {
            path: format!("{source} with overrides"),
            message: format!("{}: {}", e.path(), e.inner()),
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.partitions.replication_factor == 0 || self.partitions.replication_factor > MAX_REPLICATION_FACTOR {
            return bad(&format!("partitions.replication_factor must be between 1 and {MAX_REPLICATION_FACTOR}"));
        }
        if self.partitions.replication_factor > 1 && !self.remoting.enabled {
            return bad("partitions.replication_factor above 1 needs a cluster (remoting.enabled)");
        }
        if self.partitions.count == 0 {
            return bad("partitions.count must be at least 1");
        }
        if self.partitions.count > MAX_PARTITIONS {
            return bad(&format!("partitions.count must be at most {MAX_PARTITIONS}"));
        }
        if let Err(e) = self.partitions.index.validate() {
            return bad(&format!("partitions.index.{e}"));
        }
        if self.limits.partition_mailbox == 0 || self.limits.collection_mailbox == 0 {
            return bad("limits.partition_mailbox and limits.collection_mailbox must be at least 1");
        }
        if self.storage.snapshot_interval.is_zero() || self.storage.snapshot_wal_bytes == 0 {
            return bad("storage.snapshot_interval and storage.snapshot_wal_bytes must be above 0");
        }
        if self.storage.wal_segment_bytes < 4096 {
            return bad("storage.wal_segment_bytes must be at least 4096");
        }
        if self.limits.max_batch == 0 || self.limits.max_limit == 0 {
            return bad("limits.max_batch and limits.max_limit must be at least 1");
        }
        const MILLION: usize = 1_000_000;
        for (name, v) in [
            ("limits.max_batch", self.limits.max_batch),
            ("limits.max_limit", self.limits.max_limit),
            ("limits.partition_mailbox", self.limits.partition_mailbox),
            ("limits.collection_mailbox", self.limits.collection_mailbox),
        ] {
            if v > MILLION {
                return bad(&format!("{name} must be at most {MILLION}, got {v}"));
            }
        }
        if self.limits.max_batch_results < self.limits.max_limit {
            return bad("limits.max_batch_results must be at least limits.max_limit");
        }
        for (name, v) in [
            ("limits.max_response_bytes", self.limits.max_response_bytes),
            ("limits.write_bytes_in_flight", self.limits.write_bytes_in_flight),
            ("limits.collection_write_bytes_in_flight", self.limits.collection_write_bytes_in_flight),
            ("server.max_request_bytes", self.server.max_request_bytes),
        ] {
            if v < 1024 {
                return bad(&format!("{name} must be at least 1024 bytes, got {v}"));
            }
        }
        if self.limits.collection_write_bytes_in_flight < self.server.max_request_bytes
            || self.limits.write_bytes_in_flight < self.limits.collection_write_bytes_in_flight
        {
            return bad("limits must satisfy server.max_request_bytes <= limits.collection_write_bytes_in_flight \
                 <= limits.write_bytes_in_flight (else the largest request could never be admitted)");
        }
        if !(1..=MILLION).contains(&self.server.max_connections) {
            return bad(&format!("server.max_connections must be between 1 and {MILLION}"));
        }
        // Deadlines are added to the clock: beyond a day they only risk overflowing it.
        const DAY: Duration = Duration::from_secs(86_400);
        const YEAR: Duration = Duration::from_secs(365 * 86_400);
        for (name, d, max) in [
            ("server.header_read_timeout", self.server.header_read_timeout, DAY),
            ("server.body_read_timeout", self.server.body_read_timeout, DAY),
            ("limits.search_timeout", self.limits.search_timeout, DAY),
            ("limits.write_timeout", self.limits.write_timeout, DAY),
            ("remoting.failover_timeout", self.remoting.failover_timeout, DAY),
            ("remoting.replace_dead_after", self.remoting.replace_dead_after, YEAR),
            ("storage.snapshot_interval", self.storage.snapshot_interval, YEAR),
            ("supervision.within", self.supervision.within, YEAR),
        ] {
            if d.is_zero() || d > max {
                return bad(&format!("{name} must be above 0 and at most {}", humantime::format_duration(max)));
            }
        }
        for (name, v) in [
            ("storage.wal_segment_bytes", self.storage.wal_segment_bytes),
            ("storage.snapshot_wal_bytes", self.storage.snapshot_wal_bytes),
        ] {
            if v > 1 << 40 {
                return bad(&format!("{name} must be at most 1 TiB, got {v}"));
            }
        }
        if self.service.api_key.as_deref() == Some("") {
            return bad("service.api_key must not be empty (leave it out to serve without a key)");
        }
        Ok(())
    }

    /// The engine settings this configuration describes.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            default_partitions: self.partitions.count,
            default_replication_factor: self.partitions.replication_factor,
            default_index: self.partitions.index,
            supervision: self.supervision,
            partition_mailbox: self.limits.partition_mailbox,
            collection_mailbox: self.limits.collection_mailbox,
            search_timeout: self.limits.search_timeout,
            write_timeout: self.limits.write_timeout,
            allow_partial_results: self.limits.allow_partial_results,
            max_batch: self.limits.max_batch,
            max_limit: self.limits.max_limit,
            storage: StorageOptions {
                snapshot_wal_bytes: self.storage.snapshot_wal_bytes,
                snapshot_interval: self.storage.snapshot_interval,
                wal_segment_bytes: self.storage.wal_segment_bytes,
            },
        }
    }
}

/// Sets `tree[path] = value`, creating sections as needed. The value is read as a YAML
/// scalar so that `4`, `true` and `1m` get their natural types.
fn set_path(tree: &mut Value, path: &[String], value: &str) {
    let parsed: Value = serde_yaml_ng::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    let mut node = tree;
    for (i, key) in path.iter().enumerate() {
        if !node.is_mapping() {
            *node = Value::Mapping(Default::default());
        }
        let map = node.as_mapping_mut().expect("made a mapping just above");
        // Accept `max_restarts` for the note's `max-restarts` (environment variables
        // cannot contain dashes): reuse whichever spelling the tree already has.
        let dashed = key.replace('_', "-");
        let existing = [key.as_str(), dashed.as_str()]
            .into_iter()
            .find(|k| map.contains_key(Value::String((*k).to_string())))
            .unwrap_or(key.as_str())
            .to_string();
        let k = Value::String(existing);
        if i + 1 == path.len() {
            map.insert(k, parsed);
            return;
        }
        node = map.entry(k).or_insert(Value::Mapping(Default::default()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let c = AmetistConfig::load(None, Vec::new(), &[]).unwrap();
        assert_eq!(c.server.port, 6333);
        assert_eq!(c.server.host, "127.0.0.1");
        assert_eq!(c.storage.data_dir, PathBuf::from("./ametist-data"));
        assert_eq!(c.supervision.max_restarts, 3);
    }

    #[test]
    fn seed_shape_parses_and_overrides_apply() {
        let dir = std::env::temp_dir().join(format!("ametist-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ametist.yaml");
        std::fs::write(
            &path,
            "name: ametist-cluster\npartitions:\n  count: 8\n  index:\n    type: hnsw\n    m: 16\n    ef_construction: 200\n    ef_search: 50\nremoting:\n  enabled: true\n  host: 0.0.0.0\n  port: 9000\nsupervision:\n  strategy: restart\n  max-restarts: 3\n  within: 1m\n",
        )
        .unwrap();
        let c = AmetistConfig::load(Some(&path), Vec::new(), &[]).unwrap();
        assert_eq!(c.name, "ametist-cluster");
        assert_eq!(c.partitions.count, 8);
        assert_eq!(c.supervision.within, Duration::from_secs(60));
        assert!(c.remoting.enabled);

        let env = vec![
            ("AMETIST__PARTITIONS__COUNT".to_string(), "4".to_string()),
            ("AMETIST__SUPERVISION__MAX_RESTARTS".to_string(), "5".to_string()),
            ("AMETIST__PARTITIONS__HUGE_PAGES".to_string(), "false".to_string()),
            ("AMETIST__PARTITIONS__INDEX__QUANTIZATION".to_string(), "int4".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let sets = vec!["limits.search_timeout=250ms".to_string(), "partitions.index.ef_search=80".to_string()];
        assert!(c.partitions.huge_pages, "on by default");
        assert_eq!(c.partitions.index.quantization, ametist_engine::config::Quantization::None, "off by default");
        let c = AmetistConfig::load(Some(&path), env, &sets).unwrap();
        assert_eq!(c.partitions.count, 4);
        assert!(!c.partitions.huge_pages);
        assert_eq!(c.supervision.max_restarts, 5);
        assert_eq!(c.limits.search_timeout, Duration::from_millis(250));
        assert_eq!(c.partitions.index.ef_search, 80);
        assert_eq!(c.partitions.index.quantization, ametist_engine::config::Quantization::Int4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Binary codes are a quantization setting like the scalar ones, from the file, the
    /// environment or a flag; an unknown one is refused.
    #[test]
    fn binary_quantization_from_env_and_flags() {
        use ametist_engine::config::Quantization;
        let env = vec![("AMETIST__PARTITIONS__INDEX__QUANTIZATION".to_string(), "binary".to_string())];
        assert_eq!(AmetistConfig::load(None, env, &[]).unwrap().partitions.index.quantization, Quantization::Binary);
        for q in [Quantization::BinaryTwoBits, Quantization::BinaryOneAndHalfBits] {
            let sets = vec![format!("partitions.index.quantization={}", q.name())];
            assert_eq!(AmetistConfig::load(None, Vec::new(), &sets).unwrap().partitions.index.quantization, q);
        }
        let sets = vec!["partitions.index.quantization=product".to_string()];
        assert!(AmetistConfig::load(None, Vec::new(), &sets).is_err(), "product quantization is not a setting");
    }

    #[test]
    fn code_quantile_from_env_and_flags_within_range() {
        assert_eq!(AmetistConfig::load(None, Vec::new(), &[]).unwrap().partitions.index.quantile, None);
        let env = vec![("AMETIST__PARTITIONS__INDEX__QUANTILE".to_string(), "0.99".to_string())];
        assert_eq!(AmetistConfig::load(None, env, &[]).unwrap().partitions.index.quantile, Some(0.99));
        let sets = vec!["partitions.index.quantile=1".to_string()];
        assert_eq!(AmetistConfig::load(None, Vec::new(), &sets).unwrap().partitions.index.quantile, Some(1.0));
        let sets = vec!["partitions.index.quantile=0.2".to_string()];
        let err = AmetistConfig::load(None, Vec::new(), &sets).unwrap_err().to_string();
        assert!(err.contains("partitions.index.quantile must be between 0.5 and 1"), "{err}");
    }

    #[test]
    fn cluster_settings_from_env_and_flags() {
        let env = vec![
            ("AMETIST__REMOTING__ENABLED".to_string(), "true".to_string()),
            ("AMETIST__REMOTING__SEEDS".to_string(), "127.0.0.1:9001, 127.0.0.1:9002".to_string()),
            ("AMETIST__REMOTING__SECRET".to_string(), "s3cret".to_string()),
            ("AMETIST__SERVICE__API_KEY".to_string(), "k".to_string()),
        ];
        let c = AmetistConfig::load(None, env, &[]).unwrap();
        assert_eq!(c.remoting.seeds, vec!["127.0.0.1:9001", "127.0.0.1:9002"]);
        assert_eq!(c.remoting.secret, "s3cret");
        assert_eq!(c.service.api_key.as_deref(), Some("k"));
        let sets = vec![
            "remoting.enabled=true".to_string(),
            "remoting.secret=x".to_string(),
            "remoting.seeds=[a:1,b:2]".to_string(),
        ];
        let c = AmetistConfig::load(None, Vec::new(), &sets).unwrap();
        assert_eq!(c.remoting.seeds, vec!["a:1", "b:2"]);
        // A missing secret is refused when the node starts its cluster membership (the
        // note's file, with `enabled: true` and no secret, still loads).
        let e = AmetistConfig::load(None, Vec::new(), &["service.api_key=''".to_string()]).unwrap_err();
        assert!(e.to_string().contains("service.api_key"), "{e}");
    }

    #[test]
    fn grpc_port_from_env_and_flags_and_off_with_null() {
        assert_eq!(AmetistConfig::default().server.grpc_port, Some(6334));
        let env = vec![("AMETIST__SERVER__GRPC_PORT".to_string(), "7334".to_string())];
        assert_eq!(AmetistConfig::load(None, env, &[]).unwrap().server.grpc_port, Some(7334));
        let c = AmetistConfig::load(None, Vec::new(), &["server.grpc_port=null".to_string()]).unwrap();
        assert_eq!(c.server.grpc_port, None);
        let e = AmetistConfig::load(None, Vec::new(), &["server.grpc_port=70000".to_string()]).unwrap_err();
        assert!(e.to_string().contains("server.grpc_port"), "{e}");
    }

    #[test]
    fn mistakes_are_named() {
        let e = AmetistConfig::load(None, Vec::new(), &["partitions.cuont=3".to_string()]).unwrap_err();
        assert!(e.to_string().contains("cuont"), "{e}");
        let e = AmetistConfig::load(None, Vec::new(), &["partitions.count=0".to_string()]).unwrap_err();
        assert!(e.to_string().contains("partitions.count"), "{e}");
        for (set, named) in [
            ("partitions.index.ef_construction=4294967296", "partitions.index.ef_construction must be between 1 and"),
            ("partitions.index.m=1000000000", "partitions.index.m must be between 2 and 1024"),
            ("partitions.count=5000", "partitions.count must be at most 1024"),
            ("limits.max_limit=0", "limits.max_batch and limits.max_limit"),
        ] {
            let e = AmetistConfig::load(None, Vec::new(), &[set.to_string()]).unwrap_err();
            assert!(e.to_string().contains(named), "{set}: {e}");
        }
        let e = AmetistConfig::load(None, Vec::new(), &["nonsense".to_string()]).unwrap_err();
        assert!(e.to_string().contains("nonsense"), "{e}");
        let e = AmetistConfig::load(Some(Path::new("/definitely/missing.yaml")), Vec::new(), &[]).unwrap_err();
        assert!(e.to_string().contains("missing.yaml"), "{e}");
    }
}
