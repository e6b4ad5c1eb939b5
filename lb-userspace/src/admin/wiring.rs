//! The admin API's delegates from the rest of `weir run`: the health checker's table (through
//! the L7 side), the XDP attachments, the reload request channel and the generation record
//! (`crate::reload`). One call from the control plane's main loop ([`serve`]) starts the server
//! with all of them.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use super::{
    Bound, Delegates, Server,
    daemon::{BoxFuture, Current, CurrentSource, HealthView, ReloadDelegate},
    error::ApiError,
    model::XdpInterface,
};
use crate::{config::Config, l7::L7Handle, reload::ReloadHandle};

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

/// The generation in force as the main loop records it after every applied reload, SIGHUP's
/// included (`crate::reload::write_status`), and the file re-read when it moved.
struct Recorded {
    status_file: PathBuf,
    config_path: Option<PathBuf>,
    cache: Mutex<Current>,
}

/// The `generation` of a status record (`{"generation": N, …}`).
pub fn recorded_generation(text: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(text).ok()?["generation"].as_u64()
}

impl CurrentSource for Recorded {
    fn current(&self) -> Current {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::fs::read_to_string(&self.status_file)
            .ok()
            .and_then(|t| recorded_generation(&t));
        if let Some(g) = now.filter(|g| *g != cache.generation) {
            // The file that generation was made from; should it have been edited (and broken)
            // since, the last configuration read stays, under its own generation.
            if let Ok(cfg) = Config::load(self.config_path.as_deref()) {
                *cache = Current {
                    generation: g,
                    config: Arc::new(cfg),
                };
            }
        }
        cache.clone()
    }
}

fn recorded(cfg: &Config, config_path: Option<&Path>) -> Arc<dyn CurrentSource> {
    Arc::new(Recorded {
        status_file: crate::reload::status_path(),
        config_path: config_path.map(Path::to_path_buf),
        cache: Mutex::new(Current {
            generation: 1,
            config: Arc::new(cfg.clone()),
        }),
    })
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
) -> anyhow::Result<Option<Server>> {
    let delegates = Delegates {
        health: l7.map(health),
        workers: l7.is_some(),
        reload: Some(Arc::new(Reload(reload))),
        current: Some(recorded(cfg, config_path.as_deref())),
        ..Delegates::default()
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
    fn the_recorded_generation_is_read_from_the_status_record() {
        assert_eq!(
            recorded_generation(r#"{"pid":1,"generation":7,"config":"x"}"#),
            Some(7)
        );
        assert_eq!(recorded_generation("garbage"), None);
    }
}
