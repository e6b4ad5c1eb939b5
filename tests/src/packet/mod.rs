//! Raw Ethernet frames for `BPF_PROG_TEST_RUN` fixtures and packet generators, and the
//! inverse: decoding a frame into fields for assertions.
//!
//! Build with a fluent [`Packet`]: layers are added outermost first, and each knob applies to
//! the layer it names. Lengths and checksums (IPv4 header, TCP/UDP/ICMPv6 with the pseudo-header
//! of either family, ICMP) are right unless a test asks otherwise.
//!
//! ```
//! use weir_tests::packet::{Frame, Packet, TcpOpt, flags};
//!
//! let syn = Packet::new()
//!     .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
//!     .vlan(100)
//!     .ipv4("10.0.0.1", "10.0.0.2").ttl(64).df()
//!     .tcp(40000, 80).syn().seq(1000).mss(1460).sack_perm().timestamp(1, 0).nop().wscale(7)
//!     .build();
//!
//! let f = Frame::parse(&syn).unwrap();
//! let tcp = f.tcp().unwrap();
//! assert_eq!(tcp.flags, flags::SYN);
//! assert_eq!(tcp.options[0], TcpOpt::Mss(1460));
//! assert_eq!(tcp.checksum_ok, Some(true));
//! assert!(f.checksums_ok());
//! println!("{}", f.summary());
//! ```
//!
//! Broken on purpose, IPv6 with extension headers, truncated:
//!
//! ```
//! use weir_tests::packet::{Frame, Packet, describe};
//!
//! let bad = Packet::new().ipv4("10.0.0.1", "10.0.0.2").bad_ip_checksum()
//!     .udp(53, 53).bad_l4_checksum().payload(b"x").build();
//! let f = Frame::parse(&bad).unwrap();
//! assert!(!f.ipv4().unwrap().checksum_ok);
//! assert_eq!(f.udp().unwrap().checksum_ok, Some(false));
//!
//! let v6 = Packet::new().ipv6("fc00::1", "fc00::2")
//!     .hop_by_hop(&[]).fragment(0, true, 7)
//!     .icmp_echo(1, 2).payload_pattern(32).build();
//! assert_eq!(Frame::parse(&v6).unwrap().ipv6().unwrap().ext.len(), 2);
//!
//! let cut = Packet::new().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).truncate(40).build();
//! assert_eq!(cut.len(), 40);
//! assert!(describe(&cut).contains("truncated"));
//! ```
//!
//! In assertions, [`assert_frames_eq`] prints a field-by-field diff
//! (`ip.ttl: expected 64, got 63`).

mod addr;
mod build;
pub mod checksum;
mod describe;
mod encode;
mod layers;
mod parse;
mod tcp_opt;

#[cfg(test)]
mod tests;

pub use addr::{IntoMac, IntoV4, IntoV6, Mac};
pub use build::Packet;
pub use describe::{assert_frames_eq, describe, diff};
pub use layers::{
    Csum, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, Eth, ExtHeader, Icmp, Ipv4, Ipv6, L3,
    L4, Tcp, Udp, VlanTag, proto,
};
pub use parse::{
    EthInfo, ExtInfo, Frame, IcmpInfo, IpInfo, Ipv4Info, Ipv6Info, L4Info, ParseError, TcpInfo,
    UdpInfo,
};
pub use tcp_opt::{TcpOpt, flags};
