//! The Prometheus page and `GET /v1/metrics` (issue #14) against a real `weir run`:
//!
//! - L7: two workers, python3 targets in a lab namespace, a scripted set of requests (200s from
//!   a target, a target's 404s, fixed-response 404s, 502s from a dead target, a rule's 503):
//!   the page's counters equal what was sent — per status code, per class, per target, per
//!   listener, per worker summed, the response-time histogram's count — and so does the JSON.
//!   A worker SIGKILLed between two scrapes makes no counter go backwards. A reload shows as
//!   `weir_config_generation`.
//! - XDP: `weir run --no-l7` on a veth: every XDP counter on the page equals `weir stats
//!   --json`'s.
//!
//! Needs root.

mod common;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use common::{logged::Weir, *};
use serde_json::Value;
use weir_tests::lab::{Lab, Ns, wait_until};

const PORT: u16 = 8080;
const WEB: u16 = 9401;
const DEAD: u16 = 9402;
const METRICS: &str = "127.0.0.1:9464";

const BACKEND: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        code = 404 if self.path.startswith("/missing") else 200
        body = b"web\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

fn config(socket: &std::path::Path) -> String {
    format!(
        "[admin]\nsocket = \"{}\"\n\n[metrics]\naddress = \"{METRICS}\"\n\n\
         [workers]\ncount = 2\nwatchdog_seconds = 2\n\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\n\
         default_action = {{ type = \"forward\", target_group = \"web\" }}\n\
         [[listener.rule]]\npriority = 10\n\
         condition = [{{ field = \"http-header\", http_header_name = \"x-env\", values = [\"beta\"] }}]\n\
         action = {{ type = \"fixed-response\", status_code = 503, message_body = \"beta\" }}\n\
         [[listener.rule]]\npriority = 20\n\
         condition = [{{ field = \"path-pattern\", values = [\"/fixed/*\"] }}]\n\
         action = {{ type = \"fixed-response\", status_code = 404, message_body = \"no\" }}\n\
         [[listener.rule]]\npriority = 30\n\
         condition = [{{ field = \"path-pattern\", values = [\"/dead/*\"] }}]\n\
         action = {{ type = \"forward\", target_group = \"dead\" }}\n\n\
         [[target_group]]\nname = \"web\"\n\
         health_check = {{ path = \"/\", interval_seconds = 5, timeout_seconds = 2 }}\n\
         target = [{{ id = \"127.0.0.1\", port = {WEB} }}]\n\n\
         [[target_group]]\nname = \"dead\"\nhealth_check = {{ enabled = false }}\n\
         target = [{{ id = \"127.0.0.1\", port = {DEAD} }}]\n",
        socket.display()
    )
}

/// `curl` in `ns`: stdout.
fn curl(ns: &Ns, args: &[&str]) -> Result<String> {
    let mut c = ns.command("curl");
    c.args(["-sS", "--max-time", "10"]).args(args);
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(30))?;
    if !out.status.success() {
        bail!(
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The page, scraped with curl: sample (name with labels) → value.
fn scrape(ns: &Ns) -> Result<BTreeMap<String, f64>> {
    let page = curl(ns, &[&format!("http://{METRICS}/metrics")])?;
    if !page.ends_with("# EOF\n") {
        bail!("not an OpenMetrics page:\n{page}");
    }
    Ok(page
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect())
}

fn get(page: &BTreeMap<String, f64>, sample: &str) -> u64 {
    page.get(sample).copied().unwrap_or(0.0) as u64
}

/// Sum of the samples of `family` whose labels contain every `label`.
fn sum(page: &BTreeMap<String, f64>, family: &str, labels: &[&str]) -> u64 {
    page.iter()
        .filter(|(k, _)| {
            k.split('{').next() == Some(family) && labels.iter().all(|l| k.contains(l))
        })
        .map(|(_, v)| *v as u64)
        .sum()
}

/// Sends each request `n` times on one curl (keep-alive): the status codes.
fn send(ns: &Ns, path: &str, n: usize, header: Option<&str>) -> Result<Vec<u16>> {
    let url = format!("http://127.0.0.1:{PORT}{path}");
    let mut args: Vec<&str> = vec!["-w", "%{http_code}\\n"];
    if let Some(h) = header {
        args.extend(["-H", h]);
    }
    for _ in 0..n {
        args.extend(["-o", "/dev/null", url.as_str()]);
    }
    Ok(curl(ns, &args)?
        .lines()
        .map(|l| l.trim().parse().unwrap_or(0))
        .collect())
}

fn admin_metrics(ns: &Ns, socket: &std::path::Path) -> Result<Value> {
    let out = curl(
        ns,
        &[
            "--unix-socket",
            socket.to_str().unwrap(),
            "http://weir/v1/metrics",
        ],
    )?;
    serde_json::from_str(&out).with_context(|| format!("not JSON: {out}"))
}

#[test]
fn scraped_values_equal_what_was_sent() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("met")?;
    let script = TempFile::new("metrics-backend.py", BACKEND);
    let _web = ns.spawn(&["python3", script.path(), &WEB.to_string()])?;
    ns.wait_tcp_listen(WEB, Duration::from_secs(10))?;
    let dir = TempDir(std::env::temp_dir().join(format!("weir-metrics-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let socket = dir.0.join("admin.sock");
    let cfg = TempFile::new("metrics.toml", &config(&socket));
    let mut weir = Weir::spawn(&ns, &cfg, None)?;
    wait_until(Duration::from_secs(30), "weir to serve", || {
        if !weir.proc.is_running() {
            bail!("weir exited:\n{}", weir.log_at_exit());
        }
        Ok(ns.tcp_listening(PORT)? && weir.log().matches("worker ready").count() >= 2)
    })?;
    // The web target's first check makes it healthy (a new target needs one pass).
    wait_until(Duration::from_secs(15), "web healthy", || {
        Ok(scrape(&ns).is_ok_and(|p| {
            get(
                &p,
                "weir_healthy_host_count{target_group=\"web\",zone=\"-\"}",
            ) == 1
        }))
    })?;
    let before = scrape(&ns)?;
    assert_eq!(get(&before, "weir_request_count_total"), 0, "{before:?}");
    assert_eq!(get(&before, "weir_config_generation"), 1);
    assert_eq!(sum(&before, "weir_worker_up", &[]), 2, "{before:?}");

    // The script: N 200s, P target 404s, M fixed 404s, K 502s, L rule 503s.
    let (n, p, m, k, l) = (20, 4, 7, 5, 3);
    let mut codes = send(&ns, "/", n, None)?;
    codes.extend(send(&ns, "/missing", p, None)?);
    codes.extend(send(&ns, "/fixed/x", m, None)?);
    codes.extend(send(&ns, "/dead/x", k, None)?);
    codes.extend(send(&ns, "/", l, Some("x-env: beta"))?);
    let sent = Instant::now();
    let count = |c: u16| codes.iter().filter(|x| **x == c).count() as u64;
    assert_eq!(
        (count(200), count(404), count(502), count(503)),
        (n as u64, (p + m) as u64, k as u64, l as u64),
        "{codes:?}"
    );
    let total = (n + p + m + k + l) as u64;

    // Staleness: until the page shows every request.
    let mut page = scrape(&ns)?;
    while get(&page, "weir_request_count_total") < total {
        if sent.elapsed() > Duration::from_secs(5) {
            bail!("the page never showed {total} requests: {page:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
        page = scrape(&ns)?;
    }
    let staleness = sent.elapsed();
    println!(
        "figures on the page {:.0} ms after the last response (page's own bound: {} s)",
        staleness.as_secs_f64() * 1e3,
        page["weir_metrics_staleness_seconds"]
    );
    // One report period (500 ms) plus the pipe; generous for a loaded machine.
    assert!(staleness < Duration::from_millis(1500), "{staleness:?}");
    // Both workers' last reports include everything once a period has passed (at least
    // 1.1 s, then until the figures below are all there: a loaded machine can take longer).
    std::thread::sleep(Duration::from_millis(1100));
    let t = "target_group=\"web\",target=\"127.0.0.1:9401\",zone=\"-\"";
    let d = "target_group=\"dead\",target=\"127.0.0.1:9402\",zone=\"-\"";
    let want: &[(&str, u64)] = &[
        ("weir_request_count_total", total),
        (
            "weir_http_code_elb_total{code=\"404\",class=\"4XX\"}",
            m as u64,
        ),
        (
            "weir_http_code_elb_total{code=\"502\",class=\"5XX\"}",
            k as u64,
        ),
        (
            "weir_http_code_elb_total{code=\"503\",class=\"5XX\"}",
            l as u64,
        ),
        ("weir_http_code_target_total{class=\"2XX\"}", n as u64),
        ("weir_http_code_target_total{class=\"4XX\"}", p as u64),
        ("weir_http_code_target_total{class=\"5XX\"}", 0),
        ("weir_http_fixed_response_count_total", (m + l) as u64),
        (
            &format!("weir_target_request_count_total{{{t}}}"),
            (n + p) as u64,
        ),
        (
            &format!("weir_target_http_code_total{{{t},class=\"2XX\"}}"),
            n as u64,
        ),
        (
            &format!("weir_target_http_code_total{{{t},class=\"4XX\"}}"),
            p as u64,
        ),
        (
            "weir_target_response_time_seconds_count{target_group=\"web\"}",
            (n + p) as u64,
        ),
        (
            "weir_target_response_time_seconds_bucket{le=\"+Inf\",target_group=\"web\"}",
            (n + p) as u64,
        ),
        (
            &format!(
                "weir_listener_request_count_total{{listener=\"127.0.0.1:{PORT}\",protocol=\"HTTP\"}}"
            ),
            total,
        ),
        (
            "weir_healthy_host_count{target_group=\"web\",zone=\"-\"}",
            1,
        ),
        (
            "weir_unhealthy_host_count{target_group=\"web\",zone=\"-\"}",
            0,
        ),
        (&format!("weir_target_health{{{t},state=\"healthy\"}}"), 1),
        ("weir_active_connection_count", 0),
    ];
    let mut page = scrape(&ns)?;
    let settling = Instant::now();
    while want.iter().any(|(sample, v)| get(&page, sample) != *v)
        && settling.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(100));
        page = scrape(&ns)?;
    }
    for (sample, v) in want {
        assert_eq!(get(&page, sample), *v, "{sample}");
    }
    // Each 502 is a failed connection to the dead target (counted per target and in total).
    let errors = get(
        &page,
        &format!("weir_target_connection_error_count_total{{{d}}}"),
    );
    assert!(errors >= k as u64, "{errors}");
    assert_eq!(
        sum(&page, "weir_target_connection_error_count_total", &[]),
        errors
    );
    // Per worker, summed: the totals.
    assert_eq!(sum(&page, "weir_worker_request_count_total", &[]), total);
    assert_eq!(
        sum(&page, "weir_worker_http_code_elb_total", &["class=\"4XX\""]),
        m as u64
    );
    let conns = get(&page, "weir_new_connection_count_total");
    assert_eq!(
        sum(&page, "weir_worker_new_connection_count_total", &[]),
        conns
    );
    assert_eq!(conns, 5, "one keep-alive connection per curl");
    let bytes = get(&page, "weir_processed_bytes_total");
    assert!(bytes > 0);

    // The same figures as JSON on the admin socket.
    let j = admin_metrics(&ns, &socket)?;
    let l7 = &j["l7"];
    assert_eq!(j["version"], 1, "{j}");
    assert_eq!(l7["totals"]["RequestCount"], total, "{j}");
    assert_eq!(l7["totals"]["HTTPCode_ELB_4XX_Count"], m, "{j}");
    assert_eq!(l7["totals"]["HTTPCode_ELB_5XX_Count"], k + l, "{j}");
    assert_eq!(l7["totals"]["HTTPCode_Target_2XX_Count"], n, "{j}");
    assert_eq!(l7["elb_status_codes"]["502"], k, "{j}");
    assert_eq!(l7["totals"]["TargetConnectionErrorCount"], errors, "{j}");
    let web = l7["target_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["target_group"] == "web")
        .unwrap();
    assert_eq!(web["HealthyHostCount"], 1, "{j}");
    assert_eq!(
        web["targets"][0]["counters"]["RequestCountPerTarget"],
        n + p
    );
    assert_eq!(web["target_response_time"]["count"], n + p, "{j}");
    assert!(j["xdp"].is_null(), "no interface: {j}");

    // A worker SIGKILLed between two scrapes: no counter goes backwards; it comes back.
    let a = scrape(&ns)?;
    let pid = j["l7"]["workers"][0]["pid"]
        .as_u64()
        .context("worker 0 pid")?;
    // SAFETY: kill(2) of a process this test started (through weir).
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_until(Duration::from_secs(10), "worker 0 restarted", || {
        Ok(scrape(&ns).is_ok_and(|p| {
            get(&p, "weir_worker_restarts_total{worker=\"0\"}") == 1
                && get(&p, "weir_worker_up{worker=\"0\"}") == 1
        }))
    })?;
    let b = scrape(&ns)?;
    monotonic(&a, &b);
    assert_eq!(get(&b, "weir_request_count_total"), total);
    let more = 6;
    assert!(send(&ns, "/", more, None)?.iter().all(|c| *c == 200));
    std::thread::sleep(Duration::from_millis(1100));
    let mut c = scrape(&ns)?;
    let settling = Instant::now();
    while (get(&c, "weir_request_count_total") != total + more as u64
        || get(&c, &format!("weir_target_request_count_total{{{t}}}")) != (n + p + more) as u64)
        && settling.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(100));
        c = scrape(&ns)?;
    }
    monotonic(&b, &c);
    assert_eq!(get(&c, "weir_request_count_total"), total + more as u64);
    assert_eq!(
        get(&c, &format!("weir_target_request_count_total{{{t}}}")),
        (n + p + more) as u64
    );

    // The watchdog's kills, per worker: worker 0's SIGKILL was not one; worker 1 hangs
    // (SIGSTOP), goes silent and is killed and restarted by the watchdog.
    assert_eq!(get(&c, "weir_worker_watchdog_kills_total{worker=\"0\"}"), 0);
    let pid = admin_metrics(&ns, &socket)?["l7"]["workers"][1]["pid"]
        .as_u64()
        .context("worker 1 pid")?;
    // SAFETY: kill(2) of a process this test started (through weir).
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    wait_until(Duration::from_secs(10), "the watchdog's kill", || {
        Ok(scrape(&ns).is_ok_and(|p| {
            get(&p, "weir_worker_watchdog_kills_total{worker=\"1\"}") == 1
                && get(&p, "weir_worker_restarts_total{worker=\"1\"}") == 1
                && get(&p, "weir_worker_up{worker=\"1\"}") == 1
        }))
    })?;

    // A reload (SIGHUP, same file) is generation 2.
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(weir.proc.pid() as i32, libc::SIGHUP) };
    wait_until(Duration::from_secs(10), "generation 2", || {
        Ok(scrape(&ns).is_ok_and(|p| get(&p, "weir_config_generation") == 2))
    })?;
    assert!(interrupt(&mut weir.proc)?, "{}", weir.log_at_exit());
    assert!(
        curl(&ns, &[&format!("http://{METRICS}/metrics")]).is_err(),
        "the page is gone with weir"
    );
    Ok(())
}

/// Every counter sample of `a` is in `b`, at least as large.
fn monotonic(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) {
    let counter = |k: &str| {
        let name = k.split('{').next().unwrap_or(k);
        name.ends_with("_total") || name.ends_with("_bucket") || name.ends_with("_count")
    };
    let mut checked = 0;
    for (k, v) in a.iter().filter(|(k, _)| counter(k)) {
        let now = b.get(k).copied().unwrap_or(0.0);
        assert!(now >= *v, "{k} went from {v} to {now}");
        checked += 1;
    }
    assert!(checked > 50, "only {checked} counters");
}

/// `weir run --no-l7` on a veth: the page's XDP counters are `weir stats --json`'s.
#[test]
fn xdp_counters_equal_weir_stats() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let client = lab.add_ns("metxc")?;
    let server = lab.add_ns("metxs")?;
    let (c0, s0) = lab.veth(&client, &server)?;
    c0.addr("10.79.0.1/24")?;
    s0.addr("10.79.0.2/24")?;
    let cfg = TempFile::new(
        "metrics-xdp.toml",
        &format!(
            "[metrics]\naddress = \"{METRICS}\"\n\n\
             [[vip]]\naddress = \"10.79.0.2\"\nport = 8080\n\n\
             [deny]\nsources = [\"10.79.0.66/32\"]\n"
        ),
    );
    let mut weir = start_weir(&server, &s0, &["--config", cfg.path(), "--no-l7"])?;
    wait_until(Duration::from_secs(10), "the metrics page", || {
        Ok(scrape(&server).is_ok())
    })?;
    // Traffic: to the VIP (nothing listens: RST), not to any VIP, from a deny-listed source.
    let _ = client.exec(&["curl", "-s", "--max-time", "1", "http://10.79.0.2:8080/"]);
    let _ = client.exec(&["curl", "-s", "--max-time", "1", "http://10.79.0.2:9/"]);
    c0.addr("10.79.0.66/24").ok();
    let _ = client.exec(&[
        "curl",
        "-s",
        "--max-time",
        "1",
        "--interface",
        "10.79.0.66",
        "http://10.79.0.2:8080/",
    ]);
    // Between two equal `weir stats` readings, the page must show the same numbers.
    let mut compared = false;
    for _ in 0..20 {
        let s1 = stats(&server, &s0)?;
        let page = scrape(&server)?;
        let s2 = stats(&server, &s0)?;
        if s1["stats"] != s2["stats"] || s1["vips"] != s2["vips"] {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let iface = format!("interface=\"{}\"", s0.name());
        let mut nonzero = 0;
        for (decision, c) in s1["stats"].as_object().unwrap() {
            let pk = c["packets"].as_u64().unwrap();
            let by = c["bytes"].as_u64().unwrap();
            let got_p = sum(
                &page,
                "weir_xdp_packets_total",
                &[&iface, &format!("decision=\"{decision}\"")],
            );
            let got_b = sum(
                &page,
                "weir_xdp_bytes_total",
                &[&iface, &format!("decision=\"{decision}\"")],
            );
            assert_eq!((got_p, got_b), (pk, by), "{decision}");
            nonzero += usize::from(pk > 0);
        }
        assert!(nonzero >= 3, "{s1}");
        assert!(
            packets(&s1, "pass_vip") > 0 && packets(&s1, "drop_denied") > 0,
            "{s1}"
        );
        for v in s1["vips"].as_array().unwrap() {
            let vip = format!(
                "vip=\"{}:{}/{}\"",
                v["address"].as_str().unwrap(),
                v["port"],
                v["protocol"].as_str().unwrap()
            );
            assert_eq!(
                sum(&page, "weir_xdp_vip_packets_total", &[&vip]),
                v["packets"].as_u64().unwrap(),
                "{vip}"
            );
            if let Some(syn) = v.get("syn") {
                for (name, fam) in [
                    ("syn_seen", "weir_xdp_syn_seen_total"),
                    ("cookies_sent", "weir_xdp_syn_cookies_sent_total"),
                    ("cookie_acks_valid", "weir_xdp_syn_cookie_acks_valid_total"),
                    ("rate_limited", "weir_xdp_syn_rate_limited_total"),
                ] {
                    assert_eq!(
                        sum(&page, fam, &[&vip]),
                        syn[name].as_u64().unwrap(),
                        "{fam}"
                    );
                }
            }
        }
        assert_eq!(get(&page, "weir_config_generation"), 1);
        assert!(
            !page.keys().any(|k| k.starts_with("weir_request_count")),
            "--no-l7: no L7 figures"
        );
        compared = true;
        break;
    }
    assert!(compared, "weir stats never held still");
    assert!(interrupt(&mut weir)?);
    Ok(())
}
