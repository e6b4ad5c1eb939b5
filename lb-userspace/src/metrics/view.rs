//! The aggregate as one JSON object: `GET /v1/metrics` on the admin API, read by `weir top` and
//! anything else that polls weir. The Prometheus page (`super::prom`) renders the same object.
//!
//! **The shape is stable** (`version` 1): fields and map keys may be added, none is removed or
//! changes meaning. Counters count since `weir run` started and never go backwards (a restarted
//! worker's counts are kept: `super::store`); gauges are values now. Rates are a client's
//! business: the difference of two views over the difference of their `time_unix_ms`.
//!
//! ```json
//! { "version": 1, "time_unix_ms": 1764900000000, "generation": 1,
//!   "l7": {                                     // null with --no-l7 or without listeners
//!     "staleness_ms": 180,                      // age of the oldest live worker's report
//!     "totals": { "RequestCount": 10, "HTTPCode_ELB_4XX_Count": 2, "HTTPCode_ELB_5XX_Count": 1,
//!                 "HTTPCode_Target_2XX_Count": 7, "ActiveConnectionCount": 1, … },
//!     "elb_status_codes": { "404": 2, "502": 1 },
//!     "listeners": [ { "listener": "0.0.0.0:80", "port": 80, "protocol": "HTTP",
//!                      "counters": { "RequestCount": 10, "NewConnectionCount": 4, … },
//!                      "gauges": { "ActiveConnectionCount": 1 } } ],
//!     "target_groups": [ { "target_group": "web", "health_checked": true, "fail_open": false,
//!                          "HealthyHostCount": 2, "UnHealthyHostCount": 1,
//!                          "zones": { "-": { "HealthyHostCount": 2, "UnHealthyHostCount": 1 } },
//!                          "totals": { "RequestCountPerTarget": 7, … },
//!                          "target_response_time": { "le_seconds": [0.001, …], "counts": [0, …],
//!                                                    "sum_seconds": 0.0123, "count": 7 },
//!                          "targets": [ { "target": "10.0.0.2:8080", "availability_zone": null,
//!                                         "state": "healthy",
//!                                         "counters": { "RequestCountPerTarget": 4,
//!                                                       "HTTPCode_Target_2XX_Count": 4, … },
//!                                         "gauges": { "outstanding_requests": 0, … } } ] } ],
//!     "workers": [ { "worker": 0, "pid": 4242, "live": true, "restarts": 0, "watchdog_kills": 0,
//!                    "report_age_ms": 180, "counters": { "RequestCount": 6, … },
//!                    "gauges": { "ActiveConnectionCount": 1 } } ],
//!     "certificates": [                         // absent when no listener has one
//!       { "listener": "0.0.0.0:443", "file": "/etc/weir/a.pem", "subject": "CN=a.example",
//!         "not_before_unix": 1764900000, "not_after_unix": 1772676000 } ] },
//!   "xdp": {                                    // null without --iface
//!     "interface": "eth0",
//!     "actions": { "pass": {"packets": 9, "bytes": 900}, "drop": {…}, "tx": {…} },
//!     "stats": { "pass_vip": {"packets": 9, "bytes": 900}, … },   // every XDP decision
//!     "vips": [ { "id": 0, "address": "10.0.0.1", "port": 80, "protocol": "tcp",
//!                 "packets": 9, "bytes": 900,
//!                 "syn": { "mode": "auto", "cookies": false,
//!                          "counters": { "syn_seen": 3, "cookies_sent": 0, … } } } ],
//!     "host": { "tcp_syncookies": "1", "syncookies_reasserted": 0, … } },
//!   "discovery": [                              // absent when no group discovers
//!     { "target_group": "web", "targets": 2, "consecutive_failures": 0,
//!       "resolutions": { "answer": 40, "empty": 0, "failed": 3 } } ] }
//! ```
//!
//! `target_response_time` is cumulative as Prometheus's buckets are: `counts[i]` responses took
//! at most `le_seconds[i]`; `count` is all of them (the `+Inf` bucket).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::health::table::ZoneCounts;

/// The version of this shape.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsView {
    pub version: u32,
    /// When this view was assembled, Unix time in milliseconds.
    pub time_unix_ms: u64,
    /// The configuration generation in force (`crate::reload`).
    pub generation: u64,
    pub l7: Option<L7View>,
    pub xdp: Option<XdpView>,
    /// DNS discovery per discovering target group (absent when none discovers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discovery: Vec<DiscoveryFigures>,
}

/// One target group's DNS discovery (`crate::discovery::view`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryFigures {
    pub target_group: String,
    /// The discovered targets in force.
    pub targets: u64,
    /// Failed resolutions in a row.
    pub consecutive_failures: u64,
    /// Resolutions since the group's discovery started, by outcome (`answer`, `empty`,
    /// `failed`).
    pub resolutions: BTreeMap<String, u64>,
    /// Answered addresses skipped as no target's (unspecified, multicast, broadcast).
    #[serde(default)]
    pub skipped_addresses: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L7View {
    /// Milliseconds since the oldest report of a live worker: how old the figures can be.
    pub staleness_ms: u64,
    /// Over every worker: the CloudWatch-named counters (and weir's own), and the gauges.
    pub totals: BTreeMap<String, u64>,
    /// Responses weir produced itself (not a target's), by status code.
    pub elb_status_codes: BTreeMap<String, u64>,
    pub listeners: Vec<ListenerFigures>,
    pub target_groups: Vec<GroupFigures>,
    pub workers: Vec<WorkerView>,
    /// Each certificate the listeners serve (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateFigures>,
}

/// A certificate a listener serves: its validity bounds (`crate::certificates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateFigures {
    /// `address:port`.
    pub listener: String,
    /// `certificate_file` as configured.
    pub file: String,
    pub subject: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerFigures {
    /// `address:port`, the label value.
    pub listener: String,
    pub port: u16,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    pub counters: BTreeMap<String, u64>,
    pub gauges: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupFigures {
    pub target_group: String,
    /// The control plane checks its targets' health.
    pub health_checked: bool,
    /// No target is healthy: requests go to all of them.
    pub fail_open: bool,
    #[serde(rename = "HealthyHostCount")]
    pub healthy_host_count: u64,
    #[serde(rename = "UnHealthyHostCount")]
    pub unhealthy_host_count: u64,
    /// The host counts per `availability_zone` (`-` for targets without one).
    pub zones: BTreeMap<String, ZoneCounts>,
    /// The targets' counters summed.
    pub totals: BTreeMap<String, u64>,
    pub target_response_time: Option<Histogram>,
    pub targets: Vec<TargetFigures>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetFigures {
    /// `address:port`.
    pub target: String,
    pub availability_zone: Option<String>,
    /// The health checker's state (`initial`, `healthy`, `unhealthy`, `unused`, …); `null` for
    /// a target only the workers know (a reload's, before the checker has it).
    pub state: Option<String>,
    pub counters: BTreeMap<String, u64>,
    pub gauges: BTreeMap<String, u64>,
}

/// Cumulative buckets, as Prometheus's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub le_seconds: Vec<f64>,
    pub counts: Vec<u64>,
    pub sum_seconds: f64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    pub worker: usize,
    pub pid: Option<u32>,
    /// A process runs in the slot and reports.
    pub live: bool,
    /// Processes started in the slot after the first.
    pub restarts: u64,
    /// Of them, those the watchdog killed for going silent (`[workers] watchdog_seconds`).
    #[serde(default)]
    pub watchdog_kills: u64,
    pub report_age_ms: Option<u64>,
    /// The worker-wide counters of the slot, over all its processes.
    pub counters: BTreeMap<String, u64>,
    pub gauges: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketsBytes {
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XdpView {
    pub interface: String,
    /// `pass`, `drop`, `tx`: the XDP actions, each the sum of its decisions.
    pub actions: BTreeMap<String, PacketsBytes>,
    /// Every XDP decision (`lb_common::Stat`, as `weir stats` names them).
    pub stats: BTreeMap<String, PacketsBytes>,
    pub vips: Vec<VipFigures>,
    /// The host settings the SYN defence watches (as `weir stats --json`'s `host`).
    pub host: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VipFigures {
    pub id: u32,
    pub address: String,
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    pub packets: u64,
    pub bytes: u64,
    /// TCP VIPs: the SYN defence.
    pub syn: Option<SynFigures>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynFigures {
    /// `off`, `auto`, `always`.
    pub mode: String,
    /// Cookies are on now.
    pub cookies: bool,
    /// `lb_common::syn::SynCounter` by name: `syn_seen`, `cookies_sent`, `cookie_acks_valid`, …
    pub counters: BTreeMap<String, u64>,
}
