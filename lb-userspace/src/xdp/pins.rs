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
pub const LOCK_ROOT: &str = "/run/weir";

pub fn dir_for(iface: &str) -> PathBuf {
    Path::new(BPFFS_ROOT).join(iface)
}

/// The pin directory of one running daemon; removes it on drop.
pub struct PinDir {
    pub path: PathBuf,
    _lock: File,
}

impl PinDir {
    /// Takes the interface's lock and prepares an empty pin directory.
    pub fn create(iface: &str) -> anyhow::Result<PinDir> {
        std::fs::create_dir_all(LOCK_ROOT).with_context(|| format!("creating {LOCK_ROOT}"))?;
        let lock_path = Path::new(LOCK_ROOT).join(format!("{iface}.lock"));
        let lock = File::create(&lock_path)
            .with_context(|| format!("creating {}", lock_path.display()))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            bail!(
                "another weir is already running on `{iface}` (lock {} is held)",
                lock_path.display()
            );
        }
        ensure_bpffs()?;
        let path = dir_for(iface);
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing stale pins in {}", path.display()))?;
        }
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(PinDir { path, _lock: lock })
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
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
