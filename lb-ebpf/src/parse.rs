//! Header parsing with bounds checks the verifier accepts. Each function checks the whole header
//! it reads against `data_end` before touching it; a short packet yields `None`/`Err`.
//!
//! Addresses are read as 32-bit words (as Katran and Cilium read `iph->daddr`): the IP header sits
//! 2-byte aligned after Ethernet, and the kernel accepts such loads from packet memory on the
//! architectures XDP runs on, while byte-wise copies cost four times the instructions.

use aya_ebpf::programs::XdpContext;
use lb_common::{Addr, Stat, proto};

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
pub const IPV4_HLEN: usize = 20;
pub const IPV6_HLEN: usize = 40;
pub const TCP_HLEN: usize = 20;
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

    /// The address of `N` bytes at `off`, when they lie inside the packet.
    #[inline(always)]
    pub fn bytes<const N: usize>(&self, off: usize) -> Option<usize> {
        let at = self.start + off;
        if at + N > self.end {
            return None;
        }
        Some(at)
    }
}

/// Reads a byte at `at` (already bounds-checked).
#[inline(always)]
pub fn u8_at(at: usize) -> u8 {
    unsafe { *(at as *const u8) }
}

/// Reads a 16-bit field in network order, returned as it lies in memory.
#[inline(always)]
pub fn u16_at(at: usize) -> u16 {
    unsafe { *(at as *const u16) }
}

/// Reads a 32-bit word as it lies in memory (see the module note on alignment).
#[inline(always)]
pub fn u32_at(at: usize) -> u32 {
    unsafe { *(at as *const u32) }
}

/// Writes a byte at `at` (already bounds-checked).
#[inline(always)]
pub fn put_u8(at: usize, v: u8) {
    unsafe { *(at as *mut u8) = v }
}

/// Writes a 16-bit field as it will lie in memory (callers pass network order).
#[inline(always)]
pub fn put_u16(at: usize, v: u16) {
    unsafe { *(at as *mut u16) = v }
}

/// Writes a 32-bit word as it will lie in memory (callers pass network order).
#[inline(always)]
pub fn put_u32(at: usize, v: u32) {
    unsafe { *(at as *mut u32) = v }
}

pub enum L3 {
    V4 { off: usize },
    V6 { off: usize },
}

/// Ethernet, with at most one 802.1Q/802.1ad tag. Returns where the IP header starts.
#[inline(always)]
pub fn l3(pkt: &Packet) -> Result<L3, Stat> {
    let eth = pkt.bytes::<ETH_HLEN>(0).ok_or(Stat::DropMalformed)?;
    let mut ethertype = u16::from_be(u16_at(eth + 12));
    let mut off = ETH_HLEN;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        let tag = pkt.bytes::<VLAN_HLEN>(off).ok_or(Stat::DropMalformed)?;
        ethertype = u16::from_be(u16_at(tag + 2));
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
    /// Source address word, as in the packet (network order).
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub is_fragment: bool,
    /// Where the transport header starts (honours IHL, options included).
    pub l4_off: usize,
}

impl Ipv4 {
    /// The source octets, for the deny-list trie.
    #[inline(always)]
    pub fn src_octets(&self) -> [u8; 4] {
        self.src.to_ne_bytes()
    }
}

/// The fixed IPv4 header; `None` when truncated, not version 4, or IHL < 5.
#[inline(always)]
pub fn ipv4(pkt: &Packet, off: usize) -> Option<Ipv4> {
    let h = pkt.bytes::<IPV4_HLEN>(off)?;
    let version_ihl = u8_at(h);
    if version_ihl >> 4 != 4 {
        return None;
    }
    let ihl = (version_ihl & 0x0f) as usize;
    if ihl < 5 {
        return None;
    }
    let frag = u16::from_be(u16_at(h + 6));
    Some(Ipv4 {
        src: u32_at(h + 12),
        dst: u32_at(h + 16),
        proto: u8_at(h + 9),
        is_fragment: frag & IPV4_MF_OFFSET != 0,
        l4_off: off + ihl * 4,
    })
}

pub struct Ipv6 {
    /// Where the fixed header starts (the source address is read only when the deny-list needs it).
    hdr: usize,
    pub dst: Addr,
    /// The fixed header's next header. Extension headers are not walked: see `is_ipv6_extension`.
    pub next_header: u8,
    pub l4_off: usize,
}

impl Ipv6 {
    /// The source octets, for the deny-list trie.
    #[inline(always)]
    pub fn src_octets(&self) -> [u8; 16] {
        let w = [
            u32_at(self.hdr + 8),
            u32_at(self.hdr + 12),
            u32_at(self.hdr + 16),
            u32_at(self.hdr + 20),
        ];
        Addr::from_words(w).0
    }
}

/// `::ffff:0:0/96`, as the third word of an address: IPv4-mapped addresses are never valid on
/// the wire (RFC 4291 §2.5.5.2), and would alias IPv4 VIP keys.
const V4_MAPPED_WORD2: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

/// The fixed IPv6 header; `None` when truncated, not version 6, or to an IPv4-mapped address.
#[inline(always)]
pub fn ipv6(pkt: &Packet, off: usize) -> Option<Ipv6> {
    let h = pkt.bytes::<IPV6_HLEN>(off)?;
    if u8_at(h) >> 4 != 6 {
        return None;
    }
    let dst = [
        u32_at(h + 24),
        u32_at(h + 28),
        u32_at(h + 32),
        u32_at(h + 36),
    ];
    if dst[0] == 0 && dst[1] == 0 && dst[2] == V4_MAPPED_WORD2 {
        return None;
    }
    Some(Ipv6 {
        hdr: h,
        dst: Addr::from_words(dst),
        next_header: u8_at(h + 6),
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
    let h = if l4_proto == proto::TCP {
        pkt.bytes::<TCP_HLEN>(off)?
    } else {
        pkt.bytes::<UDP_HLEN>(off)?
    };
    Some(u16_at(h + 2))
}
