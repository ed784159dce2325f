//! Unit tests of parsing, validation and evaluation; the JSON-level suite is in
//! `tests/filter_*.rs`.

use serde_json::{json, Value};

use super::*;

fn payload(v: Value) -> Payload {
    v.as_object().expect("payload must be an object").clone()
}

fn f(v: Value) -> Filter {
    Filter::from_value(v.clone()).unwrap_or_else(|e| panic!("{v} should parse: {e}"))
}

#[test]
fn one_condition_or_a_list() {
    let single = f(json!({"must": {"key": "a", "match": {"value": 1}}}));
    let list = f(json!({"must": [{"key": "a", "match": {"value": 1}}]}));
    assert_eq!(single, list);
    assert_eq!(single.must.as_ref().unwrap().len(), 1);
}

#[test]
fn condition_kinds_are_recognised() {
    let filter = f(json!({"must": [
        {"key": "a", "match": {"value": "x"}},
        {"is_empty": {"key": "b"}},
        {"is_null": {"key": "c"}},
        {"has_id": [1, "550E8400-E29B-41D4-A716-446655440000"]},
        {"nested": {"key": "d", "filter": {"must": {"key": "e", "range": {"gt": 1}}}}},
        {"should": []},
        {}
    ]}));
    let must = filter.must.unwrap();
    assert!(matches!(must[0], Condition::Field(_)));
    assert!(matches!(must[1], Condition::IsEmpty(_)));
    assert!(matches!(must[2], Condition::IsNull(_)));
    match &must[3] {
        Condition::HasId(h) => {
            assert!(h.has_id.contains(&PointId::Num(1)));
            assert!(h.has_id.contains(&PointId::Str("550e8400-e29b-41d4-a716-446655440000".into())));
        }
        other => panic!("expected has_id, got {other:?}"),
    }
    assert!(matches!(must[4], Condition::Nested(_)));
    assert!(matches!(must[5], Condition::Filter(_)));
    assert_eq!(must[6], Condition::Filter(Filter::default()));
}

#[test]
fn match_and_range_shapes() {
    let m = |v: Value| match_value_of(f(json!({"must": {"key": "k", "match": v}})));
    assert_eq!(m(json!({"value": "red"})), Match::Value { value: MatchValue::Keyword("red".into()) });
    assert_eq!(m(json!({"value": -3})), Match::Value { value: MatchValue::Integer(-3) });
    assert_eq!(m(json!({"value": true})), Match::Value { value: MatchValue::Bool(true) });
    assert_eq!(m(json!({"any": []})), Match::Any { any: MatchList::Keywords(vec![]) });
    assert_eq!(m(json!({"any": [1, 2]})), Match::Any { any: MatchList::Integers(vec![1, 2]) });
    assert_eq!(m(json!({"except": ["a"]})), Match::Except { except: MatchList::Keywords(vec!["a".into()]) });
    assert_eq!(m(json!({"text": "hello"})), Match::Text { text: "hello".into() });
    assert_eq!(m(json!({"phrase": "a b"})), Match::Phrase { phrase: "a b".into() });
    assert_eq!(m(json!({"text_any": "a b"})), Match::TextAny { text_any: "a b".into() });
    assert_eq!(m(json!({"prefix": "ab"})), Match::Prefix { prefix: "ab".into() });

    let r = |v: Value| {
        let filter = f(json!({"must": {"key": "k", "range": v}}));
        match &filter.must.unwrap()[0] {
            Condition::Field(fc) => fc.range.unwrap(),
            _ => unreachable!(),
        }
    };
    assert_eq!(
        r(json!({"gt": 1, "lte": 2.5, "lt": null})),
        RangeCondition::Number(Range { gt: Some(1.0), lte: Some(2.5), ..Range::default() })
    );
    assert_eq!(
        r(json!({"gte": "2023-02-08"})),
        RangeCondition::DateTime(Range { gte: DateTime::parse("2023-02-08T00:00:00Z"), ..Range::default() })
    );
    assert_eq!(r(json!({})), RangeCondition::Number(Range::default()));
}

fn match_value_of(filter: Filter) -> Match {
    match &filter.must.unwrap()[0] {
        Condition::Field(fc) => fc.r#match.clone().unwrap(),
        _ => unreachable!(),
    }
}

#[test]
fn validate_names_the_problem_and_the_place() {
    let err = |v: Value| Filter::from_value(v).unwrap_err().to_string();
    assert_eq!(
        err(json!({"must": [{"key": "a", "match": {"value": 1}}, {"key": "price"}]})),
        "must[1]: filter condition for key `price` has no condition (expected one of: match, range, values_count, is_empty, is_null, geo_bounding_box, geo_radius, geo_polygon)"
    );
    assert!(err(json!({"must": {"key": "", "match": {"value": 1}}})).contains("invalid key ``: the key is empty"));
    assert!(err(json!({"should": {"key": "a b", "match": {"value": 1}}})).contains("must be quoted"));
    assert_eq!(
        err(json!({"must": {"key": "loc", "geo_radius": {"center": {"lat": 91, "lon": 2}, "radius": 5}}})),
        "must[0]: invalid geo_radius for key `loc`: center: latitude 91 is outside [-90, 90]"
    );
    assert!(err(json!({"must": {"key": "loc", "geo_radius": {"center": {"lat": 1}, "radius": 5}}}))
        .starts_with("must[0].geo_radius: invalid geo_radius: missing field `lon`"));
    assert!(err(json!({"must": {"key": "loc", "geo_polygon": {"exterior": {"points": []}}}}))
        .contains("invalid geo_polygon for key `loc`: exterior must have at least 4 points, got 0"));
    assert!(err(json!({"must": {"key": "a", "match": {"value": 1}, "range": {"gt": 1}}}))
        .contains("has several conditions (match, range)"));
    assert_eq!(
        err(json!({"min_should": {"conditions": [], "min_count": 0}})),
        "min_should: min_should.min_count must be at least 1 (got 0)"
    );
    assert!(err(json!({"must": {"nested": {"key": "arr", "filter": {"must": {"has_id": [1]}}}}}))
        .starts_with("must[0].nested.filter.must[0]: has_id is not supported inside a nested filter"));
    assert!(err(json!({"must": {"is_empty": {"key": "a..b"}}})).contains("invalid key `a..b`"));

    // Filters built in code are checked the same way.
    let built = Filter { must: Some(vec![FieldCondition::new("x").into()]), ..Filter::default() };
    assert_eq!(built.validate().unwrap_err().innermost(), &FilterError::NoCondition { key: "x".into() });
    let geo = FieldCondition {
        geo_radius: Some(GeoRadius { center: GeoPoint { lon: 200.0, lat: 0.0 }, radius: 1.0 }),
        ..FieldCondition::new("g")
    };
    assert_eq!(
        geo.validate().unwrap_err().to_string(),
        "invalid geo_radius for key `g`: center: longitude 200 is outside [-180, 180]"
    );
}

#[test]
fn malformed_shapes_read_well() {
    let err = |v: Value| Filter::from_value(v).unwrap_err().to_string();
    assert_eq!(
        err(json!({"must": [{"key": "a", "match": {"equals": 1}}]})),
        "must[0].match: unknown match kind `equals` (expected one of: value, any, except, text, text_any, phrase, prefix)"
    );
    assert!(err(json!({"must": {"key": "a", "match": {"value": 1.5}}})).contains("use `range` for floating-point"));
    assert!(err(json!({"must": {"key": "a", "match": {"any": ["x", 1]}}})).contains("element 1 is the number 1"));
    assert!(err(json!({"musts": []})).contains("unknown field `musts` in a filter"));
    assert!(err(json!({"must": "a"})).contains("expected a condition or a list of conditions, got the string \"a\""));
    assert!(err(json!({"must": [{"match": {"value": 1}}]})).contains("a field condition needs `key`"));
    assert!(err(json!({"must": [{"key": "a", "matches": {"value": 1}}]})).contains("unknown field `matches`"));
    assert!(err(json!({"must": {"key": "a", "range": {"gt": "soon"}}})).contains("`soon` is not a datetime"));
    assert!(err(json!({"must": {"key": "a", "range": {"gt": 1, "lt": "2020-01-01"}}})).contains("mixes numbers"));
    assert!(err(json!({"must": {"key": "a", "values_count": {"gt": -1}}})).contains("non-negative integers"));
    assert!(err(json!({"must": {"has_id": [-1]}})).contains("must[0].has_id[0]: point id -1 is negative"));
    assert!(err(json!({"must": {"has_vector": 3}})).contains("has_vector"));
    assert!(err(json!({"must": {"nested": {"key": "a", "filter": {"must": {"has_vector": "v"}}}}}))
        .contains("has_vector is not supported inside a nested filter"));
    let f = Filter::from_value(json!({"must": {"has_vector": "v"}, "must_not": {"has_vector": ""}})).unwrap();
    let id = PointId::Num(1);
    assert!(f.matches_point(&id, None, &|name| name == "v"));
    assert!(!f.matches_point(&id, None, &|name| name == "v" || name.is_empty()));
    assert!(!f.matches(&id, None), "without vectors, has_vector never holds");
    assert!(err(json!({"must": {"is_empty": {"key": "a"}, "must": []}}))
        .contains("unexpected field `must` next to `is_empty`"));
    assert!(err(json!({"must": {"key": "a", "match": {"value": 1, "any": [1]}}})).contains("exactly one"));
    assert!(err(json!([1])).contains("expected a filter (a JSON object), got an array"));

    // Through serde, the message survives (with serde_json's position).
    let e = serde_json::from_str::<Filter>(r#"{"must": [{"key": "price"}]}"#).unwrap_err().to_string();
    assert!(e.contains("filter condition for key `price` has no condition"), "{e}");
}

#[test]
fn serialization_round_trips() {
    let src = json!({
        "should": [{"key": "a", "match": {"value": "x"}}, {"key": "n", "range": {"gte": 1.5}}],
        "min_should": {"conditions": [{"is_null": {"key": "z"}}], "min_count": 1},
        "must": [
            {"has_id": [3, "abc"]},
            {"nested": {"key": "arr[]", "filter": {"must": [{"key": "b", "match": {"except": [1, 2]}}]}}},
            {"key": "t", "range": {"lt": "2023-02-08T11:49:00+01:00"}},
            {"key": "c", "values_count": {"gt": 2}},
            {"key": "c", "is_empty": false},
            {"key": "g", "geo_bounding_box": {"top_left": {"lon": 1, "lat": 2}, "bottom_right": {"lon": 3, "lat": 0}}},
            {"key": "g", "geo_radius": {"center": {"lon": 1, "lat": 2}, "radius": 1000}},
            {"key": "g", "geo_polygon": {"exterior": {"points": [
                {"lon": 0, "lat": 0}, {"lon": 1, "lat": 0}, {"lon": 1, "lat": 1}, {"lon": 0, "lat": 0}]}}},
            {"must_not": [{"is_empty": {"key": "q"}}]}
        ],
        "must_not": [{"key": "txt", "match": {"text": "Hello world"}}]
    });
    let filter = f(src);
    let out = serde_json::to_value(&filter).unwrap();
    assert_eq!(out["must"][2]["range"]["lt"], json!("2023-02-08T10:49:00Z"));
    assert_eq!(out["must"][0]["has_id"], json!([3, "abc"]));
    assert_eq!(f(out), filter);
}

#[test]
fn referenced_keys_lists_each_key_once() {
    let filter = f(json!({
        "must": [{"key": "a", "match": {"value": 1}}, {"is_empty": {"key": "b"}}],
        "should": [{"key": "a", "range": {"gt": 1}}, {"must_not": {"is_null": {"key": "c.d"}}}],
        "min_should": {"conditions": [{"has_id": [1]}, {"key": "e", "values_count": {"gt": 1}}], "min_count": 1},
        "must_not": {"nested": {"key": "arr[]", "filter": {"must": {"key": "x", "match": {"value": 1}}}}}
    }));
    assert_eq!(filter.referenced_keys(), vec!["a", "c.d", "b", "arr[]", "arr[].x", "e"]);
}

#[test]
fn evaluation_basics() {
    let p = payload(json!({"color": "red", "n": 3, "tags": ["a", "b"]}));
    let id = PointId::Num(7);
    assert!(f(json!({})).matches(&id, Some(&p)));
    assert!(f(json!({"must": {"key": "color", "match": {"value": "red"}}})).matches(&id, Some(&p)));
    assert!(!f(json!({"must": {"key": "color", "match": {"value": "blue"}}})).matches(&id, Some(&p)));
    assert!(f(json!({"must": {"key": "tags", "match": {"value": "b"}}})).matches(&id, Some(&p)));
    assert!(f(json!({"must": {"has_id": [7]}})).matches(&id, None));
    assert!(!f(json!({"must": {"has_id": [7]}})).matches_payload(&p));
    assert!(f(json!({"must": {"is_empty": {"key": "color"}}})).matches(&id, None));
}

#[test]
fn parts_deserialize_on_their_own() {
    let c: Condition = serde_json::from_value(json!({"key": "a", "match": {"value": 1}})).unwrap();
    assert!(matches!(c, Condition::Field(_)));
    let e = serde_json::from_value::<Condition>(json!({"nested": {"key": "n", "filter": {"must": {"has_id": [1]}}}}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("has_id is not supported inside a nested filter"), "{e}");
    let e = serde_json::from_value::<FieldCondition>(json!({"match": {"value": 1}})).unwrap_err().to_string();
    assert_eq!(e, "a field condition needs `key`");
    let m: Match = serde_json::from_value(json!({"except": [1, 2]})).unwrap();
    assert_eq!(m, Match::Except { except: MatchList::Integers(vec![1, 2]) });
    let r: RangeCondition = serde_json::from_value(json!({"lt": 5})).unwrap();
    assert_eq!(r, RangeCondition::Number(Range { lt: Some(5.0), ..Range::default() }));
    let v: ValuesCount = serde_json::from_value(json!({"gte": 2})).unwrap();
    assert!(v.contains(2) && !v.contains(1));
}
