//! The global allocator: mimalloc, called the way its own C `malloc` would be.
//!
//! The `mimalloc` crate's `GlobalAlloc` passes every request to `mi_malloc_aligned`, whose fast
//! path only holds for blocks of at most 1 KiB whose size class has a free block ready. Anything
//! else — a larger buffer, or the first block after a page ran out — went to the generic aligned
//! path, which over-allocates by the alignment and so never refills the ordinary pages: 28% of
//! the gateway's allocations on the nested demo query took it (callgrind, ~150 instructions
//! each against ~20). Rust's own `System` allocator avoids the same trap by calling plain
//! `malloc` when the alignment is one malloc always gives; mimalloc always gives 8 (every block
//! size is a multiple of the word size, every page starts 16-aligned), so only larger
//! alignments go through the aligned entry points.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every mimalloc block has.
const PLAIN_ALIGN: usize = 8;

/// mimalloc as the global allocator (see the module comment for why not `mimalloc::MiMalloc`).
pub(crate) struct Mimalloc;

#[allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait over mimalloc's C functions (SAFETY below)"
)]
// SAFETY: each function returns a block of at least the requested size and alignment, or null:
// mimalloc's plain functions align to `PLAIN_ALIGN` and are used only when the layout asks for
// no more; the aligned ones take the layout's alignment. `mi_free` and `mi_realloc` accept a
// block from either family, so a layout's blocks may move between them.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= PLAIN_ALIGN {
            unsafe { mi::mi_malloc(layout.size()) }.cast()
        } else {
            unsafe { mi::mi_malloc_aligned(layout.size(), layout.align()) }.cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= PLAIN_ALIGN {
            unsafe { mi::mi_zalloc(layout.size()) }.cast()
        } else {
            unsafe { mi::mi_zalloc_aligned(layout.size(), layout.align()) }.cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= PLAIN_ALIGN {
            unsafe { mi::mi_realloc(ptr.cast::<c_void>(), new_size) }.cast()
        } else {
            unsafe { mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()) }.cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code, reason = "exercises the allocator directly")]
    fn blocks_have_the_alignment_asked_for_and_keep_their_bytes() {
        let alloc = Mimalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [
                1, 3, 7, 8, 12, 24, 40, 56, 100, 1000, 1025, 5000, 70_000, 3_000_000,
            ] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero size; every block is freed with its layout below.
                unsafe {
                    let p = alloc.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "alloc {size} aligned {align}");
                    p.write_bytes(0xA5, size);
                    let q = alloc.realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "realloc {size} aligned {align}");
                    assert!(
                        (0..size).all(|i| *q.add(i) == 0xA5),
                        "realloc kept the bytes"
                    );
                    alloc.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                    let z = alloc.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zalloc {size} aligned {align}");
                    assert!((0..size).all(|i| *z.add(i) == 0), "zeroed");
                    alloc.dealloc(z, layout);
                }
            }
        }
    }
}
