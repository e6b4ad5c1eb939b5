//! Pure rules of the HTTP/2 path: a `host` field that contradicts `:authority` (RFC 9113
//! §8.3.1), `*` as the target of another method than OPTIONS (§8.3.1), a field value with
//! whitespace at either end (§8.2.1), several `content-length` fields made one for the target
//! (RFC 9110 §8.6), `cookie` fields joined for an HTTP/1.1 target (RFC 9113 §8.2.3), and when
//! a connection's cancelled streams make it an abuser (rapid reset, CVE-2023-44487).

use http::{HeaderMap, HeaderValue, Method, Uri, header};

/// A connection is sent GOAWAY once this many of its streams were cancelled before their
/// response ended…
pub const GLITCH_MIN: u64 = 100;

/// …and they are more than half of its streams (Envoy's premature-reset check; HAProxy's
/// glitch counter). A long-lived connection that cancels now and then (a browser leaving a
/// page) stays under the ratio; a rapid-reset client crosses it at `GLITCH_MIN`.
pub fn abusive(cancelled: u64, requests: u64) -> bool {
    cancelled >= GLITCH_MIN && cancelled.saturating_mul(2) > requests
}

/// Whether an HTTP/2 request's `host` field(s) name another authority than `:authority`
/// (compared as text, ASCII case-insensitively: port included). Without `:authority`, or
/// without `host`, there is nothing to contradict.
pub fn authority_conflict(uri: &Uri, headers: &HeaderMap) -> bool {
    let Some(auth) = uri.authority() else {
        return false;
    };
    headers
        .get_all(header::HOST)
        .iter()
        .any(|h| !h.as_bytes().eq_ignore_ascii_case(auth.as_str().as_bytes()))
}

/// Whether the request target is `*` for another method than OPTIONS (RFC 9113 §8.3.1; RFC
/// 9112 §3.2.4: asterisk-form is OPTIONS's only). weir's engine refuses it in `h2conn`;
/// hyper's h2 passes it, and an HTTP/1.1 target would get `GET * HTTP/1.1`.
pub fn asterisk_not_options(method: &Method, uri: &Uri) -> bool {
    uri.path() == "*" && *method != Method::OPTIONS
}

/// Whether a field value begins or ends with whitespace (SP or HTAB), which makes an HTTP/2
/// request malformed (RFC 9113 §8.2.1). hyper's h2 does not check it; an HTTP/1.1 target would
/// read the whitespace as optional and the request would mean something else there than here.
/// (weir's own engine refuses it in `h2conn`.)
pub fn value_edge_whitespace(headers: &HeaderMap) -> bool {
    let ws = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    headers.values().any(|v| {
        let b = v.as_bytes();
        ws(b.first()) || ws(b.last())
    })
}

/// The request's length if its `content-length` fields (and comma-separated values) are all
/// the same number; `Err` if one is not a number or two differ (both engines refuse such a
/// request before it gets here: weir's in `h2conn`, hyper's h2 in its stream state).
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let mut found = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            let p = part.trim_ascii();
            if p.is_empty() || p.len() > 18 || !p.iter().all(u8::is_ascii_digit) {
                return Err(());
            }
            let n = p.iter().fold(0u64, |a, &d| a * 10 + u64::from(d - b'0'));
            if found.is_some_and(|f| f != n) {
                return Err(());
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Several `content-length` fields of one number reach the HTTP/1.1 target as one, in decimal
/// (RFC 9110 §8.6: a recipient MUST reject them or replace them with one valid field), as the
/// HTTP/1.1 engine sends them; both engines passed them on as they came (`5` and `05`: a
/// strict target answers 400 to that). hyper's path calls this on each request
/// (`h2/server.rs`); weir's engine does the same in its core (`h2conn/request.rs`), where it
/// reads the fields anyway.
pub fn one_content_length(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    // Fewer than two (most requests: none): nothing to do, and no second lookup.
    if values.next().is_none() || values.next().is_none() {
        return;
    }
    if let Ok(Some(n)) = content_length(headers) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
}

/// Several `cookie` fields become one, joined with "; " (RFC 9113 §8.2.3), before the request
/// goes to an HTTP/1.1 target. One field (or none) is left as it is.
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (values.next(), values.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for v in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    // Each part was a valid field value, and "; " is too: the join is one.
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn whitespace_at_a_value_edge_is_malformed() {
        let mut h = http::HeaderMap::new();
        h.insert("x-a", http::HeaderValue::from_static("a b"));
        assert!(!super::value_edge_whitespace(&h));
        for bad in [" a", "a\t", "\ta", "a "] {
            let mut h = h.clone();
            h.append("x-b", http::HeaderValue::from_str(bad).unwrap());
            assert!(super::value_edge_whitespace(&h), "{bad:?}");
        }
    }

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn asterisk_form_is_for_options_only() {
        let star = Uri::from_static("*");
        assert!(!asterisk_not_options(&Method::OPTIONS, &star));
        assert!(asterisk_not_options(&Method::GET, &star));
        let path = Uri::from_static("/a");
        assert!(!asterisk_not_options(&Method::GET, &path));
    }

    #[test]
    fn host_against_authority() {
        let uri: Uri = "https://app.test:8443/x".parse().unwrap();
        assert!(!authority_conflict(&uri, &headers(&[])));
        assert!(!authority_conflict(
            &uri,
            &headers(&[("host", "APP.test:8443")])
        ));
        assert!(authority_conflict(&uri, &headers(&[("host", "app.test")])));
        assert!(authority_conflict(
            &uri,
            &headers(&[("host", "evil.test:8443")])
        ));
        assert!(authority_conflict(
            &uri,
            &headers(&[("host", "app.test:8443"), ("host", "evil.test")])
        ));
        // No :authority (a request built from a path only): nothing to compare.
        let path_only: Uri = "/x".parse().unwrap();
        assert!(!authority_conflict(&path_only, &headers(&[("host", "a")])));
    }

    #[test]
    fn cookies_joined_in_order() {
        let mut h = headers(&[("cookie", "a=1"), ("x", "y"), ("cookie", "b=2; c=3")]);
        join_cookies(&mut h);
        let all: Vec<_> = h.get_all("cookie").iter().collect();
        assert_eq!(all, ["a=1; b=2; c=3"]);
        assert_eq!(h.get("x").unwrap(), "y");
        let mut one = headers(&[("cookie", "a=1")]);
        join_cookies(&mut one);
        assert_eq!(one.get_all("cookie").iter().count(), 1);
        let mut none = headers(&[]);
        join_cookies(&mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn glitch_policy() {
        assert!(!abusive(0, 0));
        assert!(!abusive(GLITCH_MIN - 1, GLITCH_MIN - 1));
        assert!(abusive(GLITCH_MIN, GLITCH_MIN));
        assert!(abusive(GLITCH_MIN, 2 * GLITCH_MIN - 1));
        // A long-lived connection with a few cancels among many requests is no abuser.
        assert!(!abusive(GLITCH_MIN, 2 * GLITCH_MIN));
        assert!(!abusive(500, 9_000));
    }

    #[test]
    fn content_length_fields_are_one_number_and_reach_the_target_as_one() {
        assert_eq!(content_length(&headers(&[])), Ok(None));
        assert_eq!(
            content_length(&headers(&[("content-length", "5")])),
            Ok(Some(5))
        );
        let same = headers(&[("content-length", "5"), ("content-length", "05, 5")]);
        assert_eq!(content_length(&same), Ok(Some(5)));
        for bad in [
            &[("content-length", "5"), ("content-length", "10")][..],
            &[("content-length", "5, 6")],
            &[("content-length", "-5")],
            &[("content-length", "5x")],
            &[("content-length", "")],
            &[("content-length", "1234567890123456789")],
        ] {
            assert_eq!(content_length(&headers(bad)), Err(()), "{bad:?}");
        }
        let mut h = same.clone();
        h.insert("x-a", HeaderValue::from_static("a"));
        one_content_length(&mut h);
        let cls: Vec<_> = h.get_all(header::CONTENT_LENGTH).iter().collect();
        assert_eq!(cls, ["5"]);
        assert_eq!(h.get("x-a").unwrap(), "a");
        // One field is left as it came.
        let mut one = headers(&[("content-length", "007")]);
        one_content_length(&mut one);
        assert_eq!(one.get(header::CONTENT_LENGTH).unwrap(), "007");
    }
}
