//! The path and host listener rules match on: the request's, normalized as the target will read
//! them, so a rule that denies `/admin*` (a `fixed-response 403`, `examples/l7-alb.toml`) is
//! not passed by `/x/../admin`, `/./admin`, `//admin` or `/%61dmin`, nor a `host-header` rule
//! by `secret.example.` — all of which nginx, behind weir, served as `/admin` and as
//! `secret.example`. The request goes to the target as the client sent it (ALB does not
//! rewrite the path); only the rules' view is normalized. Pure.
//!
//! The path: every percent-encoded byte decoded, once (`%61` → `a`, `%2E` → `.`, and `%2F` →
//! `/`), then dot segments removed (RFC 3986 §5.2.4), then repeated slashes merged (nginx's
//! `merge_slashes`, on by default) — nginx's own order: it decodes before it resolves, so
//! `/x/..%2Fadmin` and `/%2Fadmin` are `/admin` to it. RFC 3986 §6.2.2 would keep a reserved
//! `%2F` encoded, and the rules did, which let both past a `/admin*` deny to nginx; a target
//! that keeps `%2F` opaque (Apache's default refuses it, 404) is only asked for paths a rule
//! already let through as something else. A path with none of `%`, `/.` or `//` is returned as
//! it is, without a copy: the common case costs a scan.

use std::borrow::Cow;

/// The path the rules see. Inline: the plain case is a test and a borrow (a call cost a
/// third of it).
#[inline]
pub fn rule_path(path: &str) -> Cow<'_, str> {
    if is_plain(path.as_bytes()) {
        return Cow::Borrowed(path);
    }
    Cow::Owned(normalized(path))
}

fn normalized(path: &str) -> String {
    merge_slashes(&remove_dot_segments(&percent_decoded(path)))
}

/// No `%`, and no `/` before a `.` or a `/`: nothing to normalize. Every request's path goes
/// through it, so eight bytes at a time (a loop over the bytes cost ~13 instructions a byte
/// under callgrind, 210 for `/api/v1/items/42`): windows of 8 bytes 7 apart, so that every
/// pair of neighbours is inside one, the rest padded with zeros (none of the three).
/// Hand-written: the memchr crate finds bytes, not a byte followed by one of two others.
#[inline]
fn is_plain(b: &[u8]) -> bool {
    let mut at = 0;
    while let Some(w) = b.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
        if !window_plain(u64::from_le_bytes(w)) {
            return false;
        }
        at += 7;
    }
    // The rest, fewer than 8 bytes (its first, when there was a window, the last one's), built
    // byte by byte: a copy into a buffer was a call to memcpy.
    let tail = b[at..]
        .iter()
        .enumerate()
        .fold(0u64, |w, (k, &c)| w | u64::from(c) << (8 * k));
    window_plain(tail)
}

/// The bytes of `x` equal to `c`: 0x80 in each such byte, 0 elsewhere (exact, no false
/// positives).
fn bytes_eq(x: u64, c: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let v = x ^ (u64::from(c) * 0x0101_0101_0101_0101);
    !(((v & LOW7) + LOW7) | v | LOW7)
}

/// No `%`, and no `/` followed (in the next byte) by `.` or `/`, in the 8 bytes of `x`
/// (little-endian: byte i is bits 8i..8i+8, so the next byte's mask is shifted down by 8).
fn window_plain(x: u64) -> bool {
    let slash = bytes_eq(x, b'/');
    let next_dot_or_slash = (bytes_eq(x, b'.') | slash) >> 8;
    bytes_eq(x, b'%') == 0 && slash & next_dot_or_slash == 0
}

/// The host the rules see: without the trailing dot of a fully qualified name.
pub fn rule_host(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Every `%XX` decoded, once (`%252F` is `%2F`, as to nginx); a bad escape kept as it is.
fn percent_decoded(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    // Decoded bytes need not be UTF-8 (`%FF`): those are replaced, which no path pattern
    // (ASCII only) can match anyway.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// RFC 3986 §5.2.4, on an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut segments = path.split('/').skip(1).peekable();
    let mut trailing_slash = false;
    while let Some(s) = segments.next() {
        let last = segments.peek().is_none();
        match s {
            "." => trailing_slash = last,
            ".." => {
                out.pop();
                trailing_slash = last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut r = String::with_capacity(path.len());
    for s in &out {
        r.push('/');
        r.push_str(s);
    }
    if trailing_slash || r.is_empty() {
        r.push('/');
    }
    r
}

fn merge_slashes(path: &str) -> String {
    let mut r = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && r.ends_with('/') {
            continue;
        }
        r.push(c);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_target_would_serve_is_what_the_rules_see() {
        for (raw, want) in [
            ("/admin", "/admin"),
            ("/x/../admin", "/admin"),
            ("/./admin", "/admin"),
            ("//admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/%2e/admin", "/admin"),
            ("/%2E%2E/admin", "/admin"),
            ("/a/b/../../admin/", "/admin/"),
            ("/../../admin", "/admin"),
            ("/admin/.", "/admin/"),
            ("/admin/..", "/"),
            ("/a//b///c", "/a/b/c"),
            ("/", "/"),
            ("/.", "/"),
            ("/..", "/"),
            // An encoded slash is a slash to nginx (it decodes, then resolves): so it is to
            // the rules. Decoded once; a bad escape is kept as it is.
            ("/a%2Fb", "/a/b"),
            ("/a%2fb/../c", "/a/c"),
            ("/%2Fadmin", "/admin"),
            ("/x/..%2Fadmin", "/admin"),
            ("/x%2F..%2Fadmin", "/admin"),
            ("/x/%2e%2e%2fadmin", "/admin"),
            ("/%252Fadmin", "/%2Fadmin"),
            ("/a%3Fb", "/a?b"),
            ("/%zz/x", "/%zz/x"),
            ("/%", "/%"),
            ("/%6", "/%6"),
            // Dots inside a segment are no dot segments.
            ("/a.b/..c/.d", "/a.b/..c/.d"),
            ("/caf%C3%A9", "/café"),
            ("/%FF", "/\u{FFFD}"),
        ] {
            assert_eq!(rule_path(raw), want, "{raw}");
        }
        assert!(matches!(rule_path("/api/v1/items?x"), Cow::Borrowed(_)));
        assert!(matches!(rule_path("/a.b/c"), Cow::Borrowed(_)));
    }

    /// The eight-bytes-at-a-time test agrees with a byte-by-byte one on every path up to 20
    /// bytes over the alphabet that matters, and on random longer ones.
    #[test]
    fn the_fast_plain_test_agrees_with_the_obvious_one() {
        fn obvious(b: &[u8]) -> bool {
            !b.contains(&b'%')
                && !b
                    .windows(2)
                    .any(|w| w[0] == b'/' && matches!(w[1], b'.' | b'/'))
        }
        let alphabet = [b'/', b'.', b'%', b'a', 0x2e ^ 0x80, 0xff];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..40 {
            for _ in 0..2_000 {
                let b: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        alphabet[(seed % alphabet.len() as u64) as usize]
                    })
                    .collect();
                assert_eq!(is_plain(&b), obvious(&b), "{b:?}");
            }
        }
        // A pair across every window boundary.
        for i in 0..30 {
            let mut b = vec![b'a'; 32];
            b[i] = b'/';
            b[i + 1] = b'.';
            assert!(!is_plain(&b), "pair at {i}");
        }
    }

    #[test]
    fn a_fully_qualified_host_matches_as_its_name() {
        assert_eq!(rule_host("secret.example."), "secret.example");
        assert_eq!(rule_host("secret.example"), "secret.example");
        assert_eq!(rule_host("."), "");
    }
}
