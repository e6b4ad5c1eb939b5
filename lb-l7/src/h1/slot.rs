//! The memory a request's `turn` future lives in (`server::boxed_turn`), kept per worker
//! thread from one request to the next (a `crate::spares` pool) instead of an allocation and
//! a free per request. The future is ~4.5 KB: one block each per request in flight, and
//! mimalloc served every such allocation on its slow path (~360 instructions with the free
//! ~440 a request, by callgrind under `h2load --h1 -c64`); a spare costs a `Vec` pop and push.
//!
//! [`Slotted`] is `Box<F>` whose block comes from, and goes back to, this thread's spares; an
//! idle worker gives them back at its sweep (`worker::trim_spares`).

use crate::spares::Spares;
use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::ptr::NonNull;
use std::task::{Context, Poll};

/// Blocks kept at most: one per request in flight on the worker, so about its busiest second's
/// concurrency (128 × ~4.5 KB).
const MAX_SPARE: usize = 128;
/// Blocks a trim keeps however idle the worker.
const FLOOR: usize = 4;

/// A block of heap memory for a value of `layout`, owned (freed when dropped).
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Drop for Block {
    fn drop(&mut self) {
        // Safety: `ptr` was allocated with `layout` (`Slotted::new`) and nothing else owns it.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

thread_local! {
    static BLOCKS: Spares<Block> = const { Spares::new(MAX_SPARE, FLOOR) };
}

/// The worker's sweep: releases the spare blocks the last period did not use (down to the
/// floor); returns the bytes released (nominally).
pub fn trim() -> usize {
    BLOCKS.try_with(Spares::trim).unwrap_or(0) * NOMINAL_BLOCK
}

/// A block as `trim` counts it: a turn future's size, about.
const NOMINAL_BLOCK: usize = 4608;

/// A future in a heap block of its own, as in a `Box`; the block is a spare of this thread's
/// when one of its layout is there, and becomes one when the future is dropped.
pub struct Slotted<F> {
    ptr: NonNull<F>,
}

// Safety: a `Slotted<F>` owns its `F` as `Box<F>` does; the block it goes back to is a plain
// allocation any thread may keep or free.
unsafe impl<F: Send> Send for Slotted<F> {}

impl<F: Future> Slotted<F> {
    /// `make()` written straight into a block (made there, not moved in: a move of a turn's
    /// future copies all of it).
    pub fn new(make: impl FnOnce() -> F) -> Slotted<F> {
        const { assert!(size_of::<F>() > 0, "a zero-sized future needs no block") };
        let layout = Layout::new::<F>();
        let spare = BLOCKS
            .try_with(Spares::take)
            .ok()
            .flatten()
            .filter(|b| b.layout == layout);
        let block = match spare {
            Some(b) => std::mem::ManuallyDrop::new(b).ptr,
            // Safety: `layout` is not zero-sized (above).
            None => {
                NonNull::new(unsafe { alloc(layout) }).unwrap_or_else(|| handle_alloc_error(layout))
            }
        };
        let ptr = block.cast::<F>();
        // Safety: the block is of `F`'s layout and holds nothing.
        unsafe { ptr.as_ptr().write(make()) };
        Slotted { ptr }
    }
}

impl<F: Future> Future for Slotted<F> {
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Safety: the `F` stays in its block until it is dropped there (`Drop`): pinned.
        unsafe { std::pin::Pin::new_unchecked(&mut *self.ptr.as_ptr()) }.poll(cx)
    }
}

impl<F> Drop for Slotted<F> {
    fn drop(&mut self) {
        // Safety: the block holds a live `F` (`new`), dropped once, here.
        unsafe { std::ptr::drop_in_place(self.ptr.as_ptr()) };
        let block = Block {
            ptr: self.ptr.cast(),
            layout: Layout::new::<F>(),
        };
        // Past the thread's end (its spares gone) the block is freed (`Block`'s drop).
        let _ = BLOCKS.try_with(move |s| s.give_back(block));
    }
}

/// Spare blocks held on this thread.
#[cfg(test)]
pub(crate) fn held() -> usize {
    BLOCKS.with(Spares::len)
}

/// `n` futures out at once, then dropped (their blocks become spares).
#[cfg(test)]
pub(crate) fn fill_for_test(n: usize) {
    let out: Vec<_> = (0..n)
        .map(|_| Slotted::new(|| async { [0u8; 64] }))
        .collect();
    drop(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    struct Counted(Arc<AtomicUsize>, [u8; 256]);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    #[tokio::test]
    async fn a_block_is_reused_and_its_future_runs_and_drops_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut seen = Vec::new();
        for i in 0..3u8 {
            let d = drops.clone();
            let f = Slotted::new(|| async move {
                let c = Counted(d, [i; 256]);
                tokio::task::yield_now().await;
                c.1[255]
            });
            seen.push(f.ptr.cast::<u8>());
            assert_eq!(f.await, i);
            assert_eq!(drops.load(Relaxed), usize::from(i) + 1);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "one block: {seen:?}");
        // A future dropped before it finished drops what it holds.
        let d = drops.clone();
        let f = Slotted::new(|| async move {
            let _c = Counted(d, [0; 256]);
            std::future::pending::<()>().await;
        });
        let mut f = Box::pin(f);
        let waker = std::task::Waker::noop();
        assert!(
            f.as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
        drop(f);
        assert_eq!(drops.load(Relaxed), 4);
    }
}
