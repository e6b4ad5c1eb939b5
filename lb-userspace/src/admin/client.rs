//! The CLI's side of the admin API: one HTTP/1.1 request over the daemon's Unix socket.

use std::{io, path::Path, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::error::ErrorBody;

/// How long a request may take (a reload validates and applies a whole configuration).
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no weir daemon at {0}: no such socket (is `weir run` running? which --socket?)")]
    NoSocket(String),
    #[error("no weir daemon answers on {0}: the socket is stale (its daemon is gone)")]
    Refused(String),
    #[error("{0} is not a socket (a daemon's `[admin] socket` is; which --socket?)")]
    NotASocket(String),
    #[error("{0}: permission denied: the admin API is root-only (run this as root)")]
    Denied(String),
    #[error("{path}: {err}")]
    Io { path: String, err: String },
    #[error("the daemon did not answer within {0:?}")]
    Timeout(Duration),
    /// The daemon answered with an error object.
    #[error("{code}: {message}{}", issues_text(.issues))]
    Api {
        status: u16,
        code: String,
        message: String,
        issues: Vec<super::error::Issue>,
        /// The raw error object, for `--json`.
        body: serde_json::Value,
    },
}

fn issues_text(issues: &[super::error::Issue]) -> String {
    issues
        .iter()
        .map(|i| {
            let field = if i.field.is_empty() {
                String::new()
            } else {
                format!("field `{}`: ", i.field)
            };
            format!(
                "\n  {}:{}:{}: {field}{}",
                i.file, i.line, i.column, i.message
            )
        })
        .collect()
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

fn connect_error(path: &Path, e: io::Error) -> ClientError {
    let p = path.display().to_string();
    match e.kind() {
        io::ErrorKind::NotFound => ClientError::NoSocket(p),
        // connect(2) to a file that is not a socket is refused too.
        io::ErrorKind::ConnectionRefused if !is_socket(path) => ClientError::NotASocket(p),
        io::ErrorKind::ConnectionRefused => ClientError::Refused(p),
        io::ErrorKind::PermissionDenied => ClientError::Denied(p),
        _ => ClientError::Io {
            path: p,
            err: e.to_string(),
        },
    }
}

/// Sends `method path` (with a JSON body if given) and returns the JSON answer, or the daemon's
/// error as [`ClientError::Api`].
pub async fn call(
    socket: &Path,
    method: &str,
    path_and_query: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, ClientError> {
    tokio::time::timeout(TIMEOUT, exchange(socket, method, path_and_query, body))
        .await
        .map_err(|_| ClientError::Timeout(TIMEOUT))?
}

async fn exchange(
    socket: &Path,
    method: &str,
    path_and_query: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, ClientError> {
    let io_err = |e: &dyn std::fmt::Display| ClientError::Io {
        path: socket.display().to_string(),
        err: e.to_string(),
    };
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| connect_error(socket, e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| io_err(&e))?;
    tokio::spawn(conn);
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(hyper::header::HOST, "weir");
    if body.is_some() {
        req = req.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(payload)))
        .map_err(|e| io_err(&e))?;
    let resp = sender.send_request(req).await.map_err(|e| io_err(&e))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| io_err(&e))?
        .to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| io_err(&format!("answer with status {status} is not JSON: {e}")))?;
    if (200..300).contains(&status) {
        return Ok(value);
    }
    match serde_json::from_value::<ErrorBody>(value.clone()) {
        Ok(e) => Err(ClientError::Api {
            status,
            code: e.error.code,
            message: e.error.message,
            issues: e.error.issues,
            body: value,
        }),
        Err(_) => Err(io_err(&format!("status {status}: {value}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A regular file given as `--socket` is said to be one (it was reported as a stale socket
    /// of a daemon that is gone); a socket nobody listens on is stale.
    #[test]
    fn a_file_that_is_no_socket_is_not_called_stale() {
        let dir = std::env::temp_dir().join(format!("weir-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("weir.toml");
        std::fs::write(&file, "[admin]\n").unwrap();
        let e = std::os::unix::net::UnixStream::connect(&file).unwrap_err();
        let err = connect_error(&file, e);
        assert!(matches!(err, ClientError::NotASocket(_)), "{err}");
        assert!(err.to_string().contains("is not a socket"), "{err}");
        let sock = dir.join("gone.sock");
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let e = std::os::unix::net::UnixStream::connect(&sock).unwrap_err();
        assert!(matches!(connect_error(&sock, e), ClientError::Refused(_)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
