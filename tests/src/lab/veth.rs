//! Interfaces of a lab: addresses, MTU, offloads, MAC, XDP attachments.

use std::ffi::CString;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::ns::Ns;
use super::{lock, xdp};
use crate::packet::Mac;

/// How an XDP program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode: `xdpdrv`.
    Native,
    /// Generic (skb) mode: `xdpgeneric`.
    Generic,
    /// Let the kernel choose: `xdp`.
    Any,
}

impl XdpMode {
    fn ip_word(self) -> &'static str {
        match self {
            XdpMode::Native => "xdpdrv",
            XdpMode::Generic => "xdpgeneric",
            XdpMode::Any => "xdp",
        }
    }
    fn flags(self) -> u32 {
        match self {
            XdpMode::Native => 4,
            XdpMode::Generic => 2,
            XdpMode::Any => 0,
        }
    }
}

/// An interface in a lab namespace.
#[derive(Clone, Debug)]
pub struct Iface {
    ns: Ns,
    name: String,
}

/// What [`Lab::sink_gateway`](super::Lab::sink_gateway) made.
#[derive(Clone, Debug)]
pub struct Gateway {
    /// The router namespace.
    pub ns: Ns,
    /// The veth end in the namespace that got the default route.
    pub host_if: Iface,
    /// The veth end in the router.
    pub gw_if: Iface,
}

impl Iface {
    pub(crate) fn new(ns: Ns, name: &str) -> Iface {
        Iface {
            ns,
            name: name.to_string(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its namespace.
    pub fn ns(&self) -> &Ns {
        &self.ns
    }

    fn ip(&self, args: &[&str]) -> Result<&Self> {
        self.ns.ip(args)?;
        Ok(self)
    }

    /// Adds an address (`10.0.0.1/24`, `fd00::1/64`); IPv6 ones with `nodad`, usable at once.
    pub fn addr(&self, cidr: &str) -> Result<&Self> {
        if cidr.contains(':') {
            self.ip(&["-6", "addr", "add", cidr, "dev", &self.name, "nodad"])
        } else {
            self.ip(&["addr", "add", cidr, "dev", &self.name])
        }
    }

    /// Sets the MTU.
    pub fn mtu(&self, mtu: u32) -> Result<&Self> {
        self.ip(&["link", "set", "dev", &self.name, "mtu", &mtu.to_string()])
    }

    /// Brings it up.
    pub fn up(&self) -> Result<&Self> {
        self.ip(&["link", "set", "dev", &self.name, "up"])
    }

    /// Brings it down.
    pub fn down(&self) -> Result<&Self> {
        self.ip(&["link", "set", "dev", &self.name, "down"])
    }

    /// Sets its MAC address.
    pub fn set_mac(&self, mac: Mac) -> Result<&Self> {
        self.ip(&[
            "link",
            "set",
            "dev",
            &self.name,
            "address",
            &mac.to_string(),
        ])
    }

    /// Its MAC address.
    pub fn mac(&self) -> Result<Mac> {
        let out = self.ns.ip(&["-o", "link", "show", "dev", &self.name])?;
        let mut w = out.split_whitespace().skip_while(|w| *w != "link/ether");
        w.next();
        let m = w
            .next()
            .with_context(|| format!("no link/ether in {out:?}"))?;
        m.parse().map_err(|e: String| anyhow::anyhow!(e))
    }

    /// Its ifindex (in its namespace).
    pub fn ifindex(&self) -> Result<u32> {
        let c = CString::new(self.name.as_str())?;
        // SAFETY: `c` is a valid NUL-terminated string.
        let i = self
            .ns
            .in_ns(|| unsafe { libc::if_nametoindex(c.as_ptr()) })?;
        if i == 0 {
            bail!("no interface {} in {:?}", self.name, self.ns);
        }
        Ok(i)
    }

    /// `ethtool -K <dev> <feature> on|off` inside its namespace.
    pub fn ethtool_k(&self, feature: &str, on: bool) -> Result<&Self> {
        self.ns.exec(&[
            "ethtool",
            "-K",
            &self.name,
            feature,
            if on { "on" } else { "off" },
        ])?;
        Ok(self)
    }

    /// `ethtool -K <dev> tx off`: the local stack then sends full checksums over this veth
    /// instead of partial ones (CHECKSUM_PARTIAL), which an XDP program on the peer that
    /// verifies TCP checksums needs. Call it on the *sending* side.
    pub fn tx_checksum_off(&self) -> Result<&Self> {
        self.ethtool_k("tx", false)
    }

    /// Records that an XDP program is (or will be) attached here by other means (weir's
    /// loader): the lab detaches it (`ip link set dev X xdp off`) on drop.
    pub fn track_xdp(&self) -> &Self {
        lock(&self.ns.state)
            .xdp
            .push((self.ns.netns().map(str::to_string), self.name.clone()));
        self
    }

    /// Attaches a pass-through XDP program (`return XDP_PASS`), held by the lab as a BPF link
    /// until drop. Native XDP_TX/redirect on a veth needs the *peer* to have an XDP program:
    /// attach this on the peer.
    pub fn attach_xdp_pass(&self, mode: XdpMode) -> Result<&Self> {
        self.attach_xdp_return(2, mode)
    }

    /// Attaches a program that returns `action` for every frame (0 aborted, 1 XDP_DROP,
    /// 2 XDP_PASS, 3 XDP_TX: bounce), held like [`attach_xdp_pass`](Self::attach_xdp_pass).
    pub fn attach_xdp_return(&self, action: u8, mode: XdpMode) -> Result<&Self> {
        let prog = xdp::load_return(action).context("loading a constant-verdict XDP program")?;
        let ifindex = self.ifindex()?;
        let link = self
            .ns
            .in_ns(|| xdp::link_create(&prog, ifindex, mode.flags()))?
            .with_context(|| format!("attaching XDP pass to {}", self.name))?;
        let key = (self.ns.netns().map(str::to_string), self.name.clone());
        lock(&self.ns.state).xdp_links.push((key, link));
        Ok(self)
    }

    /// Detaches the programs the lab attached here as BPF links
    /// ([`attach_xdp_pass`](Self::attach_xdp_pass), [`attach_xdp_return`](Self::attach_xdp_return)), now.
    pub fn detach_xdp_links(&self) -> &Self {
        let key = (self.ns.netns().map(str::to_string), self.name.clone());
        lock(&self.ns.state).xdp_links.retain(|(k, _)| k != &key);
        self
    }

    /// Attaches section `sec` of the object file `obj` with `ip link set dev X xdp… obj … sec …`,
    /// tracked for detach on drop.
    pub fn attach_xdp_obj(&self, obj: &Path, sec: &str, mode: XdpMode) -> Result<&Self> {
        let obj = obj.to_str().context("non-UTF-8 object path")?;
        self.track_xdp();
        self.ip(&[
            "link",
            "set",
            "dev",
            &self.name,
            mode.ip_word(),
            "obj",
            obj,
            "sec",
            sec,
        ])
    }

    /// Detaches whatever legacy (netlink-attached) XDP program it has, now.
    pub fn detach_xdp(&self) -> Result<&Self> {
        self.ip(&["link", "set", "dev", &self.name, "xdp", "off"])
    }

    /// The `ip link show` line, for assertions and debugging.
    pub fn show(&self) -> Result<String> {
        self.ns.ip(&["-d", "link", "show", "dev", &self.name])
    }
}
