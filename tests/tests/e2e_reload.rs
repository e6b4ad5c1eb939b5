//! Reload of the whole configuration while weir serves (issue #13), real `weir`, real targets,
//! real clients, in a namespace. Needs root.
//!
//! - a storm: 100 reloads alternating two valid files (different rules and target groups, an
//!   HTTP and an HTTPS listener) under keep-alive and new-connection HTTP/1.1 load, curl's
//!   HTTP/2 (40 checked requests in a row on one TLS connection) and h2load's HTTP/2: no failed
//!   request; every response belongs to one of the two configurations; a keep-alive connection
//!   (HTTP/1.1 and HTTP/2) moves to the new generation between its requests; a request in flight
//!   across a reload is answered by the target of the generation it started in while new
//!   requests get the new one; every worker ends on generation 101.
//! - bad reloads (syntax error, unknown target group, missing certificate): refused with the
//!   file's location in the log, the generation unchanged, traffic unaffected.
//! - a worker SIGKILLed after a reload comes back with the control plane's generation, not
//!   with the file on disk (changed since, or broken).
//!
//! `WEIR_TEST_H2_ENGINE=weir|hyper` serves the HTTP/2 clients on that engine (else the default).

mod common;
mod e2e_reload_support;

use std::{
    io::Write,
    net::{SocketAddr, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use common::{TempFile, self_signed_cert_with, weir_once, worker_pids};
use e2e_reload_support::{Backend, Outcome, Weir, read_response, request_new_conn};
use weir_tests::lab::{Lab, Ns, wait_until};

const PORT: u16 = 8080;
const TLS_PORT: u16 = 8443;
const SLOW: Duration = Duration::from_millis(600);

fn to() -> SocketAddr {
    ([127, 0, 0, 1], PORT).into()
}

/// Configuration `x` ("a", "b", "c"): `/which` answers `config-X` from a fixed-response rule,
/// everything else goes to group `app-x` whose one target is `target`; "b" has one more rule.
fn config(x: &str, target: SocketAddr, extra: &str) -> String {
    let more = if x == "b" {
        "[[listener.rule]]\npriority = 20\ncondition = [{ field = \"path-pattern\", values = [\"/only-b\"] }]\n\
         action = { type = \"fixed-response\", status_code = 200, message_body = \"only-b\" }\n"
    } else {
        ""
    };
    // `WEIR_TEST_H2_ENGINE=weir|hyper`: the HTTP/2 clients on that engine (else the default).
    let engine = std::env::var("WEIR_TEST_H2_ENGINE")
        .map(|e| format!("http2_engine = \"{e}\"\n"))
        .unwrap_or_default();
    format!(
        "[workers]\ncount = 2\n\n[load_balancer]\ndrain_timeout_seconds = 5\n{engine}\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\n\
         default_action = {{ type = \"forward\", target_group = \"app-{x}\" }}\n\
         [[listener.rule]]\npriority = 10\ncondition = [{{ field = \"path-pattern\", values = [\"/which\"] }}]\n\
         action = {{ type = \"fixed-response\", status_code = 200, message_body = \"config-{}\" }}\n{more}\n\
         {extra}\n\
         [[target_group]]\nname = \"app-{x}\"\nport = {}\ntarget = [{{ id = \"{}\" }}]\n",
        x.to_uppercase(),
        target.port(),
        target.ip()
    )
}

/// Replaces the file's content in one rename, so weir never reads half a file.
fn write_config(cfg: &TempFile, text: &str) -> Result<()> {
    let tmp = cfg.0.with_extension("new");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &cfg.0)?;
    Ok(())
}

fn sighup(weir: &Weir) {
    weir.signal(libc::SIGHUP);
}

/// The generation weir's status file says is in force.
fn status_generation(weir: &Weir) -> Result<u64> {
    let path = format!("/run/weir/status-{}.json", weir.proc.pid());
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    v["generation"]
        .as_u64()
        .context("generation in the status file")
}

/// Waits until `n` new connections in a row get `want` from `/which` (every worker switched).
fn wait_config(ns: &Ns, want: &str) -> Result<()> {
    let mut in_a_row = 0;
    wait_until(Duration::from_secs(10), &format!("{want} in force"), || {
        match request_new_conn(ns, to(), "/which", Duration::from_secs(5)) {
            Outcome::Answered(200, b) if b == want => in_a_row += 1,
            _ => in_a_row = 0,
        }
        Ok(in_a_row >= 8)
    })
}

/// A keep-alive connection's view: the configurations its `/which` answers named, and how many
/// times it had to reconnect.
type Seen = (Vec<String>, u64);

struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    /// Per keep-alive connection: the configurations its `/which` answers named, and whether
    /// it had to reconnect.
    keepalive_seen: Arc<Mutex<Vec<Seen>>>,
    /// curl runs whose one HTTP/2 connection answered from both configurations.
    h2_across: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Is `(path, status, body)` an answer of configuration A or B?
fn valid(path: &str, status: u16, body: &str) -> bool {
    status == 200
        && match path {
            "/which" => body == "config-A" || body == "config-B",
            "/only-b" => body == "only-b" || body == "target a\n",
            _ => body == "target a\n" || body == "target b\n",
        }
}

fn start_load(ns: &Ns) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let keepalive_seen = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for k in 0..2 {
        let (ns, stop, ok, failures, seen) = (
            ns.clone(),
            stop.clone(),
            ok.clone(),
            failures.clone(),
            keepalive_seen.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut configs = Vec::new();
            let mut reconnects = 0;
            let mut conn: Option<TcpStream> = None;
            let paths = ["/which", "/app", "/only-b"];
            let mut i = 0usize;
            while !stop.load(Relaxed) {
                let s = match conn.as_mut() {
                    Some(s) => s,
                    None => {
                        let c = ns.in_ns(|| TcpStream::connect(to()));
                        match c {
                            Ok(Ok(s)) => {
                                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                                if i > 0 {
                                    reconnects += 1;
                                }
                                conn.insert(s)
                            }
                            other => {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("keep-alive {k} connect: {other:?}"));
                                std::thread::sleep(Duration::from_millis(50));
                                continue;
                            }
                        }
                    }
                };
                let path = paths[i % paths.len()];
                i += 1;
                let req = format!("GET {path} HTTP/1.1\r\nhost: weir.test\r\n\r\n");
                let r = s
                    .write_all(req.as_bytes())
                    .map_err(|e| e.to_string())
                    .and_then(|()| read_response(s));
                match r {
                    Ok((status, head, body)) => {
                        if !valid(path, status, &body) {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("keep-alive {k} {path}: {status} {body:?}"));
                        } else {
                            ok.fetch_add(1, Relaxed);
                        }
                        if path == "/which" && configs.last() != Some(&body) {
                            configs.push(body);
                        }
                        if head.contains("connection: close") {
                            conn = None;
                        }
                    }
                    Err(why) => {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("keep-alive {k} {path}: {why}"));
                        conn = None;
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            seen.lock().unwrap().push((configs, reconnects));
        }));
    }
    for n in 0..2 {
        let (ns, stop, ok, failures) = (ns.clone(), stop.clone(), ok.clone(), failures.clone());
        threads.push(std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Relaxed) {
                let path = ["/app", "/which"][i % 2];
                i += 1;
                match request_new_conn(&ns, to(), path, Duration::from_secs(10)) {
                    Outcome::Answered(status, body) if valid(path, status, &body) => {
                        ok.fetch_add(1, Relaxed);
                    }
                    other => failures
                        .lock()
                        .unwrap()
                        .push(format!("new-conn {n} {path}: {other:?}")),
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
    }
    // HTTP/2 (prior knowledge): curl sends 40 requests on one connection, one after another;
    // each is checked, and a connection that spans a reload must see both configurations.
    let h2_across = Arc::new(AtomicU64::new(0));
    let (ns2, stop2, ok2, failures2, across) = (
        ns.clone(),
        stop.clone(),
        ok.clone(),
        failures.clone(),
        h2_across.clone(),
    );
    threads.push(std::thread::spawn(move || {
        while !stop2.load(Relaxed) {
            match h2_run(&ns2) {
                Ok((answered, bad, configs)) => {
                    ok2.fetch_add(answered, Relaxed);
                    failures2.lock().unwrap().extend(bad);
                    if configs > 1 {
                        across.fetch_add(1, Relaxed);
                    }
                }
                Err(e) => failures2.lock().unwrap().push(format!("h2 curl: {e:#}")),
            }
        }
    }));
    Load {
        stop,
        ok,
        failures,
        keepalive_seen,
        h2_across,
        threads,
    }
}

/// One curl run: 40 `/which` over one HTTP/2 connection to the HTTPS listener. (answered, failures, configurations in
/// the order seen).
fn h2_run(ns: &Ns) -> Result<(u64, Vec<String>, usize)> {
    let mut c = ns.command("curl");
    // HTTP/2 over TLS (ALPN): curl 7.88 does not reuse a prior-knowledge h2c connection.
    c.args(["-sk", "--http2", "--max-time", "20"])
        .args(["-w", "|%{http_version} %{http_code} %{num_connects}\\n"]);
    for _ in 0..40 {
        c.arg(format!("https://127.0.0.1:{TLS_PORT}/which"));
    }
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(30))?;
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let (mut answered, mut bad, mut configs, mut connects) = (0, Vec::new(), Vec::new(), 0);
    for line in out.lines() {
        let (body, meta) = line.split_once('|').unwrap_or((line, ""));
        let f: Vec<&str> = meta.split_whitespace().collect();
        connects += f.get(2).and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
        if f.first() != Some(&"2") || f.get(1) != Some(&"200") || !valid("/which", 200, body) {
            bad.push(format!("h2 /which: {line:?}"));
            continue;
        }
        answered += 1;
        if configs.last() != Some(&body) {
            configs.push(body);
        }
    }
    if out.lines().count() != 40 || connects != 1 {
        bad.push(format!(
            "h2: {} answers of 40 on {connects} connections",
            out.lines().count()
        ));
    }
    Ok((answered, bad, configs.len()))
}

/// h2load's summary: (succeeded, failed, errored, non-2xx).
fn h2load_summary(out: &str) -> Result<(u64, u64, u64, u64)> {
    let line = out
        .lines()
        .find(|l| l.starts_with("requests:"))
        .with_context(|| format!("no requests line in h2load's output:\n{out}"))?;
    let num = |word: &str| -> u64 {
        line.split(',')
            .find(|p| p.trim().ends_with(word))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX)
    };
    let codes = out
        .lines()
        .find(|l| l.starts_with("status codes:"))
        .context("no status codes line")?;
    let non2xx: u64 = codes
        .split(',')
        .filter(|p| !p.contains("2xx"))
        .filter_map(|p| {
            p.split_whitespace()
                .rev()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum();
    Ok((num("succeeded"), num("failed"), num("errored"), non2xx))
}

#[test]
fn a_reload_storm_loses_no_request_and_answers_each_from_its_generation() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("storm")?;
    ns.ip(&["link", "set", "lo", "up"])?;
    let a = Backend::start(&ns, "127.0.0.1:0", "a", SLOW)?;
    let b = Backend::start(&ns, "127.0.0.2:0", "b", SLOW)?;
    let dir = std::env::temp_dir().join(format!("weir-storm-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (cert, key) = openssl_cert(&dir)?;
    let (ca, cb) = (
        config("a", a.addr, &tls_listener_of("a", &cert, &key)),
        config("b", b.addr, &tls_listener_of("b", &cert, &key)),
    );
    let cfg = TempFile::new("storm.toml", &ca);
    let mut weir = Weir::start(&ns, &cfg, 2)?;
    wait_config(&ns, "config-A")?;

    let load = start_load(&ns);
    let mut h2 = ns.command("h2load");
    h2.args(["-D", "25", "-c", "4", "-m", "8", "-t", "1"])
        .arg(format!("http://127.0.0.1:{PORT}/app"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let h2 = h2.spawn().context("h2load")?;

    let started = Instant::now();
    let mut in_flight_checks = 0;
    for i in 1..=100u32 {
        // Reload i makes generation i + 1: B for odd i, A for even.
        let (text, new, old) = if i % 2 == 1 {
            (&cb, "b", "a")
        } else {
            (&ca, "a", "b")
        };
        if i % 10 == 1 {
            // A request in flight across the reload: the old generation's target answers it;
            // a new request after the switch gets the new generation.
            wait_config(&ns, &format!("config-{}", old.to_uppercase()))?;
            let ns2 = ns.clone();
            let slow = std::thread::spawn(move || {
                request_new_conn(&ns2, to(), "/slow", Duration::from_secs(10))
            });
            std::thread::sleep(SLOW / 3);
            write_config(&cfg, text)?;
            sighup(&weir);
            wait_config(&ns, &format!("config-{}", new.to_uppercase()))?;
            let fresh = request_new_conn(&ns, to(), "/app", Duration::from_secs(10));
            assert_eq!(fresh, Outcome::Answered(200, format!("target {new}\n")));
            let slow = slow.join().unwrap();
            assert_eq!(
                slow,
                Outcome::Answered(200, format!("target {old}\n")),
                "a request in flight across reload {i} is answered by its own generation's target"
            );
            in_flight_checks += 1;
        } else {
            write_config(&cfg, text)?;
            sighup(&weir);
        }
        // Signals coalesce: the next SIGHUP waits for this one's reload.
        wait_until(Duration::from_secs(5), &format!("reload {i}"), || {
            Ok(weir.log_text().matches("configuration reloaded").count() >= i as usize)
        })?;
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_until(Duration::from_secs(10), "generation 101", || {
        Ok(status_generation(&weir)? == 101)
    })?;
    wait_config(&ns, "config-A")?;
    let storm = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    load.stop.store(true, Relaxed);
    for t in load.threads {
        t.join().unwrap();
    }
    let h2 = h2.wait_with_output()?;
    let h2out = String::from_utf8_lossy(&h2.stdout).into_owned();
    let (h2_ok, h2_failed, h2_errored, h2_non2xx) = h2load_summary(&h2out)?;

    let log = weir.log_text();
    let failures = load.failures.lock().unwrap();
    let seen = load.keepalive_seen.lock().unwrap();
    eprintln!(
        "storm: 100 reloads in {storm:?}; checked clients (HTTP/1.1, HTTP/2 curl) {} answered, {} failed; h2load {h2_ok} succeeded, \
         {h2_failed} failed, {h2_errored} errored, {h2_non2xx} non-2xx; keep-alive connections saw {:?}; HTTP/2 connections across a reload {}",
        load.ok.load(Relaxed),
        failures.len(),
        seen.iter().map(|(c, r)| (c.len(), *r)).collect::<Vec<_>>(),
        load.h2_across.load(Relaxed)
    );
    assert!(
        failures.is_empty(),
        "failed requests: {:?}",
        &failures[..failures.len().min(10)]
    );
    assert!(
        h2_ok > 1000 && h2_failed == 0 && h2_errored == 0 && h2_non2xx == 0,
        "{h2out}"
    );
    assert_eq!(in_flight_checks, 10);
    assert!(
        load.h2_across.load(Relaxed) > 0,
        "an HTTP/2 connection moves to the new generation between its streams"
    );
    for (configs, reconnects) in seen.iter() {
        assert_eq!(
            *reconnects, 0,
            "a keep-alive connection was closed under it"
        );
        assert!(
            configs.len() > 10,
            "one keep-alive connection follows the generations: {configs:?}"
        );
    }
    assert_eq!(log.matches("configuration reloaded").count(), 100, "{log}");
    assert!(!log.contains("NOT applied"), "{log}");
    assert_eq!(
        log.matches("configuration generation in force").count(),
        200,
        "each of 2 workers took 100 generations"
    );
    weir.signal(libc::SIGTERM);
    weir.wait_exit(Duration::from_secs(15))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A self-signed P-256 certificate in `dir`: (certificate, key) paths.
fn openssl_cert(dir: &std::path::Path) -> Result<(String, String)> {
    let (cert, key) = self_signed_cert_with(
        dir,
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    )?;
    Ok((cert.display().to_string(), key.display().to_string()))
}

/// An HTTPS listener with the same rules as configuration `x`'s HTTP one.
fn tls_listener_of(x: &str, cert: &str, key: &str) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1\"\nport = {TLS_PORT}\nprotocol = \"HTTPS\"\n\
         certificate = [{{ certificate_file = \"{cert}\", private_key_file = \"{key}\" }}]\n\
         default_action = {{ type = \"forward\", target_group = \"app-{x}\" }}\n\
         [[listener.rule]]\npriority = 10\ncondition = [{{ field = \"path-pattern\", values = [\"/which\"] }}]\n\
         action = {{ type = \"fixed-response\", status_code = 200, message_body = \"config-{}\" }}\n",
        x.to_uppercase()
    )
}

fn tls_listener(cert: &str, key: &str) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1\"\nport = {TLS_PORT}\nprotocol = \"HTTPS\"\n\
         certificate = [{{ certificate_file = \"{cert}\", private_key_file = \"{key}\" }}]\n\
         default_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"tls-ok\" }}\n"
    )
}

fn curl_https(ns: &Ns, path: &str) -> Result<String> {
    let out = weir_tests::lab::output(
        ns.command("curl")
            .args(["-sk", "--max-time", "5"])
            .arg(format!("https://127.0.0.1:{TLS_PORT}{path}")),
        Duration::from_secs(10),
    )?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_bad_reload_changes_nothing_and_says_where() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("badrl")?;
    ns.ip(&["link", "set", "lo", "up"])?;
    let dir = std::env::temp_dir().join(format!("weir-badrl-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (cert, key) = openssl_cert(&dir)?;
    let a = Backend::start(&ns, "127.0.0.1:0", "a", SLOW)?;
    let b = Backend::start(&ns, "127.0.0.2:0", "b", SLOW)?;
    let good = config("a", a.addr, &tls_listener(&cert, &key));
    let cfg = TempFile::new("badrl.toml", &good);
    let mut weir = Weir::start(&ns, &cfg, 2)?;
    wait_config(&ns, "config-A")?;
    assert_eq!(curl_https(&ns, "/")?, "tls-ok");

    let bads = [
        (
            "syntax error",
            good.replace("drain_timeout_seconds = 5", "drain_timeout_seconds = "),
        ),
        (
            "unknown target group",
            good.replace("target_group = \"app-a\" }", "target_group = \"nope\" }"),
        ),
        (
            "missing certificate",
            good.replace(&cert, "/nonexistent/weir-test-cert.pem"),
        ),
    ];
    let expect = [
        format!("{}:5:25:", cfg.path()),
        format!("{}:10:", cfg.path()),
        format!("{}:", cfg.path()),
    ];
    let want_field = ["", "nope", "certificate_file"];
    for (k, (what, text)) in bads.iter().enumerate() {
        let refused_before = weir.log_text().matches("reload refused").count();
        write_config(&cfg, text)?;
        sighup(&weir);
        wait_until(Duration::from_secs(10), "the refusal in the log", || {
            Ok(weir.log_text().matches("reload refused").count() > refused_before)
        })?;
        let log = weir.log_text();
        let line = log
            .lines()
            .filter(|l| l.contains("reload refused"))
            .nth(refused_before)
            .unwrap()
            .to_string();
        eprintln!("{what}: {line}");
        assert!(
            line.contains(&expect[k]),
            "{what}: {line} lacks {}",
            expect[k]
        );
        assert!(line.contains(want_field[k]), "{what}: {line}");
        assert!(line.contains("generation 1 stays"), "{line}");
        assert_eq!(status_generation(&weir)?, 1, "{what}");
        // `weir status` says it too (a SIGHUP's refusal was in the log only).
        let (ok, st, err) = weir_once(&ns, &["status"])?;
        assert!(ok, "weir status: {err}");
        assert!(
            st.contains("last reload:  REFUSED, generation 1 stays:") && st.contains(&expect[k]),
            "{what}: {st}"
        );
        for _ in 0..20 {
            assert_eq!(
                request_new_conn(&ns, to(), "/which", Duration::from_secs(5)),
                Outcome::Answered(200, "config-A".into()),
                "{what}: traffic unaffected"
            );
            assert_eq!(
                request_new_conn(&ns, to(), "/app", Duration::from_secs(5)),
                Outcome::Answered(200, "target a\n".into())
            );
        }
        assert_eq!(curl_https(&ns, "/")?, "tls-ok", "{what}");
    }
    // And a good one still goes through.
    write_config(&cfg, &config("b", b.addr, &tls_listener(&cert, &key)))?;
    sighup(&weir);
    wait_config(&ns, "config-B").with_context(|| weir.log_text())?;
    assert_eq!(status_generation(&weir)?, 2);
    let (_, st, _) = weir_once(&ns, &["status"])?;
    assert!(!st.contains("REFUSED"), "an applied reload clears it: {st}");
    // `weir stats` (the XDP counters) says this daemon has no XDP tier, not that none runs
    // (unless another test's XDP daemon has pins now: `weir stats` would show those).
    let (ok, _, err) = weir_once(&ns, &["stats"])?;
    let other_pins = std::fs::read_dir(lb_userspace::xdp::pins::BPFFS_ROOT)
        .is_ok_and(|mut d| d.next().is_some());
    assert!(
        other_pins || (!ok && err.contains("without the XDP tier")),
        "{err}"
    );
    assert_eq!(curl_https(&ns, "/")?, "tls-ok");
    weir.signal(libc::SIGTERM);
    weir.wait_exit(Duration::from_secs(15))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn a_worker_killed_after_a_reload_comes_back_with_the_new_generation() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("kill")?;
    ns.ip(&["link", "set", "lo", "up"])?;
    let a = Backend::start(&ns, "127.0.0.1:0", "a", SLOW)?;
    let b = Backend::start(&ns, "127.0.0.2:0", "b", SLOW)?;
    let cfg = TempFile::new("kill.toml", &config("a", a.addr, ""));
    let weir = Weir::start(&ns, &cfg, 2)?;
    wait_config(&ns, "config-A")?;
    write_config(&cfg, &config("b", b.addr, ""))?;
    sighup(&weir);
    wait_config(&ns, "config-B")?;
    // The file on disk changes again, without a reload: first to a valid third configuration,
    // then to a broken one. A restarted worker must run generation 2 all the same.
    let disk = [
        config("c", a.addr, "").replace("config-C", "config-C-from-disk"),
        "this is not [toml".to_string(),
    ];
    for (k, text) in disk.iter().enumerate() {
        write_config(&cfg, text)?;
        let ready = weir.log_text().matches("worker ready").count();
        let pids = worker_pids(cfg.path());
        let pid = *pids.get(&k).context("worker pid")?;
        // SAFETY: kill(2) on a worker of the weir this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_until(Duration::from_secs(15), "the worker back and ready", || {
            Ok(weir.log_text().matches("worker ready").count() > ready)
        })
        .with_context(|| weir.log_text())?;
        let back = worker_pids(cfg.path());
        assert_ne!(back.get(&k), Some(&pid), "worker {k} was restarted");
        for _ in 0..40 {
            assert_eq!(
                request_new_conn(&ns, to(), "/which", Duration::from_secs(5)),
                Outcome::Answered(200, "config-B".into()),
                "disk version {k}: every worker runs generation 2"
            );
        }
    }
    assert_eq!(status_generation(&weir)?, 2);
    Ok(())
}
