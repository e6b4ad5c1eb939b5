//! The admin API's objects (`docs/admin-api.md`): what the daemon sends and the CLI reads back.
//! Plain data with serde; the listener and rule views are in [`super::views`].

use serde::{Deserialize, Serialize};

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The control plane's pid.
    pub pid: u32,
    /// The configuration generation every worker serves: 1 at start, +1 per applied reload.
    pub generation: u64,
    /// Why the last reload of the file was refused (the generation in force stayed), until a
    /// later one is applied: a SIGHUP's refusal is otherwise in the log only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reload_refused: Option<String>,
    /// The file the configuration came from (`<embedded default>` without `--config`).
    pub config: String,
    pub uptime_seconds: u64,
    pub workers: Workers,
    /// One entry per interface XDP is attached to (none for an L7-only daemon).
    pub xdp: Vec<XdpInterface>,
    /// The admin socket this answer came through.
    pub admin_socket: String,
    /// The health state file this daemon writes (`health::file`), absent when it writes none
    /// (no target groups' checker: `--no-l7`, no listeners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workers {
    /// `[workers] count`, resolved (its 0 = one per CPU); 0 when no worker runs (`--no-l7`, no
    /// listeners).
    pub configured: usize,
    /// Worker processes alive now (a restarting worker is missing until it runs again).
    pub running: usize,
    /// Of those, the ones whose reports stopped (`WorkerProcess::silent`): hung, or stopped
    /// (SIGSTOP), until the watchdog (`[workers] watchdog_seconds`) kills and restarts them.
    #[serde(default)]
    pub not_reporting: usize,
    pub processes: Vec<WorkerProcess>,
}

/// A worker reports its figures every 500 ms (`crate::metrics::push`): one that has not for
/// four of those periods is shown as not reporting.
pub const SILENT_AFTER_MS: u64 = 2_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerProcess {
    pub index: usize,
    pub pid: u32,
    /// Milliseconds since this process's last report to the control plane (`None`: none yet,
    /// or the daemon keeps no reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_age_ms: Option<u64>,
}

impl WorkerProcess {
    /// Its reports stopped `SILENT_AFTER_MS` ago or more.
    pub fn silent(&self) -> bool {
        self.report_age_ms.is_some_and(|a| a >= SILENT_AFTER_MS)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdpInterface {
    pub iface: String,
    /// `native` or `generic`: how the program ended up attached.
    pub mode: String,
    /// Whether the program is on the interface now: `false` while the interface is gone
    /// (deleted; weir attaches again when one of that name is back: `xdp::tier`).
    #[serde(default = "yes")]
    pub attached: bool,
    /// Why SYN cookies are refused on the interface (its veth peer takes no XDP_TX frames, or
    /// SYN-ACKs were being dropped); absent while they are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_cookies_refused: Option<String>,
}

fn yes() -> bool {
    true
}

/// One target as the API names it: ALB's `TargetDescription` (`Id`, `Port`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The target's IP address; an IPv4-mapped IPv6 one is read as its IPv4 address
    /// (`lb_l7::config::canonical_id`).
    #[serde(deserialize_with = "de_canonical_id")]
    pub id: String,
    /// Unset: the group's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// The body of `POST`/`DELETE /v1/target-groups/{name}/targets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsRequest {
    pub targets: Vec<TargetSpec>,
}

/// `GET /v1/target-groups/{name}/targets`: the group's registered targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetList {
    pub target_group: String,
    /// The group's port (a target without its own port uses it).
    pub port: u16,
    pub targets: Vec<RegisteredTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredTarget {
    pub id: String,
    pub port: u16,
    pub weight: u32,
    /// SRV priority (discovered targets; 0 for the others): a higher one is a backup, taking
    /// requests only while no target of a lower one is healthy.
    #[serde(default)]
    pub priority: u16,
    pub availability_zone: Option<String>,
    /// `config` (in the file), `runtime` (registered through the API since the last reload) or
    /// `discovered` (found by discovery).
    pub source: String,
}

/// The answer to a registration or deregistration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetsChanged {
    pub target_group: String,
    /// The targets as `ip:port`, the port resolved.
    pub targets: Vec<String>,
    /// The configuration generation in force after the change (the same one when nothing
    /// changed: registering a target already registered).
    pub generation: u64,
    /// Always `true`: the change lives in the running daemon only; a reload applies the file,
    /// which keeps a target only if the file has it.
    pub runtime_only: bool,
    /// The file a reload reads.
    pub config: String,
}

/// `GET /v1/discovery`: every target group that discovers its targets in DNS, by name (empty
/// when none does). `GET /v1/target-groups/{name}/discovery` answers one of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryList {
    pub target_groups: Vec<crate::discovery::view::GroupDiscovery>,
}

/// `POST /v1/reload`, applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reloaded {
    /// The generation now in force: every worker has been sent it (in-flight requests finish
    /// under the one they started in).
    pub generation: u64,
    pub config: String,
}

fn de_canonical_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map(lb_l7::config::canonical_id)
}
