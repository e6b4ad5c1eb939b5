//! The Host weir generates for a request that came without one (an HTTP/1.0 request, an
//! HTTP/2 request without `:authority` or `host`): it leaves as HTTP/1.1, which must have
//! one, and names the address the client connected to. On a listener bound to a wildcard
//! address (0.0.0.0, ::, the default) that is the connection's own local address, not the
//! listener's configured one: `0.0.0.0:PORT` (what the code before sent) means nothing to a
//! target. Through a real worker and a backend that echoes the headers it got, over plain
//! TCP, TLS, a connection resumed from the parking lot, and HTTP/2 (h2c, raw frames) with
//! either engine.

mod common;
use common::*;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "common/h2frames.rs"]
mod h2frames;
use h2frames::{END_HEADERS, END_STREAM, H2, headers};

const LIMIT: Duration = Duration::from_secs(10);

/// One plain listener on `address`:`port` forwarding to `target`, `lb_extra` under
/// `[load_balancer]`.
fn config(address: &str, port: u16, target: u16, lb_extra: &str) -> String {
    format!(
        r#"
[load_balancer]
{lb_extra}
[[listener]]
address = "{address}"
port = {port}
default_action = {{ type = "forward", target_group = "t" }}
[[target_group]]
name = "t"
target = [{{ id = "127.0.0.1", port = {target} }}]
"#
    )
}

/// The `host` line the backend echoed, or a panic naming what came back.
fn echoed_host(out: &str) -> String {
    assert!(out.starts_with("HTTP/1."), "no response: {out:?}");
    assert!(out.contains(" 200 "), "not a 200: {out}");
    out.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or_else(|| panic!("the target saw no Host: {out}"))
        .to_string()
}

/// A Host-less HTTP/1.0 request over `s`; the Host the target saw.
async fn http10<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> String {
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, s.read_to_end(&mut out))
        .await
        .expect("the response within the limit")
        .ok();
    echoed_host(&String::from_utf8_lossy(&out))
}

async fn http10_to(addr: (&str, u16)) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    http10(&mut s).await
}

/// A listener on 0.0.0.0: the Host names 127.0.0.1, where the client connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_request_on_a_wildcard_ipv4_listener_names_the_connections_address() {
    let b = backend("a").await;
    let port = free_port();
    let w = start(&config("0.0.0.0", port, b.addr.port(), ""));
    assert_eq!(
        http10_to(("127.0.0.1", port)).await,
        format!("127.0.0.1:{port}")
    );
    w.stop().await;
}

/// A listener on :: (dual-stack): an IPv4 client's connection is to 127.0.0.1 (its IPv4-mapped
/// local address written as IPv4), an IPv6 client's to [::1].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_request_on_a_wildcard_ipv6_listener_names_the_connections_address() {
    let b = backend("a").await;
    let port = free_port();
    let w = start(&config("::", port, b.addr.port(), ""));
    assert_eq!(
        http10_to(("127.0.0.1", port)).await,
        format!("127.0.0.1:{port}")
    );
    assert_eq!(http10_to(("::1", port)).await, format!("[::1]:{port}"));
    w.stop().await;
}

/// On port 80 the Host has no port (the scheme's default), as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_port_80_the_generated_host_has_no_port() {
    let b = backend("a").await;
    // Port 80 may be taken by something on this host: skipped then.
    if std::net::TcpListener::bind("0.0.0.0:80").is_err() {
        eprintln!("port 80 is taken here: skipped");
        return;
    }
    let w = start(&config("0.0.0.0", 80, b.addr.port(), ""));
    assert_eq!(http10_to(("127.0.0.1", 80)).await, "127.0.0.1");
    w.stop().await;
}

/// HTTPS on 0.0.0.0: the TLS connection's address, too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_request_over_tls_on_a_wildcard_listener_names_the_connections_address() {
    let b = backend("a").await;
    let pki = TestPki::new("generated-host");
    let (cert, key) = pki.leaf("srv", &["127.0.0.1"]);
    let port = free_port();
    let w = start(&format!(
        r#"
[[listener]]
address = "0.0.0.0"
port = {port}
protocol = "HTTPS"
certificate = [{{ certificate_file = "{cert}", private_key_file = "{key}" }}]
default_action = {{ type = "forward", target_group = "t" }}
[[target_group]]
name = "t"
target = [{{ id = "127.0.0.1", port = {} }}]
"#,
        b.addr.port()
    ));
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&pki.ca).unwrap();
    for c in
        <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(
            &pem,
        )
    {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(http10(&mut tls).await, format!("127.0.0.1:{port}"));
    w.stop().await;
}

/// A keep-alive connection parked between its requests (`accept::park`) is a new task at its
/// next request: its address is asked again there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_parked_connection_names_the_connections_address() {
    let b = backend("a").await;
    let port = free_port();
    let w = start(&config("0.0.0.0", port, b.addr.port(), ""));
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n";
    for i in 0..2 {
        if i == 1 {
            let until = tokio::time::Instant::now() + LIMIT;
            while w.metrics.parked() != 1 {
                assert!(tokio::time::Instant::now() < until, "never parked");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        s.write_all(req).await.unwrap();
        let (head, body) = one_response(&mut s).await;
        assert!(head.contains("connection: keep-alive"), "{head}");
        assert_eq!(
            echoed_host(&format!("{head}\r\n\r\n{body}")),
            format!("127.0.0.1:{port}")
        );
    }
    w.stop().await;
}

/// One response with a Content-Length: (head, body).
async fn one_response(c: &mut TcpStream) -> (String, String) {
    let (head, body, _) = content_length_response(c, LIMIT).await;
    (head, body)
}

/// RFC 9113 §8.3.1 lets an HTTP/2 client omit `:authority` (and send no `host`): such a
/// request gets the same generated Host on either engine.
async fn h2_without_authority(engine: &str) {
    let b = backend("a").await;
    let port = free_port();
    let w = start(&config(
        "0.0.0.0",
        port,
        b.addr.port(),
        &format!("http2_engine = \"{engine}\""),
    ));
    let mut h = H2::connect(port, &[]).await;
    let fields = [(":method", "GET"), (":scheme", "http"), (":path", "/")];
    h.send(&headers(1, &fields, END_HEADERS | END_STREAM))
        .await
        .unwrap();
    let body = h
        .expect_response(1, LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{engine}: {e}"));
    let host = body.lines().find_map(|l| l.strip_prefix("host: "));
    assert_eq!(
        host,
        Some(format!("127.0.0.1:{port}").as_str()),
        "{engine}: {body}"
    );
    drop(h);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_request_without_authority_on_a_wildcard_listener_weir_engine() {
    h2_without_authority("weir").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_request_without_authority_on_a_wildcard_listener_hyper_engine() {
    h2_without_authority("hyper").await;
}
