//! Passive health: Envoy's outlier detection (consecutive errors). A target that answers
//! `consecutive_errors` times in a row with an error (a 5xx answer, a refused or failed
//! connection, a reset or close before the response, a timeout, a malformed response) is
//! ejected: not picked for `base_ejection_time × ejections` (capped at `max_ejection_time`),
//! its number of ejections growing each time and shrinking by one for every
//! `base_ejection_time` it then spends un-ejected. At most `max_ejection_percent` of the
//! group's targets are ejected at once, but always at least one (as Envoy). A passing active
//! health check ends an ejection early (`successful_active_health_check_uneject_host`).
//!
//! This is the worker's own view: each worker process counts the errors it saw and ejects on
//! its own (as each Envoy worker thread's view is its cluster's; ALB's active checks are the
//! shared verdict). Anomaly mitigation (`anomaly.rs`) is a different concern: it compares
//! error *ratios* across a weighted_random group and only lowers weights; this module takes a
//! target out entirely on a run of errors, for every algorithm.
//!
//! Pure: the caller passes the time; `target.rs` keeps a `Detector` per group and mirrors each
//! verdict into an atomic flag that selection reads.

use std::time::{Duration, Instant};

/// The group's settings (`[target_group.outlier_detection]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub consecutive_errors: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    pub max_ejection_percent: u32,
}

/// One target's ejection record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Host {
    /// Ejected until then.
    until: Option<Instant>,
    /// Ejections that count towards the next one's length.
    ejections: u32,
    /// The last time `ejections` was lowered (or the last ejection ended).
    decayed_at: Option<Instant>,
}

/// The ejection records of one group's targets.
#[derive(Debug, Clone)]
pub struct Detector {
    s: Settings,
    hosts: Vec<Host>,
}

impl Detector {
    pub fn new(targets: usize, s: Settings) -> Detector {
        Detector {
            s,
            hosts: vec![Host::default(); targets],
        }
    }

    pub fn settings(&self) -> Settings {
        self.s
    }

    /// How many targets may be ejected at once.
    pub fn max_ejected(&self) -> usize {
        (self.hosts.len() * self.s.max_ejection_percent as usize / 100).max(1)
    }

    pub fn ejected_count(&self) -> usize {
        self.hosts.iter().filter(|h| h.until.is_some()).count()
    }

    pub fn is_ejected(&self, i: usize) -> bool {
        self.hosts.get(i).is_some_and(|h| h.until.is_some())
    }

    /// Target `i` reached `consecutive_errors`: ejects it unless it already is or the group's
    /// share is used up. Returns how long it is out.
    pub fn eject(&mut self, i: usize, now: Instant) -> Option<Duration> {
        if self.is_ejected(i) || self.ejected_count() >= self.max_ejected() {
            return None;
        }
        let (base, max) = (
            self.s.base_ejection,
            self.s.max_ejection.max(self.s.base_ejection),
        );
        let h = self.hosts.get_mut(i)?;
        h.ejections = h.ejections.saturating_add(1);
        let out = base.saturating_mul(h.ejections).min(max);
        h.until = Some(now + out);
        Some(out)
    }

    /// Ends target `i`'s ejection now (an active check passed). Returns whether it was out.
    pub fn uneject(&mut self, i: usize, now: Instant) -> bool {
        let Some(h) = self.hosts.get_mut(i) else {
            return false;
        };
        let was = h.until.take().is_some();
        if was {
            h.decayed_at = Some(now);
        }
        was
    }

    /// Time passes: ejections whose time is up end (their indexes are returned), and a target
    /// un-ejected for a whole `base_ejection` has one ejection forgiven.
    pub fn tick(&mut self, now: Instant) -> Vec<usize> {
        let base = self.s.base_ejection;
        let mut back = Vec::new();
        for (i, h) in self.hosts.iter_mut().enumerate() {
            match h.until {
                Some(t) if now >= t => {
                    h.until = None;
                    h.decayed_at = Some(now);
                    back.push(i);
                }
                Some(_) => {}
                None => {
                    if h.ejections > 0
                        && let Some(d) = h.decayed_at
                        && now.saturating_duration_since(d) >= base
                    {
                        h.ejections -= 1;
                        h.decayed_at = Some(now);
                    }
                }
            }
        }
        back
    }

    /// Target `i`'s ejections counted towards the next one's length.
    pub fn ejections(&self, i: usize) -> u32 {
        self.hosts.get(i).map_or(0, |h| h.ejections)
    }

    /// Target `i` takes over target `j`'s record in `from` (the same target in the group's
    /// previous build): an ejection goes on, its count stays.
    pub fn carry(&mut self, i: usize, from: &Detector, j: usize) {
        if let (Some(h), Some(f)) = (self.hosts.get_mut(i), from.hosts.get(j)) {
            *h = *f;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pct: u32) -> Settings {
        Settings {
            consecutive_errors: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(75),
            max_ejection_percent: pct,
        }
    }

    #[test]
    fn ejection_grows_with_each_ejection_and_is_capped() {
        let t0 = Instant::now();
        let mut d = Detector::new(10, settings(10));
        assert_eq!(d.eject(3, t0), Some(Duration::from_secs(30)));
        assert!(d.is_ejected(3));
        assert_eq!(d.eject(3, t0), None, "already out");
        assert!(d.tick(t0 + Duration::from_secs(29)).is_empty());
        assert_eq!(d.tick(t0 + Duration::from_secs(30)), vec![3]);
        let t1 = t0 + Duration::from_secs(31);
        assert_eq!(d.eject(3, t1), Some(Duration::from_secs(60)));
        d.tick(t1 + Duration::from_secs(60));
        let t2 = t1 + Duration::from_secs(61);
        assert_eq!(d.eject(3, t2), Some(Duration::from_secs(75)), "capped");
    }

    #[test]
    fn ejections_are_forgiven_one_per_base_time() {
        let t0 = Instant::now();
        let mut d = Detector::new(10, settings(10));
        d.eject(1, t0);
        d.tick(t0 + Duration::from_secs(30));
        d.eject(1, t0 + Duration::from_secs(30));
        d.tick(t0 + Duration::from_secs(90));
        assert_eq!(d.ejections(1), 2);
        d.tick(t0 + Duration::from_secs(119));
        assert_eq!(d.ejections(1), 2);
        d.tick(t0 + Duration::from_secs(120));
        assert_eq!(d.ejections(1), 1);
        d.tick(t0 + Duration::from_secs(150));
        assert_eq!(d.ejections(1), 0);
        let t = t0 + Duration::from_secs(151);
        assert_eq!(d.eject(1, t), Some(Duration::from_secs(30)));
    }

    #[test]
    fn the_share_is_capped_but_one_is_always_allowed() {
        let t0 = Instant::now();
        let mut d = Detector::new(3, settings(10));
        assert_eq!(d.max_ejected(), 1);
        assert!(d.eject(0, t0).is_some());
        assert_eq!(d.eject(1, t0), None, "10 % of 3 targets: one at a time");
        let mut d = Detector::new(20, settings(10));
        assert!(d.eject(0, t0).is_some() && d.eject(1, t0).is_some());
        assert_eq!(d.eject(2, t0), None);
        assert_eq!(d.ejected_count(), 2);
        let mut d = Detector::new(4, settings(100));
        assert!((0..4).all(|i| d.eject(i, t0).is_some()));
    }

    #[test]
    fn an_active_check_ends_an_ejection_early() {
        let t0 = Instant::now();
        let mut d = Detector::new(2, settings(50));
        d.eject(0, t0);
        assert!(d.uneject(0, t0 + Duration::from_secs(1)));
        assert!(!d.is_ejected(0));
        assert!(!d.uneject(0, t0 + Duration::from_secs(2)));
        assert!(d.tick(t0 + Duration::from_secs(20)).is_empty());
        // The count stays: the next ejection is longer.
        assert_eq!(
            d.eject(0, t0 + Duration::from_secs(21)),
            Some(Duration::from_secs(60))
        );
    }
}
