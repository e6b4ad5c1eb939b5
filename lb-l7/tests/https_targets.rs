//! HTTPS target groups (`protocol = "HTTPS"`): weir speaks TLS to its targets (their
//! certificates not verified, as on ALB), keeps those connections in its pool, notices a
//! target that closed an idle one (through the TLS layer), and answers 502 when the target does
//! not speak TLS, while a record without data on an idle connection (a TLS 1.3 key update, as
//! a server sends to roll its keys before a long idle period) does not retire it. Real TLS
//! backends (rustls + hyper, TLS 1.3 with session tickets, and a raw rustls responder).

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lb_l7::config::{AlpnPolicy, Certificate};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A target's TLS side: a certificate `name` from the test CA (TLS 1.2/1.3, session tickets,
/// ALPN http/1.1), and a listener on a free port.
async fn tls_listener(pki: &TestPki, name: &str) -> (tokio_rustls::TlsAcceptor, TcpListener, u16) {
    let (cert, key) = pki.leaf(name, &[&format!("{name}.test")]);
    let certs = [Certificate {
        certificate_file: cert.into(),
        private_key_file: key.into(),
    }];
    let ticketer = std::sync::Arc::new(lb_l7::tls::SharedTicketer::new(&[3u8; 32]));
    let (cfg, _) =
        lb_l7::tls::server_config(&certs, AlpnPolicy::HTTP1Only, false, ticketer).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (tokio_rustls::TlsAcceptor::from(cfg), l, port)
}

struct TlsBackend {
    port: u16,
    conns: Arc<AtomicUsize>,
    hits: Arc<AtomicUsize>,
    _pki: TestPki,
}

/// An HTTPS backend (self-signed by the test CA, TLS 1.2/1.3 with session tickets) answering
/// `x-backend: tls`; it closes a connection after `idle_close` (like a target's keep-alive
/// timeout) when given.
async fn tls_backend(tag: &str, idle_close: Option<Duration>) -> TlsBackend {
    // Each test its own directory: tests run in parallel in one process.
    let pki = TestPki::new(tag);
    let (acceptor, l, port) = tls_listener(&pki, "target").await;
    let (conns, hits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c, h) = (conns.clone(), hits.clone());
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            c.fetch_add(1, SeqCst);
            let (acceptor, h) = (acceptor.clone(), h.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    h.fetch_add(1, SeqCst);
                    let line = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("x-backend", "tls")
                                .body(Full::new(Bytes::from(line)))
                                .unwrap(),
                        )
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc);
                match idle_close {
                    None => {
                        let _ = conn.await;
                    }
                    Some(d) => {
                        let _ = tokio::time::timeout(d, conn).await;
                    }
                }
            });
        }
    });
    TlsBackend {
        port,
        conns,
        hits,
        _pki: pki,
    }
}

fn config(port: u16, target: u16) -> String {
    format!(
        r#"
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "secure" }}
[[target_group]]
name = "secure"
protocol = "HTTPS"
target = [{{ id = "127.0.0.1", port = {target} }}]
"#
    )
}

/// Sends `n` requests one after another on one keep-alive connection; returns the responses.
async fn keep_alive_requests(port: u16, n: usize, gap: Duration) -> Vec<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        s.write_all(format!("GET /r{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // Read until the head and its Content-Length body are in.
        loop {
            let k = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
                .await
                .expect("a response within 5 s")
                .unwrap();
            assert!(k > 0, "weir closed the connection");
            buf.extend_from_slice(&chunk[..k]);
            let text = String::from_utf8_lossy(&buf);
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
        }
        out.push(String::from_utf8_lossy(&buf).into_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_target_connections_are_pooled() {
    let b = tls_backend("https-pooled", None).await;
    let port = free_port();
    let w = start(&config(port, b.port));
    let responses = keep_alive_requests(port, 5, Duration::from_millis(50)).await;
    for (i, r) in responses.iter().enumerate() {
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("x-backend: tls"), "{r}");
        assert!(r.contains(&format!("GET /r{i} HTTP/1.1")), "{r}");
    }
    assert_eq!(b.hits.load(SeqCst), 5);
    assert_eq!(
        b.conns.load(SeqCst),
        1,
        "one TLS connection, reused for every request after the first"
    );
    // An HTTP/2 client is forwarded over the same pooled TLS connection.
    let (code, text) = curl(&[
        "--http2-prior-knowledge",
        &format!("http://127.0.0.1:{port}/h2"),
    ])
    .await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("GET /h2 HTTP/1.1"), "{text}");
    w.stop().await;
}

/// The seed's 502 story over TLS: the target closes idle connections after 300 ms; requests
/// 500 ms apart must not meet a closed pooled connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_target_closing_idle_connections_costs_no_errors() {
    let b = tls_backend("https-idle-close", Some(Duration::from_millis(300))).await;
    let port = free_port();
    let w = start(&config(port, b.port));
    let responses = keep_alive_requests(port, 4, Duration::from_millis(500)).await;
    for r in &responses {
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    assert_eq!(b.hits.load(SeqCst), 4);
    assert_eq!(
        b.conns.load(SeqCst),
        4,
        "a new connection after each idle close"
    );
    w.stop().await;
}

/// An HTTPS group whose target speaks plain HTTP: the handshake fails, 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_target_in_an_https_group_is_502() {
    let plain = backend("plain").await;
    let port = free_port();
    let w = start(&config(port, plain.addr.port()));
    let (code, text) = curl(&[&format!("http://127.0.0.1:{port}/")]).await;
    assert_eq!(code, 502, "{text}");
    assert_eq!(plain.hits.load(SeqCst), 0, "no request reached it");
    w.stop().await;
}

/// A TLS 1.3 target that, 100 ms after each response, rolls its keys (a KeyUpdate record on
/// the idle connection, rustls's `refresh_traffic_keys`); answers `200 ok` to every request.
async fn key_updating_backend(pki: &TestPki) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (acceptor, l, port) = tls_listener(pki, "ku").await;
    let (conns, updates) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c, u) = (conns.clone(), updates.clone());
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            c.fetch_add(1, SeqCst);
            let (acceptor, u) = (acceptor.clone(), u.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                loop {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    buf.drain(..end + 4);
                    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nx-backend: ku\r\n\r\nok";
                    if tls.write_all(resp).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if tls.get_mut().1.refresh_traffic_keys().is_ok() && tls.flush().await.is_ok() {
                        u.fetch_add(1, SeqCst);
                    }
                }
            });
        }
    });
    (port, conns, updates)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_update_on_an_idle_target_connection_keeps_it_pooled() {
    let pki = TestPki::new("https-ku");
    let (target, conns, updates) = key_updating_backend(&pki).await;
    let port = free_port();
    let w = start(&config(port, target));
    let responses = keep_alive_requests(port, 3, Duration::from_millis(400)).await;
    for r in &responses {
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.ends_with("ok"), "{r}");
    }
    assert!(
        updates.load(SeqCst) >= 2,
        "the target rolled its keys while the connection sat in the pool"
    );
    assert_eq!(
        conns.load(SeqCst),
        1,
        "a key update is not a close: the pooled connection was used again"
    );
    w.stop().await;
}
