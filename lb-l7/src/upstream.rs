//! A connection to a target: plain TCP, or TLS for an HTTPS target group. As on ALB, the
//! target's certificate is not verified (targets are addressed by IP and commonly use
//! self-signed certificates); the handshake's signatures are, and sessions are resumed when
//! the target allows it. No SNI is sent: targets are IP addresses.

use crate::pool::Pooled;
use crate::target_conns::Held;
use crate::tcp_or_tls::TcpOrTls;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// One connection to a target: plain TCP or TLS, counted in the worker's target connections
/// while it exists.
#[derive(Debug)]
pub struct UpStream {
    io: TcpOrTls<TlsStream<TcpStream>>,
    _held: Held,
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect: {0}")]
    Tcp(io::Error),
    #[error("TLS handshake: {0}")]
    Tls(io::Error),
}

/// Opens a connection to `addr`, with a TLS handshake when `tls` is given; it keeps `held`
/// (its place in the worker's count) until dropped.
pub async fn connect(
    addr: SocketAddr,
    tls: Option<&TlsConnector>,
    held: Held,
) -> Result<UpStream, ConnectError> {
    let tcp = TcpStream::connect(addr).await.map_err(ConnectError::Tcp)?;
    let _ = tcp.set_nodelay(true);
    let Some(connector) = tls else {
        return Ok(UpStream {
            io: TcpOrTls::Plain(tcp),
            _held: held,
        });
    };
    let name = ServerName::IpAddress(addr.ip().into());
    let s = connector
        .connect(name, tcp)
        .await
        .map_err(ConnectError::Tls)?;
    Ok(UpStream {
        io: TcpOrTls::Tls(Box::new(s)),
        _held: held,
    })
}

impl AsyncRead for UpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for UpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The TLS client of an HTTPS target group (one per group in a worker, kept when the group is
/// rebuilt by a generation, its session cache with it: `GroupRt::new`): TLS 1.2 and 1.3, ALPN
/// `http/1.1`, no certificate verification (ALB's behaviour).
pub fn connector() -> TlsConnector {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(AnyCertificate(provider.clone()));
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(cfg))
}

/// Accepts any certificate chain (ALB does not verify targets'), but checks the handshake's
/// signatures with the chain's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl Pooled for UpStream {
    fn is_closed(&mut self) -> bool {
        match &mut self.io {
            TcpOrTls::Plain(s) => s.is_closed(),
            TcpOrTls::Tls(s) => {
                // Not readable by the reactor's account: open (a look at its readiness, no
                // syscall, no waker stored: `pool`'s `is_closed` for plain streams).
                if !crate::pool::readable(s.get_ref().0) {
                    return false;
                }
                let mut cx = Context::from_waker(std::task::Waker::noop());
                // Readable while idle: TLS 1.3 targets send session tickets after the
                // handshake, which rustls takes without yielding data (Pending: still fine).
                // Data, EOF (close_notify) or an error: the connection is not reused.
                let mut byte = [0u8; 1];
                let mut buf = ReadBuf::new(&mut byte);
                !matches!(
                    Pin::new(s.as_mut()).poll_read(&mut cx, &mut buf),
                    Poll::Pending
                )
            }
        }
    }
    fn peer(&self) -> Option<SocketAddr> {
        match &self.io {
            TcpOrTls::Plain(s) => s.peer_addr().ok(),
            TcpOrTls::Tls(s) => s.get_ref().0.peer_addr().ok(),
        }
    }
}
