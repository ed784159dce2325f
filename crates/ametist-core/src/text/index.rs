//! The inverted index of one text field in one partition.
//!
//! Layout (memory per posting: 8 bytes in the term's list, 4 in the document's term list):
//!
//! * `dict`: term → term id; `postings[id]`: that term's `(slot, tf)` pairs, sorted by slot
//!   (one `Vec` per term, none per posting); `df[id]`: how many of them are live.
//!   Appending a slot larger than any before is a push; an out-of-order slot (a reused
//!   one) is a binary-search insert.
//! * `doc_len[slot]`: the document's length in terms, or `ABSENT`; `doc_terms[slot]`: the
//!   ids of its distinct terms, so that removing a document touches exactly its own terms.
//!
//! Removal tombstones: the document's postings get `tf = 0` (found by binary search, no
//! memmove) and are skipped by every reader; re-adding the slot revives them in place.
//! When tombstones reach a quarter of the postings, or terms without live postings half
//! of the dictionary, [`TextIndex::compact`] sweeps them and renumbers the dictionary (a
//! snapshot round trip, which writes only live postings, does the same).

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
    /// Live postings of each term (its document frequency).
    df: Vec<u32>,
    /// Term ids with no live posting.
    empty_terms: usize,
    /// Tombstoned postings (tf 0) not yet swept.
    dead: usize,
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
            df: Vec::new(),
            empty_terms: 0,
            dead: 0,
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
        assert!(slot != ABSENT, "slot {slot} is out of range");
        self.remove(slot);
        let mut ids = Vec::new();
        let TextIndex { tokenizer, dict, postings, df, empty_terms, .. } = self;
        tokenizer.for_each_token(text, |t| ids.push(term_id(dict, postings, df, empty_terms, t)));
        self.insert_doc(slot, ids);
    }

    /// Indexes a document given as its terms (already tokenized, e.g. by the same
    /// [`Tokenizer`] elsewhere), replacing the one at `slot` if any.
    pub fn add_terms(&mut self, slot: u32, terms: &[String]) {
        assert!(slot != ABSENT, "slot {slot} is out of range");
        self.remove(slot);
        let TextIndex { dict, postings, df, empty_terms, .. } = self;
        let ids = terms.iter().map(|t| term_id(dict, postings, df, empty_terms, t)).collect();
        self.insert_doc(slot, ids);
    }

    /// Adds the document at the free `slot` whose terms have the ids `ids` (repeats kept).
    fn insert_doc(&mut self, slot: u32, mut ids: Vec<u32>) {
        let len = ids.len().min(ABSENT as usize - 1) as u32;
        ids.sort_unstable();
        let mut unique = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            let mut j = i + 1;
            while j < ids.len() && ids[j] == ids[i] {
                j += 1;
            }
            let (id, tf) = (ids[i], (j - i) as u32);
            let list = &mut self.postings[id as usize];
            match list.last() {
                Some(last) if last.slot >= slot => match list.binary_search_by_key(&slot, |p| p.slot) {
                    Ok(at) => {
                        // A tombstone of this slot's previous document: revive it.
                        list[at].tf = tf;
                        self.dead -= 1;
                    }
                    Err(at) => list.insert(at, Posting { slot, tf }),
                },
                _ => list.push(Posting { slot, tf }),
            }
            let df = &mut self.df[id as usize];
            if *df == 0 {
                self.empty_terms -= 1;
            }
            *df += 1;
            unique.push(id);
            i = j;
        }
        let s = slot as usize;
        if self.doc_len.len() <= s {
            self.doc_len.resize(s + 1, ABSENT);
            self.doc_terms.resize_with(s + 1, Default::default);
        }
        self.doc_len[s] = len;
        self.doc_terms[s] = unique.into_boxed_slice();
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
                list[i].tf = 0;
                self.dead += 1;
            }
            let df = &mut self.df[id as usize];
            *df -= 1;
            if *df == 0 {
                self.empty_terms += 1;
            }
        }
        self.doc_len[s] = ABSENT;
        self.doc_terms[s] = Box::default();
        self.doc_count -= 1;
        self.total_len -= len as u64;
        let live = self.postings_live();
        if (self.dead > 4096 && self.dead * 4 > live)
            || (self.empty_terms > 1024 && self.empty_terms * 2 > self.dict.len())
        {
            self.compact();
        }
        true
    }

    /// This partition's statistics for `query_terms` (repeats are counted once).
    pub fn term_stats(&self, query_terms: &[String]) -> CorpusStats {
        let mut stats =
            CorpusStats { doc_count: self.doc_count, total_doc_len: self.total_len, doc_freq: Default::default() };
        for t in query_terms {
            stats.doc_freq.insert(t.clone(), self.df_of(t) as u64);
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
        // Term at a time, each document's sum in query-term order (so `score` and any split
        // of the corpus add the same numbers in the same order). A dense accumulator when
        // the query touches many documents, a map otherwise. Every weight is > 0, so a
        // dense 0.0 means "not touched".
        let touched: usize = query_terms.iter().map(|t| self.df_of(t) as usize).sum();
        let weights = query_terms.iter().filter_map(|t| {
            let (id, df) = self.term(t)?;
            let idf = self.idf(stats, t, df);
            Some(self.postings[id as usize].iter().filter(|p| p.tf != 0).map(move |p| (p.slot, idf, p.tf)))
        });
        let weight = |idf, slot: u32, tf| term_weight(self.config.bm25, idf, tf, self.doc_len[slot as usize], avgdl);
        let mut hits: Vec<(u32, f32)> = Vec::new();
        if touched * 8 > self.doc_len.len() {
            let mut acc = vec![0.0f64; self.doc_len.len()];
            for list in weights {
                for (slot, idf, tf) in list {
                    acc[slot as usize] += weight(idf, slot, tf);
                }
            }
            for (s, &w) in acc.iter().enumerate() {
                if w != 0.0 && accept.is_none_or(|f| f(s as u32)) {
                    hits.push((s as u32, w as f32));
                }
            }
        } else {
            let mut acc: HashMap<u32, f64> = HashMap::with_capacity(touched);
            for list in weights {
                for (slot, idf, tf) in list {
                    *acc.entry(slot).or_insert(0.0) += weight(idf, slot, tf);
                }
            }
            hits.extend(acc.into_iter().filter(|&(s, _)| accept.is_none_or(|f| f(s))).map(|(s, w)| (s, w as f32)));
        }
        top_k(hits, k)
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
            let Some((id, df)) = self.term(t) else { continue };
            let list = &self.postings[id as usize];
            if let Ok(i) = list.binary_search_by_key(&slot, |p| p.slot) {
                if list[i].tf != 0 {
                    score += term_weight(self.config.bm25, self.idf(stats, t, df), list[i].tf, len, avgdl);
                }
            }
        }
        Some(score as f32)
    }

    /// The slots (ascending) whose document contains every one of `query_terms` (Qdrant's
    /// full-text `match: {text}` on an indexed field). No terms match nothing.
    pub fn matching_slots(&self, query_terms: &[String]) -> Vec<u32> {
        let mut lists: Vec<&[Posting]> = Vec::with_capacity(query_terms.len());
        for t in query_terms {
            match self.term(t) {
                Some((id, _)) => lists.push(&self.postings[id as usize]),
                None => return Vec::new(),
            }
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
        'candidates: for p in first.iter().filter(|p| p.tf != 0) {
            for (list, at) in rest.iter().zip(pos.iter_mut()) {
                *at = gallop(list, *at, p.slot);
                if *at >= list.len() {
                    break 'candidates;
                }
                if list[*at].slot != p.slot || list[*at].tf == 0 {
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
            && query_terms.iter().all(|t| {
                let list = self.postings_of(t);
                list.binary_search_by_key(&slot, |p| p.slot).is_ok_and(|i| list[i].tf != 0)
            })
    }

    /// Counts and sizes.
    pub fn stats(&self) -> TextIndexStats {
        let postings = self.postings_live();
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

    /// Sweeps the tombstones, drops the terms no document contains any more and renumbers
    /// the rest. Runs by itself when enough garbage piles up; never changes a result.
    pub fn compact(&mut self) {
        if self.dead > 0 {
            for list in &mut self.postings {
                if list.iter().any(|p| p.tf == 0) {
                    list.retain(|p| p.tf != 0);
                    list.shrink_to_fit();
                }
            }
            self.dead = 0;
        }
        if self.empty_terms == 0 {
            return;
        }
        let mut remap = vec![ABSENT; self.postings.len()];
        let mut postings = Vec::with_capacity(self.postings.len() - self.empty_terms);
        let mut df = Vec::with_capacity(postings.capacity());
        for (old, list) in self.postings.drain(..).enumerate() {
            if self.df[old] != 0 {
                remap[old] = postings.len() as u32;
                postings.push(list);
                df.push(self.df[old]);
            }
        }
        self.postings = postings;
        self.df = df;
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
        // Slots up to the last document (trailing free slots are history, not contents).
        let n = self.doc_len.iter().rposition(|&l| l != ABSENT).map_or(0, |s| s + 1);
        o.u64(n as u64)?;
        for &l in &self.doc_len[..n] {
            o.u32(l)?;
        }
        let mut terms: Vec<(&str, u32)> =
            self.dict.iter().filter(|(_, &id)| self.df[id as usize] != 0).map(|(t, &id)| (&**t, id)).collect();
        terms.sort_unstable();
        o.u64(terms.len() as u64)?;
        for (t, id) in terms {
            let list = &self.postings[id as usize];
            o.blob(t.as_bytes())?;
            o.u64(self.df[id as usize] as u64)?;
            for p in list.iter().filter(|p| p.tf != 0) {
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
        // Per slot: the sum of its tfs (must equal its length) and its number of terms.
        let mut seen_len = vec![0u64; doc_len.len()];
        let mut n_terms_of = vec![0u32; doc_len.len()];
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
                    n_terms_of[s] += 1;
                    list.push(Posting { slot, tf });
                }
                Ok(())
            })?;
            index.dict.insert(term.clone().into_boxed_str(), id as u32);
            index.postings.push(list);
            index.df.push(count as u32);
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
        // The documents' term lists, each allocated once at its exact size.
        let mut doc_terms: Vec<Vec<u32>> = n_terms_of.iter().map(|&c| Vec::with_capacity(c as usize)).collect();
        for (id, list) in index.postings.iter().enumerate() {
            for p in list {
                doc_terms[p.slot as usize].push(id as u32);
            }
        }
        index.doc_len = doc_len;
        index.doc_terms = doc_terms.into_iter().map(Vec::into_boxed_slice).collect();
        Ok(index)
    }

    /// The id and live document frequency of a term some live document contains.
    fn term(&self, term: &str) -> Option<(u32, u32)> {
        let &id = self.dict.get(term)?;
        let df = self.df[id as usize];
        (df != 0).then_some((id, df))
    }

    fn df_of(&self, term: &str) -> u32 {
        self.term(term).map_or(0, |t| t.1)
    }

    /// A term's postings, tombstones included.
    fn postings_of(&self, term: &str) -> &[Posting] {
        match self.dict.get(term) {
            Some(&id) => &self.postings[id as usize],
            None => &[],
        }
    }

    fn postings_live(&self) -> usize {
        self.df.iter().map(|&d| d as usize).sum()
    }

    fn idf(&self, stats: &CorpusStats, term: &str, local_df: u32) -> f64 {
        let df = stats.doc_freq.get(term).copied().unwrap_or(0).max(local_df as u64);
        idf(stats.doc_count, df)
    }
}

/// The id of `term`, a new one (with no postings yet) if it has none.
fn term_id(
    dict: &mut HashMap<Box<str>, u32>,
    postings: &mut Vec<Vec<Posting>>,
    df: &mut Vec<u32>,
    empty_terms: &mut usize,
    term: &str,
) -> u32 {
    if let Some(&id) = dict.get(term) {
        return id;
    }
    let id = postings.len() as u32;
    postings.push(Vec::new());
    df.push(0);
    *empty_terms += 1;
    dict.insert(term.into(), id);
    id
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
