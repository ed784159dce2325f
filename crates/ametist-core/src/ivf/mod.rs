//! An inverted-file index with fast-scan 4-bit product-quantization codes and exact re-ranking.
//!
//! The points are partitioned by k-means into about 2·√n lists. Each point is stored twice:
//! its f32 vector by slot (for the exact re-ranking) and, in its list, a 4-bit code per
//! 2-dimensional sub-space of its residual (the point minus the list's centroid). A search
//! ranks the centroids, scans the codes of the `lists` nearest lists with a `u8` look-up
//! table held in SIMD registers (32 codes per shuffle, see [`fastscan`]), keeps the `rerank`
//! best estimates, and re-scores those with the f32 vectors. This is the design of ScaNN and
//! of faiss's IVF fast-scan; at low dimension it answers at a given recall with far fewer
//! memory reads than a graph walk, and it builds in seconds.
//!
//! Writes stay visible at once while the index grows:
//! * before the index has seen [`IvfParams::train_at`] points it has no lists, and searches
//!   scan those points exactly ("pending");
//! * after training, a new point is coded into its nearest list at once;
//! * a delete clears the slot's live flag and sets its entry's bit in its list's dead mask
//!   (one word per block of 32 codes); an update marks the old entry dead and codes the new
//!   vector into its (new) list. The scan clears dead bits from each block's candidate mask,
//!   and carries candidates as (list, position) until the re-ranking: reading a slot number
//!   or a per-slot flag for every candidate was a cache miss each and cost more than the
//!   scan itself. Dead entries cost a little scan time, never a wrong answer;
//! * when the live count reaches four times the count the lists were trained on, the index
//!   trains again on everything live (the centroids then fit the grown data, and the stale
//!   entries are dropped).
//!
//! Map of the module: [`kmeans`] (training), [`coarse`] (centroids, which lists to probe),
//! [`pq`] (codebooks, codes, tables), [`fastscan`] (code layout and the AVX2 / portable
//! kernels).

pub mod coarse;
pub mod fastscan;
pub mod kmeans;
pub mod pq;
mod reservoir;
pub mod sq8;
#[cfg(test)]
mod tests;

use crate::distance::Metric;
use crate::flat::Candidate;
use coarse::Coarse;
use fastscan::{QuantizedLut, BLOCK};
use pq::Pq;
use reservoir::{Entry, Reservoir};
use sq8::Sq8;

/// How an [`Ivf`] is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvfParams {
    /// Lists to partition into; 0 picks 2·√n at training time.
    pub lists: usize,
    /// Live points before the first training; below it every search is exact.
    pub train_at: usize,
    /// Seed of the k-means initialisation and sampling.
    pub seed: u64,
    /// For cosine, unit-length centroids (spherical k-means).
    pub spherical: bool,
}

impl Default for IvfParams {
    fn default() -> Self {
        IvfParams { lists: 0, train_at: 1024, seed: 0x5EED, spherical: true }
    }
}

/// How much a search reads: lists probed and estimates re-scored exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub lists: usize,
    pub rerank: usize,
}

/// One inverted list: the slots in it and their codes in the fast-scan layout.
#[derive(Debug, Clone, Default)]
struct List {
    slots: Vec<u32>,
    codes: Vec<u8>,
    /// Per block, a bit per position that holds no live entry (deleted, moved, or past the end).
    dead: Vec<u32>,
}

impl List {
    fn push(&mut self, subspaces: usize, slot: u32, code: &[u8]) -> usize {
        let pos = self.slots.len();
        if pos.is_multiple_of(BLOCK) {
            self.dead.push(u32::MAX);
        }
        fastscan::put(&mut self.codes, subspaces, pos, code);
        self.slots.push(slot);
        self.dead[pos / BLOCK] &= !(1 << (pos % BLOCK));
        pos
    }
}

/// What training produced: centroids, codebooks, lists.
#[derive(Debug, Clone)]
struct Trained {
    coarse: Coarse,
    pq: Pq,
    /// 8-bit codes of every listed slot, for the first re-ranking step.
    sq: Sq8,
    lists: Vec<List>,
}

/// `owner` of a slot that sits in no list (before training).
const PENDING: u64 = u64::MAX;

#[derive(Debug, Clone)]
pub struct Ivf {
    metric: Metric,
    dim: usize,
    params: IvfParams,
    /// f32 vectors by slot (read by the re-ranking).
    vectors: Vec<f32>,
    live: Vec<bool>,
    /// The list entry that currently stands for each slot: `list << 32 | position`.
    owner: Vec<u64>,
    live_count: usize,
    trained: Option<Trained>,
    /// Live count the lists were trained on.
    trained_on: usize,
    /// Slots in no list yet, searched exactly.
    pending: Vec<u32>,
}

/// Training samples at most this many rows per list for k-means (faiss warns below 39).
const SAMPLE_PER_LIST: usize = 128;
/// Rows the codebooks are trained on, at most.
const PQ_SAMPLE: usize = 65_536;
/// Rounds of k-means for the coarse partition.
const COARSE_ITERS: usize = 16;

impl Ivf {
    pub fn new(metric: Metric, dim: usize, params: IvfParams) -> Self {
        assert!(dim > 0, "an index needs a dimension");
        Ivf {
            metric,
            dim,
            params,
            vectors: Vec::new(),
            live: Vec::new(),
            owner: Vec::new(),
            live_count: 0,
            trained: None,
            trained_on: 0,
            pending: Vec::new(),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Live points.
    pub fn len(&self) -> usize {
        self.live_count
    }

    pub fn is_empty(&self) -> bool {
        self.live_count == 0
    }

    /// Slots ever handed out (live or not).
    pub fn slots(&self) -> usize {
        self.live.len()
    }

    /// Lists of the current partition (0 before training).
    pub fn lists(&self) -> usize {
        self.trained.as_ref().map_or(0, |t| t.lists.len())
    }

    pub fn is_live(&self, slot: u32) -> bool {
        self.live.get(slot as usize).copied().unwrap_or(false)
    }

    pub fn vector(&self, slot: u32) -> &[f32] {
        &self.vectors[slot as usize * self.dim..(slot as usize + 1) * self.dim]
    }

    /// Bytes the index holds (vectors, codes, list slots, bookkeeping).
    pub fn bytes(&self) -> usize {
        let lists = self.trained.as_ref().map_or(0, |t| {
            t.coarse.centroids.len() * 8 + t.lists.iter().map(|l| l.slots.len() * 4 + l.codes.len()).sum::<usize>()
        });
        let sq = self.trained.as_ref().map_or(0, |t| t.sq.bytes());
        self.vectors.len() * 4 + self.live.len() * 9 + self.pending.len() * 4 + lists + sq
    }

    // ----- writes ------------------------------------------------------------------------

    /// Adds a point; returns its slot. Searchable as soon as this returns.
    pub fn insert(&mut self, vector: &[f32]) -> u32 {
        self.insert_batch(&[vector], 1)[0]
    }

    /// Adds points (training or re-training on `threads` threads when due); returns their slots.
    pub fn insert_batch(&mut self, vectors: &[&[f32]], threads: usize) -> Vec<u32> {
        let first = self.live.len() as u32;
        for v in vectors {
            assert_eq!(v.len(), self.dim, "vector has dimension {}, index has {}", v.len(), self.dim);
            self.vectors.extend_from_slice(v);
            self.live.push(true);
            self.owner.push(PENDING);
        }
        self.live_count += vectors.len();
        let slots: Vec<u32> = (first..first + vectors.len() as u32).collect();
        if self.due_for_training() {
            self.pending.extend_from_slice(&slots);
            self.train(threads);
        } else if self.trained.is_some() {
            self.place(&slots, threads);
        } else {
            self.pending.extend_from_slice(&slots);
        }
        slots
    }

    /// Replaces the vector of a live slot.
    pub fn update(&mut self, slot: u32, vector: &[f32]) {
        assert!(self.is_live(slot), "update of a slot that is not live");
        assert_eq!(vector.len(), self.dim, "vector has dimension {}, index has {}", vector.len(), self.dim);
        let s = slot as usize;
        self.vectors[s * self.dim..(s + 1) * self.dim].copy_from_slice(vector);
        if self.trained.is_some() {
            self.unlist(slot);
            self.place(&[slot], 1);
        }
    }

    /// Removes a slot from every later search.
    pub fn delete(&mut self, slot: u32) {
        if self.is_live(slot) {
            self.live[slot as usize] = false;
            self.live_count -= 1;
            if self.owner[slot as usize] == PENDING {
                self.pending.retain(|&p| p != slot);
            } else {
                self.unlist(slot);
            }
        }
    }

    /// Marks the list entry of `slot` dead.
    fn unlist(&mut self, slot: u32) {
        let owner = std::mem::replace(&mut self.owner[slot as usize], PENDING);
        if let (Some(t), false) = (self.trained.as_mut(), owner == PENDING) {
            let pos = (owner & 0xffff_ffff) as usize;
            t.lists[(owner >> 32) as usize].dead[pos / BLOCK] |= 1 << (pos % BLOCK);
        }
    }

    fn due_for_training(&self) -> bool {
        match self.trained {
            None => self.live_count >= self.params.train_at.max(1),
            Some(_) => self.live_count >= 4 * self.trained_on.max(1),
        }
    }

    /// Trains centroids and codebooks on every live point and codes them all into lists.
    pub fn train(&mut self, threads: usize) {
        let live: Vec<u32> = (0..self.live.len() as u32).filter(|&s| self.live[s as usize]).collect();
        if live.is_empty() {
            return;
        }
        let n = live.len();
        let lists =
            if self.params.lists > 0 { self.params.lists } else { (2.0 * (n as f64).sqrt()) as usize }.clamp(1, n);
        let mut rng = kmeans::Rng(self.params.seed);
        let sample = |count: usize, rng: &mut kmeans::Rng| -> Vec<f32> {
            // A uniform sample without replacement when it is smaller than the data.
            let mut rows: Vec<u32> = live.clone();
            if count < n {
                for i in 0..count {
                    let j = i + rng.below(n - i);
                    rows.swap(i, j);
                }
                rows.truncate(count);
            }
            rows.iter().flat_map(|&s| self.vector(s).iter().copied()).collect()
        };
        let train_rows = sample(lists * SAMPLE_PER_LIST, &mut rng);
        // Cosine data lies on the unit sphere and lists are probed by dot product: spherical
        // k-means puts the centroids there too (ScaNN's `spherical` partitioning).
        let spherical = self.metric == Metric::Cosine && self.params.spherical;
        let centroids = kmeans::train(&train_rows, self.dim, lists, COARSE_ITERS, self.params.seed, threads, spherical);
        let coarse = Coarse::new(centroids, self.dim);
        // Codebooks on the residuals of a sample, each against its nearest centroid.
        let pq_rows = sample(PQ_SAMPLE, &mut rng);
        let mut residuals = pq_rows.clone();
        let mut scratch = Vec::new();
        for row in residuals.chunks_exact_mut(self.dim) {
            let c = coarse.assign(self.metric, row, &mut scratch) as usize;
            row.iter_mut().zip(coarse.centroid(c)).for_each(|(x, c)| *x -= c);
        }
        let pq = Pq::train(&residuals, self.dim, self.params.seed);
        let sq = Sq8::train(&pq_rows, self.dim);
        let lists = coarse.len();
        self.trained = Some(Trained { coarse, pq, sq, lists: vec![List::default(); lists] });
        self.trained_on = n;
        self.pending.clear();
        self.place(&live, threads);
    }

    /// Codes `slots` into their nearest lists (on `threads` threads) and points their owner there.
    fn place(&mut self, slots: &[u32], threads: usize) {
        let trained = self.trained.as_mut().expect("place is called on a trained index");
        let (dim, metric) = (self.dim, self.metric);
        let m = trained.pq.subspaces();
        let vectors = &self.vectors;
        let (coarse, pq) = (&trained.coarse, &trained.pq);
        // Assignment and coding read only shared state: split them over threads, then
        // append in slot order (so a build is the same for any thread count).
        let chunk = slots.len().div_ceil(threads.max(1)).max(1);
        let coded: Vec<(Vec<u32>, Vec<u8>)> = std::thread::scope(|s| {
            let handles: Vec<_> = slots
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        let mut lists = Vec::with_capacity(part.len());
                        let mut codes = vec![0u8; part.len() * m];
                        let (mut scratch, mut residual) = (Vec::new(), vec![0f32; dim]);
                        for (&slot, out) in part.iter().zip(codes.chunks_exact_mut(m)) {
                            let v = &vectors[slot as usize * dim..(slot as usize + 1) * dim];
                            let l = coarse.assign(metric, v, &mut scratch);
                            residual
                                .iter_mut()
                                .zip(v.iter().zip(coarse.centroid(l as usize)))
                                .for_each(|(r, (x, c))| *r = x - c);
                            pq.encode(&residual, out);
                            lists.push(l);
                        }
                        (lists, codes)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a coding thread panicked")).collect()
        });
        let part_slots = slots.chunks(chunk);
        for ((lists, codes), part) in coded.into_iter().zip(part_slots) {
            for ((&slot, l), code) in part.iter().zip(lists).zip(codes.chunks_exact(m)) {
                let pos = trained.lists[l as usize].push(m, slot, code);
                trained.sq.set(slot, &vectors[slot as usize * dim..(slot as usize + 1) * dim]);
                self.owner[slot as usize] = (l as u64) << 32 | pos as u64;
            }
        }
    }

    // ----- reads -------------------------------------------------------------------------

    #[inline]
    fn prefetch(&self, slot: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let v = self.vector(slot);
            for line in (0..v.len()).step_by(16) {
                // SAFETY: prefetching is a hint; the address is inside `v`.
                unsafe {
                    std::arch::x86_64::_mm_prefetch(v.as_ptr().add(line) as *const i8, std::arch::x86_64::_MM_HINT_T0)
                };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    /// Approximate top-k, closest first, with exact internal distances (lower is closer).
    /// `accept` filters slots: rejected points are never returned.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        probe: Probe,
        accept: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<Candidate> {
        assert_eq!(query.len(), self.dim, "query has dimension {}, index has {}", query.len(), self.dim);
        if k == 0 {
            return Vec::new();
        }
        let ok = |slot: u32| accept.is_none_or(|f| f(slot));
        let mut out: Vec<Candidate> = Vec::new();
        if let Some(t) = &self.trained {
            let keep = probe.rerank.max(k);
            let mut found = self.estimate(t, query, probe.lists.max(1), keep, accept);
            // Re-ranking reads memory scattered over the store: every read is asked for
            // first, so the cache misses overlap instead of queueing one behind the other.
            let exact = exact_rerank(k);
            if found.len() > exact {
                for c in &found {
                    t.sq.prefetch(c.slot);
                }
                let sq_query = t.sq.query(self.metric, query);
                for c in found.iter_mut() {
                    c.distance = t.sq.distance(&sq_query, c.slot);
                }
                found.select_nth_unstable(exact - 1);
                found.truncate(exact);
            }
            for c in &found {
                self.prefetch(c.slot);
            }
            for c in found {
                out.push(Candidate { slot: c.slot, distance: self.metric.distance(query, self.vector(c.slot)) });
            }
        }
        for &slot in &self.pending {
            if self.live[slot as usize] && ok(slot) {
                out.push(Candidate { slot, distance: self.metric.distance(query, self.vector(slot)) });
            }
        }
        if out.len() > k {
            out.select_nth_unstable(k - 1);
            out.truncate(k);
        }
        out.sort_unstable();
        out
    }

    /// The `keep` best code estimates over the `lists` nearest lists.
    fn estimate(
        &self,
        t: &Trained,
        query: &[f32],
        lists: usize,
        keep: usize,
        accept: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<Candidate> {
        let mut dist = Vec::new();
        t.coarse.distances(self.metric, query, &mut dist);
        // Distance and list packed in one integer that orders as the distance does: the
        // selection then compares plain integers instead of looking distances up.
        let mut keys: Vec<u64> = dist.iter().enumerate().map(|(i, &d)| (ordered(d) as u64) << 32 | i as u64).collect();
        let lists = lists.min(keys.len());
        if lists < keys.len() {
            keys.select_nth_unstable(lists - 1);
            keys.truncate(lists);
        }
        // Nearest lists first, so the bound tightens early and later lists pass fewer codes.
        keys.sort_unstable();
        let order: Vec<u32> = keys.iter().map(|k| *k as u32).collect();

        let m = t.pq.subspaces();
        let mut table = vec![0f32; m * pq::CODES];
        // For dot and cosine the table does not depend on the list (only the centroid's
        // dot product does, added as a bias); for euclid it is the residual query's.
        let shared = match self.metric {
            Metric::Euclid => None,
            _ => {
                t.pq.table_dot(query, &mut table);
                Some(QuantizedLut::new(&table))
            }
        };
        let mut residual = vec![0f32; self.dim];
        let mut best = Reservoir::new(keep);
        for &l in &order {
            let list = &t.lists[l as usize];
            if list.slots.is_empty() {
                continue;
            }
            let (own, lut, extra);
            match &shared {
                Some(lut_shared) => {
                    lut = lut_shared;
                    extra = dist[l as usize];
                }
                None => {
                    residual
                        .iter_mut()
                        .zip(query.iter().zip(t.coarse.centroid(l as usize)))
                        .for_each(|(r, (q, c))| *r = q - c);
                    t.pq.table_l2(&residual, &mut table);
                    own = QuantizedLut::new(&table);
                    lut = &own;
                    extra = 0.0;
                }
            }
            let bound = lut.bound(best.threshold(), extra);
            fastscan::scan_list(&list.codes, &list.dead, &lut.table, bound, |b, mut mask, sums| {
                while mask != 0 {
                    let j = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    let pos = b * BLOCK + j;
                    let distance = lut.estimate(sums[j], extra);
                    // The filter (a payload look-up) is asked only about candidates that
                    // would enter; without one the offer is branch-free.
                    let valid = match accept {
                        None => true,
                        Some(f) => distance < best.threshold() && f(list.slots[pos]),
                    };
                    best.offer(Entry { distance, id: (l as u64) << 32 | pos as u64 }, valid);
                }
                if best.settle() {
                    lut.bound(best.threshold(), extra)
                } else {
                    bound
                }
            });
        }
        let mut out: Vec<Candidate> = best
            .into_vec()
            .into_iter()
            .map(|e| Candidate {
                slot: t.lists[(e.id >> 32) as usize].slots[(e.id & 0xffff_ffff) as usize],
                distance: e.distance,
            })
            .collect();
        out.shrink_to_fit();
        out
    }

    /// Exact top-k over live slots (the reference for tests and the filtered path).
    pub fn search_exact(&self, query: &[f32], k: usize, accept: Option<&dyn Fn(u32) -> bool>) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = (0..self.live.len() as u32)
            .filter(|&s| self.live[s as usize] && accept.is_none_or(|f| f(s)))
            .map(|slot| Candidate { slot, distance: self.metric.distance(query, self.vector(slot)) })
            .collect();
        out.sort_unstable();
        out.truncate(k);
        out
    }
}

/// How many of the candidates the 8-bit codes rank best are re-scored with f32 vectors.
/// The 8-bit distance errs by far less than the gap between neighbours, so a small margin
/// over `k` keeps the recall of re-scoring all of them (measured on glove-50).
fn exact_rerank(k: usize) -> usize {
    (2 * k).max(k + 10)
}

/// An unsigned integer that orders as the float does (IEEE 754 total order).
#[inline]
fn ordered(d: f32) -> u32 {
    let b = d.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}
