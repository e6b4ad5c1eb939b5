//! Glue between the control plane's main loop and the L7 worker processes
//! ([`crate::workers::Supervisor`]).

use std::{path::PathBuf, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use crate::{
    config::Config,
    workers::{Supervisor, control::ControlHandle},
};

/// The running L7 side.
pub struct L7Handle {
    task: JoinHandle<anyhow::Result<()>>,
    /// Talks to every worker (health states, …): see `workers::control`.
    pub control: ControlHandle,
    /// The targets' health as the control plane's checks find it (`crate::health`).
    pub health: crate::health::HealthTable,
    /// Gives the checker a reloaded configuration.
    pub health_config: crate::health::Reconfigure,
    /// The workers' metrics, summed (`crate::metrics`).
    pub metrics: crate::metrics::store::Store,
    /// The health state file this daemon writes (`crate::health::file`), if any.
    pub health_file: Option<PathBuf>,
    /// DNS discovery's records, for the admin API and the metrics (`crate::discovery::view`;
    /// its tasks, started by the main loop, write them).
    pub discovery: crate::discovery::view::Board,
    /// How many workers are ready (`Supervisor::ready_workers`), of [`Self::workers`].
    pub live: watch::Receiver<usize>,
    pub workers: usize,
    health_task: JoinHandle<()>,
}

/// Binds every listener's sockets and starts the workers, which get `config_msg` (the
/// configuration generation in force, `crate::reload`) at start, and the health checker (its
/// state file is `iface`'s, `weir run --iface`'s, or the L7-only daemon's); `None` without
/// listeners.
pub fn start(
    cfg: &Config,
    iface: Option<&str>,
    config_path: Option<PathBuf>,
    config_msg: lb_l7::control::ControlMsg,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<L7Handle>> {
    if cfg.l7.listener.is_empty() {
        return Ok(None);
    }
    let mut supervisor = Supervisor::new(cfg, config_path)?;
    supervisor.set_sticky(crate::reload::STICKY_KEY, &config_msg);
    // Workers drain for the configured time; give them a little more before SIGKILL.
    let drain =
        Duration::from_secs(cfg.l7.load_balancer.drain_timeout_seconds) + Duration::from_secs(2);
    let control = supervisor.control_handle();
    let metrics = supervisor.metrics_store();
    let (live, workers) = (supervisor.ready_workers(), supervisor.workers());
    let health = crate::health::start(
        &cfg.l7,
        iface,
        control.clone(),
        metrics.clone(),
        stop.clone(),
    )?;
    let task = tokio::spawn(supervisor.run(stop, drain));
    Ok(Some(L7Handle {
        task,
        control,
        health: health.table,
        health_config: health.reconfigure,
        metrics,
        health_file: health.file,
        discovery: Default::default(),
        live,
        workers,
        health_task: health.task,
    }))
}

/// Resolves if the supervisor stops on its own (an error), never while it runs or when there is
/// none.
pub async fn wait(h: &mut Option<L7Handle>) -> anyhow::Result<()> {
    match h {
        Some(h) => match (&mut h.task).await {
            Ok(r) => r.and_then(|()| Err(anyhow::anyhow!("stopped unexpectedly"))),
            Err(e) => Err(anyhow::anyhow!("supervisor task failed: {e}")),
        },
        None => std::future::pending().await,
    }
}

/// Waits for the workers to drain after the stop signal.
pub async fn stop(h: L7Handle) {
    // The checker stops on the same signal (and removes its state file).
    let _ = h.health_task.await;
    match h.task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "L7 supervisor ended with an error"),
        Err(e) => tracing::warn!(error = %e, "L7 supervisor task failed"),
    }
}
