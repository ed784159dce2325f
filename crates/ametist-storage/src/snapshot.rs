//! Atomic, checksummed snapshot files. See the crate docs for the durability contract and
//! `docs/storage.md` for the byte layout.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::error::{Result, StorageError};
use crate::format::{encode_snap_trailer, verify_snapshot, SnapError, SNAP_VERSION};
use crate::fs::{Fs, FsFile, StdFs};
use crate::Lsn;

const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".snap";
const TMP_SUFFIX: &str = ".snap.tmp";
const CORRUPT_SUFFIX: &str = ".snap.corrupt";
const WRITE_CHUNK: usize = 256 << 10;

/// A durable snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    /// Every WAL record at or below this LSN is reflected in the snapshot.
    pub lsn: Lsn,
    /// File size in bytes (payload plus trailer).
    pub size: u64,
    /// The file's modification time (when it was written).
    pub created: SystemTime,
}

/// A verified snapshot and its payload.
#[derive(Debug, Clone)]
pub struct LoadedSnapshot {
    pub info: SnapshotInfo,
    pub data: Vec<u8>,
}

/// A snapshot file that failed verification and was passed over.
#[derive(Debug, Clone)]
pub struct SkippedSnapshot {
    pub path: PathBuf,
    pub reason: String,
    /// Where it was moved (renamed to `*.snap.corrupt`, so it no longer counts as a snapshot
    /// and stays for an operator), if the rename succeeded.
    pub quarantined_as: Option<PathBuf>,
}

/// Result of [`SnapshotStore::load_latest_decoded`]: the newest snapshot `decode` took (with
/// its info), and the snapshots skipped on the way.
pub type Decoded<T> = (Option<(SnapshotInfo, T)>, Vec<SkippedSnapshot>);

/// Result of [`SnapshotStore::load_latest`].
#[derive(Debug, Clone, Default)]
pub struct SnapshotLoad {
    /// The newest snapshot that verified, if any.
    pub snapshot: Option<LoadedSnapshot>,
    /// Newer snapshots that did not verify, newest first, with the reasons.
    pub skipped: Vec<SkippedSnapshot>,
}

/// The snapshot directory of one partition.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
}

/// `snapshot-00000000000000000042.snap` for LSN 42.
pub fn snapshot_file_name(lsn: Lsn) -> String {
    format!("{PREFIX}{lsn:020}{SUFFIX}")
}

fn parse_name(name: &str, suffix: &str) -> Option<Lsn> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl SnapshotStore {
    /// Opens the store in `dir` on the real file system; see [`SnapshotStore::open_with`].
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(Arc::new(StdFs), dir)
    }

    /// Opens (creating if needed) the snapshot directory, removes temp files left by a write
    /// that was interrupted (they were never renamed, so they never counted), and fsyncs the
    /// directory, so every snapshot it lists is durable. Only the owner of the directory may
    /// open it: this is what cleans up temp files.
    pub fn open_with(fs: Arc<dyn Fs>, dir: &Path) -> Result<Self> {
        let names = crate::fs::list_or_create_dir(fs.as_ref(), dir)?;
        for name in names.iter().filter(|n| n.ends_with(TMP_SUFFIX)) {
            let p = dir.join(name);
            fs.remove(&p).map_err(|e| StorageError::io("remove leftover temp file", &p, e))?;
        }
        // Makes those removals durable, and also any rename an earlier `write` did before its
        // directory fsync failed: what `list` shows from now on survives a crash.
        fs.sync_dir(dir).map_err(|e| StorageError::io("fsync directory", dir, e))?;
        Ok(SnapshotStore { fs, dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a snapshot covering every WAL record up to `lsn`.
    ///
    /// `write` serialises the state into the given writer (buffered here). Then a trailer
    /// (checksum, length, LSN) is appended, the temp file `snapshot-<lsn>.snap.tmp` is
    /// fsynced, renamed to `snapshot-<lsn>.snap` (replacing one of the same LSN), and the
    /// directory is fsynced.
    ///
    /// Either it fails and no snapshot changed (the temp file is removed, best effort; one
    /// left by a crash is removed by the next `open`) — except that a failed final directory
    /// fsync leaves it unknown whether the new file survives a crash, so the WAL must not be
    /// truncated — or the new snapshot is written, flushed and renamed durably: after `Ok`,
    /// and only then, the WAL may be truncated through `lsn`.
    ///
    /// Afterwards the newest `keep` snapshots (at least 1: the new one) are kept and older ones
    /// deleted, best effort: a failure there does not fail the call, the files are retried at
    /// the next write (use [`SnapshotStore::prune`] to see such errors).
    pub fn write(
        &self,
        lsn: Lsn,
        keep: usize,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<SnapshotInfo> {
        let name = snapshot_file_name(lsn);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let path = self.dir.join(&name);
        let result = self.write_tmp(&tmp, lsn, write);
        if let Err(e) = result {
            let _ = self.fs.remove(&tmp);
            return Err(e);
        }
        if let Err(e) = self.fs.rename(&tmp, &path) {
            let _ = self.fs.remove(&tmp);
            return Err(StorageError::io("rename snapshot into place", &path, e));
        }
        self.fs.sync_dir(&self.dir).map_err(|e| StorageError::io("fsync directory", &self.dir, e))?;
        let stat = self.fs.stat(&path).map_err(|e| StorageError::io("stat", &path, e))?;
        let _ = self.prune(keep);
        Ok(SnapshotInfo { path, lsn, size: stat.len, created: stat.modified })
    }

    fn write_tmp(&self, tmp: &Path, lsn: Lsn, write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> Result<()> {
        let file = self.fs.create(tmp).map_err(|e| StorageError::io("create snapshot temp file", tmp, e))?;
        let mut w = SnapWriter { file, buf: Vec::with_capacity(WRITE_CHUNK), crc: 0, len: 0 };
        write(&mut w).map_err(|e| StorageError::io("serialise snapshot into", tmp, e))?;
        w.flush_buf().map_err(|e| StorageError::io("write", tmp, e))?;
        let trailer = encode_snap_trailer(lsn, w.len, w.crc);
        w.file.write_all(&trailer).map_err(|e| StorageError::io("write", tmp, e))?;
        w.file.sync_all().map_err(|e| StorageError::io("fsync", tmp, e))?;
        Ok(())
    }

    /// Deletes all but the newest `keep` snapshots (at least 1 is kept) and fsyncs the
    /// directory. Returns the removed paths.
    pub fn prune(&self, keep: usize) -> Result<Vec<PathBuf>> {
        let all = self.list()?;
        let mut removed = Vec::new();
        for info in all.into_iter().skip(keep.max(1)) {
            self.fs.remove(&info.path).map_err(|e| StorageError::io("remove old snapshot", &info.path, e))?;
            removed.push(info.path);
        }
        if !removed.is_empty() {
            self.fs.sync_dir(&self.dir).map_err(|e| StorageError::io("fsync directory", &self.dir, e))?;
        }
        Ok(removed)
    }

    /// Deletes every snapshot and fsyncs the directory (a replica about to take its
    /// primary's state: none of its own may be loaded again).
    pub fn remove_all(&self) -> Result<()> {
        for info in self.list()? {
            self.fs.remove(&info.path).map_err(|e| StorageError::io("remove snapshot", &info.path, e))?;
        }
        self.fs.sync_dir(&self.dir).map_err(|e| StorageError::io("fsync directory", &self.dir, e))
    }

    /// All snapshot files, newest (highest LSN) first. Temp files and quarantined files are
    /// not snapshots and are not listed. Nothing is verified here.
    pub fn list(&self) -> Result<Vec<SnapshotInfo>> {
        let names = self.fs.list(&self.dir).map_err(|e| StorageError::io("list directory", &self.dir, e))?;
        let mut out = Vec::new();
        for name in names {
            let Some(lsn) = parse_name(&name, SUFFIX) else {
                continue;
            };
            let path = self.dir.join(&name);
            let stat = self.fs.stat(&path).map_err(|e| StorageError::io("stat", &path, e))?;
            out.push(SnapshotInfo { path, lsn, size: stat.len, created: stat.modified });
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.lsn));
        Ok(out)
    }

    /// Reads and verifies one snapshot; a checksum or format failure is
    /// [`StorageError::CorruptSnapshot`].
    pub fn load(&self, info: &SnapshotInfo) -> Result<Vec<u8>> {
        match self.read_verified(info)? {
            Ok(data) => Ok(data),
            Err(reason) => Err(StorageError::CorruptSnapshot { path: info.path.clone(), reason }),
        }
    }

    /// Outer error: I/O or unsupported version. Inner error: why the file is corrupt.
    fn read_verified(&self, info: &SnapshotInfo) -> Result<std::result::Result<Vec<u8>, String>> {
        let mut bytes = self.fs.read(&info.path).map_err(|e| StorageError::io("read", &info.path, e))?;
        match verify_snapshot(&bytes) {
            Ok((lsn, _)) if lsn != info.lsn => Ok(Err(format!("trailer says LSN {lsn}, file name says {}", info.lsn))),
            Ok((_, len)) => {
                bytes.truncate(len);
                Ok(Ok(bytes))
            }
            Err(SnapError::Version(v)) => {
                Err(StorageError::UnsupportedVersion { path: info.path.clone(), found: v, supported: SNAP_VERSION })
            }
            Err(SnapError::Invalid(reason)) => Ok(Err(reason)),
        }
    }

    /// The newest snapshot whose checksums verify. Newer files that fail verification are
    /// reported in [`SnapshotLoad::skipped`] (with the file and the reason) and renamed to
    /// `*.snap.corrupt`, and the next older one is tried. `snapshot` is `None` when no valid
    /// snapshot exists.
    ///
    /// Note for the caller: if a newer snapshot was skipped, WAL records after the loaded
    /// snapshot's LSN must still exist for recovery to be complete; keep the WAL from the
    /// oldest kept snapshot on (`truncate_through(oldest kept lsn)`) if that fallback matters.
    ///
    /// I/O errors and unsupported versions are returned as errors, not skipped.
    pub fn load_latest(&self) -> Result<SnapshotLoad> {
        let (snapshot, skipped) =
            self.load_latest_decoded(|info, data| Ok(LoadedSnapshot { info: info.clone(), data }))?;
        Ok(SnapshotLoad { snapshot: snapshot.map(|(_, s)| s), skipped })
    }

    /// [`SnapshotStore::load_latest`], where a snapshot also counts as corrupt when `decode`
    /// refuses its payload (a file whose checksum holds but whose contents the caller cannot
    /// read): it is skipped and quarantined like a checksum failure, and the next older one
    /// is tried. Returns the newest snapshot `decode` took, and the skipped ones.
    pub fn load_latest_decoded<T>(
        &self,
        mut decode: impl FnMut(&SnapshotInfo, Vec<u8>) -> std::result::Result<T, String>,
    ) -> Result<Decoded<T>> {
        let mut skipped = Vec::new();
        for info in self.list()? {
            let reason = match self.read_verified(&info)? {
                Ok(data) => match decode(&info, data) {
                    Ok(value) => return Ok((Some((info, value)), skipped)),
                    Err(reason) => reason,
                },
                Err(reason) => reason,
            };
            let quarantined_as = self.quarantine(&info.path);
            skipped.push(SkippedSnapshot { path: info.path, reason, quarantined_as });
        }
        Ok((None, skipped))
    }

    /// Renames a snapshot that cannot be used to `*.snap.corrupt` (so that it no longer
    /// counts and stays for an operator); returns the new path if the rename worked.
    fn quarantine(&self, path: &Path) -> Option<PathBuf> {
        let mut q = path.to_path_buf().into_os_string();
        q.push(".corrupt");
        let q = PathBuf::from(q);
        debug_assert!(q.to_string_lossy().ends_with(CORRUPT_SUFFIX));
        match self.fs.rename(path, &q) {
            Ok(()) => {
                let _ = self.fs.sync_dir(&self.dir);
                Some(q)
            }
            Err(_) => None,
        }
    }
}

/// Buffers the serialised state and keeps the running checksum and length.
struct SnapWriter {
    file: Box<dyn FsFile>,
    buf: Vec<u8>,
    crc: u32,
    len: u64,
}

impl SnapWriter {
    fn flush_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl Write for SnapWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.crc = crc32c::crc32c_append(self.crc, data);
        self.len += data.len() as u64;
        if self.buf.len() + data.len() > WRITE_CHUNK {
            self.flush_buf()?;
        }
        if data.len() >= WRITE_CHUNK {
            self.file.write_all(data)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Durability comes from the fsync in `SnapshotStore::write`; this only empties the
        // buffer.
        self.flush_buf()
    }
}
