//! Responses weir makes itself (fixed responses, redirects, its errors), on the wire.

mod common;

use common::*;
use lb_l7::WorkerOptions;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Everything a connection answers to `bytes` until the worker closes it.
async fn exchange(port: u16, bytes: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn fixed_rules(port: u16, body: &str) -> String {
    format!(
        r#"
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "next\n" }}
[[listener.rule]]
priority = 1
condition = [{{ field = "path-pattern", values = ["/204"] }}]
action = {{ type = "fixed-response", status_code = 204, content_type = "text/plain"{body} }}
[[listener.rule]]
priority = 2
condition = [{{ field = "path-pattern", values = ["/205"] }}]
action = {{ type = "fixed-response", status_code = 205, content_type = "text/plain"{body} }}
"#
    )
}

/// A 204 has neither body nor `content-length` (RFC 9110 §8.6, §15.3.5), a 205 no body, so a
/// keep-alive client reads the next response where it starts; over HTTP/2 the stream is
/// well-formed. `bodied`: the configuration carries a body validation refuses (a configuration
/// not built from a checked file, such as a generation's), which must not go out either.
async fn no_content(bodied: bool) {
    let body = if bodied {
        ", message_body = \"should-not-be-sent\\n\""
    } else {
        ""
    };
    for engine in ["hyper", "weir"] {
        let port = free_port();
        let toml = with_h2_engine(&fixed_rules(port, body), engine);
        let opts = WorkerOptions {
            // A generation's configuration is not validated again: the writer alone stands.
            generation: bodied.then(Default::default),
            ..WorkerOptions::default()
        };
        let w = start_with(&toml, opts);
        for (path, status) in [("/204", 204), ("/205", 205)] {
            let out = exchange(
                port,
                format!(
                    "GET {path} HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\
                     Connection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await;
            let (first, rest) = out.split_once("\r\n\r\n").expect("a head");
            assert!(first.starts_with(&format!("HTTP/1.1 {status} ")), "{out:?}");
            let length = first.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_string)
            });
            match status {
                204 => assert_eq!(length, None, "{out:?}"),
                _ => assert_eq!(length.as_deref(), Some("0"), "{out:?}"),
            }
            assert!(rest.starts_with("HTTP/1.1 404 "), "{out:?}");
            assert!(rest.ends_with("\r\n\r\nnext\n"), "{out:?}");
            let (code, text) = curl(&[
                "--http2-prior-knowledge",
                &format!("http://127.0.0.1:{port}{path}"),
            ])
            .await;
            assert_eq!(code, status, "{engine}: {text}");
            assert!(!text.contains("should-not"), "{engine}: {text}");
            if status == 204 {
                let lower = text.to_ascii_lowercase();
                assert!(!lower.contains("content-length"), "{engine}: {text}");
            }
        }
        w.stop().await;
    }
}

#[tokio::test]
async fn no_content_responses_have_no_body_or_length() {
    no_content(false).await;
}

#[tokio::test]
async fn no_content_responses_drop_a_configured_body() {
    no_content(true).await;
}

/// A redirect's `#{host}` keeps the brackets of an IPv6 literal (RFC 3986 §3.2.2): the
/// Location is a URI a client can follow.
#[tokio::test]
async fn redirect_keeps_an_ipv6_hosts_brackets() {
    let port = free_port();
    let w = start(&format!(
        r#"
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "redirect", protocol = "HTTPS", port = "19411", path = "/redir/#{{path}}", status_code = "HTTP_301" }}
"#
    ));
    for (host, want) in [
        (format!("[::1]:{port}"), "https://[::1]:19411/redir/x?q"),
        (
            "[2001:db8::5]".to_string(),
            "https://[2001:db8::5]:19411/redir/x?q",
        ),
        ("127.0.0.1".to_string(), "https://127.0.0.1:19411/redir/x?q"),
    ] {
        let (code, text) = curl(&[
            "--http1.1",
            "-H",
            &format!("Host: {host}"),
            &format!("http://127.0.0.1:{port}/x?q"),
        ])
        .await;
        assert_eq!(code, 301, "{text}");
        let loc = text
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .unwrap_or_default()
            .trim_end();
        assert_eq!(loc, want, "{host}: {text}");
    }
    w.stop().await;
}

/// weir's own HTTP/1.1 responses carry a `Date` (RFC 9110 §6.6.1), as its HTTP/2 ones do.
#[tokio::test]
async fn own_http1_responses_have_a_date() {
    let port = free_port();
    let w = start(&format!(
        r#"
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "fixed-response", status_code = 503, content_type = "text/plain", message_body = "no\n" }}
[[listener.rule]]
priority = 1
condition = [{{ field = "path-pattern", values = ["/redir*"] }}]
action = {{ type = "redirect", protocol = "HTTPS", status_code = "HTTP_302" }}
"#
    ));
    let answers = [
        exchange(
            port,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await,
        exchange(
            port,
            b"GET /redir HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await,
        exchange(port, b"GET / HTTP/1.0\r\n\r\n").await,
        // Malformed: weir's 400.
        exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n").await,
    ];
    for (out, status) in answers.iter().zip(["503", "302", "503", "400"]) {
        let head = out.split("\r\n\r\n").next().unwrap_or_default();
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{out:?}");
        let date = head
            .lines()
            .filter_map(|l| l.strip_prefix("date: "))
            .collect::<Vec<_>>();
        assert_eq!(date.len(), 1, "{out:?}");
        assert!(httpdate::parse_http_date(date[0]).is_ok(), "{out:?}");
    }
    w.stop().await;
}
