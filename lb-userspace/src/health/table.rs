//! The control plane's table of target health: every group's targets with their [`Health`], the
//! group's fail-open flag, and the view `weir targets health` (and an admin API) reads through
//! [`HealthTable::snapshot`]. The checker is its only writer.
//!
//! A target a generation removed is `draining` until every worker running now has reported,
//! for that generation or a later one, that it no longer drains it
//! ([`HealthTable::finish_drained`], ALB's "ends early when nothing is in flight"), or until
//! its group's deregistration delay is over ([`HealthTable::prune_drained`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use lb_l7::target_health::{Checks, groups_in_use, state_at_generation};
use lb_l7::{L7Config, TargetState, control::TargetHealth, generation::DrainReport};
use serde::{Deserialize, Serialize};

use super::settings::Settings;
use super::state::{Health, Reason};

/// One target of a group.
#[derive(Debug, Clone)]
pub struct TargetEntry {
    pub addr: SocketAddr,
    pub zone: Option<String>,
    pub health: Health,
}

/// One target group.
#[derive(Debug, Clone)]
pub struct GroupEntry {
    pub name: String,
    /// `None`: not checked (checks disabled, or the group is not in use).
    pub settings: Option<Arc<Settings>>,
    /// Checked, disabled or not in use (`settings` is there when checked).
    pub checks: Checks,
    pub targets: Vec<TargetEntry>,
    /// No target healthy: the workers route to all of them (ALB's fail-open).
    pub fail_open: bool,
    /// `deregistration_delay.timeout_seconds`.
    pub delay: Duration,
    /// Targets a generation removed (deregistered, or gone from the file), `draining` until
    /// the workers are done with them or their deadline; not checked, not sent to the workers
    /// (which drain their own).
    pub draining: Vec<Leaving>,
}

/// A target leaving its group.
#[derive(Debug, Clone)]
pub struct Leaving {
    pub entry: TargetEntry,
    /// The group's deregistration delay after it left.
    pub until: Instant,
    /// The generation that removed it: only a worker's report of this generation or a later
    /// one can say the worker is done with it.
    pub since: u64,
}

impl GroupEntry {
    fn healthy(&self) -> usize {
        self.targets
            .iter()
            .filter(|t| t.health.state == TargetState::Healthy)
            .count()
    }
}

/// Shared by the checker (writer) and whoever shows the states.
#[derive(Debug, Clone, Default)]
pub struct HealthTable(Arc<Mutex<Vec<GroupEntry>>>);

impl HealthTable {
    /// Every target of a validated configuration in its first state: `initial` when checked,
    /// `healthy` when checks are disabled, `unused` when no listener forwards to its group.
    pub fn new(cfg: &L7Config) -> anyhow::Result<HealthTable> {
        Ok(HealthTable(Arc::new(Mutex::new(entries(cfg)?))))
    }

    /// Follows a new configuration (a reload, a run-time target change): a target that stays in
    /// a group checked before and now keeps its health — state, reason and its run of passes or
    /// failures in a row — whatever check setting changed (ALB's `ModifyTargetGroup`: the new
    /// settings apply from the next check, whose thresholds judge the run so far); a target
    /// registered now, or of a group checked only from now on, starts `initial`; checks
    /// disabled make every target `healthy`, a group no listener forwards to `unused`. The
    /// workers' new generations follow the same rule
    /// (`lb_l7::target_health::state_at_generation`). A target the new configuration no longer
    /// has is `draining` (`Target.DeregistrationInProgress`) for its group's deregistration
    /// delay, or until the workers are done with it ([`Self::finish_drained`]); one that comes
    /// back is a new registration. `cfg` is generation `generation`.
    pub fn rebuild(&self, cfg: &L7Config, generation: u64) -> anyhow::Result<()> {
        self.rebuild_at(cfg, generation, Instant::now())
    }

    pub(super) fn rebuild_at(
        &self,
        cfg: &L7Config,
        generation: u64,
        now: Instant,
    ) -> anyhow::Result<()> {
        let mut fresh = entries(cfg)?;
        let mut groups = self.lock();
        for g in &mut fresh {
            let Some(old) = groups.iter().find(|o| o.name == g.name) else {
                continue;
            };
            g.draining = leaving(old, g, generation, now);
            for t in &mut g.targets {
                let Some(o) = old.targets.iter().find(|o| o.addr == t.addr) else {
                    continue;
                };
                if state_at_generation(Some(old.checks), g.checks).is_none() {
                    t.health = o.health.clone();
                }
            }
            if g.settings.is_some() {
                g.fail_open = !g.targets.is_empty() && g.healthy() == 0;
            }
        }
        *groups = fresh;
        Ok(())
    }

    /// The targets of `group` that are `draining`, as the view shows them now, or as it will
    /// once the checker follows `in_force` (the configuration the main loop has just put in
    /// force, which the checker follows asynchronously): a target the table still has but
    /// `in_force` does not is leaving, unless its group has no deregistration delay. So a
    /// deregistration retried before the checker caught up finds its target draining. A target
    /// in force is not draining, whatever the table says of an old drain of it.
    pub fn draining(&self, group: &str, in_force: &L7Config) -> BTreeSet<SocketAddr> {
        self.draining_at(group, in_force, Instant::now())
    }

    pub(super) fn draining_at(
        &self,
        group: &str,
        in_force: &L7Config,
        now: Instant,
    ) -> BTreeSet<SocketAddr> {
        let kept: BTreeSet<SocketAddr> = in_force
            .target_group(group)
            .map(|g| {
                g.target
                    .iter()
                    .filter_map(|t| lb_l7::target_sets::address(g, t))
                    .collect()
            })
            .unwrap_or_default();
        let groups = self.lock();
        let Some(g) = groups.iter().find(|g| g.name == group) else {
            return BTreeSet::new();
        };
        let drains = g.draining.iter().filter(|l| l.until > now);
        let leaving = g.targets.iter().filter(|_| !g.delay.is_zero());
        drains
            .map(|l| l.entry.addr)
            .chain(leaving.map(|t| t.addr))
            .filter(|a| !kept.contains(a))
            .collect()
    }

    /// Forgets the draining targets whose deadline is past; `true` if there were any.
    pub fn prune_drained(&self, now: Instant) -> bool {
        let mut groups = self.lock();
        let mut pruned = false;
        for g in groups.iter_mut() {
            let before = g.draining.len();
            g.draining.retain(|l| l.until > now);
            pruned |= g.draining.len() != before;
        }
        pruned
    }

    /// Ends the `draining` of every target all of `workers` are done with, given the last
    /// report of each worker process running now (`None`: it has not reported yet, so it is
    /// not done with anything). A worker restarted since the target left reports the
    /// generation it started on and no such target: done. Returns the targets, `(group,
    /// target)`. Only the draining list changes: a target registered again is in `targets`,
    /// which no report touches.
    pub fn finish_drained(&self, workers: &[Option<DrainReport>]) -> Vec<(String, SocketAddr)> {
        let mut groups = self.lock();
        let mut done = Vec::new();
        for g in groups.iter_mut() {
            let name = &g.name;
            g.draining.retain(|l| {
                let finished = workers.iter().all(|w| {
                    w.as_ref()
                        .is_some_and(|r| r.done_with(name, l.entry.addr, l.since))
                });
                if finished {
                    done.push((name.clone(), l.entry.addr));
                }
                !finished
            });
        }
        done
    }
}

/// The targets of `old` that `new` (generation `generation`) no longer has, and those still
/// draining from before, each with its deadline and the generation it left in.
fn leaving(old: &GroupEntry, new: &GroupEntry, generation: u64, now: Instant) -> Vec<Leaving> {
    let kept = |a: SocketAddr| new.targets.iter().any(|t| t.addr == a);
    let draining = Health::fixed(
        TargetState::Draining,
        Some(Reason::DeregistrationInProgress),
    );
    // The checker follows the latest generation and may skip some: a target still draining
    // may have come back and left again in between, with new requests and a full delay of its
    // own from then (the workers' `Draining::follow`). Only reports of this generation speak
    // for sure, and its deadline can be as late as a delay from now: the view keeps it
    // draining until then, or until the workers report they are done with it.
    let skipped = |l: &Leaving| generation > l.since + 1;
    let still = old
        .draining
        .iter()
        .filter(|l| l.until > now && !kept(l.entry.addr))
        .map(|l| Leaving {
            until: if skipped(l) {
                l.until.max(now + old.delay.max(new.delay))
            } else {
                l.until
            },
            since: generation,
            ..l.clone()
        });
    let gone = old
        .targets
        .iter()
        .filter(|t| !kept(t.addr))
        .map(|t| Leaving {
            entry: TargetEntry {
                health: draining.clone(),
                ..t.clone()
            },
            until: now + old.delay,
            since: generation,
        });
    still.chain(gone).collect()
}

/// Every target of a validated configuration in its first state: `initial` when checked,
/// `healthy` when checks are disabled, `unused` when no listener forwards to its group.
fn entries(cfg: &L7Config) -> anyhow::Result<Vec<GroupEntry>> {
    let in_use = groups_in_use(cfg);
    let mut groups = Vec::new();
    for g in &cfg.target_group {
        let checks = Checks::of(g, &in_use);
        let settings = match checks {
            Checks::Enabled => Some(Arc::new(
                Settings::from_config(&g.health_check)
                    .map_err(|e| anyhow::anyhow!("target group {}: {e}", g.name))?,
            )),
            _ => None,
        };
        let first = match checks {
            Checks::NotInUse => Health::fixed(TargetState::Unused, Some(Reason::NotInUse)),
            Checks::Disabled => {
                Health::fixed(TargetState::Healthy, Some(Reason::HealthCheckDisabled))
            }
            Checks::Enabled => Health::registered(),
        };
        let targets: Vec<TargetEntry> = g
            .target
            .iter()
            .filter_map(|t| {
                let ip: std::net::IpAddr = t.id.parse().ok()?;
                Some(TargetEntry {
                    addr: SocketAddr::new(ip, t.port.unwrap_or(g.port)),
                    zone: t.availability_zone.clone(),
                    health: first.clone(),
                })
            })
            .collect();
        // Checked targets start `initial`: until one passes, the workers route to all.
        let fail_open = settings.is_some() && !targets.is_empty();
        groups.push(GroupEntry {
            name: g.name.clone(),
            settings,
            checks,
            targets,
            fail_open,
            delay: Duration::from_secs(g.deregistration_delay.timeout_seconds),
            draining: Vec::new(),
        });
    }
    Ok(groups)
}

impl HealthTable {
    pub(super) fn lock(&self) -> MutexGuard<'_, Vec<GroupEntry>> {
        // A panic while holding it leaves plain data: keep using it.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every target's state as the workers take it (the sticky message of the control channel).
    pub fn worker_states(&self) -> Vec<TargetHealth> {
        let groups = self.lock();
        groups
            .iter()
            .flat_map(|g| g.targets.iter().map(|t| worker_state(&g.name, t)))
            .collect()
    }

    /// Recomputes group `gi`'s fail-open flag; returns `Some(new)` when it changed.
    pub(super) fn update_fail_open(groups: &mut [GroupEntry], gi: usize) -> Option<bool> {
        let g = &mut groups[gi];
        let now = g.settings.is_some() && !g.targets.is_empty() && g.healthy() == 0;
        (now != std::mem::replace(&mut g.fail_open, now)).then_some(now)
    }

    /// The view: what `weir targets health` prints, in ALB's words.
    pub fn snapshot(&self) -> HealthSnapshot {
        self.snapshot_at(Instant::now())
    }

    fn snapshot_at(&self, now: Instant) -> HealthSnapshot {
        let groups = self.lock();
        HealthSnapshot {
            target_groups: groups.iter().map(|g| group_view(g, now)).collect(),
        }
    }
}

pub fn worker_state(group: &str, t: &TargetEntry) -> TargetHealth {
    TargetHealth {
        group: group.to_string(),
        target: t.addr,
        state: t.health.state.name().to_string(),
        reason: t.health.reason.as_ref().map(|r| r.code().to_string()),
    }
}

/// ALB's `describe-target-health`, per group, with the group's host counts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HealthSnapshot {
    pub target_groups: Vec<GroupView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupView {
    pub name: String,
    /// Checked by the control plane (`false`: checks disabled or the group is not in use).
    pub health_checked: bool,
    /// No target is healthy: requests go to all of them.
    pub fail_open: bool,
    #[serde(rename = "HealthyHostCount")]
    pub healthy_host_count: usize,
    #[serde(rename = "UnHealthyHostCount")]
    pub unhealthy_host_count: usize,
    /// The same counts per `availability_zone` (`-` for targets without one).
    pub zones: BTreeMap<String, ZoneCounts>,
    pub targets: Vec<TargetView>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ZoneCounts {
    #[serde(rename = "HealthyHostCount")]
    pub healthy_host_count: usize,
    #[serde(rename = "UnHealthyHostCount")]
    pub unhealthy_host_count: usize,
}

/// One `TargetHealthDescription`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TargetView {
    pub id: String,
    pub port: u16,
    pub availability_zone: Option<String>,
    pub state: String,
    pub reason: Option<String>,
    pub description: Option<String>,
}

fn target_view(t: &TargetEntry) -> TargetView {
    TargetView {
        id: t.addr.ip().to_string(),
        port: t.addr.port(),
        availability_zone: t.zone.clone(),
        state: t.health.state.name().into(),
        reason: t.health.reason.as_ref().map(|r| r.code().into()),
        description: t.health.reason.as_ref().map(Reason::description),
    }
}

fn group_view(g: &GroupEntry, now: Instant) -> GroupView {
    let mut zones: BTreeMap<String, ZoneCounts> = BTreeMap::new();
    let (mut healthy, mut unhealthy) = (0, 0);
    for t in &g.targets {
        let z = zones
            .entry(t.zone.clone().unwrap_or_else(|| "-".into()))
            .or_default();
        match t.health.state {
            TargetState::Healthy => {
                healthy += 1;
                z.healthy_host_count += 1;
            }
            TargetState::Unhealthy | TargetState::Unavailable => {
                unhealthy += 1;
                z.unhealthy_host_count += 1;
            }
            _ => {}
        }
    }
    GroupView {
        name: g.name.clone(),
        health_checked: g.settings.is_some(),
        fail_open: g.fail_open,
        healthy_host_count: healthy,
        unhealthy_host_count: unhealthy,
        zones,
        targets: g
            .targets
            .iter()
            .chain(
                g.draining
                    .iter()
                    .filter(|l| l.until > now)
                    .map(|l| &l.entry),
            )
            .map(target_view)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::state::{Outcome, Thresholds};

    fn config() -> L7Config {
        toml::from_str(
            r#"
[[listener]]
port = 8080
default_action = { type = "forward", target_group = "web" }
[[listener.rule]]
priority = 1
condition = [{ field = "path-pattern", values = ["/nochecks/*"] }]
action = { type = "forward", target_group = "nochecks" }
[[target_group]]
name = "web"
target = [{ id = "10.0.0.1", availability_zone = "a" }, { id = "10.0.0.2", port = 81, availability_zone = "b" }]
[[target_group]]
name = "nochecks"
health_check.enabled = false
target = [{ id = "10.0.0.3" }]
[[target_group]]
name = "spare"
target = [{ id = "10.0.0.4" }]
"#,
        )
        .unwrap()
    }

    #[test]
    fn first_states_follow_use_and_enablement() {
        let t = HealthTable::new(&config()).unwrap();
        let s = t.snapshot();
        let states: Vec<(&str, &str, Option<&str>)> = s
            .target_groups
            .iter()
            .flat_map(|g| {
                g.targets
                    .iter()
                    .map(move |t| (g.name.as_str(), t.state.as_str(), t.reason.as_deref()))
            })
            .collect();
        assert_eq!(
            states,
            [
                ("web", "initial", Some("Elb.RegistrationInProgress")),
                ("web", "initial", Some("Elb.RegistrationInProgress")),
                ("nochecks", "healthy", Some("Target.HealthCheckDisabled")),
                ("spare", "unused", Some("Target.NotInUse")),
            ]
        );
        assert_eq!(s.target_groups[0].targets[1].port, 81);
        assert!(s.target_groups[0].health_checked && !s.target_groups[1].health_checked);
    }

    #[test]
    fn counts_per_group_and_zone_and_fail_open() {
        let t = HealthTable::new(&config()).unwrap();
        let th = Thresholds {
            healthy: 2,
            unhealthy: 2,
        };
        {
            let mut g = t.lock();
            assert!(g[0].fail_open, "no target has passed yet");
            g[0].targets[0].health.observe(&Outcome::Pass, th);
            assert_eq!(HealthTable::update_fail_open(&mut g, 0), Some(false));
            for _ in 0..2 {
                g[0].targets[0].health.observe(&Outcome::Timeout, th);
                g[0].targets[1].health.observe(&Outcome::Timeout, th);
            }
            assert_eq!(HealthTable::update_fail_open(&mut g, 0), Some(true));
            assert_eq!(HealthTable::update_fail_open(&mut g, 0), None);
        }
        let s = t.snapshot();
        let web = &s.target_groups[0];
        assert!(web.fail_open);
        assert_eq!((web.healthy_host_count, web.unhealthy_host_count), (0, 2));
        assert_eq!(web.zones["a"].unhealthy_host_count, 1);
        assert_eq!(
            web.targets[0].description.as_deref(),
            Some("Request timed out")
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["target_groups"][0]["UnHealthyHostCount"], 2);
        assert_eq!(json["target_groups"][2]["HealthyHostCount"], 0);
        let w = t.worker_states();
        assert_eq!(w.len(), 4);
        assert_eq!(
            (w[0].state.as_str(), w[0].reason.as_deref()),
            ("unhealthy", Some("Target.Timeout"))
        );
    }

    #[test]
    fn a_removed_target_drains_for_the_delay_and_a_returning_one_starts_over() {
        let t = HealthTable::new(&config()).unwrap();
        let th = Thresholds {
            healthy: 2,
            unhealthy: 2,
        };
        t.lock()[0].targets[1].health.observe(&Outcome::Pass, th);
        let now = Instant::now();
        let mut less = config();
        less.target_group[0].target.remove(1);
        t.rebuild_at(&less, 2, now).unwrap();
        let web = |t: &HealthTable, at: Instant| -> Vec<(String, String, Option<String>)> {
            t.snapshot_at(at).target_groups[0]
                .targets
                .iter()
                .map(|x| {
                    (
                        format!("{}:{}", x.id, x.port),
                        x.state.clone(),
                        x.reason.clone(),
                    )
                })
                .collect()
        };
        let draining = (
            "10.0.0.2:81".to_string(),
            "draining".to_string(),
            Some("Target.DeregistrationInProgress".to_string()),
        );
        assert_eq!(web(&t, now)[1], draining);
        assert_eq!(t.worker_states().len(), 3, "the workers drain their own");
        // Another generation within the delay: still draining, with the same deadline.
        t.rebuild_at(&less, 3, now + Duration::from_secs(100))
            .unwrap();
        assert_eq!(web(&t, now + Duration::from_secs(299))[1], draining);
        assert_eq!(
            web(&t, now + Duration::from_secs(300)).len(),
            1,
            "300 s: gone"
        );
        assert!(!t.prune_drained(now + Duration::from_secs(299)));
        assert!(t.prune_drained(now + Duration::from_secs(300)));
        // Deregistered and registered again: checked from the start, not draining.
        t.rebuild_at(&less, 4, now).unwrap();
        t.rebuild_at(&config(), 5, now).unwrap();
        let v = web(&t, now);
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].1, "initial");
        let t0 = HealthTable::new(&config()).unwrap();
        let mut zero = config();
        zero.target_group[0].deregistration_delay.timeout_seconds = 0;
        let t0 = {
            t0.rebuild_at(&zero, 2, now).unwrap();
            t0
        };
        t0.rebuild_at(&less, 3, now).unwrap();
        assert_eq!(web(&t0, now).len(), 1, "no delay: no draining");
    }

    #[test]
    fn draining_is_what_the_view_shows_or_will_once_the_checker_follows() {
        let t = HealthTable::new(&config()).unwrap();
        let now = Instant::now();
        let mut less = config();
        less.target_group[0].target.remove(1);
        let gone: SocketAddr = GONE.parse().unwrap();
        let only_gone = BTreeSet::from([gone]);
        // In force, the checker not there yet: leaving all the same.
        assert_eq!(t.draining_at("web", &less, now), only_gone);
        assert!(t.draining_at("web", &config(), now).is_empty(), "in force");
        t.rebuild_at(&less, 2, now).unwrap();
        assert_eq!(t.draining_at("web", &less, now), only_gone);
        // Asking changes nothing: the deadline stays the first one.
        let at = |s| now + Duration::from_secs(s);
        assert_eq!(t.draining_at("web", &less, at(299)), only_gone);
        assert!(t.draining_at("web", &less, at(300)).is_empty(), "deadline");
        // Registered again (not yet followed): in force, not draining.
        assert!(t.draining_at("web", &config(), now).is_empty());
        // The workers done with it: no longer draining.
        assert_eq!(t.finish_drained(&[report(2, &[])]).len(), 1);
        assert!(t.draining_at("web", &less, now).is_empty());
        // Other groups, unknown ones, a group without a deregistration delay: none.
        assert!(t.draining_at("nochecks", &less, now).is_empty());
        assert!(t.draining_at("nope", &less, now).is_empty());
        let mut zero = config();
        zero.target_group[0].deregistration_delay.timeout_seconds = 0;
        let t0 = HealthTable::new(&zero).unwrap();
        let mut zero_less = zero.clone();
        zero_less.target_group[0].target.remove(1);
        assert!(t0.draining_at("web", &zero_less, now).is_empty());
    }

    /// `(addr, state)` of group `web`'s targets in the view.
    fn web_states(t: &HealthTable) -> Vec<(String, String)> {
        t.snapshot().target_groups[0]
            .targets
            .iter()
            .map(|x| (format!("{}:{}", x.id, x.port), x.state.clone()))
            .collect()
    }

    fn report(generation: u64, draining: &[&str]) -> Option<DrainReport> {
        Some(DrainReport {
            generation,
            draining: draining
                .iter()
                .map(|a| ("web".to_string(), a.parse().unwrap()))
                .collect(),
        })
    }

    const GONE: &str = "10.0.0.2:81";

    #[test]
    fn draining_ends_once_every_running_worker_is_done() {
        let t = HealthTable::new(&config()).unwrap();
        let mut less = config();
        less.target_group[0].target.remove(1);
        t.rebuild(&less, 2).unwrap();
        let draining = || {
            web_states(&t)
                .iter()
                .any(|(a, s)| a == GONE && s == "draining")
        };
        assert!(draining());
        // Not done: a worker that has not reported, one still on generation 1 (its report
        // predates the deregistration), one still draining the target.
        for workers in [
            vec![report(2, &[]), None],
            vec![report(2, &[]), report(1, &[])],
            vec![report(2, &[]), report(2, &[GONE])],
            vec![report(3, &[GONE]), report(2, &[])],
        ] {
            assert!(t.finish_drained(&workers).is_empty(), "{workers:?}");
            assert!(draining(), "{workers:?}");
        }
        // Another group's target of the same address is not this one.
        let other = Some(DrainReport {
            generation: 2,
            draining: vec![("nochecks".into(), GONE.parse().unwrap())],
        });
        // Every worker running now is done (one of them a restarted worker, on a later
        // generation, that never had it).
        let done = t.finish_drained(&[report(2, &[]), report(3, &[]), other]);
        assert_eq!(done, [("web".to_string(), GONE.parse().unwrap())]);
        assert!(!draining());
        assert_eq!(web_states(&t).len(), 1);
        assert!(t.finish_drained(&[report(2, &[])]).is_empty(), "once");
    }

    #[test]
    fn no_worker_running_has_nothing_in_flight() {
        let t = HealthTable::new(&config()).unwrap();
        let mut less = config();
        less.target_group[0].target.remove(1);
        t.rebuild(&less, 2).unwrap();
        // Every worker dead (their requests died with them): done.
        assert_eq!(t.finish_drained(&[]).len(), 1);
    }

    #[test]
    fn a_target_registered_again_is_not_ended_by_reports_of_its_old_drain() {
        let t = HealthTable::new(&config()).unwrap();
        let mut less = config();
        less.target_group[0].target.remove(1);
        t.rebuild(&less, 2).unwrap();
        // Registered again before the workers reported: a target again, not draining.
        t.rebuild(&config(), 3).unwrap();
        assert_eq!(
            web_states(&t),
            [
                ("10.0.0.1:80".to_string(), "initial".to_string()),
                (GONE.to_string(), "initial".to_string())
            ]
        );
        // The workers' reports that they finished the old drain touch no registered target.
        assert!(
            t.finish_drained(&[report(2, &[]), report(3, &[])])
                .is_empty()
        );
        assert_eq!(web_states(&t).len(), 2);
        // Deregistered again: reports from before that generation (generation 3, where it was
        // registered and may have had requests) do not end the new drain; its own do.
        t.rebuild(&less, 4).unwrap();
        assert!(
            t.finish_drained(&[report(3, &[]), report(3, &[])])
                .is_empty()
        );
        assert!(
            t.finish_drained(&[report(4, &[GONE]), report(4, &[])])
                .is_empty()
        );
        assert_eq!(t.finish_drained(&[report(4, &[]), report(5, &[])]).len(), 1);
        assert_eq!(web_states(&t).len(), 1);
    }

    #[test]
    fn a_drain_carried_over_generations_waits_for_reports_of_the_latest() {
        // The checker follows the latest configuration and may skip some: the target may have
        // come back and left again in between, so only the latest generation's reports count.
        let t = HealthTable::new(&config()).unwrap();
        let mut less = config();
        less.target_group[0].target.remove(1);
        t.rebuild(&less, 2).unwrap();
        t.rebuild(&less, 5).unwrap();
        assert!(t.finish_drained(&[report(4, &[])]).is_empty());
        assert_eq!(t.finish_drained(&[report(5, &[])]).len(), 1);
    }

    #[test]
    fn a_drain_carried_over_skipped_generations_keeps_a_full_delay_from_then() {
        // Deregistered (2), registered again (3) and deregistered again (4) before the checker
        // followed 3: the workers drain it a full delay from 4, so the view may not end the
        // drain at the first deadline.
        let t = HealthTable::new(&config()).unwrap();
        let mut less = config();
        less.target_group[0].target.remove(1);
        let now = Instant::now();
        let at = |s| now + Duration::from_secs(s);
        t.rebuild_at(&less, 2, now).unwrap();
        t.rebuild_at(&less, 4, at(100)).unwrap();
        let gone = BTreeSet::from([GONE.parse::<SocketAddr>().unwrap()]);
        assert_eq!(
            t.draining_at("web", &less, at(350)),
            gone,
            "past the first deadline"
        );
        assert!(
            t.draining_at("web", &less, at(400)).is_empty(),
            "a delay from 4"
        );
        // Followed generation by generation: the first deadline stands.
        t.rebuild_at(&less, 5, at(200)).unwrap();
        assert!(t.draining_at("web", &less, at(400)).is_empty());
        assert_eq!(t.draining_at("web", &less, at(399)), gone);
        // The workers done with it end it early either way.
        let t = HealthTable::new(&config()).unwrap();
        t.rebuild_at(&less, 2, now).unwrap();
        t.rebuild_at(&less, 4, at(100)).unwrap();
        assert_eq!(t.finish_drained(&[report(4, &[])]).len(), 1);
        assert!(t.draining_at("web", &less, at(1)).is_empty());
    }

    #[test]
    fn a_reload_keeps_the_health_of_unchanged_targets() {
        let t = HealthTable::new(&config()).unwrap();
        let th = Thresholds {
            healthy: 2,
            unhealthy: 2,
        };
        t.lock()[0].targets[0].health.observe(&Outcome::Pass, th);
        // web gains a target; its settings are the same.
        let mut more = config();
        let first = more.target_group[0].target[0].clone();
        more.target_group[0].target.push(first);
        more.target_group[0].target[2].id = "10.0.0.9".into();
        t.rebuild(&more, 2).unwrap();
        let states = |t: &HealthTable| -> Vec<String> {
            t.snapshot().target_groups[0]
                .targets
                .iter()
                .map(|x| x.state.clone())
                .collect()
        };
        assert_eq!(states(&t), ["healthy", "initial", "initial"]);
        assert!(!t.snapshot().target_groups[0].fail_open);
    }

    /// `(state, reason)` of group `web`'s targets.
    fn web_health(t: &HealthTable) -> Vec<(String, Option<String>)> {
        t.snapshot().target_groups[0]
            .targets
            .iter()
            .map(|x| (x.state.clone(), x.reason.clone()))
            .collect()
    }

    fn sr(state: &str, reason: Option<&str>) -> (String, Option<String>) {
        (state.into(), reason.map(Into::into))
    }

    #[test]
    fn a_reload_changing_the_check_settings_keeps_every_staying_targets_health() {
        let t = HealthTable::new(&config()).unwrap();
        let th = Thresholds {
            healthy: 2,
            unhealthy: 2,
        };
        {
            let mut g = t.lock();
            g[0].targets[0].health.observe(&Outcome::Pass, th);
            for _ in 0..2 {
                g[0].targets[1].health.observe(&Outcome::Mismatch(500), th);
            }
            // One pass of the two an unhealthy target needs.
            g[0].targets[1].health.observe(&Outcome::Pass, th);
            HealthTable::update_fail_open(&mut g, 0);
        }
        let before = web_health(&t);
        assert_eq!(
            before,
            [
                sr("healthy", None),
                sr("unhealthy", Some("Target.ResponseCodeMismatch"))
            ]
        );
        // Every check setting changed at once, and a target registered.
        let mut changed = config();
        let h = &mut changed.target_group[0].health_check;
        h.interval_seconds = 6;
        h.timeout_seconds = 3;
        h.path = "/other".into();
        h.port = "9000".into();
        h.matcher.http_code = "200-299".into();
        h.healthy_threshold_count = 3;
        h.unhealthy_threshold_count = 3;
        let mut new = changed.target_group[0].target[0].clone();
        new.id = "10.0.0.9".into();
        changed.target_group[0].target.push(new);
        t.rebuild(&changed, 2).unwrap();
        let after = web_health(&t);
        assert_eq!(after[..2], before[..], "kept");
        assert_eq!(after[2], sr("initial", Some("Elb.RegistrationInProgress")));
        let snap = t.snapshot();
        let web = &snap.target_groups[0];
        assert!(!web.fail_open, "a target is healthy: no failing open");
        assert_eq!((web.healthy_host_count, web.unhealthy_host_count), (1, 1));
        assert_eq!(
            t.worker_states()[1].state,
            "unhealthy",
            "what the workers get"
        );
        // The run of passes goes on, judged by the new threshold (3): two more passes.
        let new_th = Thresholds {
            healthy: 3,
            unhealthy: 3,
        };
        {
            let mut g = t.lock();
            assert!(!g[0].targets[1].health.observe(&Outcome::Pass, new_th));
            assert!(g[0].targets[1].health.observe(&Outcome::Pass, new_th));
        }
        // Checks turned off: every target healthy, unchecked.
        let mut off = changed.clone();
        off.target_group[0].health_check.enabled = false;
        t.rebuild(&off, 3).unwrap();
        assert!(
            web_health(&t)
                .iter()
                .all(|h| *h == sr("healthy", Some("Target.HealthCheckDisabled")))
        );
        assert!(!t.snapshot().target_groups[0].fail_open);
        // On again: no check has judged them, every target starts `initial`.
        t.rebuild(&changed, 4).unwrap();
        assert!(
            web_health(&t)
                .iter()
                .all(|h| *h == sr("initial", Some("Elb.RegistrationInProgress")))
        );
        assert!(t.snapshot().target_groups[0].fail_open);
    }
}
