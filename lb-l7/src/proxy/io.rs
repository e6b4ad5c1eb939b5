//! The client connection's I/O wrapper: counts bytes, closes idle connections, and answers a
//! request head that does not arrive in time with `408` and a close (slowloris).
//!
//! Timing: once the first byte of an HTTP/1 request head arrives with no request in flight, the
//! head must be complete within `header_read_timeout`; with nothing in flight and nothing
//! arriving, the connection is closed after `idle_timeout`.

use super::ConnState;
use crate::metrics::Metrics;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

const RESPONSE_408: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 16\r\nconnection: close\r\n\r\nRequest Timeout\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Off,
    Idle,
    Header,
}

pin_project_lite::pin_project! {
    pub struct ClientIo<T> {
        #[pin]
        inner: T,
        state: Arc<ConnState>,
        metrics: Arc<Metrics>,
        idle_timeout: Duration,
        header_timeout: Duration,
        timer: Pin<Box<Sleep>>,
        timer_kind: Timer,
        // The real deadline of `timer_kind`; the timer may be set earlier and is moved lazily.
        deadline: Instant,
        sniffed: bool,
        // Bytes of the 408 response written so far, once the header timer fired.
        timeout_reply: Option<usize>,
    }
}

impl<T> ClientIo<T> {
    pub fn new(
        inner: T,
        state: Arc<ConnState>,
        metrics: Arc<Metrics>,
        idle_timeout: Duration,
        header_timeout: Duration,
    ) -> Self {
        ClientIo {
            inner,
            state,
            metrics,
            idle_timeout,
            header_timeout,
            timer: Box::pin(tokio::time::sleep(idle_timeout)),
            timer_kind: Timer::Idle,
            deadline: Instant::now() + idle_timeout,
            sniffed: false,
            timeout_reply: None,
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
        if let Some(written) = this.timeout_reply {
            while *written < RESPONSE_408.len() {
                let n = ready!(
                    this.inner
                        .as_mut()
                        .poll_write(cx, &RESPONSE_408[*written..])
                )?;
                if n == 0 {
                    break;
                }
                *written += n;
            }
            ready!(this.inner.as_mut().poll_flush(cx))?;
            let _ = this.inner.as_mut().poll_shutdown(cx);
            return Poll::Ready(Ok(())); // EOF to hyper
        }
        let before = buf.filled().len();
        match this.inner.as_mut().poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                if got.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                let st = &*this.state;
                st.received.fetch_add(got.len() as u64, Relaxed);
                if !*this.sniffed {
                    *this.sniffed = true;
                    if got.starts_with(b"PRI") {
                        st.h2.store(true, Relaxed);
                    }
                }
                let h2 = st.h2.load(Relaxed);
                let idle_conn = st.in_flight.load(Relaxed) == 0;
                if !h2
                    && (idle_conn || st.head_pending.load(Relaxed))
                    && head_has_content_length(got)
                {
                    st.saw_content_length.store(true, Relaxed);
                }
                if idle_conn && !h2 && !st.head_pending.swap(true, Relaxed) {
                    // A new request head starts: it must be complete in time.
                    *this.timer_kind = Timer::Header;
                    *this.deadline = Instant::now() + *this.header_timeout;
                    if *this.deadline < this.timer.deadline() {
                        this.timer.as_mut().reset(*this.deadline);
                    }
                } else if *this.timer_kind == Timer::Idle {
                    // Activity: push the idle deadline (the timer itself is moved lazily).
                    *this.deadline = Instant::now() + *this.idle_timeout;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let st = &*this.state;
                let busy = st.in_flight.load(Relaxed) > 0;
                let head = st.head_pending.load(Relaxed) && !st.h2.load(Relaxed);
                let want = if busy {
                    Timer::Off
                } else if head {
                    Timer::Header
                } else {
                    Timer::Idle
                };
                if want != *this.timer_kind {
                    *this.timer_kind = want;
                    let d = match want {
                        Timer::Idle => *this.idle_timeout,
                        _ => *this.header_timeout,
                    };
                    *this.deadline = Instant::now() + d;
                    if want != Timer::Off && *this.deadline < this.timer.deadline() {
                        this.timer.as_mut().reset(*this.deadline);
                    }
                }
                if want == Timer::Off {
                    return Poll::Pending;
                }
                loop {
                    if this.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if Instant::now() < *this.deadline {
                        // Fired early: the deadline moved since the timer was set.
                        this.timer.as_mut().reset(*this.deadline);
                        continue;
                    }
                    break;
                }
                match want {
                    Timer::Header => {
                        tracing::debug!("request head not complete in time: 408");
                        this.metrics.elb_status(408);
                        *this.timeout_reply = Some(0);
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                    // Idle: report EOF, hyper closes the connection.
                    _ => Poll::Ready(Ok(())),
                }
            }
        }
    }
}

/// Does this chunk of a request head have a `Content-Length` line (before the blank line)?
fn head_has_content_length(b: &[u8]) -> bool {
    const NAME: &[u8] = b"\ncontent-length:";
    let end = b
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(b.len(), |p| p + 2);
    let head = &b[..end];
    head.windows(NAME.len())
        .any(|w| w.eq_ignore_ascii_case(NAME))
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
