//! Phases pick_target (second half) and forward: a target of the group, a pooled or new
//! connection, the request with rewritten headers, the retry rules, and the target's response.
//!
//! Retry rules:
//! - a connect failure (nothing was sent) goes to another target;
//! - a request hyper hands back unsent (the pooled connection closed under it) is sent again,
//!   on another connection;
//! - a failure on a reused connection before any response byte is retried once, on a new
//!   connection, when the request is idempotent and has no body (so it can be replayed);
//! - nothing else is retried: the client gets 502 (or 504 for a response timeout).

use super::{ConnInfo, Shared, respond, tunnel};
use crate::access_log::Record;
use crate::body::{self, Body};
use crate::config::HashOn;
use crate::headers;
use crate::pool::{self, ConnectError};
use crate::select::hash_bytes;
use crate::target::{GroupRt, TargetRt};
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Instant, SystemTime};

/// Counts a request as outstanding on its target until dropped.
pub(crate) struct Outstanding(Arc<TargetRt>);
impl Outstanding {
    pub(crate) fn new(t: &Arc<TargetRt>) -> Outstanding {
        t.outstanding.fetch_add(1, Relaxed);
        Outstanding(t.clone())
    }
}
impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Relaxed);
    }
}

/// What is needed to send a bodiless request again.
struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Replay {
    fn request(&self) -> Request<Body> {
        let mut r = Request::new(body::empty());
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        *r.headers_mut() = self.headers.clone();
        r
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
    g: &GroupRt,
    mut req: Request<Incoming>,
    first: bool,
    host: Option<&str>,
    mut log: Option<&mut Record>,
) -> http::Response<Body> {
    let m = &sh.metrics;
    if g.targets.is_empty() {
        return fail(sh, log, 503, "NoRegisteredTargets");
    }
    let client_version = req.version();
    let upgrade = client_version != Version::HTTP_2 && headers::wants_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let key = hash_key(g.hash_on.as_ref(), req.headers(), ci);

    // The request as the target sees it.
    let (mut parts, body) = req.into_parts();
    prepare_upstream(sh, ci, &mut parts, upgrade, host, log.as_deref_mut());
    let replayable = idempotent(&parts.method) && body.is_end_stream();
    let body: Body = if body.is_end_stream() {
        body::empty()
    } else {
        body.map_err(Into::into).boxed_unsync()
    };
    let mut pending = Some(Request::from_parts(parts, body));

    // Attempts: bounded by the number of targets plus the few retries allowed.
    let mut tried: Vec<usize> = Vec::new();
    let mut retried = false;
    let mut fresh_only = false;
    let mut last_failure: Option<(u16, &'static str)> = None;
    for _ in 0..g.targets.len() + 4 {
        // Phase pick_target.
        let Some(ti) = g.pick(key, &tried) else { break };
        let t = &g.targets[ti];
        if let Some(l) = log.as_deref_mut() {
            l.target = Some(t.addr);
            l.target_list.push(t.addr);
        }
        let pooled = if upgrade || std::mem::take(&mut fresh_only) {
            None
        } else {
            t.pool.checkout(first)
        };
        let (mut sender, reused) = match pooled {
            Some(s) => (s, true),
            None => match pool::connect(t.addr, sh.limits.connect_timeout, upgrade).await {
                Ok(s) => {
                    m.upstream_connections_opened.fetch_add(1, Relaxed);
                    (s, false)
                }
                Err(e) => {
                    m.target_connection_errors.fetch_add(1, Relaxed);
                    t.counters.connection_errors.fetch_add(1, Relaxed);
                    tracing::warn!(target_addr = %t.addr, group = %g.name, error = %e, "target connection failed");
                    last_failure = Some(match e {
                        ConnectError::Timeout(_) => (504, "TargetConnectTimeout"),
                        _ => (502, "TargetConnectionError"),
                    });
                    tried.push(ti);
                    continue;
                }
            },
        };
        if reused {
            if sender.ready().await.is_err() {
                continue;
            }
            m.upstream_connections_reused.fetch_add(1, Relaxed);
        }
        let Some(request) = pending.take() else { break };
        let replay = (reused && replayable && !retried).then(|| Replay {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
        });
        let outstanding = Outstanding::new(t);
        t.counters.requests.fetch_add(1, Relaxed);
        let sent_at = Instant::now();

        // Phase forward.
        let result =
            tokio::time::timeout(sh.limits.idle_timeout, sender.try_send_request(request)).await;
        let mut resp = match result {
            Err(_) => {
                tracing::warn!(target_addr = %t.addr, "no response within the idle timeout");
                return fail(sh, log, 504, "TargetResponseTimeout");
            }
            Ok(Ok(resp)) => resp,
            Ok(Err(mut e)) => {
                if let Some(back) = e.take_message() {
                    // Never written: the connection closed under us. Send it elsewhere.
                    tracing::debug!(target_addr = %t.addr, "request returned unsent; trying another connection");
                    m.upstream_requeued.fetch_add(1, Relaxed);
                    pending = Some(back);
                    fresh_only = true;
                    continue;
                }
                if let Some(r) = replay {
                    // A reused connection failed before any response byte: retry once.
                    tracing::debug!(target_addr = %t.addr, error = %e.error(), "reused connection failed; retrying once");
                    m.upstream_retries.fetch_add(1, Relaxed);
                    retried = true;
                    fresh_only = true;
                    pending = Some(r.request());
                    continue;
                }
                tracing::warn!(target_addr = %t.addr, reused, error = %e.error(), "target failed");
                return fail(sh, log, 502, "TargetResponseError");
            }
        };

        // Phase respond (target's response).
        let status = resp.status().as_u16();
        m.target_status(status);
        if let Some(l) = log.as_deref_mut() {
            l.target_status_code = Some(status);
            l.target_status_code_list.push(status);
            l.target_processing_time = Some(sent_at.elapsed().as_secs_f64());
        }
        if upgrade && status == 101 {
            let target_upgrade = hyper::upgrade::on(&mut resp);
            if let Some(cu) = client_upgrade {
                tokio::spawn(tunnel::run(
                    cu,
                    target_upgrade,
                    sh.limits.websocket_idle_timeout,
                ));
            }
            let (mut rp, _) = resp.into_parts();
            headers::remove_hop_by_hop(&mut rp.headers, true);
            drop(outstanding);
            return http::Response::from_parts(rp, body::empty());
        }
        let (mut rp, rb) = resp.into_parts();
        headers::remove_hop_by_hop(&mut rp.headers, false);
        rp.version = client_version;
        let target = t.clone();
        let keep = (!upgrade).then_some(sender);
        let on_end: body::OnEnd = Box::new(move |_bytes, done| {
            drop(outstanding);
            if let (true, Some(s)) = (done, keep) {
                target.pool.checkin(s);
            }
        });
        return http::Response::from_parts(rp, body::tracked(rb, on_end));
    }
    let (status, reason) = last_failure.unwrap_or((503, "NoHealthyTargets"));
    fail(sh, log, status, reason)
}

/// The request as the target sees it (both engines): hop-by-hop headers removed, invalid
/// names dropped when configured, X-Forwarded-*, the trace header, `Host`, origin-form URI,
/// HTTP/1.1.
pub fn prepare_upstream(
    sh: &Shared,
    ci: &ConnInfo,
    parts: &mut http::request::Parts,
    upgrade: bool,
    host: Option<&str>,
    log: Option<&mut Record>,
) {
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
    let client_port = lb
        .routing
        .http
        .xff_client_port
        .enabled
        .then_some(ci.peer.port());
    let client_ip = crate::rules::canonical_ip(ci.peer.ip());
    headers::forwarded(
        h,
        lb.routing.http.xff_header_processing.mode,
        client_ip,
        client_port,
        listener.protocol.scheme(),
        listener.port,
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let trace = headers::trace_value(
        h.get(lb.trace_header.as_str())
            .and_then(|v| v.to_str().ok()),
        now,
        fastrand::u128(..),
    );
    if let (Ok(name), Ok(v)) = (
        http::HeaderName::from_bytes(lb.trace_header.as_bytes()),
        HeaderValue::from_str(&trace),
    ) {
        h.insert(name, v);
    }
    if let Some(l) = log {
        l.trace_id = trace;
    }
    if !lb.routing.http.preserve_host_header.enabled || !h.contains_key(header::HOST) {
        if let Some(host) = host {
            let default_port = matches!(
                (listener.protocol.scheme(), listener.port),
                ("http", 80) | ("https", 443)
            );
            let bracketed = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            let v = if default_port {
                bracketed
            } else {
                format!("{bracketed}:{}", listener.port)
            };
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(header::HOST, v);
            }
        }
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
    parts.version = Version::HTTP_11;
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
    }
    parts.version = Version::HTTP_11;
}
