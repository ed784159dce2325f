//! [`Ametist`]: the embedded database.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ametist_engine::EngineError> {
//! use ametist_core::{Metric, PointId};
//! use ametist_engine::{Ametist, CollectionConfig, EngineConfig, InsertVector, SearchRequest};
//!
//! let db = Ametist::in_memory(EngineConfig::default());
//! db.create_collection("docs", CollectionConfig::new(3, Metric::Cosine)).await?;
//! let docs = db.collection("docs")?;
//! docs.upsert(vec![InsertVector { id: PointId::Num(1), vectors: vec![0.1, 0.2, 0.3].into(), metadata: None }], true).await?;
//! let hits = docs.search(SearchRequest::new(vec![0.1, 0.2, 0.3], 5)).await?;
//! # Ok(()) }
//! ```
//!
//! Durability: [`Ametist::open`] keeps every collection on disk (see `docs/storage.md`): a
//! write acknowledged with `wait` is in its partition's write-ahead log and fsynced; on
//! start every collection is re-opened and each partition recovers its last snapshot plus
//! the log after it before it takes requests. [`Ametist::in_memory`] keeps everything in
//! memory: writes survive the restart of a failed partition actor, not of the process.
//!
//! Layout of a data directory:
//!
//! ```text
//! <data_dir>/collections/<name>/collection.json           the collection's settings
//! <data_dir>/collections/<name>/partitions/<id>/wal/       write-ahead log segments
//! <data_dir>/collections/<name>/partitions/<id>/snapshots/ the partition's snapshots
//! <data_dir>/snapshots/<name>/*.snapshot                   collection snapshots (downloads)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::collection::{partition_dir, Collection, CollectionStorage};
use crate::config::{CollectionConfig, EngineConfig};
use crate::error::EngineError;
use crate::external::PartitionProvider;
use crate::partition::sync_dir;
use crate::snapshots;
use crate::spec::{create_dir_durable, write_meta};
use crate::supervisor::ActorState;

/// An Ametist database: a set of named collections. Cheap to clone; clones share state.
/// Must be used from within a tokio runtime.
#[derive(Clone)]
pub struct Ametist {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<EngineConfig>,
    data_dir: Option<PathBuf>,
    collections: RwLock<BTreeMap<String, Collection>>,
    /// Serialises creating, deleting and restoring collections (they change directories).
    ddl: tokio::sync::Mutex<()>,
    /// Partitions served elsewhere (a cluster's other nodes); `None` runs every partition here.
    provider: Option<Arc<dyn PartitionProvider>>,
}

/// A restored collection, complete on disk, waiting to replace `<name>`.
const READY_PREFIX: &str = ".ready-";

impl Ametist {
    /// A database that lives in memory only.
    pub fn in_memory(config: EngineConfig) -> Self {
        Ametist {
            inner: Arc::new(Inner {
                config: Arc::new(config),
                data_dir: None,
                collections: RwLock::new(BTreeMap::new()),
                ddl: tokio::sync::Mutex::new(()),
                provider: None,
            }),
        }
    }

    /// A database rooted at `dir`, created if missing. Every collection found there is
    /// re-opened, and this returns once each of its partitions has recovered (loaded its
    /// last snapshot and replayed its log) or stopped. A partition whose data cannot be read
    /// is stopped with a message naming the file (shown on the partitions route and logged);
    /// the others serve.
    pub async fn open(dir: impl AsRef<Path>, config: EngineConfig) -> Result<Self, EngineError> {
        Self::open_with(dir, config, None).await
    }

    /// [`Ametist::open`], with the partitions that `provider` serves from elsewhere (a
    /// cluster node's remote partitions) taken from it instead of started here.
    pub async fn open_with(
        dir: impl AsRef<Path>,
        config: EngineConfig,
        provider: Option<Arc<dyn PartitionProvider>>,
    ) -> Result<Self, EngineError> {
        let dir = dir.as_ref().to_path_buf();
        let io =
            |what: &str, p: &Path, e: std::io::Error| EngineError::Internal(format!("{what} {}: {e}", p.display()));
        let collections_dir = dir.join("collections");
        for d in [&dir, &collections_dir, &dir.join("snapshots")] {
            create_dir_durable(d).map_err(|e| io("cannot create data directory", d, e))?;
        }
        let db = Ametist {
            inner: Arc::new(Inner {
                config: Arc::new(config),
                data_dir: Some(dir.clone()),
                collections: RwLock::new(BTreeMap::new()),
                ddl: tokio::sync::Mutex::new(()),
                provider,
            }),
        };
        let (mut names, mut hidden) = (Vec::new(), Vec::new());
        for entry in std::fs::read_dir(&collections_dir).map_err(|e| io("cannot list", &collections_dir, e))? {
            let entry = entry.map_err(|e| io("cannot list", &collections_dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if let Some(restored) = name.strip_prefix(READY_PREFIX) {
                // A restore that was complete on disk when the process stopped: finish it.
                let target = collections_dir.join(restored);
                remove_dir_durably(&target)?;
                std::fs::rename(&path, &target)
                    .and_then(|()| sync_dir(&collections_dir))
                    .map_err(|e| io("cannot finish restoring", &target, e))?;
                tracing::info!(collection = restored, "finished a restore interrupted by a stop");
                names.push(restored.to_string());
            } else if name.starts_with('.') {
                hidden.push(path);
            } else if path.is_dir() {
                names.push(name);
            }
        }
        for path in hidden {
            // A deletion, or a restore that was not complete, interrupted by a crash.
            if path.exists() {
                tracing::info!(path = %path.display(), "removing leftover of an interrupted delete or restore");
                std::fs::remove_dir_all(&path).map_err(|e| io("cannot remove", &path, e))?;
            }
        }
        sync_dir(&collections_dir).map_err(|e| io("cannot fsync", &collections_dir, e))?;
        // Snapshot files of a collection whose deletion a crash interrupted.
        let snapshots_dir = dir.join("snapshots");
        for entry in std::fs::read_dir(&snapshots_dir).map_err(|e| io("cannot list", &snapshots_dir, e))?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".deleted-") {
                let path = entry.path();
                std::fs::remove_dir_all(&path).map_err(|e| io("cannot remove", &path, e))?;
            }
        }
        names.sort();
        names.dedup();
        let started = std::time::Instant::now();
        for name in names {
            let Some((mut spec, schemas)) = crate::spec::read_meta(&collections_dir.join(&name))? else {
                continue;
            };
            spec.name = name.clone();
            let c = Collection::start_with(
                spec,
                db.inner.config.clone(),
                Some(db.storage_of(&name)),
                schemas,
                db.inner.provider.as_ref(),
            )?;
            db.write().insert(name, c);
        }
        // Partitions recover in parallel, each on its own thread.
        let all: Vec<(String, Collection)> = db.read().iter().map(|(n, c)| (n.clone(), c.clone())).collect();
        for (name, c) in &all {
            for stopped in c.wait_recovered().await {
                tracing::error!(
                    collection = %name,
                    partition = stopped.id,
                    reason = stopped.stop_reason.as_deref().unwrap_or("?"),
                    "partition could not recover and is stopped"
                );
            }
        }
        if !all.is_empty() {
            tracing::info!(collections = all.len(), ms = started.elapsed().as_millis() as u64, "collections recovered");
        }
        Ok(db)
    }

    fn storage_of(&self, name: &str) -> CollectionStorage {
        let root = self.inner.data_dir.as_ref().expect("only durable databases have storage");
        CollectionStorage { dir: root.join("collections").join(name), snapshots_dir: root.join("snapshots").join(name) }
    }
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub fn data_dir(&self) -> Option<&Path> {
        self.inner.data_dir.as_deref()
    }

    /// Creates a collection and starts its partitions.
    /// With a data directory, the collection's settings are durable (`collection.json`,
    /// written atomically) before this returns.
    pub async fn create_collection(&self, name: &str, config: CollectionConfig) -> Result<(), EngineError> {
        validate_name(name)?;
        let _ddl = self.inner.ddl.lock().await;
        // Checked before starting anything, and again under the lock below, so that a
        // duplicate costs nothing and a race between two creators leaves one collection.
        if self.read().contains_key(name) {
            return Err(EngineError::CollectionExists(name.to_string()));
        }
        let spec = Collection::resolve(name, &config, &self.inner.config)?;
        // A cluster node creates its collections through the cluster, which checks copies
        // against its members; a standalone process is one member.
        if self.inner.provider.is_none() && spec.replication.factor > 1 {
            return Err(EngineError::invalid(format!(
                "replication_factor {} exceeds the number of cluster members (1): copies of a partition live on \
                 distinct nodes; run a cluster (remoting.enabled) to replicate",
                spec.replication.factor
            )));
        }
        let storage = match self.inner.data_dir {
            Some(_) => {
                let storage = self.storage_of(name);
                let (dir, spec) = (storage.dir.clone(), spec.clone());
                blocking(move || {
                    // A collection that cannot be written (a full disk) leaves nothing behind.
                    write_meta(&dir, &spec).inspect_err(|_| remove_quietly(&dir))
                })
                .await?;
                Some(storage)
            }
            None => None,
        };
        let dir = storage.as_ref().map(|s| s.dir.clone());
        let collection = match Collection::start(spec, self.inner.config.clone(), storage, self.inner.provider.as_ref())
        {
            Ok(c) => c,
            Err(e) => {
                if let Some(dir) = dir {
                    let _ = blocking(move || {
                        remove_quietly(&dir);
                        Ok(())
                    })
                    .await;
                }
                return Err(e);
            }
        };
        // A partition that cannot write its log (a full disk: it came up read-only) or
        // could not start at all makes a collection that cannot serve: it is not created.
        // Such a failure of an empty, new partition is the environment's, so the error is
        // retryable.
        let unable: Vec<String> = collection
            .wait_settled()
            .await
            .into_iter()
            .filter_map(|p| match (p.state, p.storage_error, p.stop_reason) {
                (ActorState::Running, _, _) => None,
                (_, Some(e), _) => Some(format!("partition {}: {}", p.id, e.reason)),
                (_, None, reason) => {
                    Some(format!("partition {}: {}", p.id, reason.unwrap_or_else(|| "could not start".into())))
                }
            })
            .collect();
        if !unable.is_empty() {
            collection.stop().await;
            if let Some(dir) = dir {
                let _ = blocking(move || {
                    remove_quietly(&dir);
                    Ok(())
                })
                .await;
            }
            return Err(EngineError::StorageUnavailable {
                partition: None,
                message: format!(
                    "collection `{name}` was not created: its storage cannot be written ({}); nothing was \
                     created; free space and retry",
                    unable.join("; ")
                ),
            });
        }
        let lost_race = {
            let mut map = self.write();
            if map.contains_key(name) {
                true
            } else {
                map.insert(name.to_string(), collection.clone());
                false
            }
        };
        if lost_race {
            collection.stop().await;
            return Err(EngineError::CollectionExists(name.to_string()));
        }
        tracing::info!(collection = name, "created collection");
        Ok(())
    }

    /// Names of all collections, sorted.
    pub fn list_collections(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// A handle to a collection.
    pub fn collection(&self, name: &str) -> Result<Collection, EngineError> {
        self.read().get(name).cloned().ok_or_else(|| EngineError::CollectionNotFound(name.to_string()))
    }

    /// Deletes a collection and stops its partitions. Returns false when there was none.
    /// On disk, the collection's directory is first renamed to a hidden tombstone (durably),
    /// then removed: a crash in between finishes the removal at the next start. Its snapshot
    /// files (`<data_dir>/snapshots/<name>`) go with it, the same way: left behind, they
    /// were listed under the next collection of that name as if they were its own.
    pub async fn delete_collection(&self, name: &str) -> Result<bool, EngineError> {
        let _ddl = self.inner.ddl.lock().await;
        let deleted = self.delete_locked(name).await?;
        if deleted && self.inner.data_dir.is_some() {
            let snapshots = self.storage_of(name).snapshots_dir;
            blocking(move || remove_dir_durably(&snapshots)).await?;
        }
        Ok(deleted)
    }

    async fn delete_locked(&self, name: &str) -> Result<bool, EngineError> {
        let removed = self.write().remove(name);
        match removed {
            Some(c) => {
                c.stop().await;
                if let Some(dir) = c.is_durable().then(|| self.storage_of(name).dir) {
                    blocking(move || remove_dir_durably(&dir)).await?;
                }
                tracing::info!(collection = name, "deleted collection");
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Creates collection `name` from a collection snapshot file (as written by
    /// [`Collection::create_snapshot`]), replacing an existing collection of that name. The
    /// file is read and validated completely (the checks a created collection passes, and
    /// every point in the partition its id routes to) before the existing collection is
    /// touched: a bad file changes nothing. The new
    /// collection's files are prepared in a hidden directory and swapped in with renames, so a
    /// crash leaves either the old collection or the restored one.
    pub async fn restore_collection(&self, name: &str, file: impl AsRef<Path>) -> Result<(), EngineError> {
        validate_name(name)?;
        if self.inner.data_dir.is_none() {
            return Err(EngineError::invalid("restoring a snapshot needs a database opened on a data directory"));
        }
        let file = file.as_ref().to_path_buf();
        let _ddl = self.inner.ddl.lock().await;
        let storage = self.storage_of(name);
        let staging = storage.dir.with_file_name(format!(".restore-{name}-{}", unique()));
        // One pass over the file: each partition's image is validated and written into the
        // staging directory before the next is read, so memory holds one partition, not the
        // file. The file's checksum is known only at the end; until then nothing outside
        // the staging directory has changed, and any failure removes it.
        let spec = {
            let (staging_dir, name) = (staging.clone(), name.to_string());
            blocking(move || {
                let staging = staging_dir;
                let internal =
                    |e: std::io::Error| EngineError::Internal(format!("restore into {}: {e}", staging.display()));
                let mut archive = snapshots::ArchiveReader::open(&file)?;
                let mut spec = archive.spec().clone();
                spec.name = name;
                write_meta(&staging, &spec)?;
                let mut id = 0;
                while let Some(mut image) = archive.next_image()? {
                    let snaps = ametist_storage::SnapshotStore::open(&partition_dir(&staging, id).join("snapshots"))
                        .map_err(|e| EngineError::Internal(e.to_string()))?;
                    let lsn = image.version.max(1);
                    image.version = lsn;
                    snaps
                        .write(lsn, crate::store::SNAPSHOTS_KEPT, &mut |w| image.write_to(w))
                        .map_err(|e| EngineError::Internal(e.to_string()))?;
                    id += 1;
                }
                archive.finish()?;
                sync_dir(&staging.join("partitions")).map_err(internal)?;
                Ok(spec)
            })
            .await
            .inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&staging);
            })?
        };
        // Complete on disk: from here on, a restart finishes the restore.
        let ready = storage.dir.with_file_name(format!("{READY_PREFIX}{name}"));
        {
            let (staging, ready) = (staging.clone(), ready.clone());
            blocking(move || {
                remove_dir_durably(&ready)?;
                std::fs::rename(&staging, &ready)
                    .and_then(|()| sync_dir(ready.parent().expect("collections dir")))
                    .map_err(|e| EngineError::Internal(format!("restore into {}: {e}", ready.display())))
            })
            .await?;
        }
        self.delete_locked(name).await?;
        let target = storage.dir.clone();
        blocking(move || {
            std::fs::rename(&ready, &target)
                .and_then(|()| sync_dir(target.parent().expect("collections dir")))
                .map_err(|e| EngineError::Internal(format!("restore into {}: {e}", target.display())))
        })
        .await?;
        let collection =
            Collection::start(spec, self.inner.config.clone(), Some(storage), self.inner.provider.as_ref())?;
        let stopped = collection.wait_recovered().await;
        self.write().insert(name.to_string(), collection);
        if let Some(p) = stopped.first() {
            return Err(EngineError::Internal(format!(
                "restored collection `{name}`, but partition {} could not start: {}",
                p.id,
                p.stop_reason.as_deref().unwrap_or("?")
            )));
        }
        tracing::info!(collection = name, "restored collection from a snapshot");
        Ok(())
    }

    /// Stops every collection and waits for the partition threads to finish.
    pub async fn shutdown(&self) {
        let all: Vec<Collection> = std::mem::take(&mut *self.write()).into_values().collect();
        for c in all {
            c.stop().await;
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Collection>> {
        self.inner.collections.read().expect("the collections lock is never held across a panic")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Collection>> {
        self.inner.collections.write().expect("the collections lock is never held across a panic")
    }
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| EngineError::Internal(format!("file task failed: {e}")))?
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// Removes what a creation that failed left in `dir` (through a tombstone, as
/// [`remove_dir_durably`]); a failure is only logged: such a directory holds nothing that
/// was acknowledged, and one without `collection.json` is ignored at the next start.
fn remove_quietly(dir: &Path) {
    if let Err(e) = remove_dir_durably(dir) {
        tracing::warn!(path = %dir.display(), error = %e, "could not remove a collection whose creation failed");
    }
}

/// Renames `dir` to a hidden tombstone next to it, durably, then removes the tombstone.
fn remove_dir_durably(dir: &Path) -> Result<(), EngineError> {
    if !dir.exists() {
        return Ok(());
    }
    let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let tomb = dir.with_file_name(format!(".deleted-{name}-{}", unique()));
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::rename(dir, &tomb)
        .and_then(|()| sync_dir(parent))
        .map_err(|e| EngineError::Internal(format!("cannot delete {}: {e}", dir.display())))?;
    if let Err(e) = std::fs::remove_dir_all(&tomb) {
        tracing::warn!(path = %tomb.display(), error = %e, "could not remove a deleted collection's files; retried at start");
    }
    Ok(())
}

/// The longest collection name, in bytes. A name becomes a directory name, and the hidden
/// directories of a restore or a delete (`.restore-<name>-<pid>-<nanos>`, `.deleted-…`) and
/// the temporary files of a snapshot (`.<name>-<time>.snapshot.part<i>`) add up to about 45
/// bytes to it; every one must fit in a file name (255 bytes), or the operation fails
/// half-way (it answered 500 for a 255-byte name).
pub const MAX_NAME_BYTES: usize = 200;

/// Collection names become directory names, so they are kept to a safe alphabet and a
/// length whose derived names fit ([`MAX_NAME_BYTES`]).
pub fn validate_name(name: &str) -> Result<(), EngineError> {
    if name.is_empty() {
        return Err(EngineError::invalid("collection name must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(EngineError::invalid(format!(
            "collection name must be at most {MAX_NAME_BYTES} bytes, got {}",
            name.len()
        )));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(EngineError::invalid(format!(
            "collection name `{name}` contains `{c}`; use letters, digits, `-`, `_` and `.`"
        )));
    }
    if name.starts_with('.') {
        return Err(EngineError::invalid("collection name must not start with `.`"));
    }
    Ok(())
}
