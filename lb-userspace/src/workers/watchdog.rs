//! The workers' watchdog: which running worker has gone silent for too long.
//!
//! A worker reports its figures twice a second from its own single-threaded runtime
//! (`crate::metrics::push`). When the reports stop while its process lives, the runtime no
//! longer gets back to its timers — a task that never yields, a deadlock, a SIGSTOP — and
//! neither does any of its connections: its share of new connections, which the steering
//! table still gives it, queues on its sockets unanswered. The supervisor kills such a worker
//! (SIGKILL: its queued connections migrate to the others, `net.ipv4.tcp_migrate_req`) and
//! restarts it. HAProxy's watchdog does the same to a thread stuck in one task; it measures
//! the thread's CPU time, so a stopped process escapes it, while a silence in wall-clock time
//! does not.
//!
//! The decision only, without I/O (the supervisor asks the metrics store when each worker last
//! reported, and sends the signal): a worker is silent when neither a report nor its `ready`
//! came for `timeout`. One that has not said `ready` yet is judged from its start, with at
//! least [`START_GRACE`]: a worker stuck as it starts (opening a file that blocks, such as a
//! FIFO nobody reads) is never in the steering table, so it costs capacity, not connections,
//! and a slow start under load must not be taken for a hang. One guard: the reports are read by the control plane's own runtime, so
//! when that runtime itself was held up (a round much later than due: a loaded or suspended
//! machine), a worker's last report may just not have been read yet. Such a round judges no
//! one; the next one, a period later, does.

use std::time::{Duration, Instant};

/// The least time a starting worker gets before it counts as stuck.
pub const START_GRACE: Duration = Duration::from_secs(10);

/// A worker to kill: how long it has not been heard of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silent {
    pub worker: usize,
    pub silent: Duration,
}

/// A running worker as the watchdog sees it.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub worker: usize,
    /// Its last report, or its `ready` if later, or its start when it has neither.
    pub heard: Instant,
    /// It said `ready`.
    pub ready: bool,
}

#[derive(Debug)]
pub struct Watchdog {
    timeout: Duration,
    /// When the last round ran (`None`: none yet).
    last_round: Option<Instant>,
}

impl Watchdog {
    /// `None` when `seconds` is 0 (off).
    pub fn new(seconds: u64) -> Option<Watchdog> {
        (seconds > 0).then(|| Watchdog {
            timeout: Duration::from_secs(seconds),
            last_round: None,
        })
    }

    /// The time between rounds: a silent worker is killed at most this late.
    pub fn period(&self) -> Duration {
        (self.timeout / 4).max(Duration::from_millis(250))
    }

    /// When the next round is due.
    pub fn next_round(&self, now: Instant) -> Instant {
        self.last_round.map_or(now, |t| t + self.period())
    }

    /// One round at `now` over the running workers: those silent for `timeout` or longer
    /// (a starting one: [`START_GRACE`] at least).
    pub fn round(&mut self, now: Instant, workers: impl IntoIterator<Item = Seen>) -> Vec<Silent> {
        let late = self
            .last_round
            .is_some_and(|t| now.saturating_duration_since(t) > self.period() * 2);
        self.last_round = Some(now);
        if late {
            return Vec::new();
        }
        workers
            .into_iter()
            .filter_map(|w| {
                let silent = now.saturating_duration_since(w.heard);
                let limit = if w.ready {
                    self.timeout
                } else {
                    self.timeout.max(START_GRACE)
                };
                (silent >= limit).then_some(Silent {
                    worker: w.worker,
                    silent,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn ready(worker: usize, heard: Instant) -> Seen {
        Seen {
            worker,
            heard,
            ready: true,
        }
    }

    #[test]
    fn zero_is_off() {
        assert!(Watchdog::new(0).is_none());
        assert_eq!(
            Watchdog::new(10).unwrap().period(),
            Duration::from_millis(2500)
        );
        assert_eq!(
            Watchdog::new(2).unwrap().period(),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn a_worker_silent_for_the_timeout_is_named_one_heard_of_since_is_not() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(10).unwrap();
        assert_eq!(w.next_round(t0), t0, "the first round is due at once");
        assert!(w.round(t0, [ready(0, t0), ready(1, t0)]).is_empty());
        let mut now = t0;
        // Worker 1 reports every half second, worker 0 stops after its ready.
        let mut verdict = Vec::new();
        while verdict.is_empty() {
            now = w.next_round(now);
            verdict = w.round(now, [ready(0, t0), ready(1, now - S / 2)]);
        }
        assert_eq!(
            verdict,
            vec![Silent {
                worker: 0,
                silent: 10 * S
            }]
        );
        assert_eq!(now - t0, 10 * S, "named in the first round at the timeout");
    }

    #[test]
    fn a_round_far_later_than_due_judges_no_one() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(4).unwrap();
        assert!(w.round(t0, [ready(0, t0)]).is_empty());
        // The control plane itself was held up for 30 s: the reports it has not read yet are
        // not the worker's silence.
        let late = t0 + 30 * S;
        assert!(w.round(late, [ready(0, t0)]).is_empty());
        // A period later, still nothing read: now it is.
        let next = w.next_round(late);
        assert_eq!(next, late + S);
        assert_eq!(w.round(next, [ready(0, t0)]).len(), 1);
        // Rounds a little late (within twice the period) still judge.
        let mut w = Watchdog::new(4).unwrap();
        w.round(t0, []);
        assert_eq!(w.round(t0 + 2 * S, [ready(3, t0 - 5 * S)]).len(), 1);
    }

    #[test]
    fn a_starting_worker_gets_the_start_grace() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(2).unwrap();
        let starting = Seen {
            worker: 1,
            heard: t0,
            ready: false,
        };
        w.round(t0, []);
        let mut now = t0;
        let mut verdict = Vec::new();
        while verdict.is_empty() {
            now = w.next_round(now);
            verdict = w.round(now, [starting, ready(0, now)]);
        }
        assert_eq!(verdict[0].worker, 1);
        assert_eq!(now - t0, START_GRACE, "not at the 2 s timeout");
        // A longer timeout is a longer grace too.
        let mut w = Watchdog::new(30).unwrap();
        assert!(w.round(t0 + 20 * S, [starting]).is_empty());
    }
}
