//! Per-target pools of keep-alive HTTP/1.1 connections.
//!
//! The policy (`PoolPolicy`) is pure. The connections (`Pooled`) are `upstream::UpStream`s
//! (raw TCP, or TLS for HTTPS groups), used by both engines (weir's HTTP/1.1 engine and the
//! HTTP/2 path). One is never handed out once the target closed it: an idle stream is checked
//! for readability (a FIN, a reset or stray bytes; TLS session tickets are fine) without a
//! syscall unless the reactor saw it readable, and the 1 s sweep drops closed ones.

use crate::config::ReuseMode;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// When a pooled connection may be used. Pure.
#[derive(Debug, Clone)]
pub struct PoolPolicy {
    pub max_idle: usize,
    pub idle_timeout: Duration,
    pub reuse: ReuseMode,
}

impl PoolPolicy {
    /// May this request take an idle connection? (`safe`: not a client session's first request.)
    pub fn may_reuse(&self, first_request_of_session: bool) -> bool {
        match self.reuse {
            ReuseMode::Always => true,
            ReuseMode::Safe => !first_request_of_session,
            ReuseMode::Never => false,
        }
    }
    /// Is an idle connection still usable?
    pub fn usable(&self, idle_for: Duration, closed: bool) -> bool {
        !closed && idle_for < self.idle_timeout
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
}

impl Pooled for TcpStream {
    fn is_closed(&mut self) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if self.poll_read_ready(&mut cx).is_pending() {
            return false;
        }
        // Readable while idle: EOF, an error, or bytes nobody asked for. A stale readiness
        // (the last read filled its buffer exactly) reads WouldBlock and the stream is fine.
        let mut probe = [0u8; 1];
        !matches!(self.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// How long a connection has been idle (0 when `now` is a coarse clock's, behind `since`).
fn age(now: Instant, since: Instant) -> Duration {
    now.saturating_duration_since(since)
}

struct Idle<C> {
    conn: C,
    since: Instant,
}

/// One target's idle connections, newest last (taken LIFO: the most recently used connection is
/// the least likely to have been closed by the target's own keep-alive timeout).
pub struct Pool<C> {
    pub policy: PoolPolicy,
    idle: Mutex<Vec<Idle<C>>>,
}

impl<C: Pooled> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("policy", &self.policy)
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl<C: Pooled> Pool<C> {
    pub fn new(policy: PoolPolicy) -> Pool<C> {
        Pool {
            policy,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// An idle connection that is still open and young enough, if policy allows reuse. `now`
    /// may be a coarse clock's (ages are in seconds).
    pub fn checkout(&self, first_request_of_session: bool, now: Instant) -> Option<C> {
        if !self.policy.may_reuse(first_request_of_session) {
            return None;
        }
        let mut idle = self.idle.lock().ok()?;
        while let Some(mut c) = idle.pop() {
            if self.policy.usable(age(now, c.since), c.conn.is_closed()) {
                return Some(c.conn);
            }
        }
        None
    }

    /// Returns a connection whose last response was read to the end, idle since `now`.
    pub fn checkin(&self, mut conn: C, now: Instant) {
        if conn.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && self.policy.may_keep(idle.len())
        {
            idle.push(Idle { conn, since: now });
        }
    }

    /// Drops idle connections that were closed by the target or idled out.
    pub fn sweep(&self, now: Instant) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain_mut(|c| self.policy.usable(age(now, c.since), c.conn.is_closed()));
        }
    }

    /// Drops every idle connection (shutdown).
    pub fn clear(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(reuse: ReuseMode) -> PoolPolicy {
        PoolPolicy {
            max_idle: 2,
            idle_timeout: Duration::from_secs(5),
            reuse,
        }
    }

    #[test]
    fn reuse_modes() {
        assert!(!policy(ReuseMode::Safe).may_reuse(true));
        assert!(policy(ReuseMode::Safe).may_reuse(false));
        assert!(policy(ReuseMode::Always).may_reuse(true));
        assert!(!policy(ReuseMode::Never).may_reuse(false));
    }

    #[test]
    fn usable_and_bounded() {
        let p = policy(ReuseMode::Safe);
        assert!(p.usable(Duration::from_secs(1), false));
        assert!(!p.usable(Duration::from_secs(1), true));
        assert!(!p.usable(Duration::from_secs(5), false));
        assert!(p.may_keep(1));
        assert!(!p.may_keep(2));
        assert!(!policy(ReuseMode::Never).may_keep(0));
    }
}
