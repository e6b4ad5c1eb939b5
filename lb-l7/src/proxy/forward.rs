//! Phases pick_target (second half) and forward for HTTP/2 clients (hyper's server): a target
//! of the group, a pooled or new HTTP/1.1 connection (the same raw pool as the h1 engine), the
//! request with rewritten headers, the retry rules, and the target's response as a body hyper
//! sends on. Also what both engines share: `prepare_upstream`, `hash_key`, `Outstanding`.
//!
//! Retry rules:
//! - a connect failure (nothing was sent) goes to another target;
//! - a request whose head could not be written to a pooled connection is sent again, on a new
//!   connection;
//! - a failure on a reused connection before any response byte is retried once, on a new
//!   connection, when the request is idempotent and has no body (so it can be replayed);
//! - nothing else is retried: the client gets 502 (or 504 for a response timeout).

use super::orphan::AwaitingResponse;
use super::service::Route;
use super::{ConnInfo, Shared, h2rules, respond};
use crate::access_log::Record;
use crate::body::Body;
use crate::config::HashOn;
use crate::h1::body::TargetBody;
use crate::h1::codec;
use crate::h1::forward::{self as h1_forward, Attempt, Attempts, HeadFailure};
use crate::h1::relay;
use crate::headers;
use crate::select::hash_bytes;
use crate::sticky;
use crate::target::StickyKind;
use crate::target::{GroupRt, TargetRt};
use http::{HeaderMap, HeaderValue, Method, Request, Version, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
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

fn fail(
    sh: &Shared,
    log: Option<&mut Record>,
    status: u16,
    reason: &'static str,
) -> http::Response<Body> {
    sh.metrics.elb_status(status);
    if let Some(l) = log {
        l.error_reason = Some(reason);
    }
    respond::elb(status, false)
}

pub async fn forward(
    sh: &Shared,
    ci: &ConnInfo,
    route: Route<'_>,
    req: Request<Incoming>,
    first: bool,
    mut log: Option<&mut Record>,
) -> http::Response<Body> {
    let m = &sh.metrics;
    let g = route.group;
    let host = route.host.as_deref();
    if g.targets.is_empty() {
        return fail(sh, log, 503, "NoRegisteredTargets");
    }
    let client_version = req.version();
    let key = hash_key(g.hash_on.as_ref(), req.headers(), ci);
    let stuck = g.sticky_target(req.headers());

    // The request as the target sees it: HTTP/1.1, a body with its length or chunked.
    let (mut parts, body) = req.into_parts();
    if client_version == Version::HTTP_2 {
        // One Cookie header for the HTTP/1.1 target (RFC 9113 §8.2.3).
        h2rules::join_cookies(&mut parts.headers);
    }
    let added = prepare_upstream(sh, ci, &mut parts, false, host, log.as_deref_mut());
    let has_body = !body.is_end_stream();
    let chunked = has_body && !parts.headers.contains_key(header::CONTENT_LENGTH);
    if chunked {
        parts.headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    let mut head = bytes::BytesMut::new();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    codec::write_request_head(&mut head, &parts.method, path, &parts.headers, Some(&added));
    let head = head.freeze();
    let replayable = idempotent(&parts.method) && !has_body;
    let mut body = has_body.then_some(body);
    let idle = sh.limits.idle_timeout;

    let mut attempts = Attempts::stuck_to(stuck).replayable(replayable);
    while let Some(a) = attempts
        .next(sh, g, key, false, first, log.as_deref_mut())
        .await
    {
        let Attempt {
            ti,
            t,
            mut up,
            reused,
            pooled,
            outstanding,
            sent_at,
        } = a;

        // Phase forward: the head, then the body.
        if let Err(e) = relay::write_all(&mut up, &head, idle).await {
            // The body is sent after the head, so nothing of it was taken yet.
            h1_forward::dead_on_reuse(sh, t, pooled);
            if reused {
                tracing::debug!(target_addr = %t.addr, error = %e, "pooled connection failed on write; new connection");
                attempts.requeue(sh);
                continue;
            }
            crate::warn_limited!(target_addr = %t.addr, error = %e, "writing to target failed");
            return fail(sh, log, 502, "TargetResponseError");
        }
        if let Some(b) = body.take() {
            match send_body(&mut up, b, chunked, sh.limits.max_request_body, idle).await {
                Ok(()) => {}
                Err(SendBodyError::TooLarge(rest)) => {
                    // The target has part of the body: its connection is dropped, not pooled.
                    tracing::debug!(target_addr = %t.addr, "request body over the limit");
                    let r = fail(sh, log, 413, "RequestBodyTooLarge");
                    return super::service::with_unread_body(r, rest, idle);
                }
                Err(SendBodyError::Other(why)) => {
                    crate::warn_limited!(target_addr = %t.addr, why, "request body not sent");
                    return fail(sh, log, 502, "TargetResponseError");
                }
            }
        }

        // The response head. The target has the whole request: if the stream is cancelled
        // now, the connection finishes its response in the background and is pooled.
        let ubuf = bytes::BytesMut::with_capacity(relay::HEAD_READ);
        let mut waiting = AwaitingResponse::new(up, ubuf, t.clone(), &parts.method, idle);
        let read = match waiting.io() {
            Some((up, ubuf)) => {
                let head = h1_forward::read_response_head(up, ubuf, idle, &sh.timers, &sh.clock);
                t.expiry.or_expired(head).await
            }
            None => Some(Err(HeadFailure::Closed(false))),
        };
        let Some((up, ubuf)) = waiting.disarm() else {
            return fail(sh, log, 502, "TargetResponseError");
        };
        let Some(read) = read else {
            // The deregistration deadline (`crate::expiry`): the connection is dropped.
            crate::warn_limited!(target_addr = %t.addr, "deregistration delay over before the response: 502");
            return fail(sh, log, 502, crate::expiry::DEREGISTERED);
        };
        let resp = match read {
            Ok(r) => r,
            Err(HeadFailure::Timeout) => {
                crate::warn_limited!(target_addr = %t.addr, "no response within the idle timeout");
                t.count_error();
                return fail(sh, log, 504, "TargetResponseTimeout");
            }
            Err(HeadFailure::Closed(partial)) => {
                if !partial {
                    h1_forward::dead_on_reuse(sh, t, pooled);
                }
                if !partial && attempts.retry(sh, reused, replayable) {
                    tracing::debug!(target_addr = %t.addr, "reused connection closed before a response; retrying once");
                    continue;
                }
                crate::warn_limited!(target_addr = %t.addr, reused, "target closed without a response");
                t.count_error();
                return fail(sh, log, 502, "TargetResponseError");
            }
            Err(HeadFailure::Malformed(why)) => {
                crate::warn_limited!(target_addr = %t.addr, why, "malformed response from target");
                t.count_error();
                return fail(sh, log, 502, "TargetResponseError");
            }
        };

        // Phase respond (target's response).
        let keepalive_allows = h1_forward::keepalive_answered(sh, t, pooled, &resp);
        let status = resp.status;
        m.target_status(status);
        t.answered(status);
        if let Some(at) = sent_at {
            t.counters.answered(status, at.elapsed());
        }
        if let Some(l) = log.as_deref_mut() {
            l.target_status_code = Some(status);
            l.target_status_code_list.push(status);
            l.target_processing_time = sent_at.map(|t| t.elapsed().as_secs_f64());
        }
        if status == 101 {
            // Never asked for on this path (an HTTP/2 request is not an upgrade): the target
            // would speak another protocol on a connection that could go back to the pool.
            crate::warn_limited!(target_addr = %t.addr, "101 to a request weir did not upgrade");
            t.count_error();
            return fail(sh, log, 502, h1_forward::UNREQUESTED_UPGRADE);
        }
        let Ok(framing) = codec::response_framing(&parts.method, status, &resp) else {
            return fail(sh, log, 502, "TargetResponseError");
        };
        let mut r = http::Response::new(());
        *r.status_mut() =
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        *r.version_mut() = client_version;
        let mut headers = resp.end_to_end_headers();
        for c in sticky_cookies(g, ti, route.group_cookie, |n| resp.sets_cookie(n)) {
            if let Ok(v) = HeaderValue::try_from(c) {
                headers.append(header::SET_COOKIE, v);
            }
        }
        *r.headers_mut() = headers;
        let reusable = keepalive_allows && resp.target_keeps_alive();
        let tb = TargetBody::new(up, ubuf, framing, t.clone(), reusable, idle, outstanding);
        let (rp, ()) = r.into_parts();
        return http::Response::from_parts(rp, tb.boxed_unsync());
    }
    let (status, reason) = attempts.give_up();
    fail(sh, log, status, reason)
}

enum SendBodyError {
    /// More than `max_request_body_bytes`; the rest of the body.
    TooLarge(Incoming),
    Other(&'static str),
}

impl From<&'static str> for SendBodyError {
    fn from(why: &'static str) -> Self {
        SendBodyError::Other(why)
    }
}

/// Streams a client's (HTTP/2) request body to the target: as it is when the length was
/// declared, else chunk-encoded. Trailers are not forwarded. Stops before the byte that would
/// go over `max` (a declared length over it was refused before).
async fn send_body(
    up: &mut crate::upstream::UpStream,
    mut body: Incoming,
    chunked: bool,
    max: Option<u64>,
    idle: std::time::Duration,
) -> Result<(), SendBodyError> {
    let mut sent = 0u64;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err("client idle for the idle timeout".into()),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err("client body failed".into()),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if max.is_some_and(|max| sent > max) {
            return Err(SendBodyError::TooLarge(body));
        }
        if chunked {
            let size = format!("{:x}\r\n", data.len());
            relay::write_all(up, size.as_bytes(), idle)
                .await
                .map_err(|_| "target write failed")?;
        }
        relay::write_all(up, &data, idle)
            .await
            .map_err(|_| "target write failed")?;
        if chunked {
            relay::write_all(up, b"\r\n", idle)
                .await
                .map_err(|_| "target write failed")?;
        }
    }
    if chunked {
        relay::write_all(up, b"0\r\n\r\n", idle)
            .await
            .map_err(|_| "target write failed")?;
    }
    Ok(())
}

/// The request as the target sees it (both engines): hop-by-hop headers removed, invalid
/// names dropped when configured, X-Forwarded-*, the trace header, `Host`, HTTP/1.1. The URI
/// is left as it came: `codec::write_request_head` writes its origin form (path and query).
pub fn prepare_upstream(
    sh: &Shared,
    ci: &ConnInfo,
    parts: &mut http::request::Parts,
    upgrade: bool,
    host: Option<&str>,
    log: Option<&mut Record>,
) -> headers::Added {
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
    let trace = headers::trace_value(
        h.get(&sh.trace_header).and_then(|v| v.to_str().ok()),
        now,
        fastrand::u128(..),
    );
    if let Some(l) = log {
        l.trace_id.clone_from(&trace);
    }
    // The String's buffer becomes the header value's (no copy).
    let trace = HeaderValue::from_maybe_shared(bytes::Bytes::from(trace.into_bytes()))
        .unwrap_or_else(|_| HeaderValue::from_static("-"));
    let mut new_host = None;
    let rewrite_host =
        !lb.routing.http.preserve_host_header.enabled || !h.contains_key(header::HOST);
    if let (true, Some(host)) = (rewrite_host, host) {
        let default_port = matches!(
            (listener.protocol.scheme(), listener.port),
            ("http", 80) | ("https", 443)
        );
        let port = (!default_port).then_some(ci.listener.port_text.as_str());
        let same = h
            .get(header::HOST)
            .is_some_and(|v| headers::host_is(v.as_bytes(), host, port));
        if !same {
            // Sized exactly: the buffer becomes the header value's without a copy.
            let v6 = host.contains(':');
            let len = host.len() + 2 * usize::from(v6) + port.map_or(0, |p| p.len() + 1);
            let mut v = Vec::with_capacity(len);
            if v6 {
                v.push(b'[');
            }
            v.extend_from_slice(host.as_bytes());
            if v6 {
                v.push(b']');
            }
            if let Some(p) = port {
                v.push(b':');
                v.extend_from_slice(p.as_bytes());
            }
            new_host = HeaderValue::from_maybe_shared(bytes::Bytes::from(v)).ok();
        }
    }
    parts.version = Version::HTTP_11;
    headers::Added {
        xff,
        proto: ci.listener.forwarded.proto.clone(),
        port: ci.listener.forwarded.port.clone(),
        trace: (sh.trace_header.clone(), trace),
        host: new_host,
    }
}
