//! Per-target pools of keep-alive HTTP/1.1 connections.
//!
//! The policy (`PoolPolicy`) is pure, and so is keep-alive learning (`keepalive`). The
//! connections (`Pooled`) are `upstream::UpStream`s (raw TCP, or TLS for HTTPS groups), used
//! by both engines (weir's HTTP/1.1 engine and the HTTP/2 path). One is never handed out once
//! the target closed it: an idle stream is checked for readability (a FIN, a reset or stray
//! bytes; TLS session tickets are fine) without a syscall unless the reactor saw it readable,
//! and the 1 s sweep drops closed ones. Nor is one handed out once it is older than its target
//! keeps connections (advertised or learned, `keepalive`), with a stricter margin for a request
//! that could not be retried; every close the pool or the engines see teaches the learner.
//!
//! Idle ages come from the worker's coarse clock (`idle::CoarseClock`, no clock read per
//! request) while nothing is known of the target's keep-alive: they only decide the pool's own
//! idle timeout, in seconds. Once a limit is known (learned or advertised), ages decide at the
//! scale of the coarse clock's error (margins of 25 % and 50 % of a one-second limit, and the
//! probes that let a learned limit grow): the coarse clock is up to a tick (100 ms) late, and
//! more on a loaded worker whose ticker runs late, so one pooled at the tick's end and taken
//! just after the next looked older than it was. A "successful reuse" at an age the target had
//! never kept then counted as a probe, the limit grew past the target's, and requests weir
//! cannot retry went out on connections the target was about to reset (502). So a connection
//! pooled while its target's limit is known is stamped with the exact clock and its age read
//! with it (`Idle::exact`): an age is then never more than the target's own idea of it (weir
//! pools a connection after the target's last write and takes it before the next request
//! arrives), and the learner's evidence holds.

#[cfg(test)]
mod closed_tests;
pub mod keepalive;

use crate::config::ReuseMode;
use crate::metrics::KeepAliveSnapshot;
use keepalive::{Advertised, Learner, Seen, retire_after};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// When a pooled connection may be used. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPolicy {
    pub max_idle: usize,
    pub idle_timeout: Duration,
    pub reuse: ReuseMode,
}

impl PoolPolicy {
    /// May this request take an idle connection? `safe`: not when it is a client session's
    /// first request that weir could not send again (`strict`: not idempotent, or with a body).
    ///
    /// HAProxy's `http-reuse safe` gives every first request a new connection because the
    /// client retries a failed later request by itself but not a failed first one: the race
    /// where the target closes an idle connection as the request goes out must not reach a
    /// first request. weir does not leave that race to the client: a replayable request that
    /// meets a reused connection dead before any response byte goes again on a new connection
    /// (`pipeline::attempt::Attempts::retry`, `requeue`), so the client sees nothing of it,
    /// first request or not. Only a first request weir cannot replay keeps a new connection.
    /// (Without this, every short client connection — one TLS handshake, one request — also
    /// cost a target connect and close: ~7 syscalls.)
    pub fn may_reuse(&self, first_request_of_session: bool, strict: bool) -> bool {
        match self.reuse {
            ReuseMode::Always => true,
            ReuseMode::Safe => !(first_request_of_session && strict),
            ReuseMode::Never => false,
        }
    }
    /// May a connection go back to a pool that holds `idle` connections?
    pub fn may_keep(&self, idle: usize) -> bool {
        self.reuse != ReuseMode::Never && idle < self.max_idle
    }
}

/// A connection a pool can keep.
pub trait Pooled: Send {
    /// Has the target closed it (or sent something unasked)? Then it is never reused.
    fn is_closed(&mut self) -> bool;
    /// The target's address (for the pool's log lines).
    fn peer(&self) -> Option<SocketAddr> {
        None
    }
}

impl Pooled for TcpStream {
    /// Readable while idle: EOF, an error, or bytes nobody asked for. A stale readiness (the
    /// last read filled its buffer exactly) reads WouldBlock and the stream is fine. `try_read`
    /// looks at the reactor's readiness first and makes no syscall unless it is set, as the
    /// `poll_read_ready` this did before it did; without that poll (a waiter lock, a waker
    /// stored, the task's budget) a check costs ~100 fewer instructions, twice per request
    /// (checkin and checkout; callgrind, `h2load --h1`).
    fn is_closed(&mut self) -> bool {
        let mut probe = [0u8; 1];
        !matches!(self.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
    fn peer(&self) -> Option<SocketAddr> {
        self.peer_addr().ok()
    }
}

/// Whether the reactor saw `s` readable (or closed) since a read last found nothing: what
/// `poll_read_ready` with no waiter says, read without polling (no syscall, no waker stored).
pub(crate) fn readable(s: &TcpStream) -> bool {
    s.try_io(tokio::io::Interest::READABLE, || Ok(())).is_ok()
}

/// How long a connection has been idle (0 when `now` is a coarse clock's, behind `since`).
fn age(now: Instant, since: Instant) -> Duration {
    now.saturating_duration_since(since)
}

struct Idle<C> {
    conn: C,
    since: Instant,
    /// `since` is the exact clock's (`Pool::clock`): the target's keep-alive limit was known
    /// when the connection was pooled. Otherwise the coarse clock's.
    exact: bool,
    /// The target's advertised `Keep-Alive: timeout` when the connection was pooled.
    advertised: Option<Duration>,
}

struct Inner<C> {
    /// Newest last.
    idle: Vec<Idle<C>>,
    learner: Learner,
}

/// `u64::MAX` in a millisecond mirror: none.
const NONE: u64 = u64::MAX;

fn to_ms(d: Option<Duration>) -> u64 {
    d.map_or(NONE, |d| d.as_millis().min(u128::from(NONE - 1)) as u64)
}

fn from_ms(v: u64) -> Option<Duration> {
    (v != NONE).then(|| Duration::from_millis(v))
}

/// One target's idle connections, newest last (taken LIFO: the most recently used connection is
/// the least likely to have been closed by the target's own keep-alive timeout).
pub struct Pool<C> {
    pub policy: PoolPolicy,
    inner: Mutex<Inner<C>>,
    /// Lock-free mirrors (milliseconds, `NONE`): the learned limit, the latest advertised
    /// timeout, and the reuse age from which a successful reuse probes the learned limit.
    learned_ms: AtomicU64,
    advertised_ms: AtomicU64,
    probe_ms: AtomicU64,
    closed_idle: AtomicU64,
    dead_on_reuse: AtomicU64,
    peer: OnceLock<SocketAddr>,
    /// The exact clock, read only for the ages of a target whose limit is known (module doc).
    clock: fn() -> Instant,
}

impl<C: Pooled> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("policy", &self.policy)
            .field("idle", &self.idle_count())
            .field("learned_ms", &self.learned_ms.load(Relaxed))
            .finish()
    }
}

/// What the pool knows of its target's keep-alive (for the metrics snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAliveView {
    pub learned: Option<Duration>,
    pub advertised: Option<Duration>,
    /// The idle age from which connections are retired, for requests weir may retry / not.
    pub retire_after: Duration,
    pub retire_after_strict: Duration,
    pub closed_idle: u64,
    pub dead_on_reuse: u64,
}

impl From<KeepAliveView> for KeepAliveSnapshot {
    fn from(v: KeepAliveView) -> KeepAliveSnapshot {
        let ms = |d: Duration| d.as_millis() as u64;
        KeepAliveSnapshot {
            learned_keepalive_ms: v.learned.map(ms),
            advertised_keepalive_ms: v.advertised.map(ms),
            keepalive_retire_ms: ms(v.retire_after),
            keepalive_retire_strict_ms: ms(v.retire_after_strict),
            keepalive_closed_idle: v.closed_idle,
            keepalive_dead_on_reuse: v.dead_on_reuse,
        }
    }
}

impl<C: Pooled> Pool<C> {
    pub fn new(policy: PoolPolicy) -> Pool<C> {
        Pool::with_clock(policy, Instant::now)
    }

    /// A pool reading `clock` for exact ages (tests give a fake one).
    fn with_clock(policy: PoolPolicy, clock: fn() -> Instant) -> Pool<C> {
        Pool {
            inner: Mutex::new(Inner {
                idle: Vec::new(),
                learner: Learner::new(policy.idle_timeout),
            }),
            policy,
            learned_ms: AtomicU64::new(NONE),
            advertised_ms: AtomicU64::new(NONE),
            probe_ms: AtomicU64::new(NONE),
            closed_idle: AtomicU64::new(0),
            dead_on_reuse: AtomicU64::new(0),
            peer: OnceLock::new(),
            clock,
        }
    }

    /// Is the target's keep-alive limit known (learned, or `advertised` with the last
    /// response)? Then ages are read from the exact clock.
    fn limit_known(&self, advertised: Option<Duration>) -> bool {
        advertised.is_some() || self.learned_ms.load(Relaxed) != NONE
    }

    pub fn idle_count(&self) -> usize {
        self.inner.lock().map(|v| v.idle.len()).unwrap_or(0)
    }

    /// The idle age from which a connection pooled under `advertised` is retired.
    fn max_age(
        &self,
        learned: Option<Duration>,
        advertised: Option<Duration>,
        strict: bool,
    ) -> Duration {
        [learned, advertised]
            .into_iter()
            .flatten()
            .map(|l| retire_after(l, strict))
            .fold(self.policy.idle_timeout, Duration::min)
    }

    /// An idle connection that is still open and young enough, with its idle age, if policy
    /// allows reuse. `strict`: the request cannot be retried, so only a connection within the
    /// stricter margin will do (older ones stay for other requests). `now` may be a coarse
    /// clock's (100 ms): it ages the connections pooled while the target's limit was unknown;
    /// the others are aged by the exact clock.
    pub fn checkout(
        &self,
        first_request_of_session: bool,
        strict: bool,
        now: Instant,
    ) -> Option<(C, Duration)> {
        if !self.policy.may_reuse(first_request_of_session, strict) {
            return None;
        }
        let mut inner = self.inner.lock().ok()?;
        let inner = &mut *inner;
        let mut learned = inner.learner.limit();
        let mut exact_now = None;
        while let Some(c) = inner.idle.last_mut() {
            if learned.is_some() && !c.exact {
                // Pooled before the limit was learned: its coarse age is no evidence for the
                // learner, nor precise enough for the margins. Closed rather than reused.
                inner.idle.pop();
                continue;
            }
            let now = if c.exact {
                *exact_now.get_or_insert_with(self.clock)
            } else {
                now
            };
            let idle = age(now, c.since);
            if idle >= self.max_age(learned, c.advertised, false) {
                inner.idle.pop(); // retired: older than its target keeps connections
                continue;
            }
            if c.conn.is_closed() {
                inner.idle.pop();
                self.learn(&mut inner.learner, Seen::ClosedIdle(idle), now);
                learned = inner.learner.limit();
                continue;
            }
            if strict && idle >= self.max_age(learned, c.advertised, true) {
                // The newest is too old for this request: so is every other one.
                return None;
            }
            return inner.idle.pop().map(|c| (c.conn, idle));
        }
        None
    }

    /// Returns a connection whose last response was read to the end, idle since `now` (a
    /// coarse clock's will do: the exact clock is read instead once the target's limit is known).
    pub fn checkin(&self, mut conn: C, now: Instant) {
        if conn.is_closed() {
            return;
        }
        if self.peer.get().is_none()
            && let Some(p) = conn.peer()
        {
            let _ = self.peer.set(p);
        }
        let advertised = from_ms(self.advertised_ms.load(Relaxed));
        let exact = self.limit_known(advertised);
        let since = if exact { (self.clock)() } else { now };
        if let Ok(mut inner) = self.inner.lock()
            && self.policy.may_keep(inner.idle.len())
        {
            inner.idle.push(Idle {
                conn,
                since,
                exact,
                advertised,
            });
        }
    }

    /// Drops idle connections that were closed by the target or idled out, and lets the
    /// learned limit grow when it was probed and quiet (`keepalive::Learner::tick`). `now`: the
    /// exact clock's (the worker's ticker reads it).
    pub fn sweep(&self, now: Instant) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let inner = &mut *inner;
        let learned = inner.learner.limit();
        // A target that restarts closes idle connections of every age at once, its idle
        // timeout only those older than it: of one sweep's closes, the oldest is the evidence.
        let mut closed: Option<Duration> = None;
        inner.idle.retain_mut(|c| {
            if learned.is_some() && !c.exact {
                return false; // pooled before the limit was learned (`checkout`)
            }
            let idle = age(now, c.since);
            if idle >= self.max_age(learned, c.advertised, false) {
                return false;
            }
            if c.conn.is_closed() {
                closed = closed.max(Some(idle));
                return false;
            }
            true
        });
        if let Some(idle) = closed {
            self.learn(&mut inner.learner, Seen::ClosedIdle(idle), now);
        }
        if let Some(change) = inner.learner.tick(now) {
            self.learned(&inner.learner, change);
        }
    }

    /// What an engine saw of a connection it took from this pool (`Seen::DeadOnReuse`,
    /// `Seen::AliveOnReuse`).
    pub fn observe(&self, seen: Seen, now: Instant) {
        if let Seen::AliveOnReuse(idle) = seen
            && from_ms(self.probe_ms.load(Relaxed)).is_none_or(|p| idle < p)
        {
            return; // no probe of the limit: no lock taken
        }
        if let Ok(mut inner) = self.inner.lock() {
            self.learn(&mut inner.learner, seen, now);
        }
    }

    /// The `Keep-Alive` header of a response from this target: its timeout applies to the
    /// connections pooled from now on.
    pub fn note_response(&self, advertised: Advertised) {
        let ms = to_ms(advertised.timeout);
        if self.advertised_ms.load(Relaxed) != ms {
            self.advertised_ms.store(ms, Relaxed);
        }
    }

    fn learn(&self, learner: &mut Learner, seen: Seen, now: Instant) {
        match seen {
            Seen::ClosedIdle(_) => self.closed_idle.fetch_add(1, Relaxed),
            Seen::DeadOnReuse { .. } => self.dead_on_reuse.fetch_add(1, Relaxed),
            Seen::AliveOnReuse(_) => 0,
        };
        if let Some(change) = learner.observe(seen, now) {
            self.learned(learner, change);
        }
        self.mirror(learner);
    }

    fn learned(&self, learner: &Learner, change: keepalive::Change) {
        self.mirror(learner);
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        let (addr, from, to) = (self.peer.get(), ms(change.from), ms(change.to));
        if change.grew {
            tracing::debug!(target_addr = ?addr, from_ms = ?from, to_ms = ?to, "learned keep-alive limit of a target grew (relearning)");
        } else {
            tracing::info!(target_addr = ?addr, from_ms = ?from, to_ms = ?to, "learned keep-alive limit of a target changed");
        }
    }

    fn mirror(&self, learner: &Learner) {
        self.learned_ms.store(to_ms(learner.limit()), Relaxed);
        self.probe_ms.store(to_ms(learner.probe_from()), Relaxed);
    }

    /// What the pool knows of its target's keep-alive, without taking the lock.
    pub fn keepalive(&self) -> KeepAliveView {
        let learned = from_ms(self.learned_ms.load(Relaxed));
        let advertised = from_ms(self.advertised_ms.load(Relaxed));
        KeepAliveView {
            learned,
            advertised,
            retire_after: self.max_age(learned, advertised, false),
            retire_after_strict: self.max_age(learned, advertised, true),
            closed_idle: self.closed_idle.load(Relaxed),
            dead_on_reuse: self.dead_on_reuse.load(Relaxed),
        }
    }

    /// Closes the connection idle the longest, if any (the worker's target connections are at
    /// their cap: `pipeline::attempt`); whether there was one.
    pub fn close_oldest(&self) -> bool {
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        if inner.idle.is_empty() {
            return false;
        }
        drop(inner.idle.remove(0));
        true
    }

    /// Drops every idle connection (shutdown).
    pub fn clear(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.idle.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    fn policy(reuse: ReuseMode) -> PoolPolicy {
        PoolPolicy {
            max_idle: 2,
            idle_timeout: Duration::from_secs(5),
            reuse,
        }
    }

    /// A connection whose target's close the test decides.
    struct Conn(Arc<AtomicBool>);
    impl Pooled for Conn {
        fn is_closed(&mut self) -> bool {
            self.0.load(Relaxed)
        }
    }
    fn conn() -> (Conn, Arc<AtomicBool>) {
        let closed = Arc::new(AtomicBool::new(false));
        (Conn(closed.clone()), closed)
    }
    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    std::thread_local! {
        /// The fake exact clock (`at`).
        static NOW: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    }
    fn fake_clock() -> Instant {
        NOW.with(|n| n.get())
            .expect("the test sets the exact clock")
    }
    /// Sets the exact clock to `t` and returns `t` (for the coarse clock, which then agrees).
    fn at(t: Instant) -> Instant {
        NOW.with(|n| n.set(Some(t)));
        t
    }
    fn pool(reuse: ReuseMode) -> Pool<Conn> {
        Pool::with_clock(policy(reuse), fake_clock)
    }

    #[test]
    fn reuse_modes() {
        // (first request of the session, strict = weir cannot replay it)
        let safe = policy(ReuseMode::Safe);
        assert!(
            safe.may_reuse(true, false),
            "a replayable first request reuses"
        );
        assert!(!safe.may_reuse(true, true), "a first POST gets a new one");
        assert!(safe.may_reuse(false, true));
        assert!(safe.may_reuse(false, false));
        assert!(policy(ReuseMode::Always).may_reuse(true, true));
        assert!(!policy(ReuseMode::Never).may_reuse(false, false));
    }

    #[test]
    fn bounded_and_idle_timeout() {
        let p = policy(ReuseMode::Safe);
        assert!(p.may_keep(1));
        assert!(!p.may_keep(2));
        assert!(!policy(ReuseMode::Never).may_keep(0));
        let pool = pool(ReuseMode::Always);
        let t0 = Instant::now();
        pool.checkin(conn().0, t0);
        pool.checkin(conn().0, t0);
        pool.checkin(conn().0, t0);
        assert_eq!(pool.idle_count(), 2);
        assert!(pool.checkout(false, false, t0 + ms(4900)).is_some());
        assert!(pool.checkout(false, false, t0 + ms(5000)).is_none());
        assert_eq!(pool.idle_count(), 0);
    }

    #[test]
    fn the_oldest_idle_connection_is_closed_for_room() {
        let pool = pool(ReuseMode::Always);
        let t0 = Instant::now();
        assert!(!pool.close_oldest(), "none idle");
        let (old, old_closed) = conn();
        let (new, new_closed) = conn();
        pool.checkin(old, t0);
        pool.checkin(new, t0 + ms(10));
        // A second handle on each connection's flag shows which one was dropped.
        let (old_flag, new_flag) = (Arc::downgrade(&old_closed), Arc::downgrade(&new_closed));
        drop((old_closed, new_closed));
        assert!(pool.close_oldest());
        assert_eq!(pool.idle_count(), 1);
        assert!(old_flag.upgrade().is_none(), "the oldest was dropped");
        assert!(new_flag.upgrade().is_some(), "the newest stays");
    }

    #[test]
    fn a_close_found_by_the_sweep_teaches_the_limit() {
        let pool = pool(ReuseMode::Always);
        let t0 = Instant::now();
        let (a, a_closed) = conn();
        pool.checkin(a, at(t0));
        let (b, b_closed) = conn();
        pool.checkin(b, at(t0 + ms(700)));
        // Both found closed in one sweep: the older one's age is the evidence.
        a_closed.store(true, Relaxed);
        b_closed.store(true, Relaxed);
        pool.sweep(at(t0 + ms(1200)));
        let v = pool.keepalive();
        assert_eq!((v.learned, v.closed_idle), (Some(ms(1200)), 1));
        assert_eq!((v.retire_after, v.retire_after_strict), (ms(900), ms(600)));
        // Connections are now retired at 900 ms (700 ms for requests that cannot be retried).
        let t1 = t0 + ms(2000);
        pool.checkin(conn().0, at(t1));
        assert!(pool.checkout(false, true, at(t1 + ms(650))).is_none());
        assert_eq!(
            pool.idle_count(),
            1,
            "kept for a request that may be retried"
        );
        assert!(pool.checkout(false, false, at(t1 + ms(850))).is_some());
        pool.checkin(conn().0, at(t1));
        assert!(pool.checkout(false, false, at(t1 + ms(950))).is_none());
        assert_eq!(pool.idle_count(), 0);
    }

    #[test]
    fn a_close_found_at_checkout_and_on_reuse_lower_the_limit() {
        let pool = pool(ReuseMode::Always);
        let t0 = Instant::now();
        let (a, closed) = conn();
        pool.checkin(a, t0);
        closed.store(true, Relaxed);
        assert!(pool.checkout(false, false, t0 + ms(3000)).is_none());
        assert_eq!(pool.keepalive().learned, Some(ms(3000)));
        let dead = Seen::DeadOnReuse {
            idle: ms(1100),
            waited: ms(3),
        };
        pool.observe(dead, t0);
        let v = pool.keepalive();
        assert_eq!((v.learned, v.dead_on_reuse), (Some(ms(1100)), 1));
    }

    #[test]
    fn an_advertised_timeout_holds_for_connections_pooled_under_it() {
        let pool = pool(ReuseMode::Always);
        let t0 = Instant::now();
        let two = Advertised {
            timeout: Some(Duration::from_secs(2)),
            max: None,
        };
        pool.note_response(two);
        pool.checkin(conn().0, at(t0));
        assert_eq!(pool.keepalive().retire_after, ms(1500));
        pool.note_response(Advertised::default());
        pool.checkin(conn().0, at(t0));
        // The newer connection was pooled without an advertised timeout: usable at 1.6 s.
        assert!(pool.checkout(false, false, at(t0 + ms(1600))).is_some());
        assert!(pool.checkout(false, false, at(t0 + ms(1600))).is_none());
        assert_eq!(pool.keepalive().learned, None, "retiring is no close");
    }

    #[test]
    fn with_a_known_limit_ages_are_the_exact_clocks() {
        let pool = pool(ReuseMode::Always);
        let t0 = Instant::now();
        // Pooled while nothing is known: coarse ages. One is found closed at 1 s, which is
        // learned; the other, pooled before, is closed rather than reused (its age is coarse).
        let (older, _) = conn();
        pool.checkin(older, at(t0));
        let (a, closed) = conn();
        pool.checkin(a, at(t0));
        closed.store(true, Relaxed);
        assert!(pool.checkout(false, false, at(t0 + ms(1000))).is_none());
        assert_eq!(pool.keepalive().learned, Some(ms(1000)));
        assert_eq!(pool.idle_count(), 0);
        // Retired at 750 ms; reuses from 675 ms probe the limit. A loaded worker's coarse
        // clock lags 100 ms as the connection is pooled and nothing as it is taken 640 ms
        // later: 740 ms by the coarse clock, a probe the target never answered. The exact age
        // is what counts.
        let t1 = t0 + ms(1000);
        at(t1);
        pool.checkin(conn().0, t1 - ms(100));
        let (_, idle) = pool.checkout(false, false, at(t1 + ms(640))).unwrap();
        assert_eq!(idle, ms(640));
        pool.observe(Seen::AliveOnReuse(idle), t1 + ms(640));
        pool.sweep(at(t1 + keepalive::RELEARN * 2));
        assert_eq!(
            pool.keepalive().learned,
            Some(ms(1000)),
            "no growth without a real probe"
        );
        // The other way round (pooled when the coarse clock was on time, taken when it lags
        // 100 ms): 740 ms exactly is within 750 ms, 640 ms by the coarse clock is past the
        // strict 500 ms either way.
        let t2 = t1 + keepalive::RELEARN * 2;
        pool.checkin(conn().0, at(t2));
        at(t2 + ms(740));
        assert!(pool.checkout(false, true, t2 + ms(640)).is_none());
        let (_, idle) = pool.checkout(false, false, t2 + ms(640)).unwrap();
        assert_eq!(idle, ms(740));
        // A real probe (an exact 700 ms) lets it grow.
        pool.checkin(conn().0, at(t2 + ms(800)));
        let (_, idle) = pool.checkout(false, false, at(t2 + ms(1500))).unwrap();
        pool.observe(Seen::AliveOnReuse(idle), t2 + ms(1500));
        pool.sweep(at(t2 + keepalive::RELEARN * 2));
        assert_eq!(pool.keepalive().learned, Some(ms(1250)));
    }
}
