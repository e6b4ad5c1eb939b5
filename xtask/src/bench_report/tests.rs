//! The report from small fixture results: tables, "not run"/"failed" entries, and real PNGs.

use std::{collections::BTreeMap, path::PathBuf};

use serde_json::{Value, json};

use super::{inputs, render};

fn machine(unix: u64) -> Value {
    json!({"hostname": "lab-1", "cpu_model": "AMD EPYC 7R13 Processor", "cores": 2,
           "kernel": "6.1.0-28-cloud-amd64", "date_utc": super::machine::utc(unix),
           "unix_time": unix, "git_commit": "0123456789abcdef", "git_dirty": false})
}

fn xdp() -> Value {
    json!({"repeat": 1000000, "rounds": 5, "deny_prefixes": 1002, "machine": machine(1_796_443_200),
           "paths": [
             {"path": "not_vip_tcp", "weir_ns": 9.5, "bare_pass_ns": 6.1, "ratio": 1.557, "target": "<= 2x bare", "met": true},
             {"path": "vip_tcp_v4", "weir_ns": 31.2, "bare_pass_ns": 6.0, "ratio": 5.2, "target": "<= 30 ns", "met": false}]})
}

fn synflood() -> Value {
    let case = |legit: f64, busy: f64| {
        json!({"offered_syn_per_s": 812345.0, "handled_syn_per_s": 700000.0, "legit_success": legit,
               "legit_tried": 400, "connect_p50_ms": 0.21, "connect_p99_ms": 1.9,
               "xdp_answered_share": null, "kernel_syncookies_sent_per_round": 1500000.0,
               "flood_cpu_busy_s_per_million_syn": busy, "softirq_s_per_million_syn": busy / 2.0})
    };
    json!({"rounds": 3, "machine": machine(1_796_443_300),
           "floods": {"generator_linux_syns": {"kernel_only": case(0.75, 2.4), "weir": case(1.0, 0.6),
                      "targets_met": {"legit_100": true, "softirq_0_3": true}},
                      "hping3_option_less": {"kernel_only": case(0.9, -1117.0), "weir": case(1.0, 9.4)}},
           "testrun": [{"path": "syn_cookie_v4", "weir_ns": 88.0, "bare_pass_ns": 20.0, "target_ns": 100.0, "met": true}]})
}

fn http() -> Value {
    let p = |rps: f64, cpu: f64| {
        json!({"h1_rps": rps, "h1_cpu_us_per_req": cpu, "h1_p50_us": 500.0, "h1_p99_us": 1500.0,
               "h2tls_rps": rps / 2.0, "h2tls_cpu_us_per_req": cpu * 2.0, "h2tls_p50_us": 900.0,
               "h2tls_p99_us": 3000.0, "tls_handshakes_per_s": 900.0, "idle_conn_bytes": 2100.0})
    };
    json!({"setup": {"proxy_core": "0", "load_core": "1", "duration_s": 3, "rounds": 1,
                     "haproxy": "HAProxy version 2.6.12", "nginx": "nginx version: nginx/1.22.1"},
           "median": {"weir": p(61000.0, 15.5), "haproxy": p(52000.0, 18.0), "nginx": p(48000.0, 19.5),
                      "relay": {"h1_rps": 70000.0, "h1_cpu_us_per_req": 11.0}},
           "targets": {"h1_rps_vs_haproxy_ge_1.3": false, "cpu_per_request_below_both": true},
           "errors": {"weir": 0, "haproxy": 0, "nginx": 0},
           "machine": machine(1_796_443_400)})
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-report-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A PNG: the 8-byte signature, an IHDR of the expected size, more than a blank image's bytes.
fn assert_png(path: &std::path::Path) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert_eq!(&b[12..16], b"IHDR");
    let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
    assert_eq!((w, h), (960, 540), "{}", path.display());
    // Text and bars compress to well over a blank image (a few hundred bytes).
    assert!(
        b.len() > 8_000,
        "{}: only {} bytes",
        path.display(),
        b.len()
    );
}

#[test]
fn tables_charts_and_missing_benchmarks() {
    let results: BTreeMap<String, Value> =
        [("xdp", xdp()), ("synflood", synflood()), ("http", http())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    // steer failed in the last `bench all`; pps has neither a result nor a failure.
    let run = json!({"quick": true, "machine": machine(1_796_443_500), "started_unix": 1_796_443_000,
        "started_utc": "2026-12-05 03:56:40 UTC", "benches": [
        {"name": "xdp", "status": "ok", "seconds": 21.0, "started_unix": 1_796_443_000},
        {"name": "steer", "status": "failed", "reason": "weir exited\n(see log)", "seconds": 3.0, "started_unix": 1_796_443_100}]});
    let inputs = inputs::from_values(results, Some(run));
    let dir = temp_dir("full");
    let md = render(&inputs, "2026-12-05 05:00:00 UTC", &dir).expect("render");

    // The summary: every benchmark, its state and provenance.
    assert!(md.contains("| `pps` | not run | – | – | – |"), "{md}");
    assert!(md.contains("| `steer` | **failed** |"), "{md}");
    assert!(md.contains("| `xdp` | measured | lab-1 (AMD EPYC 7R13 Processor, 2 cores, Linux 6.1.0-28-cloud-amd64) | 2026-12-05 04:00:00 UTC | 21 s |"), "{md}");
    assert!(
        md.contains("Last `bench all` with `--quick`: started 2026-12-05 03:56:40 UTC on lab-1"),
        "{md}"
    );
    assert!(md.contains("**not run** — no `pps.json` here"), "{md}");
    assert!(
        md.contains("**failed** — in the last `bench all`: weir exited (see log)"),
        "{md}"
    );
    // Tables.
    assert!(
        md.contains("| `vip_tcp_v4` | 31.2 | 6.00 | 5.20 | ≤ 30 ns | **missed** |"),
        "{md}"
    );
    assert!(
        md.contains(
            "| HTTP/1.1 keep-alive req/s | 61,000 | 52,000 | 48,000 | 70,000 | 1.17 | 1.27 |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| HTTP/1.1 proxy CPU µs/request | 15.5 | 18.0 | 19.5 | 11.0 |"),
        "{md}"
    );
    assert!(
        md.contains("| legitimate connections that succeeded | 75.0 % | 100.0 % | 1.33 |"),
        "{md}"
    );
    assert!(
        md.contains("| CPU µs per SYN (flood CPU busy) | 2.40 | 0.60 | 0.25 |"),
        "{md}"
    );
    assert!(md.contains("| SYNs answered in XDP | – | – | – |"), "{md}");
    // A negative CPU figure is shown as measured, flagged, and not drawn.
    assert!(
        md.contains("| CPU µs per SYN (flood CPU busy) | -1,117 | 9.40 |"),
        "{md}"
    );
    assert_eq!(md.matches("A negative CPU figure above").count(), 1, "{md}");
    assert!(md.contains("commit `0123456789`"), "{md}");
    // Every chart is linked, captioned with machine and date, and written as a PNG.
    for (file, date) in [
        ("xdp-ns-per-packet.png", "2026-12-05 04:00:00 UTC"),
        ("synflood-legit-success.png", "2026-12-05 04:01:40 UTC"),
        ("synflood-cpu-per-syn.png", "2026-12-05 04:01:40 UTC"),
        ("http-req-per-s.png", "2026-12-05 04:03:20 UTC"),
        ("http-cpu-per-request.png", "2026-12-05 04:03:20 UTC"),
    ] {
        assert!(
            md.contains(&format!("]({file})")),
            "{file} not linked:\n{md}"
        );
        let caption = md
            .lines()
            .skip_while(|l| !l.ends_with(&format!("({file})")))
            .nth(1)
            .unwrap_or_default();
        assert!(
            caption.contains("lab-1 (AMD EPYC") && caption.contains(date),
            "{file}: {caption}"
        );
        assert_png(&dir.join(file));
    }
    // No chart for what was not measured.
    assert!(!dir.join("pps.png").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_result_newer_than_its_failure_stands_and_nothing_is_not_run() {
    let results: BTreeMap<String, Value> = [("xdp".to_string(), xdp())].into_iter().collect();
    let run = json!({"benches": [{"name": "xdp", "status": "failed", "reason": "x", "started_unix": 1_796_000_000}]});
    let inputs = inputs::from_values(results, Some(run));
    assert!(matches!(
        inputs.benches[0],
        ("xdp", inputs::Outcome::Measured(_))
    ));
    // Older than the failed run: the failure is shown, not the stale numbers.
    let results: BTreeMap<String, Value> = [("xdp".to_string(), xdp())].into_iter().collect();
    let run = json!({"benches": [{"name": "xdp", "status": "failed", "reason": "x", "started_unix": 1_797_000_000}]});
    let inputs = inputs::from_values(results, Some(run));
    assert!(matches!(
        inputs.benches[0],
        ("xdp", inputs::Outcome::Failed { .. })
    ));

    let dir = temp_dir("empty");
    let md = render(&inputs::from_values(BTreeMap::new(), None), "now", &dir).expect("render");
    assert_eq!(
        md.matches("**not run**").count(),
        inputs::BENCHES.len(),
        "{md}"
    );
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "no charts without results"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn build_reads_a_directory_and_flags_a_broken_file() {
    let dir = temp_dir("build");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("xdp.json"), serde_json::to_string(&xdp()).unwrap()).unwrap();
    std::fs::write(dir.join("pps.json"), "{ not json").unwrap();
    let path = super::build(&dir).expect("build");
    let md = std::fs::read_to_string(&path).unwrap();
    assert!(md.contains("| `xdp` | measured |"), "{md}");
    assert!(md.contains("| `pps` | **failed** |"), "{md}");
    assert!(
        md.contains("**failed** — ") && md.contains("pps.json is not JSON"),
        "{md}"
    );
    assert_png(&dir.join("xdp-ns-per-packet.png"));
    std::fs::remove_dir_all(&dir).unwrap();
}
