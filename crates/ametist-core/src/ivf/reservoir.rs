//! The `keep` best code estimates of a scan, kept without a heap.
//!
//! A heap pays a logarithmic sift for every candidate that beats its worst entry, and a scan
//! over thousands of codes has many such candidates while the threshold is still loose. The
//! reservoir (faiss's `ReservoirTopN`) appends candidates below its threshold to a buffer
//! of twice the capacity; when the buffer fills, one selection keeps the best half and
//! tightens the threshold to the worst kept.
//!
//! Appending is branch-free ([`Reservoir::offer`] always writes, and advances only when the
//! candidate qualifies): whether a code beats the threshold is a coin toss the branch
//! predictor loses, and a mispredicted branch per candidate cost more than the write. The
//! caller checks [`Reservoir::settle`] once per block of at most [`BLOCK`] offers.

use super::fastscan::BLOCK;

/// A candidate of the scan: estimated distance and where its code sits (`list << 32 | position`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    pub distance: f32,
    pub id: u64,
}

impl Eq for Entry {}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.distance.total_cmp(&other.distance).then(self.id.cmp(&other.id))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

pub struct Reservoir {
    keep: usize,
    buf: Vec<Entry>,
    len: usize,
    /// Entrys at or above this distance cannot enter.
    threshold: f32,
}

impl Reservoir {
    pub fn new(keep: usize) -> Self {
        let keep = keep.max(1);
        // Room for a full buffer plus one more block of offers.
        let buf = vec![Entry { id: 0, distance: 0.0 }; 2 * keep + BLOCK];
        Reservoir { keep, buf, len: 0, threshold: f32::INFINITY }
    }

    /// The distance a candidate must be below to enter.
    #[inline]
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Offers a candidate: it stays when `valid` and below the threshold. At most [`BLOCK`]
    /// offers between two calls of [`Reservoir::settle`].
    #[inline]
    pub fn offer(&mut self, c: Entry, valid: bool) {
        self.buf[self.len] = c;
        self.len += (valid & (c.distance < self.threshold)) as usize;
    }

    /// Shrinks the buffer to the best `keep` when it is full; true when the threshold tightened.
    #[inline]
    pub fn settle(&mut self) -> bool {
        if self.len < 2 * self.keep {
            return false;
        }
        self.shrink();
        true
    }

    fn shrink(&mut self) {
        let k = self.keep;
        let live = &mut self.buf[..self.len];
        // By distance alone: ties need no order here, and the plain float compare is the
        // cheapest (every candidate is finite: sums of finite table entries).
        live.select_nth_unstable_by(k - 1, |a, b| {
            a.distance.partial_cmp(&b.distance).unwrap_or(std::cmp::Ordering::Equal)
        });
        self.len = k;
        self.threshold = self.buf[..k].iter().map(|c| c.distance).fold(f32::NEG_INFINITY, f32::max);
    }

    /// The best `keep` candidates, in no particular order.
    pub fn into_vec(mut self) -> Vec<Entry> {
        if self.len > self.keep {
            self.shrink();
        }
        self.buf.truncate(self.len);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best() {
        let mut r = Reservoir::new(5);
        let mut all = Vec::new();
        for i in 0..1000u32 {
            let distance = ((i as u64 * 7919) % 1009) as f32;
            all.push(Entry { id: i as u64, distance });
            // Every third offer is invalid and must never come back.
            r.offer(Entry { id: i as u64, distance }, i % 3 != 0);
            r.settle();
        }
        all.retain(|c| c.id % 3 != 0);
        all.sort_unstable();
        let mut got = r.into_vec();
        got.sort_unstable();
        assert_eq!(got, all[..5].to_vec());
    }
}
