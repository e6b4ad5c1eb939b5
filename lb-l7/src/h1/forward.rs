//! Phases pick_target and forward for the HTTP/1.1 engine: a pooled or new target connection,
//! the rewritten head and the body, the target's response relayed to the client, and the
//! connection back to the pool.
//!
//! Retry rules (as on the HTTP/2 path):
//! - a connect failure goes to another target;
//! - a reused connection that fails while weir writes the head, before any body byte was
//!   taken from the client, is replaced by a new connection (a partial head is never acted on);
//! - a reused connection that fails before any response byte is retried once, on a new
//!   connection, when the request is idempotent and has no body;
//! - nothing else is retried: the client gets 502 (or 504 for a response timeout).
//!
//! A `101` is tunnelled only when `upgrade::switch` says the request asked for it; any other
//! `101` is a 502 and an upgrade the target refused never leaves its connection in the pool.

use super::stream::ClientStream;
use super::upgrade::Switch;
use super::upload;
use crate::access_log::Record;
use crate::headers;
use crate::pipeline::attempt::{
    self, Attempt, Attempts, CLIENT_CLOSED, HeadFailure, UNREQUESTED_UPGRADE, Waited,
};
use crate::pipeline::codec::{self, Framing, ResponseHead};
use crate::pipeline::decide::Route;
use crate::pipeline::prepare::{
    Outstanding, hash_key, idempotent, prepare_upstream, sticky_cookies,
};
use crate::pipeline::relay::{self, RelayError};
use crate::pipeline::{ConnInfo, Shared, readbuf};
use crate::target::TargetRt;
use crate::upstream::UpStream;
use bytes::BytesMut;
use http::{HeaderValue, Request, header};
use std::time::Duration;
use tokio::net::TcpStream;

/// How far the client's request body was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyState {
    /// Not touched: still in front of the next request (weir may drain it).
    Untouched,
    /// Partly read: the connection cannot carry another request.
    Partial,
    /// Read to its end.
    Done,
}

/// What forwarding ended with.
pub enum Forwarded {
    /// The target's response was relayed to the client.
    Relayed {
        status: u16,
        /// The client connection may carry another request.
        keep_alive: bool,
        sent: u64,
        received: u64,
    },
    /// weir answers itself (502/503/504 …); nothing was written to the client yet.
    Own {
        status: u16,
        reason: &'static str,
        body: BodyState,
        received: u64,
    },
    /// The client connection is unusable (it failed mid-response or was upgraded and is done).
    Closed { status: u16, sent: u64 },
    /// The target cut its response after part of it went to the client (it closed, reset or
    /// stalled mid-body, or garbled its chunks): the client connection is reset, never closed
    /// as after a whole response (RFC 9112 §8), and `reason` is logged.
    Cut {
        status: u16,
        sent: u64,
        received: u64,
        reason: &'static str,
    },
}

/// weir answers itself (the client has seen nothing of this request's response yet).
fn own(status: u16, reason: &'static str, body: BodyState, received: u64) -> Forwarded {
    Forwarded::Own {
        status,
        reason,
        body,
        received,
    }
}

/// A request still waiting for its response at its target's deregistration deadline: 502, the
/// target connection dropped (`crate::expiry`).
fn deregistered(t: &TargetRt, body: BodyState, received: u64) -> Forwarded {
    crate::warn_limited!(target_addr = %t.addr, "deregistration delay over before the response: 502");
    own(502, crate::expiry::DEREGISTERED, body, received)
}

/// The request as it goes out, kept so it can be written again on another connection.
struct Outgoing {
    head: codec::UpstreamHead,
    replayable: bool,
}

/// One client request to a target group, the client connection in hand.
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    sh: &Shared,
    ci: &ConnInfo,
    route: Route<'_>,
    req: Request<()>,
    framing: Framing,
    client: &mut ClientStream,
    cbuf: &mut BytesMut,
    first: bool,
    keep_client: bool,
    mut log: Option<&mut Record>,
) -> Forwarded {
    let m = &sh.metrics;
    let g = route.group;
    let host = route.host.as_deref();
    if g.targets.is_empty() {
        return own(503, "NoRegisteredTargets", BodyState::Untouched, 0);
    }
    if over_body_limit(framing, sh.limits.max_request_body) {
        // The limit holds on the length weir decided (a list such as `4096, 4096` included),
        // before anything reaches a target; the body is not read, the connection closes.
        return own(413, "RequestBodyTooLarge", BodyState::Partial, 0);
    }
    let client_version = req.version();
    let upgrade = headers::wants_upgrade(req.headers());
    let key = hash_key(g.hash_on.as_ref(), req.headers(), ci);
    let stuck = g.sticky_target(req.headers());
    let expect_continue = codec::expects_continue(req.headers());
    // An HTTP/1.0 client's expectation is ignored (RFC 9110 §10.1.1), and it gets no 1xx
    // (§15.2): it could take the 100 for the response.
    let awaits_continue = expect_continue && client_version != http::Version::HTTP_10;

    // The request as the target sees it.
    let mut parts = Recycled(req.into_parts().0);
    let added = prepare_upstream(sh, ci, &mut parts, upgrade, host, log.as_deref_mut());
    let out = Outgoing {
        head: upstream_head(&mut parts, framing, &added, expect_continue),
        replayable: idempotent(&parts.method) && framing == Framing::Empty,
    };
    let method = parts.method.clone();

    let mut body_state = if framing == Framing::Empty {
        BodyState::Done
    } else {
        BodyState::Untouched
    };
    let mut received = 0u64;
    let mut attempts = Attempts::stuck_to(stuck).replayable(out.replayable);
    while let Some(a) = attempts
        .next(sh, g, key, upgrade, first, log.as_deref_mut())
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
        let idle = sh.limits.idle_timeout;

        // Phase forward: the head, then the body from the client.
        if let Err(e) = relay::write_all(&mut up, &out.head, idle).await {
            attempt::dead_on_reuse(sh, t, pooled);
            if reused && body_state != BodyState::Partial {
                tracing::debug!(target_addr = %t.addr, error = %e, "pooled connection failed on write; new connection");
                attempts.requeue(sh);
                continue;
            }
            crate::warn_limited!(target_addr = %t.addr, error = %e, "writing to target failed");
            return own(502, "TargetResponseError", body_state, received);
        }
        let mut ubuf = readbuf::take();
        // The target's answer when it came before the body's end (`upload`).
        let mut early = None;
        if framing != Framing::Empty {
            if awaits_continue && cbuf.is_empty() {
                let _ = relay::write_all(client, b"HTTP/1.1 100 Continue\r\n\r\n", idle).await;
            }
            body_state = BodyState::Partial;
            let shape = relay::BodyShape {
                framing,
                dechunk: false,
                max_data: sh.limits.max_request_body,
            };
            let sent = upload::upload(client, cbuf, &mut up, &mut ubuf, shape, idle).await;
            received += sent.read;
            early = sent.head;
            match sent.relayed {
                Some(Ok(())) => body_state = BodyState::Done,
                None => {
                    // The rest of the body stays unread: the client connection closes after
                    // the response, the target connection is not reused.
                    tracing::debug!(target_addr = %t.addr, "target answered before the body's end");
                }
                Some(Err(RelayError::TooLarge)) => {
                    // The target has part of the body: its connection is dropped, not pooled.
                    tracing::debug!(target_addr = %t.addr, "chunked request body over the limit");
                    return own(413, "RequestBodyTooLarge", BodyState::Partial, received);
                }
                Some(Err(e)) if e.on_dst() => {
                    // The target stopped reading: it may have answered early (e.g. 413).
                    tracing::debug!(target_addr = %t.addr, error = %e, "target stopped taking the body");
                }
                Some(Err(RelayError::Malformed(why))) => {
                    // The target got only whole, re-encoded chunks and then a close: it cannot
                    // read anything of this body as a request.
                    tracing::debug!(target_addr = %t.addr, why, "malformed chunked request body");
                    return own(400, "MalformedChunkedBody", BodyState::Partial, received);
                }
                Some(Err(e)) => {
                    tracing::debug!(target_addr = %t.addr, error = %e, "client body failed");
                    return own(400, "ClientBodyError", BodyState::Partial, received);
                }
            }
        }

        // The response head (interim 1xx skipped, except 101), watching for the client going
        // away meanwhile (ALB's 460), unless it came during the upload.
        let waited = match early {
            Some(head) => Waited::Head(head),
            None => {
                let watch = (body_state == BodyState::Done).then(|| client.tcp());
                read_response_head_or_gone(&mut up, &mut ubuf, idle, sh, t, watch).await
            }
        };
        let resp = match waited {
            Waited::Head(resp) => resp,
            Waited::Expired => return deregistered(t, body_state, received),
            Waited::ClientGone => {
                tracing::debug!(target_addr = %t.addr, "client closed before the response");
                return client_closed(sh, log);
            }
        };
        let resp = match resp {
            Ok(r) => r,
            Err(HeadFailure::Timeout) => {
                crate::warn_limited!(target_addr = %t.addr, "no response within the idle timeout");
                t.count_error();
                return own(504, "TargetResponseTimeout", body_state, received);
            }
            Err(HeadFailure::Closed(partial)) => {
                if !partial {
                    attempt::dead_on_reuse(sh, t, pooled);
                }
                if !partial && attempts.retry(sh, reused, out.replayable) {
                    tracing::debug!(target_addr = %t.addr, "reused connection closed before a response; retrying once");
                    continue;
                }
                crate::warn_limited!(target_addr = %t.addr, reused, "target closed without a response");
                t.count_error();
                return own(502, "TargetResponseError", body_state, received);
            }
            Err(HeadFailure::Malformed(why)) => {
                crate::warn_limited!(target_addr = %t.addr, why, "malformed response from target");
                t.count_error();
                return own(502, "TargetResponseError", body_state, received);
            }
        };

        // Phase respond: the target's response to the client.
        let keepalive_allows = attempt::keepalive_answered(sh, t, pooled, &resp);
        m.target_status(resp.status);
        t.answered(resp.status);
        if let Some(at) = sent_at {
            t.counters.answered(resp.status, at.elapsed());
        }
        if let Some(l) = log.as_deref_mut() {
            l.answered(resp.status);
            l.target_processing_time = sent_at.map(|t| t.elapsed().as_secs_f64());
        }
        let offered = upgrade.then_some(&parts.headers);
        let allowed = &sh.config.load_balancer.upgrade_protocols;
        let target_reusable = match super::upgrade::switch(offered, allowed, resp.status, &resp) {
            Switch::Tunnel => {
                return upgraded(sh, client, cbuf, up, ubuf, &resp, outstanding).await;
            }
            Switch::Refuse => {
                // The target would speak another protocol on this connection: dropped here.
                crate::warn_limited!(target_addr = %t.addr, upgrade, "101 to a request weir did not upgrade");
                t.count_error();
                return own(502, UNREQUESTED_UPGRADE, body_state, received);
            }
            Switch::Response { target_reusable } => target_reusable,
        };
        let Ok(rframing) = codec::response_framing(&method, resp.status, &resp) else {
            return own(502, "TargetResponseError", body_state, received);
        };
        let http10 = client_version == http::Version::HTTP_10;
        let dechunk = http10 && rframing == Framing::Chunked;
        // A close-delimited body goes to an HTTP/1.1 client chunked: a cut then shows as a
        // missing last chunk, and the client connection carries on as after any framed
        // response (only the target's, whose close ends the body, is done). An HTTP/1.0
        // client reads it (and a de-chunked one) until the close.
        let rechunk = !http10 && rframing == Framing::UntilClose;
        let keep_alive = keep_client
            && body_state == BodyState::Done
            && !(http10 && matches!(rframing, Framing::UntilClose | Framing::Chunked));
        let connection = match (keep_alive, http10) {
            (false, _) => Some("close"),
            (true, true) => Some("keep-alive"),
            (true, false) => None,
        };
        // The response head is written into the client's read buffer when it is empty (its
        // spare room is the rest of the request's read): one allocation less per request.
        let mut wire = if cbuf.is_empty() {
            let mut b = std::mem::take(cbuf);
            b.clear();
            b
        } else {
            BytesMut::with_capacity(resp.raw.len() + 64)
        };
        let cookies = sticky_cookies(g, ti, route.group_cookie, |n| resp.sets_cookie(n));
        codec::write_client_response_head(
            &mut wire,
            &resp,
            (rframing == Framing::Chunked && !dechunk) || rechunk,
            connection,
            false,
            &cookies,
        );
        let head_len = wire.len() as u64;
        let mut moved = relay::Moved::default();
        let result = if rechunk {
            relay::until_close_chunked(&mut up, &mut ubuf, client, &mut wire, idle, &mut moved)
                .await
        } else {
            let shape = relay::BodyShape {
                framing: rframing,
                dechunk,
                max_data: None,
            };
            relay::relay_counting(
                &mut up, &mut ubuf, client, &mut wire, shape, idle, &mut moved,
            )
            .await
        };
        drop(outstanding);
        let (status, target_keeps_alive) = (resp.status, resp.target_keeps_alive());
        // The head's field list back to the codec's spares; its bytes (part of `ubuf`) go
        // with it, so `ubuf` can be reclaimed whole when it is taken again.
        resp.recycle();
        if let Err(e) = &result
            && !e.on_dst()
        {
            // The target failed mid-body (a malformed chunked body, a close, a stall).
            crate::warn_limited!(target_addr = %t.addr, error = %e, "target response body failed");
            t.count_error();
            if !wire.is_empty() {
                // Nothing of the response reached the client yet: weir answers.
                return own(502, "TargetResponseError", body_state, received);
            }
        }
        return match result {
            Ok(()) => {
                let reusable = target_reusable
                    && keepalive_allows
                    && target_keeps_alive
                    && rframing != Framing::UntilClose
                    && ubuf.is_empty()
                    && body_state == BodyState::Done
                    && !route.close_target;
                if reusable {
                    t.pool.checkin(up, sh.clock.now());
                }
                // Both buffers are empty after a whole response: kept for the next request.
                readbuf::give_back(ubuf);
                readbuf::give_back(wire);
                Forwarded::Relayed {
                    status,
                    keep_alive,
                    sent: moved.written.max(head_len),
                    received,
                }
            }
            Err(e) if e.on_dst() => {
                tracing::debug!(target_addr = %t.addr, error = %e, "client stopped taking the response");
                Forwarded::Closed {
                    status,
                    sent: moved.written,
                }
            }
            Err(e) => Forwarded::Cut {
                status,
                sent: moved.written,
                received,
                reason: cut_reason(&e),
            },
        };
    }
    let (status, reason) = attempts.give_up();
    own(status, reason, body_state, received)
}

/// weir's `error_reason` for a response the target cut after its head reached the client: it
/// was idle for the idle timeout (as before a head: `TargetResponseTimeout`), or it closed,
/// reset or sent a malformed chunked body. The logged target status tells it from a 504/502.
fn cut_reason(e: &RelayError) -> &'static str {
    match e {
        RelayError::SrcTimeout => "TargetResponseTimeout",
        _ => "TargetResponseError",
    }
}

/// A request's parts, whose header map goes back to the codec's spares (`codec::spare_map`,
/// which `parse_request` takes it from) however forwarding ends.
struct Recycled(http::request::Parts);

impl std::ops::Deref for Recycled {
    type Target = http::request::Parts;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Recycled {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        codec::recycle_headers(std::mem::take(&mut self.0.headers));
    }
}

/// The request head weir writes to a target (after `prepare_upstream`): the framing is weir's
/// own statement of the framing it decided (`set_upstream_framing`), `Expect: 100-continue`
/// is answered by weir (like nginx) and not passed on. Pure; the fuzz target calls it too.
pub fn upstream_head(
    parts: &mut http::request::Parts,
    framing: Framing,
    added: &headers::Added<'_>,
    expect_continue: bool,
) -> codec::UpstreamHead {
    let h = &mut parts.headers;
    set_upstream_framing(h, framing);
    if expect_continue {
        h.remove(header::EXPECT);
    }
    let target = codec::request_target(&parts.uri);
    codec::UpstreamHead::new(&parts.method, &target, &parts.headers, Some(added))
}

/// Is a declared body length over `max_request_body_bytes` (the length weir decided, whatever
/// form the client wrote it in)? A chunked body is counted as it is relayed instead.
pub fn over_body_limit(framing: Framing, max: Option<u64>) -> bool {
    matches!((framing, max), (Framing::Length(n), Some(max)) if n > max)
}

/// Replaces whatever framing lines the request still has with the framing weir decided and
/// relays the body in: `content-length: n` (one number, whatever list or form the client
/// sent), `transfer-encoding: chunked` (the body is re-encoded), or none (`content-length: 0`
/// when the client sent one). A `Connection` option or a duplicate line cannot change what the
/// target reads.
pub fn set_upstream_framing(h: &mut http::HeaderMap, framing: Framing) {
    // Most requests have neither field: `has` walks a small map's few names, where `remove`
    // hashed the name it then did not find (~130 instructions each, callgrind).
    let length = if headers::has(h, &header::CONTENT_LENGTH) {
        h.remove(header::CONTENT_LENGTH)
    } else {
        None
    };
    if headers::has(h, &header::TRANSFER_ENCODING) {
        h.remove(header::TRANSFER_ENCODING);
    }
    put_framing(h, framing, length);
}

/// What `set_upstream_framing` was (each field removed, found or not): its test oracle.
#[cfg(test)]
pub(crate) fn set_upstream_framing_old(h: &mut http::HeaderMap, framing: Framing) {
    let length = h.remove(header::CONTENT_LENGTH);
    h.remove(header::TRANSFER_ENCODING);
    put_framing(h, framing, length);
}

/// The framing line(s) of `set_upstream_framing`, the client's framing fields gone (`length`:
/// the client's `Content-Length`, if any).
fn put_framing(h: &mut http::HeaderMap, framing: Framing, length: Option<HeaderValue>) {
    let had_length = length.is_some();
    match framing {
        Framing::Chunked => {
            h.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        }
        Framing::Length(n) => {
            // The client's own value when it is exactly the plain number (no allocation).
            let same = length.filter(|v| {
                let b = v.as_bytes();
                !b.is_empty()
                    && b.len() <= 19
                    && b[0] != b'0'
                    && b.iter().all(u8::is_ascii_digit)
                    && std::str::from_utf8(b).ok().and_then(|t| t.parse().ok()) == Some(n)
            });
            h.insert(
                header::CONTENT_LENGTH,
                same.unwrap_or_else(|| HeaderValue::from(n)),
            );
        }
        Framing::Empty if had_length => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        Framing::Empty | Framing::UntilClose => {}
    }
}

/// The client went away while its request was with a target: logged and counted as 460; the
/// target connection is dropped with the request.
fn client_closed(sh: &Shared, log: Option<&mut Record>) -> Forwarded {
    let (status, reason) = CLIENT_CLOSED;
    sh.metrics.elb_status(status);
    if let Some(l) = log {
        l.error_reason = Some(reason);
    }
    Forwarded::Closed { status, sent: 0 }
}

/// `read_response_head` that also ends when the client's socket `client` closes.
async fn read_response_head_or_gone(
    up: &mut UpStream,
    buf: &mut BytesMut,
    idle: Duration,
    sh: &Shared,
    t: &TargetRt,
    client: Option<&TcpStream>,
) -> Waited {
    attempt::read_head_watching(up, buf, idle, &sh.timers, &sh.clock, &t.expiry, client).await
}

/// A `101 Switching Protocols`: the head goes to the client, then bytes flow both ways.
async fn upgraded(
    sh: &Shared,
    client: &mut ClientStream,
    cbuf: &mut BytesMut,
    mut up: UpStream,
    ubuf: BytesMut,
    resp: &ResponseHead,
    outstanding: Outstanding,
) -> Forwarded {
    let mut wire = BytesMut::new();
    codec::write_client_response_head(&mut wire, resp, false, None, true, &[]);
    let sent = wire.len() as u64;
    if relay::write_all(client, &wire, sh.limits.idle_timeout)
        .await
        .is_err()
    {
        return Forwarded::Closed { status: 101, sent };
    }
    drop(outstanding);
    let pre = std::mem::take(cbuf);
    match relay::tunnel(client, &mut up, pre, ubuf, sh.limits.websocket_idle_timeout).await {
        Ok((up_bytes, down_bytes)) => {
            tracing::debug!(up_bytes, down_bytes, "tunnel closed");
        }
        Err(e) => tracing::debug!(error = %e, "tunnel ended with an error"),
    }
    Forwarded::Closed { status: 101, sent }
}
