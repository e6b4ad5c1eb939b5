//! The CLI's text output for each admin API object (`--json` prints the object itself). Pure.

use std::fmt::Write as _;

use super::{
    model::{Reloaded, Status, TargetList, TargetsChanged},
    views::{ActionView, ConditionView, ListenerList, RuleList},
};
use crate::certificates::{CertificateList, CertificateView};
use crate::discovery::view::{GroupDiscovery, Outcome};

fn duration(s: u64) -> String {
    match (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60) {
        (0, 0, 0, sec) => format!("{sec}s"),
        (0, 0, m, sec) => format!("{m}m{sec:02}s"),
        (0, h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
        (d, h, m, _) => format!("{d}d{h:02}h{m:02}m"),
    }
}

pub fn status(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "weir pid {}, configuration generation {}, up {}",
        s.pid,
        s.generation,
        duration(s.uptime_seconds)
    );
    let _ = writeln!(o, "config:       {}", s.config);
    if let Some(why) = &s.last_reload_refused {
        let _ = writeln!(
            o,
            "last reload:  REFUSED, generation {} stays: {why}",
            s.generation
        );
    }
    let _ = writeln!(o, "admin socket: {}", s.admin_socket);
    if let Some(f) = &s.health_file {
        let _ = writeln!(o, "health file:  {f}");
    }
    let _ = write!(
        o,
        "workers:      {} running of {} configured",
        s.workers.running, s.workers.configured
    );
    match s.workers.not_reporting {
        0 => o.push('\n'),
        n => {
            let _ = writeln!(o, ", {n} NOT REPORTING");
        }
    }
    for w in &s.workers.processes {
        let _ = write!(o, "  worker {:<3} pid {}", w.index, w.pid);
        let _ = match w.report_age_ms {
            Some(ms) if w.silent() => writeln!(
                o,
                ", NOT REPORTING for {:.1} s (hung or stopped; the watchdog restarts it)",
                ms as f64 / 1e3
            ),
            Some(ms) => writeln!(o, ", reported {:.1} s ago", ms as f64 / 1e3),
            None => writeln!(o),
        };
    }
    if s.xdp.is_empty() {
        let _ = writeln!(o, "xdp:          not attached (L7 only)");
    }
    for x in &s.xdp {
        if x.attached {
            let _ = writeln!(o, "xdp:          {} {}", x.iface, x.mode);
            if let Some(why) = &x.syn_cookies_refused {
                let _ = writeln!(o, "  SYN COOKIES REFUSED: {why}");
            }
        } else {
            let _ = writeln!(
                o,
                "xdp:          {} not attached: the interface is gone (attached again when it is back)",
                x.iface
            );
        }
    }
    o
}

/// One line for an action: `forward web`, `forward api:3 web:1`, `redirect 301 …`, `fixed-response 503`.
pub fn action(a: &ActionView) -> String {
    match a {
        ActionView::Forward {
            target_groups,
            stickiness_seconds,
        } => {
            let groups = match target_groups.as_slice() {
                [one] => one.name.clone(),
                many => many
                    .iter()
                    .map(|g| format!("{}:{}", g.name, g.weight))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            match stickiness_seconds {
                Some(s) => format!("forward {groups} (sticky {s}s)"),
                None => format!("forward {groups}"),
            }
        }
        ActionView::Redirect {
            protocol,
            host,
            port,
            path,
            query,
            status_code,
        } => format!("redirect {status_code} {protocol}://{host}:{port}{path}?{query}"),
        ActionView::FixedResponse { status_code, .. } => format!("fixed-response {status_code}"),
    }
}

/// A certificate's notAfter with how it stands: `(12 days left)`, `EXPIRED 3 days ago`.
fn not_after(c: &CertificateView) -> String {
    let days = |n: i64| format!("{n} day{}", if n == 1 { "" } else { "s" });
    match c.status.as_str() {
        // days_left rounds down: -1 within the first day after notAfter.
        "expired" => match -c.days_left - 1 {
            0 => format!("{}  EXPIRED less than a day ago", c.not_after),
            n => format!("{}  EXPIRED {} ago", c.not_after, days(n)),
        },
        "expires_soon" => format!("{}  expires soon: {} left", c.not_after, days(c.days_left)),
        _ => format!("{}  ({} left)", c.not_after, days(c.days_left)),
    }
}

/// One block per certificate, by listener (as HAProxy's `show ssl cert FILE`).
pub fn certificates(l: &CertificateList) -> String {
    if l.listeners.is_empty() {
        return "no listener serves a certificate\n".into();
    }
    let mut o = String::new();
    for x in &l.listeners {
        let _ = writeln!(o, "listener {}", x.listener);
        for c in &x.certificates {
            let sans = if c.subject_alt_names.is_empty() {
                "-".to_string()
            } else {
                c.subject_alt_names.join(", ")
            };
            let early = if c.status == "not_yet_valid" {
                "  NOT YET VALID"
            } else {
                ""
            };
            let _ = writeln!(o, "  {}", c.file);
            for (k, v) in [
                ("subject", c.subject.clone()),
                ("SANs", sans),
                ("issuer", c.issuer.clone()),
                ("serial", c.serial.clone()),
                ("notBefore", format!("{}{early}", c.not_before)),
                ("notAfter", not_after(c)),
                ("key", c.key_type.clone()),
            ] {
                let _ = writeln!(o, "    {k:<10} {v}");
            }
        }
    }
    o
}

pub fn listeners(l: &ListenerList) -> String {
    let mut o = format!(
        "{:<16} {:>5} {:<8} {:<15} {:>5}  DEFAULT ACTION\n",
        "ADDRESS", "PORT", "PROTOCOL", "ALPN", "RULES"
    );
    for x in &l.listeners {
        let _ = writeln!(
            o,
            "{:<16} {:>5} {:<8} {:<15} {:>5}  {}",
            x.address,
            x.port,
            x.protocol,
            x.alpn_policy,
            x.rule_count,
            action(&x.default_action)
        );
    }
    o
}

fn condition(c: &ConditionView) -> String {
    match &c.http_header_name {
        Some(h) => format!("{} {h}={}", c.field, c.values.join(",")),
        None => format!("{}={}", c.field, c.values.join(",")),
    }
}

pub fn rules(r: &RuleList) -> String {
    let mut o = format!(
        "listener port {}\n{:<9} {:<44} ACTION\n",
        r.port, "PRIORITY", "CONDITIONS"
    );
    for x in &r.rules {
        let conds = if x.conditions.is_empty() {
            "-".to_string()
        } else {
            x.conditions
                .iter()
                .map(condition)
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let _ = writeln!(o, "{:<9} {:<44} {}", x.priority, conds, action(&x.action));
    }
    o
}

pub fn target_list(t: &TargetList) -> String {
    let mut o = format!(
        "target group {} (port {})\n{:<40} {:>5} {:>6} {:>8} {:<10} SOURCE\n",
        t.target_group, t.port, "TARGET", "PORT", "WEIGHT", "PRIORITY", "ZONE"
    );
    for x in &t.targets {
        let _ = writeln!(
            o,
            "{:<40} {:>5} {:>6} {:>8} {:<10} {}",
            x.id,
            x.port,
            x.weight,
            x.priority,
            x.availability_zone.as_deref().unwrap_or("-"),
            x.source
        );
    }
    o
}

/// `registered`/`deregistered`, and the reminder that the file decides at the next reload.
pub fn targets_changed(c: &TargetsChanged, verb: &str) -> String {
    let mut o = String::new();
    for t in &c.targets {
        let _ = writeln!(o, "{verb} {t} in target group {}", c.target_group);
    }
    let _ = writeln!(o, "configuration generation {} in force", c.generation);
    let keep = if verb == "registered" {
        "a reload keeps these targets only if they are in"
    } else {
        "a reload registers these targets again if they are in"
    };
    let _ = writeln!(
        o,
        "note: a run-time change, not persisted: {keep} {} (edit the file to make it last)",
        c.config
    );
    o
}

pub fn reloaded(r: &Reloaded) -> String {
    format!(
        "reloaded {}: configuration generation {} in force (sent to every worker)\n",
        r.config, r.generation
    )
}

/// Milliseconds as `0.4s` under a minute, else as [`duration`].
fn span(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        duration(ms / 1000)
    }
}

/// `t_ms` against `now_ms`: `1.2s ago`, `in 0.8s`.
fn relative(t_ms: u64, now_ms: u64) -> String {
    if t_ms <= now_ms {
        format!("{} ago", span(now_ms - t_ms))
    } else {
        format!("in {}", span(t_ms - now_ms))
    }
}

/// DNS discovery per group (HAProxy's `show resolvers`), times relative to `now_ms`.
pub fn discovery(groups: &[GroupDiscovery], now_ms: u64) -> String {
    if groups.is_empty() {
        return "no target group discovers its targets in DNS ([target_group.discovery])\n".into();
    }
    let mut o = String::new();
    for g in groups {
        let via = if g.resolvers.is_empty() {
            "the system's resolvers".to_string()
        } else {
            g.resolvers.join(", ")
        };
        let _ = writeln!(
            o,
            "target group {}: {} {} via {via} (port {})",
            g.target_group, g.record_type, g.name, g.port
        );
        let _ = writeln!(o, "  targets:          {} in force", g.targets.len());
        for t in &g.targets {
            let _ = writeln!(o, "    {t}");
        }
        let last = match &g.last_resolution {
            None => "not yet".to_string(),
            Some(r) => {
                let what = match &r.outcome {
                    Outcome::Answer { found } => format!("answer, {found} targets found"),
                    Outcome::Empty { nxdomain } => format!(
                        "empty ({}): no discovered targets",
                        if *nxdomain { "NXDOMAIN" } else { "no records" }
                    ),
                    Outcome::EmptyHeld {
                        nxdomain,
                        held_until_unix_ms,
                    } => format!(
                        "empty ({}): the targets are held {}",
                        if *nxdomain { "NXDOMAIN" } else { "no records" },
                        match held_until_unix_ms.checked_sub(now_ms) {
                            Some(left) if left > 0 => format!("for {} more", span(left)),
                            _ => "no longer".into(),
                        }
                    ),
                    Outcome::Failed { error } => {
                        format!("FAILED ({error}): the targets stay")
                    }
                };
                format!("{}: {what}", relative(r.time_unix_ms, now_ms))
            }
        };
        let _ = writeln!(o, "  last resolution:  {last}");
        let _ = writeln!(o, "  failures in a row: {}", g.consecutive_failures);
        match g.next_resolution_unix_ms {
            // The task resolves from then on: a resolution is under way (up to the timeout).
            Some(n) if n <= now_ms => {
                let _ = writeln!(
                    o,
                    "  next resolution:  under way (due {})",
                    relative(n, now_ms)
                );
            }
            Some(n) => {
                let _ = writeln!(o, "  next resolution:  {}", relative(n, now_ms));
            }
            None => {}
        }
        match &g.last_change {
            Some(c) => {
                let _ = writeln!(
                    o,
                    "  last change:      generation {}, {}",
                    c.generation,
                    relative(c.time_unix_ms, now_ms)
                );
            }
            None => {
                let _ = writeln!(o, "  last change:      none");
            }
        }
        if let Some(why) = &g.refused {
            let _ = writeln!(
                o,
                "  REFUSED:          {why} (handed over again at the next resolution)"
            );
        }
        let r = &g.resolutions;
        let _ = writeln!(
            o,
            "  resolutions:      {} answer, {} empty, {} failed",
            r.answer, r.empty, r.failed
        );
    }
    o
}

/// ALB's `describe-target-health`, per group, from the health view's JSON.
pub fn health(v: &serde_json::Value) -> String {
    let mut o = String::new();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    for g in v["target_groups"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "target group {}: HealthyHostCount {} UnHealthyHostCount {}{}{}",
            s(&g["name"]),
            g["HealthyHostCount"],
            g["UnHealthyHostCount"],
            if g["health_checked"] == false {
                " (not checked)"
            } else {
                ""
            },
            if g["fail_open"] == true {
                " FAIL-OPEN: no healthy target, requests go to all"
            } else {
                ""
            }
        );
        let _ = writeln!(
            o,
            "  {:<40} {:>5} {:<12} {:<32} DESCRIPTION",
            "TARGET", "PORT", "STATE", "REASON"
        );
        for t in g["targets"].as_array().into_iter().flatten() {
            let _ = writeln!(
                o,
                "  {:<40} {:>5} {:<12} {:<32} {}",
                s(&t["id"]),
                t["port"],
                s(&t["state"]),
                s(&t["reason"]),
                t["description"].as_str().unwrap_or("")
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::model::{WorkerProcess, Workers, XdpInterface};

    /// Each certificate's block under its listener, the expired one saying so in capitals.
    #[test]
    fn certificates_show_each_under_its_listener() {
        let info = |not_after| lb_l7::cert_info::CertInfo {
            subject: "CN=a.example".into(),
            sans: vec!["DNS:a.example".into(), "IP:192.0.2.7".into()],
            issuer: "CN=Example CA".into(),
            serial: "0A1B".into(),
            not_before: 1_577_836_800,
            not_after,
            key_type: "RSA 2048".into(),
        };
        let served = |file: &str, not_after| crate::certificates::ServedCertificate {
            listener: "0.0.0.0:443".into(),
            port: 443,
            file: file.into(),
            info: info(not_after),
        };
        // 2030-01-01T00:00:00Z.
        let t = 1_893_456_000;
        let certs = [
            served("/a.pem", t + 100 * 86_400),
            served("/b.pem", t - 3 * 86_400 - 10),
            served("/c.pem", t - 3600),
        ];
        let out = certificates(&crate::certificates::list(&certs, None, t));
        assert!(out.starts_with("listener 0.0.0.0:443\n  /a.pem\n    subject    CN=a.example\n    SANs       DNS:a.example, IP:192.0.2.7\n    issuer     CN=Example CA\n    serial     0A1B\n    notBefore  2020-01-01T00:00:00Z\n    notAfter   2030-04-11T00:00:00Z  (100 days left)\n    key        RSA 2048\n"), "{out}");
        assert!(
            out.contains("    notAfter   2029-12-28T23:59:50Z  EXPIRED 3 days ago\n"),
            "{out}"
        );
        assert!(
            out.contains("    notAfter   2029-12-31T23:00:00Z  EXPIRED less than a day ago\n"),
            "{out}"
        );
        assert_eq!(
            certificates(&crate::certificates::list(&[], None, t)),
            "no listener serves a certificate\n"
        );
    }

    #[test]
    fn status_names_generation_workers_and_xdp() {
        let s = Status {
            pid: 7,
            generation: 3,
            last_reload_refused: None,
            config: "/etc/weir.toml".into(),
            uptime_seconds: 3725,
            workers: Workers {
                configured: 2,
                running: 1,
                not_reporting: 0,
                processes: vec![WorkerProcess {
                    index: 1,
                    pid: 9,
                    report_age_ms: None,
                }],
            },
            xdp: vec![XdpInterface {
                iface: "eth0".into(),
                mode: "native".into(),
                attached: true,
                syn_cookies_refused: None,
            }],
            admin_socket: "/run/weir/eth0.sock".into(),
            health_file: Some("/run/weir/eth0.health.json".into()),
        };
        let t = status(&s);
        assert!(t.contains("generation 3, up 1h02m05s"), "{t}");
        assert!(t.contains("1 running of 2 configured"), "{t}");
        assert!(t.contains("worker 1   pid 9"), "{t}");
        assert!(t.contains("xdp:          eth0 native"), "{t}");
        assert!(!t.contains("REFUSED"), "{t}");
        let mut refused = s.clone();
        refused.xdp[0].syn_cookies_refused = Some("its veth peer is unreachable".into());
        let r = status(&refused);
        assert!(
            r.contains("eth0 native\n  SYN COOKIES REFUSED: its veth peer is unreachable\n"),
            "{r}"
        );
        let mut gone = s.clone();
        gone.xdp[0].attached = false;
        let g = status(&gone);
        assert!(
            g.contains("xdp:          eth0 not attached: the interface is gone"),
            "{g}"
        );
        assert!(
            t.contains("health file:  /run/weir/eth0.health.json\n"),
            "{t}"
        );
        let none = status(&Status {
            health_file: None,
            ..s.clone()
        });
        assert!(!none.contains("health file"), "{none}");
        // A refused reload (a SIGHUP's is otherwise in the log only).
        let r = status(&Status {
            last_reload_refused: Some("/etc/weir.toml:4:1: listener[0].port: …".into()),
            ..s
        });
        assert!(
            r.contains("last reload:  REFUSED, generation 3 stays: /etc/weir.toml:4:1: listener[0].port: …\n"),
            "{r}"
        );
    }

    /// A worker whose reports stopped is named, with how long ago; one that reports says
    /// when it last did; a daemon that keeps no reports shows the pid alone.
    #[test]
    fn status_names_a_worker_that_stopped_reporting() {
        let p = |index, pid, report_age_ms| WorkerProcess {
            index,
            pid,
            report_age_ms,
        };
        let s = Status {
            pid: 7,
            generation: 1,
            last_reload_refused: None,
            config: "/etc/weir.toml".into(),
            uptime_seconds: 60,
            workers: Workers {
                configured: 3,
                running: 3,
                not_reporting: 1,
                processes: vec![p(0, 10, Some(300)), p(1, 11, Some(12_400)), p(2, 12, None)],
            },
            xdp: vec![],
            admin_socket: "/s".into(),
            health_file: None,
        };
        let t = status(&s);
        assert!(
            t.contains("3 running of 3 configured, 1 NOT REPORTING\n"),
            "{t}"
        );
        assert!(t.contains("worker 0   pid 10, reported 0.3 s ago\n"), "{t}");
        assert!(
            t.contains("worker 1   pid 11, NOT REPORTING for 12.4 s (hung or stopped"),
            "{t}"
        );
        assert!(t.contains("worker 2   pid 12\n"), "{t}");
        // The JSON a newer CLI reads from an older daemon: no ages, no count.
        let old: Workers = serde_json::from_str(
            r#"{"configured": 1, "running": 1, "processes": [{"index": 0, "pid": 5}]}"#,
        )
        .unwrap();
        assert_eq!(
            (old.not_reporting, old.processes[0].report_age_ms),
            (0, None)
        );
    }

    #[test]
    fn discovery_shows_outcomes_and_times_relative_to_now() {
        use crate::discovery::view::{Change, Counts, Resolution};
        let d: lb_l7::config::Discovery =
            toml::from_str("name = \"web.svc.test\"\ntype = \"A\"").unwrap();
        let mut g = GroupDiscovery::new(
            "web",
            &d,
            8080,
            &[lb_l7::target_sets::SetTarget::plain(
                "10.0.0.1:8080".parse().unwrap(),
            )],
        );
        assert!(discovery(&[g.clone()], 0).contains("last resolution:  not yet"));
        g.last_resolution = Some(Resolution {
            time_unix_ms: 98_800,
            outcome: Outcome::Failed {
                error: "request timed out".into(),
            },
        });
        g.consecutive_failures = 3;
        g.next_resolution_unix_ms = Some(102_000);
        g.last_change = Some(Change {
            generation: 4,
            time_unix_ms: 10_000,
        });
        g.resolutions = Counts {
            answer: 7,
            empty: 0,
            failed: 3,
        };
        let t = discovery(&[g.clone()], 102_500);
        assert!(
            t.contains("next resolution:  under way (due 0.5s ago)\n"),
            "{t}"
        );
        let t = discovery(&[g.clone()], 100_000);
        for want in [
            "target group web: A web.svc.test via the system's resolvers (port 8080)\n",
            "  targets:          1 in force\n    10.0.0.1:8080\n",
            "last resolution:  1.2s ago: FAILED (request timed out): the targets stay\n",
            "failures in a row: 3\n",
            "next resolution:  in 2.0s\n",
            "last change:      generation 4, 1m30s ago\n",
            "resolutions:      7 answer, 0 empty, 3 failed\n",
        ] {
            assert!(t.contains(want), "{want:?} in\n{t}");
        }
        g.last_resolution = Some(Resolution {
            time_unix_ms: 100_000,
            outcome: Outcome::EmptyHeld {
                nxdomain: true,
                held_until_unix_ms: 104_000,
            },
        });
        let t = discovery(&[g], 100_000);
        assert!(
            t.contains("0.0s ago: empty (NXDOMAIN): the targets are held for 4.0s more\n"),
            "{t}"
        );
        assert!(discovery(&[], 0).starts_with("no target group discovers"));
    }

    #[test]
    fn target_list_shows_weight_priority_and_source() {
        let v = serde_json::json!({"target_group": "web", "port": 80, "targets": [
            {"id": "10.0.0.1", "port": 80, "weight": 999, "priority": 10,
             "availability_zone": null, "source": "discovered"},
            // A daemon before priorities: the field is absent.
            {"id": "10.0.0.2", "port": 81, "weight": 1, "availability_zone": "a",
             "source": "config"}]});
        let t = target_list(&serde_json::from_value(v).unwrap());
        let rows: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            rows[1],
            ["TARGET", "PORT", "WEIGHT", "PRIORITY", "ZONE", "SOURCE"]
        );
        assert_eq!(rows[2], ["10.0.0.1", "80", "999", "10", "-", "discovered"]);
        assert_eq!(rows[3], ["10.0.0.2", "81", "1", "0", "a", "config"]);
    }

    #[test]
    fn health_rows_come_from_the_view() {
        let v = serde_json::json!({"target_groups": [{"name": "web", "health_checked": true,
            "fail_open": false, "HealthyHostCount": 1, "UnHealthyHostCount": 1,
            "targets": [{"id": "10.0.0.1", "port": 80, "state": "healthy", "reason": null},
                        {"id": "10.0.0.2", "port": 80, "state": "unhealthy",
                         "reason": "Target.Timeout", "description": "Request timed out"}]}]});
        let t = health(&v);
        assert!(
            t.contains("target group web: HealthyHostCount 1 UnHealthyHostCount 1\n"),
            "{t}"
        );
        assert!(
            t.contains("Target.Timeout") && t.contains("Request timed out"),
            "{t}"
        );
        assert_eq!(t.lines().count(), 4, "{t}");
    }
}
