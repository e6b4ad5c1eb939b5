//! A response head from the pipeline made an HTTP/2 one, as hyper's server makes it (so both
//! engines answer alike): connection-specific fields removed (RFC 9113 §8.2.2: `connection`
//! and the fields it names, `keep-alive`, `proxy-connection`, `transfer-encoding`, `upgrade`,
//! `te`), `date` added when missing, `content-length` added from an exact body size when
//! missing. Pure apart from the clock of `date`. A target's head (`send_target`) gets the same
//! from its raw bytes, encoded without a `HeaderMap`.

use crate::h2conn::{Connection, StreamError, StreamId};
use crate::http2::body::TargetHead;
use crate::pipeline::codec;
use crate::pipeline::respond::date_now;
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Fields that are connection-specific in HTTP/1.1 and malformed in HTTP/2.
const CONNECTION_SPECIFIC: [&str; 4] = [
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Makes `headers` fit for an HTTP/2 response with a body of `exact_len` bytes (if known) that
/// is `empty` or not.
pub fn prepare(headers: &mut HeaderMap, exact_len: Option<u64>, empty: bool) {
    strip_connection_specific(headers);
    if !headers.contains_key(header::DATE) {
        headers.insert(header::DATE, date_now());
    }
    if !empty
        && let Some(n) = exact_len
        && !headers.contains_key(header::CONTENT_LENGTH)
    {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
}

/// Sends a target's response head on stream `id`: what `prepare` makes of the `HeaderMap`
/// hyper's engine gets (`TargetHead::into_map`), the same fields, encoded from the head's
/// bytes. The head goes back for the next response.
pub fn send_target(
    conn: &mut Connection,
    id: StreamId,
    status: StatusCode,
    t: TargetHead,
    exact_len: Option<u64>,
    empty: bool,
    end_stream: bool,
) -> Result<(), StreamError> {
    let sent = conn.send_response_with(id, status, end_stream, |f| {
        let (mut date, mut length) = (false, false);
        // Connection-specific fields are not among them (`each_end_to_end`).
        t.head.each_end_to_end(|name, value| {
            date |= name == b"date";
            length |= name == b"content-length";
            f.field(name, value);
        });
        for c in t.cookies.iter().filter(|c| codec::value_ok(c.as_bytes())) {
            f.field(b"set-cookie", c.as_bytes());
        }
        if !date {
            f.field(b"date", date_now().as_bytes());
        }
        if !empty
            && let Some(n) = exact_len
            && !length
        {
            f.field(b"content-length", n.to_string().as_bytes());
        }
    });
    t.head.recycle();
    sent
}

fn strip_connection_specific(headers: &mut HeaderMap) {
    // One pass over the names first: the pipeline's heads rarely carry any of these, and a
    // removal by name costs a hash and a probe each (six per response).
    let any = headers.keys().any(|n| {
        *n == header::CONNECTION || *n == header::TE || CONNECTION_SPECIFIC.contains(&n.as_str())
    });
    if !any {
        return;
    }
    for name in CONNECTION_SPECIFIC {
        headers.remove(name);
    }
    headers.remove(header::TE);
    if let Some(listed) = headers.remove(header::CONNECTION) {
        let names: Vec<HeaderName> = listed
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in names {
            headers.remove(n);
        }
        // Further `connection` lines were removed with the first; their names are not
        // looked at (the pipeline's heads carry none: `end_to_end_headers`).
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2conn::Event;
    use crate::pipeline::codec::parse_response;
    use bytes::BytesMut;
    use std::time::Instant;

    type Fields = Vec<(String, String)>;

    /// A connection with stream 1 open (a GET, ended).
    fn open_stream() -> Connection {
        let now = Instant::now();
        let mut conn = Connection::new(crate::h2conn::Config::default(), now);
        let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        wire.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        // :method GET, :scheme https, :path / (static indices), :authority "a".
        let block = [0x82, 0x87, 0x84, 0x41, 1, b'a'];
        wire.extend_from_slice(&[0, 0, block.len() as u8, 1, 0x05, 0, 0, 0, 1]);
        wire.extend_from_slice(&block);
        conn.recv(&wire, now);
        while let Some(ev) = conn.poll_event() {
            if matches!(ev, Event::Request { id: 1, .. }) {
                return conn;
            }
        }
        panic!("no request");
    }

    /// The fields of stream 1's response head as the client decodes them (`:status` first).
    fn decoded(conn: &mut Connection) -> Fields {
        let mut out = Vec::new();
        while conn.poll_transmit(&mut out) {}
        let mut at = 0;
        while at + 9 <= out.len() {
            let len = usize::from(out[at]) << 16
                | usize::from(out[at + 1]) << 8
                | usize::from(out[at + 2]);
            let (kind, stream) = (out[at + 3], out[at + 8]);
            let payload = &out[at + 9..at + 9 + len];
            if kind == 1 && stream == 1 {
                let mut d = loona_hpack::Decoder::new();
                let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                return d
                    .decode(payload)
                    .unwrap()
                    .into_iter()
                    .map(|(n, v)| (text(&n), text(&v)))
                    .collect();
            }
            at += 9 + len;
        }
        panic!("no HEADERS on stream 1");
    }

    fn head(raw: &str, cookies: &[&str]) -> TargetHead {
        let mut buf = BytesMut::from(raw.as_bytes());
        TargetHead {
            head: parse_response(&mut buf).unwrap().unwrap(),
            cookies: cookies.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// The head as weir's engine sends it (from the raw bytes) and as the `HeaderMap` path
    /// sends it (hyper's engine's map, `prepare`d, encoded).
    fn both(raw: &str, cookies: &[&str], exact: Option<u64>, empty: bool) -> (Fields, Fields) {
        let mut conn = open_stream();
        send_target(
            &mut conn,
            1,
            StatusCode::OK,
            head(raw, cookies),
            exact,
            empty,
            true,
        )
        .unwrap();
        let direct = decoded(&mut conn);
        let mut conn = open_stream();
        let mut h = head(raw, cookies).into_map();
        prepare(&mut h, exact, empty);
        conn.send_response(1, StatusCode::OK, &h, true).unwrap();
        (direct, decoded(&mut conn))
    }

    fn sorted(mut f: Fields) -> Fields {
        f.sort();
        f
    }

    fn pairs(p: &[(&str, &str)]) -> Fields {
        p.iter().map(|&(n, v)| (n.into(), v.into())).collect()
    }

    #[test]
    fn a_target_head_is_filtered_as_the_map_path_filters_it() {
        let raw = "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 05 Dec 2026 15:00:00 GMT\r\n\
                   Connection: keep-alive, X-Private\r\nX-Private: p\r\nKeep-Alive: timeout=5\r\n\
                   Set-Cookie: a=1\r\nContent-Type: text/plain\r\nSet-Cookie: b=2\r\n\
                   Content-Length: 5, 5\r\nProxy-Connection: x\r\nTrailer: y\r\nTE: z\r\n\
                   Upgrade: u\r\nX-End: kept\r\n\r\n";
        let (direct, map) = both(raw, &["AWSALB=t; Path=/"], Some(5), false);
        // Hop-by-hop fields and those `Connection` lists dropped, names in lower case, the
        // target's fields in its order (`Set-Cookie` lines too), `Content-Length` restated
        // as one number, weir's cookies after the target's.
        let want = pairs(&[
            (":status", "200"),
            ("server", "nginx"),
            ("date", "Sat, 05 Dec 2026 15:00:00 GMT"),
            ("set-cookie", "a=1"),
            ("content-type", "text/plain"),
            ("set-cookie", "b=2"),
            ("x-end", "kept"),
            ("content-length", "5"),
            ("set-cookie", "AWSALB=t; Path=/"),
        ]);
        assert_eq!(direct, want);
        assert_eq!(sorted(direct), sorted(map));
    }

    #[test]
    fn date_and_length_come_as_the_map_path_adds_them() {
        // No date: weir's. A plain length: the target's line as it came.
        let raw = "HTTP/1.1 200 OK\r\ncontent-length: 0012\r\n\r\n";
        let (direct, map) = both(raw, &[], Some(12), false);
        assert_eq!(direct.len(), 3, "{direct:?}");
        assert_eq!(direct[1], ("content-length".into(), "0012".into()));
        assert_eq!(direct[2].0, "date");
        assert_eq!(sorted(direct), sorted(map));
        // Chunked: no length from the target's; an exact size would add one.
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\
                   Date: d\r\n\r\n";
        for (exact, empty) in [(None, false), (Some(7), false), (Some(0), true)] {
            let (direct, map) = both(raw, &[], exact, empty);
            assert_eq!(sorted(direct), sorted(map), "{exact:?} {empty}");
        }
    }

    #[test]
    fn connection_fields_go_date_and_length_come() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-end", HeaderValue::from_static("kept"));
        prepare(&mut h, Some(12), false);
        assert_eq!(h.get("x-end").unwrap(), "kept");
        for gone in [
            "connection",
            "x-hop",
            "keep-alive",
            "transfer-encoding",
            "te",
        ] {
            assert!(!h.contains_key(gone), "{gone} kept");
        }
        assert_eq!(h.get("content-length").unwrap(), "12");
        let date = h.get("date").unwrap().to_str().unwrap();
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    }

    #[test]
    fn given_date_and_length_are_kept_and_an_empty_body_gets_no_length() {
        let mut h = HeaderMap::new();
        h.insert(
            "date",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        h.insert("content-length", HeaderValue::from_static("5"));
        prepare(&mut h, Some(7), false);
        assert_eq!(h.get("date").unwrap(), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(h.get("content-length").unwrap(), "5");
        let mut e = HeaderMap::new();
        prepare(&mut e, Some(0), true);
        assert!(!e.contains_key("content-length"));
    }
}
