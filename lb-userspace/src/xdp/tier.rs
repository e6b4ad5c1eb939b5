//! The XDP side of a running daemon (`weir run --iface`): the loaded object, its attachment,
//! its pins, the SYN control and the VIPs in force — started once, its maps rewritten by a
//! reload (`super::reload`), and the interface followed while weir runs (`super::link_watch`):
//! a device made again under the interface's name gets the program again, and the VIPs named
//! `"interface"` follow the addresses the interface has now.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::{
    Dataplane, ResolvedVip,
    attach::{self, AttachedMode},
    link_watch::{self, Seen, Verdict},
    pins::PinDir,
    syn::SynControl,
    veth::{self, Peer},
    vips,
};
use crate::config::{Config, XdpModeSetting, syn::VethPeerSetting};

/// The note keys `weir stats`, the metrics and `weir status` read (`super::pins::read_note`).
pub const ATTACHED: &str = "xdp_attached";
pub const REATTACHED: &str = "xdp_reattached";
/// Times SYN cookies were tried again after a refusal for dropped SYN-ACKs (every trial since
/// the start: [`LookSchedule`]'s own count starts again with each refusal).
pub const TRIALS: &str = "syn_cookie_trials";
pub const MODE: &str = "xdp_mode";
pub const VETH_PEER: &str = "veth_peer";

/// How long after a failed attach to a new device the next try waits (a try that fails can
/// itself make the link event that would start the next).
const RETRY: Duration = Duration::from_secs(2);

/// At most one look at the veth peer in this time while the XDP_TX counters show SYN-ACKs
/// dropped (a flood drops some at every tick).
const PEER_LOOK: Duration = Duration::from_secs(1);
/// While cookies are refused (for the peer, or for dropped SYN-ACKs, which then get a trial at
/// each look): the wait after the first look, after the next ones twice as long each, up to
/// [`REFUSED_LOOK_MAX`] (a peer in a namespace weir cannot open stays so; a trial that fails
/// costs one tick's SYN-ACKs).
const REFUSED_LOOK: Duration = Duration::from_secs(2);
const REFUSED_LOOK_MAX: Duration = Duration::from_secs(60);

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
    /// Cookie trials since the start ([`TRIALS`]).
    trials: u64,
    /// No new try before this, after a failed one.
    retry_after: Option<Instant>,
    /// The last failure said (a try failing the same way again is not said again).
    failed: Option<String>,
    /// When to look at the veth peer next, and the trials of cookies refused for drops.
    looks: LookSchedule,
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
        trials: 0,
        retry_after: None,
        failed: None,
        looks: LookSchedule::default(),
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
            "{}{ATTACHED} {}\n{REATTACHED} {}\n{TRIALS} {}\n",
            self.syn.note(),
            u8::from(self.attachment.is_some()),
            self.reattached,
            self.trials
        );
        if let Some(a) = &self.attachment {
            note.push_str(&format!("{MODE} {}\n", a.mode.name()));
            if let Some(p) = a.peer.as_ref().and_then(|p| p.peer.describe()) {
                note.push_str(&format!("{VETH_PEER} {p}\n"));
            }
        }
        if let Err(e) = self.pins.note(&note) {
            warn!("writing the note for weir stats: {e}");
        }
    }

    /// Called every [`SynControl::WATCH`]: the SYN control's tick, then the veth peer followed.
    /// SYN-ACKs dropped by the driver (a veth peer whose native XDP program went away, so it
    /// takes no XDP_TX frames; with weir's own program on it, most of a tick's) make weir look
    /// at the peer at once: it gets weir's pass program, as a bare peer does at start. When
    /// that cannot help and most SYN-ACKs of a tick were dropped, cookies are refused on the
    /// interface; while they are, the peer is looked at again after 2 s, then twice as far apart
    /// each time up to a minute. A refusal for the peer (it cannot take XDP_TX frames) ends once
    /// it takes them by something new; one for dropped SYN-ACKs while the peer looks fine (its
    /// ring overflowed for a while, it went down and came back, a trusted peer, a NIC) gives
    /// cookies a trial at each of those looks that finds nothing new: a trial that drops most
    /// of a tick's SYN-ACKs again ends at that tick.
    pub fn tick(&mut self, elapsed: Duration) -> anyhow::Result<()> {
        self.syn.tick(&mut self.dataplane, elapsed)?;
        let lost = self.syn.take_tx_lost();
        let now = Instant::now();
        let due = self.looks.due(now);
        // weir's own program stays on the peer (a BPF link nobody else can take off): a ring
        // overflowing now and then under a flood is no reason to look, most frames lost is.
        let suspect =
            lost.is_some_and(|(sent, errors)| veth::losing(sent, errors) || !self.peer_is_weirs());
        let mut fixed = false;
        if due && (suspect || self.syn.refused().is_some()) {
            fixed = self.look_at_peer()?;
            let refused = self.syn.refused().is_some();
            if let Some(next) = self.looks.looked(now, refused, self.refused_for_losses()) {
                self.try_cookies(next)?;
            }
        }
        if let Some((sent, errors)) = lost
            && !fixed
            && self.syn.refused().is_none()
            && veth::losing(sent, errors)
        {
            self.refuse_for_losses(sent, errors)?;
        }
        Ok(())
    }

    /// Whether cookies are refused for SYN-ACKs dropped while the peer looked fine (not for a
    /// peer that cannot take XDP_TX frames, which a look at it ends).
    fn refused_for_losses(&self) -> bool {
        let peer_refused = self
            .attachment
            .as_ref()
            .and_then(|a| a.peer.as_ref())
            .is_some_and(|p| p.peer.refusal().is_some());
        self.syn.refused().is_some() && !peer_refused
    }

    /// A trial: cookies allowed again, refused again at the first tick that drops most of its
    /// SYN-ACKs (the cost of a trial that fails: one tick's SYN-ACKs, whose clients send their
    /// SYN again a second later).
    fn try_cookies(&mut self, next: Duration) -> anyhow::Result<()> {
        self.syn.clear_refusal(&mut self.dataplane)?;
        self.trials += 1;
        warn!(
            iface = %self.iface,
            trial = self.looks.trials,
            "SYN cookies tried again on this interface after SYN-ACKs were dropped: if most of a \
             tick's still are, they are switched off again (next trial in {}s)",
            next.as_secs()
        );
        Ok(())
    }

    fn refuse_for_losses(&mut self, sent: u64, errors: u64) -> anyhow::Result<()> {
        if self.looks.trials == 0 {
            let why = self.tx_loss_message(sent, errors);
            self.syn.refuse_cookies(&mut self.dataplane, why)?;
        } else {
            let why = format!(
                "SYN cookies switched OFF again on this interface: {errors} of {} SYN-ACKs sent \
                 with XDP_TX in trial {} were dropped by the driver; SYNs go to the kernel until \
                 the next trial",
                sent + errors,
                self.looks.trials
            );
            warn!(iface = %self.iface, "{why}");
            self.syn.refuse_cookies_quietly(&mut self.dataplane, why)?;
        }
        Ok(())
    }

    /// Whether the veth peer runs weir's own pass program.
    fn peer_is_weirs(&self) -> bool {
        self.attachment
            .as_ref()
            .and_then(|a| a.peer.as_ref())
            .is_some_and(|p| matches!(p.peer, Peer::Attached { .. }))
    }

    fn tx_loss_message(&self, sent: u64, errors: u64) -> String {
        let looks = if self.veth_peer == VethPeerSetting::Attach {
            "; weir also looks at the peer, and attaches its pass program to it when it has no \
             native one"
        } else {
            " (`veth_peer = \"trust\"`: weir does not look at the peer)"
        };
        format!(
            "SYN cookies switched OFF on this interface: {errors} of {} SYN-ACKs sent with \
             XDP_TX in the last {:?} were dropped by the driver (a veth whose peer lost its native \
             XDP program, went down or fell behind); SYNs go to the kernel, and cookies are tried \
             again in a second, then twice as far apart each time up to a minute, until a trial \
             finds the SYN-ACKs delivered{looks}",
            sent + errors,
            SynControl::TICK
        )
    }

    /// Looks at the veth peer again (native mode, `veth_peer = "attach"`): a peer that takes
    /// XDP_TX frames no more gets weir's pass program; one that cannot be made to take them
    /// refuses cookies; a refusal is lifted once the peer takes them by something other than
    /// what it had at the last look. Whether the peer takes XDP_TX frames by something new.
    fn look_at_peer(&mut self) -> anyhow::Result<bool> {
        if self.veth_peer != VethPeerSetting::Attach {
            return Ok(false);
        }
        let Some(a) = self
            .attachment
            .as_mut()
            .filter(|a| a.mode == AttachedMode::Native)
        else {
            return Ok(false);
        };
        let old = match a.peer.as_ref().map(|p| &p.peer) {
            None | Some(Peer::NotVeth | Peer::Generic | Peer::Trusted) => return Ok(false),
            Some(p) => p.clone(),
        };
        let name = index_name(a.index).unwrap_or_else(|| self.iface.clone());
        let fresh = veth::prepare(&mut self.dataplane, &name);
        let news = match judge_peer(&old, &fresh.peer) {
            PeerLook::Same => return Ok(false),
            PeerLook::Refused(why) => {
                if self.syn.refused().is_none() {
                    let why = veth::refusal_message(&name, &why);
                    self.syn.refuse_cookies(&mut self.dataplane, why)?;
                }
                None
            }
            PeerLook::Takes(news) => Some(news),
        };
        if let Some(mut gone) = a.peer.replace(fresh) {
            gone.release(&mut self.dataplane, false);
        }
        self.write_note();
        let Some(news) = news else { return Ok(false) };
        if self.syn.refused().is_some() {
            self.looks.trials = 0;
            self.syn.lift_refusal(&mut self.dataplane, &news)?;
        } else {
            warn!(iface = %self.iface, "{news}");
        }
        Ok(true)
    }

    /// The name the attached device has now (a rename keeps weir's program on it), else the
    /// configured one.
    /// Warns, at start and at every reload, of what the VIPs in force leave out: local
    /// addresses the L7 listeners serve that are not VIPs (XDP passes their traffic untouched:
    /// no deny-list, no SYN defence; `vips::uncovered`). `listeners`: false with `--no-l7`
    /// (none is served).
    pub fn warn_uncovered(&self, cfg: &Config, listeners: bool) {
        let iface = self.device_name();
        let served: Vec<std::net::SocketAddr> = if listeners {
            cfg.l7.listener.iter().map(|l| l.socket_addr()).collect()
        } else {
            Vec::new()
        };
        match attach::local_addresses() {
            Ok(local) => {
                for (l, addrs) in super::vips::uncovered(&served, &self.vips, &local) {
                    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                    let example = addrs.first().map_or_else(String::new, |a| a.to_string());
                    warn!(
                        iface = %iface,
                        "listener {l} serves {} (local, not on {iface}), which {} not a VIP: XDP \
                         passes traffic to {} untouched (pass_not_vip), without the deny-list \
                         and the SYN defence (cookies, per-source limit); cover {} with [[vip]] \
                         entries (address = \"{example}\", port = {}; a file with [[vip]] lists \
                         the interface's too: address = \"interface\") or put {} on {iface}",
                        list.join(", "),
                        if addrs.len() == 1 { "is" } else { "are" },
                        if addrs.len() == 1 { "it" } else { "them" },
                        if addrs.len() == 1 { "it" } else { "them" },
                        l.port(),
                        if addrs.len() == 1 { "it" } else { "them" },
                    );
                }
            }
            Err(e) => warn!("listing the host's addresses: {e:#}"),
        }
        self.warn_unmatched_overrides(cfg);
    }

    /// Warns of `[[syn.vip]]` overrides that name no VIP in force: they change nothing
    /// (`vips::unmatched_overrides`; validation refuses them when the file names every VIP).
    fn warn_unmatched_overrides(&self, cfg: &Config) {
        let iface = self.device_name();
        for (i, address, port) in super::vips::unmatched_overrides(&cfg.syn.vip, &self.vips) {
            warn!(
                iface = %iface,
                "syn.vip[{i}] (address {address}, port {port}) names no VIP on {iface}: it \
                 changes nothing (the VIPs: {})",
                self.vips
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

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
                // A refusal was about the old device (its peer, its dropped SYN-ACKs): the new
                // one's peer was just looked at, and refused again if it must be.
                if a.peer.as_ref().is_none_or(|p| p.peer.refusal().is_none())
                    && let Err(e) = self.syn.lift_refusal(
                        &mut self.dataplane,
                        "the interface is a new device, whose veth peer (if any) takes XDP_TX frames",
                    )
                {
                    warn!(iface = %self.iface, "allowing SYN cookies again: {e:#}");
                }
                self.looks = LookSchedule::default();
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

/// When weir looks at the veth peer, and when cookies refused for dropped SYN-ACKs get a trial
/// (no I/O: [`XdpTier::tick`] does the looking and the trials).
#[derive(Debug)]
struct LookSchedule {
    /// No look before this.
    after: Option<Instant>,
    /// The wait after the next look made while cookies are refused.
    refused_wait: Duration,
    /// Trials since SYN-ACKs were found dropped with the peer looking fine (0: none under way).
    trials: u32,
}

impl Default for LookSchedule {
    fn default() -> Self {
        LookSchedule {
            after: None,
            refused_wait: REFUSED_LOOK,
            trials: 0,
        }
    }
}

impl LookSchedule {
    fn due(&self, now: Instant) -> bool {
        self.after.is_none_or(|t| now >= t)
    }

    /// A look was made at `now`, after which cookies are `refused` (`for_losses`: for SYN-ACKs
    /// dropped while the peer looked fine). While refused, the looks come 2 s apart, then twice
    /// as far each time up to a minute, else at most a second apart; a look that finds nothing
    /// refused a whole wait after the last one ends the trials and the backoff. When cookies
    /// get a trial now: the wait before the next look (and trial).
    fn looked(&mut self, now: Instant, refused: bool, for_losses: bool) -> Option<Duration> {
        let wait = if refused {
            let w = self.refused_wait;
            self.refused_wait = (w * 2).min(REFUSED_LOOK_MAX);
            w
        } else {
            self.refused_wait = REFUSED_LOOK;
            self.trials = 0;
            PEER_LOOK
        };
        self.after = Some(now + wait);
        let trial = refused && for_losses;
        self.trials += u32::from(trial);
        trial.then_some(wait)
    }
}

/// What a new look at a veth peer means, against the last look (no I/O: [`judge_peer`]).
#[derive(Debug, PartialEq, Eq)]
enum PeerLook {
    /// Nothing new (weir's own program still on it counts as nothing new).
    Same,
    /// It cannot take XDP_TX frames, nor be made to: why.
    Refused(String),
    /// It takes them now by something new: what.
    Takes(String),
}

fn judge_peer(old: &Peer, fresh: &Peer) -> PeerLook {
    match (old, fresh) {
        (_, Peer::NotVeth | Peer::Generic | Peer::Trusted) => PeerLook::Same,
        (Peer::Attached { .. }, Peer::Ready { .. }) => PeerLook::Same,
        // weir attached its program just now (whatever the last look found: its own program
        // gone with the peer moved, say): the new link is the one to keep.
        (_, Peer::Attached { peer }) => PeerLook::Takes(format!(
            "the veth peer {peer} took no XDP_TX frames (it has no native XDP program): weir \
             attached its pass program to it"
        )),
        (o, f) if o == f => PeerLook::Same,
        (_, Peer::Refused { why }) => PeerLook::Refused(why.clone()),
        (_, Peer::Ready { peer, how }) => PeerLook::Takes(format!(
            "the veth peer {peer} takes XDP_TX frames now: it {how}"
        )),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(how: &str) -> Peer {
        Peer::Ready {
            peer: "p0".into(),
            how: how.into(),
        }
    }

    /// SYN-ACKs dropped with the peer looking fine: a look (nothing refused yet), the refusal,
    /// then a trial at each look while refused (1 s after the refusal, then 2, 4, … 60 s
    /// apart); a trial that lasts a whole wait ends the backoff. A refusal for the peer itself
    /// gets looks, never a trial.
    #[test]
    fn refused_for_drops_cookies_get_trials_ever_further_apart() {
        let t0 = Instant::now();
        let mut s = LookSchedule::default();
        assert!(s.due(t0));
        assert_eq!(
            s.looked(t0, false, false),
            None,
            "the look before the refusal"
        );
        assert!(!s.due(t0 + Duration::from_millis(999)));
        let mut at = t0 + PEER_LOOK;
        let mut gaps = Vec::new();
        for _ in 0..8 {
            assert!(s.due(at));
            let wait = s.looked(at, true, true).expect("a trial");
            let next = s.after.expect("the next look");
            assert_eq!(next - at, wait);
            gaps.push(wait.as_secs());
            assert!(!s.due(next - Duration::from_millis(1)));
            at = next;
        }
        assert_eq!(gaps, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(s.trials, 8);
        // The last trial held until the next look: nothing refused then.
        assert_eq!(s.looked(at, false, false), None);
        assert_eq!((s.trials, s.refused_wait), (0, REFUSED_LOOK));
        // A peer that cannot take XDP_TX frames: looked at again, no trial.
        assert_eq!(s.looked(at + PEER_LOOK, true, false), None);
        assert_eq!(s.trials, 0);
        assert_eq!(s.after, Some(at + PEER_LOOK + REFUSED_LOOK));
    }

    #[test]
    fn a_look_at_the_peer_says_what_changed() {
        let attached = Peer::Attached { peer: "p0".into() };
        let refused = |why: &str| Peer::Refused { why: why.into() };
        let own = ready("has an XDP program (id 1 name weir_peer_pass)");
        // Nothing new: the same program, weir's own still there, the same refusal.
        assert_eq!(judge_peer(&ready("a"), &ready("a")), PeerLook::Same);
        assert_eq!(judge_peer(&attached, &own), PeerLook::Same);
        assert_eq!(judge_peer(&refused("x"), &refused("x")), PeerLook::Same);
        assert_eq!(judge_peer(&ready("a"), &Peer::NotVeth), PeerLook::Same);
        // weir attached its program anew (its own was gone).
        assert!(matches!(
            judge_peer(&attached, &attached),
            PeerLook::Takes(_)
        ));
        // The operator's program went: weir's went on.
        assert!(matches!(
            judge_peer(&ready("a"), &attached),
            PeerLook::Takes(s) if s.contains("weir attached its pass program")
        ));
        // A refused peer that has a native program now, or another one than before.
        assert!(matches!(
            judge_peer(&refused("x"), &ready("b")),
            PeerLook::Takes(s) if s.contains("it b")
        ));
        assert!(matches!(
            judge_peer(&ready("a"), &ready("b")),
            PeerLook::Takes(_)
        ));
        // A peer that cannot be made to take them (any more).
        assert_eq!(
            judge_peer(&ready("a"), &refused("generic")),
            PeerLook::Refused("generic".into())
        );
        assert_eq!(
            judge_peer(&refused("x"), &refused("y")),
            PeerLook::Refused("y".into())
        );
    }
}
