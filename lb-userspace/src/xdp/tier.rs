//! The XDP side of a running daemon (`weir run --iface`): the loaded object, its attachment,
//! its pins, the SYN control and the VIPs in force — started once, its maps rewritten by a
//! reload (`super::reload`), and the interface followed while weir runs (`super::link_watch`):
//! a device made again under the interface's name gets the program again, and the VIPs named
//! `"interface"` follow the addresses the interface has now.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::{
    Dataplane, ResolvedVip, attach,
    link_watch::{self, Seen, Verdict},
    pins::PinDir,
    syn::SynControl,
    vips,
};
use crate::config::{Config, XdpModeSetting, syn::VethPeerSetting};

/// The note keys `weir stats`, the metrics and `weir status` read (`super::pins::read_note`).
pub const ATTACHED: &str = "xdp_attached";
pub const REATTACHED: &str = "xdp_reattached";
pub const MODE: &str = "xdp_mode";

/// How long after a failed attach to a new device the next try waits (a try that fails can
/// itself make the link event that would start the next).
const RETRY: Duration = Duration::from_secs(2);

pub struct XdpTier {
    pub iface: String,
    pub dataplane: Dataplane,
    /// `None` while the interface is gone (or a new device's attach failed).
    pub attachment: Option<attach::Attachment>,
    pub pins: PinDir,
    /// SYN modes, auto mode and the host sysctls (restored when dropped, after the detach).
    pub syn: SynControl,
    /// The VIPs in force (their ids key the counters and the SYN state: `super::reload`).
    pub vips: Vec<ResolvedVip>,
    /// How the program was attached at start, to attach it again the same way.
    mode: XdpModeSetting,
    replace: bool,
    veth_peer: VethPeerSetting,
    /// Times the program was attached to a device made again under the interface's name.
    reattached: u64,
    /// No new try before this, after a failed one.
    retry_after: Option<Instant>,
    /// The last failure said (a try failing the same way again is not said again).
    failed: Option<String>,
}

impl Drop for XdpTier {
    fn drop(&mut self) {
        if let Some(a) = self.attachment.take() {
            a.detach(&mut self.dataplane);
        }
    }
}

/// Loads the object, fills its maps, pins them and attaches the program to `iface`.
pub fn start(
    cfg: &Config,
    mode: XdpModeSetting,
    replace: bool,
    iface: &str,
) -> anyhow::Result<XdpTier> {
    if nix::net::if_::if_nametoindex(iface).is_err() {
        return Err(attach::AttachError::NoSuchInterface(iface.into()).into());
    }
    let mut dataplane = Dataplane::load()?;
    let addrs = attach::interface_addresses(iface)?;
    let vips = vips::resolve(&cfg.vip_specs(), &addrs);
    if vips.is_empty() {
        warn!(
            iface,
            "no VIPs: every packet passes untouched (configure [[vip]] or listeners)"
        );
    }
    for v in &vips {
        info!(vip = %v.name, id = v.id, "VIP");
    }
    dataplane.set_vips(&vips)?;
    dataplane.set_deny_list(&cfg.deny.prefixes())?;
    // SIOCGIFMTU answers for this network namespace (/sys/class/net for whoever mounted /sys).
    let mtu = Some(attach::mtu(iface)).filter(|m| *m > 0);
    let syn = SynControl::start(&mut dataplane, &cfg.syn, &vips, mtu, true)?;
    match dataplane.watch_sysctl_writes() {
        Ok(cgroup) => {
            info!(cgroup = %cgroup.display(), "sysctl writes that withdraw a SYN-ACK option are seen as they happen")
        }
        Err(e) => warn!(
            "sysctl writes are seen by the 10 ms watch only (the SYN-ACK options follow them within 10 ms): {e:#}"
        ),
    }
    let pins = PinDir::create(iface)?;
    dataplane.pin_maps(&pins.path)?;
    let mut tier = XdpTier {
        iface: iface.to_string(),
        dataplane,
        attachment: None,
        pins,
        syn,
        vips,
        mode,
        replace,
        veth_peer: cfg.syn.veth_peer,
        reattached: 0,
        retry_after: None,
        failed: None,
    };
    tier.attachment = Some(tier.attach()?);
    tier.write_note();
    Ok(tier)
}

impl XdpTier {
    fn attach(&mut self) -> anyhow::Result<attach::Attachment> {
        attach::attach_with_peer(
            &mut self.dataplane,
            &mut self.syn,
            &self.iface,
            self.mode,
            self.replace,
            self.veth_peer,
        )
    }

    /// The note `weir stats` reads beside the pins: the SYN control's and the attachment's.
    pub fn write_note(&self) {
        let mut note = format!(
            "{}{ATTACHED} {}\n{REATTACHED} {}\n",
            self.syn.note(),
            u8::from(self.attachment.is_some()),
            self.reattached
        );
        if let Some(a) = &self.attachment {
            note.push_str(&format!("{MODE} {}\n", a.mode.name()));
        }
        if let Err(e) = self.pins.note(&note) {
            warn!("writing the note for weir stats: {e}");
        }
    }

    /// The name the attached device has now (a rename keeps weir's program on it), else the
    /// configured one.
    fn device_name(&self) -> String {
        self.attachment
            .as_ref()
            .and_then(|a| index_name(a.index))
            .unwrap_or_else(|| self.iface.clone())
    }

    /// `cfg`'s VIPs (on the addresses the interface has now), deny-list and `[syn]` into the
    /// maps, in place (`super::reload::apply`).
    pub fn apply(&mut self, cfg: &Config) -> anyhow::Result<()> {
        let addrs = attach::interface_addresses(&self.device_name())?;
        self.apply_on(cfg, &addrs)
    }

    fn apply_on(&mut self, cfg: &Config, addrs: &[std::net::IpAddr]) -> anyhow::Result<()> {
        self.vips =
            super::reload::apply(&mut self.dataplane, &mut self.syn, addrs, &self.vips, cfg)?;
        Ok(())
    }

    /// The ifindex of the device the program is on, if it is on one.
    pub fn attached_index(&self) -> Option<u32> {
        self.attachment.as_ref().map(|a| a.index)
    }

    /// Whether the program is off the interface (then [`Self::follow`] is also worth calling
    /// on a timer: a failed attach is tried again without a new link event).
    pub fn detached(&self) -> bool {
        self.attachment.is_none()
    }

    /// After a link or address change (or, while detached, a timer): the program attached
    /// again to a device made anew under the interface's name, or let go of with the device;
    /// the VIPs rewritten when the interface's addresses changed them; the SYN-ACK's MSS from
    /// its MTU now. `cfg`: the generation in force.
    pub fn follow(&mut self, cfg: &Config) {
        let attached = self.attachment.as_ref().map(|a| a.index);
        let seen = Seen {
            attached,
            attached_exists: attached.is_some_and(|i| index_name(i).is_some()),
            by_name: nix::net::if_::if_nametoindex(self.iface.as_str()).ok(),
        };
        tracing::debug!(iface = %self.iface, ?seen, "a link or address change");
        match link_watch::judge(seen) {
            Verdict::Stay => {}
            Verdict::Gone => self.lose(),
            Verdict::Attach(index) => self.attach_again(index),
        }
        if self.attachment.is_some() {
            self.follow_addresses(cfg);
            let mtu = Some(attach::mtu(&self.device_name())).filter(|m| *m > 0);
            if let Err(e) = self.syn.set_mtu(&mut self.dataplane, mtu) {
                warn!(iface = %self.iface, "the SYN-ACK's MSS for a changed MTU: {e:#}");
            }
        }
    }

    fn lose(&mut self) {
        let Some(a) = self.attachment.take() else {
            return;
        };
        a.let_go(&mut self.dataplane);
        warn!(
            iface = %self.iface,
            "the interface is gone, and weir's XDP program with it: no VIP, deny-list or SYN \
             defence on it until an interface of that name is back (weir attaches to it then)"
        );
        self.write_note();
    }

    fn attach_again(&mut self, index: u32) {
        if self.attachment.is_some() {
            self.lose();
        }
        if self.retry_after.is_some_and(|t| Instant::now() < t) {
            return;
        }
        match self.attach() {
            Ok(a) => {
                info!(
                    iface = %self.iface, index, mode = a.mode.name(),
                    "the interface is back (a new device): weir's XDP program attached to it again"
                );
                self.attachment = Some(a);
                self.reattached += 1;
                self.retry_after = None;
                self.failed = None;
                self.write_note();
            }
            Err(e) => {
                let why = format!("{e:#}");
                if self.failed.as_ref() != Some(&why) {
                    warn!(
                        iface = %self.iface, index,
                        "the interface is back (a new device), but attaching weir's XDP program to it failed (tried again every {}s, said again when the reason changes): {why}",
                        RETRY.as_secs()
                    );
                }
                self.failed = Some(why);
                self.retry_after = Some(Instant::now() + RETRY);
            }
        }
    }

    /// The VIPs named `"interface"` on the addresses it has now, when they changed.
    fn follow_addresses(&mut self, cfg: &Config) {
        let addrs = match attach::interface_addresses(&self.device_name()) {
            Ok(a) => a,
            Err(e) => {
                warn!(iface = %self.iface, "reading the interface's addresses: {e}");
                return;
            }
        };
        let want = vips::resolve(&cfg.vip_specs(), &addrs);
        let key = |v: &ResolvedVip| (v.address, v.port, v.protocol.name());
        let mut now: Vec<_> = self.vips.iter().map(key).collect();
        let mut next: Vec<_> = want.iter().map(key).collect();
        now.sort();
        next.sort();
        if now == next {
            return;
        }
        match self.apply_on(cfg, &addrs) {
            Ok(()) => info!(
                iface = %self.iface,
                vips = self.vips.len(),
                "the interface's addresses changed: the VIPs follow them"
            ),
            Err(e) => warn!(
                iface = %self.iface,
                "the interface's addresses changed, but the VIPs could not follow: {e:#}"
            ),
        }
    }
}

/// The name of this namespace's device with ifindex `index` (`None`: there is none). Not
/// `nix::net::if_::if_indextoname`: nix 0.29's answers `Ok` for an index no device has.
fn index_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname(3) writes at most.
    let found = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if found.is_null() {
        return None;
    }
    // SAFETY: on success `buf` holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    name.to_str().ok().map(str::to_string)
}
