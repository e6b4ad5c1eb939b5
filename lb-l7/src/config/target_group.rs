//! `[[target_group]]`: targets, attributes, health check settings, connection pool.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    pub name: String,
    /// `HTTP` (default) or `HTTPS`: TLS to the targets, their certificates not verified
    /// (as on ALB).
    #[serde(default)]
    pub protocol: TargetProtocol,
    /// Default port of targets that name none.
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub target: Vec<Target>,
    #[serde(default)]
    pub load_balancing: LoadBalancing,
    #[serde(default)]
    pub deregistration_delay: DeregistrationDelay,
    #[serde(default)]
    pub stickiness: Stickiness,
    #[serde(default)]
    pub health_check: HealthCheck,
    #[serde(default)]
    pub connection_pool: ConnectionPool,
}

fn default_port() -> u16 {
    80
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum TargetProtocol {
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The target's IP address (ALB's `Id` for `ip` targets).
    pub id: String,
    #[serde(default)]
    pub port: Option<u16>,
    /// 0–999, default 1; 0 takes no new requests.
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub availability_zone: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadBalancing {
    pub algorithm: AlgorithmConfig,
}

/// `load_balancing.algorithm.type` and, for `consistent_hash`, `hash_on`
/// (`"header:NAME"`, `"cookie:NAME"` or `"source_ip"`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlgorithmConfig {
    #[serde(rename = "type")]
    pub kind: AlgorithmType,
    pub hash_on: Option<String>,
    /// ALB's automatic target weights (weighted_random only): `on` lowers the weight of a
    /// target whose error ratio stands out; `off` (default) only detects.
    pub anomaly_mitigation: AnomalyMitigation,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AnomalyMitigation {
    On,
    #[default]
    Off,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmType {
    #[default]
    RoundRobin,
    LeastOutstandingRequests,
    WeightedRandom,
    ConsistentHash,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeregistrationDelay {
    pub timeout_seconds: u64,
}
impl Default for DeregistrationDelay {
    fn default() -> Self {
        DeregistrationDelay {
            timeout_seconds: 300,
        }
    }
}

/// `stickiness.*` (ALB's target group attributes): a client's requests keep going to one
/// target, by weir's own cookie (`lb_cookie`, `AWSALB`) or by a cookie weir sets beside the
/// application's (`app_cookie`, `AWSALBAPP-0`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Stickiness {
    pub enabled: bool,
    #[serde(rename = "type")]
    pub kind: StickinessType,
    pub lb_cookie: LbCookie,
    pub app_cookie: AppCookie,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StickinessType {
    #[default]
    LbCookie,
    AppCookie,
}

/// Most a stickiness cookie may last (ALB: 7 days).
pub const MAX_STICKY_SECONDS: u64 = 604_800;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LbCookie {
    /// 1–604800, default 86400.
    pub duration_seconds: u64,
}
impl Default for LbCookie {
    fn default() -> Self {
        LbCookie {
            duration_seconds: 86_400,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppCookie {
    /// The application's cookie whose setting makes weir set `AWSALBAPP-0`; required for
    /// `app_cookie`.
    pub cookie_name: String,
    /// 1–604800, default 86400.
    pub duration_seconds: u64,
}
impl Default for AppCookie {
    fn default() -> Self {
        AppCookie {
            cookie_name: String::new(),
            duration_seconds: 86_400,
        }
    }
}

/// Health check settings (ALB names, ranges and defaults), run by the control plane
/// (`lb-userspace/src/health`), once per host; the workers get the verdicts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheck {
    /// `false`: the group's targets are healthy without checks (ALB allows it for lambda
    /// targets only; weir for any group).
    pub enabled: bool,
    /// `HTTP` (default), `HTTPS` (certificate not verified, as ALB) or `TCP` (connect only;
    /// `path` and `matcher` then stay at their defaults).
    pub protocol: String,
    /// `traffic-port` or a port number.
    pub port: String,
    pub path: String,
    /// 2–120, default 5; less than the interval.
    pub timeout_seconds: u64,
    /// 5–300, default 30.
    pub interval_seconds: u64,
    /// 2–10, default 5: passes in a row that bring an unhealthy target back (a new target
    /// needs one).
    pub healthy_threshold_count: u32,
    /// 2–10, default 2: failures in a row that make a target unhealthy.
    pub unhealthy_threshold_count: u32,
    pub matcher: Matcher,
}
impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            enabled: true,
            protocol: "HTTP".into(),
            port: "traffic-port".into(),
            path: "/".into(),
            timeout_seconds: 5,
            interval_seconds: 30,
            healthy_threshold_count: 5,
            unhealthy_threshold_count: 2,
            matcher: Matcher::default(),
        }
    }
}

/// `matcher.http_code`: `"200"`, `"200,202"`, `"200-299"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Matcher {
    pub http_code: String,
}
impl Default for Matcher {
    fn default() -> Self {
        Matcher {
            http_code: "200".into(),
        }
    }
}

/// weir: the per-target pool of keep-alive connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionPool {
    /// Idle connections kept per target (per worker); 0 disables pooling.
    pub max_idle_per_target: usize,
    /// Idle connections older than this are closed; default 55 s (below ALB's 60 s idle timeout,
    /// and targets should keep theirs longer, but weir survives when they don't).
    pub idle_timeout_seconds: u64,
    /// `safe` (default): a client connection's first request gets a fresh target connection,
    /// later ones may reuse; `always`: reuse whenever possible; `never`: no reuse.
    pub reuse: ReuseMode,
}
impl Default for ConnectionPool {
    fn default() -> Self {
        ConnectionPool {
            max_idle_per_target: 1024,
            idle_timeout_seconds: 55,
            reuse: ReuseMode::Safe,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReuseMode {
    #[default]
    Safe,
    Always,
    Never,
}

/// How a `consistent_hash` group derives its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    Header(String),
    Cookie(String),
    SourceIp,
}

impl HashOn {
    pub fn parse(s: &str) -> Option<HashOn> {
        if s == "source_ip" {
            return Some(HashOn::SourceIp);
        }
        let (kind, name) = s.split_once(':')?;
        if name.is_empty() {
            return None;
        }
        match kind {
            "header" => Some(HashOn::Header(name.to_ascii_lowercase())),
            "cookie" => Some(HashOn::Cookie(name.to_string())),
            _ => None,
        }
    }
}
