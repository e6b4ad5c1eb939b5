//! The aggregation and the rendering, from workers' figures to the JSON view and the page.

use std::collections::BTreeMap;

use lb_common::{Counter, Stat, proto, syn::SynMode};

use super::{
    assemble::{self, L7Input, XdpInput},
    prom,
    series::{ELB_CODE, Figures, Key, RT_BUCKET, RT_COUNT, RT_SUM_US},
    store::Store,
};
use crate::{
    health::table::{GroupView, HealthSnapshot, TargetView, ZoneCounts},
    xdp::{Counters, VipCounter, syn::VipSyn},
};

fn worker(requests: u64, c404: u64, c502: u64, target_2xx: u64, slow: u64) -> Figures {
    let mut f = Figures::default();
    let mut c = |k: Key, v: u64| {
        f.counters.insert(k, v);
    };
    c(Key::plain("RequestCount"), requests);
    c(Key::plain("HTTPCode_Target_2XX_Count"), target_2xx);
    c(Key::code(ELB_CODE, 404), c404);
    c(Key::code(ELB_CODE, 502), c502);
    c(Key::listener("RequestCount", 80), requests);
    c(
        Key::target("RequestCountPerTarget", "web", "10.0.0.1:80"),
        target_2xx,
    );
    c(
        Key::target("HTTPCode_Target_2XX_Count", "web", "10.0.0.1:80"),
        target_2xx,
    );
    c(
        Key::target("TargetConnectionErrorCount", "web", "10.0.0.9:80"),
        c502,
    );
    let g = |name: &str, b: Option<u16>| Key {
        group: "web".into(),
        code: b,
        ..Key::plain(name)
    };
    // target_2xx answers in the first bucket (≤ 100 µs), `slow` in the fourth (≤ 1 ms).
    c(g(RT_BUCKET, Some(0)), target_2xx);
    c(g(RT_BUCKET, Some(3)), slow);
    c(g(RT_COUNT, None), target_2xx + slow);
    c(g(RT_SUM_US, None), 50 * target_2xx + 800 * slow);
    f.gauges.insert(Key::plain("ActiveConnectionCount"), 1);
    f.gauges
        .insert(Key::listener("ActiveConnectionCount", 80), 1);
    f
}

fn health() -> HealthSnapshot {
    let t = |id: &str, state: &str| TargetView {
        id: id.into(),
        port: 80,
        availability_zone: Some("a".into()),
        state: state.into(),
        reason: None,
        description: None,
    };
    HealthSnapshot {
        target_groups: vec![GroupView {
            name: "web".into(),
            health_checked: true,
            fail_open: false,
            healthy_host_count: 1,
            unhealthy_host_count: 1,
            zones: BTreeMap::from([(
                "a".to_string(),
                ZoneCounts {
                    healthy_host_count: 1,
                    unhealthy_host_count: 1,
                },
            )]),
            targets: vec![t("10.0.0.1", "healthy"), t("10.0.0.9", "unhealthy")],
        }],
    }
}

fn listeners() -> Vec<lb_l7::config::Listener> {
    let mut l = lb_l7::config::L7Config::default().listener;
    l[0].port = 80;
    l
}

fn xdp() -> Counters {
    let mut stats = vec![Counter::default(); Stat::COUNT as usize];
    stats[Stat::PassVip as usize] = Counter {
        packets: 10,
        bytes: 1000,
    };
    stats[Stat::DropDenied as usize] = Counter {
        packets: 3,
        bytes: 180,
    };
    stats[Stat::TxSynCookie as usize] = Counter {
        packets: 2,
        bytes: 148,
    };
    Counters {
        stats,
        vips: vec![VipCounter {
            id: 0,
            address: "10.0.0.1".parse().unwrap(),
            port: 80,
            protocol: proto::TCP,
            counter: Counter {
                packets: 12,
                bytes: 1148,
            },
        }],
        syn: vec![VipSyn {
            id: 0,
            mode: SynMode::Auto,
            cookies: true,
            counts: [5, 2, 1, 0, 0, 0, 0, 0],
        }],
    }
}

#[test]
fn workers_sum_into_the_view_with_health_and_xdp() {
    let store = Store::new(2);
    store.started(0, 1, Some(100));
    store.started(1, 1, Some(101));
    store.report(0, 1, worker(10, 2, 1, 7, 0));
    store.report(1, 1, worker(5, 1, 0, 4, 2));
    let counters = xdp();
    let v = assemble::view(
        3,
        1_000,
        Some(L7Input {
            store: &store,
            health: health(),
            listeners: &listeners(),
            certificates: &[],
        }),
        Some(XdpInput {
            iface: "eth0",
            counters: &counters,
            host: serde_json::json!({"syncookies_reasserted": 4, "xdp_tx_errors": 0, "xdp_attached": true, "xdp_reattached": 1, "syn_cookie_trials": 3, "cookies_refused": "SYN cookies switched OFF"}),
        }),
    );
    assert_eq!((v.version, v.generation), (1, 3));
    let l7 = v.l7.as_ref().unwrap();
    assert_eq!(l7.totals["RequestCount"], 15);
    assert_eq!(l7.totals["HTTPCode_ELB_4XX_Count"], 3);
    assert_eq!(l7.totals["HTTPCode_ELB_5XX_Count"], 1);
    assert_eq!(l7.totals["HTTPCode_ELB_502_Count"], 1);
    assert_eq!(l7.totals["HTTPCode_Target_2XX_Count"], 11);
    assert_eq!(l7.totals["ActiveConnectionCount"], 2);
    assert_eq!(l7.elb_status_codes["404"], 3);
    assert_eq!(l7.listeners[0].port, 80);
    assert_eq!(l7.listeners[0].counters["RequestCount"], 15);
    assert_eq!(l7.listeners[0].gauges["ActiveConnectionCount"], 2);
    let g = &l7.target_groups[0];
    assert_eq!((g.healthy_host_count, g.unhealthy_host_count), (1, 1));
    let t1 = g
        .targets
        .iter()
        .find(|t| t.target == "10.0.0.1:80")
        .unwrap();
    assert_eq!(t1.state.as_deref(), Some("healthy"));
    assert_eq!(t1.counters["RequestCountPerTarget"], 11);
    assert_eq!(t1.counters["HTTPCode_Target_2XX_Count"], 11);
    let t9 = g
        .targets
        .iter()
        .find(|t| t.target == "10.0.0.9:80")
        .unwrap();
    assert_eq!(t9.counters["TargetConnectionErrorCount"], 1);
    assert_eq!(g.totals["RequestCountPerTarget"], 11);
    let h = g.target_response_time.as_ref().unwrap();
    assert_eq!(h.count, 13);
    assert_eq!(
        (h.counts[0], h.counts[2], h.counts[3], h.counts[15]),
        (11, 11, 13, 13)
    );
    assert!((h.sum_seconds - (11.0 * 50e-6 + 2.0 * 800e-6)).abs() < 1e-9);
    assert_eq!(l7.workers.len(), 2);
    assert_eq!(l7.workers[1].counters["RequestCount"], 5);
    assert_eq!(l7.workers[0].counters["HTTPCode_ELB_5XX_Count"], 1);
    let x = v.xdp.as_ref().unwrap();
    assert_eq!(x.stats["drop_denied"].packets, 3);
    assert_eq!(x.actions["pass"].packets, 10);
    assert_eq!(x.actions["drop"].packets, 3);
    assert_eq!(x.actions["tx"].packets, 2);
    let syn = x.vips[0].syn.as_ref().unwrap();
    assert_eq!((syn.mode.as_str(), syn.cookies), ("auto", true));
    assert_eq!(syn.counters["cookies_sent"], 2);

    // The JSON is the shape `weir top` reads.
    let j = serde_json::to_value(&v).unwrap();
    assert_eq!(j["l7"]["totals"]["RequestCount"], 15);
    assert_eq!(j["l7"]["target_groups"][0]["HealthyHostCount"], 1);
    assert_eq!(j["xdp"]["vips"][0]["syn"]["counters"]["syn_seen"], 5);

    let page = prom::render(&v);
    for want in [
        "weir_config_generation 3",
        "weir_request_count_total 15",
        "weir_active_connection_count 2",
        "weir_http_code_elb_total{code=\"404\",class=\"4XX\"} 3",
        "weir_http_code_elb_total{code=\"502\",class=\"5XX\"} 1",
        "weir_http_code_target_total{class=\"2XX\"} 11",
        "weir_listener_request_count_total{listener=\"0.0.0.0:80\",protocol=\"HTTP\"} 15",
        "weir_healthy_host_count{target_group=\"web\",zone=\"a\"} 1",
        "weir_unhealthy_host_count{target_group=\"web\",zone=\"a\"} 1",
        "weir_target_health{target_group=\"web\",target=\"10.0.0.9:80\",zone=\"a\",state=\"unhealthy\"} 1",
        "weir_target_request_count_total{target_group=\"web\",target=\"10.0.0.1:80\",zone=\"a\"} 11",
        "weir_target_connection_error_count_total{target_group=\"web\",target=\"10.0.0.9:80\",zone=\"a\"} 1",
        "weir_target_http_code_total{target_group=\"web\",target=\"10.0.0.1:80\",zone=\"a\",class=\"2XX\"} 11",
        "weir_target_response_time_seconds_bucket{le=\"0.0001\",target_group=\"web\"} 11",
        "weir_target_response_time_seconds_bucket{le=\"0.001\",target_group=\"web\"} 13",
        "weir_target_response_time_seconds_bucket{le=\"+Inf\",target_group=\"web\"} 13",
        "weir_target_response_time_seconds_count{target_group=\"web\"} 13",
        "weir_worker_request_count_total{worker=\"1\"} 5",
        "weir_worker_up{worker=\"0\"} 1",
        "weir_xdp_packets_total{interface=\"eth0\",decision=\"drop_denied\",action=\"drop\"} 3",
        "weir_xdp_packets_total{interface=\"eth0\",decision=\"tx_syn_cookie\",action=\"tx\"} 2",
        "weir_xdp_vip_packets_total{interface=\"eth0\",vip=\"10.0.0.1:80/tcp\"} 12",
        "weir_xdp_syn_seen_total{interface=\"eth0\",vip=\"10.0.0.1:80/tcp\"} 5",
        "weir_xdp_syn_cookies_sent_total{interface=\"eth0\",vip=\"10.0.0.1:80/tcp\"} 2",
        "weir_xdp_syn_mode{interface=\"eth0\",vip=\"10.0.0.1:80/tcp\",mode=\"auto\"} 1",
        "weir_xdp_syncookies_reasserted_total{interface=\"eth0\"} 4",
        "weir_xdp_attached{interface=\"eth0\"} 1",
        "weir_xdp_reattached_total{interface=\"eth0\"} 1",
        "weir_xdp_syn_cookie_trials_total{interface=\"eth0\"} 3",
        "weir_xdp_syn_cookies_refused{interface=\"eth0\"} 1",
        "# HELP weir_request_count RequestCount: requests received",
        "# TYPE weir_target_response_time_seconds histogram",
    ] {
        assert!(page.contains(want), "missing `{want}` in:\n{page}");
    }
    assert!(page.ends_with("# EOF\n"));
    // For checking the page with another parser by hand (docs/metrics.md).
    if let Ok(path) = std::env::var("WEIR_TEST_DUMP_PAGE") {
        std::fs::write(path, &page).unwrap();
    }
    // One descriptor per family.
    let mut families: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let n = families.len();
    families.sort_unstable();
    families.dedup();
    assert_eq!(families.len(), n, "a family is described twice");
    // Every sample line is a legal name, labels and a number.
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap();
        let name = &line[..name_end];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && name.starts_with("weir_"),
            "{line}"
        );
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

#[test]
fn without_workers_or_xdp_the_view_says_so() {
    let v = assemble::view(1, 0, None, None);
    assert!(v.l7.is_none() && v.xdp.is_none());
    let page = prom::render(&v);
    assert!(page.contains("weir_config_generation 1"), "{page}");
    assert!(!page.contains("weir_request_count"), "{page}");
}

#[test]
fn a_worker_killed_between_views_leaves_every_counter_where_it_was() {
    let store = Store::new(2);
    store.started(0, 1, None);
    store.started(1, 1, None);
    store.report(0, 1, worker(10, 2, 1, 7, 1));
    store.report(1, 1, worker(5, 1, 0, 4, 0));
    let page = |store: &Store| {
        let v = assemble::view(
            1,
            0,
            Some(L7Input {
                store,
                health: health(),
                listeners: &listeners(),
                certificates: &[],
            }),
            None,
        );
        prom::render(&v)
    };
    let values = |p: &str| -> BTreeMap<String, f64> {
        p.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    };
    let before = values(&page(&store));
    // Worker 0 is killed and restarted: its new process starts from zero.
    store.closed(0, 1);
    store.started(0, 2, None);
    store.report(0, 2, worker(1, 0, 0, 1, 0));
    let after = values(&page(&store));
    for (k, v) in &before {
        if k.contains("_total") || k.contains("_bucket") || k.contains("_count{") {
            assert!(after.get(k).copied().unwrap_or(0.0) >= *v, "{k} went back");
        }
    }
    assert_eq!(after["weir_request_count_total"], 16.0);
    assert_eq!(after["weir_worker_restarts_total{worker=\"0\"}"], 1.0);
}

#[test]
fn discovery_figures_come_from_the_records_and_show_on_the_page() {
    use crate::discovery::view::GroupDiscovery;
    let d: lb_l7::config::Discovery =
        toml::from_str("name = \"web.svc.test\"\ntype = \"A\"").unwrap();
    let mut r = GroupDiscovery::new(
        "web",
        &d,
        80,
        &[
            lb_l7::target_sets::SetTarget::plain("10.0.0.1:80".parse().unwrap()),
            lb_l7::target_sets::SetTarget::plain("10.0.0.2:80".parse().unwrap()),
        ],
    );
    r.consecutive_failures = 3;
    r.resolutions.answer = 9;
    r.resolutions.failed = 3;
    let mut v = assemble::view(1, 0, None, None);
    assert!(
        !prom::render(&v).contains("weir_discovery"),
        "no family without a discovering group"
    );
    assert!(serde_json::to_value(&v).unwrap().get("discovery").is_none());
    v.discovery = assemble::discovery(&[r]);
    assert_eq!(v.discovery[0].targets, 2);
    let page = prom::render(&v);
    for want in [
        "weir_discovery_resolutions_total{target_group=\"web\",outcome=\"answer\"} 9\n",
        "weir_discovery_resolutions_total{target_group=\"web\",outcome=\"empty\"} 0\n",
        "weir_discovery_resolutions_total{target_group=\"web\",outcome=\"failed\"} 3\n",
        "weir_discovery_targets{target_group=\"web\"} 2\n",
        "weir_discovery_consecutive_failures{target_group=\"web\"} 3\n",
        "# TYPE weir_discovery_resolutions counter\n",
    ] {
        assert!(page.contains(want), "{want:?} in\n{page}");
    }
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["discovery"][0]["resolutions"]["failed"], 3);
}

/// Every configured listener's series are on the page from the start, at 0 (a worker claims a
/// listener's counters at its first connection: a fresh start had no `weir_listener_*` series
/// at all), and stay through a worker's restart (its gauge was gone until the next connection),
/// the counters where they were.
#[test]
fn every_listener_has_its_series_from_the_start_and_through_a_restart() {
    let mut ls = listeners();
    let mut second = ls[0].clone();
    second.port = 81;
    ls.push(second);
    let store = Store::new(1);
    store.started(0, 1, None);
    let page = |store: &Store| {
        let v = assemble::view(
            1,
            0,
            Some(L7Input {
                store,
                health: health(),
                listeners: &ls,
                certificates: &[],
            }),
            None,
        );
        prom::render(&v)
    };
    let value = |page: &str, name: &str, port: u16| -> Option<f64> {
        page.lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&format!(":{port}\"")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let names = [
        "weir_listener_request_count_total",
        "weir_listener_new_connection_count_total",
        "weir_listener_rejected_connection_count_total",
        "weir_listener_processed_bytes_total",
        "weir_listener_active_connection_count",
    ];
    // A fresh start: no report yet, then one with no listener figures.
    for p in [page(&store), {
        store.report(0, 1, Figures::default());
        page(&store)
    }] {
        for port in [80, 81] {
            for name in names {
                assert_eq!(value(&p, name, port), Some(0.0), "{name} :{port}\n{p}");
            }
        }
    }
    // Traffic on :80, then the worker is killed and restarted: its new process has not
    // reported yet, then reports with nothing for the listener.
    store.report(0, 1, worker(10, 0, 0, 0, 0));
    let before = page(&store);
    assert_eq!(value(&before, names[0], 80), Some(10.0));
    assert_eq!(value(&before, names[4], 80), Some(1.0));
    store.closed(0, 1);
    store.started(0, 2, None);
    for p in [page(&store), {
        store.report(0, 2, Figures::default());
        page(&store)
    }] {
        assert_eq!(value(&p, names[0], 80), Some(10.0), "{p}");
        assert_eq!(value(&p, names[4], 80), Some(0.0), "{p}");
        for name in names {
            assert_eq!(value(&p, name, 81), Some(0.0), "{name}\n{p}");
        }
    }
}

/// Each served certificate has its notAfter and notBefore series, labelled by listener, file
/// and subject (a quote in the subject escaped); the view of a generation without it has none.
#[test]
fn certificates_show_as_timestamp_gauges() {
    let store = Store::new(1);
    let cert = |file: &str, subject: &str, not_after| crate::certificates::ServedCertificate {
        listener: "0.0.0.0:443".into(),
        port: 443,
        file: file.into(),
        info: lb_l7::cert_info::CertInfo {
            subject: subject.into(),
            sans: Vec::new(),
            issuer: "CN=ca".into(),
            serial: "01".into(),
            not_before: 1_700_000_000,
            not_after,
            key_type: "EC P-256".into(),
        },
    };
    let page = |certs: &[crate::certificates::ServedCertificate]| {
        let v = assemble::view(
            2,
            0,
            Some(L7Input {
                store: &store,
                health: health(),
                listeners: &listeners(),
                certificates: certs,
            }),
            None,
        );
        prom::render(&v)
    };
    let both = [
        cert("/a.pem", "CN=a.example", 1_893_456_000),
        cert("/b.pem", "CN=b \"x\"", 1_600_000_000),
    ];
    let p = page(&both);
    assert!(
        p.contains("# TYPE weir_certificate_expiry_timestamp_seconds gauge"),
        "{p}"
    );
    assert!(
        p.contains(
            "weir_certificate_expiry_timestamp_seconds{listener=\"0.0.0.0:443\",file=\"/a.pem\",subject=\"CN=a.example\"} 1893456000\n"
        ),
        "{p}"
    );
    assert!(
        p.contains(
            "weir_certificate_expiry_timestamp_seconds{listener=\"0.0.0.0:443\",file=\"/b.pem\",subject=\"CN=b \\\"x\\\"\"} 1600000000\n"
        ),
        "{p}"
    );
    assert!(
        p.contains(
            "weir_certificate_not_before_timestamp_seconds{listener=\"0.0.0.0:443\",file=\"/a.pem\",subject=\"CN=a.example\"} 1700000000\n"
        ),
        "{p}"
    );
    let p = page(&both[..1]);
    assert!(!p.contains("/b.pem"), "{p}");
    assert!(!page(&[]).contains("weir_certificate_"));
}
