//! Vectors as JSON sends them, read straight into `f32`s.
//!
//! A dense vector is most of a request's bytes: a 384-dimensional query is 384 numbers, an
//! upsert of 1,000 such points 384,000. Read into a `serde_json::Value` first, each number
//! became a node of its own (and an untagged enum buffered each one again before choosing
//! a variant); a profile of the query route under load showed that parsing and the
//! allocations it made cost about a fifth of a request. Here a flat list of numbers goes
//! into a `Vec<f32>` as it is read, and only other shapes (named vectors, multivectors,
//! sparse vectors, query objects) are kept as a `Value` for the parsers that read them.
//!
//! A number becomes an `f32` as serde's own `f32` does (`as f32`: out of range is
//! infinite, which the vector checks refuse by name later).

use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The visitor methods of every JSON value that is not a list or a map: kept as JSON.
macro_rules! scalars_as_value {
    ($wrap:path) => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok($wrap(Value::Bool(v)))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok($wrap(Value::from(v)))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok($wrap(Value::from(v)))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok($wrap(Value::from(v)))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok($wrap(Value::String(v.to_owned())))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok($wrap(Value::String(v)))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($wrap(Value::Null))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($wrap(Value::Null))
        }
    };
}

/// A vector as sent: a plain list of numbers (read as `f32`s), or anything else as JSON
/// (a map of names to vectors, a list of lists for a multivector, ...).
#[derive(Debug)]
pub enum VectorInput {
    Dense(Vec<f32>),
    Other(Value),
}

/// A query as sent: a plain list of numbers or `{"nearest": <list of numbers>}` (the same
/// query, as Qdrant's clients send it) read as `f32`s; any other query as JSON.
#[derive(Debug)]
pub enum QueryInput {
    Dense(Vec<f32>),
    Other(Value),
}

impl QueryInput {
    /// The query as JSON, unless it is a dense vector.
    pub fn as_value(&self) -> Option<&Value> {
        match self {
            QueryInput::Dense(_) => None,
            QueryInput::Other(v) => Some(v),
        }
    }
}

impl From<Value> for QueryInput {
    fn from(v: Value) -> Self {
        QueryInput::Other(v)
    }
}

impl<'de> Deserialize<'de> for VectorInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(VectorVisitor)
    }
}

impl<'de> Deserialize<'de> for QueryInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(QueryVisitor)
    }
}

struct VectorVisitor;

impl<'de> Visitor<'de> for VectorVisitor {
    type Value = VectorInput;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a vector")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<VectorInput, A::Error> {
        Ok(match numbers(seq)? {
            Ok(v) => VectorInput::Dense(v),
            Err(other) => VectorInput::Other(other),
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<VectorInput, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(VectorInput::Other)
    }

    scalars_as_value!(VectorInput::Other);
}

struct QueryVisitor;

impl<'de> Visitor<'de> for QueryVisitor {
    type Value = QueryInput;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a query")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<QueryInput, A::Error> {
        Ok(match numbers(seq)? {
            Ok(v) => QueryInput::Dense(v),
            Err(other) => QueryInput::Other(other),
        })
    }

    /// Only `nearest` is read as a vector; every other key's value is kept as sent (a
    /// sparse vector's `indices`, say, must not pass through `f32`).
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<QueryInput, A::Error> {
        let mut out = Map::new();
        let mut nearest = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "nearest" {
                match map.next_value::<VectorInput>()? {
                    VectorInput::Dense(v) => nearest = Some(v),
                    VectorInput::Other(v) => {
                        out.insert(key, v);
                    }
                }
            } else {
                let v = map.next_value::<Value>()?;
                out.insert(key, v);
            }
        }
        Ok(match nearest {
            Some(v) if out.is_empty() => QueryInput::Dense(v),
            Some(v) => {
                // `nearest` beside other keys (`mmr`): those parsers read JSON. The `f32`s
                // go back as the same values (an `f32` is exact as an `f64`).
                out.insert("nearest".into(), Value::Array(v.into_iter().map(Value::from).collect()));
                QueryInput::Other(Value::Object(out))
            }
            None => QueryInput::Other(Value::Object(out)),
        })
    }

    scalars_as_value!(QueryInput::Other);
}

/// The elements of a list: `Ok` with the numbers as `f32`s when all of them are numbers,
/// else `Err` with the list as JSON.
fn numbers<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Result<Vec<f32>, Value>, A::Error> {
    let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
    while let Some(Element(e)) = seq.next_element::<Element>()? {
        match e {
            Ok(x) => out.push(x),
            Err(first) => {
                // Not a flat list of numbers (a multivector, or a mistake the parsers name).
                let mut list: Vec<Value> = out.into_iter().map(Value::from).collect();
                list.push(first);
                while let Some(Element(e)) = seq.next_element::<Element>()? {
                    list.push(e.map_or_else(|v| v, Value::from));
                }
                return Ok(Err(Value::Array(list)));
            }
        }
    }
    Ok(Ok(out))
}

/// One element of a list: a number as `f32`, or any other value as JSON.
struct Element(Result<f32, Value>);

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Element, E> {
        Ok(Element(Ok(v as f32)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Element, E> {
        Ok(Element(Ok(v as f32)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Element, E> {
        Ok(Element(Ok(v as f32)))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Element, E> {
        Ok(Element(Err(Value::Bool(v))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Element, E> {
        Ok(Element(Err(Value::String(v.to_string()))))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Element, E> {
        Ok(Element(Err(Value::Null)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Element, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(|v| Element(Err(v)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Element, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(|v| Element(Err(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vector(s: &str) -> VectorInput {
        serde_json::from_str(s).expect("valid JSON")
    }

    fn query(s: &str) -> QueryInput {
        serde_json::from_str(s).expect("valid JSON")
    }

    #[test]
    fn flat_lists_of_numbers_are_read_as_f32s() {
        assert!(matches!(vector("[1, -2.5, 3e-3, 0]"), VectorInput::Dense(v) if v == [1.0, -2.5, 3e-3, 0.0]));
        assert!(matches!(vector("[]"), VectorInput::Dense(v) if v.is_empty()));
        // Out of f32's range is infinite, as serde's own f32 makes it (refused later, by name).
        assert!(matches!(vector("[1e39]"), VectorInput::Dense(v) if v[0].is_infinite()));
        assert!(matches!(query("[0.5, 1]"), QueryInput::Dense(v) if v == [0.5, 1.0]));
        assert!(matches!(query(r#"{"nearest": [0.5, 1]}"#), QueryInput::Dense(v) if v == [0.5, 1.0]));
    }

    #[test]
    fn other_shapes_are_kept_as_sent() {
        let VectorInput::Other(v) = vector("[[1, 2], [3, 4]]") else { panic!("a multivector is JSON") };
        assert_eq!(v, json!([[1, 2], [3, 4]]));
        let VectorInput::Other(v) = vector(r#"[1, "a", null, {"b": 1}]"#) else { panic!("a mixed list is JSON") };
        assert_eq!(v, json!([1.0, "a", null, {"b": 1}]));
        let VectorInput::Other(v) = vector(r#"{"text": [1, 2], "sparse": {"indices": [4294967295], "values": [1]}}"#)
        else {
            panic!("named vectors are JSON")
        };
        assert_eq!(v["sparse"]["indices"], json!([4294967295u64]), "indices are not read through f32");
        // A sparse query keeps its indices exact; only `nearest` is read as numbers.
        let QueryInput::Other(v) = query(r#"{"indices": [16777217], "values": [0.5]}"#) else { panic!() };
        assert_eq!(v, json!({"indices": [16777217], "values": [0.5]}));
        let QueryInput::Other(v) = query(r#"{"nearest": [0.5, 1], "mmr": {"diversity": 0.2}}"#) else { panic!() };
        assert_eq!(v, json!({"nearest": [0.5, 1.0], "mmr": {"diversity": 0.2}}));
        let QueryInput::Other(v) = query(r#"{"nearest": [[1, 2]]}"#) else { panic!() };
        assert_eq!(v, json!({"nearest": [[1, 2]]}));
        for (s, want) in [("7", json!(7)), (r#""5a3f""#, json!("5a3f")), ("true", json!(true))] {
            let QueryInput::Other(v) = query(s) else { panic!("{s}") };
            assert_eq!(v, want);
        }
        let q: Option<QueryInput> = serde_json::from_str("null").expect("valid JSON");
        assert!(q.is_none());
    }
}
