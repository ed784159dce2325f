//! A failed write or fsync poisons the WAL: every later call fails without touching the disk,
//! and reopening recovers what is really there.

use std::path::Path;
use std::sync::Arc;

use ametist_storage::{CrashMode, ErrorClass, Fault, FsOp, MemFs, StorageError, Wal, WalOptions};

fn dir() -> &'static Path {
    Path::new("/data/c/p/wal")
}

fn open(fs: &MemFs, o: WalOptions) -> (Wal, Vec<(u64, Vec<u8>)>) {
    let (w, r) = Wal::open_with(Arc::new(fs.clone()), dir(), 0, o).unwrap();
    (w, r.records)
}

fn assert_poisoned(wal: &mut Wal, fs: &MemFs) {
    assert!(wal.is_poisoned());
    let before = fs.mutations();
    for _ in 0..3 {
        let e = wal.sync().unwrap_err();
        assert!(matches!(e, StorageError::Poisoned { .. }), "{e}");
        assert_eq!(e.class(), ErrorClass::Fatal);
        assert!(e.to_string().contains("/data/c/p/wal"), "{e}");
        let e = wal.append(b"more").unwrap_err();
        assert!(matches!(e, StorageError::Poisoned { .. }), "{e}");
        let e = wal.truncate_through(wal.last_lsn()).unwrap_err();
        assert!(matches!(e, StorageError::Poisoned { .. }), "{e}");
    }
    assert_eq!(fs.mutations(), before, "a poisoned log must not touch the disk (no fsync retry)");
}

#[test]
fn failed_fsync_poisons() {
    let fs = MemFs::new();
    let (mut wal, _) = open(&fs, WalOptions::default());
    wal.append(b"one").unwrap();
    wal.append(b"two").unwrap();
    wal.sync().unwrap();
    wal.append(b"three").unwrap();
    fs.inject(Fault::new(FsOp::Sync));
    let e = wal.sync().unwrap_err();
    assert_eq!(e.class(), ErrorClass::Io, "{e}");
    assert!(e.to_string().contains("00000000000000000001.wal"), "{e}");
    assert_eq!(wal.synced_lsn(), 2);
    assert_poisoned(&mut wal, &fs);
    drop(wal);
    // The engine reopens from disk. Without a crash, "three" is in the page cache.
    let (wal, recs) = open(&fs, WalOptions::default());
    assert_eq!(recs.len(), 3);
    assert!(!wal.is_poisoned());
    drop(wal);
    // And reopening made it durable.
    fs.crash(CrashMode::DropUnsynced, 0);
    let (_, recs) = open(&fs, WalOptions::default());
    assert_eq!(recs.len(), 3);
}

#[test]
fn failed_fsync_then_crash_keeps_the_synced_prefix() {
    let fs = MemFs::new();
    let (mut wal, _) = open(&fs, WalOptions::default());
    wal.append(b"one").unwrap();
    wal.sync().unwrap();
    wal.append(b"two").unwrap();
    fs.inject(Fault::new(FsOp::Sync));
    assert!(wal.sync().is_err());
    assert_poisoned(&mut wal, &fs);
    drop(wal);
    fs.crash(CrashMode::DropUnsynced, 0);
    let (mut wal, recs) = open(&fs, WalOptions::default());
    assert_eq!(recs, vec![(1, b"one".to_vec())]);
    assert_eq!(wal.append(b"two again").unwrap(), 2);
}

#[test]
fn failed_write_poisons() {
    let fs = MemFs::new();
    let o = WalOptions { write_buffer_bytes: 64, ..WalOptions::default() };
    let (mut wal, _) = open(&fs, o.clone());
    wal.append(b"a").unwrap();
    fs.inject(Fault::new(FsOp::Write));
    // The buffer spills on this append: the write fails.
    let e = wal.append(&[7u8; 100]).unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_poisoned(&mut wal, &fs);
    // Also when the write happens in sync.
    drop(wal);
    let (mut wal, _) = open(&fs, o);
    wal.append(b"b").unwrap();
    fs.inject(Fault::new(FsOp::Write));
    assert!(wal.sync().is_err());
    assert_poisoned(&mut wal, &fs);
}

#[test]
fn failures_during_rollover_poison() {
    for (op, path) in [
        (FsOp::Sync, "00000000000000000001.wal"),
        (FsOp::Create, ".wal"),
        (FsOp::Write, "00000000000000000003.wal"),
        (FsOp::Sync, "00000000000000000003.wal"),
        (FsOp::SyncDir, "wal"),
    ] {
        let fs = MemFs::new();
        let o = WalOptions { segment_bytes: 130, ..WalOptions::default() };
        let (mut wal, _) = open(&fs, o.clone());
        wal.append(&[1u8; 40]).unwrap();
        wal.append(&[2u8; 30]).unwrap();
        fs.inject(Fault::new(op).on_path(path));
        let e = wal.append(&[3u8; 40]).expect_err("rollover must fail");
        assert_eq!(e.class(), ErrorClass::Io, "{op:?}: {e}");
        assert_poisoned(&mut wal, &fs);
        drop(wal);
        fs.crash(CrashMode::KeepPrefix, 1);
        let (mut wal, recs) = open(&fs, o);
        assert!(recs.len() <= 2, "{op:?}");
        let next = wal.append(b"after").unwrap();
        assert_eq!(next, recs.len() as u64 + 1, "{op:?}");
    }
}

#[test]
fn a_failed_segment_removal_does_not_poison() {
    let fs = MemFs::new();
    let o = WalOptions { segment_bytes: 64, ..WalOptions::default() };
    let (mut wal, _) = open(&fs, o.clone());
    for i in 0..10u8 {
        wal.append(&[i; 30]).unwrap();
    }
    wal.sync().unwrap();
    let segs = wal.segment_count();
    fs.inject(Fault::new(FsOp::Remove).after(1));
    let e = wal.truncate_through(8).unwrap_err();
    assert!(e.is_retryable());
    assert!(!wal.is_poisoned());
    assert_eq!(wal.segment_count(), segs - 1);
    wal.truncate_through(8).unwrap();
    assert!(wal.first_lsn() <= 9);
    wal.append(b"fine").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (w, _) = Wal::open_with(Arc::new(fs.clone()), dir(), 8, o).unwrap();
    assert_eq!(w.last_lsn(), 11);
}
