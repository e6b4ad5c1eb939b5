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
                if !got.is_empty() {
                    this.state.received.fetch_add(got.len() as u64, Relaxed);
                    if !*this.sniffed {
                        *this.sniffed = true;
                        if got.starts_with(b"PRI") {
                            this.state.h2.store(true, Relaxed);
                        }
                    }
                    let idle_conn = this.state.in_flight.load(Relaxed) == 0;
                    if !this.state.h2.load(Relaxed)
                        && (idle_conn || this.state.head_pending.load(Relaxed))
                        && head_has_content_length(got)
                    {
                        this.state.saw_content_length.store(true, Relaxed);
                    }
                    if idle_conn
                        && !this.state.h2.load(Relaxed)
                        && !this.state.head_pending.swap(true, Relaxed)
                    {
                        this.timer
                            .as_mut()
                            .reset(Instant::now() + *this.header_timeout);
                        *this.timer_kind = Timer::Header;
                    } else if *this.timer_kind == Timer::Idle {
                        this.timer
                            .as_mut()
                            .reset(Instant::now() + *this.idle_timeout);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let busy = this.state.in_flight.load(Relaxed) > 0;
                let head = this.state.head_pending.load(Relaxed) && !this.state.h2.load(Relaxed);
                let want = if busy {
                    Timer::Off
                } else if head {
                    Timer::Header
                } else {
                    Timer::Idle
                };
                if want != *this.timer_kind {
                    match want {
                        Timer::Idle => this
                            .timer
                            .as_mut()
                            .reset(Instant::now() + *this.idle_timeout),
                        Timer::Header => this
                            .timer
                            .as_mut()
                            .reset(Instant::now() + *this.header_timeout),
                        Timer::Off => {}
                    }
                    *this.timer_kind = want;
                }
                if want == Timer::Off || this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
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
