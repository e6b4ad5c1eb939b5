//! The checker: one task per checked target on the control plane's runtime, each checking its
//! target every interval from its own offset ([`super::schedule`]), at most [`MAX_IN_FLIGHT`]
//! checks at once; one loop folds their outcomes into the [`HealthTable`] and tells the workers
//! ([`Publish`]): state changes at once (every outcome already waiting is folded first, so a
//! burst becomes one message); once a second, the passing checks, the whole table (for workers
//! started since: their initial batch may predate the last change) and the state file, each
//! when there is something new. It ends the `draining` of the targets every worker is done
//! with, by the workers' reports ([`DrainReports`]), as soon as those change (and once a second,
//! and after a reload): the view shows it at once, the state file at the next second.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use lb_l7::{L7Config, control::TargetHealth, generation::DrainReport};
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

/// The workers' reports of their draining targets: the last one of every worker process running
/// now, `None` for one that has not reported yet (`weir run`: their metrics reports,
/// `crate::metrics::store::Store`).
pub trait DrainReports: Send + Sync + 'static {
    fn reports(&self) -> Vec<Option<DrainReport>>;
    /// Resolves once [`DrainReports::reports`] may end a drain it did not before (a report
    /// changed, a worker process ended).
    fn changed(&self) -> impl Future<Output = ()> + Send;
}

/// A configuration generation for the checker: its number and L7 sections.
pub type Generation = (u64, Arc<L7Config>);

struct Observation {
    group: usize,
    target: usize,
    outcome: Outcome,
}

/// Runs the checks until `stop` turns true. With `state_file`, the view is written there
/// (atomically replaced) and removed at the end. A configuration sent on `configs` (a reload)
/// replaces the checked groups and targets ([`HealthTable::rebuild`]). With `drains`, a
/// removed target stops `draining` once every worker is done with it; without, at its
/// deadline only.
pub async fn run(
    table: HealthTable,
    mut publish: impl Publish,
    state_file: Option<PathBuf>,
    mut stop: watch::Receiver<bool>,
    mut configs: watch::Receiver<Generation>,
    drains: Option<impl DrainReports>,
) {
    publish.table(table.worker_states());
    let (tx, mut rx) = mpsc::channel::<Observation>(4096);
    let mut probes = spawn_probes(&table, tx);
    let mut follow = true;
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut passed = Vec::new();
    let (mut dirty, mut table_stale) = (true, false);
    loop {
        let mut rebuilt = false;
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
            r = configs.changed(), if follow => {
                if r.is_err() {
                    follow = false;
                    continue;
                }
                let (generation, cfg) = configs.borrow_and_update().clone();
                if let Err(e) = table.rebuild(&cfg, generation) {
                    warn!(error = %format!("{e:#}"), "health checks keep the previous configuration");
                    continue;
                }
                rebuilt = true;
            }
            _ = drain_news(drains.as_ref()) => {
                dirty |= end_drains(&table, drains.as_ref());
            }
            _ = flush.tick() => {
                dirty |= table.prune_drained(std::time::Instant::now());
                dirty |= end_drains(&table, drains.as_ref());
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
        if rebuilt {
            // The old tasks' outcomes name the old table's indices: their channel goes too.
            probes.abort_all();
            while probes.join_next().await.is_some() {}
            let (tx, fresh) = mpsc::channel::<Observation>(4096);
            rx = fresh;
            probes = spawn_probes(&table, tx);
            publish.table(table.worker_states());
            // The workers may have reported the new generation, and dropped its targets,
            // before the table had them.
            end_drains(&table, drains.as_ref());
            dirty = true;
            info!("health checks follow the new configuration");
        }
    }
    probes.abort_all();
    while probes.join_next().await.is_some() {}
    if let Some(path) = &state_file {
        super::file::remove_own(path);
    }
}

/// Resolves when `drains` may end a drain; never without them.
async fn drain_news(drains: Option<&impl DrainReports>) {
    match drains {
        Some(d) => d.changed().await,
        None => std::future::pending().await,
    }
}

/// Ends the drains every worker is done with ([`HealthTable::finish_drained`]); `true` if any.
fn end_drains(table: &HealthTable, drains: Option<&impl DrainReports>) -> bool {
    let Some(d) = drains else {
        return false;
    };
    let done = table.finish_drained(&d.reports());
    for (group, target) in &done {
        info!(target_group = %group, target = %target, "target drained: no worker has a request in flight to it");
    }
    !done.is_empty()
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
        if o.outcome.passed() {
            passed.push((g.name.clone(), t.addr));
        }
        let before = (t.health.state, t.health.reason.clone());
        if !t.health.observe(&o.outcome, s.thresholds) {
            *dirty |= t.health.reason != before.1;
            continue;
        }
        *dirty = true;
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
        fail_open_news(&mut groups, o.group);
    }
    changed
}

/// After a state change in group `gi`: says so when the group starts or stops failing open.
fn fail_open_news(groups: &mut [super::table::GroupEntry], gi: usize) {
    match HealthTable::update_fail_open(groups, gi) {
        Some(true) => warn!(
            target_group = %groups[gi].name,
            "no healthy target: failing open, requests go to every target of the group"
        ),
        Some(false) => info!(
            target_group = %groups[gi].name,
            "a target is healthy: the group no longer fails open"
        ),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[derive(Default)]
    struct Seen {
        tables: usize,
        changes: Vec<TargetHealth>,
        passed: Vec<SocketAddr>,
    }

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Seen>>);

    impl Publish for Recorder {
        fn table(&mut self, _all: Vec<TargetHealth>) {
            self.0.lock().unwrap().tables += 1;
        }
        fn changes(&mut self, changed: Vec<TargetHealth>) {
            self.0.lock().unwrap().changes.extend(changed);
        }
        fn passed(&mut self, passed: Vec<(String, SocketAddr)>) {
            let mut s = self.0.lock().unwrap();
            s.passed.extend(passed.into_iter().map(|(_, a)| a));
        }
    }

    /// A target answering every check `200`.
    async fn answering() -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    let _ = s.read(&mut b).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn verdicts_and_passes_reach_the_workers_and_the_file() {
        let up = answering().await;
        let down = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap(); // closed again: refused
        let cfg: lb_l7::L7Config = toml::from_str(&format!(
            "[[listener]]\nport = 80\ndefault_action = {{ type = \"forward\", target_group = \"g\" }}\n\
             [[target_group]]\nname = \"g\"\ntarget = [{{ id = \"127.0.0.1\", port = {} }}, {{ id = \"127.0.0.1\", port = {} }}]",
            up.port(),
            down.port()
        ))
        .unwrap();
        let table = HealthTable::new(&cfg).unwrap();
        {
            // Faster than the configuration allows (interval ≥ 5 s), to keep the test short.
            let mut g = table.lock();
            let s = Arc::make_mut(g[0].settings.as_mut().unwrap());
            s.interval = Duration::from_millis(200);
            s.timeout = Duration::from_millis(150);
        }
        let file = std::env::temp_dir().join(format!("weir-checker-{}.json", std::process::id()));
        let (stop_tx, stop) = watch::channel(false);
        let rec = Recorder::default();
        let (_configs_tx, configs) = watch::channel((1, Arc::new(cfg.clone())));
        let task = tokio::spawn(run(
            table.clone(),
            rec.clone(),
            Some(file.clone()),
            stop,
            configs,
            None::<crate::metrics::store::Store>,
        ));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(file.exists(), "the state file is written");
        let _ = stop_tx.send(true);
        task.await.unwrap();
        assert!(!file.exists(), "and removed at the end");

        let seen = rec.0.lock().unwrap();
        let change = |a: SocketAddr| {
            seen.changes
                .iter()
                .find(|c| c.target == a)
                .map(|c| (c.state.clone(), c.reason.clone()))
        };
        assert_eq!(change(up), Some(("healthy".into(), None)));
        assert_eq!(
            change(down),
            Some(("unhealthy".into(), Some("Target.FailedHealthChecks".into())))
        );
        assert_eq!(seen.changes.len(), 2, "one change each");
        assert!(seen.passed.len() >= 4 && seen.passed.iter().all(|&a| a == up));
        assert!(seen.tables >= 2, "the table at start and after the changes");
        let snap = table.snapshot();
        assert!(!snap.target_groups[0].fail_open);
        assert_eq!(snap.target_groups[0].healthy_host_count, 1);
    }

    /// Drain reports the test sets.
    #[derive(Clone, Default)]
    struct Reports(Arc<(Mutex<Vec<Option<DrainReport>>>, tokio::sync::Notify)>);

    impl DrainReports for Reports {
        fn reports(&self) -> Vec<Option<DrainReport>> {
            self.0.0.lock().unwrap().clone()
        }
        fn changed(&self) -> impl Future<Output = ()> + Send {
            self.0.1.notified()
        }
    }

    /// A checker under test: its stop, its configurations and its task.
    struct Running {
        stop: watch::Sender<bool>,
        configs: watch::Sender<(u64, Arc<lb_l7::L7Config>)>,
        task: tokio::task::JoinHandle<()>,
    }

    /// The checker over `table`, on generation 1 = `cfg`, hearing `reports`.
    fn spawn_checker(table: &HealthTable, cfg: &lb_l7::L7Config, reports: &Reports) -> Running {
        let (stop_tx, stop) = watch::channel(false);
        let (configs_tx, configs) = watch::channel((1, Arc::new(cfg.clone())));
        let task = tokio::spawn(run(
            table.clone(),
            Recorder::default(),
            None,
            stop,
            configs,
            Some(reports.clone()),
        ));
        Running {
            stop: stop_tx,
            configs: configs_tx,
            task,
        }
    }

    /// Group `g` with targets 10.0.0.1 and 10.0.0.2, then with 10.0.0.1 alone.
    fn two_then_one() -> (lb_l7::L7Config, lb_l7::L7Config) {
        let text = |targets: &str| {
            format!(
                "[[listener]]\nport = 80\ndefault_action = {{ type = \"forward\", target_group = \"g\" }}\n\
                 [[target_group]]\nname = \"g\"\nhealth_check.enabled = false\ntarget = [{targets}]"
            )
        };
        let two = toml::from_str(&text("{ id = \"10.0.0.1\" }, { id = \"10.0.0.2\" }")).unwrap();
        let one = toml::from_str(&text("{ id = \"10.0.0.1\" }")).unwrap();
        (two, one)
    }

    #[tokio::test]
    async fn a_drain_ends_when_the_reports_say_so_not_at_the_next_second() {
        let (two, one) = two_then_one();
        let table = HealthTable::new(&two).unwrap();
        let reports = Reports::default();
        let report = |generation, draining: &[&str]| {
            Some(DrainReport {
                generation,
                draining: draining
                    .iter()
                    .map(|t| ("g".to_string(), t.parse().unwrap()))
                    .collect(),
            })
        };
        *reports.0.0.lock().unwrap() = vec![report(1, &[]), report(1, &[])];
        let Running {
            stop: stop_tx,
            configs: configs_tx,
            task,
        } = spawn_checker(&table, &two, &reports);
        let draining = || table.lock()[0].draining.len();
        // 10.0.0.2 leaves in generation 2; the workers still have it.
        *reports.0.0.lock().unwrap() = vec![report(2, &["10.0.0.2:80"]), report(1, &[])];
        configs_tx.send_replace((2, Arc::new(one)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(draining(), 1);
        // One worker is done; the other has not reported generation 2 yet.
        *reports.0.0.lock().unwrap() = vec![report(2, &[]), report(1, &[])];
        reports.0.1.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(draining(), 1, "a worker of an older generation is not done");
        let t = Instant::now();
        *reports.0.0.lock().unwrap() = vec![report(2, &[]), report(2, &[])];
        reports.0.1.notify_one();
        while draining() > 0 {
            assert!(t.elapsed() < FLUSH_EVERY / 2, "not ended at once");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = stop_tx.send(true);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_drain_the_workers_finished_before_the_reload_reached_the_checker_ends_with_it() {
        let (two, one) = two_then_one();
        let table = HealthTable::new(&two).unwrap();
        let reports = Reports::default();
        let Running {
            stop: stop_tx,
            configs: configs_tx,
            task,
        } = spawn_checker(&table, &two, &reports);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Every worker reported generation 2 without 10.0.0.2 (woken: nothing to end yet)...
        *reports.0.0.lock().unwrap() = vec![Some(DrainReport {
            generation: 2,
            draining: Vec::new(),
        })];
        reports.0.1.notify_one();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // ... before the checker follows generation 2: it ends the drain as it rebuilds.
        let t = Instant::now();
        configs_tx.send_replace((2, Arc::new(one)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(t.elapsed() < FLUSH_EVERY / 2);
        let left = table.lock()[0].targets.len();
        assert_eq!((left, table.lock()[0].draining.len()), (1, 0));
        let _ = stop_tx.send(true);
        task.await.unwrap();
    }
}
