//! Node storage: every node's vector and its layer-0 links side by side in one aligned
//! block (like hnswlib's `data_level0_memory_`), plus an arena for the upper layers.
//!
//! Layout of node `i` (in 32-bit words, from `i * stride`):
//! `[vector: dim f32][count: u32][links: m0 u32][padding]`, `stride` rounded up to 16 bytes.
//!
//! Links are only ever read and written through `AtomicU32` (relaxed), so graph threads can
//! edit them concurrently without data races; vectors are written only through `&mut`.

use std::alloc::{self, Layout};
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
    stride: usize,
}

// SAFETY: `NodeStore` owns its allocation. Through `&NodeStore` vectors are only read and
// links are only accessed as atomics, so sharing it between threads cannot race; writes to
// vectors need `&mut NodeStore`.
unsafe impl Send for NodeStore {}
unsafe impl Sync for NodeStore {}

impl NodeStore {
    pub(crate) fn new(dim: usize, m0: usize) -> Self {
        let stride = (dim + 1 + m0).div_ceil(4) * 4;
        NodeStore { ptr: NonNull::dangling(), cap: 0, len: 0, dim, m0, stride }
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
        let layout = Self::layout(cap, self.stride);
        // SAFETY: the layout has a non-zero size. Zeroed memory makes every word initialised
        // (empty link lists, zero vectors).
        let raw = unsafe { alloc::alloc_zeroed(layout) } as *mut u32;
        let Some(new) = NonNull::new(raw) else { alloc::handle_alloc_error(layout) };
        if self.cap > 0 {
            // SAFETY: both blocks are valid for `len * stride` words and do not overlap; the
            // old block is freed with the layout it was allocated with.
            unsafe {
                std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), new.as_ptr(), self.len * self.stride);
                alloc::dealloc(self.ptr.as_ptr() as *mut u8, Self::layout(self.cap, self.stride));
            }
        }
        self.ptr = new;
        self.cap = cap;
    }

    /// Drops the nodes from `len` on (keeps the allocation).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Shrinks the allocation to the nodes in use.
    pub(crate) fn shrink_to_fit(&mut self) {
        if self.cap == self.len {
            return;
        }
        let old = std::mem::replace(self, NodeStore::new(self.dim, self.m0));
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
        unsafe { self.ptr.as_ptr().add(i as usize * self.stride) as *const f32 }
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
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(i as usize * self.stride) as *mut f32, self.dim) }
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
                self.ptr.as_ptr().add(i as usize * self.stride + self.dim) as *const AtomicU32,
                1 + self.m0,
            )
        }
    }

    /// Prefetches the first `lines` cache lines of node `i`'s vector.
    #[inline(always)]
    pub(crate) fn prefetch(&self, i: u32, lines: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let p = self.vec_ptr(i) as *const i8;
            for l in 0..lines {
                // SAFETY: prefetch never faults, whatever the address.
                unsafe { std::arch::x86_64::_mm_prefetch(p.wrapping_add(l * 64), std::arch::x86_64::_MM_HINT_T0) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (i, lines);
    }

    /// Prefetches node `i`'s layer-0 link list.
    #[inline(always)]
    pub(crate) fn prefetch_links(&self, i: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let p = self.links0(i).as_ptr() as *const i8;
            // SAFETY: prefetch never faults.
            unsafe {
                std::arch::x86_64::_mm_prefetch(p, std::arch::x86_64::_MM_HINT_T0);
                std::arch::x86_64::_mm_prefetch(p.wrapping_add(64), std::arch::x86_64::_MM_HINT_T0);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
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
            unsafe { alloc::dealloc(self.ptr.as_ptr() as *mut u8, Self::layout(self.cap, self.stride)) };
        }
    }
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
