//! Snapshot format of an index: a versioned header, the per-slot tables, the node blocks
//! (vector + layer-0 links) and the upper-layer arena, then an FNV-1a checksum of all of it.
//! Reading validates everything (checksum, sizes, every link) and never trusts a length
//! enough to allocate for it up front, so corrupt input gives an error, not a panic.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::*;

const MAGIC: &[u8; 8] = b"AMHNSW\0\0";
const VERSION: u32 = 1;
const CHUNK: usize = 1 << 16;

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("hnsw snapshot: {}", msg.into()))
}

struct Fnv(u64);
impl Fnv {
    fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        self.0 = h;
    }
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

struct Out<'a> {
    w: &'a mut dyn Write,
    buf: Vec<u8>,
    sum: Fnv,
}

impl Out<'_> {
    fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.sum.update(b);
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
    fn u32(&mut self, v: u32) -> io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    fn finish(mut self) -> io::Result<()> {
        let sum = self.sum.0;
        self.buf.extend_from_slice(&sum.to_le_bytes());
        self.w.write_all(&self.buf)?;
        self.w.flush()
    }
}

struct In<'a> {
    r: &'a mut dyn Read,
    sum: Fnv,
}

impl In<'_> {
    fn bytes(&mut self, b: &mut [u8]) -> io::Result<()> {
        self.r.read_exact(b).map_err(
            |e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    bad("truncated")
                } else {
                    e
                }
            },
        )?;
        self.sum.update(b);
        Ok(())
    }
    fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0; 4];
        self.bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> io::Result<u64> {
        let mut b = [0; 8];
        self.bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Reads `n` u32 words in chunks, calling `f` on each chunk.
    fn words(&mut self, n: usize, mut f: impl FnMut(&[u32]) -> io::Result<()>) -> io::Result<()> {
        let mut left = n;
        let mut bytes = vec![0u8; CHUNK.min(n * 4).max(4)];
        let mut words = Vec::with_capacity(bytes.len() / 4);
        while left > 0 {
            let take = left.min(bytes.len() / 4);
            self.bytes(&mut bytes[..take * 4])?;
            words.clear();
            words.extend(bytes[..take * 4].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            f(&words)?;
            left -= take;
        }
        Ok(())
    }
}

fn metric_code(m: Metric) -> u32 {
    match m {
        Metric::Cosine => 0,
        Metric::Dot => 1,
        Metric::Euclid => 2,
        Metric::Manhattan => 3,
    }
}

impl Hnsw {
    /// Serialises graph and vectors (for snapshots).
    pub fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut o = Out { w, buf: Vec::with_capacity(CHUNK + 4096), sum: Fnv(FNV_START) };
        o.bytes(MAGIC)?;
        o.u32(VERSION)?;
        o.u32(metric_code(self.metric))?;
        for v in [self.dim, self.m, self.params.ef_construction, self.params.ef_search] {
            o.u32(v as u32)?;
        }
        let n = self.store.len();
        o.u64(n as u64)?;
        o.u64(self.upper.len() as u64)?;
        o.u64(self.entry.load(Relaxed))?;
        o.u64(self.live as u64)?;
        o.u64(self.rng)?;
        o.bytes(&self.levels)?;
        o.bytes(&self.state)?;
        for &off in &self.upper_off {
            o.u32(off)?;
        }
        for s in 0..n as u32 {
            for &x in self.store.vector(s) {
                o.u32(x.to_bits())?;
            }
            for w in self.store.links0(s) {
                o.u32(w.load(Relaxed))?;
            }
        }
        for w in &self.upper {
            o.u32(w.load(Relaxed))?;
        }
        o.finish()
    }

    /// Reads an index written by [`Hnsw::write_to`]; corrupt input is an error.
    pub fn read_from(r: &mut dyn Read) -> io::Result<Hnsw> {
        let mut i = In { r, sum: Fnv(FNV_START) };
        let mut magic = [0u8; 8];
        i.bytes(&mut magic)?;
        if &magic != MAGIC {
            return Err(bad("not an Ametist HNSW snapshot"));
        }
        let version = i.u32()?;
        if version != VERSION {
            return Err(bad(format!("unsupported version {version}")));
        }
        let metric = match i.u32()? {
            0 => Metric::Cosine,
            1 => Metric::Dot,
            2 => Metric::Euclid,
            3 => Metric::Manhattan,
            x => return Err(bad(format!("unknown metric {x}"))),
        };
        let dim = i.u32()? as usize;
        let m = i.u32()? as usize;
        let ef_construction = i.u32()? as usize;
        let ef_search = i.u32()? as usize;
        if dim == 0 || dim > 1 << 16 || !(2..=1024).contains(&m) || ef_construction == 0 || ef_search == 0 {
            return Err(bad("bad parameters"));
        }
        let n = i.u64()?;
        let upper_len = i.u64()?;
        let entry = i.u64()?;
        let live = i.u64()?;
        let rng = i.u64()?;
        if n >= u32::MAX as u64 || upper_len >= u32::MAX as u64 || live > n {
            return Err(bad("bad sizes"));
        }
        let (n, upper_len) = (n as usize, upper_len as usize);
        let mut h = Hnsw::new(metric, dim, HnswParams { m, ef_construction, ef_search });
        h.rng = rng;
        h.live = live as usize;
        // Per-slot tables, grown as the bytes arrive.
        for table in 0..2 {
            let mut left = n;
            let mut buf = vec![0u8; CHUNK.min(n).max(1)];
            while left > 0 {
                let take = left.min(buf.len());
                i.bytes(&mut buf[..take])?;
                if table == 0 { &mut h.levels } else { &mut h.state }.extend_from_slice(&buf[..take]);
                left -= take;
            }
        }
        if h.levels.iter().any(|&l| l as usize > MAX_LEVEL) || h.state.iter().any(|&s| s > FREE) {
            return Err(bad("bad level or state"));
        }
        if h.state.iter().filter(|&&s| s == LIVE).count() != h.live {
            return Err(bad("live count does not match"));
        }
        i.words(n, |w| {
            h.upper_off.extend_from_slice(w);
            Ok(())
        })?;
        for (s, (&off, &level)) in h.upper_off.iter().zip(&h.levels).enumerate() {
            let ok = if level == 0 {
                off == NO_UPPER
            } else {
                off != NO_UPPER && off as usize + level as usize * (1 + m) <= upper_len
            };
            if !ok {
                return Err(bad(format!("bad upper-layer offset of slot {s}")));
            }
        }
        let node_words = dim + 1 + h.m0;
        let mut slot = 0u32;
        let mut pos = 0usize;
        i.words(n * node_words, |w| {
            for &x in w {
                if pos == 0 {
                    slot = h.store.push();
                }
                if pos < dim {
                    let v = f32::from_bits(x);
                    if !v.is_finite() {
                        return Err(bad(format!("non-finite value in slot {slot}")));
                    }
                    h.store.vector_mut(slot)[pos] = v;
                } else {
                    h.store.links0(slot)[pos - dim].store(x, Relaxed);
                }
                pos = (pos + 1) % node_words;
            }
            Ok(())
        })?;
        h.upper.reserve_exact(upper_len.min(1 << 24));
        i.words(upper_len, |w| {
            h.upper.extend(w.iter().map(|&x| AtomicU32::new(x)));
            Ok(())
        })?;
        let computed = i.sum.0;
        let mut b = [0u8; 8];
        i.r.read_exact(&mut b).map_err(|_| bad("truncated (checksum)"))?;
        if u64::from_le_bytes(b) != computed {
            return Err(bad("checksum mismatch"));
        }
        h.store.shrink_to_fit();
        h.locks = (0..n).map(|_| SpinLock::default()).collect();
        h.entry.store(entry, Relaxed);
        if entry != NO_ENTRY && ((entry as u32) as usize >= n || entry >> 32 > MAX_LEVEL as u64) {
            return Err(bad("bad entry point"));
        }
        for s in 0..n as u32 {
            match h.state[s as usize] {
                DELETED => h.pending.push(s),
                FREE => h.free.push(s),
                _ => {}
            }
        }
        h.free.sort_unstable_by(|a, b| b.cmp(a));
        h.check(false).map_err(bad)?;
        Ok(h)
    }
}
