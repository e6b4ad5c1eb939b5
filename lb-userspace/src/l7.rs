//! Glue between the control plane and the L7 workers (`lb-l7`).
//! INTERIM: the worker crate is being built; until then no L7 listener is served.

use tokio::sync::watch;

use crate::config::Config;

pub struct L7Handle {
    _stop: watch::Receiver<bool>,
}

pub fn start(_cfg: &Config, stop: watch::Receiver<bool>) -> anyhow::Result<L7Handle> {
    Ok(L7Handle { _stop: stop })
}

/// Resolves when the workers stop on their own (never, while there are none).
pub async fn wait(_h: &Option<L7Handle>) -> anyhow::Result<()> {
    std::future::pending().await
}

pub async fn stop(_h: L7Handle) {}
