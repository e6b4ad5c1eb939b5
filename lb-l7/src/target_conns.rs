//! The worker's target connections against its share of the open-file budget.
//!
//! `weir run` sizes a worker's `RLIMIT_NOFILE` for `max_connections_per_worker` client
//! connections and as many target connections (lb-userspace `workers/nofile.rs`). An HTTP/1.1
//! client holds at most one target connection at a time, but an HTTP/2 client holds one per
//! stream in flight (up to 128): two dozen HTTP/2 connections with slow responses took a
//! worker's every descriptor, so target connects failed with EMFILE (502) and new clients were
//! shed. As nginx's `worker_connections` counts upstream connections too, every open target
//! connection is counted here (one relaxed add when it is made, one sub when it closes:
//! [`Held`], owned by the connection, `upstream::UpStream`), and a new one is made only within
//! the cap the control plane derives from the descriptor budget (`WorkerOptions::
//! max_target_connections`). At the cap, an idle pooled connection is closed first (free
//! capacity); only when none is idle is the request refused (`pipeline::attempt`).
//!
//! The last quarter of the cap is kept for requests that are their client connection's only
//! one in flight ([`Need::First`]: every HTTP/1.1 request, an HTTP/2 connection's sole
//! stream); an HTTP/2 stream while others of its connection are in flight ([`Need::FanOut`])
//! may use the first three quarters. Client connections are capped apart (`accept`), so
//! however many streams a few HTTP/2 clients hold, new clients still find target connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// What a new target connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Need {
    /// The only request in flight of its client connection.
    #[default]
    First,
    /// An HTTP/2 stream while others of its connection are in flight.
    FanOut,
}

/// The open target connections of one worker (every generation shares it).
#[derive(Debug)]
pub struct TargetConns {
    open: AtomicUsize,
    cap: usize,
}

/// One open target connection, counted until dropped.
#[derive(Debug)]
pub struct Held(Arc<TargetConns>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

impl Default for TargetConns {
    /// No cap (a worker not started by `weir run`, which always gives one).
    fn default() -> Self {
        TargetConns::new(usize::MAX)
    }
}

impl TargetConns {
    /// At most `cap` target connections (at least 1).
    pub fn new(cap: usize) -> TargetConns {
        TargetConns {
            open: AtomicUsize::new(0),
            cap: cap.max(1),
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn open(&self) -> usize {
        self.open.load(Relaxed)
    }

    /// How many connections may be open for a new one of this `need` to be made.
    pub fn limit(&self, need: Need) -> usize {
        match need {
            Need::First => self.cap,
            // At least one: a cap of 1..3 leaves the fan-out one connection.
            Need::FanOut => (self.cap - self.cap / 4).max(1),
        }
    }

    /// A place for a new connection, if the count is under the limit for `need`.
    pub fn hold(self: &Arc<Self>, need: Need) -> Option<Held> {
        let limit = self.limit(need);
        self.open
            .fetch_update(Relaxed, Relaxed, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| Held(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_while_held_and_refused_at_the_cap() {
        let c = Arc::new(TargetConns::new(8));
        let held: Vec<Held> = (0..8).map(|_| c.hold(Need::First).unwrap()).collect();
        assert_eq!(c.open(), 8);
        assert!(c.hold(Need::First).is_none(), "at the cap");
        assert_eq!(c.open(), 8, "a refusal counts nothing");
        drop(held);
        assert_eq!(c.open(), 0);
        assert!(c.hold(Need::First).is_some());
        assert_eq!(c.open(), 0, "dropped at once");
    }

    #[test]
    fn the_last_quarter_is_kept_for_first_connections() {
        let c = Arc::new(TargetConns::new(8));
        let fan: Vec<Held> = std::iter::from_fn(|| c.hold(Need::FanOut)).collect();
        assert_eq!(fan.len(), 6, "three quarters fan out");
        let first: Vec<Held> = std::iter::from_fn(|| c.hold(Need::First)).collect();
        assert_eq!(first.len(), 2, "the rest for first connections");
        assert!(c.hold(Need::FanOut).is_none());
        drop(first);
        assert!(c.hold(Need::FanOut).is_none(), "still over three quarters");
    }

    #[test]
    fn small_and_missing_caps() {
        assert_eq!(TargetConns::new(0).cap(), 1);
        assert_eq!(TargetConns::new(1).limit(Need::FanOut), 1);
        assert_eq!(TargetConns::new(3).limit(Need::FanOut), 3);
        assert_eq!(TargetConns::new(4).limit(Need::FanOut), 3);
        let c = Arc::new(TargetConns::default());
        assert_eq!(c.limit(Need::FanOut), usize::MAX - usize::MAX / 4);
        let h = c.hold(Need::FanOut).unwrap();
        assert_eq!(c.open(), 1);
        drop(h);
        assert_eq!(c.open(), 0);
    }
}
