//! What the views are assembled from in a running `weir run`: the workers' [`Store`], the health
//! checker's table, the listeners, the generation in force, and the XDP counters read from the
//! interface's pinned maps (as `weir stats` reads them) at each request.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{
    assemble::{self, L7Input, XdpInput},
    store::Store,
    view::MetricsView,
};
use crate::{discovery::view::Board, health::table::HealthTable, l7::L7Handle, reload::InForce};

/// Cheap to clone; shared by the Prometheus server and the admin API.
#[derive(Clone)]
pub struct Source {
    /// The workers' sums and the health table (`None`: no L7 workers run).
    pub l7: Option<(Store, HealthTable)>,
    /// The interface whose XDP counters are read (`None`: no XDP tier).
    pub iface: Option<String>,
    /// The generation in force and its configuration (the listeners), as the main loop records
    /// them at each applied reload.
    pub in_force: InForce,
    /// DNS discovery's records (`None`: no L7 workers, so no discovery).
    pub discovery: Option<Board>,
}

impl Source {
    pub fn new(l7: Option<&L7Handle>, iface: Option<String>, in_force: InForce) -> Source {
        Source {
            l7: l7.map(|h| (h.metrics.clone(), h.health.clone())),
            iface,
            in_force,
            discovery: l7.map(|h| h.discovery.clone()),
        }
    }

    /// The aggregate now. An XDP tier whose maps cannot be read (it is stopping) is left out.
    pub fn view(&self) -> MetricsView {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let counters = self
            .iface
            .as_deref()
            .and_then(|i| match crate::stats::read_pinned(i) {
                Ok(c) => Some((i, c)),
                Err(e) => {
                    tracing::debug!(error = %format!("{e:#}"), "metrics: XDP counters unreadable");
                    None
                }
            });
        let xdp = counters.as_ref().map(|(iface, c)| XdpInput {
            iface,
            counters: c,
            host: crate::xdp::syn::host_json(iface),
        });
        let in_force = self.in_force.now();
        let l7 = self.l7.as_ref().map(|(store, health)| L7Input {
            store,
            health: health.snapshot(),
            listeners: &in_force.config.l7.listener,
            certificates: &in_force.certificates,
        });
        let mut v = assemble::view(in_force.generation, now, l7, xdp);
        if let Some(b) = &self.discovery {
            v.discovery = assemble::discovery(&b.snapshot());
        }
        v
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(self.view()).unwrap_or_default()
    }
}
