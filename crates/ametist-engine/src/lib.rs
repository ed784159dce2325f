//! Ametist's actor engine and its embedded API.
//!
//! Map of the crate, from the outside in:
//!
//! * [`db`]: [`Ametist`], the embedded database: open one, create collections, write, search;
//!   its aliases (`aliases.json`).
//! * [`spec`]: a collection's settings ([`spec::CollectionSpec`], and what may change while
//!   it runs: shard keys, strict mode, metadata, [`spec::CollectionSettings`]) and their
//!   file, `collection.json`.
//! * [`collection`]: the `CollectionActor`, which routes each write to a partition by a
//!   stable hash of the point id, scatters searches to every partition, merges their top-k
//!   and answers once, within a deadline.
//! * [`partition`]: the `PartitionActor`, which owns one shard's points, payloads and index
//!   and runs on a thread of its own, and [`partition::PartitionRef`], the stable handle
//!   callers hold across restarts.
//! * [`supervisor`]: the restart policy (`restart`/`stop`, at most N restarts within a
//!   window) applied when a partition panics or fails. A partition whose storage fails (a
//!   full disk) is not restarted: it turns read-only and retries its log by itself.
//! * [`store`]: where a partition's acknowledged writes live so that a restarted actor can
//!   rebuild its state before it takes messages, and a read-only one can roll back to them.
//! * [`vector_fields`]: a partition's vector fields: one HNSW index per dense field (the unnamed vector is the field `""`), one inverted index per sparse field.
//! * [`scoring`]: orders other than nearest-to-a-vector: example queries (recommend,
//!   discover, context) and scroll orders (a payload value, random), shared by the
//!   partitions and the coordinator's merge.
//! * [`full_snapshots`]: full-storage snapshots: every collection and the aliases in one
//!   file, and their restore into an empty database.
//! * [`messages`]: the partition protocol: the design note's message types plus their
//!   replies. A remote partition will speak the same messages.
//! * [`external`]: the seam through which partitions served elsewhere (other nodes)
//!   join a collection as ordinary partition handles.
//! * [`config`] and [`error`]: collection and engine settings; the engine's error enum.
//!
//! Threads: every partition actor runs on a dedicated OS thread, because its work
//! (applying writes, building the graph) is CPU-bound and would otherwise stall the async
//! runtime that serves requests. Read-only requests run concurrently under the partition
//! state's read lock on a small search pool, or on the calling thread (a long one after
//! handing the async worker over with `block_in_place`; see `PartitionPermit::send_here`). Coordinators (`CollectionActor`) are tokio tasks; they
//! never compute, they only route and wait.

pub mod codec;
pub mod collection;
pub mod config;
pub mod db;
pub mod error;
pub mod external;
pub mod full_snapshots;
pub mod messages;
pub mod partition;
mod read_pool;
pub mod scoring;
pub mod snapshots;
pub mod spec;
pub mod store;
pub mod supervisor;
pub mod vector_fields;

pub use config::{CollectionConfig, EngineConfig, RestartStrategy, SupervisionPolicy};
pub use db::{AliasAction, Ametist};
pub use error::EngineError;
pub use messages::{
    DeleteVector, IndexStats, InsertVector, PartitionRestore, PartitionSnapshot, RebuildIndex, ScoredDoc,
    SearchRequest, SearchResult, UpdateVector,
};
