//! Keep-alive learning: when may an idle pooled connection still be used? Pure (no I/O, no
//! clock: every call is given `now`).
//!
//! The seed's 502: a target closes an idle keep-alive connection just as the load balancer
//! reuses it. Two sources tell weir when a target closes idle connections:
//!
//! - **Advertised**: the target's `Keep-Alive: timeout=N` response header (RFC 9112 appendix
//!   C.2.2's old companion of `Connection: keep-alive`, as Apache and Node send it). `max=M` is
//!   read as Apache sends it, the requests left on the connection: `max=0` means it is not
//!   pooled.
//! - **Learned** (`Learner`): the idle ages at which the target's connections were found
//!   closed: in the pool (the 1 s sweep, or a checkout's readability probe) or on reuse (the
//!   write failed, or EOF/RST came before any response byte, soon after the request went out).
//!   The learned limit is the smallest such age (a close seen later than the limit is no news);
//!   it never goes below `MIN_LIMIT`. It grows again by `GROWTH` after `RELEARN` without any
//!   close, once a reuse near the retirement age succeeded (the pool probed its limit and the
//!   target kept the connection), and is forgotten when it reaches the pool's idle timeout: a
//!   target whose timeout went up is relearned, one whose timeout went down is learned at the
//!   first close.
//!
//! From the limit (the smaller of the two), a pooled connection is retired at `KEEP` of it for
//! requests weir may retry, and at `KEEP_STRICT` of it for requests it may not (a non-idempotent
//! method or a body: the engines' `replayable`), which get a new connection rather than an older
//! pooled one.

use std::time::{Duration, Instant};

/// A pooled connection is used up to this share of the target's limit.
pub const KEEP: f64 = 0.75;
/// … and up to this share for a request that cannot be retried if the connection is dead.
pub const KEEP_STRICT: f64 = 0.5;
/// The learned limit never goes below this (the worker's coarse clock ticks every 100 ms).
pub const MIN_LIMIT: Duration = Duration::from_millis(200);
/// Without a close for this long (and with a successful reuse near the retirement age), the
/// learned limit grows by `GROWTH`.
pub const RELEARN: Duration = Duration::from_secs(10);
pub const GROWTH: f64 = 1.25;
/// A reused connection that failed later than this after it was taken is not a keep-alive
/// close (the target took the request and failed while working on it).
pub const RACE_WINDOW: Duration = Duration::from_secs(1);
/// A reuse at or above this share of the retirement age counts as a probe of the limit.
const PROBE: f64 = 0.9;
/// A change of the learned limit by at least this share of the last logged value is logged.
const LOG_CHANGE: f64 = 0.25;

/// What a target's `Keep-Alive` response header says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Advertised {
    pub timeout: Option<Duration>,
    pub max: Option<u64>,
}

impl Advertised {
    /// Parses the values of every `Keep-Alive` line (`timeout=5, max=100`; parameter names in
    /// any case, optional whitespace, quoted numbers allowed). Unknown parameters and values
    /// that are not whole numbers are ignored; the first valid occurrence counts.
    pub fn parse<'a>(values: impl Iterator<Item = &'a [u8]>) -> Advertised {
        let mut a = Advertised::default();
        for param in values.flat_map(|v| v.split(|&b| b == b',')) {
            let Some(eq) = param.iter().position(|&b| b == b'=') else {
                continue;
            };
            let name = param[..eq].trim_ascii();
            let value = param[eq + 1..].trim_ascii();
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            let Some(n) = number(value) else {
                continue;
            };
            if name.eq_ignore_ascii_case(b"timeout") && a.timeout.is_none() {
                a.timeout = Some(Duration::from_secs(n));
            } else if name.eq_ignore_ascii_case(b"max") && a.max.is_none() {
                a.max = Some(n);
            }
        }
        a
    }

    /// May the connection carry another request (by `max`)?
    pub fn allows_reuse(&self) -> bool {
        self.max != Some(0)
    }
}

/// A whole number of at most 9 digits (bigger values are no meaningful keep-alive setting).
fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// The idle age up to which a connection may be used, given its target's limit.
pub fn retire_after(limit: Duration, strict: bool) -> Duration {
    limit.mul_f64(if strict { KEEP_STRICT } else { KEEP })
}

/// What was seen of one of the target's pooled connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Found closed (FIN, reset or stray bytes) while idle in the pool, idle this long.
    ClosedIdle(Duration),
    /// Taken after `idle` in the pool, it failed (write error, or EOF/RST before any response
    /// byte) `waited` after it was taken.
    DeadOnReuse { idle: Duration, waited: Duration },
    /// Taken after `idle` in the pool, it carried a response.
    AliveOnReuse(Duration),
}

/// The learned limit moved enough to be logged: by `LOG_CHANGE` from the last value reported
/// without `grew`. Growth is reported with `grew` and does not move that reference, so the
/// steady relearning cycle (grow past the target's limit, meet a close, back) stays quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub from: Option<Duration>,
    pub to: Option<Duration>,
    /// The limit grew (`tick`) rather than being learned from a close.
    pub grew: bool,
}

/// One target's learned keep-alive limit.
#[derive(Debug, Clone)]
pub struct Learner {
    /// The pool's own idle timeout: a limit this long is no limit.
    cap: Duration,
    limit: Option<Duration>,
    /// Since when no close was seen (or the limit last grew).
    quiet_since: Option<Instant>,
    /// A reuse near the retirement age succeeded since `quiet_since`.
    probed: bool,
    /// The value last reported by a `Change`.
    logged: Option<Duration>,
}

impl Learner {
    pub fn new(cap: Duration) -> Learner {
        Learner {
            cap,
            limit: None,
            quiet_since: None,
            probed: false,
            logged: None,
        }
    }

    /// The learned limit, if any.
    pub fn limit(&self) -> Option<Duration> {
        self.limit
    }

    /// Reuses at or above this idle age probe the limit (`None`: nothing learned).
    pub fn probe_from(&self) -> Option<Duration> {
        self.limit.map(|l| retire_after(l, false).mul_f64(PROBE))
    }

    /// Takes one observation in; `Some` when the limit moved enough to be logged.
    pub fn observe(&mut self, seen: Seen, now: Instant) -> Option<Change> {
        let before = self.limit;
        match seen {
            Seen::ClosedIdle(idle) => self.closed_at(idle, now),
            Seen::DeadOnReuse { idle, waited } if waited < RACE_WINDOW => self.closed_at(idle, now),
            Seen::DeadOnReuse { .. } => {}
            Seen::AliveOnReuse(idle) => {
                if self.probe_from().is_some_and(|p| idle >= p) {
                    self.probed = true;
                }
            }
        }
        self.change(before, false)
    }

    /// The sweep's tick: grows the limit after a quiet, probed `RELEARN`.
    pub fn tick(&mut self, now: Instant) -> Option<Change> {
        let (Some(limit), Some(since)) = (self.limit, self.quiet_since) else {
            return None;
        };
        if !self.probed || now.saturating_duration_since(since) < RELEARN {
            return None;
        }
        let grown = limit.mul_f64(GROWTH);
        self.limit = (grown < self.cap).then_some(grown);
        self.quiet_since = Some(now);
        self.probed = false;
        self.change(Some(limit), true)
    }

    fn closed_at(&mut self, idle: Duration, now: Instant) {
        self.quiet_since = Some(now);
        self.probed = false;
        if idle >= self.cap {
            return;
        }
        let idle = idle.max(MIN_LIMIT);
        if self.limit.is_none_or(|l| idle < l) {
            self.limit = Some(idle);
        }
    }

    fn change(&mut self, before: Option<Duration>, grew: bool) -> Option<Change> {
        let much = match (self.logged, self.limit) {
            (None, None) => false,
            (Some(a), Some(b)) => a.abs_diff(b) >= a.mul_f64(LOG_CHANGE),
            _ => true,
        };
        if !much || before == self.limit {
            return None;
        }
        // Forgetting the limit is news even when it comes from growth.
        let grew = grew && self.limit.is_some();
        if !grew {
            self.logged = self.limit;
        }
        Some(Change {
            from: before,
            to: self.limit,
            grew,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn parse(lines: &[&str]) -> Advertised {
        Advertised::parse(lines.iter().map(|l| l.as_bytes()))
    }

    #[test]
    fn keep_alive_header() {
        let a = parse(&["timeout=5, max=100"]);
        assert_eq!(a.timeout, Some(Duration::from_secs(5)));
        assert_eq!(a.max, Some(100));
        assert!(a.allows_reuse());
        let a = parse(&["Max = 0 ", "TIMEOUT=\"2\""]);
        assert_eq!((a.timeout, a.max), (Some(Duration::from_secs(2)), Some(0)));
        assert!(!a.allows_reuse());
        // Garbage is ignored, not an error; the first valid value counts.
        for bad in [
            "timeout",
            "timeout=",
            "timeout=-1",
            "timeout=1.5",
            "timeout=9999999999",
        ] {
            assert_eq!(parse(&[bad]).timeout, None, "{bad}");
        }
        assert_eq!(
            parse(&["timeout=x, timeout=3, timeout=4"]).timeout,
            Some(Duration::from_secs(3))
        );
        assert_eq!(parse(&[]), Advertised::default());
        assert_eq!(parse(&["\u{0}=\u{ff}, ,,=,"]), Advertised::default());
    }

    #[test]
    fn retirement_margins() {
        assert_eq!(retire_after(ms(1000), false), ms(750));
        assert_eq!(retire_after(ms(1000), true), ms(500));
    }

    #[test]
    fn learns_the_smallest_close_age_and_logs_big_changes() {
        let t0 = Instant::now();
        let mut l = Learner::new(Duration::from_secs(55));
        assert_eq!(l.limit(), None);
        let c = l.observe(Seen::ClosedIdle(ms(1900)), t0);
        assert_eq!(
            c,
            Some(Change {
                from: None,
                to: Some(ms(1900)),
                grew: false,
            })
        );
        // A later close is no news; an earlier one lowers the limit.
        assert_eq!(l.observe(Seen::ClosedIdle(ms(2500)), t0), None);
        assert_eq!(l.limit(), Some(ms(1900)));
        let c = l.observe(
            Seen::DeadOnReuse {
                idle: ms(1050),
                waited: ms(1),
            },
            t0,
        );
        assert_eq!(c.map(|c| c.to), Some(Some(ms(1050))));
        // A small move is not logged again.
        assert_eq!(l.observe(Seen::ClosedIdle(ms(1000)), t0), None);
        assert_eq!(l.limit(), Some(ms(1000)));
        // Never below the floor.
        l.observe(Seen::ClosedIdle(ms(3)), t0);
        assert_eq!(l.limit(), Some(MIN_LIMIT));
    }

    #[test]
    fn slow_failures_and_ages_past_the_cap_teach_nothing() {
        let t0 = Instant::now();
        let mut l = Learner::new(Duration::from_secs(5));
        let slow = Seen::DeadOnReuse {
            idle: ms(300),
            waited: RACE_WINDOW,
        };
        assert_eq!(l.observe(slow, t0), None);
        l.observe(Seen::ClosedIdle(Duration::from_secs(5)), t0);
        assert_eq!(l.limit(), None);
    }

    #[test]
    fn relearns_upwards_only_when_probed_and_quiet() {
        let t0 = Instant::now();
        let mut l = Learner::new(Duration::from_secs(3));
        l.observe(Seen::ClosedIdle(ms(1000)), t0);
        // Quiet but not probed: no growth.
        assert_eq!(l.tick(t0 + RELEARN * 2), None);
        assert_eq!(l.limit(), Some(ms(1000)));
        // A reuse well below the retirement age is no probe.
        l.observe(Seen::AliveOnReuse(ms(100)), t0);
        assert_eq!(l.tick(t0 + RELEARN * 2), None);
        // A reuse near it is; growth waits for RELEARN after the last close.
        l.observe(Seen::AliveOnReuse(ms(700)), t0);
        let t1 = t0 + RELEARN;
        l.observe(Seen::ClosedIdle(ms(1500)), t1);
        l.observe(Seen::AliveOnReuse(ms(700)), t1);
        assert_eq!(l.tick(t1 + RELEARN - ms(1)), None);
        let c = l.tick(t1 + RELEARN).unwrap();
        assert_eq!((c.to, c.grew), (Some(ms(1250)), true));
        // Back down at the next close, near the value last reported: not reported again.
        let again = Seen::DeadOnReuse {
            idle: ms(1010),
            waited: ms(1),
        };
        assert_eq!(l.observe(again, t1 + RELEARN), None);
        assert_eq!(l.limit(), Some(ms(1010)));
        l.observe(Seen::AliveOnReuse(ms(700)), t1 + RELEARN);
        l.tick(t1 + RELEARN * 2);
        assert_eq!(l.limit(), Some(Duration::from_micros(1_262_500)));
        // Growth past the pool's own idle timeout forgets the limit.
        let mut t = t1 + RELEARN;
        for _ in 0..10 {
            if let Some(p) = l.probe_from() {
                l.observe(Seen::AliveOnReuse(p), t);
            }
            t += RELEARN;
            l.tick(t);
        }
        assert_eq!(l.limit(), None);
    }

    #[test]
    fn a_shorter_timeout_is_learned_at_once() {
        let t0 = Instant::now();
        let mut l = Learner::new(Duration::from_secs(60));
        l.observe(Seen::ClosedIdle(Duration::from_secs(30)), t0);
        let c = l.observe(
            Seen::DeadOnReuse {
                idle: ms(2000),
                waited: ms(2),
            },
            t0,
        );
        assert_eq!(c.map(|c| c.to), Some(Some(ms(2000))));
    }
}
