//! Collection snapshot files: one file holding every partition's image, to download, keep
//! and restore a collection from.
//!
//! ```text
//! "AMCSNAP\0" | u16 format (1) | u32 length + collection spec (JSON: name, dim, metric,
//! partitions, index) | u32 partition count | per partition: u64 length + partition image
//! (see `codec`) | u32 CRC-32C of everything before it
//! ```
//!
//! Files are `<collection>-<YYYY-MM-DD-HH-MM-SS>.snapshot` in `<data_dir>/snapshots/<collection>/`,
//! written to a hidden temp file, fsynced, renamed and the directory fsynced.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::codec::{CrcWriter, PartitionImage};
use crate::error::EngineError;
use crate::partition::write_file_atomically;
use crate::spec::CollectionSpec;

const MAGIC: &[u8; 8] = b"AMCSNAP\0";
const FORMAT: u16 = 1;
const SUFFIX: &str = ".snapshot";

/// A collection snapshot, as Qdrant describes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDescription {
    pub name: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SS` (Qdrant's format).
    pub creation_time: Option<String>,
    /// Bytes.
    pub size: u64,
}

/// `2026-11-24T13:45:12` for a time (UTC).
pub fn format_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A fresh file name for a snapshot of `collection` in `dir`.
pub(crate) fn new_snapshot_name(collection: &str, dir: &Path) -> String {
    let stamp = format_time(SystemTime::now()).replace([':', 'T'], "-");
    let mut name = format!("{collection}-{stamp}{SUFFIX}");
    let mut n = 1;
    while dir.join(&name).exists() {
        n += 1;
        name = format!("{collection}-{stamp}-{n}{SUFFIX}");
    }
    name
}

pub(crate) fn remove_quietly(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

fn describe(path: &Path) -> io::Result<SnapshotDescription> {
    let meta = std::fs::metadata(path)?;
    Ok(SnapshotDescription {
        name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        creation_time: meta.modified().ok().map(format_time),
        size: meta.len(),
    })
}

/// Joins the partitions' image files into one snapshot file at `target`.
pub(crate) fn write_archive(
    target: &Path,
    spec: &CollectionSpec,
    parts: &[PathBuf],
) -> Result<SnapshotDescription, EngineError> {
    // A full disk is a retryable error (nothing is left behind), not an internal one.
    let io_err = |e: io::Error| EngineError::io(format_args!("writing snapshot {}", target.display()), &e);
    let spec_json = serde_json::to_vec(spec).map_err(|e| io_err(io::Error::other(e)))?;
    // The temp file is hidden (a leading dot), so listing never shows a half-written one.
    let hidden = target.with_file_name(format!(".{}", target.file_name().unwrap_or_default().to_string_lossy()));
    write_file_atomically(&hidden, &mut |w| {
        let mut w = CrcWriter { w, crc: 0 };
        w.write_all(MAGIC)?;
        w.write_all(&FORMAT.to_le_bytes())?;
        w.write_all(&(spec_json.len() as u32).to_le_bytes())?;
        w.write_all(&spec_json)?;
        w.write_all(&(parts.len() as u32).to_le_bytes())?;
        for part in parts {
            let mut f = File::open(part)?;
            w.write_all(&f.metadata()?.len().to_le_bytes())?;
            io::copy(&mut f, &mut w)?;
        }
        let crc = w.crc;
        w.w.write_all(&crc.to_le_bytes())
    })
    .map_err(io_err)?;
    std::fs::rename(&hidden, target).map_err(io_err)?;
    crate::partition::sync_dir(target.parent().unwrap_or(Path::new("."))).map_err(io_err)?;
    describe(target).map_err(io_err)
}

/// Reads a collection snapshot file front to back, one partition image at a time, so that
/// restoring a file of any size holds one partition in memory, not the file.
///
/// Everything is checked as it is read: the magic bytes first (nothing else of a file that
/// is not a snapshot is read), the collection spec against the same rules a created
/// collection passes ([`CollectionSpec::validate`]), each image's dimension and metric, and
/// that every point sits in the partition its id routes to. The checksum covers the whole
/// file and is known only at the end: [`ArchiveReader::finish`] must succeed before anything
/// read is trusted.
pub struct ArchiveReader {
    file: io::BufReader<File>,
    path: PathBuf,
    crc: u32,
    spec: CollectionSpec,
    next: usize,
}

impl ArchiveReader {
    /// Opens a snapshot file and reads its header and collection spec.
    pub fn open(path: &Path) -> Result<Self, EngineError> {
        let file = File::open(path).map_err(|e| archive_error(path, e.to_string()))?;
        let mut r = ArchiveReader {
            file: io::BufReader::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
            crc: 0,
            spec: placeholder_spec(),
            next: 0,
        };
        let mut magic = [0u8; 8];
        if r.read_exact(&mut magic).is_err() || &magic != MAGIC {
            return Err(r.bad("not an Ametist collection snapshot"));
        }
        let format = u16::from_le_bytes(r.array()?);
        if format != FORMAT {
            return Err(r.bad(format!("format {format}, this build reads {FORMAT}")));
        }
        let spec_len = u32::from_le_bytes(r.array()?) as usize;
        if spec_len > MAX_SPEC_BYTES {
            return Err(r.bad(format!("a collection spec of {spec_len} bytes")));
        }
        let mut spec_json = vec![0u8; spec_len];
        r.read_exact(&mut spec_json).map_err(|_| r.bad("truncated"))?;
        r.spec = serde_json::from_slice(&spec_json).map_err(|e| r.bad(format!("collection spec: {e}")))?;
        // A restored collection passes the checks a created one does.
        r.spec.validate().map_err(|e| r.bad(format!("collection spec: {e}")))?;
        let count = u32::from_le_bytes(r.array()?) as usize;
        if count != r.spec.partitions {
            return Err(r.bad(format!("{count} partition images for {} partitions", r.spec.partitions)));
        }
        Ok(r)
    }

    /// The collection spec the file holds (validated).
    pub fn spec(&self) -> &CollectionSpec {
        &self.spec
    }

    /// The next partition's image, validated, or `None` after the last.
    pub fn next_image(&mut self) -> Result<Option<PartitionImage>, EngineError> {
        let i = self.next;
        if i == self.spec.partitions {
            return Ok(None);
        }
        self.next += 1;
        let len = u64::from_le_bytes(self.array()?);
        // Read as the bytes arrive, never sized up front by a length the file claims.
        let mut bytes = Vec::new();
        let read = (&mut *self).take(len).read_to_end(&mut bytes).map_err(|e| self.bad(e.to_string()))?;
        if read as u64 != len {
            return Err(self.bad("truncated"));
        }
        let image = PartitionImage::read(&bytes).map_err(|e| self.bad(format!("partition {i}: {e}")))?;
        if image.dim != self.spec.dim || image.metric != self.spec.metric {
            return Err(self.bad(format!("partition {i} holds vectors of another dimension or metric")));
        }
        let count = self.spec.partitions;
        if let Some(e) = image.entries.iter().find(|e| e.id.partition(count) != i) {
            return Err(self.bad(format!(
                "partition {i} holds point {} which belongs to partition {} of {count}",
                e.id,
                e.id.partition(count)
            )));
        }
        Ok(Some(image))
    }

    /// Checks that every image was read, the checksum over the whole file, and that nothing
    /// follows it.
    pub fn finish(mut self) -> Result<(), EngineError> {
        if self.next != self.spec.partitions {
            return Err(self.bad("not every partition was read"));
        }
        let expected = self.crc;
        let mut stored = [0u8; 4];
        self.file.read_exact(&mut stored).map_err(|_| self.bad("truncated"))?;
        if u32::from_le_bytes(stored) != expected {
            return Err(self.bad("checksum mismatch (damaged or truncated)"));
        }
        let mut rest = [0u8; 1];
        if self.file.read(&mut rest).map_err(|e| self.bad(e.to_string()))? != 0 {
            return Err(self.bad("bytes after the checksum"));
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EngineError> {
        let mut b = [0u8; N];
        self.read_exact(&mut b).map_err(|_| self.bad("truncated"))?;
        Ok(b)
    }

    fn bad(&self, msg: impl std::fmt::Display) -> EngineError {
        archive_error(&self.path, msg.to_string())
    }
}

/// Reads through the checksum.
impl Read for ArchiveReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }
}

/// The most bytes a collection spec may take in a snapshot file (a spec is a few hundred
/// bytes; this bounds what a crafted length makes us allocate).
const MAX_SPEC_BYTES: usize = 1 << 20;

/// What [`ArchiveReader`] holds until it has read the file's spec.
fn placeholder_spec() -> CollectionSpec {
    CollectionSpec {
        name: String::new(),
        dim: 0,
        metric: ametist_core::Metric::Cosine,
        partitions: 0,
        index: crate::config::IndexConfig::default(),
        vectors: Default::default(),
        sparse_vectors: Default::default(),
        replication: Default::default(),
    }
}

fn archive_error(path: &Path, msg: String) -> EngineError {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    EngineError::invalid(format!("snapshot file {name}: {msg}"))
}

/// Snapshot files in `dir`, oldest first (by name, which carries the time).
pub(crate) fn list(dir: &Path) -> Result<Vec<SnapshotDescription>, EngineError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EngineError::Internal(format!("cannot list {}: {e}", dir.display()))),
    };
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(SUFFIX) && !name.starts_with('.') {
            if let Ok(d) = describe(&entry.path()) {
                out.push(d);
            }
        }
    }
    out.sort_by(|a, b| a.creation_time.cmp(&b.creation_time).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}

/// The path of snapshot `name` in `dir`, if it is a snapshot name that exists there.
pub fn path_of(dir: &Path, name: &str) -> Result<PathBuf, EngineError> {
    let valid = name.ends_with(SUFFIX)
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let path = dir.join(name);
    if !valid || !path.is_file() {
        return Err(EngineError::invalid(format!("snapshot `{name}` not found")));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_like_qdrant() {
        assert_eq!(format_time(UNIX_EPOCH), "1970-01-01T00:00:00");
        assert_eq!(format_time(UNIX_EPOCH + std::time::Duration::from_secs(1_659_610_150)), "2022-08-04T10:49:10");
        assert_eq!(format_time(UNIX_EPOCH + std::time::Duration::from_secs(951_782_400)), "2000-02-29T00:00:00");
    }
}
