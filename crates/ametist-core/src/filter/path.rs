//! Payload key paths, in Qdrant's syntax.
//!
//! Grammar (the same as Qdrant's `JsonPath`):
//!
//! ```text
//! path  = key ( "." key | "[]" | "[" digits "]" )*
//! key   = raw | quoted
//! raw   = ( alphanumeric | "_" | "-" )+
//! quoted = '"' ( any character but '"' and '\' )* '"'
//! ```
//!
//! So `a.b.c`, `cities[].population`, `tags[0]` and `meta."key with.dots"` are keys.
//!
//! Walking a path over a payload yields the values it reaches. `[]` visits every element
//! of an array and `[n]` one element. **Deviation from Qdrant, on purpose:** a plain `.key`
//! step applied to an array of objects also visits every object of the array (Qdrant only
//! does that when written `a[].b`; there `a.b` reaches nothing when `a` is an array). Both
//! spellings therefore mean the same here, which is what most users expect and never turns a
//! Qdrant match into a miss.
//!
//! Paths are walked straight from the key string, without allocating, since a filter is
//! evaluated once per candidate point.

use serde_json::Value;

use crate::payload::Payload;

/// One step of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    Key(&'a str),
    Index(usize),
    Wildcard,
}

fn is_raw_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Parses a key (raw or quoted) at the start of `s`; returns it and the rest.
fn parse_key(s: &str) -> Result<(&str, &str), String> {
    if let Some(after) = s.strip_prefix('"') {
        match after.find(['"', '\\']) {
            Some(end) if after.as_bytes()[end] == b'"' => Ok((&after[..end], &after[end + 1..])),
            Some(_) => Err("a quoted key must not contain `\\`".into()),
            None => Err("a quoted key is missing its closing `\"`".into()),
        }
    } else {
        let end = s.find(|c: char| !is_raw_char(c)).unwrap_or(s.len());
        if end == 0 {
            match s.chars().next() {
                None => Err("a key is missing (the path ends with `.` or is empty)".into()),
                Some(c) => Err(format!(
                    "unexpected character `{c}`; keys are made of letters, digits, `_` and `-`, \
                     other keys must be quoted, like `a.\"my key\"`"
                )),
            }
        } else {
            Ok((&s[..end], &s[end..]))
        }
    }
}

/// Parses the step at the start of `rest` (after the first key): `.key`, `[]` or `[n]`.
fn parse_step(rest: &str) -> Result<(Step<'_>, &str), String> {
    if let Some(after) = rest.strip_prefix('.') {
        let (key, tail) = parse_key(after)?;
        Ok((Step::Key(key), tail))
    } else if let Some(after) = rest.strip_prefix("[]") {
        Ok((Step::Wildcard, after))
    } else if let Some(after) = rest.strip_prefix('[') {
        let end = after.find(']').ok_or_else(|| "an index `[` is missing its closing `]`".to_string())?;
        let digits = &after[..end];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`[{digits}]` is not an array index; use `[]` or `[<number>]`"));
        }
        let index = digits.parse::<usize>().map_err(|_| format!("array index `{digits}` is too large"))?;
        Ok((Step::Index(index), &after[end + 1..]))
    } else {
        let c = rest.chars().next().unwrap_or(' ');
        Err(format!(
            "unexpected character `{c}`; expected `.`, `[]` or `[<number>]` (keys with characters \
             other than letters, digits, `_` and `-` must be quoted, like `a.\"my key\"`)"
        ))
    }
}

/// Checks that `key` is a well-formed path; the error explains what is wrong.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    let (_, mut rest) = parse_key(key)?;
    while !rest.is_empty() {
        rest = parse_step(rest)?.1;
    }
    Ok(())
}

/// Splits a well-formed path into its steps (the first key included, as `Step::Key`).
/// Returns `None` for a malformed path.
#[cfg(test)]
pub(crate) fn steps(key: &str) -> Option<Vec<Step<'_>>> {
    let (first, mut rest) = parse_key(key).ok()?;
    let mut out = vec![Step::Key(first)];
    while !rest.is_empty() {
        let (step, tail) = parse_step(rest).ok()?;
        out.push(step);
        rest = tail;
    }
    Some(out)
}

/// Calls `f` with every value `key` reaches in `payload` (leaf arrays are passed whole).
/// A malformed key reaches nothing.
pub(crate) fn visit<'a>(payload: &'a Payload, key: &str, f: &mut dyn FnMut(&'a Value)) {
    let Ok((first, rest)) = parse_key(key) else {
        return;
    };
    if let Some(value) = payload.get(first) {
        walk(value, rest, true, f);
    }
}

/// `by_key`: `value` was reached through a `.key` step (not `[]` or `[n]`), so that a
/// following `.key` may flatten it if it is an array.
fn walk<'a>(value: &'a Value, rest: &str, by_key: bool, f: &mut dyn FnMut(&'a Value)) {
    if rest.is_empty() {
        f(value);
        return;
    }
    let Ok((step, tail)) = parse_step(rest) else {
        return;
    };
    match (step, value) {
        (Step::Key(k), Value::Object(map)) => {
            if let Some(v) = map.get(k) {
                walk(v, tail, true, f);
            }
        }
        // Implicit flattening: `a.b` over an array of objects visits each object's `b`,
        // as `a[].b` does (one level only: `a[].b` over `[[{b}]]` reaches nothing).
        (Step::Key(k), Value::Array(items)) if by_key => {
            for item in items {
                if let Some(v) = item.as_object().and_then(|m| m.get(k)) {
                    walk(v, tail, true, f);
                }
            }
        }
        (Step::Wildcard, Value::Array(items)) => {
            for item in items {
                walk(item, tail, false, f);
            }
        }
        (Step::Index(i), Value::Array(items)) => {
            if let Some(v) = items.get(i) {
                walk(v, tail, false, f);
            }
        }
        _ => {}
    }
}

/// Writes `key` so that it can be appended to a path: raw if possible, quoted otherwise.
#[cfg(test)]
pub(crate) fn quote_if_needed(key: &str) -> String {
    if !key.is_empty() && key.chars().all(is_raw_char) {
        key.to_string()
    } else {
        format!("\"{key}\"")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn values(payload: Value, key: &str) -> Vec<Value> {
        let map = payload.as_object().unwrap().clone();
        let mut out = Vec::new();
        visit(&map, key, &mut |v| out.push(v.clone()));
        out
    }

    #[test]
    fn parses_qdrant_paths() {
        assert_eq!(
            steps("foo[1][50].bar-baz[].\"qux[.]quux\"").unwrap(),
            vec![
                Step::Key("foo"),
                Step::Index(1),
                Step::Index(50),
                Step::Key("bar-baz"),
                Step::Wildcard,
                Step::Key("qux[.]quux"),
            ]
        );
        assert_eq!(steps("\"a b\"").unwrap(), vec![Step::Key("a b")]);
        for bad in ["", "a.", ".a", "a..b", "a[", "a[x]", "a b", "a.\"b", "a]", "a.[]"] {
            assert!(check_key(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in ["a", "a.b.c", "a[]", "a[].b", "a[0].b", "é-ß_1", "a.\"x.y\"", "\"\""] {
            assert!(check_key(good).is_ok(), "{good:?} should be accepted");
        }
        assert_eq!(quote_if_needed("a b"), "\"a b\"");
        assert_eq!(quote_if_needed("ab_1"), "ab_1");
    }

    #[test]
    fn walks_objects_and_arrays() {
        let p = json!({
            "a": {"b": {"c": 1}},
            "arr": [{"x": 1, "y": [1, 2]}, {"x": 2}, 5, [{"x": 9}]],
            "tags": ["t1", "t2"],
        });
        assert_eq!(values(p.clone(), "a.b.c"), vec![json!(1)]);
        assert_eq!(values(p.clone(), "a.b.c.d"), Vec::<Value>::new());
        assert_eq!(values(p.clone(), "arr[].x"), vec![json!(1), json!(2)]);
        assert_eq!(values(p.clone(), "arr.x"), vec![json!(1), json!(2)]);
        assert_eq!(values(p.clone(), "arr[3][].x"), vec![json!(9)]);
        assert_eq!(values(p.clone(), "arr[3].x"), Vec::<Value>::new());
        assert_eq!(values(p.clone(), "arr[].y"), vec![json!([1, 2])]);
        assert_eq!(values(p.clone(), "arr[].y[]"), vec![json!(1), json!(2)]);
        assert_eq!(values(p.clone(), "arr[1].x"), vec![json!(2)]);
        assert_eq!(values(p.clone(), "arr[9].x"), Vec::<Value>::new());
        assert_eq!(values(p.clone(), "tags"), vec![json!(["t1", "t2"])]);
        assert_eq!(values(p.clone(), "tags[]"), vec![json!("t1"), json!("t2")]);
        assert_eq!(values(p, "missing"), Vec::<Value>::new());
    }
}
