//! DNS discovery (issue #12) with the real `weir run`, its workers, dnsmasq (Debian's) serving
//! SRV and A records, and python3 targets, in a network namespace: traffic reaches the targets
//! the SRV records name; a record change (one dropped, a third added) is picked up within the
//! TTL and the retry — the new target takes traffic after passing its health check, the dropped
//! one drains — with no failed client request; DNS going away keeps the last targets. A records
//! from a hosts file dnsmasq re-reads at SIGHUP: a removed address drains; NXDOMAIN keeps the
//! last target for `hold_empty_seconds`, then the group is empty (503). Throughout, the
//! operator's view (`weir targets discovery`, `GET /v1/discovery`, the `weir_discovery_*`
//! metrics) says the targets in force, each resolution's outcome (answer, failed with its
//! error, empty held then empty), the failures in a row rising while DNS is gone, and the
//! generation each change made; a group without discovery is answered `DiscoveryNotConfigured`.
//! Needs root.
//!
//! dnsmasq does not re-read `srv-host` lines on SIGHUP, so an SRV change is a new dnsmasq on
//! the same port with the new records (the few milliseconds between are a DNS failure weir rides
//! out like any other).

mod common;

use std::{
    collections::BTreeMap,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use common::{http::Load, logged::Weir, *};
use serde_json::Value;
use weir_tests::lab::{Lab, Ns, Proc, wait_until};

const PORT: u16 = 8080;
const DNS: &str = "127.0.0.1:5353";
/// weir's Prometheus page.
const METRICS: &str = "127.0.0.1:9464";
/// The records' TTL (dnsmasq's `local-ttl`) and weir's floor: resolved every second.
const TTL: u64 = 1;
/// ALB's least check interval; one pass makes a new target healthy.
const INTERVAL: u64 = 5;

const BACKEND: &str = r#"
import http.server, sys
addr, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body are two sends: with Nagle the body waits for weir's delayed ACK
    # on a kept-alive connection (~15 ms a request instead of well under 1 ms).
    disable_nagle_algorithm = True
    def do_GET(self):
        body = name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
S((addr, port), H).serve_forever()
"#;

/// The targets: name, address, port.
const TARGETS: [(&str, &str, u16); 3] = [
    ("a", "127.0.0.11", 9301),
    ("b", "127.0.0.12", 9302),
    ("c", "127.0.0.13", 9303),
];

fn target(name: &str) -> (&'static str, &'static str, u16) {
    *TARGETS
        .iter()
        .find(|t| t.0 == name)
        .expect("a known target")
}

/// dnsmasq in `ns` on [`DNS`], authoritative for `svc.test`, serving `_web._tcp.svc.test`'s
/// SRV records for `names` and each name's A record; killed on drop.
struct Dnsmasq {
    proc: Option<Proc>,
    _conf: TempFile,
}

impl Dnsmasq {
    fn start(ns: &Ns, names: &[&str]) -> Result<Dnsmasq> {
        let mut conf = String::new();
        for n in names {
            let (_, ip, port) = target(n);
            conf += &format!(
                "srv-host=_web._tcp.svc.test,{n}.svc.test,{port}\nhost-record={n}.svc.test,{ip}\n"
            );
        }
        Dnsmasq::with(ns, &conf)
    }

    /// dnsmasq on [`DNS`], authoritative for `svc.test` (other names there are NXDOMAIN),
    /// TTL [`TTL`], with `records` (dnsmasq.conf lines).
    fn with(ns: &Ns, records: &str) -> Result<Dnsmasq> {
        let conf = format!(
            "port=5353\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\n\
             no-poll\npid-file=\nlocal=/svc.test/\nlocal-ttl={TTL}\nlog-queries\n{records}"
        );
        let conf = TempFile::new("dnsmasq.conf", &conf);
        let mut c = ns.command("dnsmasq");
        c.args(["--keep-in-foreground", "--log-facility=-", "--user=root"])
            .arg(format!("--conf-file={}", conf.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let proc = ns.spawn_command(c)?;
        let d = Dnsmasq {
            proc: Some(proc),
            _conf: conf,
        };
        wait_until(
            Duration::from_secs(10),
            "dnsmasq to listen on udp 5353",
            || Ok(ns.exec(&["ss", "-Hlun", "sport = :5353"])?.contains("5353")),
        )?;
        Ok(d)
    }

    /// SIGHUP: dnsmasq re-reads its `addn-hosts` files.
    fn hup(&self) -> Result<()> {
        let p = self.proc.as_ref().context("dnsmasq runs")?;
        // SAFETY: plain kill(2) on a child pid we own.
        if unsafe { libc::kill(p.pid() as i32, libc::SIGHUP) } != 0 {
            bail!("kill -HUP dnsmasq: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        if let Some(mut p) = self.proc.take() {
            p.kill()?;
        }
        Ok(())
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn start_weir(ns: &Ns, cfg: &TempFile) -> Result<Weir> {
    let mut w = Weir::spawn(ns, cfg, Some("info"))?;
    w.wait_workers(2)?;
    Ok(w)
}

fn config() -> String {
    config_with(
        80,
        &format!(
            "{{ name = \"_web._tcp.svc.test\", type = \"SRV\", resolvers = [\"{DNS}\"], timeout_seconds = 1, ttl_floor_seconds = {TTL}, ttl_ceiling_seconds = 5, hold_empty_seconds = 5 }}"
        ),
    )
}

/// weir's file: one listener forwarding to `web` (`port`, checks every [`INTERVAL`], 5 s
/// deregistration delay) whose `discovery` is `discovery`; a group `static` without discovery;
/// the metrics page on [`METRICS`].
fn config_with(port: u16, discovery: &str) -> String {
    format!(
        r#"[workers]
count = 2

[metrics]
address = "{METRICS}"

[load_balancer]
max_connections_per_worker = 1000

[[listener]]
address = "127.0.0.1"
port = {PORT}
default_action = {{ type = "forward", target_group = "web" }}

[[target_group]]
name = "web"
port = {port}
deregistration_delay.timeout_seconds = 5
health_check = {{ interval_seconds = {INTERVAL}, timeout_seconds = 2, healthy_threshold_count = 2, unhealthy_threshold_count = 2 }}
discovery = {discovery}

[[target_group]]
name = "static"
port = 80
target = [{{ id = "127.0.0.1" }}]
"#
    )
}

/// `weir targets discovery --json` in `ns`: `web`'s record (the only discovering group).
fn discovery(ns: &Ns) -> Result<Value> {
    let (ok, out, err) = weir_once(ns, &["targets", "discovery", "--json"])?;
    if !ok {
        bail!("weir targets discovery: {err}");
    }
    let v: Value = serde_json::from_str(&out)?;
    let groups = v["target_groups"].as_array().context("target_groups")?;
    if groups.len() != 1 || groups[0]["target_group"] != "web" {
        bail!("only web discovers: {v}");
    }
    Ok(groups[0].clone())
}

/// Waits until `web`'s discovery record satisfies `ok`; returns it.
fn wait_discovery(
    ns: &Ns,
    within: Duration,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let mut last = Value::Null;
    wait_until(within, what, || {
        std::thread::sleep(Duration::from_millis(100));
        last = discovery(ns)?;
        Ok(ok(&last))
    })
    .with_context(|| format!("last seen: {last}"))?;
    Ok(last)
}

/// `web`'s discovered targets in the record, sorted.
fn record_targets(r: &Value) -> Vec<String> {
    let mut v: Vec<String> = r["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some(t.as_str()?.to_string()))
        .collect();
    v.sort();
    v
}

/// The metrics page's `weir_discovery_*` samples (name with labels → value).
fn discovery_metrics(ns: &Ns) -> Result<BTreeMap<String, f64>> {
    let page = ns.exec(&[
        "curl",
        "-sS",
        "--max-time",
        "5",
        &format!("http://{METRICS}/metrics"),
    ])?;
    Ok(page
        .lines()
        .filter(|l| l.starts_with("weir_discovery_"))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect())
}

/// The operator's view of a group that does not discover, and of one that does not exist.
fn check_refusals(ns: &Ns) -> Result<()> {
    for (group, code) in [
        ("static", "DiscoveryNotConfigured"),
        ("nope", "TargetGroupNotFound"),
    ] {
        let (ok, out, err) = weir_once(
            ns,
            &["targets", "discovery", "--target-group", group, "--json"],
        )?;
        eprintln!(
            "weir targets discovery --target-group {group}: {}",
            err.trim()
        );
        assert!(!ok, "{group}: {out}");
        let v: Value = serde_json::from_str(&out)?;
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(err.contains(code) && err.contains(group), "{err}");
    }
    Ok(())
}

/// `web`'s targets in the health view: `ip:port` → state.
fn states(ns: &Ns) -> BTreeMap<String, String> {
    let Ok(v) = health_view(ns) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for g in v["target_groups"].as_array().into_iter().flatten() {
        if g["name"] != "web" {
            continue;
        }
        for t in g["targets"].as_array().into_iter().flatten() {
            out.insert(
                format!("{}:{}", t["id"].as_str().unwrap_or(""), t["port"]),
                t["state"].as_str().unwrap_or("").to_string(),
            );
        }
    }
    out
}

fn addr(name: &str) -> String {
    let (_, ip, port) = target(name);
    format!("{ip}:{port}")
}

/// Waits until `web`'s targets in the view are exactly `want` (name → state).
fn wait_targets(ns: &Ns, want: &[(&str, &str)], within: Duration) -> Result<Duration> {
    let t0 = Instant::now();
    let want: BTreeMap<String, String> =
        want.iter().map(|(n, s)| (addr(n), s.to_string())).collect();
    wait_until(within, &format!("web's targets {want:?}"), || {
        std::thread::sleep(Duration::from_millis(100));
        Ok(states(ns) == want)
    })
    .with_context(|| format!("last seen: {:?}", states(ns)))?;
    Ok(t0.elapsed())
}

/// Waits until `name`'s state in the view is `state` (`None`: not in the view).
fn wait_state(ns: &Ns, name: &str, state: Option<&str>, within: Duration) -> Result<Duration> {
    wait_addr(ns, &addr(name), state, within)
}

/// Waits until the target `ip:port`'s state in the view is `state` (`None`: not in the view).
fn wait_addr(ns: &Ns, target: &str, state: Option<&str>, within: Duration) -> Result<Duration> {
    let t0 = Instant::now();
    wait_until(within, &format!("{target} {state:?}"), || {
        std::thread::sleep(Duration::from_millis(50));
        Ok(states(ns).get(target).map(String::as_str) == state)
    })
    .with_context(|| format!("last seen: {:?}", states(ns)))?;
    Ok(t0.elapsed())
}

/// An `Instant` of this process as the UTC seconds of the day (the log's clock).
fn wall(t: Instant) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let back = Instant::now().saturating_duration_since(t).as_secs_f64();
    (now - back).rem_euclid(86_400.0)
}

/// The time (UTC seconds of the day) of the last log line naming `target` and `what`.
fn log_time(log: &str, target: &str, what: &str) -> Result<f64> {
    let line = log
        .lines()
        .rfind(|l| l.contains(&format!("target={target}")) && l.contains(what))
        .with_context(|| format!("no log line for {target} {what}"))?;
    time_of_day(line).with_context(|| format!("bad timestamp in {line}"))
}

/// `weir targets list --target-group web --json` in `ns`: `ip:port` → the target's entry.
fn listed(ns: &Ns) -> Result<BTreeMap<String, Value>> {
    let (ok, out, err) = weir_once(ns, &["targets", "list", "--target-group", "web", "--json"])?;
    if !ok {
        bail!("weir targets list: {err}");
    }
    let v: Value = serde_json::from_str(&out)?;
    Ok(v["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let at = format!("{}:{}", t["id"].as_str().unwrap_or(""), t["port"]);
            (at, t.clone())
        })
        .collect())
}

/// The `web` group's targets in force: `ip:port` → source.
fn sources(ns: &Ns) -> Result<BTreeMap<String, String>> {
    Ok(listed(ns)?
        .into_iter()
        .map(|(at, t)| (at, t["source"].as_str().unwrap_or("").to_string()))
        .collect())
}

#[test]
fn srv_records_are_followed_through_health_checks_and_draining() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("disc")?;
    let py = TempFile::new("backend.py", BACKEND);
    // Every target runs all along: only DNS decides which ones weir uses.
    let mut backends = Vec::new();
    for (name, ip, port) in TARGETS {
        let mut c = ns.command("python3");
        c.args([py.path(), ip, &port.to_string(), name])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        backends.push(ns.spawn_command(c)?);
        ns.wait_tcp_listen(port, Duration::from_secs(10))?;
    }
    let mut dns = Dnsmasq::start(&ns, &["a", "b"])?;
    let cfg = TempFile::new("discovery.toml", &config());
    let started = Instant::now();
    let mut weir = start_weir(&ns, &cfg)?;

    // Discovered, checked, healthy: a new target needs one pass (≤ one interval).
    let took = wait_targets(
        &ns,
        &[("a", "healthy"), ("b", "healthy")],
        Duration::from_secs(INTERVAL + 10),
    )?;
    eprintln!(
        "a and b discovered and healthy {:.1?} after weir started",
        took + (Instant::now() - started - took)
    );
    let listed = sources(&ns)?;
    eprintln!("weir targets list: {listed:?}");
    assert_eq!(
        listed.get(&addr("a")).map(String::as_str),
        Some("discovered")
    );
    assert_eq!(
        listed.get(&addr("b")).map(String::as_str),
        Some("discovered")
    );
    // The operator's view: what was asked, what it gave, the generation it made.
    let rec = wait_discovery(&ns, Duration::from_secs(5), "a and b in force", |r| {
        record_targets(r) == [addr("a"), addr("b")]
    })?;
    eprintln!("weir targets discovery --json: {rec}");
    assert_eq!(
        (&rec["name"], &rec["type"]),
        (&"_web._tcp.svc.test".into(), &"SRV".into())
    );
    assert_eq!(rec["resolvers"], serde_json::json!([DNS]));
    assert_eq!(rec["last_resolution"]["outcome"], "answer", "{rec}");
    assert_eq!(rec["last_resolution"]["found"], 2, "{rec}");
    assert_eq!(rec["consecutive_failures"], 0);
    let first_gen = rec["last_change"]["generation"]
        .as_u64()
        .context("a change")?;
    assert!(
        first_gen >= 2,
        "discovery's change made a generation: {rec}"
    );
    let (last_ms, next_ms) = (
        rec["last_resolution"]["time_unix_ms"]
            .as_u64()
            .context("time")?,
        rec["next_resolution_unix_ms"].as_u64().context("next")?,
    );
    assert!(
        next_ms > last_ms && next_ms <= last_ms + 5_000,
        "next within the TTL ceiling: {rec}"
    );
    let (ok, text, err) = weir_once(&ns, &["targets", "discovery", "--target-group", "web"])?;
    eprintln!("weir targets discovery --target-group web:\n{text}");
    assert!(ok, "{err}");
    for want in [
        format!("target group web: SRV _web._tcp.svc.test via {DNS} (port 80)"),
        "answer, 2 targets found".into(),
        "failures in a row: 0".into(),
        format!("last change:      generation {first_gen},"),
        format!("    {}\n    {}\n", addr("a"), addr("b")),
    ] {
        assert!(text.contains(&want), "{want:?} in\n{text}");
    }
    check_refusals(&ns)?;

    let load = Load::start(&ns, PORT);
    std::thread::sleep(Duration::from_secs(3));
    let before = load.snapshot(|s| s.names_between(started, Instant::now()));
    eprintln!("before the change: {before:?}");
    assert!(before.get("a").is_some_and(|&n| n > 0) && before.get("b").is_some_and(|&n| n > 0));
    assert_eq!(before.get("c"), None, "c is not in DNS yet");

    // The records change: a dropped, c added.
    let changed = Instant::now();
    dns.stop()?;
    let mut dns = Dnsmasq::start(&ns, &["b", "c"])?;
    let c_healthy = wait_state(
        &ns,
        "c",
        Some("healthy"),
        Duration::from_secs(TTL + 2 + INTERVAL + 5),
    )?;
    let a_state = states(&ns).get(&addr("a")).cloned();
    let a_gone = wait_state(&ns, "a", None, Duration::from_secs(15))?;
    eprintln!(
        "record change: c healthy in the view {c_healthy:.1?} later (a then {a_state:?}), a gone from it {a_gone:.1?} later"
    );
    std::thread::sleep(Duration::from_secs(3));
    let (c_first, a_last) = load.snapshot(|s| (s.first_after("c", changed), s.last("a")));
    let c_first = c_first.context("c never took traffic")?;
    let a_last = a_last.context("a never took traffic")?;
    let c_passed = log_time(&weir.log(), &addr("c"), "to=healthy")?;
    let c_first_wall = wall(c_first);
    eprintln!(
        "c's first answer {:.1?} after the change, {:+.3} s from its passing check; a's last {:.1?} after the change",
        c_first - changed,
        c_first_wall - c_passed,
        a_last.saturating_duration_since(changed)
    );
    assert!(
        c_first_wall >= c_passed - 0.005,
        "c takes traffic only after passing its check"
    );
    assert!(
        c_first - changed <= Duration::from_secs(TTL + 2 + INTERVAL + 2),
        "c takes traffic within TTL + retry + one check interval"
    );
    let log = weir.log();
    assert!(
        log.contains("discovered targets changed"),
        "the change is logged:\n{log}"
    );
    let listed = sources(&ns)?;
    assert_eq!(
        listed.get(&addr("c")).map(String::as_str),
        Some("discovered")
    );
    assert!(!listed.contains_key(&addr("a")), "{listed:?}");
    let rec = discovery(&ns)?;
    assert_eq!(record_targets(&rec), [addr("b"), addr("c")], "{rec}");
    let changed_gen = rec["last_change"]["generation"]
        .as_u64()
        .context("a change")?;
    assert!(changed_gen > first_gen, "{rec}");
    let before_failing = discovery_metrics(&ns)?;
    eprintln!("metrics before DNS goes: {before_failing:?}");
    assert_eq!(
        before_failing.get("weir_discovery_targets{target_group=\"web\"}"),
        Some(&2.0)
    );
    let answers =
        before_failing["weir_discovery_resolutions_total{target_group=\"web\",outcome=\"answer\"}"];
    assert!(answers >= 2.0, "{before_failing:?}");

    // DNS goes away: the last targets stay, and weir says so; the view shows the failures
    // rising (retried after 1, 2, 4 … s) and the targets and generation unchanged.
    let dns_gone = Instant::now();
    dns.stop()?;
    let failing = wait_discovery(&ns, Duration::from_secs(8), "a failed resolution", |r| {
        r["last_resolution"]["outcome"] == "failed"
    })?;
    let f1 = failing["consecutive_failures"].as_u64().unwrap_or(0);
    eprintln!("{:.1?} after DNS went: {failing}", dns_gone.elapsed());
    assert!(f1 >= 1);
    assert!(
        failing["last_resolution"]["error"]
            .as_str()
            .is_some_and(|e| e.ends_with("no answer within 2 s (2 × timeout_seconds)")),
        "the error is said, with the bound (timeout_seconds = 1): {failing}"
    );
    std::thread::sleep(Duration::from_secs(10).saturating_sub(dns_gone.elapsed()));
    let later = wait_discovery(
        &ns,
        Duration::from_secs(10),
        "more failures in a row",
        |r| r["consecutive_failures"].as_u64().unwrap_or(0) > f1,
    )?;
    let f2 = later["consecutive_failures"].as_u64().unwrap_or(0);
    eprintln!(
        "{:.1?} after DNS went: {f2} failures in a row (was {f1}), next resolution in {} ms",
        dns_gone.elapsed(),
        later["next_resolution_unix_ms"].as_u64().unwrap_or(0) as i64
            - later["last_resolution"]["time_unix_ms"]
                .as_u64()
                .unwrap_or(0) as i64
    );
    assert_eq!(record_targets(&later), [addr("b"), addr("c")], "{later}");
    assert_eq!(later["last_change"]["generation"], changed_gen, "{later}");
    assert_eq!(later["last_resolution"]["outcome"], "failed", "{later}");
    let (_, text, _) = weir_once(&ns, &["targets", "discovery"])?;
    eprintln!("weir targets discovery:\n{text}");
    assert!(
        text.contains("FAILED (") && text.contains("failures in a row: "),
        "{text}"
    );
    let m = discovery_metrics(&ns)?;
    eprintln!("metrics with DNS gone: {m:?}");
    let key = |o: &str| {
        format!("weir_discovery_resolutions_total{{target_group=\"web\",outcome=\"{o}\"}}")
    };
    assert!(m[&key("failed")] >= f2 as f64, "{m:?}");
    assert!(m[&key("answer")] >= answers, "{m:?}");
    assert!(
        m["weir_discovery_consecutive_failures{target_group=\"web\"}"] >= f2 as f64,
        "{m:?}"
    );
    assert_eq!(m["weir_discovery_targets{target_group=\"web\"}"], 2.0);
    let since =
        load.snapshot(|s| s.names_between(dns_gone + Duration::from_secs(7), Instant::now()));
    eprintln!(
        "DNS gone for 10 s: last 3 s {since:?}; view {:?}",
        states(&ns)
    );
    assert!(since.get("b").is_some_and(|&n| n > 0) && since.get("c").is_some_and(|&n| n > 0));
    assert_eq!(since.get("a"), None);
    assert_eq!(
        states(&ns),
        [(addr("b"), "healthy".into()), (addr("c"), "healthy".into())].into()
    );
    let log = weir.log();
    assert!(
        log.contains("DNS resolution failed") && log.contains("discovered targets stay"),
        "the failure is a warning:\n{log}"
    );

    let seen = load.stop();
    let totals = seen.names_between(started, Instant::now());
    eprintln!(
        "totals: {} answered {totals:?}, {} failed {:?}",
        seen.ok.len(),
        seen.errors.len(),
        seen.errors.iter().take(5).collect::<Vec<_>>()
    );
    assert!(seen.errors.is_empty(), "no client request failed");
    assert!(
        seen.last("a")
            .is_some_and(|t| t < changed + Duration::from_secs(10)),
        "a takes no request after it left DNS and drained"
    );
    let clean = interrupt(&mut weir.proc);
    let log = weir.log_at_exit();
    let tail: Vec<&str> = log.lines().rev().take(25).collect();
    assert!(
        clean.as_ref().is_ok_and(|c| *c),
        "weir exits cleanly at SIGINT ({clean:?}): {tail:#?}"
    );
    drop(backends);
    Ok(())
}

/// `type = "A"` from a hosts file dnsmasq re-reads at SIGHUP: both addresses take traffic on
/// the group's port; one removed drains; the name removed (NXDOMAIN) keeps the last target for
/// `hold_empty_seconds`, then the group has none.
#[test]
fn a_records_and_nxdomain_after_the_hold() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    const GROUP_PORT: u16 = 9400;
    const HOLD: u64 = 4;
    let lab = Lab::new()?;
    let ns = lab.add_ns("discnx")?;
    let py = TempFile::new("backend.py", BACKEND);
    let mut backends = Vec::new();
    for (name, ip) in [("d", "127.0.0.21"), ("e", "127.0.0.22")] {
        let mut c = ns.command("python3");
        c.args([py.path(), ip, &GROUP_PORT.to_string(), name])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        backends.push(ns.spawn_command(c)?);
    }
    ns.wait_tcp_listen(GROUP_PORT, Duration::from_secs(10))?;
    let (d, e) = (
        format!("127.0.0.21:{GROUP_PORT}"),
        format!("127.0.0.22:{GROUP_PORT}"),
    );
    let hosts = TempFile::new(
        "hosts",
        "127.0.0.21 web.svc.test\n127.0.0.22 web.svc.test\n",
    );
    let dns = Dnsmasq::with(&ns, &format!("addn-hosts={}\n", hosts.path()))?;
    let cfg = TempFile::new(
        "discovery-a.toml",
        &config_with(
            GROUP_PORT,
            &format!(
                "{{ name = \"web.svc.test\", type = \"A\", resolvers = [\"{DNS}\"], ttl_floor_seconds = {TTL}, ttl_ceiling_seconds = 5, hold_empty_seconds = {HOLD} }}"
            ),
        ),
    );
    let started = Instant::now();
    let mut weir = start_weir(&ns, &cfg)?;
    wait_addr(&ns, &d, Some("healthy"), Duration::from_secs(INTERVAL + 10))?;
    wait_addr(&ns, &e, Some("healthy"), Duration::from_secs(INTERVAL + 10))?;
    let load = Load::start(&ns, PORT);
    std::thread::sleep(Duration::from_secs(2));
    let both = load.snapshot(|s| s.names_between(started, Instant::now()));
    eprintln!("A records: {both:?}");
    assert!(both.get("d").is_some_and(|&n| n > 0) && both.get("e").is_some_and(|&n| n > 0));

    // d's address leaves the hosts file: dnsmasq re-reads it at SIGHUP.
    std::fs::write(&hosts.0, "127.0.0.22 web.svc.test\n")?;
    let dropped = Instant::now();
    dns.hup()?;
    let gone = wait_addr(&ns, &d, None, Duration::from_secs(TTL + 2 + 5 + 3))?;
    let d_last = load.snapshot(|s| s.last("d")).context("d took traffic")?;
    eprintln!(
        "d's record removed: its last request {:.1?} after, gone from the view (drained) {gone:.1?} after",
        d_last.saturating_duration_since(dropped)
    );
    assert!(d_last < dropped + Duration::from_secs(TTL + 2));

    // The name itself goes: NXDOMAIN. e stays for the hold, then the group is empty.
    std::fs::write(&hosts.0, "")?;
    let nx = Instant::now();
    dns.hup()?;
    let held = wait_discovery(
        &ns,
        Duration::from_secs(TTL + 2),
        "the empty answer held",
        |r| r["last_resolution"]["outcome"] == "empty_held",
    )?;
    eprintln!("NXDOMAIN {:.1?} later: {held}", nx.elapsed());
    assert_eq!(held["last_resolution"]["nxdomain"], true, "{held}");
    assert_eq!(
        record_targets(&held),
        std::slice::from_ref(&e),
        "held: {held}"
    );
    let until = held["last_resolution"]["held_until_unix_ms"]
        .as_u64()
        .context("until")?;
    let at = held["last_resolution"]["time_unix_ms"]
        .as_u64()
        .context("time")?;
    assert!(until > at && until <= at + HOLD * 1000, "{held}");
    std::thread::sleep(Duration::from_secs(HOLD - 1).saturating_sub(nx.elapsed()));
    let held = load.snapshot(|s| (s.names_between(nx, Instant::now()), s.errors.len()));
    eprintln!(
        "NXDOMAIN, within the hold: {held:?}; view {:?}",
        states(&ns)
    );
    assert!(
        held.0.get("e").is_some_and(|&n| n > 0),
        "e is kept during the hold"
    );
    assert_eq!(held.1, 0, "no request failed so far");
    wait_addr(&ns, &e, None, Duration::from_secs(HOLD + TTL + 5))?;
    let emptied = Instant::now() - nx;
    let rec = wait_discovery(
        &ns,
        Duration::from_secs(TTL + 2),
        "the empty answer applied",
        |r| r["last_resolution"]["outcome"] == "empty",
    )?;
    eprintln!("after the hold: {rec}");
    assert!(record_targets(&rec).is_empty(), "{rec}");
    assert!(
        rec["resolutions"]["empty"].as_u64().unwrap_or(0) >= 2,
        "{rec}"
    );
    let e_last = load.snapshot(|s| s.last("e")).context("e took traffic")?;
    std::thread::sleep(Duration::from_secs(1));
    let seen = load.stop();
    let after: Vec<&String> = seen
        .errors
        .iter()
        .filter(|(t, _)| *t > e_last)
        .map(|(_, e)| e)
        .collect();
    eprintln!(
        "e's last request {:.1?} after NXDOMAIN (hold {HOLD} s, TTL {TTL} s; gone from the view by {emptied:.1?}); then {} requests failed, e.g. {:?}; totals {} answered, {} failed",
        e_last.saturating_duration_since(nx),
        after.len(),
        after.first(),
        seen.ok.len(),
        seen.errors.len()
    );
    assert!(e_last >= nx + Duration::from_secs(HOLD - 1), "held");
    assert!(
        e_last <= nx + Duration::from_secs(HOLD + TTL + 3),
        "then removed"
    );
    assert!(
        seen.errors
            .iter()
            .all(|(t, _)| *t > nx + Duration::from_secs(HOLD - 1)),
        "requests fail only once the group is empty"
    );
    assert!(
        !after.is_empty() && after.iter().all(|e| e.contains("status 503")),
        "an empty group answers 503: {after:?}"
    );
    let log = weir.log();
    assert!(log.contains("DNS says the name has no targets"), "{log}");
    let clean = interrupt(&mut weir.proc);
    assert!(
        clean.as_ref().is_ok_and(|c| *c),
        "weir exits cleanly ({clean:?})"
    );
    drop(backends);
    Ok(())
}

/// The `web` group's targets in force: `ip:port` → (weight, priority).
fn weights(ns: &Ns) -> Result<BTreeMap<String, (u64, u64)>> {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    Ok(listed(ns)?
        .into_iter()
        .map(|(at, t)| (at, (n(&t["weight"]), n(&t["priority"]))))
        .collect())
}

/// `n` requests in turn on one keep-alive connection to the listener (a new one after a
/// failure): how many each target answered, and the failures. One connection is one worker,
/// so round robin's split over `n` is exact (each worker keeps its own position, from a random
/// start: requests spread over workers split unevenly until there are many).
fn tally(ns: &Ns, n: usize) -> Result<(BTreeMap<String, usize>, Vec<String>)> {
    use std::{io::BufReader, net::TcpStream};
    let _in = ns.enter()?;
    let (mut names, mut errors) = (BTreeMap::new(), Vec::new());
    let mut conn: Option<BufReader<TcpStream>> = None;
    for _ in 0..n {
        let r = match conn.as_mut() {
            Some(r) => r,
            None => match TcpStream::connect(("127.0.0.1", PORT)) {
                Ok(s) => {
                    // Without, `get`'s several small writes wait on delayed ACKs (40 ms).
                    s.set_nodelay(true)?;
                    s.set_read_timeout(Some(Duration::from_secs(10)))?;
                    conn.insert(BufReader::new(s))
                }
                Err(e) => {
                    errors.push(format!("connect: {e}"));
                    continue;
                }
            },
        };
        match common::http::get(r, "/", false) {
            Ok(name) => *names.entry(name).or_default() += 1,
            Err(e) => {
                errors.push(format!("{e:#}"));
                conn = None;
            }
        }
    }
    Ok((names, errors))
}

/// SRV priority and weight: `a` (priority 10, weight 30) and `b` (10, 10) share the requests
/// 3:1 (weights 999 and 333 on weir's 0–999 scale, per priority), `c` (20, 5: weight 999, alone
/// in its priority) is a backup that takes requests only while no target of priority 10 is
/// healthy, and none again once they are back.
#[test]
fn srv_priority_and_weight_pick_the_targets() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    // Round robin over weights 999 and 333: exactly 999 a and 333 b in 1332 requests.
    const N: usize = 1332;
    let lab = Lab::new()?;
    let ns = lab.add_ns("discpw")?;
    let py = TempFile::new("backend.py", BACKEND);
    let spawn = |name: &str| -> Result<Proc> {
        let (name, ip, port) = target(name);
        let mut c = ns.command("python3");
        c.args([py.path(), ip, &port.to_string(), name])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let p = ns.spawn_command(c)?;
        ns.wait_tcp_listen(port, Duration::from_secs(10))?;
        Ok(p)
    };
    let mut backends: BTreeMap<&str, Proc> = BTreeMap::new();
    for n in ["a", "b", "c"] {
        backends.insert(n, spawn(n)?);
    }
    let mut records = String::new();
    for (n, prio, weight) in [("a", 10, 30), ("b", 10, 10), ("c", 20, 5)] {
        let (_, ip, port) = target(n);
        records += &format!(
            "srv-host=_web._tcp.svc.test,{n}.svc.test,{port},{prio},{weight}\nhost-record={n}.svc.test,{ip}\n"
        );
    }
    let _dns = Dnsmasq::with(&ns, &records)?;
    let cfg = TempFile::new("discovery-srv-pw.toml", &config());
    let started = Instant::now();
    let mut weir = start_weir(&ns, &cfg)?;
    let all_healthy = [("a", "healthy"), ("b", "healthy"), ("c", "healthy")];
    wait_targets(&ns, &all_healthy, Duration::from_secs(INTERVAL + 10))?;
    eprintln!(
        "a, b and c discovered and healthy {:.1?} after weir started",
        started.elapsed()
    );

    // The weights weir gave them, per priority, and the split they make.
    let listed = weights(&ns)?;
    let (split, errors) = tally(&ns, N)?;
    eprintln!("weir targets list: weights {listed:?}; {N} requests: {split:?}, failed {errors:?}");
    assert_eq!(
        listed,
        [
            (addr("a"), (999, 10)),
            (addr("b"), (333, 10)),
            (addr("c"), (999, 20))
        ]
        .into(),
        "SRV weights 30 and 10 (priority 10) → 999 and 333; 5 alone (priority 20) → 999"
    );
    assert!(errors.is_empty(), "no request failed: {errors:?}");
    assert_eq!(split.get("c"), None, "c is a backup: {split:?}");
    let (a, b) = (
        split.get("a").copied().unwrap_or(0),
        split.get("b").copied().unwrap_or(0),
    );
    assert_eq!(a + b, N);
    assert!(a.abs_diff(999) <= 13, "a:b is 3:1 (999:333): {split:?}");

    // Priority 10 goes down: c takes every request.
    let down = Instant::now();
    for n in ["a", "b"] {
        backends.remove(n).context("running")?.kill()?;
    }
    wait_targets(
        &ns,
        &[("a", "unhealthy"), ("b", "unhealthy"), ("c", "healthy")],
        Duration::from_secs(3 * INTERVAL + 5),
    )?;
    eprintln!(
        "a and b unhealthy {:.1?} after they stopped",
        down.elapsed()
    );
    std::thread::sleep(Duration::from_millis(500));
    let (backup, errors) = tally(&ns, 200)?;
    eprintln!("a and b down: 200 requests: {backup:?}, failed {errors:?}");
    assert!(errors.is_empty(), "no request failed: {errors:?}");
    assert_eq!(backup, [("c".to_string(), 200)].into(), "the backup serves");

    // Priority 10 comes back: c takes none again.
    let up = Instant::now();
    for n in ["a", "b"] {
        backends.insert(n, spawn(n)?);
    }
    wait_targets(&ns, &all_healthy, Duration::from_secs(3 * INTERVAL + 5))?;
    eprintln!(
        "a and b healthy again {:.1?} after they restarted",
        up.elapsed()
    );
    std::thread::sleep(Duration::from_millis(500));
    let (back, errors) = tally(&ns, N)?;
    eprintln!("a and b back: {N} requests: {back:?}, failed {errors:?}");
    assert!(errors.is_empty(), "no request failed: {errors:?}");
    assert_eq!(back.get("c"), None, "c is a backup again: {back:?}");
    let a = back.get("a").copied().unwrap_or(0);
    assert!(a.abs_diff(999) <= 13, "a:b is 3:1 again: {back:?}");
    assert_eq!(weights(&ns)?, listed, "the weights stay");

    let clean = interrupt(&mut weir.proc);
    assert!(
        clean.as_ref().is_ok_and(|c| *c),
        "weir exits cleanly ({clean:?})"
    );
    eprintln!("whole test {:.1?}", started.elapsed());
    drop(backends);
    Ok(())
}
