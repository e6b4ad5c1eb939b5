//! The connection: its state, construction, connection errors, deadlines, and the public
//! API's entry points. Receiving frames is in `recv.rs`, the response side and the transmit
//! scheduler in `send.rs`, flow-control credit in `flow.rs`.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use bytes::BytesMut;

use super::frame::{self, kind, setting};
use super::glitch::Glitches;
use super::hpack;
use super::stream::{Closed, Recent, Stall, Stream};
use super::{Config, Event, Reason, StreamId};

/// Output bytes not yet taken by `poll_transmit` past which a control reply (PING or
/// SETTINGS ACK, RST_STREAM) means the client floods without reading: GOAWAY.
pub(super) const MAX_PENDING_OUT: usize = 1 << 20;
/// At most this much output per `poll_transmit` call.
pub(super) const CHUNK: usize = 64 << 10;
/// CONTINUATION frames allowed in one header block.
pub(super) const MAX_CONTINUATIONS: u32 = 32;
/// The opaque data of the graceful end's PING (keep-alive PINGs count up from 1).
pub(super) const GOAWAY_PING: [u8; 8] = *b"h2-drain";

/// Stream ids hashed by one multiply (Fibonacci hashing) rather than SipHash: the table
/// holds at most `max_concurrent_streams` entries, so a client choosing colliding ids gains
/// next to nothing, and every frame pays for the hash.
#[derive(Default, Clone, Copy)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = ((self.0 << 8) | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

pub(super) type Streams = HashMap<StreamId, Stream, BuildHasherDefault<IdHasher>>;

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Matching the client preface; bytes matched so far.
    Preface(usize),
    /// The preface is in; the next frame must be the client's SETTINGS.
    FirstSettings,
    Open,
    /// A connection error or the idle timeout: GOAWAY queued, input ignored.
    Closed,
}

/// Buffer capacity an idle connection keeps (`Connection::shed_idle_buffers`): what a run of
/// small requests and responses needs, so they do not allocate anew each time.
pub const IDLE_KEEP: usize = 4096;
/// The event queue's room (232-byte slots) past which a drained queue gives it back, down to
/// [`EVENTS_KEEP`]: a burst of small frames (1-byte DATA are ten bytes each) grew it to
/// thousands of slots, kept for the connection's life. Far above what 128 streams' turns need,
/// so a busy connection does not shrink and grow it turn after turn (at 64 it did, under
/// `h2load -m32`: +270 instructions per request in the allocator; so did giving it back
/// whenever the connection had no stream for a moment).
const EVENTS_SHRINK_OVER: usize = 1024;
const EVENTS_KEEP: usize = 256;

/// A header block waiting for its CONTINUATION frames.
pub(super) struct Block {
    pub id: StreamId,
    pub end_stream: bool,
    pub self_dependent: bool,
    pub buf: Vec<u8>,
    pub frames: u32,
    pub started: Instant,
}

/// A connection error (§5.4.1): the GOAWAY code and why, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("HTTP/2 connection error {reason:?}: {why}")]
pub(super) struct ConnError {
    pub reason: Reason,
    pub why: &'static str,
}

pub(super) fn err(reason: Reason, why: &'static str) -> ConnError {
    ConnError { reason, why }
}

pub(super) type Res = Result<(), ConnError>;

/// One HTTP/2 server connection's protocol state (see the module doc).
pub struct Connection {
    pub(super) cfg: Config,
    pub(super) phase: Phase,
    pub(super) inbuf: BytesMut,
    /// `inbuf` grew past [`IDLE_KEEP`] (a large frame) since it was last shed.
    pub(super) inbuf_large: bool,
    pub(super) dec: hpack::Decoder,
    pub(super) enc: hpack::Encoder,
    pub(super) streams: Streams,
    pub(super) recent: Recent,
    /// The highest client stream id opened (or refused, or ignored).
    pub(super) last_id: StreamId,
    pub(super) block: Option<Block>,
    pub(super) events: VecDeque<Event>,
    pub(super) out: Vec<u8>,
    pub(super) out_pos: usize,
    /// Where in `out` the first whole frame not yet taken by `poll_transmit` starts
    /// (`out_pos`, or past it when a transmit ended inside a frame): the graceful GOAWAY goes
    /// in there, ahead of the responses not yet handed out.
    pub(super) out_frame: usize,
    pub(super) scratch: Vec<u8>,
    /// The size of the last response head queued (its header block's HPACK bytes).
    pub(super) head_sent: usize,
    /// Where decoded header values are copied (`request::Fields`): shared by the requests of
    /// a run, dropped when the connection is idle (`shed_idle_buffers`).
    pub(super) arena: BytesMut,
    /// Streams with something to write, round robin.
    pub(super) order: VecDeque<StreamId>,
    pub(super) peer_max_frame: usize,
    pub(super) peer_initial_window: i64,
    pub(super) conn_send_window: i64,
    pub(super) conn_recv_window: i64,
    pub(super) conn_unreleased: u64,
    pub(super) settings_acked: bool,
    pub(super) settings_received: u32,
    /// SETTINGS frames whose new initial window moved open streams' windows.
    pub(super) window_moves: u32,
    /// The GOAWAY with the last stream id processed is sent: later streams are ignored.
    pub(super) goaway_sent: bool,
    /// The first step of the graceful end (GOAWAY(2^31-1) and a PING) is sent, the PING's ACK
    /// not received yet: streams are still processed.
    pub(super) goaway_ping: bool,
    pub(super) peer_goaway: bool,
    pub(super) glitches: Glitches,
    pub(super) now: Instant,
    pub(super) started: Instant,
    pub(super) idle_since: Instant,
    /// When bytes last came from the client (keep-alive PINGs count from it).
    pub(super) last_read: Instant,
    /// Our keep-alive PING waiting for its ACK: when it was sent.
    pub(super) ping_sent: Option<Instant>,
    /// Keep-alive PINGs sent (the opaque data of the last one).
    pub(super) pings: u64,
    /// Streams (0: the connection window) seen held back by flow control and not stamped yet
    /// (`Stall::Noted`): at most one entry per stall begun since the last `handle_timeout`,
    /// which `poll_timeout` makes due at once while any wait.
    pub(super) stall_new: Vec<StreamId>,
    /// Responses held back by the connection window (some stream has bytes queued, the
    /// window is at or below 0), and since when.
    pub(super) conn_stall: Stall,
    /// The earliest stamped stall's end (a stall that ended since leaves it early: the
    /// sweep then finds nothing due and sets the next).
    pub(super) stall_check: Option<Instant>,
    pub(super) error: Option<ConnError>,
}

impl Connection {
    /// A new connection; queues our SETTINGS (and the connection WINDOW_UPDATE). Out of range
    /// values in `cfg` are clamped to what RFC 9113 allows.
    pub fn new(cfg: Config, now: Instant) -> Self {
        let cfg = clamp(cfg);
        let mut out = Vec::with_capacity(128);
        frame::write_settings(
            &mut out,
            &[
                (setting::MAX_CONCURRENT_STREAMS, cfg.max_concurrent_streams),
                (setting::INITIAL_WINDOW_SIZE, cfg.initial_window_size),
                (setting::MAX_FRAME_SIZE, cfg.max_frame_size),
                (setting::MAX_HEADER_LIST_SIZE, cfg.max_header_list_size),
                (setting::NO_RFC7540_PRIORITIES, 1),
            ],
        );
        let extra = cfg.connection_window - frame::DEFAULT_WINDOW;
        if extra > 0 {
            frame::write_window_update(&mut out, 0, extra);
        }
        let ring = (2 * cfg.max_concurrent_streams as usize).clamp(64, 1024);
        Connection {
            phase: Phase::Preface(0),
            inbuf: BytesMut::new(),
            inbuf_large: false,
            dec: hpack::Decoder::new(),
            enc: hpack::Encoder::new(),
            streams: Streams::default(),
            recent: Recent::new(ring),
            last_id: 0,
            block: None,
            events: VecDeque::new(),
            out,
            out_pos: 0,
            out_frame: 0,
            scratch: Vec::new(),
            head_sent: 0,
            arena: BytesMut::new(),
            order: VecDeque::new(),
            peer_max_frame: frame::DEFAULT_MAX_FRAME_SIZE as usize,
            peer_initial_window: i64::from(frame::DEFAULT_WINDOW),
            conn_send_window: i64::from(frame::DEFAULT_WINDOW),
            conn_recv_window: i64::from(cfg.connection_window),
            conn_unreleased: 0,
            settings_acked: false,
            settings_received: 0,
            window_moves: 0,
            goaway_sent: false,
            goaway_ping: false,
            peer_goaway: false,
            glitches: Glitches::new(cfg.max_glitches),
            now,
            started: now,
            idle_since: now,
            last_read: now,
            ping_sent: None,
            pings: 0,
            stall_new: Vec::new(),
            conn_stall: Stall::None,
            stall_check: None,
            error: None,
            cfg,
        }
    }

    /// Bytes read from the client, in any split (a partial frame waits for the rest; a frame
    /// longer than our SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR as soon as its header is in).
    pub fn recv(&mut self, data: &[u8], now: Instant) {
        self.now = now;
        if self.phase == Phase::Closed {
            return;
        }
        if !data.is_empty() {
            self.last_read = now;
        }
        self.inbuf.extend_from_slice(data);
        self.inbuf_large |= self.inbuf.capacity() > IDLE_KEEP;
        if let Err(e) = self.process() {
            self.conn_error(e);
        }
        if self.phase == Phase::Closed {
            self.inbuf = BytesMut::new();
        }
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        let Some(e) = self.events.pop_front() else {
            if self.events.capacity() > EVENTS_SHRINK_OVER {
                self.events.shrink_to(EVENTS_KEEP);
            }
            return None;
        };
        if let Event::Writable { id } = e
            && let Some(s) = self.streams.get_mut(&id)
        {
            s.writable_queued = false;
        }
        Some(e)
    }

    /// The next deadline `handle_timeout` should be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Closed => None,
            Phase::Preface(_) | Phase::FirstSettings => {
                Some(self.started + self.cfg.header_read_timeout)
            }
            Phase::Open => [
                self.header_deadline(),
                self.idle_deadline(),
                self.ping_deadline(),
                self.ping_ack_deadline(),
                self.stall_deadline(),
            ]
            .into_iter()
            .flatten()
            .min(),
        }
    }

    /// Applies the deadlines that passed by `now`: a header block (or the preface and first
    /// SETTINGS) not finished within `header_read_timeout` is a connection error
    /// ENHANCE_YOUR_CALM; our keep-alive PING not acknowledged within `idle_timeout` is a
    /// connection error NO_ERROR (GOAWAY, streams reset, closed); no stream for `idle_timeout`
    /// is GOAWAY(NO_ERROR), then closed; a stream open and nothing read for `idle_timeout`
    /// sends a keep-alive PING; a response held back by the client's flow control for
    /// `idle_timeout` is reset (`handle_stalls`).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let due = |d: Option<Instant>| d.is_some_and(|at| at <= now);
        match self.phase {
            Phase::Closed => return,
            Phase::Preface(_) | Phase::FirstSettings => {
                if now >= self.started + self.cfg.header_read_timeout {
                    self.conn_error(err(Reason::ENHANCE_YOUR_CALM, "header read timeout"));
                }
                return;
            }
            Phase::Open => {}
        }
        // First: a stream reset here may leave the connection without streams, which the
        // keep-alive PING below then no longer keeps open.
        self.handle_stalls(now);
        if due(self.header_deadline()) {
            self.conn_error(err(Reason::ENHANCE_YOUR_CALM, "header read timeout"));
        } else if due(self.ping_ack_deadline()) {
            self.conn_error(err(Reason::NO_ERROR, "no PING ACK within the idle timeout"));
        } else if due(self.idle_deadline()) {
            frame::write_goaway(&mut self.out, self.last_id, Reason::NO_ERROR.0);
            self.goaway_sent = true;
            self.phase = Phase::Closed;
            self.events.push_back(Event::GoAway { error: None });
        } else if due(self.ping_deadline()) {
            self.pings += 1;
            let opaque = self.ping_opaque();
            frame::write_ping(&mut self.out, &opaque);
            self.ping_sent = Some(now);
        }
    }

    /// The opaque data of our last keep-alive PING.
    pub(super) fn ping_opaque(&self) -> [u8; 8] {
        self.pings.to_be_bytes()
    }

    /// A header block begun: its end is due.
    fn header_deadline(&self) -> Option<Instant> {
        let b = self.block.as_ref()?;
        Some(b.started + self.cfg.header_read_timeout)
    }

    /// No stream (and no header block coming): the connection ends.
    fn idle_deadline(&self) -> Option<Instant> {
        (self.streams.is_empty() && self.block.is_none())
            .then(|| self.idle_since + self.cfg.idle_timeout)
    }

    /// A stream open and nothing read for the idle timeout: a keep-alive PING (one at a time;
    /// without streams the idle deadline ends the connection instead).
    fn ping_deadline(&self) -> Option<Instant> {
        (self.ping_sent.is_none() && !self.streams.is_empty())
            .then(|| self.last_read + self.cfg.idle_timeout)
    }

    /// Our PING's ACK is due within the idle timeout.
    fn ping_ack_deadline(&self) -> Option<Instant> {
        Some(self.ping_sent? + self.cfg.idle_timeout)
    }

    /// Stalls to stamp (due at once), else the earliest stall's end.
    fn stall_deadline(&self) -> Option<Instant> {
        if self.stall_new.is_empty() {
            self.stall_check
        } else {
            Some(self.now)
        }
    }

    /// A response the client's flow control holds back: no byte of it moved for
    /// `idle_timeout` while the window it needs (its stream's, or the connection's with bytes
    /// queued) stayed at or below 0 → RST_STREAM(CANCEL), `Event::Stalled`. This is ALB's
    /// "no data moved for the idle timeout", per stream: the keep-alive PING's ACK proves the
    /// client is there, not that it takes the response, and a stream waiting on a window has
    /// no socket write for the driver's write deadline to time; each held a target
    /// connection for as long as the client answered PINGs. nginx resets such a stream at
    /// `send_timeout` (with PROTOCOL_ERROR, its code for any timed-out stream); CANCEL here:
    /// a window kept at 0 breaks no rule of the protocol (so not FLOW_CONTROL_ERROR nor
    /// PROTOCOL_ERROR), weir did not fail (not INTERNAL_ERROR), it gives up on a response
    /// nobody takes — RFC 9113 §7's "the stream is no longer needed". Any byte written
    /// (a WINDOW_UPDATE letting even one through) ends the stall: slow is not stalled.
    ///
    /// Cost: none on a stream that is never held back; a stall begun costs an entry in
    /// `stall_new` and a stamp; the sweep over the streams runs at a stall's end, at most
    /// once per stall begun (an early `stall_check` finds the next one).
    pub(super) fn handle_stalls(&mut self, now: Instant) {
        let idle = self.cfg.idle_timeout;
        let earlier = |a: Option<Instant>, b: Instant| Some(a.map_or(b, |a| a.min(b)));
        for id in std::mem::take(&mut self.stall_new) {
            let stall = if id == 0 {
                &mut self.conn_stall
            } else if let Some(s) = self.streams.get_mut(&id) {
                &mut s.stall
            } else {
                continue;
            };
            if *stall == Stall::Noted {
                *stall = Stall::Since(now);
                self.stall_check = earlier(self.stall_check, now + idle);
            }
        }
        if self.stall_check.is_none_or(|at| at > now) {
            return;
        }
        let cw = self.conn_send_window;
        let ended = |since: Instant| since + idle <= now;
        let conn_due = match self.conn_stall {
            Stall::Since(t) if cw <= 0 => ended(t),
            Stall::Since(_) => {
                self.conn_stall = Stall::None;
                false
            }
            _ => false,
        };
        let mut next = match self.conn_stall {
            Stall::Since(t) if !conn_due => Some(t + idle),
            _ => None,
        };
        let mut due = Vec::new();
        for (&id, s) in self.streams.iter_mut() {
            if let Stall::Since(t) = s.stall {
                if !s.window_blocked() {
                    s.stall = Stall::None;
                } else if ended(t) {
                    due.push(id);
                    continue;
                } else {
                    next = earlier(next, t + idle);
                }
            }
            // Held back by the connection window: everything queued waits on it.
            if conn_due && s.queued > 0 {
                due.push(id);
            }
        }
        if conn_due {
            self.conn_stall = Stall::None;
        }
        self.stall_check = next;
        due.sort_unstable();
        for id in due {
            if self.remove_stream(id, Closed::ByUs).is_some() {
                frame::write_rst(&mut self.out, id, Reason::CANCEL.0);
                self.events.push_back(Event::Stalled { id });
            }
        }
    }

    /// A response seen held back by its stream's window (`id`) or, with `id` 0, by the
    /// connection's: stamped at the next `handle_timeout` unless already.
    pub(super) fn note_stall(&mut self, id: StreamId) {
        let stall = if id == 0 {
            &mut self.conn_stall
        } else if let Some(s) = self.streams.get_mut(&id) {
            &mut s.stall
        } else {
            return;
        };
        if *stall == Stall::None {
            *stall = Stall::Noted;
            self.stall_new.push(id);
        }
    }

    /// Graceful end in two steps (RFC 9113 §6.8): GOAWAY(2^31-1, NO_ERROR) and a PING; the
    /// streams the client sent before it saw that GOAWAY still arrive and are processed; at the
    /// PING's ACK (every such stream read by then) GOAWAY(last accepted id, NO_ERROR), later
    /// streams are not processed, the open ones finish. A single GOAWAY with the last id would
    /// make the client fail the streams already on the wire (REFUSED_STREAM). (No
    /// `Event::GoAway` for this one: the driver asked.)
    ///
    /// The first GOAWAY and its PING go ahead of every frame not yet taken by `poll_transmit`
    /// (after a frame or header block a transmit began): a client that reads a response
    /// before the GOAWAY may open a request in the stream slot it frees, and then may not send
    /// it (RFC 9113 §6.8: no new streams after a GOAWAY; nghttp2 fails it with REFUSED_STREAM,
    /// h2load counts it failed), as seen in e2e_reload's storm.
    pub fn go_away(&mut self) {
        if self.phase == Phase::Closed || self.goaway_sent || self.goaway_ping {
            return;
        }
        let mut first = Vec::with_capacity(2 * frame::HEAD_LEN + 16);
        frame::write_goaway(&mut first, frame::MAX_STREAM_ID, Reason::NO_ERROR.0);
        frame::write_ping(&mut first, &GOAWAY_PING);
        let at = self.next_frame_outside_a_block();
        self.out.splice(at..at, first);
        self.goaway_ping = true;
    }

    /// The first frame start in the untaken output that is not a CONTINUATION (a header block's
    /// frames must stay together, §6.10), or the end of the output.
    fn next_frame_outside_a_block(&self) -> usize {
        let mut at = self.out_frame;
        while at + frame::HEAD_LEN <= self.out.len() && self.out[at + 3] == kind::CONTINUATION {
            at += frame::HEAD_LEN + frame::Head::parse(&self.out[at..]).len;
        }
        at.min(self.out.len())
    }

    /// GOAWAY(last accepted id, NO_ERROR) at once, without waiting for a PING's ACK (for an
    /// abusive client: its streams on the wire are not processed).
    pub fn go_away_at_once(&mut self) {
        self.goaway_ping = true;
        self.goaway_acked();
    }

    /// The ACK of the graceful end's PING: its second GOAWAY, with the last stream id.
    pub(super) fn goaway_acked(&mut self) {
        if !self.goaway_ping {
            return;
        }
        self.goaway_ping = false;
        if self.phase == Phase::Closed || self.goaway_sent {
            return;
        }
        frame::write_goaway(&mut self.out, self.last_id, Reason::NO_ERROR.0);
        self.goaway_sent = true;
    }

    /// Events waiting for `poll_event`: a driver reading on while many wait would let one
    /// turn's reads of small frames pile up thousands of them.
    pub fn events_waiting(&self) -> usize {
        self.events.len()
    }

    /// Nothing more to do: close the socket once the transmit is drained.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
            || ((self.goaway_sent || self.peer_goaway)
                && self.streams.is_empty()
                && self.block.is_none())
    }

    /// Streams open or half-closed (request or response not finished).
    pub fn active_streams(&self) -> usize {
        self.streams.len()
    }

    /// Lets go of the header-value arena, and of the buffers a large frame or response grew
    /// (over [`IDLE_KEEP`]), once the connection is idle: no stream, nothing left to hand
    /// out. The driver calls it when it has written everything. Without it, one 6 KB header
    /// or response kept ~13 KB on the connection for its life (`tests/idle_memory.rs`); a
    /// busy connection keeps its buffers.
    pub fn shed_idle_buffers(&mut self) {
        if !self.streams.is_empty() || self.unsent() > 0 {
            return;
        }
        // The arena goes whatever its size: a run of requests shares it, an idle one none.
        self.arena = BytesMut::new();
        if self.inbuf_large && self.inbuf.is_empty() {
            self.inbuf = BytesMut::new();
            self.inbuf_large = false;
        }
        if self.out.capacity() > IDLE_KEEP {
            self.out = Vec::new();
            self.out_pos = 0;
            self.out_frame = 0;
        }
        if self.scratch.capacity() > IDLE_KEEP {
            self.scratch = Vec::new();
        }
    }

    /// Why the connection failed (a connection error's cause), for logs.
    pub fn error_detail(&self) -> Option<&'static str> {
        self.error.map(|e| e.why)
    }

    /// A connection error: GOAWAY with its code, every stream reset, input ignored.
    pub(super) fn conn_error(&mut self, e: ConnError) {
        if self.phase == Phase::Closed {
            return;
        }
        frame::write_goaway(&mut self.out, self.last_id, e.reason.0);
        self.goaway_sent = true;
        self.phase = Phase::Closed;
        self.error = Some(e);
        self.block = None;
        self.order.clear();
        let mut ids: Vec<StreamId> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        self.streams.clear();
        for id in ids {
            self.events.push_back(Event::Reset { id, code: e.reason });
        }
        self.events.push_back(Event::GoAway {
            error: Some(e.reason),
        });
    }

    /// Forgets a stream: its held receive bytes go back to the connection window.
    pub(super) fn remove_stream(&mut self, id: StreamId, how: Closed) -> Option<Stream> {
        let mut s = self.streams.remove(&id)?;
        self.recent.record(id, how);
        self.credit_conn(s.recv_held + u64::from(s.recv_unreleased));
        (self.cfg.recycle_send_queue)(std::mem::take(&mut s.queue));
        if self.streams.is_empty() {
            self.idle_since = self.now;
        }
        Some(s)
    }

    /// Output not yet taken by `poll_transmit`.
    pub(super) fn unsent(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Room for a control reply, or the client floods without reading.
    pub(super) fn control_room(&self) -> Res {
        if self.unsent() > MAX_PENDING_OUT {
            return Err(err(
                Reason::ENHANCE_YOUR_CALM,
                "control replies pile up unread",
            ));
        }
        Ok(())
    }
}

/// `cfg` within the RFC's bounds.
fn clamp(mut cfg: Config) -> Config {
    let max_window = frame::MAX_WINDOW as u32;
    cfg.max_frame_size = cfg
        .max_frame_size
        .clamp(frame::DEFAULT_MAX_FRAME_SIZE, frame::MAX_FRAME_SIZE_LIMIT);
    cfg.initial_window_size = cfg.initial_window_size.min(max_window);
    cfg.connection_window = cfg
        .connection_window
        .clamp(frame::DEFAULT_WINDOW, max_window);
    cfg.max_header_list_size = cfg.max_header_list_size.max(1024);
    cfg
}
