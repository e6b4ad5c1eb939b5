//! `cargo xtask bench http`: weir's L7 worker against HAProxy 2.6 and nginx 1.22 (Debian).
//!
//! Layout (2 cores): every proxy runs one worker pinned to core 0 (`taskset -c 0`); the origin
//! (an nginx answering `200` with a short body) and the load generators run on core 1. All
//! proxies are started once and stay up; the scenarios run alternated (weir, HAProxy, nginx,
//! weir, …) for `--rounds` rounds, and the median of the rounds is reported.
//!
//! CPU per request (utime + stime of the proxy's processes over the run, divided by the
//! requests the client completed) is the primary figure: on 2 cores the load core saturates
//! first, so req/s mostly measures the client and the origin (busy % of both cores is printed).
//!
//! Scenarios:
//! - `h1`: HTTP/1.1 keep-alive, `wrk -t1 -c64`: proxy CPU µs per request (and its user-space
//!   part alone: the rest is the kernel's, mostly loopback TCP), req/s, p50, p99.
//! - `h2tls`: HTTPS + HTTP/2, `h2load -c16 -m32` asking for `H2_PATH` (`/api/v1/items/42`: a
//!   path the client sends as a Huffman-coded literal, as most do): proxy CPU µs per request
//!   (and user), req/s, p50, p99 (from h2load's request log).
//! - `tls_handshakes`: full TLS handshakes only, RSA-2048: `S_TIME_CLIENTS` (8) `openssl s_time
//!   -new -www /` clients in parallel on the load core, each making a new connection with no
//!   session ticket or ID offered, one `GET / HTTP/1.0`, close, for `min(--duration, 5)` s.
//!   Every proxy prefers the same TLS 1.3 suites, AES-128-GCM first (`SERVER_SUITES`: weir's
//!   order; HAProxy's and nginx's configured so), and the clients offer them in that order, so
//!   all negotiate TLS_AES_128_GCM_SHA256 here and in `h2tls`: the same key schedule and cipher.
//!   Handshakes = the connections the clients made (summed from s_time's "N connections in"),
//!   handshakes/s over the run's wall time, proxy CPU µs per full handshake (the whole
//!   connection: handshake, one request, close). s_time prints a mark per connection, `r` for a
//!   resumed session: their count is `tls_resumed` (must be 0; the run prints the check). wrk
//!   is not used here: it resumes sessions (nginx logged 1,090 of 1,154 of its connections as
//!   resumed). Handshakes/s is printed too, but 8 s_time processes on the load core do not
//!   keep the proxy core busy (a `--quick` run: ~700/s at ~1 ms CPU each, ~75 %), so CPU per
//!   handshake is the figure to compare.
//!   What each proxy negotiates with that client library (`openssl s_client`: protocol, cipher,
//!   key exchange, signature, TLS 1.3 session tickets sent) is printed, with whether protocol,
//!   cipher, key exchange and ticket count are the same for all.
//! - `idle_conns`: `--idle-conns` (10,000) idle keep-alive client connections, plain and TLS
//!   (one request each, then idle), on fresh processes: proxy RSS growth per connection. The
//!   plain ones are held by this process; the TLS ones by a Python asyncio client (`python3`,
//!   its `ssl` module, ALPN `http/1.1`) on the load core, which completes every handshake and
//!   request and then holds the connections without a thread per connection. Capped by the
//!   open-files hard limit (printed when it applies).
//! - `syscalls`: after the rounds, a separate run per proxy under `strace -c -f` attached to
//!   every thread of the proxy's processes, over a fixed count of requests (`--strace-requests`,
//!   20,000; `h2load --h1 -c64` for `h1`, `h2load -c16 -m32` for `h2tls`): syscalls per request,
//!   total and the most frequent ones, printed beside the CPU figures. strace slows the proxy
//!   down, so no timing is taken from this run.
//! - Kernel work around every `h1` and `h2tls` run (`KernelWork`): TCP segments sent per
//!   request and pure ACKs per 1,000 requests in this network namespace (all of the run's
//!   sockets: a proxy that does not pipeline needs 4 segments per HTTP/1.1 request and no pure
//!   ACK), and the proxy's voluntary context switches per 1,000 requests (its sleeps, each a
//!   wake-up later): the per-request segments and wake-ups that could still go.
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
//! Targets (issue 15), each marked met / not met for every weir in the run: HTTP/2 over TLS CPU
//! per request ≤ 0.8× HAProxy's and ≤ 0.7× nginx's, its p99 no worse than either; HTTP/1.1 CPU
//! per request ≤ 0.85× the better of HAProxy and nginx; idle RSS per connection (plain and TLS)
//! ≤ nginx's; CPU per full TLS handshake ≤ 0.8× the better of HAProxy and nginx.
//!
//! Which weir runs: the `weir` binary built by `cargo build --release` (fat LTO, Cargo.toml), as
//! `weir run --config FILE` with `[workers] count = 1` (the control plane and one worker process
//! pinned to the proxy core). `--weir-bin PATH` runs `PATH run --config FILE` instead.
//! `--h2-engine weir|hyper` writes `[load_balancer] http2_engine = "…"` into weir's config
//! (without the option the key is left out: weir's default engine); `--h2-engine both` runs
//! weir twice, as the proxies `weir` (engine `weir`) and `weir-hyper` (engine `hyper`), in the
//! same alternation.
//!
//! Options: `--duration SECS` (default 10), `--rounds N` (default 3), `--idle-conns N` (10,000),
//! `--strace-requests N` (20,000), `--quick` (3 s, 1 round, 2,000 idle connections, 5,000
//! strace requests), `--weir-bin PATH`, `--h2-engine weir|hyper|both`, `--compare FILE` (a
//! previous `http.json`: prints every median figure's change against it, per proxy). Writes
//! `target/bench/http.json`. Traffic goes to 127.0.0.1 only.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROXY_CORE: &str = "0";
const LOAD_CORE: &str = "1";
const ORIGIN: u16 = 18_100;
/// The TCP relay that measures the lab's ceiling (see the module comment).
const RELAY: u16 = 18_190;
/// The path the `h2tls` scenario asks for. Not `/`: `/` is an HPACK static-table entry, so the
/// bench never made a proxy decode a Huffman-coded `:path`, which h2load (nghttp2: `:path` is
/// not indexed) sends with every request, as curl and other nghttp2 clients do. On such a path
/// weir's engine cost 36.9 µs per request with its old HPACK decoder and 15.1 µs with the one
/// that replaced it (session 15, `h2lab.sh ab`), and the bench on `/` did not show it.
const H2_PATH: &str = "/api/v1/items/42";

/// Which HTTP/2 engine weir is told to use (`--h2-engine`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum H2Engine {
    /// No `http2_engine` key: weir's default.
    Default,
    Weir,
    Hyper,
    /// weir twice: `weir` (engine `weir`) and `weir-hyper` (engine `hyper`).
    Both,
}

/// What a proxy under test is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// weir, with the `http2_engine` value to write (`None`: leave the key out).
    Weir(Option<&'static str>),
    Haproxy,
    Nginx,
}

/// One proxy under test: its name in the report and the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Spec {
    name: &'static str,
    kind: Kind,
}

/// The proxies of a run, weir first (in the alternation's order).
fn specs(engine: H2Engine) -> Vec<Spec> {
    let weir = |name, e| Spec {
        name,
        kind: Kind::Weir(e),
    };
    let mut v = match engine {
        H2Engine::Default => vec![weir("weir", None)],
        H2Engine::Weir => vec![weir("weir", Some("weir"))],
        H2Engine::Hyper => vec![weir("weir-hyper", Some("hyper"))],
        H2Engine::Both => vec![
            weir("weir", Some("weir")),
            weir("weir-hyper", Some("hyper")),
        ],
    };
    v.push(Spec {
        name: "haproxy",
        kind: Kind::Haproxy,
    });
    v.push(Spec {
        name: "nginx",
        kind: Kind::Nginx,
    });
    v
}

struct Opts {
    duration: u64,
    rounds: usize,
    idle_conns: usize,
    strace_requests: u64,
    weir_bin: Option<PathBuf>,
    h2_engine: H2Engine,
    compare: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        duration: 10,
        rounds: 3,
        idle_conns: 10_000,
        strace_requests: 20_000,
        weir_bin: None,
        h2_engine: H2Engine::Default,
        compare: None,
    };
    let mut it = args.iter().filter(|a| *a != "bench" && *a != "http");
    while let Some(a) = it.next() {
        match a.as_str() {
            "--duration" => o.duration = it.next().context("--duration SECS")?.parse()?,
            "--rounds" => o.rounds = it.next().context("--rounds N")?.parse()?,
            "--idle-conns" => o.idle_conns = it.next().context("--idle-conns N")?.parse()?,
            "--strace-requests" => {
                o.strace_requests = it.next().context("--strace-requests N")?.parse()?;
            }
            "--weir-bin" => o.weir_bin = Some(it.next().context("--weir-bin PATH")?.into()),
            "--compare" => o.compare = Some(it.next().context("--compare FILE")?.into()),
            "--h2-engine" => {
                o.h2_engine = match it.next().map(String::as_str) {
                    Some("weir") => H2Engine::Weir,
                    Some("hyper") => H2Engine::Hyper,
                    Some("both") => H2Engine::Both,
                    other => bail!("--h2-engine weir|hyper|both, not {other:?}"),
                };
            }
            "--quick" => {
                o.duration = 3;
                o.rounds = 1;
                o.idle_conns = 2_000;
                o.strace_requests = 5_000;
            }
            other => bail!("unknown option {other}; see xtask/src/bench_http.rs"),
        }
    }
    if o.rounds == 0 || o.duration == 0 || o.strace_requests == 0 {
        bail!("--rounds, --duration and --strace-requests must be at least 1");
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
        ("strace", "strace"),
        ("python3", "python3"),
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
    /// Every thread of the process and its direct children (what strace attaches to).
    fn tids(&self) -> Vec<u32> {
        let mut v = Vec::new();
        for p in self.pids() {
            match std::fs::read_dir(format!("/proc/{p}/task")) {
                Ok(rd) => v.extend(
                    rd.flatten()
                        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok()),
                ),
                Err(_) => v.push(p),
            }
        }
        v
    }
    /// (utime, stime) of the process and its direct children, in seconds.
    fn cpu_times(&self) -> (f64, f64) {
        let (user, sys) = self
            .pids()
            .iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
            .filter_map(|s| {
                let f: Vec<&str> = s.rsplit(')').next()?.split_whitespace().collect();
                Some((
                    f.get(11)?.parse::<u64>().ok()?,
                    f.get(12)?.parse::<u64>().ok()?,
                ))
            })
            .fold((0, 0), |(u, s), (du, ds)| (u + du, s + ds));
        (user as f64 / 100.0, sys as f64 / 100.0)
    }
    /// utime + stime of the process and its direct children, in seconds.
    fn cpu_seconds(&self) -> f64 {
        let (user, sys) = self.cpu_times();
        user + sys
    }
    fn rss_kib(&self) -> u64 {
        self.pids()
            .iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .filter_map(|s| status_number(&s, "VmRSS"))
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

/// weir's configuration, with `http2_engine` only when one is asked for. No admin socket: two
/// weirs (`--h2-engine both`) or another daemon in this network namespace would want the same.
fn weir_config(d: &str, conns: usize, p: &Ports, engine: Option<&str>) -> String {
    let engine = engine.map_or_else(String::new, |e| format!("http2_engine = \"{e}\"\n"));
    format!(
        "[workers]\ncount = 1\n\n[admin]\nenabled = false\n\n[load_balancer]\nmax_connections_per_worker = {conns}\ndrain_timeout_seconds = 1\nhttp2_max_requests_per_connection = 0\nidle_timeout.timeout_seconds = 300\n{engine}\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = {}\ndefault_action = {{ type = \"forward\", target_group = \"origin\" }}\n\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = {}\nprotocol = \"HTTPS\"\n\
         certificate = [{{ certificate_file = \"{d}/cert.pem\", private_key_file = \"{d}/key.pem\" }}]\n\
         default_action = {{ type = \"forward\", target_group = \"origin\" }}\n\n\
         [[target_group]]\nname = \"origin\"\ntarget = [{{ id = \"127.0.0.1\", port = {ORIGIN} }}]\n",
        p.h1, p.tls
    )
}

/// Writes every proxy's configuration (`<name>.toml` for weir, `haproxy.cfg`, `nginx.conf`), the
/// origin's and the relay's.
fn write_configs(dir: &Path, specs: &[Spec], idle_conns: usize) -> Result<()> {
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
    for (i, spec) in specs.iter().enumerate() {
        let p = ports(i);
        match spec.kind {
            Kind::Weir(engine) => std::fs::write(
                dir.join(format!("{}.toml", spec.name)),
                weir_config(&d.to_string(), weir_conns, &p, engine),
            )?,
            Kind::Haproxy => std::fs::write(
                dir.join("haproxy.cfg"),
                format!(
                    "global\n  nbthread 1\n  maxconn {hap_conns}\n  ulimit-n {nofile}\n  tune.ssl.default-dh-param 2048\n  ssl-default-bind-ciphersuites {SERVER_SUITES}\n\
                     defaults\n  mode http\n  timeout connect 10s\n  timeout client 300s\n  timeout server 300s\n  option http-keep-alive\n  http-reuse safe\n\
                     frontend h1\n  bind 127.0.0.1:{}\n  default_backend origin\n\
                     frontend tls\n  bind 127.0.0.1:{} ssl crt {d}/combined.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2\n  default_backend origin\n\
                     backend origin\n  server o 127.0.0.1:{ORIGIN}\n",
                    p.h1, p.tls
                ),
            )?,
            Kind::Nginx => std::fs::write(
                dir.join("nginx.conf"),
                format!(
                    "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx.err; worker_rlimit_nofile {nofile};\n\
                     events {{ worker_connections {conns}; }}\n\
                     http {{ access_log off; keepalive_requests 10000000; keepalive_timeout 300s;\n\
                       upstream origin {{ server 127.0.0.1:{ORIGIN}; keepalive 128; }}\n\
                       server {{ listen 127.0.0.1:{} backlog=4096; listen 127.0.0.1:{} ssl http2 backlog=4096;\n\
                         ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; ssl_protocols TLSv1.2 TLSv1.3;\n\
                         ssl_prefer_server_ciphers on; ssl_conf_command Ciphersuites {SERVER_SUITES};\n\
                         location / {{ proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}\n",
                    p.h1, p.tls
                ),
            )?,
        }
    }
    // The ceiling/floor baseline: a TCP relay doing no HTTP work (see the module comment).
    std::fs::write(
        dir.join("relay.cfg"),
        format!(
            "global\n  nbthread 1\n  maxconn 2000\n\
             defaults\n  mode tcp\n  timeout connect 10s\n  timeout client 300s\n  timeout server 300s\n\
             listen relay\n  bind 127.0.0.1:{RELAY}\n  server o 127.0.0.1:{ORIGIN}\n"
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

/// How many `openssl s_time -new` clients the `tls_handshakes` scenario runs in parallel.
const S_TIME_CLIENTS: usize = 8;

/// The TLS 1.3 suites every proxy prefers and the handshake scenario's clients offer, in this
/// order: weir's server order (`lb_l7::tls::SERVER_CIPHER_SUITES`, kept in step by hand: the
/// report's `same cipher` says when they part), ALB's policies' and browsers' (AES-128-GCM
/// first). HAProxy and nginx are configured with it as their server order. Before, OpenSSL's defaults made them negotiate AES-256-GCM-SHA384 (HAProxy's own
/// server order, nginx's from the client's) while weir took AES-128-GCM-SHA256: the handshake
/// figures compared different key schedules, and the HTTP/2 ones different ciphers.
const SERVER_SUITES: &str =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

/// What the `s_time` clients of one `tls_handshakes` run did.
#[derive(Debug, PartialEq)]
struct Handshakes {
    /// Connections made, each with a handshake.
    connections: u64,
    /// Of which the session was resumed (`r` marks; 0 with `-new`).
    resumed: u64,
    /// Wall time of the run.
    secs: f64,
}

/// One `openssl s_time -new` output: connections made and how many of them resumed a session.
/// s_time prints one mark per connection (`r` resumed, `*` a full TLS 1.2/1.3 handshake, `t`
/// / `3` older versions) on one line, then "N connections in T real seconds, …".
fn parse_s_time(out: &str) -> Option<(u64, u64)> {
    let n = out
        .lines()
        .find(|l| l.contains(" connections in ") && l.contains(" real seconds"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let marks = out
        .lines()
        .find(|l| !l.is_empty() && l.chars().all(|c| matches!(c, '*' | 'r' | 't' | '3')))
        .unwrap_or("");
    let resumed = marks.chars().filter(|&c| c == 'r').count() as u64;
    Some((n, resumed))
}

/// `S_TIME_CLIENTS` parallel `openssl s_time -new` clients on the load core against
/// 127.0.0.1:`port` for `secs`: each connection a full handshake (no session offered), one
/// `GET / HTTP/1.0`, close.
fn full_handshakes(port: u16, secs: u64) -> Result<Handshakes> {
    let (addr, t) = (format!("127.0.0.1:{port}"), secs.to_string());
    let start = Instant::now();
    let clients = (0..S_TIME_CLIENTS)
        .map(|_| {
            Command::new("taskset")
                .args(["-c", LOAD_CORE, "openssl", "s_time", "-new", "-connect"])
                .args([addr.as_str(), "-www", "/", "-time", t.as_str()])
                .args(["-ciphersuites", SERVER_SUITES])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("run openssl s_time")
        })
        .collect::<Result<Vec<_>>>()?;
    let mut hs = Handshakes {
        connections: 0,
        resumed: 0,
        secs: 0.0,
    };
    for c in clients {
        let out = c.wait_with_output().context("openssl s_time")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let Some((n, r)) = parse_s_time(&text).filter(|_| out.status.success()) else {
            bail!("openssl s_time -connect {addr}: {text}");
        };
        hs.connections += n;
        hs.resumed += r;
    }
    hs.secs = start.elapsed().as_secs_f64();
    Ok(hs)
}

/// What the handshake scenario's client (`s_client`, with the library, defaults and suites of
/// the `s_time` clients) negotiates with the proxy on 127.0.0.1:`port`, and how many TLS 1.3
/// session tickets the proxy sends after one `GET / HTTP/1.0`: the full-handshake figures
/// compare the same work only when the version, the cipher, the key exchange, the certificate
/// (the bench's one RSA-2048 key) and the tickets are the same.
#[derive(Debug, Default, PartialEq)]
struct Negotiated {
    protocol: String,
    cipher: String,
    key_exchange: String,
    signature: String,
    tickets: usize,
    /// The status line the proxy answered `GET / HTTP/1.0` (no Host: what `s_time -www`
    /// sends) with: the scenario compares the same work only when every proxy answers 200.
    status: String,
}

fn negotiated(port: u16) -> Result<Negotiated> {
    let mut c = Command::new("timeout")
        .args([
            "10",
            "openssl",
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-ign_eof", "-msg", "-ciphersuites", SERVER_SUITES])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run openssl s_client")?;
    c.stdin
        .take()
        .context("s_client stdin")?
        .write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let out = c.wait_with_output().context("openssl s_client")?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok(parse_negotiated(&text))
}

fn parse_negotiated(text: &str) -> Negotiated {
    let after = |l: &str, key: &str| l.strip_prefix(key).map(|v| v.trim().to_string());
    let mut n = Negotiated::default();
    let (mut sig_type, mut sig_digest) = (String::new(), String::new());
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("New, ") {
            // "New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256"
            if let Some((proto, cipher)) = v.split_once(", Cipher is ") {
                n.protocol = proto.trim().to_string();
                n.cipher = cipher.trim().to_string();
            }
        } else if let Some(v) = after(l, "Server Temp Key:") {
            n.key_exchange = v;
        } else if let Some(v) = after(l, "Peer signature type:") {
            sig_type = v;
        } else if let Some(v) = after(l, "Peer signing digest:") {
            sig_digest = v;
        } else if l.starts_with("<<< ") && l.ends_with("NewSessionTicket") {
            n.tickets += 1;
        } else if l.starts_with("HTTP/") && n.status.is_empty() {
            n.status = l.trim().to_string();
        }
    }
    n.signature = format!("{sig_type}/{sig_digest}");
    n
}

/// One h2load run with `load` (connections, streams, `-D SECS` or `-n COUNT`, `--h1`): req/s,
/// p50, p99 (µs), requests done, requests failed.
fn h2load(url: &str, load: &[&str], log: &Path) -> Result<(f64, f64, f64, u64, u64)> {
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
        &["-c", LOAD_CORE, "h2load", "-t", "1", "--log-file", &lf]
            .iter()
            .chain(load)
            .chain(&[url])
            .copied()
            .collect::<Vec<_>>(),
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
    let kernel0 = KernelWork::now(p);
    let cpu0 = p.cpu_times();
    let cores0 = CoreTimes::now();
    let (rps, p50, p99, total, err) = wrk(&format!("http://127.0.0.1:{port}/"), 64, secs, &[])?;
    let cpu = since(p.cpu_times(), cpu0);
    KernelWork::now(p).push_since(
        &kernel0,
        e,
        [
            "h1_segments_per_req",
            "h1_pure_acks_per_1k_req",
            "h1_wakeups_per_1k_req",
        ],
        total,
    );
    let busy = CoreTimes::now().busy_since(&cores0);
    e.entry("h1_rps").or_default().push(rps);
    e.entry("h1_p50_us").or_default().push(p50);
    e.entry("h1_p99_us").or_default().push(p99);
    push_load(
        e,
        [
            "h1_cpu_us_per_req",
            "h1_user_us_per_req",
            "h1_proxy_core_busy_pct",
            "h1_load_core_busy_pct",
        ],
        cpu,
        total,
        busy,
    );
    Ok(err)
}

/// What the kernel did around a run, beyond the CPU time: TCP segments sent and pure ACKs
/// received in this network namespace (`/proc/net/snmp` `Tcp: OutSegs`, `/proc/net/netstat`
/// `TcpExt: TCPPureAcks`: every socket of the run, client, proxy and origin alike, and
/// anything else on loopback meanwhile), and the proxy's voluntary context switches (each a
/// sleep in `epoll_wait` or the like, so a wake-up to come). An HTTP/1.1 proxy that does not
/// pipeline needs 4 segments per request (request in, on, response in, back) and no pure
/// ACK: what it sends beyond, or sleeps, is kernel work that could go.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct KernelWork {
    segments: u64,
    pure_acks: u64,
    wakeups: u64,
}

impl KernelWork {
    fn now(p: &Proc) -> Self {
        let read = |f: &str| std::fs::read_to_string(f).unwrap_or_default();
        let (snmp, netstat) = (read("/proc/net/snmp"), read("/proc/net/netstat"));
        Self {
            segments: proc_net_counter(&snmp, "Tcp", "OutSegs").unwrap_or(0),
            pure_acks: proc_net_counter(&netstat, "TcpExt", "TCPPureAcks").unwrap_or(0),
            wakeups: p
                .tids()
                .iter()
                .map(|t| voluntary_switches(&read(&format!("/proc/{t}/status"))))
                .sum(),
        }
    }

    /// Pushes segments per request, pure ACKs and wake-ups per 1,000 requests since `before`
    /// under `keys`.
    fn push_since(
        &self,
        before: &Self,
        e: &mut BTreeMap<&str, Vec<f64>>,
        keys: [&'static str; 3],
        requests: u64,
    ) {
        if requests == 0 {
            return;
        }
        let per = |now: u64, was: u64| now.saturating_sub(was) as f64 / requests as f64;
        e.entry(keys[0])
            .or_default()
            .push(per(self.segments, before.segments));
        e.entry(keys[1])
            .or_default()
            .push(1e3 * per(self.pure_acks, before.pure_acks));
        e.entry(keys[2])
            .or_default()
            .push(1e3 * per(self.wakeups, before.wakeups));
    }
}

/// A counter of `/proc/net/snmp` or `/proc/net/netstat`: each table is a line of names after
/// `table:` and a line of values after the same prefix.
fn proc_net_counter(text: &str, table: &str, field: &str) -> Option<u64> {
    let prefix = format!("{table}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let i = names.split_whitespace().position(|n| n == field)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// `voluntary_ctxt_switches` of a `/proc/PID/status` (0 when absent: a thread that ended).
fn voluntary_switches(status: &str) -> u64 {
    status_number(status, "voluntary_ctxt_switches").unwrap_or(0)
}

/// The number a `/proc/PID/status` line `key:` starts with (`VmRSS:  1234 kB` → 1234).
fn status_number(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// (utime, stime) spent between `before` and `now`.
fn since(now: (f64, f64), before: (f64, f64)) -> (f64, f64) {
    (now.0 - before.0, now.1 - before.1)
}

/// Pushes a run's proxy CPU µs per request (all, and user space alone: the rest is the
/// kernel's, mostly loopback TCP) and both cores' busy % under `keys`.
fn push_load(
    e: &mut BTreeMap<&str, Vec<f64>>,
    keys: [&'static str; 4],
    (user_s, sys_s): (f64, f64),
    requests: u64,
    (proxy_busy, load_busy): (f64, f64),
) {
    if requests > 0 {
        let per = |s: f64| s * 1e6 / requests as f64;
        e.entry(keys[0]).or_default().push(per(user_s + sys_s));
        e.entry(keys[1]).or_default().push(per(user_s));
    }
    e.entry(keys[2]).or_default().push(proxy_busy);
    e.entry(keys[3]).or_default().push(load_busy);
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

/// The Python client that holds TLS keep-alive connections: `N` handshakes (ALPN `http/1.1`,
/// 64 at a time), one request each, then `ready N` on stdout, and it holds them until stdin
/// closes. asyncio: one process and no thread per connection, so 10,000 fit.
const TLS_HOLDER: &str = r#"
import asyncio, resource, ssl, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])
async def one(sem, keep):
    async with sem:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=ctx), 30)
        w.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        head = await asyncio.wait_for(r.read(1024), 30)
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit("unexpected answer: %r" % head[:64])
        keep.append((r, w))
async def main():
    sem, keep = asyncio.Semaphore(64), []
    await asyncio.gather(*(one(sem, keep) for _ in range(n)))
    print("ready", len(keep), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
asyncio.run(main())
"#;

/// The TLS holder while it holds its connections; they close when it is dropped.
struct TlsHolder(Child);

impl Drop for TlsHolder {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Opens `n` TLS keep-alive connections to `port` (one request each) and holds them.
fn tls_connections(port: u16, n: usize) -> Result<TlsHolder> {
    let mut child = Command::new("taskset")
        .args(["-c", LOAD_CORE, "python3", "-c", TLS_HOLDER])
        .args([port.to_string(), n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start python3 (the TLS client)")?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    if line.trim() != format!("ready {n}") {
        let _ = child.kill();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = child.wait();
        bail!("TLS client on port {port}: {line:?} {err}");
    }
    Ok(TlsHolder(child))
}

/// RSS (KiB) once it holds steady: a process may still be settling after it listens (weir's
/// control plane loads its programs and maps after starting the worker), and only the
/// connections' memory is to be counted.
fn steady_rss(p: &Proc) -> u64 {
    let mut before = p.rss_kib();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(250));
        let now = p.rss_kib();
        if now.abs_diff(before) * 200 <= before {
            return now;
        }
        before = now;
    }
    before
}

/// RSS growth per connection, in bytes, while `hold` holds `n` connections, read once the
/// last one has been idle for 1.5 s: what an idle connection costs for as long as it stays
/// idle (weir parks a plain one idle for 0.5 s, `lb_l7::accept::park`; nginx and HAProxy
/// change nothing after the request).
fn rss_per_conn<T>(p: &Proc, n: usize, hold: impl FnOnce() -> Result<T>) -> Result<f64> {
    let before = steady_rss(p);
    let held = hold()?;
    std::thread::sleep(Duration::from_millis(1500));
    let after = p.rss_kib();
    drop(held);
    Ok(after.saturating_sub(before) as f64 * 1024.0 / n as f64)
}

/// Calls per syscall (and `total`) from `strace -c`'s summary table.
fn parse_strace(text: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors], syscall
        if !(5..=6).contains(&f.len()) || f[0].parse::<f64>().is_err() {
            continue;
        }
        if let (Ok(calls), Some(name)) = (f[3].parse::<u64>(), f.last()) {
            m.insert((*name).to_string(), calls);
        }
    }
    m
}

/// Syscalls per request of proxy `p` over one `h2load` run of a fixed count (`load`), from
/// `strace -c -f` attached to every thread of the proxy's processes.
fn syscalls_per_request(
    p: &Proc,
    url: &str,
    load: &[&str],
    dir: &Path,
    tag: &str,
) -> Result<BTreeMap<String, f64>> {
    let out = dir.join(format!("strace-{tag}.txt"));
    let mut args = vec![
        "-c".to_string(),
        "-f".into(),
        "-o".into(),
        out.display().to_string(),
    ];
    for t in p.tids() {
        args.push("-p".into());
        args.push(t.to_string());
    }
    let mut st = Command::new("strace")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start strace")?;
    // Attaching takes a moment per thread.
    std::thread::sleep(Duration::from_secs(1));
    let run = h2load(url, load, &dir.join(format!("h2load-strace-{tag}.log")));
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-INT", &st.id().to_string()])
        .status();
    let _ = st.wait();
    let (_, _, _, done, failed) = run?;
    if done == 0 || failed > 0 {
        bail!("strace run {tag}: {done} requests done, {failed} failed");
    }
    let text = std::fs::read_to_string(&out).with_context(|| format!("read {}", out.display()))?;
    Ok(parse_strace(&text)
        .into_iter()
        .map(|(k, v)| (k, v as f64 / done as f64))
        .collect())
}

/// `total 4.09/req: sendto 2.00, recvfrom 2.01, …` (the `top` most frequent).
fn syscall_line(per_req: &BTreeMap<String, f64>, top: usize) -> String {
    let mut v: Vec<(&String, &f64)> = per_req.iter().filter(|(k, _)| *k != "total").collect();
    v.sort_by(|a, b| b.1.total_cmp(a.1));
    let list: Vec<String> = v
        .iter()
        .take(top)
        .map(|(k, n)| format!("{k} {n:.2}"))
        .collect();
    format!(
        "total {:.2}/req: {}",
        per_req.get("total").copied().unwrap_or(f64::NAN),
        list.join(", ")
    )
}

/// name → metric → median.
type Medians = BTreeMap<String, BTreeMap<String, f64>>;

fn get(med: &Medians, name: &str, key: &str) -> f64 {
    med.get(name)
        .and_then(|m| m.get(key))
        .copied()
        .unwrap_or(f64::NAN)
}

/// One of issue 15's targets for one weir: weir's figure over the reference's, and the bound.
#[derive(Debug)]
struct Goal {
    what: &'static str,
    ratio: f64,
    limit: f64,
}

impl Goal {
    /// A figure that was not measured (NaN) is not met.
    fn met(&self) -> bool {
        self.ratio <= self.limit
    }
}

/// Issue 15's targets for weir `w` (every figure: lower is better).
fn goals(med: &Medians, w: &str) -> Vec<Goal> {
    let g = |k: &str| (get(med, w, k), get(med, "haproxy", k), get(med, "nginx", k));
    let better = |h: f64, n: f64| {
        if h.is_nan() || n.is_nan() {
            f64::NAN
        } else {
            h.min(n)
        }
    };
    let (h2w, h2h, h2n) = g("h2tls_cpu_us_per_req");
    let (p99w, p99h, p99n) = g("h2tls_p99_us");
    let (h1w, h1h, h1n) = g("h1_cpu_us_per_req");
    let (iw, _, i_n) = g("idle_conn_bytes");
    let (tw, _, tn) = g("idle_tls_conn_bytes");
    let (hsw, hsh, hsn) = g("tls_handshake_cpu_us");
    let goal = |what, ratio, limit| Goal { what, ratio, limit };
    vec![
        goal("HTTP/2 TLS CPU/request vs HAProxy", h2w / h2h, 0.8),
        goal("HTTP/2 TLS CPU/request vs nginx", h2w / h2n, 0.7),
        goal(
            "HTTP/2 TLS p99 vs the better",
            p99w / better(p99h, p99n),
            1.0,
        ),
        goal(
            "HTTP/1.1 CPU/request vs the better",
            h1w / better(h1h, h1n),
            0.85,
        ),
        goal("idle plain RSS/conn vs nginx", iw / i_n, 1.0),
        goal("idle TLS RSS/conn vs nginx", tw / tn, 1.0),
        goal(
            "CPU per TLS handshake vs the better",
            hsw / better(hsh, hsn),
            0.8,
        ),
    ]
}

/// (metric, proxy, before, after) for every median present in both `old` (a previous
/// `http.json`) and `new`, in `order`'s order of metrics.
fn changes(old: &Value, new: &Medians, order: &[&str]) -> Vec<(String, String, f64, f64)> {
    let mut v = Vec::new();
    for k in order {
        for (name, ms) in new {
            if let (Some(after), Some(before)) = (ms.get(*k), old["median"][name][*k].as_f64()) {
                v.push(((*k).to_string(), name.clone(), before, *after));
            }
        }
    }
    v
}

/// Change in percent, `+` meaning the figure grew.
fn change_pct(before: f64, after: f64) -> f64 {
    100.0 * (after - before) / before
}

/// Figures of the table and of `--compare`, in print order.
const METRICS: [&str; 27] = [
    "h1_cpu_us_per_req",
    "h1_user_us_per_req",
    "h1_syscalls_per_req",
    "h1_segments_per_req",
    "h1_pure_acks_per_1k_req",
    "h1_wakeups_per_1k_req",
    "h1_rps",
    "h1_p50_us",
    "h1_p99_us",
    "h1_proxy_core_busy_pct",
    "h1_load_core_busy_pct",
    "h2tls_cpu_us_per_req",
    "h2tls_user_us_per_req",
    "h2tls_syscalls_per_req",
    "h2tls_segments_per_req",
    "h2tls_pure_acks_per_1k_req",
    "h2tls_wakeups_per_1k_req",
    "h2tls_rps",
    "h2tls_p50_us",
    "h2tls_p99_us",
    "h2tls_proxy_core_busy_pct",
    "h2tls_load_core_busy_pct",
    "tls_handshake_cpu_us",
    "tls_handshakes_per_s",
    "tls_resumed",
    "idle_conn_bytes",
    "idle_tls_conn_bytes",
];

/// Starts every proxy of `specs` on the proxy core and waits until each listens.
fn start_proxies(specs: &[Spec], weir_bin: &str, dir: &Path) -> Result<Vec<Proc>> {
    let d = dir.display().to_string();
    let mut procs = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let log = dir.join(format!("{}.log", spec.name));
        let (cmd, args): (&str, Vec<String>) = match spec.kind {
            Kind::Weir(_) => (
                weir_bin,
                vec![
                    "run".into(),
                    "--config".into(),
                    format!("{d}/{}.toml", spec.name),
                ],
            ),
            Kind::Haproxy => ("haproxy", vec!["-f".into(), format!("{d}/haproxy.cfg")]),
            Kind::Nginx => (
                "nginx",
                vec![
                    "-c".into(),
                    format!("{d}/nginx.conf"),
                    "-p".into(),
                    d.clone(),
                ],
            ),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        procs.push(spawn(spec.name, PROXY_CORE, cmd, &args, &log)?);
        if let Err(e) = wait_port(ports(i).h1).and_then(|()| wait_port(ports(i).tls)) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(10).collect();
            bail!(
                "{}: {e}; last lines of {}:\n{}",
                spec.name,
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
    Ok(procs)
}

pub fn run(args: &[String]) -> Result<()> {
    let mut o = parse(args)?;
    let compare: Option<Value> = match &o.compare {
        Some(f) => Some(
            serde_json::from_str(
                &std::fs::read_to_string(f).with_context(|| format!("read {}", f.display()))?,
            )
            .with_context(|| format!("{}: not JSON", f.display()))?,
        ),
        None => None,
    };
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

    let weir_bin: String = match &o.weir_bin {
        Some(b) => b.display().to_string(),
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
            target.join("release/weir").display().to_string()
        }
    };

    let specs = specs(o.h2_engine);
    let weirs: Vec<&str> = specs
        .iter()
        .filter(|s| matches!(s.kind, Kind::Weir(_)))
        .map(|s| s.name)
        .collect();
    make_cert(&dir)?;
    write_configs(&dir, &specs, o.idle_conns)?;
    let d = dir.display().to_string();
    let _origin = spawn(
        "origin",
        LOAD_CORE,
        "nginx",
        &["-c", &format!("{d}/origin.conf"), "-p", &d],
        &dir.join("origin.log"),
    )?;
    wait_port(ORIGIN)?;
    // name → metric → values over rounds
    let mut m: BTreeMap<&str, BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    // Memory first, on fresh processes: RSS growth per idle keep-alive connection, plain, then
    // TLS on processes started again (an allocator keeps what the plain connections freed, which
    // the TLS ones would reuse unseen).
    let procs = start_proxies(&specs, &weir_bin, &dir)?;
    idle_pass(&specs, &procs, false, o.idle_conns, &mut m)?;
    drop(procs);
    let procs = start_proxies(&specs, &weir_bin, &dir)?;
    idle_pass(&specs, &procs, true, o.idle_conns, &mut m)?;
    rounds(&o, &specs, &weirs, procs, m, &dir, &weir_bin, compare)
}

/// RSS growth per idle keep-alive connection (`tls` or plain) of every proxy, into `m`.
fn idle_pass<'a>(
    specs: &'a [Spec],
    procs: &[Proc],
    tls: bool,
    n: usize,
    m: &mut BTreeMap<&'a str, BTreeMap<&'static str, Vec<f64>>>,
) -> Result<()> {
    for (i, (spec, p)) in specs.iter().zip(procs).enumerate() {
        eprintln!(
            "{}: {n} idle {} connections",
            spec.name,
            if tls { "TLS" } else { "plain" }
        );
        let port = ports(i);
        // Warm up first (code paged in, allocator pools, first target connections, session
        // caches) so that only what the idle connections hold is counted, for every proxy.
        let per = if tls {
            drop(tls_connections(port.tls, 200)?);
            rss_per_conn(p, n, || tls_connections(port.tls, n))?
        } else {
            drop(idle_connections(port.h1, 200)?);
            rss_per_conn(p, n, || idle_connections(port.h1, n))?
        };
        let key = if tls {
            "idle_tls_conn_bytes"
        } else {
            "idle_conn_bytes"
        };
        m.entry(spec.name)
            .or_default()
            .entry(key)
            .or_default()
            .push(per);
    }
    Ok(())
}

/// The alternated rounds, the strace runs and the report, on the proxies started last.
#[allow(clippy::too_many_arguments)]
fn rounds(
    o: &Opts,
    specs: &[Spec],
    weirs: &[&str],
    procs: Vec<Proc>,
    mut m: BTreeMap<&str, BTreeMap<&str, Vec<f64>>>,
    dir: &Path,
    weir_bin: &str,
    compare: Option<Value>,
) -> Result<()> {
    let d = dir.display().to_string();
    let relay = spawn(
        "relay",
        PROXY_CORE,
        "haproxy",
        &["-f", &format!("{d}/relay.cfg")],
        &dir.join("relay.log"),
    )?;
    wait_port(RELAY)?;
    std::thread::sleep(Duration::from_secs(1));
    // Warm-up: pools, caches.
    for i in 0..specs.len() {
        wrk(&format!("http://127.0.0.1:{}/", ports(i).h1), 64, 1, &[])?;
    }
    wrk(&format!("http://127.0.0.1:{RELAY}/"), 64, 1, &[])?;

    // What each proxy negotiates with the handshake scenario's client library.
    let mut tls_params = BTreeMap::new();
    for (i, spec) in specs.iter().enumerate() {
        tls_params.insert(spec.name, negotiated(ports(i).tls)?);
    }

    let secs = o.duration.to_string();
    let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
    // Per proxy: TLS connections made by s_time, of which resumed (must be none).
    let mut handshakes: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for round in 0..o.rounds {
        for (i, (spec, p)) in specs.iter().zip(&procs).enumerate() {
            let name = spec.name;
            eprintln!("round {}/{}: {name}", round + 1, o.rounds);
            let e = m.entry(name).or_default();
            *errors.entry(name).or_default() += h1_run(e, p, ports(i).h1, o.duration)?;
            let kernel0 = KernelWork::now(p);
            let cpu0 = p.cpu_times();
            let cores0 = CoreTimes::now();
            let (rps, p50, p99, done, err) = h2load(
                &format!("https://127.0.0.1:{}{H2_PATH}", ports(i).tls),
                &["-c", "16", "-m", "32", "-D", &secs],
                &dir.join(format!("h2load-{name}.log")),
            )?;
            let cpu = since(p.cpu_times(), cpu0);
            KernelWork::now(p).push_since(
                &kernel0,
                e,
                [
                    "h2tls_segments_per_req",
                    "h2tls_pure_acks_per_1k_req",
                    "h2tls_wakeups_per_1k_req",
                ],
                done,
            );
            push_load(
                e,
                [
                    "h2tls_cpu_us_per_req",
                    "h2tls_user_us_per_req",
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
            // Full handshakes only: a new connection per request, CPU per connection.
            let cpu0 = p.cpu_seconds();
            let hs = full_handshakes(ports(i).tls, o.duration.min(5))?;
            let cpu = p.cpu_seconds() - cpu0;
            e.entry("tls_handshakes_per_s")
                .or_default()
                .push(hs.connections as f64 / hs.secs);
            e.entry("tls_resumed").or_default().push(hs.resumed as f64);
            let t = handshakes.entry(name).or_default();
            t.0 += hs.connections;
            t.1 += hs.resumed;
            if hs.connections > 0 {
                e.entry("tls_handshake_cpu_us")
                    .or_default()
                    .push(cpu * 1e6 / hs.connections as f64);
            }
        }
        eprintln!(
            "round {}/{}: relay (the lab's ceiling)",
            round + 1,
            o.rounds
        );
        let e = m.entry("relay").or_default();
        *errors.entry("relay").or_default() += h1_run(e, &relay, RELAY, o.duration)?;
    }
    drop(relay);

    // Syscalls per request: a separate run of a fixed count under strace.
    let n = o.strace_requests.to_string();
    let mut sys: BTreeMap<&str, BTreeMap<&str, BTreeMap<String, f64>>> = BTreeMap::new();
    for (i, (spec, p)) in specs.iter().zip(&procs).enumerate() {
        eprintln!("strace: {} over {n} requests", spec.name);
        let h1 = syscalls_per_request(
            p,
            &format!("http://127.0.0.1:{}/", ports(i).h1),
            &["--h1", "-c", "64", "-n", &n],
            dir,
            &format!("{}-h1", spec.name),
        )?;
        let h2 = syscalls_per_request(
            p,
            &format!("https://127.0.0.1:{}{H2_PATH}", ports(i).tls),
            &["-c", "16", "-m", "32", "-n", &n],
            dir,
            &format!("{}-h2tls", spec.name),
        )?;
        let e = m.entry(spec.name).or_default();
        for (key, per) in [
            ("h1_syscalls_per_req", &h1),
            ("h2tls_syscalls_per_req", &h2),
        ] {
            e.entry(key)
                .or_default()
                .push(per.get("total").copied().unwrap_or(f64::NAN));
        }
        let s = sys.entry(spec.name).or_default();
        s.insert("h1", h1);
        s.insert("h2tls", h2);
    }
    drop(procs);

    let med: Medians = m
        .iter()
        .map(|(n, ms)| {
            (
                (*n).to_string(),
                ms.iter()
                    .map(|(k, v)| ((*k).to_string(), median(v.clone())))
                    .collect(),
            )
        })
        .collect();
    let names: Vec<&str> = specs
        .iter()
        .map(|s| s.name)
        .chain(["relay"])
        .collect::<Vec<_>>();
    println!(
        "\nweir vs HAProxy 2.6 vs nginx 1.22 — one worker on core {PROXY_CORE}, origin + client on core {LOAD_CORE}, median of {} round(s) of {} s",
        o.rounds, o.duration
    );
    let mut head = format!("{:<26}", "metric");
    for n in &names {
        head += &format!("{:>12}", if *n == "relay" { "tcp relay" } else { n });
    }
    for w in weirs {
        head += &format!("{:>16}{:>16}", format!("{w}/hap"), format!("{w}/ngx"));
    }
    println!("{head}");
    let mut ratios = serde_json::Map::new();
    for k in METRICS {
        let mut line = format!("{k:<26}");
        for n in &names {
            let v = get(&med, n, k);
            line += &if v.is_nan() {
                format!("{:>12}", "-")
            } else {
                format!("{v:>12.1}")
            };
        }
        for w in weirs {
            let (rh, rn) = (
                get(&med, w, k) / get(&med, "haproxy", k),
                get(&med, w, k) / get(&med, "nginx", k),
            );
            line += &format!("{rh:>16.2}{rn:>16.2}");
            ratios
                .entry((*w).to_string())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|o| o.insert(k.into(), json!({ "over_haproxy": rh, "over_nginx": rn })));
        }
        println!("{line}");
    }
    println!(
        "\nsyscalls per request (strace -c -f over {} requests; h1: h2load --h1 -c64, h2tls: h2load -c16 -m32)",
        o.strace_requests
    );
    for (name, by) in &sys {
        for (scenario, per) in by {
            println!("  {name:<12}{scenario:<7}{}", syscall_line(per, 8));
        }
    }
    // The lab: what this machine can show at all (see the module comment).
    let ceiling = get(&med, "relay", "h1_rps");
    let floor = get(&med, "relay", "h1_cpu_us_per_req");
    let work = |n: &str| get(&med, n, "h1_cpu_us_per_req") - floor;
    println!(
        "\nthe lab (h1): a TCP relay doing no HTTP work reaches {ceiling:.0} req/s at {floor:.1} µs CPU/request (proxy core {:.0} % busy, load core {:.0} %): no proxy can show more req/s or less CPU here",
        get(&med, "relay", "h1_proxy_core_busy_pct"),
        get(&med, "relay", "h1_load_core_busy_pct")
    );
    let mut work_json = serde_json::Map::new();
    let mut parts = Vec::new();
    for s in specs {
        parts.push(format!("{} {:.2}", s.name, work(s.name)));
        work_json.insert(s.name.into(), json!(work(s.name)));
    }
    println!(
        "  HTTP work per request (CPU µs above the relay's floor): {}",
        parts.join(", ")
    );
    let lab = json!({
        "h1_ceiling_rps": ceiling,
        "h1_floor_cpu_us_per_req": floor,
        "h1_http_work_us_per_req": work_json,
    });
    println!("\ntargets (issue 15; ratio = weir's figure over the reference's, lower is better)");
    let mut targets = serde_json::Map::new();
    for w in weirs {
        for g in goals(&med, w) {
            println!(
                "  {w:<12}{:<40}{:>8.2}×  (≤ {}×)  {}",
                g.what,
                g.ratio,
                g.limit,
                if g.met() { "met" } else { "NOT MET" }
            );
            targets.insert(format!("{w}: {} ≤ {}×", g.what, g.limit), json!(g.met()));
        }
    }
    let resumed: u64 = handshakes.values().map(|t| t.1).sum();
    println!(
        "\nTLS handshakes (openssl s_time -new): {}; resumed: {resumed} — {}",
        handshakes
            .iter()
            .map(|(n, t)| format!("{n} {} ({} resumed)", t.0, t.1))
            .collect::<Vec<_>>()
            .join(", "),
        if resumed == 0 {
            "all full handshakes"
        } else {
            "NOT ALL FULL: the CPU per handshake figure includes resumptions"
        }
    );
    println!(
        "TLS negotiated with the handshake scenario's client (openssl s_client, as s_time: OpenSSL's defaults, TLS 1.3 suites in browsers' order):"
    );
    for (name, n) in &tls_params {
        println!(
            "  {name:<12}{} {} key exchange {}, signature {}, {} session tickets; answered {}",
            n.protocol, n.cipher, n.key_exchange, n.signature, n.tickets, n.status
        );
    }
    let same = |f: fn(&Negotiated) -> &str| {
        let mut v: Vec<&str> = tls_params.values().map(f).collect();
        v.dedup();
        v.len() <= 1
    };
    let same_tickets = {
        let mut v: Vec<usize> = tls_params.values().map(|n| n.tickets).collect();
        v.dedup();
        v.len() <= 1
    };
    println!(
        "  same protocol: {}, same cipher: {}, same key exchange: {}, same ticket count: {}, all answered 200: {}",
        same(|n| &n.protocol),
        same(|n| &n.cipher),
        same(|n| &n.key_exchange),
        same_tickets,
        tls_params.values().all(|n| n.status.contains(" 200"))
    );
    println!("client-visible errors: {errors:?}");
    if let (Some(old), Some(f)) = (&compare, &o.compare) {
        println!(
            "\nbefore → after (before: {}, {})",
            f.display(),
            old["machine"]["date_utc"].as_str().unwrap_or("undated")
        );
        for (k, name, before, after) in changes(old, &med, &METRICS) {
            println!(
                "  {k:<26}{name:<12}{before:>12.1} →{after:>12.1}  {:>+7.1} %",
                change_pct(before, after)
            );
        }
    }
    let engine = match o.h2_engine {
        H2Engine::Default => "default",
        H2Engine::Weir => "weir",
        H2Engine::Hyper => "hyper",
        H2Engine::Both => "both",
    };
    let all: Value = json!({
        "setup": { "proxy_core": PROXY_CORE, "load_core": LOAD_CORE, "duration_s": o.duration, "rounds": o.rounds,
                   "idle_connections": o.idle_conns, "strace_requests": o.strace_requests, "weir": weir_bin,
                   "h2_engine": engine, "proxies": names,
                   "haproxy": sh("haproxy", &["-v"]).unwrap_or_default().lines().next().unwrap_or(""),
                   "nginx": sh("nginx", &["-v"]).unwrap_or_default().trim() },
        "median": med, "rounds": m, "ratios": ratios,
        "tls_negotiated": tls_params.iter().map(|(n, t)| ((*n).to_string(), json!({ "protocol": t.protocol, "cipher": t.cipher, "key_exchange": t.key_exchange, "signature": t.signature, "tickets": t.tickets, "status": t.status }))).collect::<serde_json::Map<_, _>>(),
        "tls_handshakes": handshakes.iter().map(|(n, t)| ((*n).to_string(), json!({ "connections": t.0, "resumed": t.1 }))).collect::<serde_json::Map<_, _>>(), "syscalls": sys, "lab": lab, "targets": targets, "errors": errors,
    });
    let out = crate::bench::report::write_json("http", &all)?;
    println!("wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiated_parameters_from_s_client() {
        let out = "<<< TLS 1.3, Handshake [length 0078], ServerHello\n\
                   Peer signing digest: SHA256\nPeer signature type: RSA-PSS\n\
                   Server Temp Key: X25519, 253 bits\n\
                   New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384\n\
                   <<< TLS 1.3, Handshake [length 00e9], NewSessionTicket\n\
                   <<< TLS 1.3, Handshake [length 00e9], NewSessionTicket\n\
                   HTTP/1.1 200 OK\nServer: nginx\n";
        assert_eq!(
            parse_negotiated(out),
            Negotiated {
                protocol: "TLSv1.3".into(),
                cipher: "TLS_AES_256_GCM_SHA384".into(),
                key_exchange: "X25519, 253 bits".into(),
                signature: "RSA-PSS/SHA256".into(),
                tickets: 2,
                status: "HTTP/1.1 200 OK".into(),
            }
        );
    }

    #[test]
    fn s_time_connections_and_resumptions() {
        let new = "Collecting connection statistics for 1 seconds\n*****\n\n\
                   5 connections in 0.29s; 17.24 connections/user sec, bytes read 2000\n\
                   5 connections in 2 real seconds, 400 bytes read per connection\n";
        assert_eq!(parse_s_time(new), Some((5, 0)));
        let reused = "Collecting connection statistics for 1 seconds\n*rrr\n\n\
                      4 connections in 0.01s; 400.00 connections/user sec, bytes read 1600\n\
                      4 connections in 1 real seconds, 400 bytes read per connection\n";
        assert_eq!(parse_s_time(reused), Some((4, 3)));
        let none = "Collecting connection statistics for 1 seconds\n\n\
                    0 connections in 0.00s; 0.00 connections/user sec, bytes read 0\n\
                    0 connections in 1 real seconds, 0 bytes read per connection\n";
        assert_eq!(parse_s_time(none), Some((0, 0)));
        assert_eq!(parse_s_time("Unable to get connection\n"), None);
    }

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

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn options_engine_compare_and_quick() {
        let o = parse(&args(&[
            "bench",
            "http",
            "--h2-engine",
            "both",
            "--compare",
            "old.json",
        ]))
        .unwrap();
        assert_eq!(o.h2_engine, H2Engine::Both);
        assert_eq!(o.compare.as_deref(), Some(Path::new("old.json")));
        let o = parse(&args(&["--quick", "--strace-requests", "100"])).unwrap();
        assert_eq!((o.duration, o.rounds, o.idle_conns), (3, 1, 2_000));
        assert_eq!(o.strace_requests, 100);
        assert_eq!(parse(&[]).unwrap().h2_engine, H2Engine::Default);
        assert!(parse(&args(&["--h2-engine", "h3"])).is_err());
        assert!(parse(&args(&["--h2-engine"])).is_err());
        assert!(parse(&args(&["--rounds", "0"])).is_err());
        assert!(parse(&args(&["--fast"])).is_err());
    }

    #[test]
    fn both_engines_are_two_weirs_in_the_alternation() {
        let names = |e| specs(e).iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(
            names(H2Engine::Both),
            ["weir", "weir-hyper", "haproxy", "nginx"]
        );
        assert_eq!(names(H2Engine::Default), ["weir", "haproxy", "nginx"]);
        assert_eq!(specs(H2Engine::Both)[1].kind, Kind::Weir(Some("hyper")));
        // No port of a proxy is the relay's or the origin's.
        for i in 0..4 {
            let p = ports(i);
            assert!(![RELAY, ORIGIN].contains(&p.h1) && ![RELAY, ORIGIN].contains(&p.tls));
        }
    }

    #[test]
    fn weir_config_names_the_engine_only_when_asked() {
        let p = ports(0);
        let plain = weir_config("/d", 100, &p, None);
        assert!(!plain.contains("http2_engine"), "{plain}");
        let hyper = weir_config("/d", 100, &p, Some("hyper"));
        let lb = hyper.split("[[listener]]").next().unwrap();
        assert!(lb.contains("[load_balancer]") && lb.contains("http2_engine = \"hyper\"\n"));
        // No admin socket to fight over with a second weir or another daemon.
        assert!(plain.contains("[admin]\nenabled = false\n"));
    }

    #[test]
    fn cpu_per_request_and_its_user_part() {
        let mut e = BTreeMap::new();
        let keys = ["cpu", "user", "proxy", "load"];
        push_load(&mut e, keys, (1.0, 3.0), 1_000_000, (90.0, 50.0));
        assert_eq!(e["cpu"], [4.0]);
        assert_eq!(e["user"], [1.0]);
        assert_eq!((e["proxy"][0], e["load"][0]), (90.0, 50.0));
        // No request done: no CPU per request, but the cores' busy share still.
        push_load(&mut e, keys, (1.0, 3.0), 0, (10.0, 10.0));
        assert_eq!(e["cpu"].len(), 1);
        assert_eq!(e["proxy"].len(), 2);
        assert_eq!(since((3.0, 5.0), (1.0, 1.5)), (2.0, 3.5));
    }

    const STRACE: &str = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 69.33    0.455253          11     40000           sendto
 27.85    0.182901           4     40192        84 recvfrom
  1.87    0.012264          15       810           epoll_wait
  0.21    0.001356          21        64        64 connect
------ ----------- ----------- --------- --------- ----------------
100.00    0.656628           8     81066       148 total
";

    #[test]
    fn strace_summary_per_syscall_and_total() {
        let m = parse_strace(STRACE);
        assert_eq!(m["sendto"], 40_000);
        assert_eq!(m["recvfrom"], 40_192);
        assert_eq!(m["connect"], 64);
        assert_eq!(m["total"], 81_066);
        assert_eq!(m.len(), 5);
        let per: BTreeMap<String, f64> = m
            .into_iter()
            .map(|(k, v)| (k, v as f64 / 20_000.0))
            .collect();
        assert_eq!(
            syscall_line(&per, 2),
            "total 4.05/req: recvfrom 2.01, sendto 2.00"
        );
        assert!(parse_strace("strace: Process 1 attached\n").is_empty());
    }

    fn med(rows: &[(&str, &str, f64)]) -> Medians {
        let mut m = Medians::new();
        for (n, k, v) in rows {
            m.entry((*n).to_string())
                .or_default()
                .insert((*k).to_string(), *v);
        }
        m
    }

    #[test]
    fn targets_against_the_better_peer() {
        let m = med(&[
            ("weir", "h1_cpu_us_per_req", 17.0),
            ("haproxy", "h1_cpu_us_per_req", 20.0),
            ("nginx", "h1_cpu_us_per_req", 24.0),
            ("weir", "h2tls_cpu_us_per_req", 12.0),
            ("haproxy", "h2tls_cpu_us_per_req", 15.0),
            ("nginx", "h2tls_cpu_us_per_req", 17.0),
            ("weir", "idle_conn_bytes", 500.0),
            ("nginx", "idle_conn_bytes", 500.0),
            ("weir", "tls_handshake_cpu_us", 900.0),
            ("haproxy", "tls_handshake_cpu_us", 1_000.0),
            ("nginx", "tls_handshake_cpu_us", 1_100.0),
        ]);
        let g = goals(&m, "weir");
        let find = |w: &str| g.iter().find(|x| x.what == w).unwrap();
        // 17 / min(20, 24) = 0.85: on the bound is met.
        let h1 = find("HTTP/1.1 CPU/request vs the better");
        assert!((h1.ratio - 0.85).abs() < 1e-9 && h1.met());
        // 12 / 15 = 0.8 met; 12 / 17 = 0.71 > 0.7 not met.
        assert!(find("HTTP/2 TLS CPU/request vs HAProxy").met());
        assert!(!find("HTTP/2 TLS CPU/request vs nginx").met());
        assert!(find("idle plain RSS/conn vs nginx").met());
        // 900 / 1000 = 0.9 > 0.8.
        assert!(!find("CPU per TLS handshake vs the better").met());
        // Not measured: not met.
        assert!(!find("idle TLS RSS/conn vs nginx").met());
        assert!(!find("HTTP/2 TLS p99 vs the better").met());
    }

    #[test]
    fn kernel_counters_from_proc_net_and_status() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Tcp: RtoAlgorithm RtoMin ActiveOpens OutSegs RetransSegs\n\
                    Tcp: 1 200 7 123456 3\n";
        assert_eq!(proc_net_counter(snmp, "Tcp", "OutSegs"), Some(123_456));
        assert_eq!(proc_net_counter(snmp, "Tcp", "InSegs"), None);
        assert_eq!(proc_net_counter(snmp, "Udp", "OutSegs"), None);
        // `TcpExt:` is not `Tcp:`'s table.
        let netstat = "TcpExt: SyncookiesSent TCPPureAcks\nTcpExt: 0 42\n";
        assert_eq!(proc_net_counter(netstat, "TcpExt", "TCPPureAcks"), Some(42));
        assert_eq!(proc_net_counter(netstat, "Tcp", "TCPPureAcks"), None);
        let status = "Name:\tweir\nvoluntary_ctxt_switches:\t17\nnonvoluntary_ctxt_switches:\t4\n";
        assert_eq!(voluntary_switches(status), 17);
        assert_eq!(voluntary_switches(""), 0);
        assert_eq!(status_number("VmRSS:\t  1234 kB\n", "VmRSS"), Some(1234));
        // `nonvoluntary_ctxt_switches` is not `voluntary_ctxt_switches`, nor `VmRSSx` `VmRSS`.
        assert_eq!(
            status_number(
                "nonvoluntary_ctxt_switches:\t4\n",
                "voluntary_ctxt_switches"
            ),
            None
        );
        assert_eq!(status_number("VmRSSx:\t9 kB\n", "VmRSS"), None);

        let before = KernelWork {
            segments: 1_000,
            pure_acks: 10,
            wakeups: 5,
        };
        let after = KernelWork {
            segments: 5_000,
            pure_acks: 12,
            wakeups: 6,
        };
        let mut e = BTreeMap::new();
        after.push_since(&before, &mut e, ["s", "a", "w"], 1_000);
        assert_eq!(e["s"], [4.0]);
        assert_eq!(e["a"], [2.0]);
        assert_eq!(e["w"], [1.0]);
        // No request: nothing to divide by, nothing pushed.
        let mut e = BTreeMap::new();
        after.push_since(&before, &mut e, ["s", "a", "w"], 0);
        assert!(e.is_empty());
    }

    /// This machine's own counters read (the bench would print zeros without them).
    #[test]
    fn this_machine_counts_tcp_segments_and_pure_acks() {
        let read = |f: &str| std::fs::read_to_string(f).unwrap();
        assert!(proc_net_counter(&read("/proc/net/snmp"), "Tcp", "OutSegs").is_some());
        assert!(proc_net_counter(&read("/proc/net/netstat"), "TcpExt", "TCPPureAcks").is_some());
        assert!(read("/proc/self/status").contains("voluntary_ctxt_switches:"));
    }

    #[test]
    fn compare_with_a_previous_run() {
        let old = json!({"median": {"weir": {"h1_cpu_us_per_req": 24.0, "h1_rps": 20_000.0},
                                    "nginx": {"h1_cpu_us_per_req": 20.0}}});
        let new = med(&[
            ("weir", "h1_cpu_us_per_req", 18.0),
            ("weir", "idle_tls_conn_bytes", 900.0),
            ("nginx", "h1_cpu_us_per_req", 21.0),
            ("weir-hyper", "h1_cpu_us_per_req", 19.0),
        ]);
        let c = changes(&old, &new, &METRICS);
        assert_eq!(
            c,
            [
                ("h1_cpu_us_per_req".into(), "nginx".into(), 20.0, 21.0),
                ("h1_cpu_us_per_req".into(), "weir".into(), 24.0, 18.0),
            ]
        );
        assert!((change_pct(24.0, 18.0) + 25.0).abs() < 1e-9);
    }
}
