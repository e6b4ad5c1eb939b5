//! Phases pick_target (second half) and forward for HTTP/2 clients (either engine): a target
//! of the group, a pooled or new HTTP/1.1 connection (the same raw pool as the h1 engine), the
//! request with rewritten headers (`pipeline::prepare`), its body (`upload`, which ends it at
//! the target's early answer), the retry rules (`pipeline::attempt`), and the target's
//! response as a body the engine sends on.
//!
//! Retry rules:
//! - a connect failure (nothing was sent) goes to another target;
//! - a request whose head could not be written to a pooled connection is sent again, on a new
//!   connection;
//! - a failure on a reused connection before any response byte is retried once, on a new
//!   connection, when the request is idempotent and has no body (so it can be replayed);
//! - nothing else is retried: the client gets 502 (or 504 for a response timeout).
//!
//! A stream while others of its connection are in flight makes new target connections only
//! within the fan-out's share of the worker's cap (`crate::target_conns`). Refused there (or
//! at the cap) before anything was sent, its 503 carries [`RefusedStream`]: an engine that can
//! reset the stream with REFUSED_STREAM instead does (weir's), so the client may retry it.

use super::body::{TargetBody, TargetHead};
use super::orphan::AwaitingResponse;
use super::upload::{self, Uploaded};
use super::{RequestBody, h2rules, unread};
use crate::access_log::Record;
use crate::body::Body;
use crate::pipeline::attempt::{self, Attempt, Attempts, HeadFailure};
use crate::pipeline::decide::Route;
use crate::pipeline::prepare::{hash_key, idempotent, prepare_upstream, sticky_cookies};
use crate::pipeline::{ConnInfo, Shared, codec, readbuf, relay, respond};
use crate::target_conns::Need;
use http::{HeaderValue, Method, Request, Version, header};
use std::sync::atomic::Ordering::Relaxed;

/// Marks weir's 503 for a stream refused at the worker's target connection limit before any of
/// it was sent (`Attempts::refused_unsent`): the engine may answer RST_STREAM(REFUSED_STREAM)
/// instead (RFC 9113 §8.7: the client may retry it).
#[derive(Debug, Clone, Copy)]
pub struct RefusedStream;

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

pub async fn forward<B: RequestBody>(
    sh: &Shared,
    ci: &ConnInfo,
    route: Route<'_>,
    req: Request<B>,
    first: bool,
    mut log: Option<&mut Record>,
    received: &mut u64,
) -> Answer {
    let m = &sh.metrics;
    let g = route.group;
    let host = route.host.as_deref();
    if g.targets.is_empty() {
        return Err(fail(sh, log, 503, "NoRegisteredTargets"));
    }
    // Only the head's bytes and the method are kept across the awaits below: the request
    // and weir's added headers are used up in a block (a local borrowed in the body keeps
    // its room in the future to the end, and the future is moved as it starts).
    let (key, stuck, client_version, has_body, head, method, chunked, body) = {
        let req = req;
        let key = hash_key(g.hash_on.as_ref(), req.headers(), ci);
        let stuck = g.sticky_target(req.headers());
        let client_version = req.version();
        let (parts, body) = req.into_parts();
        let has_body = !body.is_end_stream();
        let log = log.as_deref_mut();
        let (head, method, chunked) =
            upstream_head(sh, ci, parts, client_version, has_body, host, log);
        (
            key,
            stuck,
            client_version,
            has_body,
            head,
            method,
            chunked,
            body,
        )
    };
    let replayable = idempotent(&method) && !has_body;
    let mut body = has_body.then_some(body);
    let idle = sh.limits.idle_timeout;

    // This stream is counted in `in_flight`: more means its connection fans out.
    let fan_out = client_version == Version::HTTP_2 && ci.state.in_flight.load(Relaxed) > 1;
    let need = if fan_out { Need::FanOut } else { Need::First };
    let mut attempts = Attempts::stuck_to(stuck)
        .replayable(replayable)
        .for_need(need);
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
            attempt::dead_on_reuse(sh, t, pooled);
            if reused {
                tracing::debug!(target_addr = %t.addr, error = %e, "pooled connection failed on write; new connection");
                attempts.requeue(sh);
                continue;
            }
            crate::warn_limited!(target_addr = %t.addr, error = %e, "writing to target failed");
            return Err(fail(sh, log, 502, "TargetResponseError"));
        }
        // Phase upload (a request with a body), the target watched for an early answer.
        let mut ubuf = readbuf::take();
        // The target has the whole request (else its connection is not reused, nor finished
        // in the background), and its head when it came during the upload.
        let mut whole = true;
        let mut early = None;
        if let Some(b) = body.take() {
            // Boxed: a body's sending state (its chunk buffer among it) is not carried in every
            // request's future, most of which have no body (and move several times).
            let max = sh.limits.max_request_body;
            let sending = Box::pin(upload::upload(
                &mut up,
                &mut ubuf,
                b,
                chunked,
                max,
                idle,
                &mut *received,
            ));
            match sending.await {
                Uploaded::Whole => {}
                Uploaded::Answered(head) => {
                    tracing::debug!(target_addr = %t.addr, "target answered before the body's end");
                    whole = false;
                    early = Some(head);
                }
                Uploaded::TargetStopped => {
                    tracing::debug!(target_addr = %t.addr, "target stopped taking the body");
                    whole = false;
                }
                Uploaded::TooLarge(rest) => {
                    // The target has part of the body: its connection is dropped, not pooled.
                    tracing::debug!(target_addr = %t.addr, "request body over the limit");
                    let r = fail(sh, log, 413, "RequestBodyTooLarge");
                    return Err(unread::with_unread_body(r, rest, idle));
                }
                Uploaded::Failed(why) => {
                    crate::warn_limited!(target_addr = %t.addr, why, "request body not sent");
                    return Err(fail(sh, log, 502, "TargetResponseError"));
                }
            }
        }

        // The response head: the one that came during the upload, or read now. A target that
        // has the whole request finishes its response in the background, its connection
        // pooled, if the stream is cancelled meanwhile (`AwaitingResponse`).
        let (read, (up, ubuf)) = match early {
            Some(head) => (Some(head), (up, ubuf)),
            None if whole => {
                let mut waiting = AwaitingResponse::new(up, ubuf, t.clone(), &method, idle);
                let read = match waiting.io() {
                    Some((up, ubuf)) => {
                        let (timers, clock) = (&sh.timers, &sh.clock);
                        attempt::read_response_head(up, ubuf, idle, timers, clock, &t.expiry).await
                    }
                    None => Some(Err(HeadFailure::Closed(false))),
                };
                let Some(io) = waiting.disarm() else {
                    return Err(fail(sh, log, 502, "TargetResponseError"));
                };
                (read, io)
            }
            None => {
                let (timers, clock) = (&sh.timers, &sh.clock);
                let read =
                    attempt::read_response_head(&mut up, &mut ubuf, idle, timers, clock, &t.expiry)
                        .await;
                (read, (up, ubuf))
            }
        };
        let Some(read) = read else {
            // The deregistration deadline (`crate::expiry`): the connection is dropped.
            crate::warn_limited!(target_addr = %t.addr, "deregistration delay over before the response: 502");
            return Err(fail(sh, log, 502, crate::expiry::DEREGISTERED));
        };
        let resp = match read {
            Ok(r) => r,
            Err(HeadFailure::Timeout) => {
                crate::warn_limited!(target_addr = %t.addr, "no response within the idle timeout");
                t.count_error();
                return Err(fail(sh, log, 504, "TargetResponseTimeout"));
            }
            Err(HeadFailure::Closed(partial)) => {
                if !partial {
                    attempt::dead_on_reuse(sh, t, pooled);
                }
                if !partial && attempts.retry(sh, reused, replayable) {
                    tracing::debug!(target_addr = %t.addr, "reused connection closed before a response; retrying once");
                    continue;
                }
                crate::warn_limited!(target_addr = %t.addr, reused, "target closed without a response");
                t.count_error();
                return Err(fail(sh, log, 502, "TargetResponseError"));
            }
            Err(HeadFailure::Malformed(why)) => {
                crate::warn_limited!(target_addr = %t.addr, why, "malformed response from target");
                t.count_error();
                return Err(fail(sh, log, 502, "TargetResponseError"));
            }
        };

        // Phase respond (target's response).
        let keepalive_allows = attempt::keepalive_answered(sh, t, pooled, &resp);
        let status = resp.status;
        m.target_status(status);
        t.answered(status);
        if let Some(at) = sent_at {
            t.counters.answered(status, at.elapsed());
        }
        if let Some(l) = log.as_deref_mut() {
            l.answered(status);
            l.target_processing_time = sent_at.map(|t| t.elapsed().as_secs_f64());
        }
        if status == 101 {
            // Never asked for on this path (an HTTP/2 request is not an upgrade): the target
            // would speak another protocol on a connection that could go back to the pool.
            crate::warn_limited!(target_addr = %t.addr, "101 to a request weir did not upgrade");
            t.count_error();
            return Err(fail(sh, log, 502, attempt::UNREQUESTED_UPGRADE));
        }
        let Ok(framing) = codec::response_framing(&method, status, &resp) else {
            return Err(fail(sh, log, 502, "TargetResponseError"));
        };
        let mut r = http::Response::new(());
        *r.status_mut() =
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        *r.version_mut() = client_version;
        let cookies = sticky_cookies(g, ti, route.group_cookie, |n| resp.sets_cookie(n));
        let reusable = keepalive_allows && resp.target_keeps_alive() && whole;
        let clock = sh.clock.clone();
        let mut tb = TargetBody::new(
            up,
            ubuf,
            framing,
            t.clone(),
            reusable,
            idle,
            outstanding,
            clock,
        );
        // The head stays as the target sent it: the engine makes its own from it.
        tb.set_head(TargetHead {
            head: resp,
            cookies,
        });
        let (rp, ()) = r.into_parts();
        return Ok(http::Response::from_parts(rp, tb));
    }
    let (status, reason) = attempts.give_up();
    let mut r = fail(sh, log, status, reason);
    if attempts.refused_unsent() {
        r.extensions_mut().insert(RefusedStream);
    }
    Err(r)
}

/// The request as the target sees it (HTTP/1.1, a body with its length or chunked): its head
/// written once (a retry sends it again), its method, and whether its body goes chunked.
fn upstream_head(
    sh: &Shared,
    ci: &ConnInfo,
    mut parts: http::request::Parts,
    client_version: Version,
    has_body: bool,
    host: Option<&str>,
    log: Option<&mut Record>,
) -> (codec::UpstreamHead, Method, bool) {
    if client_version == Version::HTTP_2 {
        // One Cookie header for the HTTP/1.1 target (RFC 9113 §8.2.3).
        h2rules::join_cookies(&mut parts.headers);
    }
    let added = prepare_upstream(sh, ci, &mut parts, false, host, log);
    let chunked = has_body && !parts.headers.contains_key(header::CONTENT_LENGTH);
    if chunked {
        parts.headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    let target = codec::request_target(&parts.uri);
    let head = codec::UpstreamHead::new(&parts.method, &target, &parts.headers, Some(&added));
    // The head is written: the map goes back for the next request.
    codec::recycle_headers(std::mem::take(&mut parts.headers));
    (head, parts.method, chunked)
}

/// What `forward` answers: the target's response, its body read as the engine sends it (not
/// boxed: it is most responses, and a box costs an allocation per response) and its head in
/// the body (`TargetBody::take_head`: the response's `HeaderMap` is empty), or weir's own.
pub type Answer = Result<http::Response<TargetBody>, http::Response<Body>>;
