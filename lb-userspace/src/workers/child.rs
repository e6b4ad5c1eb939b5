//! `weir worker`: one L7 worker process, started by the supervisor with its sockets inherited.

use std::{io::Write, os::fd::RawFd, path::Path, sync::Arc};

use anyhow::Context;
use lb_l7::{Worker, WorkerOptions};
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

use super::{LISTEN_FDS_ENV, READY_LINE, nofile, sandbox::Sandbox};
use crate::config::Config;

fn inherited_fds() -> anyhow::Result<Option<Vec<RawFd>>> {
    let Ok(list) = std::env::var(LISTEN_FDS_ENV) else {
        return Ok(None);
    };
    let fds = list
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<RawFd>()
                .with_context(|| format!("{LISTEN_FDS_ENV}: `{s}`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(fds))
}

fn pin_to_cpu(index: usize) -> anyhow::Result<usize> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = index % cpus;
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(cpu)
}

/// Runs worker `index` until SIGTERM/SIGINT, then drains. Everything the worker opens (sockets,
/// certificates, the access log, the runtime, the signal handlers) is opened before it enters its
/// sandbox (an unprivileged user, no capabilities, the seccomp allow-list: [`super::sandbox`]).
pub fn main(index: usize, config: Option<&Path>) -> anyhow::Result<()> {
    let mut cfg = Config::load(config)?;
    let lb = &mut cfg.l7.load_balancer;
    let connections = nofile::worker_connections(
        lb.max_connections_per_worker,
        cfg.l7.listener.len(),
        nofile::connections_set(config),
    );
    if connections < lb.max_connections_per_worker {
        info!(
            worker = index,
            connections, "max_connections_per_worker fitted to RLIMIT_NOFILE"
        );
        lb.max_connections_per_worker = connections;
    }
    // While this process has one thread: later threads inherit the emptied capability sets.
    let sandbox = Sandbox::prepare(&cfg.workers).context("preparing the worker sandbox")?;
    if cfg.workers.pin_cpus {
        let cpu = pin_to_cpu(index).context("pinning to a CPU")?;
        info!(worker = index, cpu, "pinned");
    }
    let control_channel = super::control::channel_fd()?;
    let opts = WorkerOptions {
        index,
        listen_fds: inherited_fds()?,
        control_channel,
        // The control plane that talks on the channel checks the targets' health.
        health_from_control_plane: control_channel.is_some(),
        ..WorkerOptions::default()
    };
    // One worker, one core: a single-threaded runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let worker = Worker::bind(Arc::new(cfg.l7), opts)?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        sandbox.enter().context("entering the worker sandbox")?;
        let mut out = std::io::stdout();
        writeln!(out, "{READY_LINE}")?;
        out.flush()?;
        worker
            .serve(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            })
            .await
    })
}
