//! The segmented, checksummed write-ahead log. See the crate docs for the durability contract
//! and `docs/storage.md` for the byte layout.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Result, StorageError};
use crate::format::{
    decode_record, decode_wal_header, encode_record, encode_wal_header, encoded_len, HeaderError, MAX_RECORD_BYTES,
    WAL_HEADER_LEN, WAL_VERSION,
};
use crate::fs::{Fs, FsFile, StdFs};
use crate::Lsn;

/// Tuning of a [`Wal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// A new segment is started when the next record would push the current one past this
    /// size (a segment always takes at least one record, so a record larger than this gets a
    /// segment of its own). Default 64 MiB.
    pub segment_bytes: u64,
    /// Appended records are kept in memory until [`Wal::sync`], or written (not synced) once
    /// this many bytes are pending. Default 1 MiB.
    pub write_buffer_bytes: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { segment_bytes: 64 << 20, write_buffer_bytes: 1 << 20 }
    }
}

/// What [`Wal::open`] found on disk.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every complete, checksummed record with an LSN above `after_lsn`, in LSN order. The
    /// LSNs are consecutive.
    pub records: Vec<(Lsn, Vec<u8>)>,
    /// Set when the tail of the log was torn or corrupt and has been cut off.
    pub truncated: Option<TornTail>,
}

/// A torn or corrupt log tail that recovery cut off (and made durable that way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The last segment, whose tail was cut (or which was removed whole, when its header
    /// was not valid: then `offset` is 0).
    pub segment: PathBuf,
    /// Offset of the first byte that was not a valid record: the segment's new length.
    pub offset: u64,
    /// How many bytes were dropped.
    pub bytes_dropped: u64,
    /// Why the bytes at `offset` are not a record.
    pub reason: String,
}

#[derive(Debug, Clone)]
struct Segment {
    first_lsn: Lsn,
    path: PathBuf,
    /// Bytes in the segment, including records still in the write buffer.
    len: u64,
}

/// A write-ahead log in one directory. Exactly one `Wal` may be open per directory.
///
/// Not thread-safe by itself (`&mut self`); it is `Send`, meant to live on its partition's
/// thread.
pub struct Wal {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    opts: WalOptions,
    /// Sorted by `first_lsn`; the last one is the active segment written by `file`.
    segments: Vec<Segment>,
    file: Box<dyn FsFile>,
    /// Encoded records not yet handed to the file.
    buf: Vec<u8>,
    next_lsn: Lsn,
    synced_lsn: Lsn,
    poisoned: Option<String>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("last_lsn", &self.last_lsn())
            .field("synced_lsn", &self.synced_lsn)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

/// `00000000000000000001.wal` for first LSN 1.
pub fn segment_file_name(first_lsn: Lsn) -> String {
    format!("{first_lsn:020}.wal")
}

fn parse_segment_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // LSN 0 means "nothing"; no segment starts there.
    digits.parse().ok().filter(|&lsn| lsn > 0)
}

impl Wal {
    /// Opens the log in `dir` on the real file system; see [`Wal::open_with`].
    pub fn open(dir: &Path, after_lsn: Lsn, opts: WalOptions) -> Result<(Wal, Recovered)> {
        Self::open_with(Arc::new(StdFs), dir, after_lsn, opts)
    }

    /// Opens (creating if needed) the log in `dir` and recovers it.
    ///
    /// Returns every complete, checksummed record with an LSN above `after_lsn` (records at or
    /// below it are covered by a snapshot: they are skipped, and whole segments below it are
    /// not even read). A torn or corrupt tail of the *last* segment is cut at the last valid
    /// record (the file is truncated and fsynced) and reported in [`Recovered::truncated`]; a
    /// last segment whose header is not valid is removed. It is never replayed and never an
    /// error, so a crash loop cannot come from it.
    ///
    /// Errors: damage in a segment that is not the last one, or records above `after_lsn` that
    /// no segment holds, are [`ErrorClass::Corrupt`](crate::ErrorClass::Corrupt): those bytes
    /// were fsynced once, so an operator must look. I/O failures are `Io`.
    ///
    /// When this returns `Ok`: the log on disk ends at its last valid record, every returned
    /// record and that end are durable (the tail segment is fsynced: after a process crash,
    /// records that were written but not synced are recovered from the page cache, and made
    /// durable here), and an active segment exists and is durable (file and directory entry).
    /// The next LSN is `max(last LSN in the log, after_lsn) + 1`; if that leaves a hole after
    /// the last segment (the snapshot is ahead of the log), a new segment starting at it is
    /// created, so LSNs inside a segment are always consecutive.
    pub fn open_with(fs: Arc<dyn Fs>, dir: &Path, after_lsn: Lsn, opts: WalOptions) -> Result<(Wal, Recovered)> {
        let names = crate::fs::list_or_create_dir(fs.as_ref(), dir)?;
        let Scan { recovered, mut segments, expected, last_validated } =
            scan(fs.as_ref(), dir, &names, after_lsn, None, true)?;
        let log_last = expected.map_or(0, |e| e - 1);
        let next_lsn = log_last.max(after_lsn) + 1;
        let file = match segments.last() {
            Some(seg) if last_validated && expected == Some(next_lsn) => {
                let mut f = fs.open_append(&seg.path).map_err(|e| StorageError::io("open", &seg.path, e))?;
                // After a process crash, records written but never synced are still in the
                // page cache and were just recovered; make them durable so that what was
                // recovered is exactly what a later crash recovers.
                f.sync_data().map_err(|e| StorageError::io("fsync", &seg.path, e))?;
                // Its directory entry may not be durable either (a rollover whose directory
                // fsync failed, then a reopen without a crash).
                fs.sync_dir(dir).map_err(|e| StorageError::io("fsync directory", dir, e))?;
                f
            }
            _ => {
                let (file, seg) = create_segment(fs.as_ref(), dir, next_lsn)?;
                segments.push(seg);
                file
            }
        };
        let wal = Wal {
            fs,
            dir: dir.to_path_buf(),
            opts,
            segments,
            file,
            buf: Vec::new(),
            next_lsn,
            synced_lsn: next_lsn - 1,
            poisoned: None,
        };
        Ok((wal, recovered))
    }

    /// Reads the log in `dir` without writing anything: every complete, checksummed record
    /// above `after_lsn`, up to `through_lsn` when given (nothing after it is read).
    ///
    /// For a partition whose log cannot be written (a full disk): it rebuilds its state from
    /// what is on disk while [`Wal::open`], which may have to cut a torn tail, fsync or create
    /// a segment, would fail. A torn tail is reported in [`Recovered::truncated`] but not cut
    /// (the next `open` cuts it). With `through_lsn` (the last LSN a failed handle had synced:
    /// [`Wal::synced_lsn`]) every record up to it must be there, since it was made durable;
    /// a log that ends before it is [`StorageError::MissingWal`]. A missing directory is an
    /// empty log. Damage in a segment that is not the last is `Corrupt`, as for `open`.
    pub fn read_only(fs: Arc<dyn Fs>, dir: &Path, after_lsn: Lsn, through_lsn: Option<Lsn>) -> Result<Recovered> {
        let names = match fs.list(dir) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StorageError::io("list directory", dir, e)),
        };
        let scan = scan(fs.as_ref(), dir, &names, after_lsn, through_lsn, false)?;
        let read_through = scan.recovered.records.last().map_or(after_lsn, |(lsn, _)| *lsn).max(after_lsn);
        if let Some(through) = through_lsn.filter(|&t| t > read_through) {
            return Err(StorageError::MissingWal {
                dir: dir.to_path_buf(),
                first: read_through + 1,
                last: through,
                next_segment: scan.segments.last().map_or_else(|| dir.to_path_buf(), |s| s.path.clone()),
            });
        }
        Ok(scan.recovered)
    }

    /// Appends a record and returns its LSN. The record is buffered: it is **not durable**
    /// until [`Wal::sync`] returns `Ok`. On `Ok` the record is in the log's buffer and the next
    /// `sync` writes it. On `RecordTooLarge` nothing changed. On any other error the log is
    /// poisoned and the record counts as not written (like every unsynced record, it may or
    /// may not be found by the next `open`).
    ///
    /// It may do I/O: when the write buffer is full (write, no fsync), and at segment rollover
    /// (the full segment is written and fsynced, the new one created with its header and
    /// fsynced together with the directory). A failure there poisons the log.
    pub fn append(&mut self, record: &[u8]) -> Result<Lsn> {
        self.check_poisoned()?;
        if record.len() > MAX_RECORD_BYTES {
            return Err(StorageError::RecordTooLarge {
                dir: self.dir.clone(),
                len: record.len(),
                max: MAX_RECORD_BYTES,
            });
        }
        let size = encoded_len(record.len());
        let active = self.segments.last().expect("a Wal always has an active segment");
        if active.len > WAL_HEADER_LEN as u64 && active.len + size > self.opts.segment_bytes {
            self.roll_over()?;
        }
        let lsn = self.next_lsn;
        encode_record(&mut self.buf, lsn, record);
        self.next_lsn += 1;
        self.segments.last_mut().unwrap().len += size;
        if self.buf.len() >= self.opts.write_buffer_bytes {
            self.flush()?;
        }
        Ok(lsn)
    }

    /// Writes every appended record and `fdatasync`s the active segment. Either it fails (the
    /// log is then poisoned; records appended since the last successful sync may or may not
    /// survive a crash) or every record appended so far is written and flushed: it survives a
    /// crash. A sync with nothing new to flush does no I/O.
    pub fn sync(&mut self) -> Result<()> {
        self.check_poisoned()?;
        if self.synced_lsn + 1 == self.next_lsn && self.buf.is_empty() {
            return Ok(());
        }
        self.flush()?;
        let path = self.segments.last().unwrap().path.clone();
        if let Err(e) = self.file.sync_data() {
            return Err(self.poison("fsync", path, e));
        }
        self.synced_lsn = self.next_lsn - 1;
        Ok(())
    }

    /// The LSN of the last appended record (durable or not); after `open`, the last LSN in the
    /// log or `after_lsn`, whichever is higher. 0 for a new, empty log.
    pub fn last_lsn(&self) -> Lsn {
        self.next_lsn - 1
    }

    /// Every record at or below this LSN is durable.
    pub fn synced_lsn(&self) -> Lsn {
        self.synced_lsn
    }

    /// The first LSN of the oldest segment still on disk (records below it are gone).
    pub fn first_lsn(&self) -> Lsn {
        self.segments[0].first_lsn
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True once a write or fsync has failed; every fallible call then returns
    /// [`StorageError::Poisoned`].
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Deletes every segment of the log in `dir` and fsyncs the directory: nothing of it can
    /// be replayed afterwards. The log must not be open.
    pub fn remove_all(fs: &dyn Fs, dir: &Path) -> Result<()> {
        let names = fs.list(dir).map_err(|e| StorageError::io("list directory", dir, e))?;
        for name in names.iter().filter(|n| parse_segment_name(n).is_some()) {
            let path = dir.join(name);
            fs.remove(&path).map_err(|e| StorageError::io("remove log segment", &path, e))?;
        }
        fs.sync_dir(dir).map_err(|e| StorageError::io("fsync directory", dir, e))
    }

    /// Deletes whole segments all of whose records are at or below `lsn` (call it once a
    /// snapshot covering `lsn` is durable). The active segment is never deleted. Either it
    /// fails, or those segment files are removed and the removal is fsynced in the directory.
    /// A failure to remove leaves the log consistent (older segments simply stay) and does not
    /// poison it; a failed directory fsync does.
    pub fn truncate_through(&mut self, lsn: Lsn) -> Result<()> {
        self.check_poisoned()?;
        let mut removed = 0;
        let mut result = Ok(());
        while self.segments.len() > 1 && self.segments[1].first_lsn - 1 <= lsn {
            let path = self.segments[0].path.clone();
            if let Err(e) = self.fs.remove(&path) {
                result = Err(StorageError::io("remove segment", path, e));
                break;
            }
            self.segments.remove(0);
            removed += 1;
        }
        if removed > 0 {
            if let Err(e) = self.fs.sync_dir(&self.dir) {
                let dir = self.dir.clone();
                return Err(self.poison("fsync directory", dir, e));
            }
        }
        result
    }

    /// Bytes of all segment files, including appended records not yet written.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(StorageError::Poisoned { dir: self.dir.clone(), cause: cause.clone() }),
            None => Ok(()),
        }
    }

    fn poison(&mut self, op: &'static str, path: PathBuf, e: io::Error) -> StorageError {
        self.poisoned = Some(format!("{op} {}: {e}", path.display()));
        StorageError::io(op, path, e)
    }

    /// Hands the buffer to the file (no fsync).
    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            let path = self.segments.last().unwrap().path.clone();
            return Err(self.poison("write", path, e));
        }
        self.buf.clear();
        Ok(())
    }

    /// Makes the active segment durable and starts a new one at `next_lsn`.
    fn roll_over(&mut self) -> Result<()> {
        self.sync()?;
        match create_segment(self.fs.as_ref(), &self.dir, self.next_lsn) {
            Ok((file, seg)) => {
                self.file = file;
                self.segments.push(seg);
                Ok(())
            }
            Err(e) => {
                self.poisoned = Some(e.to_string());
                Err(e)
            }
        }
    }
}

/// Creates a segment: create, write header, fsync the file, fsync the directory.
fn create_segment(fs: &dyn Fs, dir: &Path, first_lsn: Lsn) -> Result<(Box<dyn FsFile>, Segment)> {
    let path = dir.join(segment_file_name(first_lsn));
    let mut file = fs.create(&path).map_err(|e| StorageError::io("create segment", &path, e))?;
    file.write_all(&encode_wal_header(first_lsn)).map_err(|e| StorageError::io("write segment header", &path, e))?;
    file.sync_data().map_err(|e| StorageError::io("fsync", &path, e))?;
    fs.sync_dir(dir).map_err(|e| StorageError::io("fsync directory", dir, e))?;
    Ok((file, Segment { first_lsn, path, len: WAL_HEADER_LEN as u64 }))
}

/// What [`scan`] found: the segments in LSN order, the LSN the next record must carry (once a
/// segment was read), whether the last segment was read and validated, and the records.
struct Scan {
    recovered: Recovered,
    segments: Vec<Segment>,
    expected: Option<Lsn>,
    last_validated: bool,
}

/// Reads the segments among `names` (oldest first) and collects the records above
/// `after_lsn`, up to `through` when given (reading stops there). With `repair`, a torn tail
/// of the last segment is cut durably (a segment with a torn header removed), as
/// [`Wal::open`] documents; without it nothing is written and the tail is only reported.
fn scan(fs: &dyn Fs, dir: &Path, names: &[String], after_lsn: Lsn, through: Option<Lsn>, repair: bool) -> Result<Scan> {
    let mut found: Vec<(Lsn, PathBuf)> =
        names.iter().filter_map(|n| parse_segment_name(n).map(|lsn| (lsn, dir.join(n)))).collect();
    found.sort();

    let mut recovered = Recovered::default();
    let mut segments: Vec<Segment> = Vec::new();
    // The LSN the next record in the log must carry, once a segment has been read.
    let mut expected: Option<Lsn> = None;
    // Whether the last segment in `segments` was read and validated (only such a segment
    // is appended to; a skipped one is never trusted with new records).
    let mut last_validated = false;
    let n = found.len();
    for i in 0..n {
        let (name_lsn, ref path) = found[i];
        let is_last = i + 1 == n;
        if !is_last && found[i + 1].0 <= after_lsn.saturating_add(1) {
            // Every record here is at or below after_lsn: covered by the snapshot.
            let len = fs.stat(path).map_err(|e| StorageError::io("stat", path, e))?.len;
            segments.push(Segment { first_lsn: name_lsn, path: path.clone(), len });
            expected = Some(found[i + 1].0);
            last_validated = false;
            continue;
        }
        let bytes = fs.read(path).map_err(|e| StorageError::io("read", path, e))?;
        let header_problem = match decode_wal_header(&bytes) {
            Ok(first) if first == name_lsn => None,
            Ok(first) => Some(format!("header says first LSN {first}, file name says {name_lsn}")),
            Err(HeaderError::Version(v)) => {
                return Err(StorageError::UnsupportedVersion { path: path.clone(), found: v, supported: WAL_VERSION })
            }
            Err(HeaderError::Invalid(r)) => Some(r),
        };
        if let Some(reason) = header_problem {
            if !is_last {
                return Err(StorageError::CorruptWal { path: path.clone(), offset: 0, reason });
            }
            // A segment whose header never became durable: its creation was interrupted
            // (the header is fsynced before any record is written), so it holds nothing.
            if repair {
                fs.remove(path).map_err(|e| StorageError::io("remove torn segment", path, e))?;
                fs.sync_dir(dir).map_err(|e| StorageError::io("fsync directory", dir, e))?;
            }
            recovered.truncated = Some(TornTail {
                segment: path.clone(),
                offset: 0,
                bytes_dropped: bytes.len() as u64,
                reason: format!(
                    "invalid segment header: {reason}; {}",
                    if repair { "segment removed" } else { "segment ignored" }
                ),
            });
            break;
        }
        if let Some(exp) = expected {
            if name_lsn > exp && name_lsn - 1 > after_lsn {
                return Err(StorageError::MissingWal {
                    dir: dir.to_path_buf(),
                    first: exp.max(after_lsn + 1),
                    last: name_lsn - 1,
                    next_segment: path.clone(),
                });
            }
            if name_lsn < exp {
                return Err(StorageError::CorruptWal {
                    path: path.clone(),
                    offset: 0,
                    reason: format!(
                        "segment starts at LSN {name_lsn} but the previous segment already \
                         holds records up to {}",
                        exp - 1
                    ),
                });
            }
        }
        let mut off = WAL_HEADER_LEN;
        let mut lsn = name_lsn;
        while off < bytes.len() {
            if through.is_some_and(|t| lsn > t) {
                // Everything asked for is read; what follows is not looked at.
                segments.push(Segment { first_lsn: name_lsn, path: path.clone(), len: off as u64 });
                return Ok(Scan { recovered, segments, expected: Some(lsn), last_validated: false });
            }
            match decode_record(&bytes[off..], lsn) {
                Ok((range, size)) => {
                    if lsn > after_lsn {
                        let payload = bytes[off + range.start..off + range.end].to_vec();
                        recovered.records.push((lsn, payload));
                    }
                    off += size;
                    lsn += 1;
                }
                Err(reason) if is_last => {
                    if repair {
                        let mut f = fs.open_append(path).map_err(|e| StorageError::io("open", path, e))?;
                        f.set_len(off as u64).map_err(|e| StorageError::io("truncate torn tail of", path, e))?;
                        f.sync_all().map_err(|e| StorageError::io("fsync", path, e))?;
                    }
                    recovered.truncated = Some(TornTail {
                        segment: path.clone(),
                        offset: off as u64,
                        bytes_dropped: (bytes.len() - off) as u64,
                        reason,
                    });
                    break;
                }
                Err(reason) => return Err(StorageError::CorruptWal { path: path.clone(), offset: off as u64, reason }),
            }
        }
        segments.push(Segment { first_lsn: name_lsn, path: path.clone(), len: off as u64 });
        expected = Some(lsn);
        last_validated = true;
    }
    Ok(Scan { recovered, segments, expected, last_validated })
}
