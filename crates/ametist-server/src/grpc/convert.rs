//! Proto messages to the shapes the REST handlers take, and their JSON answers back to
//! proto messages.
//!
//! Inputs become what the REST body would have held (Qdrant's REST and gRPC APIs describe
//! the same requests), so the REST parsers and checks judge them: a filter becomes REST's
//! filter JSON, a query REST's query JSON. Dense vectors of points and searches go
//! straight into the typed requests instead. A proto field with no REST counterpart that
//! Ametist could honour is refused with INVALID_ARGUMENT naming it, as REST refuses an
//! unknown field; never accepted and ignored.

use std::collections::HashMap;

use serde_json::{json, Map, Value as Json};
use tonic::Status;

use super::invalid;
use super::proto;
use crate::api::points::{QuantizationSearchParams, QueryInput, SearchParams, VectorInput};

// ---- values and ids ----------------------------------------------------------------

/// A payload value as JSON.
pub fn value_json(v: proto::Value) -> Json {
    use proto::value::Kind;
    match v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::DoubleValue(d)) => serde_json::Number::from_f64(d).map_or(Json::Null, Json::Number),
        Some(Kind::IntegerValue(i)) => json!(i),
        Some(Kind::StringValue(s)) => Json::String(s),
        Some(Kind::BoolValue(b)) => Json::Bool(b),
        Some(Kind::StructValue(s)) => Json::Object(payload_json(s.fields)),
        Some(Kind::ListValue(l)) => Json::Array(l.values.into_iter().map(value_json).collect()),
    }
}

/// A payload map as a JSON object.
pub fn payload_json(fields: HashMap<String, proto::Value>) -> Map<String, Json> {
    fields.into_iter().map(|(k, v)| (k, value_json(v))).collect()
}

/// JSON as a payload value: integers that fit `i64` stay integers, as Qdrant sends them.
pub fn json_value(v: Json) -> proto::Value {
    use proto::value::Kind;
    let kind = match v {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Kind::StringValue(s),
        Json::Array(items) => Kind::ListValue(proto::ListValue { values: items.into_iter().map(json_value).collect() }),
        Json::Object(m) => Kind::StructValue(proto::Struct { fields: json_payload(m) }),
    };
    proto::Value { kind: Some(kind) }
}

/// A JSON object as a payload map.
pub fn json_payload(m: Map<String, Json>) -> HashMap<String, proto::Value> {
    m.into_iter().map(|(k, v)| (k, json_value(v))).collect()
}

/// A point id as JSON (a number or a UUID string), as REST bodies carry it.
pub fn point_id_json(id: Option<proto::PointId>, field: &str) -> Result<Json, Status> {
    use proto::point_id::PointIdOptions;
    match id.and_then(|p| p.point_id_options) {
        Some(PointIdOptions::Num(n)) => Ok(json!(n)),
        Some(PointIdOptions::Uuid(s)) => Ok(Json::String(s)),
        None => Err(invalid(format!("{field}: a point id must be a number or a UUID"))),
    }
}

/// A point id as the engine's type (the REST parser checks UUIDs).
pub fn point_id(id: Option<proto::PointId>, field: &str) -> Result<ametist_core::PointId, Status> {
    let v = point_id_json(id, field)?;
    serde_json::from_value(v).map_err(|e| invalid(format!("{field}: {e}")))
}

pub fn point_ids(ids: Vec<proto::PointId>, field: &str) -> Result<Vec<ametist_core::PointId>, Status> {
    ids.into_iter().map(|id| point_id(Some(id), field)).collect()
}

/// A point id of an answer (a number or a string in JSON).
pub fn json_point_id(v: &Json) -> proto::PointId {
    use proto::point_id::PointIdOptions;
    let options = match v {
        Json::Number(n) => PointIdOptions::Num(n.as_u64().unwrap_or_default()),
        Json::String(s) => PointIdOptions::Uuid(s.clone()),
        other => PointIdOptions::Uuid(other.to_string()),
    };
    proto::PointId { point_id_options: Some(options) }
}

// ---- filters -----------------------------------------------------------------------

/// A filter as REST's filter JSON (`must` / `should` / `must_not` / `min_should`).
pub fn filter_json(f: proto::Filter) -> Result<Json, Status> {
    let list = |cs: Vec<proto::Condition>| -> Result<Json, Status> {
        Ok(Json::Array(cs.into_iter().map(condition_json).collect::<Result<_, _>>()?))
    };
    let mut m = Map::new();
    if !f.must.is_empty() {
        m.insert("must".into(), list(f.must)?);
    }
    if !f.should.is_empty() {
        m.insert("should".into(), list(f.should)?);
    }
    if !f.must_not.is_empty() {
        m.insert("must_not".into(), list(f.must_not)?);
    }
    if let Some(ms) = f.min_should {
        m.insert("min_should".into(), json!({ "conditions": list(ms.conditions)?, "min_count": ms.min_count }));
    }
    Ok(Json::Object(m))
}

/// An optional filter as REST's optional filter JSON.
pub fn opt_filter(f: Option<proto::Filter>) -> Result<Option<Json>, Status> {
    f.map(filter_json).transpose()
}

fn condition_json(c: proto::Condition) -> Result<Json, Status> {
    use proto::condition::ConditionOneOf as C;
    Ok(match c.condition_one_of {
        None => return Err(invalid("filter: an empty condition")),
        Some(C::Field(f)) => field_condition_json(f)?,
        Some(C::IsEmpty(c)) => json!({ "is_empty": { "key": c.key } }),
        Some(C::IsNull(c)) => json!({ "is_null": { "key": c.key } }),
        Some(C::HasId(c)) => {
            let ids =
                c.has_id.into_iter().map(|id| point_id_json(Some(id), "has_id")).collect::<Result<Vec<_>, _>>()?;
            json!({ "has_id": ids })
        }
        Some(C::Filter(f)) => filter_json(f)?,
        Some(C::Nested(n)) => {
            let filter = filter_json(n.filter.unwrap_or_default())?;
            json!({ "nested": { "key": n.key, "filter": filter } })
        }
        Some(C::HasVector(c)) => json!({ "has_vector": c.has_vector }),
        Some(C::Slice(_)) => return Err(invalid("filter: `slice` conditions are not supported yet")),
    })
}

fn field_condition_json(f: proto::FieldCondition) -> Result<Json, Status> {
    use proto::r#match::MatchValue as M;
    let mut m = Map::new();
    m.insert("key".into(), Json::String(f.key));
    if let Some(mv) = f.r#match.and_then(|m| m.match_value) {
        let v = match mv {
            M::Keyword(s) => json!({ "value": s }),
            M::Integer(i) => json!({ "value": i }),
            M::Boolean(b) => json!({ "value": b }),
            M::Text(s) => json!({ "text": s }),
            M::Keywords(l) => json!({ "any": l.strings }),
            M::Integers(l) => json!({ "any": l.integers }),
            M::ExceptIntegers(l) => json!({ "except": l.integers }),
            M::ExceptKeywords(l) => json!({ "except": l.strings }),
            M::Phrase(s) => json!({ "phrase": s }),
            M::TextAny(s) => json!({ "text_any": s }),
            M::Prefix(s) => json!({ "prefix": s }),
            M::Substring(_) => return Err(invalid("filter: `match.substring` is not supported yet")),
        };
        m.insert("match".into(), v);
    }
    if let Some(r) = f.range {
        m.insert("range".into(), json!({ "lt": r.lt, "gt": r.gt, "gte": r.gte, "lte": r.lte }));
    }
    if let Some(r) = f.datetime_range {
        let t = |t: Option<prost_types::Timestamp>| t.map(|t| t.to_string());
        m.insert("range".into(), json!({ "lt": t(r.lt), "gt": t(r.gt), "gte": t(r.gte), "lte": t(r.lte) }));
    }
    if let Some(c) = f.values_count {
        m.insert("values_count".into(), json!({ "lt": c.lt, "gt": c.gt, "gte": c.gte, "lte": c.lte }));
    }
    let point = |p: Option<proto::GeoPoint>| p.map(|p| json!({ "lon": p.lon, "lat": p.lat }));
    let line =
        |l: proto::GeoLineString| json!({ "points": l.points.into_iter().map(|p| point(Some(p))).collect::<Vec<_>>() });
    if let Some(b) = f.geo_bounding_box {
        m.insert(
            "geo_bounding_box".into(),
            json!({ "top_left": point(b.top_left), "bottom_right": point(b.bottom_right) }),
        );
    }
    if let Some(r) = f.geo_radius {
        m.insert("geo_radius".into(), json!({ "center": point(r.center), "radius": r.radius }));
    }
    if let Some(p) = f.geo_polygon {
        let mut poly = json!({ "exterior": line(p.exterior.unwrap_or_default()) });
        if !p.interiors.is_empty() {
            poly["interiors"] = Json::Array(p.interiors.into_iter().map(line).collect());
        }
        m.insert("geo_polygon".into(), poly);
    }
    if let Some(b) = f.is_empty {
        m.insert("is_empty".into(), Json::Bool(b));
    }
    if let Some(b) = f.is_null {
        m.insert("is_null".into(), Json::Bool(b));
    }
    Ok(Json::Object(m))
}

// ---- selectors ---------------------------------------------------------------------

/// `with_payload` as REST's selector JSON (`true`, `["a"]`, `{"exclude": [...]}`).
pub fn with_payload_json(s: Option<proto::WithPayloadSelector>) -> Option<Json> {
    use proto::with_payload_selector::SelectorOptions as S;
    s.and_then(|s| s.selector_options).map(|o| match o {
        S::Enable(b) => Json::Bool(b),
        S::Include(i) => json!({ "include": i.fields }),
        S::Exclude(e) => json!({ "exclude": e.fields }),
    })
}

/// `with_vectors` as REST's selector JSON (`true` or a list of names).
pub fn with_vectors_json(s: Option<proto::WithVectorsSelector>) -> Option<Json> {
    use proto::with_vectors_selector::SelectorOptions as S;
    s.and_then(|s| s.selector_options).map(|o| match o {
        S::Enable(b) => Json::Bool(b),
        S::Include(names) => json!(names.names),
    })
}

fn shard_key_json(k: proto::ShardKey) -> Result<Json, Status> {
    use proto::shard_key::Key;
    match k.key {
        Some(Key::Keyword(s)) => Ok(Json::String(s)),
        Some(Key::Number(n)) => Ok(json!(n)),
        None => Err(invalid("shard_key_selector: an empty shard key")),
    }
}

/// The shard key selector as REST's `shard_key` JSON.
pub fn shard_keys_json(s: Option<proto::ShardKeySelector>) -> Result<Option<Json>, Status> {
    let Some(s) = s else { return Ok(None) };
    let keys = s.shard_keys.into_iter().map(shard_key_json).collect::<Result<Vec<_>, _>>()?;
    match s.fallback {
        Some(fallback) => {
            let [target] = <[Json; 1]>::try_from(keys)
                .map_err(|_| invalid("shard_key_selector: a selector with a fallback names one target key"))?;
            Ok(Some(json!({ "target": target, "fallback": shard_key_json(fallback)? })))
        }
        None if keys.is_empty() => Ok(None),
        None => Ok(Some(Json::Array(keys))),
    }
}

/// `read_consistency` as REST's `consistency` parameter.
pub fn consistency(c: Option<proto::ReadConsistency>) -> Option<String> {
    use proto::read_consistency::Value as V;
    c.and_then(|c| c.value).map(|v| match v {
        V::Factor(n) => n.to_string(),
        V::Type(t) => match proto::ReadConsistencyType::try_from(t) {
            Ok(proto::ReadConsistencyType::Majority) => "majority".into(),
            Ok(proto::ReadConsistencyType::Quorum) => "quorum".into(),
            _ => "all".into(),
        },
    })
}

/// Search parameters as REST's typed `params`.
pub fn search_params(p: Option<proto::SearchParams>) -> Result<Option<SearchParams>, Status> {
    let Some(p) = p else { return Ok(None) };
    if p.acorn.is_some() {
        return Err(invalid("params.acorn is not supported yet"));
    }
    Ok(Some(SearchParams {
        hnsw_ef: p.hnsw_ef.map(|n| n as usize),
        exact: p.exact,
        quantization: p.quantization.map(|q| QuantizationSearchParams {
            ignore: q.ignore,
            rescore: q.rescore,
            oversampling: q.oversampling,
        }),
        // `indexed_only` and `idf` are accepted with nothing to act on, as on REST.
        _ignored: Map::new(),
    }))
}

fn search_params_json(p: Option<proto::SearchParams>) -> Result<Option<Json>, Status> {
    Ok(search_params(p)?.map(|p| {
        let q =
            p.quantization.map(|q| json!({ "ignore": q.ignore, "rescore": q.rescore, "oversampling": q.oversampling }));
        json!({ "hnsw_ef": p.hnsw_ef, "exact": p.exact, "quantization": q })
    }))
}

// ---- vectors -----------------------------------------------------------------------

/// One vector value as sent.
enum VectorValue {
    Dense(Vec<f32>),
    Multi(Vec<Vec<f32>>),
    Sparse { indices: Vec<u32>, values: Vec<f32> },
}

impl VectorValue {
    fn json(self) -> Json {
        match self {
            VectorValue::Dense(v) => json!(v),
            VectorValue::Multi(rows) => json!(rows),
            VectorValue::Sparse { indices, values } => json!({ "indices": indices, "values": values }),
        }
    }
}

/// Qdrant's `Vector`: its `vector` oneof, or the older `data` (+ `indices` for sparse,
/// `vectors_count` for a multivector) that clients still send.
#[allow(deprecated)]
fn vector_value(v: proto::Vector, name: &str) -> Result<VectorValue, Status> {
    use proto::vector::Vector as V;
    Ok(match v.vector {
        Some(V::Dense(d)) => VectorValue::Dense(d.data),
        Some(V::Sparse(s)) => VectorValue::Sparse { indices: s.indices, values: s.values },
        Some(V::MultiDense(m)) => VectorValue::Multi(m.vectors.into_iter().map(|d| d.data).collect()),
        Some(V::Document(_) | V::Image(_) | V::Object(_)) => {
            return Err(invalid(format!("vector `{name}`: inference objects are not supported; send numbers")))
        }
        None => match (v.indices, v.vectors_count) {
            (Some(indices), _) => VectorValue::Sparse { indices: indices.data, values: v.data },
            (None, Some(n)) if n > 1 => {
                let n = n as usize;
                if !v.data.len().is_multiple_of(n) {
                    return Err(invalid(format!(
                        "vector `{name}`: {} numbers do not split into {n} vectors",
                        v.data.len()
                    )));
                }
                let dim = v.data.len() / n;
                VectorValue::Multi(v.data.chunks_exact(dim.max(1)).map(<[f32]>::to_vec).collect())
            }
            (None, _) => VectorValue::Dense(v.data),
        },
    })
}

/// A point's `vectors` as REST's vector input: a bare dense vector stays typed; a
/// multivector, or named vectors, are the JSON REST would have carried.
pub fn vectors_input(v: Option<proto::Vectors>) -> Result<VectorInput, Status> {
    use proto::vectors::VectorsOptions as O;
    match v.and_then(|v| v.vectors_options) {
        None => Ok(VectorInput::Other(Json::Object(Map::new()))),
        Some(O::Vector(v)) => match vector_value(v, "")? {
            VectorValue::Dense(d) => Ok(VectorInput::Dense(d)),
            VectorValue::Multi(rows) => Ok(VectorInput::Other(json!(rows))),
            VectorValue::Sparse { .. } => Err(invalid("a sparse vector must be given by name")),
        },
        Some(O::Vectors(named)) => {
            let mut m = Map::new();
            for (name, v) in named.vectors {
                let value = vector_value(v, &name)?.json();
                m.insert(name, value);
            }
            Ok(VectorInput::Other(Json::Object(m)))
        }
    }
}

/// A query's `VectorInput` as REST's JSON: a vector, a point id, a sparse object.
fn vector_input_json(v: Option<proto::VectorInput>, field: &str) -> Result<Json, Status> {
    use proto::vector_input::Variant as V;
    match v.and_then(|v| v.variant) {
        None => Err(invalid(format!("{field}: an empty vector input"))),
        Some(V::Id(id)) => point_id_json(Some(id), field),
        Some(V::Dense(d)) => Ok(json!(d.data)),
        Some(V::Sparse(s)) => Ok(json!({ "indices": s.indices, "values": s.values })),
        Some(V::MultiDense(m)) => Ok(json!(m.vectors.into_iter().map(|d| d.data).collect::<Vec<_>>())),
        Some(V::Document(_) | V::Image(_) | V::Object(_)) => {
            Err(invalid(format!("{field}: inference objects are not supported; send numbers")))
        }
    }
}

fn context_json(c: Option<proto::ContextInput>, field: &str) -> Result<Json, Status> {
    let pairs = c.map(|c| c.pairs).unwrap_or_default();
    let pairs = pairs
        .into_iter()
        .map(|p| {
            Ok(json!({
                "positive": vector_input_json(p.positive, field)?,
                "negative": vector_input_json(p.negative, field)?,
            }))
        })
        .collect::<Result<Vec<_>, Status>>()?;
    Ok(Json::Array(pairs))
}

fn order_by_json(o: proto::OrderBy) -> Result<Json, Status> {
    use proto::start_from::Value as S;
    let mut m = Map::new();
    m.insert("key".into(), Json::String(o.key));
    if let Some(d) = o.direction {
        let d = match proto::Direction::try_from(d) {
            Ok(proto::Direction::Desc) => "desc",
            _ => "asc",
        };
        m.insert("direction".into(), Json::String(d.into()));
    }
    if let Some(s) = o.start_from.and_then(|s| s.value) {
        let v = match s {
            S::Float(f) => json!(f),
            S::Integer(i) => json!(i),
            S::Timestamp(t) => Json::String(t.to_string()),
            S::Datetime(s) => Json::String(s),
        };
        m.insert("start_from".into(), v);
    }
    Ok(Json::Object(m))
}

/// The scroll's `order_by` as REST's JSON.
pub fn opt_order_by(o: Option<proto::OrderBy>) -> Result<Option<Json>, Status> {
    o.map(order_by_json).transpose()
}

/// A `Query` as REST's query: a dense `nearest` stays typed (as REST reads it), anything
/// else is REST's query JSON.
pub fn query_input(q: proto::Query) -> Result<QueryInput, Status> {
    use proto::query::Variant as V;
    use proto::vector_input::Variant as I;
    match q.variant {
        Some(V::Nearest(proto::VectorInput { variant: Some(I::Dense(d)) })) => Ok(QueryInput::Dense(d.data)),
        variant => query_json(proto::Query { variant }).map(QueryInput::Other),
    }
}

/// A `Query` as REST's query JSON.
pub fn query_json(q: proto::Query) -> Result<Json, Status> {
    use proto::query::Variant as V;
    let Some(v) = q.variant else { return Ok(Json::Null) };
    Ok(match v {
        V::Nearest(v) => json!({ "nearest": vector_input_json(Some(v), "query.nearest")? }),
        V::NearestWithMmr(n) => {
            let mmr = n.mmr.unwrap_or_default();
            json!({
                "nearest": vector_input_json(n.nearest, "query.nearest")?,
                "mmr": { "diversity": mmr.diversity, "candidates_limit": mmr.candidates_limit },
            })
        }
        V::Recommend(r) => {
            let list = |vs: Vec<proto::VectorInput>, f: &str| -> Result<Vec<Json>, Status> {
                vs.into_iter().map(|v| vector_input_json(Some(v), f)).collect()
            };
            let strategy = r.strategy.map(|s| match proto::RecommendStrategy::try_from(s) {
                Ok(proto::RecommendStrategy::BestScore) => "best_score",
                Ok(proto::RecommendStrategy::SumScores) => "sum_scores",
                _ => "average_vector",
            });
            json!({ "recommend": {
                "positive": list(r.positive, "query.recommend.positive")?,
                "negative": list(r.negative, "query.recommend.negative")?,
                "strategy": strategy,
            } })
        }
        V::Discover(d) => json!({ "discover": {
            "target": vector_input_json(d.target, "query.discover.target")?,
            "context": context_json(d.context, "query.discover.context")?,
        } }),
        V::Context(c) => json!({ "context": context_json(Some(c), "query.context")? }),
        V::OrderBy(o) => json!({ "order_by": order_by_json(o)? }),
        V::Fusion(f) => {
            let f = match proto::Fusion::try_from(f) {
                Ok(proto::Fusion::Dbsf) => "dbsf",
                _ => "rrf",
            };
            json!({ "fusion": f })
        }
        V::Rrf(r) => {
            if !r.weights.is_empty() {
                return Err(invalid("query.rrf.weights is not supported yet"));
            }
            json!({ "rrf": { "k": r.k } })
        }
        V::Sample(_) => json!({ "sample": "random" }),
        V::Formula(_) => return Err(invalid("`formula` queries are not supported yet")),
        V::RelevanceFeedback(_) => return Err(invalid("`relevance_feedback` queries are not supported yet")),
        V::Text(_) => return Err(invalid("`text` queries are not supported yet; use REST's `bm25` query")),
    })
}

fn lookup_json(l: Option<proto::LookupLocation>) -> Result<Option<Json>, Status> {
    let Some(l) = l else { return Ok(None) };
    if l.shard_key_selector.is_some() {
        return Err(invalid("lookup_from.shard_key_selector is not supported yet"));
    }
    Ok(Some(json!({ "collection": l.collection_name, "vector": l.vector_name })))
}

/// A prefetch as REST's prefetch JSON (it may hold prefetches of its own).
fn prefetch_json(p: proto::PrefetchQuery) -> Result<Json, Status> {
    let mut m = Map::new();
    if !p.prefetch.is_empty() {
        let inner = p.prefetch.into_iter().map(prefetch_json).collect::<Result<Vec<_>, _>>()?;
        m.insert("prefetch".into(), Json::Array(inner));
    }
    if let Some(q) = p.query {
        m.insert("query".into(), query_json(q)?);
    }
    let mut put = |k: &str, v: Option<Json>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    put("using", p.using.map(Json::String));
    put("filter", opt_filter(p.filter)?);
    put("params", search_params_json(p.params)?);
    put("score_threshold", p.score_threshold.map(|s| json!(s)));
    put("limit", p.limit.map(|l| json!(l)));
    put("lookup_from", lookup_json(p.lookup_from)?);
    Ok(Json::Object(m))
}

/// A `QueryPoints` as REST's typed query request.
pub fn query_points(q: proto::QueryPoints) -> Result<crate::api::points::QueryPoints, Status> {
    let prefetch = if q.prefetch.is_empty() {
        None
    } else {
        Some(Json::Array(q.prefetch.into_iter().map(prefetch_json).collect::<Result<_, _>>()?))
    };
    Ok(crate::api::points::QueryPoints {
        query: q.query.map(query_input).transpose()?,
        limit: q.limit.map(|l| l as usize),
        offset: q.offset.map(|o| o as usize),
        with_payload: with_payload_json(q.with_payload),
        with_vector: with_vectors_json(q.with_vectors),
        score_threshold: q.score_threshold,
        params: search_params(q.params)?,
        filter: opt_filter(q.filter)?,
        using: q.using,
        shard_key: shard_keys_json(q.shard_key_selector)?,
        lookup_from: lookup_json(q.lookup_from)?,
        prefetch,
    })
}

/// A `SearchPoints` as REST's typed search request.
#[allow(deprecated)]
pub fn search_points(s: proto::SearchPoints) -> Result<crate::api::points::SearchPoints, Status> {
    if s.sparse_indices.is_some() {
        return Err(invalid("sparse_indices: search sparse vectors with Query"));
    }
    if s.vector_name.as_deref().is_some_and(|n| !n.is_empty()) {
        // The older search names its vector in the body (`{"name", "vector"}`); REST's
        // typed request has no such field, so a named search goes through Query.
        return Err(invalid("vector_name: search named vectors with Query"));
    }
    Ok(crate::api::points::SearchPoints {
        vector: VectorInput::Dense(s.vector),
        limit: s.limit as usize,
        offset: s.offset.map(|o| o as usize),
        with_payload: with_payload_json(s.with_payload),
        with_vector: with_vectors_json(s.with_vectors),
        score_threshold: s.score_threshold,
        params: search_params(s.params)?,
        filter: opt_filter(s.filter)?,
        shard_key: shard_keys_json(s.shard_key_selector)?,
    })
}

// ---- answers -----------------------------------------------------------------------

/// A point's vectors as answered (REST's `vector` JSON).
pub fn vectors_output(v: Json) -> Option<proto::VectorsOutput> {
    use proto::vectors_output::VectorsOptions as O;
    let options = match v {
        Json::Object(m) => {
            let vectors = m.into_iter().filter_map(|(n, v)| Some((n, vector_output(v)?))).collect();
            O::Vectors(proto::NamedVectorsOutput { vectors })
        }
        other => O::Vector(vector_output(other)?),
    };
    Some(proto::VectorsOutput { vectors_options: Some(options) })
}

fn floats(v: &Json) -> Vec<f32> {
    v.as_array().map(|a| a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN) as f32).collect()).unwrap_or_default()
}

fn vector_output(v: Json) -> Option<proto::VectorOutput> {
    use proto::vector_output::Vector as V;
    let vector = match &v {
        Json::Array(items) if items.first().is_some_and(Json::is_array) => V::MultiDense(proto::MultiDenseVector {
            vectors: items.iter().map(|row| proto::DenseVector { data: floats(row) }).collect(),
        }),
        Json::Array(_) => V::Dense(proto::DenseVector { data: floats(&v) }),
        Json::Object(m) => V::Sparse(proto::SparseVector {
            values: m.get("values").map(floats).unwrap_or_default(),
            indices: m
                .get("indices")
                .and_then(Json::as_array)
                .map(|a| a.iter().map(|x| x.as_u64().unwrap_or_default() as u32).collect())
                .unwrap_or_default(),
        }),
        _ => return None,
    };
    #[allow(deprecated)]
    Some(proto::VectorOutput { data: Vec::new(), indices: None, vectors_count: None, vector: Some(vector) })
}

fn order_value(v: Option<&Json>) -> Option<proto::OrderValue> {
    use proto::order_value::Variant;
    let n = v?.as_number()?;
    let variant = match n.as_i64() {
        Some(i) => Variant::Int(i),
        None => Variant::Float(n.as_f64()?),
    };
    Some(proto::OrderValue { variant: Some(variant) })
}

fn payload_of(m: &mut Map<String, Json>) -> HashMap<String, proto::Value> {
    match m.remove("payload") {
        Some(Json::Object(p)) => json_payload(p),
        _ => HashMap::new(),
    }
}

/// REST's `ScoredPoint` JSON as the proto.
pub fn scored_point(v: Json) -> proto::ScoredPoint {
    let Json::Object(mut m) = v else { return proto::ScoredPoint::default() };
    proto::ScoredPoint {
        id: m.get("id").map(json_point_id),
        payload: payload_of(&mut m),
        score: m.get("score").and_then(Json::as_f64).unwrap_or_default() as f32,
        version: m.get("version").and_then(Json::as_u64).unwrap_or_default(),
        vectors: m.remove("vector").and_then(vectors_output),
        shard_key: None,
        order_value: order_value(m.get("order_value")),
    }
}

/// REST's `Record` JSON as the proto.
pub fn retrieved_point(v: Json) -> proto::RetrievedPoint {
    let Json::Object(mut m) = v else { return proto::RetrievedPoint::default() };
    proto::RetrievedPoint {
        id: m.get("id").map(json_point_id),
        payload: payload_of(&mut m),
        vectors: m.remove("vector").and_then(vectors_output),
        shard_key: None,
        order_value: order_value(m.get("order_value")),
    }
}

/// A list of REST `ScoredPoint`s.
pub fn scored_points(v: Json) -> Vec<proto::ScoredPoint> {
    match v {
        Json::Array(items) => items.into_iter().map(scored_point).collect(),
        _ => Vec::new(),
    }
}

/// REST's `UpdateResult` JSON as the proto.
pub fn update_result(v: &Json) -> proto::UpdateResult {
    let status = match v.get("status").and_then(Json::as_str) {
        Some("completed") => proto::UpdateStatus::Completed,
        Some("acknowledged") => proto::UpdateStatus::Acknowledged,
        _ => proto::UpdateStatus::UnknownUpdateStatus,
    };
    proto::UpdateResult { operation_id: v.get("operation_id").and_then(Json::as_u64), status: status as i32 }
}

// ---- the older recommend and discover ------------------------------------------------

/// A `Vector` example (a dense vector) as REST's JSON.
fn example_vector_json(v: proto::Vector, field: &str) -> Result<Json, Status> {
    match vector_value(v, field)? {
        VectorValue::Dense(d) => Ok(json!(d)),
        _ => Err(invalid(format!("{field}: examples must be point ids or dense vectors"))),
    }
}

/// A `VectorExample` (a point id or a vector) as REST's JSON.
fn vector_example_json(e: Option<proto::VectorExample>, field: &str) -> Result<Json, Status> {
    use proto::vector_example::Example;
    match e.and_then(|e| e.example) {
        Some(Example::Id(id)) => point_id_json(Some(id), field),
        Some(Example::Vector(v)) => example_vector_json(v, field),
        None => Err(invalid(format!("{field}: an empty example"))),
    }
}

/// A `RecommendPoints` as REST's typed recommend request.
pub fn recommend_request(r: proto::RecommendPoints) -> Result<crate::api::explore::RecommendRequest, Status> {
    let examples = |ids: Vec<proto::PointId>, vectors: Vec<proto::Vector>, field: &str| -> Result<Json, Status> {
        let mut out = ids.into_iter().map(|id| point_id_json(Some(id), field)).collect::<Result<Vec<_>, _>>()?;
        for v in vectors {
            out.push(example_vector_json(v, field)?);
        }
        Ok(Json::Array(out))
    };
    let strategy = r.strategy.map(|s| {
        json!(match proto::RecommendStrategy::try_from(s) {
            Ok(proto::RecommendStrategy::BestScore) => "best_score",
            Ok(proto::RecommendStrategy::SumScores) => "sum_scores",
            _ => "average_vector",
        })
    });
    Ok(crate::api::explore::RecommendRequest {
        positive: Some(examples(r.positive, r.positive_vectors, "positive")?),
        negative: Some(examples(r.negative, r.negative_vectors, "negative")?),
        strategy,
        filter: opt_filter(r.filter)?,
        params: search_params(r.params)?,
        limit: Some(r.limit as usize),
        offset: r.offset.map(|o| o as usize),
        with_payload: with_payload_json(r.with_payload),
        with_vector: with_vectors_json(r.with_vectors),
        score_threshold: r.score_threshold,
        using: r.using,
        lookup_from: lookup_json(r.lookup_from)?,
        group_by: None,
        group_size: None,
        with_lookup: None,
        shard_key: shard_keys_json(r.shard_key_selector)?,
    })
}

/// A `DiscoverPoints` as REST's typed discover request.
pub fn discover_request(d: proto::DiscoverPoints) -> Result<crate::api::explore::DiscoverRequest, Status> {
    use proto::target_vector::Target;
    let target = match d.target.and_then(|t| t.target) {
        Some(Target::Single(e)) => Some(vector_example_json(Some(e), "target")?),
        None => None,
    };
    let context = d
        .context
        .into_iter()
        .map(|p| {
            Ok(json!({
                "positive": vector_example_json(p.positive, "context")?,
                "negative": vector_example_json(p.negative, "context")?,
            }))
        })
        .collect::<Result<Vec<_>, Status>>()?;
    Ok(crate::api::explore::DiscoverRequest {
        target,
        context: Some(Json::Array(context)),
        filter: opt_filter(d.filter)?,
        params: search_params(d.params)?,
        limit: Some(d.limit as usize),
        offset: d.offset.map(|o| o as usize),
        with_payload: with_payload_json(d.with_payload),
        with_vector: with_vectors_json(d.with_vectors),
        using: d.using,
        lookup_from: lookup_json(d.lookup_from)?,
        shard_key: shard_keys_json(d.shard_key_selector)?,
    })
}

/// A facet value of an answer.
pub fn facet_value(v: &Json) -> proto::FacetValue {
    use proto::facet_value::Variant;
    let variant = match v {
        Json::Bool(b) => Variant::BoolValue(*b),
        Json::Number(n) if n.is_i64() => Variant::IntegerValue(n.as_i64().unwrap_or_default()),
        Json::String(s) => Variant::StringValue(s.clone()),
        other => Variant::StringValue(other.to_string()),
    };
    proto::FacetValue { variant: Some(variant) }
}

// ---- groups --------------------------------------------------------------------------

/// A `QueryPointGroups` as REST's typed groups request.
pub fn query_groups(q: proto::QueryPointGroups) -> Result<crate::api::explore::QueryGroups, Status> {
    let prefetch = if q.prefetch.is_empty() {
        None
    } else {
        Some(Json::Array(q.prefetch.into_iter().map(prefetch_json).collect::<Result<_, _>>()?))
    };
    let with_lookup = with_lookup_json(q.with_lookup);
    Ok(crate::api::explore::QueryGroups {
        query: q.query.map(query_input).transpose()?,
        prefetch,
        using: q.using,
        filter: opt_filter(q.filter)?,
        params: search_params(q.params)?,
        score_threshold: q.score_threshold,
        with_payload: with_payload_json(q.with_payload),
        with_vector: with_vectors_json(q.with_vectors),
        lookup_from: lookup_json(q.lookup_from)?,
        group_by: q.group_by,
        group_size: q.group_size.map(|n| n as usize),
        limit: q.limit.map(|n| n as usize),
        with_lookup,
        shard_key: shard_keys_json(q.shard_key_selector)?,
    })
}

/// `with_lookup` as REST's `{"collection", "with_payload", "with_vectors"}`.
fn with_lookup_json(l: Option<proto::WithLookup>) -> Option<Json> {
    l.map(|l| {
        let mut m = Map::new();
        m.insert("collection".into(), Json::String(l.collection));
        if let Some(p) = with_payload_json(l.with_payload) {
            m.insert("with_payload".into(), p);
        }
        if let Some(v) = with_vectors_json(l.with_vectors) {
            m.insert("with_vectors".into(), v);
        }
        Json::Object(m)
    })
}

/// A `SearchPointGroups` as REST's typed search-groups request.
pub fn search_groups(s: proto::SearchPointGroups) -> Result<crate::api::explore::SearchGroups, Status> {
    if s.sparse_indices.is_some() {
        return Err(invalid("sparse_indices: group sparse searches with QueryGroups"));
    }
    if s.vector_name.as_deref().is_some_and(|n| !n.is_empty()) {
        // As for Search: REST's search-groups body takes a bare vector.
        return Err(invalid("vector_name: group searches of named vectors with QueryGroups"));
    }
    Ok(crate::api::explore::SearchGroups {
        vector: VectorInput::Dense(s.vector),
        filter: opt_filter(s.filter)?,
        params: search_params(s.params)?,
        with_payload: with_payload_json(s.with_payload),
        with_vector: with_vectors_json(s.with_vectors),
        score_threshold: s.score_threshold,
        group_by: s.group_by,
        group_size: Some(s.group_size as usize),
        limit: Some(s.limit as usize),
        with_lookup: with_lookup_json(s.with_lookup),
        shard_key: shard_keys_json(s.shard_key_selector)?,
    })
}

/// A `RecommendPointGroups` as REST's typed recommend request with its group fields.
pub fn recommend_groups(r: proto::RecommendPointGroups) -> Result<crate::api::explore::RecommendRequest, Status> {
    let mut req = recommend_request(proto::RecommendPoints {
        collection_name: r.collection_name,
        positive: r.positive,
        negative: r.negative,
        filter: r.filter,
        limit: u64::from(r.limit),
        with_payload: r.with_payload,
        params: r.params,
        score_threshold: r.score_threshold,
        offset: None,
        using: r.using,
        with_vectors: r.with_vectors,
        lookup_from: r.lookup_from,
        read_consistency: None,
        strategy: r.strategy,
        positive_vectors: r.positive_vectors,
        negative_vectors: r.negative_vectors,
        timeout: None,
        shard_key_selector: r.shard_key_selector,
    })?;
    req.group_by = Some(r.group_by);
    req.group_size = Some(r.group_size as usize);
    req.with_lookup = with_lookup_json(r.with_lookup);
    Ok(req)
}

/// A `SearchMatrixPoints` as REST's typed matrix request.
pub fn search_matrix(s: proto::SearchMatrixPoints) -> Result<crate::api::explore::SearchMatrixRequest, Status> {
    Ok(crate::api::explore::SearchMatrixRequest {
        filter: opt_filter(s.filter)?,
        sample: s.sample.map(|n| n as usize),
        limit: s.limit.map(|n| n as usize),
        using: s.using,
        shard_key: shard_keys_json(s.shard_key_selector)?,
    })
}

/// REST's `{"groups": [...]}` answer as the proto.
pub fn groups_result(v: Json) -> proto::GroupsResult {
    use proto::group_id::Kind;
    let Json::Object(mut m) = v else { return proto::GroupsResult::default() };
    let Some(Json::Array(groups)) = m.remove("groups") else { return proto::GroupsResult::default() };
    let groups = groups
        .into_iter()
        .map(|mut g| {
            let kind = match &g["id"] {
                Json::Number(n) if n.is_u64() => Kind::UnsignedValue(n.as_u64().unwrap_or_default()),
                Json::Number(n) => Kind::IntegerValue(n.as_i64().unwrap_or_default()),
                Json::String(s) => Kind::StringValue(s.clone()),
                other => Kind::StringValue(other.to_string()),
            };
            proto::PointGroup {
                id: Some(proto::GroupId { kind: Some(kind) }),
                hits: scored_points(g["hits"].take()),
                lookup: g.get_mut("lookup").map(Json::take).filter(|l| !l.is_null()).map(retrieved_point),
            }
        })
        .collect();
    proto::GroupsResult { groups }
}
