//! One request through the phases: parse → route → (pick_target → forward) | respond → log.

use super::{ConnInfo, ConnState, Shared, forward, h2rules, parse, respond};
use crate::access_log::{Record, rfc3339};
use crate::body::{self, Body};
use crate::config::Action;
use crate::rules::RequestFacts;
use crate::select::pick_weighted;
use crate::sticky;
use crate::target::GroupRt;
use http::{Request, Response, Version, header};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

/// hyper's service entry point.
pub async fn handle(
    sh: Arc<Shared>,
    ci: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let st = &ci.state;
    let seen = st.requests.fetch_add(1, Relaxed);
    let first = seen == 0;
    if seen + 1 == sh.limits.h2_max_requests && req.version() == http::Version::HTTP_2 {
        st.close_gracefully.notify_one();
    }
    sh.metrics.requests.fetch_add(1, Relaxed);
    if let Some(c) = sh.metrics.listener(ci.listener.config.port) {
        c.requests.fetch_add(1, Relaxed);
    }
    let mut stream = InFlight::new(&sh, &ci);
    stream.log = sh.access_log.enabled().then(|| {
        new_record(
            &sh,
            &ci,
            req.method(),
            req.uri(),
            req.version(),
            req.headers(),
        )
    });
    let decision = if req.version() == Version::HTTP_2
        && h2rules::authority_conflict(req.uri(), req.headers())
    {
        sh.metrics.elb_status(400);
        if let Some(l) = stream.log.as_mut() {
            l.error_reason = Some("HostAuthorityMismatch");
        }
        Decision::Respond(respond::elb(400, false))
    } else {
        decide(&sh, &ci, &req, false, stream.log.as_mut())
    };
    let resp = match decision {
        // The request's body is kept (unread) until the response has been sent (dropped
        // earlier, the stream would be reset with CANCEL before the client got the answer),
        // then drained like nginx does: see `discard`.
        Decision::Respond(r) => with_unread_body(r, req.into_body(), sh.limits.idle_timeout),
        Decision::Forward(route) => {
            // Boxed: the forward future is large; moving a pointer is cheaper than moving it.
            let log = stream.log.as_mut();
            Box::pin(forward::forward(&sh, &ci, route, req, first, log)).await
        }
    };

    // Phase log: when the response body has been sent (or dropped).
    let (parts, body) = resp.into_parts();
    stream.responded(parts.status.as_u16());
    let on_end: body::OnEnd = Box::new(move |bytes, done| stream.end(bytes, done));
    Ok(Response::from_parts(parts, body::tracked(body, on_end)))
}

/// One HTTP/2 stream in flight. It counts in its connection's `in_flight` until dropped (so
/// a stream reset while weir waits for the target cannot leak the count and switch the idle
/// timeout off), writes the stream's access-log line, and counts streams cancelled before
/// their response ended: one dropped before weir had a response is ALB's 460 (client closed),
/// and a connection with too many (`h2rules::abusive`) gets GOAWAY.
struct InFlight {
    sh: Arc<Shared>,
    state: Arc<ConnState>,
    log: Option<Record>,
    started: Instant,
    /// Bytes read on the connection when the stream started.
    recv0: u64,
    /// weir has the response (the target's or its own).
    has_response: bool,
    /// The listener's port (its `ProcessedBytes`).
    port: u16,
}

impl InFlight {
    fn new(sh: &Arc<Shared>, ci: &ConnInfo) -> InFlight {
        ci.state.in_flight.fetch_add(1, Relaxed);
        InFlight {
            sh: sh.clone(),
            state: ci.state.clone(),
            log: None,
            started: Instant::now(),
            recv0: ci.state.received.load(Relaxed),
            has_response: false,
            port: ci.listener.config.port,
        }
    }

    fn responded(&mut self, status: u16) {
        self.has_response = true;
        let started = self.started;
        if let Some(l) = self.log.as_mut() {
            l.elb_status_code = status;
            l.request_processing_time
                .get_or_insert(started.elapsed().as_secs_f64());
        }
    }

    /// The response body was sent to its end (`done`) or dropped with `bytes` sent.
    fn end(mut self, bytes: u64, done: bool) {
        self.sh.metrics.processed_bytes.fetch_add(bytes, Relaxed);
        if let Some(c) = self.sh.metrics.listener(self.port) {
            c.processed_bytes.fetch_add(bytes, Relaxed);
        }
        if !done {
            self.cancelled();
        }
        if let Some(mut l) = self.log.take() {
            l.sent_bytes = bytes;
            self.write_log(l);
        }
    }

    fn write_log(&self, mut l: Record) {
        l.received_bytes = self.state.received.load(Relaxed).saturating_sub(self.recv0);
        let total = self.started.elapsed().as_secs_f64();
        let before =
            l.request_processing_time.unwrap_or(0.0) + l.target_processing_time.unwrap_or(0.0);
        l.response_processing_time = Some((total - before).max(0.0));
        l.time = rfc3339(SystemTime::now());
        self.sh.access_log.write(&l);
    }

    /// One more stream of this connection ended before its response did.
    fn cancelled(&self) {
        let st = &self.state;
        let n = st.cancelled.fetch_add(1, Relaxed) + 1;
        if h2rules::abusive(n, st.requests.load(Relaxed)) && !st.abusive.swap(true, Relaxed) {
            crate::warn_limited!(
                cancelled = n,
                "HTTP/2 client cancels most of its streams: GOAWAY"
            );
            st.close_gracefully.notify_one();
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Relaxed);
        if self.has_response {
            return;
        }
        // Dropped before weir had a response: the client reset the stream (or the connection
        // ended) while the request was being routed or was with a target.
        let (status, reason) = crate::h1::forward::CLIENT_CLOSED;
        self.sh.metrics.elb_status(status);
        self.cancelled();
        if let Some(mut l) = self.log.take() {
            l.elb_status_code = status;
            l.error_reason = Some(reason);
            l.request_processing_time
                .get_or_insert(self.started.elapsed().as_secs_f64());
            self.write_log(l);
        }
    }
}

/// A response of weir's own to a request whose body was not (all) read: the body is kept
/// until the response has been sent (dropped earlier, the stream would be reset with CANCEL
/// before the client got the answer), then drained (`discard`), like nginx does.
pub(crate) fn with_unread_body(
    r: Response<Body>,
    unread: Incoming,
    idle: Duration,
) -> Response<Body> {
    if hyper::body::Body::is_end_stream(&unread) {
        return r;
    }
    let (parts, b) = r.into_parts();
    let on_end: body::OnEnd = Box::new(move |_, _| {
        tokio::spawn(discard(unread, idle));
    });
    Response::from_parts(parts, body::tracked(b, on_end))
}

/// Reads away the rest of a request body weir answered without reading (up to
/// `MAX_DISCARD` bytes, while it keeps coming within `idle`), so the stream ends cleanly; a
/// larger or stalled one is dropped: the stream is reset with NO_ERROR after the response
/// (RFC 9113 §8.1), which some clients (curl 7.88) report as a failed transfer.
async fn discard(mut body: Incoming, idle: Duration) {
    use http_body_util::BodyExt;
    if hyper::body::Body::size_hint(&body)
        .exact()
        .is_some_and(|n| n > crate::h1::server::MAX_DISCARD)
    {
        return;
    }
    let mut seen = 0u64;
    while seen <= crate::h1::server::MAX_DISCARD {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(f))) => seen += f.data_ref().map_or(0, |d| d.len() as u64),
            _ => return,
        }
    }
}

/// The access log record of a request, before routing.
pub fn new_record(
    sh: &Shared,
    ci: &ConnInfo,
    method: &http::Method,
    uri: &http::Uri,
    version: Version,
    headers: &http::HeaderMap,
) -> Record {
    let h2 = version == Version::HTTP_2;
    let kind = match (ci.tls.is_some(), h2, crate::headers::wants_upgrade(headers)) {
        (_, true, _) => "h2",
        (false, _, true) => "ws",
        (true, _, true) => "wss",
        (true, ..) => "https",
        _ => "http",
    };
    let scheme = ci.listener.config.protocol.scheme();
    let host = host_of(headers, uri).unwrap_or_default();
    let port = ci.listener.config.port;
    Record {
        kind,
        elb: format!("weir/{}", sh.worker_index),
        client: Some(ci.peer),
        request: format!(
            "{} {scheme}://{host}:{port}{} {:?}",
            method,
            uri.path_and_query().map_or("/", |p| p.as_str()),
            version
        ),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string(),
        ssl_cipher: ci.tls.as_ref().map(|t| t.cipher.clone()),
        ssl_protocol: ci.tls.as_ref().map(|t| t.protocol.clone()),
        domain_name: ci.tls.as_ref().and_then(|t| t.sni.clone()),
        chosen_cert: ci.tls.as_ref().and_then(|t| t.chosen_cert.clone()),
        matched_rule_priority: -1,
        request_creation_time: rfc3339(SystemTime::now()),
        trace_id: "-".into(),
        ..Record::default()
    }
}

/// Host without port: the `Host` header, or the HTTP/2 `:authority`.
pub fn host_of(headers: &http::HeaderMap, uri: &http::Uri) -> Option<String> {
    let raw = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))?;
    let host = if let Some(rest) = raw.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                raw
            }
        })
    };
    Some(host.to_string())
}

/// What to do with a request: weir answers it itself, or it goes to a target group.
pub enum Decision<'s> {
    Respond(Response<Body>),
    Forward(Route<'s>),
}

/// Where phase route sends a request.
pub struct Route<'s> {
    pub group: &'s GroupRt,
    /// The request's host (without port), for the forwarded `Host`.
    pub host: Option<String>,
    /// Group stickiness: the response sets `AWSALBTG` lasting this long.
    pub group_cookie: Option<Duration>,
    /// Desync mitigation (`h1::desync`): the target connection is closed after this request,
    /// never pooled. `decide` leaves it false; the HTTP/1.1 engine sets it.
    pub close_target: bool,
}

/// Phases parse and route, shared by the HTTP/1.1 engine and the hyper (HTTP/2) path.
/// `counted`: the request was already counted as non-compliant (the HTTP/1.1 engine's desync
/// classification), so a refusal here does not count it again.
pub fn decide<'s, B>(
    sh: &'s Shared,
    ci: &ConnInfo,
    req: &Request<B>,
    counted: bool,
    mut log: Option<&mut Record>,
) -> Decision<'s> {
    let lb = &sh.config.load_balancer;
    let m = &sh.metrics;

    // Phase parse.
    if !lb.health_check_path.is_empty() && req.uri().path() == lb.health_check_path {
        return Decision::Respond(respond::fixed(200, Some("text/plain"), "OK\n"));
    }
    let checked = parse::check(
        req.method(),
        req.uri(),
        req.version(),
        req.headers(),
        &sh.trace_header,
    )
    .and_then(|()| parse::check_body_length(req.headers(), sh.limits.max_request_body));
    if let Err(r) = checked {
        let count = r.desync && !counted;
        if count {
            m.desync_non_compliant.fetch_add(1, Relaxed);
        }
        m.elb_status(r.status);
        tracing::debug!(status = r.status, reason = r.reason, peer = %ci.peer, "request rejected");
        if let Some(l) = log.as_deref_mut() {
            l.error_reason = Some(r.reason);
            if count {
                l.classification = Some("Severe");
                l.classification_reason = Some(r.reason);
            }
        }
        return Decision::Respond(respond::elb(r.status, r.close));
    }

    // Phase route.
    let host = host_of(req.headers(), req.uri());
    let facts = RequestFacts {
        host: host.as_deref(),
        path: req.uri().path(),
        query: req.uri().query(),
        method: req.method().as_str(),
        headers: req.headers(),
        source_ip: ci.peer.ip(),
    };
    let matched = ci.listener.rules.evaluate(&facts);
    m.rule_evaluations
        .fetch_add(matched.evaluations as u64, Relaxed);
    if let Some(l) = log.as_deref_mut() {
        l.matched_rule_priority = matched.priority as i64;
    }

    match matched.action {
        Action::FixedResponse {
            status_code,
            content_type,
            message_body,
        } => {
            m.fixed_responses.fetch_add(1, Relaxed);
            // ALB counts a rule's own answers under HTTPCode_ELB_* too.
            m.elb_status(*status_code);
            if let Some(l) = log {
                l.actions_executed.push("fixed-response");
            }
            Decision::Respond(respond::fixed(
                *status_code,
                content_type.as_deref(),
                message_body,
            ))
        }
        Action::Redirect {
            protocol,
            host: h,
            port,
            path,
            query,
            status_code,
        } => {
            m.redirects.fetch_add(1, Relaxed);
            m.elb_status(status_code.code());
            let facts = respond::RedirectFacts {
                protocol: ci.listener.config.protocol.scheme(),
                host: host.as_deref().unwrap_or(""),
                port: ci.listener.config.port,
                path: req.uri().path(),
                query: req.uri().query().unwrap_or(""),
            };
            let loc = respond::redirect_location(protocol, h, port, path, query, &facts);
            if let Some(l) = log {
                l.actions_executed.push("redirect");
                l.redirect_url = Some(loc.clone());
            }
            Decision::Respond(respond::redirect(status_code.code(), &loc))
        }
        Action::Forward {
            target_group,
            target_groups,
            stickiness,
        } => {
            // Phase pick_target, first half: the target group (the one the client sticks to,
            // with group stickiness).
            let stick_for = stickiness
                .as_ref()
                .filter(|s| s.enabled && !target_groups.is_empty())
                .map(|s| Duration::from_secs(s.duration_seconds));
            let stuck = stick_for.and_then(|_| {
                let lines = || {
                    req.headers()
                        .get_all(header::COOKIE)
                        .into_iter()
                        .map(|v| v.as_bytes())
                };
                let token = sticky::cookie(lines(), sticky::GROUP_COOKIE)
                    .or_else(|| sticky::cookie(lines(), sticky::GROUP_COOKIE_CORS))?;
                target_groups
                    .iter()
                    .filter(|g| g.weight > 0)
                    .find(|g| {
                        sh.groups
                            .get(g.name.as_str())
                            .is_some_and(|rt| rt.token.as_bytes() == token)
                    })
                    .map(|g| g.name.as_str())
            });
            let name = match (target_group, target_groups.as_slice()) {
                _ if stuck.is_some() => stuck,
                (Some(n), []) => Some(n.as_str()),
                (_, groups) => {
                    let w: Vec<u32> = groups.iter().map(|g| g.weight).collect();
                    pick_weighted(&w, fastrand::u64(..)).map(|i| groups[i].name.as_str())
                }
            };
            let Some(group) = name.and_then(|n| sh.groups.get(n)) else {
                m.elb_status(503);
                return Decision::Respond(respond::elb(503, false));
            };
            if let Some(l) = log {
                l.actions_executed.push("forward");
                l.target_group = Some(group.name.clone());
            }
            Decision::Forward(Route {
                group,
                host,
                group_cookie: stick_for,
                close_target: false,
            })
        }
    }
}
