//! Targets that left the configuration (a reload, a deregistration) and still finish their
//! requests: every generation of a worker shares one `Draining` (`crate::generation` adds to
//! it, the worker's tick empties it: every `crate::idle::TICK`, so a target leaves the list at
//! most 100 ms after its last request ended). Its own module so the generation
//! (`pipeline::Shared`) can hold it without importing `crate::generation`, which builds
//! generations.
//!
//! The control plane learns what is left from [`DrainReport`]s (the worker's metrics report
//! carries one, `crate::generation::drain_report`): its health view ends a deregistered
//! target's `draining` once every worker has dropped it, as ALB's ends early when nothing is in
//! flight. [`Draining::changed`] tells the reporter when the report changes (a target dropped,
//! a new generation), so it need not wait for its period.

use crate::idle::IdleDeadlines;
use crate::target::TargetRt;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Targets that left the configuration and may still have requests in flight.
#[derive(Debug, Default)]
pub struct Draining {
    targets: Mutex<Vec<Leaving>>,
    /// Targets dropped at their deregistration deadline with requests still in flight.
    pub expired_with_requests: AtomicU64,
    /// The requests they still had.
    pub expired_requests: AtomicU64,
    /// The worker's table the requests waiting for a response head arm their deadline on:
    /// poked when a target expires, so its waiters look at `Expiry` (`crate::expiry`).
    timers: Arc<IdleDeadlines>,
    /// Signalled when this worker's [`DrainReport`] changes ([`Draining::changed`]).
    news: Notify,
}

/// What a worker tells the control plane about its draining targets: the generation it runs
/// and every target still in its [`Draining`] list (with requests in flight, or not yet seen
/// idle by the tick). A target the control plane shows `draining` since generation `G` and
/// that a report of generation `G` or later does not list is done in that worker: the worker
/// dropped it, or never had it (it started after `G`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReport {
    pub generation: u64,
    /// `(group, target)`, sorted, without repeats.
    pub draining: Vec<(String, SocketAddr)>,
}

impl DrainReport {
    /// Whether this report says the worker is done with `target` of `group`, which left in
    /// generation `since`: a report of an earlier generation says nothing about it.
    pub fn done_with(&self, group: &str, target: SocketAddr, since: u64) -> bool {
        self.generation >= since
            && !self
                .draining
                .iter()
                .any(|(g, t)| *t == target && g == group)
    }
}

#[derive(Debug)]
struct Leaving {
    group: String,
    target: Arc<TargetRt>,
    /// `None`: in force in the newest generation (kept in a rebuilt group, or registered
    /// again since it left): no deadline. Set by [`Draining::add`], then by
    /// [`Draining::follow`] at each later generation.
    deadline: Option<Instant>,
    /// The rebuilt group's target took this one's pool over (`GroupRt::new`): its idle
    /// connections are the new target's, not closed when this one is done.
    pool_carried: bool,
}

impl Draining {
    /// Expiries wake the waiters armed on `timers` (the worker's `Shared::timers`).
    pub fn new(timers: Arc<IdleDeadlines>) -> Draining {
        Draining {
            timers,
            ..Draining::default()
        }
    }

    /// `pool_carried`: a target of the rebuilt group shares `target`'s pool.
    pub(crate) fn add(
        &self,
        group: &str,
        target: Arc<TargetRt>,
        deadline: Option<Instant>,
        pool_carried: bool,
    ) {
        if let Ok(mut v) = self.targets.lock() {
            v.push(Leaving {
                group: group.to_string(),
                target,
                deadline,
                pool_carried,
            });
        }
    }

    /// A generation is about to be linked: the deadline of every target in the list follows
    /// whether that generation has its address in its group (`in_force`). ALB's
    /// register/deregister semantics, per `(group, address)`, not per runtime state:
    /// - in force: no deadline. A target registered again (or its group back) while it
    ///   drains is not deregistered any more (ALB: registering a draining target cancels its
    ///   deregistration), so its old runtime states wait for their requests as a kept
    ///   target's do; a deadline left on them would cut them with 502s while the target is
    ///   registered and serving.
    /// - not in force and without a deadline (it was kept, or registered again, until this
    ///   generation): deregistered now, so its drain gets the group's full delay (`delay`,
    ///   from the generation it leaves) from `now`, not an earlier drain's deadline (ALB: a
    ///   new deregistration, a new delay).
    /// - not in force with a deadline: still the drain it was, the deadline stays.
    pub(crate) fn follow(
        &self,
        now: Instant,
        in_force: impl Fn(&str, SocketAddr) -> bool,
        delay: impl Fn(&str) -> Duration,
    ) {
        let Ok(mut v) = self.targets.lock() else {
            return;
        };
        for l in v.iter_mut() {
            if in_force(&l.group, l.target.addr) {
                l.deadline = None;
            } else if l.deadline.is_none() {
                l.deadline = Some(now + delay(&l.group));
            }
        }
    }

    /// Resolves once this worker's [`DrainReport`] may have changed since the last call
    /// returned: a target left the list, or a new generation was linked
    /// ([`Draining::report_changed`]). A change with nobody waiting is kept for the next
    /// call (one, however many changes).
    pub async fn changed(&self) {
        self.news.notified().await;
    }

    /// The report changed in a way [`Draining::tick`] does not see: a new generation (its
    /// targets that left were [`Draining::add`]ed before it was linked).
    pub(crate) fn report_changed(&self) {
        self.news.notify_one();
    }

    /// Targets still draining.
    pub fn len(&self) -> usize {
        self.targets.lock().map_or(0, |v| v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The targets still draining, `(group, target)`, sorted, without repeats (a target may
    /// drain from several generations at once).
    pub fn targets(&self) -> Vec<(String, SocketAddr)> {
        let mut out: Vec<(String, SocketAddr)> = self.targets.lock().map_or_else(
            |_| Vec::new(),
            |v| v.iter().map(|l| (l.group.clone(), l.target.addr)).collect(),
        );
        out.sort();
        out.dedup();
        out
    }

    /// The worker's tick (every `crate::idle::TICK`): a target with nothing in flight is
    /// done; one past its deadline is dropped whatever it still has (counted), the requests
    /// waiting for its response answered 502 ([`crate::expiry`]). Either way its idle
    /// connections close, and [`Draining::changed`] resolves.
    pub fn tick(&self, now: Instant) {
        let Ok(mut v) = self.targets.lock() else {
            return;
        };
        if v.is_empty() {
            return;
        }
        let before = v.len();
        let mut expired = false;
        v.retain(|l| {
            let t = &l.target;
            let busy = t.busy();
            if busy > 0 && l.deadline.is_none_or(|d| now < d) {
                return true;
            }
            if busy > 0 {
                self.expired_with_requests.fetch_add(1, Relaxed);
                self.expired_requests.fetch_add(busy, Relaxed);
                t.expiry.expire();
                expired = true;
                tracing::warn!(group = %l.group, target = %t.addr, in_flight = busy,
                    "deregistration delay over with requests in flight: those waiting for a response get a 502");
            } else {
                tracing::debug!(group = %l.group, target = %t.addr, "drained");
            }
            if !l.pool_carried {
                t.pool.clear();
            }
            false
        });
        let dropped = v.len() != before;
        drop(v);
        if expired {
            self.timers.poke_all();
        }
        if dropped {
            self.news.notify_one();
        }
    }

    /// Once a second: the idle connections of the targets still draining that their target
    /// closed or that idled out go (`crate::pool::Pool::sweep`).
    pub fn sweep(&self, now: Instant) {
        if let Ok(v) = self.targets.lock() {
            for l in v.iter() {
                l.target.pool.sweep(now);
            }
        }
    }
}
