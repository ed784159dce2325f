//! Durable Raft storage: the log, the vote and the state machine in one small file.
//!
//! Cluster metadata is small (members, collections, placement) and changes rarely, so the
//! whole Raft state is kept in memory and written as one JSON file, `raft.json`, after
//! every change, through the storage crate's crash-safe writer (`ametist_storage::replace`:
//! temp file, fsync, rename, directory fsync; tested under simulated crashes). A change is acknowledged to openraft only after that, which gives Raft the
//! durability it requires (a vote or an appended entry survives `kill -9`). The log is
//! compacted by openraft's snapshots (which live in the same file), so the file stays small.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};

use crate::error::ClusterError;
use crate::metadata::{ClusterState, Metadata};
use crate::raft::{CommandResult, Member, NodeId, TypeConfig};

const FILE: &str = "raft.json";

#[derive(Default, Serialize, Deserialize)]
struct Persisted {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
    log: BTreeMap<u64, Entry<TypeConfig>>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Member>,
    state: ClusterState,
    snapshot: Option<StoredSnapshot>,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Member>,
    data: Vec<u8>,
}

/// The file and its in-memory copy; shared by the log store and the state machine.
pub struct FileStore {
    dir: PathBuf,
    inner: Mutex<Persisted>,
    metadata: Arc<Metadata>,
    snapshots_built: AtomicU64,
}

/// openraft's log storage over a [`FileStore`].
#[derive(Clone)]
pub struct LogStore(Arc<FileStore>);

/// openraft's state machine over the same [`FileStore`].
#[derive(Clone)]
pub struct StateMachine(Arc<FileStore>);

impl FileStore {
    /// Opens (or creates) the store in `dir` and publishes its state to `metadata`.
    pub fn open(dir: &Path, metadata: Arc<Metadata>) -> Result<Arc<Self>, ClusterError> {
        std::fs::create_dir_all(dir).map_err(|e| ClusterError::Storage(format!("{}: {e}", dir.display())))?;
        let path = dir.join(FILE);
        let persisted = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ClusterError::Storage(format!("{} is damaged: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted::default(),
            Err(e) => return Err(ClusterError::Storage(format!("{}: {e}", path.display()))),
        };
        let store = Arc::new(FileStore {
            dir: dir.to_path_buf(),
            inner: Mutex::new(persisted),
            metadata,
            snapshots_built: AtomicU64::new(0),
        });
        store.publish(&store.lock());
        Ok(store)
    }

    pub fn log_store(self: &Arc<Self>) -> LogStore {
        LogStore(self.clone())
    }

    pub fn state_machine(self: &Arc<Self>) -> StateMachine {
        StateMachine(self.clone())
    }

    /// True when this node has never been part of a cluster (no vote, no log, no state).
    pub fn is_fresh(&self) -> bool {
        let p = self.lock();
        p.vote.is_none() && p.log.is_empty() && p.last_applied.is_none()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Persisted> {
        self.inner.lock().expect("the raft store lock is never held across a panic")
    }

    fn publish(&self, p: &Persisted) {
        let members = p.membership.membership().nodes().map(|(id, m)| (*id, m.clone())).collect();
        self.metadata.publish(&p.state, members);
    }

    /// Writes the whole state durably. Called with the lock held, so writes are serialised
    /// as openraft requires.
    // openraft's storage traits return its (large) StorageError by value; boxing it here
    // would only be unboxed at every caller.
    #[allow(clippy::result_large_err)]
    fn persist(&self, p: &Persisted) -> Result<(), StorageError<NodeId>> {
        let bytes = serde_json::to_vec(p).map_err(|e| StorageIOError::write(&e))?;
        ametist_storage::replace::replace_bytes(&ametist_storage::StdFs, &self.dir.join(FILE), &bytes)
            .map_err(|e| StorageIOError::write(&e).into())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.0.lock().log.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let p = self.0.lock();
        let last = p.log.values().next_back().map(|e| e.log_id).or(p.last_purged);
        Ok(LogState { last_purged_log_id: p.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut p = self.0.lock();
        p.vote = Some(*vote);
        self.0.persist(&p)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.0.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        let mut p = self.0.lock();
        p.committed = committed;
        self.0.persist(&p)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.0.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut p = self.0.lock();
        for e in entries {
            p.log.insert(e.log_id.index, e);
        }
        let res = self.0.persist(&p);
        match &res {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        res
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut p = self.0.lock();
        p.log.retain(|&i, _| i < log_id.index);
        self.0.persist(&p)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut p = self.0.lock();
        p.log.retain(|&i, _| i > log_id.index);
        p.last_purged = Some(log_id);
        self.0.persist(&p)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let mut p = self.0.lock();
        let data = serde_json::to_vec(&p.state).map_err(|e| StorageIOError::read_state_machine(&e))?;
        let n = self.0.snapshots_built.fetch_add(1, Ordering::Relaxed);
        let last = p.last_applied;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: p.membership.clone(),
            snapshot_id: format!("{}-{n}", last.map(|l| l.index).unwrap_or(0)),
        };
        p.snapshot = Some(StoredSnapshot { meta: meta.clone(), data: data.clone() });
        self.0.persist(&p)?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Member>), StorageError<NodeId>> {
        let p = self.0.lock();
        Ok((p.last_applied, p.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut p = self.0.lock();
        let mut results = Vec::new();
        for entry in entries {
            p.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => CommandResult::default(),
                EntryPayload::Normal(cmd) => cmd.apply(&mut p.state),
                EntryPayload::Membership(m) => {
                    p.membership = StoredMembership::new(Some(entry.log_id), m);
                    CommandResult::default()
                }
            };
            results.push(result);
        }
        self.0.persist(&p)?;
        self.0.publish(&p);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let state: ClusterState = serde_json::from_slice(&data).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        let mut p = self.0.lock();
        p.state = state;
        p.last_applied = meta.last_log_id;
        p.membership = meta.last_membership.clone();
        p.snapshot = Some(StoredSnapshot { meta: meta.clone(), data });
        self.0.persist(&p)?;
        self.0.publish(&p);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.0.lock().snapshot.clone().map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
