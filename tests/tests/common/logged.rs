//! `weir run --config FILE` with its stderr collected line by line.

use std::{
    io::{BufRead, BufReader, Read},
    process::{ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use weir_tests::lab::{Ns, Proc, wait_until};

use super::{TempFile, weir_command};

/// Collects a pipe's lines (stdout or stderr of weir) as they come, lossily as UTF-8.
pub fn collect(r: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    collect_to_eof(r).0
}

/// [`collect`], and a flag set once the pipe is at its end (every line in).
pub fn collect_to_eof(r: impl Read + Send + 'static) -> (Arc<Mutex<Vec<String>>>, Arc<AtomicBool>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let eof = Arc::new(AtomicBool::new(false));
    let (l, e) = (lines.clone(), eof.clone());
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        while r.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
            l.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf).into_owned());
            buf.clear();
        }
        e.store(true, Ordering::Release);
    });
    (lines, eof)
}

/// Waits (≤ 5 s) for a pipe of [`collect_to_eof`] to be at its end (`eof`): what weir wrote
/// as it exited may still be in the reader's hands when the process is gone.
pub fn wait_eof(eof: &AtomicBool) -> Result<()> {
    wait_until(Duration::from_secs(5), "the pipe's end", || {
        Ok(eof.load(Ordering::Acquire))
    })
}

/// `lines` as one text once the pipe is at its end ([`wait_eof`]), or after 5 s if it is not (a
/// worker may still hold it open). For failure messages: it never fails itself.
pub fn to_eof(lines: &Mutex<Vec<String>>, eof: &AtomicBool) -> String {
    let _ = wait_eof(eof);
    lines.lock().unwrap().concat()
}

/// `weir run --config FILE` in a namespace, stdout discarded, stderr collected.
pub struct Weir {
    pub proc: Proc,
    pub stderr: Arc<Mutex<Vec<String>>>,
    stderr_done: Arc<AtomicBool>,
}

impl Weir {
    /// Spawns it in `ns` with `RUST_LOG` set to `rust_log` (unset when `None`); does not wait.
    pub fn spawn(ns: &Ns, cfg: &TempFile, rust_log: Option<&str>) -> Result<Weir> {
        let mut c = weir_command(ns);
        c.args(["run", "--config", cfg.path()]);
        match rust_log {
            Some(l) => c.env("RUST_LOG", l),
            None => c.env_remove("RUST_LOG"),
        };
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut proc = ns.spawn_command(c)?;
        let (stderr, stderr_done) =
            collect_to_eof(proc.child_mut().stderr.take().context("stderr")?);
        Ok(Weir {
            proc,
            stderr,
            stderr_done,
        })
    }

    /// [`Weir::spawn`] (`RUST_LOG` unset), returned once it serves: `port` listens in `ns` and
    /// it logged "weir running".
    #[allow(dead_code)] // not every test binary uses it
    pub fn serving(ns: &Ns, cfg: &TempFile, port: u16) -> Result<Weir> {
        let mut w = Weir::spawn(ns, cfg, None)?;
        wait_until(Duration::from_secs(30), "weir to serve", || {
            if !w.proc.is_running() {
                bail!("weir exited:\n{}", w.log_at_exit());
            }
            Ok(ns.tcp_listening(port)? && w.log().contains("weir running"))
        })?;
        Ok(w)
    }

    /// Waits up to `timeout` for it to exit by itself: its status and its whole stderr (the
    /// reader may still hold lines when the process is gone: this waits for the pipe's end).
    pub fn exited(&mut self, timeout: Duration) -> Result<(ExitStatus, String)> {
        let status = self
            .proc
            .wait_timeout(timeout)?
            .with_context(|| format!("weir still running after {timeout:?}:\n{}", self.log()))?;
        wait_eof(&self.stderr_done)?;
        Ok((status, self.log()))
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().concat()
    }

    /// Its whole stderr once it has exited or was stopped ([`to_eof`]): for failure messages.
    pub fn log_at_exit(&self) -> String {
        to_eof(&self.stderr, &self.stderr_done)
    }

    /// How many `worker ready` lines it has logged.
    pub fn workers_ready(&self) -> usize {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("worker ready"))
            .count()
    }

    /// Waits (≤ 30 s) until `n` workers logged `worker ready`; an error with the log if it exits.
    pub fn wait_workers(&mut self, n: usize) -> Result<()> {
        wait_until(
            Duration::from_secs(30),
            &format!("{n} workers ready"),
            || {
                if !self.proc.is_running() {
                    bail!("weir exited:\n{}", self.log_at_exit());
                }
                Ok(self.workers_ready() >= n)
            },
        )
    }
}
