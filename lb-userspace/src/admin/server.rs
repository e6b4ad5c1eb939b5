//! The admin socket: bound before `weir run` starts anything (a path in use stops the start),
//! served once the control plane runs. HTTP/1.1 only (hyper), JSON bodies, one task per
//! connection, at most [`MAX_CONNECTIONS`] at once (a new one closes the oldest when full:
//! [`ConnCap`]).
//!
//! Root-only, twice over: the socket is mode 0600 and owned by the daemon's user (connect(2)
//! needs write permission on it), and a peer whose credentials (`SO_PEERCRED`) are neither root
//! nor the daemon's user gets `403 AccessDenied` should the mode have been loosened.

use std::{
    convert::Infallible,
    io,
    os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::UnixListener, task::JoinHandle};
use tracing::{info, warn};

use super::{
    api::{self, AdminState, Answer},
    error::ApiError,
};
use crate::conn_cap::ConnCap;

/// Connections served at once; a new one closes the oldest.
pub const MAX_CONNECTIONS: usize = 64;
/// A request's head and body must arrive within this.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "admin socket {0}: another process answers on it (is a weir daemon already running? stop it, or set [admin] socket)"
    )]
    InUse(PathBuf),
    #[error(
        "admin socket {0}: the path exists and is not a socket; remove it or set [admin] socket"
    )]
    NotASocket(PathBuf),
    #[error("admin socket {path}: {what}: {err}")]
    Io {
        path: PathBuf,
        what: &'static str,
        err: io::Error,
    },
}

/// A bound admin socket, removed (if it is still ours) when dropped.
pub struct Bound {
    listener: std::os::unix::net::UnixListener,
    guard: SocketFile,
}

struct SocketFile {
    path: PathBuf,
    id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        // A successor may have replaced a socket we left: remove only our own inode.
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether a socket file at `path` has a listener behind it. `Ok(false)`: a stale socket (its
/// daemon is gone) or nothing there.
fn answered(path: &Path) -> io::Result<bool> {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Binds `path`: refuses a path another process answers on or that is not a socket, removes a
/// stale socket, and creates the new one mode 0600 under a temporary name first, renamed into
/// place, so it is never reachable with looser permissions.
pub fn bind(path: &Path) -> Result<Bound, BindError> {
    let io = |what: &'static str| {
        let path = path.to_path_buf();
        move |err| BindError::Io { path, what, err }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("creating its directory"))?;
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("reading it")(e)),
        Ok(m) if !m.file_type().is_socket() => {
            return Err(BindError::NotASocket(path.to_path_buf()));
        }
        Ok(_) => {
            if answered(path).map_err(io("probing it"))? {
                return Err(BindError::InUse(path.to_path_buf()));
            }
            info!(path = %path.display(), "removing the stale admin socket of a daemon that is gone");
            std::fs::remove_file(path).map_err(io("removing the stale socket"))?;
        }
    }
    let tmp = path.with_file_name(format!(".weir-admin-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp).map_err(io("binding"))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("setting its mode and moving it into place")(e));
    }
    let m = std::fs::symlink_metadata(path).map_err(io("reading it back"))?;
    listener
        .set_nonblocking(true)
        .map_err(io("setting O_NONBLOCK"))?;
    Ok(Bound {
        listener,
        guard: SocketFile {
            path: path.to_path_buf(),
            id: (m.dev(), m.ino()),
        },
    })
}

/// The running server; stops and removes its socket when dropped.
pub struct Server {
    task: JoinHandle<()>,
    _socket: SocketFile,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Bound {
    pub fn path(&self) -> &Path {
        &self.guard.path
    }

    /// Serves `state` on the runtime this is called on.
    pub fn serve<S: AdminState>(self, state: Arc<S>) -> io::Result<Server> {
        let listener = UnixListener::from_std(self.listener)?;
        info!(socket = %self.guard.path.display(), "admin API listening");
        let task = tokio::spawn(accept_loop(listener, state));
        Ok(Server {
            task,
            _socket: self.guard,
        })
    }
}

async fn accept_loop<S: AdminState>(listener: UnixListener, state: Arc<S>) {
    let mut open = ConnCap::new(MAX_CONNECTIONS);
    let me = nix::unistd::geteuid().as_raw();
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "admin socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let allowed = stream
            .peer_cred()
            .is_ok_and(|c| c.uid() == 0 || c.uid() == me);
        if open.make_room() > 0 {
            tracing::debug!("admin socket: full, closed the oldest connection");
        }
        let state = state.clone();
        let task = tokio::spawn(async move {
            let svc = service_fn(move |req| respond(state.clone(), allowed, req));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
        open.admit(task.abort_handle());
    }
}

async fn respond<S: AdminState>(
    state: Arc<S>,
    allowed: bool,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let answer = if !allowed {
        ApiError::access_denied("the admin API is for root and the daemon's user only").into()
    } else if let Some(e) = declared_too_large(req.headers()) {
        // At once: the body is not waited for (a declared 1 GB was waited on until the read
        // timeout, then answered 400). What the client sends meanwhile is read away, a
        // bounded amount, as a lingering close does: closed with it unread, the socket resets
        // and the client may never read the 413.
        tokio::spawn(read_away(req.into_body()));
        e.into()
    } else {
        match read_body(req.into_body()).await {
            Ok(body) => api::handle(&*state, &method, &path, query.as_deref(), &body).await,
            Err(e) => e.into(),
        }
    };
    if answer.status >= 500 || matches!(answer.status, 400 | 403) {
        info!(%method, %path, status = answer.status, "admin request refused");
    } else if method != "GET" {
        info!(%method, %path, status = answer.status, "admin request");
    }
    Ok(to_response(&answer))
}

/// A `Content-Length` over [`api::MAX_BODY`]: the 413 it gets without a byte of it read.
fn declared_too_large(headers: &hyper::HeaderMap) -> Option<ApiError> {
    let len = headers.get(hyper::header::CONTENT_LENGTH)?;
    let len: u64 = len.to_str().ok()?.trim().parse().ok()?;
    (len > api::MAX_BODY as u64).then(|| ApiError::too_large(api::MAX_BODY))
}

/// Reads and drops up to 1 MiB of a body weir answered without (for up to a second).
async fn read_away(mut body: Incoming) {
    const MAX: usize = 1 << 20;
    let mut read = 0;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len());
            if read > MAX {
                break;
            }
        }
    })
    .await;
}

async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    let limited = Limited::new(body, api::MAX_BODY);
    match tokio::time::timeout(READ_TIMEOUT, limited.collect()).await {
        Err(_) => Err(ApiError::invalid_request(
            "request body not received in time",
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::too_large(api::MAX_BODY))
        }
        Ok(Err(e)) => Err(ApiError::invalid_request(format!("request body: {e}"))),
    }
}

fn to_response(a: &Answer) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_vec(&a.body).unwrap_or_default();
    text.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() =
        hyper::StatusCode::from_u16(a.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(allow) = a.allow {
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static(allow),
        );
    }
    r
}

#[cfg(test)]
mod tests;
