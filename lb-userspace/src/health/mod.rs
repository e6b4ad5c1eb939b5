//! Active health checks, once per host in the control plane (`weir run`), their verdicts sent
//! to every worker over the control channel.
//!
//! - [`state`]: one target's state, reason code and description (ALB's
//!   `describe-target-health`), moved by check outcomes and thresholds. Pure.
//! - [`settings`]: `[target_group.health_check]` compiled (protocol, port, matcher, …). Pure.
//! - [`schedule`]: each target's phase within the interval. Pure.
//! - [`probe`]: one check (TCP connect, or HTTP/HTTPS `GET` and the response head). I/O.
//! - [`checker`]: the tasks, the fold into the table, what is published. I/O.
//! - [`table`]: the [`HealthTable`] and its view ([`HealthTable::snapshot`]).
//! - [`file`]: the view as a file under `/run/weir/`, one per daemon (the admin API serves the
//!   same view).

pub mod checker;
pub mod file;
pub mod probe;
pub mod schedule;
pub mod settings;
pub mod state;
pub mod table;
pub mod workers;

pub use checker::Publish;
pub use table::{HealthSnapshot, HealthTable};

use std::sync::Arc;

use tokio::{sync::watch, task::JoinHandle};

use crate::workers::control::ControlHandle;

/// Tells a running checker the configuration changed (a reload).
#[derive(Clone)]
pub struct Reconfigure(Arc<watch::Sender<checker::Generation>>);

impl Reconfigure {
    /// The checker follows `cfg` (validated), configuration generation `generation`: groups
    /// and targets added, removed or changed.
    pub fn apply(&self, generation: u64, cfg: &lb_l7::L7Config) {
        self.0.send_replace((generation, Arc::new(cfg.clone())));
    }
}

/// The running checker, as [`start`] returns it.
pub struct Started {
    /// The view, for any other reader.
    pub table: HealthTable,
    /// Gives the checker a new configuration.
    pub reconfigure: Reconfigure,
    /// The checker's task.
    pub task: JoinHandle<()>,
    /// This daemon's state file ([`file::path`]); `None` when it writes none.
    pub file: Option<std::path::PathBuf>,
}

/// Starts the checker for `cfg`'s target groups on the current runtime: its findings go to
/// every worker through `control` and to this daemon's state file ([`file::path`]: per
/// interface with `iface`, `weir run --iface`'s; else this namespace's L7-only daemon's; none
/// if another running weir keeps it after [`file::CLAIM_WAIT`]); it stops when `stop` turns
/// true; the workers' reports in `reports` end the drains of the targets they are done with.
pub fn start(
    cfg: &lb_l7::L7Config,
    iface: Option<&str>,
    control: ControlHandle,
    reports: crate::metrics::store::Store,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Started> {
    let table = HealthTable::new(cfg)?;
    // Generation 1, the table's first state (rebuilt at each change after it).
    let (configs_tx, configs) = watch::channel((1, Arc::new(cfg.clone())));
    let path = match file::path(iface) {
        Ok(p) => match file::claim(&p, file::CLAIM_WAIT) {
            Err(w) => {
                tracing::warn!(path = %p.display(), pid = w.pid, "the health state file is another running weir's: this daemon writes none (`weir targets health` shows its states)");
                None
            }
            Ok(()) => {
                tracing::info!(path = %p.display(), "health state file");
                Some(p)
            }
        },
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "no health state file: `weir targets health` shows the states");
            None
        }
    };
    let task = tokio::spawn(checker::run(
        table.clone(),
        workers::ToWorkers(control),
        path.clone(),
        stop,
        configs,
        Some(reports),
    ));
    Ok(Started {
        table,
        reconfigure: Reconfigure(Arc::new(configs_tx)),
        task,
        file: path,
    })
}
