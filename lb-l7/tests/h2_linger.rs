//! The lingering close of HTTP/2 connections (`lb_l7::linger`), with each engine (`weir_engine`,
//! `hyper_engine`), through a real worker, a real backend and a raw-frame client that keeps
//! sending (a PING every 10 ms) and reads late and slowly, through a small receive buffer
//! (4 KiB asked), so that the server's last bytes are still in its send queue when it closes.
//! Closed at once (the code before), the server's close is a reset that drops them: the client
//! reads a few KiB and then ECONNRESET, no GOAWAY. Each test fails so on that code.
//!
//! - a connection error (DATA on stream 0), h2c and TLS: the client reads the response before
//!   it, GOAWAY(PROTOCOL_ERROR, last stream 1), then EOF (TLS: close_notify);
//! - a graceful close (`http2_max_requests_per_connection = 3`): the three responses whole,
//!   GOAWAY(NO_ERROR, last stream 5), then EOF;
//! - a client that never stops sending: still closed (reset) at the linger's bound, about 2 s
//!   after its EOF, and counted as an active connection until then;
//! - the worker's stop (`drain_timeout_seconds = 0`): the client gets its response, GOAWAY and
//!   EOF, and the stop returns at its deadline (1 s) although the client never stops sending.

mod common;
use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::Mutex;

#[path = "common/h2frames.rs"]
mod h2frames;
use h2frames::{
    ACK, DATA, END_STREAM, Frame, GOAWAY, HEADERS, Io, NO_ERROR, PING, PREFACE, PROTOCOL_ERROR,
    SETTINGS, code_name, frame, request, settings, take_frame, tls_h2,
};

/// The tests run one at a time: they time closes.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::const_new(());
    LOCK.lock().await
}

/// A header the backend echoes into its body: each response is more than 8 KiB, more than
/// the client's receive buffer takes.
fn pad() -> String {
    "p".repeat(8 * 1024)
}

struct Setup {
    w: Running,
    port: u16,
    tls_port: u16,
    pki: TestPki,
    _be: Backend,
}

async fn setup(engine: &str, extra: &str) -> Setup {
    let be = backend("linger").await;
    let pki = TestPki::new(&format!("h2linger-{engine}"));
    let (w, port, tls_port) = start_plain_and_tls(
        &pki,
        &["127.0.0.1"],
        be.addr.port(),
        &format!("http2_engine = \"{engine}\"\n{extra}"),
    );
    Setup {
        w,
        port,
        tls_port,
        pki,
        _be: be,
    }
}

/// A TCP connection whose receive buffer is small (4 KiB asked; Linux doubles it).
async fn small_tcp(port: u16) -> tokio::net::TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    let t = s.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    t.set_nodelay(true).unwrap();
    t
}

async fn small_tls(
    port: u16,
    ca: &std::path::Path,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    tls_h2(small_tcp(port).await, ca).await
}

type Writer = Arc<Mutex<WriteHalf<Box<dyn Io>>>>;

/// How the client's reading ended.
#[derive(Debug, PartialEq)]
enum End {
    Eof,
    Reset,
    /// Another error (TLS: a FIN without close_notify).
    Error(String),
    Timeout,
}

struct Client {
    r: ReadHalf<Box<dyn Io>>,
    w: Writer,
    buf: Vec<u8>,
    /// Stops the pinger.
    quiet: Arc<AtomicBool>,
    /// When the pinger's write failed (the server reset the connection).
    write_failed: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Client {
    /// The preface and SETTINGS sent, nothing read yet.
    async fn new(io: Box<dyn Io>) -> Client {
        let (r, w) = tokio::io::split(io);
        let c = Client {
            r,
            w: Arc::new(Mutex::new(w)),
            buf: Vec::new(),
            quiet: Arc::new(AtomicBool::new(false)),
            write_failed: Arc::new(std::sync::Mutex::new(None)),
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(&[]));
        c.send(&hello).await.unwrap();
        c
    }

    async fn send(&self, b: &[u8]) -> std::io::Result<()> {
        let mut w = self.w.lock().await;
        w.write_all(b).await?;
        w.flush().await
    }

    /// A request for `path` on stream `id` whose response is longer than the receive buffer
    /// (the backend echoes its `pad()` header).
    async fn send_padded(&self, id: u32, path: &str) {
        self.send(&request(id, path, &[("x-pad", &pad())], true))
            .await
            .unwrap();
    }

    /// A PING every 10 ms until `quiet` or a write fails (its time recorded).
    fn keep_sending(&self) {
        let (w, quiet, failed) = (
            self.w.clone(),
            self.quiet.clone(),
            self.write_failed.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0u64;
            while !quiet.load(SeqCst) {
                n += 1;
                let r = {
                    let mut w = w.lock().await;
                    match w.write_all(&frame(PING, 0, 0, &n.to_be_bytes())).await {
                        Ok(()) => w.flush().await,
                        Err(e) => Err(e),
                    }
                };
                if r.is_err() {
                    *failed.lock().unwrap() = Some(Instant::now());
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }

    /// Reads slowly (1 KiB at a time, 1 ms apart) every frame until the server's close;
    /// acknowledges SETTINGS and PINGs on the way.
    async fn read_to_close(&mut self, limit: Duration) -> (Vec<Frame>, End) {
        let until = tokio::time::Instant::now() + limit;
        let mut frames = Vec::new();
        loop {
            while let Some(f) = self.parse() {
                if f.ty == SETTINGS && f.flags & ACK == 0 {
                    let _ = self.send(&frame(SETTINGS, ACK, 0, &[])).await;
                }
                if f.ty == PING && f.flags & ACK == 0 {
                    let _ = self.send(&frame(PING, ACK, 0, &f.payload)).await;
                }
                frames.push(f);
            }
            let mut tmp = [0u8; 1024];
            let end = match tokio::time::timeout_at(until, self.r.read(&mut tmp)).await {
                Err(_) => End::Timeout,
                Ok(Ok(0)) => End::Eof,
                Ok(Ok(n)) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => End::Reset,
                Ok(Err(e)) => End::Error(e.to_string()),
            };
            while let Some(f) = self.parse() {
                frames.push(f);
            }
            return (frames, end);
        }
    }

    fn parse(&mut self) -> Option<Frame> {
        take_frame(&mut self.buf)
    }
}

/// A stream's (id, body bytes, ended).
type StreamSeen = (u32, usize, bool);

/// Stream `id`'s response came whole: ended, its body longer than the 8 KiB `pad`.
fn whole(streams: &[StreamSeen], id: u32) -> bool {
    streams
        .iter()
        .any(|&(i, n, ended)| i == id && n > 8 * 1024 && ended)
}

/// What the frames say: each stream's body and whether it ended, the last GOAWAY's (last
/// stream id, code).
fn summary(frames: &[Frame]) -> (Vec<StreamSeen>, Option<(u32, u32)>) {
    let mut streams: Vec<StreamSeen> = Vec::new();
    let mut goaway = None;
    for f in frames {
        match f.ty {
            HEADERS | DATA if f.stream != 0 => {
                let at = match streams.iter().position(|s| s.0 == f.stream) {
                    Some(i) => i,
                    None => {
                        streams.push((f.stream, 0, false));
                        streams.len() - 1
                    }
                };
                if f.ty == DATA {
                    streams[at].1 += f.payload.len();
                }
                streams[at].2 |= f.flags & END_STREAM != 0;
            }
            GOAWAY if f.payload.len() >= 8 => {
                let p = &f.payload;
                let last = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
                let code = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                goaway = Some((last, code));
            }
            _ => {}
        }
    }
    (streams, goaway)
}

fn describe(frames: &[Frame]) -> String {
    let (streams, goaway) = summary(frames);
    format!(
        "{} frames; streams (id, body bytes, ended): {streams:?}; last GOAWAY: {:?}",
        frames.len(),
        goaway.map(|(l, c)| (l, code_name(c)))
    )
}

/// The client's stream: plain h2c or TLS (ALPN h2), with a small receive buffer.
async fn connect(s: &Setup, tls: bool) -> Client {
    let io: Box<dyn Io> = if tls {
        Box::new(small_tls(s.tls_port, &s.pki.ca).await)
    } else {
        Box::new(small_tcp(s.port).await)
    };
    Client::new(io).await
}

/// Each test's opening: its turn (`serial`), a worker (`setup`) and a client connected to it.
async fn open(
    engine: &str,
    extra: &str,
    tls: bool,
) -> (tokio::sync::MutexGuard<'static, ()>, Setup, Client) {
    let turn = serial().await;
    let s = setup(engine, extra).await;
    let c = connect(&s, tls).await;
    (turn, s, c)
}

/// A connection error after a response the client has not read yet.
async fn connection_error_goaway_survives(engine: &str, tls: bool) {
    let (_turn, s, mut c) = open(engine, "", tls).await;
    c.send_padded(1, "/first").await;
    // The response reaches the server's send queue; the client reads nothing yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.keep_sending();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // DATA on stream 0: a connection error (PROTOCOL_ERROR) on both engines.
    c.send(&frame(DATA, 0, 0, b"x")).await.unwrap();
    // The server closes meanwhile, the client still sending.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (frames, end) = c.read_to_close(Duration::from_secs(5)).await;
    c.quiet.store(true, SeqCst);
    let what = describe(&frames);
    eprintln!("{engine} tls={tls}: {what}; then {end:?}");
    let (streams, goaway) = summary(&frames);
    assert_eq!(
        goaway,
        Some((1, PROTOCOL_ERROR)),
        "{engine} tls={tls}: GOAWAY(last 1, PROTOCOL_ERROR); {what}; then {end:?}"
    );
    assert!(
        whole(&streams, 1),
        "{engine} tls={tls}: stream 1's response whole; {what}"
    );
    assert_eq!(
        end,
        End::Eof,
        "{engine} tls={tls}: EOF after the GOAWAY; {what}"
    );
    drop(c);
    s.w.stop().await;
}

/// The request limit's graceful GOAWAY after three responses the client has not read yet.
async fn request_limit_responses_survive(engine: &str) {
    let (_turn, s, mut c) = open(engine, "http2_max_requests_per_connection = 3", false).await;
    for id in [1, 3, 5] {
        c.send_padded(id, &format!("/r{id}")).await;
    }
    c.keep_sending();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (frames, end) = c.read_to_close(Duration::from_secs(5)).await;
    c.quiet.store(true, SeqCst);
    let what = describe(&frames);
    eprintln!("{engine}: {what}; then {end:?}");
    let (streams, goaway) = summary(&frames);
    for id in [1, 3, 5] {
        assert!(
            whole(&streams, id),
            "{engine}: stream {id}'s response whole; {what}; then {end:?}"
        );
    }
    assert_eq!(
        goaway,
        Some((5, NO_ERROR)),
        "{engine}: GOAWAY(last 5, NO_ERROR); {what}; then {end:?}"
    );
    assert_eq!(end, End::Eof, "{engine}: EOF after the GOAWAY; {what}");
    drop(c);
    s.w.stop().await;
}

/// A client that never stops sending (nor closes): the server still closes, at the linger's
/// bound, and counts the connection as active until then.
async fn never_stopping_client_is_closed_at_the_bound(engine: &str) {
    let (_turn, s, mut c) = open(engine, "http2_max_requests_per_connection = 1", false).await;
    c.send(&request(1, "/only", &[], true)).await.unwrap();
    c.keep_sending();
    let (frames, end) = c.read_to_close(Duration::from_secs(5)).await;
    let eof = Instant::now();
    let what = describe(&frames);
    assert_eq!(summary(&frames).1, Some((1, NO_ERROR)), "{engine}: {what}");
    assert_eq!(end, End::Eof, "{engine}: {what}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let active = s.w.metrics.snapshot().active_connection_count;
    assert_eq!(
        active, 1,
        "{engine}: the lingering connection is still counted"
    );
    // Still sending: the linger ends at its total bound, with a reset the writes meet.
    let failed = loop {
        if let Some(t) = *c.write_failed.lock().unwrap() {
            break Some(t);
        }
        if eof.elapsed() > Duration::from_secs(6) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let after = failed
        .map(|t| t.saturating_duration_since(eof))
        .unwrap_or_else(|| panic!("{engine}: still open 6 s after its EOF"));
    eprintln!("{engine}: closed {after:?} after the client's EOF");
    assert!(
        after >= Duration::from_millis(1200) && after < Duration::from_millis(3500),
        "{engine}: closed {after:?} after the EOF, the linger's bound is 2 s"
    );
    wait_for(
        Duration::from_secs(5),
        &format!("{engine}: the closed connection uncounted"),
        || s.w.metrics.snapshot().active_connection_count == 0,
    )
    .await;
    c.quiet.store(true, SeqCst);
    drop(c);
    s.w.stop().await;
}

/// The worker's stop with `drain_timeout_seconds = 0` (deadline 1 s): a client that never
/// stops sending still gets its response, the GOAWAY and EOF, and the stop does not wait for
/// the linger's 2 s.
async fn stop_does_not_wait_for_the_linger(engine: &str) {
    let (_turn, s, mut c) = open(engine, "drain_timeout_seconds = 0", false).await;
    c.send_padded(1, "/before-stop").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.keep_sending();
    let t0 = Instant::now();
    let stop = tokio::spawn(s.w.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (frames, end) = c.read_to_close(Duration::from_secs(5)).await;
    let what = describe(&frames);
    eprintln!("{engine}: {what}; then {end:?}");
    let (streams, goaway) = summary(&frames);
    assert!(
        whole(&streams, 1),
        "{engine}: stream 1's response whole; {what}; then {end:?}"
    );
    assert_eq!(goaway.map(|g| g.1), Some(NO_ERROR), "{engine}: {what}");
    assert_eq!(end, End::Eof, "{engine}: EOF after the GOAWAY; {what}");
    stop.await.unwrap();
    let took = t0.elapsed();
    eprintln!("{engine}: the stop took {took:?}");
    assert!(
        took < Duration::from_millis(1800),
        "{engine}: the stop took {took:?}: it waited for the linger"
    );
    c.quiet.store(true, SeqCst);
}

macro_rules! per_engine {
    ($engine:ident) => {
        mod $engine {
            fn engine() -> &'static str {
                stringify!($engine).trim_end_matches("_engine")
            }
            #[tokio::test]
            async fn connection_error_goaway_survives_h2c() {
                super::connection_error_goaway_survives(engine(), false).await;
            }
            #[tokio::test]
            async fn connection_error_goaway_survives_tls() {
                super::connection_error_goaway_survives(engine(), true).await;
            }
            #[tokio::test]
            async fn request_limit_responses_survive() {
                super::request_limit_responses_survive(engine()).await;
            }
            #[tokio::test]
            async fn never_stopping_client_is_closed_at_the_bound() {
                super::never_stopping_client_is_closed_at_the_bound(engine()).await;
            }
            #[tokio::test]
            async fn stop_does_not_wait_for_the_linger() {
                super::stop_does_not_wait_for_the_linger(engine()).await;
            }
        }
    };
}

per_engine!(weir_engine);
per_engine!(hyper_engine);
