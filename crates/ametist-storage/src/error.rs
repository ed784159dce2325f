//! The one error type of this crate, [`StorageError`], and the classification of its variants by
//! what the caller should do about them ([`ErrorClass`]).

use std::io;
use std::path::PathBuf;

/// What a caller should do about a [`StorageError`]; see [`StorageError::class`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Data on disk that was once durable is damaged or unreadable by this build (checksum
    /// failure in a non-tail WAL segment, missing WAL records, unknown format version).
    /// Retrying will not help: an operator has to look at the named file.
    Corrupt,
    /// An I/O operation failed (disk full, permission, EIO, ...). Nothing that was durable before
    /// the call was lost. The operation may succeed later; for a [`crate::Wal`] "retry" means
    /// *drop the handle and reopen it from disk*, because a failed write or fsync poisons it.
    Io,
    /// This handle is unusable ([`StorageError::Poisoned`]): drop it and reopen from disk.
    Fatal,
    /// The caller passed something this crate refuses (a record over
    /// [`crate::MAX_RECORD_BYTES`]). Nothing changed; do not retry the same input.
    InvalidInput,
}

/// Every error this crate returns. Messages always name the file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    // ---- Corrupt: operator attention -------------------------------------------------------
    /// A WAL segment that is not the tail of the log (so its contents were fsynced before the
    /// next segment was created) fails validation at `offset`.
    #[error("corrupt WAL segment {path} at byte {offset}: {reason}")]
    CorruptWal { path: PathBuf, offset: u64, reason: String },
    /// WAL records `first..=last` are needed (they are above the caller's `after_lsn`) but no
    /// segment holds them.
    #[error("WAL records {first}..={last} are missing in {dir} (expected before segment {next_segment})")]
    MissingWal { dir: PathBuf, first: u64, last: u64, next_segment: PathBuf },
    /// A snapshot file failed verification while loading a specific snapshot
    /// ([`crate::SnapshotStore::load`]); `load_latest` instead skips such files and reports them.
    #[error("corrupt snapshot {path}: {reason}")]
    CorruptSnapshot { path: PathBuf, reason: String },
    /// A file carries a format version this build does not read (written by a newer Ametist?).
    #[error("{path} has format version {found}, this build reads version {supported}")]
    UnsupportedVersion { path: PathBuf, found: u16, supported: u16 },

    // ---- Io: retryable (a WAL handle is poisoned by it; reopen) ------------------------------
    /// An I/O operation failed.
    #[error("I/O error: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    // ---- Fatal for this handle ---------------------------------------------------------------
    /// An earlier write or fsync on this WAL failed. Whether that data reached the disk is
    /// unknown, and retrying an fsync on the same descriptor can report success for lost pages
    /// (PostgreSQL's "fsyncgate"), so the handle refuses all further work. Drop it and
    /// [`crate::Wal::open`] again: recovery reads what really is on disk.
    #[error("WAL in {dir} is poisoned by an earlier failure ({cause}); reopen it from disk")]
    Poisoned { dir: PathBuf, cause: String },

    // ---- InvalidInput --------------------------------------------------------------------------
    /// A record is larger than [`crate::MAX_RECORD_BYTES`].
    #[error("WAL record of {len} bytes for {dir} exceeds the maximum of {max} bytes")]
    RecordTooLarge { dir: PathBuf, len: usize, max: usize },
}

impl StorageError {
    /// Which group this error belongs to, i.e. what the caller should do.
    pub fn class(&self) -> ErrorClass {
        match self {
            StorageError::CorruptWal { .. }
            | StorageError::MissingWal { .. }
            | StorageError::CorruptSnapshot { .. }
            | StorageError::UnsupportedVersion { .. } => ErrorClass::Corrupt,
            StorageError::Io { .. } => ErrorClass::Io,
            StorageError::Poisoned { .. } => ErrorClass::Fatal,
            StorageError::RecordTooLarge { .. } => ErrorClass::InvalidInput,
        }
    }

    /// True for [`ErrorClass::Io`]: the same operation may succeed later (for a WAL, after
    /// reopening it).
    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Io
    }

    /// True when the error is the storage being full: ENOSPC, or a disk quota (EDQUOT).
    /// Still [`ErrorClass::Io`]; callers use it to say what an operator has to do (free
    /// space). A [`StorageError::Poisoned`] handle does not keep its cause's kind: check the
    /// error of the call that poisoned it.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => is_storage_full(source),
            _ => false,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io { op, path: path.into(), source }
    }
}

/// True for an I/O error that means "no room": ENOSPC or a disk quota (EDQUOT).
pub fn is_storage_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// Shorthand used throughout the crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
