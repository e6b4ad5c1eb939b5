//! Shared by the reload and shutdown tests: a real HTTP/1.1 target (threads, one per
//! connection) that can be slow on demand, a raw HTTP/1.1 client that classifies what happened
//! to a request, and `weir run` started from a config file with its log captured.

#![allow(dead_code)]

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use weir_tests::lab::{Ns, Proc, wait_until};

use super::common::{TempFile, weir_bin};

/// `weir` in `ns` (see `common::weir_command`). `WEIR_BIN_UNDER_TEST` names another build to
/// run instead — how these tests were shown to fail on the code before issue #13.
pub fn weir_command(ns: &Ns) -> std::process::Command {
    let bin = std::env::var_os("WEIR_BIN_UNDER_TEST")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(weir_bin);
    let mut c = std::process::Command::new("nsenter");
    if let Some(netns) = ns.netns() {
        c.arg(format!("--net=/run/netns/{netns}"));
    }
    c.arg("--").arg(bin);
    c
}

/// A target: answers `GET /slow` after `slow`, anything else at once, with a body naming it.
pub struct Backend {
    pub addr: SocketAddr,
    pub seen: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

impl Backend {
    /// Binds `addr` inside `ns` and serves until dropped (every thread is bounded by timeouts).
    pub fn start(ns: &Ns, addr: &str, name: &str, slow: Duration) -> Result<Backend> {
        let l = ns.in_ns(|| TcpListener::bind(addr))??;
        l.set_nonblocking(true)?;
        let addr = l.local_addr()?;
        let seen = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2, name) = (seen.clone(), stop.clone(), name.to_string());
        std::thread::spawn(move || {
            while !st2.load(Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        let (seen, name) = (s2.clone(), name.clone());
                        std::thread::spawn(move || serve_target(c, &name, slow, &seen));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Ok(Backend { addr, seen, stop })
    }
}

fn serve_target(mut c: TcpStream, name: &str, slow: Duration, seen: &AtomicU64) {
    let _ = c.set_nonblocking(false);
    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        seen.fetch_add(1, Relaxed);
        if head.starts_with("GET /slow") {
            std::thread::sleep(slow);
        }
        let body = format!("target {name}\n");
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{body}",
            body.len()
        );
        if c.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// What happened to one request on a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A complete response: status and body.
    Answered(u16, String),
    /// connect(2) was refused (RST to the SYN).
    Refused,
    /// Connected, then the connection was reset or closed before a whole response.
    LostAfterConnect(String),
    /// No answer to the SYN or to the request in time.
    Hung(String),
}

/// Reads one HTTP/1.1 response (content-length framed); `None` on EOF/reset/timeout with why.
pub fn read_response(s: &mut TcpStream) -> Result<(u16, String, String), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                buf.drain(..end + 4 + len);
                return Ok((status, head, body));
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(format!("EOF after {} bytes", buf.len())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!("timeout after {} bytes", buf.len()));
            }
            Err(e) => return Err(format!("{e} after {} bytes", buf.len())),
        }
    }
}

/// One request on a new connection made inside `ns`, every step bounded by `limit`.
pub fn request_new_conn(ns: &Ns, to: SocketAddr, path: &str, limit: Duration) -> Outcome {
    let c = ns.in_ns(|| TcpStream::connect_timeout(&to, limit));
    let mut s = match c {
        Ok(Ok(s)) => s,
        Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => return Outcome::Refused,
        Ok(Err(e)) if e.kind() == ErrorKind::TimedOut => return Outcome::Hung(e.to_string()),
        Ok(Err(e)) => return Outcome::LostAfterConnect(format!("connect: {e}")),
        Err(e) => return Outcome::Hung(format!("netns: {e}")),
    };
    let _ = s.set_read_timeout(Some(limit));
    let req = format!("GET {path} HTTP/1.1\r\nhost: weir.test\r\n\r\n");
    if let Err(e) = s.write_all(req.as_bytes()) {
        return Outcome::LostAfterConnect(format!("write: {e}"));
    }
    match read_response(&mut s) {
        Ok((status, _, body)) => Outcome::Answered(status, body),
        Err(why) if why.starts_with("timeout") => Outcome::Hung(why),
        Err(why) => Outcome::LostAfterConnect(why),
    }
}

/// `weir run --config cfg` in `ns`, its stderr in a file; returned once `workers` workers
/// reported ready.
pub struct Weir {
    pub proc: Proc,
    pub log: TempFile,
}

impl Weir {
    pub fn start(ns: &Ns, cfg: &TempFile, workers: usize) -> Result<Weir> {
        let log = TempFile::new("weir.stderr", "");
        let mut c = weir_command(ns);
        c.args(["run", "--config", cfg.path()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log.0)?);
        let mut proc = ns.spawn_command(c)?;
        let ready = wait_until(Duration::from_secs(30), "every worker ready", || {
            if !proc.is_running() {
                bail!("weir exited");
            }
            Ok(std::fs::read_to_string(&log.0)?
                .matches("worker ready")
                .count()
                >= workers)
        });
        let w = Weir { proc, log };
        if ready.is_err() {
            eprintln!("{}", w.log_text());
        }
        ready?;
        Ok(w)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log.0).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child we own.
        unsafe { libc::kill(self.proc.pid() as i32, sig) };
    }

    /// Waits up to `limit` for the exit; the time it took.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<Duration> {
        let t = Instant::now();
        match self.proc.wait_timeout(limit)? {
            Some(_) => Ok(t.elapsed()),
            None => bail!("weir still running {limit:?} after the signal"),
        }
    }
}
