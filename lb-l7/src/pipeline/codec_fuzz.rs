//! Seeded mutation tests for the pure HTTP/1.1 codec: malformed and truncated heads and chunked
//! bodies must never panic, and what weir writes must parse again. Deterministic (fixed seeds),
//! a few seconds in a debug build.
//!
//! Properties:
//! - `parse_request` / `parse_response`: complete → exactly the head's bytes are taken; partial
//!   → nothing is taken; an error → a 4xx of the documented set (requests).
//! - a parsed request written with `write_request_head` parses to the same method, path and
//!   headers; a parsed response written with `write_client_response_head` parses again.
//! - `ChunkedScanner` gives the same answer (bytes taken, done, error, data) whether a body
//!   arrives at once or split at random points.

use super::codec::*;
use crate::pipeline::parse::check;
use bytes::BytesMut;

const REQUESTS: [&[u8]; 5] = [
    b"GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
    b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
    b"PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /next HTTP/1.1\r\nHost: b\r\n\r\n",
];

const RESPONSES: [&[u8]; 8] = [
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\n0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5\r\nSet-Cookie: a=b\r\n\r\nbody until close",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nServer:nginx\r\nDate: x\r\nX-B:  two  \r\nContent-Length: 2, 2\r\nCONNECTION: Keep-Alive\r\n\r\nhi",
    b"HTTP/1.1 204 \nDate: x\nTE: trailers\nContent-Length: 0\nSet-Cookie: a=1\nConnection: te, Date\n\n",
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: x\r\nContent-Length: 22\r\nConnection: keep-alive\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nclose: 1\r\nKeep-Alive: max=0\r\nContent-Length: 1\r\n\r\nx",
];

const CHUNKED: [&[u8]; 3] = [
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
    b"1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\nY: 2\r\n\r\nNEXT",
    b"0\r\n\r\n",
];

/// Bytes that matter to HTTP syntax, preferred when mutating.
const SPECIAL: &[u8] = b"\r\n:; ,\t=0123456789abcdefABCDEF\x00\x7f\xff/?%-chunkedHTTP";

/// A few random edits of `src` (also used by `h1::fuzz`'s seeded test).
pub(crate) fn mutate(rng: &mut fastrand::Rng, src: &[u8]) -> Vec<u8> {
    let mut v = src.to_vec();
    for _ in 0..rng.usize(1..4) {
        let at = rng.usize(..=v.len());
        let byte = if rng.bool() {
            SPECIAL[rng.usize(..SPECIAL.len())]
        } else {
            rng.u8(..)
        };
        match rng.u8(..6) {
            0 if at < v.len() => v[at] = byte,
            1 => v.insert(at, byte),
            2 if at < v.len() => {
                v.remove(at);
            }
            3 => v.truncate(at),
            4 if at < v.len() => {
                // Repeat a stretch (duplicated headers, doubled CRLFs, long tokens).
                let end = (at + rng.usize(1..40)).min(v.len());
                let piece = v[at..end].to_vec();
                for _ in 0..rng.usize(1..4) {
                    v.splice(at..at, piece.iter().copied());
                }
            }
            _ => v.extend_from_slice(b"\r\n"),
        }
    }
    v
}

#[test]
fn requests_never_panic_and_round_trip() {
    let mut rng = fastrand::Rng::with_seed(0x7765_6972);
    for i in 0..30_000 {
        let input = mutate(&mut rng, REQUESTS[i % REQUESTS.len()]);
        let mut buf = BytesMut::from(&input[..]);
        match parse_request(&mut buf) {
            Ok(None) => assert_eq!(&buf[..], &input[..], "partial: nothing taken"),
            Err(e) => assert!(
                matches!(e.status, 400 | 414 | 431),
                "{} for {:?}",
                e.status,
                String::from_utf8_lossy(&input)
            ),
            Ok(Some(head)) => {
                assert_eq!(buf.len() + head.len, input.len(), "exactly the head taken");
                let h = &head.parts.headers;
                let _ = request_framing(h);
                let _ = client_keeps_alive(head.parts.version, h);
                let _ = check(
                    &head.parts.method,
                    &head.parts.uri,
                    head.parts.version,
                    h,
                    &http::HeaderName::from_static("x-amzn-trace-id"),
                );
                // What weir sends a target parses back to the same request.
                let path = head.parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let mut out = BytesMut::new();
                write_request_head(&mut out, &head.parts.method, path, h, None);
                let again = parse_request(&mut out)
                    .unwrap_or_else(|e| panic!("rewritten head refused ({}): {path}", e.status))
                    .expect("rewritten head complete");
                assert_eq!(again.parts.method, head.parts.method);
                assert_eq!(again.parts.uri, head.parts.uri);
                assert_eq!(&again.parts.headers, h);
                assert!(out.is_empty());
            }
        }
    }
}

#[test]
fn responses_never_panic_and_round_trip() {
    let mut rng = fastrand::Rng::with_seed(0x6c62);
    for i in 0..30_000 {
        let input = mutate(&mut rng, RESPONSES[i % RESPONSES.len()]);
        let mut buf = BytesMut::from(&input[..]);
        match parse_response(&mut buf) {
            Ok(None) => assert_eq!(&buf[..], &input[..], "partial: nothing taken"),
            Err(_) => {}
            Ok(Some(r)) => {
                assert_eq!(
                    buf.len() + r.raw.len(),
                    input.len(),
                    "exactly the head taken"
                );
                let _ = response_framing(&http::Method::GET, r.status, &r);
                let _ = r.target_keeps_alive();
                // What parsing found once is what the scans of the fields find.
                assert!(r.facts_are_the_scans(), "facts of {:?}", r.raw);
                assert!(r.kinds_by_name(), "kinds of {:?}", r.raw);
                assert!(r.values_of_are_by_name(), "values of {:?}", r.raw);
                // The fields HTTP/2 clients get straight from the head are the map's.
                let map = r.end_to_end_headers();
                let mut direct = Vec::new();
                r.each_end_to_end(|n, v| direct.push((n.to_vec(), v.to_vec())));
                let mut mapped: Vec<(Vec<u8>, Vec<u8>)> = map
                    .iter()
                    .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
                    .collect();
                direct.sort();
                mapped.sort();
                assert_eq!(direct, mapped);
                let _ = r.sets_cookie("a");
                // What weir sends a client parses again, with the same status.
                for (chunked, conn, upgrade) in [
                    (false, None, false),
                    (true, Some("close"), false),
                    (false, None, true),
                ] {
                    let mut out = BytesMut::new();
                    write_client_response_head(&mut out, &r, chunked, conn, upgrade, &[]);
                    // Lines copied in runs: the same bytes as written one by one.
                    assert_eq!(out, r.written_piecewise(chunked, conn, upgrade));
                    let again = parse_response(&mut out)
                        .unwrap_or_else(|e| panic!("written head refused: {e}"))
                        .expect("written head complete");
                    assert_eq!(again.status, r.status);
                    assert!(out.is_empty());
                }
            }
        }
    }
}

/// Runs a scanner over `body` fed in the pieces `cuts` makes; returns (taken, done, error, data).
fn scan(body: &[u8], cuts: &[usize]) -> (usize, bool, Option<&'static str>, Vec<u8>) {
    let mut s = ChunkedScanner::default();
    let mut taken = 0;
    let mut data = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain([&body.len()]) {
        let piece = &body[start..end.max(start)];
        let mut spans = Vec::new();
        match s.advance(piece, Some(&mut spans)) {
            Err(e) => return (taken, s.done(), Some(e), data),
            Ok(n) => {
                assert!(n <= piece.len());
                for (a, b) in spans {
                    data.extend_from_slice(&piece[a..b]);
                }
                taken += n;
                if n < piece.len() {
                    assert!(s.done(), "bytes left over only after the end");
                    return (taken, true, None, data);
                }
            }
        }
        start = end.max(start);
    }
    (taken, s.done(), None, data)
}

#[test]
fn chunked_scanner_is_split_independent() {
    let mut rng = fastrand::Rng::with_seed(0x6368);
    for i in 0..30_000 {
        let body = mutate(&mut rng, CHUNKED[i % CHUNKED.len()]);
        let whole = scan(&body, &[]);
        let mut cuts: Vec<usize> = (0..rng.usize(1..6))
            .map(|_| rng.usize(..=body.len()))
            .collect();
        cuts.sort_unstable();
        let split = scan(&body, &cuts);
        let text = String::from_utf8_lossy(&body);
        match (whole.2, split.2) {
            // A malformed body is refused with the same reason however it arrives (what was
            // relayed before the bad byte does not matter: the connection is closed).
            (Some(a), Some(b)) => assert_eq!(a, b, "{text:?} split at {cuts:?}"),
            _ => assert_eq!(whole, split, "{text:?} split at {cuts:?}"),
        }
    }
}

/// Request heads for the target's writer: names in any case, a name repeated around others,
/// hop-by-hop fields and fields `Connection` names, the fields weir replaces, obs-fold, odd
/// whitespace, an empty value, obs-text.
pub(crate) const HOSTILE_REQUESTS: [&[u8]; 6] = [
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18601\r\nuser-agent: h2load nghttp2/1.52.0\r\n\r\n",
    b"POST /p?q HTTP/1.1\r\nhost: a\r\nX-A: 1\r\nx-b: 2\r\nx-a: 3\r\nContent-Length: 4\r\n\r\nbody",
    b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nTE: trailers\r\nKeep-Alive: 5\r\nUpgrade: h2c\r\n\r\n",
    b"GET http://b.example:8080/abs HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-proto: ftp\r\nX-Forwarded-Port: 1\r\nX-Amzn-Trace-Id: Root=1-a-b\r\nx-forwarded-for: 10.0.0.2\r\n\r\n",
    b"GET / HTTP/1.0\r\nX-Fold: a\r\n b\r\nX-Sp:  \t v \t \r\nX-Empty:\r\nX-Hi: \xff\x80\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: [::1]:80\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nhost: b\r\n\r\n",
];

/// `Added`s of each shape: each X-Forwarded-For mode, a standard and a custom trace name,
/// with and without a new `Host`.
fn some_added(rng: &mut fastrand::Rng) -> crate::headers::Added<'static> {
    use http::{HeaderName, HeaderValue};
    static PROTOS: [HeaderValue; 2] = [
        HeaderValue::from_static("http"),
        HeaderValue::from_static("https"),
    ];
    static PORTS: [HeaderValue; 2] = [
        HeaderValue::from_static("80"),
        HeaderValue::from_static("18601"),
    ];
    static TRACES: [HeaderName; 3] = [
        HeaderName::from_static("x-amzn-trace-id"),
        http::header::USER_AGENT,
        HeaderName::from_static("x-a"),
    ];
    let v = |s: &'static str| HeaderValue::from_static(s);
    let xff = std::borrow::Cow::Owned(v("10.9.8.7, 127.0.0.1"));
    let trace = [
        crate::headers::trace_header_value(None, 0x5f00_0000, rng.u128(..)),
        crate::headers::TraceValue::Joined(v("Root=1-5f000000-000000000000000000000abc;Self=1")),
    ];
    crate::headers::Added {
        xff: [None, Some(None), Some(Some(xff))][rng.usize(..3)].clone(),
        proto: &PROTOS[rng.usize(..2)],
        port: &PORTS[rng.usize(..2)],
        trace: (&TRACES[rng.usize(..3)], trace[rng.usize(..2)].clone()),
        host: [None, Some(v("b.example:8080"))][rng.usize(..2)].clone(),
    }
}

/// The request head to a target, written part by part in one piece a line (`put_all`), is
/// byte for byte the head the old writer (a `put_slice` a part) wrote, whatever the client sent
/// and whatever weir removed, set or adds.
#[test]
fn request_heads_to_targets_are_written_as_before() {
    let mut rng = fastrand::Rng::with_seed(0x6862);
    let mut written = 0;
    for i in 0..30_000 {
        let input = mutate(&mut rng, HOSTILE_REQUESTS[i % HOSTILE_REQUESTS.len()]);
        let Ok(Some(mut head)) = parse_request(&mut BytesMut::from(&input[..])) else {
            continue;
        };
        let h = &mut head.parts.headers;
        if rng.bool() {
            crate::headers::remove_hop_by_hop(h, rng.bool());
            // The framing weir states (the HTTP/1.1 engine's `set_upstream_framing`): the
            // client's lines gone, weir's own last.
            h.remove(http::header::CONTENT_LENGTH);
            h.remove(http::header::TRANSFER_ENCODING);
            let framing = ["chunked", "5", ""][rng.usize(..3)];
            match framing {
                "chunked" => h.insert(http::header::TRANSFER_ENCODING, framing.parse().unwrap()),
                "5" => h.insert(http::header::CONTENT_LENGTH, framing.parse().unwrap()),
                _ => None,
            };
        }
        let added = some_added(&mut rng);
        let path = request_target(&head.parts.uri);
        for added in [None, Some(&added)] {
            let prev = [&b""[..], b"prev|"][rng.usize(..2)];
            let (mut new, mut old) = (BytesMut::from(prev), BytesMut::from(prev));
            write_request_head(&mut new, &head.parts.method, &path, h, added);
            write_request_head_old(&mut old, &head.parts.method, &path, h, added);
            assert_eq!(new, old, "{:?}", String::from_utf8_lossy(&input));
            written += 1;
        }
    }
    assert!(
        written > 15_000,
        "{written} heads written: mutation left too few valid"
    );
}

/// `Connection` values a response may carry, for `connection_values_are_read_as_scanned`: the
/// usual ones in several cases, near misses of them, lists, names of fields left out anyway,
/// of fields the head has and of none, whitespace and empty options.
const CONNECTION_VALUES: [&str; 18] = [
    "keep-alive",
    "Keep-Alive",
    "KEEP-ALIVE",
    "close",
    "Close",
    "CLOSE",
    "keep-alivE",
    "keep_alive",
    "keep-alive2",
    "closed",
    "clos",
    "close, keep-alive",
    "keep-alive, X-A",
    "te, Date",
    "x-a",
    "upgrade",
    " ,",
    "Keep-Alive ,close",
];

/// The `Connection` options and the fields they name, found while parsing (`Facts`: the usual
/// values without a split), are what the scans of the fields find, and the head weir writes for
/// a client (without comparing names when none is named) is byte for byte the one written
/// with the list made as it always was: every value, and every pair of `Connection` lines, in
/// a head whose fields are named like the options.
#[test]
fn connection_values_are_read_as_scanned() {
    let mut heads = 0;
    for (i, a) in CONNECTION_VALUES.iter().enumerate() {
        for b in [None].into_iter().chain(CONNECTION_VALUES.iter().map(Some)) {
            let second = b.map_or(String::new(), |b| format!("connection: {b}\r\n"));
            let raw = format!(
                "HTTP/1.{} 200 OK\r\nServer: t\r\nConnection: {a}\r\nX-A: 1\r\nClose: 2\r\n\
                 Keep-Alive: timeout=5\r\n{second}Date: d\r\nContent-Length: 0\r\n\r\n",
                i % 2
            );
            let mut buf = BytesMut::from(raw.as_bytes());
            let r = parse_response(&mut buf).unwrap().expect("a complete head");
            assert!(r.facts_are_the_scans(), "facts of {raw:?}");
            for (chunked, conn, upgrade) in [
                (false, None, false),
                (true, Some("close"), false),
                (false, Some("keep-alive"), false),
                (false, None, true),
            ] {
                let mut out = BytesMut::new();
                write_client_response_head(&mut out, &r, chunked, conn, upgrade, &[]);
                assert_eq!(out, r.written_piecewise(chunked, conn, upgrade), "{raw:?}");
            }
            heads += 1;
        }
    }
    assert_eq!(heads, 18 * 19);
}

/// Heads in the plain form (`parse_response` reads them without httparse), to mutate.
const PLAIN: [&[u8]; 4] = [
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Tue, 08 Dec 2026 00:58:12 GMT\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nConnection: keep-alive\r\n\r\nhello from the origin\n",
    b"HTTP/1.0 404 Not Found \r\nX-A:b  \r\nTransfer-Encoding: gzip, chunked\r\nKeep-Alive: timeout=5, max=100\r\nConnection: close, x-a\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSet-Cookie: a=b; Path=/\r\n\r\n",
    b"HTTP/1.1 599 x\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\nTE: trailers\r\n\r\n",
];

/// What `parse_response` reads (the plain form without httparse) is what httparse reads
/// (`parse_by_httparse`: the head, its fields, kinds and facts, or the same answer, and the
/// same bytes left), for mutated heads and every head one byte away from a plain one.
#[test]
fn plain_heads_are_read_as_httparse_reads_them() {
    let same = |input: &[u8]| {
        let (mut a, mut b) = (BytesMut::from(input), BytesMut::from(input));
        let (fast, old) = (parse_response(&mut a), parse_by_httparse(&mut b));
        let text = String::from_utf8_lossy(input);
        assert_eq!(format!("{fast:?}"), format!("{old:?}"), "{text:?}");
        assert_eq!(a, b, "{text:?}");
        ResponseHead::read_plainly(input)
    };
    let mut rng = fastrand::Rng::with_seed(0x706c_6169);
    let mut plain = 0;
    for i in 0..40_000 {
        let seeds = i % (PLAIN.len() + RESPONSES.len());
        let seed = PLAIN
            .get(seeds)
            .unwrap_or_else(|| &RESPONSES[seeds - PLAIN.len()]);
        plain += usize::from(same(&mutate(&mut rng, seed)));
    }
    // Every byte of each plain head replaced by every byte, and every prefix.
    for seed in PLAIN {
        assert!(ResponseHead::read_plainly(seed));
        let head_len = seed.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let mut v = seed.to_vec();
        for at in 0..seed.len() {
            for byte in 0..=255 {
                v[at] = byte;
                plain += usize::from(same(&v));
            }
            v[at] = seed[at];
            let whole = same(&seed[..at]);
            assert_eq!(whole, at >= head_len, "a prefix of the head is not whole");
        }
    }
    assert!(plain > 40_000, "the plain form read {plain} times");
}

/// The word-at-a-time scan for a value's end finds the first byte that is not visible or a
/// space wherever it is, whatever the bytes after it (every byte at every place of a 20-byte
/// run, with a random byte after it), and at any length.
#[test]
fn visible_bytes_are_counted_as_one_by_one() {
    let mut rng = fastrand::Rng::with_seed(0x7669);
    let text = b"abcdefghij klmnop~ !";
    for at in 0..text.len() {
        for byte in 0..=255 {
            let mut v = text.to_vec();
            v[at] = byte;
            let after = rng.usize(at..text.len());
            v[after] = rng.u8(..);
            for len in [v.len(), at + 1, rng.usize(..=v.len())] {
                assert!(ResponseHead::visible_is_the_scan(&v[..len]), "{v:?} {len}");
            }
        }
    }
}
