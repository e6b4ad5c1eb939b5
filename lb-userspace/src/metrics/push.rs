//! The worker's side: every [`super::PERIOD`] its counters (`lb_l7::MetricsHandle`) as one line
//! ([`Figures::to_line`]) on the pipe the control plane gave it ([`super::FD_ENV`]). Nothing on
//! the request path: the atomics are read here, on the worker's own runtime, twice a second.
//! A control plane that stops reading only stalls this task (the pipe fills), never a request.
//! Each report also names the targets the worker is still draining
//! (`lb_l7::generation::drain_report`): the health view ends a target's `draining` once every
//! worker is done with it.

use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};

use lb_l7::MetricsHandle;
use tokio::{io::AsyncWriteExt as _, net::unix::pipe, sync::oneshot, task::JoinHandle};

use super::{FD_ENV, PERIOD, series::Figures};

/// The report fd this worker process was given, if any.
pub fn fd_from_env() -> anyhow::Result<Option<RawFd>> {
    match std::env::var(FD_ENV) {
        Err(_) => Ok(None),
        Ok(v) => Ok(Some(v.parse().map_err(|_| {
            anyhow::anyhow!("{FD_ENV}: `{v}` is not a file descriptor")
        })?)),
    }
}

/// The running reporter.
pub struct Pusher {
    task: JoinHandle<()>,
    last: oneshot::Sender<()>,
}

impl Pusher {
    /// Takes `fd` (the write end of a pipe) and starts reporting. Call inside the worker's
    /// runtime and before its sandbox (the pipe is checked with `fstat`).
    pub fn start(fd: RawFd, metrics: MetricsHandle) -> anyhow::Result<Pusher> {
        // SAFETY: the control plane passed this fd to this process for the reports alone.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut tx = pipe::Sender::from_owned_fd(owned)
            .map_err(|e| anyhow::anyhow!("{FD_ENV}={fd}: not a pipe to write: {e}"))?;
        let (last, mut stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let done = tokio::select! {
                    _ = tick.tick() => false,
                    _ = &mut stop => true,
                };
                let mut figures = Figures::from_snapshot(&metrics.snapshot());
                figures.drain = Some(metrics.drain_report());
                let line = figures.to_line();
                if tx.write_all(line.as_bytes()).await.is_err() || done {
                    return;
                }
            }
        });
        Ok(Pusher { task, last })
    }

    /// Sends the final report (after the drain: every request counted), waiting at most one
    /// period for a pipe the control plane does not read.
    pub async fn finish(self) {
        let _ = self.last.send(());
        let _ = tokio::time::timeout(PERIOD, self.task).await;
    }
}
