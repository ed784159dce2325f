//! HNSW: the approximate nearest-neighbour graph each partition searches.
//!
//! Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search using
//! Hierarchical Navigable Small World graphs" (2016/2018): layered proximity graphs,
//! neighbours chosen by the heuristic of algorithm 4, levels drawn with `mult = 1/ln(M)`,
//! `M0 = 2M` links at layer 0.
//!
//! Layout (see [`store`]): the index owns the vectors. Node `i` keeps its vector and its
//! layer-0 links in one block, so a graph walk touches one region per node; upper-layer
//! links (few nodes) live in an arena. Slots are `u32` and stable: the engine refers to
//! points by slot, [`Hnsw::rebuild`] keeps every live slot's number.
//!
//! Deletes: a deleted node stays in the graph (traversed, never returned) until
//! [`Hnsw::repair`] reconnects its in-neighbours around it; its slot is then free and the
//! next insert reuses it. Inserts call `repair` themselves once pending deletes reach a
//! tenth of the live points, so churn does not grow memory.
//!
//! Compact walk (optional, [`Hnsw::set_quantization`]): every node also carries a 4- or 8-bit
//! code of its vector, or a binary one (see [`codes`]); searches walk the graph on codes and
//! re-score the `ef` best with the f32 vectors, so results carry exact distances (unless the
//! search asks for code distances, [`CodeUse`]). The graph itself is always built on the f32
//! vectors.
//!
//! Concurrency: [`Hnsw::insert_batch`] writes the new vectors first (`&mut self`), then
//! links them from several threads through `&self`: link words are `AtomicU32` and each
//! node's list is rewritten under that node's spin lock; vectors are read-only meanwhile.
//! Searches take `&self` and run concurrently with each other (never with writes, which
//! need `&mut self`).

mod codes;
mod io;
mod scratch;
mod space;
mod store;

pub use codes::{CodeUse, Quantization, DEFAULT_QUANTILE};
pub use store::set_huge_pages;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::distance::Metric;
use crate::flat::Candidate;
use codes::{Bits, CodeKernel, Codebook, Scale};
use scratch::{pop, push, replace_root, Cand, Scratch};
use space::{dispatch, Op, Space};
use store::{read_list, write_list, NodeStore, SpinLock};

/// Construction and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node on the upper layers (layer 0 gets `2 * m`).
    pub m: usize,
    /// Beam width while inserting.
    pub ef_construction: usize,
    /// Default beam width while searching.
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams { m: 16, ef_construction: 200, ef_search: 50 }
    }
}

/// Size figures of an index.
#[derive(Debug, Clone, Serialize)]
pub struct IndexStats {
    /// Live points.
    pub points: usize,
    /// Deleted slots not yet reused (still in the graph or already free).
    pub deleted: usize,
    /// Heap bytes held by the index.
    pub bytes: usize,
    /// Number of layers (0 when empty).
    pub levels: usize,
    /// The compact copy searches walk on.
    pub quantization: Quantization,
    /// The values the codes tell apart, lowest and highest, once trained (values beyond
    /// are clamped to them).
    pub code_range: Option<(f32, f32)>,
}

const LIVE: u8 = 0;
/// Deleted, still linked into the graph (traversed, never returned).
const DELETED: u8 = 1;
/// Deleted and unlinked: nothing points to it; waiting for reuse.
const FREE: u8 = 2;

const NO_ENTRY: u64 = u64::MAX;
const NO_UPPER: u32 = u32::MAX;
const MAX_LEVEL: usize = 30;
/// Nodes a graph links one after another before it links from several threads; see
/// `Hnsw::link_all`.
const SEQUENTIAL_START: usize = 1024;
/// Codes are trained once this many points are live (a smaller index walks on f32), and
/// again whenever the live count has doubled since, so their range follows the data.
const TRAIN_AT: usize = 256;
/// Values (vectors times dimensions) sampled to train codes: plenty for two quantiles, and
/// a transient 1 MiB.
const TRAIN_VALUES: usize = 1 << 18;

/// The HNSW index. `Send + Sync`; searches take `&self`, writes `&mut self`.
pub struct Hnsw {
    metric: Metric,
    dim: usize,
    params: HnswParams,
    m: usize,
    m0: usize,
    level_mult: f64,
    store: NodeStore,
    /// Level of every slot.
    levels: Vec<u8>,
    /// LIVE, DELETED or FREE, per slot.
    state: Vec<u8>,
    /// Offset of the slot's upper-layer lists in `upper`, or `NO_UPPER`.
    upper_off: Vec<u32>,
    /// Upper-layer lists: for a node of level L, L lists of `1 + m` words (count, links).
    upper: Vec<AtomicU32>,
    locks: Vec<SpinLock>,
    /// `(level << 32) | slot` of the entry point, or `NO_ENTRY`.
    entry: AtomicU64,
    entry_lock: Mutex<()>,
    /// Deleted slots still linked into the graph.
    pending: Vec<u32>,
    /// Unlinked slots ready for reuse.
    free: Vec<u32>,
    live: usize,
    rng: u64,
    /// Cache lines of a vector to prefetch ahead of its distance computation.
    prefetch_lines: usize,
    /// How many neighbours ahead to prefetch.
    prefetch_ahead: usize,
    quantization: Quantization,
    /// The share of values the codes' range holds (see [`DEFAULT_QUANTILE`]).
    quantile: f32,
    /// The codes' codebook once trained; until then searches walk on the f32 vectors.
    codebook: Option<Codebook>,
    /// Live points when the codes were last trained.
    trained_at: usize,
    pool: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for Hnsw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hnsw")
            .field("metric", &self.metric)
            .field("dim", &self.dim)
            .field("params", &self.params)
            .field("stats", &self.stats())
            .finish()
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Hnsw {
    /// An empty index. `params.m` is clamped to at least 2.
    pub fn new(metric: Metric, dim: usize, params: HnswParams) -> Self {
        assert!(dim > 0, "dimension must be positive");
        let m = params.m.clamp(2, 1024);
        let m0 = 2 * m;
        let params =
            HnswParams { m, ef_construction: params.ef_construction.max(1), ef_search: params.ef_search.max(1) };
        Hnsw {
            metric,
            dim,
            params,
            m,
            m0,
            level_mult: 1.0 / (m as f64).ln(),
            store: NodeStore::new(dim, m0, 0),
            levels: Vec::new(),
            state: Vec::new(),
            upper_off: Vec::new(),
            upper: Vec::new(),
            locks: Vec::new(),
            entry: AtomicU64::new(NO_ENTRY),
            entry_lock: Mutex::new(()),
            pending: Vec::new(),
            free: Vec::new(),
            live: 0,
            rng: 0x5EED_A3E7_1570_2026,
            prefetch_lines: (dim * 4).div_ceil(64).min(8),
            prefetch_ahead: 2,
            quantization: Quantization::None,
            quantile: DEFAULT_QUANTILE,
            codebook: None,
            trained_at: 0,
            pool: Mutex::new(Vec::new()),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Live (non-deleted) points.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Number of slots (live, deleted and free); every slot is `< slots()`.
    pub fn slots(&self) -> usize {
        self.store.len()
    }

    pub fn quantization(&self) -> Quantization {
        self.quantization
    }

    /// Switches the compact copy searches walk on. Turning codes on or off re-lays the
    /// node block out (a copy of the index, briefly twice its memory); the codes are
    /// trained on the live vectors as soon as there are enough of them.
    pub fn set_quantization(&mut self, q: Quantization) {
        if q == self.quantization {
            return;
        }
        let code_bytes = q.code_bytes(self.dim);
        let mut store = NodeStore::new(self.dim, self.m0, code_bytes);
        store.reserve_exact(self.store.len());
        for i in 0..self.store.len() as u32 {
            store.push();
            store.vector_mut(i).copy_from_slice(self.store.vector(i));
            for (to, from) in store.links0(i).iter().zip(self.store.links0(i)) {
                to.store(from.load(Relaxed), Relaxed);
            }
        }
        self.store = store;
        self.quantization = q;
        self.codebook = None;
        self.trained_at = 0;
        self.train_codes_if_due();
    }

    /// Sets the share of values the codes' range holds, centred (Qdrant's `quantile`, in
    /// `[0.5, 1]`; values outside are brought to the nearest end). Codes already trained
    /// are trained again.
    pub fn set_quantile(&mut self, quantile: f32) {
        let quantile = codes::clamp_quantile(quantile);
        if quantile == self.quantile {
            return;
        }
        self.quantile = quantile;
        if self.codebook.take().is_some() {
            self.trained_at = 0;
            self.train_codes_if_due();
        }
    }

    /// Trains the codes when the index has grown enough since the last training (see
    /// [`TRAIN_AT`]). Returns true when that encoded every node again.
    fn train_codes_if_due(&mut self) -> bool {
        let due = match self.codebook {
            None => self.live >= TRAIN_AT,
            Some(_) => self.live >= 2 * self.trained_at,
        };
        self.quantization != Quantization::None && due && self.train_codes()
    }

    /// Trains a codebook on a sample of the live vectors. Encoding every node is the costly
    /// part (all vectors are read, under the partition's write lock), so a codebook that has
    /// not moved (see [`Codebook::close_to`]) is kept, with the codes made with it; that is
    /// the usual case once an index has a few thousand points of a steady distribution.
    /// Returns true when every node was encoded again.
    fn train_codes(&mut self) -> bool {
        let every = self.live.div_ceil((TRAIN_VALUES / self.dim).max(1)).max(1);
        let sample = (0..self.store.len() as u32).filter(|&s| self.is_live(s)).step_by(every);
        let codebook =
            Codebook::train(sample.map(|s| self.store.vector(s)), self.quantization, self.quantile, self.dim);
        self.trained_at = self.live;
        if self.codebook.as_ref().is_some_and(|kept| codebook.close_to(kept)) {
            return false;
        }
        // Deleted nodes are still walked through, so they get codes too.
        for s in 0..self.store.len() as u32 {
            self.store.encode(s, &codebook);
        }
        self.codebook = Some(codebook);
        true
    }

    /// Sets the default beam width of searches.
    pub fn set_ef_search(&mut self, ef: usize) {
        self.params.ef_search = ef.max(1);
    }

    pub fn is_live(&self, slot: u32) -> bool {
        self.state.get(slot as usize) == Some(&LIVE)
    }

    /// The stored vector of a slot (normalised for cosine).
    pub fn vector(&self, slot: u32) -> &[f32] {
        self.store.vector(slot)
    }

    // ----- graph accessors -------------------------------------------------------------

    fn max_links(&self, layer: usize) -> usize {
        if layer == 0 {
            self.m0
        } else {
            self.m
        }
    }

    /// The `[count, links..]` list of `node` at `layer` (the node's level must be >= layer).
    #[inline(always)]
    fn list(&self, node: u32, layer: usize) -> &[AtomicU32] {
        if layer == 0 {
            self.store.links0(node)
        } else {
            let off = self.upper_off[node as usize] as usize + (layer - 1) * (1 + self.m);
            &self.upper[off..off + 1 + self.m]
        }
    }

    fn entry(&self) -> Option<(u32, usize)> {
        let e = self.entry.load(Acquire);
        (e != NO_ENTRY).then_some((e as u32, (e >> 32) as usize))
    }

    fn set_entry(&self, e: Option<(u32, usize)>) {
        self.entry.store(e.map_or(NO_ENTRY, |(n, l)| ((l as u64) << 32) | n as u64), Release);
    }

    fn random_level(&mut self) -> usize {
        let u = ((splitmix(&mut self.rng) >> 11) as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
        ((-u.ln() * self.level_mult) as usize).min(MAX_LEVEL)
    }

    fn scratch(&self) -> Scratch {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_else(Scratch::new)
    }

    fn give_back(&self, s: Scratch) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < 8 {
            pool.push(s);
        }
    }

    // ----- writes ------------------------------------------------------------------------

    /// Inserts an already-prepared vector (cosine vectors arrive normalised); returns its
    /// slot. Reuses freed slots.
    pub fn insert(&mut self, vector: &[f32]) -> u32 {
        self.insert_batch(&[vector], 1)[0]
    }

    /// Inserts many vectors using `threads` threads; returns slots in input order.
    pub fn insert_batch(&mut self, vectors: &[&[f32]], threads: usize) -> Vec<u32> {
        for v in vectors {
            assert_eq!(v.len(), self.dim, "vector has dimension {}, index has {}", v.len(), self.dim);
        }
        if self.free.len() < vectors.len() && !self.pending.is_empty() && self.pending.len() >= (self.live / 10).max(16)
        {
            self.repair();
        }
        let fresh = vectors.len().saturating_sub(self.free.len());
        self.reserve_slots(fresh);
        let mut slots = Vec::with_capacity(vectors.len());
        for v in vectors {
            let slot = self.alloc_slot();
            self.store.vector_mut(slot).copy_from_slice(v);
            slots.push(slot);
        }
        self.live += vectors.len();
        if !self.train_codes_if_due() {
            if let Some(codebook) = &self.codebook {
                slots.iter().for_each(|&s| self.store.encode(s, codebook));
            }
        }
        self.link_all(&slots, threads);
        slots
    }

    fn reserve_slots(&mut self, extra: usize) {
        let want = self.store.len() + extra;
        if want > self.store.capacity() {
            self.store.reserve_exact(want);
        }
        self.levels.reserve_exact(extra);
        self.state.reserve_exact(extra);
        self.upper_off.reserve_exact(extra);
        self.locks.reserve_exact(extra);
    }

    /// Takes a free slot (keeping its level: levels are independent of the data) or
    /// appends a new one; the slot comes back LIVE with empty link lists.
    fn alloc_slot(&mut self) -> u32 {
        if let Some(slot) = self.free.pop() {
            self.state[slot as usize] = LIVE;
            self.clear_lists(slot);
            return slot;
        }
        let slot = self.store.push();
        let level = self.random_level();
        self.levels.push(level as u8);
        self.state.push(LIVE);
        self.locks.push(SpinLock::default());
        let off = self.alloc_upper(level);
        self.upper_off.push(off);
        slot
    }

    fn alloc_upper(&mut self, level: usize) -> u32 {
        if level == 0 {
            return NO_UPPER;
        }
        let off = self.upper.len();
        assert!(off + level * (1 + self.m) < NO_UPPER as usize, "upper layers too large");
        self.upper.extend((0..level * (1 + self.m)).map(|_| AtomicU32::new(0)));
        off as u32
    }

    fn clear_lists(&self, slot: u32) {
        for l in 0..=self.levels[slot as usize] as usize {
            self.list(slot, l)[0].store(0, Release);
        }
    }

    /// Links `slots` (already stored, LIVE, unlinked) into the graph.
    ///
    /// The first [`SEQUENTIAL_START`] nodes of a graph are linked one after another, the
    /// rest from `threads` threads. Why: nodes linked at the same time do not see each
    /// other, and while the graph is small that decides its shape: on clustered data a
    /// two-thread rebuild of 500 points left up to 1% of them unreachable from the entry
    /// point (no walk found them, at any `ef`); linked in order, none.
    fn link_all(&mut self, slots: &[u32], threads: usize) {
        let this = &*self;
        let linked = this.live.saturating_sub(slots.len());
        let (head, slots) = slots.split_at(SEQUENTIAL_START.saturating_sub(linked).min(slots.len()));
        if !head.is_empty() {
            let mut sc = this.scratch();
            for &s in head {
                dispatch(this.metric, Connect { index: this, node: s, relink: false, sc: &mut sc });
            }
            this.give_back(sc);
        }
        let threads = threads.clamp(1, 64).min(slots.len().div_ceil(64).max(1));
        if threads == 1 {
            let mut sc = this.scratch();
            for &s in slots {
                dispatch(this.metric, Connect { index: this, node: s, relink: false, sc: &mut sc });
            }
            this.give_back(sc);
            return;
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let mut sc = Scratch::new();
                    loop {
                        let i = next.fetch_add(1, Relaxed);
                        if i >= slots.len() {
                            break;
                        }
                        dispatch(this.metric, Connect { index: this, node: slots[i], relink: false, sc: &mut sc });
                    }
                    this.give_back(sc);
                });
            }
        });
    }

    /// Replaces the vector of a live slot; the point is then found at its new place.
    pub fn update(&mut self, slot: u32, vector: &[f32]) {
        assert!(self.is_live(slot), "update of a slot that is not live: {slot}");
        assert_eq!(vector.len(), self.dim, "vector has dimension {}, index has {}", vector.len(), self.dim);
        self.store.vector_mut(slot).copy_from_slice(vector);
        if let Some(codebook) = &self.codebook {
            self.store.encode(slot, codebook);
        }
        let mut sc = self.scratch();
        dispatch(self.metric, RepairAround { index: self, node: slot, sc: &mut sc });
        dispatch(self.metric, Connect { index: self, node: slot, relink: true, sc: &mut sc });
        self.give_back(sc);
    }

    /// Deletes a slot: it is never returned again; the slot is reclaimed later.
    pub fn delete(&mut self, slot: u32) {
        if !self.is_live(slot) {
            return;
        }
        self.state[slot as usize] = DELETED;
        self.pending.push(slot);
        self.live -= 1;
    }

    /// Unlinks every deleted node: each live node that points to one gets new links,
    /// chosen (heuristic) among its remaining neighbours and the deleted nodes' live
    /// neighbours. Afterwards no edge points to a deleted slot and the slots are free for
    /// reuse. Called by inserts when pending deletes pile up; cheap when there are none.
    pub fn repair(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut sc = self.scratch();
        let orphans = dispatch(self.metric, RepairDeleted { index: self, sc: &mut sc });
        for d in std::mem::take(&mut self.pending) {
            self.clear_lists(d);
            self.state[d as usize] = FREE;
            self.free.push(d);
        }
        // The entry point must be live: take the live node with the highest level.
        if self.entry().is_none_or(|(e, _)| !self.is_live(e)) {
            let best = (0..self.store.len() as u32)
                .filter(|&s| self.is_live(s))
                .max_by_key(|&s| (self.levels[s as usize], std::cmp::Reverse(s)));
            self.set_entry(best.map(|s| (s, self.levels[s as usize] as usize)));
        }
        // Nodes that lost every link get reconnected by a fresh search.
        for node in orphans {
            dispatch(self.metric, Connect { index: self, node, relink: true, sc: &mut sc });
        }
        self.give_back(sc);
        // Reuse the lowest slots first.
        self.free.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// Rebuilds the graph from the live vectors with `threads` threads. Every live slot
    /// keeps its number; deleted slots become free (trailing ones are dropped).
    pub fn rebuild(&mut self, threads: usize) {
        let live: Vec<u32> = (0..self.store.len() as u32).filter(|&s| self.is_live(s)).collect();
        let new_len = live.last().map_or(0, |&s| s as usize + 1);
        self.store.truncate(new_len);
        self.levels.truncate(new_len);
        self.state.truncate(new_len);
        self.locks.truncate(new_len);
        self.upper_off.truncate(new_len);
        self.store.shrink_to_fit();
        self.levels.shrink_to_fit();
        self.state.shrink_to_fit();
        self.locks.shrink_to_fit();
        self.upper_off.shrink_to_fit();
        self.pending.clear();
        self.free.clear();
        self.upper = Vec::new();
        self.set_entry(None);
        let mut total_upper = 0;
        for s in 0..new_len {
            let level = self.random_level();
            self.levels[s] = level as u8;
            total_upper += level * (1 + self.m);
        }
        self.upper.reserve_exact(total_upper);
        for s in 0..new_len {
            let off = self.alloc_upper(self.levels[s] as usize);
            self.upper_off[s] = off;
            self.store.clear_links0(s as u32);
            if self.state[s] != LIVE {
                self.state[s] = FREE;
                self.free.push(s as u32);
            }
        }
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
        // Retrain the codes on what is live now.
        self.codebook = None;
        self.trained_at = 0;
        self.train_codes_if_due();
        self.link_all(&live, threads);
    }

    // ----- reads -------------------------------------------------------------------------

    /// Approximate top-k, closest first, internal distance (lower is closer). `accept`
    /// filters slots inside the graph walk: rejected nodes are traversed, never returned.
    pub fn search(&self, query: &[f32], k: usize, ef: usize, accept: Option<&dyn Fn(u32) -> bool>) -> Vec<Candidate> {
        self.search_walk(query, k, ef, accept, CodeUse::Rescore)
    }

    /// Like [`Hnsw::search`], with the use of the index's codes chosen (Qdrant's
    /// `params.quantization`): [`CodeUse::Ignore`] walks on the f32 vectors even when the
    /// index has codes, [`CodeUse::CodeDistances`] returns the walk's code distances without
    /// re-scoring them. Without codes every choice walks on the f32 vectors.
    pub fn search_walk(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        accept: Option<&dyn Fn(u32) -> bool>,
        codes: CodeUse,
    ) -> Vec<Candidate> {
        assert_eq!(query.len(), self.dim, "query has dimension {}, index has {}", query.len(), self.dim);
        if k == 0 || self.entry().is_none() {
            return Vec::new();
        }
        let mut sc = self.scratch();
        let out = dispatch(self.metric, Search { index: self, query, k, ef: ef.max(k), accept, codes, sc: &mut sc });
        self.give_back(sc);
        out
    }

    /// Exact top-k over live slots (a scan of the index's own vector storage).
    pub fn search_exact(&self, query: &[f32], k: usize, accept: Option<&dyn Fn(u32) -> bool>) -> Vec<Candidate> {
        assert_eq!(query.len(), self.dim, "query has dimension {}, index has {}", query.len(), self.dim);
        if k == 0 {
            return Vec::new();
        }
        dispatch(self.metric, Exact { index: self, query, k, slots: None, accept })
    }

    /// Exact top-k over the given slots (those not live are skipped), closest first: how a
    /// filter that matches few points is answered from its candidate list.
    pub fn search_slots(
        &self,
        query: &[f32],
        k: usize,
        slots: &[u32],
        accept: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<Candidate> {
        assert_eq!(query.len(), self.dim, "query has dimension {}, index has {}", query.len(), self.dim);
        if k == 0 {
            return Vec::new();
        }
        dispatch(self.metric, Exact { index: self, query, k, slots: Some(slots), accept })
    }

    pub fn stats(&self) -> IndexStats {
        let pool: usize = self.pool.lock().unwrap_or_else(|e| e.into_inner()).iter().map(Scratch::bytes).sum();
        let bytes = self.store.capacity() * self.store.stride_bytes()
            + self.upper.capacity() * 4
            + self.levels.capacity()
            + self.state.capacity()
            + self.upper_off.capacity() * 4
            + self.locks.capacity() * std::mem::size_of::<SpinLock>()
            + (self.pending.capacity() + self.free.capacity()) * 4
            + pool;
        IndexStats {
            points: self.live,
            deleted: self.pending.len() + self.free.len(),
            bytes,
            levels: self.entry().map_or(0, |(_, l)| l + 1),
            quantization: self.quantization,
            code_range: self.codebook.as_ref().and_then(Codebook::range),
        }
    }

    /// Checks the graph's invariants; returns a description of the first violation.
    /// With `strict`, also requires that no edge points to a deleted slot (true after
    /// [`Hnsw::repair`]). Meant for tests and for verifying loaded snapshots.
    pub fn check(&self, strict: bool) -> Result<(), String> {
        let n = self.store.len();
        for s in 0..n as u32 {
            let st = self.state[s as usize];
            let level = self.levels[s as usize] as usize;
            for l in 0..=level {
                let list = self.list(s, l);
                let cnt = list[0].load(Relaxed) as usize;
                if cnt > self.max_links(l) {
                    return Err(format!("slot {s} layer {l}: {cnt} links > {}", self.max_links(l)));
                }
                if st == FREE && cnt > 0 {
                    return Err(format!("free slot {s} has links at layer {l}"));
                }
                for w in &list[1..1 + cnt] {
                    let t = w.load(Relaxed);
                    if t as usize >= n {
                        return Err(format!("slot {s} layer {l}: link to missing slot {t}"));
                    }
                    if t == s {
                        return Err(format!("slot {s} layer {l}: self link"));
                    }
                    if (self.levels[t as usize] as usize) < l {
                        return Err(format!("slot {s} layer {l}: link to {t} whose level is lower"));
                    }
                    match self.state[t as usize] {
                        FREE if st != FREE => return Err(format!("slot {s} layer {l}: link to free slot {t}")),
                        DELETED if strict => return Err(format!("slot {s} layer {l}: link to deleted slot {t}")),
                        _ => {}
                    }
                }
            }
        }
        if let Some((e, l)) = self.entry() {
            if e as usize >= n || self.levels[e as usize] as usize != l || self.state[e as usize] == FREE {
                return Err(format!("bad entry point {e} level {l}"));
            }
            if self.levels.iter().zip(&self.state).any(|(&x, &st)| st != FREE && x as usize > l) {
                return Err("a node is above the entry point's level".into());
            }
        } else if self.live > 0 {
            return Err("live points but no entry point".into());
        }
        Ok(())
    }
}

// ----- the operations, compiled once per kernel --------------------------------------------

impl Hnsw {
    #[inline(always)]
    fn dist<S: Space>(&self, s: S, a: *const f32, b: u32) -> f32 {
        // SAFETY: `a` points to `dim` floats (a stored vector or a checked query) and `b` is
        // a slot of the store; `S` is only instantiated for features the CPU has.
        unsafe { s.dist(a, self.store.vec_ptr(b), self.dim) }
    }

    #[inline(always)]
    fn dist_bounded<S: Space>(&self, s: S, a: *const f32, b: u32, bound: f32) -> f32 {
        // SAFETY: as in `dist`.
        unsafe { s.dist_bounded(a, self.store.vec_ptr(b), self.dim, bound) }
    }

    /// Greedy descent from the entry point to `stop + 1`, then returns the closest node
    /// found. Distance to `skip` counts as infinite (used when relinking a node).
    #[inline(always)]
    fn descend<P: Probe>(&self, p: P, ep: u32, top: usize, stop: usize, skip: u32) -> Cand {
        let mut cur = Cand { d: if ep == skip { f32::INFINITY } else { p.dist(ep) }, id: ep };
        let mut layer = top;
        while layer > stop {
            loop {
                let mut changed = false;
                let (links, cnt) = read_list(self.list(cur.id, layer), self.m);
                for w in &links[..cnt] {
                    let n = w.load(Relaxed);
                    if n == skip {
                        continue;
                    }
                    let d = p.dist(n);
                    if d < cur.d {
                        cur = Cand { d, id: n };
                        changed = true;
                    }
                }
                if !changed {
                    break;
                }
            }
            layer -= 1;
        }
        cur
    }

    /// Beam search at one layer from `eps`; leaves the best `ef` accepted nodes in
    /// `sc.top` (a max-heap). With `FILTER` false every node is accepted.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn search_layer<P: Probe, const FILTER: bool>(
        &self,
        p: P,
        eps: &[Cand],
        ef: usize,
        layer: usize,
        sc: &mut Scratch,
        accept: impl Fn(u32) -> bool,
    ) {
        sc.new_visited(self.store.len());
        sc.cand.clear();
        sc.top.clear();
        for &e in eps {
            if sc.visit(e.id) {
                push::<false>(&mut sc.cand, e);
                if !FILTER || accept(e.id) {
                    push::<true>(&mut sc.top, e);
                }
            }
        }
        let mut lower = if sc.top.is_empty() { f32::INFINITY } else { sc.top[0].d };
        let max = self.max_links(layer);
        let ahead = self.prefetch_ahead;
        while let Some(c) = pop::<false>(&mut sc.cand) {
            if c.d > lower && (!FILTER || sc.top.len() >= ef) {
                break;
            }
            let (links, cnt) = read_list(self.list(c.id, layer), max);
            sc.buf.clear();
            for w in &links[..cnt] {
                let n = w.load(Relaxed);
                if sc.visit(n) {
                    sc.buf.push(n);
                }
            }
            let nb = sc.buf.len();
            for &n in &sc.buf[..nb.min(ahead)] {
                p.prefetch(n);
            }
            for j in 0..nb {
                let n = sc.buf[j];
                if j + ahead < nb {
                    p.prefetch(sc.buf[j + ahead]);
                }
                let full = sc.top.len() >= ef;
                let d = if full { p.dist_bounded(n, lower) } else { p.dist(n) };
                if !full || d < lower {
                    push::<false>(&mut sc.cand, Cand { d, id: n });
                    if !FILTER || accept(n) {
                        if sc.top.len() < ef {
                            push::<true>(&mut sc.top, Cand { d, id: n });
                        } else {
                            replace_root::<true>(&mut sc.top, Cand { d, id: n });
                        }
                        lower = sc.top[0].d;
                    }
                }
            }
            if layer == 0 {
                if let Some(next) = sc.cand.first() {
                    self.store.prefetch_links(next.id);
                }
            }
        }
    }

    /// Algorithm 4 (simple variant, as hnswlib): walk `cands` closest first, keep a
    /// candidate only if it is closer to the base than to every kept one; at most `m`.
    #[inline(always)]
    fn select<S: Space>(&self, s: S, cands: &[Cand], m: usize, out: &mut Vec<Cand>) {
        out.clear();
        for &c in cands {
            if out.len() >= m {
                break;
            }
            let v = self.store.vec_ptr(c.id);
            if out.iter().all(|r| self.dist_bounded(s, v, r.id, c.d) >= c.d) {
                out.push(c);
            }
        }
    }

    /// Adds `q` (at distance `d`) to `n`'s list at `layer`, pruning by the heuristic when full.
    #[inline(always)]
    fn add_link<S: Space>(&self, s: S, n: u32, q: u32, d: f32, layer: usize, sc: &mut Scratch) {
        let max = self.max_links(layer);
        let _guard = self.locks[n as usize].lock();
        let list = self.list(n, layer);
        let cnt = (list[0].load(Relaxed) as usize).min(max);
        if list[1..1 + cnt].iter().any(|w| w.load(Relaxed) == q) {
            return;
        }
        if cnt < max {
            list[1 + cnt].store(q, Relaxed);
            list[0].store(cnt as u32 + 1, Release);
            return;
        }
        let base = self.store.vec_ptr(n);
        sc.sel.clear();
        sc.sel.push(Cand { d, id: q });
        for w in &list[1..1 + cnt] {
            let x = w.load(Relaxed);
            sc.sel.push(Cand { d: self.dist(s, base, x), id: x });
        }
        sc.sel.sort_unstable_by(|a, b| a.d.total_cmp(&b.d));
        let mut out = std::mem::take(&mut sc.out);
        self.select(s, &sc.sel, max, &mut out);
        sc.ids.clear();
        sc.ids.extend(out.iter().map(|c| c.id));
        write_list(list, &sc.ids);
        sc.out = out;
    }

    /// Inserts (or, with `relink`, reconnects after an update) one node whose vector is
    /// stored and whose lists are allocated.
    #[inline(always)]
    fn connect<S: Space>(&self, s: S, q: u32, relink: bool, sc: &mut Scratch) {
        let level = self.levels[q as usize] as usize;
        let mut guard = None;
        let mut entry = self.entry();
        if entry.is_none_or(|(_, top)| level > top) {
            guard = Some(self.entry_lock.lock().unwrap_or_else(|e| e.into_inner()));
            entry = self.entry();
        }
        let Some((ep, top)) = entry else {
            self.set_entry(Some((q, level)));
            return;
        };
        if relink && ep == q && self.live <= 1 {
            return;
        }
        if guard.is_some() && level <= top {
            guard = None;
        }
        let p = F32Probe { index: self, s, q: self.store.vec_ptr(q) };
        let mut cur = self.descend(p, ep, top, level, q);
        let has_pending = !self.pending.is_empty();
        let accept = |id: u32| id != q && (!has_pending || self.state[id as usize] == LIVE);
        for layer in (0..=level.min(top)).rev() {
            self.search_layer::<_, true>(p, &[cur], self.params.ef_construction, layer, sc, accept);
            if sc.top.is_empty() && has_pending {
                // Only deleted nodes around: link to them rather than not at all, so the
                // node stays reachable; `repair` replaces those links later.
                self.search_layer::<_, true>(p, &[cur], self.params.ef_construction, layer, sc, |id| id != q);
            }
            let mut found = std::mem::take(&mut sc.top);
            found.sort_unstable_by(|a, b| a.d.total_cmp(&b.d));
            let mut chosen = std::mem::take(&mut sc.out);
            self.select(s, &found, self.m, &mut chosen);
            {
                let _g = self.locks[q as usize].lock();
                sc.ids.clear();
                sc.ids.extend(chosen.iter().map(|c| c.id));
                write_list(self.list(q, layer), &sc.ids);
            }
            for c in &chosen {
                self.add_link(s, c.id, q, c.d, layer, sc);
            }
            if let Some(&best) = found.first() {
                cur = best;
            }
            sc.top = found;
            sc.out = chosen;
        }
        if level > top {
            self.set_entry(Some((q, level)));
        }
        drop(guard);
    }
}

impl Hnsw {
    /// A search's walk: greedy through the upper layers, then the beam at layer 0; leaves
    /// the best `ef` accepted live nodes in `sc.top`.
    #[inline(always)]
    fn walk<P: Probe>(
        &self,
        p: P,
        ep: u32,
        top: usize,
        ef: usize,
        accept: Option<&dyn Fn(u32) -> bool>,
        sc: &mut Scratch,
    ) {
        let start = self.descend(p, ep, top, 0, u32::MAX);
        let has_pending = !self.pending.is_empty();
        match accept {
            None if !has_pending => self.search_layer::<P, false>(p, &[start], ef, 0, sc, |_| true),
            None => self.search_layer::<P, true>(p, &[start], ef, 0, sc, |id| self.state[id as usize] == LIVE),
            Some(f) => {
                self.search_layer::<P, true>(p, &[start], ef, 0, sc, |id| self.state[id as usize] == LIVE && f(id))
            }
        }
    }
}

/// The distance from one query to any node, as a graph walk sees it.
trait Probe: Copy {
    fn dist(self, n: u32) -> f32;
    /// May stop early once the result is known to be `>= bound` (exact below it).
    fn dist_bounded(self, n: u32, bound: f32) -> f32;
    /// Starts loading what `dist(n)` will read.
    fn prefetch(self, n: u32);
}

/// Distances between f32 vectors (the query's and the nodes').
#[derive(Clone, Copy)]
struct F32Probe<'a, S> {
    index: &'a Hnsw,
    s: S,
    /// `dim` floats: a checked query or a stored vector.
    q: *const f32,
}

impl<S: Space> Probe for F32Probe<'_, S> {
    #[inline(always)]
    fn dist(self, n: u32) -> f32 {
        self.index.dist(self.s, self.q, n)
    }
    #[inline(always)]
    fn dist_bounded(self, n: u32, bound: f32) -> f32 {
        self.index.dist_bounded(self.s, self.q, n, bound)
    }
    #[inline(always)]
    fn prefetch(self, n: u32) {
        self.index.store.prefetch(n, self.index.prefetch_lines)
    }
}

/// Distances between 4-bit or 8-bit codes (the query's and the nodes').
#[derive(Clone, Copy)]
struct CodeProbe<'a, K> {
    index: &'a Hnsw,
    kernel: K,
    scale: Scale,
    /// The query's code (`code_bytes` bytes) and its sum.
    q: *const u8,
    sum: u32,
}

impl<K: CodeKernel> Probe for CodeProbe<'_, K> {
    #[inline(always)]
    fn dist(self, n: u32) -> f32 {
        let store = &self.index.store;
        // SAFETY: the query's code and node `n`'s both hold `code_bytes` bytes (a multiple
        // of 16, as the kernels require); `K` comes from a `Space` instantiated only for
        // features the CPU has.
        let raw = unsafe { self.kernel.raw(self.q, store.code_ptr(n), store.code_bytes()) };
        self.scale.finish(self.index.metric, raw, self.sum, store.code_sum(n), self.index.dim)
    }
    #[inline(always)]
    fn dist_bounded(self, n: u32, _bound: f32) -> f32 {
        // Codes are cheap to compare whole; stopping early would not pay for its checks.
        self.dist(n)
    }
    #[inline(always)]
    fn prefetch(self, n: u32) {
        self.index.store.prefetch_code(n, self.index.code_lines())
    }
}

/// Distances between binary codes (the query's and the nodes'): Hamming distances turned
/// into the metric's units (see [`Bits::finish`]).
#[derive(Clone, Copy)]
struct BitProbe<'a, K> {
    index: &'a Hnsw,
    kernel: K,
    /// The query's code (`code_bytes` bytes).
    q: *const u8,
    /// Bits of a code, before padding.
    n: f32,
}

impl<K: CodeKernel> Probe for BitProbe<'_, K> {
    #[inline(always)]
    fn dist(self, n: u32) -> f32 {
        let store = &self.index.store;
        // SAFETY: as for `CodeProbe`: both codes hold `code_bytes` bytes, a multiple of 16.
        let h = unsafe { self.kernel.raw(self.q, store.code_ptr(n), store.code_bytes()) };
        Bits::finish(self.index.metric, h, self.n)
    }
    #[inline(always)]
    fn dist_bounded(self, n: u32, _bound: f32) -> f32 {
        self.dist(n)
    }
    #[inline(always)]
    fn prefetch(self, n: u32) {
        self.index.store.prefetch_code(n, self.index.code_lines())
    }
}

impl Hnsw {
    /// Cache lines of a node's code (and the sum after it).
    #[inline(always)]
    fn code_lines(&self) -> usize {
        (self.store.code_bytes() + 4).div_ceil(64).min(16)
    }
}

struct Connect<'a> {
    index: &'a Hnsw,
    node: u32,
    relink: bool,
    sc: &'a mut Scratch,
}

impl Op for Connect<'_> {
    type Out = ();
    #[inline(always)]
    fn run<S: Space>(self, s: S) {
        self.index.connect(s, self.node, self.relink, self.sc)
    }
}

struct Search<'a> {
    index: &'a Hnsw,
    query: &'a [f32],
    k: usize,
    ef: usize,
    accept: Option<&'a dyn Fn(u32) -> bool>,
    /// Whether the walk reads the codes (when the index has them) and re-scores.
    codes: CodeUse,
    sc: &'a mut Scratch,
}

impl Op for Search<'_> {
    type Out = Vec<Candidate>;
    #[inline(always)]
    fn run<S: Space>(self, s: S) -> Vec<Candidate> {
        let Search { index, query, k, ef, accept, codes, sc } = self;
        let Some((ep, top)) = index.entry() else { return Vec::new() };
        let q = query.as_ptr();
        match index.codebook.as_ref().filter(|_| codes != CodeUse::Ignore) {
            None => index.walk(F32Probe { index, s, q }, ep, top, ef, accept, sc),
            Some(codebook) => {
                let mut code = std::mem::take(&mut sc.code);
                code.resize(index.store.code_bytes(), 0);
                let sum = codebook.encode(query, &mut code);
                match codebook {
                    Codebook::Scalar(scale) if scale.bits == 8 => {
                        let p = CodeProbe { index, kernel: s.codes8(), scale: *scale, q: code.as_ptr(), sum };
                        index.walk(p, ep, top, ef, accept, sc);
                    }
                    Codebook::Scalar(scale) => {
                        let p = CodeProbe { index, kernel: s.codes(), scale: *scale, q: code.as_ptr(), sum };
                        index.walk(p, ep, top, ef, accept, sc);
                    }
                    Codebook::Binary(bits) => {
                        let p = BitProbe { index, kernel: s.bits(), q: code.as_ptr(), n: bits.code_bits() as f32 };
                        index.walk(p, ep, top, ef, accept, sc);
                    }
                }
                sc.code = code;
                // Re-score what the walk kept with the f32 vectors, a few nodes ahead of
                // their loads, so the results carry exact distances.
                if codes == CodeUse::Rescore {
                    const AHEAD: usize = 4;
                    let n = sc.top.len();
                    for j in 0..n {
                        if j + AHEAD < n {
                            index.store.prefetch(sc.top[j + AHEAD].id, index.prefetch_lines);
                        }
                        sc.top[j].d = index.dist(s, q, sc.top[j].id);
                    }
                }
            }
        }
        sc.top.sort_unstable_by(|a, b| a.d.total_cmp(&b.d).then(a.id.cmp(&b.id)));
        sc.top.iter().take(k).map(|c| Candidate { slot: c.id, distance: c.d }).collect()
    }
}

/// Exact top-k over every slot, or over a list of slots.
struct Exact<'a> {
    index: &'a Hnsw,
    query: &'a [f32],
    k: usize,
    slots: Option<&'a [u32]>,
    accept: Option<&'a dyn Fn(u32) -> bool>,
}

impl Op for Exact<'_> {
    type Out = Vec<Candidate>;
    #[inline(always)]
    fn run<S: Space>(self, s: S) -> Vec<Candidate> {
        let Exact { index, query, k, slots, accept } = self;
        let mut heap: Vec<Cand> = Vec::with_capacity(k + 1);
        let q = query.as_ptr();
        let mut consider = |slot: u32| {
            if index.state.get(slot as usize) != Some(&LIVE) || accept.is_some_and(|f| !f(slot)) {
                return;
            }
            if heap.len() < k {
                push::<true>(&mut heap, Cand { d: index.dist(s, q, slot), id: slot });
            } else {
                // Past the k-th best, a distance only has to be known to be too large.
                let d = index.dist_bounded(s, q, slot, heap[0].d);
                if d < heap[0].d {
                    replace_root::<true>(&mut heap, Cand { d, id: slot });
                }
            }
        };
        let pf = index.prefetch_lines;
        let len = index.store.len() as u32;
        match slots {
            // Sequential, but the block interleaves vectors and link lists: fetch the
            // vectors a few nodes ahead rather than leave it to the hardware prefetcher,
            // which stops at every 4 KiB boundary.
            None => {
                const AHEAD: u32 = 12;
                for slot in 0..len {
                    if slot + AHEAD < len {
                        index.store.prefetch(slot + AHEAD, pf);
                    }
                    consider(slot);
                }
            }
            // Scattered: fetch a few slots ahead, as the graph walk does.
            Some(slots) => {
                const AHEAD: usize = 4;
                for (j, &slot) in slots.iter().enumerate() {
                    if let Some(&next) = slots.get(j + AHEAD).filter(|&&n| n < len) {
                        index.store.prefetch(next, pf);
                    }
                    consider(slot);
                }
            }
        }
        heap.sort_unstable_by(|a, b| a.d.total_cmp(&b.d).then(a.id.cmp(&b.id)));
        heap.into_iter().map(|c| Candidate { slot: c.id, distance: c.d }).collect()
    }
}

/// After `node`'s vector changed: re-selects the lists of its old neighbours from their
/// own neighbours plus the node's, so the stale edges around its old place get replaced.
struct RepairAround<'a> {
    index: &'a Hnsw,
    node: u32,
    sc: &'a mut Scratch,
}

impl Op for RepairAround<'_> {
    type Out = ();
    #[inline(always)]
    fn run<S: Space>(self, s: S) {
        let RepairAround { index, node, sc } = self;
        let mut around = Vec::new();
        for layer in 0..=index.levels[node as usize] as usize {
            let max = index.max_links(layer);
            let (links, cnt) = read_list(index.list(node, layer), max);
            around.clear();
            around.extend(links[..cnt].iter().map(|w| w.load(Relaxed)).filter(|&n| index.is_live(n)));
            for &n in &around {
                sc.new_visited(index.store.len());
                sc.visit(n);
                sc.sel.clear();
                let base = index.store.vec_ptr(n);
                let (nl, ncnt) = read_list(index.list(n, layer), max);
                for x in nl[..ncnt].iter().map(|w| w.load(Relaxed)).chain(around.iter().copied()) {
                    if index.state[x as usize] != FREE && sc.visit(x) {
                        sc.sel.push(Cand { d: index.dist(s, base, x), id: x });
                    }
                }
                sc.sel.sort_unstable_by(|a, b| a.d.total_cmp(&b.d));
                let mut out = std::mem::take(&mut sc.out);
                index.select(s, &sc.sel, max, &mut out);
                sc.ids.clear();
                sc.ids.extend(out.iter().map(|c| c.id));
                write_list(index.list(n, layer), &sc.ids);
                sc.out = out;
            }
        }
    }
}

/// The edge repair of [`Hnsw::repair`]; returns live nodes left without any layer-0 link.
struct RepairDeleted<'a> {
    index: &'a Hnsw,
    sc: &'a mut Scratch,
}

impl Op for RepairDeleted<'_> {
    type Out = Vec<u32>;
    #[inline(always)]
    fn run<S: Space>(self, s: S) -> Vec<u32> {
        let RepairDeleted { index, sc } = self;
        let n = index.store.len() as u32;
        let top = index.levels.iter().copied().max().unwrap_or(0) as usize;
        let mut orphans = Vec::new();
        for layer in 0..=top {
            let max = index.max_links(layer);
            for u in 0..n {
                if index.state[u as usize] != LIVE || (index.levels[u as usize] as usize) < layer {
                    continue;
                }
                let list = index.list(u, layer);
                let (links, cnt) = read_list(list, max);
                if !links[..cnt].iter().any(|w| index.state[w.load(Relaxed) as usize] != LIVE) {
                    continue;
                }
                sc.new_visited(n as usize);
                sc.visit(u);
                sc.sel.clear();
                let base = index.store.vec_ptr(u);
                for w in &links[..cnt] {
                    let x = w.load(Relaxed);
                    if index.state[x as usize] == LIVE {
                        if sc.visit(x) {
                            sc.sel.push(Cand { d: index.dist(s, base, x), id: x });
                        }
                    } else {
                        let (dl, dcnt) = read_list(index.list(x, layer), max);
                        for y in dl[..dcnt].iter().map(|w| w.load(Relaxed)) {
                            if index.state[y as usize] == LIVE && sc.visit(y) {
                                sc.sel.push(Cand { d: index.dist(s, base, y), id: y });
                            }
                        }
                    }
                }
                sc.sel.sort_unstable_by(|a, b| a.d.total_cmp(&b.d));
                let mut out = std::mem::take(&mut sc.out);
                index.select(s, &sc.sel, max, &mut out);
                sc.ids.clear();
                sc.ids.extend(out.iter().map(|c| c.id));
                write_list(list, &sc.ids);
                if out.is_empty() && layer == 0 {
                    orphans.push(u);
                }
                sc.out = out;
            }
        }
        orphans
    }
}
