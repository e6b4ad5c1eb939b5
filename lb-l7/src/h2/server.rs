//! The HTTP/2 engine: hyper's server for clients that negotiated h2 (ALPN) or spoke it with
//! prior knowledge (h2c, handed over by the HTTP/1.1 engine through the accept loop), with
//! weir's limits on it (`io::ClientIo` deadlines, `frames`, `crate::http2::h2rules`), each
//! request through the pipeline (`crate::http2::service`).

use super::io::ClientIo;
use crate::http2::service;
use crate::linger;
use crate::pipeline::{ConnInfo, Shared, stopped};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// Concurrent streams per HTTP/2 connection (ALB's 128).
pub const H2_MAX_STREAMS: u32 = 128;
/// Response bytes h2 queues per stream before it stops taking more from the stream's body
/// (hyper's default is ~400 KiB). With the one chunk hyper holds and the next read of
/// `h2::body::TargetBody` (16 KiB each), a stream holds at most 48 KiB of response data, so
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
/// How long an idle connection closed to make room at the worker's connection limit may take
/// to end after its first GOAWAY (its client's ACK of h2's PING, a stream that crossed it).
const RECLAIMED_DRAIN: Duration = Duration::from_secs(1);

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

/// A connection the HTTP/1.1 engine found speaking HTTP/2 with prior knowledge (h2c), its
/// first bytes replayed by `io`: served in the generation it was in, with its own builder.
pub async fn serve_h2c<T>(sh: Arc<Shared>, ci: Arc<ConnInfo>, io: T)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = Arc::new(http_builder(&sh));
    let shutdown = sh.shutdown.clone();
    serve_http(sh, ci, io, builder, shutdown).await
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
    // hyper drops the stream when the connection ends: it comes back here to linger on.
    let (io, mut back) = linger::GiveBack::new(io);
    let io = ClientIo::new(
        io,
        ci.state.clone(),
        sh.limits.idle_timeout,
        sh.limits.header_read_timeout,
    );
    let keep_alive = sh.limits.client_keep_alive;
    let drain = sh.limits.drain_timeout;
    // A reload that removes the connection's listener: GOAWAY now, idle or not.
    let removed = sh.ports.removed(ci.listener.config.port);
    // Idle (no stream in flight, after one), it may be closed to make room at the worker's
    // connection limit (`ConnState::idle`), through `close_gracefully`.
    let _listed = sh.idle.register(ci.state.clone());
    let svc = {
        // Each request starts in the newest configuration generation and keeps it to its end.
        let cur = std::sync::Mutex::new((sh.clone(), ci.clone()));
        // Boxed: the request's future (~1.3 KB) is moved several times on its way into its
        // task; moving a pointer instead is measurably cheaper per HTTP/2 request.
        service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            // Several content-length fields of one number (h2 checked they agree) reach the
            // target as one; weir's engine makes them one in its core.
            crate::http2::h2rules::one_content_length(req.headers_mut());
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
    // Boxed so that it can be dropped (and with it the stream handed back) before the linger.
    let mut conn = Box::pin(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                if let Some(status) = parse_error_status(e.as_ref()) {
                    sh.metrics.elb_status(status);
                }
                tracing::debug!(peer = %ci.peer, error = %e, "client connection ended with an error");
            }
            true
        }
        _ = stopped(&mut shutdown) => false,
        _ = tokio::time::sleep(keep_alive) => false,
        _ = removed => {
            tracing::debug!(peer = %ci.peer, "listener removed: GOAWAY");
            false
        }
        _ = ci.state.close_gracefully.notified() => {
            tracing::debug!(peer = %ci.peer, "request limit reached, abusive, or idle at the connection limit: GOAWAY");
            false
        }
    };
    // Not idle any more, whatever ends it; asked to close to make room, it was.
    let reclaimed = ci.state.idle.closing();
    if !ended {
        conn.as_mut().graceful_shutdown();
        // An idle one closed to make room gets the PING's round trip (h2's graceful end is
        // GOAWAY(2^31-1) and a PING, then GOAWAY(last id) at its ACK), not a drain's time.
        let drain = if ci.state.abusive.load(Relaxed) {
            drain.min(ABUSER_DRAIN)
        } else if reclaimed {
            drain.min(RECLAIMED_DRAIN)
        } else {
            drain
        };
        if tokio::time::timeout(drain, conn.as_mut()).await.is_err() {
            // The streams still running end with the connection: cut, not cancelled.
            ci.state.cut_at_drain.store(true, Relaxed);
        }
    }
    drop(conn);
    // h2 wrote its GOAWAY and shut the write side (TLS: close_notify) when it closed; what the
    // client still sends is read away before the socket closes (`crate::linger`).
    if let Ok(mut io) = back.try_recv() {
        let ended = linger::close(&mut io, linger::BOUNDS).await;
        tracing::trace!(peer = %ci.peer, ?ended, "HTTP/2 connection lingered");
    }
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
