//! TLS session-ticket keys, the control plane's side: one [`Rotation`] makes a new key every
//! `[workers] tls_ticket_rotation_seconds` and sends every worker the current and the previous
//! key over its control channel, the worker's stdin (a pipe; not an environment variable, which
//! `/proc/<pid>/environ` shows for the process's whole life). A worker started or restarted gets
//! both keys at start, before it serves. The frame and the worker's side are
//! `lb_l7::tickets`.

use std::{
    os::fd::{OwnedFd, RawFd},
    time::{Duration, Instant},
};

use lb_l7::tickets::{FRAME_LEN, TicketKeys};

/// Set by the supervisor for `weir worker`: the fd its ticket keys arrive on (its stdin).
pub const CHANNEL_ENV: &str = "WEIR_TICKET_KEYS_FD";

/// The fd of the ticket-key channel this worker process was given, if any.
pub fn channel_fd() -> anyhow::Result<Option<RawFd>> {
    match std::env::var(CHANNEL_ENV) {
        Err(_) => Ok(None),
        Ok(v) => Ok(Some(v.parse().map_err(|_| {
            anyhow::anyhow!("{CHANNEL_ENV}: `{v}` is not a file descriptor")
        })?)),
    }
}

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

    /// The frame every worker gets now.
    pub fn frame(&self) -> [u8; FRAME_LEN] {
        self.keys.encode()
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

/// Writes one frame to a worker's channel without blocking: the pipe holds hundreds of frames,
/// so a full one means the worker stopped reading (it is stuck or dying; its restart gets the
/// keys at start). A frame is smaller than `PIPE_BUF`: written whole or not at all.
pub fn send(channel: &OwnedFd, frame: &[u8; FRAME_LEN]) -> std::io::Result<()> {
    let n = nix::unistd::write(channel, frame)?;
    if n != frame.len() {
        return Err(std::io::Error::other("short write to the control channel"));
    }
    Ok(())
}

/// Makes a worker's end of its channel non-blocking (the supervisor's end: `send` never waits).
pub fn nonblocking(channel: &OwnedFd) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use std::os::fd::AsRawFd as _;
    let fd = channel.as_raw_fd();
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_keeps_the_current_key_as_previous() {
        let mut r = Rotation::new(Duration::from_secs(3));
        let first = TicketKeys::decode(&r.frame()).unwrap();
        assert_eq!(first.previous, None);
        assert_eq!(first.lifetime, 3);
        r.rotate();
        let second = TicketKeys::decode(&r.frame()).unwrap();
        assert_eq!(second.previous, Some(first.current));
        assert_ne!(second.current, first.current);
        assert!(r.next_at() > Instant::now() + Duration::from_secs(2));
    }

    #[test]
    fn a_full_channel_fails_instead_of_blocking() {
        let (r, w) = nix::unistd::pipe().unwrap();
        nonblocking(&w).unwrap();
        let frame = Rotation::new(Duration::from_secs(1)).frame();
        let mut sent = 0;
        while send(&w, &frame).is_ok() {
            sent += 1;
            assert!(sent < 100_000, "a pipe is bounded");
        }
        assert!(sent > 100, "the pipe holds many frames ({sent})");
        drop(r);
    }
}
