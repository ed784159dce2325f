//! Ametist's synchronous core: everything a partition computes, nothing it waits for.
//!
//! This crate never does I/O and never touches an async runtime; the engine calls it from
//! the partition actors' threads. Map of the crate:
//!
//! * [`ids`]: point ids as clients send them (unsigned integers or strings, UUIDs
//!   canonicalised) and the stable hash that routes an id to its partition.
//! * [`distance`]: the metrics (cosine, dot, euclid, manhattan), their kernels and the
//!   rule that turns an internal distance into the score a client sees.
//! * [`vector`]: validation of incoming vectors (dimension, finite values) and
//!   normalisation for cosine.
//! * [`multivector`]: late-interaction fields (a list of vectors per point) and MaxSim.
//! * [`flat`]: exact top-k over a contiguous block of vectors, the reference every index
//!   is measured against.
//! * [`topk`]: the ordering of scored hits and the k-way merge the coordinator uses to
//!   combine partitions' answers.
//! * [`hnsw`]: the approximate nearest-neighbour graph each partition searches.
//! * [`ivf`]: the inverted-file index with fast-scan 4-bit codes and exact re-ranking, the
//!   faster choice at low dimension.
//! * [`filter`]: Qdrant-style payload filters and their evaluation.
//! * [`payload`]: the JSON payload attached to each point.
//! * [`payload_index`]: per-field value indexes that count and find the points a filter matches.
//! * [`text`]: full-text search (tokenizer, BM25 index with collection-wide stats, fusion) and [`sparse`] vectors.

pub mod distance;
pub mod error;
pub mod filter;
pub mod flat;
pub mod hnsw;
pub mod ids;
pub mod ivf;
pub mod multivector;
pub mod payload;
pub mod payload_index;
pub mod sparse;
pub mod text;
pub mod topk;
pub mod vector;

pub use distance::Metric;
pub use error::CoreError;
pub use ids::PointId;
pub use payload::Payload;
pub use topk::ScoredPoint;
