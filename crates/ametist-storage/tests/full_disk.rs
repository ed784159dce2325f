//! What a writer on a full disk needs from storage: reading the log without writing anything
//! (`Wal::read_only`), checking for room without changing anything durable (`probe_write`),
//! and ENOSPC recognised as such (`StorageError::is_storage_full`).

use std::path::Path;
use std::sync::Arc;

use ametist_storage::{probe_write, Fault, FsOp, MemFs, StorageError, Wal, WalOptions, PROBE_FILE};

const DIR: &str = "/p/wal";

fn opts() -> WalOptions {
    WalOptions { segment_bytes: 200, ..WalOptions::default() }
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i} {}", "y".repeat((i % 11) as usize)).into_bytes()
}

/// A log of 30 records over several segments, all synced.
fn log(fs: &MemFs) {
    let (mut wal, _) = Wal::open_with(Arc::new(fs.clone()), Path::new(DIR), 0, opts()).unwrap();
    for i in 1..=30 {
        wal.append(&payload(i)).unwrap();
    }
    wal.sync().unwrap();
}

#[test]
fn read_only_reads_what_open_reads_and_writes_nothing() {
    let fs = MemFs::new();
    log(&fs);
    let before = fs.mutations();
    let rec = Wal::read_only(Arc::new(fs.clone()), Path::new(DIR), 4, None).unwrap();
    assert_eq!(fs.mutations(), before, "read_only must not write");
    let lsns: Vec<u64> = rec.records.iter().map(|r| r.0).collect();
    assert_eq!(lsns, (5..=30).collect::<Vec<_>>());
    assert!(rec.records.iter().all(|(lsn, p)| *p == payload(*lsn)));

    // Up to an LSN: nothing after it.
    let rec = Wal::read_only(Arc::new(fs.clone()), Path::new(DIR), 0, Some(12)).unwrap();
    assert_eq!(rec.records.iter().map(|r| r.0).collect::<Vec<_>>(), (1..=12).collect::<Vec<_>>());
    // Records that were synced must be there: asking past the end is an error.
    let e = Wal::read_only(Arc::new(fs.clone()), Path::new(DIR), 0, Some(31)).unwrap_err();
    assert!(matches!(e, StorageError::MissingWal { first: 31, last: 31, .. }), "{e}");
    // No log at all is an empty one.
    let rec = Wal::read_only(Arc::new(fs.clone()), Path::new("/nothing/here"), 0, None).unwrap();
    assert!(rec.records.is_empty());
    assert_eq!(fs.mutations(), before);
}

#[test]
fn read_only_reports_a_torn_tail_without_cutting_it() {
    let fs = MemFs::new();
    log(&fs);
    let mut segments: Vec<_> = fs.paths().into_iter().filter(|p| p.to_string_lossy().ends_with(".wal")).collect();
    segments.sort();
    let last = segments.last().unwrap().clone();
    let mut bytes = fs.file_bytes(&last).unwrap();
    bytes.extend_from_slice(&[0xAB; 9]);
    fs.write_file_durable(&last, &bytes);
    let rec = Wal::read_only(Arc::new(fs.clone()), Path::new(DIR), 0, None).unwrap();
    assert_eq!(rec.records.len(), 30);
    let torn = rec.truncated.expect("the torn tail is reported");
    assert_eq!(torn.bytes_dropped, 9);
    assert_eq!(fs.file_bytes(&last).unwrap(), bytes, "the file is left as it is");
    // The next open cuts it, and finds the same records.
    let (wal, rec) = Wal::open_with(Arc::new(fs.clone()), Path::new(DIR), 0, opts()).unwrap();
    assert_eq!(rec.records.len(), 30);
    assert_eq!(wal.last_lsn(), 30);
}

#[test]
fn the_probe_leaves_nothing_and_fails_on_a_full_disk() {
    let fs = MemFs::new();
    log(&fs);
    let files = fs.paths();
    probe_write(&fs, Path::new(DIR), 100_000).unwrap();
    assert_eq!(fs.paths(), files, "no probe file left");

    fs.inject(Fault::new(FsOp::Write).on_path(PROBE_FILE).sticky().disk_full());
    let e = probe_write(&fs, Path::new(DIR), 100_000).unwrap_err();
    assert!(e.is_storage_full() && e.is_retryable(), "{e}");
    assert!(e.to_string().contains(PROBE_FILE), "names the file: {e}");
    assert_eq!(fs.paths(), files, "no probe file left after a failure either");

    // An ENOSPC fsync of the log is recognised as a full disk too, and poisons the log.
    fs.clear_faults();
    let (mut wal, _) = Wal::open_with(Arc::new(fs.clone()), Path::new(DIR), 0, opts()).unwrap();
    fs.inject(Fault::new(FsOp::Sync).on_path(DIR).disk_full());
    wal.append(b"x").unwrap();
    let e = wal.sync().unwrap_err();
    assert!(e.is_storage_full(), "{e}");
    assert!(wal.is_poisoned());
}
