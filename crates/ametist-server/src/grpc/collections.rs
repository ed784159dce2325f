//! The `qdrant.Collections` service: list, get, create, update, delete and exists, aliases,
//! cluster info and shard keys, through the REST handlers' functions (`api::collections`,
//! `api::shards`). A create or update message becomes
//! the REST body it describes and is parsed by the REST parser, so the same settings are
//! accepted, ignored as internal tuning, or refused by name.

use std::time::Instant;

use serde_json::{json, Map, Value as Json};
use tonic::{Request, Response, Status};

use super::convert::{json_payload, payload_json};
use super::proto::{self, collections_server::Collections};
use super::{invalid, status, unimplemented};
use crate::api::collections as rest;
use crate::api::shards;
use crate::api::AppState;

pub struct CollectionsService {
    state: AppState,
}

impl CollectionsService {
    pub fn new(state: AppState) -> Self {
        CollectionsService { state }
    }
}

fn secs(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

/// Inserts `key: value` for each set (`Some`) value.
macro_rules! set_fields {
    ($map:expr, $($key:literal => $value:expr),* $(,)?) => {
        $( if let Some(v) = $value { $map.insert($key.to_string(), json!(v)); } )*
    };
}

fn distance_name(d: i32) -> Result<&'static str, Status> {
    match proto::Distance::try_from(d) {
        Ok(proto::Distance::Cosine) => Ok("Cosine"),
        Ok(proto::Distance::Euclid) => Ok("Euclid"),
        Ok(proto::Distance::Dot) => Ok("Dot"),
        Ok(proto::Distance::Manhattan) => Ok("Manhattan"),
        _ => Err(invalid("vectors_config: distance must be Cosine, Euclid, Dot or Manhattan")),
    }
}

#[allow(deprecated)]
fn hnsw_json(h: proto::HnswConfigDiff) -> Json {
    let mut m = Map::new();
    set_fields!(m,
        "m" => h.m, "ef_construct" => h.ef_construct, "full_scan_threshold" => h.full_scan_threshold,
        "max_indexing_threads" => h.max_indexing_threads, "on_disk" => h.on_disk, "payload_m" => h.payload_m,
        "inline_storage" => h.inline_storage, "memory" => h.memory,
    );
    Json::Object(m)
}

#[allow(deprecated)]
fn quantization_json(q: proto::QuantizationConfig) -> Result<Json, Status> {
    use proto::quantization_config::Quantization as Q;
    Ok(match q.quantization {
        None => Json::Null,
        Some(Q::Scalar(s)) => {
            let kind = match proto::QuantizationType::try_from(s.r#type) {
                Ok(proto::QuantizationType::Int8) => "int8",
                _ => return Err(invalid("quantization_config.scalar.type must be Int8")),
            };
            let mut m = Map::new();
            m.insert("type".into(), json!(kind));
            set_fields!(m, "quantile" => s.quantile, "always_ram" => s.always_ram, "memory" => s.memory);
            json!({ "scalar": m })
        }
        Some(Q::Binary(b)) => {
            let mut m = Map::new();
            let encoding = b.encoding.map(|e| match proto::BinaryQuantizationEncoding::try_from(e) {
                Ok(proto::BinaryQuantizationEncoding::TwoBits) => "two_bits",
                Ok(proto::BinaryQuantizationEncoding::OneAndHalfBits) => "one_and_half_bits",
                _ => "one_bit",
            });
            set_fields!(m, "always_ram" => b.always_ram, "encoding" => encoding, "memory" => b.memory);
            if let Some(qe) = b.query_encoding {
                use proto::binary_quantization_query_encoding::{Setting, Variant};
                // Only the default and binary encodings (the query encoded as the points
                // are) are served; the REST parser refuses the others by name.
                let name = match qe.variant {
                    None => "default",
                    Some(Variant::Setting(s)) => match Setting::try_from(s) {
                        Ok(Setting::Default) => "default",
                        Ok(Setting::Binary) => "binary",
                        Ok(Setting::Scalar4Bits) => "scalar4bits",
                        _ => "scalar8bits",
                    },
                };
                m.insert("query_encoding".into(), json!(name));
            }
            json!({ "binary": m })
        }
        Some(Q::Product(_)) => json!({ "product": {} }),
        Some(Q::Turboquant(_)) => json!({ "turboquant": {} }),
    })
}

#[allow(deprecated)]
fn vector_params_json(p: proto::VectorParams) -> Result<Json, Status> {
    let mut m = Map::new();
    m.insert("size".into(), json!(p.size));
    m.insert("distance".into(), json!(distance_name(p.distance)?));
    if let Some(h) = p.hnsw_config {
        m.insert("hnsw_config".into(), hnsw_json(h));
    }
    if let Some(q) = p.quantization_config {
        m.insert("quantization_config".into(), quantization_json(q)?);
    }
    set_fields!(m, "on_disk" => p.on_disk, "memory" => p.memory);
    if let Some(d) = p.datatype {
        let name = match proto::Datatype::try_from(d) {
            Ok(proto::Datatype::Default | proto::Datatype::Float32) => "float32",
            Ok(proto::Datatype::Uint8) => "uint8",
            Ok(proto::Datatype::Float16) => "float16",
            _ => "turbo",
        };
        m.insert("datatype".into(), json!(name));
    }
    if p.multivector_config.is_some() {
        m.insert("multivector_config".into(), json!({ "comparator": "max_sim" }));
    }
    Ok(Json::Object(m))
}

fn vectors_config_json(v: proto::VectorsConfig) -> Result<Json, Status> {
    use proto::vectors_config::Config;
    match v.config {
        None => Ok(Json::Null),
        Some(Config::Params(p)) => vector_params_json(p),
        Some(Config::ParamsMap(m)) => {
            let mut out = Map::new();
            for (name, p) in m.map {
                out.insert(name, vector_params_json(p)?);
            }
            Ok(Json::Object(out))
        }
    }
}

fn sparse_json(s: proto::SparseVectorConfig) -> Json {
    let map = s
        .map
        .into_iter()
        .map(|(name, p)| {
            let mut m = Map::new();
            if let Some(modifier) = p.modifier {
                let idf = proto::Modifier::try_from(modifier).is_ok_and(|m| m == proto::Modifier::Idf);
                m.insert("modifier".into(), json!(if idf { "idf" } else { "none" }));
            }
            if p.index.is_some() {
                m.insert("index".into(), json!({}));
            }
            (name, Json::Object(m))
        })
        .collect();
    Json::Object(map)
}

#[allow(deprecated)]
fn strict_json(s: proto::StrictModeConfig) -> Result<Json, Status> {
    if s.multivector_config.is_some() || s.sparse_config.is_some() {
        return Err(invalid("strict_mode_config: multivector_config and sparse_config are not supported yet"));
    }
    let mut m = Map::new();
    set_fields!(m,
        "enabled" => s.enabled, "max_query_limit" => s.max_query_limit, "max_timeout" => s.max_timeout,
        "unindexed_filtering_retrieve" => s.unindexed_filtering_retrieve,
        "unindexed_filtering_update" => s.unindexed_filtering_update,
        "search_max_hnsw_ef" => s.search_max_hnsw_ef, "search_allow_exact" => s.search_allow_exact,
        "search_max_oversampling" => s.search_max_oversampling, "upsert_max_batchsize" => s.upsert_max_batchsize,
        "search_max_batchsize" => s.search_max_batchsize,
        "max_collection_vector_size_bytes" => s.max_collection_vector_size_bytes,
        "read_rate_limit" => s.read_rate_limit, "write_rate_limit" => s.write_rate_limit,
        "max_collection_payload_size_bytes" => s.max_collection_payload_size_bytes,
        "filter_max_conditions" => s.filter_max_conditions, "condition_max_size" => s.condition_max_size,
        "max_points_count" => s.max_points_count, "max_payload_index_count" => s.max_payload_index_count,
        "max_resident_memory_percent" => s.max_resident_memory_percent,
    );
    Ok(Json::Object(m))
}

/// A `CreateCollection` as REST's create body.
#[allow(deprecated)]
fn create_body(c: proto::CreateCollection) -> Result<Json, Status> {
    let mut m = Map::new();
    if let Some(v) = c.vectors_config {
        m.insert("vectors".into(), vectors_config_json(v)?);
    }
    if let Some(h) = c.hnsw_config {
        m.insert("hnsw_config".into(), hnsw_json(h));
    }
    if let Some(q) = c.quantization_config {
        m.insert("quantization_config".into(), quantization_json(q)?);
    }
    if let Some(s) = c.sparse_vectors_config {
        m.insert("sparse_vectors".into(), sparse_json(s));
    }
    if let Some(s) = c.strict_mode_config {
        m.insert("strict_mode_config".into(), strict_json(s)?);
    }
    // Qdrant's internal tuning, accepted with no effect as on REST: only their presence
    // matters to the REST parser.
    if c.wal_config.is_some() {
        m.insert("wal_config".into(), json!({}));
    }
    if c.optimizers_config.is_some() {
        m.insert("optimizers_config".into(), json!({}));
    }
    // Storage layouts Ametist does not have: present, so the REST parser refuses them by name.
    if c.payload.is_some() {
        m.insert("payload".into(), json!({}));
    }
    if c.id_tracker.is_some() {
        m.insert("id_tracker".into(), json!({}));
    }
    let sharding = c.sharding_method.map(|s| match proto::ShardingMethod::try_from(s) {
        Ok(proto::ShardingMethod::Custom) => "custom",
        _ => "auto",
    });
    set_fields!(m,
        "shard_number" => c.shard_number, "on_disk_payload" => c.on_disk_payload,
        "replication_factor" => c.replication_factor, "write_consistency_factor" => c.write_consistency_factor,
        "sharding_method" => sharding,
    );
    if !c.metadata.is_empty() {
        m.insert("metadata".into(), Json::Object(payload_json(c.metadata)));
    }
    Ok(Json::Object(m))
}

/// An `UpdateCollection` as REST's update body.
#[allow(deprecated)]
fn update_body(u: proto::UpdateCollection) -> Result<Json, Status> {
    let mut m = Map::new();
    if u.optimizers_config.is_some() {
        m.insert("optimizers_config".into(), json!({}));
    }
    if let Some(p) = u.params {
        let mut params = Map::new();
        set_fields!(params,
            "replication_factor" => p.replication_factor, "write_consistency_factor" => p.write_consistency_factor,
            "on_disk_payload" => p.on_disk_payload, "read_fan_out_factor" => p.read_fan_out_factor,
            "read_fan_out_delay_ms" => p.read_fan_out_delay_ms,
        );
        if p.payload.is_some() || p.id_tracker.is_some() {
            return Err(invalid("params.payload and params.id_tracker can not be changed"));
        }
        m.insert("params".into(), Json::Object(params));
    }
    // Any change to these needs a rebuild; the REST parser refuses a non-empty one by name.
    if let Some(h) = u.hnsw_config {
        m.insert("hnsw_config".into(), hnsw_json(h));
    }
    if let Some(v) = u.vectors_config {
        if v.config.is_some() {
            m.insert("vectors".into(), json!({ "changed": {} }));
        }
    }
    if let Some(q) = u.quantization_config {
        if q.quantization.is_some() {
            m.insert("quantization_config".into(), json!({ "changed": {} }));
        }
    }
    if let Some(s) = u.sparse_vectors_config {
        m.insert("sparse_vectors".into(), sparse_json(s));
    }
    if let Some(s) = u.strict_mode_config {
        m.insert("strict_mode_config".into(), strict_json(s)?);
    }
    if !u.metadata.is_empty() {
        m.insert("metadata".into(), Json::Object(payload_json(u.metadata)));
    }
    Ok(Json::Object(m))
}

fn parse<T: serde::de::DeserializeOwned>(body: Json) -> Result<T, Status> {
    serde_json::from_value(body).map_err(|e| Status::invalid_argument(format!("Format error in request: {e}")))
}

// ---- CollectionInfo ----------------------------------------------------------------

fn opt_u64(v: &Json, key: &str) -> Option<u64> {
    v.get(key).and_then(Json::as_u64)
}

fn distance_of(v: &Json) -> i32 {
    (match v.get("distance").and_then(Json::as_str) {
        Some("Cosine") => proto::Distance::Cosine,
        Some("Euclid") => proto::Distance::Euclid,
        Some("Dot") => proto::Distance::Dot,
        Some("Manhattan") => proto::Distance::Manhattan,
        _ => proto::Distance::UnknownDistance,
    }) as i32
}

fn quantization_of(v: Option<&Json>) -> Option<proto::QuantizationConfig> {
    use proto::quantization_config::Quantization as Q;
    let v = v?;
    let q = if let Some(s) = v.get("scalar") {
        Q::Scalar(proto::ScalarQuantization {
            r#type: proto::QuantizationType::Int8 as i32,
            quantile: s.get("quantile").and_then(Json::as_f64).map(|q| q as f32),
            ..Default::default()
        })
    } else if let Some(b) = v.get("binary") {
        let encoding = match b.get("encoding").and_then(Json::as_str) {
            Some("two_bits") => proto::BinaryQuantizationEncoding::TwoBits,
            Some("one_and_half_bits") => proto::BinaryQuantizationEncoding::OneAndHalfBits,
            _ => proto::BinaryQuantizationEncoding::OneBit,
        };
        Q::Binary(proto::BinaryQuantization { encoding: Some(encoding as i32), ..Default::default() })
    } else {
        return None;
    };
    Some(proto::QuantizationConfig { quantization: Some(q) })
}

fn vector_params_of(v: &Json) -> proto::VectorParams {
    proto::VectorParams {
        size: opt_u64(v, "size").unwrap_or_default(),
        distance: distance_of(v),
        quantization_config: quantization_of(v.get("quantization_config")),
        multivector_config: v
            .get("multivector_config")
            .map(|_| proto::MultiVectorConfig { comparator: proto::MultiVectorComparator::MaxSim as i32 }),
        ..Default::default()
    }
}

fn payload_type(t: Option<&str>) -> i32 {
    (match t {
        Some("keyword") => proto::PayloadSchemaType::Keyword,
        Some("integer") => proto::PayloadSchemaType::Integer,
        Some("float") => proto::PayloadSchemaType::Float,
        Some("geo") => proto::PayloadSchemaType::Geo,
        Some("text") => proto::PayloadSchemaType::Text,
        Some("bool") => proto::PayloadSchemaType::Bool,
        Some("datetime") => proto::PayloadSchemaType::Datetime,
        Some("uuid") => proto::PayloadSchemaType::Uuid,
        _ => proto::PayloadSchemaType::UnknownType,
    }) as i32
}

/// REST's `CollectionInfo` JSON (`api::collections::collection_info`) as the proto.
fn collection_info(v: &Json) -> proto::CollectionInfo {
    let config = &v["config"];
    let params = &config["params"];
    let vectors = &params["vectors"];
    let vectors_config = if vectors.get("size").is_some() {
        proto::vectors_config::Config::Params(vector_params_of(vectors))
    } else {
        let map = vectors
            .as_object()
            .map(|m| m.iter().map(|(n, p)| (n.clone(), vector_params_of(p))).collect())
            .unwrap_or_default();
        proto::vectors_config::Config::ParamsMap(proto::VectorParamsMap { map })
    };
    let sparse = params["sparse_vectors"].as_object().map(|m| proto::SparseVectorConfig {
        map: m
            .iter()
            .map(|(n, p)| {
                let idf = p.get("modifier").and_then(Json::as_str) == Some("idf");
                let modifier = if idf { proto::Modifier::Idf } else { proto::Modifier::None };
                (n.clone(), proto::SparseVectorParams { index: None, modifier: Some(modifier as i32) })
            })
            .collect(),
    });
    let custom = params.get("sharding_method").and_then(Json::as_str) == Some("custom");
    let hnsw = &config["hnsw_config"];
    let opt = &config["optimizer_config"];
    let strict = &config["strict_mode_config"];
    let status = match v["status"].as_str() {
        Some("green") => proto::CollectionStatus::Green,
        Some("yellow") => proto::CollectionStatus::Yellow,
        Some("red") => proto::CollectionStatus::Red,
        _ => proto::CollectionStatus::Grey,
    };
    let b = |v: &Json, k: &str| v.get(k).and_then(Json::as_bool);
    let u32_of = |v: &Json, k: &str| opt_u64(v, k).map(|n| n.min(u32::MAX as u64) as u32);
    #[allow(deprecated)]
    let info = proto::CollectionInfo {
        status: status as i32,
        optimizer_status: Some(proto::OptimizerStatus { ok: true, error: String::new() }),
        segments_count: opt_u64(v, "segments_count").unwrap_or_default(),
        points_count: opt_u64(v, "points_count"),
        indexed_vectors_count: opt_u64(v, "indexed_vectors_count"),
        warnings: Vec::new(),
        update_queue: Some(proto::UpdateQueueInfo { length: 0, deferred_points: None }),
        created_at: None,
        payload_schema: v["payload_schema"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, s)| {
                        let info = proto::PayloadSchemaInfo {
                            data_type: payload_type(s.get("data_type").and_then(Json::as_str)),
                            params: None,
                            points: opt_u64(s, "points"),
                        };
                        (k.clone(), info)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        config: Some(proto::CollectionConfig {
            params: Some(proto::CollectionParams {
                shard_number: u32_of(params, "shard_number").unwrap_or(1),
                on_disk_payload: false,
                vectors_config: Some(proto::VectorsConfig { config: Some(vectors_config) }),
                replication_factor: u32_of(params, "replication_factor"),
                write_consistency_factor: u32_of(params, "write_consistency_factor"),
                sharding_method: custom.then_some(proto::ShardingMethod::Custom as i32),
                sparse_vectors_config: sparse,
                ..Default::default()
            }),
            hnsw_config: Some(proto::HnswConfigDiff {
                m: opt_u64(hnsw, "m"),
                ef_construct: opt_u64(hnsw, "ef_construct"),
                full_scan_threshold: opt_u64(hnsw, "full_scan_threshold"),
                max_indexing_threads: opt_u64(hnsw, "max_indexing_threads"),
                on_disk: b(hnsw, "on_disk"),
                ..Default::default()
            }),
            optimizer_config: Some(proto::OptimizersConfigDiff {
                deleted_threshold: opt.get("deleted_threshold").and_then(Json::as_f64),
                vacuum_min_vector_number: opt_u64(opt, "vacuum_min_vector_number"),
                default_segment_number: opt_u64(opt, "default_segment_number"),
                indexing_threshold: opt_u64(opt, "indexing_threshold"),
                flush_interval_sec: opt_u64(opt, "flush_interval_sec"),
                ..Default::default()
            }),
            wal_config: Some(proto::WalConfigDiff {
                wal_capacity_mb: opt_u64(&config["wal_config"], "wal_capacity_mb"),
                wal_segments_ahead: opt_u64(&config["wal_config"], "wal_segments_ahead"),
                wal_retain_closed: None,
            }),
            quantization_config: quantization_of(config.get("quantization_config")),
            strict_mode_config: strict.as_object().map(|_| proto::StrictModeConfig {
                enabled: b(strict, "enabled"),
                max_query_limit: u32_of(strict, "max_query_limit"),
                max_timeout: u32_of(strict, "max_timeout"),
                unindexed_filtering_retrieve: b(strict, "unindexed_filtering_retrieve"),
                unindexed_filtering_update: b(strict, "unindexed_filtering_update"),
                search_max_hnsw_ef: u32_of(strict, "search_max_hnsw_ef"),
                search_allow_exact: b(strict, "search_allow_exact"),
                search_max_oversampling: strict.get("search_max_oversampling").and_then(Json::as_f64).map(|o| o as f32),
                upsert_max_batchsize: opt_u64(strict, "upsert_max_batchsize"),
                search_max_batchsize: opt_u64(strict, "search_max_batchsize"),
                read_rate_limit: u32_of(strict, "read_rate_limit"),
                write_rate_limit: u32_of(strict, "write_rate_limit"),
                filter_max_conditions: opt_u64(strict, "filter_max_conditions"),
                condition_max_size: opt_u64(strict, "condition_max_size"),
                max_points_count: opt_u64(strict, "max_points_count"),
                max_payload_index_count: opt_u64(strict, "max_payload_index_count"),
                ..Default::default()
            }),
            metadata: config["metadata"].as_object().cloned().map(json_payload).unwrap_or_default(),
        }),
    };
    info
}

#[tonic::async_trait]
impl Collections for CollectionsService {
    async fn get(
        &self,
        request: Request<proto::GetCollectionInfoRequest>,
    ) -> Result<Response<proto::GetCollectionInfoResponse>, Status> {
        let started = Instant::now();
        let name = request.into_inner().collection_name;
        let answer = rest::collection_info(&self.state, &name, started).await.map_err(status)?;
        Ok(Response::new(proto::GetCollectionInfoResponse {
            result: Some(collection_info(&answer.result)),
            time: secs(started),
        }))
    }

    async fn list(
        &self,
        _: Request<proto::ListCollectionsRequest>,
    ) -> Result<Response<proto::ListCollectionsResponse>, Status> {
        let started = Instant::now();
        let answer = rest::list_collections(&self.state, started).map_err(status)?;
        let collections = answer.result["collections"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|c| proto::CollectionDescription { name: c["name"].as_str().unwrap_or_default().to_string() })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(proto::ListCollectionsResponse { collections, time: secs(started) }))
    }

    async fn create(
        &self,
        request: Request<proto::CreateCollection>,
    ) -> Result<Response<proto::CollectionOperationResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let name = req.collection_name.clone();
        let body: rest::CreateCollection = parse(create_body(req)?)?;
        let answer = rest::create_collection(&self.state, &name, body, started).await.map_err(status)?;
        Ok(Response::new(proto::CollectionOperationResponse { result: answer.result, time: secs(started) }))
    }

    async fn update(
        &self,
        request: Request<proto::UpdateCollection>,
    ) -> Result<Response<proto::CollectionOperationResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self
            .state
            .db
            .collection(&req.collection_name)
            .map_err(|e| status(crate::api::envelope::ApiError::from_engine(e, started)))?;
        let body: rest::UpdateCollection = parse(update_body(req)?)?;
        let answer = rest::update_collection(&self.state, &c, body, started).await.map_err(status)?;
        Ok(Response::new(proto::CollectionOperationResponse { result: answer.result, time: secs(started) }))
    }

    async fn delete(
        &self,
        request: Request<proto::DeleteCollection>,
    ) -> Result<Response<proto::CollectionOperationResponse>, Status> {
        let started = Instant::now();
        let name = request.into_inner().collection_name;
        let answer = rest::delete_collection(&self.state, &name, started).await.map_err(status)?;
        Ok(Response::new(proto::CollectionOperationResponse { result: answer.result, time: secs(started) }))
    }

    async fn collection_exists(
        &self,
        request: Request<proto::CollectionExistsRequest>,
    ) -> Result<Response<proto::CollectionExistsResponse>, Status> {
        let started = Instant::now();
        let exists = self.state.db.collection(&request.into_inner().collection_name).is_ok();
        Ok(Response::new(proto::CollectionExistsResponse {
            result: Some(proto::CollectionExists { exists }),
            time: secs(started),
        }))
    }

    async fn update_aliases(
        &self,
        request: Request<proto::ChangeAliases>,
    ) -> Result<Response<proto::CollectionOperationResponse>, Status> {
        use proto::alias_operations::Action;
        let started = Instant::now();
        let actions = request
            .into_inner()
            .actions
            .into_iter()
            .map(|a| {
                Ok(match a.action {
                    Some(Action::CreateAlias(c)) => {
                        rest::AliasOperation::Create { collection_name: c.collection_name, alias_name: c.alias_name }
                    }
                    Some(Action::RenameAlias(r)) => rest::AliasOperation::Rename {
                        old_alias_name: r.old_alias_name,
                        new_alias_name: r.new_alias_name,
                    },
                    Some(Action::DeleteAlias(d)) => rest::AliasOperation::Delete { alias_name: d.alias_name },
                    None => return Err(invalid("actions: an empty alias operation")),
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let answer =
            rest::change_aliases(&self.state, rest::ChangeAliases { actions }, started).await.map_err(status)?;
        Ok(Response::new(proto::CollectionOperationResponse { result: answer.result, time: secs(started) }))
    }

    async fn list_collection_aliases(
        &self,
        request: Request<proto::ListCollectionAliasesRequest>,
    ) -> Result<Response<proto::ListAliasesResponse>, Status> {
        let started = Instant::now();
        let name = request.into_inner().collection_name;
        let answer = rest::list_collection_aliases(&self.state, &name, started).map_err(status)?;
        Ok(Response::new(proto::ListAliasesResponse { aliases: aliases(&answer.result), time: secs(started) }))
    }

    async fn list_aliases(
        &self,
        _: Request<proto::ListAliasesRequest>,
    ) -> Result<Response<proto::ListAliasesResponse>, Status> {
        let started = Instant::now();
        let answer = rest::list_aliases(&self.state, started).map_err(status)?;
        Ok(Response::new(proto::ListAliasesResponse { aliases: aliases(&answer.result), time: secs(started) }))
    }

    async fn collection_cluster_info(
        &self,
        request: Request<proto::CollectionClusterInfoRequest>,
    ) -> Result<Response<proto::CollectionClusterInfoResponse>, Status> {
        let started = Instant::now();
        let name = request.into_inner().collection_name;
        let answer = rest::collection_cluster_info(&self.state, &name, started).await.map_err(status)?;
        Ok(Response::new(cluster_info(&answer.result, secs(started))))
    }

    async fn update_collection_cluster_setup(
        &self,
        _: Request<proto::UpdateCollectionClusterSetupRequest>,
    ) -> Result<Response<proto::UpdateCollectionClusterSetupResponse>, Status> {
        Err(unimplemented("Collections/UpdateCollectionClusterSetup"))
    }

    async fn create_shard_key(
        &self,
        request: Request<proto::CreateShardKeyRequest>,
    ) -> Result<Response<proto::CreateShardKeyResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        let r = req.request.ok_or_else(|| invalid("request: missing"))?;
        let initial_state = r
            .initial_state
            .map(|s| proto::ReplicaState::try_from(s).map(|s| s.as_str_name().to_string()))
            .transpose()
            .map_err(|e| invalid(format!("request.initial_state: {e}")))?;
        let body = shards::CreateShardKey {
            shard_key: shard_key(r.shard_key, "request.shard_key")?,
            shards_number: r.shards_number.map(|n| n as usize),
            replication_factor: r.replication_factor.map(|n| n as usize),
            placement: (!r.placement.is_empty()).then_some(r.placement),
            initial_state,
        };
        let answer = shards::create_shard_key(&self.state, &c, body, started).await.map_err(status)?;
        Ok(Response::new(proto::CreateShardKeyResponse { result: answer.result, time: secs(started) }))
    }

    async fn delete_shard_key(
        &self,
        request: Request<proto::DeleteShardKeyRequest>,
    ) -> Result<Response<proto::DeleteShardKeyResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        let r = req.request.ok_or_else(|| invalid("request: missing"))?;
        let body = shards::DropShardKey { shard_key: shard_key(r.shard_key, "request.shard_key")? };
        let answer = shards::delete_shard_key(&self.state, &c, body, started).await.map_err(status)?;
        Ok(Response::new(proto::DeleteShardKeyResponse { result: answer.result, time: secs(started) }))
    }

    async fn list_shard_keys(
        &self,
        request: Request<proto::ListShardKeysRequest>,
    ) -> Result<Response<proto::ListShardKeysResponse>, Status> {
        let started = Instant::now();
        let c = self.collection(&request.into_inner().collection_name, started)?;
        let answer = shards::list_shard_keys(&c, started).map_err(status)?;
        let shard_keys = answer.result["shard_keys"]
            .as_array()
            .map(|l| l.iter().map(|k| proto::ShardKeyDescription { key: Some(json_shard_key(&k["key"])) }).collect())
            .unwrap_or_default();
        Ok(Response::new(proto::ListShardKeysResponse { shard_keys, time: secs(started) }))
    }
}

impl CollectionsService {
    fn collection(&self, name: &str, started: Instant) -> Result<ametist_engine::collection::Collection, Status> {
        self.state.db.collection(name).map_err(|e| status(crate::api::envelope::ApiError::from_engine(e, started)))
    }
}

/// REST's `{"aliases": [...]}` as the proto list.
fn aliases(v: &Json) -> Vec<proto::AliasDescription> {
    v["aliases"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|a| proto::AliasDescription {
                    alias_name: a["alias_name"].as_str().unwrap_or_default().to_string(),
                    collection_name: a["collection_name"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A proto shard key as the engine's.
fn shard_key(k: Option<proto::ShardKey>, field: &str) -> Result<ametist_engine::spec::ShardKey, Status> {
    use ametist_engine::spec::ShardKey;
    use proto::shard_key::Key;
    match k.and_then(|k| k.key) {
        Some(Key::Keyword(s)) => Ok(ShardKey::Str(s)),
        Some(Key::Number(n)) => Ok(ShardKey::Num(n)),
        None => Err(invalid(format!("{field}: a shard key is a string or an unsigned integer"))),
    }
}

/// A shard key of an answer (a number or a string in JSON).
fn json_shard_key(v: &Json) -> proto::ShardKey {
    use proto::shard_key::Key;
    let key = match v {
        Json::Number(n) => Key::Number(n.as_u64().unwrap_or_default()),
        Json::String(s) => Key::Keyword(s.clone()),
        other => Key::Keyword(other.to_string()),
    };
    proto::ShardKey { key: Some(key) }
}

fn replica_state(v: &Json) -> i32 {
    v.as_str().and_then(proto::ReplicaState::from_str_name).unwrap_or(proto::ReplicaState::Dead) as i32
}

/// REST's `CollectionClusterInfo` JSON as the proto.
fn cluster_info(v: &Json, time: f64) -> proto::CollectionClusterInfoResponse {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let u64_of = |v: &Json, k: &str| v[k].as_u64().unwrap_or_default();
    let key_of = |s: &Json| s.get("shard_key").filter(|k| !k.is_null()).map(json_shard_key);
    proto::CollectionClusterInfoResponse {
        peer_id: u64_of(v, "peer_id"),
        shard_count: u64_of(v, "shard_count"),
        local_shards: list("local_shards")
            .iter()
            .map(|s| proto::LocalShardInfo {
                shard_id: u64_of(s, "shard_id") as u32,
                points_count: u64_of(s, "points_count"),
                state: replica_state(&s["state"]),
                shard_key: key_of(s),
            })
            .collect(),
        remote_shards: list("remote_shards")
            .iter()
            .map(|s| proto::RemoteShardInfo {
                shard_id: u64_of(s, "shard_id") as u32,
                peer_id: u64_of(s, "peer_id"),
                state: replica_state(&s["state"]),
                shard_key: key_of(s),
            })
            .collect(),
        shard_transfers: list("shard_transfers")
            .iter()
            .map(|t| proto::ShardTransferInfo {
                shard_id: u64_of(t, "shard_id") as u32,
                to_shard_id: t["to_shard_id"].as_u64().map(|n| n as u32),
                from: u64_of(t, "from"),
                to: u64_of(t, "to"),
                sync: t["sync"].as_bool().unwrap_or_default(),
            })
            .collect(),
        resharding_operations: Vec::new(),
        time,
    }
}
