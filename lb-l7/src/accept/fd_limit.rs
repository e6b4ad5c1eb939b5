//! accept(2) at the open-file limit (EMFILE for the process, ENFILE for the host).
//!
//! The kernel keeps the connection queued and the listener readable, so retrying at once spins
//! and the queued clients wait for nothing. Instead the accept loop sheds them: it keeps one
//! spare descriptor (a duplicate of the listening socket, which costs no socket), and when
//! accept fails for want of a descriptor it closes the spare, accepts every queued connection
//! and resets it at once (so it leaves no TIME-WAIT here), counts each as rejected
//! (`RejectedConnectionCount`), then takes the spare back — libuv's and Go's approach to EMFILE.
//! When even that cannot accept (no spare: the host is out, ENFILE), accepting pauses for
//! [`PAUSE`], as HAProxy does. A warning is logged at most once per [`LOG_EVERY`], with the
//! count since the last one.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How long accepting pauses when nothing could be shed.
pub const PAUSE: Duration = Duration::from_millis(100);
/// At most one warning per listener in this time.
pub const LOG_EVERY: Duration = Duration::from_secs(1);
/// Connections shed in one go before the loop yields to the rest of the worker.
const MAX_SHED: u64 = 1024;

/// Whether `e` means no descriptor was left.
pub fn is_fd_limit(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// What one [`FdLimit::shed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shed {
    /// Connections accepted and reset.
    pub rejected: u64,
    /// Nothing could be accepted for want of a descriptor: pause before the next accept.
    pub pause: bool,
}

/// The spare descriptor and the log interval of one listener's accept loop.
pub struct FdLimit {
    spare: Option<OwnedFd>,
    since_log: u64,
    logged_at: Option<Instant>,
}

fn reserve(listener: &TcpListener) -> Option<OwnedFd> {
    listener.as_fd().try_clone_to_owned().ok()
}

impl FdLimit {
    pub fn new(listener: &TcpListener) -> FdLimit {
        FdLimit {
            spare: reserve(listener),
            since_log: 0,
            logged_at: None,
        }
    }

    /// After accept failed with EMFILE/ENFILE: frees the spare, accepts and resets what is
    /// queued (at most [`MAX_SHED`]), takes the spare back. Accepts through tokio, so an empty
    /// queue clears the listener's readiness: accept(2) fails with EMFILE before it looks at the
    /// queue, and the loop must wait for the next connection rather than retry at once.
    pub async fn shed(&mut self, listener: &TcpListener) -> Shed {
        self.spare = None;
        let mut rejected = 0;
        let mut pause = false;
        while rejected < MAX_SHED {
            let polled = std::future::poll_fn(|cx| Poll::Ready(listener.poll_accept(cx))).await;
            match polled {
                Poll::Ready(Ok((conn, _))) => {
                    let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
                    drop(conn);
                    rejected += 1;
                }
                Poll::Ready(Err(e)) => {
                    pause = is_fd_limit(&e);
                    break;
                }
                Poll::Pending => break,
            }
        }
        self.spare = reserve(listener);
        self.since_log += rejected;
        Shed { rejected, pause }
    }

    /// `Some(rejected since the last warning)` when a warning is due at `now`.
    pub fn log_due(&mut self, now: Instant) -> Option<u64> {
        if self
            .logged_at
            .is_some_and(|t| now.duration_since(t) < LOG_EVERY)
        {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.since_log))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_descriptor_exhaustion_is_shed() {
        assert!(is_fd_limit(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(is_fd_limit(&io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!is_fd_limit(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }

    #[tokio::test]
    async fn one_warning_per_interval_carries_the_count() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut f = FdLimit::new(&l);
        assert!(f.spare.is_some());
        let t0 = Instant::now();
        f.since_log = 3;
        assert_eq!(f.log_due(t0), Some(3));
        f.since_log = 5;
        assert_eq!(f.log_due(t0 + LOG_EVERY / 2), None);
        f.since_log += 2;
        assert_eq!(f.log_due(t0 + LOG_EVERY), Some(7));
    }

    #[tokio::test]
    async fn shedding_resets_every_queued_connection_and_keeps_the_spare() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        // The handshakes complete in the kernel; let the listener see them.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut f = FdLimit::new(&l);
        let shed = f.shed(&l).await;
        assert_eq!(
            shed,
            Shed {
                rejected: 3,
                pause: false
            }
        );
        assert!(f.spare.is_some());
        for mut c in clients {
            let mut buf = [0u8; 1];
            let r = std::io::Read::read(&mut c, &mut buf);
            assert!(matches!(r, Ok(0) | Err(_)), "closed: {r:?}");
        }
    }
}
