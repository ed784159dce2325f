//! What travels between nodes: one protobuf envelope, with a serde-encoded body.
//!
//! The gRPC service has a single method, `Call(Envelope) -> Envelope`. The envelope names
//! what is asked (`kind`) and where (`collection`, `partition`); the body is the engine's
//! own message type as JSON. Partition messages change as the engine grows (named and
//! sparse vectors, new search options); carrying them as serde bodies means such a change
//! needs no `.proto` edit and no field-by-field mirror here: a new field of
//! `SearchRequest` simply travels. An older peer ignores fields it does not know (serde's
//! default), which also keeps rolling upgrades possible.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use ametist_core::filter::Filter;
use ametist_core::payload_index::FieldType;
use ametist_core::sparse::SparseVector;
use ametist_core::text::TextIndexConfig;
use ametist_core::PointId;
use ametist_engine::messages::{Append, Fault, ScrollRequest, SparseSearchRequest, TextSearchRequest, WriteOp};
use ametist_engine::{EngineError, PartitionRestore, PartitionSnapshot, SearchRequest};

/// The protobuf envelope of every call and answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    /// What is asked (see [`kind`]); on an answer, `ok` or `err`.
    #[prost(string, tag = "1")]
    pub kind: String,
    #[prost(string, tag = "2")]
    pub collection: String,
    #[prost(uint32, tag = "3")]
    pub partition: u32,
    /// JSON of the request or answer type that `kind` names.
    #[prost(bytes = "vec", tag = "4")]
    pub body: Vec<u8>,
    /// Raw bytes that would be wasteful as JSON (a partition image in transit).
    #[prost(bytes = "vec", tag = "5")]
    pub blob: Vec<u8>,
}

/// Values of [`Envelope::kind`].
pub mod kind {
    /// A [`super::PartitionCall`] for a partition this node owns.
    pub const PARTITION: &str = "partition";
    /// Raft RPCs (openraft's request types as bodies).
    pub const RAFT_APPEND: &str = "raft-append";
    pub const RAFT_VOTE: &str = "raft-vote";
    pub const RAFT_SNAPSHOT: &str = "raft-snapshot";
    /// A node asks to join the cluster ([`crate::node::JoinRequest`]); served by the leader.
    pub const JOIN: &str = "join";
    /// A metadata change ([`crate::raft::Command`]) to be proposed by the leader.
    pub const PROPOSE: &str = "propose";
    /// Liveness probe, used to place partitions on live nodes only.
    pub const PING: &str = "ping";
    /// The index of the last metadata change the member applied (asked of the leader by a
    /// starting node, which waits until it applied as much).
    pub const APPLIED: &str = "applied";
    /// The ids of the cluster's members as this member knows them (asked by a member being
    /// removed, which does not learn of its own removal).
    pub const MEMBERS: &str = "members";
    pub const OK: &str = "ok";
    pub const ERR: &str = "err";
}

/// The serialisable form of a partition message (`PartitionMsg` without its reply
/// channel, which stays on the calling node).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PartitionCall {
    Search(SearchRequest),
    Write(Vec<WriteOp>),
    Get {
        ids: Vec<PointId>,
        with_payload: bool,
        with_vector: bool,
    },
    Scroll(ScrollRequest),
    Count(Option<Filter>),
    CreateFieldIndex {
        key: String,
        kind: FieldType,
    },
    DropFieldIndex {
        key: String,
    },
    CreateTextIndex {
        key: String,
        config: TextIndexConfig,
    },
    TextStats {
        field: String,
        terms: Vec<String>,
    },
    TextSearch(TextSearchRequest),
    SparseStats {
        name: String,
        query: SparseVector,
    },
    SparseSearch(SparseSearchRequest),
    RebuildIndex,
    Stats,
    Snapshot(PartitionSnapshot),
    Restore(PartitionRestore),
    Fault(Fault),
    /// Records shipped by the primary at `term`, in LSN order; answered with the copy's
    /// version once they are durable.
    Replicate {
        term: u64,
        records: Vec<Append>,
    },
    /// The primary's image (in the envelope's blob) for a stale copy to take.
    Install {
        term: u64,
    },
    /// A stale copy on `node`, at `version`, asks its primary to bring it back in sync.
    Recover {
        node: u64,
        #[serde(default)]
        version: Option<u64>,
    },
    /// The fingerprint of this node's copy, in sync or not (to compare copies).
    Digest,
    /// This node's (primary) copy's image, in the answer's blob, with its statistics.
    Image,
}

/// An engine error as it crosses the network: its class survives, so the caller still
/// tells bad input from "retry" from "broken".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    pub class: ErrorClass,
    pub message: String,
    #[serde(default)]
    pub partition: Option<usize>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The point a write named that does not exist (a bad input that is a 404 to clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_point: Option<ametist_core::PointId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    BadInput,
    Overloaded,
    Unavailable,
    Timeout,
    ShuttingDown,
    Internal,
}

impl From<&EngineError> for WireError {
    fn from(e: &EngineError) -> Self {
        let (class, partition, timeout_ms) = match e {
            // On the owning node a missing collection means it has not yet applied the
            // cluster's metadata (or is being deleted): the caller may retry.
            EngineError::CollectionNotFound(_) => (ErrorClass::Unavailable, None, None),
            e if e.is_bad_input() => (ErrorClass::BadInput, None, None),
            EngineError::Overloaded(_) => (ErrorClass::Overloaded, None, None),
            EngineError::PartitionUnavailable { partition, .. } | EngineError::OutOfOrder { partition, .. } => {
                (ErrorClass::Unavailable, Some(*partition), None)
            }
            // A full disk on the owning node: retryable there as here.
            EngineError::StorageUnavailable { partition, .. } => (ErrorClass::Unavailable, *partition, None),
            EngineError::Timeout(d) => (ErrorClass::Timeout, None, Some(d.as_millis() as u64)),
            EngineError::ShuttingDown => (ErrorClass::ShuttingDown, None, None),
            _ => (ErrorClass::Internal, None, None),
        };
        let message = match e {
            EngineError::Overloaded(m) | EngineError::InvalidInput(m) | EngineError::Internal(m) => m.clone(),
            EngineError::PartitionUnavailable { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        let missing_point = match e {
            EngineError::PointNotFound(id) => Some(id.clone()),
            _ => None,
        };
        WireError { class, message, partition, timeout_ms, missing_point }
    }
}

impl WireError {
    /// Back to an engine error on the calling side. `partition` is the partition the call
    /// was for, named when the remote error did not name one.
    pub fn into_engine(self, partition: usize) -> EngineError {
        match self.class {
            ErrorClass::BadInput => match self.missing_point {
                Some(id) => EngineError::PointNotFound(id),
                None => EngineError::InvalidInput(self.message),
            },
            ErrorClass::Overloaded => EngineError::Overloaded(self.message),
            ErrorClass::Unavailable => EngineError::PartitionUnavailable {
                partition: self.partition.unwrap_or(partition),
                reason: self.message,
            },
            ErrorClass::Timeout => EngineError::Timeout(Duration::from_millis(self.timeout_ms.unwrap_or(0))),
            ErrorClass::ShuttingDown => EngineError::ShuttingDown,
            ErrorClass::Internal => EngineError::Internal(self.message),
        }
    }
}

/// An envelope carrying `body` as JSON.
pub fn envelope(kind: &str, collection: &str, partition: u32, body: &impl Serialize) -> Envelope {
    Envelope {
        kind: kind.to_string(),
        collection: collection.to_string(),
        partition,
        // Our own types always serialise (string keys, finite values checked at the edge).
        body: serde_json::to_vec(body).expect("engine messages serialise to JSON"),
        blob: Vec::new(),
    }
}

/// The answer envelope of a result.
pub fn answer<T: Serialize>(result: Result<T, WireError>) -> Envelope {
    match result {
        Ok(v) => envelope(kind::OK, "", 0, &v),
        Err(e) => envelope(kind::ERR, "", 0, &e),
    }
}

/// Decodes an answer envelope.
pub fn decode_answer<T: DeserializeOwned>(env: &Envelope) -> Result<Result<T, WireError>, serde_json::Error> {
    if env.kind == kind::ERR {
        Ok(Err(serde_json::from_slice(&env.body)?))
    } else {
        Ok(Ok(serde_json::from_slice(&env.body)?))
    }
}

/// The generated service and client (see `build.rs`).
pub mod grpc {
    include!(concat!(env!("OUT_DIR"), "/ametist.cluster.Node.rs"));
}
