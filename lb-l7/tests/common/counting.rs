//! A global allocator for tests that count what a worker's thread allocates: the threads that
//! set [`COUNTED`] (the worker's, in [`counted_worker`]) have their live heap bytes ([`LIVE`])
//! and their allocation calls ([`CALLS`]) counted; the clients, the backends and the test
//! harness on other threads are not.
//!
//! Used by `idle_memory.rs` and `request_allocations.rs` (`#[path]`, not through
//! `common/mod.rs`: a test binary has one global allocator, and the others keep the system's).
#![allow(dead_code)] // each test binary uses a part

use super::common::start;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

/// Live heap bytes of the counted threads.
pub static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Allocation calls (`alloc`, `alloc_zeroed`, `realloc`) of the counted threads.
pub static CALLS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    pub static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

/// Counts for the threads that set `COUNTED`.
struct Counting;

// SAFETY: every call goes to `System` unchanged; only counters are updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() && counted() {
            LIVE.fetch_add(l.size() as isize, SeqCst);
            CALLS.fetch_add(1, SeqCst);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() && counted() {
            LIVE.fetch_add(l.size() as isize, SeqCst);
            CALLS.fetch_add(1, SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        if counted() {
            LIVE.fetch_sub(l.size() as isize, SeqCst);
        }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() && counted() {
            LIVE.fetch_add(new as isize - l.size() as isize, SeqCst);
            CALLS.fetch_add(1, SeqCst);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A worker on a thread of its own (a current-thread runtime, as in `weir`) whose allocations
/// are counted; returns its listeners' ports, a sender that stops it, and its metrics.
pub fn counted_worker(
    toml: String,
) -> (
    Vec<u16>,
    tokio::sync::oneshot::Sender<()>,
    lb_l7::MetricsHandle,
) {
    let (ports_tx, ports_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        COUNTED.with(|c| c.set(true));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let w = start(&toml);
            ports_tx.send((w.ports.clone(), w.metrics.clone())).unwrap();
            let _ = stop_rx.await;
            w.stop().await;
        });
    });
    let (ports, metrics) = ports_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("worker started");
    (ports, stop_tx, metrics)
}
