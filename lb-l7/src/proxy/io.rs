//! The I/O wrapper of an HTTP/2 client connection (hyper's path): counts the bytes read, and
//! ends the connection when no stream is in flight and nothing arrived for `idle_timeout`.
//! (HTTP/1.1 connections are weir's own engine's, `h1::server`, with their own timing.)

use super::ConnState;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pin_project_lite::pin_project! {
    pub struct ClientIo<T> {
        #[pin]
        inner: T,
        state: Arc<ConnState>,
        idle_timeout: Duration,
        timer: Pin<Box<Sleep>>,
        // The real idle deadline; the timer may be set earlier and is moved lazily.
        deadline: Instant,
    }
}

impl<T> ClientIo<T> {
    pub fn new(inner: T, state: Arc<ConnState>, idle_timeout: Duration) -> Self {
        ClientIo {
            inner,
            state,
            idle_timeout,
            timer: Box::pin(tokio::time::sleep(idle_timeout)),
            deadline: Instant::now() + idle_timeout,
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
                let got = buf.filled().len() - before;
                this.state.received.fetch_add(got as u64, Relaxed);
                // Activity: push the idle deadline (the timer itself is moved lazily).
                *this.deadline = Instant::now() + *this.idle_timeout;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.state.in_flight.load(Relaxed) > 0 {
                    // Streams in flight: not idle.
                    *this.deadline = Instant::now() + *this.idle_timeout;
                    return Poll::Pending;
                }
                loop {
                    if this.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if Instant::now() < *this.deadline {
                        // Fired early: the deadline moved since the timer was set.
                        let d = *this.deadline;
                        this.timer.as_mut().reset(d);
                        continue;
                    }
                    // Idle for the idle timeout: report EOF, hyper closes the connection.
                    return Poll::Ready(Ok(()));
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
        self.project().inner.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
