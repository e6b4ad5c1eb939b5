//! A raw HTTP/1.1 target that records exactly what it received, and a raw client that tells
//! whether weir kept the connection open: what request smuggling and desync tests look at.
//!
//! The target parses requests the way a strict origin server does (RFC 9112: `Transfer-Encoding`
//! ending in `chunked` wins, else one `Content-Length`, else no body) and answers each with
//! `200` naming its request line, so a body that weir let through as a second request shows
//! up as a second recorded request.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the target parsed it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `METHOD target`.
    pub line: String,
    /// Header lines as received (`name: value`, lower-case names).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// One connection weir opened to the target.
#[derive(Debug, Default, Clone)]
pub struct Conn {
    pub bytes: Vec<u8>,
    pub requests: Vec<Seen>,
    /// weir closed it (EOF or reset).
    pub closed: bool,
    /// Bytes the target could not parse as a request.
    pub garbage: bool,
}

pub struct Recorder {
    pub addr: SocketAddr,
    pub conns: Arc<Mutex<Vec<Conn>>>,
}

impl Recorder {
    pub fn snapshot(&self) -> Vec<Conn> {
        self.conns.lock().unwrap().clone()
    }

    /// Every request whose target contains `tag`, with its connection's index.
    pub fn seen(&self, tag: &str) -> Vec<(usize, Seen)> {
        self.snapshot()
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.requests.iter().map(move |r| (i, r.clone())))
            .filter(|(_, r)| r.line.contains(tag))
            .collect()
    }

    /// Waits (up to 3 s) until the connection that carried `tag` is closed by weir; returns
    /// whether it was, and whether `tag` was the last request on it.
    pub async fn closed_after(&self, tag: &str) -> (bool, bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            let conns = self.snapshot();
            let c = conns
                .iter()
                .find(|c| c.requests.iter().any(|r| r.line.contains(tag)))
                .expect("the tagged request reached the target");
            let last = c.requests.last().is_some_and(|r| r.line.contains(tag));
            if c.closed || tokio::time::Instant::now() >= deadline {
                return (c.closed, last);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub async fn recorder() -> Recorder {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
    accept_each(l, conns.clone(), serve);
    Recorder { addr, conns }
}

/// Accepts on `l` for as long as the test runs: each connection gets a default record at the
/// end of `conns` and is served by `serve(stream, conns, its index)` on a task of its own.
pub fn accept_each<C, F, Fut>(l: TcpListener, conns: Arc<Mutex<Vec<C>>>, serve: F)
where
    C: Default + Send + 'static,
    F: Fn(TcpStream, Arc<Mutex<Vec<C>>>, usize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let i = {
                let mut v = conns.lock().unwrap();
                v.push(C::default());
                v.len() - 1
            };
            tokio::spawn(serve(s, conns.clone(), i));
        }
    });
}

async fn serve(mut s: TcpStream, all: Arc<Mutex<Vec<Conn>>>, i: usize) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        match next_request(&buf) {
            Parsed::Request(used, seen) => {
                buf.drain(..used);
                let text = format!("seen {}\n", seen.line);
                all.lock().unwrap()[i].requests.push(seen);
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{text}",
                    text.len()
                );
                if s.write_all(resp.as_bytes()).await.is_err() {
                    break;
                }
                continue;
            }
            Parsed::Garbage => {
                all.lock().unwrap()[i].garbage = true;
                return;
            }
            Parsed::More => {}
        }
        match tokio::time::timeout(Duration::from_secs(30), s.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => {
                buf.extend_from_slice(&tmp[..n]);
                all.lock().unwrap()[i].bytes.extend_from_slice(&tmp[..n]);
            }
            _ => break,
        }
    }
    all.lock().unwrap()[i].closed = true;
}

enum Parsed {
    Request(usize, Seen),
    More,
    Garbage,
}

fn next_request(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::More;
    }
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut slots);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::More,
        Err(_) => return Parsed::Garbage,
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let line = format!("{} {}", req.method.unwrap_or(""), req.path.unwrap_or(""));
    let chunked = values(&headers, "transfer-encoding")
        .last()
        .is_some_and(|v| v.trim().to_ascii_lowercase().ends_with("chunked"));
    let (body, used) = if chunked {
        match dechunk(&buf[head..]) {
            Some((body, n)) => (body, head + n),
            None => return Parsed::More,
        }
    } else {
        let n: usize = match values(&headers, "content-length").next() {
            None => 0,
            Some(v) => match v.trim().parse() {
                Ok(n) => n,
                Err(_) => return Parsed::Garbage,
            },
        };
        if buf.len() < head + n {
            return Parsed::More;
        }
        (buf[head..head + n].to_vec(), head + n)
    };
    Parsed::Request(
        used,
        Seen {
            line,
            headers,
            body,
        },
    )
}

fn values<'a>(h: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a String> {
    h.iter().filter(move |(k, _)| k == name).map(|(_, v)| v)
}

/// A complete chunked body at the front of `b`: (data, bytes used); `None` if incomplete.
fn dechunk(b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut at = 0;
    let mut data = Vec::new();
    loop {
        let eol = b[at..].windows(2).position(|w| w == b"\r\n")? + at;
        let size_text = String::from_utf8_lossy(&b[at..eol]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = eol + 2;
        if size == 0 {
            // Trailer lines up to the empty line.
            loop {
                let eol = b[at..].windows(2).position(|w| w == b"\r\n")? + at;
                let empty = eol == at;
                at = eol + 2;
                if empty {
                    return Some((data, at));
                }
            }
        }
        if b.len() < at + size + 2 {
            return None;
        }
        data.extend_from_slice(&b[at..at + size]);
        at += size + 2;
    }
}

/// What a client saw for one request on a new connection.
#[derive(Debug)]
pub struct Exchange {
    pub status: u16,
    pub response: String,
    /// weir closed the connection after the response (a probe request got no answer).
    pub closed: bool,
}

/// Sends `bytes` on a new connection, reads one response, then probes whether the connection
/// is still open with a second request (`GET /probe-open`): closed = no answer to it.
pub async fn exchange(port: u16, bytes: &[u8]) -> Exchange {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let (status, response) = read_response(&mut s).await;
    let _ = s
        .write_all(b"GET /probe-open HTTP/1.1\r\nHost: probe\r\n\r\n")
        .await;
    let (probe, _) = read_response(&mut s).await;
    Exchange {
        status,
        response,
        closed: probe == 0,
    }
}

/// One response (head and `content-length` body); status 0 when the connection ended first
/// (or nothing came within 5 s).
pub async fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..end + 4 + len]).into_owned();
                return (status, text);
            }
        }
        match tokio::time::timeout_at(deadline, s.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&tmp[..n]),
            _ => return (0, String::from_utf8_lossy(&buf).into_owned()),
        }
    }
}
