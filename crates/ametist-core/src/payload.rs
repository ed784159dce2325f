//! The payload attached to a point: an arbitrary JSON object.

/// A point's payload: a JSON object (Qdrant's payload model). Clients that think in
/// `Hash(String, String)` metadata send an object of strings, which is a special case.
pub type Payload = serde_json::Map<String, serde_json::Value>;
