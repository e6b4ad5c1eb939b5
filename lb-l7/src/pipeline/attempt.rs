//! Phase forward's target side, shared by both engines: the retry rules (`Attempts`: which
//! target next, a pooled or new connection, the one retry), a connection to a target, and a
//! target's response head read within the idle timeout.

use super::Shared;
use super::codec::{self, Fields, ResponseHead};
use super::prepare::Outstanding;
use super::relay::{self, NowOrPending};
use crate::access_log::Record;
use crate::idle::{CoarseClock, IdleDeadlines};
use crate::pool::keepalive::{Advertised, Seen};
use crate::target::{GroupRt, TargetRt};
use crate::upstream::{self, UpStream};
use bytes::BytesMut;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::TcpStream;

/// The retry bookkeeping of one request's attempts, shared by both engines: which targets
/// failed to connect, whether the one retry was used, whether the next attempt must open a new
/// connection, and what to answer when no attempt is left.
#[derive(Default)]
pub(crate) struct Attempts {
    tried: Vec<usize>,
    /// Targets picked so far: bounded by the group's size plus the few retries allowed.
    picks: usize,
    retried: bool,
    fresh_only: bool,
    last_failure: Option<(u16, &'static str)>,
    /// The target stickiness names: used while it accepts connections.
    stuck: Option<usize>,
    /// The request cannot be retried: pooled connections only within the strict margin.
    strict: bool,
}

/// One attempt's target connection, counted on its target until dropped.
pub(crate) struct Attempt<'g> {
    /// The target's index in its group.
    pub ti: usize,
    pub t: &'g Arc<TargetRt>,
    pub up: UpStream,
    pub reused: bool,
    /// A reused connection: how long it was idle, and when it was taken (coarse clock).
    pub pooled: Option<(Duration, Instant)>,
    pub outstanding: Outstanding,
    /// When the request left (for the access log).
    pub sent_at: Option<Instant>,
}

/// A reused connection (`Attempt::pooled`) died before any response byte (the write failed,
/// EOF or reset): the target's keep-alive learner is told (both engines).
pub(crate) fn dead_on_reuse(sh: &Shared, t: &TargetRt, pooled: Option<(Duration, Instant)>) {
    if let Some((idle, taken)) = pooled {
        let now = sh.clock.now();
        let waited = now.saturating_duration_since(taken);
        t.pool.observe(Seen::DeadOnReuse { idle, waited }, now);
    }
}

/// A response head came from target `t` (both engines): its `Keep-Alive` header is noted and
/// a reused connection (`pooled`) is evidence for the learner. Returns whether the connection
/// may carry another request by `Keep-Alive: max`.
pub(crate) fn keepalive_answered(
    sh: &Shared,
    t: &TargetRt,
    pooled: Option<(Duration, Instant)>,
    resp: &ResponseHead,
) -> bool {
    let advertised = Advertised::parse(resp.values(&KEEP_ALIVE));
    t.pool.note_response(advertised);
    if let Some((idle, _)) = pooled {
        t.pool.observe(Seen::AliveOnReuse(idle), sh.clock.now());
    }
    advertised.allows_reuse()
}

static KEEP_ALIVE: http::HeaderName = http::HeaderName::from_static("keep-alive");

impl Attempts {
    /// Attempts whose first target is `stuck` (stickiness), when given.
    pub fn stuck_to(stuck: Option<usize>) -> Attempts {
        Attempts {
            stuck,
            ..Attempts::default()
        }
    }

    /// Attempts for a request that can (`replayable`) or cannot be sent again on another
    /// connection: the latter takes only pooled connections well within what the target keeps
    /// (`pool::keepalive`).
    pub fn replayable(mut self, replayable: bool) -> Attempts {
        self.strict = !replayable;
        self
    }

    /// Phase pick_target: the next target and a connection to it (skipping targets that
    /// refuse); `None` when the group is exhausted. `fresh`: do not take a pooled connection.
    pub async fn next<'g>(
        &mut self,
        sh: &Shared,
        g: &'g GroupRt,
        key: Option<u64>,
        fresh: bool,
        first: bool,
        log: Option<&mut Record>,
    ) -> Option<Attempt<'g>> {
        let mut log = log;
        while self.picks < g.targets.len() + 4 {
            self.picks += 1;
            // The sticky target until it refuses a connection (a retry on a new connection
            // stays with it).
            let ti = match self.stuck.filter(|i| !self.tried.contains(i)) {
                Some(i) => i,
                None => g.pick(key, &self.tried)?,
            };
            let t = &g.targets[ti];
            if let Some(l) = log.as_deref_mut() {
                l.target = Some(t.addr);
                l.target_list.push(t.addr);
            }
            // A capped target (`target_limits`): its slot, waiting in its queue if need be.
            let slot = match t.admit().await {
                Ok(slot) => slot,
                Err(reason) => {
                    self.last_failure = Some((503, reason));
                    return None;
                }
            };
            let fresh = fresh || std::mem::take(&mut self.fresh_only);
            match target_connection(sh, t, fresh, first, self.strict).await {
                Ok((up, idle)) => {
                    t.counters.requests.fetch_add(1, Relaxed);
                    return Some(Attempt {
                        ti,
                        t,
                        up,
                        reused: idle.is_some(),
                        pooled: idle.map(|idle| (idle, sh.clock.now())),
                        outstanding: Outstanding::new(t, slot),
                        // Always: TargetResponseTime (`crate::metrics`), and the access log.
                        sent_at: Some(Instant::now()),
                    });
                }
                Err(failure) => {
                    self.last_failure = Some(failure);
                    self.tried.push(ti);
                }
            }
        }
        None
    }

    /// A pooled connection failed while the head was written: send it again on a new one.
    pub fn requeue(&mut self, sh: &Shared) {
        sh.metrics.upstream_requeued.fetch_add(1, Relaxed);
        self.fresh_only = true;
    }

    /// A reused connection closed before any response byte: may the request go again (once,
    /// on a new connection)? Takes the retry if so.
    pub fn retry(&mut self, sh: &Shared, reused: bool, replayable: bool) -> bool {
        if !(reused && replayable && !self.retried) {
            return false;
        }
        sh.metrics.upstream_retries.fetch_add(1, Relaxed);
        self.retried = true;
        self.fresh_only = true;
        true
    }

    /// What the client gets when no attempt is left.
    pub fn give_up(&self) -> (u16, &'static str) {
        self.last_failure.unwrap_or((503, "NoHealthyTargets"))
    }
}

/// A connection to target `t` (both engines): an idle one from its pool unless `fresh` or the
/// pool's policy says no (`first`: a client session's first request; `strict`: a request that
/// cannot be retried takes only a connection well within what the target keeps), else a new
/// one. Returns how long it was idle when reused; counts reuses, opens and connect errors.
pub(crate) async fn target_connection(
    sh: &Shared,
    t: &TargetRt,
    fresh: bool,
    first: bool,
    strict: bool,
) -> Result<(UpStream, Option<Duration>), (u16, &'static str)> {
    let m = &sh.metrics;
    if !fresh && let Some((s, idle)) = t.pool.checkout(first, strict, sh.clock.now()) {
        m.upstream_connections_reused.fetch_add(1, Relaxed);
        return Ok((s, Some(idle)));
    }
    match connect(t, sh.limits.connect_timeout).await {
        Ok(s) => {
            m.upstream_connections_opened.fetch_add(1, Relaxed);
            Ok((s, None))
        }
        Err(failure) => {
            m.target_connection_errors.fetch_add(1, Relaxed);
            t.counters.connection_errors.fetch_add(1, Relaxed);
            t.count_error();
            Err(failure)
        }
    }
}

async fn connect(t: &TargetRt, timeout: Duration) -> Result<UpStream, (u16, &'static str)> {
    let tls = t.tls.as_ref().map(|c| &c.0);
    match tokio::time::timeout(timeout, upstream::connect(t.addr, tls)).await {
        Err(_) => {
            crate::warn_limited!(target_addr = %t.addr, "target connect timed out");
            Err((504, "TargetConnectTimeout"))
        }
        Ok(Err(e)) => {
            crate::warn_limited!(target_addr = %t.addr, error = %e, "target connection failed");
            // ALB: a failed TLS handshake with the target is a 502 as well.
            Err((502, "TargetConnectionError"))
        }
        Ok(Ok(s)) => Ok(s),
    }
}

/// weir's `error_reason` for a `101 Switching Protocols` weir did not ask for (a request it
/// did not forward as an upgrade, or another protocol than offered): the client gets 502
/// (both engines).
pub const UNREQUESTED_UPGRADE: &str = "TargetUnrequestedUpgrade";

/// ALB's status and weir's `error_reason` for a client that closed its connection while weir
/// waited for the target's response (both engines log and count it the same way).
pub const CLIENT_CLOSED: (u16, &str) = (460, "ClientClosedBeforeResponse");

/// What waiting for a response head ended with.
pub(crate) enum Waited {
    Head(Result<ResponseHead, HeadFailure>),
    /// The watched client closed (FIN or reset) first.
    ClientGone,
}

pub(crate) enum HeadFailure {
    Timeout,
    /// The target closed (or reset); `true` when some response bytes had arrived.
    Closed(bool),
    Malformed(&'static str),
}

/// Reads a target's response head, waiting at most `idle` between reads (on the worker's
/// coarse deadline table `timers`, not a tokio timer: one per request adds up).
pub(crate) async fn read_response_head(
    up: &mut UpStream,
    buf: &mut BytesMut,
    idle: Duration,
    timers: &IdleDeadlines,
    clock: &CoarseClock,
) -> Result<ResponseHead, HeadFailure> {
    match read_head_watching(up, buf, idle, timers, clock, None).await {
        Waited::Head(r) => r,
        Waited::ClientGone => Err(HeadFailure::Closed(false)),
    }
}

/// Resolves when `client` has closed (its FIN or a reset arrived): only while waiting, and
/// without a syscall (the reactor's readiness, with EPOLLRDHUP). Readable bytes without a
/// close (a pipelined request, a TLS record) end the watch: it never resolves then.
async fn closed(client: Option<&TcpStream>) {
    match client {
        Some(c) => match c.ready(Interest::READABLE).await {
            Ok(r) if !r.is_read_closed() => std::future::pending().await,
            _ => {}
        },
        None => std::future::pending().await,
    }
}

pub(crate) async fn read_head_watching(
    up: &mut UpStream,
    buf: &mut BytesMut,
    idle: Duration,
    timers: &IdleDeadlines,
    clock: &CoarseClock,
    client: Option<&TcpStream>,
) -> Waited {
    let mut any = false;
    let mut gone = std::pin::pin!(closed(client));
    loop {
        if !buf.is_empty() {
            any = true;
            match codec::parse_response(buf) {
                Ok(Some(r)) if (100..200).contains(&r.status) && r.status != 101 => continue,
                Ok(Some(r)) => return Waited::Head(Ok(r)),
                Ok(None) => {}
                Err(why) => return Waited::Head(Err(HeadFailure::Malformed(why))),
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(relay::CHUNK);
        }
        let read = match up.read_buf(buf).now_or_pending().await {
            Some(r) => Wake::Read(r),
            None => {
                // Only now (the target did not answer at once) is the client watched.
                let armed = timers.arm(clock.now() + idle);
                let mut read = std::pin::pin!(up.read_buf(buf));
                let mut gone = gone.as_mut();
                std::future::poll_fn(|cx| {
                    if let Poll::Ready(r) = read.as_mut().poll(cx) {
                        return Poll::Ready(Wake::Read(r));
                    }
                    if gone.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::ClientGone);
                    }
                    armed.poll_fired(cx).map(|()| Wake::Timeout)
                })
                .await
            }
        };
        match read {
            Wake::Timeout => return Waited::Head(Err(HeadFailure::Timeout)),
            Wake::ClientGone => return Waited::ClientGone,
            Wake::Read(Ok(0) | Err(_)) => return Waited::Head(Err(HeadFailure::Closed(any))),
            Wake::Read(Ok(_)) => {}
        }
    }
}

/// What ended one wait for the target's bytes.
enum Wake {
    Read(std::io::Result<usize>),
    ClientGone,
    Timeout,
}
