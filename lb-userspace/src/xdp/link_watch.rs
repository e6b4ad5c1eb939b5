//! The interface weir is attached to, followed while weir runs: someone else may delete it and
//! make it again (`ip link del`, a driver reloaded with `modprobe -r`, a container's veth made
//! anew), or add and remove its addresses (a secondary address, DHCP, IPv6 autoconfiguration).
//!
//! Without this, a deleted interface took weir's XDP program with it and the one made in its
//! place ran none — no deny-list, no SYN defence, no per-source limits — while weir went on as if
//! attached; and the VIPs named `"interface"` (the default: one per listener port on the
//! interface's addresses) stayed the addresses of the start, so the workers served an address
//! added later with no XDP defence in front of it.
//!
//! [`LinkEvents`] wakes the control plane on every rtnetlink link or address change of its
//! namespace; [`judge`] decides, without I/O, what a change means for the attachment. The main
//! loop (`crate::run`) then attaches again, or rewrites the VIPs from the addresses now there.

use std::{io, os::fd::OwnedFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, socket,
};
use tokio::io::unix::AsyncFd;

/// rtnetlink multicast groups (`RTMGRP_*` of `linux/rtnetlink.h`): links, IPv4 and IPv6
/// addresses.
const GROUPS: u32 = 0x1 | 0x10 | 0x100;

/// A netlink socket subscribed to this namespace's link and address changes. The messages are
/// not parsed: any of them is only a reason to look again (one `if_nametoindex` and one
/// `getifaddrs`), which also covers a queue that overflowed (`ENOBUFS`). Hand-written over nix
/// for that reason: a netlink crate would parse what is thrown away.
pub struct LinkEvents {
    fd: AsyncFd<OwnedFd>,
}

impl LinkEvents {
    /// Subscribes; must be called within the tokio runtime.
    pub fn open() -> io::Result<LinkEvents> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &NetlinkAddr::new(0, GROUPS),
        )?;
        // SAFETY: the OwnedFd owns the descriptor and lives inside the AsyncFd: it stays open
        // and the same for the AsyncFd's whole life.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(LinkEvents { fd })
    }

    /// Resolves once something changed since the last call (every message queued is read).
    pub async fn changed(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        loop {
            let mut guard = self.fd.readable().await?;
            let mut any = false;
            loop {
                let raw = std::os::fd::AsRawFd::as_raw_fd(guard.get_inner());
                match recv(raw, &mut buf, MsgFlags::MSG_DONTWAIT) {
                    Ok(_) => any = true,
                    // Messages were lost: whatever they said, look again.
                    Err(nix::errno::Errno::ENOBUFS) => any = true,
                    Err(nix::errno::Errno::EAGAIN) => {
                        guard.clear_ready();
                        break;
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if any {
                return Ok(());
            }
        }
    }
}

/// What the interface looks like now, against the attachment weir holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The ifindex weir's program is attached to (`None`: not attached now).
    pub attached: Option<u32>,
    /// Whether an interface with that ifindex still exists (under any name: a rename keeps the
    /// device, and weir's program on it).
    pub attached_exists: bool,
    /// The ifindex of the interface with the configured name, if there is one.
    pub by_name: Option<u32>,
}

/// What to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing: attached to a device that exists, or nothing to attach to.
    Stay,
    /// The device weir was attached to is gone and nothing has its name: the program went with
    /// it.
    Gone,
    /// An interface has the name and weir's program is not on it: attach to this ifindex
    /// (after letting go of the old device's link, if there was one).
    Attach(u32),
}

pub fn judge(s: Seen) -> Verdict {
    match (s.attached, s.by_name) {
        (Some(_), _) if s.attached_exists => Verdict::Stay,
        (_, Some(index)) => Verdict::Attach(index),
        (Some(_), None) => Verdict::Gone,
        (None, None) => Verdict::Stay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(attached: Option<u32>, attached_exists: bool, by_name: Option<u32>) -> Seen {
        Seen {
            attached,
            attached_exists,
            by_name,
        }
    }

    #[test]
    fn an_attached_device_that_exists_is_left_alone_even_renamed() {
        assert_eq!(judge(seen(Some(4), true, Some(4))), Verdict::Stay);
        // Renamed: the name is gone (or another device has it); weir's program is on the device.
        assert_eq!(judge(seen(Some(4), true, None)), Verdict::Stay);
        assert_eq!(judge(seen(Some(4), true, Some(9))), Verdict::Stay);
    }

    #[test]
    fn a_deleted_device_is_gone_until_its_name_comes_back() {
        assert_eq!(judge(seen(Some(4), false, None)), Verdict::Gone);
        // Made again (a new ifindex) before weir looked: straight to attaching.
        assert_eq!(judge(seen(Some(4), false, Some(7))), Verdict::Attach(7));
        assert_eq!(judge(seen(None, false, Some(7))), Verdict::Attach(7));
        assert_eq!(judge(seen(None, false, None)), Verdict::Stay);
    }
}
