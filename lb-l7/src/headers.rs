//! Header rewriting between client and target. Pure.

use crate::config::XffMode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::borrow::Cow;
use std::net::IpAddr;

/// ALB's limit on X-Forwarded-For addresses; more gives 463.
pub const MAX_XFF_ADDRESSES: usize = 30;

/// Maps with this many names or fewer are searched by walking their names (`has`, `first`):
/// a request's few fields are found (or found missing) in fewer instructions than a hashed
/// look-up takes (the name's hash and a probe: ~100 per look-up of an absent name, by
/// callgrind, and most look-ups per request are of names it does not have). Larger maps are
/// hashed as before.
const WALK_UP_TO: usize = 8;

/// Does the map have a field `n`? (`HeaderMap::contains_key`, cheaper on a small map.)
#[inline(always)] // Inlined, the name is a constant and the call's cost is gone.
pub fn has(h: &HeaderMap, n: &HeaderName) -> bool {
    if h.keys_len() <= WALK_UP_TO {
        h.keys().any(|k| k == n)
    } else {
        h.contains_key(n)
    }
}

/// The first value of field `n` (`HeaderMap::get`, cheaper on a small map).
#[inline(always)]
pub fn first<'h>(h: &'h HeaderMap, n: &HeaderName) -> Option<&'h HeaderValue> {
    if h.keys_len() <= WALK_UP_TO {
        // A name's values come one after the other, its first value first.
        h.iter().find_map(|(k, v)| (k == n).then_some(v))
    } else {
        h.get(n)
    }
}

/// Hop-by-hop request headers (RFC 9110 §7.6.1), and `HTTP2-Settings`, which belongs to an
/// `h2c` upgrade weir never forwards (RFC 7540 §3.2.1: connection-specific). A static: a
/// `const` array of names was made anew, and dropped name by name, wherever it was used.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("http2-settings"),
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Is `n` one of `HOP_BY_HOP`? The standard names matched at once, the three others compared
/// (a standard name differs from them at the first step): `HOP_BY_HOP.contains` compared every
/// name of every request with all eight.
fn hop_by_hop(n: &HeaderName) -> bool {
    match *n {
        header::CONNECTION
        | header::TE
        | header::TRAILER
        | header::TRANSFER_ENCODING
        | header::UPGRADE => true,
        _ => HOP_BY_HOP[1..4].contains(n),
    }
}

/// Removes hop-by-hop headers and those named in `Connection`. With `upgrade`, keeps
/// `Connection: upgrade` and `Upgrade` (a WebSocket handshake is passed on).
pub fn remove_hop_by_hop(h: &mut HeaderMap, upgrade: bool) {
    if !h.keys().any(hop_by_hop) {
        // Nothing to remove (the common case); a name listed in `Connection` needs a
        // `Connection` header, which is itself hop-by-hop.
        return;
    }
    let listed: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let upgrade_value = h.get(header::UPGRADE).cloned();
    for n in listed.iter().chain(HOP_BY_HOP.iter()) {
        h.remove(n);
    }
    if upgrade && let Some(u) = upgrade_value {
        h.insert(header::UPGRADE, u);
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Keeps an `Upgrade` only when every protocol it names is in `allowed` (`[load_balancer]
/// upgrade_protocols`, compared without a `/version`, case-insensitively); otherwise `Upgrade`
/// and `HTTP2-Settings` are removed and the request goes on as an ordinary one (so `h2c` is
/// never offered to a target, which would then speak HTTP/2 past weir's rules). Returns
/// whether it removed them.
pub fn drop_unsupported_upgrade(h: &mut HeaderMap, allowed: &[String]) -> bool {
    if !has(h, &header::UPGRADE) {
        return false;
    }
    let mut values = h.get_all(header::UPGRADE).iter().peekable();
    if values.peek().is_none() {
        return false;
    }
    let mut protocols = values
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
        .peekable();
    let named_any = protocols.peek().is_some();
    let all_allowed = protocols.all(|p| {
        let name = p.split(|&b| b == b'/').next().unwrap_or(p);
        allowed
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(name))
    });
    if named_any && all_allowed {
        return false;
    }
    h.remove(header::UPGRADE);
    h.remove("http2-settings");
    true
}

/// Is this an HTTP/1.1 upgrade request (`Connection: upgrade` + `Upgrade`)?
pub fn wants_upgrade(h: &HeaderMap) -> bool {
    has(h, &header::UPGRADE)
        && h.get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// Number of addresses in all X-Forwarded-For headers.
pub fn xff_count(h: &HeaderMap) -> usize {
    h.get_all(&XFF_NAME)
        .iter()
        .map(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .filter(|s| s.iter().any(|b| !b.is_ascii_whitespace()))
                .count()
        })
        .sum()
}

/// This client as X-Forwarded-For lists it: `ip`, or `ip:port` / `[ip6]:port`. Computed once
/// per connection (formatting an address per request is measurable).
pub fn xff_client(client: IpAddr, client_port: Option<u16>) -> HeaderValue {
    let me = match (client, client_port) {
        (IpAddr::V6(ip), Some(p)) => format!("[{ip}]:{p}"),
        (ip, Some(p)) => format!("{ip}:{p}"),
        (ip, None) => ip.to_string(),
    };
    HeaderValue::from_str(&me).unwrap_or(HeaderValue::from_static("-"))
}

/// What X-Forwarded-Proto and -Port say for a listener.
#[derive(Debug, Clone)]
pub struct ListenerForwarded {
    pub proto: HeaderValue,
    pub port: HeaderValue,
}

impl ListenerForwarded {
    pub fn new(proto: &str, port: u16) -> ListenerForwarded {
        ListenerForwarded {
            proto: HeaderValue::from_static(if proto == "https" { "https" } else { "http" }),
            port: HeaderValue::from(port),
        }
    }
}

/// The headers weir adds to a request for its target: written after the client's own, which
/// the writer filters (`skips`), so the client's header map is never grown per request. What
/// lasts longer than the request (the listener's and the connection's values, the trace
/// header's name) is borrowed, not cloned: a clone and its drop each cost a reference count
/// (~130 instructions a request with the struct's moves, callgrind).
#[derive(Debug, Clone)]
pub struct Added<'a> {
    /// X-Forwarded-For: `None` keeps the client's lines (`preserve`); `Some(None)` drops them
    /// (`remove`); `Some(Some(v))` replaces them with `v` (`append`).
    pub xff: Option<Option<Cow<'a, HeaderValue>>>,
    pub proto: &'a HeaderValue,
    pub port: &'a HeaderValue,
    /// The trace header's name and new value.
    pub trace: (&'a HeaderName, TraceValue),
    /// A rewritten `Host`, replacing the client's.
    pub host: Option<HeaderValue>,
}

impl Added<'_> {
    /// Is the client's header `n` replaced by one of these?
    pub fn skips(&self, n: &HeaderName) -> bool {
        // Names against names (a tag or a length first), not against strings: `n == "x-…"`
        // spells out `n` and compares it case-insensitively, for every field of every request.
        if *n == header::HOST {
            return self.host.is_some();
        }
        (self.xff.is_some() && *n == XFF_NAME)
            || *n == XFP_NAME
            || *n == XFPORT_NAME
            || n == self.trace.0
    }

    /// `(name, value)` of each added header, in order.
    pub fn lines(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let xff = match &self.xff {
            Some(Some(v)) => Some((X_FORWARDED_FOR, v.as_bytes())),
            _ => None,
        };
        xff.into_iter()
            .chain([
                (X_FORWARDED_PROTO, self.proto.as_bytes()),
                (X_FORWARDED_PORT, self.port.as_bytes()),
                (self.trace.0.as_str(), self.trace.1.as_bytes()),
            ])
            .chain(self.host.as_ref().map(|v| ("host", v.as_bytes())))
    }

    /// Applies them to a header map (for a test, or a path that needs the map itself).
    pub fn apply(&self, h: &mut HeaderMap) {
        let names: Vec<HeaderName> = h.keys().filter(|n| self.skips(n)).cloned().collect();
        for n in names {
            h.remove(n);
        }
        for (n, v) in self.lines() {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_bytes(v),
            ) {
                h.append(n, v);
            }
        }
    }
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// As a name: a lookup by `&str` parses and hashes the text on every call (per request).
static XFF_NAME: HeaderName = HeaderName::from_static(X_FORWARDED_FOR);
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
static XFP_NAME: HeaderName = HeaderName::from_static(X_FORWARDED_PROTO);
const X_FORWARDED_PORT: &str = "x-forwarded-port";
static XFPORT_NAME: HeaderName = HeaderName::from_static(X_FORWARDED_PORT);

/// X-Forwarded-For per `routing.http.xff_header_processing.mode` (see `Added::xff`).
pub fn xff_out<'a>(
    h: &HeaderMap,
    mode: XffMode,
    client: &'a HeaderValue,
) -> Option<Option<Cow<'a, HeaderValue>>> {
    match mode {
        XffMode::Preserve => None,
        XffMode::Remove => Some(None),
        XffMode::Append => {
            if !has(h, &XFF_NAME) {
                return Some(Some(Cow::Borrowed(client)));
            }
            let mut v = Vec::new();
            for p in &h.get_all(&XFF_NAME) {
                v.extend_from_slice(p.as_bytes());
                v.extend_from_slice(b", ");
            }
            v.extend_from_slice(client.as_bytes());
            Some(
                HeaderValue::from_maybe_shared(bytes::Bytes::from(v))
                    .ok()
                    .map(Cow::Owned),
            )
        }
    }
}

/// Is a `Host` value exactly `host` (bracketed when IPv6) with `:port` when given?
pub fn host_is(value: &[u8], host: &str, port: Option<&str>) -> bool {
    let v6 = host.contains(':');
    let mut rest = value;
    if v6 {
        let Some(r) = rest.strip_prefix(b"[") else {
            return false;
        };
        rest = r;
    }
    let Some(r) = rest.strip_prefix(host.as_bytes()) else {
        return false;
    };
    rest = r;
    if v6 {
        let Some(r) = rest.strip_prefix(b"]") else {
            return false;
        };
        rest = r;
    }
    match port {
        None => rest.is_empty(),
        Some(p) => rest.strip_prefix(b":") == Some(p.as_bytes()),
    }
}

/// A new trace id `Root=1-<8 hex epoch>-<24 hex random>`.
/// `Root=1-` + 8 hex + `-` + 24 hex.
const TRACE_ROOT_LEN: usize = 40;

pub fn new_trace_root(epoch_secs: u64, random: u128) -> String {
    let root = trace_root(epoch_secs, random);
    // Exactly its length: no regrowth, no spare room.
    let mut s = String::with_capacity(TRACE_ROOT_LEN);
    s.extend(root.iter().map(|&b| char::from(b)));
    s
}

/// A new trace id's bytes (ASCII).
fn trace_root(epoch_secs: u64, random: u128) -> [u8; TRACE_ROOT_LEN] {
    // By hand, two digits a byte from a table: `format!` with hex widths costs more than the
    // rest of the header work, and a digit at a time (a shift and a mask each) ~150
    // instructions a request.
    fn hex(out: &mut [u8], bytes: &[u8]) {
        for (o, &b) in out.chunks_exact_mut(2).zip(bytes) {
            o.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
        }
    }
    let mut r = [0u8; TRACE_ROOT_LEN];
    r[..7].copy_from_slice(b"Root=1-");
    hex(&mut r[7..15], &(epoch_secs as u32).to_be_bytes());
    r[15] = b'-';
    // The low 96 bits, 24 digits.
    hex(&mut r[16..], &random.to_be_bytes()[4..]);
    r
}

/// Each byte's two lower-case hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let digits = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = [digits[b >> 4], digits[b & 0xf]];
        b += 1;
    }
    t
};

/// The trace header's value weir forwards (`trace_value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceValue {
    /// A new root (most requests), held in place: carved from a block as a `HeaderValue` it
    /// cost ~250 instructions a request (callgrind: `carved_concat` 191, the value's check).
    Root([u8; TRACE_ROOT_LEN]),
    /// The client's root, this hop's `Self=` joined to it.
    Joined(HeaderValue),
}

impl TraceValue {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            TraceValue::Root(r) => r,
            TraceValue::Joined(v) => v.as_bytes(),
        }
    }

    /// As text, for the access log (`-`: not visible ASCII, as `HeaderValue::to_str` reads).
    pub fn text(&self) -> &str {
        match self {
            TraceValue::Root(r) => std::str::from_utf8(r).unwrap_or("-"),
            TraceValue::Joined(v) => v.to_str().unwrap_or("-"),
        }
    }
}

/// The trace header value to forward (`trace_value`): a new root (the common case) in place.
pub fn trace_header_value(existing: Option<&str>, epoch_secs: u64, random: u128) -> TraceValue {
    let joins =
        existing.is_some_and(|v| v.split(';').any(|f| f.trim_start().starts_with("Root=1-")));
    if !joins {
        return TraceValue::Root(trace_root(epoch_secs, random));
    }
    let value = bytes::Bytes::from(trace_value(existing, epoch_secs, random).into_bytes());
    TraceValue::Joined(
        HeaderValue::from_maybe_shared(value).unwrap_or_else(|_| HeaderValue::from_static("-")),
    )
}

/// What `trace_header_value` was (a new root carved from the block as a `HeaderValue`): its
/// test oracle.
#[cfg(test)]
pub(crate) fn trace_header_value_old(
    existing: Option<&str>,
    epoch_secs: u64,
    random: u128,
) -> HeaderValue {
    let joins =
        existing.is_some_and(|v| v.split(';').any(|f| f.trim_start().starts_with("Root=1-")));
    let value = if joins {
        bytes::Bytes::from(trace_value(existing, epoch_secs, random).into_bytes())
    } else {
        carved_concat(&[&trace_root(epoch_secs, random)])
    };
    HeaderValue::from_maybe_shared(value).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Small values weir writes per request (a new `Host`), `parts` written one after the other,
/// carved from a per-thread block of `CARVE_BLOCK` bytes instead of an allocation each: a
/// value shares its block (a reference count), and the block is reclaimed in place once its
/// values are gone (else a new one is taken, and the old one goes with its last value).
pub(crate) fn carved_concat(parts: &[&[u8]]) -> bytes::Bytes {
    let len = parts.iter().map(|p| p.len()).sum::<usize>();
    BLOCK.with(|spare| {
        let mut b = spare.take().unwrap_or_default();
        if b.capacity() < len && !b.try_reclaim(CARVE_BLOCK) {
            b = bytes::BytesMut::with_capacity(CARVE_BLOCK.max(len));
        }
        for p in parts {
            b.extend_from_slice(p);
        }
        let v = b.split().freeze();
        spare.give_back(b);
        v
    })
}

thread_local! {
    /// The carving block (a pool of one, `crate::spares`): an idle second lets it go at the
    /// worker's sweep ([`trim_block`]).
    static BLOCK: crate::spares::Spares<bytes::BytesMut> =
        const { crate::spares::Spares::new(1, 0) };
}

/// The worker's sweep: releases the carving block if no value was carved since the last one
/// (its memory goes with its last value). Returns the bytes released (nominally a block).
pub fn trim_block() -> usize {
    BLOCK.with(crate::spares::Spares::trim) * CARVE_BLOCK
}

/// A carving block holds ~100 `Host` values.
const CARVE_BLOCK: usize = 4096;

/// The trace header value to forward: an existing `Root=` is kept and a `Self=` for this hop
/// replaces any earlier one; otherwise a new root.
pub fn trace_value(existing: Option<&str>, epoch_secs: u64, random: u128) -> String {
    let fresh = new_trace_root(epoch_secs, random);
    match existing {
        Some(v) if v.split(';').any(|f| f.trim_start().starts_with("Root=1-")) => {
            let self_id = &fresh["Root=".len()..];
            let kept: Vec<&str> = v
                .split(';')
                .filter(|f| !f.trim_start().starts_with("Self="))
                .collect();
            format!("{};Self={}", kept.join(";"), self_id)
        }
        _ => fresh,
    }
}

/// Header names ALB accepts with `drop_invalid_header_fields` (`[-A-Za-z0-9]+`).
pub fn is_valid_header_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_root_fills_its_buffer_exactly() {
        let r = new_trace_root(0x5f00_0000, u128::MAX);
        assert_eq!(r.len(), TRACE_ROOT_LEN);
        assert_eq!(r.capacity(), TRACE_ROOT_LEN, "no regrowth, no spare room");
        assert_eq!(r, "Root=1-5f000000-ffffffffffffffffffffffff");
    }

    #[test]
    fn hop_by_hop_and_connection_listed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    /// `hop_by_hop` is `HOP_BY_HOP.contains`, for standard and other names in any case.
    #[test]
    fn hop_by_hop_names_as_listed() {
        let names = [
            "connection",
            "Connection",
            "te",
            "TE",
            "trailer",
            "trailers",
            "transfer-encoding",
            "upgrade",
            "Upgrade",
            "keep-alive",
            "Keep-Alive",
            "proxy-connection",
            "http2-settings",
            "HTTP2-Settings",
            "host",
            "content-length",
            "user-agent",
            "accept",
            "cookie",
            "x-forwarded-for",
            "x-amzn-trace-id",
            "proxy-authorization",
            "t",
            "tee",
            "connectio",
            "keep-alive2",
            "proxy-connectionx",
            "upgrade-insecure-requests",
            "expect",
            "date",
            "via",
            "x-a",
        ];
        for name in names {
            let n = HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(hop_by_hop(&n), HOP_BY_HOP.contains(&n), "{name}");
        }
        for n in &HOP_BY_HOP {
            assert!(hop_by_hop(n), "{n}");
        }
    }

    #[test]
    fn upgrade_is_kept_when_asked() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Upgrade".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        assert!(wants_upgrade(&h));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
    }

    static TRACE_NAME: HeaderName = HeaderName::from_static("x-amzn-trace-id");

    fn added<'a>(
        h: &HeaderMap,
        mode: XffMode,
        client: &'a HeaderValue,
        l: &'a ListenerForwarded,
    ) -> Added<'a> {
        Added {
            xff: xff_out(h, mode, client),
            proto: &l.proto,
            port: &l.port,
            trace: (
                &TRACE_NAME,
                TraceValue::Joined(HeaderValue::from_static("Root=1-x")),
            ),
            host: None,
        }
    }

    #[test]
    fn only_allowed_upgrades_survive() {
        let ws = ["websocket".to_string()];
        let req = |upgrade: &str| {
            let mut h = HeaderMap::new();
            h.insert("connection", "Upgrade, HTTP2-Settings".parse().unwrap());
            h.insert("upgrade", upgrade.parse().unwrap());
            h.insert("http2-settings", "AAMAAABkAAQAAP__".parse().unwrap());
            h
        };
        for kept in ["websocket", "WebSocket", "websocket/13"] {
            let mut h = req(kept);
            assert!(!drop_unsupported_upgrade(&mut h, &ws), "{kept}");
            assert!(wants_upgrade(&h));
        }
        for dropped in ["h2c", "H2C", "websocket, h2c", "TLS/1.2", "", " , "] {
            let mut h = req(dropped);
            assert!(drop_unsupported_upgrade(&mut h, &ws), "{dropped:?}");
            assert!(!wants_upgrade(&h), "{dropped:?}");
            assert!(!h.contains_key("http2-settings"));
            remove_hop_by_hop(&mut h, false);
            assert!(h.is_empty(), "{h:?}");
        }
        let mut h = req("websocket");
        assert!(
            drop_unsupported_upgrade(&mut h, &[]),
            "an empty list allows none"
        );
        let mut plain = HeaderMap::new();
        plain.insert("host", "a".parse().unwrap());
        assert!(!drop_unsupported_upgrade(&mut plain, &ws));
        // HTTP2-Settings is hop-by-hop even when Connection does not list it.
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive".parse().unwrap());
        h.insert("http2-settings", "AAMAAABkAAQAAP__".parse().unwrap());
        remove_hop_by_hop(&mut h, false);
        assert!(h.is_empty());
    }

    #[test]
    fn xff_modes() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "10.0.0.1".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.2, 10.0.0.3".parse().unwrap());
        h.append("x-forwarded-proto", "spoofed".parse().unwrap());
        assert_eq!(xff_count(&h), 3);
        let https = ListenerForwarded::new("https", 443);
        let mut a = h.clone();
        added(&h, XffMode::Append, &xff_client(ip, None), &https).apply(&mut a);
        assert_eq!(
            a.get_all("x-forwarded-for").iter().collect::<Vec<_>>(),
            ["10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7"]
        );
        assert_eq!(
            a.get_all("x-forwarded-proto").iter().collect::<Vec<_>>(),
            ["https"],
            "the client's value is replaced"
        );
        assert_eq!(a.get("x-forwarded-port").unwrap(), "443");
        assert_eq!(a.get("x-amzn-trace-id").unwrap(), "Root=1-x");
        let http = ListenerForwarded::new("http", 80);
        let mut p = h.clone();
        added(&h, XffMode::Preserve, &xff_client(ip, None), &http).apply(&mut p);
        assert_eq!(xff_count(&p), 3);
        let mut r = h.clone();
        added(&h, XffMode::Remove, &xff_client(ip, None), &http).apply(&mut r);
        assert!(!r.contains_key("x-forwarded-for"));
        let mut port = HeaderMap::new();
        let client = xff_client("2001:db8::1".parse().unwrap(), Some(5000));
        added(&port.clone(), XffMode::Append, &client, &http).apply(&mut port);
        assert_eq!(port.get("x-forwarded-for").unwrap(), "[2001:db8::1]:5000");
    }

    #[test]
    fn host_comparison() {
        assert!(host_is(b"a.example:8080", "a.example", Some("8080")));
        assert!(!host_is(b"a.example:8081", "a.example", Some("8080")));
        assert!(!host_is(b"a.example", "a.example", Some("8080")));
        assert!(host_is(b"a.example", "a.example", None));
        assert!(!host_is(b"a.example:80", "a.example", None));
        assert!(host_is(b"[2001:db8::1]:8080", "2001:db8::1", Some("8080")));
        assert!(!host_is(b"2001:db8::1:8080", "2001:db8::1", Some("8080")));
        assert!(!host_is(b"b.example:8080", "a.example", Some("8080")));
    }

    #[test]
    fn carved_values_concatenate_and_share_a_block() {
        let a = carved_concat(&[b"[", b"::1", b"]", b":", b"8080"]);
        assert_eq!(&a[..], b"[::1]:8080");
        let b = carved_concat(&[b"example.com"]);
        assert_eq!(&b[..], b"example.com");
        assert_eq!(&a[..], b"[::1]:8080", "not overwritten");
        assert_eq!(
            b.as_ptr(),
            a.as_ptr().wrapping_add(a.len()),
            "from the same block"
        );
        assert!(carved_concat(&[]).is_empty());
    }

    #[test]
    fn trace_header_values_are_new_roots_or_joined() {
        let fresh = trace_header_value(None, 0x5f00_0000, 0xabc);
        assert_eq!(fresh.text(), "Root=1-5f000000-000000000000000000000abc");
        assert!(matches!(fresh, TraceValue::Root(_)));
        let other = trace_header_value(Some("Foo=bar"), 0x5f00_0000, 0xabd);
        assert_eq!(other.text(), "Root=1-5f000000-000000000000000000000abd");
        let joined = trace_header_value(Some("Root=1-a-b;Self=x"), 0x10, 0x1);
        assert_eq!(
            joined.as_bytes(),
            b"Root=1-a-b;Self=1-00000010-000000000000000000000001"
        );
    }

    /// The value in place is the carved one's, byte for byte, and so is its log text,
    /// whatever trace header the client sent.
    #[test]
    fn trace_header_values_are_as_before() {
        let pieces = [
            "Root=1-",
            "Self=",
            ";",
            " ",
            "Foo=bar",
            "a-b",
            "\t",
            "é",
            "Root=1-x;Self=y",
            "",
        ];
        let mut rng = fastrand::Rng::with_seed(0x7472);
        for _ in 0..20_000 {
            let existing: String = (0..rng.usize(0..6))
                .map(|_| pieces[rng.usize(..pieces.len())])
                .collect();
            let existing = rng.bool().then_some(existing.as_str());
            let (now, random) = (rng.u64(..), rng.u128(..));
            let new = trace_header_value(existing, now, random);
            let old = trace_header_value_old(existing, now, random);
            assert_eq!(new.as_bytes(), old.as_bytes(), "{existing:?}");
            assert_eq!(new.text(), old.to_str().unwrap_or("-"), "{existing:?}");
        }
    }

    #[test]
    fn trace_ids() {
        let t = trace_value(None, 0x5f00_0000, 0xabc);
        assert_eq!(t, "Root=1-5f000000-000000000000000000000abc");
        let ext = trace_value(
            Some("Root=1-aaaaaaaa-bbbbbbbbbbbbbbbbbbbbbbbb;Self=1-x-y;Foo=bar"),
            0x10,
            0x1,
        );
        assert_eq!(
            ext,
            "Root=1-aaaaaaaa-bbbbbbbbbbbbbbbbbbbbbbbb;Foo=bar;Self=1-00000010-000000000000000000000001"
        );
        assert!(trace_value(Some("garbage"), 1, 1).starts_with("Root=1-00000001-"));
    }
}
