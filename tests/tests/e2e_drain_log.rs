//! Requests cut at the drain deadline keep their access-log line: `weir run` with a 1 s
//! `drain_timeout_seconds`, a target that never answers one path and stalls mid-body on
//! another, SIGTERM with those requests in flight (HTTP/1.1 and an HTTP/2 stream, each HTTP/2
//! engine) and an idle keep-alive connection open. Every request weir received has exactly one
//! line; the cut ones say `CutAtDrainDeadline`, with `-` for the status weir never sent and the
//! target's status for the response it was relaying; the idle connection adds none. Before:
//! the HTTP/1.1 requests had no line at all (their futures were dropped with the worker's
//! runtime after the log's last flush), the HTTP/2 stream was logged as a 460 the client never
//! caused. Real `weir`, real sockets, in a namespace. Needs root.
//!
//! `WEIR_BIN_UNDER_TEST=/path/to/weir` runs another build (how the test was shown to fail on
//! the code before).

mod common;
mod e2e_reload_support;

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::{Result, bail};
use common::{TempFile, access_log_fields};
use e2e_reload_support::{Weir, read_response};
use weir_tests::lab::{Lab, Ns, wait_until};

const PORT: u16 = 8080;
const CUT: &str = "CutAtDrainDeadline";

/// A target that answers `/fast` at once, never answers `/never*`, and sends the head and 10
/// of 1,000 body bytes of `/stall` and then nothing. It notes every path it got.
struct Target {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

impl Target {
    fn start(ns: &Ns) -> Result<Target> {
        let l = ns.in_ns(|| TcpListener::bind("127.0.0.1:0"))??;
        l.set_nonblocking(true)?;
        let addr = l.local_addr()?;
        let (seen, stop) = (Arc::default(), Arc::new(AtomicBool::new(false)));
        let (s2, st2): (Arc<Mutex<Vec<String>>>, _) = (Arc::clone(&seen), stop.clone());
        std::thread::spawn(move || {
            while !st2.load(Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        let (seen, stop) = (s2.clone(), st2.clone());
                        std::thread::spawn(move || serve(c, &seen, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Target { addr, seen, stop })
    }

    fn saw(&self, path: &str) -> bool {
        self.seen.lock().unwrap().iter().any(|p| p == path)
    }
}

fn serve(mut c: TcpStream, seen: &Mutex<Vec<String>>, stop: &AtomicBool) {
    let _ = c.set_nonblocking(false);
    let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !stop.load(Relaxed) {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match c.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        seen.lock().unwrap().push(path.clone());
        let answer: &[u8] = if path == "/fast" {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        } else if path == "/stall" {
            b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789"
        } else {
            b""
        };
        if c.write_all(answer).is_err() {
            return;
        }
        if path != "/fast" {
            // Holds the connection until weir drops it or the test ends.
            while !stop.load(Relaxed) && !matches!(c.read(&mut chunk), Ok(0)) {}
            return;
        }
    }
}

fn config(target: SocketAddr, log: &std::path::Path, engine: &str) -> String {
    format!(
        "[workers]\ncount = 1\n\n[load_balancer]\ndrain_timeout_seconds = 1\n\
         http2_engine = \"{engine}\"\n\
         access_logs = {{ enabled = true, path = \"{}\" }}\n\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\n\
         default_action = {{ type = \"forward\", target_group = \"app\" }}\n\n\
         [[target_group]]\nname = \"app\"\nport = {}\ntarget = [{{ id = \"{}\" }}]\n",
        log.display(),
        target.port(),
        target.ip()
    )
}

/// A request on a new connection, written and left in flight.
fn send(ns: &Ns, path: &str) -> Result<TcpStream> {
    let to: SocketAddr = ([127, 0, 0, 1], PORT).into();
    let mut s = ns.in_ns(|| TcpStream::connect(to))??;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: weir.test\r\n\r\n").as_bytes())?;
    Ok(s)
}

/// Runs the scenario against `engine`'s HTTP/2 and returns the access log's lines, split into
/// fields, by request path.
fn cut_at_drain(engine: &str) -> Result<BTreeMap<String, Vec<Vec<String>>>> {
    let lab = Lab::new()?;
    let ns = lab.add_ns(&format!("dlog{}", &engine[..1]))?;
    ns.ip(&["link", "set", "lo", "up"])?;
    let target = Target::start(&ns)?;
    let log = std::env::temp_dir().join(format!("weir-drain-{engine}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let cfg = TempFile::new("drain-log.toml", &config(target.addr, &log, engine));
    let mut weir = Weir::start(&ns, &cfg, 1)?;

    // A keep-alive connection: one request answered, then idle until the drain closes it.
    let mut idle = send(&ns, "/fast")?;
    let (status, _, body) = read_response(&mut idle).map_err(anyhow::Error::msg)?;
    assert_eq!((status, body.as_str()), (200, "ok"));
    // In flight: no response head yet; a body being relayed; an HTTP/2 stream.
    let _never = send(&ns, "/never")?;
    let mut stall = send(&ns, "/stall")?;
    let mut got = Vec::new();
    while !got.ends_with(b"0123456789") {
        let mut b = [0u8; 512];
        match stall.read(&mut b)? {
            0 => bail!("/stall closed before its first body bytes"),
            n => got.extend_from_slice(&b[..n]),
        }
    }
    let mut h2 = ns.command("curl");
    h2.args([
        "-s",
        "-o",
        "/dev/null",
        "-m",
        "20",
        "--http2-prior-knowledge",
    ])
    .arg(format!("http://127.0.0.1:{PORT}/never-h2"))
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let mut curl = ns.spawn_command(h2)?;
    wait_until(
        Duration::from_secs(10),
        "every request at the target",
        || {
            Ok(["/never", "/stall", "/never-h2"]
                .iter()
                .all(|p| target.saw(p)))
        },
    )?;

    weir.signal(libc::SIGTERM);
    let took = weir.wait_exit(Duration::from_secs(15))?;
    eprintln!("{engine}: weir exited {took:?} after SIGTERM");
    let _ = curl.wait_timeout(Duration::from_secs(5));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    eprintln!("{engine}: access log:\n{text}");
    let mut by_path: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for line in text.lines() {
        let Some(f) = access_log_fields(line).filter(|f| f.len() >= 29) else {
            bail!("not an access-log line: {line:?}\n{}", weir.log_text());
        };
        // `METHOD scheme://host:port/path VERSION`.
        let path = f[12]
            .split_whitespace()
            .nth(1)
            .and_then(|u| u.split_once("://"))
            .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
            .unwrap_or("?")
            .to_string();
        by_path.entry(path).or_default().push(f);
    }
    Ok(by_path)
}

/// The checks on one run's lines (fields by ALB's order: 4 target, 6/7 target and response
/// processing times, 8 elb status, 9 target status, 24 error_reason).
fn check(engine: &str, by_path: &BTreeMap<String, Vec<Vec<String>>>) {
    let paths: Vec<(&str, usize)> = by_path.iter().map(|(p, l)| (p.as_str(), l.len())).collect();
    assert_eq!(
        paths,
        [("/fast", 1), ("/never", 1), ("/never-h2", 1), ("/stall", 1)],
        "{engine}: one line per request weir received, none for the idle connection"
    );
    let line = |p: &str| by_path[p][0].clone();
    let fast = line("/fast");
    assert_eq!((fast[8].as_str(), fast[24].as_str()), ("200", "-"));

    let never = line("/never");
    assert_eq!(never[0], "http");
    assert_eq!(never[24], CUT, "{engine}: /never's error_reason");
    assert_eq!(never[8], "-", "no response was begun: {never:?}");
    assert_eq!(never[9], "-", "the target never answered: {never:?}");
    assert_ne!(never[4], "-", "the target was picked: {never:?}");
    assert_eq!((never[6].as_str(), never[7].as_str()), ("-1", "-1"));
    assert_ne!(never[10], "0", "the request head's bytes were received");

    let stall = line("/stall");
    assert_eq!(stall[24], CUT, "{engine}: /stall's error_reason");
    assert_eq!(
        (stall[8].as_str(), stall[9].as_str()),
        ("200", "200"),
        "the target's response was being relayed: {stall:?}"
    );
    assert_ne!(stall[6], "-1", "the target answered: {stall:?}");
    let relayed: f64 = stall[7].parse().unwrap_or(-1.0);
    assert!(
        relayed >= 1.0,
        "relayed until the cut, past the 1 s drain: {stall:?}"
    );

    let h2 = line("/never-h2");
    assert_eq!(h2[0], "h2");
    assert_eq!(
        h2[24], CUT,
        "{engine}: the HTTP/2 stream's error_reason: {h2:?}"
    );
    assert_eq!((h2[8].as_str(), h2[9].as_str()), ("-", "-"), "{h2:?}");
}

#[test]
fn requests_cut_at_the_drain_deadline_are_logged_weirs_http2_engine() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lines = cut_at_drain("weir")?;
    check("weir", &lines);
    Ok(())
}

#[test]
fn requests_cut_at_the_drain_deadline_are_logged_hypers_http2_engine() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lines = cut_at_drain("hyper")?;
    check("hyper", &lines);
    Ok(())
}
