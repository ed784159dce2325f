//! Exact search: a scan over a contiguous block of vectors.

use std::collections::BinaryHeap;

use crate::distance::Metric;

/// A candidate during a scan: internal slot and distance (lower is closer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub slot: u32,
    pub distance: f32,
}

impl Eq for Candidate {}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.distance.total_cmp(&other.distance).then(self.slot.cmp(&other.slot))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The `k` slots closest to `query` among those `accept` lets through, closest first.
///
/// `vectors` holds `vectors.len() / dim` vectors back to back; slot `i` is
/// `vectors[i * dim..(i + 1) * dim]`.
pub fn search(
    metric: Metric,
    dim: usize,
    vectors: &[f32],
    query: &[f32],
    k: usize,
    accept: impl Fn(u32) -> bool,
) -> Vec<Candidate> {
    if k == 0 || dim == 0 {
        return Vec::new();
    }
    // A max-heap of the best k so far: the root is the worst kept candidate.
    let mut heap: BinaryHeap<Candidate> = BinaryHeap::with_capacity(k + 1);
    for (i, v) in vectors.chunks_exact(dim).enumerate() {
        let slot = i as u32;
        if !accept(slot) {
            continue;
        }
        let distance = metric.distance(query, v);
        if heap.len() < k {
            heap.push(Candidate { slot, distance });
        } else if let Some(worst) = heap.peek() {
            if distance < worst.distance {
                heap.pop();
                heap.push(Candidate { slot, distance });
            }
        }
    }
    heap.into_sorted_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nearest_in_order() {
        let vectors = [0.0, 0.0, 1.0, 0.0, 5.0, 5.0, 2.0, 0.0];
        let hits = search(Metric::Euclid, 2, &vectors, &[0.9, 0.0], 3, |_| true);
        let slots: Vec<u32> = hits.iter().map(|c| c.slot).collect();
        assert_eq!(slots, vec![1, 0, 3]);
        let hits = search(Metric::Euclid, 2, &vectors, &[0.9, 0.0], 3, |s| s != 1);
        assert_eq!(hits[0].slot, 0);
    }
}
