//! One stream's state (RFC 9113 §5.1) as the server sees it: the request side open or
//! half-closed(remote), the response side not started, open or ended, both flow-control
//! windows, the response bytes queued, the content-length count; and the memory of recently
//! closed streams (how they closed decides what a late frame on them means).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Buf, Bytes};

use super::StreamId;

/// A response held back by the client's flow control (`Connection::handle_stalls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stall {
    /// Not held back (or bytes moved since).
    None,
    /// Seen held back where the connection's clock may be stale (`send_response`,
    /// `poll_transmit` take no `Instant`): in `Connection::stall_new`, stamped at the next
    /// `handle_timeout`, which `poll_timeout` makes due at once.
    Noted,
    /// Held back since then: reset an idle timeout later unless bytes move first.
    Since(Instant),
}

/// The response side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Send {
    /// No response head yet.
    Idle,
    /// Head sent, body may follow.
    Open,
    /// END_STREAM queued (after the queued data and trailers).
    Ending,
    /// END_STREAM written to the output.
    Done,
}

pub(super) struct Stream {
    /// The request side is still open (no END_STREAM from the client yet).
    pub recv_open: bool,
    pub send: Send,
    /// What the client may still send on the stream.
    pub recv_window: i64,
    /// Bytes the driver consumed (or padding) and we have not yet credited back.
    pub recv_unreleased: u32,
    /// Bytes handed to the driver and not yet released by it.
    pub recv_held: u64,
    /// What we may still send on the stream (negative after a SETTINGS decrease).
    pub send_window: i64,
    /// Response body chunks not yet written.
    pub queue: VecDeque<Bytes>,
    pub queued: usize,
    pub trailers: Option<Box<http::HeaderMap>>,
    /// In the connection's round-robin order of streams with something to write.
    pub scheduled: bool,
    /// An `Event::Writable` for the stream waits in the connection's queue (one is enough:
    /// a client moving the window back and forth must not grow the queue).
    pub writable_queued: bool,
    pub content_length: Option<u64>,
    pub received: u64,
    /// Whether (and since when) the response waits on the client's window for this stream.
    pub stall: Stall,
}

impl Stream {
    /// `queue`: an empty send queue (`Config::send_queue`).
    pub fn new(
        recv_window: i64,
        send_window: i64,
        end_stream: bool,
        cl: Option<u64>,
        queue: VecDeque<Bytes>,
    ) -> Self {
        Stream {
            recv_open: !end_stream,
            send: Send::Idle,
            recv_window,
            recv_unreleased: 0,
            recv_held: 0,
            send_window,
            queue,
            queued: 0,
            trailers: None,
            scheduled: false,
            writable_queued: false,
            content_length: cl,
            received: 0,
            stall: Stall::None,
        }
    }

    /// Bytes the driver may still queue (see `Connection::send_capacity`).
    pub fn capacity(&self, max_buffer: usize) -> usize {
        if !matches!(self.send, Send::Idle | Send::Open) {
            return 0;
        }
        let window = usize::try_from(self.send_window.max(0)).unwrap_or(usize::MAX);
        window
            .saturating_sub(self.queued)
            .min(max_buffer.saturating_sub(self.queued))
    }

    /// Whether the stream has a frame to write now, given the connection window.
    pub fn sendable(&self, conn_window: i64) -> bool {
        let closing = self.queued == 0 && self.send == Send::Ending;
        closing || (self.queued > 0 && self.send_window > 0 && conn_window > 0)
    }

    /// The response cannot move for the stream's own window: begun, not all written, and the
    /// window at or below 0 (the driver gets no capacity, so with nothing queued the bytes
    /// wait in the driver or the target).
    pub fn window_blocked(&self) -> bool {
        self.send_window <= 0
            && (self.send == Send::Open || (self.send == Send::Ending && self.queued > 0))
    }

    /// Takes up to `n` queued bytes into `out`.
    pub fn take_into(&mut self, mut n: usize, out: &mut Vec<u8>) {
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                return;
            };
            let k = n.min(front.len());
            out.extend_from_slice(&front[..k]);
            front.advance(k);
            n -= k;
            if front.is_empty() {
                self.queue.pop_front();
            }
        }
    }
}

/// How a stream closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closed {
    /// Both sides ended normally.
    Finished,
    /// The client reset it.
    ByPeer,
    /// We reset it (or refused it): frames already in flight are ignored (§5.1).
    ByUs,
}

/// The last `cap` closed streams.
pub(super) struct Recent {
    ring: VecDeque<(StreamId, Closed)>,
    cap: usize,
}

impl Recent {
    pub fn new(cap: usize) -> Self {
        Recent {
            ring: VecDeque::with_capacity(cap.min(1024)),
            cap: cap.max(1),
        }
    }

    pub fn record(&mut self, id: StreamId, how: Closed) {
        if self.ring.len() == self.cap {
            self.ring.pop_front();
        }
        self.ring.push_back((id, how));
    }

    pub fn get(&self, id: StreamId) -> Option<Closed> {
        self.ring
            .iter()
            .rev()
            .find(|(i, _)| *i == id)
            .map(|(_, c)| *c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_bounded_by_window_and_buffer() {
        let mut s = Stream::new(100, 10, true, None, VecDeque::new());
        assert_eq!(s.capacity(64), 10);
        s.send_window = 1000;
        assert_eq!(s.capacity(64), 64);
        s.queue.push_back(Bytes::from_static(b"0123456789"));
        s.queued = 10;
        assert_eq!(s.capacity(64), 54);
        s.send_window = -5;
        assert_eq!(s.capacity(64), 0);
        s.send_window = 1000;
        let mut out = Vec::new();
        s.take_into(4, &mut out);
        assert_eq!(out, b"0123");
        assert_eq!(s.queued, 6);
        s.send = Send::Ending;
        assert_eq!(s.capacity(64), 0);
    }

    #[test]
    fn recent_forgets_the_oldest() {
        let mut r = Recent::new(2);
        r.record(1, Closed::ByPeer);
        r.record(3, Closed::ByUs);
        r.record(5, Closed::Finished);
        assert_eq!(r.get(1), None);
        assert_eq!(r.get(3), Some(Closed::ByUs));
        assert_eq!(r.get(5), Some(Closed::Finished));
    }
}
