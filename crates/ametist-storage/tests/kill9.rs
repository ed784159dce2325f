//! A real process appends and syncs in a loop, printing each acknowledged LSN, and is killed
//! with SIGKILL at a random moment; the log must reopen with every acknowledged record, byte
//! for byte. Repeated on the same directory, so recovery of a recovered log is covered too.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ametist_storage::{Wal, WalOptions};
use rand::Rng;

const CHILD_ENV: &str = "AMETIST_STORAGE_KILL9_DIR";

fn opts() -> WalOptions {
    WalOptions { segment_bytes: 8 << 10, ..WalOptions::default() }
}

fn payload_for(lsn: u64) -> Vec<u8> {
    let len = (lsn.wrapping_mul(7919) % 300) as usize;
    (0..len).map(|i| (lsn.wrapping_mul(31).wrapping_add(i as u64)) as u8).collect()
}

/// The child: only does something when started by the parent test.
#[test]
fn kill9_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let (mut wal, _) = Wal::open(Path::new(&dir), 0, opts()).unwrap();
    let mut out = std::io::stdout().lock();
    let mut batch = 1;
    loop {
        for _ in 0..batch {
            let lsn = wal.last_lsn() + 1;
            assert_eq!(wal.append(&payload_for(lsn)).unwrap(), lsn);
        }
        wal.sync().unwrap();
        writeln!(out, "acked {}", wal.last_lsn()).unwrap();
        out.flush().unwrap();
        batch = batch % 7 + 1;
    }
}

#[test]
fn kill9_never_loses_an_acknowledged_record() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let mut rng = common::rng("kill9_never_loses_an_acknowledged_record");
    let tmp = common::TempDir::new("kill9");
    let dir = tmp.path().join("wal");
    let exe = std::env::current_exe().unwrap();
    let mut total_acked = 0;
    for round in 0..4 {
        let mut child = Command::new(&exe)
            .args(["kill9_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked = 0u64;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("acked ").and_then(|n| n.parse().ok()) {
                    acked = n;
                }
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(150..400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        assert!(acked > total_acked, "round {round}: the child made no progress");
        let (wal, rec) = Wal::open(&dir, 0, opts()).unwrap();
        let n = rec.records.len() as u64;
        assert!(n >= acked, "round {round}: acknowledged {acked}, recovered {n}");
        for (i, (lsn, p)) in rec.records.iter().enumerate() {
            assert_eq!(*lsn, i as u64 + 1, "round {round}");
            assert_eq!(p, &payload_for(*lsn), "round {round}: payload of {lsn}");
        }
        assert_eq!(wal.last_lsn(), n);
        println!("round {round}: acknowledged {acked}, recovered {n}, torn tail {:?}", rec.truncated);
        total_acked = n;
    }
}
