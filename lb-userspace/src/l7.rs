//! Glue between the control plane and the L7 workers (`lb-l7`): bind the listeners, serve until
//! told to stop, drain.

use std::sync::Arc;

use anyhow::Context;
use lb_l7::{Worker, WorkerOptions};
use tokio::{sync::watch, task::JoinHandle};

use crate::config::Config;

/// The running L7 side.
pub struct L7Handle {
    task: JoinHandle<anyhow::Result<()>>,
}

/// Binds every listener and starts serving; `None` when the configuration has no listener.
pub fn start(cfg: &Config, mut stop: watch::Receiver<bool>) -> anyhow::Result<Option<L7Handle>> {
    if cfg.l7.listener.is_empty() {
        return Ok(None);
    }
    let worker = Worker::bind(Arc::new(cfg.l7.clone()), WorkerOptions::default())
        .context("binding the L7 listeners")?;
    let task = tokio::spawn(worker.serve(async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    Ok(Some(L7Handle { task }))
}

/// Resolves when the workers stop on their own (an error), never while they serve or when
/// there are none.
pub async fn wait(h: &mut Option<L7Handle>) -> anyhow::Result<()> {
    match h {
        Some(h) => match (&mut h.task).await {
            Ok(r) => r.and_then(|()| Err(anyhow::anyhow!("stopped unexpectedly"))),
            Err(e) => Err(anyhow::anyhow!("worker task failed: {e}")),
        },
        None => std::future::pending().await,
    }
}

/// Waits for a drain started by the stop signal.
pub async fn stop(h: L7Handle) {
    match h.task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "L7 worker ended with an error"),
        Err(e) => tracing::warn!(error = %e, "L7 worker task failed"),
    }
}
