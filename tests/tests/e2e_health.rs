//! Active health checks (issue #12) with the real `weir run`, its worker processes and real
//! backends (python3 http.server, one process per target) in a network namespace: a target
//! SIGKILLed under load is marked unhealthy within interval × threshold and comes back; every
//! target failing its check fails open; a target that never passes gets no traffic; the reason
//! codes are ALB's. Needs root.
//!
//! Each backend answers `/` with its name; `/health` as its control file says (`200`, `500`,
//! `hang`), read at each check, so a test flips a target's health without restarting it.

mod common;

use std::{
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use common::{http::Load, logged::Weir, *};
use serde_json::Value;
use weir_tests::lab::{Lab, Ns, Proc, wait_until};

const PORT: u16 = 8080;
/// interval 5 s (ALB's least), timeout 2 s, 2 passes / 2 failures.
const CHECK: &str = "health_check = { path = \"/health\", interval_seconds = 5, timeout_seconds = 2, healthy_threshold_count = 2, unhealthy_threshold_count = 2 }";
const INTERVAL: f64 = 5.0;

const BACKEND: &str = r#"
import http.server, sys, time
port, name, control = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        code = 200
        if self.path == "/health":
            how = open(control).read().strip()
            if how == "hang":
                time.sleep(30)
                return
            code = int(how)
        body = name.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
srv = S(("127.0.0.1", port), H)
if len(sys.argv) > 5:
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;

/// One backend process and its health control file.
struct Backend {
    proc: Option<Proc>,
    port: u16,
    name: String,
    control: TempFile,
    script: Arc<TempFile>,
    /// HTTPS: certificate and key files.
    tls: Option<(String, String)>,
}

impl Backend {
    fn start(
        ns: &Ns,
        script: &Arc<TempFile>,
        port: u16,
        name: &str,
        health: &str,
    ) -> Result<Backend> {
        let control = TempFile::new(&format!("health-{name}"), health);
        let mut b = Backend {
            proc: None,
            port,
            name: name.into(),
            control,
            script: script.clone(),
            tls: None,
        };
        b.run(ns)?;
        Ok(b)
    }

    fn run(&mut self, ns: &Ns) -> Result<()> {
        let mut c = ns.command("python3");
        c.args([
            self.script.path(),
            &self.port.to_string(),
            &self.name,
            self.control.path(),
        ]);
        if let Some((cert, key)) = &self.tls {
            c.args([cert, key]);
        }
        c.stdin(Stdio::null()).stdout(Stdio::null());
        self.proc = Some(ns.spawn_command(c)?);
        ns.wait_tcp_listen(self.port, Duration::from_secs(10))
    }

    /// The same backend over HTTPS, with a throwaway self-signed certificate in `dir`.
    fn start_tls(
        ns: &Ns,
        script: &Arc<TempFile>,
        port: u16,
        name: &str,
        dir: &std::path::Path,
    ) -> Result<Backend> {
        let (cert, key) = self_signed_cert(dir)?;
        let mut b = Backend {
            proc: None,
            port,
            name: name.into(),
            control: TempFile::new(&format!("health-{name}"), "200"),
            script: script.clone(),
            tls: Some((cert.display().to_string(), key.display().to_string())),
        };
        b.run(ns)?;
        Ok(b)
    }

    fn set_health(&self, how: &str) -> Result<()> {
        Ok(std::fs::write(&self.control.0, how)?)
    }

    fn kill(&mut self) -> Result<()> {
        if let Some(mut p) = self.proc.take() {
            p.kill()?;
        }
        Ok(())
    }
}

fn config_text(rules: &str, groups: &str) -> String {
    format!(
        "[workers]\ncount = 2\n\n[load_balancer]\nmax_connections_per_worker = 1000\n\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\nprotocol = \"HTTP\"\n\
         default_action = {{ type = \"forward\", target_group = \"web\" }}\n{rules}\n{groups}"
    )
}

/// `weir run` with `groups` (TOML) behind one listener whose default action forwards to `web`
/// (plus `rules`), two workers; returned once both are ready.
fn start_weir(ns: &Ns, rules: &str, groups: &str) -> Result<(Weir, TempFile)> {
    let cfg = TempFile::new("health.toml", &config_text(rules, groups));
    let mut w = Weir::spawn(ns, &cfg, Some("info,lb_l7::worker=debug"))?;
    w.wait_workers(2)?;
    Ok((w, cfg))
}

fn group(name: &str, ports: &[u16], extra: &str) -> String {
    let targets: Vec<String> = ports
        .iter()
        .map(|p| format!("{{ id = \"127.0.0.1\", port = {p} }}"))
        .collect();
    format!(
        "[[target_group]]\nname = \"{name}\"\ntarget = [{}]\n{extra}\n",
        targets.join(", ")
    )
}

fn group_view<'a>(v: &'a Value, g: &str) -> Result<&'a Value> {
    v["target_groups"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == g))
        .with_context(|| format!("no group {g} in {v}"))
}

/// (state, reason, description) of `group`'s target on `port`.
fn target_state(v: &Value, g: &str, port: u16) -> Result<(String, String, String)> {
    let t = group_view(v, g)?["targets"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["port"] == port))
        .with_context(|| format!("no target :{port} in {g}"))?;
    let s = |k: &str| t[k].as_str().unwrap_or("").to_string();
    Ok((s("state"), s("reason"), s("description")))
}

/// Waits until `group`'s target on `port` is in `state`; returns the time it took.
fn wait_state(ns: &Ns, g: &str, port: u16, state: &str, within: Duration) -> Result<Duration> {
    let t0 = Instant::now();
    wait_until(within, &format!("{g} :{port} {state}"), || {
        std::thread::sleep(Duration::from_millis(100));
        // A target a reload adds shows up in the view first.
        Ok(target_state(&health_view(ns)?, g, port).is_ok_and(|t| t.0 == state))
    })?;
    Ok(t0.elapsed())
}

/// From the control plane's last log line of `target` turning `state` to each worker's line
/// applying it: the delays, in seconds.
fn propagation(log: &str, target: &str, state: &str) -> Result<Vec<f64>> {
    let decided = log
        .lines()
        .rfind(|l| {
            l.contains("target health")
                && l.contains(&format!("target={target}"))
                && l.contains(&format!("to={state}"))
        })
        .and_then(time_of_day)
        .context("the control plane's line")?;
    let applied: Vec<f64> = log
        .lines()
        .filter(|l| {
            l.contains("target state from the control plane")
                && l.contains(&format!("target={target}"))
                && l.contains(&format!("state={state}"))
        })
        .filter_map(time_of_day)
        .filter(|t| *t >= decided)
        .collect();
    Ok(applied.iter().map(|t| t - decided).collect())
}

fn script() -> Arc<TempFile> {
    Arc::new(TempFile::new("backend.py", BACKEND))
}

#[test]
fn a_crashed_target_is_ejected_and_comes_back() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("hcrash")?;
    let py = script();
    let mut backends = [(9101, "a"), (9102, "b"), (9103, "c")]
        .into_iter()
        .map(|(p, n)| Backend::start(&ns, &py, p, n, "200"))
        .collect::<Result<Vec<_>>>()?;
    let (mut weir, _cfg) = start_weir(&ns, "", &group("web", &[9101, 9102, 9103], CHECK))?;
    for p in [9101, 9102, 9103] {
        wait_state(&ns, "web", p, "healthy", Duration::from_secs(15))?;
    }
    let load = Load::start(&ns, PORT);
    std::thread::sleep(Duration::from_secs(3));

    let killed_at = Instant::now();
    backends[1].kill()?;
    let took = wait_state(&ns, "web", 9102, "unhealthy", Duration::from_secs(20))?;
    let (_, reason, description) = target_state(&health_view(&ns)?, "web", 9102)?;
    eprintln!("b SIGKILLed: unhealthy after {took:.1?} ({reason}: {description})");
    assert!(
        took.as_secs_f64() <= INTERVAL * 2.0 + 1.5,
        "unhealthy within interval × threshold: {took:?}"
    );
    assert_eq!(reason, "Target.FailedHealthChecks");
    let ejected_at = Instant::now();
    std::thread::sleep(Duration::from_secs(3));

    let restarted_at = Instant::now();
    backends[1].run(&ns)?;
    let back = wait_state(&ns, "web", 9102, "healthy", Duration::from_secs(20))?;
    eprintln!("b restarted: healthy after {back:.1?}");
    assert!(back.as_secs_f64() <= INTERVAL * 2.0 + 1.5, "{back:?}");
    let healthy_at = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let seen = load.stop();

    let during = seen.names_between(ejected_at, restarted_at);
    let after = seen.names_since(healthy_at);
    let errors: Vec<_> = seen
        .errors
        .iter()
        .filter(|(t, _)| *t >= killed_at)
        .collect();
    eprintln!(
        "{} answers, {} failed (in flight on b when it died): {:?}; after ejection {during:?}; after recovery {after:?}",
        seen.ok.len(),
        errors.len(),
        errors.iter().map(|(_, e)| e).collect::<Vec<_>>()
    );
    assert!(
        errors.len() <= Load::CLIENTS,
        "only requests in flight on b fail"
    );
    assert!(
        seen.errors.len() == errors.len(),
        "no failure before the kill"
    );
    assert_eq!(during.get("b"), None, "{during:?}");
    assert!(
        after.get("b").copied().unwrap_or(0) > 0,
        "b takes traffic again: {after:?}"
    );
    assert!(after.get("a").copied().unwrap_or(0) > 0 && after.get("c").copied().unwrap_or(0) > 0);

    let log = weir.log();
    for (state, what) in [("unhealthy", "ejection"), ("healthy", "recovery")] {
        let d = propagation(&log, "127.0.0.1:9102", state)?;
        eprintln!("{what}: control plane → workers in {d:?} s");
        assert_eq!(d.len(), 2, "both workers applied the {what}:\n{log}");
        assert!(
            d.iter().all(|&x| x < INTERVAL),
            "within one interval: {d:?}"
        );
    }
    assert!(interrupt(&mut weir.proc)?);
    Ok(())
}

#[test]
fn every_target_failing_its_check_fails_open() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("hopen")?;
    let py = script();
    let backends = [(9201, "a"), (9202, "b")]
        .into_iter()
        .map(|(p, n)| Backend::start(&ns, &py, p, n, "200"))
        .collect::<Result<Vec<_>>>()?;
    let (mut weir, _cfg) = start_weir(&ns, "", &group("web", &[9201, 9202], CHECK))?;
    for p in [9201, 9202] {
        wait_state(&ns, "web", p, "healthy", Duration::from_secs(15))?;
    }
    for b in &backends {
        b.set_health("500")?;
    }
    for p in [9201, 9202] {
        wait_state(&ns, "web", p, "unhealthy", Duration::from_secs(15))?;
    }
    let v = health_view(&ns)?;
    let g = group_view(&v, "web")?;
    assert_eq!(g["fail_open"], true, "{g}");
    assert_eq!(
        (
            g["HealthyHostCount"].as_u64(),
            g["UnHealthyHostCount"].as_u64()
        ),
        (Some(0), Some(2))
    );
    let (_, reason, description) = target_state(&v, "web", 9201)?;
    assert_eq!(reason, "Target.ResponseCodeMismatch");
    assert_eq!(description, "Health checks failed with these codes: [500]");
    assert!(
        weir.log().contains("no healthy target: failing open"),
        "the control plane says so"
    );

    let load = Load::start(&ns, PORT);
    std::thread::sleep(Duration::from_secs(2));
    let seen = load.stop();
    let names = seen.names_since(Instant::now() - Duration::from_secs(60));
    eprintln!("fail-open: {names:?}, {} errors", seen.errors.len());
    assert!(seen.errors.is_empty(), "{:?}", seen.errors.first());
    assert!(
        names.contains_key("a") && names.contains_key("b"),
        "{names:?}"
    );

    backends[0].set_health("200")?;
    wait_state(&ns, "web", 9201, "healthy", Duration::from_secs(15))?;
    // The group's view and the control plane's line follow the state; polled, not a fixed
    // 1.5 s (a loaded machine can take longer).
    wait_until(
        Duration::from_secs(10),
        "fail_open false in the health view and \"no longer fails open\" in the log",
        || {
            Ok(group_view(&health_view(&ns)?, "web")?["fail_open"] == false
                && weir.log().contains("no longer fails open"))
        },
    )?;
    assert!(interrupt(&mut weir.proc)?);
    Ok(())
}

#[test]
fn a_target_that_never_passes_gets_no_traffic() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("hnew")?;
    let py = script();
    let _a = Backend::start(&ns, &py, 9301, "a", "200")?;
    let _n = Backend::start(&ns, &py, 9302, "n", "hang")?;
    let dir = std::env::temp_dir().join(format!("weir-health-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _s = Backend::start_tls(&ns, &py, 9303, "s", &dir)?;
    let rule = |prio: u32, path: &str, group: &str| {
        format!(
            "[[listener.rule]]\npriority = {prio}\ncondition = [{{ field = \"path-pattern\", values = [\"{path}\"] }}]\naction = {{ type = \"forward\", target_group = \"{group}\" }}\n"
        )
    };
    let rules = rule(1, "/tcp/*", "tcp") + &rule(2, "/secure/*", "secure");
    let groups = group("web", &[9301, 9302], CHECK)
        + &group(
            "tcp",
            &[9301, 9309],
            "health_check = { protocol = \"TCP\", interval_seconds = 5, timeout_seconds = 2 }",
        )
        + &group(
            "secure",
            &[9303, 9301],
            "protocol = \"HTTPS\"\nhealth_check = { protocol = \"HTTPS\", interval_seconds = 5, timeout_seconds = 2 }",
        )
        + &group("spare", &[9301], "");
    let (mut weir, _cfg) = start_weir(&ns, &rules, &groups)?;
    wait_state(&ns, "web", 9301, "healthy", Duration::from_secs(15))?;
    let load = Load::start(&ns, PORT);
    let took = wait_state(&ns, "web", 9302, "unhealthy", Duration::from_secs(20))?;
    std::thread::sleep(Duration::from_secs(2));
    let seen = load.stop();
    let names = seen.names_since(Instant::now() - Duration::from_secs(120));
    eprintln!("n unhealthy after {took:.1?} more; traffic {names:?}");
    assert_eq!(
        names.get("n"),
        None,
        "the target that never passed got traffic"
    );
    assert!(names.get("a").copied().unwrap_or(0) > 20, "{names:?}");
    assert!(seen.errors.is_empty(), "{:?}", seen.errors.first());

    let v = health_view(&ns)?;
    assert_eq!(target_state(&v, "web", 9302)?.1, "Target.Timeout");
    assert_eq!(target_state(&v, "web", 9302)?.2, "Request timed out");
    wait_state(&ns, "tcp", 9301, "healthy", Duration::from_secs(10))?;
    wait_state(&ns, "tcp", 9309, "unhealthy", Duration::from_secs(15))?;
    let (_, reason, description) = target_state(&health_view(&ns)?, "tcp", 9309)?;
    assert_eq!(reason, "Target.FailedHealthChecks");
    assert!(description.contains("refused"), "{description}");
    // HTTPS: a self-signed target passes (not verified, as ALB); a plain one fails the handshake.
    wait_state(&ns, "secure", 9303, "healthy", Duration::from_secs(10))?;
    wait_state(&ns, "secure", 9301, "unhealthy", Duration::from_secs(15))?;
    let (_, reason, description) = target_state(&health_view(&ns)?, "secure", 9301)?;
    assert_eq!(reason, "Target.FailedHealthChecks");
    assert!(description.contains("TLS"), "{description}");
    let _ = std::fs::remove_dir_all(&dir);
    let (state, reason, _) = target_state(&v, "spare", 9301)?;
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("unused", "Target.NotInUse")
    );
    assert!(interrupt(&mut weir.proc)?);
    Ok(())
}

/// The state view disappears with the daemon.
#[test]
fn the_state_file_is_removed_at_exit() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("hfile")?;
    let (mut weir, _cfg) = start_weir(&ns, "", &group("web", &[9401], CHECK))?;
    wait_until(Duration::from_secs(5), "the state file", || {
        Ok(health_view(&ns).is_ok())
    })?;
    let (state, reason, _) = target_state(&health_view(&ns)?, "web", 9401)?;
    // Nothing listens on :9401: initial until its second failed check.
    assert_eq!(state, "initial");
    assert!(reason.starts_with("Elb."), "{reason}");
    assert!(interrupt(&mut weir.proc)?);
    assert!(!health_state_file(&ns)?.exists());
    Ok(())
}

/// A reload (SIGHUP) that adds a target: the checker follows it, the new target is checked and
/// gets traffic once healthy; the target that stayed keeps its health.
#[test]
fn a_target_added_by_a_reload_is_checked() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("hreload")?;
    let py = script();
    let _a = Backend::start(&ns, &py, 9501, "a", "200")?;
    let _b = Backend::start(&ns, &py, 9502, "b", "200")?;
    let (mut weir, cfg) = start_weir(&ns, "", &group("web", &[9501], CHECK))?;
    wait_state(&ns, "web", 9501, "healthy", Duration::from_secs(15))?;
    std::fs::write(&cfg.0, config_text("", &group("web", &[9501, 9502], CHECK)))?;
    // SAFETY: kill(2) on weir's pid, a child of this test.
    unsafe { libc::kill(weir.proc.pid() as i32, libc::SIGHUP) };
    let took = wait_state(&ns, "web", 9502, "healthy", Duration::from_secs(15))?;
    let v = health_view(&ns)?;
    assert_eq!(
        target_state(&v, "web", 9501)?.0,
        "healthy",
        "kept its health"
    );
    eprintln!("the added target healthy {took:.1?} after the reload");
    let load = Load::start(&ns, PORT);
    std::thread::sleep(Duration::from_secs(2));
    let seen = load.stop();
    let names = seen.names_since(Instant::now() - Duration::from_secs(60));
    eprintln!("after the reload: {names:?}");
    assert!(names.get("b").copied().unwrap_or(0) > 0, "{names:?}");
    assert!(seen.errors.is_empty(), "{:?}", seen.errors.first());
    assert!(
        weir.log()
            .contains("health checks follow the new configuration")
    );
    assert!(interrupt(&mut weir.proc)?);
    Ok(())
}

/// A reload that changes only a check setting (the interval, 5 → 6 s): the targets keep their
/// health, so the target known to answer 500 gets no request and the group does not fail open
/// (ALB's `ModifyTargetGroup` keeps the states; before, every target went back to `initial`
/// and the group failed open onto the bad target for up to an interval).
#[test]
fn a_reload_changing_a_check_setting_keeps_the_targets_health() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("hmodify")?;
    let py = script();
    let _a = Backend::start(&ns, &py, 9601, "a", "200")?;
    let _b = Backend::start(&ns, &py, 9602, "b", "500")?;
    let (mut weir, cfg) = start_weir(&ns, "", &group("web", &[9601, 9602], CHECK))?;
    wait_state(&ns, "web", 9601, "healthy", Duration::from_secs(15))?;
    wait_state(&ns, "web", 9602, "unhealthy", Duration::from_secs(20))?;
    let followed = || {
        weir.log()
            .matches("health checks follow the new configuration")
            .count()
    };
    let before = followed();
    let six = CHECK.replace("interval_seconds = 5", "interval_seconds = 6");
    std::fs::write(&cfg.0, config_text("", &group("web", &[9601, 9602], &six)))?;
    // SAFETY: kill(2) on weir's pid, a child of this test.
    unsafe { libc::kill(weir.proc.pid() as i32, libc::SIGHUP) };
    wait_until(
        Duration::from_secs(10),
        "the checker follows the reload",
        || Ok(followed() > before),
    )?;
    let load = Load::start(&ns, PORT);
    std::thread::sleep(Duration::from_secs(2));
    let seen = load.stop();
    let names = seen.names_since(Instant::now() - Duration::from_secs(60));
    eprintln!("right after the reload: {names:?}");
    // The view (written once a second) after the reload.
    let v = health_view(&ns)?;
    let g = group_view(&v, "web")?;
    eprintln!("view after the reload: {g}");
    assert_eq!(target_state(&v, "web", 9601)?.0, "healthy");
    let (state, reason, _) = target_state(&v, "web", 9602)?;
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("unhealthy", "Target.ResponseCodeMismatch")
    );
    assert_eq!(g["fail_open"], false, "{g}");
    assert_eq!(g["HealthyHostCount"].as_u64(), Some(1), "{g}");
    assert_eq!(names.get("b"), None, "the unhealthy target got requests");
    assert!(names.get("a").copied().unwrap_or(0) > 20, "{names:?}");
    assert!(seen.errors.is_empty(), "{:?}", seen.errors.first());
    assert!(interrupt(&mut weir.proc)?);
    Ok(())
}
