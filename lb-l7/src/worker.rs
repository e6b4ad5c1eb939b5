//! A worker: bound listeners (SO_REUSEPORT) plus the shared run-time state; `serve` runs them.

use crate::access_log::{AccessLog, AccessLogTarget};
use crate::config::L7Config;
use crate::control::ControlMsg;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::pipeline::{ListenerRt, Shared};
use crate::target::{GroupRt, TargetState};
use crate::target_conns::TargetConns;
use crate::target_health::{Checks, groups_in_use, state_at_generation};
use crate::tickets::SharedTicketer;
use anyhow::Context as _;
use socket2::{Domain, Socket, Type};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the process that runs this worker wants it set up.
#[derive(Debug, Clone, Default)]
pub struct WorkerOptions {
    /// Worker number (log lines, access log `elb` field).
    pub index: usize,
    /// Overrides `load_balancer.access_logs` when set.
    pub access_log: Option<AccessLogTarget>,
    /// A fixed session ticket key shared by several workers, so TLS sessions resume on any of
    /// them (no rotation). `None` (and no `ticket_channel`): a random key for this worker only.
    pub ticket_key: Option<[u8; 32]>,
    /// The control channel (a pipe, inherited) the control plane talks to this worker on
    /// (`crate::control`: TLS ticket keys, target states): the initial batch is read in `bind`,
    /// the rest while serving. Its ticket keys win over `ticket_key`.
    pub control_channel: Option<RawFd>,
    /// Listening sockets made by the control plane (one per listener, in listener order, already
    /// bound and listening), inherited by this worker process: the control plane keeps them
    /// open across worker restarts so queued connections survive and an SK_REUSEPORT program
    /// can steer to them. `None`: bind our own.
    pub listen_fds: Option<Vec<RawFd>>,
    /// The control plane checks the targets' health (`weir run`): the targets of groups with
    /// `health_check.enabled` start `initial` (no traffic while another target is healthy)
    /// until its states arrive. `false`: every target starts `healthy`.
    pub health_from_control_plane: bool,
    /// The configuration came from the control plane (`ControlMsg::Config`): its generation
    /// number and the certificate files sent with it. It was validated there, so `bind` does
    /// not validate it again (validation reads files). `None`: validate, read files from disk.
    pub generation: Option<(u64, std::collections::BTreeMap<String, String>)>,
    /// The control channel's initial batch, when the caller already read it (to take the
    /// configuration from it); `bind` then does not read it again.
    pub initial_batch: Option<Vec<ControlMsg>>,
    /// The socket channel (inherited, `crate::socket_channel`): the listening sockets of
    /// listeners a reload adds arrive on it. `None`: a generation may not add listeners.
    pub socket_channel: Option<RawFd>,
    /// Gives memory the process's allocator holds freed back to the OS (`weir` passes
    /// mimalloc's `mi_collect`): called after idle connections parked in bulk
    /// (`crate::accept::park`), whose tasks' memory is then free, and after the sweep released
    /// spares an idle period left unused (`trim_spares`), at most once a second each.
    pub release_memory: Option<fn()>,
    /// The most target connections the worker holds at once (`crate::target_conns`), which
    /// `weir run` derives from its descriptor budget. `None`: no cap.
    pub max_target_connections: Option<usize>,
}

struct Bound {
    rt: Arc<ListenerRt>,
    socket: std::net::TcpListener,
}

/// One L7 worker.
pub struct Worker {
    shared: Arc<Shared>,
    listeners: Vec<Bound>,
    /// Tells every task the worker stops (`Shared::shutdown` is its receiver).
    stop: tokio::sync::watch::Sender<bool>,
    /// The control channel, followed while serving (see `control_channel`).
    control: Option<std::os::fd::OwnedFd>,
    /// Where rotated TLS ticket keys go.
    ticketer: Arc<SharedTicketer>,
    health_from_control_plane: bool,
    /// The socket channel (see `socket_channel`).
    sockets: Option<std::os::fd::OwnedFd>,
    /// Idle plain connections without a task (`crate::accept::park`); its epoll instance is
    /// made here, before the worker's sandbox.
    lot: Arc<crate::accept::park::Lot>,
    /// See `WorkerOptions::release_memory`.
    release_memory: Option<fn()>,
}

/// A cheap handle to a worker's counters that outlives `serve`'s borrow of the worker.
#[derive(Clone)]
pub struct MetricsHandle(Arc<Shared>, Arc<crate::accept::park::Lot>);

impl MetricsHandle {
    /// Idle plain connections parked now (`crate::accept::park`; counted among the active).
    pub fn parked(&self) -> usize {
        self.1.parked()
    }
    pub fn snapshot(&self) -> MetricsSnapshot {
        snapshot(&self.0)
    }
    /// The live atomics.
    pub fn raw(&self) -> Arc<Metrics> {
        self.0.metrics.clone()
    }
    /// The targets this worker is still draining, for the control plane's health view.
    pub fn drain_report(&self) -> crate::generation::DrainReport {
        crate::generation::drain_report(&self.0)
    }
    /// Resolves once [`Self::drain_report`] may have changed (`Draining::changed`).
    pub async fn drain_changed(&self) {
        self.0.draining.changed().await;
    }
}

fn snapshot(first: &Shared) -> MetricsSnapshot {
    let newest = first.newest();
    let sh: &Shared = newest.as_deref().unwrap_or(first);
    let mut s = sh.metrics.snapshot();
    s.access_log_dropped = sh.access_log.dropped();
    s.access_log_write_failed = sh.access_log.write_failed();
    for g in sh.groups.values() {
        for t in &g.targets {
            let ts = t.snapshot();
            s.anomalous_host_count += u64::from(ts.anomaly == "anomalous");
            s.mitigated_host_count += u64::from(ts.weight_shift > 0);
            s.targets.insert(format!("{}/{}", g.name, t.addr), ts);
        }
    }
    s
}

/// A non-blocking listening socket on `addr` with SO_REUSEPORT (dual-stack for `::`), backlog
/// 4096: what a worker binds itself, and what the control plane makes for its workers.
/// `freebind`: bound even while the host does not have the address (`IP_FREEBIND`).
pub fn bind_socket(addr: SocketAddr, freebind: bool) -> anyhow::Result<std::net::TcpListener> {
    let s = tcp_socket(addr, freebind)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    match s.bind(&addr.into()) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable && !freebind => anyhow::bail!(
            "bind {addr}: {e}: no interface of this host has {}; for an address that comes \
             later (a VRRP/keepalived or BGP-announced VIP, DHCP's), set the listener's \
             `freebind = true` (or net.ipv4.ip_nonlocal_bind = 1, net.ipv6.ip_nonlocal_bind = 1)",
            addr.ip()
        ),
        r => r.with_context(|| format!("bind {addr}"))?,
    }
    s.listen(4096)?;
    Ok(s.into())
}

/// Fails if a socket already listens on `addr` (or on the wildcard of its port, or `addr` is
/// the wildcard and one listens on an address of its port): another weir daemon, or any
/// server. `bind_socket`'s SO_REUSEPORT sockets would join such a socket's group when it is
/// another weir's (same user): they took all its new connections, and its steering program
/// was replaced by one that knew only the newcomer's sockets, so when the newcomer exited the
/// first daemon refused every connection. The probe binds without SO_REUSEPORT (with
/// SO_REUSEADDR, so connections left in TIME_WAIT by a daemon that exited do not count) and
/// lets go at once.
pub fn ensure_port_free(addr: SocketAddr, freebind: bool) -> anyhow::Result<()> {
    match tcp_socket(addr, freebind)?.bind(&addr.into()) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "{addr} is in use: another process listens on port {} (another weir daemon, or \
             any server; `ss -ltnp 'sport = :{}'` names it): weir does not share a listening \
             port, stop it first",
            addr.port(),
            addr.port()
        ),
        // Anything else (an address not on the host, …) is `bind_socket`'s to report.
        _ => Ok(()),
    }
}

/// A TCP socket for a listener on `addr`: SO_REUSEADDR, dual-stack for IPv6, `IP_FREEBIND`
/// when asked (bound even while the host does not have the address).
fn tcp_socket(addr: SocketAddr, freebind: bool) -> std::io::Result<Socket> {
    let s = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        let _ = s.set_only_v6(false);
    }
    if freebind {
        match addr {
            SocketAddr::V4(_) => s.set_freebind_v4(true)?,
            SocketAddr::V6(_) => s.set_freebind_v6(true)?,
        }
    }
    Ok(s)
}

/// Takes ownership of an inherited listening socket; it must listen on the listener's port.
fn inherited_socket(fd: RawFd, want: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    use std::os::fd::FromRawFd as _;
    // SAFETY: the control plane passed this fd to this process for this listener alone.
    let socket = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    socket.set_nonblocking(true)?;
    let got = socket
        .local_addr()
        .context("inherited fd is not a socket")?;
    if got.port() != want.port() {
        // Give the fd back untouched: it was not ours to close.
        let _ = std::os::fd::IntoRawFd::into_raw_fd(socket);
        anyhow::bail!(
            "inherited fd {fd} listens on {got}, the listener is on port {}",
            want.port()
        );
    }
    Ok(socket)
}

/// The control channel, if any, and the initial batch the control plane sent on it.
fn control_channel(
    opts: &WorkerOptions,
) -> anyhow::Result<(Option<std::os::fd::OwnedFd>, Vec<ControlMsg>)> {
    use std::os::fd::FromRawFd as _;
    let Some(fd) = opts.control_channel else {
        return Ok((None, opts.initial_batch.clone().unwrap_or_default()));
    };
    // SAFETY: the control plane passed this fd to this process for the control channel alone.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let batch = match &opts.initial_batch {
        Some(b) => b.clone(),
        None => crate::control::read_initial(&fd)?,
    };
    Ok((Some(fd), batch))
}

/// The ticketer of this worker: the control plane's keys (the initial batch's last), else the
/// fixed key of the options, else a random one.
fn ticketer(opts: &WorkerOptions, batch: &[ControlMsg]) -> anyhow::Result<Arc<SharedTicketer>> {
    let keys = batch.iter().rev().find_map(|m| match m {
        ControlMsg::TicketKeys(k) => Some(k),
        _ => None,
    });
    match keys {
        Some(k) => Ok(Arc::new(SharedTicketer::with_keys(k))),
        None if opts.control_channel.is_some() => {
            anyhow::bail!("the control plane sent no TLS ticket keys at start")
        }
        None => {
            let key = opts.ticket_key.unwrap_or_else(crate::tickets::random_key);
            Ok(Arc::new(SharedTicketer::new(&key)))
        }
    }
}

/// The generation after `cur` from the control plane's message.
fn next_generation(
    cur: &Shared,
    ctl: &Ctl,
    g: &crate::control::ConfigGeneration,
) -> anyhow::Result<Shared> {
    let config = Arc::new(g.l7()?);
    if let Some((field, why)) = crate::generation::unchangeable(&cur.config, &config) {
        anyhow::bail!("{field}: {why}");
    }
    let files = crate::generation::Files::Sent(&g.files);
    let listeners = crate::generation::listeners(&config, files, &ctl.ticketer)?;
    let (new, _fresh) = crate::generation::next(cur, g.generation, config, listeners);
    if ctl.health_from_control_plane {
        initial_states(&new.config, &new.groups, Some(cur));
    }
    Ok(new)
}

/// Under a control plane that checks health: each target's state at the generation `config`
/// of `groups`, after `prev` (`None`: the worker's first), by the rule the control plane's
/// table follows too (`target_health::state_at_generation`). A target that stays in a group
/// checked before and now keeps what it had (`GroupHealth::new` carried it into a rebuilt
/// group), the control plane's last state with it, whatever check setting changed: a reload
/// does not put known-bad targets back into a failing-open rotation. A target registered now,
/// or of a group checked only from now on, waits for its first verdict (`initial`); checks
/// disabled make it `healthy`, a group no listener forwards to `unused`.
fn initial_states(
    config: &L7Config,
    groups: &HashMap<String, Arc<GroupRt>>,
    prev: Option<&Shared>,
) {
    let used = groups_in_use(config);
    let used_before = prev.map(|p| groups_in_use(&p.config));
    for g in &config.target_group {
        let Some(rt) = groups.get(&g.name) else {
            continue;
        };
        let now = Checks::of(g, &used);
        let before = prev.and_then(|p| {
            let old = p.config.target_group(&g.name)?;
            let had = p.groups.get(&g.name)?;
            Some((Checks::of(old, used_before.as_ref()?), had))
        });
        for t in &rt.targets {
            let kept = before.and_then(|(checks, had)| {
                had.targets
                    .iter()
                    .any(|o| o.addr == t.addr)
                    .then_some(checks)
            });
            if let Some(s) = state_at_generation(kept, now) {
                t.set_state(s);
            }
        }
    }
}

/// The exit status of a worker that could not start a generation's listener.
const EXIT_LISTENERS: i32 = 75;

/// What applying the control plane's messages needs besides the generation.
struct Ctl {
    ticketer: Arc<SharedTicketer>,
    health_from_control_plane: bool,
    /// The accept loops, once the worker serves (a generation's listeners start and stop them).
    listening: Option<Arc<crate::listening::Listening>>,
}

/// Applies one message from the control plane, to the newest generation.
fn apply_control(first: &Shared, ctl: &Ctl, msg: ControlMsg) {
    let newest = first.newest();
    let shared: &Shared = newest.as_deref().unwrap_or(first);
    let ticketer = &ctl.ticketer;
    match msg {
        ControlMsg::Config(g) => {
            if g.generation <= shared.generation {
                return;
            }
            match next_generation(shared, ctl, &g) {
                Ok(new) => {
                    let number = new.generation;
                    let new = Arc::new(new);
                    crate::generation::switch(shared, new.clone());
                    tracing::info!(
                        worker = shared.worker_index,
                        generation = number,
                        "configuration generation in force"
                    );
                    if let Some(Err(e)) = ctl.listening.as_ref().map(|l| l.follow(&new)) {
                        // A listener this worker cannot serve would queue its share of the
                        // connections forever: exit, and the supervisor restarts this worker
                        // with every listening socket inherited.
                        tracing::error!(worker = shared.worker_index, generation = number, error = %e, "cannot follow the generation's listeners: exiting");
                        std::process::exit(EXIT_LISTENERS);
                    }
                }
                // The control plane validated it: this is a bug or a file that changed between
                // its reading and ours (the files are sent, so it cannot be).
                Err(e) => {
                    tracing::error!(worker = shared.worker_index, generation = g.generation, error = %format!("{e:#}"), "configuration generation NOT applied")
                }
            }
        }
        ControlMsg::TicketKeys(k) => {
            ticketer.set(&k);
            tracing::debug!("TLS ticket keys rotated");
        }
        ControlMsg::TargetStates(states) => {
            for h in states {
                let target = shared
                    .groups
                    .get(&h.group)
                    .and_then(|g| g.targets.iter().find(|t| t.addr == h.target));
                match (target, TargetState::from_name(&h.state)) {
                    (Some(t), Some(s)) => {
                        if t.state() != s {
                            tracing::debug!(group = %h.group, target = %h.target, state = %h.state, "target state from the control plane");
                        }
                        t.set_state(s)
                    }
                    _ => {
                        crate::warn_limited!(group = %h.group, target = %h.target, state = %h.state, "control plane: unknown target or state")
                    }
                }
            }
        }
        ControlMsg::HealthChecksPassed(passed) => {
            for c in passed {
                if let Some(t) = shared
                    .groups
                    .get(&c.group)
                    .and_then(|g| g.targets.iter().find(|t| t.addr == c.target))
                {
                    t.active_check_passed();
                }
            }
        }
        ControlMsg::Started => {}
        ControlMsg::ReopenAccessLog => {
            if let Some(Err(e)) = ctl.listening.as_ref().map(|l| l.take_channel(shared)) {
                tracing::warn!(worker = shared.worker_index, error = %e, "cannot take the reopened access log");
            }
        }
    }
}

impl Worker {
    /// Validates the configuration and binds every listener (SO_REUSEPORT, so several worker
    /// processes can bind the same port). Needs no async runtime. A configuration from the
    /// control plane (`opts.generation`) was validated there and is not validated again.
    pub fn bind(config: Arc<L7Config>, opts: WorkerOptions) -> anyhow::Result<Worker> {
        if opts.generation.is_none() {
            let errors = config.validate();
            if !errors.is_empty() {
                let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                anyhow::bail!("invalid configuration:\n  {}", list.join("\n  "));
            }
        }
        let log_target = opts
            .access_log
            .clone()
            .unwrap_or_else(|| AccessLogTarget::of(&config.load_balancer.access_logs));
        // A log it cannot open does not stop a worker (a worker that exited for it was
        // restarted forever, serving nothing): it serves, the lines lost and counted, until a
        // reopen (SIGUSR1) brings the file. `weir check` and `weir run` open it first.
        let (access_log, unopened) = AccessLog::start_or_unopened(&log_target);
        if let Some(e) = unopened {
            tracing::error!(
                worker = opts.index,
                error = %format!("{e:#}"),
                "cannot open the access log: serving without it, its lines lost \
                 (weir_access_log_write_failed_total) until SIGUSR1 reopens it"
            );
        }
        let (control, batch) = control_channel(&opts)?;
        let ticketer = ticketer(&opts, &batch)?;
        let files = match &opts.generation {
            Some((_, files)) => crate::generation::Files::Sent(files),
            None => crate::generation::Files::Disk,
        };
        let rts = crate::generation::listeners(&config, files, &ticketer)?;
        let mut listeners = Vec::new();
        for (i, (l, rt)) in config.listener.iter().zip(rts).enumerate() {
            let addr = l.socket_addr();
            let socket = match opts.listen_fds.as_ref().map(|fds| fds.get(i).copied()) {
                None => bind_socket(addr, l.freebind).with_context(|| format!("listener[{i}]"))?,
                Some(Some(fd)) => {
                    inherited_socket(fd, addr).with_context(|| format!("listener[{i}]"))?
                }
                Some(None) => anyhow::bail!("listener[{i}]: no inherited socket for it"),
            };
            listeners.push(Bound { rt, socket });
        }
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let number = opts.generation.as_ref().map_or(0, |(n, _)| *n);
        let shared = crate::generation::first(
            number,
            config,
            listeners.iter().map(|b| b.rt.clone()).collect(),
            crate::generation::WorkerWide {
                metrics: Arc::new(Metrics::default()),
                access_log,
                worker_index: opts.index,
                shutdown,
                target_conns: Arc::new(
                    opts.max_target_connections
                        .map_or_else(Default::default, TargetConns::new),
                ),
            },
        );
        if opts.health_from_control_plane {
            initial_states(&shared.config, &shared.groups, None);
        }
        let shared = Arc::new(shared);
        let ctl = Ctl {
            ticketer: ticketer.clone(),
            health_from_control_plane: opts.health_from_control_plane,
            listening: None,
        };
        for m in batch {
            apply_control(&shared, &ctl, m);
        }
        let lot = Arc::new(
            crate::accept::park::Lot::new(opts.release_memory).context("parking lot: epoll")?,
        );
        Ok(Worker {
            lot,
            release_memory: opts.release_memory,
            shared,
            listeners,
            stop,
            control,
            ticketer,
            health_from_control_plane: opts.health_from_control_plane,
            sockets: opts.socket_channel.map(|fd| {
                use std::os::fd::FromRawFd as _;
                // SAFETY: the control plane passed this fd to this process for the socket
                // channel alone.
                unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
            }),
        })
    }

    /// `(port, fd)` of every listening socket, in listener order (for an SK_REUSEPORT program).
    pub fn listener_fds(&self) -> Vec<(u16, RawFd)> {
        self.listeners
            .iter()
            .map(|b| (b.rt.config.port, b.socket.as_raw_fd()))
            .collect()
    }

    /// The bound addresses, in listener order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|b| b.socket.local_addr().ok())
            .collect()
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        snapshot(&self.shared)
    }

    /// The worker's access log, for its lines written after [`Worker::serve`] returned: the
    /// requests its runtime drops as it ends (see [`crate::access_log::Pending`]).
    pub fn access_log(&self) -> crate::access_log::AccessLog {
        self.shared.access_log.clone()
    }

    pub fn metrics_handle(&self) -> MetricsHandle {
        MetricsHandle(self.shared.clone(), self.lot.clone())
    }

    /// Serves until `shutdown` completes, then stops accepting and drains: idle HTTP/1.1
    /// connections close at once, busy ones after their response (`connection: close`),
    /// HTTP/2 ones with a GOAWAY (hyper's graceful shutdown), for up to `drain_timeout_seconds`.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let rx = self.shared.shutdown.clone();
        let token = Arc::new(());
        let listening = Arc::new(crate::listening::Listening::new(
            token.clone(),
            rx.clone(),
            self.sockets,
            self.shared.worker_index,
            self.lot.clone(),
        ));
        tokio::spawn(crate::accept::park::run(self.lot.clone(), rx.clone()));
        for b in self.listeners {
            listening.start(&self.shared, b.rt.index, b.socket);
        }
        if let Some(fd) = self.control {
            let sh = self.shared.clone();
            let ctl = Ctl {
                ticketer: self.ticketer.clone(),
                health_from_control_plane: self.health_from_control_plane,
                listening: Some(listening.clone()),
            };
            tokio::spawn(crate::control::follow(fd, move |m| {
                apply_control(&sh, &ctl, m)
            }));
        }
        // The ticker: deadlines of idle connections and of response waits, and the pool sweep.
        // It runs through the drain (requests in flight keep their response timeout).
        let (drained_tx, mut drained) = tokio::sync::oneshot::channel::<()>();
        let sweeper = {
            let mut sh = self.shared.clone();
            let lot = self.lot.clone();
            let release_memory = self.release_memory;
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(crate::idle::TICK);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut last_sweep = Instant::now();
                loop {
                    tokio::select! {
                        _ = ticks.tick() => {}
                        _ = &mut drained => break,
                    }
                    // Idle client connections past their deadline.
                    sh.clock.update();
                    let now = Instant::now();
                    sh.idle.tick(now);
                    lot.tick(now).start();
                    sh.timers.tick(now);
                    // Draining targets with nothing in flight left, at most a tick late.
                    sh.draining.tick(now);
                    // Target connections closed by their target or idled out, every second.
                    if last_sweep.elapsed() >= Duration::from_secs(1) {
                        last_sweep = Instant::now();
                        if let Some(n) = sh.newest() {
                            sh = n;
                        }
                        sh.draining.sweep(now);
                        for g in sh.groups.values() {
                            for t in &g.targets {
                                t.pool.sweep(now);
                            }
                            g.tick(now);
                        }
                        // The counts of rate-limited warnings whose flood stopped.
                        crate::log_limit::flush_ended();
                        // Spares an idle second left unused (this thread's: the worker's
                        // runtime is one thread, `crate::spares`).
                        if trim_spares() >= RELEASE_AFTER_TRIM
                            && let Some(release) = release_memory
                        {
                            release();
                        }
                    }
                }
            })
        };
        shutdown.await;
        // Stop taking connections first: each accept loop takes what is still queued on its
        // socket (the control plane refuses new ones before it signals the workers), then
        // closes it. Only then does the drain begin, so a connection accepted from the queue is
        // served like any other rather than closed as idle.
        tracing::info!(
            worker = self.shared.worker_index,
            "shutting down: closing listeners"
        );
        for l in listening.close_all() {
            let _ = l.await;
        }
        tracing::info!(worker = self.shared.worker_index, "shutting down: draining");
        let _ = self.stop.send(true);
        self.shared.idle.expire_all();
        self.lot.stop();
        let last = self.shared.newest().unwrap_or_else(|| self.shared.clone());
        let deadline = Instant::now() + last.limits.drain_timeout + Duration::from_secs(1);
        while Arc::strong_count(&token) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if Arc::strong_count(&token) > 1 {
            // What is still in flight is cut when the runtime drops its tasks (`weir worker`
            // flushes the log after): the lines the requests' guards write then say so.
            self.shared.access_log.pass_drain_deadline();
        }
        let _ = drained_tx.send(());
        let _ = sweeper.await;
        for g in last.groups.values() {
            for t in &g.targets {
                t.pool.clear();
            }
        }
        crate::log_limit::flush_all();
        // The lines of the drained requests, before the process exits.
        self.shared.access_log.flush(Duration::from_secs(2));
        tracing::info!(
            worker = self.shared.worker_index,
            left = Arc::strong_count(&token) - 1,
            "drained"
        );
        Ok(())
    }
}

/// Releases the spares of every per-thread pool (`crate::spares`) on this thread that the
/// period since the last call did not use, down to what it used at its busiest or the pool's
/// floor; returns the bytes released (nominally). The sweep calls it once a second.
fn trim_spares() -> usize {
    crate::pipeline::readbuf::trim()
        + crate::pipeline::codec::trim_spares()
        + crate::headers::trim_block()
        + crate::h2weir::send_queues::trim()
        + crate::h1::trim_spares()
}

/// Spares released by one sweep (nominally) above which the allocator is asked to give the
/// memory back (`WorkerOptions::release_memory`): after a burst, not for a few each second.
const RELEASE_AFTER_TRIM: usize = 64 * 1024;

#[cfg(test)]
mod spares_trim {
    use super::*;

    /// Every pool `trim_spares` must reach, filled on this thread as a burst leaves them; two
    /// idle sweeps later each is down to its floor.
    #[test]
    fn the_sweep_trims_every_pool_of_its_thread_to_its_floor() {
        use crate::h2weir::send_queues;
        use crate::pipeline::{codec, readbuf};
        // A burst: 200 of each out at once, then all given back.
        let bufs: Vec<_> = (0..200).map(|_| readbuf::take()).collect();
        bufs.into_iter().for_each(readbuf::give_back);
        let maps: Vec<_> = (0..200).map(|_| codec::spare_map(8)).collect();
        maps.into_iter().for_each(codec::recycle_headers);
        let h = http::HeaderMap::new();
        let heads: Vec<_> = (0..200)
            .map(|_| codec::UpstreamHead::new(&http::Method::GET, "/", &h, None))
            .collect();
        drop(heads);
        let mut fields = vec![];
        for _ in 0..200 {
            let mut b = bytes::BytesMut::from(&b"HTTP/1.1 200 OK\r\na: b\r\n\r\n"[..]);
            if let Ok(Some(head)) = codec::parse_response(&mut b) {
                fields.push(head);
            }
        }
        assert_eq!(fields.len(), 200);
        fields.into_iter().for_each(codec::ResponseHead::recycle);
        let queues: Vec<_> = (0..300)
            .map(|_| {
                let mut q = send_queues::take();
                q.push_back(bytes::Bytes::from_static(b"x"));
                q
            })
            .collect();
        queues.into_iter().for_each(send_queues::give_back);
        let block = crate::headers::carved_concat(&[b"abc"]);
        crate::h1::fill_spares_for_test(200);
        let full = (128, (32, 128, 128), 256, 128);
        let held = || {
            (
                readbuf::held(),
                codec::spares_held(),
                send_queues::held(),
                crate::h1::spares_held(),
            )
        };
        assert_eq!(held(), full, "each pool at its bound");
        // The burst's second: everything was used, nothing goes.
        assert_eq!(trim_spares(), 0);
        assert_eq!(held(), full);
        // An idle second: down to the floors (the carving block, unused, goes too).
        let released = trim_spares();
        assert_eq!(
            released,
            120 * 4096 + (28 + 124 + 124) * 1024 + 240 * 512 + 4096 + 124 * 4608
        );
        assert!(released >= RELEASE_AFTER_TRIM);
        assert_eq!(held(), (8, (4, 4, 4), 16, 4));
        assert_eq!(trim_spares(), 0, "nothing more once idle");
        assert_eq!(held(), (8, (4, 4, 4), 16, 4));
        drop(block);
    }

    static RELEASED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    fn count_release() {
        RELEASED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// A real worker (on this test's thread: a current-thread runtime, as in `weir`) after a
    /// burst of HTTP/2 requests: its sweep lets the spares the burst left go once a second
    /// went by without them, and asks the allocator to give the memory back.
    #[tokio::test]
    async fn an_idle_worker_lets_the_spares_of_a_burst_go() {
        use http_body_util::{BodyExt as _, Empty, Full};
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target_port = target.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((s, _)) = target.accept().await {
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                    TokioIo::new(s),
                    hyper::service::service_fn(|_| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            bytes::Bytes::from_static(b"ok"),
                        )))
                    }),
                ));
            }
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = L7Config::from_toml_str(&format!(
            "[[listener]]\naddress = \"127.0.0.1\"\nport = {port}\n\
             default_action = {{ type = \"forward\", target_group = \"t\" }}\n\
             [[target_group]]\nname = \"t\"\n\
             target = [{{ id = \"127.0.0.1\", port = {target_port} }}]\n"
        ))
        .unwrap();
        let opts = WorkerOptions {
            release_memory: Some(count_release),
            ..WorkerOptions::default()
        };
        let w = Worker::bind(Arc::new(cfg), opts).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(w.serve(async move {
            let _ = stopped.await;
        }));
        // h2c with prior knowledge: 100 requests at once on one connection.
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        let driver = tokio::spawn(conn);
        let burst: Vec<_> = (0..100)
            .map(|i| {
                let mut send = send.clone();
                tokio::spawn(async move {
                    let req = hyper::Request::get(format!("http://127.0.0.1/{i}"))
                        .body(Empty::<bytes::Bytes>::new())
                        .unwrap();
                    let r = send.send_request(req).await.unwrap();
                    assert_eq!(r.status(), 200);
                    r.into_body().collect().await.unwrap().to_bytes()
                })
            })
            .collect();
        for r in burst {
            assert_eq!(r.await.unwrap(), "ok");
        }
        drop(send);
        let _ = driver.await;
        let burst_left = (
            crate::pipeline::readbuf::held(),
            crate::h2weir::send_queues::held(),
        );
        assert!(
            burst_left.0 > 16 && burst_left.1 > 16,
            "the burst left spares: {burst_left:?}"
        );
        // Two sweeps at most after the burst (the one of its own second keeps them).
        let start = Instant::now();
        while crate::pipeline::readbuf::held() > 8 && start.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let idle = start.elapsed();
        println!("spares after the burst {burst_left:?}, down to their floors after {idle:?}");
        assert_eq!(
            crate::pipeline::readbuf::held(),
            8,
            "read buffers down to the floor"
        );
        assert_eq!(crate::h2weir::send_queues::held(), 16, "send queues too");
        assert!(
            RELEASED.load(std::sync::atomic::Ordering::SeqCst) >= 1,
            "memory given back"
        );
        let _ = stop.send(());
        serving.await.unwrap().unwrap();
    }
}

#[cfg(test)]
mod idle_size {
    use super::*;

    /// A worker on a free port, and one accepted loopback connection: (worker, client side,
    /// server side, peer address).
    async fn idle_connection() -> (
        Worker,
        tokio::net::TcpStream,
        tokio::net::TcpStream,
        std::net::SocketAddr,
    ) {
        let mut cfg = L7Config::default();
        cfg.listener[0].address = std::net::Ipv4Addr::LOCALHOST.into();
        cfg.listener[0].port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let w = Worker::bind(Arc::new(cfg), WorkerOptions::default()).unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = l.accept().await.unwrap();
        (w, client, server, peer)
    }

    /// What a keep-alive connection waiting for its next request costs is mostly its task
    /// until it is parked (`accept::park`, after `h1::server::PARK_AFTER`), and a TLS one's
    /// for good: keep the future small. 320 before parking; its deadline kept across a poke
    /// or a parking, and the guard's lot, added 48.
    #[tokio::test]
    async fn an_idle_plain_connection_is_a_small_future() {
        let (w, client, server, peer) = idle_connection().await;
        let fut = crate::accept::plain_connection_for_test(
            w.shared.clone(),
            w.listeners[0].rt.clone(),
            server,
            peer,
        );
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 368, "idle connection future grew to {size} bytes");
        drop((fut, client));
    }

    /// An idle TLS connection's task is `accept::serve_tls`'s future: with the handshake and
    /// the established stream boxed, it holds little more than a plain one's, not rustls's
    /// connection state inline (over a kilobyte).
    #[tokio::test]
    async fn an_idle_tls_connection_is_a_small_future() {
        let (w, client, server, peer) = idle_connection().await;
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(crate::certs::provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new()));
        let fut = crate::accept::tls_connection_for_test(
            w.shared.clone(),
            w.listeners[0].rt.clone(),
            server,
            peer,
            Arc::new(tls),
        );
        let size = std::mem::size_of_val(&fut);
        let rustls = std::mem::size_of::<rustls::ServerConnection>();
        println!("idle TLS connection future: {size} bytes (rustls::ServerConnection {rustls})");
        assert!(
            size <= 640 && size < rustls,
            "idle TLS connection future grew to {size} bytes"
        );
        drop((fut, client));
    }
}

#[cfg(test)]
mod reload_health {
    use super::*;
    use crate::generation::{WorkerWide, first, next, parse_l7};

    fn cfg(health_check: &str, targets: &[u16]) -> Arc<L7Config> {
        let targets: Vec<String> = targets
            .iter()
            .map(|p| format!("{{ id = \"127.0.0.1\", port = {p} }}"))
            .collect();
        Arc::new(
            parse_l7(&format!(
                "[[listener]]\nport = 8080\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n\
                 [[target_group]]\nname = \"web\"\ntarget = [{}]\nhealth_check = {{ {health_check} }}\n\
                 [[target_group]]\nname = \"spare\"\ntarget = [{{ id = \"127.0.0.1\", port = 9009 }}]\n",
                targets.join(", ")
            ))
            .unwrap(),
        )
    }

    /// The generation after `cur` for `config`, its states set as a worker under `weir run`
    /// sets them.
    fn reload(cur: &Shared, number: u64, config: Arc<L7Config>) -> Shared {
        let (new, _) = next(cur, number, config, Vec::new());
        initial_states(&new.config, &new.groups, Some(cur));
        new
    }

    fn states(sh: &Shared, group: &str) -> Vec<(u16, &'static str)> {
        sh.groups[group]
            .targets
            .iter()
            .map(|t| (t.addr.port(), t.state().name()))
            .collect()
    }

    #[test]
    fn a_reload_keeps_the_control_planes_states_of_the_targets_that_stay() {
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let one = first(
            1,
            cfg("interval_seconds = 5", &[9001, 9002]),
            Vec::new(),
            WorkerWide {
                metrics: Default::default(),
                access_log: AccessLog::start(&AccessLogTarget::Off).unwrap(),
                worker_index: 0,
                shutdown: rx,
                target_conns: Default::default(),
            },
        );
        initial_states(&one.config, &one.groups, None);
        assert_eq!(states(&one, "web"), [(9001, "initial"), (9002, "initial")]);
        // The control plane's verdicts.
        one.groups["web"].targets[0].set_state(TargetState::Healthy);
        one.groups["web"].targets[1].set_state(TargetState::Unhealthy);
        // Only a check setting changes, and a target is registered: the two keep their states
        // (no failing open to the unhealthy one), the new one waits for its first check.
        let two = reload(&one, 2, cfg("interval_seconds = 6", &[9001, 9002, 9003]));
        assert!(!Arc::ptr_eq(&one.groups["web"], &two.groups["web"]));
        assert_eq!(
            states(&two, "web"),
            [(9001, "healthy"), (9002, "unhealthy"), (9003, "initial")]
        );
        // Checks turned off: every target healthy at once (the control plane says so too).
        let three = reload(&two, 3, cfg("enabled = false", &[9001, 9002, 9003]));
        assert_eq!(
            states(&three, "web"),
            [(9001, "healthy"), (9002, "healthy"), (9003, "healthy")]
        );
        // On again: no verdict yet for any of them.
        let four = reload(&three, 4, cfg("interval_seconds = 5", &[9001, 9002, 9003]));
        assert_eq!(
            states(&four, "web"),
            [(9001, "initial"), (9002, "initial"), (9003, "initial")]
        );
        assert_eq!(states(&four, "spare"), [(9009, "unused")]);
    }
}
