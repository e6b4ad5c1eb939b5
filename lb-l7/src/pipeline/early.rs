//! A target's answer while a request body is still on its way to it, for both engines' upload
//! phase (`crate::h1`'s and `crate::http2`'s). A target may answer before it has taken the
//! whole body (a 413, a 401, a redirect) and stop reading it; sending the body first and
//! reading the response after held that answer in weir's socket until the idle timeout, the
//! client uploading all that time. [`race`] sends the body and looks at the target whenever
//! the sending waits: the target's head, when it comes first, ends the race.
//!
//! The watch costs nothing while the body goes through: the target is polled only when the
//! sending waits (on the client or on the target), in the sending's own poll (no task, no
//! timer), and a plain socket is read only once the reactor saw it readable (no syscall).

use super::attempt::HeadFailure;
use super::codec::{self, ResponseHead};
use super::relay;
use crate::upstream::UpStream;
use bytes::BytesMut;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Mutex, TryLockError};
use std::task::{Context, Poll, ready};
use tokio::io::AsyncWrite;

/// The target connection, shared by the body's sending (through [`Turns`]) and the watch.
pub(crate) type Watched<'u> = Mutex<&'u mut UpStream>;

/// How a race ended.
pub(crate) struct Raced<T> {
    /// The sending's end; `None` when the target's answer stopped it (the sending is dropped,
    /// and what it held with it).
    pub sent: Option<T>,
    /// The target's head (or why none will come) when it came before the sending's end.
    pub head: Option<Result<ResponseHead, HeadFailure>>,
}

/// Runs `sending` (which writes to `up` through a [`Turns`]) and, each time it waits, reads
/// what the target sent into `buf` (where the response head is read from otherwise). A head
/// for which `ends` is true stops the sending; another (a `101` the HTTP/1.1 engine lets wait
/// for the body's end) is kept and the target is not read again here.
pub(crate) async fn race<F: Future>(
    sending: F,
    up: &Watched<'_>,
    buf: &mut BytesMut,
    ends: impl Fn(&Result<ResponseHead, HeadFailure>) -> bool,
) -> Raced<F::Output> {
    let mut sending = std::pin::pin!(sending);
    let mut head = None;
    let sent = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = sending.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        // The sending waits (on the client or on the target): has the target answered?
        if head.is_none()
            && let Ok(mut up) = up.try_lock()
            && let Poll::Ready(h) = poll_answer(&mut up, buf, cx)
        {
            let stop = ends(&h);
            head = Some(h);
            if stop {
                return Poll::Ready(None);
            }
        }
        Poll::Pending
    })
    .await;
    Raced { sent, head }
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

/// The target connection as the sending's writer, shared with the watch (`poll_answer`): each
/// takes it only within its own poll, one after the other in the same task, so the lock is
/// never contended (a `Mutex` rather than a `RefCell` only because the future must be `Send`).
pub(crate) struct Turns<'a, 'u>(pub &'a Watched<'u>);

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
