//! The host sysctls weir changes (`net.ipv4.tcp_timestamps`, `tcp_syncookies`,
//! `tcp_migrate_req`), recorded before the first change so a weir killed without its cleanup
//! (SIGKILL, a crash, a power cut of the process) does not leave them changed for good.
//!
//! These sysctls belong to a network namespace, and tests (and hosts) run weir in several at
//! once, so the record is one file per namespace: `/run/weir/sysctl-<netns inode>`, holding the
//! original values and the namespace's cookie (`SO_NETNS_COOKIE`, never reused, unlike inode
//! numbers: a record left by a namespace that is gone is dropped, not applied to a new one).
//! A weir holds `sysctl-<inode>.lock` (`flock`) while it runs; the next `weir run` in the
//! namespace takes the lock, so the owner is dead, restores what the record says and removes
//! it. A normal exit restores every value and removes the record too.

use std::{
    collections::BTreeMap,
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::Context as _;
use tracing::{info, warn};

/// Where the records live.
pub const RECORD_DIR: &str = "/run/weir";
const PROC_SYS: &str = "/proc/sys";

/// A network namespace: its inode (names the file) and its cookie (tells reuse apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Netns {
    pub inode: u64,
    /// 0 where the kernel has no `SO_NETNS_COOKIE` (before 5.14): not checked.
    pub cookie: u64,
}

impl Netns {
    /// This process's network namespace.
    pub fn current() -> anyhow::Result<Netns> {
        use std::os::unix::fs::MetadataExt as _;
        let inode = std::fs::metadata("/proc/self/ns/net")
            .context("reading /proc/self/ns/net")?
            .ino();
        Ok(Netns {
            inode,
            cookie: netns_cookie().unwrap_or(0),
        })
    }
}

/// `SO_NETNS_COOKIE` of a socket in this namespace.
fn netns_cookie() -> std::io::Result<u64> {
    use std::os::fd::AsRawFd as _;
    const SO_NETNS_COOKIE: libc::c_int = 71;
    let s = std::net::UdpSocket::bind("127.0.0.1:0")
        .or_else(|_| std::net::UdpSocket::bind("[::1]:0"))?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cookie`, which is that large.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cookie)
}

/// One namespace's record, held (locked) by this process.
#[derive(Debug)]
pub struct Record {
    /// `None`: another weir holds this namespace's record; the originals are kept in memory only.
    path: Option<PathBuf>,
    sys: PathBuf,
    netns: Netns,
    /// Key (`net/ipv4/tcp_timestamps`) → the value before weir changed it.
    original: BTreeMap<String, String>,
    _lock: Option<nix::fcntl::Flock<File>>,
}

/// The text of a record: `cookie=N`, then `key=value` lines.
fn parse(text: &str) -> (Option<u64>, BTreeMap<String, String>) {
    let mut cookie = None;
    let mut original = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k == "cookie" {
            cookie = v.parse().ok();
        } else if valid_key(k) {
            original.insert(k.to_string(), v.to_string());
        }
    }
    (cookie, original)
}

/// A sysctl key under /proc/sys: no way out of it.
fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with('/')
        && k.split('/').all(|p| !p.is_empty() && p != "." && p != "..")
}

impl Record {
    /// Takes `netns`'s record in `dir` (sysctls under `sys`): a record whose owner is gone is
    /// restored and removed first; returns what was restored. Fails when a live weir holds it.
    pub fn take(
        dir: &Path,
        sys: &Path,
        netns: Netns,
    ) -> anyhow::Result<(Record, Vec<(String, String)>)> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("sysctl-{}", netns.inode));
        let lock_path = dir.join(format!("sysctl-{}.lock", netns.inode));
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| {
                anyhow::anyhow!(
                    "{} is held by another weir in this network namespace ({e})",
                    lock_path.display()
                )
            })?;
        let mut rec = Record {
            path: Some(path),
            sys: sys.to_path_buf(),
            netns,
            original: BTreeMap::new(),
            _lock: Some(lock),
        };
        let restored = rec.restore_stale()?;
        Ok((rec, restored))
    }

    /// Without a record (another weir holds it): originals in memory, as before records.
    pub fn unrecorded(sys: &Path, netns: Netns) -> Record {
        Record {
            path: None,
            sys: sys.to_path_buf(),
            netns,
            original: BTreeMap::new(),
            _lock: None,
        }
    }

    /// The record a dead weir left: applied when it is this namespace's, then removed.
    fn restore_stale(&mut self) -> anyhow::Result<Vec<(String, String)>> {
        let Some(path) = self.path.clone() else {
            return Ok(Vec::new());
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let (cookie, original) = parse(&text);
        let ours = self.netns.cookie == 0 || cookie == Some(self.netns.cookie);
        let mut restored = Vec::new();
        if ours {
            for (k, v) in original {
                self.write(&k, &v)
                    .with_context(|| format!("restoring {k} = {v}"))?;
                restored.push((k, v));
            }
        } else {
            warn!(path = %path.display(), "a sysctl record of a network namespace that is gone: dropped");
        }
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        Ok(restored)
    }

    fn read(&self, key: &str) -> std::io::Result<String> {
        Ok(std::fs::read_to_string(self.sys.join(key))?
            .trim()
            .to_string())
    }

    fn write(&self, key: &str, value: &str) -> std::io::Result<()> {
        std::fs::write(self.sys.join(key), value)
    }

    /// Writes the record (temporary file, fsync, rename: a crash leaves the old or the new
    /// one), or removes it when nothing is changed.
    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if self.original.is_empty() {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let mut text = format!(
            "# weir: host sysctls to restore (pid {})\ncookie={}\n",
            std::process::id(),
            self.netns.cookie
        );
        for (k, v) in &self.original {
            text.push_str(&format!("{k}={v}\n"));
        }
        let tmp = path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// Sets `key` to `value`, its original recorded first (once: later changes keep it).
    pub fn set(&mut self, key: &str, value: &str) -> std::io::Result<()> {
        if !valid_key(key) {
            return Err(std::io::Error::other(format!("not a sysctl key: {key}")));
        }
        if !self.original.contains_key(key) {
            let old = self.read(key)?;
            if old == value {
                return Ok(());
            }
            self.original.insert(key.to_string(), old);
            if let Err(e) = self.save() {
                self.original.remove(key);
                return Err(e);
            }
        }
        self.write(key, value)
    }

    /// Puts `key` back as it was and drops it from the record.
    pub fn restore(&mut self, key: &str) -> std::io::Result<()> {
        let Some(v) = self.original.get(key).cloned() else {
            return Ok(());
        };
        self.write(key, &v)?;
        self.original.remove(key);
        self.save()
    }

    /// Whether `key` is changed and recorded.
    pub fn changed(&self, key: &str) -> bool {
        self.original.contains_key(key)
    }
}

/// This process's record of its namespace; `None` until [`recover`] (or the first change).
/// Where no record can be taken (another weir holds it, `/run` is not writable), the originals
/// are kept in memory only, with a warning.
static HOST: Mutex<Option<Record>> = Mutex::new(None);

fn host<T>(f: impl FnOnce(&mut Record) -> T) -> anyhow::Result<T> {
    let mut h = HOST.lock().unwrap_or_else(|p| p.into_inner());
    if h.is_none() {
        let sys = Path::new(PROC_SYS);
        let taken = Netns::current().and_then(|ns| Record::take(Path::new(RECORD_DIR), sys, ns));
        *h = Some(match taken {
            Ok((rec, restored)) => {
                log_restored(&restored);
                rec
            }
            // Another weir in this namespace, or no root to write /run: as before records.
            Err(e) => {
                warn!(
                    "{e:#}: this weir's host sysctl changes are not recorded (restored at its exit only)"
                );
                Record::unrecorded(
                    sys,
                    Netns {
                        inode: 0,
                        cookie: 0,
                    },
                )
            }
        });
    }
    Ok(f(h.as_mut().expect("set above")))
}

fn log_restored(restored: &[(String, String)]) {
    for (k, v) in restored {
        info!(sysctl = %k.replace('/', "."), value = %v, "restored a host sysctl a previous weir left changed");
    }
}

/// At start: takes this namespace's record, restoring what a weir that died without its
/// cleanup left changed.
pub fn recover() -> anyhow::Result<()> {
    host(|_| ())
}

/// Sets a sysctl of this namespace (`net/ipv4/…`), its original recorded first.
pub fn set(key: &str, value: &str) -> anyhow::Result<()> {
    host(|r| r.set(key, value))?.with_context(|| format!("setting {key} = {value}"))
}

/// Puts a sysctl weir changed back, and drops it from the record.
pub fn restore(key: &str) -> anyhow::Result<()> {
    host(|r| r.restore(key))?.with_context(|| format!("restoring {key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tmp(PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tmp(name: &str) -> (Tmp, PathBuf, PathBuf) {
        let root = std::env::temp_dir().join(format!("weir-sysctl-{name}-{}", std::process::id()));
        let (dir, sys) = (root.join("run"), root.join("sys"));
        std::fs::create_dir_all(sys.join("net/ipv4")).unwrap();
        std::fs::write(sys.join("net/ipv4/tcp_timestamps"), "1\n").unwrap();
        std::fs::write(sys.join("net/ipv4/tcp_syncookies"), "0\n").unwrap();
        (Tmp(root), dir, sys)
    }

    const NS: Netns = Netns {
        inode: 4026531840,
        cookie: 7,
    };
    const TS: &str = "net/ipv4/tcp_timestamps";
    const SC: &str = "net/ipv4/tcp_syncookies";

    fn get(sys: &Path, k: &str) -> String {
        std::fs::read_to_string(sys.join(k)).unwrap().trim().into()
    }

    #[test]
    fn a_dead_owners_record_is_restored_by_the_next_start() {
        let (_t, dir, sys) = tmp("crash");
        let (mut a, restored) = Record::take(&dir, &sys, NS).unwrap();
        assert!(restored.is_empty());
        a.set(TS, "2").unwrap();
        a.set(SC, "1").unwrap();
        a.set(SC, "2").unwrap();
        assert_eq!((get(&sys, TS), get(&sys, SC)), ("2".into(), "2".into()));
        // A second weir in the namespace while the first lives: refused.
        assert!(Record::take(&dir, &sys, NS).is_err());
        // The first dies without its cleanup: its lock goes with its descriptors, nothing is
        // restored (a `Record` restores only when told to).
        let path = a.path.clone().unwrap();
        drop(a);
        assert!(path.exists());
        let (b, restored) = Record::take(&dir, &sys, NS).unwrap();
        assert_eq!(restored.len(), 2, "{restored:?}");
        assert_eq!((get(&sys, TS), get(&sys, SC)), ("1".into(), "0".into()));
        assert!(!path.exists(), "the record is removed once restored");
        drop(b);
    }

    #[test]
    fn a_normal_exit_restores_and_removes_the_record() {
        let (_t, dir, sys) = tmp("exit");
        let (mut a, _) = Record::take(&dir, &sys, NS).unwrap();
        a.set(TS, "1").unwrap();
        assert!(!a.changed(TS), "an unchanged value is not recorded");
        a.set(TS, "2").unwrap();
        a.restore(TS).unwrap();
        assert_eq!(get(&sys, TS), "1");
        assert!(!a.path.clone().unwrap().exists());
        assert!(a.set("../../etc/passwd", "x").is_err());
    }

    #[test]
    fn a_record_of_a_namespace_that_is_gone_is_not_applied() {
        let (_t, dir, sys) = tmp("reuse");
        let (mut a, _) = Record::take(&dir, &sys, NS).unwrap();
        a.set(TS, "2").unwrap();
        drop(a);
        // Same inode, another cookie: a new namespace.
        let other = Netns { cookie: 8, ..NS };
        let (_b, restored) = Record::take(&dir, &sys, other).unwrap();
        assert!(restored.is_empty());
        assert_eq!(get(&sys, TS), "2");
    }

    #[test]
    fn records_parse_back() {
        let (c, o) = parse("# x\ncookie=9\nnet/ipv4/tcp_timestamps=1\n../x=1\nbad\n");
        assert_eq!(c, Some(9));
        assert_eq!(o.len(), 1);
    }
}
