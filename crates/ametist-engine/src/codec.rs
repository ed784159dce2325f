//! The engine's binary formats: WAL records (a batch of [`WriteOp`]s) and partition images
//! (the content of a snapshot: every live point's id, version and payload, plus the HNSW
//! graph with its vectors).
//!
//! All integers are little-endian. Decoding never trusts a length before checking it
//! against the bytes left, and rejects anything malformed with an error: garbage never
//! panics and never allocates more than the input's size.
//!
//! WAL record (the WAL adds its own length, LSN and CRC-32C around it):
//!
//! ```text
//! u8 format (1, or 2 when it holds tags 8..10) | u32 op count | ops...
//! op:  u8 tag | id | body
//!      tag 1 Insert           body: vector, optional payload
//!      tag 2 Delete           body: (none)
//!      tag 3 UpdateVector     body: vector
//!      tag 4 SetPayload       body: payload
//!      tag 5 OverwritePayload body: payload
//!      tag 6 DeletePayload    body: u32 key count, strings
//!      tag 7 ClearPayload     body: (none)
//!      tag 8 InsertNamed      body: vector, optional payload, named vectors
//!      tag 9 UpdateNamed      body: named vectors
//!      tag 10 DeleteVectors   body: u32 name count, strings
//! id:      u8 0 + u64 (number) | u8 1 + string
//! string:  u32 length + UTF-8 bytes
//! vector:  u32 length + f32 values
//! payload: u32 length + JSON object bytes; optional payload: u8 0 (none) | u8 1 + payload
//! named vectors: u32 dense count, (string name, vector)*,
//!                u32 sparse count, (string name, u32 n, u32 indices[n], f32 values[n])*
//! ```
//!
//! Records without named vectors are written in format 1, byte for byte as before, so a
//! log written by this build for an unnamed-vector collection is read by older builds too.
//!
//! Partition image (also the file format of `PartitionSnapshot` / `PartitionRestore`):
//!
//! ```text
//! "AMPART\0\0" | u16 format (1 or 2) | u32 dim | u8 metric | u64 version | u64 entry count
//! entries: u32 slot | u64 version | id | optional payload
//! the HNSW index as `Hnsw::write_to` writes it (graph and vectors, its own checksum)
//! format 2 only: the named vectors as `NamedFields::write_to` writes them
//! u32 CRC-32C of everything before it
//!
//! A collection without an unnamed vector has `dim` 0 and an empty one-dimensional
//! placeholder index; its entries' slots are the partition's point slots. Format 1 images
//! (no named section) are still read.
//! ```

use std::io::{self, Write};

use ametist_core::hnsw::Hnsw;
use ametist_core::{Metric, Payload, PointId};

use ametist_core::sparse::SparseVector;

use crate::messages::{DeleteVector, InsertNamed, InsertVector, NamedVectors, UpdateVector, WriteOp};
use crate::named_vectors::NamedFields;

/// Records with only unnamed-vector ops.
const RECORD_FORMAT: u8 = 1;
/// Records that also hold named-vector ops (tags 8..10).
const RECORD_FORMAT_NAMED: u8 = 2;
const IMAGE_MAGIC: &[u8; 8] = b"AMPART\0\0";
/// Images without a named-vector section.
const IMAGE_FORMAT_V1: u16 = 1;
/// The format this build writes.
const IMAGE_FORMAT: u16 = 2;

/// A decoding failure: what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(msg.into()))
}

// ----- encoding -------------------------------------------------------------------------

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_len(out: &mut Vec<u8>, n: usize) -> io::Result<()> {
    let n = u32::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "field longer than 4 GiB"))?;
    put_u32(out, n);
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) -> io::Result<()> {
    put_len(out, s.len())?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_id(out: &mut Vec<u8>, id: &PointId) -> io::Result<()> {
    match id {
        PointId::Num(n) => {
            out.push(0);
            out.extend_from_slice(&n.to_le_bytes());
        }
        PointId::Str(s) => {
            out.push(1);
            put_str(out, s)?;
        }
    }
    Ok(())
}

fn put_vector(out: &mut Vec<u8>, v: &[f32]) -> io::Result<()> {
    put_len(out, v.len())?;
    out.reserve(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    Ok(())
}

fn put_payload(out: &mut Vec<u8>, p: &Payload) -> io::Result<()> {
    let json = serde_json::to_vec(p).map_err(io::Error::other)?;
    put_len(out, json.len())?;
    out.extend_from_slice(&json);
    Ok(())
}

fn put_opt_payload(out: &mut Vec<u8>, p: Option<&Payload>) -> io::Result<()> {
    match p {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            put_payload(out, p)?;
        }
    }
    Ok(())
}

fn put_named(out: &mut Vec<u8>, named: &NamedVectors) -> io::Result<()> {
    put_len(out, named.dense.len())?;
    for (name, v) in &named.dense {
        put_str(out, name)?;
        put_vector(out, v)?;
    }
    put_len(out, named.sparse.len())?;
    for (name, v) in &named.sparse {
        put_str(out, name)?;
        put_len(out, v.indices.len())?;
        for i in &v.indices {
            put_u32(out, *i);
        }
        for x in &v.values {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    Ok(())
}

/// Encodes a batch of per-point ops as one WAL record. Filter ops must have been expanded.
pub fn encode_ops(ops: &[WriteOp]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64 + ops.len() * 32);
    let named = ops
        .iter()
        .any(|op| matches!(op, WriteOp::InsertNamed(_) | WriteOp::UpdateNamed { .. } | WriteOp::DeleteVectors { .. }));
    out.push(if named { RECORD_FORMAT_NAMED } else { RECORD_FORMAT });
    put_len(&mut out, ops.len())?;
    for op in ops {
        match op {
            WriteOp::Insert(p) => {
                out.push(1);
                put_id(&mut out, &p.id)?;
                put_vector(&mut out, &p.vector)?;
                put_opt_payload(&mut out, p.metadata.as_ref())?;
            }
            WriteOp::Delete(d) => {
                out.push(2);
                put_id(&mut out, &d.id)?;
            }
            WriteOp::Update(u) => {
                out.push(3);
                put_id(&mut out, &u.id)?;
                put_vector(&mut out, &u.vector)?;
            }
            WriteOp::SetPayload { id, payload } => {
                out.push(4);
                put_id(&mut out, id)?;
                put_payload(&mut out, payload)?;
            }
            WriteOp::OverwritePayload { id, payload } => {
                out.push(5);
                put_id(&mut out, id)?;
                put_payload(&mut out, payload)?;
            }
            WriteOp::DeletePayload { id, keys } => {
                out.push(6);
                put_id(&mut out, id)?;
                put_len(&mut out, keys.len())?;
                for k in keys {
                    put_str(&mut out, k)?;
                }
            }
            WriteOp::ClearPayload { id } => {
                out.push(7);
                put_id(&mut out, id)?;
            }
            WriteOp::InsertNamed(p) => {
                out.push(8);
                put_id(&mut out, &p.id)?;
                put_vector(&mut out, &p.vector)?;
                put_opt_payload(&mut out, p.metadata.as_ref())?;
                put_named(&mut out, &p.named)?;
            }
            WriteOp::UpdateNamed { id, vectors } => {
                out.push(9);
                put_id(&mut out, id)?;
                put_named(&mut out, vectors)?;
            }
            WriteOp::DeleteVectors { id, names } => {
                out.push(10);
                put_id(&mut out, id)?;
                put_len(&mut out, names.len())?;
                for n in names {
                    put_str(&mut out, n)?;
                }
            }
            WriteOp::ByFilter { .. } => {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "filter ops are expanded before logging"))
            }
        }
    }
    Ok(out)
}

// ----- decoding -------------------------------------------------------------------------

/// A cursor over bytes that checks every length against what is left.
pub(crate) struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Reader { b, pos: 0 }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.b.len() - self.pos < n {
            return err(format!("truncated {what} at byte {}", self.pos));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }

    fn string(&mut self, what: &str) -> Result<String, DecodeError> {
        let n = self.u32(what)? as usize;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError(format!("{what} is not UTF-8")))
    }

    fn id(&mut self) -> Result<PointId, DecodeError> {
        match self.u8("id tag")? {
            0 => Ok(PointId::Num(self.u64("numeric id")?)),
            1 => {
                let s = self.string("string id")?;
                if s.is_empty() {
                    return err("empty string id");
                }
                Ok(PointId::Str(s))
            }
            t => err(format!("unknown id tag {t}")),
        }
    }

    fn vector(&mut self) -> Result<Vec<f32>, DecodeError> {
        let n = self.u32("vector length")? as usize;
        let bytes = self.take(n.checked_mul(4).ok_or_else(|| DecodeError("vector too long".into()))?, "vector")?;
        let v: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        if v.iter().any(|x| !x.is_finite()) {
            return err("non-finite vector value");
        }
        Ok(v)
    }

    fn payload(&mut self) -> Result<Payload, DecodeError> {
        let n = self.u32("payload length")? as usize;
        let bytes = self.take(n, "payload")?;
        serde_json::from_slice(bytes).map_err(|e| DecodeError(format!("payload is not a JSON object: {e}")))
    }

    fn opt_payload(&mut self) -> Result<Option<Payload>, DecodeError> {
        match self.u8("payload flag")? {
            0 => Ok(None),
            1 => Ok(Some(self.payload()?)),
            t => err(format!("bad payload flag {t}")),
        }
    }

    fn strings(&mut self, what: &str) -> Result<Vec<String>, DecodeError> {
        let k = self.u32(what)? as usize;
        if k > self.remaining() / 4 {
            return err(format!("{what} count larger than the record"));
        }
        (0..k).map(|_| self.string(what)).collect()
    }

    fn named(&mut self) -> Result<NamedVectors, DecodeError> {
        let mut named = NamedVectors::default();
        let n = self.u32("dense vector count")? as usize;
        if n > self.remaining() / 8 {
            return err("dense vector count larger than the record");
        }
        for _ in 0..n {
            let name = self.string("vector name")?;
            let v = self.vector()?;
            if named.dense.insert(name, v).is_some() {
                return err("a vector name appears twice");
            }
        }
        let n = self.u32("sparse vector count")? as usize;
        if n > self.remaining() / 8 {
            return err("sparse vector count larger than the record");
        }
        for _ in 0..n {
            let name = self.string("vector name")?;
            let len = self.u32("sparse vector length")? as usize;
            let bytes = len.checked_mul(8).ok_or_else(|| DecodeError("sparse vector too long".into()))?;
            let raw = self.take(bytes, "sparse vector")?;
            let (i, v) = raw.split_at(len * 4);
            let indices = i.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
            let values = v.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
            let sv = SparseVector::new(indices, values).map_err(|e| DecodeError(e.to_string()))?;
            if named.sparse.insert(name, sv).is_some() {
                return err("a vector name appears twice");
            }
        }
        Ok(named)
    }

    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }
}

/// Decodes a WAL record written by [`encode_ops`].
pub fn decode_ops(b: &[u8]) -> Result<Vec<WriteOp>, DecodeError> {
    let mut r = Reader::new(b);
    let format = r.u8("record format")?;
    if format != RECORD_FORMAT && format != RECORD_FORMAT_NAMED {
        return err(format!("unknown record format {format}"));
    }
    let n = r.u32("op count")? as usize;
    // Every op takes at least 2 bytes: bounds the allocation by the input.
    if n > r.remaining() / 2 {
        return err(format!("op count {n} larger than the record"));
    }
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        let tag = r.u8("op tag")?;
        let id = r.id()?;
        ops.push(match tag {
            1 => WriteOp::Insert(InsertVector { id, vector: r.vector()?, metadata: r.opt_payload()? }),
            2 => WriteOp::Delete(DeleteVector { id }),
            3 => WriteOp::Update(UpdateVector { id, vector: r.vector()? }),
            4 => WriteOp::SetPayload { id, payload: r.payload()? },
            5 => WriteOp::OverwritePayload { id, payload: r.payload()? },
            6 => {
                let k = r.u32("key count")? as usize;
                if k > r.remaining() / 4 {
                    return err("key count larger than the record");
                }
                let mut keys = Vec::with_capacity(k);
                for _ in 0..k {
                    keys.push(r.string("payload key")?);
                }
                WriteOp::DeletePayload { id, keys }
            }
            7 => WriteOp::ClearPayload { id },
            8 if format == RECORD_FORMAT_NAMED => WriteOp::InsertNamed(InsertNamed {
                id,
                vector: r.vector()?,
                metadata: r.opt_payload()?,
                named: r.named()?,
            }),
            9 if format == RECORD_FORMAT_NAMED => WriteOp::UpdateNamed { id, vectors: r.named()? },
            10 if format == RECORD_FORMAT_NAMED => WriteOp::DeleteVectors { id, names: r.strings("vector name")? },
            t => return err(format!("unknown op tag {t}")),
        });
    }
    if r.remaining() != 0 {
        return err(format!("{} bytes after the last op", r.remaining()));
    }
    Ok(ops)
}

// ----- partition images -----------------------------------------------------------------

/// One live point of an image: its slot in the index, the operation that last wrote it, its
/// id and payload. Its vector is in the index at that slot.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEntry {
    pub slot: u32,
    pub version: u64,
    pub id: PointId,
    pub payload: Option<Payload>,
}

/// A partition's whole state, as a snapshot holds it.
#[derive(Debug)]
pub struct PartitionImage {
    pub dim: usize,
    pub metric: Metric,
    /// The operation (WAL LSN) the image reflects.
    pub version: u64,
    pub entries: Vec<ImageEntry>,
    /// The unnamed vectors (an empty placeholder when `dim` is 0).
    pub index: Hnsw,
    /// The named dense and sparse vectors, keyed by the entries' slots.
    pub named: NamedFields,
}

fn metric_code(m: Metric) -> u8 {
    match m {
        Metric::Cosine => 0,
        Metric::Dot => 1,
        Metric::Euclid => 2,
        Metric::Manhattan => 3,
    }
}

/// A writer that keeps the CRC-32C of what went through it.
pub(crate) struct CrcWriter<'a> {
    pub(crate) w: &'a mut dyn Write,
    pub(crate) crc: u32,
}

impl Write for CrcWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.w.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// Writes a partition image. `entries` yields every live point (slot, version, id, payload);
/// `index` holds their unnamed vectors at those slots, `named` their named vectors.
pub fn write_image<'e>(
    w: &mut dyn Write,
    dim: usize,
    metric: Metric,
    version: u64,
    entries: impl ExactSizeIterator<Item = (u32, u64, &'e PointId, Option<&'e Payload>)>,
    index: &Hnsw,
    named: &NamedFields,
) -> io::Result<()> {
    let mut cw = CrcWriter { w, crc: 0 };
    let mut buf = Vec::with_capacity(1 << 16);
    buf.extend_from_slice(IMAGE_MAGIC);
    buf.extend_from_slice(&IMAGE_FORMAT.to_le_bytes());
    put_len(&mut buf, dim)?;
    buf.push(metric_code(metric));
    buf.extend_from_slice(&version.to_le_bytes());
    buf.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (slot, version, id, payload) in entries {
        put_u32(&mut buf, slot);
        buf.extend_from_slice(&version.to_le_bytes());
        put_id(&mut buf, id)?;
        put_opt_payload(&mut buf, payload)?;
        if buf.len() >= 1 << 16 {
            cw.write_all(&buf)?;
            buf.clear();
        }
    }
    cw.write_all(&buf)?;
    index.write_to(&mut cw)?;
    named.write_to(&mut cw)?;
    let crc = cw.crc;
    w_all(cw.w, &crc.to_le_bytes())
}

fn w_all(w: &mut dyn Write, b: &[u8]) -> io::Result<()> {
    w.write_all(b)?;
    w.flush()
}

impl PartitionImage {
    /// Writes this image (the same bytes as [`write_image`] on a live partition).
    pub fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        write_image(
            w,
            self.dim,
            self.metric,
            self.version,
            self.entries.iter().map(|e| (e.slot, e.version, &e.id, e.payload.as_ref())),
            &self.index,
            &self.named,
        )
    }

    /// Reads and fully validates an image: checksum, format, every entry's slot is live in
    /// the index and every live slot has exactly one entry, ids are unique.
    pub fn read(b: &[u8]) -> Result<PartitionImage, DecodeError> {
        if b.len() < IMAGE_MAGIC.len() + 4 {
            return err("too short to be a partition image");
        }
        let (body, crc) = b.split_at(b.len() - 4);
        let mut r = Reader::new(body);
        if r.take(8, "magic")? != IMAGE_MAGIC {
            return err("not an Ametist partition image (bad magic)");
        }
        let format = r.u16("format")?;
        if format != IMAGE_FORMAT && format != IMAGE_FORMAT_V1 {
            return err(format!("unsupported partition image format {format} (this build reads {IMAGE_FORMAT})"));
        }
        if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return err("checksum mismatch");
        }
        let dim = r.u32("dim")? as usize;
        let metric = match r.u8("metric")? {
            0 => Metric::Cosine,
            1 => Metric::Dot,
            2 => Metric::Euclid,
            3 => Metric::Manhattan,
            m => return err(format!("unknown metric {m}")),
        };
        let version = r.u64("version")?;
        let n = r.u64("entry count")?;
        // Each entry takes at least 14 bytes.
        if n > (r.remaining() / 14) as u64 {
            return err(format!("entry count {n} larger than the image"));
        }
        let mut entries = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let slot = r.u32("slot")?;
            let version = r.u64("entry version")?;
            let id = r.id()?;
            let payload = r.opt_payload()?;
            entries.push(ImageEntry { slot, version, id, payload });
        }
        let mut rest = &body[r.pos..];
        let index = Hnsw::read_from(&mut rest).map_err(|e| DecodeError(format!("index: {e}")))?;
        let named = if format == IMAGE_FORMAT_V1 {
            NamedFields::default()
        } else {
            NamedFields::read_from(&mut rest).map_err(|e| DecodeError(format!("named vectors: {e}")))?
        };
        if !rest.is_empty() {
            return err(format!("{} bytes after the index", rest.len()));
        }
        // Without an unnamed vector the index is an empty one-dimensional placeholder.
        let has_default = dim > 0;
        if index.dim() != dim.max(1) || index.metric() != metric || (!has_default && !index.is_empty()) {
            return err("the index's dimension or metric differs from the image header");
        }
        if has_default && index.len() != entries.len() {
            return err(format!("{} entries but {} live points in the index", entries.len(), index.len()));
        }
        let mut seen_slots = std::collections::HashSet::with_capacity(entries.len());
        let mut ids = std::collections::HashSet::with_capacity(entries.len());
        for e in &entries {
            if has_default && !index.is_live(e.slot) {
                return err(format!("entry {} names slot {}, which is not live in the index", e.id, e.slot));
            }
            if e.slot == u32::MAX || !seen_slots.insert(e.slot) {
                return err(format!("slot {} appears twice", e.slot));
            }
            if !ids.insert(&e.id) {
                return err(format!("id {} appears twice", e.id));
            }
        }
        named.check_points(&seen_slots).map_err(DecodeError)?;
        Ok(PartitionImage { dim, metric, version, entries, index, named })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ametist_core::hnsw::HnswParams;
    use rand::{Rng, SeedableRng};

    fn sample_ops() -> Vec<WriteOp> {
        let mut p = Payload::new();
        p.insert("k".into(), serde_json::json!({"a": [1, 2.5, "x"], "b": null}));
        vec![
            WriteOp::Insert(InsertVector { id: PointId::Num(7), vector: vec![1.0, -2.5], metadata: Some(p.clone()) }),
            WriteOp::Insert(InsertVector { id: PointId::Str("abc".into()), vector: vec![0.0, 3.0], metadata: None }),
            WriteOp::Delete(DeleteVector { id: PointId::Num(u64::MAX) }),
            WriteOp::Update(UpdateVector { id: PointId::Num(7), vector: vec![4.0, 5.0] }),
            WriteOp::SetPayload { id: PointId::Num(7), payload: p.clone() },
            WriteOp::OverwritePayload { id: PointId::Str("abc".into()), payload: p },
            WriteOp::DeletePayload { id: PointId::Num(7), keys: vec!["k".into(), "ü".into()] },
            WriteOp::ClearPayload { id: PointId::Num(7) },
        ]
    }

    #[test]
    fn ops_round_trip() {
        let ops = sample_ops();
        assert_eq!(decode_ops(&encode_ops(&ops).unwrap()).unwrap(), ops);
        assert_eq!(decode_ops(&encode_ops(&[]).unwrap()).unwrap(), vec![]);
    }

    #[test]
    fn garbled_records_are_errors_not_panics() {
        let seed: u64 = std::env::var("AMETIST_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xC0DEC);
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let good = encode_ops(&sample_ops()).unwrap();
        // Every truncation is an error.
        for cut in 0..good.len() {
            assert!(decode_ops(&good[..cut]).is_err(), "cut at {cut}");
        }
        // Random damage never panics.
        for _ in 0..5000 {
            let mut b = good.clone();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
            let _ = decode_ops(&b);
            let n = rng.random_range(0..64);
            let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            let _ = decode_ops(&junk);
        }
    }

    fn named_ops() -> Vec<WriteOp> {
        let mut named = NamedVectors::default();
        named.dense.insert("text".into(), vec![0.5, -1.0, 2.0]);
        named.sparse.insert("words".into(), SparseVector { indices: vec![9, 2], values: vec![1.5, -0.25] });
        vec![
            WriteOp::InsertNamed(InsertNamed {
                id: PointId::Num(1),
                vector: vec![],
                named: named.clone(),
                metadata: Some(Payload::new()),
            }),
            WriteOp::UpdateNamed { id: PointId::Str("x".into()), vectors: named },
            WriteOp::DeleteVectors { id: PointId::Num(2), names: vec!["text".into(), "words".into()] },
            WriteOp::Delete(DeleteVector { id: PointId::Num(3) }),
        ]
    }

    #[test]
    fn named_ops_round_trip_in_format_2() {
        let ops = named_ops();
        let bytes = encode_ops(&ops).unwrap();
        assert_eq!(bytes[0], RECORD_FORMAT_NAMED);
        assert_eq!(decode_ops(&bytes).unwrap(), ops);
        for cut in 0..bytes.len() {
            assert!(decode_ops(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // Named tags are not valid in a format-1 record.
        let mut old = bytes.clone();
        old[0] = RECORD_FORMAT;
        assert!(decode_ops(&old).is_err());
    }

    #[test]
    fn unnamed_records_keep_format_1_bytes() {
        // A record as the previous build wrote it: format 1, one insert of id 5, vector
        // [1.0], no payload. It still decodes, and this build writes the same bytes.
        let mut old = vec![1u8, 1, 0, 0, 0, 1, 0];
        old.extend_from_slice(&5u64.to_le_bytes());
        old.extend_from_slice(&1u32.to_le_bytes());
        old.extend_from_slice(&1.0f32.to_le_bytes());
        old.push(0);
        let ops = vec![WriteOp::Insert(InsertVector { id: PointId::Num(5), vector: vec![1.0], metadata: None })];
        assert_eq!(decode_ops(&old).unwrap(), ops);
        assert_eq!(encode_ops(&ops).unwrap(), old);
    }

    #[test]
    fn format_1_images_still_open() {
        let mut index = Hnsw::new(Metric::Dot, 2, HnswParams::default());
        let slot = index.insert(&[1.0, 2.0]);
        let entries = vec![ImageEntry { slot, version: 4, id: PointId::Num(8), payload: None }];
        let image =
            PartitionImage { dim: 2, metric: Metric::Dot, version: 4, entries, index, named: NamedFields::default() };
        let mut v2 = Vec::new();
        image.write_to(&mut v2).unwrap();
        // The format-1 layout is the format-2 one without the named section (two empty
        // counts) and with format 1 in the header.
        let body_end = v2.len() - 4;
        let mut v1 = v2[..body_end - 8].to_vec();
        assert_eq!(&v2[body_end - 8..body_end], &[0u8; 8]);
        v1[8..10].copy_from_slice(&IMAGE_FORMAT_V1.to_le_bytes());
        let crc = crc32c::crc32c(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        let back = PartitionImage::read(&v1).unwrap();
        assert_eq!(back.entries, image.entries);
        assert_eq!(back.index.vector(slot), &[1.0, 2.0]);
        assert!(back.named.is_empty());
    }

    #[test]
    fn images_carry_named_vectors() {
        use crate::config::{IndexConfig, SparseVectorParams, VectorParams};
        let dense: std::collections::BTreeMap<String, VectorParams> =
            [("text".to_string(), VectorParams::new(3, Metric::Euclid))].into();
        let sparse: std::collections::BTreeMap<String, SparseVectorParams> =
            [("words".to_string(), SparseVectorParams::default())].into();
        let mut named = NamedFields::new(&dense, &sparse, &IndexConfig::default());
        let mut nv = NamedVectors::default();
        nv.dense.insert("text".into(), vec![1.0, 2.0, 3.0]);
        nv.sparse.insert("words".into(), SparseVector { indices: vec![4], values: vec![0.5] });
        named.set_all(7, &nv);
        let mut only_sparse = nv.clone();
        only_sparse.dense.clear();
        named.set_all(2, &only_sparse);
        let entries = [2u32, 7]
            .iter()
            .map(|&slot| ImageEntry { slot, version: 1, id: PointId::Num(slot as u64), payload: None })
            .collect();
        let image = PartitionImage {
            dim: 0,
            metric: Metric::Cosine,
            version: 1,
            entries,
            index: Hnsw::new(Metric::Cosine, 1, HnswParams::default()),
            named,
        };
        let mut bytes = Vec::new();
        image.write_to(&mut bytes).unwrap();
        let back = PartitionImage::read(&bytes).unwrap();
        assert_eq!(back.named.get(7), nv);
        assert_eq!(back.named.get(2), only_sparse);
        for i in 0..bytes.len() {
            assert!(PartitionImage::read(&bytes[..i]).is_err(), "cut at {i}");
        }
    }

    #[test]
    fn image_round_trip_and_damage() {
        let mut index = Hnsw::new(Metric::Euclid, 2, HnswParams::default());
        let ids = [PointId::Num(1), PointId::Str("two".into()), PointId::Num(3)];
        let mut entries = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let slot = index.insert(&[i as f32, 1.0]);
            entries.push(ImageEntry { slot, version: i as u64 + 1, id: id.clone(), payload: None });
        }
        let image = PartitionImage {
            dim: 2,
            metric: Metric::Euclid,
            version: 9,
            entries,
            index,
            named: NamedFields::default(),
        };
        let mut bytes = Vec::new();
        image.write_to(&mut bytes).unwrap();
        let back = PartitionImage::read(&bytes).unwrap();
        assert_eq!(back.entries, image.entries);
        assert_eq!(back.version, 9);
        assert_eq!(back.index.vector(back.entries[2].slot), &[2.0, 1.0]);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(PartitionImage::read(&b).is_err(), "flip at {i}");
            assert!(PartitionImage::read(&bytes[..i]).is_err(), "cut at {i}");
        }
    }
}
