//! How a `weir run --iface IF` daemon's run-time files name its interface: by the interface's
//! name AND its network namespace, `<iface>:<netns inode>` (`eth0:4026531840`), the stem of its
//! lock, note, admin socket and health file in `/run/weir` and of its pin directory in
//! `/sys/fs/bpf/weir`.
//!
//! `eth0` exists in every container's namespace, and `/run` and `/sys/fs/bpf` are shared with
//! the host more often than not (the tests' labs, hostPath mounts). Named by the interface
//! alone, a daemon on another namespace's `eth0` was refused ("admin socket … another process
//! answers on it", or with `[admin] enabled = false` "another weir is already running on
//! `eth0`"), and `weir stats`/`weir status` run in a namespace without any daemon reported the
//! other namespace's. `:` never occurs in an interface name (the kernel's `dev_valid_name`
//! refuses it), so a stem names one interface of one namespace; a namespace's inode is reused
//! once it is gone, but its daemons' files are then stale (their locks free) and replaced like
//! any dead daemon's.
//!
//! A weir before this named them `<iface>` alone (`crate::xdp::pins::legacy_holder` finds such a daemon still running).

use std::os::unix::fs::MetadataExt as _;

use anyhow::Context as _;

const SEP: char = ':';

/// An interface of a network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceId {
    name: String,
    netns: u64,
}

impl IfaceId {
    /// `iface` of this process's network namespace.
    pub fn here(iface: &str) -> anyhow::Result<IfaceId> {
        Ok(IfaceId {
            name: iface.to_string(),
            netns: this_netns()?,
        })
    }

    /// `iface` of the network namespace whose inode is `netns` (a daemon another process
    /// started in a namespace of its own: the demo's, a test's).
    pub fn in_netns(iface: &str, netns: u64) -> IfaceId {
        IfaceId {
            name: iface.to_string(),
            netns,
        }
    }

    /// The id a file stem names, `None` for a stem of another form (a weir before this one's
    /// `<iface>`, `admin`, `sysctl-…`).
    pub fn parse(stem: &str) -> Option<IfaceId> {
        let (name, ns) = stem.rsplit_once(SEP)?;
        let all_digits = !ns.is_empty() && ns.bytes().all(|b| b.is_ascii_digit());
        if name.is_empty() || !all_digits {
            return None;
        }
        Some(IfaceId {
            name: unescape(name)?,
            netns: ns.parse().ok()?,
        })
    }

    /// The stem of its files: `<iface>:<netns inode>`, the name's `.` and `%` escaped.
    pub fn stem(&self) -> String {
        format!("{}{SEP}{}", escape(&self.name), self.netns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its network namespace's inode.
    pub fn netns(&self) -> u64 {
        self.netns
    }

    /// Whether it is an interface of this process's network namespace.
    pub fn is_here(&self) -> bool {
        this_netns().is_ok_and(|ns| ns == self.netns)
    }
}

/// The interface's name as a file name bpffs takes: bpffs refuses a `.` in any name (EPERM:
/// the kernel keeps dotted names for its own files), and a VLAN's interface is `eth0.100`, so
/// `.` is written `%2E` — and `%`, which an interface name may hold too, `%25`, so that two
/// names never share a stem. (Two replacements: a percent-encoding crate would escape more.)
fn escape(name: &str) -> String {
    name.replace('%', "%25").replace('.', "%2E")
}

/// [`escape`] undone; `None` for a `%` escape it never writes.
fn unescape(stem: &str) -> Option<String> {
    let mut out = String::with_capacity(stem.len());
    let mut rest = stem;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "25" => '%',
            "2E" => '.',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The inode of this process's network namespace.
pub fn this_netns() -> anyhow::Result<u64> {
    Ok(std::fs::metadata("/proc/self/ns/net")
        .context("reading /proc/self/ns/net")?
        .ino())
}

/// The inode of process `pid`'s network namespace; `None` when it cannot be seen (pid 0: a
/// process outside this pid namespace, as /proc/locks and `SO_PEERCRED` show one; a process
/// gone; no permission).
pub fn netns_of(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// Whether process `pid` (a lock's holder, a socket's peer) may be in this network namespace:
/// it is, or it cannot be told (then it is taken to be: refusing a start wrongly is the safe
/// side of refusing one rightly).
pub fn maybe_here(pid: i32) -> bool {
    match (netns_of(pid), this_netns()) {
        (Some(theirs), Ok(ours)) => theirs == ours,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stem_names_the_interface_and_its_namespace() {
        let id = IfaceId {
            name: "eth0".into(),
            netns: 4026531840,
        };
        assert_eq!(id.stem(), "eth0:4026531840");
        assert_eq!(IfaceId::parse(&id.stem()), Some(id));
        // The same name in another namespace is another interface.
        assert_ne!(
            IfaceId::parse("eth0:4026532000"),
            IfaceId::parse("eth0:4026531840")
        );
        // Names with dots and `@` (both allowed in interface names) keep them.
        assert_eq!(
            IfaceId::parse("a.b@c:7").map(|i| i.name().to_string()),
            Some("a.b@c".into())
        );
        for other in [
            "eth0",
            "admin",
            "eth0:",
            ":7",
            "eth0:x7",
            "sysctl-4026531840",
        ] {
            assert_eq!(IfaceId::parse(other), None, "{other}");
        }
    }

    /// bpffs refuses `.` in a name: a VLAN's interface (`eth0.100`) had no pin directory.
    #[test]
    fn a_stem_has_no_dot_and_gives_its_name_back() {
        for name in ["eth0.100", "a%2Eb", "a.b%c", "%", "x.", "%25.%2E"] {
            let id = IfaceId {
                name: name.into(),
                netns: 9,
            };
            let stem = id.stem();
            assert!(!stem.contains('.'), "{stem}");
            assert_eq!(IfaceId::parse(&stem), Some(id), "{stem}");
        }
        assert_eq!(
            IfaceId {
                name: "eth0.100".into(),
                netns: 9
            }
            .stem(),
            "eth0%2E100:9"
        );
        // Two names, two stems: `%` is escaped too.
        let stem = |n: &str| {
            IfaceId {
                name: n.into(),
                netns: 9,
            }
            .stem()
        };
        assert_ne!(stem("a.b"), stem("a%2Eb"));
        assert_eq!(
            IfaceId::parse("a%41b:9"),
            None,
            "an escape weir never writes"
        );
        assert_eq!(IfaceId::parse("a%2:9"), None);
    }

    #[test]
    fn this_process_is_here_and_pid_0_may_be() {
        let me = std::process::id() as i32;
        assert_eq!(netns_of(me), this_netns().ok());
        assert!(IfaceId::here("lo").unwrap().is_here());
        assert!(maybe_here(0), "an unknown holder is taken to be here");
        assert!(maybe_here(me));
    }
}
