//! Payload indexes: per-field maps from values to the slots holding them.
//!
//! A partition keeps one [`PayloadIndex`] with a field index for each key a client asked
//! to index (`create_payload_index`: keyword, integer, float, bool, datetime, uuid, geo;
//! the geo grid is in [`geo`]). The query planner
//! uses it two ways: [`PayloadIndex::estimate`] bounds how many points a filter can match
//! (to choose between a graph walk and an exact scan), and
//! [`PayloadIndex::candidates`] lists a superset of the matching slots, so that a
//! selective filter is answered by scoring those slots only, not by scanning every point.
//! Both are conservative: a condition on an unindexed key tells them nothing, and the
//! full filter is always evaluated on every candidate before it is returned.

mod geo;
#[cfg(test)]
mod typed_tests;

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::filter::{
    Condition, DateTime, FieldCondition, Filter, GeoPoint, Match, MatchList, MatchValue, Range, RangeCondition,
};
use crate::payload::Payload;

/// The type of values a field index holds (Qdrant's `PayloadSchemaType` subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Keyword,
    Integer,
    Float,
    Bool,
    /// RFC 3339 strings, kept as instants: `range` with datetime bounds.
    Datetime,
    /// UUID strings, kept as 128-bit numbers: `match` on them.
    Uuid,
    /// `{"lon", "lat"}` objects, kept in a grid: `geo_radius`, `geo_bounding_box`, `geo_polygon`.
    Geo,
}

/// Every field index of one partition.
#[derive(Debug, Default)]
pub struct PayloadIndex {
    fields: BTreeMap<String, FieldIndex>,
}

#[derive(Debug)]
struct FieldIndex {
    kind: FieldType,
    /// Value → sorted slots.
    postings: BTreeMap<Key, Vec<u32>>,
    /// Slot → the values it was indexed under (to remove it again).
    by_slot: HashMap<u32, Vec<Key>>,
    /// Geo indexes only: slot → its points, to check them exactly against a shape (the
    /// postings hold grid cells).
    points: HashMap<u32, Vec<GeoPoint>>,
}

/// An indexed value. Floats are ordered by `f64::total_cmp` through their bits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key {
    Bool(bool),
    Int(i64),
    /// `f64` bits mapped so that integer order equals numeric order.
    Num(u64),
    Str(String),
    Time(DateTime),
    Uuid(u128),
    /// A geo grid cell: (row, column), see [`geo`].
    Cell(i32, i32),
}

impl PayloadIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Indexes `key` as `kind` over the given points (replacing an index of another kind).
    pub fn create_field<'a>(
        &mut self,
        key: &str,
        kind: FieldType,
        points: impl Iterator<Item = (u32, Option<&'a Payload>)>,
    ) {
        let mut field = FieldIndex { kind, postings: BTreeMap::new(), by_slot: HashMap::new(), points: HashMap::new() };
        let mut pairs: Vec<(Key, u32)> = Vec::new();
        for (slot, payload) in points {
            let (keys, geo) = extract(kind, key, payload);
            for k in &keys {
                pairs.push((k.clone(), slot));
            }
            if !keys.is_empty() {
                field.by_slot.insert(slot, keys);
            }
            if !geo.is_empty() {
                field.points.insert(slot, geo);
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        for (k, slot) in pairs {
            field.postings.entry(k).or_default().push(slot);
        }
        self.fields.insert(key.to_string(), field);
    }

    /// Stops indexing `key`. Returns false if it was not indexed.
    pub fn drop_field(&mut self, key: &str) -> bool {
        self.fields.remove(key).is_some()
    }

    /// The indexed keys and their types.
    pub fn fields(&self) -> Vec<(String, FieldType)> {
        self.fields.iter().map(|(k, f)| (k.clone(), f.kind)).collect()
    }

    /// Number of points that have a value at `key` (`None` if `key` is not indexed).
    pub fn points_with(&self, key: &str) -> Option<usize> {
        self.fields.get(key).map(|f| f.by_slot.len())
    }

    /// Indexes a point's payload under every indexed key. Call [`PayloadIndex::remove`]
    /// first when the slot was indexed before.
    pub fn insert(&mut self, slot: u32, payload: Option<&Payload>) {
        for (key, field) in &mut self.fields {
            let (keys, geo) = extract(field.kind, key, payload);
            for k in &keys {
                let list = field.postings.entry(k.clone()).or_default();
                if let Err(i) = list.binary_search(&slot) {
                    list.insert(i, slot);
                }
            }
            if !keys.is_empty() {
                field.by_slot.insert(slot, keys);
            }
            if !geo.is_empty() {
                field.points.insert(slot, geo);
            }
        }
    }

    /// Removes a slot from every field index.
    pub fn remove(&mut self, slot: u32) {
        for field in self.fields.values_mut() {
            field.points.remove(&slot);
            let Some(keys) = field.by_slot.remove(&slot) else { continue };
            for k in keys {
                if let Some(list) = field.postings.get_mut(&k) {
                    if let Ok(i) = list.binary_search(&slot) {
                        list.remove(i);
                    }
                    if list.is_empty() {
                        field.postings.remove(&k);
                    }
                }
            }
        }
    }

    /// An upper bound on the number of points `filter` matches, or `None` when the
    /// indexes cannot bound it (only conditions on indexed keys count). Cheap: it adds up
    /// posting list lengths and materialises nothing, so the planner can call it on every
    /// query.
    pub fn estimate(&self, filter: &Filter) -> Option<usize> {
        let mut best: Option<usize> = None;
        for c in filter.must.iter().flatten() {
            if let Some(n) = self.condition_size(c) {
                best = Some(best.map_or(n, |b| b.min(n)));
            }
        }
        if let Some(should) = filter.should.as_ref().filter(|s| !s.is_empty()) {
            let sizes: Option<Vec<usize>> = should.iter().map(|c| self.condition_size(c)).collect();
            if let Some(sizes) = sizes {
                let n = sizes.iter().sum();
                best = Some(best.map_or(n, |b| b.min(n)));
            }
        }
        best
    }

    /// Whether the point at `slot` matches `filter`, answered from the index alone. Only
    /// meaningful when [`PayloadIndex::covers`] holds for `filter`; a graph walk uses it to
    /// check the nodes it visits without reading their payloads or listing every match.
    pub fn covered_match(&self, filter: &Filter, slot: u32) -> bool {
        filter.must.iter().flatten().all(|c| match c {
            Condition::Field(f) => self.field_matches(f, slot),
            Condition::Filter(inner) => self.covered_match(inner, slot),
            _ => false,
        })
    }

    /// A sorted superset of the slots `filter` matches, or `None` when the indexes cannot
    /// narrow it down. Uses the `must` conditions on indexed keys (intersected) and a
    /// `should` whose every condition is on an indexed key (united).
    pub fn candidates(&self, filter: &Filter) -> Option<Vec<u32>> {
        let mut best: Option<Vec<u32>> = None;
        let mut narrow = |set: Vec<u32>| {
            best = Some(match best.take() {
                None => set,
                Some(prev) => intersect(&prev, &set),
            });
        };
        for c in filter.must.iter().flatten() {
            if let Some(set) = self.condition(c) {
                narrow(set);
            }
        }
        if let Some(should) = filter.should.as_ref().filter(|s| !s.is_empty()) {
            let sets: Option<Vec<Vec<u32>>> = should.iter().map(|c| self.condition(c)).collect();
            if let Some(sets) = sets {
                narrow(union(sets.iter().map(Vec::as_slice)));
            }
        }
        best
    }

    /// True when [`PayloadIndex::candidates`] is exact for `filter`: every condition is a
    /// `must` on an indexed key that the index answers exactly (equality or `any` on a
    /// field of that type, or a numeric range), so a candidate needs no further check.
    pub fn covers(&self, filter: &Filter) -> bool {
        let empty = |c: &Option<Vec<Condition>>| c.as_ref().is_none_or(|v| v.is_empty());
        if !empty(&filter.should) || !empty(&filter.must_not) || filter.min_should.is_some() {
            return false;
        }
        filter.must.as_ref().is_some_and(|m| !m.is_empty())
            && filter.must.iter().flatten().all(|c| match c {
                Condition::Field(f) => self.covers_field(f),
                Condition::Filter(inner) => self.covers(inner),
                _ => false,
            })
    }

    fn covers_field(&self, c: &FieldCondition) -> bool {
        let Some(field) = self.fields.get(&c.key) else { return false };
        if c.values_count.is_some() || c.is_empty.is_some() || c.is_null.is_some() {
            return false;
        }
        // A geo index checks every listed point against the shape itself.
        if geo::Shape::of(c).is_some() {
            return field.kind == FieldType::Geo;
        }
        match (&c.r#match, &c.range) {
            (Some(m), None) => matches!(
                (m, field.kind),
                (Match::Value { value: MatchValue::Keyword(_) }, FieldType::Keyword)
                    | (Match::Value { value: MatchValue::Integer(_) }, FieldType::Integer)
                    | (Match::Value { value: MatchValue::Bool(_) }, FieldType::Bool)
                    | (Match::Any { any: MatchList::Keywords(_) }, FieldType::Keyword)
                    | (Match::Any { any: MatchList::Integers(_) }, FieldType::Integer)
            ),
            // Integer and float indexes hold every number at the key.
            (None, Some(RangeCondition::Number(_))) => matches!(field.kind, FieldType::Float | FieldType::Integer),
            // A datetime index parses payload strings as the filter does.
            (None, Some(RangeCondition::DateTime(_))) => field.kind == FieldType::Datetime,
            // Not `match` on a uuid index: it compares parsed UUIDs (any spelling of one),
            // the filter compares strings, so its candidates are checked.
            _ => false,
        }
    }

    /// An upper bound on the points one condition matches, without listing them.
    fn condition_size(&self, c: &Condition) -> Option<usize> {
        match c {
            Condition::Field(f) => {
                let field = self.fields.get(&f.key)?;
                let keys = field_keys(f, field)?;
                Some(match keys {
                    Keys::Exact(keys) => keys.iter().filter_map(|k| field.postings.get(k)).map(Vec::len).sum(),
                    Keys::Range(r) => {
                        field.postings.iter().filter(|(k, _)| key_in_range(k, r)).map(|(_, v)| v.len()).sum()
                    }
                    Keys::Time(r) => time_postings(field, r).map(|(_, v)| v.len()).sum(),
                    // Every point in the cells the shape touches: an upper bound.
                    Keys::Geo(shape) => cell_postings(field, &shape).map(|(_, v)| v.len()).sum(),
                })
            }
            Condition::Filter(inner) => self.estimate(inner),
            _ => None,
        }
    }

    fn field_matches(&self, c: &FieldCondition, slot: u32) -> bool {
        let Some(field) = self.fields.get(&c.key) else { return false };
        let Some(held) = field.by_slot.get(&slot) else { return false };
        match field_keys(c, field) {
            Some(Keys::Exact(keys)) => keys.iter().any(|k| held.binary_search(k).is_ok()),
            Some(Keys::Range(r)) => held.iter().any(|k| key_in_range(k, r)),
            Some(Keys::Time(r)) => held.iter().any(|k| matches!(k, Key::Time(t) if r.contains(t))),
            Some(Keys::Geo(shape)) => field.points.get(&slot).is_some_and(|ps| ps.iter().any(|p| shape.contains(p))),
            None => false,
        }
    }

    fn condition(&self, c: &Condition) -> Option<Vec<u32>> {
        match c {
            Condition::Field(f) => self.field_condition(f),
            Condition::Filter(inner) => self.candidates(inner),
            _ => None,
        }
    }

    fn field_condition(&self, c: &FieldCondition) -> Option<Vec<u32>> {
        let field = self.fields.get(&c.key)?;
        Some(match field_keys(c, field)? {
            Keys::Exact(keys) => union(keys.iter().filter_map(|k| field.postings.get(k).map(Vec::as_slice))),
            Keys::Range(r) => {
                union(field.postings.iter().filter(|(k, _)| key_in_range(k, r)).map(|(_, v)| v.as_slice()))
            }
            // Cells hold whole keys: a key in the range holds only matching slots.
            Keys::Time(r) => union(
                time_postings(field, r)
                    .filter(|(k, _)| matches!(k, Key::Time(t) if r.contains(t)))
                    .map(|(_, v)| v.as_slice()),
            ),
            // The cells' points, each checked against the shape: exact.
            Keys::Geo(shape) => {
                let near = union(cell_postings(field, &shape).map(|(_, v)| v.as_slice()));
                near.into_iter()
                    .filter(|s| field.points.get(s).is_some_and(|ps| ps.iter().any(|p| shape.contains(p))))
                    .collect()
            }
        })
    }
}

/// The postings of a datetime index whose keys lie between the range's outer bounds
/// (a strict bound still lists its key; callers check `contains`).
fn time_postings<'f>(field: &'f FieldIndex, r: &Range<DateTime>) -> impl Iterator<Item = (&'f Key, &'f Vec<u32>)> {
    let lo = r.gt.into_iter().chain(r.gte).max().map_or(Bound::Unbounded, |t| Bound::Included(Key::Time(t)));
    let hi = r.lt.into_iter().chain(r.lte).min().map_or(Bound::Unbounded, |t| Bound::Included(Key::Time(t)));
    // An empty interval: `BTreeMap::range` panics when the start exceeds the end.
    let empty = matches!((&lo, &hi), (Bound::Included(a), Bound::Included(b)) if a > b);
    let range = if empty { None } else { Some(field.postings.range((lo, hi))) };
    range.into_iter().flatten()
}

/// The postings of a geo index's cells that a shape can reach.
fn cell_postings<'f>(field: &'f FieldIndex, shape: &geo::Shape<'_>) -> impl Iterator<Item = (&'f Key, &'f Vec<u32>)> {
    shape
        .spans()
        .into_iter()
        .flat_map(move |s| field.postings.range(Key::Cell(s.row, s.col_lo)..=Key::Cell(s.row, s.col_hi)))
}

/// What a condition asks of an index: some exact keys, the keys in a numeric or a
/// datetime range, or the points inside a geo shape.
enum Keys<'a> {
    Exact(Vec<Key>),
    Range(&'a Range<f64>),
    Time(&'a Range<DateTime>),
    Geo(geo::Shape<'a>),
}

/// The keys of `field` a condition matches, or `None` when the index cannot answer it.
fn field_keys<'a>(c: &'a FieldCondition, field: &FieldIndex) -> Option<Keys<'a>> {
    if let Some(shape) = geo::Shape::of(c) {
        return (field.kind == FieldType::Geo).then_some(Keys::Geo(shape));
    }
    if let Some(m) = &c.r#match {
        if field.kind == FieldType::Uuid {
            return uuid_keys(m).map(Keys::Exact);
        }
        // A datetime or geo index holds no value a `match` compares with.
        if matches!(field.kind, FieldType::Datetime | FieldType::Geo) {
            return None;
        }
        return Some(Keys::Exact(match (m, field.kind) {
            (Match::Value { value: MatchValue::Keyword(s) }, FieldType::Keyword) => vec![Key::Str(s.clone())],
            (Match::Value { value: MatchValue::Integer(i) }, FieldType::Integer) => vec![Key::Int(*i)],
            (Match::Value { value: MatchValue::Bool(b) }, FieldType::Bool) => vec![Key::Bool(*b)],
            (Match::Any { any: MatchList::Keywords(v) }, FieldType::Keyword) => {
                v.iter().map(|s| Key::Str(s.clone())).collect()
            }
            (Match::Any { any: MatchList::Integers(v) }, FieldType::Integer) => {
                v.iter().map(|i| Key::Int(*i)).collect()
            }
            // A value of another type than the index: the index holds only values of its
            // own type, but a payload may hold another type at the same key (`"n": "x"`
            // where `n` has an integer index), and the condition may match that one. The
            // index cannot answer; the filter is checked on the payloads.
            _ => return None,
        }));
    }
    match (&c.range, field.kind) {
        (Some(RangeCondition::Number(r)), FieldType::Float | FieldType::Integer) => Some(Keys::Range(r)),
        (Some(RangeCondition::DateTime(r)), FieldType::Datetime) => Some(Keys::Time(r)),
        _ => None,
    }
}

/// The keys of a uuid index a `match` reaches: every string it compares with must be a
/// UUID (a string equal to a payload UUID string is one, and parses to its key); another
/// string or type could equal a payload value the index does not hold, so the index
/// cannot answer.
fn uuid_keys(m: &Match) -> Option<Vec<Key>> {
    let one = |s: &str| uuid::Uuid::try_parse(s).ok().map(|u| Key::Uuid(u.as_u128()));
    match m {
        Match::Value { value: MatchValue::Keyword(s) } => Some(vec![one(s)?]),
        Match::Any { any: MatchList::Keywords(v) } => v.iter().map(|s| one(s)).collect(),
        _ => None,
    }
}

/// Whether a numeric key lies in the range (integer indexes keep non-integral numbers as
/// floats, so both kinds of key are checked).
fn key_in_range(k: &Key, r: &crate::filter::Range<f64>) -> bool {
    match k {
        Key::Num(bits) => r.contains(&from_ordered(*bits)),
        Key::Int(i) => r.contains(&(*i as f64)),
        _ => false,
    }
}

/// Every value `key` (a dot path, as in filters) reaches in `payload`; arrays reached at
/// the end of the path are flattened one level.
pub fn values_at<'a>(payload: &'a Payload, key: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    crate::filter::path::visit(payload, key, &mut |v| match v {
        Value::Array(items) => out.extend(items.iter()),
        other => out.push(other),
    });
    out
}

/// The keys a payload has at `key` for an index of type `kind` (arrays: each element),
/// and for a geo index the points themselves.
fn extract(kind: FieldType, key: &str, payload: Option<&Payload>) -> (Vec<Key>, Vec<GeoPoint>) {
    let Some(payload) = payload else { return (Vec::new(), Vec::new()) };
    let mut out = Vec::new();
    let mut points = Vec::new();
    let mut take = |v: &Value| {
        if kind == FieldType::Geo {
            if let Some(p) = GeoPoint::from_payload(v) {
                let (row, col) = geo::cell(&p);
                out.push(Key::Cell(row, col));
                points.push(p);
            }
            return;
        }
        let k = match (kind, v) {
            (FieldType::Keyword, Value::String(s)) => Some(Key::Str(s.clone())),
            // Non-integral numbers are kept too (as floats), so that a range over an
            // integer index finds every number in it; equality only looks at integers.
            (FieldType::Integer, Value::Number(n)) => {
                n.as_i64().map(Key::Int).or_else(|| n.as_f64().map(|f| Key::Num(to_ordered(f))))
            }
            (FieldType::Float, Value::Number(n)) => n.as_f64().map(|f| Key::Num(to_ordered(f))),
            (FieldType::Bool, Value::Bool(b)) => Some(Key::Bool(*b)),
            // The filter's parser, so that the index and the filter agree on every string.
            (FieldType::Datetime, Value::String(s)) => DateTime::parse(s).map(Key::Time),
            (FieldType::Uuid, Value::String(s)) => uuid::Uuid::try_parse(s).ok().map(|u| Key::Uuid(u.as_u128())),
            _ => None,
        };
        out.extend(k);
    };
    crate::filter::path::visit(payload, key, &mut |v| match v {
        Value::Array(items) => items.iter().for_each(&mut take),
        other => take(other),
    });
    out.sort_unstable();
    out.dedup();
    (out, points)
}

fn to_ordered(f: f64) -> u64 {
    let bits = f.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn from_ordered(u: u64) -> f64 {
    if u >> 63 == 1 {
        f64::from_bits(u & !(1 << 63))
    } else {
        f64::from_bits(!u)
    }
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The sorted union of sorted lists. Lists that cover a good share of the slots they reach
/// (a range over many keys) are merged in a bitmap: linear in their total length plus one
/// bit per slot, where sorting the concatenation costs `n log n` (a 10% range over 390k
/// points: 39k slots, a millisecond of sorting per query). A few short lists over a large
/// partition are sorted instead, so the bitmap never outweighs the lists.
fn union<'a>(lists: impl Iterator<Item = &'a [u32]>) -> Vec<u32> {
    let lists: Vec<&[u32]> = lists.filter(|l| !l.is_empty()).collect();
    let total: usize = lists.iter().map(|l| l.len()).sum();
    let max = lists.iter().filter_map(|l| l.last()).max().map_or(0, |&m| m as usize);
    match lists.as_slice() {
        [] => Vec::new(),
        [one] => one.to_vec(),
        // Sparse: fewer than one listed slot per 64 (one bitmap word).
        _ if total * 64 < max => {
            let mut all: Vec<u32> = lists.concat();
            all.sort_unstable();
            all.dedup();
            all
        }
        _ => {
            let mut bits = vec![0u64; max / 64 + 1];
            for l in &lists {
                for &s in *l {
                    bits[s as usize / 64] |= 1 << (s % 64);
                }
            }
            let mut out = Vec::with_capacity(total);
            for (w, &word) in bits.iter().enumerate() {
                let mut word = word;
                while word != 0 {
                    out.push((w * 64) as u32 + word.trailing_zeros());
                    word &= word - 1;
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PointId;
    use serde_json::json;

    fn payloads() -> Vec<Payload> {
        (0..100)
            .map(|i| {
                let color = ["red", "green", "blue"][i % 3];
                json!({
                    "color": color,
                    "n": i,
                    "price": i as f64 / 10.0,
                    "flag": i % 2 == 0,
                    "tags": [format!("t{}", i % 5), "all"],
                    "nested": {"k": format!("v{}", i % 4)},
                })
                .as_object()
                .cloned()
                .unwrap()
            })
            .collect()
    }

    fn index(p: &[Payload]) -> PayloadIndex {
        let mut idx = PayloadIndex::new();
        let all = || p.iter().enumerate().map(|(i, p)| (i as u32, Some(p)));
        idx.create_field("color", FieldType::Keyword, all());
        idx.create_field("n", FieldType::Integer, all());
        idx.create_field("price", FieldType::Float, all());
        idx.create_field("flag", FieldType::Bool, all());
        idx.create_field("tags", FieldType::Keyword, all());
        idx.create_field("nested.k", FieldType::Keyword, all());
        idx
    }

    /// Candidates are always a superset of the true matches, and exact for simple
    /// conditions on indexed keys.
    #[test]
    fn candidates_cover_every_match() {
        let p = payloads();
        let idx = index(&p);
        let filters = [
            json!({"must": [{"key": "color", "match": {"value": "red"}}]}),
            json!({"must": [{"key": "color", "match": {"any": ["red", "blue"]}}, {"key": "flag", "match": {"value": true}}]}),
            json!({"must": [{"key": "n", "range": {"gte": 10, "lt": 20}}]}),
            json!({"must": [{"key": "price", "range": {"gt": 2.5, "lte": 3.5}}]}),
            json!({"must": [{"key": "tags", "match": {"value": "t3"}}]}),
            json!({"must": [{"key": "nested.k", "match": {"value": "v1"}}]}),
            json!({"should": [{"key": "n", "match": {"value": 5}}, {"key": "n", "match": {"value": 7}}]}),
            json!({"must": [{"key": "color", "match": {"value": "red"}}, {"key": "unindexed", "match": {"value": 1}}]}),
        ];
        for f in filters {
            let filter = Filter::from_value(f.clone()).unwrap();
            let truth: Vec<u32> = (0..p.len() as u32)
                .filter(|&i| filter.matches(&PointId::Num(i as u64), Some(&p[i as usize])))
                .collect();
            let cand = idx.candidates(&filter).unwrap_or_else(|| panic!("{f} should be narrowed"));
            assert!(truth.iter().all(|t| cand.binary_search(t).is_ok()), "{f}: {truth:?} not in {cand:?}");
            if !f.to_string().contains("unindexed") {
                assert_eq!(cand, truth, "{f}");
            }
        }
        let none = Filter::from_value(json!({"must": [{"key": "other", "match": {"value": 1}}]})).unwrap();
        assert_eq!(idx.candidates(&none), None);
        let mistyped = Filter::from_value(json!({"must": [{"key": "n", "match": {"value": "not-an-int"}}]})).unwrap();
        assert_eq!(idx.candidates(&mistyped), None, "an integer index does not answer a keyword match");
        let not = Filter::from_value(json!({"must_not": [{"key": "color", "match": {"value": "red"}}]})).unwrap();
        assert_eq!(idx.candidates(&not), None);
    }

    /// A key indexed as one type may hold another type in some payloads: a condition on
    /// that other type must still find them (the index steps aside).
    #[test]
    fn a_value_of_another_type_than_the_index_is_still_found() {
        let p: Vec<Payload> = [json!({"n": 5}), json!({"n": "five"}), json!({"n": true}), json!({"n": [5, "x"]})]
            .into_iter()
            .map(|v| v.as_object().cloned().expect("an object"))
            .collect();
        let mut idx = PayloadIndex::new();
        idx.create_field("n", FieldType::Integer, p.iter().enumerate().map(|(i, p)| (i as u32, Some(p))));
        for f in [
            json!({"must": [{"key": "n", "match": {"value": "five"}}]}),
            json!({"must": [{"key": "n", "match": {"any": ["x", "y"]}}]}),
            json!({"must": [{"key": "n", "match": {"value": true}}]}),
            json!({"must": [{"key": "n", "match": {"value": 5}}]}),
        ] {
            let filter = Filter::from_value(f.clone()).expect("a valid filter");
            let truth: Vec<u32> = (0..p.len() as u32)
                .filter(|&i| filter.matches(&PointId::Num(i as u64), Some(&p[i as usize])))
                .collect();
            assert!(!truth.is_empty(), "{f}");
            if let Some(cand) = idx.candidates(&filter) {
                assert!(truth.iter().all(|t| cand.binary_search(t).is_ok()), "{f}: {truth:?} not in {cand:?}");
            }
        }
    }

    #[test]
    fn covers_only_what_the_index_answers_exactly() {
        let idx = index(&payloads());
        let f = |v: serde_json::Value| Filter::from_value(v).unwrap();
        assert!(idx.covers(&f(json!({"must": [{"key": "color", "match": {"value": "red"}}]}))));
        assert!(idx.covers(&f(
            json!({"must": [{"key": "price", "range": {"lt": 3.0}}, {"key": "flag", "match": {"value": true}}]})
        )));
        assert!(idx.covers(&f(json!({"must": [{"key": "n", "range": {"lt": 3}}]}))), "integer index, range");
        assert!(!idx.covers(&f(json!({"must": [{"key": "other", "match": {"value": 1}}]}))));
        assert!(!idx.covers(&f(json!({"must_not": [{"key": "color", "match": {"value": "red"}}]}))));
        assert!(!idx.covers(&f(json!({"must": [{"key": "color", "match": {"except": ["red"]}}]}))));
    }

    #[test]
    fn insert_and_remove_keep_postings_exact() {
        let p = payloads();
        let mut idx = index(&p);
        let red = Filter::from_value(json!({"must": [{"key": "color", "match": {"value": "red"}}]})).unwrap();
        assert_eq!(idx.estimate(&red), Some(34));
        idx.remove(0);
        idx.remove(3);
        assert_eq!(idx.estimate(&red), Some(32));
        let blue = json!({"color": "red", "n": 1000}).as_object().cloned().unwrap();
        idx.insert(3, Some(&blue));
        assert_eq!(idx.estimate(&red), Some(33));
        assert_eq!(idx.points_with("n"), Some(99));
        assert!(idx.drop_field("color"));
        assert_eq!(idx.candidates(&red), None);
    }

    #[test]
    fn integer_index_ranges_find_non_integral_numbers() {
        let p: Vec<Payload> = [json!({"n": 1}), json!({"n": 2.5}), json!({"n": 7})]
            .iter()
            .map(|v| v.as_object().cloned().unwrap())
            .collect();
        let mut idx = PayloadIndex::new();
        idx.create_field("n", FieldType::Integer, p.iter().enumerate().map(|(i, p)| (i as u32, Some(p))));
        let range = Filter::from_value(json!({"must": [{"key": "n", "range": {"gt": 2}}]})).unwrap();
        assert_eq!(idx.candidates(&range), Some(vec![1, 2]));
        let eq = Filter::from_value(json!({"must": [{"key": "n", "match": {"value": 2}}]})).unwrap();
        assert_eq!(idx.candidates(&eq), Some(vec![]));
    }

    #[test]
    fn float_order_is_numeric() {
        let mut v = vec![-3.5, -0.0, 0.0, 1e-9, 2.0, -1e9, 7.25];
        let mut o: Vec<u64> = v.iter().map(|f| to_ordered(*f)).collect();
        o.sort();
        v.sort_by(f64::total_cmp);
        assert_eq!(o.iter().map(|u| from_ordered(*u)).collect::<Vec<_>>(), v);
    }

    proptest::proptest! {
        /// The union of sorted lists is the sorted set of everything in them, whichever way
        /// it is computed (no list, one list, sorting a few sparse lists, or the bitmap).
        #[test]
        fn union_is_the_sorted_set_of_all_slots(
            lists in proptest::collection::vec(proptest::collection::vec(0u32..5000, 0..200), 0..12),
            spread in proptest::sample::select(vec![1u32, 1000]),
        ) {
            // Spread 1000 puts the slots up to 5 million apart: the sparse (sorting) case.
            let lists: Vec<Vec<u32>> = lists.into_iter().map(|l| l.into_iter().map(|s| s * spread).collect()).collect();
            let lists: Vec<Vec<u32>> = lists
                .into_iter()
                .map(|mut l| {
                    l.sort_unstable();
                    l.dedup();
                    l
                })
                .collect();
            let expected: Vec<u32> =
                lists.iter().flatten().copied().collect::<std::collections::BTreeSet<u32>>().into_iter().collect();
            proptest::prop_assert_eq!(union(lists.iter().map(Vec::as_slice)), expected);
        }
    }
}
