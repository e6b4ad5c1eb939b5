//! The admin API's delegates from the rest of `weir run`: the health checker's table (through
//! the L7 side), the XDP attachments, the request channel to the main loop (reloads, run-time
//! target changes) and the generation in force (`crate::reload`). One call from the control
//! plane's main loop ([`serve`]) starts the server with all of them.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use super::{
    Bound, Delegates, Server,
    daemon::{BoxFuture, Current, CurrentSource, HealthView, ReloadDelegate, TargetDelegate},
    error::ApiError,
    model::XdpInterface,
};
use crate::{
    config::Config,
    l7::L7Handle,
    overlay::{OverlayError, Source, TargetChange},
    reload::{InForce, ReloadHandle, TargetsError},
};

/// The health checker's view (`crate::health::HealthTable::snapshot`) as the API's JSON.
fn health(l7: &L7Handle) -> HealthView {
    let table = l7.health.clone();
    Arc::new(move || serde_json::to_value(table.snapshot()).unwrap_or_default())
}

/// What `crate::reload` reports when the main loop is gone.
const STOPPING: &str = "weir is stopping";

/// A reload's refusal as the API's error: the daemon stopping (503), the maps failing to take a
/// validated file (500), or the file's located problems (400).
pub fn reload_error(why: String) -> ApiError {
    if why == STOPPING {
        ApiError::unavailable(why)
    } else if why.contains("applying the XDP maps") {
        ApiError::internal(why)
    } else {
        ApiError::invalid_configuration(why.trim_end().to_string(), Vec::new())
    }
}

/// `[admin]` cannot change on reload: `reload::unchangeable` refuses it (located), SIGHUP's too.
struct Reload(ReloadHandle);

impl ReloadDelegate for Reload {
    fn reload(&self) -> BoxFuture<'_, Result<u64, ApiError>> {
        Box::pin(async move { self.0.reload().await.map_err(reload_error) })
    }
}

/// The generation in force as the main loop records it after every applied generation (reloads,
/// SIGHUP's included, and run-time target changes).
impl CurrentSource for InForce {
    fn current(&self) -> Current {
        let now = self.now();
        Current {
            generation: now.generation,
            config: now.config,
            reload_refused: now.refused,
        }
    }
}

/// A refused target change as the API's error (ALB's codes).
pub fn targets_error(e: TargetsError) -> ApiError {
    match e {
        TargetsError::Refused(OverlayError::TargetGroupNotFound(g)) => {
            ApiError::target_group_not_found(&g)
        }
        TargetsError::Refused(OverlayError::InvalidTarget(why)) => ApiError::invalid_target(why),
        TargetsError::Stopping => ApiError::unavailable(e.to_string()),
    }
}

/// Register and deregister through the main loop (`crate::overlay`); the list from the
/// generation in force.
struct Targets {
    handle: ReloadHandle,
    in_force: InForce,
}

impl Targets {
    fn send(&self, change: TargetChange) -> BoxFuture<'_, Result<u64, ApiError>> {
        Box::pin(async move {
            self.handle
                .change_targets(change)
                .await
                .map_err(targets_error)
        })
    }
}

impl TargetDelegate for Targets {
    fn register(
        &self,
        group: &str,
        targets: Vec<SocketAddr>,
    ) -> BoxFuture<'_, Result<u64, ApiError>> {
        self.send(TargetChange::Register {
            group: group.into(),
            targets,
        })
    }

    fn deregister(
        &self,
        group: &str,
        targets: Vec<SocketAddr>,
    ) -> BoxFuture<'_, Result<u64, ApiError>> {
        self.send(TargetChange::Deregister {
            group: group.into(),
            targets,
        })
    }

    fn source(&self, group: &str, target: SocketAddr) -> Option<Source> {
        let now = self.in_force.now();
        now.overlay.source(&now.file, group, target)
    }
}

/// Serves the bound admin socket with what the control plane has: called once the workers and
/// the health checker run and reload requests are taken.
pub fn serve(
    bound: Option<Bound>,
    cfg: &Config,
    config_path: Option<PathBuf>,
    xdp: Vec<XdpInterface>,
    l7: Option<&L7Handle>,
    reload: ReloadHandle,
    in_force: InForce,
) -> anyhow::Result<Option<Server>> {
    let metrics = crate::metrics::source::Source::new(
        l7,
        xdp.first().map(|x| x.iface.clone()),
        in_force.clone(),
    );
    let delegates = Delegates {
        health: l7.map(health),
        metrics: Some(Arc::new(move || metrics.json())),
        certificates: Some({
            let in_force = in_force.clone();
            Arc::new(move || in_force.now().certificates)
        }),
        workers: l7.is_some(),
        health_file: l7.and_then(|h| h.health_file.clone()),
        discovery: l7.map(|h| h.discovery.clone()),
        reports: l7.map(|h| h.metrics.clone()),
        reload: Some(Arc::new(Reload(reload.clone()))),
        // Without workers (`--no-l7`) there is nothing to register a target with.
        targets: l7.map(|_| -> Arc<dyn TargetDelegate> {
            Arc::new(Targets {
                handle: reload,
                in_force: in_force.clone(),
            })
        }),
        current: Some(Arc::new(in_force)),
    };
    super::serve(bound, cfg, config_path, xdp, delegates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_refusals_keep_their_reason_and_get_their_code() {
        let e = reload_error(
            "1 configuration error:\n  /etc/w.toml:4:1: field `listener`: bad\n".into(),
        );
        assert_eq!((e.status, e.code), (400, "InvalidConfiguration"));
        assert!(e.message.contains("/etc/w.toml:4:1: field `listener`"));
        assert_eq!(reload_error(STOPPING.into()).status, 503);
        let e = reload_error("generation 3: applying the XDP maps: EPERM".into());
        assert_eq!(e.code, "InternalError");
    }

    #[test]
    fn target_refusals_get_albs_codes() {
        let e = targets_error(OverlayError::TargetGroupNotFound("g".into()).into());
        assert_eq!((e.status, e.code), (404, "TargetGroupNotFound"));
        let e = targets_error(
            OverlayError::InvalidTarget("target 10.0.0.1:80 is not registered".into()).into(),
        );
        assert_eq!((e.status, e.code), (400, "InvalidTarget"));
        assert!(e.message.contains("not registered"));
        assert_eq!(targets_error(TargetsError::Stopping).status, 503);
    }
}
