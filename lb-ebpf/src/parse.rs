//! Header parsing with bounds checks the verifier accepts. Each function checks the whole header
//! it reads against `data_end` before touching it; a short packet yields `None`/`Err`.

use aya_ebpf::programs::XdpContext;
use lb_common::{Stat, proto};

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const TCP_HLEN: usize = 20;
const UDP_HLEN: usize = 8;
/// IPv4 "more fragments" flag and fragment offset, in host order of the 16-bit field.
const IPV4_MF_OFFSET: u16 = 0x3fff;

pub const IPV6_FRAGMENT: u8 = 44;

/// The packet as the XDP program sees it: `[start, end)` in the kernel's address space.
pub struct Packet {
    start: usize,
    end: usize,
}

impl Packet {
    #[inline(always)]
    pub fn new(ctx: &XdpContext) -> Self {
        Packet {
            start: ctx.data(),
            end: ctx.data_end(),
        }
    }

    #[inline(always)]
    pub fn len(&self) -> u64 {
        (self.end - self.start) as u64
    }

    /// A pointer to `N` bytes at `off`, when they lie inside the packet.
    #[inline(always)]
    fn bytes<const N: usize>(&self, off: usize) -> Option<*const [u8; N]> {
        let at = self.start + off;
        if at + N > self.end {
            return None;
        }
        Some(at as *const [u8; N])
    }
}

pub enum L3 {
    V4 { off: usize },
    V6 { off: usize },
}

/// Ethernet, with at most one 802.1Q/802.1ad tag. Returns where the IP header starts.
#[inline(always)]
pub fn l3(pkt: &Packet) -> Result<L3, Stat> {
    let eth = pkt.bytes::<ETH_HLEN>(0).ok_or(Stat::DropMalformed)?;
    let mut ethertype = u16::from_be_bytes(unsafe { [(*eth)[12], (*eth)[13]] });
    let mut off = ETH_HLEN;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        let tag = pkt.bytes::<VLAN_HLEN>(off).ok_or(Stat::DropMalformed)?;
        ethertype = u16::from_be_bytes(unsafe { [(*tag)[2], (*tag)[3]] });
        off += VLAN_HLEN;
    }
    match ethertype {
        ETH_P_IP => Ok(L3::V4 { off }),
        ETH_P_IPV6 => Ok(L3::V6 { off }),
        // ARP, LLDP, a second VLAN tag, …: not ours to judge.
        _ => Err(Stat::PassNotIp),
    }
}

pub struct Ipv4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub proto: u8,
    pub is_fragment: bool,
    /// Where the transport header starts (honours IHL, options included).
    pub l4_off: usize,
}

/// The fixed IPv4 header; `None` when truncated, not version 4, or IHL < 5.
#[inline(always)]
pub fn ipv4(pkt: &Packet, off: usize) -> Option<Ipv4> {
    let h = unsafe { &*pkt.bytes::<IPV4_HLEN>(off)? };
    if h[0] >> 4 != 4 {
        return None;
    }
    let ihl = (h[0] & 0x0f) as usize;
    if ihl < 5 {
        return None;
    }
    let frag = u16::from_be_bytes([h[6], h[7]]);
    Some(Ipv4 {
        src: [h[12], h[13], h[14], h[15]],
        dst: [h[16], h[17], h[18], h[19]],
        proto: h[9],
        is_fragment: frag & IPV4_MF_OFFSET != 0,
        l4_off: off + ihl * 4,
    })
}

pub struct Ipv6 {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// The fixed header's next header. Extension headers are not walked: see `is_ipv6_extension`.
    pub next_header: u8,
    pub l4_off: usize,
}

/// `::ffff:0:0/96`: IPv4-mapped addresses are never valid on the wire (RFC 4291 §2.5.5.2), and
/// would alias IPv4 VIP keys.
const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// The fixed IPv6 header; `None` when truncated, not version 6, or to an IPv4-mapped address.
#[inline(always)]
pub fn ipv6(pkt: &Packet, off: usize) -> Option<Ipv6> {
    let h = unsafe { &*pkt.bytes::<IPV6_HLEN>(off)? };
    if h[0] >> 4 != 6 {
        return None;
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    dst.copy_from_slice(&h[24..40]);
    if dst[..12] == V4_MAPPED_PREFIX {
        return None;
    }
    Some(Ipv6 {
        src,
        dst,
        next_header: h[6],
        l4_off: off + IPV6_HLEN,
    })
}

/// IPv6 extension headers (RFC 8200 §4 and the IANA list). Traffic to a VIP address that carries
/// one is dropped: weir's services are TCP/UDP and legitimate clients do not send these to them.
#[inline(always)]
pub fn is_ipv6_extension(next_header: u8) -> bool {
    matches!(
        next_header,
        0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254
    )
}

/// The destination port (network byte order) of a TCP or UDP header at `off`, once the whole
/// fixed transport header (TCP 20, UDP 8 bytes) is known to be in the packet.
#[inline(always)]
pub fn dst_port(pkt: &Packet, off: usize, l4_proto: u8) -> Option<u16> {
    let ports = if l4_proto == proto::TCP {
        let h = pkt.bytes::<TCP_HLEN>(off)?;
        unsafe { [(*h)[2], (*h)[3]] }
    } else {
        let h = pkt.bytes::<UDP_HLEN>(off)?;
        unsafe { [(*h)[2], (*h)[3]] }
    };
    Some(u16::from_ne_bytes(ports))
}
