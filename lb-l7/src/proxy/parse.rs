//! Phase `parse`: checks on a parsed request head, before any routing, for both engines. Pure.
//!
//! What cannot be parsed is answered before this: by the HTTP/1.1 engine (`h1::codec`: a bad
//! request line or header → 400, a request line over 16 KiB → 414, more than 100 headers or a
//! head over 80 KiB → 431, `Transfer-Encoding` whose last coding is not `chunked` or differing
//! `Content-Length`s → 400) or by hyper's HTTP/2 server.

use crate::config::DesyncMitigationMode;
use crate::headers::{MAX_XFF_ADDRESSES, xff_count};
use http::{HeaderMap, Method, Version, header};

/// ALB: request line ≤ 16 KiB, one header ≤ 16 KiB, all headers ≤ 64 KiB.
pub const MAX_REQUEST_LINE: usize = 16 * 1024;
pub const MAX_HEADER: usize = 16 * 1024;
pub const MAX_HEADERS_TOTAL: usize = 64 * 1024;

/// A request weir answers itself instead of routing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    pub status: u16,
    /// ALB's `error_reason`-like tag for the access log.
    pub reason: &'static str,
    /// Close the client connection after the response.
    pub close: bool,
    /// Counts as `DesyncMitigationMode_NonCompliant_Request_Count`.
    pub desync: bool,
}

const fn reject(status: u16, reason: &'static str) -> Reject {
    Reject {
        status,
        reason,
        close: true,
        desync: false,
    }
}

/// Checks a request head. `Ok(desync_only)` means forward; `desync_only` = count it as
/// non-compliant (monitor mode) but go on.
/// `saw_content_length`: the raw head had a `Content-Length` line (HTTP/1.1; kept by the
/// engine because the framing decision may drop it when `Transfer-Encoding` is present too).
pub fn check(
    method: &Method,
    uri_len: usize,
    version: Version,
    headers: &HeaderMap,
    saw_content_length: bool,
    mode: DesyncMitigationMode,
) -> Result<bool, Reject> {
    if method == Method::CONNECT {
        // weir is not a forward proxy: no tunnels to arbitrary hosts.
        return Err(Reject {
            close: false,
            ..reject(405, "MethodNotAllowed")
        });
    }
    if method.as_str().len() + uri_len + 10 > MAX_REQUEST_LINE {
        return Err(reject(414, "RequestLineTooLong"));
    }
    let mut total = 0;
    for (n, v) in headers {
        let len = n.as_str().len() + v.len() + 4;
        if len > MAX_HEADER {
            return Err(reject(431, "HeaderTooLarge"));
        }
        total += len;
    }
    if total > MAX_HEADERS_TOTAL {
        return Err(reject(431, "HeadersTooLarge"));
    }
    if version == Version::HTTP_11 && !headers.contains_key(header::HOST) {
        return Err(reject(400, "MissingHost"));
    }
    if headers.get_all(header::HOST).iter().count() > 1 {
        return Err(Reject {
            desync: true,
            ..reject(400, "MultipleHost")
        });
    }
    let te: Vec<&[u8]> = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if !te.is_empty() {
        let codings: Vec<String> = te
            .iter()
            .flat_map(|v| v.split(|&b| b == b','))
            .map(|c| String::from_utf8_lossy(c).trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect();
        if codings.iter().any(|c| c != "chunked" && c != "identity") {
            return Err(reject(501, "UnsupportedTransferEncoding"));
        }
        if saw_content_length || headers.contains_key(header::CONTENT_LENGTH) {
            // Both framings: a request smuggling attempt or a broken client.
            if mode == DesyncMitigationMode::Monitor {
                return Ok(true);
            }
            return Err(Reject {
                desync: true,
                ..reject(400, "ContentLengthAndTransferEncoding")
            });
        }
    }
    let xff = xff_count(headers);
    if xff > MAX_XFF_ADDRESSES {
        return Err(Reject {
            status: 463,
            reason: "XForwardedForTooLong",
            close: false,
            desync: false,
        });
    }
    Ok(false)
}

/// A declared `Content-Length` over `max` (weir's `max_request_body_bytes`) → 413; the
/// connection is closed, the body is not read. A body without a declared length is counted as
/// it is relayed instead.
pub fn check_body_length(headers: &HeaderMap, max: Option<u64>) -> Result<(), Reject> {
    let Some(max) = max else {
        return Ok(());
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > max => Err(reject(413, "RequestBodyTooLarge")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    fn run(pairs: &[(&str, &str)]) -> Result<bool, Reject> {
        check(
            &Method::GET,
            10,
            Version::HTTP_11,
            &h(pairs),
            false,
            DesyncMitigationMode::Defensive,
        )
    }

    #[test]
    fn body_length_limit() {
        let cl = |n: &str| h(&[("host", "a"), ("content-length", n)]);
        assert_eq!(check_body_length(&cl("1000000"), None), Ok(()));
        assert_eq!(check_body_length(&cl("1024"), Some(1024)), Ok(()));
        let over = check_body_length(&cl("1025"), Some(1024)).unwrap_err();
        assert_eq!((over.status, over.close), (413, true));
        assert_eq!(check_body_length(&h(&[("host", "a")]), Some(1)), Ok(()));
    }

    #[test]
    fn table() {
        assert_eq!(run(&[("host", "a")]), Ok(false));
        assert_eq!(run(&[]).unwrap_err().status, 400);
        assert_eq!(
            run(&[("host", "a"), ("host", "b")]).unwrap_err().status,
            400
        );
        assert_eq!(
            run(&[
                ("host", "a"),
                ("transfer-encoding", "chunked"),
                ("content-length", "5")
            ])
            .unwrap_err()
            .status,
            400
        );
        assert_eq!(
            run(&[("host", "a"), ("transfer-encoding", "gzip, chunked")])
                .unwrap_err()
                .status,
            501
        );
        let te = h(&[("host", "a"), ("transfer-encoding", "chunked")]);
        assert_eq!(
            check(
                &Method::POST,
                1,
                Version::HTTP_11,
                &te,
                true,
                DesyncMitigationMode::Strictest
            )
            .unwrap_err()
            .reason,
            "ContentLengthAndTransferEncoding"
        );
        assert_eq!(
            run(&[("host", "a"), ("transfer-encoding", "chunked")]),
            Ok(false)
        );
        let big = "x".repeat(MAX_HEADER);
        assert_eq!(
            run(&[("host", "a"), ("x-big", &big)]).unwrap_err().status,
            431
        );
        let many: Vec<(String, String)> = (0..9)
            .map(|i| (format!("x-{i}"), "y".repeat(8000)))
            .collect();
        let many_ref: Vec<(&str, &str)> = many
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .chain([("host", "a")])
            .collect();
        assert_eq!(run(&many_ref).unwrap_err().status, 431);
        let connect = check(
            &Method::CONNECT,
            12,
            Version::HTTP_11,
            &h(&[("host", "a:443")]),
            false,
            DesyncMitigationMode::Defensive,
        );
        assert_eq!(connect.unwrap_err().status, 405);
        let xff = vec!["10.0.0.1"; 31].join(",");
        assert_eq!(
            run(&[("host", "a"), ("x-forwarded-for", &xff)])
                .unwrap_err()
                .status,
            463
        );
        let xff30 = vec!["10.0.0.1"; 30].join(",");
        assert_eq!(
            run(&[("host", "a"), ("x-forwarded-for", &xff30)]),
            Ok(false)
        );
        assert_eq!(
            check(
                &Method::GET,
                17_000,
                Version::HTTP_11,
                &h(&[("host", "a")]),
                false,
                DesyncMitigationMode::Defensive
            )
            .unwrap_err()
            .status,
            414
        );
        assert_eq!(
            check(
                &Method::POST,
                1,
                Version::HTTP_11,
                &h(&[
                    ("host", "a"),
                    ("transfer-encoding", "chunked"),
                    ("content-length", "5")
                ]),
                false,
                DesyncMitigationMode::Monitor
            ),
            Ok(true)
        );
    }
}
