//! Crash simulation on MemFs: random appends, syncs, truncations, injected faults and crashes
//! (also during recovery, and twice in a row). After every crash every synced record is
//! present, nothing else but a prefix of the unsynced ones, and the log always opens.

mod common;

use std::path::Path;
use std::sync::Arc;

use ametist_storage::{CrashMode, Fault, FsOp, MemFs, Recovered, StorageError, Wal, WalOptions};
use rand::rngs::StdRng;
use rand::Rng;

const MODES: [CrashMode; 4] =
    [CrashMode::DropUnsynced, CrashMode::KeepPrefix, CrashMode::KeepPrefixThenZeros, CrashMode::KeepPrefixThenGarbage];

fn dir() -> &'static Path {
    Path::new("/data/c1/p3/wal")
}

fn opts() -> WalOptions {
    WalOptions { segment_bytes: 512, write_buffer_bytes: 300 }
}

/// What the test knows: every record ever handed to the log (index = lsn - 1) and how far
/// the log is known durable; `snap` plays the engine's newest durable snapshot.
struct Model {
    log: Vec<Vec<u8>>,
    synced: u64,
    snap: u64,
}

impl Model {
    /// Checks a recovery against the model and adopts its result.
    fn adopt(&mut self, rec: &Recovered, wal: &Wal, ctx: &str) {
        let from = self.snap + 1;
        for (i, (lsn, p)) in rec.records.iter().enumerate() {
            assert_eq!(*lsn, from + i as u64, "{ctx}: LSNs continuous from {from}");
            let want = self.log.get(*lsn as usize - 1).unwrap_or_else(|| panic!("{ctx}: LSN {lsn} was never appended"));
            assert_eq!(p, want, "{ctx}: payload of LSN {lsn}");
        }
        let last = rec.records.last().map_or(self.snap, |r| r.0);
        assert!(
            last >= self.synced,
            "{ctx}: synced record {} lost (recovered through {last}, snapshot {})",
            self.synced,
            self.snap
        );
        assert_eq!(wal.last_lsn(), last.max(self.snap), "{ctx}");
        self.log.truncate(wal.last_lsn() as usize);
        // Everything recovered is durable once open returns.
        self.synced = wal.last_lsn();
    }
}

fn random_payload(rng: &mut StdRng) -> Vec<u8> {
    let len = match rng.random_range(0..20) {
        0 => 0,
        1 => rng.random_range(400..1500),
        _ => rng.random_range(1..120),
    };
    (0..len).map(|_| rng.random()).collect()
}

/// Opens, crashing during recovery itself now and then; a failed open is followed by another
/// crash and another open, as a supervisor would do.
fn reopen(fs: &MemFs, rng: &mut StdRng, model: &mut Model, ctx: &str) -> Wal {
    for attempt in 0.. {
        assert!(attempt < 20, "{ctx}: the log never opened");
        let armed = rng.random_bool(0.3);
        if armed {
            fs.crash_after_mutations(rng.random_range(0..4));
        }
        match Wal::open_with(Arc::new(fs.clone()), dir(), model.snap, opts()) {
            Ok((wal, rec)) => {
                fs.clear_faults();
                model.adopt(&rec, &wal, ctx);
                return wal;
            }
            Err(e) => {
                assert!(armed, "{ctx}: open failed without a fault: {e}");
                fs.crash(MODES[rng.random_range(0..4)], rng.random());
            }
        }
    }
    unreachable!()
}

/// Runs `steps` random operations; returns the number of crashes.
fn run(rng: &mut StdRng, steps: usize) -> usize {
    let fs = MemFs::new();
    let mut model = Model { log: Vec::new(), synced: 0, snap: 0 };
    let mut wal = reopen(&fs, rng, &mut model, "initial open");
    let mut crashes = 0;
    let mut failed = false; // a call failed: the handle must be poisoned
    for step in 0..steps {
        let ctx = format!("step {step}");
        if std::env::var("TRACE").is_ok() {
            eprintln!(
                "{ctx}: last {} synced {} snap {} failed {failed} fs {:?}",
                wal.last_lsn(),
                model.synced,
                model.snap,
                fs
            );
        }
        match rng.random_range(0..100) {
            0..=54 => {
                let p = random_payload(rng);
                match wal.append(&p) {
                    Ok(lsn) => {
                        assert!(!failed, "{ctx}: append on a poisoned log succeeded");
                        assert_eq!(lsn as usize, model.log.len() + 1, "{ctx}");
                        model.log.push(p);
                    }
                    Err(e) => {
                        failed = true;
                        assert!(wal.is_poisoned(), "{ctx}: {e}");
                    }
                }
            }
            55..=74 => match wal.sync() {
                Ok(()) => {
                    assert!(!failed, "{ctx}: sync on a poisoned log succeeded");
                    model.synced = model.log.len() as u64;
                    assert_eq!(wal.synced_lsn(), model.synced);
                }
                Err(_) => {
                    failed = true;
                    assert!(wal.is_poisoned(), "{ctx}");
                }
            },
            75..=79 => {
                // A snapshot covering some appended LSN became durable; truncate through it.
                if !failed && wal.last_lsn() > model.snap {
                    let s = rng.random_range(model.snap..=wal.last_lsn());
                    model.snap = s;
                    match wal.truncate_through(s) {
                        Ok(()) => assert!(wal.first_lsn() <= s + 1, "{ctx}"),
                        Err(e) => {
                            assert!(!matches!(e, StorageError::Poisoned { .. }), "{e}");
                            failed = wal.is_poisoned();
                        }
                    }
                }
            }
            80..=83 => {
                // An I/O fault somewhere soon.
                let op = [FsOp::Write, FsOp::Sync, FsOp::Create, FsOp::SyncDir][rng.random_range(0..4)];
                fs.inject(Fault::new(op).after(rng.random_range(0..3)));
            }
            84..=87 => {
                // The process dies within the next few mutations.
                fs.crash_after_mutations(rng.random_range(0..6));
            }
            88..=89 if failed => {
                // The engine reopens a poisoned log from disk without a crash.
                drop(wal);
                fs.clear_faults();
                wal = reopen(&fs, rng, &mut model, &format!("{ctx} reopen"));
                failed = false;
            }
            _ => {
                drop(wal);
                crashes += 1;
                fs.crash(MODES[rng.random_range(0..4)], rng.random());
                let mut w = reopen(&fs, rng, &mut model, &format!("{ctx} after crash"));
                if rng.random_bool(0.25) {
                    // Crash again right after recovery: the same records come back.
                    let before = model.log.clone();
                    drop(w);
                    crashes += 1;
                    fs.crash(MODES[rng.random_range(0..4)], rng.random());
                    w = reopen(&fs, rng, &mut model, &format!("{ctx} second crash"));
                    assert_eq!(model.log, before, "{ctx}: second crash changed the log");
                }
                wal = w;
                failed = false;
            }
        }
        if failed {
            assert!(wal.is_poisoned());
            assert!(matches!(wal.append(b"x"), Err(StorageError::Poisoned { .. })));
            assert!(matches!(wal.sync(), Err(StorageError::Poisoned { .. })));
        }
    }
    crashes
}

#[test]
fn random_appends_syncs_faults_and_crashes() {
    let mut rng = common::rng("random_appends_syncs_faults_and_crashes");
    let mut crashes = 0;
    for _ in 0..100 {
        crashes += run(&mut rng, 500);
    }
    println!("{crashes} crashes");
    assert!(crashes > 100, "only {crashes} crashes");
}

/// One scripted workload: open, appends with group syncs, rollovers, a truncation.
/// Returns the highest acknowledged (synced) LSN and the snapshot LSN, stopping at the first
/// error.
fn script(fs: &MemFs, payloads: &[Vec<u8>]) -> (u64, u64) {
    let mut acked = 0;
    let mut snap = 0;
    let Ok((mut wal, _)) = Wal::open_with(Arc::new(fs.clone()), dir(), 0, opts()) else {
        return (0, 0);
    };
    for (i, p) in payloads.iter().enumerate() {
        if wal.append(p).is_err() {
            break;
        }
        if i % 3 == 2 {
            if wal.sync().is_err() {
                break;
            }
            acked = wal.last_lsn();
        }
        if i == payloads.len() / 2 {
            // Engine: snapshot through `acked` is durable, then truncate.
            snap = acked;
            if wal.truncate_through(snap).is_err() {
                break;
            }
        }
    }
    (acked, snap)
}

#[test]
fn crash_at_every_mutation_of_a_workload() {
    let mut rng = common::rng("crash_at_every_mutation_of_a_workload");
    let payloads: Vec<Vec<u8>> = (0..30).map(|_| random_payload(&mut rng)).collect();
    let clean = MemFs::new();
    script(&clean, &payloads);
    let total = clean.mutations();
    assert!(total > 30);
    println!("{total} mutations in the workload");
    for n in 0..=total {
        for (m, mode) in MODES.iter().enumerate() {
            let ctx = format!("crash after {n} mutations, {mode:?}");
            let fs = MemFs::new();
            fs.crash_after_mutations(n);
            let (acked, snap) = script(&fs, &payloads);
            fs.crash(*mode, n * 4 + m as u64);
            let (wal, rec) =
                Wal::open_with(Arc::new(fs.clone()), dir(), snap, opts()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let mut model = Model { log: payloads.clone(), synced: acked, snap };
            model.adopt(&rec, &wal, &ctx);
            let first = rec.records.clone();
            drop(wal);
            // Two crashes in a row: recovery made its result durable.
            fs.crash(MODES[(m + 1) % 4], n);
            let (_, rec) = Wal::open_with(Arc::new(fs.clone()), dir(), snap, opts()).unwrap();
            assert_eq!(rec.records, first, "{ctx}: second crash");
            assert!(rec.truncated.is_none(), "{ctx}: {:?}", rec.truncated);
        }
    }
}
