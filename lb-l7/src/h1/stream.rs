//! The client connection's byte stream (`ClientStream`: plain TCP or TLS, see `tcp_or_tls`),
//! and `Rewind`, which gives hyper the bytes weir already read when a plain connection turns
//! out to speak HTTP/2 (prior knowledge).

use crate::tcp_or_tls::TcpOrTls;
use bytes::{Buf, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A client connection: plain TCP or TLS.
pub type ClientStream = TcpOrTls<TlsStream<TcpStream>>;

impl ClientStream {
    /// Readiness to read, as a poll: the waker is kept in the socket's registration, no future
    /// needed. `confirm`: check with a 1-byte peek (a syscall) that bytes or an EOF are really
    /// there; a freshly accepted socket can be reported readable before anything arrived.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>, confirm: bool) -> Poll<()> {
        match self {
            ClientStream::Plain(s) if confirm => {
                let mut one = [0u8; 1];
                let mut b = ReadBuf::new(&mut one);
                s.poll_peek(cx, &mut b).map(|_| ())
            }
            ClientStream::Plain(s) => s.poll_read_ready(cx).map(|_| ()),
            // TLS: ready when rustls holds plaintext (or a close_notify) already, else when
            // the socket is: an idle TLS connection then waits here, without a read future
            // or a buffer (`crate::tcp_or_tls::poll_tls_read_ready`).
            ClientStream::Tls(s) => crate::tcp_or_tls::poll_tls_read_ready(s, cx),
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(s) => s.get_ref().0,
        }
    }
}

/// A stream with bytes already read in front of it.
pub struct Rewind<T> {
    pre: BytesMut,
    inner: T,
}

impl<T> Rewind<T> {
    pub fn new(pre: BytesMut, inner: T) -> Rewind<T> {
        Rewind { pre, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining());
            buf.put_slice(&this.pre[..n]);
            this.pre.advance(n);
            if this.pre.is_empty() {
                // Replayed: the buffer (a read buffer of the worker's) goes back rather than
                // staying with the connection for its life.
                crate::pipeline::readbuf::give_back(std::mem::take(&mut this.pre));
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
