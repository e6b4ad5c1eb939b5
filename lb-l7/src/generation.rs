//! Configuration generations in a worker.
//!
//! What a configuration makes at run time — target groups, listeners' rules and TLS, limits —
//! is one [`Shared`], numbered by the control plane. A reload builds the next one ([`next`]) and
//! makes it the newest (`Shared::latest`, [`switch`]): a request keeps the generation it started
//! in to its end (retries included), a connection moves to the newest between requests, an
//! accept loop at each connection. So in-flight requests finish under the old rules and
//! targets, and every new request uses the new ones.
//!
//! A target group whose configuration did not change is carried over whole (its targets keep
//! their pools, counters, outstanding requests and health). The targets of a group that
//! changed or went away are *draining* ([`Draining`]): only requests that started in an older
//! generation still reach them, those in flight finish, and they are dropped (their idle
//! connections closed) once nothing is in flight, or at the group's
//! `deregistration_delay.timeout_seconds`, where the requests still waiting for a response
//! head are answered 502 (`crate::expiry`). A target the new generation still has (the group
//! changed around it) is not deregistered: its old runtime state waits for its requests to end
//! without a deadline. The deadline is the address's, not a runtime state's: a target a later
//! generation has again (registered again while it drains) is in force, so its drains lose
//! their deadline; one deregistered again gets its group's full delay from then
//! ([`Draining`]'s `follow`, ALB's semantics).
//!
//! A generation may add and remove listeners (their accept loops: `crate::listening`); what a
//! running worker cannot change — a kept listener's address and the access-log file — must stay
//! the same ([`unchangeable`]); the control plane refuses a reload that changes them.

use crate::access_log::AccessLog;
use crate::config::{L7Config, Protocol};
pub use crate::draining::{DrainReport, Draining};
use crate::metrics::Metrics;
use crate::pipeline::{ConnState, Limits, ListenerRt, Shared};
use crate::rules::RuleSet;
use crate::target::GroupRt;
use crate::tickets::SharedTicketer;
use anyhow::Context as _;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The L7 sections of weir's whole file. Not validated here: the control plane validated the
/// file (a worker cannot: validation reads certificate files, and a sandboxed worker opens none).
#[derive(serde::Deserialize)]
struct L7Sections {
    #[serde(default)]
    load_balancer: crate::config::LoadBalancerAttributes,
    #[serde(default)]
    listener: Vec<crate::config::Listener>,
    #[serde(default)]
    target_group: Vec<crate::config::TargetGroup>,
}

/// The L7 configuration in the text of weir's whole file (other sections are ignored).
pub fn parse_l7(text: &str) -> anyhow::Result<L7Config> {
    let s: L7Sections = toml::from_str(text).context("the configuration sent by weir run")?;
    Ok(L7Config {
        load_balancer: s.load_balancer,
        listener: s.listener,
        target_group: s.target_group,
    })
}

/// Where the certificate and key files of a configuration come from.
#[derive(Debug, Clone, Copy)]
pub enum Files<'a> {
    /// Read from disk (a worker before its sandbox, tests).
    Disk,
    /// Sent by the control plane with the configuration: path → PEM text.
    Sent(&'a BTreeMap<String, String>),
}

impl Files<'_> {
    fn certified_key(
        self,
        cert: &Path,
        key: &Path,
    ) -> anyhow::Result<Arc<rustls::sign::CertifiedKey>> {
        let ck = match self {
            Files::Disk => crate::tls::load_certified_key(cert, key)?,
            Files::Sent(files) => {
                let get = |p: &Path| {
                    files.get(&p.display().to_string()).with_context(|| {
                        format!("{} was not sent with the configuration", p.display())
                    })
                };
                crate::tls::certified_key_from_pem(
                    cert,
                    get(cert)?.as_bytes(),
                    key,
                    get(key)?.as_bytes(),
                )?
            }
        };
        Ok(Arc::new(ck))
    }
}

/// The listeners' run-time state (rules, TLS) of `config`, in listener order.
pub fn listeners(
    config: &L7Config,
    files: Files<'_>,
    ticketer: &Arc<SharedTicketer>,
) -> anyhow::Result<Vec<Arc<ListenerRt>>> {
    let http2 = config.load_balancer.routing.http2.enabled;
    let mut out = Vec::with_capacity(config.listener.len());
    for (i, l) in config.listener.iter().enumerate() {
        let (tls, sni) = match l.protocol {
            Protocol::Https => {
                let keys = l
                    .certificate
                    .iter()
                    .map(|c| files.certified_key(&c.certificate_file, &c.private_key_file))
                    .collect::<anyhow::Result<Vec<_>>>()
                    .with_context(|| format!("listener[{i}] TLS"))?;
                let (cfg, sni) =
                    crate::tls::server_config_with(keys, l.alpn(), http2, ticketer.clone())
                        .with_context(|| format!("listener[{i}] TLS"))?;
                (Some(cfg), Some(sni))
            }
            Protocol::Http => (None, None),
        };
        out.push(Arc::new(ListenerRt {
            index: i,
            config: l.clone(),
            rules: RuleSet::compile(l),
            port_text: l.port.to_string(),
            forwarded: crate::headers::ListenerForwarded::new(l.protocol.scheme(), l.port),
            sni,
            tls,
        }));
    }
    Ok(out)
}

/// The target groups of `config`; a group configured exactly as in `prev` is carried over
/// (the same `GroupRt`). Returns the groups and the names of those built anew.
pub fn groups(
    config: &L7Config,
    prev: Option<&Shared>,
) -> (HashMap<String, Arc<GroupRt>>, Vec<String>) {
    let zone = &config.load_balancer.availability_zone;
    let mut fresh = Vec::new();
    let map = config
        .target_group
        .iter()
        .map(|g| {
            let same = prev.and_then(|p| {
                let old = p.config.target_group.iter().find(|o| o.name == g.name)?;
                // The configuration types are plain data without `PartialEq`; their `Debug`
                // text shows every field, so equal text is an equal group.
                (format!("{old:?}") == format!("{g:?}")
                    && p.config.load_balancer.availability_zone == *zone)
                    .then(|| p.groups.get(&g.name).cloned())
                    .flatten()
            });
            let rt = same.unwrap_or_else(|| {
                fresh.push(g.name.clone());
                let before = prev.and_then(|p| p.groups.get(&g.name));
                Arc::new(GroupRt::new(g, zone, before.map(|b| &**b)))
            });
            (g.name.clone(), rt)
        })
        .collect();
    (map, fresh)
}

/// The worker-wide state every generation shares.
pub struct WorkerWide {
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
    pub worker_index: usize,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    pub target_conns: Arc<crate::target_conns::TargetConns>,
}

/// The first generation of a worker.
pub fn first(
    number: u64,
    config: Arc<L7Config>,
    listeners: Vec<Arc<ListenerRt>>,
    w: WorkerWide,
) -> Shared {
    let (groups, _) = groups(&config, None);
    let timers: Arc<crate::idle::IdleDeadlines> = Default::default();
    Shared {
        generation: number,
        limits: Limits::from_config(&config),
        trace_header: trace_header(&config),
        config,
        groups,
        listeners,
        latest: crate::pipeline::Latest::new(number),
        metrics: w.metrics,
        access_log: w.access_log,
        worker_index: w.worker_index,
        shutdown: w.shutdown,
        idle: Default::default(),
        ports: Default::default(),
        timers: timers.clone(),
        clock: Default::default(),
        h1_state: Arc::new(ConnState::default()),
        draining: Arc::new(Draining::new(timers)),
        target_conns: w.target_conns,
    }
}

/// The generation after `prev`: new configuration and listeners, the worker-wide state of
/// `prev`. Returns it and the names of the groups built anew. Does not link it: see
/// [`switch`].
pub fn next(
    prev: &Shared,
    number: u64,
    config: Arc<L7Config>,
    listeners: Vec<Arc<ListenerRt>>,
) -> (Shared, Vec<String>) {
    let (groups, fresh) = groups(&config, Some(prev));
    let limits = Limits {
        // Fitted to the open-file limit at start (the control plane refuses to change it).
        max_connections: prev.limits.max_connections,
        ..Limits::from_config(&config)
    };
    let sh = Shared {
        generation: number,
        limits,
        trace_header: trace_header(&config),
        config,
        groups,
        listeners,
        latest: prev.latest.clone(),
        metrics: prev.metrics.clone(),
        access_log: prev.access_log.clone(),
        worker_index: prev.worker_index,
        shutdown: prev.shutdown.clone(),
        idle: prev.idle.clone(),
        ports: prev.ports.clone(),
        timers: prev.timers.clone(),
        clock: prev.clock.clone(),
        h1_state: prev.h1_state.clone(),
        draining: prev.draining.clone(),
        target_conns: prev.target_conns.clone(),
    };
    (sh, fresh)
}

/// Makes `new` the generation after `prev`: every task moves to it at its next request or
/// connection. The targets of `prev` that `new` does not carry over start draining: no request
/// of a later generation can pick them; a request that started in `prev` still can (its
/// routing and target choice may come after the switch, and it must finish under `prev`), so
/// their state is left as it is. The targets draining from earlier generations follow `new`
/// ([`Draining::follow`]): one `new` has again loses its deadline, one it deregisters again
/// gets a full delay of its own.
pub fn switch(prev: &Shared, new: Arc<Shared>) {
    switch_at(prev, new, Instant::now());
}

/// [`switch`] at `now` (the deadlines' origin; tests give their own).
fn switch_at(prev: &Shared, new: Arc<Shared>, now: Instant) {
    let delay = |name: &str| {
        Duration::from_secs(
            prev.config
                .target_group
                .iter()
                .find(|c| c.name == name)
                .map_or(0, |c| c.deregistration_delay.timeout_seconds),
        )
    };
    let kept = |name: &str, addr: SocketAddr| {
        new.groups
            .get(name)
            .and_then(|n| n.targets.iter().find(|k| k.addr == addr).cloned())
    };
    // A target `new` has again after it left (registered again while it drains) is built
    // by `GroupRt::new` as any registration, fresh (`prev`'s group, its `before`, did not
    // have it): no ejection or ramp carried, a new pool and counters, its state from the
    // control plane's table, which checks it again from `initial` (slow start at its first
    // pass) — "a target registered again is a target, not a drain". What changes is its old
    // runtime states' drains: no deadline while it is in force. Before this generation's
    // leavers join: they get their deadlines below.
    prev.draining
        .follow(now, |name, addr| kept(name, addr).is_some(), delay);
    for (name, g) in &prev.groups {
        if new.groups.get(name).is_some_and(|n| Arc::ptr_eq(n, g)) {
            continue;
        }
        for t in &g.targets {
            // A target `new` has was not deregistered: its old runtime state waits for its
            // requests without a deadline.
            let k = kept(name, t.addr);
            let deadline = k.is_none().then(|| now + delay(name));
            let carried = k.is_some_and(|k| Arc::ptr_eq(&k.pool, &t.pool));
            prev.draining.add(name, t.clone(), deadline, carried);
        }
    }
    prev.latest.store(new);
    // The report names the new generation now: the control plane hears it at once.
    prev.draining.report_changed();
}

/// What this worker tells the control plane about its draining targets (its metrics report
/// carries it): the newest generation's number, then the draining list. In that order: a
/// generation's leaving targets join the list before it is linked ([`switch`]), so a report
/// of generation `G` lists every target `G` removed that is not done yet.
pub fn drain_report(first: &Shared) -> DrainReport {
    let newest = first.newest();
    let sh: &Shared = newest.as_deref().unwrap_or(first);
    DrainReport {
        generation: sh.generation,
        draining: sh.draining.targets(),
    }
}

fn trace_header(config: &L7Config) -> http::HeaderName {
    http::HeaderName::from_bytes(config.load_balancer.trace_header.as_bytes())
        .unwrap_or(http::HeaderName::from_static("x-amzn-trace-id"))
}

/// What a reload may not change in a running worker, with the reason; `None` when `new` keeps
/// it. Listeners are added and removed (`crate::listening`), but a kept port stays on its
/// address (its sockets are bound there); the access-log file is opened once.
pub fn unchangeable(old: &L7Config, new: &L7Config) -> Option<(String, String)> {
    for (i, l) in new.listener.iter().enumerate() {
        let Some(o) = old.listener.iter().find(|o| o.port == l.port) else {
            continue;
        };
        if o.address != l.address {
            return Some((
                format!("listener[{i}].address"),
                format!(
                    "the listener on port {} cannot move from {} to {} in one reload (its sockets are bound there): remove it in one reload, add it back in the next",
                    l.port, o.address, l.address
                ),
            ));
        }
        if o.freebind != l.freebind {
            return Some((
                format!("listener[{i}].freebind"),
                format!(
                    "the listener on port {} keeps the sockets it has (freebind is how they are bound): remove it in one reload, add it back in the next",
                    l.port
                ),
            ));
        }
    }
    let log = |c: &L7Config| {
        let a = &c.load_balancer.access_logs;
        (a.enabled, a.path.clone())
    };
    if log(old) != log(new) {
        return Some((
            "load_balancer.access_logs".into(),
            "the access log is opened once, before the workers' sandbox: changing it needs a restart".into(),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{TargetRt, TargetState};
    use std::sync::atomic::Ordering::Relaxed;

    fn cfg(text: &str) -> L7Config {
        parse_l7(text).unwrap()
    }

    const TWO: &str = r#"
[xdp]
mode = "generic"
[[listener]]
port = 8080
default_action = { type = "forward", target_group = "a" }
[[target_group]]
name = "a"
port = 9000
target = [{ id = "127.0.0.1" }]
[[target_group]]
name = "b"
port = 9000
target = [{ id = "127.0.0.2" }]
"#;

    fn shared(c: L7Config) -> Shared {
        let (_tx, rx) = tokio::sync::watch::channel(false);
        first(
            1,
            Arc::new(c),
            Vec::new(),
            WorkerWide {
                metrics: Default::default(),
                access_log: AccessLog::start(&crate::access_log::AccessLogTarget::Off).unwrap(),
                worker_index: 0,
                shutdown: rx,
                target_conns: Default::default(),
            },
        )
    }

    #[test]
    fn the_whole_file_parses_its_l7_sections_only() {
        let c = cfg(TWO);
        assert_eq!(c.listener.len(), 1);
        assert_eq!(c.target_group.len(), 2);
    }

    /// The worker holds its first generation to its end (its handle, the metrics pusher's, the
    /// control channel's), and an idle connection the one it last served: each keeps that
    /// generation alive, not every one made after it (a chain of them grew ~40 KB per reload
    /// per worker, never given back).
    #[test]
    fn a_held_old_generation_keeps_no_later_one_alive() {
        let first = Arc::new(shared(cfg(TWO)));
        let (mut cur, mut held) = (first.clone(), None);
        let mut made = Vec::new();
        for n in 2..=50 {
            let (new, _) = next(&cur, n, cur.config.clone(), Vec::new());
            let new = Arc::new(new);
            switch(&cur, new.clone());
            made.push(Arc::downgrade(&new));
            if n == 12 {
                held = Some(new.clone());
            }
            cur = new;
        }
        drop(cur);
        let held = held.unwrap();
        let alive: Vec<u64> = made
            .iter()
            .filter_map(|w| w.upgrade().map(|s| s.generation))
            .collect();
        // The held one and the newest (the cell every generation shares holds it).
        assert_eq!(alive, vec![12, 50]);
        assert_eq!(first.newest().unwrap().generation, 50);
        assert_eq!(held.newest().unwrap().generation, 50);
    }

    #[test]
    fn unchanged_groups_are_carried_over_and_the_others_drain() {
        let old = shared(cfg(TWO));
        let new_text = TWO.replace("127.0.0.2", "127.0.0.3");
        let (new, fresh) = next(&old, 2, Arc::new(cfg(&new_text)), Vec::new());
        assert_eq!(fresh, vec!["b".to_string()]);
        assert!(Arc::ptr_eq(&old.groups["a"], &new.groups["a"]));
        assert!(!Arc::ptr_eq(&old.groups["b"], &new.groups["b"]));
        let b_old = old.groups["b"].targets[0].clone();
        let new = Arc::new(new);
        switch(&old, new.clone());
        // Requests that started in generation 1 may still pick it.
        assert_eq!(b_old.state(), TargetState::Healthy);
        assert_eq!(old.newest().unwrap().generation, 2);
        assert!(new.newest().is_none());
        // The control plane hears of it with generation 2.
        let b = ("b".to_string(), b_old.addr);
        let report = drain_report(&old);
        assert_eq!(
            (report.generation, &report.draining[..]),
            (2, &[b.clone()][..])
        );
        assert!(!report.done_with("b", b_old.addr, 2));
        // Nothing in flight: dropped at the next tick, and the next report says so.
        assert_eq!(old.draining.len(), 1);
        old.draining.tick(Instant::now());
        assert!(old.draining.is_empty());
        let report = drain_report(&old);
        assert!(report.done_with("b", b_old.addr, 2));
        assert!(
            !report.done_with("b", b_old.addr, 3),
            "a report of an older generation says nothing about a later drain"
        );
    }

    /// Whether `f` is ready at its first poll.
    fn ready(f: impl std::future::Future<Output = ()>) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        std::pin::pin!(f).poll(&mut cx).is_ready()
    }

    #[test]
    fn the_reporter_hears_of_a_new_generation_and_of_each_drop_at_once() {
        let old = shared(cfg(TWO));
        assert!(!ready(old.draining.changed()), "nothing yet");
        let (new, _) = next(
            &old,
            2,
            Arc::new(cfg(&TWO.replace("127.0.0.2", "127.0.0.3"))),
            Vec::new(),
        );
        let b_old = old.groups["b"].targets[0].clone();
        b_old.outstanding.fetch_add(1, Relaxed);
        switch(&old, Arc::new(new));
        assert!(ready(old.draining.changed()), "generation 2");
        assert!(!ready(old.draining.changed()), "told once");
        // Busy: kept, nothing to tell.
        old.draining.tick(Instant::now());
        assert_eq!(old.draining.len(), 1);
        assert!(!ready(old.draining.changed()));
        // Its request ends: the next tick drops it and says so.
        b_old.outstanding.fetch_sub(1, Relaxed);
        old.draining.tick(Instant::now());
        assert!(old.draining.is_empty());
        assert!(ready(old.draining.changed()), "dropped");
        old.draining.tick(Instant::now());
        assert!(!ready(old.draining.changed()), "an empty list has no news");
    }

    #[tokio::test]
    async fn a_draining_target_waits_for_its_queued_requests_and_their_connection_attempts() {
        let capped = TWO.replace(
            "target = [{ id = \"127.0.0.2\" }]",
            "target = [{ id = \"127.0.0.2\" }]\ntarget_limits = { max_requests = 1 }",
        );
        let old = shared(cfg(&capped));
        let b_old = old.groups["b"].targets[0].clone();
        let held = b_old.admit().await.unwrap();
        let waiter = {
            let t = b_old.clone();
            tokio::spawn(async move { t.admit().await.unwrap() })
        };
        tokio::task::yield_now().await;
        assert_eq!(b_old.busy(), 1, "queued");
        let (new, _) = next(
            &old,
            2,
            Arc::new(cfg(&TWO.replace("127.0.0.2", "127.0.0.3"))),
            Vec::new(),
        );
        switch(&old, Arc::new(new));
        // The slot goes to the waiter, which has not run yet: still on its way.
        drop(held);
        old.draining.tick(Instant::now());
        assert_eq!(old.draining.len(), 1);
        // It runs: outstanding from its slot on, while it connects
        // (`pipeline::attempt::Attempts::next`).
        let slot = waiter.await.unwrap();
        let connecting = crate::pipeline::prepare::Outstanding::new(&b_old, slot);
        old.draining.tick(Instant::now());
        assert_eq!(old.draining.len(), 1);
        drop(connecting);
        assert_eq!(b_old.busy(), 0);
        old.draining.tick(Instant::now());
        assert!(old.draining.is_empty());
    }

    #[test]
    fn a_target_busy_at_its_deadline_is_counted() {
        let old = shared(cfg(TWO));
        let (new, _) = next(
            &old,
            2,
            Arc::new(cfg(&TWO.replace("127.0.0.2", "127.0.0.3"))),
            Vec::new(),
        );
        let b_old = old.groups["b"].targets[0].clone();
        switch(&old, Arc::new(new));
        b_old.outstanding.fetch_add(2, Relaxed);
        // deregistration_delay defaults to 300 s: still draining now, expired past it.
        old.draining.tick(Instant::now());
        assert_eq!(old.draining.len(), 1);
        old.draining.tick(Instant::now() + Duration::from_secs(301));
        assert!(old.draining.is_empty());
        assert_eq!(old.draining.expired_with_requests.load(Relaxed), 1);
        assert_eq!(old.draining.expired_requests.load(Relaxed), 2);
        assert!(b_old.expiry.is_expired(), "its waiting requests get a 502");
    }

    #[test]
    fn a_target_kept_in_a_changed_group_has_no_deadline() {
        let old = shared(cfg(TWO));
        // b gains a target; 127.0.0.2 stays.
        let more = TWO.replace(
            "target = [{ id = \"127.0.0.2\" }]",
            "target = [{ id = \"127.0.0.2\" }, { id = \"127.0.0.3\" }]",
        );
        let (new, fresh) = next(&old, 2, Arc::new(cfg(&more)), Vec::new());
        assert_eq!(fresh, vec!["b".to_string()]);
        let b_old = old.groups["b"].targets[0].clone();
        switch(&old, Arc::new(new));
        b_old.outstanding.fetch_add(1, Relaxed);
        old.draining.tick(Instant::now() + Duration::from_secs(301));
        assert_eq!(old.draining.len(), 1, "waits for its request");
        assert!(!b_old.expiry.is_expired());
        b_old.outstanding.fetch_sub(1, Relaxed);
        old.draining.tick(Instant::now());
        assert!(old.draining.is_empty());
    }

    /// `TWO` with group b's targets `ids` (the last octets of 127.0.0.x) and a 2 s
    /// deregistration delay.
    fn b_with(ids: &[u8]) -> L7Config {
        let list: Vec<String> = ids
            .iter()
            .map(|i| format!("{{ id = \"127.0.0.{i}\" }}"))
            .collect();
        cfg(&TWO.replace(
            "target = [{ id = \"127.0.0.2\" }]",
            &format!(
                "target = [{}]\nderegistration_delay.timeout_seconds = 2",
                list.join(", ")
            ),
        ))
    }

    /// Generation `number` after `prev` with `config`, linked at `at`.
    fn link(prev: &Shared, number: u64, config: L7Config, at: Instant) -> Arc<Shared> {
        let (new, _) = next(prev, number, Arc::new(config), Vec::new());
        let new = Arc::new(new);
        switch_at(prev, new.clone(), at);
        new
    }

    #[test]
    fn a_target_registered_again_while_it_drains_has_no_deadline() {
        let t0 = Instant::now();
        let secs = |s: f64| t0 + Duration::from_secs_f64(s);
        let g1 = shared(b_with(&[2, 3]));
        let first = g1.groups["b"].targets[0].clone();
        first.outstanding.fetch_add(1, Relaxed);
        // Deregistered at 0 (delay 2 s), registered again at 0.5.
        let g2 = link(&g1, 2, b_with(&[3]), secs(0.0));
        let g3 = link(&g2, 3, b_with(&[3, 2]), secs(0.5));
        let again = g3.groups["b"].targets[1].clone();
        assert_eq!(again.addr, first.addr);
        // Registered again: built as any registration, not the old runtime state.
        assert!(!Arc::ptr_eq(&again, &first));
        assert!(!Arc::ptr_eq(&again.pool, &first.pool));
        // Past the first deregistration's deadline: its request still runs, not cut.
        g1.draining.tick(secs(3.0));
        assert_eq!(g1.draining.len(), 1, "waits for its request");
        assert!(!first.expiry.is_expired(), "no 502 for a registered target");
        g1.draining.tick(secs(600.0));
        assert!(!first.expiry.is_expired(), "no deadline at all");
        assert_eq!(g1.draining.expired_with_requests.load(Relaxed), 0);
        // Its request ends: dropped at the next tick, as a kept target's old state.
        first.outstanding.fetch_sub(1, Relaxed);
        g1.draining.tick(secs(600.1));
        assert!(g1.draining.is_empty());
        assert!(!again.expiry.is_expired());
    }

    #[test]
    fn a_target_deregistered_again_gets_a_full_delay_of_its_own() {
        let t0 = Instant::now();
        let secs = |s: f64| t0 + Duration::from_secs_f64(s);
        let g1 = shared(b_with(&[2, 3]));
        let first = g1.groups["b"].targets[0].clone();
        first.outstanding.fetch_add(1, Relaxed);
        // Deregistered at 0 (delay 2 s: deadline 2), registered again at 0.5, deregistered
        // again at 1.5 (deadline 3.5), with a request on each runtime state.
        let g2 = link(&g1, 2, b_with(&[3]), secs(0.0));
        let g3 = link(&g2, 3, b_with(&[3, 2]), secs(0.5));
        let again = g3.groups["b"].targets[1].clone();
        again.outstanding.fetch_add(1, Relaxed);
        let _g4 = link(&g3, 4, b_with(&[3]), secs(1.5));
        // .3's idle old states go.
        g1.draining.tick(secs(1.6));
        assert_eq!(
            g1.draining.targets(),
            vec![("b".to_string(), first.addr)],
            "one target, draining from two generations"
        );
        assert_eq!(g1.draining.len(), 2);
        // The first deadline is gone: both wait.
        g1.draining.tick(secs(2.1));
        g1.draining.tick(secs(3.4));
        assert_eq!(g1.draining.len(), 2);
        assert!(!first.expiry.is_expired() && !again.expiry.is_expired());
        // The second deregistration's deadline cuts both.
        g1.draining.tick(secs(3.5));
        assert!(g1.draining.is_empty());
        assert!(first.expiry.is_expired() && again.expiry.is_expired());
        assert_eq!(g1.draining.expired_with_requests.load(Relaxed), 2);
        assert_eq!(g1.draining.expired_requests.load(Relaxed), 2);
    }

    #[test]
    fn a_target_deregistered_after_it_was_kept_gets_its_delay_on_its_old_state_too() {
        let t0 = Instant::now();
        let secs = |s: f64| t0 + Duration::from_secs_f64(s);
        let g1 = shared(b_with(&[2]));
        let first = g1.groups["b"].targets[0].clone();
        first.outstanding.fetch_add(1, Relaxed);
        // Kept while .3 is registered at 0: no deadline; deregistered at 10: deadline 12.
        let g2 = link(&g1, 2, b_with(&[2, 3]), secs(0.0));
        g1.draining.tick(secs(11.0));
        assert_eq!(g1.draining.len(), 1);
        let _g3 = link(&g2, 3, b_with(&[3]), secs(10.0));
        g1.draining.tick(secs(11.9));
        assert!(!first.expiry.is_expired());
        g1.draining.tick(secs(12.0));
        assert!(
            first.expiry.is_expired(),
            "the delay applies to every runtime state"
        );
        assert!(
            g1.draining.is_empty(),
            "g2's own state had nothing in flight"
        );
    }

    #[test]
    fn a_drain_keeps_its_deadline_across_changes_that_leave_its_target_out() {
        let t0 = Instant::now();
        let secs = |s: f64| t0 + Duration::from_secs_f64(s);
        let g1 = shared(b_with(&[2, 3]));
        let first = g1.groups["b"].targets[0].clone();
        first.outstanding.fetch_add(1, Relaxed);
        // Deregistered at 0; another target registered at 1: not a new deregistration.
        let g2 = link(&g1, 2, b_with(&[3]), secs(0.0));
        let _g3 = link(&g2, 3, b_with(&[3, 4]), secs(1.0));
        g1.draining.tick(secs(1.9));
        assert!(!first.expiry.is_expired());
        g1.draining.tick(secs(2.0));
        assert!(first.expiry.is_expired());
    }

    #[test]
    fn a_target_kept_in_a_changed_group_keeps_its_pool_and_counters_while_its_protocol_stays() {
        let old = shared(cfg(TWO));
        let more = TWO.replace(
            "target = [{ id = \"127.0.0.2\" }]",
            "target = [{ id = \"127.0.0.2\" }, { id = \"127.0.0.3\" }]",
        );
        let (new, _) = next(&old, 2, Arc::new(cfg(&more)), Vec::new());
        let (was, now) = (&old.groups["b"].targets[0], &new.groups["b"].targets[0]);
        assert_eq!(was.addr, now.addr);
        assert!(Arc::ptr_eq(&was.pool, &now.pool));
        assert!(Arc::ptr_eq(&was.counters, &now.counters));
        assert!(!Arc::ptr_eq(&was.pool, &new.groups["b"].targets[1].pool));
        // HTTPS now: the connections are not the ones it needs; the counters stay.
        let https = more.replace(
            "name = \"b\"\nport = 9000",
            "name = \"b\"\nport = 9000\nprotocol = \"HTTPS\"",
        );
        let (third, _) = next(&new, 3, Arc::new(cfg(&https)), Vec::new());
        let then = &third.groups["b"].targets[0];
        assert!(!Arc::ptr_eq(&now.pool, &then.pool));
        assert!(Arc::ptr_eq(&now.counters, &then.counters));
        // Rebuilt again (a target less): the TLS client and its session cache go on.
        let fewer = https.replace(", { id = \"127.0.0.3\" }", "");
        let (fourth, _) = next(&third, 4, Arc::new(cfg(&fewer)), Vec::new());
        let client = |t: &TargetRt| t.tls.as_ref().map(|c| c.0.config().clone());
        let (a, b) = (
            client(then).unwrap(),
            client(&fourth.groups["b"].targets[0]).unwrap(),
        );
        assert!(Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&then.pool, &fourth.groups["b"].targets[0].pool));
    }

    #[test]
    fn listeners_come_and_go_but_a_port_keeps_its_address_and_the_log_its_file() {
        let a = cfg(TWO);
        assert!(unchangeable(&a, &cfg(&TWO.replace("127.0.0.2", "127.0.0.9"))).is_none());
        let replaced = cfg(&TWO.replace("port = 8080", "port = 8081"));
        assert!(
            unchangeable(&a, &replaced).is_none(),
            "one removed, one added"
        );
        let moved = cfg(&TWO.replace("port = 8080", "address = \"127.0.0.1\"\nport = 8080"));
        assert_eq!(unchangeable(&a, &moved).unwrap().0, "listener[0].address");
        let logged = cfg(&format!(
            "[load_balancer]\naccess_logs.enabled = true\n{TWO}"
        ));
        assert_eq!(
            unchangeable(&a, &logged).unwrap().0,
            "load_balancer.access_logs"
        );
    }
}
