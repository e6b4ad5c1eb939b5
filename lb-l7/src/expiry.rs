//! A draining target's deregistration deadline, as the requests waiting on it see it: when the
//! deadline passes with requests still in flight (`generation::Draining`), the target is
//! expired and every request still waiting for its response head is answered 502 (ALB's
//! behaviour), its target connection dropped.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once, never cleared; wakes every waiter.
#[derive(Debug, Default)]
pub struct Expiry {
    expired: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Expiry {
    /// The deadline is over: every waiter wakes, later ones do not wait.
    pub fn expire(&self) {
        self.expired.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub fn is_expired(&self) -> bool {
        self.expired.load(Ordering::Acquire)
    }

    /// Resolves once expired.
    pub async fn wait(&self) {
        loop {
            let n = self.notify.notified();
            tokio::pin!(n);
            // Registered before the check: an `expire` in between still wakes it.
            n.as_mut().enable();
            if self.is_expired() {
                return;
            }
            n.await;
        }
    }

    /// `f`'s output, or `None` if the target expires first.
    pub async fn or_expired<F: Future>(&self, f: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = f => Some(out),
            () = self.wait() => None,
        }
    }
}

/// The access log's `error_reason` of a request answered 502 at its target's deregistration
/// deadline.
pub const DEREGISTERED: &str = "TargetDeregistered";

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_wake_at_expiry_and_later_ones_do_not_wait() {
        let e = Arc::new(Expiry::default());
        let pending = std::future::pending::<()>();
        let waiter = tokio::spawn({
            let e = e.clone();
            async move { e.or_expired(pending).await }
        });
        let done = e.or_expired(async { 7 }).await;
        assert_eq!(done, Some(7), "what finishes first wins");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        e.expire();
        assert_eq!(waiter.await.unwrap(), None);
        assert!(e.is_expired());
        let later = e.or_expired(std::future::pending::<()>()).await;
        assert_eq!(later, None);
    }
}
