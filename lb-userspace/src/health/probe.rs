//! One health check, the I/O edge: connect (TCP), or `GET path` over HTTP/1.1 or HTTPS
//! (`Host`, `Connection: close`, `User-Agent: weir-health-check/1`) and read the response head
//! whole (as HAProxy's `httpchk` does): a head cut short or malformed fails the check, as a
//! proxied request to the target would fail; interim (1xx) heads are skipped and the final one
//! judged (RFC 9110 §15.2). The body is not read. Every check opens its own connection and
//! closes it (as ALB's prober does).

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::settings::{Protocol, Settings};
use super::state::Outcome;

pub const USER_AGENT: &str = "weir-health-check/1";
/// The most of the response read looking for the final head's end, interim heads included
/// (HAProxy's default buffer).
pub const MAX_HEAD: usize = 16 * 1024;
/// Header fields one head may have (HAProxy's `tune.http.maxhdr` is 101).
pub const MAX_HEADERS: usize = 100;
/// Interim (1xx) heads skipped before the final one.
pub const MAX_INTERIM: usize = 8;

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
    let mut chunk = [0u8; 1024];
    let code = loop {
        match final_status(&buf) {
            Head::Final(c) => break c,
            Head::Malformed(why) => return Outcome::Failed(why),
            Head::Partial => {}
        }
        let room = MAX_HEAD.saturating_sub(buf.len()).min(chunk.len());
        match io.read(&mut chunk[..room]).await {
            Ok(0) if buf.is_empty() => {
                return Outcome::Failed("connection closed without a response".into());
            }
            Ok(0) => {
                return Outcome::Failed(
                    "connection closed before the end of the response head".into(),
                );
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Outcome::Failed(format!("reading the response: {e}")),
        }
    };
    // Closed without reading the body (dropped: no shutdown(2) of its own, which measured 7 % of
    // the checker's CPU time): the prober's connection is never reused.
    drop(io);
    if s.matcher.matches(code) {
        Outcome::Pass
    } else {
        Outcome::Mismatch(code)
    }
}

/// What the bytes of a response read so far say.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// The final head is not complete yet.
    Partial,
    /// The final (not 1xx) head is complete: its status code.
    Final(u16),
    /// Not a response this prober takes: why.
    Malformed(String),
}

/// The final head's status in `buf`, the start of a response: each head parsed whole
/// (httparse: `HTTP/1.0` or `HTTP/1.1`, a three-digit status, at most [`MAX_HEADERS`] fields),
/// up to [`MAX_INTERIM`] interim (1xx) heads skipped (RFC 9110 §15.2; `101 Switching
/// Protocols` is final: nothing asked for an upgrade), all within [`MAX_HEAD`] bytes.
pub fn final_status(buf: &[u8]) -> Head {
    let mut rest = buf;
    for _ in 0..=MAX_INTERIM {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = httparse::Response::new(&mut fields);
        match head.parse(rest) {
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Head::Malformed(format!(
                    "malformed response: no complete head within {MAX_HEAD} bytes"
                ));
            }
            Ok(httparse::Status::Partial) => return Head::Partial,
            Ok(httparse::Status::Complete(n)) => match head.code {
                Some(c) if (100..200).contains(&c) && c != 101 => rest = &rest[n..],
                Some(c) => return Head::Final(c),
                None => return Head::Malformed("malformed response: no status".into()),
            },
            Err(e) => return Head::Malformed(format!("malformed response: {e}")),
        }
    }
    Head::Malformed(format!(
        "malformed response: more than {MAX_INTERIM} interim (1xx) responses"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_head_is_read_whole() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        assert_eq!(final_status(ok), Head::Final(200));
        assert_eq!(
            final_status(b"HTTP/1.0 404 Not Found\r\n\r\n"),
            Head::Final(404)
        );
        assert_eq!(final_status(b"HTTP/1.1 204\r\n\r\n"), Head::Final(204));
        assert_eq!(
            final_status(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
            Head::Final(200)
        );
        // The status line alone, or a head cut mid-field, is not an answer yet.
        for cut in [
            &b"HTTP/1.1 200 O"[..],
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n",
            b"",
        ] {
            assert_eq!(final_status(cut), Head::Partial, "{cut:?}");
        }
        for bad in [
            &b"HTTP/2 200\r\n\r\n"[..],
            b"HTTP/1.1 20x OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"garbage\n\n",
            b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            &[0u8; 64],
        ] {
            assert!(
                matches!(final_status(bad), Head::Malformed(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x{i}: y\r\n")).collect();
        let many = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert!(matches!(final_status(many.as_bytes()), Head::Malformed(_)));
        // A head that never ends within the bound.
        let long = format!("HTTP/1.1 200 OK\r\nx: {}", "y".repeat(MAX_HEAD));
        assert!(matches!(final_status(long.as_bytes()), Head::Malformed(_)));
    }

    #[test]
    fn interim_heads_are_skipped_and_the_final_one_judged() {
        let hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        assert_eq!(final_status(&[&hints[..], ok].concat()), Head::Final(200));
        assert_eq!(
            final_status(hints),
            Head::Partial,
            "the final head is to come"
        );
        let two = [
            &b"HTTP/1.1 100 Continue\r\n\r\n"[..],
            hints,
            b"HTTP/1.1 500 X\r\n\r\n",
        ];
        assert_eq!(final_status(&two.concat()), Head::Final(500));
        // Cut in the final head after an interim one.
        assert_eq!(
            final_status(&[&hints[..], b"HTTP/1.1 200 OK\r\nContent-Le"].concat()),
            Head::Partial
        );
        // 101 is final (nothing asked for an upgrade); the matcher refuses it.
        assert_eq!(
            final_status(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
            Head::Final(101)
        );
        let endless = hints.repeat(MAX_INTERIM + 1);
        assert!(matches!(final_status(&endless), Head::Malformed(_)));
        assert_eq!(
            final_status(&[hints.repeat(MAX_INTERIM), ok.to_vec()].concat()),
            Head::Final(200)
        );
    }

    /// A raw target on loopback answering every connection with `answer`, then closing.
    async fn raw_target(answer: &'static [u8]) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    let _ = c.read(&mut b).await;
                    let _ = c.write_all(answer).await;
                });
            }
        });
        addr
    }

    fn settings() -> Settings {
        let mut s = Settings::from_config(&lb_l7::config::HealthCheck::default()).unwrap();
        s.timeout = std::time::Duration::from_secs(2);
        s
    }

    #[tokio::test]
    async fn a_head_cut_short_fails() {
        let s = settings();
        let cut = raw_target(b"HTTP/1.1 200 OK\r\nContent-Le").await;
        assert_eq!(
            check(cut, &s, None).await,
            Outcome::Failed("connection closed before the end of the response head".into())
        );
        let line = raw_target(b"HTTP/1.1 200 OK\r\n").await;
        assert!(matches!(check(line, &s, None).await, Outcome::Failed(_)));
        let whole = raw_target(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n").await;
        assert_eq!(check(whole, &s, None).await, Outcome::Pass);
        let refused = raw_target(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n").await;
        assert_eq!(check(refused, &s, None).await, Outcome::Mismatch(503));
    }

    #[tokio::test]
    async fn an_early_hint_is_skipped_and_the_final_answer_judged() {
        let s = settings();
        let hints = raw_target(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
        )
        .await;
        assert_eq!(check(hints, &s, None).await, Outcome::Pass);
        let refused = raw_target(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 500 X\r\n\r\n",
        )
        .await;
        assert_eq!(check(refused, &s, None).await, Outcome::Mismatch(500));
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
