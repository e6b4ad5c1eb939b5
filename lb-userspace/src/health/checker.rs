//! The checker: one task per checked target on the control plane's runtime, each checking its
//! target every interval from its own offset ([`super::schedule`]), with each group's own
//! budget of checks in flight ([`shares`] of [`in_flight_budget`]): no group's checks wait for
//! another's, and a check that starts late anyway is said ([`Late`]); one loop folds their outcomes into the [`HealthTable`] and tells the workers
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

/// The fewest checks in flight [`in_flight_budget`] allows, whatever the open-file limit.
pub const MIN_BUDGET: usize = 64;
/// A check starting this long after its slot (waiting for its group's budget) is late.
pub const LATE: Duration = Duration::from_secs(1);
/// At most one warning about late checks per this.
pub const LATE_WARN_EVERY: Duration = Duration::from_secs(60);
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

/// Checks in flight at once, all groups together: half this process's open-file limit (each
/// check holds a socket for up to its timeout; the other half is the control plane's own:
/// listening sockets, the workers' pipes, admin and metrics connections, resolvers), at least
/// [`MIN_BUDGET`]. `weir run` raises the limit for its workers first (`workers::nofile`: over
/// 20,000 at the default `max_connections_per_worker`), and the budget is read at each start
/// and reload of the checks.
pub fn in_flight_budget() -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft);
    usize::try_from(soft / 2)
        .unwrap_or(usize::MAX)
        .max(MIN_BUDGET)
}

/// Each group's budget of checks in flight, from `budget` for all of them; `targets`: each
/// group's number of checked targets. A group never has more checks in flight than targets
/// (a target's next check starts after its last one ended, within the timeout, which is below
/// the interval), so when every group's targets fit in `budget`, each group gets one place per
/// target and no check ever waits. When they do not, the budget is shared max-min fairly: the
/// groups that need less than an even share get all they need, the others split the rest
/// evenly; each group with targets gets at least one. So a group whose checks all time out
/// (1,000 black-holed targets) cannot delay another group's.
pub fn shares(targets: &[usize], budget: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..targets.len()).collect();
    order.sort_by_key(|&i| targets[i]);
    let mut out = vec![0; targets.len()];
    let mut left = budget;
    for (k, &i) in order.iter().enumerate() {
        if targets[i] == 0 {
            continue;
        }
        let even = left / (order.len() - k);
        out[i] = targets[i].min(even).max(1);
        left = left.saturating_sub(out[i]);
    }
    out
}

/// Checks that started [`LATE`] or later after their slot, said in a warning at most once per
/// [`LATE_WARN_EVERY`] (with how many since the last one).
#[derive(Default)]
pub struct Late {
    /// Late checks since the last warning, and when that was.
    state: std::sync::Mutex<(u64, Option<Instant>)>,
}

impl Late {
    /// A check of `group` started `by` after its slot, at `now`; `true` if it warned.
    pub fn note(&self, group: &str, by: Duration, now: Instant) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 += 1;
        if st.1.is_some_and(|t| now < t + LATE_WARN_EVERY) {
            return false;
        }
        warn!(
            target_group = %group,
            late_ms = by.as_millis() as u64,
            late_checks = st.0,
            "health checks start late (their group's budget of checks in flight is used up): targets are checked less often than every interval"
        );
        *st = (0, Some(now));
        true
    }
}

/// One task per checked target.
fn spawn_probes(table: &HealthTable, tx: mpsc::Sender<Observation>) -> JoinSet<()> {
    spawn_probes_within(table, tx, in_flight_budget())
}

/// [`spawn_probes`] with `budget` checks in flight at most, all groups together.
fn spawn_probes_within(
    table: &HealthTable,
    tx: mpsc::Sender<Observation>,
    budget: usize,
) -> JoinSet<()> {
    let mut tls: Option<TlsConnector> = None;
    let mut set = JoinSet::new();
    let now = Instant::now();
    let late = Arc::new(Late::default());
    let groups = table.lock();
    let checked: Vec<usize> = groups
        .iter()
        .map(|g| g.settings.as_ref().map_or(0, |_| g.targets.len()))
        .collect();
    let shares = shares(&checked, budget);
    for (gi, g) in groups.iter().enumerate() {
        let Some(s) = &g.settings else { continue };
        let tls = (s.protocol == Protocol::Https)
            .then(|| tls.get_or_insert_with(lb_l7::upstream::connector).clone());
        let limit = Arc::new(Semaphore::new(shares[gi]));
        let name: Arc<str> = g.name.as_str().into();
        for (ti, t) in g.targets.iter().enumerate() {
            let first = now + schedule::offset(&g.name, t.addr, s.interval);
            set.spawn(probe_loop(
                (gi, ti),
                t.addr,
                s.clone(),
                tls.clone(),
                first,
                (limit.clone(), name.clone(), late.clone()),
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
    (limit, name, late): (Arc<Semaphore>, Arc<str>, Arc<Late>),
    tx: mpsc::Sender<Observation>,
) {
    // ALB: each check lasts its whole interval; how long a target takes to answer does not
    // move the next one.
    let mut ticks = tokio::time::interval_at(first, s.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let slot = ticks.tick().await;
        let Ok(permit) = limit.acquire().await else {
            return;
        };
        let now = Instant::now();
        if now.saturating_duration_since(slot) >= LATE {
            late.note(&name, now - slot, now);
        }
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

    #[test]
    fn every_group_gets_its_targets_or_a_fair_share_of_the_budget() {
        // Everything fits: one place per target, nothing ever waits.
        assert_eq!(shares(&[1000, 1, 0, 30], 10_000), [1000, 1, 0, 30]);
        // 1,000 black-holed targets cannot take a small group's places.
        assert_eq!(shares(&[1000, 1], 256), [255, 1]);
        assert_eq!(shares(&[1000, 1, 3, 1000], 256), [126, 1, 3, 126]);
        // Each group with targets gets one, whatever the budget.
        assert_eq!(shares(&[5, 5, 5], 2), [1, 1, 1]);
        assert_eq!(shares(&[], 64), Vec::<usize>::new());
        let s = shares(&[400, 50, 300, 7], 512);
        assert_eq!(s, [228, 50, 227, 7]);
        assert!(s.iter().sum::<usize>() <= 512);
        assert!(in_flight_budget() >= MIN_BUDGET);
    }

    #[test]
    fn late_checks_are_said_at_most_once_a_minute() {
        let late = Late::default();
        let t0 = Instant::now();
        let by = Duration::from_secs(3);
        assert!(late.note("dark", by, t0), "the first one");
        assert!(!late.note("dark", by, t0 + Duration::from_secs(1)));
        assert!(!late.note("web", by, t0 + Duration::from_secs(59)));
        assert!(late.note("dark", by, t0 + LATE_WARN_EVERY));
        assert_eq!(
            late.state.lock().unwrap().0,
            0,
            "counted since the last warning"
        );
    }

    /// A group of 1,000 targets whose checks all time out (their SYNs dropped: a listener
    /// whose accept queue is full) next to a group of one answering target: the small group is
    /// still checked every interval (before: one global budget of 256 checks in flight, held by
    /// the black-holed group, delayed its checks by seconds).
    #[tokio::test]
    async fn a_black_holed_group_does_not_hold_back_another_groups_checks() {
        let up = answering().await;
        // Backlog 1, never accepting: once two connections wait, every SYN is dropped.
        let hole = tokio::net::TcpSocket::new_v4().unwrap();
        hole.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let hole = hole.listen(1).unwrap();
        let hole_port = hole.local_addr().unwrap().port();
        let dark: Vec<String> = (0..1000)
            .map(|i| format!("{{ id = \"127.0.0.1\", port = {} }}", 20_000 + i))
            .collect();
        let cfg: lb_l7::L7Config = toml::from_str(&format!(
            "[[listener]]\nport = 80\ndefault_action = {{ type = \"forward\", target_group = \"victim\" }}\n\
             [[listener.rule]]\npriority = 1\ncondition = [{{ field = \"path-pattern\", values = [\"/dark\"] }}]\n\
             action = {{ type = \"forward\", target_group = \"dark\" }}\n\
             [[target_group]]\nname = \"victim\"\ntarget = [{{ id = \"127.0.0.1\", port = {} }}]\n\
             [[target_group]]\nname = \"dark\"\nhealth_check.port = \"{hole_port}\"\ntarget = [{}]",
            up.port(),
            dark.join(", ")
        ))
        .unwrap();
        let table = HealthTable::new(&cfg).unwrap();
        {
            // Faster than the configuration allows, to keep the test short.
            let mut g = table.lock();
            for g in g.iter_mut() {
                let s = Arc::make_mut(g.settings.as_mut().unwrap());
                s.interval = Duration::from_millis(1000);
                s.timeout = Duration::from_millis(900);
            }
        }
        let (stop_tx, stop) = watch::channel(false);
        let rec = Recorder::default();
        let (_configs_tx, configs) = watch::channel((1, Arc::new(cfg.clone())));
        let task = tokio::spawn(run(
            table.clone(),
            rec.clone(),
            None,
            stop,
            configs,
            None::<crate::metrics::store::Store>,
        ));
        tokio::time::sleep(Duration::from_millis(6500)).await;
        let _ = stop_tx.send(true);
        task.await.unwrap();
        drop(hole);
        let passes = rec
            .0
            .lock()
            .unwrap()
            .passed
            .iter()
            .filter(|&&a| a == up)
            .count();
        // One check a second: 6 (the first within the first second), flushed once a second.
        assert!(
            passes >= 5,
            "the victim was checked {passes} times in 6.5 s"
        );
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
