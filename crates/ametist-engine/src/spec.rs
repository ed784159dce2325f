//! A collection's settings ([`CollectionSpec`]) and their file, `collection.json`.
//!
//! The spec is what a collection is after defaults were applied; the file holds it beside
//! the payload and text index schemas and is rewritten (crash-safely, through
//! `ametist_storage::replace`) when those change.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{check_quantile, IndexConfig, SparseVectorParams, VectorParams, MAX_DIM, MAX_PARTITIONS};
use crate::error::EngineError;
use crate::partition::{sync_dir, write_file_atomically};

/// A collection's settings after defaults were applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionSpec {
    pub name: String,
    pub dim: usize,
    pub metric: ametist_core::Metric,
    pub partitions: usize,
    pub index: IndexConfig,
    /// Named dense vectors; `dim` is 0 when the collection has only these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vectors: BTreeMap<String, VectorParams>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sparse_vectors: BTreeMap<String, SparseVectorParams>,
    /// How many copies of each partition a cluster keeps. Left out of the file when it is
    /// the default, so that files of collections without replicas read as before.
    #[serde(default, skip_serializing_if = "Replication::is_single")]
    pub replication: Replication,
}

/// Copies of each partition (Qdrant's `replication_factor`) and the fewest in-sync copies a
/// write may be acknowledged with (`write_consistency_factor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replication {
    pub factor: usize,
    pub write_consistency: usize,
}

/// The most copies of a partition a collection may ask for.
pub const MAX_REPLICATION_FACTOR: usize = 16;

impl Replication {
    pub const SINGLE: Replication = Replication { factor: 1, write_consistency: 1 };

    pub fn is_single(&self) -> bool {
        *self == Self::SINGLE
    }

    pub fn validate(&self) -> Result<(), EngineError> {
        if self.factor == 0 || self.factor > MAX_REPLICATION_FACTOR {
            return Err(EngineError::invalid(format!(
                "replication_factor must be between 1 and {MAX_REPLICATION_FACTOR}, got {}",
                self.factor
            )));
        }
        if self.write_consistency == 0 || self.write_consistency > self.factor {
            return Err(EngineError::invalid(format!(
                "write_consistency_factor must be between 1 and replication_factor ({}), got {}",
                self.factor, self.write_consistency
            )));
        }
        Ok(())
    }
}

impl Default for Replication {
    fn default() -> Self {
        Self::SINGLE
    }
}

impl CollectionSpec {
    /// Every dense field, the unnamed one (`""`) included.
    pub fn dense_fields(&self) -> BTreeMap<String, VectorParams> {
        crate::config::dense_fields(self.dim, self.metric, &self.vectors)
    }

    /// The dense field `name` (`""` for the unnamed vector).
    pub fn dense_field(&self, name: &str) -> Option<VectorParams> {
        if name.is_empty() && self.dim > 0 {
            Some(VectorParams::new(self.dim, self.metric))
        } else {
            self.vectors.get(name).copied()
        }
    }

    /// Checks everything a collection is made of against what Ametist stores and accepts.
    /// A created collection, a restored snapshot and a cluster's metadata all pass here, so
    /// that a collection that starts also restarts.
    pub fn validate(&self) -> Result<(), EngineError> {
        let named = !self.vectors.is_empty() || !self.sparse_vectors.is_empty();
        if self.dim == 0 && !named {
            return Err(EngineError::invalid("vector size must be at least 1"));
        }
        for (name, p) in std::iter::once(("", self.dim)).chain(self.vectors.iter().map(|(n, p)| (n.as_str(), p.dim))) {
            if p > MAX_DIM {
                return Err(EngineError::invalid(format!(
                    "vector size {p} is larger than the limit of {MAX_DIM} ({name})"
                )));
            }
        }
        if let Some((name, _)) = self.vectors.iter().find(|(n, p)| p.dim == 0 || (n.is_empty() && self.dim > 0)) {
            return Err(EngineError::invalid(format!(
                "named vector `{name}`: its size must be at least 1, and the unnamed vector (\"\") appears once"
            )));
        }
        if let Some(name) = self.sparse_vectors.keys().find(|n| n.is_empty() || self.vectors.contains_key(*n)) {
            return Err(EngineError::invalid(format!(
                "sparse vector `{name}`: a name must be non-empty and differ from the dense vectors' names"
            )));
        }
        self.replication.validate()?;
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(EngineError::invalid(format!(
                "partition count must be between 1 and {MAX_PARTITIONS}, got {}",
                self.partitions
            )));
        }
        self.index.validate().map_err(|e| EngineError::invalid(format!("index setting {e}")))?;
        for (name, p) in &self.vectors {
            check_quantile(p.quantile)
                .map_err(|e| EngineError::invalid(format!("named vector `{name}`: index setting {e}")))?;
        }
        Ok(())
    }
}

/// `collection.json`: what a collection is, written when it is created.
#[derive(Debug, Serialize, Deserialize)]
struct CollectionMeta {
    format: u32,
    #[serde(flatten)]
    spec: CollectionSpec,
    /// Indexed payload fields and full-text indexed fields (rewritten when they change).
    #[serde(default)]
    payload_schema: Schemas,
}

/// A collection's payload indexes and text indexes, as `collection.json` keeps them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Schemas {
    #[serde(default)]
    pub fields: BTreeMap<String, ametist_core::payload_index::FieldType>,
    #[serde(default)]
    pub text: BTreeMap<String, ametist_core::text::TextIndexConfig>,
}

const META_FILE: &str = "collection.json";
const META_FORMAT: u32 = 1;

/// Reads `<dir>/collection.json`: the collection's settings and index schemas, or `None`
/// when the file does not exist (a creation interrupted before its settings were durable:
/// nothing in it was ever acknowledged, and the directory is ignored).
pub(crate) fn read_meta(dir: &Path) -> Result<Option<(CollectionSpec, Schemas)>, EngineError> {
    let path = dir.join(META_FILE);
    let bytes = match ametist_storage::replace::read(&ametist_storage::StdFs, &path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            tracing::warn!(path = %path.display(), "collection directory without settings ignored");
            return Ok(None);
        }
        Err(e) => return Err(EngineError::io(format_args!("cannot read {}", path.display()), &e)),
    };
    let meta: CollectionMeta = serde_json::from_slice(&bytes)
        .map_err(|e| EngineError::Internal(format!("cannot read {}: {e}", path.display())))?;
    if meta.format != META_FORMAT {
        return Err(EngineError::Internal(format!(
            "{} has format {}, this build reads {META_FORMAT}",
            path.display(),
            meta.format
        )));
    }
    Ok(Some((meta.spec, meta.payload_schema)))
}

/// Creates a directory (and parents), fsyncing the parent of each level it created.
pub(crate) fn create_dir_durable(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durable(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}

/// Creates the collection directory and writes `collection.json` atomically.
pub(crate) fn write_meta(dir: &Path, spec: &CollectionSpec) -> Result<(), EngineError> {
    write_meta_with(dir, spec, &Schemas::default())
}

/// Writes `collection.json` (settings and index schemas) atomically.
pub(crate) fn write_meta_with(dir: &Path, spec: &CollectionSpec, schemas: &Schemas) -> Result<(), EngineError> {
    let meta = CollectionMeta { format: META_FORMAT, spec: spec.clone(), payload_schema: schemas.clone() };
    let bytes = serde_json::to_vec_pretty(&meta).map_err(|e| EngineError::Internal(e.to_string()))?;
    create_dir_durable(dir)
        .and_then(|()| write_file_atomically(&dir.join(META_FILE), &mut |w| w.write_all(&bytes)))
        .map_err(|e| EngineError::io(format_args!("cannot write {}", dir.join(META_FILE).display()), &e))
}
