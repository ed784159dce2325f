//! Full-storage snapshots: every collection and the aliases in one file, to copy a whole
//! database elsewhere or back it up, and to restore into an empty data directory.
//!
//! ```text
//! "AMFSNAP\0" | u16 format (1) | u32 length + header (JSON: {"collections": [names],
//! "aliases": [[alias, collection]]}) | per collection, in the header's order: u64 length +
//! a collection snapshot file (see `snapshots`) | u32 CRC-32C of everything before it
//! ```
//!
//! Files are `full-snapshot-<YYYY-MM-DD-HH-MM-SS>.snapshot` in `<data_dir>/full-snapshots/`,
//! written to a hidden temp file, fsynced, renamed and the directory fsynced. Each
//! collection is snapshotted as by `POST /collections/{name}/snapshots` (its file is made
//! in the collection's snapshot directory, copied in, and removed), so there is no
//! point in time across collections, as there is none across partitions.
//!
//! Restoring ([`restore`]) needs a database without collections: it checks the whole file's
//! checksum first, then restores each collection as a collection snapshot is restored
//! (every check of that path applies), then the aliases.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::codec::CrcWriter;
use crate::db::{AliasAction, Ametist};
use crate::error::EngineError;
use crate::partition::write_file_atomically;
use crate::snapshots::{self, SnapshotDescription};

const MAGIC: &[u8; 8] = b"AMFSNAP\0";
const FORMAT: u16 = 1;
const MAX_HEADER_BYTES: usize = 16 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    collections: Vec<String>,
    aliases: Vec<(String, String)>,
}

fn dir_of(db: &Ametist) -> Result<PathBuf, EngineError> {
    db.data_dir()
        .map(|d| d.join("full-snapshots"))
        .ok_or_else(|| EngineError::invalid("full-storage snapshots need a database opened on a data directory"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| EngineError::Internal(e.to_string()))?
}

/// Snapshots every collection and the aliases into one file and describes it.
pub async fn create(db: &Ametist) -> Result<SnapshotDescription, EngineError> {
    let dir = dir_of(db)?;
    let mut names = db.list_collections();
    names.sort();
    let mut parts: Vec<PathBuf> = Vec::with_capacity(names.len());
    let cleanup = |parts: &[PathBuf]| snapshots::remove_quietly(parts);
    for name in &names {
        let c = db.collection(name)?;
        match c.create_snapshot().await {
            Ok(d) => parts.push(c.snapshot_path(&d.name)?),
            Err(e) => {
                cleanup(&parts);
                return Err(match e {
                    EngineError::InvalidInput(m) => EngineError::invalid(format!("collection `{name}`: {m}")),
                    e => e,
                });
            }
        }
    }
    let header = Header { collections: names, aliases: db.list_aliases() };
    let result = {
        let parts = parts.clone();
        blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| EngineError::io(format_args!("cannot create {}", dir.display()), &e))?;
            let name = snapshots::new_snapshot_name("full-snapshot", &dir);
            let target = dir.join(&name);
            let io_err = |e: io::Error| EngineError::io(format_args!("writing snapshot {}", target.display()), &e);
            let header = serde_json::to_vec(&header).map_err(|e| io_err(io::Error::other(e)))?;
            let hidden = dir.join(format!(".{name}"));
            write_file_atomically(&hidden, &mut |w| {
                let mut w = CrcWriter { w, crc: 0 };
                w.write_all(MAGIC)?;
                w.write_all(&FORMAT.to_le_bytes())?;
                w.write_all(&(header.len() as u32).to_le_bytes())?;
                w.write_all(&header)?;
                for part in &parts {
                    let mut f = File::open(part)?;
                    w.write_all(&f.metadata()?.len().to_le_bytes())?;
                    io::copy(&mut f, &mut w)?;
                }
                let crc = w.crc;
                w.w.write_all(&crc.to_le_bytes())
            })
            .map_err(io_err)?;
            std::fs::rename(&hidden, &target).map_err(io_err)?;
            crate::partition::sync_dir(&dir).map_err(io_err)?;
            Ok(snapshots::list(&dir)?.into_iter().find(|d| d.name == name).unwrap_or(SnapshotDescription {
                name,
                creation_time: None,
                size: 0,
            }))
        })
        .await
    };
    cleanup(&parts);
    result
}

/// The full-storage snapshot files, oldest first.
pub fn list(db: &Ametist) -> Result<Vec<SnapshotDescription>, EngineError> {
    snapshots::list(&dir_of(db)?)
}

/// The file of a full-storage snapshot (only names [`list`] shows).
pub fn path_of(db: &Ametist, name: &str) -> Result<PathBuf, EngineError> {
    snapshots::path_of(&dir_of(db)?, name)
}

/// Deletes a full-storage snapshot; false when there was none of that name.
pub fn delete(db: &Ametist, name: &str) -> Result<bool, EngineError> {
    let dir = dir_of(db)?;
    match snapshots::path_of(&dir, name) {
        Ok(path) => {
            std::fs::remove_file(&path)
                .and_then(|()| crate::partition::sync_dir(&dir))
                .map_err(|e| EngineError::Internal(format!("cannot delete {}: {e}", path.display())))?;
            Ok(true)
        }
        Err(EngineError::InvalidInput(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads through a checksum.
struct Checked {
    file: io::BufReader<File>,
    crc: u32,
    path: PathBuf,
}

impl Read for Checked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }
}

impl Checked {
    fn open(path: &Path) -> Result<(Checked, Header), EngineError> {
        let file = File::open(path).map_err(|e| bad(path, e.to_string()))?;
        let mut r = Checked { file: io::BufReader::with_capacity(1 << 20, file), crc: 0, path: path.to_path_buf() };
        let mut magic = [0u8; 8];
        if r.read_exact(&mut magic).is_err() || &magic != MAGIC {
            return Err(bad(path, "not an Ametist full-storage snapshot"));
        }
        let format = u16::from_le_bytes(r.array()?);
        if format != FORMAT {
            return Err(bad(path, format!("format {format}, this build reads {FORMAT}")));
        }
        let len = u32::from_le_bytes(r.array()?) as usize;
        if len > MAX_HEADER_BYTES {
            return Err(bad(path, format!("a header of {len} bytes")));
        }
        let mut header = vec![0u8; len];
        r.read_exact(&mut header).map_err(|_| bad(path, "truncated"))?;
        let header: Header = serde_json::from_slice(&header).map_err(|e| bad(path, format!("header: {e}")))?;
        for name in &header.collections {
            crate::db::validate_name(name).map_err(|e| bad(path, e.to_string()))?;
        }
        Ok((r, header))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EngineError> {
        let mut b = [0u8; N];
        self.read_exact(&mut b).map_err(|_| bad(&self.path, "truncated"))?;
        Ok(b)
    }

    /// Copies the next collection's snapshot to `to` (or skips it without `to`).
    fn next(&mut self, to: Option<&Path>) -> Result<(), EngineError> {
        let len = u64::from_le_bytes(self.array()?);
        let copied = match to {
            Some(p) => {
                let mut out = File::create(p).map_err(|e| EngineError::io(format_args!("{}", p.display()), &e))?;
                io::copy(&mut self.take(len), &mut out).map_err(|e| bad(&self.path, e.to_string()))?
            }
            None => io::copy(&mut self.take(len), &mut io::sink()).map_err(|e| bad(&self.path, e.to_string()))?,
        };
        if copied != len {
            return Err(bad(&self.path, "truncated"));
        }
        Ok(())
    }

    /// The stored checksum matches, and nothing follows it.
    fn finish(mut self) -> Result<(), EngineError> {
        let expected = self.crc;
        let mut stored = [0u8; 4];
        self.file.read_exact(&mut stored).map_err(|_| bad(&self.path, "truncated"))?;
        if u32::from_le_bytes(stored) != expected {
            return Err(bad(&self.path, "checksum mismatch (damaged or truncated)"));
        }
        let mut rest = [0u8; 1];
        if self.file.read(&mut rest).map_err(|e| bad(&self.path, e.to_string()))? != 0 {
            return Err(bad(&self.path, "bytes after the checksum"));
        }
        Ok(())
    }
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> EngineError {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    EngineError::invalid(format!("full snapshot {name}: {msg}"))
}

/// Restores a full-storage snapshot into `db`, which must hold no collection: the file's
/// checksum is verified first (nothing is created before), then every collection is
/// restored from its collection snapshot and the aliases are recreated. Returns the
/// collections restored.
pub async fn restore(db: &Ametist, file: &Path) -> Result<Vec<String>, EngineError> {
    let data_dir = db.data_dir().ok_or_else(|| EngineError::invalid("restoring needs a data directory"))?.to_path_buf();
    if let Some(existing) = db.list_collections().first() {
        return Err(EngineError::invalid(format!(
            "a full snapshot restores into a database without collections; this one has `{existing}`"
        )));
    }
    let path = file.to_path_buf();
    let header = blocking(move || {
        let (mut r, header) = Checked::open(&path)?;
        for _ in &header.collections {
            r.next(None)?;
        }
        r.finish()?;
        Ok(header)
    })
    .await?;
    let staging = data_dir.join("full-snapshots").join(".restoring");
    for (i, name) in header.collections.iter().enumerate() {
        let (path, part, staging2) = (file.to_path_buf(), staging.join(format!("{i}.snapshot")), staging.clone());
        let part2 = part.clone();
        blocking(move || {
            std::fs::create_dir_all(&staging2)
                .map_err(|e| EngineError::io(format_args!("cannot create {}", staging2.display()), &e))?;
            let (mut r, header) = Checked::open(&path)?;
            for j in 0..header.collections.len() {
                r.next((j == i).then_some(part2.as_path()))?;
                if j == i {
                    break;
                }
            }
            Ok(())
        })
        .await?;
        let restored = db.restore_collection(name, &part).await;
        let _ = std::fs::remove_file(&part);
        restored?;
    }
    let _ = std::fs::remove_dir_all(&staging);
    let actions: Vec<AliasAction> = header
        .aliases
        .iter()
        .map(|(alias, collection)| AliasAction::Create { alias: alias.clone(), collection: collection.clone() })
        .collect();
    if !actions.is_empty() {
        db.update_aliases(actions).await?;
    }
    Ok(header.collections)
}
