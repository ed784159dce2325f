//! BM25 parameters, the collection-wide statistics a score depends on, and the formula.
//!
//! **The formula (Okapi BM25, with Lucene's idf):**
//!
//! ```text
//! score(d, q) = Σ_{t in q}  idf(t) · tf(t,d) · (k1 + 1) / (tf(t,d) + k1 · (1 − b + b · |d| / avgdl))
//! idf(t)      = ln(1 + (N − n(t) + 0.5) / (n(t) + 0.5))
//! ```
//!
//! where `N` is the number of documents having the field, `n(t)` the number of them
//! containing `t`, `|d|` the number of terms of `d` (after tokenization) and `avgdl` the
//! mean of `|d|`. A query term repeated in the query counts once per repeat (as in
//! rank_bm25). This idf never goes negative (unlike Robertson–Spärck Jones'
//! `ln((N − n + 0.5)/(n + 0.5))`, which rank_bm25's `BM25Okapi` floors with an epsilon
//! computed over the whole vocabulary, something a partitioned index cannot know), and
//! it needs nothing but `N` and `n(t)`, which sum across partitions. The `(k1 + 1)`
//! factor is kept (classic Okapi; Lucene ≥ 8 drops it), which scales every score by the
//! same constant and so does not change any ranking.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::TextError;

/// The BM25 parameters: term-frequency saturation `k1` (default 1.2) and length
/// normalisation `b` (default 0.75).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bm25Params {
    pub k1: f32,
    pub b: f32,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Bm25Params { k1: 1.2, b: 0.75 }
    }
}

impl Bm25Params {
    /// `k1` finite and ≥ 0, `b` in `[0, 1]`.
    pub fn validate(&self) -> Result<(), TextError> {
        if !(self.k1.is_finite() && self.k1 >= 0.0) {
            return Err(TextError::InvalidConfig(format!("bm25 k1 must be finite and >= 0, got {}", self.k1)));
        }
        if !(0.0..=1.0).contains(&self.b) {
            return Err(TextError::InvalidConfig(format!("bm25 b must be in [0, 1], got {}", self.b)));
        }
        Ok(())
    }
}

/// The corpus statistics BM25 needs, for one partition or (summed) for the collection.
///
/// A partition reports its own with [`TextIndex::term_stats`](super::TextIndex::term_stats);
/// the coordinator adds them up with [`CorpusStats::merge`] / [`CorpusStats::sum`] and sends
/// the sum back with the query. All counts are integers, so the sum is exact and does not
/// depend on the order partitions answer in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusStats {
    /// Documents that have the field (`N`).
    pub doc_count: u64,
    /// Sum of their lengths in terms (`avgdl = total_doc_len / doc_count`).
    pub total_doc_len: u64,
    /// For each query term, the number of documents containing it (`n(t)`). Terms no
    /// document contains are present with 0.
    pub doc_freq: BTreeMap<String, u64>,
}

impl CorpusStats {
    /// Adds another partition's statistics to these.
    pub fn merge(&mut self, other: &CorpusStats) {
        self.doc_count += other.doc_count;
        self.total_doc_len += other.total_doc_len;
        for (t, &n) in &other.doc_freq {
            *self.doc_freq.entry(t.clone()).or_insert(0) += n;
        }
    }

    /// The sum of several partitions' statistics.
    pub fn sum<'a>(parts: impl IntoIterator<Item = &'a CorpusStats>) -> CorpusStats {
        let mut total = CorpusStats::default();
        for p in parts {
            total.merge(p);
        }
        total
    }

    /// Mean document length (0 for an empty corpus).
    pub fn avg_doc_len(&self) -> f64 {
        if self.doc_count == 0 {
            0.0
        } else {
            self.total_doc_len as f64 / self.doc_count as f64
        }
    }

    /// The idf of a term with these statistics (see [`idf`]); a term missing from
    /// `doc_freq` counts as contained in no document.
    pub fn idf(&self, term: &str) -> f64 {
        idf(self.doc_count, self.doc_freq.get(term).copied().unwrap_or(0))
    }
}

/// Lucene's BM25 idf: `ln(1 + (N − n + 0.5) / (n + 0.5))`. Positive for every `n ≤ N`.
pub fn idf(doc_count: u64, doc_freq: u64) -> f64 {
    let (n_docs, n) = (doc_count as f64, doc_freq as f64);
    (1.0 + (n_docs - n + 0.5) / (n + 0.5)).ln()
}

/// The BM25 weight of a term occurring `tf` times in a document of `doc_len` terms, with
/// the term's `idf` and the corpus' `avgdl`. An `avgdl` of 0 (every document empty) is
/// taken as "no length normalisation".
pub(crate) fn term_weight(params: Bm25Params, idf: f64, tf: u32, doc_len: u32, avgdl: f64) -> f64 {
    let (k1, b, tf) = (params.k1 as f64, params.b as f64, tf as f64);
    let rel_len = if avgdl > 0.0 { doc_len as f64 / avgdl } else { 1.0 };
    idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * rel_len))
}
