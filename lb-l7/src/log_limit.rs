//! Rate-limited logging for per-request and per-connection paths: a client (or a broken target)
//! that makes every request fail must not make a worker write a log line per request. Each call
//! site of [`warn_limited!`](crate::warn_limited) logs at most [`PER_SECOND`] events per second;
//! the first event logged after a suppressed stretch carries `suppressed = K`, the number of
//! events left out since the last one logged.
//!
//! A stretch that nothing follows (a flood that stops) would keep its count forever: a call site
//! that suppresses an event registers itself once, and [`flush_ended`] (the worker's sweep, once
//! a second) reports each registered site whose last event is in an earlier second, with the
//! call site's message, `suppressed = K` and no other field; [`flush_all`] does so for every site
//! as the worker exits. Each count is reported once, by whichever of the two ways reaches it
//! first (`suppressed` is swapped out).
//!
//! Hand-written rather than a crate: `tracing` has no built-in limiter, and what is needed is a
//! per-call-site static of a few atomics.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Events logged per call site and second.
pub const PER_SECOND: u32 = 5;

/// The state of one call site.
#[derive(Debug)]
pub struct RateLimit {
    /// The call site's message, for a count reported without an event (`flush_ended`).
    message: &'static str,
    /// The second (since the process's first limited event) the count belongs to.
    second: AtomicU64,
    count: AtomicU32,
    suppressed: AtomicU64,
    /// In `SUPPRESSING` already.
    registered: AtomicBool,
}

/// Call sites that have suppressed an event: the ones whose count a flush may have to report.
/// Each is a `static` (the macro's), registered at most once: the list is bounded by the number
/// of call sites.
static SUPPRESSING: Mutex<Vec<&'static RateLimit>> = Mutex::new(Vec::new());

impl RateLimit {
    pub const fn new(message: &'static str) -> RateLimit {
        RateLimit {
            message,
            second: AtomicU64::new(0),
            count: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
            registered: AtomicBool::new(false),
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

    /// [`RateLimit::check_at`] now, with [`PER_SECOND`]; a site that drops an event is
    /// registered for the flushes.
    pub fn check(&'static self) -> Option<u64> {
        let verdict = self.check_at(now_second(), PER_SECOND);
        if verdict.is_none()
            && !self.registered.load(Relaxed)
            && !self.registered.swap(true, Relaxed)
        {
            SUPPRESSING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self);
        }
        verdict
    }

    /// The count to report for this site at `second` if its stretch has ended (its last event
    /// is in an earlier second, or `all`), taking it; 0 when there is none.
    fn take_ended(&self, second: u64, all: bool) -> u64 {
        if !all && self.second.load(Relaxed) >= second {
            // Events this second: the next one logged carries the count.
            return 0;
        }
        self.suppressed.swap(0, Relaxed)
    }
}

/// Seconds since the process's first limited event, from 1 (0 is the state's initial value).
fn now_second() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs() + 1
}

/// Reports the counts of suppressed stretches nothing logged since, of sites quiet this second.
pub fn flush_ended() {
    flush(now_second(), false, &mut report);
}

/// Reports every count still held: the worker exits.
pub fn flush_all() {
    flush(now_second(), true, &mut report);
}

fn flush(second: u64, all: bool, out: &mut dyn FnMut(&'static RateLimit, u64)) {
    let sites: Vec<&'static RateLimit> = SUPPRESSING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for site in sites {
        match site.take_ended(second, all) {
            0 => {}
            k => out(site, k),
        }
    }
}

fn report(site: &RateLimit, suppressed: u64) {
    tracing::warn!(suppressed, "{}", site.message);
}

/// The last token of a macro's arguments if it is a literal (the message, by convention), for
/// a count reported without its event; a fixed text otherwise.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_limit_message {
    ($msg:literal) => {
        $msg
    };
    ($last:tt) => {
        "rate-limited warning"
    };
    ($head:tt $($rest:tt)+) => {
        $crate::__log_limit_message!($($rest)+)
    };
}

/// `tracing::warn!` at most [`PER_SECOND`] times a second from this call site.
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::log_limit::RateLimit =
            $crate::log_limit::RateLimit::new($crate::__log_limit_message!($($arg)+));
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
        let l = RateLimit::new("test");
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
        static L: RateLimit = RateLimit::new("test");
        let logged = (0..100_000).filter(|_| L.check().is_some()).count();
        // However fast the loop, it spans a few seconds at most.
        assert!(logged <= 5 * PER_SECOND as usize, "{logged} logged");
    }

    #[test]
    fn an_ended_stretch_is_taken_once_and_not_while_its_second_lasts() {
        let l = RateLimit::new("test");
        for _ in 0..10 {
            l.check_at(1, 3);
        }
        // Its second lasts: an event in it may still be logged and carry the count.
        assert_eq!(l.take_ended(1, false), 0);
        assert_eq!(l.take_ended(2, false), 7);
        assert_eq!(l.take_ended(3, false), 0);
        // Reported once: the next event logged carries nothing.
        assert_eq!(l.check_at(3, 3), Some(0));
        // The exit's flush takes a count of the current second too.
        for _ in 0..5 {
            l.check_at(3, 3);
        }
        assert_eq!(l.take_ended(3, true), 3);
    }

    #[test]
    fn a_flush_reports_what_a_site_suppressed_and_nothing_twice() {
        static L: RateLimit = RateLimit::new("a site");
        let logged: u64 = (0..100).map(|_| u64::from(L.check().is_some())).sum();
        let mut reported = Vec::new();
        let mut collect = |site: &'static RateLimit, k| {
            if std::ptr::eq(site, &L) {
                reported.push((site.message, k))
            }
        };
        // A second after every event: the stretch has ended.
        flush(u64::MAX, false, &mut collect);
        flush(u64::MAX, false, &mut collect);
        assert_eq!(reported.len(), 1, "{reported:?}");
        let (message, suppressed) = reported[0];
        assert_eq!(message, "a site");
        assert_eq!(logged + suppressed, 100);
    }

    #[test]
    fn the_message_is_the_last_literal() {
        // Only the tokens count: the fields' names need not exist.
        assert_eq!(
            crate::__log_limit_message!(a = 1, b = %x, "the message"),
            "the message"
        );
        assert_eq!(crate::__log_limit_message!("only"), "only");
        assert_eq!(
            crate::__log_limit_message!("x {}", x),
            "rate-limited warning"
        );
    }
}
