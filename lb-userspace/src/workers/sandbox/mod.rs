//! The worker sandbox: an unprivileged user without capabilities, `NO_NEW_PRIVS`, and a
//! seccomp allow-list.
//!
//! A worker starts as root (it inherits weir's credentials) and gives everything up in two
//! steps around the moment it has opened what it needs:
//!
//! 1. [`Sandbox::prepare`], first thing, while the process has one thread: resolve `[workers]
//!    user`/`group` and empty the bounding, ambient and inheritable capability sets.
//! 2. [`Sandbox::enter`], once the listening sockets are taken, the certificates read, the
//!    access-log file open and the signal handlers installed: switch to the user, check no
//!    capability is left, then install the seccomp filter (with `NO_NEW_PRIVS`) on every thread.
//!
//! Nothing a worker does afterwards opens a path: targets are IP addresses (no DNS), TLS keys are
//! in memory. A weir that is not root (development) keeps its user, with a warning, and still
//! installs the filter.

pub mod privileges;
pub mod seccomp;
pub mod user;

use nix::unistd::{Pid, geteuid, getppid};
use tracing::{info, warn};

use crate::config::WorkerSettings;

/// Makes the libraries that open a file on first use do it now, before the filter forbids it.
/// aws-lc (rustls' crypto) stats `/dev/sysgenid` (VM snapshot detection) the first time its
/// random generator runs; with the ticket key from the control plane, that would be the first
/// TLS handshake, and the worker would die by SIGSYS there (seen with `strace -f`).
fn warm_up() {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
}

/// What a worker will give up, decided before it opens anything.
#[derive(Debug)]
pub struct Sandbox {
    /// `None`: not root, nothing to drop.
    identity: Option<user::Identity>,
    seccomp: bool,
    parent: Pid,
}

impl Sandbox {
    /// Step 1 (see the module doc). Call before any thread is started.
    pub fn prepare(settings: &WorkerSettings) -> anyhow::Result<Sandbox> {
        let parent = getppid();
        if !geteuid().is_root() {
            warn!(
                uid = geteuid().as_raw(),
                "weir is not root: the worker keeps its user ([workers] user is not applied)"
            );
            return Ok(Sandbox {
                identity: None,
                seccomp: settings.seccomp,
                parent,
            });
        }
        let identity = user::resolve(settings)?;
        privileges::drop_inheritable()?;
        Ok(Sandbox {
            identity: Some(identity),
            seccomp: settings.seccomp,
            parent,
        })
    }

    /// Step 2 (see the module doc): after this the worker cannot open a file, gain a
    /// capability or make a system call outside the allow-list.
    pub fn enter(self) -> anyhow::Result<()> {
        warm_up();
        if let Some(id) = &self.identity {
            privileges::switch_user(id, self.parent)?;
        }
        if self.seccomp {
            seccomp::apply()?;
        } else {
            warn!("[workers] seccomp = false: the worker runs without its system call filter");
            nix::sys::prctl::set_no_new_privs()?;
        }
        match &self.identity {
            Some(id) => info!(
                user = %id.user,
                uid = id.uid.as_raw(),
                group = %id.group,
                gid = id.gid.as_raw(),
                seccomp = self.seccomp,
                "sandboxed: no capabilities, no new privileges"
            ),
            None => info!(seccomp = self.seccomp, "sandboxed: no new privileges"),
        }
        Ok(())
    }
}
