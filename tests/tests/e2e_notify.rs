//! `weir run` under a service manager speaking systemd's notify protocol (`Type=notify`,
//! `dist/weir.service`): what it sends on `NOTIFY_SOCKET` as it starts, reloads (a good file
//! and a bad one) and stops, its watchdog pings, and workers that do not inherit the socket.
//! This machine runs no systemd as PID 1: the test binds the datagram socket systemd would
//! and reads what weir sends, as systemd does. Needs root (namespaces).

mod common;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    os::unix::net::UnixDatagram,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use common::*;
use nix::sys::signal::Signal;
use weir_tests::lab::{Lab, Ns, wait_until};

const PORT: u16 = 8086;
const WORKERS: usize = 2;

/// The messages the manager's socket received, each with when, and what weir's log said by
/// then: the lines saying a worker is ready.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<(Instant, String)>>>, Arc<Mutex<Vec<usize>>>);

impl Heard {
    fn listen(sock: UnixDatagram, log: std::path::PathBuf) -> Heard {
        let heard = Heard::default();
        let h = heard.clone();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            // Ends with the test (its socket file is removed, the thread's reads time out until
            // the process exits).
            loop {
                if let Ok(n) = sock.recv(&mut buf) {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let ready = std::fs::read_to_string(&log)
                        .unwrap_or_default()
                        .matches("worker ready")
                        .count();
                    h.1.lock().unwrap().push(ready);
                    h.0.lock().unwrap().push((Instant::now(), msg));
                }
            }
        });
        heard
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.0.lock().unwrap().clone()
    }

    /// The first message at or after `since` holding `line` (a whole line of it).
    fn wait_for(&self, since: Instant, line: &str) -> Result<(Instant, String)> {
        let mut found = None;
        wait_until(Duration::from_secs(20), line, || {
            found = self
                .all()
                .into_iter()
                .find(|(t, m)| *t >= since && m.lines().any(|l| l == line));
            Ok(found.is_some())
        })
        .with_context(|| format!("heard: {:#?}", self.all()))?;
        Ok(found.unwrap())
    }
}

fn config(body: &str) -> String {
    format!(
        "[admin]\nenabled = false\n\n[workers]\ncount = {WORKERS}\n\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\n\
         default_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"{body}\" }}\n"
    )
}

fn get(ns: &Ns) -> Result<String> {
    ns.in_ns(|| -> Result<String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], PORT));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: weir\r\nConnection: close\r\n\r\n")?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        Ok(resp)
    })?
}

fn signal(weir: &weir_tests::lab::Proc, s: Signal) -> Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(weir.pid() as i32), s)?;
    Ok(())
}

/// `weir run --config CFG` in `ns` under a manager that listens on `sock` (weir is told
/// `notify`), with `env` added and its stderr in `stderr`: weir, when it was started, and what
/// the manager hears.
fn run_managed(
    ns: &Ns,
    cfg: &TempFile,
    stderr: &TempFile,
    sock: UnixDatagram,
    notify: &std::ffi::OsStr,
    env: &[(&str, &str)],
) -> Result<(weir_tests::lab::Proc, Instant, Heard)> {
    let heard = Heard::listen(sock, stderr.0.clone());
    let mut c = weir_test_command(ns);
    c.args(["run", "--config", cfg.path()])
        .env("NOTIFY_SOCKET", notify)
        .envs(env.iter().copied())
        .stderr(std::fs::File::create(&stderr.0)?);
    let started = Instant::now();
    Ok((ns.spawn_command(c)?, started, heard))
}

fn status_of(msg: &str) -> &str {
    msg.lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or("")
}

#[test]
fn weir_run_tells_the_manager_ready_reloading_and_stopping_and_pings_its_watchdog() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("notify")?;
    let dir = TempDir(std::env::temp_dir().join(format!("weir-notify-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let sock_path = dir.0.join("notify.sock");
    let cfg = TempFile::new("notify.toml", &config("one"));
    let stderr = TempFile::new("notify.stderr", "");
    let (mut weir, started, heard) = run_managed(
        &ns,
        &cfg,
        &stderr,
        UnixDatagram::bind(&sock_path)?,
        sock_path.as_os_str(),
        // One second: a ping every half.
        &[("WATCHDOG_USEC", "1000000")],
    )?;
    let log = || std::fs::read_to_string(&stderr.0).unwrap_or_default();

    // Ready once every worker is: a request is answered at once then.
    let (ready_at, ready) = heard.wait_for(started, "READY=1").with_context(log)?;
    ensure!(
        status_of(&ready) == format!("serving: generation 1, {WORKERS} workers"),
        "{ready:?}"
    );
    let asked = Instant::now();
    let resp = get(&ns)?;
    ensure!(resp.ends_with("one"), "{resp}");
    ensure!(
        asked.elapsed() < Duration::from_secs(2),
        "the first request after READY=1 took {:?}",
        asked.elapsed()
    );
    // Nothing said it was ready earlier, and by then every worker had said it was.
    let all = heard.all();
    let early: Vec<_> = all
        .iter()
        .filter(|(t, m)| *t < ready_at && m.contains("READY=1"))
        .collect();
    ensure!(early.is_empty(), "{early:?}");
    let at = all.iter().position(|(t, _)| *t == ready_at).unwrap();
    let workers_ready = heard.1.lock().unwrap()[at];
    ensure!(
        workers_ready == WORKERS,
        "READY=1 when the log had {workers_ready} workers ready"
    );

    // The watchdog: pings from the main loop, about two a second.
    std::thread::sleep(Duration::from_millis(2100));
    let pings = heard
        .all()
        .iter()
        .filter(|(t, m)| *t >= ready_at && m.lines().any(|l| l == "WATCHDOG=1"))
        .count();
    ensure!((3..=8).contains(&pings), "{pings} pings in 2.1 s");

    // The workers do not inherit the manager's variables.
    let pids = worker_pids(cfg.path());
    ensure!(pids.len() == WORKERS, "{pids:?}");
    for pid in pids.values() {
        let env = std::fs::read(format!("/proc/{pid}/environ"))?;
        let env = String::from_utf8_lossy(&env);
        for v in ["NOTIFY_SOCKET=", "WATCHDOG_USEC="] {
            ensure!(
                !env.split('\0').any(|e| e.starts_with(v)),
                "worker {pid} inherited {v}"
            );
        }
    }

    // A reload: RELOADING=1 with the monotonic clock, then READY=1 under generation 2.
    std::fs::write(&cfg.0, config("two"))?;
    let hup = Instant::now();
    signal(&weir, Signal::SIGHUP)?;
    let (_, reloading) = heard.wait_for(hup, "RELOADING=1")?;
    ensure!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    let (_, done) = heard.wait_for(hup, "READY=1")?;
    ensure!(status_of(&done) == "serving: generation 2", "{done:?}");
    wait_until(Duration::from_secs(5), "generation 2 served", || {
        Ok(get(&ns)?.ends_with("two"))
    })?;

    // A bad file: reloading, then serving again under generation 2, saying why.
    std::fs::write(&cfg.0, "[workers]\ncount = \"two\"\n")?;
    let hup = Instant::now();
    signal(&weir, Signal::SIGHUP)?;
    heard.wait_for(hup, "RELOADING=1")?;
    let (_, refused) = heard.wait_for(hup, "READY=1")?;
    let status = status_of(&refused);
    ensure!(
        status.starts_with("serving: generation 2 (reload refused: ")
            && status.contains("workers.count"),
        "{refused:?}"
    );
    ensure!(get(&ns)?.ends_with("two"));

    // The stop.
    let term = Instant::now();
    signal(&weir, Signal::SIGTERM)?;
    heard.wait_for(term, "STOPPING=1")?;
    let stopped = wait_until(Duration::from_secs(20), "weir to exit", || {
        Ok(!weir.is_running())
    });
    if stopped.is_err() {
        bail!("weir did not stop:\n{}", log());
    }
    Ok(())
}

/// A manager whose socket is in the abstract namespace (`NOTIFY_SOCKET=@name`, `sd_notify(3)`;
/// container managers use such names). Before, weir took the name for a path: every message
/// failed ("cannot notify the service manager"), `READY=1` never came, and a `Type=notify` unit
/// would have been killed at its start timeout. The name lives in weir's network namespace,
/// so the test binds it there.
#[test]
fn an_abstract_notify_socket_hears_ready_and_stopping() -> Result<()> {
    use std::os::linux::net::SocketAddrExt;
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("notifyat")?;
    let name = format!("weir-notify-test-{}", std::process::id());
    let sock = ns.in_ns(|| {
        let at = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        UnixDatagram::bind_addr(&at)
    })??;
    let cfg = TempFile::new("notifyat.toml", &config("one"));
    let stderr = TempFile::new("notifyat.stderr", "");
    let notify = format!("@{name}");
    let (mut weir, started, heard) = run_managed(&ns, &cfg, &stderr, sock, notify.as_ref(), &[])?;
    let log = || std::fs::read_to_string(&stderr.0).unwrap_or_default();
    let (_, ready) = heard.wait_for(started, "READY=1").with_context(log)?;
    ensure!(
        status_of(&ready) == format!("serving: generation 1, {WORKERS} workers"),
        "{ready:?}"
    );
    ensure!(get(&ns)?.ends_with("one"));
    let term = Instant::now();
    signal(&weir, Signal::SIGTERM)?;
    heard.wait_for(term, "STOPPING=1").with_context(log)?;
    wait_until(Duration::from_secs(20), "weir to exit", || {
        Ok(!weir.is_running())
    })
    .with_context(log)?;
    ensure!(!log().contains("cannot notify"), "{}", log());
    Ok(())
}
