//! The response side: heads encoded at once into the output (HPACK's order is the output's
//! order), bodies queued per stream and written by `poll_transmit` as DATA frames within
//! both send windows and the client's MAX_FRAME_SIZE, streams taking turns (round robin),
//! trailers encoded when their stream's data is out. Connection-specific fields in a response
//! head (`connection`, `keep-alive`, `proxy-connection`, `transfer-encoding`, `upgrade`, `te`)
//! are left out: HTTP/2 forbids them (§8.2.2) and an HTTP/1.1 target may send them.

use bytes::Bytes;
use http::HeaderMap;

use super::conn::{CHUNK, Connection, Phase};
use super::frame::{self, flag, kind};
use super::hpack::Encoder;
use super::stream::{Closed, Send, Stall};
use super::{Event, Reason, StreamError, StreamId};

impl Connection {
    /// Queues a response head.
    pub fn send_response(
        &mut self,
        id: StreamId,
        status: http::StatusCode,
        headers: &HeaderMap,
        end_stream: bool,
    ) -> Result<(), StreamError> {
        self.send_response_with(id, status, end_stream, |f| {
            for (name, value) in headers {
                f.field(name.as_str().as_bytes(), value.as_bytes());
            }
        })
    }

    /// Queues a response head whose fields `fields` hands to the [`HeadFields`] it is given
    /// (no `HeaderMap` needed: a proxy can encode a head straight from another form of it).
    pub fn send_response_with(
        &mut self,
        id: StreamId,
        status: http::StatusCode,
        end_stream: bool,
        fields: impl FnOnce(&mut HeadFields<'_>),
    ) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Closed)?;
        if s.send != Send::Idle {
            return Err(StreamError::AlreadyStarted);
        }
        s.send = if end_stream { Send::Done } else { Send::Open };
        self.scratch.clear();
        self.enc.begin(&mut self.scratch);
        self.enc.status(status.as_u16(), &mut self.scratch);
        fields(&mut HeadFields {
            enc: &mut self.enc,
            out: &mut self.scratch,
        });
        frame::write_header_block(
            &mut self.out,
            id,
            end_stream,
            &self.scratch,
            self.peer_max_frame,
        );
        self.head_sent = self.scratch.len();
        if end_stream {
            self.maybe_finish(id);
        } else if s.send_window <= 0 {
            // The body cannot move before the client opens the window (the head can).
            self.note_stall(id);
        }
        Ok(())
    }

    /// Queues response body bytes (flow control is applied when transmitting). Bytes beyond
    /// `send_capacity` are accepted too: the capacity is the driver's back-pressure signal.
    pub fn send_data(
        &mut self,
        id: StreamId,
        data: Bytes,
        end_stream: bool,
    ) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Closed)?;
        match s.send {
            Send::Idle => return Err(StreamError::NotStarted),
            Send::Open => {}
            Send::Ending | Send::Done => return Err(StreamError::Closed),
        }
        if !data.is_empty() {
            s.queued += data.len();
            s.queue.push_back(data);
        }
        if end_stream {
            s.send = Send::Ending;
        }
        self.schedule(id);
        Ok(())
    }

    /// Queues the response's trailers (they end the stream, after the queued data).
    pub fn send_trailers(&mut self, id: StreamId, trailers: &HeaderMap) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Closed)?;
        match s.send {
            Send::Idle => return Err(StreamError::NotStarted),
            Send::Open => {}
            Send::Ending | Send::Done => return Err(StreamError::Closed),
        }
        s.trailers = Some(Box::new(trailers.clone()));
        s.send = Send::Ending;
        self.schedule(id);
        Ok(())
    }

    /// The size of the last response head queued (`send_response`, `send_response_with`):
    /// its header block's HPACK bytes, as they go out in HEADERS and CONTINUATION frames.
    pub fn last_head_len(&self) -> usize {
        self.head_sent
    }

    /// Bytes the driver may still queue on the stream now: the stream's send window beyond
    /// what is queued, at most `max_send_buffer_per_stream` queued; 0 → wait for
    /// `Event::Writable` (also 0 for a stream unknown or whose response ended).
    pub fn send_capacity(&self, id: StreamId) -> usize {
        self.streams
            .get(&id)
            .map_or(0, |s| s.capacity(self.cfg.max_send_buffer_per_stream))
    }

    /// RST_STREAM from us (no event: the driver asked). Unknown streams are ignored.
    pub fn reset(&mut self, id: StreamId, code: Reason) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.remove_stream(id, Closed::ByUs).is_some() {
            frame::write_rst(&mut self.out, id, code.0);
        }
    }

    /// Whether `poll_transmit` has bytes to give.
    pub fn wants_write(&self) -> bool {
        self.unsent() > 0
            || self.order.iter().any(|id| {
                self.streams
                    .get(id)
                    .is_some_and(|s| s.sendable(self.conn_send_window))
            })
    }

    /// Appends at most `CHUNK` (64 KiB) bytes to write to `out`; true if it appended any.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        if self.phase != Phase::Closed {
            self.fill_data();
        }
        let unsent = self.unsent();
        if unsent == 0 {
            return false;
        }
        if out.is_empty() && self.out_pos == 0 && unsent <= CHUNK {
            std::mem::swap(out, &mut self.out);
            self.out_frame = 0;
            return true;
        }
        let k = unsent.min(CHUNK);
        out.extend_from_slice(&self.out[self.out_pos..self.out_pos + k]);
        self.out_pos += k;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            self.out_frame = 0;
            return true;
        }
        // The transmit may have ended inside a frame: the next whole one starts after it.
        while self.out_frame < self.out_pos {
            self.out_frame += frame::HEAD_LEN + frame::Head::parse(&self.out[self.out_frame..]).len;
        }
        if self.out_pos >= CHUNK {
            self.out.drain(..self.out_pos);
            self.out_frame -= self.out_pos;
            self.out_pos = 0;
        }
        true
    }

    /// DATA frames (and trailers) from the streams' queues until `CHUNK` bytes are pending.
    fn fill_data(&mut self) {
        let max_buf = self.cfg.max_send_buffer_per_stream;
        while self.unsent() + frame::HEAD_LEN < CHUNK {
            let Some(id) = self.order.pop_front() else {
                return;
            };
            let cw = self.conn_send_window;
            let room = CHUNK - self.unsent() - frame::HEAD_LEN;
            let Some(s) = self.streams.get_mut(&id) else {
                continue;
            };
            s.scheduled = false;
            if !s.sendable(cw) {
                if s.queued > 0 && s.send_window > 0 {
                    // Waits for the connection window, keeping its turn.
                    s.scheduled = true;
                    self.order.push_front(id);
                    self.note_stall(0);
                    return;
                }
                // Waits for its own window: WINDOW_UPDATE schedules it again.
                if s.window_blocked() {
                    self.note_stall(id);
                }
                continue;
            }
            let window = s.send_window.min(cw).max(0) as usize;
            let n = s.queued.min(self.peer_max_frame).min(window).min(room);
            let cap_before = s.capacity(max_buf);
            let last = n == s.queued && s.send == Send::Ending;
            let end = last && s.trailers.is_none();
            let f = if end { flag::END_STREAM } else { 0 };
            if n > 0 || end {
                frame::write_head(&mut self.out, n, kind::DATA, f, id);
                s.take_into(n, &mut self.out);
            }
            s.send_window -= n as i64;
            self.conn_send_window -= n as i64;
            if n > 0 {
                // Bytes moved: whatever held the response back did not hold it.
                s.stall = Stall::None;
                self.conn_stall = Stall::None;
            }
            // The window just used up with more to come: a stall begins (stamped at the next
            // `handle_timeout`); the connection's is seen when a stream next waits on it.
            let used_up = !last && s.window_blocked() && s.stall == Stall::None;
            if used_up {
                s.stall = Stall::Noted;
                self.stall_new.push(id);
            }
            if last {
                if let Some(t) = s.trailers.take() {
                    encode_trailers(&mut self.enc, &mut self.scratch, &t);
                    let max = self.peer_max_frame;
                    frame::write_header_block(&mut self.out, id, true, &self.scratch, max);
                }
                s.send = Send::Done;
            } else if s.queued > 0 {
                s.scheduled = true;
                self.order.push_back(id);
            }
            if cap_before == 0 && s.capacity(max_buf) > 0 && !s.writable_queued {
                s.writable_queued = true;
                self.events.push_back(Event::Writable { id });
            }
            if n > 0 {
                self.glitches.progress();
            }
            if last {
                self.maybe_finish(id);
            }
        }
    }
}

/// The fields of a response head being encoded (`send_response_with`).
pub struct HeadFields<'a> {
    enc: &'a mut Encoder,
    out: &'a mut Vec<u8>,
}

impl HeadFields<'_> {
    /// One field; `name` must be a valid lowercase field name (as `http::HeaderName`s are)
    /// and `value` a valid value. A connection-specific field is left out.
    pub fn field(&mut self, name: &[u8], value: &[u8]) {
        if !connection_specific(name) {
            self.enc.field(name, value, self.out);
        }
    }
}

/// Encodes trailers into `scratch`.
fn encode_trailers(enc: &mut Encoder, scratch: &mut Vec<u8>, h: &HeaderMap) {
    scratch.clear();
    enc.begin(scratch);
    for (name, value) in h {
        let name = name.as_str().as_bytes();
        if !connection_specific(name) {
            enc.field(name, value.as_bytes(), scratch);
        }
    }
}

fn connection_specific(n: &[u8]) -> bool {
    matches!(
        n,
        b"connection"
            | b"transfer-encoding"
            | b"upgrade"
            | b"te"
            | b"keep-alive"
            | b"proxy-connection"
    )
}
