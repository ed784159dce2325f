//! Payload filters (being written; see issue 5).
