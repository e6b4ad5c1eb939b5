//! One HTTP/2 request (of either engine) through the pipeline's phases: parse → route
//! (`pipeline::decide`) → (pick_target → forward) | respond → log.

use super::body::{TargetBody, TargetHead};
use super::unread::with_unread_body;
use super::{RequestBody, forward, h2rules};
use crate::access_log::{CLIENT_WINDOW_STALLED, CUT_AT_DRAIN_DEADLINE, Record, rfc3339};
use crate::body::{Body, BoxError};
use crate::pipeline::attempt::CLIENT_CLOSED;
use crate::pipeline::decide::{Decision, decide, new_record};
use crate::pipeline::{ConnInfo, ConnState, Shared, respond};
use bytes::Bytes;
use http::{Request, Response, Version};
use http_body::{Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

/// One request: hyper's service entry point. A target's head is in the response's
/// `HeaderMap`. hyper does not tell how many bytes a header block took on the wire: the
/// heads are counted at their decoded size (`decoded_size`).
pub async fn handle<B: RequestBody>(
    sh: Arc<Shared>,
    ci: Arc<ConnInfo>,
    req: Request<B>,
) -> Result<Response<ResponseBody>, Infallible> {
    let head_bytes = decoded_size(req.method().as_str().len(), Some(req.uri()), req.headers());
    let Ok(mut r) = handle_head_in_body(sh, ci, req, head_bytes).await;
    if let Some(head) = r.body_mut().take_target_head() {
        *r.headers_mut() = head.into_map();
    }
    let sent = decoded_size(3, None, r.headers());
    r.body_mut().head_sent(sent);
    Ok(r)
}

/// A head's size as hyper's engine counts it (it does not expose the HPACK-encoded size):
/// the bytes of its fields' names and values, pseudo-headers included (`:method`, `:scheme`,
/// `:authority`, `:path`; a response's `:status` is `method`'s 3).
pub fn decoded_size(method: usize, uri: Option<&http::Uri>, headers: &http::HeaderMap) -> u64 {
    let mut n = method;
    if let Some(uri) = uri {
        n += uri.scheme_str().map_or(0, str::len);
        n += uri.authority().map_or(0, |a| a.as_str().len());
        n += uri.path_and_query().map_or(0, |p| p.as_str().len());
    }
    for (name, value) in headers {
        n += name.as_str().len() + value.len();
    }
    n as u64
}

/// One request: the future weir's engine runs per stream. A target's head stays in the
/// body (`ResponseBody::take_target_head`), the response's `HeaderMap` empty: the engine
/// encodes it from the target's bytes (no map is built per response). `head_bytes` is the
/// size of the request's header block as the engine received it (the access log's
/// `received_bytes` and `ProcessedBytes` count it with the body bytes read); the engine adds
/// the response head's with `ResponseBody::head_sent`.
pub async fn handle_head_in_body<B: RequestBody>(
    sh: Arc<Shared>,
    ci: Arc<ConnInfo>,
    req: Request<B>,
    head_bytes: u64,
) -> Result<Response<ResponseBody>, Infallible> {
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
    let mut stream = InFlight::new(&sh, &ci, head_bytes);
    // Parse and route in a block: a local borrowed in the body keeps its room in the future
    // to the end (and the future is moved as it starts); only the route and the request leave.
    let (decided, req) = {
        let req = req;
        stream.log = sh.access_log.enabled().then(|| {
            Box::new(new_record(
                &sh,
                &ci,
                req.method(),
                req.uri(),
                req.version(),
                req.headers(),
            ))
        });
        let decided = match malformed(&req) {
            Some(reason) => {
                sh.metrics.elb_status(400);
                if let Some(l) = stream.log.as_deref_mut() {
                    l.error_reason = Some(reason);
                }
                Err(respond::elb(400, false))
            }
            None => match decide(&sh, &ci, &req, false, stream.log.as_deref_mut()) {
                Decision::Respond(r) => Err(r),
                Decision::Forward(route) => Ok(route),
            },
        };
        (decided, req)
    };
    let resp = match decided {
        // The request's body is kept (unread) until the response has been sent (dropped
        // earlier, the stream would be reset with CANCEL before the client got the answer),
        // then drained like nginx does: see `discard`.
        Err(r) => with_unread_body(r, req.into_body(), sh.limits.idle_timeout).map(Inner::Own),
        Ok(route) => {
            // Not boxed on its own: both engines put this whole future on the heap once (weir's
            // in its stream slot, hyper's in a task), so a box of its own was one allocation
            // more per request for nothing.
            let log = stream.log.as_deref_mut();
            let received = &mut stream.received;
            match forward::forward(&sh, &ci, route, req, first, log, received).await {
                Ok(r) => r.map(Inner::Target),
                Err(r) => r.map(Inner::Own),
            }
        }
    };

    // Phase log: when the response body has been sent (or dropped).
    let (parts, body) = resp.into_parts();
    stream.responded(parts.status.as_u16());
    Ok(Response::from_parts(parts, ResponseBody::new(body, stream)))
}

/// What makes an HTTP/2 request malformed beyond the protocol core's checks (`None`: nothing).
fn malformed<B>(req: &Request<B>) -> Option<&'static str> {
    if req.version() != Version::HTTP_2 {
        None
    } else if h2rules::authority_conflict(req.uri(), req.headers()) {
        Some("HostAuthorityMismatch")
    } else if h2rules::asterisk_not_options(req.method(), req.uri()) {
        Some("MalformedUri")
    } else if h2rules::value_edge_whitespace(req.headers()) {
        Some("MalformedHeaderValue")
    } else {
        None
    }
}

/// A stream's response body as the engine sends it: the bytes counted, and the stream's
/// bookkeeping ended (`InFlight::end`: the access-log line, a cancelled stream counted) when
/// it ends, fails or is dropped. A type of its own, not a boxed `body::Tracked` with a boxed
/// closure: two allocations and an indirection less per response.
pub struct ResponseBody {
    inner: Inner,
    bytes: u64,
    stream: Option<InFlight>,
}

/// The body inside: a target's, inline (most responses; `Body` would box it), or weir's own.
/// The size difference is the point: a box per response is what the inline variant saves.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Target(TargetBody),
    Own(Body),
}

impl ResponseBody {
    fn new(inner: Inner, stream: InFlight) -> ResponseBody {
        ResponseBody {
            inner,
            bytes: 0,
            stream: Some(stream),
        }
    }

    /// A target's response head, once (`None` for weir's own responses, whose head is the
    /// response's `HeaderMap`).
    pub fn take_target_head(&mut self) -> Option<TargetHead> {
        match &mut self.inner {
            Inner::Target(b) => b.take_head(),
            Inner::Own(_) => None,
        }
    }

    fn end(&mut self, done: bool) {
        if let Some(s) = self.stream.take() {
            s.end(self.bytes, done);
        }
    }

    /// The engine sent the response's head, `n` bytes (its header block): counted in the
    /// stream's `sent_bytes` with the body's DATA.
    pub fn head_sent(&mut self, n: u64) {
        self.bytes += n;
    }

    /// The engine reset the stream because the client's flow-control window held the
    /// response back for the idle timeout: when the body is dropped, its line says so
    /// (`ClientWindowStalled`) and it is not counted as the client's cancellation (the
    /// client sent no reset; `h2rules::abusive` counts those).
    pub fn stalled(&mut self) {
        if let Some(s) = self.stream.as_mut() {
            s.stalled = true;
        }
    }

    /// The engine refused the stream (RST_STREAM(REFUSED_STREAM)) instead of sending this
    /// response (`forward::RefusedStream`): when the body is dropped, the line keeps weir's
    /// status and reason, and it is not counted as the client's cancellation.
    pub fn refused(&mut self) {
        if let Some(s) = self.stream.as_mut() {
            s.refused = true;
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::Target(b) => Pin::new(b).poll_frame(cx),
            Inner::Own(b) => Pin::new(b).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    this.bytes += d.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => this.end(false),
            Poll::Ready(None) => this.end(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Target(b) => b.is_end_stream(),
            Inner::Own(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Target(b) => b.size_hint(),
            Inner::Own(b) => b.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        let done = http_body::Body::is_end_stream(self);
        self.end(done);
    }
}

/// One HTTP/2 stream in flight. It counts in its connection's `in_flight` until dropped (so
/// a stream reset while weir waits for the target cannot leak the count and switch the idle
/// timeout off; the last one's drop marks the connection idle, `ConnState::idle`), writes
/// the stream's access-log line, and counts streams cancelled before their response ended:
/// one dropped before weir had a response is ALB's 460 (client closed), and a connection
/// with too many (`h2rules::abusive`) gets GOAWAY. One weir dropped itself at a drain
/// deadline (`ConnState::cut_at_drain`, `AccessLog::past_drain_deadline`) is neither: its
/// line says `CutAtDrainDeadline` (`access_log::Record::cut`).
struct InFlight {
    sh: Arc<Shared>,
    state: Arc<ConnState>,
    /// Boxed: a `Record` is ~570 bytes, and the stream's future and its response body's
    /// end callback carry `InFlight` whether the access log is on or not.
    log: Option<Box<Record>>,
    /// When the stream started: only with the access log on (its times; a clock read less
    /// per request without it).
    started: Option<Instant>,
    /// The request's bytes: its header block's (as the engine received it) and its body's
    /// read so far (`forward` adds them as it reads).
    received: u64,
    /// weir has the response (the target's or its own).
    has_response: bool,
    /// The listener's port (its `ProcessedBytes`).
    port: u16,
    /// Reset by the engine, the client's window stalled (`ResponseBody::stalled`).
    stalled: bool,
    /// Refused by the engine instead of answered (`ResponseBody::refused`).
    refused: bool,
}

impl InFlight {
    fn new(sh: &Arc<Shared>, ci: &ConnInfo, head_bytes: u64) -> InFlight {
        if ci.state.in_flight.fetch_add(1, Relaxed) == 0 {
            ci.state.idle.busy();
        }
        InFlight {
            sh: sh.clone(),
            state: ci.state.clone(),
            log: None,
            started: sh.access_log.enabled().then(Instant::now),
            received: head_bytes,
            has_response: false,
            port: ci.listener.config.port,
            stalled: false,
            refused: false,
        }
    }

    fn responded(&mut self, status: u16) {
        self.has_response = true;
        let since = self.since_start();
        if let Some(l) = self.log.as_mut() {
            l.elb_status_code = status;
            l.request_processing_time.get_or_insert(since);
        }
    }

    /// Seconds since the stream started (0 without the access log, which alone reads it).
    fn since_start(&self) -> f64 {
        self.started.map_or(0.0, |s| s.elapsed().as_secs_f64())
    }

    /// The response body was sent to its end (`done`) or dropped with `bytes` sent (its
    /// head's included).
    fn end(mut self, bytes: u64, done: bool) {
        self.processed(bytes);
        let stalled = !done && self.stalled;
        let cut = !done && !stalled && self.cut_at_drain();
        if !done && !cut && !stalled && !self.refused {
            self.cancelled();
        }
        if let Some(mut l) = self.log.take() {
            l.sent_bytes = bytes;
            if cut {
                l.error_reason = Some(CUT_AT_DRAIN_DEADLINE);
            } else if stalled {
                l.error_reason = Some(CLIENT_WINDOW_STALLED);
            }
            self.write_log(l);
        }
    }

    /// Whether a stream dropped now was cut by weir at a drain deadline (its connection's, or
    /// the worker's) rather than cancelled by its client. Asked only when one is dropped.
    fn cut_at_drain(&self) -> bool {
        self.state.cut_at_drain.load(Relaxed) || self.sh.access_log.past_drain_deadline()
    }

    /// `ProcessedBytes` (the load balancer's and the listener's): the stream's bytes both ways.
    fn processed(&self, sent: u64) {
        let n = self.received + sent;
        self.sh.metrics.processed_bytes.fetch_add(n, Relaxed);
        if let Some(c) = self.sh.metrics.listener(self.port) {
            c.processed_bytes.fetch_add(n, Relaxed);
        }
    }

    fn write_log(&self, mut l: Box<Record>) {
        l.received_bytes = self.received;
        let total = self.since_start();
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
        if self.state.in_flight.fetch_sub(1, Relaxed) == 1 {
            // The connection's last stream: it is idle, and may be closed to make room at the
            // worker's connection limit (its engine registered it), the oldest idle first.
            let sh = &self.sh;
            self.state
                .idle
                .idle(sh.clock.now() + sh.limits.idle_timeout);
        }
        if self.has_response {
            return;
        }
        // No response: the request's bytes only.
        self.processed(0);
        if self.cut_at_drain() {
            // weir dropped it at a drain deadline: no response, no 460 (the client is not
            // the one that left), not a cancellation of the client's.
            if let Some(mut l) = self.log.take() {
                l.received_bytes = self.received;
                // As the 460 line: this path times the request up to its response.
                let since = self.since_start();
                l.request_processing_time.get_or_insert(since);
                l.cut(CUT_AT_DRAIN_DEADLINE, since);
                self.sh.access_log.write(&l);
            }
            return;
        }
        // Dropped before weir had a response: the client reset the stream (or the connection
        // ended) while the request was being routed or was with a target.
        let (status, reason) = CLIENT_CLOSED;
        self.sh.metrics.elb_status(status);
        self.cancelled();
        if let Some(mut l) = self.log.take() {
            l.elb_status_code = status;
            l.error_reason = Some(reason);
            l.request_processing_time.get_or_insert(self.since_start());
            self.write_log(l);
        }
    }
}
