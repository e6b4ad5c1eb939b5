//! A target's response body read from a raw target connection, as an `http_body::Body` for
//! either HTTP/2 engine: `Content-Length`, chunked (de-chunked: HTTP/2 has its own framing)
//! or until-close, with the idle timeout between reads. When the body ends cleanly on a
//! connection the target keeps alive, the connection goes back to the target's pool.

use crate::body::BoxError;
use crate::idle::CoarseClock;
use crate::pipeline::MAX_DISCARD;
use crate::pipeline::codec::{ChunkedScanner, Framing, ResponseHead};
use crate::pipeline::prepare::Outstanding;
use crate::pipeline::readbuf;
use crate::target::TargetRt;
use crate::upstream::UpStream;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

const READ: usize = 16 * 1024;

pub struct TargetBody {
    up: Option<UpStream>,
    buf: BytesMut,
    framing: Framing,
    left: u64,
    scanner: ChunkedScanner,
    spans: Vec<(usize, usize)>,
    target: Arc<TargetRt>,
    /// The target keeps the connection alive after this response.
    reusable: bool,
    done: bool,
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// The request counts as outstanding on its target until the body ends (or is dropped).
    outstanding: Option<Outstanding>,
    /// The worker's coarse clock: a connection goes back to its pool idle since then (as the
    /// HTTP/1.1 engine's do; the pool's ages are the coarse clock's too).
    clock: Arc<CoarseClock>,
    /// The rest of a body whose client went away, read in the background (see `Drop`).
    detached: bool,
    /// The response's head, until the engine takes it (`take_head`).
    head: Option<TargetHead>,
}

/// A target's response head as the engine sends it on: the parsed head (its end-to-end
/// fields: `ResponseHead::each_end_to_end`) and weir's own `Set-Cookie` values after them.
/// weir's engine encodes it as it is; hyper's gets it as a `HeaderMap` (`into_map`).
pub struct TargetHead {
    pub head: ResponseHead,
    pub cookies: Vec<String>,
}

impl TargetHead {
    /// The head as a `HeaderMap` (the head goes back for the next response).
    pub fn into_map(self) -> HeaderMap {
        let mut h = self.head.end_to_end_headers();
        for c in self.cookies {
            if let Ok(v) = HeaderValue::try_from(c) {
                h.append(header::SET_COOKIE, v);
            }
        }
        self.head.recycle();
        h
    }
}

impl TargetBody {
    /// `buf` holds what was read after the response head.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        up: UpStream,
        buf: BytesMut,
        framing: Framing,
        target: Arc<TargetRt>,
        reusable: bool,
        idle: Duration,
        outstanding: Outstanding,
        clock: Arc<CoarseClock>,
    ) -> TargetBody {
        let mut b = TargetBody {
            up: Some(up),
            buf,
            framing,
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            scanner: ChunkedScanner::default(),
            spans: Vec::new(),
            target,
            reusable: reusable && framing != Framing::UntilClose,
            done: false,
            idle,
            timer: None,
            outstanding: Some(outstanding),
            clock,
            detached: false,
            head: None,
        };
        if framing == Framing::Empty {
            b.finish();
        }
        b
    }

    /// The response's head goes with its body (`take_head`).
    pub fn set_head(&mut self, head: TargetHead) {
        self.head = Some(head);
    }

    /// The response's head, once.
    pub fn take_head(&mut self) -> Option<TargetHead> {
        self.head.take()
    }

    /// The body ended cleanly: the connection goes back to the pool if it can carry more.
    fn finish(&mut self) {
        self.done = true;
        self.outstanding = None;
        if let Some(up) = self.up.take()
            && self.reusable
            && self.buf.is_empty()
        {
            self.target.pool.checkin(up, self.clock.now());
        }
        readbuf::give_back(std::mem::take(&mut self.buf));
    }

    /// Body data at the front of `buf`, if any.
    fn take(&mut self) -> Result<Option<Bytes>, BoxError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        match self.framing {
            Framing::Empty => Ok(None),
            Framing::Length(_) => {
                let k = self.left.min(self.buf.len() as u64) as usize;
                self.left -= k as u64;
                let data = self.buf.split_to(k).freeze();
                if self.left == 0 {
                    self.finish();
                }
                Ok(Some(data))
            }
            Framing::UntilClose => Ok(Some(self.buf.split().freeze())),
            Framing::Chunked => {
                self.spans.clear();
                let k = match self.scanner.advance(&self.buf, Some(&mut self.spans)) {
                    Ok(k) => k,
                    Err(why) => {
                        // A malformed chunked body: the target's error; its connection goes.
                        self.target.count_error();
                        self.up = None;
                        return Err(why.into());
                    }
                };
                let wire = self.buf.split_to(k).freeze();
                let data = match self.spans.as_slice() {
                    [] => Bytes::new(),
                    [(s, e)] => wire.slice(*s..*e),
                    spans => {
                        let mut d = BytesMut::with_capacity(wire.len());
                        for &(s, e) in spans {
                            d.extend_from_slice(&wire[s..e]);
                        }
                        d.freeze()
                    }
                };
                if self.scanner.done() {
                    self.finish();
                }
                Ok((!data.is_empty()).then_some(data))
            }
        }
    }
}

/// Dropped before its end (the client reset the stream, or its connection went away): a rest
/// of at most `MAX_DISCARD` bytes is read away in a task of its own within the idle timeout,
/// so the connection goes back to the pool (`finish`) instead of being closed — a reset
/// stream must not cost a target connection. A larger rest closes it.
impl Drop for TargetBody {
    fn drop(&mut self) {
        let small = match self.framing {
            Framing::Length(_) => self.left <= MAX_DISCARD,
            Framing::Chunked => true,
            Framing::Empty | Framing::UntilClose => false,
        };
        if self.done || self.detached || !self.reusable || !small || self.up.is_none() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut rest = TargetBody {
            up: self.up.take(),
            buf: std::mem::take(&mut self.buf),
            framing: self.framing,
            left: self.left,
            scanner: std::mem::take(&mut self.scanner),
            spans: Vec::new(),
            target: self.target.clone(),
            reusable: true,
            done: false,
            idle: self.idle,
            timer: None,
            outstanding: None,
            clock: self.clock.clone(),
            detached: true,
            head: None,
        };
        rt.spawn(async move {
            use http_body_util::BodyExt;
            let idle = rest.idle;
            let mut seen = 0u64;
            let _ = tokio::time::timeout(idle, async {
                while let Some(Ok(f)) = rest.frame().await {
                    seen += f.data_ref().map_or(0, |d| d.len() as u64);
                    if seen > MAX_DISCARD {
                        return;
                    }
                }
            })
            .await;
        });
    }
}

impl HttpBody for TargetBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(data) = this.take()? {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let Some(up) = this.up.as_mut() else {
                return Poll::Ready(None);
            };
            if this.buf.capacity() - this.buf.len() < 1024 {
                this.buf.reserve(READ);
            }
            match tokio_util::io::poll_read_buf(Pin::new(up), cx, &mut this.buf) {
                Poll::Ready(Ok(0)) => {
                    this.up = None;
                    if this.framing == Framing::UntilClose {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    this.target.count_error();
                    return Poll::Ready(Some(Err("target closed before the body ended".into())));
                }
                Poll::Ready(Ok(_)) => {
                    this.timer = None;
                    continue;
                }
                Poll::Ready(Err(e)) => {
                    this.up = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Pending => {}
            }
            let idle = this.idle;
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + idle)));
            if timer.as_mut().poll(cx).is_ready() {
                this.up = None;
                return Poll::Ready(Some(Err("target idle for the idle timeout".into())));
            }
            return Poll::Pending;
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(_) => SizeHint::with_exact(self.left),
            Framing::Empty => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
