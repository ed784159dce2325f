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
//! docs.upsert(vec![InsertVector { id: PointId::Num(1), vector: vec![0.1, 0.2, 0.3], metadata: None }], true).await?;
//! let hits = docs.search(SearchRequest::new(vec![0.1, 0.2, 0.3], 5)).await?;
//! # Ok(()) }
//! ```
//!
//! Durability: in this version every collection lives in memory, in on-disk mode too. A
//! write acknowledged with `wait` survives the restart of a failed partition actor, not a
//! restart of the process. The write-ahead log and snapshots (issue 4) change that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::collection::Collection;
use crate::config::{CollectionConfig, EngineConfig};
use crate::error::EngineError;

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
}

impl Ametist {
    /// A database that lives in memory only.
    pub fn in_memory(config: EngineConfig) -> Self {
        Ametist {
            inner: Arc::new(Inner {
                config: Arc::new(config),
                data_dir: None,
                collections: RwLock::new(BTreeMap::new()),
            }),
        }
    }

    /// A database rooted at `dir`, created if missing. See the module docs for what is
    /// kept on disk in this version.
    pub fn open(dir: impl AsRef<Path>, config: EngineConfig) -> Result<Self, EngineError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)
            .map_err(|e| EngineError::Internal(format!("cannot create data directory {}: {e}", dir.display())))?;
        let db = Ametist::in_memory(config);
        Ok(Ametist {
            inner: Arc::new(Inner {
                config: db.inner.config.clone(),
                data_dir: Some(dir.to_path_buf()),
                collections: RwLock::new(BTreeMap::new()),
            }),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub fn data_dir(&self) -> Option<&Path> {
        self.inner.data_dir.as_deref()
    }

    /// Creates a collection and starts its partitions.
    pub async fn create_collection(&self, name: &str, config: CollectionConfig) -> Result<(), EngineError> {
        validate_name(name)?;
        // Checked before starting anything, and again under the lock below, so that a
        // duplicate costs nothing and a race between two creators leaves one collection.
        if self.read().contains_key(name) {
            return Err(EngineError::CollectionExists(name.to_string()));
        }
        let collection = Collection::start(name, &config, self.inner.config.clone())?;
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
    pub async fn delete_collection(&self, name: &str) -> Result<bool, EngineError> {
        let removed = self.write().remove(name);
        match removed {
            Some(c) => {
                c.stop().await;
                tracing::info!(collection = name, "deleted collection");
                Ok(true)
            }
            None => Ok(false),
        }
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

/// Collection names become directory names later, so they are kept to a safe alphabet.
fn validate_name(name: &str) -> Result<(), EngineError> {
    if name.is_empty() {
        return Err(EngineError::invalid("collection name must not be empty"));
    }
    if name.len() > 255 {
        return Err(EngineError::invalid("collection name must be at most 255 bytes"));
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
