//! The worker's cap on target connections (`lb_l7::target_conns`,
//! `WorkerOptions::max_target_connections`): at the cap an idle pooled connection is closed for
//! a new one, and only when none is idle is the request refused (HTTP/1.1 503
//! `TargetConnectionLimit`; an HTTP/2 stream RST_STREAM(REFUSED_STREAM) on weir's engine, 503
//! on hyper's), counted in `target_connections_refused_at_limit`. The last quarter of the cap
//! is kept for requests alone on their client connection, so an HTTP/2 client's fan-out
//! leaves room for a new client.

mod common;
#[path = "common/h2frames.rs"]
mod h2frames;

use common::*;
use h2frames::{HEADERS, PREFACE, REFUSED_STREAM, RST_STREAM, request, settings, take_frame};
use lb_l7::WorkerOptions;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(10);

fn capped(cap: usize) -> WorkerOptions {
    WorkerOptions {
        max_target_connections: Some(cap),
        ..WorkerOptions::default()
    }
}

/// The status code of one HTTP/1.1 request on a new client connection, and the response.
async fn get(port: u16, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n");
    let (out, _) = raw(port, req.as_bytes(), LIMIT).await;
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {out:?}"));
    (code, out)
}

/// Two listeners, each forwarding to a group of its own backend.
fn two_groups(a: u16, b: u16) -> String {
    let (pa, pb) = (free_port(), free_port());
    format!(
        r#"
[[listener]]
address = "127.0.0.1"
port = {pa}
default_action = {{ type = "forward", target_group = "a" }}
[[listener]]
address = "127.0.0.1"
port = {pb}
default_action = {{ type = "forward", target_group = "b" }}
[[target_group]]
name = "a"
target = [{{ id = "127.0.0.1", port = {a} }}]
[[target_group]]
name = "b"
target = [{{ id = "127.0.0.1", port = {b} }}]
"#
    )
}

/// HTTP/1.1 at a cap of 2: two slow requests hold both places, a third (to another target) is
/// refused 503; once the two are idle in their pool, a request to the other target closes one
/// of them and is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_an_idle_connection_closes_for_a_new_one_else_503() {
    let (a, b) = (backend("a").await, backend("b").await);
    let w = start_with(&two_groups(a.addr.port(), b.addr.port()), capped(2));
    let (pa, pb) = (w.ports[0], w.ports[1]);
    let slow = || tokio::spawn(async move { get(pa, "/slow?ms=1500").await.0 });
    let (s1, s2) = (slow(), slow());
    wait_for(LIMIT, "both slow requests at a", || {
        a.hits.load(std::sync::atomic::Ordering::SeqCst) == 2
    })
    .await;
    let (code, out) = get(pb, "/").await;
    assert_eq!(code, 503, "no place and none idle: {out}");
    assert_eq!(w.metrics.snapshot().target_connections_refused_at_limit, 1);
    assert_eq!((s1.await.unwrap(), s2.await.unwrap()), (200, 200));
    // Both of a's connections are idle in its pool now, and still count.
    let (code, out) = get(pb, "/").await;
    assert_eq!(code, 200, "an idle one was closed for it: {out}");
    let m = w.metrics.snapshot();
    assert_eq!(m.target_connections_refused_at_limit, 1);
    assert_eq!(m.upstream_connections_opened, 3);
    // a kept the other idle connection: reused.
    assert_eq!(get(pa, "/").await.0, 200);
    let m = w.metrics.snapshot();
    assert_eq!(
        (m.upstream_connections_opened, m.upstream_connections_reused),
        (3, 1)
    );
    w.stop().await;
}

/// What the streams of one HTTP/2 connection got: (stream, `Some(true)` a 200 head,
/// `Some(false)` another head, `None` REFUSED_STREAM).
async fn h2_streams(port: u16, streams: u32, path: &str) -> Vec<(u32, Option<bool>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(settings(&[]));
    for i in 0..streams {
        out.extend(request(1 + 2 * i, path, &[], true));
    }
    s.write_all(&out).await.unwrap();
    let mut got = Vec::new();
    let mut buf = Vec::new();
    loop {
        while let Some(f) = take_frame(&mut buf) {
            match f.ty {
                // :status 200 is static entry 8.
                HEADERS => got.push((f.stream, Some(f.payload.first() == Some(&0x88)))),
                RST_STREAM => {
                    assert_eq!(f.code(), Some(REFUSED_STREAM), "stream {}", f.stream);
                    got.push((f.stream, None));
                }
                _ => {}
            }
        }
        if got.len() == streams as usize {
            return got;
        }
        let mut tmp = [0u8; 16384];
        match tokio::time::timeout(LIMIT, s.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&tmp[..n]),
            r => panic!("connection ended or quiet ({r:?}) after {got:?}"),
        }
    }
}

/// An HTTP/2 connection's 6 slow streams at a cap of 4: 3 get target connections (the
/// fan-out's three quarters), 3 are refused (weir's engine: REFUSED_STREAM; hyper's: 503);
/// meanwhile a new HTTP/1.1 client takes the place kept for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_fan_out_is_refused_past_its_share_and_a_new_client_is_served() {
    let a = backend("a").await;
    for engine in ["weir", "hyper"] {
        let port = free_port();
        let cfg = one_target_config(
            port,
            a.addr.port(),
            &format!("http2_engine = \"{engine}\""),
            "",
            "",
        );
        let w = start_with(&cfg, capped(4));
        let streams = tokio::spawn(h2_streams(w.port, 6, "/slow?ms=1500"));
        wait_for(LIMIT, "three streams at the target", || {
            w.metrics.snapshot().target_connections_refused_at_limit == 3
        })
        .await;
        let (code, out) = get(w.port, "/").await;
        assert_eq!(code, 200, "{engine}: the kept quarter: {out}");
        let got = streams.await.unwrap();
        let ok = got.iter().filter(|(_, g)| *g == Some(true)).count();
        let other = got.iter().filter(|(_, g)| *g == Some(false)).count();
        let refused = got.iter().filter(|(_, g)| g.is_none()).count();
        match engine {
            "weir" => assert_eq!((ok, other, refused), (3, 0, 3), "{engine}: {got:?}"),
            _ => assert_eq!((ok, other, refused), (3, 3, 0), "{engine}: 503s: {got:?}"),
        }
        let m = w.metrics.snapshot();
        assert_eq!(m.target_connections_refused_at_limit, 3, "{engine}");
        w.stop().await;
    }
}
