//! The core fed raw bytes, checked on the frames and events out: RFC 9113's MUSTs a server
//! enforces (h2spec's server cases as the checklist) and every protection. `Client` is a
//! test-only peer: a frame builder, an HPACK encoder for requests, a decoder for responses.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::frame::{self, Head, flag, kind, setting};
use super::{Config, Connection, Event, Reason, StreamError};

/// A frame as the client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct F {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl F {
    fn code(&self) -> u32 {
        match self.kind {
            kind::GOAWAY => frame::read_u32(&self.payload[4..]),
            _ => frame::read_u32(&self.payload),
        }
    }
}

/// One frame's bytes.
pub(super) fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write_head(&mut out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
    out
}

pub(super) fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write_settings(&mut out, values);
    out
}

pub(super) fn data(id: u32, body: &[u8], end: bool) -> Vec<u8> {
    raw(kind::DATA, if end { flag::END_STREAM } else { 0 }, id, body)
}

pub(super) fn rst(id: u32, code: Reason) -> Vec<u8> {
    raw(kind::RST_STREAM, 0, id, &code.0.to_be_bytes())
}

pub(super) fn window_update(id: u32, inc: u32) -> Vec<u8> {
    raw(kind::WINDOW_UPDATE, 0, id, &inc.to_be_bytes())
}

pub(super) fn ping(opaque: [u8; 8]) -> Vec<u8> {
    raw(kind::PING, 0, 0, &opaque)
}

pub(super) fn priority(id: u32, dep: u32) -> Vec<u8> {
    let mut p = dep.to_be_bytes().to_vec();
    p.push(15);
    raw(kind::PRIORITY, 0, id, &p)
}

pub(super) const GET: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "example.com"),
    (":path", "/"),
];

pub(super) const POST: &[(&str, &str)] = &[
    (":method", "POST"),
    (":scheme", "https"),
    (":authority", "example.com"),
    (":path", "/upload"),
];

pub(super) struct Client {
    pub conn: Connection,
    pub now: Instant,
    enc: loona_hpack::Encoder<'static>,
    dec: loona_hpack::Decoder<'static>,
}

impl Client {
    /// A connection past the preface and the SETTINGS exchange.
    pub fn new(cfg: Config) -> Client {
        let mut c = Client::raw(cfg);
        let mut hello = frame::PREFACE.to_vec();
        hello.extend(settings(&[]));
        hello.extend(raw(kind::SETTINGS, flag::ACK, 0, &[]));
        c.send(&hello);
        let fs = c.frames();
        assert_eq!(fs[0].kind, kind::SETTINGS);
        assert_eq!(
            fs.last().map(|f| (f.kind, f.flags)),
            Some((kind::SETTINGS, flag::ACK))
        );
        c
    }

    pub fn raw(cfg: Config) -> Client {
        let now = Instant::now();
        Client {
            conn: Connection::new(cfg, now),
            now,
            enc: loona_hpack::Encoder::new(),
            dec: loona_hpack::Decoder::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.conn.recv(bytes, self.now);
    }

    /// A request's header block.
    pub fn block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
        self.enc
            .encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    pub fn headers(&mut self, id: u32, fields: &[(&str, &str)], end_stream: bool) -> Vec<u8> {
        let b = self.block(fields);
        let es = if end_stream { flag::END_STREAM } else { 0 };
        raw(kind::HEADERS, flag::END_HEADERS | es, id, &b)
    }

    pub fn request(&mut self, id: u32, fields: &[(&str, &str)], end_stream: bool) {
        let h = self.headers(id, fields, end_stream);
        self.send(&h);
    }

    /// Everything the connection has to write, as frames.
    pub fn frames(&mut self) -> Vec<F> {
        let mut bytes = Vec::new();
        loop {
            let mut chunk = Vec::new();
            if !self.conn.poll_transmit(&mut chunk) {
                break;
            }
            assert!(chunk.len() <= super::conn::CHUNK);
            bytes.extend(chunk);
        }
        parse(&bytes)
    }

    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }

    /// A response header block, decoded.
    pub fn decode(&mut self, block: &[u8]) -> Vec<(String, String)> {
        self.dec
            .decode(block)
            .expect("our HPACK decodes")
            .into_iter()
            .map(|(n, v)| (lossy(&n), lossy(&v)))
            .collect()
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.conn.handle_timeout(self.now);
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(super) fn parse(mut b: &[u8]) -> Vec<F> {
    let mut out = Vec::new();
    while b.len() >= frame::HEAD_LEN {
        let h = Head::parse(b);
        let end = frame::HEAD_LEN + h.len;
        assert!(b.len() >= end, "a whole frame");
        out.push(F {
            kind: h.kind,
            flags: h.flags,
            stream: h.stream,
            payload: b[frame::HEAD_LEN..end].to_vec(),
        });
        b = &b[end..];
    }
    assert!(b.is_empty(), "no trailing bytes");
    out
}

/// The GOAWAY among `fs`, its code.
pub(super) fn goaway(fs: &[F]) -> Option<Reason> {
    fs.iter()
        .find(|f| f.kind == kind::GOAWAY)
        .map(|f| Reason(f.code()))
}

/// The RST_STREAMs among `fs`: (stream, code).
pub(super) fn resets(fs: &[F]) -> Vec<(u32, Reason)> {
    fs.iter()
        .filter(|f| f.kind == kind::RST_STREAM)
        .map(|f| (f.stream, Reason(f.code())))
        .collect()
}

/// A connection error with `code`, the connection closed.
pub(super) fn assert_conn_error(c: &mut Client, code: Reason) {
    let fs = c.frames();
    assert_eq!(goaway(&fs), Some(code), "frames: {fs:?}");
    assert!(c.conn.is_closed());
    let evs = c.events();
    assert!(
        matches!(evs.last(), Some(Event::GoAway { error: Some(r) }) if *r == code),
        "events: {evs:?}"
    );
}

/// A stream error on `id` with `code`, the connection alive.
pub(super) fn assert_stream_error(c: &mut Client, id: u32, code: Reason) {
    let fs = c.frames();
    assert_eq!(goaway(&fs), None, "no GOAWAY: {fs:?}");
    assert!(
        resets(&fs).contains(&(id, code)),
        "RST_STREAM({id}, {code:?}) in {fs:?}"
    );
    assert!(!c.conn.is_closed());
}

/// The events are exactly one `Refused` for `id` with `status` (the driver hears of the
/// request the connection answered or refused itself, and of nothing else).
pub(super) fn assert_refused(c: &mut Client, id: u32, status: Option<u16>) {
    let evs = c.events();
    assert!(
        matches!(evs[..], [Event::Refused { id: i, status: s, reason }]
            if i == id && s == status && !reason.is_empty()),
        "events: {evs:?}"
    );
}

/// Polls the one `Request` event, its id.
pub(super) fn expect_request(c: &mut Client) -> http::request::Parts {
    let mut evs = c.events();
    assert_eq!(evs.len(), 1, "{evs:?}");
    match evs.remove(0) {
        Event::Request { parts, .. } => parts,
        e => panic!("not a request: {e:?}"),
    }
}

pub(super) fn small() -> Config {
    Config {
        initial_window_size: 100,
        connection_window: 65_535,
        ..Config::default()
    }
}

mod conformance;
mod protections;
mod responses;

/// The core stays sans-I/O and self-contained: no `crate::` path but its own, no tokio, no
/// hyper, no std I/O.
#[test]
fn the_core_imports_nothing_from_the_crate_nor_any_io() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/h2conn");
    let mut files = vec![];
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 10);
    let needles = ["crate::", "tokio", "hyper", "std::io", "std::net"];
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for needle in needles {
                let hit = code.match_indices(needle).any(|(i, _)| {
                    let own = needle == "crate::" && code[i..].starts_with("crate::h2conn");
                    let quoted = code[..i].ends_with('"');
                    !own && !quoted
                });
                assert!(
                    !hit,
                    "{}:{}: {needle} in the sans-I/O core",
                    f.display(),
                    n + 1
                );
            }
        }
    }
}
