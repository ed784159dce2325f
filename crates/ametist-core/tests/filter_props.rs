//! Property tests of the filter algebra on random payloads: `must_not` negates, `should`
//! is OR, `must` is AND, `min_should` counts, a filter used as a condition is the filter
//! itself, serialization round-trips, and `match` agrees with a naive model on plain keys.
//! proptest prints the failing case and persists its seed on failure.

use ametist_core::filter::Filter;
use ametist_core::{Payload, PointId};
use proptest::prelude::*;
use serde_json::{json, Value};

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (-1i64..3).prop_map(|i| json!(i)),
        1 => prop_oneof![Just(1.5f64), Just(-0.5), Just(2.0)].prop_map(|f| json!(f)),
        3 => prop_oneof![Just("x"), Just("y"), Just("x y"), Just("")].prop_map(|s| json!(s)),
        1 => any::<bool>().prop_map(|b| json!(b)),
        1 => Just(Value::Null),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => scalar(),
        1 => prop::collection::vec(scalar(), 0..4).prop_map(Value::Array),
    ]
}

fn object(keys: &'static [&'static str], value: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    prop::collection::vec(prop::option::weighted(0.8, value), keys.len()).prop_map(move |vals| {
        let mut m = serde_json::Map::new();
        for (k, v) in keys.iter().zip(vals) {
            if let Some(v) = v {
                m.insert((*k).to_string(), v);
            }
        }
        Value::Object(m)
    })
}

fn payload() -> impl Strategy<Value = Payload> {
    let inner = object(&["a", "b"], leaf().boxed()).boxed();
    let arr = prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array).boxed();
    let geo = (-2i32..3, -2i32..3).prop_map(|(lon, lat)| json!({"lon": lon, "lat": lat}));
    let top = prop_oneof![3 => leaf(), 1 => inner, 1 => arr, 1 => geo].boxed();
    object(&["a", "b", "o", "arr"], top).prop_map(|v| v.as_object().unwrap().clone())
}

const KEYS: &[&str] = &["a", "b", "o.a", "o.b", "arr[].a", "arr.b", "arr"];

fn key() -> impl Strategy<Value = &'static str> {
    prop_oneof![2 => prop::sample::select(&KEYS[..2]), 1 => prop::sample::select(KEYS)]
}

fn keywords() -> impl Strategy<Value = Value> {
    prop::collection::vec(prop::sample::select(&["x", "y", "z", ""][..]), 0..3).prop_map(|v| json!(v))
}

fn integers() -> impl Strategy<Value = Value> {
    prop::collection::vec(-1i64..3, 0..3).prop_map(|v| json!(v))
}

fn bound() -> impl Strategy<Value = Value> {
    prop::collection::vec(prop::option::weighted(0.3, -1i64..3), 4).prop_map(|b| {
        let mut m = serde_json::Map::new();
        for (name, v) in ["lt", "gt", "gte", "lte"].iter().zip(b) {
            if let Some(v) = v {
                m.insert((*name).to_string(), json!(v));
            }
        }
        Value::Object(m)
    })
}

/// A leaf condition, as JSON.
fn leaf_condition() -> impl Strategy<Value = Value> {
    let with_key =
        |s: BoxedStrategy<Value>, name: &'static str| (key(), s).prop_map(move |(k, v)| json!({"key": k, name: v}));
    prop_oneof![
        with_key(scalar().prop_filter("match.value operands", |v| !v.is_null() && !v.is_f64()).prop_map(|v| json!({"value": v})).boxed(), "match"),
        with_key(prop_oneof![keywords(), integers()].prop_map(|l| json!({"any": l})).boxed(), "match"),
        with_key(prop_oneof![keywords(), integers()].prop_map(|l| json!({"except": l})).boxed(), "match"),
        with_key(prop::sample::select(&["x", "y", "x y", ""][..]).prop_map(|t| json!({"text": t})).boxed(), "match"),
        with_key(bound().boxed(), "range"),
        with_key(bound().prop_map(|b| { let mut b = b; for v in b.as_object_mut().unwrap().values_mut() { *v = json!(v.as_i64().unwrap().unsigned_abs()); } b }).boxed(), "values_count"),
        with_key(any::<bool>().prop_map(|b| json!(b)).boxed(), "is_empty"),
        (key(), -2i32..3, -2i32..3, 0u32..400_000).prop_map(|(k, lon, lat, r)| {
            json!({"key": k, "geo_radius": {"center": {"lon": lon, "lat": lat}, "radius": r}})
        }),
        (key(), -2i32..3, -2i32..3).prop_map(|(k, lon, lat)| json!({"key": k, "geo_bounding_box": {
            "top_left": {"lon": lon - 1, "lat": lat + 1}, "bottom_right": {"lon": lon + 1, "lat": lat - 1}}})),
        key().prop_map(|k| json!({"is_empty": {"key": k}})),
        key().prop_map(|k| json!({"is_null": {"key": k}})),
        prop::collection::vec(0u64..4, 0..3).prop_map(|ids| json!({"has_id": ids})),
        (prop::sample::select(&["arr", "arr[]"][..]), key(), scalar().prop_filter("operand", |v| !v.is_null() && !v.is_f64()))
            .prop_map(|(n, k, v)| json!({"nested": {"key": n, "filter": {"must": {"key": k.trim_start_matches("arr[].").trim_start_matches("arr."), "match": {"value": v}}}}})),
    ]
}

/// A condition: a leaf, or a small filter of leaves.
fn condition() -> impl Strategy<Value = Value> {
    leaf_condition().prop_recursive(2, 8, 3, |inner| {
        (prop::sample::select(&["must", "should", "must_not"][..]), prop::collection::vec(inner, 1..3))
            .prop_map(|(clause, cs)| json!({ clause: cs }))
    })
}

fn eval(f: Value, id: &PointId, p: &Payload) -> bool {
    Filter::from_value(f.clone()).unwrap_or_else(|e| panic!("{f} should parse: {e}")).matches(id, Some(p))
}

fn holds(c: &Value, id: &PointId, p: &Payload) -> bool {
    eval(json!({"must": [c]}), id, p)
}

fn point_id() -> impl Strategy<Value = PointId> {
    (0u64..4).prop_map(PointId::Num)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn must_not_is_negation(c in condition(), p in payload(), id in point_id()) {
        prop_assert_eq!(eval(json!({"must_not": [c.clone()]}), &id, &p), !holds(&c, &id, &p));
    }

    #[test]
    fn should_is_or_and_must_is_and(a in condition(), b in condition(), p in payload(), id in point_id()) {
        let (ha, hb) = (holds(&a, &id, &p), holds(&b, &id, &p));
        prop_assert_eq!(eval(json!({"should": [a.clone(), b.clone()]}), &id, &p), ha || hb);
        prop_assert_eq!(eval(json!({"must": [a.clone(), b.clone()]}), &id, &p), ha && hb);
        prop_assert_eq!(eval(json!({"must_not": [a.clone(), b.clone()]}), &id, &p), !ha && !hb);
        // Clauses of one filter are ANDed; a filter used as a condition is itself.
        prop_assert_eq!(eval(json!({"must": a.clone(), "must_not": b.clone()}), &id, &p), ha && !hb);
        prop_assert_eq!(eval(json!({"must": [{"should": [a.clone(), b.clone()]}]}), &id, &p), ha || hb);
        prop_assert_eq!(eval(json!({"must_not": {"must_not": a}}), &id, &p), ha);
    }

    #[test]
    fn min_should_counts(cs in prop::collection::vec(condition(), 0..4), k in 1usize..5, p in payload(), id in point_id()) {
        let n = cs.iter().filter(|c| holds(c, &id, &p)).count();
        prop_assert_eq!(eval(json!({"min_should": {"conditions": cs, "min_count": k}}), &id, &p), n >= k);
    }

    #[test]
    fn serialization_round_trips(c in condition(), p in payload(), id in point_id()) {
        let f = Filter::from_value(json!({"must": [c]})).unwrap();
        let back = Filter::from_value(serde_json::to_value(&f).unwrap()).unwrap();
        prop_assert_eq!(&back, &f);
        prop_assert_eq!(back.matches(&id, Some(&p)), f.matches(&id, Some(&p)));
    }

    /// `match` on a top-level key against a naive model of Qdrant's rules.
    #[test]
    fn match_agrees_with_model(v in leaf(), op in scalar(), list in prop_oneof![keywords(), integers()]) {
        let p: Payload = [("k".to_string(), v.clone())].into_iter().collect();
        let id = PointId::Num(0);
        let values: Vec<&Value> = match &v { Value::Array(items) => items.iter().collect(), other => vec![other] };
        let same = |a: &Value, b: &Value| match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_i64().is_some() && x.as_i64() == y.as_i64(),
            _ => a == b,
        };
        if !op.is_null() && !op.is_f64() {
            let expected = values.iter().any(|x| same(x, &op));
            prop_assert_eq!(eval(json!({"must": {"key": "k", "match": {"value": op}}}), &id, &p), expected);
        }
        let items = list.as_array().unwrap();
        let any = values.iter().any(|x| items.iter().any(|l| same(x, l)));
        prop_assert_eq!(eval(json!({"must": {"key": "k", "match": {"any": list.clone()}}}), &id, &p), any);
        let except = values.iter().any(|x| !x.is_null() && !items.iter().any(|l| same(x, l)));
        prop_assert_eq!(eval(json!({"must": {"key": "k", "match": {"except": list}}}), &id, &p), except);
    }
}
