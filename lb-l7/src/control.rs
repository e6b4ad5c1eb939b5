//! The control channel: what the control plane (`weir run`) tells a worker process, over the
//! worker's stdin (a pipe the supervisor holds the other end of).
//!
//! A message is a frame: the magic `WCM1`, the payload's length (u32, big-endian), and the
//! payload, one [`ControlMsg`] as JSON. One writer per pipe (the supervisor's per-worker task),
//! so frames never interleave, whatever their size.
//!
//! At start the supervisor writes an initial batch ending with [`ControlMsg::Started`]: the TLS
//! ticket keys first, then whatever the control plane keeps current for every worker (its
//! "sticky" messages: target states, …). [`read_initial`] reads that batch, blocking, before the
//! worker serves; [`follow`] applies the rest while it serves. The framing ([`encode`],
//! [`Decoder`]) is pure and tested here; the reads are the I/O edge.

use crate::tickets::TicketKeys;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

const MAGIC: &[u8; 4] = b"WCM1";
const HEADER_LEN: usize = 8;
/// The largest payload a worker accepts (a whole configuration fits many times over).
pub const MAX_PAYLOAD: usize = 64 << 20;

/// One message from the control plane to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlMsg {
    /// The TLS session ticket keys (`crate::tickets`): sent first at start, then at each rotation.
    TicketKeys(TicketKeys),
    /// Target states decided by the control plane's health checks.
    TargetStates(Vec<TargetHealth>),
    /// Targets whose active health check passed since the last such message (the control plane
    /// sends them once a second): each gets `TargetRt::active_check_passed`.
    HealthChecksPassed(Vec<CheckedTarget>),
    /// The configuration, numbered (sticky: a worker started later gets the current one in its
    /// initial batch). A worker's configuration comes from here, never from the file on disk.
    Config(ConfigGeneration),
    /// The end of the initial batch: the worker may serve.
    Started,
    /// The access-log file, opened again by the control plane (SIGUSR1, after a log rotation),
    /// waits on the socket channel (`crate::socket_channel::send_access_log`): write to it.
    ReopenAccessLog,
}

/// One configuration generation, as the control plane validated it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigGeneration {
    /// 1 at start, one more at each reload every worker takes.
    pub generation: u64,
    /// What errors call the file.
    pub source: String,
    /// The whole file's text: the worker reads its `[workers]` and L7 sections from it, without
    /// validating them again (`crate::generation::parse_l7`).
    pub toml: String,
    /// Every certificate and private key file the configuration names, read by the control
    /// plane when it validated it (a worker in its sandbox opens no file): path → PEM text.
    pub files: std::collections::BTreeMap<String, String>,
    /// The targets registered, deregistered or discovered at run time (the control plane's
    /// overlay over the file): for each group named, its targets in force, replacing the file's
    /// (`crate::target_sets::apply`). Empty (and absent on the wire) when nothing changed at
    /// run time.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub target_sets: crate::target_sets::TargetSets,
}

impl ConfigGeneration {
    /// The L7 configuration this generation runs: the file's L7 sections with the run-time
    /// target sets applied.
    pub fn l7(&self) -> anyhow::Result<crate::config::L7Config> {
        let file = crate::generation::parse_l7(&self.toml)?;
        Ok(crate::target_sets::apply(&file, &self.target_sets))
    }
}

/// One target's state, as the control plane's health checks decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetHealth {
    pub group: String,
    pub target: SocketAddr,
    /// ALB's state name: `initial`, `healthy`, `unhealthy`, `unused`, `draining`, `unavailable`.
    pub state: String,
    /// ALB's reason code (`Target.Timeout`, …), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A target named by its group and address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckedTarget {
    pub group: String,
    pub target: SocketAddr,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("control channel: bad magic {0:02x?}")]
    Magic([u8; 4]),
    #[error("control channel: a {0}-byte message is over the {MAX_PAYLOAD}-byte limit")]
    TooLong(usize),
    #[error("control channel: undecodable message: {0}")]
    Json(String),
}

/// The frame carrying `msg`.
pub fn encode(msg: &ControlMsg) -> Vec<u8> {
    // Serialising these types cannot fail: no maps with non-string keys, no foreign impls.
    let payload = serde_json::to_vec(msg).unwrap_or_default();
    let mut f = Vec::with_capacity(HEADER_LEN + payload.len());
    f.extend_from_slice(MAGIC);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&payload);
    f
}

/// Splits a byte stream into messages. Pure: feed it what was read, take out what is whole.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `None` until one is. An error is final: the stream lost its
    /// framing.
    pub fn next_msg(&mut self) -> Option<Result<ControlMsg, FrameError>> {
        if self.buf.len() < HEADER_LEN {
            return None;
        }
        let mut magic = [0u8; 4];
        magic.copy_from_slice(&self.buf[..4]);
        if &magic != MAGIC {
            return Some(Err(FrameError::Magic(magic)));
        }
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if len > MAX_PAYLOAD {
            return Some(Err(FrameError::TooLong(len)));
        }
        if self.buf.len() < HEADER_LEN + len {
            return None;
        }
        let msg = serde_json::from_slice(&self.buf[HEADER_LEN..HEADER_LEN + len])
            .map_err(|e| FrameError::Json(e.to_string()));
        self.buf.drain(..HEADER_LEN + len);
        Some(msg)
    }
}

/// Reads the initial batch, blocking, up to and without [`ControlMsg::Started`]. Reads exactly
/// the batch's bytes (header, then payload), so what follows stays in the pipe for [`follow`].
pub fn read_initial(fd: &std::os::fd::OwnedFd) -> anyhow::Result<Vec<ControlMsg>> {
    use std::io::Read as _;
    let mut f = std::fs::File::from(fd.try_clone()?);
    let mut batch = Vec::new();
    loop {
        let mut d = Decoder::default();
        let mut header = [0u8; HEADER_LEN];
        f.read_exact(&mut header)
            .map_err(|e| anyhow::anyhow!("reading the control channel at start: {e}"))?;
        d.push(&header);
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if &header[..4] == MAGIC && len <= MAX_PAYLOAD {
            let mut payload = vec![0u8; len];
            f.read_exact(&mut payload)
                .map_err(|e| anyhow::anyhow!("reading the control channel at start: {e}"))?;
            d.push(&payload);
        }
        match d.next_msg() {
            Some(Ok(ControlMsg::Started)) => return Ok(batch),
            Some(Ok(m)) => batch.push(m),
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("control channel: a message ended early"),
        }
    }
}

/// Hands every message that arrives on the control channel (a pipe) to `apply`, until the control
/// plane closes it. Runs on the worker's runtime; its only system calls are `read` and the
/// runtime's `epoll` (the worker's seccomp allow-list has no `fstat`, which tokio's own pipe type
/// calls).
pub async fn follow(fd: std::os::fd::OwnedFd, mut apply: impl FnMut(ControlMsg)) {
    if let Err(e) = read_frames(fd, &mut apply).await {
        tracing::warn!(error = %e, "this worker no longer follows the control plane");
    }
}

async fn read_frames(
    fd: std::os::fd::OwnedFd,
    apply: &mut impl FnMut(ControlMsg),
) -> anyhow::Result<()> {
    use std::io::Read as _;
    set_nonblocking(&fd)?;
    let file = std::fs::File::from(fd);
    // SAFETY: the File owns the descriptor and lives inside the AsyncFd: it stays open and the
    // same for the AsyncFd's whole life.
    let afd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(file, tokio::io::Interest::READABLE)
    }
    .map_err(|e| anyhow::anyhow!("registering the control channel: {e}"))?;
    let mut d = Decoder::default();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut guard = afd.readable().await?;
        match guard.try_io(|f| f.get_ref().read(&mut chunk)) {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(n)) => d.push(&chunk[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_would_block) => continue,
        }
        while let Some(m) = d.next_msg() {
            apply(m?);
        }
    }
}

fn set_nonblocking(fd: &std::os::fd::OwnedFd) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: fcntl on a descriptor this function borrows; no memory is passed.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0
        || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states() -> ControlMsg {
        ControlMsg::TargetStates(vec![TargetHealth {
            group: "web".into(),
            target: "10.0.0.1:80".parse().unwrap(),
            state: "unhealthy".into(),
            reason: Some("Target.Timeout".into()),
        }])
    }

    #[test]
    fn frames_split_anywhere_decode_in_order() {
        let msgs = [
            ControlMsg::TicketKeys(TicketKeys::random(60)),
            states(),
            ControlMsg::Started,
        ];
        let stream: Vec<u8> = msgs.iter().flat_map(encode).collect();
        for step in [1, 3, 7, 64, stream.len()] {
            let mut d = Decoder::default();
            let mut out = Vec::new();
            for piece in stream.chunks(step) {
                d.push(piece);
                while let Some(m) = d.next_msg() {
                    out.push(m.unwrap());
                }
            }
            assert_eq!(out, msgs, "pieces of {step} bytes");
        }
    }

    #[test]
    fn a_broken_stream_is_an_error_not_a_guess() {
        let mut d = Decoder::default();
        d.push(b"WTK1\0\0\0\x10");
        assert!(matches!(d.next_msg(), Some(Err(FrameError::Magic(_)))));
        let mut d = Decoder::default();
        d.push(b"WCM1\xff\xff\xff\xff");
        assert!(matches!(d.next_msg(), Some(Err(FrameError::TooLong(_)))));
        let mut d = Decoder::default();
        d.push(b"WCM1\0\0\0\x02{}");
        assert!(matches!(d.next_msg(), Some(Err(FrameError::Json(_)))));
    }

    #[test]
    fn the_initial_batch_stops_at_started_and_leaves_the_rest() {
        let (r, w) = nix_pipe();
        let mut bytes = encode(&ControlMsg::TicketKeys(TicketKeys::random(5)));
        bytes.extend(encode(&states()));
        bytes.extend(encode(&ControlMsg::Started));
        let after = encode(&states());
        bytes.extend(&after);
        std::io::Write::write_all(&mut std::fs::File::from(w), &bytes).unwrap();
        let batch = read_initial(&r).unwrap();
        assert_eq!(batch.len(), 2);
        assert!(matches!(batch[0], ControlMsg::TicketKeys(_)));
        let mut rest = vec![0u8; after.len()];
        std::io::Read::read_exact(&mut std::fs::File::from(r), &mut rest).unwrap();
        assert_eq!(rest, after);
    }

    fn nix_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
        use std::os::fd::FromRawFd as _;
        let mut fds = [0; 2];
        // SAFETY: pipe writes two fds into the array it is given.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both fds were just created and are owned by nobody else.
        unsafe {
            (
                std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                std::os::fd::OwnedFd::from_raw_fd(fds[1]),
            )
        }
    }

    /// Ticket keys rotated by the control plane reach a worker's ticketer.
    #[tokio::test]
    async fn rotated_keys_from_the_control_channel_are_applied() {
        use crate::tickets::SharedTicketer;
        use rustls::server::ProducesTickets;
        use std::sync::Arc;
        let (r, mut w) = std::io::pipe().unwrap();
        let k0 = TicketKeys::random(60);
        let t = Arc::new(SharedTicketer::with_keys(&k0));
        let old = t.encrypt(b"x").unwrap();
        let ticketer = t.clone();
        let task = tokio::spawn(follow(r.into(), move |m| {
            if let ControlMsg::TicketKeys(k) = m {
                ticketer.set(&k);
            }
        }));
        let k1 = k0.rotated();
        let k2 = k1.rotated();
        for k in [k1, k2] {
            std::io::Write::write_all(&mut w, &encode(&ControlMsg::TicketKeys(k))).unwrap();
        }
        drop(w);
        task.await.unwrap();
        assert!(t.decrypt(&old).is_none(), "both messages applied");
    }
}
