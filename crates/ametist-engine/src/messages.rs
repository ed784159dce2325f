//! The partition protocol: the design note's message types and their replies.
//!
//! Every type here is serde-serialisable, because a partition on another node is reached
//! with the same messages over the network. Ids are [`PointId`]s (unsigned integers or
//! strings) and metadata is a JSON [`Payload`]; the note's `Hash(String, String)` is the
//! special case of a payload whose values are all strings.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use ametist_core::filter::Filter;
use ametist_core::hnsw::CodeUse;
use ametist_core::payload_index::FieldType;
use ametist_core::sparse::{SparseStats, SparseVector};
use ametist_core::text::{CorpusStats, TextIndexConfig};
use ametist_core::{Payload, PointId};

use crate::error::EngineError;

/// Where a partition sends its answer. A dropped reply means the partition failed while
/// handling the message.
pub type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

/// Nearest-neighbour search in a collection or one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    pub query_vector: Vec<f32>,
    /// How many hits to return (after `offset`).
    pub k: usize,
    pub request_id: String,
    #[serde(default)]
    pub offset: usize,
    #[serde(default)]
    pub with_payload: bool,
    #[serde(default)]
    pub with_vector: bool,
    /// Only hits at least this good: a minimum score for cosine and dot, a maximum
    /// distance for euclid and manhattan (as in Qdrant).
    #[serde(default)]
    pub score_threshold: Option<f32>,
    /// Beam width of the graph walk; `None` takes the collection's `ef_search`.
    #[serde(default)]
    pub ef: Option<usize>,
    /// Exact scan instead of the index.
    #[serde(default)]
    pub exact: bool,
    /// Only points whose id and payload match.
    #[serde(default)]
    pub filter: Option<Filter>,
    /// The named dense vector to search; empty for the unnamed one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub using: String,
    /// How the walk uses the index's codes, when it has them (Qdrant's
    /// `params.quantization`).
    #[serde(default, skip_serializing_if = "QuantizationParams::is_default")]
    pub quantization: QuantizationParams,
    /// Score by examples instead of by the distance to `query_vector` (which is then
    /// empty): recommend `best_score` / `sum_scores`, discover and context queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples: Option<ExampleQuery>,
}

/// A query scored by example vectors rather than by the distance to one vector (Qdrant's
/// recommend `best_score` and `sum_scores` strategies, discover and context queries).
/// Every point of the field that passes the filter is scored exactly, as Qdrant's local
/// mode does; a higher score is better whatever the metric. The coordinator prepares the
/// vectors (normalised for cosine); the formulas are in `scoring.rs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExampleQuery {
    BestScore { positive: Vec<Vec<f32>>, negative: Vec<Vec<f32>> },
    SumScores { positive: Vec<Vec<f32>>, negative: Vec<Vec<f32>> },
    Discover { target: Vec<f32>, pairs: Vec<ContextPair> },
    Context { pairs: Vec<ContextPair> },
}

/// A pair of a discover or context query: points nearer `positive` than `negative` rank higher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextPair {
    pub positive: Vec<f32>,
    pub negative: Vec<f32>,
}

impl ExampleQuery {
    /// Every vector the query holds, to prepare or check them in one place.
    pub fn vectors_mut(&mut self) -> Vec<&mut Vec<f32>> {
        match self {
            ExampleQuery::BestScore { positive, negative } | ExampleQuery::SumScores { positive, negative } => {
                positive.iter_mut().chain(negative.iter_mut()).collect()
            }
            ExampleQuery::Discover { target, pairs } => std::iter::once(target)
                .chain(pairs.iter_mut().flat_map(|p| [&mut p.positive, &mut p.negative]))
                .collect(),
            ExampleQuery::Context { pairs } => {
                pairs.iter_mut().flat_map(|p| [&mut p.positive, &mut p.negative]).collect()
            }
        }
    }
}

/// Qdrant's `params.quantization` for a search on an index with codes (`quantization:
/// int4`, `int8` or one of the binary ones). Acted on by graph walks only: an exact scan
/// reads the f32 vectors whatever these say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct QuantizationParams {
    /// Walk on the f32 vectors instead of the codes.
    #[serde(default)]
    pub ignore: bool,
    /// Re-score the walk's beam with the f32 vectors (unset: yes). With `false` the
    /// results are ordered and scored by the codes (see [`QuantizationParams::code_use`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescore: Option<bool>,
    /// Keep at least `oversampling × (offset + k)` candidates in the walk's beam, all of
    /// them re-scored (at least 1).
    #[serde(default)]
    pub oversampling: Option<f32>,
}

impl QuantizationParams {
    fn is_default(&self) -> bool {
        *self == QuantizationParams::default()
    }

    /// How a walk on an index with codes uses them. Without re-scoring, scores are the
    /// codes' own: approximate values of the metric for int4 and int8, and for binary codes
    /// the score between the codes read as vectors of `±1` (cosine `1 - 2h/n` for `h`
    /// differing bits out of `n`, dot `n - 2h`, euclid `2√h`, manhattan `2h`).
    pub fn code_use(&self) -> CodeUse {
        match (self.ignore, self.rescore) {
            (true, _) => CodeUse::Ignore,
            (false, Some(false)) => CodeUse::CodeDistances,
            (false, _) => CodeUse::Rescore,
        }
    }
}

impl SearchRequest {
    pub fn new(query_vector: Vec<f32>, k: usize) -> Self {
        SearchRequest {
            query_vector,
            k,
            request_id: String::new(),
            offset: 0,
            with_payload: false,
            with_vector: false,
            score_threshold: None,
            ef: None,
            exact: false,
            filter: None,
            using: String::new(),
            quantization: QuantizationParams::default(),
            examples: None,
        }
    }
}

/// The answer to a collection search: best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    pub request_id: String,
    pub results: Vec<ScoredDoc>,
    /// Partitions that did not contribute (failed, stopped or past the deadline). Empty for
    /// a complete answer; see [`crate::config::EngineConfig::allow_partial_results`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_partitions: Vec<MissingPartition>,
}

impl SearchResult {
    /// True when some partition's hits are missing from `results`.
    pub fn is_partial(&self) -> bool {
        !self.missing_partitions.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissingPartition {
    pub partition: usize,
    pub reason: String,
}

/// One hit: id, score as Qdrant reports it, and what the request asked to see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredDoc {
    pub id: PointId,
    /// The partition's operation number that last wrote this point.
    pub version: u64,
    pub score: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    /// The point's vectors (every field it has), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vectors: Option<NamedVectors>,
}

impl ScoredDoc {
    /// The unnamed vector, when it was asked for and the point has it.
    pub fn vector(&self) -> Option<&[f32]> {
        self.vectors.as_ref().and_then(NamedVectors::unnamed_vector)
    }
}

/// A stored point as `get` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: PointId,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    /// The point's vectors (every field it has), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vectors: Option<NamedVectors>,
    /// The value the point was ordered by, for a scroll with [`ScrollRequest::order`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_value: Option<serde_json::Number>,
}

/// The name of the unnamed dense vector: in Qdrant's model, and in Ametist's, it is the
/// dense field called `""`, stored, searched and logged like every other field.
pub const UNNAMED: &str = "";

/// A point's vectors by field: dense ones by name (the unnamed vector under [`UNNAMED`]),
/// sparse ones by name. A point may carry any subset of its collection's fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedVectors {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dense: BTreeMap<String, Vec<f32>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sparse: BTreeMap<String, SparseVector>,
}

impl NamedVectors {
    /// Only the unnamed vector.
    pub fn unnamed(vector: Vec<f32>) -> Self {
        NamedVectors { dense: BTreeMap::from([(UNNAMED.to_string(), vector)]), sparse: BTreeMap::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.dense.is_empty() && self.sparse.is_empty()
    }

    /// The unnamed vector, when the point has it.
    pub fn unnamed_vector(&self) -> Option<&[f32]> {
        self.dense.get(UNNAMED).map(Vec::as_slice)
    }

    /// Gives these vectors over `other`'s, field by field.
    pub fn extend(&mut self, other: NamedVectors) {
        self.dense.extend(other.dense);
        self.sparse.extend(other.sparse);
    }

    /// Removes the fields `names`, dense or sparse.
    pub fn remove_names(&mut self, names: &[String]) {
        for n in names {
            self.dense.remove(n);
            self.sparse.remove(n);
        }
    }
}

impl From<Vec<f32>> for NamedVectors {
    fn from(vector: Vec<f32>) -> Self {
        NamedVectors::unnamed(vector)
    }
}

/// Inserts a point, or replaces every vector and the payload of an existing point (an
/// upsert): the point has exactly the fields `vectors` holds afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsertVector {
    pub id: PointId,
    #[serde(default)]
    pub vectors: NamedVectors,
    #[serde(default, alias = "payload")]
    pub metadata: Option<Payload>,
}

impl InsertVector {
    /// A point with only the unnamed vector.
    pub fn new(id: PointId, vector: Vec<f32>, metadata: Option<Payload>) -> Self {
        InsertVector { id, vectors: NamedVectors::unnamed(vector), metadata }
    }
}

/// Removes a point; removing an absent id is not an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteVector {
    pub id: PointId,
}

/// Replaces the fields `vectors` holds of an existing point and keeps its other fields and
/// its payload. The point must exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateVector {
    pub id: PointId,
    pub vectors: NamedVectors,
}

impl Record {
    /// The unnamed vector, when it was asked for and the point has it.
    pub fn vector(&self) -> Option<&[f32]> {
        self.vectors.as_ref().and_then(NamedVectors::unnamed_vector)
    }
}

/// One write, as routed to the partition that owns its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WriteOp {
    Insert(InsertVector),
    Delete(DeleteVector),
    Update(UpdateVector),
    /// Removes the fields `names` from an existing point (absent ones are ignored).
    DeleteVectors {
        id: PointId,
        names: Vec<String>,
    },
    /// Sets the given keys of an existing point's payload, keeping the others.
    SetPayload {
        id: PointId,
        payload: Payload,
    },
    /// Replaces an existing point's whole payload.
    OverwritePayload {
        id: PointId,
        payload: Payload,
    },
    /// Removes the given keys from an existing point's payload.
    DeletePayload {
        id: PointId,
        keys: Vec<String>,
    },
    /// Removes an existing point's whole payload.
    ClearPayload {
        id: PointId,
    },
    /// Applies `action` to every point of the partition that matches `filter`. Sent to
    /// every partition; each one expands it into per-id ops before recording them, so
    /// that a replay of the record does not depend on the state it is replayed onto.
    ByFilter {
        filter: Filter,
        action: FilterAction,
    },
    /// `op` (an insert or a vector update) if its point meets `when` at the moment the
    /// partition that owns it applies the batch (Qdrant's `update_mode` and
    /// `update_filter`). Like [`WriteOp::ByFilter`], the partition resolves it before
    /// recording the batch: the log holds `op` or nothing, never the condition (see
    /// `Partition::resolve`).
    Conditional {
        when: WriteCondition,
        op: Box<WriteOp>,
    },
}

/// Qdrant's `update_mode`: which points an upsert may write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateMode {
    /// Insert new points and replace existing ones.
    #[default]
    Upsert,
    /// Insert new points; leave existing ones as they are.
    InsertOnly,
    /// Replace existing points; insert nothing.
    UpdateOnly,
}

/// When a [`WriteOp::Conditional`] applies, judged against the point as the batch finds
/// it (earlier ops of the same batch included).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WriteCondition {
    #[serde(default)]
    pub mode: UpdateMode,
    /// An existing point is written only if it matches (its id, payload and vectors);
    /// an absent one is not judged by it (Qdrant's `update_filter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
}

impl WriteCondition {
    /// Whether the op applies to a point that exists (`Some`, with `matches` saying whether
    /// it passes the filter) or not (`None`).
    pub fn admits(&self, existing: Option<&dyn Fn(&Filter) -> bool>) -> bool {
        match existing {
            None => self.mode != UpdateMode::UpdateOnly,
            Some(matches) => self.mode != UpdateMode::InsertOnly && self.filter.as_ref().is_none_or(matches),
        }
    }

    /// True when the condition admits every write (plain upsert, no filter).
    pub fn is_always(&self) -> bool {
        self.mode == UpdateMode::Upsert && self.filter.is_none()
    }
}

/// What a [`WriteOp::ByFilter`] does to each matching point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FilterAction {
    Delete,
    SetPayload(Payload),
    OverwritePayload(Payload),
    DeletePayload(Vec<String>),
    ClearPayload,
    /// Removes these named vectors (absent ones are ignored).
    DeleteVectors(Vec<String>),
}

impl WriteOp {
    /// The point this op writes; `None` for ops that apply to every partition.
    pub fn id(&self) -> Option<&PointId> {
        match self {
            WriteOp::Insert(p) => Some(&p.id),
            WriteOp::Delete(d) => Some(&d.id),
            WriteOp::Update(u) => Some(&u.id),
            WriteOp::DeleteVectors { id, .. } => Some(id),
            WriteOp::SetPayload { id, .. }
            | WriteOp::OverwritePayload { id, .. }
            | WriteOp::DeletePayload { id, .. }
            | WriteOp::ClearPayload { id } => Some(id),
            WriteOp::ByFilter { .. } => None,
            WriteOp::Conditional { op, .. } => op.id(),
        }
    }

    /// True for ops that change only the payload of a point that must exist.
    pub fn is_payload_op(&self) -> bool {
        matches!(
            self,
            WriteOp::SetPayload { .. }
                | WriteOp::OverwritePayload { .. }
                | WriteOp::DeletePayload { .. }
                | WriteOp::ClearPayload { .. }
        )
    }

    /// Applies a payload op to a payload. Shared by the partition and its stores so that
    /// both give the same answer.
    pub fn apply_to_payload(&self, payload: &mut Option<Payload>) {
        match self {
            WriteOp::SetPayload { payload: p, .. } => {
                let target = payload.get_or_insert_with(Payload::new);
                for (k, v) in p {
                    target.insert(k.clone(), v.clone());
                }
            }
            WriteOp::OverwritePayload { payload: p, .. } => *payload = Some(p.clone()),
            WriteOp::DeletePayload { keys, .. } => {
                if let Some(target) = payload.as_mut() {
                    for k in keys {
                        target.remove(k);
                    }
                }
            }
            WriteOp::ClearPayload { .. } => *payload = None,
            _ => {}
        }
    }
}

/// A BM25 search of one partition's text index, scored with collection-wide statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextSearchRequest {
    pub field: String,
    /// The query, already tokenized with the field's tokenizer.
    pub terms: Vec<String>,
    /// Statistics summed over every partition.
    pub global: CorpusStats,
    pub k: usize,
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub with_payload: bool,
    #[serde(default)]
    pub with_vector: bool,
}

/// A sparse vector search of one partition; with the idf modifier `global` holds the
/// collection-wide statistics of the query's dimensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparseSearchRequest {
    /// The named sparse vector to search.
    pub name: String,
    pub query: SparseVector,
    #[serde(default)]
    pub global: SparseStats,
    pub k: usize,
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub with_payload: bool,
    #[serde(default)]
    pub with_vector: bool,
}

/// Points in id order, for paging through a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrollRequest {
    #[serde(default)]
    pub filter: Option<Filter>,
    /// The first id to return (inclusive), as given by the previous page's next offset.
    #[serde(default)]
    pub offset: Option<PointId>,
    pub limit: usize,
    #[serde(default)]
    pub with_payload: bool,
    #[serde(default)]
    pub with_vector: bool,
    /// Another order than the id's: by a payload value, or random. `offset` is then unused
    /// and every partition returns its first `limit` in that order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<ScrollOrder>,
}

/// The order of a scroll other than by id (see `scoring.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScrollOrder {
    /// By the numbers (or datetimes, as microseconds since the epoch) at payload `key`; a
    /// point with several values comes once per distinct value. Ties go by id.
    Payload { key: String, descending: bool, start_from: Option<f64> },
    /// A uniform random sample: each point's place is a hash of its id and `seed`.
    Random { seed: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteAck {
    /// The highest operation number the write produced in any partition it touched.
    pub operation_id: u64,
    /// True when the write was applied before the answer (`wait`), false when it was only
    /// accepted into the partitions' mailboxes.
    pub completed: bool,
}

/// Rebuilds a partition's index from its live points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildIndex;

/// A named dense vector's index in a partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NamedIndexStats {
    /// Points with this vector.
    pub points: usize,
    /// What the graph walk reads.
    pub quantization: ametist_core::hnsw::Quantization,
    /// The lowest and the highest value the codes tell apart, once trained.
    pub code_range: Option<(f32, f32)>,
}

/// What a partition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IndexStats {
    /// Live points.
    pub doc_count: usize,
    /// The last operation applied (the LSN of its log record in a durable partition).
    #[serde(default)]
    pub version: u64,
    /// Bytes held by vectors and index structures.
    pub index_size: u64,
    /// Deleted slots not yet reused.
    pub deleted: usize,
    /// Levels of the graph (0 for an exact-scan partition).
    pub levels: usize,
    /// What the graph walk reads (`none`: the f32 vectors; `int4`, `int8`, `binary`...: codes).
    #[serde(default)]
    pub quantization: ametist_core::hnsw::Quantization,
    /// The lowest and the highest value the codes tell apart, once trained (set by
    /// `quantile`).
    #[serde(default)]
    pub code_range: Option<(f32, f32)>,
    /// The index of each named dense vector.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vectors: std::collections::BTreeMap<String, NamedIndexStats>,
    /// Indexed payload fields: key, type, and how many points have a value there.
    #[serde(default)]
    pub payload_fields: Vec<(String, FieldType, usize)>,
    /// Full-text indexed fields: key and how many points are indexed there.
    #[serde(default)]
    pub text_fields: Vec<(String, usize)>,
}

/// Writes the partition's image (points, payloads, index graph and vectors, checksummed; the
/// format of durable snapshots, see `codec`) to a file at `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSnapshot {
    pub path: String,
}

/// Replaces the partition's points with those of an image file at `path` (written by
/// [`PartitionSnapshot`]); the file is validated completely before anything changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRestore {
    pub path: String,
}

/// A write as the primary logged it: the operations after filter expansion, at `lsn`
/// (`None` when the batch changed nothing and logged no record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedWrite {
    pub ack: WriteAck,
    pub lsn: Option<u64>,
    pub ops: Vec<WriteOp>,
}

/// What a copy of a partition holds, in a few bytes: two copies with equal digests hold the
/// same ids, versions, payloads and vectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDigest {
    /// The last operation applied.
    pub version: u64,
    pub points: usize,
    /// FNV-1a (64 bits, hex) over every point in id order: its id, version, payload and
    /// vectors as JSON (payload keys sorted).
    pub digest: String,
}

/// A record shipped from a primary to a replica. The replica appends it exactly at `lsn`:
/// a record at or below the copy's version is one it already has (answered as applied), a
/// record past `version + 1` would leave a gap and is refused, so a copy never holds a
/// record without every record before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Append {
    pub lsn: u64,
    pub ops: Vec<WriteOp>,
}

/// Replaces a replica's state with a primary's partition image at `path` (written by
/// [`PartitionSnapshot`]). Unlike a restore, which is a new write on top of the log, the copy
/// takes the image's version: its old log and snapshots are dropped first, so that records
/// the copy held beyond the primary's (an unacknowledged tail) can never come back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInstall {
    pub path: String,
}

/// Faults a test or an operator can inject to exercise supervision and timeouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Fault {
    /// The actor panics while handling this message.
    Panic(String),
    /// The actor stops answering for this long (as if stuck in a long computation).
    Stall(#[serde(with = "humantime_serde")] Duration),
}

/// Everything a partition actor understands.
#[derive(Debug)]
pub enum PartitionMsg {
    Search(SearchRequest, Reply<Vec<ScoredDoc>>),
    Write(Vec<WriteOp>, Reply<WriteAck>),
    Get {
        ids: Vec<PointId>,
        with_payload: bool,
        with_vector: bool,
        reply: Reply<Vec<Record>>,
    },
    /// Up to `limit` points in id order from `offset`.
    Scroll(ScrollRequest, Reply<Vec<Record>>),
    /// Points matching the filter (all points without one).
    Count(Option<Filter>, Reply<usize>),
    /// Indexes a payload field (replacing an index of another type).
    CreateFieldIndex {
        key: String,
        kind: FieldType,
        reply: Reply<()>,
    },
    /// Stops indexing a payload field (a value or a text index).
    DropFieldIndex {
        key: String,
        reply: Reply<()>,
    },
    /// Builds a full-text (BM25) index over the strings at a payload key.
    CreateTextIndex {
        key: String,
        config: TextIndexConfig,
        reply: Reply<()>,
    },
    /// This partition's BM25 statistics for the query terms (phase one of a text search).
    TextStats {
        field: String,
        terms: Vec<String>,
        reply: Reply<CorpusStats>,
    },
    /// BM25 top-k with collection-wide statistics (phase two).
    TextSearch(TextSearchRequest, Reply<Vec<ScoredDoc>>),
    /// This partition's idf statistics of a sparse query's dimensions (phase one of a
    /// sparse search with the idf modifier).
    SparseStats {
        name: String,
        query: SparseVector,
        reply: Reply<SparseStats>,
    },
    /// Sparse dot-product top-k (phase two).
    SparseSearch(SparseSearchRequest, Reply<Vec<ScoredDoc>>),
    RebuildIndex(RebuildIndex, Reply<IndexStats>),
    Stats(Reply<IndexStats>),
    Snapshot(PartitionSnapshot, Reply<IndexStats>),
    Restore(PartitionRestore, Reply<IndexStats>),
    /// A write on a primary copy: as `Write`, and the answer also carries the record as
    /// logged (filter operations expanded), which the primary ships to its replicas.
    WriteLogged(Vec<WriteOp>, Reply<LoggedWrite>),
    /// A fingerprint of the copy's points (see [`PartitionDigest`]).
    Digest(Reply<PartitionDigest>),
    /// The records the log holds after operation `after` up to the last one, for a replica
    /// that fell behind; `None` when the log no longer holds all of them (a snapshot
    /// truncated it, or the store keeps no log).
    ReadLog {
        after: u64,
        reply: Reply<Option<Vec<Append>>>,
    },
    /// A record shipped by the primary: appended exactly at `lsn` (see [`Append`]).
    Append(Append, Reply<WriteAck>),
    /// Replaces the copy with a primary's image and takes the image's version as its own
    /// (see [`PartitionInstall`]).
    Install(PartitionInstall, Reply<IndexStats>),
    Fault(Fault),
    /// A periodic wake-up from the coordinator: the partition checks whether a snapshot is
    /// due (by time) even when no write arrives.
    Tick,
    /// Finish the messages before this one, then stop the actor.
    Stop,
}

impl PartitionMsg {
    /// Messages that only read the partition's state. A running partition answers them on
    /// the search pool, several at once (see `read_pool`).
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            PartitionMsg::Search(..)
                | PartitionMsg::Get { .. }
                | PartitionMsg::Scroll(..)
                | PartitionMsg::Count(..)
                | PartitionMsg::TextStats { .. }
                | PartitionMsg::TextSearch(..)
                | PartitionMsg::SparseStats { .. }
                | PartitionMsg::SparseSearch(..)
                | PartitionMsg::Stats(..)
                | PartitionMsg::Digest(..)
        )
    }

    /// Answers the message with `err` without handling it (messages without a reply are
    /// dropped).
    pub fn fail(self, err: EngineError) {
        match self {
            PartitionMsg::Search(_, r) | PartitionMsg::TextSearch(_, r) => drop(r.send(Err(err))),
            PartitionMsg::Write(_, r) | PartitionMsg::Append(_, r) => drop(r.send(Err(err))),
            PartitionMsg::WriteLogged(_, r) => drop(r.send(Err(err))),
            PartitionMsg::Digest(r) => drop(r.send(Err(err))),
            PartitionMsg::ReadLog { reply, .. } => drop(reply.send(Err(err))),
            PartitionMsg::Get { reply, .. } | PartitionMsg::Scroll(_, reply) => drop(reply.send(Err(err))),
            PartitionMsg::Count(_, r) => drop(r.send(Err(err))),
            PartitionMsg::CreateFieldIndex { reply, .. }
            | PartitionMsg::DropFieldIndex { reply, .. }
            | PartitionMsg::CreateTextIndex { reply, .. } => drop(reply.send(Err(err))),
            PartitionMsg::TextStats { reply, .. } => drop(reply.send(Err(err))),
            PartitionMsg::SparseStats { reply, .. } => drop(reply.send(Err(err))),
            PartitionMsg::SparseSearch(_, r) => drop(r.send(Err(err))),
            PartitionMsg::RebuildIndex(_, r)
            | PartitionMsg::Stats(r)
            | PartitionMsg::Snapshot(_, r)
            | PartitionMsg::Restore(_, r)
            | PartitionMsg::Install(_, r) => drop(r.send(Err(err))),
            PartitionMsg::Fault(_) | PartitionMsg::Tick | PartitionMsg::Stop => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Qdrant's `params.quantization` as the walk sees it: `ignore` wins; `rescore` is on
    /// unless set to false; requests written before `rescore` existed read back the same.
    #[test]
    fn quantization_params_choose_the_code_use() {
        let p = |ignore, rescore| QuantizationParams { ignore, rescore, oversampling: None };
        assert_eq!(QuantizationParams::default().code_use(), CodeUse::Rescore);
        assert_eq!(p(false, Some(true)).code_use(), CodeUse::Rescore);
        assert_eq!(p(false, Some(false)).code_use(), CodeUse::CodeDistances);
        assert_eq!(p(true, Some(false)).code_use(), CodeUse::Ignore);
        assert_eq!(p(true, None).code_use(), CodeUse::Ignore);
        let old: QuantizationParams =
            serde_json::from_str(r#"{"ignore":false,"oversampling":2.0}"#).expect("the older shape still parses");
        assert_eq!(old, QuantizationParams { ignore: false, rescore: None, oversampling: Some(2.0) });
        let json = serde_json::to_string(&QuantizationParams::default()).expect("serialises");
        assert!(!json.contains("rescore"), "unset rescore is left out: {json}");
    }
}
