//! weir's own HTTP/2 server protocol core (RFC 9113), sans-I/O in the style of quinn-proto:
//! bytes in (`Connection::recv`), events out (`poll_event`), bytes out (`poll_transmit`), a
//! deadline (`poll_timeout` / `handle_timeout`), and the application's side (`send_response`,
//! `send_data`, `send_trailers`, `send_capacity`, `reset`, `release_capacity`, `go_away`). No
//! I/O, no tokio, no hyper, nothing from the rest of the crate (a test checks): the `h2`
//! engine's driver runs it over a socket, one state machine per connection, no task per stream.
//!
//! Modules, one concern each: `frame` (the codec), `hpack` (our decoder and our
//! encoder: why in its doc), `request` (header list → `http::request::Parts`, §8.3 checks),
//! `stream` (one stream's state and the recently closed ones), `flow` (windows and credit),
//! `glitch` (abuse accounting), `conn` (the connection's state, errors, deadlines), `recv`
//! (frame handlers), `headers` (complete header blocks), `send` (responses, transmit).
//!
//! What the connection decides by itself (the driver never sees these streams' requests, only
//! an `Event::Refused` with the status it answered, if any, to count and log):
//! - a header list over `max_header_list_size` → a `431` response (and RST_STREAM(NO_ERROR)
//!   if the request body is still coming), a glitch;
//! - CONNECT (§8.5) → a `405` response: weir does not tunnel; a CONNECT with `:scheme` or
//!   `:path` is malformed (RST_STREAM PROTOCOL_ERROR);
//! - over `max_concurrent_streams` → RST_STREAM(REFUSED_STREAM) (a glitch once the client
//!   acknowledged our SETTINGS);
//! - a malformed request (§8.1.1) → RST_STREAM(PROTOCOL_ERROR), a glitch.
//!
//! Protections (`glitch` has the accounting): rapid reset (a client reset before the response
//! finished), MadeYouReset (every stream error we send), empty DATA / CONTINUATION frames,
//! control-frame rows without progress (PING, SETTINGS, PRIORITY, idle WINDOW_UPDATE, unknown
//! types), a SETTINGS INITIAL_WINDOW_SIZE moving open streams' windows again (a frame moves
//! them once, to its last value; a stream has one `Writable` queued at most) → glitches →
//! past `max_glitches`, GOAWAY(ENHANCE_YOUR_CALM). A header block over
//! twice `max_header_list_size` bytes or with more than 32 CONTINUATION frames →
//! GOAWAY(ENHANCE_YOUR_CALM). Output: at most 64 KiB per `poll_transmit`; DATA is only framed
//! when that much is not already pending, each stream holds at most
//! `max_send_buffer_per_stream` queued (`send_capacity`); control replies (PING/SETTINGS ACK,
//! RST_STREAM) with over 1 MiB unread output → GOAWAY(ENHANCE_YOUR_CALM). Input: a frame
//! longer than our MAX_FRAME_SIZE is refused from its header (FRAME_SIZE_ERROR), so at most
//! one frame is buffered. Deadlines: a header block (or the preface and first SETTINGS) not
//! complete in `header_read_timeout` → GOAWAY(ENHANCE_YOUR_CALM); no stream for
//! `idle_timeout` → GOAWAY(NO_ERROR), `Event::GoAway { error: None }`, closed. Keep-alive
//! PINGs (as hyper's `keep_alive_interval(idle)` / `keep_alive_timeout(idle)`): with a stream
//! open and nothing read for `idle_timeout`, a PING; its ACK not in within `idle_timeout` →
//! a connection error NO_ERROR (GOAWAY(NO_ERROR), every stream `Reset`, `GoAway { error:
//! Some(NO_ERROR) }`, `error_detail` "no PING ACK within the idle timeout"); the ACK (only
//! one with our PING's data) is not chatter, and the next PING is due an idle timeout after
//! the last read. Without a stream no PING is sent: the idle GOAWAY ends the connection at
//! the same point (idle timeout after its last stream), and a PING still unanswered when the
//! last stream ends still closes it at its own deadline if that comes first. A response the
//! client's flow control holds back (its stream's window, or the connection's with bytes
//! queued, at or below 0) with no byte moving for `idle_timeout` → RST_STREAM(CANCEL),
//! `Event::Stalled` (`Connection::handle_stalls` says why and why CANCEL): answering PINGs
//! does not keep such streams, and with none left the idle GOAWAY ends the connection.
//!
//! Events, in order: `Request` before its `Data`/`Trailers`; a stream the client resets
//! before the driver polled its `Request` is dropped from the queue (no `Reset`); `Reset`
//! with NO_ERROR when the response ended before the request body (we RST_STREAM(NO_ERROR)
//! it, §8.1); on a connection error a `Reset` per open stream, then `GoAway { error }`. The
//! driver's own `go_away()` raises no event; it is §6.8's two steps: GOAWAY(2^31-1) and a
//! PING, ahead of the output not yet transmitted, streams still processed, then at the
//! PING's ACK GOAWAY(last id) (one GOAWAY with the last id would refuse the requests already
//! on the wire). Request URIs carry scheme, authority (from `:authority`, else `host`; none
//! if neither) and path; several `cookie` fields are joined.
//!
//! API changes from the first contract (source-compatible): `StreamError::NotStarted` and
//! `StreamError::AlreadyStarted` (the contract's `Closed` stays for unknown/ended streams);
//! `Connection::error_detail()` (why a connection error happened, for logs);
//! `Event::Refused` (a request answered or refused by the connection itself).
//!
//! A `host` field that contradicts `:authority` is not refused here (RFC 9113 §8.3.1 lets a
//! server treat it as malformed or not): the request goes to the driver with both, and the
//! engine-neutral service answers it 400 HostAuthorityMismatch as on hyper's path.
//!
//! Cost: one copy of the input (DATA payloads are `Bytes` slices of it), response heads
//! HPACK-encoded into a reused scratch buffer and framed into the output, one buffer for all
//! of a request's field values, no task or heap per stream beyond its state and body queue.
//! `tests::responses::cost_per_request` (ignored; `--release -- --ignored --nocapture`)
//! prints the core's time per GET → 200 exchange.
//!
//! Not built: a SETTINGS-ACK timeout (SETTINGS_TIMEOUT),
//! server push (never: RFC 9113 lets a server not push), RFC 8441 extended CONNECT.

mod conn;
mod flow;
mod frame;
mod glitch;
mod headers;
mod hpack;
mod recv;
mod request;
mod send;
mod stream;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use http::HeaderMap;
use std::collections::VecDeque;
use std::time::Duration;

pub use conn::{Connection, IDLE_KEEP};
pub use send::HeadFields;

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
    /// Where a request's header map comes from (given the fields expected): a new one by
    /// default; a driver that gets the maps back when its requests are done can hand out
    /// those (an allocation or two less per request).
    pub header_map: fn(usize) -> HeaderMap,
    /// Where a stream's send queue (its response's chunks) comes from: a new one by default
    /// (which allocates once something is queued); a driver can hand out spares given back
    /// by `recycle_send_queue` (an allocation less per response).
    pub send_queue: fn() -> VecDeque<Bytes>,
    /// Where a closed stream's send queue goes (it may still hold chunks never sent): dropped
    /// by default.
    pub recycle_send_queue: fn(VecDeque<Bytes>),
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
            header_map: HeaderMap::with_capacity,
            send_queue: VecDeque::new,
            recycle_send_queue: drop,
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
    /// `send_data`/`send_trailers` before `send_response`.
    #[error("no response head was sent on the stream")]
    NotStarted,
    /// A second `send_response`.
    #[error("the stream's response head was already sent")]
    AlreadyStarted,
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
        /// The header block's size as received: its HPACK bytes (the HEADERS and
        /// CONTINUATION fragments, without padding or priority fields).
        head_bytes: u32,
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
    /// The connection reset the stream (RST_STREAM(CANCEL)): its response was held back by
    /// the client's flow control (a window at or below 0) with no byte moving for
    /// `idle_timeout`. Drop the stream's work as for `Reset`; the client did not cancel it.
    Stalled { id: StreamId },
    /// The connection is ending (ours or the peer's); the error code of a connection error.
    GoAway { error: Option<Reason> },
    /// A request the connection answered or refused by itself (the driver never gets its
    /// `Request`): `status` when it sent a response (431, 405), `None` for a RST_STREAM
    /// (REFUSED_STREAM over the concurrency limit, PROTOCOL_ERROR for a malformed request);
    /// `reason` says why, for logs.
    Refused {
        id: StreamId,
        status: Option<u16>,
        reason: &'static str,
    },
}
