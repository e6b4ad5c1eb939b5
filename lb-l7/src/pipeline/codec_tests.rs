//! Unit tests for the pure HTTP/1.1 codec (`codec.rs`).

use super::codec::*;
use crate::pipeline::parse::MAX_REQUEST_LINE;
use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};

// ---- helpers ----

fn hdrs(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for &(n, v) in pairs {
        let name = HeaderName::from_bytes(n.as_bytes()).unwrap();
        h.append(name, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn parse_req(s: &[u8]) -> (Result<Option<RequestHead>, HeadError>, BytesMut) {
    let mut buf = BytesMut::from(s);
    let r = parse_request(&mut buf);
    (r, buf)
}

fn req_status(s: &[u8]) -> Option<u16> {
    parse_req(s).0.err().map(|e| e.status)
}

fn values<'a>(h: &'a HeaderMap, name: &str) -> Vec<&'a [u8]> {
    h.get_all(name).iter().map(HeaderValue::as_bytes).collect()
}

fn resp(s: &str) -> (ResponseHead, BytesMut) {
    let mut buf = BytesMut::from(s.as_bytes());
    let r = parse_response(&mut buf).unwrap().expect("a complete head");
    (r, buf)
}

fn client_head(raw: &str, chunked: bool, conn: Option<&'static str>, upgrade: bool) -> String {
    let mut out = BytesMut::new();
    write_client_response_head(&mut out, &resp(raw).0, chunked, conn, upgrade, &[]);
    String::from_utf8(out.to_vec()).unwrap()
}

/// Feeds `body` to a fresh scanner in pieces of `step` bytes (`usize::MAX`: all at once).
/// Returns (bytes consumed, done, chunk data concatenated) or the first error.
fn scan(body: &[u8], step: usize) -> Result<(usize, bool, Vec<u8>), &'static str> {
    let mut s = ChunkedScanner::default();
    let (mut used, mut data) = (0, Vec::new());
    for piece in body.chunks(step.min(body.len()).max(1)) {
        let mut ranges = Vec::new();
        let n = s.advance(piece, Some(&mut ranges))?;
        for (a, b) in ranges {
            assert!(a <= b && b <= n, "range {a}..{b} outside consumed {n}");
            data.extend_from_slice(&piece[a..b]);
        }
        used += n;
        if n < piece.len() {
            assert!(s.done(), "stopped early without being done");
            break;
        }
    }
    Ok((used, s.done(), data))
}

// ---- parse_request ----

#[test]
fn request_get_head_with_pipelined_rest() {
    let raw = b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nX-Dup: one\r\n\
                Accept: */*\r\nx-dup: two\r\n\r\nGET /next HTTP/1.1\r\n";
    let (r, rest) = parse_req(raw);
    let head = r.unwrap().unwrap();
    let p = &head.parts;
    assert_eq!(p.method, Method::GET);
    assert_eq!(p.uri.path(), "/a/b");
    assert_eq!(p.uri.query(), Some("x=1&y=2"));
    assert_eq!(p.version, Version::HTTP_11);
    let names: Vec<&str> = p.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["host", "x-dup", "accept"]);
    assert_eq!(values(&p.headers, "x-dup"), [&b"one"[..], b"two"]);
    assert_eq!(p.headers.len(), 4);
    assert!(!head.saw_content_length);
    assert_eq!(&rest[..], b"GET /next HTTP/1.1\r\n");
}

#[test]
fn request_http10_body_stays_in_buffer() {
    let (r, rest) = parse_req(b"POST /up HTTP/1.0\r\ncontent-length: 5\r\n\r\nhelloEXTRA");
    let head = r.unwrap().unwrap();
    assert_eq!(head.parts.method, Method::POST);
    assert_eq!(head.parts.version, Version::HTTP_10);
    assert!(head.saw_content_length);
    assert_eq!(values(&head.parts.headers, "content-length"), [b"5"]);
    assert_eq!(&rest[..], b"helloEXTRA");
}

#[test]
fn request_partial_then_complete() {
    let raw = b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n";
    for cut in 0..raw.len() {
        let (r, rest) = parse_req(&raw[..cut]);
        assert!(matches!(r, Ok(None)), "prefix of {cut} bytes");
        assert_eq!(rest.len(), cut, "a partial head leaves the buffer alone");
    }
    let mut buf = BytesMut::from(&raw[..10]);
    assert!(parse_request(&mut buf).unwrap().is_none());
    buf.extend_from_slice(&raw[10..]);
    buf.extend_from_slice(b"ok");
    let head = parse_request(&mut buf).unwrap().unwrap();
    assert_eq!(head.parts.method, Method::PUT);
    assert_eq!(head.parts.uri.path(), "/x");
    assert_eq!(&buf[..], b"ok");
}

#[test]
fn request_malformed_is_400() {
    let cases: [&[u8]; 6] = [
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
    ];
    for raw in cases {
        let name = String::from_utf8_lossy(raw);
        assert_eq!(req_status(raw), Some(400), "{name:?}");
    }
}

fn with_headers(n: usize) -> Vec<u8> {
    let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..n {
        raw.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    raw
}

#[test]
fn request_header_count_limit() {
    let head = parse_req(&with_headers(MAX_HEADERS)).0.unwrap().unwrap();
    assert_eq!(head.parts.headers.len(), 100);
    let err = parse_req(&with_headers(MAX_HEADERS + 1)).0.unwrap_err();
    assert_eq!((err.status, err.reason), (431, "TooManyHeaders"));
}

#[test]
fn request_line_too_long_is_414() {
    let mut raw = b"GET /".to_vec();
    raw.resize(MAX_REQUEST_LINE - 1, b'a');
    assert!(matches!(parse_req(&raw).0, Ok(None)), "under the limit");
    raw.resize(MAX_REQUEST_LINE + 100, b'a');
    let err = parse_req(&raw).0.unwrap_err();
    assert_eq!((err.status, err.reason), (414, "RequestLineTooLong"));
}

#[test]
fn request_head_too_large_is_431() {
    let mut raw = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    raw.resize(MAX_HEAD - 1, b'a');
    assert!(matches!(parse_req(&raw).0, Ok(None)), "under MAX_HEAD");
    raw.push(b'a');
    let err = parse_req(&raw).0.unwrap_err();
    assert_eq!((err.status, err.reason), (431, "HeadersTooLarge"));
    // Many ordinary lines, no blank line at the end.
    let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
    let line = format!("X-Fill: {}\r\n", "b".repeat(1000));
    while raw.len() < MAX_HEAD {
        raw.extend_from_slice(line.as_bytes());
    }
    assert_eq!(req_status(&raw), Some(431));
}

// ---- framing ----

const CL: &str = "content-length";
const TE: &str = "transfer-encoding";

#[test]
fn request_framing_table() {
    use Framing::*;
    const MAX18: u64 = 999_999_999_999_999_999;
    let ok: [(&[(&str, &str)], Framing); 14] = [
        (&[], Empty),
        (&[("host", "h")], Empty),
        (&[(CL, "0")], Empty),
        (&[(CL, "5")], Length(5)),
        (&[(CL, "5"), (CL, "5")], Length(5)),
        (&[(CL, "5, 5")], Length(5)),
        (&[(CL, "999999999999999999")], Length(MAX18)),
        (&[(TE, "chunked")], Chunked),
        (&[(TE, "CHUNKED")], Chunked),
        (&[(TE, "gzip, chunked")], Chunked),
        (&[(TE, "gzip"), (TE, "chunked")], Chunked),
        (&[(TE, "chunked"), (CL, "5")], Chunked),
        (&[(CL, "5"), (TE, "chunked")], Chunked),
        (&[(TE, "chunked"), (CL, "x")], Chunked),
    ];
    for (h, want) in ok {
        assert_eq!(request_framing(&hdrs(h)), Ok(want), "{h:?}");
    }
    for v in ["5, 6", "abc", "+5", "-5", "5 5", "0x5", "", "1,"] {
        let got = request_framing(&hdrs(&[(CL, v)])).map_err(|e| e.status);
        assert_eq!(got, Err(400), "content-length: {v:?}");
    }
    let bad: [&[(&str, &str)]; 5] = [
        &[(CL, "5"), (CL, "6")],
        &[(CL, "1234567890123456789")],
        &[(TE, "chunked, gzip")],
        &[(TE, "gzip")],
        &[(TE, "chunked"), (TE, "gzip")],
    ];
    for h in bad {
        let got = request_framing(&hdrs(h)).map_err(|e| e.status);
        assert_eq!(got, Err(400), "{h:?}");
    }
}

#[test]
#[allow(clippy::type_complexity)]
fn response_framing_table() {
    use Framing::*;
    const GET: Method = Method::GET;
    let cl10 = &[(CL, "10")][..];
    let cases: [(
        Method,
        u16,
        &[(&str, &str)],
        Result<Framing, BadContentLength>,
    ); 16] = [
        (Method::HEAD, 200, cl10, Ok(Empty)),
        (Method::HEAD, 200, &[(CL, "x")], Ok(Empty)),
        (GET, 204, cl10, Ok(Empty)),
        (GET, 304, cl10, Ok(Empty)),
        (GET, 100, &[], Ok(Empty)),
        (GET, 101, &[], Ok(Empty)),
        (GET, 199, &[], Ok(Empty)),
        (GET, 200, cl10, Ok(Length(10))),
        (Method::POST, 404, &[(CL, "0")], Ok(Empty)),
        (GET, 200, &[(TE, "chunked")], Ok(Chunked)),
        (GET, 200, &[(TE, "gzip, chunked")], Ok(Chunked)),
        (GET, 200, &[(TE, "gzip")], Ok(UntilClose)),
        (GET, 200, &[(TE, "chunked, gzip")], Ok(UntilClose)),
        (GET, 200, &[("content-type", "text/plain")], Ok(UntilClose)),
        (GET, 200, &[(CL, "x")], Err(BadContentLength)),
        (GET, 200, &[(CL, "5, 6")], Err(BadContentLength)),
    ];
    for (m, status, h, want) in cases {
        let got = response_framing(&m, status, &hdrs(h));
        assert_eq!(got, want, "{m} {status} {h:?}");
    }
}

#[test]
fn client_keep_alive_table() {
    const V10: Version = Version::HTTP_10;
    const V11: Version = Version::HTTP_11;
    let cases: [(Version, &[&str], bool); 11] = [
        (V11, &[], true),
        (V11, &["keep-alive"], true),
        (V11, &["close"], false),
        (V11, &["CLOSE"], false),
        (V11, &["keep-alive, Close"], false),
        (V11, &["upgrade", " close "], false),
        (V11, &["closed"], true),
        (V10, &[], false),
        (V10, &["keep-alive"], true),
        (V10, &["Upgrade, Keep-Alive"], true),
        (V10, &["close"], false),
    ];
    for (v, conn, want) in cases {
        let h: Vec<_> = conn.iter().map(|c| ("connection", *c)).collect();
        assert_eq!(client_keeps_alive(v, &hdrs(&h)), want, "{v:?} {conn:?}");
    }
}

#[test]
fn client_keep_alive_http10_close_wins() {
    let h = hdrs(&[("connection", "keep-alive, close")]);
    assert!(!client_keeps_alive(Version::HTTP_10, &h));
}

// ---- ChunkedScanner ----

const HELLO: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";

#[test]
fn chunked_consumes_exactly_the_body() {
    let mut s = ChunkedScanner::default();
    assert!(!s.done());
    assert_eq!(s.advance(HELLO, None), Ok(HELLO.len()));
    assert!(s.done());
    assert_eq!(s.advance(b"more", None), Ok(0), "nothing after the end");
    // A pipelined request after the body is left alone, whole or byte by byte.
    let buf = [HELLO, b"GET / HTTP/1.1\r\n"].concat();
    let mut s = ChunkedScanner::default();
    assert_eq!(s.advance(&buf, None), Ok(HELLO.len()));
    assert!(s.done());
    assert_eq!(scan(&buf, 1), Ok((HELLO.len(), true, b"hello".to_vec())));
}

#[test]
fn chunked_valid_bodies_any_split() {
    let big = format!("A\r\n0123456789\r\n1F\r\n{}\r\n0\r\n\r\n", "z".repeat(31));
    let want_big = format!("0123456789{}", "z".repeat(31));
    let cases: [(&[u8], &[u8]); 8] = [
        (HELLO, b"hello"),
        (b"5;name=val\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5;a=b;c=\"d e\"\r\nhello\r\n0;last\r\n\r\n", b"hello"),
        (b"0\r\nX-T: 1\r\n\r\n", b""),
        (
            b"3\r\nabc\r\n2\r\nde\r\n0\r\nA: 1\r\nB: 2\r\n\r\n",
            b"abcde",
        ),
        (big.as_bytes(), want_big.as_bytes()),
        (b"000005\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"00000000000000a\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
    ];
    for (body, want) in cases {
        let name = String::from_utf8_lossy(body);
        let ok = Ok((body.len(), true, want.to_vec()));
        for step in [usize::MAX, 1, 2, 3, 7] {
            assert_eq!(scan(body, step), ok, "{name} / {step}");
        }
        for cut in 1..body.len() {
            let mut s = ChunkedScanner::default();
            let (mut d1, mut d2) = (Vec::new(), Vec::new());
            let (first, second) = body.split_at(cut);
            assert_eq!(s.advance(first, Some(&mut d1)), Ok(cut), "{name} @{cut}");
            assert!(!s.done(), "{name} @{cut}");
            assert_eq!(s.advance(second, Some(&mut d2)), Ok(second.len()));
            assert!(s.done());
            let mut got: Vec<u8> = d1.iter().flat_map(|&(a, b)| &body[a..b]).copied().collect();
            got.extend(d2.iter().flat_map(|&(a, b)| &body[cut + a..cut + b]));
            assert_eq!(got, want, "{name} @{cut}");
        }
    }
}

#[test]
fn chunked_data_ranges_are_exact() {
    let body = b"3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n";
    let mut ranges = Vec::new();
    let mut s = ChunkedScanner::default();
    assert_eq!(s.advance(body, Some(&mut ranges)), Ok(body.len()));
    assert_eq!(ranges, [(3, 6), (13, 15)]);
}

#[test]
fn put_chunk_writes_what_the_scanner_reads_back() {
    // A close-delimited body relayed chunked (`relay::until_close_chunked`): read by read.
    let reads: [&[u8]; 4] = [b"PARTIAL", b"", &[b'x'; 300], b"-END"];
    let mut out = BytesMut::new();
    for r in reads {
        put_chunk(&mut out, r);
    }
    let mut s = ChunkedScanner::default();
    assert_eq!(s.advance(&out, None), Ok(out.len()));
    assert!(!s.done(), "no last chunk yet: a cut body stays incomplete");
    assert!(out.starts_with(b"7\r\nPARTIAL\r\n12c\r\n"), "{out:?}");
    out.extend_from_slice(LAST_CHUNK);
    let want: Vec<u8> = reads.concat();
    assert_eq!(scan(&out, 1), Ok((out.len(), true, want)));
}

#[test]
fn chunked_errors() {
    let cases: [(&[u8], &str); 16] = [
        (b"x\r\n", "bad chunk size"),
        (b"g\r\n", "bad chunk size"),
        (b" 5\r\n", "bad chunk size"),
        (b"-1\r\n", "bad chunk size"),
        (b"\r\n", "bad chunk size"),
        (b";ext\r\n", "bad chunk size"),
        (b"5\nhello\r\n", "bad chunk size"),
        (b"5\rXhello", "chunk size line not ended by CRLF"),
        (b"5\r\nhelloX", "chunk data not followed by CRLF"),
        (b"5\r\nhello\rX", "chunk data not followed by CRLF"),
        (b"10000000000000000\r\nhello\r\n", "chunk size too large"),
        (b"000000100000000000000\r\n", "chunk size too large"),
        (b"5;a\nhello", "bad chunk extension"),
        (b"0\r\nX-T: 1\n\r\n", "bare LF in trailer"),
        (b"0\r\n\n", "bare LF in trailer"),
        (b"0\r\n\rX", "trailer line not ended by CRLF"),
    ];
    for (body, want) in cases {
        let name = String::from_utf8_lossy(body);
        assert_eq!(scan(body, usize::MAX), Err(want), "{name}");
        assert_eq!(scan(body, 1), Err(want), "{name} byte by byte");
    }
}

// ---- parse_response ----

const RESP: &str = "HTTP/1.1 200 OK Fine\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\
                    X-A: 1\r\nConnection: keep-alive\r\nTRANSFER-ENCODING: chunked\r\n\r\n";

#[test]
fn response_head_fields() {
    let (r, rest) = resp(&format!("{RESP}hello"));
    assert_eq!((r.status, r.version), (200, Version::HTTP_11));
    assert_eq!(&r.raw[..], RESP.as_bytes());
    assert_eq!(&r.raw[r.reason.0..r.reason.1], b"OK Fine");
    assert_eq!(&rest[..], b"hello");
    let n = r.fields.len();
    let fields: Vec<(&[u8], &[u8])> = (0..n).map(|i| (r.name(i), r.value(i))).collect();
    let want: [(&[u8], &[u8]); 5] = [
        (b"Content-Type", b"text/plain"),
        (b"Content-Length", b"5"),
        (b"X-A", b"1"),
        (b"Connection", b"keep-alive"),
        (b"TRANSFER-ENCODING", b"chunked"),
    ];
    assert_eq!(fields, want);
    let te: Vec<&[u8]> = r.values(&http::header::TRANSFER_ENCODING).collect();
    assert_eq!(te, [b"chunked"], "names match in any case");
    assert!(r.has(&http::header::CONTENT_LENGTH));
    assert!(!r.has(&http::header::UPGRADE));
    assert!(r.target_keeps_alive());
}

/// A field's kind is found by its name in any case, and no other name has it: every byte of
/// each name weir knows replaced by every other value (names httparse refuses left out).
#[test]
fn field_kinds_match_their_names_in_any_case() {
    let names = [
        "te",
        "date",
        "upgrade",
        "trailer",
        "connection",
        "keep-alive",
        "set-cookie",
        "content-length",
        "proxy-connection",
        "transfer-encoding",
    ];
    let mut checked = 0;
    for name in names {
        for at in 0..name.len() {
            for b in 0..=255u8 {
                let mut n = name.as_bytes().to_vec();
                n[at] = b;
                let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
                head.extend_from_slice(&n);
                head.extend_from_slice(b": 1\r\n\r\n");
                if let Ok(Some(r)) = parse_response(&mut BytesMut::from(&head[..])) {
                    assert!(r.kinds_by_name(), "{:?}", String::from_utf8_lossy(&n));
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 5000, "{checked}");
}

#[test]
fn response_keep_alive() {
    let cases = [
        ("1.1", "", true),
        ("1.1", "Connection: close\r\n", false),
        ("1.1", "connection: Keep-Alive, CLOSE\r\n", false),
        ("1.0", "", false),
        ("1.0", "Connection: keep-alive\r\n", true),
    ];
    for (v, conn, want) in cases {
        let (r, _) = resp(&format!("HTTP/{v} 200 OK\r\n{conn}\r\n"));
        assert_eq!(r.target_keeps_alive(), want, "{v} {conn:?}");
    }
    let (r, _) = resp("HTTP/1.0 404 Nope\r\n\r\n");
    assert_eq!((r.status, r.version), (404, Version::HTTP_10));
}

#[test]
fn response_partial_and_errors() {
    for cut in 0..RESP.len() {
        let mut buf = BytesMut::from(&RESP.as_bytes()[..cut]);
        assert!(matches!(parse_response(&mut buf), Ok(None)), "{cut}");
        assert_eq!(buf.len(), cut);
    }
    for raw in [
        "garbage\r\n\r\n",
        "HTTP/1.1 abc OK\r\n\r\n",
        "HTTP/1.1 99 X\r\n\r\n",
    ] {
        assert!(parse_response(&mut BytesMut::from(raw)).is_err(), "{raw:?}");
    }
    let mut buf = BytesMut::from("HTTP/1.1 600 Too High\r\n\r\n");
    assert_eq!(parse_response(&mut buf).unwrap_err(), "bad status code");
    assert_eq!(resp("HTTP/1.1 599 Edge\r\n\r\n").0.status, 599);
    assert_eq!(resp("HTTP/1.1 100 Continue\r\n\r\n").0.status, 100);
    let mut big = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
    big.resize(MAX_RESPONSE_HEAD + 1, b'a');
    let err = parse_response(&mut BytesMut::from(&big[..])).unwrap_err();
    assert_eq!(err, "response head too large");
    // The same head complete in one read (it passed: the limit was checked on partial heads).
    big.extend_from_slice(b"\r\n\r\n");
    let err = parse_response(&mut BytesMut::from(&big[..])).unwrap_err();
    assert_eq!(err, "response head too large");
}

#[test]
fn response_without_reason_phrase() {
    let raw = "HTTP/1.1 204\r\nX-A: 1\r\n\r\n";
    let (r, rest) = resp(raw);
    assert_eq!(r.status, 204);
    assert_eq!(r.reason.0, r.reason.1);
    assert!(rest.is_empty());
    let want = "HTTP/1.1 204 \r\nX-A: 1\r\n\r\n";
    assert_eq!(client_head(raw, false, None, false), want);
}

// ---- writing heads ----

#[test]
fn request_head_bytes() {
    let h = hdrs(&[("host", "h"), ("x-a", "1"), ("accept", "*/*"), ("x-a", "2")]);
    let mut out = BytesMut::from("prev|");
    write_request_head(&mut out, &Method::GET, "/p?q=1", &h, None);
    let want = "prev|GET /p?q=1 HTTP/1.1\r\nhost: h\r\nx-a: 1\r\nx-a: 2\r\naccept: */*\r\n\r\n";
    assert_eq!(&out[..], want.as_bytes());
    let mut out = BytesMut::new();
    let purge = Method::from_bytes(b"PURGE").unwrap();
    write_request_head(&mut out, &purge, "*", &HeaderMap::new(), None);
    assert_eq!(&out[..], b"PURGE * HTTP/1.1\r\n\r\n");
}

#[test]
fn upstream_heads_reuse_their_buffer_and_start_empty() {
    let h = hdrs(&[("host", "h"), ("x-a", "1")]);
    let first = UpstreamHead::new(&Method::GET, "/a", &h, None);
    assert_eq!(&first[..], b"GET /a HTTP/1.1\r\nhost: h\r\nx-a: 1\r\n\r\n");
    let at = first.as_ptr();
    drop(first);
    let second = UpstreamHead::new(&Method::POST, "/b", &HeaderMap::new(), None);
    assert_eq!(
        second.as_ptr(),
        at,
        "the dropped head's buffer, not a new one"
    );
    assert_eq!(
        &second[..],
        b"POST /b HTTP/1.1\r\n\r\n",
        "nothing of the first left"
    );
    // One grown past what is kept (a request with large headers) is not kept.
    let big = hdrs(&[("x-big", &"v".repeat(5000))]);
    let large = UpstreamHead::new(&Method::GET, "/", &big, None);
    let large_at = large.as_ptr();
    drop(second);
    drop(large);
    let third = UpstreamHead::new(&Method::GET, "/c", &HeaderMap::new(), None);
    assert_ne!(third.as_ptr(), large_at);
    assert_eq!(third.as_ptr(), at);
}

#[test]
fn status_lines() {
    let cases = [
        (200, "HTTP/1.1 200 OK\r\n"),
        (404, "HTTP/1.1 404 Not Found\r\n"),
        (502, "HTTP/1.1 502 Bad Gateway\r\n"),
        (463, "HTTP/1.1 463 X-Forwarded-For Too Long\r\n"),
        (561, "HTTP/1.1 561 \r\n"),
    ];
    for (status, want) in cases {
        let mut out = BytesMut::new();
        write_status_line(&mut out, status);
        assert_eq!(&out[..], want.as_bytes(), "{status}");
    }
}

const HOPPY: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\
    Connection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\nX-Private: secret\r\n\
    Transfer-Encoding: chunked\r\nUpgrade: h2c\r\nTE: trailers\r\nTrailer: X-T\r\n\
    Proxy-Connection: keep-alive\r\nSet-Cookie: a=1\r\nx-private: again\r\nSet-Cookie: b=2\r\n\
    X-Keep: Yes\r\n\r\n";
const KEPT: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nSet-Cookie: a=1\r\n\
    Set-Cookie: b=2\r\nX-Keep: Yes\r\n";

#[test]
fn client_head_drops_hop_by_hop() {
    let want = format!("{KEPT}transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
    assert_eq!(client_head(HOPPY, true, Some("close"), false), want);
    let want = format!("{KEPT}\r\n");
    assert_eq!(client_head(HOPPY, false, None, false), want);
    let want = format!("{KEPT}connection: keep-alive\r\n\r\n");
    assert_eq!(client_head(HOPPY, false, Some("keep-alive"), false), want);
    // The target's reason phrase is kept; the version is weir's.
    let raw = "HTTP/1.0 418 Short And Stout\r\nContent-Length: 3\r\n\r\n";
    // The length is weir's own statement of the framing, not the target's line.
    let want = "HTTP/1.1 418 Short And Stout\r\ncontent-length: 3\r\n\r\n";
    assert_eq!(client_head(raw, false, None, false), want);
}

#[test]
fn client_head_drops_every_connection_option() {
    // More options than `Listed` keeps on the stack, over two `Connection` lines, with empty
    // and padded ones: every named header goes, the others stay.
    let raw = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-A ,, X-B\r\nX-A: 1\r\nX-B: 2\r\n\
               Connection: X-C, x-d,X-E\r\nX-C: 3\r\nX-D: 4\r\nX-E: 5\r\nX-F: 6\r\n\r\n";
    let want = "HTTP/1.1 200 OK\r\nX-F: 6\r\n\r\n";
    assert_eq!(client_head(raw, false, None, false), want);
}

#[test]
fn client_head_upgrade() {
    let raw = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Accept: abc\r\n\r\n";
    let want = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                Sec-WebSocket-Accept: abc\r\nconnection: upgrade\r\n\r\n";
    assert_eq!(client_head(raw, false, Some("close"), true), want);
    // Without `upgrade` the same head loses `Upgrade` (listed in `Connection` and hop-by-hop).
    let want = "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: abc\r\n\r\n";
    assert_eq!(client_head(raw, false, None, false), want);
}

#[test]
fn end_to_end_headers_for_hyper() {
    let raw = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nX-Private: p\r\n\
               Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=1\r\n\
               Set-Cookie: b=2\r\nContent-Type: text/plain\r\n\r\n";
    let h = resp(raw).0.end_to_end_headers();
    let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["set-cookie", "content-type"]);
    let cookies: Vec<&[u8]> = h
        .get_all("set-cookie")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    assert_eq!(cookies, [&b"a=1"[..], &b"b=2"[..]]);
}

fn raw_host(raw: &[u8]) -> &str {
    let s = std::str::from_utf8(raw).expect("ascii");
    let at = s.find("Host: ").expect("a Host") + 6;
    &s[at..at + s[at..].find('\r').expect("CRLF")]
}

#[test]
fn request_target_sent_to_the_target() {
    // RFC 9112 §3.2.4: an OPTIONS about the server itself (absolute-form, no path, no query)
    // goes out as `OPTIONS *`; with a path it stays a question about that path.
    let cases: [(&[u8], &str); 6] = [
        (
            b"OPTIONS http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n",
            "*",
        ),
        (
            b"OPTIONS http://a.example:8001 HTTP/1.1\r\nHost: a.example:8001\r\n\r\n",
            "*",
        ),
        (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "*"),
        (
            b"OPTIONS http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
            "/",
        ),
        (
            b"OPTIONS http://a.example?q HTTP/1.1\r\nHost: a.example\r\n\r\n",
            "/?q",
        ),
        (
            b"GET http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n",
            "/",
        ),
    ];
    for (raw, want) in cases {
        let (r, _) = parse_req(raw);
        let head = r.expect("parsed").expect("complete");
        let got = request_target(&head.parts.uri);
        assert_eq!(head.parts.headers["host"], raw_host(raw));
        assert_eq!(got, want, "{}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn request_target_forms() {
    // RFC 9112 §3.2: origin-form, absolute-form (http/https), `*` for OPTIONS only.
    for ok in [
        &b"GET /a?b HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET http://a.example/b?c HTTP/1.1\r\nHost: a.example\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let (r, _) = parse_req(ok);
        let head = r.expect("parsed").expect("complete");
        let path = head.parts.uri.path_and_query().map(|p| p.as_str());
        assert!(matches!(path, Some("/a?b" | "/b?c" | "*")), "{path:?}");
    }
    for bad in [
        &b"GET x HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET -up HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET ftp://a.example/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n",
        // A fragment is no part of a request-target (`Uri` cut it: `/a` went out).
        b"GET /a#/../admin HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a?x=1#f HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://a.example/b#c HTTP/1.1\r\nHost: a.example\r\n\r\n",
        b"OPTIONS *# HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert_eq!(
            req_status(bad),
            Some(400),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// `parse_request` takes httparse's word that a header value is one `HeaderValue` admits (it
/// does not check the bytes again): every byte httparse admits in a value, `HeaderValue` must
/// admit, and every byte it refuses must get the request refused.
#[test]
fn httparse_admits_what_header_values_admit() {
    for b in 0..=255u8 {
        let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-V: a".to_vec();
        raw.push(b);
        raw.extend_from_slice(b"z\r\n\r\n");
        let value_ok = HeaderValue::from_bytes(&[b'a', b, b'z']).is_ok();
        let (r, _) = parse_req(&raw);
        match r {
            Ok(Some(head)) => {
                assert!(
                    value_ok,
                    "byte {b:#04x}: httparse admitted it, HeaderValue does not"
                );
                assert_eq!(values(&head.parts.headers, "x-v"), [&[b'a', b, b'z'][..]]);
            }
            Ok(None) => panic!("byte {b:#04x}: incomplete"),
            Err(e) => {
                assert_eq!(e.status, 400, "byte {b:#04x}");
                assert!(
                    !value_ok,
                    "byte {b:#04x}: refused, yet HeaderValue admits it"
                );
            }
        }
    }
}
