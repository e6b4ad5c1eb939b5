//! `weir run --config FILE` with its stderr collected line by line.

use std::{
    io::{BufRead, BufReader, Read},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use weir_tests::lab::{Ns, Proc, wait_until};

use super::{TempFile, weir_command};

/// Collects a pipe's lines (stdout or stderr of weir) as they come, lossily as UTF-8.
pub fn collect(r: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        while r.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
            l.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf).into_owned());
            buf.clear();
        }
    });
    lines
}

/// `weir run --config FILE` in a namespace, stdout discarded, stderr collected.
pub struct Weir {
    pub proc: Proc,
    pub stderr: Arc<Mutex<Vec<String>>>,
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
        let stderr = collect(proc.child_mut().stderr.take().context("stderr")?);
        Ok(Weir { proc, stderr })
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().concat()
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
                    bail!("weir exited:\n{}", self.log());
                }
                Ok(self.workers_ready() >= n)
            },
        )
    }
}
