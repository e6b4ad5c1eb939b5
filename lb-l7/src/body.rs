//! Response/request bodies: one boxed body type, and a wrapper that counts bytes and runs a
//! closure when the body ends (pool check-in, outstanding counts, the access log line).

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use std::pin::Pin;
use std::task::{Context, Poll};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type weir sends to clients and targets.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed_unsync()
}

/// Called once with (data bytes seen, whether the body reached its end cleanly).
pub type OnEnd = Box<dyn FnOnce(u64, bool) + Send>;

pin_project_lite::pin_project! {
    pub struct Tracked<B> where B: HttpBody {
        #[pin]
        inner: B,
        bytes: u64,
        on_end: Option<OnEnd>,
    }
    impl<B> PinnedDrop for Tracked<B> where B: HttpBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(f) = this.on_end.take() {
                let done = this.inner.is_end_stream();
                f(*this.bytes, done);
            }
        }
    }
}

impl<B: HttpBody> Tracked<B> {
    pub fn new(inner: B, on_end: OnEnd) -> Tracked<B> {
        Tracked {
            inner,
            bytes: 0,
            on_end: Some(on_end),
        }
    }
}

impl<B> HttpBody for Tracked<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    *this.bytes += d.len() as u64;
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(f) = this.on_end.take() {
                    f(*this.bytes, false);
                }
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                if let Some(f) = this.on_end.take() {
                    f(*this.bytes, true);
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps and boxes.
pub fn tracked<B>(inner: B, on_end: OnEnd) -> Body
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Tracked::new(inner, on_end).boxed_unsync()
}
