//! Per-search working memory, pooled by the index so a search allocates nothing.

/// A node and its distance to the query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cand {
    pub d: f32,
    pub id: u32,
}

pub(crate) struct Scratch {
    /// Epoch-stamped visited marks: node `i` was visited in this search when
    /// `visited[i] == epoch`. One byte per node keeps the array in L2 for large graphs
    /// (390k nodes: 390 KB); it is cleared once every 255 searches.
    visited: Vec<u8>,
    epoch: u8,
    /// Min-heap of nodes to expand.
    pub cand: Vec<Cand>,
    /// Max-heap of the best `ef` nodes found.
    pub top: Vec<Cand>,
    /// Unvisited neighbours of the node being expanded.
    pub buf: Vec<u32>,
    /// Workspaces for neighbour selection.
    pub sel: Vec<Cand>,
    pub out: Vec<Cand>,
    pub ids: Vec<u32>,
    /// The query's code, when the index walks on codes.
    pub code: Vec<u8>,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch {
            visited: Vec::new(),
            epoch: 0,
            cand: Vec::new(),
            top: Vec::new(),
            buf: Vec::new(),
            sel: Vec::new(),
            out: Vec::new(),
            ids: Vec::new(),
            code: Vec::new(),
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.visited.capacity()
            + (self.cand.capacity() + self.top.capacity() + self.sel.capacity() + self.out.capacity()) * 8
            + (self.buf.capacity() + self.ids.capacity()) * 4
            + self.code.capacity()
    }

    /// Starts a new visited set for a graph of `n` slots.
    #[inline]
    pub(crate) fn new_visited(&mut self, n: usize) {
        if self.visited.len() < n {
            self.visited.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.visited.iter_mut().for_each(|v| *v = 0);
            self.epoch = 1;
        }
    }

    /// Marks `id` visited; true when it was not visited before.
    #[inline(always)]
    pub(crate) fn visit(&mut self, id: u32) -> bool {
        debug_assert!((id as usize) < self.visited.len());
        // SAFETY: every id in the graph is a slot `< store.len()`, and `new_visited` was
        // called with `store.len()` (the graph invariant is upheld by every writer and
        // checked by `read_from`).
        let v = unsafe { self.visited.get_unchecked_mut(id as usize) };
        if *v == self.epoch {
            false
        } else {
            *v = self.epoch;
            true
        }
    }
}

/// Binary heap helpers on a `Vec<Cand>`: `MAX` true for a max-heap (root = farthest).
#[inline(always)]
fn above<const MAX: bool>(a: Cand, b: Cand) -> bool {
    if MAX {
        a.d > b.d
    } else {
        a.d < b.d
    }
}

#[inline(always)]
pub(crate) fn push<const MAX: bool>(h: &mut Vec<Cand>, c: Cand) {
    h.push(c);
    let mut i = h.len() - 1;
    while i > 0 {
        let p = (i - 1) / 2;
        if above::<MAX>(c, h[p]) {
            h[i] = h[p];
            i = p;
        } else {
            break;
        }
    }
    h[i] = c;
}

#[inline(always)]
fn sift_down<const MAX: bool>(h: &mut [Cand], c: Cand) {
    let n = h.len();
    let mut i = 0;
    loop {
        let l = 2 * i + 1;
        if l >= n {
            break;
        }
        let r = l + 1;
        let child = if r < n && above::<MAX>(h[r], h[l]) { r } else { l };
        if above::<MAX>(h[child], c) {
            h[i] = h[child];
            i = child;
        } else {
            break;
        }
    }
    h[i] = c;
}

#[inline(always)]
pub(crate) fn pop<const MAX: bool>(h: &mut Vec<Cand>) -> Option<Cand> {
    let last = h.pop()?;
    if h.is_empty() {
        return Some(last);
    }
    let root = h[0];
    sift_down::<MAX>(h, last);
    Some(root)
}

/// Replaces the root with `c` (same as pop then push, in one pass).
#[inline(always)]
pub(crate) fn replace_root<const MAX: bool>(h: &mut [Cand], c: Cand) {
    sift_down::<MAX>(h, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heaps_order() {
        let mut h = Vec::new();
        for (i, d) in [5.0, 1.0, 3.0, 4.0, 2.0, 0.5].iter().enumerate() {
            push::<false>(&mut h, Cand { d: *d, id: i as u32 });
        }
        let got: Vec<f32> = std::iter::from_fn(|| pop::<false>(&mut h)).map(|c| c.d).collect();
        assert_eq!(got, vec![0.5, 1.0, 2.0, 3.0, 4.0, 5.0]);
        for (i, d) in [5.0, 1.0, 3.0].iter().enumerate() {
            push::<true>(&mut h, Cand { d: *d, id: i as u32 });
        }
        replace_root::<true>(&mut h, Cand { d: 2.0, id: 9 });
        let got: Vec<f32> = std::iter::from_fn(|| pop::<true>(&mut h)).map(|c| c.d).collect();
        assert_eq!(got, vec![3.0, 2.0, 1.0]);
    }
}
