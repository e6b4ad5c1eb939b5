//! Long-running processes inside a namespace, killed (with their process group) on drop.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::{Shared, lock};

/// SIGKILLs process group `pgid` and waits (≤ 2 s) until its leader has exited.
pub(crate) fn kill_group(pgid: i32) {
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        match std::fs::read_to_string(format!("/proc/{pgid}/stat")) {
            // Field 3 is the state; Z (zombie) or X means it is gone.
            Ok(s) => match s
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
            {
                Some("Z") | Some("X") | None => return,
                _ => std::thread::sleep(Duration::from_millis(5)),
            },
            Err(_) => return,
        }
    }
}

/// A child process started by [`Ns::spawn`](super::Ns::spawn).
pub struct Proc {
    child: Child,
    state: Shared,
}

impl Proc {
    pub(crate) fn start(mut c: Command, state: Shared) -> Result<Proc> {
        c.process_group(0);
        let child = c.spawn().with_context(|| format!("spawning {c:?}"))?;
        lock(&state).pids.push(child.id() as i32);
        Ok(Proc { child, state })
    }

    /// Its pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The underlying child (for its piped stdio, if the command asked for pipes).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Whether it has not exited yet.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for it to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(Some(s));
            }
            if start.elapsed() > timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills its process group and reaps it.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        let pid = self.child.id() as i32;
        kill_group(pid);
        let _ = self.child.kill();
        let status = self.child.wait()?;
        lock(&self.state).pids.retain(|p| *p != pid);
        Ok(status)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
