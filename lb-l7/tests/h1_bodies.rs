//! weir's HTTP/1.1 engine with bodies and connection reuse: chunked requests and responses,
//! HTTP/1.0 clients, `Expect: 100-continue` (curl), pipelining, and a body weir drains when it
//! answers itself. Real sockets, a real hyper backend and a raw chunked backend.

mod common;

use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn config(port: u16, target: u16) -> String {
    format!(
        r#"
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "b" }}
[[listener.rule]]
priority = 1
condition = [{{ field = "path-pattern", values = ["/fixed"] }}]
action = {{ type = "fixed-response", status_code = 202, message_body = "fixed" }}
[[target_group]]
name = "b"
target = [{{ id = "127.0.0.1", port = {target} }}]
"#
    )
}

/// Sends `bytes` on one connection and reads until weir closes it.
async fn exchange(port: u16, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let (text, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(
        closed,
        "weir did not close after `Connection: close`: {text}"
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_request_body_and_pipelining() {
    let b = backend("b").await;
    let port = free_port();
    let w = start(&config(port, b.addr.port()));
    let text = exchange(
        port,
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n\
          GET /second HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /fixed HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789\
          GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let responses: Vec<&str> = text.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(responses.len(), 4, "four responses in order: {text}");
    assert!(responses[0].starts_with("200"), "{}", responses[0]);
    assert!(responses[0].contains("POST /up HTTP/1.1"));
    assert!(responses[0].contains("transfer-encoding: chunked"));
    assert!(responses[0].contains("body-bytes=11"), "{}", responses[0]);
    assert!(responses[1].contains("GET /second"));
    // weir answered the fixed response itself and read the 10-byte body away.
    assert!(responses[2].starts_with("202"), "{}", responses[2]);
    assert!(responses[2].ends_with("fixed"), "{}", responses[2]);
    assert!(responses[3].contains("GET /last"));
    assert!(
        responses[3]
            .to_ascii_lowercase()
            .contains("connection: close")
    );
    assert_eq!(b.hits.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(
        b.conns.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one pooled connection"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_upload_with_expect_100_continue() {
    let b = backend("b").await;
    let port = free_port();
    let w = start(&config(port, b.addr.port()));
    let dir = std::env::temp_dir().join(format!("weir-upload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("body.bin");
    std::fs::write(&file, vec![b'x'; 3_000_000]).unwrap();
    let (ok, out, err) = run(
        "curl",
        &[
            "-sv",
            "--max-time",
            "20",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("http://127.0.0.1:{port}/upload"),
        ],
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "curl failed: {err}");
    assert!(err.contains("Expect: 100-continue"), "curl asked: {err}");
    assert!(
        err.contains("HTTP/1.1 100 Continue"),
        "weir said 100: {err}"
    );
    assert!(out.contains("body-bytes=3000000"), "{out}");
    assert!(!out.contains("expect:"), "Expect is not forwarded: {out}");
    w.stop().await;
}

/// A target that answers every request with a chunked body (written in one piece).
async fn chunked_backend() -> u16 {
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
                        let resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
                            Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
                        if s.write_all(resp).await.is_err() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_response_relayed_or_dechunked_for_http10() {
    let target = chunked_backend().await;
    let port = free_port();
    let w = start(&config(port, target));
    // HTTP/1.1: relayed chunked, the connection kept for a second request.
    let text = exchange(
        port,
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    // Re-encoded by weir (validated, one chunk per read), not relayed as the target wrote it.
    assert_eq!(
        text.matches("\r\n\r\nc\r\nhello, world\r\n0\r\n\r\n")
            .count(),
        2,
        "{text}"
    );
    assert!(
        text.to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
    );
    // HTTP/1.0: the data only, delimited by the close.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET /c HTTP/1.0\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (text, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "{text}");
    assert!(text.ends_with("\r\n\r\nhello, world"), "{text:?}");
    assert!(
        !text.to_ascii_lowercase().contains("transfer-encoding"),
        "{text}"
    );
    w.stop().await;
}

/// `max_request_body_bytes`: a declared length over it is refused before anything reaches a
/// target; a chunked (HTTP/1.1) or length-less (HTTP/2) body is cut off when it goes over;
/// 413 either way, the client connection closed (HTTP/1.1); a body at the limit goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_body_limit_413() {
    use std::sync::atomic::Ordering::SeqCst;
    let b = backend("b").await;
    let port = free_port();
    let toml = format!(
        "[load_balancer]\nmax_request_body_bytes = 1000\n{}",
        config(port, b.addr.port())
    );
    let w = start(&toml);
    let limit = Duration::from_secs(5);

    // A declared length over the limit: 413 at once, the connection closed, nothing forwarded.
    let (text, closed) = raw(
        port,
        b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n",
        limit,
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(closed, "closed after 413: {text}");
    assert_eq!(b.hits.load(SeqCst), 0, "nothing reached the target");

    // At the limit: forwarded whole.
    let mut at =
        b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
            .to_vec();
    at.extend_from_slice(&[b'x'; 1000]);
    let (text, _) = raw(port, &at, limit).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("body-bytes=1000"), "{text}");

    // Chunked, 600 + 600 bytes: cut off at the second chunk.
    let mut chunked =
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..2 {
        chunked.extend_from_slice(b"258\r\n");
        chunked.extend_from_slice(&[b'y'; 600]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (text, closed) = raw(port, &chunked, limit).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(closed, "closed after 413: {text}");
    assert!(
        !text.contains("body-bytes"),
        "no target answer relayed: {text}"
    );

    // HTTP/2 (h2c), a declared length over the limit, then a body without a length.
    let url = format!("http://127.0.0.1:{port}/up");
    let body = vec![b'z'; 1500];
    let (code, _) = curl(&[
        "--http2-prior-knowledge",
        "--data-binary",
        &String::from_utf8_lossy(&body),
        &url,
    ])
    .await;
    assert_eq!(code, 413, "h2 with content-length 1500");
    let (_, out, err) = run_stdin(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "-T",
            "-",
            &url,
        ],
        Some(&body),
    )
    .await;
    assert_eq!(out.trim(), "413 2", "h2 streamed body: {out} {err}");
    let (code, text) = curl(&["--http2-prior-knowledge", "--data-binary", "small", &url]).await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("body-bytes=5"), "{text}");
    w.stop().await;
}

/// `Expect: 100-continue` on a request weir answers itself (here a fixed response): the answer
/// comes at once, and the connection closes after it (the body the client held back is never
/// read). weir drained the body first, so such a client waited its own expect timeout — or,
/// waiting for the 100, weir's idle timeout (60 s) — for every fixed response, redirect, 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_on_weirs_own_answer_is_answered_at_once() {
    let b = backend("b").await;
    let port = free_port();
    let w = start(&config(port, b.addr.port()));
    let (text, closed) = raw(
        port,
        b"POST /fixed HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(
        text.starts_with("HTTP/1.1 202 "),
        "answered at once: {text:?}"
    );
    assert!(text.ends_with("fixed"), "{text}");
    assert!(closed, "closed after the answer: {text}");
    // A client that sent its body anyway keeps its connection (the body is drained).
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(
        b"POST /fixed HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello\
          GET /fixed HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let (text, _) = read_all(&mut s, Duration::from_secs(3)).await;
    assert_eq!(text.matches("HTTP/1.1 202 ").count(), 2, "{text}");
    assert_eq!(b.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    w.stop().await;
}

/// An HTTP/1.0 client's `Expect: 100-continue` is ignored (RFC 9110 §10.1.1): no 100 before
/// the response (§15.2: no 1xx to an HTTP/1.0 client; it could take it for the response).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_client_gets_no_100_continue() {
    let b = backend("b").await;
    let port = free_port();
    let w = start(&config(port, b.addr.port()));
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(
        b"POST /upload HTTP/1.0\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(b"hello").await.unwrap();
    let (text, _) = read_all(&mut s, Duration::from_secs(3)).await;
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.contains("body-bytes=5"), "{text}");
    assert!(!text.contains("expect:"), "Expect is not passed on: {text}");
    w.stop().await;
}
