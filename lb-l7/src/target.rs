//! Target groups at run time: targets with a state, counters and a connection pool.

use crate::anomaly;
use crate::config::{
    AlgorithmType, AnomalyMitigation, HashOn, Stickiness, StickinessType, TargetGroup,
    TargetProtocol,
};
use crate::metrics::{TargetCounters, TargetSnapshot};
use crate::pool::{Pool, PoolPolicy};
use crate::select::{self, Algorithm, Candidate, Draw, Facts};
use crate::sticky;
use crate::target_health::GroupHealth;
pub use crate::target_health::TargetState;
use crate::target_limit::{Limit, Slot};
use crate::upstream::UpStream;

/// The TLS client of an HTTPS target group.
#[derive(Clone)]
pub struct TlsClient(pub tokio_rustls::TlsConnector);

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient")
    }
}
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TargetRt {
    pub addr: SocketAddr,
    pub weight: u32,
    /// SRV priority (`select::eligible`): 0 but for discovered targets.
    pub priority: u16,
    pub zone: Option<String>,
    /// This target's index in its group (its slot in `health`).
    index: usize,
    /// State, passive health and slow start, shared with the group's other targets.
    health: Arc<GroupHealth>,
    /// `target_limits`: the concurrency cap and queue, when set.
    limit: Option<Limit>,
    pub outstanding: AtomicU64,
    /// Carried over, with the pool, to the same address in the group rebuilt by a later
    /// generation (`GroupRt::new`): the counters stay monotonic.
    pub counters: Arc<TargetCounters>,
    /// Idle keep-alive connections to this target, and what the pool learned of its
    /// keep-alive; carried over as `counters` while the group's protocol and pool settings
    /// stay.
    pub pool: Arc<Pool<UpStream>>,
    /// HTTPS target groups: the TLS client.
    pub tls: Option<TlsClient>,
    id_hash: u64,
    /// Anomaly detection's verdict at the last tick.
    anomalous: AtomicBool,
    /// Anomaly mitigation: the weight counts `>> weight_shift`.
    weight_shift: AtomicU8,
    /// Draining, past its deregistration deadline: requests waiting on it get a 502.
    pub expiry: crate::expiry::Expiry,
}

impl TargetRt {
    pub fn state(&self) -> TargetState {
        self.health.state(self.index)
    }
    /// For the health checker. Becoming healthy may start slow start (ALB's rule, see
    /// `slow_start`).
    pub fn set_state(&self, s: TargetState) {
        self.health.set_state(self.index, s);
    }
    /// Passive health (this worker's outlier detection) has the target ejected now.
    pub fn is_ejected(&self) -> bool {
        self.health.is_ejected(self.index)
    }
    pub fn snapshot(&self) -> TargetSnapshot {
        TargetSnapshot {
            request_count: self.counters.requests.load(Relaxed),
            connection_error_count: self.counters.connection_errors.load(Relaxed),
            outstanding_requests: self.outstanding.load(Relaxed),
            idle_connections: self.pool.idle_count() as u64,
            state: self.state().name().into(),
            anomaly: if self.anomalous.load(Relaxed) {
                "anomalous"
            } else {
                "normal"
            },
            weight_shift: self.weight_shift.load(Relaxed),
            ejected: self.is_ejected(),
            ejections: self.health.ejections(self.index),
            slow_start_permille: self.health.slow_start_permille(self.index),
            queue_length: self.limit.as_ref().map_or(0, Limit::queue_length),
            queued_requests: self.counters.queued.load(Relaxed),
            queue_rejected_requests: self.counters.queue_rejected.load(Relaxed),
            keepalive: self.pool.keepalive().into(),
            target_2xx: self.counters.responses[0].load(Relaxed),
            target_3xx: self.counters.responses[1].load(Relaxed),
            target_4xx: self.counters.responses[2].load(Relaxed),
            target_5xx: self.counters.responses[3].load(Relaxed),
            response_time_buckets: self
                .counters
                .response_time
                .iter()
                .map(|b| b.load(Relaxed))
                .collect(),
            response_time_sum_us: self.counters.response_time_sum_us.load(Relaxed),
        }
    }

    /// The control plane's active health check of this target passed (Envoy's
    /// `successful_active_health_check_uneject_host`): passive health's ejection of it, if
    /// any, ends now. Call on every passing check (not only on a state change).
    pub fn active_check_passed(&self) {
        self.health.active_check_passed(self.index);
    }

    /// Counts an error for anomaly detection and passive health (a 5xx, or no usable
    /// response).
    pub fn count_error(&self) {
        self.counters.errors.fetch_add(1, Relaxed);
        self.health.error(self.index);
    }

    /// The target answered with `status`: a 5xx is an error, anything else ends its run of
    /// errors (passive health).
    pub fn answered(&self, status: u16) {
        if status >= 500 {
            self.count_error();
        } else {
            self.health.success(self.index);
        }
    }

    /// At its concurrency cap (`target_limits`)?
    pub fn is_full(&self) -> bool {
        self.limit.as_ref().is_some_and(Limit::full)
    }

    /// Requests to this target in flight (from their slot on, the connection attempt
    /// included: `pipeline::prepare::Outstanding`) or waiting in its queue: what a draining
    /// target waits for. A request holds one or the other at every await from its pick on (a
    /// freed slot wakes its waiter, counted queued until it runs), so on the worker's one
    /// thread this is never 0 while a request still means to reach the target.
    pub fn busy(&self) -> u64 {
        self.outstanding.load(Relaxed)
            + self
                .limit
                .as_ref()
                .map_or(0, |l| u64::from(l.queue_length()))
    }

    /// A slot for one request when the target is capped (waiting in its queue if need be);
    /// `None` when it is not capped; the `error_reason` of the 503 when refused.
    pub async fn admit(&self) -> Result<Option<Slot>, &'static str> {
        match &self.limit {
            None => Ok(None),
            Some(l) => l.admit(&self.counters).await.map(Some),
        }
    }
}

#[derive(Debug)]
pub struct GroupRt {
    pub name: String,
    pub targets: Vec<Arc<TargetRt>>,
    pub algorithm: Algorithm,
    pub hash_on: Option<HashOn>,
    /// Cross-zone off: weir's own zone, where requests stay while it has a target.
    local_zone: Option<String>,
    health: Arc<GroupHealth>,
    /// Target stickiness, when enabled.
    pub sticky: Option<StickyRt>,
    /// The group's token in a group-stickiness cookie (`AWSALBTG`).
    pub token: String,
    /// Anomaly detection runs (weighted_random groups), and whether it mitigates.
    detect: bool,
    mitigate: bool,
    anomaly: Mutex<AnomalyTick>,
    seq: AtomicU64,
}

/// What the one-second anomaly tick remembers per target.
#[derive(Debug, Default)]
struct AnomalyTick {
    /// Counter values (outcomes, errors) at the last tick.
    last: Vec<(u64, u64)>,
    targets: Vec<anomaly::TargetTick>,
}

impl AnomalyTick {
    /// For `targets`, going on from `before`'s ticks for the targets it had (their counters
    /// are carried over, so the next tick counts from the last one, not from zero).
    fn carried(targets: &[Arc<TargetRt>], before: Option<&GroupRt>) -> AnomalyTick {
        let Some((b, st)) = before.and_then(|b| Some((b, b.anomaly.lock().ok()?))) else {
            return AnomalyTick::default();
        };
        let mut out = AnomalyTick::default();
        for t in targets {
            let j = b.targets.iter().position(|o| o.addr == t.addr);
            let at = |v: &[(u64, u64)]| j.and_then(|j| v.get(j).copied());
            let c = &t.counters;
            let now = (
                c.requests.load(Relaxed) + c.connection_errors.load(Relaxed),
                c.errors.load(Relaxed),
            );
            out.last.push(at(&st.last).unwrap_or(now));
            out.targets.push(
                j.and_then(|j| st.targets.get(j).copied())
                    .unwrap_or_default(),
            );
        }
        out
    }
}

/// A group's target stickiness at run time.
#[derive(Debug)]
pub struct StickyRt {
    pub kind: StickyKind,
    /// How long the cookie lasts.
    pub lasts: Duration,
    /// Each target's token, by target index.
    pub tokens: Vec<String>,
    by_token: HashMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKind {
    /// weir's cookie `AWSALB` (and `AWSALBCORS`) on every response.
    LbCookie,
    /// `AWSALBAPP-0` set when the target sets the application's cookie of this name.
    AppCookie(String),
}

impl StickyRt {
    fn new(group: &str, s: &Stickiness, targets: &[Arc<TargetRt>]) -> Option<StickyRt> {
        if !s.enabled {
            return None;
        }
        let (kind, secs) = match s.kind {
            StickinessType::LbCookie => (StickyKind::LbCookie, s.lb_cookie.duration_seconds),
            StickinessType::AppCookie => (
                StickyKind::AppCookie(s.app_cookie.cookie_name.clone()),
                s.app_cookie.duration_seconds,
            ),
        };
        let tokens: Vec<String> = targets
            .iter()
            .map(|t| sticky::token(group, &t.addr.to_string()))
            .collect();
        let by_token = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect();
        Some(StickyRt {
            kind,
            lasts: Duration::from_secs(secs),
            tokens,
            by_token,
        })
    }

    /// The name of the cookie a request carries its target in.
    pub fn cookie_name(&self) -> &'static str {
        match self.kind {
            StickyKind::LbCookie => sticky::LB_COOKIE,
            StickyKind::AppCookie(_) => sticky::APP_COOKIE,
        }
    }

    /// The target a request's cookies name, if any (not checked for health).
    pub fn target_of(&self, h: &http::HeaderMap) -> Option<usize> {
        let find = |name: &str| {
            let lines = h.get_all(http::header::COOKIE);
            sticky::cookie(lines.iter().map(|v| v.as_bytes()), name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| self.by_token.get(v).copied())
        };
        match self.kind {
            StickyKind::LbCookie => {
                find(sticky::LB_COOKIE).or_else(|| find(sticky::LB_COOKIE_CORS))
            }
            StickyKind::AppCookie(_) => find(sticky::APP_COOKIE),
        }
    }
}

impl GroupRt {
    /// The group at run time; `own_zone`: weir's zone (`[load_balancer] availability_zone`,
    /// "" = unknown). `before`: the group this one replaces (a reload changed it, a target
    /// was registered, deregistered or discovered): a target at an address it had goes on as
    /// it was — its counters, its health (state, ejection, slow start: `GroupHealth::new`),
    /// its anomaly verdict and ticks, and its pool (idle connections, the keep-alive it
    /// learned) when the protocol and the pool settings are the same. A target's connections
    /// are to its address alone, so the group's other changes do not touch them (ALB does not
    /// close the connections to the targets that stay when one is registered).
    pub fn new(g: &TargetGroup, own_zone: &str, before: Option<&GroupRt>) -> GroupRt {
        let policy = PoolPolicy {
            max_idle: g.connection_pool.max_idle_per_target,
            idle_timeout: Duration::from_secs(g.connection_pool.idle_timeout_seconds),
            reuse: g.connection_pool.reuse,
        };
        let tls = (g.protocol == TargetProtocol::Https).then(|| {
            // The rebuilt group's client, and the sessions it can resume, go on.
            before
                .and_then(|b| b.targets.iter().find_map(|t| t.tls.clone()))
                .unwrap_or_else(|| TlsClient(crate::upstream::connector()))
        });
        let configured: Vec<(SocketAddr, &crate::config::Target)> = g
            .target
            .iter()
            .filter_map(|t| {
                let ip: IpAddr = t.id.parse().ok()?;
                Some((SocketAddr::new(ip, t.port.unwrap_or(g.port)), t))
            })
            .collect();
        let health = Arc::new(GroupHealth::new(
            g,
            configured.iter().map(|(a, _)| *a).collect(),
            before.map(|b| &*b.health),
        ));
        let lim = &g.target_limits;
        let previous =
            |addr: SocketAddr| before.and_then(|b| b.targets.iter().find(|t| t.addr == addr));
        let targets: Vec<Arc<TargetRt>> = configured
            .into_iter()
            .enumerate()
            .map(|(index, (addr, t))| {
                let was = previous(addr);
                Arc::new(TargetRt {
                    addr,
                    weight: t.weight,
                    priority: t.priority,
                    zone: t.availability_zone.clone(),
                    index,
                    health: health.clone(),
                    limit: (lim.max_requests > 0).then(|| {
                        Limit::new(
                            lim.max_requests,
                            lim.max_queued,
                            Duration::from_secs(lim.queue_timeout_seconds),
                        )
                    }),
                    outstanding: AtomicU64::new(0),
                    counters: was.map_or_else(Default::default, |o| o.counters.clone()),
                    pool: was
                        .filter(|o| o.tls.is_some() == tls.is_some() && o.pool.policy == policy)
                        .map_or_else(|| Arc::new(Pool::new(policy.clone())), |o| o.pool.clone()),
                    tls: tls.clone(),
                    id_hash: select::hash_bytes(addr.to_string().as_bytes()),
                    anomalous: AtomicBool::new(was.is_some_and(|o| o.anomalous.load(Relaxed))),
                    weight_shift: AtomicU8::new(was.map_or(0, |o| o.weight_shift.load(Relaxed))),
                    expiry: Default::default(),
                })
            })
            .collect();
        let algorithm = match g.load_balancing.algorithm.kind {
            AlgorithmType::RoundRobin => Algorithm::RoundRobin,
            AlgorithmType::LeastOutstandingRequests => Algorithm::LeastOutstandingRequests,
            AlgorithmType::WeightedRandom => Algorithm::WeightedRandom,
            AlgorithmType::ConsistentHash => Algorithm::ConsistentHash,
        };
        let cross_zone = g.load_balancing.cross_zone.enabled.enabled();
        let anomaly = AnomalyTick::carried(&targets, before);
        GroupRt {
            name: g.name.clone(),
            sticky: StickyRt::new(&g.name, &g.stickiness, &targets),
            token: sticky::token("target-group", &g.name),
            targets,
            algorithm,
            hash_on: g
                .load_balancing
                .algorithm
                .hash_on
                .as_deref()
                .and_then(HashOn::parse),
            local_zone: (!cross_zone && !own_zone.is_empty()).then(|| own_zone.to_string()),
            health,
            detect: g.load_balancing.algorithm.kind == AlgorithmType::WeightedRandom,
            mitigate: g.load_balancing.algorithm.anomaly_mitigation == AnomalyMitigation::On,
            anomaly: Mutex::new(anomaly),
            seq: AtomicU64::new(fastrand::u64(..)),
        }
    }

    /// The worker's one-second tick: anomaly detection, and the end of passive health's
    /// ejections whose time is up.
    pub fn tick(&self, now: Instant) {
        self.anomaly_tick();
        self.health.tick(now);
    }

    /// Anomaly detection's second: folds each target's last second into its rates, flags
    /// anomalous targets and moves their weight shifts (`anomaly.rs`).
    fn anomaly_tick(&self) {
        if !self.detect {
            return;
        }
        let Ok(mut st) = self.anomaly.lock() else {
            return;
        };
        let n = self.targets.len();
        st.last.resize(n, (0, 0));
        st.targets.resize(n, anomaly::TargetTick::default());
        let mut counts = Vec::with_capacity(n);
        for (i, t) in self.targets.iter().enumerate() {
            let c = &t.counters;
            let outcomes = c.requests.load(Relaxed) + c.connection_errors.load(Relaxed);
            let errors = c.errors.load(Relaxed);
            let (o0, e0) = std::mem::replace(&mut st.last[i], (outcomes, errors));
            counts.push((outcomes.saturating_sub(o0), errors.saturating_sub(e0)));
        }
        anomaly::tick(&mut st.targets, &counts);
        for (t, s) in self.targets.iter().zip(&st.targets) {
            let bad = s.anomalous;
            if bad != t.anomalous.swap(bad, Relaxed) {
                tracing::info!(group = %self.name, target_addr = %t.addr, anomalous = bad, "anomaly detection");
            }
            let shift = t.weight_shift.load(Relaxed);
            t.weight_shift
                .store(anomaly::next_shift(shift, bad, self.mitigate), Relaxed);
        }
    }

    /// May target `i` take a new request now? Stickiness's rule: healthy and not ejected, or
    /// any routable target when the group fails open (zones and caps do not move a sticky
    /// request; a capped target queues it).
    pub fn can_take(&self, i: usize) -> bool {
        let Some(t) = self.targets.get(i) else {
            return false;
        };
        let f = self.facts(t, false);
        if f.weight == 0 || !f.routable {
            return false;
        }
        (f.healthy && !f.ejected) || !self.targets.iter().any(|t| t.up())
    }

    /// The target a request's cookies stick it to, when the group is sticky and that target
    /// can take it.
    pub fn sticky_target(&self, h: &http::HeaderMap) -> Option<usize> {
        let i = self.sticky.as_ref()?.target_of(h)?;
        self.can_take(i).then_some(i)
    }

    fn facts(&self, t: &TargetRt, tried: bool) -> Facts {
        let state = t.state();
        Facts {
            weight: t.weight,
            healthy: state == TargetState::Healthy,
            routable: !matches!(state, TargetState::Unused | TargetState::Draining),
            ejected: t.is_ejected(),
            local: match (&self.local_zone, t.zone.as_deref()) {
                // ALB's `all`: an IP target outside the zones serves every zone.
                (Some(own), Some(z)) => z == own || z == "all",
                _ => true,
            },
            full: t.is_full(),
            tried,
            priority: t.priority,
        }
    }

    /// Picks a target not in `tried` (`select::eligible`'s tiers: healthy, not ejected, local
    /// zone first; fail-open when nothing is healthy; targets at their cap left out while
    /// another has room), by the group's algorithm with slow start's holdback.
    pub fn pick(&self, key: Option<u64>, tried: &[usize]) -> Option<usize> {
        if let [t] = &self.targets[..] {
            // One target: every tier and algorithm comes to whether it may be used at all
            // (`select::only_one`), with no draw, nor a copy of the group on the stack.
            return select::only_one(&self.facts(t, tried.contains(&0))).then_some(0);
        }
        let draw = Draw {
            seq: self.seq.fetch_add(1, Relaxed),
            random: fastrand::u64(..),
            key,
        };
        // Mitigation (weighted_random only) scales every weight by 2^MAX_SHIFT and shifts an
        // anomalous target's back down: never to zero.
        let weight = |t: &TargetRt| {
            if self.mitigate {
                (t.weight << anomaly::MAX_SHIFT) >> t.weight_shift.load(Relaxed)
            } else {
                t.weight
            }
        };
        let n = self.targets.len();
        let fact = |(i, t): (usize, &Arc<TargetRt>)| self.facts(t, tried.contains(&i));
        let cand = |t: &Arc<TargetRt>, eligible: bool| Candidate {
            weight: weight(t),
            outstanding: t.outstanding.load(Relaxed),
            id_hash: t.id_hash,
            eligible,
            holdback: if eligible {
                self.health.holdback(t.index)
            } else {
                0
            },
        };
        // Small groups (the common case) are described on the stack: no allocation per request.
        const ON_STACK: usize = 16;
        if n <= ON_STACK {
            let mut f = [Facts::default(); ON_STACK];
            let mut ok = [false; ON_STACK];
            let mut c = [Candidate::default(); ON_STACK];
            for (slot, x) in f.iter_mut().zip(self.targets.iter().enumerate()) {
                *slot = fact(x);
            }
            select::eligible(&f[..n], &mut ok[..n]);
            for ((slot, t), &e) in c.iter_mut().zip(&self.targets).zip(&ok) {
                *slot = cand(t, e);
            }
            select::pick(self.algorithm, &c[..n], draw)
        } else {
            let f: Vec<Facts> = self.targets.iter().enumerate().map(fact).collect();
            let mut ok = vec![false; n];
            select::eligible(&f, &mut ok);
            let c: Vec<Candidate> = self
                .targets
                .iter()
                .zip(&ok)
                .map(|(t, &e)| cand(t, e))
                .collect();
            select::pick(self.algorithm, &c, draw)
        }
    }
}

impl TargetRt {
    /// Healthy, not ejected, with a weight: fail-open is off while one such target exists.
    fn up(&self) -> bool {
        self.weight > 0 && self.state() == TargetState::Healthy && !self.is_ejected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(targets: &str) -> TargetGroup {
        let text = format!(
            "name = \"g\"\nport = 80\nload_balancing.algorithm.type = \"weighted_random\"\ntarget = [{targets}]\n"
        );
        toml::from_str(&text).expect("group")
    }

    /// The anomaly detection of a rebuilt group goes on from its last tick: the carried
    /// counters are not read as one second's worth of requests, and a verdict and its
    /// mitigation stay.
    #[test]
    fn a_rebuilt_group_goes_on_with_its_anomaly_ticks() {
        let old = GroupRt::new(
            &group("{ id = \"10.0.0.1\" }, { id = \"10.0.0.2\" }"),
            "",
            None,
        );
        old.targets[0].counters.requests.fetch_add(1000, Relaxed);
        old.targets[0].counters.errors.fetch_add(10, Relaxed);
        old.anomaly_tick();
        old.targets[1].anomalous.store(true, Relaxed);
        old.targets[1].weight_shift.store(2, Relaxed);
        let new = GroupRt::new(
            &group("{ id = \"10.0.0.3\" }, { id = \"10.0.0.2\" }, { id = \"10.0.0.1\" }"),
            "",
            Some(&old),
        );
        let (o, n) = (old.anomaly.lock().unwrap(), new.anomaly.lock().unwrap());
        assert_eq!(n.last, [(0, 0), o.last[1], (1000, 10)]);
        assert_eq!(n.targets[2], o.targets[0]);
        assert_eq!(n.targets[0], anomaly::TargetTick::default());
        assert!(new.targets[1].anomalous.load(Relaxed));
        assert_eq!(new.targets[1].weight_shift.load(Relaxed), 2);
        assert!(!new.targets[0].anomalous.load(Relaxed));
    }
}
