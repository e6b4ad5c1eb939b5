//! `weir run`: the control plane's main loop.
//!
//! load config → load eBPF → program maps → pin → attach → serve L7 → print rates → on
//! SIGINT/SIGTERM or any error: stop L7, detach, remove pins. Cleanup is done by guards
//! (`Attachment`, `PinDir`) so an early return or a panic cleans up the same way.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::{
    cli::RunArgs,
    config::Config,
    notify, reload, stats,
    workers::{nofile, sandbox::user},
    xdp::{self, link_watch::LinkEvents, tier::XdpTier},
};

/// Before any worker starts: the open-file limit they inherit, and the user they will become.
fn prepare_workers(cfg: &Config, path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let lb = &cfg.l7.load_balancer;
    let listeners = cfg.l7.listener.len();
    let set = nofile::connections_set(path);
    match nofile::ensure(lb.max_connections_per_worker, listeners, set)? {
        nofile::Sized::Fits(n) => info!(
            nofile = n,
            "open-file limit (RLIMIT_NOFILE) for the workers"
        ),
        nofile::Sized::Lowered { limit, connections } => warn!(
            nofile = limit,
            connections,
            "RLIMIT_NOFILE cannot fit the default max_connections_per_worker ({}): each worker takes at most {connections} connections; raise the limit (systemd LimitNOFILE={}) or set max_connections_per_worker",
            lb.max_connections_per_worker,
            nofile::needed(lb.max_connections_per_worker, listeners)
        ),
    }
    if !nix::unistd::geteuid().is_root() {
        warn!("weir is not root: workers run as its user, [workers] user is not applied");
        return Ok(());
    }
    let (id, origin) = user::ensure(&cfg.workers)?;
    crate::workers::sandbox::privileges::check_can_supervise(&id)?;
    match origin {
        user::Origin::Existing => {}
        user::Origin::Created => {
            info!(user = %id.user, uid = id.uid.as_raw(), "created the workers' system user")
        }
        user::Origin::Fallback(why) => {
            warn!(%why, "cannot create the `weir` user: the workers fall back to `nobody`")
        }
    }
    info!(user = %id.user, uid = id.uid.as_raw(), group = %id.group, gid = id.gid.as_raw(), seccomp = cfg.workers.seccomp, "workers run unprivileged");
    Ok(())
}

/// Applies the next generation of the file (SIGHUP, or a [`reload::ReloadHandle`]): validated
/// completely first (a bad file changes nothing and the located reason is returned and logged;
/// the sockets of added listeners are bound then, `workers::relisten`), then the XDP maps in
/// place (VIPs, deny-list, SYN settings: `xdp::reload`; the attach mode cannot change) and the
/// workers' generation with its listeners.
fn apply_reload(
    gens: &mut reload::Generations,
    xdp_tier: &mut Option<XdpTier>,
    l7: &Option<crate::l7::L7Handle>,
    no_l7: bool,
) -> reload::ReloadResult {
    let mut listeners = None;
    let next = gens.next_with(|running, new| {
        if l7.is_none() {
            // No workers run: with --no-l7 the listeners only name VIPs; without listeners at
            // start there is no supervisor to serve new ones.
            if !no_l7 && !new.l7.listener.is_empty() {
                return Err((
                    "listener".into(),
                    "weir started without listeners, so no L7 workers run: adding the first listener needs a restart".into(),
                ));
            }
            return Ok(());
        }
        listeners = crate::workers::relisten::prepare(running, new)?;
        Ok(())
    });
    let (generation, cfg) = match next {
        Ok((g, cfg)) => {
            for w in cfg.l7.warnings() {
                warn!(config = %cfg.source, generation = g, "{w}");
            }
            (g, cfg.clone())
        }
        Err(e) => {
            // One line: the log's and the caller's (the error lists each located problem).
            let why = e
                .to_string()
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            warn!(
                "reload refused, generation {} stays: {why}",
                gens.generation()
            );
            gens.set_refused(Some(why.clone()));
            return Err(why);
        }
    };
    if let Some(t) = xdp_tier {
        match t.apply(&cfg) {
            Ok(()) => t.warn_uncovered(&cfg, !no_l7),
            Err(e) => {
                let why = format!("generation {generation}: applying the XDP maps: {e:#}");
                warn!("{why}");
                gens.set_refused(Some(why.clone()));
                return Err(why);
            }
        }
    }
    if cfg.l7.listener.is_empty() && l7.is_some() {
        warn!(
            generation,
            "this reload removes every listener: nothing is served on any port until a reload adds one back"
        );
    }
    send_generation(gens, l7, listeners);
    gens.set_refused(None);
    info!(generation, config = %cfg.source, "configuration reloaded: generation {generation} in force");
    // After the "reloaded" line, so the last word of a reload is its certificates' state.
    crate::certificates::log_warnings(gens.certificates(), &cfg.source, generation);
    Ok(generation)
}

/// [`apply_reload`] with the service manager told (`crate::notify`): reloading, then serving
/// again, under the generation in force and, when refused, why.
fn reload_notified(
    gens: &mut reload::Generations,
    xdp_tier: &mut Option<XdpTier>,
    l7: &Option<crate::l7::L7Handle>,
    no_l7: bool,
) -> reload::ReloadResult {
    notify::reloading();
    let r = apply_reload(gens, xdp_tier, l7, no_l7);
    let status = match &r {
        Ok(g) => format!("serving: generation {g}"),
        Err(why) => format!(
            "serving: generation {} (reload refused: {why})",
            gens.generation()
        ),
    };
    notify::reloaded(&crate::certificates::with_summary(
        status,
        gens.certificates(),
    ));
    r
}

/// SIGUSR1, as nginx: the access-log file is opened again (after logrotate moved it away) and
/// every worker writes to the new one (`Supervisor::reopen_access_log`).
fn reopen_access_log(gens: &reload::Generations, l7: &Option<crate::l7::L7Handle>) {
    use lb_l7::access_log::AccessLogTarget;
    match (
        AccessLogTarget::of(&gens.config().l7.load_balancer.access_logs),
        l7,
    ) {
        (AccessLogTarget::File(path), Some(l7)) => {
            info!(path = %path.display(), "SIGUSR1: reopening the access log");
            l7.control.reopen_access_log(path);
        }
        _ => info!("SIGUSR1: no access-log file to reopen"),
    }
}

/// Resolves at the interface's next link or address change (never without a watch).
async fn link_changed(
    events: &mut Option<LinkEvents>,
) -> std::io::Result<xdp::link_watch::Touched> {
    match events {
        Some(e) => e.changed().await,
        None => std::future::pending().await,
    }
}

/// Resolves when the number of ready workers changes, with it and the number of workers
/// (`(0, 0)` at once when no worker runs: `--no-l7`, no listener).
async fn workers_ready(
    live: &mut Option<(tokio::sync::watch::Receiver<usize>, usize)>,
) -> (usize, usize) {
    match live {
        None => (0, 0),
        Some((rx, n)) => match rx.changed().await {
            Ok(()) => (*rx.borrow_and_update(), *n),
            // The supervisor ended: `crate::l7::wait` says why.
            Err(_) => std::future::pending().await,
        },
    }
}

/// The generation `gens` holds goes to every worker (sticky: a restarted worker gets it too),
/// then to the health checker (its states then reach workers that have it), the status file.
fn send_generation(
    gens: &reload::Generations,
    l7: &Option<crate::l7::L7Handle>,
    listeners: Option<crate::workers::control::Listeners>,
) {
    if let Some(l7) = l7 {
        match listeners {
            None => l7.control.set_sticky(reload::STICKY_KEY, &gens.message()),
            Some(l) => l7
                .control
                .set_generation(reload::STICKY_KEY, &gens.message(), l),
        }
        l7.health_config.apply(gens.generation(), &gens.config().l7);
    }
    reload::write_status(gens.generation(), &gens.config().source);
}

/// Applies a run-time target change (`crate::overlay`): a new generation as a reload makes
/// one, or the generation in force when the targets in force stay the same.
fn apply_targets(
    gens: &mut reload::Generations,
    l7: &Option<crate::l7::L7Handle>,
    change: &crate::overlay::TargetChange,
) -> reload::TargetsResult {
    let draining = gens.draining(l7.as_ref().map(|l| &l.health), change);
    match gens.change_targets(change, &draining) {
        Ok(Some(generation)) => {
            send_generation(gens, l7, None);
            info!(generation, change = ?change, "run-time target change: generation {generation} in force");
            Ok(generation)
        }
        Ok(None) => Ok(gens.generation()),
        Err(e) => {
            warn!(change = ?change, "run-time target change refused: {e}");
            Err(e.into())
        }
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let validated = reload::validate(args.config.as_deref())?;
    reload::open_access_log(&validated.config, &validated.text)?;
    let cfg = validated.config.clone();
    let mut gens = reload::Generations::new(args.config.clone(), validated);
    info!(config = %cfg.source, generation = 1, "configuration loaded");
    for w in cfg.l7.warnings() {
        warn!(config = %cfg.source, "{w}");
    }
    crate::certificates::log_warnings(gens.certificates(), &cfg.source, 1);
    if cfg.l7.listener.is_empty() && args.iface.is_none() {
        // Legal (a reload cannot add the first listener, though), and most likely a mistake:
        // a file cut short by configuration management, the wrong --config.
        warn!(config = %cfg.source, "nothing to serve: the configuration has no [[listener]] and weir runs without --iface (no XDP tier); adding a listener needs a restart");
    }
    // The admin socket first: a path another daemon answers on stops the start here.
    let admin = crate::admin::bind(&cfg, args.iface.as_deref())?;
    let metrics_page = crate::metrics::server::bind(&cfg.metrics)?;
    // Host sysctls a weir killed without its cleanup left changed are put back first.
    crate::sysctl::recover().context("restoring host sysctls")?;
    if !args.no_l7 && !cfg.l7.listener.is_empty() {
        prepare_workers(&cfg, args.config.as_deref())?;
    }
    let mut xdp_tier = match &args.iface {
        Some(iface) => Some(
            xdp::tier::start(
                &cfg,
                args.xdp_mode.unwrap_or(cfg.xdp.mode),
                args.replace,
                iface,
            )
            .context("starting the XDP tier")?,
        ),
        None => None,
    };
    if let Some(t) = &xdp_tier {
        t.warn_uncovered(&cfg, !args.no_l7);
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut l7 = if args.no_l7 {
        None
    } else {
        crate::l7::start(
            &cfg,
            args.iface.as_deref(),
            args.config.clone(),
            gens.message(),
            stop_rx.clone(),
        )?
    };
    reload::remove_stale_status();
    reload::write_status(gens.generation(), &cfg.source);
    // Reloads asked for by other parts (the admin API takes `reload_handle`), like SIGHUP.
    let (reload_handle, mut reload_requests) = reload::ReloadHandle::new();
    let in_force = reload::InForce::new(&gens);
    let xdp_ifaces = xdp_tier.iter().filter_map(|t| t.attachment.as_ref());
    let admin = crate::admin::wiring::serve(
        admin,
        &cfg,
        args.config.clone(),
        xdp_ifaces.map(crate::admin::xdp_interface).collect(),
        l7.as_ref(),
        reload_handle.clone(),
        in_force.clone(),
    )?;
    // The Prometheus page (`[metrics] address`), from the same figures as the admin API's.
    let metrics_page = match metrics_page {
        Some(l) => Some(crate::metrics::server::serve(
            l,
            crate::metrics::source::Source::new(
                l7.as_ref(),
                xdp_tier.as_ref().map(|t| t.iface.clone()),
                in_force.clone(),
            ),
        )?),
        None => None,
    };
    // DNS discovery: the targets it finds come back through `reload_handle` (`crate::overlay`).
    // Its records (`L7Handle::discovery`) are what the admin API and the metrics show.
    let discovery = l7.as_ref().map(|h| {
        let sink = std::sync::Arc::new(reload_handle.clone());
        crate::discovery::start(&gens.file().l7, sink, h.discovery.clone(), stop_rx.clone()).0
    });

    let interval = args
        .stats_interval
        .unwrap_or(cfg.xdp.stats_interval_seconds);
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut last = match &xdp_tier {
        Some(t) => Some((t.dataplane.counters()?, Instant::now())),
        None => None,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(interval.max(1)));
    tick.tick().await;
    let mut syn_ticks = xdp_tier.as_ref().is_some_and(|t| t.syn.needs_ticks());
    let mut syn_tick = tokio::time::interval(xdp::syn::SynControl::WATCH);
    let mut syn_at = Instant::now();
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sigusr1 = signal(SignalKind::user_defined1())?;
    // HAProxy's reload signal (master-worker mode): an operator's habit must not kill weir.
    let mut sigusr2 = signal(SignalKind::user_defined2())?;
    // The service manager: ready once every worker is (the sockets queue connections before),
    // and pinged from this loop while it wants a watchdog.
    let mut live = l7.as_ref().map(|h| (h.live.clone(), h.workers));
    let mut told_ready = false;
    let sd_watchdog = notify::watchdog_period();
    let mut sd_ping = tokio::time::interval(sd_watchdog.unwrap_or(Duration::from_secs(3600)));
    sd_ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The interface followed (`xdp::link_watch`): deleted and made again, addresses changed.
    let mut link_events = match &xdp_tier {
        Some(t) => match LinkEvents::open() {
            Ok(e) => Some(e),
            Err(e) => {
                warn!(iface = %t.iface, "cannot follow the interface's changes (rtnetlink): {e}");
                None
            }
        },
        None => None,
    };
    let mut relink = tokio::time::interval(Duration::from_secs(1));
    relink.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Loading the eBPF objects parsed the kernel's BTF (aya's loader always does,
    // `crate::load_object`): ~25 MB freed since, which mimalloc would keep in this process.
    crate::alloc::release_memory();
    info!("weir running; Ctrl-C to stop");
    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            _ = sigint.recv() => { info!("SIGINT: stopping"); break Ok(()) }
            _ = sigterm.recv() => { info!("SIGTERM: stopping"); break Ok(()) }
            res = crate::l7::wait(&mut l7) => {
                break res.context("L7 workers stopped");
            }
            (ready, workers) = workers_ready(&mut live), if !told_ready => {
                if ready >= workers {
                    let status = format!("serving: generation {}, {workers} workers", gens.generation());
                    notify::ready(&crate::certificates::with_summary(status, gens.certificates()));
                    told_ready = true;
                } else {
                    notify::status(&format!("starting: {ready} of {workers} workers ready"));
                }
            }
            _ = sd_ping.tick(), if sd_watchdog.is_some() => notify::watchdog_ping(),
            _ = syn_tick.tick(), if syn_ticks => {
                if let Some(t) = &mut xdp_tier {
                    let was = t.syn.note();
                    t.tick(syn_at.elapsed())?;
                    syn_at = Instant::now();
                    if t.syn.note() != was {
                        t.write_note();
                    }
                }
            }
            r = link_changed(&mut link_events) => match (r, &mut xdp_tier) {
                (Ok(touched), Some(t)) => {
                    if touched.concerns(t.attached_index()) {
                        t.follow(gens.config());
                    }
                }
                (Ok(_), None) => {}
                (Err(e), _) => {
                    warn!("rtnetlink: {e}: the interface's changes are no longer followed");
                    link_events = None;
                }
            },
            _ = relink.tick(), if xdp_tier.as_ref().is_some_and(XdpTier::detached) => {
                if let Some(t) = &mut xdp_tier {
                    t.follow(gens.config());
                }
            }
            _ = sigusr1.recv() => reopen_access_log(&gens, &l7),
            _ = sigusr2.recv() => warn!("SIGUSR2 does nothing here: a reload is SIGHUP or `weir reload`, reopening the access log SIGUSR1"),
            _ = sighup.recv() => {
                info!("SIGHUP: reloading the configuration");
                let _ = reload_notified(&mut gens, &mut xdp_tier, &l7, args.no_l7);
                in_force.record(&gens);
                discovery.iter().for_each(|d| d.apply(&gens.file().l7));
                syn_ticks = xdp_tier.as_ref().is_some_and(|t| t.syn.needs_ticks());
            }
            Some(request) = reload_requests.recv() => {
                match request {
                    reload::Request::Reload(reply) => {
                        let r = reload_notified(&mut gens, &mut xdp_tier, &l7, args.no_l7);
                        in_force.record(&gens);
                        discovery.iter().for_each(|d| d.apply(&gens.file().l7));
                        let _ = reply.send(r);
                    }
                    reload::Request::Targets(change, reply) => {
                        let r = apply_targets(&mut gens, &l7, &change);
                        in_force.record(&gens);
                        let _ = reply.send(r);
                    }
                }
                syn_ticks = xdp_tier.as_ref().is_some_and(|t| t.syn.needs_ticks());
            }
            _ = tick.tick(), if interval > 0 => {
                if let (Some(t), Some((prev, at))) = (&xdp_tier, &mut last) {
                    let now = t.dataplane.counters()?;
                    let r = stats::report(&t.iface, prev, &now, at.elapsed());
                    info!(
                        iface = %t.iface,
                        syncookies_reasserted = t.syn.reasserted(),
                        "{}",
                        stats::line(&r)
                    );
                    *prev = now;
                    *at = Instant::now();
                }
            }
        }
    };
    notify::stopping();
    let _ = stop_tx.send(true);
    // The admin socket closes as shutdown starts: a successor can start while workers drain.
    drop(admin);
    drop(metrics_page);
    drop(reload_handle);
    if let Some(l7) = l7 {
        crate::l7::stop(l7).await;
    }
    // XDP last: the workers have stopped taking and answering connections.
    drop(xdp_tier);
    reload::remove_status();
    outcome
}
