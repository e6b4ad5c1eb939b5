//! The admin API's delegates from the rest of `weir run`: the health checker's table (through
//! the L7 side), the XDP attachments. One call from the control plane's main loop
//! ([`serve`]) starts the server with all of them.

use std::{path::PathBuf, sync::Arc};

use super::{Bound, Delegates, Server, daemon::HealthView, model::XdpInterface};
use crate::{config::Config, l7::L7Handle};

/// The health checker's view (`crate::health::HealthTable::snapshot`) as the API's JSON.
fn health(l7: &L7Handle) -> HealthView {
    let table = l7.health.clone();
    Arc::new(move || serde_json::to_value(table.snapshot()).unwrap_or_default())
}

/// Serves the bound admin socket with what the control plane has: called once the workers and
/// the health checker run.
pub fn serve(
    bound: Option<Bound>,
    cfg: &Config,
    config_path: Option<PathBuf>,
    xdp: Vec<XdpInterface>,
    l7: Option<&L7Handle>,
) -> anyhow::Result<Option<Server>> {
    let delegates = Delegates {
        health: l7.map(health),
        ..Delegates::default()
    };
    super::serve(bound, cfg, config_path, xdp, delegates)
}
