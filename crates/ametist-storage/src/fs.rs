//! The file-system seam: every file operation of the WAL and the snapshot store goes through
//! [`Fs`], so tests can run the real code against [`crate::MemFs`], which models what is durable
//! and can crash or fail on demand. [`StdFs`] is the real implementation over `std::fs`.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Size and modification time of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub len: u64,
    pub modified: SystemTime,
}

/// The file operations storage needs. Durability rules are POSIX's: data written to a file is
/// durable after [`FsFile::sync_data`]; a created, renamed or removed *name* is durable after
/// [`Fs::sync_dir`] on its parent directory.
pub trait Fs: Send + Sync + Debug {
    /// Creates `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names (not paths) of the regular files directly in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole content of a file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    fn stat(&self, path: &Path) -> io::Result<FileStat>;
    /// Creates the file, or truncates it if it exists, and opens it for writing at its end.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens an existing file for writing at its end.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Atomically replaces `to` (if it exists) by `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file, written sequentially at its end.
pub trait FsFile: Send + Debug {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// `fdatasync`: the data written so far (and the size needed to read it) is durable.
    fn sync_data(&mut self) -> io::Result<()>;
    /// `fsync`: data and all metadata durable (used after shrinking a file).
    fn sync_all(&mut self) -> io::Result<()>;
    /// Cuts (or extends with zeros) the file to `len` bytes; later writes go to the new end.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

#[derive(Debug)]
struct StdFile(File);

impl FsFile for StdFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        // The file is opened with O_APPEND, so the next write lands at the new end.
        self.0.set_len(len)
    }
}

impl Fs for StdFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    out.push(name.to_owned());
                }
            }
        }
        Ok(out)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn stat(&self, path: &Path) -> io::Result<FileStat> {
        let m = fs::metadata(path)?;
        Ok(FileStat { len: m.len(), modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH) })
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let f = OpenOptions::new().create(true).truncate(true).write(true).open(path)?;
        // Reopen semantics of `append`: writes always go to the current end.
        drop(f);
        self.open_append(path)
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let f = OpenOptions::new().append(true).open(path)?;
        Ok(Box::new(StdFile(f)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            File::open(dir)?.sync_all()
        }
        #[cfg(not(unix))]
        {
            let _ = dir;
            Ok(())
        }
    }
}

/// The parent directory of `path` (`.` for a bare name).
pub(crate) fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` (and missing parents) durably: after `Ok`, every directory level created
/// here is recorded in its fsynced parent. Returns the names already in `dir` (empty when it
/// was created).
pub(crate) fn list_or_create_dir(fs: &dyn Fs, dir: &Path) -> crate::Result<Vec<String>> {
    use crate::StorageError;
    match fs.list(dir) {
        Ok(names) => return Ok(names),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StorageError::io("list directory", dir, e)),
    }
    // The levels that do not exist yet, deepest first.
    let mut missing = vec![dir.to_path_buf()];
    let mut d = dir;
    while let Some(parent) = d.parent() {
        if parent.as_os_str().is_empty() {
            break;
        }
        match fs.list(parent) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(parent.to_path_buf()),
            Err(e) => return Err(StorageError::io("list directory", parent, e)),
        }
        d = parent;
    }
    fs.create_dir_all(dir).map_err(|e| StorageError::io("create directory", dir, e))?;
    // Shallowest first, so each new entry is durable before the one below it matters.
    for level in missing.iter().rev() {
        if level.parent().is_none() {
            continue; // the root has no parent entry to make durable
        }
        let parent = parent_of(level);
        fs.sync_dir(&parent).map_err(|e| StorageError::io("fsync directory", &parent, e))?;
    }
    Ok(Vec::new())
}

/// The file [`probe_write`] writes and removes; storage ignores it otherwise.
pub const PROBE_FILE: &str = ".probe";

/// Checks that `bytes` bytes can be written and fsynced in `dir`: writes them to a
/// [`PROBE_FILE`] there, fsyncs it, and removes it again (also when a step failed; a file
/// left behind by a crash is removed by the next probe). For a writer waiting for space (a
/// full disk): reopening a log succeeds without allocating anything, so only a real write
/// tells whether there is room again. Nothing durable changes.
pub fn probe_write(fs: &dyn Fs, dir: &Path, bytes: usize) -> crate::Result<()> {
    use crate::StorageError;
    let path = dir.join(PROBE_FILE);
    let result = (|| {
        let mut f = fs.create(&path).map_err(|e| StorageError::io("create", &path, e))?;
        let chunk = vec![0u8; bytes.min(1 << 20)];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            f.write_all(&chunk[..n]).map_err(|e| StorageError::io("write", &path, e))?;
            left -= n;
        }
        f.sync_data().map_err(|e| StorageError::io("fsync", &path, e))
    })();
    match fs.remove(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if result.is_ok() => return Err(StorageError::io("remove", &path, e)),
        Err(_) => {}
    }
    result
}
