//! The HTTP/1.1 request pipeline as one pure function, for the coverage-guided fuzz target
//! (`lb-l7/fuzz`, cargo-fuzz) and the seeded test below: a client's bytes go through the
//! functions the engine calls (`codec::parse_request` with the desync classification,
//! `headers::drop_unsupported_upgrade`, `desync::action`, `codec::request_framing`,
//! `pipeline::parse::check`, `forward::over_body_limit`, `headers::remove_hop_by_hop` as in
//! `prepare_upstream`, `forward::upstream_head`, `relay`'s body handling: a length copied,
//! chunked through `ChunkedReencoder`), and what a target would receive is parsed again by an
//! independent parser (`httparse` heads, strict framing written here) that must find exactly
//! the requests weir routed — same method, target, `Host` and body, nothing more.
//!
//! The response side (`response`): a target's bytes → what weir writes to the client → a
//! strict client parser, which must read exactly the response weir parsed.
//!
//! Simplifications (each makes the model stop where the engine might go on, never the other
//! way): a request weir answers itself ends the stream; so does an upgrade (what follows is a
//! tunnel), a connection weir closes, and a body that fails. All requests go to one target
//! connection (the engine may use several: a stricter check). `prepare_upstream`'s added
//! fields (X-Forwarded-*, the trace id) are written as the engine writes them, with fixed
//! values (it needs a worker's shared state, which this pure model does not build).

mod response;

use super::forward;
use crate::config::{DesyncMitigationMode, L7Config};
use crate::headers::{self, Added, TraceValue};
use crate::pipeline::codec::{self, ChunkError, ChunkedReencoder, Framing};
use crate::pipeline::{decide, desync, parse};
use bytes::BytesMut;
use http::{HeaderName, HeaderValue, header};
use std::borrow::Cow;

/// The listener port the model's `Host` rewrite uses.
const PORT: &str = "8080";

/// A request weir forwarded, as weir saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub method: String,
    /// The request target as written to the target (origin form).
    pub target: String,
    /// The `Host` the target gets.
    pub host: Option<String>,
    /// The body's data (de-chunked).
    pub body: Vec<u8>,
    /// The whole body was forwarded (else the stream ended inside it).
    pub complete: bool,
}

/// How the model runs: the desync mode, the body limit, and how bodies are split into reads.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub mode: DesyncMitigationMode,
    pub max_body: Option<u64>,
    /// Bytes per read while relaying a body (0: all at once).
    pub read_size: usize,
}

impl Setup {
    /// A setup chosen by the fuzzer's first byte.
    pub fn from_byte(b: u8) -> Setup {
        Setup {
            mode: match b % 3 {
                0 => DesyncMitigationMode::Monitor,
                1 => DesyncMitigationMode::Defensive,
                _ => DesyncMitigationMode::Strictest,
            },
            max_body: (b & 4 != 0).then_some(64),
            read_size: usize::from(b >> 3),
        }
    }
}

/// Runs a client's byte stream through the pipeline: the requests weir routes and the bytes a
/// target would receive.
pub fn pipeline(input: &[u8], setup: Setup) -> (Vec<Routed>, Vec<u8>) {
    let config = L7Config::default();
    let allowed = &config.load_balancer.upgrade_protocols;
    let trace = HeaderName::from_static("x-amzn-trace-id");
    let mut buf = BytesMut::from(input);
    let mut routed = Vec::new();
    let mut wire = BytesMut::new();
    // Bounded: every turn takes a head off `buf`, and a few requests find what a stream can.
    for _ in 0..16 {
        let Ok(Some(head)) = codec::parse_request(&mut buf) else {
            break;
        };
        let mut req = http::Request::from_parts(head.parts, ());
        headers::drop_unsupported_upgrade(req.headers_mut(), allowed);
        let action = if head.class.non_compliant() {
            desync::action(head.class.tier, setup.mode)
        } else {
            desync::Action::Forward
        };
        let (Ok(framing), false) = (
            codec::request_framing(req.headers()),
            action == desync::Action::Block,
        ) else {
            break;
        };
        let (mut parts, ()) = req.into_parts();
        let checked = parse::check(
            &parts.method,
            &parts.uri,
            parts.version,
            &parts.headers,
            &trace,
        )
        .and_then(|_| parse::check_body_length(&parts.headers, setup.max_body));
        if checked.is_err() || forward::over_body_limit(framing, setup.max_body) {
            break;
        }
        let keep = codec::client_keeps_alive(parts.version, &parts.headers)
            && action == desync::Action::Forward;
        let upgrade = headers::wants_upgrade(&parts.headers);
        let expect = parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let host = decide::host_of(&parts.headers, &parts.uri);
        let added = added(&mut parts, host.as_deref(), upgrade);
        let target = codec::request_target(&parts.uri);
        let mut r = Routed {
            method: parts.method.to_string(),
            target: target.to_string(),
            host: added
                .host
                .as_ref()
                .or(parts.headers.get(header::HOST))
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            body: Vec::new(),
            complete: true,
        };
        wire.extend_from_slice(&forward::upstream_head(&mut parts, framing, &added, expect));
        r.complete = relay_body(&mut buf, &mut wire, &mut r.body, framing, setup);
        let go_on = r.complete && keep && !upgrade;
        routed.push(r);
        if !go_on {
            break;
        }
    }
    (routed, wire.to_vec())
}

/// `prepare_upstream`'s rewrite without a worker's state: hop-by-hop fields removed, the
/// forwarded fields and `Host` weir adds.
fn added(parts: &mut http::request::Parts, host: Option<&str>, upgrade: bool) -> Added<'static> {
    static PROTO: HeaderValue = HeaderValue::from_static("http");
    static PORT_VALUE: HeaderValue = HeaderValue::from_static(PORT);
    static TRACE: HeaderName = HeaderName::from_static("x-amzn-trace-id");
    headers::remove_hop_by_hop(&mut parts.headers, upgrade);
    parts.version = http::Version::HTTP_11;
    let new_host = host.and_then(|h| {
        let v6 = h.contains(':');
        let v = if v6 {
            format!("[{h}]:{PORT}")
        } else {
            format!("{h}:{PORT}")
        };
        HeaderValue::from_str(&v).ok()
    });
    Added {
        xff: Some(Some(Cow::Owned(HeaderValue::from_static("127.0.0.1")))),
        proto: &PROTO,
        port: &PORT_VALUE,
        trace: (
            &TRACE,
            TraceValue::Root(*b"Root=1-00000000-000000000000000000000000"),
        ),
        host: new_host,
    }
}

/// Moves a body from `buf` to `wire` as `relay` does (in reads of `setup.read_size`);
/// `data` gets its data bytes. Returns whether the body was complete (and valid).
fn relay_body(
    buf: &mut BytesMut,
    wire: &mut BytesMut,
    data: &mut Vec<u8>,
    framing: Framing,
    setup: Setup,
) -> bool {
    match framing {
        Framing::Empty => true,
        Framing::Length(n) => {
            let k = (n.min(buf.len() as u64)) as usize;
            let body = buf.split_to(k);
            wire.extend_from_slice(&body);
            data.extend_from_slice(&body);
            k as u64 == n
        }
        Framing::Chunked => {
            // `twin` reads the same bytes de-chunked: the data weir parsed, which the target
            // must find in what `re` wrote.
            let (mut re, mut twin) = (ChunkedReencoder::default(), ChunkedReencoder::default());
            while !re.done() && !buf.is_empty() {
                let read = match setup.read_size {
                    0 => buf.len(),
                    n => n.min(buf.len()),
                };
                let (mut out, mut plain) = (BytesMut::new(), BytesMut::new());
                let took = match re.feed(&buf[..read], &mut out, false, setup.max_body) {
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
        Framing::UntilClose => false,
    }
}

/// A request as a target parses it (independently of weir's codec).
#[derive(Debug, PartialEq, Eq)]
struct Received {
    method: String,
    target: String,
    host: Option<String>,
    body: Vec<u8>,
    complete: bool,
}

/// Parses what a target received: `httparse` for heads, strict framing (exactly one of one
/// `Content-Length` of digits or one `Transfer-Encoding: chunked`, canonical chunks, trailers
/// without framing or routing fields), `Connection` only as `upgrade`. Panics on anything
/// a strict target would read differently from a lenient one.
fn receive(mut wire: &[u8]) -> Vec<Received> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let mut slots = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut slots);
        let n = match req.parse(wire) {
            Ok(httparse::Status::Complete(n)) => n,
            r => panic!("a head weir wrote does not parse: {r:?} {:?}", show(wire)),
        };
        assert!(
            !wire[..n].windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
            "bare LF in a head weir wrote: {:?}",
            show(&wire[..n])
        );
        let fields = |name: &str| values(req.headers, name);
        let (te, cl, hosts) = (
            fields("transfer-encoding"),
            fields("content-length"),
            fields("host"),
        );
        assert!(
            te.is_empty() || cl.is_empty(),
            "TE and CL: {:?}",
            show(wire)
        );
        assert!(te.len() <= 1 && cl.len() <= 1 && hosts.len() <= 1);
        for c in fields("connection") {
            assert!(
                c.eq_ignore_ascii_case(b"upgrade"),
                "Connection: {:?}",
                show(c)
            );
        }
        let mut r = Received {
            method: req.method.unwrap_or("").to_string(),
            target: req.path.unwrap_or("").to_string(),
            host: hosts
                .first()
                .map(|h| String::from_utf8_lossy(h).into_owned()),
            body: Vec::new(),
            complete: true,
        };
        wire = &wire[n..];
        if let [te] = te.as_slice() {
            assert_eq!(*te, b"chunked");
            let used;
            (r.body, used, r.complete) = dechunk(wire);
            wire = &wire[used..];
        } else if let [cl] = cl.as_slice() {
            assert!(
                !cl.is_empty() && cl.iter().all(u8::is_ascii_digit),
                "{:?}",
                show(cl)
            );
            let len: usize = std::str::from_utf8(cl).unwrap().parse().unwrap();
            let k = len.min(wire.len());
            r.body = wire[..k].to_vec();
            r.complete = k == len;
            wire = &wire[k..];
        }
        out.push(r);
    }
    out
}

/// A strict, canonical chunked decoder: (data, bytes used, complete).
fn dechunk(wire: &[u8]) -> (Vec<u8>, usize, bool) {
    let mut data = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = find_crlf(&wire[at..]) else {
            // A feed writes whole chunks: a stream that stops, stops between two.
            assert!(
                wire[at..].is_empty(),
                "a size line cut: {:?}",
                show(&wire[at..])
            );
            return (data, wire.len(), false);
        };
        let size = &wire[at..at + eol];
        assert!(
            !size.is_empty()
                && size.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
                && (size == b"0" || size[0] != b'0'),
            "not a canonical chunk size: {:?}",
            show(size)
        );
        let n = usize::from_str_radix(std::str::from_utf8(size).unwrap(), 16).unwrap();
        at += eol + 2;
        if n == 0 {
            return trailers(wire, at, data);
        }
        if wire.len() < at + n + 2 {
            // A feed writes whole chunks: a stream cannot end inside one.
            panic!("a chunk cut short: {:?}", show(&wire[at..]));
        }
        data.extend_from_slice(&wire[at..at + n]);
        assert_eq!(&wire[at + n..at + n + 2], b"\r\n");
        at += n + 2;
    }
}

/// The trailer section from `at` (after `0\r\n`): field lines with no framing or routing
/// field, then the empty line.
fn trailers(wire: &[u8], mut at: usize, data: Vec<u8>) -> (Vec<u8>, usize, bool) {
    loop {
        let eol = find_crlf(&wire[at..]).expect("the last chunk comes with its trailers whole");
        let line = &wire[at..at + eol];
        at += eol + 2;
        if line.is_empty() {
            return (data, at, true);
        }
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        for bad in ["content-length", "transfer-encoding", "host", "connection"] {
            assert!(!name.eq_ignore_ascii_case(bad.as_bytes()), "trailer {bad}");
        }
    }
}

/// The values of field `name` in a head the independent parser read.
fn values<'h>(headers: &[httparse::Header<'h>], name: &str) -> Vec<&'h [u8]> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
        .collect()
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The invariants: a target parses exactly the requests weir routed; with the first byte's
/// top bit set, the input is a target's response instead and a client must read exactly the
/// response weir parsed (`response::check`). Panics otherwise.
pub fn check(data: &[u8]) {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    if first & 0x80 != 0 {
        return response::check(first & 0x7f, input);
    }
    let (routed, wire) = pipeline(input, Setup::from_byte(first));
    let received = receive(&wire);
    let want: Vec<Received> = routed
        .into_iter()
        .map(|r| Received {
            method: r.method,
            target: r.target,
            host: r.host,
            body: r.body,
            complete: r.complete,
        })
        .collect();
    // An incomplete last body is one the target is still reading.
    assert_eq!(received, want, "input {:?}", show(input));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeds: plain, pipelined, chunked with extensions and trailers, the smuggling shapes of
    /// issue #10 (a `Connection` naming framing, CL lists, TE+CL, doubled TE).
    pub const SEEDS: [&[u8]; 9] = [
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n",
        b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: a\r\n\r\n",
        b"PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n005;x=1\r\nhello\r\n0\r\nX-T: 1\r\nHost: b\r\n\r\nGET /d HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Content-Length\r\nContent-Length: 30\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcdGET /x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
        b"GET http://h/p HTTP/1.1\r\nHost: other\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /tunnel HTTP/1.1\r\n\r\n",
    ];

    #[test]
    fn seeds_hold_the_invariant_in_every_setup() {
        for seed in SEEDS {
            for b in 0..=255u8 {
                let mut data = vec![b];
                data.extend_from_slice(seed);
                check(&data);
            }
        }
    }

    /// Responses: framing a target's `Connection` names, TE+CL, CL lists, chunked with
    /// extensions and trailers, until-close, interim responses.
    pub const RESPONSES: [&[u8]; 6] = [
        b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n005;a=b\r\nhello\r\n0\r\nX-T: 1\r\nContent-Length: 9\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nuntil close",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
    ];

    #[test]
    fn response_seeds_hold_the_invariant() {
        for seed in RESPONSES {
            for b in 0x80..=0xffu8 {
                let mut data = vec![b];
                data.extend_from_slice(seed);
                check(&data);
            }
        }
        let mut rng = fastrand::Rng::with_seed(0x7265_7370);
        for i in 0..20_000 {
            let mut data = vec![rng.u8(0x80..)];
            let seed = RESPONSES[i % RESPONSES.len()];
            data.extend(crate::pipeline::codec_fuzz::mutate(&mut rng, seed));
            check(&data);
        }
    }

    #[test]
    fn smuggling_seeds_route_what_the_target_reads() {
        // Defensive mode, no limit, one read: the `Connection: ..., Content-Length` request
        // (a 400 from the desync or Connection checks, else forwarded with its 30 bytes as a
        // body) never makes `/admin` a request of its own.
        let (routed, wire) = pipeline(SEEDS[3], Setup::from_byte(1));
        assert!(routed.iter().all(|r| r.target != "/admin"), "{routed:?}");
        assert!(!show(&wire).contains("GET /admin"), "{}", show(&wire));
    }

    /// `set_upstream_framing` leaves the map, in order (the order written to the target), as
    /// its oracle (every framing field removed, found or not) did, over mutated hostile heads.
    #[test]
    fn upstream_framing_is_set_as_before() {
        use crate::pipeline::codec_fuzz::{HOSTILE_REQUESTS, mutate};
        let fields = |h: &http::HeaderMap| -> Vec<(String, Vec<u8>)> {
            h.iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect()
        };
        let mut rng = fastrand::Rng::with_seed(0x6672);
        let mut set = 0;
        for i in 0..30_000 {
            let input = mutate(&mut rng, HOSTILE_REQUESTS[i % HOSTILE_REQUESTS.len()]);
            let Ok(Some(mut head)) = codec::parse_request(&mut BytesMut::from(&input[..])) else {
                continue;
            };
            let h = &mut head.parts.headers;
            if rng.bool() {
                headers::remove_hop_by_hop(h, rng.bool());
            }
            let framings = [
                codec::request_framing(h).unwrap_or(Framing::Empty),
                Framing::Empty,
                Framing::Chunked,
                Framing::Length(5),
            ];
            let f = framings[rng.usize(..framings.len())];
            let mut old = h.clone();
            forward::set_upstream_framing_old(&mut old, f);
            forward::set_upstream_framing(h, f);
            assert_eq!(fields(h), fields(&old), "{:?}", show(&input));
            set += 1;
        }
        assert!(set > 8_000, "{set} heads: mutation left too few valid");
    }

    /// Seeded mutations of the seeds (the fuzz target does this coverage-guided).
    #[test]
    fn mutated_streams_hold_the_invariant() {
        let mut rng = fastrand::Rng::with_seed(0x6675_7a7a);
        for i in 0..20_000 {
            let mut data = vec![rng.u8(..)];
            data.extend(crate::pipeline::codec_fuzz::mutate(
                &mut rng,
                SEEDS[i % SEEDS.len()],
            ));
            check(&data);
        }
    }
}
