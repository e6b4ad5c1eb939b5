//! The lingering close of HTTP/1.1 connections (`h1::server`'s close over `lb_l7::linger`):
//! through a real worker and a real backend, a client with a small receive buffer (4 KiB asked)
//! sends a `connection: close` request whose response (> 8 KiB) it reads late and slowly,
//! with a pipelined request behind it and more bytes every 10 ms. The response is still in
//! weir's send queue when it closes: closed at once (the code before, which only read what
//! was queued at that moment), the client's later bytes meet a reset that drops it, and the
//! client reads a few KiB and then ECONNRESET. With the linger it reads the whole response
//! and then EOF. A client that keeps sending is still closed at the linger's bound.

mod common;
use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn connection_close_response_survives_a_client_still_sending() {
    let be = backend("h1linger").await;
    let w = start(&one_target_config(free_port(), be.addr.port(), "", "", ""));
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    let c = s.connect(([127, 0, 0, 1], w.port).into()).await.unwrap();
    let (mut r, mut wr) = c.into_split();
    let pad = "p".repeat(8 * 1024);
    let first = format!(
        "GET /last HTTP/1.1\r\nhost: a\r\nconnection: close\r\nx-pad: {pad}\r\n\r\nGET /pipelined HTTP/1.1\r\nhost: a\r\n\r\n"
    );
    wr.write_all(first.as_bytes()).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let sender = {
        let (stop, failed) = (stop.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(SeqCst) {
                if wr
                    .write_all(b"GET /more HTTP/1.1\r\nhost: a\r\n\r\n")
                    .await
                    .is_err()
                {
                    *failed.lock().unwrap() = Some(Instant::now());
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            drop(wr);
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Slowly: 1 KiB a millisecond.
    let mut got = Vec::new();
    let end = loop {
        let mut tmp = [0u8; 1024];
        match tokio::time::timeout(Duration::from_secs(5), r.read(&mut tmp)).await {
            Err(_) => break "timeout".to_string(),
            Ok(Ok(0)) => break "eof".to_string(),
            Ok(Ok(n)) => got.extend_from_slice(&tmp[..n]),
            Ok(Err(e)) => break e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let eof = Instant::now();
    let text = String::from_utf8_lossy(&got);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| {
            panic!(
                "a response head with content-length; got {} bytes, then {end}",
                got.len()
            )
        });
    eprintln!(
        "read {} bytes (body {} of {length}), then {end}",
        got.len(),
        body.len()
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(length > 8 * 1024, "{length}");
    assert_eq!(body.len(), length, "the whole response, then {end}");
    assert!(body.contains("GET /last "), "the first request's response");
    assert_eq!(end, "eof", "EOF after the response, not a reset");
    // Still sending: closed (reset) at the linger's bound, 2 s after its start.
    let closed = loop {
        if let Some(t) = *failed.lock().unwrap() {
            break t.saturating_duration_since(eof);
        }
        assert!(
            eof.elapsed() < Duration::from_secs(6),
            "still open 6 s after the EOF"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("closed {closed:?} after the client's EOF");
    assert!(closed < Duration::from_millis(2500), "{closed:?}");
    stop.store(true, SeqCst);
    let _ = sender.await;
    w.stop().await;
}
