//! Moving message bodies between sockets: `Content-Length`, chunked (validated and re-encoded,
//! or de-chunked for an HTTP/1.0 client) and until-close bodies, with the idle timeout on every
//! read and write, and the tunnel of an upgraded (WebSocket) connection.

use super::codec::{self, ChunkError, ChunkedReencoder, Framing};
use bytes::{Buf, BytesMut};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

/// Read size while relaying a body.
pub const CHUNK: usize = 16 * 1024;
/// The first read of a target's response: most heads and small bodies fit; a larger body
/// grows the buffer to `CHUNK`.
pub const HEAD_READ: usize = 4 * 1024;

/// Why a relay stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("sender idle for the idle timeout")]
    SrcTimeout,
    #[error("sender closed before the body ended")]
    SrcClosed,
    #[error("reading: {0}")]
    Src(io::Error),
    #[error("receiver did not take bytes within the idle timeout")]
    DstTimeout,
    #[error("writing: {0}")]
    Dst(io::Error),
    #[error("malformed chunked body: {0}")]
    Malformed(&'static str),
    #[error("body larger than the limit")]
    TooLarge,
}

impl RelayError {
    /// Did the receiving side fail (rather than the sending side)?
    pub fn on_dst(&self) -> bool {
        matches!(self, RelayError::DstTimeout | RelayError::Dst(_))
    }
}

/// Bytes moved by a relay.
#[derive(Debug, Default, Clone, Copy)]
pub struct Moved {
    /// Body bytes as they were on the sender's wire (with chunk framing).
    pub wire: u64,
    /// Bytes written to the receiver, including what `out` held at the start.
    pub written: u64,
}

pub async fn write_all<W: AsyncWrite + Unpin>(
    dst: &mut W,
    bytes: &[u8],
    idle: Duration,
) -> Result<(), RelayError> {
    // Most writes fit the socket buffer at once: try before arming a timer (a clock read and
    // a timer wheel entry saved per write).
    let mut done = 0;
    while done < bytes.len() {
        match poll_once(|cx| Pin::new(&mut *dst).poll_write(cx, &bytes[done..])).await {
            Some(Ok(0)) => return Err(RelayError::Dst(io::ErrorKind::WriteZero.into())),
            Some(Ok(n)) => done += n,
            Some(Err(e)) => return Err(RelayError::Dst(e)),
            None => break,
        }
    }
    if done == bytes.len() {
        return Ok(());
    }
    match timeout(idle, dst.write_all(&bytes[done..])).await {
        Err(_) => Err(RelayError::DstTimeout),
        Ok(Err(e)) => Err(RelayError::Dst(e)),
        Ok(Ok(())) => Ok(()),
    }
}

/// Polls `f` once: `Some(output)` if it is ready, `None` if it would wait. A poll method
/// called straight: a `write` and a `flush` future polled through `now_or_pending` cost ~45
/// instructions more per HTTP/1.1 request (callgrind).
fn poll_once<T>(mut f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> impl Future<Output = Option<T>> {
    std::future::poll_fn(move |cx| {
        Poll::Ready(match f(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
}

/// Polls a future once: `Some(output)` if it completed, `None` if it would wait (it is
/// dropped then; only for futures whose drop loses nothing, like one `write` call).
pub(crate) trait NowOrPending: Future + Sized {
    async fn now_or_pending(self) -> Option<Self::Output> {
        let mut f = std::pin::pin!(self);
        std::future::poll_fn(|cx| {
            Poll::Ready(match f.as_mut().poll(cx) {
                Poll::Ready(v) => Some(v),
                Poll::Pending => None,
            })
        })
        .await
    }
}
impl<F: Future> NowOrPending for F {}

/// How a relayed body is framed and what is done to it.
#[derive(Debug, Clone, Copy)]
pub struct BodyShape {
    pub framing: Framing,
    /// A chunked body is sent as its data only (the receiver reads until close).
    pub dechunk: bool,
    /// Most data bytes the body may carry: a declared length over it is refused before
    /// anything is written, a chunked body when its data goes over (`RelayError::TooLarge`
    /// before the read that carries the byte over is written).
    pub max_data: Option<u64>,
}

impl BodyShape {
    pub fn plain(framing: Framing) -> BodyShape {
        BodyShape {
            framing,
            dechunk: false,
            max_data: None,
        }
    }
}

impl From<ChunkError> for RelayError {
    fn from(e: ChunkError) -> Self {
        match e {
            ChunkError::Malformed(why) => RelayError::Malformed(why),
            ChunkError::TooLarge => RelayError::TooLarge,
        }
    }
}

/// Relays a body of `shape.framing` from `src` to `dst`: a length-delimited or until-close
/// body as it is, a chunked one validated and re-encoded (`ChunkedReencoder`: normalised
/// sizes, no extensions, checked trailers; or de-chunked). `buf` holds bytes already read from
/// `src` (the body's start); bytes after the body stay in it. `out` holds bytes to write first
/// (a head), so a head and a short body leave in one write.
pub async fn relay<R, W>(
    src: &mut R,
    buf: &mut BytesMut,
    dst: &mut W,
    out: &mut BytesMut,
    shape: BodyShape,
    idle: Duration,
) -> Result<Moved, RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut moved = Moved::default();
    relay_counting(src, buf, dst, out, shape, idle, &mut moved).await?;
    Ok(moved)
}

/// `relay`, counting into `moved` as it goes: what a relay that fails has moved (the bytes a
/// client got of a response cut short, for the access log).
pub async fn relay_counting<R, W>(
    src: &mut R,
    buf: &mut BytesMut,
    dst: &mut W,
    out: &mut BytesMut,
    shape: BodyShape,
    idle: Duration,
    moved: &mut Moved,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let BodyShape {
        framing,
        dechunk,
        max_data,
    } = shape;
    let mut left = match framing {
        Framing::Length(n) if max_data.is_some_and(|max| n > max) => {
            return Err(RelayError::TooLarge);
        }
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut chunked = (framing == Framing::Chunked).then(ChunkedReencoder::default);
    let mut eof = false;
    loop {
        // The body bytes in `buf` go out (or into `out`); is the body complete with them?
        let done = match chunked.as_mut() {
            Some(re) => {
                let k = re.feed(buf, out, dechunk, max_data)?;
                buf.advance(k);
                moved.wire += k as u64;
                re.done()
            }
            None => {
                let take = match framing {
                    Framing::Length(_) => {
                        let k = left.min(buf.len() as u64);
                        left -= k;
                        k as usize
                    }
                    Framing::UntilClose => buf.len(),
                    _ => 0,
                };
                if out.is_empty() && take > 0 {
                    // Nothing queued: write straight from the read buffer.
                    write_all(dst, &buf[..take], idle).await?;
                    moved.written += take as u64;
                } else {
                    out.extend_from_slice(&buf[..take]);
                }
                buf.advance(take);
                moved.wire += take as u64;
                match framing {
                    Framing::Length(_) => left == 0,
                    Framing::UntilClose => eof,
                    _ => true,
                }
            }
        };
        // Inline, not a helper: an async helper's future here cost ~60 instructions per
        // HTTP/1.1 request (callgrind).
        if !out.is_empty() {
            write_all(dst, out, idle).await?;
            moved.written += out.len() as u64;
            out.clear();
        }
        if done {
            break;
        }
        if eof {
            return Err(RelayError::SrcClosed);
        }
        eof = read_more(src, buf, idle).await? == 0;
    }
    // A flush that is done at once (always, on a plain socket) arms no timer.
    let flushed = match poll_once(|cx| Pin::new(&mut *dst).poll_flush(cx)).await {
        Some(r) => Ok(r),
        None => timeout(idle, dst.flush()).await,
    };
    if let Ok(Err(e)) = flushed {
        return Err(RelayError::Dst(e));
    }
    Ok(())
}

/// One read into `buf` (room made when little is left), waiting at most `idle`: how many
/// bytes came (0: the sender closed).
async fn read_more<R: AsyncRead + Unpin>(
    src: &mut R,
    buf: &mut BytesMut,
    idle: Duration,
) -> Result<usize, RelayError> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(CHUNK);
    }
    let read = match src.read_buf(buf).now_or_pending().await {
        Some(r) => Ok(r),
        None => timeout(idle, src.read_buf(buf)).await,
    };
    match read {
        Err(_) => Err(RelayError::SrcTimeout),
        Ok(Err(e)) => Err(RelayError::Src(e)),
        Ok(Ok(n)) => Ok(n),
    }
}

/// Relays a close-delimited body (`Framing::UntilClose`) to an HTTP/1.1 receiver chunked:
/// each read is one chunk, and the last chunk goes out only at the sender's clean close. Sent
/// on close-delimited, a body cut by the sender's reset or stall would look whole to the
/// receiver; chunked, it lacks its last chunk and is incomplete (RFC 9112 §8), as nginx does
/// it. `buf`, `out` and `moved` as in `relay_counting`.
pub async fn until_close_chunked<R, W>(
    src: &mut R,
    buf: &mut BytesMut,
    dst: &mut W,
    out: &mut BytesMut,
    idle: Duration,
    moved: &mut Moved,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut eof = false;
    loop {
        codec::put_chunk(out, buf);
        moved.wire += buf.len() as u64;
        buf.clear();
        if eof {
            out.extend_from_slice(codec::LAST_CHUNK);
        }
        // Inline, not a helper: an async helper's future here cost ~60 instructions per
        // HTTP/1.1 request (callgrind).
        if !out.is_empty() {
            write_all(dst, out, idle).await?;
            moved.written += out.len() as u64;
            out.clear();
        }
        if eof {
            break;
        }
        eof = read_more(src, buf, idle).await? == 0;
    }
    // A flush that is done at once (always, on a plain socket) arms no timer.
    let flushed = match poll_once(|cx| Pin::new(&mut *dst).poll_flush(cx)).await {
        Some(r) => Ok(r),
        None => timeout(idle, dst.flush()).await,
    };
    if let Ok(Err(e)) = flushed {
        return Err(RelayError::Dst(e));
    }
    Ok(())
}

/// Tunnels an upgraded connection both ways until either side closes, an error, or nothing
/// moves for `idle`. `a_pre`/`b_pre`: bytes already read from a (for b) and from b (for a).
pub async fn tunnel<A, B>(
    a: &mut A,
    b: &mut B,
    mut a_pre: BytesMut,
    mut b_pre: BytesMut,
    idle: Duration,
) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    if !a_pre.is_empty() {
        b.write_all(&a_pre).await?;
        a_pre.clear();
    }
    if !b_pre.is_empty() {
        a.write_all(&b_pre).await?;
        b_pre.clear();
    }
    let mut ab = (0u64, 0u64);
    let (mut abuf, mut bbuf) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        let r = timeout(idle, async {
            tokio::select! {
                r = a.read(&mut abuf), if a_open => (true, r),
                r = b.read(&mut bbuf), if b_open => (false, r),
            }
        })
        .await;
        match r {
            Err(_) => break,
            Ok((from_a, Ok(0))) => {
                // One side finished sending: pass the half-close on.
                if from_a {
                    a_open = false;
                    let _ = b.shutdown().await;
                } else {
                    b_open = false;
                    let _ = a.shutdown().await;
                }
            }
            Ok((true, Ok(n))) => {
                timeout(idle, b.write_all(&abuf[..n])).await??;
                ab.0 += n as u64;
            }
            Ok((false, Ok(n))) => {
                timeout(idle, a.write_all(&bbuf[..n])).await??;
                ab.1 += n as u64;
            }
            Ok((_, Err(e))) => return Err(e),
        }
    }
    Ok(ab)
}
