//! Torn and garbled WAL tails: at every byte offset, recovery yields exactly a prefix of the
//! synced records, cuts the rest durably, and the log stays usable.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ametist_storage::{
    segment_file_name, ErrorClass, MemFs, Recovered, Wal, WalOptions, RECORD_HEADER_LEN, WAL_HEADER_LEN,
};
use rand::rngs::StdRng;
use rand::Rng;

/// A log written on MemFs: its segment files and where each record lies.
struct Log {
    payloads: Vec<Vec<u8>>,
    /// (path, bytes, first lsn) per segment, oldest first.
    segments: Vec<(PathBuf, Vec<u8>, u64)>,
}

fn opts(segment_bytes: u64) -> WalOptions {
    WalOptions { segment_bytes, ..WalOptions::default() }
}

fn build_log(rng: &mut StdRng, n: usize, segment_bytes: u64) -> Log {
    let fs = MemFs::new();
    let dir = Path::new("/p/wal");
    let (mut wal, rec) = Wal::open_with(Arc::new(fs.clone()), dir, 0, opts(segment_bytes)).unwrap();
    assert!(rec.records.is_empty());
    let mut payloads = Vec::new();
    for i in 0..n {
        let len = if i == 2 { 0 } else { rng.random_range(0..24) };
        let p = common::payload(rng, len);
        assert_eq!(wal.append(&p).unwrap(), i as u64 + 1);
        payloads.push(p);
        if rng.random_bool(0.5) {
            wal.sync().unwrap();
        }
    }
    wal.sync().unwrap();
    let segments = fs
        .paths()
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            let first: u64 = name.strip_suffix(".wal").unwrap().parse().unwrap();
            let bytes = fs.file_bytes(&p).unwrap();
            (p, bytes, first)
        })
        .collect();
    Log { payloads, segments }
}

/// How many records of the tail segment `orig` are intact (byte-identical, in order) in `file`.
fn intact_records(orig: &[u8], file: &[u8]) -> (usize, usize) {
    if file.len() < WAL_HEADER_LEN || file[..WAL_HEADER_LEN] != orig[..WAL_HEADER_LEN] {
        return (0, 0);
    }
    let mut off = WAL_HEADER_LEN;
    let mut n = 0;
    while off < orig.len() {
        let len = u32::from_le_bytes(orig[off + 4..off + 8].try_into().unwrap()) as usize;
        let end = off + RECORD_HEADER_LEN + len;
        if end > file.len() || file[off..end] != orig[off..end] {
            break;
        }
        off = end;
        n += 1;
    }
    (n, off)
}

fn open(fs: &MemFs) -> Result<(Wal, Recovered), ametist_storage::StorageError> {
    Wal::open_with(Arc::new(fs.clone()), Path::new("/p/wal"), 0, opts(160))
}

/// Replaces the tail segment of `log` by `tail`, recovers, and checks everything.
fn check_tail(log: &Log, tail: &[u8], what: &str) {
    let (tail_path, orig, tail_first) = log.segments.last().unwrap();
    let fs = MemFs::new();
    for (p, b, _) in &log.segments[..log.segments.len() - 1] {
        fs.write_file_durable(p, b);
    }
    fs.write_file_durable(tail_path, tail);
    let before = (*tail_first - 1) as usize;
    let (n, valid_end) = intact_records(orig, tail);
    let expect = before + n;

    let (mut wal, rec) = open(&fs).unwrap_or_else(|e| panic!("{what}: open failed: {e}"));
    let got: Vec<_> = rec.records.iter().map(|(l, p)| (*l, p.clone())).collect();
    let want: Vec<_> = log.payloads[..expect].iter().enumerate().map(|(i, p)| (i as u64 + 1, p.clone())).collect();
    assert_eq!(got, want, "{what}: recovered records");
    let header_ok = valid_end > 0;
    match &rec.truncated {
        None => assert!(header_ok && tail.len() == valid_end, "{what}: tail not reported as torn"),
        Some(t) => {
            assert_eq!(&t.segment, tail_path, "{what}");
            if header_ok {
                assert_eq!(t.offset as usize, valid_end, "{what}: cut offset");
                assert_eq!(t.bytes_dropped as usize, tail.len() - valid_end, "{what}");
            } else {
                assert_eq!(t.offset, 0, "{what}");
                assert_eq!(t.bytes_dropped as usize, tail.len(), "{what}");
            }
        }
    }
    // The cut is durable: the file holds exactly the valid prefix now.
    if header_ok {
        assert_eq!(fs.file_bytes(tail_path).unwrap(), orig[..valid_end], "{what}");
    }
    assert_eq!(wal.last_lsn(), expect as u64, "{what}");
    // The log goes on with the next LSN, and a second recovery is clean.
    assert_eq!(wal.append(b"next").unwrap(), expect as u64 + 1, "{what}");
    wal.sync().unwrap();
    drop(wal);
    let (wal, rec) = open(&fs).unwrap();
    assert!(rec.truncated.is_none(), "{what}: second recovery found {:?}", rec.truncated);
    assert_eq!(rec.records.len(), expect + 1, "{what}");
    assert_eq!(rec.records.last().unwrap(), &(expect as u64 + 1, b"next".to_vec()));
    for (i, (lsn, _)) in rec.records.iter().enumerate() {
        assert_eq!(*lsn, i as u64 + 1, "{what}: LSNs continuous");
    }
    assert_eq!(wal.last_lsn(), expect as u64 + 1);
}

fn garble_every_offset(log: &Log, rng: &mut StdRng) {
    let orig = &log.segments.last().unwrap().1;
    for k in 0..=orig.len() {
        check_tail(log, &orig[..k], &format!("truncated at {k}"));
        let junk_len = rng.random_range(1..48);
        let mut t = orig[..k].to_vec();
        t.extend((0..junk_len).map(|_| rng.random::<u8>()));
        check_tail(log, &t, &format!("random bytes from {k}"));
        let mut t = orig[..k].to_vec();
        t.extend(std::iter::repeat_n(0u8, junk_len));
        check_tail(log, &t, &format!("zeros from {k}"));
        if k < orig.len() {
            let mut t = orig.clone();
            t[k] ^= rng.random_range(1..=255u8);
            check_tail(log, &t, &format!("byte {k} flipped"));
            // Zeroed from k to the end (size persisted, data not).
            let mut t = orig.clone();
            t[k..].fill(0);
            check_tail(log, &t, &format!("zeroed from {k}"));
        }
    }
}

#[test]
fn every_offset_of_a_single_segment_tail() {
    let mut rng = common::rng("every_offset_of_a_single_segment_tail");
    let log = build_log(&mut rng, 12, 1 << 20);
    assert_eq!(log.segments.len(), 1);
    garble_every_offset(&log, &mut rng);
}

#[test]
fn every_offset_of_the_tail_after_earlier_segments() {
    let mut rng = common::rng("every_offset_of_the_tail_after_earlier_segments");
    let log = build_log(&mut rng, 16, 160);
    assert!(log.segments.len() >= 3, "{} segments", log.segments.len());
    garble_every_offset(&log, &mut rng);
}

#[test]
fn damage_in_an_earlier_segment_is_an_error_naming_the_file() {
    let mut rng = common::rng("damage_in_an_earlier_segment_is_an_error_naming_the_file");
    let log = build_log(&mut rng, 16, 160);
    let (p0, b0, _) = &log.segments[0];
    let second_first = log.segments[1].2;
    for k in 0..b0.len() {
        let fs = MemFs::new();
        for (p, b, _) in &log.segments {
            fs.write_file_durable(p, b);
        }
        let mut bad = b0.clone();
        bad[k] ^= rng.random_range(1..=255u8);
        fs.write_file_durable(p0, &bad);
        let err = open(&fs).expect_err("corruption in a non-tail segment must not be cut");
        assert_eq!(err.class(), ErrorClass::Corrupt, "{err}");
        let name = segment_file_name(1);
        assert!(err.to_string().contains(&name), "{err}");
        // Covered by a snapshot: the damaged segment is not needed and not even read.
        let (wal, rec) =
            Wal::open_with(Arc::new(fs.clone()), Path::new("/p/wal"), second_first - 1, opts(160)).unwrap();
        assert_eq!(rec.records.first().unwrap().0, second_first);
        assert_eq!(wal.last_lsn(), log.payloads.len() as u64);
    }
    // A truncated earlier segment: records are missing, not a tail.
    let fs = MemFs::new();
    for (p, b, _) in &log.segments {
        fs.write_file_durable(p, b);
    }
    fs.write_file_durable(p0, &b0[..b0.len() - 3]);
    let err = open(&fs).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Corrupt, "{err}");
}

#[test]
fn every_truncation_offset_on_the_real_file_system() {
    let mut rng = common::rng("every_truncation_offset_on_the_real_file_system");
    let tmp = common::TempDir::new("tail");
    let dir = tmp.path().join("wal");
    let (mut wal, _) = Wal::open(&dir, 0, WalOptions::default()).unwrap();
    let mut payloads = Vec::new();
    for _ in 0..6 {
        let len = rng.random_range(0..20);
        let p = common::payload(&mut rng, len);
        wal.append(&p).unwrap();
        payloads.push(p);
    }
    wal.sync().unwrap();
    drop(wal);
    let seg = dir.join(segment_file_name(1));
    let orig = std::fs::read(&seg).unwrap();
    for k in 0..=orig.len() {
        std::fs::write(&seg, &orig[..k]).unwrap();
        let (n, valid_end) = intact_records(&orig, &orig[..k]);
        let (mut wal, rec) = Wal::open(&dir, 0, WalOptions::default()).unwrap();
        let got: Vec<_> = rec.records.iter().map(|(_, p)| p.clone()).collect();
        assert_eq!(got, payloads[..n], "cut at {k}");
        assert_eq!(rec.truncated.is_some(), k != valid_end || valid_end == 0 && k == 0);
        let on_disk = std::fs::read(&seg).unwrap();
        if valid_end > 0 {
            assert_eq!(on_disk, orig[..valid_end], "cut at {k}");
        } else {
            assert_eq!(on_disk.len(), WAL_HEADER_LEN, "fresh segment after cut at {k}");
        }
        assert_eq!(wal.append(b"x").unwrap(), n as u64 + 1);
    }
}
