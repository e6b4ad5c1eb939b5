//! The worker's target choice under failing, slow, new and remote targets, over real sockets:
//! least_outstanding_requests against round_robin with a slow target, per-target caps and
//! queues (`target_limits`), passive health ejecting a target that starts failing under load
//! (`outlier_detection`), slow start's ramp after a target becomes healthy (`slow_start`), and
//! zones with cross-zone off. Target states are changed the way the control plane does it:
//! messages on the worker's control channel (`lb_l7::control`).
//!
//! Backends are raw HTTP/1.1 keep-alive servers whose delay and failure mode (200, 500, reset)
//! the test changes while they run; they count requests in flight.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use lb_l7::control::{self, CheckedTarget, ControlMsg, TargetHealth};
use lb_l7::{AccessLogTarget, WorkerOptions};
use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------------
// A backend the test steers: a delay, then 200, 500 or a reset.

const OK: u8 = 0;
const FAIL_500: u8 = 1;
const RESET: u8 = 2;

#[derive(Default)]
struct Ctl {
    delay_ms: AtomicU64,
    mode: AtomicU8,
    hits: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

struct Target {
    addr: SocketAddr,
    ctl: Arc<Ctl>,
}

async fn target(name: &'static str, delay_ms: u64) -> Target {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let ctl = Arc::new(Ctl::default());
    ctl.delay_ms.store(delay_ms, SeqCst);
    let c = ctl.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(serve(s, c.clone(), name));
        }
    });
    Target { addr, ctl }
}

/// Counts a request in flight until dropped.
struct InFlight(Arc<Ctl>);
impl InFlight {
    fn new(c: &Arc<Ctl>) -> InFlight {
        let n = c.in_flight.fetch_add(1, SeqCst) + 1;
        c.max_in_flight.fetch_max(n, SeqCst);
        InFlight(c.clone())
    }
}
impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, SeqCst);
    }
}

async fn serve(mut s: TcpStream, c: Arc<Ctl>, name: &'static str) {
    let mut buf = Vec::with_capacity(4096);
    let mut tmp = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        buf.drain(..end);
        c.hits.fetch_add(1, SeqCst);
        let _f = InFlight::new(&c);
        let d = c.delay_ms.load(SeqCst);
        if d > 0 {
            tokio::time::sleep(Duration::from_millis(d)).await;
        }
        let status = match c.mode.load(SeqCst) {
            RESET => {
                // Linger 0 (no blocking on close: the close is a reset).
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                return; // dropped with SO_LINGER 0: RST
            }
            FAIL_500 => "500 Internal Server Error",
            _ => "200 OK",
        };
        let r = format!("HTTP/1.1 {status}\r\nx-backend: {name}\r\ncontent-length: 3\r\n\r\nok\n");
        if s.write_all(r.as_bytes()).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clients: keep-alive HTTP/1.1 connections sending requests until a deadline.

/// One response: when it was sent (since the load started), status, which backend answered.
#[derive(Debug, Clone)]
struct Seen {
    at: Duration,
    status: u16,
    backend: String,
}

async fn connect(port: u16) -> SendRequest<Empty<Bytes>> {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    tx
}

async fn get(port: u16, tx: &mut Option<SendRequest<Empty<Bytes>>>, cookie: &str) -> Seen {
    let start = Instant::now();
    if tx.as_ref().is_none_or(|t| t.is_closed()) {
        *tx = Some(connect(port).await);
    }
    let t = tx.as_mut().unwrap();
    let mut req = hyper::Request::get("/").header("host", "app.test");
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    let req = req.body(Empty::new()).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        t.ready().await.ok()?;
        t.send_request(req).await.ok()
    })
    .await
    .ok()
    .flatten();
    let Some(r) = r else {
        *tx = None;
        return Seen {
            at: start.elapsed(),
            status: 0,
            backend: String::new(),
        };
    };
    let status = r.status().as_u16();
    let backend = r
        .headers()
        .get("x-backend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let _ = r.into_body().collect().await;
    Seen {
        at: Duration::ZERO,
        status,
        backend,
    }
}

/// `clients` connections send requests (a `pause` after each) for `run`; every response with
/// the time it was sent, from `t0`.
async fn load(
    port: u16,
    clients: usize,
    run: Duration,
    pause: Duration,
    cookie: &'static str,
) -> Vec<Seen> {
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            tokio::spawn(async move {
                let mut tx = None;
                let mut seen = Vec::new();
                while t0.elapsed() < run {
                    let at = t0.elapsed();
                    let mut s = get(port, &mut tx, cookie).await;
                    s.at = at;
                    seen.push(s);
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
                seen
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_by_key(|s| s.at);
    all
}

/// `n` clients send one request each, at once.
async fn once_each(port: u16, n: usize, cookie: &'static str) -> Vec<Seen> {
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(async move { get(port, &mut None, cookie).await }))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.unwrap());
    }
    all
}

fn share(seen: &[Seen], backend: &str) -> f64 {
    let n = seen.iter().filter(|s| s.backend == backend).count();
    n as f64 / seen.len().max(1) as f64
}

// ---------------------------------------------------------------------------------------------
// The worker, with a control channel the test writes target states to.

struct Lb {
    w: Running,
    control: UnixStream,
}

impl Lb {
    fn start(cfg: &str) -> Lb {
        Lb::start_logged(cfg, None)
    }

    fn start_logged(cfg: &str, log: Option<std::path::PathBuf>) -> Lb {
        let (Control(ours), opts) = Control::new(WorkerOptions {
            access_log: log.map(AccessLogTarget::File),
            ..WorkerOptions::default()
        });
        Lb {
            w: start_with(cfg, opts),
            control: ours,
        }
    }

    /// Sets target `addr` of group `g` to `state`, as the health checker does; returns once
    /// the worker applied it (the next message's effect is seen in the metrics).
    async fn set_state(&mut self, g: &str, addr: SocketAddr, state: &str) {
        let m = ControlMsg::TargetStates(vec![TargetHealth {
            group: g.into(),
            target: addr,
            state: state.into(),
            reason: None,
        }]);
        self.control.write_all(&control::encode(&m)).unwrap();
        let key = format!("{g}/{addr}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.w.metrics.snapshot().targets[&key].state != state {
            assert!(Instant::now() < deadline, "{key} never became {state}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn target(&self, g: &str, t: &Target) -> lb_l7::metrics::TargetSnapshot {
        self.w.metrics.snapshot().targets[&format!("{g}/{}", t.addr)].clone()
    }
}

fn group(name: &str, ts: &[&Target], extra: &str) -> String {
    let list: Vec<String> = ts
        .iter()
        .map(|t| format!("{{ id = \"127.0.0.1\", port = {} }}", t.addr.port()))
        .collect();
    format!(
        "[[target_group]]\nname = \"{name}\"\n{extra}\ntarget = [{}]\n",
        list.join(", ")
    )
}

fn config(port: u16, lb_extra: &str, group_text: &str) -> String {
    format!(
        r#"
[load_balancer]
{lb_extra}
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "web" }}

{group_text}
"#
    )
}

// ---------------------------------------------------------------------------------------------

/// A slow target among fast ones: round robin gives it its third of the picks whatever its
/// speed; least outstanding requests sees its requests pile up and sends it far fewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_outstanding_gives_a_slow_target_a_smaller_share_than_round_robin() {
    let (f1, f2, slow) = (
        target("fast1", 0).await,
        target("fast2", 0).await,
        target("slow", 150).await,
    );
    let mut shares = Vec::new();
    for alg in ["round_robin", "least_outstanding_requests"] {
        let port = free_port();
        let extra = format!("load_balancing.algorithm.type = \"{alg}\"");
        let lb = Lb::start(&config(port, "", &group("web", &[&f1, &f2, &slow], &extra)));
        let seen = load(port, 12, Duration::from_millis(2500), Duration::ZERO, "").await;
        assert!(seen.iter().all(|s| s.status == 200), "{alg}: all 200");
        let s = share(&seen, "slow");
        println!("{alg}: {} requests, slow target's share {s:.3}", seen.len());
        shares.push(s);
        lb.w.stop().await;
    }
    let (rr, lor) = (shares[0], shares[1]);
    assert!(
        (0.30..0.37).contains(&rr),
        "round robin: a third, got {rr:.3}"
    );
    assert!(
        lor < rr / 3.0,
        "least outstanding should starve the slow target: {lor:.3} vs round robin {rr:.3}"
    );
}

/// Clients stuck to a slow target (stickiness) pile up on it without a cap; with
/// `target_limits.max_requests = 2` it never has more than 2 in flight, a bounded queue waits
/// at most `queue_timeout_seconds`, the rest get 503 (`TargetQueueFull`/`TargetQueueTimeout`,
/// counted on the target and in the access log) and unstuck clients see only fast 200s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_slow_target_queues_then_refuses_and_the_others_are_unaffected() {
    let (fast1, fast2, slow) = (
        target("fast1", 0).await,
        target("fast2", 0).await,
        target("slow", 1500).await,
    );
    let token = lb_l7::sticky::token("web", &slow.addr.to_string());
    let cookie: &'static str = format!("AWSALB={token}").leak();
    let sticky = "stickiness.enabled = true\n";
    let dir = std::env::temp_dir().join(format!("weir-target-choice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("access.log");
    let mut results = Vec::new();
    for limits in [
        "",
        "target_limits.max_requests = 2\ntarget_limits.max_queued = 4\ntarget_limits.queue_timeout_seconds = 1\n",
    ] {
        slow.ctl.max_in_flight.store(0, SeqCst);
        let port = free_port();
        let text = group(
            "web",
            &[&fast1, &fast2, &slow],
            &format!("{sticky}{limits}"),
        );
        let lb = Lb::start_logged(
            &config(port, "access_logs.enabled = true", &text),
            Some(log.clone()),
        );
        // 10 stuck clients, one request each, at once; unstuck traffic at the same time.
        let stuck = tokio::spawn(once_each(port, 10, cookie));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let others = load(
            port,
            4,
            Duration::from_millis(1200),
            Duration::from_millis(5),
            "",
        )
        .await;
        let stuck = stuck.await.unwrap();
        let by_status = |s: &[Seen]| {
            let mut m: HashMap<u16, usize> = HashMap::new();
            s.iter().for_each(|x| *m.entry(x.status).or_default() += 1);
            let mut v: Vec<_> = m.into_iter().collect();
            v.sort();
            v
        };
        let max = slow.ctl.max_in_flight.load(SeqCst);
        let snap = lb.target("web", &slow);
        println!(
            "limits {:?}: slow target's max in flight {max}; stuck clients {:?}; others {:?} \
             ({} requests, slow's share {:.3}); queued {}, refused {}",
            limits.lines().next().unwrap_or("off"),
            by_status(&stuck),
            by_status(&others),
            others.len(),
            share(&others, "slow"),
            snap.queued_requests,
            snap.queue_rejected_requests
        );
        assert!(
            others.iter().all(|s| s.status == 200),
            "others: {:?}",
            by_status(&others)
        );
        results.push((
            max,
            by_status(&stuck),
            snap,
            others.len(),
            share(&others, "slow"),
        ));
        lb.w.stop().await;
    }
    let (max_off, stuck_off, _, served_off, _) = &results[0];
    assert!(
        *max_off >= 10,
        "no cap: every stuck request is on the slow target at once"
    );
    assert_eq!(stuck_off, &vec![(200, 10)]);
    let (max_on, stuck_on, snap, served_on, slow_share) = &results[1];
    assert!(*max_on <= 2, "cap 2, {max_on} in flight");
    // The full target is skipped: the others never wait behind it.
    assert_eq!(*slow_share, 0.0);
    assert!(
        served_on > &(5 * served_off),
        "{served_on} vs {served_off} requests served"
    );
    // 2 served, 4 waited 1 s in the queue and timed out (the slow target takes 1.5 s), 4 found
    // the queue full.
    assert_eq!(stuck_on, &vec![(200, 2), (503, 8)]);
    assert_eq!((snap.queued_requests, snap.queue_rejected_requests), (4, 8));
    let text = std::fs::read_to_string(&log).unwrap();
    let count = |r: &str| {
        text.lines()
            .filter(|l| l.contains(&format!("\"{r}\"")))
            .count()
    };
    assert_eq!(
        (count("TargetQueueTimeout"), count("TargetQueueFull")),
        (4, 4),
        "access log reasons"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The cap and queue hold for HTTP/2 clients too (curl, h2c): one slot, one place in the
/// queue; of six requests stuck to the slow target one is served, one times out in the queue,
/// four find it full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_holds_for_http2_clients() {
    let (fast, slow) = (target("fast", 0).await, target("slow", 1500).await);
    let token = lb_l7::sticky::token("web", &slow.addr.to_string());
    let cookie = format!("AWSALB={token}");
    let port = free_port();
    let extra = "stickiness.enabled = true
target_limits.max_requests = 1
                 target_limits.max_queued = 1
target_limits.queue_timeout_seconds = 1
";
    let lb = Lb::start(&config(port, "", &group("web", &[&fast, &slow], extra)));
    let url = format!("http://127.0.0.1:{port}/");
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (url, cookie) = (url.clone(), cookie.clone());
            tokio::spawn(
                async move { curl(&["--http2-prior-knowledge", "-b", &cookie, &url]).await },
            )
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        let (code, text) = t.await.unwrap();
        if code == 200 {
            assert!(text.contains("HTTP/2 200"), "{text}");
        }
        codes.push(code);
    }
    codes.sort();
    let snap = lb.target("web", &slow);
    println!(
        "h2c: statuses {codes:?}; slow target's max in flight {}, queued {}, refused {}",
        slow.ctl.max_in_flight.load(SeqCst),
        snap.queued_requests,
        snap.queue_rejected_requests
    );
    assert_eq!(codes, vec![200, 503, 503, 503, 503, 503]);
    assert_eq!(slow.ctl.max_in_flight.load(SeqCst), 1);
    assert_eq!((snap.queued_requests, snap.queue_rejected_requests), (1, 5));
    lb.w.stop().await;
}

/// Two of four targets start failing under load, one with 500s, one with resets. With
/// outlier detection both are ejected after their run of errors and the clients' error count
/// stops growing; without it, errors go on to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_failing_under_load_are_ejected_and_errors_stop() {
    let mut totals = Vec::new();
    for detection in [false, true] {
        let ts = [
            target("a", 0).await,
            target("b", 0).await,
            target("c", 0).await,
            target("d", 0).await,
        ];
        let port = free_port();
        let extra = format!(
            "outlier_detection.enabled = {detection}\noutlier_detection.consecutive_errors = 5\n\
             outlier_detection.max_ejection_percent = 50\n"
        );
        let lb = Lb::start(&config(
            port,
            "",
            &group("web", &ts.iter().collect::<Vec<_>>(), &extra),
        ));
        let load = tokio::spawn(load(
            port,
            4,
            Duration::from_secs(3),
            Duration::from_millis(2),
            "",
        ));
        tokio::time::sleep(Duration::from_millis(800)).await;
        ts[2].ctl.mode.store(FAIL_500, SeqCst);
        ts[3].ctl.mode.store(RESET, SeqCst);
        let seen = load.await.unwrap();
        let errors = |from: u64, to: u64| {
            seen.iter()
                .filter(|s| s.status != 200)
                .filter(|s| (from..to).contains(&(s.at.as_millis() as u64)))
                .count()
        };
        let curve: Vec<usize> = (0..12).map(|q| errors(q * 250, (q + 1) * 250)).collect();
        let total = errors(0, 3000);
        println!(
            "outlier detection {detection}: {} requests, client errors per 250 ms {curve:?}, total {total}",
            seen.len()
        );
        let snaps = [lb.target("web", &ts[2]), lb.target("web", &ts[3])];
        // The targets start failing 800 ms after the load (as the test's sleep measures it);
        // a request stamped a little before that can still meet the failing target.
        assert_eq!(errors(0, 700), 0, "nothing fails before the targets do");
        if detection {
            assert!(snaps.iter().all(|s| s.ejected), "both ejected: {snaps:?}");
            // Ejection follows each target's fifth error within a few requests; the last
            // second is checked, so a loaded machine's slower clients still have time to
            // make those five (seen: errors until 1.75 s with 1,381 requests in all).
            assert_eq!(errors(2000, 3000), 0, "errors stopped growing: {curve:?}");
            // Each target's run of 5 errors (a reset request is tried twice), as the 4 clients
            // saw them.
            // (plus what was in flight when each was ejected).
            assert!(total <= 16, "{total} client errors");
        } else {
            assert!(snaps.iter().all(|s| !s.ejected));
            assert!(
                errors(2000, 3000) > 20,
                "without ejection errors go on: {curve:?}"
            );
        }
        totals.push(total);
        lb.w.stop().await;
    }
    println!("client errors without / with outlier detection: {totals:?}");
}

/// An active check passing ends an ejection early (`HealthChecksPassed` on the control channel,
/// as the health checker sends it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_active_check_brings_an_ejected_target_back() {
    let (a, b) = (target("a", 0).await, target("b", 0).await);
    let port = free_port();
    let extra = "outlier_detection.enabled = true\noutlier_detection.consecutive_errors = 3\n";
    let mut lb = Lb::start(&config(port, "", &group("web", &[&a, &b], extra)));
    b.ctl.mode.store(FAIL_500, SeqCst);
    let seen = load(port, 1, Duration::from_millis(300), Duration::ZERO, "").await;
    assert_eq!(seen.iter().filter(|s| s.status == 500).count(), 3);
    assert!(lb.target("web", &b).ejected);
    b.ctl.mode.store(OK, SeqCst);
    let m = ControlMsg::HealthChecksPassed(vec![CheckedTarget {
        group: "web".into(),
        target: b.addr,
    }]);
    lb.control.write_all(&control::encode(&m)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while lb.target("web", &b).ejected {
        assert!(Instant::now() < deadline, "still ejected");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen = load(port, 1, Duration::from_millis(200), Duration::ZERO, "").await;
    println!("after the check: b's share {:.3}", share(&seen, "b"));
    assert!((0.4..0.6).contains(&share(&seen, "b")));
    lb.w.stop().await;
}

/// A target set healthy mid-test (after being unhealthy) ramps: its share, over the 30 s slow
/// start (ALB's shortest), rises linearly from 10 % of its full share to all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_target_that_becomes_healthy() {
    let ts = [
        target("a", 0).await,
        target("b", 0).await,
        target("new", 0).await,
    ];
    let port = free_port();
    let extra = "slow_start.duration_seconds = 30";
    let mut lb = Lb::start(&config(
        port,
        "",
        &group("web", &ts.iter().collect::<Vec<_>>(), extra),
    ));
    lb.set_state("web", ts[2].addr, "unhealthy").await;
    let before = load(
        port,
        2,
        Duration::from_millis(300),
        Duration::from_millis(2),
        "",
    )
    .await;
    assert_eq!(share(&before, "new"), 0.0);
    lb.set_state("web", ts[2].addr, "healthy").await;
    let seen = load(
        port,
        4,
        Duration::from_secs(33),
        Duration::from_millis(8),
        "",
    )
    .await;
    assert!(seen.iter().all(|s| s.status == 200));
    // Share of the new target in 3 s windows, relative to its full share (1/3).
    let windows: Vec<(f64, f64)> = (0..11)
        .map(|w| {
            let inside: Vec<Seen> = seen
                .iter()
                .filter(|s| s.at.as_secs() / 3 == w)
                .cloned()
                .collect();
            (w as f64 * 3.0 + 1.5, 3.0 * share(&inside, "new"))
        })
        .collect();
    println!(
        "slow start: {} requests; (second, share of full):",
        seen.len()
    );
    for (t, s) in &windows {
        println!("  {t:5.1}s {s:.3} {}", "#".repeat((s * 50.0) as usize));
    }
    // Linear: Envoy's max(10 %, t / 30 s); each window's mean checked within 0.1.
    for &(t, s) in &windows[..10] {
        let want = (t / 30.0).max(0.1);
        assert!((s - want).abs() < 0.12, "at {t} s: {s:.3}, want {want:.3}");
    }
    let (t, last) = windows[10];
    assert!(
        (last - 1.0).abs() < 0.12,
        "after the ramp ({t} s): {last:.3}"
    );
    lb.w.stop().await;
}

/// Cross-zone off: traffic stays in weir's zone while it has a healthy target, goes to the
/// other zone when it has none, and comes back; with cross-zone on (the default) it spreads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_zone_off_keeps_traffic_in_the_local_zone_while_it_has_a_healthy_target() {
    let ts = [
        target("a1", 0).await,
        target("b1", 0).await,
        target("b2", 0).await,
    ];
    let zones = ["eu-west-1a", "eu-west-1b", "eu-west-1b"];
    let list: Vec<String> = ts
        .iter()
        .zip(zones)
        .map(|(t, z)| {
            format!(
                "{{ id = \"127.0.0.1\", port = {}, availability_zone = \"{z}\" }}",
                t.addr.port()
            )
        })
        .collect();
    for cross_zone in ["false", "true"] {
        let port = free_port();
        let text = format!(
            "[[target_group]]\nname = \"web\"\nload_balancing.cross_zone.enabled = {cross_zone}\n\
             target = [{}]\n",
            list.join(", ")
        );
        let mut lb = Lb::start(&config(port, "availability_zone = \"eu-west-1a\"", &text));
        let run = Duration::from_millis(300);
        let pause = Duration::from_millis(2);
        let local = load(port, 2, run, pause, "").await;
        lb.set_state("web", ts[0].addr, "unhealthy").await;
        let away = load(port, 2, run, pause, "").await;
        lb.set_state("web", ts[0].addr, "healthy").await;
        let back = load(port, 2, run, pause, "").await;
        let s = |seen: &[Seen]| [share(seen, "a1"), share(seen, "b1"), share(seen, "b2")];
        println!(
            "cross_zone {cross_zone}: a1/b1/b2 shares: local healthy {:.2?}, local unhealthy {:.2?}, back {:.2?}",
            s(&local),
            s(&away),
            s(&back)
        );
        for seen in [&local, &away, &back] {
            assert!(seen.iter().all(|x| x.status == 200));
        }
        assert_eq!(share(&away, "a1"), 0.0);
        assert!(share(&away, "b1") > 0.4 && share(&away, "b2") > 0.4);
        if cross_zone == "false" {
            assert_eq!(share(&local, "a1"), 1.0);
            assert_eq!(share(&back, "a1"), 1.0);
        } else {
            assert!((0.25..0.42).contains(&share(&local, "a1")));
        }
        lb.w.stop().await;
    }
}

/// The configuration errors of these keys.
#[test]
fn config_errors() {
    let bad = [
        (
            "load_balancing.cross_zone.enabled = false",
            "",
            "load_balancing.cross_zone.enabled",
        ),
        (
            "slow_start.duration_seconds = 10",
            "",
            "slow_start.duration_seconds",
        ),
        (
            "outlier_detection.max_ejection_percent = 101",
            "",
            "outlier_detection.max_ejection_percent",
        ),
        (
            "outlier_detection.base_ejection_time_seconds = 60\noutlier_detection.max_ejection_time_seconds = 30",
            "",
            "outlier_detection.max_ejection_time_seconds",
        ),
        (
            "target_limits.max_requests = 100001",
            "",
            "target_limits.max_requests",
        ),
    ];
    for (tg, lb, path) in bad {
        let cfg = one_target_config(8080, 9000, lb, "", tg);
        let c = lb_l7::L7Config::from_toml_str(&cfg).expect("parses");
        let errors = c.validate();
        assert!(
            errors
                .iter()
                .any(|e| e.path == format!("target_group[0].{path}")),
            "{tg}: {errors:?}"
        );
    }
    let ok = one_target_config(
        8080,
        9000,
        "availability_zone = \"a\"",
        "",
        "load_balancing.cross_zone.enabled = \"false\"\nslow_start.duration_seconds = 30",
    );
    let c = lb_l7::L7Config::from_toml_str(&ok).expect("parses");
    assert_eq!(c.validate(), vec![]);
    let wrong = one_target_config(
        8080,
        9000,
        "",
        "",
        "load_balancing.cross_zone.enabled = \"maybe\"",
    );
    let e = lb_l7::L7Config::from_toml_str(&wrong)
        .unwrap_err()
        .to_string();
    assert!(e.contains("use_load_balancer_configuration"), "{e}");
}

/// A target registered into a running group (a reload, a registration or discovery adds it)
/// starts in slow start when it passes its first checks: ALB's rule (only targets registered
/// together into a new group start at their full share). While it ramps, another change to
/// the group (a third target) leaves its ramp going and the settled target's state as it was;
/// before, every change to a group rebuilt it as new: the added target never ramped, and a
/// ramp in progress ended at the next registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_added_to_a_running_group_ramps_and_a_later_change_keeps_the_ramp() {
    let ts = [
        target("a", 0).await,
        target("b", 0).await,
        target("c", 0).await,
    ];
    let port = free_port();
    let text = |n: usize| {
        let list: Vec<&Target> = ts[..n].iter().collect();
        config(
            port,
            "",
            &group("web", &list, "slow_start.duration_seconds = 30"),
        )
    };
    let (Control(ours), opts) = Control::new(WorkerOptions {
        health_from_control_plane: true,
        ..WorkerOptions::default()
    });
    let mut lb = Lb {
        w: start_with(&text(1), opts),
        control: ours,
    };
    lb.set_state("web", ts[0].addr, "healthy").await;
    let reload = |lb: &mut Lb, generation: u64, toml: String| {
        let g = control::ConfigGeneration {
            generation,
            source: "web.toml".into(),
            toml,
            files: Default::default(),
            target_sets: Default::default(),
        };
        lb.control
            .write_all(&control::encode(&ControlMsg::Config(g)))
            .unwrap();
    };
    let added = |lb: &Lb, t: &Target| {
        let key = format!("web/{}", t.addr);
        lb.w.metrics.snapshot().targets.contains_key(&key)
    };

    reload(&mut lb, 2, text(2));
    wait_for(Duration::from_secs(5), "b added", || added(&lb, &ts[1])).await;
    assert_eq!(lb.target("web", &ts[1]).state, "initial");
    assert_eq!(
        lb.target("web", &ts[0]).state,
        "healthy",
        "a kept its state"
    );
    lb.set_state("web", ts[1].addr, "healthy").await;
    let ramp = lb.target("web", &ts[1]).slow_start_permille;
    assert!(
        ramp.is_some_and(|p| p < 200),
        "b passed its first check: slow start from 10 % ({ramp:?})"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    reload(&mut lb, 3, text(3));
    wait_for(Duration::from_secs(5), "c added", || added(&lb, &ts[2])).await;
    let later = lb.target("web", &ts[1]).slow_start_permille;
    assert!(
        later.is_some_and(|p| p >= ramp.unwrap() && p < 300),
        "b's ramp goes on through c's registration ({ramp:?} then {later:?})"
    );
    assert_eq!(lb.target("web", &ts[1]).state, "healthy");
    assert_eq!(lb.target("web", &ts[0]).slow_start_permille, None);
    lb.w.stop().await;
}
