//! `weir worker`: one L7 worker process, started by the supervisor with its sockets inherited.

use std::{io::Write, os::fd::RawFd, path::Path, sync::Arc};

use anyhow::Context;
use lb_l7::{Worker, WorkerOptions};
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

use super::{LISTEN_FDS_ENV, READY_LINE, nofile, sandbox::Sandbox};
use crate::config::{Config, WorkerSettings};
use lb_l7::control::ControlMsg;

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

/// What a worker runs: its `[workers]` settings and L7 configuration, and where they came from.
struct Setup {
    workers: WorkerSettings,
    l7: lb_l7::config::L7Config,
    /// Whether the file sets `max_connections_per_worker` itself.
    connections_set: bool,
    /// From the control plane: the generation and its files, and the channel's initial batch.
    generation: Option<(u64, std::collections::BTreeMap<String, String>)>,
    batch: Option<Vec<ControlMsg>>,
}

/// Under `weir run`: the configuration the control plane sent (its current generation), read
/// from the control channel's initial batch; never the file on disk, which may have changed
/// since it was validated. The control plane validated it, so it is not validated here.
fn from_control_plane(fd: RawFd) -> anyhow::Result<Setup> {
    use std::os::fd::{FromRawFd as _, IntoRawFd as _};
    // SAFETY: the control plane passed this fd to this process for the control channel; it is
    // released again below for `Worker::bind`, which takes it.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let batch = lb_l7::control::read_initial(&owned);
    let _ = owned.into_raw_fd();
    let batch = batch?;
    let g = batch
        .iter()
        .rev()
        .find_map(|m| match m {
            ControlMsg::Config(g) => Some(g.clone()),
            _ => None,
        })
        .context("the control plane sent no configuration at start")?;
    #[derive(serde::Deserialize)]
    struct WorkersSection {
        #[serde(default)]
        workers: WorkerSettings,
    }
    let w: WorkersSection = toml::from_str(&g.toml).context("[workers] as sent by weir run")?;
    Ok(Setup {
        workers: w.workers,
        l7: g.l7()?,
        connections_set: nofile::connections_set_in(&g.toml),
        generation: Some((g.generation, g.files)),
        batch: Some(batch),
    })
}

/// Runs worker `index` until SIGTERM/SIGINT, then drains. Everything the worker opens (sockets,
/// certificates, the access log, the runtime, the signal handlers) is opened before it enters its
/// sandbox (an unprivileged user, no capabilities, the seccomp allow-list: [`super::sandbox`]).
/// Under `weir run` (a control channel) the configuration comes from the control plane and
/// `config` only names the file in the process list; without one, `config` is read.
pub fn main(index: usize, config: Option<&Path>) -> anyhow::Result<()> {
    ignore_control_plane_signals()?;
    let control_channel = super::control::channel_fd()?;
    let mut setup = match control_channel {
        Some(fd) => from_control_plane(fd)?,
        None => {
            let cfg = Config::load(config)?;
            Setup {
                workers: cfg.workers,
                l7: cfg.l7,
                connections_set: nofile::connections_set(config),
                generation: None,
                batch: None,
            }
        }
    };
    let lb = &mut setup.l7.load_balancer;
    let connections = nofile::worker_connections(
        lb.max_connections_per_worker,
        setup.l7.listener.len(),
        setup.connections_set,
    );
    if connections < lb.max_connections_per_worker {
        info!(
            worker = index,
            connections, "max_connections_per_worker fitted to RLIMIT_NOFILE"
        );
        lb.max_connections_per_worker = connections;
    }
    let max_target_connections =
        nofile::worker_target_connections(lb.max_connections_per_worker, setup.l7.listener.len());
    info!(
        worker = index,
        clients = lb.max_connections_per_worker,
        targets = ?max_target_connections,
        "connection caps within RLIMIT_NOFILE"
    );
    if let Some((g, _)) = &setup.generation {
        info!(
            worker = index,
            generation = g,
            "configuration from the control plane"
        );
    }
    // While this process has one thread: later threads inherit the emptied capability sets.
    let sandbox = Sandbox::prepare(&setup.workers).context("preparing the worker sandbox")?;
    if setup.workers.pin_cpus {
        let cpu = pin_to_cpu(index).context("pinning to a CPU")?;
        info!(worker = index, cpu, "pinned");
    }
    let opts = WorkerOptions {
        index,
        listen_fds: inherited_fds()?,
        control_channel,
        // The control plane that talks on the channel checks the targets' health.
        health_from_control_plane: control_channel.is_some(),
        generation: setup.generation,
        initial_batch: setup.batch,
        socket_channel: super::control::sockets_fd()?,
        // After idle connections parked in bulk, and after the sweep released the spares a
        // burst left (`lb_l7::spares`).
        release_memory: Some(crate::alloc::release_memory),
        max_target_connections,
        ..WorkerOptions::default()
    };
    // One worker, one core: a single-threaded runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let access_log = std::sync::OnceLock::new();
    let log_slot = &access_log;
    let served = rt.block_on(async move {
        let worker = Worker::bind(Arc::new(setup.l7), opts)?;
        let _ = log_slot.set(worker.access_log());
        // The reports to the control plane (`crate::metrics`), opened before the sandbox.
        let reports = match crate::metrics::push::fd_from_env()? {
            Some(fd) => Some(crate::metrics::push::Pusher::start(
                fd,
                worker.metrics_handle(),
            )?),
            None => None,
        };
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        sandbox.enter().context("entering the worker sandbox")?;
        let mut out = std::io::stdout();
        writeln!(out, "{READY_LINE}")?;
        out.flush()?;
        let served = worker
            .serve(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            })
            .await;
        if let Some(r) = reports {
            r.finish().await;
        }
        served
    });
    // The requests still in flight at the drain deadline are dropped with the runtime's tasks;
    // each writes its access-log line as it goes (`lb_l7::access_log::Pending`), and the lines
    // must reach the file before the process exits.
    drop(rt);
    if let Some(log) = access_log.get() {
        log.flush(std::time::Duration::from_secs(2));
    }
    served
}

/// SIGHUP (reload), SIGUSR1 (reopen the access log) and SIGUSR2 (HAProxy's reload, refused
/// with a warning) are the control plane's to handle; a worker would die of them (their default
/// action). `killall -HUP weir`, or logrotate's `systemctl kill -s USR1 weir`, which signals
/// every process of the unit, reach the workers too: they ignore them, and the control plane
/// tells them what to do.
fn ignore_control_plane_signals() -> anyhow::Result<()> {
    use nix::sys::signal::{SigHandler, Signal, signal};
    for s in [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2] {
        // SAFETY: SIG_IGN runs no code of ours in a signal context.
        unsafe { signal(s, SigHandler::SigIgn) }.with_context(|| format!("ignoring {s}"))?;
    }
    Ok(())
}
