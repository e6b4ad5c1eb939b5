//! Phase `respond`: responses weir makes itself (its own errors, fixed responses, redirects).

use crate::body::{self, Body};
use http::{HeaderValue, Response, StatusCode, header};
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// The `date` value of the current second (a worker is one thread).
    static DATE: RefCell<(u64, HeaderValue)> = const { RefCell::new((0, HeaderValue::from_static(""))) };
}

/// The current time as an HTTP date (RFC 9110 §6.6.1), formatted once per second: the `date`
/// of weir's own responses (both HTTP/1.1 and HTTP/2) and of a target's that has none over
/// HTTP/2 (`h2weir::head`).
pub fn date_now() -> HeaderValue {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs || d.1.is_empty() {
            let text = httpdate::fmt_http_date(now);
            if let Ok(v) = HeaderValue::from_str(&text) {
                *d = (secs, v);
            }
        }
        d.1.clone()
    })
}

/// A response of weir's own. `close` asks for the client connection to be closed after it.
pub fn elb(status: u16, close: bool) -> Response<Body> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = match status {
        463 => "X-Forwarded-For Too Long",
        _ => code.canonical_reason().unwrap_or(""),
    };
    let text = format!("<html><body><h1>{status} {reason}</h1></body></html>\n");
    let mut r = Response::new(body::full(text));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("weir"));
    if close {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// A status whose response has no content (RFC 9110 §15.3.5 204, §15.3.6 205, §15.4.5 304):
/// weir sends no body for it, whatever the configuration says.
pub fn bodiless(status: u16) -> bool {
    matches!(status, 204 | 205 | 304)
}

/// A fixed-response action's answer; a 204, 205 or 304 goes without `message`
/// (`bodiless`: validation refuses a body with them, a configuration built otherwise cannot
/// send one either).
pub fn fixed(status: u16, content_type: Option<&str>, message: &str) -> Response<Body> {
    let body = if bodiless(status) {
        body::empty()
    } else {
        body::full(message.to_string())
    };
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(c).ok()) {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    r.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("weir"));
    r
}

pub fn redirect(status: u16, location: &str) -> Response<Body> {
    let mut r = Response::new(body::empty());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("weir"));
    r
}

/// The request's parts a redirect's `#{…}` tokens refer to.
#[derive(Debug, Clone, Copy)]
pub struct RedirectFacts<'a> {
    /// `http` or `https`.
    pub protocol: &'a str,
    pub host: &'a str,
    pub port: u16,
    /// Path with its leading '/'.
    pub path: &'a str,
    /// Query without '?'.
    pub query: &'a str,
}

/// Builds the `Location` of a redirect action (ALB's rules: `#{path}` has no leading '/',
/// default ports are left out, an empty query drops the '?'). Pure.
pub fn redirect_location(
    protocol: &str,
    host: &str,
    port: &str,
    path: &str,
    query: &str,
    f: &RedirectFacts<'_>,
) -> String {
    let port_s = f.port.to_string();
    // The request's host comes without its brackets (`decide::host_of`); an IPv6 literal gets
    // them back, as a URI needs them (RFC 3986 §3.2.2).
    let host_s = if f.host.contains(':') {
        format!("[{}]", f.host)
    } else {
        f.host.to_string()
    };
    let sub = |s: &str| {
        s.replace("#{protocol}", f.protocol)
            .replace("#{host}", &host_s)
            .replace("#{port}", &port_s)
            .replace("#{path}", f.path.strip_prefix('/').unwrap_or(f.path))
            .replace("#{query}", f.query)
    };
    let proto = sub(protocol).to_ascii_lowercase();
    let host = sub(host);
    let port = sub(port);
    let mut path = sub(path);
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let query = sub(query);
    let default_port = matches!(
        (proto.as_str(), port.as_str()),
        ("http", "80") | ("https", "443")
    );
    let mut loc = format!("{proto}://{host}");
    if !default_port && !port.is_empty() {
        loc.push(':');
        loc.push_str(&port);
    }
    loc.push_str(&path);
    if !query.is_empty() {
        loc.push('?');
        loc.push_str(&query);
    }
    loc
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: RedirectFacts<'static> = RedirectFacts {
        protocol: "http",
        host: "example.com",
        port: 80,
        path: "/a/b",
        query: "x=1",
    };

    #[test]
    fn bodiless_statuses_get_no_body() {
        use http_body::Body as _;
        for status in [204, 205, 304] {
            let r = fixed(status, Some("text/plain"), "should-not-be-sent\n");
            assert!(r.body().is_end_stream(), "{status} has a body");
            assert_eq!(r.body().size_hint().exact(), Some(0));
        }
        let r = fixed(200, None, "ok\n");
        assert_eq!(r.body().size_hint().exact(), Some(3));
    }

    #[test]
    fn ipv6_host_keeps_its_brackets() {
        let v6 = RedirectFacts {
            host: "::1",
            port: 19410,
            ..F
        };
        assert_eq!(
            redirect_location(
                "HTTPS",
                "#{host}",
                "19411",
                "/redir/#{path}",
                "#{query}",
                &v6
            ),
            "https://[::1]:19411/redir/a/b?x=1"
        );
        let v6 = RedirectFacts {
            host: "2001:db8::5",
            ..F
        };
        assert_eq!(
            redirect_location("HTTPS", "#{host}", "443", "/#{path}", "", &v6),
            "https://[2001:db8::5]/a/b"
        );
        // An IPv4 literal and a name stay as they are.
        let v4 = RedirectFacts {
            host: "127.0.0.1",
            ..F
        };
        assert_eq!(
            redirect_location("HTTPS", "#{host}", "8443", "/#{path}", "", &v4),
            "https://127.0.0.1:8443/a/b"
        );
    }

    #[test]
    fn alb_examples() {
        // HTTP → HTTPS, everything else kept.
        assert_eq!(
            redirect_location("HTTPS", "#{host}", "443", "/#{path}", "#{query}", &F),
            "https://example.com/a/b?x=1"
        );
        // New host, same path.
        assert_eq!(
            redirect_location(
                "#{protocol}",
                "www.example.org",
                "#{port}",
                "/#{path}",
                "#{query}",
                &F
            ),
            "http://www.example.org/a/b?x=1"
        );
        // Path rewrite with the old path embedded, non-default port, query dropped.
        assert_eq!(
            redirect_location("#{protocol}", "#{host}", "8443", "/new/#{path}", "", &F),
            "http://example.com:8443/new/a/b"
        );
        let no_q = RedirectFacts { query: "", ..F };
        assert_eq!(
            redirect_location("HTTPS", "#{host}", "443", "/#{path}", "#{query}", &no_q),
            "https://example.com/a/b"
        );
    }
}
