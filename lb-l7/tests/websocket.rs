//! A WebSocket upgrade tunnelled through weir to an echo target; the tunnel closes after its
//! own idle timeout.

mod common;
use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A masked client text frame (RFC 6455 §5.2), payload < 126 bytes.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    let mut f = vec![0x81, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_is_tunnelled() {
    let be = backend("ws").await;
    let port = free_port();
    let w = start(&format!(
        r#"
[load_balancer]
websocket_idle_timeout_seconds = 2
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "ws" }}
[[target_group]]
name = "ws"
target = [{{ id = "127.0.0.1", port = {} }}]
"#,
        be.addr.port()
    ));
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut byte))
            .await
            .expect("101 in time")
            .unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );

    for msg in [&b"hello"[..], b"second message", &[0x42; 100]] {
        let f = frame(msg);
        s.write_all(&f).await.unwrap();
        let mut back = vec![0u8; f.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(back, f);
    }
    // Nothing moves: the tunnel's own idle timeout (2 s) closes it.
    let t0 = Instant::now();
    let (_, closed) = read_all(&mut s, Duration::from_secs(8)).await;
    assert!(closed);
    assert!(
        t0.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        t0.elapsed()
    );
    w.stop().await;
}
