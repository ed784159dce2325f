//! Qdrant-compatible payload filters and their evaluation against one point.
//!
//! The types below deserialize exactly the JSON shapes of Qdrant's REST API (`Filter`,
//! `Condition`, `FieldCondition`, `Match`, `Range`/`DatetimeRange`, `ValuesCount`,
//! `MinShould`, `HasIdCondition`, `IsEmptyCondition`, `IsNullCondition`, `NestedCondition`)
//! with error messages that name the offending place (`must[1].match: ...`).
//! Deserializing a [`Filter`] also runs [`Filter::validate`], so a filter that parsed is a
//! filter that can be evaluated. Nothing here does I/O.
//!
//! # Semantics (Qdrant's, unless marked as a deviation)
//!
//! * `must`: every condition holds; `must_not`: no condition holds; `should`: at least one
//!   holds, and an empty `should` list is no constraint (as Qdrant's server does today);
//!   `min_should {conditions, min_count}`: at least `min_count` hold (`min_count` ≥ 1).
//!   An empty filter `{}` matches every point. Each clause accepts one condition or a list.
//! * Keys are paths in Qdrant's syntax: `a.b`, `a[].b`, `a[0]`, `a."odd key"` (unquoted
//!   keys are letters, digits, `_` and `-`). A condition looks at every value the path
//!   reaches and matches if ANY of them matches; a reached array is looked into one level
//!   (its elements are the values). Deviation: `a.b` over an array of objects behaves like
//!   `a[].b` (Qdrant reaches nothing there).
//! * `match.value`: a string equals a string, an integer equals an integer number
//!   (`3` matches `3` but not `3.0`: Qdrant keeps integers and floats apart), a bool
//!   equals a bool. Types never cross.
//! * `match.any`: the value is one of a list of strings or of integers.
//! * `match.except`: the point has a value (not null) that is not in the list. A missing
//!   field, a null and an empty array do NOT match (Qdrant's behaviour); a value of another
//!   type (e.g. a bool, or a string against a list of integers) does match.
//! * `match.text`: full-text on a field without a text index, as Qdrant does it: query and
//!   value are split into lowercase words (runs of letters and digits; everything else
//!   separates) and every query word must be a word of the value, in any order. An empty
//!   query matches nothing. `match.text_any`: at least one query word. `match.phrase`: the
//!   query words appear consecutively, in order. `match.prefix`: the string starts with it
//!   (case-sensitive).
//! * `range` (`gt`, `gte`, `lt`, `lte`): numbers (integers and floats; not bools) or, when
//!   the bounds are strings, datetimes (see [`DateTime`] for the accepted spellings; the
//!   payload value must be such a string).
//! * `values_count`: the number of values of each value reached (an array counts its
//!   elements, null counts 0, anything else 1; a missing key counts 0); any reached value
//!   whose count satisfies all bounds matches.
//! * `is_empty`: the key reaches nothing, or only nulls and empty arrays.
//! * `is_null`: some reached value is null, or is an array holding a null.
//! * `has_id`: the point's id is in the list (UUIDs compared in canonical form; `5` and
//!   `"5"` are different ids).
//! * `nested {key, filter}`: some object element of the array at `key` (`key` or `key[]`)
//!   satisfies the whole inner filter by itself; inner keys are relative to that element.
//!   `has_id` is rejected inside a nested filter (Qdrant does not support it there either).
//! * `geo_bounding_box`, `geo_radius`, `geo_polygon`: see [`GeoBoundingBox`], [`GeoRadius`],
//!   [`GeoPolygon`] (Qdrant's rules: strict insides, haversine meters, closed rings).
//! * A field condition must carry exactly one of `match`, `range`, `values_count`,
//!   `is_empty`, `is_null`, `geo_*` (Qdrant requires at least one and quietly ORs several;
//!   we reject several as ambiguous). `has_vector` conditions are rejected as not supported
//!   yet (they need the point's vectors, which a payload filter does not see).
//!
//! Filters built in code rather than parsed should go through [`Filter::validate`] before
//! use; an invalid condition evaluates to false.

mod datetime;
mod eval;
mod geo;
mod parse;
pub(crate) mod path;

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

pub use datetime::{DateTime, DateTimeParseError};
pub use geo::{GeoBoundingBox, GeoLineString, GeoPoint, GeoPolygon, GeoRadius};

use crate::ids::PointId;
use crate::payload::Payload;

/// A payload filter (Qdrant's `Filter`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Filter {
    /// At least one of these conditions must hold (no constraint when empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub should: Option<Vec<Condition>>,
    /// At least `min_count` of these conditions must hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_should: Option<MinShould>,
    /// All of these conditions must hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub must: Option<Vec<Condition>>,
    /// None of these conditions may hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub must_not: Option<Vec<Condition>>,
}

/// `min_should`: at least `min_count` of `conditions` must hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinShould {
    pub conditions: Vec<Condition>,
    pub min_count: usize,
}

/// One condition of a filter clause.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
// Conditions are built once per request and read many times; boxing the field condition
// would only add an indirection to every evaluation.
#[allow(clippy::large_enum_variant)]
pub enum Condition {
    /// `{"key": ..., "match" | "range" | "values_count" | ...}`
    Field(FieldCondition),
    /// `{"is_empty": {"key": ...}}`
    IsEmpty(IsEmptyCondition),
    /// `{"is_null": {"key": ...}}`
    IsNull(IsNullCondition),
    /// `{"has_id": [ids]}`
    HasId(HasIdCondition),
    /// `{"has_vector": "name"}`: the point has this vector field (`""` the unnamed one).
    HasVector(HasVectorCondition),
    /// `{"nested": {"key": ..., "filter": {...}}}`
    Nested(NestedCondition),
    /// A filter used as a condition: `{"must": [...], ...}`.
    Filter(Filter),
}

/// `{"key": "..."}`, the argument of `is_empty` and `is_null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayloadField {
    pub key: String,
}

/// `{"is_empty": {"key": ...}}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IsEmptyCondition {
    pub is_empty: PayloadField,
}

/// `{"is_null": {"key": ...}}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IsNullCondition {
    pub is_null: PayloadField,
}

/// `{"has_id": [1, "550e8400-e29b-41d4-a716-446655440000", ...]}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HasIdCondition {
    pub has_id: BTreeSet<PointId>,
}

/// `{"has_vector": "text"}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HasVectorCondition {
    pub has_vector: String,
}

/// `{"nested": {"key": "arr", "filter": {...}}}`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NestedCondition {
    pub nested: Nested,
}

/// The body of a nested condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Nested {
    /// Path to an array of objects (`arr` or `arr[]`).
    pub key: String,
    /// Evaluated against each object of the array on its own.
    pub filter: Filter,
}

/// A condition on the values at one payload key.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct FieldCondition {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#match: Option<Match>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeCondition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values_count: Option<ValuesCount>,
    /// `true`: the key is empty (as `is_empty`); `false`: it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_empty: Option<bool>,
    /// `true`: the key is null (as `is_null`); `false`: it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_null: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geo_bounding_box: Option<GeoBoundingBox>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geo_radius: Option<GeoRadius>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geo_polygon: Option<GeoPolygon>,
}

/// The `match` of a field condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Match {
    /// `{"value": "red" | 42 | true}`: equality.
    Value { value: MatchValue },
    /// `{"text": "..."}`: every query word is a word of the value.
    Text { text: String },
    /// `{"text_any": "..."}`: some query word is a word of the value.
    TextAny { text_any: String },
    /// `{"phrase": "..."}`: the query words appear consecutively in the value.
    Phrase { phrase: String },
    /// `{"prefix": "..."}`: the string value starts with this (case-sensitive).
    Prefix { prefix: String },
    /// `{"any": [...]}`: the value is one of these.
    Any { any: MatchList },
    /// `{"except": [...]}`: the value is present and none of these.
    Except { except: MatchList },
}

/// The operand of `match.value` (Qdrant's `ValueVariants`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum MatchValue {
    Keyword(String),
    Integer(i64),
    Bool(bool),
}

/// The operand of `match.any` / `match.except` (Qdrant's `AnyVariants`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum MatchList {
    Keywords(Vec<String>),
    Integers(Vec<i64>),
}

/// Bounds of a range; every bound given must hold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Range<T = f64> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lt: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gt: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gte: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lte: Option<T>,
}

impl<T> Default for Range<T> {
    fn default() -> Self {
        Range { lt: None, gt: None, gte: None, lte: None }
    }
}

impl<T: PartialOrd> Range<T> {
    /// Whether `v` satisfies every bound.
    pub fn contains(&self, v: &T) -> bool {
        self.lt.as_ref().is_none_or(|b| v < b)
            && self.gt.as_ref().is_none_or(|b| v > b)
            && self.lte.as_ref().is_none_or(|b| v <= b)
            && self.gte.as_ref().is_none_or(|b| v >= b)
    }
}

/// A `range` condition: numeric bounds, or datetime bounds when the bounds are strings
/// (Qdrant's `RangeInterface` = `Range` | `DatetimeRange`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RangeCondition {
    Number(Range<f64>),
    DateTime(Range<DateTime>),
}

/// `values_count`: bounds on the number of values at a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ValuesCount {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lt: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gt: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gte: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lte: Option<usize>,
}

impl ValuesCount {
    /// Whether `count` satisfies every bound.
    pub fn contains(&self, count: usize) -> bool {
        self.lt.is_none_or(|b| count < b)
            && self.gt.is_none_or(|b| count > b)
            && self.lte.is_none_or(|b| count <= b)
            && self.gte.is_none_or(|b| count >= b)
    }
}

/// A filter that cannot be used, with a message naming the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A key that is empty or does not follow the path syntax.
    #[error("invalid key `{key}`: {reason}")]
    InvalidKey { key: String, reason: String },
    /// A field condition with only a key.
    #[error(
        "filter condition for key `{key}` has no condition (expected one of: match, range, \
         values_count, is_empty, is_null, geo_bounding_box, geo_radius, geo_polygon)"
    )]
    NoCondition { key: String },
    /// A field condition with several conditions at once.
    #[error(
        "filter condition for key `{key}` has several conditions ({conditions}); give each its \
         own condition object and combine them with must/should"
    )]
    SeveralConditions { key: String, conditions: String },
    /// A geo condition with bad coordinates or an invalid polygon.
    #[error("invalid {kind} for key `{key}`: {reason}")]
    InvalidGeo { key: String, kind: String, reason: String },
    /// `min_should.min_count` of 0.
    #[error("min_should.min_count must be at least 1 (got {0})")]
    InvalidMinCount(usize),
    /// `has_vector` inside a nested filter.
    #[error(
        "has_vector is not supported inside a nested filter (nested key `{key}`); put it in an \
         adjacent must clause"
    )]
    HasVectorInNested { key: String },
    /// `has_id` inside a nested filter.
    #[error(
        "has_id is not supported inside a nested filter (nested key `{key}`); put it in an \
         adjacent must clause"
    )]
    HasIdInNested { key: String },
    /// A JSON shape that is not a filter (wrong type, unknown field, ...).
    #[error("{0}")]
    Malformed(String),
    /// Another error, located inside the filter (`must[0].nested.filter.should[1]`).
    #[error("{path}: {inner}")]
    At { path: String, inner: Box<FilterError> },
}

impl FilterError {
    /// Locates `self` at `path` (no-op for an empty path).
    pub(crate) fn at(self, path: &str) -> FilterError {
        if path.is_empty() {
            self
        } else {
            FilterError::At { path: path.to_string(), inner: Box::new(self) }
        }
    }

    /// The error without its location.
    pub fn innermost(&self) -> &FilterError {
        match self {
            FilterError::At { inner, .. } => inner.innermost(),
            other => other,
        }
    }
}

fn join(path: &str, part: &str) -> String {
    if path.is_empty() {
        part.to_string()
    } else if part.starts_with('[') {
        format!("{path}{part}")
    } else {
        format!("{path}.{part}")
    }
}

impl Filter {
    /// Parses a filter from its JSON form and validates it.
    pub fn from_value(value: Value) -> Result<Filter, FilterError> {
        let filter = parse::filter(value, "")?;
        filter.validate()?;
        Ok(filter)
    }

    /// Parses a filter from JSON text and validates it.
    pub fn from_json(json: &str) -> Result<Filter, FilterError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| FilterError::Malformed(format!("filter is not valid JSON: {e}")))?;
        Filter::from_value(value)
    }

    /// Checks what the JSON shape cannot: key syntax, field conditions with none or several
    /// conditions, unsupported geo conditions, `min_count` ≥ 1, no `has_id` in nested filters.
    /// The error says where (`must[1]: ...`).
    pub fn validate(&self) -> Result<(), FilterError> {
        self.validate_in("", None)
    }

    fn validate_in(&self, path: &str, nested: Option<&str>) -> Result<(), FilterError> {
        for (name, list) in [("should", &self.should), ("must", &self.must), ("must_not", &self.must_not)] {
            for (i, c) in list.iter().flatten().enumerate() {
                c.validate_in(&join(path, &format!("{name}[{i}]")), nested)?;
            }
        }
        if let Some(ms) = &self.min_should {
            let here = join(path, "min_should");
            if ms.min_count == 0 {
                return Err(FilterError::InvalidMinCount(0).at(&here));
            }
            for (i, c) in ms.conditions.iter().enumerate() {
                c.validate_in(&join(&here, &format!("conditions[{i}]")), nested)?;
            }
        }
        Ok(())
    }

    /// Whether the point with this id and payload passes the filter, for points without
    /// vectors (`has_vector` never holds). A point without a payload is treated as having
    /// an empty one.
    pub fn matches(&self, id: &PointId, payload: Option<&Payload>) -> bool {
        self.matches_point(id, payload, &|_| false)
    }

    /// Whether a point passes the filter: its id, its payload, and `has_vector`, which
    /// tells whether it has a vector field.
    pub fn matches_point(&self, id: &PointId, payload: Option<&Payload>, has_vector: &dyn Fn(&str) -> bool) -> bool {
        let empty = Payload::new();
        eval::filter(self, Some(id), payload.unwrap_or(&empty), has_vector)
    }

    /// Whether a payload alone passes the filter (`has_id` and `has_vector` conditions
    /// never hold).
    pub fn matches_payload(&self, payload: &Payload) -> bool {
        eval::filter(self, None, payload, &|_| false)
    }

    /// Every payload key the filter reads, each once, in order of first appearance. Keys
    /// inside a nested filter are given as full paths: `nested_key[].inner_key`; the nested
    /// key itself is listed too.
    pub fn referenced_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_keys("", &mut out);
        out
    }

    fn collect_keys(&self, prefix: &str, out: &mut Vec<String>) {
        let lists = [&self.should, &self.must, &self.must_not];
        let conditions =
            lists.into_iter().flatten().flatten().chain(self.min_should.iter().flat_map(|m| m.conditions.iter()));
        for c in conditions {
            let mut push = |key: &str| {
                let full = format!("{prefix}{key}");
                if !out.contains(&full) {
                    out.push(full);
                }
            };
            match c {
                Condition::Field(f) => push(&f.key),
                Condition::IsEmpty(c) => push(&c.is_empty.key),
                Condition::IsNull(c) => push(&c.is_null.key),
                Condition::HasId(_) | Condition::HasVector(_) => {}
                Condition::Nested(n) => {
                    push(&n.nested.key);
                    let array = n.nested.array_key();
                    n.nested.filter.collect_keys(&format!("{prefix}{array}[]."), out);
                }
                Condition::Filter(f) => f.collect_keys(prefix, out),
            }
        }
    }
}

impl Nested {
    /// The key of the array, without a trailing `[]`.
    pub fn array_key(&self) -> &str {
        match self.key.strip_suffix("[]") {
            Some(k) if !k.is_empty() => k,
            _ => &self.key,
        }
    }
}

impl Condition {
    fn validate_in(&self, path: &str, nested: Option<&str>) -> Result<(), FilterError> {
        let check_key = |key: &str| {
            path::check_key(key).map_err(|reason| FilterError::InvalidKey { key: key.to_string(), reason }.at(path))
        };
        match self {
            Condition::Field(f) => f.validate().map_err(|e| e.at(path)),
            Condition::IsEmpty(c) => check_key(&c.is_empty.key),
            Condition::IsNull(c) => check_key(&c.is_null.key),
            Condition::HasId(_) => match nested {
                Some(key) => Err(FilterError::HasIdInNested { key: key.to_string() }.at(path)),
                None => Ok(()),
            },
            // The objects of a nested array have no vectors.
            Condition::HasVector(_) => match nested {
                Some(key) => Err(FilterError::HasVectorInNested { key: key.to_string() }.at(path)),
                None => Ok(()),
            },
            Condition::Nested(n) => {
                check_key(&n.nested.key)?;
                n.nested.filter.validate_in(&join(path, "nested.filter"), Some(&n.nested.key))
            }
            Condition::Filter(f) => f.validate_in(path, nested),
        }
    }
}

impl FieldCondition {
    /// A condition with only a key; set one of the condition fields.
    pub fn new(key: impl Into<String>) -> FieldCondition {
        FieldCondition { key: key.into(), ..FieldCondition::default() }
    }

    /// Checks the key and that exactly one supported condition is given.
    pub fn validate(&self) -> Result<(), FilterError> {
        path::check_key(&self.key).map_err(|reason| FilterError::InvalidKey { key: self.key.clone(), reason })?;
        let geo = |kind: &str, r: Result<(), String>| {
            r.map_err(|reason| FilterError::InvalidGeo { key: self.key.clone(), kind: kind.to_string(), reason })
        };
        if let Some(g) = &self.geo_bounding_box {
            geo("geo_bounding_box", g.validate())?;
        }
        if let Some(g) = &self.geo_radius {
            geo("geo_radius", g.validate())?;
        }
        if let Some(g) = &self.geo_polygon {
            geo("geo_polygon", g.validate())?;
        }
        let set: Vec<&str> = [
            ("match", self.r#match.is_some()),
            ("range", self.range.is_some()),
            ("values_count", self.values_count.is_some()),
            ("is_empty", self.is_empty.is_some()),
            ("is_null", self.is_null.is_some()),
            ("geo_bounding_box", self.geo_bounding_box.is_some()),
            ("geo_radius", self.geo_radius.is_some()),
            ("geo_polygon", self.geo_polygon.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        match set.len() {
            0 => Err(FilterError::NoCondition { key: self.key.clone() }),
            1 => Ok(()),
            _ => Err(FilterError::SeveralConditions { key: self.key.clone(), conditions: set.join(", ") }),
        }
    }
}

impl From<FieldCondition> for Condition {
    fn from(c: FieldCondition) -> Condition {
        Condition::Field(c)
    }
}

impl From<Filter> for Condition {
    fn from(f: Filter) -> Condition {
        Condition::Filter(f)
    }
}

#[cfg(test)]
mod tests;
