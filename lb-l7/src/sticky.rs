//! Stickiness cookies (ALB's): which target (`AWSALB`, `AWSALBAPP-0`) or target group
//! (`AWSALBTG`) a client keeps. Pure: tokens, reading a `Cookie` header, writing `Set-Cookie`.
//!
//! A token is an opaque 16-hex-digit hash of what it names (the group and the target's
//! address:port, or the group's name). It is the same in every worker and after a restart, so a
//! client keeps its target across both, and it does not show the target's address. It is not a
//! secret: a client that forges one can only choose among the group's own targets.

use crate::select::hash_bytes;
use std::time::{Duration, SystemTime};

/// `lb_cookie` stickiness: the target, and the same for cross-site requests.
pub const LB_COOKIE: &str = "AWSALB";
pub const LB_COOKIE_CORS: &str = "AWSALBCORS";
/// `app_cookie` stickiness: set beside the application's cookie. ALB splits a long value over
/// `-0`…`-3`; weir's token always fits in `-0`.
pub const APP_COOKIE: &str = "AWSALBAPP-0";
/// Group stickiness of a forward action with several target groups.
pub const GROUP_COOKIE: &str = "AWSALBTG";
pub const GROUP_COOKIE_CORS: &str = "AWSALBTGCORS";

/// The token naming `id` within `scope` (e.g. a group name and a target address).
pub fn token(scope: &str, id: &str) -> String {
    let mut key = Vec::with_capacity(scope.len() + id.len() + 13);
    key.extend_from_slice(b"weir-sticky\0");
    key.extend_from_slice(scope.as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    format!("{:016x}", hash_bytes(&key))
}

/// The value of cookie `name` in the request's `Cookie` header lines (`a=1; b=2`), if any.
pub fn cookie<'a>(lines: impl IntoIterator<Item = &'a [u8]>, name: &str) -> Option<&'a [u8]> {
    lines
        .into_iter()
        .flat_map(|l| l.split(|&b| b == b';'))
        .map(|kv| kv.trim_ascii())
        .find_map(|kv| {
            let rest = kv.strip_prefix(name.as_bytes())?;
            rest.strip_prefix(b"=")
        })
        .map(|v| v.trim_ascii())
}

/// Does a response's `Set-Cookie` value set cookie `name`?
pub fn sets_cookie(set_cookie: &[u8], name: &str) -> bool {
    set_cookie
        .trim_ascii_start()
        .strip_prefix(name.as_bytes())
        .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"="))
}

/// A `Set-Cookie` value: `NAME=TOKEN; Expires=<HTTP-date>; Path=/`, with `SameSite=None;
/// Secure` for the CORS twin.
pub fn set_cookie(name: &str, token: &str, now: SystemTime, lasts: Duration, cors: bool) -> String {
    let mut v = format!(
        "{name}={token}; Expires={}; Path=/",
        httpdate::fmt_http_date(now + lasts)
    );
    if cors {
        v.push_str("; SameSite=None; Secure");
    }
    v
}

/// RFC 6265 cookie-name: a token (visible ASCII except separators).
pub fn is_cookie_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_and_distinct() {
        let a = token("web", "10.0.0.1:80");
        assert_eq!(a, token("web", "10.0.0.1:80"));
        assert_eq!(a.len(), 16);
        assert_ne!(a, token("web", "10.0.0.2:80"));
        assert_ne!(a, token("api", "10.0.0.1:80"));
        assert!(!a.contains("10.0.0.1"));
    }

    #[test]
    fn reads_cookies() {
        let lines: [&[u8]; 2] = [b"a=1; AWSALBCORS=x", b" AWSALB=tok ;b=2"];
        assert_eq!(cookie(lines, "AWSALB"), Some(&b"tok"[..]));
        assert_eq!(cookie(lines, "AWSALBCORS"), Some(&b"x"[..]));
        assert_eq!(cookie(lines, "b"), Some(&b"2"[..]));
        assert_eq!(cookie(lines, "AWSAL"), None);
        assert_eq!(cookie([&b""[..]], "a"), None);
    }

    #[test]
    fn set_cookie_values() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let v = set_cookie("AWSALB", "abc", t, Duration::from_secs(86_400), false);
        assert_eq!(
            v,
            "AWSALB=abc; Expires=Wed, 15 Nov 2023 22:13:20 GMT; Path=/"
        );
        let c = set_cookie("AWSALBCORS", "abc", t, Duration::from_secs(1), true);
        assert!(c.ends_with("; Path=/; SameSite=None; Secure"), "{c}");
        assert!(sets_cookie(b"SESSIONID=xyz; Path=/", "SESSIONID"));
        assert!(!sets_cookie(b"SESSIONID2=xyz", "SESSIONID"));
        assert!(!sets_cookie(b"OTHER=1", "SESSIONID"));
    }

    #[test]
    fn cookie_names() {
        assert!(is_cookie_name("SESSIONID"));
        assert!(is_cookie_name("JSESSIONID-1_x"));
        assert!(!is_cookie_name(""));
        assert!(!is_cookie_name("a b"));
        assert!(!is_cookie_name("a=b"));
        assert!(!is_cookie_name("a;b"));
    }
}
