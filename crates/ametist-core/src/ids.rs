//! Point ids as Qdrant clients send them: unsigned integers or strings.
//!
//! Strings that parse as a UUID (any of the usual spellings) are stored in the canonical
//! lowercase hyphenated form, as Qdrant returns them; other strings are kept verbatim.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::CoreError;

/// A point's id: an unsigned integer or a string.
///
/// Ordering puts all numbers before all strings; it only serves to break score ties
/// deterministically, so its exact shape is an implementation detail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PointId {
    Num(u64),
    Str(String),
}

impl PointId {
    /// Builds a string id, canonicalising UUIDs. Empty strings are rejected.
    pub fn from_string(s: &str) -> Result<PointId, CoreError> {
        if s.is_empty() {
            return Err(CoreError::InvalidId("the id must not be an empty string".into()));
        }
        match uuid::Uuid::try_parse(s) {
            Ok(u) => Ok(PointId::Str(u.hyphenated().to_string())),
            Err(_) => Ok(PointId::Str(s.to_owned())),
        }
    }

    /// A hash of the id that never changes between versions, builds or machines; it decides
    /// which partition holds the point, so changing it would strand stored data.
    /// FNV-1a over a one-byte type tag and the id's bytes.
    pub fn stable_hash(&self) -> u64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut h = OFFSET;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(PRIME);
            }
        };
        match self {
            PointId::Num(n) => {
                eat(&[0]);
                eat(&n.to_le_bytes());
            }
            PointId::Str(s) => {
                eat(&[1]);
                eat(s.as_bytes());
            }
        }
        h
    }

    /// The partition, out of `count`, that holds this id (jump consistent hash, so that a
    /// future change of partition count moves as few points as possible).
    pub fn partition(&self, count: usize) -> usize {
        assert!(count > 0, "a collection has at least one partition");
        jump_hash(self.stable_hash(), count as i64) as usize
    }
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Str(s) => write!(f, "{s}"),
        }
    }
}

impl From<u64> for PointId {
    fn from(n: u64) -> Self {
        PointId::Num(n)
    }
}

impl Serialize for PointId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PointId::Num(n) => s.serialize_u64(*n),
            PointId::Str(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for PointId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PointId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an unsigned integer or a string (such as a UUID)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PointId, E> {
                Ok(PointId::Num(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PointId, E> {
                u64::try_from(v)
                    .map(PointId::Num)
                    .map_err(|_| E::custom(format!("point id {v} is negative; ids are unsigned integers or strings")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<PointId, E> {
                Err(E::custom(format!("point id {v} is not an integer; ids are unsigned integers or strings")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PointId, E> {
                PointId::from_string(v).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Lamping and Veach's jump consistent hash.
fn jump_hash(mut key: u64, buckets: i64) -> i64 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b.wrapping_add(1) as f64) * ((1i64 << 31) as f64 / ((key >> 33).wrapping_add(1) as f64))) as i64;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_canonicalised() {
        let a = PointId::from_string("550E8400E29B41D4A716446655440000").unwrap();
        assert_eq!(a, PointId::Str("550e8400-e29b-41d4-a716-446655440000".into()));
        let b: PointId = serde_json::from_str("\"550e8400-e29b-41d4-a716-446655440000\"").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn ids_parse_from_json() {
        assert_eq!(serde_json::from_str::<PointId>("7").unwrap(), PointId::Num(7));
        assert_eq!(serde_json::from_str::<PointId>("\"doc-1\"").unwrap(), PointId::Str("doc-1".into()));
        assert!(serde_json::from_str::<PointId>("-1").is_err());
        assert!(serde_json::from_str::<PointId>("1.5").is_err());
        assert!(serde_json::from_str::<PointId>("\"\"").is_err());
        assert_eq!(serde_json::to_string(&PointId::Num(3)).unwrap(), "3");
    }

    #[test]
    fn routing_is_stable_and_spread() {
        // These values are part of the on-disk contract: a change here strands data.
        assert_eq!(PointId::Num(1).stable_hash(), PointId::Num(1).stable_hash());
        let mut counts = [0usize; 4];
        for i in 0..4000u64 {
            counts[PointId::Num(i).partition(4)] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "uneven spread {counts:?}");
        }
        for i in 0..100u64 {
            assert_eq!(PointId::Num(i).partition(1), 0);
        }
    }
}
