//! The control channel, the control plane's side: one writer task per worker owns the worker's
//! stdin (a pipe) and writes the frames of `lb_l7::control` in order; the supervisor and the
//! control plane's other parts talk to every worker through a cloneable [`ControlHandle`].
//!
//! A worker gets, at start: the TLS ticket keys, then every *sticky* message (what the control
//! plane keeps current for all workers, in the order each key was first set), then `Started`.
//! A message broadcast afterwards reaches the workers running at that moment; a worker started
//! later has it only through the sticky messages. So a part that owns some state sends its whole
//! state as a sticky message and its changes as broadcasts (or a sticky message each time).

use std::{os::fd::RawFd, sync::Arc};

use lb_l7::control::{ControlMsg, encode};
use tokio::{io::AsyncWriteExt as _, process::ChildStdin, sync::mpsc};

/// Set by the supervisor for `weir worker`: the fd its control channel arrives on (its stdin).
pub const CHANNEL_ENV: &str = "WEIR_CONTROL_FD";
/// Set by the supervisor for `weir worker`: the fd of its socket channel
/// (`lb_l7::socket_channel`), where the sockets of listeners added by a reload arrive.
pub const SOCKETS_ENV: &str = "WEIR_SOCKETS_FD";
/// Messages queued for one worker before it counts as stuck (it reads them as they come; a full
/// queue means it stopped).
const QUEUE: usize = 4096;

/// The fd of the control channel this worker process was given, if any.
pub fn channel_fd() -> anyhow::Result<Option<RawFd>> {
    fd_from(CHANNEL_ENV)
}

/// The fd of the socket channel this worker process was given, if any.
pub fn sockets_fd() -> anyhow::Result<Option<RawFd>> {
    fd_from(SOCKETS_ENV)
}

fn fd_from(var: &str) -> anyhow::Result<Option<RawFd>> {
    match std::env::var(var) {
        Err(_) => Ok(None),
        Ok(v) => Ok(Some(v.parse().map_err(|_| {
            anyhow::anyhow!("{var}: `{v}` is not a file descriptor")
        })?)),
    }
}

/// A frame, encoded once for every worker.
pub type Frame = Arc<[u8]>;

pub fn frame(msg: &ControlMsg) -> Frame {
    encode(msg).into()
}

/// What the control plane's parts ask the supervisor to send.
pub(super) enum Command {
    Broadcast(Frame),
    Sticky(String, Frame),
    /// A generation that adds or removes listeners: applied with its listeners at once
    /// (`Supervisor::reconfigure`).
    Generation(String, Frame, Listeners),
    /// Opens the access-log file at this path again and hands it to every running worker
    /// (`Supervisor::reopen_access_log`).
    ReopenAccessLog(std::path::PathBuf),
}

/// The listeners of a new generation: all of them in its order, and the sockets of the added
/// ones, bound by the caller before the generation was committed (so a port that cannot be
/// bound refuses the reload instead).
pub struct Listeners {
    pub order: Vec<std::net::SocketAddr>,
    pub added: Vec<super::sockets::ListenerGroup>,
}

/// Sends messages to every worker. Cheap to clone; outlives nothing (the supervisor may have
/// stopped: then a send does nothing).
#[derive(Clone)]
pub struct ControlHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl ControlHandle {
    pub(super) fn new() -> (ControlHandle, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ControlHandle { tx }, rx)
    }

    /// Sends `msg` to every worker running now.
    pub fn broadcast(&self, msg: &ControlMsg) {
        let _ = self.tx.send(Command::Broadcast(frame(msg)));
    }

    /// Sends `msg` to every worker running now and to every worker started later, in place of
    /// the last message sent under `key`.
    pub fn set_sticky(&self, key: &str, msg: &ControlMsg) {
        let _ = self.tx.send(Command::Sticky(key.to_string(), frame(msg)));
    }

    /// The access-log file at `path` opened again (after a log rotation moved the old one
    /// away) and written to by every worker from now on.
    pub fn reopen_access_log(&self, path: std::path::PathBuf) {
        let _ = self.tx.send(Command::ReopenAccessLog(path));
    }

    /// As [`Self::set_sticky`], for a generation whose listeners differ from the running ones:
    /// the removed listeners stop taking connections and the added ones' sockets reach every
    /// worker before the generation does.
    pub fn set_generation(&self, key: &str, msg: &ControlMsg, listeners: Listeners) {
        let _ = self
            .tx
            .send(Command::Generation(key.to_string(), frame(msg), listeners));
    }
}

/// The sticky messages, in the order their keys were first set.
#[derive(Default)]
pub(super) struct Sticky(Vec<(String, Frame)>);

impl Sticky {
    pub fn set(&mut self, key: String, f: Frame) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = f,
            None => self.0.push((key, f)),
        }
    }
    pub fn frames(&self) -> impl Iterator<Item = &Frame> {
        self.0.iter().map(|(_, f)| f)
    }
}

/// One worker's end of the channel: frames queue here and its writer task writes them in order.
pub(super) struct WorkerPipe {
    tx: mpsc::Sender<Frame>,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    #[error("the worker has not read its last {QUEUE} control messages")]
    Stuck,
    #[error("the worker's control channel is closed")]
    Closed,
}

impl WorkerPipe {
    /// Starts the writer task for a worker's stdin.
    pub fn start(worker: usize, mut stdin: ChildStdin) -> WorkerPipe {
        let (tx, mut rx) = mpsc::channel::<Frame>(QUEUE);
        tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                if let Err(e) = stdin.write_all(&f).await {
                    // The worker is gone or going: its exit is handled by the supervisor.
                    tracing::debug!(worker, error = %e, "control channel closed");
                    return;
                }
            }
        });
        WorkerPipe { tx }
    }

    pub fn send(&self, f: &Frame) -> Result<(), SendError> {
        self.tx.try_send(f.clone()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Stuck,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_l7::control::{Decoder, TargetHealth};

    fn states(state: &str) -> ControlMsg {
        ControlMsg::TargetStates(vec![TargetHealth {
            group: "g".into(),
            target: "10.0.0.1:80".parse().unwrap(),
            state: state.into(),
            reason: None,
        }])
    }

    #[test]
    fn a_sticky_key_keeps_its_place_and_its_last_message() {
        let mut s = Sticky::default();
        s.set("health".into(), frame(&states("initial")));
        s.set("config".into(), frame(&ControlMsg::Started));
        s.set("health".into(), frame(&states("healthy")));
        let mut d = Decoder::default();
        for f in s.frames() {
            d.push(f);
        }
        assert_eq!(d.next_msg().unwrap().unwrap(), states("healthy"));
        assert_eq!(d.next_msg().unwrap().unwrap(), ControlMsg::Started);
        assert!(d.next_msg().is_none());
    }

    #[tokio::test]
    async fn a_worker_that_stops_reading_is_reported_stuck_not_waited_for() {
        let mut child = tokio::process::Command::new("sleep")
            .arg("5")
            .stdin(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pipe = WorkerPipe::start(0, child.stdin.take().unwrap());
        let big = frame(&ControlMsg::TargetStates(
            (0..200)
                .map(|i| TargetHealth {
                    group: "g".into(),
                    target: format!("10.0.0.1:{}", 1000 + i).parse().unwrap(),
                    state: "healthy".into(),
                    reason: None,
                })
                .collect(),
        ));
        let mut sent = 0;
        let stuck = loop {
            match pipe.send(&big) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent <= QUEUE + 1, "the queue is bounded");
        };
        assert!(matches!(stuck, SendError::Stuck), "{stuck}");
        let _ = child.kill().await;
    }
}
