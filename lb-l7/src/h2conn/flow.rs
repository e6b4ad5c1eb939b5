//! Flow control (RFC 9113 §5.2, §6.9): the credit we give back as the driver consumes
//! request bodies (WINDOW_UPDATEs batched at half a window, per stream and for the
//! connection), and the send windows the client moves (WINDOW_UPDATE, a new
//! SETTINGS_INITIAL_WINDOW_SIZE), which wake streams up (`Event::Writable`, the transmit
//! order).

use super::conn::Connection;
use super::frame;
use super::stream::Stall;
use super::{Event, StreamId};

/// A send window would pass 2^31-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Overflow;

impl Connection {
    /// `n` received bytes are done with (consumed, padding, or on a stream gone): the
    /// connection's WINDOW_UPDATE once half the window is owed.
    pub(super) fn credit_conn(&mut self, n: u64) {
        if n == 0 || self.phase == super::conn::Phase::Closed {
            return;
        }
        self.conn_unreleased += n;
        let threshold = u64::from(self.cfg.connection_window / 2).max(1);
        if self.conn_unreleased >= threshold {
            let inc = self.conn_unreleased.min(frame::MAX_WINDOW as u64) as u32;
            frame::write_window_update(&mut self.out, 0, inc);
            self.conn_recv_window += i64::from(inc);
            self.conn_unreleased -= u64::from(inc);
        }
    }

    /// The same for one stream, while its request side is open.
    pub(super) fn credit_stream(&mut self, id: StreamId, n: u32) {
        let threshold = (self.cfg.initial_window_size / 2).max(1);
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if !s.recv_open {
            s.recv_unreleased = 0;
            return;
        }
        s.recv_unreleased = s.recv_unreleased.saturating_add(n);
        if s.recv_unreleased >= threshold {
            frame::write_window_update(&mut self.out, id, s.recv_unreleased);
            s.recv_window += i64::from(s.recv_unreleased);
            s.recv_unreleased = 0;
        }
    }

    /// The driver consumed `n` request-body bytes of stream `id`.
    pub fn release_capacity(&mut self, id: StreamId, n: usize) {
        let Some(s) = self.streams.get_mut(&id) else {
            // A stream gone gave its bytes back when it went.
            return;
        };
        let n = (n as u64).min(s.recv_held);
        s.recv_held -= n;
        self.credit_stream(id, n as u32);
        self.credit_conn(n);
    }

    /// Moves a stream's send window by `delta`; wakes it if it can write again.
    pub(super) fn move_send_window(&mut self, id: StreamId, delta: i64) -> Result<(), Overflow> {
        let max_buf = self.cfg.max_send_buffer_per_stream;
        let Some(s) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        let before = s.capacity(max_buf);
        let w = s.send_window + delta;
        if w > frame::MAX_WINDOW {
            return Err(Overflow);
        }
        s.send_window = w;
        let blocked = s.window_blocked();
        if !blocked {
            // Open again: a response still held back waits on the connection (its own stall)
            // or on the target, not on this window.
            s.stall = Stall::None;
        }
        if before == 0 && s.capacity(max_buf) > 0 && !s.writable_queued {
            s.writable_queued = true;
            self.events.push_back(Event::Writable { id });
        }
        self.schedule(id);
        if blocked {
            // A SETTINGS lowering the initial window (a WINDOW_UPDATE leaving it at or below
            // 0 changes nothing: an older stall keeps its time).
            self.note_stall(id);
        }
        Ok(())
    }

    /// Puts a stream in the transmit order if it has something it may write.
    pub(super) fn schedule(&mut self, id: StreamId) {
        let cw = self.conn_send_window;
        if let Some(s) = self.streams.get_mut(&id)
            && !s.scheduled
            && (s.sendable(cw) || (s.queued > 0 && s.send_window > 0))
        {
            s.scheduled = true;
            self.order.push_back(id);
        }
    }
}
