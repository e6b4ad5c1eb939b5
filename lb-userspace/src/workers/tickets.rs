//! TLS session-ticket keys, the control plane's side: one [`Rotation`] makes a new key every
//! `[workers] tls_ticket_rotation_seconds` and sends every worker the current and the previous
//! key over its control channel ([`super::control`], the worker's stdin: a pipe, not an
//! environment variable, which `/proc/<pid>/environ` shows for the process's whole life). A
//! worker started or restarted gets both keys at start, before it serves. The worker's side is
//! `lb_l7::tickets`.

use std::time::{Duration, Instant};

use lb_l7::{control::ControlMsg, tickets::TicketKeys};

/// The keys and when they rotate next.
pub struct Rotation {
    keys: TicketKeys,
    interval: Duration,
    next: Instant,
}

impl Rotation {
    pub fn new(interval: Duration) -> Rotation {
        let lifetime = u32::try_from(interval.as_secs()).unwrap_or(u32::MAX);
        Rotation {
            keys: TicketKeys::random(lifetime),
            interval,
            next: Instant::now() + interval,
        }
    }

    /// The message every worker gets now.
    pub fn message(&self) -> ControlMsg {
        ControlMsg::TicketKeys(self.keys.clone())
    }

    pub fn next_at(&self) -> Instant {
        self.next
    }

    /// A new current key; the current one becomes the previous one.
    pub fn rotate(&mut self) {
        self.keys = self.keys.rotated();
        self.next = Instant::now() + self.interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_keeps_the_current_key_as_previous() {
        let mut r = Rotation::new(Duration::from_secs(3));
        let keys = |r: &Rotation| match r.message() {
            ControlMsg::TicketKeys(k) => k,
            m => panic!("{m:?}"),
        };
        let first = keys(&r);
        assert_eq!(first.previous, None);
        assert_eq!(first.lifetime, 3);
        r.rotate();
        let second = keys(&r);
        assert_eq!(second.previous, Some(first.current));
        assert_ne!(second.current, first.current);
        assert!(r.next_at() > Instant::now() + Duration::from_secs(2));
    }
}
