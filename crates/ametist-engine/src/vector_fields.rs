//! A partition's vector fields: one HNSW index per dense field (the unnamed vector is the
//! field `""`) and one inverted index per sparse field, all keyed by the partition's point
//! slots.
//!
//! Point slots belong to the partition (its entries, payloads and filters speak them). A
//! point may lack any field, so each dense field's index has slots of its own, mapped to
//! point slots both ways; searches take and return point slots. Sparse indexes take point
//! slots directly (they hold nothing for absent slots).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use ametist_core::flat::Candidate;
use ametist_core::hnsw::{CodeUse, Hnsw};
use ametist_core::sparse::{SparseIndex, SparseStats, SparseVector};
use ametist_core::{multivector, Metric};

use crate::config::{IndexConfig, Quantization, SparseVectorParams, VectorParams};
use crate::error::EngineError;
use crate::messages::{NamedIndexStats, NamedVectors, UNNAMED};

/// Marks a slot that maps to nothing.
const NO_POINT: u32 = u32::MAX;

/// Every vector field of one partition.
#[derive(Debug, Default)]
pub struct VectorFields {
    dense: BTreeMap<String, DenseField>,
    sparse: BTreeMap<String, SparseIndex>,
}

/// How a partition has decided to answer a dense search (see `PartitionActor::plan`); the
/// field carries it out on its own index.
#[derive(Debug)]
pub enum Plan {
    /// Score these point slots (a payload index's candidates) exactly.
    Candidates(Vec<u32>),
    /// Scan every point that has the field.
    Exact,
    /// Walk the graph with this beam width.
    Graph { ef: usize },
}

/// One dense field's index and its slot mapping.
///
/// A multivector field keeps each vector of a point in a slot of its own, so that the graph
/// walk runs on single vectors; a point's slots form a chain (`field_slot` gives the first,
/// `next` the rest, in the order the point's vectors were sent).
#[derive(Debug)]
struct DenseField {
    index: Hnsw,
    /// Whether each point holds a multivector (compared by MaxSim) rather than one vector.
    multi: bool,
    /// Point slot → its (first) slot in `index`, or [`NO_POINT`].
    field_slot: Vec<u32>,
    /// Slot in `index` → point slot, or [`NO_POINT`].
    point_slot: Vec<u32>,
    /// Slot in `index` → the next slot of the same point's multivector, or [`NO_POINT`]
    /// (also for slots beyond its end, so that single-vector fields keep it empty).
    next: Vec<u32>,
    /// How many points have this field.
    len: usize,
}

impl DenseField {
    fn new(params: VectorParams, index: &IndexConfig) -> DenseField {
        let mut f = DenseField::with_index(params.index_config(index).new_index(params.metric, params.dim));
        f.multi = params.multivector.is_some();
        f
    }

    fn with_index(index: Hnsw) -> DenseField {
        DenseField { index, multi: false, field_slot: Vec::new(), point_slot: Vec::new(), next: Vec::new(), len: 0 }
    }

    fn slot_of(&self, point: u32) -> Option<u32> {
        self.field_slot.get(point as usize).copied().filter(|&s| s != NO_POINT)
    }

    /// The point's slots in `index`, first to last (none when it lacks the field).
    fn chain(&self, point: u32) -> impl Iterator<Item = u32> + '_ {
        std::iter::successors(self.slot_of(point), |&s| self.next.get(s as usize).copied().filter(|&n| n != NO_POINT))
    }

    /// Makes `slots` (non-empty, in order) the point's vectors.
    fn link(&mut self, point: u32, slots: &[u32]) {
        let p = point as usize;
        if self.field_slot.len() <= p {
            self.field_slot.resize(p + 1, NO_POINT);
        }
        self.field_slot[p] = slots[0];
        for (i, &slot) in slots.iter().enumerate() {
            let s = slot as usize;
            if self.point_slot.len() <= s {
                self.point_slot.resize(s + 1, NO_POINT);
            }
            self.point_slot[s] = point;
            let next = slots.get(i + 1).copied().unwrap_or(NO_POINT);
            if next != NO_POINT || s < self.next.len() {
                if self.next.len() <= s {
                    self.next.resize(s + 1, NO_POINT);
                }
                self.next[s] = next;
            }
        }
        self.len += 1;
    }

    /// Checks a value of the field (or a query on it: a multivector field is queried with
    /// one or more vectors).
    fn validate(&self, v: &[f32]) -> Result<(), ametist_core::CoreError> {
        if self.multi {
            multivector::validate(self.index.dim(), v)
        } else {
            ametist_core::vector::validate(self.index.dim(), v)
        }
    }

    /// The vectors of one value of the field: itself, or a multivector's parts.
    fn parts<'v>(&self, v: &'v [f32]) -> Vec<&'v [f32]> {
        if self.multi {
            v.chunks_exact(self.index.dim()).collect()
        } else {
            vec![v]
        }
    }

    fn set(&mut self, point: u32, v: &[f32]) {
        match self.slot_of(point) {
            Some(slot) if !self.multi => self.index.update(slot, v),
            _ => {
                self.remove(point);
                let slots = self.index.insert_batch(&self.parts(v), 1);
                self.link(point, &slots);
            }
        }
    }

    fn remove(&mut self, point: u32) {
        let slots: Vec<u32> = self.chain(point).collect();
        if slots.is_empty() {
            return;
        }
        for s in slots {
            self.index.delete(s);
            self.point_slot[s as usize] = NO_POINT;
            if let Some(n) = self.next.get_mut(s as usize) {
                *n = NO_POINT;
            }
        }
        self.field_slot[point as usize] = NO_POINT;
        self.len -= 1;
    }

    /// The point's value of the field (a multivector's vectors concatenated).
    fn vector(&self, point: u32) -> Option<Vec<f32>> {
        let mut out = Vec::new();
        for s in self.chain(point) {
            out.extend_from_slice(self.index.vector(s));
        }
        (!out.is_empty()).then_some(out)
    }

    /// Every (point slot, field slot) pair, in point slot order and, within a point, in
    /// its vectors' order.
    fn pairs(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        (0..self.field_slot.len() as u32).flat_map(move |p| self.chain(p).map(move |s| (p, s)))
    }

    /// The points that have this field.
    fn points(&self) -> impl Iterator<Item = u32> + '_ {
        self.field_slot.iter().enumerate().filter(|(_, &s)| s != NO_POINT).map(|(p, _)| p as u32)
    }

    /// The best `k` points by this field under `plan`, as point slots with the internal
    /// "lower is closer" distance; `accept` (on point slots) is the filter's full check.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        plan: &Plan,
        codes: CodeUse,
        accept: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<Candidate> {
        // The index speaks its own slots: the filter is asked about the point behind one.
        let by_point = |slot: u32| {
            let p = self.point_slot.get(slot as usize).copied().unwrap_or(NO_POINT);
            p != NO_POINT && accept.is_none_or(|f| f(p))
        };
        // Without a filter the index's own deletions are the whole check: a removed
        // field's slot is deleted in the index.
        let accept_slot: Option<&dyn Fn(u32) -> bool> = if accept.is_some() { Some(&by_point) } else { None };
        if self.multi {
            return self.search_multi(query, k, plan, codes, accept_slot, accept);
        }
        let hits = match plan {
            Plan::Candidates(points) => {
                let slots: Vec<u32> = points.iter().filter_map(|&p| self.slot_of(p)).collect();
                self.index.search_slots(query, k, &slots, accept_slot)
            }
            Plan::Exact => self.index.search_exact(query, k, accept_slot),
            Plan::Graph { ef } => self.index.search_walk(query, k, *ef, accept_slot, codes),
        };
        hits.into_iter().map(|c| Candidate { slot: self.point_slot[c.slot as usize], distance: c.distance }).collect()
    }

    /// A multivector search: the points to score are the plan's candidates, every point, or
    /// (for a graph plan) the points behind the `ef` nearest vectors of each query vector;
    /// each is then scored exactly by MaxSim over all its vectors. Qdrant re-scores a
    /// multivector walk exactly too, so the graph only decides which points are looked at
    /// (`codes` says how each walk uses the index's codes; with `rescore: false` the walks
    /// skip their own re-scoring, and the points' scores are exact MaxSim all the same).
    fn search_multi(
        &self,
        query: &[f32],
        k: usize,
        plan: &Plan,
        codes: CodeUse,
        accept_slot: Option<&dyn Fn(u32) -> bool>,
        accept: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<Candidate> {
        let dim = self.index.dim();
        let points: Vec<u32> = match plan {
            Plan::Candidates(points) => points.iter().copied().filter(|&p| self.slot_of(p).is_some()).collect(),
            Plan::Exact => self.points().collect(),
            Plan::Graph { ef } => {
                let mut seen = std::collections::HashSet::new();
                for q in query.chunks_exact(dim) {
                    for c in self.index.search_walk(q, *ef, *ef, accept_slot, codes) {
                        seen.insert(self.point_slot[c.slot as usize]);
                    }
                }
                seen.into_iter().collect()
            }
        };
        let metric = self.index.metric();
        let mut hits: Vec<Candidate> = points
            .into_iter()
            .filter(|&p| accept.is_none_or(|f| f(p)))
            .map(|p| Candidate {
                slot: p,
                distance: multivector::max_sim_parts(metric, dim, query, || {
                    self.chain(p).map(|s| self.index.vector(s))
                }),
            })
            .collect();
        hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.slot.cmp(&b.slot)));
        hits.truncate(k);
        hits
    }
}

impl VectorFields {
    /// Empty indexes for the collection's fields: `dense` holds every dense field, the
    /// unnamed one (`""`) included.
    pub fn new(
        dense: &BTreeMap<String, VectorParams>,
        sparse: &BTreeMap<String, SparseVectorParams>,
        index: &IndexConfig,
    ) -> VectorFields {
        VectorFields {
            dense: dense.iter().map(|(n, p)| (n.clone(), DenseField::new(*p, index))).collect(),
            sparse: sparse.iter().map(|(n, p)| (n.clone(), SparseIndex::new(p.modifier))).collect(),
        }
    }

    /// The fields of an image written before the unnamed vector was a field: `index` holds
    /// the unnamed vectors at the point slots themselves, so each of `points` maps to its
    /// own slot.
    pub fn adopt_unnamed(&mut self, index: Hnsw, points: impl Iterator<Item = u32>) {
        let mut field = DenseField::with_index(index);
        for p in points {
            field.link(p, &[p]);
        }
        self.dense.insert(UNNAMED.to_string(), field);
    }

    /// Checks vectors against the fields' names, dimensions and values.
    pub fn check(&self, vectors: &NamedVectors) -> Result<(), EngineError> {
        for (name, v) in &vectors.dense {
            let field = self.dense.get(name).ok_or_else(|| unknown_name(name))?;
            field.validate(v).map_err(|e| at_field(name, e))?;
        }
        for (name, v) in &vectors.sparse {
            if !self.sparse.contains_key(name) {
                return Err(unknown_name(name));
            }
            v.validate().map_err(|e| at_field(name, e))?;
        }
        Ok(())
    }

    /// Checks that every name is a field (dense or sparse).
    pub fn check_names(&self, names: &[String]) -> Result<(), EngineError> {
        match names.iter().find(|n| !self.dense.contains_key(*n) && !self.sparse.contains_key(*n)) {
            Some(n) => Err(unknown_name(n)),
            None => Ok(()),
        }
    }

    /// Gives a point exactly these vectors: the fields it had but `vectors` lacks are
    /// removed (an upsert replaces the whole point).
    pub fn set_all(&mut self, point: u32, vectors: &NamedVectors) {
        self.remove(point);
        self.update(point, vectors);
    }

    /// Gives new points their vectors, linking each dense field's vectors into its graph in
    /// one batch on `threads` threads.
    pub fn insert_new(&mut self, points: &[(u32, NamedVectors)], threads: usize) {
        for (point, _) in points {
            self.remove(*point);
        }
        for (name, field) in &mut self.dense {
            // Each point's vectors (one, or a multivector's parts), all linked in one batch.
            let batch: Vec<(u32, Vec<&[f32]>)> =
                points.iter().filter_map(|(p, n)| n.dense.get(name).map(|v| (*p, field.parts(v)))).collect();
            if batch.is_empty() {
                continue;
            }
            let vectors: Vec<&[f32]> = batch.iter().flat_map(|b| b.1.iter().copied()).collect();
            let slots = field.index.insert_batch(&vectors, threads);
            let mut slots = slots.as_slice();
            for (point, parts) in &batch {
                let (mine, rest) = slots.split_at(parts.len());
                field.link(*point, mine);
                slots = rest;
            }
        }
        for (name, index) in &mut self.sparse {
            for (point, n) in points {
                if let Some(v) = n.sparse.get(name) {
                    index.add(*point, v).expect("vectors were checked");
                }
            }
        }
    }

    /// Replaces the fields `vectors` holds and keeps the point's others.
    pub fn update(&mut self, point: u32, vectors: &NamedVectors) {
        for (name, v) in &vectors.dense {
            self.dense.get_mut(name).expect("names were checked").set(point, v);
        }
        for (name, v) in &vectors.sparse {
            self.sparse.get_mut(name).expect("names were checked").add(point, v).expect("vectors were checked");
        }
    }

    /// Removes the fields `names` from a point.
    pub fn remove_names(&mut self, point: u32, names: &[String]) {
        for name in names {
            if let Some(f) = self.dense.get_mut(name) {
                f.remove(point);
            }
            if let Some(s) = self.sparse.get_mut(name) {
                s.remove(point);
            }
        }
    }

    /// Removes every field of a point (it was deleted).
    pub fn remove(&mut self, point: u32) {
        for f in self.dense.values_mut() {
            f.remove(point);
        }
        for s in self.sparse.values_mut() {
            s.remove(point);
        }
    }

    /// Every vector the point has.
    pub fn get(&self, point: u32) -> NamedVectors {
        let mut out = NamedVectors::default();
        for (name, f) in &self.dense {
            if let Some(v) = f.vector(point) {
                out.dense.insert(name.clone(), v);
            }
        }
        for (name, s) in &self.sparse {
            if let Some(v) = s.get(point) {
                out.sparse.insert(name.clone(), v);
            }
        }
        out
    }

    /// The point's vector of the dense field `name`, when it has one.
    pub fn dense_vector(&self, name: &str, point: u32) -> Option<Vec<f32>> {
        self.dense.get(name)?.vector(point)
    }

    /// The names of the fields the point has (dense and sparse).
    pub fn names_of(&self, point: u32) -> std::collections::BTreeSet<String> {
        let dense = self.dense.iter().filter(|(_, f)| f.slot_of(point).is_some()).map(|(n, _)| n.clone());
        let sparse = self.sparse.iter().filter(|(_, s)| s.contains(point)).map(|(n, _)| n.clone());
        dense.chain(sparse).collect()
    }

    /// Whether the point has the field `name` (dense or sparse).
    pub fn has(&self, point: u32, name: &str) -> bool {
        self.dense.get(name).is_some_and(|f| f.slot_of(point).is_some())
            || self.sparse.get(name).is_some_and(|s| s.contains(point))
    }

    /// Whether the dense field `name` exists.
    pub fn has_dense(&self, name: &str) -> bool {
        self.dense.contains_key(name)
    }

    /// How many points have the dense field `name`.
    pub fn dense_len(&self, name: &str) -> Result<usize, EngineError> {
        Ok(self.dense_field(name)?.len)
    }

    /// The metric of a dense field.
    pub fn metric(&self, name: &str) -> Result<Metric, EngineError> {
        Ok(self.dense_field(name)?.index.metric())
    }

    /// The dimension of a dense field.
    pub fn dim(&self, name: &str) -> Result<usize, EngineError> {
        Ok(self.dense_field(name)?.index.dim())
    }

    /// What a walk on a dense field's index reads.
    pub fn quantization(&self, name: &str) -> Result<Quantization, EngineError> {
        Ok(self.dense_field(name)?.index.quantization())
    }

    /// The best `k` points by the dense field `name` under `plan`, as (point slot,
    /// distance) with the internal "lower is closer" distance. `accept` is the filter's
    /// full check on point slots.
    pub fn search_dense(
        &self,
        name: &str,
        query: &[f32],
        k: usize,
        plan: &Plan,
        codes: CodeUse,
        accept: Option<&dyn Fn(u32) -> bool>,
    ) -> Result<Vec<Candidate>, EngineError> {
        let field = self.dense_field(name)?;
        field.validate(query).map_err(|e| at_field(name, e))?;
        Ok(field.search(query, k, plan, codes, accept))
    }

    /// This partition's idf statistics of a sparse query.
    pub fn sparse_stats(&self, name: &str, query: &SparseVector) -> Result<SparseStats, EngineError> {
        Ok(self.sparse.get(name).ok_or_else(|| unknown_name(name))?.term_stats(query))
    }

    /// The best `k` points by sparse dot product, as (point slot, score).
    pub fn search_sparse(
        &self,
        name: &str,
        query: &SparseVector,
        global: &SparseStats,
        k: usize,
        accept: Option<&dyn Fn(u32) -> bool>,
    ) -> Result<Vec<(u32, f32)>, EngineError> {
        let index = self.sparse.get(name).ok_or_else(|| unknown_name(name))?;
        index.search(query, global, k, accept).map_err(|e| EngineError::invalid(format!("query `{name}`: {e}")))
    }

    /// Rebuilds every dense graph from its live vectors.
    pub fn rebuild(&mut self, threads: usize) {
        for f in self.dense.values_mut() {
            f.index.rebuild(threads);
        }
    }

    /// Bytes held by the dense indexes.
    pub fn bytes(&self) -> u64 {
        self.dense.values().map(|f| f.index.stats().bytes as u64).sum()
    }

    /// The index statistics of the dense field `name`, when it exists.
    pub fn index_stats(&self, name: &str) -> Option<ametist_core::hnsw::IndexStats> {
        self.dense.get(name).map(|f| f.index.stats())
    }

    /// Each named dense field's index (the unnamed one is reported by the partition's own
    /// statistics): its points and what its walk reads.
    pub fn named_stats(&self) -> BTreeMap<String, NamedIndexStats> {
        self.dense
            .iter()
            .filter(|(name, _)| !name.is_empty())
            .map(|(name, f)| {
                let s = f.index.stats();
                (
                    name.clone(),
                    NamedIndexStats { points: s.points, quantization: s.quantization, code_range: s.code_range },
                )
            })
            .collect()
    }

    /// Makes the fields read from an image match the collection's configuration: the same
    /// names with the same dimensions, metrics and modifiers. Fields the image lacks (it
    /// predates them) start empty.
    pub fn conform(
        &mut self,
        dense: &BTreeMap<String, VectorParams>,
        sparse: &BTreeMap<String, SparseVectorParams>,
        index: &IndexConfig,
    ) -> Result<(), String> {
        if let Some(n) = self.dense.keys().find(|n| !dense.contains_key(*n)) {
            return Err(format!("the snapshot holds dense vector `{n}`, which the collection does not have"));
        }
        if let Some(n) = self.sparse.keys().find(|n| !sparse.contains_key(*n)) {
            return Err(format!("the snapshot holds sparse vector `{n}`, which the collection does not have"));
        }
        for (name, p) in dense {
            match self.dense.get_mut(name) {
                Some(f) if f.index.dim() != p.dim || f.index.metric() != p.metric => {
                    return Err(format!(
                        "vector `{name}` is {}-dimensional {:?} in the snapshot, {}-dimensional {:?} in the collection",
                        f.index.dim(),
                        f.index.metric(),
                        p.dim,
                        p.metric
                    ))
                }
                Some(f) if p.multivector.is_none() && f.pairs().count() != f.len => {
                    return Err(format!(
                        "vector `{name}` holds multivectors in the snapshot, single vectors in the collection"
                    ))
                }
                Some(f) => {
                    f.multi = p.multivector.is_some();
                    f.index.set_ef_search(index.ef_search);
                    // Images hold the graph and the f32 vectors; codes are derived here.
                    p.index_config(index).configure_codes(&mut f.index);
                }
                None => {
                    self.dense.insert(name.clone(), DenseField::new(*p, index));
                }
            }
        }
        for (name, p) in sparse {
            match self.sparse.get(name) {
                Some(s) if s.modifier() != p.modifier => {
                    return Err(format!("sparse vector `{name}` has another modifier in the snapshot"))
                }
                Some(_) => {}
                None => {
                    self.sparse.insert(name.clone(), SparseIndex::new(p.modifier));
                }
            }
        }
        Ok(())
    }

    /// Checks that every vector belongs to one of the `points` (the image's live slots).
    pub fn check_points(&self, points: &std::collections::HashSet<u32>) -> Result<(), String> {
        for (name, f) in &self.dense {
            let mapped = f.pairs().count();
            if f.index.len() != mapped {
                return Err(format!("vector `{name}`: {mapped} mapped slots, {} live", f.index.len()));
            }
            for (p, s) in f.pairs() {
                if !points.contains(&p) || !f.index.is_live(s) {
                    return Err(format!("vector `{name}`: slot {s} of point slot {p} is not live"));
                }
            }
        }
        for (name, s) in &self.sparse {
            let held = points.iter().filter(|&&p| s.contains(p)).count();
            if held != s.len() {
                return Err(format!("sparse vector `{name}` holds vectors of points that do not exist"));
            }
        }
        Ok(())
    }

    /// Writes every index (the fields section of a partition image):
    ///
    /// ```text
    /// u32 dense count; per field: string name ("" for the unnamed vector), u64 pair count,
    ///                  (u32 point slot, u32 index slot)*, the HNSW index as `Hnsw::write_to` writes it
    ///                  (a multivector's point has one pair per vector, consecutive, in order)
    /// u32 sparse count; per field: string name, the index as `SparseIndex::write_to` writes it
    /// ```
    pub fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        w.write_all(&(self.dense.len() as u32).to_le_bytes())?;
        for (name, f) in &self.dense {
            write_str(w, name)?;
            let pairs = f.pairs().count();
            let mut buf = Vec::with_capacity(8 + pairs * 8);
            buf.extend_from_slice(&(pairs as u64).to_le_bytes());
            for (p, s) in f.pairs() {
                buf.extend_from_slice(&p.to_le_bytes());
                buf.extend_from_slice(&s.to_le_bytes());
            }
            w.write_all(&buf)?;
            f.index.write_to(w)?;
        }
        w.write_all(&(self.sparse.len() as u32).to_le_bytes())?;
        for (name, s) in &self.sparse {
            write_str(w, name)?;
            s.write_to(w)?;
        }
        Ok(())
    }

    /// Reads what [`VectorFields::write_to`] wrote; malformed input is an error.
    pub fn read_from(r: &mut dyn Read) -> io::Result<VectorFields> {
        let mut out = VectorFields::default();
        let n = read_u32(r)?;
        for _ in 0..n {
            let name = read_str(r)?;
            let pairs = read_u64(r)?;
            let mut mapped = Vec::new();
            for _ in 0..pairs {
                let (p, s) = (read_u32(r)?, read_u32(r)?);
                if p == NO_POINT || s == NO_POINT {
                    return Err(bad(format!("vector `{name}`: slot {s} of point slot {p} is out of range")));
                }
                mapped.push((p, s));
            }
            let index = Hnsw::read_from(r)?;
            let mut field = DenseField::with_index(index);
            let mut seen = std::collections::HashSet::new();
            // A point's pairs are consecutive: one per vector of its multivector.
            for group in mapped.chunk_by(|a, b| a.0 == b.0) {
                let p = group[0].0;
                let slots: Vec<u32> = group.iter().map(|&(_, s)| s).collect();
                for &s in &slots {
                    if s as usize >= field.index.slots() {
                        return Err(bad(format!("vector `{name}`: slot {s} outside the index")));
                    }
                    if !seen.insert(s) {
                        return Err(bad(format!("vector `{name}`: slot {s} appears twice")));
                    }
                }
                if field.slot_of(p).is_some() {
                    return Err(bad(format!("vector `{name}`: point slot {p} appears twice")));
                }
                field.link(p, &slots);
            }
            if out.dense.insert(name.clone(), field).is_some() {
                return Err(bad(format!("vector `{name}` appears twice")));
            }
        }
        let n = read_u32(r)?;
        for _ in 0..n {
            let name = read_str(r)?;
            let index = SparseIndex::read_from(r)?;
            if out.sparse.insert(name.clone(), index).is_some() {
                return Err(bad(format!("sparse vector `{name}` appears twice")));
            }
        }
        Ok(out)
    }

    fn dense_field(&self, name: &str) -> Result<&DenseField, EngineError> {
        self.dense.get(name).ok_or_else(|| unknown_name(name))
    }
}

/// An error about the vector field `name`; the unnamed vector's errors name no field, as
/// they did before it was one.
pub(crate) fn at_field(name: &str, e: impl std::fmt::Display) -> EngineError {
    if name.is_empty() {
        EngineError::invalid(e.to_string())
    } else {
        EngineError::invalid(format!("vector `{name}`: {e}"))
    }
}

fn unknown_name(name: &str) -> EngineError {
    if name.is_empty() {
        EngineError::invalid("the collection has no unnamed vector: send and search its vectors by name")
    } else {
        EngineError::invalid(format!("Not existing vector name error: {name}"))
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn write_str(w: &mut dyn Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u32).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn read_u32(r: &mut dyn Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut dyn Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_str(r: &mut dyn Read) -> io::Result<String> {
    let n = read_u32(r)? as usize;
    if n > 1 << 16 {
        return Err(bad(format!("vector name of {n} bytes")));
    }
    let mut b = vec![0u8; n];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|_| bad("vector name is not UTF-8".into()))
}
