//! Evaluation of a filter against one point (semantics in the module docs of `filter`).

use serde_json::Value;

use super::path::visit;
use super::{Condition, FieldCondition, Filter, GeoPoint, Match, MatchList, MatchValue, RangeCondition};
use crate::ids::PointId;
use crate::payload::Payload;

/// `id` is `None` inside nested filters, where `has_id` never holds; `has_vector` tells
/// whether the point has a vector field.
pub(super) fn filter(f: &Filter, id: Option<&PointId>, payload: &Payload, has_vector: &dyn Fn(&str) -> bool) -> bool {
    let check = |c: &Condition| condition(c, id, payload, has_vector);
    f.must.as_ref().is_none_or(|cs| cs.iter().all(check))
        && f.must_not.as_ref().is_none_or(|cs| !cs.iter().any(check))
        && f.should.as_ref().is_none_or(|cs| cs.is_empty() || cs.iter().any(check))
        && f.min_should.as_ref().is_none_or(|ms| {
            // `take` stops as soon as enough conditions held.
            ms.conditions.iter().filter(|c| check(c)).take(ms.min_count).count() >= ms.min_count
        })
}

fn condition(c: &Condition, id: Option<&PointId>, payload: &Payload, has_vector: &dyn Fn(&str) -> bool) -> bool {
    match c {
        Condition::Field(f) => field(f, payload),
        Condition::IsEmpty(c) => is_empty(payload, &c.is_empty.key),
        Condition::IsNull(c) => is_null(payload, &c.is_null.key),
        Condition::HasId(c) => id.is_some_and(|id| c.has_id.contains(id)),
        Condition::HasVector(c) => has_vector(&c.has_vector),
        Condition::Nested(n) => {
            let mut found = false;
            visit(payload, n.nested.array_key(), &mut |v| {
                if !found {
                    if let Value::Array(items) = v {
                        found = items
                            .iter()
                            .filter_map(Value::as_object)
                            .any(|obj| filter(&n.nested.filter, None, obj, &|_| false));
                    }
                }
            });
            found
        }
        Condition::Filter(f) => filter(f, id, payload, has_vector),
    }
}

/// Whether some value at `key` (an array's elements standing for the array) satisfies `pred`.
fn any_value(payload: &Payload, key: &str, pred: impl Fn(&Value) -> bool) -> bool {
    let mut found = false;
    visit(payload, key, &mut |v| {
        if !found {
            found = match v {
                Value::Array(items) => items.iter().any(&pred),
                other => pred(other),
            };
        }
    });
    found
}

fn is_empty(payload: &Payload, key: &str) -> bool {
    let mut empty = true;
    visit(payload, key, &mut |v| {
        empty &= match v {
            Value::Null => true,
            Value::Array(items) => items.is_empty(),
            _ => false,
        };
    });
    empty
}

fn is_null(payload: &Payload, key: &str) -> bool {
    let mut null = false;
    visit(payload, key, &mut |v| {
        null |= match v {
            Value::Null => true,
            Value::Array(items) => items.iter().any(Value::is_null),
            _ => false,
        };
    });
    null
}

fn field(f: &FieldCondition, payload: &Payload) -> bool {
    let key = f.key.as_str();
    if let Some(m) = &f.r#match {
        return any_value(payload, key, |v| match_one(m, v));
    }
    if let Some(r) = &f.range {
        return match r {
            RangeCondition::Number(r) => any_value(payload, key, |v| match v {
                Value::Number(n) => n.as_f64().is_some_and(|x| r.contains(&x)),
                _ => false,
            }),
            RangeCondition::DateTime(r) => {
                any_value(payload, key, |v| v.as_str().and_then(super::DateTime::parse).is_some_and(|d| r.contains(&d)))
            }
        };
    }
    if let Some(vc) = &f.values_count {
        let mut seen = false;
        let mut ok = false;
        visit(payload, key, &mut |v| {
            seen = true;
            let count = match v {
                Value::Null => 0,
                Value::Array(items) => items.len(),
                _ => 1,
            };
            ok |= vc.contains(count);
        });
        return ok || (!seen && vc.contains(0));
    }
    if let Some(g) = &f.geo_bounding_box {
        return any_value(payload, key, |v| GeoPoint::from_payload(v).is_some_and(|p| g.contains(&p)));
    }
    if let Some(g) = &f.geo_radius {
        return any_value(payload, key, |v| GeoPoint::from_payload(v).is_some_and(|p| g.contains(&p)));
    }
    if let Some(g) = &f.geo_polygon {
        return any_value(payload, key, |v| GeoPoint::from_payload(v).is_some_and(|p| g.contains(&p)));
    }
    if let Some(want) = f.is_empty {
        return is_empty(payload, key) == want;
    }
    if let Some(want) = f.is_null {
        return is_null(payload, key) == want;
    }
    // No condition: validation rejects this; it matches nothing.
    false
}

fn match_one(m: &Match, v: &Value) -> bool {
    match m {
        Match::Value { value } => match (value, v) {
            (MatchValue::Keyword(want), Value::String(s)) => want == s,
            (MatchValue::Integer(want), Value::Number(n)) => n.as_i64() == Some(*want),
            (MatchValue::Bool(want), Value::Bool(b)) => want == b,
            _ => false,
        },
        Match::Any { any } => in_list(any, v) == Some(true),
        // A null is absence, not a value outside the list; other types are outside it.
        Match::Except { except } => !v.is_null() && in_list(except, v) != Some(true),
        Match::Text { text } => v.as_str().is_some_and(|s| text_all(text, s)),
        Match::TextAny { text_any } => v.as_str().is_some_and(|s| text_any_of(text_any, s)),
        Match::Phrase { phrase } => v.as_str().is_some_and(|s| text_phrase(phrase, s)),
        Match::Prefix { prefix } => v.as_str().is_some_and(|s| s.starts_with(prefix.as_str())),
    }
}

/// `Some(true)` if `v` is in the list, `Some(false)` if it is of the list's type but not in
/// it, `None` if it is of another type.
fn in_list(list: &MatchList, v: &Value) -> Option<bool> {
    match (list, v) {
        (MatchList::Keywords(list), Value::String(s)) => Some(list.iter().any(|k| k == s)),
        (MatchList::Integers(list), Value::Number(n)) => n.as_i64().map(|i| list.contains(&i)),
        _ => None,
    }
}

/// Words: maximal runs of letters and digits (Unicode), compared lowercase.
fn words(s: &str) -> impl Iterator<Item = &str> {
    let separator = |c: char| if c.is_ascii() { !c.is_ascii_alphanumeric() } else { !c.is_alphanumeric() };
    s.split(separator).filter(|w| !w.is_empty())
}

fn same_word(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}

fn has_word(doc: &str, word: &str) -> bool {
    words(doc).any(|w| same_word(w, word))
}

fn text_all(query: &str, doc: &str) -> bool {
    let doc_words: Vec<&str> = words(doc).collect();
    let mut any = false;
    for q in words(query) {
        any = true;
        if !doc_words.iter().any(|w| same_word(w, q)) {
            return false;
        }
    }
    any
}

fn text_any_of(query: &str, doc: &str) -> bool {
    words(query).any(|q| has_word(doc, q))
}

fn text_phrase(query: &str, doc: &str) -> bool {
    let q: Vec<&str> = words(query).collect();
    if q.is_empty() {
        return false;
    }
    let d: Vec<&str> = words(doc).collect();
    d.windows(q.len()).any(|w| w.iter().zip(&q).all(|(a, b)| same_word(a, b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_matching_is_by_lowercase_words() {
        assert!(text_all("quick FOX", "The quick brown fox."));
        assert!(text_all("fox quick", "The quick brown fox."));
        assert!(!text_all("qui", "The quick brown fox."));
        assert!(!text_all("", "anything"));
        assert!(!text_all("...", "anything"));
        assert!(text_all("état", "L'ÉTAT c'est moi"));
        assert!(text_all("co2", "co2-emissions"));
        assert!(text_any_of("cat fox", "a fox"));
        assert!(!text_any_of("cat dog", "a fox"));
        assert!(text_phrase("brown fox", "The quick Brown, fox!"));
        assert!(!text_phrase("fox brown", "The quick brown fox"));
        assert!(!text_phrase("", "x"));
    }
}
