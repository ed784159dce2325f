//! Scored hits, their order, and the merge of several partitions' top-k lists.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::distance::Metric;
use crate::ids::PointId;

/// A hit as a client sees it: the id and the metric's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredPoint {
    pub id: PointId,
    pub score: f32,
}

/// Orders two (score, id) pairs best first for `metric`; equal scores fall back to the id
/// so that results are deterministic however the data is partitioned.
pub fn compare(metric: Metric, a: (f32, &PointId), b: (f32, &PointId)) -> Ordering {
    let by_score = if metric.higher_is_better() { b.0.total_cmp(&a.0) } else { a.0.total_cmp(&b.0) };
    by_score.then_with(|| a.1.cmp(b.1))
}

/// Merges per-partition result lists (each already best first) into the best `limit`
/// items after skipping `offset`. `key` extracts (score, id) from an item.
pub fn merge<T>(
    metric: Metric,
    lists: Vec<Vec<T>>,
    offset: usize,
    limit: usize,
    key: impl Fn(&T) -> (f32, &PointId),
) -> Vec<T> {
    let mut all: Vec<T> = lists.into_iter().flatten().collect();
    all.sort_by(|a, b| compare(metric, key(a), key(b)));
    all.into_iter().skip(offset).take(limit).collect()
}
