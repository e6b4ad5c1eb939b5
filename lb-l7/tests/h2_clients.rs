//! Real HTTP/2 clients through both HTTP/2 engines (`[load_balancer] http2_engine`, hyper's
//! and weir's own), over TLS (ALPN h2) and h2c (prior knowledge), to a real HTTP/1.1 backend:
//! curl (GET, a 1 MB POST, a 10 MB response), nghttp with a 64 KiB window (flow control: the
//! 10 MB arrive whole through many WINDOW_UPDATEs), h2load with many concurrent streams
//! (-c4 -m64 -n20000, no error), and Python's `h2` resetting a stream in the middle of its
//! response, then using the connection again.

mod common;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use tokio::net::TcpListener;

/// FNV-1a over the bytes: what the backend reports for a request body.
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// The byte at offset `i` of every `/big` response.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A hyper HTTP/1.1 backend: `/big?n=N` answers N bytes of `pattern`, `/sum` the length and
/// FNV-1a of the request body, anything else `ok`. Counts connections.
async fn body_backend() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            c.fetch_add(1, SeqCst);
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let path = req.uri().path().to_string();
                    let query = req.uri().query().unwrap_or("").to_string();
                    let body = req.into_body().collect().await.map(|b| b.to_bytes());
                    let answer = match (path.as_str(), body) {
                        ("/big", _) => {
                            let n = query
                                .strip_prefix("n=")
                                .and_then(|n| n.parse().ok())
                                .unwrap_or(0);
                            Bytes::from(pattern(n))
                        }
                        ("/sum", Ok(b)) => {
                            Bytes::from(format!("len={} fnv={:016x}", b.len(), fnv(&b)))
                        }
                        _ => Bytes::from_static(b"ok"),
                    };
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(answer)))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (port, conns)
}

/// A worker with an h2c listener and a TLS listener (h2 preferred), both to `target`.
struct Lb {
    _w: Running,
    plain: u16,
    tls: u16,
    _pki: TestPki,
    ca: String,
}

fn lb(engine: &str, target: u16) -> Lb {
    // A directory of its own: the tests run in parallel, and each removes its own at the end.
    let pki = TestPki::new(&format!("h2-clients-{engine}-{}", fastrand_u64()));
    let (w, plain, tls) = start_plain_and_tls(
        &pki,
        &["lb.test"],
        target,
        &format!("http2_engine = \"{engine}\""),
    );
    Lb {
        _w: w,
        plain,
        tls,
        ca: pki.ca.display().to_string(),
        _pki: pki,
    }
}

impl Lb {
    /// The URL of `path` on the h2c listener or the TLS one, and curl's arguments for it.
    fn curl_args(&self, tls: bool, path: &str) -> Vec<String> {
        if tls {
            vec![
                "--http2".into(),
                "--cacert".into(),
                self.ca.clone(),
                "--resolve".into(),
                format!("lb.test:{}:127.0.0.1", self.tls),
                format!("https://lb.test:{}{path}", self.tls),
            ]
        } else {
            vec![
                "--http2-prior-knowledge".into(),
                format!("http://127.0.0.1:{}{path}", self.plain),
            ]
        }
    }
}

/// curl: (HTTP version, status, body bytes).
async fn curl_h2(args: &[String], extra: &[&str]) -> (String, u16, Vec<u8>) {
    curl_h2_stdin(args, extra, None).await
}

async fn curl_h2_stdin(
    args: &[String],
    extra: &[&str],
    stdin: Option<&[u8]>,
) -> (String, u16, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!(
        "weir-h2c-{}-{}",
        std::process::id(),
        fastrand_u64()
    ));
    let out = dir.display().to_string();
    let mut a: Vec<&str> = vec![
        "-s",
        "--max-time",
        "30",
        "-o",
        &out,
        "-w",
        "%{http_version} %{http_code}",
    ];
    a.extend_from_slice(extra);
    a.extend(args.iter().map(String::as_str));
    let (_, stdout, stderr) = run_stdin("curl", &a, stdin).await;
    let body = std::fs::read(&dir).unwrap_or_default();
    let _ = std::fs::remove_file(&dir);
    let mut it = stdout.split_whitespace();
    let version = it.next().unwrap_or("").to_string();
    let code = it.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    assert!(code != 0, "curl {a:?}: {stdout} {stderr}");
    (version, code, body)
}

/// A number no other call in this process returned.
fn fastrand_u64() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, SeqCst)
}

async fn curl_get_post_and_large(engine: &str) {
    let (target, _) = body_backend().await;
    let lb = lb(engine, target);
    let upload =
        std::env::temp_dir().join(format!("weir-h2-upload-{}-{engine}", std::process::id()));
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&upload, &data).unwrap();
    let at_file = format!("@{}", upload.display());
    for tls in [false, true] {
        let what = format!("{engine}, tls {tls}");
        let (v, code, body) = curl_h2(&lb.curl_args(tls, "/hello"), &[]).await;
        assert_eq!(
            (v.as_str(), code, body.as_slice()),
            ("2", 200, &b"ok"[..]),
            "{what}"
        );
        // A 1 MB request body, with its length and without (chunked to the target).
        let want = format!("len=1000000 fnv={:016x}", fnv(&data));
        let (v, code, body) =
            curl_h2(&lb.curl_args(tls, "/sum"), &["--data-binary", &at_file]).await;
        assert_eq!((v.as_str(), code), ("2", 200), "{what}");
        assert_eq!(String::from_utf8_lossy(&body), want, "{what}");
        // From stdin with -T: no length, DATA frames as they come.
        let (_, code, body) = curl_h2_stdin(
            &lb.curl_args(tls, "/sum"),
            &["-X", "POST", "-T", "-"],
            Some(&data),
        )
        .await;
        assert_eq!(code, 200, "{what} (no length)");
        assert_eq!(String::from_utf8_lossy(&body), want, "{what} (no length)");
        // A 10 MB response.
        let (v, code, body) = curl_h2(&lb.curl_args(tls, "/big?n=10000000"), &[]).await;
        assert_eq!(
            (v.as_str(), code, body.len()),
            ("2", 200, 10_000_000),
            "{what}"
        );
        assert!(body == pattern(10_000_000), "{what}: 10 MB body differs");
    }
    let _ = std::fs::remove_file(&upload);
}

/// nghttp with a 64 KiB stream and connection window (`-w 16 -W 16`): the 10 MB response
/// arrives whole through flow control.
async fn nghttp_small_window(engine: &str) {
    let (target, _) = body_backend().await;
    let lb = lb(engine, target);
    let url = format!("http://127.0.0.1:{}/big?n=10000000", lb.plain);
    let (ok, out, err) = run("nghttp", &["-w", "16", "-W", "16", "-s", &url]).await;
    assert!(ok, "{engine}: nghttp failed: {err}");
    // `-s` prints the stream's statistics: status and body bytes received.
    assert!(out.contains("200") || err.is_empty(), "{engine}: {out}");
    let (ok, out, err) = run("nghttp", &["-w", "16", "-W", "16", "-n", "-v", &url]).await;
    assert!(ok, "{engine}: nghttp -v failed: {err}");
    let data: usize = out
        .lines()
        .filter(|l| l.contains("recv DATA frame <length="))
        .filter_map(|l| {
            let s = l.split("length=").nth(1)?;
            s.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert_eq!(data, 10_000_000, "{engine}: DATA bytes received");
    let updates = out.matches("send WINDOW_UPDATE frame").count();
    assert!(
        updates > 100,
        "{engine}: only {updates} WINDOW_UPDATEs: flow control not exercised"
    );
    assert!(out.contains("END_STREAM"), "{engine}");
}

/// h2load -c4 -m64 -n20000 over h2c and over TLS: every request succeeds.
async fn h2load_many_streams(engine: &str) {
    let (target, _) = body_backend().await;
    let lb = lb(engine, target);
    for tls in [false, true] {
        let url = if tls {
            format!("https://127.0.0.1:{}/hello", lb.tls)
        } else {
            format!("http://127.0.0.1:{}/hello", lb.plain)
        };
        let (ok, out, err) = run("h2load", &["-c4", "-m64", "-n20000", &url]).await;
        let line = out
            .lines()
            .find(|l| l.starts_with("requests:"))
            .unwrap_or_default()
            .to_string();
        let status = out
            .lines()
            .find(|l| l.starts_with("status codes:"))
            .unwrap_or_default()
            .to_string();
        println!("{engine}, tls {tls}: {line}; {status}");
        assert!(ok, "{engine}, tls {tls}: h2load failed: {err}\n{out}");
        assert!(
            line.contains("20000 succeeded, 0 failed, 0 errored"),
            "{engine}, tls {tls}: {line}\n{out}"
        );
        assert!(
            status.contains("20000 2xx"),
            "{engine}, tls {tls}: {status}"
        );
        assert!(out.contains("h2"), "{engine}, tls {tls}: not HTTP/2: {out}");
    }
}

/// Python's h2 (a real client library): a 600 KB response reset after its first 32 KB, then
/// another request on the same connection.
const RESET_SCRIPT: &str = r#"
import socket, sys
import h2.connection, h2.config, h2.events, h2.errors
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
s.sendall(c.data_to_send())
def req(path):
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "lb"), (":path", path)], end_stream=True)
    s.sendall(c.data_to_send())
    return sid
first = req("/big?n=600000")
got, reset, second, status2, body2, done2 = 0, False, None, None, b"", False
while not done2:
    data = s.recv(65536)
    if not data:
        break
    for e in c.receive_data(data):
        if isinstance(e, h2.events.DataReceived):
            if e.stream_id == first:
                got += len(e.data)
                # no credit back for the first stream: the rest waits on its flow control.
                # The connection's window is credited, or the second stream's response could
                # find it spent by the first's bytes (h2 credits only those that arrive after
                # the reset by itself).
                c.increment_flow_control_window(e.flow_controlled_length)
                if got >= 32768 and not reset:
                    c.reset_stream(first, h2.errors.ErrorCodes.CANCEL)
                    reset = True
                    second = req("/hello")
            elif e.stream_id == second:
                body2 += e.data
                c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, h2.events.ResponseReceived) and e.stream_id == second:
            status2 = dict(e.headers).get(b":status")
        elif isinstance(e, h2.events.StreamEnded) and e.stream_id == second:
            done2 = True
        elif isinstance(e, h2.events.StreamEnded) and e.stream_id == first:
            print("first stream ended before the reset")
    s.sendall(c.data_to_send())
print("first", got, "reset", reset, "second", status2.decode() if status2 else None, body2.decode())
"#;

async fn reset_mid_response(engine: &str) {
    let (target, _) = body_backend().await;
    let lb = lb(engine, target);
    let port = lb.plain.to_string();
    let (ok, out, err) = run("/usr/bin/python3", &["-c", RESET_SCRIPT, &port]).await;
    assert!(ok, "{engine}: {err}\n{out}");
    let line = out.lines().last().unwrap_or_default();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(
        matches!(words.as_slice(), ["first", n, "reset", "True", "second", "200", "ok"]
            if n.parse::<usize>().is_ok_and(|n| (32768..600_000).contains(&n))),
        "{engine}: {out}"
    );
}

/// HTTP/2 byte accounting, ALB's: a stream's `received_bytes` is its request's header block
/// and body, `sent_bytes` its response's head and body, `ProcessedBytes` both. Five identical
/// 100,000-byte uploads log the same `received_bytes` (it was the connection's bytes read while
/// the stream ran: 34,501 or 100,072 by timing), a GET with a 500-byte header counts it (it
/// logged 0), a response's head is in `sent_bytes` and `ProcessedBytes` is the lines' sum
/// (it was the response bodies' only).
async fn byte_accounting(engine: &str) {
    let (target, _) = body_backend().await;
    let pki = TestPki::new(&format!("h2-bytes-{engine}-{}", fastrand_u64()));
    let log = pki.dir.join("access.log");
    let (w, plain, _tls) = start_plain_and_tls(
        &pki,
        &["lb.test"],
        target,
        &format!(
            "http2_engine = \"{engine}\"\naccess_logs.enabled = true\naccess_logs.path = \"{}\"",
            log.display()
        ),
    );
    let processed0 = w.metrics.snapshot().processed_bytes;
    let url = |p: &str| format!("http://127.0.0.1:{plain}{p}");
    let body = vec![b'b'; 100_000];
    let at = pki.dir.join("body100k");
    std::fs::write(&at, &body).unwrap();
    let at_file = format!("@{}", at.display());
    for _ in 0..5 {
        let args = ["--http2-prior-knowledge".to_string(), url("/sum")];
        let (v, code, answer) = curl_h2(&args, &["--data-binary", &at_file]).await;
        assert_eq!((v.as_str(), code), ("2", 200));
        assert!(answer.starts_with(b"len=100000 "));
    }
    let big = "~".repeat(500);
    let header = format!("x-big: {big}");
    let args = ["--http2-prior-knowledge".to_string(), url("/hello")];
    let (_, code, _) = curl_h2(&args, &["-H", &header]).await;
    assert_eq!(code, 200);
    let text = log_lines(&log, 6).await;
    let lines: Vec<(u64, u64)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[10].parse().unwrap(), f[11].parse().unwrap())
        })
        .collect();
    assert_eq!(lines.len(), 6, "{text}");
    eprintln!("{engine}: (received_bytes, sent_bytes) {lines:?}");
    let uploads = &lines[..5];
    assert!(
        uploads.iter().all(|l| l.0 == uploads[0].0),
        "identical uploads, one received_bytes: {uploads:?}"
    );
    // The body and a header block (a few dozen bytes: method, path, authority, user-agent…).
    let head = uploads[0].0 - 100_000;
    assert!((20..300).contains(&head), "{uploads:?}");
    // The answer `len=100000 fnv=…` (31 bytes) and its head (status, content-length, date).
    for &(_, sent) in uploads {
        assert!(sent > 31 + 20 && sent < 31 + 300, "{uploads:?}");
    }
    let (got, sent) = lines[5];
    assert!((500..800).contains(&got), "a 500-byte header: {got}");
    assert!(sent > 2, "the head of `ok` counts: {sent}");
    let sum: u64 = lines.iter().map(|l| l.0 + l.1).sum();
    wait_for(Duration::from_secs(5), "ProcessedBytes", || {
        w.metrics.snapshot().processed_bytes - processed0 == sum
    })
    .await;
    let l = w.metrics.snapshot().listeners[&plain].processed_bytes;
    assert_eq!(l, sum, "the listener's ProcessedBytes");
}

macro_rules! for_both_engines {
    ($($name:ident),* $(,)?) => {
        mod hyper_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name("hyper").await
                }
            )*
        }
        mod weir_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name("weir").await
                }
            )*
        }
    };
}

for_both_engines!(
    curl_get_post_and_large,
    nghttp_small_window,
    h2load_many_streams,
    reset_mid_response,
    byte_accounting,
);
