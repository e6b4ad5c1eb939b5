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
    /// Targets found in DNS (beside `target`), resolved by the control plane.
    #[serde(default)]
    pub discovery: Option<Discovery>,
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
    /// Passive health (Envoy's outlier detection), per worker.
    #[serde(default)]
    pub outlier_detection: OutlierDetection,
    /// ALB's `slow_start.duration_seconds`.
    #[serde(default)]
    pub slow_start: SlowStart,
    /// Per-target concurrency cap and queue (HAProxy's `maxconn`, `maxqueue`, `timeout queue`).
    #[serde(default)]
    pub target_limits: TargetLimits,
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
    /// The target's IP address (ALB's `Id` for `ip` targets); an IPv4-mapped IPv6 one is
    /// read as its IPv4 address ([`canonical_id`]).
    #[serde(deserialize_with = "de_canonical_id")]
    pub id: String,
    #[serde(default)]
    pub port: Option<u16>,
    /// 0–999, default 1; 0 takes no new requests.
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// A discovered target's SRV priority (RFC 2782: the lowest reachable first; the others
    /// are backups, `select::eligible`); 0 for every other target. Not a file key: discovery
    /// sets it (`crate::target_sets`).
    #[serde(skip)]
    pub priority: u16,
}

fn one() -> u32 {
    1
}

/// A target id as weir keeps it: an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is the IPv4
/// address (`10.0.0.1`), as HAProxy reads it, so the two spellings are one target (the duplicate
/// check, health, `weir targets`); any other id unchanged (validation judges it).
pub fn canonical_id(id: String) -> String {
    match id.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.to_canonical() != ip => ip.to_canonical().to_string(),
        _ => id,
    }
}

fn de_canonical_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map(canonical_id)
}

/// `[target_group.discovery]`: the group's targets are also the addresses a DNS name resolves
/// to (HAProxy's `server-template … resolvers`), resolved once per host by the control plane
/// (`lb-userspace/src/discovery`) and re-resolved as the records' TTL says, clamped to
/// `ttl_floor_seconds`–`ttl_ceiling_seconds`. Added targets go through health checks, removed
/// ones drain; a failed resolution keeps the last targets.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    /// The name, absolute (no search domains): `web.svc.test`, or `_web._tcp.svc.test` for SRV.
    pub name: String,
    /// `A`, `AAAA`, `A+AAAA` (the group's `port`) or `SRV` (the records' ports, their target
    /// hosts' A and AAAA addresses).
    #[serde(rename = "type")]
    pub kind: DiscoveryType,
    /// Name servers, `IP` or `IP:PORT` (port 53); empty (default): `/etc/resolv.conf`'s.
    #[serde(default)]
    pub resolvers: Vec<String>,
    /// 1–3600, default 5: the soonest a name is resolved again, whatever its TTL.
    #[serde(default = "default_ttl_floor")]
    pub ttl_floor_seconds: u64,
    /// `ttl_floor_seconds`–86400, default 300: the latest.
    #[serde(default = "default_ttl_ceiling")]
    pub ttl_ceiling_seconds: u64,
    /// 0–86400, default 30 (HAProxy's `hold nx`): how long an empty answer (NXDOMAIN, or no
    /// records) must last before the group's discovered targets are removed.
    #[serde(default = "default_hold_empty")]
    pub hold_empty_seconds: u64,
    /// 1–30, default 2: how long one question waits for an answer (each is sent twice); one
    /// resolution of the group takes at most 2 × this (`lb-userspace` discovery::dns).
    #[serde(default = "default_dns_timeout")]
    pub timeout_seconds: u64,
    /// 1–1000, default 64: at most this many discovered targets (the lowest addresses kept).
    #[serde(default = "default_max_targets")]
    pub max_targets: u32,
}

fn default_ttl_floor() -> u64 {
    5
}
fn default_ttl_ceiling() -> u64 {
    300
}
fn default_hold_empty() -> u64 {
    30
}
fn default_dns_timeout() -> u64 {
    2
}
fn default_max_targets() -> u32 {
    64
}

/// The records discovery asks for.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum DiscoveryType {
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
    #[serde(rename = "A+AAAA")]
    AAndAaaa,
    #[serde(rename = "SRV")]
    Srv,
}

impl Discovery {
    /// The configured resolvers as socket addresses (port 53 when none is given); `None` if
    /// one of them is neither `IP` nor `IP:PORT`.
    pub fn resolver_addrs(&self) -> Option<Vec<std::net::SocketAddr>> {
        self.resolvers.iter().map(|r| parse_resolver(r)).collect()
    }
}

/// `IP`, `IP:PORT` or `[IPv6]:PORT`.
pub fn parse_resolver(s: &str) -> Option<std::net::SocketAddr> {
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return (a.port() != 0).then_some(a);
    }
    s.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadBalancing {
    pub algorithm: AlgorithmConfig,
    /// ALB's `load_balancing.cross_zone.enabled`.
    pub cross_zone: CrossZoneConfig,
}

/// `load_balancing.cross_zone.enabled`: `true`, `false` or `"use_load_balancer_configuration"`
/// (default). An ALB's own cross-zone setting is always on, so the default means on.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrossZoneConfig {
    pub enabled: CrossZone,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "CrossZoneRaw")]
pub enum CrossZone {
    On,
    Off,
    #[default]
    UseLoadBalancerConfiguration,
}

impl CrossZone {
    /// Whether requests may cross zones (the load balancer's own setting is on, as ALB's).
    pub fn enabled(self) -> bool {
        self != CrossZone::Off
    }
}

/// ALB writes the value as a string; TOML users write a boolean: both are taken.
#[derive(Deserialize)]
#[serde(untagged)]
enum CrossZoneRaw {
    Bool(bool),
    Text(String),
}

impl TryFrom<CrossZoneRaw> for CrossZone {
    type Error = String;
    fn try_from(r: CrossZoneRaw) -> Result<CrossZone, String> {
        match r {
            CrossZoneRaw::Bool(true) => Ok(CrossZone::On),
            CrossZoneRaw::Bool(false) => Ok(CrossZone::Off),
            CrossZoneRaw::Text(t) => match t.as_str() {
                "true" => Ok(CrossZone::On),
                "false" => Ok(CrossZone::Off),
                "use_load_balancer_configuration" => Ok(CrossZone::UseLoadBalancerConfiguration),
                _ => Err(format!(
                    "{t:?}: expected true, false or \"use_load_balancer_configuration\""
                )),
            },
        }
    }
}

/// `[target_group.outlier_detection]`: passive health, Envoy's outlier detection and its
/// defaults; off unless `enabled = true` (as in Envoy, where it runs only when configured, and
/// HAProxy's `observe`; ALB has none). `consecutive_errors` errors in a row from a target (5xx answers, refused or failed
/// connections, resets, timeouts, malformed responses) eject it for `base_ejection_time_seconds`
/// × its number of ejections, at most `max_ejection_time_seconds`; at most
/// `max_ejection_percent` of the group's targets are ejected at once (at least one).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutlierDetection {
    pub enabled: bool,
    /// 1–1000, default 5 (Envoy's `consecutive_5xx`).
    pub consecutive_errors: u32,
    /// 1–3600, default 30.
    pub base_ejection_time_seconds: u64,
    /// `base_ejection_time_seconds`–86400, default 300.
    pub max_ejection_time_seconds: u64,
    /// 0–100, default 10.
    pub max_ejection_percent: u32,
    /// A passing active health check ends the ejection (default true).
    pub successful_active_health_check_uneject_host: bool,
}
impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            enabled: false,
            consecutive_errors: 5,
            base_ejection_time_seconds: 30,
            max_ejection_time_seconds: 300,
            max_ejection_percent: 10,
            successful_active_health_check_uneject_host: true,
        }
    }
}

/// `slow_start.duration_seconds`: 0 (off, default) or 30–900 (ALB's range).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlowStart {
    pub duration_seconds: u64,
}

/// `[target_group.target_limits]`: at most `max_requests` requests in flight to one target
/// (per worker; 0 = no cap, default); a request finding every target at its cap waits in its
/// target's FIFO queue, at most `max_queued` long, for at most `queue_timeout_seconds`, else
/// gets 503.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetLimits {
    /// 0–100000, default 0 (no cap).
    pub max_requests: u32,
    /// 0–100000, default 128.
    pub max_queued: u32,
    /// 0–3600, default 10 (HAProxy's `timeout queue` defaults to `timeout connect`, weir's
    /// connect timeout is 10 s); 0 = never wait.
    pub queue_timeout_seconds: u64,
}
impl Default for TargetLimits {
    fn default() -> Self {
        TargetLimits {
            max_requests: 0,
            max_queued: 128,
            queue_timeout_seconds: 10,
        }
    }
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
    /// `traffic-port` or a port number: `"8080"` as ALB's API writes it, or `8080`.
    #[serde(deserialize_with = "de_port")]
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
    /// `safe` (default): a client connection's first request gets a fresh target connection
    /// when weir could not send it again (not idempotent, or with a body), every other request
    /// may reuse (`pool::PoolPolicy::may_reuse`); `always`: reuse whenever possible; `never`:
    /// no reuse.
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

/// `health_check.port`: a string (`"traffic-port"`, `"8080"`, as ALB's API has it) or an
/// integer (`8080`), kept as the string; validation judges the value.
fn de_port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Port;
    impl serde::de::Visitor<'_> for Port {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("\"traffic-port\" or a port number (1–65535)")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(Port)
}
