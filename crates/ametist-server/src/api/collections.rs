//! Collection routes in Qdrant's shapes.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{json, Value};

use ametist_core::sparse::SparseModifier;
use ametist_core::Metric;
use ametist_engine::collection::CollectionInfo;
use ametist_engine::config::{
    Comparator, IndexConfig, Quantization, SparseVectorParams as EngineSparseParams,
    VectorParams as EngineVectorParams, MAX_PARTITIONS,
};
use ametist_engine::spec::{CollectionSettings, ShardingMethod};
use ametist_engine::{AliasAction, CollectionConfig};

use super::envelope::{parse_body, Answer, ApiError, ApiResult};
use super::{done, AppState};

/// `PUT /collections/{name}`: Qdrant's create-collection body. Fields that only tune
/// Qdrant's internals (optimizer and WAL settings) are accepted and have no effect, so that
/// clients that send them keep working; product quantization is refused.
/// `quantization_config: {"scalar": {"type": "int8"}}` walks the graph on 8-bit codes,
/// `"int4"` (an Ametist extension) on 4-bit ones, `"none"` turns a configured default off;
/// `quantile` (0.5 to 1) is the central share of the values the codes' range holds
/// (unset: `partitions.index.quantile`, by default 0.998); `always_ram` is accepted (codes
/// are always in memory). `{"binary": {"encoding": "one_bit" | "two_bits" |
/// "one_and_half_bits"}}` walks on Qdrant's binary codes; its `query_encoding` may only be
/// `default` or `binary` (the query is encoded as the points are).
#[derive(Debug, Deserialize)]
pub struct CreateCollection {
    #[serde(default)]
    pub vectors: Value,
    #[serde(default)]
    pub shard_number: Option<usize>,
    #[serde(default)]
    pub hnsw_config: Option<HnswConfigDiff>,
    /// Named sparse vectors: `{"name": {"modifier": "idf" | "none", "index": ...}}`.
    #[serde(default)]
    pub sparse_vectors: Option<std::collections::BTreeMap<String, SparseParams>>,
    #[serde(default)]
    pub quantization_config: Option<Value>,
    /// `auto` (the default) or `custom`: points are placed by the shard key their writer
    /// names (see `shards`).
    #[serde(default)]
    pub sharding_method: Option<ShardingMethod>,
    #[serde(default)]
    pub strict_mode_config: Option<Value>,
    /// Free-form JSON kept with the collection and shown in its info.
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
    /// Copies of each partition (a cluster keeps them on distinct members).
    #[serde(default)]
    pub replication_factor: Option<usize>,
    /// Fewest in-sync copies a write is acknowledged with.
    #[serde(default)]
    pub write_consistency_factor: Option<usize>,
    #[serde(flatten)]
    pub _ignored: serde_json::Map<String, Value>,
}

/// Qdrant's `SparseVectorParams`; `index` settings are accepted and ignored.
#[derive(Debug, Default, Deserialize)]
pub struct SparseParams {
    #[serde(default)]
    pub modifier: Option<SparseModifier>,
    #[serde(flatten)]
    pub _ignored: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct VectorParams {
    pub size: usize,
    pub distance: Metric,
    #[serde(default)]
    pub hnsw_config: Option<HnswConfigDiff>,
    /// This vector's own quantization, over the collection's (same shape).
    #[serde(default)]
    pub quantization_config: Option<Value>,
    /// `{"comparator": "max_sim"}`: each point holds a list of vectors (late interaction).
    #[serde(default)]
    pub multivector_config: Option<MultivectorConfig>,
    #[serde(flatten)]
    pub _ignored: serde_json::Map<String, Value>,
}

/// Qdrant's `MultiVectorConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultivectorConfig {
    pub comparator: Comparator,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct HnswConfigDiff {
    pub m: Option<usize>,
    pub ef_construct: Option<usize>,
    pub full_scan_threshold: Option<usize>,
    #[serde(flatten)]
    pub _ignored: serde_json::Map<String, Value>,
}

/// Fields of Qdrant's create body that only tune Qdrant's own internals: accepted, with no
/// effect here (each is listed in the README with why). Any other field Ametist does not
/// implement is a 400 naming it: accepting it would promise something not done.
const NO_EFFECT_COLLECTION: &[&str] = &["on_disk_payload", "wal_config", "optimizers_config"];
const NO_EFFECT_VECTOR: &[&str] = &["on_disk"];
const NO_EFFECT_HNSW: &[&str] = &["max_indexing_threads", "on_disk", "payload_m", "inline_storage"];
const NO_EFFECT_SPARSE: &[&str] = &["index"];

/// Refuses the fields of `extra` (what a body held beyond the fields Ametist reads) that
/// are neither in `no_effect` nor given their default: `defaults` lists fields accepted
/// only with the value that means what Ametist does anyway (e.g. `replication_factor: 1`).
fn refuse_unknown(
    extra: &serde_json::Map<String, Value>,
    path: &str,
    no_effect: &[&str],
    defaults: &[(&str, Value)],
) -> Result<(), String> {
    for (key, value) in extra {
        if no_effect.contains(&key.as_str()) || value.is_null() {
            continue;
        }
        let at = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        match defaults.iter().find(|(k, _)| k == key) {
            Some((_, d)) if d == value => {}
            Some((_, d)) => {
                return Err(format!("Wrong input: {at} = {value} is not supported yet (only {d} is)"));
            }
            None => return Err(format!("Wrong input: {at} is not supported yet")),
        }
    }
    Ok(())
}

/// The quantization a create-collection body asks for at `path` (where errors say it is):
/// scalar (its type and its quantile, unset: the configured one) or binary (its encoding),
/// or `None` for no setting. Product quantization is refused with a 400 naming it:
/// accepting it would promise a memory saving Ametist does not make.
fn quantization(config: Option<&Value>, path: &str) -> Result<Option<(Quantization, Option<f32>)>, String> {
    if config.is_some_and(|c| c.get("product").is_some()) {
        return Err(format!(
            "Wrong input: {path}.product: product quantization is not supported yet; use {{\"binary\": {{}}}} or {{\"scalar\": {{\"type\": \"int8\"}}}}"
        ));
    }
    if let Some(binary) = config.and_then(|c| c.get("binary")) {
        return binary_quantization(binary, &format!("{path}.binary")).map(|q| Some((q, None)));
    }
    let Some(scalar) = config.and_then(|c| c.get("scalar")) else { return Ok(None) };
    let kind = match scalar.get("type").and_then(Value::as_str) {
        Some("int8") => Quantization::Int8,
        Some("int4") => Quantization::Int4,
        Some("none") => Quantization::None,
        other => {
            return Err(format!(
                "Wrong input: {path}.scalar.type must be \"int8\", \"int4\" or \"none\", got {}",
                other.map_or_else(
                    || scalar.get("type").map_or("nothing".to_string(), Value::to_string),
                    |s| format!("\"{s}\"")
                )
            ))
        }
    };
    let quantile = match scalar.get("quantile") {
        None | Some(Value::Null) => None,
        Some(q) => match q.as_f64() {
            Some(q) if (0.5..=1.0).contains(&q) => Some(q as f32),
            _ => return Err(format!("Wrong input: {path}.scalar.quantile must be between 0.5 and 1, got {q}")),
        },
    };
    Ok(Some((kind, quantile)))
}

/// Qdrant's `BinaryQuantizationConfig` at `path`: `encoding` picks the codes; `always_ram`
/// is accepted (codes are always in memory); `query_encoding` other than the storage's is
/// refused, as is any other field, naming it.
fn binary_quantization(binary: &Value, path: &str) -> Result<Quantization, String> {
    const ENCODINGS: &str = "\"one_bit\", \"two_bits\" or \"one_and_half_bits\"";
    const QUERY_ENCODINGS: &str = "only \"default\" and \"binary\" are";
    let Some(fields) = binary.as_object() else {
        return Err(format!("Wrong input: {path} must be an object, got {binary}"));
    };
    let mut kind = Quantization::Binary;
    for (key, value) in fields {
        match (key.as_str(), value) {
            (_, Value::Null) | ("always_ram", Value::Bool(_)) => {}
            ("encoding", v) => {
                kind = match v.as_str() {
                    Some("one_bit") => Quantization::Binary,
                    Some("two_bits") => Quantization::BinaryTwoBits,
                    Some("one_and_half_bits") => Quantization::BinaryOneAndHalfBits,
                    _ => return Err(format!("Wrong input: {path}.encoding must be {ENCODINGS}, got {v}")),
                }
            }
            ("query_encoding", v) if matches!(v.as_str(), Some("default" | "binary")) => {}
            ("query_encoding", v) => {
                return Err(format!(
                    "Wrong input: {path}.query_encoding = {v} is not supported yet ({QUERY_ENCODINGS})"
                ))
            }
            ("always_ram", v) => return Err(format!("Wrong input: {path}.always_ram must be a boolean, got {v}")),
            _ => return Err(format!("Wrong input: {path}.{key} is not supported yet")),
        }
    }
    Ok(kind)
}

pub async fn list(State(state): State<AppState>) -> ApiResult<Value> {
    list_collections(&state, Instant::now())
}

/// `{"collections": [{"name"}]}` (REST and gRPC `List`).
pub(crate) fn list_collections(state: &AppState, started: Instant) -> ApiResult<Value> {
    let names: Vec<Value> = state.db.list_collections().into_iter().map(|n| json!({ "name": n })).collect();
    Ok(Answer::new(json!({ "collections": names }), started))
}

pub async fn exists(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Value> {
    let started = Instant::now();
    Ok(Answer::new(json!({ "exists": state.db.collection(&name).is_ok() }), started))
}

pub async fn create(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<bool> {
    let started = Instant::now();
    let req: CreateCollection = parse_body(&body, started)?;
    create_collection(&state, &name, req, started).await
}

/// Creates a collection (REST and gRPC `Create`).
pub(crate) async fn create_collection(
    state: &AppState,
    name: &str,
    req: CreateCollection,
    started: Instant,
) -> ApiResult<bool> {
    let bad = |what: String, e: serde_json::Error| {
        ApiError::bad_request(format!("Format error in JSON body: {what}: {e}"), started)
    };
    // `vectors` is one `{size, distance}` (the unnamed vector) or a map of names to them.
    // The name "" is Qdrant's spelling of the unnamed vector (LangChain sends it).
    let (unnamed, named): (Option<VectorParams>, Vec<(String, VectorParams)>) = match req.vectors {
        Value::Object(m) if !m.contains_key("size") && m.values().all(Value::is_object) => {
            let mut unnamed = None;
            let mut named = Vec::new();
            for (name, v) in m {
                let p: VectorParams = serde_json::from_value(v).map_err(|e| bad(format!("vectors.{name}"), e))?;
                if name.is_empty() {
                    unnamed = Some(p);
                } else {
                    named.push((name, p));
                }
            }
            (unnamed, named)
        }
        Value::Null if req.sparse_vectors.as_ref().is_some_and(|s| !s.is_empty()) => (None, Vec::new()),
        v => (Some(serde_json::from_value(v).map_err(|e| bad("vectors".into(), e))?), Vec::new()),
    };
    let refused = |e: String| ApiError::bad_request(e, started);
    refuse_unknown(&req._ignored, "", NO_EFFECT_COLLECTION, &[]).map_err(refused)?;
    let vector_paths = unnamed
        .iter()
        .map(|p| ("vectors".to_string(), p))
        .chain(named.iter().map(|(n, p)| (format!("vectors.{n}"), p)));
    for (path, p) in vector_paths {
        refuse_unknown(&p._ignored, &path, NO_EFFECT_VECTOR, &[("datatype", json!("float32"))]).map_err(refused)?;
        if let Some(h) = &p.hnsw_config {
            refuse_unknown(&h._ignored, &format!("{path}.hnsw_config"), NO_EFFECT_HNSW, &[]).map_err(refused)?;
        }
    }
    if let Some(h) = &req.hnsw_config {
        refuse_unknown(&h._ignored, "hnsw_config", NO_EFFECT_HNSW, &[]).map_err(refused)?;
    }
    for (name, p) in req.sparse_vectors.iter().flatten() {
        refuse_unknown(&p._ignored, &format!("sparse_vectors.{name}"), NO_EFFECT_SPARSE, &[]).map_err(refused)?;
    }
    let mut index: IndexConfig = state.config.partitions.index;
    let per_vector = unnamed.iter().chain(named.iter().map(|(_, p)| p)).filter_map(|p| p.hnsw_config.clone());
    for diff in req.hnsw_config.into_iter().chain(per_vector) {
        if let Some(m) = diff.m {
            index.m = m;
        }
        if let Some(ef) = diff.ef_construct {
            index.ef_construction = ef;
        }
        if let Some(t) = diff.full_scan_threshold {
            index.full_scan_threshold = t;
        }
    }
    // The collection's quantization, then the unnamed vector's own over it (its index is
    // the collection's); a named vector's own applies to that vector's index only.
    let codes =
        |config: Option<&Value>, path: &str| quantization(config, path).map_err(|e| ApiError::bad_request(e, started));
    let collection_codes = codes(req.quantization_config.as_ref(), "quantization_config")?;
    let unnamed_codes = match &unnamed {
        Some(p) => codes(p.quantization_config.as_ref(), "vectors.quantization_config")?,
        None => None,
    };
    for (kind, quantile) in collection_codes.into_iter().chain(unnamed_codes) {
        index.quantization = kind;
        index.quantile = quantile.or(index.quantile);
    }
    let mut named_params = std::collections::BTreeMap::new();
    // An unnamed multivector is the field "" among the named ones (see
    // `ametist_engine::config::dense_fields`); its codes are the collection's.
    let unnamed = match unnamed {
        Some(p) if p.multivector_config.is_some() => {
            let comparator = p.multivector_config.as_ref().expect("checked").comparator;
            named_params.insert(String::new(), EngineVectorParams::new(p.size, p.distance).multi(comparator));
            None
        }
        other => other,
    };
    for (name, p) in named {
        let mut params = EngineVectorParams::new(p.size, p.distance);
        if let Some(m) = &p.multivector_config {
            params = params.multi(m.comparator);
        }
        if let Some((kind, quantile)) =
            codes(p.quantization_config.as_ref(), &format!("vectors.{name}.quantization_config"))?
        {
            params.quantization = Some(kind);
            params.quantile = quantile;
        }
        named_params.insert(name, params);
    }
    if let Some(n) = req.shard_number.filter(|n| !(1..=MAX_PARTITIONS).contains(n)) {
        return Err(ApiError::bad_request(
            format!("Wrong input: shard_number must be between 1 and {MAX_PARTITIONS}, got {n}"),
            started,
        ));
    }
    // Every number is checked against what the index stores before anything is created.
    index.validate().map_err(|e| {
        ApiError::bad_request(
            format!("Wrong input: {} must be {}, got {}", e.field.api_name(), e.allowed, e.got),
            started,
        )
    })?;
    let sparse_vectors = req
        .sparse_vectors
        .unwrap_or_default()
        .into_iter()
        .map(|(name, p)| (name, EngineSparseParams { modifier: p.modifier.unwrap_or_default() }))
        .collect();
    let (dim, metric) = unnamed.as_ref().map_or((0, Metric::Cosine), |p| (p.size, p.distance));
    let sharding_method = req.sharding_method.unwrap_or_default();
    let strict_mode = match req.strict_mode_config {
        None | Some(Value::Null) => None,
        Some(v) => Some(super::strict::parse(v, "strict_mode_config").map_err(refused)?),
    };
    let settings = CollectionSettings {
        sharding_method,
        shard_keys: Vec::new(),
        strict_mode,
        metadata: req.metadata.unwrap_or_default(),
    };
    let config = CollectionConfig {
        dim,
        metric,
        partitions: req.shard_number,
        index: Some(index),
        vectors: named_params,
        sparse_vectors,
        replication_factor: req.replication_factor,
        write_consistency_factor: req.write_consistency_factor,
    };
    match &state.cluster {
        // On a cluster, the collection is created through Raft and placed over the members;
        // the cluster's metadata holds the spec only, so the settings beyond it are refused
        // there rather than kept on one node.
        Some(_) if settings != CollectionSettings::default() => {
            return Err(ApiError::bad_request(
                "Wrong input: sharding_method: custom, strict_mode_config and metadata are not yet supported in \
                 cluster mode",
                started,
            ))
        }
        Some(cluster) => cluster.create_collection(name, config).await.map_err(|e| from_cluster(e, started))?,
        None => state
            .db
            .create_collection_with(name, config, settings)
            .await
            .map_err(|e| ApiError::from_engine(e, started))?,
    }
    done(started)
}

/// A cluster error as Qdrant-shaped HTTP error.
pub(crate) fn from_cluster(e: ametist_cluster::ClusterError, started: Instant) -> ApiError {
    use ametist_cluster::ClusterError as C;
    use axum::http::StatusCode;
    let (status, message) = match &e {
        C::CollectionExists(_) => (StatusCode::CONFLICT, format!("Wrong input: {e}!")),
        C::CollectionNotFound(_) | C::PeerNotFound(_) => (StatusCode::NOT_FOUND, format!("Not found: {e}!")),
        e if e.is_bad_input() => (StatusCode::BAD_REQUEST, format!("Wrong input: {e}")),
        e if e.is_retryable() => (StatusCode::SERVICE_UNAVAILABLE, format!("Service unavailable: {e}")),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, format!("Service internal error: {e}")),
    };
    ApiError { status, message, started }
}

/// `GET /collections/{name}/cluster`: where the collection's partitions (shards) live.
pub async fn cluster_info(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Value> {
    collection_cluster_info(&state, &name, Instant::now()).await
}

/// Where a collection's partitions live (REST and gRPC `CollectionClusterInfo`): Qdrant's
/// `CollectionClusterInfo` JSON.
pub(crate) async fn collection_cluster_info(state: &AppState, name: &str, started: Instant) -> ApiResult<Value> {
    let c = state.db.collection(name).map_err(|e| ApiError::from_engine(e, started))?;
    // Points per partition, from the partitions that answer (Qdrant's `points_count`).
    let counts: std::collections::HashMap<usize, usize> = c
        .partitions()
        .await
        .map_err(|e| ApiError::from_engine(e, started))?
        .into_iter()
        .filter_map(|(info, stats)| stats.map(|s| (info.id, s.doc_count)))
        .collect();
    let mut info = match state.cluster.as_ref().and_then(|cl| cl.collection_status(name)) {
        Some(v) => v,
        // A single node (or a local collection) holds every partition.
        None => {
            let settings = c.settings();
            let ids = settings.partition_ids(c.spec());
            // A custom-sharded collection's partitions carry their key, as Qdrant's do.
            let key_of = |id: usize| settings.shard_keys.iter().find(|k| k.partitions.contains(&id)).map(|k| &k.key);
            json!({
                "peer_id": 0,
                "shard_count": ids.len(),
                "local_shards": ids.iter().map(|&s| {
                    let mut shard = json!({ "shard_id": s, "state": "Active" });
                    if let Some(key) = key_of(s) {
                        shard["shard_key"] = json!(key);
                    }
                    shard
                }).collect::<Vec<_>>(),
                "remote_shards": [],
                "shard_transfers": [],
            })
        }
    };
    // Every local shard says how many points it holds; one that cannot answer (stopped) is
    // `Dead` with 0 points, rather than a count nobody read.
    if let Some(shards) = info["local_shards"].as_array_mut() {
        for shard in shards {
            let id = shard["shard_id"].as_u64().unwrap_or(u64::MAX) as usize;
            match counts.get(&id) {
                Some(&n) => shard["points_count"] = json!(n),
                None => {
                    shard["points_count"] = json!(0);
                    shard["state"] = json!("Dead");
                }
            }
        }
    }
    Ok(Answer::new(info, started))
}

/// `GET /cluster`: members, leader, term and placement (Qdrant's shape plus `collections`).
pub async fn cluster_status(State(state): State<AppState>) -> ApiResult<Value> {
    let started = Instant::now();
    Ok(Answer::new(
        match &state.cluster {
            Some(c) => c.status(),
            None => json!({ "status": "disabled" }),
        },
        started,
    ))
}

/// `GET /aliases` and `GET /collections/aliases`: every alias.
pub async fn aliases(State(state): State<AppState>) -> ApiResult<Value> {
    list_aliases(&state, Instant::now())
}

/// Every alias (REST and gRPC `ListAliases`): `{"aliases": [{alias_name, collection_name}]}`.
pub(crate) fn list_aliases(state: &AppState, started: Instant) -> ApiResult<Value> {
    Ok(Answer::new(aliases_json(state, None), started))
}

/// `GET /collections/{name}/aliases`: the aliases of one collection.
pub async fn collection_aliases(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Value> {
    list_collection_aliases(&state, &name, Instant::now())
}

/// The aliases of one collection (REST and gRPC `ListCollectionAliases`).
pub(crate) fn list_collection_aliases(state: &AppState, name: &str, started: Instant) -> ApiResult<Value> {
    let c = state.db.collection(name).map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(aliases_json(state, Some(&c.spec().name)), started))
}

fn aliases_json(state: &AppState, of: Option<&str>) -> Value {
    let list: Vec<Value> = state
        .db
        .list_aliases()
        .into_iter()
        .filter(|(_, c)| of.is_none_or(|of| of == c))
        .map(|(alias, collection)| json!({ "alias_name": alias, "collection_name": collection }))
        .collect();
    json!({ "aliases": list })
}

/// `POST /collections/aliases`: Qdrant's `ChangeAliasesOperation`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeAliases {
    pub actions: Vec<AliasOperation>,
}

/// One of Qdrant's alias operations, each an object with one key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum AliasOperation {
    #[serde(rename = "create_alias")]
    Create { collection_name: String, alias_name: String },
    #[serde(rename = "delete_alias")]
    Delete { alias_name: String },
    #[serde(rename = "rename_alias")]
    Rename { old_alias_name: String, new_alias_name: String },
}

/// `POST /collections/aliases`: the actions are applied in order and all at once (a reader
/// sees the aliases before or after the whole list), and durably.
pub async fn update_aliases(State(state): State<AppState>, body: Bytes) -> ApiResult<bool> {
    let started = Instant::now();
    let req: ChangeAliases = parse_body(&body, started)?;
    change_aliases(&state, req, started).await
}

/// Applies alias actions in order, all at once (REST and gRPC `UpdateAliases`).
pub(crate) async fn change_aliases(state: &AppState, req: ChangeAliases, started: Instant) -> ApiResult<bool> {
    if state.cluster.is_some() {
        return Err(ApiError::bad_request("Wrong input: aliases are not yet supported in cluster mode", started));
    }
    let actions = req
        .actions
        .into_iter()
        .map(|a| match a {
            AliasOperation::Create { collection_name, alias_name } => {
                AliasAction::Create { alias: alias_name, collection: collection_name }
            }
            AliasOperation::Delete { alias_name } => AliasAction::Delete { alias: alias_name },
            AliasOperation::Rename { old_alias_name, new_alias_name } => {
                AliasAction::Rename { old: old_alias_name, new: new_alias_name }
            }
        })
        .collect();
    state.db.update_aliases(actions).await.map_err(|e| ApiError::from_engine(e, started))?;
    done(started)
}

/// `PATCH /collections/{name}`: Qdrant's `UpdateCollection`. `metadata` (merged; a `null`
/// value removes its key) and `strict_mode_config` (merged field by field) change; the
/// settings Ametist applies only at creation are refused naming them unless they repeat
/// what the collection has; `optimizers_config` and `params.on_disk_payload` tune Qdrant's
/// internals and are accepted with no effect, as on create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateCollection {
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub strict_mode_config: Option<Value>,
    #[serde(default)]
    pub params: Option<serde_json::Map<String, Value>>,
    /// Accepted with no effect (see `NO_EFFECT_COLLECTION`).
    #[serde(default, rename = "optimizers_config")]
    pub _optimizers_config: Option<Value>,
    #[serde(default)]
    pub vectors: Option<Value>,
    #[serde(default)]
    pub hnsw_config: Option<Value>,
    #[serde(default)]
    pub quantization_config: Option<Value>,
    #[serde(default)]
    pub sparse_vectors: Option<Value>,
}

pub async fn update(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<bool> {
    let started = Instant::now();
    let c = state.db.collection(&name).map_err(|e| ApiError::from_engine(e, started))?;
    let req: UpdateCollection = parse_body(&body, started)?;
    update_collection(&state, &c, req, started).await
}

/// Changes a collection's settings (REST and gRPC `Update`); what cannot change is refused.
pub(crate) async fn update_collection(
    state: &AppState,
    c: &ametist_engine::collection::Collection,
    req: UpdateCollection,
    started: Instant,
) -> ApiResult<bool> {
    let refuse = |field: &str, why: &str| {
        ApiError::bad_request(format!("Wrong input: {field} can not be changed yet ({why})"), started)
    };
    let rebuild = "changing the index or its codes needs a rebuild of every partition, not implemented yet";
    for (field, value) in [
        ("vectors", &req.vectors),
        ("hnsw_config", &req.hnsw_config),
        ("quantization_config", &req.quantization_config),
        ("sparse_vectors", &req.sparse_vectors),
    ] {
        if value.as_ref().is_some_and(|v| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty())) {
            return Err(refuse(field, rebuild));
        }
    }
    for (key, value) in req.params.iter().flatten() {
        let same = match key.as_str() {
            "replication_factor" => value == &json!(c.spec().replication.factor),
            "write_consistency_factor" => value == &json!(c.spec().replication.write_consistency),
            "on_disk_payload" | "read_fan_out_factor" | "read_fan_out_delay_ms" => true,
            _ => false,
        };
        if !same && !value.is_null() {
            return Err(refuse(&format!("params.{key}"), "it is fixed when the collection is created"));
        }
    }
    let strict = match req.strict_mode_config {
        None | Some(Value::Null) => None,
        Some(v) => Some(super::strict::parse(v, "strict_mode_config").map_err(|e| ApiError::bad_request(e, started))?),
    };
    if state.cluster.is_some() && (strict.is_some() || req.metadata.as_ref().is_some_and(|m| !m.is_empty())) {
        return Err(ApiError::bad_request(
            "Wrong input: strict_mode_config and metadata are not yet supported in cluster mode",
            started,
        ));
    }
    if strict.is_some() || req.metadata.is_some() {
        c.update_settings(strict, req.metadata).await.map_err(|e| ApiError::from_engine(e, started))?;
    }
    done(started)
}

pub async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<bool> {
    delete_collection(&state, &name, Instant::now()).await
}

/// Deletes a collection (REST and gRPC `Delete`): whether there was one.
pub(crate) async fn delete_collection(state: &AppState, name: &str, started: Instant) -> ApiResult<bool> {
    let deleted = match &state.cluster {
        Some(cluster) => cluster.delete_collection(name).await.map_err(|e| from_cluster(e, started))?,
        None => state.db.delete_collection(name).await.map_err(|e| ApiError::from_engine(e, started))?,
    };
    Ok(Answer::new(deleted, started))
}

pub async fn info(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Value> {
    collection_info(&state, &name, Instant::now()).await
}

/// Qdrant's `CollectionInfo` as JSON (REST, and gRPC `Get` converts it).
pub(crate) async fn collection_info(state: &AppState, name: &str, started: Instant) -> ApiResult<Value> {
    let c = state.db.collection(name).map_err(|e| ApiError::from_engine(e, started))?;
    let info = c.info().await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(Answer::new(collection_info_json(&info, &c.settings()), started))
}

/// Qdrant's `CollectionInfo` shape, filled from what Ametist knows.
fn collection_info_json(info: &CollectionInfo, settings: &CollectionSettings) -> Value {
    use ametist_engine::supervisor::ActorState;
    let all_running = info.partitions.iter().all(|p| p.state == ActorState::Running);
    let any_stopped = info.partitions.iter().any(|p| p.state == ActorState::Stopped);
    let status = if any_stopped {
        "red"
    } else if all_running {
        "green"
    } else {
        "yellow"
    };
    let s = &info.spec;
    // One `{size, distance}` for a collection with only the unnamed vector, else a map of
    // names (empty for a collection with only sparse vectors).
    let fields = s.dense_fields();
    let field_json = |p: &EngineVectorParams| {
        let mut v = json!({ "size": p.dim, "distance": p.metric });
        if p.quantization.is_some() {
            v["quantization_config"] = quantization_json(&p.index_config(&s.index));
        }
        if let Some(c) = p.multivector {
            v["multivector_config"] = json!({ "comparator": c });
        }
        v
    };
    let vectors = match fields.get("") {
        Some(p) if fields.len() == 1 => field_json(p),
        _ => Value::Object(fields.iter().map(|(n, p)| (n.clone(), field_json(p))).collect()),
    };
    let sparse: serde_json::Map<String, Value> = s
        .sparse_vectors
        .iter()
        .map(|(n, p)| {
            let v = match p.modifier {
                SparseModifier::Idf => json!({ "modifier": "idf" }),
                SparseModifier::None => json!({}),
            };
            (n.clone(), v)
        })
        .collect();
    let mut info_json = json!({
        "status": status,
        "optimizer_status": "ok",
        "warnings": [],
        "indexed_vectors_count": info.points,
        "points_count": info.points,
        "segments_count": s.partitions,
        "config": {
            "params": {
                "vectors": vectors,
                "sparse_vectors": if sparse.is_empty() { Value::Null } else { Value::Object(sparse) },
                "shard_number": s.partitions,
                "replication_factor": s.replication.factor,
                "write_consistency_factor": s.replication.write_consistency,
                "on_disk_payload": false,
            },
            "hnsw_config": {
                "m": s.index.m,
                "ef_construct": s.index.ef_construction,
                "full_scan_threshold": s.index.full_scan_threshold,
                "max_indexing_threads": 0,
                "on_disk": false,
            },
            "optimizer_config": {
                "deleted_threshold": 0.2,
                "vacuum_min_vector_number": 1000,
                "default_segment_number": 0,
                "max_segment_size": null,
                "memmap_threshold": null,
                "indexing_threshold": s.index.full_scan_threshold,
                "flush_interval_sec": 5,
                "max_optimization_threads": null,
            },
            "wal_config": { "wal_capacity_mb": 32, "wal_segments_ahead": 0 },
            "quantization_config": quantization_json(&s.index),
            "strict_mode_config": settings.strict_mode.clone().unwrap_or_default(),
        },
        "payload_schema": info.text_schema.iter().map(|(k, n)| (k.clone(), json!({ "data_type": "text", "points": n })))
            .chain(info.payload_schema.iter().map(|(k, (t, n))| (k.clone(), json!({ "data_type": t, "points": n }))))
            .collect::<serde_json::Map<String, Value>>(),
    });
    if settings.sharding_method == ShardingMethod::Custom {
        info_json["config"]["params"]["sharding_method"] = json!("custom");
    }
    if !settings.metadata.is_empty() {
        info_json["config"]["metadata"] = Value::Object(settings.metadata.clone());
    }
    info_json
}

/// Qdrant's shape of a quantization setting, for int8 and the binary codes; int4 is
/// Ametist's own, which Qdrant's clients would not parse (the partitions route shows it),
/// so it reads as none here.
fn quantization_json(index: &IndexConfig) -> Value {
    let binary = |encoding: &str| json!({ "binary": { "always_ram": true, "encoding": encoding } });
    match index.quantization {
        Quantization::Int8 => json!({ "scalar": { "type": "int8", "quantile": index.quantile, "always_ram": true } }),
        Quantization::Binary => binary("one_bit"),
        Quantization::BinaryTwoBits => binary("two_bits"),
        Quantization::BinaryOneAndHalfBits => binary("one_and_half_bits"),
        Quantization::None | Quantization::Int4 => Value::Null,
    }
}

/// `GET /collections/{name}/optimizations`: Qdrant's `OptimizationsResponse`. Ametist has
/// no segments and no optimizer: a partition indexes every write as it applies it, so
/// nothing is ever running, queued or idle, and every figure is 0. `with` (a comma list of
/// `queued`, `completed`, `idle_segments`) adds those lists, empty; `completed_limit` is
/// checked.
pub async fn optimizations(
    State(state): State<AppState>,
    Path(name): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> ApiResult<Value> {
    let started = Instant::now();
    state.db.collection(&name).map_err(|e| ApiError::from_engine(e, started))?;
    let mut result = json!({
        "summary": {"queued_optimizations": 0, "queued_segments": 0, "queued_points": 0, "idle_segments": 0},
        "running": [],
    });
    for pair in query.as_deref().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "with" => {
                for w in v.replace("%2C", ",").replace("%2c", ",").split(',').filter(|w| !w.is_empty()) {
                    match w {
                        "queued" | "completed" | "idle_segments" => result[w] = json!([]),
                        other => {
                            return Err(ApiError::bad_request(
                                format!(
                                    "Wrong input: unknown `with` value `{other}` (queued, completed, idle_segments)"
                                ),
                                started,
                            ))
                        }
                    }
                }
            }
            "completed_limit" if v.parse::<u64>().is_ok() => {}
            "completed_limit" => {
                return Err(ApiError::bad_request(
                    format!("Wrong input: completed_limit must be a non-negative integer, got `{v}`"),
                    started,
                ))
            }
            _ => {}
        }
    }
    Ok(Answer::new(result, started))
}
