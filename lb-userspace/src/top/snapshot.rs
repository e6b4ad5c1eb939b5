//! What `weir top` shows, as plain data: [`Snapshot`] is built from two [`Sample`]s (rates are
//! the changes between them over the time between them) and rendered by [`super::render`].
//! Pure: no I/O, tested alone. A number the daemon does not provide is `None` and shows as
//! "n/a", never as a made-up zero.

use std::time::Instant;

use lb_common::{Stat, proto, syn::SynCounter};
use serde_json::Value;

use crate::{
    admin::{model::Status, views::ListenerList},
    xdp::Counters,
};

/// One reading of everything `weir top` shows, as the sources gave it.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    /// The interface and its XDP counters (pinned maps), or why there are none.
    pub xdp: Result<(String, Counters), String>,
    /// The admin API's answers; `Err` holds why the daemon could not be asked.
    pub status: Result<Status, String>,
    pub listeners: Option<ListenerList>,
    /// `GET /v1/target-health`.
    pub health: Option<Value>,
    /// `GET /v1/metrics` (the workers' counters, aggregated), when the daemon serves it.
    pub metrics: Option<Value>,
    /// Each worker's (index, pid, CPU time in clock ticks) from `/proc`.
    pub worker_cpu: Vec<(usize, u32, u64)>,
    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
    pub ticks_per_second: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub header: Header,
    pub xdp: XdpView,
    pub syn: Vec<SynRow>,
    pub listeners: Vec<ListenerRow>,
    /// Target response time percentiles, seconds; `None`: the daemon does not report them.
    pub latency: Option<Latency>,
    pub targets: Vec<TargetRow>,
    pub workers: Vec<WorkerRow>,
    /// Whether the L7 counters (requests, codes, target load) come from the daemon at all.
    pub l7_metrics: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Header {
    pub pid: Option<u32>,
    pub generation: Option<u64>,
    pub uptime_seconds: Option<u64>,
    /// (running, configured).
    pub workers: Option<(usize, usize)>,
    /// Seconds the rates are computed over; `None` on the first frame.
    pub interval: Option<f64>,
    /// The admin API could not be reached: why.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum XdpView {
    /// Not readable: the reason (L7 only, no pins, …).
    Absent(String),
    Attached {
        iface: String,
        /// `native`/`generic` as the daemon reports it.
        mode: Option<String>,
        total: Rate,
        /// PASS, DROP, TX.
        actions: Vec<(&'static str, Rate)>,
        /// Each drop reason seen since start, busiest first.
        drops: Vec<(&'static str, Rate)>,
    },
}

/// A counter's total and its rate per second (`None` on the first frame).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rate {
    pub total: u64,
    pub per_second: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SynRow {
    pub vip: String,
    pub mode: String,
    pub cookies_on: bool,
    pub syn: Rate,
    pub cookies_sent: Rate,
    pub acks_valid: u64,
    pub acks_invalid: u64,
    pub rate_limited: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListenerRow {
    /// `:8080 HTTP 0.0.0.0` (`listener_name`), or `all listeners`: the sum (`l7.totals`), a row of its own when
    /// there are several listeners.
    pub name: String,
    pub requests: Option<Rate>,
    /// Targets' answers by class: 2xx, 3xx, 4xx, 5xx.
    pub target_codes: [Option<u64>; 4],
    /// weir's own 4xx and 5xx answers.
    pub elb_4xx: Option<u64>,
    pub elb_5xx: Option<u64>,
    pub active_connections: Option<u64>,
}

/// Target response time percentiles (seconds) over `responses` responses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub responses: u64,
    /// Over every response since start (the first frame, or none since the previous refresh).
    pub since_start: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetRow {
    pub group: String,
    /// `address:port`.
    pub target: String,
    pub state: String,
    pub reason: Option<String>,
    pub requests: Option<Rate>,
    pub outstanding: Option<u64>,
    pub connection_errors: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    pub index: usize,
    pub pid: u32,
    /// Percent of one CPU over the interval.
    pub cpu_percent: Option<f64>,
    /// Share of the requests over the interval, percent.
    pub request_share: Option<f64>,
    /// Milliseconds since its last report, when it has stopped reporting (`weir status`'s
    /// "NOT REPORTING": hung or stopped).
    pub silent_ms: Option<u64>,
}

fn rate(now: u64, before: Option<u64>, secs: Option<f64>) -> Rate {
    Rate {
        total: now,
        per_second: match (before, secs) {
            (Some(b), Some(s)) if s > 0.0 => Some(now.saturating_sub(b) as f64 / s),
            _ => None,
        },
    }
}

/// `u64` at `path` (keys) in `v`.
fn num(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_u64()
}

impl Snapshot {
    /// The view of `now`, with rates against `before` (the previous refresh).
    pub fn new(before: Option<&Sample>, now: &Sample) -> Snapshot {
        let secs = before.map(|b| now.at.duration_since(b.at).as_secs_f64());
        let status = now.status.as_ref().ok();
        let header = Header {
            pid: status.map(|s| s.pid),
            generation: status.map(|s| s.generation),
            uptime_seconds: status.map(|s| s.uptime_seconds),
            workers: status.map(|s| (s.workers.running, s.workers.configured)),
            interval: secs,
            error: now.status.as_ref().err().cloned(),
        };
        let before_xdp = before.and_then(|b| b.xdp.as_ref().ok());
        let (xdp, syn) = xdp_view(now, before_xdp, secs);
        let metrics = now.metrics.as_ref();
        let before_metrics = before.and_then(|b| b.metrics.as_ref());
        Snapshot {
            header,
            xdp,
            syn,
            listeners: listener_rows(now.listeners.as_ref(), metrics, before_metrics, secs),
            latency: latency(metrics, before_metrics),
            targets: target_rows(now.health.as_ref(), metrics, before_metrics, secs),
            workers: worker_rows(now, before, secs),
            l7_metrics: metrics.is_some_and(|m| m["l7"].is_object()),
        }
    }
}

fn xdp_view(
    now: &Sample,
    before: Option<&(String, Counters)>,
    secs: Option<f64>,
) -> (XdpView, Vec<SynRow>) {
    let (iface, c) = match &now.xdp {
        Ok(x) => x,
        Err(why) => return (XdpView::Absent(why.clone()), Vec::new()),
    };
    let before = before.filter(|(i, _)| i == iface).map(|(_, c)| c);
    let stat = |s: Stat| rate(c.stat(s).packets, before.map(|b| b.stat(s).packets), secs);
    let sum = |f: &dyn Fn(Stat) -> bool| {
        let rates: Vec<Rate> = Stat::ALL.into_iter().filter(|s| f(*s)).map(stat).collect();
        Rate {
            total: rates.iter().map(|r| r.total).sum(),
            per_second: rates.iter().map(|r| r.per_second).sum(),
        }
    };
    let pass = sum(&|s| s.passes() && !s.transmits());
    let drop = sum(&|s| !s.passes() && !s.transmits());
    let tx = sum(&|s| s.transmits());
    let total = sum(&|_| true);
    let mut drops: Vec<(&'static str, Rate)> = Stat::ALL
        .into_iter()
        .filter(|s| !s.passes() && !s.transmits())
        .map(|s| (s.name().trim_start_matches("drop_"), stat(s)))
        .filter(|(_, r)| r.total > 0)
        .collect();
    drops.sort_by(|a, b| {
        let key = |r: &Rate| (r.per_second.unwrap_or(0.0), r.total);
        key(&b.1)
            .partial_cmp(&key(&a.1))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mode = now.status.as_ref().ok().and_then(|s| {
        s.xdp
            .iter()
            .find(|x| &x.iface == iface)
            .map(|x| x.mode.clone())
    });
    let syn = c
        .vips
        .iter()
        .filter(|v| v.protocol == proto::TCP)
        .filter_map(|v| {
            let s = c.syn.iter().find(|s| s.id == v.id)?;
            let was = before.and_then(|b| b.syn.iter().find(|p| p.id == v.id));
            let r = |k: SynCounter| rate(s.get(k), was.map(|p| p.get(k)), secs);
            Some(SynRow {
                vip: std::net::SocketAddr::new(v.address, v.port).to_string(),
                mode: s.mode.name().to_string(),
                cookies_on: s.cookies,
                syn: r(SynCounter::SynSeen),
                cookies_sent: r(SynCounter::CookieSent),
                acks_valid: s.get(SynCounter::CookieAckValid),
                acks_invalid: s.get(SynCounter::CookieAckInvalid),
                rate_limited: s.get(SynCounter::RateLimited),
            })
        })
        .collect();
    (
        XdpView::Attached {
            iface: iface.clone(),
            mode,
            total,
            actions: vec![("PASS", pass), ("DROP", drop), ("TX", tx)],
            drops,
        },
        syn,
    )
}

/// The request counters of one scope (a listener) from its `counters` and `gauges` maps.
fn listener_row(
    name: String,
    now: &Value,
    before: Option<&Value>,
    secs: Option<f64>,
) -> ListenerRow {
    let c = |v: &Value, k: &str| num(v, &["counters", k]);
    let requests =
        c(now, "RequestCount").map(|n| rate(n, before.and_then(|b| c(b, "RequestCount")), secs));
    ListenerRow {
        name,
        requests,
        target_codes: ["2XX", "3XX", "4XX", "5XX"]
            .map(|k| c(now, &format!("HTTPCode_Target_{k}_Count"))),
        elb_4xx: c(now, "HTTPCode_ELB_4XX_Count"),
        elb_5xx: c(now, "HTTPCode_ELB_5XX_Count"),
        active_connections: num(now, &["gauges", "ActiveConnectionCount"]),
    }
}

/// The array at `l7.KEY` of a `/v1/metrics` view.
fn l7_list<'a>(m: Option<&'a Value>, key: &str) -> Option<&'a Vec<Value>> {
    m?.get("l7")?.get(key)?.as_array()
}

fn listener_rows(
    listeners: Option<&ListenerList>,
    metrics: Option<&Value>,
    before: Option<&Value>,
    secs: Option<f64>,
) -> Vec<ListenerRow> {
    if let Some(figures) = l7_list(metrics, "listeners") {
        let mut rows: Vec<ListenerRow> = figures
            .iter()
            .map(|l| {
                let key = l["listener"].as_str().unwrap_or("?");
                let b = l7_list(before, "listeners")
                    .and_then(|ls| ls.iter().find(|x| x["listener"].as_str() == Some(key)));
                let name = listener_name(key, l["protocol"].as_str().unwrap_or("?"));
                listener_row(name, l, b, secs)
            })
            .collect();
        // The sum over listeners (`l7.totals`): a single listener's figures are the sum, so it
        // fills what the listener's own series lack; several get a row of their own.
        let totals = |m: Option<&Value>| -> Option<Value> {
            let t = m?.get("l7")?.get("totals")?;
            Some(serde_json::json!({"counters": t, "gauges": t}))
        };
        if let Some(t) = totals(metrics) {
            let b = totals(before);
            let sum = listener_row("all listeners".into(), &t, b.as_ref(), secs);
            match rows.as_mut_slice() {
                [one] => {
                    one.requests = one.requests.or(sum.requests);
                    for (mine, all) in one.target_codes.iter_mut().zip(sum.target_codes) {
                        *mine = mine.or(all);
                    }
                    one.elb_4xx = one.elb_4xx.or(sum.elb_4xx);
                    one.elb_5xx = one.elb_5xx.or(sum.elb_5xx);
                    one.active_connections = one.active_connections.or(sum.active_connections);
                }
                _ => rows.push(sum),
            }
        }
        return rows;
    }
    // No L7 figures from the daemon: the listeners, their numbers n/a.
    listeners
        .map(|l| l.listeners.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|l| {
            let addr = match l.address.parse::<std::net::IpAddr>() {
                Ok(ip) => std::net::SocketAddr::new(ip, l.port).to_string(),
                Err(_) => format!("{}:{}", l.address, l.port),
            };
            listener_row(listener_name(&addr, &l.protocol), &Value::Null, None, secs)
        })
        .collect()
}

/// A listener as `weir top` names it: its port first and whole, then its protocol and
/// address (`:19411 HTTPS 127.0.0.1`), so listeners on one address that a narrow column cuts
/// are still told apart; `address:port` as it came when it has no port.
fn listener_name(addr_port: &str, protocol: &str) -> String {
    match addr_port.rsplit_once(':') {
        Some((addr, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            let addr = addr.trim_start_matches('[').trim_end_matches(']');
            format!(":{port} {protocol} {addr}")
        }
        _ => format!("{protocol} {addr_port}"),
    }
}

/// One cumulative histogram (`le_seconds`, `counts`, `count`) of a group.
#[derive(Debug, Clone, PartialEq)]
struct Histogram {
    le: Vec<f64>,
    counts: Vec<u64>,
    count: u64,
}

/// Every group's `target_response_time`, summed (the workers use the same bounds for all).
fn response_time(m: Option<&Value>) -> Option<Histogram> {
    let mut sum: Option<Histogram> = None;
    for g in l7_list(m, "target_groups")? {
        let h = &g["target_response_time"];
        let (Some(le), Some(counts), Some(count)) = (
            h["le_seconds"].as_array(),
            h["counts"].as_array(),
            h["count"].as_u64(),
        ) else {
            continue;
        };
        let le: Vec<f64> = le.iter().filter_map(Value::as_f64).collect();
        let counts: Vec<u64> = counts.iter().filter_map(Value::as_u64).collect();
        if le.len() != counts.len() {
            continue;
        }
        match &mut sum {
            None => sum = Some(Histogram { le, counts, count }),
            Some(s) if s.le == le => {
                s.counts.iter_mut().zip(&counts).for_each(|(a, b)| *a += b);
                s.count += count;
            }
            Some(_) => {}
        }
    }
    sum
}

/// The `q` quantile of a cumulative histogram, interpolated linearly inside its bucket (as
/// Prometheus's `histogram_quantile`); above the last bound: the last bound.
fn quantile(h: &Histogram, q: f64) -> Option<f64> {
    if h.count == 0 {
        return None;
    }
    let rank = q * h.count as f64;
    let mut lower = (0.0, 0u64);
    for (&le, &c) in h.le.iter().zip(&h.counts) {
        if c as f64 >= rank {
            let in_bucket = (c - lower.1) as f64;
            let frac = if in_bucket > 0.0 {
                (rank - lower.1 as f64) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * frac.clamp(0.0, 1.0));
        }
        lower = (le, c);
    }
    h.le.last().copied()
}

/// Percentiles of the responses since the previous refresh, or since start on the first frame
/// (or when none came in between: then the ones since start, marked so).
fn latency(now: Option<&Value>, before: Option<&Value>) -> Option<Latency> {
    let n = response_time(now)?;
    let recent = response_time(before)
        .filter(|b| b.le == n.le && b.count < n.count)
        .map(|b| Histogram {
            le: n.le.clone(),
            counts: n
                .counts
                .iter()
                .zip(&b.counts)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            count: n.count - b.count,
        });
    let (h, since_start) = match recent {
        Some(r) => (r, false),
        None => (n, true),
    };
    Some(Latency {
        p50: quantile(&h, 0.50)?,
        p90: quantile(&h, 0.90)?,
        p99: quantile(&h, 0.99)?,
        responses: h.count,
        since_start,
    })
}

/// A target as the workers name it: `address:port`, IPv6 in brackets.
fn target_addr(id: &str, port: u64) -> String {
    match (id.parse::<std::net::IpAddr>(), u16::try_from(port)) {
        (Ok(ip), Ok(p)) => std::net::SocketAddr::new(ip, p).to_string(),
        _ => format!("{id}:{port}"),
    }
}

fn target_rows(
    health: Option<&Value>,
    metrics: Option<&Value>,
    before: Option<&Value>,
    secs: Option<f64>,
) -> Vec<TargetRow> {
    let figures = |m: Option<&Value>, group: &str, target: &str| -> Option<Value> {
        l7_list(m, "target_groups")?
            .iter()
            .find(|g| g["target_group"].as_str() == Some(group))?["targets"]
            .as_array()?
            .iter()
            .find(|t| t["target"].as_str() == Some(target))
            .cloned()
    };
    let row = |group: &str, target: String, state: String, reason: Option<String>| {
        let m = figures(metrics, group, &target);
        let b = figures(before, group, &target);
        let c = |v: &Value, k: &str| num(v, &["counters", k]);
        TargetRow {
            group: group.to_string(),
            state,
            reason,
            requests: m.as_ref().and_then(|m| {
                let n = c(m, "RequestCountPerTarget")?;
                let was = b.as_ref().and_then(|b| c(b, "RequestCountPerTarget"));
                Some(rate(n, was, secs))
            }),
            outstanding: m
                .as_ref()
                .and_then(|m| num(m, &["gauges", "outstanding_requests"])),
            connection_errors: m.as_ref().and_then(|m| c(m, "TargetConnectionErrorCount")),
            target,
        }
    };
    let mut rows = Vec::new();
    if let Some(groups) = health.and_then(|h| h["target_groups"].as_array()) {
        for g in groups {
            let group = g["name"].as_str().unwrap_or("?");
            for t in g["targets"].as_array().into_iter().flatten() {
                let target = target_addr(
                    t["id"].as_str().unwrap_or("?"),
                    t["port"].as_u64().unwrap_or(0),
                );
                let state = t["state"].as_str().unwrap_or("?").to_string();
                rows.push(row(
                    group,
                    target,
                    state,
                    t["reason"].as_str().map(str::to_string),
                ));
            }
        }
        return rows;
    }
    // No health view: the targets the metrics know.
    for g in l7_list(metrics, "target_groups").into_iter().flatten() {
        let group = g["target_group"].as_str().unwrap_or("?");
        for t in g["targets"].as_array().into_iter().flatten() {
            let state = t["state"].as_str().unwrap_or("n/a").to_string();
            let target = t["target"].as_str().unwrap_or("?").to_string();
            rows.push(row(group, target, state, None));
        }
    }
    rows
}

fn worker_rows(now: &Sample, before: Option<&Sample>, secs: Option<f64>) -> Vec<WorkerRow> {
    let worker_requests = |m: Option<&Value>, index: usize| -> Option<u64> {
        l7_list(m, "workers")?
            .iter()
            .find(|w| w["worker"].as_u64() == Some(index as u64))
            .and_then(|w| num(w, &["counters", "RequestCount"]))
    };
    let now_m = now.metrics.as_ref();
    let before_m = before.and_then(|b| b.metrics.as_ref());
    let deltas: Vec<Option<u64>> = now
        .worker_cpu
        .iter()
        .map(|(i, _, _)| {
            Some(worker_requests(now_m, *i)?.saturating_sub(worker_requests(before_m, *i)?))
        })
        .collect();
    let all: Option<u64> = deltas.iter().copied().sum();
    let silent_ms = |index: usize, pid: u32| {
        let status = now.status.as_ref().ok()?;
        let p = status
            .workers
            .processes
            .iter()
            .find(|p| p.index == index && p.pid == pid)?;
        p.silent().then_some(p.report_age_ms).flatten()
    };
    now.worker_cpu
        .iter()
        .zip(deltas)
        .map(|(&(index, pid, ticks), d)| {
            let was = before.and_then(|b| {
                b.worker_cpu
                    .iter()
                    .find(|(i, p, _)| *i == index && *p == pid)
                    .map(|w| w.2)
            });
            let cpu_percent = match (was, secs) {
                (Some(w), Some(s)) if s > 0.0 && now.ticks_per_second > 0 => {
                    Some(ticks.saturating_sub(w) as f64 / now.ticks_per_second as f64 / s * 100.0)
                }
                _ => None,
            };
            WorkerRow {
                index,
                pid,
                cpu_percent,
                request_share: match (d, all) {
                    (Some(d), Some(a)) if a > 0 => Some(d as f64 * 100.0 / a as f64),
                    _ => None,
                },
                silent_ms: silent_ms(index, pid),
            }
        })
        .collect()
}
