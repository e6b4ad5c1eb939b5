//! `cargo xtask bench http`: weir's L7 worker against HAProxy 2.6 and nginx 1.22 (Debian).
//!
//! Layout (2 cores): every proxy runs one worker pinned to core 0 (`taskset -c 0`); the origin
//! (an nginx answering `200` with a short body) and the load generators run on core 1. All
//! three proxies are started once and stay up; the scenarios run alternated (weir, HAProxy,
//! nginx, weir, …) for `--rounds` rounds, and the median of the rounds is reported.
//!
//! Scenarios:
//! - `h1`: HTTP/1.1 keep-alive, `wrk -t1 -c64`: req/s, p50, p99, proxy CPU µs per request.
//! - `h2tls`: HTTPS + HTTP/2, `h2load -c16 -m32`: req/s, p50, p99 (from h2load's request log).
//! - `tls_handshakes`: new TLS connection per request (`wrk` with `Connection: close`),
//!   RSA-2048, full handshakes/s.
//! - `idle_conns`: 10,000 idle keep-alive client connections; proxy RSS growth per connection.
//!
//! The lab's own limits are measured in the same run, so that a ratio can be read against what
//! this machine can show at all:
//! - `relay`: HAProxy in `mode tcp`, one thread on the proxy core, relaying each wrk connection
//!   to its own origin connection. It makes the same four socket calls per request as an HTTP
//!   proxy (read request, write it on, read response, write it back) and does no HTTP work, so
//!   its req/s is the **ceiling** of the `h1` scenario here and its CPU per request the
//!   **floor**. An HTTP proxy's CPU per request minus the floor is its HTTP work.
//! - Busy % of both cores during every `h1` and `h2tls` run (`/proc/stat`): when the load core
//!   is saturated, the client and origin, not the proxy, set the req/s.
//!
//! Which weir runs: the `weir` binary built with fat LTO in `target/bench-lto`, as
//! `weir run --config FILE` with `[workers] count = 1` (the control plane and one worker process
//! pinned to the proxy core). `--weir-bin PATH` runs `PATH run --config FILE` instead.
//!
//! Options: `--duration SECS` (default 10), `--rounds N` (default 3), `--quick` (3 s, 1 round,
//! 2,000 idle connections), `--weir-bin PATH`. Writes `target/bench/http.json`.
//! Traffic goes to 127.0.0.1 only.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROXY_CORE: &str = "0";
const LOAD_CORE: &str = "1";
const ORIGIN: u16 = 18_100;
/// The TCP relay that measures the lab's ceiling (see the module comment).
const RELAY: u16 = 18_140;
const NAMES: [&str; 3] = ["weir", "haproxy", "nginx"];

struct Opts {
    duration: u64,
    rounds: usize,
    idle_conns: usize,
    weir_bin: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        duration: 10,
        rounds: 3,
        idle_conns: 10_000,
        weir_bin: None,
    };
    let mut it = args.iter().filter(|a| *a != "bench" && *a != "http");
    while let Some(a) = it.next() {
        match a.as_str() {
            "--duration" => o.duration = it.next().context("--duration SECS")?.parse()?,
            "--rounds" => o.rounds = it.next().context("--rounds N")?.parse()?,
            "--weir-bin" => o.weir_bin = Some(it.next().context("--weir-bin PATH")?.into()),
            "--quick" => {
                o.duration = 3;
                o.rounds = 1;
                o.idle_conns = 2_000;
            }
            other => bail!("unknown option {other}; see xtask/src/bench_http.rs"),
        }
    }
    Ok(o)
}

/// The workspace root: xtask's parent, or the current directory when that is not a weir tree.
fn root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    if p.join("lb-l7").is_dir() {
        p
    } else {
        std::env::current_dir().unwrap_or(p)
    }
}

fn sh(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {cmd}"))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{cmd} {args:?} failed: {text}");
    }
    Ok(text)
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ensure_tools() -> Result<()> {
    let need = [
        ("haproxy", "haproxy"),
        ("nginx", "nginx"),
        ("wrk", "wrk"),
        ("h2load", "nghttp2-client"),
        ("openssl", "openssl"),
        ("taskset", "util-linux"),
    ];
    let missing: Vec<&str> = need
        .iter()
        .filter(|(c, _)| !have(c))
        .map(|(_, p)| *p)
        .collect();
    if !missing.is_empty() {
        eprintln!("installing {missing:?} from Debian");
        sh("apt-get", &["update", "-q"])?;
        let mut args = vec!["install", "-y", "-q"];
        args.extend(missing.iter());
        sh("apt-get", &args)?;
    }
    Ok(())
}

/// A started process (and, for nginx, its worker) that is stopped with SIGTERM on drop.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn pids(&self) -> Vec<u32> {
        let me = self.child.id();
        let mut v = vec![me];
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid = stat
                    .rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok());
                if ppid == Some(me) {
                    v.push(pid);
                }
            }
        }
        v
    }
    /// utime + stime of the process and its direct children, in seconds.
    fn cpu_seconds(&self) -> f64 {
        let ticks: u64 = self
            .pids()
            .iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
            .filter_map(|s| {
                let f: Vec<&str> = s.rsplit(')').next()?.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .sum();
        ticks as f64 / 100.0
    }
    fn rss_kib(&self) -> u64 {
        self.pids()
            .iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .filter_map(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .sum()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("{} needed SIGKILL", self.name);
    }
}

fn spawn(name: &'static str, core: &str, cmd: &str, args: &[&str], log: &Path) -> Result<Proc> {
    let f = std::fs::File::create(log)?;
    let mut full = vec!["-c", core, cmd];
    full.extend_from_slice(args);
    let child = Command::new("taskset")
        .args(&full)
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .spawn()
        .with_context(|| format!("start {name}"))?;
    Ok(Proc { name, child })
}

fn wait_port(port: u16) -> Result<()> {
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("nothing listens on 127.0.0.1:{port}")
}

struct Ports {
    h1: u16,
    tls: u16,
}

fn ports(i: usize) -> Ports {
    Ports {
        h1: 18_110 + 10 * i as u16,
        tls: 18_111 + 10 * i as u16,
    }
}

/// The hard open-files limit (containers may forbid raising it; proxies are told to use it).
fn nofile_hard() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|x| x.starts_with("Max open files"))
                .and_then(|x| x.split_whitespace().nth(4).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(65_536)
}

fn write_configs(dir: &Path, idle_conns: usize) -> Result<()> {
    let d = dir.display();
    let nofile = nofile_hard();
    let conns = idle_conns + 2_000;
    // HAProxy wants two descriptors per connection (client + server side).
    let hap_conns = conns.min((nofile as usize).saturating_sub(100) / 2);
    // weir sizes its descriptors the same way (client + target per connection, plus 256 and the
    // listeners) and refuses to start when a configured limit cannot fit.
    let weir_conns = conns.min((nofile as usize).saturating_sub(300) / 2);
    std::fs::write(
        dir.join("origin.conf"),
        format!(
            "daemon off; worker_processes 1; pid {d}/origin.pid; error_log {d}/origin.err; worker_rlimit_nofile {nofile};\n\
             events {{ worker_connections 8192; }}\n\
             http {{ access_log off; keepalive_requests 10000000; keepalive_timeout 300s;\n\
               server {{ listen 127.0.0.1:{ORIGIN} backlog=4096; location / {{ return 200 \"hello from the origin\\n\"; }} }} }}\n"
        ),
    )?;
    let (w, h, n) = (ports(0), ports(1), ports(2));
    std::fs::write(
        dir.join("weir.toml"),
        format!(
            "[workers]\ncount = 1\n\n[load_balancer]\nmax_connections_per_worker = {weir_conns}\ndrain_timeout_seconds = 1\nhttp2_max_requests_per_connection = 0\nidle_timeout.timeout_seconds = 300\n\n\
             [[listener]]\naddress = \"127.0.0.1\"\nport = {}\ndefault_action = {{ type = \"forward\", target_group = \"origin\" }}\n\n\
             [[listener]]\naddress = \"127.0.0.1\"\nport = {}\nprotocol = \"HTTPS\"\n\
             certificate = [{{ certificate_file = \"{d}/cert.pem\", private_key_file = \"{d}/key.pem\" }}]\n\
             default_action = {{ type = \"forward\", target_group = \"origin\" }}\n\n\
             [[target_group]]\nname = \"origin\"\ntarget = [{{ id = \"127.0.0.1\", port = {ORIGIN} }}]\n",
            w.h1, w.tls
        ),
    )?;
    std::fs::write(
        dir.join("haproxy.cfg"),
        format!(
            "global\n  nbthread 1\n  maxconn {hap_conns}\n  ulimit-n {nofile}\n  tune.ssl.default-dh-param 2048\n\
             defaults\n  mode http\n  timeout connect 10s\n  timeout client 300s\n  timeout server 300s\n  option http-keep-alive\n  http-reuse safe\n\
             frontend h1\n  bind 127.0.0.1:{}\n  default_backend origin\n\
             frontend tls\n  bind 127.0.0.1:{} ssl crt {d}/combined.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2\n  default_backend origin\n\
             backend origin\n  server o 127.0.0.1:{ORIGIN}\n",
            h.h1, h.tls
        ),
    )?;
    // The ceiling/floor baseline: a TCP relay doing no HTTP work (see the module comment).
    std::fs::write(
        dir.join("relay.cfg"),
        format!(
            "global\n  nbthread 1\n  maxconn 2000\n\
             defaults\n  mode tcp\n  timeout connect 10s\n  timeout client 300s\n  timeout server 300s\n\
             listen relay\n  bind 127.0.0.1:{RELAY}\n  server o 127.0.0.1:{ORIGIN}\n"
        ),
    )?;
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx.err; worker_rlimit_nofile {nofile};\n\
             events {{ worker_connections {conns}; }}\n\
             http {{ access_log off; keepalive_requests 10000000; keepalive_timeout 300s;\n\
               upstream origin {{ server 127.0.0.1:{ORIGIN}; keepalive 128; }}\n\
               server {{ listen 127.0.0.1:{} backlog=4096; listen 127.0.0.1:{} ssl http2 backlog=4096;\n\
                 ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; ssl_protocols TLSv1.2 TLSv1.3;\n\
                 location / {{ proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}\n",
            n.h1, n.tls
        ),
    )?;
    Ok(())
}

fn make_cert(dir: &Path) -> Result<()> {
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    sh(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "7",
            "-subj",
            "/CN=bench.weir.test",
            "-addext",
            "subjectAltName=DNS:bench.weir.test,IP:127.0.0.1",
            "-keyout",
            &k.display().to_string(),
            "-out",
            &c.display().to_string(),
        ],
    )?;
    let combined = std::fs::read_to_string(&c)? + &std::fs::read_to_string(&k)?;
    std::fs::write(dir.join("combined.pem"), combined)?;
    Ok(())
}

/// `1.02ms` → µs.
fn micros(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mul) = if let Some(v) = s.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1_000.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1_000_000.0)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * mul)
}

fn wrk(url: &str, conns: u32, secs: u64, extra: &[&str]) -> Result<(f64, f64, f64, u64, u64)> {
    let c = conns.to_string();
    let d = format!("{secs}s");
    let mut args = vec![
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        "-c",
        &c,
        "-d",
        &d,
        "--latency",
    ];
    args.extend_from_slice(extra);
    args.push(url);
    let out = sh("taskset", &args)?;
    let find = |key: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(key))
            .map(|l| l.trim_start()[key.len()..].trim().to_string())
    };
    let rps = find("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .context("wrk: no Requests/sec")?;
    let p50 = find("50%").and_then(|v| micros(&v)).unwrap_or(f64::NAN);
    let p99 = find("99%").and_then(|v| micros(&v)).unwrap_or(f64::NAN);
    let total = out
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let errors = out
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .flat_map(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum();
    Ok((rps, p50, p99, total, errors))
}

fn h2load(url: &str, secs: u64, log: &Path) -> Result<(f64, f64, f64, u64, u64)> {
    let d = secs.to_string();
    let lf = log.display().to_string();
    // h2load appends to its log file: without this, every earlier run would be in the p99.
    match std::fs::remove_file(log) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("remove {lf}"));
        }
        _ => {}
    }
    let out = sh(
        "taskset",
        &[
            "-c",
            LOAD_CORE,
            "h2load",
            "-c",
            "16",
            "-m",
            "32",
            "-t",
            "1",
            "-D",
            &d,
            "--log-file",
            &lf,
            url,
        ],
    )?;
    let rps = out
        .lines()
        .find(|l| l.starts_with("finished in"))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|v| v.trim().strip_suffix("req/s"))
        .and_then(|v| v.trim().parse().ok())
        .context("h2load: no req/s")?;
    let line = out
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or("");
    let num = |key: &str| {
        line.split(',')
            .find(|p| p.contains(key))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (ok, failed, errored) = (num("succeeded"), num("failed"), num("errored"));
    // Log lines: start time (µs), status, duration (µs).
    let mut lat: Vec<f64> = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        if lat.is_empty() {
            f64::NAN
        } else {
            lat[((lat.len() - 1) as f64 * p) as usize]
        }
    };
    Ok((rps, pct(0.5), pct(0.99), ok, failed + errored))
}

/// One `h1` run (wrk keep-alive) against `port`: req/s, latency, the proxy's CPU per request
/// and both cores' busy %, pushed into `e`. Returns the client-visible errors.
fn h1_run(e: &mut BTreeMap<&str, Vec<f64>>, p: &Proc, port: u16, secs: u64) -> Result<u64> {
    let cpu0 = p.cpu_seconds();
    let cores0 = CoreTimes::now();
    let (rps, p50, p99, total, err) = wrk(&format!("http://127.0.0.1:{port}/"), 64, secs, &[])?;
    let cpu = p.cpu_seconds() - cpu0;
    let busy = CoreTimes::now().busy_since(&cores0);
    e.entry("h1_rps").or_default().push(rps);
    e.entry("h1_p50_us").or_default().push(p50);
    e.entry("h1_p99_us").or_default().push(p99);
    push_load(
        e,
        [
            "h1_cpu_us_per_req",
            "h1_proxy_core_busy_pct",
            "h1_load_core_busy_pct",
        ],
        cpu,
        total,
        busy,
    );
    Ok(err)
}

/// Pushes a run's proxy CPU µs per request and both cores' busy % under `keys`.
fn push_load(
    e: &mut BTreeMap<&str, Vec<f64>>,
    keys: [&'static str; 3],
    cpu_s: f64,
    requests: u64,
    (proxy_busy, load_busy): (f64, f64),
) {
    if requests > 0 {
        e.entry(keys[0])
            .or_default()
            .push(cpu_s * 1e6 / requests as f64);
    }
    e.entry(keys[1]).or_default().push(proxy_busy);
    e.entry(keys[2]).or_default().push(load_busy);
}

/// Opens `n` keep-alive connections, one request each, and keeps them open.
fn idle_connections(port: u16, n: usize) -> Result<Vec<TcpStream>> {
    let mut v = Vec::with_capacity(n);
    let req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
    let mut buf = [0u8; 1024];
    for i in 0..n {
        let mut s =
            TcpStream::connect(("127.0.0.1", port)).with_context(|| format!("connection {i}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(req)?;
        let got = s.read(&mut buf)?;
        if got == 0 || !buf.starts_with(b"HTTP/1.1 200") {
            bail!("connection {i}: unexpected answer");
        }
        v.push(s);
    }
    Ok(v)
}

/// Busy and total jiffies of the proxy core and the load core, from `/proc/stat`.
#[derive(Clone, Copy)]
struct CoreTimes([(u64, u64); 2]);

impl CoreTimes {
    fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let core = |c: &str| {
            let f: Vec<u64> = stat
                .lines()
                .find(|l| l.split_whitespace().next() == Some(&format!("cpu{c}")[..]))
                .map(|l| {
                    l.split_whitespace()
                        .skip(1)
                        .filter_map(|v| v.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            // user nice system idle iowait irq softirq steal …: idle + iowait are not busy.
            let total: u64 = f.iter().take(8).sum();
            let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
            (total - idle, total)
        };
        Self([core(PROXY_CORE), core(LOAD_CORE)])
    }
    /// Busy % of (proxy core, load core) since `earlier`.
    fn busy_since(&self, earlier: &Self) -> (f64, f64) {
        let pct = |i: usize| {
            let busy = self.0[i].0.saturating_sub(earlier.0[i].0) as f64;
            let total = self.0[i].1.saturating_sub(earlier.0[i].1) as f64;
            if total > 0.0 {
                100.0 * busy / total
            } else {
                f64::NAN
            }
        };
        (pct(0), pct(1))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(args: &[String]) -> Result<()> {
    let mut o = parse(args)?;
    let cap = (nofile_hard() as usize).saturating_sub(100) / 2 - 500;
    if o.idle_conns > cap {
        eprintln!(
            "open-files limit {}: idle connections {} → {cap}",
            nofile_hard(),
            o.idle_conns
        );
        o.idle_conns = cap;
    }
    ensure_tools()?;
    let root = root();
    let dir = root.join("target/bench/http");
    std::fs::create_dir_all(&dir)?;
    // Room for 10,000 client connections in us and in the proxies we start (where allowed).
    let _ = Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            "--nofile=65536:65536",
        ])
        .stderr(Stdio::null())
        .status();

    let weir_cmd: (String, Vec<String>) = match &o.weir_bin {
        Some(b) => (
            b.display().to_string(),
            vec![
                "run".into(),
                "--config".into(),
                dir.join("weir.toml").display().to_string(),
            ],
        ),
        None => {
            // The release profile users get (fat LTO, one codegen unit: Cargo.toml).
            eprintln!("building weir (release)");
            let target = std::env::var("CARGO_TARGET_DIR")
                .map_or_else(|_| root.join("target"), PathBuf::from);
            let st = Command::new("cargo")
                .current_dir(&root)
                .args([
                    "build",
                    "--release",
                    "-q",
                    "-p",
                    "lb-userspace",
                    "--bin",
                    "weir",
                ])
                .status()?;
            if !st.success() {
                bail!("cargo build failed");
            }
            // The real product path: `weir run` (control plane + one pinned worker process,
            // steered by the SK_REUSEPORT program), no XDP since the traffic is on loopback.
            (
                target.join("release/weir").display().to_string(),
                vec![
                    "run".into(),
                    "--config".into(),
                    dir.join("weir.toml").display().to_string(),
                ],
            )
        }
    };

    make_cert(&dir)?;
    write_configs(&dir, o.idle_conns)?;
    let d = dir.display().to_string();
    let _origin = spawn(
        "origin",
        LOAD_CORE,
        "nginx",
        &["-c", &format!("{d}/origin.conf"), "-p", &d],
        &dir.join("origin.log"),
    )?;
    wait_port(ORIGIN)?;
    let weir_args: Vec<&str> = weir_cmd.1.iter().map(String::as_str).collect();
    let procs = [
        spawn(
            "weir",
            PROXY_CORE,
            &weir_cmd.0,
            &weir_args,
            &dir.join("weir.log"),
        )?,
        spawn(
            "haproxy",
            PROXY_CORE,
            "haproxy",
            &["-f", &format!("{d}/haproxy.cfg")],
            &dir.join("haproxy.log"),
        )?,
        spawn(
            "nginx",
            PROXY_CORE,
            "nginx",
            &["-c", &format!("{d}/nginx.conf"), "-p", &d],
            &dir.join("nginx.log"),
        )?,
    ];
    let relay = spawn(
        "relay",
        PROXY_CORE,
        "haproxy",
        &["-f", &format!("{d}/relay.cfg")],
        &dir.join("relay.log"),
    )?;
    for i in 0..3 {
        wait_port(ports(i).h1)?;
        wait_port(ports(i).tls)?;
    }
    wait_port(RELAY)?;
    // name → metric → values over rounds
    let mut m: BTreeMap<&str, BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    // Memory first, on fresh processes: RSS growth for 10,000 idle keep-alive connections.
    for (i, p) in procs.iter().enumerate() {
        // Warm up first (code paged in, allocator pools, first target connections) so that
        // only what the idle connections hold is counted, for every proxy alike.
        drop(idle_connections(ports(i).h1, 200)?);
        // A process may still be settling after it listens (weir's control plane loads its
        // programs and maps after starting the worker): wait until RSS is steady, so only the
        // connections' memory is counted.
        let mut before = p.rss_kib();
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(250));
            let now = p.rss_kib();
            if now.abs_diff(before) * 200 <= before {
                before = now;
                break;
            }
            before = now;
        }
        let conns = idle_connections(ports(i).h1, o.idle_conns)?;
        std::thread::sleep(Duration::from_millis(500));
        let after = p.rss_kib();
        drop(conns);
        let per = (after.saturating_sub(before)) as f64 * 1024.0 / o.idle_conns as f64;
        m.entry(NAMES[i])
            .or_default()
            .entry("idle_conn_bytes")
            .or_default()
            .push(per);
    }
    std::thread::sleep(Duration::from_secs(1));
    // Warm-up: pools, caches.
    for i in 0..3 {
        wrk(&format!("http://127.0.0.1:{}/", ports(i).h1), 64, 1, &[])?;
    }
    wrk(&format!("http://127.0.0.1:{RELAY}/"), 64, 1, &[])?;

    let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
    for round in 0..o.rounds {
        for (i, p) in procs.iter().enumerate() {
            let name = NAMES[i];
            eprintln!("round {}/{}: {name}", round + 1, o.rounds);
            let e = m.entry(name).or_default();
            *errors.entry(name).or_default() += h1_run(e, p, ports(i).h1, o.duration)?;
            let cpu0 = p.cpu_seconds();
            let cores0 = CoreTimes::now();
            let (rps, p50, p99, done, err) = h2load(
                &format!("https://127.0.0.1:{}/", ports(i).tls),
                o.duration,
                &dir.join(format!("h2load-{name}.log")),
            )?;
            let cpu = p.cpu_seconds() - cpu0;
            push_load(
                e,
                [
                    "h2tls_cpu_us_per_req",
                    "h2tls_proxy_core_busy_pct",
                    "h2tls_load_core_busy_pct",
                ],
                cpu,
                done,
                CoreTimes::now().busy_since(&cores0),
            );
            e.entry("h2tls_rps").or_default().push(rps);
            e.entry("h2tls_p50_us").or_default().push(p50);
            e.entry("h2tls_p99_us").or_default().push(p99);
            *errors.entry(name).or_default() += err;
            let (hs, ..) = wrk(
                &format!("https://127.0.0.1:{}/", ports(i).tls),
                32,
                o.duration.min(5),
                &["-H", "Connection: close"],
            )?;
            e.entry("tls_handshakes_per_s").or_default().push(hs);
        }
        eprintln!(
            "round {}/{}: relay (the lab's ceiling)",
            round + 1,
            o.rounds
        );
        let e = m.entry("relay").or_default();
        *errors.entry("relay").or_default() += h1_run(e, &relay, RELAY, o.duration)?;
    }
    drop(procs);
    drop(relay);

    let med: BTreeMap<&str, BTreeMap<&str, f64>> = m
        .iter()
        .map(|(n, ms)| {
            (
                *n,
                ms.iter().map(|(k, v)| (*k, median(v.clone()))).collect(),
            )
        })
        .collect();
    let metrics = [
        "h1_rps",
        "h1_p50_us",
        "h1_p99_us",
        "h1_cpu_us_per_req",
        "h1_proxy_core_busy_pct",
        "h1_load_core_busy_pct",
        "h2tls_rps",
        "h2tls_p50_us",
        "h2tls_p99_us",
        "h2tls_cpu_us_per_req",
        "h2tls_proxy_core_busy_pct",
        "h2tls_load_core_busy_pct",
        "tls_handshakes_per_s",
        "idle_conn_bytes",
    ];
    let get = |n: &str, k: &str| {
        med.get(n)
            .and_then(|x| x.get(k))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "\nweir vs HAProxy 2.6 vs nginx 1.22 — one worker on core {PROXY_CORE}, origin + client on core {LOAD_CORE}, median of {} round(s) of {} s",
        o.rounds, o.duration
    );
    println!(
        "{:<26}{:>12}{:>12}{:>12}{:>12}{:>10}{:>10}",
        "metric", "weir", "haproxy", "nginx", "tcp relay", "weir/hap", "weir/ngx"
    );
    let mut ratios = serde_json::Map::new();
    for k in metrics {
        let (w, h, n, r) = (
            get("weir", k),
            get("haproxy", k),
            get("nginx", k),
            get("relay", k),
        );
        let relay = if r.is_nan() {
            "-".to_string()
        } else {
            format!("{r:.1}")
        };
        println!(
            "{k:<26}{w:>12.1}{h:>12.1}{n:>12.1}{relay:>12}{:>10.2}{:>10.2}",
            w / h,
            w / n
        );
        ratios.insert(
            k.to_string(),
            json!({ "weir_over_haproxy": w / h, "weir_over_nginx": w / n }),
        );
    }
    // The lab: what this machine can show at all (see the module comment).
    let ceiling = get("relay", "h1_rps");
    let floor = get("relay", "h1_cpu_us_per_req");
    let (need_hap, need_ngx) = (1.3 * get("haproxy", "h1_rps"), 1.1 * get("nginx", "h1_rps"));
    let work = |n: &str| get(n, "h1_cpu_us_per_req") - floor;
    println!(
        "\nthe lab (h1): a TCP relay doing no HTTP work reaches {ceiling:.0} req/s (proxy core {:.0} % busy, load core {:.0} %): no proxy can show more here",
        get("relay", "h1_proxy_core_busy_pct"),
        get("relay", "h1_load_core_busy_pct")
    );
    println!(
        "  h1 targets: 1.3 × HAProxy = {need_hap:.0} req/s, 1.1 × nginx = {need_ngx:.0} req/s → {}",
        if need_hap.max(need_ngx) <= ceiling {
            "within the ceiling"
        } else {
            "beyond the ceiling: not measurable on this machine"
        }
    );
    println!(
        "  HTTP work per request (CPU µs above the relay's floor of {floor:.1} µs): weir {:.2}, HAProxy {:.2}, nginx {:.2} → weir/hap {:.2}, weir/ngx {:.2}",
        work("weir"),
        work("haproxy"),
        work("nginx"),
        work("weir") / work("haproxy"),
        work("weir") / work("nginx")
    );
    let lab = json!({
        "h1_ceiling_rps": ceiling,
        "h1_floor_cpu_us_per_req": floor,
        "h1_targets_within_ceiling": need_hap.max(need_ngx) <= ceiling,
        "h1_http_work_us_per_req": { "weir": work("weir"), "haproxy": work("haproxy"), "nginx": work("nginx") },
    });
    let targets = json!({
        "h1_rps_vs_haproxy_ge_1.3": get("weir", "h1_rps") >= need_hap,
        "h1_rps_vs_nginx_ge_1.1": get("weir", "h1_rps") >= need_ngx,
        "h2tls_rps_vs_haproxy_ge_1.2": get("weir", "h2tls_rps") >= 1.2 * get("haproxy", "h2tls_rps"),
        "p99_no_worse": get("weir", "h1_p99_us") <= get("haproxy", "h1_p99_us").min(get("nginx", "h1_p99_us"))
            && get("weir", "h2tls_p99_us") <= get("haproxy", "h2tls_p99_us").min(get("nginx", "h2tls_p99_us")),
        "tls_handshakes_ge_haproxy": get("weir", "tls_handshakes_per_s") >= get("haproxy", "tls_handshakes_per_s"),
        "cpu_per_request_below_both": get("weir", "h1_cpu_us_per_req") < get("haproxy", "h1_cpu_us_per_req").min(get("nginx", "h1_cpu_us_per_req")),
        "idle_conn_memory_below_haproxy": get("weir", "idle_conn_bytes") < get("haproxy", "idle_conn_bytes"),
    });
    println!("\ntargets: {targets}");
    println!("client-visible errors: {errors:?}");
    let all: Value = json!({
        "setup": { "proxy_core": PROXY_CORE, "load_core": LOAD_CORE, "duration_s": o.duration, "rounds": o.rounds,
                   "idle_connections": o.idle_conns, "weir": weir_cmd.0,
                   "haproxy": sh("haproxy", &["-v"]).unwrap_or_default().lines().next().unwrap_or(""),
                   "nginx": sh("nginx", &["-v"]).unwrap_or_default().trim() },
        "median": med, "rounds": m, "ratios": ratios, "lab": lab, "targets": targets, "errors": errors,
    });
    let out = crate::bench::report::write_json("http", &all)?;
    println!("wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_latencies_in_microseconds() {
        assert_eq!(micros("612.00us"), Some(612.0));
        assert_eq!(micros(" 1.49ms"), Some(1490.0));
        assert_eq!(micros("2.00s"), Some(2_000_000.0));
        assert_eq!(micros("n/a"), None);
    }

    #[test]
    fn busy_share_of_each_core() {
        let before = CoreTimes([(100, 1_000), (500, 1_000)]);
        let after = CoreTimes([(190, 1_100), (500, 1_100)]);
        let (proxy, load) = after.busy_since(&before);
        assert!((proxy - 90.0).abs() < 1e-9, "{proxy}");
        assert!(load.abs() < 1e-9, "{load}");
        // No time passed: no share rather than a division by zero.
        assert!(after.busy_since(&after).0.is_nan());
    }

    #[test]
    fn this_machine_has_both_cores_in_proc_stat() {
        let now = CoreTimes::now();
        assert!(
            now.0[0].1 > 0 && now.0[1].1 > 0,
            "cpu0/cpu1 missing in /proc/stat"
        );
        assert!(now.0.iter().all(|(busy, total)| busy <= total));
    }
}
