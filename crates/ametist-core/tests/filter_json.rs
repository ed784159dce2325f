//! Filters as clients send them (Qdrant's REST JSON) against payloads, one behaviour per test.

use ametist_core::filter::{Filter, FilterError};
use ametist_core::{Payload, PointId};
use serde_json::{json, Value};

fn filter(v: Value) -> Filter {
    Filter::from_value(v.clone()).unwrap_or_else(|e| panic!("{v} should parse: {e}"))
}

fn payload(v: Value) -> Payload {
    v.as_object().expect("payload must be an object").clone()
}

/// Whether the point `1` with payload `p` passes `f`.
fn hits(f: Value, p: Value) -> bool {
    filter(f).matches(&PointId::Num(1), Some(&payload(p)))
}

/// `must: [{key, <cond>}]` on `p`.
fn field(key: &str, cond: Value, p: Value) -> bool {
    let mut c = cond.as_object().unwrap().clone();
    c.insert("key".into(), json!(key));
    hits(json!({"must": [Value::Object(c)]}), p)
}

fn m(v: Value) -> Value {
    json!({"match": v})
}

// ---------- match.value ----------

#[test]
fn match_value_keyword_integer_bool() {
    let p = json!({"color": "red", "n": 42, "ok": true, "f": 42.0, "s42": "42"});
    assert!(field("color", m(json!({"value": "red"})), p.clone()));
    assert!(!field("color", m(json!({"value": "Red"})), p.clone()), "keywords are case-sensitive");
    assert!(field("n", m(json!({"value": 42})), p.clone()));
    assert!(!field("n", m(json!({"value": 43})), p.clone()));
    assert!(field("ok", m(json!({"value": true})), p.clone()));
    assert!(!field("ok", m(json!({"value": false})), p.clone()));
    // Types never cross.
    assert!(!field("f", m(json!({"value": 42})), p.clone()), "an integer does not match a float payload");
    assert!(!field("s42", m(json!({"value": 42})), p.clone()));
    assert!(!field("n", m(json!({"value": "42"})), p.clone()));
    assert!(!field("ok", m(json!({"value": 1})), p.clone()));
    assert!(!field("missing", m(json!({"value": "red"})), p));
}

#[test]
fn match_value_on_arrays_matches_any_element() {
    let p = json!({"tags": ["a", "b"], "nums": [1, 2, 3], "empty": [], "nested": [["a"]]});
    assert!(field("tags", m(json!({"value": "b"})), p.clone()));
    assert!(!field("tags", m(json!({"value": "c"})), p.clone()));
    assert!(field("nums", m(json!({"value": 3})), p.clone()));
    assert!(!field("empty", m(json!({"value": "a"})), p.clone()));
    assert!(!field("nested", m(json!({"value": "a"})), p), "arrays are looked into one level only");
}

#[test]
fn match_value_large_and_negative_integers() {
    let p = json!({"big": u64::MAX, "neg": -5, "max": i64::MAX});
    assert!(field("neg", m(json!({"value": -5})), p.clone()));
    assert!(field("max", m(json!({"value": i64::MAX})), p.clone()));
    assert!(!field("big", m(json!({"value": -1})), p));
    let e = Filter::from_value(json!({"must": {"key": "a", "match": {"value": u64::MAX}}})).unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
}

// ---------- match.any / match.except ----------

#[test]
fn match_any() {
    let p = json!({"color": "red", "n": 2, "tags": ["x", "y"], "f": 2.0, "b": true});
    assert!(field("color", m(json!({"any": ["blue", "red"]})), p.clone()));
    assert!(!field("color", m(json!({"any": ["blue"]})), p.clone()));
    assert!(!field("color", m(json!({"any": []})), p.clone()));
    assert!(field("n", m(json!({"any": [1, 2]})), p.clone()));
    assert!(!field("n", m(json!({"any": ["2"]})), p.clone()));
    assert!(field("tags", m(json!({"any": ["y", "z"]})), p.clone()));
    assert!(!field("f", m(json!({"any": [2]})), p.clone()));
    assert!(!field("b", m(json!({"any": ["true"]})), p.clone()));
    assert!(!field("missing", m(json!({"any": ["red"]})), p));
}

#[test]
fn match_except() {
    let p = json!({
        "color": "red", "n": 2, "tags": ["x", "y"], "same": ["x", "x"], "b": true,
        "null": null, "empty": [], "nulls": [null], "obj": {"a": 1}
    });
    assert!(field("color", m(json!({"except": ["blue"]})), p.clone()));
    assert!(!field("color", m(json!({"except": ["red", "blue"]})), p.clone()));
    assert!(field("color", m(json!({"except": []})), p.clone()));
    assert!(field("n", m(json!({"except": [1]})), p.clone()));
    assert!(!field("n", m(json!({"except": [2]})), p.clone()));
    // Arrays: some element outside the list.
    assert!(field("tags", m(json!({"except": ["x"]})), p.clone()));
    assert!(!field("same", m(json!({"except": ["x"]})), p.clone()));
    // Another type is outside the list.
    assert!(field("b", m(json!({"except": ["true"]})), p.clone()));
    assert!(field("color", m(json!({"except": [1, 2]})), p.clone()));
    assert!(field("obj", m(json!({"except": ["a"]})), p.clone()));
    // Absence is not a value: missing, null, [] and [null] don't match (Qdrant).
    assert!(!field("missing", m(json!({"except": ["red"]})), p.clone()));
    assert!(!field("null", m(json!({"except": ["red"]})), p.clone()));
    assert!(!field("empty", m(json!({"except": ["red"]})), p.clone()));
    assert!(!field("nulls", m(json!({"except": ["red"]})), p));
}

// ---------- match.text / text_any / phrase / prefix ----------

#[test]
fn match_text_is_word_containment() {
    let p = json!({"t": "The Quick brown-fox, jumps!", "n": 5, "list": ["hello world", "other"]});
    assert!(field("t", m(json!({"text": "quick"})), p.clone()));
    assert!(field("t", m(json!({"text": "FOX quick"})), p.clone()), "order and case don't matter");
    assert!(field("t", m(json!({"text": "brown fox"})), p.clone()));
    assert!(!field("t", m(json!({"text": "qui"})), p.clone()), "whole words, not substrings");
    assert!(!field("t", m(json!({"text": "quick cat"})), p.clone()), "every query word is needed");
    assert!(!field("t", m(json!({"text": ""})), p.clone()), "an empty query matches nothing");
    assert!(!field("n", m(json!({"text": "5"})), p.clone()));
    assert!(field("list", m(json!({"text": "world"})), p.clone()));
    assert!(field("t", m(json!({"text_any": "cat jumps"})), p.clone()));
    assert!(!field("t", m(json!({"text_any": "cat dog"})), p.clone()));
    assert!(field("t", m(json!({"phrase": "quick brown"})), p.clone()));
    assert!(!field("t", m(json!({"phrase": "brown quick"})), p.clone()));
    assert!(field("t", m(json!({"prefix": "The Q"})), p.clone()));
    assert!(!field("t", m(json!({"prefix": "the"})), p));
}

// ---------- range ----------

#[test]
fn range_on_numbers() {
    let p = json!({"price": 10, "f": 2.5, "s": "10", "b": true, "arr": [1, 50], "neg": -3});
    let r = |k: &str, v: Value| field(k, json!({"range": v}), p.clone());
    assert!(r("price", json!({"gte": 10})));
    assert!(!r("price", json!({"gt": 10})));
    assert!(r("price", json!({"lte": 10, "gt": 9.5})));
    assert!(!r("price", json!({"lt": 10})));
    assert!(r("f", json!({"gt": 2, "lt": 3})));
    assert!(!r("s", json!({"gte": 0})), "strings are not numbers");
    assert!(!r("b", json!({"gte": 0})), "bools are not numbers");
    assert!(r("arr", json!({"gt": 40})), "any element in range");
    assert!(!r("arr", json!({"gt": 1, "lt": 50})), "one element must satisfy all bounds");
    assert!(r("neg", json!({"lt": 0})));
    assert!(r("price", json!({})), "no bounds: any number");
    assert!(!r("missing", json!({})));
}

#[test]
fn range_on_datetimes() {
    let p = json!({"at": "2020-02-15T00:00:00Z", "local": "2020-02-15 10:00:00", "bad": "soon", "n": 5});
    let r = |k: &str, v: Value| field(k, json!({"range": v}), p.clone());
    assert!(r("at", json!({"gte": "2020-02-01T00:00:00Z", "lt": "2020-03-01"})));
    assert!(!r("at", json!({"gte": "2020-03-01T00:00:00Z"})));
    assert!(r("at", json!({"lt": "2020-02-15T00:00:01+00:00"})));
    assert!(!r("at", json!({"gt": "2020-02-15T01:00:00+01:00"})), "offsets are applied");
    assert!(r("local", json!({"gt": "2020-02-15T09:59:59Z"})), "no zone means UTC");
    assert!(!r("bad", json!({"gt": "2000-01-01"})));
    assert!(!r("n", json!({"gt": "2000-01-01"})));
}

// ---------- values_count ----------

#[test]
fn values_count() {
    let p = json!({"arr": [1, 2, 3], "one": "x", "null": null, "empty": [], "objs": [{"c": [1, 2]}, {"c": [3]}]});
    let c = |k: &str, v: Value| field(k, json!({"values_count": v}), p.clone());
    assert!(c("arr", json!({"gt": 2})));
    assert!(!c("arr", json!({"gt": 3})));
    assert!(c("arr", json!({"gte": 3, "lte": 3})));
    assert!(c("one", json!({"lt": 2, "gt": 0})));
    assert!(c("null", json!({"lt": 1})));
    assert!(c("empty", json!({"lte": 0})));
    assert!(c("missing", json!({"lt": 1})), "a missing key has 0 values");
    assert!(!c("missing", json!({"gt": 0})));
    assert!(c("objs[].c", json!({"gte": 2})), "each reached value is counted on its own");
    assert!(!c("objs[].c", json!({"gte": 3})));
}

// ---------- is_empty / is_null ----------

#[test]
fn is_empty_and_is_null() {
    let p = json!({
        "price": 1, "parts": [], "packaging": null, "not_null": [null], "zero": 0, "s": "",
        "obj": {}, "arr": [{"b": 1}, {"b": []}], "arr2": [{"b": []}, {"b": null}]
    });
    let empty = |k: &str| hits(json!({"must": {"is_empty": {"key": k}}}), p.clone());
    let null = |k: &str| hits(json!({"must": {"is_null": {"key": k}}}), p.clone());
    assert!(!empty("price"));
    assert!(empty("parts"));
    assert!(empty("packaging"));
    assert!(empty("missing"));
    assert!(!empty("not_null"), "[null] is not empty");
    assert!(!empty("zero") && !empty("s") && !empty("obj"));
    assert!(!empty("arr[].b"), "empty only if every reached value is empty");
    assert!(empty("arr2[].b"));

    assert!(null("packaging"));
    assert!(!null("missing"), "a missing key is not null");
    assert!(!null("parts"));
    assert!(!null("price"));
    assert!(null("not_null"), "an array holding a null is null");
    assert!(null("arr2[].b"));

    // The field-condition spelling.
    assert!(field("parts", json!({"is_empty": true}), p.clone()));
    assert!(field("price", json!({"is_empty": false}), p.clone()));
    assert!(field("packaging", json!({"is_null": true}), p.clone()));
    assert!(field("missing", json!({"is_null": false}), p.clone()));
    assert!(hits(json!({"must_not": {"is_empty": {"key": "price"}}}), p));
}

// ---------- has_id ----------

#[test]
fn has_id_with_integers_and_uuids() {
    let f = filter(json!({"must": {"has_id": [1, 5, "550E8400-E29B-41D4-A716-446655440000", "doc-7"]}}));
    assert!(f.matches(&PointId::Num(5), None));
    assert!(!f.matches(&PointId::Num(2), None));
    let uuid = PointId::from_string("550e8400-e29b-41d4-a716-446655440000").unwrap();
    assert!(f.matches(&uuid, None));
    let uuid_simple = PointId::from_string("550e8400e29b41d4a716446655440000").unwrap();
    assert!(f.matches(&uuid_simple, None), "UUIDs compare in canonical form");
    assert!(f.matches(&PointId::from_string("doc-7").unwrap(), None));
    assert!(!f.matches(&PointId::from_string("5").unwrap(), None), "\"5\" is not 5");
    let none = filter(json!({"must": {"has_id": []}}));
    assert!(!none.matches(&PointId::Num(1), None));
    assert!(filter(json!({"must_not": {"has_id": [2]}})).matches(&PointId::Num(1), None));
}

// ---------- paths ----------

#[test]
fn dot_paths_and_arrays() {
    let p = json!({
        "country": {"name": "Germany", "cities": [
            {"name": "Berlin", "population": 3.7, "sightseeing": ["Brandenburg Gate", "Reichstag"]},
            {"name": "Munich", "population": 1.5, "sightseeing": ["Marienplatz", "Olympiapark"]}
        ]},
        "odd key": {"x.y": 1},
        "matrix": [[{"v": 1}]]
    });
    assert!(field("country.name", m(json!({"value": "Germany"})), p.clone()));
    assert!(field("country.cities[].population", json!({"range": {"gte": 3}}), p.clone()));
    assert!(field("country.cities.population", json!({"range": {"gte": 3}}), p.clone()), "a.b traverses arrays too");
    assert!(!field("country.cities[].population", json!({"range": {"gte": 4}}), p.clone()));
    assert!(field("country.cities[].sightseeing", m(json!({"value": "Olympiapark"})), p.clone()));
    assert!(field("country.cities[1].name", m(json!({"value": "Munich"})), p.clone()));
    assert!(!field("country.cities[0].name", m(json!({"value": "Munich"})), p.clone()));
    assert!(field("\"odd key\".\"x.y\"", m(json!({"value": 1})), p.clone()));
    assert!(field("matrix[][].v", m(json!({"value": 1})), p.clone()));
    assert!(!field("matrix[].v", m(json!({"value": 1})), p.clone()));
    assert!(!field("country.name.first", m(json!({"value": "Germany"})), p));
}

// ---------- nested ----------

#[test]
fn nested_conditions_hold_on_the_same_element() {
    let p = json!({"diet": [
        {"food": "meat", "likes": false},
        {"food": "vegetables", "likes": true}
    ]});
    let plain = json!({"must": [
        {"key": "diet[].food", "match": {"value": "meat"}},
        {"key": "diet[].likes", "match": {"value": true}}
    ]});
    assert!(hits(plain, p.clone()), "without nested, conditions may hold on different elements");
    let nested = |food: &str, likes: bool, key: &str| {
        hits(
            json!({"must": {"nested": {"key": key, "filter": {"must": [
                {"key": "food", "match": {"value": food}},
                {"key": "likes", "match": {"value": likes}}
            ]}}}}),
            p.clone(),
        )
    };
    assert!(!nested("meat", true, "diet"));
    assert!(nested("meat", false, "diet"));
    assert!(nested("vegetables", true, "diet[]"));
    assert!(!nested("meat", false, "missing"));
    // must_not inside nested: some element without the condition.
    assert!(hits(
        json!({"must": {"nested": {"key": "diet", "filter": {"must_not": {"key": "likes", "match": {"value": true}}}}}}),
        p.clone()
    ));
    // A nested key on an object (not an array) reaches no element.
    assert!(!hits(json!({"must": {"nested": {"key": "o", "filter": {}}}}), json!({"o": {"a": 1}})));
    assert!(hits(json!({"must": {"nested": {"key": "diet", "filter": {}}}}), p.clone()));
    assert!(!hits(json!({"must": {"nested": {"key": "diet", "filter": {}}}}), json!({"diet": []})));
    // Nested inside nested, with a deeper path.
    let deep = json!({"a": {"list": [{"inner": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}]}});
    let inner = |x: i64, y: i64| {
        json!({"must": {"nested": {"key": "a.list", "filter": {"must": {"nested": {"key": "inner", "filter": {
            "must": [{"key": "x", "match": {"value": x}}, {"key": "y", "match": {"value": y}}]
        }}}}}}})
    };
    assert!(hits(inner(3, 4), deep.clone()));
    assert!(!hits(inner(1, 4), deep));
}

// ---------- geo ----------

#[test]
fn geo_conditions() {
    let p = json!({
        "location": {"lon": 13.404954, "lat": 52.520008},
        "stores": [{"lon": 37.6173, "lat": 55.7558}, {"lon": -0.1278, "lat": 51.5074}],
        "bad": {"lon": "13", "lat": 52}
    });
    let berlin_box = json!({"geo_bounding_box": {
        "top_left": {"lon": 13.08835, "lat": 52.67551}, "bottom_right": {"lon": 13.76116, "lat": 52.33826}}});
    assert!(field("location", berlin_box.clone(), p.clone()));
    assert!(!field("stores", berlin_box.clone(), p.clone()));
    assert!(!field("bad", berlin_box, p.clone()));
    let near =
        |lon: f64, lat: f64, radius: f64| json!({"geo_radius": {"center": {"lon": lon, "lat": lat}, "radius": radius}});
    assert!(field("location", near(13.41, 52.52, 1000.0), p.clone()));
    assert!(!field("location", near(13.41, 52.52, 100.0), p.clone()));
    assert!(field("stores", near(-0.12, 51.5, 2000.0), p.clone()), "any point of an array");
    let square = |d: f64| {
        json!({"geo_polygon": {"exterior": {"points": [
            {"lon": 13.4 - d, "lat": 52.5 - d}, {"lon": 13.4 + d, "lat": 52.5 - d},
            {"lon": 13.4 + d, "lat": 52.5 + d}, {"lon": 13.4 - d, "lat": 52.5 + d}, {"lon": 13.4 - d, "lat": 52.5 - d}
        ]}}})
    };
    assert!(field("location", square(0.1), p.clone()));
    assert!(!field("location", square(0.001), p.clone()));
    let with_hole = json!({"geo_polygon": {
        "exterior": {"points": [{"lon": 0, "lat": 0}, {"lon": 20, "lat": 0}, {"lon": 20, "lat": 60}, {"lon": 0, "lat": 60}, {"lon": 0, "lat": 0}]},
        "interiors": [{"points": [{"lon": 13, "lat": 52}, {"lon": 14, "lat": 52}, {"lon": 14, "lat": 53}, {"lon": 13, "lat": 53}, {"lon": 13, "lat": 52}]}]
    }});
    assert!(!field("location", with_hole, p));
}

// ---------- boolean structure ----------

#[test]
fn must_should_must_not_combinations() {
    let p = json!({"city": "London", "color": "red", "n": 5});
    let city = |c: &str| json!({"key": "city", "match": {"value": c}});
    let color = |c: &str| json!({"key": "color", "match": {"value": c}});
    assert!(hits(json!({"must": [city("London"), color("red")]}), p.clone()));
    assert!(!hits(json!({"must": [city("London"), color("blue")]}), p.clone()));
    assert!(hits(json!({"should": [city("Berlin"), color("red")]}), p.clone()));
    assert!(!hits(json!({"should": [city("Berlin"), color("blue")]}), p.clone()));
    assert!(hits(json!({"must_not": [city("Berlin"), color("blue")]}), p.clone()));
    assert!(!hits(json!({"must_not": [city("Berlin"), color("red")]}), p.clone()));
    // Clauses combine with AND.
    assert!(hits(
        json!({"must": city("London"), "should": [color("blue"), color("red")], "must_not": city("Moscow")}),
        p.clone()
    ));
    assert!(!hits(json!({"must": city("London"), "should": [color("blue")], "must_not": city("Moscow")}), p.clone()));
    // Empty clauses impose nothing.
    assert!(hits(json!({"must": [], "should": [], "must_not": []}), p.clone()));
    assert!(hits(json!({}), p.clone()));
    // A filter as a condition: (city = London AND color = blue) OR n = 5.
    assert!(hits(
        json!({"should": [{"must": [city("London"), color("blue")]}, {"key": "n", "match": {"value": 5}}]}),
        p.clone()
    ));
    assert!(!hits(json!({"should": [{"must": [city("London"), color("blue")]}]}), p.clone()));
    // min_should.
    let ms =
        |n: usize| json!({"min_should": {"conditions": [city("London"), color("red"), color("blue")], "min_count": n}});
    assert!(hits(ms(1), p.clone()));
    assert!(hits(ms(2), p.clone()));
    assert!(!hits(ms(3), p.clone()));
    assert!(!hits(json!({"min_should": {"conditions": [], "min_count": 1}}), p.clone()));
    assert!(!hits(json!({"min_should": {"conditions": [city("London")], "min_count": 2}}), p));
}

#[test]
fn points_without_payload() {
    let f = |v: Value| filter(v).matches(&PointId::Num(1), None);
    assert!(f(json!({})));
    assert!(f(json!({"must": {"is_empty": {"key": "a"}}})));
    assert!(!f(json!({"must": {"key": "a", "match": {"value": 1}}})));
    assert!(f(json!({"must_not": {"key": "a", "match": {"value": 1}}})));
    assert!(!f(json!({"must": {"key": "a", "match": {"except": [1]}}})));
    assert!(f(json!({"must": {"key": "a", "values_count": {"lt": 1}}})));
}

// ---------- errors ----------

#[test]
fn malformed_filters_get_readable_errors() {
    let err = |s: &str| serde_json::from_str::<Filter>(s).unwrap_err().to_string();
    let cases = [
        (r#"{"must": [{"key": "price"}]}"#, "must[0]: filter condition for key `price` has no condition"),
        (r#"{"must": [{"key": "", "match": {"value": 1}}]}"#, "invalid key ``"),
        (r#"{"must": [{"key": "a", "match": {"equals": 1}}]}"#, "unknown match kind `equals`"),
        (
            r#"{"must": [{"key": "a", "match": {"value": [1]}}]}"#,
            "match.value must be a string, an integer or a boolean, got an array",
        ),
        (r#"{"must": [{"key": "a", "range": {"gt": true}}]}"#, "range bounds must be numbers or datetime strings"),
        (r#"{"must": [{"key": "a", "range": {"above": 1}}]}"#, "unknown field `above` in range"),
        (
            r#"{"should": [{"key": "loc", "geo_bounding_box": {}}]}"#,
            "invalid geo_bounding_box: missing field `top_left`",
        ),
        (r#"{"must": [{"foo": 1}]}"#, "unknown condition field `foo`"),
        (r#"{"must": 5}"#, "expected a condition or a list of conditions, got the number 5"),
        (r#"{"filter": {}}"#, "unknown field `filter` in a filter"),
        (r#"{"must": [{"nested": {"key": "a"}}]}"#, "nested needs `filter`"),
        (r#"{"min_should": {"conditions": [], "min_count": -1}}"#, "min_count must be a non-negative integer"),
        (
            r#"{"must": [{"has_id": ["", 1]}]}"#,
            "must[0].has_id[0]: invalid point id: the id must not be an empty string",
        ),
        (r#"{"must": [{"is_null": {"key": 3}}]}"#, "key must be a string, got the number 3"),
    ];
    for (json, expected) in cases {
        let e = err(json);
        assert!(e.contains(expected), "for {json}\n  got:      {e}\n  expected: {expected}");
    }
    // Errors from Filter::from_json are typed.
    match Filter::from_json(r#"{"must": {"key": "k"}}"#).unwrap_err() {
        FilterError::At { path, inner } => {
            assert_eq!(path, "must[0]");
            assert_eq!(*inner, FilterError::NoCondition { key: "k".into() });
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(Filter::from_json("{").unwrap_err().to_string().starts_with("filter is not valid JSON"));
}

#[test]
fn qdrant_client_style_nulls_are_absent() {
    // Clients that serialize every optional field send explicit nulls.
    let f = filter(json!({
        "should": null, "min_should": null, "must_not": null,
        "must": [{"key": "a", "match": {"value": 1}, "range": null, "geo_radius": null, "values_count": null,
                  "is_empty": null, "is_null": null, "geo_bounding_box": null, "geo_polygon": null}]
    }));
    assert!(f.matches(&PointId::Num(1), Some(&payload(json!({"a": 1})))));
}
