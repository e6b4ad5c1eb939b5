//! A cap on the connections a small control-plane server (the Prometheus page, the admin socket)
//! serves at once, in which a new connection always gets in: when the cap is reached, the oldest
//! connection is closed to make room.
//!
//! A plain semaphore (the earlier design) stops accepting when full, so a handful of silent
//! connections — a port scanner, a slowloris, a stuck client — leave a Prometheus scrape hanging
//! in the listen queue until their header-read timeouts fire. Closing the oldest instead means a
//! scrape is only refused if the cap's worth of newer connections arrive while it is being
//! answered (a millisecond), as HAProxy's stats page and nginx do not guarantee either.

use std::collections::VecDeque;

use tokio::task::AbortHandle;

/// The connections being served, oldest first.
pub struct ConnCap {
    cap: usize,
    open: VecDeque<AbortHandle>,
}

impl ConnCap {
    pub fn new(cap: usize) -> ConnCap {
        ConnCap {
            cap: cap.max(1),
            open: VecDeque::with_capacity(cap.max(1)),
        }
    }

    /// Makes room for one more connection: forgets the connections that ended, then closes the
    /// oldest while the cap is reached. Returns how many were closed.
    pub fn make_room(&mut self) -> usize {
        self.open.retain(|h| !h.is_finished());
        let mut closed = 0;
        while self.open.len() >= self.cap {
            if let Some(oldest) = self.open.pop_front() {
                oldest.abort();
                closed += 1;
            }
        }
        closed
    }

    /// Records a connection's task, the newest.
    pub fn admit(&mut self, task: AbortHandle) {
        self.open.push_back(task);
    }

    /// Connections recorded and not seen to have ended.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pending() -> tokio::task::JoinHandle<()> {
        tokio::spawn(std::future::pending())
    }

    #[tokio::test]
    async fn the_oldest_connection_makes_room_and_ended_ones_take_none() {
        let mut cap = ConnCap::new(3);
        let first = pending();
        let second = pending();
        let done = tokio::spawn(async {});
        for t in [&first, &second, &done] {
            assert_eq!(cap.make_room(), 0);
            cap.admit(t.abort_handle());
        }
        tokio::time::timeout(Duration::from_secs(5), async {
            while !done.is_finished() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("an empty task ends");
        // The ended task's place is free: nothing is closed for the fourth.
        assert_eq!(cap.make_room(), 0);
        let third = pending();
        cap.admit(third.abort_handle());
        assert_eq!(cap.len(), 3);
        // Full: the fifth closes the oldest, and only it.
        assert_eq!(cap.make_room(), 1);
        let first = first.await.expect_err("the oldest was closed");
        assert!(first.is_cancelled());
        assert!(!second.is_finished());
        assert!(!third.is_finished());
        second.abort();
        third.abort();
    }
}
