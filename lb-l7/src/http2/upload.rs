//! Phase upload for HTTP/2 clients (either engine): a request body streamed to its target — as
//! it is when its length was declared, else chunk-encoded — while the target is watched for an
//! early answer (`pipeline::early`, as the HTTP/1.1 engine's upload).
//!
//! A target may answer before it has taken the whole body (a 413, a 401) and stop reading it;
//! sending the whole body before reading the head, weir held that answer until the idle
//! timeout, or for ever against the target's TCP window. So the target's final head ends the
//! upload: the rest of the body is dropped, and the response is relayed. The engine then ends
//! the stream the way RFC 9113 §8.1 allows a server that answered a request before its end:
//! the response whole, then RST_STREAM(NO_ERROR), which tells the client to stop sending
//! (weir's engine: `h2weir::server`'s withheld END_STREAM; hyper's: h2 resets a stream whose
//! response ended and whose request body is gone). The target connection is not reused: it did
//! not get the whole request. An interim head (`100 Continue`) is dropped and the upload goes
//! on. A target that stops reading and fails the write may have answered too: its head is read
//! as after a whole body (the connection not reused either).
//!
//! The watch costs nothing while the body flows (no task, no timer, no syscall until the
//! sending waits), and nothing at all for a request without a body, which never comes here.

use super::RequestBody;
use crate::pipeline::attempt::HeadFailure;
use crate::pipeline::codec::ResponseHead;
use crate::pipeline::early::{self, Raced, Turns};
use crate::pipeline::relay;
use crate::upstream::UpStream;
use bytes::BytesMut;
use http_body_util::BodyExt;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::AsyncWrite;

/// How a request body's upload ended.
pub(super) enum Uploaded<B> {
    /// The whole body went to the target.
    Whole,
    /// The target answered (or closed, or sent a malformed head) before the body's end; the
    /// rest of the body was dropped.
    Answered(Result<ResponseHead, HeadFailure>),
    /// Writing to the target failed (it closed or reset): it may have answered first.
    TargetStopped,
    /// More than `max_request_body_bytes`; the rest of the body.
    TooLarge(B),
    /// The client's side failed (idle, reset), or the target took nothing for the idle
    /// timeout (without answering).
    Failed(&'static str),
}

/// Streams `body` to `up`, watching `up` for an early answer (read into `ubuf`, where the
/// response head is read from otherwise). Stops before the byte that would go over `max` (a
/// declared length over it was refused before). Every DATA byte read is added to `received`
/// (the stream's count, as it is read: a failed or cut upload keeps what it read).
pub(super) async fn upload<B: RequestBody>(
    up: &mut UpStream,
    ubuf: &mut BytesMut,
    body: B,
    chunked: bool,
    max: Option<u64>,
    idle: Duration,
    received: &mut u64,
) -> Uploaded<B> {
    let up = Mutex::new(up);
    let mut dst = Turns(&up);
    let sending = send_body(&mut dst, body, chunked, max, idle, received);
    match early::race(sending, &up, ubuf, |_| true).await {
        Raced { sent: Some(r), .. } => match r {
            Ok(()) => Uploaded::Whole,
            Err(SendBodyError::TooLarge(rest)) => Uploaded::TooLarge(rest),
            Err(SendBodyError::Target) => Uploaded::TargetStopped,
            Err(SendBodyError::Other(why)) => Uploaded::Failed(why),
        },
        Raced {
            sent: None,
            head: Some(head),
        } => Uploaded::Answered(head),
        // Not reached: a race stops early only with a head.
        Raced {
            sent: None,
            head: None,
        } => Uploaded::TargetStopped,
    }
}

enum SendBodyError<B> {
    /// More than `max_request_body_bytes`; the rest of the body.
    TooLarge(B),
    /// A write to the target failed (not for the idle timeout).
    Target,
    Other(&'static str),
}

/// Chunks up to this size go to the target in one write with their framing (copied); larger
/// ones in three (their size line, the data as it is, the CRLF).
const ONE_WRITE_CHUNK: usize = 16 * 1024;

/// Streams a client's (HTTP/2) request body to the target: as it is when the length was
/// declared, else chunk-encoded. Trailers are not forwarded. Stops before the byte that would
/// go over `max`.
async fn send_body<B: RequestBody, W: AsyncWrite + Unpin>(
    up: &mut W,
    mut body: B,
    chunked: bool,
    max: Option<u64>,
    idle: Duration,
    received: &mut u64,
) -> Result<(), SendBodyError<B>> {
    let mut sent = 0u64;
    let mut wire = Vec::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(SendBodyError::Other("client idle for the idle timeout")),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(SendBodyError::Other("client body failed")),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        *received += data.len() as u64;
        if max.is_some_and(|max| sent > max) {
            return Err(SendBodyError::TooLarge(body));
        }
        if chunked && data.len() <= ONE_WRITE_CHUNK {
            // The size line, the data and its CRLF in one write: three writes each were three
            // segments to the target for every small DATA frame a client sent.
            wire.clear();
            wire.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            wire.extend_from_slice(&data);
            wire.extend_from_slice(b"\r\n");
            write(up, &wire, idle).await?;
            continue;
        }
        if chunked {
            write(up, format!("{:x}\r\n", data.len()).as_bytes(), idle).await?;
        }
        write(up, &data, idle).await?;
        if chunked {
            write(up, b"\r\n", idle).await?;
        }
    }
    if chunked {
        write(up, b"0\r\n\r\n", idle).await?;
    }
    Ok(())
}

async fn write<B, W: AsyncWrite + Unpin>(
    up: &mut W,
    bytes: &[u8],
    idle: Duration,
) -> Result<(), SendBodyError<B>> {
    relay::write_all(up, bytes, idle)
        .await
        .map_err(|e| match e {
            relay::RelayError::DstTimeout => {
                SendBodyError::Other("target idle for the idle timeout")
            }
            _ => SendBodyError::Target,
        })
}
