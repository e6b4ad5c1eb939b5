//! One group's discovery as a pure state machine: given each resolution's answer and the time
//! it arrived, the group's discovered targets and when to resolve again. No I/O, no clock of its
//! own: the caller passes `now` (tests pass any instant).
//!
//! - **Records** (A/AAAA addresses, or SRV records with their hosts' addresses, weights and
//!   priorities): they are the targets (at most `max_targets`: the lowest priorities, then the
//!   lowest addresses kept). The name is resolved again
//!   after the smallest TTL involved, clamped to `ttl_floor`–`ttl_ceiling`.
//! - **An empty answer** (NXDOMAIN, or the name has no such records) is an answer, not a
//!   failure: the discovered targets are removed (they drain) — but only once every answer for
//!   `hold_empty` said so (HAProxy's `hold nx`), so a record set being rewritten, or a name
//!   briefly missing, does not empty the group. Meanwhile the last targets stay.
//! - **A failure** (timeout, SERVFAIL, REFUSED, no resolver reachable) says nothing about the
//!   targets: the last ones stay, however long it lasts, and the name is tried again after
//!   [`RETRY_MIN`], doubling at each failure in a row up to [`RETRY_MAX`] (or the TTL ceiling
//!   when lower). DNS going away never empties a group.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use lb_l7::target_sets::SetTarget;

/// The first retry after a failed resolution.
pub const RETRY_MIN: Duration = Duration::from_secs(1);
/// The longest wait between retries while resolution keeps failing.
pub const RETRY_MAX: Duration = Duration::from_secs(30);

/// `[target_group.discovery]`'s timings and bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub ttl_floor: Duration,
    pub ttl_ceiling: Duration,
    pub hold_empty: Duration,
    pub max_targets: usize,
}

impl Settings {
    pub fn from_config(d: &lb_l7::config::Discovery) -> Settings {
        Settings {
            ttl_floor: Duration::from_secs(d.ttl_floor_seconds),
            ttl_ceiling: Duration::from_secs(d.ttl_ceiling_seconds.max(d.ttl_floor_seconds)),
            hold_empty: Duration::from_secs(d.hold_empty_seconds),
            max_targets: d.max_targets.max(1) as usize,
        }
    }

    fn clamp(&self, ttl: u32) -> Duration {
        Duration::from_secs(ttl.into()).clamp(self.ttl_floor, self.ttl_ceiling)
    }
}

/// One target found: its address and port, its weight and priority (SRV; 1 and 0 for address
/// records), and the smallest TTL of the records that gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub target: SetTarget,
    pub ttl: u32,
}

/// What one resolution gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The records found (an empty list is the same as [`Answer::Empty`] without a TTL).
    Records(Vec<Found>),
    /// The name has no such records: NXDOMAIN (`nxdomain`) or an empty answer; `ttl` is the
    /// negative-caching TTL when the server gave one (its SOA).
    Empty { nxdomain: bool, ttl: Option<u32> },
    /// No answer: timeout, SERVFAIL, REFUSED, unreachable resolvers, …
    Failed(String),
}

/// What happened, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum News {
    /// The discovered targets changed: new addresses, addresses gone, and addresses kept with
    /// another weight or priority.
    Changed {
        added: Vec<SetTarget>,
        removed: Vec<SetTarget>,
        reweighted: Vec<SetTarget>,
    },
    /// More records than `max_targets`: only that many are used.
    Truncated { found: usize, kept: usize },
    /// Resolution failed: the last targets stay (`failures` in a row, next try in `retry`).
    Failing {
        reason: String,
        failures: u32,
        retry: Duration,
        kept: usize,
    },
    /// An answer again after `failures` failed resolutions.
    Recovered { failures: u32 },
    /// The first empty answer while targets exist: they stay until `hold` has passed.
    EmptyHeld {
        nxdomain: bool,
        hold: Duration,
        kept: usize,
    },
}

/// The outcome of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The new target set, when it changed (sorted by address).
    pub targets: Option<Vec<SetTarget>>,
    /// When to resolve again.
    pub next: Instant,
    pub news: Vec<News>,
}

/// One group's discovered targets and what is known about its name.
#[derive(Debug, Clone)]
pub struct Plan {
    settings: Settings,
    targets: BTreeSet<SetTarget>,
    failures: u32,
    /// Since when every answer has been empty.
    empty_since: Option<Instant>,
    /// The unusable addresses answers gave that were already said ([`Plan::first_skips`]).
    skips_said: BTreeSet<IpAddr>,
}

/// An address an answer gave that no target may have, and why.
pub type Skipped = (SocketAddr, &'static str);

/// `answer` without the addresses no target may have — the unspecified address, a multicast
/// or the broadcast address, which the file and the admin API refuse too
/// (`lb_l7::config::unusable_target_ip`) — and those addresses. An answer of only such
/// addresses is an empty answer.
pub fn usable(answer: Answer) -> (Answer, Vec<Skipped>) {
    let Answer::Records(found) = answer else {
        return (answer, Vec::new());
    };
    let mut skipped = Vec::new();
    let kept = found
        .into_iter()
        .filter(
            |f| match lb_l7::config::unusable_target_ip(f.target.addr.ip()) {
                Some(why) => {
                    skipped.push((f.target.addr, why));
                    false
                }
                None => true,
            },
        )
        .collect();
    (Answer::Records(kept), skipped)
}

impl Plan {
    /// No targets known yet.
    pub fn new(settings: Settings) -> Plan {
        Plan::with_targets(settings, std::iter::empty())
    }

    /// Starting from targets found before (a reload that kept the group's discovery settings).
    pub fn with_targets(settings: Settings, targets: impl IntoIterator<Item = SetTarget>) -> Plan {
        Plan {
            settings,
            targets: targets.into_iter().collect(),
            failures: 0,
            empty_since: None,
            skips_said: BTreeSet::new(),
        }
    }

    /// The addresses of `skipped` not said before: each unusable address is said once.
    pub fn first_skips(&mut self, skipped: &[Skipped]) -> Vec<Skipped> {
        skipped
            .iter()
            .filter(|(addr, _)| self.skips_said.insert(addr.ip()))
            .copied()
            .collect()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The targets in force.
    pub fn targets(&self) -> impl Iterator<Item = SetTarget> + '_ {
        self.targets.iter().copied()
    }

    /// Forgets a change its receiver refused: `targets` are the ones in force, so the next
    /// answer that differs from them is a change again (and is handed over again).
    pub fn reset_targets(&mut self, targets: impl IntoIterator<Item = SetTarget>) {
        self.targets = targets.into_iter().collect();
    }

    /// Resolution failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// While only empty answers have come since some time and targets remain: when they are
    /// removed unless records come back (`hold_empty` after the first of those answers).
    pub fn held_until(&self) -> Option<Instant> {
        let since = self.empty_since?;
        (!self.targets.is_empty()).then(|| since + self.settings.hold_empty)
    }

    /// Takes the answer of a resolution made at `now`.
    pub fn observe(&mut self, now: Instant, answer: Answer) -> Step {
        let mut news = Vec::new();
        if !matches!(answer, Answer::Failed(_)) && self.failures > 0 {
            news.push(News::Recovered {
                failures: std::mem::take(&mut self.failures),
            });
        }
        let (wanted, next) = match answer {
            Answer::Records(found) if !found.is_empty() => {
                self.empty_since = None;
                let ttl = found.iter().map(|f| f.ttl).min().unwrap_or(0);
                let all = one_per_address(&found);
                let mut first: Vec<&SetTarget> = all.iter().collect();
                first.sort_by_key(|t| (t.priority, t.addr));
                let kept: BTreeSet<SetTarget> = first
                    .into_iter()
                    .copied()
                    .take(self.settings.max_targets)
                    .collect();
                if kept.len() < all.len() {
                    news.push(News::Truncated {
                        found: all.len(),
                        kept: kept.len(),
                    });
                }
                (kept, now + self.settings.clamp(ttl))
            }
            Answer::Records(_) => return self.empty(now, false, None, news),
            Answer::Empty { nxdomain, ttl } => return self.empty(now, nxdomain, ttl, news),
            Answer::Failed(reason) => {
                self.failures = self.failures.saturating_add(1);
                let retry = retry_after(self.failures, self.settings.ttl_ceiling);
                news.push(News::Failing {
                    reason,
                    failures: self.failures,
                    retry,
                    kept: self.targets.len(),
                });
                return Step {
                    targets: None,
                    next: now + retry,
                    news,
                };
            }
        };
        let targets = self.replace(wanted, &mut news);
        Step {
            targets,
            next,
            news,
        }
    }

    fn empty(
        &mut self,
        now: Instant,
        nxdomain: bool,
        ttl: Option<u32>,
        mut news: Vec<News>,
    ) -> Step {
        let since = *self.empty_since.get_or_insert(now);
        let mut next = now + ttl.map_or(self.settings.ttl_floor, |t| self.settings.clamp(t));
        let held_until = since + self.settings.hold_empty;
        if self.targets.is_empty() || now >= held_until {
            let targets = self.replace(BTreeSet::new(), &mut news);
            return Step {
                targets,
                next,
                news,
            };
        }
        if since == now {
            news.push(News::EmptyHeld {
                nxdomain,
                hold: self.settings.hold_empty,
                kept: self.targets.len(),
            });
        }
        // Look again when the hold ends, to remove the targets on time.
        next = next.min(held_until);
        Step {
            targets: None,
            next,
            news,
        }
    }

    /// Makes `wanted` the targets; `Some(sorted)` when they changed.
    fn replace(
        &mut self,
        wanted: BTreeSet<SetTarget>,
        news: &mut Vec<News>,
    ) -> Option<Vec<SetTarget>> {
        if wanted == self.targets {
            return None;
        }
        let addrs = |s: &BTreeSet<SetTarget>| -> BTreeSet<SocketAddr> {
            s.iter().map(|t| t.addr).collect()
        };
        let (before, after) = (addrs(&self.targets), addrs(&wanted));
        news.push(News::Changed {
            added: wanted
                .iter()
                .filter(|t| !before.contains(&t.addr))
                .copied()
                .collect(),
            removed: self
                .targets
                .iter()
                .filter(|t| !after.contains(&t.addr))
                .copied()
                .collect(),
            reweighted: wanted
                .difference(&self.targets)
                .filter(|t| before.contains(&t.addr))
                .copied()
                .collect(),
        });
        self.targets = wanted;
        Some(self.targets.iter().copied().collect())
    }
}

/// One target per address: an address several records gave (the same host and port in two SRV
/// records) takes the lowest priority, and the highest weight of it.
fn one_per_address(found: &[Found]) -> BTreeSet<SetTarget> {
    let mut by_addr: BTreeMap<SocketAddr, SetTarget> = BTreeMap::new();
    for f in found {
        let t = f.target;
        by_addr
            .entry(t.addr)
            .and_modify(|k| {
                if (t.priority, std::cmp::Reverse(t.weight))
                    < (k.priority, std::cmp::Reverse(k.weight))
                {
                    *k = t;
                }
            })
            .or_insert(t);
    }
    by_addr.into_values().collect()
}

/// The wait after `failures` failed resolutions in a row: 1 s, 2 s, 4 s, … at most
/// [`RETRY_MAX`] or `ceiling`.
pub fn retry_after(failures: u32, ceiling: Duration) -> Duration {
    let doubled = RETRY_MIN.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled
        .min(RETRY_MAX.min(ceiling))
        .max(RETRY_MIN.min(ceiling))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// TTLs kept within 5..300 s, an empty answer held 30 s, at most `max_targets` targets.
    pub(crate) fn settings(max_targets: usize) -> Settings {
        Settings {
            ttl_floor: Duration::from_secs(5),
            ttl_ceiling: Duration::from_secs(300),
            hold_empty: Duration::from_secs(30),
            max_targets,
        }
    }

    /// A target of weight 1 and priority 0 (an address record's).
    pub(crate) fn a(s: &str) -> SetTarget {
        SetTarget::plain(s.parse().unwrap())
    }

    #[test]
    fn unusable_addresses_are_skipped_and_said_once() {
        let found = |addrs: &[&str]| {
            Answer::Records(
                addrs
                    .iter()
                    .map(|s| Found {
                        target: a(s),
                        ttl: 60,
                    })
                    .collect(),
            )
        };
        let bad = [
            "0.0.0.0:80",
            "[::]:80",
            "[ff02::1]:80",
            "255.255.255.255:80",
        ];
        let (kept, skipped) = usable(found(&[bad.as_slice(), &["10.0.0.1:80"]].concat()));
        assert_eq!(kept, found(&["10.0.0.1:80"]));
        let addrs: Vec<String> = skipped.iter().map(|(a, _)| a.to_string()).collect();
        assert_eq!(addrs, bad);
        assert!(skipped[2].1.contains("multicast"), "{:?}", skipped[2]);
        let mut p = Plan::new(settings(10));
        assert_eq!(p.first_skips(&skipped).len(), 4);
        assert!(p.first_skips(&skipped).is_empty(), "said once");
        // Only unusable addresses: an empty answer.
        let (kept, _) = usable(found(&["[::ffff:0.0.0.0]:80"]));
        let step = p.observe(Instant::now(), kept);
        assert_eq!(step.targets, None);
        assert!(p.targets().next().is_none());
    }

    /// A target with an SRV record's weight and priority.
    fn srv(s: &str, weight: u32, priority: u16) -> SetTarget {
        SetTarget {
            weight,
            priority,
            ..a(s)
        }
    }

    fn found(list: &[(&str, u32)]) -> Answer {
        Answer::Records(
            list.iter()
                .map(|&(s, ttl)| Found { target: a(s), ttl })
                .collect(),
        )
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn records_are_the_targets_and_the_smallest_ttl_clamped_is_the_next_time() {
        let t0 = Instant::now();
        let mut p = Plan::new(settings(3));
        let s = p.observe(t0, found(&[("10.0.0.2:80", 60), ("10.0.0.1:8080", 20)]));
        assert_eq!(s.targets, Some(vec![a("10.0.0.1:8080"), a("10.0.0.2:80")]));
        assert_eq!(s.next, t0 + secs(20));
        assert_eq!(
            s.news,
            [News::Changed {
                added: vec![a("10.0.0.1:8080"), a("10.0.0.2:80")],
                removed: vec![],
                reweighted: vec![],
            }]
        );
        // The same answer: nothing changes. TTL 1 s → the floor; 1 day → the ceiling.
        let s = p.observe(
            t0 + secs(20),
            found(&[("10.0.0.2:80", 1), ("10.0.0.1:8080", 9)]),
        );
        assert_eq!((s.targets, s.next), (None, t0 + secs(25)));
        assert!(s.news.is_empty());
        let s = p.observe(
            t0,
            found(&[("10.0.0.2:80", 86_400), ("10.0.0.1:8080", 86_400)]),
        );
        assert_eq!(s.next, t0 + secs(300));
        // One record replaced: one added, one removed.
        let s = p.observe(t0, found(&[("10.0.0.2:80", 30), ("10.0.0.3:80", 30)]));
        assert_eq!(s.targets, Some(vec![a("10.0.0.2:80"), a("10.0.0.3:80")]));
        assert_eq!(
            s.news,
            [News::Changed {
                added: vec![a("10.0.0.3:80")],
                removed: vec![a("10.0.0.1:8080")],
                reweighted: vec![],
            }]
        );
    }

    #[test]
    fn at_most_max_targets_the_lowest_addresses() {
        let mut p = Plan::new(settings(3));
        let s = p.observe(
            Instant::now(),
            found(&[
                ("10.0.0.4:80", 10),
                ("10.0.0.1:80", 10),
                ("10.0.0.3:80", 10),
                ("10.0.0.2:80", 10),
                ("10.0.0.1:80", 10),
            ]),
        );
        assert_eq!(
            s.targets,
            Some(vec![a("10.0.0.1:80"), a("10.0.0.2:80"), a("10.0.0.3:80")])
        );
        assert!(s.news.contains(&News::Truncated { found: 4, kept: 3 }));
    }

    #[test]
    fn srv_weights_and_priorities_are_kept_and_a_change_of_them_is_a_change() {
        let t0 = Instant::now();
        let answer = |list: &[SetTarget]| {
            Answer::Records(list.iter().map(|&t| Found { target: t, ttl: 30 }).collect())
        };
        // max_targets keeps the lowest priorities first, then the lowest addresses; an address
        // two records gave keeps the lowest priority (and that priority's highest weight).
        let mut p = Plan::new(settings(3));
        let s = p.observe(
            t0,
            answer(&[
                srv("10.0.0.1:80", 10, 20),
                srv("10.0.0.2:80", 10, 20),
                srv("10.0.0.9:80", 999, 10),
                srv("10.0.0.3:80", 5, 30),
                srv("10.0.0.2:80", 300, 10),
                srv("10.0.0.2:80", 200, 10),
            ]),
        );
        assert_eq!(
            s.targets,
            Some(vec![
                srv("10.0.0.1:80", 10, 20),
                srv("10.0.0.2:80", 300, 10),
                srv("10.0.0.9:80", 999, 10),
            ])
        );
        assert!(s.news.contains(&News::Truncated { found: 4, kept: 3 }));
        // The same addresses with another weight: a change, and said to be one.
        let s = p.observe(
            t0,
            answer(&[
                srv("10.0.0.1:80", 10, 20),
                srv("10.0.0.2:80", 100, 10),
                srv("10.0.0.9:80", 999, 10),
            ]),
        );
        assert_eq!(
            s.news,
            [News::Changed {
                added: vec![],
                removed: vec![],
                reweighted: vec![srv("10.0.0.2:80", 100, 10)],
            }]
        );
        assert_eq!(s.targets.unwrap()[1], srv("10.0.0.2:80", 100, 10));
        // Nothing changed: no change.
        let s = p.observe(
            t0,
            answer(&[
                srv("10.0.0.9:80", 999, 10),
                srv("10.0.0.1:80", 10, 20),
                srv("10.0.0.2:80", 100, 10),
            ]),
        );
        assert_eq!((s.targets, s.news.len()), (None, 0));
    }

    #[test]
    fn failures_keep_the_last_targets_and_back_off() {
        let t0 = Instant::now();
        let mut p = Plan::new(settings(3));
        p.observe(t0, found(&[("10.0.0.1:80", 10), ("10.0.0.2:80", 10)]));
        let mut waits = Vec::new();
        let mut now = t0 + secs(10);
        for _ in 0..8 {
            let s = p.observe(now, Answer::Failed("request timed out".into()));
            assert_eq!(s.targets, None, "a failure never changes the targets");
            waits.push((s.next - now).as_secs());
            now = s.next;
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert!(matches!(
            &p.observe(now, Answer::Failed("SERVFAIL".into())).news[..],
            [News::Failing {
                failures: 9,
                kept: 2,
                ..
            }]
        ));
        assert_eq!(p.targets().count(), 2);
        // The next answer is taken as usual and says how many failures it ends.
        let s = p.observe(now, found(&[("10.0.0.1:80", 10)]));
        assert_eq!(s.targets, Some(vec![a("10.0.0.1:80")]));
        assert_eq!(s.news[0], News::Recovered { failures: 9 });
        assert_eq!(p.failures(), 0);
        // A ceiling below RETRY_MAX bounds the retries too.
        assert_eq!(retry_after(10, secs(10)), secs(10));
        assert_eq!(retry_after(1, secs(10)), secs(1));
    }

    #[test]
    fn an_empty_answer_removes_the_targets_after_the_hold() {
        let t0 = Instant::now();
        let mut p = Plan::new(settings(3));
        p.observe(t0, found(&[("10.0.0.1:80", 10)]));
        let nx = Answer::Empty {
            nxdomain: true,
            ttl: None,
        };
        let s = p.observe(t0 + secs(10), nx.clone());
        assert_eq!(s.targets, None, "held");
        assert_eq!(s.next, t0 + secs(15), "resolved again at the floor");
        assert_eq!(p.held_until(), Some(t0 + secs(40)));
        assert_eq!(
            s.news,
            [News::EmptyHeld {
                nxdomain: true,
                hold: secs(30),
                kept: 1
            }]
        );
        // A failure in between neither ends nor restarts the hold.
        p.observe(t0 + secs(15), Answer::Failed("timeout".into()));
        let s = p.observe(t0 + secs(36), nx.clone());
        assert_eq!(s.targets, None);
        assert_eq!(s.next, t0 + secs(40), "the hold's end, before the floor");
        let s = p.observe(t0 + secs(40), nx.clone());
        assert_eq!(s.targets, Some(vec![]));
        assert_eq!(p.held_until(), None, "nothing left to hold");
        assert_eq!(
            s.news.last(),
            Some(&News::Changed {
                added: vec![],
                removed: vec![a("10.0.0.1:80")],
                reweighted: vec![],
            })
        );
        // Empty and nothing to remove: quiet; the negative TTL (clamped) says when to look again.
        let s = p.observe(
            t0 + secs(45),
            Answer::Empty {
                nxdomain: false,
                ttl: Some(60),
            },
        );
        assert_eq!((s.targets, s.news.len()), (None, 0));
        assert_eq!(s.next, t0 + secs(105));
        // Records again: the hold is over.
        let s = p.observe(t0 + secs(105), found(&[("10.0.0.9:80", 10)]));
        assert_eq!(s.targets, Some(vec![a("10.0.0.9:80")]));
    }

    #[test]
    fn records_coming_back_within_the_hold_keep_the_targets() {
        let t0 = Instant::now();
        let mut p = Plan::new(settings(3));
        p.observe(t0, found(&[("10.0.0.1:80", 10)]));
        p.observe(t0 + secs(10), Answer::Records(vec![]));
        let s = p.observe(t0 + secs(20), found(&[("10.0.0.1:80", 10)]));
        assert_eq!((s.targets, s.news.len()), (None, 0));
        // A new hold starts from the next empty answer.
        let s = p.observe(t0 + secs(45), Answer::Records(vec![]));
        assert_eq!(s.targets, None);
        assert_eq!(s.next, t0 + secs(50));
    }

    #[test]
    fn no_hold_removes_at_once_and_a_reload_carries_the_targets() {
        let t0 = Instant::now();
        let st = Settings {
            hold_empty: Duration::ZERO,
            ..settings(3)
        };
        let mut p = Plan::with_targets(st, [a("10.0.0.1:80")]);
        assert_eq!(p.targets().collect::<Vec<_>>(), [a("10.0.0.1:80")]);
        // A refused hand-over is forgotten: the same answer is a change again.
        let s = p.observe(t0, found(&[("10.0.0.2:80", 10)]));
        assert!(s.targets.is_some());
        p.reset_targets([a("10.0.0.1:80")]);
        let s = p.observe(t0, found(&[("10.0.0.2:80", 10)]));
        assert_eq!(s.targets, Some(vec![a("10.0.0.2:80")]));
        p.reset_targets([a("10.0.0.1:80")]);
        let s = p.observe(
            t0,
            Answer::Empty {
                nxdomain: true,
                ttl: None,
            },
        );
        assert_eq!(s.targets, Some(vec![]));
    }
}
