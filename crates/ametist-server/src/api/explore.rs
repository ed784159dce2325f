//! Qdrant's "explore" routes around the query route: grouped queries and searches, facet
//! counts, and the older recommend and discover routes (still used by older clients and
//! integrations).
//!
//! Every one of them is turned into the query route's [`QueryPlan`] (one path per query
//! kind): the older routes by rewriting their body into a `query`, groups by running the
//! plan for enough hits to fill the groups. Unknown fields are a 400 naming them, as on
//! every route.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use ametist_core::payload_index::values_at;
use ametist_core::PointId;
use ametist_engine::collection::Collection;

use super::envelope::{parse_body, Answer, ApiError, ApiResult};
use super::limits::Cost;
use super::points::{
    collection, parse_filter, record_json, Hit, QueryPlan, QueryPoints, SearchParams, SearchPoints, VectorInput,
};
use super::selectors::{parse_with_vector, with_vector_names, PayloadSelector};
use super::AppState;

/// `POST /collections/{name}/points/query/groups`: Qdrant's `QueryGroupsRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryGroups {
    #[serde(default)]
    pub query: Option<super::points::QueryInput>,
    #[serde(default)]
    pub prefetch: Option<Value>,
    #[serde(default)]
    pub using: Option<String>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub params: Option<SearchParams>,
    #[serde(default)]
    pub score_threshold: Option<f32>,
    #[serde(default)]
    pub with_payload: Option<Value>,
    #[serde(default, alias = "with_vectors")]
    pub with_vector: Option<Value>,
    #[serde(default)]
    pub lookup_from: Option<Value>,
    pub group_by: String,
    #[serde(default)]
    pub group_size: Option<usize>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub with_lookup: Option<Value>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

/// `POST /collections/{name}/points/search/groups`: Qdrant's `SearchGroupsRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchGroups {
    pub vector: VectorInput,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub params: Option<SearchParams>,
    #[serde(default)]
    pub with_payload: Option<Value>,
    #[serde(default, alias = "with_vectors")]
    pub with_vector: Option<Value>,
    #[serde(default)]
    pub score_threshold: Option<f32>,
    pub group_by: String,
    #[serde(default)]
    pub group_size: Option<usize>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub with_lookup: Option<Value>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

/// The older `RecommendRequest` (and `RecommendGroupsRequest`, with the group fields).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendRequest {
    #[serde(default)]
    pub positive: Option<Value>,
    #[serde(default)]
    pub negative: Option<Value>,
    #[serde(default)]
    pub strategy: Option<Value>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub params: Option<SearchParams>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub offset: Option<usize>,
    #[serde(default)]
    pub with_payload: Option<Value>,
    #[serde(default, alias = "with_vectors")]
    pub with_vector: Option<Value>,
    #[serde(default)]
    pub score_threshold: Option<f32>,
    #[serde(default)]
    pub using: Option<String>,
    #[serde(default)]
    pub lookup_from: Option<Value>,
    #[serde(default)]
    pub group_by: Option<String>,
    #[serde(default)]
    pub group_size: Option<usize>,
    #[serde(default)]
    pub with_lookup: Option<Value>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

/// The older `DiscoverRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    #[serde(default)]
    pub target: Option<Value>,
    #[serde(default)]
    pub context: Option<Value>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub params: Option<SearchParams>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub offset: Option<usize>,
    #[serde(default)]
    pub with_payload: Option<Value>,
    #[serde(default, alias = "with_vectors")]
    pub with_vector: Option<Value>,
    #[serde(default)]
    pub using: Option<String>,
    #[serde(default)]
    pub lookup_from: Option<Value>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch<T> {
    pub searches: Vec<T>,
}

/// `POST /collections/{name}/facet`: Qdrant's `FacetRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacetRequest {
    pub key: String,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub filter: Option<Value>,
    /// Ametist's counts are always exact.
    #[serde(default, rename = "exact")]
    pub _exact: Option<bool>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

/// How a grouped request groups.
struct Grouping {
    group_by: String,
    group_size: usize,
    limit: usize,
    with_lookup: Option<WithLookup>,
}

/// `with_lookup`: a collection name, or `{"collection", "with_payload", "with_vectors"}`.
struct WithLookup {
    collection: String,
    with_payload: Option<Value>,
    with_vectors: Option<Value>,
}

impl Grouping {
    fn new(
        group_by: String,
        group_size: Option<usize>,
        limit: Option<usize>,
        with_lookup: Option<Value>,
        started: Instant,
    ) -> Result<Self, ApiError> {
        if group_by.trim().is_empty() {
            return Err(ApiError::bad_request("Wrong input: group_by must not be empty", started));
        }
        let (group_size, limit) = (group_size.unwrap_or(3), limit.unwrap_or(10));
        if group_size == 0 || limit == 0 {
            return Err(ApiError::bad_request("Wrong input: group_size and limit must be at least 1", started));
        }
        let with_lookup = match with_lookup {
            None | Some(Value::Null) => None,
            Some(Value::String(collection)) => Some(WithLookup { collection, with_payload: None, with_vectors: None }),
            Some(Value::Object(mut m)) => {
                if let Some(k) = m
                    .keys()
                    .find(|k| !["collection", "with_payload", "with_vectors", "with_vector"].contains(&k.as_str()))
                {
                    return Err(ApiError::bad_request(
                        format!("Format error in JSON body: with_lookup: unknown field `{k}`"),
                        started,
                    ));
                }
                let Some(Value::String(collection)) = m.remove("collection") else {
                    return Err(ApiError::bad_request(
                        "Format error in JSON body: with_lookup: missing field `collection`",
                        started,
                    ));
                };
                let with_vectors = m.remove("with_vectors").or_else(|| m.remove("with_vector"));
                Some(WithLookup { collection, with_payload: m.remove("with_payload"), with_vectors })
            }
            Some(other) => {
                return Err(ApiError::bad_request(
                    format!(
                        "Format error in JSON body: with_lookup must be a collection name or an object, got {other}"
                    ),
                    started,
                ))
            }
        };
        Ok(Grouping { group_by, group_size, limit, with_lookup })
    }

    /// Runs `plan` for more and more hits until the first `limit` groups (in the order of
    /// their best hit) are full or every hit was seen; a group's best hits may come from
    /// different partitions, so the groups are made from the merged hits.
    async fn run(&self, plan: QueryPlan, state: &AppState, c: &Collection, started: Instant) -> ApiResult<Value> {
        let max = state.config.limits.max_limit;
        let want = self.limit.saturating_mul(self.group_size);
        Cost { results: want, largest: want, ..plan.for_groups(want.min(max)).cost(c.spec()) }
            .check(&state.config.limits, started)?;
        let (payload, names) = plan.selectors();
        let mut k = want.saturating_mul(2).clamp(16, max);
        let (groups, missing) = loop {
            let (hits, missing) = plan.for_groups(k).run_hits(state, c, started).await?;
            let exhausted = hits.len() < k || k >= max;
            let groups = self.group(hits);
            let full = groups.len() >= self.limit && groups[..self.limit].iter().all(|g| g.1.len() >= self.group_size);
            if full || exhausted {
                break (groups, missing);
            }
            k = k.saturating_mul(4).min(max);
        };
        let lookup = match &self.with_lookup {
            Some(l) => Some((collection(state, &l.collection, started)?, l)),
            None => None,
        };
        let mut out = Vec::with_capacity(self.limit);
        for (id, hits) in groups.into_iter().take(self.limit) {
            let hits: Vec<Value> = hits.into_iter().map(|h| h.json(&payload, names.as_deref(), c.spec())).collect();
            let mut g = json!({ "id": id, "hits": hits });
            if let Some((lc, l)) = &lookup {
                g["lookup"] = lookup_record(lc, l, &id, started).await?;
            }
            out.push(g);
        }
        let mut answer = Answer::new(json!({ "groups": out }), started);
        answer.missing = missing;
        Ok(answer)
    }

    /// Groups hits (best first) by their values at `group_by`, in the order of each
    /// group's best hit, at most `group_size` hits per group. A point whose values there
    /// are not all strings or integers joins no group (as in Qdrant); one with several
    /// values joins each.
    fn group(&self, hits: Vec<Hit>) -> Vec<(Value, Vec<Hit>)> {
        let mut groups: Vec<(Value, Vec<Hit>)> = Vec::new();
        for hit in hits {
            let ids: Vec<Value> = {
                let Some(payload) = hit.doc.payload.as_ref() else { continue };
                let values = values_at(payload, &self.group_by);
                if values.iter().any(|v| !is_group_id(v)) {
                    continue;
                }
                let mut ids: Vec<Value> = Vec::new();
                for v in values {
                    if !ids.contains(v) {
                        ids.push(v.clone());
                    }
                }
                ids
            };
            for id in ids {
                let i = match groups.iter().position(|g| g.0 == id) {
                    Some(i) => i,
                    None => {
                        groups.push((id, Vec::new()));
                        groups.len() - 1
                    }
                };
                if groups[i].1.len() < self.group_size {
                    groups[i].1.push(Hit { doc: hit.doc.clone(), order_value: hit.order_value.clone() });
                }
            }
        }
        groups
    }
}

/// Group ids are strings and integers.
fn is_group_id(v: &Value) -> bool {
    match v {
        Value::String(_) => true,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

/// The record of the lookup collection whose id is the group's id (`null` when none).
async fn lookup_record(c: &Collection, l: &WithLookup, id: &Value, started: Instant) -> Result<Value, ApiError> {
    let Ok(id) = serde_json::from_value::<PointId>(id.clone()) else { return Ok(Value::Null) };
    let payload = PayloadSelector::parse(&l.with_payload, true, started)?;
    let with_vector = parse_with_vector(&l.with_vectors, false, started)?;
    let names = with_vector_names(&l.with_vectors);
    let mut records =
        c.get(vec![id], payload.wants_payload(), with_vector).await.map_err(|e| ApiError::from_engine(e, started))?;
    Ok(records.pop().map(|r| record_json(r, &payload, names.as_deref(), c.spec())).unwrap_or(Value::Null))
}

pub async fn query_groups(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: QueryGroups = parse_body(&body, started)?;
    query_point_groups(&state, &c, req, started).await
}

/// A query's hits grouped by a payload value (REST and gRPC `QueryGroups`):
/// `{"groups": [{"id", "hits", "lookup"}]}`.
pub(crate) async fn query_point_groups(
    state: &AppState,
    c: &Collection,
    mut req: QueryGroups,
    started: Instant,
) -> ApiResult<Value> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    let grouping = Grouping::new(req.group_by, req.group_size, req.limit, req.with_lookup, started)?;
    let plan = QueryPlan::new(
        QueryPoints {
            query: req.query,
            limit: Some(grouping.limit),
            offset: None,
            with_payload: req.with_payload,
            with_vector: req.with_vector,
            score_threshold: req.score_threshold,
            params: req.params,
            filter: req.filter,
            using: req.using,
            shard_key: None,
            lookup_from: req.lookup_from,
            prefetch: req.prefetch,
        },
        started,
    )?;
    grouping.run(plan, state, &c, started).await
}

pub async fn search_groups(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: SearchGroups = parse_body(&body, started)?;
    search_point_groups(&state, &c, req, started).await
}

/// A search's hits grouped by a payload value (REST and gRPC `SearchGroups`).
pub(crate) async fn search_point_groups(
    state: &AppState,
    c: &Collection,
    mut req: SearchGroups,
    started: Instant,
) -> ApiResult<Value> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    let grouping = Grouping::new(req.group_by, req.group_size, req.limit, req.with_lookup, started)?;
    let plan = QueryPlan::from_search(
        SearchPoints {
            vector: req.vector,
            limit: grouping.limit,
            offset: None,
            with_payload: req.with_payload,
            with_vector: req.with_vector,
            score_threshold: req.score_threshold,
            params: req.params,
            filter: req.filter,
            shard_key: None,
        },
        started,
    )?;
    grouping.run(plan, state, &c, started).await
}

/// The older recommend body as a query.
fn recommend_query(req: &mut RecommendRequest) -> QueryPoints {
    let mut r = Map::new();
    for (k, v) in
        [("positive", req.positive.take()), ("negative", req.negative.take()), ("strategy", req.strategy.take())]
    {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            r.insert(k.into(), v);
        }
    }
    QueryPoints {
        query: Some(json!({ "recommend": r }).into()),
        limit: req.limit,
        offset: req.offset,
        with_payload: req.with_payload.take(),
        with_vector: req.with_vector.take(),
        score_threshold: req.score_threshold,
        params: req.params.take(),
        filter: req.filter.take(),
        using: req.using.take(),
        shard_key: None,
        lookup_from: req.lookup_from.take(),
        prefetch: None,
    }
}

/// The older discover body as a query: a context query when it has no target.
fn discover_query(req: DiscoverRequest) -> QueryPoints {
    let context = req.context.unwrap_or(Value::Array(Vec::new()));
    let query = match req.target.filter(|t| !t.is_null()) {
        Some(target) => json!({ "discover": { "target": target, "context": context } }),
        None => json!({ "context": context }),
    };
    QueryPoints {
        query: Some(query.into()),
        limit: req.limit,
        offset: req.offset,
        with_payload: req.with_payload,
        with_vector: req.with_vector,
        score_threshold: None,
        params: req.params,
        filter: req.filter,
        using: req.using,
        shard_key: None,
        lookup_from: req.lookup_from,
        prefetch: None,
    }
}

fn no_group_fields(req: &RecommendRequest, started: Instant) -> Result<(), ApiError> {
    for (field, set) in [
        ("group_by", req.group_by.is_some()),
        ("group_size", req.group_size.is_some()),
        ("with_lookup", req.with_lookup.is_some()),
    ] {
        if set {
            return Err(ApiError::bad_request(
                format!("Format error in JSON body: unknown field `{field}` (use /points/recommend/groups)"),
                started,
            ));
        }
    }
    Ok(())
}

/// Runs several plans (a batch route), each answer a list of scored points.
/// Runs the plans of a batch, each on its collection scoped to its request's shard keys.
async fn run_all(plans: Vec<(Collection, QueryPlan)>, state: &AppState, started: Instant) -> ApiResult<Value> {
    if plans.len() > state.config.limits.max_batch {
        return Err(ApiError::bad_request(
            format!(
                "Wrong input: {} items in one request, more than limits.max_batch ({})",
                plans.len(),
                state.config.limits.max_batch
            ),
            started,
        ));
    }
    plans.iter().fold(Cost::default(), |sum, (c, p)| sum.add(p.cost(c.spec()))).check(&state.config.limits, started)?;
    let mut results = Vec::with_capacity(plans.len());
    let mut missing_all: Vec<ametist_engine::messages::MissingPartition> = Vec::new();
    for (c, plan) in plans {
        let (points, missing) = plan.run(state, &c, started).await?;
        for m in missing {
            if !missing_all.iter().any(|a| a.partition == m.partition) {
                missing_all.push(m);
            }
        }
        results.push(Value::Array(points));
    }
    let mut answer = Answer::new(Value::Array(results), started);
    answer.missing = missing_all;
    Ok(answer)
}

fn need_limit(limit: Option<usize>, started: Instant) -> Result<(), ApiError> {
    match limit {
        Some(_) => Ok(()),
        None => Err(ApiError::bad_request("Format error in JSON body: missing field `limit`", started)),
    }
}

pub async fn recommend(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: RecommendRequest = parse_body(&body, started)?;
    recommend_points(&state, &c, req, started).await
}

/// The older recommend (REST and gRPC `Recommend`): a list of `ScoredPoint`s.
pub(crate) async fn recommend_points(
    state: &AppState,
    c: &Collection,
    mut req: RecommendRequest,
    started: Instant,
) -> ApiResult<Value> {
    no_group_fields(&req, started)?;
    need_limit(req.limit, started)?;
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    let plan = QueryPlan::new(recommend_query(&mut req), started)?;
    let mut answer = run_all(vec![(c, plan)], state, started).await?;
    answer.result = answer.result.as_array_mut().and_then(|a| a.pop()).unwrap_or(Value::Array(Vec::new()));
    Ok(answer)
}

pub async fn recommend_batch(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: Batch<RecommendRequest> = parse_body(&body, started)?;
    recommend_points_batch(&state, &c, req, started).await
}

/// Several older recommends (REST and gRPC `RecommendBatch`): a list of lists.
pub(crate) async fn recommend_points_batch(
    state: &AppState,
    c: &Collection,
    req: Batch<RecommendRequest>,
    started: Instant,
) -> ApiResult<Value> {
    let mut plans = Vec::with_capacity(req.searches.len());
    for mut r in req.searches {
        no_group_fields(&r, started)?;
        need_limit(r.limit, started)?;
        let scoped = super::shards::scoped(c, r.shard_key.take(), started)?;
        plans.push((scoped, QueryPlan::new(recommend_query(&mut r), started)?));
    }
    run_all(plans, state, started).await
}

pub async fn recommend_groups(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: RecommendRequest = parse_body(&body, started)?;
    recommend_point_groups(&state, &c, req, started).await
}

/// The older recommend's hits grouped by a payload value (REST and gRPC `RecommendGroups`).
pub(crate) async fn recommend_point_groups(
    state: &AppState,
    c: &Collection,
    mut req: RecommendRequest,
    started: Instant,
) -> ApiResult<Value> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    if req.offset.is_some() {
        return Err(ApiError::bad_request("Format error in JSON body: unknown field `offset`", started));
    }
    let group_by = req
        .group_by
        .take()
        .ok_or_else(|| ApiError::bad_request("Format error in JSON body: missing field `group_by`", started))?;
    let grouping = Grouping::new(group_by, req.group_size, req.limit, req.with_lookup.take(), started)?;
    req.limit = Some(grouping.limit);
    let plan = QueryPlan::new(recommend_query(&mut req), started)?;
    grouping.run(plan, state, &c, started).await
}

pub async fn discover(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: DiscoverRequest = parse_body(&body, started)?;
    discover_points(&state, &c, req, started).await
}

/// The older discover (REST and gRPC `Discover`): a list of `ScoredPoint`s.
pub(crate) async fn discover_points(
    state: &AppState,
    c: &Collection,
    mut req: DiscoverRequest,
    started: Instant,
) -> ApiResult<Value> {
    need_limit(req.limit, started)?;
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    let plan = QueryPlan::new(discover_query(req), started)?;
    let mut answer = run_all(vec![(c, plan)], state, started).await?;
    answer.result = answer.result.as_array_mut().and_then(|a| a.pop()).unwrap_or(Value::Array(Vec::new()));
    Ok(answer)
}

pub async fn discover_batch(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: Batch<DiscoverRequest> = parse_body(&body, started)?;
    discover_points_batch(&state, &c, req, started).await
}

/// Several older discovers (REST and gRPC `DiscoverBatch`): a list of lists.
pub(crate) async fn discover_points_batch(
    state: &AppState,
    c: &Collection,
    req: Batch<DiscoverRequest>,
    started: Instant,
) -> ApiResult<Value> {
    let mut plans = Vec::with_capacity(req.searches.len());
    for mut r in req.searches {
        need_limit(r.limit, started)?;
        let scoped = super::shards::scoped(c, r.shard_key.take(), started)?;
        plans.push((scoped, QueryPlan::new(discover_query(r), started)?));
    }
    run_all(plans, state, started).await
}

pub async fn facet(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: FacetRequest = parse_body(&body, started)?;
    facet_counts(&c, req, started).await
}

/// The most common values of a payload key (REST and gRPC `Facet`): `{"hits": [{value, count}]}`.
pub(crate) async fn facet_counts(c: &Collection, mut req: FacetRequest, started: Instant) -> ApiResult<Value> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    if req.key.trim().is_empty() {
        return Err(ApiError::bad_request("Wrong input: key must not be empty", started));
    }
    let limit = req.limit.unwrap_or(10);
    if limit == 0 {
        return Err(ApiError::bad_request("Wrong input: limit must be at least 1", started));
    }
    let filter = parse_filter(req.filter, started)?;
    let hits = c.facet(&req.key, filter, limit).await.map_err(|e| ApiError::from_engine(e, started))?;
    let hits: Vec<Value> = hits.into_iter().map(|(value, count)| json!({ "value": value, "count": count })).collect();
    Ok(Answer::new(json!({ "hits": hits }), started))
}

/// `POST /collections/{name}/points/search/matrix/{pairs,offsets}`: Qdrant's
/// `SearchMatrixRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchMatrixRequest {
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub sample: Option<usize>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub using: Option<String>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

/// The sampled ids (in id order) and each one's nearest other sampled points, best first.
type Matrix = (Vec<PointId>, Vec<Vec<ametist_engine::ScoredDoc>>);

/// A random sample of `sample` points that match the filter and have the vector `using`,
/// and for each the `limit` nearest of the other sampled points (exact), as Qdrant does.
async fn search_matrix(
    c: &Collection,
    req: SearchMatrixRequest,
    started: Instant,
) -> Result<(Matrix, Vec<ametist_engine::messages::MissingPartition>), ApiError> {
    use ametist_core::filter::{Condition, Filter, HasIdCondition, HasVectorCondition};
    use ametist_engine::messages::{ScrollOrder, ScrollRequest};
    let engine = |e| ApiError::from_engine(e, started);
    let (sample, limit) = (req.sample.unwrap_or(10), req.limit.unwrap_or(3));
    if sample == 0 || limit == 0 {
        return Err(ApiError::bad_request("Wrong input: sample and limit must be at least 1", started));
    }
    let using = req.using.unwrap_or_default();
    match c.spec().dense_field(&using) {
        Some(f) if f.multivector.is_none() => {}
        Some(_) => {
            return Err(super::points::not_supported("search matrix over a multivector is not supported yet", started))
        }
        None if c.spec().sparse_vectors.contains_key(&using) => {
            return Err(super::points::not_supported(
                "search matrix over a sparse vector is not supported yet",
                started,
            ))
        }
        None => {
            return Err(ApiError::bad_request(format!("Wrong input: Not existing vector name error: {using}"), started))
        }
    }
    let filter = parse_filter(req.filter, started)?;
    let and = |a: Option<Filter>, b: Condition| {
        let mut must = vec![b];
        if let Some(a) = a {
            must.push(Condition::Filter(a));
        }
        Filter { must: Some(must), ..Filter::default() }
    };
    let seed = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(sample);
        h.finish()
    };
    let scroll = ScrollRequest {
        filter: Some(and(filter.clone(), Condition::HasVector(HasVectorCondition { has_vector: using.clone() }))),
        offset: None,
        limit: sample,
        with_payload: false,
        with_vector: true,
        order: Some(ScrollOrder::Random { seed }),
    };
    let (mut samples, _) = c.scroll(scroll).await.map_err(engine)?;
    if samples.len() < 2 {
        return Ok(((Vec::new(), Vec::new()), Vec::new()));
    }
    samples.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<PointId> = samples.iter().map(|r| r.id.clone()).collect();
    let mut rows = Vec::with_capacity(samples.len());
    let mut missing = Vec::new();
    for (i, r) in samples.into_iter().enumerate() {
        let Some(vector) = r.vectors.and_then(|mut v| v.dense.remove(&using)) else { continue };
        let others = ids.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, id)| id.clone()).collect();
        let mut s = ametist_engine::SearchRequest::new(vector, limit);
        s.using = using.clone();
        s.exact = true;
        s.filter = Some(and(filter.clone(), Condition::HasId(HasIdCondition { has_id: others })));
        let found = c.search(s).await.map_err(engine)?;
        for m in found.missing_partitions {
            if !missing.iter().any(|x: &ametist_engine::messages::MissingPartition| x.partition == m.partition) {
                missing.push(m);
            }
        }
        rows.push(found.results);
    }
    Ok(((ids, rows), missing))
}

pub async fn matrix_pairs(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: SearchMatrixRequest = parse_body(&body, started)?;
    search_matrix_pairs(&c, req, started).await
}

/// The distance matrix as pairs (REST and gRPC `SearchMatrixPairs`): `{"pairs": [{a, b, score}]}`.
pub(crate) async fn search_matrix_pairs(
    c: &Collection,
    mut req: SearchMatrixRequest,
    started: Instant,
) -> ApiResult<Value> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    let ((ids, rows), missing) = search_matrix(&c, req, started).await?;
    let mut pairs = Vec::new();
    for (a, row) in ids.iter().zip(rows) {
        for d in row {
            pairs.push(json!({ "a": a, "b": d.id, "score": d.score }));
        }
    }
    let mut answer = Answer::new(json!({ "pairs": pairs }), started);
    answer.missing = missing;
    Ok(answer)
}

pub async fn matrix_offsets(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Value> {
    let started = Instant::now();
    let c = collection(&state, &name, started)?;
    let req: SearchMatrixRequest = parse_body(&body, started)?;
    search_matrix_offsets(&c, req, started).await
}

/// The distance matrix as offsets into its ids (REST and gRPC `SearchMatrixOffsets`):
/// `{"offsets_row", "offsets_col", "scores", "ids"}`.
pub(crate) async fn search_matrix_offsets(
    c: &Collection,
    mut req: SearchMatrixRequest,
    started: Instant,
) -> ApiResult<Value> {
    let c = super::shards::scoped(c, req.shard_key.take(), started)?;
    let ((ids, rows), missing) = search_matrix(&c, req, started).await?;
    let (mut offsets_row, mut offsets_col, mut scores) = (Vec::new(), Vec::new(), Vec::new());
    for (i, row) in rows.into_iter().enumerate() {
        for d in row {
            offsets_row.push(i);
            offsets_col.push(ids.iter().position(|id| *id == d.id).unwrap_or(0));
            scores.push(d.score);
        }
    }
    let mut answer = Answer::new(
        json!({ "offsets_row": offsets_row, "offsets_col": offsets_col, "scores": scores, "ids": ids }),
        started,
    );
    answer.missing = missing;
    Ok(answer)
}
