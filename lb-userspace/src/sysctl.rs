//! The host sysctls weir changes (`net.ipv4.tcp_timestamps`, `tcp_syncookies`,
//! `tcp_migrate_req`), held jointly by every weir daemon of a network namespace and recorded
//! before the first change, so a weir killed without its cleanup (SIGKILL, a crash) does not
//! leave them changed for good, and a weir that exits does not take back a value another still
//! needs.
//!
//! Several daemons may share a namespace (`weir run --iface A` and `--iface B`, one per NIC, or
//! an L7-only daemon beside them). Per namespace, in [`crate::run_dir::DIR`]:
//!
//! - `sysctl-<netns inode>`, the **record**: the namespace's cookie (`SO_NETNS_COOKIE`, never
//!   reused, unlike inode numbers: a record left by a namespace that is gone is dropped, not
//!   applied to a new one) and, per sysctl a weir changed, its value before the first change.
//!   Shared: the first daemon to change a sysctl records its original, the last one to need it
//!   puts it back.
//! - `sysctl-<netns inode>.<pid>.hold`, one **holder file** per daemon that needs a sysctl,
//!   naming what it needs (`key=value`), `flock`ed by that daemon while it lives (the kernel
//!   drops the lock when the process dies, however it dies). A holder file nobody holds locked
//!   is a dead daemon's: it is removed and its needs forgotten.
//! - `sysctl-<netns inode>.mutex`, taken (`flock`, exclusive) for every read-modify-write of
//!   the above, a few file operations long. A separate file because Linux's `flock` cannot turn
//!   a shared lock into an exclusive one atomically (it drops the old lock first).
//!
//! Under the mutex, every operation ([`recover`] at start, [`set`], [`restore`]) first puts
//! back each recorded sysctl no live daemon needs any more (its needers exited or were
//! killed), so the next `weir run` after all died restores the originals, and a SIGKILL of one
//! daemon leaves the others' needs in force. A sysctl several daemons need gets the highest
//! value any of them asks (for the three weir sets, a higher value does what a lower one does:
//! `tcp_syncookies` 2 ⊇ 1); a daemon that stops needing one ([`restore`]) sets it back to
//! what the others still ask, or to the original when none does — unless someone else changed
//! it after weir wrote it (the record keeps the value weir last wrote, in `#written` lines a
//! weir before them reads as comments): then their value stands and the original is forgotten.
//!
//! Where `/run/weir` cannot be used (not root) the originals are kept in memory and restored at
//! this process's exit only, as if it were alone in the namespace.

use std::{
    collections::BTreeMap,
    fs::File,
    io::Write as _,
    os::unix::fs::{FileExt as _, MetadataExt as _},
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use nix::{
    errno::Errno,
    fcntl::{Flock, FlockArg},
};
use tracing::{info, warn};

const PROC_SYS: &str = "/proc/sys";
/// How long an operation waits for the namespace's mutex, which others hold for a few file
/// operations: past it, something is wrong (a stopped process holding it), and the operation
/// fails rather than hang the daemon.
const MUTEX_WAIT: Duration = Duration::from_secs(3);
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

/// The text of a record or a holder file: `cookie=N` (a record's), then `key=value` lines.
fn parse(text: &str) -> (Option<u64>, BTreeMap<String, String>) {
    let mut cookie = None;
    let mut values = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k == "cookie" {
            cookie = v.parse().ok();
        } else if valid_key(k) {
            values.insert(k.to_string(), v.to_string());
        }
    }
    (cookie, values)
}

/// The record's lines naming the value a weir last wrote: comments to a weir before them.
const WRITTEN: &str = "#written ";

/// The `#written` lines of a record.
fn parse_written(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(WRITTEN)?.split_once('='))
        .filter(|(k, _)| valid_key(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A sysctl key under /proc/sys: no way out of it.
fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with('/')
        && k.split('/').all(|p| !p.is_empty() && p != "." && p != "..")
}

/// The value that meets every need in `asked`: the highest, numerically (weir's sysctls are
/// levels where more does what less does); where one is not a number, the first asked.
fn joint<'a>(asked: impl IntoIterator<Item = &'a String>) -> Option<&'a String> {
    let asked: Vec<&String> = asked.into_iter().collect();
    let numbers: Option<Vec<i64>> = asked.iter().map(|v| v.parse().ok()).collect();
    match numbers {
        Some(n) => n
            .iter()
            .zip(&asked)
            .max_by_key(|(n, _)| **n)
            .map(|(_, v)| *v),
        None => asked.first().copied(),
    }
}

/// One namespace's files in a directory.
#[derive(Debug, Clone)]
struct Files {
    dir: PathBuf,
    inode: u64,
}

impl Files {
    fn record(&self) -> PathBuf {
        self.dir.join(format!("sysctl-{}", self.inode))
    }
    fn mutex(&self) -> PathBuf {
        self.dir.join(format!("sysctl-{}.mutex", self.inode))
    }
    fn holder(&self, id: &str) -> PathBuf {
        self.dir.join(format!("sysctl-{}.{id}.hold", self.inode))
    }
    /// The holder files there: (id, path).
    fn holders(&self) -> std::io::Result<Vec<(String, PathBuf)>> {
        let prefix = format!("sysctl-{}.", self.inode);
        let mut v = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".hold"))
                .filter(|id| !id.is_empty())
            {
                v.push((id.to_string(), e.path()));
            }
        }
        Ok(v)
    }

    /// Takes the namespace's mutex, waiting up to [`MUTEX_WAIT`]. The file is removed when the
    /// namespace's state is empty (by whoever holds it then), so a lock taken on a file that
    /// is no longer the one at the path is let go and taken again on the new one.
    fn lock(&self) -> std::io::Result<Flock<File>> {
        let path = self.mutex();
        let t0 = Instant::now();
        loop {
            let f = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(l) => {
                    let same = match (l.metadata(), std::fs::metadata(&path)) {
                        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
                        _ => false,
                    };
                    if same {
                        return Ok(l);
                    }
                }
                Err((_, Errno::EWOULDBLOCK)) => {}
                Err((_, e)) => return Err(e.into()),
            }
            if t0.elapsed() >= MUTEX_WAIT {
                return Err(std::io::Error::other(format!(
                    "{} is held for more than {MUTEX_WAIT:?}",
                    path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Where the namespace's state is kept.
#[derive(Debug)]
enum Store {
    /// Shared with the namespace's other daemons, in files.
    Files {
        files: Files,
        /// Names this daemon's holder file (its pid; another suffix when a process of another
        /// pid namespace with that pid holds one).
        id: String,
        /// This daemon's holder file, locked; `None` while it needs nothing.
        hold: Option<Flock<File>>,
    },
    /// In this process only: the originals, and the values weir wrote.
    Memory {
        original: BTreeMap<String, String>,
        written: BTreeMap<String, String>,
    },
}

/// The namespace's state as an operation finds it, under the mutex.
struct Shared {
    /// Key → the value before any weir changed it.
    original: BTreeMap<String, String>,
    /// Key → the value a weir last wrote (`#written` lines of the record: comments to a weir
    /// that does not know them). A value found otherwise when it is to be put back was
    /// changed by someone else while weir ran: it is left as they set it.
    written: BTreeMap<String, String>,
    /// What the other live daemons need.
    others: Vec<BTreeMap<String, String>>,
    /// `original` differs from the record as stored.
    dirty: bool,
}

/// This daemon's part in its namespace's sysctls.
#[derive(Debug)]
pub struct Record {
    sys: PathBuf,
    netns: Netns,
    /// Key (`net/ipv4/tcp_timestamps`) → the value this daemon needs.
    wants: BTreeMap<String, String>,
    store: Store,
}

impl Record {
    /// Joins `netns`'s daemons in `dir` (sysctls under `sys`) as `id` (its pid), putting back
    /// first what no live daemon needs any more (left by daemons that died without their
    /// cleanup); returns what was put back.
    pub fn take(
        dir: &Path,
        sys: &Path,
        netns: Netns,
        id: &str,
    ) -> anyhow::Result<(Record, Vec<(String, String)>)> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let files = Files {
            dir: dir.to_path_buf(),
            inode: netns.inode,
        };
        let mut rec = Record {
            sys: sys.to_path_buf(),
            netns,
            wants: BTreeMap::new(),
            store: Store::Files {
                files: files.clone(),
                id: id.to_string(),
                hold: None,
            },
        };
        let restored = rec
            .transact(|_, _| Ok(()))
            .with_context(|| format!("taking {}", files.record().display()))?
            .1;
        Ok((rec, restored))
    }

    /// Alone, in memory (no record could be taken): restored at this process's exit only.
    pub fn unrecorded(sys: &Path, netns: Netns) -> Record {
        Record {
            sys: sys.to_path_buf(),
            netns,
            wants: BTreeMap::new(),
            store: Store::Memory {
                original: BTreeMap::new(),
                written: BTreeMap::new(),
            },
        }
    }

    fn read(&self, key: &str) -> std::io::Result<String> {
        Ok(std::fs::read_to_string(self.sys.join(key))?
            .trim()
            .to_string())
    }

    fn write(&self, key: &str, value: &str) -> std::io::Result<()> {
        std::fs::write(self.sys.join(key), value)
    }

    /// Runs `op` on the namespace's state under its mutex: the state loaded (dead daemons'
    /// holder files removed), what nobody needs put back, `op`, then the record and this
    /// daemon's holder file stored. Returns `op`'s result and what was put back for others.
    /// When `op` fails, this daemon's needs are as before it.
    fn transact<T>(
        &mut self,
        op: impl FnOnce(&mut Record, &mut Shared) -> std::io::Result<T>,
    ) -> std::io::Result<(T, Vec<(String, String)>)> {
        let files = match &self.store {
            Store::Files { files, .. } => Some(files.clone()),
            Store::Memory { .. } => None,
        };
        let mutex = files.as_ref().map(Files::lock).transpose()?;
        let mut sh = self.load()?;
        let before = self.wants.clone();
        let res = op(self, &mut sh).and_then(|t| {
            let restored = self.put_back_unneeded(&mut sh)?;
            self.store_record(&mut sh)?;
            self.store_holder()?;
            Ok((t, restored))
        });
        if res.is_err() {
            self.wants = before;
            let _ = self.store_holder();
        }
        // Nothing left of the namespace's state: the mutex file goes too (while held: see
        // `Files::lock`).
        if let (Some(files), Some(_held)) = (&files, &mutex)
            && sh.original.is_empty()
            && sh.others.is_empty()
            && self.wants.is_empty()
        {
            let _ = std::fs::remove_file(files.mutex());
        }
        res
    }

    /// The record and the other live daemons' needs; holder files of dead daemons removed, a
    /// record of a namespace that is gone dropped.
    fn load(&self) -> std::io::Result<Shared> {
        let (files, me) = match &self.store {
            Store::Memory { original, written } => {
                return Ok(Shared {
                    original: original.clone(),
                    written: written.clone(),
                    others: Vec::new(),
                    dirty: false,
                });
            }
            // Its own holder file, when it has one (locked through another descriptor, it would
            // look like another daemon's).
            Store::Files { files, id, hold } => (files, hold.as_ref().map(|_| id)),
        };
        let path = files.record();
        let (original, written, dirty) = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let (cookie, original) = parse(&text);
                if self.netns.cookie == 0 || cookie == Some(self.netns.cookie) {
                    (original, parse_written(&text), false)
                } else {
                    warn!(path = %path.display(), "a sysctl record of a network namespace that is gone: dropped");
                    (BTreeMap::new(), BTreeMap::new(), true)
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (BTreeMap::new(), BTreeMap::new(), false)
            }
            Err(e) => return Err(e),
        };
        let mut others = Vec::new();
        for (id, path) in files.holders()? {
            if Some(&id) == me {
                continue;
            }
            let f = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                // Nobody holds it: its daemon is gone.
                Ok(_dead) => std::fs::remove_file(&path)?,
                Err((f, Errno::EWOULDBLOCK)) => {
                    others.push(parse(&std::io::read_to_string(f)?).1);
                }
                Err((_, e)) => return Err(e.into()),
            }
        }
        Ok(Shared {
            original,
            written,
            others,
            dirty,
        })
    }

    /// Puts back every recorded sysctl no live daemon needs (this one included), unless
    /// someone else changed it after weir wrote it (their value stands; the original is
    /// forgotten).
    fn put_back_unneeded(&self, sh: &mut Shared) -> std::io::Result<Vec<(String, String)>> {
        let mut restored = Vec::new();
        for (k, v) in sh.original.clone() {
            if self.wants.contains_key(&k) || sh.others.iter().any(|o| o.contains_key(&k)) {
                continue;
            }
            let written = sh.written.remove(&k);
            sh.original.remove(&k);
            sh.dirty = true;
            if let (Some(w), Ok(now)) = (written, self.read(&k))
                && now != w
            {
                info!(sysctl = %k, value = %now, weir_wrote = %w, "changed by someone else while weir ran: left as it is, not put back");
                continue;
            }
            self.write(&k, &v)?;
            restored.push((k, v));
        }
        Ok(restored)
    }

    /// Stores `sh`'s originals: in the record file, or in memory.
    fn store_record(&mut self, sh: &mut Shared) -> std::io::Result<()> {
        match &mut self.store {
            Store::Memory { original, written } => {
                original.clone_from(&sh.original);
                written.clone_from(&sh.written);
                Ok(())
            }
            Store::Files { files, .. } => write_record(files, self.netns, sh),
        }
    }

    /// Writes this daemon's needs into its holder file (created and locked on the first),
    /// or removes the file when it needs nothing. Only under the mutex, where every reader is.
    fn store_holder(&mut self) -> std::io::Result<()> {
        let Store::Files { files, id, hold } = &mut self.store else {
            return Ok(());
        };
        if self.wants.is_empty() {
            if let Some(h) = hold.take() {
                // Removed while locked: nobody takes it for a dead daemon's in between.
                std::fs::remove_file(files.holder(id))?;
                drop(h);
            }
            return Ok(());
        }
        if hold.is_none() {
            let (new_id, lock) = create_holder(files, id)?;
            *id = new_id;
            *hold = Some(lock);
        }
        let Some(h) = hold.as_ref() else {
            return Ok(());
        };
        let mut text = format!(
            "# weir pid {}: the host sysctls it needs\n",
            std::process::id()
        );
        for (k, v) in &self.wants {
            text.push_str(&format!("{k}={v}\n"));
        }
        h.set_len(0)?;
        h.write_all_at(text.as_bytes(), 0)
    }

    /// Sets `key` to `value` for as long as this daemon needs it; its original is recorded
    /// before the first change any weir of the namespace makes. Where other daemons need it
    /// too, it gets the highest value asked.
    pub fn set(&mut self, key: &str, value: &str) -> std::io::Result<Vec<(String, String)>> {
        if !valid_key(key) {
            return Err(std::io::Error::other(format!("not a sysctl key: {key}")));
        }
        Ok(self
            .transact(|rec, sh| {
                rec.wants.insert(key.to_string(), value.to_string());
                rec.settle(sh, key)
            })?
            .1)
    }

    /// This daemon no longer needs `key`: it goes back to what the others still ask, or to its
    /// original when none does.
    pub fn restore(&mut self, key: &str) -> std::io::Result<Vec<(String, String)>> {
        Ok(self
            .transact(|rec, sh| {
                if rec.wants.remove(key).is_some() {
                    rec.settle(sh, key)?;
                }
                Ok(())
            })?
            .1)
    }

    /// Gives `key` the joint value of the needs (the original recorded before it changes);
    /// with no need left it is put back by `put_back_unneeded`.
    fn settle(&self, sh: &mut Shared, key: &str) -> std::io::Result<()> {
        let asked = self
            .wants
            .get(key)
            .into_iter()
            .chain(sh.others.iter().filter_map(|o| o.get(key)));
        let Some(want) = joint(asked).cloned() else {
            return Ok(());
        };
        let now = self.read(key)?;
        if now == want {
            if sh.original.contains_key(key) && sh.written.get(key) != Some(&want) {
                sh.written.insert(key.to_string(), want.clone());
                sh.dirty = true;
            }
            return Ok(());
        }
        if !sh.original.contains_key(key) {
            sh.original.insert(key.to_string(), now);
            sh.dirty = true;
            // The record before the change: a crash right after still finds it. (In memory,
            // `transact` keeps it after the operation.)
            if let Store::Files { files, .. } = &self.store {
                write_record(files, self.netns, sh)?;
            }
        }
        self.write(key, &want)?;
        sh.written.insert(key.to_string(), want.clone());
        sh.dirty = true;
        Ok(())
    }

    /// The value `key` had before any weir of the namespace changed it (its value now when
    /// none did).
    pub fn original(&mut self, key: &str) -> std::io::Result<String> {
        if !valid_key(key) {
            return Err(std::io::Error::other(format!("not a sysctl key: {key}")));
        }
        let (found, _) = self.transact(|_, sh| Ok(sh.original.get(key).cloned()))?;
        match found {
            Some(v) => Ok(v),
            None => self.read(key),
        }
    }

    /// Whether this daemon needs `key`.
    pub fn needs(&self, key: &str) -> bool {
        self.wants.contains_key(key)
    }
}

/// Writes the record (temporary file, fsync, rename: a crash leaves the old or the new one),
/// or removes it when nothing is changed; nothing when it is as stored.
fn write_record(files: &Files, netns: Netns, sh: &mut Shared) -> std::io::Result<()> {
    if !sh.dirty {
        return Ok(());
    }
    let path = files.record();
    if sh.original.is_empty() {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    } else {
        let mut text = format!(
            "# weir: host sysctls to restore when no weir needs them\ncookie={}\n",
            netns.cookie
        );
        for (k, v) in &sh.original {
            text.push_str(&format!("{k}={v}\n"));
        }
        for (k, v) in sh
            .written
            .iter()
            .filter(|(k, _)| sh.original.contains_key(*k))
        {
            text.push_str(&format!("{WRITTEN}{k}={v}\n"));
        }
        let tmp = path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
    }
    sh.dirty = false;
    Ok(())
}

/// Creates and locks this daemon's holder file: `id`'s, or, where another live process
/// (another pid namespace's with the same pid) holds that one, `id-2`, `id-3`, …
fn create_holder(files: &Files, id: &str) -> std::io::Result<(String, Flock<File>)> {
    for n in 1..=64 {
        let name = if n == 1 {
            id.to_string()
        } else {
            format!("{id}-{n}")
        };
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(files.holder(&name))?;
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok((name, l)),
            Err((_, Errno::EWOULDBLOCK)) => continue,
            Err((_, e)) => return Err(e.into()),
        }
    }
    Err(std::io::Error::other(format!(
        "no free holder file for {id} in {}",
        files.dir.display()
    )))
}

/// This process's part in its namespace's sysctls; `None` until [`recover`] (or the first
/// change). Where `/run/weir` cannot be used, the originals are kept in memory only, with a
/// warning.
static HOST: Mutex<Option<Record>> = Mutex::new(None);

fn host<T>(f: impl FnOnce(&mut Record) -> T) -> anyhow::Result<T> {
    let mut h = HOST.lock().unwrap_or_else(|p| p.into_inner());
    if h.is_none() {
        let sys = Path::new(PROC_SYS);
        let taken = Netns::current().and_then(|ns| {
            Record::take(
                Path::new(crate::run_dir::DIR),
                sys,
                ns,
                &std::process::id().to_string(),
            )
        });
        *h = Some(match taken {
            Ok((rec, restored)) => {
                log_restored(&restored, None);
                rec
            }
            // No root to write /run, most likely.
            Err(e) => {
                warn!(
                    "{e:#}: this weir's host sysctl changes are not recorded (restored at its exit only, as if no other weir ran in this network namespace)"
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

/// Logs what a change put back: `own`, the key this daemon gave up itself (its cleanup), or
/// keys weirs that died without their cleanup left changed.
fn log_restored(restored: &[(String, String)], own: Option<&str>) {
    for (k, v) in restored {
        let sysctl = k.replace('/', ".");
        if own == Some(k.as_str()) {
            info!(%sysctl, value = %v, "restored a host sysctl weir had changed");
        } else {
            info!(%sysctl, value = %v, "restored a host sysctl no running weir needs (its weirs died without their cleanup)");
        }
    }
}

/// At start: joins this namespace's weirs, putting back what weirs that died without their
/// cleanup left changed and no running one needs.
pub fn recover() -> anyhow::Result<()> {
    host(|_| ())
}

/// Sets a sysctl of this namespace (`net/ipv4/…`) for as long as this daemon needs it, its
/// original recorded first (see the module's doc for several daemons).
pub fn set(key: &str, value: &str) -> anyhow::Result<()> {
    let restored =
        host(|r| r.set(key, value))?.with_context(|| format!("setting {key} = {value}"))?;
    log_restored(&restored, None);
    Ok(())
}

/// This daemon no longer needs the sysctl: it is put back unless another weir of the namespace
/// still needs it.
pub fn restore(key: &str) -> anyhow::Result<()> {
    let restored = host(|r| r.restore(key))?.with_context(|| format!("restoring {key}"))?;
    log_restored(&restored, Some(key));
    Ok(())
}

/// Puts `key` back to `value` when something else rewrote it while this daemon needs it
/// (`sysctl --system`, config management; the kernel cannot notify a change): the value found
/// when it did. The original recorded at the first change stays the one restored at exit.
pub fn reassert(key: &str, value: &str) -> anyhow::Result<Option<String>> {
    let path = Path::new(PROC_SYS).join(key);
    let found = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_string();
    if found == value {
        return Ok(None);
    }
    set(key, value)?;
    Ok(Some(found))
}

/// The value a sysctl had before any weir of this namespace changed it.
pub fn original(key: &str) -> anyhow::Result<String> {
    host(|r| r.original(key))?.with_context(|| format!("reading {key}"))
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

    /// A fake `/proc/sys` with the namespace's originals (`tcp_timestamps` 1,
    /// `tcp_syncookies` 0, `tcp_migrate_req` 0) and an empty run directory.
    fn tmp(name: &str) -> (Tmp, PathBuf, PathBuf) {
        let root = std::env::temp_dir().join(format!("weir-sysctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (dir, sys) = (root.join("run"), root.join("sys"));
        std::fs::create_dir_all(sys.join("net/ipv4")).unwrap();
        std::fs::write(sys.join(TS), "1\n").unwrap();
        std::fs::write(sys.join(SC), "0\n").unwrap();
        std::fs::write(sys.join(MR), "0\n").unwrap();
        (Tmp(root), dir, sys)
    }

    const NS: Netns = Netns {
        inode: 4026531840,
        cookie: 7,
    };
    const TS: &str = "net/ipv4/tcp_timestamps";
    const SC: &str = "net/ipv4/tcp_syncookies";
    const MR: &str = "net/ipv4/tcp_migrate_req";

    fn get(sys: &Path, k: &str) -> String {
        std::fs::read_to_string(sys.join(k)).unwrap().trim().into()
    }

    /// (timestamps, syncookies, migrate_req) as the fake namespace has them.
    fn values(sys: &Path) -> (String, String, String) {
        (get(sys, TS), get(sys, SC), get(sys, MR))
    }

    fn v(ts: &str, sc: &str, mr: &str) -> (String, String, String) {
        (ts.into(), sc.into(), mr.into())
    }

    /// What an XDP daemon with workers sets at start.
    fn full(dir: &Path, sys: &Path, id: &str, cookies: bool) -> Record {
        let (mut r, _) = Record::take(dir, sys, NS, id).unwrap();
        r.set(TS, "2").unwrap();
        r.set(SC, if cookies { "2" } else { "1" }).unwrap();
        r.set(MR, "1").unwrap();
        r
    }

    /// The names in the run directory.
    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_dead_daemons_changes_are_restored_by_the_next_start() {
        let (_t, dir, sys) = tmp("crash");
        let (mut a, restored) = Record::take(&dir, &sys, NS, "100").unwrap();
        assert!(restored.is_empty());
        a.set(TS, "2").unwrap();
        a.set(SC, "1").unwrap();
        a.set(SC, "2").unwrap();
        assert_eq!((get(&sys, TS), get(&sys, SC)), ("2".into(), "2".into()));
        // It dies without its cleanup: its lock goes with its descriptors, nothing is
        // restored (a `Record` restores only when told to).
        let record = dir.join(format!("sysctl-{}", NS.inode));
        drop(a);
        assert!(record.exists());
        let (b, restored) = Record::take(&dir, &sys, NS, "101").unwrap();
        assert_eq!(restored.len(), 2, "{restored:?}");
        assert_eq!((get(&sys, TS), get(&sys, SC)), ("1".into(), "0".into()));
        assert!(!record.exists(), "the record is removed once restored");
        drop(b);
        assert_eq!(files(&dir), Vec::<String>::new(), "nothing left behind");
    }

    #[test]
    fn a_normal_exit_restores_and_removes_the_record() {
        let (_t, dir, sys) = tmp("exit");
        let (mut a, _) = Record::take(&dir, &sys, NS, "100").unwrap();
        a.set(TS, "1").unwrap();
        assert!(
            !dir.join(format!("sysctl-{}", NS.inode)).exists(),
            "an unchanged value is not recorded"
        );
        a.set(TS, "2").unwrap();
        assert_eq!(a.original(TS).unwrap(), "1");
        a.restore(TS).unwrap();
        a.restore(TS).unwrap();
        assert_eq!(get(&sys, TS), "1");
        a.restore(TS).unwrap();
        assert_eq!(
            files(&dir),
            Vec::<String>::new(),
            "record, holder, mutex: gone"
        );
        assert!(a.set("../../etc/passwd", "x").is_err());
    }

    /// An operator changed a value weir had set while weir ran: weir's exit leaves theirs (it
    /// put its recorded original back over it), and so does the next start after a SIGKILL.
    #[test]
    fn a_value_someone_else_changed_is_left_as_they_set_it() {
        let (_t, dir, sys) = tmp("changed");
        let (mut a, _) = Record::take(&dir, &sys, NS, "100").unwrap();
        a.set(TS, "2").unwrap();
        a.set(MR, "1").unwrap();
        std::fs::write(sys.join(TS), "0").unwrap();
        a.restore(TS).unwrap();
        a.restore(MR).unwrap();
        a.restore(MR).unwrap();
        assert_eq!(get(&sys, TS), "0", "the operator's value stands");
        assert_eq!(get(&sys, MR), "0", "an untouched one is put back");
        assert_eq!(files(&dir), Vec::<String>::new(), "nothing left to restore");
        // Killed instead of exiting: the next start tells the same apart.
        let (mut b, _) = Record::take(&dir, &sys, NS, "200").unwrap();
        b.set(TS, "2").unwrap();
        b.set(MR, "1").unwrap();
        std::fs::write(sys.join(MR), "0").unwrap();
        drop(b);
        let (_c, restored) = Record::take(&dir, &sys, NS, "300").unwrap();
        assert_eq!(
            restored,
            [(TS.to_string(), "0".to_string())],
            "{restored:?}"
        );
        assert_eq!(get(&sys, MR), "0");
        // Alone in memory (no record file), the same.
        let mut m = Record::unrecorded(&sys, NS);
        m.set(TS, "2").unwrap();
        std::fs::write(sys.join(TS), "1").unwrap();
        m.restore(TS).unwrap();
        m.restore(TS).unwrap();
        assert_eq!(get(&sys, TS), "1");
    }

    /// Two daemons in one namespace (`--iface A`, `--iface B`): the first to exit leaves the
    /// values the second needs; the second's exit restores the originals.
    #[test]
    fn the_last_daemon_that_needs_a_value_restores_it() {
        let (_t, dir, sys) = tmp("two");
        let mut a = full(&dir, &sys, "100", true);
        assert_eq!(values(&sys), v("2", "2", "1"));
        // B finds the values changed already: it needs them all the same.
        let mut b = full(&dir, &sys, "200", false);
        assert_eq!(values(&sys), v("2", "2", "1"), "A's cookies stay on");
        assert_eq!(b.original(SC).unwrap(), "0", "the host's, not A's");
        // A's cookies go off: B's "at least 1" and A's 1.
        a.set(SC, "1").unwrap();
        assert_eq!(get(&sys, SC), "1");
        // B's cookies come on, then A's exit.
        b.set(SC, "2").unwrap();
        for k in [SC, TS, MR] {
            a.restore(k).unwrap();
        }
        drop(a);
        assert_eq!(values(&sys), v("2", "2", "1"), "B still needs them");
        // B's cookies go off: 1, its own need alone.
        b.set(SC, "1").unwrap();
        assert_eq!(get(&sys, SC), "1");
        for k in [SC, TS, MR] {
            b.restore(k).unwrap();
        }
        assert_eq!(values(&sys), v("1", "0", "0"), "the originals");
        drop(b);
        assert_eq!(files(&dir), Vec::<String>::new());
    }

    /// A daemon that needs a value keeps it when another that needs it is killed, and one that
    /// only the killed daemon needed is put back by the next start.
    #[test]
    fn a_killed_daemon_leaves_the_others_needs_in_force() {
        let (_t, dir, sys) = tmp("killed");
        let a = full(&dir, &sys, "100", true);
        // B: an L7-only daemon (its workers' `tcp_migrate_req` alone).
        let (mut b, _) = Record::take(&dir, &sys, NS, "200").unwrap();
        b.set(MR, "1").unwrap();
        drop(a); // SIGKILL
        assert_eq!(values(&sys), v("2", "2", "1"), "nothing runs at a SIGKILL");
        // The next start (C, changing nothing) puts back what only A needed.
        let (c, restored) = Record::take(&dir, &sys, NS, "300").unwrap();
        assert_eq!(restored.len(), 2, "{restored:?}");
        assert_eq!(values(&sys), v("1", "0", "1"), "B's need stays");
        drop(c);
        assert!(b.needs(MR));
        b.restore(MR).unwrap();
        assert_eq!(values(&sys), v("1", "0", "0"));
        assert_eq!(files(&dir), Vec::<String>::new());
    }

    /// The last daemon's clean exit puts back what a killed one left too.
    #[test]
    fn the_last_exit_restores_what_a_killed_daemon_left() {
        let (_t, dir, sys) = tmp("survivor");
        let a = full(&dir, &sys, "100", true);
        let mut b = full(&dir, &sys, "200", false);
        drop(a); // SIGKILL
        assert_eq!(values(&sys), v("2", "2", "1"));
        // B's cookie need (1) is what is left of the joint 2.
        b.restore(MR).unwrap();
        assert_eq!(values(&sys), v("2", "2", "0"), "B's cookie needs unchanged");
        b.restore(SC).unwrap();
        b.restore(TS).unwrap();
        assert_eq!(values(&sys), v("1", "0", "0"));
        assert_eq!(files(&dir), Vec::<String>::new());
    }

    #[test]
    fn when_all_died_the_next_start_restores_the_originals() {
        let (_t, dir, sys) = tmp("alldead");
        let a = full(&dir, &sys, "100", true);
        let b = full(&dir, &sys, "200", false);
        drop(b);
        drop(a);
        assert_eq!(values(&sys), v("2", "2", "1"));
        let (c, restored) = Record::take(&dir, &sys, NS, "300").unwrap();
        assert_eq!(restored.len(), 3, "{restored:?}");
        assert_eq!(values(&sys), v("1", "0", "0"));
        drop(c);
        assert_eq!(files(&dir), Vec::<String>::new());
    }

    #[test]
    fn a_record_of_a_namespace_that_is_gone_is_not_applied() {
        let (_t, dir, sys) = tmp("reuse");
        let (mut a, _) = Record::take(&dir, &sys, NS, "100").unwrap();
        a.set(TS, "2").unwrap();
        drop(a);
        // Same inode, another cookie: a new namespace.
        let other = Netns { cookie: 8, ..NS };
        let (_b, restored) = Record::take(&dir, &sys, other, "101").unwrap();
        assert!(restored.is_empty());
        assert_eq!(get(&sys, TS), "2");
        assert!(
            !dir.join(format!("sysctl-{}", NS.inode)).exists(),
            "dropped"
        );
    }

    /// A live process of another pid namespace with this pid holds `<pid>.hold`: another name.
    #[test]
    fn a_held_holder_name_is_not_shared() {
        let (_t, dir, sys) = tmp("sameid");
        let mut a = full(&dir, &sys, "100", true);
        let (mut b, restored) = Record::take(&dir, &sys, NS, "100").unwrap();
        assert!(
            restored.is_empty(),
            "A's `100.hold` is a live daemon's: {restored:?}"
        );
        assert_eq!(values(&sys), v("2", "2", "1"));
        b.set(SC, "1").unwrap();
        a.restore(SC).unwrap();
        assert_eq!(get(&sys, SC), "1", "B's need");
        b.restore(SC).unwrap();
        assert_eq!(get(&sys, SC), "0");
    }

    #[test]
    fn records_parse_back() {
        let (c, o) = parse("# x\ncookie=9\nnet/ipv4/tcp_timestamps=1\n../x=1\nbad\n");
        assert_eq!(c, Some(9));
        assert_eq!(o.len(), 1);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(joint(&s(&["1", "2", "0"])).map(String::as_str), Some("2"));
        assert_eq!(joint(&s(&["x", "2"])).map(String::as_str), Some("x"));
        assert_eq!(joint(&s(&[])), None);
    }
}
