//! How long the worker's idle trim holds its thread on a sizable heap. The 1 s sweep releases
//! the spares a burst left (`worker::trim_spares`), then asks the allocator to give freed
//! memory back (`WorkerOptions::release_memory`; `weir` passes mimalloc's `mi_collect(true)`,
//! which visits every page of the thread's heap and purges the free ones at once): the
//! worker's runtime is one thread, so every request on it waits that out.
//!
//! Here the worker runs as in `weir`: mimalloc as the allocator, a current-thread runtime on a
//! thread of its own, `release_memory` calling `mi_collect(true)`. Its thread's heap holds
//! 96 MB live with holes (about what 10,000 idle TLS connections hold: 84 MB for 9,500 in
//! `weir`); a burst of 100 HTTP/2 requests at once fills the spares, and 16 MB more that the
//! worker's thread allocated are freed once it is answered (what a burst's connections leave
//! for the allocator to give back). Once the sweeps trimmed and collected, two figures are
//! asserted, both in the worker thread's CPU time (another process taking the core does not
//! count, so a loaded machine does not fail it):
//! - the collection itself (timed inside `release_memory`);
//! - the longest the runtime went without polling a 1 ms task on it, in the idle period after
//!   the burst: the sweep's one poll, trim and collection together.
//!
//! What they cost is giving pages back (`madvise`), not the heap's size: mimalloc purges a
//! freed page a second after it was freed (`mi_option_purge_delay`), on whatever allocator
//! call comes first, here the trim's frees (16 MB: ~2 ms); `mi_collect(true)` visits the 96 MB
//! heap's pages and purges what is left in ~0.1 ms. Measured when written (debug): collection
//! 0.09–0.11 ms, runtime held 1.9–2.3 ms. In `weir` (release, 9,500 idle TLS connections,
//! docs/l7.md "Spares"): collection 0.24–0.51 ms, as with none (0.39–0.52 ms). The bounds
//! (10 and 20 ms) are well above these, so that only a real regression fails: a collection
//! that walks every block, or a trim or collection that costs more than what it gives back.

mod common;
use common::*;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lb_l7::WorkerOptions;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's C library, linked by the `mimalloc` crate (as `weir`'s `workers::child` declares it).
unsafe extern "C" {
    fn mi_collect(force: bool);
}

/// Live heap on the worker's thread, in blocks of these sizes in turn (48 B to 9 KB), every
/// third one freed again.
const HEAP: usize = 96 << 20;
const SIZES: [usize; 6] = [48, 160, 512, 1_216, 4_096, 9_000];
/// Heap the burst leaves freed.
const BURST_HEAP: usize = 16 << 20;
/// Bounds, in the worker thread's CPU time (debug build, as `cargo test` runs it).
const COLLECT_BOUND: Duration = Duration::from_millis(10);
const HELD_BOUND: Duration = Duration::from_millis(20);

static RELEASES: AtomicUsize = AtomicUsize::new(0);
static COLLECT_MAX_NS: AtomicU64 = AtomicU64::new(0);
/// The 1 ms task records the CPU time between its wakes while this is set.
static RECORDING: AtomicBool = AtomicBool::new(false);
static HELD_MAX_NS: AtomicU64 = AtomicU64::new(0);

/// This thread's CPU time (user and system), in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to write to.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What `weir` passes as `release_memory` (`mi_collect(true)`), timed.
fn release() {
    let t = thread_cpu_ns();
    // SAFETY: `mi_collect` takes a flag and may be called at any time on any thread.
    unsafe { mi_collect(true) };
    COLLECT_MAX_NS.fetch_max(thread_cpu_ns() - t, SeqCst);
    RELEASES.fetch_add(1, SeqCst);
}

/// ~`bytes` in blocks of `SIZES`, every third freed again (holes in every page).
fn sizable_heap(bytes: usize) -> Vec<Box<[u8]>> {
    let mut kept = Vec::new();
    let (mut total, mut i) = (0, 0);
    while total < bytes {
        let size = SIZES[i % SIZES.len()];
        let b = vec![1u8; size].into_boxed_slice();
        if i % 3 != 2 {
            total += size;
            kept.push(b);
        }
        i += 1;
    }
    kept
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

#[test]
fn the_idle_trim_holds_the_worker_briefly_on_a_sizable_heap() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let target = backend("t").await;
        let (ports_tx, ports_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (burst_done_tx, burst_done) = tokio::sync::oneshot::channel::<()>();
        let (freed_tx, freed_rx) = std::sync::mpsc::channel();
        let toml = one_target_config(free_port(), target.addr.port(), "", "", "");
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let heap = sizable_heap(HEAP);
                let burst_heap = sizable_heap(BURST_HEAP);
                let opts = WorkerOptions {
                    release_memory: Some(release),
                    ..WorkerOptions::default()
                };
                let w = start_with(&toml, opts);
                // The 1 ms task: how long the runtime went without polling it, in CPU time.
                let probe = tokio::spawn(async {
                    let mut last = thread_cpu_ns();
                    loop {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        let now = thread_cpu_ns();
                        if RECORDING.load(SeqCst) {
                            HELD_MAX_NS.fetch_max(now - last, SeqCst);
                        }
                        last = now;
                    }
                });
                ports_tx.send(w.port).unwrap();
                let _ = burst_done.await;
                drop(burst_heap);
                freed_tx.send(()).unwrap();
                let _ = stop_rx.await;
                probe.abort();
                w.stop().await;
                drop(heap);
            });
        });
        let port = ports_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("worker started");
        // The burst: 100 h2c requests at once on one connection.
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        let driver = tokio::spawn(conn);
        let burst: Vec<_> = (0..100)
            .map(|i| {
                let mut send = send.clone();
                tokio::spawn(async move {
                    let req = hyper::Request::get(format!("http://127.0.0.1/{i}"))
                        .body(Empty::<bytes::Bytes>::new())
                        .unwrap();
                    let r = send.send_request(req).await.unwrap();
                    assert_eq!(r.status(), 200);
                    r.into_body().collect().await.unwrap();
                })
            })
            .collect();
        for r in burst {
            r.await.unwrap();
        }
        drop(send);
        let _ = driver.await;
        // Idle from here: the sweep that follows keeps the spares, the next releases them.
        let before = RELEASES.load(SeqCst);
        burst_done_tx.send(()).unwrap();
        freed_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the burst's heap freed");
        RECORDING.store(true, SeqCst);
        let start = Instant::now();
        while RELEASES.load(SeqCst) == before && start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The sweep's poll ends right after the collection; the 1 ms task's next wake records it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        RECORDING.store(false, SeqCst);
        let _ = stop_tx.send(());
        worker.join().unwrap();
        assert!(
            RELEASES.load(SeqCst) > before,
            "the idle sweep asked the allocator to give the burst's memory back"
        );
        let (collect, held) = (COLLECT_MAX_NS.load(SeqCst), HELD_MAX_NS.load(SeqCst));
        eprintln!(
            "heap {} MB, {} MB freed by the burst: mi_collect(true) {:.2} ms, the runtime held at \
             most {:.2} ms (CPU time)",
            HEAP >> 20,
            BURST_HEAP >> 20,
            ms(collect),
            ms(held)
        );
        assert!(
            Duration::from_nanos(collect) < COLLECT_BOUND,
            "mi_collect(true) took {:.2} ms of CPU",
            ms(collect)
        );
        assert!(
            Duration::from_nanos(held) < HELD_BOUND,
            "the idle sweep held the worker {:.2} ms of CPU",
            ms(held)
        );
    });
}
