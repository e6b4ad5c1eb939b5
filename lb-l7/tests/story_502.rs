//! The seed's 502 story: targets close idle keep-alive connections after 2 s while weir's pool
//! keeps them for 55 s. 1,000 requests with random idle gaps around 2 s (50 client sessions in
//! parallel, 20 requests each, each session hashed to its own target so that target's pooled
//! connection really sits idle for the gap) must all succeed: idle connections are watched, so a
//! connection the target closed is not reused, and the unavoidable race (the target closes just
//! as a request goes out) is retried on a fresh connection.

mod common;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

const SESSIONS: usize = 50;
const PER_SESSION: usize = 20;

async fn session(port: u16, seed: u64) -> Result<usize, String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut ok = 0;
    for i in 0..PER_SESSION {
        if i > 0 {
            // Idle gaps around the target's 2 s keep-alive timeout: 1.9–2.1 s.
            tokio::time::sleep(Duration::from_millis(1900 + rng.u64(0..200))).await;
        }
        let req = Request::get(format!("http://127.0.0.1:{port}/r/{seed}/{i}"))
            .header("host", "story.test")
            .header("x-session", seed.to_string())
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        send.ready()
            .await
            .map_err(|e| format!("request {i}: client connection lost: {e}"))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| format!("request {i}: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status != 200 || &body[..] != b"ok\n" {
            return Err(format!("request {i}: status {status} body {body:?}"));
        }
        ok += 1;
    }
    Ok(ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_closing_idle_keepalive_after_2s_give_no_502() {
    let mut backends = Vec::new();
    for _ in 0..SESSIONS {
        backends.push(idle_closing_backend(Duration::from_secs(2)).await);
    }
    let targets: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ id = \"127.0.0.1\", port = {} }}", b.addr.port()))
        .collect();
    let port = free_port();
    let w = start(&format!(
        r#"
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "app" }}

[[target_group]]
name = "app"
target = [{}]
connection_pool.idle_timeout_seconds = 55
load_balancing.algorithm.type = "consistent_hash"
load_balancing.algorithm.hash_on = "header:x-session"
"#,
        targets.join(", ")
    ));
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..SESSIONS)
        .map(|i| tokio::spawn(session(port, 1000 + i as u64)))
        .collect();
    let mut errors = Vec::new();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(n) => ok += n,
            Err(e) => errors.push(e),
        }
    }
    let m = w.metrics.snapshot();
    let sum = |f: fn(&IdleClosingBackend) -> usize| backends.iter().map(f).sum::<usize>();
    let (hits, conns, idle_closes) = (
        sum(|b| b.hits.load(SeqCst)),
        sum(|b| b.conns.load(SeqCst)),
        sum(|b| b.idle_closes.load(SeqCst)),
    );
    eprintln!(
        "502 story: {ok} ok, {} errors in {:?}; target: {} requests, {} connections, {} closed idle; weir: {} opened, {} reused, {} retried, ELB 5xx {}",
        errors.len(),
        t0.elapsed(),
        hits,
        conns,
        idle_closes,
        m.upstream_connections_opened,
        m.upstream_connections_reused,
        m.upstream_retries,
        m.elb_5xx
    );
    assert!(errors.is_empty(), "client-visible errors: {errors:?}");
    assert_eq!(ok, SESSIONS * PER_SESSION);
    assert_eq!(m.elb_5xx, 0);
    assert_eq!(m.elb_502, 0);
    // The scenario really happened, at every target one session alone reached: the target
    // closed idle connections under weir's pool, and weir's pool met those closes (found closed
    // in the pool, or dead on reuse). Not a total: once weir has learned a target's 2 s from
    // its first closes (keep-alive learning), it retires pooled connections at 1.5 s, at the
    // first 1 s sweep or checkout after that age; whether the target's timer or that sweep
    // comes first is up to the sweep's phase and the scheduler, and a loaded machine sees fewer
    // such closes (86 of 1,000 requests on a loaded CI machine, ~120 on a quiet one). Not at a
    // target two sessions share (40 requests and more): their requests interleave on its pooled
    // connections, so none need sit idle for 2 s there.
    let mut alone = 0;
    for b in &backends {
        let hits = b.hits.load(SeqCst);
        if hits == 0 || hits >= 2 * PER_SESSION {
            continue; // no session hashed to it, or more than one
        }
        alone += 1;
        let ka = &m.targets[&format!("app/{}", b.addr)].keepalive;
        assert!(
            b.idle_closes.load(SeqCst) >= 1
                && ka.keepalive_closed_idle + ka.keepalive_dead_on_reuse >= 1,
            "target {} served {hits} requests, closed {} idle connections, weir's pool met {} \
             closed idle and {} dead on reuse: {ka:?}",
            b.addr,
            b.idle_closes.load(SeqCst),
            ka.keepalive_closed_idle,
            ka.keepalive_dead_on_reuse,
        );
    }
    // 50 sessions hashed over 50 targets: about 18 targets get exactly one.
    assert!(alone >= 5, "only {alone} targets served one session alone");
    // Weir still reused connections (it did not just give up pooling).
    assert!(
        m.upstream_connections_reused >= 200,
        "reused {}",
        m.upstream_connections_reused
    );
    // Every request reached a target; only retries and requeues can add hits (a requeued request
    // may or may not have been read by the target before its connection closed).
    let resent = (m.upstream_retries + m.upstream_requeued) as usize;
    assert!(
        (SESSIONS * PER_SESSION..=SESSIONS * PER_SESSION + resent).contains(&hits),
        "{hits} target hits for {} requests, {resent} resent",
        SESSIONS * PER_SESSION
    );
    w.stop().await;
}

/// A target that answers the first request of each connection and then, on the second, reads
/// the request and closes without a byte of response: the race of the story made certain.
async fn closes_on_second_request() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = s2.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                for n in 0..2 {
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => got.extend_from_slice(&buf[..k]),
                        }
                    }
                    seen.fetch_add(1, SeqCst);
                    if n == 1 {
                        return; // close with the request outstanding
                    }
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n")
                        .await;
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_rules_on_a_reused_connection() {
    let (addr, seen) = closes_on_second_request().await;
    let port = free_port();
    let w = start(&format!(
        "[[listener]]\naddress = \"127.0.0.1\"\nport = {port}\ndefault_action = {{ type = \"forward\", target_group = \"t\" }}\n\
         [[target_group]]\nname = \"t\"\ntarget = [{{ id = \"127.0.0.1\", port = {} }}]\n",
        addr.port()
    ));
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let get = |p: &str| {
        Request::get(format!("http://x{p}"))
            .header("host", "t")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    // 1: fresh target connection (first request of the session), answered, pooled.
    let r = send.send_request(get("/1")).await.unwrap();
    assert_eq!(r.status(), 200);
    r.into_body().collect().await.unwrap();
    // 2: GET on the reused connection; the target closes it without answering → retried once
    // on a new connection → 200.
    send.ready().await.unwrap();
    let r = send.send_request(get("/2")).await.unwrap();
    assert_eq!(r.status(), 200);
    r.into_body().collect().await.unwrap();
    assert_eq!(w.metrics.snapshot().upstream_retries, 1);
    assert_eq!(seen.load(SeqCst), 3);
    // 3: POST with a body on the reused connection: sent, failed, not retried → 502.
    send.ready().await.unwrap();
    let post = Request::post("http://x/3")
        .header("host", "t")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"payload",
        )))
        .unwrap();
    let r = send.send_request(post).await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        seen.load(SeqCst),
        4,
        "the POST reached the target exactly once"
    );
    let m = w.metrics.snapshot();
    assert_eq!((m.upstream_retries, m.elb_502), (1, 1));
    w.stop().await;
}
