//! Phases accept and tls: take connections, enforce the per-worker limit, terminate TLS, and
//! hand the stream to an engine: weir's HTTP/1.1 engine (`crate::h1`), or, for clients that
//! negotiated h2, the HTTP/2 engine the connection's generation names
//! (`[load_balancer] http2_engine`: hyper's server `crate::h2`, or weir's own
//! `crate::h2weir`); a plain connection that turns out to speak h2c goes from the first to
//! the second through here. The one module above the engines (`crate::layering`).

pub mod fd_limit;
pub mod park;

use crate::config::Http2Engine;
use crate::h1;
use crate::h1::stream::{ClientStream, Rewind};
use crate::h2::server::{http_builder, serve_h2c, serve_http};
use crate::h2weir;
use crate::pipeline::{ConnInfo, ConnState, ListenerRt, Shared, TlsInfo, stopped};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Decrements the active connection count and releases the drain token when dropped.
pub(crate) struct Active {
    sh: Arc<Shared>,
    _token: Arc<()>,
    /// The worker's parking lot, which takes the connection over while it is idle.
    lot: Arc<park::Lot>,
    /// The listener's port, for its own count (`Metrics::listener`).
    port: u16,
}

/// A plain connection's guard parks it in the worker's lot (`park`) while it is idle.
impl h1::server::Guard for Active {
    const PARKS: bool = true;
    fn park(self, idle: h1::server::Idle) -> Result<(), (Self, h1::server::Idle)> {
        let lot = self.lot.clone();
        lot.park(self, idle)
    }
}
impl Drop for Active {
    fn drop(&mut self) {
        let m = &self.sh.metrics;
        m.active_connections.fetch_sub(1, Relaxed);
        if let Some(l) = m.listener(self.port) {
            l.active_connections.fetch_sub(1, Relaxed);
        }
    }
}

/// After the stop, the accept loop takes what is still queued on its socket until none arrived
/// for this long (the control plane refuses new connections first: see `Worker::serve`).
const FINAL_QUIET: Duration = Duration::from_millis(50);
/// ... and for this long at most, in case new connections keep coming (kernel steering).
const FINAL_MAX: Duration = Duration::from_millis(1000);

/// Accepts connections to listener `index` until `stop_accepting`, then takes the connections
/// still queued (see [`FINAL_QUIET`]) and returns, closing this process's descriptor of the
/// socket. Each connection starts in the newest configuration generation.
pub async fn accept_loop(
    sh: Arc<Shared>,
    index: usize,
    tcp: TcpListener,
    shutdown: watch::Receiver<bool>,
    stop_accepting: watch::Receiver<bool>,
    token: Arc<()>,
    lot: Arc<park::Lot>,
) {
    let Some(l) = sh.listeners.get(index).cloned() else {
        tracing::error!(index, "no listener of this index in the configuration");
        return;
    };
    let mut lp = Loop {
        builder: Arc::new(http_builder(&sh)),
        sh,
        l,
        shutdown,
        token,
        lot,
    };
    let mut stop = stop_accepting;
    let mut fd_limit = fd_limit::FdLimit::new(&tcp);
    loop {
        let r = tokio::select! {
            r = tcp.accept() => r,
            _ = stopped(&mut stop) => break,
        };
        lp.accepted(r, &tcp, &mut fd_limit).await;
    }
    let end = tokio::time::Instant::now() + FINAL_MAX;
    let mut taken = 0u64;
    while tokio::time::Instant::now() < end {
        match tokio::time::timeout(FINAL_QUIET, tcp.accept()).await {
            Ok(r) => {
                taken += u64::from(r.is_ok());
                lp.accepted(r, &tcp, &mut fd_limit).await;
            }
            Err(_) => break,
        }
    }
    tracing::debug!(
        port = lp.l.config.port,
        taken,
        "accept queue drained; listener closed"
    );
}

/// What every connection an accept loop takes needs: the generation and listener it starts in.
struct Loop {
    sh: Arc<Shared>,
    l: Arc<ListenerRt>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: watch::Receiver<bool>,
    token: Arc<()>,
    lot: Arc<park::Lot>,
}

impl Loop {
    /// Moves to the newest generation, if there is a newer one that still has this listener
    /// (a listener a reload removed takes its last connections in its own generation).
    fn refresh(&mut self) {
        if let Some(n) = self.sh.newest()
            && let Some(l) = n.listener_on(self.l.config.port)
        {
            self.l = l.clone();
            self.builder = Arc::new(http_builder(&n));
            self.sh = n;
        }
    }

    /// At the connection limit: whether idle keep-alive connections made room for a new one
    /// (`park::Lot::make_room`), counted and logged (rate-limited) when some were closed.
    fn made_room(&self, port: u16) -> bool {
        let sh = &self.sh;
        let made = self.lot.make_room(&sh.idle);
        if made.closed > 0 {
            sh.metrics
                .idle_closed_at_limit
                .fetch_add(made.closed as u64, Relaxed);
            crate::warn_limited!(
                port,
                closed = made.closed,
                max_connections_per_worker = sh.limits.max_connections,
                "connection limit reached: idle keep-alive connections closed to make room (raise max_connections_per_worker, and RLIMIT_NOFILE with it)"
            );
        }
        made.take
    }

    /// One result of accept(2): a connection gets its task (or is rejected over the limit, when
    /// no idle keep-alive connection can make room for it).
    async fn accepted(
        &mut self,
        r: std::io::Result<(TcpStream, std::net::SocketAddr)>,
        tcp: &TcpListener,
        fd_limit: &mut fd_limit::FdLimit,
    ) {
        self.refresh();
        let (sh, l) = (&self.sh, &self.l);
        let (stream, peer) = match r {
            Ok(x) => x,
            Err(e) if fd_limit::is_fd_limit(&e) => {
                out_of_fds(sh, l, tcp, fd_limit, &e).await;
                return;
            }
            Err(e) => {
                crate::warn_limited!(error = %e, port = l.config.port, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                return;
            }
        };
        let m = &sh.metrics;
        let port = l.config.port;
        let per_listener = m.listener(port);
        m.new_connections.fetch_add(1, Relaxed);
        if let Some(c) = per_listener {
            c.new_connections.fetch_add(1, Relaxed);
        }
        if m.active_connections.load(Relaxed) as usize >= sh.limits.max_connections
            && !self.made_room(port)
        {
            m.rejected_connections.fetch_add(1, Relaxed);
            if let Some(c) = per_listener {
                c.rejected_connections.fetch_add(1, Relaxed);
            }
            // As nginx's "worker_connections are not enough": an operator sees it in the log,
            // not only in weir_rejected_connection_count_total (rate-limited).
            crate::warn_limited!(%peer, port, max_connections_per_worker = sh.limits.max_connections,
                "connection limit reached: connection rejected (raise max_connections_per_worker, and RLIMIT_NOFILE with it)");
            drop(stream);
            return;
        }
        m.active_connections.fetch_add(1, Relaxed);
        if let Some(c) = per_listener {
            c.active_connections.fetch_add(1, Relaxed);
        }
        let active = Active {
            sh: sh.clone(),
            _token: self.token.clone(),
            lot: self.lot.clone(),
            port,
        };
        match &l.tls {
            None => {
                let fut = plain_connection(active, l.clone(), stream, peer);
                tokio::spawn(fut);
            }
            Some(tls) => {
                let acceptor = TlsAcceptor::from(tls.clone());
                let (builder, l) = (self.builder.clone(), l.clone());
                let shutdown = self.shutdown.clone();
                tokio::spawn(async move {
                    let sh = active.sh.clone();
                    serve_tls(sh, l, stream, peer, acceptor, builder, shutdown).await;
                    drop(active);
                });
            }
        }
    }
}

/// accept(2) found no free descriptor: shed the queued connections (counted as rejected), warn
/// once per interval, pause only when nothing could be shed ([`fd_limit`]).
async fn out_of_fds(
    sh: &Shared,
    l: &ListenerRt,
    tcp: &TcpListener,
    fd_limit: &mut fd_limit::FdLimit,
    e: &std::io::Error,
) {
    let shed = fd_limit.shed(tcp).await;
    let total = sh
        .metrics
        .rejected_connections
        .fetch_add(shed.rejected, Relaxed)
        + shed.rejected;
    if let Some(c) = sh.metrics.listener(l.config.port) {
        c.rejected_connections.fetch_add(shed.rejected, Relaxed);
    }
    if let Some(rejected) = fd_limit.log_due(std::time::Instant::now()) {
        tracing::warn!(error = %e, port = l.config.port, rejected, total_rejected = total,
            "out of file descriptors: connections rejected (raise RLIMIT_NOFILE or lower max_connections_per_worker)");
    }
    if shed.pause {
        tokio::time::sleep(fd_limit::PAUSE).await;
    } else {
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
pub(crate) fn plain_connection_for_test(
    sh: Arc<Shared>,
    l: Arc<ListenerRt>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
) -> impl Future<Output = ()> + Send + 'static {
    // Counted as the accept loop does.
    sh.metrics.active_connections.fetch_add(1, Relaxed);
    if let Some(c) = sh.metrics.listener(l.config.port) {
        c.active_connections.fetch_add(1, Relaxed);
    }
    let active = Active {
        port: l.config.port,
        sh,
        _token: Arc::new(()),
        lot: Arc::new(park::Lot::new(None).expect("epoll_create1")),
    };
    plain_connection(active, l, stream, peer)
}

/// A plain connection: HTTP/1.1 (and h2c prior knowledge, handed to hyper) on weir's engine.
/// Not an `async fn`: the returned future is what an idle keep-alive connection costs, and an
/// async wrapper would store its arguments a second time.
fn plain_connection(
    active: Active,
    l: Arc<ListenerRt>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
) -> impl Future<Output = ()> + Send + 'static {
    let _ = stream.set_nodelay(true);
    let sh = active.sh.clone();
    let local = crate::pipeline::local_ip(&l.config, || stream.local_addr());
    let ci = Arc::new(ConnInfo::new(
        &sh,
        l,
        peer,
        local,
        None,
        sh.h1_state.clone(),
    ));
    h1::server::serve(sh, ci, ClientStream::Plain(stream), active, h2c)
}

/// A connection the HTTP/1.1 engine found speaking h2c: to the HTTP/2 engine its generation
/// names.
fn h2c(
    sh: Arc<Shared>,
    ci: Arc<ConnInfo>,
    io: Rewind<ClientStream>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    match sh.config.load_balancer.http2_engine {
        Http2Engine::Hyper => Box::pin(serve_h2c(sh, ci, io)),
        Http2Engine::Weir => Box::pin(h2weir::server::serve(sh, ci, io)),
    }
}

/// A TLS connection: the handshake, then weir's HTTP/1.1 engine or the HTTP/2 engine by
/// ALPN. Memory: the task of an idle TLS connection is this future, so the handshake's state
/// (rustls's connection in the making, its deadline) is boxed and freed when it completes, and
/// the established stream is boxed once, outside the future (`established`).
#[allow(clippy::too_many_arguments)]
async fn serve_tls(
    sh: Arc<Shared>,
    l: Arc<ListenerRt>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: watch::Receiver<bool>,
) {
    let Some((tls_stream, cert)) = Box::pin(handshake(&sh, stream, peer, acceptor)).await else {
        return;
    };
    let (ci, h2) = established(&sh, l, peer, &tls_stream, cert);
    // Boxed: an HTTP/2 connection's future is large and only HTTP/2 connections need it. The
    // HTTP/2 engine is the generation's `http2_engine`.
    if h2 {
        match sh.config.load_balancer.http2_engine {
            Http2Engine::Hyper => {
                Box::pin(serve_http(sh, ci, *tls_stream, builder, shutdown)).await
            }
            Http2Engine::Weir => Box::pin(h2weir::server::serve(sh, ci, *tls_stream)).await,
        }
    } else {
        let io = ClientStream::Tls(tls_stream);
        h1::server::serve(sh, ci, io, (), h2c).await
    }
}

/// The TLS handshake, counted when it fails after the client sent something (ALB's
/// ClientTLSNegotiationErrorCount: a connection closed, reset or silent before its first byte,
/// a port probe or an L4 health check, is no TLS negotiation). The handshake is the first part
/// of the request head: it gets the header read timeout from the accept on (TLS slowloris).
async fn handshake(
    sh: &Shared,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    acceptor: TlsAcceptor,
) -> Option<(
    Box<tokio_rustls::server::TlsStream<TcpStream>>,
    Option<usize>,
)> {
    let limit = sh.limits.header_read_timeout;
    let mut began = false;
    let (r, resolved) = crate::tls::recording(tokio::time::timeout(
        limit,
        start_tls(stream, acceptor, &mut began),
    ))
    .await;
    let failed = match r {
        Ok(Ok(s)) => return Some((Box::new(s), resolved.index)),
        Ok(Err(f)) => Some(f),
        Err(_) => None,
    };
    if !began {
        return None;
    }
    sh.metrics
        .client_tls_negotiation_errors
        .fetch_add(1, Relaxed);
    match failed {
        Some(f) => tracing::debug!(%peer, error = %f, "TLS handshake failed"),
        None => tracing::debug!(%peer, "TLS handshake failed: timed out"),
    }
    None
}

/// Bytes of the client's first read on a TLS connection: a ClientHello (~0.5–2 KB) in one
/// piece, which rustls then reads from here instead of the socket (the read it would do).
const FIRST_READ: usize = 4096;

/// The alert `no_application_protocol` (fatal), a plaintext record as before any key: what an
/// `HTTP2Only` listener answers a client that offers no ALPN (RFC 7301 §3.2's alert).
const NO_APPLICATION_PROTOCOL: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x78];

/// Why a TLS connection ended before its handshake completed.
#[derive(Debug, thiserror::Error)]
enum Failed {
    /// Closed or reset before its first byte.
    #[error("closed before a byte")]
    Quiet,
    #[error("{0}")]
    Tls(String),
    /// `HTTP2Only`: the client offered no ALPN.
    #[error("no ALPN offered to an HTTP2Only listener (no_application_protocol)")]
    NoAlpn,
    /// A plain HTTP request: answered 400 in plaintext ([`PLAIN_HTTP_BODY`]).
    #[error("plain HTTP request on a TLS listener (answered 400)")]
    PlainHttp,
}

/// The body of the 400 a plain HTTP request on a TLS listener gets (as nginx's "The plain HTTP
/// request was sent to HTTPS port").
const PLAIN_HTTP_BODY: &str = "weir: a plain HTTP request was sent to an HTTPS port\n";

/// Whether the first bytes of a connection start an HTTP request line rather than a TLS record
/// (whose first byte, a handshake's, is 0x16): a method (1–20 uppercase letters, `-` or `_`)
/// then a space, or the end of what came so far.
fn looks_like_http(b: &[u8]) -> bool {
    let method = b
        .iter()
        .take_while(|c| c.is_ascii_uppercase() || **c == b'-' || **c == b'_')
        .count();
    (1..=20).contains(&method) && b.get(method).is_none_or(|c| *c == b' ')
}

/// Answers a plain HTTP request on a TLS listener: `400` in plaintext, `Connection: close`,
/// then the lingering close (what the client still sends is read and dropped, so that the
/// answer is not lost to a reset).
async fn plain_http_400(stream: &mut TcpStream) {
    use tokio::io::AsyncWriteExt;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{PLAIN_HTTP_BODY}",
        PLAIN_HTTP_BODY.len()
    );
    if stream.write_all(answer.as_bytes()).await.is_ok() {
        let _ = crate::linger::close(stream, crate::linger::BOUNDS).await;
    }
}

/// The handshake: the client's first read is made here (one read, as rustls's own first one)
/// and handed to rustls before it reads the socket itself, so that a plain HTTP request can be
/// answered in plaintext, and what rustls refused in the ClientHello answered here.
/// `began`: set once the client's first bytes came.
async fn start_tls(
    mut stream: TcpStream,
    acceptor: TlsAcceptor,
    began: &mut bool,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, Failed> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut first = [0u8; FIRST_READ];
    let n = match stream.read(&mut first).await {
        Ok(0) | Err(_) => return Err(Failed::Quiet),
        Ok(n) => n,
    };
    *began = true;
    let first = &first[..n];
    if first[0] != 0x16 && looks_like_http(first) {
        plain_http_400(&mut stream).await;
        return Err(Failed::PlainHttp);
    }
    let mut fed = Ok(());
    let mut alert = Vec::new();
    let mut accept = acceptor.accept_with(stream, |c| {
        fed = feed(c, first);
        if fed.is_err() {
            let _ = c.write_tls(&mut alert);
        }
    });
    if let Err(e) = fed {
        // rustls refused the first bytes: its alert, or ours for a refused ALPN, and the end.
        let refused = crate::tls::resolved().refused_no_alpn;
        if let Some(tcp) = accept.get_mut() {
            let out: &[u8] = if refused {
                &NO_APPLICATION_PROTOCOL
            } else {
                &alert
            };
            let _ = tcp.write_all(out).await;
        }
        return Err(if refused {
            Failed::NoAlpn
        } else {
            Failed::Tls(e.to_string())
        });
    }
    accept.await.map_err(|e| {
        if crate::tls::resolved().refused_no_alpn {
            Failed::NoAlpn
        } else {
            Failed::Tls(e.to_string())
        }
    })
}

/// Hands rustls the bytes read (all of them: rustls takes at most a buffer's worth a call)
/// and has it process them.
fn feed(c: &mut rustls::ServerConnection, mut bytes: &[u8]) -> Result<(), rustls::Error> {
    while !bytes.is_empty() {
        match c.read_tls(&mut bytes) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(rustls::Error::General(e.to_string())),
        }
        c.process_new_packets()?;
    }
    Ok(())
}

/// The connection's facts once its handshake completed (for the access log and the rules),
/// and whether it negotiated HTTP/2. Not in `serve_tls`: a borrow of the stream there would
/// keep a copy of it in that future for the connection's life.
fn established(
    sh: &Arc<Shared>,
    l: Arc<ListenerRt>,
    peer: std::net::SocketAddr,
    tls_stream: &tokio_rustls::server::TlsStream<TcpStream>,
    // The certificate the resolver chose (`None`: a resumed session, which chose none).
    cert: Option<usize>,
) -> (Arc<ConnInfo>, bool) {
    let c = tls_stream.get_ref().1;
    let info = TlsInfo {
        cipher: c
            .negotiated_cipher_suite()
            .map_or("-", |s| crate::tls::openssl_cipher_name(s.suite())),
        protocol: c
            .protocol_version()
            .map_or("-", crate::tls::openssl_protocol_name),
        sni: c.server_name().map(str::to_string),
        chosen_cert: cert
            .or_else(|| l.sni.as_ref().map(|r| r.index_for(c.server_name(), None)))
            .and_then(|i| l.config.certificate.get(i))
            .map(|cert| cert.certificate_file.display().to_string()),
        alpn_h2: c.alpn_protocol() == Some(b"h2"),
    };
    let h2 = info.alpn_h2;
    let state = if h2 {
        Arc::new(ConnState::default())
    } else {
        sh.h1_state.clone()
    };
    let local = crate::pipeline::local_ip(&l.config, || tls_stream.get_ref().0.local_addr());
    let ci = Arc::new(ConnInfo::new(
        sh,
        l,
        peer,
        local,
        Some(Box::new(info)),
        state,
    ));
    (ci, h2)
}

/// `serve_tls`'s future, for `worker::idle_size` (an idle TLS connection's task).
#[cfg(test)]
pub(crate) fn tls_connection_for_test(
    sh: Arc<Shared>,
    l: Arc<ListenerRt>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    tls: Arc<rustls::ServerConfig>,
) -> impl Future<Output = ()> + Send + 'static {
    let builder = Arc::new(http_builder(&sh));
    let shutdown = sh.shutdown.clone();
    serve_tls(
        sh,
        l,
        stream,
        peer,
        TlsAcceptor::from(tls),
        builder,
        shutdown,
    )
}

#[cfg(test)]
mod tests {
    use super::looks_like_http;

    #[test]
    fn plain_http_is_told_from_tls() {
        for yes in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST /x HTTP/1.1",
            b"OPTIONS * HTTP/1.1",
            b"PRI * HTTP/2.0",
            b"G",
            b"GE",
            b"M-SEARCH * HTTP/1.1",
        ] {
            assert!(looks_like_http(yes), "{yes:?}");
        }
        for no in [
            &[0x16u8, 0x03, 0x01, 0x02, 0x00][..],
            &[0x80, 0x2e, 0x01][..],
            b"get / HTTP/1.1",
            b" GET /",
            b"GET/",
            b"\r\n",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ /",
        ] {
            assert!(!looks_like_http(no), "{no:?}");
        }
    }
}
