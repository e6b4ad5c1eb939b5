//! The identity workers run as: `[workers] user` and `group` resolved through NSS, and the
//! default user (`weir`) that the control plane creates when it is missing.
//!
//! The control plane ([`ensure`]) runs first and either finds or creates the user; the worker
//! ([`resolve`]) then makes the same decision without creating anything: the default user when it
//! exists, [`FALLBACK_USER`] when it could not be made, any other configured user or an error.

use std::process::Command;

use nix::unistd::{Gid, Group, Uid, User};

use crate::config::workers::{DEFAULT_USER, FALLBACK_USER, WorkerSettings};

/// Who a worker becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub uid: Uid,
    pub group: String,
    pub gid: Gid,
}

/// How [`ensure`] found the workers' user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// It existed.
    Existing,
    /// The default user was missing and `useradd` made it.
    Created,
    /// The default user was missing and could not be made (the reason): [`FALLBACK_USER`].
    Fallback(String),
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(
        "[workers] user = {0:?}: no such user (create it, or leave `user` out: weir creates its own `weir` user)"
    )]
    NoUser(String),
    #[error("[workers] group = {0:?}: no such group")]
    NoGroup(String),
    #[error("looking up {what} {name:?}: {source}")]
    Lookup {
        what: &'static str,
        name: String,
        source: nix::Error,
    },
}

fn user(name: &str) -> Result<Option<User>, UserError> {
    User::from_name(name).map_err(|source| UserError::Lookup {
        what: "user",
        name: name.into(),
        source,
    })
}

/// The worker's side: the identity to switch to, creating nothing.
pub fn resolve(settings: &WorkerSettings) -> Result<Identity, UserError> {
    let found = match user(&settings.user)? {
        Some(u) => u,
        None if settings.user == DEFAULT_USER => {
            user(FALLBACK_USER)?.ok_or_else(|| UserError::NoUser(FALLBACK_USER.into()))?
        }
        None => return Err(UserError::NoUser(settings.user.clone())),
    };
    identity(found, settings.group.as_deref())
}

fn identity(u: User, group: Option<&str>) -> Result<Identity, UserError> {
    let g = match group {
        Some(name) => Group::from_name(name)
            .map_err(|source| UserError::Lookup {
                what: "group",
                name: name.into(),
                source,
            })?
            .ok_or_else(|| UserError::NoGroup(name.into()))?,
        None => match Group::from_gid(u.gid).ok().flatten() {
            Some(g) => g,
            // A primary group without a name still has its number.
            None => {
                return Ok(Identity {
                    group: u.gid.to_string(),
                    gid: u.gid,
                    user: u.name,
                    uid: u.uid,
                });
            }
        },
    };
    Ok(Identity {
        user: u.name,
        uid: u.uid,
        group: g.name,
        gid: g.gid,
    })
}

/// The control plane's side (as root): [`resolve`], after creating the default user when it is
/// missing. Where `useradd` is not there or fails, the workers run as [`FALLBACK_USER`].
pub fn ensure(settings: &WorkerSettings) -> Result<(Identity, Origin), UserError> {
    if settings.user != DEFAULT_USER || user(DEFAULT_USER)?.is_some() {
        return Ok((resolve(settings)?, Origin::Existing));
    }
    let origin = match create_system_user(DEFAULT_USER) {
        Ok(()) => Origin::Created,
        Err(why) => Origin::Fallback(why),
    };
    Ok((resolve(settings)?, origin))
}

/// `useradd --system --no-create-home --shell /usr/sbin/nologin NAME`. Err: why not.
fn create_system_user(name: &str) -> Result<(), String> {
    let out = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
        ])
        .arg(name)
        .output()
        .map_err(|e| format!("useradd: {e}"))?;
    // Exit 9: the name is taken, by a concurrent start: as good as made.
    if out.status.success() || out.status.code() == Some(9) {
        return Ok(());
    }
    Err(format!(
        "useradd: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(user: &str, group: Option<&str>) -> WorkerSettings {
        WorkerSettings {
            user: user.into(),
            group: group.map(Into::into),
            ..WorkerSettings::default()
        }
    }

    #[test]
    fn root_resolves_with_its_primary_group() {
        let id = resolve(&settings("root", None)).unwrap();
        assert_eq!((id.uid, id.gid), (Uid::from_raw(0), Gid::from_raw(0)));
    }

    #[test]
    fn an_explicit_group_wins() {
        let id = resolve(&settings("root", Some("nogroup"))).or_else(|_| {
            resolve(&settings("root", Some("nobody"))) // distributions name it either way
        });
        assert_ne!(id.unwrap().gid, Gid::from_raw(0));
    }

    #[test]
    fn a_missing_configured_user_or_group_is_an_error() {
        let e = resolve(&settings("weir-no-such-user-x", None)).unwrap_err();
        assert!(e.to_string().contains("no such user"), "{e}");
        let e = resolve(&settings("root", Some("weir-no-such-group-x"))).unwrap_err();
        assert!(e.to_string().contains("no such group"), "{e}");
    }
}
