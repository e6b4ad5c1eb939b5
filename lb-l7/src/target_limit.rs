//! Per-target concurrency cap and queue (HAProxy's `maxconn`, `maxqueue` and `timeout queue`;
//! `[target_group.target_limits]`): at most `max_requests` requests in flight to a target (a
//! slot is held from before the connection is made until the response body ends); a request
//! that finds its target at the cap waits in the target's FIFO queue, at most `max_queued`
//! long, for at most the queue timeout, else gets 503 (`TargetQueueFull`,
//! `TargetQueueTimeout`).
//!
//! Queues are per target, as HAProxy's server queues: selection already skips targets at their
//! cap while another of the tier has room (`select::eligible`), so a request only queues when
//! every target it may go to is full (or its sticky target is). Per worker, as all of a
//! worker's target state. The queue is tokio's `Semaphore`, which is FIFO: a freed slot goes
//! to the longest waiter, never to a newcomer.

use crate::metrics::TargetCounters;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// weir's `error_reason` when a target's queue is full.
pub const QUEUE_FULL: &str = "TargetQueueFull";
/// weir's `error_reason` when a request waited the whole queue timeout.
pub const QUEUE_TIMEOUT: &str = "TargetQueueTimeout";

#[derive(Debug)]
pub struct Limit {
    slots: Arc<Semaphore>,
    max_queued: u32,
    timeout: Duration,
    waiting: AtomicU32,
}

/// A slot at a capped target, held while the request is in flight.
pub type Slot = OwnedSemaphorePermit;

impl Limit {
    pub fn new(max_requests: u32, max_queued: u32, timeout: Duration) -> Limit {
        Limit {
            slots: Arc::new(Semaphore::new(max_requests as usize)),
            max_queued,
            timeout,
            waiting: AtomicU32::new(0),
        }
    }

    /// At its cap: no free slot (queued requests take freed ones first).
    pub fn full(&self) -> bool {
        self.slots.available_permits() == 0
    }

    /// Requests waiting now.
    pub fn queue_length(&self) -> u32 {
        self.waiting.load(Relaxed)
    }

    /// A slot now, or after waiting in the queue; the reason when refused. Counts requests
    /// queued and refused on `c`.
    pub async fn admit(&self, c: &TargetCounters) -> Result<Slot, &'static str> {
        if let Ok(s) = self.slots.clone().try_acquire_owned() {
            return Ok(s);
        }
        if self.timeout.is_zero() || self.waiting.load(Relaxed) >= self.max_queued {
            c.queue_rejected.fetch_add(1, Relaxed);
            return Err(QUEUE_FULL);
        }
        c.queued.fetch_add(1, Relaxed);
        let _waiting = Waiting::new(&self.waiting);
        match tokio::time::timeout(self.timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(s)) => Ok(s),
            // The semaphore is never closed; a timeout is the queue timeout.
            Ok(Err(_)) | Err(_) => {
                c.queue_rejected.fetch_add(1, Relaxed);
                Err(QUEUE_TIMEOUT)
            }
        }
    }
}

/// Counts a waiter until dropped (also when the client goes away while it waits).
struct Waiting<'a>(&'a AtomicU32);
impl<'a> Waiting<'a> {
    fn new(n: &'a AtomicU32) -> Waiting<'a> {
        n.fetch_add(1, Relaxed);
        Waiting(n)
    }
}
impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_target_queues_in_order_then_times_out() {
        let c = TargetCounters::default();
        let l = Arc::new(Limit::new(1, 2, Duration::from_millis(200)));
        let held = l.admit(&c).await.expect("first slot");
        assert!(l.full());
        let (l1, l2) = (l.clone(), l.clone());
        let first = tokio::spawn(async move {
            let c = TargetCounters::default();
            l1.admit(&c).await.map(|_| ())
        });
        tokio::task::yield_now().await;
        let second = tokio::spawn(async move {
            let c = TargetCounters::default();
            let r = l2.admit(&c).await;
            (r.is_ok(), c.queue_rejected.load(Relaxed))
        });
        tokio::task::yield_now().await;
        assert_eq!(l.queue_length(), 2);
        assert_eq!(l.admit(&c).await.err(), Some(QUEUE_FULL), "queue full");
        drop(held);
        assert_eq!(
            first.await.unwrap(),
            Ok(()),
            "the first waiter gets the slot"
        );
        // The first waiter dropped its slot at once, so the second gets it too.
        assert_eq!(second.await.unwrap(), (true, 0));
        let held = l.admit(&c).await.expect("free again");
        let t0 = tokio::time::Instant::now();
        assert_eq!(l.admit(&c).await.err(), Some(QUEUE_TIMEOUT));
        assert!(t0.elapsed() >= Duration::from_millis(200));
        assert_eq!(l.queue_length(), 0);
        assert_eq!(c.queued.load(Relaxed), 1);
        assert_eq!(c.queue_rejected.load(Relaxed), 2);
        drop(held);
    }

    #[tokio::test]
    async fn zero_timeout_never_waits() {
        let c = TargetCounters::default();
        let l = Limit::new(1, 10, Duration::ZERO);
        let _held = l.admit(&c).await.expect("slot");
        assert_eq!(l.admit(&c).await.err(), Some(QUEUE_FULL));
    }
}
