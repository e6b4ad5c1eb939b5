//! Phases accept and tls: take connections, enforce the per-worker limit, terminate TLS, and
//! hand the stream to hyper-util's auto server (HTTP/1.1 and HTTP/2, with upgrades).

use super::io::ClientIo;
use super::{ConnInfo, ConnState, ListenerRt, Shared, TlsInfo, service};
use crate::h1;
use crate::h1::stream::ClientStream;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Concurrent streams per HTTP/2 connection (ALB's 128).
pub const H2_MAX_STREAMS: u32 = 128;
/// Response bytes h2 queues per stream before it stops taking more from the stream's body
/// (hyper's default is ~400 KiB). With the one chunk hyper holds and the next read of
/// `h1::body::TargetBody` (16 KiB each), a stream holds at most 48 KiB of response data, so
/// an HTTP/2 connection holds at most 128 × 48 KiB = 6 MiB, and only until a client that
/// stopped reading is cut by the write deadline (`io::ClientIo`, the idle timeout).
pub const H2_SEND_BUF: usize = 16 * 1024;
/// Streams h2 resets itself because of the client's frames (MadeYouReset, CVE-2025-8671)
/// before it sends GOAWAY (ENHANCE_YOUR_CALM); hyper's default is 1,024 per connection.
pub const H2_MAX_LOCAL_RESETS: usize = 100;
/// Streams the client resets before they were accepted (rapid reset, CVE-2023-44487), at any
/// one time, before GOAWAY: h2's default, stated here. Streams reset after they were accepted
/// are counted by weir (`h2rules::abusive`).
pub const H2_MAX_PENDING_RESETS: usize = 20;
/// How long an abusive connection's streams may still run after its GOAWAY.
const ABUSER_DRAIN: Duration = Duration::from_secs(1);

/// The hyper server of HTTP/2 clients (HTTP/1.1 is weir's own engine, `h1`): a client that
/// negotiated h2 must speak it. Keep-alive PINGs every idle timeout without a read; no answer
/// within the idle timeout closes the connection.
pub fn http_builder(sh: &Shared) -> auto::Builder<TokioExecutor> {
    let idle = sh.limits.idle_timeout;
    let mut b = auto::Builder::new(TokioExecutor::new()).http2_only();
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(64 * 1024)
        .max_send_buf_size(H2_SEND_BUF)
        .max_local_error_reset_streams(Some(H2_MAX_LOCAL_RESETS))
        .max_pending_accept_reset_streams(Some(H2_MAX_PENDING_RESETS))
        .keep_alive_interval(idle)
        .keep_alive_timeout(idle);
    b
}

/// Decrements the active connection count and releases the drain token when dropped.
pub(crate) struct Active {
    sh: Arc<Shared>,
    _token: Arc<()>,
    /// The listener's port, for its own count (`Metrics::listener`).
    port: u16,
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
    };
    let mut stop = stop_accepting;
    let mut fd_limit = super::fd_limit::FdLimit::new(&tcp);
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

    /// One result of accept(2): a connection gets its task (or is rejected over the limit).
    async fn accepted(
        &mut self,
        r: std::io::Result<(TcpStream, std::net::SocketAddr)>,
        tcp: &TcpListener,
        fd_limit: &mut super::fd_limit::FdLimit,
    ) {
        self.refresh();
        let (sh, l) = (&self.sh, &self.l);
        let (stream, peer) = match r {
            Ok(x) => x,
            Err(e) if super::fd_limit::is_fd_limit(&e) => {
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
        if m.active_connections.load(Relaxed) as usize >= sh.limits.max_connections {
            m.rejected_connections.fetch_add(1, Relaxed);
            if let Some(c) = per_listener {
                c.rejected_connections.fetch_add(1, Relaxed);
            }
            tracing::debug!(%peer, "connection limit reached; rejected");
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
/// once per interval, pause only when nothing could be shed ([`super::fd_limit`]).
async fn out_of_fds(
    sh: &Shared,
    l: &ListenerRt,
    tcp: &TcpListener,
    fd_limit: &mut super::fd_limit::FdLimit,
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
        tokio::time::sleep(super::fd_limit::PAUSE).await;
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
    let ci = Arc::new(ConnInfo::new(&sh, l, peer, None, sh.h1_state.clone()));
    h1::server::serve(sh, ci, ClientStream::Plain(stream), active)
}

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
    // The handshake is the first part of the request head: it gets the header read timeout
    // from the accept on (TLS slowloris).
    let handshake = sh.limits.header_read_timeout;
    let tls_stream = match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            sh.metrics
                .client_tls_negotiation_errors
                .fetch_add(1, Relaxed);
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            sh.metrics
                .client_tls_negotiation_errors
                .fetch_add(1, Relaxed);
            return;
        }
    };
    let c = tls_stream.get_ref().1;
    let info = TlsInfo {
        cipher: c
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default(),
        protocol: c
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        sni: c.server_name().map(str::to_string),
        chosen_cert: l
            .sni
            .as_ref()
            .map(|r| r.index_for(c.server_name()))
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
    let ci = Arc::new(ConnInfo::new(&sh, l, peer, Some(Box::new(info)), state));
    // Boxed: hyper's connection future is large and only HTTP/2 connections need it.
    if h2 {
        Box::pin(serve_http(sh, ci, tls_stream, builder, shutdown)).await
    } else {
        let io = ClientStream::Tls(Box::new(tls_stream));
        h1::server::serve(sh, ci, io, ()).await
    }
}

pub async fn serve_http<T>(
    sh: Arc<Shared>,
    ci: Arc<ConnInfo>,
    io: T,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut shutdown: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = ClientIo::new(
        io,
        ci.state.clone(),
        sh.limits.idle_timeout,
        sh.limits.header_read_timeout,
    );
    let keep_alive = sh.limits.client_keep_alive;
    let drain = sh.limits.drain_timeout;
    let svc = {
        // Each request starts in the newest configuration generation and keeps it to its end.
        let cur = std::sync::Mutex::new((sh.clone(), ci.clone()));
        // Boxed: the request's future (~1.3 KB) is moved several times on its way into its
        // task; moving a pointer instead is measurably cheaper per HTTP/2 request.
        service_fn(move |req| {
            let (sh, ci) = match cur.lock() {
                Ok(mut c) => {
                    if let Some(n) = c.0.newest() {
                        if n.listener_on(c.1.listener.config.port).is_some() {
                            let ci = Arc::new(c.1.in_generation(&n));
                            *c = (n, ci);
                        } else {
                            // Its listener was removed: this stream stays in the connection's
                            // generation, and the connection ends (GOAWAY) once its streams do.
                            c.1.state.close_gracefully.notify_one();
                        }
                    }
                    c.clone()
                }
                Err(p) => p.into_inner().clone(),
            };
            Box::pin(service::handle(sh, ci, req))
        })
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                if let Some(status) = parse_error_status(e.as_ref()) {
                    sh.metrics.elb_status(status);
                }
                tracing::debug!(peer = %ci.peer, error = %e, "client connection ended with an error");
            }
            return;
        }
        _ = stopped(&mut shutdown) => {}
        _ = tokio::time::sleep(keep_alive) => {}
        _ = ci.state.close_gracefully.notified() => {
            tracing::debug!(peer = %ci.peer, "request limit reached or abusive: GOAWAY");
        }
    }
    conn.as_mut().graceful_shutdown();
    let drain = if ci.state.abusive.load(Relaxed) {
        drain.min(ABUSER_DRAIN)
    } else {
        drain
    };
    let _ = tokio::time::timeout(drain, conn).await;
}

/// Completes once shutdown was asked (or the sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|&s| s).await;
}

/// The status hyper answered a request it could not parse with (so it is counted like weir's
/// own responses): 431 headers too large, 414 URI too long, 400 otherwise.
fn parse_error_status(e: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let h = e.downcast_ref::<hyper::Error>()?;
    if !h.is_parse() {
        return None;
    }
    Some(if h.to_string().contains("URI too long") {
        414
    } else if h.is_parse_too_large() {
        431
    } else {
        400
    })
}
