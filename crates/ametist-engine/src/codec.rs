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
//! u8 format (3) | u32 op count | ops...
//! op:  u8 tag | id | body
//!      tag 2 Delete           body: (none)
//!      tag 4 SetPayload       body: payload
//!      tag 5 OverwritePayload body: payload
//!      tag 6 DeletePayload    body: u32 key count, strings
//!      tag 7 ClearPayload     body: (none)
//!      tag 10 DeleteVectors   body: u32 name count, strings
//!      tag 11 Insert          body: optional payload, vectors
//!      tag 12 UpdateVector    body: vectors
//! id:      u8 0 + u64 (number) | u8 1 + string
//! string:  u32 length + UTF-8 bytes
//! vector:  u32 length + f32 values
//! payload: u32 length + JSON object bytes; optional payload: u8 0 (none) | u8 1 + payload
//! vectors: u32 dense count, (string name, vector)*,   the unnamed vector is named ""
//!          u32 sparse count, (string name, u32 n, u32 indices[n], f32 values[n])*
//! ```
//!
//! Records of earlier builds still decode: format 1 (tag 1 Insert: vector, optional
//! payload; tag 3 UpdateVector: vector, both of the unnamed vector) and format 2 (also tag 8
//! Insert: unnamed vector (empty for none), optional payload, named vectors; tag 9 Update:
//! named vectors). They decode into the ops of today, the unnamed vector as the field `""`.
//!
//! Partition image (also the file format of `PartitionSnapshot` / `PartitionRestore`):
//!
//! ```text
//! "AMPART\0\0" | u16 format (3) | u32 dim | u8 metric | u64 version | u64 entry count
//! entries: u32 slot | u64 version | id | optional payload
//! the vector fields as `VectorFields::write_to` writes them (the unnamed one as "")
//! u32 CRC-32C of everything before it
//! ```
//!
//! `dim` and `metric` are the unnamed vector's (`dim` 0 when the collection has none), to
//! check an image against its collection. Formats 1 and 2 (earlier builds) are still read:
//! after the entries they hold the unnamed vectors' HNSW index, whose slots are the entries'
//! slots (an empty one-dimensional placeholder when `dim` is 0), then in format 2 the named
//! fields; every entry has an unnamed vector when `dim` is not 0.

use std::io::{self, Write};

use ametist_core::hnsw::Hnsw;
use ametist_core::{Metric, Payload, PointId};

use ametist_core::sparse::SparseVector;

use crate::messages::{DeleteVector, InsertVector, NamedVectors, UpdateVector, WriteOp, UNNAMED};
use crate::vector_fields::VectorFields;

/// Records of the first builds: unnamed-vector ops only.
const RECORD_FORMAT_V1: u8 = 1;
/// Records of builds with named vectors beside the unnamed one (tags 8..10).
const RECORD_FORMAT_V2: u8 = 2;
/// The format this build writes: every vector is a field (tags 11, 12).
const RECORD_FORMAT: u8 = 3;
const IMAGE_MAGIC: &[u8; 8] = b"AMPART\0\0";
/// Images of the first builds: no named-vector section.
const IMAGE_FORMAT_V1: u16 = 1;
/// Images with the unnamed vectors' index apart from the named fields.
const IMAGE_FORMAT_V2: u16 = 2;
/// The format this build writes: every vector is a field.
const IMAGE_FORMAT: u16 = 3;

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
    out.push(RECORD_FORMAT);
    put_len(&mut out, ops.len())?;
    for op in ops {
        match op {
            WriteOp::Insert(p) => {
                out.push(11);
                put_id(&mut out, &p.id)?;
                put_opt_payload(&mut out, p.metadata.as_ref())?;
                put_named(&mut out, &p.vectors)?;
            }
            WriteOp::Delete(d) => {
                out.push(2);
                put_id(&mut out, &d.id)?;
            }
            WriteOp::Update(u) => {
                out.push(12);
                put_id(&mut out, &u.id)?;
                put_named(&mut out, &u.vectors)?;
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
            WriteOp::DeleteVectors { id, names } => {
                out.push(10);
                put_id(&mut out, id)?;
                put_len(&mut out, names.len())?;
                for n in names {
                    put_str(&mut out, n)?;
                }
            }
            WriteOp::ByFilter { .. } | WriteOp::Conditional { .. } => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "filter and conditional ops are resolved before logging",
                ))
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
    if !(RECORD_FORMAT_V1..=RECORD_FORMAT).contains(&format) {
        return err(format!("unknown record format {format}"));
    }
    // The unnamed vector of an earlier build's record, as the field `""`.
    let unnamed = |v: Vec<f32>, mut named: NamedVectors| {
        if !v.is_empty() {
            named.dense.insert(UNNAMED.to_string(), v);
        }
        named
    };
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
            1 if format < RECORD_FORMAT => {
                let v = r.vector()?;
                WriteOp::Insert(InsertVector { id, vectors: NamedVectors::unnamed(v), metadata: r.opt_payload()? })
            }
            2 => WriteOp::Delete(DeleteVector { id }),
            3 if format < RECORD_FORMAT => {
                WriteOp::Update(UpdateVector { id, vectors: NamedVectors::unnamed(r.vector()?) })
            }
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
            8 if format == RECORD_FORMAT_V2 => {
                let v = r.vector()?;
                let metadata = r.opt_payload()?;
                WriteOp::Insert(InsertVector { id, vectors: unnamed(v, r.named()?), metadata })
            }
            9 if format == RECORD_FORMAT_V2 => WriteOp::Update(UpdateVector { id, vectors: r.named()? }),
            10 if format >= RECORD_FORMAT_V2 => WriteOp::DeleteVectors { id, names: r.strings("vector name")? },
            11 if format == RECORD_FORMAT => {
                let metadata = r.opt_payload()?;
                WriteOp::Insert(InsertVector { id, vectors: r.named()?, metadata })
            }
            12 if format == RECORD_FORMAT => WriteOp::Update(UpdateVector { id, vectors: r.named()? }),
            t => return err(format!("unknown op tag {t}")),
        });
    }
    if r.remaining() != 0 {
        return err(format!("{} bytes after the last op", r.remaining()));
    }
    Ok(ops)
}

// ----- partition images -----------------------------------------------------------------

/// One live point of an image: its slot, the operation that last wrote it, its id and
/// payload. Its vectors are in the fields, keyed by that slot.
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
    /// Every vector field (the unnamed vector as `""`), keyed by the entries' slots.
    pub fields: VectorFields,
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
/// `fields` holds their vectors, keyed by those slots.
pub fn write_image<'e>(
    w: &mut dyn Write,
    dim: usize,
    metric: Metric,
    version: u64,
    entries: impl ExactSizeIterator<Item = (u32, u64, &'e PointId, Option<&'e Payload>)>,
    fields: &VectorFields,
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
    fields.write_to(&mut cw)?;
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
            &self.fields,
        )
    }

    /// Reads and fully validates an image: checksum, format, slots and ids are unique, and
    /// every vector belongs to an entry. Images of earlier formats are converted.
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
        if !(IMAGE_FORMAT_V1..=IMAGE_FORMAT).contains(&format) {
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
        let fields = if format == IMAGE_FORMAT {
            VectorFields::read_from(&mut rest).map_err(|e| DecodeError(format!("vector fields: {e}")))?
        } else {
            read_legacy_fields(&mut rest, format, dim, metric, &entries)?
        };
        if !rest.is_empty() {
            return err(format!("{} bytes after the vector fields", rest.len()));
        }
        let mut seen_slots = std::collections::HashSet::with_capacity(entries.len());
        let mut ids = std::collections::HashSet::with_capacity(entries.len());
        for e in &entries {
            if e.slot == u32::MAX || !seen_slots.insert(e.slot) {
                return err(format!("slot {} appears twice", e.slot));
            }
            if !ids.insert(&e.id) {
                return err(format!("id {} appears twice", e.id));
            }
        }
        fields.check_points(&seen_slots).map_err(DecodeError)?;
        Ok(PartitionImage { dim, metric, version, entries, fields })
    }
}

/// The vector fields of a format 1 or 2 image: the unnamed vectors' index, whose slots are
/// the entries' own, becomes the field `""`; format 2's named fields follow it.
fn read_legacy_fields(
    rest: &mut &[u8],
    format: u16,
    dim: usize,
    metric: Metric,
    entries: &[ImageEntry],
) -> Result<VectorFields, DecodeError> {
    let index = Hnsw::read_from(rest).map_err(|e| DecodeError(format!("index: {e}")))?;
    let mut fields = if format == IMAGE_FORMAT_V2 {
        VectorFields::read_from(rest).map_err(|e| DecodeError(format!("named vectors: {e}")))?
    } else {
        VectorFields::default()
    };
    // Without an unnamed vector the index is an empty one-dimensional placeholder.
    let has_unnamed = dim > 0;
    if index.dim() != dim.max(1) || index.metric() != metric || (!has_unnamed && !index.is_empty()) {
        return err("the index's dimension or metric differs from the image header");
    }
    if has_unnamed {
        if index.len() != entries.len() {
            return err(format!("{} entries but {} live points in the index", entries.len(), index.len()));
        }
        if let Some(e) = entries.iter().find(|e| !index.is_live(e.slot)) {
            return err(format!("entry {} names slot {}, which is not live in the index", e.id, e.slot));
        }
        if fields.has_dense(UNNAMED) {
            return err("the unnamed vector appears twice");
        }
        fields.adopt_unnamed(index, entries.iter().map(|e| e.slot));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IndexConfig, SparseVectorParams, VectorParams};
    use ametist_core::hnsw::HnswParams;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    fn sample_ops() -> Vec<WriteOp> {
        let mut p = Payload::new();
        p.insert("k".into(), serde_json::json!({"a": [1, 2.5, "x"], "b": null}));
        vec![
            WriteOp::Insert(InsertVector::new(PointId::Num(7), vec![1.0, -2.5], Some(p.clone()))),
            WriteOp::Insert(InsertVector::new(PointId::Str("abc".into()), vec![0.0, 3.0], None)),
            WriteOp::Delete(DeleteVector { id: PointId::Num(u64::MAX) }),
            WriteOp::Update(UpdateVector { id: PointId::Num(7), vectors: vec![4.0, 5.0].into() }),
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

    fn mixed_vectors() -> NamedVectors {
        let mut v = NamedVectors::default();
        v.dense.insert("text".into(), vec![0.5, -1.0, 2.0]);
        v.sparse.insert("words".into(), SparseVector { indices: vec![2, 9], values: vec![-0.25, 1.5] });
        v
    }

    #[test]
    fn field_ops_round_trip() {
        let mut with_unnamed = mixed_vectors();
        with_unnamed.dense.insert(UNNAMED.into(), vec![1.0, 2.0]);
        let ops = vec![
            WriteOp::Insert(InsertVector {
                id: PointId::Num(1),
                vectors: mixed_vectors(),
                metadata: Some(Payload::new()),
            }),
            WriteOp::Insert(InsertVector { id: PointId::Num(4), vectors: NamedVectors::default(), metadata: None }),
            WriteOp::Insert(InsertVector { id: PointId::Num(5), vectors: with_unnamed.clone(), metadata: None }),
            WriteOp::Update(UpdateVector { id: PointId::Str("x".into()), vectors: with_unnamed }),
            WriteOp::DeleteVectors { id: PointId::Num(2), names: vec!["".into(), "text".into(), "words".into()] },
            WriteOp::Delete(DeleteVector { id: PointId::Num(3) }),
        ];
        let bytes = encode_ops(&ops).unwrap();
        assert_eq!(bytes[0], RECORD_FORMAT);
        assert_eq!(decode_ops(&bytes).unwrap(), ops);
        for cut in 0..bytes.len() {
            assert!(decode_ops(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // Today's tags are not valid in an earlier format's record.
        let mut old = bytes.clone();
        old[0] = RECORD_FORMAT_V2;
        assert!(decode_ops(&old).is_err());
    }

    #[test]
    fn records_of_earlier_builds_decode_into_fields() {
        // Format 1, as the first builds wrote it: an insert of id 5 with unnamed vector [1.0]
        // and no payload, then an update of its vector to [2.0].
        let mut v1 = vec![RECORD_FORMAT_V1, 2, 0, 0, 0, 1, 0];
        v1.extend_from_slice(&5u64.to_le_bytes());
        put_vector(&mut v1, &[1.0]).unwrap();
        v1.push(0);
        v1.extend_from_slice(&[3, 0]);
        v1.extend_from_slice(&5u64.to_le_bytes());
        put_vector(&mut v1, &[2.0]).unwrap();
        assert_eq!(
            decode_ops(&v1).unwrap(),
            vec![
                WriteOp::Insert(InsertVector::new(PointId::Num(5), vec![1.0], None)),
                WriteOp::Update(UpdateVector { id: PointId::Num(5), vectors: vec![2.0].into() }),
            ]
        );
        // Format 2: tag 8 with an unnamed vector and named ones, tag 8 without an unnamed
        // vector (empty), tag 9 (named update), tag 10.
        let mut v2 = vec![RECORD_FORMAT_V2, 4, 0, 0, 0];
        for (id, unnamed) in [(1u64, vec![3.0f32, 4.0]), (2, vec![])] {
            v2.push(8);
            put_id(&mut v2, &PointId::Num(id)).unwrap();
            put_vector(&mut v2, &unnamed).unwrap();
            put_opt_payload(&mut v2, None).unwrap();
            put_named(&mut v2, &mixed_vectors()).unwrap();
        }
        v2.push(9);
        put_id(&mut v2, &PointId::Num(1)).unwrap();
        put_named(&mut v2, &mixed_vectors()).unwrap();
        v2.push(10);
        put_id(&mut v2, &PointId::Num(2)).unwrap();
        put_len(&mut v2, 1).unwrap();
        put_str(&mut v2, "text").unwrap();
        let mut first = mixed_vectors();
        first.dense.insert(UNNAMED.into(), vec![3.0, 4.0]);
        assert_eq!(
            decode_ops(&v2).unwrap(),
            vec![
                WriteOp::Insert(InsertVector { id: PointId::Num(1), vectors: first, metadata: None }),
                WriteOp::Insert(InsertVector { id: PointId::Num(2), vectors: mixed_vectors(), metadata: None }),
                WriteOp::Update(UpdateVector { id: PointId::Num(1), vectors: mixed_vectors() }),
                WriteOp::DeleteVectors { id: PointId::Num(2), names: vec!["text".into()] },
            ]
        );
        // Format 1 never held tags 8 and up.
        let mut wrong = v2.clone();
        wrong[0] = RECORD_FORMAT_V1;
        assert!(decode_ops(&wrong).is_err());
    }

    /// An image as a build before format 3 wrote it: the unnamed vectors' index apart, its
    /// slots the entries' own, then (format 2) the named fields.
    fn legacy_image(
        format: u16,
        dim: usize,
        metric: Metric,
        entries: &[ImageEntry],
        index: &Hnsw,
        named: &VectorFields,
    ) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(IMAGE_MAGIC);
        b.extend_from_slice(&format.to_le_bytes());
        put_len(&mut b, dim).unwrap();
        b.push(metric_code(metric));
        b.extend_from_slice(&7u64.to_le_bytes());
        b.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        for e in entries {
            put_u32(&mut b, e.slot);
            b.extend_from_slice(&e.version.to_le_bytes());
            put_id(&mut b, &e.id).unwrap();
            put_opt_payload(&mut b, e.payload.as_ref()).unwrap();
        }
        index.write_to(&mut b).unwrap();
        if format == IMAGE_FORMAT_V2 {
            named.write_to(&mut b).unwrap();
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn images_of_earlier_builds_open_with_the_unnamed_vector_as_a_field() {
        let mut index = Hnsw::new(Metric::Dot, 2, HnswParams::default());
        let a = index.insert(&[1.0, 2.0]);
        let b = index.insert(&[3.0, 4.0]);
        index.delete(a);
        let c = index.insert(&[5.0, 6.0]);
        let entries: Vec<ImageEntry> = [(b, 8), (c, 9)]
            .iter()
            .map(|&(slot, id)| ImageEntry { slot, version: 4, id: PointId::Num(id), payload: None })
            .collect();
        let v1 = legacy_image(IMAGE_FORMAT_V1, 2, Metric::Dot, &entries, &index, &VectorFields::default());
        let back = PartitionImage::read(&v1).unwrap();
        assert_eq!(back.entries, entries);
        assert_eq!(back.fields.get(b).unnamed_vector(), Some(&[3.0, 4.0][..]));
        assert_eq!(back.fields.get(c).unnamed_vector(), Some(&[5.0, 6.0][..]));

        let named: BTreeMap<String, VectorParams> = [("text".to_string(), VectorParams::new(3, Metric::Euclid))].into();
        let mut fields = VectorFields::new(&named, &BTreeMap::new(), &IndexConfig::default());
        fields.set_all(c, &NamedVectors { dense: [("text".into(), vec![1.0, 1.0, 1.0])].into(), ..Default::default() });
        let v2 = legacy_image(IMAGE_FORMAT_V2, 2, Metric::Dot, &entries, &index, &fields);
        let back = PartitionImage::read(&v2).unwrap();
        let got = back.fields.get(c);
        assert_eq!(got.unnamed_vector(), Some(&[5.0, 6.0][..]));
        assert_eq!(got.dense["text"], vec![1.0, 1.0, 1.0]);
        // Written again, it is a format-3 image that reads back the same.
        let mut v3 = Vec::new();
        back.write_to(&mut v3).unwrap();
        assert_eq!(u16::from_le_bytes([v3[8], v3[9]]), IMAGE_FORMAT);
        let again = PartitionImage::read(&v3).unwrap();
        assert_eq!(again.fields.get(c), got);
        assert_eq!(again.fields.get(b).unnamed_vector(), Some(&[3.0, 4.0][..]));
        // An entry without its unnamed vector is refused in the old formats.
        let mut missing = entries.clone();
        missing.push(ImageEntry { slot: a, version: 1, id: PointId::Num(1), payload: None });
        assert!(PartitionImage::read(&legacy_image(
            IMAGE_FORMAT_V1,
            2,
            Metric::Dot,
            &missing,
            &index,
            &VectorFields::default()
        ))
        .is_err());
    }

    #[test]
    fn images_carry_every_subset_of_fields() {
        let dense: BTreeMap<String, VectorParams> = [
            (UNNAMED.to_string(), VectorParams::new(2, Metric::Cosine)),
            ("text".to_string(), VectorParams::new(3, Metric::Euclid)),
        ]
        .into();
        let sparse: BTreeMap<String, SparseVectorParams> =
            [("words".to_string(), SparseVectorParams::default())].into();
        let mut fields = VectorFields::new(&dense, &sparse, &IndexConfig::default());
        let mut all = mixed_vectors();
        all.dense.insert(UNNAMED.into(), vec![0.6, 0.8]);
        let mut only_sparse = all.clone();
        only_sparse.dense.clear();
        let subsets = [all, only_sparse, NamedVectors::default(), NamedVectors::unnamed(vec![1.0, 0.0])];
        for (slot, v) in subsets.iter().enumerate() {
            fields.set_all(slot as u32, v);
        }
        let entries = (0..subsets.len() as u32)
            .map(|slot| ImageEntry { slot, version: 1, id: PointId::Num(slot as u64), payload: None })
            .collect();
        let image = PartitionImage { dim: 2, metric: Metric::Cosine, version: 1, entries, fields };
        let mut bytes = Vec::new();
        image.write_to(&mut bytes).unwrap();
        let back = PartitionImage::read(&bytes).unwrap();
        for (slot, v) in subsets.iter().enumerate() {
            assert_eq!(&back.fields.get(slot as u32), v, "slot {slot}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(PartitionImage::read(&b).is_err(), "flip at {i}");
            assert!(PartitionImage::read(&bytes[..i]).is_err(), "cut at {i}");
        }
    }

    #[test]
    fn an_image_with_a_vector_of_no_entry_is_refused() {
        let dense: BTreeMap<String, VectorParams> = [(UNNAMED.to_string(), VectorParams::new(2, Metric::Dot))].into();
        let mut fields = VectorFields::new(&dense, &BTreeMap::new(), &IndexConfig::default());
        fields.set_all(0, &NamedVectors::unnamed(vec![1.0, 2.0]));
        fields.set_all(1, &NamedVectors::unnamed(vec![1.0, 2.0]));
        let entries = vec![ImageEntry { slot: 0, version: 1, id: PointId::Num(1), payload: None }];
        let image = PartitionImage { dim: 2, metric: Metric::Dot, version: 1, entries, fields };
        let mut bytes = Vec::new();
        image.write_to(&mut bytes).unwrap();
        assert!(PartitionImage::read(&bytes).is_err());
    }
}
