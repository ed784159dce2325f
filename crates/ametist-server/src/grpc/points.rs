//! The `qdrant.Points` service, through the REST handlers' functions (`api::points`,
//! `api::payload`, `api::batch`, `api::explore`): each message becomes the REST handler's
//! typed request, each JSON answer the proto answer.
//!
//! Around every call, as REST's middleware does around a route: the collection is looked
//! up first (NOT_FOUND), strict mode's `max_timeout` and rate limits apply, a write holds
//! its encoded size of the write budget until it is answered, and a read's
//! `read_consistency` is checked.

use std::time::Instant;

use prost::Message;
use serde_json::{json, Value as Json};
use tonic::{Request, Response, Status};

use ametist_engine::collection::Collection;

use super::convert::{
    self, opt_filter, payload_json, point_ids, shard_keys_json, with_payload_json, with_vectors_json,
};
use super::proto::{self, points_server::Points};
use super::{invalid, status, unimplemented};
use crate::api::envelope::ApiError;
use crate::api::limits::WriteShares;
use crate::api::{batch as rest_batch, explore as rest_explore, payload as rest_payload, points as rest, AppState};

pub struct PointsService {
    state: AppState,
}

impl PointsService {
    pub fn new(state: AppState) -> Self {
        PointsService { state }
    }

    fn collection(&self, name: &str, started: Instant) -> Result<Collection, Status> {
        rest::collection(&self.state, name, started).map_err(status)
    }

    /// Strict mode's `max_timeout` and rate limit for a call on `c`.
    fn strict(&self, c: &Collection, write: bool, timeout: Option<u64>, started: Instant) -> Result<(), Status> {
        let query = timeout.map(|t| format!("timeout={t}"));
        crate::api::strict::check_timeout(c, query.as_deref(), started).map_err(status)?;
        crate::api::strict::admit(&self.state.rates, c, write, started).map_err(status)
    }

    /// What REST's middleware checks before a read of `c`.
    fn admit_read(
        &self,
        c: &Collection,
        consistency: Option<proto::ReadConsistency>,
        timeout: Option<u64>,
        started: Instant,
    ) -> Result<(), Status> {
        self.strict(c, false, timeout, started)?;
        match convert::consistency(consistency) {
            Some(wanted) => {
                crate::api::consistency::require(&self.state, &c.spec().name, &wanted, started).map_err(status)
            }
            None => Ok(()),
        }
    }

    /// What REST's middleware checks before a write of `c`; the shares are held until the
    /// write is answered.
    fn admit_write(
        &self,
        c: &Collection,
        bytes: usize,
        timeout: Option<u64>,
        started: Instant,
    ) -> Result<WriteShares, Status> {
        self.strict(c, true, timeout, started)?;
        self.state.budget.admit(&self.state, &c.spec().name, bytes, started).map_err(status)
    }
}

fn secs(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

/// A REST answer that is a list of lists of `ScoredPoint`s.
fn batch_results(v: Json) -> Vec<proto::BatchResult> {
    match v {
        Json::Array(lists) => {
            lists.into_iter().map(|l| proto::BatchResult { result: convert::scored_points(l) }).collect()
        }
        _ => Vec::new(),
    }
}

fn operation(
    answer: Result<crate::api::envelope::Answer<Json>, ApiError>,
    started: Instant,
) -> Result<Response<proto::PointsOperationResponse>, Status> {
    let answer = answer.map_err(status)?;
    Ok(Response::new(proto::PointsOperationResponse {
        result: Some(convert::update_result(&answer.result)),
        time: secs(started),
        usage: None,
    }))
}

/// A `PointsSelector` as REST's `points` / `filter` pair.
fn selector(s: Option<proto::PointsSelector>) -> Result<(Option<Vec<ametist_core::PointId>>, Option<Json>), Status> {
    use proto::points_selector::PointsSelectorOneOf as S;
    match s.and_then(|s| s.points_selector_one_of) {
        Some(S::Points(list)) => Ok((Some(point_ids(list.ids, "points")?), None)),
        Some(S::Filter(f)) => Ok((None, Some(convert::filter_json(f)?))),
        None => Err(invalid("points_selector: send point ids or a filter")),
    }
}

// `on_disk` is deprecated in Qdrant's proto (for `memory`), but clients still send it.
#[allow(deprecated)]
fn field_schema(kind: Option<i32>, params: Option<proto::PayloadIndexParams>) -> Result<Option<Json>, Status> {
    use proto::payload_index_params::IndexParams as P;
    let name = |k: i32| {
        Ok(match proto::FieldType::try_from(k) {
            Ok(proto::FieldType::Keyword) => "keyword",
            Ok(proto::FieldType::Integer) => "integer",
            Ok(proto::FieldType::Float) => "float",
            Ok(proto::FieldType::Geo) => "geo",
            Ok(proto::FieldType::Text) => "text",
            Ok(proto::FieldType::Bool) => "bool",
            Ok(proto::FieldType::Datetime) => "datetime",
            Ok(proto::FieldType::Uuid) => "uuid",
            Err(_) => return Err(invalid(format!("field_type: unknown type {k}"))),
        })
    };
    let Some(kind) = kind else {
        return if params.is_some() { Err(invalid("field_index_params needs field_type")) } else { Ok(None) };
    };
    let kind = name(kind)?;
    match params.and_then(|p| p.index_params) {
        None => Ok(Some(json!(kind))),
        Some(P::TextIndexParams(t)) => {
            let mut m = serde_json::Map::new();
            m.insert("type".into(), json!("text"));
            let tokenizer = match proto::TokenizerType::try_from(t.tokenizer) {
                Ok(proto::TokenizerType::Prefix) => "prefix",
                Ok(proto::TokenizerType::Whitespace) => "whitespace",
                Ok(proto::TokenizerType::Multilingual) => "multilingual",
                Ok(proto::TokenizerType::Code) => "code",
                _ => "word",
            };
            m.insert("tokenizer".into(), json!(tokenizer));
            if let Some(b) = t.lowercase {
                m.insert("lowercase".into(), json!(b));
            }
            if let Some(n) = t.min_token_len {
                m.insert("min_token_len".into(), json!(n));
            }
            if let Some(n) = t.max_token_len {
                m.insert("max_token_len".into(), json!(n));
            }
            if t.stopwords.is_some() || t.stemmer.is_some() || t.scoring.is_some() || t.nested.is_some() {
                return Err(invalid(
                    "field_index_params.text_index_params: stopwords, stemmer, scoring and nested are not supported \
                     over gRPC yet; use REST",
                ));
            }
            Ok(Some(Json::Object(m)))
        }
        // REST's params objects, checked there (`api::payload::index_params`).
        Some(P::DatetimeIndexParams(d)) => Ok(Some(params_object(
            kind,
            &[("on_disk", d.on_disk), ("is_principal", d.is_principal), ("enable_hnsw", d.enable_hnsw)],
            d.memory.is_some(),
            d.nested,
        ))),
        Some(P::UuidIndexParams(u)) => Ok(Some(params_object(
            kind,
            &[("on_disk", u.on_disk), ("is_tenant", u.is_tenant), ("enable_hnsw", u.enable_hnsw)],
            u.memory.is_some(),
            u.nested,
        ))),
        Some(P::GeoIndexParams(g)) => Ok(Some(params_object(
            kind,
            &[("on_disk", g.on_disk), ("enable_hnsw", g.enable_hnsw)],
            g.memory.is_some(),
            g.nested,
        ))),
        Some(_) => Err(invalid(format!(
            "field_index_params for `{kind}` indexes are not supported yet; send field_type alone"
        ))),
    }
}

/// A datetime, uuid or geo index's gRPC params as REST's `{"type": kind, ...}`: the flags
/// that are set, `memory` (its value does not matter here) and `nested` (refused there).
fn params_object(kind: &str, flags: &[(&str, Option<bool>)], memory: bool, nested: Option<String>) -> Json {
    let mut m = serde_json::Map::new();
    m.insert("type".into(), json!(kind));
    for &(k, v) in flags {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if memory {
        m.insert("memory".into(), json!("pinned"));
    }
    if let Some(n) = nested {
        m.insert("nested".into(), json!(n));
    }
    Json::Object(m)
}

type ShardKeys = Option<proto::ShardKeySelector>;

/// `Upsert`'s points as REST's upsert body (also a batch's `upsert`).
fn upsert_body(
    points: Vec<proto::PointStruct>,
    shard_key: ShardKeys,
    update_filter: Option<proto::Filter>,
    update_mode: Option<i32>,
) -> Result<rest::UpsertPoints, Status> {
    let points = points
        .into_iter()
        .map(|p| {
            Ok(rest::PointStruct {
                id: convert::point_id(p.id, "id")?,
                vector: convert::vectors_input(p.vectors)?,
                // Proto cannot tell no payload from an empty one; REST's "none" is the closer.
                payload: (!p.payload.is_empty()).then(|| payload_json(p.payload)),
            })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    let update_mode = update_mode.map(|m| match proto::UpdateMode::try_from(m) {
        Ok(proto::UpdateMode::InsertOnly) => "insert_only".to_string(),
        Ok(proto::UpdateMode::UpdateOnly) => "update_only".to_string(),
        _ => "upsert".to_string(),
    });
    Ok(rest::UpsertPoints {
        points: Some(points),
        batch: None,
        shard_key: shard_keys_json(shard_key)?,
        update_filter: opt_filter(update_filter)?,
        update_mode,
    })
}

fn update_vectors_body(
    points: Vec<proto::PointVectors>,
    shard_key: ShardKeys,
    update_filter: Option<proto::Filter>,
) -> Result<rest::UpdateVectors, Status> {
    let points = points
        .into_iter()
        .map(|p| {
            Ok(rest::PointVectors { id: convert::point_id(p.id, "id")?, vector: convert::vectors_input(p.vectors)? })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    Ok(rest::UpdateVectors {
        points,
        shard_key: shard_keys_json(shard_key)?,
        update_filter: opt_filter(update_filter)?,
    })
}

fn delete_body(s: Option<proto::PointsSelector>, shard_key: ShardKeys) -> Result<rest::DeletePoints, Status> {
    let (points, filter) = selector(s)?;
    Ok(rest::DeletePoints { points, filter, shard_key: shard_keys_json(shard_key)? })
}

fn delete_vectors_body(
    s: Option<proto::PointsSelector>,
    vectors: Option<proto::VectorsSelector>,
    shard_key: ShardKeys,
) -> Result<rest::DeleteVectorsRequest, Status> {
    let (points, filter) = selector(s)?;
    Ok(rest::DeleteVectorsRequest {
        points,
        filter,
        vector: vectors.map(|v| v.names).unwrap_or_default(),
        shard_key: shard_keys_json(shard_key)?,
    })
}

fn set_payload_body(
    payload: std::collections::HashMap<String, proto::Value>,
    s: Option<proto::PointsSelector>,
    key: Option<String>,
    shard_key: ShardKeys,
) -> Result<rest_payload::SetPayload, Status> {
    let (points, filter) = selector(s)?;
    Ok(rest_payload::SetPayload {
        payload: payload_json(payload),
        points,
        filter,
        key,
        shard_key: shard_keys_json(shard_key)?,
    })
}

fn delete_payload_body(
    keys: Vec<String>,
    s: Option<proto::PointsSelector>,
    shard_key: ShardKeys,
) -> Result<rest_payload::DeletePayload, Status> {
    let (points, filter) = selector(s)?;
    Ok(rest_payload::DeletePayload { keys, points, filter, shard_key: shard_keys_json(shard_key)? })
}

fn clear_payload_body(
    s: Option<proto::PointsSelector>,
    shard_key: ShardKeys,
) -> Result<rest_payload::PointsSelector, Status> {
    let (points, filter) = selector(s)?;
    Ok(rest_payload::PointsSelector { points, filter, shard_key: shard_keys_json(shard_key)? })
}

/// One of `UpdateBatch`'s operations as the REST batch's operation, through the same
/// conversions as the single-operation calls.
#[allow(deprecated)]
fn batch_operation(op: proto::PointsUpdateOperation) -> Result<rest_batch::Operation, Status> {
    use proto::points_update_operation::Operation as O;
    use rest_batch::Operation as R;
    Ok(match op.operation {
        None => return Err(invalid("an empty operation")),
        Some(O::Upsert(u)) => R::Upsert(upsert_body(u.points, u.shard_key_selector, u.update_filter, u.update_mode)?),
        Some(O::DeleteDeprecated(s)) => R::Delete(delete_body(Some(s), None)?),
        Some(O::DeletePoints(d)) => R::Delete(delete_body(d.points, d.shard_key_selector)?),
        Some(O::SetPayload(p)) => {
            R::SetPayload(set_payload_body(p.payload, p.points_selector, p.key, p.shard_key_selector)?)
        }
        Some(O::OverwritePayload(p)) => {
            R::OverwritePayload(set_payload_body(p.payload, p.points_selector, p.key, p.shard_key_selector)?)
        }
        Some(O::DeletePayload(p)) => {
            R::DeletePayload(delete_payload_body(p.keys, p.points_selector, p.shard_key_selector)?)
        }
        Some(O::ClearPayloadDeprecated(s)) => R::ClearPayload(clear_payload_body(Some(s), None)?),
        Some(O::ClearPayload(p)) => R::ClearPayload(clear_payload_body(p.points, p.shard_key_selector)?),
        Some(O::UpdateVectors(u)) => {
            R::UpdateVectors(update_vectors_body(u.points, u.shard_key_selector, u.update_filter)?)
        }
        Some(O::DeleteVectors(d)) => {
            R::DeleteVectors(delete_vectors_body(d.points_selector, d.vectors, d.shard_key_selector)?)
        }
    })
}

#[tonic::async_trait]
impl Points for PointsService {
    async fn upsert(
        &self,
        request: Request<proto::UpsertPoints>,
    ) -> Result<Response<proto::PointsOperationResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        let _shares = self.admit_write(&c, req.encoded_len(), req.timeout, started)?;
        let body = upsert_body(req.points, req.shard_key_selector, req.update_filter, req.update_mode)?;
        operation(rest::upsert_points(&c, body, req.wait.unwrap_or(false), started).await, started)
    }

    async fn delete(
        &self,
        request: Request<proto::DeletePoints>,
    ) -> Result<Response<proto::PointsOperationResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        let _shares = self.admit_write(&c, req.encoded_len(), req.timeout, started)?;
        let body = delete_body(req.points, req.shard_key_selector)?;
        operation(rest::delete_points(&c, body, req.wait.unwrap_or(false), started).await, started)
    }

    async fn get(&self, request: Request<proto::GetPoints>) -> Result<Response<proto::GetResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let body = rest::RetrievePoints {
            ids: point_ids(req.ids, "ids")?,
            with_payload: with_payload_json(req.with_payload),
            with_vector: with_vectors_json(req.with_vectors),
            shard_key: shard_keys_json(req.shard_key_selector)?,
        };
        let answer = rest::retrieve_points(&self.state, &c, body, started).await.map_err(status)?;
        let result = match answer.result {
            Json::Array(items) => items.into_iter().map(convert::retrieved_point).collect(),
            _ => Vec::new(),
        };
        Ok(Response::new(proto::GetResponse { result, time: secs(started), usage: None }))
    }

    async fn update_vectors(
        &self,
        request: Request<proto::UpdatePointVectors>,
    ) -> Result<Response<proto::PointsOperationResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        let _shares = self.admit_write(&c, req.encoded_len(), req.timeout, started)?;
        let body = update_vectors_body(req.points, req.shard_key_selector, req.update_filter)?;
        operation(rest::update_point_vectors(&c, body, req.wait.unwrap_or(false), started).await, started)
    }

    async fn delete_vectors(
        &self,
        request: Request<proto::DeletePointVectors>,
    ) -> Result<Response<proto::PointsOperationResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        let _shares = self.admit_write(&c, req.encoded_len(), req.timeout, started)?;
        let body = delete_vectors_body(req.points_selector, req.vectors, req.shard_key_selector)?;
        operation(rest::delete_point_vectors(&c, body, req.wait.unwrap_or(false), started).await, started)
    }

    async fn set_payload(
        &self,
        request: Request<proto::SetPayloadPoints>,
    ) -> Result<Response<proto::PointsOperationResponse>, Status> {
        self.write_payload(request.into_inner(), false).await
    }

    async fn overwrite_payload(
        &self,
        request: Request<proto::SetPayloadPoints>,
    ) -> Result<Response<proto::PointsOperationResponse>, Status> {
        self.write_payload(request.into_inner(), true).await
    }

    async fn delete_payload(
        &self,
        request: Request<proto::DeletePayloadPoints>,
    ) -> Result<Response<proto::PointsOperationResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        let _shares = self.admit_write(&c, req.encoded_len(), req.timeout, started)?;
        let body = delete_payload_body(req.keys, req.points_selector, req.shard_key_selector)?;
        operation(rest_payload::delete_payload_keys(&c, body, req.wait.unwrap_or(false), started).await, started)
    }

    async fn clear_payload(
        &self,
        request: Request<proto::ClearPayloadPoints>,
    ) -> Result<Response<proto::PointsOperationResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        let _shares = self.admit_write(&c, req.encoded_len(), req.timeout, started)?;
        let body = clear_payload_body(req.points, req.shard_key_selector)?;
        operation(rest_payload::clear_payload(&c, body, req.wait.unwrap_or(false), started).await, started)
    }

    async fn create_field_index(
        &self,
        request: Request<proto::CreateFieldIndexCollection>,
    ) -> Result<Response<proto::PointsOperationResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.strict(&c, true, req.timeout, started)?;
        let body = rest_payload::CreateFieldIndex {
            field_name: req.field_name,
            field_schema: field_schema(req.field_type, req.field_index_params)?,
        };
        let answer = rest_payload::create_field_index(&self.state, &req.collection_name, &c, body, started).await;
        operation(answer, started)
    }

    async fn delete_field_index(
        &self,
        request: Request<proto::DeleteFieldIndexCollection>,
    ) -> Result<Response<proto::PointsOperationResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.strict(&c, true, req.timeout, started)?;
        let answer =
            rest_payload::delete_field_index(&self.state, &req.collection_name, &c, &req.field_name, started).await;
        operation(answer, started)
    }

    async fn create_vector_name(
        &self,
        _: Request<proto::CreateVectorNameRequest>,
    ) -> Result<Response<proto::PointsOperationResponse>, Status> {
        Err(unimplemented("Points/CreateVectorName"))
    }

    async fn delete_vector_name(
        &self,
        _: Request<proto::DeleteVectorNameRequest>,
    ) -> Result<Response<proto::PointsOperationResponse>, Status> {
        Err(unimplemented("Points/DeleteVectorName"))
    }

    async fn search(&self, request: Request<proto::SearchPoints>) -> Result<Response<proto::SearchResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let body = convert::search_points(req)?;
        let answer = rest::search_points(&self.state, &c, body, started).await.map_err(status)?;
        Ok(Response::new(proto::SearchResponse {
            result: convert::scored_points(answer.result),
            time: secs(started),
            usage: None,
        }))
    }

    async fn search_batch(
        &self,
        request: Request<proto::SearchBatchPoints>,
    ) -> Result<Response<proto::SearchBatchResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let searches = req.search_points.into_iter().map(convert::search_points).collect::<Result<_, _>>()?;
        let answer = rest::search_points_batch(&self.state, &c, rest::SearchBatch { searches }, started)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::SearchBatchResponse {
            result: batch_results(answer.result),
            time: secs(started),
            usage: None,
        }))
    }

    async fn search_groups(
        &self,
        request: Request<proto::SearchPointGroups>,
    ) -> Result<Response<proto::SearchGroupsResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let body = convert::search_groups(req)?;
        let answer = rest_explore::search_point_groups(&self.state, &c, body, started).await.map_err(status)?;
        Ok(Response::new(proto::SearchGroupsResponse {
            result: Some(convert::groups_result(answer.result)),
            time: secs(started),
            usage: None,
        }))
    }

    async fn scroll(&self, request: Request<proto::ScrollPoints>) -> Result<Response<proto::ScrollResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let body = rest::ScrollPoints {
            offset: req.offset.map(|id| convert::point_id(Some(id), "offset")).transpose()?,
            limit: req.limit.map(|l| l as usize),
            filter: opt_filter(req.filter)?,
            with_payload: with_payload_json(req.with_payload),
            with_vector: with_vectors_json(req.with_vectors),
            order_by: convert::opt_order_by(req.order_by)?,
            shard_key: shard_keys_json(req.shard_key_selector)?,
        };
        let answer = rest::scroll_points(&self.state, &c, body, started).await.map_err(status)?;
        let Json::Object(mut m) = answer.result else { return Err(Status::internal("scroll answered no object")) };
        let next = m.remove("next_page_offset").filter(|v| !v.is_null()).map(|v| convert::json_point_id(&v));
        let result = match m.remove("points") {
            Some(Json::Array(items)) => items.into_iter().map(convert::retrieved_point).collect(),
            _ => Vec::new(),
        };
        Ok(Response::new(proto::ScrollResponse { next_page_offset: next, result, time: secs(started), usage: None }))
    }

    async fn recommend(
        &self,
        request: Request<proto::RecommendPoints>,
    ) -> Result<Response<proto::RecommendResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let body = convert::recommend_request(req)?;
        let answer = rest_explore::recommend_points(&self.state, &c, body, started).await.map_err(status)?;
        Ok(Response::new(proto::RecommendResponse {
            result: convert::scored_points(answer.result),
            time: secs(started),
            usage: None,
        }))
    }

    async fn recommend_batch(
        &self,
        request: Request<proto::RecommendBatchPoints>,
    ) -> Result<Response<proto::RecommendBatchResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let searches = req.recommend_points.into_iter().map(convert::recommend_request).collect::<Result<_, _>>()?;
        let answer = rest_explore::recommend_points_batch(&self.state, &c, rest_explore::Batch { searches }, started)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::RecommendBatchResponse {
            result: batch_results(answer.result),
            time: secs(started),
            usage: None,
        }))
    }

    async fn recommend_groups(
        &self,
        request: Request<proto::RecommendPointGroups>,
    ) -> Result<Response<proto::RecommendGroupsResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let body = convert::recommend_groups(req)?;
        let answer = rest_explore::recommend_point_groups(&self.state, &c, body, started).await.map_err(status)?;
        Ok(Response::new(proto::RecommendGroupsResponse {
            result: Some(convert::groups_result(answer.result)),
            time: secs(started),
            usage: None,
        }))
    }

    async fn discover(
        &self,
        request: Request<proto::DiscoverPoints>,
    ) -> Result<Response<proto::DiscoverResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let body = convert::discover_request(req)?;
        let answer = rest_explore::discover_points(&self.state, &c, body, started).await.map_err(status)?;
        Ok(Response::new(proto::DiscoverResponse {
            result: convert::scored_points(answer.result),
            time: secs(started),
            usage: None,
        }))
    }

    async fn discover_batch(
        &self,
        request: Request<proto::DiscoverBatchPoints>,
    ) -> Result<Response<proto::DiscoverBatchResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let searches = req.discover_points.into_iter().map(convert::discover_request).collect::<Result<_, _>>()?;
        let answer = rest_explore::discover_points_batch(&self.state, &c, rest_explore::Batch { searches }, started)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::DiscoverBatchResponse {
            result: batch_results(answer.result),
            time: secs(started),
            usage: None,
        }))
    }

    async fn count(&self, request: Request<proto::CountPoints>) -> Result<Response<proto::CountResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let body = rest::CountPoints {
            filter: opt_filter(req.filter)?,
            exact: req.exact,
            shard_key: shard_keys_json(req.shard_key_selector)?,
        };
        let answer = rest::count_points(&c, body, started).await.map_err(status)?;
        let count = answer.result["count"].as_u64().unwrap_or_default();
        Ok(Response::new(proto::CountResponse {
            result: Some(proto::CountResult { count }),
            time: secs(started),
            usage: None,
        }))
    }

    async fn update_batch(
        &self,
        request: Request<proto::UpdateBatchPoints>,
    ) -> Result<Response<proto::UpdateBatchResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        let _shares = self.admit_write(&c, req.encoded_len(), req.timeout, started)?;
        crate::api::batch::check_count(&self.state, req.operations.len(), started).map_err(status)?;
        let operations = req
            .operations
            .into_iter()
            .enumerate()
            .map(|(i, op)| {
                batch_operation(op).map_err(|e| {
                    Status::new(e.code(), format!("{} (operation #{i}; nothing of the batch was applied)", e.message()))
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let wait = req.wait.unwrap_or(false);
        let answer =
            rest_batch::batch_update_points(&self.state, &c, operations, wait, started).await.map_err(status)?;
        let result = match &answer.result {
            Json::Array(items) => items.iter().map(convert::update_result).collect(),
            _ => Vec::new(),
        };
        Ok(Response::new(proto::UpdateBatchResponse { result, time: secs(started), usage: None }))
    }

    async fn query(&self, request: Request<proto::QueryPoints>) -> Result<Response<proto::QueryResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let body = convert::query_points(req)?;
        let answer = rest::query_points(&self.state, &c, body, started).await.map_err(status)?;
        let points = answer.result.get("points").cloned().unwrap_or(Json::Null);
        Ok(Response::new(proto::QueryResponse {
            result: convert::scored_points(points),
            time: secs(started),
            usage: None,
        }))
    }

    async fn query_batch(
        &self,
        request: Request<proto::QueryBatchPoints>,
    ) -> Result<Response<proto::QueryBatchResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let searches = req.query_points.into_iter().map(convert::query_points).collect::<Result<_, _>>()?;
        let answer =
            rest::query_points_batch(&self.state, &c, rest::QueryBatch { searches }, started).await.map_err(status)?;
        let result = match answer.result {
            Json::Array(lists) => lists
                .into_iter()
                .map(|mut l| proto::BatchResult { result: convert::scored_points(l["points"].take()) })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Response::new(proto::QueryBatchResponse { result, time: secs(started), usage: None }))
    }

    async fn query_groups(
        &self,
        request: Request<proto::QueryPointGroups>,
    ) -> Result<Response<proto::QueryGroupsResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let body = convert::query_groups(req)?;
        let answer = rest_explore::query_point_groups(&self.state, &c, body, started).await.map_err(status)?;
        Ok(Response::new(proto::QueryGroupsResponse {
            result: Some(convert::groups_result(answer.result)),
            time: secs(started),
            usage: None,
        }))
    }

    async fn facet(&self, request: Request<proto::FacetCounts>) -> Result<Response<proto::FacetResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let body = rest_explore::FacetRequest {
            key: req.key,
            limit: req.limit.map(|l| l as usize),
            filter: opt_filter(req.filter)?,
            _exact: req.exact,
            shard_key: shard_keys_json(req.shard_key_selector)?,
        };
        let answer = rest_explore::facet_counts(&c, body, started).await.map_err(status)?;
        let hits = answer.result["hits"]
            .as_array()
            .map(|hits| {
                hits.iter()
                    .map(|h| proto::FacetHit {
                        value: Some(convert::facet_value(&h["value"])),
                        count: h["count"].as_u64().unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(proto::FacetResponse { hits, time: secs(started), usage: None }))
    }

    async fn search_matrix_pairs(
        &self,
        request: Request<proto::SearchMatrixPoints>,
    ) -> Result<Response<proto::SearchMatrixPairsResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let body = convert::search_matrix(req)?;
        let answer = rest_explore::search_matrix_pairs(&c, body, started).await.map_err(status)?;
        let pairs = answer.result["pairs"]
            .as_array()
            .map(|pairs| {
                pairs
                    .iter()
                    .map(|p| proto::SearchMatrixPair {
                        a: Some(convert::json_point_id(&p["a"])),
                        b: Some(convert::json_point_id(&p["b"])),
                        score: p["score"].as_f64().unwrap_or_default() as f32,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(proto::SearchMatrixPairsResponse {
            result: Some(proto::SearchMatrixPairs { pairs }),
            time: secs(started),
            usage: None,
        }))
    }

    async fn search_matrix_offsets(
        &self,
        request: Request<proto::SearchMatrixPoints>,
    ) -> Result<Response<proto::SearchMatrixOffsetsResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let c = self.collection(&req.collection_name, started)?;
        self.admit_read(&c, req.read_consistency, req.timeout, started)?;
        let body = convert::search_matrix(req)?;
        let answer = rest_explore::search_matrix_offsets(&c, body, started).await.map_err(status)?;
        let r = &answer.result;
        let list = |k: &str| r[k].as_array().cloned().unwrap_or_default();
        Ok(Response::new(proto::SearchMatrixOffsetsResponse {
            result: Some(proto::SearchMatrixOffsets {
                offsets_row: list("offsets_row").iter().map(|v| v.as_u64().unwrap_or_default()).collect(),
                offsets_col: list("offsets_col").iter().map(|v| v.as_u64().unwrap_or_default()).collect(),
                scores: list("scores").iter().map(|v| v.as_f64().unwrap_or_default() as f32).collect(),
                ids: list("ids").iter().map(convert::json_point_id).collect(),
            }),
            time: secs(started),
            usage: None,
        }))
    }
}

impl PointsService {
    /// `SetPayload` and `OverwritePayload`.
    async fn write_payload(
        &self,
        req: proto::SetPayloadPoints,
        overwrite: bool,
    ) -> Result<Response<proto::PointsOperationResponse>, Status> {
        let started = Instant::now();
        let c = self.collection(&req.collection_name, started)?;
        let _shares = self.admit_write(&c, req.encoded_len(), req.timeout, started)?;
        let body = set_payload_body(req.payload, req.points_selector, req.key, req.shard_key_selector)?;
        operation(rest_payload::set_payload(&c, body, overwrite, req.wait.unwrap_or(false), started).await, started)
    }
}
