//! One crash-safe way to replace a whole file: the collection's `collection.json`, the Raft
//! state, the node id, partition and collection snapshot files all go through [`replace`],
//! so the simulated-crash tests below cover each of them.
//!
//! Why not write in place: a crash in the middle of a write leaves a file that is neither the
//! old content nor the new. Instead the new content goes to `<path>.tmp`, which is fsynced,
//! then renamed over `path` (an atomic switch of the name), and the directory is fsynced so
//! the rename itself survives power loss. At every point of a crash, `path` is the old file
//! or the new one, whole.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::fs::{parent_of, Fs, FsFile};

/// Replaces `path` by what `write` writes.
///
/// **Durable when it returns `Ok`:** `path` holds exactly the new content, and the name
/// survives a crash. On `Err`, or after a crash at any point, `path` holds either its old
/// content (or is absent, if it was) or the new content, whole; the temporary file is
/// removed on error (a crash may leave it, and [`read`] and the next `replace` ignore it).
pub fn replace(fs: &dyn Fs, path: &Path, write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut out = io::BufWriter::with_capacity(1 << 20, FileWriter(fs.create(&tmp)?));
        write(&mut out)?;
        out.flush()?;
        let FileWriter(mut file) = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs.rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs.remove(&tmp);
    }
    result?;
    fs.sync_dir(&parent_of(path))
}

/// [`replace`] with bytes already in memory.
pub fn replace_bytes(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(fs, path, &mut |w| w.write_all(bytes))
}

/// The content of a file written by [`replace`], or `None` when it does not exist.
pub fn read(fs: &dyn Fs, path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs.read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// An [`FsFile`] as a [`Write`] (it is only ever appended to).
struct FileWriter(Box<dyn FsFile>);

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memfs::{CrashMode, Fault, FsOp, MemFs};

    const MODES: [CrashMode; 4] = [
        CrashMode::DropUnsynced,
        CrashMode::KeepPrefix,
        CrashMode::KeepPrefixThenZeros,
        CrashMode::KeepPrefixThenGarbage,
    ];

    /// A crash after each of the writer's mutating steps, in every crash mode and with
    /// several seeds, leaves the old file or the new one, whole, never anything else; and
    /// once `replace` has returned, the new one survives any crash.
    #[test]
    fn a_crash_at_any_step_leaves_the_old_or_the_new_content() {
        let dir = Path::new("/data/cluster");
        let path = dir.join("state.json");
        let old = b"old state, durable".to_vec();
        let new: Vec<u8> = (0..3000u32).flat_map(|i| i.to_le_bytes()).collect();
        let steps = {
            let fs = MemFs::new();
            fs.create_dir_all(dir).expect("dir");
            fs.write_file_durable(&path, &old);
            let before = fs.mutations();
            replace_bytes(&fs, &path, &new).expect("replace");
            fs.mutations() - before
        };
        assert!(steps >= 3, "create, write, sync, rename, sync_dir: {steps}");
        for crash_after in 0..=steps {
            for mode in MODES {
                for seed in 0..4 {
                    let fs = MemFs::new();
                    fs.create_dir_all(dir).expect("dir");
                    fs.write_file_durable(&path, &old);
                    fs.crash_after_mutations(crash_after);
                    let finished = replace_bytes(&fs, &path, &new).is_ok();
                    fs.crash(mode, seed);
                    let got = read(&fs, &path).expect("readable").expect("the name is never lost");
                    let what = format!("crash after {crash_after} of {steps} steps, {mode:?}, seed {seed}");
                    assert!(got == old || got == new, "{what}: a mix of old and new");
                    if finished {
                        assert_eq!(got, new, "{what}: replace returned Ok, so the new content is durable");
                    }
                    // The next replace works over whatever the crash left (a stale .tmp too).
                    replace_bytes(&fs, &path, b"after").expect("replace after a crash");
                    assert_eq!(read(&fs, &path).expect("read").as_deref(), Some(&b"after"[..]), "{what}");
                }
            }
        }
    }

    #[test]
    fn a_first_write_that_crashes_leaves_no_file_or_the_whole_file() {
        let dir = Path::new("/data");
        let path = dir.join("node_id");
        for crash_after in 0..6 {
            for mode in MODES {
                let fs = MemFs::new();
                fs.create_dir_all(dir).expect("dir");
                fs.crash_after_mutations(crash_after);
                let _ = replace_bytes(&fs, &path, b"12345");
                fs.crash(mode, crash_after);
                let got = read(&fs, &path).expect("readable");
                assert!(got.is_none() || got.as_deref() == Some(&b"12345"[..]), "{crash_after} {mode:?}: {got:?}");
            }
        }
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_the_temporary_one() {
        let dir = Path::new("/data");
        let path = dir.join("collection.json");
        for op in [FsOp::Create, FsOp::Write, FsOp::Sync, FsOp::Rename] {
            let fs = MemFs::new();
            fs.create_dir_all(dir).expect("dir");
            fs.write_file_durable(&path, b"old");
            fs.inject(Fault::new(op).disk_full());
            assert!(replace_bytes(&fs, &path, b"new").is_err(), "{op:?} fails");
            assert_eq!(read(&fs, &path).expect("read").as_deref(), Some(&b"old"[..]), "{op:?}");
            assert!(!fs.paths().iter().any(|p| p.to_string_lossy().ends_with(".tmp")), "{op:?}: tmp removed");
        }
    }
}
