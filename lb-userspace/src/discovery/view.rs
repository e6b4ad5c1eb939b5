//! What each discovering group's task last saw, for an operator (`GET /v1/discovery`,
//! `weir targets discovery`, the `weir_discovery_*` metrics), HAProxy's `show resolvers`: the
//! name and record type asked, the targets in force, the last resolution and its outcome, the
//! failures in a row, the next resolution, the generation the last change made.
//!
//! [`GroupDiscovery`] is one group's record, the API's JSON object; its updates are pure
//! ([`GroupDiscovery::resolved`], [`GroupDiscovery::handed_over`]: an answer, the plan's step
//! and the clocks in). [`Board`] shares the records: the tasks write theirs after each
//! resolution and hand-over, readers copy them; the lock is held only for the copy or the
//! update, never across an await.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, RwLock},
    time::Instant,
};

use lb_l7::{
    config::{Discovery, DiscoveryType},
    target_sets::SetTarget,
};
use serde::{Deserialize, Serialize};

use super::plan::{Answer, Plan, Step};

/// One discovering target group, as its task last left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDiscovery {
    pub target_group: String,
    /// The DNS name asked.
    pub name: String,
    /// `A`, `AAAA`, `A+AAAA` or `SRV`.
    #[serde(rename = "type")]
    pub record_type: String,
    /// The configured resolvers; empty: the system's (`/etc/resolv.conf`).
    pub resolvers: Vec<String>,
    /// The group's port (the targets' for A/AAAA; SRV records carry their own).
    pub port: u16,
    /// The discovered targets in force (`ip:port`, sorted): the last set the control plane
    /// took. A failed or held resolution leaves them as they were.
    pub targets: Vec<String>,
    /// `None`: not resolved yet.
    pub last_resolution: Option<Resolution>,
    /// Failed resolutions in a row (0 after any answer).
    pub consecutive_failures: u32,
    /// When the name is resolved next, Unix time in milliseconds (`None` before the first).
    pub next_resolution_unix_ms: Option<u64>,
    /// The last change of the targets the control plane took, and the generation it made.
    pub last_change: Option<Change>,
    /// Why the control plane refused the last change, while it is not taken (it is handed over
    /// again at the next resolution).
    pub refused: Option<String>,
    /// Resolutions since the group's discovery started (kept when a reload restarts it).
    pub resolutions: Counts,
    /// Addresses answers gave that no target may have (unspecified, multicast, broadcast),
    /// skipped, counted at each answer since the group's discovery started.
    #[serde(default)]
    pub skipped_addresses: u64,
}

/// One resolution: when, and what it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// Unix time in milliseconds.
    pub time_unix_ms: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What a resolution gave, as the group's plan took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Records: `found` distinct targets (at most `max_targets` of them are used).
    Answer { found: usize },
    /// No such records (NXDOMAIN when `nxdomain`): the group has no discovered targets now.
    Empty { nxdomain: bool },
    /// No such records, but the targets stay until `held_until_unix_ms` unless records come
    /// back (`hold_empty_seconds`).
    EmptyHeld {
        nxdomain: bool,
        held_until_unix_ms: u64,
    },
    /// No answer (timeout, SERVFAIL, REFUSED, no resolver reachable): the targets stay.
    Failed { error: String },
}

impl Outcome {
    /// The outcome's name as the API and the metrics' `outcome` label say it (`answer`,
    /// `empty`, `failed`; a held empty answer is `empty`).
    pub fn class(&self) -> &'static str {
        match self {
            Outcome::Answer { .. } => "answer",
            Outcome::Empty { .. } | Outcome::EmptyHeld { .. } => "empty",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// A change of the discovered targets the control plane took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The configuration generation in force after it.
    pub generation: u64,
    /// Unix time in milliseconds.
    pub time_unix_ms: u64,
}

/// Resolutions by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub answer: u64,
    pub empty: u64,
    pub failed: u64,
}

/// `A`, `AAAA`, `A+AAAA`, `SRV`: as the configuration writes it.
pub fn type_name(t: DiscoveryType) -> &'static str {
    match t {
        DiscoveryType::A => "A",
        DiscoveryType::Aaaa => "AAAA",
        DiscoveryType::AAndAaaa => "A+AAAA",
        DiscoveryType::Srv => "SRV",
    }
}

/// `at` as Unix milliseconds, given that `now` is `now_ms`.
fn unix_ms(at: Instant, now: Instant, now_ms: u64) -> u64 {
    match at.checked_duration_since(now) {
        Some(ahead) => now_ms.saturating_add(ahead.as_millis() as u64),
        None => now_ms.saturating_sub(now.duration_since(at).as_millis() as u64),
    }
}

impl GroupDiscovery {
    /// A group whose discovery starts (or restarts) from `targets`, not resolved yet.
    pub fn new(group: &str, d: &Discovery, port: u16, targets: &[SetTarget]) -> GroupDiscovery {
        GroupDiscovery {
            target_group: group.into(),
            name: d.name.clone(),
            record_type: type_name(d.kind).into(),
            resolvers: d.resolvers.clone(),
            port,
            targets: targets.iter().map(|t| t.addr.to_string()).collect(),
            last_resolution: None,
            consecutive_failures: 0,
            next_resolution_unix_ms: None,
            last_change: None,
            refused: None,
            resolutions: Counts::default(),
            skipped_addresses: 0,
        }
    }

    /// Takes a resolution's `answer` and the `step` `plan` made of it at `now` (Unix
    /// `now_ms`).
    pub fn resolved(
        &mut self,
        now: Instant,
        now_ms: u64,
        answer: &Answer,
        step: &Step,
        plan: &Plan,
    ) {
        let outcome = match answer {
            Answer::Records(found) if !found.is_empty() => {
                let mut addrs: Vec<SocketAddr> = found.iter().map(|f| f.target.addr).collect();
                addrs.sort_unstable();
                addrs.dedup();
                Outcome::Answer { found: addrs.len() }
            }
            Answer::Records(_) => empty(false, plan, now, now_ms),
            Answer::Empty { nxdomain, .. } => empty(*nxdomain, plan, now, now_ms),
            Answer::Failed(e) => Outcome::Failed { error: e.clone() },
        };
        let count = match outcome {
            Outcome::Answer { .. } => &mut self.resolutions.answer,
            Outcome::Empty { .. } | Outcome::EmptyHeld { .. } => &mut self.resolutions.empty,
            Outcome::Failed { .. } => &mut self.resolutions.failed,
        };
        *count = count.saturating_add(1);
        self.last_resolution = Some(Resolution {
            time_unix_ms: now_ms,
            outcome,
        });
        self.consecutive_failures = plan.failures();
        self.next_resolution_unix_ms = Some(unix_ms(step.next, now, now_ms));
    }

    /// Takes the control plane's answer to a change to `targets` at Unix `now_ms`: the
    /// generation in force, or why it refused (the targets in force stay).
    pub fn handed_over(&mut self, now_ms: u64, targets: &[SetTarget], r: &Result<u64, String>) {
        match r {
            Ok(generation) => {
                self.targets = targets.iter().map(|t| t.addr.to_string()).collect();
                self.last_change = Some(Change {
                    generation: *generation,
                    time_unix_ms: now_ms,
                });
                self.refused = None;
            }
            Err(e) => self.refused = Some(e.clone()),
        }
    }
}

/// An empty answer: held while the plan keeps targets for `hold_empty`.
fn empty(nxdomain: bool, plan: &Plan, now: Instant, now_ms: u64) -> Outcome {
    match plan.held_until() {
        Some(until) => Outcome::EmptyHeld {
            nxdomain,
            held_until_unix_ms: unix_ms(until, now, now_ms),
        },
        None => Outcome::Empty { nxdomain },
    }
}

/// Every discovering group's record, shared between the discovery tasks (writers) and the
/// admin API and metrics (readers). Cheap to clone.
#[derive(Clone, Default)]
pub struct Board(Arc<RwLock<BTreeMap<String, GroupDiscovery>>>);

impl Board {
    /// Every group's record, by group name.
    pub fn snapshot(&self) -> Vec<GroupDiscovery> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// One group's record.
    pub fn get(&self, group: &str) -> Option<GroupDiscovery> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
            .cloned()
    }

    /// A group's discovery (re)starts with `record`: its counts and last change carry over
    /// from the record it replaces.
    pub(crate) fn start(&self, mut record: GroupDiscovery) {
        let mut m = self.0.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = m.get(&record.target_group) {
            record.resolutions = old.resolutions;
            record.skipped_addresses = old.skipped_addresses;
            record.last_change = old.last_change.clone();
        }
        m.insert(record.target_group.clone(), record);
    }

    /// Updates a group's record (nothing when it has none).
    pub(super) fn update(&self, group: &str, f: impl FnOnce(&mut GroupDiscovery)) {
        if let Some(r) = self
            .0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(group)
        {
            f(r);
        }
    }

    /// A group no longer discovers.
    pub(super) fn remove(&self, group: &str) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(group);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::plan::Found;
    use super::super::plan::tests::{a, settings};
    use super::*;

    fn discovery() -> Discovery {
        toml::from_str(
            r#"name = "_web._tcp.svc.test"
               type = "SRV"
               resolvers = ["127.0.0.1:5353"]"#,
        )
        .unwrap()
    }

    /// Observes `answer` at `t0 + at` seconds (Unix 1000 s at `t0`) and, for a change, hands
    /// it over with `handed`.
    fn step(
        g: &mut GroupDiscovery,
        p: &mut Plan,
        t0: Instant,
        at: u64,
        answer: Answer,
        handed: Result<u64, String>,
    ) {
        let now = t0 + Duration::from_secs(at);
        let now_ms = 1_000_000 + at * 1000;
        let s = p.observe(now, answer.clone());
        g.resolved(now, now_ms, &answer, &s, p);
        if let Some(t) = &s.targets {
            if handed.is_err() {
                p.reset_targets(g.targets.iter().map(|t| a(t)));
            }
            g.handed_over(now_ms, t, &handed);
        }
    }

    #[test]
    fn a_record_follows_answers_failures_and_hand_overs() {
        let t0 = Instant::now();
        let mut p = Plan::new(settings(2));
        let mut g = GroupDiscovery::new("web", &discovery(), 8080, &[]);
        assert_eq!(
            (g.record_type.as_str(), g.resolvers.len()),
            ("SRV", 1),
            "{g:?}"
        );
        assert_eq!(g.last_resolution, None);
        let recs = Answer::Records(vec![
            Found {
                target: a("10.0.0.2:80"),
                ttl: 20,
            },
            Found {
                target: a("10.0.0.1:80"),
                ttl: 20,
            },
            Found {
                target: a("10.0.0.1:80"),
                ttl: 60,
            },
            Found {
                target: a("10.0.0.3:80"),
                ttl: 60,
            },
        ]);
        step(&mut g, &mut p, t0, 0, recs.clone(), Ok(2));
        assert_eq!(g.targets, ["10.0.0.1:80", "10.0.0.2:80"], "max_targets 2");
        assert_eq!(
            g.last_resolution,
            Some(Resolution {
                time_unix_ms: 1_000_000,
                outcome: Outcome::Answer { found: 3 }
            })
        );
        assert_eq!(g.next_resolution_unix_ms, Some(1_020_000), "TTL 20 s");
        assert_eq!(
            g.last_change,
            Some(Change {
                generation: 2,
                time_unix_ms: 1_000_000
            })
        );
        // Failures: the targets stay, the streak and the back-off show.
        for (i, at) in [20, 21, 23].into_iter().enumerate() {
            step(
                &mut g,
                &mut p,
                t0,
                at,
                Answer::Failed("request timed out".into()),
                Ok(0),
            );
            assert_eq!(g.consecutive_failures, i as u32 + 1);
        }
        assert_eq!(g.targets, ["10.0.0.1:80", "10.0.0.2:80"]);
        assert_eq!(g.next_resolution_unix_ms, Some(1_027_000), "4 s after 23");
        assert_eq!(
            g.last_resolution.as_ref().unwrap().outcome,
            Outcome::Failed {
                error: "request timed out".into()
            }
        );
        // A changed answer the control plane refuses: the targets in force stay, the reason shows.
        let one = Answer::Records(vec![Found {
            target: a("10.0.0.9:80"),
            ttl: 10,
        }]);
        step(
            &mut g,
            &mut p,
            t0,
            27,
            one.clone(),
            Err("weir is stopping".into()),
        );
        assert_eq!(g.consecutive_failures, 0);
        assert_eq!(g.targets, ["10.0.0.1:80", "10.0.0.2:80"]);
        assert_eq!(g.refused.as_deref(), Some("weir is stopping"));
        assert_eq!(g.last_change.as_ref().unwrap().generation, 2);
        // Taken at the next resolution.
        step(&mut g, &mut p, t0, 37, one, Ok(3));
        assert_eq!(g.targets, ["10.0.0.9:80"]);
        assert_eq!(
            (g.refused.clone(), g.last_change.clone().unwrap().generation),
            (None, 3)
        );
        assert_eq!(
            g.resolutions,
            Counts {
                answer: 3,
                empty: 0,
                failed: 3
            }
        );
    }

    #[test]
    fn an_empty_answer_shows_held_then_applied() {
        let t0 = Instant::now();
        let mut p = Plan::new(settings(2));
        let mut g = GroupDiscovery::new("web", &discovery(), 8080, &[]);
        let one = Answer::Records(vec![Found {
            target: a("10.0.0.1:80"),
            ttl: 10,
        }]);
        step(&mut g, &mut p, t0, 0, one, Ok(2));
        let nx = Answer::Empty {
            nxdomain: true,
            ttl: None,
        };
        step(&mut g, &mut p, t0, 10, nx.clone(), Ok(0));
        assert_eq!(
            g.last_resolution.as_ref().unwrap().outcome,
            Outcome::EmptyHeld {
                nxdomain: true,
                held_until_unix_ms: 1_040_000
            }
        );
        assert_eq!(g.targets, ["10.0.0.1:80"], "held");
        step(&mut g, &mut p, t0, 40, nx, Ok(3));
        assert_eq!(
            g.last_resolution.as_ref().unwrap().outcome,
            Outcome::Empty { nxdomain: true }
        );
        assert!(g.targets.is_empty());
        assert_eq!(g.resolutions.empty, 2);
        assert_eq!(Outcome::Empty { nxdomain: true }.class(), "empty");
    }

    #[test]
    fn the_json_is_flat_and_reads_back() {
        let mut g = GroupDiscovery::new("web", &discovery(), 8080, &[a("10.0.0.1:80")]);
        g.last_resolution = Some(Resolution {
            time_unix_ms: 5,
            outcome: Outcome::Failed {
                error: "SERVFAIL".into(),
            },
        });
        let v = serde_json::to_value(&g).unwrap();
        assert_eq!(v["type"], "SRV");
        assert_eq!(v["targets"], serde_json::json!(["10.0.0.1:80"]));
        assert_eq!(
            v["last_resolution"],
            serde_json::json!({"time_unix_ms": 5, "outcome": "failed", "error": "SERVFAIL"})
        );
        assert_eq!(
            v["resolutions"],
            serde_json::json!({"answer": 0, "empty": 0, "failed": 0})
        );
        assert_eq!(serde_json::from_value::<GroupDiscovery>(v).unwrap(), g);
    }

    #[test]
    fn the_board_keeps_counts_across_restarts_and_forgets_removed_groups() {
        let b = Board::default();
        let mut r = GroupDiscovery::new("web", &discovery(), 8080, &[]);
        b.start(r.clone());
        b.update("web", |g| {
            g.resolutions.answer = 4;
            g.last_change = Some(Change {
                generation: 7,
                time_unix_ms: 1,
            });
        });
        b.update("other", |_| panic!("no such group"));
        r.name = "web2.svc.test".into();
        b.start(r);
        let got = b.get("web").unwrap();
        assert_eq!(
            (got.name.as_str(), got.resolutions.answer),
            ("web2.svc.test", 4)
        );
        assert_eq!(got.last_change.unwrap().generation, 7);
        assert_eq!(b.snapshot().len(), 1);
        b.remove("web");
        assert!(b.snapshot().is_empty());
    }
}
