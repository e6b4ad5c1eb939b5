//! A target response cut short never reaches an HTTP/1.1 client as a whole one, and the access
//! log says what happened: against a real `weir run` (one worker) and a raw Python target in a
//! lab namespace, raw clients. Needs root.
//!
//! - a body without a length (the target's close ends it) goes to an HTTP/1.1 client chunked:
//!   whole, it ends with the last chunk and the connection carries the next request; cut (the
//!   target stalls past the idle timeout, or resets), it lacks the last chunk and the client
//!   connection is reset. An HTTP/1.0 client reads it until the close: a cut is a reset.
//! - a `Content-Length` or chunked body cut by the target's close: the client connection is
//!   reset, not closed.
//! - the access log: `sent_bytes` counts the body bytes the client was sent, the cut's
//!   `error_reason` is there (`TargetResponseError`, `TargetResponseTimeout`), and a request no
//!   target answered (504 at the idle timeout, 502 refused) logs -1 for its three times (ALB).
//!
//! On the code before this test (`WEIR_TEST_BIN=/path/to/weir` runs another build) the cut
//! close-delimited body came close-delimited with a clean FIN, the cut `Content-Length` body
//! ended in a FIN, and the log said `sent_bytes` 41 (the head), `error_reason` `-`, times
//! `0.000 -1 1.0xx` for the 504.

mod common;

use std::{
    io::{ErrorKind, Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use common::{TempDir, TempFile, access_log_fields, weir_test_command};
use weir_tests::lab::{Lab, Ns, Proc, wait_until};

const PORT: u16 = 8080;
const TARGET: u16 = 9501;
/// Nothing listens here: connections are refused.
const DEAD: u16 = 9502;

/// The target: one response per path, each the way it ends.
const TARGET_PY: &str = r#"
import socket, struct, sys, threading, time
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
def reset(c):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
def serve(c):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(4096)
        if not d:
            return c.close()
        buf += d
    path = buf.split(b" ", 2)[1]
    if path == b"/whole":
        c.sendall(HEAD + b"WHOLE-BODY")
        return c.close()
    if path == b"/stall":
        c.sendall(HEAD + b"PARTIAL-BODY")
        time.sleep(30)
    elif path == b"/rst":
        c.sendall(HEAD + b"PARTIAL-BODY")
        time.sleep(0.3)
        return reset(c)
    elif path == b"/cl-cut":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
        time.sleep(0.3)
    elif path == b"/chunk-cut":
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        time.sleep(0.3)
    elif path == b"/silent":
        time.sleep(30)
    elif path == b"/ok":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// The target, and `weir run` (one worker, idle timeout 1 s, access log to a file) on it;
/// `/dead/*` goes to a port nobody listens on.
struct Setup {
    ns: Ns,
    log: PathBuf,
    _weir: Proc,
    _target: Proc,
    _files: (TempFile, TempFile, TempDir),
    _lab: Lab,
}

fn start(name: &str) -> Result<Setup> {
    let lab = Lab::new()?;
    let ns = lab.add_ns(name)?;
    let script = TempFile::new("cut-target.py", TARGET_PY);
    let target = ns.spawn(&["python3", script.path(), &TARGET.to_string()])?;
    ns.wait_tcp_listen(TARGET, Duration::from_secs(10))?;
    let dir = TempDir(std::env::temp_dir().join(format!("weir-cut-{name}-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let log = dir.0.join("access.log");
    let cfg = TempFile::new(
        "cut.toml",
        &format!(
            "[workers]\ncount = 1\n\n[load_balancer]\nidle_timeout.timeout_seconds = 1\n\
             access_logs = {{ enabled = true, path = \"{}\" }}\n\n\
             [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\n\
             default_action = {{ type = \"forward\", target_group = \"t\" }}\n\
             [[listener.rule]]\npriority = 1\n\
             condition = [{{ field = \"path-pattern\", values = [\"/dead/*\"] }}]\n\
             action = {{ type = \"forward\", target_group = \"dead\" }}\n\n\
             [[target_group]]\nname = \"t\"\ntarget = [{{ id = \"127.0.0.1\", port = {TARGET} }}]\n\
             health_check.enabled = false\n\n\
             [[target_group]]\nname = \"dead\"\ntarget = [{{ id = \"127.0.0.1\", port = {DEAD} }}]\n\
             health_check.enabled = false\n",
            log.display()
        ),
    );
    let mut c = weir_test_command(&ns);
    c.args(["run", "--config", cfg.path()])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut weir = ns.spawn_command(c)?;
    wait_until(Duration::from_secs(30), "weir to serve", || {
        if !weir.is_running() {
            bail!("weir exited");
        }
        ns.tcp_listening(PORT)
    })?;
    Ok(Setup {
        ns,
        log,
        _weir: weir,
        _target: target,
        _files: (script, cfg, dir),
        _lab: lab,
    })
}

/// How the client's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// A clean close (FIN).
    Fin,
    /// A reset.
    Reset,
    /// Still open after a whole response.
    Open,
}

/// What a raw client read: the head's lines, the body's bytes as they came, how it ended.
#[derive(Debug)]
struct Got {
    head: Vec<String>,
    body: Vec<u8>,
    end: End,
    /// The connection, when it is still open.
    conn: Option<TcpStream>,
}

impl Got {
    fn field(&self, name: &str) -> Option<&str> {
        self.head.iter().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn chunked(&self) -> bool {
        self.field("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }
}

/// Sends `GET path` (`version`: `1.1` or `1.0`) on a new connection in `ns`.
fn get(ns: &Ns, path: &str, version: &str) -> Result<Got> {
    let s = ns.in_ns(|| TcpStream::connect(("127.0.0.1", PORT)))??;
    send(s, path, version)
}

/// Sends `GET path` on `s` and reads until the response is whole by its framing (the
/// connection left open), the close, or a reset.
fn send(mut s: TcpStream, path: &str, version: &str) -> Result<Got> {
    write!(s, "GET {path} HTTP/{version}\r\nHost: weir.test\r\n\r\n")?;
    // Well past the idle timeout (1 s): a cut has happened by then.
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if whole(&buf) {
            break End::Open;
        }
        match s.read(&mut chunk) {
            Ok(0) => break End::Fin,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break End::Reset,
            Err(e) => bail!("reading the response to {path}: {e}"),
        }
    };
    let at = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("no whole head in {:?}", String::from_utf8_lossy(&buf)))?;
    let head = String::from_utf8_lossy(&buf[..at])
        .split("\r\n")
        .map(str::to_string)
        .collect();
    Ok(Got {
        head,
        body: buf[at + 4..].to_vec(),
        end,
        conn: (end == End::Open).then_some(s),
    })
}

/// Is `buf` a whole response by its framing: a `Content-Length` body of that length, or a
/// chunked one with its last chunk? (A close-delimited one is whole only at the close.)
fn whole(buf: &[u8]) -> bool {
    let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..at]).to_ascii_lowercase();
    let body = &buf[at + 4..];
    if head.contains("\r\ntransfer-encoding: chunked") {
        return body.ends_with(b"0\r\n\r\n");
    }
    head.split("\r\n")
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .is_some_and(|n| body.len() >= n)
}

/// The access-log line of the request for `path`, split into fields (waits ≤ 5 s for it).
fn log_line(log: &std::path::Path, path: &str) -> Result<Vec<String>> {
    let needle = format!(":{PORT}{path} HTTP");
    let mut found = None;
    wait_until(
        Duration::from_secs(5),
        &format!("the log line of {path}"),
        || {
            found = std::fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .find(|l| l.contains(&needle))
                .map(str::to_string);
            Ok(found.is_some())
        },
    )?;
    let line = found.unwrap_or_default();
    access_log_fields(&line).with_context(|| format!("unparsable line {line}"))
}

// The access log's fields by index (ALB's order, `docs/l7.md`, "Access log").
const REQUEST_TIME: usize = 5;
const TARGET_TIME: usize = 6;
const RESPONSE_TIME: usize = 7;
const ELB_STATUS: usize = 8;
const TARGET_STATUS: usize = 9;
const SENT_BYTES: usize = 11;
const ERROR_REASON: usize = 24;

#[test]
fn a_body_the_targets_close_ends_goes_to_http11_chunked_and_a_cut_never_looks_whole() -> Result<()>
{
    if !Lab::root_required() {
        return Ok(());
    }
    let s = start("cutcd")?;

    // Cut by a stall past the idle timeout, and by a reset: no last chunk, and a reset.
    for path in ["/stall", "/rst"] {
        let got = get(&s.ns, path, "1.1")?;
        assert!(got.chunked(), "{path}: {got:?}");
        assert_eq!(got.body, b"c\r\nPARTIAL-BODY\r\n", "{path}: {got:?}");
        assert_eq!(got.end, End::Reset, "{path}: {got:?}");
    }
    // HTTP/1.0 reads the body until the close: only the reset says it was cut.
    let old = get(&s.ns, "/rst", "1.0")?;
    assert_eq!(old.field("transfer-encoding"), None, "{old:?}");
    assert_eq!(old.body, b"PARTIAL-BODY", "{old:?}");
    assert_eq!(old.end, End::Reset, "HTTP/1.0: {old:?}");

    // Whole: chunked with its last chunk, and the connection carries the next request.
    let whole = get(&s.ns, "/whole", "1.1")?;
    assert!(whole.chunked(), "{whole:?}");
    assert_eq!(whole.body, b"a\r\nWHOLE-BODY\r\n0\r\n\r\n", "{whole:?}");
    assert_eq!(whole.end, End::Open, "{whole:?}");
    let next = send(whole.conn.context("open")?, "/ok", "1.1")?;
    assert_eq!(
        next.body, b"ok",
        "the next request on the connection: {next:?}"
    );
    Ok(())
}

#[test]
fn a_length_or_chunked_body_the_target_cuts_ends_in_a_reset() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let s = start("cutcl")?;
    let cl = get(&s.ns, "/cl-cut", "1.1")?;
    assert_eq!(cl.field("content-length"), Some("1000"), "{cl:?}");
    assert_eq!(cl.body, [b'x'; 100], "{cl:?}");
    assert_eq!(cl.end, End::Reset, "{cl:?}");
    let ch = get(&s.ns, "/chunk-cut", "1.1")?;
    assert!(ch.chunked(), "{ch:?}");
    assert_eq!(ch.body, b"5\r\nhello\r\n", "{ch:?}");
    assert_eq!(ch.end, End::Reset, "{ch:?}");
    Ok(())
}

#[test]
fn the_access_log_counts_a_cut_bodys_bytes_names_the_cut_and_has_no_times_without_an_answer()
-> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let s = start("cutlog")?;

    // Cut after 100 of 1,000 body bytes: all that was sent counted, the cut named.
    let cl = get(&s.ns, "/cl-cut", "1.1")?;
    let head_len = cl.head.iter().map(|l| l.len() + 2).sum::<usize>() + 2;
    let f = log_line(&s.log, "/cl-cut")?;
    assert_eq!(
        (f[ELB_STATUS].as_str(), f[TARGET_STATUS].as_str()),
        ("200", "200"),
        "{f:?}"
    );
    assert_eq!(f[SENT_BYTES], (head_len + 100).to_string(), "{f:?}");
    assert_eq!(f[ERROR_REASON], "TargetResponseError", "{f:?}");
    // Cut by the target's silence for the idle timeout.
    get(&s.ns, "/stall", "1.1")?;
    let f = log_line(&s.log, "/stall")?;
    assert_eq!(f[ERROR_REASON], "TargetResponseTimeout", "{f:?}");
    assert_ne!(f[TARGET_TIME], "-1", "the target answered: {f:?}");

    // No answer within the idle timeout (504), and none at all (502, refused): -1 for all
    // three times, as ALB logs a request it could not dispatch or got no response to.
    let silent = get(&s.ns, "/silent", "1.1")?;
    assert_eq!(
        silent.head.first().map(String::as_str),
        Some("HTTP/1.1 504 Gateway Timeout")
    );
    let dead = get(&s.ns, "/dead/x", "1.1")?;
    assert!(dead.head[0].starts_with("HTTP/1.1 502"), "{dead:?}");
    for (path, reason) in [
        ("/silent", "TargetResponseTimeout"),
        ("/dead/x", "TargetConnectionError"),
    ] {
        let f = log_line(&s.log, path)?;
        let times = [&f[REQUEST_TIME], &f[TARGET_TIME], &f[RESPONSE_TIME]];
        assert_eq!(times, ["-1", "-1", "-1"], "{path}: {f:?}");
        assert_eq!(f[ERROR_REASON], reason, "{path}: {f:?}");
    }
    Ok(())
}
