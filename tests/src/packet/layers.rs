//! The layer descriptions a [`Packet`](super::Packet) is made of. Fields are public so a test
//! can reach past the fluent methods; every field has the default a fresh builder uses.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::addr::Mac;
use super::tcp_opt::TcpOpt;

/// How a checksum field is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Csum {
    /// The correct value (default).
    #[default]
    Auto,
    /// Exactly this value.
    Set(u16),
    /// A value guaranteed not to verify (see [`checksum::wrong`](super::checksum::wrong)).
    Wrong,
}

impl Csum {
    pub(crate) fn resolve(self, correct: u16) -> u16 {
        match self {
            Csum::Auto => correct,
            Csum::Set(v) => v,
            Csum::Wrong => super::checksum::wrong(correct),
        }
    }
}

/// EtherType of IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// TPID of an 802.1Q VLAN tag.
pub const ETH_P_8021Q: u16 = 0x8100;
/// TPID of an 802.1ad (QinQ service) tag.
pub const ETH_P_8021AD: u16 = 0x88a8;

/// IP protocol numbers used here.
pub mod proto {
    /// IPv6 hop-by-hop options.
    pub const HOPOPTS: u8 = 0;
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const NONE: u8 = 59;
    /// IPv6 destination options.
    pub const DSTOPTS: u8 = 60;
}

/// A VLAN tag: TPID (0x8100 or 0x88a8) and the TCI parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanTag {
    /// Tag protocol identifier.
    pub tpid: u16,
    /// Priority code point (3 bits).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN id (12 bits).
    pub vid: u16,
}

/// Ethernet header, tags outermost first.
#[derive(Clone, Debug)]
pub struct Eth {
    /// Source MAC (default 02:00:00:00:00:01).
    pub src: Mac,
    /// Destination MAC (default 02:00:00:00:00:02).
    pub dst: Mac,
    /// VLAN tags, outermost first.
    pub vlans: Vec<VlanTag>,
    /// EtherType override; by default derived from the L3 layer (0x88b5 when there is none).
    pub ethertype: Option<u16>,
}

impl Default for Eth {
    fn default() -> Self {
        Eth {
            src: Mac([2, 0, 0, 0, 0, 1]),
            dst: Mac([2, 0, 0, 0, 0, 2]),
            vlans: vec![],
            ethertype: None,
        }
    }
}

/// IPv4 header.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    /// Version field (4; set another to build a broken header).
    pub version: u8,
    /// IHL override in 32-bit words; by default 5 + options.
    pub ihl: Option<u8>,
    /// Type of service byte (DSCP << 2 | ECN).
    pub tos: u8,
    /// Total length override.
    pub total_len: Option<u16>,
    /// Identification.
    pub id: u16,
    /// Don't fragment.
    pub df: bool,
    /// More fragments.
    pub mf: bool,
    /// Fragment offset in 8-byte units (13 bits).
    pub frag_offset: u16,
    /// Time to live (default 64).
    pub ttl: u8,
    /// Protocol override; by default from the L4 layer (255 when there is none).
    pub proto: Option<u8>,
    /// Header checksum.
    pub csum: Csum,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Option bytes, zero-padded (EOL) to a multiple of 4.
    pub options: Vec<u8>,
}

/// An IPv6 extension header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtHeader {
    /// Hop-by-hop options: the option TLVs; padded with Pad1/PadN to a multiple of 8.
    HopByHop(Vec<u8>),
    /// Destination options: the option TLVs; padded like hop-by-hop.
    DestOpts(Vec<u8>),
    /// Routing header: type, segments left, then type-specific data (zero-padded to 8n+4).
    Routing {
        /// Routing type.
        typ: u8,
        /// Segments left.
        segments_left: u8,
        /// Type-specific data, starting with the 4 reserved/flag bytes.
        data: Vec<u8>,
    },
    /// Fragment header.
    Fragment {
        /// Offset in 8-byte units (13 bits).
        offset: u16,
        /// M flag.
        more: bool,
        /// Identification.
        id: u32,
    },
}

impl ExtHeader {
    /// Its protocol number (the value of the previous header's Next Header).
    pub fn proto(&self) -> u8 {
        match self {
            ExtHeader::HopByHop(_) => proto::HOPOPTS,
            ExtHeader::DestOpts(_) => proto::DSTOPTS,
            ExtHeader::Routing { .. } => proto::ROUTING,
            ExtHeader::Fragment { .. } => proto::FRAGMENT,
        }
    }
}

/// IPv6 fixed header plus extension headers.
#[derive(Clone, Debug)]
pub struct Ipv6 {
    /// Version field (6).
    pub version: u8,
    /// Traffic class (DSCP << 2 | ECN).
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Payload length override.
    pub payload_len: Option<u16>,
    /// Next-header override of the fixed header; by default the chain is computed.
    pub next_header: Option<u8>,
    /// Hop limit (default 64).
    pub hop_limit: u8,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Extension headers in order; each one's Next Header points at the following one.
    pub ext: Vec<ExtHeader>,
}

/// TCP header.
#[derive(Clone, Debug)]
pub struct Tcp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flag bits (see [`flags`](super::flags)).
    pub flags: u8,
    /// Window (default 65535).
    pub window: u16,
    /// Urgent pointer.
    pub urg_ptr: u16,
    /// Options in order; zero-padded to a multiple of 4.
    pub options: Vec<TcpOpt>,
    /// Data offset override in 32-bit words.
    pub data_offset: Option<u8>,
    /// Checksum.
    pub csum: Csum,
}

/// UDP header.
#[derive(Clone, Debug)]
pub struct Udp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Length override.
    pub len: Option<u16>,
    /// Checksum (`Csum::Set(0)` = none, legal over IPv4 only).
    pub csum: Csum,
}

/// ICMP or ICMPv6 (picked by the L3 family) header.
#[derive(Clone, Debug)]
pub struct Icmp {
    /// Type; `None` means echo request/reply of the L3 family (see `reply`).
    pub typ: Option<u8>,
    /// For echo with `typ: None`: reply instead of request.
    pub reply: bool,
    /// Code.
    pub code: u8,
    /// The 4 bytes after the checksum (id and sequence for echo).
    pub rest: [u8; 4],
    /// Checksum.
    pub csum: Csum,
}

/// The network layer.
#[derive(Clone, Debug, Default)]
pub enum L3 {
    /// No network layer (raw Ethernet payload).
    #[default]
    None,
    /// IPv4.
    V4(Ipv4),
    /// IPv6.
    V6(Ipv6),
}

/// The transport layer.
#[derive(Clone, Debug, Default)]
pub enum L4 {
    /// None: the payload follows the L3 header.
    #[default]
    None,
    /// TCP.
    Tcp(Tcp),
    /// UDP.
    Udp(Udp),
    /// ICMP / ICMPv6.
    Icmp(Icmp),
}
