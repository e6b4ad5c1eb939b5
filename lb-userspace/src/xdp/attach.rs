//! Attaching the XDP program to an interface, with the checks an operator needs to hear about
//! before anything changes: the interface exists, nobody else's XDP program is on it, and, for
//! drivers whose native XDP limits are documented (AWS ENA), the MTU and queue count fit before
//! anything is attached ([`native_preflight`]); for the rest a failed native attach names the MTU.
//!
//! The attachment is a BPF link where the kernel has them, so it also goes away if weir is
//! killed; [`Attachment`] detaches explicitly on drop for every other exit.
//!
//! On a veth, [`attach_with_peer`] first makes sure the peer can receive the SYN-ACKs weir sends
//! with XDP_TX (`super::veth`), or refuses cookie mode on the interface.

use std::{net::IpAddr, process::Command};

use aya::programs::{XdpMode, xdp::XdpLinkId};
use tracing::{error, info, warn};

use super::{Dataplane, ethtool, syn::SynControl, veth};
use crate::config::{XdpModeSetting, syn::VethPeerSetting};

/// Largest MTU native XDP takes on drivers without multi-buffer XDP, 4 KiB pages (AWS ENA; veth
/// and most others are close: one page minus headroom and skb_shared_info).
pub const NATIVE_XDP_MTU_HINT: u32 = 3498;

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("interface `{0}` does not exist (`ip link show` lists the interfaces)")]
    NoSuchInterface(String),
    #[error(
        "interface `{iface}` already has an XDP program attached ({existing}); weir does not \
         replace it unless run with --replace"
    )]
    Occupied { iface: String, existing: String },
    #[error(
        "could not remove the XDP program already on `{iface}` ({existing}): it is held through a \
         BPF link by another process; stop that process first"
    )]
    CannotReplace { iface: String, existing: String },
    #[error(
        "native XDP attach to `{iface}` failed. The interface MTU is {mtu}; drivers without \
         multi-buffer XDP take at most about {NATIVE_XDP_MTU_HINT} (AWS ENA: 3498 with 4 KiB \
         pages; lower it with `ip link set dev {iface} mtu 3498`), and some drivers have no \
         native XDP at all (try --xdp-mode generic)"
    )]
    Native {
        iface: String,
        mtu: u32,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("native XDP on `{iface}`: {problem}")]
    Preflight { iface: String, problem: Preflight },
    #[error("generic XDP attach to `{iface}` failed")]
    Generic {
        iface: String,
        #[source]
        source: aya::programs::ProgramError,
    },
}

/// Why a driver cannot run weir's program natively as the interface is set up, known before
/// attaching (the program is not multi-buffer aware: a frame must fit one page).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Preflight {
    #[error(
        "the {driver} driver takes native XDP only up to MTU {limit}, and the MTU is {mtu}: lower \
         it first (`ip link set dev IFACE mtu {limit}`; on AWS set the instance's MTU the same way)"
    )]
    Mtu {
        driver: String,
        mtu: u32,
        limit: u32,
    },
    #[error(
        "the ena driver needs half its queues free for XDP_TX (one TX queue per RX queue): \
         {current} of {max} combined queues are in use; use at most {half} (`ethtool -L IFACE \
         combined {half}`)"
    )]
    EnaQueues { current: u32, max: u32, half: u32 },
}

/// What `driver` says about running weir natively with this MTU and these queues, where its
/// limits are documented: AWS ENA takes XDP with MTU ≤ 3498 and at most half its combined
/// queues in use (the other half carries XDP_TX). Other drivers are tried, and a failure names
/// the MTU ([`AttachError::Native`]).
pub fn native_preflight(
    driver: &str,
    mtu: u32,
    channels: Option<ethtool::Channels>,
) -> Option<Preflight> {
    if driver != "ena" {
        return None;
    }
    if mtu > NATIVE_XDP_MTU_HINT {
        return Some(Preflight::Mtu {
            driver: driver.into(),
            mtu,
            limit: NATIVE_XDP_MTU_HINT,
        });
    }
    let c = channels?;
    let half = c.max_combined / 2;
    (c.max_combined > 0 && c.combined_count > half).then_some(Preflight::EnaQueues {
        current: c.combined_count,
        max: c.max_combined,
        half,
    })
}

fn preflight(iface: &str) -> Option<Preflight> {
    let driver = ethtool::driver(iface).ok()?;
    native_preflight(&driver, mtu(iface), ethtool::channels(iface).ok())
}

/// How the program ended up attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Generic,
}

impl AttachedMode {
    pub fn name(self) -> &'static str {
        match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        }
    }
}

/// The program attached to one interface. Dropping it detaches.
pub struct Attachment {
    pub iface: String,
    /// The device the program is on (a device made again under the same name has another).
    pub index: u32,
    pub mode: AttachedMode,
    link: Option<XdpLinkId>,
    /// What was done about a veth's peer (detached after weir's program).
    pub peer: Option<veth::PeerLink>,
}

impl Attachment {
    /// Detaches now (also done on drop).
    pub fn detach(self, dp: &mut Dataplane) {
        self.release(dp, false);
    }

    /// Lets go of the links of a device that is gone (`super::tier`): the kernel took the
    /// program off with the device, so what detaching says is not news.
    pub fn let_go(self, dp: &mut Dataplane) {
        self.release(dp, true);
    }

    fn release(mut self, dp: &mut Dataplane, gone: bool) {
        if let Some(link) = self.link.take() {
            match dp.program().detach(link) {
                _ if gone => {}
                Err(e) => warn!(iface = %self.iface, error = %e, "detaching XDP failed"),
                Ok(()) => info!(iface = %self.iface, "XDP detached"),
            }
        }
        if let Some(mut p) = self.peer.take() {
            p.release(dp, gone);
        }
    }
}

/// [`attach`], preceded on a veth in native mode by the peer's preparation
/// ([`veth::prepare`], or nothing with `veth_peer = "trust"`): when the peer cannot receive
/// XDP_TX frames, cookies are refused on the interface (`syn`) before weir's program runs
/// (undone, with the preparation, when `auto` ends in generic mode). The interface's XDP_TX
/// counters are then watched by `syn`'s ticks.
pub fn attach_with_peer(
    dp: &mut Dataplane,
    syn: &mut SynControl,
    iface: &str,
    mode: XdpModeSetting,
    replace: bool,
    veth_peer: VethPeerSetting,
) -> anyhow::Result<Attachment> {
    let mut peer = match (mode, veth_peer) {
        // Generic XDP sends XDP_TX frames through the stack: any peer receives them.
        (XdpModeSetting::Generic, _) => veth::PeerLink::none(veth::Peer::Generic),
        (_, VethPeerSetting::Trust) => veth::PeerLink::none(veth::Peer::Trusted),
        (_, VethPeerSetting::Attach) => veth::prepare(dp, iface),
    };
    match &peer.peer {
        veth::Peer::NotVeth | veth::Peer::Generic | veth::Peer::Trusted => {}
        veth::Peer::Ready { peer, how } => info!(iface, peer, how, "veth peer receives XDP_TX"),
        veth::Peer::Attached { peer } => info!(
            iface,
            peer, "veth peer had no native XDP program: attached weir's pass program to it"
        ),
        // Said once the attach's mode is known (generic XDP needs nothing of the peer).
        veth::Peer::Refused { why } => {
            syn.refuse_cookies_quietly(dp, veth::refusal_message(iface, why))?
        }
    }
    let mut a = attach(dp, iface, mode, replace)?;
    if a.mode == AttachedMode::Generic && !matches!(peer.peer, veth::Peer::Generic) {
        // `auto` fell back to generic XDP (an MTU too large for native, a driver without it):
        // its XDP_TX frames go through the stack, and the peer was prepared, or refused, for
        // nothing.
        if peer.peer.refusal().is_some() {
            syn.clear_refusal(dp)?;
            info!(
                iface,
                "generic XDP: SYN cookies need nothing of the veth peer"
            );
        }
        peer.release(dp, false);
        peer = veth::PeerLink::none(veth::Peer::Generic);
    } else if let Some(why) = peer.peer.refusal() {
        error!("{}", veth::refusal_message(iface, why));
    }
    a.peer = Some(peer);
    if let Some(w) = veth::TxWatch::new(iface) {
        syn.watch_xdp_tx(w);
    }
    Ok(a)
}

/// Checks `iface` and attaches the program to it.
pub fn attach(
    dp: &mut Dataplane,
    iface: &str,
    mode: XdpModeSetting,
    replace: bool,
) -> Result<Attachment, AttachError> {
    let index = nix::net::if_::if_nametoindex(iface)
        .map_err(|_| AttachError::NoSuchInterface(iface.to_string()))?;
    if let Some(existing) = existing_program(iface) {
        if !replace {
            return Err(AttachError::Occupied {
                iface: iface.into(),
                existing,
            });
        }
        warn!(iface, %existing, "--replace: removing the XDP program already attached");
        for kind in ["xdp", "xdpgeneric", "xdpdrv"] {
            let _ = Command::new("ip")
                .args(["link", "set", "dev", iface, kind, "off"])
                .output();
        }
        if let Some(existing) = existing_program(iface) {
            return Err(AttachError::CannotReplace {
                iface: iface.into(),
                existing,
            });
        }
    }
    let problem = match mode {
        XdpModeSetting::Generic => None,
        _ => preflight(iface),
    };
    let mode = match (mode, problem) {
        (XdpModeSetting::Native, Some(problem)) => {
            return Err(AttachError::Preflight {
                iface: iface.into(),
                problem,
            });
        }
        (XdpModeSetting::Auto, Some(problem)) => {
            warn!(iface, %problem, "native XDP not possible as the interface is set up; using generic XDP (slower: runs after the kernel has built an skb)");
            XdpModeSetting::Generic
        }
        (mode, _) => mode,
    };
    let (link, mode) = match mode {
        XdpModeSetting::Native => (
            prog_attach(dp, index, XdpMode::Driver).map_err(|source| AttachError::Native {
                iface: iface.into(),
                mtu: mtu(iface),
                source,
            })?,
            AttachedMode::Native,
        ),
        XdpModeSetting::Generic => (
            prog_attach(dp, index, XdpMode::Skb).map_err(|source| AttachError::Generic {
                iface: iface.into(),
                source,
            })?,
            AttachedMode::Generic,
        ),
        XdpModeSetting::Auto => match prog_attach(dp, index, XdpMode::Driver) {
            Ok(l) => (l, AttachedMode::Native),
            Err(e) => {
                warn!(
                    iface, error = %e, mtu = mtu(iface),
                    "native XDP unavailable; falling back to generic XDP (slower: runs after the \
                     kernel has built an skb)"
                );
                (
                    prog_attach(dp, index, XdpMode::Skb).map_err(|source| {
                        AttachError::Generic {
                            iface: iface.into(),
                            source,
                        }
                    })?,
                    AttachedMode::Generic,
                )
            }
        },
    };
    info!(iface, mode = mode.name(), "XDP attached");
    Ok(Attachment {
        iface: iface.to_string(),
        index,
        mode,
        link: Some(link),
        peer: None,
    })
}

fn prog_attach(
    dp: &mut Dataplane,
    index: u32,
    mode: XdpMode,
) -> Result<XdpLinkId, aya::programs::ProgramError> {
    dp.program().attach_to_if_index(index, mode)
}

/// `iface`'s MTU, 0 if unknown. Asked of the kernel with SIOCGIFMTU on a socket, which answers
/// for the caller's network namespace (/sys/class/net answers for whoever mounted /sys).
pub fn mtu(iface: &str) -> u32 {
    let name = iface.as_bytes();
    if name.len() >= libc::IFNAMSIZ {
        return 0;
    }
    // SAFETY: an ifreq zeroed then filled with a NUL-terminated name; the ioctl writes ifru_mtu.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return 0;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(name) {
            *dst = *src as libc::c_char;
        }
        let rc = libc::ioctl(fd, libc::SIOCGIFMTU, &mut req);
        libc::close(fd);
        if rc < 0 {
            0
        } else {
            req.ifr_ifru.ifru_mtu as u32
        }
    }
}

/// A description of the XDP programs attached to `iface`, if any (`ip -d -j link show`: the
/// rtnetlink query without a netlink client of our own).
pub fn existing_program(iface: &str) -> Option<String> {
    let described: Vec<String> = programs_on(iface)
        .into_iter()
        .map(|p| p.described)
        .collect();
    (!described.is_empty()).then(|| described.join(", "))
}

/// One XDP program on an interface, as `ip -d -j link show` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnInterface {
    /// Attached in the driver (native mode), not generic (skb) or offloaded.
    pub native: bool,
    /// `id N name NAME`, and the mode when it is not native.
    pub described: String,
}

/// The XDP programs attached to `iface` (none when `ip` cannot show it).
pub fn programs_on(iface: &str) -> Vec<OnInterface> {
    Command::new("ip")
        .args(["-d", "-j", "link", "show", "dev", iface])
        .output()
        .ok()
        .and_then(|out| serde_json::from_slice(&out.stdout).ok())
        .map_or_else(Vec::new, |v| programs_in(&v))
}

/// [`programs_on`] from `ip -d -j link show`'s answer. Its `xdp` object has a `mode` (1 driver,
/// 2 generic, 3 offloaded, 4 several) and `prog`, or an `attached` list of both per program.
fn programs_in(shown: &serde_json::Value) -> Vec<OnInterface> {
    let Some(xdp) = shown.get(0).and_then(|l| l.get("xdp")) else {
        return Vec::new();
    };
    let entries: Vec<&serde_json::Value> = match xdp.get("attached") {
        Some(serde_json::Value::Array(a)) => a.iter().collect(),
        _ => vec![xdp],
    };
    entries
        .into_iter()
        .filter_map(|e| {
            let p = e.get("prog")?;
            let mode = e.get("mode").and_then(serde_json::Value::as_u64);
            let mut described = format!(
                "id {} name {}",
                p.get("id").map_or("?".into(), |x| x.to_string()),
                p.get("name").and_then(|n| n.as_str()).unwrap_or("?")
            );
            match mode {
                Some(1) => {}
                Some(2) => described.push_str(", generic mode"),
                Some(3) => described.push_str(", offloaded"),
                _ => described.push_str(", mode unknown"),
            }
            Some(OnInterface {
                native: mode == Some(1),
                described,
            })
        })
        .collect()
}

/// The IPv4 and IPv6 addresses configured on `iface` (link-local IPv6 left out).
pub fn interface_addresses(iface: &str) -> anyhow::Result<Vec<IpAddr>> {
    addresses(Some(iface))
}

/// The IPv4 and IPv6 addresses of every interface of the network namespace (link-local IPv6
/// left out).
pub fn local_addresses() -> anyhow::Result<Vec<IpAddr>> {
    addresses(None)
}

fn addresses(iface: Option<&str>) -> anyhow::Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs()? {
        if iface.is_some_and(|i| ifa.interface_name != i) {
            continue;
        }
        let Some(addr) = ifa.address else { continue };
        if let Some(v4) = addr.as_sockaddr_in() {
            out.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            let ip = v6.ip();
            if ip.segments()[0] & 0xffc0 != 0xfe80 {
                out.push(IpAddr::V6(ip));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethtool::Channels;

    #[test]
    fn programs_on_an_interface_say_their_mode() {
        let one =
            |mode: u8, id: u32| serde_json::json!({"mode": mode, "prog": {"id": id, "name": "p"}});
        let generic = serde_json::json!([{"ifname": "v", "xdp": one(2, 7)}]);
        assert_eq!(
            programs_in(&generic),
            vec![OnInterface {
                native: false,
                described: "id 7 name p, generic mode".into()
            }]
        );
        let mut listed = one(1, 8);
        listed["attached"] = serde_json::json!([one(1, 8)]);
        let native = serde_json::json!([{ "xdp": listed }]);
        assert_eq!(
            programs_in(&native),
            vec![OnInterface {
                native: true,
                described: "id 8 name p".into()
            }]
        );
        let several = serde_json::json!([{"xdp": {"mode": 4, "attached": [one(1, 1), one(2, 2)]}}]);
        let natives: Vec<bool> = programs_in(&several).iter().map(|p| p.native).collect();
        assert_eq!(natives, vec![true, false]);
        assert!(programs_in(&serde_json::json!([{"ifname": "v"}])).is_empty());
        assert!(programs_in(&serde_json::json!([])).is_empty());
    }

    #[test]
    fn ena_is_checked_before_attaching() {
        // AWS's limits: MTU ≤ 3498, at most half the combined queues in use.
        assert_eq!(
            native_preflight("ena", 3498, Some(Channels::combined(8, 4))),
            None
        );
        let mtu = native_preflight("ena", 9001, Some(Channels::combined(8, 4))).unwrap();
        assert!(matches!(
            mtu,
            Preflight::Mtu {
                mtu: 9001,
                limit: 3498,
                ..
            }
        ));
        assert!(mtu.to_string().contains("mtu 3498"), "{mtu}");
        let queues = native_preflight("ena", 1500, Some(Channels::combined(8, 8))).unwrap();
        assert_eq!(
            queues,
            Preflight::EnaQueues {
                current: 8,
                max: 8,
                half: 4
            }
        );
        assert!(queues.to_string().contains("combined 4"), "{queues}");
        // The queue counts unknown: only the MTU is checked.
        assert_eq!(native_preflight("ena", 1500, None), None);
    }

    #[test]
    fn other_drivers_are_tried() {
        assert_eq!(native_preflight("veth", 9000, None), None);
        assert_eq!(
            native_preflight("mlx5_core", 1500, Some(Channels::combined(8, 8))),
            None
        );
    }
}
