//! HNSW index (being written; see issue 3).
