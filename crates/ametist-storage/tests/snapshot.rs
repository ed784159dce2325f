//! Snapshots: atomic replacement under crashes at every step, fallback past corrupt files,
//! cleanup of temp files, pruning.

mod common;

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use ametist_storage::{snapshot_file_name, CrashMode, ErrorClass, Fault, Fs, FsOp, MemFs, SnapshotStore, StorageError};
use rand::Rng;

const MODES: [CrashMode; 4] =
    [CrashMode::DropUnsynced, CrashMode::KeepPrefix, CrashMode::KeepPrefixThenZeros, CrashMode::KeepPrefixThenGarbage];

fn dir() -> &'static Path {
    Path::new("/data/c1/p0/snapshots")
}

fn store(fs: &MemFs) -> SnapshotStore {
    SnapshotStore::open_with(Arc::new(fs.clone()), dir()).unwrap()
}

fn state(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| tag.wrapping_mul(31).wrapping_add(i as u8)).collect()
}

/// Writes `data` in uneven chunks, as a serialiser would.
fn writer(data: &[u8]) -> impl FnMut(&mut dyn Write) -> io::Result<()> + '_ {
    move |w: &mut dyn Write| {
        let mut rest = data;
        let mut n = 1;
        while !rest.is_empty() {
            let k = n.min(rest.len());
            w.write_all(&rest[..k])?;
            rest = &rest[k..];
            n = n * 3 + 1;
        }
        w.flush()
    }
}

#[test]
fn write_list_load_and_prune() {
    let fs = MemFs::new();
    let s = store(&fs);
    assert!(s.list().unwrap().is_empty());
    let load = s.load_latest().unwrap();
    assert!(load.snapshot.is_none() && load.skipped.is_empty());
    for (i, lsn) in [10u64, 20, 30, 40].into_iter().enumerate() {
        let data = state(i as u8, 1000 + i * 300_000);
        let info = s.write(lsn, 2, &mut writer(&data)).unwrap();
        assert_eq!(info.lsn, lsn);
        assert_eq!(info.path, dir().join(snapshot_file_name(lsn)));
        assert_eq!(info.size, data.len() as u64 + 32);
        let loaded = s.load_latest().unwrap().snapshot.unwrap();
        assert_eq!(loaded.info.lsn, lsn);
        assert_eq!(loaded.data, data);
    }
    let lsns: Vec<_> = s.list().unwrap().iter().map(|i| i.lsn).collect();
    assert_eq!(lsns, vec![40, 30], "newest first, keep = 2");
    assert!(fs.paths().iter().all(|p| !p.to_string_lossy().ends_with(".tmp")));
    // keep = 0 still keeps the new one.
    s.write(50, 0, &mut writer(b"fifty")).unwrap();
    let lsns: Vec<_> = s.list().unwrap().iter().map(|i| i.lsn).collect();
    assert_eq!(lsns, vec![50]);
    // An empty state is a valid snapshot.
    s.write(60, 3, &mut writer(b"")).unwrap();
    let l = s.load_latest().unwrap().snapshot.unwrap();
    assert_eq!((l.info.lsn, l.data.len()), (60, 0));
    // A specific snapshot can be loaded too.
    let older = s.list().unwrap()[1].clone();
    assert_eq!(s.load(&older).unwrap(), b"fifty");
}

#[test]
fn crash_at_every_step_leaves_old_or_new() {
    let old = state(1, 5000);
    let new = state(2, 7000);
    // How many mutations a full write takes.
    let probe = MemFs::new();
    let s = store(&probe);
    s.write(10, 2, &mut writer(&old)).unwrap();
    let before = probe.mutations();
    s.write(20, 1, &mut writer(&new)).unwrap();
    let total = probe.mutations() - before;
    assert!(total >= 5, "{total}");
    for n in 0..=total {
        for (m, mode) in MODES.iter().enumerate() {
            let ctx = format!("crash after {n} of {total} mutations, {mode:?}");
            let fs = MemFs::new();
            let s = store(&fs);
            s.write(10, 2, &mut writer(&old)).unwrap();
            fs.crash_after_mutations(n);
            // keep = 1: the old one is deleted once the new one is durable.
            let result = s.write(20, 1, &mut writer(&new));
            // The last two mutations (remove the old file, fsync the directory) are pruning,
            // which is best effort: the call succeeds once the new snapshot is durable.
            assert_eq!(result.is_ok(), n + 2 >= total, "{ctx}: {result:?}");
            fs.crash(*mode, n * 7 + m as u64);
            let s = store(&fs);
            let names: Vec<_> = fs.list(dir()).unwrap();
            assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{ctx}: temp file left: {names:?}");
            let load = s.load_latest().unwrap();
            assert!(load.skipped.is_empty(), "{ctx}: {:?}", load.skipped);
            let got = load.snapshot.unwrap_or_else(|| panic!("{ctx}: no snapshot at all"));
            match got.info.lsn {
                10 => {
                    assert!(result.is_err(), "{ctx}: write returned Ok but the new snapshot is gone");
                    assert_eq!(got.data, old, "{ctx}")
                }
                20 => assert_eq!(got.data, new, "{ctx}"),
                l => panic!("{ctx}: lsn {l}"),
            }
            // A second crash right away changes nothing.
            fs.crash(MODES[(m + 1) % 4], n);
            let again = store(&fs).load_latest().unwrap().snapshot.unwrap();
            assert_eq!(again.info.lsn, got.info.lsn, "{ctx}: second crash");
        }
    }
}

#[test]
fn corrupt_newest_falls_back_and_names_the_file() {
    let mut rng = common::rng("corrupt_newest_falls_back_and_names_the_file");
    let good = state(3, 3000);
    let newest = state(4, 3000);
    for case in 0..6 {
        let fs = MemFs::new();
        let s = store(&fs);
        s.write(100, 3, &mut writer(&good)).unwrap();
        let info = s.write(200, 3, &mut writer(&newest)).unwrap();
        let mut bytes = fs.file_bytes(&info.path).unwrap();
        let what = match case {
            0 => {
                let k = rng.random_range(0..newest.len());
                bytes[k] ^= rng.random_range(1..=255u8);
                format!("payload byte {k} flipped")
            }
            1 => {
                let k = rng.random_range(newest.len()..bytes.len());
                bytes[k] ^= 0x40;
                format!("trailer byte {k} flipped")
            }
            2 => {
                let k = rng.random_range(0..bytes.len());
                bytes.truncate(k);
                format!("cut at {k}")
            }
            3 => {
                bytes.truncate(10);
                "cut to 10 bytes".into()
            }
            4 => {
                bytes.iter_mut().for_each(|b| *b = 0);
                "zeroed".into()
            }
            _ => {
                // A valid file under the wrong name.
                bytes = fs.file_bytes(&dir().join(snapshot_file_name(100))).unwrap();
                "the LSN-100 file renamed to LSN 200".into()
            }
        };
        fs.write_file_durable(&info.path, &bytes);
        let load = s.load_latest().unwrap();
        let got = load.snapshot.unwrap_or_else(|| panic!("{what}: no fallback"));
        assert_eq!(got.info.lsn, 100, "{what}");
        assert_eq!(got.data, good, "{what}");
        assert_eq!(load.skipped.len(), 1, "{what}");
        let sk = &load.skipped[0];
        assert_eq!(sk.path, info.path, "{what}");
        assert!(!sk.reason.is_empty());
        // Quarantined: kept for an operator, no longer listed.
        let q = sk.quarantined_as.clone().expect("quarantined");
        assert!(q.to_string_lossy().ends_with(".snap.corrupt"), "{q:?}");
        assert_eq!(fs.file_bytes(&q).unwrap(), bytes);
        assert_eq!(s.list().unwrap().len(), 1, "{what}");
        // Loading that file directly is a Corrupt error naming it.
        let err = s.load(&ametist_storage::SnapshotInfo {
            path: q.clone(),
            lsn: 200,
            size: 0,
            created: std::time::SystemTime::now(),
        });
        if let Err(e) = err {
            assert!(matches!(e.class(), ErrorClass::Corrupt | ErrorClass::Io), "{e}");
            assert!(e.to_string().contains("corrupt"), "{e}");
        } else {
            panic!("{what}: corrupt file loaded");
        }
    }
    // All snapshots corrupt: None, every file reported.
    let fs = MemFs::new();
    let s = store(&fs);
    s.write(1, 3, &mut writer(b"a")).unwrap();
    s.write(2, 3, &mut writer(b"b")).unwrap();
    for lsn in [1, 2] {
        fs.write_file_durable(&dir().join(snapshot_file_name(lsn)), b"garbage");
    }
    let load = s.load_latest().unwrap();
    assert!(load.snapshot.is_none());
    assert_eq!(load.skipped.len(), 2);
    assert!(load.skipped[0].path.ends_with(snapshot_file_name(2)));
}

#[test]
fn leftover_temp_files_are_cleaned_and_ignored() {
    let fs = MemFs::new();
    let s = store(&fs);
    s.write(5, 2, &mut writer(b"five")).unwrap();
    let tmp = dir().join(format!("{}.tmp", snapshot_file_name(9)));
    fs.write_file_durable(&tmp, b"half a snap");
    assert_eq!(s.list().unwrap().len(), 1, "temp files are not snapshots");
    let s = store(&fs);
    assert!(fs.file_bytes(&tmp).is_none(), "open removes temp files");
    // The removal is durable.
    fs.crash(CrashMode::DropUnsynced, 0);
    assert!(fs.file_bytes(&tmp).is_none());
    assert_eq!(s.load_latest().unwrap().snapshot.unwrap().data, b"five");
}

#[test]
fn failed_serialiser_or_io_changes_nothing() {
    let fs = MemFs::new();
    let s = store(&fs);
    s.write(5, 2, &mut writer(b"five")).unwrap();
    let err = s
        .write(6, 2, &mut |w: &mut dyn Write| {
            w.write_all(b"partial")?;
            Err(io::Error::other("serialiser broke"))
        })
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Io);
    assert!(err.to_string().contains("serialiser broke") || format!("{err:?}").contains("serialiser broke"));
    assert_eq!(fs.list(dir()).unwrap(), vec![snapshot_file_name(5)]);
    for op in [FsOp::Create, FsOp::Write, FsOp::Sync, FsOp::Rename] {
        fs.inject(Fault::new(op).on_path("snapshot-"));
        let err = s.write(7, 2, &mut writer(&state(7, 100))).unwrap_err();
        assert!(err.is_retryable(), "{op:?}: {err}");
        assert!(err.to_string().contains(&snapshot_file_name(7)), "{op:?}: {err}");
        assert_eq!(fs.list(dir()).unwrap(), vec![snapshot_file_name(5)], "{op:?}");
    }
    // A failed directory fsync after the rename is reported: the caller must not truncate.
    fs.inject(Fault::new(FsOp::SyncDir));
    assert!(s.write(8, 2, &mut writer(b"eight")).is_err());
    fs.crash(CrashMode::DropUnsynced, 0);
    let l = store(&fs).load_latest().unwrap().snapshot.unwrap();
    assert_eq!(l.info.lsn, 5);
}

#[test]
fn unsupported_version_is_an_error_not_a_skip() {
    let fs = MemFs::new();
    let s = store(&fs);
    let info = s.write(5, 2, &mut writer(b"five")).unwrap();
    let mut b = fs.file_bytes(&info.path).unwrap();
    let t = b.len() - 32;
    b[t + 6] = 9; // version 9
    let crc = crc32c::crc32c(&b[t..t + 28]);
    b[t + 28..].copy_from_slice(&crc.to_le_bytes());
    fs.write_file_durable(&info.path, &b);
    let err = s.load_latest().unwrap_err();
    assert!(matches!(err, StorageError::UnsupportedVersion { found: 9, .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Corrupt);
}

#[test]
fn real_file_system_round_trip() {
    let tmp = common::TempDir::new("snap");
    let d = tmp.path().join("p0").join("snapshots");
    let s = SnapshotStore::open(&d).unwrap();
    let data = state(9, 1 << 20);
    s.write(3, 2, &mut writer(&data)).unwrap();
    s.write(4, 2, &mut writer(b"four")).unwrap();
    s.write(5, 2, &mut writer(b"five")).unwrap();
    std::fs::write(d.join(format!("{}.tmp", snapshot_file_name(6))), b"junk").unwrap();
    let s = SnapshotStore::open(&d).unwrap();
    let mut names: Vec<_> =
        std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, vec![snapshot_file_name(4), snapshot_file_name(5)]);
    let l = s.load_latest().unwrap().snapshot.unwrap();
    assert_eq!((l.info.lsn, l.data.as_slice()), (5, &b"five"[..]));
    assert!(l.info.created <= std::time::SystemTime::now());
}
