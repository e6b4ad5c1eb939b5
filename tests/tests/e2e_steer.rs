//! Steering end to end: `weir run` with 4 worker processes behind a real SK_REUSEPORT group in a
//! namespace lab. Each connection must be accepted by the worker the shared function
//! (`lb_userspace::workers::steer::owner`: lb-common's flow hash + Maglev) names; a SIGKILLed
//! worker costs no new connection and comes back to its share. Needs root.

mod common;

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use common::*;
use lb_userspace::workers::steer::owner;
use weir_tests::lab::{Lab, Ns, Proc, wait_until};

const WORKERS: usize = 4;
const SEED: u32 = 0x5eed_0042;
const PORT: u16 = 8080;
const SERVER4: &str = "10.79.0.2";
const SERVER6: &str = "fd79::2";

struct Setup {
    _lab: Lab,
    client: Ns,
    server: Ns,
    log: TempFile,
    _cfg: TempFile,
    /// weir's own log.
    stderr: TempFile,
    weir: Proc,
}

fn setup() -> Result<Setup> {
    setup_with("")
}

/// `workers_extra`: more `[workers]` lines.
fn setup_with(workers_extra: &str) -> Result<Setup> {
    let lab = Lab::new()?;
    let client = lab.add_ns("client")?;
    let server = lab.add_ns("server")?;
    let (c0, s0) = lab.veth(&client, &server)?;
    c0.addr("10.79.0.1/24")?.addr("fd79::1/64")?;
    s0.addr(&format!("{SERVER4}/24"))?
        .addr(&format!("{SERVER6}/64"))?;
    let log = TempFile::new("access.log", "");
    let cfg = TempFile::new(
        "steer.toml",
        &format!(
            "[workers]\ncount = {WORKERS}\nhash_seed = {SEED}\n{workers_extra}\n\n\
             [load_balancer]\naccess_logs.enabled = true\naccess_logs.path = \"{}\"\n\n\
             [[listener]]\naddress = \"::\"\nport = {PORT}\n\
             default_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"ok\" }}\n",
            log.path()
        ),
    );
    // weir's log goes to a file the setup reads: the supervisor logs "worker ready" after it
    // has put that worker in the steering table, so all of them are there once it has logged
    // it WORKERS times. (A fixed pause was not enough on a loaded machine: connections made
    // before the last worker joined the table were steered by the table without it.)
    let stderr = TempFile::new("weir.stderr", "");
    let mut c = weir_command(&server);
    c.args(["run", "--config", cfg.path()])
        .stderr(std::fs::File::create(&stderr.0)?);
    let mut weir = server.spawn_command(c)?;
    let ready = wait_until(Duration::from_secs(20), "all workers in the table", || {
        if !weir.is_running() {
            bail!("weir exited");
        }
        let log = std::fs::read_to_string(&stderr.0)?;
        Ok(log.matches("worker ready").count() >= WORKERS && server.tcp_listening(PORT)?)
    });
    if ready.is_err() {
        eprintln!("{}", std::fs::read_to_string(&stderr.0).unwrap_or_default());
    }
    ready?;
    Ok(Setup {
        _lab: lab,
        client,
        server,
        log,
        _cfg: cfg,
        stderr,
        weir,
    })
}

/// `n` requests on new connections to `server`, all started at once: each one's client address
/// (or why it failed) and when it ended.
fn parallel_requests(
    s: &Setup,
    server: IpAddr,
    n: usize,
) -> Vec<(Result<SocketAddr, String>, Instant)> {
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let client = s.client.clone();
            std::thread::spawn(move || {
                let r = request(&client, server);
                (r.map_err(|e| format!("{e:#}")), Instant::now())
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// The worker the shared function names for a connection from `local` to `server`.
fn owner_of(local: SocketAddr, server: IpAddr) -> Option<usize> {
    let workers: Vec<u32> = (0..WORKERS as u32).collect();
    owner(
        &workers,
        WORKERS,
        SEED,
        (local.ip(), local.port()),
        (server, PORT),
    )
    .map(|w| w as usize)
}

fn weir_log(s: &Setup) -> String {
    std::fs::read_to_string(&s.stderr.0).unwrap_or_default()
}

fn server_marker(cfg: &TempFile) -> String {
    cfg.path().to_string()
}

/// One HTTP request on a new connection; returns the client's local address.
fn request(client: &Ns, server: IpAddr) -> Result<SocketAddr> {
    client.in_ns(|| -> Result<SocketAddr> {
        let mut s =
            TcpStream::connect_timeout(&SocketAddr::new(server, PORT), Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let local = s.local_addr()?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: weir\r\nConnection: close\r\n\r\n")?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        if !resp.starts_with(b"HTTP/1.1 200") {
            bail!("unexpected response {:?}", String::from_utf8_lossy(&resp));
        }
        Ok(local)
    })?
}

/// (client address, worker) of every access-log line.
fn served_by(log: &TempFile) -> Result<Vec<(SocketAddr, usize)>> {
    let text = std::fs::read_to_string(&log.0)?;
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let worker = f
            .get(2)
            .and_then(|w| w.strip_prefix("weir/"))
            .context("elb field")?
            .parse()?;
        let client: SocketAddr = f.get(3).context("client field")?.parse()?;
        let client = SocketAddr::new(client.ip().to_canonical(), client.port());
        out.push((client, worker));
    }
    Ok(out)
}

#[test]
fn every_connection_lands_on_the_worker_the_shared_function_names() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let mut s = setup()?;
    const N: usize = 2000;
    let servers: [IpAddr; 2] = [SERVER4.parse()?, SERVER6.parse()?];
    for i in 0..N {
        // Four in five over IPv4, one in five over IPv6.
        request(&s.client, servers[usize::from(i % 5 == 4)])?;
    }
    let workers: Vec<u32> = (0..WORKERS as u32).collect();
    wait_until(
        Duration::from_secs(5),
        "the access log to hold every request",
        || Ok(served_by(&s.log)?.len() >= N),
    )?;
    let served = served_by(&s.log)?;
    let mut per_worker = [0usize; WORKERS];
    assert_eq!(served.len(), N, "one access-log line per request");
    let mut disagree = Vec::new();
    for (local, got) in served {
        // The client's own address says which server address it connected to.
        let server = servers[usize::from(local.is_ipv6())];
        let want = owner(
            &workers,
            WORKERS,
            SEED,
            (local.ip(), local.port()),
            (server, PORT),
        )
        .unwrap() as usize;
        per_worker[got] += 1;
        if got != want {
            disagree.push(format!(
                "{local} -> {server}: worker {got}, shared function says {want}"
            ));
        }
    }
    assert!(
        disagree.is_empty(),
        "{} of {N} disagree:\n{}",
        disagree.len(),
        disagree.join("\n")
    );
    // Each worker's share is within ±15 % of N/4 (binomial sd ≈ 19 connections of 500).
    for (w, n) in per_worker.iter().enumerate() {
        assert!(
            (425..=575).contains(n),
            "worker {w} took {n} of {N}: {per_worker:?}"
        );
    }
    assert!(interrupt(&mut s.weir)?);
    let _ = &s.server;
    Ok(())
}

#[test]
fn a_killed_worker_costs_no_new_connection_and_comes_back() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let mut s = setup()?;
    let marker = server_marker(&s._cfg);
    let victim = 2usize;
    let old_pid = worker_pids(&marker)[&victim];

    let stop = Arc::new(AtomicBool::new(false));
    let kill_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let mut loops = Vec::new();
    for t in 0..2 {
        let (client, stop, kill_at) = (s.client.clone(), stop.clone(), kill_at.clone());
        loops.push(std::thread::spawn(move || {
            let server: IpAddr = SERVER4.parse().unwrap();
            let (mut ok, mut failed_new, mut failed_in_flight) = (0, Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match request(&client, server) {
                    Ok(_) => ok += 1,
                    Err(e) => match *kill_at.lock().unwrap() {
                        // Begun before the kill: it may have been accepted by the victim, whose
                        // accepted connections die with it (as with any proxy process).
                        Some(k) if started <= k => failed_in_flight += 1,
                        _ => failed_new.push(format!("thread {t}: {e:#}")),
                    },
                }
            }
            (ok, failed_new, failed_in_flight)
        }));
    }
    std::thread::sleep(Duration::from_millis(800));
    *kill_at.lock().unwrap() = Some(Instant::now());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old_pid),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    // The supervisor restarts it with the same sockets.
    wait_until(
        Duration::from_secs(10),
        "the worker to be restarted",
        || {
            Ok(worker_pids(&marker)
                .get(&victim)
                .is_some_and(|p| *p != old_pid))
        },
    )?;
    let restarted = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let mut total_ok = 0;
    for l in loops {
        let (ok, failed_new, in_flight) = l.join().unwrap();
        assert!(
            failed_new.is_empty(),
            "new connections failed: {failed_new:#?}"
        );
        assert!(
            in_flight <= 1,
            "{in_flight} in-flight connections failed per thread"
        );
        total_ok += ok;
    }
    assert!(
        total_ok > 100,
        "the client loop made only {total_ok} requests"
    );
    // After the restart the victim serves its share again.
    let before = served_by(&s.log)?
        .iter()
        .filter(|(_, w)| *w == victim)
        .count();
    for _ in 0..200 {
        request(&s.client, SERVER4.parse()?)?;
    }
    let after = served_by(&s.log)?
        .iter()
        .filter(|(_, w)| *w == victim)
        .count();
    assert!(
        after - before >= 20,
        "worker {victim} took {} of 200 after its restart",
        after - before
    );
    let _ = restarted;
    assert!(interrupt(&mut s.weir)?);
    Ok(())
}

#[test]
fn connections_queued_on_a_dead_worker_move_to_live_ones() -> Result<()> {
    queued_connections_move(false)
}

/// Someone else (`sysctl --system`, config management) turns `tcp_migrate_req` off while weir
/// runs: weir turns it on again as a worker dies, or its queued connections would be reset.
#[test]
fn queued_connections_move_though_someone_turned_migration_off() -> Result<()> {
    queued_connections_move(true)
}

fn queued_connections_move(someone_turns_migration_off: bool) -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    // A long restart delay: a queued connection served within it was migrated, not waited for.
    let mut s = setup_with("restart_delay_ms = 4000")?;
    let marker = server_marker(&s._cfg);
    let victim = 1usize;
    let pid = nix::unistd::Pid::from_raw(worker_pids(&marker)[&victim]);
    assert_eq!(
        s.server.sysctl_get("net.ipv4.tcp_migrate_req")?,
        "1",
        "on while weir runs"
    );
    if someone_turns_migration_off {
        s.server.sysctl("net.ipv4.tcp_migrate_req", "0")?;
    }
    // Stopped, not dead: still in the table, so its share of new connections queues on its socket.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP)?;
    let server: IpAddr = SERVER4.parse()?;
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        let killed = Instant::now();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).map(|()| killed)
    });
    let results = parallel_requests(&s, server, 24);
    let killed = killer.join().unwrap()?;
    let mut queued_on_victim = 0;
    for (r, done) in results {
        let local = r.map_err(|e| anyhow::anyhow!("a request failed: {e}"))?;
        if owner_of(local, server) == Some(victim) {
            queued_on_victim += 1;
            let waited = done.saturating_duration_since(killed);
            assert!(
                waited < Duration::from_millis(2000),
                "{local} was queued on the dead worker and served {waited:?} after the kill: not migrated"
            );
        }
    }
    assert!(
        queued_on_victim >= 1,
        "no connection was steered to the stopped worker"
    );
    if someone_turns_migration_off {
        assert_eq!(s.server.sysctl_get("net.ipv4.tcp_migrate_req")?, "1");
        let log = weir_log(&s);
        assert!(
            log.contains("tcp_migrate_req was changed while weir runs"),
            "{log}"
        );
    }
    assert!(interrupt(&mut s.weir)?);
    assert_eq!(
        s.server.sysctl_get("net.ipv4.tcp_migrate_req")?,
        "0",
        "restored at exit"
    );
    Ok(())
}

/// A hung worker (SIGSTOP stands in for a task that never yields or a deadlock: its runtime no
/// longer runs) keeps its place in the steering table, so its share of new connections queues
/// on its sockets unanswered. The watchdog sees its reports stop, kills it (the queue migrates)
/// and restarts it. Without the watchdog every connection steered to it waits forever.
#[test]
fn a_hung_worker_is_killed_by_the_watchdog_and_its_share_served() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let mut s = setup_with("watchdog_seconds = 2")?;
    let marker = server_marker(&s._cfg);
    let victim = 3usize;
    let old_pid = worker_pids(&marker)[&victim];
    let pid = nix::unistd::Pid::from_raw(old_pid);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP)?;
    let stopped = Instant::now();
    let server: IpAddr = SERVER4.parse()?;
    // Started at once: those steered to the victim queue on its socket until the watchdog acts.
    let (mut on_victim, mut failed) = (0, Vec::new());
    for (r, done) in parallel_requests(&s, server, 24) {
        let local = match r {
            Ok(l) => l,
            Err(e) => {
                failed.push(e);
                continue;
            }
        };
        if owner_of(local, server) == Some(victim) {
            on_victim += 1;
            let waited = done - stopped;
            // 2 s of silence, a round every 0.5 s, then the migration.
            assert!(
                waited < Duration::from_millis(4000),
                "{local} queued on the hung worker was served {waited:?} after it stopped"
            );
        }
    }
    assert!(
        failed.is_empty(),
        "requests failed while a worker hung: {failed:#?}\n{}",
        weir_log(&s)
    );
    assert!(
        on_victim >= 1,
        "no connection was steered to the hung worker"
    );
    let log = weir_log(&s);
    assert!(
        log.contains("worker unresponsive"),
        "the watchdog said nothing:\n{log}"
    );
    // Restarted, and back in the table with its share.
    wait_until(Duration::from_secs(10), "the hung worker's restart", || {
        Ok(worker_pids(&marker)
            .get(&victim)
            .is_some_and(|p| *p != old_pid)
            && weir_log(&s).matches("worker ready").count() > WORKERS)
    })?;
    assert!(
        !std::path::Path::new(&format!("/proc/{old_pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{old_pid}/stat"))
                .is_ok_and(|st| st.contains(") Z ")),
        "the hung process still lives"
    );
    let before = served_by(&s.log)?
        .iter()
        .filter(|(_, w)| *w == victim)
        .count();
    for _ in 0..120 {
        request(&s.client, server)?;
    }
    let after = served_by(&s.log)?
        .iter()
        .filter(|(_, w)| *w == victim)
        .count();
    assert!(
        after - before >= 10,
        "the restarted worker took {} of 120",
        after - before
    );
    assert!(interrupt(&mut s.weir)?);
    Ok(())
}
