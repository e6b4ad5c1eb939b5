//! One HTTP/2 client connection on weir's engine: a task that owns the protocol state
//! (`h2conn::Connection`), the client's I/O and the streams' request futures, and turns:
//! read what the client sent until the socket has no more (`recv`) → the connection's events
//! (a request starts its future in the newest generation, DATA feeds the stream's body, a reset
//! drops the stream's work) → the streams that were woken (a future that has its response
//! sends the head; a body is pulled while its stream can take more) → request-body credit
//! handed back → the connection's deadlines → its output gathered into one buffer, written
//! with one call when nothing else is left to do.
//!
//! Limits: the output gathered is bounded ([`WRITE_HIGH`]; the connection is asked for more
//! only as the client takes it, and a client that takes nothing is not read from either), each
//! stream queues at most [`SEND_BUF`] of response (`h2conn::Config::max_send_buffer_per_stream`)
//! before its body is no longer pulled, and a write that makes no progress for the idle timeout
//! ends the connection. The protocol core holds the rest (streams, header list size, floods,
//! glitches, the idle and header-read deadlines). GOAWAY at the worker's stop, after
//! `client_keep_alive`, after `http2_max_requests_per_connection` requests, when its listener
//! was removed, when most of its streams were cancelled (then only [`ABUSER_DRAIN`] to
//! finish), and, idle, when the worker at its connection limit needs its place (one GOAWAY
//! with the last stream id, no PING first: `idle::IdleDeadlines::reclaim`); the streams get
//! `drain_timeout` otherwise.

use super::head;
use super::recv::RecvBody;
use super::streams::{Phase, Stream, Streams};
use crate::h2conn::{self, Connection, Event, Reason, StreamId};
use crate::http2::forward::RefusedStream;
use crate::http2::frames::Inbound;
use crate::http2::service;
use crate::pipeline::{ConnInfo, Shared, codec, stopped};
use bytes::Bytes;
use http::Request;
use http_body::Body as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::futures::Notified;
use tokio::time::Sleep;

/// Concurrent streams per connection (ALB's 128).
pub const MAX_STREAMS: u32 = 128;
/// Response bytes a stream queues in the connection before its body is no longer pulled: with
/// the one chunk of the body's next read (16 KiB), a stream holds at most 32 KiB of response
/// data, a connection 128 × 32 KiB = 4 MiB plus [`WRITE_HIGH`].
pub const SEND_BUF: usize = 16 * 1024;
/// Glitches (streams reset for the client's protocol errors, rapid resets, flood frames)
/// before the protocol core sends GOAWAY(ENHANCE_YOUR_CALM), as hyper's path is configured.
pub const MAX_GLITCHES: u32 = 100;
/// How long an abusive connection's streams may still run after its GOAWAY.
const ABUSER_DRAIN: Duration = Duration::from_secs(1);
/// One read of the client's bytes.
const READ_BUF: usize = 16 * 1024;
/// What a lingering close reads the client's last bytes into (they are thrown away).
const LINGER_READ: usize = 4096;

thread_local! {
    /// The worker thread's one read buffer for every HTTP/2 connection it serves (nginx's
    /// `http2_recv_buffer_size` is one per worker too): a read's bytes go to the connection's
    /// core before the read returns, so a connection keeps none of its own (16 KiB each, idle
    /// or not, before).
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; READ_BUF].into_boxed_slice());
}

/// Reads per turn before the task looks at what they brought.
const READS_PER_TURN: usize = 8;
/// Events waiting past which a turn reads no more before handling them (one read of 10-byte
/// DATA frames makes ~1,600).
const EVENTS_BEFORE_READING_ON: usize = 256;
/// Turns of one wake-up between two clock reads.
const CLOCK_TURNS: u32 = 16;
/// Output gathered (and not yet written) above which the connection is not asked for more and
/// the client is not read from.
pub const WRITE_HIGH: usize = 64 * 1024;

/// The protocol core's settings from the generation's limits.
pub fn config(sh: &Shared) -> h2conn::Config {
    h2conn::Config {
        max_concurrent_streams: MAX_STREAMS,
        max_send_buffer_per_stream: SEND_BUF,
        idle_timeout: sh.limits.idle_timeout,
        header_read_timeout: sh.limits.header_read_timeout,
        max_glitches: MAX_GLITCHES,
        // Spares the pipeline gives back once a request's head is written (and after a
        // response's head was sent).
        header_map: codec::spare_map,
        send_queue: super::send_queues::take,
        recycle_send_queue: super::send_queues::give_back,
        ..h2conn::Config::default()
    }
}

/// A connection the HTTP/1.1 engine found speaking HTTP/2 with prior knowledge (h2c), its
/// first bytes replayed by `io`, or one that negotiated h2 over TLS: served until it ends.
/// Not an `async fn` (nor one taking the driver): its future would keep the argument beside
/// the local it is moved into, for the connection's life (the stream: over a kilobyte for
/// TLS; the driver: 2.2 KB). The block below uses the driver where it was captured.
pub fn serve<T>(sh: Arc<Shared>, ci: Arc<ConnInfo>, io: T) -> impl Future<Output = ()> + Send
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut d = Driver::new(sh, ci, io);
    async move {
        let sh = &d.sh;
        let mut shutdown = sh.shutdown.clone();
        let keep_alive = sh.limits.client_keep_alive;
        let drain = sh.limits.drain_timeout;
        let state = d.ci.state.clone();
        let peer = d.ci.peer;
        // A reload that removes the connection's listener: GOAWAY now, idle or not.
        let removed = sh.ports.removed(d.ci.listener.config.port);
        // Idle (no stream in flight, after one), it may be closed to make room at the
        // worker's connection limit (`ConnState::idle`), through `close_gracefully`.
        let _listed = sh.idle.register(state.clone());
        // Asked by the connection's own streams (the request limit, a removed listener, an
        // abusive client): seen within the turn, so the GOAWAY goes ahead of its responses.
        let mut close = std::pin::pin!(state.close_gracefully.notified());
        let ended = {
            let turns = std::future::poll_fn(|cx| d.poll(cx, Some(close.as_mut())));
            tokio::select! {
                e = turns => Some(e),
                _ = stopped(&mut shutdown) => None,
                _ = tokio::time::sleep(keep_alive) => None,
                _ = removed => {
                    tracing::debug!(%peer, "listener removed: GOAWAY");
                    None
                }
            }
        };
        // Not idle any more, whatever ends it; asked to close to make room, it was.
        let reclaimed = state.idle.closing();
        let bound = match ended {
            Some(Ended::Closed) => None,
            // The client's GOAWAY, or the core's for a connection error: what runs may finish.
            Some(Ended::GoAway(error)) => Some(if error.is_some() {
                drain.min(ABUSER_DRAIN)
            } else {
                drain
            }),
            Some(Ended::CloseAsked) | None => Some(if state.abusive.load(Relaxed) {
                d.conn.go_away_at_once();
                drain.min(ABUSER_DRAIN)
            } else if reclaimed {
                // Idle, closed to make room at the worker's connection limit: one GOAWAY with
                // the last stream id, then the close, as nginx closes its idle ones (a request
                // crossing it on the wire is not processed, and the client may retry it).
                tracing::debug!(%peer, "idle, closed to make room at the connection limit: GOAWAY");
                d.conn.go_away_at_once();
                drain
            } else {
                // Two steps: the requests already on the wire are served (RFC 9113 §6.8).
                d.conn.go_away();
                drain
            }),
        };
        if matches!(ended, Some(Ended::CloseAsked)) {
            tracing::debug!(%peer, "request limit reached, listener removed or abusive: GOAWAY");
        }
        if let Some(bound) = bound {
            d.draining = true;
            let turns = std::future::poll_fn(|cx| d.poll(cx, None));
            if tokio::time::timeout(bound, turns).await.is_err() {
                // The streams still running are dropped by `finish`: cut, not cancelled.
                state.cut_at_drain.store(true, Relaxed);
            }
        }
        finishing(d).await;
    }
}

/// The connection's end on the heap, made in a plain function: awaited inline, its future
/// (the driver moved into it, ~6 KB) would size `serve`'s state, i.e. every connection's task.
fn finishing<T>(d: Driver<T>) -> Pin<Box<impl Future<Output = ()> + Send>>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Box::pin(d.finish())
}

/// Why the turns stopped.
enum Ended {
    /// The connection is over (closed by the protocol, the client, an I/O error or a deadline).
    Closed,
    /// A GOAWAY arrived or was sent by the core (`Some`: for a connection error).
    GoAway(Option<Reason>),
    /// `close_gracefully` was notified (the turn stopped before gathering its output).
    CloseAsked,
}

struct Driver<T> {
    io: T,
    conn: Connection,
    streams: Streams,
    /// The generation new requests start in, and the connection as seen in it.
    sh: Arc<Shared>,
    ci: Arc<ConnInfo>,
    /// Output gathered; `wbuf[wpos..]` is not written yet.
    wbuf: Vec<u8>,
    wpos: usize,
    /// The TLS layer may hold written bytes until flushed.
    flush: bool,
    /// Slots to poll and to release credit for, this turn.
    poll_list: Vec<usize>,
    release_list: Vec<usize>,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    /// A write waits: the connection ends if none progresses by then.
    write_deadline: Option<Instant>,
    /// The client's frame boundaries: a frame other than DATA begun and not complete (which
    /// the core, seeing whole frames, does not time) must be complete by `head_deadline`.
    frames: Inbound,
    head_deadline: Option<Instant>,
    /// The client closed its side, or reading failed.
    eof: bool,
    /// A GOAWAY was seen and not reported yet.
    goaway: Option<Option<Reason>>,
    /// Past the first GOAWAY: further ones are not reported.
    draining: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Driver<T> {
    fn new(sh: Arc<Shared>, ci: Arc<ConnInfo>, io: T) -> Driver<T> {
        let now = Instant::now();
        let conn = Connection::new(config(&sh), now);
        let idle = sh.limits.idle_timeout;
        Driver {
            io,
            conn,
            streams: Streams::new(),
            sh,
            ci,
            wbuf: Vec::new(),
            wpos: 0,
            flush: false,
            poll_list: Vec::new(),
            release_list: Vec::new(),
            timer: Box::pin(tokio::time::sleep(idle)),
            timer_at: None,
            write_deadline: None,
            frames: Inbound::default(),
            head_deadline: None,
            eof: false,
            goaway: None,
            draining: false,
        }
    }

    fn unwritten(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Turns until nothing is left to do (`Pending`) or the connection ends. `close` (while
    /// not draining): the connection's `close_gracefully`, looked at after the streams ran
    /// (where it is notified), before their output is gathered.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        mut close: Option<Pin<&mut Notified<'_>>>,
    ) -> Poll<Ended> {
        self.streams.ready.begin();
        // Once per call and after any stream work: one look per wake-up in the common case.
        let mut close_seen = false;
        // The clock once per call (a turn loops a few times per wake-up, a clock read each
        // was one per request or more), read again every `CLOCK_TURNS` turns and after a
        // timer fired: deadlines are seconds, a turn is microseconds.
        let mut now = Instant::now();
        let mut turns = 0u32;
        loop {
            let mut progress = false;
            turns += 1;
            if turns.is_multiple_of(CLOCK_TURNS) {
                now = Instant::now();
            }
            if !self.eof && self.unwritten() < WRITE_HIGH {
                progress |= self.read(cx, now);
            }
            if self.eof {
                return Poll::Ready(Ended::Closed);
            }
            let mut worked = false;
            while let Some(ev) = self.conn.poll_event() {
                worked = true;
                self.event(ev);
            }
            self.streams
                .ready
                .take_or_sleep(&mut self.poll_list, &mut self.release_list, None);
            worked |= self.run_streams();
            progress |= worked;
            if let Some(c) = close.as_mut()
                && (worked || !close_seen)
            {
                close_seen = true;
                if c.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Ended::CloseAsked);
                }
            }
            if let Some(at) = self.conn.poll_timeout()
                && at <= now
            {
                self.conn.handle_timeout(now);
                progress = true;
            }
            while self.unwritten() < WRITE_HIGH && self.conn.poll_transmit(&mut self.wbuf) {
                progress = true;
            }
            if let Some(e) = self.goaway.take()
                && !self.draining
            {
                self.draining = true;
                return Poll::Ready(Ended::GoAway(e));
            }
            if progress {
                continue;
            }
            // Nothing more to read, handle or gather: write the batch.
            match self.write(cx, now) {
                Err(e) => {
                    tracing::debug!(peer = %self.ci.peer, error = %e, "HTTP/2 client write failed");
                    return Poll::Ready(Ended::Closed);
                }
                Ok(true) if self.conn.wants_write() || self.unwritten() > 0 => continue,
                Ok(_) => {}
            }
            if self.conn.is_closed() && self.unwritten() == 0 && !self.flush {
                return Poll::Ready(Ended::Closed);
            }
            // Going to sleep: anything woken in the meantime is handled first.
            self.streams.ready.take_or_sleep(
                &mut self.poll_list,
                &mut self.release_list,
                Some(cx.waker()),
            );
            if !self.poll_list.is_empty() || !self.release_list.is_empty() {
                continue;
            }
            match self.poll_deadlines(cx) {
                Poll::Ready(true) => return Poll::Ready(Ended::Closed),
                Poll::Ready(false) => {
                    self.streams.ready.begin();
                    now = Instant::now();
                    continue;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Reads until the socket has nothing more (or a turn's worth); whether anything came.
    /// The bytes are read into the thread's scratch buffer ([`SCRATCH`]) and handed to the
    /// core at once, so a connection holds no read buffer of its own.
    fn read(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut b) => self.read_into(cx, now, &mut b),
            // Not reached (a read hands bytes to the core and returns; nothing in between
            // reads another connection): a buffer of its own rather than a panic.
            Err(_) => self.read_into(cx, now, &mut vec![0; READ_BUF]),
        })
    }

    fn read_into(&mut self, cx: &mut Context<'_>, now: Instant, rbuf: &mut [u8]) -> bool {
        let mut any = false;
        for _ in 0..READS_PER_TURN {
            let mut rb = ReadBuf::new(rbuf);
            match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n == 0 {
                        self.eof = true;
                        return any;
                    }
                    self.frames.feed(&rbuf[..n]);
                    if !self.frames.mid_head() {
                        self.head_deadline = None;
                    } else if self.head_deadline.is_none() {
                        self.head_deadline = Some(now + self.sh.limits.header_read_timeout);
                    }
                    self.conn.recv(&rbuf[..n], now);
                    any = true;
                    if self.conn.events_waiting() > EVENTS_BEFORE_READING_ON {
                        return any;
                    }
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(peer = %self.ci.peer, error = %e, "HTTP/2 client read failed");
                    self.eof = true;
                    return any;
                }
                Poll::Pending => return any,
            }
        }
        any
    }

    /// Writes what was gathered (one call, and a flush for TLS); whether it made progress.
    fn write(&mut self, cx: &mut Context<'_>, now: Instant) -> io::Result<bool> {
        let mut progress = false;
        while self.unwritten() > 0 {
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.wpos += n;
                    self.flush = true;
                    progress = true;
                    self.write_deadline = None;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
            if self.conn.active_streams() == 0 {
                // Idle: what a large response grew goes (the core's own buffers too).
                if self.wbuf.capacity() > h2conn::IDLE_KEEP {
                    self.wbuf = Vec::new();
                }
                self.conn.shed_idle_buffers();
            }
        } else if self.wpos > self.wbuf.len() / 2 {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        if self.flush {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flush = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        if self.unwritten() > 0 || self.flush {
            self.write_deadline
                .get_or_insert(now + self.sh.limits.idle_timeout);
        } else {
            self.write_deadline = None;
        }
        Ok(progress)
    }

    /// The earliest deadline (the core's, the write's, a frame's) on the timer: `Ready(true)`
    /// when the write's or the frame's passed (the connection ends), `Ready(false)` when the
    /// core's did.
    fn poll_deadlines(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let at = [
            self.conn.poll_timeout(),
            self.write_deadline,
            self.head_deadline,
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(at) = at else {
            return Poll::Pending;
        };
        // Armed lazily: a later deadline (the keep-alive PING's moves with every read) keeps
        // the earlier timer, which then fires, finds nothing due and is armed again; only an
        // earlier one resets it (a timer reset per turn costs more than a spare wake-up).
        if self.timer_at.is_none_or(|t| t > at) {
            self.timer_at = Some(at);
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(at));
        }
        if self.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.timer_at = None;
        let now = Instant::now();
        if self.write_deadline.is_some_and(|w| w <= now) {
            tracing::debug!(peer = %self.ci.peer, "HTTP/2 client took no bytes for the idle timeout: closing");
            return Poll::Ready(true);
        }
        if self.head_deadline.is_some_and(|h| h <= now) {
            tracing::debug!(peer = %self.ci.peer, "HTTP/2 frame not complete within the header read timeout: closing");
            return Poll::Ready(true);
        }
        self.conn.handle_timeout(now);
        Poll::Ready(false)
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::Request {
                id,
                parts,
                end_stream,
                head_bytes,
            } => self.request(id, parts, end_stream, head_bytes),
            Event::Data {
                id,
                data,
                end_stream,
            } => self.data(id, data, end_stream),
            Event::Trailers { id, trailers } => {
                if let Some(idx) = self.streams.index_of(id)
                    && let Some(s) = self.streams.get_mut(idx)
                {
                    s.recv_ended = true;
                    if let Some(r) = &s.recv {
                        r.trailers(trailers);
                    }
                    self.finish_if_done(idx);
                }
            }
            Event::Reset { id, code } => {
                tracing::trace!(id, ?code, "HTTP/2 stream reset");
                if let Some(idx) = self.streams.index_of(id) {
                    self.remove_stream(idx);
                }
            }
            Event::Stalled { id } => {
                tracing::debug!(peer = %self.ci.peer, id, "HTTP/2 response held back by the client's window for the idle timeout: stream reset");
                if let Some(idx) = self.streams.index_of(id) {
                    if let Some(s) = self.streams.get_mut(idx)
                        && let Phase::Sending(body) = &mut s.phase
                    {
                        body.stalled();
                    }
                    self.remove_stream(idx);
                }
            }
            Event::Writable { id } => {
                if let Some(idx) = self.streams.index_of(id)
                    && self
                        .streams
                        .get_mut(idx)
                        .is_some_and(|s| matches!(s.phase, Phase::Sending(_)))
                {
                    self.poll_list.push(idx);
                }
            }
            Event::Refused { id, status, reason } => {
                // Counted as hyper's path counts the requests hyper answers itself (431,
                // 400); no access-log line (docs/l7.md: the core keeps no head of these).
                if let Some(status) = status {
                    self.sh.metrics.elb_status(status);
                }
                tracing::debug!(peer = %self.ci.peer, id, ?status, reason, "HTTP/2 request answered by the protocol core");
            }
            Event::GoAway { error } => {
                if error.is_some() {
                    let detail = self.conn.error_detail();
                    tracing::debug!(peer = %self.ci.peer, ?error, detail, "HTTP/2 connection error: GOAWAY");
                }
                self.goaway = Some(error);
            }
        }
    }

    /// A request's head: its future starts in the newest generation (which keeps it to its
    /// end), unless that one removed the connection's listener: then it runs in the
    /// connection's generation, and the connection ends (GOAWAY) once its streams do.
    fn request(
        &mut self,
        id: StreamId,
        parts: http::request::Parts,
        end_stream: bool,
        head_bytes: u32,
    ) {
        if let Some(n) = self.sh.newest() {
            if n.listener_on(self.ci.listener.config.port).is_some() {
                self.ci = Arc::new(self.ci.in_generation(&n));
                self.sh = n;
            } else {
                self.ci.state.close_gracefully.notify_one();
            }
        }
        let idx = self.streams.vacant();
        let (body, recv) = if end_stream {
            (RecvBody::empty(), None)
        } else {
            let declared = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let (b, r) = RecvBody::open(idx, self.streams.ready.clone(), declared);
            (b, Some(r))
        };
        let req = Request::from_parts(parts, body);
        // The box is taken first and the future written into it: `Box::pin(fut)` made the
        // future (~2 KB) on the stack and copied it in, one `memcpy` per request.
        let fut = Box::into_pin(Box::write(
            Box::new_uninit(),
            service::handle_head_in_body(self.sh.clone(), self.ci.clone(), req, head_bytes.into()),
        ));
        self.streams.insert(
            idx,
            Stream {
                id,
                phase: Phase::Handling(fut),
                recv,
                recv_ended: end_stream,
            },
        );
        self.poll_list.push(idx);
    }

    fn data(&mut self, id: StreamId, data: Bytes, end_stream: bool) {
        let n = data.len();
        let Some(idx) = self.streams.index_of(id) else {
            // The stream's work is gone: its bytes only take connection credit.
            if n > 0 {
                self.conn.release_capacity(id, n);
            }
            return;
        };
        let Some(s) = self.streams.get_mut(idx) else {
            return;
        };
        let taken = s.recv.as_ref().is_some_and(|r| r.push(data, end_stream));
        if !taken && n > 0 {
            self.conn.release_capacity(id, n);
        }
        if end_stream {
            s.recv_ended = true;
            self.finish_if_done(idx);
        }
    }

    /// Polls the slots that were woken or can send again, and hands back the credit of
    /// request bodies that were read; whether anything was looked at.
    fn run_streams(&mut self) -> bool {
        let any = !self.poll_list.is_empty() || !self.release_list.is_empty();
        while let Some(idx) = self.release_list.pop() {
            let Some(s) = self.streams.get_mut(idx) else {
                continue;
            };
            let Some(r) = &s.recv else {
                continue;
            };
            let (n, dropped) = r.take_consumed();
            if n > 0 {
                self.conn.release_capacity(s.id, n);
            }
            if dropped {
                s.recv = None;
                self.finish_if_done(idx);
            }
        }
        // In the order the streams came or were woken: the first request of a batch is the
        // first forwarded (popped from the end, a batch of 32 went out newest first).
        let mut list = std::mem::take(&mut self.poll_list);
        for idx in list.drain(..) {
            let Some((s, waker)) = self.streams.get(idx) else {
                continue;
            };
            poll_stream(&mut self.conn, s, &waker);
            self.finish_if_done(idx);
        }
        // Its room kept for the next turn (nothing queues here while it runs: wakes go to
        // `Ready`, events come before).
        self.poll_list = list;
        any
    }

    /// A stream whose response ended and whose request ended (or whose body was dropped) is
    /// over: a withheld END_STREAM goes out (the core resets a stream whose request is still
    /// coming, RFC 9113 §8.1), and the slot is freed.
    fn finish_if_done(&mut self, idx: usize) {
        let Some(s) = self.streams.get_mut(idx) else {
            return;
        };
        if request_coming(s) {
            return;
        }
        match s.phase {
            Phase::Ended => {
                let _ = self.conn.send_data(s.id, Bytes::new(), true);
            }
            Phase::Done => {}
            Phase::Handling(_) | Phase::Sending(_) => return,
        }
        self.remove_stream(idx);
    }

    /// Frees the slot of a stream that is over, or that was reset (or whose connection ends):
    /// the request body fails (its unreleased credit goes back to the connection), then the
    /// future and body are dropped where they are (the pipeline's cancel for a stream still
    /// running: a 460 log line before a response, a target connection that has the request
    /// finished in the background). Moved out first, its ~430 bytes were copied once more.
    fn remove_stream(&mut self, idx: usize) {
        let Some(s) = self.streams.get_mut(idx) else {
            return;
        };
        if let Some(r) = s.recv.take() {
            let n = r.reset();
            if n > 0 {
                self.conn.release_capacity(s.id, n);
            }
        }
        self.streams.remove(idx);
    }

    /// The connection is over: the streams still running are dropped, the rest of the
    /// output is written (briefly), the write side shut (TLS: close_notify, then FIN) and,
    /// unless the client closed first, what it still sends read away (`crate::linger`) before
    /// the socket closes, so its GOAWAY and last responses are not lost to a reset.
    async fn finish(mut self) {
        for s in self.streams.drain() {
            if let Some(r) = &s.recv {
                r.reset();
            }
            drop(s);
        }
        if self.eof {
            return;
        }
        let bounds = crate::linger::BOUNDS;
        let until = tokio::time::Instant::now() + bounds.total;
        let flushed = async {
            while self.conn.poll_transmit(&mut self.wbuf) {}
            use tokio::io::AsyncWriteExt;
            self.io.write_all(&self.wbuf[self.wpos..]).await?;
            self.io.shutdown().await
        };
        // A client that takes no bytes is not lingered on.
        let shut = matches!(
            tokio::time::timeout(Duration::from_secs(1), flushed).await,
            Ok(Ok(()))
        );
        if shut {
            // Only the socket and a buffer to read into are kept while lingering.
            let (mut io, peer) = (self.io, self.ci.peer);
            let mut rbuf = vec![0; LINGER_READ];
            let ended = crate::linger::drain(&mut io, &mut rbuf, bounds, until).await;
            tracing::trace!(%peer, ?ended, "HTTP/2 connection lingered");
        }
    }
}

/// One woken stream: its future polled (a response sends its head), or its body pulled while
/// the stream can take more.
fn poll_stream(conn: &mut Connection, s: &mut Stream, waker: &Waker) {
    let mut cx = Context::from_waker(waker);
    if let Phase::Handling(fut) = &mut s.phase {
        let Poll::Ready(Ok(resp)) = fut.as_mut().poll(&mut cx) else {
            return;
        };
        let (mut parts, mut body) = resp.into_parts();
        if parts.extensions.get::<RefusedStream>().is_some() {
            // Nothing of it went to a target: the client may send it again (RFC 9113 §8.7).
            body.refused();
            conn.reset(s.id, Reason::REFUSED_STREAM);
            // The reset ends both sides.
            s.recv_ended = true;
            s.phase = Phase::Done;
            return;
        }
        let empty = body.is_end_stream();
        let exact = body.size_hint().exact();
        let withhold = empty && request_coming(s);
        let end = empty && !withhold;
        let sent = match body.take_target_head() {
            // A target's: encoded from its bytes.
            Some(t) => head::send_target(conn, s.id, parts.status, t, exact, empty, end),
            None => {
                head::prepare(&mut parts.headers, exact, empty);
                let sent = conn.send_response(s.id, parts.status, &parts.headers, end);
                codec::recycle_headers(parts.headers);
                sent
            }
        };
        if sent.is_ok() {
            body.head_sent(conn.last_head_len() as u64);
        }
        s.phase = match sent {
            Ok(()) if !empty => Phase::Sending(body),
            Ok(()) if withhold => Phase::Ended,
            // Sent whole, or the stream is gone.
            _ => Phase::Done,
        };
    }
    let id = s.id;
    loop {
        let withhold = request_coming(s);
        let Phase::Sending(body) = &mut s.phase else {
            return;
        };
        if conn.send_capacity(id) == 0 {
            // `Event::Writable` brings it back.
            return;
        }
        let next = match Pin::new(&mut *body).poll_frame(&mut cx) {
            Poll::Pending => return,
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    let end = body.is_end_stream();
                    if data.is_empty() && !end {
                        continue;
                    }
                    match conn.send_data(id, data, end && !withhold) {
                        Err(_) => Phase::Done,
                        Ok(()) if !end => continue,
                        Ok(()) if withhold => Phase::Ended,
                        Ok(()) => Phase::Done,
                    }
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        let _ = conn.send_trailers(id, &t);
                    }
                    Phase::Done
                }
            },
            Poll::Ready(None) if withhold => Phase::Ended,
            Poll::Ready(None) => {
                let _ = conn.send_data(id, Bytes::new(), true);
                Phase::Done
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::debug!(id, error = %e, "response body failed: stream reset");
                conn.reset(id, Reason::INTERNAL_ERROR);
                // The reset ends both sides.
                s.recv_ended = true;
                Phase::Done
            }
        };
        s.phase = next;
    }
}

/// The client is still sending the request body and the body is still read (or kept).
fn request_coming(s: &Stream) -> bool {
    !s.recv_ended && s.recv.is_some()
}
