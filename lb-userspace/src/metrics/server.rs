//! The Prometheus endpoint of `weir run`: `GET /metrics` over plain HTTP/1.1 on
//! `[metrics] address`, answered from a fresh [`Source::view`] each time. Bound before anything
//! starts (an address in use stops the start), served once the control plane runs, closed when
//! shutdown begins. At most [`MAX_CONNECTIONS`] connections are served at once; a new one always
//! gets in, closing the oldest when full ([`ConnCap`]), so silent connections cannot keep a scrape
//! waiting.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, task::JoinHandle};
use tracing::{info, warn};

use super::{prom, source::Source};
use crate::{
    config::metrics::{MetricsSettings, PATH},
    conn_cap::ConnCap,
};

pub const MAX_CONNECTIONS: usize = 64;
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
    let page: Page = Arc::new(move || prom::render(&source.view()));
    Ok(MetricsServer(tokio::spawn(accept_loop(listener, page))))
}

/// Renders the page, at each request.
type Page = Arc<dyn Fn() -> String + Send + Sync>;

async fn accept_loop(listener: TcpListener, page: Page) {
    let mut open = ConnCap::new(MAX_CONNECTIONS);
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "metrics page: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let closed = open.make_room();
        if closed > 0 {
            tracing::debug!(closed, "metrics page: full, closed the oldest connection");
        }
        let page = page.clone();
        let task = tokio::spawn(async move {
            let svc = service_fn(move |req| respond(page.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
        open.admit(task.abort_handle());
    }
}

async fn respond(page: Page, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, ctype, body) = answer(req.method(), req.uri().path(), || page());
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

    /// 100 connections that never send a byte (more than [`MAX_CONNECTIONS`], fewer than the
    /// listen backlog) must not keep a scrape waiting; the oldest of them are the ones closed.
    /// With a semaphore of 16 the scrape waited in the listen queue for 10 s.
    #[tokio::test]
    async fn silent_connections_do_not_keep_a_scrape_waiting() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let page: Page = Arc::new(|| "weir_config_generation 1\n".to_string());
        let server = tokio::spawn(accept_loop(listener, page));
        let mut silent = Vec::new();
        for _ in 0..100 {
            silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let scrape = async {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            c.read_to_string(&mut answer).await.unwrap();
            answer
        };
        let answer = tokio::time::timeout(Duration::from_secs(3), scrape)
            .await
            .expect("the scrape is answered while 100 silent connections are open");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("weir_config_generation 1\n"), "{answer}");
        // The first silent connection was among those closed to make room; the last was not.
        let mut byte = [0u8; 1];
        let first = tokio::time::timeout(Duration::from_secs(3), silent[0].read(&mut byte))
            .await
            .expect("the oldest connection is closed, not left waiting");
        assert!(matches!(first, Ok(0) | Err(_)), "{first:?}");
        let last =
            tokio::time::timeout(Duration::from_millis(200), silent[99].read(&mut byte)).await;
        assert!(
            last.is_err(),
            "the newest silent connection is still open: {last:?}"
        );
        server.abort();
    }
}
