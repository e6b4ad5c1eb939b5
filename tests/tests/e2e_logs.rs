//! Logs that are not lost (issue #10 §4), with the real `weir run` and its worker processes in a
//! network namespace: every request's access-log line reaches weir's stdout (or the configured
//! file) whole, from every worker; a flood of failing requests writes a bounded number of
//! warnings; logs to a pipe carry no ANSI colour codes. Needs root.
//!
//! `WEIR_TEST_BIN=/path/to/weir` runs another build (e.g. the one before a fix).

mod common;

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    sync::{Arc, Mutex, atomic::AtomicBool},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use common::{
    logged::{collect, collect_to_eof, to_eof, wait_eof},
    *,
};
use weir_tests::lab::{Lab, Ns, Proc, wait_until};

const PORT: u16 = 8080;
const REQUESTS: usize = 1500;

struct Running {
    proc: Proc,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Set once each pipe is at its end: every line weir wrote is in `stdout`/`stderr`.
    ends: [Arc<AtomicBool>; 2],
}

impl Running {
    /// SIGINT, weir's exit (whether it exited with success), then both pipes to their end:
    /// the lines a stop writes (the workers' last counts) may still be in the readers'
    /// hands when the process is gone.
    fn stop(&mut self) -> Result<bool> {
        let ok = interrupt(&mut self.proc)?;
        for end in &self.ends {
            wait_eof(end)?;
        }
        Ok(ok)
    }
}

/// `weir run` with `config`, stdout and stderr piped, once it listens.
fn start(ns: &Ns, config: &TempFile) -> Result<Running> {
    start_with(ns, config, weir_test_command(ns))
}

fn start_with(ns: &Ns, config: &TempFile, mut c: Command) -> Result<Running> {
    c.args(["run", "--config", config.path()])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut proc = ns.spawn_command(c)?;
    let (stdout, out_end) = collect_to_eof(proc.child_mut().stdout.take().unwrap());
    let (stderr, err_end) = collect_to_eof(proc.child_mut().stderr.take().unwrap());
    wait_until(Duration::from_secs(20), "weir to listen", || {
        if !proc.is_running() {
            bail!("weir exited:\n{}", to_eof(&stderr, &err_end));
        }
        ns.tcp_listening(PORT)
    })?;
    // Both workers ready (each logs "worker ready").
    wait_until(Duration::from_secs(20), "both workers ready", || {
        Ok(stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("worker ready"))
            .count()
            >= 2)
    })?;
    Ok(Running {
        proc,
        stdout,
        stderr,
        ends: [out_end, err_end],
    })
}

fn config(access_logs: &str, action: &str) -> TempFile {
    TempFile::new(
        "logs.toml",
        &format!(
            "[workers]\ncount = 2\n\n[load_balancer]\naccess_logs = {access_logs}\n\
             max_connections_per_worker = 1000\n\n\
             [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\nprotocol = \"HTTP\"\n\
             default_action = {action}\n\n\
             [[target_group]]\nname = \"dead\"\n\
             target = [{{ id = \"127.0.0.1\", port = 9 }}]\n"
        ),
    )
}

const FIXED: &str = r#"{ type = "fixed-response", status_code = 200, message_body = "ok" }"#;

/// `REQUESTS` requests to `/r/0..N`, 20 at a time, each on its own connection (new source
/// ports spread them over the workers). Returns the status codes curl saw.
fn requests(ns: &Ns) -> Result<Vec<u16>> {
    let mut c = ns.command("curl");
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}\n",
        "-H",
        "Connection: close",
        "--parallel",
        "--parallel-max",
        "20",
        &format!("http://127.0.0.1:{PORT}/r/[0-{}]", REQUESTS - 1),
    ]);
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(120))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// Every request has exactly one whole line, and both workers wrote some.
/// A log file's lines, each with its newline (a last line without one stays as it is).
fn lines_of(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_inclusive('\n')
        .map(str::to_string)
        .collect()
}

fn check_lines(lines: &[String]) -> Result<()> {
    let mut by_path: BTreeMap<usize, usize> = BTreeMap::new();
    let mut by_worker: BTreeMap<String, usize> = BTreeMap::new();
    for line in lines {
        let Some(text) = line.strip_suffix('\n') else {
            bail!("a line without its newline: {line:?}");
        };
        let f =
            access_log_fields(text).ok_or_else(|| anyhow::anyhow!("unparseable line: {text:?}"))?;
        if f.len() < 29 || f[0] != "http" || f[8] != "200" {
            bail!("not an access-log line of a 200: {text:?}");
        }
        let Some(n) = f[12]
            .strip_prefix(&format!("GET http://127.0.0.1:{PORT}/r/"))
            .and_then(|r| r.strip_suffix(" HTTP/1.1"))
            .and_then(|n| n.parse().ok())
        else {
            bail!("unexpected request field {:?} in {text:?}", f[12]);
        };
        *by_path.entry(n).or_default() += 1;
        *by_worker.entry(f[2].clone()).or_default() += 1;
    }
    let missing: Vec<usize> = (0..REQUESTS).filter(|n| !by_path.contains_key(n)).collect();
    let doubled: Vec<_> = by_path.iter().filter(|(_, c)| **c > 1).collect();
    if !missing.is_empty() || !doubled.is_empty() {
        bail!(
            "{} lines for {REQUESTS} requests; missing {} (first {:?}), doubled {:?}",
            lines.len(),
            missing.len(),
            missing.first(),
            doubled.first()
        );
    }
    eprintln!("lines per worker: {by_worker:?}");
    if by_worker.len() < 2 {
        bail!("only {by_worker:?} wrote lines; both workers served connections");
    }
    Ok(())
}

fn wait_for_lines(lines: &Mutex<Vec<String>>) {
    let t = Instant::now();
    while lines.lock().unwrap().len() < REQUESTS && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn access_log_lines_reach_weirs_stdout_whole_from_every_worker() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("logs")?;
    let cfg = config("{ enabled = true }", FIXED);
    let mut w = start(&ns, &cfg)?;
    let codes = requests(&ns)?;
    assert_eq!(codes.len(), REQUESTS, "curl made every request");
    assert!(codes.iter().all(|c| *c == 200), "all answered 200");
    wait_for_lines(&w.stdout);
    let lines = w.stdout.lock().unwrap().clone();
    check_lines(&lines)?;
    assert!(w.stop()?);
    Ok(())
}

#[test]
fn access_log_file_gets_whole_lines_from_every_worker() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("logfile")?;
    let path = std::env::temp_dir().join(format!("weir-access-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let cfg = config(
        &format!("{{ enabled = true, path = \"{}\" }}", path.display()),
        FIXED,
    );
    let mut w = start(&ns, &cfg)?;
    let codes = requests(&ns)?;
    assert_eq!(codes.len(), REQUESTS);
    let read = || lines_of(&path);
    let t = Instant::now();
    while read().len() < REQUESTS && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let result = check_lines(&read());
    assert!(w.stop()?);
    assert!(
        w.stdout.lock().unwrap().is_empty(),
        "nothing on stdout with a file"
    );
    let _ = std::fs::remove_file(&path);
    result
}

/// logrotate's way: the file moved away, a new one made that only root can open (`create 0600
/// root root`), then `systemctl kill -s USR1 weir`, which signals every process of the unit.
/// weir opens the path again (with root's rights) and hands it to its workers: the lines before
/// are in the old file, those after in the new one, none lost, none in both. The workers ignore
/// SIGUSR1, SIGUSR2 and SIGHUP (`killall -HUP weir` reloads once, kills nothing; SIGUSR2, a
/// HAProxy operator's reload, only warns). Before: SIGUSR1 killed weir and every worker.
#[test]
fn a_rotated_access_log_is_reopened_on_sigusr1_to_every_process() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("logrot")?;
    let path = std::env::temp_dir().join(format!("weir-rotate-{}.log", std::process::id()));
    let rotated = path.with_extension("log.1");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&rotated);
    let cfg = config(
        &format!("{{ enabled = true, path = \"{}\" }}", path.display()),
        FIXED,
    );
    let mut w = start(&ns, &cfg)?;
    let read = lines_of;
    let all_written = |p: &std::path::Path| {
        let t = Instant::now();
        while read(p).len() < REQUESTS && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Every process of weir, as `systemctl kill` finds them in the unit's cgroup.
    let everyone = |w: &Running| -> Vec<i32> {
        let mut pids: Vec<i32> = common::worker_pids(cfg.path()).into_values().collect();
        pids.push(w.proc.pid() as i32);
        pids
    };
    let signal_all = |w: &Running, s: nix::sys::signal::Signal| -> Result<()> {
        for pid in everyone(w) {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), s)?;
        }
        Ok(())
    };
    assert_eq!(requests(&ns)?.len(), REQUESTS);
    all_written(&path);
    let workers = common::worker_pids(cfg.path());
    std::fs::rename(&path, &rotated)?;
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
    }
    signal_all(&w, nix::sys::signal::Signal::SIGUSR1)?;
    wait_until(Duration::from_secs(10), "both workers' reopen", || {
        Ok(w.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("access log reopened worker="))
            .count()
            == 2)
    })
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", w.stderr.lock().unwrap().concat()))?;
    assert_eq!(requests(&ns)?.len(), REQUESTS);
    all_written(&path);
    let before = check_lines(&read(&rotated));
    let after = check_lines(&read(&path));
    // SIGUSR2 (HAProxy's reload) to every process: a warning, nothing else; then SIGHUP to
    // every process: one reload, no worker killed.
    signal_all(&w, nix::sys::signal::Signal::SIGUSR2)?;
    wait_until(Duration::from_secs(10), "the SIGUSR2 warning", || {
        Ok(w.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("SIGUSR2 does nothing here")))
    })?;
    signal_all(&w, nix::sys::signal::Signal::SIGHUP)?;
    wait_until(Duration::from_secs(10), "generation 2", || {
        Ok(w.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("generation 2 in force")))
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let still = common::worker_pids(cfg.path());
    let running = w.proc.is_running();
    let stopped = w.stop();
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&rotated);
    assert!(running, "weir died of the signals");
    assert_eq!(still, workers, "a worker was killed by SIGUSR1 or SIGHUP");
    before.map_err(|e| anyhow::anyhow!("the rotated file: {e:#}"))?;
    after.map_err(|e| anyhow::anyhow!("the new file: {e:#}"))?;
    assert!(stopped?);
    Ok(())
}

#[test]
fn a_flood_of_failing_requests_writes_bounded_warnings_without_colour() -> Result<()> {
    flood_of_failures("logflood", Ending::WeirRunsOn)
}

/// A flood that weir's stop cuts short: the counts still held are written as the workers exit.
#[test]
fn a_flood_cut_short_by_a_stop_still_has_its_suppressed_count() -> Result<()> {
    flood_of_failures("logstop", Ending::WeirStops)
}

/// What follows the flood of [`flood_of_failures`]: nothing (weir runs on), or weir's stop.
#[derive(PartialEq)]
enum Ending {
    WeirRunsOn,
    WeirStops,
}

/// `REQUESTS` requests to a target that refuses connections, one warning each unlimited, and
/// nothing after them: the warnings are bounded, and every failure is either logged or counted
/// in a `suppressed=` (`lb_l7::log_limit`: by the worker's once-a-second flush while weir runs,
/// at the worker's exit when it stops), with no ANSI colour on a pipe.
fn flood_of_failures(name: &str, ending: Ending) -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns(name)?;
    let cfg = config(
        "{ enabled = false }",
        r#"{ type = "forward", target_group = "dead" }"#,
    );
    let mut w = start(&ns, &cfg)?;
    let t = Instant::now();
    let codes = requests(&ns)?;
    let secs = t.elapsed().as_secs() + 1;
    assert_eq!(codes.len(), REQUESTS);
    assert!(codes.iter().all(|c| *c == 502 || *c == 503), "{codes:?}");
    let failures = codes.iter().filter(|c| **c == 502).count();
    let stderr = w.stderr.clone();
    let accounted = || {
        let err = stderr.lock().unwrap().concat();
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("target connection failed"))
            .collect();
        let logged = lines.iter().filter(|l| l.contains("target_addr")).count();
        let suppressed: usize = lines.iter().filter_map(|l| field(l, "suppressed=")).sum();
        (logged, suppressed, lines.len())
    };
    let flushed = match ending {
        Ending::WeirRunsOn => wait_until(
            Duration::from_secs(5),
            "every failure logged or counted",
            || {
                let (logged, suppressed, _) = accounted();
                Ok(logged + suppressed >= failures)
            },
        ),
        Ending::WeirStops => Ok(()),
    };
    assert!(w.stop()?);
    let (logged, suppressed, warnings) = accounted();
    let err = w.stderr.lock().unwrap().concat();
    // At most 5 a second per call site and worker, and one count a second per worker after a
    // flood; curl ran `secs` seconds.
    let bound = (5 + 1) * 2 * (secs as usize + 2);
    eprintln!(
        "{warnings} warnings for {REQUESTS} requests ({failures} failed) in {secs} s \
         (bound {bound}): {logged} logged, {suppressed} counted as suppressed"
    );
    assert!(logged > 0, "the failures are logged at all:\n{err}");
    assert!(warnings <= bound, "{warnings} warnings > {bound}");
    assert!(suppressed > 0, "the suppressed count is reported:\n{err}");
    flushed?;
    assert_eq!(
        logged + suppressed,
        failures,
        "every failed connection is logged or counted once"
    );
    assert!(
        !err.contains("\x1b["),
        "no ANSI colour codes in logs written to a pipe:\n{}",
        &err[..err.len().min(600)]
    );
    Ok(())
}

/// `WEIR_LOG_FORMAT=json`: every line on stderr, the control plane's and the workers' (a
/// failing request's warning comes from a worker), is one JSON object with a level and a message
/// (for a log shipper); an unknown format is refused before anything starts.
#[test]
fn json_logs_on_request_from_every_process() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("logjson")?;
    let cfg = config(
        "{ enabled = false }",
        r#"{ type = "forward", target_group = "dead" }"#,
    );
    let mut c = weir_test_command(&ns);
    c.env("WEIR_LOG_FORMAT", "json");
    let mut w = start_with(&ns, &cfg, c)?;
    let out = ns.exec(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{PORT}/"),
    ])?;
    assert_eq!(out, "502");
    wait_until(Duration::from_secs(5), "the worker's warning", || {
        Ok(w.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("target connection failed")))
    })?;
    assert!(w.stop()?);
    let lines = w.stderr.lock().unwrap().clone();
    assert!(lines.len() > 5, "{lines:?}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l.trim())
            .map_err(|e| anyhow::anyhow!("not a JSON line ({e}): {l}"))?;
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{l}"
        );
    }
    let mut c = weir_test_command(&ns);
    let bad = c
        .args(["check", "--config", cfg.path()])
        .env("WEIR_LOG_FORMAT", "xml")
        .output()?;
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("WEIR_LOG_FORMAT") && said.contains("json"),
        "{said}"
    );
    Ok(())
}

/// Worker pids from the supervisor's "worker started" lines (the latest per worker).
fn worker_pids(stderr: &[String]) -> BTreeMap<String, i32> {
    let mut pids = BTreeMap::new();
    for l in stderr.iter().filter(|l| l.contains("worker started")) {
        let worker = l.split("worker=").nth(1).and_then(|r| r.split(' ').next());
        let pid = l
            .split("pid=Some(")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|p| p.parse().ok());
        if let (Some(w), Some(p)) = (worker, pid) {
            pids.insert(w.to_string(), p);
        }
    }
    pids
}

#[test]
fn a_stdout_nobody_reads_blocks_no_request_and_hides_no_worker_death() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("logblock")?;
    let cfg = config("{ enabled = true }", FIXED);
    let mut c = weir_test_command(&ns);
    c.args(["run", "--config", cfg.path()])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut proc = ns.spawn_command(c)?;
    // Held open, never read: weir's stdout fills and blocks.
    let _stdout = proc.child_mut().stdout.take().unwrap();
    let stderr = collect(proc.child_mut().stderr.take().unwrap());
    let ready = |n: usize| {
        stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("worker ready"))
            .count()
            >= n
    };
    wait_until(Duration::from_secs(20), "both workers ready", || {
        Ok(ready(2))
    })?;
    // 1,500 lines (≈ 400 kB) fill the pipe and the relay's queue: requests still all succeed.
    let t = Instant::now();
    let codes = requests(&ns)?;
    assert_eq!(codes.len(), REQUESTS);
    assert!(codes.iter().all(|c| *c == 200));
    eprintln!(
        "{REQUESTS} requests in {:?} with stdout blocked",
        t.elapsed()
    );
    // Both workers killed: the supervisor sees them die and restarts them.
    let pids = worker_pids(&stderr.lock().unwrap());
    assert_eq!(pids.len(), 2, "{pids:?}");
    for pid in pids.values() {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        )?;
    }
    wait_until(Duration::from_secs(15), "the workers restarted", || {
        let died = stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("worker died"))
            .count();
        Ok(died >= 2 && ready(4))
    })?;
    proc.kill()?;
    Ok(())
}

/// The number after `key` in a log line (`suppressed=17`).
fn field(line: &str, key: &str) -> Option<usize> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
