//! HTTP/2 fan-out against a worker's descriptor budget. `weir run` sizes `RLIMIT_NOFILE` for
//! `max_connections_per_worker` client connections and as many target connections, but an
//! HTTP/2 connection opens one target connection per stream in flight: a few clients whose
//! streams are held (a window of 0 on large responses) took a worker's every descriptor, so
//! target connects failed with EMFILE (502) and new clients were shed. Now the worker counts
//! its target connections against what its limit leaves: streams past the fan-out's share are
//! refused with RST_STREAM(REFUSED_STREAM) (weir's HTTP/2 engine), counted and logged, and new
//! clients are still served. Real binary under `prlimit`, nginx as the target, curl and a raw
//! HTTP/2 client, in a network namespace. Needs root.
//!
//! `WEIR_TEST_BIN=/path/to/weir` runs it against another build (the one before the fix).

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use common::*;
use weir_tests::lab::{Lab, Ns, Proc, wait_until};

const PORT: u16 = 8080;
const TARGET: u16 = 18081;
const METRICS: &str = "127.0.0.1:19464";
/// (256 − 64 slack − 1 listener) / 2 = 95 client connections; the 96 descriptors left are the
/// target connections' (72 of them for streams beside others of their connection).
const NOFILE: u64 = 256;
const FAN_OUT: u64 = 72;
const CONNS: usize = 4;
const STREAMS: usize = 100;

/// nginx in `ns` on 127.0.0.1:TARGET: `/big` (8 MB, held back by the clients' window of 0)
/// and `/small`.
fn nginx(ns: &Ns, dir: &Path) -> Result<Proc> {
    std::fs::create_dir_all(dir.join("www"))?;
    std::fs::write(dir.join("www/big"), vec![b'x'; 8 << 20])?;
    std::fs::write(dir.join("www/small"), "small\n")?;
    let d = dir.to_str().context("utf-8")?;
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log stderr warn;\n\
         user root;\nevents {{ worker_connections 4096; }}\nhttp {{\n access_log off;\n\
         client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
         server {{ listen 127.0.0.1:{TARGET} backlog=1024; root {d}/www; }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let p = ns.spawn(&[
        "nginx",
        "-c",
        path.to_str().context("utf-8")?,
        "-e",
        "stderr",
    ])?;
    ns.wait_tcp_listen(TARGET, Duration::from_secs(10))?;
    Ok(p)
}

/// `weir run` in `ns` under a hard limit of NOFILE descriptors it may not raise, its stderr in
/// `log`; returned once it listens.
fn weir(ns: &Ns, config: &str, log: &Path) -> Result<Proc> {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{}", ns.netns().context("netns")?))
        .args(["--", "prlimit"])
        .arg(format!("--nofile={NOFILE}:{NOFILE}"))
        .args(["--", "setpriv", "--bounding-set=-sys_resource", "--"])
        .arg(weir_test_bin())
        .args(["run", "--config", config])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?);
    let mut p = ns.spawn_command(c)?;
    wait_until(Duration::from_secs(20), "weir to listen", || {
        if !p.is_running() {
            bail!("weir exited:\n{}", read(log));
        }
        ns.tcp_listening(PORT)
    })?;
    Ok(p)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// What the HTTP/2 clients saw: response heads by status, resets by code.
#[derive(Debug, Default)]
struct Seen {
    ok: usize,
    other_status: usize,
    refused: usize,
    other_reset: usize,
    goaway: usize,
}

impl Seen {
    fn answered(&self) -> usize {
        self.ok + self.other_status + self.refused + self.other_reset
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// One h2c connection (prior knowledge) with a window of 0 opening STREAMS GETs of `/big`, then
/// answering SETTINGS and PINGs (never a WINDOW_UPDATE) until `stop`.
fn hold_streams(c: &mut TcpStream, seen: &Mutex<Seen>, stop: &AtomicBool) -> Result<()> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[0, 4, 0, 0, 0, 0])); // SETTINGS_INITIAL_WINDOW_SIZE = 0
    // :method GET, :scheme http, :authority and :path literal (static names 1 and 4).
    let mut block = vec![0x82, 0x86, 0x01, 1, b'a', 0x04, 4];
    block.extend(b"/big");
    for i in 0..STREAMS as u32 {
        out.extend(frame(1, 0x5, 1 + 2 * i, &block)); // END_STREAM | END_HEADERS
    }
    c.write_all(&out)?;
    c.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    while !stop.load(Relaxed) {
        match c.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return Ok(()),
        }
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let payload: Vec<u8> = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            let mut s = seen.lock().unwrap();
            match kind {
                // :status 200 is static entry 8; anything else (a 502's literal) is not.
                1 if payload.first() == Some(&0x88) => s.ok += 1,
                1 => s.other_status += 1,
                3 if payload == [0, 0, 0, 7] => s.refused += 1,
                3 => s.other_reset += 1,
                4 if flags & 1 == 0 => c.write_all(&frame(4, 1, 0, &[]))?,
                6 if flags & 1 == 0 => c.write_all(&frame(6, 1, 0, &payload))?,
                7 => s.goaway += 1,
                _ => {}
            }
        }
    }
    Ok(())
}

/// One HTTP/1.1 request on a new connection: its status line, or why none came.
fn plain_get(ns: &Ns, path: &str) -> Result<String> {
    let mut c = ns.in_ns(|| TcpStream::connect(("127.0.0.1", PORT)))??;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut head = [0u8; 64];
    match c.read(&mut head) {
        Ok(n) => Ok(String::from_utf8_lossy(&head[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string()),
        Err(e) => Ok(format!("no answer: {e}")),
    }
}

/// `weir_target_connections_refused_at_limit_total` on the metrics page.
fn refused_metric(ns: &Ns) -> Result<u64> {
    let mut c = ns.command("curl");
    c.args([
        "-sS",
        "--max-time",
        "5",
        &format!("http://{METRICS}/metrics"),
    ]);
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(10))?;
    let page = String::from_utf8_lossy(&out.stdout);
    page.lines()
        .find_map(|l| l.strip_prefix("weir_target_connections_refused_at_limit_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .with_context(|| format!("no refused counter on the page:\n{page}"))
}

#[test]
fn http2_streams_past_the_target_connection_budget_are_refused_and_new_clients_served() -> Result<()>
{
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("tconns")?;
    let dir = TempDir(std::env::temp_dir().join(format!("weir-tconns-{}", std::process::id())));
    let _nginx = nginx(&ns, &dir.0)?;
    let access = dir.0.join("access.log");
    let cfg = TempFile::new(
        "tconns.toml",
        &format!(
            "[workers]\ncount = 1\npin_cpus = false\n\n[metrics]\naddress = \"{METRICS}\"\n\n\
             [load_balancer]\naccess_logs = {{ enabled = true, path = \"{}\" }}\n\n\
             [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\n\
             default_action = {{ type = \"forward\", target_group = \"app\" }}\n\n\
             [[target_group]]\nname = \"app\"\nport = {TARGET}\ntarget = [{{ id = \"127.0.0.1\" }}]\n",
            access.display()
        ),
    );
    let log = dir.0.join("weir.log");
    let mut weir = weir(&ns, cfg.path(), &log)?;

    // CONNS connections × STREAMS streams, each holding its target connection.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..CONNS {
        let mut c = ns.in_ns(|| TcpStream::connect(("127.0.0.1", PORT)))??;
        let (seen, stop) = (seen.clone(), stop.clone());
        clients.push(std::thread::spawn(move || {
            hold_streams(&mut c, &seen, &stop)
        }));
    }
    // Stops the clients however the test ends.
    struct Stop(Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Relaxed);
        }
    }
    let stopping = Stop(stop.clone());
    let all = CONNS * STREAMS;
    let waited = wait_until(Duration::from_secs(20), "every stream answered", || {
        Ok(seen.lock().unwrap().answered() >= all)
    });
    let s = std::mem::take(&mut *seen.lock().unwrap());
    eprintln!("{all} streams: {s:?}");

    // Meanwhile, new clients: HTTP/1.1 and HTTP/2 (curl, prior knowledge).
    let plain = plain_get(&ns, "/small")?;
    let mut c = ns.command("curl");
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "--max-time",
        "5",
        "-w",
        "%{http_code}",
    ])
    .args([
        "--http2-prior-knowledge",
        &format!("http://127.0.0.1:{PORT}/small"),
    ]);
    let h2 =
        String::from_utf8_lossy(&weir_tests::lab::output(&mut c, Duration::from_secs(10))?.stdout)
            .to_string();
    let worker = *worker_pids(cfg.path()).get(&0).context("worker 0")?;
    let fds = std::fs::read_dir(format!("/proc/{worker}/fd"))?.count();
    eprintln!("new clients: HTTP/1.1 {plain:?}, HTTP/2 {h2}; worker descriptors {fds}/{NOFILE}");

    waited.with_context(|| format!("{s:?}\n{}", read(&log)))?;
    assert_eq!(s.other_status, 0, "no 502 (EMFILE):\n{s:?}\n{}", read(&log));
    assert_eq!(s.other_reset, 0, "{s:?}");
    assert!(
        s.refused > 0 && s.ok as u64 <= FAN_OUT + CONNS as u64,
        "streams past the fan-out's share refused: {s:?}"
    );
    assert!(
        plain.starts_with("HTTP/1.1 200"),
        "a new HTTP/1.1 client: {plain}\n{}",
        read(&log)
    );
    assert_eq!(h2, "200", "a new HTTP/2 client");
    assert!((fds as u64) < NOFILE - 32, "{fds} descriptors open");

    // Counted, warned about (rate-limited), and logged with its reason.
    wait_until(Duration::from_secs(5), "the counter", || {
        Ok(refused_metric(&ns)? == s.refused as u64)
    })
    .with_context(|| format!("{s:?}: {:?}", refused_metric(&ns)))?;
    let text = read(&log);
    assert!(text.contains("target connection limit reached"), "{text}");
    assert!(!text.contains("Too many open files"), "{text}");
    wait_until(Duration::from_secs(5), "the access-log lines", || {
        Ok(read(&access)
            .lines()
            .filter(|l| l.contains("TargetConnectionLimit"))
            .count()
            == s.refused)
    })
    .with_context(|| read(&access))?;
    let line = read(&access)
        .lines()
        .find(|l| l.contains("TargetConnectionLimit"))
        .map(str::to_string)
        .unwrap_or_default();
    let f = access_log_fields(&line).context("a line")?;
    assert_eq!(f[8], "503", "the line's elb_status_code: {line}");

    drop(stopping);
    for c in clients {
        c.join().expect("client thread")?;
    }
    assert!(interrupt(&mut weir)?);
    Ok(())
}
