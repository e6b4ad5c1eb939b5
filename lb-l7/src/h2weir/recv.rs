//! A stream's request body as the pipeline reads it (`http_body::Body`): the DATA the
//! connection's task received for the stream, then its trailers or its end. Bounded by the
//! stream's flow-control window: the task hands credit back (`Connection::release_capacity`)
//! only for the bytes this body gave the pipeline, so a target that reads slowly slows the
//! client down. A reset stream's body fails; a body dropped before its end gives its buffered
//! bytes back and tells the task, which then lets further DATA of the stream go.

use super::streams::Ready;
use crate::body::BoxError;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::collections::VecDeque;
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
    chunks: VecDeque<Bytes>,
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
        if !data.is_empty() {
            s.chunks.push_back(data);
        }
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
        let buffered: usize = s.chunks.drain(..).map(|c| c.len()).sum();
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
        if let Some(c) = s.chunks.pop_front() {
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
            s.end && s.chunks.is_empty() && s.trailers.is_none()
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
        let buffered: usize = s.chunks.drain(..).map(|c| c.len()).sum();
        s.consumed += buffered;
        s.waker = None;
        drop(s);
        sh.ready.release(sh.idx);
    }
}
