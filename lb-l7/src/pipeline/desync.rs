//! ALB's desync mitigation for HTTP/1.1 requests, pure: every request head is classified by
//! AWS's own classifier (the `http_desync_guardian` crate ALB uses) into Compliant, Acceptable,
//! Ambiguous or Severe, and `routing.http.desync_mitigation_mode` says what happens to it:
//!
//! | tier | monitor | defensive | strictest |
//! |---|---|---|---|
//! | Compliant, Acceptable | forwarded | forwarded | forwarded |
//! | Ambiguous | forwarded, then both connections closed | forwarded, then both closed | 400 + close |
//! | Severe | forwarded, then both connections closed | 400 + close | 400 + close |
//!
//! weir gives the classifier the head `httparse` parsed (`analyze_parsed_request`; not at all
//! for a head it provably calls Compliant: `plainly_compliant`) plus a count for the one thing
//! `httparse` forgives that the crate's own raw parse reports (a bare `\n` line end,
//! Acceptable): the same verdict as `analyze_raw_request` on the raw bytes (a test
//! holds them equal on the crate's cases and on seeded mutations) for about half its cost.
//! Measured on this shared 2-core VM (a release build of the crate and httparse alone, best of
//! 5 × 2·10⁶ calls pinned to one core, load average ≈ 6 from other builds, so absolute numbers
//! are inflated): for wrk's 40-byte head the parsed analysis takes 0.26–0.36 µs (the raw one
//! 0.51 µs, `httparse` itself 0.45 µs); for a 565-byte browser head 1.4–1.8 µs (raw 2.9–3.3 µs,
//! `httparse` 0.8–1.2 µs). A non-compliant request costs more (the crate formats a message).
//!
//! A request whose framing weir cannot determine at all (differing `Content-Length`s, a
//! `Transfer-Encoding` not ending in `chunked`) is a 400 in every mode (`h1::server`; RFC 9112
//! §6.3 leaves a recipient no other choice): the classifier calls those Severe, so only monitor
//! mode differs from ALB there.

use crate::config::DesyncMitigationMode;
use http_desync_guardian::http_token_utils::TokenSimilarity::Distant;
use http_desync_guardian::http_token_utils::{CL, TE, determine_similarity};
use http_desync_guardian::request_analyzer::{HttpHeader, HttpRequestData};
use http_desync_guardian::{ClassificationReason, RequestSafetyTier};

/// ALB's request classification tiers, least to most dangerous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Compliant,
    Acceptable,
    Ambiguous,
    Severe,
}

impl Tier {
    /// The access log's `classification` (ALB logs `-` for a compliant request).
    pub fn log_name(self) -> Option<&'static str> {
        match self {
            Tier::Compliant => None,
            Tier::Acceptable => Some("Acceptable"),
            Tier::Ambiguous => Some("Ambiguous"),
            Tier::Severe => Some("Severe"),
        }
    }
}

/// A request's tier and the classifier's reason (ALB's `classification_reason` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    pub tier: Tier,
    pub reason: &'static str,
}

impl Classification {
    pub const COMPLIANT: Classification = Classification {
        tier: Tier::Compliant,
        reason: "Compliant",
    };

    /// Does not comply with RFC 7230 (counted as `DesyncMitigationMode_NonCompliant_Request_Count`).
    pub fn non_compliant(&self) -> bool {
        self.tier > Tier::Compliant
    }

    /// The access log's `classification_reason` (`-` for a compliant request).
    pub fn log_reason(&self) -> Option<&'static str> {
        self.non_compliant().then_some(self.reason)
    }
}

/// Classifies a request head from its raw bytes, request line to the empty line included (the
/// crate's own parse: the reference `classify_parsed` is held to).
pub fn classify(head: &[u8]) -> Classification {
    let r = HttpRequestData::analyze_raw_request(head);
    verdict(r.tier, r.reason)
}

/// Classifies a head `httparse` parsed completely from `raw` (its bytes): what `classify` says
/// of it, without parsing the head a second time. Empty lines before the request line are not
/// part of the request (RFC 9112 §2.2: a server ignores them; `httparse` skips them).
pub fn classify_parsed(req: &httparse::Request<'_, '_>, raw: &[u8]) -> Classification {
    let c = if plainly_compliant(req) {
        Classification::COMPLIANT
    } else {
        analyze(req)
    };
    // The raw parse reports a bare `\n` first (Acceptable), so it names the reason unless
    // something worse was found.
    if c.tier <= Tier::Acceptable && bare_lf_parsed(req, skip_empty_lines(raw)) {
        return Classification {
            tier: Tier::Acceptable,
            reason: "NonCrLfLineTermination",
        };
    }
    c
}

/// The classifier's verdict on a parsed head (`analyze_parsed_request`).
fn analyze(req: &httparse::Request<'_, '_>) -> Classification {
    let version: &[u8] = match req.version {
        Some(0) => b"HTTP/1.0",
        _ => b"HTTP/1.1",
    };
    // The fields go into the analyser's own list in place: `collect`ed, the list (64 slots
    // inline, ~3 KB) was built beside the struct and copied in, once per request.
    let mut data = HttpRequestData {
        method: req.method.unwrap_or("").as_bytes(),
        version,
        uri: req.path.unwrap_or("").as_bytes(),
        headers: Default::default(),
    };
    data.headers.extend(
        req.headers
            .iter()
            .map(|h| HttpHeader::new(h.name.as_bytes(), h.value)),
    );
    let r = data.analyze_parsed_request();
    verdict(r.tier, r.reason)
}

/// A head `analyze_parsed_request` provably calls Compliant, known without running it (~850
/// instructions for `h2load`'s two-field head, callgrind). The classifier looks at:
/// - each byte of the method (tchar), target (> SP, not DEL), field names (tchar) and values
///   (VCHAR, obs-text, SP, HTAB): `httparse` admits no other bytes in them, and a name is
///   not empty (`httparse_admits_only_what_the_classifier_calls_compliant`, every byte);
/// - the version: `analyze` writes `HTTP/1.0` or `HTTP/1.1`, both compliant;
/// - `Transfer-Encoding` and `Content-Length`, and names like them: a name shorter than
///   `content-length` is like neither (`determine_similarity`'s first test); a longer one is
///   asked of the classifier's own `determine_similarity`.
///
/// Anything else (a body's framing headers, a name near them) goes to the classifier itself;
/// `fast_path_equals_the_classifier` holds the two equal on seeded hostile heads. Skipping it
/// loses no side effect: it logs only what is not Compliant, and counts only once its metrics
/// are initialised, which weir never does.
fn plainly_compliant(req: &httparse::Request<'_, '_>) -> bool {
    req.headers.iter().all(|h| {
        let name = h.name.as_bytes();
        name.len() < CL.len()
            || (determine_similarity(CL, name) == Distant
                && determine_similarity(TE, name) == Distant)
    })
}

/// `raw` from its request line on.
pub fn skip_empty_lines(raw: &[u8]) -> &[u8] {
    let start = raw
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(raw.len());
    &raw[start..]
}

/// `bare_lf` of a head `httparse` parsed (`raw` from its request line on), by counting: such a
/// head has one `\n` per line (request line, fields, empty line: nowhere else, as no token or
/// value may hold one) and a `\r` only right before a `\n` (`httparse` refuses any other),
/// so a line lacks its CR exactly when there are fewer CRs than lines. One vectored count
/// instead of a search restarted at every line (234 → 177 instructions for `h2load`'s head,
/// callgrind).
fn bare_lf_parsed(req: &httparse::Request<'_, '_>, raw: &[u8]) -> bool {
    memchr::memchr_iter(b'\r', raw).count() < req.headers.len() + 2
}

/// Does a line end with `\n` alone?
#[cfg(test)]
fn bare_lf(raw: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', raw).any(|i| i == 0 || raw[i - 1] != b'\r')
}

fn verdict(tier: RequestSafetyTier, reason: ClassificationReason) -> Classification {
    Classification {
        tier: match tier {
            RequestSafetyTier::Compliant => Tier::Compliant,
            RequestSafetyTier::Acceptable => Tier::Acceptable,
            RequestSafetyTier::Ambiguous => Tier::Ambiguous,
            RequestSafetyTier::Severe => Tier::Severe,
        },
        reason: reason_name(reason),
    }
}

/// What weir does with a request of a tier, per mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Forward,
    /// Forward it, then close the client connection and the target connection.
    ForwardThenClose,
    /// 400 and close the client connection; nothing is forwarded.
    Block,
}

/// ALB's table (see the module comment).
pub fn action(tier: Tier, mode: DesyncMitigationMode) -> Action {
    use DesyncMitigationMode::{Defensive, Monitor, Strictest};
    match (tier, mode) {
        (Tier::Compliant | Tier::Acceptable, _) => Action::Forward,
        (Tier::Ambiguous, Monitor | Defensive) | (Tier::Severe, Monitor) => {
            Action::ForwardThenClose
        }
        (Tier::Ambiguous, Strictest) | (Tier::Severe, Defensive | Strictest) => Action::Block,
    }
}

/// The crate's reason as ALB's log code (the crate's enum has no `&'static str` form).
fn reason_name(r: ClassificationReason) -> &'static str {
    use ClassificationReason as R;
    match r {
        R::Compliant => "Compliant",
        R::EmptyHeader => "EmptyHeader",
        R::SuspiciousHeader => "SuspiciousHeader",
        R::NonCompliantHeader => "NonCompliantHeader",
        R::BadHeader => "BadHeader",
        R::AmbiguousUri => "AmbiguousUri",
        R::SpaceInUri => "SpaceInUri",
        R::BadUri => "BadUri",
        R::NonCompliantVersion => "NonCompliantVersion",
        R::BadVersion => "BadVersion",
        R::GetHeadZeroContentLength => "GetHeadZeroContentLength",
        R::UndefinedContentLengthSemantics => "UndefinedContentLengthSemantics",
        R::MultipleContentLength => "MultipleContentLength",
        R::DuplicateContentLength => "DuplicateContentLength",
        R::BadContentLength => "BadContentLength",
        R::UndefinedTransferEncodingSemantics => "UndefinedTransferEncodingSemantics",
        R::MultipleTransferEncodingChunked => "MultipleTransferEncodingChunked",
        R::BadTransferEncoding => "BadTransferEncoding",
        R::BothTeClPresent => "BothTeClPresent",
        R::BadMethod => "BadMethod",
        R::NonCrLfLineTermination => "NonCrLfLineTermination",
        R::MultilineHeader => "MultilineHeader",
        R::PartialHeaderLine => "PartialHeaderLine",
        R::MissingLastEmptyLine => "MissingLastEmptyLine",
        R::MissingHeaderColon => "MissingHeaderColon",
        R::MissingUri => "MissingUri",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DesyncMitigationMode::{Defensive, Monitor, Strictest};

    fn c(head: &str) -> (Tier, &'static str) {
        let c = classify(head.as_bytes());
        (c.tier, c.reason)
    }

    #[test]
    fn bare_lf_finds_a_line_ending_without_its_cr() {
        assert!(!bare_lf(b""));
        assert!(!bare_lf(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(bare_lf(b"\nGET"), "a line feed first");
        assert!(
            bare_lf(b"GET / HTTP/1.1\r\nHost: a\n\r\n"),
            "one in the middle"
        );
        assert!(bare_lf(b"GET / HTTP/1.1\r\nHost: a\r\n\n"), "the last one");
        assert!(
            bare_lf(b"GET / HTTP/1.1\r\nX: \r\r\n\n"),
            "after a CR that ended another"
        );
        // Past memchr's vector width, on either side of a 32-byte boundary.
        let mut long = b"GET / HTTP/1.1\r\n".to_vec();
        long.extend_from_slice(&[b'a'; 40]);
        assert!(!bare_lf(&long));
        long.extend_from_slice(b"\r\nX: b\n");
        assert!(bare_lf(&long));
    }

    /// A few of the crate's own vectors (its tests/*.yaml), as raw heads.
    #[test]
    fn tiers_of_known_requests() {
        let cases: &[(&str, Tier, &str)] = &[
            (
                "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                Tier::Compliant,
                "Compliant",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
                Tier::Compliant,
                "Compliant",
            ),
            (
                "GET / HTTP/1.1\nHost: a\n\n",
                Tier::Acceptable,
                "NonCrLfLineTermination",
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                Tier::Acceptable,
                "GetHeadZeroContentLength",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                Tier::Ambiguous,
                "BothTeClPresent",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                Tier::Ambiguous,
                "DuplicateContentLength",
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
                Tier::Ambiguous,
                "UndefinedContentLengthSemantics",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n",
                Tier::Ambiguous,
                "SuspiciousHeader",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4096, 4096\r\n\r\n",
                Tier::Severe,
                "BadContentLength",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                Tier::Severe,
                "MultipleContentLength",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                Tier::Severe,
                "MultipleTransferEncodingChunked",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
                Tier::Severe,
                "BadTransferEncoding",
            ),
        ];
        for (head, tier, reason) in cases {
            assert_eq!(c(head), (*tier, *reason), "{head:?}");
            assert_eq!(
                parsed(head.as_bytes()),
                Some(classify(head.as_bytes())),
                "{head:?}"
            );
        }
    }

    /// `classify_parsed` on what httparse accepted (as `pipeline::codec` calls it).
    fn parsed(raw: &[u8]) -> Option<Classification> {
        let mut slots = [httparse::EMPTY_HEADER; 100];
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(raw) {
            Ok(httparse::Status::Complete(n)) => Some(classify_parsed(&req, &raw[..n])),
            _ => None,
        }
    }

    /// The parsed path gives the raw path's verdict on every head httparse accepts: seeded
    /// mutations of heads near each tier's edge.
    #[test]
    fn parsed_equals_raw() {
        let bases: [&[u8]; 4] = [
            b"POST /a?b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            b"GET / HTTP/1.0\r\nContent-Length: 0\r\nX: y\r\n\r\n",
            b"PUT /x HTTP/1.1\nHost: a\nContent-Length: 1, 1\n\n",
            b"HEAD /%7e HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        ];
        let mut rng = fastrand::Rng::with_seed(11);
        let mut compared = 0;
        for i in 0..20_000 {
            let mut v = bases[i % bases.len()].to_vec();
            for _ in 0..rng.usize(0..4) {
                let at = rng.usize(..v.len());
                let b = *rng.choice(b"\r\n :,\t\x7f\x80_-0a".iter()).unwrap_or(&b' ');
                match rng.u8(..3) {
                    0 => v[at] = b,
                    1 => v.insert(at, b),
                    _ => {
                        v.remove(at);
                    }
                }
            }
            if let Some(p) = parsed(&v) {
                let mut slots = [httparse::EMPTY_HEADER; 100];
                let n = match httparse::Request::new(&mut slots).parse(&v) {
                    Ok(httparse::Status::Complete(n)) => n,
                    _ => unreachable!(),
                };
                let raw = classify(skip_empty_lines(&v[..n]));
                assert_eq!(p, raw, "{:?}", String::from_utf8_lossy(&v));
                compared += 1;
            }
        }
        assert!(compared > 2_000, "only {compared} heads parsed");
    }

    /// `classify_parsed` before its fast path and its CR count (the oracle).
    fn classify_parsed_old(req: &httparse::Request<'_, '_>, raw: &[u8]) -> Classification {
        let c = analyze(req);
        if c.tier <= Tier::Acceptable && bare_lf(skip_empty_lines(raw)) {
            return Classification {
                tier: Tier::Acceptable,
                reason: "NonCrLfLineTermination",
            };
        }
        c
    }

    /// Both classifications of `raw` if httparse takes it whole (`None` otherwise), and the
    /// parsed request's parts for the caller's look.
    fn both(
        raw: &[u8],
        look: impl FnOnce(&httparse::Request<'_, '_>),
    ) -> Option<(Classification, Classification)> {
        let mut slots = [httparse::EMPTY_HEADER; 100];
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(raw) {
            Ok(httparse::Status::Complete(n)) => {
                look(&req);
                Some((
                    classify_parsed(&req, &raw[..n]),
                    classify_parsed_old(&req, &raw[..n]),
                ))
            }
            _ => None,
        }
    }

    /// The fast path's premise: whatever byte httparse admits in a method, a target, a field
    /// name or a field value is one the classifier calls compliant there — each of the 256,
    /// at offsets on both sides of httparse's 8- and 32-byte blocks (its vectored scans) —
    /// and the two paths agree on each such head.
    #[test]
    fn httparse_admits_only_what_the_classifier_calls_compliant() {
        use http_desync_guardian::http_token_utils::{
            is_rfc_tchar, is_valid_header_value_char, is_valid_uri_char,
        };
        let mut admitted = [0usize; 4];
        for b in 0..=255u8 {
            for at in [1usize, 2, 7, 8, 15, 16, 30, 31, 32, 33, 40, 47] {
                let field = |fill: u8| {
                    let mut f = vec![fill; 48];
                    f[at] = b;
                    f
                };
                let heads: [(usize, Vec<u8>); 4] = [
                    (
                        0,
                        [
                            &field(b'G')[..(at + 2).min(48)],
                            b" / HTTP/1.1\r\nHost: a\r\n\r\n",
                        ]
                        .concat(),
                    ),
                    (
                        1,
                        [b"GET /", &field(b'a')[..], b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat(),
                    ),
                    (
                        2,
                        [
                            b"GET / HTTP/1.1\r\nHost: a\r\n",
                            &field(b'n')[..],
                            b": v\r\n\r\n",
                        ]
                        .concat(),
                    ),
                    (
                        3,
                        [
                            b"GET / HTTP/1.1\r\nHost: a\r\nX: ",
                            &field(b'v')[..],
                            b"\r\n\r\n",
                        ]
                        .concat(),
                    ),
                ];
                for (kind, raw) in heads {
                    let mut fine = true;
                    let r = both(&raw, |req| {
                        let bytes: &[u8] = match kind {
                            0 => req.method.unwrap().as_bytes(),
                            1 => req.path.unwrap().as_bytes(),
                            2 => req.headers[1].name.as_bytes(),
                            _ => req.headers[1].value,
                        };
                        fine = match kind {
                            0 | 2 => !bytes.is_empty() && bytes.iter().all(|&c| is_rfc_tchar(c)),
                            1 => bytes.iter().all(|&c| is_valid_uri_char(c)),
                            _ => bytes.iter().all(|&c| is_valid_header_value_char(c)),
                        };
                    });
                    if let Some((new, old)) = r {
                        admitted[kind] += 1;
                        assert!(fine, "kind {kind}, byte {b:#04x} at {at}");
                        assert_eq!(new, old, "kind {kind}, byte {b:#04x} at {at}");
                    }
                }
            }
        }
        // Each kind admitted its tokens' bytes at least (not a test that cannot fail).
        assert!(admitted.iter().all(|&n| n > 12 * 70), "{admitted:?}");
    }

    /// The fast path and the CR count give the classifier's verdict (and the raw parse's) on
    /// seeded heads of random methods, versions, line ends, and fields near or at
    /// `Transfer-Encoding` and `Content-Length`, and on mutations of them.
    #[test]
    fn fast_path_equals_the_classifier() {
        let names: &[&[u8]] = &[
            b"Host",
            b"User-Agent",
            b"Accept-Encoding",
            b"X-Forwarded-For",
            b"Content-Length",
            b"content-length",
            b"Content_Length",
            b"Content-Length-",
            b"-Content-Length",
            b"ContentLength",
            b"Content--Length",
            b"XContent-Length",
            b"Content-Lengthx",
            b"C-o-n-t-e-n-t-L",
            b"Transfer-Encoding",
            b"transfer_encoding",
            b"Transfer-Encodinq",
            b"Transfer-Encoding2",
            b"TransferEncoding",
            b"te",
            b"Trailer-Encodings",
            b"upgrade-insecure-requests",
            b"tttttttttttttttttt",
            b"ccccccccccccccc",
            b"x",
        ];
        let values: &[&[u8]] = &[
            b"a",
            b"0",
            b"5",
            b" 5 ",
            b"1, 1",
            b"chunked",
            b"gzip, chunked",
            b"chunked, chunked",
            b"xchunked",
            b"a\tb",
            b"\x80\xff",
            b"",
            b"127.0.0.1:18601",
        ];
        let methods: &[&[u8]] = &[b"GET", b"HEAD", b"POST", b"PUT", b"OPTIONS", b"G-T"];
        let mut rng = fastrand::Rng::with_seed(29);
        let (mut compared, mut fast) = (0, 0);
        for i in 0..60_000 {
            let eol = |rng: &mut fastrand::Rng| -> &[u8] {
                if rng.u8(..8) == 0 { b"\n" } else { b"\r\n" }
            };
            let mut v = Vec::new();
            for _ in 0..rng.usize(0..3).saturating_sub(1) {
                v.extend_from_slice(eol(&mut rng));
            }
            v.extend_from_slice(methods[rng.usize(..methods.len())]);
            v.extend_from_slice(b" /a?b=c HTTP/1.");
            v.push(if rng.bool() { b'1' } else { b'0' });
            v.extend_from_slice(eol(&mut rng));
            for _ in 0..rng.usize(0..6) {
                v.extend_from_slice(names[rng.usize(..names.len())]);
                v.extend_from_slice(b": ");
                v.extend_from_slice(values[rng.usize(..values.len())]);
                v.extend_from_slice(eol(&mut rng));
            }
            v.extend_from_slice(eol(&mut rng));
            if i % 2 == 1 {
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(..v.len());
                    let b = *rng
                        .choice(b"\r\n :,\t\x7f\x80_-0aTC".iter())
                        .unwrap_or(&b' ');
                    match rng.u8(..3) {
                        0 => v[at] = b,
                        1 => v.insert(at, b),
                        _ => {
                            v.remove(at);
                        }
                    }
                }
            }
            let mut plain = false;
            if let Some((new, old)) = both(&v, |req| plain = plainly_compliant(req)) {
                assert_eq!(new, old, "{:?}", String::from_utf8_lossy(&v));
                let mut slots = [httparse::EMPTY_HEADER; 100];
                let n = match httparse::Request::new(&mut slots).parse(&v) {
                    Ok(httparse::Status::Complete(n)) => n,
                    _ => unreachable!(),
                };
                assert_eq!(
                    new,
                    classify(skip_empty_lines(&v[..n])),
                    "{:?}",
                    String::from_utf8_lossy(&v)
                );
                compared += 1;
                fast += usize::from(plain);
            }
        }
        assert!(
            compared > 30_000 && fast > 5_000 && compared - fast > 5_000,
            "{compared} {fast}"
        );
    }

    #[test]
    fn albs_table() {
        let all = [Monitor, Defensive, Strictest];
        for m in all {
            assert_eq!(action(Tier::Compliant, m), Action::Forward);
            assert_eq!(action(Tier::Acceptable, m), Action::Forward);
        }
        assert_eq!(action(Tier::Ambiguous, Monitor), Action::ForwardThenClose);
        assert_eq!(action(Tier::Ambiguous, Defensive), Action::ForwardThenClose);
        assert_eq!(action(Tier::Ambiguous, Strictest), Action::Block);
        assert_eq!(action(Tier::Severe, Monitor), Action::ForwardThenClose);
        assert_eq!(action(Tier::Severe, Defensive), Action::Block);
        assert_eq!(action(Tier::Severe, Strictest), Action::Block);
    }

    #[test]
    fn log_fields() {
        let ok = classify(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((ok.tier.log_name(), ok.log_reason()), (None, None));
        assert!(!ok.non_compliant());
        let bad = classify(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n");
        assert_eq!(
            (bad.tier.log_name(), bad.log_reason()),
            (Some("Severe"), Some("BadContentLength"))
        );
    }

    /// Any bytes: no panic (seeded mutations of a head).
    #[test]
    fn arbitrary_bytes_never_panic() {
        let base = b"POST /a?b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let mut v = base.to_vec();
            for _ in 0..rng.usize(1..6) {
                let i = rng.usize(..v.len());
                match rng.u8(..3) {
                    0 => v[i] = rng.u8(..),
                    1 => {
                        v.remove(i);
                    }
                    _ => v.insert(i, *rng.choice(b"\r\n :,\t\0".iter()).unwrap_or(&b' ')),
                }
                if v.is_empty() {
                    v.push(b'G');
                }
            }
            let _ = classify(&v);
        }
        let _ = classify(b"");
    }
}
