//! A partition's named vectors: one HNSW index per named dense vector and one inverted
//! index per named sparse vector, both keyed by the partition's point slots.
//!
//! The unnamed vector lives in the partition's own index, whose slots are the point slots.
//! A named dense vector has an index of its own because a point may lack it: its slots are
//! mapped to point slots both ways, so filters (which speak point slots) work unchanged.
//! Sparse indexes take point slots directly (they hold no vector for absent slots).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};

use ametist_core::flat::Candidate;
use ametist_core::hnsw::Hnsw;
use ametist_core::sparse::{SparseIndex, SparseStats, SparseVector};
use ametist_core::{vector, Metric};

use crate::config::{IndexConfig, IndexKind, Quantization, SparseVectorParams, VectorParams};
use crate::error::EngineError;
use crate::messages::{NamedIndexStats, NamedVectors};

/// Marks an index slot that holds no live vector.
const NO_POINT: u32 = u32::MAX;

/// Every named vector of one partition.
#[derive(Debug, Default)]
pub struct NamedFields {
    dense: BTreeMap<String, DenseField>,
    sparse: BTreeMap<String, SparseIndex>,
}

/// One named dense vector's index and its slot mapping.
#[derive(Debug)]
struct DenseField {
    index: Hnsw,
    /// Point slot → slot in `index`.
    field_slot: HashMap<u32, u32>,
    /// Slot in `index` → point slot, or [`NO_POINT`].
    point_slot: Vec<u32>,
}

impl DenseField {
    fn new(params: VectorParams, index: &IndexConfig) -> DenseField {
        DenseField {
            index: crate::partition::new_index(params.metric, params.dim, &params.index_config(index)),
            field_slot: HashMap::new(),
            point_slot: Vec::new(),
        }
    }

    fn link(&mut self, point: u32, slot: u32) {
        let s = slot as usize;
        if self.point_slot.len() <= s {
            self.point_slot.resize(s + 1, NO_POINT);
        }
        self.point_slot[s] = point;
        self.field_slot.insert(point, slot);
    }

    fn set(&mut self, point: u32, v: &[f32]) {
        match self.field_slot.get(&point) {
            Some(&slot) => self.index.update(slot, v),
            None => {
                let slot = self.index.insert(v);
                self.link(point, slot);
            }
        }
    }

    fn remove(&mut self, point: u32) {
        if let Some(slot) = self.field_slot.remove(&point) {
            self.index.delete(slot);
            self.point_slot[slot as usize] = NO_POINT;
        }
    }
}

impl NamedFields {
    /// Empty indexes for the collection's named vectors.
    pub fn new(
        dense: &BTreeMap<String, VectorParams>,
        sparse: &BTreeMap<String, SparseVectorParams>,
        index: &IndexConfig,
    ) -> NamedFields {
        NamedFields {
            dense: dense.iter().map(|(n, p)| (n.clone(), DenseField::new(*p, index))).collect(),
            sparse: sparse.iter().map(|(n, p)| (n.clone(), SparseIndex::new(p.modifier))).collect(),
        }
    }

    /// True when the collection has no named vectors at all.
    pub fn is_empty(&self) -> bool {
        self.dense.is_empty() && self.sparse.is_empty()
    }

    /// Checks vectors against the configured names, dimensions and values.
    pub fn check(&self, named: &NamedVectors) -> Result<(), EngineError> {
        for (name, v) in &named.dense {
            let field = self.dense.get(name).ok_or_else(|| unknown_name(name))?;
            vector::validate(field.index.dim(), v)
                .map_err(|e| EngineError::invalid(format!("vector `{name}`: {e}")))?;
        }
        for (name, v) in &named.sparse {
            if !self.sparse.contains_key(name) {
                return Err(unknown_name(name));
            }
            v.validate().map_err(|e| EngineError::invalid(format!("vector `{name}`: {e}")))?;
        }
        Ok(())
    }

    /// Checks that every name is configured (dense or sparse).
    pub fn check_names(&self, names: &[String]) -> Result<(), EngineError> {
        match names.iter().find(|n| !self.dense.contains_key(*n) && !self.sparse.contains_key(*n)) {
            Some(n) => Err(unknown_name(n)),
            None => Ok(()),
        }
    }

    /// Gives a point exactly these named vectors: the ones it had but `named` lacks are
    /// removed (an upsert replaces the whole point).
    pub fn set_all(&mut self, point: u32, named: &NamedVectors) {
        self.remove(point);
        self.update(point, named);
    }

    /// Gives new points their named vectors, linking each dense name's vectors into its
    /// graph in one batch on `threads` threads (as the unnamed index does).
    pub fn insert_new(&mut self, points: &[(u32, NamedVectors)], threads: usize) {
        for (point, _) in points {
            self.remove(*point);
        }
        for (name, field) in &mut self.dense {
            let batch: Vec<(u32, &[f32])> =
                points.iter().filter_map(|(p, n)| n.dense.get(name).map(|v| (*p, v.as_slice()))).collect();
            if batch.is_empty() {
                continue;
            }
            let vectors: Vec<&[f32]> = batch.iter().map(|b| b.1).collect();
            let slots = field.index.insert_batch(&vectors, threads);
            for ((point, _), slot) in batch.iter().zip(slots) {
                field.link(*point, slot);
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

    /// Replaces the named vectors `named` holds and keeps the point's others.
    pub fn update(&mut self, point: u32, named: &NamedVectors) {
        for (name, v) in &named.dense {
            self.dense.get_mut(name).expect("names were checked").set(point, v);
        }
        for (name, v) in &named.sparse {
            self.sparse.get_mut(name).expect("names were checked").add(point, v).expect("vectors were checked");
        }
    }

    /// Removes the named vectors `names` from a point.
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

    /// Removes every named vector of a point (it was deleted).
    pub fn remove(&mut self, point: u32) {
        for f in self.dense.values_mut() {
            f.remove(point);
        }
        for s in self.sparse.values_mut() {
            s.remove(point);
        }
    }

    /// The point's named vectors.
    pub fn get(&self, point: u32) -> NamedVectors {
        let mut out = NamedVectors::default();
        for (name, f) in &self.dense {
            if let Some(&slot) = f.field_slot.get(&point) {
                out.dense.insert(name.clone(), f.index.vector(slot).to_vec());
            }
        }
        for (name, s) in &self.sparse {
            if let Some(v) = s.get(point) {
                out.sparse.insert(name.clone(), v);
            }
        }
        out
    }

    /// The metric of a named dense vector.
    pub fn metric(&self, name: &str) -> Result<Metric, EngineError> {
        Ok(self.dense.get(name).ok_or_else(|| unknown_name(name))?.index.metric())
    }

    /// What a walk on the named dense vector's index reads.
    pub fn quantization(&self, name: &str) -> Result<Quantization, EngineError> {
        Ok(self.dense.get(name).ok_or_else(|| unknown_name(name))?.index.quantization())
    }

    /// The best `k` points by the named dense vector, as (point slot, distance) with the
    /// internal "lower is closer" distance. `candidates` are the point slots a filter
    /// matches when the caller knows them; `accept` is the full check.
    #[allow(clippy::too_many_arguments)]
    pub fn search_dense(
        &self,
        name: &str,
        query: &[f32],
        k: usize,
        ef: usize,
        codes: bool,
        exact: bool,
        config: &IndexConfig,
        candidates: Option<&[u32]>,
        accept: Option<&dyn Fn(u32) -> bool>,
    ) -> Result<Vec<Candidate>, EngineError> {
        let field = self.dense.get(name).ok_or_else(|| unknown_name(name))?;
        vector::validate(field.index.dim(), query)
            .map_err(|e| EngineError::invalid(format!("vector `{name}`: {e}")))?;
        let live = field.index.len();
        let to_point = |c: Candidate| Candidate { slot: field.point_slot[c.slot as usize], distance: c.distance };
        // A filter whose matches are known and few: score them exactly (a graph walk would
        // wade through rejected nodes).
        if let Some(points) = candidates {
            if exact || points.len() <= config.full_scan_threshold.max(live / 10) {
                let metric = field.index.metric();
                let mut hits: Vec<Candidate> = points
                    .iter()
                    .filter_map(|p| field.field_slot.get(p).map(|&s| (*p, s)))
                    .filter(|&(p, _)| accept.is_none_or(|f| f(p)))
                    .map(|(p, s)| Candidate { slot: p, distance: metric.distance(query, field.index.vector(s)) })
                    .collect();
                hits.sort_unstable();
                hits.truncate(k);
                return Ok(hits);
            }
        }
        let by_field = |slot: u32| {
            let p = field.point_slot.get(slot as usize).copied().unwrap_or(NO_POINT);
            p != NO_POINT && accept.is_none_or(|f| f(p))
        };
        let hits = if exact || config.kind == IndexKind::Flat || live < config.full_scan_threshold {
            field.index.search_exact(query, k, Some(&by_field))
        } else {
            // Widen the beam for the share the filter rejects.
            let ef = match candidates {
                Some(c) => ef.saturating_mul((live / c.len().max(1)).clamp(1, 4)),
                None if accept.is_some() => ef.saturating_mul(2),
                None => ef,
            };
            field.index.search_walk(query, k, ef, Some(&by_field), codes)
        };
        Ok(hits.into_iter().map(to_point).collect())
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

    /// Bytes held by the named dense indexes.
    pub fn bytes(&self) -> u64 {
        self.dense.values().map(|f| f.index.stats().bytes as u64).sum()
    }

    /// Each named dense vector's index: its points and what its walk reads.
    pub fn dense_stats(&self) -> BTreeMap<String, NamedIndexStats> {
        self.dense
            .iter()
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
    /// names with the same dimensions, metrics and modifiers. Names the image lacks (the
    /// image predates them or is of the old format) start empty.
    pub fn conform(
        &mut self,
        dense: &BTreeMap<String, VectorParams>,
        sparse: &BTreeMap<String, SparseVectorParams>,
        index: &IndexConfig,
    ) -> Result<(), String> {
        if let Some(n) = self.dense.keys().find(|n| !dense.contains_key(*n)) {
            return Err(format!("the snapshot holds named vector `{n}`, which the collection does not have"));
        }
        if let Some(n) = self.sparse.keys().find(|n| !sparse.contains_key(*n)) {
            return Err(format!("the snapshot holds sparse vector `{n}`, which the collection does not have"));
        }
        for (name, p) in dense {
            match self.dense.get_mut(name) {
                Some(f) if f.index.dim() != p.dim || f.index.metric() != p.metric => {
                    return Err(format!(
                        "named vector `{name}` is {}-dimensional {:?} in the snapshot, {}-dimensional {:?} in the collection",
                        f.index.dim(),
                        f.index.metric(),
                        p.dim,
                        p.metric
                    ))
                }
                Some(f) => {
                    f.index.set_ef_search(index.ef_search);
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
            if f.index.len() != f.field_slot.len() {
                return Err(format!(
                    "named vector `{name}`: {} mapped slots, {} live",
                    f.field_slot.len(),
                    f.index.len()
                ));
            }
            for (&p, &s) in &f.field_slot {
                if !points.contains(&p) || !f.index.is_live(s) {
                    return Err(format!("named vector `{name}`: slot {s} of point slot {p} is not live"));
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

    /// Writes every named index (the named section of a partition image):
    ///
    /// ```text
    /// u32 dense count; per name: string, u64 pair count, (u32 point slot, u32 index slot)*,
    ///                            the HNSW index as `Hnsw::write_to` writes it
    /// u32 sparse count; per name: string, the index as `SparseIndex::write_to` writes it
    /// ```
    pub fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        w.write_all(&(self.dense.len() as u32).to_le_bytes())?;
        for (name, f) in &self.dense {
            write_str(w, name)?;
            let mut pairs: Vec<(u32, u32)> = f.field_slot.iter().map(|(&p, &s)| (p, s)).collect();
            pairs.sort_unstable();
            let mut buf = Vec::with_capacity(8 + pairs.len() * 8);
            buf.extend_from_slice(&(pairs.len() as u64).to_le_bytes());
            for (p, s) in pairs {
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

    /// Reads what [`NamedFields::write_to`] wrote; malformed input is an error.
    pub fn read_from(r: &mut dyn Read) -> io::Result<NamedFields> {
        let mut out = NamedFields::default();
        let n = read_u32(r)?;
        for _ in 0..n {
            let name = read_str(r)?;
            let pairs = read_u64(r)?;
            let mut field_slot = HashMap::new();
            let mut mapped = Vec::new();
            for _ in 0..pairs {
                let (p, s) = (read_u32(r)?, read_u32(r)?);
                if field_slot.insert(p, s).is_some() || s == NO_POINT {
                    return Err(bad(format!("named vector `{name}`: point slot {p} appears twice")));
                }
                mapped.push((p, s));
            }
            let index = Hnsw::read_from(r)?;
            let mut point_slot = vec![NO_POINT; index.slots()];
            for (p, s) in mapped {
                let cell = point_slot
                    .get_mut(s as usize)
                    .ok_or_else(|| bad(format!("named vector `{name}`: slot {s} outside the index")))?;
                if *cell != NO_POINT {
                    return Err(bad(format!("named vector `{name}`: slot {s} appears twice")));
                }
                *cell = p;
            }
            if out.dense.insert(name.clone(), DenseField { index, field_slot, point_slot }).is_some() {
                return Err(bad(format!("named vector `{name}` appears twice")));
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
}

fn unknown_name(name: &str) -> EngineError {
    EngineError::invalid(format!("Not existing vector name error: {name}"))
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
