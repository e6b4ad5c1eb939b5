//! A deregistered target's `draining` ends when nothing is in flight to it, as ALB's does
//! (`deregistration_delay.timeout_seconds` is the longest it lasts, not how long): against a
//! real `weir run` (two workers) and real targets in a lab namespace, the delay left at its
//! default, 300 s. Needs root.
//!
//! - an idle target leaves `GET /v1/target-health` within 1 s of its deregistration; its drain
//!   over, deregistering it again is `InvalidTarget`;
//! - a target with a slow request in flight stays `draining` while the request runs (a second
//!   deregistration meanwhile succeeds and changes nothing: ALB's `DeregisterTargets` is
//!   idempotent; before, it was `400 InvalidTarget`), the request is answered 200, and the
//!   target leaves within 0.6 s after;
//! - a target whose workers were SIGKILLed with a request in flight does not stay `draining`
//!   (within 0.5 s): the restarted workers never had it;
//! - a target registered again while it drains is a target again, and stays one when the
//!   workers finish its old drain;
//! - with a 2 s delay: a target registered again 0.5 s after its deregistration keeps the
//!   request in flight to it since before, answered 200 past the delay (a11c9d1 cut it with
//!   a 502 at the first deadline), and takes new requests; one deregistered again 1.5 s after
//!   the first deregistration gets the full delay from the second (a11c9d1: the first's
//!   deadline, 0.5 s after the second).
//!
//! On the code before 9fdbc98, each target stayed `draining` for the whole 300 s; on the code
//! before 7dc49a1 (the worker's one-second drain tick, its half-second report and the checker's
//! one-second pass in series) an idle target left 1.6–1.9 s after its deregistration, a busy one
//! 0.9–1.6 s after its answer, one with its workers SIGKILLed 0.7–0.9 s after the kill: each
//! over these bounds (`WEIR_BIN_UNDER_TEST` runs another build, see
//! `e2e_reload_support::weir_command`). Now (each step reacts: the worker's 100 ms tick, a
//! report at once, the checker on each report) they are ~0.1, ~0.1 and ~0.01 s.

mod common;
mod e2e_reload_support;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::Ordering::Relaxed,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use common::{TempDir, TempFile, worker_pids};
use e2e_reload_support::{Backend, Outcome, Weir, request_new_conn, weir_command};
use serde_json::Value;
use weir_tests::lab::{Lab, Ns, wait_until};

const PORT: u16 = 8080;

fn to() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], PORT))
}

/// A lab namespace with `weir run` (two workers) on `targets`, group `web`, health checks off
/// (the targets are `healthy` at once), the deregistration delay at its default (300 s).
struct Setup {
    weir: Weir,
    socket: PathBuf,
    cfg: TempFile,
    _dir: TempDir,
}

fn start(ns: &Ns, name: &str, targets: &[&Backend]) -> Result<Setup> {
    start_with_delay(ns, name, targets, None)
}

/// [`start`] with the group's `deregistration_delay.timeout_seconds` at `delay` (`None`: the
/// default, 300 s).
fn start_with_delay(
    ns: &Ns,
    name: &str,
    targets: &[&Backend],
    delay: Option<u64>,
) -> Result<Setup> {
    let dir =
        TempDir(std::env::temp_dir().join(format!("weir-drain-{name}-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let socket = dir.0.join("admin.sock");
    let list: Vec<String> = targets
        .iter()
        .map(|b| format!("{{ id = \"127.0.0.1\", port = {} }}", b.addr.port()))
        .collect();
    let text = format!(
        "[admin]\nsocket = \"{}\"\n[workers]\ncount = 2\n\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\n\
         default_action = {{ type = \"forward\", target_group = \"web\" }}\n\n\
         [[target_group]]\nname = \"web\"\nhealth_check.enabled = false\n\
         target = [{}]\n{}",
        socket.display(),
        list.join(", "),
        delay.map_or_else(String::new, |d| format!(
            "deregistration_delay.timeout_seconds = {d}\n"
        ))
    );
    let cfg = TempFile::new(&format!("drain-{name}.toml"), &text);
    let weir = Weir::start(ns, &cfg, 2)?;
    Ok(Setup {
        weir,
        socket,
        cfg,
        _dir: dir,
    })
}

/// `weir targets deregister` of `target` from `web`.
fn deregister(ns: &Ns, socket: &Path, target: SocketAddr) -> Result<()> {
    targets(ns, socket, "deregister", target)
}

/// `weir targets VERB` (`register`, `deregister`) of `target` in `web`.
fn targets(ns: &Ns, socket: &Path, verb: &str, target: SocketAddr) -> Result<()> {
    let out = targets_output(ns, socket, verb, target)?;
    if !out.status.success() {
        bail!("{verb} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// `weir targets VERB` of `target` in `web`, however it ends.
fn targets_output(
    ns: &Ns,
    socket: &Path,
    verb: &str,
    target: SocketAddr,
) -> Result<std::process::Output> {
    let mut c = weir_command(ns);
    c.args(["targets", verb, "--target-group", "web", "--target"])
        .arg(target.to_string())
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null());
    weir_tests::lab::output(&mut c, Duration::from_secs(30))
}

/// How many run-time target changes made a generation (`run::apply_targets`'s log line).
fn generations_made(weir: &Weir) -> usize {
    weir.log_text()
        .matches("run-time target change: generation")
        .count()
}

/// `weir targets health --target-group web`, the text.
fn health_text(ns: &Ns, socket: &Path) -> Result<String> {
    let mut c = weir_command(ns);
    c.args(["targets", "health", "--target-group", "web", "--socket"])
        .arg(socket)
        .stdin(Stdio::null());
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(30))?;
    if !out.status.success() {
        bail!(
            "targets health failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `target`'s state in `GET /v1/target-health?target_group=web` (the admin API, as `weir
/// targets health --json` shows it); `None`: not listed.
fn state(socket: &Path, target: SocketAddr) -> Result<Option<String>> {
    let mut c = std::process::Command::new("curl");
    c.args(["-s", "--max-time", "5", "--unix-socket"])
        .arg(socket)
        .arg("http://weir/v1/target-health?target_group=web")
        .stdin(Stdio::null());
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(10))?;
    let v: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| String::from_utf8_lossy(&out.stdout).into_owned())?;
    let targets = v["target_groups"][0]["targets"]
        .as_array()
        .with_context(|| format!("no targets: {v}"))?;
    Ok(targets
        .iter()
        .find(|t| t["id"] == "127.0.0.1" && t["port"] == target.port())
        .map(|t| {
            let s = t["state"].as_str().unwrap_or_default();
            if s == "draining" {
                assert_eq!(t["reason"], "Target.DeregistrationInProgress", "{t}");
            }
            s.to_string()
        }))
}

/// Polls `target`'s state until it is no longer listed (≤ `within`): when that was, and every
/// state seen before, with its time.
fn until_gone(
    socket: &Path,
    target: SocketAddr,
    within: Duration,
) -> Result<(Instant, Vec<(Instant, String)>)> {
    let t = Instant::now();
    let mut seen = Vec::new();
    while t.elapsed() < within {
        match state(socket, target)? {
            None => return Ok((Instant::now(), seen)),
            Some(s) => seen.push((Instant::now(), s)),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!(
        "{target} still listed {within:?} later: last {:?}",
        seen.last().map(|s| &s.1)
    )
}

#[test]
fn an_idle_target_leaves_draining_within_a_second() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("drainidle")?;
    ns.ip(&["link", "set", "lo", "up"])?;
    let a = Backend::start(&ns, "127.0.0.1:0", "a", Duration::ZERO)?;
    let b = Backend::start(&ns, "127.0.0.1:0", "b", Duration::ZERO)?;
    let s = start(&ns, "idle", &[&a, &b])?;
    for _ in 0..20 {
        let got = request_new_conn(&ns, to(), "/", Duration::from_secs(5));
        assert!(matches!(got, Outcome::Answered(200, _)), "{got:?}");
    }
    assert!(b.seen.load(Relaxed) > 0, "b served before");
    assert_eq!(state(&s.socket, b.addr)?.as_deref(), Some("healthy"));
    let t = Instant::now();
    deregister(&ns, &s.socket, b.addr)?;
    let (gone, seen) = until_gone(&s.socket, b.addr, Duration::from_secs(15))
        .with_context(|| s.weir.log_text())?;
    let took = gone - t;
    let draining = seen.iter().filter(|(_, st)| st == "draining").count();
    println!(
        "idle target: left draining {:.2} s after its deregistration (delay 300 s; {} polls saw it draining)",
        took.as_secs_f64(),
        draining
    );
    // An idle target may be gone before the first poll (the drain takes ~0.1 s): if it is
    // listed, it is `draining`.
    assert!(
        seen.iter().all(|(_, st)| st == "draining"),
        "nothing but draining: {seen:?}"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(
        s.weir.log_text().contains("target drained"),
        "logged:\n{}",
        s.weir.log_text()
    );
    // Its drain over, it is neither registered nor draining: ALB's InvalidTarget.
    let again = targets_output(&ns, &s.socket, "deregister", b.addr)?;
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && err.contains("InvalidTarget") && err.contains("not registered"),
        "{err}"
    );
    // Only a takes requests now.
    let before = b.seen.load(Relaxed);
    for _ in 0..10 {
        assert_eq!(
            request_new_conn(&ns, to(), "/", Duration::from_secs(5)),
            Outcome::Answered(200, "target a\n".into())
        );
    }
    assert_eq!(b.seen.load(Relaxed), before);
    Ok(())
}

#[test]
fn a_target_stays_draining_while_a_request_runs_and_leaves_after_it() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    const SLOW: Duration = Duration::from_secs(5);
    let lab = Lab::new()?;
    let ns = lab.add_ns("drainslow")?;
    ns.ip(&["link", "set", "lo", "up"])?;
    let slow = Backend::start(&ns, "127.0.0.1:0", "s", SLOW)?;
    let other = Backend::start(&ns, "127.0.0.1:0", "o", Duration::ZERO)?;
    let s = start(&ns, "slow", &[&slow, &other])?;
    // Until the slow request lands on `slow` (round robin in each worker: at most a few).
    let (client, started) = loop {
        let seen = slow.seen.load(Relaxed);
        let ns2 = ns.clone();
        let started = Instant::now();
        let client = std::thread::spawn(move || {
            let got = request_new_conn(&ns2, to(), "/slow", Duration::from_secs(20));
            (got, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(300));
        if slow.seen.load(Relaxed) > seen {
            break (client, started);
        }
        let (got, _) = client.join().expect("client");
        assert_eq!(got, Outcome::Answered(200, "target o\n".into()));
    };
    let t = Instant::now();
    deregister(&ns, &s.socket, slow.addr)?;
    // The CLI's text says so too while the request runs.
    let shown = health_text(&ns, &s.socket)?;
    let line = shown
        .lines()
        .find(|l| l.contains(&slow.addr.port().to_string()))
        .unwrap_or_default();
    assert!(
        line.contains("draining") && line.contains("Target.DeregistrationInProgress"),
        "{shown}"
    );
    // Deregistered again while it drains (automation retries): a success that changes
    // nothing, so the drain below ends as the first deregistration's would.
    let made = generations_made(&s.weir);
    assert_eq!(made, 1, "the deregistration's generation, logged");
    deregister(&ns, &s.socket, slow.addr).with_context(|| s.weir.log_text())?;
    assert_eq!(state(&s.socket, slow.addr)?.as_deref(), Some("draining"));
    assert_eq!(generations_made(&s.weir), made, "no second generation");
    let (gone, seen) = until_gone(&s.socket, slow.addr, Duration::from_secs(20))
        .with_context(|| s.weir.log_text())?;
    let (got, answered) = client.join().expect("client");
    assert_eq!(got, Outcome::Answered(200, "target s\n".into()));
    let took = gone - t;
    let after_answer = gone.saturating_duration_since(answered);
    let last_draining = seen
        .iter()
        .rev()
        .find(|(_, st)| st == "draining")
        .map(|(at, _)| *at);
    println!(
        "target with a {:.0} s request in flight: draining {} polls until {:.2} s after the \
         deregistration; the request answered 200 {:.2} s after it started; the target left \
         draining {:.2} s after the deregistration, {:.2} s after the answer",
        SLOW.as_secs_f64(),
        seen.len(),
        last_draining.map_or(0.0, |l| (l - t).as_secs_f64()),
        (answered - started).as_secs_f64(),
        took.as_secs_f64(),
        after_answer.as_secs_f64()
    );
    assert!(
        seen.iter().all(|(_, st)| st == "draining"),
        "draining all along: {seen:?}"
    );
    assert!(
        gone + Duration::from_millis(200) >= answered,
        "listed until the request was answered ({:?} before)",
        answered.saturating_duration_since(gone)
    );
    assert!(
        last_draining
            .is_some_and(|l| answered.saturating_duration_since(l) < Duration::from_millis(500)),
        "seen draining until the answer"
    );
    assert!(
        after_answer < Duration::from_millis(600),
        "{after_answer:?}"
    );
    Ok(())
}

#[test]
fn workers_killed_with_a_request_in_flight_leave_no_target_draining() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("drainkill")?;
    ns.ip(&["link", "set", "lo", "up"])?;
    let slow = Backend::start(&ns, "127.0.0.1:0", "s", Duration::from_secs(30))?;
    let s = start(&ns, "kill", &[&slow])?;
    let ns2 = ns.clone();
    let client =
        std::thread::spawn(move || request_new_conn(&ns2, to(), "/slow", Duration::from_secs(40)));
    wait_until(Duration::from_secs(5), "the request at the target", || {
        Ok(slow.seen.load(Relaxed) >= 1)
    })?;
    deregister(&ns, &s.socket, slow.addr)?;
    // The request runs: draining (its worker reports it, the other is done).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        state(&s.socket, slow.addr)?.as_deref(),
        Some("draining"),
        "{}",
        s.weir.log_text()
    );
    let ready = s.weir.log_text().matches("worker ready").count();
    let pids = worker_pids(s.cfg.path());
    assert_eq!(pids.len(), 2, "{pids:?}");
    let t = Instant::now();
    for pid in pids.values() {
        // SAFETY: kill(2) on a worker of the weir this test started.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    let (gone, _) = until_gone(&s.socket, slow.addr, Duration::from_secs(20))
        .with_context(|| s.weir.log_text())?;
    let took = gone - t;
    wait_until(Duration::from_secs(15), "both workers back", || {
        Ok(s.weir.log_text().matches("worker ready").count() >= ready + 2)
    })?;
    let got = client.join().expect("client");
    println!(
        "workers SIGKILLed with a request in flight: the target left draining {:.2} s after \
         the kill (the client got {got:?})",
        took.as_secs_f64()
    );
    assert!(
        !matches!(got, Outcome::Answered(200, _)),
        "its worker died: {got:?}"
    );
    assert!(took < Duration::from_millis(500), "{took:?}");
    Ok(())
}

#[test]
fn a_target_registered_again_while_draining_stays_when_the_old_drain_ends() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("drainback")?;
    ns.ip(&["link", "set", "lo", "up"])?;
    let slow = Backend::start(&ns, "127.0.0.1:0", "s", Duration::from_secs(3))?;
    let s = start(&ns, "back", &[&slow])?;
    let ns2 = ns.clone();
    let client =
        std::thread::spawn(move || request_new_conn(&ns2, to(), "/slow", Duration::from_secs(20)));
    wait_until(Duration::from_secs(5), "the request at the target", || {
        Ok(slow.seen.load(Relaxed) >= 1)
    })?;
    deregister(&ns, &s.socket, slow.addr)?;
    wait_until(Duration::from_secs(3), "draining", || {
        Ok(state(&s.socket, slow.addr)?.as_deref() == Some("draining"))
    })?;
    targets(&ns, &s.socket, "register", slow.addr)?;
    // Health checks are off: a registered target is `healthy` at once.
    wait_until(Duration::from_secs(3), "registered again", || {
        Ok(state(&s.socket, slow.addr)?.as_deref() == Some("healthy"))
    })?;
    let got = client.join().expect("client");
    assert_eq!(got, Outcome::Answered(200, "target s\n".into()));
    // The workers drop the old drain (its request is done) and report it: the registration
    // stays, listed once, and takes requests.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(4) {
        let v = state(&s.socket, slow.addr)?;
        assert_eq!(v.as_deref(), Some("healthy"), "{}", s.weir.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        request_new_conn(&ns, to(), "/", Duration::from_secs(5)),
        Outcome::Answered(200, "target s\n".into())
    );
    println!(
        "registered again while draining: healthy throughout the 4 s after its old request ended"
    );
    Ok(())
}

/// `slow`'s request (`/slow`), started on a new connection in its own thread, once it is at
/// the target: the thread's result is the outcome and when it came.
fn slow_request_at(
    ns: &Ns,
    slow: &Backend,
    limit: Duration,
) -> Result<std::thread::JoinHandle<(Outcome, Instant)>> {
    let seen = slow.seen.load(Relaxed);
    let ns2 = ns.clone();
    let client = std::thread::spawn(move || {
        let got = request_new_conn(&ns2, to(), "/slow", limit);
        (got, Instant::now())
    });
    wait_until(Duration::from_secs(5), "the request at the target", || {
        Ok(slow.seen.load(Relaxed) > seen)
    })?;
    Ok(client)
}

/// Registered again 0.5 s after its deregistration (delay 2 s), a target is in force: the
/// request in flight to it since before the deregistration is answered 200 when the delay
/// would have ended (not 502 `TargetDeregistered`, the 502 it got at the first deadline
/// before the fix: HAProxy keeps a server's sessions when it is set back to ready, ALB's
/// registration cancels the deregistration), and new requests go to it.
#[test]
fn a_target_registered_again_before_its_delay_ends_keeps_its_requests_past_it() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    const DELAY: Duration = Duration::from_secs(2);
    const SLOW: Duration = Duration::from_secs(5);
    let lab = Lab::new()?;
    let ns = lab.add_ns("drainrereg")?;
    ns.ip(&["link", "set", "lo", "up"])?;
    let slow = Backend::start(&ns, "127.0.0.1:0", "s", SLOW)?;
    let s = start_with_delay(&ns, "rereg", &[&slow], Some(DELAY.as_secs()))?;
    let client = slow_request_at(&ns, &slow, Duration::from_secs(20))?;
    let t = Instant::now();
    deregister(&ns, &s.socket, slow.addr)?;
    std::thread::sleep(Duration::from_millis(500));
    targets(&ns, &s.socket, "register", slow.addr)?;
    // Health checks are off: a registered target is `healthy` at once.
    wait_until(Duration::from_secs(3), "registered again", || {
        Ok(state(&s.socket, slow.addr)?.as_deref() == Some("healthy"))
    })?;
    let registered = t.elapsed();
    assert!(
        registered < DELAY,
        "registered again within the delay: {registered:?}"
    );
    // New requests go to it (its only target), while the old one runs.
    for _ in 0..4 {
        assert_eq!(
            request_new_conn(&ns, to(), "/", Duration::from_secs(5)),
            Outcome::Answered(200, "target s\n".into())
        );
    }
    let (got, answered) = client.join().expect("client");
    let at = answered - t;
    println!(
        "registered again {:.2} s after its deregistration (delay {} s): the request in \
         flight since before answered {got:?} {:.2} s after the deregistration",
        registered.as_secs_f64(),
        DELAY.as_secs(),
        at.as_secs_f64()
    );
    assert_eq!(
        got,
        Outcome::Answered(200, "target s\n".into()),
        "{}",
        s.weir.log_text()
    );
    assert!(
        at > DELAY + Duration::from_millis(500),
        "past the delay: {at:?}"
    );
    assert!(
        !s.weir.log_text().contains("deregistration delay over"),
        "{}",
        s.weir.log_text()
    );
    // The old drain ends with its request: the target stays registered, and takes requests.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state(&s.socket, slow.addr)?.as_deref(), Some("healthy"));
    assert_eq!(
        request_new_conn(&ns, to(), "/", Duration::from_secs(5)),
        Outcome::Answered(200, "target s\n".into())
    );
    Ok(())
}

/// Deregistered, registered again, deregistered again within the first delay (2 s): the
/// second drain has its own full delay (ALB), so the request in flight since before the
/// first deregistration is answered 502 at the second deadline, not the first (where the
/// code before the fix cut it, 0.5 s after the second deregistration).
#[test]
fn a_target_deregistered_again_gets_its_own_full_delay() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    const DELAY: Duration = Duration::from_secs(2);
    let lab = Lab::new()?;
    let ns = lab.add_ns("drainagain")?;
    ns.ip(&["link", "set", "lo", "up"])?;
    let slow = Backend::start(&ns, "127.0.0.1:0", "s", Duration::from_secs(8))?;
    let s = start_with_delay(&ns, "again", &[&slow], Some(DELAY.as_secs()))?;
    let client = slow_request_at(&ns, &slow, Duration::from_secs(20))?;
    let t1 = Instant::now();
    deregister(&ns, &s.socket, slow.addr)?;
    std::thread::sleep(Duration::from_millis(500));
    targets(&ns, &s.socket, "register", slow.addr)?;
    wait_until(Duration::from_secs(3), "registered again", || {
        Ok(state(&s.socket, slow.addr)?.as_deref() == Some("healthy"))
    })?;
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(t1.elapsed()));
    let t2 = Instant::now();
    assert!(
        t2 - t1 < DELAY - Duration::from_millis(300),
        "deregistered again within the first delay: {:?}",
        t2 - t1
    );
    deregister(&ns, &s.socket, slow.addr)?;
    let (got, answered) = client.join().expect("client");
    let (after_first, after_second) = (answered - t1, answered - t2);
    println!(
        "deregistered, registered again, deregistered again {:.2} s after the first (delay {} \
         s): the request in flight since before answered {got:?} {:.2} s after the first \
         deregistration, {:.2} s after the second",
        (t2 - t1).as_secs_f64(),
        DELAY.as_secs(),
        after_first.as_secs_f64(),
        after_second.as_secs_f64()
    );
    assert!(
        matches!(&got, Outcome::Answered(502, _)),
        "ALB's 502 at the second deadline: {got:?}"
    );
    assert!(
        after_second >= DELAY - Duration::from_millis(50),
        "the second deregistration's full delay: {after_second:?}"
    );
    assert!(
        after_second < DELAY + Duration::from_secs(1),
        "{after_second:?}"
    );
    assert!(
        s.weir.log_text().contains("deregistration delay over"),
        "{}",
        s.weir.log_text()
    );
    Ok(())
}
