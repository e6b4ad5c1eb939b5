//! A target that answers an HTTP/2 client's upload before it has taken the body (RFC 9113
//! §8.1), on both HTTP/2 engines, over h2c and TLS: a raw Python target reads the request
//! head, answers `413` and never reads the body; a Python `h2` client uploading 20 MB gets the
//! 413 whole at once, then RST_STREAM(NO_ERROR) (stop sending), and its connection serves a
//! next stream — on a new target connection, the first one not having the whole request. A
//! target that closes after its 413 is relayed the same way. Before, weir sent the whole body
//! before reading the response: the target's window filled, and the client had no answer
//! within 10 s (the write to the target would give up at the idle timeout, 60 s here, with a
//! 502). A `100 Continue` before the
//! target's answer does not stop the body: 8 MB go through and the target counts them all.
//! The access log's `received_bytes` for the 413 counts what was read, not the 20 MB.

mod common;
use common::*;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The raw target, one thread per connection: the head read, then by the request's path:
/// `/hold` answers 413 (keep-alive) and neither reads nor closes; `/close` answers 413 with
/// `Connection: close` and closes (a reset: the body is unread); `/continue` sends `100
/// Continue`, reads the whole body (content-length or chunked) and answers 200 with the
/// number of bytes it read after the head; anything else answers 200 `conn=N` (the
/// connection's number) and serves the connection's next request.
const TARGET: &str = r#"
import socket, threading, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 0))
l.listen(64)
print(l.getsockname()[1], flush=True)
def head(c, buf):
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            return None, buf
        buf += d
    end = buf.index(b"\r\n\r\n") + 4
    return buf[:end].decode("latin-1").lower(), buf[end:]
def serve(c, n):
    buf = b""
    while True:
        h, buf = head(c, buf)
        if h is None:
            return
        if h.startswith("post /hold"):
            c.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big\n")
            time.sleep(300)
            return
        if h.startswith("post /close"):
            c.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n")
            c.close()
            return
        if h.startswith("post /continue"):
            c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            length = None
            for line in h.split("\r\n"):
                if line.startswith("content-length:"):
                    length = int(line.split(":")[1])
            body = buf
            while not (len(body) >= length if length is not None else body.endswith(b"\r\n0\r\n\r\n")):
                d = c.recv(1 << 20)
                if not d:
                    return
                body += d
            buf = b""
            answer = str(len(body)).encode()
        else:
            answer = b"conn=%d" % n
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
n = 0
while True:
    c, _ = l.accept()
    n += 1
    threading.Thread(target=serve, args=(c, n), daemon=True).start()
"#;

/// The client (Python `h2` over a raw socket, TLS with ALPN h2 when a CA is given): POST
/// `path` with `size` bytes (declared with content-length or not), sent as fast as the
/// windows allow while the response is read; then a GET `/next` on the same connection. One
/// line of JSON: the first stream's status, body, when its head came (s), whether it ended,
/// the RST_STREAM code after it and whether that came after the END_STREAM, the body bytes
/// sent; the second stream's status and body.
const CLIENT: &str = r#"
import json, select, socket, ssl, sys, time
import h2.connection, h2.config, h2.events, h2.exceptions
port, path, size, declared, ca = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
if ca != "-":
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["h2"])
    s = ctx.wrap_socket(s, server_hostname="lb.test")
    assert s.selected_alpn_protocol() == "h2"
s.setblocking(False)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
out = bytearray(c.data_to_send())
def flush():
    while out:
        try:
            n = s.send(out)
        except (BlockingIOError, ssl.SSLWantWriteError):
            return
        del out[:n]
def pump(deadline, done):
    while not done() and time.monotonic() < deadline:
        flush()
        send_body()
        out.extend(c.data_to_send())
        flush()
        r, w, _ = select.select([s], [s] if out else [], [], 0.05)
        if not r:
            continue
        try:
            data = s.recv(1 << 20)
        except (BlockingIOError, ssl.SSLWantReadError):
            continue
        if not data:
            break
        for e in c.receive_data(data):
            on_event(e)
        out.extend(c.data_to_send())
st = {"sent": 0, "status": None, "body": b"", "after": None, "ended": False, "reset": None,
      "reset_after_end": None, "next_status": None, "next_body": b"", "next_ended": False}
first = c.get_next_available_stream_id()
second = None
t0 = time.monotonic()
def send_body():
    if st["sent"] >= size or st["reset"] is not None:
        return
    while st["sent"] < size:
        room = min(c.local_flow_control_window(first), c.max_outbound_frame_size, size - st["sent"])
        if room <= 0 or len(out) > (1 << 20):
            return
        try:
            c.send_data(first, b"u" * room, end_stream=st["sent"] + room >= size)
        except h2.exceptions.StreamClosedError:
            return
        st["sent"] += room
def on_event(e):
    if isinstance(e, h2.events.ResponseReceived):
        status = int(dict(e.headers)[b":status"])
        if e.stream_id == first:
            st["status"], st["after"] = status, time.monotonic() - t0
        else:
            st["next_status"] = status
    elif isinstance(e, h2.events.DataReceived):
        c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        key = "body" if e.stream_id == first else "next_body"
        st[key] += e.data
    elif isinstance(e, h2.events.StreamEnded):
        st["ended" if e.stream_id == first else "next_ended"] = True
    elif isinstance(e, h2.events.StreamReset) and e.stream_id == first:
        st["reset"], st["reset_after_end"] = int(e.error_code), st["ended"]
headers = [(":method", "POST"), (":scheme", "https" if ca != "-" else "http"), (":authority", "lb.test"), (":path", path)]
if declared:
    headers.append(("content-length", str(size)))
c.send_headers(first, headers)
# The answer and, after its END_STREAM, a reset: within 10 s.
pump(t0 + 10, lambda: st["reset"] is not None or (st["ended"] and st["sent"] >= size))
second = c.get_next_available_stream_id()
c.send_headers(second, [(":method", "GET"), (":scheme", headers[1][1]), (":authority", "lb.test"), (":path", "/next")], end_stream=True)
out.extend(c.data_to_send())
pump(time.monotonic() + 5, lambda: st["next_ended"])
for k in ("body", "next_body"):
    st[k] = st[k].decode("latin-1")
print(json.dumps(st))
"#;

/// The raw target, killed when dropped (the test's end, or its failure).
struct Target {
    port: u16,
    _child: tokio::process::Child,
}

async fn target() -> Target {
    let mut child = tokio::process::Command::new("/usr/bin/python3")
        .args(["-c", TARGET])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(out).read_line(&mut line),
    )
    .await
    .expect("the target's port in time")
    .expect("the target's port");
    Target {
        port: line.trim().parse().expect("a port"),
        _child: child,
    }
}

/// What the client saw.
#[derive(Debug)]
struct Seen {
    status: Option<u16>,
    body: String,
    after: Option<f64>,
    ended: bool,
    reset: Option<u32>,
    reset_after_end: Option<bool>,
    sent: u64,
    next_status: Option<u16>,
}

fn parse(json: &str) -> Seen {
    let v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json:?}"));
    let num = |k: &str| v[k].as_f64();
    Seen {
        status: num("status").map(|n| n as u16),
        body: v["body"].as_str().unwrap_or_default().to_string(),
        after: num("after"),
        ended: v["ended"].as_bool() == Some(true),
        reset: num("reset").map(|n| n as u32),
        reset_after_end: v["reset_after_end"].as_bool(),
        sent: num("sent").map_or(0, |n| n as u64),
        next_status: num("next_status").map(|n| n as u16),
    }
}

async fn client(port: u16, ca: Option<&str>, path: &str, size: usize, declared: bool) -> Seen {
    let (port, size) = (port.to_string(), size.to_string());
    let declared = if declared { "1" } else { "0" };
    let args = [
        "-c",
        CLIENT,
        &port,
        path,
        &size,
        declared,
        ca.unwrap_or("-"),
    ];
    let (ok, out, err) = run("/usr/bin/python3", &args).await;
    assert!(ok, "client: {err}\n{out}");
    parse(out.lines().last().unwrap_or_default())
}

/// The bound on the answer's arrival: the old code gave none within 10 s.
const AT_ONCE: f64 = 2.0;
const LARGE: usize = 20 << 20;

async fn early_answer_ends_the_upload(engine: &str) {
    let t = target().await;
    let pki = TestPki::new(&format!("h2-early-{engine}-{}", std::process::id()));
    let log = Removed(
        std::env::temp_dir().join(format!("weir-h2-early-{engine}-{}.log", std::process::id())),
    );
    let _ = std::fs::remove_file(&log.0);
    let lb_extra = format!(
        "http2_engine = \"{engine}\"\nidle_timeout.timeout_seconds = 60\n\
         access_logs.enabled = true\naccess_logs.path = \"{}\"",
        log.0.display()
    );
    let (w, plain, tls) = start_plain_and_tls(&pki, &["lb.test"], t.port, &lb_extra);
    let ca = pki.ca.display().to_string();
    for (port, ca) in [(plain, None), (tls, Some(ca.as_str()))] {
        for (path, declared) in [
            ("/hold/length", true),
            ("/hold/chunked", false),
            ("/close/length", true),
            ("/close/chunked", false),
        ] {
            let s = client(port, ca, path, LARGE, declared).await;
            let what = format!("{engine}, tls {}, {path}: {s:?}", ca.is_some());
            eprintln!("{what}");
            assert_eq!(s.status, Some(413), "{what}: the target's 413 relayed");
            assert!(
                s.after.is_some_and(|a| a < AT_ONCE),
                "{what}: the 413 came late"
            );
            assert!(s.ended && s.body == "too big\n", "{what}: the 413 whole");
            assert_eq!(
                (s.reset, s.reset_after_end),
                (Some(0), Some(true)),
                "{what}: RST_STREAM(NO_ERROR) after the response's END_STREAM"
            );
            assert!((s.sent as usize) < LARGE, "{what}: the upload stopped");
            // On another target connection: the 413's was not reused (a `/hold` one never
            // answers again, a `/close` one is closed).
            assert_eq!(s.next_status, Some(200), "{what}: the connection serves on");
        }
    }
    // A `100 Continue` during the body does not stop it: the target answers once it has it all.
    for (port, ca) in [(plain, None), (tls, Some(ca.as_str()))] {
        for declared in [true, false] {
            let size = 8 << 20;
            let s = client(port, ca, "/continue", size, declared).await;
            let what = format!("{engine}, tls {}, declared {declared}: {s:?}", ca.is_some());
            eprintln!("{what}");
            assert_eq!(s.status, Some(200), "{what}");
            assert_eq!(s.sent as usize, size, "{what}");
            if declared {
                assert_eq!(s.body, size.to_string(), "{what}: the target read it all");
            }
            assert_eq!(s.reset, None, "{what}: nothing to stop");
            assert_eq!(s.next_status, Some(200), "{what}");
        }
    }

    // The 413s' lines: 413 from the target; what was read on the connection while the stream
    // lived (docs/l7.md, "Access log"), not the 20 MB.
    let text = log_lines(&log.0, 16).await;
    let holds: Vec<&str> = text.lines().filter(|l| l.contains("/hold/")).collect();
    assert_eq!(holds.len(), 4, "{text}");
    for l in holds {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!((f[8], f[9]), ("413", "413"), "{l}");
        let received: usize = f[10].parse().expect("received_bytes");
        assert!(received < LARGE, "{l}");
    }
    w.stop().await;
}

/// A file removed when dropped (the test's end, or its failure).
struct Removed(std::path::PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

mod hyper_engine {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn early_answer_ends_the_upload() {
        super::early_answer_ends_the_upload("hyper").await
    }
}

mod weir_engine {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn early_answer_ends_the_upload() {
        super::early_answer_ends_the_upload("weir").await
    }
}
