//! Raw frames on a lab interface: inject built frames and capture what goes by (AF_PACKET),
//! so a test can send [`Packet`](crate::packet::Packet)s and assert on replies field by field.
//!
//! Captured frames carry no VLAN tag (the kernel moves it to metadata), and frames that the
//! local stack sends may carry a partial checksum unless the sender did
//! [`Iface::tx_checksum_off`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::veth::Iface;
use crate::packet::Frame;

const ETH_P_ALL: u16 = 0x0003;
/// `sll_pkttype` of frames this host sends.
const PACKET_OUTGOING: u8 = 4;

/// Which way a captured frame went through the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Received by the interface.
    In,
    /// Sent by the interface.
    Out,
}

/// An AF_PACKET socket bound to one interface (made with [`Iface::wire`]).
pub struct Wire {
    fd: OwnedFd,
    name: String,
}

impl Iface {
    /// Opens a raw socket on this interface (from inside its namespace). It sees frames in both
    /// directions from the moment it is opened, except those it sends itself.
    pub fn wire(&self) -> Result<Wire> {
        let ifindex = self.ifindex()?;
        let fd = self
            .ns()
            .in_ns(|| -> io::Result<OwnedFd> {
                // SAFETY: plain socket(2); the fd is owned right away.
                let raw = unsafe {
                    libc::socket(
                        libc::AF_PACKET,
                        libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                        i32::from(ETH_P_ALL.to_be()),
                    )
                };
                if raw < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: `raw` is a fresh fd.
                let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                // SAFETY: sockaddr_ll is plain data; all-zero is a valid start.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_protocol = ETH_P_ALL.to_be();
                sll.sll_ifindex = ifindex as i32;
                // SAFETY: sll is a valid sockaddr_ll of the given size.
                let r = unsafe {
                    libc::bind(
                        fd.as_raw_fd(),
                        &sll as *const _ as *const libc::sockaddr,
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                if r < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(fd)
            })?
            .with_context(|| format!("opening a packet socket on {}", self.name()))?;
        Ok(Wire {
            fd,
            name: self.name().to_string(),
        })
    }
}

impl Wire {
    /// Sends one frame out of the interface, as is (checksums included).
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        // SAFETY: the buffer is valid for its length.
        let r = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if r < 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("sending {} bytes on {}", frame.len(), self.name));
        }
        Ok(())
    }

    /// The next frame seen within `timeout`, with its direction; `None` on timeout.
    pub fn recv(&self, timeout: Duration) -> Result<Option<(Dir, Vec<u8>)>> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            return Err(io::Error::last_os_error().into());
        }
        if n == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; 65536];
        // SAFETY: zeroed sockaddr_ll is valid; sizes match the buffers passed.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        let r = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                &mut sll as *mut _ as *mut libc::sockaddr,
                &mut len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error().into());
        }
        buf.truncate(r as usize);
        Ok(Some((
            if sll.sll_pkttype == PACKET_OUTGOING {
                Dir::Out
            } else {
                Dir::In
            },
            buf,
        )))
    }

    /// The first frame within `timeout` that decodes and satisfies `pred` (ARP, neighbour
    /// discovery and other frames are skipped); `None` on timeout.
    pub fn recv_matching(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(Dir, &Frame) -> bool,
    ) -> Result<Option<(Frame, Vec<u8>)>> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let Some((dir, bytes)) = self.recv(left)? else {
                return Ok(None);
            };
            if let Ok(f) = Frame::parse(&bytes)
                && pred(dir, &f)
            {
                return Ok(Some((f, bytes)));
            }
            if left.is_zero() {
                return Ok(None);
            }
        }
    }
}
