//! The `keep` best code estimates of a scan, kept without a heap.
//!
//! A heap pays a logarithmic sift for every candidate that beats its worst entry, and a scan
//! over thousands of codes has many such candidates while the threshold is still loose. The
//! reservoir (faiss's `ReservoirTopN`) appends candidates below its threshold to a buffer
//! of twice the capacity; when the buffer fills, one selection keeps the best half and
//! tightens the threshold to the worst kept. Each candidate costs a compare and a push.

use crate::flat::Candidate;

pub struct Reservoir {
    keep: usize,
    buf: Vec<Candidate>,
    /// Candidates at or above this distance cannot enter.
    threshold: f32,
}

impl Reservoir {
    pub fn new(keep: usize) -> Self {
        let keep = keep.max(1);
        Reservoir { keep, buf: Vec::with_capacity(2 * keep), threshold: f32::INFINITY }
    }

    /// The distance a candidate must be below to enter.
    #[inline]
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Offers a candidate; returns true when the threshold has just tightened.
    #[inline]
    pub fn push(&mut self, c: Candidate) -> bool {
        if c.distance >= self.threshold {
            return false;
        }
        self.buf.push(c);
        if self.buf.len() < 2 * self.keep {
            return false;
        }
        self.shrink();
        true
    }

    fn shrink(&mut self) {
        let k = self.keep;
        self.buf.select_nth_unstable(k - 1);
        self.buf.truncate(k);
        self.threshold = self.buf.iter().map(|c| c.distance).fold(f32::NEG_INFINITY, f32::max);
    }

    /// The best `keep` candidates, in no particular order.
    pub fn into_vec(mut self) -> Vec<Candidate> {
        if self.buf.len() > self.keep {
            self.shrink();
        }
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
            all.push(Candidate { slot: i, distance });
            r.push(Candidate { slot: i, distance });
        }
        all.sort_unstable();
        let mut got = r.into_vec();
        got.sort_unstable();
        assert_eq!(got, all[..5].to_vec());
    }
}
