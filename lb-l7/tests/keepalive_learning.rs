//! Keep-alive learning (issue #12), the seed's 502 at its worst: a raw target that never says
//! how long it keeps an idle connection, and kills one idle longer than its own limit (1.0 s)
//! when the next request arrives on it (SO_LINGER 0: the request is sent, then a reset), or
//! closes it silently at the limit. One client session over HTTP/1.1 and one over HTTP/2 (both
//! engines, one target pool) send GETs and POSTs with pauses of 0.5–1.3 s around the limit.
//! After the first reset (the first few silent closes), no request may fail, GET or POST: weir
//! learns the limit and retires pooled connections before it (POSTs, which it cannot retry,
//! well before it).
//! A third target advertises `Keep-Alive: timeout=1`: weir honours it from the first response.
//!
//! "After" is measured from the request before which weir's metrics first show the limit
//! (learned or advertised), and the window must hold enough requests sent after a pause longer
//! than the target's limit (every pooled connection then idled past it: without learning, a
//! POST there meets a reset) for its "no errors" to say something.

mod common;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The target's own idle limit, never advertised (except by the `Advertise` target).
const LIMIT: Duration = Duration::from_millis(1000);
/// Resets weir may meet before it knows: the first one (its age, exact, is the limit).
const FIRST_RESET: usize = 1;
/// Silent closes the target may make before weir shows the limit: "the first few" (the sweep
/// may find more than one pooled connection closed at once).
const FIRST_CLOSES: usize = 2;
/// Requests sent after a pause longer than `LIMIT` once weir knows the limit, at least: the
/// window's "no errors" is about these. weir learns before round 2; from there the seeded
/// sequences hold 9 such requests (seed 12, 5 of them POSTs) and 5 (seed 34, 2 POSTs).
const LATE_AFTER_KNOWN: usize = 4;

#[derive(Clone, Copy, PartialEq)]
enum Close {
    /// A request on a connection idle longer than `LIMIT` is answered with a reset.
    ResetOnArrival,
    /// A connection idle for `LIMIT` is closed (FIN).
    SilentAtLimit,
    /// As `ResetOnArrival`, but every response says `Keep-Alive: timeout=1`.
    Advertise,
}

struct RawTarget {
    addr: SocketAddr,
    /// Requests answered, connections accepted, connections reset or closed for idling.
    served: Arc<AtomicUsize>,
    conns: Arc<AtomicUsize>,
    killed: Arc<AtomicUsize>,
}

async fn raw_target(close: Close) -> RawTarget {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let t = RawTarget {
        addr: l.local_addr().unwrap(),
        served: Arc::default(),
        conns: Arc::default(),
        killed: Arc::default(),
    };
    let (served, conns, killed) = (t.served.clone(), t.conns.clone(), t.killed.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            conns.fetch_add(1, SeqCst);
            let (served, killed) = (served.clone(), killed.clone());
            tokio::spawn(serve(s, close, served, killed));
        }
    });
    t
}

/// One target connection: requests answered `200 ok` until it idles past `LIMIT`.
async fn serve(mut s: TcpStream, close: Close, served: Arc<AtomicUsize>, killed: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let mut idle_since = Instant::now();
    loop {
        // Wait for the next request's first bytes.
        let read = match close {
            Close::SilentAtLimit => {
                let left = LIMIT.saturating_sub(idle_since.elapsed());
                match tokio::time::timeout(left, s.read(&mut tmp)).await {
                    Ok(r) => r,
                    Err(_) => {
                        killed.fetch_add(1, SeqCst);
                        return; // FIN
                    }
                }
            }
            _ => s.read(&mut tmp).await,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
        if close != Close::SilentAtLimit && idle_since.elapsed() > LIMIT {
            // The worst case: the request is on the wire, the answer is a reset.
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            killed.fetch_add(1, SeqCst);
            return;
        }
        // The rest of the head and the body (Content-Length).
        let (end, len) = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap_or(0));
                if buf.len() >= end + 4 + len {
                    break (end, len);
                }
            }
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        buf.drain(..end + 4 + len);
        served.fetch_add(1, SeqCst);
        let resp: &[u8] = if close == Close::Advertise {
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nkeep-alive: timeout=1\r\n\r\nok\n"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n"
        };
        if s.write_all(resp).await.is_err() {
            return;
        }
        idle_since = Instant::now();
    }
}

/// A client session to weir over HTTP/1.1 or HTTP/2 (prior knowledge).
enum Session {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Session {
    async fn open(port: u16, h2: bool) -> Session {
        let io = TokioIo::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        if h2 {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            Session::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Session::H1(send)
        }
    }

    /// One request; `Err` for anything but `200 ok` (status, or a client-side failure).
    async fn request(&mut self, post: bool, i: usize) -> Result<(), String> {
        // HTTP/1.1: origin form and a Host line; HTTP/2: the authority in the URI.
        let (uri, host) = match self {
            Session::H1(_) => (format!("/{i}"), Some("ka.test")),
            Session::H2(_) => (format!("http://ka.test/{i}"), None),
        };
        let mut b = Request::builder()
            .method(if post { "POST" } else { "GET" })
            .uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        let body = if post {
            Bytes::from(format!("payload {i}"))
        } else {
            Bytes::new()
        };
        let req = b.body(Full::new(body)).unwrap();
        let resp = match self {
            Session::H1(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await
            }
            Session::H2(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await
            }
        }
        .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        match (status.as_u16(), &body.to_bytes()[..]) {
            (200, b"ok\n") => Ok(()),
            (code, b) => Err(format!("{code} {:?}", String::from_utf8_lossy(b))),
        }
    }
}

/// What one run saw, before and after the request from which weir knew the target's limit.
#[derive(Debug, Default)]
struct Totals {
    requests: usize,
    /// The first round before which weir's metrics showed a learned or advertised limit.
    known_from: Option<usize>,
    /// Client-visible failures before and after that round.
    errors_before: Vec<String>,
    errors_after: Vec<String>,
    /// Connections the target killed before and after that round.
    killed_before: usize,
    killed_after: usize,
    /// Requests from that round on, and those of them sent after a pause longer than `LIMIT`
    /// (one request at a time: every pooled connection had idled past the target's limit).
    requests_after: usize,
    late_after: usize,
    late_posts_after: usize,
}

impl Totals {
    /// The claim of the learning tests: weir knew the limit after at most `few` kills, the
    /// requests after that include enough late ones, and none of them failed.
    fn assert_learned(&self, few: usize, what: &str) {
        assert!(
            self.errors_after.is_empty(),
            "client-visible errors after weir learned the limit (round {:?}, {} {what} before): \
             {:?}",
            self.known_from,
            self.killed_before,
            self.errors_after
        );
        let Some(from) = self.known_from else {
            panic!(
                "weir never showed a learned limit ({} requests, {} {what}); client-visible \
                 errors: {:?}",
                self.requests, self.killed_before, self.errors_before
            );
        };
        assert!(
            self.killed_before <= few,
            "weir learned the limit only at round {from}, after {} {what}",
            self.killed_before
        );
        assert!(
            self.late_after >= LATE_AFTER_KNOWN,
            "after weir learned the limit (round {from}), only {} of {} requests came after a \
             pause past the target's limit: too few for \"no errors\" to mean anything",
            self.late_after,
            self.requests_after
        );
    }
}

/// `rounds` requests, one at a time, each after a pause of 0.5–1.3 s, GET or POST, over the
/// HTTP/1.1 or the HTTP/2 session (seeded: the same sequence on every run).
async fn drive(w: &Running, port: u16, t: &RawTarget, rounds: usize, seed: u64) -> Totals {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut sessions = [
        Session::open(port, false).await,
        Session::open(port, true).await,
    ];
    let mut tot = Totals::default();
    for i in 0..rounds {
        let pause = Duration::from_millis(500 + rng.u64(0..800));
        tokio::time::sleep(pause).await;
        let (post, h2) = (rng.bool(), rng.bool());
        if tot.known_from.is_none() && knows_limit(w, t) {
            tot.known_from = Some(i);
            tot.killed_before = t.killed.load(SeqCst);
        }
        let late = i > 0 && pause > LIMIT;
        let r = sessions[usize::from(h2)].request(post, i).await;
        tot.requests += 1;
        if tot.known_from.is_some() {
            tot.requests_after += 1;
            tot.late_after += usize::from(late);
            tot.late_posts_after += usize::from(late && post);
        }
        if let Err(e) = r {
            let what = format!(
                "round {i} {} over {} after {} ms: {e}",
                if post { "POST" } else { "GET" },
                if h2 { "HTTP/2" } else { "HTTP/1.1" },
                pause.as_millis()
            );
            if tot.known_from.is_some() {
                tot.errors_after.push(what);
            } else {
                tot.errors_before.push(what);
            }
            // A fresh session, should weir have closed this one.
            sessions[usize::from(h2)] = Session::open(port, h2).await;
        }
    }
    let killed = t.killed.load(SeqCst);
    if tot.known_from.is_none() {
        tot.killed_before = killed;
    }
    tot.killed_after = killed - tot.killed_before;
    tot
}

fn config(port: u16, target: u16) -> String {
    // Pools on and reused whenever possible; the pool's own idle timeout far above the limit.
    one_target_config(
        port,
        target,
        "",
        "",
        "connection_pool.reuse = \"always\"\nconnection_pool.idle_timeout_seconds = 55",
    )
}

/// The target's keep-alive fields in weir's metrics snapshot (JSON, as `weir stats` reads it).
fn keepalive_json(w: &Running, t: &RawTarget) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&w.metrics.snapshot().to_json()).unwrap();
    let mut t = v["targets"][format!("t/{}", t.addr)].clone();
    if let Some(o) = t.as_object_mut() {
        o.retain(|k, _| k.contains("keepalive"));
    }
    t
}

/// Do weir's metrics show a limit for the target, learned or advertised?
fn knows_limit(w: &Running, t: &RawTarget) -> bool {
    let k = keepalive_json(w, t);
    !k["learned_keepalive_ms"].is_null() || !k["advertised_keepalive_ms"].is_null()
}

async fn run(close: Close, rounds: usize, seed: u64) -> (Totals, serde_json::Value) {
    let t = raw_target(close).await;
    let port = free_port();
    let w = start(&config(port, t.addr.port()));
    let tot = drive(&w, port, &t, rounds, seed).await;
    let learned = keepalive_json(&w, &t);
    let m = w.metrics.snapshot();
    eprintln!(
        "{}: {} requests, weir knew the limit from round {:?}; after it: {} requests, {} late \
         ({} POSTs); client-visible errors {} before / {} after; target: {} answered, {} \
         connections, {} killed before / {} after; weir: {} opened, {} reused, {} retried, {} \
         requeued; learned: {learned}",
        match close {
            Close::ResetOnArrival => "reset on arrival",
            Close::SilentAtLimit => "silent close at the limit",
            Close::Advertise => "advertised timeout=1, reset on arrival",
        },
        tot.requests,
        tot.known_from,
        tot.requests_after,
        tot.late_after,
        tot.late_posts_after,
        tot.errors_before.len(),
        tot.errors_after.len(),
        t.served.load(SeqCst),
        t.conns.load(SeqCst),
        tot.killed_before,
        tot.killed_after,
        m.upstream_connections_opened,
        m.upstream_connections_reused,
        m.upstream_retries,
        m.upstream_requeued,
    );
    for e in tot.errors_before.iter().chain(&tot.errors_after) {
        eprintln!("  {e}");
    }
    // Pooling was not given up: some requests still went out on pooled connections.
    assert!(m.upstream_connections_reused > 0, "{m:?}");
    w.stop().await;
    (tot, learned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_resetting_requests_on_idle_connections_is_learned() {
    let (tot, learned) = run(Close::ResetOnArrival, 26, 12).await;
    tot.assert_learned(FIRST_RESET, "resets");
    // What weir learned is shown: about the target's limit (a reset comes only past it; the
    // snapshot may follow a relearning step of +25 %), and requests weir cannot retry retire
    // their pooled connections well before it.
    let ms = learned["learned_keepalive_ms"].as_u64();
    assert!(ms.is_some_and(|ms| (800..=2000).contains(&ms)), "{learned}");
    let strict = learned["keepalive_retire_strict_ms"].as_u64().unwrap();
    assert!(strict < 1000, "{learned}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_closing_idle_connections_silently_is_learned() {
    let (tot, learned) = run(Close::SilentAtLimit, 26, 34).await;
    tot.assert_learned(FIRST_CLOSES, "closes");
    // Learned from closes the pool found (never before the target's limit).
    let ms = learned["learned_keepalive_ms"].as_u64();
    assert!(ms.is_some_and(|ms| (800..=3000).contains(&ms)), "{learned}");
    assert!(
        learned["keepalive_closed_idle"].as_u64() > Some(0),
        "{learned}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertised_keep_alive_timeout_is_honoured_from_the_first_response() {
    let (tot, learned) = run(Close::Advertise, 12, 56).await;
    let errors: Vec<_> = tot.errors_before.iter().chain(&tot.errors_after).collect();
    assert!(errors.is_empty(), "client-visible errors: {errors:?}");
    assert_eq!(
        tot.killed_before + tot.killed_after,
        0,
        "no pooled connection may reach the advertised timeout"
    );
    assert_eq!(
        learned["advertised_keepalive_ms"].as_u64(),
        Some(1000),
        "{learned}"
    );
}
