//! Builds the [`MetricsView`] from what the control plane has: the workers' sums
//! ([`super::store`]), the health checker's view, the listeners, the XDP counters. Pure.

use std::collections::BTreeMap;

use lb_common::{Stat, proto, syn::SynCounter};

use super::{
    series::{ELB_CODE, Key, RT_BUCKET, RT_COUNT, RT_SUM_US},
    store::{Store, WorkerFigures, sum},
    view::{
        CertificateFigures, DiscoveryFigures, GroupFigures, Histogram, L7View, ListenerFigures,
        MetricsView, PacketsBytes, SynFigures, TargetFigures, VipFigures, WorkerView, XdpView,
    },
};
use crate::{health::table::HealthSnapshot, xdp::Counters};

/// The L7 side's inputs.
pub struct L7Input<'a> {
    pub store: &'a Store,
    pub health: HealthSnapshot,
    pub listeners: &'a [lb_l7::config::Listener],
    /// The certificates the generation in force serves.
    pub certificates: &'a [crate::certificates::ServedCertificate],
}

/// The XDP side's inputs: as `weir stats` reads them.
pub struct XdpInput<'a> {
    pub iface: &'a str,
    pub counters: &'a Counters,
    pub host: serde_json::Value,
}

/// A listener's counters and gauges (`series::Figures::from_snapshot`'s per-listener names).
pub const LISTENER_COUNTERS: [&str; 4] = [
    "NewConnectionCount",
    "RejectedConnectionCount",
    "RequestCount",
    "ProcessedBytes",
];
pub const LISTENER_GAUGES: [&str; 1] = ["ActiveConnectionCount"];

pub fn view(
    generation: u64,
    time_unix_ms: u64,
    l7: Option<L7Input<'_>>,
    xdp: Option<XdpInput<'_>>,
) -> MetricsView {
    MetricsView {
        version: super::view::VERSION,
        time_unix_ms,
        generation,
        l7: l7.map(l7_view),
        xdp: xdp.map(xdp_view),
        discovery: Vec::new(),
    }
}

/// DNS discovery's records as figures.
pub fn discovery(records: &[crate::discovery::view::GroupDiscovery]) -> Vec<DiscoveryFigures> {
    records
        .iter()
        .map(|r| DiscoveryFigures {
            target_group: r.target_group.clone(),
            targets: r.targets.len() as u64,
            consecutive_failures: r.consecutive_failures.into(),
            resolutions: [
                ("answer", r.resolutions.answer),
                ("empty", r.resolutions.empty),
                ("failed", r.resolutions.failed),
            ]
            .into_iter()
            .map(|(k, n)| (k.to_string(), n))
            .collect(),
            skipped_addresses: r.skipped_addresses,
        })
        .collect()
}

fn plain(m: &BTreeMap<Key, u64>) -> BTreeMap<String, u64> {
    m.iter()
        .filter(|(k, _)| {
            k.group.is_empty() && k.target.is_empty() && k.code.is_none() && k.listener.is_none()
        })
        .map(|(k, v)| (k.name.clone(), *v))
        .collect()
}

/// `HTTPCode_ELB_4XX_Count` etc. from the per-code series.
fn elb_classes(codes: &BTreeMap<String, u64>, totals: &mut BTreeMap<String, u64>) {
    for class in 1..=5u16 {
        let n: u64 = codes
            .iter()
            .filter(|(c, _)| c.parse::<u16>().is_ok_and(|c| c / 100 == class))
            .map(|(_, n)| n)
            .sum();
        totals.insert(format!("HTTPCode_ELB_{class}XX_Count"), n);
    }
    for code in [500u16, 502, 503, 504] {
        totals.insert(
            format!("HTTPCode_ELB_{code}_Count"),
            codes.get(&code.to_string()).copied().unwrap_or(0),
        );
    }
}

fn certificate(c: &crate::certificates::ServedCertificate) -> CertificateFigures {
    CertificateFigures {
        listener: c.listener.clone(),
        file: c.file.clone(),
        subject: c.info.subject.clone(),
        not_before_unix: c.info.not_before,
        not_after_unix: c.info.not_after,
    }
}

fn l7_view(input: L7Input<'_>) -> L7View {
    let workers: Vec<WorkerFigures> = input.store.workers();
    let counters = sum(workers.iter().map(|w| &w.counters));
    let gauges = sum(workers.iter().map(|w| &w.gauges));
    let elb_status_codes: BTreeMap<String, u64> = counters
        .iter()
        .filter(|(k, _)| k.name == ELB_CODE && k.group.is_empty())
        .filter_map(|(k, v)| Some((k.code?.to_string(), *v)))
        .collect();
    let mut totals = plain(&counters);
    totals.extend(plain(&gauges));
    elb_classes(&elb_status_codes, &mut totals);
    let staleness_ms = workers
        .iter()
        .filter(|w| w.live)
        .filter_map(|w| w.report_age_ms)
        .max()
        .unwrap_or(0);
    let listeners = input
        .listeners
        .iter()
        .map(|l| {
            let of = |m: &BTreeMap<Key, u64>| {
                m.iter()
                    .filter(|(k, _)| k.listener == Some(l.port))
                    .map(|(k, v)| (k.name.clone(), *v))
                    .collect()
            };
            // Every configured listener has its series from the start, 0 until a worker counts
            // (a worker claims a listener's counters at its first connection, and a restarted
            // one reports no gauge before then): a series that is missing breaks `absent()`
            // and `rate()`. The counters never go back: the store keeps a dead process's.
            let mut counters: BTreeMap<String, u64> = of(&counters);
            for name in LISTENER_COUNTERS {
                counters.entry(name.to_string()).or_insert(0);
            }
            let mut gauges: BTreeMap<String, u64> = of(&gauges);
            for name in LISTENER_GAUGES {
                gauges.entry(name.to_string()).or_insert(0);
            }
            ListenerFigures {
                listener: l.socket_addr().to_string(),
                port: l.port,
                protocol: l.protocol.scheme().to_ascii_uppercase(),
                counters,
                gauges,
            }
        })
        .collect();
    let target_groups = groups(&input.health, &counters, &gauges);
    let workers = workers
        .into_iter()
        .map(|w| WorkerView {
            worker: w.worker,
            pid: w.pid,
            live: w.live,
            restarts: w.restarts,
            watchdog_kills: w.watchdog_kills,
            report_age_ms: w.report_age_ms,
            counters: {
                let mut c = plain(&w.counters);
                let codes: BTreeMap<String, u64> = w
                    .counters
                    .iter()
                    .filter(|(k, _)| k.name == ELB_CODE && k.group.is_empty())
                    .filter_map(|(k, v)| Some((k.code?.to_string(), *v)))
                    .collect();
                elb_classes(&codes, &mut c);
                c
            },
            gauges: plain(&w.gauges),
        })
        .collect();
    L7View {
        staleness_ms,
        totals,
        elb_status_codes,
        listeners,
        target_groups,
        workers,
        certificates: input.certificates.iter().map(certificate).collect(),
    }
}

/// Groups as the health checker knows them, with every target the workers count; a group or
/// target only the workers know (a reload's, before the checker has it) is listed too.
fn groups(
    health: &HealthSnapshot,
    counters: &BTreeMap<Key, u64>,
    gauges: &BTreeMap<Key, u64>,
) -> Vec<GroupFigures> {
    let mut names: Vec<String> = health
        .target_groups
        .iter()
        .map(|g| g.name.clone())
        .collect();
    for k in counters.keys().chain(gauges.keys()) {
        if !k.group.is_empty() && !names.contains(&k.group) {
            names.push(k.group.clone());
        }
    }
    names
        .into_iter()
        .map(|name| {
            let h = health.target_groups.iter().find(|g| g.name == name);
            let mut targets: Vec<TargetFigures> = h
                .map(|h| {
                    h.targets
                        .iter()
                        .map(|t| TargetFigures {
                            target: target_addr(&t.id, t.port),
                            availability_zone: t.availability_zone.clone(),
                            state: Some(t.state.clone()),
                            counters: BTreeMap::new(),
                            gauges: BTreeMap::new(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut fill = |m: &BTreeMap<Key, u64>, gauge: bool| {
                for (k, v) in m
                    .iter()
                    .filter(|(k, _)| k.group == name && !k.target.is_empty())
                {
                    let t = match targets.iter_mut().position(|t| t.target == k.target) {
                        Some(i) => &mut targets[i],
                        None => {
                            targets.push(TargetFigures {
                                target: k.target.clone(),
                                availability_zone: None,
                                state: None,
                                counters: BTreeMap::new(),
                                gauges: BTreeMap::new(),
                            });
                            targets.last_mut().expect("pushed")
                        }
                    };
                    let into = if gauge {
                        &mut t.gauges
                    } else {
                        &mut t.counters
                    };
                    into.insert(k.name.clone(), *v);
                }
            };
            fill(counters, false);
            fill(gauges, true);
            let mut totals = BTreeMap::new();
            for t in &targets {
                for (k, v) in &t.counters {
                    *totals.entry(k.clone()).or_default() += v;
                }
            }
            GroupFigures {
                target_group: name.clone(),
                health_checked: h.is_some_and(|h| h.health_checked),
                fail_open: h.is_some_and(|h| h.fail_open),
                healthy_host_count: h.map_or(0, |h| h.healthy_host_count as u64),
                unhealthy_host_count: h.map_or(0, |h| h.unhealthy_host_count as u64),
                zones: h.map(|h| h.zones.clone()).unwrap_or_default(),
                totals,
                target_response_time: histogram(&name, counters),
                targets,
            }
        })
        .collect()
}

/// `address:port` as the workers name a target (IPv6 in brackets).
fn target_addr(id: &str, port: u16) -> String {
    match id.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{id}:{port}"),
    }
}

fn histogram(group: &str, counters: &BTreeMap<Key, u64>) -> Option<Histogram> {
    let of = |name: &'static str| {
        counters
            .iter()
            .filter(move |(k, _)| k.name == name && k.group == group && k.target.is_empty())
    };
    let count = of(RT_COUNT).map(|(_, v)| *v).next()?;
    let bounds = lb_l7::metrics::RESPONSE_TIME_BOUNDS_US;
    let mut counts = vec![0u64; bounds.len()];
    for (k, v) in of(RT_BUCKET) {
        if let Some(c) = k.code.and_then(|i| counts.get_mut(i as usize)) {
            *c = *v;
        }
    }
    // Cumulative.
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    Some(Histogram {
        le_seconds: bounds.iter().map(|us| *us as f64 / 1e6).collect(),
        counts,
        sum_seconds: of(RT_SUM_US).map(|(_, v)| *v).next().unwrap_or(0) as f64 / 1e6,
        count,
    })
}

fn pb(c: lb_common::Counter) -> PacketsBytes {
    PacketsBytes {
        packets: c.packets,
        bytes: c.bytes,
    }
}

/// The XDP action a decision takes.
pub fn action(s: Stat) -> &'static str {
    if s.transmits() {
        "tx"
    } else if s.passes() {
        "pass"
    } else {
        "drop"
    }
}

fn xdp_view(input: XdpInput<'_>) -> XdpView {
    let c = input.counters;
    let mut actions: BTreeMap<String, PacketsBytes> = ["pass", "drop", "tx"]
        .iter()
        .map(|a| (a.to_string(), PacketsBytes::default()))
        .collect();
    let mut stats = BTreeMap::new();
    for s in Stat::ALL {
        let v = pb(c.stat(s));
        stats.insert(s.name().to_string(), v);
        let a = actions.entry(action(s).into()).or_default();
        a.packets += v.packets;
        a.bytes += v.bytes;
    }
    let vips = c
        .vips
        .iter()
        .map(|v| VipFigures {
            id: v.id,
            address: v.address.to_string(),
            port: v.port,
            protocol: match v.protocol {
                proto::TCP => "tcp",
                proto::UDP => "udp",
                _ => "?",
            }
            .into(),
            packets: v.counter.packets,
            bytes: v.counter.bytes,
            syn: c.syn.iter().find(|s| s.id == v.id).map(|s| SynFigures {
                mode: s.mode.name().into(),
                cookies: s.cookies,
                counters: SynCounter::ALL
                    .iter()
                    .map(|k| (k.name().to_string(), s.get(*k)))
                    .collect(),
            }),
        })
        .collect();
    XdpView {
        interface: input.iface.to_string(),
        actions,
        stats,
        vips,
        host: input.host,
    }
}
