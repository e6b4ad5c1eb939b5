//! weir's own HTTP/2 server protocol core (RFC 9113), sans-I/O in the style of quinn-proto:
//! bytes in (`Connection::recv`), events out (`poll_event`), bytes out (`poll_transmit`), a
//! deadline (`poll_timeout` / `handle_timeout`), and the application's side (`send_response`,
//! `send_data`, `send_trailers`, `reset`, `release_capacity`, `go_away`). No I/O, no tokio, no
//! hyper, nothing from the rest of the crate: a driver (the `h2` engine) runs it over a socket.
//!
//! Work in progress: the public API is fixed; the implementation follows.

use std::time::{Duration, Instant};

/// A stream identifier (31 bits; client streams are odd).
pub type StreamId = u32;

/// The connection's limits and timeouts.
#[derive(Debug, Clone)]
pub struct Config {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise and enforce.
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE we advertise: each stream's receive window.
    pub initial_window_size: u32,
    /// The connection's receive window (raised from 65,535 by a WINDOW_UPDATE on stream 0).
    pub connection_window: u32,
    /// SETTINGS_MAX_FRAME_SIZE we advertise (the largest frame we accept).
    pub max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce (decoded, RFC 9113 §6.5.2 sizes).
    pub max_header_list_size: u32,
    /// Response bytes queued per stream before `send_capacity` reports 0.
    pub max_send_buffer_per_stream: usize,
    /// No open stream for this long: GOAWAY(NO_ERROR), then closed.
    pub idle_timeout: Duration,
    /// A header block (or the client preface) started and not finished within this: GOAWAY.
    pub header_read_timeout: Duration,
    /// Glitches (rapid resets, stream errors we answer, flood frames) before
    /// GOAWAY(ENHANCE_YOUR_CALM).
    pub max_glitches: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_concurrent_streams: 128,
            initial_window_size: 1 << 20,
            connection_window: 4 << 20,
            max_frame_size: 16_384,
            max_header_list_size: 64 << 10,
            max_send_buffer_per_stream: 64 << 10,
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            max_glitches: 100,
        }
    }
}

/// An HTTP/2 error code (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reason(pub u32);

impl Reason {
    pub const NO_ERROR: Reason = Reason(0x0);
    pub const PROTOCOL_ERROR: Reason = Reason(0x1);
    pub const INTERNAL_ERROR: Reason = Reason(0x2);
    pub const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    pub const SETTINGS_TIMEOUT: Reason = Reason(0x4);
    pub const STREAM_CLOSED: Reason = Reason(0x5);
    pub const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    pub const REFUSED_STREAM: Reason = Reason(0x7);
    pub const CANCEL: Reason = Reason(0x8);
    pub const COMPRESSION_ERROR: Reason = Reason(0x9);
    pub const CONNECT_ERROR: Reason = Reason(0xa);
    pub const ENHANCE_YOUR_CALM: Reason = Reason(0xb);
    pub const INADEQUATE_SECURITY: Reason = Reason(0xc);
    pub const HTTP_1_1_REQUIRED: Reason = Reason(0xd);
}

/// Why the application's call on a stream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The stream is unknown, reset, or its response already ended.
    #[error("the stream is closed")]
    Closed,
}

/// What the connection tells the driver.
#[derive(Debug)]
pub enum Event {
    /// A request's head: method, URI with scheme, authority and path, headers without
    /// pseudo-headers, version HTTP/2.
    Request {
        id: StreamId,
        parts: http::request::Parts,
        end_stream: bool,
    },
    /// Request body bytes (hand back with `release_capacity` once consumed).
    Data {
        id: StreamId,
        data: bytes::Bytes,
        end_stream: bool,
    },
    /// The request's trailers (they end the request).
    Trailers {
        id: StreamId,
        trailers: http::HeaderMap,
    },
    /// The client reset the stream, or the connection died: drop the stream's work.
    Reset { id: StreamId, code: Reason },
    /// `send_capacity(id)` became > 0 again.
    Writable { id: StreamId },
    /// The connection is ending (ours or the peer's); the error code of a connection error.
    GoAway { error: Option<Reason> },
}

/// One HTTP/2 server connection's protocol state.
pub struct Connection {
    _cfg: Config,
}

impl Connection {
    /// A new connection; queues our SETTINGS (and the connection WINDOW_UPDATE).
    pub fn new(cfg: Config, now: Instant) -> Self {
        let _ = now;
        unimplemented!("h2conn: work in progress {:?}", cfg.max_frame_size)
    }
    /// Bytes read from the client, in any split.
    pub fn recv(&mut self, data: &[u8], now: Instant) {
        let _ = (data, now);
        unimplemented!()
    }
    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        unimplemented!()
    }
    /// Appends bytes to write to `out`; true if it appended any.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        let _ = out;
        unimplemented!()
    }
    /// Whether `poll_transmit` has bytes to give.
    pub fn wants_write(&self) -> bool {
        unimplemented!()
    }
    /// The next deadline `handle_timeout` should be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        unimplemented!()
    }
    /// Applies the deadlines that passed by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        unimplemented!()
    }
    /// Queues a response head.
    pub fn send_response(
        &mut self,
        id: StreamId,
        status: http::StatusCode,
        headers: &http::HeaderMap,
        end_stream: bool,
    ) -> Result<(), StreamError> {
        let _ = (id, status, headers, end_stream);
        unimplemented!()
    }
    /// Queues response body bytes (flow control is applied when transmitting).
    pub fn send_data(
        &mut self,
        id: StreamId,
        data: bytes::Bytes,
        end_stream: bool,
    ) -> Result<(), StreamError> {
        let _ = (id, data, end_stream);
        unimplemented!()
    }
    /// Queues the response's trailers (they end the stream).
    pub fn send_trailers(
        &mut self,
        id: StreamId,
        trailers: &http::HeaderMap,
    ) -> Result<(), StreamError> {
        let _ = (id, trailers);
        unimplemented!()
    }
    /// Bytes the driver may still queue on the stream now; 0 → wait for `Event::Writable`.
    pub fn send_capacity(&self, id: StreamId) -> usize {
        let _ = id;
        unimplemented!()
    }
    /// RST_STREAM from us.
    pub fn reset(&mut self, id: StreamId, code: Reason) {
        let _ = (id, code);
        unimplemented!()
    }
    /// The driver consumed `n` request-body bytes of the stream: WINDOW_UPDATEs, batched.
    pub fn release_capacity(&mut self, id: StreamId, n: usize) {
        let _ = (id, n);
        unimplemented!()
    }
    /// Graceful end: GOAWAY(last accepted id, NO_ERROR), no new streams, existing ones finish.
    pub fn go_away(&mut self) {
        unimplemented!()
    }
    /// Nothing more to do: close the socket once the transmit is drained.
    pub fn is_closed(&self) -> bool {
        unimplemented!()
    }
    /// Streams open (request or response not finished).
    pub fn active_streams(&self) -> usize {
        unimplemented!()
    }
}
