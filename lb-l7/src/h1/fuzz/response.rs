//! The response side of the fuzz target: a target's bytes go through what `h1::forward` does
//! with them (`codec::parse_response`, interim responses skipped, an unrequested 101 refused
//! (`upgrade::switch`), `codec::response_framing`,
//! `codec::write_client_response_head`, the body copied or re-encoded by `ChunkedReencoder`,
//! de-chunked for an HTTP/1.0 client), and a client's independent strict parser must read
//! exactly one response: the same status and the body weir parsed, framed unambiguously.

use super::{dechunk, show, values};
use crate::h1::upgrade;
use crate::pipeline::codec::{self, ChunkError, ChunkedReencoder, Framing};
use bytes::BytesMut;
use http::Method;

/// The response as weir parsed it from the target.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// The whole body was relayed (else the client connection ends inside it).
    pub complete: bool,
}

/// How the client asked: its method and HTTP version.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub head: bool,
    pub http10: bool,
    /// Bytes per read of the target's body (0: all at once).
    pub read_size: usize,
}

/// A target's bytes → what weir parsed and what it writes to the client; `None` when weir
/// answers itself (a malformed or incomplete head, a bad length: 502/504).
pub fn respond(input: &[u8], client: Client) -> Option<(Answer, Vec<u8>)> {
    let mut buf = BytesMut::from(input);
    let head = loop {
        match codec::parse_response(&mut buf) {
            Ok(Some(r)) if (100..200).contains(&r.status) && r.status != 101 => continue,
            Ok(Some(r)) => break r,
            _ => return None,
        }
    };
    // The client's request offered no upgrade: a 101 is weir's own 502 (`h1::upgrade`).
    let offered: Option<&http::HeaderMap> = None;
    if matches!(
        upgrade::switch(offered, &[], head.status, &head),
        upgrade::Switch::Refuse
    ) {
        return None;
    }
    let method = if client.head {
        Method::HEAD
    } else {
        Method::GET
    };
    let framing = codec::response_framing(&method, head.status, &head).ok()?;
    let dechunk = client.http10 && framing == Framing::Chunked;
    let connection = match (framing == Framing::UntilClose || dechunk, client.http10) {
        (true, _) => Some("close"),
        (false, true) => Some("keep-alive"),
        (false, false) => None,
    };
    let mut wire = BytesMut::new();
    let chunked = framing == Framing::Chunked && !dechunk;
    codec::write_client_response_head(&mut wire, &head, chunked, connection, false, &[]);
    let mut answer = Answer {
        status: head.status,
        body: Vec::new(),
        complete: true,
    };
    match framing {
        Framing::Empty => {}
        Framing::Length(n) => {
            let k = (n.min(buf.len() as u64)) as usize;
            answer.body = buf[..k].to_vec();
            wire.extend_from_slice(&answer.body);
            answer.complete = k as u64 == n;
        }
        Framing::UntilClose => {
            answer.body = buf.to_vec();
            wire.extend_from_slice(&buf);
        }
        Framing::Chunked => {
            let body_start = wire.len();
            answer.complete = relay_chunked(&mut buf, &mut wire, &mut answer.body, dechunk, client);
            if !answer.complete && wire.len() == body_start {
                // Nothing of the body went out: weir answers 502 instead (`forward`).
                return None;
            }
        }
    }
    Some((answer, wire.to_vec()))
}

/// `relay`'s chunked path; `data` gets the data weir parsed (a de-chunking twin's output).
fn relay_chunked(
    buf: &mut BytesMut,
    wire: &mut BytesMut,
    data: &mut Vec<u8>,
    dechunk: bool,
    client: Client,
) -> bool {
    let (mut re, mut twin) = (ChunkedReencoder::default(), ChunkedReencoder::default());
    while !re.done() && !buf.is_empty() {
        let read = match client.read_size {
            0 => buf.len(),
            n => n.min(buf.len()),
        };
        let (mut out, mut plain) = (BytesMut::new(), BytesMut::new());
        let took = match re.feed(&buf[..read], &mut out, dechunk, None) {
            Ok(k) => k,
            Err(ChunkError::Malformed(_) | ChunkError::TooLarge) => return false,
        };
        assert_eq!(twin.feed(&buf[..read], &mut plain, true, None), Ok(took));
        data.extend_from_slice(&plain);
        wire.extend_from_slice(&out);
        let _ = buf.split_to(took);
    }
    re.done()
}

/// Reads `wire` as a strict client would: one response, its framing unambiguous (one
/// `content-length` of digits, or `transfer-encoding: chunked` with canonical chunks, or
/// neither with `connection: close`), `Connection` only `close`/`keep-alive`, nothing after it.
fn read(wire: &[u8], client: Client) -> Answer {
    let mut slots = [httparse::EMPTY_HEADER; 160];
    let mut resp = httparse::Response::new(&mut slots);
    let n = match resp.parse(wire) {
        Ok(httparse::Status::Complete(n)) => n,
        r => panic!("a head weir wrote does not parse: {r:?} {:?}", show(wire)),
    };
    let status = resp.code.unwrap_or(0);
    let fields = |name: &str| values(resp.headers, name);
    let (te, cl, conn) = (
        fields("transfer-encoding"),
        fields("content-length"),
        fields("connection"),
    );
    let head = show(&wire[..n]);
    assert!(te.is_empty() || cl.is_empty(), "TE and CL: {head:?}");
    assert!(te.len() <= 1 && cl.len() <= 1, "{head:?}");
    for c in &conn {
        let ok = c.eq_ignore_ascii_case(b"close") || c.eq_ignore_ascii_case(b"keep-alive");
        assert!(ok, "Connection: {head:?}");
    }
    for v in &cl {
        assert!(
            !v.is_empty() && v.iter().all(u8::is_ascii_digit),
            "{head:?}"
        );
    }
    let body = &wire[n..];
    let bodyless = client.head || (100..200).contains(&status) || status == 204 || status == 304;
    let (data, complete) = if bodyless {
        assert!(
            body.is_empty(),
            "bytes after a bodyless response: {:?}",
            show(wire)
        );
        (Vec::new(), true)
    } else if let [te] = te.as_slice() {
        assert_eq!(*te, b"chunked", "{head:?}");
        let (data, used, complete) = dechunk(body);
        assert_eq!(
            used,
            body.len(),
            "bytes after the response: {:?}",
            show(wire)
        );
        (data, complete)
    } else if let [cl] = cl.as_slice() {
        let len: usize = show(cl).parse().unwrap();
        assert!(
            body.len() <= len,
            "bytes after the response: {:?}",
            show(wire)
        );
        (body.to_vec(), body.len() == len)
    } else {
        let close = conn.iter().any(|c| c.eq_ignore_ascii_case(b"close"));
        assert!(
            close,
            "a body without framing on a kept connection: {head:?}"
        );
        (body.to_vec(), true)
    };
    Answer {
        status,
        body: data,
        complete,
    }
}

/// The response invariant: the client reads exactly the response weir parsed. `first` picks
/// the client (HEAD, HTTP/1.0, read size).
pub fn check(first: u8, input: &[u8]) {
    let client = Client {
        head: first & 1 != 0,
        http10: first & 2 != 0,
        read_size: usize::from(first >> 2) & 31,
    };
    let Some((mut want, wire)) = respond(input, client) else {
        return;
    };
    let got = read(&wire, client);
    if client.head || (100..200).contains(&want.status) {
        want.body.clear();
    }
    assert_eq!(got.status, want.status, "{:?}", show(input));
    // A body cut short (the target failed mid-body) reaches the client as far as it went.
    assert_eq!(got.body, want.body, "{:?}", show(input));
    assert!(got.complete || !want.complete, "{:?}", show(input));
}
