//! A stream's request body as the pipeline reads it (`http_body::Body`): the DATA the
//! connection's task received for the stream, then its trailers or its end. Bounded by the
//! stream's flow-control window: the task hands credit back (`Connection::release_capacity`)
//! only for the bytes this body gave the pipeline, so a target that reads slowly slows the
//! client down. A reset stream's body fails; a body dropped before its end gives its buffered
//! bytes back and tells the task, which then lets further DATA of the stream go.
//!
//! The DATA payloads are copied into the body's own buffer, not kept as the slices of the
//! connection's input they arrive as: a slice keeps its whole input buffer alive, so a client
//! sending 1-byte DATA frames each followed by 16 KB of padding or unknown frames made every
//! byte of window hold ~32 KB (98 MB sent on 6,000 bytes of window held 190 MB until the
//! connection closed, for a request weir had answered itself and never read). Copied, what a
//! body holds is what the window lets the client send. The pipeline gets what has arrived as
//! one chunk (fewer, larger writes to the target).

use super::streams::Ready;
use crate::body::BoxError;
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// What a stream's body and the connection's task share.
pub struct RecvShared {
    idx: usize,
    ready: Arc<Ready>,
    st: Mutex<RecvState>,
}

#[derive(Default)]
struct RecvState {
    /// Received and not yet taken by the pipeline.
    buf: BytesMut,
    trailers: Option<HeaderMap>,
    /// The client ended the body (END_STREAM).
    end: bool,
    /// The stream was reset (by either side) or the connection ended.
    reset: bool,
    /// Bytes the pipeline took (or the dropped body let go) and the task has not released.
    consumed: usize,
    /// The body was dropped.
    dropped: bool,
    /// The declared length's rest, for `size_hint`.
    left: Option<u64>,
    waker: Option<Waker>,
}

impl RecvShared {
    fn lock(&self) -> MutexGuard<'_, RecvState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// DATA for the stream (the task's side). False if the body was dropped: the caller
    /// releases the bytes itself.
    pub(super) fn push(&self, data: Bytes, end: bool) -> bool {
        let mut s = self.lock();
        if s.dropped {
            return false;
        }
        s.buf.extend_from_slice(&data);
        s.end |= end;
        if let Some(w) = s.waker.take() {
            drop(s);
            w.wake();
        }
        true
    }

    /// The request's trailers: they end the body.
    pub(super) fn trailers(&self, t: HeaderMap) {
        let mut s = self.lock();
        s.trailers = Some(t);
        s.end = true;
        if let Some(w) = s.waker.take() {
            drop(s);
            w.wake();
        }
    }

    /// The stream is gone: the body fails; returns the bytes still buffered (to release on the
    /// connection).
    pub(super) fn reset(&self) -> usize {
        let mut s = self.lock();
        s.reset = true;
        let buffered = std::mem::take(&mut s.buf).len();
        let n = buffered + std::mem::take(&mut s.consumed);
        if let Some(w) = s.waker.take() {
            drop(s);
            w.wake();
        }
        n
    }

    /// Bytes to release now, and whether the body was dropped.
    pub(super) fn take_consumed(&self) -> (usize, bool) {
        let mut s = self.lock();
        (std::mem::take(&mut s.consumed), s.dropped)
    }
}

/// A request body of weir's HTTP/2 engine.
pub struct RecvBody {
    shared: Option<Arc<RecvShared>>,
}

impl RecvBody {
    /// The body of a request that ended with its head.
    pub fn empty() -> RecvBody {
        RecvBody { shared: None }
    }

    /// A body to come, for the stream in slot `idx`; `declared` its `content-length`.
    pub(super) fn open(
        idx: usize,
        ready: Arc<Ready>,
        declared: Option<u64>,
    ) -> (RecvBody, Arc<RecvShared>) {
        let shared = Arc::new(RecvShared {
            idx,
            ready,
            st: Mutex::new(RecvState {
                left: declared,
                ..RecvState::default()
            }),
        });
        (
            RecvBody {
                shared: Some(shared.clone()),
            },
            shared,
        )
    }
}

impl HttpBody for RecvBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(sh) = self.shared.as_ref() else {
            return Poll::Ready(None);
        };
        let mut s = sh.lock();
        if !s.buf.is_empty() {
            let c = s.buf.split().freeze();
            s.consumed += c.len();
            if let Some(l) = s.left.as_mut() {
                *l = l.saturating_sub(c.len() as u64);
            }
            drop(s);
            sh.ready.release(sh.idx);
            return Poll::Ready(Some(Ok(Frame::data(c))));
        }
        if let Some(t) = s.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(t))));
        }
        if s.end {
            return Poll::Ready(None);
        }
        if s.reset {
            return Poll::Ready(Some(Err("the client reset the stream".into())));
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.shared.as_ref().is_none_or(|sh| {
            let s = sh.lock();
            s.end && s.buf.is_empty() && s.trailers.is_none()
        })
    }

    fn size_hint(&self) -> SizeHint {
        match &self.shared {
            None => SizeHint::with_exact(0),
            Some(sh) => match sh.lock().left {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
        }
    }
}

/// Dropped before its end: what it buffered goes back to the connection's window, and the
/// task lets the stream's further DATA go.
impl Drop for RecvBody {
    fn drop(&mut self) {
        let Some(sh) = self.shared.take() else {
            return;
        };
        let mut s = sh.lock();
        s.dropped = true;
        s.consumed += std::mem::take(&mut s.buf).len();
        s.waker = None;
        drop(s);
        sh.ready.release(sh.idx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn open(declared: Option<u64>) -> (RecvBody, Arc<RecvShared>, Arc<Ready>) {
        let ready = Arc::new(Ready::default());
        let (b, r) = RecvBody::open(3, ready.clone(), declared);
        (b, r, ready)
    }

    fn queued(ready: &Ready) -> Vec<usize> {
        let (mut p, mut r) = (Vec::new(), Vec::new());
        ready.take_or_sleep(&mut p, &mut r, None);
        assert!(p.is_empty());
        r
    }

    #[tokio::test]
    async fn credit_is_released_only_for_what_the_pipeline_took() {
        let (mut b, r, ready) = open(Some(5));
        assert!(!b.is_end_stream());
        assert_eq!(b.size_hint().exact(), Some(5));
        assert!(r.push(Bytes::from_static(b"abc"), false));
        // Nothing read yet: nothing to release.
        assert_eq!(r.take_consumed(), (0, false));
        let f = b.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "abc");
        assert_eq!(queued(&ready), [3]);
        assert_eq!(r.take_consumed(), (3, false));
        assert_eq!(b.size_hint().exact(), Some(2));
        // What arrived before the pipeline came back is one chunk.
        assert!(r.push(Bytes::from_static(b"d"), false));
        assert!(r.push(Bytes::from_static(b"e"), true));
        let f = b.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "de");
        assert!(b.is_end_stream());
        assert!(b.frame().await.is_none());
        assert_eq!(r.take_consumed(), (2, false));
    }

    /// DATA arrives as slices of the connection's input buffer; a body keeps a copy, not the
    /// slice, so a byte of body never holds the whole input buffer.
    #[tokio::test]
    async fn a_body_keeps_no_slice_of_the_input_buffer() {
        let (mut b, r, _ready) = open(None);
        let input = Bytes::from(vec![7u8; 32 * 1024]);
        assert!(r.push(input.slice(100..101), false));
        assert!(
            input.is_unique(),
            "the body holds a reference to the input buffer"
        );
        let f = b.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), [7u8][..]);
    }

    #[tokio::test]
    async fn a_dropped_body_gives_back_what_it_buffered_and_takes_no_more() {
        let (b, r, ready) = open(None);
        assert!(r.push(Bytes::from_static(b"0123456789"), false));
        drop(b);
        assert_eq!(queued(&ready), [3]);
        assert_eq!(r.take_consumed(), (10, true));
        // Further DATA is the driver's to release.
        assert!(!r.push(Bytes::from_static(b"x"), false));
    }

    #[tokio::test]
    async fn a_reset_stream_fails_the_body_and_trailers_end_it() {
        let (mut b, r, _ready) = open(None);
        assert!(r.push(Bytes::from_static(b"ab"), false));
        assert_eq!(r.reset(), 2);
        assert!(b.frame().await.unwrap().is_err());
        let (mut t, r2, _ready) = open(None);
        let mut h = HeaderMap::new();
        h.insert("x-t", http::HeaderValue::from_static("1"));
        r2.trailers(h);
        let f = t.frame().await.unwrap().unwrap();
        assert_eq!(f.into_trailers().unwrap()["x-t"], "1");
        assert!(t.frame().await.is_none());
        assert!(RecvBody::empty().is_end_stream());
    }
}
