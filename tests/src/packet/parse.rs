//! Decoding a frame into its fields, with every checksum verified. Never panics: malformed
//! or truncated input is a [`ParseError`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::addr::Mac;
use super::checksum::{pseudo_header_sum, verifies};
use super::layers::{ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, VlanTag, proto};
use super::tcp_opt::TcpOpt;

/// Why a frame did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The frame ends inside a header.
    #[error("{layer}: truncated at byte {at}: need {need} more bytes, {have} left")]
    Truncated {
        /// Layer being decoded.
        layer: &'static str,
        /// Offset in the frame.
        at: usize,
        /// Bytes needed.
        need: usize,
        /// Bytes left.
        have: usize,
    },
    /// A field holds an impossible value.
    #[error("{layer}: {what}")]
    Invalid {
        /// Layer being decoded.
        layer: &'static str,
        /// What is wrong.
        what: String,
    },
}

fn invalid(layer: &'static str, what: impl Into<String>) -> ParseError {
    ParseError::Invalid {
        layer,
        what: what.into(),
    }
}

/// A cursor over the frame that reports truncation instead of panicking.
struct Cur<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, layer: &'static str, n: usize) -> Result<&'a [u8], ParseError> {
        let rest = &self.b[self.at..];
        if rest.len() < n {
            return Err(ParseError::Truncated {
                layer,
                at: self.at,
                need: n,
                have: rest.len(),
            });
        }
        self.at += n;
        Ok(&rest[..n])
    }
    fn rest(&self) -> &'a [u8] {
        &self.b[self.at..]
    }
}

fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}
fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Decoded Ethernet header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EthInfo {
    /// Destination MAC.
    pub dst: Mac,
    /// Source MAC.
    pub src: Mac,
    /// Tags, outermost first.
    pub vlans: Vec<VlanTag>,
    /// EtherType after the tags.
    pub ethertype: u16,
}

/// Decoded IPv4 header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Info {
    /// IHL in words.
    pub ihl: u8,
    /// TOS byte.
    pub tos: u8,
    /// Total length field.
    pub total_len: u16,
    /// Identification.
    pub id: u16,
    /// DF flag.
    pub df: bool,
    /// MF flag.
    pub mf: bool,
    /// Fragment offset (8-byte units).
    pub frag_offset: u16,
    /// TTL.
    pub ttl: u8,
    /// Protocol.
    pub proto: u8,
    /// Header checksum field.
    pub checksum: u16,
    /// Whether it verifies.
    pub checksum_ok: bool,
    /// Source.
    pub src: Ipv4Addr,
    /// Destination.
    pub dst: Ipv4Addr,
    /// Option bytes (with their padding).
    pub options: Vec<u8>,
}

/// Decoded IPv6 extension header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtInfo {
    /// Its own protocol number (0 hop-by-hop, 43 routing, 44 fragment, 60 destination options).
    pub kind: u8,
    /// Its Next Header field.
    pub next_header: u8,
    /// Its whole length in bytes.
    pub len: usize,
    /// For a fragment header: offset (8-byte units), M flag, identification.
    pub fragment: Option<(u16, bool, u32)>,
}

/// Decoded IPv6 header and extension headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Info {
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label.
    pub flow_label: u32,
    /// Payload length field.
    pub payload_len: u16,
    /// Fixed header's Next Header.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source.
    pub src: Ipv6Addr,
    /// Destination.
    pub dst: Ipv6Addr,
    /// Extension headers in order.
    pub ext: Vec<ExtInfo>,
    /// Upper-layer protocol after the extension headers.
    pub upper_proto: u8,
}

/// Decoded network layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpInfo {
    /// IPv4.
    V4(Ipv4Info),
    /// IPv6.
    V6(Ipv6Info),
}

/// Decoded TCP header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Data offset in words.
    pub data_offset: u8,
    /// Flag bits.
    pub flags: u8,
    /// Window.
    pub window: u16,
    /// Checksum field.
    pub checksum: u16,
    /// Whether it verifies; `None` in a fragment (the segment is not all here).
    pub checksum_ok: Option<bool>,
    /// Urgent pointer.
    pub urg_ptr: u16,
    /// Parsed options (NOPs included, the EOL and padding not).
    pub options: Vec<TcpOpt>,
}

/// Decoded UDP header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpInfo {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Length field.
    pub len: u16,
    /// Checksum field.
    pub checksum: u16,
    /// Whether it verifies; `None` for 0 over IPv4 (no checksum) or in a fragment.
    pub checksum_ok: Option<bool>,
}

/// Decoded ICMP / ICMPv6 header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpInfo {
    /// ICMPv6 (else ICMP).
    pub v6: bool,
    /// Type.
    pub typ: u8,
    /// Code.
    pub code: u8,
    /// Checksum field.
    pub checksum: u16,
    /// Whether it verifies; `None` in a fragment.
    pub checksum_ok: Option<bool>,
    /// The 4 bytes after the checksum (id, seq for echo).
    pub rest: [u8; 4],
}

/// Decoded transport layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L4Info {
    /// TCP.
    Tcp(TcpInfo),
    /// UDP.
    Udp(UdpInfo),
    /// ICMP / ICMPv6.
    Icmp(IcmpInfo),
}

/// A decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Ethernet.
    pub eth: EthInfo,
    /// Network layer, if the EtherType is IPv4 or IPv6.
    pub ip: Option<IpInfo>,
    /// Transport layer, if known and not in a non-first fragment.
    pub l4: Option<L4Info>,
    /// Bytes after the last decoded header (bounded by the IP length; link padding dropped).
    pub payload: Vec<u8>,
}

impl Frame {
    /// Decodes a frame. See [`ParseError`] for what is rejected.
    pub fn parse(bytes: &[u8]) -> Result<Frame, ParseError> {
        let mut c = Cur { b: bytes, at: 0 };
        let h = c.take("eth", 14)?;
        let dst = Mac([h[0], h[1], h[2], h[3], h[4], h[5]]);
        let src = Mac([h[6], h[7], h[8], h[9], h[10], h[11]]);
        let mut ethertype = be16(h, 12);
        let mut vlans = Vec::new();
        while ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            let t = c.take("vlan", 4)?;
            let tci = be16(t, 0);
            vlans.push(VlanTag {
                tpid: ethertype,
                pcp: (tci >> 13) as u8,
                dei: tci & 0x1000 != 0,
                vid: tci & 0xfff,
            });
            ethertype = be16(t, 2);
        }
        let eth = EthInfo {
            dst,
            src,
            vlans,
            ethertype,
        };
        let mut f = Frame {
            eth,
            ip: None,
            l4: None,
            payload: Vec::new(),
        };
        match ethertype {
            ETH_P_IP => f.parse_v4(c)?,
            ETH_P_IPV6 => f.parse_v6(c)?,
            _ => f.payload = c.rest().to_vec(),
        }
        Ok(f)
    }

    fn parse_v4(&mut self, mut c: Cur<'_>) -> Result<(), ParseError> {
        let start = c.at;
        let h = c.take("ipv4", 20)?;
        if h[0] >> 4 != 4 {
            return Err(invalid(
                "ipv4",
                format!("version {} under EtherType 0x0800", h[0] >> 4),
            ));
        }
        let ihl = h[0] & 0xf;
        if ihl < 5 {
            return Err(invalid("ipv4", format!("IHL {ihl} < 5")));
        }
        let options = c.take("ipv4 options", usize::from(ihl) * 4 - 20)?.to_vec();
        let hdr = &c.b[start..c.at];
        let total_len = be16(h, 2);
        let avail = c.b.len() - start;
        if usize::from(total_len) < hdr.len() {
            return Err(invalid(
                "ipv4",
                format!("total length {total_len} < header length {}", hdr.len()),
            ));
        }
        if usize::from(total_len) > avail {
            return Err(ParseError::Truncated {
                layer: "ipv4 packet",
                at: start,
                need: total_len.into(),
                have: avail,
            });
        }
        let frag = be16(h, 6);
        let info = Ipv4Info {
            ihl,
            tos: h[1],
            total_len,
            id: be16(h, 4),
            df: frag & 0x4000 != 0,
            mf: frag & 0x2000 != 0,
            frag_offset: frag & 0x1fff,
            ttl: h[8],
            proto: h[9],
            checksum: be16(h, 10),
            checksum_ok: verifies(0, hdr),
            src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            options,
        };
        let body = &c.b[c.at..start + usize::from(total_len)];
        let (p, whole, first) = (
            info.proto,
            !info.mf && info.frag_offset == 0,
            info.frag_offset == 0,
        );
        let (s, d) = (info.src.into(), info.dst.into());
        self.ip = Some(IpInfo::V4(info));
        self.parse_l4(p, s, d, body, whole, first)
    }

    fn parse_v6(&mut self, mut c: Cur<'_>) -> Result<(), ParseError> {
        let start = c.at;
        let h = c.take("ipv6", 40)?;
        if h[0] >> 4 != 6 {
            return Err(invalid(
                "ipv6",
                format!("version {} under EtherType 0x86dd", h[0] >> 4),
            ));
        }
        let payload_len = be16(h, 4);
        let end = start + 40 + usize::from(payload_len);
        if end > c.b.len() {
            return Err(ParseError::Truncated {
                layer: "ipv6 payload",
                at: c.at,
                need: payload_len.into(),
                have: c.b.len() - c.at,
            });
        }
        let mut c = Cur {
            b: &c.b[..end],
            at: c.at,
        };
        let addr = |o: usize| {
            let mut a = [0u8; 16];
            a.copy_from_slice(&h[o..o + 16]);
            Ipv6Addr::from(a)
        };
        let (src, dst) = (addr(8), addr(24));
        let vtf = be32(h, 0);
        let mut next = h[6];
        let mut ext = Vec::new();
        let mut whole = true;
        let mut first = true;
        while matches!(
            next,
            proto::HOPOPTS | proto::ROUTING | proto::FRAGMENT | proto::DSTOPTS
        ) {
            let e = c.take("ipv6 ext", 2)?;
            let (nh, len) = (
                e[0],
                if next == proto::FRAGMENT {
                    8
                } else {
                    (usize::from(e[1]) + 1) * 8
                },
            );
            let body = c.take("ipv6 ext", len - 2)?;
            let fragment = (next == proto::FRAGMENT).then(|| {
                let o = be16(body, 0);
                (o >> 3, o & 1 != 0, be32(body, 2))
            });
            if let Some((off, more, _)) = fragment {
                whole = off == 0 && !more;
                first = off == 0;
            }
            ext.push(ExtInfo {
                kind: next,
                next_header: nh,
                len,
                fragment,
            });
            next = nh;
        }
        self.ip = Some(IpInfo::V6(Ipv6Info {
            traffic_class: (vtf >> 20) as u8,
            flow_label: vtf & 0xfffff,
            payload_len,
            next_header: h[6],
            hop_limit: h[7],
            src,
            dst,
            ext,
            upper_proto: next,
        }));
        self.parse_l4(next, src.into(), dst.into(), c.rest(), whole, first)
    }

    fn parse_l4(
        &mut self,
        p: u8,
        src: IpAddr,
        dst: IpAddr,
        seg: &[u8],
        whole: bool,
        first: bool,
    ) -> Result<(), ParseError> {
        let verify = |pseudo: bool| {
            whole.then(|| {
                verifies(
                    if pseudo {
                        pseudo_header_sum(src, dst, p, seg.len() as u32)
                    } else {
                        0
                    },
                    seg,
                )
            })
        };
        let mut c = Cur { b: seg, at: 0 };
        if !first {
            self.payload = seg.to_vec();
            return Ok(());
        }
        self.l4 = match p {
            proto::TCP => {
                let h = c.take("tcp", 20)?;
                let doff = h[12] >> 4;
                if doff < 5 {
                    return Err(invalid("tcp", format!("data offset {doff} < 5")));
                }
                let opts = c.take("tcp options", usize::from(doff) * 4 - 20)?;
                let options = TcpOpt::parse_list(opts).map_err(|e| invalid("tcp options", e))?;
                Some(L4Info::Tcp(TcpInfo {
                    sport: be16(h, 0),
                    dport: be16(h, 2),
                    seq: be32(h, 4),
                    ack: be32(h, 8),
                    data_offset: doff,
                    flags: h[13],
                    window: be16(h, 14),
                    checksum: be16(h, 16),
                    checksum_ok: verify(true),
                    urg_ptr: be16(h, 18),
                    options,
                }))
            }
            proto::UDP => {
                let h = c.take("udp", 8)?;
                let checksum = be16(h, 6);
                let none = checksum == 0 && src.is_ipv4();
                Some(L4Info::Udp(UdpInfo {
                    sport: be16(h, 0),
                    dport: be16(h, 2),
                    len: be16(h, 4),
                    checksum,
                    checksum_ok: if none { None } else { verify(true) },
                }))
            }
            proto::ICMP | proto::ICMPV6 => {
                let h = c.take("icmp", 8)?;
                Some(L4Info::Icmp(IcmpInfo {
                    v6: p == proto::ICMPV6,
                    typ: h[0],
                    code: h[1],
                    checksum: be16(h, 2),
                    checksum_ok: verify(p == proto::ICMPV6),
                    rest: [h[4], h[5], h[6], h[7]],
                }))
            }
            _ => None,
        };
        self.payload = c.rest().to_vec();
        Ok(())
    }

    /// IPv4 header, if any.
    pub fn ipv4(&self) -> Option<&Ipv4Info> {
        match &self.ip {
            Some(IpInfo::V4(h)) => Some(h),
            _ => None,
        }
    }
    /// IPv6 header, if any.
    pub fn ipv6(&self) -> Option<&Ipv6Info> {
        match &self.ip {
            Some(IpInfo::V6(h)) => Some(h),
            _ => None,
        }
    }
    /// TCP header, if any.
    pub fn tcp(&self) -> Option<&TcpInfo> {
        match &self.l4 {
            Some(L4Info::Tcp(h)) => Some(h),
            _ => None,
        }
    }
    /// UDP header, if any.
    pub fn udp(&self) -> Option<&UdpInfo> {
        match &self.l4 {
            Some(L4Info::Udp(h)) => Some(h),
            _ => None,
        }
    }
    /// ICMP / ICMPv6 header, if any.
    pub fn icmp(&self) -> Option<&IcmpInfo> {
        match &self.l4 {
            Some(L4Info::Icmp(h)) => Some(h),
            _ => None,
        }
    }
    /// (source, destination) IP addresses.
    pub fn addrs(&self) -> Option<(IpAddr, IpAddr)> {
        match &self.ip {
            Some(IpInfo::V4(h)) => Some((h.src.into(), h.dst.into())),
            Some(IpInfo::V6(h)) => Some((h.src.into(), h.dst.into())),
            None => None,
        }
    }
    /// (source, destination) TCP or UDP ports.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match &self.l4 {
            Some(L4Info::Tcp(h)) => Some((h.sport, h.dport)),
            Some(L4Info::Udp(h)) => Some((h.sport, h.dport)),
            _ => None,
        }
    }
    /// True unless some checksum present in the frame fails to verify.
    pub fn checksums_ok(&self) -> bool {
        let ip = self.ipv4().is_none_or(|h| h.checksum_ok);
        let l4 = match &self.l4 {
            Some(L4Info::Tcp(h)) => h.checksum_ok,
            Some(L4Info::Udp(h)) => h.checksum_ok,
            Some(L4Info::Icmp(h)) => h.checksum_ok,
            None => None,
        };
        ip && l4 != Some(false)
    }
}
