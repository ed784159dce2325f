//! The little binary codec the text and sparse index snapshots share: little-endian
//! integers written through a buffer, an FNV-1a checksum over everything before it, and a
//! reader that turns truncation into `InvalidData` and never allocates for a length it has
//! not yet seen the bytes of.

use std::io::{self, Read, Write};

const CHUNK: usize = 1 << 16;
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// An `InvalidData` error prefixed with what was being read.
pub(crate) fn bad(what: &str, msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what} snapshot: {}", msg.into()))
}

pub(crate) struct Out<'a> {
    w: &'a mut dyn Write,
    buf: Vec<u8>,
    sum: u64,
}

impl<'a> Out<'a> {
    pub(crate) fn new(w: &'a mut dyn Write) -> Self {
        Out { w, buf: Vec::with_capacity(CHUNK + 1024), sum: FNV_START }
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.sum = fnv(self.sum, b);
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
    pub(crate) fn u32(&mut self, v: u32) -> io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    pub(crate) fn u64(&mut self, v: u64) -> io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    pub(crate) fn f32(&mut self, v: f32) -> io::Result<()> {
        self.u32(v.to_bits())
    }
    /// A length-prefixed byte string.
    pub(crate) fn blob(&mut self, b: &[u8]) -> io::Result<()> {
        self.u32(b.len() as u32)?;
        self.bytes(b)
    }
    /// Appends the checksum and flushes.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        let sum = self.sum;
        self.buf.extend_from_slice(&sum.to_le_bytes());
        self.w.write_all(&self.buf)?;
        self.w.flush()
    }
}

pub(crate) struct In<'a> {
    r: &'a mut dyn Read,
    sum: u64,
    what: &'static str,
}

impl<'a> In<'a> {
    pub(crate) fn new(r: &'a mut dyn Read, what: &'static str) -> Self {
        In { r, sum: FNV_START, what }
    }
    pub(crate) fn bad(&self, msg: impl Into<String>) -> io::Error {
        bad(self.what, msg)
    }
    pub(crate) fn bytes(&mut self, b: &mut [u8]) -> io::Result<()> {
        self.r.read_exact(b).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.bad("truncated")
            } else {
                e
            }
        })?;
        self.sum = fnv(self.sum, b);
        Ok(())
    }
    pub(crate) fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0; 4];
        self.bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    pub(crate) fn u64(&mut self) -> io::Result<u64> {
        let mut b = [0; 8];
        self.bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Reads `n` u32 words in chunks, calling `f` on each chunk (never allocating for `n`
    /// up front).
    pub(crate) fn u32s(&mut self, n: u64, mut f: impl FnMut(&[u32]) -> io::Result<()>) -> io::Result<()> {
        let mut left = n;
        let mut bytes = vec![0u8; (CHUNK as u64).min(n.saturating_mul(4)).max(4) as usize];
        let mut words = Vec::with_capacity(bytes.len() / 4);
        while left > 0 {
            let take = left.min(bytes.len() as u64 / 4) as usize;
            self.bytes(&mut bytes[..take * 4])?;
            words.clear();
            words.extend(bytes[..take * 4].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            f(&words)?;
            left -= take as u64;
        }
        Ok(())
    }
    /// A length-prefixed byte string of at most `max` bytes.
    pub(crate) fn blob(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(self.bad(format!("string of {n} bytes exceeds the limit of {max}")));
        }
        let mut v = vec![0u8; n];
        self.bytes(&mut v)?;
        Ok(v)
    }
    /// Checks the magic and the version.
    pub(crate) fn header(&mut self, magic: &[u8; 8], version: u32) -> io::Result<()> {
        let mut m = [0u8; 8];
        self.bytes(&mut m)?;
        if &m != magic {
            return Err(self.bad("wrong magic (not this kind of snapshot)"));
        }
        let v = self.u32()?;
        if v != version {
            return Err(self.bad(format!("unsupported version {v}")));
        }
        Ok(())
    }
    /// Reads the trailing checksum and compares it with the one computed.
    pub(crate) fn finish(self) -> io::Result<()> {
        let computed = self.sum;
        let mut b = [0u8; 8];
        self.r.read_exact(&mut b).map_err(|_| bad(self.what, "truncated (checksum)"))?;
        if u64::from_le_bytes(b) != computed {
            return Err(bad(self.what, "checksum mismatch"));
        }
        Ok(())
    }
}

/// A capacity to reserve for `n` claimed items: never more than a modest bound, so a
/// corrupt length cannot make the reader allocate gigabytes before the bytes run out.
pub(crate) fn capped(n: u64) -> usize {
    n.min(1 << 16) as usize
}
