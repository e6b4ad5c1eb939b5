//! Malformed and hostile requests: the documented status, the connection closed, nothing
//! forwarded, and the worker still serves afterwards.

mod common;
use common::*;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

fn status_of(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_documented_status_and_close() {
    let b = backend("b").await;
    let port = free_port();
    let w = start(&format!(
        r#"
[load_balancer]
header_read_timeout_seconds = 2
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "b" }}
[[target_group]]
name = "b"
target = [{{ id = "127.0.0.1", port = {} }}]
"#,
        b.addr.port()
    ));
    let big = "a".repeat(20 * 1024);
    let huge: String = (0..12)
        .map(|i| format!("X-H{i}: {}\r\n", "b".repeat(8000)))
        .collect();
    let xff = vec!["10.0.0.1"; 31].join(", ");
    // (request bytes, expected status, connection must be closed)
    let cases: Vec<(String, u16, bool)> = vec![
        ("GARBAGE\r\n\r\n".into(), 400, true),
        ("GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n".into(), 400, true),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n".into(),
            400,
            true,
        ),
        // Content-Length with Transfer-Encoding is Ambiguous (ALB's tiers): defensive forwards it
        // and closes both connections (tests/desync.rs), so it is not in this table any more.
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"
                .into(),
            400,
            true,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
                .into(),
            501,
            true,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n".into(),
            400,
            true,
        ),
        ("GET / HTTP/1.1\r\n\r\n".into(), 400, true),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
            400,
            true,
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n"),
            431,
            true,
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: a\r\n{huge}\r\n"),
            431,
            true,
        ),
        (format!("GET /{big} HTTP/1.1\r\nHost: a\r\n\r\n"), 414, true),
        (
            format!("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: {xff}\r\n\r\n"),
            463,
            false,
        ),
    ];
    for (i, (req, want, must_close)) in cases.iter().enumerate() {
        let (resp, closed) = raw(port, req.as_bytes(), Duration::from_secs(3)).await;
        assert_eq!(
            status_of(&resp),
            *want,
            "case {i}: {:?} → {resp:?}",
            &req[..req.len().min(80)]
        );
        if *must_close {
            assert!(closed, "case {i}: connection left open");
        }
    }
    assert_eq!(b.hits.load(SeqCst), 0, "a bad request was forwarded");

    // Slowloris: a head trickling in gets 408 once the header read timeout (2 s) passes.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let t0 = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").await.unwrap();
    let trickle = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if s.write_all(b"X-Slow: 1\r\n").await.is_err() {
                break;
            }
        }
    };
    trickle.await;
    let (resp, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    assert_eq!(status_of(&resp), 408, "{resp:?}");
    assert!(closed);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(12),
        "{took:?}"
    );
    assert_eq!(b.hits.load(SeqCst), 0);

    // Pipelined garbage after a good request on one connection: the good one is answered.
    let (resp, _) = raw(
        port,
        b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\nBROKEN\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert!(resp.contains("HTTP/1.1 400"), "{resp}");
    assert_eq!(b.hits.load(SeqCst), 1);

    let m = w.metrics.snapshot();
    let c = |code: u16| m.elb_status_codes.get(&code).copied().unwrap_or(0);
    assert_eq!(
        (c(408), c(414), c(463), c(501)),
        (1, 1, 1, 1),
        "{:?}",
        m.elb_status_codes
    );
    // hyper's own answers to unparsable requests are counted too: every 400 above (8 with the
    // pipelined one) and both 431s.
    assert_eq!((c(400), c(431)), (8, 2), "{:?}", m.elb_status_codes);
    assert!(m.desync_non_compliant >= 2, "{m:?}");
    w.stop().await;
}
