//! Segment rollover, truncation, reopening: LSNs stay continuous, records at or below
//! `after_lsn` are skipped.

mod common;

use std::path::Path;
use std::sync::Arc;

use ametist_storage::{
    segment_file_name, ErrorClass, Fs, MemFs, StdFs, StorageError, Wal, WalOptions, MAX_RECORD_BYTES, WAL_HEADER_LEN,
};
use rand::Rng;

fn opts(segment_bytes: u64) -> WalOptions {
    WalOptions { segment_bytes, ..WalOptions::default() }
}

fn payload(i: u64) -> Vec<u8> {
    format!("record number {i} {}", "x".repeat((i % 37) as usize)).into_bytes()
}

fn check_records(recs: &[(u64, Vec<u8>)], from: u64, to: u64) {
    let lsns: Vec<u64> = recs.iter().map(|r| r.0).collect();
    assert_eq!(lsns, (from..=to).collect::<Vec<_>>());
    for (lsn, p) in recs {
        assert_eq!(p, &payload(*lsn), "payload of {lsn}");
    }
}

fn rollover_truncate_reopen(fs: Arc<dyn Fs>, dir: &Path) {
    let o = opts(256);
    let (mut wal, rec) = Wal::open_with(fs.clone(), dir, 0, o.clone()).unwrap();
    assert!(rec.records.is_empty() && rec.truncated.is_none());
    assert_eq!(wal.last_lsn(), 0);
    for i in 1..=100u64 {
        assert_eq!(wal.append(&payload(i)).unwrap(), i);
        if i % 7 == 0 {
            wal.sync().unwrap();
            assert_eq!(wal.synced_lsn(), i);
        }
    }
    wal.sync().unwrap();
    let segs = wal.segment_count();
    assert!(segs > 10, "{segs} segments");
    let listed: Vec<_> = fs.list(dir).unwrap().into_iter().filter(|n| n.ends_with(".wal")).collect();
    assert_eq!(listed.len(), segs);
    assert!(listed.contains(&segment_file_name(1)));
    let total: u64 = listed.iter().map(|n| fs.stat(&dir.join(n)).unwrap().len).sum();
    assert_eq!(wal.size_bytes(), total);
    // Every segment but one with a single oversized record stays within segment_bytes.
    for n in &listed {
        assert!(fs.stat(&dir.join(n)).unwrap().len <= 256, "{n}");
    }
    drop(wal);

    // Reopen: everything, in order.
    let (wal, rec) = Wal::open_with(fs.clone(), dir, 0, o.clone()).unwrap();
    check_records(&rec.records, 1, 100);
    assert!(rec.truncated.is_none());
    assert_eq!(wal.last_lsn(), 100);
    drop(wal);

    // Records at or below after_lsn are skipped.
    let (mut wal, rec) = Wal::open_with(fs.clone(), dir, 57, o.clone()).unwrap();
    check_records(&rec.records, 58, 100);

    // Truncation deletes whole segments at or below the LSN, never the active one.
    let before = wal.size_bytes();
    wal.truncate_through(40).unwrap();
    assert!(wal.first_lsn() <= 41, "first lsn {}", wal.first_lsn());
    assert!(wal.first_lsn() > 1);
    assert!(wal.size_bytes() < before);
    assert!(!fs.list(dir).unwrap().contains(&segment_file_name(1)));
    for i in 101..=120 {
        assert_eq!(wal.append(&payload(i)).unwrap(), i);
    }
    wal.sync().unwrap();
    drop(wal);

    let (mut wal, rec) = Wal::open_with(fs.clone(), dir, 40, o.clone()).unwrap();
    check_records(&rec.records, 41, 120);
    assert_eq!(wal.last_lsn(), 120);

    // Truncating through the end keeps the active segment; LSNs survive it.
    wal.truncate_through(120).unwrap();
    assert_eq!(wal.segment_count(), 1);
    drop(wal);
    let (mut wal, rec) = Wal::open_with(fs.clone(), dir, 120, o.clone()).unwrap();
    assert!(rec.records.is_empty());
    assert_eq!(wal.last_lsn(), 120);
    assert_eq!(wal.append(&payload(121)).unwrap(), 121);
    wal.sync().unwrap();
    drop(wal);
    let (wal, rec) = Wal::open_with(fs.clone(), dir, 120, o).unwrap();
    check_records(&rec.records, 121, 121);
    assert_eq!(wal.last_lsn(), 121);
}

#[test]
fn rollover_truncate_reopen_in_memory() {
    rollover_truncate_reopen(Arc::new(MemFs::new()), Path::new("/c/p0/wal"));
}

#[test]
fn rollover_truncate_reopen_on_disk() {
    let tmp = common::TempDir::new("segments");
    rollover_truncate_reopen(Arc::new(StdFs), &tmp.path().join("p0").join("wal"));
}

#[test]
fn unsynced_records_are_lost_in_a_crash_and_their_lsns_reused() {
    let fs = MemFs::new();
    let dir = Path::new("/w");
    let (mut wal, _) = Wal::open_with(Arc::new(fs.clone()), dir, 0, opts(1 << 20)).unwrap();
    for i in 1..=5 {
        wal.append(&payload(i)).unwrap();
    }
    wal.sync().unwrap();
    for i in 6..=8 {
        wal.append(&payload(i)).unwrap();
    }
    drop(wal);
    fs.crash(ametist_storage::CrashMode::DropUnsynced, 1);
    let (mut wal, rec) = Wal::open_with(Arc::new(fs.clone()), dir, 0, opts(1 << 20)).unwrap();
    check_records(&rec.records, 1, 5);
    assert_eq!(wal.append(&payload(6)).unwrap(), 6);
}

#[test]
fn snapshot_ahead_of_the_log_starts_a_new_segment() {
    let fs = MemFs::new();
    let dir = Path::new("/w");
    let open = |after| Wal::open_with(Arc::new(fs.clone()), dir, after, opts(1 << 20));
    let (mut wal, _) = open(0).unwrap();
    for i in 1..=10 {
        wal.append(&payload(i)).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    // The engine's snapshot covers up to 15 (records 11..15 were appended but lost).
    let (mut wal, rec) = open(15).unwrap();
    assert!(rec.records.is_empty());
    assert_eq!(wal.last_lsn(), 15);
    assert_eq!(wal.append(&payload(16)).unwrap(), 16);
    wal.sync().unwrap();
    assert_eq!(wal.segment_count(), 2);
    drop(wal);
    let (_, rec) = open(15).unwrap();
    check_records(&rec.records, 16, 16);
    // With an older snapshot, 11..15 are needed but gone: an error, not silent loss.
    let err = open(10).unwrap_err();
    assert!(matches!(err, StorageError::MissingWal { first: 11, last: 15, .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Corrupt);
    let err = open(3).unwrap_err();
    assert!(matches!(err, StorageError::MissingWal { .. }), "{err}");
}

#[test]
fn a_missing_middle_segment_is_reported_unless_covered() {
    let fs = MemFs::new();
    let dir = Path::new("/w");
    let open = |after| Wal::open_with(Arc::new(fs.clone()), dir, after, opts(200));
    let (mut wal, _) = open(0).unwrap();
    for i in 1..=60 {
        wal.append(&payload(i)).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    let mut names: Vec<_> = fs.list(dir).unwrap();
    names.sort();
    assert!(names.len() >= 4);
    let victim = &names[1];
    let first_victim: u64 = victim.strip_suffix(".wal").unwrap().parse().unwrap();
    let first_next: u64 = names[2].strip_suffix(".wal").unwrap().parse().unwrap();
    fs.remove(&dir.join(victim)).unwrap();
    let err = open(0).unwrap_err();
    match &err {
        StorageError::MissingWal { first, last, .. } => {
            assert_eq!((*first, *last), (first_victim, first_next - 1))
        }
        e => panic!("unexpected {e}"),
    }
    assert!(err.to_string().contains(&names[2]), "{err}");
    let (_, rec) = open(first_next - 1).unwrap();
    check_records(&rec.records, first_next, 60);
}

#[test]
fn empty_and_oversized_records() {
    let fs = MemFs::new();
    let dir = Path::new("/w");
    let (mut wal, _) = Wal::open_with(Arc::new(fs.clone()), dir, 0, opts(128)).unwrap();
    assert_eq!(wal.append(b"").unwrap(), 1);
    let big = vec![7u8; 1000];
    assert_eq!(wal.append(&big).unwrap(), 2);
    assert_eq!(wal.append(b"after").unwrap(), 3);
    let huge = vec![0u8; MAX_RECORD_BYTES + 1];
    let err = wal.append(&huge).unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidInput);
    drop(huge);
    assert!(!wal.is_poisoned());
    assert_eq!(wal.append(b"still fine").unwrap(), 4);
    wal.sync().unwrap();
    drop(wal);
    let (_, rec) = Wal::open_with(Arc::new(fs.clone()), dir, 0, opts(128)).unwrap();
    let got: Vec<_> = rec.records.into_iter().map(|r| r.1).collect();
    assert_eq!(got, vec![b"".to_vec(), big, b"after".to_vec(), b"still fine".to_vec()]);
    // The oversized record got a segment of its own.
    assert!(fs.list(dir).unwrap().contains(&segment_file_name(2)));
    assert!(fs.list(dir).unwrap().contains(&segment_file_name(3)));
}

#[test]
fn write_buffer_spills_without_syncing() {
    let fs = MemFs::new();
    let dir = Path::new("/w");
    let o = WalOptions { segment_bytes: 1 << 20, write_buffer_bytes: 100 };
    let (mut wal, _) = Wal::open_with(Arc::new(fs.clone()), dir, 0, o.clone()).unwrap();
    let mut rng = common::rng("write_buffer_spills_without_syncing");
    for i in 1..=50 {
        let len = rng.random_range(0..60);
        wal.append(&vec![i as u8; len]).unwrap();
    }
    let seg = dir.join(segment_file_name(1));
    // Written (the buffer spilled) but not synced.
    assert!(fs.file_bytes(&seg).unwrap().len() > WAL_HEADER_LEN + 1000);
    assert_eq!(wal.synced_lsn(), 0);
    wal.sync().unwrap();
    assert_eq!(wal.synced_lsn(), 50);
    assert_eq!(fs.file_bytes(&seg).unwrap().len() as u64, wal.size_bytes());
}

#[test]
fn foreign_files_are_ignored() {
    let fs = MemFs::new();
    let dir = Path::new("/w");
    fs.write_file_durable(&dir.join("README"), b"hello");
    fs.write_file_durable(&dir.join("12.wal"), b"not a segment name");
    let (mut wal, rec) = Wal::open_with(Arc::new(fs.clone()), dir, 0, opts(128)).unwrap();
    assert!(rec.records.is_empty());
    assert_eq!(wal.append(b"a").unwrap(), 1);
}
