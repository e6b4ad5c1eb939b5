//! What a group's targets share about their health, indexed by target: their ALB state (set by
//! the control plane's health checker through `TargetRt::set_state`), passive health
//! (`outlier`: consecutive errors and ejections) and slow start (`slow_start`: when a target's
//! ramp began). Kept per group because both ejection (the group's share) and slow start's
//! entry (another settled target) depend on the siblings. Per worker: each worker process has
//! its own copy and its own view of errors.

use crate::config::{L7Config, TargetGroup};
use crate::outlier::{self, Detector};
use crate::slow_start;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// ALB's target states. The control plane's health checker moves targets between them; a
/// target starts `Healthy` unless the health checker says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TargetState {
    Initial = 0,
    Healthy = 1,
    Unhealthy = 2,
    Unused = 3,
    Draining = 4,
    Unavailable = 5,
}

impl TargetState {
    fn from_u8(v: u8) -> TargetState {
        match v {
            0 => TargetState::Initial,
            1 => TargetState::Healthy,
            2 => TargetState::Unhealthy,
            3 => TargetState::Unused,
            4 => TargetState::Draining,
            _ => TargetState::Unavailable,
        }
    }
    /// The state ALB calls `name` (what [`TargetState::name`] gives).
    pub fn from_name(name: &str) -> Option<TargetState> {
        (0..=5).map(TargetState::from_u8).find(|s| s.name() == name)
    }
    pub fn name(self) -> &'static str {
        match self {
            TargetState::Initial => "initial",
            TargetState::Healthy => "healthy",
            TargetState::Unhealthy => "unhealthy",
            TargetState::Unused => "unused",
            TargetState::Draining => "draining",
            TargetState::Unavailable => "unavailable",
        }
    }
}

/// How a configuration has the control plane (`weir run`) check a group's targets. Both sides
/// decide a target's state at a new generation from it with [`state_at_generation`]: the
/// control plane's health table (`lb-userspace`'s `HealthTable::rebuild`) and every worker's
/// new generation, so a worker never routes by a state the checker is about to replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// No listener's action forwards to the group: `unused`, not checked.
    NotInUse,
    /// `health_check.enabled = false`: `healthy`, not checked.
    Disabled,
    /// Checked.
    Enabled,
}

impl Checks {
    /// How `g` is checked, `in_use` being [`groups_in_use`] of its configuration.
    pub fn of(g: &TargetGroup, in_use: &HashSet<String>) -> Checks {
        match (in_use.contains(&g.name), g.health_check.enabled) {
            (false, _) => Checks::NotInUse,
            (true, false) => Checks::Disabled,
            (true, true) => Checks::Enabled,
        }
    }
}

/// The groups a listener's action forwards to in `cfg` (the others are `unused`).
pub fn groups_in_use(cfg: &L7Config) -> HashSet<String> {
    cfg.listener
        .iter()
        .flat_map(|l| std::iter::once(&l.default_action).chain(l.rule.iter().map(|r| &r.action)))
        .flat_map(|a| a.forward_groups())
        .map(|g| g.name)
        .collect()
}

/// The state a target starts a generation in, under a control plane that checks health.
/// `before`: how its group was checked in the generation before, when the target was in the
/// group then (`None`: registered now, or its group is new). `None` returned: it keeps the state
/// it had — a target that stays in a group checked before and now, whatever check setting
/// changed (ALB's `ModifyTargetGroup` keeps the targets' health; the new settings apply from
/// the next check). Otherwise: `unused` for a group no listener forwards to, `healthy` with
/// checks disabled, `initial` for a checked target with no verdict yet (registered now, or its
/// group checked only from now on: its `healthy` with checks off was never a check's verdict,
/// and `initial` routes no worse — every target takes requests while none has passed — while
/// a failing target leaves the rotation as soon as another passes its first check).
pub fn state_at_generation(before: Option<Checks>, now: Checks) -> Option<TargetState> {
    match (before, now) {
        (_, Checks::NotInUse) => Some(TargetState::Unused),
        (_, Checks::Disabled) => Some(TargetState::Healthy),
        (Some(Checks::Enabled), Checks::Enabled) => None,
        (_, Checks::Enabled) => Some(TargetState::Initial),
    }
}

/// No slow start running (`ramp_from`).
const NO_RAMP: u64 = u64::MAX;

#[derive(Debug)]
pub struct GroupHealth {
    group: String,
    addrs: Vec<SocketAddr>,
    states: Vec<AtomicU8>,
    /// Passive health's verdict, mirrored from `outlier` for lock-free reads.
    ejected: Vec<AtomicBool>,
    consecutive: Vec<AtomicU32>,
    /// Milliseconds after `epoch` a target's slow start began, or `NO_RAMP`.
    ramp_from: Vec<AtomicU64>,
    /// Registered with the group at its start and not yet out of `initial`: its first checks
    /// passing start no slow start (ALB: targets registered together into a new group).
    first: Vec<AtomicBool>,
    epoch: Instant,
    slow_start: Duration,
    /// `None`: outlier detection is off.
    outlier: Option<Mutex<Detector>>,
    /// `consecutive_errors`, outside the lock: only a run this long takes it.
    threshold: u32,
    uneject_on_check: bool,
}

impl GroupHealth {
    /// The health of `g`'s targets at `addrs`. `before`: the health of the group this one
    /// replaces (`GroupRt::new`): a target it had goes on as it was (state, ejection, errors
    /// in a row, slow start and its ramp); a target it did not have was registered at run
    /// time, so passing its first checks may start a slow start (ALB: only targets registered
    /// together into a new group start without one) — unless no target of `before` was
    /// healthy: targets added to a group that serves nothing yet (discovery's first answer at
    /// start) are registered together into it, as into a new group.
    pub fn new(
        g: &TargetGroup,
        addrs: Vec<SocketAddr>,
        before: Option<&GroupHealth>,
    ) -> GroupHealth {
        let h = GroupHealth::fresh(g, addrs, before.map(|b| b.epoch));
        let Some(b) = before else {
            return h;
        };
        let serving = (0..b.addrs.len()).any(|j| b.state(j) == TargetState::Healthy);
        for (i, addr) in h.addrs.iter().enumerate() {
            let Some(j) = b.addrs.iter().position(|a| a == addr) else {
                h.first[i].store(!serving, Relaxed);
                continue;
            };
            let copy = |to: &AtomicU64, from: &AtomicU64| to.store(from.load(Relaxed), Relaxed);
            h.states[i].store(b.states[j].load(Relaxed), Relaxed);
            copy(&h.ramp_from[i], &b.ramp_from[j]);
            h.first[i].store(b.first[j].load(Relaxed), Relaxed);
            // Passive health goes on only where it is still on: an ejection carried into a
            // group without it would never end.
            if let (Some(to), Some(from)) = (&h.outlier, &b.outlier)
                && let (Ok(mut to), Ok(from)) = (to.lock(), from.lock())
            {
                to.carry(i, &from, j);
                h.ejected[i].store(b.ejected[j].load(Relaxed), Relaxed);
                h.consecutive[i].store(b.consecutive[j].load(Relaxed), Relaxed);
            }
        }
        h
    }

    /// Every target healthy at full weight, nothing known of it; `epoch`: the clock slow
    /// start's ramps count from (the previous build's, so its ramps carry over as they are).
    fn fresh(g: &TargetGroup, addrs: Vec<SocketAddr>, epoch: Option<Instant>) -> GroupHealth {
        let n = addrs.len();
        let o = &g.outlier_detection;
        let settings = outlier::Settings {
            consecutive_errors: o.consecutive_errors.max(1),
            base_ejection: Duration::from_secs(o.base_ejection_time_seconds),
            max_ejection: Duration::from_secs(o.max_ejection_time_seconds),
            max_ejection_percent: o.max_ejection_percent,
        };
        GroupHealth {
            group: g.name.clone(),
            addrs,
            states: (0..n)
                .map(|_| AtomicU8::new(TargetState::Healthy as u8))
                .collect(),
            ejected: (0..n).map(|_| AtomicBool::new(false)).collect(),
            consecutive: (0..n).map(|_| AtomicU32::new(0)).collect(),
            ramp_from: (0..n).map(|_| AtomicU64::new(NO_RAMP)).collect(),
            first: (0..n).map(|_| AtomicBool::new(true)).collect(),
            epoch: epoch.unwrap_or_else(Instant::now),
            slow_start: Duration::from_secs(g.slow_start.duration_seconds),
            outlier: o.enabled.then(|| Mutex::new(Detector::new(n, settings))),
            threshold: settings.consecutive_errors,
            uneject_on_check: o.successful_active_health_check_uneject_host,
        }
    }

    pub fn state(&self, i: usize) -> TargetState {
        self.states.get(i).map_or(TargetState::Unavailable, |s| {
            TargetState::from_u8(s.load(Relaxed))
        })
    }

    /// Sets target `i`'s state. Becoming healthy may start its slow start (ALB's rule:
    /// another target is healthy and not in slow start); leaving healthy ends it.
    pub fn set_state(&self, i: usize, s: TargetState) {
        let Some(slot) = self.states.get(i) else {
            return;
        };
        let old = TargetState::from_u8(slot.swap(s as u8, Relaxed));
        let ramp = &self.ramp_from[i];
        if s != TargetState::Healthy {
            ramp.store(NO_RAMP, Relaxed);
        }
        let first = old == TargetState::Initial
            && s != TargetState::Initial
            && self.first[i].swap(false, Relaxed);
        if s != TargetState::Healthy || old == TargetState::Healthy || first {
            return;
        }
        let now = self.now_ms();
        let settled = (0..self.states.len())
            .any(|j| j != i && self.state(j) == TargetState::Healthy && !self.ramping(j, now));
        if slow_start::enters(self.slow_start, settled) {
            ramp.store(now, Relaxed);
            tracing::info!(group = %self.group, target_addr = %self.addrs[i], "slow start");
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn ramp_elapsed(&self, i: usize, now_ms: u64) -> Option<Duration> {
        let from = self.ramp_from.get(i)?.load(Relaxed);
        (from != NO_RAMP && now_ms >= from).then(|| Duration::from_millis(now_ms - from))
    }

    fn ramping(&self, i: usize, now_ms: u64) -> bool {
        self.ramp_elapsed(i, now_ms)
            .is_some_and(|e| e < self.slow_start)
    }

    /// Whether any slow start is configured (selection only looks at the clock then).
    pub fn has_slow_start(&self) -> bool {
        !self.slow_start.is_zero()
    }

    /// Thousandths of its picks target `i` turns away now (slow start; 0 = full share).
    pub fn holdback(&self, i: usize) -> u16 {
        if !self.has_slow_start() {
            return 0;
        }
        self.ramp_elapsed(i, self.now_ms())
            .map_or(0, |e| slow_start::holdback(e, self.slow_start))
    }

    pub fn is_ejected(&self, i: usize) -> bool {
        self.ejected.get(i).is_some_and(|e| e.load(Relaxed))
    }

    /// Target `i` answered (a status below 500): its run of errors ends.
    pub fn success(&self, i: usize) {
        if let Some(c) = self.consecutive.get(i) {
            c.store(0, Relaxed);
        }
    }

    /// Target `i` failed a request (see `outlier`): at `consecutive_errors` in a row it is
    /// ejected, if the group's share allows.
    pub fn error(&self, i: usize) {
        let (Some(out), Some(c)) = (&self.outlier, self.consecutive.get(i)) else {
            return;
        };
        let n = c.fetch_add(1, Relaxed).saturating_add(1);
        if n < self.threshold || self.is_ejected(i) {
            return;
        }
        let Ok(mut d) = out.lock() else {
            return;
        };
        if let Some(dur) = d.eject(i, Instant::now()) {
            self.ejected[i].store(true, Relaxed);
            c.store(0, Relaxed);
            tracing::warn!(group = %self.group, target_addr = %self.addrs[i], errors = n,
                seconds = dur.as_secs(), "passive health: target ejected");
        }
    }

    /// The control plane's active check of target `i` passed: ends its ejection when the
    /// group says so (`successful_active_health_check_uneject_host`).
    pub fn active_check_passed(&self, i: usize) {
        let Some(out) = &self.outlier else {
            return;
        };
        if !self.uneject_on_check {
            return;
        }
        if let Ok(mut d) = out.lock()
            && d.uneject(i, Instant::now())
        {
            self.back(i, "active health check passed");
        }
    }

    fn back(&self, i: usize, why: &'static str) {
        self.ejected[i].store(false, Relaxed);
        self.consecutive[i].store(0, Relaxed);
        tracing::info!(group = %self.group, target_addr = %self.addrs[i], why, "passive health: target back");
    }

    /// The worker's one-second tick: ejections whose time is up end.
    pub fn tick(&self, now: Instant) {
        let Some(out) = &self.outlier else {
            return;
        };
        let Ok(mut d) = out.lock() else {
            return;
        };
        for i in d.tick(now) {
            self.back(i, "ejection time over");
        }
    }

    /// Target `i`'s ejections counted towards the next one's length.
    pub fn ejections(&self, i: usize) -> u32 {
        self.outlier
            .as_ref()
            .and_then(|o| o.lock().ok())
            .map_or(0, |d| d.ejections(i))
    }

    /// Thousandths of its full share target `i` gets now, when in slow start.
    pub fn slow_start_permille(&self, i: usize) -> Option<u16> {
        let e = self.ramp_elapsed(i, self.now_ms())?;
        (e < self.slow_start).then(|| slow_start::permille(e, self.slow_start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(toml_extra: &str, n: usize) -> GroupHealth {
        let text = format!("name = \"g\"\n{toml_extra}");
        let g: TargetGroup = toml::from_str(&text).expect("group");
        let addrs = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 8000 + i as u16)))
            .collect();
        GroupHealth::new(&g, addrs, None)
    }

    #[test]
    fn consecutive_errors_eject_and_a_success_resets_the_run() {
        let h = group(
            "[outlier_detection]\nenabled = true\nconsecutive_errors = 3\n",
            2,
        );
        h.error(0);
        h.error(0);
        h.success(0);
        h.error(0);
        h.error(0);
        assert!(!h.is_ejected(0));
        h.error(0);
        assert!(h.is_ejected(0));
        // The group's share (10 % of 2 → one) is used up.
        (0..5).for_each(|_| h.error(1));
        assert!(!h.is_ejected(1));
        h.active_check_passed(0);
        assert!(!h.is_ejected(0));
        assert_eq!(h.ejections(0), 1);
        let off = group("", 1);
        (0..10).for_each(|_| off.error(0));
        assert!(!off.is_ejected(0));
    }

    #[test]
    fn uneject_on_check_can_be_turned_off() {
        let h = group(
            "[outlier_detection]\nenabled = true\nconsecutive_errors = 1\nsuccessful_active_health_check_uneject_host = false\n",
            1,
        );
        h.error(0);
        h.active_check_passed(0);
        assert!(h.is_ejected(0));
        h.tick(Instant::now() + Duration::from_secs(31));
        assert!(!h.is_ejected(0));
    }

    #[test]
    fn a_rebuilt_group_carries_its_targets_and_ramps_the_registered_ones() {
        let extra = "[slow_start]\nduration_seconds = 60\n[outlier_detection]\nenabled = true\nconsecutive_errors = 1\nmax_ejection_percent = 100\n";
        let text = format!("name = \"g\"\n{extra}");
        let g: TargetGroup = toml::from_str(&text).expect("group");
        let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let old = GroupHealth::new(&g, vec![at(1), at(2), at(3)], None);
        old.error(0);
        assert!(old.is_ejected(0));
        old.set_state(1, TargetState::Unhealthy);
        old.set_state(1, TargetState::Healthy);
        let ramp = old.slow_start_permille(1);
        assert!(ramp.is_some());
        old.set_state(2, TargetState::Unhealthy);
        // Rebuilt in another order, 127.0.0.1:3 gone, :4 registered.
        let new = GroupHealth::new(&g, vec![at(4), at(2), at(1)], Some(&old));
        assert!(new.is_ejected(2), "the ejection goes on");
        assert_eq!(new.ejections(2), 1);
        assert!(new.slow_start_permille(1) >= ramp, "the ramp goes on");
        assert_eq!(new.state(1), TargetState::Healthy);
        // The registered target's first checks passing start its slow start (not a new
        // group's target: ALB's rule).
        new.set_state(0, TargetState::Initial);
        new.set_state(0, TargetState::Healthy);
        assert!(new.slow_start_permille(0).is_some());
        // Passive health turned off by the reload: the ejection does not come along.
        let off: TargetGroup =
            toml::from_str("name = \"g\"\n[slow_start]\nduration_seconds = 60\n").expect("group");
        let without = GroupHealth::new(&off, vec![at(1)], Some(&old));
        assert!(!without.is_ejected(0));
        // A new group (no `before`): its targets' first checks start none.
        let fresh = GroupHealth::new(&g, vec![at(4), at(5)], None);
        fresh.set_state(0, TargetState::Initial);
        fresh.set_state(0, TargetState::Healthy);
        assert_eq!(fresh.slow_start_permille(0), None);
        // Targets added to a group with nothing healthy (discovery's first answer): registered
        // together, as into a new group: none ramps when they pass their first checks.
        let empty = GroupHealth::new(&g, vec![], None);
        let found = GroupHealth::new(&g, vec![at(4), at(5)], Some(&empty));
        for i in 0..2 {
            found.set_state(i, TargetState::Initial);
        }
        found.set_state(0, TargetState::Healthy);
        found.set_state(1, TargetState::Healthy);
        assert_eq!(
            (found.slow_start_permille(0), found.slow_start_permille(1)),
            (None, None)
        );
    }

    #[test]
    fn a_target_keeps_its_state_across_generations_only_while_checked_throughout() {
        use Checks::*;
        // Checked before and now (any check setting changed): kept.
        assert_eq!(state_at_generation(Some(Enabled), Enabled), None);
        // Registered now, or checked only from now on: no verdict yet.
        for before in [None, Some(Disabled), Some(NotInUse)] {
            assert_eq!(
                state_at_generation(before, Enabled),
                Some(TargetState::Initial),
                "{before:?}"
            );
        }
        for before in [None, Some(Enabled), Some(Disabled), Some(NotInUse)] {
            assert_eq!(
                state_at_generation(before, Disabled),
                Some(TargetState::Healthy)
            );
            assert_eq!(
                state_at_generation(before, NotInUse),
                Some(TargetState::Unused)
            );
        }
        let cfg: L7Config = toml::from_str(
            "[[listener]]\nport = 80\ndefault_action = { type = \"forward\", target_group = \"a\" }\n\
             [[target_group]]\nname = \"a\"\n[[target_group]]\nname = \"b\"\n\
             [[target_group]]\nname = \"c\"\nhealth_check.enabled = false",
        )
        .unwrap();
        let used = groups_in_use(&cfg);
        let c: Vec<Checks> = cfg
            .target_group
            .iter()
            .map(|g| Checks::of(g, &used))
            .collect();
        assert_eq!(c, [Enabled, NotInUse, NotInUse]);
    }

    #[test]
    fn slow_start_entry_follows_alb() {
        let h = group("[slow_start]\nduration_seconds = 60\n", 3);
        // A new group's targets start healthy at full weight.
        assert!((0..3).all(|i| h.holdback(i) == 0));
        h.set_state(2, TargetState::Unhealthy);
        h.set_state(2, TargetState::Healthy);
        assert_eq!(h.holdback(2), 1000 - slow_start::MIN_PERMILLE);
        assert_eq!(h.slow_start_permille(2), Some(slow_start::MIN_PERMILLE));
        h.set_state(2, TargetState::Healthy);
        assert!(
            h.holdback(2) > 0,
            "a repeated healthy does not restart or end it"
        );
        h.set_state(2, TargetState::Draining);
        assert_eq!(h.holdback(2), 0);
        // Registered with the new group: their first checks passing start no slow start.
        let h = group("[slow_start]\nduration_seconds = 60\n", 3);
        (0..3).for_each(|i| h.set_state(i, TargetState::Initial));
        h.set_state(0, TargetState::Healthy);
        h.set_state(1, TargetState::Healthy);
        assert_eq!((h.holdback(0), h.holdback(1)), (0, 0));
        h.set_state(2, TargetState::Unhealthy);
        h.set_state(2, TargetState::Healthy);
        assert!(h.holdback(2) > 0, "back from unhealthy: slow start");
        // The only other healthy target is in slow start itself: no slow start.
        h.set_state(0, TargetState::Unhealthy);
        h.set_state(1, TargetState::Unhealthy);
        h.set_state(1, TargetState::Healthy);
        assert_eq!(h.holdback(1), 0);
        let off = group("", 2);
        off.set_state(1, TargetState::Unhealthy);
        off.set_state(1, TargetState::Healthy);
        assert_eq!(off.holdback(1), 0);
    }
}
