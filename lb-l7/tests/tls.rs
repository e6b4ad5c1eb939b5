//! TLS termination with real clients: SNI with two certificates (curl verifies each against a
//! test CA), ALPN and protocol versions (openssl s_client), session resumption across workers
//! sharing a ticket key, HTTP/2 load with h2load to an nginx target.

mod common;
use common::*;
use lb_l7::WorkerOptions;
use std::sync::atomic::Ordering::SeqCst;

fn https_config(
    port: u16,
    pki: &TestPki,
    a: &(String, String),
    b: &(String, String),
    target: u16,
) -> String {
    let _ = pki;
    format!(
        r#"
[[listener]]
address = "127.0.0.1"
port = {port}
protocol = "HTTPS"
certificate = [
  {{ certificate_file = "{}", private_key_file = "{}" }},
  {{ certificate_file = "{}", private_key_file = "{}" }},
]
default_action = {{ type = "forward", target_group = "t" }}
[[target_group]]
name = "t"
target = [{{ id = "127.0.0.1", port = {target} }}]
"#,
        a.0, a.1, b.0, b.1
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_alpn_versions_and_resumption_across_workers() {
    let pki = TestPki::new("tls");
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test", "*.b.test"]);
    let be = backend("be").await;
    let key = [7u8; 32];
    let opts = |index| WorkerOptions {
        index,
        ticket_key: Some(key),
        ..Default::default()
    };
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let w1 = start_with(&https_config(p1, &pki, &a, &b, be.addr.port()), opts(0));
    let w2 = start_with(&https_config(p2, &pki, &a, &b, be.addr.port()), opts(1));
    let w3 = start_with(
        &https_config(p3, &pki, &a, &b, be.addr.port()),
        WorkerOptions {
            index: 2,
            ticket_key: Some([9u8; 32]),
            ..Default::default()
        },
    );
    let ca = pki.ca.display().to_string();

    // SNI: each name verifies against its own certificate; HTTP/2 by ALPN, forwarded as 1.1.
    for (name, version) in [
        ("a.test", "HTTP/2 200"),
        ("b.test", "HTTP/2 200"),
        ("www.b.test", "HTTP/2 200"),
    ] {
        let (code, text) = curl(&[
            "--cacert",
            &ca,
            "--resolve",
            &format!("{name}:{p1}:127.0.0.1"),
            &format!("https://{name}:{p1}/sni"),
        ])
        .await;
        assert_eq!(code, 200, "{name}: {text}");
        assert!(text.starts_with(version), "{name}: {text}");
        assert!(
            text.contains("GET /sni HTTP/1.1") && text.contains("x-forwarded-proto: https"),
            "{text}"
        );
    }
    let (code, text) = curl(&[
        "--http1.1",
        "--cacert",
        &ca,
        "--resolve",
        &format!("a.test:{p1}:127.0.0.1"),
        &format!("https://a.test:{p1}/"),
    ])
    .await;
    assert_eq!(code, 200);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // An unknown name gets the default certificate (a.test): verification fails for it.
    let (code, _) = curl(&[
        "--cacert",
        &ca,
        "--resolve",
        &format!("c.test:{p1}:127.0.0.1"),
        &format!("https://c.test:{p1}/"),
    ])
    .await;
    assert_eq!(code, 0, "c.test must not verify");
    let (code, _) = curl(&[
        "-k",
        "--resolve",
        &format!("c.test:{p1}:127.0.0.1"),
        &format!("https://c.test:{p1}/"),
    ])
    .await;
    assert_eq!(code, 200);

    // openssl s_client: ALPN choices, certificate by SNI, protocol versions.
    let connect = format!("127.0.0.1:{p1}");
    let req = b"GET / HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n";
    let (_, out, _) = run_stdin(
        "openssl",
        &[
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "b.test",
            "-alpn",
            "h2,http/1.1",
        ],
        Some(b""),
    )
    .await;
    assert!(out.contains("ALPN protocol: h2"), "{out}");
    assert!(
        out.contains("CN = b.test") || out.contains("CN=b.test"),
        "{out}"
    );
    let (_, out, _) = run_stdin(
        "openssl",
        &[
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "a.test",
            "-alpn",
            "http/1.1",
        ],
        Some(req),
    )
    .await;
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    assert!(
        out.contains("CN = a.test") || out.contains("CN=a.test"),
        "{out}"
    );
    assert!(out.contains("HTTP/1.1 200"), "{out}");
    let (_, out, _) = run_stdin(
        "openssl",
        &["s_client", "-connect", &connect, "-tls1_2"],
        Some(req),
    )
    .await;
    assert!(
        out.contains("Protocol  : TLSv1.2") || out.contains("TLSv1.2"),
        "{out}"
    );
    assert!(out.contains("HTTP/1.1 200"), "{out}");
    let (_, out, _) = run_stdin(
        "openssl",
        &["s_client", "-connect", &connect, "-tls1_3"],
        Some(req),
    )
    .await;
    assert!(
        out.contains("TLSv1.3") && out.contains("HTTP/1.1 200"),
        "{out}"
    );
    let before = w1.metrics.snapshot().client_tls_negotiation_error_count;
    let (ok, out, err) = run_stdin(
        "openssl",
        &[
            "s_client",
            "-connect",
            &connect,
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ],
        Some(req),
    )
    .await;
    assert!(
        !ok || !out.contains("HTTP/1.1 200"),
        "TLS 1.1 accepted: {out}{err}"
    );
    // The failed handshake is counted once the server side gives up on it.
    for _ in 0..40 {
        if w1.metrics.snapshot().client_tls_negotiation_error_count > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        w1.metrics.snapshot().client_tls_negotiation_error_count,
        before + 1
    );

    // Resumption: a session from worker 1 resumes on worker 2 (same ticket key), not on 3.
    let dir = pki.dir.display().to_string();
    for proto in ["-tls1_3", "-tls1_2"] {
        let sess = format!("{dir}/sess{proto}.pem");
        let (_, out, _) = run_stdin(
            "openssl",
            &[
                "s_client",
                "-connect",
                &connect,
                "-servername",
                "a.test",
                proto,
                "-sess_out",
                &sess,
            ],
            Some(req),
        )
        .await;
        assert!(out.contains("New,"), "{proto}: {out}");
        let (_, out, _) = run_stdin(
            "openssl",
            &[
                "s_client",
                "-connect",
                &format!("127.0.0.1:{p2}"),
                "-servername",
                "a.test",
                proto,
                "-sess_in",
                &sess,
            ],
            Some(req),
        )
        .await;
        assert!(
            out.contains("Reused,"),
            "{proto}: not resumed on worker 2: {out}"
        );
        assert!(out.contains("HTTP/1.1 200"), "{out}");
        let (_, out, _) = run_stdin(
            "openssl",
            &[
                "s_client",
                "-connect",
                &format!("127.0.0.1:{p3}"),
                "-servername",
                "a.test",
                proto,
                "-sess_in",
                &sess,
            ],
            Some(req),
        )
        .await;
        assert!(
            out.contains("New,") && !out.contains("Reused,"),
            "{proto}: resumed with another key: {out}"
        );
    }
    assert!(be.hits.load(SeqCst) >= 10);
    w1.stop().await;
    w2.stop().await;
    w3.stop().await;
}

/// The access log's `chosen_cert` field names the certificate each connection got: by SNI,
/// and the first (default) one without SNI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_names_the_chosen_certificate() {
    let pki = TestPki::new("tls-log");
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test"]);
    let be = backend("be").await;
    let port = free_port();
    let log = std::env::temp_dir().join(format!("weir-tls-access-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let toml = format!(
        "[load_balancer]\naccess_logs.enabled = true\naccess_logs.path = \"{}\"\n{}",
        log.display(),
        https_config(port, &pki, &a, &b, be.addr.port())
    );
    let w = start(&toml);
    for name in ["a.test", "b.test"] {
        let resolve = format!("{name}:{port}:127.0.0.1");
        let (code, text) = curl(&[
            "-k",
            "--resolve",
            &resolve,
            &format!("https://{name}:{port}/"),
        ])
        .await;
        assert_eq!(code, 200, "{name}: {text}");
    }
    let (code, text) = curl(&["-k", &format!("https://127.0.0.1:{port}/")]).await;
    assert_eq!(code, 200, "no SNI: {text}");
    w.stop().await;
    let lines = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    for (domain, cert) in [("a.test", &a.0), ("b.test", &b.0), ("-", &a.0)] {
        let want = format!("\"{domain}\" \"{cert}\"");
        assert!(
            lines.lines().any(|l| l.contains(&want)),
            "no line with {want}:\n{lines}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_over_tls_to_nginx_target() {
    let pki = TestPki::new("h2load");
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test"]);
    // nginx from Debian as the target, closing idle keep-alive connections after 2 s; it
    // listens with SO_REUSEPORT, beside `free_port`'s reservation.
    let nport = free_port();
    let dir = pki.dir.display().to_string();
    std::fs::create_dir_all(format!("{dir}/nginx")).unwrap();
    let conf = format!(
        "daemon off; worker_processes 1; pid {dir}/nginx/nginx.pid; error_log {dir}/nginx/error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{ access_log off; client_body_temp_path {dir}/nginx/b; proxy_temp_path {dir}/nginx/p; fastcgi_temp_path {dir}/nginx/f; uwsgi_temp_path {dir}/nginx/u; scgi_temp_path {dir}/nginx/s;\n\
           server {{ listen 127.0.0.1:{nport} reuseport; keepalive_timeout 2s; location / {{ return 200 \"nginx\\n\"; }} }} }}\n"
    );
    let conf_path = format!("{dir}/nginx/nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut nginx = tokio::process::Command::new("nginx")
        .args(["-c", &conf_path, "-p", &format!("{dir}/nginx")])
        .kill_on_drop(true)
        .spawn()
        .expect("nginx");
    let mut up = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(("127.0.0.1", nport))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "nginx did not start");
    let port = free_port();
    let w = start(&https_config(port, &pki, &a, &b, nport));
    let (ok, out, err) = run(
        "h2load",
        &[
            "-n",
            "4000",
            "-c",
            "8",
            "-m",
            "16",
            &format!("https://127.0.0.1:{port}/"),
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("4000 succeeded, 0 failed, 0 errored"), "{out}");
    assert!(out.contains("status codes: 4000 2xx"), "{out}");
    assert!(out.contains("h2"), "{out}");
    // Let nginx close the pooled connections (2 s), then go again: still no errors.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (_, out, _) = run(
        "h2load",
        &[
            "-n",
            "1000",
            "-c",
            "4",
            "-m",
            "4",
            &format!("https://127.0.0.1:{port}/"),
        ],
    )
    .await;
    assert!(out.contains("1000 succeeded, 0 failed, 0 errored"), "{out}");
    let m = w.metrics.snapshot();
    assert_eq!(m.elb_5xx, 0, "{m:?}");
    assert!(m.upstream_connections_reused > 1000, "{m:?}");
    w.stop().await;
    // SIGTERM lets the master stop its worker too (SIGKILL would orphan the worker).
    if let Some(pid) = nginx.id() {
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), nginx.wait()).await;
}

/// A TLS client (rustls, trusting `ca`, SNI `a.test`) offering the ALPN protocols `alpn` (none
/// when empty): sends `bytes` once the handshake is done, reads until the close (or `limit`).
/// The ALPN protocol chosen and what came back; `Err`: the handshake failed (rustls's error).
async fn tls_exchange(
    port: u16,
    ca: &std::path::Path,
    alpn: &[&str],
    bytes: &[u8],
    limit: std::time::Duration,
) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut cfg = tls_client_config(ca);
    cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let chosen = s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    s.write_all(bytes).await.map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut got)).await;
    Ok((chosen, got))
}

/// ALPN decides the protocol over TLS (RFC 9113 §3.2): the HTTP/2 preface on a connection that
/// negotiated http/1.1 or nothing is an HTTP/1.1 request answered 400 (it was served HTTP/2),
/// on every policy; `HTTP2Only` refuses a client without ALPN with `no_application_protocol`
/// (it was served HTTP/1.1), counted; h2 by ALPN is served HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_policy_decides_the_protocol() {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let pki = TestPki::new("tls-alpn");
    let a = pki.leaf("a", &["a.test"]);
    let be = backend("be").await;
    let listener = |port: u16, policy: &str| {
        format!(
            r#"[[listener]]
address = "127.0.0.1"
port = {port}
protocol = "HTTPS"
alpn_policy = "{policy}"
certificate = [{{ certificate_file = "{}", private_key_file = "{}" }}]
default_action = {{ type = "forward", target_group = "t" }}
"#,
            a.0, a.1
        )
    };
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let toml = format!(
        "{}{}{}[[target_group]]\nname = \"t\"\ntarget = [{{ id = \"127.0.0.1\", port = {} }}]\n",
        listener(p1, "HTTP1Only"),
        listener(p2, "HTTP2Preferred"),
        listener(p3, "HTTP2Only"),
        be.addr.port()
    );
    let w = start(&toml);
    let ca = pki.ca.clone();
    let limit = std::time::Duration::from_secs(5);
    for (port, alpn) in [
        (p1, &["http/1.1"][..]),
        (p1, &[][..]),
        (p2, &["http/1.1"][..]),
        (p2, &[][..]),
    ] {
        let (chosen, got) = tls_exchange(port, &ca, alpn, PREFACE, limit)
            .await
            .expect("handshake");
        assert_eq!(chosen.as_deref(), alpn.first().map(|p| p.as_bytes()));
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 400"),
            "port {port}, ALPN {alpn:?}: {text:?}"
        );
    }
    // curl offers h2 and http/1.1: each policy's choice.
    let ca_s = ca.display().to_string();
    for (port, want) in [(p1, "HTTP/1.1 200"), (p2, "HTTP/2 200"), (p3, "HTTP/2 200")] {
        let (code, text) = curl(&[
            "--http2",
            "--cacert",
            &ca_s,
            "--resolve",
            &format!("a.test:{port}:127.0.0.1"),
            &format!("https://a.test:{port}/"),
        ])
        .await;
        assert_eq!(code, 200, "{port}: {text}");
        assert!(text.starts_with(want), "{port}: {text}");
    }
    // HTTP2Only: no ALPN, or ALPN without h2, is refused in the handshake, and counted.
    let before = w.metrics.snapshot().client_tls_negotiation_error_count;
    for alpn in [&[][..], &["http/1.1"][..]] {
        let r = tls_exchange(p3, &ca, alpn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", limit).await;
        let e = r.expect_err("refused");
        assert!(e.contains("NoApplicationProtocol"), "ALPN {alpn:?}: {e}");
    }
    let (_, out, err) = run_stdin(
        "openssl",
        &[
            "s_client",
            "-connect",
            &format!("127.0.0.1:{p3}"),
            "-servername",
            "a.test",
        ],
        Some(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    )
    .await;
    assert!(
        err.contains("no application protocol") && !out.contains("HTTP/1.1 200"),
        "{out}{err}"
    );
    wait_for(limit, "three negotiation errors counted", || {
        w.metrics.snapshot().client_tls_negotiation_error_count == before + 3
    })
    .await;
    w.stop().await;
}

/// A plain HTTP request to a TLS listener gets a plaintext `400` with `Connection: close` (as
/// nginx), not a TLS alert curl read as HTTP/0.9; counted as a client TLS negotiation error. A
/// TLS client on the same listener is served as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_a_tls_listener_gets_400() {
    let pki = TestPki::new("tls-plain");
    let a = pki.leaf("a", &["a.test"]);
    let be = backend("be").await;
    let port = free_port();
    let w = start(&tls_config(port, &a, be.addr.port(), ""));
    let before = w.metrics.snapshot().client_tls_negotiation_error_count;
    let (got, closed) = raw(
        port,
        b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got:?}");
    assert!(got.contains("\r\nConnection: close\r\n"), "{got:?}");
    assert!(
        got.ends_with("plain HTTP request was sent to an HTTPS port\n"),
        "{got:?}"
    );
    assert!(closed, "closed after the 400");
    let (code, text) = curl(&[&format!("http://127.0.0.1:{port}/")]).await;
    assert_eq!(code, 400, "{text}");
    let (code, text) = curl(&[
        "--cacert",
        &pki.ca.display().to_string(),
        "--resolve",
        &format!("a.test:{port}:127.0.0.1"),
        &format!("https://a.test:{port}/"),
    ])
    .await;
    assert_eq!(code, 200, "{text}");
    wait_for(std::time::Duration::from_secs(5), "two counted", || {
        w.metrics.snapshot().client_tls_negotiation_error_count == before + 2
    })
    .await;
    w.stop().await;
}

/// ClientTLSNegotiationErrorCount counts TLS connections that failed with a TLS error, not TCP
/// connections that never sent a byte: connect-and-close (port probes, L4 health checks), a
/// reset, a silent connection timed out are not counted (10 connect-and-close counted 10); a
/// ClientHello cut short, a silent one after it began, and garbage are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_begun_handshakes_are_negotiation_errors() {
    use tokio::io::AsyncWriteExt;
    let pki = TestPki::new("tls-neg");
    let a = pki.leaf("a", &["a.test"]);
    let be = backend("be").await;
    let port = free_port();
    let w = start(&tls_config(
        port,
        &a,
        be.addr.port(),
        "header_read_timeout_seconds = 1",
    ));
    let count = || w.metrics.snapshot().client_tls_negotiation_error_count;
    let before = count();
    for _ in 0..10 {
        drop(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    for _ in 0..2 {
        let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        socket2::SockRef::from(&s)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        drop(s);
    }
    // Silent past the 1 s handshake limit: closed by weir, not counted.
    let (_, closed) = raw(port, b"", std::time::Duration::from_secs(3)).await;
    assert!(closed, "a silent connection is closed at the limit");
    assert_eq!(count(), before, "no byte sent, nothing counted");
    // A ClientHello cut short (a record header and a few bytes), then the close; the same
    // left silent until the limit; bytes that are no TLS: each counted.
    let partial = [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01];
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(&partial).await.unwrap();
    drop(s);
    let (_, closed) = raw(port, &partial, std::time::Duration::from_secs(3)).await;
    assert!(closed);
    let (got, _) = raw(
        port,
        b"\x00\x01\x02\x03garbage",
        std::time::Duration::from_secs(3),
    )
    .await;
    assert!(got.starts_with('\u{15}'), "a TLS alert: {got:?}");
    wait_for(std::time::Duration::from_secs(5), "three counted", || {
        count() == before + 3
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(count(), before + 3);
    w.stop().await;
}

/// The certificate for an SNI name: an exact name before a wildcard listed earlier (the
/// wildcard was served), and among certificates for the same name the first whose key the
/// client can use: a TLS 1.2 client offering only ECDHE-RSA suites, or TLS 1.3 only RSA-PSS
/// signatures, gets the RSA one listed after an ECDSA one (handshake_failure before); the
/// access log names the certificate served. HAProxy chooses the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_prefers_exact_names_and_keys_the_client_supports() {
    let pki = TestPki::new("tls-sni");
    let default = pki.leaf("default", &["default.test"]);
    let wild = pki.leaf("wild", &["*.wild.test"]);
    let exact = pki.leaf("exact", &["a.wild.test"]);
    let dual_ec = pki.leaf_with("dualec", "dual.test", &["dual.test"], false);
    let dual_rsa = pki.leaf_with("dualrsa", "dual.test", &["dual.test"], true);
    let be = backend("be").await;
    let port = free_port();
    let log = std::env::temp_dir().join(format!("weir-tls-sni-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let certs = [&default, &wild, &exact, &dual_ec, &dual_rsa]
        .iter()
        .map(|(c, k)| format!("{{ certificate_file = \"{c}\", private_key_file = \"{k}\" }}"))
        .collect::<Vec<_>>()
        .join(", ");
    let toml = format!(
        r#"[load_balancer]
access_logs.enabled = true
access_logs.path = "{}"
[[listener]]
address = "127.0.0.1"
port = {port}
protocol = "HTTPS"
certificate = [{certs}]
default_action = {{ type = "forward", target_group = "t" }}
[[target_group]]
name = "t"
target = [{{ id = "127.0.0.1", port = {} }}]
"#,
        log.display(),
        be.addr.port()
    );
    let w = start(&toml);
    let connect = format!("127.0.0.1:{port}");
    let s_client = |name: &'static str, extra: &'static [&'static str]| {
        let connect = connect.clone();
        async move {
            let mut args = vec!["s_client", "-connect", &connect, "-servername", name];
            args.extend_from_slice(extra);
            let req = format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
            let (_, out, err) = run_stdin("openssl", &args, Some(req.as_bytes())).await;
            format!("{out}{err}")
        }
    };
    let cn = |out: &str, cn: &str| {
        out.contains(&format!("CN = {cn}\n")) || out.contains(&format!("CN={cn}\n"))
    };
    let out = s_client("a.wild.test", &[]).await;
    assert!(cn(&out, "a.wild.test"), "exact name first:\n{out}");
    let out = s_client("b.wild.test", &[]).await;
    assert!(
        cn(&out, "*.wild.test"),
        "the wildcard for another name:\n{out}"
    );
    let out = s_client("dual.test", &[]).await;
    assert!(
        out.contains("Server public key is 256 bit") && out.contains("HTTP/1.1 200"),
        "ECDSA, listed first, for a client that takes it:\n{out}"
    );
    let out = s_client(
        "dual.test",
        &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
    )
    .await;
    assert!(
        out.contains("Server public key is 2048 bit") && out.contains("HTTP/1.1 200"),
        "RSA for a TLS 1.2 client offering only ECDHE-RSA:\n{out}"
    );
    let out = s_client(
        "dual.test",
        &[
            "-tls1_3",
            "-sigalgs",
            "rsa_pss_rsae_sha256:rsa_pss_pss_sha256",
        ],
    )
    .await;
    assert!(
        out.contains("Server public key is 2048 bit") && out.contains("HTTP/1.1 200"),
        "RSA for a TLS 1.3 client offering only RSA-PSS:\n{out}"
    );
    w.stop().await;
    let lines = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let served = |domain: &str, cert: &str| {
        lines
            .lines()
            .filter(|l| l.contains(&format!("\"{domain}\" \"{cert}\"")))
            .count()
    };
    assert_eq!(served("a.wild.test", &exact.0), 1, "{lines}");
    assert_eq!(served("b.wild.test", &wild.0), 1, "{lines}");
    assert_eq!(served("dual.test", &dual_ec.0), 1, "{lines}");
    assert_eq!(served("dual.test", &dual_rsa.0), 2, "{lines}");
}

/// The access log's `ssl_cipher` and `ssl_protocol` are OpenSSL's names, as ALB writes them
/// (rustls's `TLS13_AES_128_GCM_SHA256 TLSv1_3` before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_writes_openssl_cipher_and_protocol_names() {
    let pki = TestPki::new("tls-names");
    let a = pki.leaf("a", &["a.test"]);
    let r = pki.leaf_with("r", "r.test", &["r.test"], true);
    let be = backend("be").await;
    let port = free_port();
    let log = std::env::temp_dir().join(format!("weir-tls-names-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let toml = format!(
        "[load_balancer]\naccess_logs.enabled = true\naccess_logs.path = \"{}\"\n{}",
        log.display(),
        https_config(port, &pki, &a, &r, be.addr.port())
    );
    let w = start(&toml);
    for (name, args) in [
        ("a.test", &["--tlsv1.3"][..]),
        ("a.test", &["--tlsv1.2", "--tls-max", "1.2"][..]),
        ("r.test", &["--tlsv1.2", "--tls-max", "1.2"][..]),
        (
            "a.test",
            &[
                "--tlsv1.3",
                "--tls13-ciphers",
                "TLS_CHACHA20_POLY1305_SHA256",
            ][..],
        ),
    ] {
        let resolve = format!("{name}:{port}:127.0.0.1");
        let url = format!("https://{name}:{port}/");
        let mut a = vec!["-k", "--http1.1", "--resolve", &resolve];
        a.extend_from_slice(args);
        a.push(&url);
        let (code, text) = curl(&a).await;
        assert_eq!(code, 200, "{name} {args:?}: {text}");
    }
    w.stop().await;
    let lines = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    for want in [
        " TLS_AES_128_GCM_SHA256 TLSv1.3 ",
        " ECDHE-ECDSA-AES128-GCM-SHA256 TLSv1.2 ",
        " ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 ",
        " TLS_CHACHA20_POLY1305_SHA256 TLSv1.3 ",
    ] {
        assert!(lines.contains(want), "no line with {want:?}:\n{lines}");
    }
}
