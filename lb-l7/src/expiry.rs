//! A draining target's deregistration deadline, as the requests waiting on it see it: when the
//! deadline passes with requests still in flight (`generation::Draining`), the target is
//! expired and every request still waiting for its response head is answered 502 (ALB's
//! behaviour), its target connection dropped.
//!
//! A flag and nothing else: a request waiting for a response head has its deadline armed on
//! the worker's coarse table (`pipeline::attempt::read_head_watching`), and the expiry pokes
//! that table (`Draining::tick` → `IdleDeadlines::poke_all`), so each waiter wakes, looks at
//! the flag and either gives up or waits again. No waiter list: registering in one (a tokio
//! `Notify`) cost every request two lock round trips and ~1 % of its CPU, for an event that
//! happens at a deregistration deadline.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once, never cleared.
#[derive(Debug, Default)]
pub struct Expiry {
    expired: AtomicBool,
}

impl Expiry {
    /// The deadline is over: waiters see it when woken (the caller pokes them), later ones do
    /// not wait.
    pub fn expire(&self) {
        self.expired.store(true, Ordering::Release);
    }

    pub fn is_expired(&self) -> bool {
        self.expired.load(Ordering::Acquire)
    }
}

/// The access log's `error_reason` of a request answered 502 at its target's deregistration
/// deadline.
pub const DEREGISTERED: &str = "TargetDeregistered";
