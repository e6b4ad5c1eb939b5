//! The process's allocator: mimalloc (glibc's malloc cost about 10 % of each proxied request
//! in the L7 benchmark, docs/l7.md), asked through its plain entry points when the layout
//! allows.
//!
//! Why not the `mimalloc` crate's `MiMalloc` as it is: it passes every request to
//! `mi_malloc_aligned`, and mimalloc 3 serves an alignment it cannot prove natural — any block
//! over 1 KiB whose size is not a power of two, such as the future an HTTP/1.1 request's turn
//! lives in (~4.5 KB, `lb_l7::h1::server`) — by over-allocating `size + align - 1` in a larger
//! size class, taking its generic (slow) path, and marking the page as holding interior
//! pointers, for every such block. mimalloc's plain `mi_malloc` returns blocks aligned to
//! `MI_MAX_ALIGN_SIZE` (16 on the 64-bit targets weir builds for) whenever the size is at
//! least that (its bins from 16 bytes up are multiples of 16), and to at least 8 below it:
//! so an alignment of at most 16 that is not larger than the size needs no aligned call —
//! the test std's `System` makes for `malloc`, and the one mimalloc's author gave for Rust
//! (microsoft/mimalloc#314).

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// `MI_MAX_ALIGN_SIZE` in mimalloc's `types.h`: `sizeof(max_align_t)`.
const MAX_PLAIN_ALIGN: usize = 16;

// Declared here: `libmimalloc-sys` declares it only under a feature that needs another crate.
unsafe extern "C" {
    fn mi_collect(force: bool);
}

/// Gives the memory mimalloc holds freed back to the OS: pages it kept for reuse, and the
/// purges it had put off. The worker calls it after bursts (`workers::child`); the control
/// plane once it is up (`run::run`: loading the eBPF objects had parsed the kernel's BTF).
pub fn release_memory() {
    // SAFETY: `mi_collect` takes a flag and may be called at any time on any thread.
    unsafe { mi_collect(true) }
}

/// mimalloc, as the global allocator (`main.rs`).
pub struct Mimalloc;

/// Whether `mi_malloc(size)` is aligned enough for `align` (module comment).
#[inline]
fn plain(size: usize, align: usize) -> bool {
    align <= MAX_PLAIN_ALIGN && align <= size
}

// SAFETY: every block comes from mimalloc and goes back to it (`mi_free` takes blocks from
// either entry point); the plain calls are made only when their alignment suffices (`plain`).
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation calls take any size and a power-of-two alignment.
        unsafe {
            if plain(layout.size(), layout.align()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if plain(layout.size(), layout.align()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract).
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator; the test is on the new size (the block
        // returned must suit it).
        unsafe {
            if plain(new_size, layout.align()) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every block meets its layout's alignment, whichever entry point served it: sizes from a
    /// byte to past mimalloc's small and large classes, every alignment up to a page, fresh,
    /// zeroed and grown or shrunk in place of another.
    #[test]
    fn every_block_meets_its_alignment() {
        let a = Mimalloc;
        let sizes = [
            1,
            7,
            8,
            15,
            16,
            24,
            40,
            48,
            100,
            1000,
            1025,
            4500,
            70_000,
            2 << 20,
        ];
        let mut kept = Vec::new();
        for &size in &sizes {
            for shift in 0..=12 {
                let layout = Layout::from_size_align(size, 1 << shift).unwrap();
                // SAFETY: non-zero sizes, power-of-two alignments; every block freed below.
                unsafe {
                    let p = a.alloc(layout);
                    let z = a.alloc_zeroed(layout);
                    assert!(!p.is_null() && !z.is_null());
                    assert_eq!(p as usize % layout.align(), 0, "{layout:?}");
                    assert_eq!(z as usize % layout.align(), 0, "zeroed {layout:?}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    p.write_bytes(0xa5, size);
                    // Grown, then shrunk: each block returned must meet the alignment.
                    let mut q = z;
                    let mut had = layout;
                    for new in [size * 3, size / 2 + 1] {
                        q = a.realloc(q, had, new);
                        assert!(!q.is_null());
                        assert_eq!(
                            q as usize % layout.align(),
                            0,
                            "realloc {layout:?} to {new}"
                        );
                        had = Layout::from_size_align(new, layout.align()).unwrap();
                    }
                    a.dealloc(q, had);
                    // Interleave lifetimes: half the blocks outlive the next ones.
                    if shift % 2 == 0 {
                        kept.push((p, layout));
                    } else {
                        a.dealloc(p, layout);
                    }
                }
            }
        }
        for (p, layout) in kept {
            // SAFETY: allocated above with this layout, freed once.
            unsafe {
                assert!(
                    std::slice::from_raw_parts(p, layout.size())
                        .iter()
                        .all(|&b| b == 0xa5)
                );
                a.dealloc(p, layout);
            }
        }
    }

    /// The plain path is taken exactly where its alignment is guaranteed.
    #[test]
    fn plain_only_where_mimalloc_guarantees_it() {
        assert!(plain(16, 16) && plain(24, 8) && plain(4500, 8) && plain(1, 1));
        assert!(!plain(8, 16), "an 8-byte block is only 8-aligned");
        assert!(!plain(4096, 32) && !plain(64, 64));
    }
}
