//! Open-file limits. `weir run` raises `RLIMIT_NOFILE` to what `max_connections_per_worker`
//! needs (× 2 + slack), or refuses to start and says what to set; a worker that runs out of
//! descriptors anyway sheds the connections it cannot take (reset, counted, one warning per
//! second) instead of spinning or leaving them queued, and serves again once descriptors free
//! up. Real binary, real sockets, in a network namespace. Needs root.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use common::*;
use weir_tests::lab::{Lab, Ns, Proc, wait_until};

/// `nsenter --net=<ns> -- PREFIX… weir ARGS…`: weir under a wrapper (prlimit, setpriv).
fn wrapped_weir(ns: &Ns, prefix: &[&str], args: &[&str], log: &Path) -> Result<Command> {
    let mut c = Command::new("nsenter");
    c.arg(format!(
        "--net=/run/netns/{}",
        ns.netns().context("a lab namespace")?
    ))
    .arg("--")
    .args(prefix)
    .arg(weir_bin())
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(log)?);
    Ok(c)
}

/// [`wrapped_weir`] started, once port 8080 listens.
fn listening(ns: &Ns, prefix: &[&str], args: &[&str], log: &Path) -> Result<Proc> {
    let mut p = ns.spawn_command(wrapped_weir(ns, prefix, args, log)?)?;
    wait_until(Duration::from_secs(20), "weir to listen", || {
        if !p.is_running() {
            bail!("weir exited:\n{}", read_log(log));
        }
        ns.tcp_listening(8080)
    })?;
    Ok(p)
}

fn config(text: &str) -> TempFile {
    TempFile::new("nofile.toml", text)
}

const LISTENER: &str = "[[listener]]\naddress = \"127.0.0.1\"\nport = 8080\n\
    default_action = { type = \"fixed-response\", status_code = 200, message_body = \"ok\" }\n";

fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("weir-nofile-{}-{name}.log", std::process::id()))
}

/// The log without ANSI colours.
fn read_log(p: &Path) -> String {
    let raw = std::fs::read_to_string(p).unwrap_or_default();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn weir_refuses_to_start_when_the_limit_cannot_fit_the_configured_connections() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("nofile-refuse")?;
    let cfg = config(&format!(
        "[load_balancer]\nmax_connections_per_worker = 100000\n\n{LISTENER}"
    ));
    let log = log_path("refuse");
    // A hard limit of 1024 that weir may not raise (no CAP_SYS_RESOURCE).
    let prefix = [
        "prlimit",
        "--nofile=1024:1024",
        "--",
        "setpriv",
        "--bounding-set=-sys_resource",
        "--",
    ];
    let c = wrapped_weir(&ns, &prefix, &["run", "--config", cfg.path()], &log)?;
    let mut weir = ns.spawn_command(c)?;
    let status = weir
        .wait_timeout(Duration::from_secs(20))?
        .context("weir did not refuse to start")?;
    let text = read_log(&log);
    let _ = std::fs::remove_file(&log);
    assert!(!status.success(), "weir exits with an error:\n{text}");
    for want in [
        "max_connections_per_worker = 100000",
        "needs 200065 open files",
        "LimitNOFILE=200065",
        "ulimit -n 200065",
    ] {
        assert!(text.contains(want), "the message says {want:?}:\n{text}");
    }
    assert!(!ns.tcp_listening(8080)?, "nothing was started");
    Ok(())
}

/// `Max open files` of a process: (soft, hard).
fn nofile_of(pid: &str) -> Result<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no Max open files")?;
    let f: Vec<&str> = line.split_whitespace().collect();
    Ok((f[3].parse()?, f[4].parse()?))
}

fn soft_nofile(pid: u32) -> Result<u64> {
    Ok(nofile_of(&pid.to_string())?.0)
}

#[test]
fn weir_raises_the_soft_limit_its_workers_inherit() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("nofile-raise")?;
    let cfg = config(&format!(
        "[workers]\ncount = 1\n\n[load_balancer]\nmax_connections_per_worker = 1000\n\n{LISTENER}"
    ));
    let log = log_path("raise");
    let (_, hard) = nofile_of("self")?;
    let limit = format!("--nofile=64:{hard}");
    let prefix = ["prlimit", limit.as_str(), "--"];
    let mut weir = listening(&ns, &prefix, &["run", "--config", cfg.path()], &log)?;
    // 1000 × 2 + 64 slack + 1 listener.
    assert_eq!(soft_nofile(weir.pid())?, 2065);
    let find_worker = || {
        std::fs::read_dir("/proc")
            .ok()?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find(|p| {
                std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                    c.split(|&b| b == 0).any(|a| a == b"worker")
                        && c.windows(cfg.path().len())
                            .any(|w| w == cfg.path().as_bytes())
                })
            })
    };
    let mut worker = None;
    // Until the worker is sandboxed (it started serving): weir is past its start-up by then.
    wait_until(Duration::from_secs(20), "the worker", || {
        worker = find_worker();
        Ok(worker.is_some_and(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status"))
                .is_ok_and(|s| s.lines().any(|l| l == "Seccomp:\t2"))
        }))
    })?;
    let worker = worker.context("the worker")?;
    assert_eq!(soft_nofile(worker)?, 2065, "the worker inherits it");
    assert!(interrupt(&mut weir)?);
    let _ = std::fs::remove_file(&log);
    Ok(())
}

/// A supervisor's small limit (`LimitNOFILE=256`, hard) with the default connection count:
/// weir fits the workers to it. The fixed slack of 256 descriptors left each worker one
/// connection: with one client connected, every other was refused.
#[test]
fn a_small_limit_still_serves_many_connections() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("nofile-small")?;
    let cfg = config(&format!("[workers]\ncount = 1\n\n{LISTENER}"));
    let log = log_path("small");
    let prefix = ["prlimit", "--nofile=256:256", "--"];
    let mut weir = listening(&ns, &prefix, &["run", "--config", cfg.path()], &log)?;
    let connect =
        || -> Result<TcpStream> { Ok(ns.in_ns(|| TcpStream::connect("127.0.0.1:8080"))??) };
    // 40 clients at once, each served and kept open.
    let mut held = Vec::new();
    for i in 0..40 {
        let mut c = connect()?;
        assert!(request(&mut c)?, "client {i} refused:\n{}", read_log(&log));
        held.push(c);
    }
    let text = read_log(&log);
    assert!(
        text.contains("each worker takes at most"),
        "the fit is said:\n{text}"
    );
    drop(held);
    assert!(interrupt(&mut weir)?);
    let _ = std::fs::remove_file(&log);
    Ok(())
}

/// CPU time (utime + stime, clock ticks) of a process.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .context("stat")?
        .1
        .split_whitespace()
        .collect();
    // Fields 14 and 15 of stat; after the ')' the list starts at field 3.
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

/// Connects and sends a request; `true` if it was served (a 200 came back), `false` if the
/// connection was reset or closed unanswered.
fn request(c: &mut TcpStream) -> Result<bool> {
    c.set_read_timeout(Some(Duration::from_secs(3)))?;
    if c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_err() {
        return Ok(false);
    }
    let mut buf = [0u8; 512];
    match c.read(&mut buf) {
        Ok(n) if n > 0 => Ok(buf[..n].starts_with(b"HTTP/1.1 200")),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(false),
        Err(e) => bail!("neither served nor refused within 3 s: {e}"),
    }
}

/// `total_rejected=N` of the last out-of-descriptors warning, and how many there were.
fn rejected_logged(text: &str) -> (u64, usize) {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("out of file descriptors"))
        .collect();
    let total = lines
        .last()
        .and_then(|l| l.split("total_rejected=").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (total, lines.len())
}

#[test]
fn a_worker_out_of_descriptors_sheds_connections_without_spinning() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("nofile-emfile")?;
    // Set in the file, so the worker does not fit it to its limit: 64 descriptors run out first.
    let cfg = config(&format!(
        "[workers]\npin_cpus = false\n\n[load_balancer]\nmax_connections_per_worker = 10000\n\n{LISTENER}"
    ));
    let log = log_path("emfile");
    let prefix = ["prlimit", "--nofile=64:64", "--"];
    let args = ["worker", "--index", "0", "--config", cfg.path()];
    let worker: Proc = listening(&ns, &prefix, &args, &log)?;
    let connect =
        || -> Result<TcpStream> { Ok(ns.in_ns(|| TcpStream::connect("127.0.0.1:8080"))??) };
    // 100 connections, held open: the first ~50 are served, the rest find no descriptor.
    let mut held = Vec::new();
    let (mut served, mut shed) = (0, 0);
    for _ in 0..100 {
        let mut c: TcpStream = connect()?;
        if request(&mut c)? {
            served += 1;
            held.push(c);
        } else {
            shed += 1;
        }
    }
    assert!(served > 20 && shed > 20, "served {served}, shed {shed}");
    // Still at the limit, with clients arriving: the worker sheds them without spinning.
    let pid = worker.pid();
    let (t0, cpu0) = (Instant::now(), cpu_ticks(pid)?);
    let mut more = 0;
    while t0.elapsed() < Duration::from_secs(2) {
        let mut c = connect()?;
        assert!(!request(&mut c)?, "no descriptor is free");
        more += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu = cpu_ticks(pid)? - cpu0;
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "served {served}, shed {shed}; then {more} more shed in {secs:.1} s for {cpu} ticks of CPU"
    );
    assert!(
        (cpu as f64) < 0.2 * 100.0 * secs,
        "{cpu} ticks of CPU in {secs:.1} s"
    );
    // Counted: the warning of the next interval carries the total.
    std::thread::sleep(Duration::from_millis(1100));
    let mut last = connect()?;
    assert!(!request(&mut last)?);
    let want = (shed + more + 1) as u64;
    wait_until(Duration::from_secs(5), "the count in the log", || {
        Ok(rejected_logged(&read_log(&log)).0 == want)
    })
    .with_context(|| read_log(&log))?;
    let (_, warnings) = rejected_logged(&read_log(&log));
    let elapsed = t0.elapsed().as_secs() as usize;
    assert!(
        warnings <= elapsed + 3,
        "{warnings} warnings in {elapsed} s: one per second at most"
    );
    // Descriptors free again: served.
    drop(held);
    wait_until(Duration::from_secs(5), "the worker to serve again", || {
        let mut c = connect()?;
        request(&mut c)
    })?;
    let mut again = Vec::new();
    for _ in 0..20 {
        let mut c = connect()?;
        assert!(request(&mut c)?, "served after the connections closed");
        again.push(c);
    }
    let _ = std::fs::remove_file(&log);
    Ok(())
}

/// Whether `c` is still open: no FIN nor reset within `within` (it sent nothing to answer).
fn still_open(c: &mut TcpStream, within: Duration) -> Result<bool> {
    c.set_read_timeout(Some(within))?;
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(_) => Ok(false),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

/// Idle keep-alive connections (one request each, then silence) filling a worker's connection
/// limit, itself fitted to a small descriptor limit: a new client is served, the oldest idle
/// connections (a batch of 32) are closed with a FIN to make room, the newer ones stay, and a
/// connection that has sent no request yet is not closed for it. Before, every new client was
/// reset until the idle ones reached their idle timeout (60 s), as a denial of service.
#[test]
fn idle_keep_alive_connections_make_room_for_a_new_client_at_the_limit() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("nofile-reuse")?;
    let cfg = config(&format!(
        "[workers]\ncount = 1\npin_cpus = false\n\n{LISTENER}"
    ));
    let log = log_path("reuse");
    // (160 − 64 slack − 1 listener) / 2 = 47 connections; no CAP_SYS_RESOURCE to raise it.
    let prefix = [
        "prlimit",
        "--nofile=160:160",
        "--",
        "setpriv",
        "--bounding-set=-sys_resource",
        "--",
    ];
    let mut weir = listening(&ns, &prefix, &["run", "--config", cfg.path()], &log)?;
    assert!(
        read_log(&log).contains("each worker takes at most 47"),
        "{}",
        read_log(&log)
    );
    let connect =
        || -> Result<TcpStream> { Ok(ns.in_ns(|| TcpStream::connect("127.0.0.1:8080"))??) };
    // The oldest connection has sent nothing: held to its header timeout, never made room of.
    let mut silent = connect()?;
    // 32 idle keep-alive connections, then (past the idle clock's 100 ms tick, so that they are
    // younger) 14 more: 47 in all, the limit.
    let mut old = Vec::new();
    for i in 0..32 {
        let mut c = connect()?;
        assert!(request(&mut c)?, "old {i} served:\n{}", read_log(&log));
        old.push(c);
    }
    std::thread::sleep(Duration::from_millis(1000));
    let mut young = Vec::new();
    for i in 0..14 {
        let mut c = connect()?;
        assert!(request(&mut c)?, "young {i} served:\n{}", read_log(&log));
        young.push(c);
    }
    // At the limit: a new client is served.
    let mut new = connect()?;
    assert!(
        request(&mut new)?,
        "a new client at the limit was refused:\n{}",
        read_log(&log)
    );
    for (i, c) in old.iter_mut().enumerate() {
        assert!(
            !still_open(c, Duration::from_secs(2))?,
            "old idle connection {i} was not closed"
        );
    }
    for (i, c) in young.iter_mut().enumerate() {
        assert!(
            still_open(c, Duration::from_millis(50))?,
            "young idle connection {i} was closed"
        );
        assert!(request(c)?, "young {i} serves again");
    }
    assert!(
        still_open(&mut silent, Duration::from_millis(50))?,
        "the connection that sent nothing was closed"
    );
    assert!(request(&mut silent)?, "and it is served");
    wait_until(Duration::from_secs(5), "the warning", || {
        Ok(read_log(&log).contains("idle keep-alive connections closed to make room"))
    })
    .with_context(|| read_log(&log))?;
    let text = read_log(&log);
    assert!(text.contains("closed=32"), "{text}");
    drop((old, young, new, silent));
    assert!(interrupt(&mut weir)?);
    let _ = std::fs::remove_file(&log);
    Ok(())
}

/// HTTP/2 clients (Python's `h2`) that each made one request and went silent, in groups: see
/// the script's head.
const H2_IDLE_SCRIPT: &str = include_str!("e2e_nofile_support/h2_idle.py");

/// What `H2_IDLE_SCRIPT` saw on one connection: the GOAWAYs (error code, last stream id),
/// whether the server closed it, and the status of the request it made at the end.
fn h2_seen(v: &serde_json::Value) -> (Vec<(u64, u64)>, bool, Option<String>) {
    let goaways = v["goaways"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|g| (g[0].as_u64().unwrap_or(99), g[1].as_u64().unwrap_or(99)))
                .collect()
        })
        .unwrap_or_default();
    let again = v["again"].as_str().map(str::to_string);
    (goaways, v["closed"].as_bool().unwrap_or(false), again)
}

/// `curl ARGS` in `ns`: (status, seconds), or why it failed.
fn curl_status(ns: &Ns, args: &[&str]) -> Result<(u16, f64)> {
    let mut c = ns.command("curl");
    c.args(["-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"])
        .args(["--max-time", "5"])
        .args(args);
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(10))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, secs) = text.split_once(' ').context("curl's -w")?;
    Ok((code.parse()?, secs.trim().parse()?))
}

/// `weir_idle_connections_closed_at_limit_total` on the metrics page (scraped with curl).
fn closed_at_limit(ns: &Ns) -> Result<u64> {
    let out = ns.exec(&[
        "curl",
        "-sS",
        "--max-time",
        "5",
        "http://127.0.0.1:9464/metrics",
    ])?;
    Ok(out
        .lines()
        .find_map(|l| l.strip_prefix("weir_idle_connections_closed_at_limit_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64)
}

/// Idle HTTP/2 connections (one request each, then silence; Python's `h2`) filling a worker's
/// connection limit, itself fitted to a small descriptor limit, on `engine` (h2c, or h2 over
/// TLS): a new HTTP/1.1 client and a new HTTP/2 one are served within a second; the 32 oldest
/// idle connections get GOAWAY(NO_ERROR) with their last stream id (1) and are closed, counted
/// in `weir_idle_connections_closed_at_limit_total`; the younger ones stay and serve again, as
/// does a connection that sent its preface and no request, and one that has sent nothing (no
/// preface; with TLS, no handshake). Before, every new client was reset until the idle ones
/// reached their idle timeout (60 s).
fn idle_h2_connections_make_room(engine: &str, tls: bool) -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns(&format!("nofile-h2{}", if tls { "s" } else { "c" }))?;
    let dir = TempDir(std::env::temp_dir().join(format!(
        "weir-nofile-h2-{engine}-{tls}-{}",
        std::process::id()
    )));
    std::fs::create_dir_all(&dir.0)?;
    let (cert, key) = self_signed_cert(&dir.0)?;
    let cfg = config(&format!(
        "[metrics]\naddress = \"127.0.0.1:9464\"\n\n[workers]\ncount = 1\npin_cpus = false\n\n\
         [load_balancer]\nhttp2_engine = \"{engine}\"\n\n{LISTENER}\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = 8443\nprotocol = \"HTTPS\"\n\
         certificate = [{{ certificate_file = \"{}\", private_key_file = \"{}\" }}]\n\
         default_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"ok\" }}\n",
        cert.display(),
        key.display()
    ));
    // In the directory: removed with it, the test passed or not.
    let log = dir.0.join("weir.log");
    // (160 − 64 slack − 2 listeners) / 2 = 47 connections; no CAP_SYS_RESOURCE to raise it.
    let prefix = [
        "prlimit",
        "--nofile=160:160",
        "--",
        "setpriv",
        "--bounding-set=-sys_resource",
        "--",
    ];
    let mut weir = listening(&ns, &prefix, &["run", "--config", cfg.path()], &log)?;
    wait_until(Duration::from_secs(10), "the TLS listener", || {
        ns.tcp_listening(8443)
    })?;
    assert!(
        read_log(&log).contains("each worker takes at most 47"),
        "{}",
        read_log(&log)
    );
    let port = if tls { 8443 } else { 8080 };
    // The oldest connection has sent nothing (no preface; with TLS, no handshake).
    let mut silent = ns.in_ns(|| TcpStream::connect(("127.0.0.1", port)))??;
    // 1 preface only + 32 old + 13 young + the silent one = 47, the limit.
    let mut py = ns.command("python3");
    py.args(["-c", H2_IDLE_SCRIPT, &port.to_string()])
        .args([if tls { "1" } else { "0" }, "32", "13"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut clients = ns.spawn_command(py)?;
    let mut out = std::io::BufReader::new(clients.child_mut().stdout.take().context("stdout")?);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line)?;
    assert_eq!(line.trim(), "ready", "{}", read_log(&log));
    // At the limit: new clients are served, at once.
    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://127.0.0.1:{port}/");
    let h1 = curl_status(&ns, &["-k", "--http1.1", &url])?;
    let h2_flag = if tls {
        "--http2"
    } else {
        "--http2-prior-knowledge"
    };
    let h2 = curl_status(&ns, &["-k", h2_flag, &url])?;
    for (what, (code, secs)) in [("HTTP/1.1", h1), ("HTTP/2", h2)] {
        assert!(
            code == 200 && secs < 1.0,
            "{engine}: a new {what} client at the limit: {code} after {secs} s\n{}",
            read_log(&log)
        );
    }
    wait_until(Duration::from_secs(5), "the metric", || {
        Ok(closed_at_limit(&ns)? >= 32)
    })
    .with_context(|| read_log(&log))?;
    // Time for the closes (hyper's engine: the PING's round trip first).
    std::thread::sleep(Duration::from_millis(1500));
    writeln!(
        clients.child_mut().stdin.as_mut().context("stdin")?,
        "report"
    )?;
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line)?;
    let seen: serde_json::Value =
        serde_json::from_str(&line).with_context(|| format!("{line:?}"))?;
    eprintln!(
        "{engine} tls={tls}: new clients served in {:.3} s (HTTP/1.1), {:.3} s (HTTP/2); \
         an old idle connection saw {}",
        h1.1, h2.1, seen["old"][0]
    );
    // weir's engine: GOAWAY(NO_ERROR, 1) at once; hyper's (h2's graceful end): GOAWAY(NO_ERROR,
    // 2^31-1) and a PING, then GOAWAY(NO_ERROR, 1) at its ACK.
    let want: &[(u64, u64)] = match engine {
        "hyper" => &[(0, 0x7fff_ffff), (0, 1)],
        _ => &[(0, 1)],
    };
    for (i, c) in seen["old"].as_array().context("old")?.iter().enumerate() {
        let (goaways, closed, _) = h2_seen(c);
        assert!(
            closed && goaways == want && c["error"].is_null(),
            "{engine}: old idle connection {i}: GOAWAY(NO_ERROR, 1) and closed: {c}"
        );
    }
    let young = seen["young"].as_array().context("young")?;
    for (i, c) in young.iter().chain([&seen["preface"]]).enumerate() {
        let (goaways, closed, again) = h2_seen(c);
        assert!(
            !closed && goaways.is_empty() && again.as_deref() == Some("200"),
            "{engine}: young idle connection {i} (the last: preface only) stays and serves: {c}"
        );
    }
    assert!(
        still_open(&mut silent, Duration::from_millis(50))?,
        "the connection that sent nothing was closed"
    );
    assert_eq!(closed_at_limit(&ns)?, 32, "{engine}: counted once each");
    drop(clients);
    drop(silent);
    assert!(interrupt(&mut weir)?);
    Ok(())
}

#[test]
fn idle_h2c_connections_make_room_for_new_clients_at_the_limit_weir_engine() -> Result<()> {
    idle_h2_connections_make_room("weir", false)
}

#[test]
fn idle_h2_tls_connections_make_room_for_new_clients_at_the_limit_weir_engine() -> Result<()> {
    idle_h2_connections_make_room("weir", true)
}

#[test]
fn idle_h2c_connections_make_room_for_new_clients_at_the_limit_hyper_engine() -> Result<()> {
    idle_h2_connections_make_room("hyper", false)
}
