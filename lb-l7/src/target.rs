//! Target groups at run time: targets with a state, counters and a connection pool.

use crate::anomaly;
use crate::config::{
    AlgorithmType, AnomalyMitigation, HashOn, Stickiness, StickinessType, TargetGroup,
    TargetProtocol,
};
use crate::metrics::{TargetCounters, TargetSnapshot};
use crate::pool::{Pool, PoolPolicy};
use crate::select::{self, Algorithm, Candidate, Draw};
use crate::sticky;
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
use std::time::Duration;

/// ALB's target states. Health checks (a later issue) move targets between them; until then
/// every configured target starts `Healthy`.
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
        (0..=5)
            .map(TargetState::from_u8)
            .find(|s| s.name() == name)
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

#[derive(Debug)]
pub struct TargetRt {
    pub addr: SocketAddr,
    pub weight: u32,
    pub zone: Option<String>,
    state: AtomicU8,
    pub outstanding: AtomicU64,
    pub counters: TargetCounters,
    /// Idle keep-alive connections to this target.
    pub pool: Pool<UpStream>,
    /// HTTPS target groups: the TLS client.
    pub tls: Option<TlsClient>,
    id_hash: u64,
    /// Anomaly detection's verdict at the last tick.
    anomalous: AtomicBool,
    /// Anomaly mitigation: the weight counts `>> weight_shift`.
    weight_shift: AtomicU8,
}

impl TargetRt {
    pub fn state(&self) -> TargetState {
        TargetState::from_u8(self.state.load(Relaxed))
    }
    /// For the health checker.
    pub fn set_state(&self, s: TargetState) {
        self.state.store(s as u8, Relaxed);
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
        }
    }

    /// The control plane's active health check of this target passed (Envoy's
    /// `successful_active_health_check_uneject_host`): passive health's ejection of it, if
    /// any, ends now. Call on every passing check (not only on a state change).
    pub fn active_check_passed(&self) {
        // First version: the signature the health checker calls; passive health (outlier
        // detection) and its un-ejection land in the following commits.
    }

    /// Counts an error for anomaly detection (a 5xx, or no usable response).
    pub fn count_error(&self) {
        self.counters.errors.fetch_add(1, Relaxed);
    }
}

#[derive(Debug)]
pub struct GroupRt {
    pub name: String,
    pub targets: Vec<Arc<TargetRt>>,
    pub algorithm: Algorithm,
    pub hash_on: Option<HashOn>,
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
    pub fn new(g: &TargetGroup) -> GroupRt {
        let policy = PoolPolicy {
            max_idle: g.connection_pool.max_idle_per_target,
            idle_timeout: Duration::from_secs(g.connection_pool.idle_timeout_seconds),
            reuse: g.connection_pool.reuse,
        };
        let tls =
            (g.protocol == TargetProtocol::Https).then(|| TlsClient(crate::upstream::connector()));
        let targets: Vec<Arc<TargetRt>> = g
            .target
            .iter()
            .filter_map(|t| {
                let ip: IpAddr = t.id.parse().ok()?;
                let addr = SocketAddr::new(ip, t.port.unwrap_or(g.port));
                Some(Arc::new(TargetRt {
                    addr,
                    weight: t.weight,
                    zone: t.availability_zone.clone(),
                    state: AtomicU8::new(TargetState::Healthy as u8),
                    outstanding: AtomicU64::new(0),
                    counters: TargetCounters::default(),
                    pool: Pool::new(policy.clone()),
                    tls: tls.clone(),
                    id_hash: select::hash_bytes(addr.to_string().as_bytes()),
                    anomalous: AtomicBool::new(false),
                    weight_shift: AtomicU8::new(0),
                }))
            })
            .collect();
        let algorithm = match g.load_balancing.algorithm.kind {
            AlgorithmType::RoundRobin => Algorithm::RoundRobin,
            AlgorithmType::LeastOutstandingRequests => Algorithm::LeastOutstandingRequests,
            AlgorithmType::WeightedRandom => Algorithm::WeightedRandom,
            AlgorithmType::ConsistentHash => Algorithm::ConsistentHash,
        };
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
            detect: g.load_balancing.algorithm.kind == AlgorithmType::WeightedRandom,
            mitigate: g.load_balancing.algorithm.anomaly_mitigation == AnomalyMitigation::On,
            anomaly: Mutex::new(AnomalyTick::default()),
            seq: AtomicU64::new(fastrand::u64(..)),
        }
    }

    /// The worker's one-second tick: folds each target's last second into its rates, flags
    /// anomalous targets and moves their weight shifts (`anomaly.rs`).
    pub fn anomaly_tick(&self) {
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

    /// May target `i` take a new request now (the same rule `pick` applies)?
    pub fn can_take(&self, i: usize) -> bool {
        let Some(t) = self.targets.get(i) else {
            return false;
        };
        if t.weight == 0 {
            return false;
        }
        match t.state() {
            TargetState::Healthy => true,
            TargetState::Unused | TargetState::Draining => false,
            _ => !self
                .targets
                .iter()
                .any(|t| t.state() == TargetState::Healthy && t.weight > 0),
        }
    }

    /// The target a request's cookies stick it to, when the group is sticky and that target
    /// can take it.
    pub fn sticky_target(&self, h: &http::HeaderMap) -> Option<usize> {
        let i = self.sticky.as_ref()?.target_of(h)?;
        self.can_take(i).then_some(i)
    }

    /// Picks a target not in `tried`. Healthy targets first; when none is healthy, all targets
    /// that are not unused/draining (ALB's fail-open).
    pub fn pick(&self, key: Option<u64>, tried: &[usize]) -> Option<usize> {
        let draw = Draw {
            seq: self.seq.fetch_add(1, Relaxed),
            random: fastrand::u64(..),
            key,
        };
        let any_healthy = self
            .targets
            .iter()
            .any(|t| t.state() == TargetState::Healthy && t.weight > 0);
        let ok = |s: TargetState| {
            if any_healthy {
                s == TargetState::Healthy
            } else {
                !matches!(s, TargetState::Unused | TargetState::Draining)
            }
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
        let cand = |(i, t): (usize, &Arc<TargetRt>)| Candidate {
            weight: weight(t),
            outstanding: t.outstanding.load(Relaxed),
            id_hash: t.id_hash,
            eligible: ok(t.state()) && !tried.contains(&i),
        };
        // Small groups (the common case) are described on the stack: no allocation per request.
        const ON_STACK: usize = 16;
        if self.targets.len() <= ON_STACK {
            let mut c = [Candidate::default(); ON_STACK];
            for (slot, x) in c.iter_mut().zip(self.targets.iter().enumerate()) {
                *slot = cand(x);
            }
            select::pick(self.algorithm, &c[..self.targets.len()], draw)
        } else {
            let c: Vec<Candidate> = self.targets.iter().enumerate().map(cand).collect();
            select::pick(self.algorithm, &c, draw)
        }
    }
}
