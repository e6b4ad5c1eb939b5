//! Network-namespace labs: uniquely named namespaces, veth pairs, addresses, routes, sysctls,
//! XDP attachments and processes, all removed when the [`Lab`] is dropped — also when the test
//! panics — so lab tests run in parallel and a failed test leaves nothing behind.
//!
//! Setup goes through `ip` (iproute2); code in the current thread switches namespace with
//! `setns` through [`Ns::enter`]'s guard.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use weir_tests::lab::Lab;
//!
//! if !Lab::root_required() { return Ok(()); }
//! let lab = Lab::new()?;
//! let client = lab.add_ns("client")?;
//! let server = lab.add_ns("server")?;
//! let (c0, s0) = lab.veth(&client, &server)?;
//! c0.addr("10.77.0.1/24")?.addr("fd77::1/64")?;
//! s0.addr("10.77.0.2/24")?.tx_checksum_off()?;
//! // Replies to spoofed sources leave through a router namespace, not on-link:
//! lab.sink_gateway(&server, "gw", &[("10.78.0.1/30", "10.78.0.2/30")])?;
//! s0.attach_xdp_pass(weir_tests::lab::XdpMode::Native)?; // or weir's program, then track_xdp()
//!
//! let listener = server.in_ns(|| TcpListener::bind("10.77.0.2:8080"))??;
//! server.wait_tcp_listen(8080, std::time::Duration::from_secs(5))?;
//! let mut conn = lab.ns("client").in_ns(|| TcpStream::connect("10.77.0.2:8080"))??;
//! conn.write_all(b"hi")?;
//! let (mut accepted, _) = listener.accept()?;
//! let mut buf = [0; 2];
//! accepted.read_exact(&mut buf)?;
//! println!("{}", server.counters()?.get("TcpPassiveOpens"));
//! # Ok::<(), anyhow::Error>(())
//! ```

mod cmd;
mod counters;
mod flood;
mod ns;
mod process;
mod veth;
mod wire;
mod xdp;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use cmd::{DEFAULT_TIMEOUT, output, run};
pub use counters::Counters;
pub use flood::{Bounds, SynFlood};
pub use ns::{Ns, NsGuard};
pub use process::Proc;
pub use veth::{Gateway, Iface, XdpMode};
pub use wire::{Dir, Wire};

/// Everything a lab must undo, in the order it is undone.
#[derive(Default)]
pub(crate) struct State {
    /// short name → netns name.
    netns: BTreeMap<String, String>,
    /// Process (group) ids to kill.
    pids: Vec<i32>,
    /// BPF link fds (pass-through XDP programs) by (netns, interface): closing detaches.
    xdp_links: Vec<((Option<String>, String), OwnedFd)>,
    /// (netns, ifname) to run `ip link set dev X xdp off` on.
    xdp: Vec<(Option<String>, String)>,
    /// (netns, ifname) of one end of each veth: deleting it deletes the pair.
    links: Vec<(Option<String>, String)>,
    /// Pinned BPF paths to remove.
    pins: Vec<PathBuf>,
    /// Veth counter for names.
    veths: u32,
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

static LABS: AtomicU32 = AtomicU32::new(0);
/// `ip netns add` of the first namespace sets up the /run/netns mount; keep it serial.
static NETNS_ADD: Mutex<()> = Mutex::new(());

fn base36(mut n: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

/// A set of namespaces, links and processes that disappears on drop.
///
/// Names: the lab id is `wt` + base-36 pid + `x` + base-36 lab counter (e.g. `wt1a2bx0`);
/// namespaces are `<id>-<short name>`, automatically named veth ends `<id>v<n>a`/`b`, all
/// within the 15-byte interface-name limit.
pub struct Lab {
    id: String,
    state: Shared,
}

impl Lab {
    /// A new, empty lab. Fails when not root (see [`Lab::root_required`]).
    pub fn new() -> Result<Lab> {
        if !nix::unistd::geteuid().is_root() {
            bail!("a netns lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)");
        }
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let id = format!("wt{}x{}", base36(std::process::id()), base36(n));
        Ok(Lab {
            id,
            state: Shared::default(),
        })
    }

    /// Whether this process can run lab tests. When not root it prints why the test is
    /// skipped and returns false — except under CI (`CI` set), where it panics: CI runs as
    /// root, so a lab test there always runs. Use it as
    /// `if !Lab::root_required() { return; }`.
    pub fn root_required() -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        if std::env::var_os("CI").is_some() {
            panic!("lab tests need root, and CI must run them as root");
        }
        eprintln!(
            "SKIPPED: this test needs root to create network namespaces (run as root, as CI does)"
        );
        false
    }

    /// The lab id, the prefix of every name it creates.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Creates namespace `<id>-<name>` with `lo` up, IPv6 DAD off by default and bridge
    /// netfilter off (where the `br_netfilter` sysctls exist).
    pub fn add_ns(&self, name: &str) -> Result<Ns> {
        let full = format!("{}-{name}", self.id);
        {
            let _serial = NETNS_ADD.lock().unwrap_or_else(|p| p.into_inner());
            // The pid is ours, so a namespace of this name was left by a dead process.
            if Path::new("/run/netns").join(&full).exists() {
                cmd::ip_quiet(None, &["netns", "del", &full]);
            }
            cmd::ip(None, &["netns", "add", &full])?;
        }
        lock(&self.state)
            .netns
            .insert(name.to_string(), full.clone());
        let ns = Ns::new(Some(full), name.to_string(), self.state.clone());
        ns.ip(&["link", "set", "lo", "up"])?;
        for (k, v) in [
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.bridge.bridge-nf-call-iptables", "0"),
            ("net.bridge.bridge-nf-call-ip6tables", "0"),
            ("net.bridge.bridge-nf-call-arptables", "0"),
        ] {
            let _ = ns.sysctl(k, v);
        }
        Ok(ns)
    }

    /// The namespace added as `name`. Panics if there is none (a bug in the test).
    pub fn ns(&self, name: &str) -> Ns {
        let full = lock(&self.state).netns.get(name).cloned();
        match full {
            Some(f) => Ns::new(Some(f), name.to_string(), self.state.clone()),
            None => panic!("lab {}: no namespace {name:?}", self.id),
        }
    }

    /// The namespace the process started in (host side). Links created there are removed on
    /// drop; sysctls set there are not restored.
    pub fn root(&self) -> Ns {
        Ns::new(None, "root".into(), self.state.clone())
    }

    /// Creates a veth pair between `a` and `b` (either may be [`Lab::root`]) with unique
    /// names, both ends up.
    pub fn veth(&self, a: &Ns, b: &Ns) -> Result<(Iface, Iface)> {
        let n = {
            let mut s = lock(&self.state);
            s.veths += 1;
            s.veths - 1
        };
        let (na, nb) = (
            format!("{}v{}a", self.id, base36(n)),
            format!("{}v{}b", self.id, base36(n)),
        );
        self.veth_named(a, &na, b, &nb)
    }

    /// Like [`veth`](Self::veth) with chosen names (`eth0` in two namespaces is fine; a
    /// root-namespace name must not clash with the host's).
    pub fn veth_named(&self, a: &Ns, name_a: &str, b: &Ns, name_b: &str) -> Result<(Iface, Iface)> {
        for n in [name_a, name_b] {
            if n.len() > 15 {
                bail!("interface name {n:?} is longer than 15 bytes");
            }
        }
        // A root-namespace name of ours can only be a leftover of a dead process with our pid.
        for (ns, n) in [(a, name_a), (b, name_b)] {
            if ns.netns().is_none()
                && n.starts_with(&self.id)
                && Path::new("/sys/class/net").join(n).exists()
            {
                cmd::ip_quiet(None, &["link", "del", "dev", n]);
            }
        }
        let mut args = vec!["link", "add", name_a];
        if let Some(ns) = a.netns() {
            args.extend(["netns", ns]);
        }
        args.extend(["type", "veth", "peer", "name", name_b]);
        if let Some(ns) = b.netns() {
            args.extend(["netns", ns]);
        }
        cmd::ip(None, &args)?;
        // Deleting either end deletes both: prefer the root one, which outlives namespaces.
        let owner = if b.netns().is_none() {
            (None, name_b)
        } else {
            (a.netns().map(str::to_string), name_a)
        };
        lock(&self.state).links.push((owner.0, owner.1.to_string()));
        let (ia, ib) = (Iface::new(a.clone(), name_a), Iface::new(b.clone(), name_b));
        ia.up()?;
        ib.up()?;
        Ok((ia, ib))
    }

    /// Gives `ns` a default route to a new router namespace `name` whose forwarding is off,
    /// over a new veth. `addrs` are (address in `ns`, address in the router) CIDR pairs, one
    /// per family wanted. Replies to spoofed sources then resolve a single neighbour (the
    /// router) instead of one per source, which would overflow the machine-wide neighbour
    /// table; the router drops them.
    pub fn sink_gateway(&self, ns: &Ns, name: &str, addrs: &[(&str, &str)]) -> Result<Gateway> {
        let gw = self.add_ns(name)?;
        gw.sysctl("net.ipv4.ip_forward", "0")?;
        gw.sysctl("net.ipv6.conf.all.forwarding", "0")?;
        let (host_if, gw_if) = self.veth(ns, &gw)?;
        for (host, router) in addrs {
            host_if.addr(host)?;
            gw_if.addr(router)?;
            let via = router.split('/').next().unwrap_or(router);
            ns.default_route(via)?;
        }
        Ok(Gateway {
            ns: gw,
            host_if,
            gw_if,
        })
    }

    /// Removes `path` (a pinned map, program, link or directory under /sys/fs/bpf) on drop.
    pub fn track_pin(&self, path: impl Into<PathBuf>) {
        lock(&self.state).pins.push(path.into());
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut s = lock(&self.state);
        for pid in s.pids.drain(..) {
            process::kill_group(pid);
        }
        s.xdp_links.clear();
        for (ns, dev) in s.xdp.drain(..) {
            for mode in ["xdp", "xdpgeneric", "xdpdrv"] {
                cmd::ip_quiet(ns.as_deref(), &["link", "set", "dev", &dev, mode, "off"]);
            }
        }
        for (ns, dev) in s.links.drain(..) {
            cmd::ip_quiet(ns.as_deref(), &["link", "del", "dev", &dev]);
        }
        // weir names its per-namespace files by the namespace's inode (`admin/path.rs`,
        // `sysctl.rs`, `health/file.rs`). Removed while the namespaces still hold their inodes
        // (their daemons are killed above), so no new namespace can have one of them yet.
        let inodes: Vec<u64> = s
            .netns
            .values()
            .filter_map(|full| std::fs::metadata(Path::new("/run/netns").join(full)).ok())
            .map(|m| m.ino())
            .collect();
        remove_weir_files(&self.id, &inodes);
        for (_, full) in std::mem::take(&mut s.netns) {
            if !cmd::ip_quiet(None, &["netns", "del", &full]) {
                eprintln!("lab {}: could not delete netns {full}", self.id);
            }
        }
        for p in s.pins.drain(..) {
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

/// What weir leaves in `/run/weir` for the lab's namespaces (by their inodes) and its
/// interfaces (named `<lab id>v…`) when a test SIGKILLs it or it never reaches its cleanup:
/// admin sockets, health files, sysctl records, mutexes and holder files, per-interface sockets,
/// locks, notes and health files (`<iface>:<netns inode>.health.json`, whatever the interface's
/// name in a lab namespace), and the per-interface pin directories in `/sys/fs/bpf/weir`.
/// Called once the lab's processes are killed.
fn remove_weir_files(id: &str, inodes: &[u64]) {
    let iface = format!("{id}v");
    // `<iface>:<netns inode>` followed by nothing or a suffix (`.lock`, `.sock`, …).
    let of_lab_netns = |name: &str| {
        inodes.iter().any(|ino| {
            name.split_once(':').is_some_and(|(_, rest)| {
                let rest = rest.strip_prefix(&ino.to_string()).unwrap_or("x");
                rest.is_empty() || rest.starts_with('.')
            })
        })
    };
    if let Ok(pins) = std::fs::read_dir("/sys/fs/bpf/weir") {
        for e in pins.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&iface) || of_lab_netns(&name) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        // Left only when empty (another daemon's pins keep it).
        let _ = std::fs::remove_dir("/sys/fs/bpf/weir");
    }
    let Ok(dir) = std::fs::read_dir("/run/weir") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = name.starts_with(&iface)
            || of_lab_netns(name)
            || inodes.iter().any(|ino| {
                [
                    format!("admin-{ino}.sock"),
                    format!("health-{ino}.json"),
                    format!("sysctl-{ino}"),
                    format!("sysctl-{ino}.lock"),
                    format!("sysctl-{ino}.mutex"),
                    format!("sysctl-{ino}.tmp"),
                ]
                .iter()
                .any(|f| f == name)
                    // A daemon's holder file, `sysctl-<inode>.<pid>.hold`.
                    || name
                        .strip_prefix(&format!("sysctl-{ino}."))
                        .is_some_and(|r| r.ends_with(".hold"))
            });
        if ours {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Returns early from a `()` test unless it can run lab tests (see [`Lab::root_required`]).
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::lab::Lab::root_required() {
            return;
        }
    };
}

/// Polls `f` every 10 ms until it returns `Ok(true)` or `timeout` passes.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if f().with_context(|| format!("waiting for {what}"))? {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
