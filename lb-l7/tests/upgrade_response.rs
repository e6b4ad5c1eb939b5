//! What a target answers to an upgrade decides the connection, never the other way round (h2c
//! and WebSocket smuggling): a `101` weir did not ask for is a 502 and the target connection is
//! closed, never pooled; an upgrade the target refuses is an ordinary response, not a tunnel,
//! and its connection is closed after it. Also: request heads weir cannot parse are
//! access-logged. Raw clients, a raw target, a real worker.

mod common;
mod recorder;
use common::*;
use recorder::{accept_each, read_response};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What one target connection saw: the request lines' paths, and whether weir closed it.
#[derive(Debug, Default, Clone)]
struct Conn {
    paths: Vec<String>,
    eof: bool,
}

/// A raw target. `/switch*`: `101` to `h2c`, then (150 ms later) bytes that read as a whole
/// response for whoever sends the next request on the connection. `/refuse*`: `426` with a
/// length, keep-alive. Anything else: `200 ok`.
struct Switcher {
    port: u16,
    conns: Arc<Mutex<Vec<Conn>>>,
}

impl Switcher {
    fn snapshot(&self) -> Vec<Conn> {
        self.conns.lock().unwrap().clone()
    }

    /// The connection that received `path`, once it has (waits up to 2 s for `eof`).
    async fn conn_of(&self, path: &str, want_eof: bool) -> Conn {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let found = self
                .snapshot()
                .into_iter()
                .find(|c| c.paths.iter().any(|p| p == path));
            match found {
                Some(c) if c.eof == want_eof || tokio::time::Instant::now() > deadline => {
                    return c;
                }
                None if tokio::time::Instant::now() > deadline => {
                    panic!("the target never saw {path}: {:?}", self.snapshot())
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

async fn switcher() -> Switcher {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
    accept_each(l, conns.clone(), serve);
    Switcher { port, conns }
}

async fn serve(mut s: TcpStream, conns: Arc<Mutex<Vec<Conn>>>, i: usize) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    // Bounded: the worker's idle timeout ends every connection; this is a backstop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match tokio::time::timeout_at(deadline, s.read(&mut tmp)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&tmp[..n]),
                Ok(_) => conns.lock().unwrap()[i].eof = true,
                Err(_) => {}
            }
            if conns.lock().unwrap()[i].eof || tokio::time::Instant::now() >= deadline {
                return;
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        conns.lock().unwrap()[i].paths.push(path.clone());
        if path.starts_with("/late-switch") {
            // After the client has gone: the 101 and the would-be response together.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = s
                .write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n\
                      HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED",
                )
                .await;
        } else if path.starts_with("/switch") {
            let _ = s
                .write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
                )
                .await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED")
                .await;
        } else if path.starts_with("/refuse") {
            let _ = s
                .write_all(
                    b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n\
                      Content-Length: 4\r\n\r\nnope",
                )
                .await;
        } else {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
    }
}

/// A listener whose rule answers `/admin*` itself (403), the rest to the target; pooled
/// connections are reused whenever possible (`always`), so a leaked one would be taken by the
/// next client.
fn config(port: u16, target: u16, extra: &str) -> String {
    one_target_config(
        port,
        target,
        extra,
        ADMIN_403_RULE,
        r#"connection_pool.reuse = "always""#,
    )
}

/// One request on a new client connection; the response's status and text.
async fn ask(port: u16, req: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    read_response(&mut s).await
}

/// A 101 to a plain request, to one whose `Upgrade: h2c` weir removed, or naming another
/// protocol than the WebSocket weir forwarded: 502, the target connection closed (the target
/// sees EOF), and the next client's request goes on another connection and gets its own
/// response (on the old code: the 101 went to the client and the connection to the pool, where
/// the next request read the target's `SMUGGLED`; the WebSocket one was tunnelled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrequested_101_is_502_and_never_pooled() {
    let t = switcher().await;
    let port = free_port();
    let w = start(&config(port, t.port, ""));
    let cases = [
        ("/switch-plain", ""),
        (
            "/switch-h2c",
            "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n",
        ),
        (
            "/switch-ws",
            "Connection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        ),
    ];
    for (i, (path, extra)) in cases.iter().enumerate() {
        let (status, text) = ask(
            port,
            &format!("GET {path} HTTP/1.1\r\nHost: a\r\n{extra}\r\n"),
        )
        .await;
        assert_eq!(status, 502, "{path}: {text}");
        assert!(!text.contains("SMUGGLED"), "{path}: {text}");
        let c = t.conn_of(path, true).await;
        assert!(c.eof, "{path}: weir kept the target connection: {c:?}");
        // (It may have carried earlier requests: a plain request takes a pooled connection.)
        assert_eq!(
            c.paths.last().map(String::as_str),
            Some(*path),
            "{path}: the connection carried more: {c:?}"
        );
        // Another client, after the target's bytes have arrived: its own response.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let next = format!("/next-{i}");
        let (status, text) = ask(port, &format!("GET {next} HTTP/1.1\r\nHost: a\r\n\r\n")).await;
        assert_eq!(status, 200, "{next}: {text}");
        assert!(text.ends_with("\r\n\r\nok"), "{next}: {text}");
        let c = t.conn_of(&next, false).await;
        assert!(!c.paths.contains(&path.to_string()), "{c:?}");
    }
    let m = w.metrics.snapshot();
    assert_eq!(m.elb_status_codes.get(&502), Some(&3), "{m:?}");
    w.stop().await;
}

/// The same for an HTTP/2 client (curl, prior knowledge): its request goes over the same
/// pooled HTTP/1.1 target connections and is never an upgrade, so a 101 is a 502 and the
/// connection is closed (on the old code the 101 went to hyper as the response and the
/// connection to the pool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrequested_101_to_an_http2_client_is_502() {
    let t = switcher().await;
    let port = free_port();
    let w = start(&config(port, t.port, ""));
    let url = format!("http://127.0.0.1:{port}/switch-h2");
    let (status, text) = curl(&["--http2-prior-knowledge", &url]).await;
    assert_eq!(status, 502, "{text}");
    assert!(text.starts_with("HTTP/2 502"), "{text}");
    let c = t.conn_of("/switch-h2", true).await;
    assert!(c.eof, "weir kept the target connection: {c:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = format!("http://127.0.0.1:{port}/next-h2");
    let (status, text) = curl(&["--http2-prior-knowledge", &url]).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("\r\n\r\nok"), "{text}");
    let c = t.conn_of("/next-h2", false).await;
    assert!(!c.paths.iter().any(|p| p == "/switch-h2"), "{c:?}");
    w.stop().await;
}

/// An HTTP/2 stream cancelled while weir waits for the response (the client went away):
/// weir reads the response away to pool the connection, but not past a 101 (on the old code
/// it skipped the 101 as interim, took the target's next bytes for the response and pooled
/// the connection, which the next request then reused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_stream_answered_with_101_is_not_pooled() {
    let t = switcher().await;
    let port = free_port();
    let w = start(&config(port, t.port, ""));
    // hyper's HTTP/2 client; the request is dropped after 100 ms: RST_STREAM (CANCEL).
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://127.0.0.1:{port}/late-switch"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let early = tokio::time::timeout(Duration::from_millis(100), send.send_request(req)).await;
    assert!(early.is_err(), "the target answers after 300 ms: {early:?}");
    let c = t.conn_of("/late-switch", true).await;
    assert!(c.eof, "weir kept the target connection: {c:?}");
    let url = format!("http://127.0.0.1:{port}/next-late");
    let (status, text) = curl(&["--http2-prior-knowledge", &url]).await;
    assert_eq!(status, 200, "{text}");
    let c = t.conn_of("/next-late", false).await;
    assert!(!c.paths.iter().any(|p| p == "/late-switch"), "{c:?}");
    drop(send);
    conn.abort();
    w.stop().await;
}

/// A WebSocket handshake the target refuses (426): relayed as a response; the client's next
/// bytes are a request weir routes (the rule answers `/admin`, not the target: no tunnel), and
/// the target connection is closed after the response, never pooled (on the old code it went
/// back to the pool, where the next request was written to a target that may still expect
/// WebSocket frames).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upgrade_is_a_response_not_a_tunnel() {
    let t = switcher().await;
    let port = free_port();
    let w = start(&config(port, t.port, ""));
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(
        b"GET /refuse HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 99\r\n\r\n",
    )
    .await
    .unwrap();
    let (status, text) = read_response(&mut s).await;
    assert_eq!(status, 426, "{text}");
    assert!(text.ends_with("\r\n\r\nnope"), "{text}");
    s.write_all(b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (status, text) = read_response(&mut s).await;
    assert_eq!(status, 403, "weir routed the next request itself: {text}");
    let c = t.conn_of("/refuse", true).await;
    assert!(c.eof, "the target connection was kept: {c:?}");
    assert_eq!(c.paths, ["/refuse"]);
    // The next request (same client, so reuse would be allowed even in `safe` mode) goes on
    // another connection.
    s.write_all(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (status, text) = read_response(&mut s).await;
    assert_eq!(status, 200, "{text}");
    let c = t.conn_of("/after", false).await;
    assert_eq!(c.paths, ["/after"]);
    drop(s);
    w.stop().await;
}

/// Heads weir cannot parse get their status and exactly one access-log line each, as ALB logs
/// them: the status, `-` for the unknown request and target, the reason; a malformed but
/// complete head classified as ALB's classifier does, one too long or too slow `-`. Counted as
/// ELB 4XX.
/// (On the old code: no line.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_heads_are_access_logged() {
    let t = switcher().await;
    let port = free_port();
    let log = std::env::temp_dir().join(format!("weir-l7-unparsed-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let extra = format!(
        "access_logs.enabled = true\naccess_logs.path = \"{}\"\nheader_read_timeout_seconds = 1",
        log.display()
    );
    let w = start(&config(port, t.port, &extra));
    let (status, text) = ask(port, "GET /slow HTTP/1.1\r\nHost: a\r\n").await;
    assert_eq!(status, 408, "a head never completed: {text}");
    let (status, text) = ask(port, "GARBAGE\r\n\r\n").await;
    assert_eq!(status, 400, "{text}");
    let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(70_000));
    let (status, text) = ask(port, &long).await;
    assert_eq!(status, 414, "{text}");
    let (status, _) = ask(port, "GET /fine HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(status, 200);
    // Counted and logged once every connection has ended, not when its response arrived: a
    // connection counts its desync class and writes its line after the response is written
    // (a client read its 400 before the count in 14 % of 3000 tries).
    let metrics = w.metrics.clone();
    w.stop().await;
    let m = metrics.snapshot();
    assert_eq!(m.elb_status_codes.get(&400), Some(&1), "{m:?}");
    assert_eq!(m.elb_status_codes.get(&414), Some(&1), "{m:?}");
    assert_eq!(m.elb_status_codes.get(&408), Some(&1), "{m:?}");
    assert_eq!(m.desync_non_compliant, 1, "GARBAGE is non-compliant: {m:?}");
    let lines = log_lines(&log, 4).await;
    let _ = std::fs::remove_file(&log);
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let bad: Vec<&&str> = lines.iter().filter(|l| l.contains(" 400 ")).collect();
    assert_eq!(bad.len(), 1, "{lines:#?}");
    let bad = bad[0];
    let fields: Vec<&str> = bad.split(' ').collect();
    // type time elb client target rpt tpt respt elb_status target_status received sent
    assert_eq!(fields[0], "http", "{bad}");
    assert_eq!(fields[4], "-", "no target: {bad}");
    assert_eq!(&fields[5..10], ["-1", "-1", "-1", "400", "-"], "{bad}");
    assert_eq!(fields[10], "11", "received bytes: {bad}");
    assert!(
        bad.contains(&format!("\"- http://127.0.0.1:{port}- \"")),
        "{bad}"
    );
    assert!(bad.contains("\"MalformedRequest\""), "{bad}");
    assert!(
        bad.ends_with("\"Ambiguous\" \"MissingUri\""),
        "classified by http_desync_guardian: {bad}"
    );
    let long = lines
        .iter()
        .find(|l| l.contains(" 414 "))
        .expect("414 logged");
    assert!(long.contains("\"RequestLineTooLong\""), "{long}");
    assert!(long.ends_with("\"-\" \"-\""), "not classified: {long}");
    let slow = lines
        .iter()
        .find(|l| l.contains(" 408 "))
        .expect("408 logged");
    assert!(slow.contains("\"RequestHeaderTimeout\""), "{slow}");
}
