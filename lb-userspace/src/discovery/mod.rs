//! DNS discovery of targets (`[target_group.discovery]`), once per host in the control plane:
//! one task per discovering group resolves its name ([`dns`], hickory-resolver), folds each
//! answer into the group's [`plan::Plan`] (pure: the targets, the next resolution time, what
//! to log) and, when the targets change, hands them to the run-time target overlay
//! (`crate::overlay`, [`TargetChange::Discovered`]) through a [`Sink`] — in `weir run` the
//! [`ReloadHandle`], whose change makes the next configuration generation: a new target is
//! checked and takes traffic once healthy, a removed one drains.
//!
//! A reload that keeps a group's discovery settings (and port) keeps its task; one that changes
//! them restarts it from the targets last handed over (so an empty answer can still remove
//! them); a group that loses its discovery gets an empty set.
//!
//! Each task also keeps its group's record on a [`view::Board`] (the name asked, the targets
//! in force, the last resolution's outcome, the failures in a row, the next resolution, the
//! last change's generation), which the admin API and the metrics read.

pub mod dns;
pub mod plan;
pub mod view;

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use lb_l7::{L7Config, config::Discovery, target_sets::SetTarget};
use tokio::{sync::watch, task::JoinHandle};
use tracing::{debug, info, warn};

use crate::overlay::TargetChange;
use crate::reload::ReloadHandle;
use plan::{News, Plan, Settings};
use view::{Board, GroupDiscovery};

/// Where a group's discovered targets go.
pub trait Sink: Send + Sync + 'static {
    /// The group's discovered targets are now `targets` (the whole set). The answer is the
    /// generation in force, or why nothing changed.
    fn discovered(
        &self,
        group: String,
        targets: Vec<SetTarget>,
    ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + '_>>;
}

impl Sink for ReloadHandle {
    fn discovered(
        &self,
        group: String,
        targets: Vec<SetTarget>,
    ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + '_>> {
        Box::pin(async move {
            self.change_targets(TargetChange::Discovered { group, targets })
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Tells the running discovery the configuration changed (a reload).
#[derive(Clone)]
pub struct Reconfigure(Arc<watch::Sender<Arc<L7Config>>>);

impl Reconfigure {
    pub fn apply(&self, cfg: &L7Config) {
        self.0.send_replace(Arc::new(cfg.clone()));
    }
}

/// Whether `cfg` has any group to discover.
pub fn wanted(cfg: &L7Config) -> bool {
    cfg.target_group.iter().any(|g| g.discovery.is_some())
}

/// Starts discovery for `cfg`'s groups on the current runtime; it follows the configurations
/// given to the returned [`Reconfigure`], keeps each group's record on `board`, and stops when
/// `stop` turns true.
pub fn start(
    cfg: &L7Config,
    sink: Arc<dyn Sink>,
    board: Board,
    stop: watch::Receiver<bool>,
) -> (Reconfigure, JoinHandle<()>) {
    let (tx, configs) = watch::channel(Arc::new(cfg.clone()));
    let task = tokio::spawn(run(sink, board, configs, stop));
    (Reconfigure(Arc::new(tx)), task)
}

/// A group's discovery as its task was started with.
#[derive(PartialEq)]
struct Key {
    discovery: Discovery,
    port: u16,
}

struct Running {
    key: Key,
    task: JoinHandle<()>,
}

/// The targets last handed over, per group.
type Published = Arc<Mutex<BTreeMap<String, Vec<SetTarget>>>>;

/// The wall clock as Unix milliseconds (the records' times).
fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the tasks share: where the targets go, the targets handed over, the records.
#[derive(Clone)]
struct Shared {
    sink: Arc<dyn Sink>,
    published: Published,
    board: Board,
}

async fn run(
    sink: Arc<dyn Sink>,
    board: Board,
    mut configs: watch::Receiver<Arc<L7Config>>,
    mut stop: watch::Receiver<bool>,
) {
    let shared = Shared {
        sink,
        published: Arc::default(),
        board,
    };
    let mut running: HashMap<String, Running> = HashMap::new();
    loop {
        let cfg = configs.borrow_and_update().clone();
        follow(&cfg, &mut running, &shared).await;
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            r = configs.changed() => if r.is_err() { break },
        }
    }
    for (_, r) in running.drain() {
        r.task.abort();
    }
}

/// Starts, keeps, restarts or stops each group's task for `cfg`.
async fn follow(cfg: &L7Config, running: &mut HashMap<String, Running>, shared: &Shared) {
    let Shared {
        sink, published, ..
    } = shared;
    let mut wanted: HashMap<String, Key> = cfg
        .target_group
        .iter()
        .filter_map(|g| {
            let discovery = g.discovery.clone()?;
            Some((
                g.name.clone(),
                Key {
                    discovery,
                    port: g.port,
                },
            ))
        })
        .collect();
    let names: Vec<String> = running.keys().cloned().collect();
    for name in names {
        if wanted.get(&name) == running.get(&name).map(|r| &r.key) {
            wanted.remove(&name);
            continue;
        }
        if let Some(r) = running.remove(&name) {
            r.task.abort();
            let _ = r.task.await;
        }
        if wanted.contains_key(&name) {
            // Changed settings: restarted below from the targets handed over.
            continue;
        }
        shared.board.remove(&name);
        let had = published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        if cfg.target_group(&name).is_some() && had.is_some_and(|h| !h.is_empty()) {
            info!(target_group = %name, "discovery removed from the group: its discovered targets leave");
            if let Err(e) = sink.discovered(name.clone(), Vec::new()).await {
                warn!(target_group = %name, "removing the discovered targets: {e}");
            }
        }
    }
    for (name, key) in wanted {
        let before = published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name)
            .cloned()
            .unwrap_or_default();
        shared.board.start(GroupDiscovery::new(
            &name,
            &key.discovery,
            key.port,
            &before,
        ));
        let plan = Plan::with_targets(Settings::from_config(&key.discovery), before);
        let dns = dns::Dns::new(&key.discovery, key.port);
        info!(target_group = %name, name = %key.discovery.name, kind = ?key.discovery.kind, "discovery: resolving");
        let task = tokio::spawn(resolve_loop(
            name.clone(),
            key.discovery.name.clone(),
            dns,
            plan,
            shared.clone(),
        ));
        running.insert(name, Running { key, task });
    }
}

/// Resolves one group's name for as long as it runs.
async fn resolve_loop(group: String, name: String, dns: dns::Dns, mut plan: Plan, shared: Shared) {
    let Shared {
        sink,
        published,
        board,
    } = shared;
    loop {
        let answer = dns.resolve().await;
        debug!(target_group = %group, name = %name, ?answer, "discovery answer");
        let (answer, skipped) = plan::usable(answer);
        for (addr, why) in plan.first_skips(&skipped) {
            warn!(target_group = %group, name = %name, address = %addr.ip(), "DNS answered an address that is not a target, skipped (said once): {why}");
        }
        let now = Instant::now();
        let step = plan.observe(now, answer.clone());
        board.update(&group, |r| {
            r.resolved(now, unix_ms_now(), &answer, &step, &plan);
            r.skipped_addresses = r.skipped_addresses.saturating_add(skipped.len() as u64);
        });
        for n in &step.news {
            log(&group, &name, n);
        }
        if let Some(targets) = step.targets {
            let handed = sink.discovered(group.clone(), targets.clone()).await;
            board.update(&group, |r| r.handed_over(unix_ms_now(), &targets, &handed));
            match handed {
                Ok(generation) => {
                    debug!(target_group = %group, generation, "discovered targets in force");
                    published
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(group.clone(), targets);
                }
                Err(e) => {
                    warn!(target_group = %group, "discovered targets refused (tried again at the next resolution): {e}");
                    let before = published
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&group)
                        .cloned()
                        .unwrap_or_default();
                    plan.reset_targets(before);
                }
            }
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(step.next)).await;
    }
}

fn log(group: &str, name: &str, n: &News) {
    let list = |v: &[SetTarget]| {
        v.iter()
            .map(|t| match t.priority {
                0 if t.weight == 1 => t.addr.to_string(),
                p => format!("{} (weight {}, priority {p})", t.addr, t.weight),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    match n {
        News::Changed {
            added,
            removed,
            reweighted,
        } => info!(
            target_group = %group, name = %name,
            added = %list(added), removed = %list(removed), reweighted = %list(reweighted),
            "discovered targets changed (added ones are health checked before traffic, removed ones drain)"
        ),
        News::Truncated { found, kept } => warn!(
            target_group = %group, name = %name, found, kept,
            "more discovered addresses than discovery.max_targets: the lowest are used"
        ),
        News::Failing {
            reason,
            failures,
            retry,
            kept,
        } => {
            // The first failure and every tenth say so; the others are debug.
            if *failures == 1 || failures % 10 == 0 {
                warn!(
                    target_group = %group, name = %name, failures, kept,
                    retry_seconds = retry.as_secs(),
                    "DNS resolution failed ({reason}): the last {kept} discovered targets stay; retrying"
                );
            } else {
                debug!(target_group = %group, name = %name, failures, %reason, "DNS resolution failed");
            }
        }
        News::Recovered { failures } => info!(
            target_group = %group, name = %name, failures,
            "DNS resolution answers again"
        ),
        News::EmptyHeld {
            nxdomain,
            hold,
            kept,
        } => warn!(
            target_group = %group, name = %name, kept,
            answer = if *nxdomain { "NXDOMAIN" } else { "no records" },
            "DNS says the name has no targets: the {kept} discovered targets stay for discovery.hold_empty_seconds ({}) unless records come back",
            hold.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests;
