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
//! u8 format (1) | u32 op count | ops...
//! op:  u8 tag | id | body
//!      tag 1 Insert           body: vector, optional payload
//!      tag 2 Delete           body: (none)
//!      tag 3 UpdateVector     body: vector
//!      tag 4 SetPayload       body: payload
//!      tag 5 OverwritePayload body: payload
//!      tag 6 DeletePayload    body: u32 key count, strings
//!      tag 7 ClearPayload     body: (none)
//! id:      u8 0 + u64 (number) | u8 1 + string
//! string:  u32 length + UTF-8 bytes
//! vector:  u32 length + f32 values
//! payload: u32 length + JSON object bytes; optional payload: u8 0 (none) | u8 1 + payload
//! ```
//!
//! Partition image (also the file format of `PartitionSnapshot` / `PartitionRestore`):
//!
//! ```text
//! "AMPART\0\0" | u16 format (1) | u32 dim | u8 metric | u64 version | u64 entry count
//! entries: u32 slot | u64 version | id | optional payload
//! the HNSW index as `Hnsw::write_to` writes it (graph and vectors, its own checksum)
//! u32 CRC-32C of everything before it
//! ```

use std::io::{self, Write};

use ametist_core::hnsw::Hnsw;
use ametist_core::{Metric, Payload, PointId};

use crate::messages::{DeleteVector, InsertVector, UpdateVector, WriteOp};

const RECORD_FORMAT: u8 = 1;
const IMAGE_MAGIC: &[u8; 8] = b"AMPART\0\0";
const IMAGE_FORMAT: u16 = 1;

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

/// Encodes a batch of per-point ops as one WAL record. Filter ops must have been expanded.
pub fn encode_ops(ops: &[WriteOp]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64 + ops.len() * 32);
    out.push(RECORD_FORMAT);
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

    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }
}

/// Decodes a WAL record written by [`encode_ops`].
pub fn decode_ops(b: &[u8]) -> Result<Vec<WriteOp>, DecodeError> {
    let mut r = Reader::new(b);
    let format = r.u8("record format")?;
    if format != RECORD_FORMAT {
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
    pub index: Hnsw,
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
/// `index` holds their vectors at those slots.
pub fn write_image<'e>(
    w: &mut dyn Write,
    dim: usize,
    metric: Metric,
    version: u64,
    entries: impl ExactSizeIterator<Item = (u32, u64, &'e PointId, Option<&'e Payload>)>,
    index: &Hnsw,
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
        if format != IMAGE_FORMAT {
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
        if !rest.is_empty() {
            return err(format!("{} bytes after the index", rest.len()));
        }
        if index.dim() != dim || index.metric() != metric {
            return err("the index's dimension or metric differs from the image header");
        }
        if index.len() != entries.len() {
            return err(format!("{} entries but {} live points in the index", entries.len(), index.len()));
        }
        let mut seen_slots = vec![false; index.slots()];
        let mut ids = std::collections::HashSet::with_capacity(entries.len());
        for e in &entries {
            if !index.is_live(e.slot) {
                return err(format!("entry {} names slot {}, which is not live in the index", e.id, e.slot));
            }
            if std::mem::replace(&mut seen_slots[e.slot as usize], true) {
                return err(format!("slot {} appears twice", e.slot));
            }
            if !ids.insert(&e.id) {
                return err(format!("id {} appears twice", e.id));
            }
        }
        Ok(PartitionImage { dim, metric, version, entries, index })
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

    #[test]
    fn image_round_trip_and_damage() {
        let mut index = Hnsw::new(Metric::Euclid, 2, HnswParams::default());
        let ids = [PointId::Num(1), PointId::Str("two".into()), PointId::Num(3)];
        let mut entries = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let slot = index.insert(&[i as f32, 1.0]);
            entries.push(ImageEntry { slot, version: i as u64 + 1, id: id.clone(), payload: None });
        }
        let image = PartitionImage { dim: 2, metric: Metric::Euclid, version: 9, entries, index };
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
