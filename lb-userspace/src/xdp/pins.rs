//! The per-interface bpffs directory `/sys/fs/bpf/weir/<iface>/` where a running `weir run` pins
//! the maps `weir stats` reads. One daemon per interface, enforced by a lock file; the directory
//! is removed on every exit, and a stale one (left by a killed run) is replaced at start.

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use lb_common::maps;

/// The maps that are pinned.
pub const PINNED: [&str; 3] = [maps::STATS, maps::VIP_STATS, maps::VIPS];

pub const BPFFS_ROOT: &str = "/sys/fs/bpf/weir";
/// Where the lock files (and notes) are: the run directory.
pub const LOCK_ROOT: &str = crate::run_dir::DIR;

pub fn dir_for(iface: &str) -> PathBuf {
    Path::new(BPFFS_ROOT).join(iface)
}

/// The pin directory of one running daemon; removes it (and its lock file) on drop.
pub struct PinDir {
    pub path: PathBuf,
    lock_path: PathBuf,
    lock: File,
}

fn lock_path(iface: &str) -> PathBuf {
    Path::new(LOCK_ROOT).join(format!("{iface}.lock"))
}

/// Opens and try-locks `iface`'s lock file: `Some(file)` holds the lock, `None` means a live
/// daemon holds it.
fn try_lock(iface: &str) -> anyhow::Result<Option<File>> {
    try_lock_at(&lock_path(iface))
}

/// Opens `path` without truncating it (a live daemon's lock file holds its note, which every
/// other daemon's start looks at through [`remove_stale`]) and try-locks it.
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

/// Removes the pin directories (and lock files) of daemons that are gone: killed with SIGKILL,
/// or whose interface disappeared. A directory whose lock a live daemon holds is left alone.
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
    let mut ifaces = names(BPFFS_ROOT, "");
    ifaces.extend(names(LOCK_ROOT, ".lock"));
    ifaces.sort();
    ifaces.dedup();
    for iface in ifaces.into_iter().filter(|i| i != except) {
        if let Ok(Some(_lock)) = try_lock(&iface) {
            let _ = std::fs::remove_dir_all(dir_for(&iface));
            let _ = std::fs::remove_file(lock_path(&iface));
        }
    }
}

impl PinDir {
    /// Takes the interface's lock and prepares an empty pin directory; removes what dead daemons
    /// left behind.
    pub fn create(iface: &str) -> anyhow::Result<PinDir> {
        std::fs::create_dir_all(LOCK_ROOT).with_context(|| format!("creating {LOCK_ROOT}"))?;
        let Some(lock) = try_lock(iface)? else {
            bail!(
                "another weir is already running on `{iface}` (lock {} is held)",
                lock_path(iface).display()
            );
        };
        // A dead daemon's note is not ours.
        lock.set_len(0)
            .with_context(|| format!("emptying {}", lock_path(iface).display()))?;
        ensure_bpffs()?;
        remove_stale(iface);
        let path = dir_for(iface);
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing stale pins in {}", path.display()))?;
        }
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(PinDir {
            path,
            lock_path: lock_path(iface),
            lock,
        })
    }

    /// Writes the daemon's host-side state (`key value` lines) into its lock file, where
    /// `weir stats` reads it ([`read_note`]): bpffs holds no regular files. Written over the
    /// old text, then cut to length, so a reader never finds the file empty in between (the
    /// counts in it only grow, so a new text is never shorter than the one it replaces).
    pub fn note(&self, text: &str) -> std::io::Result<()> {
        write_note(&self.lock, text)
    }
}

fn write_note(lock: &File, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    lock.write_all_at(text.as_bytes(), 0)?;
    lock.set_len(text.len() as u64)
}

/// The value of `key` in the note of `iface`'s running daemon ([`PinDir::note`]).
pub fn read_note(iface: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(lock_path(iface)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ').map(str::to_string))
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
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

/// Interfaces with a running daemon's pins.
pub fn running_interfaces() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(BPFFS_ROOT) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another daemon's start looks at every lock file (`remove_stale`): a live daemon's note
    /// must survive it. Opening with truncation once emptied it, and `weir stats` showed
    /// `syncookies_reasserted` 0 after the log said 2.
    #[test]
    fn a_held_lock_files_note_survives_another_daemons_look() {
        let path = std::env::temp_dir().join(format!("weir-pins-test-{}.lock", std::process::id()));
        let held = try_lock_at(&path)
            .unwrap()
            .expect("a fresh lock file is free");
        write_note(&held, "syncookies_reasserted 2\nxdp_tx_errors 0\n").unwrap();
        assert!(try_lock_at(&path).unwrap().is_none(), "held by the daemon");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "syncookies_reasserted 2\nxdp_tx_errors 0\n");
        write_note(&held, "syncookies_reasserted 3\nxdp_tx_errors 10\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "syncookies_reasserted 3\nxdp_tx_errors 10\n");
        drop(held);
        let _ = std::fs::remove_file(&path);
    }
}
