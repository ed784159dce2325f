//! The CollectionActor: routes writes, scatters searches, gathers and merges.
//!
//! A coordinator task per collection owns the collection's partition handles. It never
//! computes: it checks that every partition a request needs can take it, sends, and hands
//! the waiting to a short-lived task, so one slow partition never blocks the coordinator.
//!
//! Rules it keeps:
//! * A write goes to the partition `id.partition(n)` (a stable hash); writes from one
//!   caller reach a partition in the order they were sent.
//! * A multi-partition write is sent only when every partition involved has room in its
//!   mailbox; otherwise the caller gets "overloaded" and nothing was sent.
//! * A search waits for each partition at most `search_timeout`. Partitions that fail,
//!   are stopped or miss the deadline are named in the answer's `missing_partitions`
//!   (partial result) when `allow_partial_results` holds and at least one partition
//!   answered; otherwise the search fails with a retryable error. It never hangs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout_at, Instant};

use ametist_core::filter::Filter;
use ametist_core::payload_index::FieldType;
use ametist_core::sparse::{SparseModifier, SparseStats, SparseVector};
use ametist_core::text::fusion;
use ametist_core::text::{CorpusStats, TextIndex, TextIndexConfig, Tokenizer};
use ametist_core::{topk, Metric, PointId};

use crate::config::MAX_PARTITIONS;
use crate::config::{CollectionConfig, EngineConfig};
use crate::error::EngineError;
use crate::external::{LocalCopies, PartitionProvider};
use crate::messages::{
    DeleteVector, Fault, FilterAction, IndexStats, InsertVector, MissingPartition, NamedVectors, PartitionMsg,
    PartitionRestore, PartitionSnapshot, RebuildIndex, Record, Reply, ScoredDoc, ScrollRequest, SearchRequest,
    SearchResult, SparseSearchRequest, TextSearchRequest, UpdateMode, UpdateVector, WriteAck, WriteCondition, WriteOp,
};
use crate::partition::{spawn_partition, PartitionInfo, PartitionRef, PartitionSpec};
use crate::snapshots::{self, SnapshotDescription};
pub use crate::spec::CollectionSpec;
use crate::spec::{CollectionSettings, ShardKey, ShardKeyEntry, ShardingMethod, StrictModeConfig};
use crate::store::{DurableStore, MemoryStore, PartitionStore};
use crate::supervisor::ActorState;

/// What a collection holds, summed over its partitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionInfo {
    pub spec: CollectionSpec,
    pub points: usize,
    pub index_bytes: u64,
    pub partitions: Vec<PartitionInfo>,
    /// Indexed payload fields: type and points with a value there (summed over partitions).
    pub payload_schema: BTreeMap<String, (FieldType, usize)>,
    /// Full-text indexed fields: points indexed there (summed over partitions).
    pub text_schema: BTreeMap<String, usize>,
}

/// Messages the coordinator understands.
/// Writes and point reads carry the partitions they may touch, resolved by the handle from
/// its shard-key scope: `groups` are routed to separately (one per shard key, or one of
/// every partition for auto sharding), `parts` are all sent the message.
enum CollectionMsg {
    Write {
        ops: Vec<WriteOp>,
        wait: bool,
        groups: Vec<Arc<Vec<PartitionRef>>>,
        reply: Reply<WriteAck>,
    },
    Get {
        ids: Vec<PointId>,
        with_payload: bool,
        with_vector: bool,
        groups: Vec<Arc<Vec<PartitionRef>>>,
        reply: Reply<Vec<Record>>,
    },
    Stats {
        reply: Reply<Vec<(PartitionInfo, Option<IndexStats>)>>,
    },
    Scroll {
        req: ScrollRequest,
        parts: Arc<Vec<PartitionRef>>,
        reply: Reply<Vec<Vec<Record>>>,
    },
    Count {
        filter: Option<Filter>,
        parts: Arc<Vec<PartitionRef>>,
        reply: Reply<Vec<usize>>,
    },
    FieldIndex {
        key: String,
        kind: Option<FieldType>,
        reply: Reply<Vec<()>>,
    },
    TextIndex {
        key: String,
        config: TextIndexConfig,
        reply: Reply<Vec<()>>,
    },
    Rebuild {
        reply: Reply<Vec<IndexStats>>,
    },
    Fault {
        partition: usize,
        fault: Fault,
        reply: Reply<()>,
    },
    Stop {
        reply: oneshot::Sender<()>,
    },
}

/// A BM25 query of one text-indexed payload field.
#[derive(Debug, Clone, PartialEq)]
pub struct TextQuery {
    pub field: String,
    pub text: String,
    pub k: usize,
    pub offset: usize,
    pub filter: Option<Filter>,
    pub with_payload: bool,
    pub with_vector: bool,
}

/// A sparse-vector query of one named sparse vector (dot product, higher is better).
#[derive(Debug, Clone, PartialEq)]
pub struct SparseQuery {
    pub name: String,
    pub vector: SparseVector,
    pub k: usize,
    pub offset: usize,
    pub filter: Option<Filter>,
    pub with_payload: bool,
    pub with_vector: bool,
    /// Only hits scoring at least this much.
    pub score_threshold: Option<f32>,
}

/// One branch of a hybrid query.
#[derive(Debug, Clone, PartialEq)]
pub enum Branch {
    /// Dense nearest neighbours (unnamed or named with `using`).
    Vector(SearchRequest),
    /// BM25 over a text-indexed payload field.
    Text(TextQuery),
    /// Sparse dot product over a named sparse vector.
    Sparse(SparseQuery),
}

/// How a hybrid query combines its branches (Qdrant's fusion queries).
#[derive(Debug, Clone, PartialEq)]
pub enum Fusion {
    /// Reciprocal rank fusion: `sum 1 / (k + rank)`, rank 0-based, `k = 2` as in Qdrant.
    Rrf,
    /// Qdrant's parametrised RRF (`{"rrf": {"k", "weights"}}`): `sum w_i / (k + rank_i)`;
    /// `weights` has one weight per branch (all 1 when empty).
    WeightedRrf { k: f32, weights: Vec<f32> },
    /// Distribution-based score fusion: each list normalised by mean ± 3 std, then summed.
    Dbsf,
}

/// The points a payload update applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Ids(Vec<PointId>),
    Filter(Filter),
}

/// A write checked and prepared against a collection (vectors checked and normalised,
/// batch sizes and names checked) but not applied: [`Collection::apply`] applies it. A
/// batch of operations (`batch_update_points`) prepares every one before applying the
/// first, so bad input anywhere changes nothing.
#[derive(Debug, Clone)]
pub struct PreparedWrite {
    ops: Vec<WriteOp>,
    /// Points that must exist when the write is applied.
    must_exist: Vec<PointId>,
    effect: Existence,
}

/// What a prepared write does to the existence of points, as far as it is known before it
/// runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Existence {
    /// Every point it names exists afterwards (an upsert that may insert).
    Creates(Vec<PointId>),
    /// None of the points it names exists afterwards (a delete by ids).
    Deletes(Vec<PointId>),
    /// Existence does not change.
    Keeps,
    /// Unknown until it runs (a delete by filter).
    Unknown,
}

impl PreparedWrite {
    /// Points that must exist when the write is applied.
    pub fn must_exist(&self) -> &[PointId] {
        &self.must_exist
    }

    /// What the write does to the existence of points.
    pub fn effect(&self) -> &Existence {
        &self.effect
    }
}

/// Where a durable collection keeps its files.
#[derive(Debug, Clone)]
pub(crate) struct CollectionStorage {
    /// `<data_dir>/collections/<name>`: `collection.json` and `partitions/<id>/{wal,snapshots}`.
    pub dir: PathBuf,
    /// `<data_dir>/snapshots/<name>`: the collection's snapshot files (`*.snapshot`).
    pub snapshots_dir: PathBuf,
}

/// The partitions a collection runs: all of them in id order, and for custom sharding the
/// ones of each shard key in routing order. Shared by the handles and the coordinator, and
/// replaced as a whole when a shard key is added or removed.
#[derive(Clone, Default)]
struct Topology {
    all: Arc<Vec<PartitionRef>>,
    keys: BTreeMap<ShardKey, Arc<Vec<PartitionRef>>>,
}

/// Partition threads, joined when the collection stops or a shard key is deleted.
type Threads = Arc<std::sync::Mutex<Vec<(usize, JoinHandle<()>)>>>;

/// A cheap, cloneable handle to a running collection.
///
/// A handle may be scoped to shard keys ([`Collection::with_shard_keys`]): its reads see
/// only those keys' partitions and its writes go to them. An unscoped handle reads every
/// partition and, in a custom-sharded collection, cannot write points.
#[derive(Clone)]
pub struct Collection {
    spec: Arc<CollectionSpec>,
    topology: Arc<RwLock<Topology>>,
    settings: Arc<RwLock<CollectionSettings>>,
    threads: Threads,
    /// The shard keys this handle reads and writes (`None`: every partition).
    scope: Option<Arc<Vec<ShardKey>>>,
    /// Serialises shard-key changes (they start and stop partitions).
    keys_lock: Arc<tokio::sync::Mutex<()>>,
    /// Indexed payload fields; shared with the partitions (see `PartitionSpec`).
    schema: Arc<RwLock<BTreeMap<String, FieldType>>>,
    /// Full-text indexed fields, shared the same way.
    text_schema: Arc<RwLock<BTreeMap<String, TextIndexConfig>>>,
    engine: Arc<EngineConfig>,
    tx: mpsc::Sender<CollectionMsg>,
    /// This process's copy of each partition it holds, by id (the same handle as in the
    /// topology unless a front routes the partition's messages).
    locals: LocalCopies,
    storage: Option<Arc<CollectionStorage>>,
    /// Serialises rewrites of `collection.json`: concurrent index changes (two clients, or
    /// a remote coordinator's calls to two partitions here) would otherwise race on its
    /// temp file.
    meta_lock: Arc<std::sync::Mutex<()>>,
}

impl Collection {
    /// Checks a collection's configuration and applies the engine's defaults.
    pub fn resolve(
        name: &str,
        config: &CollectionConfig,
        engine: &EngineConfig,
    ) -> Result<CollectionSpec, EngineError> {
        let spec = CollectionSpec {
            name: name.to_string(),
            dim: config.dim,
            metric: config.metric,
            partitions: config.partitions.unwrap_or(engine.default_partitions),
            index: config.index.unwrap_or(engine.default_index),
            vectors: config.vectors.clone(),
            sparse_vectors: config.sparse_vectors.clone(),
            replication: crate::spec::Replication {
                factor: config.replication_factor.unwrap_or(engine.default_replication_factor),
                write_consistency: config.write_consistency_factor.unwrap_or(1),
            },
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Starts a collection's partitions and coordinator. Must be called within a tokio
    /// runtime. With `storage`, every partition recovers from (and logs to) its directory;
    /// without, partitions keep their points in memory.
    pub(crate) fn start(
        spec: CollectionSpec,
        engine: Arc<EngineConfig>,
        storage: Option<CollectionStorage>,
        settings: CollectionSettings,
        provider: Option<&Arc<dyn PartitionProvider>>,
    ) -> Result<Self, EngineError> {
        Self::start_with(spec, engine, storage, crate::spec::Schemas::default(), settings, provider)
    }

    /// [`Collection::start`] with the payload and text index schemas it had.
    pub(crate) fn start_with(
        spec: CollectionSpec,
        engine: Arc<EngineConfig>,
        storage: Option<CollectionStorage>,
        schemas: crate::spec::Schemas,
        settings: CollectionSettings,
        provider: Option<&Arc<dyn PartitionProvider>>,
    ) -> Result<Self, EngineError> {
        let spec = Arc::new(spec);
        let schema = Arc::new(RwLock::new(schemas.fields));
        let text_schema = Arc::new(RwLock::new(schemas.text));
        let ids = settings.partition_ids(&spec);
        let mut refs = Vec::with_capacity(ids.len());
        let mut threads = Vec::with_capacity(ids.len());
        let locals = LocalCopies::default();
        for &id in &ids {
            // A partition with no copy here lives on other nodes: no actor, no files.
            if provider.is_none_or(|p| p.holds(&spec, id)) {
                let (r, t) = spawn_one(&spec, &engine, storage.as_ref(), &schema, &text_schema, id);
                locals.insert(id, r);
                threads.push((id, t));
            }
        }
        for id in ids {
            match (provider.and_then(|p| p.front(&spec, id, engine.partition_mailbox, &locals)), locals.get(id)) {
                (Some(front), _) => refs.push(front),
                (None, Some(local)) => refs.push(local),
                (None, None) => {
                    return Err(EngineError::Internal(format!("partition {id} has no copy here and no front")))
                }
            }
        }
        let keys = settings
            .shard_keys
            .iter()
            .map(|k| {
                let parts = k.partitions.iter().filter_map(|id| refs.iter().find(|r| r.id() == *id).cloned());
                (k.key.clone(), Arc::new(parts.collect::<Vec<_>>()))
            })
            .collect();
        let topology = Arc::new(RwLock::new(Topology { all: Arc::new(refs), keys }));
        let threads: Threads = Arc::new(std::sync::Mutex::new(threads));
        let (tx, rx) = mpsc::channel(engine.collection_mailbox.max(1));
        // Durable partitions are woken up regularly so that a time-based snapshot is taken
        // even when no write arrives.
        let tick = storage.as_ref().map(|_| {
            engine.storage.snapshot_interval.div_f64(4.0).clamp(Duration::from_secs(1), Duration::from_secs(60))
        });
        let actor =
            CollectionActor { topology: topology.clone(), threads: threads.clone(), engine: engine.clone(), tick };
        tokio::spawn(actor.run(rx));
        Ok(Collection {
            spec,
            topology,
            settings: Arc::new(RwLock::new(settings)),
            threads,
            scope: None,
            keys_lock: Arc::default(),
            schema,
            text_schema,
            engine,
            tx,
            locals,
            storage: storage.map(Arc::new),
            meta_lock: Arc::default(),
        })
    }

    /// The handle of partition `id`, local or external (a node serving its partitions to
    /// other nodes sends them messages through it).
    pub fn partition(&self, id: usize) -> Option<PartitionRef> {
        self.all_partitions().iter().find(|p| p.id() == id).cloned()
    }

    /// Every partition the collection runs, in id order.
    fn all_partitions(&self) -> Arc<Vec<PartitionRef>> {
        self.topology.read().expect("the topology lock is never held across a panic").all.clone()
    }

    /// The collection's sharding, strict mode and metadata.
    pub fn settings(&self) -> CollectionSettings {
        self.settings.read().expect("the settings lock is never held across a panic").clone()
    }

    /// The shard keys this handle is scoped to (`None`: every partition).
    pub fn scope(&self) -> Option<&[ShardKey]> {
        self.scope.as_deref().map(Vec::as_slice)
    }

    /// This collection seen through shard keys: reads see only the points of `keys`, and
    /// writes go to them (each point to every key named). `None` is the whole collection.
    /// Keys are for custom-sharded collections only, and each must exist.
    pub fn with_shard_keys(&self, keys: Option<Vec<ShardKey>>) -> Result<Collection, EngineError> {
        let Some(mut keys) = keys else { return Ok(Collection { scope: None, ..self.clone() }) };
        if self.settings().sharding_method != ShardingMethod::Custom {
            return Err(EngineError::invalid(format!(
                "collection `{}` does not use custom sharding: a shard key can not be given (create it with \
                 sharding_method: custom)",
                self.spec.name
            )));
        }
        if keys.is_empty() {
            return Err(EngineError::invalid("the shard key selector is empty: name at least one shard key"));
        }
        keys.dedup();
        self.key_groups(&keys)?;
        Ok(Collection { scope: Some(Arc::new(keys)), ..self.clone() })
    }

    /// The partitions of each of `keys`, in the order given.
    fn key_groups(&self, keys: &[ShardKey]) -> Result<Vec<Arc<Vec<PartitionRef>>>, EngineError> {
        let topology = self.topology.read().expect("the topology lock is never held across a panic");
        keys.iter()
            .map(|k| {
                topology.keys.get(k).cloned().ok_or_else(|| {
                    EngineError::invalid(format!("Shard key {k} does not exist in collection `{}`", self.spec.name))
                })
            })
            .collect()
    }

    /// The partitions a read through this handle covers.
    fn read_parts(&self) -> Result<Arc<Vec<PartitionRef>>, EngineError> {
        match &self.scope {
            None => Ok(self.all_partitions()),
            Some(keys) => {
                let groups = self.key_groups(keys)?;
                if groups.len() == 1 {
                    return Ok(groups.into_iter().next().expect("one group"));
                }
                let mut parts: Vec<PartitionRef> = groups.iter().flat_map(|g| g.iter().cloned()).collect();
                parts.sort_by_key(PartitionRef::id);
                parts.dedup_by_key(|p| p.id());
                Ok(Arc::new(parts))
            }
        }
    }

    /// The groups a write through this handle is routed within: one per shard key, or
    /// all partitions for auto sharding. Unscoped, a custom-sharded collection takes only
    /// deletes and changes by filter (applied in every key, as reads see every key); a
    /// write that places or changes a point by id needs a key.
    fn write_groups(&self, ops: &[WriteOp]) -> Result<Vec<Arc<Vec<PartitionRef>>>, EngineError> {
        match &self.scope {
            Some(keys) => self.key_groups(keys),
            None if self.settings().sharding_method == ShardingMethod::Custom => {
                if ops.iter().all(|op| matches!(op, WriteOp::Delete(_) | WriteOp::ByFilter { .. })) {
                    return self.read_groups();
                }
                Err(EngineError::invalid(format!(
                    "Shard key not specified: collection `{}` uses custom sharding, so a write of points names \
                     their shard key",
                    self.spec.name
                )))
            }
            None => Ok(vec![self.all_partitions()]),
        }
    }

    /// Adds a shard key with `shards` partitions (unset: the collection's `shard_number`)
    /// to a custom-sharded collection. The new partitions are running and the key is in
    /// `collection.json` when this returns.
    pub async fn create_shard_key(&self, key: ShardKey, shards: Option<usize>) -> Result<(), EngineError> {
        let _one = self.keys_lock.lock().await;
        let settings = self.settings();
        if settings.sharding_method != ShardingMethod::Custom {
            return Err(EngineError::invalid(format!(
                "collection `{}` does not use custom sharding: shard keys can not be created (create it with \
                 sharding_method: custom)",
                self.spec.name
            )));
        }
        if settings.shard_keys.iter().any(|k| k.key == key) {
            return Err(EngineError::invalid(format!("Shard key {key} already exists")));
        }
        let n = shards.unwrap_or(self.spec.partitions);
        let used = settings.partition_ids(&self.spec);
        if n == 0 || n > MAX_PARTITIONS || used.len() + n > MAX_PARTITIONS {
            return Err(EngineError::invalid(format!(
                "shards_number must be between 1 and {}, got {n} (a collection has at most {MAX_PARTITIONS} \
                 partitions, {} are in use)",
                MAX_PARTITIONS.saturating_sub(used.len()).min(MAX_PARTITIONS),
                used.len()
            )));
        }
        let first = used.iter().max().map_or(0, |m| m + 1);
        let ids: Vec<usize> = (first..first + n).collect();
        // A key deleted before a crash may have left its partitions' files: they must not
        // come back as this key's points.
        let dirs: Vec<PathBuf> = match &self.storage {
            Some(s) => ids.iter().map(|&id| partition_dir(&s.dir, id)).collect(),
            None => Vec::new(),
        };
        let leftovers = dirs.clone();
        blocking(move || leftovers.iter().try_for_each(|d| crate::db::remove_dir_durably(d))).await?;
        let mut started = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for &id in &ids {
            let (r, t) =
                spawn_one(&self.spec, &self.engine, self.storage.as_deref(), &self.schema, &self.text_schema, id);
            started.push(r);
            threads.push((id, t));
        }
        let undo = |started: Vec<PartitionRef>, threads: Vec<(usize, JoinHandle<()>)>, dirs: Vec<PathBuf>| async move {
            stop_partitions(&started, threads).await;
            let _ = blocking(move || dirs.iter().try_for_each(|d| crate::db::remove_dir_durably(d))).await;
        };
        let unable = settle(&started).await;
        if !unable.is_empty() {
            undo(started, threads, dirs).await;
            return Err(EngineError::StorageUnavailable {
                partition: None,
                message: format!(
                    "shard key {key} was not created: its partitions cannot start ({}); nothing was created",
                    unable.join("; ")
                ),
            });
        }
        let mut next = settings.clone();
        next.shard_keys.push(ShardKeyEntry { key: key.clone(), partitions: ids });
        if let Err(e) = self.persist_settings(next).await {
            undo(started, threads, dirs).await;
            return Err(e);
        }
        for r in &started {
            self.locals.insert(r.id(), r.clone());
        }
        {
            let mut topology = self.topology.write().expect("the topology lock is never held across a panic");
            let mut all: Vec<PartitionRef> = topology.all.iter().cloned().chain(started.iter().cloned()).collect();
            all.sort_by_key(PartitionRef::id);
            topology.all = Arc::new(all);
            topology.keys.insert(key.clone(), Arc::new(started));
        }
        self.threads.lock().unwrap_or_else(|e| e.into_inner()).extend(threads);
        tracing::info!(collection = %self.spec.name, key = %key, partitions = n, "created shard key");
        Ok(())
    }

    /// Removes a shard key and every point in it: its partitions are stopped and their
    /// files removed. False when the key does not exist.
    pub async fn delete_shard_key(&self, key: &ShardKey) -> Result<bool, EngineError> {
        let _one = self.keys_lock.lock().await;
        let settings = self.settings();
        if settings.sharding_method != ShardingMethod::Custom {
            return Err(EngineError::invalid(format!(
                "collection `{}` does not use custom sharding: it has no shard keys",
                self.spec.name
            )));
        }
        let Some(entry) = settings.shard_keys.iter().find(|k| &k.key == key).cloned() else { return Ok(false) };
        let mut next = settings.clone();
        next.shard_keys.retain(|k| &k.key != key);
        // Durable first: after a crash the key is gone, and its leftover files are removed
        // at the next start.
        self.persist_settings(next).await?;
        let removed = {
            let mut topology = self.topology.write().expect("the topology lock is never held across a panic");
            let removed = topology.keys.remove(key).unwrap_or_default();
            let all: Vec<PartitionRef> =
                topology.all.iter().filter(|p| !entry.partitions.contains(&p.id())).cloned().collect();
            topology.all = Arc::new(all);
            removed
        };
        self.locals.retain(|id, _| !entry.partitions.contains(id));
        let threads: Vec<(usize, JoinHandle<()>)> = {
            let mut all = self.threads.lock().unwrap_or_else(|e| e.into_inner());
            let (mine, rest): (Vec<_>, Vec<_>) =
                std::mem::take(&mut *all).into_iter().partition(|(id, _)| entry.partitions.contains(id));
            *all = rest;
            mine
        };
        stop_partitions(&removed, threads).await;
        if let Some(s) = &self.storage {
            let dirs: Vec<PathBuf> = entry.partitions.iter().map(|&id| partition_dir(&s.dir, id)).collect();
            blocking(move || dirs.iter().try_for_each(|d| crate::db::remove_dir_durably(d))).await?;
        }
        tracing::info!(collection = %self.spec.name, key = %key, "deleted shard key");
        Ok(true)
    }

    /// The shard keys of a custom-sharded collection, in the order they were created.
    pub fn shard_keys(&self) -> Vec<ShardKey> {
        self.settings().shard_keys.into_iter().map(|k| k.key).collect()
    }

    /// Changes strict mode (merged field by field into the current one) and metadata
    /// (keys set, a `null` value removes its key), durably.
    pub async fn update_settings(
        &self,
        strict_mode: Option<StrictModeConfig>,
        metadata: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<(), EngineError> {
        let _one = self.keys_lock.lock().await;
        let mut next = self.settings();
        if let Some(strict) = strict_mode {
            next.strict_mode = Some(next.strict_mode.unwrap_or_default().merged(&strict));
        }
        if let Some(metadata) = metadata {
            for (k, v) in metadata {
                if v.is_null() {
                    next.metadata.remove(&k);
                } else {
                    next.metadata.insert(k, v);
                }
            }
        }
        self.persist_settings(next).await
    }

    /// Makes `next` the collection's settings: written to `collection.json` first (durable
    /// collections), then published.
    async fn persist_settings(&self, next: CollectionSettings) -> Result<(), EngineError> {
        let previous = std::mem::replace(
            &mut *self.settings.write().expect("the settings lock is never held across a panic"),
            next,
        );
        if let Err(e) = self.persist_schemas().await {
            *self.settings.write().expect("the settings lock is never held across a panic") = previous;
            return Err(e);
        }
        Ok(())
    }

    /// This process's own copy of partition `id`, when it holds one: what the node-to-node
    /// service reads from and ships records to.
    pub fn local_copy(&self, id: usize) -> Option<PartitionRef> {
        self.locals.get(id)
    }

    /// The partitions this process holds a copy of.
    pub fn local_copies(&self) -> Vec<usize> {
        self.locals.ids()
    }

    /// Starts this process's copy of partition `id` (the cluster placed a new copy here):
    /// it opens the partition's files (an empty partition when there are none) and
    /// recovers from them; the partition's front finds it from then on. Returns once the
    /// copy runs; nothing changes when it runs already.
    pub async fn add_copy(&self, id: usize) -> Result<(), EngineError> {
        let _one = self.keys_lock.lock().await;
        if self.locals.get(id).is_some() {
            return Ok(());
        }
        if !self.settings().partition_ids(&self.spec).contains(&id) {
            return Err(EngineError::invalid(format!("collection `{}` has no partition {id}", self.spec.name)));
        }
        let (r, t) = spawn_one(&self.spec, &self.engine, self.storage.as_deref(), &self.schema, &self.text_schema, id);
        let unable = settle(std::slice::from_ref(&r)).await;
        if !unable.is_empty() {
            stop_partitions(std::slice::from_ref(&r), vec![(id, t)]).await;
            return Err(EngineError::StorageUnavailable {
                partition: Some(id),
                message: format!("the new copy cannot start: {}", unable.join("; ")),
            });
        }
        self.locals.insert(id, r);
        self.threads.lock().unwrap_or_else(|e| e.into_inner()).push((id, t));
        tracing::info!(collection = %self.spec.name, partition = id, "started a copy of the partition here");
        Ok(())
    }

    /// Stops this process's copy of partition `id` and removes its files (the cluster
    /// placed the copy elsewhere). Also removes files a copy left when it was removed while
    /// this process was down. Returns whether a copy was running.
    pub async fn remove_copy(&self, id: usize) -> Result<bool, EngineError> {
        let _one = self.keys_lock.lock().await;
        let removed = self.locals.remove(id);
        let threads: Vec<(usize, JoinHandle<()>)> = {
            let mut all = self.threads.lock().unwrap_or_else(|e| e.into_inner());
            let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut *all).into_iter().partition(|(t, _)| *t == id);
            *all = rest;
            mine
        };
        if let Some(r) = &removed {
            stop_partitions(std::slice::from_ref(r), threads).await;
            tracing::info!(collection = %self.spec.name, partition = id, "stopped and removed the copy of the partition here");
        }
        if let Some(s) = &self.storage {
            let dir = partition_dir(&s.dir, id);
            blocking(move || if dir.exists() { crate::db::remove_dir_durably(&dir) } else { Ok(()) }).await?;
        }
        Ok(removed.is_some())
    }

    /// Waits until no partition is still recovering (each is running or stopped). Returns
    /// the partitions that stopped, with their reasons.
    pub async fn wait_recovered(&self) -> Vec<PartitionInfo> {
        self.wait_settled().await.into_iter().filter(|i| i.state == ActorState::Stopped).collect()
    }

    /// Waits until no partition is still recovering, and returns how every partition is
    /// (running, read-only or stopped).
    pub async fn wait_settled(&self) -> Vec<PartitionInfo> {
        loop {
            let infos: Vec<PartitionInfo> = self.all_partitions().iter().map(|p| p.info()).collect();
            if infos.iter().all(|i| i.state != ActorState::Recovering) {
                return infos;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// True when the collection's writes survive a restart of the process.
    pub fn is_durable(&self) -> bool {
        self.storage.is_some()
    }

    /// Writes a snapshot of the whole collection into one file under
    /// `<data_dir>/snapshots/<collection>/` and describes it (Qdrant's shape). Each
    /// partition contributes its state at the moment it handles the request (after every
    /// write it acknowledged before); there is no cross-partition point in time.
    pub async fn create_snapshot(&self) -> Result<SnapshotDescription, EngineError> {
        let storage = self.snapshot_storage()?;
        if self.settings().sharding_method == ShardingMethod::Custom {
            return Err(EngineError::invalid(
                "collection snapshots are not supported yet for a collection with custom sharding (shard keys)",
            ));
        }
        // A partition served from elsewhere (another node) writes its image here too: its
        // front fetches the image from the copy that serves it.
        let partitions = self.all_partitions();
        let dir = storage.snapshots_dir.clone();
        let name = snapshots::new_snapshot_name(&self.spec.name, &dir);
        let tmp_dir = dir.clone();
        tokio::task::spawn_blocking(move || std::fs::create_dir_all(&tmp_dir))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .map_err(|e| EngineError::io(format_args!("cannot create {}", dir.display()), &e))?;
        let parts: Vec<PathBuf> = (0..self.spec.partitions).map(|i| dir.join(format!(".{name}.part{i}"))).collect();
        let mut pending = Vec::with_capacity(parts.len());
        for (p, path) in partitions.iter().zip(&parts) {
            let (tx, rx) = oneshot::channel();
            let msg = PartitionMsg::Snapshot(PartitionSnapshot { path: path.to_string_lossy().into_owned() }, tx);
            if let Err(e) = p.try_send(msg) {
                snapshots::remove_quietly(&parts);
                return Err(e);
            }
            pending.push((p.clone(), rx));
        }
        let mut failure = None;
        for (p, rx) in pending {
            match rx.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => failure = failure.or(Some(p.unavailable())),
            }
        }
        if let Some(e) = failure {
            snapshots::remove_quietly(&parts);
            return Err(e);
        }
        let spec = (*self.spec).clone();
        let target = dir.join(&name);
        tokio::task::spawn_blocking(move || {
            let result = snapshots::write_archive(&target, &spec, &parts);
            snapshots::remove_quietly(&parts);
            result
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
    }

    /// The collection's snapshot files, oldest first.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotDescription>, EngineError> {
        snapshots::list(&self.snapshot_storage()?.snapshots_dir)
    }

    /// The file of a snapshot, to download it. Only names that [`Collection::list_snapshots`]
    /// shows are accepted.
    pub fn snapshot_path(&self, name: &str) -> Result<PathBuf, EngineError> {
        snapshots::path_of(&self.snapshot_storage()?.snapshots_dir, name)
    }

    /// Deletes a snapshot file; false when there was none of that name.
    pub fn delete_snapshot(&self, name: &str) -> Result<bool, EngineError> {
        let dir = &self.snapshot_storage()?.snapshots_dir;
        match snapshots::path_of(dir, name) {
            Ok(path) => {
                std::fs::remove_file(&path)
                    .and_then(|()| crate::partition::sync_dir(dir))
                    .map_err(|e| EngineError::Internal(format!("cannot delete {}: {e}", path.display())))?;
                Ok(true)
            }
            Err(EngineError::InvalidInput(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Where partition `id`'s own snapshots (Qdrant's shard snapshots) are kept:
    /// `<data_dir>/snapshots/<collection>/shards/<id>/`.
    fn shard_snapshots_dir(&self, id: usize) -> Result<PathBuf, EngineError> {
        let dir = self.snapshot_storage()?.snapshots_dir.join("shards").join(id.to_string());
        self.partition(id).ok_or_else(|| {
            EngineError::NotFound(format!("shard {id} of collection `{}` does not exist", self.spec.name))
        })?;
        Ok(dir)
    }

    /// Writes partition `id`'s image (its points, payloads and graph, the format of its
    /// durable snapshots) as a shard snapshot and describes it.
    pub async fn create_shard_snapshot(&self, id: usize) -> Result<SnapshotDescription, EngineError> {
        let dir = self.shard_snapshots_dir(id)?;
        let make = dir.clone();
        tokio::task::spawn_blocking(move || std::fs::create_dir_all(&make))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .map_err(|e| EngineError::io(format_args!("cannot create {}", dir.display()), &e))?;
        let name = snapshots::new_snapshot_name(&format!("{}-shard-{id}", self.spec.name), &dir);
        let path = dir.join(&name);
        self.partition_snapshot(id, PartitionSnapshot { path: path.to_string_lossy().into_owned() }).await?;
        snapshots::list(&dir)?
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| EngineError::Internal(format!("shard snapshot {name} vanished")))
    }

    /// Partition `id`'s shard snapshots, oldest first.
    pub fn list_shard_snapshots(&self, id: usize) -> Result<Vec<SnapshotDescription>, EngineError> {
        snapshots::list(&self.shard_snapshots_dir(id)?)
    }

    /// The file of one of partition `id`'s shard snapshots (only names the list shows).
    pub fn shard_snapshot_path(&self, id: usize, name: &str) -> Result<PathBuf, EngineError> {
        snapshots::path_of(&self.shard_snapshots_dir(id)?, name)
    }

    /// Deletes a shard snapshot; false when there was none of that name.
    pub fn delete_shard_snapshot(&self, id: usize, name: &str) -> Result<bool, EngineError> {
        let dir = self.shard_snapshots_dir(id)?;
        match snapshots::path_of(&dir, name) {
            Ok(path) => {
                std::fs::remove_file(&path)
                    .and_then(|()| crate::partition::sync_dir(&dir))
                    .map_err(|e| EngineError::Internal(format!("cannot delete {}: {e}", path.display())))?;
                Ok(true)
            }
            Err(EngineError::InvalidInput(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces partition `id`'s points with a shard snapshot's (a partition image file).
    /// Every point of the image must route to this partition (an image of another
    /// partition, or of a collection with another partition count, is refused); the
    /// partition then checks the vectors against its fields and records the new state
    /// durably before it changes (see [`PartitionRestore`]).
    pub async fn recover_shard_snapshot(&self, id: usize, path: &Path) -> Result<IndexStats, EngineError> {
        self.shard_snapshots_dir(id)?;
        let settings = self.settings();
        // The group this partition routes within: its shard key's partitions, or all.
        let (place, count) = match settings.shard_keys.iter().find(|k| k.partitions.contains(&id)) {
            Some(k) => (k.partitions.iter().position(|&p| p == id).unwrap_or(0), k.partitions.len()),
            None => (id, self.spec.partitions),
        };
        let file = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let bad = |m: String| EngineError::invalid(format!("shard snapshot {name}: {m}"));
            let bytes = std::fs::read(&file).map_err(|e| bad(e.to_string()))?;
            let image = crate::codec::PartitionImage::read(&bytes).map_err(|e| bad(e.to_string()))?;
            match image.entries.iter().find(|e| e.id.partition(count) != place) {
                Some(e) => Err(bad(format!("point {} does not belong to shard {id}", e.id))),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
        self.partition_restore(id, PartitionRestore { path: path.to_string_lossy().into_owned() }).await
    }

    /// Sends [`PartitionSnapshot`] to one partition: it writes its image (points, payloads,
    /// index graph; the durable snapshot format) to the file `req.path`.
    pub async fn partition_snapshot(
        &self,
        partition: usize,
        req: PartitionSnapshot,
    ) -> Result<IndexStats, EngineError> {
        self.ask_partition(partition, |tx| PartitionMsg::Snapshot(req, tx)).await
    }

    /// Sends [`PartitionRestore`] to one partition: it replaces its points with the image
    /// at `req.path`, validated completely first, and records the new state durably.
    pub async fn partition_restore(&self, partition: usize, req: PartitionRestore) -> Result<IndexStats, EngineError> {
        self.ask_partition(partition, |tx| PartitionMsg::Restore(req, tx)).await
    }

    async fn ask_partition<T>(
        &self,
        partition: usize,
        msg: impl FnOnce(Reply<T>) -> PartitionMsg,
    ) -> Result<T, EngineError> {
        let p = self.partition(partition).ok_or_else(|| {
            EngineError::invalid(format!(
                "partition {partition} does not exist (the collection has {})",
                self.spec.partitions
            ))
        })?;
        let (tx, rx) = oneshot::channel();
        p.try_send(msg(tx))?;
        rx.await.map_err(|_| p.unavailable())?
    }

    /// Rewrites `collection.json` with the current index schemas (durable collections), so
    /// that payload and text indexes come back after a restart of the process.
    async fn persist_schemas(&self) -> Result<(), EngineError> {
        let Some(storage) = self.storage.clone() else { return Ok(()) };
        let (fields, text, lock) = (self.schema.clone(), self.text_schema.clone(), self.meta_lock.clone());
        let settings = self.settings.clone();
        let spec = (*self.spec).clone();
        tokio::task::spawn_blocking(move || {
            let _one_writer = lock.lock().unwrap_or_else(|e| e.into_inner());
            // Read under the lock, so that the last write holds the latest schema.
            let schemas = crate::spec::Schemas {
                fields: fields.read().expect("the schema lock is never held across a panic").clone(),
                text: text.read().expect("the schema lock is never held across a panic").clone(),
            };
            let settings = settings.read().expect("the settings lock is never held across a panic").clone();
            crate::spec::write_meta_with(&storage.dir, &spec, &schemas, &settings)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
    }

    fn snapshot_storage(&self) -> Result<&CollectionStorage, EngineError> {
        self.storage
            .as_deref()
            .ok_or_else(|| EngineError::invalid("snapshots need a database opened on a data directory"))
    }

    pub fn spec(&self) -> &CollectionSpec {
        &self.spec
    }

    /// Inserts or replaces points: each point gets exactly the vectors it carries, any
    /// subset of the collection's fields (the unnamed vector is the field `""`). With
    /// `wait`, answers once every point is applied; without, once every point is accepted
    /// into its partition's mailbox.
    pub async fn upsert(&self, points: Vec<InsertVector>, wait: bool) -> Result<WriteAck, EngineError> {
        let w = self.prepare_upsert(points, WriteCondition::default())?;
        self.apply(w, wait).await
    }

    /// An upsert whose points are written only where `when` admits them (Qdrant's
    /// `update_mode` and `update_filter`): judged by the partition that owns each point, in
    /// the same step as the write, so no other write comes between the check and the
    /// write.
    pub async fn upsert_if(
        &self,
        points: Vec<InsertVector>,
        when: WriteCondition,
        wait: bool,
    ) -> Result<WriteAck, EngineError> {
        let w = self.prepare_upsert(points, when)?;
        self.apply(w, wait).await
    }

    /// Replaces the given fields of existing points, keeping their other fields and their
    /// payloads. Everything is checked first: either all of it applies or (bad input) none.
    pub async fn update_vectors(&self, updates: Vec<UpdateVector>, wait: bool) -> Result<WriteAck, EngineError> {
        let w = self.prepare_update_vectors(updates, None)?;
        self.apply(w, wait).await
    }

    /// Removes fields (the unnamed one is `""`) from the points `target` names (which must
    /// exist) or from every point matching its filter.
    pub async fn delete_vectors(
        &self,
        target: Target,
        names: Vec<String>,
        wait: bool,
    ) -> Result<WriteAck, EngineError> {
        let w = self.prepare_delete_vectors(target, names)?;
        self.apply(w, wait).await
    }

    /// Checks and prepares an upsert (vectors checked against the fields, cosine ones
    /// normalised) without applying it.
    pub fn prepare_upsert(
        &self,
        points: Vec<InsertVector>,
        when: WriteCondition,
    ) -> Result<PreparedWrite, EngineError> {
        self.check_batch(points.len())?;
        let mut ops = Vec::with_capacity(points.len());
        let mut creates = Vec::new();
        for (i, mut p) in points.into_iter().enumerate() {
            p.vectors = self
                .prepare_vectors(std::mem::take(&mut p.vectors))
                .map_err(|e| EngineError::invalid(format!("point {} (#{i} in the batch): {e}", p.id)))?;
            if when.mode != UpdateMode::UpdateOnly {
                creates.push(p.id.clone());
            }
            ops.push(if when.is_always() {
                WriteOp::Insert(p)
            } else {
                WriteOp::Conditional { when: when.clone(), op: Box::new(WriteOp::Insert(p)) }
            });
        }
        Ok(PreparedWrite { ops, must_exist: Vec::new(), effect: Existence::Creates(creates) })
    }

    /// Checks and prepares a vector update of existing points; with `filter`, a point that
    /// does not match it (when its partition applies the write) is left as it is.
    pub fn prepare_update_vectors(
        &self,
        updates: Vec<UpdateVector>,
        filter: Option<Filter>,
    ) -> Result<PreparedWrite, EngineError> {
        self.check_batch(updates.len())?;
        let mut ops = Vec::with_capacity(updates.len());
        let mut must_exist = Vec::with_capacity(updates.len());
        for (i, mut u) in updates.into_iter().enumerate() {
            u.vectors = self
                .prepare_vectors(std::mem::take(&mut u.vectors))
                .map_err(|e| EngineError::invalid(format!("point {} (#{i} in the batch): {e}", u.id)))?;
            must_exist.push(u.id.clone());
            ops.push(match &filter {
                None => WriteOp::Update(u),
                // The mode stays `upsert`: a point deleted after the check below is still
                // refused by its partition (an update needs its point), not skipped.
                Some(f) => WriteOp::Conditional {
                    when: WriteCondition { mode: UpdateMode::Upsert, filter: Some(f.clone()) },
                    op: Box::new(WriteOp::Update(u)),
                },
            });
        }
        Ok(PreparedWrite { ops, must_exist, effect: Existence::Keeps })
    }

    /// Checks and prepares the removal of fields from points.
    pub fn prepare_delete_vectors(&self, target: Target, names: Vec<String>) -> Result<PreparedWrite, EngineError> {
        if let Some(n) =
            names.iter().find(|n| self.spec.dense_field(n).is_none() && !self.spec.sparse_vectors.contains_key(*n))
        {
            return Err(unknown_vector(n));
        }
        self.prepare_update_payload(target, FilterAction::DeleteVectors(names))
    }

    /// Checks and prepares a delete by ids or by filter.
    pub fn prepare_delete(&self, target: Target) -> Result<PreparedWrite, EngineError> {
        self.prepare_update_payload(target, FilterAction::Delete)
    }

    /// Checks and prepares `action` on the points `target` names (which must exist, unless
    /// the action deletes them) or on every point matching its filter.
    pub fn prepare_update_payload(&self, target: Target, action: FilterAction) -> Result<PreparedWrite, EngineError> {
        let deletes = matches!(action, FilterAction::Delete);
        match target {
            Target::Filter(filter) => Ok(PreparedWrite {
                ops: vec![WriteOp::ByFilter { filter, action }],
                must_exist: Vec::new(),
                effect: if deletes { Existence::Unknown } else { Existence::Keeps },
            }),
            Target::Ids(ids) => {
                self.check_batch(ids.len())?;
                let ops = ids
                    .iter()
                    .cloned()
                    .map(|id| match &action {
                        FilterAction::Delete => WriteOp::Delete(DeleteVector { id }),
                        FilterAction::SetPayload(p) => WriteOp::SetPayload { id, payload: p.clone() },
                        FilterAction::OverwritePayload(p) => WriteOp::OverwritePayload { id, payload: p.clone() },
                        FilterAction::DeletePayload(keys) => WriteOp::DeletePayload { id, keys: keys.clone() },
                        FilterAction::ClearPayload => WriteOp::ClearPayload { id },
                        FilterAction::DeleteVectors(names) => WriteOp::DeleteVectors { id, names: names.clone() },
                    })
                    .collect();
                Ok(if deletes {
                    PreparedWrite { ops, must_exist: Vec::new(), effect: Existence::Deletes(ids) }
                } else {
                    PreparedWrite { ops, must_exist: ids, effect: Existence::Keeps }
                })
            }
        }
    }

    /// Applies a prepared write: the points it names must exist (checked before any
    /// partition writes: a partition refuses its share of a write naming an absent point,
    /// and the others must not have applied theirs; a point deleted between this check and
    /// the write is still refused by its partition), then the write goes to the partitions.
    pub async fn apply(&self, w: PreparedWrite, wait: bool) -> Result<WriteAck, EngineError> {
        if !w.must_exist.is_empty() {
            self.require_points(&w.must_exist).await?;
        }
        self.write(w.ops, wait).await
    }

    /// Checks vectors against the collection's fields and normalises cosine ones.
    fn prepare_vectors(&self, mut vectors: NamedVectors) -> Result<NamedVectors, EngineError> {
        for (name, v) in vectors.dense.iter_mut() {
            let p = self.spec.dense_field(name).ok_or_else(|| unknown_vector(name))?;
            *v = p.prepare(std::mem::take(v)).map_err(|e| crate::vector_fields::at_field(name, e))?;
        }
        for (name, v) in &vectors.sparse {
            if !self.spec.sparse_vectors.contains_key(name) {
                return Err(unknown_vector(name));
            }
            v.validate().map_err(|e| EngineError::invalid(format!("vector `{name}`: {e}")))?;
        }
        Ok(vectors)
    }

    /// Deletes points by id; absent ids are ignored.
    pub async fn delete(&self, ids: Vec<PointId>, wait: bool) -> Result<WriteAck, EngineError> {
        let w = self.prepare_delete(Target::Ids(ids))?;
        self.apply(w, wait).await
    }

    /// Scatters a search to every partition and merges their hits.
    pub async fn search(&self, mut req: SearchRequest) -> Result<SearchResult, EngineError> {
        self.check_limit(req.k, req.offset)?;
        if req.ef == Some(0) {
            return Err(EngineError::invalid("hnsw_ef must be at least 1"));
        }
        let field = self.spec.dense_field(&req.using).ok_or_else(|| unknown_vector(&req.using))?;
        let mut metric = field.metric;
        if let Some(q) = req.examples.as_mut() {
            if field.multivector.is_some() {
                return Err(EngineError::invalid(
                    "recommend (best_score, sum_scores), discover and context queries of a multivector are not supported yet",
                ));
            }
            for v in q.vectors_mut() {
                *v = field
                    .prepare(std::mem::take(v))
                    .map_err(|e| EngineError::invalid(format!("example vector: {e}")))?;
            }
            // Example scores are higher-is-better whatever the metric.
            metric = Metric::Dot;
        } else {
            req.query_vector =
                field.prepare(req.query_vector).map_err(|e| EngineError::invalid(format!("query vector: {e}")))?;
        }
        // A search changes nothing the coordinator keeps, so it scatters from the caller's
        // task: a detour through the coordinator's mailbox would cost two more thread
        // wake-ups per query (tens of microseconds each on an idle machine).
        scatter_search(&self.read_parts()?, metric, &self.engine, req).await
    }

    /// Fetches points by id; absent ids are left out of the answer.
    pub async fn get(
        &self,
        ids: Vec<PointId>,
        with_payload: bool,
        with_vector: bool,
    ) -> Result<Vec<Record>, EngineError> {
        self.check_batch(ids.len())?;
        let groups = self.read_groups()?;
        self.call(|reply| CollectionMsg::Get { ids, with_payload, with_vector, groups, reply }).await
    }

    /// `Err(PointNotFound)` naming the first of `ids` that does not exist.
    pub async fn require_points(&self, ids: &[PointId]) -> Result<(), EngineError> {
        let found = self.get(ids.to_vec(), false, false).await?;
        let found: std::collections::HashSet<&PointId> = found.iter().map(|r| &r.id).collect();
        match ids.iter().find(|id| !found.contains(id)) {
            Some(missing) => Err(EngineError::PointNotFound(missing.clone())),
            None => Ok(()),
        }
    }

    /// Deletes every point matching `filter`.
    pub async fn delete_by_filter(&self, filter: Filter, wait: bool) -> Result<WriteAck, EngineError> {
        let w = self.prepare_delete(Target::Filter(filter))?;
        self.apply(w, wait).await
    }

    /// Changes the payloads of the points `target` names: `action` is one of
    /// [`FilterAction`]'s payload actions (set keys, overwrite, delete keys, clear).
    /// Named points must exist; with a filter, every matching point is changed.
    pub async fn update_payload(
        &self,
        target: Target,
        action: FilterAction,
        wait: bool,
    ) -> Result<WriteAck, EngineError> {
        let w = self.prepare_update_payload(target, action)?;
        self.apply(w, wait).await
    }

    /// One page of points in id order, from `req.offset` (inclusive), and the id the next
    /// page starts at (`None` on the last page).
    pub async fn scroll(&self, mut req: ScrollRequest) -> Result<(Vec<Record>, Option<PointId>), EngineError> {
        if req.limit == 0 {
            return Err(EngineError::invalid("limit must be at least 1"));
        }
        if req.limit > self.engine.max_limit {
            return Err(EngineError::invalid(format!(
                "limit is {}, larger than the maximum of {}",
                req.limit, self.engine.max_limit
            )));
        }
        let limit = req.limit;
        if let Some(order) = req.order.clone() {
            // Every partition returns its first `limit` in the order; the merge keeps the
            // first `limit` of them. There is no next page: `start_from` pages.
            let parts = self.read_parts()?;
            let lists = self.call(|reply| CollectionMsg::Scroll { req, parts, reply }).await?;
            let mut all: Vec<Record> = lists.into_iter().flatten().collect();
            let zero = serde_json::Number::from(0);
            all.sort_by(|a, b| {
                crate::scoring::order_cmp(
                    &order,
                    (a.order_value.as_ref().unwrap_or(&zero), &a.id),
                    (b.order_value.as_ref().unwrap_or(&zero), &b.id),
                )
            });
            all.truncate(limit);
            return Ok((all, None));
        }
        // One more than asked, to learn where the next page starts.
        req.limit += 1;
        let parts = self.read_parts()?;
        let lists = self.call(|reply| CollectionMsg::Scroll { req, parts, reply }).await?;
        let mut all: Vec<Record> = lists.into_iter().flatten().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let next = all.get(limit).map(|r| r.id.clone());
        all.truncate(limit);
        Ok((all, next))
    }

    /// Qdrant's facet: how many points matching `filter` have each value (strings,
    /// integers, booleans; a point counts once per distinct value) at payload `key`, the
    /// most frequent first (ties by value: booleans, then integers, then strings), at most
    /// `limit`. Exact: it pages through every matching point's payload.
    pub async fn facet(
        &self,
        key: &str,
        filter: Option<Filter>,
        limit: usize,
    ) -> Result<Vec<(serde_json::Value, usize)>, EngineError> {
        use serde_json::Value;
        // A type tag first, so that `true` and `1` are different values and the order is total.
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Facet {
            Bool(bool),
            Int(i64),
            Str(String),
        }
        let mut counts: BTreeMap<Facet, usize> = BTreeMap::new();
        let page = self.engine.max_limit.max(1);
        let mut offset = None;
        loop {
            let req = ScrollRequest {
                filter: filter.clone(),
                offset: offset.take(),
                limit: page,
                with_payload: true,
                with_vector: false,
                order: None,
            };
            let (records, next) = self.scroll(req).await?;
            for r in records {
                let Some(payload) = r.payload.as_ref() else { continue };
                let mut seen = std::collections::BTreeSet::new();
                for v in ametist_core::payload_index::values_at(payload, key) {
                    let f = match v {
                        Value::Bool(b) => Facet::Bool(*b),
                        Value::Number(n) if n.is_i64() || n.is_u64() => match n.as_i64() {
                            Some(i) => Facet::Int(i),
                            None => continue,
                        },
                        Value::String(s) => Facet::Str(s.clone()),
                        _ => continue,
                    };
                    seen.insert(f);
                }
                for f in seen {
                    *counts.entry(f).or_default() += 1;
                }
            }
            match next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        let mut hits: Vec<(Facet, usize)> = counts.into_iter().collect();
        hits.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(hits
            .into_iter()
            .take(limit)
            .map(|(f, n)| {
                let v = match f {
                    Facet::Bool(b) => Value::Bool(b),
                    Facet::Int(i) => Value::from(i),
                    Facet::Str(s) => Value::String(s),
                };
                (v, n)
            })
            .collect())
    }

    /// The number of points matching `filter` (all points without one); exact.
    pub async fn count(&self, filter: Option<Filter>) -> Result<usize, EngineError> {
        let parts = self.read_parts()?;
        let counts = self.call(|reply| CollectionMsg::Count { filter, parts, reply }).await?;
        Ok(counts.into_iter().sum())
    }

    /// Indexes a payload field in every partition (replacing an index of another type).
    pub async fn create_field_index(&self, key: &str, kind: FieldType) -> Result<(), EngineError> {
        if key.trim().is_empty() {
            return Err(EngineError::invalid("field_name must not be empty"));
        }
        let previous =
            self.schema.write().expect("the schema lock is never held across a panic").insert(key.to_string(), kind);
        if let Err(e) = self.persist_schemas().await {
            // Undone, so that no index is half made (in the schema, not in collection.json).
            self.restore_schema_entry(key, previous, None);
            return Err(e);
        }
        let key = key.to_string();
        self.call(|reply| CollectionMsg::FieldIndex { key, kind: Some(kind), reply }).await.map(|_| ())
    }

    /// Puts a key's schema entries back as they were before a change that could not be
    /// made durable (`None`: the key had no entry).
    fn restore_schema_entry(&self, key: &str, field: Option<FieldType>, text: Option<Option<TextIndexConfig>>) {
        let mut schema = self.schema.write().expect("the schema lock is never held across a panic");
        match field {
            Some(kind) => drop(schema.insert(key.to_string(), kind)),
            None => drop(schema.remove(key)),
        }
        if let Some(text) = text {
            let mut schema = self.text_schema.write().expect("the schema lock is never held across a panic");
            match text {
                Some(config) => drop(schema.insert(key.to_string(), config)),
                None => drop(schema.remove(key)),
            }
        }
    }

    /// Stops indexing a payload field. Returns false when it was not indexed.
    pub async fn drop_field_index(&self, key: &str) -> Result<bool, EngineError> {
        let field = self.schema.write().expect("the schema lock is never held across a panic").remove(key);
        let text = self.text_schema.write().expect("the schema lock is never held across a panic").remove(key);
        let existed = field.is_some();
        if let Err(e) = self.persist_schemas().await {
            self.restore_schema_entry(key, field, Some(text));
            return Err(e);
        }
        let key = key.to_string();
        self.call(|reply| CollectionMsg::FieldIndex { key, kind: None, reply }).await?;
        Ok(existed)
    }

    /// Builds a full-text (BM25) index over the strings at payload key `key` in every
    /// partition. Scores use collection-wide statistics (see [`Collection::text_search`]).
    pub async fn create_text_index(&self, key: &str, config: TextIndexConfig) -> Result<(), EngineError> {
        if key.trim().is_empty() {
            return Err(EngineError::invalid("field_name must not be empty"));
        }
        // Checked here so that a bad config changes nothing anywhere.
        TextIndex::new(config.clone()).map_err(|e| EngineError::invalid(e.to_string()))?;
        let previous = self
            .text_schema
            .write()
            .expect("the schema lock is never held across a panic")
            .insert(key.to_string(), config.clone());
        if let Err(e) = self.persist_schemas().await {
            let field = self.schema.read().expect("the schema lock is never held across a panic").get(key).copied();
            self.restore_schema_entry(key, field, Some(previous));
            return Err(e);
        }
        let key = key.to_string();
        self.call(|reply| CollectionMsg::TextIndex { key, config, reply }).await.map(|_| ())
    }

    /// Records an index definition in this node's copy of the collection's schema (and in
    /// `collection.json`) without sending anything to the partitions: `Some(kind)` indexes a
    /// payload key, `None` drops whatever index the key had. A node serving partitions to
    /// another node's coordinator calls this when that coordinator creates or drops an
    /// index, so that its partitions re-create the index whenever they are rebuilt here.
    pub async fn note_field_index(&self, key: &str, kind: Option<FieldType>) -> Result<(), EngineError> {
        {
            let mut schema = self.schema.write().expect("the schema lock is never held across a panic");
            match kind {
                Some(kind) => drop(schema.insert(key.to_string(), kind)),
                None => {
                    schema.remove(key);
                    self.text_schema.write().expect("the schema lock is never held across a panic").remove(key);
                }
            }
        }
        self.persist_schemas().await
    }

    /// [`Collection::note_field_index`] for a full-text index.
    pub async fn note_text_index(&self, key: &str, config: TextIndexConfig) -> Result<(), EngineError> {
        self.text_schema.write().expect("the schema lock is never held across a panic").insert(key.to_string(), config);
        self.persist_schemas().await
    }

    /// The full-text indexed fields and their configurations.
    pub fn text_schema(&self) -> BTreeMap<String, TextIndexConfig> {
        self.text_schema.read().expect("the schema lock is never held across a panic").clone()
    }

    /// BM25 search of a text-indexed payload field: the query is tokenized with the
    /// field's tokenizer, every partition reports its statistics for the terms, and every
    /// partition scores with their sum, so a document's score does not depend on which
    /// partition holds it. Best first; `offset` and `k` as for vector search.
    pub async fn text_search(&self, q: TextQuery) -> Result<SearchResult, EngineError> {
        let want = self.check_limit(q.k, q.offset)?;
        let config = self.text_schema().get(&q.field).cloned().ok_or_else(|| {
            EngineError::invalid(format!("payload field `{}` has no text index; create one first", q.field))
        })?;
        let tokenizer = Tokenizer::new(config.tokenizer).map_err(|e| EngineError::invalid(e.to_string()))?;
        let terms = tokenizer.tokenize(&q.text);
        if terms.is_empty() {
            return Ok(SearchResult { request_id: String::new(), results: Vec::new(), missing_partitions: Vec::new() });
        }
        let field = q.field.clone();
        let parts = self.read_parts()?;
        let stats = scatter(&parts, &self.engine, |reply| PartitionMsg::TextStats {
            field: field.clone(),
            terms: terms.clone(),
            reply,
        })
        .await?;
        let global = CorpusStats::sum(stats.replies.iter());
        let req = TextSearchRequest {
            field: q.field,
            terms,
            global,
            k: want,
            filter: q.filter,
            with_payload: q.with_payload,
            with_vector: q.with_vector,
        };
        let lists = scatter(&parts, &self.engine, |tx| PartitionMsg::TextSearch(req.clone(), tx)).await?;
        // BM25 scores: higher is better, as for dot products.
        let results = topk::merge(Metric::Dot, lists.replies, q.offset, q.k, |d| (d.score, &d.id));
        let missing_partitions = missing_from_both(stats.missing, lists.missing);
        Ok(SearchResult { request_id: String::new(), results, missing_partitions })
    }

    /// Sparse dot-product search of a named sparse vector. With the idf modifier every
    /// partition first reports the document frequencies of the query's dimensions and all
    /// partitions score with their sum, so a score does not depend on the partitioning.
    pub async fn sparse_search(&self, q: SparseQuery) -> Result<SearchResult, EngineError> {
        let want = self.check_limit(q.k, q.offset)?;
        let params = self.spec.sparse_vectors.get(&q.name).ok_or_else(|| unknown_vector(&q.name))?;
        q.vector.validate().map_err(|e| EngineError::invalid(format!("query: {e}")))?;
        let parts = self.read_parts()?;
        let (global, stats_missing) = if params.modifier == SparseModifier::Idf {
            let (name, query) = (q.name.clone(), q.vector.clone());
            let stats = scatter(&parts, &self.engine, |reply| PartitionMsg::SparseStats {
                name: name.clone(),
                query: query.clone(),
                reply,
            })
            .await?;
            (SparseStats::sum(stats.replies.iter()), stats.missing)
        } else {
            (SparseStats::default(), Vec::new())
        };
        let req = SparseSearchRequest {
            name: q.name,
            query: q.vector,
            global,
            k: want,
            filter: q.filter,
            with_payload: q.with_payload,
            with_vector: q.with_vector,
        };
        let lists = scatter(&parts, &self.engine, |tx| PartitionMsg::SparseSearch(req.clone(), tx)).await?;
        let mut results = topk::merge(Metric::Dot, lists.replies, q.offset, q.k, |d| (d.score, &d.id));
        if let Some(t) = q.score_threshold {
            results.retain(|d| d.score >= t);
        }
        let missing_partitions = missing_from_both(stats_missing, lists.missing);
        Ok(SearchResult { request_id: String::new(), results, missing_partitions })
    }

    /// Runs every branch (dense, sparse or text search), then fuses their ranked lists on
    /// the coordinator: Qdrant's RRF (plain or weighted) or DBSF. Each branch's own filter
    /// applies to it; pass the same filter to every branch to filter the fused result.
    pub async fn hybrid(
        &self,
        branches: Vec<Branch>,
        fusion: Fusion,
        limit: usize,
    ) -> Result<SearchResult, EngineError> {
        if branches.is_empty() {
            return Err(EngineError::invalid("a fusion query needs at least one prefetch"));
        }
        if limit == 0 {
            return Err(EngineError::invalid("limit must be at least 1"));
        }
        let mut lists: Vec<Vec<ScoredDoc>> = Vec::with_capacity(branches.len());
        let mut missing = Vec::new();
        for b in branches {
            let r = match b {
                Branch::Vector(req) => self.search(req).await?,
                Branch::Text(q) => self.text_search(q).await?,
                Branch::Sparse(q) => self.sparse_search(q).await?,
            };
            missing.extend(r.missing_partitions);
            lists.push(r.results);
        }
        let results = fuse(lists, fusion, limit)?;
        Ok(SearchResult { request_id: String::new(), results, missing_partitions: missing })
    }

    /// The indexed payload fields and their types.
    pub fn payload_schema(&self) -> BTreeMap<String, FieldType> {
        self.schema.read().expect("the schema lock is never held across a panic").clone()
    }

    /// Points and health of every partition.
    pub async fn info(&self) -> Result<CollectionInfo, EngineError> {
        let parts = self.call(|reply| CollectionMsg::Stats { reply }).await?;
        let points = parts.iter().filter_map(|(_, s)| s.as_ref()).map(|s| s.doc_count).sum();
        let index_bytes = parts.iter().filter_map(|(_, s)| s.as_ref()).map(|s| s.index_size).sum();
        let mut payload_schema: BTreeMap<String, (FieldType, usize)> =
            self.payload_schema().into_iter().map(|(k, t)| (k, (t, 0))).collect();
        let mut text_schema: BTreeMap<String, usize> = self.text_schema().into_keys().map(|k| (k, 0)).collect();
        for s in parts.iter().filter_map(|(_, s)| s.as_ref()) {
            for (key, _, n) in &s.payload_fields {
                if let Some(entry) = payload_schema.get_mut(key) {
                    entry.1 += n;
                }
            }
            for (key, n) in &s.text_fields {
                if let Some(entry) = text_schema.get_mut(key) {
                    *entry += n;
                }
            }
        }
        Ok(CollectionInfo {
            spec: (*self.spec).clone(),
            points,
            index_bytes,
            partitions: parts.into_iter().map(|(p, _)| p).collect(),
            payload_schema,
            text_schema,
        })
    }

    /// Each partition's health and index statistics (`None` when it did not answer).
    pub async fn partitions(&self) -> Result<Vec<(PartitionInfo, Option<IndexStats>)>, EngineError> {
        self.call(|reply| CollectionMsg::Stats { reply }).await
    }

    /// Rebuilds every partition's index.
    pub async fn rebuild_index(&self) -> Result<Vec<IndexStats>, EngineError> {
        self.call(|reply| CollectionMsg::Rebuild { reply }).await
    }

    /// Injects a fault into one partition (for resilience tests and drills).
    pub async fn inject_fault(&self, partition: usize, fault: Fault) -> Result<(), EngineError> {
        if self.partition(partition).is_none() {
            return Err(EngineError::invalid(format!(
                "partition {partition} does not exist (the collection has {})",
                self.all_partitions().len()
            )));
        }
        self.call(|reply| CollectionMsg::Fault { partition, fault, reply }).await
    }

    /// Stops the coordinator and every partition, and waits for their threads.
    pub(crate) async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(CollectionMsg::Stop { reply: tx }).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn write(&self, ops: Vec<WriteOp>, wait: bool) -> Result<WriteAck, EngineError> {
        let groups = self.write_groups(&ops)?;
        self.call(|reply| CollectionMsg::Write { ops, wait, groups, reply }).await
    }

    /// The groups a point read routes ids within: one per shard key of the scope, every
    /// key of a custom-sharded collection when unscoped, or all partitions.
    fn read_groups(&self) -> Result<Vec<Arc<Vec<PartitionRef>>>, EngineError> {
        match &self.scope {
            Some(keys) => self.key_groups(keys),
            None if self.settings().sharding_method == ShardingMethod::Custom => Ok(self
                .topology
                .read()
                .expect("the topology lock is never held across a panic")
                .keys
                .values()
                .cloned()
                .collect()),
            None => Ok(vec![self.all_partitions()]),
        }
    }

    /// Checks a query's `limit` and `offset`; returns how many hits each partition must
    /// return (`limit + offset`).
    fn check_limit(&self, k: usize, offset: usize) -> Result<usize, EngineError> {
        if k == 0 {
            return Err(EngineError::invalid("limit must be at least 1"));
        }
        let want = k.saturating_add(offset);
        if want > self.engine.max_limit {
            return Err(EngineError::invalid(format!(
                "limit + offset is {want}, larger than the maximum of {}",
                self.engine.max_limit
            )));
        }
        Ok(want)
    }

    fn check_batch(&self, n: usize) -> Result<(), EngineError> {
        if n == 0 {
            return Err(EngineError::invalid("the batch is empty: send at least one point"));
        }
        if n > self.engine.max_batch {
            return Err(EngineError::invalid(format!(
                "the batch has {n} points, more than the maximum of {}; split it",
                self.engine.max_batch
            )));
        }
        Ok(())
    }

    async fn call<T>(&self, msg: impl FnOnce(Reply<T>) -> CollectionMsg) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.tx.try_send(msg(tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => EngineError::Overloaded(format!(
                "collection `{}` has {} requests waiting",
                self.spec.name, self.engine.collection_mailbox
            )),
            mpsc::error::TrySendError::Closed(_) => EngineError::CollectionNotFound(self.spec.name.clone()),
        })?;
        rx.await.map_err(|_| EngineError::CollectionNotFound(self.spec.name.clone()))?
    }
}

/// Fuses ranked lists (each best first) into one, best first, at most `limit`: Qdrant's
/// RRF (plain or weighted) or DBSF. A hit keeps the payload and vectors of its first
/// occurrence; its score is the fused one. The one fusion of hybrid queries and of
/// prefetches at any depth.
pub fn fuse(lists: Vec<Vec<ScoredDoc>>, fusion: Fusion, limit: usize) -> Result<Vec<ScoredDoc>, EngineError> {
    let mut docs: std::collections::HashMap<PointId, ScoredDoc> = std::collections::HashMap::new();
    for d in lists.iter().flatten() {
        docs.entry(d.id.clone()).or_insert_with(|| d.clone());
    }
    let ranked = || -> Vec<Vec<PointId>> { lists.iter().map(|l| l.iter().map(|d| d.id.clone()).collect()).collect() };
    let fused = match fusion {
        Fusion::Rrf => fusion::rrf(&ranked(), fusion::DEFAULT_RRF_K),
        Fusion::WeightedRrf { k, weights } => {
            if !weights.is_empty() && weights.len() != lists.len() {
                return Err(EngineError::invalid(format!(
                    "rrf has {} weights for {} prefetches; give one per prefetch",
                    weights.len(),
                    lists.len()
                )));
            }
            if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || !k.is_finite() || k < 0.0 {
                return Err(EngineError::invalid("rrf weights and k must be finite and not negative"));
            }
            // A list's hit at rank r scores 1/((r + 1)/w + k − 1): below k = 1 the top
            // hit's denominator can reach 0 (an infinite score) or go negative (the top
            // hit scores below the next), so k is at least 1.
            if k < 1.0 {
                return Err(EngineError::invalid(format!("rrf k must be at least 1, got {k}")));
            }
            let weights = if weights.is_empty() { vec![1.0; lists.len()] } else { weights };
            let fused = fusion::weighted_rrf(&ranked(), k, &weights);
            // Each list adds at most its weight to a score; weights near f32::MAX can
            // still add up past it.
            if fused.iter().any(|(_, s)| !s.is_finite()) {
                return Err(EngineError::invalid(
                    "rrf weights are too large: the fused scores overflow; use smaller weights",
                ));
            }
            fused
        }
        Fusion::Dbsf => {
            let scored: Vec<Vec<(PointId, f32)>> =
                lists.iter().map(|l| l.iter().map(|d| (d.id.clone(), d.score)).collect()).collect();
            fusion::dbsf(&scored)
        }
    };
    let results = fused
        .into_iter()
        .take(limit)
        .map(|(id, score)| {
            let mut d = docs.remove(&id).expect("fused ids come from the branches");
            d.score = score;
            d
        })
        .collect();
    Ok(results)
}

fn unknown_vector(name: &str) -> EngineError {
    if name.is_empty() {
        EngineError::invalid(
            "the collection has only named vectors: send the vectors by name, and name the vector to search with `using`",
        )
    } else {
        EngineError::invalid(format!("Not existing vector name error: {name}"))
    }
}

/// `<collection dir>/partitions/<id>`.
pub(crate) fn partition_dir(collection_dir: &Path, id: usize) -> PathBuf {
    collection_dir.join("partitions").join(id.to_string())
}

/// Starts partition `id` of a collection, durable when `storage` is given.
fn spawn_one(
    spec: &CollectionSpec,
    engine: &EngineConfig,
    storage: Option<&CollectionStorage>,
    schema: &Arc<RwLock<BTreeMap<String, FieldType>>>,
    text_schema: &Arc<RwLock<BTreeMap<String, TextIndexConfig>>>,
    id: usize,
) -> (PartitionRef, JoinHandle<()>) {
    let pspec = PartitionSpec {
        collection: spec.name.clone(),
        id,
        dim: spec.dim,
        metric: spec.metric,
        index: spec.index,
        mailbox: engine.partition_mailbox,
        policy: engine.supervision,
        payload_schema: schema.clone(),
        text_schema: text_schema.clone(),
        vectors: spec.vectors.clone(),
        sparse_vectors: spec.sparse_vectors.clone(),
    };
    let store: Arc<dyn PartitionStore> = match storage {
        Some(s) => Arc::new(DurableStore::new(partition_dir(&s.dir, id), id, engine.storage)),
        None => Arc::new(MemoryStore::new()),
    };
    spawn_partition(pspec, store)
}

/// Waits until none of `parts` is recovering; names the ones that are not running.
async fn settle(parts: &[PartitionRef]) -> Vec<String> {
    loop {
        let infos: Vec<PartitionInfo> = parts.iter().map(|p| p.info()).collect();
        if infos.iter().all(|i| i.state != ActorState::Recovering) {
            return infos
                .into_iter()
                .filter_map(|p| match (p.state, p.storage_error, p.stop_reason) {
                    (ActorState::Running, _, _) => None,
                    (_, Some(e), _) => Some(format!("partition {}: {}", p.id, e.reason)),
                    (_, None, reason) => {
                        Some(format!("partition {}: {}", p.id, reason.unwrap_or_else(|| "could not start".into())))
                    }
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Stops partitions and waits for their threads.
async fn stop_partitions(parts: &[PartitionRef], threads: Vec<(usize, JoinHandle<()>)>) {
    for p in parts {
        // A full mailbox still drains: wait for room rather than leave the actor running.
        let _ = p.sender().send(PartitionMsg::Stop).await;
    }
    let _ = tokio::task::spawn_blocking(move || {
        for (_, t) in threads {
            let _ = t.join();
        }
    })
    .await;
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| EngineError::Internal(format!("file task failed: {e}")))?
}

struct CollectionActor {
    topology: Arc<RwLock<Topology>>,
    threads: Threads,
    engine: Arc<EngineConfig>,
    /// How often partitions get a [`PartitionMsg::Tick`] (durable collections only).
    tick: Option<Duration>,
}

impl CollectionActor {
    async fn run(mut self, mut rx: mpsc::Receiver<CollectionMsg>) {
        let mut tick = self.tick.map(|d| tokio::time::interval_at(Instant::now() + d, d));
        loop {
            let msg = match tick.as_mut() {
                Some(t) => tokio::select! {
                    m = rx.recv() => m,
                    _ = t.tick() => {
                        for p in self.all().iter() {
                            // A full mailbox has writes coming: the partition checks then.
                            let _ = p.try_send(PartitionMsg::Tick);
                        }
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(msg) = msg else { break };
            match msg {
                CollectionMsg::Write { ops, wait, groups, reply } => self.route_write(ops, wait, &groups, reply),
                CollectionMsg::Get { ids, with_payload, with_vector, groups, reply } => {
                    self.route_get(ids, with_payload, with_vector, &groups, reply)
                }
                CollectionMsg::Stats { reply } => self.gather_stats(reply),
                CollectionMsg::Scroll { req, parts, reply } => {
                    self.gather_all(&parts, |tx| PartitionMsg::Scroll(req.clone(), tx), reply)
                }
                CollectionMsg::Count { filter, parts, reply } => {
                    self.gather_all(&parts, |tx| PartitionMsg::Count(filter.clone(), tx), reply)
                }
                CollectionMsg::TextIndex { key, config, reply } => self.gather_all_until(
                    &self.all(),
                    |tx| PartitionMsg::CreateTextIndex { key: key.clone(), config: config.clone(), reply: tx },
                    reply,
                    None,
                ),
                CollectionMsg::FieldIndex { key, kind, reply } => {
                    // Building an index over many points may take a while: no deadline.
                    self.gather_all_until(
                        &self.all(),
                        |tx| match kind {
                            Some(kind) => PartitionMsg::CreateFieldIndex { key: key.clone(), kind, reply: tx },
                            None => PartitionMsg::DropFieldIndex { key: key.clone(), reply: tx },
                        },
                        reply,
                        None,
                    )
                }
                CollectionMsg::Rebuild { reply } => self.rebuild(reply),
                CollectionMsg::Fault { partition, fault, reply } => {
                    let all = self.all();
                    let sent = match all.iter().find(|p| p.id() == partition) {
                        Some(p) => p.try_send(PartitionMsg::Fault(fault)),
                        None => Err(EngineError::invalid(format!("partition {partition} does not exist"))),
                    };
                    let _ = reply.send(sent);
                }
                CollectionMsg::Stop { reply } => {
                    self.stop().await;
                    let _ = reply.send(());
                    return;
                }
            }
        }
        self.stop().await;
    }

    /// Every partition, in id order.
    fn all(&self) -> Arc<Vec<PartitionRef>> {
        self.topology.read().expect("the topology lock is never held across a panic").all.clone()
    }

    fn route_write(&self, ops: Vec<WriteOp>, wait: bool, groups: &[Arc<Vec<PartitionRef>>], reply: Reply<WriteAck>) {
        // Partition id → (handle, its share of the ops). An op with an id goes to one
        // partition of each group; a filter op to every partition of every group.
        let mut by_partition: BTreeMap<usize, (PartitionRef, Vec<WriteOp>)> = BTreeMap::new();
        fn share<'a>(
            map: &'a mut BTreeMap<usize, (PartitionRef, Vec<WriteOp>)>,
            p: &PartitionRef,
        ) -> &'a mut Vec<WriteOp> {
            &mut map.entry(p.id()).or_insert_with(|| (p.clone(), Vec::new())).1
        }
        for op in ops {
            match op.id().cloned() {
                Some(id) => {
                    let groups: Vec<&Arc<Vec<PartitionRef>>> = groups.iter().filter(|g| !g.is_empty()).collect();
                    for (i, g) in groups.iter().enumerate() {
                        let target = share(&mut by_partition, &g[id.partition(g.len())]);
                        if i + 1 == groups.len() {
                            // The last (usually the only) group takes the op itself.
                            target.push(op);
                            break;
                        }
                        target.push(op.clone());
                    }
                }
                None => {
                    for p in groups.iter().flat_map(|g| g.iter()) {
                        share(&mut by_partition, p).push(op.clone());
                    }
                }
            }
        }
        let (targets, shares): (Vec<PartitionRef>, Vec<Vec<WriteOp>>) = by_partition.into_values().unzip();
        // A partition whose storage cannot be written (a full disk) refuses at once, before
        // any partition is sent anything: nothing of the request is applied anywhere.
        if let Some(e) = targets.iter().find_map(|p| p.write_refusal()) {
            let _ = reply.send(Err(e));
            return;
        }
        // Reserve every mailbox first: all partitions take their share, or none does.
        let mut permits = Vec::with_capacity(targets.len());
        for p in &targets {
            match p.try_reserve() {
                Ok(permit) => permits.push(permit),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            }
        }
        let mut pending = Vec::with_capacity(targets.len());
        for ((permit, p), ops) in permits.into_iter().zip(&targets).zip(shares) {
            let (tx, rx) = oneshot::channel();
            permit.send(PartitionMsg::Write(ops, tx));
            pending.push((p.clone(), rx));
        }
        if !wait {
            let _ = reply.send(Ok(WriteAck { operation_id: 0, completed: false }));
            return;
        }
        let timeout = self.engine.write_timeout;
        let deadline = Instant::now() + timeout;
        tokio::spawn(async move {
            let mut ack = WriteAck { operation_id: 0, completed: true };
            for (partition, rx) in pending {
                match timeout_at(deadline, rx).await {
                    Ok(Ok(Ok(a))) => ack.operation_id = ack.operation_id.max(a.operation_id),
                    Ok(Ok(Err(e))) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                    Ok(Err(_)) => {
                        let _ = reply.send(Err(partition.unavailable()));
                        return;
                    }
                    Err(_) => {
                        // The write may still be in the mailbox, being applied, or done:
                        // say no more than that.
                        let _ = reply.send(Err(EngineError::PartitionUnavailable {
                            partition: partition.id(),
                            reason: format!(
                                "did not confirm the write within {:?}; it may or may not have been applied, \
                                 and retrying it is safe",
                                timeout
                            ),
                        }));
                        return;
                    }
                }
            }
            let _ = reply.send(Ok(ack));
        });
    }
}

/// Sends a search to every partition and merges their hits: the partitions that do not
/// answer within the search timeout are missing, which fails the search unless partial
/// results are allowed (see [`EngineConfig::allow_partial_results`]).
async fn scatter_search(
    partitions: &[PartitionRef],
    metric: Metric,
    engine: &EngineConfig,
    req: SearchRequest,
) -> Result<SearchResult, EngineError> {
    // Each partition returns its best `offset + k`; the merge applies the offset once.
    let mut part_req = req.clone();
    part_req.k = req.k.saturating_add(req.offset);
    part_req.offset = 0;
    let gathered = scatter(partitions, engine, |tx| PartitionMsg::Search(part_req.clone(), tx)).await?;
    let results = merge_hits(metric, gathered.replies, &req);
    Ok(SearchResult { request_id: req.request_id, results, missing_partitions: gathered.missing })
}

/// What a read scattered to every partition gathered: the replies of the partitions that
/// answered, and the ones that did not.
struct Gathered<T> {
    replies: Vec<T>,
    missing: Vec<MissingPartition>,
}

/// The one scatter of every read sent to all partitions (vector, text and sparse searches
/// and their statistics): a full mailbox fails the read at once (overload, retryable); a
/// partition that is stopped, fails, or does not answer within the search timeout is
/// missing, which fails the read unless partial results are allowed and one partition
/// answered; bad input reported by any partition fails it.
async fn scatter<T: Send + 'static>(
    partitions: &[PartitionRef],
    engine: &EngineConfig,
    make: impl Fn(Reply<T>) -> PartitionMsg,
) -> Result<Gathered<T>, EngineError> {
    if partitions.is_empty() {
        // A custom-sharded collection without shard keys holds nothing.
        return Ok(Gathered { replies: Vec::new(), missing: Vec::new() });
    }
    let mut missing = Vec::new();
    let mut permits = Vec::with_capacity(partitions.len());
    for p in partitions {
        match p.try_reserve() {
            Ok(permit) => permits.push((p, permit)),
            Err(EngineError::Overloaded(why)) => return Err(EngineError::Overloaded(why)),
            Err(e) => missing.push(MissingPartition { partition: p.id(), reason: e.to_string() }),
        }
    }
    // The last partition runs on this thread while the others run on the pool. Then this
    // thread takes back what the pool has not started: under concurrent queries the pool's
    // threads are waiting for a core, and this thread would otherwise idle until they get
    // one.
    let mut pending = Vec::with_capacity(permits.len());
    let mut handed = Vec::with_capacity(permits.len());
    let last = permits.len().saturating_sub(1);
    for (i, (p, permit)) in permits.into_iter().enumerate() {
        let (tx, rx) = oneshot::channel();
        let msg = make(tx);
        if i == last {
            permit.send_here(msg);
        } else {
            handed.extend(permit.send_reclaimable(msg));
        }
        pending.push((p, rx));
    }
    handed.into_iter().for_each(|h| h.reclaim());
    let total = partitions.len();
    let timeout = engine.search_timeout;
    let deadline = Instant::now() + timeout;
    let mut replies = Vec::with_capacity(pending.len());
    for (p, mut rx) in pending {
        // The pool's answers usually come within a search's time of this thread finishing
        // its own partition: poll for them briefly rather than park and be woken, which
        // costs tens of microseconds on a virtual machine. A closed channel is reported by the
        // await that follows.
        let polled = crate::read_pool::poll(|| rx.try_recv().ok());
        let answer = match polled {
            Some(answer) => Ok(Ok(answer)),
            None => timeout_at(deadline, rx).await,
        };
        match answer {
            Ok(Ok(Ok(reply))) => replies.push(reply),
            Ok(Ok(Err(e))) if e.is_bad_input() => return Err(e),
            Ok(Ok(Err(e))) => missing.push(MissingPartition { partition: p.id(), reason: e.to_string() }),
            Ok(Err(_)) => missing.push(MissingPartition { partition: p.id(), reason: p.unavailable().to_string() }),
            Err(_) => missing.push(MissingPartition {
                partition: p.id(),
                reason: format!("no answer within the search timeout of {timeout:?}"),
            }),
        }
    }
    missing.sort_by_key(|m| m.partition);
    if replies.is_empty() || (!missing.is_empty() && !engine.allow_partial_results) {
        return Err(missing_error(&missing, total, timeout));
    }
    Ok(Gathered { replies, missing })
}

/// The partitions missing from either phase of a two-phase read (statistics, then search).
fn missing_from_both(mut first: Vec<MissingPartition>, second: Vec<MissingPartition>) -> Vec<MissingPartition> {
    for m in second {
        if !first.iter().any(|f| f.partition == m.partition) {
            first.push(m);
        }
    }
    first.sort_by_key(|m| m.partition);
    first
}

impl CollectionActor {
    fn route_get(
        &self,
        ids: Vec<PointId>,
        with_payload: bool,
        with_vector: bool,
        groups: &[Arc<Vec<PartitionRef>>],
        reply: Reply<Vec<Record>>,
    ) {
        let order: Vec<PointId> = ids.clone();
        let mut by_partition: BTreeMap<usize, (PartitionRef, Vec<PointId>)> = BTreeMap::new();
        for id in ids {
            for g in groups.iter().filter(|g| !g.is_empty()) {
                let p = &g[id.partition(g.len())];
                by_partition.entry(p.id()).or_insert_with(|| (p.clone(), Vec::new())).1.push(id.clone());
            }
        }
        let mut pending = Vec::new();
        for (_, (p, ids)) in by_partition {
            let (tx, rx) = oneshot::channel();
            if let Err(e) = p.try_send(PartitionMsg::Get { ids, with_payload, with_vector, reply: tx }) {
                let _ = reply.send(Err(e));
                return;
            }
            pending.push((p, rx));
        }
        let deadline = Instant::now() + self.engine.search_timeout;
        tokio::spawn(async move {
            // Several shard keys may each hold a point of the same id.
            let mut found: std::collections::HashMap<PointId, Vec<Record>> = std::collections::HashMap::new();
            for (p, rx) in pending {
                match timeout_at(deadline, rx).await {
                    Ok(Ok(Ok(records))) => {
                        for r in records {
                            found.entry(r.id.clone()).or_default().push(r);
                        }
                    }
                    Ok(Ok(Err(e))) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                    Ok(Err(_)) | Err(_) => {
                        let _ = reply.send(Err(p.unavailable()));
                        return;
                    }
                }
            }
            // Answer in the order asked, once per id and key.
            let records = order.iter().filter_map(|id| found.remove(id)).flatten().collect();
            let _ = reply.send(Ok(records));
        });
    }

    fn gather_stats(&self, reply: Reply<Vec<(PartitionInfo, Option<IndexStats>)>>) {
        let pending: Vec<_> = self
            .all()
            .iter()
            .map(|p| {
                let (tx, rx) = oneshot::channel();
                let sent = p.try_send(PartitionMsg::Stats(tx)).is_ok();
                (p.clone(), sent.then_some(rx))
            })
            .collect();
        let deadline = Instant::now() + self.engine.search_timeout.min(Duration::from_secs(5));
        tokio::spawn(async move {
            let mut out = Vec::with_capacity(pending.len());
            for (p, rx) in pending {
                let stats = match rx {
                    Some(rx) => timeout_at(deadline, rx).await.ok().and_then(|r| r.ok()).and_then(|r| r.ok()),
                    None => None,
                };
                out.push((p.info(), stats));
            }
            let _ = reply.send(Ok(out));
        });
    }

    fn rebuild(&self, reply: Reply<Vec<IndexStats>>) {
        // A rebuild may take long: no deadline.
        self.gather_all_until(&self.all(), |tx| PartitionMsg::RebuildIndex(RebuildIndex, tx), reply, None)
    }

    /// Sends a message to every partition and answers with every reply, in partition
    /// order; any failure fails the whole request (no partial answers for exact counts).
    fn gather_all<T: Send + 'static>(
        &self,
        partitions: &[PartitionRef],
        make: impl Fn(Reply<T>) -> PartitionMsg,
        reply: Reply<Vec<T>>,
    ) {
        let deadline = Some(self.engine.search_timeout);
        self.gather_all_until(partitions, make, reply, deadline)
    }

    fn gather_all_until<T: Send + 'static>(
        &self,
        partitions: &[PartitionRef],
        make: impl Fn(Reply<T>) -> PartitionMsg,
        reply: Reply<Vec<T>>,
        timeout: Option<Duration>,
    ) {
        let mut permits = Vec::with_capacity(partitions.len());
        for p in partitions {
            match p.try_reserve() {
                Ok(permit) => permits.push((p, permit)),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            }
        }
        let mut pending = Vec::with_capacity(permits.len());
        for (p, permit) in permits {
            let (tx, rx) = oneshot::channel();
            permit.send(make(tx));
            pending.push((p.clone(), rx));
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        tokio::spawn(async move {
            let mut out = Vec::with_capacity(pending.len());
            for (p, rx) in pending {
                let answer = match deadline {
                    Some(d) => match timeout_at(d, rx).await {
                        Ok(a) => a,
                        Err(_) => {
                            let _ = reply.send(Err(EngineError::PartitionUnavailable {
                                partition: p.id(),
                                reason: "no answer within the search timeout".into(),
                            }));
                            return;
                        }
                    },
                    None => rx.await,
                };
                match answer {
                    Ok(Ok(s)) => out.push(s),
                    Ok(Err(e)) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                    Err(_) => {
                        let _ = reply.send(Err(p.unavailable()));
                        return;
                    }
                }
            }
            let _ = reply.send(Ok(out));
        });
    }

    async fn stop(&mut self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        stop_partitions(&self.all(), threads).await;
    }
}

fn missing_error(missing: &[MissingPartition], total: usize, timeout: Duration) -> EngineError {
    if let [only] = missing {
        if total == 1 {
            return EngineError::PartitionUnavailable { partition: only.partition, reason: only.reason.clone() };
        }
    }
    if missing.iter().all(|m| m.reason.starts_with("no answer within")) {
        return EngineError::Timeout(timeout);
    }
    let list: Vec<String> = missing.iter().map(|m| format!("{} ({})", m.partition, m.reason)).collect();
    EngineError::PartitionUnavailable {
        partition: missing[0].partition,
        reason: format!("{} of {total} partitions did not answer: {}", missing.len(), list.join("; ")),
    }
}

fn merge_hits(metric: Metric, lists: Vec<Vec<ScoredDoc>>, req: &SearchRequest) -> Vec<ScoredDoc> {
    // Partitions hold disjoint ids, so concatenating and sorting is a correct merge.
    topk::merge(metric, lists, req.offset, req.k, |d| (d.score, &d.id))
}
