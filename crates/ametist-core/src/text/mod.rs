//! Full-text search: tokenizer, BM25 inverted index, and the fusion of ranked lists
//! (hybrid search, issue 6). Pure synchronous code; sparse vectors live in
//! [`crate::sparse`] and follow the same statistics pattern.
//!
//! # Design note for the engine: how a BM25 query flows
//!
//! BM25 needs corpus statistics: the number of documents `N`, the mean document length
//! `avgdl`, and for each query term the number of documents containing it `n(t)`. They
//! must be **collection-wide**, or the same document would score differently depending on
//! which partition it hashed to. Each partition owns one [`TextIndex`] per indexed text
//! field, keyed by the partition's slots. A query takes two round trips:
//!
//! 1. **Coordinator**: builds a [`Tokenizer`] from the field's [`TokenizerConfig`] (once,
//!    when the collection is created or loaded) and turns the query text into terms:
//!    `let terms = tokenizer.tokenize(text)`. If `terms` is empty the answer is empty.
//! 2. **Coordinator → every partition**: "stats for `terms`". Each partition answers
//!    `index.term_stats(&terms)`, a small serde [`CorpusStats`] (`doc_count`,
//!    `total_doc_len`, `doc_freq` per term; integers only).
//! 3. **Coordinator**: `let global = CorpusStats::sum(&answers)` (exact integer sums, so
//!    the order partitions answer in does not matter).
//! 4. **Coordinator → every partition**: "search `terms` with `global`, top `k`". Each
//!    partition runs `index.search(&terms, &global, k, accept)` where `accept` is the
//!    payload filter over slots (or `None`), maps slots to point ids, and answers.
//! 5. **Coordinator**: merges the partitions' lists by score, higher first, ties by point
//!    id, exactly as for dense vectors ([`crate::topk`]).
//!
//! The resulting scores are identical, bit for bit, to those of one index holding the
//! whole collection (tested). A partition that misses step 2 (timeout) makes `global` a
//! slight undercount; the scores stay well defined, and the coordinator reports the
//! partition as missing as usual. A partition given stats smaller than its own (e.g.
//! `CorpusStats::default()` for a single-partition shortcut) falls back to its local
//! statistics.
//!
//! Writes: upsert of a point with the field → `index.add(slot, text)` (an upsert: it
//! replaces what the slot had); a point losing the field or being deleted →
//! `index.remove(slot)`. A filter `match: {text: "..."}` on an indexed field →
//! `index.matching_slots(&index.tokenize(text))` (sorted slots having every term) or, per
//! candidate, `index.matches(slot, &terms)`.
//!
//! Snapshots: `index.write_to(&mut w)` / `TextIndex::read_from(&mut r)` (versioned,
//! checksummed; corrupt input is an error). The config travels inside the snapshot.
//!
//! Hybrid queries (several prefetches fused): run each prefetch as above, merge it across
//! partitions, then fuse the merged lists on the coordinator with [`fusion::rrf`] or
//! [`fusion::dbsf`] (or [`fusion::linear`]).
//!
//! # Decisions
//!
//! * Scoring is Okapi BM25 with Lucene's idf `ln(1 + (N − n + 0.5)/(n + 0.5))`, `k1 = 1.2`,
//!   `b = 0.75` by default (see [`bm25`]). The reference test checks it against rank_bm25
//!   with that idf plugged in.
//! * Qdrant's RRF: `score = Σ 1/(k + rank)` with **0-based** rank and **k = 2**
//!   ([`fusion::DEFAULT_RRF_K`]), so the top hit of one list is worth 1/2.
//! * Qdrant's DBSF: each list normalised by `(s − (μ − 3σ)) / 6σ` with the sample standard
//!   deviation, then summed.

pub(crate) mod codec;

pub mod bm25;
pub mod fusion;
pub mod index;
mod stopwords;
pub mod tokenizer;

use thiserror::Error;

pub use bm25::{Bm25Params, CorpusStats};
pub use index::{TextIndex, TextIndexConfig, TextIndexStats};
pub use tokenizer::{Language, StopwordsConfig, Tokenizer, TokenizerConfig};

/// Bad configuration of a text index. Nothing was built when one of these is returned.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TextError {
    #[error("invalid text index config: {0}")]
    InvalidConfig(String),
}

/// The best `k` of `hits`, higher score first, ties by slot (ascending).
pub(crate) fn top_k(mut hits: Vec<(u32, f32)>, k: usize) -> Vec<(u32, f32)> {
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if hits.len() > k && k > 0 {
        hits.select_nth_unstable_by(k - 1, order);
        hits.truncate(k);
    }
    hits.sort_unstable_by(order);
    hits.truncate(k);
    hits
}
