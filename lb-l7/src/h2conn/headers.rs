//! Complete header blocks (RFC 9113 §4.3, §5.1, §8): what a block on a stream means — a new
//! request, trailers, or a late block on a closed stream — and the answers the connection
//! gives by itself without bothering the driver: 431 for a header list over
//! SETTINGS_MAX_HEADER_LIST_SIZE, 405 for CONNECT (weir does not tunnel, §8.5), RST_STREAM
//! REFUSED_STREAM past SETTINGS_MAX_CONCURRENT_STREAMS, PROTOCOL_ERROR for a malformed request.
//! Every block is decoded in full, whatever becomes of it, so HPACK stays in step.

use super::conn::{Connection, Res, err};
use super::frame;
use super::request::Fields;
use super::stream::{Closed, Send, Stream};
use super::{Event, Reason, StreamId};

impl Connection {
    pub(super) fn on_block(
        &mut self,
        id: StreamId,
        end_stream: bool,
        self_dependent: bool,
        block: &[u8],
    ) -> Res {
        let headers = (self.cfg.header_map)(super::request::FIELDS);
        let mut fields = Fields::with_arena(std::mem::take(&mut self.arena), headers);
        let limit = self.cfg.max_header_list_size as usize;
        let decoded = self.dec.decode(block, limit, |n, v| fields.field(n, v));
        self.arena = fields.take_arena();
        let over = decoded.map_err(|_| err(Reason::COMPRESSION_ERROR, "HPACK decoding failed"))?;
        if self.streams.contains_key(&id) {
            return self.on_trailers(id, end_stream, over, fields);
        }
        if id <= self.last_id {
            return self.on_closed(id, true);
        }
        self.last_id = id;
        if self.goaway_sent {
            // Above the GOAWAY's last stream id: not processed (§6.8).
            self.recent.record(id, Closed::ByUs);
            return Ok(());
        }
        if self_dependent {
            self.refused(id, None, "a stream that depends on itself");
            return self.stream_error(id, Reason::PROTOCOL_ERROR);
        }
        if over {
            self.refused(id, Some(431), "a header list over the limit");
            self.respond_locally(id, 431, end_stream)?;
            return self.glitch("header lists over the limit");
        }
        if self.streams.len() >= self.cfg.max_concurrent_streams as usize {
            self.refused(id, None, "over the concurrent stream limit");
            return self.refuse(id);
        }
        self.on_request(id, end_stream, fields, block.len() as u32)
    }

    fn on_request(&mut self, id: StreamId, end_stream: bool, fields: Fields, bytes: u32) -> Res {
        let head = match fields.request() {
            Ok(h) => h,
            Err(m) => {
                self.refused(id, None, m.0);
                return self.stream_error(id, Reason::PROTOCOL_ERROR);
            }
        };
        if head.connect {
            self.refused(id, Some(405), "CONNECT (weir does not tunnel)");
            return self.respond_locally(id, 405, end_stream);
        }
        if end_stream && head.content_length.is_some_and(|n| n != 0) {
            self.refused(id, None, "a content-length and no body");
            return self.stream_error(id, Reason::PROTOCOL_ERROR);
        }
        let mut recv_window = i64::from(self.cfg.initial_window_size);
        if !self.settings_acked {
            // The client may not have applied our SETTINGS yet.
            recv_window = recv_window.max(i64::from(frame::DEFAULT_WINDOW));
        }
        let s = Stream::new(
            recv_window,
            self.peer_initial_window,
            end_stream,
            head.content_length,
            (self.cfg.send_queue)(),
        );
        self.streams.insert(id, s);
        self.glitches.progress();
        self.events.push_back(Event::Request {
            id,
            parts: head.parts,
            end_stream,
            head_bytes: bytes,
        });
        Ok(())
    }

    fn on_trailers(&mut self, id: StreamId, end_stream: bool, over: bool, f: Fields) -> Res {
        let Some(s) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        if !s.recv_open {
            return self.stream_error(id, Reason::STREAM_CLOSED);
        }
        let cl_wrong = s.content_length.is_some_and(|n| n != s.received);
        let trailers = match f.trailers() {
            Ok(t) if end_stream && !over && !cl_wrong => t,
            _ => return self.stream_error(id, Reason::PROTOCOL_ERROR),
        };
        s.recv_open = false;
        self.events.push_back(Event::Trailers { id, trailers });
        self.maybe_finish(id);
        Ok(())
    }

    /// Tells the driver of a request the connection answers or refuses itself.
    fn refused(&mut self, id: StreamId, status: Option<u16>, reason: &'static str) {
        self.events.push_back(Event::Refused { id, status, reason });
    }

    /// RST_STREAM(REFUSED_STREAM): over the concurrency limit. A glitch once the client has
    /// seen our limit (acknowledged our SETTINGS).
    fn refuse(&mut self, id: StreamId) -> Res {
        self.control_room()?;
        frame::write_rst(&mut self.out, id, Reason::REFUSED_STREAM.0);
        self.recent.record(id, Closed::ByUs);
        if self.settings_acked {
            return self.glitch("streams over the concurrency limit");
        }
        Ok(())
    }

    /// A response the connection gives itself: the status, no body; RST_STREAM(NO_ERROR)
    /// after it if the request is still coming (§8.1).
    fn respond_locally(&mut self, id: StreamId, status: u16, end_stream: bool) -> Res {
        self.control_room()?;
        self.scratch.clear();
        self.enc.begin(&mut self.scratch);
        self.enc.status(status, &mut self.scratch);
        frame::write_header_block(&mut self.out, id, true, &self.scratch, self.peer_max_frame);
        if !end_stream {
            frame::write_rst(&mut self.out, id, Reason::NO_ERROR.0);
        }
        self.recent.record(id, Closed::ByUs);
        Ok(())
    }

    /// A stream whose response is fully written: forgotten when its request is in too;
    /// otherwise RST_STREAM(NO_ERROR) stops the request body (§8.1) and the driver is told
    /// (`Event::Reset` with NO_ERROR).
    pub(super) fn maybe_finish(&mut self, id: StreamId) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        if s.send != Send::Done {
            return;
        }
        if !s.recv_open {
            self.remove_stream(id, Closed::Finished);
            self.glitches.completed();
            return;
        }
        frame::write_rst(&mut self.out, id, Reason::NO_ERROR.0);
        self.remove_stream(id, Closed::ByUs);
        self.events.push_back(Event::Reset {
            id,
            code: Reason::NO_ERROR,
        });
    }
}
