//! Forwarding over HTTP/1.1 and HTTP/2 (cleartext) with curl: headers, rules, actions,
//! balancing, weir's own status codes, metrics, access log.

mod common;
use common::*;
use std::time::Duration;

fn two_backend_config(port: u16, a: &Backend, b: &Backend, log: &str) -> String {
    format!(
        r#"
[load_balancer]
idle_timeout.timeout_seconds = 3
access_logs.enabled = true
access_logs.path = "{log}"

[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "web" }}

[[listener.rule]]
priority = 10
condition = [{{ field = "path-pattern", values = ["/api/*"] }}]
action = {{ type = "forward", target_group = "api" }}

[[listener.rule]]
priority = 20
condition = [{{ field = "host-header", values = ["old.example.com"] }}]
action = {{ type = "redirect", protocol = "HTTPS", host = "new.example.com", port = "443", status_code = "HTTP_301" }}

[[listener.rule]]
priority = 30
condition = [{{ field = "http-request-method", values = ["DELETE"] }}, {{ field = "path-pattern", values = ["/admin*"] }}]
action = {{ type = "fixed-response", status_code = 403, content_type = "text/plain", message_body = "no admin" }}

[[listener.rule]]
priority = 40
condition = [{{ field = "path-pattern", values = ["/empty/*"] }}]
action = {{ type = "forward", target_group = "empty" }}

[[listener.rule]]
priority = 50
condition = [{{ field = "path-pattern", values = ["/dead/*"] }}]
action = {{ type = "forward", target_group = "dead" }}

[[listener.rule]]
priority = 60
condition = [{{ field = "path-pattern", values = ["/split/*"] }}]
action = {{ type = "forward", target_groups = [{{ name = "web", weight = 1 }}, {{ name = "api", weight = 0 }}] }}

[[target_group]]
name = "web"
target = [{{ id = "127.0.0.1", port = {pa} }}, {{ id = "127.0.0.1", port = {pb} }}]

[[target_group]]
name = "api"
load_balancing.algorithm.type = "consistent_hash"
load_balancing.algorithm.hash_on = "header:x-user"
target = [{{ id = "127.0.0.1", port = {pa} }}, {{ id = "127.0.0.1", port = {pb} }}]

[[target_group]]
name = "empty"

[[target_group]]
name = "dead"
target = [{{ id = "127.0.0.1", port = {dead} }}]
"#,
        pa = a.addr.port(),
        pb = b.addr.port(),
        dead = free_port(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_rules_actions_and_status_codes() {
    let (a, b) = (backend("a").await, backend("b").await);
    let log = std::env::temp_dir().join(format!("weir-l7-access-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let port = free_port();
    let w = start(&two_backend_config(
        port,
        &a,
        &b,
        &log.display().to_string(),
    ));
    let base = format!("http://127.0.0.1:{port}");

    // HTTP/1.1 forward, with the forwarding headers and hop-by-hop headers removed.
    let (code, text) = curl(&[
        "-H",
        "Connection: keep-alive, X-Secret",
        "-H",
        "X-Secret: 1",
        "-H",
        "X-Forwarded-For: 203.0.113.9",
        &format!("{base}/hello?x=1"),
    ])
    .await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("GET /hello?x=1 HTTP/1.1"), "{text}");
    assert!(
        text.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\n"),
        "{text}"
    );
    assert!(text.contains("x-forwarded-proto: http\n"), "{text}");
    assert!(
        text.contains(&format!("x-forwarded-port: {port}\n")),
        "{text}"
    );
    assert!(text.contains("x-amzn-trace-id: Root=1-"), "{text}");
    assert!(!text.to_lowercase().contains("x-secret"), "{text}");
    // The target's hop-by-hop headers do not reach the client.
    assert!(
        !text.to_lowercase().contains("keep-alive: timeout"),
        "{text}"
    );

    // HTTP/2 (prior knowledge, cleartext) → HTTP/1.1 target.
    let (code, text) = curl(&["--http2-prior-knowledge", &format!("{base}/h2")]).await;
    assert_eq!(code, 200, "{text}");
    assert!(text.starts_with("HTTP/2 200"), "{text}");
    assert!(text.contains("GET /h2 HTTP/1.1"), "{text}");
    assert!(text.contains(&format!("host: 127.0.0.1:{port}")), "{text}");

    // An absolute-form request line (RFC 9112 §3.2.2) goes to the target in origin form.
    let (text, _) = raw(
        port,
        b"GET http://abs.example/abs?q=1 HTTP/1.1\r\nHost: abs.example\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("GET /abs?q=1 HTTP/1.1"), "{text}");
    // An OPTIONS about the server itself (absolute-form, no path) goes out as `OPTIONS *`
    // (RFC 9112 §3.2.4), not as a question about `/`.
    let (text, _) = raw(
        port,
        b"OPTIONS http://abs.example:8001 HTTP/1.1\r\nHost: abs.example:8001\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("OPTIONS * HTTP/1.1"), "{text}");

    // Round robin across both targets.
    let (ha0, hb0) = (
        a.hits.load(std::sync::atomic::Ordering::SeqCst),
        b.hits.load(std::sync::atomic::Ordering::SeqCst),
    );
    for _ in 0..10 {
        assert_eq!(curl(&[&format!("{base}/rr")]).await.0, 200);
    }
    let (ha, hb) = (
        a.hits.load(std::sync::atomic::Ordering::SeqCst) - ha0,
        b.hits.load(std::sync::atomic::Ordering::SeqCst) - hb0,
    );
    assert_eq!(ha + hb, 10);
    assert_eq!(ha, 5, "round robin a={ha} b={hb}");

    // Consistent hash on a header: the same user always lands on the same target.
    let mut seen = std::collections::HashMap::new();
    for user in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        for _ in 0..3 {
            let (code, text) =
                curl(&["-H", &format!("X-User: {user}"), &format!("{base}/api/x")]).await;
            assert_eq!(code, 200);
            let backend = text
                .lines()
                .find(|l| l.starts_with("backend="))
                .unwrap()
                .to_string();
            assert_eq!(
                seen.entry(user).or_insert(backend.clone()),
                &backend,
                "{user} moved"
            );
        }
    }

    // Redirect with tokens, fixed response with AND'ed conditions, default rule.
    let (code, text) = curl(&["-H", "Host: old.example.com", &format!("{base}/p/q?z=9")]).await;
    assert_eq!(code, 301);
    assert!(
        text.to_lowercase()
            .contains("location: https://new.example.com/p/q?z=9"),
        "{text}"
    );
    let (code, text) = curl(&["-X", "DELETE", &format!("{base}/admin/users")]).await;
    assert_eq!(code, 403);
    assert!(text.ends_with("no admin"), "{text}");
    assert_eq!(
        curl(&["-X", "GET", &format!("{base}/admin/users")]).await.0,
        200
    );

    // Weighted target groups: weight 0 never gets traffic.
    for _ in 0..5 {
        let (_, text) = curl(&[&format!("{base}/split/x")]).await;
        assert!(text.contains("backend="), "{text}");
    }

    // Health path: answered by weir, never forwarded.
    let hits = a.hits.load(std::sync::atomic::Ordering::SeqCst)
        + b.hits.load(std::sync::atomic::Ordering::SeqCst);
    let (code, text) = curl(&[&format!("{base}/weir-health")]).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(
        hits,
        a.hits.load(std::sync::atomic::Ordering::SeqCst)
            + b.hits.load(std::sync::atomic::Ordering::SeqCst)
    );

    // weir's own errors: 503 (no targets), 502 (target refuses).
    assert_eq!(curl(&[&format!("{base}/empty/x")]).await.0, 503);
    assert_eq!(curl(&[&format!("{base}/dead/x")]).await.0, 502);

    // POST with a body goes through.
    let (code, text) = curl(&["-d", "0123456789", &format!("{base}/post")]).await;
    assert_eq!(code, 200);
    assert!(text.contains("body-bytes=10"), "{text}");

    let m = w.metrics.snapshot();
    assert_eq!(m.elb_503, 1, "{m:?}");
    assert_eq!(m.elb_502, 1, "{m:?}");
    assert_eq!(m.elb_5xx, 2);
    assert_eq!(m.redirect_count, 1);
    assert_eq!(m.fixed_response_count, 1);
    assert!(m.target_connection_error_count >= 1);
    assert!(m.target_2xx >= 30, "{m:?}");
    let json = m.to_json();
    assert!(json.contains("\"HTTPCode_ELB_503_Count\":1"), "{json}");
    assert!(json.contains("\"RequestCountPerTarget\""), "{json}");
    w.stop().await;

    // One access log line per request (health checks included), in ALB's field order.
    let lines = std::fs::read_to_string(&log).unwrap();
    let n = lines.lines().count() as u64;
    assert_eq!(n, m.request_count, "{lines}");
    let redirect = lines.lines().find(|l| l.contains(" 301 ")).unwrap();
    assert!(redirect.starts_with("http "), "{redirect}");
    assert!(
        redirect.contains("\"redirect\" \"https://new.example.com/p/q?z=9\""),
        "{redirect}"
    );
    assert!(redirect.contains(" 20 "), "matched priority: {redirect}");
    let dead = lines.lines().find(|l| l.contains(" 502 ")).unwrap();
    assert!(dead.contains("\"TargetConnectionError\""), "{dead}");
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_connection_limit() {
    // A target that accepts but never answers → 504 after the idle timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut keep = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            keep.push(s);
        }
    });
    let port = free_port();
    let w = start(&format!(
        r#"
[load_balancer]
idle_timeout.timeout_seconds = 2
max_connections_per_worker = 3
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "silent" }}
[[target_group]]
name = "silent"
target = [{{ id = "127.0.0.1", port = {silent_port} }}]
"#
    ));
    let t0 = std::time::Instant::now();
    let (code, _) = curl(&[&format!("http://127.0.0.1:{port}/")]).await;
    assert_eq!(code, 504);
    assert!(
        t0.elapsed() >= Duration::from_millis(1900) && t0.elapsed() < Duration::from_secs(6),
        "{:?}",
        t0.elapsed()
    );

    // Connection limit: three idle connections are held, the fourth is closed at once.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    // (The 504's connection is gone and the three are accepted: the fourth is the one over.)
    wait_for(Duration::from_secs(5), "3 active connections", || {
        w.metrics.snapshot().active_connection_count == 3
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (_, closed) = read_all(&mut s, Duration::from_secs(1)).await;
    assert!(closed, "4th connection not closed");
    assert_eq!(w.metrics.snapshot().rejected_connection_count, 1);
    // Idle client connections are closed after the idle timeout, freeing the slots.
    let (_, closed) = read_all(&mut held[0], Duration::from_secs(5)).await;
    assert!(closed, "idle connection not closed");
    drop(held);
    wait_for(Duration::from_secs(5), "no active connection", || {
        w.metrics.snapshot().active_connection_count == 0
    })
    .await;
    assert_eq!(w.metrics.snapshot().elb_504, 1);
    w.stop().await;
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_config_answers_and_graceful_drain() {
    // The embedded default, moved to a free port.
    let mut cfg = lb_l7::L7Config::default();
    cfg.listener[0].port = free_port();
    cfg.listener[0].address = "127.0.0.1".parse().unwrap();
    let w = lb_l7::Worker::bind(std::sync::Arc::new(cfg), Default::default()).unwrap();
    let port = w.local_addrs()[0].port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(w.serve(async move {
        let _ = rx.await;
    }));
    let (code, text) = curl(&[&format!("http://127.0.0.1:{port}/anything")]).await;
    assert_eq!(code, 200);
    assert!(text.contains("weir: no targets configured"), "{text}");

    // A slow in-flight request finishes during the drain.
    let b = backend("slow").await;
    let port2 = free_port();
    let w2 = start(&format!(
        "[[listener]]\naddress = \"127.0.0.1\"\nport = {port2}\ndefault_action = {{ type = \"forward\", target_group = \"s\" }}\n[[target_group]]\nname = \"s\"\ntarget = [{{ id = \"127.0.0.1\", port = {} }}]\n",
        b.addr.port()
    ));
    let slow = tokio::spawn(curl_owned(vec![format!(
        "http://127.0.0.1:{port2}/slow?ms=1500"
    )]));
    // In flight: at the target (a curl started on a loaded machine may take longer than 0.5 s).
    wait_for(
        Duration::from_secs(10),
        "the slow request at the target",
        || b.hits.load(std::sync::atomic::Ordering::SeqCst) >= 1,
    )
    .await;
    let t0 = std::time::Instant::now();
    w2.stop().await;
    assert!(
        t0.elapsed() >= Duration::from_millis(700),
        "drain returned before the request finished"
    );
    assert_eq!(slow.await.unwrap().0, 200);
    // After the drain nothing listens.
    assert_nothing_listens(([127, 0, 0, 1], port2).into(), "drained worker").await;
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

async fn curl_owned(args: Vec<String>) -> (u16, String) {
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    curl(&a).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_goes_to_another_target() {
    let alive = backend("alive").await;
    let dead = free_port();
    let port = free_port();
    let log = std::env::temp_dir().join(format!("weir-retry-{port}.log"));
    let w = start(&format!(
        r#"
[load_balancer]
access_logs.enabled = true
access_logs.path = "{}"
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "mixed" }}
[[target_group]]
name = "mixed"
load_balancing.algorithm.type = "least_outstanding_requests"
target = [{{ id = "127.0.0.1", port = {dead} }}, {{ id = "127.0.0.1", port = {} }}]
"#,
        log.display(),
        alive.addr.port()
    ));
    for i in 0..10 {
        let (code, text) = curl(&[
            "-X",
            "POST",
            "-d",
            "x",
            &format!("http://127.0.0.1:{port}/p{i}"),
        ])
        .await;
        assert_eq!(code, 200, "{text}");
        assert!(text.contains("backend=alive"));
    }
    let m = w.metrics.snapshot();
    assert_eq!(m.elb_5xx, 0);
    assert!(m.target_connection_error_count >= 1, "{m:?}");
    assert_eq!(alive.hits.load(std::sync::atomic::Ordering::SeqCst), 10);
    let t = &m.targets[&format!("mixed/127.0.0.1:{dead}")];
    assert!(
        t.connection_error_count >= 1 && t.state == "healthy",
        "{t:?}"
    );
    w.stop().await;
    // A retried request lists both attempts, each code under its target: `-` for the one
    // that refused the connection.
    let lines = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let pair = format!(
        "\"127.0.0.1:{dead} 127.0.0.1:{}\" \"- 200\"",
        alive.addr.port()
    );
    assert!(lines.lines().any(|l| l.contains(&pair)), "{pair}\n{lines}");
    let single = format!("\"127.0.0.1:{}\" \"200\"", alive.addr.port());
    assert!(
        lines
            .lines()
            .all(|l| l.contains(&pair) || l.contains(&single)),
        "{lines}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_a_port_with_so_reuseport() {
    let port = free_port();
    let cfg = format!(
        "[[listener]]\naddress = \"127.0.0.1\"\nport = {port}\ndefault_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"hi\" }}\n"
    );
    let w1 = start_with(
        &cfg,
        lb_l7::WorkerOptions {
            index: 1,
            ..Default::default()
        },
    );
    let w2 = start_with(
        &cfg,
        lb_l7::WorkerOptions {
            index: 2,
            ..Default::default()
        },
    );
    assert_eq!((w1.port, w2.port), (port, port));
    for _ in 0..20 {
        assert_eq!(curl(&[&format!("http://127.0.0.1:{port}/")]).await.0, 200);
    }
    let (a, b) = (
        w1.metrics.snapshot().request_count,
        w2.metrics.snapshot().request_count,
    );
    assert_eq!(a + b, 20, "w1 {a} w2 {b}");
    w1.stop().await;
    // The other worker keeps serving the port alone.
    assert_eq!(curl(&[&format!("http://127.0.0.1:{port}/")]).await.0, 200);
    w2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inherited_listening_sockets_are_adopted() {
    use std::os::fd::IntoRawFd;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let fd = l.into_raw_fd();
    let cfg = |p: u16| {
        format!(
            "[[listener]]\naddress = \"127.0.0.1\"\nport = {p}\ndefault_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"adopted\" }}\n"
        )
    };
    // A socket on another port than the listener's is refused (and left open for the next try).
    let wrong = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let wrong_port = wrong.local_addr().unwrap().port();
    let wrong_fd = wrong.into_raw_fd();
    let cfg_wrong: lb_l7::L7Config = lb_l7::L7Config::from_toml_str(&cfg(port)).unwrap();
    let err = lb_l7::Worker::bind(
        std::sync::Arc::new(cfg_wrong),
        lb_l7::WorkerOptions {
            listen_fds: Some(vec![wrong_fd]),
            ..Default::default()
        },
    );
    assert!(
        err.is_err(),
        "fd on port {wrong_port} accepted for port {port}"
    );
    let w = start_with(
        &cfg(port),
        lb_l7::WorkerOptions {
            listen_fds: Some(vec![fd]),
            ..Default::default()
        },
    );
    assert_eq!(w.port, port);
    let (code, text) = curl(&[&format!("http://127.0.0.1:{port}/")]).await;
    assert_eq!(code, 200);
    assert!(text.ends_with("adopted"), "{text}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connection_gets_goaway_after_10000_requests() {
    use http_body_util::BodyExt;
    let port = free_port();
    let w = start(&format!(
        "[[listener]]\naddress = \"127.0.0.1\"\nport = {port}\ndefault_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"x\" }}\n"
    ));
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(s),
    )
    .await
    .unwrap();
    let driver = tokio::spawn(conn);
    let mut ok = 0u32;
    for i in 0..10_010u32 {
        if send.ready().await.is_err() {
            break;
        }
        let req = hyper::Request::get(format!("http://127.0.0.1:{port}/{i}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        match send.send_request(req).await {
            Ok(r) => {
                assert_eq!(r.status(), 200);
                r.into_body().collect().await.unwrap();
                ok += 1;
            }
            Err(_) => break,
        }
    }
    assert_eq!(ok, 10_000, "requests served on one HTTP/2 connection");
    // The server closed the connection after its GOAWAY.
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("connection closed")
        .unwrap()
        .unwrap();
    w.stop().await;
}

/// The seed's unbalanced-traffic story, cause 3 (cross-zone off: each zone's share split among
/// that zone's targets, so a zone with fewer targets overloads them): weir spreads over every
/// target of a group whatever its zone, so one target alone in zone `a` gets 1/4 of the
/// requests beside three in zone `b`, not 1/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uneven_zones_still_spread_evenly() {
    use std::sync::atomic::Ordering::SeqCst;
    let bs = [
        backend("a1").await,
        backend("b1").await,
        backend("b2").await,
        backend("b3").await,
    ];
    let port = free_port();
    let targets: Vec<String> = bs
        .iter()
        .zip(["a", "b", "b", "b"])
        .map(|(b, z)| {
            format!(
                "{{ id = \"127.0.0.1\", port = {}, availability_zone = \"{z}\" }}",
                b.addr.port()
            )
        })
        .collect();
    let w = start(&format!(
        r#"
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "z" }}
[[target_group]]
name = "z"
target = [{}]
"#,
        targets.join(", ")
    ));
    for _ in 0..40 {
        let (code, text) = curl(&[&format!("http://127.0.0.1:{port}/")]).await;
        assert_eq!(code, 200, "{text}");
    }
    let hits: Vec<usize> = bs.iter().map(|b| b.hits.load(SeqCst)).collect();
    assert_eq!(hits, [10, 10, 10, 10], "round robin over all four targets");
    w.stop().await;
}
