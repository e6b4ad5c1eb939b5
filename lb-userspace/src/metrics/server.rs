//! The Prometheus endpoint of `weir run`: `GET /metrics` over plain HTTP/1.1 on
//! `[metrics] address`, answered from a fresh [`Source::view`] each time. Bound before anything
//! starts (an address in use stops the start), served once the control plane runs, closed when
//! shutdown begins. At most [`MAX_CONNECTIONS`] connections are served at once.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore, task::JoinHandle};
use tracing::{info, warn};

use super::{prom, source::Source};
use crate::config::metrics::{MetricsSettings, PATH};

pub const MAX_CONNECTIONS: usize = 16;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The bound address (`None` without `[metrics] address`).
pub fn bind(settings: &MetricsSettings) -> anyhow::Result<Option<std::net::TcpListener>> {
    let Some(addr) = settings.address else {
        return Ok(None);
    };
    let l = std::net::TcpListener::bind(addr)
        .with_context(|| format!("[metrics] address {addr}: cannot listen"))?;
    l.set_nonblocking(true)?;
    if !addr.ip().is_loopback() {
        warn!(%addr, "the metrics page is served beyond this host, without authentication");
    }
    Ok(Some(l))
}

/// The running endpoint; stops when dropped.
pub struct MetricsServer(JoinHandle<()>);

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `listener` on the runtime this is called on.
pub fn serve(listener: std::net::TcpListener, source: Source) -> anyhow::Result<MetricsServer> {
    let listener = TcpListener::from_std(listener)?;
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    info!(address = ?addr, path = PATH, "Prometheus metrics page");
    Ok(MetricsServer(tokio::spawn(accept_loop(
        listener,
        Arc::new(source),
    ))))
}

async fn accept_loop(listener: TcpListener, source: Arc<Source>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "metrics page: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let source = source.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| respond(source.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
            drop(permit);
        });
    }
}

async fn respond(
    source: Arc<Source>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, ctype, body) = answer(req.method(), req.uri().path(), || {
        prom::render(&source.view())
    });
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    if status == StatusCode::METHOD_NOT_ALLOWED {
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
    }
    Ok(r)
}

/// Status, content type and body for a request line.
fn answer(
    method: &Method,
    path: &str,
    page: impl FnOnce() -> String,
) -> (StatusCode, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if path != PATH {
        return (
            StatusCode::NOT_FOUND,
            TEXT,
            format!("weir serves {PATH} only\n"),
        );
    }
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET or HEAD\n".into());
    }
    (StatusCode::OK, prom::CONTENT_TYPE, page())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_of_the_path_is_the_page() {
        let page = || "weir_config_generation 1\n".to_string();
        assert_eq!(answer(&Method::GET, "/metrics", page).0, StatusCode::OK);
        assert_eq!(answer(&Method::GET, "/", page).0, StatusCode::NOT_FOUND);
        assert_eq!(
            answer(&Method::POST, "/metrics", page).0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
