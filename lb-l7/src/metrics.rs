//! Counters of one worker: atomics, read as a serialisable snapshot named like ALB's CloudWatch
//! metrics (`AWS/ApplicationELB`).

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// `TargetResponseTime`'s bucket bounds in microseconds (a last bucket holds the slower ones).
pub const RESPONSE_TIME_BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Live counters; cheap to bump from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    pub active_connections: AtomicU64,
    pub new_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub requests: AtomicU64,
    pub processed_bytes: AtomicU64,
    pub client_tls_negotiation_errors: AtomicU64,
    pub fixed_responses: AtomicU64,
    pub redirects: AtomicU64,
    pub rule_evaluations: AtomicU64,
    pub desync_non_compliant: AtomicU64,
    pub target_connection_errors: AtomicU64,
    pub target_responses: [AtomicU64; 6],
    /// Responses weir produced itself (not a target's), by status code 100–599.
    elb_codes: Codes,
    pub upstream_connections_opened: AtomicU64,
    pub upstream_connections_reused: AtomicU64,
    pub upstream_retries: AtomicU64,
    /// Requests hyper handed back unsent because the pooled connection closed under them, sent
    /// again on another connection. "Unsent" is hyper's view: the target may have read the
    /// bytes before the close, so a target can see such a request twice.
    pub upstream_requeued: AtomicU64,
    /// Idle keep-alive connections closed to make room for a new one at the connection limit
    /// (`accept::park::Lot::make_room`).
    pub idle_closed_at_limit: AtomicU64,
    /// Requests refused because the worker held as many target connections as its descriptor
    /// budget allows, none idle (`crate::target_conns`).
    pub target_conns_refused_at_limit: AtomicU64,
    /// Per listener, found by its port (a listener is its port across generations).
    listeners: Listeners,
}

/// The most listeners counted apart; the steering program holds at most 64 too.
pub const MAX_LISTENERS: usize = 64;

/// The counters of one listener (`port` 0: a free slot, else the port + 1).
#[derive(Debug, Default)]
pub struct ListenerCounters {
    port: AtomicU32,
    pub new_connections: AtomicU64,
    pub active_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub requests: AtomicU64,
    pub processed_bytes: AtomicU64,
}

#[derive(Debug)]
struct Listeners(Box<[ListenerCounters]>);
impl Default for Listeners {
    fn default() -> Self {
        Listeners(
            (0..MAX_LISTENERS)
                .map(|_| ListenerCounters::default())
                .collect(),
        )
    }
}

/// What a listener counted (`MetricsSnapshot::listeners`, by port), ALB's names.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ListenerSnapshot {
    #[serde(rename = "NewConnectionCount")]
    pub new_connection_count: u64,
    #[serde(rename = "ActiveConnectionCount")]
    pub active_connection_count: u64,
    #[serde(rename = "RejectedConnectionCount")]
    pub rejected_connection_count: u64,
    #[serde(rename = "RequestCount")]
    pub request_count: u64,
    #[serde(rename = "ProcessedBytes")]
    pub processed_bytes: u64,
}

impl Metrics {
    /// The counters of the listener on `port`: a scan of the few slots in use (claimed at the
    /// first connection); `None` past [`MAX_LISTENERS`] ports.
    pub fn listener(&self, port: u16) -> Option<&ListenerCounters> {
        let tag = u32::from(port) + 1;
        for l in self.listeners.0.iter() {
            match l.port.load(Relaxed) {
                t if t == tag => return Some(l),
                0 => match l.port.compare_exchange(0, tag, Relaxed, Relaxed) {
                    Ok(_) => return Some(l),
                    Err(t) if t == tag => return Some(l),
                    Err(_) => {}
                },
                _ => {}
            }
        }
        None
    }

    fn listener_snapshots(&self) -> BTreeMap<u16, ListenerSnapshot> {
        self.listeners
            .0
            .iter()
            .filter_map(|l| {
                let port = u16::try_from(l.port.load(Relaxed).checked_sub(1)?).ok()?;
                Some((
                    port,
                    ListenerSnapshot {
                        new_connection_count: l.new_connections.load(Relaxed),
                        active_connection_count: l.active_connections.load(Relaxed),
                        rejected_connection_count: l.rejected_connections.load(Relaxed),
                        request_count: l.requests.load(Relaxed),
                        processed_bytes: l.processed_bytes.load(Relaxed),
                    },
                ))
            })
            .collect()
    }

    pub fn elb_status(&self, code: u16) {
        if (100..600).contains(&code) {
            self.elb_codes.0[(code - 100) as usize].fetch_add(1, Relaxed);
        }
    }

    pub fn target_status(&self, code: u16) {
        if let Some(c) = self.target_responses.get((code / 100) as usize) {
            c.fetch_add(1, Relaxed);
        }
    }

    pub fn elb_code_count(&self, code: u16) -> u64 {
        if (100..600).contains(&code) {
            self.elb_codes.0[(code - 100) as usize].load(Relaxed)
        } else {
            0
        }
    }

    /// A consistent-enough copy for the control plane.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let codes: BTreeMap<u16, u64> = (100u16..600)
            .map(|c| (c, self.elb_code_count(c)))
            .filter(|&(_, n)| n > 0)
            .collect();
        let class = |k: u16| {
            codes
                .iter()
                .filter(|(c, _)| **c / 100 == k)
                .map(|(_, n)| n)
                .sum()
        };
        let t = |k: usize| self.target_responses[k].load(Relaxed);
        MetricsSnapshot {
            active_connection_count: self.active_connections.load(Relaxed),
            new_connection_count: self.new_connections.load(Relaxed),
            rejected_connection_count: self.rejected_connections.load(Relaxed),
            request_count: self.requests.load(Relaxed),
            processed_bytes: self.processed_bytes.load(Relaxed),
            client_tls_negotiation_error_count: self.client_tls_negotiation_errors.load(Relaxed),
            elb_4xx: class(4),
            elb_5xx: class(5),
            elb_502: codes.get(&502).copied().unwrap_or(0),
            elb_503: codes.get(&503).copied().unwrap_or(0),
            elb_504: codes.get(&504).copied().unwrap_or(0),
            fixed_response_count: self.fixed_responses.load(Relaxed),
            redirect_count: self.redirects.load(Relaxed),
            rule_evaluations: self.rule_evaluations.load(Relaxed),
            desync_non_compliant: self.desync_non_compliant.load(Relaxed),
            target_2xx: t(2),
            target_3xx: t(3),
            target_4xx: t(4),
            target_5xx: t(5),
            target_connection_error_count: self.target_connection_errors.load(Relaxed),
            elb_status_codes: codes,
            upstream_connections_opened: self.upstream_connections_opened.load(Relaxed),
            upstream_connections_reused: self.upstream_connections_reused.load(Relaxed),
            upstream_retries: self.upstream_retries.load(Relaxed),
            upstream_requeued: self.upstream_requeued.load(Relaxed),
            anomalous_host_count: 0,
            mitigated_host_count: 0,
            targets: BTreeMap::new(),
            listeners: self.listener_snapshots(),
            access_log_dropped: 0,
            access_log_write_failed: 0,
            idle_closed_at_limit: self.idle_closed_at_limit.load(Relaxed),
            target_connections_refused_at_limit: self.target_conns_refused_at_limit.load(Relaxed),
        }
    }
}

#[derive(Debug)]
struct Codes([AtomicU64; 500]);
impl Default for Codes {
    fn default() -> Self {
        Codes(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// Per-target counters.
#[derive(Debug, Default)]
pub struct TargetCounters {
    pub requests: AtomicU64,
    pub connection_errors: AtomicU64,
    /// 5xx answers, failed connections, timeouts, closes and malformed responses (anomaly
    /// detection's errors).
    pub errors: AtomicU64,
    /// Requests that waited in the target's queue (`target_limits`).
    pub queued: AtomicU64,
    /// Requests refused by the target's queue (full or timed out): 503.
    pub queue_rejected: AtomicU64,
    /// The target's responses by class: 2xx, 3xx, 4xx, 5xx (`HTTPCode_Target_*`).
    pub responses: [AtomicU64; 4],
    /// `TargetResponseTime`: request sent → response head, per [`RESPONSE_TIME_BOUNDS_US`]
    /// bucket (the last: slower), and the sum in microseconds.
    pub response_time: [AtomicU64; RESPONSE_TIME_BOUNDS_US.len() + 1],
    pub response_time_sum_us: AtomicU64,
}

impl TargetCounters {
    /// A response head with `status` arrived `took` after the request was sent.
    pub fn answered(&self, status: u16, took: Duration) {
        if let Some(c) = (status / 100)
            .checked_sub(2)
            .and_then(|i| self.responses.get(i as usize))
        {
            c.fetch_add(1, Relaxed);
        }
        let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let i = RESPONSE_TIME_BOUNDS_US.partition_point(|b| *b < us);
        self.response_time[i].fetch_add(1, Relaxed);
        self.response_time_sum_us.fetch_add(us, Relaxed);
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TargetSnapshot {
    #[serde(rename = "RequestCountPerTarget")]
    pub request_count: u64,
    #[serde(rename = "TargetConnectionErrorCount")]
    pub connection_error_count: u64,
    pub outstanding_requests: u64,
    pub idle_connections: u64,
    pub state: String,
    /// Anomaly detection's verdict: `normal` or `anomalous`.
    pub anomaly: &'static str,
    /// The weight counts `>> weight_shift` (anomaly mitigation); 0 = the configured weight.
    pub weight_shift: u8,
    /// Passive health (this worker's outlier detection) ejected the target now.
    pub ejected: bool,
    /// Ejections that count towards the next one's length.
    pub ejections: u32,
    /// In slow start: thousandths of its full share it gets now.
    pub slow_start_permille: Option<u16>,
    /// `target_limits`: requests waiting now, ever queued, refused (503).
    pub queue_length: u32,
    pub queued_requests: u64,
    pub queue_rejected_requests: u64,
    /// Keep-alive learning, flattened: `learned_keepalive_ms`, ….
    #[serde(flatten)]
    pub keepalive: KeepAliveSnapshot,
    #[serde(rename = "HTTPCode_Target_2XX_Count")]
    pub target_2xx: u64,
    #[serde(rename = "HTTPCode_Target_3XX_Count")]
    pub target_3xx: u64,
    #[serde(rename = "HTTPCode_Target_4XX_Count")]
    pub target_4xx: u64,
    #[serde(rename = "HTTPCode_Target_5XX_Count")]
    pub target_5xx: u64,
    /// `TargetResponseTime`: responses per [`RESPONSE_TIME_BOUNDS_US`] bucket (not cumulative;
    /// one more for the slower ones), and their sum in microseconds.
    pub response_time_buckets: Vec<u64>,
    pub response_time_sum_us: u64,
}

/// What a target's connection pool knows of its keep-alive (`pool::keepalive`), in
/// milliseconds: learned from closes seen, advertised by its `Keep-Alive: timeout`, and the
/// idle ages from which pooled connections are retired for requests weir may retry and for
/// those it may not; how many pooled connections were found closed idle, or dead on reuse.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeepAliveSnapshot {
    pub learned_keepalive_ms: Option<u64>,
    pub advertised_keepalive_ms: Option<u64>,
    pub keepalive_retire_ms: u64,
    pub keepalive_retire_strict_ms: u64,
    pub keepalive_closed_idle: u64,
    pub keepalive_dead_on_reuse: u64,
}

/// What `Worker::metrics()` returns; serialises to JSON with ALB's metric names.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricsSnapshot {
    #[serde(rename = "ActiveConnectionCount")]
    pub active_connection_count: u64,
    #[serde(rename = "NewConnectionCount")]
    pub new_connection_count: u64,
    #[serde(rename = "RejectedConnectionCount")]
    pub rejected_connection_count: u64,
    #[serde(rename = "RequestCount")]
    pub request_count: u64,
    #[serde(rename = "ProcessedBytes")]
    pub processed_bytes: u64,
    #[serde(rename = "ClientTLSNegotiationErrorCount")]
    pub client_tls_negotiation_error_count: u64,
    #[serde(rename = "HTTPCode_ELB_4XX_Count")]
    pub elb_4xx: u64,
    #[serde(rename = "HTTPCode_ELB_5XX_Count")]
    pub elb_5xx: u64,
    #[serde(rename = "HTTPCode_ELB_502_Count")]
    pub elb_502: u64,
    #[serde(rename = "HTTPCode_ELB_503_Count")]
    pub elb_503: u64,
    #[serde(rename = "HTTPCode_ELB_504_Count")]
    pub elb_504: u64,
    #[serde(rename = "HTTP_Fixed_Response_Count")]
    pub fixed_response_count: u64,
    #[serde(rename = "HTTP_Redirect_Count")]
    pub redirect_count: u64,
    #[serde(rename = "RuleEvaluations")]
    pub rule_evaluations: u64,
    #[serde(rename = "DesyncMitigationMode_NonCompliant_Request_Count")]
    pub desync_non_compliant: u64,
    #[serde(rename = "HTTPCode_Target_2XX_Count")]
    pub target_2xx: u64,
    #[serde(rename = "HTTPCode_Target_3XX_Count")]
    pub target_3xx: u64,
    #[serde(rename = "HTTPCode_Target_4XX_Count")]
    pub target_4xx: u64,
    #[serde(rename = "HTTPCode_Target_5XX_Count")]
    pub target_5xx: u64,
    #[serde(rename = "TargetConnectionErrorCount")]
    pub target_connection_error_count: u64,
    /// weir: every status code weir produced itself, by code.
    pub elb_status_codes: BTreeMap<u16, u64>,
    pub upstream_connections_opened: u64,
    pub upstream_connections_reused: u64,
    pub upstream_retries: u64,
    pub upstream_requeued: u64,
    /// Targets anomaly detection flags now, over all groups (ALB's `AnomalousHostCount`).
    #[serde(rename = "AnomalousHostCount")]
    pub anomalous_host_count: u64,
    /// Targets whose weight mitigation lowered now (ALB's `MitigatedHostCount`).
    #[serde(rename = "MitigatedHostCount")]
    pub mitigated_host_count: u64,
    /// `"group/address:port"` → counters.
    pub targets: BTreeMap<String, TargetSnapshot>,
    /// Listener port → its counters.
    pub listeners: BTreeMap<u16, ListenerSnapshot>,
    /// weir: access-log lines dropped because the writer's queue was full.
    pub access_log_dropped: u64,
    /// weir: access-log lines lost to a failed write (a full disk, a FIFO whose reader left).
    pub access_log_write_failed: u64,
    /// weir: idle keep-alive connections closed to make room for a new one at the worker's
    /// connection limit (nginx's "reusing connections").
    pub idle_closed_at_limit: u64,
    /// weir: requests refused (HTTP/1.1 503, HTTP/2 REFUSED_STREAM or 503) because the worker
    /// held as many target connections as its descriptor budget allows, none idle.
    pub target_connections_refused_at_limit: u64,
}

impl MetricsSnapshot {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
