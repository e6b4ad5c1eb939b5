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
//! The watch is `pipeline::early`'s (shared with the HTTP/2 upload): the target is polled only
//! when the relay waits, in the relay's own poll (no task, no timer, no syscall while the body
//! flows). A body that came with its head leaves in one write and never waits.

use super::stream::ClientStream;
use crate::pipeline::attempt::HeadFailure;
use crate::pipeline::codec::ResponseHead;
use crate::pipeline::early::{self, Raced, Turns};
use crate::pipeline::relay::{self, BodyShape, RelayError};
use crate::upstream::UpStream;
use bytes::BytesMut;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};

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
    // In a block: the relay (and its hold on `src`) ends before `src.read` is read. A `101`
    // waits for the body's end (the protocol switches after the request).
    let Raced {
        sent: relayed,
        head,
    } = {
        let relay = relay::relay(&mut src, cbuf, &mut dst, &mut none, shape, idle);
        early::race(relay, &up, ubuf, |h| !matches!(h, Ok(r) if r.status == 101)).await
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
