//! `weir top`'s model and drawing, without a daemon: samples made by hand, frames drawn on
//! ratatui's `TestBackend` and read back.

use std::time::{Duration, Instant};

use lb_common::{Counter, Stat, proto, syn::SynMode};
use ratatui::{Terminal, backend::TestBackend};
use serde_json::json;

use super::{
    render::{self, View},
    snapshot::{Sample, Snapshot, XdpView},
};
use crate::{
    admin::{
        model::{Status, WorkerProcess, Workers, XdpInterface},
        views::ListenerList,
    },
    xdp::{Counters, VipCounter, syn::VipSyn},
};

fn counters(pass_vip: u64, denied: u64, cookies: u64, syn_seen: u64, cookies_on: bool) -> Counters {
    let mut stats = vec![Counter::default(); Stat::COUNT as usize];
    stats[Stat::PassVip as usize].packets = pass_vip;
    stats[Stat::DropDenied as usize].packets = denied;
    stats[Stat::TxSynCookie as usize].packets = cookies;
    Counters {
        stats,
        vips: vec![VipCounter {
            id: 0,
            address: "10.88.0.1".parse().unwrap(),
            port: 8080,
            protocol: proto::TCP,
            counter: Counter::default(),
        }],
        syn: vec![VipSyn {
            id: 0,
            mode: SynMode::Auto,
            cookies: cookies_on,
            counts: [syn_seen, cookies, 7, 2, 0, 0, 0, 0],
        }],
    }
}

fn status() -> Status {
    Status {
        pid: 4242,
        generation: 3,
        last_reload_refused: None,
        config: "/etc/weir/weir.toml".into(),
        uptime_seconds: 302,
        workers: Workers {
            configured: 2,
            running: 2,
            not_reporting: 0,
            processes: vec![
                WorkerProcess {
                    index: 0,
                    pid: 5000,
                    report_age_ms: Some(100),
                },
                WorkerProcess {
                    index: 1,
                    pid: 5001,
                    report_age_ms: Some(100),
                },
            ],
        },
        xdp: vec![XdpInterface {
            iface: "veth0".into(),
            mode: "native".into(),
            attached: true,
            syn_cookies_refused: None,
        }],
        admin_socket: "/run/weir/veth0.sock".into(),
        health_file: None,
    }
}

fn listeners() -> ListenerList {
    serde_json::from_value(json!({"listeners": [{"address": "0.0.0.0", "port": 8080,
        "protocol": "HTTP", "alpn_policy": "None", "certificates": [],
        "default_action": {"type": "fixed-response", "status_code": 200, "content_type": null, "message_body": ""}, "rule_count": 0}]}))
    .unwrap()
}

fn health(second: &str) -> serde_json::Value {
    json!({"target_groups": [{"name": "web", "HealthyHostCount": 1, "UnHealthyHostCount": 1,
        "targets": [
            {"id": "10.89.0.11", "port": 8000, "state": "healthy", "reason": null},
            {"id": "10.89.0.12", "port": 8000, "state": second,
             "reason": if second == "unhealthy" { json!("Target.FailedHealthChecks") } else { json!(null) }}]}]})
}

/// A `/v1/metrics` view (the documented shape, `metrics::view`) after `requests` requests,
/// `w0` of them by worker 0; response times: half ≤ 1 ms, the rest ≤ 5 ms.
fn metrics(requests: u64, w0: u64) -> serde_json::Value {
    json!({"version": 1, "time_unix_ms": 1, "generation": 3, "xdp": null, "l7": {
        "staleness_ms": 100, "totals": {"RequestCount": requests}, "elb_status_codes": {},
        "listeners": [{"listener": "0.0.0.0:8080", "port": 8080, "protocol": "HTTP",
            "counters": {"RequestCount": requests, "HTTPCode_Target_2XX_Count": requests - 3,
                "HTTPCode_Target_5XX_Count": 1, "HTTPCode_ELB_4XX_Count": 0,
                "HTTPCode_ELB_5XX_Count": 2},
            "gauges": {"ActiveConnectionCount": 4}}],
        "target_groups": [{"target_group": "web", "health_checked": true, "fail_open": false,
            "HealthyHostCount": 1, "UnHealthyHostCount": 1, "zones": {}, "totals": {},
            "target_response_time": {"le_seconds": [0.001, 0.005, 0.01],
                "counts": [requests / 2, requests, requests], "sum_seconds": 0.1, "count": requests},
            "targets": [{"target": "10.89.0.11:8000", "availability_zone": null, "state": "healthy",
                "counters": {"RequestCountPerTarget": requests, "TargetConnectionErrorCount": 0},
                "gauges": {"outstanding_requests": 1}}]}],
        "workers": [
            {"worker": 0, "pid": 5000, "live": true, "restarts": 0, "report_age_ms": 100,
             "counters": {"RequestCount": w0}, "gauges": {}},
            {"worker": 1, "pid": 5001, "live": true, "restarts": 0, "report_age_ms": 100,
             "counters": {"RequestCount": requests - w0}, "gauges": {}}]}})
}

fn sample(at: Instant, n: u64, cookies_on: bool, with_metrics: bool) -> Sample {
    Sample {
        at,
        xdp: Ok((
            "veth0".into(),
            counters(n * 10, n, n * 5, n * 6, cookies_on),
        )),
        status: Ok(status()),
        listeners: Some(listeners()),
        health: Some(health(if cookies_on { "unhealthy" } else { "healthy" })),
        metrics: with_metrics.then(|| metrics(n, n / 4)),
        worker_cpu: vec![(0, 5000, n), (1, 5001, n / 2)],
        ticks_per_second: 100,
    }
}

fn pair(with_metrics: bool) -> Snapshot {
    let t0 = Instant::now();
    let a = sample(t0, 100, false, with_metrics);
    let b = sample(t0 + Duration::from_secs(2), 300, true, with_metrics);
    Snapshot::new(Some(&a), &b)
}

fn draw(s: &Snapshot, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| f.render_widget(View(s), f.area())).unwrap();
    render::buffer_text(t.backend().buffer())
}

#[test]
fn rates_are_changes_over_the_time_between_samples() {
    let s = pair(true);
    let XdpView::Attached {
        total,
        actions,
        drops,
        mode,
        ..
    } = &s.xdp
    else {
        panic!("{:?}", s.xdp)
    };
    assert_eq!(mode.as_deref(), Some("native"));
    // 200 × (10 pass + 1 denied + 5 tx) packets over 2 s.
    assert_eq!(total.per_second, Some(1600.0));
    assert_eq!(actions[0], ("PASS", actions[0].1));
    assert_eq!(actions[0].1.per_second, Some(1000.0));
    assert_eq!(actions[1].1.per_second, Some(100.0));
    assert_eq!(actions[2].1.per_second, Some(500.0));
    assert_eq!(drops[0].0, "denied");
    assert_eq!(drops[0].1.total, 300);
    let syn = &s.syn[0];
    assert!(syn.cookies_on);
    assert_eq!(syn.syn.per_second, Some(600.0));
    assert_eq!(syn.cookies_sent.per_second, Some(500.0));
    let l = &s.listeners[0];
    assert_eq!(l.requests.unwrap().total, 300);
    assert_eq!(l.requests.unwrap().per_second, Some(100.0));
    assert_eq!(l.target_codes, [Some(297), None, None, Some(1)]);
    // 200 responses in between: 100 ≤ 1 ms, 100 in (1, 5] ms.
    let l = s.latency.unwrap();
    assert_eq!((l.responses, l.since_start), (200, false));
    assert!((l.p50 - 0.001).abs() < 1e-9, "{l:?}");
    assert!((l.p90 - 0.0042).abs() < 1e-9, "{l:?}");
    assert!((l.p99 - 0.00492).abs() < 1e-9, "{l:?}");
    assert_eq!(s.targets[0].requests.unwrap().per_second, Some(100.0));
    assert_eq!(s.targets[1].state, "unhealthy");
    assert_eq!(s.targets[1].requests, None);
    // Worker 0: 200 ticks in 2 s at 100/s = 100 %; requests 75 − 25 of 200.
    assert_eq!(s.workers[0].cpu_percent, Some(100.0));
    assert_eq!(s.workers[0].request_share, Some(25.0));
    assert_eq!(s.workers[1].cpu_percent, Some(50.0));
}

#[test]
fn the_first_frame_has_totals_and_no_rates() {
    let s = Snapshot::new(None, &sample(Instant::now(), 100, false, true));
    let t = render::text(&s);
    assert!(t.contains("rates: next refresh"), "{t}");
    assert!(
        t.contains("XDP veth0 native  n/a   PASS n/a   DROP n/a"),
        "{t}"
    );
    assert!(
        t.contains(&row(":8080 HTTP 0.0.0.0", "n/a", "100", "4")),
        "{t}"
    );
    assert!(
        t.contains("CODES (all listeners)  T2XX 97  T3XX n/a  T4XX n/a  T5XX 1"),
        "{t}"
    );
}

/// A listener row as `render` draws it: name, REQ/s, REQUESTS, CONNS.
fn row(name: &str, rate: &str, total: &str, conns: &str) -> String {
    format!("{name:<57} {rate:>6} {total:>8} {conns:>5}")
}

#[test]
fn a_frame_shows_every_section_in_80_by_24() {
    let t = draw(&pair(true), 80, 24);
    let listener = row(":8080 HTTP 0.0.0.0", "100", "300", "4");
    for want in [
        "weir top  pid 4242  gen 3  up 5m02s  workers 2/2",
        "rates over 2.0s",
        "XDP veth0 native  1600 pkt/s   PASS 1000/s   DROP 100/s   TX 500/s",
        "drops: denied 100/s (300)",
        "10.88.0.1:8080         auto   ON",
        listener.as_str(),
        "CODES (all listeners)  T2XX 297",
        "RESPONSE TIME p50 1.0 ms  p90 4.2 ms  p99 4.9 ms  (200 responses)",
        "web 10.89.0.11:8000",
        "web 10.89.0.12:8000          unhealthy FailedHealthCh…",
        "#0 5000: cpu 100% req 25%",
        "#1 5001: cpu 50% req 75%",
    ] {
        assert!(t.contains(want), "{want:?} missing in\n{t}");
    }
    assert!(t.lines().all(|l| l.chars().count() <= 80));
}

/// A worker whose reports stopped (`weir status`'s NOT REPORTING) shows as silent, with how
/// long, instead of its CPU and request share; the one of the same index but another pid (the
/// status is older than the /proc reading) does not.
#[test]
fn a_worker_that_stopped_reporting_shows_as_silent() {
    let t0 = Instant::now();
    let a = sample(t0, 100, false, true);
    let mut b = sample(t0 + Duration::from_secs(2), 300, true, true);
    if let Ok(st) = &mut b.status {
        st.workers.processes[1].report_age_ms = Some(7_400);
        st.workers.not_reporting = 1;
    }
    let t = render::text(&Snapshot::new(Some(&a), &b));
    assert!(t.contains("#1 5001: SILENT 7s"), "{t}");
    assert!(t.contains("#0 5000: cpu 100% req 25%"), "{t}");
    if let Ok(st) = &mut b.status {
        st.workers.processes[1].pid = 6000;
    }
    let t = render::text(&Snapshot::new(Some(&a), &b));
    assert!(!t.contains("SILENT"), "{t}");
}

#[test]
fn without_the_metrics_endpoint_l7_numbers_are_na() {
    let s = pair(false);
    assert!(!s.l7_metrics);
    let t = render::text(&s);
    assert!(
        t.contains(&row(":8080 HTTP 0.0.0.0", "n/a", "n/a", "n/a")),
        "{t}"
    );
    assert!(t.contains("RESPONSE TIME n/a"), "{t}");
    assert!(t.contains("cpu 100% req n/a"), "{t}");
    // The XDP side still counts.
    assert!(t.contains("PASS 1000/s"), "{t}");
}

#[test]
fn once_text_is_plain_and_80_wide() {
    let t = render::text(&pair(true));
    assert!(!t.contains('\x1b'), "escape codes in {t:?}");
    assert!(t.lines().all(|l| l.chars().count() <= 80), "{t}");
    assert!(t.ends_with('\n'));
}

#[test]
fn small_screens_cut_lists_with_a_count_then_the_bottom() {
    let mut s = pair(true);
    let t0 = s.targets[0].clone();
    for i in 0..20 {
        let mut t = t0.clone();
        t.target = format!("10.89.1.{i}:8000");
        s.targets.push(t);
    }
    let full = render::text(&s);
    assert!(full.lines().count() > 24);
    let t = draw(&s, 80, 24);
    assert!(t.contains("… 1"), "{t}");
    assert!(t.contains("more"), "{t}");
    // The workers' line still shows below the cut list.
    assert!(t.contains("#1 5001"), "{t}");
    assert_eq!(t.lines().count(), 24);
    // Tiny and narrow: no panic, the header first.
    for (w, h) in [(40, 10), (20, 3), (1, 1), (80, 0), (0, 5)] {
        let t = draw(&s, w, h);
        if w >= 8 && h >= 1 {
            assert!(t.starts_with("weir top"), "{w}x{h}: {t}");
        }
    }
}

#[test]
fn a_single_listener_takes_what_its_own_series_lack_from_the_totals() {
    let t0 = Instant::now();
    let strip = |mut s: Sample, second: bool| {
        let m = s.metrics.as_mut().unwrap();
        m["l7"]["totals"] = json!({"RequestCount": m["l7"]["totals"]["RequestCount"],
            "HTTPCode_Target_2XX_Count": 42, "ActiveConnectionCount": 3});
        m["l7"]["listeners"][0]["counters"] = json!({});
        m["l7"]["listeners"][0]["gauges"] = json!({});
        if second {
            let mut other = m["l7"]["listeners"][0].clone();
            other["listener"] = json!("0.0.0.0:8443");
            m["l7"]["listeners"].as_array_mut().unwrap().push(other);
        }
        s
    };
    let a = strip(sample(t0, 100, false, true), false);
    let b = strip(sample(t0 + Duration::from_secs(2), 300, false, true), false);
    let s = Snapshot::new(Some(&a), &b);
    assert_eq!(s.listeners.len(), 1);
    assert_eq!(s.listeners[0].requests.unwrap().total, 300);
    assert_eq!(s.listeners[0].requests.unwrap().per_second, Some(100.0));
    assert_eq!(s.listeners[0].target_codes[0], Some(42));
    assert_eq!(s.listeners[0].active_connections, Some(3));
    // Two listeners without their own figures: n/a each, and the sum in a row of its own.
    let a = strip(sample(t0, 100, false, true), true);
    let b = strip(sample(t0 + Duration::from_secs(2), 300, false, true), true);
    let s = Snapshot::new(Some(&a), &b);
    assert_eq!(s.listeners.len(), 3);
    assert_eq!(s.listeners[0].requests, None);
    assert_eq!(s.listeners[2].name, "all listeners");
    let t = render::text(&s);
    assert!(
        t.contains(&row(":8443 HTTP 0.0.0.0", "n/a", "n/a", "n/a")),
        "{t}"
    );
    assert!(t.contains(&row("all listeners", "100", "300", "3")), "{t}");
    assert!(t.contains("CODES (all listeners)  T2XX 42"), "{t}");
}

#[test]
fn an_unreachable_daemon_shows_why_and_no_numbers() {
    let mut a = sample(Instant::now(), 1, false, false);
    a.status = Err("no weir daemon at /run/weir/x.sock".into());
    a.listeners = None;
    a.health = None;
    a.worker_cpu.clear();
    a.xdp = Err("no weir daemon with XDP found (no pins)".into());
    let t = render::text(&Snapshot::new(None, &a));
    assert!(t.contains("pid n/a  gen n/a"), "{t}");
    assert!(
        t.contains("admin API: no weir daemon at /run/weir/x.sock"),
        "{t}"
    );
    assert!(t.contains("XDP no weir daemon with XDP found"), "{t}");
}

#[test]
fn numbers_format_in_their_columns() {
    assert_eq!(render::per_second(None), "n/a");
    assert_eq!(render::per_second(Some(2.25)), "2.2");
    assert_eq!(render::per_second(Some(812.4)), "812");
    assert_eq!(render::per_second(Some(12_345.0)), "12.3k");
    assert_eq!(render::per_second(Some(4_560_000.0)), "4.56M");
    assert_eq!(render::per_second(Some(45_600_000.0)), "45.60M");
    assert_eq!(render::count(Some(123_456_789)), "123456789");
    assert_eq!(render::count(Some(1_234_000_000)), "1.23G");
}

/// Five HTTPS listeners on one address: each row names its port first and whole (a 20-column
/// `HTTPS 127.0.0.1:194…` made all five the same), and no row has status-code columns that
/// are always n/a (codes are not counted per listener): one line has them for all.
#[test]
fn listeners_on_one_address_are_told_apart_and_codes_are_for_all() {
    let t0 = Instant::now();
    let five = |mut s: Sample| {
        let m = s.metrics.as_mut().unwrap();
        let one = m["l7"]["listeners"][0].clone();
        let ls: Vec<serde_json::Value> = (19411..19416)
            .map(|port| {
                let mut l = one.clone();
                l["listener"] = json!(format!("127.0.0.1:{port}"));
                l["port"] = json!(port);
                l["protocol"] = json!("HTTPS");
                l["counters"] = json!({"RequestCount": 7});
                l
            })
            .collect();
        m["l7"]["listeners"] = json!(ls);
        m["l7"]["totals"] = json!({"RequestCount": 35, "HTTPCode_Target_2XX_Count": 35});
        s
    };
    let a = five(sample(t0, 100, false, true));
    let b = five(sample(t0 + Duration::from_secs(2), 300, false, true));
    let t = render::text(&Snapshot::new(Some(&a), &b));
    for port in 19411..19416 {
        let name = format!(":{port} HTTPS 127.0.0.1");
        assert!(t.contains(&row(&name, "0.0", "7", "4")), "{name} in\n{t}");
    }
    assert!(!t.contains("127.0.0.1:194…"), "{t}");
    assert_eq!(t.matches("T2XX").count(), 1, "{t}");
    assert!(t.contains("CODES (all listeners)  T2XX 35"), "{t}");
    assert!(t.contains(&row("all listeners", "0.0", "35", "n/a")), "{t}");
    assert!(t.lines().all(|l| l.chars().count() <= 80), "{t}");
}
