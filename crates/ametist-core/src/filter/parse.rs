//! JSON → filter types, with errors that say where and what.
//!
//! Qdrant declares its conditions as untagged enums, which serde can only reject with
//! "data did not match any variant". Here every object is read as a JSON value first and
//! the variant is chosen from the keys it has, so a mistake gets a message such as
//! `must[0].match: unknown match kind `equals` (expected one of: value, any, ...)`.

use std::collections::BTreeSet;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::{
    join, Condition, DateTime, FieldCondition, Filter, FilterError, HasIdCondition, HasVectorCondition,
    IsEmptyCondition, IsNullCondition, Match, MatchList, MatchValue, MinShould, Nested, NestedCondition, PayloadField,
    Range, RangeCondition, ValuesCount,
};
use crate::ids::PointId;

type Result<T> = std::result::Result<T, FilterError>;

fn malformed(path: &str, msg: impl Into<String>) -> FilterError {
    FilterError::Malformed(msg.into()).at(path)
}

/// A short description of a JSON value's type, for messages.
fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() <= 40 => format!("the string \"{s}\""),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn object(v: Value, path: &str, what: &str) -> Result<Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(malformed(path, format!("expected {what} (a JSON object), got {}", kind(&other)))),
    }
}

/// Rejects keys outside `allowed`.
fn only_fields(m: &Map<String, Value>, allowed: &[&str], path: &str, what: &str) -> Result<()> {
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(malformed(path, format!("unknown field `{k}` in {what} (expected {})", allowed.join(", "))));
    }
    Ok(())
}

/// Takes an optional field; JSON `null` counts as absent (clients send explicit nulls).
fn take(m: &mut Map<String, Value>, key: &str) -> Option<Value> {
    m.remove(key).filter(|v| !v.is_null())
}

fn string(v: Value, path: &str, what: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(malformed(path, format!("{what} must be a string, got {}", kind(&other)))),
    }
}

pub(super) fn filter(v: Value, path: &str) -> Result<Filter> {
    let mut m = object(v, path, "a filter")?;
    only_fields(&m, &["should", "min_should", "must", "must_not"], path, "a filter")?;
    let mut clause = |name: &str| -> Result<Option<Vec<Condition>>> {
        take(&mut m, name).map(|v| conditions(v, &join(path, name))).transpose()
    };
    let should = clause("should")?;
    let must = clause("must")?;
    let must_not = clause("must_not")?;
    let min_should = take(&mut m, "min_should").map(|v| min_should(v, &join(path, "min_should"))).transpose()?;
    Ok(Filter { should, min_should, must, must_not })
}

/// One condition or a list of them.
fn conditions(v: Value, path: &str) -> Result<Vec<Condition>> {
    match v {
        Value::Array(items) => {
            items.into_iter().enumerate().map(|(i, c)| condition(c, &format!("{path}[{i}]"))).collect()
        }
        // A single condition is stored as a one-element list; locate errors the same way.
        Value::Object(_) => Ok(vec![condition(v, &format!("{path}[0]"))?]),
        other => Err(malformed(path, format!("expected a condition or a list of conditions, got {}", kind(&other)))),
    }
}

fn min_should(v: Value, path: &str) -> Result<MinShould> {
    let mut m = object(v, path, "min_should")?;
    only_fields(&m, &["conditions", "min_count"], path, "min_should")?;
    let conds = match take(&mut m, "conditions") {
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, c)| condition(c, &format!("{path}.conditions[{i}]")))
            .collect::<Result<Vec<_>>>()?,
        Some(other) => {
            return Err(malformed(path, format!("min_should.conditions must be a list, got {}", kind(&other))))
        }
        None => return Err(malformed(path, "min_should needs `conditions` (a list) and `min_count`")),
    };
    let min_count = match take(&mut m, "min_count") {
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or(0) as usize,
        Some(other) => {
            return Err(malformed(
                path,
                format!("min_should.min_count must be a non-negative integer, got {}", kind(&other)),
            ))
        }
        None => return Err(malformed(path, "min_should needs `min_count`")),
    };
    Ok(MinShould { conditions: conds, min_count })
}

const FILTER_FIELDS: &[&str] = &["should", "min_should", "must", "must_not"];

pub(super) fn condition(v: Value, path: &str) -> Result<Condition> {
    let mut m = object(v, path, "a condition")?;
    if m.contains_key("key") {
        return field_condition(m, path).map(Condition::Field);
    }
    let single = |m: &Map<String, Value>, name: &str| -> Result<()> {
        if let Some(k) = m.keys().find(|k| k.as_str() != name) {
            return Err(malformed(path, format!("unexpected field `{k}` next to `{name}` in a condition")));
        }
        Ok(())
    };
    let has = |m: &Map<String, Value>, k: &str| m.contains_key(k);
    if has(&m, "is_empty") {
        single(&m, "is_empty")?;
        let key = payload_field(m.remove("is_empty").unwrap_or_default(), &join(path, "is_empty"))?;
        return Ok(Condition::IsEmpty(IsEmptyCondition { is_empty: key }));
    }
    if has(&m, "is_null") {
        single(&m, "is_null")?;
        let key = payload_field(m.remove("is_null").unwrap_or_default(), &join(path, "is_null"))?;
        return Ok(Condition::IsNull(IsNullCondition { is_null: key }));
    }
    if has(&m, "has_id") {
        single(&m, "has_id")?;
        return has_id(m.remove("has_id").unwrap_or_default(), &join(path, "has_id")).map(Condition::HasId);
    }
    if has(&m, "nested") {
        single(&m, "nested")?;
        return nested(m.remove("nested").unwrap_or_default(), &join(path, "nested")).map(Condition::Nested);
    }
    if has(&m, "has_vector") {
        single(&m, "has_vector")?;
        let name = m.remove("has_vector").unwrap_or_default();
        let has_vector = string(name, &join(path, "has_vector"), "has_vector")?;
        return Ok(Condition::HasVector(HasVectorCondition { has_vector }));
    }
    if m.keys().all(|k| FILTER_FIELDS.contains(&k.as_str())) {
        return filter(Value::Object(m), path).map(Condition::Filter);
    }
    let unknown = m.keys().find(|k| !FILTER_FIELDS.contains(&k.as_str())).cloned().unwrap_or_default();
    let hint = if FIELD_FIELDS[1..].contains(&unknown.as_str()) { " (a field condition needs `key`)" } else { "" };
    Err(malformed(
        path,
        format!(
            "unknown condition field `{unknown}`{hint}; a condition is one of: a field condition \
             {{\"key\", \"match\" | \"range\" | \"values_count\" | ...}}, {{\"is_empty\": {{\"key\"}}}}, \
             {{\"is_null\": {{\"key\"}}}}, {{\"has_id\": [...]}}, {{\"has_vector\": \"name\"}}, {{\"nested\": {{\"key\", \"filter\"}}}}, or a \
             filter {{\"must\" | \"should\" | \"must_not\" | \"min_should\"}}"
        ),
    ))
}

fn payload_field(v: Value, path: &str) -> Result<PayloadField> {
    let mut m = object(v, path, "{\"key\": ...}")?;
    only_fields(&m, &["key"], path, "this condition")?;
    let key = take(&mut m, "key").ok_or_else(|| malformed(path, "missing `key`"))?;
    Ok(PayloadField { key: string(key, &join(path, "key"), "key")? })
}

fn has_id(v: Value, path: &str) -> Result<HasIdCondition> {
    let items = match v {
        Value::Array(items) => items,
        other => return Err(malformed(path, format!("has_id must be a list of point ids, got {}", kind(&other)))),
    };
    let mut ids = BTreeSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let id = PointId::deserialize(item).map_err(|e| malformed(&format!("{path}[{i}]"), e.to_string()))?;
        ids.insert(id);
    }
    Ok(HasIdCondition { has_id: ids })
}

fn nested(v: Value, path: &str) -> Result<NestedCondition> {
    let mut m = object(v, path, "nested {\"key\", \"filter\"}")?;
    only_fields(&m, &["key", "filter"], path, "nested")?;
    let key = take(&mut m, "key").ok_or_else(|| malformed(path, "nested needs `key` (the array) and `filter`"))?;
    let key = string(key, &join(path, "key"), "nested.key")?;
    let f = take(&mut m, "filter").ok_or_else(|| malformed(path, "nested needs `filter`"))?;
    let filter = filter(f, &join(path, "filter"))?;
    Ok(NestedCondition { nested: Nested { key, filter } })
}

const FIELD_FIELDS: &[&str] =
    &["key", "match", "range", "values_count", "is_empty", "is_null", "geo_bounding_box", "geo_radius", "geo_polygon"];

fn field_condition(mut m: Map<String, Value>, path: &str) -> Result<FieldCondition> {
    let key = string(m.remove("key").unwrap_or_default(), &join(path, "key"), "key")?;
    if let Some(k) = m.keys().find(|k| !FIELD_FIELDS.contains(&k.as_str())) {
        return Err(malformed(
            path,
            format!(
                "unknown field `{k}` in the condition for key `{key}` (expected match, range, \
                 values_count, is_empty, is_null, geo_bounding_box, geo_radius, geo_polygon)"
            ),
        ));
    }
    let r#match = take(&mut m, "match").map(|v| match_(v, &join(path, "match"))).transpose()?;
    let range = take(&mut m, "range").map(|v| range(v, &join(path, "range"))).transpose()?;
    let values_count =
        take(&mut m, "values_count").map(|v| values_count(v, &join(path, "values_count"))).transpose()?;
    let flag = |v: Option<Value>, name: &str| -> Result<Option<bool>> {
        match v {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => {
                Err(malformed(&join(path, name), format!("{name} must be true or false, got {}", kind(&other))))
            }
        }
    };
    let is_empty = flag(take(&mut m, "is_empty"), "is_empty")?;
    let is_null = flag(take(&mut m, "is_null"), "is_null")?;
    Ok(FieldCondition {
        key,
        r#match,
        range,
        values_count,
        is_empty,
        is_null,
        geo_bounding_box: geo(take(&mut m, "geo_bounding_box"), path, "geo_bounding_box")?,
        geo_radius: geo(take(&mut m, "geo_radius"), path, "geo_radius")?,
        geo_polygon: geo(take(&mut m, "geo_polygon"), path, "geo_polygon")?,
    })
}

/// Geo shapes are plain structs; serde's own messages ("missing field `lat`") read well.
fn geo<T: serde::de::DeserializeOwned>(v: Option<Value>, path: &str, name: &str) -> Result<Option<T>> {
    v.map(|v| T::deserialize(v).map_err(|e| malformed(&join(path, name), format!("invalid {name}: {e}")))).transpose()
}

const MATCH_KINDS: &[&str] = &["value", "any", "except", "text", "text_any", "phrase", "prefix"];

pub(super) fn match_(v: Value, path: &str) -> Result<Match> {
    let mut m = object(v, path, "a match")?;
    let mut present = m.keys().filter(|k| !m[k.as_str()].is_null());
    let Some(which) = present.next().cloned() else {
        return Err(malformed(path, format!("match is empty (expected one of: {})", MATCH_KINDS.join(", "))));
    };
    if !MATCH_KINDS.contains(&which.as_str()) {
        return Err(malformed(
            path,
            format!("unknown match kind `{which}` (expected one of: {})", MATCH_KINDS.join(", ")),
        ));
    }
    if let Some(other) = present.next() {
        return Err(malformed(path, format!("match has both `{which}` and `{other}`; give exactly one")));
    }
    let v = take(&mut m, &which).unwrap_or_default();
    let here = join(path, &which);
    let text = |v: Value| string(v, &here, &format!("match.{which}"));
    Ok(match which.as_str() {
        "value" => Match::Value { value: match_value(v, &here)? },
        "text" => Match::Text { text: text(v)? },
        "text_any" => Match::TextAny { text_any: text(v)? },
        "phrase" => Match::Phrase { phrase: text(v)? },
        "prefix" => Match::Prefix { prefix: text(v)? },
        "any" => Match::Any { any: match_list(v, &here, "any")? },
        _ => Match::Except { except: match_list(v, &here, "except")? },
    })
}

fn match_value(v: Value, path: &str) -> Result<MatchValue> {
    match v {
        Value::String(s) => Ok(MatchValue::Keyword(s)),
        Value::Bool(b) => Ok(MatchValue::Bool(b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(MatchValue::Integer(i)),
            None if n.is_u64() => Err(malformed(path, format!("integer {n} is out of range (the maximum is {})", i64::MAX))),
            None => Err(malformed(
                path,
                format!("match.value must be a string, an integer or a boolean, got the number {n}; use `range` for floating-point values"),
            )),
        },
        other => Err(malformed(
            path,
            format!("match.value must be a string, an integer or a boolean, got {}", kind(&other)),
        )),
    }
}

fn match_list(v: Value, path: &str, name: &str) -> Result<MatchList> {
    let items = match v {
        Value::Array(items) => items,
        other => {
            return Err(malformed(
                path,
                format!("match.{name} must be a list of strings or a list of integers, got {}", kind(&other)),
            ))
        }
    };
    let mixed = |i: usize, v: &Value| {
        malformed(
            path,
            format!(
                "match.{name} must be a list of strings or a list of integers (all of one kind); element {i} is {}",
                kind(v)
            ),
        )
    };
    match items.first() {
        None | Some(Value::String(_)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                other => Err(mixed(i, &other)),
            })
            .collect::<Result<Vec<_>>>()
            .map(MatchList::Keywords),
        Some(_) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.as_i64().ok_or_else(|| mixed(i, &v)))
            .collect::<Result<Vec<_>>>()
            .map(MatchList::Integers),
    }
}

const BOUNDS: &[&str] = &["lt", "gt", "gte", "lte"];

pub(super) fn range(v: Value, path: &str) -> Result<RangeCondition> {
    let mut m = object(v, path, "a range {gt, gte, lt, lte}")?;
    only_fields(&m, BOUNDS, path, "range")?;
    let mut numbers = Range::<f64>::default();
    let mut dates = Range::<DateTime>::default();
    let (mut n_numbers, mut n_dates) = (0, 0);
    for bound in BOUNDS {
        let Some(v) = take(&mut m, bound) else { continue };
        let here = join(path, bound);
        let (num, date) = match v {
            Value::Number(n) => {
                n_numbers += 1;
                (n.as_f64(), None)
            }
            Value::String(s) => {
                n_dates += 1;
                let d = s.parse::<DateTime>().map_err(|e| malformed(&here, e.to_string()))?;
                (None, Some(d))
            }
            other => {
                return Err(malformed(
                    &here,
                    format!("range bounds must be numbers or datetime strings, got {}", kind(&other)),
                ))
            }
        };
        let (ns, ds) = match *bound {
            "lt" => (&mut numbers.lt, &mut dates.lt),
            "gt" => (&mut numbers.gt, &mut dates.gt),
            "gte" => (&mut numbers.gte, &mut dates.gte),
            _ => (&mut numbers.lte, &mut dates.lte),
        };
        *ns = num;
        *ds = date;
    }
    match (n_numbers, n_dates) {
        (_, 0) => Ok(RangeCondition::Number(numbers)),
        (0, _) => Ok(RangeCondition::DateTime(dates)),
        _ => Err(malformed(path, "range mixes numbers and datetime strings; use one kind for all bounds")),
    }
}

fn values_count(v: Value, path: &str) -> Result<ValuesCount> {
    let mut m = object(v, path, "values_count {gt, gte, lt, lte}")?;
    only_fields(&m, BOUNDS, path, "values_count")?;
    let mut out = ValuesCount::default();
    for bound in BOUNDS {
        let Some(v) = take(&mut m, bound) else { continue };
        let n = v.as_u64().ok_or_else(|| {
            malformed(
                &join(path, bound),
                format!("values_count bounds must be non-negative integers, got {}", kind(&v)),
            )
        })? as usize;
        match *bound {
            "lt" => out.lt = Some(n),
            "gt" => out.gt = Some(n),
            "gte" => out.gte = Some(n),
            _ => out.lte = Some(n),
        }
    }
    Ok(out)
}

impl<'de> Deserialize<'de> for Filter {
    /// Parses and validates (see [`Filter::validate`]).
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Filter::from_value(Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Condition {
    /// Parses and validates one condition.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let c = condition(Value::deserialize(d)?, "").map_err(D::Error::custom)?;
        c.validate_in("", None).map_err(D::Error::custom)?;
        Ok(c)
    }
}

impl<'de> Deserialize<'de> for FieldCondition {
    /// Parses and validates one field condition.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let m = object(Value::deserialize(d)?, "", "a field condition").map_err(D::Error::custom)?;
        if !m.contains_key("key") {
            return Err(D::Error::custom("a field condition needs `key`"));
        }
        let c = field_condition(m, "").map_err(D::Error::custom)?;
        c.validate().map_err(D::Error::custom)?;
        Ok(c)
    }
}

impl<'de> Deserialize<'de> for Match {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match_(Value::deserialize(d)?, "").map_err(D::Error::custom)
    }
}

impl<'de> Deserialize<'de> for RangeCondition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        range(Value::deserialize(d)?, "").map_err(D::Error::custom)
    }
}

impl<'de> Deserialize<'de> for ValuesCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        values_count(Value::deserialize(d)?, "").map_err(D::Error::custom)
    }
}
