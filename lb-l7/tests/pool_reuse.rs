//! The target pool across client connections (`reuse = "safe"`, the default): a client
//! connection's first request takes an idle target connection when weir can send it again
//! (idempotent, no body), as nginx's upstream keep-alive does, so short client connections —
//! one TLS handshake, one request, close — do not each cost a target connect and close. A first
//! request weir cannot replay (a POST with a body) still gets a new connection (HAProxy's
//! `http-reuse safe`), and a replayable first request that meets a pooled connection the target
//! closed as it went out is retried by weir on a new one: the client never sees the race.

mod common;
use common::*;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

/// One request on a new client connection (`Connection: close`); the status line's code.
async fn one_request(port: u16, req: &str) -> u16 {
    let (out, _) = raw(port, req.as_bytes(), LIMIT).await;
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {out:?}"))
}

const GET: &str = "GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n";
const POST: &str =
    "POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbody";

/// Client connections one after another, each one request: HTTP/1.1, then HTTPS with a full
/// handshake each (curl, HTTP/1.1 and HTTP/2 on both engines). All of them share one target
/// connection; a first POST opens a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_requests_of_new_client_connections_reuse_idle_target_connections() {
    let pki = TestPki::new("pool-reuse");
    let b = backend("a").await;
    for engine in ["hyper", "weir"] {
        let (w, http, https) = start_plain_and_tls(
            &pki,
            &["a.test"],
            b.addr.port(),
            &format!("http2_engine = \"{engine}\""),
        );
        let conns0 = b.conns.load(SeqCst);
        for _ in 0..10 {
            assert_eq!(one_request(http, GET).await, 200);
        }
        let url = format!("https://a.test:{https}/");
        let resolve = format!("a.test:{https}:127.0.0.1");
        let ca = pki.ca.display().to_string();
        for proto in ["--http1.1", "--http2"] {
            for _ in 0..3 {
                let (code, body) =
                    curl(&[proto, "--cacert", &ca, "--resolve", &resolve, &url]).await;
                assert_eq!(code, 200, "{engine} {proto}: {body}");
            }
        }
        let m = w.metrics.snapshot();
        assert_eq!(
            (b.conns.load(SeqCst) - conns0, m.upstream_connections_opened),
            (1, 1),
            "{engine}: 16 client connections, one target connection ({m:?})"
        );
        assert_eq!(m.upstream_connections_reused, 15, "{engine}");
        // A first request weir could not send again gets a new target connection.
        assert_eq!(one_request(http, POST).await, 200);
        let m = w.metrics.snapshot();
        assert_eq!(
            (b.conns.load(SeqCst) - conns0, m.upstream_connections_opened),
            (2, 2),
            "{engine}: the first POST's own connection"
        );
        // Two POSTs on one client connection: the first gets a new target connection, the
        // second may reuse (as before).
        let two_posts = POST.replace("connection: close\r\n", "") + POST;
        let (out, _) = raw(http, two_posts.as_bytes(), LIMIT).await;
        assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "{out}");
        let m = w.metrics.snapshot();
        assert_eq!(
            (m.upstream_connections_opened, m.upstream_connections_reused),
            (3, 16),
            "{engine}: {m:?}"
        );
        w.stop().await;
    }
}

/// A target that answers the first request of each connection and then, on the second, reads
/// the request and closes without a byte of response: the race `safe` guards against, made
/// certain. Returns its port and the requests it read.
async fn closes_on_second_request() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
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
                        return; // closed with the request outstanding
                    }
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n")
                        .await;
                }
            });
        }
    });
    (port, seen)
}

/// The first request of a second client connection takes the first one's pooled target
/// connection, which the target closes as the request arrives: weir sends it again on a new
/// connection and the client gets 200. A first POST is never put at that risk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_request_on_a_dead_reused_connection_is_retried_by_weir() {
    let (target, seen) = closes_on_second_request().await;
    let port = free_port();
    let w = start(&one_target_config(port, target, "", "", ""));
    assert_eq!(one_request(port, GET).await, 200);
    assert_eq!(one_request(port, GET).await, 200, "retried, not a 502");
    let m = w.metrics.snapshot();
    assert_eq!(
        (
            m.upstream_connections_reused,
            m.upstream_retries,
            seen.load(SeqCst)
        ),
        (1, 1, 3),
        "the second client's request went to the pooled connection, then to a new one"
    );
    // The retry's connection is pooled now; a first POST does not take it.
    assert_eq!(one_request(port, POST).await, 200);
    let m = w.metrics.snapshot();
    assert_eq!((m.upstream_connections_reused, m.elb_502), (1, 0), "{m:?}");
    assert_eq!(seen.load(SeqCst), 4);
    w.stop().await;
}

/// An HTTP/1.0 request without a Host (what `openssl s_time -www` sends) leaves as HTTP/1.1
/// with a Host naming the listener's address (ALB generates one with its DNS name): a strict
/// target (nginx) answers a Host-less HTTP/1.1 request 400 and closes, so each such client
/// connection also cost a target connection. Three of them share one here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_request_without_host_gets_the_listeners_address() {
    let b = backend("a").await;
    let port = free_port();
    let w = start(&one_target_config(port, b.addr.port(), "", "", ""));
    for _ in 0..3 {
        let (out, _) = raw(port, b"GET / HTTP/1.0\r\n\r\n", LIMIT).await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(
            out.contains(&format!("\nhost: 127.0.0.1:{port}\n")),
            "the target saw no Host: {out}"
        );
    }
    let m = w.metrics.snapshot();
    assert_eq!(
        (m.upstream_connections_opened, m.upstream_connections_reused),
        (1, 2)
    );
    w.stop().await;
}

/// A group rebuilt by a reload — here a target added beside the one in use (weight 0: it takes
/// nothing) — keeps the target that stays as it was: its idle connections (no new connect),
/// what its pool learned, and its counters (`RequestCountPerTarget` goes on from where it
/// was, no reset a Prometheus `rate` would read as one). A reload that changes the pool's own
/// settings starts the pool afresh. The old generation's copy of the kept target drains
/// (a tick later) without closing the connections it shares.
#[tokio::test]
async fn a_changed_group_keeps_the_connections_and_counters_of_the_targets_that_stay() {
    let b = backend("a").await;
    let port = free_port();
    let one = one_target_config(port, b.addr.port(), "", "", "");
    let target = format!(
        "target = [{{ id = \"127.0.0.1\", port = {} }}",
        b.addr.port()
    );
    let two = one.replace(
        &target,
        &format!("{target}, {{ id = \"127.0.0.2\", port = 9, weight = 0 }}"),
    );
    let (mut control, opts) = Control::new(lb_l7::WorkerOptions::default());
    let w = start_with(&one, opts);
    let conns0 = b.conns.load(SeqCst);
    let key = format!("t/127.0.0.1:{}", b.addr.port());
    let requests = |w: &Running| w.metrics.snapshot().targets[&key].request_count;
    for _ in 0..5 {
        assert_eq!(one_request(port, GET).await, 200);
    }
    assert_eq!((b.conns.load(SeqCst) - conns0, requests(&w)), (1, 5));

    control.reload(2, "pool.toml", two.clone());
    let added = "t/127.0.0.2:9".to_string();
    wait_for(LIMIT, "generation 2", || {
        w.metrics.snapshot().targets.contains_key(&added)
    })
    .await;
    // The old generation's group drains at the worker's next ticks.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..5 {
        assert_eq!(one_request(port, GET).await, 200);
    }
    let m = w.metrics.snapshot();
    assert_eq!(
        (b.conns.load(SeqCst) - conns0, m.upstream_connections_opened),
        (1, 1),
        "the kept target's idle connection served on: {m:?}"
    );
    assert_eq!(requests(&w), 10, "its counters went on");

    // Other pool settings: a pool of its own (one new connection), the counters still kept.
    let pooled = two.replace(
        "name = \"t\"",
        "name = \"t\"\nconnection_pool = { idle_timeout_seconds = 30 }",
    );
    let retire = |w: &Running| {
        w.metrics.snapshot().targets[&key]
            .keepalive
            .keepalive_retire_ms
    };
    let retire2 = retire(&w);
    control.reload(3, "pool.toml", pooled);
    wait_for(LIMIT, "generation 3 (its pool retires sooner)", || {
        retire(&w) != retire2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..5 {
        assert_eq!(one_request(port, GET).await, 200);
    }
    assert_eq!(
        b.conns.load(SeqCst) - conns0,
        2,
        "a new pool, a new connection"
    );
    assert_eq!(requests(&w), 15);
    w.stop().await;
}
