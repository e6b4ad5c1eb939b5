//! Where a daemon's admin socket is, for the daemon (which creates it) and the CLI (which finds
//! it). weir runs one daemon per interface of a network namespace (`--iface`, beside its lock
//! `/run/weir/<iface>:<netns inode>.lock`, `crate::iface_id`) or one L7-only daemon per network
//! namespace, so the defaults are:
//!
//! - `--iface IF`: `/run/weir/IF:<netns inode>.sock` (a weir before named it `IF.sock`: the CLI
//!   still finds such a daemon of its namespace, `legacy_here`);
//! - L7 only, in the host's network namespace: `/run/weir/admin.sock`;
//! - L7 only, in another network namespace: `/run/weir/admin-<netns inode>.sock` (as weir's
//!   sysctl records), so daemons in different namespaces sharing `/run` (containers, the tests'
//!   labs) do not meet, and the CLI run in a namespace finds that namespace's daemon.
//!
//! `[admin] socket` overrides the default; the CLI's `--socket` names any.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::{config::admin::AdminSettings, iface_id::IfaceId};

use crate::run_dir::DIR;
const SUFFIX: &str = ".sock";

/// Whether this process shares the network namespace of pid 1. Where pid 1's namespace cannot
/// be read (an unprivileged caller; some sandboxes deny it to root too), `false`: the
/// per-namespace name is always safe, `admin.sock` only when no other namespace can claim it.
fn in_host_netns() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let ino = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino()));
    match (ino("/proc/1/ns/net"), ino("/proc/self/ns/net")) {
        (Ok(init), Ok(me)) => init == me,
        _ => false,
    }
}

/// The default for an L7-only daemon in this network namespace.
pub fn l7_default() -> anyhow::Result<PathBuf> {
    if in_host_netns() {
        return Ok(Path::new(DIR).join("admin.sock"));
    }
    let ns = crate::sysctl::Netns::current()?;
    Ok(Path::new(DIR).join(format!("admin-{}{SUFFIX}", ns.inode)))
}

/// The default socket of the daemon on `iface` of this network namespace.
pub fn iface_default(iface: &str) -> anyhow::Result<PathBuf> {
    let stem = IfaceId::here(iface)?.stem();
    Ok(Path::new(DIR).join(format!("{stem}{SUFFIX}")))
}

/// A weir before this one's socket for `iface` (`/run/weir/<iface>.sock`, by the interface's name
/// alone), if a daemon of this network namespace answers on it: told by the listener's pid
/// (`SO_PEERCRED`), as the name no longer tells it.
fn legacy_here(iface: &str) -> Option<PathBuf> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let p = Path::new(DIR).join(format!("{iface}{SUFFIX}"));
    let conn = std::os::unix::net::UnixStream::connect(&p).ok()?;
    let pid = getsockopt(&conn, PeerCredentials).ok()?.pid();
    (pid > 0 && crate::iface_id::maybe_here(pid)).then_some(p)
}

/// The socket a daemon serves: the configured one, or the default for it.
pub fn for_daemon(cfg: &AdminSettings, iface: Option<&str>) -> anyhow::Result<PathBuf> {
    match (&cfg.socket, iface) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(i)) => iface_default(i),
        (None, None) => l7_default(),
    }
}

/// Whether a daemon may answer on `p`: it exists and a connection to it is not refused. A
/// socket a killed daemon left behind refuses; so does `admin-<netns inode>.sock` of a namespace
/// since gone, whose inode a new namespace may reuse, and `<iface>.sock` of a reused name.
fn answers(p: &Path) -> bool {
    use std::io::ErrorKind::{ConnectionRefused, NotFound};
    match std::os::unix::net::UnixStream::connect(p) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), ConnectionRefused | NotFound),
    }
}

/// The socket the CLI talks to: `--socket`, else `--iface`'s default, else the only daemon of
/// this network namespace (its L7-only socket, or an interface daemon's on one of its
/// interfaces).
pub fn for_client(socket: Option<&Path>, iface: Option<&str>) -> anyhow::Result<PathBuf> {
    if let Some(s) = socket {
        return Ok(s.to_path_buf());
    }
    if let Some(i) = iface {
        let p = iface_default(i)?;
        return Ok(if p.exists() {
            p
        } else {
            legacy_here(i).unwrap_or(p)
        });
    }
    let l7 = l7_default()?;
    if let Err(e) = std::fs::read_dir(DIR)
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        bail!("{DIR}: permission denied: the admin API is root-only (run this as root)");
    }
    let mut found: Vec<PathBuf> = answers(&l7).then(|| l7.clone()).into_iter().collect();
    found.extend(
        std::fs::read_dir(DIR)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(SUFFIX)?;
                match IfaceId::parse(stem) {
                    Some(id) => (id.is_here() && answers(&e.path())).then(|| e.path()),
                    None if stem.starts_with("admin") => None,
                    None => legacy_here(stem),
                }
            }),
    );
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(
            "no weir daemon found here (is `weir run` running?): no admin socket at {} nor \
             /run/weir/<iface>:<netns inode>.sock of this network namespace (a daemon with \
             [admin] socket set elsewhere: pass --socket PATH)",
            l7.display()
        ),
        many => bail!(
            "several weir daemons run here ({}); pick one with --socket PATH or --iface IFACE",
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::answers;

    #[test]
    fn a_socket_nobody_listens_on_does_not_answer() {
        let dir = std::env::temp_dir().join(format!("weir-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.sock");
        assert!(!answers(&p), "missing");
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        assert!(answers(&p), "listening");
        drop(l);
        assert!(p.exists());
        assert!(!answers(&p), "left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
