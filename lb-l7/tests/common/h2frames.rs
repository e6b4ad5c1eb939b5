//! A raw HTTP/2 client for tests: frames written and read by hand over a real socket (h2c with
//! prior knowledge, or TLS with ALPN `h2`), and the checks RFC 9113 asks of a server's reaction
//! (a connection error: GOAWAY with a code and/or close; a stream error: RST_STREAM with a code;
//! a response; a live connection). HPACK: literal fields without indexing and without Huffman
//! coding (which every decoder must accept, RFC 7541 §6.2.2) unless a test writes its own bytes.
//!
//! Used by `h2_conformance.rs` and `h2_abuse.rs` (`#[path]`, not through `common/mod.rs`, so the
//! other test binaries do not compile it).
#![allow(dead_code)] // each test binary uses a part

use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const PRIORITY: u8 = 2;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PUSH_PROMISE: u8 = 5;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const INTERNAL_ERROR: u32 = 0x2;
pub const FLOW_CONTROL_ERROR: u32 = 0x3;
pub const STREAM_CLOSED: u32 = 0x5;
pub const FRAME_SIZE_ERROR: u32 = 0x6;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// An error code's name (RFC 9113 §7).
pub fn code_name(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("0x{code:x}"), |n| n.to_string())
}

pub fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1); `high` holds the first byte's
/// other bits.
pub fn hpack_int(out: &mut Vec<u8>, n: u32, high: u8, v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(high | v as u8);
        return;
    }
    out.push(high | max as u8);
    let mut v = v - max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A string literal without Huffman coding (RFC 7541 §5.2).
pub fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 7, 0, s.len());
    out.extend_from_slice(s);
}

/// Literal fields without indexing, new names.
pub fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00); // literal without indexing, new name
        hpack_str(&mut out, name.as_bytes());
        hpack_str(&mut out, value.as_bytes());
    }
    out
}

/// The pseudo-header fields of a request for `path` (`method` GET or POST …).
pub fn head(method: &'static str, path: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        (":method", method),
        (":scheme", "http"),
        (":authority", "app.test"),
        (":path", path),
    ]
}

/// A whole request head (`GET` unless `fields` says otherwise) in one HEADERS frame.
pub fn request(stream: u32, path: &str, extra: &[(&str, &str)], end_stream: bool) -> Vec<u8> {
    let mut fields = vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "app.test"),
        (":path", path),
    ];
    fields.extend_from_slice(extra);
    let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
    frame(HEADERS, flags, stream, &hpack(&fields))
}

/// A HEADERS frame of exactly these fields.
pub fn headers(stream: u32, fields: &[(&str, &str)], flags: u8) -> Vec<u8> {
    frame(HEADERS, flags, stream, &hpack(fields))
}

pub fn data(stream: u32, bytes: &[u8], end_stream: bool) -> Vec<u8> {
    frame(DATA, if end_stream { END_STREAM } else { 0 }, stream, bytes)
}

pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

pub fn window_update(stream: u32, inc: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &inc.to_be_bytes())
}

pub fn rst(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn ping(payload: [u8; 8]) -> Vec<u8> {
    frame(PING, 0, 0, &payload)
}

pub fn goaway(last: u32, code: u32) -> Vec<u8> {
    let mut p = last.to_be_bytes().to_vec();
    p.extend_from_slice(&code.to_be_bytes());
    frame(GOAWAY, 0, 0, &p)
}

/// A PRIORITY frame: `stream` depends on `dep` (exclusive or not) with `weight` (1–256).
pub fn priority(stream: u32, dep: u32, exclusive: bool, weight: u16) -> Vec<u8> {
    let mut p = (dep | if exclusive { 1 << 31 } else { 0 })
        .to_be_bytes()
        .to_vec();
    p.push((weight - 1) as u8);
    frame(PRIORITY, 0, stream, &p)
}

#[derive(Debug)]
pub struct Frame {
    pub ty: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a GOAWAY or RST_STREAM.
    pub fn code(&self) -> Option<u32> {
        let at = match self.ty {
            GOAWAY => 4,
            RST_STREAM => 0,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.ty {
            DATA => "DATA",
            HEADERS => "HEADERS",
            PRIORITY => "PRIORITY",
            RST_STREAM => "RST_STREAM",
            SETTINGS => "SETTINGS",
            PUSH_PROMISE => "PUSH_PROMISE",
            PING => "PING",
            GOAWAY => "GOAWAY",
            WINDOW_UPDATE => "WINDOW_UPDATE",
            CONTINUATION => "CONTINUATION",
            _ => "UNKNOWN",
        };
        write!(
            f,
            "{name}(stream {}, flags 0x{:x}, {} bytes",
            self.stream,
            self.flags,
            self.payload.len()
        )?;
        if let Some(c) = self.code() {
            write!(f, ", {}", code_name(c))?;
        }
        write!(f, ")")
    }
}

/// What reading the next frame gave.
#[derive(Debug)]
pub enum Got {
    Frame(Frame),
    /// The server closed (or reset) the connection.
    Closed,
    /// Nothing within the limit.
    Quiet,
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// TLS over `tcp` (ALPN `h2` only, server name 127.0.0.1, trusting `ca`); panics unless the
/// server chose h2.
pub async fn tls_h2(
    tcp: TcpStream,
    ca: &std::path::Path,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut cfg = crate::common::tls_client_config(ca);
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls
}

/// A whole frame taken from the front of `buf`, if one is there.
pub fn take_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    let h = buf.get(..9)?;
    let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
    if buf.len() < 9 + len {
        return None;
    }
    let f = Frame {
        ty: h[3],
        flags: h[4],
        stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        payload: buf[9..9 + len].to_vec(),
    };
    buf.drain(..9 + len);
    Some(f)
}

pub struct H2 {
    pub s: Pin<Box<dyn Io>>,
    pub buf: Vec<u8>,
    /// Every frame read so far, described (for failure messages).
    pub seen: Vec<String>,
    /// Answer the server's SETTINGS and PING (on by default).
    pub auto_ack: bool,
    /// The connection was reset (RST), not closed: frames the server sent last (a GOAWAY)
    /// may have been lost with it, as TCP drops unread data on a reset.
    pub reset: bool,
}

/// How a check failed: what was expected, what came.
pub type Check = Result<(), String>;

impl H2 {
    /// Prior-knowledge h2c: the preface and a SETTINGS frame.
    pub async fn connect(port: u16, settings_pairs: &[(u16, u32)]) -> H2 {
        let mut c = H2::raw(port).await;
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(settings_pairs));
        c.s.write_all(&hello).await.unwrap();
        c
    }

    /// A TCP connection with nothing sent yet.
    pub async fn raw(port: u16) -> H2 {
        let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.set_nodelay(true).unwrap();
        H2::over(Box::pin(s))
    }

    /// A TLS connection (ALPN `h2` only, server name 127.0.0.1, trusting `ca`) with nothing
    /// sent yet; panics unless the server chose h2.
    pub async fn tls(port: u16, ca: &std::path::Path) -> H2 {
        let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        H2::over(Box::pin(tls_h2(s, ca).await))
    }

    pub fn over(s: Pin<Box<dyn Io>>) -> H2 {
        H2 {
            s,
            buf: Vec::new(),
            seen: Vec::new(),
            auto_ack: true,
            reset: false,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let r = async {
            self.s.write_all(bytes).await?;
            self.s.flush().await
        }
        .await;
        if let Err(e) = &r
            && matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        {
            self.reset = true;
        }
        r
    }

    /// The next frame; SETTINGS and PING from the server are acknowledged on the way.
    /// Cancel-safe: bytes of a frame not complete yet stay in `buf`.
    pub async fn next(&mut self, limit: Duration) -> Got {
        let until = tokio::time::Instant::now() + limit;
        let f = loop {
            if let Some(f) = self.parse() {
                break f;
            }
            let mut tmp = [0u8; 16 * 1024];
            match tokio::time::timeout_at(until, self.s.read(&mut tmp)).await {
                Err(_) => return Got::Quiet,
                Ok(Ok(0)) => return Got::Closed,
                Ok(Err(e)) => {
                    self.reset |= e.kind() == std::io::ErrorKind::ConnectionReset;
                    return Got::Closed;
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&tmp[..n]),
            }
        };
        if self.seen.len() < 64 {
            self.seen.push(f.to_string());
        }
        if self.auto_ack && f.ty == SETTINGS && f.flags & ACK == 0 {
            let _ = self.send(&frame(SETTINGS, ACK, 0, &[])).await;
        }
        if self.auto_ack && f.ty == PING && f.flags & ACK == 0 {
            let _ = self.send(&frame(PING, ACK, 0, &f.payload)).await;
        }
        Got::Frame(f)
    }

    /// A whole frame from the front of `buf`.
    fn parse(&mut self) -> Option<Frame> {
        take_frame(&mut self.buf)
    }

    /// What was read so far, for a failure message.
    pub fn trace(&self) -> String {
        if self.seen.is_empty() {
            "no frame".into()
        } else {
            self.seen.join(", ")
        }
    }

    /// Reads frames until `pred` returns `Some` (its value), the connection closes (`Err`) or
    /// `limit` passes (`Err`).
    pub async fn until<T>(
        &mut self,
        limit: Duration,
        mut pred: impl FnMut(&Frame) -> Option<T>,
    ) -> Result<T, String> {
        let until = Instant::now() + limit;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.next(left).await {
                Got::Frame(f) => {
                    if let Some(v) = pred(&f) {
                        return Ok(v);
                    }
                }
                Got::Closed => return Err(format!("connection closed after: {}", self.trace())),
                Got::Quiet => break,
            }
        }
        Err(format!("nothing within {limit:?}; got: {}", self.trace()))
    }

    /// The DATA of `stream` until its END_STREAM (or a reset, a close, `limit`).
    pub async fn body(&mut self, stream: u32, limit: Duration) -> (String, bool) {
        let until = Instant::now() + limit;
        let mut body = Vec::new();
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.next(left).await {
                Got::Frame(f) if f.stream == stream && f.ty == DATA => {
                    body.extend_from_slice(&f.payload);
                    if f.flags & END_STREAM != 0 {
                        return (String::from_utf8_lossy(&body).into_owned(), true);
                    }
                }
                Got::Frame(f) if f.stream == stream && f.ty == HEADERS => {
                    if f.flags & END_STREAM != 0 {
                        return (String::from_utf8_lossy(&body).into_owned(), true);
                    }
                }
                Got::Frame(f) if f.stream == stream && f.ty == RST_STREAM => break,
                Got::Frame(_) => {}
                Got::Closed | Got::Quiet => break,
            }
        }
        (String::from_utf8_lossy(&body).into_owned(), false)
    }

    /// Reads (and drops) frames until the server closes; `None` if it is still open after
    /// `limit`. Returns how long that took.
    pub async fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        let until = t0 + limit;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if let Got::Closed = self.next(left).await {
                return Some(t0.elapsed());
            }
        }
        None
    }

    /// Whether a GOAWAY arrived (frames are read for at most `limit`).
    pub async fn saw_goaway(&mut self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.next(left).await {
                Got::Frame(f) if f.ty == GOAWAY => return true,
                Got::Frame(_) => {}
                Got::Closed | Got::Quiet => return false,
            }
        }
        false
    }

    /// A connection error (RFC 9113 §5.4.1): a GOAWAY with one of `codes`, or the connection
    /// closed (GOAWAY is a SHOULD). A GOAWAY with another code, a response on a stream, or
    /// silence fail.
    pub async fn expect_conn_error(&mut self, codes: &[u32], limit: Duration) -> Check {
        let until = Instant::now() + limit;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.next(left).await {
                Got::Frame(f) if f.ty == GOAWAY => {
                    return match f.code() {
                        Some(c) if codes.contains(&c) => Ok(()),
                        _ => Err(format!(
                            "expected GOAWAY({}), got {f}; frames: {}",
                            names(codes),
                            self.trace()
                        )),
                    };
                }
                Got::Frame(f) if f.ty == HEADERS && f.stream != 0 => {
                    return Err(format!(
                        "expected GOAWAY({}), got a response {f}; frames: {}",
                        names(codes),
                        self.trace()
                    ));
                }
                Got::Frame(_) => {}
                Got::Closed => return Ok(()),
                Got::Quiet => break,
            }
        }
        Err(format!(
            "expected GOAWAY({}) or close, got nothing within {limit:?}; frames: {}",
            names(codes),
            self.trace()
        ))
    }

    /// A stream error (RFC 9113 §5.4.2) on `stream`: RST_STREAM with one of `codes`, or a
    /// connection error with one of them (a GOAWAY, or the connection closed), as h2spec
    /// accepts. A response (HEADERS) on the stream, a reset with another code, or silence fail.
    pub async fn expect_stream_error(
        &mut self,
        stream: u32,
        codes: &[u32],
        limit: Duration,
    ) -> Check {
        let until = Instant::now() + limit;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.next(left).await {
                Got::Frame(f) if (f.ty == RST_STREAM && f.stream == stream) || f.ty == GOAWAY => {
                    return match f.code() {
                        Some(c) if codes.contains(&c) => Ok(()),
                        _ => Err(format!(
                            "expected RST_STREAM({stream}, {}), got {f}; frames: {}",
                            names(codes),
                            self.trace()
                        )),
                    };
                }
                Got::Frame(f) if f.ty == HEADERS && f.stream == stream => {
                    return Err(format!(
                        "expected RST_STREAM({stream}, {}), got a response {f}; frames: {}",
                        names(codes),
                        self.trace()
                    ));
                }
                Got::Frame(_) => {}
                Got::Closed => return Ok(()),
                Got::Quiet => break,
            }
        }
        Err(format!(
            "expected RST_STREAM({stream}, {}), got nothing within {limit:?}; frames: {}",
            names(codes),
            self.trace()
        ))
    }

    /// A response on `stream`: its HEADERS, then its body to END_STREAM; returns the body.
    pub async fn expect_response(
        &mut self,
        stream: u32,
        limit: Duration,
    ) -> Result<String, String> {
        let ended = self
            .until(limit, |f| {
                (f.ty == HEADERS && f.stream == stream).then_some(f.flags & END_STREAM != 0)
            })
            .await
            .map_err(|e| format!("expected a response (HEADERS) on stream {stream}: {e}"))?;
        if ended {
            return Ok(String::new());
        }
        let (body, ended) = self.body(stream, limit).await;
        if !ended {
            return Err(format!(
                "the response on stream {stream} did not end; body {body:?}; frames: {}",
                self.trace()
            ));
        }
        Ok(body)
    }

    /// Whole responses on several streams whose frames may interleave; their bodies in the
    /// order of `streams`.
    pub async fn expect_responses(
        &mut self,
        streams: &[u32],
        limit: Duration,
    ) -> Result<Vec<String>, String> {
        let mut heads = vec![false; streams.len()];
        let mut ended = vec![false; streams.len()];
        let mut bodies = vec![Vec::new(); streams.len()];
        let until = Instant::now() + limit;
        while ended.iter().any(|e| !e) {
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                break;
            };
            let f = match self.next(left).await {
                Got::Frame(f) => f,
                Got::Closed | Got::Quiet => break,
            };
            let Some(i) = streams.iter().position(|s| *s == f.stream) else {
                continue;
            };
            match f.ty {
                HEADERS => heads[i] = true,
                DATA => bodies[i].extend_from_slice(&f.payload),
                RST_STREAM => {
                    return Err(format!(
                        "expected a response on stream {}, got {f}",
                        f.stream
                    ));
                }
                _ => {}
            }
            if heads[i] && f.flags & END_STREAM != 0 && (f.ty == HEADERS || f.ty == DATA) {
                ended[i] = true;
            }
        }
        if let Some(i) = ended.iter().position(|e| !e) {
            return Err(format!(
                "the response on stream {} did not end; frames: {}",
                streams[i],
                self.trace()
            ));
        }
        Ok(bodies
            .into_iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect())
    }

    /// The connection is alive: a PING is answered with a PING ACK of the same payload, and no
    /// GOAWAY or close comes first.
    pub async fn expect_alive(&mut self, limit: Duration) -> Check {
        let payload = *b"alive?!\x01";
        self.send(&ping(payload))
            .await
            .map_err(|e| format!("expected a live connection, the write failed: {e}"))?;
        self.until(limit, |f| {
            if f.ty == GOAWAY {
                return Some(Err(format!("expected a live connection, got {f}")));
            }
            (f.ty == PING && f.flags & ACK != 0 && f.payload == payload).then_some(Ok(()))
        })
        .await
        .map_err(|e| format!("expected a PING ACK (a live connection): {e}"))?
    }
}

fn names(codes: &[u32]) -> String {
    codes
        .iter()
        .map(|c| code_name(*c))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The test process's resident memory.
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
