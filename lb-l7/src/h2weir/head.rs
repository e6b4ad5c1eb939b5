//! A response head from the pipeline made an HTTP/2 one, as hyper's server makes it (so both
//! engines answer alike): connection-specific fields removed (RFC 9113 §8.2.2: `connection`
//! and the fields it names, `keep-alive`, `proxy-connection`, `transfer-encoding`, `upgrade`,
//! `te`), `date` added when missing, `content-length` added from an exact body size when
//! missing. Pure apart from the clock of `date`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

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

thread_local! {
    /// The `date` value of the current second (a worker is one thread).
    static DATE: RefCell<(u64, HeaderValue)> = const { RefCell::new((0, HeaderValue::from_static(""))) };
}

/// The current time as an HTTP date, formatted once per second.
fn date_now() -> HeaderValue {
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

#[cfg(test)]
mod tests {
    use super::*;

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
