//! L7 worker processes and their supervisor.
//!
//! The control plane binds one SO_REUSEPORT socket per (listener, worker) ([`sockets`]), loads the
//! steering program over them ([`steer`]), and runs `weir worker --index i` for each worker with
//! its sockets inherited. A worker that dies is taken out of the Maglev table at once (its new
//! flows go to the others), its sockets are closed so the kernel migrates their queued
//! connections to the live workers (`net.ipv4.tcp_migrate_req`), and it is restarted on fresh
//! sockets and put back in the table when it reports ready.

pub mod child;
pub mod control;
pub mod nofile;
pub mod relay;
pub mod relisten;
pub mod sandbox;
pub mod sockets;
pub mod steer;
pub mod tickets;
pub mod watchdog;

use std::{
    net::SocketAddr,
    os::{
        fd::{AsRawFd, RawFd},
        unix::process::CommandExt,
    },
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context;
use nix::{sys::signal::Signal, unistd::Pid};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::{Config, Steering as SteeringMode};

/// The environment variable carrying a worker's inherited listening fds, in listener order.
pub const LISTEN_FDS_ENV: &str = "WEIR_LISTEN_FDS";
/// The line a worker prints on stdout once it serves.
pub const READY_LINE: &str = "ready";
const MAX_RESTART_DELAY: Duration = Duration::from_secs(5);
/// A worker that lived this long is healthy again: its restart delay starts over.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// With it on, closing a listener migrates its queued connections to the others of its group.
/// Set at start, its original recorded first (`crate::sysctl`), restored at shutdown.
const MIGRATE_REQ: &str = "net/ipv4/tcp_migrate_req";

enum Event {
    Ready {
        worker: usize,
        generation: u64,
    },
    Exited {
        worker: usize,
        generation: u64,
        status: String,
    },
}

struct Slot {
    pid: Option<u32>,
    generation: u64,
    live: bool,
    /// When the current process said `ready` (the watchdog's first sign of it).
    ready_at: Option<Instant>,
    started: Instant,
    delay: Duration,
    restart_at: Option<Instant>,
    /// Our end of the worker's control channel (its stdin).
    control: Option<control::WorkerPipe>,
    /// Our end of the worker's socket channel (`lb_l7::socket_channel`).
    sockets: Option<std::os::fd::OwnedFd>,
}

/// Supervises the worker processes until told to stop.
pub struct Supervisor {
    config_path: Option<PathBuf>,
    /// The TLS session ticket keys every worker gets, so a session resumes on any of them.
    tickets: tickets::Rotation,
    groups: Vec<sockets::ListenerGroup>,
    steering: Option<steer::Steering>,
    slots: Vec<Slot>,
    base_delay: Duration,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    /// Workers' access-log lines go to weir's stdout through this one writer.
    log_sink: relay::Sink,
    /// What the control plane's parts send the workers ([`control::ControlHandle`]).
    control: control::ControlHandle,
    commands: mpsc::UnboundedReceiver<control::Command>,
    sticky: control::Sticky,
    /// The workers' metrics reports, summed (`crate::metrics::store`); their times are the
    /// watchdog's signs of life.
    metrics: crate::metrics::store::Store,
    watchdog: Option<watchdog::Watchdog>,
    /// `tcp_migrate_req` was set at start (so it is put back on before a dead worker's sockets
    /// close: [`Supervisor::reassert_migrate`]).
    migrate: bool,
    /// How many workers are ready (in the steering table), for the service manager; sent after
    /// the change is logged.
    live_tx: watch::Sender<usize>,
}

impl Supervisor {
    /// Binds the listeners' sockets and loads steering; starts no process yet.
    pub fn new(cfg: &Config, config_path: Option<PathBuf>) -> anyhow::Result<Supervisor> {
        let n = cfg.workers.resolved_count();
        let groups = sockets::bind_groups(&cfg.l7.listener, n)?;
        let steering = match cfg.workers.steering {
            SteeringMode::Kernel => None,
            SteeringMode::Maglev => match steer::Steering::load(n, cfg.workers.hash_seed) {
                Ok(mut s) => {
                    s.attach(&groups)?;
                    Some(s)
                }
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "Maglev steering unavailable (needs CAP_BPF); the kernel's SO_REUSEPORT hash spreads connections");
                    None
                }
            },
        };
        info!(
            workers = n,
            listeners = groups.len(),
            steering = if steering.is_some() {
                "maglev"
            } else {
                "kernel"
            },
            "L7 workers"
        );
        let (events_tx, events) = mpsc::unbounded_channel();
        let base_delay = Duration::from_millis(cfg.workers.restart_delay_ms.max(1));
        let slots = (0..n)
            .map(|_| Slot {
                pid: None,
                generation: 0,
                live: false,
                ready_at: None,
                started: Instant::now(),
                delay: base_delay,
                restart_at: Some(Instant::now()),
                control: None,
                sockets: None,
            })
            .collect();
        let tickets =
            tickets::Rotation::new(Duration::from_secs(cfg.workers.tls_ticket_rotation_seconds));
        let (control, commands) = control::ControlHandle::new();
        let migrate = match crate::sysctl::set(MIGRATE_REQ, "1") {
            Ok(()) => true,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "a dead worker's queued connections wait for its restart");
                false
            }
        };
        Ok(Supervisor {
            config_path,
            tickets,
            groups,
            steering,
            slots,
            base_delay,
            events_tx,
            events,
            log_sink: relay::Sink::stdout()?,
            control,
            commands,
            sticky: control::Sticky::default(),
            metrics: crate::metrics::store::Store::new(n),
            watchdog: watchdog::Watchdog::new(cfg.workers.watchdog_seconds),
            live_tx: watch::Sender::new(0),
            migrate,
        })
    }

    /// The workers' metrics, summed over their processes (`crate::metrics`).
    pub fn metrics_store(&self) -> crate::metrics::store::Store {
        self.metrics.clone()
    }

    /// Talks to every worker, now and later (see [`control`]).
    pub fn control_handle(&self) -> control::ControlHandle {
        self.control.clone()
    }

    /// Sets a sticky message before any worker starts (so the first workers have it in their
    /// initial batch: the configuration, `crate::reload`).
    pub fn set_sticky(&mut self, key: &str, msg: &lb_l7::control::ControlMsg) {
        self.sticky.set(key.to_string(), control::frame(msg));
    }

    /// How many workers are ready now, and each change of it.
    pub fn ready_workers(&self) -> watch::Receiver<usize> {
        self.live_tx.subscribe()
    }

    /// The number of worker slots.
    pub fn workers(&self) -> usize {
        self.slots.len()
    }

    /// The live workers, by index.
    fn live(&self) -> Vec<u32> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].live)
            .map(|i| i as u32)
            .collect()
    }

    fn update_steering(&mut self) {
        let live = self.live();
        if let Some(Err(e)) = self.steering.as_mut().map(|s| s.set_live(&live)) {
            warn!(error = %e, "updating the steering table failed");
        }
    }

    fn spawn(&mut self, worker: usize) -> anyhow::Result<()> {
        const MIMALLOC_EAGER_ENV: &str = "MIMALLOC_ARENA_EAGER_COMMIT";
        let listen: Vec<RawFd> = self.groups.iter().map(|g| g.fd_of(worker)).collect();
        let (ours, theirs) =
            lb_l7::socket_channel::pair().context("the worker's socket channel")?;
        let fds: Vec<RawFd> = listen.iter().copied().chain([theirs.as_raw_fd()]).collect();
        let fd_list = listen
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join(",");
        // The worker's metrics reports (`crate::metrics`): it inherits the write end.
        let (report_r, report_w) = crate::metrics::reader::pipe().context("the metrics pipe")?;
        let fds: Vec<RawFd> = fds
            .into_iter()
            .chain([std::os::fd::AsRawFd::as_raw_fd(&report_w)])
            .collect();
        // The running binary itself, not the file at its path: a package upgrade or a rebuild
        // that replaced the file under a running weir would otherwise fail every restart
        // (ENOENT while it is relinked) or start a worker of another version. argv[0] keeps
        // the path, for ps and the logs.
        let mut cmd = std::process::Command::new("/proc/self/exe");
        std::os::unix::process::CommandExt::arg0(&mut cmd, std::env::current_exe()?);
        cmd.env(
            crate::metrics::FD_ENV,
            std::os::fd::AsRawFd::as_raw_fd(&report_w).to_string(),
        );
        cmd.arg("worker").arg("--index").arg(worker.to_string());
        if let Some(p) = &self.config_path {
            cmd.arg("--config").arg(p);
        }
        // mimalloc commits its arenas eagerly by default: a worker holding 10,000 idle
        // connections then shows ~2.5 KB of RSS per connection instead of ~1.1 KB (measured
        // by `cargo xtask bench http`). Commit on demand unless the operator chose otherwise.
        if std::env::var_os(MIMALLOC_EAGER_ENV).is_none() {
            cmd.env(MIMALLOC_EAGER_ENV, "0");
        }
        for v in crate::notify::WORKER_ENV_REMOVED {
            cmd.env_remove(v);
        }
        cmd.env(LISTEN_FDS_ENV, fd_list)
            .env(control::CHANNEL_ENV, "0")
            .env(control::SOCKETS_ENV, theirs.as_raw_fd().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        // SAFETY: only async-signal-safe calls between fork and exec: fcntl on fds we own, prctl.
        unsafe {
            cmd.pre_exec(move || {
                for fd in &fds {
                    if libc::fcntl(*fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // Die with the control plane, whatever kills it.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = tokio::process::Command::from(cmd)
            .kill_on_drop(false)
            .spawn()
            .with_context(|| format!("spawning worker {worker}"))?;
        drop(theirs);
        let control = self.start_control(worker, child.stdin.take());
        let slot = &mut self.slots[worker];
        slot.control = control;
        slot.sockets = Some(ours);
        slot.generation += 1;
        slot.pid = child.id();
        slot.started = Instant::now();
        slot.restart_at = None;
        let generation = slot.generation;
        let tx = self.events_tx.clone();
        let stdout = child.stdout.take();
        let sink = self.log_sink.clone();
        // The relay and the wait are separate tasks: a blocked stdout (weir's reader stopped)
        // must not hide a worker's death. `shake` orders a `Ready` before the `Exited`.
        let (shake_tx, shake) = tokio::sync::oneshot::channel::<()>();
        if let Some(out) = stdout {
            let tx = tx.clone();
            tokio::spawn(async move {
                relay::worker_stdout(out, &sink, move || {
                    let _ = tx.send(Event::Ready { worker, generation });
                    let _ = shake_tx.send(());
                })
                .await;
            });
        }
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            let _ = shake.await;
            let _ = tx.send(Event::Exited {
                worker,
                generation,
                status,
            });
        });
        info!(worker, pid = ?self.slots[worker].pid, "worker started");
        drop(report_w);
        self.metrics
            .started(worker, generation, self.slots[worker].pid);
        tokio::spawn(crate::metrics::reader::read(
            report_r,
            self.metrics.clone(),
            worker,
            generation,
        ));
        Ok(())
    }

    /// Starts a worker's control channel with its initial batch: the ticket keys, the sticky
    /// messages, `Started`. Without a channel the worker cannot start; it exits and is restarted.
    fn start_control(
        &self,
        worker: usize,
        stdin: Option<tokio::process::ChildStdin>,
    ) -> Option<control::WorkerPipe> {
        let Some(stdin) = stdin else {
            warn!(worker, "no control channel (stdin pipe) for the worker");
            return None;
        };
        let pipe = control::WorkerPipe::start(worker, stdin);
        let first = [control::frame(&self.tickets.message())];
        let last = [control::frame(&lb_l7::control::ControlMsg::Started)];
        for f in first.iter().chain(self.sticky.frames()).chain(&last) {
            if let Err(e) = pipe.send(f) {
                warn!(worker, error = %e, "cannot start the worker's control channel");
                return None;
            }
        }
        Some(pipe)
    }

    /// Sends a frame to every running worker. One that stopped reading is killed: its restart
    /// gets the current state in its initial batch, where a lost message would leave it behind.
    fn send_all(&mut self, f: &control::Frame) {
        for (worker, s) in self.slots.iter().enumerate() {
            let (Some(pipe), Some(pid)) = (&s.control, s.pid) else {
                continue;
            };
            match pipe.send(f) {
                Ok(()) => {}
                Err(control::SendError::Closed) => {}
                Err(e @ control::SendError::Stuck) => {
                    warn!(worker, error = %e, "restarting the worker");
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                }
            }
        }
    }

    fn command(&mut self, c: control::Command) {
        match c {
            control::Command::Broadcast(f) => self.send_all(&f),
            control::Command::Sticky(key, f) => {
                self.send_all(&f);
                self.sticky.set(key, f);
            }
            control::Command::Generation(key, f, listeners) => {
                self.reconfigure(listeners);
                self.send_all(&f);
                self.sticky.set(key, f);
            }
            control::Command::ReopenAccessLog(path) => self.reopen_access_log(&path),
        }
    }

    /// Opens the access-log file again, here with root's rights (a rotation may leave a file
    /// only root can open, and a worker in its sandbox opens no file), and sends it to every
    /// running worker over its socket channel, then tells them to take it. A worker started
    /// later opens the path itself. A worker the file cannot reach keeps writing to the old one.
    fn reopen_access_log(&mut self, path: &std::path::Path) {
        let file = match lb_l7::access_log::open_file(path) {
            Ok(f) => f,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "cannot reopen the access log: the workers keep writing to the file they have");
                return;
            }
        };
        for (worker, slot) in self.slots.iter().enumerate() {
            let (Some(_), Some(chan)) = (slot.pid, &slot.sockets) else {
                continue;
            };
            if let Err(e) = lb_l7::socket_channel::send_access_log(chan, &file) {
                warn!(worker, error = %e, "cannot send the worker the reopened access log: it keeps the old file");
            }
        }
        self.send_all(&control::frame(
            &lb_l7::control::ControlMsg::ReopenAccessLog,
        ));
        info!(path = %path.display(), "access log reopened");
    }

    /// A generation's listeners, before the generation is sent. A removed listener's port is
    /// refused by the steering program from now on (RST to new SYNs); the workers, at the
    /// generation, take what is queued on its sockets and close them, and our descriptors close
    /// here. An added listener gets a free steering slot, the program on its group, and its
    /// sockets sent to every running worker over its socket channel (a worker that cannot take
    /// them is restarted: a new worker inherits every socket). The groups take the generation's
    /// order, which is the order a worker started from now on inherits them in.
    fn reconfigure(&mut self, l: control::Listeners) {
        let ports: Vec<u16> = l.order.iter().map(SocketAddr::port).collect();
        let (kept, removed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.groups)
            .into_iter()
            .partition(|g| ports.contains(&g.addr.port()));
        for g in &removed {
            if let Some(Err(e)) = self.steering.as_mut().map(|s| s.refuse_port(g.addr.port())) {
                warn!(listener = %g.addr, error = %format!("{e:#}"), "cannot refuse the removed listener's new connections");
            }
            info!(listener = %g.addr, "listener removed: new connections refused, queued ones served");
        }
        let mut groups = kept;
        for mut g in l.added {
            g.slot = (0..)
                .find(|s| !groups.iter().any(|k| k.slot == *s))
                .unwrap_or(0);
            if let Some(Err(e)) = self.steering.as_mut().map(|s| s.add_group(&g)) {
                warn!(listener = %g.addr, error = %format!("{e:#}"), "steering the added listener failed: the kernel's hash spreads its connections");
            }
            for (worker, slot) in self.slots.iter().enumerate() {
                let (Some(pid), Some(chan)) = (slot.pid, &slot.sockets) else {
                    continue;
                };
                if let Err(e) = lb_l7::socket_channel::send(chan, &[(g.addr, g.fd_of(worker))]) {
                    warn!(worker, listener = %g.addr, error = %e, "cannot send the worker the added listener's socket: restarting it");
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                }
            }
            info!(listener = %g.addr, slot = g.slot, "listener added");
            groups.push(g);
        }
        groups.sort_by_key(|g| ports.iter().position(|p| *p == g.addr.port()));
        self.groups = groups;
        // Our descriptors of the removed sockets: each closes when its worker's does.
        drop(removed);
    }

    /// A new TLS ticket key, sent with the previous one to every running worker.
    fn rotate_tickets(&mut self) {
        self.tickets.rotate();
        let f = control::frame(&self.tickets.message());
        self.send_all(&f);
        info!("TLS session ticket keys rotated");
    }

    /// Puts `tcp_migrate_req` back on when something else turned it off since the start
    /// (`sysctl --system`, config management): the kernel reads it as a socket closes, so off,
    /// a dead worker's queued connections would be reset instead of moved. Checked at each
    /// death, where it counts; the original recorded at start stays the one restored at exit.
    fn reassert_migrate(&self) {
        if !self.migrate {
            return;
        }
        match crate::sysctl::reassert(MIGRATE_REQ, "1") {
            Ok(None) => {}
            Ok(Some(found)) => warn!(
                %found,
                "net.ipv4.tcp_migrate_req was changed while weir runs: set to 1 again, so the dead worker's queued connections move to the others"
            ),
            Err(e) => {
                warn!(error = %format!("{e:#}"), "cannot set net.ipv4.tcp_migrate_req again: the dead worker's queued connections are reset")
            }
        }
    }

    /// After `worker` died: close its sockets so the kernel migrates their queued connections to
    /// the live workers, and give the restart fresh ones (steered once it is ready again).
    fn replace_sockets(&mut self, worker: usize) {
        self.reassert_migrate();
        for g in self.groups.iter_mut() {
            let (i, slot) = (g.addr, g.slot);
            match g.replace(worker) {
                Ok(Some(fresh)) => {
                    if let Some(Err(e)) = self
                        .steering
                        .as_mut()
                        .map(|s| s.set_socket(slot, worker, fresh))
                    {
                        warn!(worker, listener = %i, error = %format!("{e:#}"), "steering the fresh socket failed");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(worker, listener = %i, error = %format!("{e:#}"), "replacing the socket failed")
                }
            }
        }
    }

    fn next_restart(&self) -> Option<Instant> {
        self.slots.iter().filter_map(|s| s.restart_at).min()
    }

    /// Runs the workers until `stop` turns true, then stops them (SIGTERM: they drain) and waits
    /// up to `drain` for them to exit.
    pub async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        drain: Duration,
    ) -> anyhow::Result<()> {
        loop {
            let now = Instant::now();
            for w in 0..self.slots.len() {
                if self.slots[w].restart_at.is_some_and(|t| t <= now)
                    && let Err(e) = self.spawn(w)
                {
                    warn!(worker = w, error = %format!("{e:#}"), "restart failed");
                    let d = self.slots[w].delay;
                    self.slots[w].restart_at = Some(now + d);
                }
            }
            let wake = self.next_restart();
            let round = self.watchdog.as_ref().map(|w| w.next_round(now));
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = tokio::time::sleep_until(self.tickets.next_at().into()) => self.rotate_tickets(),
                Some(c) = self.commands.recv() => self.command(c),
                ev = self.events.recv() => match ev {
                    Some(Event::Ready { worker, generation }) if generation == self.slots[worker].generation => {
                        self.slots[worker].live = true;
                        self.slots[worker].ready_at = Some(Instant::now());
                        self.update_steering();
                        info!(worker, live = ?self.live(), "worker ready");
                        self.live_tx.send_replace(self.live().len());
                    }
                    Some(Event::Exited { worker, generation, status }) if generation == self.slots[worker].generation => {
                        let slot = &mut self.slots[worker];
                        slot.live = false;
                        slot.ready_at = None;
                        slot.pid = None;
                        if slot.started.elapsed() > STABLE_AFTER {
                            slot.delay = self.base_delay;
                        }
                        let delay = slot.delay;
                        slot.restart_at = Some(Instant::now() + delay);
                        slot.delay = (slot.delay * 2).min(MAX_RESTART_DELAY);
                        self.update_steering();
                        self.replace_sockets(worker);
                        warn!(worker, %status, restart_in = ?delay, live = ?self.live(), "worker died");
                        self.live_tx.send_replace(self.live().len());
                    }
                    _ => {}
                },
                _ = async { match wake { Some(t) => tokio::time::sleep_until(t.into()).await, None => std::future::pending().await } } => {}
                _ = async { match round { Some(t) => tokio::time::sleep_until(t.into()).await, None => std::future::pending().await } } => self.watchdog_round(),
            }
        }
        self.shutdown(drain).await;
        Ok(())
    }

    /// Kills every worker that has been silent for the watchdog's timeout ([`watchdog`]): since
    /// its last report, its `ready`, or, when it has neither, its start (a worker stuck while
    /// it starts, e.g. opening a file that blocks, is never ready; it gets
    /// [`watchdog::START_GRACE`] at least). A ready one leaves the
    /// steering table at once; the exit then takes the path of any death: its sockets close
    /// (the queued connections migrate) and it is restarted.
    fn watchdog_round(&mut self) {
        let Some(dog) = self.watchdog.as_mut() else {
            return;
        };
        let seen = self.slots.iter().enumerate().filter_map(|(w, s)| {
            s.pid?;
            let since = s.ready_at.unwrap_or(s.started);
            let reported = self.metrics.reported_at(w, s.generation);
            Some(watchdog::Seen {
                worker: w,
                heard: reported.map_or(since, |r| r.max(since)),
                ready: s.ready_at.is_some(),
            })
        });
        let silent = dog.round(Instant::now(), seen.collect::<Vec<_>>());
        for watchdog::Silent { worker, silent } in silent {
            let slot = &mut self.slots[worker];
            let Some(pid) = slot.pid else { continue };
            if slot.live {
                warn!(worker, pid, silent = ?silent, "worker unresponsive (no report): killing it (SIGKILL) and restarting it; its queued connections move to the others");
            } else {
                warn!(worker, pid, silent = ?silent, "worker did not start (no report, not ready): killing it (SIGKILL) and restarting it");
            }
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            slot.live = false;
            slot.ready_at = None;
            self.metrics.watchdog_killed(worker);
            self.update_steering();
            self.live_tx.send_replace(self.live().len());
        }
    }

    /// Stops taking connections first, then lets the workers drain: the steering program
    /// refuses every new connection (RST to its SYN) from now on; each worker, on SIGTERM, accepts
    /// what is already queued on its sockets and closes them (`lb_l7` accept loop); our own
    /// descriptors of the sockets close here, so the sockets are gone once the workers' are.
    /// Nothing new is queued where no one will accept it. (Without the steering program —
    /// `steering = "kernel"` or no CAP_BPF — a connection arriving between a worker's last
    /// accept and its close can still be reset.)
    async fn shutdown(&mut self, drain: Duration) {
        match self.steering.as_mut().map(|s| s.refuse_new()) {
            Some(Ok(())) => info!("new connections are refused from now on"),
            Some(Err(e)) => {
                warn!(error = %format!("{e:#}"), "cannot refuse new connections in the steering program")
            }
            None => {}
        }
        for s in &self.slots {
            if let Some(pid) = s.pid {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
        }
        self.groups.clear();
        let deadline = Instant::now() + drain;
        while self.slots.iter().any(|s| s.pid.is_some()) && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(100), self.events.recv()).await {
                Ok(Some(Event::Exited {
                    worker, generation, ..
                })) if generation == self.slots[worker].generation => {
                    self.slots[worker].pid = None;
                }
                Ok(None) => break,
                _ => {}
            }
        }
        for s in &self.slots {
            if let Some(pid) = s.pid {
                warn!(pid, "worker did not drain in time: SIGKILL");
                let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
        if let Err(e) = crate::sysctl::restore(MIGRATE_REQ) {
            warn!("{e:#}");
        }
        info!("workers stopped");
    }
}
