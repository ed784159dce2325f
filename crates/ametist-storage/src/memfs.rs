//! [`MemFs`]: an in-memory [`Fs`] for tests that tracks what is durable and can crash or fail.
//!
//! The model is a strict reading of POSIX:
//! * file data is durable only up to the last `sync_data`/`sync_all` of that file;
//! * a name created, renamed or removed is durable only after `sync_dir` of its directory;
//! * directories themselves are always durable (created with `create_dir_all`).
//!
//! [`MemFs::crash`] simulates power loss: every file keeps its durable data, and (depending on
//! [`CrashMode`]) a random prefix of the bytes written since, possibly followed by zeros or
//! garbage (a file whose size reached the disk before its data). The namespace keeps its durable
//! state plus, in the non-strict modes, a random prefix of the unsynced directory operations
//! (journaling file systems persist metadata in order). Handles opened before a crash fail.
//!
//! Faults: [`MemFs::inject`] makes a chosen operation fail (once or from then on), and
//! [`MemFs::crash_after_mutations`] makes every mutating operation after the first `n` fail,
//! as if the process had died at that point; call [`MemFs::crash`] afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::fs::{parent_of, FileStat, Fs, FsFile};

/// The operations of [`Fs`] and [`FsFile`], for fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsOp {
    CreateDir,
    List,
    Read,
    Stat,
    Create,
    OpenAppend,
    Write,
    /// `sync_data` and `sync_all`.
    Sync,
    SetLen,
    Rename,
    Remove,
    SyncDir,
}

impl FsOp {
    /// Operations that change state (the ones [`MemFs::crash_after_mutations`] counts).
    pub fn is_mutation(self) -> bool {
        !matches!(self, FsOp::List | FsOp::Read | FsOp::Stat)
    }
}

/// A fault to inject: operation `op` (optionally only on paths containing `path_contains`)
/// fails after `skip` matching calls succeeded; once, or every time from then on if `sticky`.
/// The error is an "other" I/O error, or the OS error `os_error` (say ENOSPC, to test what a
/// full disk does).
#[derive(Debug, Clone)]
pub struct Fault {
    pub op: FsOp,
    pub path_contains: Option<String>,
    pub skip: u64,
    pub sticky: bool,
    pub os_error: Option<i32>,
}

/// Linux's "no space left on device".
const ENOSPC: i32 = 28;

impl Fault {
    /// The next call of `op` fails, once.
    pub fn new(op: FsOp) -> Self {
        Fault { op, path_contains: None, skip: 0, sticky: false, os_error: None }
    }
    /// Fail as a full disk does: ENOSPC, whose kind is [`io::ErrorKind::StorageFull`].
    pub fn disk_full(mut self) -> Self {
        self.os_error = Some(ENOSPC);
        self
    }
    /// Let `n` matching calls succeed first.
    pub fn after(mut self, n: u64) -> Self {
        self.skip = n;
        self
    }
    /// Keep failing once triggered.
    pub fn sticky(mut self) -> Self {
        self.sticky = true;
        self
    }
    /// Only calls on paths containing `s`.
    pub fn on_path(mut self, s: &str) -> Self {
        self.path_contains = Some(s.to_owned());
        self
    }
}

/// What happens to unsynced state at [`MemFs::crash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Everything unsynced is lost.
    DropUnsynced,
    /// Each file keeps a random prefix of its unsynced appended bytes; a random prefix of the
    /// unsynced namespace operations survives.
    KeepPrefix,
    /// As `KeepPrefix`, then a random run of zero bytes (size persisted, data not).
    KeepPrefixThenZeros,
    /// As `KeepPrefix`, then a random run of random bytes.
    KeepPrefixThenGarbage,
}

#[derive(Debug, Clone)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    modified: SystemTime,
}

#[derive(Debug, Clone)]
enum NsOp {
    Link(PathBuf, usize),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf, usize),
}

impl NsOp {
    fn dir(&self) -> PathBuf {
        match self {
            NsOp::Link(p, _) | NsOp::Unlink(p) | NsOp::Rename(_, p, _) => parent_of(p),
        }
    }
    fn apply(&self, names: &mut BTreeMap<PathBuf, usize>) {
        match self {
            NsOp::Link(p, i) => {
                names.insert(p.clone(), *i);
            }
            NsOp::Unlink(p) => {
                names.remove(p);
            }
            NsOp::Rename(from, to, i) => {
                names.remove(from);
                names.insert(to.clone(), *i);
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    names: BTreeMap<PathBuf, usize>,
    durable_names: BTreeMap<PathBuf, usize>,
    pending_ns: Vec<NsOp>,
    dirs: BTreeSet<PathBuf>,
    faults: Vec<Fault>,
    mutations: u64,
    crash_at: Option<u64>,
    generation: u64,
    clock: u64,
}

impl State {
    fn check(&mut self, op: FsOp, path: &Path) -> io::Result<()> {
        if op.is_mutation() {
            if let Some(at) = self.crash_at {
                if self.mutations >= at {
                    return Err(io::Error::other(format!("simulated crash: {op:?} {} not performed", path.display())));
                }
            }
            self.mutations += 1;
        }
        let p = path.to_string_lossy();
        let mut fire = None;
        for (i, f) in self.faults.iter_mut().enumerate() {
            if f.op != op {
                continue;
            }
            if let Some(s) = &f.path_contains {
                if !p.contains(s.as_str()) {
                    continue;
                }
            }
            if f.skip > 0 {
                f.skip -= 1;
                continue;
            }
            fire = Some(i);
            break;
        }
        if let Some(i) = fire {
            let os_error = self.faults[i].os_error;
            if !self.faults[i].sticky {
                self.faults.remove(i);
            }
            return Err(match os_error {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::other(format!("injected fault: {op:?} {}", path.display())),
            });
        }
        Ok(())
    }

    fn now(&mut self) -> SystemTime {
        self.clock += 1;
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + self.clock)
    }

    fn inode_of(&self, path: &Path) -> io::Result<usize> {
        self.names
            .get(path)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no such file: {}", path.display())))
    }

    fn require_dir(&self, dir: &Path) -> io::Result<()> {
        if self.dirs.contains(dir) {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::NotFound, format!("no such directory: {}", dir.display())))
        }
    }
}

/// In-memory file system with a durability model, crashes and fault injection. Cloning gives
/// another handle to the same file system.
#[derive(Clone, Default)]
pub struct MemFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for MemFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("MemFs")
            .field("files", &s.names.keys().collect::<Vec<_>>())
            .field("mutations", &s.mutations)
            .finish()
    }
}

impl MemFs {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a fault (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Removes all pending faults and any crash point.
    pub fn clear_faults(&self) {
        let mut s = self.lock();
        s.faults.clear();
        s.crash_at = None;
    }

    /// Number of mutating operations performed so far.
    pub fn mutations(&self) -> u64 {
        self.lock().mutations
    }

    /// From now on, `n` more mutating operations succeed and every later one fails (the
    /// process "died" there). Follow with [`MemFs::crash`].
    pub fn crash_after_mutations(&self, n: u64) {
        let mut s = self.lock();
        s.crash_at = Some(s.mutations + n);
    }

    /// Simulates power loss (see the module docs). `seed` drives the random choices of the
    /// non-strict modes. Clears faults and the crash point; handles opened before fail.
    pub fn crash(&self, mode: CrashMode, seed: u64) {
        let mut rng = SplitMix(seed);
        let mut s = self.lock();
        // Namespace: durable state plus maybe a prefix of the pending operations.
        let keep_ops = match mode {
            CrashMode::DropUnsynced => 0,
            _ => rng.below(s.pending_ns.len() as u64 + 1) as usize,
        };
        let pending = std::mem::take(&mut s.pending_ns);
        for op in &pending[..keep_ops] {
            op.apply(&mut s.durable_names);
        }
        s.names = s.durable_names.clone();
        for inode in &mut s.inodes {
            let mut data = inode.durable.clone();
            if mode != CrashMode::DropUnsynced
                && inode.data.len() > inode.durable.len()
                && inode.data.starts_with(&inode.durable)
            {
                let extra = &inode.data[inode.durable.len()..];
                let k = rng.below(extra.len() as u64 + 1) as usize;
                data.extend_from_slice(&extra[..k]);
                let tail = rng.below((extra.len() - k) as u64 + 1) as usize;
                match mode {
                    CrashMode::KeepPrefixThenZeros => data.extend(std::iter::repeat_n(0, tail)),
                    CrashMode::KeepPrefixThenGarbage => data.extend((0..tail).map(|_| rng.next() as u8)),
                    _ => {}
                }
            }
            inode.data = data.clone();
            inode.durable = data;
        }
        s.faults.clear();
        s.crash_at = None;
        s.generation += 1;
    }

    /// Current content of a file (durable or not), if the name exists.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        s.names.get(path).map(|&i| s.inodes[i].data.clone())
    }

    /// Replaces a file's content and makes it and its name durable at once (to plant
    /// corruption in tests). The parent directory must exist.
    pub fn write_file_durable(&self, path: &Path, bytes: &[u8]) {
        let mut s = self.lock();
        s.dirs.insert(parent_of(path));
        let now = s.now();
        let i = match s.names.get(path) {
            Some(&i) => i,
            None => {
                s.inodes.push(Inode { data: Vec::new(), durable: Vec::new(), modified: now });
                let i = s.inodes.len() - 1;
                s.names.insert(path.to_path_buf(), i);
                s.durable_names.insert(path.to_path_buf(), i);
                i
            }
        };
        s.inodes[i].data = bytes.to_vec();
        s.inodes[i].durable = bytes.to_vec();
        s.inodes[i].modified = now;
    }

    /// Paths of all files that currently exist, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.lock().names.keys().cloned().collect()
    }
}

impl Fs for MemFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.check(FsOp::CreateDir, dir)?;
        let mut d = Some(dir);
        while let Some(p) = d {
            if p.as_os_str().is_empty() {
                break;
            }
            s.dirs.insert(p.to_path_buf());
            d = p.parent();
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.lock();
        s.check(FsOp::List, dir)?;
        s.require_dir(dir)?;
        Ok(s.names
            .keys()
            .filter(|p| parent_of(p) == dir)
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut s = self.lock();
        s.check(FsOp::Read, path)?;
        let i = s.inode_of(path)?;
        Ok(s.inodes[i].data.clone())
    }

    fn stat(&self, path: &Path) -> io::Result<FileStat> {
        let mut s = self.lock();
        s.check(FsOp::Stat, path)?;
        let i = s.inode_of(path)?;
        Ok(FileStat { len: s.inodes[i].data.len() as u64, modified: s.inodes[i].modified })
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut s = self.lock();
        s.check(FsOp::Create, path)?;
        s.require_dir(&parent_of(path))?;
        let now = s.now();
        let inode = match s.names.get(path) {
            Some(&i) => {
                s.inodes[i].data.clear();
                s.inodes[i].modified = now;
                i
            }
            None => {
                s.inodes.push(Inode { data: Vec::new(), durable: Vec::new(), modified: now });
                let i = s.inodes.len() - 1;
                s.names.insert(path.to_path_buf(), i);
                s.pending_ns.push(NsOp::Link(path.to_path_buf(), i));
                i
            }
        };
        Ok(Box::new(MemFile { fs: self.clone(), inode, path: path.to_path_buf(), generation: s.generation }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut s = self.lock();
        s.check(FsOp::OpenAppend, path)?;
        let inode = s.inode_of(path)?;
        Ok(Box::new(MemFile { fs: self.clone(), inode, path: path.to_path_buf(), generation: s.generation }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.check(FsOp::Rename, from)?;
        let i = s.inode_of(from)?;
        s.require_dir(&parent_of(to))?;
        assert_eq!(parent_of(from), parent_of(to), "MemFs models renames within one directory only");
        let op = NsOp::Rename(from.to_path_buf(), to.to_path_buf(), i);
        op.apply(&mut s.names);
        s.pending_ns.push(op);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.check(FsOp::Remove, path)?;
        s.inode_of(path)?;
        let op = NsOp::Unlink(path.to_path_buf());
        op.apply(&mut s.names);
        s.pending_ns.push(op);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.check(FsOp::SyncDir, dir)?;
        s.require_dir(dir)?;
        let pending = std::mem::take(&mut s.pending_ns);
        let mut rest = Vec::new();
        for op in pending {
            if op.dir() == dir {
                op.apply(&mut s.durable_names);
            } else {
                rest.push(op);
            }
        }
        s.pending_ns = rest;
        Ok(())
    }
}

#[derive(Debug)]
struct MemFile {
    fs: MemFs,
    inode: usize,
    path: PathBuf,
    generation: u64,
}

impl MemFile {
    fn with<T>(&self, op: FsOp, f: impl FnOnce(&mut State, usize) -> T) -> io::Result<T> {
        let mut s = self.fs.lock();
        if s.generation != self.generation {
            return Err(io::Error::other(format!(
                "stale handle to {} (opened before a simulated crash)",
                self.path.display()
            )));
        }
        s.check(op, &self.path)?;
        Ok(f(&mut s, self.inode))
    }
}

impl FsFile for MemFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.with(FsOp::Write, |s, i| {
            let now = s.now();
            s.inodes[i].data.extend_from_slice(buf);
            s.inodes[i].modified = now;
        })
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.with(FsOp::Sync, |s, i| {
            s.inodes[i].durable = s.inodes[i].data.clone();
        })
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.with(FsOp::SetLen, |s, i| {
            s.inodes[i].data.resize(len as usize, 0);
        })
    }
}

/// Tiny deterministic generator for crash choices (no `rand` dependency in the library).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}
