//! The inverted index of one text field in one partition.
//!
//! Layout (memory per posting: 8 bytes in the term's list, 4 in the document's term list):
//!
//! * `dict`: term → term id; `postings[id]`: that term's `(slot, tf)` pairs, sorted by slot
//!   (one `Vec` per term, none per posting). Appending a slot larger than any before is a
//!   push; an out-of-order slot (a reused one) is a binary-search insert.
//! * `doc_len[slot]`: the document's length in terms, or `ABSENT`; `doc_terms[slot]`: the
//!   ids of its distinct terms, so that removing a document touches exactly its own terms.
//!
//! Terms whose postings run empty keep their id until enough of them pile up, then
//! [`TextIndex::compact`] renumbers the dictionary (it also happens on a snapshot round
//! trip, which writes only live terms).

use std::collections::HashMap;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use super::bm25::{idf, term_weight, Bm25Params, CorpusStats};
use super::codec::{capped, In, Out};
use super::tokenizer::{Tokenizer, TokenizerConfig};
use super::{top_k, TextError};

const ABSENT: u32 = u32::MAX;
const MAGIC: &[u8; 8] = b"AMTEXT\0\0";
const VERSION: u32 = 1;
const WHAT: &str = "text index";
/// Longest config and term accepted from a snapshot.
const MAX_BLOB: usize = 1 << 20;

/// The configuration of a full-text index on one field: how to tokenize and how to score.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextIndexConfig {
    pub tokenizer: TokenizerConfig,
    pub bm25: Bm25Params,
}

impl TextIndexConfig {
    pub fn validate(&self) -> Result<(), TextError> {
        self.tokenizer.validate()?;
        self.bm25.validate()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Posting {
    slot: u32,
    tf: u32,
}

/// Counts and sizes of a [`TextIndex`], for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextIndexStats {
    /// Documents indexed.
    pub docs: u64,
    /// Distinct terms with at least one posting.
    pub terms: u64,
    /// (slot, tf) pairs stored.
    pub postings: u64,
    /// Sum of document lengths in terms.
    pub total_doc_len: u64,
    /// Approximate heap bytes used.
    pub memory_bytes: u64,
}

/// A BM25 full-text index over one field of one partition's documents, keyed by slot.
#[derive(Debug, Clone)]
pub struct TextIndex {
    config: TextIndexConfig,
    tokenizer: Tokenizer,
    dict: HashMap<Box<str>, u32>,
    postings: Vec<Vec<Posting>>,
    /// Term ids whose postings are empty.
    empty_terms: usize,
    doc_len: Vec<u32>,
    doc_terms: Vec<Box<[u32]>>,
    doc_count: u64,
    total_len: u64,
}

impl TextIndex {
    /// An empty index; an invalid config is an error.
    pub fn new(config: TextIndexConfig) -> Result<TextIndex, TextError> {
        config.bm25.validate()?;
        let tokenizer = Tokenizer::new(config.tokenizer.clone())?;
        Ok(TextIndex {
            config,
            tokenizer,
            dict: HashMap::new(),
            postings: Vec::new(),
            empty_terms: 0,
            doc_len: Vec::new(),
            doc_terms: Vec::new(),
            doc_count: 0,
            total_len: 0,
        })
    }

    pub fn config(&self) -> &TextIndexConfig {
        &self.config
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The query terms of `text` (the field's tokenizer; repeats kept).
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        self.tokenizer.tokenize(text)
    }

    /// Number of documents indexed.
    pub fn len(&self) -> usize {
        self.doc_count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.doc_count == 0
    }

    /// Whether `slot` has a document.
    pub fn contains(&self, slot: u32) -> bool {
        self.doc_len.get(slot as usize).is_some_and(|&l| l != ABSENT)
    }

    /// The length in terms of the document at `slot`.
    pub fn doc_len(&self, slot: u32) -> Option<u32> {
        self.doc_len.get(slot as usize).copied().filter(|&l| l != ABSENT)
    }

    /// Indexes `text` as the document at `slot`, replacing the one there if any (so `add`
    /// is an upsert, and replaying it is harmless). A text with no terms is still a
    /// document (of length 0): it counts in `N` and `avgdl`, and matches nothing.
    ///
    /// Slots index a vector, so they should be dense (as the partition's slots are).
    pub fn add(&mut self, slot: u32, text: &str) {
        let mut tokens = Vec::new();
        self.tokenizer.for_each_token(text, |t| tokens.push(t.to_owned()));
        self.add_terms(slot, tokens);
    }

    /// Indexes a document given as its terms (already tokenized, e.g. by the same
    /// [`Tokenizer`] elsewhere), replacing the one at `slot` if any.
    pub fn add_terms(&mut self, slot: u32, mut terms: Vec<String>) {
        assert!(slot != ABSENT, "slot {slot} is out of range");
        self.remove(slot);
        let len = terms.len().min(ABSENT as usize - 1) as u32;
        terms.sort_unstable();
        let mut ids = Vec::new();
        let mut i = 0;
        while i < terms.len() {
            let mut j = i + 1;
            while j < terms.len() && terms[j] == terms[i] {
                j += 1;
            }
            let tf = (j - i) as u32;
            let id = self.term_id(&terms[i]);
            let list = &mut self.postings[id as usize];
            if list.is_empty() {
                self.empty_terms -= 1;
            }
            insert_posting(list, Posting { slot, tf });
            ids.push(id);
            i = j;
        }
        let s = slot as usize;
        if self.doc_len.len() <= s {
            self.doc_len.resize(s + 1, ABSENT);
            self.doc_terms.resize_with(s + 1, Default::default);
        }
        self.doc_len[s] = len;
        self.doc_terms[s] = ids.into_boxed_slice();
        self.doc_count += 1;
        self.total_len += len as u64;
    }

    /// Replaces the document at `slot` (the same as [`TextIndex::add`]).
    pub fn update(&mut self, slot: u32, text: &str) {
        self.add(slot, text);
    }

    /// Removes the document at `slot`; false if there was none.
    pub fn remove(&mut self, slot: u32) -> bool {
        let s = slot as usize;
        let Some(&len) = self.doc_len.get(s) else { return false };
        if len == ABSENT {
            return false;
        }
        for &id in self.doc_terms[s].iter() {
            let list = &mut self.postings[id as usize];
            if let Ok(i) = list.binary_search_by_key(&slot, |p| p.slot) {
                list.remove(i);
            }
            if list.is_empty() {
                *list = Vec::new();
                self.empty_terms += 1;
            }
        }
        self.doc_len[s] = ABSENT;
        self.doc_terms[s] = Box::default();
        self.doc_count -= 1;
        self.total_len -= len as u64;
        if self.empty_terms > 1024 && self.empty_terms * 2 > self.dict.len() {
            self.compact();
        }
        true
    }

    /// This partition's statistics for `query_terms` (repeats are counted once).
    pub fn term_stats(&self, query_terms: &[String]) -> CorpusStats {
        let mut stats =
            CorpusStats { doc_count: self.doc_count, total_doc_len: self.total_len, doc_freq: Default::default() };
        for t in query_terms {
            stats.doc_freq.insert(t.clone(), self.postings_of(t).len() as u64);
        }
        stats
    }

    /// The best `k` documents for `query_terms` by BM25 with the collection-wide statistics
    /// `global` (the sum of every partition's [`TextIndex::term_stats`] for these terms),
    /// best first, ties by slot. Only documents containing at least one query term and
    /// passing `accept` (called once per such document) are returned.
    ///
    /// If `global` does not cover this partition (fewer documents than it holds, e.g.
    /// `CorpusStats::default()`), this partition's own statistics are used instead; a term
    /// missing from `global.doc_freq` gets this partition's document frequency.
    pub fn search(
        &self,
        query_terms: &[String],
        global: &CorpusStats,
        k: usize,
        accept: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<(u32, f32)> {
        if k == 0 {
            return Vec::new();
        }
        let local;
        let stats = if global.doc_count < self.doc_count {
            local = self.term_stats(query_terms);
            &local
        } else {
            global
        };
        let avgdl = stats.avg_doc_len();
        let mut acc: HashMap<u32, f64> = HashMap::new();
        for t in query_terms {
            let list = self.postings_of(t);
            if list.is_empty() {
                continue;
            }
            let idf = self.idf(stats, t, list.len());
            for p in list {
                let w = term_weight(self.config.bm25, idf, p.tf, self.doc_len[p.slot as usize], avgdl);
                *acc.entry(p.slot).or_insert(0.0) += w;
            }
        }
        let hits = acc.into_iter().filter(|&(s, _)| accept.is_none_or(|f| f(s))).map(|(s, w)| (s, w as f32));
        top_k(hits.collect(), k)
    }

    /// The BM25 score of the document at `slot` for `query_terms` with the statistics
    /// `global` (as in [`TextIndex::search`], and bit for bit the score it reports); `None`
    /// if there is no document at `slot`, 0 if it contains no query term.
    pub fn score(&self, slot: u32, query_terms: &[String], global: &CorpusStats) -> Option<f32> {
        let len = self.doc_len(slot)?;
        let local;
        let stats = if global.doc_count < self.doc_count {
            local = self.term_stats(query_terms);
            &local
        } else {
            global
        };
        let avgdl = stats.avg_doc_len();
        let mut score = 0.0f64;
        for t in query_terms {
            let list = self.postings_of(t);
            if let Ok(i) = list.binary_search_by_key(&slot, |p| p.slot) {
                score += term_weight(self.config.bm25, self.idf(stats, t, list.len()), list[i].tf, len, avgdl);
            }
        }
        Some(score as f32)
    }

    /// The slots (ascending) whose document contains every one of `query_terms` (Qdrant's
    /// full-text `match: {text}` on an indexed field). No terms match nothing.
    pub fn matching_slots(&self, query_terms: &[String]) -> Vec<u32> {
        let mut lists: Vec<&[Posting]> = Vec::with_capacity(query_terms.len());
        for t in query_terms {
            let list = self.postings_of(t);
            if list.is_empty() {
                return Vec::new();
            }
            lists.push(list);
        }
        if lists.is_empty() {
            return Vec::new();
        }
        lists.sort_by_key(|l| l.len());
        lists.dedup_by(|a, b| std::ptr::eq(*a, *b));
        let (first, rest) = lists.split_first().expect("not empty");
        // Each other list is walked once, forward, with a galloping search.
        let mut pos = vec![0usize; rest.len()];
        let mut out = Vec::new();
        'candidates: for p in first.iter() {
            for (list, at) in rest.iter().zip(pos.iter_mut()) {
                *at = gallop(list, *at, p.slot);
                if *at >= list.len() {
                    break 'candidates;
                }
                if list[*at].slot != p.slot {
                    continue 'candidates;
                }
            }
            out.push(p.slot);
        }
        out
    }

    /// Whether the document at `slot` contains every one of `query_terms` (false for no
    /// terms, or no document).
    pub fn matches(&self, slot: u32, query_terms: &[String]) -> bool {
        !query_terms.is_empty()
            && self.contains(slot)
            && query_terms.iter().all(|t| self.postings_of(t).binary_search_by_key(&slot, |p| p.slot).is_ok())
    }

    /// Counts and sizes.
    pub fn stats(&self) -> TextIndexStats {
        let postings: usize = self.postings.iter().map(|l| l.len()).sum();
        let heap_postings: usize = self.postings.iter().map(|l| l.capacity() * 8).sum();
        let heap_dict: usize = self.dict.keys().map(|k| k.len() + 16 + 4 + 8).sum();
        let heap_docs: usize = self.doc_len.capacity() * 4
            + self.doc_terms.capacity() * 16
            + self.doc_terms.iter().map(|t| t.len() * 4).sum::<usize>();
        TextIndexStats {
            docs: self.doc_count,
            terms: (self.dict.len() - self.empty_terms) as u64,
            postings: postings as u64,
            total_doc_len: self.total_len,
            memory_bytes: (heap_postings + heap_dict + heap_docs + self.postings.capacity() * 24) as u64,
        }
    }

    /// Drops the terms no document contains any more and renumbers the rest.
    pub fn compact(&mut self) {
        if self.empty_terms == 0 {
            return;
        }
        let mut remap = vec![ABSENT; self.postings.len()];
        let mut postings = Vec::with_capacity(self.postings.len() - self.empty_terms);
        for (old, list) in self.postings.drain(..).enumerate() {
            if !list.is_empty() {
                remap[old] = postings.len() as u32;
                postings.push(list);
            }
        }
        self.postings = postings;
        self.dict.retain(|_, id| {
            *id = remap[*id as usize];
            *id != ABSENT
        });
        for terms in &mut self.doc_terms {
            for id in terms.iter_mut() {
                *id = remap[*id as usize];
            }
        }
        self.empty_terms = 0;
    }

    /// Serialises the index (config, documents, postings; a versioned header and a
    /// checksum) for snapshots. The bytes depend only on the contents, not on the history.
    pub fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut o = Out::new(w);
        o.bytes(MAGIC)?;
        o.u32(VERSION)?;
        let config = serde_json::to_vec(&self.config).map_err(io::Error::other)?;
        o.blob(&config)?;
        o.u64(self.doc_len.len() as u64)?;
        for &l in &self.doc_len {
            o.u32(l)?;
        }
        let mut terms: Vec<(&str, u32)> = self
            .dict
            .iter()
            .filter(|(_, &id)| !self.postings[id as usize].is_empty())
            .map(|(t, &id)| (&**t, id))
            .collect();
        terms.sort_unstable();
        o.u64(terms.len() as u64)?;
        for (t, id) in terms {
            let list = &self.postings[id as usize];
            o.blob(t.as_bytes())?;
            o.u64(list.len() as u64)?;
            for p in list {
                o.u32(p.slot)?;
                o.u32(p.tf)?;
            }
        }
        o.finish()
    }

    /// Reads an index written by [`TextIndex::write_to`]. Corrupt or truncated input is an
    /// `InvalidData` error, never a panic, and every invariant is checked.
    pub fn read_from(r: &mut dyn Read) -> io::Result<TextIndex> {
        let mut i = In::new(r, WHAT);
        i.header(MAGIC, VERSION)?;
        let config = i.blob(MAX_BLOB)?;
        let config: TextIndexConfig = serde_json::from_slice(&config).map_err(|e| i.bad(format!("bad config: {e}")))?;
        let mut index = TextIndex::new(config).map_err(|e| i.bad(e.to_string()))?;
        let n = i.u64()?;
        if n > ABSENT as u64 {
            return Err(i.bad("too many slots"));
        }
        let mut doc_len = Vec::with_capacity(capped(n));
        i.u32s(n, |w| {
            doc_len.extend_from_slice(w);
            Ok(())
        })?;
        let mut doc_terms: Vec<Vec<u32>> = vec![Vec::new(); doc_len.len()];
        let mut seen_len = vec![0u64; doc_len.len()];
        let n_terms = i.u64()?;
        let mut prev: Option<String> = None;
        for id in 0..n_terms {
            if id >= ABSENT as u64 {
                return Err(i.bad("too many terms"));
            }
            let term = String::from_utf8(i.blob(MAX_BLOB)?).map_err(|_| i.bad("term is not UTF-8"))?;
            if term.is_empty() || prev.as_deref().is_some_and(|p| p >= term.as_str()) {
                return Err(i.bad("terms are not strictly increasing"));
            }
            let count = i.u64()?;
            if count == 0 || count > n {
                return Err(i.bad(format!("bad postings count {count}")));
            }
            let mut list = Vec::with_capacity(capped(count));
            let mut pending: Option<u32> = None;
            let mut err = None;
            i.u32s(count * 2, |w| {
                for &x in w {
                    let Some(slot) = pending.take() else {
                        pending = Some(x);
                        continue;
                    };
                    let tf = x;
                    let s = slot as usize;
                    if s >= doc_len.len() || doc_len[s] == ABSENT || tf == 0 {
                        err = Some(format!("bad posting ({slot}, {tf})"));
                    } else if list.last().is_some_and(|p: &Posting| p.slot >= slot) {
                        err = Some("postings are not sorted".to_string());
                    }
                    if let Some(e) = &err {
                        return Err(super::codec::bad(WHAT, e.clone()));
                    }
                    seen_len[s] += tf as u64;
                    doc_terms[s].push(id as u32);
                    list.push(Posting { slot, tf });
                }
                Ok(())
            })?;
            index.dict.insert(term.clone().into_boxed_str(), id as u32);
            index.postings.push(list);
            prev = Some(term);
        }
        i.finish()?;
        for (s, (&len, &seen)) in doc_len.iter().zip(&seen_len).enumerate() {
            if len != ABSENT && len as u64 != seen {
                return Err(super::codec::bad(WHAT, format!("length of slot {s} does not match its postings")));
            }
            if len != ABSENT {
                index.doc_count += 1;
                index.total_len += len as u64;
            }
        }
        index.doc_len = doc_len;
        index.doc_terms = doc_terms.into_iter().map(Vec::into_boxed_slice).collect();
        Ok(index)
    }

    fn postings_of(&self, term: &str) -> &[Posting] {
        match self.dict.get(term) {
            Some(&id) => &self.postings[id as usize],
            None => &[],
        }
    }

    fn idf(&self, stats: &CorpusStats, term: &str, local_df: usize) -> f64 {
        let df = stats.doc_freq.get(term).copied().unwrap_or(0).max(local_df as u64);
        idf(stats.doc_count, df)
    }

    fn term_id(&mut self, term: &str) -> u32 {
        if let Some(&id) = self.dict.get(term) {
            return id;
        }
        let id = self.postings.len() as u32;
        self.postings.push(Vec::new());
        self.empty_terms += 1;
        self.dict.insert(term.into(), id);
        id
    }
}

/// Inserts `p` into `list` (sorted by slot, `p.slot` not in it).
fn insert_posting(list: &mut Vec<Posting>, p: Posting) {
    match list.last() {
        Some(last) if last.slot > p.slot => {
            let i = list.partition_point(|x| x.slot < p.slot);
            list.insert(i, p);
        }
        _ => list.push(p),
    }
}

/// The first index `>= from` whose slot is `>= slot` (`list.len()` if none): exponential
/// then binary search, so walking a list forward costs O(log gap) per step.
fn gallop(list: &[Posting], from: usize, slot: u32) -> usize {
    let mut lo = from;
    let mut step = 1;
    let mut hi = from;
    while hi < list.len() && list[hi].slot < slot {
        lo = hi + 1;
        hi += step;
        step *= 2;
    }
    let hi = hi.min(list.len());
    lo + list[lo..hi].partition_point(|p| p.slot < slot)
}
