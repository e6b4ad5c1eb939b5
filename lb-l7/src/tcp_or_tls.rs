//! A byte stream that is plain TCP or TLS over TCP: the client side (`h1::stream::ClientStream`,
//! a rustls server stream) and the target side (`upstream::UpStream`, a rustls client stream),
//! one type so the engines are not generic over it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

#[derive(Debug)]
pub enum TcpOrTls<T> {
    Plain(TcpStream),
    Tls(Box<T>),
}

impl<T: AsyncRead + Unpin> AsyncRead for TcpOrTls<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TcpOrTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            TcpOrTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TcpOrTls<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TcpOrTls::Plain(s) => poll_write_plain(s, cx, buf),
            TcpOrTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TcpOrTls::Plain(s) => Pin::new(s).poll_flush(cx),
            TcpOrTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TcpOrTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            TcpOrTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TcpOrTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            TcpOrTls::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            TcpOrTls::Plain(s) => s.is_write_vectored(),
            TcpOrTls::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// tokio's `TcpStream::poll_write`, the socket written at once when the reactor says it is
/// writable (its `try_io`: a look at the readiness, ~45 instructions fewer a write than the
/// poll that looks at it with a waker; two writes a request, callgrind). The same: the task's
/// budget is taken as the poll takes it (so a relay still yields), the same `send`, the
/// readiness cleared on `WouldBlock` and on a short write as tokio clears it (epoll is
/// edge-triggered: a short write filled the socket); not writable, tokio's poll waits. (Reads
/// done so cost more than tokio's poll, callgrind: they stay tokio's.)
fn poll_write_plain(
    s: &mut TcpStream,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
    let mut short = 0;
    let r = s.try_io(tokio::io::Interest::WRITABLE, || match s.try_write(buf) {
        Ok(n) if 0 < n && n < buf.len() => {
            short = n;
            Err(io::ErrorKind::WouldBlock.into())
        }
        r => r,
    });
    match r {
        Ok(n) => {
            coop.made_progress();
            Poll::Ready(Ok(n))
        }
        Err(_) if short > 0 => {
            coop.made_progress();
            Poll::Ready(Ok(short))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            drop(coop);
            Pin::new(s).poll_write(cx, buf)
        }
        Err(e) => Poll::Ready(Err(e)),
    }
}

/// Readiness to read a TLS server stream, as a poll (the waker is kept in the socket's
/// registration): ready at once when rustls holds decrypted bytes not yet read or the peer's
/// close_notify (`wants_read` is false then), otherwise when the socket is readable. rustls
/// processes every complete record it read (`process_new_packets`), so bytes it holds
/// otherwise are a partial record, which needs the socket's next bytes anyway. A spurious
/// readiness only costs the caller a read that finds nothing.
pub fn poll_tls_read_ready(
    s: &tokio_rustls::server::TlsStream<TcpStream>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let (tcp, conn) = s.get_ref();
    if !conn.wants_read() {
        return Poll::Ready(());
    }
    tcp.poll_read_ready(cx).map(|_| ())
}

/// The plain writes against tokio's poll, which they replace (the oracle: the
/// `TcpStream` itself): twin socket pairs put in the same state, one written by each, the
/// outcomes, the bytes and the readiness left behind compared.
#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::Duration;
    use tokio::net::TcpListener;

    type Stream = TcpOrTls<tokio_rustls::server::TlsStream<TcpStream>>;

    async fn pair(l: &TcpListener) -> (TcpStream, std::net::TcpStream) {
        let ours = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (peer, _) = l.accept().await.unwrap();
        let peer = peer.into_std().unwrap();
        peer.set_nonblocking(false).unwrap();
        (ours, peer)
    }

    fn writable(s: &TcpStream) -> bool {
        s.try_io(tokio::io::Interest::WRITABLE, || Ok(())).is_ok()
    }

    /// What a poll gave: pending, the count written, an error's kind.
    #[derive(Debug, PartialEq)]
    enum Got {
        Pending,
        Wrote(usize),
        Short,
        Err(io::ErrorKind),
    }

    async fn write_once(s: &mut Stream, old: bool, data: &[u8]) -> Got {
        std::future::poll_fn(|cx| {
            let p = match s {
                TcpOrTls::Plain(t) if old => Pin::new(t).poll_write(cx, data),
                _ => Pin::new(&mut *s).poll_write(cx, data),
            };
            Poll::Ready(match p {
                Poll::Pending => Got::Pending,
                // A short write's length is the kernel's (the twins' buffers may differ).
                Poll::Ready(Ok(n)) if n < data.len() => Got::Short,
                Poll::Ready(Ok(n)) => Got::Wrote(n),
                Poll::Ready(Err(e)) => Got::Err(e.kind()),
            })
        })
        .await
    }

    fn tcp(s: &Stream) -> &TcpStream {
        match s {
            TcpOrTls::Plain(t) => t,
            TcpOrTls::Tls(_) => unreachable!(),
        }
    }

    #[tokio::test]
    async fn plain_writes_are_tokios() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut twins = Vec::new();
        let mut peers = Vec::new();
        for _ in 0..2 {
            let (ours, peer) = pair(&l).await;
            socket2::SockRef::from(&ours)
                .set_send_buffer_size(4096)
                .unwrap();
            socket2::SockRef::from(&peer)
                .set_recv_buffer_size(4096)
                .unwrap();
            peers.push(peer);
            twins.push(Stream::Plain(ours));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let [old, new] = &mut twins[..] else {
            unreachable!()
        };
        let small = b"GET / HTTP/1.1\r\n\r\n";
        let big = vec![b'x'; 1 << 20];
        let mut seen = Vec::new();
        // A write, one that fills the buffers (short), one that finds them full.
        for (step, data) in [&small[..], &big, &big, small].into_iter().enumerate() {
            let got = write_once(old, true, data).await;
            assert_eq!(write_once(new, false, data).await, got, "step {step}");
            assert_eq!(writable(tcp(new)), writable(tcp(old)), "step {step}");
            seen.push(got);
        }
        assert_eq!(
            seen[..3],
            [Got::Wrote(small.len()), Got::Short, Got::Pending]
        );
        // The peer got the same bytes first.
        for p in &mut peers {
            let mut b = vec![0u8; small.len()];
            p.read_exact(&mut b).unwrap();
            assert_eq!(b, small);
        }
        // Reset by the peer: the write fails alike.
        for p in peers {
            socket2::SockRef::from(&p)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for step in 0..2 {
            let got = write_once(old, true, small).await;
            assert_eq!(
                write_once(new, false, small).await,
                got,
                "after reset {step}"
            );
            assert!(matches!(got, Got::Err(_)), "{got:?}");
        }
    }
}
