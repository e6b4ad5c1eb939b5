//! Message framing against hostile peers (issue #10 §1): chunked bodies are validated and
//! re-encoded both ways, `max_request_body_bytes` holds for every framing, a target's
//! `Connection` or doubled framing cannot change the framing the client reads, and an
//! HTTP/1.1 client that leaves while weir waits for the target is logged as ALB's 460.
//! Real sockets: raw clients and raw scripted targets on 127.0.0.1.

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(5);

fn config(port: u16, target: u16, extra: &str) -> String {
    one_target_config(port, target, extra, "", "")
}

/// What one target connection received (appended as it comes).
type Received = Arc<Mutex<Vec<u8>>>;

/// A target that records what it receives and answers `200` with a 2-byte body once the
/// sender has been quiet for 300 ms (so a whole request, body included, is one record).
struct Recorder {
    port: u16,
    /// What each connection received, one buffer per connection (appended as it comes).
    got: Arc<Mutex<Vec<Received>>>,
}

impl Recorder {
    async fn start() -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mine = Arc::new(Mutex::new(Vec::new()));
                g.lock().unwrap().push(mine.clone());
                tokio::spawn(async move {
                    let mut tmp = [0u8; 8192];
                    let mut fresh = false;
                    loop {
                        let quiet = Duration::from_millis(300);
                        match tokio::time::timeout(quiet, s.read(&mut tmp)).await {
                            Ok(Ok(0) | Err(_)) => return,
                            Ok(Ok(n)) => {
                                mine.lock().unwrap().extend_from_slice(&tmp[..n]);
                                fresh = true;
                            }
                            Err(_) if fresh => {
                                fresh = false;
                                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                                if s.write_all(ok).await.is_err() {
                                    return;
                                }
                            }
                            Err(_) => {}
                        }
                    }
                });
            }
        });
        Recorder { port, got }
    }

    /// Everything received since the last `clear`, all connections.
    fn all(&self) -> String {
        let v = self.got.lock().unwrap();
        v.iter()
            .map(|c| String::from_utf8_lossy(&c.lock().unwrap()).into_owned())
            .collect::<Vec<_>>()
            .join("\n--- next connection ---\n")
    }

    fn clear(&self) {
        self.got.lock().unwrap().clear();
    }
}

/// A target that answers every request head it reads with `response`, then keeps the
/// connection (it reads on) or closes it (`close_after`).
async fn scripted(response: &'static [u8], close_after: bool) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if s.write_all(response).await.is_err() || close_after {
                            return;
                        }
                    }
                    match s.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
            });
        }
    });
    port
}

/// The responses in `raw`, read strictly as a client would (httparse heads; the body by
/// `content-length`, by `transfer-encoding: chunked` with a strict decoder, or to the end);
/// each as (status, lowercase head, body). Panics on anything a client could not delimit.
fn responses(raw: &[u8]) -> Vec<(u16, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut hs);
        let n = match r.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "unparsable response ({other:?}): {:?}",
                String::from_utf8_lossy(rest)
            ),
        };
        let head = String::from_utf8_lossy(&rest[..n]).to_ascii_lowercase();
        let status = r.code.unwrap();
        let field = |name: &str| {
            r.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
                .collect::<Vec<_>>()
        };
        let (te, cl) = (field("transfer-encoding"), field("content-length"));
        assert!(
            te.is_empty() || cl.is_empty(),
            "both framings sent to the client: {head}"
        );
        rest = &rest[n..];
        let body;
        if te.iter().any(|v| v.eq_ignore_ascii_case("chunked")) {
            let (data, used) = dechunk(rest);
            body = data;
            rest = &rest[used..];
        } else if let [len] = cl.as_slice() {
            let len: usize = len.parse().expect("a single decimal content-length");
            body = rest[..len].to_vec();
            rest = &rest[len..];
        } else {
            assert!(
                cl.is_empty(),
                "content-length list sent to the client: {head}"
            );
            assert!(head.contains("connection: close"), "no framing: {head}");
            body = rest.to_vec();
            rest = &[];
        }
        out.push((status, head, body));
    }
    out
}

/// A strict chunked decoder (canonical sizes only: what weir writes); returns (data, bytes used).
fn dechunk(mut b: &[u8]) -> (Vec<u8>, usize) {
    let total = b.len();
    let mut data = Vec::new();
    loop {
        let line = b.windows(2).position(|w| w == b"\r\n").expect("size line");
        let size = std::str::from_utf8(&b[..line]).unwrap();
        assert!(
            !size.is_empty()
                && size
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                && (size == "0" || !size.starts_with('0')),
            "not a canonical chunk size: {size:?}"
        );
        let n = usize::from_str_radix(size, 16).unwrap();
        b = &b[line + 2..];
        if n == 0 {
            // Trailer lines up to the empty one.
            let mut at = 0;
            loop {
                let l = b[at..]
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .expect("trailer line");
                at += l + 2;
                if l == 0 {
                    return (data, total - b.len() + at);
                }
            }
        }
        data.extend_from_slice(&b[..n]);
        assert_eq!(&b[n..n + 2], b"\r\n", "chunk data not followed by CRLF");
        b = &b[n + 2..];
    }
}

async fn exchange(port: u16, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = s.write_all(bytes).await;
    read_bytes(&mut s).await
}

async fn read_bytes(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0) | Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A chunked request body reaches the target re-encoded: canonical sizes, no extensions,
/// framing and routing fields dropped from the trailers, the rest of the trailers kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_request_body_is_reencoded() {
    let rec = Recorder::start().await;
    let port = free_port();
    let w = start(&config(port, rec.port, ""));
    let (raw, _) = exchange(
        port,
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          005\r\nhello\r\n6;ext=\"x;y\"\r\n world\r\n00\r\n\
          X-Checksum: 42\r\nContent-Length: 5\r\nHost: evil.example\r\nTransfer-Encoding: x\r\n\r\n",
    )
    .await;
    let r = responses(&raw);
    assert_eq!(r[0].0, 200, "{:?}", String::from_utf8_lossy(&raw));
    let got = rec.all();
    let body = got
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert_eq!(
        body, "b\r\nhello world\r\n0\r\nX-Checksum: 42\r\n\r\n",
        "re-encoded body the target got: {got:?}"
    );
    let head = got.split_once("\r\n\r\n").unwrap().0.to_ascii_lowercase();
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    w.stop().await;
}

/// Malformed chunked syntax: 400 and a close; the target has only what weir re-encoded
/// before the bad byte (whole chunks) and then a close, never a second request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chunked_request_is_400_and_nothing_misparsed() {
    let rec = Recorder::start().await;
    let port = free_port();
    let w = start(&config(port, rec.port, ""));
    let smuggled = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    let bad: [(&str, String); 6] = [
        (
            "bare LF after size",
            format!("5\nhello\r\n0\r\n\r\n{smuggled}"),
        ),
        ("invalid hex", format!("5g\r\nhello\r\n0\r\n\r\n{smuggled}")),
        (
            "size overflow",
            format!("1{}\r\nx\r\n0\r\n\r\n", "0".repeat(16)),
        ),
        (
            "no CRLF after data",
            format!("5\r\nhello0\r\n\r\n{smuggled}"),
        ),
        (
            "bare LF after data",
            format!("5\r\nhello\n0\r\n\r\n{smuggled}"),
        ),
        ("bad trailer", format!("0\r\nbad trailer\r\n\r\n{smuggled}")),
    ];
    for (what, body) in &bad {
        rec.clear();
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        // A valid first part in its own write: the target may get it, but re-encoded.
        let first = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                      0003;e=1\r\nabc\r\n";
        s.write_all(first).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = s.write_all(body.as_bytes()).await;
        let (raw, closed) = read_bytes(&mut s).await;
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 400"), "{what}: {text}");
        assert!(closed, "{what}: closed after 400");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let got = rec.all();
        assert!(
            !got.contains("/admin"),
            "{what}: smuggled request reached the target: {got:?}"
        );
        if let Some((_, body)) = got.split_once("\r\n\r\n") {
            assert_eq!(
                body, "3\r\nabc\r\n",
                "{what}: the target got only whole chunks"
            );
        }
    }
    w.stop().await;
}

/// `max_request_body_bytes` on every framing: a `Content-Length` list over the limit (as
/// forwarded in `monitor` mode) is 413 before anything reaches the target; a length at the
/// limit and a chunked body at the limit go through; a chunked body over it is 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limit_holds_for_every_framing() {
    let rec = Recorder::start().await;
    let port = free_port();
    let extra = "max_request_body_bytes = 1000\nrouting.http.desync_mitigation_mode = \"monitor\"";
    let w = start(&config(port, rec.port, extra));

    let (raw, closed) = exchange(
        port,
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4096, 4096\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 413"), "CL list: {text}");
    assert!(closed, "closed after 413");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rec.all(), "", "nothing reached the target");

    let mut at =
        b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
            .to_vec();
    at.extend_from_slice(&[b'x'; 1000]);
    let (raw, _) = exchange(port, &at).await;
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );

    let mut chunked = b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
                        Connection: close\r\n\r\n"
        .to_vec();
    for n in [400, 600] {
        chunked.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        chunked.extend_from_slice(&vec![b'y'; n]);
        chunked.extend_from_slice(b"\r\n");
    }
    let mut over = chunked.clone();
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (raw, _) = exchange(port, &chunked).await;
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );

    over.extend_from_slice(b"1\r\nz\r\n0\r\n\r\n");
    let (raw, closed) = exchange(port, &over).await;
    assert!(
        raw.starts_with(b"HTTP/1.1 413"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(closed);
    let got = rec.all();
    assert!(got.contains("POST /b") && got.contains("POST /c"), "{got}");
    assert!(!got.contains("POST /a"), "{got}");
    w.stop().await;
}

/// Two keep-alive requests on one connection; the responses as a client parses them.
async fn two_responses(port: u16) -> Vec<(u16, String, Vec<u8>)> {
    let (raw, _) = exchange(
        port,
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    responses(&raw)
}

/// A target's `Connection` naming its framing cannot strip the framing the client reads, and
/// `Transfer-Encoding` with `Content-Length` loses the `Content-Length` (HAProxy's rule).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_connection_header_cannot_strip_framing() {
    let cases: [(&str, &'static [u8], &str); 4] = [
        (
            "Connection: Content-Length",
            b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello",
            "hello",
        ),
        (
            "Connection: Transfer-Encoding",
            b"HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "hello",
        ),
        (
            "TE and CL",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "hello",
        ),
        (
            "CL list of one value",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
            "hello",
        ),
    ];
    for (what, resp, body) in cases {
        let target = scripted(resp, false).await;
        let port = free_port();
        let w = start(&config(port, target, ""));
        let r = two_responses(port).await;
        assert_eq!(r.len(), 2, "{what}: two delimited responses: {r:?}");
        for (status, head, b) in &r {
            assert_eq!(*status, 200, "{what}: {head}");
            assert_eq!(String::from_utf8_lossy(b), body, "{what}: {head}");
        }
        w.stop().await;
    }
}

/// Hostile response bodies: a `Content-Length` list that disagrees is 502; a malformed
/// chunked body is 502 when nothing was sent yet, else the client connection ends; a valid
/// one reaches the client re-encoded (sizes, extensions, trailers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_response_bodies() {
    let cases: [(&str, &'static [u8], &str); 4] = [
        (
            "CL list that disagrees",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
            "502",
        ),
        (
            "bare LF in chunk size line",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
            "502",
        ),
        (
            "invalid hex",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nz\r\nhello\r\n0\r\n\r\n",
            "502",
        ),
        (
            "re-encoded",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              0005;a=b\r\nhello\r\n0\r\nX-T: 1\r\nSet-Cookie: evil=1\r\n\r\n",
            "200",
        ),
    ];
    for (what, resp, want) in cases {
        let target = scripted(resp, false).await;
        let port = free_port();
        let w = start(&config(port, target, ""));
        let (raw, _) = exchange(
            port,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        let text = String::from_utf8_lossy(&raw);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {want}")),
            "{what}: {text}"
        );
        if want == "200" {
            let r = responses(&raw);
            assert_eq!(r[0].2, b"hello", "{what}: {text:?}");
            assert!(
                text.ends_with("\r\n0\r\nX-T: 1\r\n\r\n"),
                "{what}: {text:?}"
            );
            assert!(
                !text.contains("0005") && !text.contains(";a=b"),
                "{what}: {text:?}"
            );
            assert!(
                !text.contains("evil"),
                "forbidden trailer dropped: {text:?}"
            );
        }
        w.stop().await;
    }

    // Malformed after the head went out: the client connection ends, the body incomplete.
    let resp: &'static [u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut tmp = [0u8; 4096];
                let _ = s.read(&mut tmp).await;
                let _ = s.write_all(resp).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = s.write_all(b"5\r\nworldGET /x HTTP/1.1\r\n\r\n").await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
        }
    });
    let port = free_port();
    let w = start(&config(port, target, ""));
    let (raw, closed) = exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let text = String::from_utf8_lossy(&raw);
    assert!(closed, "client connection ended: {text}");
    assert!(text.ends_with("\r\n\r\n5\r\nhello\r\n"), "{text:?}");
    w.stop().await;
}

/// An HTTP/1.1 client that closes while weir waits for the target: access-logged as 460
/// (`ClientClosedBeforeResponse`) and counted, and weir drops the target connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_closing_while_waiting_is_460() {
    let b = backend("b").await;
    let port = free_port();
    let log = std::env::temp_dir().join(format!("weir-l7-framing-460-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let extra = format!(
        "access_logs.enabled = true\naccess_logs.path = \"{}\"",
        log.display()
    );
    let w = start(&config(port, b.addr.port(), &extra));
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    wait_for(Duration::from_secs(5), "the request at the target", || {
        b.hits.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await;
    drop(s);
    // A prompt request on another connection is unaffected.
    let (raw, _) = exchange(
        port,
        b"GET /fast HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with(b"HTTP/1.1 200"));
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1000);
    let m = loop {
        let m = w.metrics.snapshot();
        if m.elb_status_codes.contains_key(&460) || tokio::time::Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        m.elb_status_codes.get(&460),
        Some(&1),
        "460 counted before the target answered: {:?}",
        m.elb_status_codes
    );
    w.stop().await;
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let line = lines
        .lines()
        .find(|l| l.contains("/slow"))
        .unwrap_or_else(|| panic!("no log line for the request: {lines}"));
    assert!(line.contains(" 460 "), "{line}");
    assert!(line.contains("\"ClientClosedBeforeResponse\""), "{line}");
}
