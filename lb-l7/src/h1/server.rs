//! One HTTP/1.1 client connection, request after request, in phases:
//! read head → parse → route (shared with the HTTP/2 path) → forward | respond → log.
//!
//! Timing: with nothing in flight, the connection waits holding no buffer, and is closed
//! after `idle_timeout` (no response, like ALB); once a request head's first byte arrived, the
//! head must be complete within `header_read_timeout` or the client gets 408 and a close
//! (slowloris). After `client_keep_alive`, and once shutdown was asked, the response in
//! flight says `connection: close` and the connection ends.

use super::forward::{self, BodyState, Forwarded};
use super::stream::{ClientStream, Rewind};
use crate::access_log::{Pending, Record, rfc3339};
use crate::body::Body;
use crate::headers;
use crate::pipeline::codec::{self, Framing, HeadError};
use crate::pipeline::decide::{self, Decision};
use crate::pipeline::desync::{self, Classification};
use crate::pipeline::readbuf;
use crate::pipeline::relay::{self, NowOrPending};
use crate::pipeline::{ConnInfo, MAX_DISCARD, Shared, respond, stopped};
use bytes::{BufMut, BytesMut};
use http::{Method, Request, Response, Version, header};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncReadExt;

/// The first read of a request head.
const HEAD_READ: usize = 4096;
/// The HTTP/2 connection preface (prior knowledge, h2c).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[allow(clippy::large_enum_variant)] // one per request, on the stack of a boxed future
enum Next {
    Request(codec::RequestHead),
    /// The connection ended quietly (idle timeout, client closed, shutdown).
    End,
    /// A request head weir refuses before routing.
    Reject(HeadError),
    /// The head did not arrive in time.
    Timeout,
    /// The connection speaks HTTP/2 (prior knowledge): hyper takes it.
    H2,
}

/// What one turn of the connection loop ended with.
enum Step {
    /// The connection can carry another request.
    Again,
    /// The connection is done.
    End,
    /// The connection is reset: a response the target cut must not end like a whole one.
    Reset,
    /// The connection speaks HTTP/2 (prior knowledge): hyper takes it.
    H2,
}

/// An idle plain connection goes to the worker's parking lot (`crate::accept::park`: its task
/// ends, a small entry and the socket wait there) once it sat idle this long with nothing
/// buffered. Busy keep-alive connections (a request more often than this) never get there, so
/// parking costs the request path nothing; one that parks and wakes pays a few syscalls and a
/// task spawn, at most once per this interval.
pub const PARK_AFTER: Duration = Duration::from_millis(500);

/// What the accept loop gives a connection to hold for its life (its place in the worker's
/// counts); a plain connection's can take the connection over while it is idle ("parking").
pub trait Guard: Send + Sized + 'static {
    /// Whether `park` can take connections (a TLS connection's guard never does: rustls's
    /// state stays in its task).
    const PARKS: bool;
    /// Takes the idle connection over (with the guard); gives both back when it cannot.
    fn park(self, idle: Idle) -> Result<(), (Self, Idle)>;
}

impl Guard for () {
    const PARKS: bool = false;
    fn park(self, idle: Idle) -> Result<(), ((), Idle)> {
        Err(((), idle))
    }
}

/// An idle plain connection handed to `Guard::park`: nothing buffered, at least one request
/// served (so it is not h2c), waiting for its next bytes until `deadline`.
pub struct Idle {
    pub ci: Arc<ConnInfo>,
    pub tcp: tokio::net::TcpStream,
    pub life_until: Instant,
    /// The idle deadline it had (idle timeout or keep-alive lifetime, the earlier).
    pub deadline: Instant,
}

/// Where a parked connection's new task starts: its idle wait, with the deadlines it had.
#[derive(Debug, Clone, Copy)]
pub struct Resumed {
    pub life_until: Instant,
    pub deadline: Instant,
}

/// Serves a client connection until it ends; `guard` is dropped at the end. A connection that
/// speaks HTTP/2 with prior knowledge (h2c) is handed to `h2c` (the HTTP/2 engine, given by
/// the accept loop: this engine does not know it), the bytes already read replayed first.
///
/// Memory: this future is what an idle connection costs (with its socket), so while idle it
/// holds the stream, an empty buffer and a slot in the worker's idle deadlines (`idle`), and
/// no read future (the socket's readiness is polled directly) nor timer; reading and serving a
/// request happen in a future boxed for the request's duration (`turn`). A plain connection
/// idle for `PARK_AFTER` is parked by its guard, and its task ends.
pub fn serve<G: Guard, H, F>(
    sh: Arc<Shared>,
    ci: Arc<ConnInfo>,
    io: ClientStream,
    guard: G,
    h2c: H,
) -> impl Future<Output = ()> + Send
where
    H: FnOnce(Arc<Shared>, Arc<ConnInfo>, Rewind<ClientStream>) -> F + Send,
    F: Future<Output = ()> + Send,
{
    let life_until = sh.clock.now() + sh.limits.client_keep_alive;
    run(sh, ci, io, Some(guard), h2c, life_until, None)
}

/// A parked connection's new task (`crate::accept::park`): `serve` from its idle wait, its
/// socket readable (or closed by the client).
pub fn resume<G: Guard, H, F>(
    sh: Arc<Shared>,
    ci: Arc<ConnInfo>,
    io: ClientStream,
    guard: G,
    h2c: H,
    r: Resumed,
) -> impl Future<Output = ()> + Send
where
    H: FnOnce(Arc<Shared>, Arc<ConnInfo>, Rewind<ClientStream>) -> F + Send,
    F: Future<Output = ()> + Send,
{
    run(sh, ci, io, Some(guard), h2c, r.life_until, Some(r.deadline))
}

/// How an idle wait ended.
enum Woken {
    /// Bytes (or the client's FIN) arrived.
    Readable,
    /// Its deadline passed, the worker stops, or it is closed to make room at the connection
    /// limit.
    Expired,
    /// Woken early (a reload removed some listener): look whether this one must close.
    Poked,
    /// Idle for `PARK_AFTER`: park it.
    Park,
}

async fn run<G: Guard, H, F>(
    mut sh: Arc<Shared>,
    mut ci: Arc<ConnInfo>,
    mut io: ClientStream,
    // Taken (and given back) by a parking that fails; there until the end otherwise.
    mut guard: Option<G>,
    h2c: H,
    life_until: Instant,
    // A resumed connection's idle deadline; `None`: a new connection.
    mut deadline: Option<Instant>,
) where
    H: FnOnce(Arc<Shared>, Arc<ConnInfo>, Rewind<ClientStream>) -> F + Send,
    F: Future<Output = ()> + Send,
{
    let mut buf = BytesMut::new();
    let mut first = deadline.is_none();
    // Cleared when the lot refused (the worker stops): the connection waits as before.
    let mut may_park = G::PARKS && matches!(io, ClientStream::Plain(_));
    // Wakes in a row that found nothing to read (see `Woken::Readable`).
    let mut idle_wakes = 0;
    let h2 = loop {
        if buf.is_empty() {
            // A connection whose listener a reload removed closes once idle.
            if sh
                .newest()
                .is_some_and(|n| n.listener_on(ci.listener.config.port).is_none())
            {
                break false;
            }
            // Phase idle: wait for the client's next bytes, until the deadline (kept across
            // a poke and a parking). The empty read buffer goes back to the worker's spares:
            // an idle connection holds none, and the next request takes one (`read_head`).
            readbuf::give_back(std::mem::take(&mut buf));
            let now = sh.clock.now();
            let until =
                *deadline.get_or_insert_with(|| life_until.min(now + sh.limits.idle_timeout));
            let parks = may_park && !first && now + PARK_AFTER + crate::idle::TICK < until;
            // Inline, not a helper future: this wait is what an idle connection's task holds.
            // A connection that served a request may be closed to make room at the worker's
            // connection limit (`accept::park::Lot::make_room`); one that has not is held to
            // its header timeout, as nginx and ALB hold it.
            let reusable = (!first).then_some(until);
            let armed = sh
                .idle
                .arm_idle(if parks { now + PARK_AFTER } else { until }, reusable);
            let readable = std::future::poll_fn(|cx| {
                if io.poll_read_ready(cx, first).is_ready() {
                    return std::task::Poll::Ready(true);
                }
                armed.poll_fired(cx).map(|()| false)
            })
            .await;
            let woken = if readable {
                Woken::Readable
            } else if armed.reclaimed() {
                Woken::Expired
            } else if armed.poked() {
                Woken::Poked
            } else if parks {
                Woken::Park
            } else {
                Woken::Expired
            };
            drop(armed);
            match woken {
                // A wake can be for nothing: a readiness event for bytes an earlier read took
                // already (tokio's readiness is a hint), or the start of a TLS record whose
                // rest has not come. Such a connection waits here again, its deadline kept and
                // free to park, rather than in the head's read with a buffer until its next
                // request (a flaky test saw one never park). A few in a row: it waits there.
                Woken::Readable => {
                    match std::future::poll_fn(|cx| Poll::Ready(read_now(&mut io, &mut buf, cx)))
                        .await
                    {
                        Some(true) => {
                            deadline = None;
                            idle_wakes = 0;
                        }
                        Some(false) => break false,
                        None if idle_wakes < IDLE_WAKES => {
                            idle_wakes += 1;
                            continue;
                        }
                        None => deadline = None,
                    }
                }
                Woken::Poked => continue,
                Woken::Expired => break false,
                Woken::Park if *sh.shutdown.borrow() => break false,
                Woken::Park => match (guard.take(), io) {
                    (Some(g), ClientStream::Plain(tcp)) => {
                        let idle = Idle {
                            ci: ci.clone(),
                            tcp,
                            life_until,
                            deadline: deadline.unwrap_or(life_until),
                        };
                        match g.park(idle) {
                            Ok(()) => return,
                            Err((g, idle)) => {
                                (guard, io, may_park) =
                                    (Some(g), ClientStream::Plain(idle.tcp), false);
                                continue;
                            }
                        }
                    }
                    // Not reached (`may_park` wants a plain stream and the guard is kept to
                    // the end); waits on without parking.
                    (g, other) => {
                        (guard, io, may_park) = (g, other, false);
                        continue;
                    }
                },
            }
        }
        // A request starts in the newest configuration generation (`crate::generation`),
        // unless that one removed this connection's listener: then it is served in its own,
        // and is the connection's last.
        if let Some(n) = sh.newest() {
            if n.listener_on(ci.listener.config.port).is_some() {
                ci = Arc::new(ci.in_generation(&n));
                sh = n;
            } else if !ci.closing {
                ci = Arc::new(ci.closing());
            }
        }
        let step = boxed_turn(&sh, &ci, &mut io, &mut buf, first, life_until).await;
        match step {
            Step::Again => first = false,
            Step::End => break false,
            Step::Reset => return reset(io),
            Step::H2 => break true,
        }
    };
    if h2 {
        // hyper's path keeps per-connection state: give it its own.
        let ci = Arc::new(ConnInfo {
            state: Arc::new(crate::pipeline::ConnState::default()),
            listener: ci.listener.clone(),
            tls: ci.tls.clone(),
            xff_client: ci.xff_client.clone(),
            peer: ci.peer,
            local: ci.local,
            closing: ci.closing,
        });
        let io = Rewind::new(buf, io);
        Box::pin(h2c(sh, ci, io)).await;
    } else {
        // Bytes weir read and will not serve: the client was still sending.
        Box::pin(close(io, !buf.is_empty())).await;
    }
    drop(guard);
}

/// Ends a connection: FIN (TLS: close_notify) after the last response, unread bytes read
/// away so the kernel does not answer them with a reset that could destroy the response in
/// flight, and a lingering close only for a client that was still sending (`sending`: bytes
/// weir read and left; or bytes queued now): `crate::linger::close_if_sending`.
async fn close(mut io: ClientStream, sending: bool) {
    fn tcp(io: &mut ClientStream) -> &mut tokio::net::TcpStream {
        match io {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(s) => s.get_mut().0,
        }
    }
    let ended = crate::linger::close_if_sending(&mut io, tcp, sending, crate::linger::BOUNDS).await;
    if let Some(ended) = ended {
        tracing::trace!(?ended, "HTTP/1.1 connection lingered");
    }
}

/// Ends a connection with a reset (SO_LINGER 0, as `accept::fd_limit` refuses one): no FIN, no
/// TLS close_notify. After a response the target cut, a clean close could make what the client
/// got look whole (a close-delimited body to an HTTP/1.0 client looks exactly so); the reset
/// cannot be taken for the end of a message.
fn reset(io: ClientStream) {
    if let Err(e) = socket2::SockRef::from(io.tcp()).set_linger(Some(Duration::ZERO)) {
        tracing::debug!(error = %e, "SO_LINGER 0 for a reset failed");
    }
}

/// A turn's future on the heap, made in a plain function. Boxed inside `run`
/// (`let step = Box::pin(turn(..))`), rustc 1.97 (the nightly here) keeps the unboxed future
/// (~4.5 KB) as a temporary of `run`'s own state, so every connection's task grows to ~4.9 KB;
/// stable 1.95 does not (488 bytes either way, `worker::idle_size`). Made here, it stays out
/// of `run`'s state with either. The future is written straight into its block
/// (`slot::Slotted::new`): `Box::pin(turn(..))` made it on the stack first and copied all of
/// its ~4.5 KB into the box, one `memcpy` per request (1.6 % of the worker's CPU under `wrk`,
/// `perf`). The block is one of the thread's spares (`super::slot`), not an allocation per
/// request.
fn boxed_turn<'a>(
    sh: &'a Shared,
    ci: &'a ConnInfo,
    io: &'a mut ClientStream,
    buf: &'a mut BytesMut,
    first: bool,
    life_until: Instant,
) -> super::slot::Slotted<impl Future<Output = Step> + Send + 'a> {
    super::slot::Slotted::new(|| turn(sh, ci, io, buf, first, life_until))
}

/// One turn: read a request head, then serve the request.
async fn turn(
    sh: &Shared,
    ci: &ConnInfo,
    io: &mut ClientStream,
    buf: &mut BytesMut,
    first: bool,
    life_until: Instant,
) -> Step {
    // Phase read head.
    let head = match read_head(sh, io, buf, first).await {
        Next::Request(h) => h,
        Next::End => return Step::End,
        Next::H2 => return Step::H2,
        Next::Timeout => {
            tracing::debug!(peer = %ci.peer, "request head not complete in time: 408");
            refuse_head(sh, ci, io, buf, 408, "RequestHeaderTimeout").await;
            return Step::End;
        }
        Next::Reject(e) => {
            tracing::debug!(peer = %ci.peer, status = e.status, reason = e.reason, "request head refused");
            refuse_head(sh, ci, io, buf, e.status, e.reason).await;
            return Step::End;
        }
    };
    request(sh, ci, io, buf, head, first, life_until).await
}

/// Answers a request head weir could not read (malformed, too large, too slow) with `status`
/// and a close; counted, and access-logged as ALB logs a request it could not parse: the
/// request as `- scheme://listener- `, `-` for what is unknown (target, user agent,
/// classification), times -1, the reason in `error_reason`.
async fn refuse_head(
    sh: &Shared,
    ci: &ConnInfo,
    io: &mut ClientStream,
    buf: &BytesMut,
    status: u16,
    reason: &'static str,
) {
    sh.metrics.elb_status(status);
    let resp = respond::elb(status, true);
    let sent = write_own(sh, io, resp, Version::HTTP_11, false, false)
        .await
        .unwrap_or(0);
    let received = buf.len() as u64;
    sh.metrics
        .processed_bytes
        .fetch_add(sent + received, Relaxed);
    // A complete head that did not parse is classified as ALB does (e.g. `BadMethod`,
    // Severe); a head too large or too slow was never whole: `-`.
    let class = (status == 400)
        .then(|| desync::classify(desync::skip_empty_lines(whole_head(buf))))
        .filter(Classification::non_compliant);
    if class.is_some() {
        sh.metrics.desync_non_compliant.fetch_add(1, Relaxed);
    }
    if sh.access_log.enabled() {
        let mut l = unparsed_record(sh, ci, status, reason);
        l.sent_bytes = sent;
        l.received_bytes = received;
        if let Some(c) = class {
            l.classification = c.tier.log_name();
            l.classification_reason = c.log_reason();
        }
        sh.access_log.write(&l);
    }
}

/// The bytes of `buf` up to its first empty line (all of it when there is none).
fn whole_head(buf: &[u8]) -> &[u8] {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(buf, |i| &buf[..i + 4])
}

/// The access-log record of a request head that was never parsed.
fn unparsed_record(sh: &Shared, ci: &ConnInfo, status: u16, reason: &'static str) -> Record {
    let listener = &ci.listener.config;
    let now = rfc3339(SystemTime::now());
    Record {
        kind: if ci.tls.is_some() { "https" } else { "http" },
        time: now.clone(),
        elb: format!("weir/{}", sh.worker_index),
        client: Some(ci.peer),
        elb_status_code: status,
        request: format!(
            "- {}://{}- ",
            listener.protocol.scheme(),
            listener.socket_addr()
        ),
        user_agent: "-".into(),
        ssl_cipher: ci.tls.as_ref().map(|t| t.cipher),
        ssl_protocol: ci.tls.as_ref().map(|t| t.protocol),
        domain_name: ci.tls.as_ref().and_then(|t| t.sni.clone()),
        chosen_cert: ci.tls.as_ref().and_then(|t| t.chosen_cert.clone()),
        matched_rule_priority: -1,
        request_creation_time: now,
        trace_id: "-".into(),
        error_reason: Some(reason),
        ..Record::default()
    }
}

/// Room a read buffer must have for a request head to be read into it as it is (else a spare
/// or new one is taken: `readbuf::take`, which promises this much).
const HEAD_ROOM: usize = 1024;

/// Wakes in a row of an idle connection that find nothing to read before it waits for its
/// next bytes in `read_head` instead: a readiness that keeps saying "readable" without bytes
/// must not spin the worker.
const IDLE_WAKES: u32 = 8;

/// One read without waiting, for a connection woken while idle: `Some(true)` when bytes came
/// (in `buf`), `Some(false)` at the client's end (or an error), `None` when there was nothing
/// yet (the buffer goes back to the spares). A poll rather than an `async fn`: its state would
/// be in every idle connection's future (`worker::idle_size`).
fn read_now(io: &mut ClientStream, buf: &mut BytesMut, cx: &mut Context<'_>) -> Option<bool> {
    if buf.capacity() < HEAD_ROOM {
        *buf = readbuf::take();
    }
    match tokio_util::io::poll_read_buf(Pin::new(io), cx, buf) {
        Poll::Ready(Ok(n)) => Some(n > 0),
        Poll::Ready(Err(_)) => Some(false),
        Poll::Pending => {
            readbuf::give_back(std::mem::take(buf));
            None
        }
    }
}

/// Reads until a request head is complete and parses it. The idle wait has usually read its
/// first bytes (`read_now`); when it has not (wakes without bytes, `IDLE_WAKES`), the first
/// read here waits up to the idle timeout. From the first byte on, the head must be complete
/// within `header_read_timeout`.
async fn read_head(sh: &Shared, io: &mut ClientStream, buf: &mut BytesMut, first: bool) -> Next {
    let lim = &sh.limits;
    if buf.is_empty() {
        if buf.capacity() < HEAD_ROOM {
            *buf = readbuf::take();
        }
        // After `idle_wait` the bytes are usually there: no timer unless the read must wait.
        let n = match io.read_buf(buf).now_or_pending().await {
            Some(Ok(n)) => n,
            Some(Err(_)) => return Next::End,
            None => {
                let mut shutdown = sh.shutdown.clone();
                tokio::select! {
                    r = tokio::time::timeout(lim.idle_timeout, io.read_buf(buf)) => match r {
                        Ok(Ok(n)) => n,
                        _ => return Next::End,
                    },
                    _ = stopped(&mut shutdown) => return Next::End,
                }
            }
        };
        if n == 0 {
            return Next::End;
        }
    }
    // Set when the first read did not bring the whole head (most heads come in one read).
    let mut deadline = None;
    loop {
        // h2c (prior knowledge) on plain connections only: over TLS, HTTP/2 is what ALPN
        // chose (RFC 9113 §3.2), and the preface here is an HTTP/1.1 request to refuse (400).
        if first
            && matches!(io, ClientStream::Plain(_))
            && sh.config.load_balancer.routing.http2.enabled
        {
            let k = buf.len().min(H2_PREFACE.len());
            if k >= 3 && buf[..k] == H2_PREFACE[..k] {
                return Next::H2;
            }
        }
        match codec::parse_request(buf) {
            Ok(Some(h)) => return Next::Request(h),
            Ok(None) => {}
            Err(e) => return Next::Reject(e),
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(buf.capacity().max(HEAD_READ));
        }
        let until =
            *deadline.get_or_insert_with(|| tokio::time::Instant::now() + lim.header_read_timeout);
        match tokio::time::timeout_at(until, io.read_buf(buf)).await {
            Err(_) => return Next::Timeout,
            Ok(Ok(0) | Err(_)) => return Next::End,
            Ok(Ok(_)) => {}
        }
    }
}

/// One request: route, then forward or answer; returns how the connection goes on.
#[allow(clippy::too_many_arguments)]
async fn request(
    sh: &Shared,
    ci: &ConnInfo,
    io: &mut ClientStream,
    buf: &mut BytesMut,
    head: codec::RequestHead,
    first: bool,
    life_until: Instant,
) -> Step {
    let m = &sh.metrics;
    m.requests.fetch_add(1, Relaxed);
    let per_listener = m.listener(ci.listener.config.port);
    if let Some(c) = per_listener {
        c.requests.fetch_add(1, Relaxed);
    }
    let mut req = Request::from_parts(head.parts, ());
    let lb = &sh.config.load_balancer;
    headers::drop_unsupported_upgrade(req.headers_mut(), &lb.upgrade_protocols);
    // The record (and the clock reads) only with the access log on. From here the request
    // has its line: written below, or by the guard if this future is dropped first (the drain
    // deadline: `access_log::Pending`).
    let mut log = Pending::new(&sh.access_log, || {
        let mut r = decide::new_record(
            sh,
            ci,
            req.method(),
            req.uri(),
            req.version(),
            req.headers(),
        );
        r.received_bytes = head.len as u64;
        r
    });
    let desync = desync_action(sh, ci, &head.class, log.record());
    let version = req.version();
    let is_head = req.method() == Method::HEAD;
    let keep_client = codec::client_keeps_alive(version, req.headers())
        && sh.clock.now() < life_until
        && !*sh.shutdown.borrow()
        && !ci.closing
        && desync == desync::Action::Forward;
    // Phases parse (the body's framing first: RFC 9112 wants a 400 when it cannot be known)
    // and route (shared with the HTTP/2 path).
    let framing = codec::request_framing(req.headers());
    let client = ClientFacts {
        version,
        is_head,
        keep_alive: keep_client,
        // Only a request with a body can be waiting for 100 (and a GET costs no lookup).
        awaits_continue: matches!(framing, Ok(Framing::Length(_) | Framing::Chunked))
            && codec::awaits_continue(version, req.headers()),
    };
    let decided = match framing {
        _ if desync == desync::Action::Block => {
            if let Some(l) = log.record() {
                l.error_reason = Some("DesyncMitigationBlocked");
            }
            m.elb_status(400);
            Decision::Respond(respond::elb(400, true))
        }
        Err(e) => {
            if let Some(l) = log.record() {
                l.error_reason = Some(e.reason);
            }
            m.elb_status(e.status);
            Decision::Respond(respond::elb(e.status, true))
        }
        Ok(_) => decide::decide(sh, ci, &req, head.class.non_compliant(), log.record()),
    };
    if let Some(t0) = log.started()
        && let Some(l) = log.record()
    {
        l.request_processing_time = Some(t0.elapsed().as_secs_f64());
    }
    let decision = match (decided, framing) {
        (Decision::Forward(mut route), Ok(framing)) => {
            route.close_target = desync == desync::Action::ForwardThenClose;
            Ok((route, framing))
        }
        (Decision::Respond(r), Ok(_)) => Err((r, BodyState::Untouched)),
        (_, Err(_)) => Err((respond::elb(400, true), BodyState::Partial)),
    };
    // A response the target cut: the connection is reset.
    let mut cut = false;
    let (status, keep, sent, received) = match decision {
        Err((resp, body)) => {
            let framing = framing.ok();
            // Begun: what a cut line reports.
            if let Some(l) = log.record() {
                l.elb_status_code = resp.status().as_u16();
            }
            own_response(sh, io, buf, resp, &client, body, framing).await
        }
        Ok((route, framing)) => {
            let fwd = forward::forward(
                sh,
                ci,
                route,
                req,
                framing,
                io,
                buf,
                first,
                keep_client,
                log.record(),
            )
            .await;
            match fwd {
                Forwarded::Relayed {
                    status,
                    keep_alive,
                    sent,
                    received,
                } => (status, keep_alive, sent, received),
                Forwarded::Closed { status, sent } => (status, false, sent, 0),
                Forwarded::Cut {
                    status,
                    sent,
                    received,
                    reason,
                } => {
                    if let Some(l) = log.record() {
                        l.error_reason = Some(reason);
                    }
                    cut = true;
                    (status, false, sent, received)
                }
                Forwarded::Own {
                    status,
                    reason,
                    body,
                    received,
                } => {
                    m.elb_status(status);
                    if let Some(l) = log.record() {
                        l.error_reason = Some(reason);
                        l.elb_status_code = status;
                        // No target answered (none was reached, it closed or sent nothing
                        // within the idle timeout, or the request failed on its way): ALB
                        // logs -1 for all three times.
                        l.request_processing_time = None;
                    }
                    let resp = respond::elb(status, false);
                    let (s, k, sent, r) =
                        own_response(sh, io, buf, resp, &client, body, Some(framing)).await;
                    (s, k, sent, r + received)
                }
            }
        }
    };

    // Phase log.
    let received = received + head.len as u64;
    m.processed_bytes.fetch_add(sent + received, Relaxed);
    if let Some(c) = per_listener {
        c.processed_bytes.fetch_add(sent + received, Relaxed);
    }
    if let Some((mut l, started)) = log.finish() {
        l.elb_status_code = status;
        l.sent_bytes = sent;
        l.received_bytes = received;
        // Without a request time (no target answered) the other two are -1 as well.
        if let Some(req) = l.request_processing_time {
            let total = started.elapsed().as_secs_f64();
            let before = req + l.target_processing_time.unwrap_or(0.0);
            l.response_processing_time = Some((total - before).max(0.0));
        }
        l.time = rfc3339(SystemTime::now());
        sh.access_log.write(&l);
    }
    match (keep, cut) {
        (true, _) => Step::Again,
        (false, true) => Step::Reset,
        (false, false) => Step::End,
    }
}

/// ALB's desync mitigation for one request: its classification counted
/// (`DesyncMitigationMode_NonCompliant_Request_Count`) and logged, and what the mode does with
/// it (`pipeline::desync`).
fn desync_action(
    sh: &Shared,
    ci: &ConnInfo,
    class: &Classification,
    log: Option<&mut Record>,
) -> desync::Action {
    if !class.non_compliant() {
        return desync::Action::Forward;
    }
    sh.metrics.desync_non_compliant.fetch_add(1, Relaxed);
    if let Some(l) = log {
        l.classification = class.tier.log_name();
        l.classification_reason = class.log_reason();
    }
    let action = desync::action(
        class.tier,
        sh.config.load_balancer.routing.http.desync_mitigation_mode,
    );
    tracing::debug!(peer = %ci.peer, tier = ?class.tier, reason = class.reason, ?action, "non-compliant request");
    action
}

/// What the response to a request depends on about its client.
#[derive(Debug, Clone, Copy)]
struct ClientFacts {
    version: Version,
    is_head: bool,
    /// The client may send another request on the connection.
    keep_alive: bool,
    /// `Expect: 100-continue` from an HTTP/1.1 client: it may hold its body back until weir
    /// answers.
    awaits_continue: bool,
}

/// Writes a response of weir's own; an unread request body is drained (up to `MAX_DISCARD`)
/// so the connection can carry the next request, else the connection closes. A client that
/// asked `Expect: 100-continue` and sent none of its body yet is answered at once (RFC 9110
/// §10.1.1: a final status, or 100), and the connection closes after it: draining first kept
/// such a client waiting its own expect timeout (curl: 1 s, some clients the whole idle
/// timeout) before every weir response — a fixed response, a redirect, a 503.
async fn own_response(
    sh: &Shared,
    io: &mut ClientStream,
    buf: &mut BytesMut,
    resp: Response<Body>,
    client: &ClientFacts,
    body: BodyState,
    framing: Option<Framing>,
) -> (u16, bool, u64, u64) {
    let ClientFacts {
        version,
        is_head,
        keep_alive: keep_client,
        awaits_continue,
    } = *client;
    let status = resp.status().as_u16();
    let wants_close = resp
        .headers()
        .get(header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let mut keep = keep_client && !wants_close && body != BodyState::Partial;
    let mut received = 0;
    if keep && body == BodyState::Untouched && awaits_continue && buf.is_empty() {
        // It has a body (`awaits_continue` says so) the client holds back: not read, closed.
        keep = false;
    } else if keep && body == BodyState::Untouched {
        match framing {
            Some(Framing::Empty) => {}
            Some(f @ Framing::Length(n)) if n <= MAX_DISCARD => {
                let mut sink = tokio::io::sink();
                let mut none = BytesMut::new();
                match relay::relay(
                    io,
                    buf,
                    &mut sink,
                    &mut none,
                    relay::BodyShape::plain(f),
                    sh.limits.idle_timeout,
                )
                .await
                {
                    Ok(moved) => received = moved.wire,
                    Err(_) => keep = false,
                }
            }
            _ => keep = false,
        }
    }
    match write_own(sh, io, resp, version, keep, is_head).await {
        Ok(sent) => (status, keep, sent, received),
        Err(_) => (status, false, 0, received),
    }
}

/// Serialises and writes a response weir made itself (its bodies are small and whole).
async fn write_own(
    sh: &Shared,
    io: &mut ClientStream,
    resp: Response<Body>,
    version: Version,
    keep: bool,
    is_head: bool,
) -> Result<u64, relay::RelayError> {
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let out = own_bytes(&parts, &body, version, keep, is_head, &respond::date_now());
    relay::write_all(io, &out, sh.limits.idle_timeout).await?;
    let _ = tokio::time::timeout(sh.limits.idle_timeout, tokio::io::AsyncWriteExt::flush(io)).await;
    Ok(out.len() as u64)
}

/// A response of weir's own as HTTP/1.1 bytes, with `date` (RFC 9110 §6.6.1: an origin with
/// a clock sends one; weir answers as one here) unless it has its own. Pure.
fn own_bytes(
    parts: &http::response::Parts,
    body: &[u8],
    version: Version,
    keep: bool,
    is_head: bool,
    date: &http::HeaderValue,
) -> BytesMut {
    // No content for a 204, 205 or 304; no length for a 204 or 304 (RFC 9110 §8.6, RFC 9112
    // §6.3 ends them at the head); a 205 says `content-length: 0`, as a client does not know
    // it is bodiless.
    let status = parts.status.as_u16();
    let body = if respond::bodiless(status) {
        &[][..]
    } else {
        body
    };
    let mut out = BytesMut::with_capacity(256 + body.len());
    codec::write_status_line(&mut out, status);
    for (n, v) in &parts.headers {
        if n == header::CONNECTION {
            continue;
        }
        out.put_slice(n.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(v.as_bytes());
        out.put_slice(b"\r\n");
    }
    if !parts.headers.contains_key(header::DATE) {
        out.put_slice(b"date: ");
        out.put_slice(date.as_bytes());
        out.put_slice(b"\r\n");
    }
    if !matches!(status, 204 | 304) {
        out.put_slice(b"content-length: ");
        out.put_slice(body.len().to_string().as_bytes());
        out.put_slice(b"\r\n");
    }
    match (keep, version == Version::HTTP_10) {
        (false, _) => out.put_slice(b"connection: close\r\n"),
        (true, true) => out.put_slice(b"connection: keep-alive\r\n"),
        (true, false) => {}
    }
    out.put_slice(b"\r\n");
    if !is_head {
        out.put_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(status: u16, body: &str, is_head: bool) -> String {
        let r = respond::fixed(status, Some("text/plain"), body);
        let (parts, _) = r.into_parts();
        let date = http::HeaderValue::from_static("Mon, 07 Dec 2026 18:00:00 GMT");
        let out = own_bytes(
            &parts,
            body.as_bytes(),
            Version::HTTP_11,
            true,
            is_head,
            &date,
        );
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn bodiless_statuses_go_without_body_or_length() {
        for status in [204, 304] {
            let out = own(status, "should-not-be-sent\n", false);
            assert!(out.ends_with("\r\n\r\n"), "{status}: {out:?}");
            assert!(!out.contains("content-length"), "{status}: {out:?}");
            assert!(!out.contains("should-not"), "{status}: {out:?}");
        }
        // 205: no content, and a client that does not know it is bodiless is told so.
        let out = own(205, "should-not-be-sent\n", false);
        assert!(out.ends_with("content-length: 0\r\n\r\n"), "{out:?}");
        // Others keep body and length; a HEAD's answer its length without the body.
        let out = own(200, "ok\n", false);
        assert!(out.ends_with("content-length: 3\r\n\r\nok\n"), "{out:?}");
        let out = own(200, "ok\n", true);
        assert!(out.ends_with("content-length: 3\r\n\r\n"), "{out:?}");
    }

    #[test]
    fn own_responses_have_a_date() {
        let out = own(404, "no\n", false);
        assert!(
            out.contains("\r\ndate: Mon, 07 Dec 2026 18:00:00 GMT\r\n"),
            "{out:?}"
        );
        let r = respond::redirect(301, "https://x/");
        let (parts, _) = r.into_parts();
        let date = http::HeaderValue::from_static("Mon, 07 Dec 2026 18:00:00 GMT");
        let out = own_bytes(&parts, b"", Version::HTTP_10, false, false, &date);
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert_eq!(out.matches("date: ").count(), 1, "{out:?}");
        // The clock's value is an HTTP date.
        let now = respond::date_now();
        assert!(
            httpdate::parse_http_date(now.to_str().unwrap()).is_ok(),
            "{now:?}"
        );
    }
}
