//! A response of weir's own to a request whose body the engine has not read: the body drained
//! after the response (`service` and `forward` both answer such requests).

use super::RequestBody;
use crate::body::{self, Body};
use crate::pipeline::MAX_DISCARD;
use http::Response;
use std::time::Duration;

/// A response of weir's own to a request whose body was not (all) read: the body is kept
/// until the response has been sent (dropped earlier, the stream would be reset with CANCEL
/// before the client got the answer), then drained (`discard`), like nginx does.
pub fn with_unread_body<B: RequestBody>(
    r: Response<Body>,
    unread: B,
    idle: Duration,
) -> Response<Body> {
    if unread.is_end_stream() {
        return r;
    }
    let (parts, b) = r.into_parts();
    let on_end: body::OnEnd = Box::new(move |_, _| {
        tokio::spawn(discard(unread, idle));
    });
    Response::from_parts(parts, body::tracked(b, on_end))
}

/// Reads away the rest of a request body weir answered without reading (up to
/// `MAX_DISCARD` bytes, while it keeps coming within `idle`), so the stream ends cleanly; a
/// larger or stalled one is dropped: the stream is reset with NO_ERROR after the response
/// (RFC 9113 §8.1), which some clients (curl 7.88) report as a failed transfer.
async fn discard<B: RequestBody>(mut body: B, idle: Duration) {
    use http_body_util::BodyExt;
    if body.size_hint().exact().is_some_and(|n| n > MAX_DISCARD) {
        return;
    }
    let mut seen = 0u64;
    while seen <= MAX_DISCARD {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(f))) => seen += f.data_ref().map_or(0, |d| d.len() as u64),
            _ => return,
        }
    }
}
