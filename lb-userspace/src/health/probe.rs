//! One health check, the I/O edge: connect (TCP), or `GET path` over HTTP/1.1 or HTTPS
//! (`Host`, `Connection: close`, `User-Agent: weir-health-check/1`) and read the status line.
//! Every check opens its own connection and closes it (as ALB's prober does).

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::settings::{Protocol, Settings};
use super::state::Outcome;

pub const USER_AGENT: &str = "weir-health-check/1";
/// The most of the response read looking for the status line's end.
const MAX_STATUS_LINE: usize = 1024;

/// Checks `target` (its traffic address) once, within the settings' timeout.
pub async fn check(target: SocketAddr, s: &Settings, tls: Option<&TlsConnector>) -> Outcome {
    let addr = s.check_addr(target);
    match tokio::time::timeout(s.timeout, run(addr, s, tls)).await {
        Ok(o) => o,
        Err(_) => Outcome::Timeout,
    }
}

async fn run(addr: SocketAddr, s: &Settings, tls: Option<&TlsConnector>) -> Outcome {
    let tcp = match TcpStream::connect(addr).await {
        Ok(t) => t,
        Err(e) => return connect_error(&e),
    };
    let _ = tcp.set_nodelay(true);
    match (s.protocol, tls) {
        (Protocol::Tcp, _) => Outcome::Pass,
        (Protocol::Http, _) => http(tcp, addr, s).await,
        (Protocol::Https, Some(tls)) => {
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            match tls.connect(name, tcp).await {
                Ok(t) => http(t, addr, s).await,
                Err(e) => Outcome::Failed(format!("TLS handshake: {e}")),
            }
        }
        (Protocol::Https, None) => Outcome::Internal("no TLS client".into()),
    }
}

/// Errors of weir's own (no socket to connect from) are not the target's fault.
fn connect_error(e: &std::io::Error) -> Outcome {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL) => {
            Outcome::Internal(format!("connect: {e}"))
        }
        _ => Outcome::Failed(format!("connect: {e}")),
    }
}

/// The request ALB's prober sends, with weir's user agent.
pub fn request(path: &str, addr: SocketAddr) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n\r\n"
    )
}

async fn http<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    addr: SocketAddr,
    s: &Settings,
) -> Outcome {
    if let Err(e) = io.write_all(request(&s.path, addr).as_bytes()).await {
        return Outcome::Failed(format!("sending the request: {e}"));
    }
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    let code = loop {
        if let Some(c) = status_code(&buf) {
            break c;
        }
        if buf.len() >= MAX_STATUS_LINE {
            return Outcome::Failed("malformed response: no status line".into());
        }
        match io.read(&mut chunk).await {
            Ok(0) if buf.is_empty() => {
                return Outcome::Failed("connection closed without a response".into());
            }
            Ok(0) => return Outcome::Failed("malformed response: bad status line".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Outcome::Failed(format!("reading the response: {e}")),
        }
    };
    // Closed without reading the body (dropped: no shutdown(2) of its own, which measured 7 % of
    // the checker's CPU time): the prober's connection is never reused.
    drop(io);
    match code {
        Ok(c) if s.matcher.matches(c) => Outcome::Pass,
        Ok(c) => Outcome::Mismatch(c),
        Err(()) => Outcome::Failed("malformed response: bad status line".into()),
    }
}

/// The status code of a response whose status line is complete in `buf`: `None` until the line
/// ends, `Err` when it is not `HTTP/1.x NNN …`.
pub fn status_code(buf: &[u8]) -> Option<Result<u16, ()>> {
    let end = buf.iter().position(|&b| b == b'\n')?;
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let parse = || {
        let rest = line
            .strip_prefix(b"HTTP/1.1 ")
            .or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
        let digits = rest.get(..3)?;
        if !digits.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ') {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    Some(parse().ok_or(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(Ok(200)));
        assert_eq!(status_code(b"HTTP/1.0 404 Not Found\r\nx"), Some(Ok(404)));
        assert_eq!(status_code(b"HTTP/1.1 204\r\n"), Some(Ok(204)));
        assert_eq!(status_code(b"HTTP/1.1 200 O"), None);
        assert_eq!(status_code(b"HTTP/2 200\r\n"), Some(Err(())));
        assert_eq!(status_code(b"HTTP/1.1 20x OK\r\n"), Some(Err(())));
        assert_eq!(status_code(b"HTTP/1.1 2000 OK\r\n"), Some(Err(())));
        assert_eq!(status_code(b"garbage\n"), Some(Err(())));
    }

    #[test]
    fn the_request_names_host_and_closes() {
        let r = request("/health?x=1", "[::1]:8080".parse().unwrap());
        assert!(r.starts_with("GET /health?x=1 HTTP/1.1\r\nHost: [::1]:8080\r\n"));
        assert!(r.contains("\r\nConnection: close\r\n"));
        assert!(r.contains("\r\nUser-Agent: weir-health-check/1\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }
}
