//! Phase `parse`: checks on a parsed request head, before any routing, for both engines. Pure.
//!
//! What cannot be parsed is answered before this: by the HTTP/1.1 engine (`pipeline::codec`: a bad
//! request line or header → 400, a request line over 16 KiB → 414, more than 100 headers or a
//! head over 80 KiB → 431, `Transfer-Encoding` whose last coding is not `chunked` or differing
//! `Content-Length`s → 400; its desync classification, `pipeline::desync`) or by hyper's HTTP/2
//! server.

use crate::headers::{MAX_XFF_ADDRESSES, xff_count};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version, header};

/// ALB: request line ≤ 16 KiB, one header ≤ 16 KiB, all headers ≤ 64 KiB.
pub const MAX_REQUEST_LINE: usize = 16 * 1024;
pub const MAX_HEADER: usize = 16 * 1024;
pub const MAX_HEADERS_TOTAL: usize = 64 * 1024;

/// A request weir answers itself instead of routing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    pub status: u16,
    /// ALB's `error_reason`-like tag for the access log.
    pub reason: &'static str,
    /// Close the client connection after the response.
    pub close: bool,
    /// The request breaks RFC 9112's rules for a request head (counted as
    /// `DesyncMitigationMode_NonCompliant_Request_Count` when the classifier did not already).
    pub desync: bool,
}

const fn reject(status: u16, reason: &'static str) -> Reject {
    Reject {
        status,
        reason,
        close: true,
        desync: false,
    }
}

const fn non_compliant(reason: &'static str) -> Reject {
    Reject {
        desync: true,
        ..reject(400, reason)
    }
}

/// What `check` found that routing reads next (no second look-up for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked<'h> {
    /// The request's `Host` (checked: one, a valid authority), if it has one.
    pub host: Option<&'h HeaderValue>,
    /// That `Host`'s host, without port or brackets (`authority_host`): what routing reads,
    /// found by the check (`decide::host_from` read the value again for it: 272 instructions
    /// a request, callgrind).
    pub host_name: Option<&'h str>,
}

/// Checks a request head; `Ok` means route it. `trace_header`: the configured trace header
/// (weir writes it, so a client's `Connection` may not name it).
pub fn check<'h>(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &'h HeaderMap,
    trace_header: &HeaderName,
) -> Result<Checked<'h>, Reject> {
    if method == Method::CONNECT {
        // weir is not a forward proxy: no tunnels to arbitrary hosts.
        return Err(Reject {
            close: false,
            ..reject(405, "MethodNotAllowed")
        });
    }
    let uri_len = uri.path_and_query().map_or(1, |p| p.as_str().len());
    if method.as_str().len() + uri_len + 10 > MAX_REQUEST_LINE {
        return Err(reject(414, "RequestLineTooLong"));
    }
    let mut total = 0;
    let mut present = Present::default();
    for (n, v) in headers {
        let len = n.as_str().len() + v.len() + 4;
        if len > MAX_HEADER {
            return Err(reject(431, "HeaderTooLarge"));
        }
        total += len;
        present.note(n, v);
    }
    if total > MAX_HEADERS_TOTAL {
        return Err(reject(431, "HeadersTooLarge"));
    }
    let host_name = check_host(uri, version, present.hosts, present.host)?;
    if present.connection && connection_names_protected(headers, trace_header) {
        // `Connection: Content-Length` would have weir strip the framing it forwards by (the
        // body then reaches the target as a request no rule saw); `Host`, X-Forwarded-* and
        // the trace header are weir's routing and statements to the target.
        return Err(reject(400, "ConnectionRemovesProtectedHeader"));
    }
    if present.transfer_encoding {
        check_transfer_codings(headers)?;
    }
    let xff = if present.xff { xff_count(headers) } else { 0 };
    if xff > MAX_XFF_ADDRESSES {
        return Err(Reject {
            status: 463,
            reason: "XForwardedForTooLong",
            close: false,
            desync: false,
        });
    }
    Ok(Checked {
        host: present.host,
        host_name,
    })
}

/// Which of the headers `check` looks into a request has, noted in its one pass over them:
/// an absent one then costs no look-up (a hash and a probe each, per request), and `Host`'s
/// value is at hand.
#[derive(Default)]
struct Present<'h> {
    connection: bool,
    transfer_encoding: bool,
    xff: bool,
    hosts: usize,
    /// The first `Host`.
    host: Option<&'h HeaderValue>,
}

impl<'h> Present<'h> {
    fn note(&mut self, n: &HeaderName, v: &'h HeaderValue) {
        if *n == header::HOST {
            self.hosts += 1;
            self.host = self.host.or(Some(v));
        }
        self.connection |= n == header::CONNECTION;
        self.transfer_encoding |= n == header::TRANSFER_ENCODING;
        self.xff |= n.as_str() == "x-forwarded-for";
    }
}

/// RFC 9112 §3.2: exactly one `Host` in an HTTP/1.1 request, with a valid value (an
/// absolute-form target's authority has replaced it by then: `pipeline::codec`), and no userinfo in
/// a URI's authority (RFC 9110 §4.2.4; RFC 9113 §8.3.1 for HTTP/2's `:authority`).
/// `hosts`: how many `Host` fields the request has; `first`: the first one's value. Returns
/// the host of that value (`authority_host`).
fn check_host<'h>(
    uri: &Uri,
    version: Version,
    hosts: usize,
    first: Option<&'h HeaderValue>,
) -> Result<Option<&'h str>, Reject> {
    if hosts > 1 {
        return Err(non_compliant("MultipleHost"));
    }
    let name = match first {
        None if version == Version::HTTP_11 => return Err(reject(400, "MissingHost")),
        None => None,
        Some(h) => match authority_host(h.as_bytes()) {
            None => return Err(non_compliant("InvalidHost")),
            name => name,
        },
    };
    if let Some(a) = uri.authority()
        && !valid_authority(a.as_str().as_bytes())
    {
        return Err(non_compliant("InvalidHost"));
    }
    Ok(name)
}

/// `host [":" port]` as RFC 9110 §7.2 / RFC 3986 §3.2 write it, without userinfo: a bracketed
/// IPv6 address, or a reg-name / IPv4 address of letters, digits, `-._~` and sub-delims; a
/// port of 1–5 digits up to 65535. Percent-encoding is refused although RFC 3986 allows it in
/// a reg-name: no DNS name needs it, and a host a target would decode differently from weir's
/// host-header rules (`%61dmin.example.com`) is a way around them. With this, no `Host` can
/// carry `/`, `?`, `#`, `@`, `\`, spaces or controls into a redirect's `#{host}`.
pub fn valid_authority(v: &[u8]) -> bool {
    authority_host(v).is_some()
}

/// The host of a valid authority (`valid_authority`): without its port, an IPv6 address
/// without its brackets, as `decide::host_from` reads it (`authority_host_is_host_from`);
/// `None` when the authority is not valid.
pub fn authority_host(v: &[u8]) -> Option<&str> {
    if v.first() == Some(&b'[') {
        return bracketed_host(v);
    }
    // A reg-name or IPv4 address holds no ':', so the first byte it may not hold ends it: one
    // pass, not a search for the last ':' and then a second pass over the host (249 → 146
    // instructions for `127.0.0.1:18601`, callgrind).
    let end = v.iter().position(|&b| !reg_name_byte(b)).unwrap_or(v.len());
    let (host, port) = v.split_at(end);
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => port_number(digits).is_some_and(|n| n <= 65_535),
        _ => false,
    };
    // Safety: `REG_NAME` admits ASCII bytes only (`reg_name_bytes_are_ascii`), so these bytes
    // are UTF-8 (not scanned a second time for it).
    (!host.is_empty() && port_ok).then(|| unsafe { std::str::from_utf8_unchecked(host) })
}

/// `authority_host` of an authority that starts with `[`: an IPv6 address, then maybe a port.
fn bracketed_host(v: &[u8]) -> Option<&str> {
    let (host, port_ok) = match v.iter().rposition(|&b| b == b':') {
        None => (v, true),
        Some(i) => match port_number(&v[i + 1..]) {
            Some(n) => (&v[..i], n <= 65_535),
            // A ':' inside brackets belongs to the IPv6 address.
            None if v[i..].contains(&b']') => (v, true),
            None => return None,
        },
    };
    let ip6 = host.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let name = std::str::from_utf8(ip6)
        .ok()
        .filter(|s| s.parse::<std::net::Ipv6Addr>().is_ok())?;
    port_ok.then_some(name)
}

/// A port's digits (1 to 5 of them) as a number; `None` for anything else.
fn port_number(p: &[u8]) -> Option<u32> {
    if !(1..=5).contains(&p.len()) {
        return None;
    }
    p.iter().try_fold(0u32, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
    })
}

/// RFC 3986 `unreserved` and `sub-delims` (not `pct-encoded`: see `valid_authority`).
fn reg_name_byte(b: u8) -> bool {
    REG_NAME[usize::from(b)]
}

/// `reg_name_byte` as a table: every request's Host goes through it byte by byte (a search of
/// the 15 punctuation bytes per byte cost ~7 instructions more a byte, by callgrind).
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let punct = b"-._~!$&'()*+,;=";
    let mut i = 0;
    while i < punct.len() {
        t[punct[i] as usize] = true;
        i += 1;
    }
    t
};

/// Does `Connection` name a header that frames or routes the request, or that weir states to
/// the target: `Content-Length`, `Transfer-Encoding`, `Host`, any `X-Forwarded-*`, the trace
/// header? (Hop-by-hop removal would delete it after weir decided on it.)
pub fn connection_names_protected(h: &HeaderMap, trace_header: &HeaderName) -> bool {
    h.get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|t| {
            [
                header::CONTENT_LENGTH,
                header::TRANSFER_ENCODING,
                header::HOST,
            ]
            .iter()
            .chain([trace_header])
            .any(|p| t.eq_ignore_ascii_case(p.as_str().as_bytes()))
                || t.get(..12)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"x-forwarded-"))
        })
}

/// ALB: a `Transfer-Encoding` with a coding other than `chunked` or `identity` → 501.
fn check_transfer_codings(headers: &HeaderMap) -> Result<(), Reject> {
    let unsupported = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .any(|c| !c.eq_ignore_ascii_case(b"chunked") && !c.eq_ignore_ascii_case(b"identity"));
    if unsupported {
        return Err(reject(501, "UnsupportedTransferEncoding"));
    }
    Ok(())
}

/// A declared `Content-Length` over `max` (weir's `max_request_body_bytes`) → 413; the
/// connection is closed, the body is not read. Every value counts, lists included
/// (`Content-Length: 4096, 4096`, which monitor mode forwards as 4096). A body without a
/// declared length is counted as it is relayed instead.
pub fn check_body_length(headers: &HeaderMap, max: Option<u64>) -> Result<(), Reject> {
    let Some(max) = max else {
        return Ok(());
    };
    let over = headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|n| {
            // A number too long for u64 is over any limit.
            !n.is_empty()
                && n.iter().all(u8::is_ascii_digit)
                && std::str::from_utf8(n)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_none_or(|n| n > max)
        });
    if over {
        return Err(reject(413, "RequestBodyTooLarge"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    fn trace() -> HeaderName {
        HeaderName::from_static("x-amzn-trace-id")
    }

    fn run_with(method: &Method, uri: &str, pairs: &[(&str, &str)]) -> Result<(), Reject> {
        let uri: Uri = uri.parse().unwrap();
        check(method, &uri, Version::HTTP_11, &h(pairs), &trace()).map(|_| ())
    }

    fn run(pairs: &[(&str, &str)]) -> Result<(), Reject> {
        run_with(&Method::GET, "/", pairs)
    }

    fn status<T>(r: Result<T, Reject>) -> u16 {
        r.map_or_else(|e| e.status, |_| 0)
    }

    #[test]
    fn body_length_limit() {
        let cl = |n: &str| h(&[("host", "a"), ("content-length", n)]);
        assert_eq!(check_body_length(&cl("1000000"), None), Ok(()));
        assert_eq!(check_body_length(&cl("1024"), Some(1024)), Ok(()));
        let over = check_body_length(&cl("1025"), Some(1024)).unwrap_err();
        assert_eq!((over.status, over.close), (413, true));
        assert_eq!(check_body_length(&h(&[("host", "a")]), Some(1)), Ok(()));
        // A list counts as its values (monitor mode forwards it with its one length).
        let list = check_body_length(&cl("4096, 4096"), Some(1024)).unwrap_err();
        assert_eq!(list.status, 413);
        assert_eq!(
            status(check_body_length(&cl("99999999999999999999999"), Some(1))),
            413
        );
    }

    #[test]
    fn table() {
        assert_eq!(run(&[("host", "a")]), Ok(()));
        assert_eq!(status(run(&[])), 400);
        let two = run(&[("host", "a"), ("host", "b")]).unwrap_err();
        assert_eq!((two.status, two.desync), (400, true));
        assert_eq!(
            status(run(&[
                ("host", "a"),
                ("transfer-encoding", "gzip, chunked")
            ])),
            501
        );
        assert_eq!(
            run(&[("host", "a"), ("transfer-encoding", "chunked")]),
            Ok(())
        );
        let big = "x".repeat(MAX_HEADER);
        assert_eq!(status(run(&[("host", "a"), ("x-big", &big)])), 431);
        let many: Vec<(String, String)> = (0..9)
            .map(|i| (format!("x-{i}"), "y".repeat(8000)))
            .collect();
        let many_ref: Vec<(&str, &str)> = many
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .chain([("host", "a")])
            .collect();
        assert_eq!(status(run(&many_ref)), 431);
        let connect = run_with(&Method::CONNECT, "a:443", &[("host", "a:443")]);
        assert_eq!(status(connect), 405);
        let xff = vec!["10.0.0.1"; 31].join(",");
        assert_eq!(
            status(run(&[("host", "a"), ("x-forwarded-for", &xff)])),
            463
        );
        let xff30 = vec!["10.0.0.1"; 30].join(",");
        assert_eq!(run(&[("host", "a"), ("x-forwarded-for", &xff30)]), Ok(()));
        let long = format!("/{}", "a".repeat(17_000));
        assert_eq!(status(run_with(&Method::GET, &long, &[("host", "a")])), 414);
    }

    #[test]
    fn connection_may_not_name_what_frames_or_routes() {
        for named in [
            "Content-Length",
            "keep-alive, content-length",
            "transfer-encoding",
            "Host",
            "close,X-Forwarded-For",
            "x-forwarded-proto",
            "X-Forwarded-Port",
            "x-forwarded-anything",
            "X-Amzn-Trace-Id",
        ] {
            let r = run(&[("host", "a"), ("connection", named)]).unwrap_err();
            assert_eq!(
                (r.status, r.close, r.reason),
                (400, true, "ConnectionRemovesProtectedHeader"),
                "{named}"
            );
        }
        // Over several Connection lines too.
        let two_lines = run(&[
            ("host", "a"),
            ("connection", "keep-alive"),
            ("connection", "content-length"),
        ]);
        assert_eq!(status(two_lines), 400);
        for fine in [
            "keep-alive",
            "close",
            "Upgrade",
            "x-secret, te",
            "x-forwarded",
        ] {
            assert_eq!(
                run(&[("host", "a"), ("connection", fine)]),
                Ok(()),
                "{fine}"
            );
        }
        // The configured trace header is the one protected.
        let other = HeaderName::from_static("x-trace");
        let uri: Uri = "/".parse().unwrap();
        let hm = h(&[("host", "a"), ("connection", "X-Trace")]);
        assert_eq!(
            status(check(&Method::GET, &uri, Version::HTTP_11, &hm, &other)),
            400
        );
    }

    #[test]
    fn host_syntax() {
        for good in [
            "a",
            "example.com",
            "Example.COM.",
            "a-b_c~d.example:8080",
            "127.0.0.1:80",
            "[::1]",
            "[2001:db8::1]:443",
            "a:65535",
            "a:0",
        ] {
            assert!(valid_authority(good.as_bytes()), "{good}");
            assert_eq!(run(&[("host", good)]), Ok(()), "{good}");
        }
        for bad in [
            "",
            "evil.com/x",
            "a@b",
            "user:pw@a.example",
            "a b",
            "a\tb",
            "evil.com?x",
            "evil.com#x",
            "evil.com\\x",
            "a:",
            "a:65536",
            "a:123456",
            "a:8o",
            "a:b:c",
            "[::1",
            "[zz::1]",
            "[::1]x",
            "%61dmin.example",
            ":80",
            "a\"b",
            "a<b>",
        ] {
            assert!(!valid_authority(bad.as_bytes()), "{bad:?}");
        }
        for bad in ["evil.com/x", "a@b", "a b", "a:99999"] {
            let r = run(&[("host", bad)]).unwrap_err();
            assert_eq!(
                (r.status, r.close, r.reason),
                (400, true, "InvalidHost"),
                "{bad}"
            );
        }
        // Control characters cannot even be a HeaderValue; bytes ≥ 0x80 can.
        let hm = {
            let mut m = HeaderMap::new();
            m.insert(
                header::HOST,
                http::HeaderValue::from_bytes(b"\xffa").unwrap(),
            );
            m
        };
        let uri: Uri = "/".parse().unwrap();
        assert_eq!(
            status(check(&Method::GET, &uri, Version::HTTP_11, &hm, &trace())),
            400
        );
        // A URI's authority (absolute-form, HTTP/2 `:authority`) may not carry userinfo.
        let abs = run_with(
            &Method::GET,
            "http://u@a.example/x",
            &[("host", "a.example")],
        );
        assert_eq!(status(abs), 400);
        let h2: Uri = "https://a.example/x".parse().unwrap();
        assert_eq!(
            check(
                &Method::GET,
                &h2,
                Version::HTTP_2,
                &HeaderMap::new(),
                &trace()
            ),
            Ok(Checked {
                host: None,
                host_name: None
            })
        );
    }

    /// `valid_authority` before `authority_host` (the oracle).
    fn valid_authority_old(v: &[u8]) -> bool {
        let (host, port_ok) = match v.iter().rposition(|&b| b == b':') {
            None => (v, true),
            Some(i) => match port_number(&v[i + 1..]) {
                Some(n) => (&v[..i], n <= 65_535),
                None if v[i..].contains(&b']') => (v, true),
                None => return false,
            },
        };
        let host_ok = match host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")) {
            Some(ip6) => {
                std::str::from_utf8(ip6).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
            }
            None => !host.is_empty() && host.iter().all(|&b| reg_name_byte(b)),
        };
        port_ok && host_ok
    }

    #[test]
    fn reg_name_bytes_are_ascii() {
        for b in 0..=255u8 {
            assert!(!reg_name_byte(b) || b.is_ascii(), "{b:#04x}");
        }
    }

    /// `authority_host` accepts what `valid_authority` did, and gives the host routing read
    /// from it before (`decide::host_from`): the hand-written cases and seeded random strings
    /// of the bytes an authority is made of, and of some it may not hold.
    #[test]
    fn authority_host_is_host_from() {
        let alphabet = b"a0Z9:[]..-_~%@ /?#\\\x7f\x80\xff\t1f:6]";
        let mut rng = fastrand::Rng::with_seed(31);
        let mut cases: Vec<Vec<u8>> = [
            "a",
            "a:80",
            "[::1]",
            "[::1]:80",
            "[::1:80]",
            "[::1]:",
            "[::1]x",
            "a:65535",
            "a:65536",
            "a:0",
            ":80",
            "[]",
            "[]:1",
            "[v1.x]",
            "127.0.0.1:18601",
            "a::1",
            "[::ffff:1.2.3.4]:443",
            "x.example.:1",
            "a:00080",
            "a:000080",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        for _ in 0..200_000 {
            let n = rng.usize(0..14);
            cases.push(
                (0..n)
                    .map(|_| alphabet[rng.usize(..alphabet.len())])
                    .collect(),
            );
        }
        // Made of parts, valid and not, so that bracketed addresses and ports come up often.
        let hosts = [
            "a.b",
            "[::1]",
            "[1:2::f]",
            "[::ffff:1.2.3.4]",
            "[::1",
            "::1",
            "x",
            "",
        ];
        let ports = [
            "", ":", ":80", ":65535", ":65536", ":0", ":123456", ":8o", "]:1",
        ];
        for _ in 0..20_000 {
            let mut v = hosts[rng.usize(..hosts.len())].as_bytes().to_vec();
            v.extend_from_slice(ports[rng.usize(..ports.len())].as_bytes());
            if rng.u8(..4) == 0 {
                v.insert(rng.usize(..=v.len()), alphabet[rng.usize(..alphabet.len())]);
            }
            cases.push(v);
        }
        let mut valid = 0;
        let uri: Uri = "/".parse().unwrap();
        for v in &cases {
            let name = authority_host(v);
            assert_eq!(name.is_some(), valid_authority_old(v), "{v:?}");
            assert_eq!(valid_authority(v), valid_authority_old(v), "{v:?}");
            if let Some(name) = name {
                valid += 1;
                let value = HeaderValue::from_bytes(v).unwrap();
                let old = crate::pipeline::decide::host_from(Some(&value), &uri);
                assert_eq!(Some(name), old.as_deref(), "{v:?}");
            }
        }
        assert!(valid > 15_000, "only {valid} valid authorities");
    }

    #[test]
    fn the_checked_host_is_the_request_host() {
        let uri: Uri = "/".parse().unwrap();
        let hm = h(&[("user-agent", "x"), ("host", "a.example:8080")]);
        let c = check(&Method::GET, &uri, Version::HTTP_11, &hm, &trace()).unwrap();
        assert_eq!(c.host, hm.get(header::HOST));
        assert_eq!(c.host_name, Some("a.example"));
        let hm10 = h(&[("user-agent", "x")]);
        let c = check(&Method::GET, &uri, Version::HTTP_10, &hm10, &trace()).unwrap();
        assert_eq!((c.host, c.host_name), (None, None));
    }
}
