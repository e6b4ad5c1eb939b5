//! The control plane's sum of its workers' figures, kept monotonic.
//!
//! Each worker slot keeps a **base** (what its earlier processes counted, and series that reset
//! inside one process) and the **last** figures its current process reported. A slot's counter
//! is `base + last`; the total is the sum over slots. So a worker that dies and comes back with
//! fresh atomics does not make a total go backwards: at its process's end (the report pipe
//! closes, [`Store::closed`]) or its successor's start ([`Store::started`]) `last` moves into
//! `base`. Inside one process a series that comes back smaller than before (a target whose group
//! a reload replaced starts at 0) or that disappears (a target removed) is folded into the base
//! the same way. What a SIGKILLed process counted after its last report (at most one report
//! period, [`super::PERIOD`]) is lost; nothing is counted twice.
//!
//! The store also keeps each running process's last drain report for the health view, and
//! tells it when they change ([`Store::drain_changed`]).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use lb_l7::generation::DrainReport;
use tokio::sync::Notify;

use super::series::{Figures, Key};

#[derive(Debug, Default)]
struct Slot {
    /// The process reporting now (the supervisor's per-slot spawn number), if it is open.
    incarnation: u64,
    open: bool,
    pid: Option<u32>,
    /// Processes started in this slot after the first.
    restarts: u64,
    /// Processes in this slot the watchdog killed (`crate::workers::watchdog`).
    watchdog_kills: u64,
    base: BTreeMap<Key, u64>,
    last: BTreeMap<Key, u64>,
    gauges: BTreeMap<Key, u64>,
    reported_at: Option<Instant>,
    /// The current process's last drain report (`None`: none yet).
    drain: Option<DrainReport>,
}

impl Slot {
    fn fold(&mut self) {
        for (k, v) in std::mem::take(&mut self.last) {
            *self.base.entry(k).or_default() += v;
        }
        self.gauges.clear();
        self.reported_at = None;
        self.drain = None;
    }

    fn counters(&self) -> BTreeMap<Key, u64> {
        let mut out = self.base.clone();
        for (k, v) in &self.last {
            *out.entry(k.clone()).or_default() += v;
        }
        out
    }
}

/// One worker slot as the views show it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerFigures {
    pub worker: usize,
    pub pid: Option<u32>,
    /// Its process reports now.
    pub live: bool,
    pub restarts: u64,
    /// Of its processes, those the watchdog killed for going silent.
    pub watchdog_kills: u64,
    /// Milliseconds since its last report (`None`: none from the current process yet).
    pub report_age_ms: Option<u64>,
    /// Since weir started, over every process in the slot.
    pub counters: BTreeMap<Key, u64>,
    /// The current process's values now (empty when none runs).
    pub gauges: BTreeMap<Key, u64>,
}

/// Shared by the supervisor (processes start and end), the report readers and the views.
#[derive(Debug, Clone)]
pub struct Store {
    slots: Arc<Mutex<Vec<Slot>>>,
    /// Signalled when [`Store::drain_reports`] may say more than before.
    drains: Arc<Notify>,
}

impl Store {
    pub fn new(workers: usize) -> Store {
        Store {
            slots: Arc::new(Mutex::new((0..workers).map(|_| Slot::default()).collect())),
            drains: Arc::default(),
        }
    }

    fn with<T>(&self, worker: usize, f: impl FnOnce(&mut Slot) -> T) -> Option<T> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.get_mut(worker).map(f)
    }

    /// Resolves once a running process's drain report changed, or a process ended, since the
    /// last call returned (one wake-up for any number of changes): what
    /// [`Store::drain_reports`] says may end a drain. A process starting cannot (it has not
    /// reported).
    pub async fn drain_changed(&self) {
        self.drains.notified().await;
    }

    /// Process `incarnation` of `worker` started: what the previous one reported is kept.
    pub fn started(&self, worker: usize, incarnation: u64, pid: Option<u32>) {
        self.with(worker, |s| {
            s.fold();
            if incarnation > 1 {
                s.restarts += 1;
            }
            s.incarnation = incarnation;
            s.open = true;
            s.pid = pid;
        });
    }

    /// A report of process `incarnation`; one of a process that is not the slot's current one
    /// (or whose pipe closed) is ignored.
    pub fn report(&self, worker: usize, incarnation: u64, f: Figures) {
        self.with(worker, |s| {
            if !s.open || s.incarnation != incarnation {
                return;
            }
            let mut last = std::mem::take(&mut s.last);
            for (k, v) in &f.counters {
                if let Some(before) = last.remove(k)
                    && *v < before
                {
                    // Reset inside the process (a replaced target group): keep what it had.
                    *s.base.entry(k.clone()).or_default() += before;
                }
            }
            // Series gone from the report (a target removed by a reload) keep their count.
            for (k, before) in last {
                *s.base.entry(k).or_default() += before;
            }
            s.last = f.counters;
            s.gauges = f.gauges;
            if s.drain != f.drain {
                s.drain = f.drain;
                self.drains.notify_one();
            }
            s.reported_at = Some(Instant::now());
        });
    }

    /// When process `incarnation` of `worker` last reported (`None`: not yet, or it is not the
    /// slot's current process).
    pub fn reported_at(&self, worker: usize, incarnation: u64) -> Option<Instant> {
        self.with(worker, |s| {
            (s.open && s.incarnation == incarnation)
                .then_some(s.reported_at)
                .flatten()
        })
        .flatten()
    }

    /// The watchdog killed `worker`'s process.
    pub fn watchdog_killed(&self, worker: usize) {
        self.with(worker, |s| s.watchdog_kills += 1);
    }

    /// The report pipe of process `incarnation` closed: its last report is final.
    pub fn closed(&self, worker: usize, incarnation: u64) {
        self.with(worker, |s| {
            if s.incarnation == incarnation && s.open {
                s.fold();
                s.open = false;
                s.pid = None;
                self.drains.notify_one();
            }
        });
    }

    /// The last drain report of every worker process running now (`None`: it has not reported
    /// yet); slots without a process are left out (what a dead process had in flight died with
    /// it). For the health view (`crate::health::table::HealthTable::finish_drained`).
    pub fn drain_reports(&self) -> Vec<Option<DrainReport>> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .iter()
            .filter(|s| s.open)
            .map(|s| s.drain.clone())
            .collect()
    }

    /// Every slot.
    pub fn workers(&self) -> Vec<WorkerFigures> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .iter()
            .enumerate()
            .map(|(worker, s)| WorkerFigures {
                worker,
                pid: s.pid,
                live: s.open,
                restarts: s.restarts,
                watchdog_kills: s.watchdog_kills,
                report_age_ms: s.reported_at.map(|t| t.elapsed().as_millis() as u64),
                counters: s.counters(),
                gauges: s.gauges.clone(),
            })
            .collect()
    }
}

/// Sums series over workers.
pub fn sum<'a>(maps: impl IntoIterator<Item = &'a BTreeMap<Key, u64>>) -> BTreeMap<Key, u64> {
    let mut out = BTreeMap::new();
    for m in maps {
        for (k, v) in m {
            *out.entry(k.clone()).or_default() += v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figs(requests: u64, target: u64, active: u64) -> Figures {
        let mut f = Figures::default();
        f.counters.insert(Key::plain("RequestCount"), requests);
        f.counters.insert(
            Key::target("RequestCountPerTarget", "g", "10.0.0.1:80"),
            target,
        );
        f.gauges.insert(Key::plain("ActiveConnectionCount"), active);
        f
    }

    fn total(s: &Store, k: &Key) -> u64 {
        let w = s.workers();
        sum(w.iter().map(|w| &w.counters))
            .get(k)
            .copied()
            .unwrap_or(0)
    }

    #[test]
    fn the_watchdog_sees_the_current_process_reports_only() {
        let s = Store::new(1);
        s.started(0, 1, Some(10));
        assert_eq!(s.reported_at(0, 1), None, "none yet");
        let before = Instant::now();
        s.report(0, 1, figs(1, 1, 0));
        assert!(s.reported_at(0, 1).is_some_and(|t| t >= before));
        assert_eq!(s.reported_at(0, 2), None, "another process's");
        s.watchdog_killed(0);
        s.closed(0, 1);
        assert_eq!(s.reported_at(0, 1), None, "ended");
        s.started(0, 2, Some(12));
        assert_eq!(s.reported_at(0, 2), None, "the restart has not reported");
        let w = &s.workers()[0];
        assert_eq!((w.restarts, w.watchdog_kills), (1, 1));
        assert_eq!(s.reported_at(7, 1), None, "no such worker");
    }

    #[test]
    fn a_restarted_worker_does_not_take_its_counts_back() {
        let s = Store::new(2);
        let req = Key::plain("RequestCount");
        s.started(0, 1, Some(10));
        s.started(1, 1, Some(11));
        s.report(0, 1, figs(5, 5, 2));
        s.report(1, 1, figs(7, 7, 1));
        assert_eq!(total(&s, &req), 12);
        // Worker 0 is SIGKILLed: its pipe closes; the restart counts from 0 again.
        s.closed(0, 1);
        assert_eq!(total(&s, &req), 12);
        let w0 = &s.workers()[0];
        assert!(!w0.live && w0.gauges.is_empty() && w0.pid.is_none());
        s.started(0, 2, Some(12));
        s.report(0, 2, figs(1, 1, 0));
        assert_eq!(total(&s, &req), 13);
        assert_eq!(s.workers()[0].restarts, 1);
        // A late report of the dead process changes nothing.
        s.report(0, 1, figs(100, 100, 9));
        assert_eq!(total(&s, &req), 13);
        // A successor starting before the old pipe closed keeps the old figures too.
        s.started(1, 2, Some(13));
        s.closed(1, 1);
        s.report(1, 2, figs(2, 2, 0));
        assert_eq!(total(&s, &req), 15);
    }

    #[test]
    fn series_that_reset_or_vanish_inside_a_process_keep_their_count() {
        let s = Store::new(1);
        let t = Key::target("RequestCountPerTarget", "g", "10.0.0.1:80");
        s.started(0, 1, None);
        s.report(0, 1, figs(10, 10, 0));
        // A reload replaced the group: the target's counter starts over.
        s.report(0, 1, figs(12, 2, 0));
        assert_eq!(total(&s, &t), 12);
        // The target is removed.
        let mut f = figs(13, 0, 0);
        f.counters.remove(&t);
        s.report(0, 1, f);
        assert_eq!(total(&s, &t), 12);
        assert_eq!(total(&s, &Key::plain("RequestCount")), 13);
    }

    #[test]
    fn drain_reports_are_the_running_processes_latest() {
        let s = Store::new(2);
        let report = |generation| DrainReport {
            generation,
            draining: vec![("g".into(), "10.0.0.1:80".parse().unwrap())],
        };
        s.started(0, 1, Some(10));
        s.started(1, 1, Some(11));
        assert_eq!(s.drain_reports(), [None, None], "none reported yet");
        let mut f = figs(1, 1, 0);
        f.drain = Some(report(2));
        s.report(0, 1, f.clone());
        assert_eq!(s.drain_reports(), [Some(report(2)), None]);
        // Worker 1 dies: left out until its successor starts, which has not reported yet.
        s.closed(1, 1);
        assert_eq!(s.drain_reports(), [Some(report(2))]);
        s.started(1, 2, Some(12));
        assert_eq!(s.drain_reports(), [Some(report(2)), None]);
        // A late report of a dead process is not taken.
        s.report(1, 1, f);
        assert_eq!(s.drain_reports(), [Some(report(2)), None]);
    }

    /// Whether a [`Store::drain_changed`] wake-up is waiting.
    fn woken(s: &Store) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        std::pin::pin!(s.drain_changed()).poll(&mut cx).is_ready()
    }

    #[test]
    fn the_health_view_is_woken_by_a_changed_drain_report_or_an_ended_process() {
        let s = Store::new(2);
        s.started(0, 1, Some(10));
        s.started(1, 1, Some(11));
        assert!(!woken(&s), "a start cannot end a drain");
        let mut f = figs(1, 1, 0);
        f.drain = Some(DrainReport {
            generation: 2,
            draining: vec![("g".into(), "10.0.0.1:80".parse().unwrap())],
        });
        s.report(0, 1, f.clone());
        assert!(woken(&s), "the first drain report");
        assert!(!woken(&s), "once");
        // The same drain report with other figures: nothing new for the health view.
        f.counters.insert(Key::plain("RequestCount"), 9);
        s.report(0, 1, f.clone());
        assert!(!woken(&s));
        f.drain = Some(DrainReport {
            generation: 2,
            draining: Vec::new(),
        });
        s.report(0, 1, f.clone());
        s.report(1, 1, f.clone());
        assert!(woken(&s), "dropped");
        assert!(!woken(&s), "two changes, one wake-up");
        // A late report of a dead process changes nothing; its end does.
        s.closed(1, 1);
        assert!(woken(&s));
        s.report(1, 1, figs(1, 1, 0));
        s.closed(1, 1);
        assert!(!woken(&s));
    }

    #[test]
    fn the_wire_line_round_trips() {
        let mut f = figs(3, 2, 1);
        f.counters
            .insert(Key::code(super::super::series::ELB_CODE, 404), 4);
        f.counters.insert(Key::listener("RequestCount", 80), 3);
        let line = f.to_line();
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        assert_eq!(Figures::from_line(line.trim_end().as_bytes()).unwrap(), f);
        f.drain = Some(DrainReport {
            generation: 3,
            draining: vec![("web".into(), "[::1]:80".parse().unwrap())],
        });
        let line = f.to_line();
        assert!(!line.trim_end().contains('\n'));
        assert_eq!(Figures::from_line(line.trim_end().as_bytes()).unwrap(), f);
    }
}
