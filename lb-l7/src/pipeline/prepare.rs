//! Phase prepare upstream, shared by both engines: the request as the target sees it
//! (`prepare_upstream`), the stickiness cookies of the response (`sticky_cookies`), the
//! hash key of `hash_on` groups, and the outstanding count of a target (`Outstanding`).

use super::{ConnInfo, Shared};
use crate::access_log::Record;
use crate::config::HashOn;
use crate::headers;
use crate::select::hash_bytes;
use crate::sticky;
use crate::target::StickyKind;
use crate::target::{GroupRt, TargetRt};
use http::{HeaderMap, HeaderValue, Method, Version, header};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// Counts a request as outstanding on its target until dropped, and holds its slot at a
/// capped target (`target_limits`).
pub struct Outstanding {
    t: Arc<TargetRt>,
    _slot: Option<crate::target_limit::Slot>,
}
impl Outstanding {
    pub(crate) fn new(t: &Arc<TargetRt>, slot: Option<crate::target_limit::Slot>) -> Outstanding {
        t.outstanding.fetch_add(1, Relaxed);
        Outstanding {
            t: t.clone(),
            _slot: slot,
        }
    }
}
impl Drop for Outstanding {
    fn drop(&mut self) {
        self.t.outstanding.fetch_sub(1, Relaxed);
    }
}

pub(crate) fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

pub(crate) fn hash_key(on: Option<&HashOn>, h: &HeaderMap, ci: &ConnInfo) -> Option<u64> {
    match on? {
        HashOn::SourceIp => Some(hash_bytes(
            crate::rules::canonical_ip(ci.peer.ip())
                .to_string()
                .as_bytes(),
        )),
        HashOn::Header(name) => h.get(name.as_str()).map(|v| hash_bytes(v.as_bytes())),
        HashOn::Cookie(name) => h
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| hash_bytes(v.as_bytes())),
    }
}

/// weir's `Set-Cookie` values for a response from target `ti` of `g` (both engines):
/// `AWSALB`/`AWSALBCORS` for `lb_cookie` stickiness, `AWSALBAPP-0` when the target set the
/// application's cookie (`sets_cookie(name)`), and `AWSALBTG`/`AWSALBTGCORS` for group
/// stickiness (`group_cookie`). Empty (no allocation) when none applies.
pub(crate) fn sticky_cookies(
    g: &GroupRt,
    ti: usize,
    group_cookie: Option<std::time::Duration>,
    sets_cookie: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut v = Vec::new();
    if g.sticky.is_none() && group_cookie.is_none() {
        return v;
    }
    let now = std::time::SystemTime::now();
    if let Some(s) = &g.sticky
        && let Some(token) = s.tokens.get(ti)
    {
        match &s.kind {
            StickyKind::LbCookie => {
                v.push(sticky::set_cookie(
                    sticky::LB_COOKIE,
                    token,
                    now,
                    s.lasts,
                    false,
                ));
                v.push(sticky::set_cookie(
                    sticky::LB_COOKIE_CORS,
                    token,
                    now,
                    s.lasts,
                    true,
                ));
            }
            StickyKind::AppCookie(name) if sets_cookie(name) => {
                v.push(sticky::set_cookie(
                    sticky::APP_COOKIE,
                    token,
                    now,
                    s.lasts,
                    false,
                ));
            }
            StickyKind::AppCookie(_) => {}
        }
    }
    if let Some(lasts) = group_cookie {
        v.push(sticky::set_cookie(
            sticky::GROUP_COOKIE,
            &g.token,
            now,
            lasts,
            false,
        ));
        v.push(sticky::set_cookie(
            sticky::GROUP_COOKIE_CORS,
            &g.token,
            now,
            lasts,
            true,
        ));
    }
    v
}

/// The request as the target sees it (both engines): hop-by-hop headers removed, invalid
/// names dropped when configured, X-Forwarded-*, the trace header, `Host`, HTTP/1.1. The URI
/// is left as it came: `codec::write_request_head` writes its origin form (path and query).
pub fn prepare_upstream<'a>(
    sh: &'a Shared,
    ci: &'a ConnInfo,
    parts: &mut http::request::Parts,
    upgrade: bool,
    host: Option<&str>,
    log: Option<&mut Record>,
) -> headers::Added<'a> {
    let lb = &sh.config.load_balancer;
    let h = &mut parts.headers;
    headers::remove_hop_by_hop(h, upgrade);
    if lb.routing.http.drop_invalid_header_fields.enabled {
        let bad: Vec<_> = h
            .keys()
            .filter(|k| !headers::is_valid_header_name(k.as_str()))
            .cloned()
            .collect();
        for k in bad {
            h.remove(k);
        }
    }
    let listener = &ci.listener.config;
    let xff = headers::xff_out(
        h,
        lb.routing.http.xff_header_processing.mode,
        &ci.xff_client,
    );
    let now = sh.clock.epoch_secs();
    let trace = headers::trace_header_value(
        headers::first(h, &sh.trace_header).and_then(|v| v.to_str().ok()),
        now,
        fastrand::u128(..),
    );
    if let Some(l) = log {
        l.trace_id = trace.text().to_owned();
    }
    // An HTTP/1.0 request may come without a Host (an HTTP/1.1 one gets 400 before this); it
    // leaves as HTTP/1.1, which must have one (RFC 9112 §3.2: a strict target answers 400 and
    // closes, so the pooled connection is lost too). ALB generates a Host with its own DNS
    // name; weir has none and names the address the client connected to (the listener's, or
    // on a wildcard listener the connection's own: 0.0.0.0 would mean nothing to the target).
    let client_host = headers::first(h, &header::HOST);
    let local_host;
    let host = match host {
        None if client_host.is_none() => {
            local_host = ci.local.to_string();
            Some(local_host.as_str())
        }
        host => host,
    };
    let mut new_host = None;
    let rewrite_host = !lb.routing.http.preserve_host_header.enabled || client_host.is_none();
    if let (true, Some(host)) = (rewrite_host, host) {
        let default_port = matches!(
            (listener.protocol.scheme(), listener.port),
            ("http", 80) | ("https", 443)
        );
        let port = (!default_port).then_some(ci.listener.port_text.as_str());
        let same = client_host.is_some_and(|v| headers::host_is(v.as_bytes(), host, port));
        if !same {
            // Carved from a per-thread block (`carved_concat`): no allocation per request
            // (every HTTP/2 request gets one: its `:authority` is no `Host` field).
            let v6 = host.contains(':');
            let (open, close): (&[u8], &[u8]) = if v6 { (b"[", b"]") } else { (b"", b"") };
            let (colon, port): (&[u8], &[u8]) = match port {
                Some(p) => (b":", p.as_bytes()),
                None => (b"", b""),
            };
            let v = headers::carved_concat(&[open, host.as_bytes(), close, colon, port]);
            new_host = HeaderValue::from_maybe_shared(v).ok();
        }
    }
    parts.version = Version::HTTP_11;
    headers::Added {
        xff,
        proto: &ci.listener.forwarded.proto,
        port: &ci.listener.forwarded.port,
        trace: (&sh.trace_header, trace),
        host: new_host,
    }
}
