//! Listeners and VIPs by reload (issue #13), real `weir`, real targets, real clients, in lab
//! namespaces. Needs root.
//!
//! - listeners: under a steady load on the first listener (new connections and one keep-alive
//!   connection, 0 failures allowed), a reload adds a second listener: before it connections to
//!   its port are refused, after it 400 new connections are all answered and both workers
//!   answer some (the access log names the worker) and hold its socket (`ss -p`); worker 0,
//!   SIGKILLed, comes back holding and serving it; a reload removes it while 4 slow requests run
//!   on it: they are answered, new connections to its port are refused, its sockets are gone; a
//!   keep-alive connection idle on it is closed at once, one busy on it after its response.
//! - VIPs: `weir run --no-l7` on a veth with SYN cookies always on; a reload adds a VIP (its
//!   SYNs are answered with cookies from XDP at once, its counters start at 0, the first VIP's
//!   keep counting) and another removes the first (its traffic passes untouched as not-a-VIP),
//!   under a steady load of new connections to both ports: 0 failures; the XDP program's id
//!   stays the same throughout (no detach).
//!
//! Both fail on the code before (a reload that adds a listener or changes `[[vip]]` was refused).

mod common;
mod e2e_reload_support;

use std::{
    io::Write,
    net::{SocketAddr, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use common::TempFile;
use e2e_reload_support::{Backend, Outcome, read_response, request_new_conn, weir_command};
use weir_tests::lab::{Lab, Ns, Proc, XdpMode, wait_until};

const PORT: u16 = 8080;
const NEW_PORT: u16 = 8081;
const SLOW: Duration = Duration::from_secs(2);

/// `weir run ARGS` in `ns` with stdout (the access log) and stderr in files.
struct Weir {
    proc: Proc,
    out: TempFile,
    err: TempFile,
}

impl Weir {
    fn start(ns: &Ns, args: &[&str], ready: impl Fn(&str) -> bool) -> Result<Weir> {
        let (out, err) = (TempFile::new("out", ""), TempFile::new("err", ""));
        let mut c = weir_command(ns);
        c.arg("run")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out.0)?)
            .stderr(std::fs::File::create(&err.0)?);
        let proc = ns.spawn_command(c)?;
        let mut w = Weir { proc, out, err };
        let up = wait_until(Duration::from_secs(30), "weir ready", || {
            if !w.proc.is_running() {
                bail!("weir exited");
            }
            Ok(ready(&w.log()))
        });
        if up.is_err() {
            eprintln!("{}", w.log());
        }
        up?;
        Ok(w)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.err.0).unwrap_or_default()
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(&self.out.0).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child we own.
        unsafe { libc::kill(self.proc.pid() as i32, sig) };
    }

    /// Writes `text` as the file (one rename) and sends SIGHUP; waits for the `n`th reload.
    fn reload(&self, cfg: &TempFile, text: &str, n: usize) -> Result<()> {
        let tmp = cfg.0.with_extension("new");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &cfg.0)?;
        self.signal(libc::SIGHUP);
        wait_until(Duration::from_secs(10), &format!("reload {n}"), || {
            let log = self.log();
            if log.contains("reload refused") {
                bail!("reload refused: {log}");
            }
            Ok(log.matches("configuration reloaded").count() >= n)
        })
    }

    /// The pid of worker `index` (a child of weir running `weir worker --index index`).
    fn worker_pid(&self, index: usize) -> Option<u32> {
        let me = self.proc.pid();
        for e in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_index = args
                .windows(2)
                .any(|w| w[0] == "--index" && w[1] == index.to_string());
            if ppid == Some(me) && is_index {
                return Some(pid);
            }
        }
        None
    }

    fn stop(mut self) -> Result<()> {
        self.signal(libc::SIGTERM);
        match self.proc.wait_timeout(Duration::from_secs(20))? {
            Some(_) => Ok(()),
            None => bail!("weir did not stop"),
        }
    }
}

/// The pids holding a listening socket on `port` in `ns` (`ss -tlnp`).
fn listening_pids(ns: &Ns, port: u16) -> Result<Vec<u32>> {
    let out = ns.exec(&["ss", "-Htlnp", &format!("sport = :{port}")])?;
    let mut pids: Vec<u32> = out
        .split("pid=")
        .skip(1)
        .filter_map(|r| r.split(',').next()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

fn listeners_config(new_listener: bool, target: SocketAddr) -> String {
    let second = if new_listener {
        format!(
            "[[listener]]\naddress = \"127.0.0.1\"\nport = {NEW_PORT}\n\
             default_action = {{ type = \"forward\", target_group = \"app\" }}\n"
        )
    } else {
        String::new()
    };
    format!(
        "[workers]\ncount = 2\n\n\
         [load_balancer]\ndrain_timeout_seconds = 5\naccess_logs = {{ enabled = true, path = \"-\" }}\n\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\n\
         default_action = {{ type = \"forward\", target_group = \"app\" }}\n\n\
         {second}\n\
         [[target_group]]\nname = \"app\"\nport = {}\ntarget = [{{ id = \"{}\" }}]\n",
        target.port(),
        target.ip()
    )
}

/// A steady load: new connections from two threads and one keep-alive connection, to `to`.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(ns: &Ns, to: Vec<SocketAddr>, want: &'static str, keep_alive: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for (k, to) in to.iter().flat_map(|a| [*a, *a]).enumerate() {
            let (ns, stop, ok, failures) = (ns.clone(), stop.clone(), ok.clone(), failures.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    match request_new_conn(&ns, to, &format!("/load-{k}"), Duration::from_secs(5)) {
                        Outcome::Answered(200, b) if b == want => {
                            ok.fetch_add(1, Relaxed);
                        }
                        other => failures.lock().unwrap().push(format!("{to}: {other:?}")),
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }));
        }
        if keep_alive {
            let (ns, stop, ok, failures, to) = (
                ns.clone(),
                stop.clone(),
                ok.clone(),
                failures.clone(),
                to[0],
            );
            threads.push(std::thread::spawn(move || {
                let conn = ns.in_ns(|| TcpStream::connect_timeout(&to, Duration::from_secs(5)));
                let Ok(Ok(mut s)) = conn else {
                    failures.lock().unwrap().push("keep-alive connect".into());
                    return;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                while !stop.load(Relaxed) {
                    let req = "GET /keep-alive HTTP/1.1\r\nhost: weir.test\r\n\r\n";
                    let r = s
                        .write_all(req.as_bytes())
                        .map_err(|e| e.to_string())
                        .and_then(|()| read_response(&mut s));
                    match r {
                        Ok((200, _, b)) if b == want => {
                            ok.fetch_add(1, Relaxed);
                        }
                        other => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("keep-alive: {other:?}"));
                            return;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }));
        }
        Load {
            stop,
            ok,
            failures,
            threads,
        }
    }

    /// Stops the load; (answered, failures).
    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let f = self.failures.lock().unwrap().clone();
        (self.ok.load(Relaxed), f)
    }
}

/// Access-log lines for requests whose path starts with `prefix`, by worker (`weir/N`).
fn served_by(access_log: &str, prefix: &str) -> [usize; 2] {
    let mut by = [0usize; 2];
    for l in access_log.lines().filter(|l| l.contains(prefix)) {
        for (w, n) in by.iter_mut().enumerate() {
            if l.split_whitespace().nth(2) == Some(&format!("weir/{w}")) {
                *n += 1;
            }
        }
    }
    by
}

#[test]
fn a_reload_adds_a_listener_every_worker_serves_and_removes_it_draining() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("rlls")?;
    ns.ip(&["link", "set", "lo", "up"])?;
    let target = Backend::start(&ns, "127.0.0.1:0", "a", SLOW)?;
    let cfg = TempFile::new("rlls.toml", &listeners_config(false, target.addr));
    let weir = Weir::start(&ns, &["--config", cfg.path()], |l| {
        l.matches("worker ready").count() >= 2
    })?;
    let old: SocketAddr = ([127, 0, 0, 1], PORT).into();
    let new: SocketAddr = ([127, 0, 0, 1], NEW_PORT).into();
    let load = Load::start(&ns, vec![old], "target a\n", true);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        request_new_conn(&ns, new, "/before", Duration::from_secs(2)),
        Outcome::Refused,
        "nothing listens on the new port before the reload"
    );

    // Added: served by every worker.
    weir.reload(&cfg, &listeners_config(true, target.addr), 1)?;
    let mut answered = 0;
    for i in 0..400 {
        match request_new_conn(&ns, new, &format!("/added-{i}"), Duration::from_secs(5)) {
            Outcome::Answered(200, b) if b == "target a\n" => answered += 1,
            other => bail!(
                "request {i} to the added listener: {other:?}\n{}",
                weir.log()
            ),
        }
    }
    let (w0, w1) = (weir.worker_pid(0), weir.worker_pid(1));
    let (w0, w1) = (w0.context("worker 0")?, w1.context("worker 1")?);
    let holders = listening_pids(&ns, NEW_PORT)?;
    wait_until(Duration::from_secs(5), "access-log lines", || {
        Ok(served_by(&weir.access_log(), "/added-")
            .iter()
            .sum::<usize>()
            >= 400)
    })?;
    let by = served_by(&weir.access_log(), "/added-");
    eprintln!(
        "added listener: {answered} of 400 new connections answered, by worker {by:?}; socket holders {holders:?} (workers {w0}, {w1})"
    );
    assert!(by[0] > 40 && by[1] > 40, "both workers serve it: {by:?}");
    assert!(
        holders.contains(&w0) && holders.contains(&w1),
        "{holders:?}"
    );

    // A worker SIGKILLed after the add comes back holding and serving the new listener. (The
    // connections the killed process had accepted die with it: the load pauses meanwhile.)
    let (ok1, failures1) = load.finish();
    eprintln!(
        "steady load on the first listener across the add: {ok1} answered, {} failed",
        failures1.len()
    );
    assert!(failures1.is_empty(), "{failures1:?}");
    // SAFETY: kill(2) on a worker of the weir we started.
    unsafe { libc::kill(w0 as i32, libc::SIGKILL) };
    wait_until(Duration::from_secs(10), "worker 0 back", || {
        Ok(weir.log().matches("worker ready").count() >= 3)
    })?;
    let w0b = weir.worker_pid(0).context("worker 0 restarted")?;
    ensure!(w0b != w0);
    for i in 0..200 {
        match request_new_conn(&ns, new, &format!("/restarted-{i}"), Duration::from_secs(5)) {
            Outcome::Answered(200, _) => {}
            other => bail!("request {i} after the restart: {other:?}"),
        }
    }
    let holders = listening_pids(&ns, NEW_PORT)?;
    wait_until(Duration::from_secs(5), "access-log lines", || {
        Ok(served_by(&weir.access_log(), "/restarted-")
            .iter()
            .sum::<usize>()
            >= 200)
    })?;
    let by = served_by(&weir.access_log(), "/restarted-");
    eprintln!(
        "after SIGKILL of worker 0 ({w0} → {w0b}): 200 answered, by worker {by:?}; holders {holders:?}"
    );
    assert!(holders.contains(&w0b), "{holders:?}");
    assert!(by[0] > 20, "the restarted worker serves it: {by:?}");

    // Removed while 4 slow requests run on it: they finish, new connections are refused.
    let load = Load::start(&ns, vec![old], "target a\n", true);
    std::thread::sleep(Duration::from_millis(300));
    let slow: Vec<_> = (0..4)
        .map(|i| {
            let ns = ns.clone();
            std::thread::spawn(move || {
                request_new_conn(&ns, new, &format!("/slow-{i}"), Duration::from_secs(10))
            })
        })
        .collect();
    // And two keep-alive connections on it: one idle across the removal, one with a slow
    // request in flight.
    let keep = |path: &str| -> Result<TcpStream> {
        let mut c = ns.in_ns(|| TcpStream::connect_timeout(&new, Duration::from_secs(5)))??;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.write_all(format!("GET {path} HTTP/1.1\r\nhost: weir.test\r\n\r\n").as_bytes())?;
        Ok(c)
    };
    let mut idle = keep("/kept")?;
    let first = read_response(&mut idle).map_err(anyhow::Error::msg)?;
    ensure!(
        first.0 == 200 && !first.1.contains("connection: close"),
        "{first:?}"
    );
    let mut busy = keep("/kept")?;
    read_response(&mut busy).map_err(anyhow::Error::msg)?;
    busy.write_all(b"GET /slow-kept HTTP/1.1\r\nhost: weir.test\r\n\r\n")?;
    std::thread::sleep(Duration::from_millis(400));
    let t = Instant::now();
    weir.reload(&cfg, &listeners_config(false, target.addr), 2)?;
    let mut refused_in_a_row = 0;
    wait_until(
        Duration::from_secs(5),
        "the removed listener refuses",
        || {
            match request_new_conn(&ns, new, "/after", Duration::from_secs(2)) {
                Outcome::Refused => refused_in_a_row += 1,
                Outcome::Answered(..) => refused_in_a_row = 0,
                other => bail!("a connection to the removed listener: {other:?}"),
            }
            Ok(refused_in_a_row >= 20)
        },
    )?;
    let refused_after = t.elapsed();
    let slow: Vec<Outcome> = slow.into_iter().map(|h| h.join().unwrap()).collect();
    // The idle connection was closed (FIN) at the removal; the busy one after its response.
    let mut rest = [0u8; 16];
    let idle_end = std::io::Read::read(&mut idle, &mut rest);
    let busy_last = read_response(&mut busy).map_err(anyhow::Error::msg)?;
    let busy_end = std::io::Read::read(&mut busy, &mut rest);
    eprintln!(
        "keep-alive connections on the removed listener: idle one {idle_end:?}; busy one {} {:?}, then {busy_end:?}",
        busy_last.0, busy_last.2
    );
    assert!(
        matches!(idle_end, Ok(0)),
        "the idle one is closed: {idle_end:?}"
    );
    assert_eq!((busy_last.0, busy_last.2.as_str()), (200, "target a\n"));
    assert!(
        matches!(busy_end, Ok(0)),
        "the busy one is closed after its response: {busy_end:?}"
    );
    wait_until(Duration::from_secs(5), "its sockets closed", || {
        Ok(listening_pids(&ns, NEW_PORT)?.is_empty())
    })?;
    eprintln!(
        "removed listener: refused within {refused_after:?}; in-flight slow requests {slow:?}"
    );
    for s in &slow {
        assert_eq!(*s, Outcome::Answered(200, "target a\n".into()));
    }

    let (ok, failures) = load.finish();
    eprintln!(
        "steady load on the first listener across the removal: {ok} answered, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(ok1 > 200 && ok > 100, "{ok1} {ok}");
    let log = weir.log();
    assert!(
        !log.contains("NOT applied") && !log.contains("cannot follow"),
        "{log}"
    );
    weir.stop()
}

const CLIENT: &str = "10.79.0.1";
const VIP: &str = "10.79.0.2";

fn vip_config(ports: &[u16]) -> String {
    let vips: String = ports
        .iter()
        .map(|p| format!("[[vip]]\naddress = \"{VIP}\"\nport = {p}\n"))
        .collect();
    format!("[xdp]\nmode = \"native\"\n\n[syn]\nmode = \"always\"\n\n{vips}")
}

/// The XDP program id `ip link` shows on the interface.
fn prog_id(ns: &Ns, dev: &str) -> Result<String> {
    let out = ns.ip(&["-d", "link", "show", "dev", dev])?;
    let id = out
        .split("prog/xdp id ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .with_context(|| format!("no XDP program on {dev}: {out}"))?;
    Ok(id.to_string())
}

/// `(id, packets, cookies_sent)` of the VIP on `port` in `weir stats --json`.
fn vip_stats(ns: &Ns, dev: &str, port: u16) -> Result<Option<(u64, u64, u64)>> {
    let (ok, out, err) =
        common::weir_once(ns, &["stats", "--json", "--interval", "0", "--iface", dev])?;
    ensure!(ok, "weir stats: {err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let vip = v["vips"]
        .as_array()
        .context("vips")?
        .iter()
        .find(|x| x["port"].as_u64() == Some(u64::from(port)));
    Ok(vip.map(|x| {
        (
            x["id"].as_u64().unwrap_or(u64::MAX),
            x["packets"].as_u64().unwrap_or(0),
            x["syn"]["cookies_sent"].as_u64().unwrap_or(0),
        )
    }))
}

#[test]
fn a_reload_adds_and_removes_vips_in_place_with_syn_cookies() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let client = lab.add_ns("vcli")?;
    let server = lab.add_ns("vsrv")?;
    let (c0, s0) = lab.veth(&client, &server)?;
    c0.addr(&format!("{CLIENT}/24"))?;
    s0.addr(&format!("{VIP}/24"))?;
    // weir's SYN-ACKs leave s0 by XDP_TX: the peer has a program, so it receives them.
    c0.attach_xdp_pass(XdpMode::Native)?;
    let _a = Backend::start(&server, &format!("{VIP}:{PORT}"), "a", SLOW)?;
    let _b = Backend::start(&server, &format!("{VIP}:{NEW_PORT}"), "b", SLOW)?;
    let (to_a, to_b): (SocketAddr, SocketAddr) = (
        format!("{VIP}:{PORT}").parse()?,
        format!("{VIP}:{NEW_PORT}").parse()?,
    );
    let cfg = TempFile::new("vips.toml", &vip_config(&[PORT]));
    let weir = Weir::start(
        &server,
        &["--no-l7", "--iface", s0.name(), "--config", cfg.path()],
        |l| l.contains("weir running"),
    )?;
    let prog = prog_id(&server, s0.name())?;
    let load_a = Load::start(&client, vec![to_a], "target a\n", false);
    let load_b = Load::start(&client, vec![to_b], "target b\n", false);
    // At least 0.5 s of load, and until its SYNs got cookies (a loaded machine starts the
    // clients later): each step below waits so, not a fixed time.
    std::thread::sleep(Duration::from_millis(500));
    let mut a1 = None;
    wait_until(Duration::from_secs(10), "cookies for the first VIP", || {
        a1 = vip_stats(&server, s0.name(), PORT)?;
        Ok(a1.is_some_and(|a| a.2 > 0))
    })?;
    let a1 = a1.context("VIP 8080")?;
    ensure!(vip_stats(&server, s0.name(), NEW_PORT)?.is_none());

    // Added: its SYNs get cookies from XDP, its counters start at 0; the first VIP keeps its
    // id and its counts.
    weir.reload(&cfg, &vip_config(&[PORT, NEW_PORT]), 1)?;
    std::thread::sleep(Duration::from_millis(500));
    // (Past the limit, the assertions below say what is missing.)
    let (mut a2, mut b1) = (None, None);
    let _ = wait_until(Duration::from_secs(10), "both VIPs counting", || {
        a2 = vip_stats(&server, s0.name(), PORT)?;
        b1 = vip_stats(&server, s0.name(), NEW_PORT)?;
        Ok(a2.is_some_and(|a| a.1 > a1.1 && a.2 > a1.2) && b1.is_some_and(|b| b.1 > 0 && b.2 > 0))
    });
    let b1 = b1.context("VIP 8081 added")?;
    let a2 = a2.context("VIP 8080 kept")?;
    let prog2 = prog_id(&server, s0.name())?;
    eprintln!(
        "after the add: VIP {PORT} (id, packets, cookies) {a1:?} → {a2:?}; VIP {NEW_PORT} {b1:?}; prog {prog} → {prog2}"
    );
    assert_eq!(a2.0, a1.0, "the kept VIP keeps its id");
    assert!(a2.1 > a1.1 && a2.2 > a1.2, "and keeps counting");
    assert!(
        b1.1 > 0 && b1.2 > 0,
        "the added VIP is handled, with cookies: {b1:?}"
    );
    assert_ne!(b1.0, a1.0);
    assert_eq!(prog2, prog, "no detach");

    // Removed: its traffic passes untouched; the other VIP keeps its id.
    weir.reload(&cfg, &vip_config(&[NEW_PORT]), 2)?;
    std::thread::sleep(Duration::from_millis(500));
    let (mut gone, mut b2) = (None, None);
    let _ = wait_until(
        Duration::from_secs(10),
        "the VIP removed, the other counting",
        || {
            gone = vip_stats(&server, s0.name(), PORT)?;
            b2 = vip_stats(&server, s0.name(), NEW_PORT)?;
            Ok(gone.is_none() && b2.is_some_and(|b| b.2 > b1.2))
        },
    );
    let b2 = b2.context("VIP 8081 kept")?;
    let prog3 = prog_id(&server, s0.name())?;
    let (ok_a, fail_a) = load_a.finish();
    let (ok_b, fail_b) = load_b.finish();
    eprintln!(
        "after the removal: VIP {PORT} {gone:?}; VIP {NEW_PORT} {b1:?} → {b2:?}; prog {prog3}; \
         load to {PORT}: {ok_a} answered, {} failed; to {NEW_PORT}: {ok_b} answered, {} failed",
        fail_a.len(),
        fail_b.len()
    );
    assert!(gone.is_none(), "the removed VIP is gone from the maps");
    assert_eq!(b2.0, b1.0);
    assert!(b2.2 > b1.2);
    assert_eq!(prog3, prog, "no detach");
    assert!(fail_a.is_empty(), "{fail_a:?}");
    assert!(fail_b.is_empty(), "{fail_b:?}");
    assert!(ok_a > 100 && ok_b > 100);
    weir.stop()
}

fn freebind_config(listeners: &[(&str, u16, bool)]) -> String {
    let mut t = String::from("[workers]\ncount = 1\n[admin]\nenabled = false\n");
    for (address, port, freebind) in listeners {
        t.push_str(&format!(
            "[[listener]]\naddress = \"{address}\"\nport = {port}\nfreebind = {freebind}\n\
             default_action = {{ type = \"fixed-response\", status_code = 200, \
             content_type = \"text/plain\", message_body = \"on {address}\\n\" }}\n"
        ));
    }
    t
}

/// A listener on an address the host does not have yet — the VIP of a VRRP/keepalived backup,
/// one BGP announces later, DHCP's: without `freebind` weir refuses to start and says what to
/// do; with it, weir starts, and serves the address from the moment it is added, also on a
/// listener a reload adds; a reload that changes `freebind` on a kept listener is refused with
/// its location. The code before: "Cannot assign requested address" and nothing more, and
/// `freebind` an unknown key.
#[test]
fn a_listener_on_an_address_the_host_gets_later_binds_with_freebind() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("vrrp")?;
    ns.ip(&["link", "set", "lo", "up"])?;
    let (vip, vip2) = ("10.77.0.9", "10.77.0.10");
    let get = |addr: &str, port: u16| {
        let to: SocketAddr = format!("{addr}:{port}").parse().expect("address");
        request_new_conn(&ns, to, "/", Duration::from_secs(3))
    };

    let cfg = TempFile::new("freebind.toml", &freebind_config(&[(vip, PORT, false)]));
    let mut c = weir_command(&ns);
    c.args(["run", "--config", cfg.path()]);
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(20))?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "weir started without the address");
    ensure!(
        err.contains("no interface of this host has 10.77.0.9") && err.contains("freebind = true"),
        "weir says what to do: {err}"
    );

    std::fs::write(&cfg.0, freebind_config(&[(vip, PORT, true)]))?;
    let weir = Weir::start(&ns, &["--config", cfg.path()], |l| {
        l.contains("worker ready")
    })?;
    let result = (|| -> Result<()> {
        let before = get(vip, PORT);
        ensure!(
            !matches!(before, Outcome::Answered(..)),
            "answered before the host had the address: {before:?}"
        );
        ns.ip(&["addr", "add", &format!("{vip}/32"), "dev", "lo"])?;
        let after = get(vip, PORT);
        ensure!(
            matches!(&after, Outcome::Answered(200, body) if body.contains(vip)),
            "once the address is added: {after:?}"
        );
        // A listener added by a reload, on an address still to come.
        let two = [(vip, PORT, true), (vip2, NEW_PORT, true)];
        weir.reload(&cfg, &freebind_config(&two), 1)?;
        ns.ip(&["addr", "add", &format!("{vip2}/32"), "dev", "lo"])?;
        let added = get(vip2, NEW_PORT);
        ensure!(
            matches!(&added, Outcome::Answered(200, body) if body.contains(vip2)),
            "the reload's listener: {added:?}"
        );
        // freebind changed on a kept listener: refused, located.
        let tmp = cfg.0.with_extension("new");
        std::fs::write(
            &tmp,
            freebind_config(&[(vip, PORT, false), (vip2, NEW_PORT, true)]),
        )?;
        std::fs::rename(&tmp, &cfg.0)?;
        weir.signal(libc::SIGHUP);
        wait_until(Duration::from_secs(10), "the reload refused", || {
            Ok(weir.log().contains("reload refused"))
        })?;
        let log = weir.log();
        ensure!(
            log.contains("listener[0].freebind") || log.contains("listener[0]`.freebind"),
            "the refusal names the field: {log}"
        );
        let still = get(vip, PORT);
        ensure!(
            matches!(still, Outcome::Answered(200, _)),
            "served after the refusal: {still:?}"
        );
        Ok(())
    })();
    let log = weir.log();
    weir.stop()?;
    result.with_context(|| format!("weir's log: {log}"))
}
