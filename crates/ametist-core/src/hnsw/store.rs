//! Node storage: every node's vector and its layer-0 links side by side in one aligned
//! block (like hnswlib's `data_level0_memory_`), plus an arena for the upper layers.
//!
//! Layout of node `i` (in 32-bit words, from `i * stride`):
//! * plain: `[vector: dim f32][count: u32][links: m0 u32][padding]`, `stride` rounded up to
//!   16 bytes;
//! * with codes (see [`super::codes`]): `[code][code sum: u32][count][links][vector]`,
//!   so that the walk, which reads only codes and links, touches the first few cache lines
//!   of a node, and the f32 vector is read only when a candidate is re-scored. Nothing is
//!   padded here: compact codes are chosen to save memory, and the vector is read rarely
//!   enough that its alignment does not matter.
//!
//! Links are only ever read and written through `AtomicU32` (relaxed), so graph threads can
//! edit them concurrently without data races; vectors are written only through `&mut`.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

const ALIGN: usize = 64;

pub(crate) struct NodeStore {
    ptr: NonNull<u32>,
    /// Nodes the allocation has room for.
    cap: usize,
    /// Nodes in use (slots `0..len`).
    len: usize,
    dim: usize,
    m0: usize,
    /// Bytes of a node's code (0: no codes).
    code_bytes: usize,
    /// Word offsets of the vector and of the layer-0 list inside a node.
    vec_off: usize,
    links_off: usize,
    stride: usize,
}

// SAFETY: `NodeStore` owns its allocation. Through `&NodeStore` vectors are only read and
// links are only accessed as atomics, so sharing it between threads cannot race; writes to
// vectors need `&mut NodeStore`.
unsafe impl Send for NodeStore {}
unsafe impl Sync for NodeStore {}

impl NodeStore {
    /// An empty store; `code_bytes` (a multiple of 4, 0 for none) reserves room for a
    /// code in front of every node.
    pub(crate) fn new(dim: usize, m0: usize, code_bytes: usize) -> Self {
        assert_eq!(code_bytes % 4, 0, "codes are whole words");
        let (vec_off, links_off, stride) = if code_bytes == 0 {
            (0, dim, (dim + 1 + m0).div_ceil(4) * 4)
        } else {
            let cw = code_bytes / 4;
            let vec_off = cw + 2 + m0;
            (vec_off, cw + 1, vec_off + dim)
        };
        NodeStore { ptr: NonNull::dangling(), cap: 0, len: 0, dim, m0, code_bytes, vec_off, links_off, stride }
    }

    /// An empty store with the same layout.
    fn empty_like(&self) -> Self {
        NodeStore::new(self.dim, self.m0, self.code_bytes)
    }

    pub(crate) fn code_bytes(&self) -> usize {
        self.code_bytes
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    pub(crate) fn stride_bytes(&self) -> usize {
        self.stride * 4
    }

    fn layout(cap: usize, stride: usize) -> Layout {
        Layout::from_size_align(cap.checked_mul(stride * 4).expect("index too large").max(ALIGN), ALIGN)
            .expect("index too large")
    }

    /// Makes room for at least `cap` nodes in total (exactly `cap` when it has to grow).
    pub(crate) fn reserve_exact(&mut self, cap: usize) {
        if cap <= self.cap {
            return;
        }
        let new = block::alloc_zeroed(Self::layout(cap, self.stride));
        if self.cap > 0 {
            // SAFETY: both blocks are valid for `len * stride` words and do not overlap; the
            // old block is freed with the layout it was allocated with.
            unsafe {
                std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), new.as_ptr(), self.len * self.stride);
                block::dealloc(self.ptr, Self::layout(self.cap, self.stride));
            }
        }
        self.ptr = new;
        self.cap = cap;
    }

    /// Drops the nodes from `len` on (keeps the allocation, and the dropped nodes' words:
    /// callers follow with [`NodeStore::shrink_to_fit`], so `push` still hands out zeroed nodes).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Shrinks the allocation to the nodes in use.
    pub(crate) fn shrink_to_fit(&mut self) {
        if self.cap == self.len {
            return;
        }
        let old = std::mem::replace(self, self.empty_like());
        self.reserve_exact(old.len);
        if old.len > 0 {
            // SAFETY: both blocks hold at least `old.len * stride` words and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(old.ptr.as_ptr(), self.ptr.as_ptr(), old.len * old.stride) };
        }
        self.len = old.len;
    }

    /// Appends a node (zero vector, no links) and returns its slot.
    pub(crate) fn push(&mut self) -> u32 {
        if self.len == self.cap {
            let grown = (self.cap + self.cap / 2).max(self.len + 16);
            self.reserve_exact(grown);
        }
        self.len += 1;
        (self.len - 1) as u32
    }

    /// Pointer to node `i`'s vector.
    #[inline(always)]
    pub(crate) fn vec_ptr(&self, i: u32) -> *const f32 {
        debug_assert!((i as usize) < self.len);
        // SAFETY (for callers): `i < len <= cap`, so the node lies inside the allocation.
        unsafe { self.ptr.as_ptr().add(i as usize * self.stride + self.vec_off) as *const f32 }
    }

    /// Pointer to node `i`'s code (`code_bytes` bytes; only meaningful when there are codes).
    #[inline(always)]
    pub(crate) fn code_ptr(&self, i: u32) -> *const u8 {
        debug_assert!((i as usize) < self.len);
        // SAFETY (for callers): `i < len <= cap`, so the node lies inside the allocation.
        unsafe { self.ptr.as_ptr().add(i as usize * self.stride) as *const u8 }
    }

    /// The sum of node `i`'s code values (stored right after the code).
    #[inline(always)]
    pub(crate) fn code_sum(&self, i: u32) -> u32 {
        debug_assert!(self.code_bytes > 0 && (i as usize) < self.len);
        // SAFETY: in range; code words are never written through `&self`.
        unsafe { *self.ptr.as_ptr().add(i as usize * self.stride + self.code_bytes / 4) }
    }

    /// Writes node `i`'s code (and its sum) from its vector.
    pub(crate) fn encode(&mut self, i: u32, scale: &super::codes::Codebook) {
        assert!(self.code_bytes > 0 && (i as usize) < self.len, "slot {i} out of range or no codes");
        // SAFETY: in range; `&mut self` excludes every other access; the code, its sum and
        // the vector are disjoint words of node `i`.
        unsafe {
            let base = self.ptr.as_ptr().add(i as usize * self.stride);
            let vector = std::slice::from_raw_parts(base.add(self.vec_off) as *const f32, self.dim);
            let code = std::slice::from_raw_parts_mut(base as *mut u8, self.code_bytes);
            *base.add(self.code_bytes / 4) = scale.encode(vector, code);
        }
    }

    #[inline(always)]
    pub(crate) fn vector(&self, i: u32) -> &[f32] {
        assert!((i as usize) < self.len, "slot {i} out of range");
        // SAFETY: in range (checked above); vector words are never written through `&self`.
        unsafe { std::slice::from_raw_parts(self.vec_ptr(i), self.dim) }
    }

    pub(crate) fn vector_mut(&mut self, i: u32) -> &mut [f32] {
        assert!((i as usize) < self.len, "slot {i} out of range");
        // SAFETY: in range; `&mut self` excludes every other access.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.as_ptr().add(i as usize * self.stride + self.vec_off) as *mut f32,
                self.dim,
            )
        }
    }

    /// Node `i`'s layer-0 list: `[count, link0, link1, ..]` (`1 + m0` words).
    #[inline(always)]
    pub(crate) fn links0(&self, i: u32) -> &[AtomicU32] {
        debug_assert!((i as usize) < self.len);
        // SAFETY: `i < len` (callers only pass slots of the graph, checked in debug builds and
        // at every public entry point); AtomicU32 has the layout of u32, and link words are
        // only ever accessed atomically while shared.
        unsafe {
            std::slice::from_raw_parts(
                self.ptr.as_ptr().add(i as usize * self.stride + self.links_off) as *const AtomicU32,
                1 + self.m0,
            )
        }
    }

    /// Prefetches the first `lines` cache lines of node `i`'s vector.
    #[inline(always)]
    pub(crate) fn prefetch(&self, i: u32, lines: usize) {
        prefetch_lines(self.vec_ptr(i) as *const u8, lines)
    }

    /// Prefetches the first `lines` cache lines of node `i`'s code.
    #[inline(always)]
    pub(crate) fn prefetch_code(&self, i: u32, lines: usize) {
        prefetch_lines(self.code_ptr(i), lines)
    }

    /// Prefetches node `i`'s layer-0 link list.
    #[inline(always)]
    pub(crate) fn prefetch_links(&self, i: u32) {
        prefetch_lines(self.links0(i).as_ptr() as *const u8, 2)
    }

    /// Clears node `i`'s layer-0 list.
    pub(crate) fn clear_links0(&self, i: u32) {
        self.links0(i)[0].store(0, Relaxed);
    }
}

impl Drop for NodeStore {
    fn drop(&mut self) {
        if self.cap > 0 {
            // SAFETY: allocated in `reserve_exact` with this very layout.
            unsafe { block::dealloc(self.ptr, Self::layout(self.cap, self.stride)) };
        }
    }
}

/// Asks for `lines` cache lines from `p` on (a hint: never faults, whatever the address).
#[inline(always)]
fn prefetch_lines(p: *const u8, lines: usize) {
    #[cfg(target_arch = "x86_64")]
    for l in 0..lines {
        // SAFETY: prefetch never faults, whatever the address.
        unsafe { std::arch::x86_64::_mm_prefetch(p.wrapping_add(l * 64) as *const i8, std::arch::x86_64::_MM_HINT_T0) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, lines);
}

/// A link list view: `[count, links..]`.
#[inline(always)]
pub(crate) fn read_list(list: &[AtomicU32], max: usize) -> (&[AtomicU32], usize) {
    let n = (list[0].load(Relaxed) as usize).min(max);
    (&list[1..], n)
}

/// Overwrites a link list with `links` (callers hold the node's lock or `&mut`).
pub(crate) fn write_list(list: &[AtomicU32], links: &[u32]) {
    for (w, &l) in list[1..].iter().zip(links) {
        w.store(l, Relaxed);
    }
    list[0].store(links.len() as u32, Relaxed);
}

/// A one-byte spin lock per node; held only while one link list is rewritten.
#[derive(Default)]
pub(crate) struct SpinLock(std::sync::atomic::AtomicBool);

impl SpinLock {
    pub(crate) fn lock(&self) -> SpinGuard<'_> {
        use std::sync::atomic::Ordering::{Acquire, Relaxed};
        let mut spins = 0u32;
        while self.0.compare_exchange_weak(false, true, Acquire, Relaxed).is_err() {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        SpinGuard(self)
    }
}

pub(crate) struct SpinGuard<'a>(&'a SpinLock);

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Whether index node blocks of 2 MiB or more ask for transparent huge pages (the default).
/// Applies to blocks allocated from then on. A huge page is only ever partly used at the end
/// of a block, so turning this off saves up to 2 MiB per index, at the cost of a slower walk
/// (a TLB miss on most nodes a query visits); the server sets it from
/// `partitions.huge_pages`.
pub fn set_huge_pages(on: bool) {
    block::HUGE_PAGES.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The node block's allocation. Large blocks are mapped directly and asked for transparent
/// huge pages: a search touches a few hundred nodes scattered over the whole block, and with
/// 4 KiB pages nearly every one of those reads also misses the TLB (a 200 MB index spans
/// 50,000 pages, the TLB holds about 1,500). With 2 MiB pages the whole block needs a
/// hundred entries. Small blocks come from the global allocator.
mod block {
    use std::alloc::{self, Layout};
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    /// Whether large blocks are advised for huge pages; see [`super::set_huge_pages`].
    pub(super) static HUGE_PAGES: AtomicBool = AtomicBool::new(true);

    /// Blocks from this size on are mapped with huge pages (where the OS has them).
    #[cfg(target_os = "linux")]
    const HUGE: usize = 2 << 20;

    /// Zeroed memory for `layout` (never null: aborts like the global allocator on failure).
    pub(super) fn alloc_zeroed(layout: Layout) -> NonNull<u32> {
        #[cfg(target_os = "linux")]
        if layout.size() >= HUGE {
            return map_huge(layout);
        }
        // SAFETY: the layout has a non-zero size. Zeroed memory makes every word initialised
        // (empty link lists, zero vectors).
        let raw = unsafe { alloc::alloc_zeroed(layout) } as *mut u32;
        NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout))
    }

    /// Frees a block from [`alloc_zeroed`].
    ///
    /// # Safety
    /// `p` came from `alloc_zeroed(layout)` with this very layout and is not used afterwards.
    pub(super) unsafe fn dealloc(p: NonNull<u32>, layout: Layout) {
        #[cfg(target_os = "linux")]
        if layout.size() >= HUGE {
            // SAFETY: every block this large was mapped by `map_huge`, with this length
            // rounded up to whole huge pages.
            unsafe { libc::munmap(p.as_ptr() as *mut libc::c_void, round_up(layout.size())) };
            return;
        }
        // SAFETY: allocated by the global allocator with this layout.
        unsafe { alloc::dealloc(p.as_ptr() as *mut u8, layout) }
    }

    #[cfg(target_os = "linux")]
    fn round_up(size: usize) -> usize {
        size.div_ceil(HUGE) * HUGE
    }

    /// Maps `layout.size()` bytes (rounded up to huge pages) at a huge-page boundary and
    /// advises the kernel to back them with huge pages. Aborts when the kernel has no
    /// memory, as the global allocator would.
    #[cfg(target_os = "linux")]
    fn map_huge(layout: Layout) -> NonNull<u32> {
        let len = round_up(layout.size());
        // Map one huge page more than needed, then unmap the unaligned head and the tail.
        let span = len + HUGE;
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            alloc::handle_alloc_error(layout);
        }
        let start = raw as usize;
        let aligned = start.div_ceil(HUGE) * HUGE;
        // SAFETY: both ranges lie inside the mapping just made and are not used by anyone.
        unsafe {
            if aligned > start {
                libc::munmap(raw, aligned - start);
            }
            let tail = start + span - (aligned + len);
            if tail > 0 {
                libc::munmap((aligned + len) as *mut libc::c_void, tail);
            }
            // Advice only: without transparent huge pages the block still works, with 4 KiB pages.
            if HUGE_PAGES.load(Relaxed) {
                libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
            }
        }
        NonNull::new(aligned as *mut u32).expect("a successful mapping is never at address 0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills node `i` with values derived from `i`, so any lost or shifted word shows.
    fn fill(s: &mut NodeStore, i: u32) {
        for (j, v) in s.vector_mut(i).iter_mut().enumerate() {
            *v = (i as usize * 1000 + j) as f32;
        }
        let links: Vec<u32> = (0..5).map(|k| i + k).collect();
        write_list(s.links0(i), &links);
    }

    fn check(s: &NodeStore, i: u32) {
        let v = s.vector(i);
        assert!(v.iter().enumerate().all(|(j, &x)| x == (i as usize * 1000 + j) as f32), "vector of node {i}");
        let (links, n) = read_list(s.links0(i), 32);
        assert_eq!(n, 5, "link count of node {i}");
        assert!(links[..n].iter().enumerate().all(|(k, w)| w.load(Relaxed) == i + k as u32), "links of node {i}");
    }

    /// Small blocks come from the allocator, large ones are mapped (huge pages on Linux);
    /// growing from one to the other, shrinking back and dropping keep every node intact.
    #[test]
    fn blocks_small_and_large_keep_their_contents() {
        let mut s = NodeStore::new(784, 32, 0);
        for i in 0..100 {
            assert_eq!(s.push(), i);
            fill(&mut s, i);
        }
        assert!(s.capacity() * s.stride_bytes() < 2 << 20, "starts below the huge-page size");
        // Grows past 2 MiB: the nodes are copied into a mapped block.
        for i in 100..3000 {
            assert_eq!(s.push(), i);
            fill(&mut s, i);
        }
        assert!(s.capacity() * s.stride_bytes() >= 2 << 20);
        #[cfg(target_os = "linux")]
        assert_eq!(s.vec_ptr(0) as usize % (2 << 20), 0, "a large block starts at a huge-page boundary");
        (0..3000).for_each(|i| check(&s, i));
        s.truncate(2000);
        s.shrink_to_fit();
        assert_eq!(s.capacity(), 2000);
        (0..2000).for_each(|i| check(&s, i));
        s.truncate(50);
        s.shrink_to_fit();
        assert_eq!(s.capacity(), 50);
        (0..50).for_each(|i| check(&s, i));
        // New nodes start empty: zero vector, no links.
        let i = s.push();
        assert!(s.vector(i).iter().all(|&x| x == 0.0));
        assert_eq!(read_list(s.links0(i), 32).1, 0);

        // With huge pages switched off a large block is mapped the same way, only without
        // the advice (the switch is advisory, so other tests running meanwhile are unaffected).
        set_huge_pages(false);
        let mut s = NodeStore::new(784, 32, 0);
        for i in 0..1000 {
            s.push();
            fill(&mut s, i);
        }
        set_huge_pages(true);
        assert!(s.capacity() * s.stride_bytes() >= 2 << 20);
        (0..1000).for_each(|i| check(&s, i));
    }

    /// With codes in front of every node, vectors, codes and links stay apart.
    #[test]
    fn codes_layout_keeps_vectors_and_links_apart() {
        let dim = 33;
        let mut s = NodeStore::new(dim, 32, super::super::codes::code_bytes(dim, 4));
        let scale =
            super::super::codes::Codebook::Scalar(super::super::codes::Scale { lo: 0.0, step: 1000.0, bits: 4 });
        for i in 0..500 {
            s.push();
            fill(&mut s, i);
            s.encode(i, &scale);
        }
        s.truncate(400);
        s.shrink_to_fit();
        for i in 0..400 {
            check(&s, i);
            let mut expect = vec![0u8; s.code_bytes()];
            let sum = scale.encode(s.vector(i), &mut expect);
            // SAFETY: node `i` holds `code_bytes` bytes of code.
            let code = unsafe { std::slice::from_raw_parts(s.code_ptr(i), s.code_bytes()) };
            assert_eq!((code, s.code_sum(i)), (&expect[..], sum), "code of node {i}");
        }
    }
}
