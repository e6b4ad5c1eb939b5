//! Rate-limited logging for per-request and per-connection paths: a client (or a broken target)
//! that makes every request fail must not make a worker write a log line per request. Each call
//! site of [`warn_limited!`](crate::warn_limited) logs at most [`PER_SECOND`] events per second;
//! the first event logged after a suppressed stretch carries `suppressed = K`, the number of
//! events left out since the last one logged.
//!
//! Hand-written rather than a crate: `tracing` has no built-in limiter, and what is needed is a
//! per-call-site static of three atomics.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Events logged per call site and second.
pub const PER_SECOND: u32 = 5;

/// The state of one call site.
#[derive(Debug)]
pub struct RateLimit {
    /// The second (since the process's first limited event) the count belongs to.
    second: AtomicU64,
    count: AtomicU32,
    suppressed: AtomicU64,
}

impl RateLimit {
    pub const fn new() -> RateLimit {
        RateLimit {
            second: AtomicU64::new(0),
            count: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// An event at `second`: `Some(K)` to log it (K events were suppressed before it), `None` to
    /// drop it. Pure, for the tests; [`RateLimit::check`] passes the clock.
    pub fn check_at(&self, second: u64, per_second: u32) -> Option<u64> {
        if self.second.swap(second, Relaxed) != second {
            self.count.store(0, Relaxed);
        }
        if self.count.fetch_add(1, Relaxed) < per_second {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }

    /// [`RateLimit::check_at`] now, with [`PER_SECOND`].
    pub fn check(&self) -> Option<u64> {
        static START: OnceLock<Instant> = OnceLock::new();
        // Second 0 is the state's initial value: count from 1.
        let second = START.get_or_init(Instant::now).elapsed().as_secs() + 1;
        self.check_at(second, PER_SECOND)
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

/// `tracing::warn!` at most [`PER_SECOND`] times a second from this call site.
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::log_limit::RateLimit = $crate::log_limit::RateLimit::new();
        match LIMIT.check() {
            Some(0) => ::tracing::warn!($($arg)+),
            Some(suppressed) => ::tracing::warn!(suppressed, $($arg)+),
            None => {}
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_n_per_second_then_a_count_of_the_rest() {
        let l = RateLimit::new();
        let first: Vec<Option<u64>> = (0..10).map(|_| l.check_at(1, 3)).collect();
        assert_eq!(
            first,
            [Some(0), Some(0), Some(0)]
                .into_iter()
                .chain([None; 7])
                .collect::<Vec<_>>()
        );
        // Next second: the first event logged carries the 7 left out.
        assert_eq!(l.check_at(2, 3), Some(7));
        assert_eq!(l.check_at(2, 3), Some(0));
        assert_eq!(l.check_at(2, 3), Some(0));
        assert_eq!(l.check_at(2, 3), None);
        assert_eq!(l.check_at(5, 3), Some(1));
    }

    #[test]
    fn a_flood_logs_a_bounded_number_of_events() {
        let l = RateLimit::new();
        let logged = (0..100_000).filter(|_| l.check().is_some()).count();
        // However fast the loop, it spans a few seconds at most.
        assert!(logged <= 5 * PER_SECOND as usize, "{logged} logged");
    }
}
