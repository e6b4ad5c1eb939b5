//! HTTP/2 connections among the worker's idle connections: an HTTP/2 connection with no
//! stream in flight, after it served one, may be closed to make room at the worker's
//! connection limit, as an idle HTTP/1.1 keep-alive connection may (`accept::park::Lot::
//! make_room`). Its task does not wait in an [`super::IdleDeadlines`] slot (it waits on its
//! socket and its own deadlines), so it registers once for its life
//! ([`super::IdleDeadlines::register`]) and keeps an [`IdleMark`]: when its idle wait would
//! end, set when its last stream in flight ends and cleared when one starts (a relaxed
//! compare-and-swap at these turns only), read only when the worker is at its limit
//! ([`super::IdleDeadlines::reclaim`]).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// A registered connection, as the worker's idle list sees it.
pub trait Reclaimable: Send + Sync + std::fmt::Debug {
    /// Its idle mark.
    fn mark(&self) -> &IdleMark;
    /// Asks its task to close it (the mark says why: [`IdleMark::closing`]).
    fn close_idle(&self);
}

/// Busy, or never idle yet (it has served no request).
const BUSY: u64 = 0;
/// Asked to close by [`IdleMark::claim`].
const RECLAIMED: u64 = u64::MAX - 1;
/// Closing for another reason: not idle any more.
const CLOSING: u64 = u64::MAX;

/// What a mark's milliseconds count from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// When a connection's idle wait ends (milliseconds after [`EPOCH`], plus one), or
/// [`BUSY`], [`RECLAIMED`], [`CLOSING`].
#[derive(Debug, Default)]
pub struct IdleMark(AtomicU64);

impl IdleMark {
    /// The connection is idle (its last stream ended); its idle wait ends at `until`.
    pub fn idle(&self, until: Instant) {
        let ms = until.saturating_duration_since(*EPOCH).as_millis() as u64;
        let v = ms.saturating_add(1).min(RECLAIMED - 1);
        let c = self.0.load(Relaxed);
        if c < RECLAIMED {
            let _ = self.0.compare_exchange(c, v, Relaxed, Relaxed);
        }
    }

    /// The connection is busy (a stream started).
    pub fn busy(&self) {
        let c = self.0.load(Relaxed);
        if c != BUSY && c < RECLAIMED {
            let _ = self.0.compare_exchange(c, BUSY, Relaxed, Relaxed);
        }
    }

    /// The connection closes (it is no longer counted as idle); whether it was asked to by
    /// [`IdleMark::claim`] (the worker needed its place).
    pub fn closing(&self) -> bool {
        self.0.swap(CLOSING, Relaxed) == RECLAIMED
    }

    /// When its idle wait ends, if it is idle.
    pub fn until(&self) -> Option<Instant> {
        match self.0.load(Relaxed) {
            BUSY | RECLAIMED.. => None,
            v => Some(*EPOCH + Duration::from_millis(v - 1)),
        }
    }

    /// Claims it to close if it is idle with its wait ending at or before `last`.
    pub(super) fn claim(&self, last: Instant) -> bool {
        let c = self.0.load(Relaxed);
        let idle = !matches!(c, BUSY | RECLAIMED..);
        idle && *EPOCH + Duration::from_millis(c - 1) <= last
            && self
                .0
                .compare_exchange(c, RECLAIMED, Relaxed, Relaxed)
                .is_ok()
    }

    /// Whether [`IdleMark::claim`] took it and it has not started closing yet.
    pub fn reclaimed(&self) -> bool {
        self.0.load(Relaxed) == RECLAIMED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_idle_between_streams_and_claimed_once() {
        let m = IdleMark::default();
        let t = Instant::now() + Duration::from_secs(60);
        assert_eq!(m.until(), None, "no request served yet: not idle");
        assert!(!m.claim(t + Duration::from_secs(1)));
        m.idle(t);
        let u = m.until().expect("idle");
        assert!(u <= t && t - u < Duration::from_millis(2), "{u:?} {t:?}");
        m.busy();
        assert_eq!(m.until(), None, "a stream started");
        m.idle(t);
        assert!(!m.claim(t - Duration::from_secs(1)), "its wait ends later");
        assert!(m.claim(t));
        assert!(m.reclaimed() && m.until().is_none());
        assert!(!m.claim(t), "once");
        m.busy();
        m.idle(t);
        assert!(m.reclaimed(), "a stream coming and going keeps the claim");
        assert!(m.closing(), "closing, it says it was reclaimed");
        assert!(!m.reclaimed() && m.until().is_none());
        m.idle(t);
        assert_eq!(m.until(), None, "a closing connection is never idle again");
    }

    #[test]
    fn a_connection_closing_for_another_reason_is_not_claimed() {
        let m = IdleMark::default();
        let t = Instant::now();
        m.idle(t);
        assert!(!m.closing(), "not reclaimed");
        assert!(!m.claim(t + Duration::from_secs(1)));
    }
}
