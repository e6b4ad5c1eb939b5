//! A lingering close (nginx's `lingering_close`, HAProxy's drain before close), for both HTTP/2
//! engines' connections and HTTP/1.1 ones whose client was still sending: once a connection's
//! last bytes are written and its write side is shut (FIN; TLS: close_notify first), what the
//! client still sends is read and dropped until it closes its side, a read fails, it stays
//! quiet for [`Bounds::quiet`], [`Bounds::total`] passes or [`Bounds::bytes`] were read; only
//! then is the socket closed.
//!
//! Why: Linux answers close(2) with a reset instead of a FIN when unread bytes are in the
//! receive queue (and answers bytes arriving after it with resets too). That reset drops what
//! weir's send queue still held (the GOAWAY, whose error code and last stream id tell the
//! client which requests it may retry, and the last responses, when the client's window was
//! full), and the client's next read fails with ECONNRESET instead of an EOF: many clients then
//! fail the connection with the I/O error, and some systems drop what was received and not
//! read yet (Linux hands it over first). HTTP/2 clients send all the time (WINDOW_UPDATE, PING
//! acknowledgements, requests already in flight), so without this the reset is the normal
//! case, not an edge.
//!
//! The bounds: a client that reads the GOAWAY closes within a round trip (EOF ends the linger
//! at once), so 2 s in all is ten round trips of a bad mobile path (200 ms), and 0.5 s without
//! a byte means the client is not sending (closing then resets nothing). A client that keeps
//! sending is closed at the total (reset, as before) and at most 1 MiB is read and dropped
//! (decrypted, on an HTTP/2 TLS connection: about a millisecond of CPU). While it lingers the
//! connection keeps its place in the gauges, the connection limit and the worker's drain (its
//! task is still running), so a stop waits for it at most the total, and never past the
//! drain's own deadline. A client that closed or reset first is closed at once (its read
//! returns at once). No task or timer outlives the linger; it runs in the connection's task.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

/// How long a lingering close may last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// From the start of the linger (the write side's shutdown included).
    pub total: Duration,
    /// Without a byte from the client.
    pub quiet: Duration,
    /// Read and dropped in all.
    pub bytes: u64,
}

/// weir's bounds (see the module's comment for why).
pub const BOUNDS: Bounds = Bounds {
    total: Duration::from_secs(2),
    quiet: Duration::from_millis(500),
    bytes: 1 << 20,
};

/// Bytes read per call while lingering (a buffer of the linger alone).
const SCRATCH: usize = 8 * 1024;

/// Why a linger ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client closed its side (or TLS: sent close_notify).
    Eof,
    /// Reading failed (the client reset the connection, a TLS error).
    Error,
    /// The client sent nothing for [`Bounds::quiet`].
    Quiet,
    /// [`Bounds::total`] passed, the client still sending.
    Time,
    /// [`Bounds::bytes`] were read, the client still sending.
    Bytes,
    /// The write side could not be shut (the client takes no bytes): not lingered.
    NotShut,
}

/// Shuts the write side of `io` (TLS: close_notify, then FIN; done already is fine), then
/// lingers ([`drain`]); the caller closes the socket (drops `io`) afterwards. The shutdown
/// shares the total bound: a client that takes no bytes is not waited for.
pub async fn close<T: AsyncRead + AsyncWrite + Unpin>(io: &mut T, bounds: Bounds) -> Ended {
    let until = Instant::now() + bounds.total;
    if !shut(io, until).await {
        return Ended::NotShut;
    }
    let mut scratch = vec![0u8; SCRATCH];
    drain(io, &mut scratch, bounds, until).await
}

/// HTTP/1.1's close, as nginx's `lingering_close on` decides: the write side of `io` shut (as
/// [`close`]), what the client queued already read at once, without waiting, and the linger
/// ([`drain`]) only for a client that was still sending: `sending` (bytes the engine read and
/// will not serve) or bytes found queued now (a body weir refused, pipelined requests after
/// the last). A client that was not (an idle close, the usual `connection: close`) is closed
/// at once, as is one that closed or reset first. The bytes are read from `tcp(io)`, the
/// socket under any TLS: nothing the client sends after weir's last response is decrypted.
/// `None`: the client was not sending, not lingered.
pub async fn close_if_sending<T: AsyncWrite + Unpin>(
    io: &mut T,
    tcp: fn(&mut T) -> &mut tokio::net::TcpStream,
    mut sending: bool,
    bounds: Bounds,
) -> Option<Ended> {
    let until = Instant::now() + bounds.total;
    if !shut(io, until).await {
        return Some(Ended::NotShut);
    }
    let tcp = tcp(io);
    // A few reads of what is queued: enough to see whether the client was sending; more is
    // the linger's.
    let mut scratch = [0u8; 4096];
    for _ in 0..16 {
        match tcp.try_read(&mut scratch) {
            Ok(0) => return Some(Ended::Eof),
            Ok(_) => sending = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => return Some(Ended::Error),
        }
    }
    if !sending {
        return None;
    }
    Some(drain(tcp, &mut scratch, bounds, until).await)
}

/// Shuts the write side of `io` by `until`; false if it failed or did not finish.
async fn shut<T: AsyncWrite + Unpin>(io: &mut T, until: Instant) -> bool {
    match tokio::time::timeout_at(until, io.shutdown()).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::trace!(error = %e, "shutdown before the linger failed");
            false
        }
        Err(_) => false,
    }
}

/// Reads and drops what the client sends until it closes, a read fails, it is quiet for
/// `bounds.quiet`, `until` passes or `bounds.bytes` were read.
pub async fn drain<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: &mut [u8],
    bounds: Bounds,
    until: Instant,
) -> Ended {
    let mut read = 0u64;
    loop {
        let now = Instant::now();
        if now >= until {
            return Ended::Time;
        }
        let wait = (until - now).min(bounds.quiet);
        match tokio::time::timeout(wait, io.read(buf)).await {
            Ok(Ok(0)) => return Ended::Eof,
            Ok(Ok(n)) => {
                read += n as u64;
                if read >= bounds.bytes {
                    return Ended::Bytes;
                }
            }
            Ok(Err(_)) => return Ended::Error,
            Err(_) if wait < bounds.quiet => return Ended::Time,
            Err(_) => return Ended::Quiet,
        }
    }
}

/// An I/O object handed to a server that drops it when the connection ends (hyper's): on drop
/// it sends the inner stream back, so the connection's task can linger on it.
pub struct GiveBack<T> {
    inner: Option<T>,
    back: Option<tokio::sync::oneshot::Sender<T>>,
}

impl<T> GiveBack<T> {
    /// `io` wrapped, and where it comes back once the wrapper is dropped.
    pub fn new(io: T) -> (GiveBack<T>, tokio::sync::oneshot::Receiver<T>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (
            GiveBack {
                inner: Some(io),
                back: Some(tx),
            },
            rx,
        )
    }

    fn io(&mut self) -> io::Result<&mut T> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl<T> Drop for GiveBack<T> {
    fn drop(&mut self) {
        if let (Some(io), Some(back)) = (self.inner.take(), self.back.take()) {
            // A receiver gone: the stream is dropped here instead.
            let _ = back.send(io);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GiveBack<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GiveBack<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|io| io.is_write_vectored())
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected loopback pair: (client, server).
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (c, s)
    }

    /// The server writes its last 64 KiB and closes with the client's bytes unread, the client
    /// reading only later: with the linger the client reads all of it and then EOF; closed at
    /// once (the old way), the client's read ends in a reset (Linux still hands over what had
    /// arrived; a peer that had not received it yet, or other systems, lose it). The linger
    /// ends at the client's close.
    #[tokio::test]
    async fn client_reads_the_last_bytes_then_eof() {
        for linger in [true, false] {
            let (mut c, mut s) = pair().await;
            c.write_all(b"in flight").await.unwrap();
            let last = vec![7u8; 64 * 1024];
            let server = tokio::spawn(async move {
                s.write_all(&last).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                let r = if linger {
                    Some(close(&mut s, BOUNDS).await)
                } else {
                    None
                };
                drop(s);
                r
            });
            // Still sending before the server closes; reading only afterwards.
            tokio::time::sleep(Duration::from_millis(10)).await;
            c.write_all(b"more").await.unwrap();
            tokio::time::sleep(Duration::from_millis(140)).await;
            let mut got = Vec::new();
            let r = c.read_to_end(&mut got).await;
            if linger {
                assert!(r.is_ok(), "with the linger: {r:?}");
                assert_eq!(got.len(), 64 * 1024);
                drop(c);
                assert_eq!(server.await.unwrap(), Some(Ended::Eof));
            } else {
                let e = r.expect_err("closed at once: the client's read is reset");
                assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
            }
        }
    }

    /// A client that never stops sending is closed at the total bound; one that stops is
    /// closed after the quiet bound; bytes are bounded.
    #[tokio::test]
    async fn bounds_hold() {
        let b = Bounds {
            total: Duration::from_millis(400),
            quiet: Duration::from_millis(100),
            bytes: 1 << 30,
        };
        let (mut c, mut s) = pair().await;
        let sender = tokio::spawn(async move {
            while c.write_all(&[1u8; 100]).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let t0 = std::time::Instant::now();
        assert_eq!(close(&mut s, b).await, Ended::Time);
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(400) && took < Duration::from_millis(700));
        drop(s);
        sender.abort();

        let (c, mut s) = pair().await;
        let t0 = std::time::Instant::now();
        assert_eq!(close(&mut s, b).await, Ended::Quiet);
        assert!(t0.elapsed() < Duration::from_millis(300));
        drop(c);

        let (mut c, mut s) = pair().await;
        c.write_all(&[1u8; 5000]).await.unwrap();
        let few = Bounds { bytes: 4000, ..b };
        assert_eq!(close(&mut s, few).await, Ended::Bytes);
    }

    /// HTTP/1.1's close lingers only on a client that was still sending: one that sent
    /// nothing more is closed at once; one with bytes queued, or whose bytes the engine had
    /// read (`sending`), is read from until it closes or goes quiet.
    #[tokio::test]
    async fn http11_lingers_only_on_a_client_still_sending() {
        fn tcp(s: &mut TcpStream) -> &mut TcpStream {
            s
        }
        let b = Bounds {
            total: Duration::from_millis(2000),
            quiet: Duration::from_millis(200),
            bytes: 1 << 20,
        };
        // Idle: closed at once, the client reads EOF.
        let (mut c, mut s) = pair().await;
        let t0 = std::time::Instant::now();
        assert_eq!(close_if_sending(&mut s, tcp, false, b).await, None);
        assert!(t0.elapsed() < Duration::from_millis(100));
        drop(s);
        let mut rest = Vec::new();
        assert_eq!(c.read_to_end(&mut rest).await.unwrap(), 0);

        // Bytes queued (a pipelined request): lingered on until the client's EOF.
        let (mut c, mut s) = pair().await;
        c.write_all(b"GET /next HTTP/1.1\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let client = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            c.write_all(b"host: a\r\n\r\n").await.unwrap();
            drop(c);
        });
        let t0 = std::time::Instant::now();
        assert_eq!(
            close_if_sending(&mut s, tcp, false, b).await,
            Some(Ended::Eof)
        );
        assert!(t0.elapsed() >= Duration::from_millis(90));
        client.await.unwrap();

        // Bytes the engine read and left: lingered on until the client is quiet.
        let (_c, mut s) = pair().await;
        let t0 = std::time::Instant::now();
        assert_eq!(
            close_if_sending(&mut s, tcp, true, b).await,
            Some(Ended::Quiet)
        );
        assert!(t0.elapsed() >= Duration::from_millis(200));

        // The client closed first: not lingered on.
        let (c, mut s) = pair().await;
        drop(c);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let e = close_if_sending(&mut s, tcp, true, b).await;
        assert!(
            matches!(e, Some(Ended::Eof | Ended::Error | Ended::NotShut)),
            "{e:?}"
        );
    }

    /// A client that closed first is not lingered on.
    #[tokio::test]
    async fn closed_client_ends_it_at_once() {
        let (c, mut s) = pair().await;
        drop(c);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = std::time::Instant::now();
        let e = close(&mut s, BOUNDS).await;
        assert!(
            matches!(e, Ended::Eof | Ended::Error | Ended::NotShut),
            "{e:?}"
        );
        assert!(t0.elapsed() < Duration::from_millis(50));
    }
}
