//! Run-time target sets: the targets in force are the file's targets with an overlay on top,
//! per group — targets registered at run time added, deregistered ones removed, and the targets
//! discovery found (#12) as a third source. Pure: no I/O, no clock.
//!
//! **Entry point.** The control plane holds one [`Overlay`] in `crate::reload::Generations`;
//! a change reaches it as a [`TargetChange`] through
//! `crate::reload::ReloadHandle::change_targets` (the admin API's register/deregister,
//! discovery's [`TargetChange::Discovered`]). A change that changes the targets in force makes
//! the next configuration generation, exactly as a reload does: validated, sent to every worker
//! (`ControlMsg::Config` with the overlay's [`Overlay::target_sets`], sticky, so a restarted
//! worker gets it too), given to the health checker (a new target is checked and gets traffic
//! once healthy; a removed one drains). A change that changes nothing (registering a target
//! already in force, deregistering one that is draining) is a success without a new generation.
//!
//! In force, per group: `((file ∪ discovered) − deregistered) ∪ registered`, the file's targets
//! first in file order, then the others in address order (`lb_l7::target_sets::apply` builds
//! the group from it, in the control plane and in every worker).
//!
//! **Reload** applies the file ([`Overlay::after_reload`]): registrations and deregistrations
//! made at run time are forgotten (HAProxy's runtime API does the same; weir never rewrites its
//! file), discovered targets stay for the groups the new file still has (discovery keeps them
//! current).
//!
//! The semantics are `aws elbv2 register-targets` / `deregister-targets`'s: registering a
//! target already registered succeeds and changes nothing; deregistering one that is draining
//! (deregistered, or gone from the file, and not done yet: the caller says which, from the
//! health view) succeeds and changes nothing too, so a retried deregistration neither fails nor
//! starts its drain again; deregistering one that is neither registered nor draining is
//! `InvalidTarget`; an unknown group is `TargetGroupNotFound`; a change names its targets with
//! their ports resolved (the group's port when none is given: the admin API does that) and is
//! applied whole or not at all.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
};

use lb_l7::{
    config::TargetGroup,
    target_sets::{self, SetTarget, TargetSets},
};

use crate::config::Config;

/// One change to the overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetChange {
    /// `register-targets`: these targets are in force from now on.
    Register {
        group: String,
        targets: Vec<SocketAddr>,
    },
    /// `deregister-targets`: these targets leave (and drain).
    Deregister {
        group: String,
        targets: Vec<SocketAddr>,
    },
    /// Discovery's whole answer for the group (replacing its previous one), each target with
    /// its weight and priority (SRV); an empty list removes every discovered target of the
    /// group.
    Discovered {
        group: String,
        targets: Vec<SetTarget>,
    },
}

impl TargetChange {
    pub fn group(&self) -> &str {
        match self {
            TargetChange::Register { group, .. }
            | TargetChange::Deregister { group, .. }
            | TargetChange::Discovered { group, .. } => group,
        }
    }
}

/// Why a change was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverlayError {
    /// ALB's `TargetGroupNotFound`.
    #[error("no target group named `{0}`")]
    TargetGroupNotFound(String),
    /// ALB's `InvalidTarget`.
    #[error("{0}")]
    InvalidTarget(String),
}

/// Where a target in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The configuration file.
    Config,
    /// Registered at run time (the admin API).
    Runtime,
    /// Found by discovery.
    Discovered,
}

impl Source {
    /// The admin API's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Runtime => "runtime",
            Source::Discovered => "discovered",
        }
    }
}

/// One group's changes over the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct GroupOverlay {
    registered: BTreeSet<SocketAddr>,
    deregistered: BTreeSet<SocketAddr>,
    discovered: BTreeMap<SocketAddr, SetTarget>,
}

impl GroupOverlay {
    fn is_empty(&self) -> bool {
        self.registered.is_empty() && self.deregistered.is_empty() && self.discovered.is_empty()
    }
}

/// The run-time changes over the file's targets, per group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    groups: BTreeMap<String, GroupOverlay>,
}

/// The file's targets of a group, as addresses, in file order.
fn file_targets(g: &TargetGroup) -> Vec<SocketAddr> {
    file_entries(g).into_iter().map(|t| t.addr).collect()
}

/// The file's targets of a group, with their weights, in file order.
fn file_entries(g: &TargetGroup) -> Vec<SetTarget> {
    g.target
        .iter()
        .filter_map(|t| {
            Some(SetTarget {
                addr: target_sets::address(g, t)?,
                weight: t.weight,
                priority: 0,
            })
        })
        .collect()
}

impl Overlay {
    /// Applies `change` to the overlay over `file` (the configuration file in force). Returns
    /// whether the targets in force changed; on an error nothing changed. `draining`: the
    /// group's targets that are draining now (a deregistration names them without error and
    /// leaves them as they are); only a deregistration reads it.
    pub fn change(
        &mut self,
        file: &Config,
        change: &TargetChange,
        draining: &BTreeSet<SocketAddr>,
    ) -> Result<bool, OverlayError> {
        let name = change.group();
        let group = file
            .l7
            .target_group(name)
            .ok_or_else(|| OverlayError::TargetGroupNotFound(name.to_string()))?;
        let before = self.in_force(group);
        let mut o = self.groups.get(name).cloned().unwrap_or_default();
        match change {
            TargetChange::Register { targets, .. } => {
                let file_or_found = self.base(group);
                for t in targets {
                    o.deregistered.remove(t);
                    if !file_or_found.contains(t) {
                        o.registered.insert(*t);
                    }
                }
            }
            TargetChange::Deregister { targets, .. } => {
                let registered = |t: &SocketAddr| before.iter().any(|b| b.addr == *t);
                if let Some(t) = targets
                    .iter()
                    .find(|t| !registered(t) && !draining.contains(t))
                {
                    return Err(OverlayError::InvalidTarget(format!(
                        "target {t} is not registered in target group {name}"
                    )));
                }
                let file_or_found = self.base(group);
                // A draining target is left alone: it is out of force already, and touching
                // nothing keeps its drain (and its deadline) the one it has.
                for t in targets.iter().filter(|t| registered(t)) {
                    o.registered.remove(t);
                    if file_or_found.contains(t) {
                        o.deregistered.insert(*t);
                    }
                }
            }
            TargetChange::Discovered { targets, .. } => {
                o.discovered = targets.iter().map(|t| (t.addr, *t)).collect();
            }
        }
        self.set(name, o);
        Ok(self.in_force(group) != before)
    }

    fn set(&mut self, name: &str, o: GroupOverlay) {
        if o.is_empty() {
            self.groups.remove(name);
        } else {
            self.groups.insert(name.to_string(), o);
        }
    }

    /// The file's targets and the discovered ones, before deregistrations and registrations.
    fn base(&self, g: &TargetGroup) -> Vec<SocketAddr> {
        let file = file_targets(g);
        let found = self.groups.get(&g.name).map(|o| &o.discovered);
        let extra: Vec<SocketAddr> = found
            .into_iter()
            .flat_map(|d| d.keys())
            .filter(|a| !file.contains(a))
            .copied()
            .collect();
        file.into_iter().chain(extra).collect()
    }

    /// The group's targets in force: the file's first (file order, their weights), then the
    /// others (address order): discovered ones with their weights and priorities, registered
    /// ones with weight 1 (a registered address discovery also found keeps discovery's).
    /// Registered and deregistered targets never overlap (each change removes the target from
    /// the other set).
    fn in_force(&self, g: &TargetGroup) -> Vec<SetTarget> {
        let file = file_entries(g);
        let Some(o) = self.groups.get(&g.name) else {
            return file;
        };
        let in_file = |a: &SocketAddr| file.iter().any(|f| f.addr == *a);
        let mut rest: BTreeMap<SocketAddr, SetTarget> = o
            .registered
            .iter()
            .map(|a| (*a, SetTarget::plain(*a)))
            .collect();
        rest.extend(
            o.discovered
                .iter()
                .filter(|(a, _)| !o.deregistered.contains(a))
                .map(|(a, t)| (*a, *t)),
        );
        rest.retain(|a, _| !in_file(a));
        file.into_iter()
            .filter(|t| !o.deregistered.contains(&t.addr))
            .chain(rest.into_values())
            .collect()
    }

    /// What the workers are sent: the targets in force of every group the overlay touches.
    pub fn target_sets(&self, file: &Config) -> TargetSets {
        self.groups
            .keys()
            .filter_map(|name| file.l7.target_group(name))
            .map(|g| (g.name.clone(), self.in_force(g)))
            .collect()
    }

    /// `file` with the overlay applied: the configuration in force.
    pub fn apply(&self, file: &Config) -> Config {
        let mut c = file.clone();
        c.l7 = target_sets::apply(&file.l7, &self.target_sets(file));
        c
    }

    /// Where target `addr` of `group` in force comes from; `None` when it is not in force.
    pub fn source(&self, file: &Config, group: &str, addr: SocketAddr) -> Option<Source> {
        let g = file.l7.target_group(group)?;
        if !self.in_force(g).iter().any(|t| t.addr == addr) {
            return None;
        }
        let o = self.groups.get(group);
        Some(if file_targets(g).contains(&addr) {
            Source::Config
        } else if o.is_some_and(|o| o.registered.contains(&addr)) {
            Source::Runtime
        } else {
            Source::Discovered
        })
    }

    /// The overlay after a reload to `file`: the file is applied, so run-time registrations
    /// and deregistrations are forgotten; discovered targets stay for the groups `file` has.
    pub fn after_reload(&self, file: &Config) -> Overlay {
        let mut next = Overlay::default();
        for (name, o) in &self.groups {
            if file.l7.target_group(name).is_some() && !o.discovered.is_empty() {
                next.groups.insert(
                    name.clone(),
                    GroupOverlay {
                        discovered: o.discovered.clone(),
                        ..GroupOverlay::default()
                    },
                );
            }
        }
        next
    }

    /// Nothing changed at run time.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests;
