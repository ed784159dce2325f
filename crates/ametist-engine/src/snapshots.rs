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
use crate::collection::CollectionSpec;
use crate::error::EngineError;
use crate::partition::write_file_atomically;

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
pub(crate) fn format_time(t: SystemTime) -> String {
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
    let io_err = |e: io::Error| EngineError::Internal(format!("writing snapshot {}: {e}", target.display()));
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

/// Reads and validates a snapshot file completely: checksum, spec, every partition image.
pub fn read_archive(path: &Path) -> Result<(CollectionSpec, Vec<PartitionImage>), EngineError> {
    let bad = |msg: String| EngineError::invalid(format!("snapshot file {}: {msg}", path.display()));
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| bad(e.to_string()))?;
    if bytes.len() < MAGIC.len() + 2 + 4 + 4 + 4 || &bytes[..8] != MAGIC {
        return Err(bad("not an Ametist collection snapshot".into()));
    }
    let format = u16::from_le_bytes([bytes[8], bytes[9]]);
    if format != FORMAT {
        return Err(bad(format!("format {format}, this build reads {FORMAT}")));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(bad("checksum mismatch (damaged or truncated)".into()));
    }
    let mut pos = 10;
    let mut take = |n: usize| -> Result<&[u8], EngineError> {
        if body.len() - pos < n {
            return Err(bad("truncated".into()));
        }
        pos += n;
        Ok(&body[pos - n..pos])
    };
    let spec_len = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
    let spec: CollectionSpec =
        serde_json::from_slice(take(spec_len)?).map_err(|e| bad(format!("collection spec: {e}")))?;
    let count = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
    if count != spec.partitions {
        return Err(bad(format!("{count} partition images for {} partitions", spec.partitions)));
    }
    let mut images = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let len = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let len = usize::try_from(len).map_err(|_| bad("partition too large".into()))?;
        let image = PartitionImage::read(take(len)?).map_err(|e| bad(format!("partition {i}: {e}")))?;
        if image.dim != spec.dim || image.metric != spec.metric {
            return Err(bad(format!("partition {i} holds vectors of another dimension or metric")));
        }
        images.push(image);
    }
    if pos != body.len() {
        return Err(bad("bytes after the last partition".into()));
    }
    Ok((spec, images))
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
pub(crate) fn path_of(dir: &Path, name: &str) -> Result<PathBuf, EngineError> {
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
