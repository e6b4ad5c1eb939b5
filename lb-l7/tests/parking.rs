//! Parked idle connections (`lb_l7::accept::park`): a plain HTTP/1.1 keep-alive connection idle
//! for `PARK_AFTER` loses its task and waits in the worker's parking lot. Through a real worker
//! and a real backend: it serves its next request (a whole one, pipelined ones, one trickled in
//! while it is parked), closes at its idle timeout, at the worker's stop and when a reload
//! removes its listener, is freed when its client closes (FIN or RST), and counts as an
//! active connection (gauge, `max_connections_per_worker`) while parked, closed at the limit to
//! make room for a new client.

mod common;
use common::*;
use lb_l7::MetricsHandle;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(ports: &[u16], backend: u16, lb_extra: &str) -> String {
    let mut t = format!("[load_balancer]\n{lb_extra}\n");
    for p in ports {
        t += &format!(
            "[[listener]]\naddress = \"127.0.0.1\"\nport = {p}\ndefault_action = {{ type = \"forward\", target_group = \"t\" }}\n"
        );
    }
    t += &format!(
        "[[target_group]]\nname = \"t\"\ntarget = [{{ id = \"127.0.0.1\", port = {backend} }}]\n"
    );
    t
}

/// Reads one response; returns its head and body.
async fn response(c: &mut TcpStream) -> (String, String) {
    let (head, body, after) = content_length_response(c, Duration::from_secs(5)).await;
    assert!(after.is_empty(), "bytes after the response: {after:?}");
    (head, body)
}

fn request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: park.test\r\n\r\n")
}

/// Sends a request and checks the response is the backend's answer to it.
async fn get(c: &mut TcpStream, path: &str) {
    c.write_all(request(path).as_bytes()).await.unwrap();
    let (head, body) = response(c).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains(&format!("GET {path} ")), "{body}");
}

/// Waits until `n` connections are parked.
async fn parked(m: &MetricsHandle, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while m.parked() != n {
        assert!(Instant::now() < deadline, "{} parked, not {n}", m.parked());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the worker counts `n` active connections.
async fn active(m: &MetricsHandle, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while m.snapshot().active_connection_count != n {
        assert!(
            Instant::now() < deadline,
            "{} active, not {n}",
            m.snapshot().active_connection_count
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads until the end; what it ended with: `Ok(0)` for a FIN.
async fn end(c: &mut TcpStream, within: Duration) -> std::io::Result<usize> {
    let mut buf = [0u8; 64];
    tokio::time::timeout(within, c.read(&mut buf))
        .await
        .expect("closed in time")
}

#[tokio::test]
async fn a_parked_connection_serves_its_next_requests_whole_pipelined_and_trickled() {
    let be = backend("be").await;
    let p = free_port();
    let w = start(&config(&[p], be.addr.port(), ""));
    let mut c = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
    get(&mut c, "/first").await;
    parked(&w.metrics, 1).await;
    assert_eq!(w.metrics.snapshot().active_connection_count, 1);
    // The next request: the connection gets a task again, and parks again once idle.
    get(&mut c, "/second").await;
    parked(&w.metrics, 1).await;
    // Two requests in one write while parked: both answered, in order.
    let two = request("/p1") + &request("/p2");
    c.write_all(two.as_bytes()).await.unwrap();
    for path in ["/p1", "/p2"] {
        let (head, body) = response(&mut c).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body.contains(&format!("GET {path} ")), "{body}");
    }
    // A head trickled in: its first bytes wake the parked connection, the rest follow.
    parked(&w.metrics, 1).await;
    let req = request("/trickled");
    c.write_all(&req.as_bytes()[..10]).await.unwrap();
    parked(&w.metrics, 0).await; // resumed by its first bytes
    c.write_all(&req.as_bytes()[10..]).await.unwrap();
    let (head, body) = response(&mut c).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("GET /trickled "), "{body}");
    // A second connection parks beside it.
    let mut d = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
    get(&mut d, "/other").await;
    parked(&w.metrics, 2).await;
    get(&mut c, "/again").await;
    get(&mut d, "/again").await;
    assert_eq!(w.metrics.snapshot().request_count, 8);
    w.stop().await;
}

#[tokio::test]
async fn a_parked_connection_closes_at_its_idle_timeout() {
    let be = backend("be").await;
    let p = free_port();
    let w = start(&config(
        &[p],
        be.addr.port(),
        "idle_timeout.timeout_seconds = 2",
    ));
    let mut c = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
    get(&mut c, "/once").await;
    let t = Instant::now();
    parked(&w.metrics, 1).await;
    assert_eq!(
        end(&mut c, Duration::from_secs(5)).await.unwrap(),
        0,
        "a FIN"
    );
    let after = t.elapsed();
    assert!(
        after >= Duration::from_millis(1800) && after <= Duration::from_millis(2600),
        "closed {after:?} after its last response, the idle timeout is 2 s"
    );
    assert_eq!(w.metrics.parked(), 0);
    active(&w.metrics, 0).await;
    w.stop().await;
}

#[tokio::test]
async fn parked_connections_close_at_the_stop_without_waiting_for_the_drain() {
    let be = backend("be").await;
    let p = free_port();
    let w = start(&config(&[p], be.addr.port(), "drain_timeout_seconds = 30"));
    let mut conns = Vec::new();
    for i in 0..3 {
        let mut c = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
        get(&mut c, &format!("/c{i}")).await;
        conns.push(c);
    }
    parked(&w.metrics, 3).await;
    let m = w.metrics.clone();
    let t = Instant::now();
    w.stop().await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the stop waited {:?}: the drain counts parked connections until they close",
        t.elapsed()
    );
    for c in &mut conns {
        assert_eq!(end(c, Duration::from_secs(2)).await.unwrap(), 0, "a FIN");
    }
    assert_eq!(m.parked(), 0);
    assert_eq!(m.snapshot().active_connection_count, 0);
}

#[tokio::test]
async fn a_client_closing_a_parked_connection_frees_it_fin_or_reset() {
    let be = backend("be").await;
    let p = free_port();
    let w = start(&config(&[p], be.addr.port(), ""));
    let mut fin = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
    get(&mut fin, "/fin").await;
    let mut rst = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
    get(&mut rst, "/rst").await;
    parked(&w.metrics, 2).await;
    active(&w.metrics, 2).await;
    drop(fin);
    parked(&w.metrics, 1).await;
    active(&w.metrics, 1).await;
    let rst = rst.into_std().unwrap();
    socket2::SockRef::from(&rst)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(rst);
    parked(&w.metrics, 0).await;
    active(&w.metrics, 0).await;
    w.stop().await;
}

/// A parked connection counts against `max_connections_per_worker`; at the limit it is closed
/// (a FIN) to make room for a new client, which is served (nginx's reusable connections). A
/// connection that has sent no request is not: the next one over the limit is rejected.
#[tokio::test]
async fn parked_connections_count_against_max_connections_and_make_room() {
    let be = backend("be").await;
    let p = free_port();
    let w = start(&config(
        &[p],
        be.addr.port(),
        "max_connections_per_worker = 1",
    ));
    let mut c = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
    get(&mut c, "/kept").await;
    parked(&w.metrics, 1).await;
    active(&w.metrics, 1).await;
    let mut new = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
    assert_eq!(
        end(&mut c, Duration::from_secs(5)).await.unwrap(),
        0,
        "the parked connection closed with a FIN"
    );
    get(&mut new, "/new").await;
    let snap = w.metrics.snapshot();
    assert_eq!(snap.rejected_connection_count, 0);
    assert_eq!(snap.idle_closed_at_limit, 1);
    // `new` has served a request but waits in its task (not parked yet): it makes room too.
    let silent = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
    assert_eq!(end(&mut new, Duration::from_secs(5)).await.unwrap(), 0);
    assert_eq!(w.metrics.snapshot().idle_closed_at_limit, 2);
    active(&w.metrics, 1).await;
    // `silent` has sent nothing: not idle keep-alive, it keeps its place.
    let mut over = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
    let _ = over.write_all(request("/over").as_bytes()).await;
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(5), over.read(&mut buf))
        .await
        .expect("refused in time");
    assert!(matches!(r, Ok(0) | Err(_)), "over the limit: {r:?}");
    assert_eq!(w.metrics.snapshot().rejected_connection_count, 1);
    let mut silent = silent;
    get(&mut silent, "/still").await;
    w.stop().await;
}

#[tokio::test]
async fn a_reload_removing_its_listener_closes_a_parked_connection_and_no_other() {
    let be = backend("be").await;
    let (kept, removed) = (free_port(), free_port());
    let (mut control, opts) = Control::new(lb_l7::WorkerOptions::default());
    let w = start_with(&config(&[kept, removed], be.addr.port(), ""), opts);
    let mut a = TcpStream::connect(("127.0.0.1", kept)).await.unwrap();
    get(&mut a, "/kept").await;
    let mut b = TcpStream::connect(("127.0.0.1", removed)).await.unwrap();
    get(&mut b, "/removed").await;
    parked(&w.metrics, 2).await;
    control.reload(2, "parking.toml", config(&[kept], be.addr.port(), ""));
    assert_eq!(
        end(&mut b, Duration::from_secs(3)).await.unwrap(),
        0,
        "a FIN"
    );
    parked(&w.metrics, 1).await;
    active(&w.metrics, 1).await;
    get(&mut a, "/after-the-reload").await;
    w.stop().await;
}

/// A TLS connection whose client, idle after a response, trickles the start of a record (a
/// byte every 300 ms, never a whole record) closes at its idle timeout counted from its last
/// response: each byte wakes its idle wait for nothing to read, and the wait goes on with the
/// deadline it had, so a trickler cannot stretch its life a byte at a time.
#[tokio::test]
async fn an_idle_tls_connection_trickling_part_of_a_record_closes_at_its_idle_timeout() {
    let be = backend("be").await;
    let pki = TestPki::new("trickle");
    let cert = pki.leaf("trickle", &["trickle.test"]);
    let (p, ptls) = (free_port(), free_port());
    let w = start(&plain_and_tls_config(
        p,
        ptls,
        &cert,
        be.addr.port(),
        "idle_timeout.timeout_seconds = 2",
    ));
    let tcp = TcpStream::connect(("127.0.0.1", ptls)).await.unwrap();
    let mut raw = std::net::TcpStream::from(tcp.as_fd().try_clone_to_owned().unwrap());
    let name = rustls::pki_types::ServerName::try_from("trickle.test").unwrap();
    let mut c = tls_connector(&pki.ca).connect(name, tcp).await.unwrap();
    c.write_all(request("/once").as_bytes()).await.unwrap();
    let (head, _, _) = content_length_response(&mut c, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let t = Instant::now();
    // An application-data record header announcing 32 bytes, then 2 of them: 7 bytes, 1.8 s.
    for b in [0x17, 0x03, 0x03, 0x00, 0x20, 0x00, 0x00] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if std::io::Write::write_all(&mut raw, &[b]).is_err() {
            break;
        }
    }
    let mut buf = [0u8; 64];
    let end = tokio::time::timeout(Duration::from_secs(5), c.get_mut().0.read(&mut buf)).await;
    let after = t.elapsed();
    assert!(end.is_ok(), "still open {after:?} after its last response");
    assert!(
        after >= Duration::from_millis(1800) && after <= Duration::from_millis(2600),
        "closed {after:?} after its last response, the idle timeout is 2 s"
    );
    w.stop().await;
}

/// Raises this process's open-files limit to at least `n` (root may raise the hard limit too),
/// else to its hard limit; returns the limit in force.
fn raise_nofile(n: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if setrlimit(Resource::RLIMIT_NOFILE, soft.max(n), hard.max(n)).is_err() {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    getrlimit(Resource::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft)
}

/// A reload that removes a listener with thousands of parked connections closes them a batch
/// at a time, the worker's other connections served in between: a client asking again and
/// again on another listener meanwhile waited at most 3–5 ms for an answer (the test's
/// backend and clients share the worker's thread, so an answer is several turns). Closing
/// them all in one go held the worker, and so that client, 36 ms. The ticker closes the
/// connections reaching their idle timeout the same way (`park::Closing`).
#[tokio::test]
async fn closing_thousands_of_parked_connections_does_not_stall_the_worker() {
    const N: usize = 3000;
    const BOUND: Duration = Duration::from_millis(15);
    // Both ends of every connection are in this process.
    let limit = raise_nofile(3 * N as u64);
    assert!(
        limit >= 2 * N as u64 + 500,
        "open-files limit {limit}: too low for {N} connections"
    );
    let be = backend("be").await;
    let (kept, removed) = (free_port(), free_port());
    let (mut control, opts) = Control::new(lb_l7::WorkerOptions::default());
    let lb = "max_connections_per_worker = 4000";
    let w = start_with(&config(&[kept, removed], be.addr.port(), lb), opts);
    let mut held = Vec::with_capacity(N);
    while held.len() < N {
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..50 {
            batch.spawn(async move {
                let mut c = TcpStream::connect(("127.0.0.1", removed)).await.unwrap();
                get(&mut c, "/idle").await;
                c
            });
        }
        held.extend(batch.join_all().await);
    }
    let mut probe = TcpStream::connect(("127.0.0.1", kept)).await.unwrap();
    get(&mut probe, "/warm").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.metrics.parked() < N {
        assert!(
            Instant::now() < deadline,
            "{} parked, not {N}",
            w.metrics.parked()
        );
        get(&mut probe, "/waiting").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    control.reload(2, "parking.toml", config(&[kept], be.addr.port(), lb));
    // The longest time between two answers to the probe, from the reload until the lot is
    // empty (and 100 ms more).
    let (start, mut last, mut worst, mut emptied) =
        (Instant::now(), Instant::now(), Duration::ZERO, None);
    loop {
        get(&mut probe, "/probe").await;
        let now = Instant::now();
        worst = worst.max(now - last);
        last = now;
        if w.metrics.parked() == 0 {
            let at = *emptied.get_or_insert(now);
            if now - at > Duration::from_millis(100) {
                break;
            }
        }
        assert!(
            now < start + Duration::from_secs(10),
            "{} still parked",
            w.metrics.parked()
        );
    }
    let took = emptied.unwrap() - start;
    assert!(
        worst < BOUND,
        "the probe waited {worst:?} for an answer while {N} parked connections closed (all \
         closed {took:?} after the reload)"
    );
    let mut eof = 0;
    for mut c in held {
        if end(&mut c, Duration::from_secs(3)).await.unwrap_or(1) == 0 {
            eof += 1;
        }
    }
    assert_eq!(
        eof, N,
        "every parked connection of the removed listener got a FIN"
    );
    w.stop().await;
}
