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

/// A netlink socket subscribed to this namespace's link and address changes. Of a message only
/// the device it is about is read ([`Touched`]): a change is a reason to look again (one
/// `if_nametoindex`, one `getifaddrs`, the MTU), and on a host whose other interfaces come and
/// go (containers' veths) most changes are someone else's. A queue that overflowed
/// (`ENOBUFS`) lost what it said: look again in any case. Hand-written over nix: a netlink crate
/// would parse all of what is thrown away.
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

    /// Resolves once something changed since the last call, with the devices the changes were
    /// about (every message queued is read).
    pub async fn changed(&mut self) -> io::Result<Touched> {
        let mut buf = [0u8; 8192];
        loop {
            let mut guard = self.fd.readable().await?;
            let mut touched = Touched::default();
            let mut any = false;
            loop {
                let raw = std::os::fd::AsRawFd::as_raw_fd(guard.get_inner());
                match recv(raw, &mut buf, MsgFlags::MSG_DONTWAIT) {
                    Ok(n) => {
                        any = true;
                        touched.read(&buf[..n]);
                    }
                    Err(nix::errno::Errno::ENOBUFS) => {
                        any = true;
                        touched.lost = true;
                    }
                    Err(nix::errno::Errno::EAGAIN) => {
                        guard.clear_ready();
                        break;
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if any {
                return Ok(touched);
            }
        }
    }
}

/// The devices a batch of rtnetlink messages was about.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Touched {
    indexes: std::collections::BTreeSet<u32>,
    /// Messages were lost (or one could not be read): any device may have changed.
    lost: bool,
}

impl Touched {
    /// Reads one datagram: netlink messages (`nlmsghdr`, 16 bytes, then the payload, each
    /// aligned to 4). Link messages (`ifinfomsg`) and address messages (`ifaddrmsg`) both carry
    /// the device's ifindex at bytes 4..8 of their payload.
    pub fn read(&mut self, mut datagram: &[u8]) {
        const HEADER: usize = 16;
        while datagram.len() >= HEADER {
            let len = u32::from_ne_bytes([datagram[0], datagram[1], datagram[2], datagram[3]]);
            let len = len as usize;
            if len < HEADER || len > datagram.len() {
                self.lost = true;
                return;
            }
            match datagram.get(HEADER + 4..HEADER + 8) {
                Some(i) if len >= HEADER + 8 => {
                    self.indexes
                        .insert(u32::from_ne_bytes([i[0], i[1], i[2], i[3]]));
                }
                _ => self.lost = true,
            }
            let next = (len + 3) & !3;
            datagram = datagram.get(next..).unwrap_or_default();
        }
    }

    /// Whether the changes may concern the device weir is attached to (`None`: it is attached
    /// to none, so a device that takes the interface's name matters, whatever its index).
    pub fn concerns(&self, attached: Option<u32>) -> bool {
        self.lost || attached.is_none_or(|i| self.indexes.contains(&i))
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

    /// One netlink message about device `index`: a header of `len` bytes' message (type
    /// RTM_NEWADDR), a payload with the index at 4..8, padded to `len`.
    fn message(index: u32, len: usize) -> Vec<u8> {
        let mut m = vec![0u8; len];
        m[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        m[4..6].copy_from_slice(&20u16.to_ne_bytes());
        m[20..24].copy_from_slice(&index.to_ne_bytes());
        m
    }

    #[test]
    fn the_devices_of_a_datagram_of_messages_are_read() {
        let mut d = message(7, 30);
        d.resize(32, 0); // aligned to 4
        d.extend(message(3, 40));
        let mut t = Touched::default();
        t.read(&d);
        assert!(!t.lost);
        assert!(t.concerns(Some(7)) && t.concerns(Some(3)) && !t.concerns(Some(9)));
        // Detached: any change may be a device taking the name.
        assert!(t.concerns(None));
    }

    #[test]
    fn a_message_that_cannot_be_read_concerns_every_device() {
        for bad in [
            message(7, 30)[..20].to_vec(), // longer than the datagram says
            {
                let mut m = message(7, 24);
                m[0..4].copy_from_slice(&8u32.to_ne_bytes()); // shorter than a header
                m
            },
            {
                let mut m = message(7, 24);
                m[0..4].copy_from_slice(&18u32.to_ne_bytes()); // no index in it
                m
            },
        ] {
            let mut t = Touched::default();
            t.read(&bad);
            assert!(t.concerns(Some(9)), "{bad:?}");
        }
    }

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
