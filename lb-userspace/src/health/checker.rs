//! The checker: one task per checked target on the control plane's runtime, each checking its
//! target every interval from its own offset ([`super::schedule`]), at most [`MAX_IN_FLIGHT`]
//! checks at once; one loop folds their outcomes into the [`HealthTable`] and tells the workers
//! ([`Publish`]): state changes at once (every outcome already waiting is folded first, so a
//! burst becomes one message); once a second, the passing checks, the whole table (for workers
//! started since: their initial batch may predate the last change) and the state file, each
//! when there is something new.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use lb_l7::control::TargetHealth;
use tokio::{
    sync::{Semaphore, mpsc, watch},
    task::JoinSet,
    time::{Instant, MissedTickBehavior},
};
use tokio_rustls::TlsConnector;
use tracing::{info, warn};

use super::{
    probe, schedule,
    settings::{Protocol, Settings},
    state::Outcome,
    table::{HealthTable, worker_state},
};

/// Checks in flight at once, whatever the number of targets.
pub const MAX_IN_FLIGHT: usize = 256;
/// How often passing checks are sent to the workers and the state file rewritten.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Where the checker's findings go: the workers (through the control channel) in `weir run`, a
/// recorder in tests.
pub trait Publish: Send + 'static {
    /// Every target's state: what a worker started from now on must get first.
    fn table(&mut self, all: Vec<TargetHealth>);
    /// Targets whose state changed, for every running worker.
    fn changes(&mut self, changed: Vec<TargetHealth>);
    /// Targets whose check passed since the last call (passive health's early return).
    fn passed(&mut self, passed: Vec<(String, SocketAddr)>);
}

struct Observation {
    group: usize,
    target: usize,
    outcome: Outcome,
}

/// Runs the checks until `stop` turns true. With `state_file`, the view is written there
/// (atomically replaced) and removed at the end.
pub async fn run(
    table: HealthTable,
    mut publish: impl Publish,
    state_file: Option<PathBuf>,
    mut stop: watch::Receiver<bool>,
) {
    publish.table(table.worker_states());
    let (tx, mut rx) = mpsc::channel::<Observation>(4096);
    let mut probes = spawn_probes(&table, tx);
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut passed = Vec::new();
    let (mut dirty, mut table_stale) = (true, false);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            Some(first) = rx.recv() => {
                let mut batch = vec![first];
                while let Ok(o) = rx.try_recv() {
                    batch.push(o);
                }
                let changed = fold(&table, batch, &mut passed, &mut dirty);
                if !changed.is_empty() {
                    publish.changes(changed);
                    table_stale = true;
                }
            }
            _ = flush.tick() => {
                if !passed.is_empty() {
                    publish.passed(std::mem::take(&mut passed));
                }
                if std::mem::take(&mut table_stale) {
                    publish.table(table.worker_states());
                }
                if dirty && let Some(path) = &state_file {
                    if let Err(e) = super::file::write(path, &table.snapshot()) {
                        warn!(path = %path.display(), error = %e, "writing the health state file");
                    }
                    dirty = false;
                }
            }
        }
    }
    probes.abort_all();
    while probes.join_next().await.is_some() {}
    if let Some(path) = &state_file {
        let _ = std::fs::remove_file(path);
    }
}

/// One task per checked target.
fn spawn_probes(table: &HealthTable, tx: mpsc::Sender<Observation>) -> JoinSet<()> {
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tls: Option<TlsConnector> = None;
    let mut set = JoinSet::new();
    let now = Instant::now();
    for (gi, g) in table.lock().iter().enumerate() {
        let Some(s) = &g.settings else { continue };
        let tls = (s.protocol == Protocol::Https)
            .then(|| tls.get_or_insert_with(lb_l7::upstream::connector).clone());
        for (ti, t) in g.targets.iter().enumerate() {
            let first = now + schedule::offset(&g.name, t.addr, s.interval);
            set.spawn(probe_loop(
                (gi, ti),
                t.addr,
                s.clone(),
                tls.clone(),
                first,
                limit.clone(),
                tx.clone(),
            ));
        }
    }
    set
}

async fn probe_loop(
    (group, target): (usize, usize),
    addr: SocketAddr,
    s: Arc<Settings>,
    tls: Option<TlsConnector>,
    first: Instant,
    limit: Arc<Semaphore>,
    tx: mpsc::Sender<Observation>,
) {
    // ALB: each check lasts its whole interval; how long a target takes to answer does not
    // move the next one.
    let mut ticks = tokio::time::interval_at(first, s.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Ok(permit) = limit.acquire().await else {
            return;
        };
        let outcome = probe::check(addr, &s, tls.as_ref()).await;
        drop(permit);
        let o = Observation {
            group,
            target,
            outcome,
        };
        if tx.send(o).await.is_err() {
            return;
        }
    }
}

/// Applies a batch of outcomes; returns the targets whose state changed.
fn fold(
    table: &HealthTable,
    batch: Vec<Observation>,
    passed: &mut Vec<(String, SocketAddr)>,
    dirty: &mut bool,
) -> Vec<TargetHealth> {
    let mut groups = table.lock();
    let mut changed = Vec::new();
    for o in batch {
        let g = &mut groups[o.group];
        let Some(s) = g.settings.clone() else {
            continue;
        };
        let t = &mut g.targets[o.target];
        let before = (t.health.state, t.health.reason.clone());
        if o.outcome.passed() {
            passed.push((g.name.clone(), t.addr));
        }
        if t.health.observe(&o.outcome, s.thresholds) {
            info!(
                target_group = %g.name,
                target = %t.addr,
                from = %before.0.name(),
                to = %t.health.state.name(),
                reason = %t.health.reason.as_ref().map_or("", |r| r.code()),
                description = t.health.reason.as_ref().map(|r| r.description()).unwrap_or_default(),
                "target health"
            );
            changed.push(worker_state(&g.name, t));
        }
        *dirty |= before != (t.health.state, t.health.reason.clone());
        match HealthTable::update_fail_open(&mut groups, o.group) {
            Some(true) => warn!(
                target_group = %groups[o.group].name,
                "no healthy target: failing open, requests go to every target of the group"
            ),
            Some(false) => info!(
                target_group = %groups[o.group].name,
                "a target is healthy again: no longer failing open"
            ),
            None => {}
        }
    }
    changed
}
