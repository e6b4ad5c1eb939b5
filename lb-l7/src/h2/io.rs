//! The I/O wrapper of an HTTP/2 client connection (hyper's path): counts the bytes read, and
//! holds the connection's deadlines, which hyper and h2 do not have:
//! - **idle**: no stream in flight and no client activity (PING acknowledgements excluded,
//!   `frames::Inbound`) for `idle_timeout` → the connection ends;
//! - **head**: a frame other than DATA, or a header block, begun and not complete within
//!   `header_read_timeout` (HTTP/2 slowloris) → the connection ends;
//! - **write**: a write that makes no progress for `idle_timeout` (a client that stopped
//!   reading) → the connection fails, and with it its streams and their target connections.
//!
//! One timer serves the three, set to the earliest and moved lazily. The idle deadline is only
//! armed when the connection task polls a read with no stream in flight; a stream that ends
//! while the task sleeps is noticed at the latest when hyper's keep-alive PING timer (same
//! interval) wakes it.
//! (HTTP/1.1 connections are weir's own engine's, `h1::server`, with their own timing.)

use crate::http2::frames::Inbound;
use crate::pipeline::ConnState;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    Idle,
    Head,
    Write,
}

pin_project_lite::pin_project! {
    #[project = ClientIoProj]
    pub struct ClientIo<T> {
        #[pin]
        inner: T,
        state: Arc<ConnState>,
        idle_timeout: Duration,
        header_read_timeout: Duration,
        timer: Pin<Box<Sleep>>,
        // The real idle deadline; the timer may be set earlier and is moved lazily.
        idle_deadline: Instant,
        head_deadline: Option<Instant>,
        write_deadline: Option<Instant>,
        frames: Inbound,
    }
}

impl<T> ClientIo<T> {
    pub fn new(
        inner: T,
        state: Arc<ConnState>,
        idle_timeout: Duration,
        header_read_timeout: Duration,
    ) -> Self {
        ClientIo {
            inner,
            state,
            idle_timeout,
            header_read_timeout,
            timer: Box::pin(tokio::time::sleep(idle_timeout)),
            idle_deadline: Instant::now() + idle_timeout,
            head_deadline: None,
            write_deadline: None,
            frames: Inbound::default(),
        }
    }
}

impl<T> ClientIoProj<'_, T> {
    /// Polls the earliest deadline in force; `Ready` with the one that passed.
    fn poll_deadlines(&mut self, cx: &mut Context<'_>) -> Poll<Expired> {
        let idle = (self.state.in_flight.load(Relaxed) == 0).then_some(*self.idle_deadline);
        let candidates = [
            (*self.write_deadline, Expired::Write),
            (*self.head_deadline, Expired::Head),
            (idle, Expired::Idle),
        ];
        let Some((at, why)) = candidates
            .into_iter()
            .filter_map(|(d, why)| d.map(|d| (d, why)))
            .min_by_key(|&(d, _)| d)
        else {
            return Poll::Pending;
        };
        if self.timer.deadline() > at {
            self.timer.as_mut().reset(at);
        }
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if Instant::now() >= at {
                return Poll::Ready(why);
            }
            // Fired early: the deadline moved since the timer was set.
            self.timer.as_mut().reset(at);
        }
    }

    /// A write (or flush) returned: done ends the write deadline, a wait starts it. (h2 flushes
    /// only once its writes went through, so a flush that returns is progress too.)
    fn on_write<R>(&mut self, r: &Poll<io::Result<R>>) {
        match r {
            Poll::Ready(_) => *self.write_deadline = None,
            Poll::Pending => {
                if self.write_deadline.is_none() {
                    *self.write_deadline = Some(Instant::now() + *self.idle_timeout);
                }
            }
        }
    }

    /// A write is waiting: fail it once no progress was made for the idle timeout.
    fn poll_write_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.poll_deadlines(cx) {
            Poll::Ready(Expired::Write) => {
                tracing::debug!("client took no bytes for the idle timeout: closing");
                Poll::Ready(io::ErrorKind::TimedOut.into())
            }
            _ => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + AsyncWrite> AsyncRead for ClientIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut this = self.project();
        let before = buf.filled().len();
        match this.inner.as_mut().poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                if this.frames.feed(got) {
                    // Activity: push the idle deadline (the timer itself is moved lazily).
                    *this.idle_deadline = Instant::now() + *this.idle_timeout;
                }
                if !this.frames.mid_head() {
                    *this.head_deadline = None;
                } else if this.head_deadline.is_none() {
                    *this.head_deadline = Some(Instant::now() + *this.header_read_timeout);
                } else if this.head_deadline.is_some_and(|d| Instant::now() >= d) {
                    tracing::debug!("HTTP/2 frame not complete within the header read timeout");
                    buf.set_filled(before);
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.state.in_flight.load(Relaxed) > 0 {
                    // Streams in flight: not idle.
                    *this.idle_deadline = Instant::now() + *this.idle_timeout;
                }
                match this.poll_deadlines(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Expired::Write) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
                    // Report EOF: hyper closes the connection.
                    Poll::Ready(why) => {
                        tracing::debug!(?why, "client connection timed out");
                        Poll::Ready(Ok(()))
                    }
                }
            }
        }
    }
}

impl<T: AsyncWrite> AsyncWrite for ClientIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut this = self.project();
        let r = this.inner.as_mut().poll_write(cx, buf);
        this.on_write(&r);
        if r.is_pending() {
            return this.poll_write_deadline(cx).map(Err);
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        let r = this.inner.as_mut().poll_flush(cx);
        this.on_write(&r);
        if r.is_pending() {
            return this.poll_write_deadline(cx).map(Err);
        }
        r
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        let r = this.inner.as_mut().poll_shutdown(cx);
        this.on_write(&r);
        if r.is_pending() {
            return this.poll_write_deadline(cx).map(Err);
        }
        r
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut this = self.project();
        let r = this.inner.as_mut().poll_write_vectored(cx, bufs);
        this.on_write(&r);
        if r.is_pending() {
            return this.poll_write_deadline(cx).map(Err);
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
