//! The HTTP/1.1 wire format, pure: request and response heads (parsed with `httparse`), body
//! framing (RFC 9112 §6), a chunked-body scanner and re-encoder, and head serialisation. No I/O.

use crate::pipeline::parse::{MAX_HEADERS_TOTAL, MAX_REQUEST_LINE};
use crate::spares::Spares;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

/// ALB's limit on the number of request headers; more is 431.
pub const MAX_HEADERS: usize = 100;
/// A request head may be this long in all (request line + headers); more is 431 (or 414).
pub const MAX_HEAD: usize = MAX_REQUEST_LINE + MAX_HEADERS_TOTAL;
/// A target's response head may be this long; more is a malformed response (502).
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_RESPONSE_HEADERS: usize = 128;

/// Why a request head was refused before it could be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadError {
    pub status: u16,
    pub reason: &'static str,
}

const fn head_error(status: u16, reason: &'static str) -> HeadError {
    HeadError { status, reason }
}

/// A parsed request head; the head's bytes were taken off the front of the buffer.
#[derive(Debug)]
pub struct RequestHead {
    pub parts: http::request::Parts,
    /// The raw head had a `Content-Length` line (kept for the desync checks).
    pub saw_content_length: bool,
    /// Bytes of the head on the wire.
    pub len: usize,
    /// ALB's desync classification of the head's raw bytes (`pipeline::desync`).
    pub class: super::desync::Classification,
}

/// A `Content-Length` that is not one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadContentLength;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

/// Parses a request head at the front of `buf`. `Ok(None)`: not complete yet (read more).
/// On success the head's bytes are split off `buf`; what follows (body, pipelined requests)
/// stays in it.
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<RequestHead>, HeadError> {
    // Uninitialised slots (see `parse_response`).
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if !line_done(buf, MAX_REQUEST_LINE) {
                Err(head_error(414, "RequestLineTooLong"))
            } else if buf.len() >= MAX_HEAD {
                Err(head_error(431, "HeadersTooLarge"))
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(head_error(431, "TooManyHeaders"));
        }
        Err(_) => return Err(head_error(400, "MalformedRequest")),
    };
    let base = buf.as_ptr() as usize;
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| head_error(400, "MalformedMethod"))?;
    let path = req.path.unwrap_or("");
    let path_range = range_of(base, path.as_bytes());
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // Not a zeroed array: that cleared 100 slots (3.2 KB) on every request to use a few.
    // httparse gives at most `MAX_HEADERS` fields.
    let mut ranges = arrayvec::ArrayVec::<_, MAX_HEADERS>::new();
    for h in req.headers.iter() {
        let range = (range_of(base, h.name.as_bytes()), range_of(base, h.value));
        if ranges.try_push(range).is_err() {
            return Err(head_error(431, "TooManyHeaders")); // not reached: as many slots
        }
    }
    let n = ranges.len();
    let class = super::desync::classify_parsed(&req, &buf[..len]);
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path_range.0..path_range.1))
        .map_err(|_| head_error(400, "MalformedUri"))?;
    if !request_target_ok(&method, &head[path_range.0..path_range.1], &uri) {
        return Err(head_error(400, "MalformedUri"));
    }
    // Room for what `prepare_upstream` adds (X-Forwarded-*, the trace id): no regrowth. A
    // spare map when the HTTP/1.1 engine gave one back (`recycle_headers`).
    let mut headers = spare_map(n + 6);
    let mut saw_content_length = false;
    for &((ns, ne), (vs, ve)) in &ranges {
        let name =
            header_name(&head[ns..ne]).map_err(|_| head_error(400, "MalformedHeaderName"))?;
        // Safety (not memory safety: `HeaderValue`'s own invariant): httparse admitted these
        // bytes only if each is one `HeaderValue` admits (HTAB, SP–`~`, 0x80–0xFF), so the
        // value is not checked a second time, byte by byte (~4 instructions a byte);
        // `httparse_admits_what_header_values_admit` holds the two sets equal, and a debug
        // build checks every value again.
        let value = unsafe { HeaderValue::from_maybe_shared_unchecked(head.slice(vs..ve)) };
        saw_content_length |= name == header::CONTENT_LENGTH;
        headers.append(name, value);
    }
    authority_wins(&method, &uri, version, &mut headers);
    let uri = if method == Method::OPTIONS && about_the_server(&head[path_range.0..path_range.1]) {
        Uri::from_static("*")
    } else {
        uri
    };
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.version = version;
    // The defaults replaced own no memory (`Uri`'s is a static `/`, an empty map allocates
    // nothing): forgotten, not dropped field by field (~60 instructions a request).
    std::mem::forget(std::mem::replace(&mut parts.uri, uri));
    std::mem::forget(std::mem::replace(&mut parts.headers, headers));
    Ok(Some(RequestHead {
        parts,
        saw_content_length,
        len,
        class,
    }))
}

/// `HeaderName::from_bytes`, with the fields most requests carry recognised by their length
/// and one case-blind compare, as the general parse folds the name's case into a buffer
/// before it matches it (~100 instructions a name): `parse_request` with `h2load`'s `Host`
/// and `User-Agent` went from 581 to 394 instructions (callgrind).
fn header_name(b: &[u8]) -> Result<HeaderName, http::header::InvalidHeaderName> {
    match common_name(b) {
        Some(n) => Ok(n),
        None => HeaderName::from_bytes(b),
    }
}

/// The standard name `b` spells in any case, among the common request fields (`None` for any
/// other: the general parse decides). `common_names_are_what_from_bytes_makes` holds each
/// equal to `HeaderName::from_bytes`.
fn common_name(b: &[u8]) -> Option<HeaderName> {
    let is = |lit: &[u8]| b.eq_ignore_ascii_case(lit);
    Some(match b.len() {
        4 if is(b"host") => header::HOST,
        6 if is(b"accept") => header::ACCEPT,
        6 if is(b"cookie") => header::COOKIE,
        6 if is(b"origin") => header::ORIGIN,
        7 if is(b"referer") => header::REFERER,
        10 if is(b"user-agent") => header::USER_AGENT,
        10 if is(b"connection") => header::CONNECTION,
        12 if is(b"content-type") => header::CONTENT_TYPE,
        13 if is(b"authorization") => header::AUTHORIZATION,
        13 if is(b"cache-control") => header::CACHE_CONTROL,
        14 if is(b"content-length") => header::CONTENT_LENGTH,
        15 if is(b"accept-encoding") => header::ACCEPT_ENCODING,
        15 if is(b"accept-language") => header::ACCEPT_LANGUAGE,
        _ => return None,
    })
}

/// RFC 9112 §3.2.2: the authority of an absolute-form target wins over `Host`, so weir routes
/// on it and the target's `Host` is it. It replaces a single `Host` (or stands in for a
/// missing one in HTTP/1.0); a missing or repeated `Host` in HTTP/1.1 is left for
/// `pipeline::parse::check` to refuse (400), as RFC 9112 §3.2 wants whatever the target says.
fn authority_wins(method: &Method, uri: &Uri, version: Version, h: &mut HeaderMap) {
    let Some(authority) = uri.authority().filter(|_| method != Method::CONNECT) else {
        return;
    };
    let hosts = h.get_all(header::HOST).iter().count();
    if hosts == 1 || (hosts == 0 && version == Version::HTTP_10) {
        // Not a valid header value (cannot happen: `Uri` checked it) → left as it was.
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            h.insert(header::HOST, v);
        }
    }
}

/// RFC 9112 §3.2: origin-form (`/path?q`), absolute-form (`http(s)://host/path`), `*` for
/// OPTIONS, authority-form for CONNECT only. Anything else (e.g. `GET x HTTP/1.1`, which `Uri`
/// would read as a host) is refused rather than forwarded as `/`. A `#` is in no form (a
/// fragment is the client's own): `Uri` cut it, so `/a#/../admin` went out as `/a` — refused, as
/// HAProxy does since CVE-2023-45539 (a path rule read `/index.html#.png` as a `.png`).
fn request_target_ok(method: &Method, raw: &[u8], uri: &Uri) -> bool {
    if raw.contains(&b'#') {
        return false;
    }
    match raw.first() {
        Some(b'/') => true,
        Some(b'*') => raw == b"*" && method == Method::OPTIONS,
        _ if method == Method::CONNECT => true,
        _ => {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.authority().is_some()
                && raw.windows(3).any(|w| w == b"://")
        }
    }
}

/// An absolute-form target with neither path nor query (`http://a.example:8001`): for
/// `OPTIONS`, a question about the server itself, which the last proxy MUST send as `OPTIONS *`
/// (RFC 9112 §3.2.4) — `Uri` reads it as `/`, a question about that resource. Its authority is
/// already the `Host` (`authority_wins`).
fn about_the_server(raw: &[u8]) -> bool {
    let Some(at) = raw.windows(3).position(|w| w == b"://") else {
        return false;
    };
    !raw[at + 3..].iter().any(|&b| b == b'/' || b == b'?')
}

/// Has the request line ended within the first `max` bytes (or is there less than that)?
fn line_done(buf: &[u8], max: usize) -> bool {
    buf.len() < max || buf[..max].contains(&b'\n')
}

fn range_of(base: usize, s: &[u8]) -> (usize, usize) {
    let start = s.as_ptr() as usize - base;
    (start, start + s.len())
}

/// The request-target weir sends a target (origin-form, RFC 9112 §3.2.1): the URI's path and
/// query, with the `/` an absolute-form target without a path leaves out — `GET
/// http://a.example?x=1` has the query `?x=1` and no path, and went out as `GET ?x=1`, a
/// request line targets refuse (nginx: 400) while weir had routed it as `/`.
pub fn request_target(uri: &Uri) -> std::borrow::Cow<'_, str> {
    match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("") => "/".into(),
        Some(q) if q.starts_with('?') => format!("/{q}").into(),
        Some(p) => p.into(),
    }
}

/// The body framing of a request (after `parse::check`, which refused unknown codings and,
/// except in `monitor` mode, `Content-Length` together with `Transfer-Encoding`).
pub fn request_framing(h: &HeaderMap) -> Result<Framing, HeadError> {
    if h.has(&header::TRANSFER_ENCODING) {
        return if last_coding_chunked(h) {
            Ok(Framing::Chunked)
        } else {
            Err(head_error(400, "TransferEncodingNotChunked"))
        };
    }
    if !h.has(&header::CONTENT_LENGTH) {
        return Ok(Framing::Empty);
    }
    match content_length(h) {
        Err(()) => Err(head_error(400, "BadContentLength")),
        Ok(None | Some(0)) => Ok(Framing::Empty),
        Ok(Some(n)) => Ok(Framing::Length(n)),
    }
}

/// The values of header `name` in a head, in order: a `HeaderMap` (requests) or a target's
/// raw response head (read in place: no map is built per response).
pub trait Fields: Sized {
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl DoubleEndedIterator<Item = &'a [u8]>;
    fn has(&self, name: &HeaderName) -> bool {
        self.values(name).next().is_some()
    }
    /// The head's `Content-Length` (`content_length`; a response head found it as it was
    /// parsed).
    fn length(&self) -> Result<Option<u64>, BadContentLength> {
        content_length(self).map_err(|()| BadContentLength)
    }
    /// Is the last coding of the last `Transfer-Encoding` `chunked`?
    fn chunked_last(&self) -> bool {
        last_coding_chunked(self)
    }
    /// The `close` and `keep-alive` options of the head's `Connection` fields.
    fn tokens(&self) -> ConnectionTokens {
        connection_tokens(self)
    }
}

impl Fields for HeaderMap {
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl DoubleEndedIterator<Item = &'a [u8]> {
        self.get_all(name).into_iter().map(HeaderValue::as_bytes)
    }
    fn has(&self, name: &HeaderName) -> bool {
        crate::headers::has(self, name)
    }
    fn tokens(&self) -> ConnectionTokens {
        // Most requests have no `Connection`: no look-up of its values then.
        if self.has(&header::CONNECTION) {
            connection_tokens(self)
        } else {
            ConnectionTokens::default()
        }
    }
}

/// The body framing of a target's response to a request with `method`.
pub fn response_framing(
    method: &Method,
    status: u16,
    h: &impl Fields,
) -> Result<Framing, BadContentLength> {
    if method == Method::HEAD || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    if h.has(&header::TRANSFER_ENCODING) {
        return Ok(if h.chunked_last() {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    Ok(match h.length()? {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

fn last_coding_chunked(h: &impl Fields) -> bool {
    h.values(&header::TRANSFER_ENCODING)
        .next_back()
        .is_some_and(ends_chunked)
}

/// Is the last coding of one `Transfer-Encoding` value `chunked`?
fn ends_chunked(v: &[u8]) -> bool {
    v.rsplit(|&b| b == b',')
        .next()
        .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// Every `Content-Length` (and every comma-separated value in one) must be the same number.
fn content_length(h: &impl Fields) -> Result<Option<u64>, ()> {
    let mut found = None;
    for v in h.values(&header::CONTENT_LENGTH) {
        fold_length(&mut found, v)?;
    }
    Ok(found)
}

/// One `Content-Length` value into the number the values before it (`found`) agreed on.
fn fold_length(found: &mut Option<u64>, v: &[u8]) -> Result<(), ()> {
    for part in v.split(|&b| b == b',') {
        let p = part.trim_ascii();
        if p.is_empty() || p.len() > 18 || !p.iter().all(u8::is_ascii_digit) {
            return Err(());
        }
        let n: u64 = p.iter().fold(0, |a, &d| a * 10 + u64::from(d - b'0'));
        if found.is_some_and(|f| f != n) {
            return Err(());
        }
        *found = Some(n);
    }
    Ok(())
}

/// Does the request carry `Expect: 100-continue`? (weir answers it and does not pass it on.)
pub fn expects_continue(h: &HeaderMap) -> bool {
    crate::headers::first(h, &header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// May the client be holding its body back until it hears 100 (Continue) or a final status?
/// An HTTP/1.0 client's expectation is ignored (RFC 9110 §10.1.1).
pub fn awaits_continue(version: Version, h: &HeaderMap) -> bool {
    version != Version::HTTP_10 && expects_continue(h)
}

/// Does the client want the connection kept open after this request?
pub fn client_keeps_alive(version: Version, h: &impl Fields) -> bool {
    let tokens = h.tokens();
    match version {
        // RFC 9112 §9.3: `close` wins over `keep-alive`.
        Version::HTTP_10 => tokens.keep_alive && !tokens.close,
        _ => !tokens.close,
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionTokens {
    pub close: bool,
    pub keep_alive: bool,
}

pub fn connection_tokens(h: &impl Fields) -> ConnectionTokens {
    let mut t = ConnectionTokens::default();
    for v in h.values(&header::CONNECTION) {
        t.add(v);
    }
    t
}

impl ConnectionTokens {
    /// The options of one `Connection` value.
    fn add(&mut self, v: &[u8]) {
        for tok in v.split(|&b| b == b',') {
            let tok = tok.trim_ascii();
            self.close |= tok.eq_ignore_ascii_case(b"close");
            self.keep_alive |= tok.eq_ignore_ascii_case(b"keep-alive");
        }
    }
}

/// A request head written for a target ([`write_request_head`]), kept while the request may
/// still be sent again (a requeue or a retry writes it once more). Its buffer is one of the
/// codec's per-thread spares and goes back to them when dropped: a request costs no
/// allocation for its head (a `BytesMut` grown and frozen per request cost two).
pub struct UpstreamHead(BytesMut);

impl UpstreamHead {
    pub fn new(
        method: &Method,
        path: &str,
        h: &HeaderMap,
        added: Option<&crate::headers::Added<'_>>,
    ) -> UpstreamHead {
        let mut buf = SPARE_HEADS.with(Spares::take).unwrap_or_default();
        write_request_head(&mut buf, method, path, h, added);
        UpstreamHead(buf)
    }
}

impl std::ops::Deref for UpstreamHead {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for UpstreamHead {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() > MAX_KEPT_HEAD {
            return;
        }
        buf.clear();
        SPARE_HEADS.with(|s| s.give_back(buf));
    }
}

/// Writes `METHOD path HTTP/1.1` and the headers (a request to a target): the client's, less
/// those `added` replaces, then `added`'s.
pub fn write_request_head(
    out: &mut BytesMut,
    method: &Method,
    path: &str,
    h: &HeaderMap,
    added: Option<&crate::headers::Added<'_>>,
) {
    out.reserve(256 + path.len() + h.len() * 48);
    put_all(
        out,
        [
            method.as_str().as_bytes(),
            b" ",
            path.as_bytes(),
            b" HTTP/1.1\r\n",
        ],
    );
    for (n, v) in h {
        if !added.is_some_and(|a| a.skips(n)) {
            put_all(out, [n.as_str().as_bytes(), b": ", v.as_bytes(), b"\r\n"]);
        }
    }
    if let Some(a) = added {
        put_added(out, a);
    }
    out.put_slice(b"\r\n");
}

/// `added`'s lines in `Added::lines`' order, the forwarded fields in one piece.
fn put_added(out: &mut BytesMut, a: &crate::headers::Added<'_>) {
    let (proto, port) = (a.proto.as_bytes(), a.port.as_bytes());
    match &a.xff {
        Some(Some(xff)) => put_all(
            out,
            [
                b"x-forwarded-for: ",
                xff.as_bytes(),
                b"\r\nx-forwarded-proto: ",
                proto,
                b"\r\nx-forwarded-port: ",
                port,
                b"\r\n",
            ],
        ),
        _ => put_all(
            out,
            [
                b"x-forwarded-proto: ",
                proto,
                b"\r\nx-forwarded-port: ",
                port,
                b"\r\n",
            ],
        ),
    }
    let (name, value) = &a.trace;
    put_all(
        out,
        [name.as_str().as_bytes(), b": ", value.as_bytes(), b"\r\n"],
    );
    if let Some(host) = &a.host {
        put_all(out, [b"host: ", host.as_bytes(), b"\r\n"]);
    }
}

/// Writes `parts` one after the other, the room for all of them made once: `put_slice` a part
/// checked the room and advanced the length every time (~50 instructions a field of four
/// parts, callgrind: `put_header` 485 per request).
#[inline(always)] // The parts' number and the constant parts' lengths are then known.
fn put_all<const N: usize>(out: &mut BytesMut, parts: [&[u8]; N]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(len);
    let mut room = &mut out.spare_capacity_mut()[..len];
    for p in parts {
        let (part, rest) = room.split_at_mut(p.len());
        part.write_copy_of_slice(p);
        room = rest;
    }
    // Safety: the `len` bytes after the length were just written (the loop above wrote every
    // part into them, one after the other, and the parts' lengths sum to `len`), within the
    // capacity `reserve` made.
    unsafe { out.set_len(out.len() + len) };
}

/// The writer `write_request_head` replaced (a `put_slice` a part), kept as its test oracle.
#[cfg(test)]
pub(crate) fn write_request_head_old(
    out: &mut BytesMut,
    method: &Method,
    path: &str,
    h: &HeaderMap,
    added: Option<&crate::headers::Added<'_>>,
) {
    fn put_header(out: &mut BytesMut, name: &str, v: &[u8]) {
        out.put_slice(name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(v);
        out.put_slice(b"\r\n");
    }
    out.reserve(256 + path.len() + h.len() * 48);
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(path.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    match added {
        None => {
            for (n, v) in h {
                put_header(out, n.as_str(), v.as_bytes());
            }
        }
        Some(a) => {
            for (n, v) in h {
                if !a.skips(n) {
                    put_header(out, n.as_str(), v.as_bytes());
                }
            }
            for (n, v) in a.lines() {
                put_header(out, n, v);
            }
        }
    }
    out.put_slice(b"\r\n");
}

/// Writes a status line (`HTTP/1.1 200 OK`) with the canonical reason phrase.
pub fn write_status_line(out: &mut BytesMut, status: u16) {
    let reason = match status {
        463 => "X-Forwarded-For Too Long",
        s => StatusCode::from_u16(s)
            .ok()
            .and_then(|c| c.canonical_reason())
            .unwrap_or(""),
    };
    out.put_slice(b"HTTP/1.1 ");
    put_status(out, status);
    out.put_u8(b' ');
    out.put_slice(reason.as_bytes());
    out.put_slice(b"\r\n");
}

/// A status code (100–999) as its three digits.
fn put_status(out: &mut BytesMut, status: u16) {
    out.put_slice(&status_digits(status));
}

fn status_digits(status: u16) -> [u8; 3] {
    let s = status.clamp(100, 999);
    [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]
}

/// A target's response head, parsed.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    pub version: Version,
    /// The head's bytes (kept: headers are copied to the client from them, filtered).
    pub raw: Bytes,
    /// The fields: ranges into `raw` and what each is (`FieldKind`).
    pub fields: FieldRanges,
    pub reason: (usize, usize),
    /// The kinds present among `fields` (a bit per `FieldKind`): most heads carry none of
    /// those a look-up asks for, and then it scans nothing.
    kinds: u16,
    /// What its framing and `Connection` fields say, read once as the head is parsed.
    facts: Facts,
}

/// What a response head's framing and `Connection` fields say, found as it is parsed (the
/// same answers as the scans of `Fields`' provided methods: `codec_fuzz` holds them equal),
/// so that the framing, the length stated to the client, the keep-alive and the filtering of
/// fields `Connection` names scan no field again.
#[derive(Debug, Clone, Copy)]
struct Facts {
    /// `content_length` (`Err`: not one valid number).
    length: Result<Option<u64>, ()>,
    /// The last `Transfer-Encoding`'s last coding is `chunked`.
    chunked_last: bool,
    tokens: ConnectionTokens,
    /// A `Connection` option names a field that is not left out anyway (`connection_listed`
    /// has names to collect).
    lists_fields: bool,
}

impl Default for Facts {
    fn default() -> Self {
        Facts {
            length: Ok(None),
            chunked_last: false,
            tokens: ConnectionTokens::default(),
            lists_fields: false,
        }
    }
}

impl Facts {
    /// Takes in field `value` of kind `kind`.
    fn add(&mut self, kind: FieldKind, value: &[u8]) {
        match kind {
            FieldKind::ContentLength => {
                if let Ok(found) = &mut self.length
                    && fold_length(found, value).is_err()
                {
                    self.length = Err(());
                }
            }
            FieldKind::TransferEncoding => self.chunked_last = ends_chunked(value),
            FieldKind::Connection => self.connection(value),
            _ => {}
        }
    }

    /// Takes in a `Connection` value: its options, and whether one names a field that is not
    /// left out anyway. The usual values, one option alone, without a split (what the split
    /// finds for them: `keep-alive` names a field left out anyway, `close` none that is; the
    /// split and the scan of each option cost ~300 instructions per response, callgrind).
    fn connection(&mut self, value: &[u8]) {
        if is(value, b"keep-alive") {
            self.tokens.keep_alive = true;
        } else if is(value, b"close") {
            self.tokens.close = true;
            self.lists_fields = true;
        } else {
            self.tokens.add(value);
            self.lists_fields |= value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .any(|t| !t.is_empty() && !FieldKind::of(t).dropped());
        }
    }
}

/// What a response field is to weir, found once when the head is parsed: the fields weir
/// looks at or leaves out by name, so that no later step compares names again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FieldKind {
    Other,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    Upgrade,
    /// `proxy-connection`, `te`, `trailer`: hop-by-hop, never looked at.
    HopByHop,
    SetCookie,
    Date,
}

impl FieldKind {
    /// The kind of a field called `name` (any case).
    fn of(name: &[u8]) -> FieldKind {
        match name.len() {
            2 if is(name, b"te") => FieldKind::HopByHop,
            4 if is(name, b"date") => FieldKind::Date,
            7 if is(name, b"upgrade") => FieldKind::Upgrade,
            7 if is(name, b"trailer") => FieldKind::HopByHop,
            10 if is(name, b"connection") => FieldKind::Connection,
            10 if is(name, b"keep-alive") => FieldKind::KeepAlive,
            10 if is(name, b"set-cookie") => FieldKind::SetCookie,
            14 if is(name, b"content-length") => FieldKind::ContentLength,
            16 if is(name, b"proxy-connection") => FieldKind::HopByHop,
            17 if is(name, b"transfer-encoding") => FieldKind::TransferEncoding,
            _ => FieldKind::Other,
        }
    }

    /// The kind that stands for exactly the fields called `name` (`None`: `Other`, or a kind
    /// shared by several names).
    fn of_header(name: &HeaderName) -> Option<FieldKind> {
        Some(match *name {
            header::CONTENT_LENGTH => FieldKind::ContentLength,
            header::TRANSFER_ENCODING => FieldKind::TransferEncoding,
            header::CONNECTION => FieldKind::Connection,
            header::UPGRADE => FieldKind::Upgrade,
            header::SET_COOKIE => FieldKind::SetCookie,
            header::DATE => FieldKind::Date,
            _ if name.as_str() == "keep-alive" => FieldKind::KeepAlive,
            _ => return None,
        })
    }

    fn bit(self) -> u16 {
        1 << self as u8
    }

    /// Never passed on to a client as the target sent it: hop-by-hop, or framing weir states
    /// itself (`content-length`, `declared_length`).
    fn dropped(self) -> bool {
        !matches!(
            self,
            FieldKind::Other | FieldKind::SetCookie | FieldKind::Date
        )
    }
}

/// Is `name` the lowercase name `lit` in any case? `eq_ignore_ascii_case` in words of eight
/// bytes: a byte of `lit` that is a letter is compared with bit 0x20 of the name's byte set
/// (`A` reads as `a`, and no byte other than the letter's two cases reads as it), any other
/// byte of `lit` exactly. `name` and `lit` are of one length.
#[inline(always)]
fn is<const N: usize>(name: &[u8], lit: &[u8; N]) -> bool {
    let Ok(name) = <&[u8; N]>::try_from(name) else {
        return false;
    };
    let mut i = 0;
    while i < N {
        let (mut w, mut l, mut m) = ([0u8; 8], [0u8; 8], [0u8; 8]);
        let n = (N - i).min(8);
        w[..n].copy_from_slice(&name[i..i + n]);
        l[..n].copy_from_slice(&lit[i..i + n]);
        for (bit, &c) in m.iter_mut().zip(&l) {
            *bit = if c.is_ascii_lowercase() { 0x20 } else { 0 };
        }
        let (w, l, m) = (
            u64::from_le_bytes(w),
            u64::from_le_bytes(l),
            u64::from_le_bytes(m),
        );
        if w | m != l {
            return false;
        }
        i += 8;
    }
    true
}

/// One field of a response head.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Ranges into the head's raw bytes.
    pub name: (usize, usize),
    pub value: (usize, usize),
    pub kind: FieldKind,
}

impl Fields for ResponseHead {
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl DoubleEndedIterator<Item = &'a [u8]> {
        let want = name.as_str().as_bytes();
        let kind = FieldKind::of_header(name);
        // A kind absent from the head: nothing to scan.
        let none = kind.is_some_and(|k| !self.has_kind(k));
        let fields = if none { &[][..] } else { &self.fields[..] };
        fields
            .iter()
            .filter(move |f| match kind {
                Some(k) => f.kind == k,
                None => self.raw[f.name.0..f.name.1].eq_ignore_ascii_case(want),
            })
            .map(|f| &self.raw[f.value.0..f.value.1])
    }

    fn has(&self, name: &HeaderName) -> bool {
        match FieldKind::of_header(name) {
            Some(k) => self.has_kind(k),
            None => self.values(name).next().is_some(),
        }
    }

    fn length(&self) -> Result<Option<u64>, BadContentLength> {
        self.facts.length.map_err(|()| BadContentLength)
    }

    fn chunked_last(&self) -> bool {
        self.facts.chunked_last
    }

    fn tokens(&self) -> ConnectionTokens {
        self.facts.tokens
    }
}

impl ResponseHead {
    /// Has the head a field of kind `kind`?
    fn has_kind(&self, kind: FieldKind) -> bool {
        self.kinds & kind.bit() != 0
    }

    /// The values of the fields of kind `kind` (`values` for a kind's one name, without
    /// matching the name against the kinds' first: ~30 instructions, callgrind).
    pub fn values_of(&self, kind: FieldKind) -> impl DoubleEndedIterator<Item = &[u8]> {
        let fields = if self.has_kind(kind) {
            &self.fields[..]
        } else {
            &[][..]
        };
        fields
            .iter()
            .filter(move |f| f.kind == kind)
            .map(|f| &self.raw[f.value.0..f.value.1])
    }

    pub fn name(&self, i: usize) -> &[u8] {
        let (s, e) = self.fields[i].name;
        &self.raw[s..e]
    }
    pub fn value(&self, i: usize) -> &[u8] {
        let (s, e) = self.fields[i].value;
        &self.raw[s..e]
    }

    /// The end of the status line in `raw` when it is as weir writes it for a client
    /// (`HTTP/1.1 `, the status, a space, the reason, CRLF).
    fn status_line_as_written(&self) -> Option<usize> {
        let end = self.reason.1 + 2;
        let line = self.raw.get(..end)?;
        (self.reason.0 == 13
            && line.starts_with(b"HTTP/1.1 ")
            && line[9..12] == status_digits(self.status)
            && line[12] == b' '
            && line.ends_with(b"\r\n"))
        .then_some(end)
    }

    /// The range in `raw` of field `f`'s line when it is as weir writes it (name, `: `,
    /// value, CRLF).
    fn line_as_written(&self, f: &Field) -> Option<std::ops::Range<usize>> {
        let Field { name, value, .. } = *f;
        let end = value.1 + 2;
        (self.raw.get(name.1..value.0) == Some(&b": "[..])
            && self.raw.get(value.1..end) == Some(&b"\r\n"[..]))
        .then_some(name.0..end)
    }

    /// Does field `i` go to the client (when the response is not an upgrade)? Not when it is
    /// hop-by-hop, named in `Connection` (`listed`: `None` when it names none), or
    /// `Content-Length`.
    fn end_to_end(&self, i: usize, listed: Option<&Listed>) -> bool {
        self.field_end_to_end(&self.fields[i], listed)
    }

    /// `end_to_end` for a field in hand (no index to check).
    #[inline]
    fn field_end_to_end(&self, f: &Field, listed: Option<&Listed>) -> bool {
        !f.kind.dropped() && listed.is_none_or(|l| !l.contains(&self.raw[f.name.0..f.name.1]))
    }

    /// The target's end-to-end headers (hop-by-hop ones and those its `Connection` names
    /// removed), for a response hyper sends on. `Content-Length` is weir's statement of the
    /// target's framing (`declared_length`), never the target's line as it came.
    pub fn end_to_end_headers(&self) -> HeaderMap {
        let listed = self.connection_listed();
        let mut h = spare_map(self.fields.len() + 1);
        for i in 0..self.fields.len() {
            if !self.end_to_end(i, listed.as_ref()) {
                continue;
            }
            let (vs, ve) = self.fields[i].value;
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(self.name(i)),
                HeaderValue::from_maybe_shared(self.raw.slice(vs..ve)),
            ) {
                h.append(n, v);
            }
        }
        if let Some(n) = self.declared_length() {
            let v = self
                .plain_length()
                .map(|i| {
                    let (vs, ve) = self.fields[i].value;
                    // All digits: a valid value (no check, and no copy).
                    HeaderValue::from_maybe_shared(self.raw.slice(vs..ve))
                })
                .and_then(Result::ok)
                .unwrap_or_else(|| HeaderValue::from(n));
            h.insert(header::CONTENT_LENGTH, v);
        }
        h
    }

    /// The same fields as `end_to_end_headers` has, for an HTTP/2 client's head encoded
    /// straight from the raw head (no `HeaderMap` per response): each handed to `field` as
    /// (lowercase name, value) in the target's order, fields `HeaderName`/`HeaderValue`
    /// would refuse left out as there, then `content-length` as weir states it.
    pub fn each_end_to_end(&self, mut field: impl FnMut(&[u8], &[u8])) {
        let listed = self.connection_listed();
        let mut lower = LowerName::default();
        for i in 0..self.fields.len() {
            if !self.end_to_end(i, listed.as_ref()) || !value_ok(self.value(i)) {
                continue;
            }
            if let Some(name) = lower.of(self.name(i)) {
                field(name, self.value(i));
            }
        }
        if let Some(n) = self.declared_length() {
            match self.plain_length() {
                Some(i) => field(b"content-length", self.value(i)),
                None => {
                    let mut v = BytesMut::new();
                    put_dec(&mut v, n);
                    field(b"content-length", &v);
                }
            }
        }
    }

    /// A `Content-Length` line that is the plain number, to pass on as it came (when
    /// `declared_length` is `Some`: else a list like `5, 5` is restated).
    fn plain_length(&self) -> Option<usize> {
        (0..self.fields.len()).find(|&i| {
            self.fields[i].kind == FieldKind::ContentLength
                && self.value(i).iter().all(u8::is_ascii_digit)
        })
    }

    /// The target's `Content-Length` as weir passes it on: one number (a list of equal values
    /// folded), none when `Transfer-Encoding` is present too (RFC 9112 §6.3: it is ignored; as
    /// HAProxy, weir drops it), on a 1xx or 204, or when it is not a valid length (the response
    /// is refused then: `response_framing`).
    pub fn declared_length(&self) -> Option<u64> {
        if self.has_kind(FieldKind::TransferEncoding) || self.status < 200 || self.status == 204 {
            return None;
        }
        self.facts.length.ok().flatten()
    }

    /// Does the response set cookie `name`?
    pub fn sets_cookie(&self, name: &str) -> bool {
        self.values(&header::SET_COOKIE)
            .any(|v| crate::sticky::sets_cookie(v, name))
    }

    /// The names `Connection` lists that are not left out anyway; `None` when there are none
    /// (`Facts::lists_fields`: most responses, whose fields are then not compared with a list).
    fn connection_listed(&self) -> Option<Listed<'_>> {
        self.facts.lists_fields.then(|| self.listed_by_scan())
    }

    fn listed_by_scan(&self) -> Listed<'_> {
        let mut l = Listed::default();
        for t in self
            .values_of(FieldKind::Connection)
            .flat_map(|v| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            // A name that is hop-by-hop anyway need not be listed (`keep-alive`, mostly).
            .filter(|t| !t.is_empty() && !FieldKind::of(t).dropped())
        {
            l.push(t);
        }
        l
    }

    /// May the target connection be used again after this response (by the target's word)?
    pub fn target_keeps_alive(&self) -> bool {
        client_keeps_alive(self.version, self)
    }

    /// Done with the head: its field list goes back for the next response (`SPARE_FIELDS`).
    pub fn recycle(self) {
        give_back_fields(self.fields);
    }
}

/// The fields' scans the head's `Facts` stand for, and the head as `write_client_response_head`
/// wrote it before it copied lines in runs: what the fuzz tests hold the fast paths to.
#[cfg(test)]
impl ResponseHead {
    pub(crate) fn facts_are_the_scans(&self) -> bool {
        let listed = self
            .values(&header::CONNECTION)
            .flat_map(|v| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .any(|t| !t.is_empty() && !FieldKind::of(t).dropped());
        let f = self.facts;
        f.length == content_length(self)
            && f.chunked_last == last_coding_chunked(self)
            && f.tokens == connection_tokens(self)
            && f.lists_fields == listed
    }

    /// `visible` (eight bytes at a time) is the byte-by-byte scan, for `s`.
    pub(crate) fn visible_is_the_scan(s: &[u8]) -> bool {
        let scan = s.iter().position(|&c| !(b' '..=b'~').contains(&c));
        visible(s) == scan.unwrap_or(s.len())
    }

    /// Does `parse_response` read `b` in the plain form (without httparse)?
    pub(crate) fn read_plainly(b: &[u8]) -> bool {
        let (mut fields, mut kinds, mut facts) = (Vec::new(), 0, Facts::default());
        plain_head(b, &mut fields, &mut kinds, &mut facts).is_some()
    }

    /// `values_of` each kind that stands for one name is the values of the fields so called.
    pub(crate) fn values_of_are_by_name(&self) -> bool {
        [
            (FieldKind::ContentLength, "content-length"),
            (FieldKind::TransferEncoding, "transfer-encoding"),
            (FieldKind::Connection, "connection"),
            (FieldKind::KeepAlive, "keep-alive"),
            (FieldKind::Upgrade, "upgrade"),
            (FieldKind::SetCookie, "set-cookie"),
            (FieldKind::Date, "date"),
        ]
        .into_iter()
        .all(|(kind, name)| {
            let by_name = (0..self.fields.len())
                .filter(|&i| self.name(i).eq_ignore_ascii_case(name.as_bytes()))
                .map(|i| self.value(i));
            self.values_of(kind).eq(by_name)
        })
    }

    pub(crate) fn kinds_by_name(&self) -> bool {
        (0..self.fields.len()).all(|i| {
            let name = self.name(i);
            let by_name = [
                (&b"te"[..], FieldKind::HopByHop),
                (b"date", FieldKind::Date),
                (b"upgrade", FieldKind::Upgrade),
                (b"trailer", FieldKind::HopByHop),
                (b"connection", FieldKind::Connection),
                (b"keep-alive", FieldKind::KeepAlive),
                (b"set-cookie", FieldKind::SetCookie),
                (b"content-length", FieldKind::ContentLength),
                (b"proxy-connection", FieldKind::HopByHop),
                (b"transfer-encoding", FieldKind::TransferEncoding),
            ]
            .into_iter()
            .find(|(n, _)| name.eq_ignore_ascii_case(n))
            .map_or(FieldKind::Other, |(_, k)| k);
            self.fields[i].kind == by_name
        })
    }

    pub(crate) fn written_piecewise(
        &self,
        chunked: bool,
        connection: Option<&'static str>,
        upgrade: bool,
    ) -> BytesMut {
        let (r, mut out) = (self, BytesMut::new());
        out.put_slice(b"HTTP/1.1 ");
        put_status(&mut out, r.status);
        out.put_u8(b' ');
        out.put_slice(&r.raw[r.reason.0..r.reason.1]);
        out.put_slice(b"\r\n");
        // The list as it was always made, empty or not.
        let listed = r.listed_by_scan();
        for i in 0..r.fields.len() {
            let keep_upgrade = upgrade && r.fields[i].kind == FieldKind::Upgrade;
            if keep_upgrade || r.end_to_end(i, Some(&listed)) {
                out.put_slice(r.name(i));
                out.put_slice(b": ");
                out.put_slice(r.value(i));
                out.put_slice(b"\r\n");
            }
        }
        put_framing_and_end(&mut out, r, chunked, connection, upgrade);
        out
    }
}

/// A header name in lower case, checked as `HeaderName::from_bytes` checks it (tchar, not
/// empty): on the stack up to 64 bytes, in a buffer kept across names beyond.
struct LowerName {
    short: [u8; 64],
    long: Vec<u8>,
}

impl Default for LowerName {
    fn default() -> Self {
        LowerName {
            short: [0; 64],
            long: Vec::new(),
        }
    }
}

impl LowerName {
    fn of(&mut self, name: &[u8]) -> Option<&[u8]> {
        if name.is_empty() || name.len() > u16::MAX as usize {
            return None;
        }
        let out: &mut [u8] = match self.short.get_mut(..name.len()) {
            Some(s) => s,
            None => {
                self.long.resize(name.len(), 0);
                &mut self.long
            }
        };
        for (o, &b) in out.iter_mut().zip(name) {
            *o = TCHAR_LOWER[b as usize];
            if *o == 0 {
                return None;
            }
        }
        Some(out)
    }
}

/// A name byte in lower case, 0 for a byte that is not a tchar (RFC 9110 §5.6.2; the table
/// of `http::HeaderName`).
const TCHAR_LOWER: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'A'..=b'Z' => c.to_ascii_lowercase(),
            b'a'..=b'z' | b'0'..=b'9' => c,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
            | b'`' | b'|' | b'~' => c,
            _ => 0,
        };
        b += 1;
    }
    t
};

/// A value `HeaderValue` accepts (visible ASCII, obs-text, space and tab).
pub fn value_ok(v: &[u8]) -> bool {
    v.iter().all(|&b| (b >= 32 && b != 127) || b == b'\t')
}

/// A response head's fields.
pub type FieldRanges = Vec<Field>;

// Spare field lists (`parse_response`), header maps (`end_to_end_headers`) and request head
// buffers ([`UpstreamHead`]), per thread (a worker is one; `crate::spares`), given back by the
// engine that is done with them (`ResponseHead::recycle`, `recycle_headers`, a head's drop):
// two allocations of a map and one of a list per response, otherwise. A map comes back
// emptied (its values, which share the target's read buffer, dropped). Those an idle second
// did not use go at the worker's sweep (`trim_spares`).
thread_local! {
    static SPARE_FIELDS: Spares<FieldRanges> = const { Spares::new(SPARES, FLOOR) };
    static SPARE_MAPS: Spares<HeaderMap> = const { Spares::new(MAX_SPARE_MAPS, FLOOR) };
    static SPARE_HEADS: Spares<BytesMut> = const { Spares::new(MAX_SPARE_HEADS, FLOOR) };
}

/// Spares kept of field lists.
const SPARES: usize = 32;
/// Maps kept: an HTTP/1.1 request holds its map from its parse to its response's head, so as
/// many are out at once as requests are in flight (with 32 kept, under `h2load --h1 -c64` nine
/// requests in ten made a new map and dropped one: ~200 instructions each, callgrind).
const MAX_SPARE_MAPS: usize = 128;
/// Spares of each kind a trim keeps however idle the worker.
const FLOOR: usize = 4;
/// A map that grew larger than this (a response with many headers) is not kept.
const MAX_KEPT_MAP: usize = 64;
/// Request heads kept: one lives per request from its routing to its response's head, so
/// more of them than of the others are out at once on a busy HTTP/2 connection (~1 KB each).
const MAX_SPARE_HEADS: usize = 128;
/// A head buffer larger than this (a request with large headers) is not kept.
const MAX_KEPT_HEAD: usize = 4096;

fn spare_fields(n: usize) -> FieldRanges {
    match SPARE_FIELDS.with(Spares::take) {
        Some(f) => f,
        None => Vec::with_capacity(n),
    }
}

/// An empty header map with room for `n` fields: a spare (`recycle_headers`) if any.
pub fn spare_map(n: usize) -> HeaderMap {
    match SPARE_MAPS.with(Spares::take) {
        Some(mut h) => {
            h.reserve(n);
            h
        }
        None => HeaderMap::with_capacity(n),
    }
}

/// A response's header map the engine has sent (any map: weir's own answers' too), emptied
/// and kept for `end_to_end_headers`.
pub fn recycle_headers(mut h: HeaderMap) {
    if h.capacity() > MAX_KEPT_MAP {
        return;
    }
    h.clear();
    SPARE_MAPS.with(|s| s.give_back(h));
}

/// The worker's sweep: releases the spares of each kind not used since the last one, down to
/// what that period used at its busiest (or [`FLOOR`]). Returns the bytes released (nominally
/// 1 KB a spare: a head's buffer, a map of a dozen fields, a list's room).
pub fn trim_spares() -> usize {
    let n = SPARE_FIELDS.with(Spares::trim)
        + SPARE_MAPS.with(Spares::trim)
        + SPARE_HEADS.with(Spares::trim);
    n * 1024
}

/// Spares held on this thread: (field lists, maps, heads).
#[cfg(test)]
pub(crate) fn spares_held() -> (usize, usize, usize) {
    (
        SPARE_FIELDS.with(Spares::len),
        SPARE_MAPS.with(Spares::len),
        SPARE_HEADS.with(Spares::len),
    )
}

/// Parses a target's response head at the front of `buf` (split off on success). A head in
/// the plain form targets write (`plain_head`) is read here; any other, or one not whole yet,
/// by httparse (`parse_by_httparse`), which the plain form's reading is held equal to.
pub fn parse_response(buf: &mut BytesMut) -> Result<Option<ResponseHead>, &'static str> {
    let mut fields = spare_fields(16);
    let mut kinds = 0;
    let mut facts = Facts::default();
    let Some(line) = plain_head(buf, &mut fields, &mut kinds, &mut facts) else {
        give_back_fields(fields);
        return parse_by_httparse(buf);
    };
    let raw = buf.split_to(line.len).freeze();
    Ok(Some(ResponseHead {
        status: line.status,
        version: line.version,
        raw,
        fields,
        reason: line.reason,
        kinds,
        facts,
    }))
}

/// A plain head's status line and length (`plain_head`).
struct PlainLine {
    len: usize,
    status: u16,
    version: Version,
    reason: (usize, usize),
}

/// Reads a whole response head at the front of `b` in the plain form: `HTTP/1.1` or
/// `HTTP/1.0`, a space, a status in 100..600, a space, a reason of visible characters and
/// spaces, CRLF; fields `name:`, spaces, a value of visible characters and spaces, CRLF; a
/// CRLF; at most `MAX_RESPONSE_HEADERS` fields, at most `MAX_RESPONSE_HEAD` bytes. httparse
/// reads every such head the same (`codec_fuzz` holds them equal; a value loses its trailing
/// spaces there too) and gives the same answers about it; `None` for anything else (a head not
/// whole yet, tabs, bare LFs, empty values or reasons, obs-text, any error), which httparse
/// then reads. For nginx's five-field head `parse_response` costs 1,845 instructions so, 2,001
/// with httparse's reading (callgrind).
fn plain_head(
    b: &[u8],
    fields: &mut FieldRanges,
    kinds: &mut u16,
    facts: &mut Facts,
) -> Option<PlainLine> {
    let version = match b.get(..9)? {
        b"HTTP/1.1 " => Version::HTTP_11,
        b"HTTP/1.0 " => Version::HTTP_10,
        _ => return None,
    };
    let &[h, t, o, b' '] = b.get(9..13)? else {
        return None;
    };
    if !(b'1'..=b'5').contains(&h) || !t.is_ascii_digit() || !o.is_ascii_digit() {
        return None;
    }
    let status = u16::from(h - b'0') * 100 + u16::from(t - b'0') * 10 + u16::from(o - b'0');
    let reason_end = 13 + visible(&b[13..]);
    if reason_end == 13 || b.get(reason_end..reason_end + 2)? != b"\r\n" {
        return None;
    }
    let base = b.as_ptr() as usize;
    let mut at = reason_end + 2;
    loop {
        let rest = &b[at..];
        if *rest.first()? == b'\r' {
            let len = at + 2;
            return (*rest.get(1)? == b'\n' && len <= MAX_RESPONSE_HEAD).then_some(PlainLine {
                len,
                status,
                version,
                reason: (13, reason_end),
            });
        }
        let name_len = rest.iter().position(|&c| TCHAR_LOWER[c as usize] == 0)?;
        if name_len == 0 || rest[name_len] != b':' || fields.len() == MAX_RESPONSE_HEADERS {
            return None;
        }
        let mut v = name_len + 1;
        while *rest.get(v)? == b' ' {
            v += 1;
        }
        let end = v + visible(&rest[v..]);
        if end == v || rest.get(end..end + 2)? != b"\r\n" {
            return None;
        }
        let value = rest[v..end].trim_ascii_end();
        fields.push(field(base, &rest[..name_len], value, kinds, facts));
        at += end + 2;
    }
}

/// How many bytes at the front of `s` are visible ASCII characters or spaces, eight at a
/// time: in a word, a byte below `0x20` (`x - 0x20` borrows, and `x` had no high bit) or above
/// `0x7e` (`x + 1` or `x` has its high bit) sets its high bit in `bad`. A borrow or carry
/// moves up only, from a byte that is itself flagged, so the lowest flag is the first such
/// byte.
fn visible(s: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let mut i = 0;
    while let Some(w) = s.get(i..i + 8) {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let bad = (x.wrapping_sub(ONES * 0x20) & !x | x.wrapping_add(ONES) | x) & HIGH;
        if bad != 0 {
            return i + (bad.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + s[i..]
        .iter()
        .position(|&c| !(b' '..=b'~').contains(&c))
        .unwrap_or(s.len() - i)
}

/// A response field read from a head whose bytes start at `base`: its kind found and taken
/// into `kinds` and `facts` (either parser).
#[inline]
fn field(base: usize, name: &[u8], value: &[u8], kinds: &mut u16, facts: &mut Facts) -> Field {
    let kind = FieldKind::of(name);
    *kinds |= kind.bit();
    facts.add(kind, value);
    Field {
        name: range_of(base, name),
        value: range_of(base, value),
        kind,
    }
}

/// A field list back to the spares (`ResponseHead::recycle`).
fn give_back_fields(mut fields: FieldRanges) {
    if fields.capacity() > MAX_RESPONSE_HEADERS {
        return;
    }
    fields.clear();
    SPARE_FIELDS.with(|s| s.give_back(fields));
}

/// `parse_response` by httparse: any head httparse reads.
pub(crate) fn parse_by_httparse(buf: &mut BytesMut) -> Result<Option<ResponseHead>, &'static str> {
    // Uninitialised slots: initialising 128 of them (4 KB) cost more than parsing a short head.
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_RESPONSE_HEAD {
                Err("response head too large")
            } else {
                Ok(None)
            };
        }
        Err(_) => return Err("malformed response head"),
    };
    // The limit holds however the reads split the head (one that came whole in one read was
    // only measured while incomplete).
    if len > MAX_RESPONSE_HEAD {
        return Err("response head too large");
    }
    let base = buf.as_ptr() as usize;
    let status = resp.code.unwrap_or(0);
    if !(100..600).contains(&status) {
        return Err("bad status code");
    }
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // httparse gives a static "" (not inside `buf`) for a status line without a reason.
    let reason = match resp.reason {
        Some(r) if !r.is_empty() => range_of(base, r.as_bytes()),
        _ => (0, 0),
    };
    let mut fields = spare_fields(resp.headers.len());
    let mut kinds = 0;
    let mut facts = Facts::default();
    fields.extend(
        resp.headers
            .iter()
            .map(|h| field(base, h.name.as_bytes(), h.value, &mut kinds, &mut facts)),
    );
    let raw = buf.split_to(len).freeze();
    Ok(Some(ResponseHead {
        status,
        version,
        raw,
        fields,
        reason,
        kinds,
        facts,
    }))
}

/// The options of a target's `Connection` header(s): the first few on the stack (a response
/// usually has one, `keep-alive`), so listing them costs no allocation per response.
#[derive(Default)]
struct Listed<'a> {
    few: [&'a [u8]; 4],
    n: usize,
    more: Vec<&'a [u8]>,
}

impl<'a> Listed<'a> {
    fn push(&mut self, t: &'a [u8]) {
        match self.few.get_mut(self.n) {
            Some(slot) => {
                *slot = t;
                self.n += 1;
            }
            None => self.more.push(t),
        }
    }
    fn contains(&self, name: &[u8]) -> bool {
        self.few[..self.n]
            .iter()
            .chain(&self.more)
            .any(|l| name.eq_ignore_ascii_case(l))
    }
}

/// Writes the response head for the client: the target's status line and end-to-end headers,
/// then the framing weir relays the body with — `transfer-encoding: chunked` when `chunked`,
/// else the target's length as `declared_length` states it (the target's own framing lines are
/// never copied, so its `Connection` cannot remove them) — and `connection`.
/// `upgrade`: a `101` keeps `Upgrade` and says `Connection: upgrade`. `set_cookies`: weir's own
/// `Set-Cookie` values (stickiness), after the target's headers.
pub fn write_client_response_head(
    out: &mut BytesMut,
    r: &ResponseHead,
    chunked: bool,
    connection: Option<&'static str>,
    upgrade: bool,
    set_cookies: &[String],
) {
    out.reserve(r.raw.len() + 64);
    // Lines written as weir writes them that stand one after the other in the target's head
    // (`run`) are copied in one piece: most heads are the status line and a few such fields.
    let mut run = match r.status_line_as_written() {
        Some(end) => 0..end,
        None => {
            out.put_slice(b"HTTP/1.1 ");
            put_status(out, r.status);
            out.put_u8(b' ');
            out.put_slice(&r.raw[r.reason.0..r.reason.1]);
            out.put_slice(b"\r\n");
            0..0
        }
    };
    let listed = r.connection_listed();
    // By reference, not index: each field's kind, name and lines read without a bounds check.
    for f in &r.fields {
        let keep_upgrade = upgrade && f.kind == FieldKind::Upgrade;
        if !keep_upgrade && !r.field_end_to_end(f, listed.as_ref()) {
            continue;
        }
        match r.line_as_written(f) {
            Some(line) if line.start == run.end => run.end = line.end,
            Some(line) => {
                out.put_slice(&r.raw[run]);
                run = line;
            }
            None => {
                out.put_slice(&r.raw[run.clone()]);
                run = run.end..run.end;
                out.put_slice(&r.raw[f.name.0..f.name.1]);
                out.put_slice(b": ");
                out.put_slice(&r.raw[f.value.0..f.value.1]);
                out.put_slice(b"\r\n");
            }
        }
    }
    out.put_slice(&r.raw[run]);
    for c in set_cookies {
        out.put_slice(b"set-cookie: ");
        out.put_slice(c.as_bytes());
        out.put_slice(b"\r\n");
    }
    put_framing_and_end(out, r, chunked, connection, upgrade);
}

/// A client head's last lines, weir's own: its framing (chunked, or the target's length unless
/// upgraded), its `Connection`, the blank line.
fn put_framing_and_end(
    out: &mut BytesMut,
    r: &ResponseHead,
    chunked: bool,
    connection: Option<&'static str>,
    upgrade: bool,
) {
    if chunked {
        out.put_slice(b"transfer-encoding: chunked\r\n");
    } else if let Some(n) = r.declared_length().filter(|_| !upgrade) {
        out.put_slice(b"content-length: ");
        put_dec(out, n);
        out.put_slice(b"\r\n");
    }
    if upgrade {
        out.put_slice(b"connection: upgrade\r\n");
    } else if let Some(c) = connection {
        out.put_slice(b"connection: ");
        out.put_slice(c.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
}

/// Where a chunked body's scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size { digits: u8, value: u64 },
    Ext,
    SizeLf { last: bool },
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf { empty: bool },
    Done,
}

/// Largest chunk size accepted (2^56 − 1: far beyond any body, far from overflow).
const MAX_CHUNK_SIZE: u64 = (1 << 56) - 1;
/// Most bytes a trailer section may have (as one header line, `MAX_HEADER`); more is malformed.
pub const MAX_TRAILERS: usize = crate::pipeline::parse::MAX_HEADER;

/// Follows a chunked body byte by byte (strictly: hex sizes, CRLF line ends) to find where it
/// ends and where its data is. A malformed body is an error (the connection is closed; nothing
/// after it is trusted). Leading zeros of a size are allowed; a size over `MAX_CHUNK_SIZE` is not.
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: Chunk,
    /// The size of the chunk whose size line is being read.
    size_value: u64,
    /// Keep the trailer section's bytes (`trailer()`), bounded by `MAX_TRAILERS`.
    capture: bool,
    trailer: Vec<u8>,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        ChunkedScanner {
            state: Chunk::Size {
                digits: 0,
                value: 0,
            },
            size_value: 0,
            capture: false,
            trailer: Vec::new(),
        }
    }
}

impl ChunkedScanner {
    /// A scanner that keeps the trailer section (for `ChunkedReencoder`).
    pub fn capturing_trailers() -> Self {
        ChunkedScanner {
            capture: true,
            ..ChunkedScanner::default()
        }
    }

    pub fn done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// The trailer section's bytes seen so far (its field lines and the final CRLF), when
    /// capturing.
    pub fn trailer(&self) -> &[u8] {
        &self.trailer
    }

    /// Consumes bytes of `buf` that belong to the body; returns how many (fewer than
    /// `buf.len()` only when the body ended). `data`, when given, receives the ranges of chunk
    /// data (to de-chunk or re-encode it).
    pub fn advance(
        &mut self,
        buf: &[u8],
        mut data: Option<&mut Vec<(usize, usize)>>,
    ) -> Result<usize, &'static str> {
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            if let Chunk::Data(left) = self.state {
                let take = (left.min((buf.len() - i) as u64)) as usize;
                if let Some(d) = data.as_deref_mut() {
                    d.push((i, i + take));
                }
                i += take;
                let left = left - take as u64;
                self.state = if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left)
                };
                continue;
            }
            if self.state == Chunk::Done {
                return Ok(i);
            }
            if self.capture && self.in_trailer() {
                if self.trailer.len() >= MAX_TRAILERS {
                    return Err("trailer section too large");
                }
                self.trailer.push(b);
            }
            self.state = self.step(b)?;
            if let Chunk::Size { value, .. } = self.state {
                self.size_value = value;
            }
            i += 1;
        }
        Ok(i)
    }

    fn in_trailer(&self) -> bool {
        matches!(
            self.state,
            Chunk::TrailerStart | Chunk::TrailerLine | Chunk::TrailerLf { .. }
        )
    }

    /// The state after byte `b` (every state but `Data` and `Done`).
    fn step(&self, b: u8) -> Result<Chunk, &'static str> {
        Ok(match self.state {
            Chunk::Size { digits, value } => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    let d = u64::from((b as char).to_digit(16).unwrap_or(0));
                    let value = value * 16 + d;
                    if value > MAX_CHUNK_SIZE {
                        return Err("chunk size too large");
                    }
                    Chunk::Size {
                        digits: digits.saturating_add(1),
                        value,
                    }
                }
                b';' if digits > 0 => Chunk::Ext,
                b'\r' if digits > 0 => Chunk::SizeLf { last: value == 0 },
                _ => return Err("bad chunk size"),
            },
            Chunk::Ext => match b {
                b'\r' => Chunk::SizeLf {
                    last: self.size_value == 0,
                },
                b'\n' | 0..=8 | 10..=31 | 127 => return Err("bad chunk extension"),
                _ => Chunk::Ext,
            },
            Chunk::SizeLf { last } => match (b, last) {
                (b'\n', true) => Chunk::TrailerStart,
                (b'\n', false) => Chunk::Data(self.size_value),
                _ => return Err("chunk size line not ended by CRLF"),
            },
            Chunk::DataCr if b == b'\r' => Chunk::DataLf,
            Chunk::DataLf if b == b'\n' => Chunk::Size {
                digits: 0,
                value: 0,
            },
            Chunk::DataCr | Chunk::DataLf => return Err("chunk data not followed by CRLF"),
            Chunk::TrailerStart => match b {
                b'\r' => Chunk::TrailerLf { empty: true },
                b'\n' => return Err("bare LF in trailer"),
                _ => Chunk::TrailerLine,
            },
            Chunk::TrailerLine => match b {
                b'\r' => Chunk::TrailerLf { empty: false },
                b'\n' => return Err("bare LF in trailer"),
                _ => Chunk::TrailerLine,
            },
            Chunk::TrailerLf { empty } => match (b, empty) {
                (b'\n', true) => Chunk::Done,
                (b'\n', false) => Chunk::TrailerStart,
                _ => return Err("trailer line not ended by CRLF"),
            },
            Chunk::Data(_) | Chunk::Done => self.state,
        })
    }
}

/// Trailer fields weir never passes on (RFC 9110 §6.5.1: fields that frame, route, modify or
/// authenticate the request, control the response or say how to process the content; the
/// hop-by-hop ones; those weir itself adds to forwarded requests). HAProxy forwards trailers it
/// could parse whatever their names; weir drops these and forwards the rest.
const FORBIDDEN_TRAILERS: [&str; 34] = [
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "max-forwards",
    "cache-control",
    "pragma",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "www-authenticate",
    "proxy-authenticate",
    "content-encoding",
    "content-type",
    "content-range",
    "location",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
    "forwarded",
    "x-amzn-trace-id",
];

/// Most fields a trailer section may have.
const MAX_TRAILER_FIELDS: usize = 32;

/// Why a chunked body could not be passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    Malformed(&'static str),
    /// More data than the limit given to `feed`.
    TooLarge,
}

/// Validates a chunked body and writes it again in weir's own form, so that what the receiver
/// parses is exactly what weir parsed: every data span of one `feed` becomes one chunk with a
/// lowercase hex size and no extension (or the data alone, `dechunk`), and the trailer section
/// is parsed (`httparse`: field syntax) and written back without the forbidden fields
/// (`FORBIDDEN_TRAILERS`). Nothing of a `feed` that fails is written.
#[derive(Debug)]
pub struct ChunkedReencoder {
    scanner: ChunkedScanner,
    spans: Vec<(usize, usize)>,
    data: u64,
}

impl Default for ChunkedReencoder {
    fn default() -> Self {
        ChunkedReencoder {
            scanner: ChunkedScanner::capturing_trailers(),
            spans: Vec::new(),
            data: 0,
        }
    }
}

impl ChunkedReencoder {
    pub fn done(&self) -> bool {
        self.scanner.done()
    }

    /// Data bytes seen so far.
    pub fn data_len(&self) -> u64 {
        self.data
    }

    /// Consumes the body's bytes at the front of `buf` (all of it unless the body ends in it)
    /// and appends their re-encoding to `out`; returns how many bytes were consumed. With
    /// `max_data`, a body whose data goes over it is `TooLarge` (before anything of it is
    /// written).
    pub fn feed(
        &mut self,
        buf: &[u8],
        out: &mut BytesMut,
        dechunk: bool,
        max_data: Option<u64>,
    ) -> Result<usize, ChunkError> {
        self.spans.clear();
        let k = self
            .scanner
            .advance(buf, Some(&mut self.spans))
            .map_err(ChunkError::Malformed)?;
        let len: usize = self.spans.iter().map(|&(s, e)| e - s).sum();
        self.data += len as u64;
        if max_data.is_some_and(|max| self.data > max) {
            return Err(ChunkError::TooLarge);
        }
        let mark = out.len();
        if len > 0 && !dechunk {
            put_hex(out, len as u64);
            out.put_slice(b"\r\n");
        }
        for &(s, e) in &self.spans {
            out.put_slice(&buf[s..e]);
        }
        if len > 0 && !dechunk {
            out.put_slice(b"\r\n");
        }
        if self.scanner.done()
            && !dechunk
            && let Err(e) = write_trailers(out, self.scanner.trailer())
        {
            out.truncate(mark);
            return Err(e);
        }
        Ok(k)
    }
}

/// Writes the last chunk and the allowed fields of a trailer section (its raw bytes, final
/// CRLF included, as the scanner kept them).
fn write_trailers(out: &mut BytesMut, raw: &[u8]) -> Result<(), ChunkError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
    let fields = match httparse::parse_headers(raw, &mut slots) {
        Ok(httparse::Status::Complete((n, fields))) if n == raw.len() => fields,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ChunkError::Malformed("too many trailer fields"));
        }
        _ => return Err(ChunkError::Malformed("bad trailer field")),
    };
    out.put_slice(b"0\r\n");
    for f in fields.iter() {
        if FORBIDDEN_TRAILERS
            .iter()
            .any(|n| f.name.eq_ignore_ascii_case(n))
        {
            continue;
        }
        out.put_slice(f.name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(f.value);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    Ok(())
}

/// The last chunk of a chunked body without trailers: what says the body is whole.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends `data` as one chunk (nothing for no data: an empty chunk would be the last).
pub fn put_chunk(out: &mut BytesMut, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.reserve(data.len() + 20);
    put_hex(out, data.len() as u64);
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// `n` in decimal (no allocation, unlike `to_string`: this is on every response's path).
fn put_dec(out: &mut BytesMut, n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut n = n;
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&tmp[i..]);
}

/// `n` in lowercase hex, without leading zeros.
fn put_hex(out: &mut BytesMut, n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut tmp = [0u8; 16];
    let mut i = tmp.len();
    let mut n = n;
    loop {
        i -= 1;
        tmp[i] = HEX[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&tmp[i..]);
}

#[cfg(test)]
mod name_tests {
    use super::*;

    /// Each common name, in random cases and with one byte changed (to any byte), gives what
    /// `HeaderName::from_bytes` gives — also for names that only look like them.
    #[test]
    fn common_names_are_what_from_bytes_makes() {
        let names: [&[u8]; 13] = [
            b"host",
            b"accept",
            b"cookie",
            b"origin",
            b"referer",
            b"user-agent",
            b"connection",
            b"content-type",
            b"authorization",
            b"cache-control",
            b"content-length",
            b"accept-encoding",
            b"accept-language",
        ];
        let mut rng = fastrand::Rng::with_seed(5);
        let (mut known, mut other) = (0, 0);
        for name in names {
            assert!(common_name(name).is_some(), "{name:?}");
            for i in 0..3_000 {
                let mut v: Vec<u8> = name
                    .iter()
                    .map(|&c| {
                        if rng.bool() {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect();
                if i % 2 == 1 {
                    let at = rng.usize(..v.len());
                    v[at] = rng.u8(..);
                }
                let general = HeaderName::from_bytes(&v);
                match common_name(&v) {
                    Some(n) => {
                        known += 1;
                        assert_eq!(Some(n), general.as_ref().ok().cloned(), "{v:?}");
                    }
                    None => other += 1,
                }
                assert_eq!(header_name(&v).ok(), general.ok(), "{v:?}");
            }
        }
        assert!(known > 13 * 1_500 && other > 13 * 1_000, "{known} {other}");
    }
}
