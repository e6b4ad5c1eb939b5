//! The per-interface bpffs directory `/sys/fs/bpf/weir/<iface>:<netns inode>/` where a running
//! `weir run` pins the maps `weir stats` reads. One daemon per interface of a network namespace,
//! enforced by a lock file (`/run/weir/<iface>:<netns inode>.lock`), beside which its note
//! (`….note`, [`PinDir::note`]) holds what bpffs cannot; the directory is removed on every exit,
//! and a stale one (left by a killed run) is replaced at start. The namespace is part of every
//! name (`crate::iface_id`): `eth0` of two namespaces is two interfaces.

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use lb_common::maps;

use crate::iface_id::{self, IfaceId};

/// The maps that are pinned.
pub const PINNED: [&str; 3] = [maps::STATS, maps::VIP_STATS, maps::VIPS];

pub const BPFFS_ROOT: &str = "/sys/fs/bpf/weir";
/// Where the lock files (and notes) are: the run directory.
pub const LOCK_ROOT: &str = crate::run_dir::DIR;

pub fn dir_for(id: &IfaceId) -> PathBuf {
    Path::new(BPFFS_ROOT).join(id.stem())
}

/// The pin directory of one running daemon; removes it (and its lock file and note) on drop.
pub struct PinDir {
    pub path: PathBuf,
    lock_path: PathBuf,
    note_path: PathBuf,
    /// Held (`flock`) while the daemon runs.
    _lock: File,
}

/// The lock file of the daemon whose files are named `stem` (an [`IfaceId::stem`], or a weir
/// before it's interface name).
fn lock_path(stem: &str) -> PathBuf {
    Path::new(LOCK_ROOT).join(format!("{stem}.lock"))
}

fn note_path(stem: &str) -> PathBuf {
    Path::new(LOCK_ROOT).join(format!("{stem}.note"))
}

/// Where a note is written before it is renamed over `note` (`<iface>.note.tmp`).
fn note_tmp(note: &Path) -> PathBuf {
    let mut t = note.as_os_str().to_owned();
    t.push(".tmp");
    t.into()
}

/// Opens and try-locks the lock file of `stem`: `Some(file)` holds the lock, `None` means a live
/// daemon holds it.
fn try_lock(stem: &str) -> anyhow::Result<Option<File>> {
    try_lock_at(&lock_path(stem))
}

/// Opens `path` without truncating it (every other daemon's start looks at a live daemon's lock
/// file through [`remove_stale`]) and try-locks it.
fn try_lock_at(path: &Path) -> anyhow::Result<Option<File>> {
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // SAFETY: flock on an fd we own.
    let held = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    Ok(held.then_some(lock))
}

/// Removes the pin directories (and lock files and notes) of daemons that are gone: killed with
/// SIGKILL, or whose interface (or namespace) disappeared; a weir before this one's too (named
/// `<iface>`). A directory whose lock a live daemon holds is left alone, in any namespace.
fn remove_stale(except: &str) {
    let names = |dir: &str, suffix: &str| -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_suffix(suffix).map(str::to_string)
            })
            .collect()
    };
    let mut stems = names(BPFFS_ROOT, "");
    stems.extend(names(LOCK_ROOT, ".lock"));
    stems.extend(names(LOCK_ROOT, ".note"));
    stems.sort();
    stems.dedup();
    for stem in stems.into_iter().filter(|i| i != except) {
        if let Ok(Some(_lock)) = try_lock(&stem) {
            let _ = std::fs::remove_dir_all(Path::new(BPFFS_ROOT).join(&stem));
            let note = note_path(&stem);
            let _ = std::fs::remove_file(note_tmp(&note));
            let _ = std::fs::remove_file(note);
            let _ = std::fs::remove_file(lock_path(&stem));
        }
    }
}

impl PinDir {
    /// Takes the interface's lock and prepares an empty pin directory; removes what dead daemons
    /// left behind.
    pub fn create(iface: &str) -> anyhow::Result<PinDir> {
        let id = IfaceId::here(iface)?;
        let stem = id.stem();
        // Before taking the lock: a refused start leaves no lock file.
        if let Some(pid) = legacy_holder(iface) {
            bail!("{}", legacy_running(iface, pid));
        }
        std::fs::create_dir_all(LOCK_ROOT).with_context(|| format!("creating {LOCK_ROOT}"))?;
        let Some(lock) = try_lock(&stem)? else {
            bail!(
                "another weir is already running on `{iface}` of this network namespace (lock {} \
                 is held)",
                lock_path(&stem).display()
            );
        };
        // A dead daemon's note is not ours.
        let note = note_path(&stem);
        for p in [note_tmp(&note), note.clone()] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", p.display()));
                }
                _ => {}
            }
        }
        ensure_bpffs()?;
        remove_stale(&stem);
        let path = dir_for(&id);
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing stale pins in {}", path.display()))?;
        }
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(PinDir {
            path,
            lock_path: lock_path(&stem),
            note_path: note,
            _lock: lock,
        })
    }

    /// Writes the daemon's host-side state (`key value` lines) into its note, where
    /// `weir stats` reads it ([`read_note`]): bpffs holds no regular files.
    pub fn note(&self, text: &str) -> std::io::Result<()> {
        write_note(&self.note_path, text)
    }
}

/// Replaces the note at `path` with `text`: written beside it, then renamed over it, so a
/// reader opens the old text or the new one, whole. (It was written over the lock file's old
/// text, then cut to length: a reader between the two, or during the write, could read the
/// new text's start with the old one's end, or a mix of both. The lock file itself cannot be
/// replaced that way: its inode holds the daemon's `flock`; hence a file of its own.)
fn write_note(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = note_tmp(path);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The value of `key` in the note of the daemon on `iface` of this network namespace
/// ([`PinDir::note`]).
pub fn read_note(iface: &str, key: &str) -> Option<String> {
    let stem = IfaceId::here(iface).ok()?.stem();
    note_value(&std::fs::read_to_string(note_path(&stem)).ok()?, key)
}

fn note_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ').map(str::to_string))
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_file(&self.note_path);
        // Still holding the lock: a daemon starting now creates a fresh file and lock.
        let _ = std::fs::remove_file(&self.lock_path);
        // Leave /sys/fs/bpf/weir itself when another interface's daemon still uses it.
        let _ = std::fs::remove_dir(BPFFS_ROOT);
    }
}

/// Mounts bpffs on /sys/fs/bpf when nothing is mounted there (as systemd does at boot).
fn ensure_bpffs() -> anyhow::Result<()> {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let is_bpffs = nix::sys::statfs::statfs("/sys/fs/bpf")
        .map(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
        .unwrap_or(false);
    if !is_bpffs {
        nix::mount::mount(
            Some("bpf"),
            "/sys/fs/bpf",
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .context("/sys/fs/bpf is not a bpf filesystem and mounting one there failed")?;
    }
    Ok(())
}

/// The pid of the live daemon that holds `id`'s lock, seen without taking the lock: a
/// `weir stats` that took it, even for a moment, could make a daemon starting then refuse
/// ("another weir is already running"). `None`: no process holds it (the daemon is gone, killed
/// with SIGKILL, or never ran), or there is no lock file.
pub fn lock_holder(id: &IfaceId) -> Option<i32> {
    lock_state(&lock_path(&id.stem())).flatten()
}

/// Whether the daemon of `id` is gone for sure: its lock file is there (a daemon that exits
/// removes it with its pins; SIGKILL leaves both) and no process holds it. A lock file that
/// cannot be seen, or an unreadable /proc/locks, says nothing.
pub fn daemon_gone(id: &IfaceId) -> bool {
    lock_state(&lock_path(&id.stem())) == Some(None)
}

/// The pid of a weir before this one (its lock `/run/weir/<iface>.lock`, by the interface's name
/// alone) running on `iface` of this network namespace, or whose namespace cannot be told
/// (its pid not visible from here). A start on its interface must be refused as one beside a
/// daemon of this version is: both would attach, pin and write the same interface's files.
pub fn legacy_holder(iface: &str) -> Option<i32> {
    let pid = lock_state(&lock_path(iface)).flatten()?;
    iface_id::maybe_here(pid).then_some(pid)
}

/// Why a start, or `weir stats`, meets a weir before this one on `iface`.
pub fn legacy_running(iface: &str, pid: i32) -> String {
    let who = if pid > 0 {
        format!("pid {pid}")
    } else {
        "a pid outside this pid namespace".into()
    };
    format!(
        "a weir of an earlier version is running on `{iface}` ({who}, holding {}, named by the \
         interface alone): stop it and start it again with this version (which names its files \
         by the interface and its network namespace), or use that version's `weir`",
        lock_path(iface).display()
    )
}

/// `Some(holder)` when the lock file at `path` and /proc/locks could be read, `None` when not.
fn lock_state(path: &Path) -> Option<Option<i32>> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    Some(flock_holder(
        &locks,
        libc::major(meta.dev()),
        libc::minor(meta.dev()),
        meta.ino(),
    ))
}

/// The pid holding a `flock` on the file (device `major:minor`, `inode`) in the text of
/// `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 4242 fe:00:1234 0 EOF`; a `->` line is a waiter).
/// The pid is 0 for a holder outside the reader's pid namespace.
fn flock_holder(locks: &str, major: u32, minor: u32, inode: u64) -> Option<i32> {
    let want = format!("{major:02x}:{minor:02x}:{inode}");
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            [_, "FLOCK", _, _, pid, file, ..] if *file == want => pid.parse().ok(),
            _ => None,
        }
    })
}

/// The interfaces of this network namespace among the names (file stems) in `dir` ending in
/// `suffix`; other namespaces' and other files' names are skipped.
fn interfaces_here(dir: &str, suffix: &str) -> Vec<IfaceId> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let Ok(here) = iface_id::this_netns() else {
        return Vec::new();
    };
    let mut v: Vec<IfaceId> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            IfaceId::parse(n.strip_suffix(suffix)?)
        })
        .filter(|id| id.netns() == here)
        .collect();
    v.sort_by(|a, b| a.name().cmp(b.name()));
    v
}

/// Interfaces of this network namespace whose lock a live daemon holds, with its pid: what
/// `weir stats` falls back on when it sees no pins (`ip netns exec` gives a command its own
/// /sys, where the daemon's pins are not; /run/weir, where the locks are, is the host's).
pub fn live_daemons() -> Vec<(IfaceId, i32)> {
    interfaces_here(LOCK_ROOT, ".lock")
        .into_iter()
        .filter_map(|id| Some((id.clone(), lock_holder(&id)?)))
        .collect()
}

/// Weirs of an earlier version ([`legacy_holder`]) running in this network namespace, by
/// interface.
pub fn legacy_daemons() -> Vec<(String, i32)> {
    let Ok(rd) = std::fs::read_dir(LOCK_ROOT) else {
        return Vec::new();
    };
    let mut v: Vec<(String, i32)> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let stem = n.strip_suffix(".lock")?;
            if IfaceId::parse(stem).is_some() || stem.starts_with("sysctl-") {
                return None;
            }
            Some((stem.to_string(), legacy_holder(stem)?))
        })
        .collect();
    v.sort();
    v
}

/// Why `weir stats`/`weir top` see no pins for `id` whose daemon `pid` is alive (the reason
/// first: `weir top` cuts it to its width).
pub fn pins_not_visible(id: &IfaceId, pid: i32) -> String {
    format!(
        "weir's pins are not visible from this mount namespace (`ip netns exec` mounts a /sys of \
         its own for every command; no {}), but the weir daemon on `{}` runs (pid {pid}, \
         holding {}): run `weir stats` in the daemon's namespaces, `nsenter -t {pid} -m -n weir \
         stats`, or start the daemon with `nsenter --net=/run/netns/NAME weir run` (the host's /sys)",
        dir_for(id).display(),
        id.name(),
        lock_path(&id.stem()).display()
    )
}

/// Interfaces of this network namespace with a running daemon's pins.
pub fn running_interfaces() -> Vec<String> {
    interfaces_here(BPFFS_ROOT, "")
        .into_iter()
        .map(|id| id.name().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `weir stats` tells a live daemon from a killed one by its lock, read from /proc/locks
    /// (never taken: a daemon starting then would find it held).
    #[test]
    fn a_lock_holder_is_read_from_proc_locks() {
        let locks = "1: FLOCK  ADVISORY  WRITE 4242 fe:00:1234 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 77 fe:00:99 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 55 fe:00:99 0 EOF\n";
        assert_eq!(flock_holder(locks, 0xfe, 0, 1234), Some(4242));
        assert_eq!(
            flock_holder(locks, 0xfe, 0, 99),
            None,
            "a waiter, a POSIX lock"
        );
        assert_eq!(flock_holder(locks, 0xfe, 1, 1234), None, "another device");
        // A real lock, held and then released, as /proc/locks shows it.
        let path =
            std::env::temp_dir().join(format!("weir-pins-holder-{}.lock", std::process::id()));
        let held = try_lock_at(&path).unwrap().expect("free");
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(&path).unwrap();
        let holder =
            |locks: &str| flock_holder(locks, libc::major(m.dev()), libc::minor(m.dev()), m.ino());
        let me = std::process::id() as i32;
        assert_eq!(
            holder(&std::fs::read_to_string("/proc/locks").unwrap()),
            Some(me)
        );
        drop(held);
        assert_eq!(
            holder(&std::fs::read_to_string("/proc/locks").unwrap()),
            None
        );
        let _ = std::fs::remove_file(&path);
    }

    /// Another daemon's start looks at every lock file (`remove_stale`): a live daemon's lock,
    /// and its note, survive it.
    #[test]
    fn a_held_lock_survives_another_daemons_look() {
        let path = std::env::temp_dir().join(format!("weir-pins-test-{}.lock", std::process::id()));
        let held = try_lock_at(&path)
            .unwrap()
            .expect("a fresh lock file is free");
        assert!(try_lock_at(&path).unwrap().is_none(), "held by the daemon");
        drop(held);
        let _ = std::fs::remove_file(&path);
    }

    /// A reader of the note, while the daemon rewrites it between a long text and a short one,
    /// reads one of them, whole. Written over the old text and cut to length, it read the
    /// short text with the long one's end (or, mid-write, a mix).
    #[test]
    fn a_reader_never_sees_a_mixed_note() {
        let dir = std::env::temp_dir().join(format!("weir-pins-note-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let note = dir.join("eth0.note");
        let long = "syncookies_reasserted 123456\nxdp_tx_errors 987654\ncookies_refused no tailroom on this driver\n";
        let short = "syncookies_reasserted 7\nxdp_tx_errors 0\n";
        write_note(&note, long).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (note, stop) = (note.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    write_note(&note, if n.is_multiple_of(2) { short } else { long }).unwrap();
                    n += 1;
                }
                n
            })
        };
        let (mut reads, mut mixed) = (0, 0);
        let t0 = std::time::Instant::now();
        while t0.elapsed() < std::time::Duration::from_millis(500) {
            let text = std::fs::read_to_string(&note).unwrap();
            reads += 1;
            if text != long && text != short {
                mixed += 1;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let writes = writer.join().unwrap();
        eprintln!("{reads} reads over {writes} writes: {mixed} mixed");
        assert_eq!(mixed, 0, "{mixed} of {reads} reads were neither text");
        assert_eq!(
            note_value(short, "xdp_tx_errors").as_deref(),
            Some("0"),
            "a key's value"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
