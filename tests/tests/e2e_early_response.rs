//! A target that answers before it has taken the request body (RFC 9112 §9.5), with the real
//! `weir run` in a network namespace: a raw target reads the head, answers `413 … Connection:
//! close` and never reads the body; a client uploading a large body (content-length or
//! chunked) gets the 413 at once, not after the idle timeout (60 s here) as when weir relayed
//! the whole body before reading the response, and the access log counts the body bytes weir
//! read. A target that closes (resets) after its answer is relayed the same way; an interim
//! `100 Continue` during the body does not stop it. Needs root.
//!
//! `WEIR_TEST_BIN=/path/to/weir` runs another build (e.g. the one before a fix).

mod common;

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use common::*;
use weir_tests::lab::{Lab, Ns, Proc, wait_until};

const PORT: u16 = 8080;
/// The bound on the answer's arrival: the old code took the idle timeout (60 s).
const AT_ONCE: Duration = Duration::from_secs(2);
/// Each write of the client's body.
const PIECE: usize = 64 * 1024;

/// The raw target: per connection, the head read, then by the request's path: `/hold` answers
/// 413 and keeps the connection open without reading; `/close` answers 413 and closes (a
/// reset: the body is unread); `/continue` sends `100 Continue`, reads the whole body (a
/// content-length or chunked one) and answers 200 with the count of bytes it read after the
/// head.
fn target(ns: &Ns) -> Result<u16> {
    let l = ns.in_ns(|| TcpListener::bind("127.0.0.1:0"))??;
    let port = l.local_addr()?.port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || serve(c));
        }
    });
    Ok(port)
}

fn serve(mut c: TcpStream) {
    let mut buf = Vec::new();
    let mut b = [0u8; 16 * 1024];
    let end = loop {
        match c.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    const TOO_BIG: &[u8] =
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n";
    if head.starts_with("post /hold") {
        let _ = c.write_all(TOO_BIG);
        std::thread::sleep(Duration::from_secs(90));
    } else if head.starts_with("post /close") {
        let _ = c.write_all(TOO_BIG);
    } else if head.starts_with("post /continue") {
        let _ = c.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        let mut body = buf.split_off(end);
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        while !length.map_or(body.ends_with(b"\r\n0\r\n\r\n"), |n| body.len() >= n) {
            match c.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => body.extend_from_slice(&b[..n]),
            }
        }
        let n = body.len().to_string();
        let _ = write!(
            c,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{n}",
            n.len()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `weir run` ([`weir_test_bin`]) with one worker, a 60 s idle timeout and its access log in
/// `log`, once it listens.
fn start(ns: &Ns, target: u16, log: &str) -> Result<(Proc, TempFile)> {
    let cfg = TempFile::new(
        "early.toml",
        &format!(
            "[load_balancer]\nidle_timeout.timeout_seconds = 60\n\
             access_logs.enabled = true\naccess_logs.path = \"{log}\"\n\n\
             [workers]\ncount = 1\n\n\
             [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\n\
             default_action = {{ type = \"forward\", target_group = \"t\" }}\n\n\
             [[target_group]]\nname = \"t\"\ntarget = [{{ id = \"127.0.0.1\", port = {target} }}]\n\
             health_check.enabled = false\n"
        ),
    );
    let mut c = weir_test_command(ns);
    c.args(["run", "--config", cfg.path()])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut proc = ns.spawn_command(c)?;
    wait_until(Duration::from_secs(30), "weir to listen", || {
        if !proc.is_running() {
            bail!("weir exited");
        }
        ns.tcp_listening(PORT)
    })?;
    Ok((proc, cfg))
}

/// A body on the client's side: its framing and its data bytes, a multiple of [`PIECE`].
#[derive(Clone, Copy, Debug)]
enum Body {
    Length(usize),
    /// `PIECE` bytes a chunk.
    Chunked(usize),
}

impl Body {
    fn field(self) -> String {
        match self {
            Body::Length(n) => format!("Content-Length: {n}"),
            Body::Chunked(_) => "Transfer-Encoding: chunked".into(),
        }
    }

    /// One write's bytes.
    fn piece(self) -> Vec<u8> {
        let data = vec![b'B'; PIECE];
        match self {
            Body::Length(_) => data,
            Body::Chunked(_) => [format!("{PIECE:x}\r\n").as_bytes(), &data, b"\r\n"].concat(),
        }
    }

    fn pieces(self) -> usize {
        match self {
            Body::Length(n) | Body::Chunked(n) => n / PIECE,
        }
    }
}

/// What the client saw.
struct Seen {
    /// The response head and what came with it.
    response: String,
    /// From the request's head to the response head's end.
    after: Duration,
    /// Bytes of the request written (head included) when it was read.
    head_len: usize,
}

/// Sends `POST path` with `body` (the head and the first piece in one write, then the rest from
/// a thread of its own while the response is read) and reads the response head (≤ 10 s).
fn upload(ns: &Ns, path: &str, body: Body) -> Result<Seen> {
    let mut s = ns.in_ns(|| TcpStream::connect(("127.0.0.1", PORT)))??;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: early\r\n{}\r\n\r\n",
        body.field()
    );
    let piece = body.piece();
    let t0 = Instant::now();
    s.write_all(&[head.as_bytes(), &piece].concat())?;
    let stop = Arc::new(AtomicBool::new(false));
    let pump = {
        let (mut w, stop) = (s.try_clone()?, stop.clone());
        std::thread::spawn(move || {
            for _ in 1..body.pieces() {
                if stop.load(Ordering::Relaxed) || w.write_all(&piece).is_err() {
                    return;
                }
            }
            if let Body::Chunked(_) = body {
                let _ = w.write_all(b"0\r\n\r\n");
            }
        })
    };
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break Some(i + 4);
        }
        match s.read(&mut b) {
            Ok(0) | Err(_) => break None,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    };
    let after = t0.elapsed();
    // The rest of a small body.
    if head_end.is_some() {
        s.set_read_timeout(Some(Duration::from_millis(300)))?;
        if let Ok(n) = s.read(&mut b) {
            got.extend_from_slice(&b[..n]);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = s.shutdown(Shutdown::Both);
    let _ = pump.join();
    Ok(Seen {
        response: String::from_utf8_lossy(&got).into_owned(),
        after,
        head_len: head.len(),
    })
}

/// The access log's line for `path` (≤ 10 s), split into its fields.
fn logged(log: &str, path: &str) -> Result<Vec<String>> {
    let needle = format!("{path} HTTP/1.1\"");
    let mut line = None;
    wait_until(
        Duration::from_secs(10),
        &format!("{path}'s access-log line"),
        || {
            line = std::fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .find(|l| l.contains(&needle))
                .map(str::to_string);
            Ok(line.is_some())
        },
    )?;
    let line = line.context("logged")?;
    Ok(line.split_whitespace().map(str::to_string).collect())
}

#[test]
fn an_early_answer_ends_the_upload_at_once() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("early")?;
    let target = target(&ns)?;
    let log = TempFile::new("early-access.log", "");
    let (_weir, _cfg) = start(&ns, target, log.path())?;

    // Never sent whole: weir's old code relayed it all before reading the response.
    let large = 1 << 30;
    for (path, body) in [
        ("/hold/length", Body::Length(large)),
        ("/hold/chunked", Body::Chunked(large)),
        ("/close/length", Body::Length(large)),
        ("/close/chunked", Body::Chunked(large)),
    ] {
        let seen = upload(&ns, path, body)?;
        let what = format!("{path} after {:.2?}", seen.after);
        eprintln!("{what}: {:?}", seen.response.lines().next());
        assert!(
            seen.response.starts_with("HTTP/1.1 413"),
            "{what}: the target's 413 relayed: {:?}",
            seen.response
        );
        assert!(seen.after < AT_ONCE, "{what}: the 413 came late");
        let lower = seen.response.to_ascii_lowercase();
        assert!(
            lower.contains("connection: close"),
            "{what}: the client connection closes (its body was not read): {lower:?}"
        );
        assert!(lower.ends_with("too big\n"), "{what}: the body: {lower:?}");

        // ALB's fields: 9 elb_status_code, 10 target_status_code, 11 received_bytes.
        let f = logged(log.path(), path)?;
        assert_eq!((&*f[8], &*f[9]), ("413", "413"), "{what}: {f:?}");
        let received: usize = f[10].parse().context("received_bytes")?;
        assert!(
            received > seen.head_len,
            "{what}: received_bytes {received} counts the body read, not the head alone ({})",
            seen.head_len
        );
    }

    // A `100 Continue` during the body does not stop it: the target answers once it has it all.
    for (path, body) in [
        ("/continue/length", Body::Length(8 << 20)),
        ("/continue/chunked", Body::Chunked(8 << 20)),
    ] {
        let seen = upload(&ns, path, body)?;
        eprintln!(
            "{path} after {:.2?}: {:?}",
            seen.after,
            seen.response.lines().next()
        );
        assert!(
            seen.response.starts_with("HTTP/1.1 200"),
            "{path}: the whole body reached the target after its 100: {:?}",
            seen.response
        );
        if let Body::Length(n) = body {
            assert!(
                seen.response.ends_with(&format!("\r\n\r\n{n}")),
                "{path}: {:?}",
                seen.response
            );
        }
        let f = logged(log.path(), path)?;
        let received: usize = f[10].parse().context("received_bytes")?;
        assert!(received > 8 << 20, "{path}: received_bytes {received}");
    }
    Ok(())
}
