//! XDP_TX on a veth, made to work or refused (issue #11, second defect).
//!
//! A veth hands an XDP_TX frame to its peer's XDP ring, which only a peer with NAPI has; and it
//! wakes that ring's NAPI only when the peer runs a native XDP program (the kernel's
//! `veth_xdp_flush`). A peer without one drops every frame (counted as the veth's
//! `rx_queue_N_xdp_tx_errors`); one with GRO on (NAPI, no program) keeps them in its ring
//! undelivered, counted as sent; one whose program runs in generic mode is not woken either.
//! Each way every SYN-ACK weir answers from XDP is lost, and the clients it answered never hear
//! back — worse than no weir. So before attaching natively to a veth, [`prepare`] finds the peer
//! (`link_index`, and its namespace by `link_netnsid`, see [`super::netns`]) and, unless it runs
//! a native program of its own, attaches weir's `weir_peer_pass` (it passes every frame) to it
//! as a BPF link, which goes away with weir's process, `kill -9` included. A peer weir cannot
//! reach (a namespace no process of ours can open) or cannot attach to (a generic-mode program
//! on it) refuses cookie mode on the interface, with what to do.
//!
//! While weir runs, [`TxWatch`] reads the interface's XDP_TX counters; the tier
//! (`super::tier`) looks at the peer again when some SYN-ACKs are dropped, and while cookies
//! are refused for it.

use std::{path::PathBuf, process::Command};

use aya::programs::{Xdp, XdpMode, xdp::XdpLinkId};
use tracing::{info, warn};

use super::{Dataplane, ethtool, netns};

/// The program attached to a veth's peer.
pub const PEER_PROGRAM: &str = "weir_peer_pass";

/// What [`prepare`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// Not a veth: XDP_TX goes out of the NIC.
    NotVeth,
    /// Generic XDP on the interface: XDP_TX frames go through the stack, which any peer takes.
    Generic,
    /// A veth whose peer receives XDP frames already (`how`: its own native XDP program).
    Ready { peer: String, how: String },
    /// weir attached its pass program to the peer (detached when weir exits).
    Attached { peer: String },
    /// The peer cannot be reached or prepared: cookie mode is refused on this interface.
    Refused { why: String },
    /// `[syn] veth_peer = "trust"`: not looked at.
    Trusted,
}

impl Peer {
    /// Why cookie mode must stay off, if it must.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            Peer::Refused { why } => Some(why),
            _ => None,
        }
    }

    /// What `weir stats` says of the peer (`None`: not a veth, or generic XDP).
    pub fn describe(&self) -> Option<String> {
        match self {
            Peer::NotVeth | Peer::Generic => None,
            Peer::Ready { peer, how } => Some(format!("{peer}, which {how}")),
            Peer::Attached { peer } => Some(format!("{peer}, with weir's pass program")),
            Peer::Refused { .. } => Some("refused (see the refusal)".into()),
            Peer::Trusted => Some("trusted, not looked at (veth_peer = \"trust\")".into()),
        }
    }
}

/// The peer's preparation: the outcome, and the link to detach at exit.
pub struct PeerLink {
    pub peer: Peer,
    link: Option<XdpLinkId>,
}

impl PeerLink {
    pub fn none(peer: Peer) -> PeerLink {
        PeerLink { peer, link: None }
    }

    /// Detaches weir's program from the peer, if it attached one (also done when the
    /// [`Dataplane`] is dropped, or by the kernel when weir's process dies).
    /// Said only when the peer is not `gone` with its veth (then nothing detaching answers is
    /// news).
    pub fn release(&mut self, dp: &mut Dataplane, gone: bool) {
        let Some(link) = self.link.take() else { return };
        match peer_program(dp).and_then(|p| p.detach(link).map_err(Into::into)) {
            _ if gone => {}
            Ok(()) => info!("XDP pass program detached from the veth peer"),
            Err(e) => warn!(error = %e, "detaching the veth peer's XDP pass program failed"),
        }
    }
}

fn peer_program(dp: &mut Dataplane) -> anyhow::Result<&mut Xdp> {
    let p: &mut Xdp = dp
        .ebpf
        .program_mut(PEER_PROGRAM)
        .ok_or_else(|| anyhow::anyhow!("the eBPF object has no program {PEER_PROGRAM}"))?
        .try_into()?;
    if p.fd().is_err() {
        p.load()?;
    }
    Ok(p)
}

/// Where a veth's peer is: its ifindex, and its namespace's id when it is not ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRef {
    pub ifindex: u32,
    pub netnsid: Option<i32>,
}

/// `iface`'s veth peer, `None` when `iface` is not a veth (`ip -d -j link show`: the rtnetlink
/// attributes IFLA_LINK and IFLA_LINK_NETNSID).
pub fn peer_of(iface: &str) -> anyhow::Result<Option<PeerRef>> {
    if ethtool::driver(iface).ok().as_deref() != Some("veth") {
        return Ok(None);
    }
    let out = Command::new("ip")
        .args(["-d", "-j", "link", "show", "dev", iface])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let link = &v[0];
    let ifindex = link["link_index"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("veth {iface} shows no peer (link_index)"))?;
    Ok(Some(PeerRef {
        ifindex: ifindex as u32,
        netnsid: link["link_netnsid"].as_i64().map(|n| n as i32),
    }))
}

/// Makes XDP_TX on `iface` (a veth, native mode) reach its peer, or says why it cannot.
pub fn prepare(dp: &mut Dataplane, iface: &str) -> PeerLink {
    match try_prepare(dp, iface) {
        Ok(p) => p,
        Err(e) => PeerLink::none(Peer::Refused {
            why: format!("{e:#}"),
        }),
    }
}

fn try_prepare(dp: &mut Dataplane, iface: &str) -> anyhow::Result<PeerLink> {
    let Some(peer) = peer_of(iface)? else {
        return Ok(PeerLink::none(Peer::NotVeth));
    };
    let own_index = nix::net::if_::if_nametoindex(iface)?;
    let ns_path: Option<PathBuf> = match peer.netnsid {
        None => None,
        Some(id) => Some(netns::find(id).ok_or_else(|| {
            anyhow::anyhow!(
                "the peer of veth {iface} (ifindex {}) is in another network namespace (id {id}) \
                 that weir cannot open (not under /run/netns, and no process of this host's \
                 /proc is in it)",
                peer.ifindex
            )
        })?),
    };
    let prog = peer_program(dp)?;
    let mut work = move || -> anyhow::Result<(Peer, Option<XdpLinkId>)> {
        look_and_attach(prog, peer.ifindex, own_index)
    };
    let (peer, link) = match &ns_path {
        None => work()?,
        Some(path) => netns::run_in(path, work)??,
    };
    Ok(PeerLink { peer, link })
}

/// In the peer's namespace: checks it is our peer, then leaves it alone when it receives XDP
/// frames already, else attaches the pass program.
fn look_and_attach(
    prog: &mut Xdp,
    ifindex: u32,
    own_index: u32,
) -> anyhow::Result<(Peer, Option<XdpLinkId>)> {
    let name = nix::net::if_::if_indextoname(ifindex)?
        .into_string()
        .map_err(|_| anyhow::anyhow!("non-UTF-8 interface name"))?;
    let back = ethtool::stats(&name)?
        .into_iter()
        .find(|(k, _)| k == "peer_ifindex")
        .map(|(_, v)| v);
    anyhow::ensure!(
        ethtool::driver(&name)? == "veth" && back == Some(u64::from(own_index)),
        "interface {name} (ifindex {ifindex}) in the peer's namespace is not this veth's peer"
    );
    let programs = super::attach::programs_on(&name);
    if let Some(native) = programs.iter().find(|p| p.native) {
        return Ok((
            Peer::Ready {
                peer: name,
                how: format!("has an XDP program ({})", native.described),
            },
            None,
        ));
    }
    // A generic-mode program gives the peer no XDP ring to take frames on, and the kernel
    // attaches no native program beside it.
    if let Some(generic) = programs.first() {
        anyhow::bail!(
            "its peer {name} runs an XDP program that is not in native mode ({}), which takes \
             no XDP_TX frames from the veth, and no native program can be attached beside it",
            generic.described
        );
    }
    let link = prog
        .attach_to_if_index(ifindex, XdpMode::Driver)
        .map_err(|e| anyhow::anyhow!("attaching {PEER_PROGRAM} to the peer {name}: {e}"))?;
    Ok((Peer::Attached { peer: name }, Some(link)))
}

/// The message for a refused peer: what happened and what to do.
pub fn refusal_message(iface: &str, why: &str) -> String {
    format!(
        "SYN cookies refused on veth {iface}: {why}. XDP_TX frames (weir's SYN-ACKs) reach a \
         veth's peer only when the peer runs a native-mode XDP program, so cookies here would \
         drop every handshake they answer; SYNs go to the kernel instead. weir looks at the \
         peer again (every few seconds, then less often) and allows cookies once it takes \
         XDP_TX frames: give it a native XDP program (`ip link set dev PEER xdpdrv obj …`), or \
         leave it none for weir's own pass program. Where weir cannot see the peer's namespace, \
         give it one and set `[syn] veth_peer = \"trust\"`"
    )
}

/// The XDP_TX counters of an interface, as deltas between samples.
pub struct TxWatch {
    iface: String,
    last: (u64, u64),
}

impl TxWatch {
    /// A watch on `iface`, `None` when its driver reports no XDP_TX counters.
    pub fn new(iface: &str) -> Option<TxWatch> {
        let now = tx_counters(iface)?;
        Some(TxWatch {
            iface: iface.to_string(),
            last: now,
        })
    }

    /// (frames sent, frames dropped) by XDP_TX since the last sample.
    pub fn sample(&mut self) -> Option<(u64, u64)> {
        let now = tx_counters(&self.iface)?;
        let d = (
            now.0.saturating_sub(self.last.0),
            now.1.saturating_sub(self.last.1),
        );
        self.last = now;
        Some(d)
    }
}

/// (sent, errors) of XDP_TX over the queues: veth's `rx_queue_N_xdp_tx` and
/// `rx_queue_N_xdp_tx_errors`; other drivers' `…xdp_tx` / `…xdp_tx_err…` likewise.
fn tx_counters(iface: &str) -> Option<(u64, u64)> {
    let stats = ethtool::stats(iface).ok()?;
    let sum = |f: &dyn Fn(&str) -> bool| -> u64 {
        stats.iter().filter(|(k, _)| f(k)).map(|(_, v)| *v).sum()
    };
    let errors_named = stats.iter().any(|(k, _)| k.contains("xdp_tx_err"));
    errors_named.then(|| {
        (
            sum(&|k| k.ends_with("xdp_tx")),
            sum(&|k| k.contains("xdp_tx_err")),
        )
    })
}

/// Whether a tick's XDP_TX counters say SYN-ACKs are being lost: at least 64 dropped and at
/// least half of all XDP_TX frames. (A peer's ring overflowing now and then under a flood drops
/// a few percent; a peer without NAPI drops all.)
pub fn losing(sent: u64, errors: u64) -> bool {
    errors >= 64 && errors.saturating_mul(2) >= sent.saturating_add(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losing_needs_many_and_most() {
        assert!(!losing(0, 10));
        assert!(losing(0, 64));
        assert!(losing(100, 100));
        assert!(!losing(10_000, 500));
        assert!(!losing(0, 0));
    }

    #[test]
    fn stats_describe_the_peer() {
        let ready = Peer::Ready {
            peer: "p0".into(),
            how: "has an XDP program (id 3 name x)".into(),
        };
        assert_eq!(
            ready.describe().as_deref(),
            Some("p0, which has an XDP program (id 3 name x)")
        );
        let ours = Peer::Attached { peer: "p0".into() };
        assert_eq!(
            ours.describe().as_deref(),
            Some("p0, with weir's pass program")
        );
        assert_eq!(Peer::NotVeth.describe(), None);
        assert_eq!(Peer::Generic.describe(), None);
    }

    #[test]
    fn the_refusal_says_what_to_do() {
        let m = refusal_message("eth9", "peer unreachable");
        assert!(m.contains("eth9") && m.contains("peer unreachable"));
        assert!(m.contains("veth_peer = \"trust\"") && m.contains("xdpdrv"));
    }
}
