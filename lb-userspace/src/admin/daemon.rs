//! The running control plane as an [`AdminState`]: what it knows itself (start time, the
//! configuration, the XDP attachments, its worker processes) and the delegates the other parts
//! of `weir run` give it ([`Delegates`]). A change the daemon has no delegate for is answered
//! `NotImplemented`: nothing pretends to succeed.

use std::{
    future::Future,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    pin::Pin,
    sync::Arc,
    time::Instant,
};

use super::{
    api::AdminState,
    error::ApiError,
    model::{
        RegisteredTarget, Reloaded, Status, TargetList, TargetSpec, TargetsChanged, WorkerProcess,
        XdpInterface,
    },
    procs,
};
use crate::{
    config::Config,
    discovery::view::{Board, GroupDiscovery},
    metrics::store::WorkerFigures,
    overlay::Source,
};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The configuration every worker serves, and its generation (1 at start).
#[derive(Clone)]
pub struct Current {
    pub generation: u64,
    pub config: Arc<Config>,
    /// Why the last reload of the file was refused, while no later one was applied.
    pub reload_refused: Option<String>,
}

/// Applies the configuration file again (validated completely first).
pub trait ReloadDelegate: Send + Sync {
    /// The generation now served, or why the file was refused (nothing changed then).
    fn reload(&self) -> BoxFuture<'_, Result<u64, ApiError>>;
}

/// Registers and deregisters targets at run time (`crate::overlay`), each change answered with
/// the generation in force once every worker has been sent it.
pub trait TargetDelegate: Send + Sync {
    fn register(
        &self,
        group: &str,
        targets: Vec<SocketAddr>,
    ) -> BoxFuture<'_, Result<u64, ApiError>>;
    fn deregister(
        &self,
        group: &str,
        targets: Vec<SocketAddr>,
    ) -> BoxFuture<'_, Result<u64, ApiError>>;
    /// Where a target in force comes from (the file, a registration, discovery).
    fn source(&self, group: &str, target: SocketAddr) -> Option<Source>;
}

/// ALB's `describe-target-health` of every group (the health checker's view, as JSON:
/// `{"target_groups": [{"name": …, …}]}`).
pub type HealthView = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The metrics aggregate now (`crate::metrics::view::MetricsView` as JSON).
pub type MetricsJson = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The certificates the generation in force serves (`crate::certificates`).
pub type CertificatesView =
    Arc<dyn Fn() -> Arc<Vec<crate::certificates::ServedCertificate>> + Send + Sync>;

/// The generation in force and its configuration, as whoever reloads keeps them.
pub trait CurrentSource: Send + Sync {
    fn current(&self) -> Current;
}

/// The configuration `weir run` started with, as generation 1 (a daemon that cannot reload).
struct Fixed(Current);

impl CurrentSource for Fixed {
    fn current(&self) -> Current {
        self.0.clone()
    }
}

/// What the other parts of the control plane provide; `None`: not available.
#[derive(Default, Clone)]
pub struct Delegates {
    pub reload: Option<Arc<dyn ReloadDelegate>>,
    pub targets: Option<Arc<dyn TargetDelegate>>,
    pub health: Option<HealthView>,
    /// `GET /v1/metrics`.
    pub metrics: Option<MetricsJson>,
    /// `GET /v1/certificates`.
    pub certificates: Option<CertificatesView>,
    /// `None`: the configuration `weir run` started with, generation 1.
    pub current: Option<Arc<dyn CurrentSource>>,
    /// The L7 workers run (not `--no-l7`, listeners configured).
    pub workers: bool,
    /// The health state file the checker writes (`crate::health::file`).
    pub health_file: Option<PathBuf>,
    /// DNS discovery's records (`None`: discovery does not run, no workers).
    pub discovery: Option<Board>,
    /// The workers' reports (`crate::metrics::store`): when each process last reported, for
    /// `status` (`None`: no workers).
    pub reports: Option<crate::metrics::store::Store>,
}

pub struct Daemon {
    started: Instant,
    pid: u32,
    socket: PathBuf,
    config_path: Option<PathBuf>,
    xdp: Vec<XdpInterface>,
    current: Arc<dyn CurrentSource>,
    delegates: Delegates,
}

impl Daemon {
    pub fn new(
        cfg: &Config,
        config_path: Option<PathBuf>,
        socket: PathBuf,
        xdp: Vec<XdpInterface>,
        delegates: Delegates,
    ) -> Daemon {
        let current = delegates.current.clone().unwrap_or_else(|| {
            Arc::new(Fixed(Current {
                generation: 1,
                config: Arc::new(cfg.clone()),
                reload_refused: None,
            }))
        });
        Daemon {
            started: Instant::now(),
            pid: std::process::id(),
            socket,
            config_path,
            xdp,
            current,
            delegates,
        }
    }

    fn config_name(&self) -> String {
        match &self.config_path {
            Some(p) => p.display().to_string(),
            None => crate::config::DEFAULT_NAME.into(),
        }
    }

    fn changed(&self, group: &str, addrs: &[SocketAddr], generation: u64) -> TargetsChanged {
        TargetsChanged {
            target_group: group.into(),
            targets: addrs.iter().map(ToString::to_string).collect(),
            generation,
            runtime_only: true,
            config: self.config_name(),
        }
    }
}

/// Each process's time since its last report, from its slot in the metrics store when the
/// slot holds that process (a restarted worker's new process has none until it reports).
fn report_ages(processes: &mut [WorkerProcess], slots: &[WorkerFigures]) {
    for p in processes {
        p.report_age_ms = slots
            .get(p.index)
            .filter(|s| s.pid == Some(p.pid))
            .and_then(|s| s.report_age_ms);
    }
}

/// The targets' addresses, a missing port being the group's.
fn resolve(cfg: &Config, group: &str, targets: &[TargetSpec]) -> Result<Vec<SocketAddr>, ApiError> {
    let port = cfg
        .l7
        .target_group(group)
        .ok_or_else(|| ApiError::target_group_not_found(group))?
        .port;
    targets
        .iter()
        .map(|t| {
            let ip: IpAddr = t.id.parse().map_err(|_| {
                ApiError::invalid_target(format!("target id `{}` is not an IP address", t.id))
            })?;
            Ok(SocketAddr::new(ip, t.port.unwrap_or(port)))
        })
        .collect()
}

/// The records of `cfg`'s discovering groups (`group`: that one only). A group whose task has
/// not written its record yet (just started, or just reloaded) shows as not resolved yet.
pub fn discovering(cfg: &Config, board: &Board, group: Option<&str>) -> Vec<GroupDiscovery> {
    cfg.l7
        .target_group
        .iter()
        .filter(|g| group.is_none_or(|n| g.name == n))
        .filter_map(|g| {
            let d = g.discovery.as_ref()?;
            Some(
                board
                    .get(&g.name)
                    .unwrap_or_else(|| GroupDiscovery::new(&g.name, d, g.port, &[])),
            )
        })
        .collect()
}

impl AdminState for Daemon {
    fn status(&self) -> Status {
        let cur = self.current.current();
        let mut processes = procs::workers_of(self.pid);
        if let Some(store) = &self.delegates.reports {
            report_ages(&mut processes, &store.workers());
        }
        Status {
            pid: self.pid,
            generation: cur.generation,
            last_reload_refused: cur.reload_refused.clone(),
            config: self.config_name(),
            uptime_seconds: self.started.elapsed().as_secs(),
            workers: super::model::Workers {
                configured: if self.delegates.workers {
                    cur.config.workers.resolved_count()
                } else {
                    0
                },
                running: processes.len(),
                not_reporting: processes.iter().filter(|p| p.silent()).count(),
                processes,
            },
            xdp: self.xdp.iter().map(now_attached).collect(),
            admin_socket: self.socket.display().to_string(),
            health_file: (self.delegates.health_file.as_ref()).map(|p| p.display().to_string()),
        }
    }

    fn config(&self) -> Arc<Config> {
        self.current.current().config
    }

    fn targets(&self, group: &str) -> Result<TargetList, ApiError> {
        let cfg = self.config();
        let g = cfg
            .l7
            .target_group(group)
            .ok_or_else(|| ApiError::target_group_not_found(group))?;
        let targets = g
            .target
            .iter()
            .map(|t| {
                let port = t.port.unwrap_or(g.port);
                let source =
                    t.id.parse::<IpAddr>()
                        .ok()
                        .zip(self.delegates.targets.as_ref())
                        .and_then(|(ip, d)| d.source(group, SocketAddr::new(ip, port)))
                        .unwrap_or(Source::Config);
                RegisteredTarget {
                    id: t.id.clone(),
                    port,
                    weight: t.weight,
                    priority: t.priority,
                    availability_zone: t.availability_zone.clone(),
                    source: source.name().into(),
                }
            })
            .collect();
        Ok(TargetList {
            target_group: group.into(),
            port: g.port,
            targets,
        })
    }

    fn target_health(&self, group: Option<&str>) -> Result<serde_json::Value, ApiError> {
        let Some(view) = &self.delegates.health else {
            return Err(ApiError::not_implemented(
                "target health (the control plane's health checker is not running)",
            ));
        };
        let mut v = view();
        if let (Some(g), Some(groups)) = (group, v["target_groups"].as_array_mut()) {
            groups.retain(|x| x["name"] == g);
        }
        Ok(v)
    }

    fn discovery(&self, group: Option<&str>) -> Result<Vec<GroupDiscovery>, ApiError> {
        let Some(board) = &self.delegates.discovery else {
            return Err(ApiError::not_implemented(
                "DNS discovery (no L7 workers run: --no-l7 or no listeners)",
            ));
        };
        Ok(discovering(&self.config(), board, group))
    }

    fn metrics(&self) -> Result<serde_json::Value, ApiError> {
        match &self.delegates.metrics {
            Some(view) => Ok(view()),
            None => Err(ApiError::not_implemented("metrics")),
        }
    }

    fn certificates(
        &self,
        port: Option<u16>,
    ) -> Result<crate::certificates::CertificateList, ApiError> {
        let Some(view) = &self.delegates.certificates else {
            return Err(ApiError::not_implemented("certificates"));
        };
        let now = crate::certificates::now_unix();
        Ok(crate::certificates::list(&view(), port, now))
    }

    async fn reload(&self) -> Result<Reloaded, ApiError> {
        let Some(r) = self.delegates.reload.clone() else {
            return Err(ApiError::not_implemented(
                "reloading through the admin API (SIGHUP reloads the [syn] settings only)",
            ));
        };
        let generation = r.reload().await?;
        Ok(Reloaded {
            generation,
            config: self.config_name(),
        })
    }

    async fn register(
        &self,
        group: &str,
        targets: Vec<TargetSpec>,
    ) -> Result<TargetsChanged, ApiError> {
        let addrs = resolve(&self.config(), group, &targets)?;
        let Some(d) = self.delegates.targets.clone() else {
            return Err(ApiError::not_implemented("registering targets at run time"));
        };
        let generation = d.register(group, addrs.clone()).await?;
        Ok(self.changed(group, &addrs, generation))
    }

    async fn deregister(
        &self,
        group: &str,
        targets: Vec<TargetSpec>,
    ) -> Result<TargetsChanged, ApiError> {
        let addrs = resolve(&self.config(), group, &targets)?;
        let Some(d) = self.delegates.targets.clone() else {
            return Err(ApiError::not_implemented(
                "deregistering targets at run time",
            ));
        };
        let generation = d.deregister(group, addrs.clone()).await?;
        Ok(self.changed(group, &addrs, generation))
    }
}

/// `x` as its daemon's note says it is now (`crate::xdp::tier`): gone with its interface, or
/// attached again, maybe in another mode.
fn now_attached(x: &XdpInterface) -> XdpInterface {
    use crate::xdp::{pins::read_note, syn::COOKIES_REFUSED, tier};
    XdpInterface {
        iface: x.iface.clone(),
        mode: read_note(&x.iface, tier::MODE).unwrap_or_else(|| x.mode.clone()),
        attached: read_note(&x.iface, tier::ATTACHED).is_none_or(|v| v == "1"),
        syn_cookies_refused: read_note(&x.iface, COOKIES_REFUSED),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn slot(worker: usize, pid: Option<u32>, report_age_ms: Option<u64>) -> WorkerFigures {
        WorkerFigures {
            worker,
            pid,
            live: pid.is_some(),
            restarts: 0,
            watchdog_kills: 0,
            report_age_ms,
            counters: BTreeMap::new(),
            gauges: BTreeMap::new(),
        }
    }

    /// A process gets its slot's report age only when the slot holds that very process.
    #[test]
    fn report_ages_come_from_the_slot_of_the_same_process() {
        let proc_ = |index, pid| WorkerProcess {
            index,
            pid,
            report_age_ms: None,
        };
        let mut ps = vec![proc_(0, 10), proc_(1, 21), proc_(2, 30)];
        let slots = [
            slot(0, Some(10), Some(200)),
            // Restarted: the store still names the old process.
            slot(1, Some(20), Some(9_000)),
        ];
        report_ages(&mut ps, &slots);
        let ages: Vec<_> = ps.iter().map(|p| p.report_age_ms).collect();
        assert_eq!(ages, [Some(200), None, None]);
    }
}
