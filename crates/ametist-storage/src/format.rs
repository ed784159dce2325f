//! Byte layouts of WAL segments and snapshot files (documented in `docs/storage.md`).
//! All integers are little-endian.

use crate::Lsn;

/// WAL segment header magic.
pub const WAL_MAGIC: &[u8; 5] = b"AMWAL";
/// WAL format version written and read by this build.
pub const WAL_VERSION: u16 = 1;
/// Segment header: magic(5) version(2) flags(1) first_lsn(8) reserved(4) crc32c(4).
pub const WAL_HEADER_LEN: usize = 24;
/// Record header: crc32c(4) len(4) lsn(8), followed by `len` payload bytes.
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest record payload accepted by `append` and by recovery.
pub const MAX_RECORD_BYTES: usize = 256 << 20;

/// Snapshot trailer magic.
pub const SNAP_MAGIC: &[u8; 6] = b"AMSNAP";
pub const SNAP_VERSION: u16 = 1;
/// Snapshot trailer: magic(6) version(2) lsn(8) payload_len(8) payload_crc32c(4) trailer_crc32c(4).
pub const SNAP_TRAILER_LEN: usize = 32;

pub fn encode_wal_header(first_lsn: Lsn) -> [u8; WAL_HEADER_LEN] {
    let mut h = [0u8; WAL_HEADER_LEN];
    h[0..5].copy_from_slice(WAL_MAGIC);
    h[5..7].copy_from_slice(&WAL_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a segment header is not usable.
#[derive(Debug)]
pub enum HeaderError {
    /// Short, wrong magic, bad checksum: not a (complete) header.
    Invalid(String),
    /// A checksummed header of another version.
    Version(u16),
}

pub fn decode_wal_header(b: &[u8]) -> Result<Lsn, HeaderError> {
    if b.len() < WAL_HEADER_LEN {
        return Err(HeaderError::Invalid(format!(
            "segment is {} bytes, shorter than its {WAL_HEADER_LEN}-byte header",
            b.len()
        )));
    }
    let h = &b[..WAL_HEADER_LEN];
    if &h[0..5] != WAL_MAGIC {
        return Err(HeaderError::Invalid("bad magic (not \"AMWAL\")".into()));
    }
    let stored = u32::from_le_bytes(h[20..24].try_into().unwrap());
    if crc32c::crc32c(&h[..20]) != stored {
        return Err(HeaderError::Invalid("header checksum mismatch".into()));
    }
    let version = u16::from_le_bytes(h[5..7].try_into().unwrap());
    if version != WAL_VERSION {
        return Err(HeaderError::Version(version));
    }
    Ok(u64::from_le_bytes(h[8..16].try_into().unwrap()))
}

/// The checksum of a record: crc32c over len, lsn and payload (in that order, as on disk).
fn record_crc(len: u32, lsn: Lsn, payload: &[u8]) -> u32 {
    let mut head = [0u8; 12];
    head[0..4].copy_from_slice(&len.to_le_bytes());
    head[4..12].copy_from_slice(&lsn.to_le_bytes());
    let c = crc32c::crc32c(&head);
    crc32c::crc32c_append(c, payload)
}

pub fn encode_record(out: &mut Vec<u8>, lsn: Lsn, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&record_crc(len, lsn, payload).to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(payload);
}

pub fn encoded_len(payload_len: usize) -> u64 {
    (RECORD_HEADER_LEN + payload_len) as u64
}

/// Decodes the record at the start of `b`, which must carry `expected_lsn`. Returns the
/// payload range within `b` and the record's total size, or why the bytes are not that record.
/// The length is bounded (by `MAX_RECORD_BYTES` and by the bytes present) before anything is
/// read or allocated, and the checksum covers the length and the LSN, so zeros or garbage are
/// never taken for a record.
pub fn decode_record(b: &[u8], expected_lsn: Lsn) -> Result<(std::ops::Range<usize>, usize), String> {
    if b.len() < RECORD_HEADER_LEN {
        return Err(format!("{} bytes left, less than a {RECORD_HEADER_LEN}-byte record header", b.len()));
    }
    let crc = u32::from_le_bytes(b[0..4].try_into().unwrap());
    let len = u32::from_le_bytes(b[4..8].try_into().unwrap());
    let lsn = u64::from_le_bytes(b[8..16].try_into().unwrap());
    if len as usize > MAX_RECORD_BYTES {
        return Err(format!("record length {len} exceeds the maximum {MAX_RECORD_BYTES}"));
    }
    let end = RECORD_HEADER_LEN + len as usize;
    if end > b.len() {
        return Err(format!(
            "record length {len} runs past the end of the file ({} bytes left)",
            b.len() - RECORD_HEADER_LEN
        ));
    }
    let payload = &b[RECORD_HEADER_LEN..end];
    if record_crc(len, lsn, payload) != crc {
        return Err("record checksum mismatch".into());
    }
    if lsn != expected_lsn {
        return Err(format!("record carries LSN {lsn}, expected {expected_lsn}"));
    }
    Ok((RECORD_HEADER_LEN..end, end))
}

pub fn encode_snap_trailer(lsn: Lsn, payload_len: u64, payload_crc: u32) -> [u8; SNAP_TRAILER_LEN] {
    let mut t = [0u8; SNAP_TRAILER_LEN];
    t[0..6].copy_from_slice(SNAP_MAGIC);
    t[6..8].copy_from_slice(&SNAP_VERSION.to_le_bytes());
    t[8..16].copy_from_slice(&lsn.to_le_bytes());
    t[16..24].copy_from_slice(&payload_len.to_le_bytes());
    t[24..28].copy_from_slice(&payload_crc.to_le_bytes());
    let crc = crc32c::crc32c(&t[..28]);
    t[28..32].copy_from_slice(&crc.to_le_bytes());
    t
}

/// Why a snapshot file is not usable.
#[derive(Debug)]
pub enum SnapError {
    Invalid(String),
    Version(u16),
}

/// Verifies a whole snapshot file; returns (lsn, payload length).
pub fn verify_snapshot(b: &[u8]) -> Result<(Lsn, usize), SnapError> {
    if b.len() < SNAP_TRAILER_LEN {
        return Err(SnapError::Invalid(format!(
            "file is {} bytes, shorter than the {SNAP_TRAILER_LEN}-byte trailer",
            b.len()
        )));
    }
    let t = &b[b.len() - SNAP_TRAILER_LEN..];
    if &t[0..6] != SNAP_MAGIC {
        return Err(SnapError::Invalid("trailer magic missing (incomplete file?)".into()));
    }
    let stored = u32::from_le_bytes(t[28..32].try_into().unwrap());
    if crc32c::crc32c(&t[..28]) != stored {
        return Err(SnapError::Invalid("trailer checksum mismatch".into()));
    }
    let version = u16::from_le_bytes(t[6..8].try_into().unwrap());
    if version != SNAP_VERSION {
        return Err(SnapError::Version(version));
    }
    let lsn = u64::from_le_bytes(t[8..16].try_into().unwrap());
    let len = u64::from_le_bytes(t[16..24].try_into().unwrap());
    let payload_crc = u32::from_le_bytes(t[24..28].try_into().unwrap());
    let actual = (b.len() - SNAP_TRAILER_LEN) as u64;
    if len != actual {
        return Err(SnapError::Invalid(format!("trailer says {len} payload bytes, file holds {actual}")));
    }
    if crc32c::crc32c(&b[..len as usize]) != payload_crc {
        return Err(SnapError::Invalid("payload checksum mismatch".into()));
    }
    Ok((lsn, len as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_rejections() {
        let mut b = Vec::new();
        encode_record(&mut b, 7, b"hello");
        assert_eq!(b.len() as u64, encoded_len(5));
        let (r, size) = decode_record(&b, 7).unwrap();
        assert_eq!((&b[r], size), (&b"hello"[..], b.len()));
        assert!(decode_record(&b, 8).unwrap_err().contains("expected 8"));
        assert!(decode_record(&b[..b.len() - 1], 7).unwrap_err().contains("past the end"));
        // Zeros are never a record, whatever LSN is expected.
        let zeros = [0u8; 64];
        for lsn in [0, 1, 2] {
            assert!(decode_record(&zeros, lsn).is_err());
        }
        // An absurd length is rejected before looking further.
        let mut big = b.clone();
        big[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_record(&big, 7).unwrap_err().contains("exceeds the maximum"));
        // The checksum covers the length: a smaller length that still fits is caught.
        let mut short = b.clone();
        short[4..8].copy_from_slice(&3u32.to_le_bytes());
        assert!(decode_record(&short, 7).unwrap_err().contains("checksum"));
        // Empty payloads are records too.
        let mut e = Vec::new();
        encode_record(&mut e, 1, b"");
        assert_eq!(decode_record(&e, 1).unwrap().1, RECORD_HEADER_LEN);
    }

    #[test]
    fn header_round_trip_and_rejections() {
        let h = encode_wal_header(42);
        assert_eq!(&h[0..5], b"AMWAL");
        assert_eq!(decode_wal_header(&h).unwrap(), 42);
        assert!(matches!(decode_wal_header(&h[..10]), Err(HeaderError::Invalid(_))));
        assert!(matches!(decode_wal_header(&[0u8; 24]), Err(HeaderError::Invalid(_))));
        let mut bad = h;
        bad[9] ^= 1;
        assert!(matches!(decode_wal_header(&bad), Err(HeaderError::Invalid(_))));
        let mut v2 = h;
        v2[5] = 2;
        let crc = crc32c::crc32c(&v2[..20]);
        v2[20..24].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(decode_wal_header(&v2), Err(HeaderError::Version(2))));
    }

    #[test]
    fn snapshot_trailer() {
        let payload = b"state bytes".to_vec();
        let mut f = payload.clone();
        f.extend_from_slice(&encode_snap_trailer(9, payload.len() as u64, crc32c::crc32c(&payload)));
        assert_eq!(verify_snapshot(&f).unwrap(), (9, payload.len()));
        let mut bad = f.clone();
        bad[0] ^= 1;
        assert!(verify_snapshot(&bad).is_err());
        assert!(verify_snapshot(&f[1..]).is_err());
        assert!(verify_snapshot(&f[..f.len() - 1]).is_err());
    }
}
