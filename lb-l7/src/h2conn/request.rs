//! A request's header list → `http::request::Parts`, checked as RFC 9113 §8.2–§8.3 require:
//! field names lowercase tokens, values without NUL/CR/LF or surrounding whitespace, the
//! request pseudo-headers exactly once each and before the regular fields, no response or
//! unknown pseudo-headers, no connection-specific fields, `te` only "trailers", one
//! `content-length`, `:authority` not empty and without userinfo, `:path` without a fragment. A `host` that contradicts `:authority` is
//! passed through (§8.3.1 lets a server refuse it or answer it): the engine-neutral service
//! answers it 400 (HostAuthorityMismatch), as on hyper's path.
//! Several `cookie` fields are joined with "; " (§8.2.3) for the HTTP/1.1 targets. Pure.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Uri, Version};

/// Why a request is malformed (a stream PROTOCOL_ERROR, §8.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed request: {0}")]
pub(super) struct Malformed(pub &'static str);

/// A checked request head.
#[derive(Debug)]
pub(super) struct Head {
    pub parts: http::request::Parts,
    pub content_length: Option<u64>,
    /// A CONNECT request (§8.5), which weir does not tunnel.
    pub connect: bool,
}

/// Collects one header block's fields, for a request or for trailers. Values are copied
/// once, into a buffer the request's `HeaderValue`s, authority and path share: the
/// connection's arena (`with_arena` / `into_arena`), so that a run of requests shares one
/// allocation (a block of [`ARENA_BLOCK`] bytes is freed when the last value in it is, and
/// taken up again by the arena when it is its only user).
pub(super) struct Fields {
    method: Option<Method>,
    scheme: Option<Scheme>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    headers: HeaderMap,
    cookie: Option<Vec<u8>>,
    regular_seen: bool,
    error: Option<&'static str>,
    arena: BytesMut,
}

/// Regular fields a request's header map is made for.
pub(super) const FIELDS: usize = 12;
/// The arena's allocation unit.
pub(super) const ARENA_BLOCK: usize = 4096;

impl Default for Fields {
    fn default() -> Self {
        Fields::with_arena(BytesMut::new(), HeaderMap::with_capacity(FIELDS))
    }
}

impl Fields {
    /// Fields whose values go into `arena` (what is left of it after the previous block) and
    /// whose regular ones into `headers` (empty).
    pub fn with_arena(arena: BytesMut, headers: HeaderMap) -> Self {
        Fields {
            method: None,
            scheme: None,
            authority: None,
            path: None,
            headers,
            cookie: None,
            regular_seen: false,
            error: None,
            arena,
        }
    }

    /// The rest of the arena, for the next block.
    pub fn take_arena(&mut self) -> BytesMut {
        std::mem::take(&mut self.arena)
    }
}

impl Fields {
    /// One decoded field.
    pub fn field(&mut self, name: &[u8], value: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.take(name, value) {
            self.error = Some(e);
        }
    }

    fn take(&mut self, name: &[u8], value: &[u8]) -> Result<(), &'static str> {
        check_edges(value)?;
        if let Some(pseudo) = name.strip_prefix(b":") {
            if self.regular_seen {
                return Err("a pseudo-header after a regular field");
            }
            check_bytes(value)?;
            return self.pseudo(pseudo, value);
        }
        self.regular_seen = true;
        let name = HeaderName::from_lowercase(name).map_err(|_| "an invalid field name")?;
        if is_connection_specific(&name) {
            return Err("a connection-specific field");
        }
        if name == header::TE && value != b"trailers" {
            return Err("te other than \"trailers\"");
        }
        // A regular field's value is checked once, by `HeaderValue` (which refuses every
        // control byte but tab: NUL, CR and LF among them); `invalid_value` only names why.
        if name == header::COOKIE {
            let value = HeaderValue::from_bytes(value).map_err(|_| invalid_value(value))?;
            let c = self.cookie.get_or_insert_with(Vec::new);
            if !c.is_empty() {
                c.extend_from_slice(b"; ");
            }
            c.extend_from_slice(value.as_bytes());
            return Ok(());
        }
        let value =
            HeaderValue::from_maybe_shared(self.copy(value)).map_err(|_| invalid_value(value))?;
        self.headers.append(name, value);
        Ok(())
    }

    /// `v` as `Bytes` in the shared buffer (a new block when the rest is too small; the old
    /// block is reused in place once no value points into it).
    fn copy(&mut self, v: &[u8]) -> Bytes {
        if self.arena.capacity() < v.len() {
            self.arena.reserve(v.len().max(ARENA_BLOCK));
        }
        self.arena.extend_from_slice(v);
        self.arena.split().freeze()
    }

    fn pseudo(&mut self, name: &[u8], value: &[u8]) -> Result<(), &'static str> {
        fn once<T>(slot: &mut Option<T>, v: T) -> Result<(), &'static str> {
            if slot.is_some() {
                return Err("a repeated pseudo-header");
            }
            *slot = Some(v);
            Ok(())
        }
        match name {
            b"method" => {
                let m = Method::from_bytes(value).map_err(|_| "an invalid :method")?;
                once(&mut self.method, m)
            }
            b"scheme" => {
                let s = match value {
                    b"https" => Scheme::HTTPS,
                    b"http" => Scheme::HTTP,
                    _ => Scheme::try_from(value).map_err(|_| "an invalid :scheme")?,
                };
                once(&mut self.scheme, s)
            }
            b"authority" => {
                let a = self.copy(value);
                once(&mut self.authority, a)
            }
            b"path" => {
                let p = self.copy(value);
                once(&mut self.path, p)
            }
            _ => Err("an unknown or response pseudo-header"),
        }
    }

    /// The trailers: regular fields only.
    pub fn trailers(self) -> Result<HeaderMap, Malformed> {
        if let Some(e) = self.error {
            return Err(Malformed(e));
        }
        if self.method.is_some()
            || self.scheme.is_some()
            || self.authority.is_some()
            || self.path.is_some()
        {
            return Err(Malformed("a pseudo-header in trailers"));
        }
        let mut h = self.headers;
        if let Some(c) = self.cookie {
            h.append(header::COOKIE, cookie_value(c)?);
        }
        Ok(h)
    }

    /// The request head.
    pub fn request(mut self) -> Result<Head, Malformed> {
        if let Some(e) = self.error {
            return Err(Malformed(e));
        }
        let method = self.method.take().ok_or(Malformed("no :method"))?;
        if let Some(c) = self.cookie.take() {
            self.headers.append(header::COOKIE, cookie_value(c)?);
        }
        let (content_length, fields) = content_length(&self.headers)?;
        if let (Some(n), 2..) = (content_length, fields) {
            // Several fields of one number go to the HTTP/1.1 target as one (RFC 9110 §8.6).
            self.headers
                .insert(header::CONTENT_LENGTH, http::HeaderValue::from(n));
        }
        let authority = self.authority_checked()?;
        let connect = method == Method::CONNECT;
        let uri = if connect {
            if self.scheme.is_some() || self.path.is_some() {
                return Err(Malformed("CONNECT with :scheme or :path"));
            }
            let a = authority.ok_or(Malformed("CONNECT without :authority"))?;
            let mut p = http::uri::Parts::default();
            p.authority = Some(Authority::from_maybe_shared(a).map_err(|_| BAD_TARGET)?);
            Uri::from_parts(p).map_err(|_| BAD_TARGET)?
        } else {
            let scheme = self.scheme.take().ok_or(Malformed("no :scheme"))?;
            let path = self.path.take().ok_or(Malformed("no :path"))?;
            check_path(&method, &path)?;
            let mut p = http::uri::Parts::default();
            p.path_and_query = Some(PathAndQuery::from_maybe_shared(path).map_err(|_| BAD_TARGET)?);
            // Origin-form (no authority) keeps the path alone. Asterisk-form (OPTIONS *) keeps
            // its authority too, as hyper's h2 builds it: the target's Host is made from it
            // (§8.3.1), and host rules see it; the HTTP/1.1 request line is `OPTIONS *` still.
            if let Some(a) = authority {
                p.scheme = Some(scheme);
                p.authority = Some(Authority::from_maybe_shared(a).map_err(|_| BAD_TARGET)?);
            }
            Uri::from_parts(p).map_err(|_| BAD_TARGET)?
        };
        let mut parts = http::Request::new(()).into_parts().0;
        parts.method = method;
        parts.uri = uri;
        parts.version = Version::HTTP_2;
        parts.headers = self.headers;
        Ok(Head {
            parts,
            content_length,
            connect,
        })
    }

    /// `:authority` (or `host` without it), not empty, without userinfo. A `host` that
    /// differs from `:authority` stays in the headers for the service to answer (400, as
    /// hyper's path).
    fn authority_checked(&mut self) -> Result<Option<Bytes>, Malformed> {
        let host = self.headers.get(header::HOST).map(|h| h.as_bytes());
        match (self.authority.take(), host) {
            (Some(a), _) if a.contains(&b'@') => Err(Malformed("userinfo in :authority")),
            // §8.3.1: present, it MUST NOT be empty (for http and https, which need one).
            (Some(a), _) if a.is_empty() => Err(Malformed("an empty :authority")),
            (Some(a), _) => Ok(Some(a)),
            (None, Some(h)) => Ok(Some(Bytes::copy_from_slice(h))),
            (None, None) => Ok(None),
        }
    }
}

const BAD_TARGET: Malformed = Malformed("an invalid request target");

fn cookie_value(c: Vec<u8>) -> Result<HeaderValue, Malformed> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(c))
        .map_err(|_| Malformed("an invalid cookie"))
}

/// §8.2.1: no whitespace at either end of a value.
fn check_edges(v: &[u8]) -> Result<(), &'static str> {
    let ws = |b: &u8| *b == b' ' || *b == b'\t';
    if v.first().is_some_and(ws) || v.last().is_some_and(ws) {
        return Err("whitespace around a field value");
    }
    Ok(())
}

/// §8.2.1: no NUL, CR or LF in a value (a pseudo-header's: a regular field's value is checked
/// by `HeaderValue`, which refuses these and the other controls).
fn check_bytes(v: &[u8]) -> Result<(), &'static str> {
    if v.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
        return Err("NUL, CR or LF in a field value");
    }
    Ok(())
}

/// Why `HeaderValue` refused `v`.
fn invalid_value(v: &[u8]) -> &'static str {
    check_bytes(v).err().unwrap_or("an invalid field value")
}

fn is_connection_specific(n: &HeaderName) -> bool {
    *n == header::CONNECTION
        || *n == header::TRANSFER_ENCODING
        || *n == header::UPGRADE
        || n.as_str() == "keep-alive"
        || n.as_str() == "proxy-connection"
}

/// §8.3.1: `:path` not empty; "*" only for OPTIONS; otherwise starts with "/"; no fragment
/// (`#` is in neither absolute-path nor query: `PathAndQuery` would cut it and the rest, and
/// the target would get another path than the client sent).
fn check_path(method: &Method, path: &[u8]) -> Result<(), Malformed> {
    if path.contains(&b'#') {
        return Err(Malformed("a fragment (#) in :path"));
    }
    match path.first() {
        None => Err(Malformed("an empty :path")),
        Some(b'/') => Ok(()),
        Some(b'*') if path.len() == 1 && *method == Method::OPTIONS => Ok(()),
        Some(_) => Err(Malformed("a :path not starting with /")),
    }
}

/// All `content-length` fields must be the same number; with how many fields there were.
fn content_length(h: &HeaderMap) -> Result<(Option<u64>, usize), Malformed> {
    let mut out = None;
    let mut fields = 0;
    for v in h.get_all(header::CONTENT_LENGTH) {
        fields += 1;
        let s = v
            .to_str()
            .map_err(|_| Malformed("an invalid content-length"))?;
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Malformed("an invalid content-length"));
        }
        let n: u64 = s
            .parse()
            .map_err(|_| Malformed("an invalid content-length"))?;
        if out.is_some_and(|o| o != n) {
            return Err(Malformed("conflicting content-length"));
        }
        out = Some(n);
    }
    Ok((out, fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(fields: &[(&str, &str)]) -> Result<Head, Malformed> {
        let mut f = Fields::default();
        for (n, v) in fields {
            f.field(n.as_bytes(), v.as_bytes());
        }
        f.request()
    }

    const BASE: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "example.com"),
        (":path", "/a?b=c"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = BASE.to_vec();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn a_good_request_builds_its_parts() {
        let h = req(&with(&[
            ("accept", "*/*"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ]))
        .unwrap();
        assert_eq!(h.parts.method, Method::GET);
        assert_eq!(h.parts.uri, "https://example.com/a?b=c");
        assert_eq!(h.parts.version, Version::HTTP_2);
        assert_eq!(h.parts.headers["accept"], "*/*");
        assert_eq!(h.parts.headers["cookie"], "a=1; b=2");
        assert!(!h.connect);
        // host instead of :authority.
        let h = req(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("host", "h.example"),
        ])
        .unwrap();
        assert_eq!(h.parts.uri, "http://h.example/");
        // A host that contradicts :authority passes (the service answers it 400); the URI
        // keeps :authority, the headers keep host.
        let h = req(&with(&[("host", "other.example")])).unwrap();
        assert_eq!(h.parts.uri, "https://example.com/a?b=c");
        assert_eq!(h.parts.headers["host"], "other.example");
    }

    /// §8.2.1's value rules, checked once per byte: a regular field's by `HeaderValue`, a
    /// pseudo-header's by `check_bytes`; the reason names the byte either way.
    #[test]
    fn a_value_with_a_control_byte_is_refused_by_name() {
        let crlf = "NUL, CR or LF in a field value";
        for (field, why) in [
            (("x", "a\0b"), crlf),
            (("x", "a\r\nx-injected: 1"), crlf),
            (("x", "a\nb"), crlf),
            (("cookie", "a=1\r\nx: y"), crlf),
            (("x", "a\x01b"), "an invalid field value"),
            (("x", "a\x7fb"), "an invalid field value"),
            (("cookie", "a=\x1b"), "an invalid field value"),
            ((":path", "/a\r\nx: y"), crlf),
            ((":authority", "h\0"), crlf),
            (("x", "\tpadded"), "whitespace around a field value"),
        ] {
            let mut f = BASE.to_vec();
            if field.0.starts_with(':') {
                f.retain(|(n, _)| *n != field.0);
                f.insert(0, field);
            } else {
                f.push(field);
            }
            assert_eq!(req(&f).unwrap_err(), Malformed(why), "{field:?}");
        }
        // A tab inside and bytes above 0x7f (obs-text) are values.
        let h = req(&with(&[("x", "a\tb"), ("y", "caf\u{e9}")])).unwrap();
        assert_eq!(h.parts.headers["x"], "a\tb");
        assert_eq!(h.parts.headers["y"].as_bytes(), "caf\u{e9}".as_bytes());
    }

    #[test]
    fn every_rule_of_section_8_3_is_enforced() {
        let bad: Vec<Vec<(&str, &str)>> = vec![
            vec![(":scheme", "https"), (":path", "/")],
            vec![(":method", "GET"), (":path", "/")],
            vec![(":method", "GET"), (":scheme", "https")],
            with(&[(":method", "GET")]),
            with(&[(":path", "/x")]),
            with(&[(":status", "200")]),
            with(&[(":foo", "x")]),
            vec![
                ("accept", "*/*"),
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
            ],
            with(&[("Accept", "x")]),
            with(&[("connection", "close")]),
            with(&[("keep-alive", "1")]),
            with(&[("proxy-connection", "1")]),
            with(&[("transfer-encoding", "chunked")]),
            with(&[("upgrade", "h2c")]),
            with(&[("te", "gzip")]),
            with(&[("x", " padded")]),
            with(&[("x", "a\0b")]),
            with(&[("content-length", "1"), ("content-length", "2")]),
            with(&[("content-length", "+1")]),
            vec![(":method", "GET"), (":scheme", "https"), (":path", "")],
            vec![(":method", "GET"), (":scheme", "https"), (":path", "*")],
            vec![(":method", "GET"), (":scheme", "https"), (":path", "x")],
            vec![
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                (":authority", "u@h"),
            ],
            vec![
                (":method", "CONNECT"),
                (":authority", "h:443"),
                (":path", "/"),
            ],
            vec![(":method", "CONNECT")],
            // A fragment would be cut from the path (and the rest with it).
            vec![
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/a#/../b"),
            ],
            vec![
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/a?x#y"),
            ],
            // Present, `:authority` may not be empty (a `host` does not make up for it).
            vec![
                (":method", "GET"),
                (":scheme", "https"),
                (":authority", ""),
                (":path", "/"),
                ("host", "h.example"),
            ],
        ];
        for b in bad {
            assert!(req(&b).is_err(), "accepted {b:?}");
        }
        assert!(req(&with(&[("te", "trailers")])).is_ok());
        assert_eq!(
            req(&with(&[("content-length", "5")]))
                .unwrap()
                .content_length,
            Some(5)
        );
        let opts = [(":method", "OPTIONS"), (":scheme", "https"), (":path", "*")];
        assert!(req(&opts).is_ok());
        // OPTIONS * keeps its :authority (the target's Host comes from it, §8.3.1).
        let mut opts = opts.to_vec();
        opts.push((":authority", "app.example"));
        let h = req(&opts).unwrap();
        assert_eq!(h.parts.uri.authority().unwrap(), "app.example");
        assert_eq!(h.parts.uri.path(), "*");
        let c = req(&[(":method", "CONNECT"), (":authority", "h:443")]).unwrap();
        assert!(c.connect);
    }

    #[test]
    fn trailers_take_no_pseudo_headers() {
        let mut f = Fields::default();
        f.field(b"grpc-status", b"0");
        assert_eq!(f.trailers().unwrap()["grpc-status"], "0");
        let mut f = Fields::default();
        f.field(b":path", b"/");
        assert!(f.trailers().is_err());
    }
}
