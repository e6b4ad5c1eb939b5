//! One worker's figures as flat series — a [`Key`] (CloudWatch name and labels) → value — built
//! from `lb_l7::metrics::MetricsSnapshot` in the worker, sent to the control plane as one JSON
//! line ([`Figures::to_line`]), and summed there ([`super::store`]). Flat, so the aggregation is
//! one generic fold whatever metrics the worker grows.

use std::collections::BTreeMap;

use lb_l7::{generation::DrainReport, metrics::MetricsSnapshot};
use serde::{Deserialize, Serialize};

/// A series: the metric's name (ALB's CloudWatch name where it has one) and its labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub name: String,
    /// The target group (target series).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The target, `address:port` (target series).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// A status code (the `HTTPCode_ELB` series, one per code weir answered with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// The listener's port (listener series: a listener is its port across generations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<u16>,
}

impl Key {
    pub fn plain(name: &str) -> Key {
        Key {
            name: name.into(),
            group: String::new(),
            target: String::new(),
            code: None,
            listener: None,
        }
    }

    pub fn target(name: &str, group: &str, target: &str) -> Key {
        Key {
            group: group.into(),
            target: target.into(),
            ..Key::plain(name)
        }
    }

    pub fn code(name: &str, code: u16) -> Key {
        Key {
            code: Some(code),
            ..Key::plain(name)
        }
    }

    pub fn listener(name: &str, port: u16) -> Key {
        Key {
            listener: Some(port),
            ..Key::plain(name)
        }
    }
}

/// The series name of the status codes weir answered with itself (one series per code).
pub const ELB_CODE: &str = "HTTPCode_ELB";
/// The response-time histogram's series, per target group (`Key::code` = bucket index into
/// `lb_l7::metrics::RESPONSE_TIME_BOUNDS_US`, one more for the slower ones).
pub const RT_BUCKET: &str = "TargetResponseTime_bucket";
pub const RT_SUM_US: &str = "TargetResponseTime_sum_us";
pub const RT_COUNT: &str = "TargetResponseTime_count";

/// A worker's figures: counters (only ever grow within one worker process, except a target's
/// after a reload replaced its group) and gauges (values now). The same report carries the
/// worker's draining targets for the health view (`crate::health::table`): not metrics, but
/// what the worker tells the control plane at the same pace, on the same pipe.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub counters: BTreeMap<Key, u64>,
    pub gauges: BTreeMap<Key, u64>,
    /// `None` from a worker that does not report it.
    pub drain: Option<DrainReport>,
}

/// The wire form: JSON object keys must be strings, so the maps travel as pairs.
#[derive(Serialize, Deserialize)]
struct Wire {
    counters: Vec<(Key, u64)>,
    gauges: Vec<(Key, u64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drain: Option<DrainReport>,
}

/// The worker-wide counters of `MetricsSnapshot`, by CloudWatch name (or weir's own).
fn worker_counters(s: &MetricsSnapshot) -> [(&'static str, u64); 22] {
    [
        ("NewConnectionCount", s.new_connection_count),
        ("RejectedConnectionCount", s.rejected_connection_count),
        ("RequestCount", s.request_count),
        ("ProcessedBytes", s.processed_bytes),
        (
            "ClientTLSNegotiationErrorCount",
            s.client_tls_negotiation_error_count,
        ),
        ("HTTP_Fixed_Response_Count", s.fixed_response_count),
        ("HTTP_Redirect_Count", s.redirect_count),
        ("RuleEvaluations", s.rule_evaluations),
        (
            "DesyncMitigationMode_NonCompliant_Request_Count",
            s.desync_non_compliant,
        ),
        ("HTTPCode_Target_2XX_Count", s.target_2xx),
        ("HTTPCode_Target_3XX_Count", s.target_3xx),
        ("HTTPCode_Target_4XX_Count", s.target_4xx),
        ("HTTPCode_Target_5XX_Count", s.target_5xx),
        (
            "TargetConnectionErrorCount",
            s.target_connection_error_count,
        ),
        ("upstream_connections_opened", s.upstream_connections_opened),
        ("upstream_connections_reused", s.upstream_connections_reused),
        ("upstream_retries", s.upstream_retries),
        ("upstream_requeued", s.upstream_requeued),
        ("access_log_dropped", s.access_log_dropped),
        ("access_log_write_failed", s.access_log_write_failed),
        ("idle_closed_at_limit", s.idle_closed_at_limit),
        (
            "target_connections_refused_at_limit",
            s.target_connections_refused_at_limit,
        ),
    ]
}

impl Figures {
    /// What a worker reports: its snapshot, flattened.
    pub fn from_snapshot(s: &MetricsSnapshot) -> Figures {
        let mut f = Figures::default();
        for (name, v) in worker_counters(s) {
            f.counters.insert(Key::plain(name), v);
        }
        for (&code, &n) in &s.elb_status_codes {
            f.counters.insert(Key::code(ELB_CODE, code), n);
        }
        f.gauges.insert(
            Key::plain("ActiveConnectionCount"),
            s.active_connection_count,
        );
        f.gauges
            .insert(Key::plain("AnomalousHostCount"), s.anomalous_host_count);
        f.gauges
            .insert(Key::plain("MitigatedHostCount"), s.mitigated_host_count);
        for (&port, l) in &s.listeners {
            for (name, v) in [
                ("NewConnectionCount", l.new_connection_count),
                ("RejectedConnectionCount", l.rejected_connection_count),
                ("RequestCount", l.request_count),
                ("ProcessedBytes", l.processed_bytes),
            ] {
                f.counters.insert(Key::listener(name, port), v);
            }
            f.gauges.insert(
                Key::listener("ActiveConnectionCount", port),
                l.active_connection_count,
            );
        }
        for (id, t) in &s.targets {
            // `group/address:port`; group names have no `/`.
            let (group, target) = id.split_once('/').unwrap_or(("", id));
            let c = |name: &str| Key::target(name, group, target);
            for (name, v) in [
                ("RequestCountPerTarget", t.request_count),
                ("HTTPCode_Target_2XX_Count", t.target_2xx),
                ("HTTPCode_Target_3XX_Count", t.target_3xx),
                ("HTTPCode_Target_4XX_Count", t.target_4xx),
                ("HTTPCode_Target_5XX_Count", t.target_5xx),
                ("TargetConnectionErrorCount", t.connection_error_count),
                ("queued_requests", t.queued_requests),
                ("queue_rejected_requests", t.queue_rejected_requests),
                ("keepalive_closed_idle", t.keepalive.keepalive_closed_idle),
                (
                    "keepalive_dead_on_reuse",
                    t.keepalive.keepalive_dead_on_reuse,
                ),
            ] {
                f.counters.insert(c(name), v);
            }
            // TargetResponseTime, per group: the targets' buckets summed.
            let group_key = |name: &str, bucket: Option<u16>| Key {
                group: group.into(),
                code: bucket,
                ..Key::plain(name)
            };
            for (i, n) in t.response_time_buckets.iter().enumerate() {
                *f.counters
                    .entry(group_key(RT_BUCKET, Some(i as u16)))
                    .or_default() += n;
            }
            *f.counters.entry(group_key(RT_COUNT, None)).or_default() +=
                t.response_time_buckets.iter().sum::<u64>();
            *f.counters.entry(group_key(RT_SUM_US, None)).or_default() += t.response_time_sum_us;
            for (name, v) in [
                ("outstanding_requests", t.outstanding_requests),
                ("idle_connections", t.idle_connections),
                ("queue_length", u64::from(t.queue_length)),
                ("ejected", u64::from(t.ejected)),
                ("slow_start", u64::from(t.slow_start_permille.is_some())),
            ] {
                f.gauges.insert(c(name), v);
            }
        }
        f
    }

    /// One line of JSON (no newline inside), ended by `\n`.
    pub fn to_line(&self) -> String {
        let w = Wire {
            counters: self.counters.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            gauges: self.gauges.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            drain: self.drain.clone(),
        };
        let mut s = serde_json::to_string(&w).unwrap_or_default();
        s.push('\n');
        s
    }

    pub fn from_line(line: &[u8]) -> Result<Figures, serde_json::Error> {
        let w: Wire = serde_json::from_slice(line)?;
        Ok(Figures {
            counters: w.counters.into_iter().collect(),
            gauges: w.gauges.into_iter().collect(),
            drain: w.drain,
        })
    }
}
