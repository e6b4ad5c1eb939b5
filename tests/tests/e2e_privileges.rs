//! `weir run`'s workers give up root: each worker (every thread of it) runs as an unprivileged
//! user with no capability, `NO_NEW_PRIVS` and a seccomp filter, still serves HTTP and HTTPS
//! (certificate and access-log files opened before the drop), and a forbidden system call kills
//! only that worker, which the supervisor restarts. The forbidden call is made from outside with
//! gdb (root's ptrace is not filtered by the target's seccomp; the call it injects runs in the
//! worker and is), so the binary carries no back door for it. Needs root.

mod common;

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use common::*;
use weir_tests::lab::{Lab, Ns, Proc, wait_until};

/// The pids whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let after = s.rsplit_once(')')?.1.split_whitespace().nth(1)?.to_string();
                    after.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// `weir worker --index N` of a pid.
fn worker_index(pid: u32) -> Option<usize> {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
    let at = args.iter().position(|a| *a == b"--index")?;
    std::str::from_utf8(args.get(at + 1)?).ok()?.parse().ok()
}

/// The workers of `weir`, by index.
fn workers(weir: u32) -> BTreeMap<usize, u32> {
    children(weir)
        .into_iter()
        .filter_map(|pid| Some((worker_index(pid)?, pid)))
        .collect()
}

/// `/proc/<pid>/task/<tid>/status` of every thread, as field → value.
fn thread_status(pid: u32) -> Result<Vec<BTreeMap<String, String>>> {
    let mut all = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let text = std::fs::read_to_string(t?.path().join("status"))?;
        all.push(
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .collect(),
        );
    }
    Ok(all)
}

/// Gone, or a zombie nobody reaped yet.
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X"),
        Err(_) => true,
    }
}

fn sandboxed(pid: u32) -> bool {
    thread_status(pid).is_ok_and(|ts| ts.iter().all(|s| s["Seccomp"] == "2"))
}

/// Every thread of `pid`: not root, no capability in any set, no new privileges, filtered.
fn assert_unprivileged(pid: u32, want_uid: &str) -> Result<()> {
    let threads = thread_status(pid)?;
    assert!(!threads.is_empty());
    for s in &threads {
        let who = format!("worker {pid} thread {}", s["Pid"]);
        for id in ["Uid", "Gid"] {
            let ids: Vec<&str> = s[id].split_whitespace().collect();
            assert!(ids.iter().all(|v| *v != "0"), "{who}: {id} {ids:?}");
        }
        let uids: Vec<&str> = s["Uid"].split_whitespace().collect();
        assert!(
            uids.iter().all(|u| *u == want_uid),
            "{who}: Uid {uids:?}, want {want_uid}"
        );
        assert!(
            !s["Groups"].split_whitespace().any(|g| g == "0"),
            "{who}: Groups {}",
            s["Groups"]
        );
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(s[cap], "0000000000000000", "{who}: {cap}");
        }
        assert_eq!(s["NoNewPrivs"], "1", "{who}");
        assert_eq!(s["Seccomp"], "2", "{who}: seccomp filter mode");
    }
    Ok(())
}

/// `n` requests (fresh connections) to `url` in `ns`; returns how many got 200.
fn curl_ok(ns: &Ns, url: &str, n: usize) -> Result<usize> {
    let mut ok = 0;
    for _ in 0..n {
        let mut c = ns.command("curl");
        c.args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            url,
        ]);
        let out = weir_tests::lab::output(&mut c, Duration::from_secs(10))?;
        if out.stdout != b"200" {
            eprintln!("curl {url}: {out:?}");
        }
        ok += usize::from(out.stdout == b"200");
    }
    Ok(ok)
}

fn uid_of(user: &str) -> Option<String> {
    let out = Command::new("id").args(["-u", user]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

struct Setup {
    _lab: Lab,
    ns: Ns,
    dir: std::path::PathBuf,
    _cfg: TempFile,
    weir: Proc,
    log: std::path::PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `weir run` with two workers, an HTTP and an HTTPS listener (key file readable by root only)
/// and an access-log file; returned once both workers are sandboxed and both ports listen.
fn start(name: &str) -> Result<Setup> {
    start_holding(name, None)
}

/// As [`start`], weir started with SIGINT and SIGTERM blocked, as by a parent that `sigwait`s
/// for them (the mask survives exec).
fn start_blocked(name: &str) -> Result<Setup> {
    start_as(
        name,
        Opts {
            block: true,
            ..Opts::default()
        },
    )
}

fn start_holding(name: &str, held: Option<&std::path::Path>) -> Result<Setup> {
    start_as(
        name,
        Opts {
            held,
            ..Opts::default()
        },
    )
}

/// How [`start_as`] starts weir.
#[derive(Default)]
struct Opts<'a> {
    /// Held open on descriptor 9 without close-on-exec.
    held: Option<&'a std::path::Path>,
    /// SIGINT and SIGTERM blocked.
    block: bool,
    /// This binary instead of the built one.
    bin: Option<&'a std::path::Path>,
}

/// As [`start`], weir started holding `held` open on descriptor 9 without close-on-exec, as a
/// script's `flock FILE weir run` or a supervisor's stray descriptor would leave it, and with
/// SIGINT and SIGTERM blocked if `block`.
fn start_as(name: &str, opts: Opts) -> Result<Setup> {
    let Opts { held, block, bin } = opts;
    let lab = Lab::new()?;
    let ns = lab.add_ns(name)?;
    let dir = std::env::temp_dir().join(format!("weir-priv-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (cert, key) = self_signed_cert(&dir)?;
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let access = dir.join("access.log");
    let cfg = TempFile::new(
        "priv.toml",
        &format!(
            "[workers]\ncount = 2\nrestart_delay_ms = 100\n\n\
             [load_balancer]\naccess_logs.enabled = true\naccess_logs.path = \"{}\"\n\n\
             [[listener]]\naddress = \"127.0.0.1\"\nport = 8080\n\
             default_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"ok\" }}\n\n\
             [[listener]]\naddress = \"127.0.0.1\"\nport = 8443\nprotocol = \"HTTPS\"\n\
             certificate = [{{ certificate_file = \"{}\", private_key_file = \"{}\" }}]\n\
             default_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"ok\" }}\n",
            access.display(),
            cert.display(),
            key.display()
        ),
    );
    let log = dir.join("weir.log");
    let mut c = match bin {
        None => weir_command(&ns),
        Some(bin) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{}", ns.netns().context("netns")?))
                .arg("--")
                .arg(bin);
            c
        }
    };
    c.args(["run", "--config", cfg.path()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    if block {
        // SAFETY: sigprocmask between fork and exec is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGINT);
                libc::sigaddset(&mut set, libc::SIGTERM);
                if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    if let Some(held) = held {
        let held = std::fs::File::create(held)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&held);
        // SAFETY: dup2 between fork and exec is async-signal-safe; the new descriptor has no
        // close-on-exec flag, so weir inherits it. `held` outlives the spawn.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
                if libc::dup2(fd, 9) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let weir = ns.spawn_command(c);
        drop(held);
        return finish_start(lab, ns, dir, cfg, weir?, log);
    }
    let weir = ns.spawn_command(c)?;
    finish_start(lab, ns, dir, cfg, weir, log)
}

fn finish_start(
    lab: Lab,
    ns: Ns,
    dir: std::path::PathBuf,
    cfg: TempFile,
    mut weir: Proc,
    log: std::path::PathBuf,
) -> Result<Setup> {
    let pid = weir.pid();
    wait_until(Duration::from_secs(30), "two sandboxed workers", || {
        if !weir.is_running() {
            bail!("weir exited: {}", std::fs::read_to_string(&log)?);
        }
        let w = workers(pid);
        Ok(w.len() == 2
            && w.values().all(|&p| sandboxed(p))
            && ns.tcp_listening(8080)?
            && ns.tcp_listening(8443)?)
    })?;
    Ok(Setup {
        _lab: lab,
        ns,
        dir,
        _cfg: cfg,
        weir,
        log,
    })
}

/// Lines of the access log written by worker `index`.
fn served_by(dir: &std::path::Path, index: usize) -> usize {
    std::fs::read_to_string(dir.join("access.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!(" weir/{index} ")))
        .count()
}

#[test]
fn workers_are_unprivileged_and_a_forbidden_syscall_kills_only_that_worker() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let user_existed = uid_of("weir").is_some();
    let mut s = start("priv")?;
    let pid = s.weir.pid();
    // weir made (or found) its `weir` user; where it could not, the workers are `nobody`.
    let text = std::fs::read_to_string(&s.log)?;
    let want = if text.contains("fall back to `nobody`") {
        "nobody"
    } else {
        "weir"
    };
    let want_uid = uid_of(want).context("the workers' user exists")?;
    let before = workers(pid);
    for &w in before.values() {
        assert_unprivileged(w, &want_uid)?;
    }
    assert_eq!(curl_ok(&s.ns, "http://127.0.0.1:8080/", 10)?, 10);
    assert_eq!(curl_ok(&s.ns, "https://127.0.0.1:8443/", 10)?, 10);

    // mount(2) from inside worker 0: seccomp kills it with SIGSYS.
    let victim = before[&0];
    let out = weir_tests::lab::output(
        Command::new("gdb")
            .args(["-nx", "--readnever", "-batch", "-p", &victim.to_string()])
            .args([
                "-ex",
                "set language c",
                "-ex",
                "call (long)syscall(165,0,0,0,0,0)",
            ]),
        Duration::from_secs(60),
    )?;
    let gdb = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        gdb.contains("SIGSYS"),
        "gdb saw the worker die by SIGSYS:\n{gdb}"
    );
    wait_until(
        Duration::from_secs(10),
        "the supervisor to see the death",
        || {
            Ok(std::fs::read_to_string(&s.log)?
                .lines()
                .any(|l| l.contains("worker died") && l.contains("SIGSYS")))
        },
    )?;
    // Only that one: the other worker and the control plane live on, same pids.
    assert!(s.weir.is_running(), "the control plane died");
    assert!(!exited(before[&1]), "worker 1 died too");
    wait_until(
        Duration::from_secs(15),
        "worker 0 restarted, sandboxed",
        || {
            let now = workers(pid);
            Ok(now.get(&1) == Some(&before[&1])
                && now.get(&0).is_some_and(|&p| p != victim && sandboxed(p)))
        },
    )?;
    let now = workers(pid);
    assert_unprivileged(now[&0], &want_uid)?;
    // The restarted worker serves again (steering gives it its share of fresh connections).
    let served = served_by(&s.dir, 0);
    wait_until(
        Duration::from_secs(30),
        "the restarted worker to serve",
        || Ok(curl_ok(&s.ns, "http://127.0.0.1:8080/", 5)? == 5 && served_by(&s.dir, 0) > served),
    )?;
    assert_eq!(curl_ok(&s.ns, "https://127.0.0.1:8443/", 10)?, 10);
    assert!(interrupt(&mut s.weir)?, "weir stops cleanly");
    if !user_existed && want == "weir" {
        // Remove what this test made weir create.
        let _ = Command::new("userdel").arg("weir").status();
    }
    Ok(())
}

/// A worker that dropped root still dies with its control plane: the kernel forgets
/// `PR_SET_PDEATHSIG` when the credentials change, so the worker sets it again after the switch.
/// Whether process `pid` has `path` open.
fn holds(pid: u32, path: &std::path::Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == path))
        })
        .unwrap_or(false)
}

/// weir's workers get the descriptors the supervisor hands them and nothing that weir itself
/// inherited (before: a `flock FILE weir run` lock stayed held by sandboxed workers, and by
/// orphans of a killed weir). weir keeps its own copy: only the workers are checked.
#[test]
fn workers_inherit_no_descriptor_of_whoever_started_weir() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let held = std::env::temp_dir().join(format!("weir-priv-held-{}", std::process::id()));
    let s = match start_holding("fds", Some(&held)) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&held);
            return Err(e);
        }
    };
    assert!(
        holds(s.weir.pid(), &held),
        "weir was started holding the file"
    );
    for (i, pid) in workers(s.weir.pid()) {
        assert!(
            !holds(pid, &held),
            "worker {i} inherited weir's descriptor 9"
        );
    }
    drop(s);
    let _ = std::fs::remove_file(&held);
    Ok(())
}

/// Whether `pid` blocks SIGTERM (bit 15 of `SigBlk` in /proc/PID/status).
fn blocks_sigterm(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("SigBlk:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0)
}

/// Started by a parent that blocked SIGINT and SIGTERM (the mask survives exec), weir and its
/// workers still stop on SIGTERM. Before, the block passed to weir and every worker: SIGTERM
/// stayed pending, weir never stopped, and a killed weir left its workers running for good.
#[test]
fn weir_stops_when_started_with_signals_blocked() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let mut s = start_blocked("sigmask")?;
    let weir = s.weir.pid();
    let workers = workers(weir);
    for (i, pid) in &workers {
        assert!(!blocks_sigterm(*pid), "worker {i} blocks SIGTERM");
    }
    // SAFETY: kill(2) on the pid of the child we spawned.
    unsafe { libc::kill(weir as i32, libc::SIGTERM) };
    let stopped = s.weir.wait_timeout(Duration::from_secs(45))?;
    assert!(
        stopped.is_some(),
        "weir did not stop on SIGTERM: {}",
        std::fs::read_to_string(&s.log).unwrap_or_default()
    );
    wait_until(Duration::from_secs(5), "the workers to exit", || {
        Ok(workers.values().all(|&p| exited(p)))
    })?;
    Ok(())
}

/// The binary weir runs from is replaced or removed under it (a package upgrade, a rebuild): a
/// worker that dies is restarted from the running image, not from the file now at that path.
/// Before, the restart exec'd the path: ENOENT for as long as it was gone.
#[test]
fn a_worker_restarts_after_weirs_binary_is_removed() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("weir-priv-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let bin = dir.join("weir");
    std::fs::copy(weir_bin(), &bin)?;
    let started = start_as(
        "rmbin",
        Opts {
            bin: Some(&bin),
            ..Opts::default()
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
    let s = started?;
    let before = workers(s.weir.pid());
    let victim = before[&0];
    // SAFETY: kill(2) on a worker of the weir we started.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    wait_until(
        Duration::from_secs(15),
        "worker 0 restarted and sandboxed",
        || {
            let now = workers(s.weir.pid());
            Ok(now.get(&0).is_some_and(|&p| p != victim && sandboxed(p)))
        },
    )
    .with_context(|| std::fs::read_to_string(&s.log).unwrap_or_default())?;
    assert_eq!(curl_ok(&s.ns, "http://127.0.0.1:8080/", 20)?, 20);
    Ok(())
}

#[test]
fn workers_die_with_a_killed_control_plane() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let mut s = start("pdeath")?;
    let before = workers(s.weir.pid());
    s.weir.kill()?;
    wait_until(Duration::from_secs(5), "the workers to exit", || {
        Ok(before.values().all(|&p| exited(p)))
    })?;
    Ok(())
}
