//! A handle on one namespace of a lab: commands, `setns` guard, sysctls, routes, counters.

use std::ffi::OsStr;
use std::fs::File;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sched::{CloneFlags, setns};

use super::counters::Counters;
use super::process::Proc;
use super::veth::Iface;
use super::{Shared, cmd, wait_until};

/// A namespace of a [`Lab`](super::Lab) (or its root namespace). Cheap to clone; valid while
/// the lab lives.
#[derive(Clone)]
pub struct Ns {
    netns: Option<String>,
    short: String,
    pub(crate) state: Shared,
}

impl std::fmt::Debug for Ns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ns({})", self.netns.as_deref().unwrap_or("root"))
    }
}

/// The namespace the process started in, kept open to return to it.
fn original_netns() -> Result<&'static File> {
    static ORIG: OnceLock<File> = OnceLock::new();
    if let Some(f) = ORIG.get() {
        return Ok(f);
    }
    let f = File::open("/proc/self/ns/net").context("opening /proc/self/ns/net")?;
    Ok(ORIG.get_or_init(|| f))
}

impl Ns {
    pub(crate) fn new(netns: Option<String>, short: String, state: Shared) -> Ns {
        Ns {
            netns,
            short,
            state,
        }
    }

    /// The `ip netns` name (`wt…-client`), or `None` for the root namespace.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// The short name given to [`add_ns`](super::Lab::add_ns).
    pub fn short(&self) -> &str {
        &self.short
    }

    /// A `Command` running `program` in this namespace (`ip netns exec <ns> program`).
    /// Processes started from it are not tracked: prefer [`spawn`](Self::spawn) for
    /// long-running ones.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// Runs `argv` in this namespace to completion (bounded by
    /// [`DEFAULT_TIMEOUT`](super::DEFAULT_TIMEOUT)); fails unless it exits 0; returns stdout.
    pub fn exec(&self, argv: &[&str]) -> Result<String> {
        let (p, args) = argv.split_first().context("empty argv")?;
        cmd::run(self.command(p).args(args))
    }

    /// Runs a `sh -c` script in this namespace, checked; returns stdout.
    pub fn sh(&self, script: &str) -> Result<String> {
        self.exec(&["sh", "-c", script])
    }

    /// `ip -n <ns> args…`, checked; returns stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        cmd::ip(self.netns(), args)
    }

    /// Starts `argv` in this namespace, in its own process group, stdout discarded and stderr
    /// inherited. Killed (the whole group) when the [`Proc`] or the lab is dropped.
    pub fn spawn(&self, argv: &[&str]) -> Result<Proc> {
        let (p, args) = argv.split_first().context("empty argv")?;
        let mut c = self.command(p);
        c.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        self.spawn_command(c)
    }

    /// Starts a command built with [`command`](Self::command) (its stdio as configured), tracked
    /// like [`spawn`](Self::spawn).
    pub fn spawn_command(&self, c: Command) -> Result<Proc> {
        Proc::start(c, self.state.clone())
    }

    /// Moves the current thread into this namespace until the guard is dropped. Sockets made
    /// meanwhile stay in this namespace. The guard cannot leave the thread.
    pub fn enter(&self) -> Result<NsGuard> {
        let back =
            File::open("/proc/thread-self/ns/net").context("opening /proc/thread-self/ns/net")?;
        match &self.netns {
            Some(ns) => {
                let target = File::open(format!("/run/netns/{ns}"))
                    .with_context(|| format!("opening netns {ns}"))?;
                setns(&target, CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("setns into {ns}"))?;
            }
            None => setns(original_netns()?, CloneFlags::CLONE_NEWNET)
                .context("setns into the root netns")?,
        }
        Ok(NsGuard {
            back,
            _not_send: PhantomData,
        })
    }

    /// Runs `f` inside this namespace (see [`enter`](Self::enter)).
    pub fn in_ns<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let _g = self.enter()?;
        Ok(f())
    }

    /// Sets a sysctl of this namespace (`net.ipv4.tcp_syncookies`, …) by writing `/proc/sys`
    /// from inside it.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.in_ns(|| std::fs::write(&path, value))?
            .with_context(|| format!("sysctl {key}={value} in {self:?}"))
    }

    /// Reads a sysctl of this namespace.
    pub fn sysctl_get(&self, key: &str) -> Result<String> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let v = self
            .in_ns(|| std::fs::read_to_string(&path))?
            .with_context(|| format!("sysctl {key} in {self:?}"))?;
        Ok(v.trim().to_string())
    }

    /// Adds a route to `dest` (CIDR or `default`) via the gateway address `via`.
    pub fn route(&self, dest: &str, via: &str) -> Result<()> {
        let fam = if via.contains(':') { "-6" } else { "-4" };
        self.ip(&[fam, "route", "add", dest, "via", via])?;
        Ok(())
    }

    /// Adds an on-link route to `dest` through `dev`.
    pub fn route_dev(&self, dest: &str, dev: &str) -> Result<()> {
        let fam = if dest.contains(':') { "-6" } else { "-4" };
        self.ip(&[fam, "route", "add", dest, "dev", dev])?;
        Ok(())
    }

    /// Sets the default route (of `via`'s family) to `via`.
    pub fn default_route(&self, via: &str) -> Result<()> {
        let fam = if via.contains(':') { "-6" } else { "-4" };
        self.ip(&[fam, "route", "replace", "default", "via", via])?;
        Ok(())
    }

    /// A handle on an interface that already exists here (e.g. `lo`). Not removed on drop.
    pub fn iface(&self, name: &str) -> Iface {
        Iface::new(self.clone(), name)
    }

    /// Absolute SNMP / netstat counters of this namespace (`nstat -az` names).
    pub fn counters(&self) -> Result<Counters> {
        Ok(self.in_ns(Counters::read_current)??)
    }

    /// Waits until some TCP socket listens on `port` (IPv4 or IPv6) here, reading
    /// `/proc/net/tcp{,6}` so that nothing connects to it.
    pub fn wait_tcp_listen(&self, port: u16, timeout: Duration) -> Result<()> {
        wait_until(
            timeout,
            &format!("a TCP listener on port {port} in {self:?}"),
            || self.tcp_listening(port),
        )
    }

    /// Whether some TCP socket listens on `port` here.
    pub fn tcp_listening(&self, port: u16) -> Result<bool> {
        let want = format!(":{port:04X}");
        let tables = self.in_ns(|| {
            ["tcp", "tcp6"].map(|f| {
                std::fs::read_to_string(format!("/proc/thread-self/net/{f}")).unwrap_or_default()
            })
        })?;
        Ok(tables.iter().flat_map(|t| t.lines().skip(1)).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
        }))
    }

    /// The addresses configured on `dev` here (without prefix length).
    pub fn addrs(&self, dev: &str) -> Result<Vec<IpAddr>> {
        let out = self.ip(&["-o", "addr", "show", "dev", dev])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut w = l
                    .split_whitespace()
                    .skip_while(|w| *w != "inet" && *w != "inet6");
                w.next()?;
                w.next()?.split('/').next()?.parse().ok()
            })
            .collect())
    }
}

/// Returned by [`Ns::enter`]: puts the thread back into its previous namespace on drop.
#[must_use = "the thread leaves the namespace when the guard is dropped"]
pub struct NsGuard {
    back: File,
    _not_send: PhantomData<*const ()>,
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.back, CloneFlags::CLONE_NEWNET) {
            // Staying in the lab namespace would poison every later test on this thread.
            eprintln!("NsGuard: setns back failed: {e}; aborting");
            std::process::abort();
        }
    }
}
