//! Collection and engine settings.
//!
//! The server reads these from `ametist.yaml`; embedded users build them in code. Every
//! field has a default.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use ametist_core::hnsw::Quantization;
pub use ametist_core::multivector::Comparator;
use ametist_core::sparse::SparseModifier;
use ametist_core::Metric;
use ametist_core::{multivector, vector, CoreError};

/// What a collection is: fixed at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionConfig {
    /// Dimension of the unnamed (default) vector; every point has one with exactly this many
    /// components. 0 when the collection has only named vectors.
    pub dim: usize,
    pub metric: Metric,
    /// Number of partitions (shards); `None` takes the engine's default.
    pub partitions: Option<usize>,
    /// Index parameters; `None` takes the engine's default.
    pub index: Option<IndexConfig>,
    /// Named dense vectors (Qdrant's `vectors: {"name": {size, distance}}`). A point may
    /// carry any subset of them; each has its own index per partition.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vectors: BTreeMap<String, VectorParams>,
    /// Named sparse vectors (Qdrant's `sparse_vectors`), searched by dot product.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sparse_vectors: BTreeMap<String, SparseVectorParams>,
    /// Copies of each partition in a cluster (`None`: the engine's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<usize>,
    /// Fewest in-sync copies a write is acknowledged with (`None`: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_consistency_factor: Option<usize>,
}

/// One named dense vector of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VectorParams {
    pub dim: usize,
    pub metric: Metric,
    /// This vector's own [`IndexConfig::quantization`] (Qdrant's per-vector
    /// `quantization_config`); unset: the collection's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
    /// This vector's own [`IndexConfig::quantile`]; unset: the collection's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f32>,
    /// Set for a multivector field (Qdrant's `multivector_config`): each point holds one or
    /// more vectors of `dim` components (concatenated, see [`ametist_core::multivector`]),
    /// compared by this comparator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multivector: Option<Comparator>,
}

/// A quantile (Qdrant's `quantile`) must lie in `[0.5, 1]`.
pub fn check_quantile(quantile: Option<f32>) -> Result<(), BadIndexSetting> {
    match quantile {
        Some(q) if !(0.5..=1.0).contains(&q) => Err(BadIndexSetting {
            field: IndexField::Quantile,
            allowed: "between 0.5 and 1".into(),
            got: q.to_string(),
        }),
        _ => Ok(()),
    }
}

impl VectorParams {
    pub fn new(dim: usize, metric: Metric) -> Self {
        VectorParams { dim, metric, quantization: None, quantile: None, multivector: None }
    }

    /// The same field holding multivectors compared by `comparator`.
    pub fn multi(self, comparator: Comparator) -> Self {
        VectorParams { multivector: Some(comparator), ..self }
    }

    /// Checks a value of this field (one vector, or a multivector's vectors concatenated).
    pub fn validate(&self, v: &[f32]) -> Result<(), CoreError> {
        match self.multivector {
            None => vector::validate(self.dim, v),
            Some(_) => multivector::validate(self.dim, v),
        }
    }

    /// Validates a value of this field and brings it to the stored form (cosine vectors
    /// normalised, each vector of a multivector on its own).
    pub fn prepare(&self, v: Vec<f32>) -> Result<Vec<f32>, CoreError> {
        match self.multivector {
            None => vector::prepare(self.metric, self.dim, v),
            Some(_) => multivector::prepare(self.metric, self.dim, v),
        }
    }

    /// The index settings of this vector: the collection's, with this vector's own code
    /// settings over them.
    pub fn index_config(&self, collection: &IndexConfig) -> IndexConfig {
        IndexConfig {
            quantization: self.quantization.unwrap_or(collection.quantization),
            quantile: self.quantile.or(collection.quantile),
            ..*collection
        }
    }
}

/// Every dense field of a collection: the unnamed vector as the field `""` (when `dim` is
/// not 0; its codes are the collection's), then the named ones. An unnamed vector with
/// settings beyond its size and metric (a multivector) is stored among the named ones as
/// `""`, with `dim` 0. The one place that turns
/// the stored shape of a collection (an unnamed `dim`/`metric` beside a map of named
/// vectors, as Qdrant's `vectors` config has it) into the engine's model of fields.
pub fn dense_fields(
    dim: usize,
    metric: Metric,
    named: &BTreeMap<String, VectorParams>,
) -> BTreeMap<String, VectorParams> {
    let mut fields = named.clone();
    if dim > 0 {
        fields.insert(crate::messages::UNNAMED.to_string(), VectorParams::new(dim, metric));
    }
    fields
}

/// One named sparse vector of a collection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparseVectorParams {
    /// `idf` weighs each query dimension by its collection-wide inverse document frequency.
    #[serde(default)]
    pub modifier: SparseModifier,
}

impl CollectionConfig {
    pub fn new(dim: usize, metric: Metric) -> Self {
        CollectionConfig {
            dim,
            metric,
            partitions: None,
            index: None,
            vectors: BTreeMap::new(),
            sparse_vectors: BTreeMap::new(),
            replication_factor: None,
            write_consistency_factor: None,
        }
    }

    /// A collection with only named vectors (no unnamed one).
    pub fn named(vectors: impl IntoIterator<Item = (String, VectorParams)>) -> Self {
        CollectionConfig { vectors: vectors.into_iter().collect(), ..CollectionConfig::new(0, Metric::Cosine) }
    }

    pub fn with_vector(mut self, name: &str, dim: usize, metric: Metric) -> Self {
        self.vectors.insert(name.to_string(), VectorParams::new(dim, metric));
        self
    }

    pub fn with_sparse_vector(mut self, name: &str, modifier: SparseModifier) -> Self {
        self.sparse_vectors.insert(name.to_string(), SparseVectorParams { modifier });
        self
    }

    pub fn with_partitions(mut self, partitions: usize) -> Self {
        self.partitions = Some(partitions);
        self
    }
}

/// The ANN index of each partition (the seed's `partitions.index`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IndexConfig {
    #[serde(rename = "type")]
    pub kind: IndexKind,
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    /// Partitions with fewer live points than this are scanned exactly instead of walking
    /// the graph (Qdrant's `full_scan_threshold`, counted in points).
    pub full_scan_threshold: usize,
    /// What the graph walk reads: `none` (the f32 vectors), `int8` or `int4` (an 8- or
    /// 4-bit copy beside the links, with the `ef` best re-scored on the f32 vectors), or
    /// `binary`, `binary_two_bits`, `binary_one_and_half_bits` (Qdrant's binary codes: 1, 2
    /// or 1.5 bits per dimension, compared by popcount, re-scored the same way). Codes pay
    /// off on high-dimensional vectors, where the walk waits for memory; they cost dim
    /// (int8), dim/2 (int4) or dim/8 (binary) bytes per point; int4 needs a larger `ef`
    /// when neighbours differ by less than a sixteenth of the values' range, and binary
    /// codes a larger one still (Qdrant's `oversampling`), on data centred on zero.
    pub quantization: Quantization,
    /// The share of the values that the codes' range holds, centred, in `[0.5, 1]`
    /// (Qdrant's `quantile`); values beyond it are clamped to its ends. Unset: 0.998, which
    /// leaves out the lowest and the highest 0.1% (Qdrant's default is the whole range).
    pub quantile: Option<f32>,
}

/// The largest vector dimension: what partition images and index files hold.
pub const MAX_DIM: usize = 65_536;
/// The most partitions a collection may have (each is a thread with files of its own).
pub const MAX_PARTITIONS: usize = 1024;
/// `m`: at least 2 links per node; the index caps it at 1024 (a layer-0 node then holds
/// 2048 links, 8 KiB).
pub const M_RANGE: RangeInclusive<usize> = 2..=1024;
/// `ef_construction`: beyond a few thousand a wider beam adds build time, not recall.
pub const EF_CONSTRUCTION_RANGE: RangeInclusive<usize> = 1..=10_000;
/// `ef_search`, and a query's `hnsw_ef`: a beam wider than this is an exact scan done slowly.
pub const EF_SEARCH_RANGE: RangeInclusive<usize> = 1..=100_000;
/// `full_scan_threshold`, in points (any count fits; this keeps it in 32 bits).
pub const MAX_FULL_SCAN_THRESHOLD: usize = u32::MAX as usize;

/// An index setting of [`IndexConfig`], for errors that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexField {
    M,
    EfConstruction,
    EfSearch,
    FullScanThreshold,
    Quantile,
}

impl IndexField {
    /// The field's name in `ametist.yaml` (`partitions.index.<name>`).
    pub fn config_name(self) -> &'static str {
        match self {
            IndexField::M => "m",
            IndexField::EfConstruction => "ef_construction",
            IndexField::EfSearch => "ef_search",
            IndexField::FullScanThreshold => "full_scan_threshold",
            IndexField::Quantile => "quantile",
        }
    }

    /// The field's name in Qdrant's create-collection body.
    pub fn api_name(self) -> &'static str {
        match self {
            IndexField::M => "hnsw_config.m",
            IndexField::EfConstruction => "hnsw_config.ef_construct",
            IndexField::EfSearch => "hnsw_config.ef",
            IndexField::FullScanThreshold => "hnsw_config.full_scan_threshold",
            IndexField::Quantile => "quantization_config.scalar.quantile",
        }
    }
}

/// An index setting outside what Ametist stores and accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} must be {allowed}, got {got}", field.config_name())]
pub struct BadIndexSetting {
    pub field: IndexField,
    /// What is allowed, in words ("between 2 and 1024").
    pub allowed: String,
    pub got: String,
}

impl IndexConfig {
    /// Checks every number against what the index and its files hold and what is sane.
    /// Every way a setting arrives (create, a config file, a snapshot, a cluster's metadata)
    /// goes through here, so that nothing is accepted that a restart could not read back.
    pub fn validate(&self) -> Result<(), BadIndexSetting> {
        let range = |field, r: &RangeInclusive<usize>, v: usize| {
            if r.contains(&v) {
                Ok(())
            } else {
                Err(BadIndexSetting {
                    field,
                    allowed: format!("between {} and {}", r.start(), r.end()),
                    got: v.to_string(),
                })
            }
        };
        range(IndexField::M, &M_RANGE, self.m)?;
        range(IndexField::EfConstruction, &EF_CONSTRUCTION_RANGE, self.ef_construction)?;
        range(IndexField::EfSearch, &EF_SEARCH_RANGE, self.ef_search)?;
        range(IndexField::FullScanThreshold, &(0..=MAX_FULL_SCAN_THRESHOLD), self.full_scan_threshold)?;
        check_quantile(self.quantile)
    }

    /// An empty index with these settings.
    pub(crate) fn new_index(&self, metric: Metric, dim: usize) -> ametist_core::hnsw::Hnsw {
        let params = ametist_core::hnsw::HnswParams {
            m: self.m,
            ef_construction: self.ef_construction,
            ef_search: self.ef_search,
        };
        let mut index = ametist_core::hnsw::Hnsw::new(metric, dim, params);
        self.configure_codes(&mut index);
        index
    }

    /// Applies the code settings (`quantization`, `quantile`) to an index: codes are
    /// trained, or trained again, as needed.
    pub(crate) fn configure_codes(&self, index: &mut ametist_core::hnsw::Hnsw) {
        // The quantile first, so that switching codes on trains them once, on the right range.
        index.set_quantile(self.quantile.unwrap_or(ametist_core::hnsw::DEFAULT_QUANTILE));
        index.set_quantization(self.quantization);
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            kind: IndexKind::Hnsw,
            m: 16,
            ef_construction: 200,
            ef_search: 50,
            full_scan_threshold: 10_000,
            quantization: Quantization::None,
            quantile: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// A graph index (HNSW) over each partition.
    Hnsw,
    /// No index: every search is an exact scan.
    Flat,
}

/// What happens when a partition actor panics or fails.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SupervisionPolicy {
    pub strategy: RestartStrategy,
    /// A partition that failed this many times within `within` is stopped instead of being
    /// restarted once more.
    #[serde(rename = "max-restarts", alias = "max_restarts")]
    pub max_restarts: u32,
    #[serde(with = "humantime_serde")]
    pub within: Duration,
}

impl Default for SupervisionPolicy {
    fn default() -> Self {
        SupervisionPolicy { strategy: RestartStrategy::Restart, max_restarts: 3, within: Duration::from_secs(60) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartStrategy {
    /// Restart the failed partition (it recovers its state before taking messages).
    Restart,
    /// Stop the failed partition and report it.
    Stop,
}

/// Engine-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Partitions of a new collection that does not name a count.
    pub default_partitions: usize,
    /// Copies of each partition of a new cluster collection that does not name a count.
    pub default_replication_factor: usize,
    pub default_index: IndexConfig,
    pub supervision: SupervisionPolicy,
    /// Messages a partition's mailbox holds before writers get an "overloaded" error.
    pub partition_mailbox: usize,
    /// Requests a collection coordinator holds before callers get an "overloaded" error.
    pub collection_mailbox: usize,
    /// How long a search waits for each partition before answering without it.
    pub search_timeout: Duration,
    /// How long a write with `wait` waits for its partitions to apply it.
    pub write_timeout: Duration,
    /// When some (not all) partitions miss the deadline or have failed: `true` answers with
    /// the others' hits and names the missing partitions; `false` (the default) fails the
    /// search with a retryable error. Off by default because Qdrant clients read only the
    /// hits and could not tell an incomplete answer from a complete one.
    pub allow_partial_results: bool,
    /// Most points in one write request.
    pub max_batch: usize,
    /// Largest `limit` (+ `offset`) a search may ask for.
    pub max_limit: usize,
    /// Write-ahead log and snapshot settings of databases opened on a directory.
    pub storage: StorageOptions,
}

/// How a durable partition logs and snapshots (the server's `storage` section).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageOptions {
    /// A partition writes a snapshot (and then drops the log it covers) once this many bytes
    /// were logged since its last snapshot.
    pub snapshot_wal_bytes: u64,
    /// ... or once this much time passed since its last snapshot, if it was written to since.
    #[serde(with = "humantime_serde")]
    pub snapshot_interval: Duration,
    /// Size of a WAL segment file before the log rolls over to a new one.
    pub wal_segment_bytes: u64,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            snapshot_wal_bytes: 64 << 20,
            snapshot_interval: Duration::from_secs(600),
            wal_segment_bytes: 64 << 20,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            default_partitions: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            default_replication_factor: 1,
            default_index: IndexConfig::default(),
            supervision: SupervisionPolicy::default(),
            partition_mailbox: 1024,
            collection_mailbox: 4096,
            search_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(60),
            allow_partial_results: false,
            max_batch: 10_000,
            max_limit: 10_000,
            storage: StorageOptions::default(),
        }
    }
}
