//! A target connection whose HTTP/2 stream was cancelled (reset by the client, or by the engine
//! for the client's frames) while weir waited for the response head. Closing it would cost a
//! connection teardown per cancelled stream — and a new connection for the next one — which
//! is what rapid reset (CVE-2023-44487) turns into a storm. When the target has the whole
//! request, its response is read away in a task of its own instead and the connection goes
//! back to the pool, as HAProxy does with `http-reuse`; a response that is too large
//! (over `MAX_DISCARD`), too slow (the idle timeout for all of it), until-close or malformed
//! closes the connection.

use crate::pipeline::MAX_DISCARD;
use crate::pipeline::codec::{self, Framing};
use crate::pipeline::relay::{self, BodyShape};
use crate::target::TargetRt;
use crate::upstream::UpStream;
use bytes::BytesMut;
use http::Method;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// A target connection that has the whole request and waits for the response head. Dropped
/// before `disarm` (the stream was cancelled), it finishes the response in the background.
pub struct AwaitingResponse {
    io: Option<(UpStream, BytesMut)>,
    target: Arc<TargetRt>,
    method: Method,
    idle: Duration,
}

impl AwaitingResponse {
    pub fn new(
        up: UpStream,
        buf: BytesMut,
        target: Arc<TargetRt>,
        method: &Method,
        idle: Duration,
    ) -> AwaitingResponse {
        AwaitingResponse {
            io: Some((up, buf)),
            target,
            method: method.clone(),
            idle,
        }
    }

    /// The connection and its read buffer, to read the response head.
    pub fn io(&mut self) -> Option<(&mut UpStream, &mut BytesMut)> {
        self.io.as_mut().map(|(up, buf)| (up, buf))
    }

    /// The response head came (or reading it failed): the caller takes the connection back.
    pub fn disarm(mut self) -> Option<(UpStream, BytesMut)> {
        self.io.take()
    }
}

impl Drop for AwaitingResponse {
    fn drop(&mut self) {
        let Some((up, buf)) = self.io.take() else {
            return;
        };
        // Outside a runtime (the worker is going away) the connection is simply closed.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (t, method, idle) = (self.target.clone(), self.method.clone(), self.idle);
            rt.spawn(async move {
                let fin = tokio::time::timeout(idle, read_away(up, buf, &method, idle));
                if let Ok(Some(up)) = fin.await {
                    t.pool.checkin(up, std::time::Instant::now());
                }
            });
        }
    }
}

/// Reads a response to its end; the connection if the target keeps it alive and nothing
/// else came after the response.
async fn read_away(
    mut up: UpStream,
    mut buf: BytesMut,
    method: &Method,
    idle: Duration,
) -> Option<UpStream> {
    let resp = loop {
        match codec::parse_response(&mut buf) {
            // A 101 was never asked for here: the connection is not HTTP/1.1 any more.
            Ok(Some(r)) if r.status == 101 => return None,
            // Interim 1xx: the final head follows.
            Ok(Some(r)) if (100..200).contains(&r.status) => continue,
            Ok(Some(r)) => break r,
            Ok(None) => {}
            Err(_) => return None,
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(relay::CHUNK);
        }
        if up.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
    };
    let framing = codec::response_framing(method, resp.status, &resp).ok()?;
    match framing {
        Framing::UntilClose => return None,
        Framing::Length(n) if n > MAX_DISCARD => return None,
        _ => {}
    }
    let shape = BodyShape {
        framing,
        dechunk: false,
        max_data: Some(MAX_DISCARD),
    };
    let mut none = BytesMut::new();
    let mut sink = tokio::io::sink();
    relay::relay(&mut up, &mut buf, &mut sink, &mut none, shape, idle)
        .await
        .ok()?;
    (resp.target_keeps_alive() && buf.is_empty()).then_some(up)
}
