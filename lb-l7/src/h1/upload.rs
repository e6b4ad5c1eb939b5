//! Phase upload of the HTTP/1.1 engine: a request body relayed from the client to its target
//! while the target is watched for an early answer.
//!
//! A target may answer before it has taken the whole body (a 413, a 401, a redirect) and stop
//! reading it. Relaying the body first and reading the response after, weir then held the
//! answer in its socket until the idle timeout failed the write, and the client uploaded all
//! that time. RFC 9112 §9.5: a client sending a body should watch for an error response and
//! stop sending, as nginx and HAProxy do for their clients. So the target's final head ends
//! the upload: its response is relayed and the client connection closes after it (the rest of
//! its body was not read: the framing is lost); the target connection is not reused. An
//! interim response (`100 Continue`, …) is dropped and the upload goes on; a `101` waits for
//! the body's end as before (the protocol switches after the request). A target that closes
//! with no answer ends the upload too (a 502 now, not when a write fails).
//!
//! The watch costs nothing while the body goes through: the target is polled only when the
//! relay waits, in the relay's own poll (no task, no timer), and a plain socket is read only
//! once the reactor saw it readable (no syscall). A body that came with its head leaves in one
//! write and never waits.

use super::stream::ClientStream;
use crate::pipeline::attempt::HeadFailure;
use crate::pipeline::codec::{self, ResponseHead};
use crate::pipeline::relay::{self, BodyShape, RelayError};
use crate::upstream::UpStream;
use bytes::BytesMut;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Mutex, TryLockError};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How a request body's upload ended.
pub(super) struct Upload {
    /// The relay's end (`Ok`: the whole body went to the target); `None` when the target's
    /// answer stopped it.
    pub relayed: Option<Result<(), RelayError>>,
    /// Bytes read from the client for the body: the body's own when it was relayed whole, else
    /// all that was read (the connection closes then).
    pub read: u64,
    /// The target's response head (or why none will come) when it came before the body's end.
    pub head: Option<Result<ResponseHead, HeadFailure>>,
}

/// Relays the body in `cbuf` and from `client` to `up`, watching `up` for an early answer
/// (read into `ubuf`, where the response head is read from otherwise).
pub(super) async fn upload(
    client: &mut ClientStream,
    cbuf: &mut BytesMut,
    up: &mut UpStream,
    ubuf: &mut BytesMut,
    shape: BodyShape,
    idle: Duration,
) -> Upload {
    let already = cbuf.len() as u64;
    let mut src = Counted {
        io: client,
        read: 0,
    };
    let up = Mutex::new(up);
    let mut dst = Turns(&up);
    let mut none = BytesMut::new();
    let mut head = None;
    // In a block: the relay (and its hold on `src`) ends before `src.read` is read.
    let relayed = {
        let relay = relay::relay(&mut src, cbuf, &mut dst, &mut none, shape, idle);
        let mut relay = std::pin::pin!(relay);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = relay.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            // The relay waits (on the client or on the target): has the target answered?
            // Once a head is in, the target is not read again here.
            if head.is_none()
                && let Ok(mut up) = up.try_lock()
                && let Poll::Ready(h) = poll_answer(&mut up, ubuf, cx)
            {
                let switching = matches!(&h, Ok(r) if r.status == 101);
                head = Some(h);
                if !switching {
                    return Poll::Ready(None);
                }
            }
            Poll::Pending
        })
        .await
    };
    let read = match &relayed {
        Some(Ok(moved)) => moved.wire,
        _ => already + src.read,
    };
    Upload {
        relayed: relayed.map(|r| r.map(drop)),
        read,
        head,
    }
}

/// Reads what the target sent during the upload: `Ready` with a head that is not an interim
/// one (those are dropped, as when the head is read after the body), or why none can come
/// (malformed, closed); `Pending` until then.
fn poll_answer(
    up: &mut UpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<Result<ResponseHead, HeadFailure>> {
    loop {
        if !buf.is_empty() {
            match codec::parse_response(buf) {
                Ok(Some(r)) if (100..200).contains(&r.status) && r.status != 101 => continue,
                Ok(Some(r)) => return Poll::Ready(Ok(r)),
                Ok(None) => {}
                Err(why) => return Poll::Ready(Err(HeadFailure::Malformed(why))),
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(relay::CHUNK);
        }
        match ready!(tokio_util::io::poll_read_buf(Pin::new(&mut *up), cx, buf)) {
            Ok(0) | Err(_) => return Poll::Ready(Err(HeadFailure::Closed(!buf.is_empty()))),
            Ok(_) => {}
        }
    }
}

/// The target connection as the relay's receiver, shared with the watch (`poll_answer`): each
/// takes it only within its own poll, one after the other in the same task, so the lock is
/// never contended (a `Mutex` rather than a `RefCell` only because the future must be `Send`).
struct Turns<'a, 'u>(&'a Mutex<&'u mut UpStream>);

impl Turns<'_, '_> {
    fn with<R>(
        &self,
        f: impl FnOnce(Pin<&mut UpStream>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match self.0.try_lock() {
            Ok(mut up) => f(Pin::new(&mut **up)),
            Err(TryLockError::Poisoned(p)) => f(Pin::new(&mut **p.into_inner())),
            Err(TryLockError::WouldBlock) => {
                Poll::Ready(Err(io::Error::other("target connection busy")))
            }
        }
    }
}

impl AsyncWrite for Turns<'_, '_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with(|up| up.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|up| up.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|up| up.poll_shutdown(cx))
    }
}

/// The client's stream, counting the bytes read from it: the relay's own count goes with it
/// when the target's answer stops it.
struct Counted<'a> {
    io: &'a mut ClientStream,
    read: u64,
}

impl AsyncRead for Counted<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut *this.io).poll_read(cx, buf);
        this.read += (buf.filled().len() - before) as u64;
        r
    }
}
