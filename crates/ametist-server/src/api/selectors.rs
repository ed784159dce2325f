//! Qdrant's `with_payload` and `with_vector` selectors.
//!
//! `with_payload` is `true`, `false`, a list of keys to keep, `{"include": [..]}` or
//! `{"exclude": [..]}`; keys are dot paths into nested objects (`"meta.name"`). The engine
//! is asked for the whole payload and the selection is cut here, so a client never gets
//! keys it did not ask for.

use std::time::Instant;

use serde_json::{Map, Value};

use ametist_core::Payload;

use super::envelope::ApiError;

/// Which part of a payload an answer carries.
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadSelector {
    None,
    All,
    /// Only these paths (each a list of object keys).
    Include(Vec<Vec<String>>),
    /// Everything but these paths.
    Exclude(Vec<Vec<String>>),
}

impl PayloadSelector {
    /// Reads a `with_payload` value; `default` applies when it is absent or null.
    pub fn parse(v: &Option<Value>, default: bool, started: Instant) -> Result<Self, ApiError> {
        let bad = |what: String| {
            ApiError::bad_request(
                format!(
                    "Format error in JSON body: `with_payload` must be a boolean, a list of keys, \
                     {{\"include\": [..]}} or {{\"exclude\": [..]}}; {what}"
                ),
                started,
            )
        };
        let keys = |v: &Value| -> Result<Vec<Vec<String>>, ApiError> {
            let Value::Array(items) = v else { return Err(bad(format!("got {v}"))) };
            items
                .iter()
                .map(|k| match k {
                    Value::String(s) if !s.is_empty() => Ok(s.split('.').map(str::to_string).collect()),
                    other => Err(bad(format!("a key must be a non-empty string, got {other}"))),
                })
                .collect()
        };
        Ok(match v {
            None | Some(Value::Null) => {
                if default {
                    PayloadSelector::All
                } else {
                    PayloadSelector::None
                }
            }
            Some(Value::Bool(true)) => PayloadSelector::All,
            Some(Value::Bool(false)) => PayloadSelector::None,
            Some(list @ Value::Array(_)) => PayloadSelector::Include(keys(list)?),
            Some(Value::Object(m)) if m.len() == 1 && m.contains_key("include") => {
                PayloadSelector::Include(keys(&m["include"])?)
            }
            Some(Value::Object(m)) if m.len() == 1 && m.contains_key("exclude") => {
                PayloadSelector::Exclude(keys(&m["exclude"])?)
            }
            Some(other) => return Err(bad(format!("got {other}"))),
        })
    }

    /// Whether the engine must fetch payloads at all.
    pub fn wants_payload(&self) -> bool {
        !matches!(self, PayloadSelector::None)
    }

    /// The payload to answer with: `None` when no payload was asked for; an empty object
    /// for a point without payload (as Qdrant answers).
    pub fn apply(&self, payload: Option<Payload>) -> Option<Payload> {
        match self {
            PayloadSelector::None => None,
            PayloadSelector::All => Some(payload.unwrap_or_default()),
            PayloadSelector::Include(paths) => {
                let payload = payload.unwrap_or_default();
                let mut out = Map::new();
                for path in paths {
                    if let Some(v) = get_path(&payload, path) {
                        insert_path(&mut out, path, v.clone());
                    }
                }
                Some(out)
            }
            PayloadSelector::Exclude(paths) => {
                let mut payload = payload.unwrap_or_default();
                for path in paths {
                    remove_path(&mut payload, path);
                }
                Some(payload)
            }
        }
    }
}

fn get_path<'a>(map: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let v = map.get(first)?;
    if rest.is_empty() {
        return Some(v);
    }
    match v {
        Value::Object(inner) => get_path(inner, rest),
        _ => None,
    }
}

fn insert_path(map: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        map.insert(first.clone(), value);
        return;
    }
    let entry = map.entry(first.clone()).or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(inner) = entry {
        insert_path(inner, rest, value);
    }
}

fn remove_path(map: &mut Map<String, Value>, path: &[String]) {
    let Some((first, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        map.remove(first);
    } else if let Some(Value::Object(inner)) = map.get_mut(first) {
        remove_path(inner, rest);
    }
}

/// Reads a `with_vector` value: a boolean, or a list of vector names (`""` names the
/// unnamed vector); a list asks for vectors when it is not empty, and
/// [`with_vector_names`] tells which.
pub fn parse_with_vector(v: &Option<Value>, default: bool, started: Instant) -> Result<bool, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Array(names)) if names.iter().all(Value::is_string) => Ok(!names.is_empty()),
        Some(other) => Err(ApiError::bad_request(
            format!(
                "Format error in JSON body: `with_vector` must be a boolean or a list of vector names, got {other}"
            ),
            started,
        )),
    }
}

/// The vector names a `with_vector` list selects; `None` for booleans (all or nothing).
pub fn with_vector_names(v: &Option<Value>) -> Option<Vec<String>> {
    match v {
        Some(Value::Array(names)) => Some(names.iter().filter_map(|n| n.as_str().map(str::to_string)).collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload() -> Option<Payload> {
        Some(json!({"a": 1, "b": {"x": 2, "y": 3}, "c": [1, 2]}).as_object().unwrap().clone())
    }

    fn sel(v: Value) -> PayloadSelector {
        PayloadSelector::parse(&Some(v), false, Instant::now()).unwrap()
    }

    #[test]
    fn selectors_cut_payloads() {
        assert_eq!(sel(json!(false)).apply(payload()), None);
        assert_eq!(sel(json!(true)).apply(None), Some(Map::new()));
        assert_eq!(
            Value::Object(sel(json!(["a", "b.y", "zz"])).apply(payload()).unwrap()),
            json!({"a": 1, "b": {"y": 3}})
        );
        assert_eq!(Value::Object(sel(json!({"include": ["c"]})).apply(payload()).unwrap()), json!({"c": [1, 2]}));
        assert_eq!(
            Value::Object(sel(json!({"exclude": ["a", "b.x"]})).apply(payload()).unwrap()),
            json!({"b": {"y": 3}, "c": [1, 2]})
        );
        assert_eq!(PayloadSelector::parse(&None, true, Instant::now()).unwrap(), PayloadSelector::All);
        assert!(PayloadSelector::parse(&Some(json!(3)), true, Instant::now()).is_err());
        assert!(PayloadSelector::parse(&Some(json!([1])), true, Instant::now()).is_err());
        assert!(PayloadSelector::parse(&Some(json!({"only": []})), true, Instant::now()).is_err());
    }
}
