//! Giving up root: capability sets, then user and group.
//!
//! In two steps because of threads. Capability sets are per thread: the bounding, ambient and
//! inheritable sets are emptied by [`drop_inheritable`] while the worker has one thread, so every
//! thread started later (the access-log writer) inherits them empty. The user switch
//! ([`switch_user`]) runs after the worker opened its files; glibc applies `setresuid` to every
//! thread, and the kernel empties the permitted and effective sets of a thread whose user IDs all
//! leave 0.

use caps::{CapSet, CapsHashSet};
use nix::unistd::{Pid, getppid, setgroups, setresgid, setresuid};

use super::user::Identity;

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("capabilities ({step}): {source}")]
    Caps {
        step: &'static str,
        source: caps::errors::CapsError,
    },
    #[error("{step}: {source}")]
    Sys {
        step: &'static str,
        source: nix::Error,
    },
    #[error("capability set {0:?} still holds {1:?} after the switch")]
    Left(CapSet, CapsHashSet),
    #[error("the control plane exited while the worker started")]
    Orphaned,
    #[error(
        "weir runs without CAP_SETPCAP, which a worker needs to empty its capability bounding \
         set; give it to weir (systemd: add CAP_SETPCAP to CapabilityBoundingSet, as \
         dist/weir.service does)"
    )]
    NoSetpcap,
    #[error(
        "weir runs without CAP_KILL, which it needs to stop its workers once they run as user \
         `{0}` (a signal to another user's process needs it); give it to weir (systemd: add \
         CAP_KILL to CapabilityBoundingSet, as dist/weir.service does)"
    )]
    NoKill(String),
}

fn caps_step(step: &'static str) -> impl Fn(caps::errors::CapsError) -> PrivilegeError {
    move |source| PrivilegeError::Caps { step, source }
}

fn sys_step(step: &'static str) -> impl Fn(nix::Error) -> PrivilegeError {
    move |source| PrivilegeError::Sys { step, source }
}

/// Empties the bounding, ambient and inheritable sets of this (only) thread; the permitted and
/// effective ones stay until [`switch_user`], for opening the certificates and the log file.
pub fn drop_inheritable() -> Result<(), PrivilegeError> {
    caps::clear(None, CapSet::Ambient).map_err(caps_step("ambient"))?;
    let bounding = caps::read(None, CapSet::Bounding).map_err(caps_step("read"))?;
    let setpcap = caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP)
        .map_err(caps_step("read"))?;
    if !bounding.is_empty() && !setpcap {
        return Err(PrivilegeError::NoSetpcap);
    }
    caps::clear(None, CapSet::Bounding).map_err(caps_step("bounding"))?;
    caps::clear(None, CapSet::Inheritable).map_err(caps_step("inheritable"))?;
    Ok(())
}

/// Becomes `id` (real, effective and saved IDs; no supplementary groups), checks no capability
/// is left, and asks again for SIGTERM when the control plane dies: the kernel forgets that
/// request when the credentials change. `parent` is the control plane's pid read at start.
pub fn switch_user(id: &Identity, parent: Pid) -> Result<(), PrivilegeError> {
    setgroups(&[id.gid]).map_err(sys_step("setgroups"))?;
    setresgid(id.gid, id.gid, id.gid).map_err(sys_step("setresgid"))?;
    setresuid(id.uid, id.uid, id.uid).map_err(sys_step("setresuid"))?;
    // Root as the configured user keeps its permitted set through setresuid: clear it anyway.
    caps::clear(None, CapSet::Permitted).map_err(caps_step("permitted"))?;
    for set in [
        CapSet::Permitted,
        CapSet::Effective,
        CapSet::Inheritable,
        CapSet::Ambient,
        CapSet::Bounding,
    ] {
        let left = caps::read(None, set).map_err(caps_step("read"))?;
        if !left.is_empty() {
            return Err(PrivilegeError::Left(set, left));
        }
    }
    rearm_parent_death(parent)
}

/// In the control plane, before any worker starts, what the workers will need of it: CAP_SETPCAP
/// for each to empty its bounding set ([`drop_inheritable`] would fail in every worker, restarted
/// in a loop), and, unless they run as root (`id`), CAP_KILL to stop them (SIGTERM, then SIGKILL
/// after the drain bound): without it every signal fails with EPERM and a stop would leave them
/// running.
pub fn check_can_supervise(id: &Identity) -> Result<(), PrivilegeError> {
    let has = |cap| caps::has_cap(None, CapSet::Effective, cap).map_err(caps_step("read"));
    let bounding = caps::read(None, CapSet::Bounding).map_err(caps_step("read"))?;
    if !bounding.is_empty() && !has(caps::Capability::CAP_SETPCAP)? {
        return Err(PrivilegeError::NoSetpcap);
    }
    if !id.uid.is_root() && !has(caps::Capability::CAP_KILL)? {
        return Err(PrivilegeError::NoKill(id.user.clone()));
    }
    Ok(())
}

/// `PR_SET_PDEATHSIG` again, and a check that the parent did not die before it.
pub fn rearm_parent_death(parent: Pid) -> Result<(), PrivilegeError> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
        .map_err(sys_step("PR_SET_PDEATHSIG"))?;
    if getppid() != parent {
        return Err(PrivilegeError::Orphaned);
    }
    Ok(())
}
