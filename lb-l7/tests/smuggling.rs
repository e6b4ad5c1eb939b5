//! Request smuggling through weir's HTTP/1.1 engine, with raw bytes against a real worker and a
//! target that records exactly what it received: a `Connection` option naming a header that
//! frames or routes the request, `Upgrade: h2c`, and `Host` (syntax, absolute-form, redirects).

mod common;
mod recorder;
use common::*;
use recorder::*;
use std::time::Duration;

/// A listener whose rule answers `/admin*` itself (403); everything else goes to `target`.
fn guarded(port: u16, target: u16, extra: &str) -> String {
    one_target_config(port, target, extra, ADMIN_403_RULE, "")
}

/// The issue's attack: `Connection: keep-alive, Content-Length` used to strip the length, so the
/// body reached the target as a second request (`GET /admin`, past the rule that forbids it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cannot_remove_framing_or_routing_headers() {
    let rec = recorder().await;
    let port = free_port();
    let w = start(&guarded(port, rec.addr.port(), ""));
    let smuggled = "GET /admin HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n";
    let attack = format!(
        "POST /a HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Content-Length\r\n\
         Content-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let mut answers = vec![("attack", exchange(port, attack.as_bytes()).await)];
    // The same with a chunked body whose Transfer-Encoding `Connection` names.
    let chunk = format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len());
    let te = format!(
        "POST /te HTTP/1.1\r\nHost: a\r\nConnection: close, Transfer-Encoding\r\n\
         Transfer-Encoding: chunked\r\n\r\n{chunk}"
    );
    answers.push(("te", exchange(port, te.as_bytes()).await));
    for named in [
        "Host",
        "X-Forwarded-For",
        "x-forwarded-proto",
        "X-Amzn-Trace-Id",
    ] {
        let req = format!("GET /n HTTP/1.1\r\nHost: a\r\nConnection: {named}\r\n\r\n");
        answers.push((named, exchange(port, req.as_bytes()).await));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // What the target received: nothing (on the old code: `POST /a` without its length, then
    // the body as `GET /admin`, a request no rule saw).
    let seen: Vec<String> = rec
        .snapshot()
        .iter()
        .flat_map(|c| c.requests.iter().map(|r| r.line.clone()))
        .collect();
    assert!(seen.is_empty(), "the target saw: {seen:?}");
    for (what, x) in &answers {
        assert_eq!((x.status, x.closed), (400, true), "{what}: {x:?}");
    }
    // An ordinary POST still goes through, with its length.
    let ok =
        b"POST /ok HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello";
    let x = exchange(port, ok).await;
    assert_eq!((x.status, x.closed), (200, false), "{x:?}");
    let seen = rec.seen("/ok");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1.header("content-length"), ["5"]);
    assert_eq!(seen[0].1.body, b"hello");
    assert_eq!(w.metrics.snapshot().elb_status_codes.get(&400), Some(&6));
    w.stop().await;
}

/// `Upgrade: h2c` (and any protocol not in `upgrade_protocols`) is removed with
/// `HTTP2-Settings`; the request is forwarded as an ordinary one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upgrade_is_never_offered_to_a_target() {
    let rec = recorder().await;
    let port = free_port();
    let w = start(&guarded(port, rec.addr.port(), ""));
    for (tag, upgrade) in [
        ("/h2c", "h2c"),
        ("/tls", "TLS/1.2"),
        ("/mixed", "websocket, h2c"),
    ] {
        let req = format!(
            "GET {tag} HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             Upgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
        );
        let x = exchange(port, req.as_bytes()).await;
        assert_eq!((x.status, x.closed), (200, false), "{tag}: {x:?}");
        let seen = rec.seen(tag);
        assert_eq!(seen.len(), 1, "{tag}");
        let r = &seen[0].1;
        assert!(r.header("upgrade").is_empty(), "{tag}: {:?}", r.headers);
        assert!(
            r.header("http2-settings").is_empty(),
            "{tag}: {:?}",
            r.headers
        );
        assert!(
            r.header("connection")
                .iter()
                .all(|v| !v.to_ascii_lowercase().contains("upgrade")),
            "{tag}: {:?}",
            r.headers
        );
    }
    w.stop().await;
}

/// The list is configurable: with `upgrade_protocols = []` a WebSocket handshake is an ordinary
/// request (the target answers 200, not 101); with the default it is tunnelled
/// (`tests/websocket.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_protocols_list_is_applied() {
    let be = backend("ws").await;
    let port = free_port();
    let w = start(&guarded(port, be.addr.port(), "upgrade_protocols = []"));
    let req =
        b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let x = exchange(port, req).await;
    assert_eq!(x.status, 200, "{x:?}");
    assert!(
        !x.response.to_ascii_lowercase().contains("\nupgrade:"),
        "{x:?}"
    );
    w.stop().await;

    let port = free_port();
    let w = start(&guarded(port, be.addr.port(), ""));
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, req)
        .await
        .unwrap();
    let (status, _) = read_response(&mut s).await;
    assert_eq!(status, 101);
    drop(s);
    w.stop().await;
}

/// `Host` must be an authority (RFC 9110): no userinfo, no path, no spaces, a valid port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_host_is_refused() {
    let rec = recorder().await;
    let port = free_port();
    let w = start(&guarded(port, rec.addr.port(), ""));
    for host in [
        "evil.com/x",
        "a@evil.com",
        "a b",
        "evil.com?",
        "evil.com#",
        "evil.com\\x",
        "a:99999",
        "a:",
        "%61dmin.example",
        "",
    ] {
        let req = format!("GET /h HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let x = exchange(port, req.as_bytes()).await;
        assert_eq!((x.status, x.closed), (400, true), "{host:?}: {x:?}");
    }
    // Userinfo in an absolute-form target too.
    let x = exchange(
        port,
        b"GET http://u@a.example/h HTTP/1.1\r\nHost: a.example\r\n\r\n",
    )
    .await;
    assert_eq!(x.status, 400, "{x:?}");
    assert!(rec.seen("/h").is_empty());
    let x = exchange(port, b"GET /h HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").await;
    assert_eq!(x.status, 200, "{x:?}");
    w.stop().await;
}

/// RFC 9112 §3.2.2: an absolute-form request's authority wins over `Host`: weir routes on it
/// and the target's `Host` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_authority_wins_over_host() {
    let rec = recorder().await;
    let port = free_port();
    let w = start(&format!(
        r#"
[load_balancer]
routing.http.preserve_host_header.enabled = true
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "no" }}
[[listener.rule]]
priority = 10
condition = [{{ field = "host-header", values = ["b.example"] }}]
action = {{ type = "forward", target_group = "b" }}
[[target_group]]
name = "b"
target = [{{ id = "127.0.0.1", port = {} }}]
"#,
        rec.addr.port()
    ));
    let x = exchange(
        port,
        b"GET http://b.example/abs?q=1 HTTP/1.1\r\nHost: a.example\r\n\r\n",
    )
    .await;
    assert_eq!(x.status, 200, "routed on the authority: {x:?}");
    let seen = rec.seen("/abs");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1.line, "GET /abs?q=1", "origin-form to the target");
    assert_eq!(seen[0].1.header("host"), ["b.example"]);
    // And the other way round: the Host names the routed name, the authority does not.
    let x = exchange(
        port,
        b"GET http://a.example/abs2 HTTP/1.1\r\nHost: b.example\r\n\r\n",
    )
    .await;
    assert_eq!(x.status, 404, "{x:?}");
    assert!(rec.seen("/abs2").is_empty());
    // No path, a query: the target gets `/` before it (RFC 9112 §3.2.1). It got `GET ?q=2`,
    // which targets refuse (nginx: 400) while weir had routed the request as `/`.
    let x = exchange(
        port,
        b"GET http://b.example?q=2 HTTP/1.1\r\nHost: b.example\r\n\r\n",
    )
    .await;
    assert_eq!(x.status, 200, "{x:?}");
    let seen = rec.seen("q=2");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1.line, "GET /?q=2", "origin-form to the target");
    w.stop().await;
}

/// A redirect built from `#{host}` cannot point at another origin: such a `Host` never gets
/// that far.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_host_token_stays_on_the_origin() {
    let port = free_port();
    let w = start(&format!(
        r##"
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "redirect", protocol = "HTTPS", host = "#{{host}}", port = "443", path = "/#{{path}}", status_code = "HTTP_301" }}
"##
    ));
    for host in [
        "evil.com/x",
        "a@evil.com",
        "evil.com\\@good.example",
        "evil.com?",
    ] {
        let req = format!("GET /p HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let x = exchange(port, req.as_bytes()).await;
        assert_eq!(x.status, 400, "{host}: {x:?}");
        assert!(
            !x.response.to_ascii_lowercase().contains("location:"),
            "{x:?}"
        );
    }
    let x = exchange(port, b"GET /p HTTP/1.1\r\nHost: good.example\r\n\r\n").await;
    assert_eq!(x.status, 301, "{x:?}");
    assert!(
        x.response
            .to_ascii_lowercase()
            .contains("location: https://good.example/p\r\n"),
        "{x:?}"
    );
    w.stop().await;
}

/// A rule that denies `/admin*` and one that denies the host `secret.example` hold for every
/// spelling a target reads as the same path or host: dot segments, repeated slashes,
/// percent-encoded characters (an encoded slash too), a fully qualified host. Each passed on the old code
/// (rules matched the raw path and host) and nginx behind weir served `/admin` and
/// `secret.example`. The request a rule lets through still goes as the client wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_rules_hold_for_every_spelling_of_the_path_and_host() {
    let rec = recorder().await;
    let port = free_port();
    let host_rule = r#"
[[listener.rule]]
priority = 20
condition = [{ field = "host-header", values = ["secret.example"] }]
action = { type = "fixed-response", status_code = 403, content_type = "text/plain", message_body = "no" }"#;
    let rules = format!("{ADMIN_403_RULE}\n{host_rule}");
    let w = start(&one_target_config(port, rec.addr.port(), "", &rules, ""));
    for (target, host) in [
        ("/admin", "app.example"),
        ("/x/../admin", "app.example"),
        ("/./admin", "app.example"),
        ("//admin", "app.example"),
        ("/%61dmin", "app.example"),
        ("/%2e/admin", "app.example"),
        ("/static/%2E%2E/admin/users", "app.example"),
        // An encoded slash: nginx decodes it before it resolves the path.
        ("/%2Fadmin", "app.example"),
        ("/x/..%2Fadmin", "app.example"),
        ("/x%2F..%2Fadmin", "app.example"),
        ("/x/%2e%2e%2fadmin", "app.example"),
        ("/", "secret.example"),
        ("/", "secret.example."),
        ("/", "SECRET.example.:8080"),
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let x = exchange(port, req.as_bytes()).await;
        assert_eq!(x.status, 403, "{target} on {host}: {x:?}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // (`exchange` follows each request with a probe of its own, `/probe-open`.)
    let reached: Vec<String> = rec
        .snapshot()
        .iter()
        .flat_map(|c| c.requests.iter().map(|r| r.line.clone()))
        .filter(|l| !l.contains("/probe-open"))
        .collect();
    assert!(reached.is_empty(), "the target saw: {reached:?}");
    // What the rules let through goes as it came.
    let x = exchange(
        port,
        b"GET /a/./b//c%7E HTTP/1.1\r\nHost: app.example\r\n\r\n",
    )
    .await;
    assert_eq!(x.status, 200, "{x:?}");
    assert_eq!(rec.seen("/a/")[0].1.line, "GET /a/./b//c%7E");
    w.stop().await;
}
