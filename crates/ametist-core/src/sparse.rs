//! Sparse vectors as Qdrant models them (`{"indices": [u32], "values": [f32]}`) and the
//! inverted index a partition searches them with.
//!
//! Scoring is the dot product (higher is better); only documents sharing at least one
//! non-empty dimension with the query are candidates, as in Qdrant. With
//! [`SparseModifier::Idf`] each query value is first multiplied by the dimension's idf,
//! `ln(1 + (N − n + 0.5)/(n + 0.5))` (the BM25/Lucene idf Qdrant uses), with `N` the number
//! of vectors and `n` the number having that dimension, **collection-wide**: the same
//! two-round-trip pattern as BM25 (see [`crate::text`]): each partition reports
//! [`SparseIndex::term_stats`], the coordinator sums them ([`SparseStats::sum`]) and sends
//! the sum back with the query. Without the modifier the stats are not needed (pass
//! `&SparseStats::default()`).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::text::codec::{capped, In, Out};
use crate::text::{bm25::idf, top_k};

const ABSENT: u32 = u32::MAX;
const MAGIC: &[u8; 8] = b"AMSPARSE";
const VERSION: u32 = 1;
const WHAT: &str = "sparse index";

/// Invalid sparse vector. Nothing was changed when one of these is returned.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SparseError {
    #[error("sparse vector: indices and values must have the same length, got {indices} and {values}")]
    LengthMismatch { indices: usize, values: usize },
    #[error("sparse vector: duplicate index {0}")]
    DuplicateIndex(u32),
    #[error("sparse vector: non-finite value ({value}) at index {index}")]
    NonFinite { index: u32, value: f32 },
    #[error(
        "sparse vector is too long: its length is {length:e}, more than {max:e}, beyond which scores could overflow"
    )]
    TooLong { length: f64, max: f64 },
}

/// A sparse vector: the non-zero dimensions and their values, in any order on input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVector {
    /// A validated vector (see [`SparseVector::validate`]).
    pub fn new(indices: Vec<u32>, values: Vec<f32>) -> Result<SparseVector, SparseError> {
        let v = SparseVector { indices, values };
        v.validate()?;
        Ok(v)
    }

    /// Same length, no duplicate index, finite values, a length whose scores cannot
    /// overflow ([`crate::vector::MAX_SQUARED_NORM`]). An empty vector is valid.
    pub fn validate(&self) -> Result<(), SparseError> {
        if self.indices.len() != self.values.len() {
            return Err(SparseError::LengthMismatch { indices: self.indices.len(), values: self.values.len() });
        }
        for (&i, &v) in self.indices.iter().zip(&self.values) {
            if !v.is_finite() {
                return Err(SparseError::NonFinite { index: i, value: v });
            }
        }
        let squared = crate::vector::squared_norm(&self.values);
        if squared > crate::vector::MAX_SQUARED_NORM {
            let max = crate::vector::MAX_SQUARED_NORM.sqrt();
            return Err(SparseError::TooLong { length: squared.sqrt(), max });
        }
        let mut sorted = self.indices.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(SparseError::DuplicateIndex(w[0]));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The (index, value) pairs sorted by index.
    pub fn sorted_pairs(&self) -> Vec<(u32, f32)> {
        let mut pairs: Vec<(u32, f32)> = self.indices.iter().copied().zip(self.values.iter().copied()).collect();
        pairs.sort_unstable_by_key(|p| p.0);
        pairs
    }

    /// The dot product with `other` (both valid), summed in increasing index order.
    pub fn dot(&self, other: &SparseVector) -> f32 {
        let (a, b) = (self.sorted_pairs(), other.sorted_pairs());
        let (mut i, mut j, mut sum) = (0, 0, 0.0f32);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += a[i].1 * b[j].1;
                    i += 1;
                    j += 1;
                }
            }
        }
        sum
    }
}

/// Qdrant's sparse vector `modifier`: `"none"` (plain dot product) or `"idf"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SparseModifier {
    #[default]
    None,
    Idf,
}

/// Statistics for the idf modifier, for one partition or (summed) the collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparseStats {
    /// Vectors indexed (`N`).
    pub doc_count: u64,
    /// For each query dimension, the number of vectors having it (`n`).
    pub doc_freq: BTreeMap<u32, u64>,
}

impl SparseStats {
    pub fn merge(&mut self, other: &SparseStats) {
        self.doc_count += other.doc_count;
        for (&d, &n) in &other.doc_freq {
            *self.doc_freq.entry(d).or_insert(0) += n;
        }
    }

    pub fn sum<'a>(parts: impl IntoIterator<Item = &'a SparseStats>) -> SparseStats {
        let mut total = SparseStats::default();
        for p in parts {
            total.merge(p);
        }
        total
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Posting {
    slot: u32,
    /// NaN marks a tombstone (stored values are finite).
    value: f32,
}

/// One dimension's postings, sorted by slot, and how many of them are live.
#[derive(Debug, Clone, Default)]
struct DimPostings {
    list: Vec<Posting>,
    live: u32,
}

/// The inverted index of one sparse vector field in one partition: dimension → `(slot,
/// value)` postings sorted by slot (one `Vec` per dimension, none per posting), plus each
/// slot's dimensions so a removal touches only its own lists.
///
/// Removal tombstones the postings (value NaN, found by binary search: no memmove); a
/// re-added slot revives them in place, and [`SparseIndex::compact`] sweeps them once
/// they reach a quarter of the postings.
#[derive(Debug, Clone)]
pub struct SparseIndex {
    modifier: SparseModifier,
    postings: HashMap<u32, DimPostings>,
    /// Each slot's sorted dimensions; `None` when the slot has no vector.
    docs: Vec<Option<Box<[u32]>>>,
    doc_count: u64,
    live: usize,
    dead: usize,
}

impl SparseIndex {
    pub fn new(modifier: SparseModifier) -> SparseIndex {
        SparseIndex { modifier, postings: HashMap::new(), docs: Vec::new(), doc_count: 0, live: 0, dead: 0 }
    }

    pub fn modifier(&self) -> SparseModifier {
        self.modifier
    }

    /// Vectors indexed.
    pub fn len(&self) -> usize {
        self.doc_count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.doc_count == 0
    }

    /// Distinct dimensions with at least one posting.
    pub fn dimensions(&self) -> usize {
        self.postings.values().filter(|d| d.live > 0).count()
    }

    /// Postings stored (live ones).
    pub fn postings(&self) -> usize {
        self.live
    }

    pub fn contains(&self, slot: u32) -> bool {
        self.docs.get(slot as usize).is_some_and(|d| d.is_some())
    }

    /// The vector stored at `slot` (indices ascending).
    pub fn get(&self, slot: u32) -> Option<SparseVector> {
        let dims = self.docs.get(slot as usize)?.as_ref()?;
        let values = dims.iter().map(|d| self.value(*d, slot).unwrap_or(0.0)).collect();
        Some(SparseVector { indices: dims.to_vec(), values })
    }

    /// Indexes `vector` at `slot`, replacing what was there (an upsert). Invalid vectors
    /// are refused and change nothing. Zero values are stored (they make the slot a
    /// candidate for that dimension, as in Qdrant).
    pub fn add(&mut self, slot: u32, vector: &SparseVector) -> Result<(), SparseError> {
        vector.validate()?;
        assert!(slot != ABSENT, "slot {slot} is out of range");
        self.remove(slot);
        let pairs = vector.sorted_pairs();
        for &(d, value) in &pairs {
            let dim = self.postings.entry(d).or_default();
            let p = Posting { slot, value };
            match dim.list.last() {
                Some(last) if last.slot >= slot => match dim.list.binary_search_by_key(&slot, |p| p.slot) {
                    Ok(at) => {
                        // A tombstone of this slot's previous vector: revive it.
                        dim.list[at].value = value;
                        self.dead -= 1;
                    }
                    Err(at) => dim.list.insert(at, p),
                },
                _ => dim.list.push(p),
            }
            dim.live += 1;
            self.live += 1;
        }
        let s = slot as usize;
        if self.docs.len() <= s {
            self.docs.resize_with(s + 1, || None);
        }
        self.docs[s] = Some(pairs.iter().map(|p| p.0).collect());
        self.doc_count += 1;
        Ok(())
    }

    /// Same as [`SparseIndex::add`].
    pub fn update(&mut self, slot: u32, vector: &SparseVector) -> Result<(), SparseError> {
        self.add(slot, vector)
    }

    /// Removes the vector at `slot`; false if there was none.
    pub fn remove(&mut self, slot: u32) -> bool {
        let Some(dims) = self.docs.get_mut(slot as usize).and_then(Option::take) else { return false };
        for d in dims.iter() {
            if let Some(dim) = self.postings.get_mut(d) {
                if let Ok(i) = dim.list.binary_search_by_key(&slot, |p| p.slot) {
                    dim.list[i].value = f32::NAN;
                    dim.live -= 1;
                    self.live -= 1;
                    self.dead += 1;
                }
            }
        }
        self.doc_count -= 1;
        if self.dead > 4096 && self.dead * 4 > self.live {
            self.compact();
        }
        true
    }

    /// Sweeps the tombstones and drops the dimensions no vector has any more. Runs by
    /// itself when enough garbage piles up; never changes a result.
    pub fn compact(&mut self) {
        self.postings.retain(|_, dim| {
            if dim.list.len() != dim.live as usize {
                dim.list.retain(|p| !p.value.is_nan());
                dim.list.shrink_to_fit();
            }
            dim.live > 0
        });
        self.dead = 0;
    }

    fn df(&self, d: u32) -> u64 {
        self.postings.get(&d).map_or(0, |dim| dim.live as u64)
    }

    /// This partition's statistics for the query's dimensions.
    pub fn term_stats(&self, query: &SparseVector) -> SparseStats {
        SparseStats { doc_count: self.doc_count, doc_freq: query.indices.iter().map(|&d| (d, self.df(d))).collect() }
    }

    /// The query's values as scored: sorted by index, times the idf with the modifier.
    /// `global` below this partition's own count (e.g. the default) falls back to local
    /// statistics, as for BM25.
    fn weighted_query(&self, query: &SparseVector, global: &SparseStats) -> Vec<(u32, f32)> {
        let mut pairs = query.sorted_pairs();
        if self.modifier == SparseModifier::Idf {
            let local;
            let stats = if global.doc_count < self.doc_count {
                local = self.term_stats(query);
                &local
            } else {
                global
            };
            for (d, v) in &mut pairs {
                let local_df = self.df(*d);
                let df = stats.doc_freq.get(d).copied().unwrap_or(0).max(local_df);
                *v = (*v as f64 * idf(stats.doc_count, df)) as f32;
            }
        }
        pairs
    }

    /// The best `k` slots by dot product with `query` (weighted by the collection-wide idf
    /// in `global` with the idf modifier), best first, ties by slot; `accept` is called
    /// once per candidate. An invalid query is an error.
    pub fn search(
        &self,
        query: &SparseVector,
        global: &SparseStats,
        k: usize,
        accept: Option<&dyn Fn(u32) -> bool>,
    ) -> Result<Vec<(u32, f32)>, SparseError> {
        query.validate()?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let mut acc: HashMap<u32, f32> = HashMap::new();
        for (d, q) in self.weighted_query(query, global) {
            if let Some(dim) = self.postings.get(&d) {
                for p in dim.list.iter().filter(|p| !p.value.is_nan()) {
                    *acc.entry(p.slot).or_insert(0.0) += q * p.value;
                }
            }
        }
        let hits = acc.into_iter().filter(|&(s, _)| accept.is_none_or(|f| f(s)));
        Ok(top_k(hits.collect(), k))
    }

    /// The score [`SparseIndex::search`] would give `slot` (bit for bit); `None` if the slot
    /// has no vector or the query is invalid.
    pub fn score(&self, slot: u32, query: &SparseVector, global: &SparseStats) -> Option<f32> {
        if !self.contains(slot) || query.validate().is_err() {
            return None;
        }
        let mut score = 0.0f32;
        for (d, q) in self.weighted_query(query, global) {
            if let Some(v) = self.value(d, slot) {
                score += q * v;
            }
        }
        Some(score)
    }

    fn value(&self, d: u32, slot: u32) -> Option<f32> {
        let list = &self.postings.get(&d)?.list;
        let i = list.binary_search_by_key(&slot, |p| p.slot).ok()?;
        Some(list[i].value).filter(|v| !v.is_nan())
    }

    /// Serialises the index (versioned header, checksum) for snapshots; the bytes depend
    /// only on the contents.
    pub fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut o = Out::new(w);
        o.bytes(MAGIC)?;
        o.u32(VERSION)?;
        o.u32(match self.modifier {
            SparseModifier::None => 0,
            SparseModifier::Idf => 1,
        })?;
        // Slots up to the last vector (trailing free slots are history, not contents).
        let n = self.docs.iter().rposition(Option::is_some).map_or(0, |s| s + 1);
        o.u64(n as u64)?;
        for d in &self.docs[..n] {
            o.u32(d.as_ref().map_or(ABSENT, |d| d.len() as u32))?;
        }
        let mut dims: Vec<u32> = self.postings.iter().filter(|(_, dim)| dim.live > 0).map(|(&d, _)| d).collect();
        dims.sort_unstable();
        o.u64(dims.len() as u64)?;
        for d in dims {
            let dim = &self.postings[&d];
            o.u32(d)?;
            o.u64(dim.live as u64)?;
            for p in dim.list.iter().filter(|p| !p.value.is_nan()) {
                o.u32(p.slot)?;
                o.f32(p.value)?;
            }
        }
        o.finish()
    }

    /// Reads an index written by [`SparseIndex::write_to`]; corrupt or truncated input is
    /// an `InvalidData` error, never a panic.
    pub fn read_from(r: &mut dyn Read) -> io::Result<SparseIndex> {
        let mut i = In::new(r, WHAT);
        i.header(MAGIC, VERSION)?;
        let modifier = match i.u32()? {
            0 => SparseModifier::None,
            1 => SparseModifier::Idf,
            m => return Err(i.bad(format!("unknown modifier {m}"))),
        };
        let mut index = SparseIndex::new(modifier);
        let n = i.u64()?;
        if n > ABSENT as u64 {
            return Err(i.bad("too many slots"));
        }
        let mut dim_counts = Vec::with_capacity(capped(n));
        i.u32s(n, |w| {
            dim_counts.extend_from_slice(w);
            Ok(())
        })?;
        let mut docs: Vec<Option<Vec<u32>>> =
            dim_counts.iter().map(|&c| if c == ABSENT { None } else { Some(Vec::new()) }).collect();
        let n_dims = i.u64()?;
        let mut prev: Option<u32> = None;
        for _ in 0..n_dims {
            let d = i.u32()?;
            if prev.is_some_and(|p| p >= d) {
                return Err(i.bad("dimensions are not strictly increasing"));
            }
            prev = Some(d);
            let count = i.u64()?;
            if count == 0 || count > n {
                return Err(i.bad(format!("bad postings count {count}")));
            }
            let mut list = Vec::with_capacity(capped(count));
            let mut pending: Option<u32> = None;
            i.u32s(count * 2, |w| {
                for &x in w {
                    let Some(slot) = pending.take() else {
                        pending = Some(x);
                        continue;
                    };
                    let value = f32::from_bits(x);
                    let dims = docs.get_mut(slot as usize).and_then(Option::as_mut);
                    let sorted = list.last().is_none_or(|p: &Posting| p.slot < slot);
                    match dims {
                        Some(dims) if value.is_finite() && sorted => dims.push(d),
                        _ => return Err(crate::text::codec::bad(WHAT, format!("bad posting ({slot}, {value})"))),
                    }
                    list.push(Posting { slot, value });
                }
                Ok(())
            })?;
            index.live += list.len();
            index.postings.insert(d, DimPostings { live: list.len() as u32, list });
        }
        i.finish()?;
        for (s, (doc, &c)) in docs.iter().zip(&dim_counts).enumerate() {
            if let Some(dims) = doc {
                if dims.len() as u64 != c as u64 {
                    return Err(crate::text::codec::bad(
                        WHAT,
                        format!("slot {s} has {} postings, not {c}", dims.len()),
                    ));
                }
            }
        }
        index.doc_count = docs.iter().filter(|d| d.is_some()).count() as u64;
        index.docs = docs.into_iter().map(|d| d.map(Vec::into_boxed_slice)).collect();
        Ok(index)
    }
}
