//! The health state file: the [`HealthSnapshot`] as JSON under `/run/weir/`, one per daemon,
//! per interface or per namespace as its admin socket's default (`crate::admin::path`;
//! `[admin] socket` does not move it; [`path`] holds the rule):
//!
//! - `weir run --iface IF`: `/run/weir/IF:<netns inode>.health.json`, beside its lock
//!   `IF:<netns inode>.lock` and socket `IF:<netns inode>.sock` (several interface daemons may
//!   share a network namespace: eth0's and eth1's; `eth0` of two namespaces is two interfaces,
//!   `crate::iface_id`);
//! - an L7-only daemon (one per network namespace): `/run/weir/health-<netns inode>.json`, as
//!   the sysctl record, in the host's namespace too.
//!
//! Replaced atomically (written beside, then renamed) so a reader never sees half of it, and
//! removed at a clean exit, only if it still names this daemon as its writer ([`remove_own`]);
//! a daemon that finds its file kept by another live daemon (two L7-only daemons in one
//! namespace, their admin sockets configured apart) writes none ([`claim`], which gives a
//! stopping predecessor a moment to remove its own).
//! `weir status` and the start-up log name the file. The admin API serves the same view from
//! the live daemon (`weir targets health`); the file is for readers without the socket.
//!
//! The file names its writer ([`Writer`]: its namespace's cookie, its pid, pid namespace and
//! start time), so a reader ([`read`]) can refuse a file no daemon keeps up to date:
//! - a namespace's inode is reused once it is gone, and a weir killed there (SIGKILL, a crash)
//!   left its file, which a new namespace with that inode would find: its cookie
//!   (`SO_NETNS_COOKIE`, never reused within a boot) differs from the new namespace's;
//! - a weir killed in a live namespace left its file until the next `weir run` there replaces
//!   it (at its checker's first flush): its pid is gone or is another process (its start time
//!   differs). Judged only from the writer's pid namespace, where its pid means it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::table::HealthSnapshot;
use crate::iface_id::IfaceId;

/// The process that writes (or reads) the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    /// Its network namespace's cookie (0 where the kernel has none: not checked).
    pub netns_cookie: u64,
    pub pid: u32,
    /// The inode of its pid namespace: where `pid` names it.
    pub pid_ns: u64,
    /// When it started, in clock ticks after boot (`/proc/<pid>/stat` field 22): tells a reused
    /// pid apart.
    pub start_time: u64,
}

impl Writer {
    /// A writer that could not tell who it is (no `/proc`): a reader does not judge it.
    const UNKNOWN: Writer = Writer {
        netns_cookie: 0,
        pid: 0,
        pid_ns: 0,
        start_time: 0,
    };

    /// This process.
    pub fn current() -> anyhow::Result<Writer> {
        use std::os::unix::fs::MetadataExt as _;
        let pid = std::process::id();
        Ok(Writer {
            netns_cookie: crate::sysctl::Netns::current()?.cookie,
            pid,
            pid_ns: std::fs::metadata("/proc/self/ns/pid")
                .context("reading /proc/self/ns/pid")?
                .ino(),
            start_time: start_time(Path::new("/proc"), pid).context("reading /proc/self/stat")?,
        })
    }
}

/// The start time of process `pid` as `proc` (the proc file system's root) shows it; `None`
/// when there is no such process.
fn start_time(proc: &Path, pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    crate::proc_stat::number(&stat, 22)
}

/// The file as written: its writer, then the view's fields (`S`: the snapshot, borrowed when
/// written).
#[derive(Serialize, Deserialize)]
struct Contents<S> {
    writer: Writer,
    #[serde(flatten)]
    snapshot: S,
}

/// Why a file that is there is not shown.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Stale {
    #[error(
        "{path} is left from a network namespace that is gone (its cookie {file}, this namespace's {here}): \
         no daemon keeps it; `weir run` with target groups in this namespace replaces it"
    )]
    NetnsGone { path: String, file: u64, here: u64 },
    #[error(
        "{path} is left by a weir run (pid {pid}) that is gone (killed without its cleanup): \
         its states are old; `weir run` with target groups in this namespace replaces it"
    )]
    WriterGone { path: String, pid: u32 },
}

/// The daemon a state file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    /// `weir run --iface IF`: one daemon per interface of a network namespace, named by its
    /// [`crate::iface_id::IfaceId::stem`] (its lock `/run/weir/<stem>.lock`).
    Iface(&'a str),
    /// An L7-only daemon: one per network namespace, by the namespace's inode.
    L7Only { netns_inode: u64 },
}

/// `owner`'s state file in `dir`. An L7-only daemon's name (`health-<digits>.json`) never ends
/// in `.health.json`, so it is never an interface daemon's; two interfaces have two names.
pub fn path_in(dir: &Path, owner: Owner) -> PathBuf {
    match owner {
        Owner::Iface(iface) => dir.join(format!("{iface}.health.json")),
        Owner::L7Only { netns_inode } => dir.join(format!("health-{netns_inode}.json")),
    }
}

/// The state file of this process's daemon: `weir run --iface IF`'s when `iface` is given,
/// else this network namespace's L7-only daemon's.
pub fn path(iface: Option<&str>) -> anyhow::Result<PathBuf> {
    let dir = Path::new(crate::run_dir::DIR);
    let owner = match iface {
        Some(i) if i.is_empty() || i.contains('/') || i == "." || i == ".." => {
            anyhow::bail!("`{i}` is not an interface name")
        }
        Some(i) => return Ok(path_in(dir, Owner::Iface(&IfaceId::here(i)?.stem()))),
        None => Owner::L7Only {
            netns_inode: crate::sysctl::Netns::current()?.inode,
        },
    };
    Ok(path_in(dir, owner))
}

/// This process as a writer (once: its identity does not change).
fn me() -> &'static Writer {
    static ME: std::sync::OnceLock<Writer> = std::sync::OnceLock::new();
    ME.get_or_init(|| Writer::current().unwrap_or(Writer::UNKNOWN))
}

/// Writes `snapshot` over what `path` held, as this process's.
pub fn write(path: &Path, snapshot: &HealthSnapshot) -> anyhow::Result<()> {
    write_as(path, me(), snapshot)
}

/// [`write`] as `writer`'s.
fn write_as(path: &Path, writer: &Writer, snapshot: &HealthSnapshot) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(&Contents {
        writer: *writer,
        snapshot,
    })?;
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// The view in `path`, read by this process: an error ([`Stale`]) for a file of another
/// namespace or of a daemon that is gone.
pub fn read(path: &Path) -> anyhow::Result<HealthSnapshot> {
    read_as(path, &Writer::current()?, Path::new("/proc"))
}

/// [`read`] by `reader`, with `proc` as the proc file system.
fn read_as(path: &Path, reader: &Writer, proc: &Path) -> anyhow::Result<HealthSnapshot> {
    let text = std::fs::read(path).with_context(|| {
        format!(
            "reading {} (is `weir run` with target groups running in this network namespace?)",
            path.display()
        )
    })?;
    let c: Contents<HealthSnapshot> =
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    match stale(path, &c.writer, reader, proc) {
        Some(e) => Err(e.into()),
        None => Ok(c.snapshot),
    }
}

/// Why `reader` must not take a file `w` wrote as up to date; `None`: it may.
fn stale(path: &Path, w: &Writer, reader: &Writer, proc: &Path) -> Option<Stale> {
    let shown = || path.display().to_string();
    if w.netns_cookie != 0 && reader.netns_cookie != 0 && w.netns_cookie != reader.netns_cookie {
        return Some(Stale::NetnsGone {
            path: shown(),
            file: w.netns_cookie,
            here: reader.netns_cookie,
        });
    }
    if w.pid_ns == reader.pid_ns && start_time(proc, w.pid) != Some(w.start_time) {
        return Some(Stale::WriterGone {
            path: shown(),
            pid: w.pid,
        });
    }
    None
}

/// The writer `path` names, if it holds a file of ours (the rest is not parsed).
fn writer_of(path: &Path) -> Option<Writer> {
    #[derive(Deserialize)]
    struct Head {
        writer: Writer,
    }
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice::<Head>(&text).ok().map(|h| h.writer)
}

/// The other daemon that keeps `path` up to date, if one does: the file names a writer that is
/// not this process and that [`read`] would not refuse (alive, in this namespace). A daemon
/// writes no file another keeps.
fn kept_by_another_as(path: &Path, me: &Writer, proc: &Path) -> Option<Writer> {
    let w = writer_of(path)?;
    (w != *me && stale(path, &w, me, proc).is_none()).then_some(w)
}

/// How long [`claim`] waits for a predecessor's file to go.
pub const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether this daemon may write `path`: `Err` with the other daemon that keeps it, still, after
/// waiting up to `within` for it to go. A predecessor that is stopping (its admin socket closed
/// at once, so a successor may start while its workers drain) removes its file within
/// milliseconds of its stop.
///
/// The wait blocks the calling thread ([`off_runtime`]): its caller, the daemon's start
/// (`health::start` ← `l7::start` ← `run::run`), is synchronous, and waits for the answer.
pub fn claim(path: &Path, within: std::time::Duration) -> Result<(), Writer> {
    off_runtime(|| claim_as(path, me(), Path::new("/proc"), within))
}

/// Runs `f`, which blocks, where blocking is fine: on a multi-thread tokio runtime (`weir run`'s)
/// inside [`tokio::task::block_in_place`], so a worker thread calling it hands its other tasks
/// to another thread first (the thread of `block_on`, where `run::run` is, runs no other task);
/// outside a runtime, as is. Never called on a current-thread runtime, where it would stall
/// every task (none calls it there: the workers' runtimes run no health checks).
fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn claim_as(
    path: &Path,
    me: &Writer,
    proc: &Path,
    within: std::time::Duration,
) -> Result<(), Writer> {
    let t0 = std::time::Instant::now();
    loop {
        match kept_by_another_as(path, me, proc) {
            None => return Ok(()),
            Some(w) if t0.elapsed() >= within => return Err(w),
            Some(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// Removes `path` if it names this process as its writer: a daemon never removes another's
/// file. `true` if removed.
pub fn remove_own(path: &Path) -> bool {
    remove_as(path, me())
}

fn remove_as(path: &Path, me: &Writer) -> bool {
    writer_of(path).is_some_and(|w| w == *me) && std::fs::remove_file(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary directory, removed on drop.
    struct Tmp(PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn tmp(tag: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("weir-health-file-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }

    fn snapshot() -> HealthSnapshot {
        let cfg: lb_l7::L7Config = toml::from_str(
            "[[listener]]\nport = 80\ndefault_action = { type = \"forward\", target_group = \"g\" }\n\
             [[target_group]]\nname = \"g\"\ntarget = [{ id = \"10.0.0.1\" }]",
        )
        .unwrap();
        super::super::HealthTable::new(&cfg).unwrap().snapshot()
    }

    /// A file `name` in a fresh directory `tag` (its guard), this process as a writer, and a
    /// live writer other than this process in this namespace (`me`'s but for pid and start
    /// time): our parent (cargo's test harness or a shell).
    fn me_and_a_live_other(tag: &str, name: &str) -> (Tmp, PathBuf, Writer, Writer) {
        let d = tmp(tag);
        let p = d.0.join(name);
        let me = Writer::current().unwrap();
        let ppid = std::os::unix::process::parent_id();
        let parent = Writer {
            pid: ppid,
            start_time: start_time(Path::new("/proc"), ppid).unwrap(),
            ..me
        };
        (d, p, me, parent)
    }

    #[test]
    fn each_daemon_has_its_own_name() {
        let dir = Path::new("/run/weir");
        assert_eq!(
            path_in(dir, Owner::Iface("eth0")),
            Path::new("/run/weir/eth0.health.json")
        );
        assert_ne!(
            path_in(dir, Owner::Iface("eth0")),
            path_in(dir, Owner::Iface("eth1")),
            "two interface daemons in one namespace"
        );
        // L7 only, in the host's namespace and in another: by the namespace's inode (the host's
        // is no exception, unlike its admin socket's `admin.sock`).
        assert_eq!(
            path_in(
                dir,
                Owner::L7Only {
                    netns_inode: 4026531840
                }
            ),
            Path::new("/run/weir/health-4026531840.json")
        );
        assert_eq!(
            path_in(
                dir,
                Owner::L7Only {
                    netns_inode: 4026532000
                }
            ),
            Path::new("/run/weir/health-4026532000.json")
        );
        // An interface named like a namespace's inode, or like an L7-only daemon's file, still
        // has a name of its own.
        for odd in ["4026531840", "health-4026531840"] {
            assert_ne!(
                path_in(dir, Owner::Iface(odd)),
                path_in(
                    dir,
                    Owner::L7Only {
                        netns_inode: 4026531840
                    }
                )
            );
        }
    }

    /// [`path`] in this process: `--iface`'s name and this namespace, or this namespace's
    /// (whichever it is).
    #[test]
    fn the_daemon_names_its_file_by_iface_or_namespace() {
        use std::os::unix::fs::MetadataExt as _;
        let ino = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        assert_eq!(
            path(Some("eth1")).unwrap(),
            PathBuf::from(format!("/run/weir/eth1:{ino}.health.json"))
        );
        assert_eq!(
            path(None).unwrap(),
            PathBuf::from(format!("/run/weir/health-{ino}.json"))
        );
        for bad in ["", "..", "a/b"] {
            assert!(path(Some(bad)).is_err(), "{bad:?}");
        }
    }

    /// A daemon removes its own file, never another's (nor a file it cannot read).
    #[test]
    fn only_the_writer_removes_its_file() {
        let d = tmp("remove");
        let p = d.0.join("eth0.health.json");
        let me = Writer::current().unwrap();
        let other = Writer {
            pid: me.pid + 1,
            ..me
        };
        write_as(&p, &other, &snapshot()).unwrap();
        assert!(!remove_as(&p, &me));
        assert!(p.exists(), "another daemon's file stays");
        write_as(&p, &me, &snapshot()).unwrap();
        assert!(remove_as(&p, &me));
        assert!(!p.exists());
        assert!(!remove_as(&p, &me), "gone already");
        std::fs::write(&p, "not ours").unwrap();
        assert!(!remove_as(&p, &me));
        assert!(p.exists());
    }

    /// A file another live daemon writes is kept by it; this process's own, a dead daemon's or
    /// another namespace's is not.
    #[test]
    fn a_file_another_live_daemon_writes_is_kept_by_it() {
        let (_d, p, me, parent) = me_and_a_live_other("kept", "health-4026532000.json");
        let proc = Path::new("/proc");
        assert_eq!(kept_by_another_as(&p, &me, proc), None, "no file");
        write_as(&p, &parent, &snapshot()).unwrap();
        assert_eq!(kept_by_another_as(&p, &me, proc), Some(parent));
        let t0 = std::time::Instant::now();
        let short = std::time::Duration::from_millis(60);
        assert_eq!(claim_as(&p, &me, proc, short), Err(parent));
        assert!(t0.elapsed() >= short, "it waited");
        // A predecessor that removes its file while the claim waits: claimed.
        let gone = {
            let p = p.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(40));
                std::fs::remove_file(p).unwrap();
            })
        };
        assert_eq!(
            claim_as(&p, &me, proc, std::time::Duration::from_secs(5)),
            Ok(())
        );
        gone.join().unwrap();
        write_as(&p, &parent, &snapshot()).unwrap();
        write_as(&p, &me, &snapshot()).unwrap();
        assert_eq!(kept_by_another_as(&p, &me, proc), None, "our own");
        let dead = Writer {
            start_time: parent.start_time + 1,
            ..parent
        };
        write_as(&p, &dead, &snapshot()).unwrap();
        assert_eq!(
            kept_by_another_as(&p, &me, proc),
            None,
            "its writer is gone"
        );
        let gone_ns = Writer {
            netns_cookie: me.netns_cookie + 1,
            ..parent
        };
        write_as(&p, &gone_ns, &snapshot()).unwrap();
        if me.netns_cookie != 0 {
            assert_eq!(
                kept_by_another_as(&p, &me, proc),
                None,
                "another namespace's"
            );
        }
    }

    /// The claim's wait (a file another live daemon keeps) does not stall the runtime's other
    /// tasks: with one worker thread, a task spawned beside a waiting claim runs at once, not
    /// after the wait (with `std::thread::sleep` on the worker thread, it waited it all).
    #[test]
    fn a_claims_wait_leaves_the_other_tasks_running() {
        let (_d, p, me, parent) = me_and_a_live_other("offrt", "health-4026532001.json");
        write_as(&p, &parent, &snapshot()).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let wait = std::time::Duration::from_millis(400);
        let (claimed, other) = rt.block_on(async move {
            let claim =
                tokio::spawn(
                    async move { off_runtime(|| claim_as(&p, &me, Path::new("/proc"), wait)) },
                );
            // The claim is waiting on the one worker thread.
            std::thread::sleep(std::time::Duration::from_millis(50));
            let t0 = std::time::Instant::now();
            let other = tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                t0.elapsed()
            });
            (claim.await.unwrap(), other.await.unwrap())
        });
        assert_eq!(claimed, Err(parent), "kept by the live parent");
        assert!(
            other < std::time::Duration::from_millis(200),
            "the other task ran after {other:?} (the claim waits {wait:?})"
        );
    }

    #[test]
    fn written_then_read_back() {
        let d = tmp("rw");
        let p = d.0.join("health.json");
        let snap = snapshot();
        write(&p, &snap).unwrap();
        assert_eq!(read(&p).unwrap(), snap);
        assert!(!p.with_extension("json.tmp").exists());
        // The view's fields stay where a reader of the plain JSON finds them.
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["target_groups"][0]["name"], "g");
        assert_eq!(v["writer"]["pid"], std::process::id());
    }

    /// A file whose namespace cookie is not this namespace's: left by a weir killed in a
    /// namespace that is gone, found by the new one that reuses its inode.
    #[test]
    fn a_file_of_a_namespace_that_is_gone_is_refused() {
        let d = tmp("netns");
        let p = d.0.join("health-4026532000.json");
        let me = Writer::current().unwrap();
        let there = Writer {
            netns_cookie: me.netns_cookie + 1,
            ..me
        };
        write_as(&p, &there, &snapshot()).unwrap();
        let e = read(&p).unwrap_err();
        assert_eq!(
            e.downcast_ref::<Stale>(),
            Some(&Stale::NetnsGone {
                path: p.display().to_string(),
                file: me.netns_cookie + 1,
                here: me.netns_cookie,
            }),
            "{e:#}"
        );
        assert!(
            format!("{e:#}").contains("left from a network namespace that is gone"),
            "{e:#}"
        );
        // A kernel without namespace cookies (0) is not judged by them.
        assert!(
            read_as(
                &p,
                &Writer {
                    netns_cookie: 0,
                    ..me
                },
                Path::new("/proc")
            )
            .is_ok()
        );
    }

    /// A file of a daemon that is gone (killed in this namespace): its pid names no process,
    /// or another one (another start time). From another pid namespace the pid is not judged.
    #[test]
    fn a_file_of_a_daemon_that_is_gone_is_refused() {
        let d = tmp("pid");
        let p = d.0.join("health.json");
        let me = Writer::current().unwrap();
        let reused = Writer {
            start_time: me.start_time + 1,
            ..me
        };
        write_as(&p, &reused, &snapshot()).unwrap();
        let e = read(&p).unwrap_err();
        assert_eq!(
            e.downcast_ref::<Stale>(),
            Some(&Stale::WriterGone {
                path: p.display().to_string(),
                pid: me.pid,
            }),
            "{e:#}"
        );
        let proc = d.0.join("proc");
        std::fs::create_dir_all(&proc).unwrap();
        write_as(&p, &me, &snapshot()).unwrap();
        assert!(read_as(&p, &me, &proc).is_err(), "no such process: refused");
        let elsewhere = Writer {
            pid_ns: me.pid_ns + 1,
            ..me
        };
        assert!(read_as(&p, &elsewhere, &proc).is_ok());
    }
}
