//! Receiving: the preface, the frame loop over the input buffer, and one handler per frame
//! type with the checks RFC 9113 §4–§6 put on it. DATA payloads are `Bytes` slices of the
//! input buffer (copied once, from the driver's read into it); a header block that arrives in
//! one HEADERS frame is decoded from the frame itself. Header blocks are in `headers.rs`.

use bytes::{Buf, Bytes};

use super::conn::{Block, Connection, GOAWAY_PING, MAX_CONTINUATIONS, Phase, Res, err};
use super::frame::{self, Head, flag, kind, read_u31, read_u32, setting};
use super::stream::{Closed, Stall};
use super::{Event, Reason, StreamId};

impl Connection {
    /// Parses and handles every whole frame in the input buffer.
    pub(super) fn process(&mut self) -> Res {
        loop {
            if let Phase::Preface(n) = self.phase {
                let k = (frame::PREFACE.len() - n).min(self.inbuf.len());
                if self.inbuf[..k] != frame::PREFACE[n..n + k] {
                    return Err(err(Reason::PROTOCOL_ERROR, "no HTTP/2 client preface"));
                }
                self.inbuf.advance(k);
                if n + k < frame::PREFACE.len() {
                    self.phase = Phase::Preface(n + k);
                    return Ok(());
                }
                self.phase = Phase::FirstSettings;
            }
            if self.inbuf.len() < frame::HEAD_LEN {
                return Ok(());
            }
            let head = Head::parse(&self.inbuf);
            if head.len > self.cfg.max_frame_size as usize {
                return Err(err(
                    Reason::FRAME_SIZE_ERROR,
                    "a frame over our MAX_FRAME_SIZE",
                ));
            }
            if self.inbuf.len() < frame::HEAD_LEN + head.len {
                return Ok(());
            }
            let mut f = self.inbuf.split_to(frame::HEAD_LEN + head.len).freeze();
            f.advance(frame::HEAD_LEN);
            self.on_frame(head, f)?;
            if self.phase == Phase::Closed {
                return Ok(());
            }
        }
    }

    fn on_frame(&mut self, h: Head, payload: Bytes) -> Res {
        if self.phase == Phase::FirstSettings {
            if h.kind != kind::SETTINGS || h.has(flag::ACK) {
                return Err(err(
                    Reason::PROTOCOL_ERROR,
                    "the first frame is not SETTINGS",
                ));
            }
            self.phase = Phase::Open;
        }
        if let Some(b) = &self.block
            && (h.kind != kind::CONTINUATION || h.stream != b.id)
        {
            return Err(err(Reason::PROTOCOL_ERROR, "a frame inside a header block"));
        }
        match h.kind {
            kind::DATA => self.on_data(h, payload),
            kind::HEADERS => self.on_headers(h, payload),
            kind::PRIORITY => self.on_priority(h, &payload),
            kind::RST_STREAM => self.on_rst(h, &payload),
            kind::SETTINGS => self.on_settings(h, &payload),
            kind::PUSH_PROMISE => Err(err(Reason::PROTOCOL_ERROR, "PUSH_PROMISE from a client")),
            kind::PING => self.on_ping(h, &payload),
            kind::GOAWAY => self.on_goaway(h, &payload),
            kind::WINDOW_UPDATE => self.on_window_update(h, &payload),
            kind::CONTINUATION => self.on_continuation(h, &payload),
            _ => self.chatter(),
        }
    }

    /// A control frame that made no progress.
    pub(super) fn chatter(&mut self) -> Res {
        if self.glitches.chatter() {
            return Err(err(Reason::ENHANCE_YOUR_CALM, "a control-frame flood"));
        }
        Ok(())
    }

    pub(super) fn glitch(&mut self, why: &'static str) -> Res {
        if self.glitches.add() {
            return Err(err(Reason::ENHANCE_YOUR_CALM, why));
        }
        Ok(())
    }

    /// RST_STREAM from us for a stream error (§5.4.2), which the client caused: a glitch.
    pub(super) fn stream_error(&mut self, id: StreamId, code: Reason) -> Res {
        self.control_room()?;
        frame::write_rst(&mut self.out, id, code.0);
        match self.remove_stream(id, Closed::ByUs) {
            Some(_) if !self.purge_events(id) => self.events.push_back(Event::Reset { id, code }),
            Some(_) => {}
            None => self.recent.record(id, Closed::ByUs),
        }
        self.glitch("too many stream errors")
    }

    /// Drops the events of a stream whose request the driver has not polled yet; true if
    /// there was one (then the driver never hears of the stream).
    pub(super) fn purge_events(&mut self, id: StreamId) -> bool {
        let unseen = self
            .events
            .iter()
            .any(|e| matches!(e, Event::Request { id: i, .. } if *i == id));
        if unseen {
            self.events.retain(|e| match e {
                Event::Request { id: i, .. }
                | Event::Data { id: i, .. }
                | Event::Trailers { id: i, .. }
                | Event::Writable { id: i }
                | Event::Stalled { id: i }
                | Event::Reset { id: i, .. } => *i != id,
                Event::GoAway { .. } | Event::Refused { .. } => true,
            });
        }
        unseen
    }

    /// A frame for a stream that is closed (not idle, not open), by how it closed (§5.1).
    pub(super) fn on_closed(&mut self, id: StreamId, headers: bool) -> Res {
        match self.recent.get(id) {
            Some(Closed::ByUs) => Ok(()),
            Some(Closed::ByPeer) => self.stream_error(id, Reason::STREAM_CLOSED),
            Some(Closed::Finished) => Err(err(Reason::STREAM_CLOSED, "a frame on a closed stream")),
            None if headers => Err(err(
                Reason::PROTOCOL_ERROR,
                "a stream id not above the last",
            )),
            None => Err(err(Reason::STREAM_CLOSED, "a frame on a closed stream")),
        }
    }

    fn on_data(&mut self, h: Head, payload: Bytes) -> Res {
        let id = h.stream;
        if id == 0 {
            return Err(err(Reason::PROTOCOL_ERROR, "DATA on stream 0"));
        }
        let range = frame::unpad(&payload, h.has(flag::PADDED), 0)
            .map_err(|b| err(b.reason(), "DATA padding too long or no pad length"))?;
        let flow = h.len as i64;
        if flow > self.conn_recv_window {
            return Err(err(
                Reason::FLOW_CONTROL_ERROR,
                "DATA beyond the connection window",
            ));
        }
        self.conn_recv_window -= flow;
        if id > self.last_id {
            return Err(err(Reason::PROTOCOL_ERROR, "DATA on an idle stream"));
        }
        let end = h.has(flag::END_STREAM);
        let Some(s) = self.streams.get_mut(&id) else {
            self.credit_conn(flow as u64);
            return self.on_closed(id, false);
        };
        let problem = if !s.recv_open {
            Some(Reason::STREAM_CLOSED)
        } else if flow > s.recv_window {
            Some(Reason::FLOW_CONTROL_ERROR)
        } else {
            let received = s.received + range.len() as u64;
            let cl_wrong = s
                .content_length
                .is_some_and(|cl| received > cl || (end && received != cl));
            cl_wrong.then_some(Reason::PROTOCOL_ERROR)
        };
        if let Some(code) = problem {
            self.credit_conn(flow as u64);
            return self.stream_error(id, code);
        }
        let data = payload.slice(range);
        let pad = flow as u64 - data.len() as u64;
        s.recv_window -= flow;
        s.received += data.len() as u64;
        s.recv_held += data.len() as u64;
        s.recv_open = !end;
        if pad > 0 {
            self.credit_stream(id, pad as u32);
            self.credit_conn(pad);
        }
        if data.is_empty() && !end {
            self.glitch("empty DATA frames")?;
        } else if !data.is_empty() {
            self.glitches.progress();
        }
        self.events.push_back(Event::Data {
            id,
            data,
            end_stream: end,
        });
        if end {
            self.maybe_finish(id);
        }
        Ok(())
    }

    fn on_headers(&mut self, h: Head, payload: Bytes) -> Res {
        let id = h.stream;
        if id == 0 || id.is_multiple_of(2) {
            return Err(err(
                Reason::PROTOCOL_ERROR,
                "HEADERS on stream 0 or an even stream",
            ));
        }
        let prio = h.has(flag::PRIORITY);
        let range =
            frame::unpad(&payload, h.has(flag::PADDED), if prio { 5 } else { 0 }).map_err(|b| {
                err(
                    b.reason(),
                    "HEADERS padding too long, or too short for its fields",
                )
            })?;
        let self_dependent = prio && read_u31(&payload[range.start - 5..]) == id;
        let fragment = &payload[range];
        let end_stream = h.has(flag::END_STREAM);
        if h.has(flag::END_HEADERS) {
            return self.on_block(id, end_stream, self_dependent, fragment);
        }
        if fragment.len() > self.block_limit() {
            return Err(err(Reason::ENHANCE_YOUR_CALM, "a header block too large"));
        }
        self.block = Some(Block {
            id,
            end_stream,
            self_dependent,
            buf: fragment.to_vec(),
            frames: 0,
            started: self.now,
        });
        Ok(())
    }

    fn on_continuation(&mut self, h: Head, payload: &[u8]) -> Res {
        let limit = self.block_limit();
        let Some(b) = self.block.as_mut() else {
            return Err(err(
                Reason::PROTOCOL_ERROR,
                "CONTINUATION without a header block",
            ));
        };
        b.frames += 1;
        if b.frames > MAX_CONTINUATIONS || b.buf.len() + payload.len() > limit {
            return Err(err(Reason::ENHANCE_YOUR_CALM, "a CONTINUATION flood"));
        }
        b.buf.extend_from_slice(payload);
        if !h.has(flag::END_HEADERS) {
            if payload.is_empty() {
                self.glitch("empty CONTINUATION frames")?;
            }
            return Ok(());
        }
        let Some(b) = self.block.take() else {
            return Ok(());
        };
        self.on_block(b.id, b.end_stream, b.self_dependent, &b.buf)
    }

    /// The most header block bytes buffered: twice the header list limit (a block past the
    /// limit is still decoded, to answer 431 and keep HPACK in step; past twice, GOAWAY).
    fn block_limit(&self) -> usize {
        2 * self.cfg.max_header_list_size as usize
    }

    fn on_priority(&mut self, h: Head, payload: &[u8]) -> Res {
        if h.stream == 0 {
            return Err(err(Reason::PROTOCOL_ERROR, "PRIORITY on stream 0"));
        }
        if h.len != 5 {
            return self.stream_error(h.stream, Reason::FRAME_SIZE_ERROR);
        }
        if read_u31(payload) == h.stream {
            return self.stream_error(h.stream, Reason::PROTOCOL_ERROR);
        }
        self.chatter()
    }

    fn on_rst(&mut self, h: Head, payload: &[u8]) -> Res {
        let id = h.stream;
        if id == 0 {
            return Err(err(Reason::PROTOCOL_ERROR, "RST_STREAM on stream 0"));
        }
        if h.len != 4 {
            return Err(err(Reason::FRAME_SIZE_ERROR, "RST_STREAM not 4 bytes"));
        }
        if id > self.last_id {
            return Err(err(Reason::PROTOCOL_ERROR, "RST_STREAM on an idle stream"));
        }
        let code = Reason(read_u32(payload));
        let Some(s) = self.remove_stream(id, Closed::ByPeer) else {
            return self.chatter();
        };
        if !self.purge_events(id) {
            self.events.push_back(Event::Reset { id, code });
        }
        if s.send != super::stream::Send::Done {
            return self.glitch("rapid reset");
        }
        Ok(())
    }

    fn on_settings(&mut self, h: Head, payload: &[u8]) -> Res {
        if h.stream != 0 {
            return Err(err(Reason::PROTOCOL_ERROR, "SETTINGS on a stream"));
        }
        if h.has(flag::ACK) {
            if h.len != 0 {
                return Err(err(Reason::FRAME_SIZE_ERROR, "SETTINGS ACK with a payload"));
            }
            self.settings_acked = true;
            return Ok(());
        }
        if !h.len.is_multiple_of(6) {
            return Err(err(
                Reason::FRAME_SIZE_ERROR,
                "SETTINGS not a multiple of 6",
            ));
        }
        // SETTINGS_INITIAL_WINDOW_SIZE moves every stream's send window: a frame that lists it
        // many times (legal: §6.5 processes the values in order, the last one stands) moves
        // them once, to its last value, as nginx and the h2 crate do. Moving them per value
        // let one 16 KB frame make thousands of passes over the streams.
        let mut window = None;
        for p in payload.chunks_exact(6) {
            let (id, v) = (u16::from_be_bytes([p[0], p[1]]), read_u32(&p[2..]));
            if id == setting::INITIAL_WINDOW_SIZE {
                if i64::from(v) > frame::MAX_WINDOW {
                    return Err(err(
                        Reason::FLOW_CONTROL_ERROR,
                        "INITIAL_WINDOW_SIZE over 2^31-1",
                    ));
                }
                window = Some(v);
            } else {
                self.apply_setting(id, v)?;
            }
        }
        if let Some(v) = window {
            self.move_initial_window(v)?;
        }
        self.control_room()?;
        frame::write_settings_ack(&mut self.out);
        self.settings_received += 1;
        if self.settings_received > 1 {
            return self.chatter();
        }
        Ok(())
    }

    fn apply_setting(&mut self, id: u16, v: u32) -> Res {
        match id {
            setting::HEADER_TABLE_SIZE => self.enc.set_peer_table_size(v),
            setting::ENABLE_PUSH | setting::ENABLE_CONNECT_PROTOCOL if v > 1 => {
                return Err(err(Reason::PROTOCOL_ERROR, "a boolean setting not 0 or 1"));
            }
            setting::MAX_FRAME_SIZE => {
                if !(frame::DEFAULT_MAX_FRAME_SIZE..=frame::MAX_FRAME_SIZE_LIMIT).contains(&v) {
                    return Err(err(Reason::PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range"));
                }
                self.peer_max_frame = v as usize;
            }
            _ => {}
        }
        Ok(())
    }

    /// A new SETTINGS_INITIAL_WINDOW_SIZE: every stream's send window moves by the difference
    /// (§6.9.2), one step per stream. The first change that moves open streams is free; each
    /// later one is a glitch: a client that keeps moving the window back and forth (or a
    /// window tuner, a few times in a connection's life) makes the server walk its streams.
    fn move_initial_window(&mut self, v: u32) -> Res {
        let delta = i64::from(v) - self.peer_initial_window;
        self.peer_initial_window = i64::from(v);
        if delta == 0 || self.streams.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<StreamId> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if self.move_send_window(id, delta).is_err() {
                return Err(err(
                    Reason::FLOW_CONTROL_ERROR,
                    "a stream window over 2^31-1",
                ));
            }
        }
        self.window_moves += 1;
        if self.window_moves > 1 {
            return self.glitch("the initial window moved again");
        }
        Ok(())
    }

    fn on_ping(&mut self, h: Head, payload: &[u8]) -> Res {
        if h.stream != 0 {
            return Err(err(Reason::PROTOCOL_ERROR, "PING on a stream"));
        }
        if h.len != 8 {
            return Err(err(Reason::FRAME_SIZE_ERROR, "PING not 8 bytes"));
        }
        if !h.has(flag::ACK) {
            self.control_room()?;
            frame::write_ping_ack(&mut self.out, payload);
        } else if self.ping_sent.is_some() && payload == self.ping_opaque() {
            // The answer to our keep-alive PING: not chatter.
            self.ping_sent = None;
            return Ok(());
        } else if self.goaway_ping && payload == GOAWAY_PING {
            // The graceful end's PING answered: every stream sent before the first GOAWAY
            // was read; the second one names the last.
            self.goaway_acked();
            return Ok(());
        }
        self.chatter()
    }

    fn on_goaway(&mut self, h: Head, payload: &[u8]) -> Res {
        if h.stream != 0 {
            return Err(err(Reason::PROTOCOL_ERROR, "GOAWAY on a stream"));
        }
        if h.len < 8 {
            return Err(err(Reason::FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes"));
        }
        let code = read_u32(&payload[4..]);
        self.peer_goaway = true;
        self.events.push_back(Event::GoAway {
            error: (code != 0).then_some(Reason(code)),
        });
        Ok(())
    }

    fn on_window_update(&mut self, h: Head, payload: &[u8]) -> Res {
        if h.len != 4 {
            return Err(err(Reason::FRAME_SIZE_ERROR, "WINDOW_UPDATE not 4 bytes"));
        }
        let inc = i64::from(read_u31(payload));
        let id = h.stream;
        if id == 0 {
            if inc == 0 {
                return Err(err(Reason::PROTOCOL_ERROR, "a zero WINDOW_UPDATE"));
            }
            self.conn_send_window += inc;
            if self.conn_send_window > frame::MAX_WINDOW {
                return Err(err(
                    Reason::FLOW_CONTROL_ERROR,
                    "the connection window over 2^31-1",
                ));
            }
            if self.conn_send_window > 0 {
                self.conn_stall = Stall::None;
            }
            return if self.order.is_empty() {
                self.chatter()
            } else {
                Ok(())
            };
        }
        if id > self.last_id {
            return Err(err(
                Reason::PROTOCOL_ERROR,
                "WINDOW_UPDATE on an idle stream",
            ));
        }
        let Some(s) = self.streams.get(&id) else {
            return self.chatter();
        };
        if inc == 0 {
            return self.stream_error(id, Reason::PROTOCOL_ERROR);
        }
        let useful = s.queued > 0;
        if self.move_send_window(id, inc).is_err() {
            return self.stream_error(id, Reason::FLOW_CONTROL_ERROR);
        }
        if useful { Ok(()) } else { self.chatter() }
    }
}
