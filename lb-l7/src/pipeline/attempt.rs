//! Phase forward's target side, shared by both engines: the retry rules (`Attempts`: which
//! target next, a pooled or new connection, the one retry), a connection to a target, and a
//! target's response head read within the idle timeout. A new connection is made only within
//! the worker's cap on target connections (`crate::target_conns`): at the cap an idle pooled
//! one is closed for it, and when none is idle the request is refused (503,
//! [`AT_CONNECTION_LIMIT`]; an HTTP/2 stream the engine can refuse gets REFUSED_STREAM).

use super::Shared;
use super::codec::{self, ResponseHead};
use super::prepare::Outstanding;
use super::relay;
use crate::access_log::Record;
use crate::expiry::Expiry;
use crate::idle::{CoarseClock, IdleDeadlines};
use crate::pool::keepalive::{Advertised, Seen};
use crate::target::{GroupRt, TargetRt};
use crate::target_conns::{Held, Need};
use crate::upstream::{self, UpStream};
use bytes::BytesMut;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
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
    /// What a new connection would be for (`crate::target_conns`).
    need: Need,
    /// An attempt was handed out: the request may have gone to a target.
    handed_out: bool,
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
    let advertised = Advertised::parse(resp.values_of(codec::FieldKind::KeepAlive));
    t.pool.note_response(advertised);
    if let Some((idle, _)) = pooled {
        t.pool.observe(Seen::AliveOnReuse(idle), sh.clock.now());
    }
    advertised.allows_reuse()
}

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

    /// Attempts whose new connections are for `need` (an HTTP/2 stream while others of its
    /// connection are in flight: `Need::FanOut`).
    pub fn for_need(mut self, need: Need) -> Attempts {
        self.need = need;
        self
    }

    /// The request was refused at the worker's target connection limit before any of it went
    /// to a target: a client may send it again (HTTP/2's REFUSED_STREAM, RFC 9113 §8.7).
    pub fn refused_unsent(&self) -> bool {
        !self.handed_out
            && self
                .last_failure
                .is_some_and(|(_, r)| r == AT_CONNECTION_LIMIT)
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
                l.attempt(t.addr);
            }
            // A capped target (`target_limits`): its slot, waiting in its queue if need be.
            let slot = match t.admit().await {
                Ok(slot) => slot,
                Err(reason) => {
                    self.last_failure = Some((503, reason));
                    return None;
                }
            };
            // Outstanding from here, the connection attempt included: a draining target is
            // not done while a request is connecting to it (`TargetRt::busy`).
            let outstanding = Outstanding::new(t, slot);
            let fresh = fresh || std::mem::take(&mut self.fresh_only);
            match target_connection(sh, t, fresh, first, self.strict, self.need).await {
                Ok((up, idle)) => {
                    self.handed_out = true;
                    t.counters.requests.fetch_add(1, Relaxed);
                    return Some(Attempt {
                        ti,
                        t,
                        up,
                        reused: idle.is_some(),
                        pooled: idle.map(|idle| (idle, sh.clock.now())),
                        outstanding,
                        // Always: TargetResponseTime (`crate::metrics`), and the access log.
                        sent_at: Some(Instant::now()),
                    });
                }
                Err(failure) => {
                    self.last_failure = Some(failure);
                    if failure.1 == AT_CONNECTION_LIMIT {
                        // The worker's limit, not the target's: another target would be the same.
                        return None;
                    }
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

/// weir's `error_reason` for a request refused because the worker holds as many target
/// connections as its descriptor budget allows (`crate::target_conns`), none of them idle.
pub const AT_CONNECTION_LIMIT: &str = "TargetConnectionLimit";

/// A connection to target `t` (both engines): an idle one from its pool unless `fresh` or the
/// pool's policy says no (`first`: a client session's first request; `strict`: a request that
/// cannot be retried takes only a connection well within what the target keeps), else a new
/// one within the worker's cap for `need` ([`room`]). Returns how long it was idle when reused;
/// counts reuses, opens and connect errors.
pub(crate) async fn target_connection(
    sh: &Shared,
    t: &TargetRt,
    fresh: bool,
    first: bool,
    strict: bool,
    need: Need,
) -> Result<(UpStream, Option<Duration>), (u16, &'static str)> {
    let m = &sh.metrics;
    if !fresh && let Some((s, idle)) = t.pool.checkout(first, strict, sh.clock.now()) {
        m.upstream_connections_reused.fetch_add(1, Relaxed);
        return Ok((s, Some(idle)));
    }
    let Some(held) = room(sh, need) else {
        return Err((503, AT_CONNECTION_LIMIT));
    };
    // Boxed: the connect future (a TLS handshake's included) is ~1.4 KB, and every request's
    // future would carry that room while only a new connection needs it.
    match Box::pin(connect(t, sh.limits.connect_timeout, held)).await {
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

/// A place for a new target connection within the worker's cap for `need`: at the limit, an
/// idle pooled connection (of the target with the most) is closed for it first. `None`, counted
/// and warned about: none was idle.
fn room(sh: &Shared, need: Need) -> Option<Held> {
    let conns = &sh.target_conns;
    if let Some(h) = conns.hold(need) {
        return Some(h);
    }
    if close_idle(sh)
        && let Some(h) = conns.hold(need)
    {
        return Some(h);
    }
    let refused = sh
        .metrics
        .target_conns_refused_at_limit
        .fetch_add(1, Relaxed)
        + 1;
    crate::warn_limited!(
        open = conns.open(),
        cap = conns.cap(),
        ?need,
        total_refused = refused,
        "target connection limit reached, none idle: request refused"
    );
    None
}

/// Closes one idle pooled connection of this generation's targets, from the pool that holds
/// the most; whether there was one.
fn close_idle(sh: &Shared) -> bool {
    sh.groups
        .values()
        .flat_map(|g| g.targets.iter())
        .map(|t| (t.pool.idle_count(), t))
        .filter(|(n, _)| *n > 0)
        .max_by_key(|(n, _)| *n)
        .is_some_and(|(_, t)| t.pool.close_oldest())
}

async fn connect(
    t: &TargetRt,
    timeout: Duration,
    held: Held,
) -> Result<UpStream, (u16, &'static str)> {
    let tls = t.tls.as_ref().map(|c| &c.0);
    match tokio::time::timeout(timeout, upstream::connect(t.addr, tls, held)).await {
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
    /// The target's deregistration deadline passed first (`crate::expiry`): 502, the
    /// connection dropped.
    Expired,
}

pub(crate) enum HeadFailure {
    Timeout,
    /// The target closed (or reset); `true` when some response bytes had arrived.
    Closed(bool),
    Malformed(&'static str),
}

/// Reads a target's response head, waiting at most `idle` between reads (on the worker's
/// coarse deadline table `timers`, not a tokio timer: one per request adds up); `None` when
/// the target's deregistration deadline (`expiry`) passed first.
pub(crate) async fn read_response_head(
    up: &mut UpStream,
    buf: &mut BytesMut,
    idle: Duration,
    timers: &IdleDeadlines,
    clock: &CoarseClock,
    expiry: &Expiry,
) -> Option<Result<ResponseHead, HeadFailure>> {
    match read_head_watching(up, buf, idle, timers, clock, expiry, None).await {
        Waited::Head(r) => Some(r),
        Waited::ClientGone => Some(Err(HeadFailure::Closed(false))),
        Waited::Expired => None,
    }
}

/// Watches `client` for its close (its FIN or a reset) while weir waits: ready only then, and
/// without a syscall (the reactor's readiness, with EPOLLRDHUP). Readable bytes without a close
/// (a pipelined request, a TLS record) end the watch: it is never ready then. Polled on the
/// socket's readiness (`poll_read_ready`: the task's reader waker), not with a `ready()`
/// future, which links a waiter into the socket's list and out again for every wait.
struct Gone<'a>(Option<&'a TcpStream>);

impl Gone<'_> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(c) = self.0 else {
            return Poll::Pending;
        };
        match c.poll_read_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Ready(Ok(())) => {}
        }
        // Readable or closed: which one, from the readiness now set (`ready()` resolves at
        // once then).
        let mut ready = std::pin::pin!(c.ready(Interest::READABLE));
        match ready.as_mut().poll(cx) {
            Poll::Ready(Ok(r)) if !r.is_read_closed() => {
                self.0 = None;
                Poll::Pending
            }
            Poll::Ready(_) => Poll::Ready(()),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The response head as `read_response_head` reads it, and `client` watched meanwhile (see
/// `Gone`). A head already read wins over an expiry; a wait is given up at the expiry's
/// poke (`crate::expiry`), and any other poke of `timers` only re-arms the deadline.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn read_head_watching(
    up: &mut UpStream,
    buf: &mut BytesMut,
    idle: Duration,
    timers: &IdleDeadlines,
    clock: &CoarseClock,
    expiry: &Expiry,
    client: Option<&TcpStream>,
) -> Waited {
    let mut any = false;
    let mut gone = Gone(client);
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
        if expiry.is_expired() {
            return Waited::Expired;
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(relay::CHUNK);
        }
        let read = {
            let mut read = std::pin::pin!(up.read_buf(buf));
            let gone = &mut gone;
            let mut armed = None;
            std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = read.as_mut().poll(cx) {
                    return Poll::Ready(Wake::Read(r));
                }
                // Only now (the target did not answer at once) is the client watched and the
                // deadline armed: a read that completes at once costs neither.
                if gone.poll(cx).is_ready() {
                    return Poll::Ready(Wake::ClientGone);
                }
                let fired = timers.poll_lazy(&mut armed, || clock.now() + idle, None, cx);
                fired.map(|()| {
                    if armed.as_ref().is_some_and(crate::idle::Armed::poked) {
                        Wake::Poked
                    } else {
                        Wake::Timeout
                    }
                })
            })
            .await
        };
        match read {
            // Looks at the expiry, then waits again (a new deadline: the poke came early).
            Wake::Poked => continue,
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
    /// The deadline table was poked (a target expired somewhere).
    Poked,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A waiter on a target that expires wakes at the expiry's poke and gives up; a poke
    /// without an expiry (another target's) only re-arms, and the head that comes later is
    /// read.
    #[tokio::test]
    async fn a_wait_ends_at_the_expiry_poke_and_other_pokes_rearm() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let timers = Arc::new(IdleDeadlines::default());
        let clock = Arc::new(CoarseClock::default());
        let wait = |expiry: Arc<Expiry>| {
            let (timers, clock) = (timers.clone(), clock.clone());
            tokio::spawn(async move {
                let conns = Arc::new(crate::target_conns::TargetConns::default());
                let held = conns.hold(Need::First).unwrap();
                let mut up = upstream::connect(addr, None, held).await.unwrap();
                let mut buf = BytesMut::new();
                let idle = Duration::from_secs(30);
                read_head_watching(&mut up, &mut buf, idle, &timers, &clock, &expiry, None).await
            })
        };
        let (gone, kept) = (Arc::new(Expiry::default()), Arc::new(Expiry::default()));
        let expiring = wait(gone.clone());
        let (_a, _) = listener.accept().await.unwrap();
        let answered = wait(kept.clone());
        let (mut b, _) = listener.accept().await.unwrap();
        while timers.armed() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // `Draining::tick` at a deadline: the flag, then the poke.
        gone.expire();
        timers.poke_all();
        let r = tokio::time::timeout(Duration::from_secs(5), expiring).await;
        assert!(matches!(r, Ok(Ok(Waited::Expired))), "gave up at the poke");
        // The other waiter armed again and still waits.
        while timers.armed() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!answered.is_finished());
        b.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), answered).await;
        assert!(
            matches!(r, Ok(Ok(Waited::Head(Ok(ref h)))) if h.status == 204),
            "the head after the poke"
        );
    }
}
