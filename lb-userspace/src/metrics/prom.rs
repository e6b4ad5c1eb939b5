//! The Prometheus page: a [`MetricsView`] in the OpenMetrics text format, written through
//! `prometheus-client`'s encoder (one `Collector` over the view, so every scrape shows the view
//! of that instant). Names are `weir_` + the CloudWatch name in snake case; each `# HELP` names
//! the CloudWatch metric. The table is in `docs/metrics.md` (and [`L7_FIGURES`]).

use std::fmt;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
    registry::Registry,
};

use super::view::{Histogram, MetricsView};

/// The content type of the page.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Counter,
    Gauge,
}

/// The worker-wide figures: (key in the JSON view, Prometheus name without `weir_` and
/// `_total`, kind, help). The same names serve the per-listener (`weir_listener_…`) and
/// per-worker (`weir_worker_…`) families where those have the figure.
pub const L7_FIGURES: &[(&str, &str, Kind, &str)] = &[
    (
        "RequestCount",
        "request_count",
        Kind::Counter,
        "RequestCount: requests received, HTTP/1.1 and HTTP/2 (ALB CloudWatch RequestCount)",
    ),
    (
        "NewConnectionCount",
        "new_connection_count",
        Kind::Counter,
        "NewConnectionCount: client TCP connections accepted (ALB CloudWatch NewConnectionCount)",
    ),
    (
        "ActiveConnectionCount",
        "active_connection_count",
        Kind::Gauge,
        "ActiveConnectionCount: client connections open now (ALB CloudWatch ActiveConnectionCount, as a gauge)",
    ),
    (
        "RejectedConnectionCount",
        "rejected_connection_count",
        Kind::Counter,
        "RejectedConnectionCount: connections refused at the connection limit or out of descriptors (ALB CloudWatch RejectedConnectionCount)",
    ),
    (
        "ProcessedBytes",
        "processed_bytes",
        Kind::Counter,
        "ProcessedBytes: bytes received from and sent to clients (ALB CloudWatch ProcessedBytes)",
    ),
    (
        "ClientTLSNegotiationErrorCount",
        "client_tls_negotiation_error_count",
        Kind::Counter,
        "ClientTLSNegotiationErrorCount: failed client TLS handshakes (ALB CloudWatch ClientTLSNegotiationErrorCount)",
    ),
    (
        "HTTP_Fixed_Response_Count",
        "http_fixed_response_count",
        Kind::Counter,
        "HTTP_Fixed_Response_Count: fixed-response actions (ALB CloudWatch HTTP_Fixed_Response_Count)",
    ),
    (
        "HTTP_Redirect_Count",
        "http_redirect_count",
        Kind::Counter,
        "HTTP_Redirect_Count: redirect actions (ALB CloudWatch HTTP_Redirect_Count)",
    ),
    (
        "RuleEvaluations",
        "rule_evaluations",
        Kind::Counter,
        "RuleEvaluations: listener rules evaluated (ALB CloudWatch RuleEvaluations)",
    ),
    (
        "DesyncMitigationMode_NonCompliant_Request_Count",
        "desync_mitigation_mode_non_compliant_request_count",
        Kind::Counter,
        "DesyncMitigationMode_NonCompliant_Request_Count: requests not RFC 7230 compliant (ALB CloudWatch)",
    ),
    (
        "TargetConnectionErrorCount",
        "target_connection_error_count",
        Kind::Counter,
        "TargetConnectionErrorCount: connections to targets that failed (ALB CloudWatch TargetConnectionErrorCount)",
    ),
    (
        "AnomalousHostCount",
        "anomalous_host_count",
        Kind::Gauge,
        "AnomalousHostCount: targets anomaly detection flags now (ALB CloudWatch AnomalousHostCount; summed over workers)",
    ),
    (
        "MitigatedHostCount",
        "mitigated_host_count",
        Kind::Gauge,
        "MitigatedHostCount: targets whose weight mitigation lowered now (ALB CloudWatch MitigatedHostCount; summed over workers)",
    ),
    (
        "upstream_connections_opened",
        "upstream_connections_opened",
        Kind::Counter,
        "weir: connections opened to targets",
    ),
    (
        "upstream_connections_reused",
        "upstream_connections_reused",
        Kind::Counter,
        "weir: requests sent on a pooled target connection",
    ),
    (
        "upstream_retries",
        "upstream_retries",
        Kind::Counter,
        "weir: requests retried on another connection after a reused one closed",
    ),
    (
        "upstream_requeued",
        "upstream_requeued",
        Kind::Counter,
        "weir: HTTP/2-path requests handed back unsent by a closed pooled connection and sent again",
    ),
    (
        "access_log_dropped",
        "access_log_dropped",
        Kind::Counter,
        "weir: access-log lines dropped because the writer's queue was full",
    ),
    (
        "access_log_write_failed",
        "access_log_write_failed",
        Kind::Counter,
        "weir: access-log lines lost to a failed write (a full disk, a FIFO whose reader left)",
    ),
    (
        "idle_closed_at_limit",
        "idle_connections_closed_at_limit",
        Kind::Counter,
        "weir: idle keep-alive connections closed to make room for a new one at the connection limit",
    ),
    (
        "target_connections_refused_at_limit",
        "target_connections_refused_at_limit",
        Kind::Counter,
        "weir: requests refused because the worker held as many target connections as its descriptor budget allows, none idle",
    ),
];

/// Per target: (key in the view's target `counters`/`gauges`, name after `weir_target_`, kind,
/// help).
pub const TARGET_FIGURES: &[(&str, &str, Kind, &str)] = &[
    (
        "RequestCountPerTarget",
        "request_count",
        Kind::Counter,
        "RequestCountPerTarget: requests sent to the target (ALB CloudWatch RequestCountPerTarget, as a count per target)",
    ),
    (
        "TargetConnectionErrorCount",
        "connection_error_count",
        Kind::Counter,
        "TargetConnectionErrorCount of the target (ALB CloudWatch TargetConnectionErrorCount per target)",
    ),
    (
        "outstanding_requests",
        "outstanding_requests",
        Kind::Gauge,
        "weir: requests in flight to the target now",
    ),
    (
        "idle_connections",
        "idle_connections",
        Kind::Gauge,
        "weir: pooled idle connections to the target now",
    ),
    (
        "queue_length",
        "queue_length",
        Kind::Gauge,
        "weir: requests waiting in the target's queue now (target_limits)",
    ),
    (
        "ejected",
        "ejected",
        Kind::Gauge,
        "weir: workers whose passive health ejects the target now",
    ),
    (
        "slow_start",
        "slow_start",
        Kind::Gauge,
        "weir: workers in which the target is in slow start now (its share ramping up)",
    ),
    (
        "queued_requests",
        "queued_requests",
        Kind::Counter,
        "weir: requests that waited in the target's queue",
    ),
    (
        "queue_rejected_requests",
        "queue_rejected_requests",
        Kind::Counter,
        "weir: requests refused by the target's queue (503)",
    ),
    (
        "keepalive_closed_idle",
        "keepalive_closed_idle",
        Kind::Counter,
        "weir: pooled connections found closed while idle",
    ),
    (
        "keepalive_dead_on_reuse",
        "keepalive_dead_on_reuse",
        Kind::Counter,
        "weir: pooled connections found dead on reuse",
    ),
];

type Labels = Vec<(&'static str, String)>;

/// One family: its descriptor, then each series.
fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: Kind,
    series: impl IntoIterator<Item = (Labels, u64)>,
) -> fmt::Result {
    let ty = match kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
    };
    let mut me = enc.encode_descriptor(name, help, None, ty)?;
    for (labels, v) in series {
        let mut m = me.encode_family(&labels)?;
        match kind {
            Kind::Counter => m.encode_counter::<NoLabelSet, _, u64>(&v, None)?,
            // Gauges are i64 in the encoder; these values are far below its range.
            Kind::Gauge => m.encode_gauge(&(v.min(i64::MAX as u64) as i64))?,
        }
    }
    Ok(())
}

/// A gauge family of signed values (Unix timestamps).
fn gauges_i64(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, i64)>,
) -> fmt::Result {
    let mut me = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        me.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

fn gauge_f64(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> fmt::Result {
    let mut me = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    me.encode_gauge(&v)
}

fn histogram(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, &Histogram)],
) -> fmt::Result {
    let mut me = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in series {
        // The encoder takes each bucket's own count and accumulates; ours are cumulative.
        let mut buckets = Vec::with_capacity(h.counts.len() + 1);
        let mut before = 0;
        for (le, c) in h.le_seconds.iter().zip(&h.counts) {
            buckets.push((*le, c.saturating_sub(before)));
            before = *c;
        }
        buckets.push((f64::INFINITY, h.count.saturating_sub(before)));
        me.encode_family(labels)?.encode_histogram::<NoLabelSet>(
            h.sum_seconds,
            h.count,
            &buckets,
            None,
        )?;
    }
    Ok(())
}

/// `HTTPCode_ELB_4XX_Count` → `4XX`.
fn class_of(key: &str, prefix: &str) -> Option<String> {
    let c = key.strip_prefix(prefix)?.strip_suffix("_Count")?;
    (c.len() == 3 && c.ends_with("XX")).then(|| c.to_string())
}

#[derive(Debug)]
struct ViewCollector(MetricsView);

impl Collector for ViewCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let v = &self.0;
        family(
            &mut enc,
            "weir_config_generation",
            "weir: the configuration generation in force (1 at start, +1 per applied reload)",
            Kind::Gauge,
            [(Vec::new(), v.generation)],
        )?;
        if let Some(l7) = &v.l7 {
            l7_families(&mut enc, l7)?;
        }
        if let Some(x) = &v.xdp {
            xdp_families(&mut enc, x)?;
        }
        if !v.discovery.is_empty() {
            discovery_families(&mut enc, &v.discovery)?;
        }
        Ok(())
    }
}

fn discovery_families(
    enc: &mut DescriptorEncoder,
    groups: &[super::view::DiscoveryFigures],
) -> fmt::Result {
    let group = |g: &super::view::DiscoveryFigures| vec![("target_group", g.target_group.clone())];
    family(
        enc,
        "weir_discovery_resolutions",
        "weir: DNS discovery's resolutions of the group's name, by outcome (answer, empty: NXDOMAIN or no records, failed: no answer)",
        Kind::Counter,
        groups.iter().flat_map(|g| {
            g.resolutions.iter().map(move |(outcome, n)| {
                let mut l = group(g);
                l.push(("outcome", outcome.clone()));
                (l, *n)
            })
        }),
    )?;
    family(
        enc,
        "weir_discovery_targets",
        "weir: the group's discovered targets in force",
        Kind::Gauge,
        groups.iter().map(|g| (group(g), g.targets)),
    )?;
    family(
        enc,
        "weir_discovery_skipped_addresses",
        "weir: addresses DNS answered for the group that no target may have (unspecified, multicast, broadcast), skipped",
        Kind::Counter,
        groups.iter().map(|g| (group(g), g.skipped_addresses)),
    )?;
    family(
        enc,
        "weir_discovery_consecutive_failures",
        "weir: the group's failed DNS resolutions in a row (0 after any answer)",
        Kind::Gauge,
        groups.iter().map(|g| (group(g), g.consecutive_failures)),
    )
}

fn l7_families(enc: &mut DescriptorEncoder, l7: &super::view::L7View) -> fmt::Result {
    gauge_f64(
        enc,
        "weir_metrics_staleness_seconds",
        "weir: age of the oldest live worker's report included (the L7 figures are at most this old)",
        l7.staleness_ms as f64 / 1000.0,
    )?;
    for (key, name, kind, help) in L7_FIGURES {
        // Its total is the sum of the per-target family of the same name (below).
        if *key == "TargetConnectionErrorCount" {
            continue;
        }
        if let Some(v) = l7.totals.get(*key) {
            family(
                enc,
                &format!("weir_{name}"),
                help,
                *kind,
                [(Vec::new(), *v)],
            )?;
        }
    }
    family(
        enc,
        "weir_http_code_elb",
        "HTTPCode_ELB_4XX_Count, HTTPCode_ELB_5XX_Count, HTTPCode_ELB_502_Count, …: responses weir produced itself, by status code and class (ALB CloudWatch HTTPCode_ELB_*)",
        Kind::Counter,
        l7.elb_status_codes.iter().map(|(code, n)| {
            let class = format!("{}XX", &code[..1]);
            (vec![("code", code.clone()), ("class", class)], *n)
        }),
    )?;
    family(
        enc,
        "weir_http_code_target",
        "HTTPCode_Target_2XX_Count … HTTPCode_Target_5XX_Count: responses from targets, by class (ALB CloudWatch)",
        Kind::Counter,
        l7.totals
            .iter()
            .filter_map(|(k, n)| Some((vec![("class", class_of(k, "HTTPCode_Target_")?)], *n))),
    )?;
    certificate_families(enc, &l7.certificates)?;
    // Per listener.
    for (key, name, kind, help) in L7_FIGURES {
        let series: Vec<(Labels, u64)> = l7
            .listeners
            .iter()
            .filter_map(|l| {
                let v = l.counters.get(*key).or_else(|| l.gauges.get(*key))?;
                Some((
                    vec![
                        ("listener", l.listener.clone()),
                        ("protocol", l.protocol.clone()),
                    ],
                    *v,
                ))
            })
            .collect();
        if !series.is_empty() {
            family(
                enc,
                &format!("weir_listener_{name}"),
                &format!("{help}, per listener"),
                *kind,
                series,
            )?;
        }
    }
    // Target groups: health, per zone; targets; response time.
    let zone = |z: &Option<String>| z.clone().unwrap_or_else(|| "-".into());
    let per_zone = |healthy: bool| -> Vec<(Labels, u64)> {
        l7.target_groups
            .iter()
            .flat_map(|g| {
                g.zones.iter().map(move |(z, c)| {
                    let n = if healthy {
                        c.healthy_host_count
                    } else {
                        c.unhealthy_host_count
                    };
                    (
                        vec![
                            ("target_group", g.target_group.clone()),
                            ("zone", z.clone()),
                        ],
                        n as u64,
                    )
                })
            })
            .collect()
    };
    family(
        enc,
        "weir_healthy_host_count",
        "HealthyHostCount: targets the health checks find healthy, per target group and zone (ALB CloudWatch HealthyHostCount)",
        Kind::Gauge,
        per_zone(true),
    )?;
    family(
        enc,
        "weir_unhealthy_host_count",
        "UnHealthyHostCount: targets the health checks find unhealthy, per target group and zone (ALB CloudWatch UnHealthyHostCount)",
        Kind::Gauge,
        per_zone(false),
    )?;
    family(
        enc,
        "weir_target_group_fail_open",
        "weir: 1 when no target of the group is healthy and requests go to all of them",
        Kind::Gauge,
        l7.target_groups.iter().map(|g| {
            (
                vec![("target_group", g.target_group.clone())],
                u64::from(g.fail_open),
            )
        }),
    )?;
    let target_labels = |g: &super::view::GroupFigures, t: &super::view::TargetFigures| -> Labels {
        vec![
            ("target_group", g.target_group.clone()),
            ("target", t.target.clone()),
            ("zone", zone(&t.availability_zone)),
        ]
    };
    family(
        enc,
        "weir_target_health",
        "weir: 1 for each target's health state now, as the control plane's checks find it (describe-target-health)",
        Kind::Gauge,
        l7.target_groups.iter().flat_map(|g| {
            g.targets.iter().filter_map(move |t| {
                let mut l = target_labels(g, t);
                l.push(("state", t.state.clone()?));
                Some((l, 1))
            })
        }),
    )?;
    for (key, name, kind, help) in TARGET_FIGURES {
        let series: Vec<(Labels, u64)> = l7
            .target_groups
            .iter()
            .flat_map(|g| {
                g.targets.iter().filter_map(move |t| {
                    let v = t.counters.get(*key).or_else(|| t.gauges.get(*key))?;
                    Some((target_labels(g, t), *v))
                })
            })
            .collect();
        family(enc, &format!("weir_target_{name}"), help, *kind, series)?;
    }
    family(
        enc,
        "weir_target_http_code",
        "HTTPCode_Target_2XX_Count … 5XX per target: the target's responses by class (ALB CloudWatch HTTPCode_Target_*)",
        Kind::Counter,
        l7.target_groups.iter().flat_map(|g| {
            g.targets.iter().flat_map(move |t| {
                t.counters.iter().filter_map(move |(k, n)| {
                    let mut l = target_labels(g, t);
                    l.push(("class", class_of(k, "HTTPCode_Target_")?));
                    Some((l, *n))
                })
            })
        }),
    )?;
    let hists: Vec<(Labels, &Histogram)> = l7
        .target_groups
        .iter()
        .filter_map(|g| {
            Some((
                vec![("target_group", g.target_group.clone())],
                g.target_response_time.as_ref()?,
            ))
        })
        .collect();
    histogram(
        enc,
        "weir_target_response_time_seconds",
        "TargetResponseTime: seconds from the request sent to a target to its response head (ALB CloudWatch TargetResponseTime, as a histogram), per target group",
        &hists,
    )?;
    // Per worker.
    let w = |f: &dyn Fn(&super::view::WorkerView) -> Option<u64>| -> Vec<(Labels, u64)> {
        l7.workers
            .iter()
            .filter_map(|w| Some((vec![("worker", w.worker.to_string())], f(w)?)))
            .collect()
    };
    family(
        enc,
        "weir_worker_up",
        "weir: 1 while the worker slot's process runs and reports",
        Kind::Gauge,
        w(&|w| Some(u64::from(w.live))),
    )?;
    family(
        enc,
        "weir_worker_restarts",
        "weir: processes started in the worker slot after its first",
        Kind::Counter,
        w(&|w| Some(w.restarts)),
    )?;
    family(
        enc,
        "weir_worker_watchdog_kills",
        "weir: processes in the worker slot killed by the watchdog, silent for [workers] watchdog_seconds",
        Kind::Counter,
        w(&|w| Some(w.watchdog_kills)),
    )?;
    family(
        enc,
        "weir_worker_report_age_milliseconds",
        "weir: milliseconds since the worker's last report",
        Kind::Gauge,
        w(&|w| w.report_age_ms),
    )?;
    for (key, name, kind, help) in L7_FIGURES {
        let series = w(&|w| w.counters.get(*key).or_else(|| w.gauges.get(*key)).copied());
        if !series.is_empty() {
            family(
                enc,
                &format!("weir_worker_{name}"),
                &format!("{help}, per worker"),
                *kind,
                series,
            )?;
        }
    }
    for (prefix, name) in [("HTTPCode_ELB_", "elb"), ("HTTPCode_Target_", "target")] {
        let series: Vec<(Labels, u64)> = l7
            .workers
            .iter()
            .flat_map(|w| {
                w.counters.iter().filter_map(move |(k, n)| {
                    Some((
                        vec![
                            ("worker", w.worker.to_string()),
                            ("class", class_of(k, prefix)?),
                        ],
                        *n,
                    ))
                })
            })
            .collect();
        family(
            enc,
            &format!("weir_worker_http_code_{name}"),
            &format!("{prefix}*XX_Count per worker, by class"),
            Kind::Counter,
            series,
        )?;
    }
    Ok(())
}

/// Each listener certificate's validity bounds: the series an expiry alert is written on
/// (`weir_certificate_expiry_timestamp_seconds - time() < 86400 * 14`), as the blackbox and
/// x509 exporters' `*_not_after` gauges. A certificate a reload removes loses its series.
fn certificate_families(
    enc: &mut DescriptorEncoder,
    certs: &[super::view::CertificateFigures],
) -> fmt::Result {
    if certs.is_empty() {
        return Ok(());
    }
    let labels = |c: &super::view::CertificateFigures| -> Labels {
        vec![
            ("listener", c.listener.clone()),
            ("file", c.file.clone()),
            ("subject", c.subject.clone()),
        ]
    };
    gauges_i64(
        enc,
        "weir_certificate_expiry_timestamp_seconds",
        "weir: the listener certificate's notAfter, Unix seconds (the first certificate of certificate_file, as the workers serve it)",
        certs.iter().map(|c| (labels(c), c.not_after_unix)),
    )?;
    gauges_i64(
        enc,
        "weir_certificate_not_before_timestamp_seconds",
        "weir: the listener certificate's notBefore, Unix seconds",
        certs.iter().map(|c| (labels(c), c.not_before_unix)),
    )
}

fn xdp_families(enc: &mut DescriptorEncoder, x: &super::view::XdpView) -> fmt::Result {
    let iface = || ("interface", x.interface.clone());
    let actions: std::collections::BTreeMap<&str, &str> = lb_common::Stat::ALL
        .iter()
        .map(|s| (s.name(), super::assemble::action(*s)))
        .collect();
    for (unit, f) in [
        (
            "packets",
            (|c: &super::view::PacketsBytes| c.packets) as fn(&_) -> u64,
        ),
        ("bytes", |c| c.bytes),
    ] {
        family(
            enc,
            &format!("weir_xdp_{unit}"),
            &format!(
                "weir: {unit} seen by the XDP program, by decision (weir stats' counters: deny-listed, rate-limited, SYN-cookie fallbacks by reason, …) and the action it took"
            ),
            Kind::Counter,
            x.stats.iter().map(|(d, c)| {
                let action = actions.get(d.as_str()).copied().unwrap_or("?");
                (
                    vec![
                        iface(),
                        ("decision", d.clone()),
                        ("action", action.to_string()),
                    ],
                    f(c),
                )
            }),
        )?;
    }
    let vip = |v: &super::view::VipFigures| {
        let addr: String = match v.address.parse::<std::net::IpAddr>() {
            Ok(ip) => std::net::SocketAddr::new(ip, v.port).to_string(),
            Err(_) => format!("{}:{}", v.address, v.port),
        };
        vec![iface(), ("vip", format!("{addr}/{}", v.protocol))]
    };
    family(
        enc,
        "weir_xdp_vip_packets",
        "weir: packets to each VIP service seen by XDP",
        Kind::Counter,
        x.vips.iter().map(|v| (vip(v), v.packets)),
    )?;
    family(
        enc,
        "weir_xdp_vip_bytes",
        "weir: bytes to each VIP service seen by XDP",
        Kind::Counter,
        x.vips.iter().map(|v| (vip(v), v.bytes)),
    )?;
    for c in lb_common::syn::SynCounter::ALL {
        family(
            enc,
            &format!("weir_xdp_syn_{}", c.name().trim_start_matches("syn_")),
            &format!(
                "weir: SYN defence per TCP VIP: {}",
                c.name().replace('_', " ")
            ),
            Kind::Counter,
            x.vips
                .iter()
                .filter_map(|v| Some((vip(v), *v.syn.as_ref()?.counters.get(c.name())?))),
        )?;
    }
    family(
        enc,
        "weir_xdp_syn_cookies_on",
        "weir: 1 while XDP answers the VIP's SYNs with cookies",
        Kind::Gauge,
        x.vips
            .iter()
            .filter_map(|v| Some((vip(v), u64::from(v.syn.as_ref()?.cookies)))),
    )?;
    family(
        enc,
        "weir_xdp_syn_mode",
        "weir: 1 for the VIP's SYN defence mode (off, auto, always)",
        Kind::Gauge,
        x.vips.iter().filter_map(|v| {
            let mut l = vip(v);
            l.push(("mode", v.syn.as_ref()?.mode.clone()));
            Some((l, 1))
        }),
    )?;
    for (key, name, help) in [
        (
            "syncookies_reasserted",
            "weir_xdp_syncookies_reasserted",
            "weir: times net.ipv4.tcp_syncookies or tcp_timestamps was found rewritten and set back while cookies were on",
        ),
        (
            "xdp_tx_errors",
            "weir_xdp_tx_errors",
            "weir: SYN-ACKs the driver dropped (XDP_TX errors) while cookies were on",
        ),
        (
            "xdp_reattached",
            "weir_xdp_reattached",
            "weir: times the XDP program was attached again to an interface made anew under its name",
        ),
        (
            "syn_cookie_trials",
            "weir_xdp_syn_cookie_trials",
            "weir: times SYN cookies were tried again on the interface after being switched off for dropped SYN-ACKs (a trial that drops most of a tick's SYN-ACKs switches them off again)",
        ),
    ] {
        if let Some(n) = x.host.get(key).and_then(serde_json::Value::as_u64) {
            family(enc, name, help, Kind::Counter, [(vec![iface()], n)])?;
        }
    }
    if let Some(on) = x
        .host
        .get("xdp_attached")
        .and_then(serde_json::Value::as_bool)
    {
        family(
            enc,
            "weir_xdp_attached",
            "weir: 1 while weir's XDP program is on the interface; 0 while the interface is gone (deleted, not yet made again)",
            Kind::Gauge,
            [(vec![iface()], u64::from(on))],
        )?;
        // Alongside the attachment: a daemon's note says nothing when cookies are allowed.
        let refused = x.host.get("cookies_refused").is_some_and(|v| v.is_string());
        family(
            enc,
            "weir_xdp_syn_cookies_refused",
            "weir: 1 while SYN cookies are refused on the interface (its veth peer takes no XDP_TX frames, or SYN-ACKs were being dropped: `weir stats` says why); SYNs go to the kernel",
            Kind::Gauge,
            [(vec![iface()], u64::from(refused))],
        )?;
    }
    Ok(())
}

/// The page for `view`.
pub fn render(view: &MetricsView) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ViewCollector(view.clone())));
    let mut out = String::new();
    // Writing to a String cannot fail; our label values are plain text.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}
