//! The fluent [`Packet`] builder. Each method sets a field of the layer it names and returns
//! the builder; methods of a layer that was not added yet panic with a message saying which
//! layer to add first (a bug in the test, not bad input).

use super::addr::{IntoMac, IntoV4, IntoV6};
use super::layers::*;
use super::tcp_opt::{TcpOpt, flags};

/// A frame under construction. See the [module docs](super) for examples.
#[derive(Clone, Debug, Default)]
pub struct Packet {
    /// Ethernet header.
    pub eth: Eth,
    /// Network layer.
    pub l3: L3,
    /// Transport layer.
    pub l4: L4,
    /// Bytes after the last header.
    pub payload: Vec<u8>,
    /// Cut the built frame to this many bytes.
    pub truncate: Option<usize>,
}

macro_rules! layer {
    ($self:ident, $pat:path, $name:literal) => {
        match &mut $self.l4 {
            $pat(x) => x,
            _ => panic!(concat!(
                "packet builder: add .",
                $name,
                "(..) before this call"
            )),
        }
    };
}

impl Packet {
    /// An Ethernet frame 02:00:00:00:00:01 → 02:00:00:00:00:02 with nothing in it yet.
    pub fn new() -> Self {
        Self::default()
    }

    // ---- Ethernet ----

    /// Sets source and destination MACs.
    pub fn eth(mut self, src: impl IntoMac, dst: impl IntoMac) -> Self {
        self.eth.src = src.into_mac();
        self.eth.dst = dst.into_mac();
        self
    }

    /// Appends an 802.1Q tag (TPID 0x8100) with this VLAN id.
    pub fn vlan(self, vid: u16) -> Self {
        self.vlan_tag(VlanTag {
            tpid: ETH_P_8021Q,
            pcp: 0,
            dei: false,
            vid,
        })
    }

    /// 802.1ad: an outer service tag (TPID 0x88a8) then an inner 802.1Q tag.
    pub fn qinq(self, outer_vid: u16, inner_vid: u16) -> Self {
        self.vlan_tag(VlanTag {
            tpid: ETH_P_8021AD,
            pcp: 0,
            dei: false,
            vid: outer_vid,
        })
        .vlan(inner_vid)
    }

    /// Appends any tag (after those already added).
    pub fn vlan_tag(mut self, tag: VlanTag) -> Self {
        self.eth.vlans.push(tag);
        self
    }

    /// Overrides the EtherType (after the tags).
    pub fn ethertype(mut self, t: u16) -> Self {
        self.eth.ethertype = Some(t);
        self
    }

    // ---- IP, both families ----

    /// Adds an IPv4 header (TTL 64, id 0, no flags, no options).
    pub fn ipv4(mut self, src: impl IntoV4, dst: impl IntoV4) -> Self {
        self.l3 = L3::V4(Ipv4 {
            version: 4,
            ihl: None,
            tos: 0,
            total_len: None,
            id: 0,
            df: false,
            mf: false,
            frag_offset: 0,
            ttl: 64,
            proto: None,
            csum: Csum::Auto,
            src: src.into_v4(),
            dst: dst.into_v4(),
            options: vec![],
        });
        self
    }

    /// Adds an IPv6 header (hop limit 64, no extension headers).
    pub fn ipv6(mut self, src: impl IntoV6, dst: impl IntoV6) -> Self {
        self.l3 = L3::V6(Ipv6 {
            version: 6,
            traffic_class: 0,
            flow_label: 0,
            payload_len: None,
            next_header: None,
            hop_limit: 64,
            src: src.into_v6(),
            dst: dst.into_v6(),
            ext: vec![],
        });
        self
    }

    fn v4(&mut self) -> &mut Ipv4 {
        match &mut self.l3 {
            L3::V4(h) => h,
            _ => panic!("packet builder: add .ipv4(..) before this call"),
        }
    }

    fn v6(&mut self) -> &mut Ipv6 {
        match &mut self.l3 {
            L3::V6(h) => h,
            _ => panic!("packet builder: add .ipv6(..) before this call"),
        }
    }

    /// IPv4 TTL or IPv6 hop limit.
    pub fn ttl(mut self, ttl: u8) -> Self {
        match &mut self.l3 {
            L3::V4(h) => h.ttl = ttl,
            L3::V6(h) => h.hop_limit = ttl,
            L3::None => panic!("packet builder: add .ipv4(..) or .ipv6(..) before .ttl()"),
        }
        self
    }

    /// IPv4 TOS / IPv6 traffic class byte.
    pub fn tos(mut self, tos: u8) -> Self {
        match &mut self.l3 {
            L3::V4(h) => h.tos = tos,
            L3::V6(h) => h.traffic_class = tos,
            L3::None => panic!("packet builder: add .ipv4(..) or .ipv6(..) before .tos()"),
        }
        self
    }

    /// Sets the ECN bits (0..=3; 3 = CE) of the TOS / traffic class, keeping the DSCP.
    pub fn ecn(self, ecn: u8) -> Self {
        let tos = match &self.l3 {
            L3::V4(h) => h.tos,
            L3::V6(h) => h.traffic_class,
            L3::None => 0,
        };
        self.tos((tos & !3) | (ecn & 3))
    }

    /// Overrides the protocol (IPv4) or the fixed header's next header (IPv6).
    pub fn ip_proto(mut self, p: u8) -> Self {
        match &mut self.l3 {
            L3::V4(h) => h.proto = Some(p),
            L3::V6(h) => h.next_header = Some(p),
            L3::None => panic!("packet builder: add .ipv4(..) or .ipv6(..) before .ip_proto()"),
        }
        self
    }

    /// Overrides the version nibble (to build a deliberately broken header).
    pub fn ip_version(mut self, v: u8) -> Self {
        match &mut self.l3 {
            L3::V4(h) => h.version = v,
            L3::V6(h) => h.version = v,
            L3::None => panic!("packet builder: add .ipv4(..) or .ipv6(..) before .ip_version()"),
        }
        self
    }

    /// IPv4 identification.
    pub fn ip_id(mut self, id: u16) -> Self {
        self.v4().id = id;
        self
    }

    /// Sets IPv4 DF.
    pub fn df(mut self) -> Self {
        self.v4().df = true;
        self
    }

    /// Sets IPv4 MF.
    pub fn mf(mut self) -> Self {
        self.v4().mf = true;
        self
    }

    /// IPv4 fragment offset in 8-byte units.
    pub fn frag_offset(mut self, units: u16) -> Self {
        self.v4().frag_offset = units;
        self
    }

    /// IPv4 option bytes (zero-padded to 4n; the IHL follows unless overridden).
    pub fn ip_options(mut self, opts: &[u8]) -> Self {
        self.v4().options = opts.to_vec();
        self
    }

    /// Overrides the IPv4 IHL field (words), whatever the options are.
    pub fn ihl(mut self, ihl: u8) -> Self {
        self.v4().ihl = Some(ihl);
        self
    }

    /// Overrides the IPv4 total length field.
    pub fn ip_total_len(mut self, len: u16) -> Self {
        self.v4().total_len = Some(len);
        self
    }

    /// Sets the IPv4 header checksum to exactly `c`.
    pub fn ip_checksum(mut self, c: u16) -> Self {
        self.v4().csum = Csum::Set(c);
        self
    }

    /// Makes the IPv4 header checksum wrong.
    pub fn bad_ip_checksum(mut self) -> Self {
        self.v4().csum = Csum::Wrong;
        self
    }

    /// IPv6 flow label.
    pub fn flow_label(mut self, l: u32) -> Self {
        self.v6().flow_label = l;
        self
    }

    /// Overrides the IPv6 payload length field.
    pub fn ip6_payload_len(mut self, len: u16) -> Self {
        self.v6().payload_len = Some(len);
        self
    }

    /// Appends an IPv6 extension header; next-header fields are chained automatically.
    pub fn ext(mut self, h: ExtHeader) -> Self {
        self.v6().ext.push(h);
        self
    }

    /// Appends a hop-by-hop options header with these option TLVs (padding added).
    pub fn hop_by_hop(self, opts: &[u8]) -> Self {
        self.ext(ExtHeader::HopByHop(opts.to_vec()))
    }

    /// Appends a destination options header with these option TLVs (padding added).
    pub fn dest_opts(self, opts: &[u8]) -> Self {
        self.ext(ExtHeader::DestOpts(opts.to_vec()))
    }

    /// Appends an IPv6 fragment header.
    pub fn fragment(self, offset: u16, more: bool, id: u32) -> Self {
        self.ext(ExtHeader::Fragment { offset, more, id })
    }

    // ---- L4 ----

    /// Adds a TCP header (no flags, seq/ack 0, window 65535, no options).
    pub fn tcp(mut self, sport: u16, dport: u16) -> Self {
        self.l4 = L4::Tcp(Tcp {
            sport,
            dport,
            seq: 0,
            ack: 0,
            flags: 0,
            window: 65535,
            urg_ptr: 0,
            options: vec![],
            data_offset: None,
            csum: Csum::Auto,
        });
        self
    }

    /// Adds a UDP header.
    pub fn udp(mut self, sport: u16, dport: u16) -> Self {
        self.l4 = L4::Udp(Udp {
            sport,
            dport,
            len: None,
            csum: Csum::Auto,
        });
        self
    }

    /// Adds an ICMP (IPv4) or ICMPv6 (IPv6) echo request.
    pub fn icmp_echo(mut self, id: u16, seq: u16) -> Self {
        let mut rest = [0; 4];
        rest[..2].copy_from_slice(&id.to_be_bytes());
        rest[2..].copy_from_slice(&seq.to_be_bytes());
        self.l4 = L4::Icmp(Icmp {
            typ: None,
            reply: false,
            code: 0,
            rest,
            csum: Csum::Auto,
        });
        self
    }

    /// Adds an ICMP / ICMPv6 echo reply.
    pub fn icmp_echo_reply(mut self, id: u16, seq: u16) -> Self {
        self = self.icmp_echo(id, seq);
        layer!(self, L4::Icmp, "icmp_echo").reply = true;
        self
    }

    /// Adds an ICMP / ICMPv6 message of any type and code; `rest` is the 4 bytes after the
    /// checksum.
    pub fn icmp(mut self, typ: u8, code: u8, rest: [u8; 4]) -> Self {
        self.l4 = L4::Icmp(Icmp {
            typ: Some(typ),
            reply: false,
            code,
            rest,
            csum: Csum::Auto,
        });
        self
    }

    /// TCP sequence number.
    pub fn seq(mut self, seq: u32) -> Self {
        layer!(self, L4::Tcp, "tcp").seq = seq;
        self
    }

    /// TCP acknowledgment number (does not set the ACK flag: see [`ack`](Self::ack)).
    pub fn ack_seq(mut self, ack: u32) -> Self {
        layer!(self, L4::Tcp, "tcp").ack = ack;
        self
    }

    /// ORs TCP flag bits (see [`flags`](super::flags)).
    pub fn flags(mut self, f: u8) -> Self {
        layer!(self, L4::Tcp, "tcp").flags |= f;
        self
    }

    /// Sets SYN.
    pub fn syn(self) -> Self {
        self.flags(flags::SYN)
    }
    /// Sets ACK.
    pub fn ack(self) -> Self {
        self.flags(flags::ACK)
    }
    /// Sets RST.
    pub fn rst(self) -> Self {
        self.flags(flags::RST)
    }
    /// Sets FIN.
    pub fn fin(self) -> Self {
        self.flags(flags::FIN)
    }
    /// Sets PSH.
    pub fn psh(self) -> Self {
        self.flags(flags::PSH)
    }
    /// Sets URG.
    pub fn urg(self) -> Self {
        self.flags(flags::URG)
    }
    /// Sets ECE.
    pub fn ece(self) -> Self {
        self.flags(flags::ECE)
    }
    /// Sets CWR.
    pub fn cwr(self) -> Self {
        self.flags(flags::CWR)
    }

    /// TCP window.
    pub fn window(mut self, w: u16) -> Self {
        layer!(self, L4::Tcp, "tcp").window = w;
        self
    }

    /// Overrides the TCP data offset field (words).
    pub fn data_offset(mut self, words: u8) -> Self {
        layer!(self, L4::Tcp, "tcp").data_offset = Some(words);
        self
    }

    /// Appends a TCP option (options are laid out in call order, then zero-padded to 4n).
    pub fn tcp_opt(mut self, o: TcpOpt) -> Self {
        layer!(self, L4::Tcp, "tcp").options.push(o);
        self
    }
    /// Appends MSS.
    pub fn mss(self, mss: u16) -> Self {
        self.tcp_opt(TcpOpt::Mss(mss))
    }
    /// Appends window scale.
    pub fn wscale(self, shift: u8) -> Self {
        self.tcp_opt(TcpOpt::WScale(shift))
    }
    /// Appends SACK-permitted.
    pub fn sack_perm(self) -> Self {
        self.tcp_opt(TcpOpt::SackPerm)
    }
    /// Appends timestamps.
    pub fn timestamp(self, val: u32, ecr: u32) -> Self {
        self.tcp_opt(TcpOpt::Timestamp(val, ecr))
    }
    /// Appends a NOP.
    pub fn nop(self) -> Self {
        self.tcp_opt(TcpOpt::Nop)
    }

    /// Overrides the UDP length field.
    pub fn udp_len(mut self, len: u16) -> Self {
        layer!(self, L4::Udp, "udp").len = Some(len);
        self
    }

    fn l4_csum(&mut self) -> &mut Csum {
        match &mut self.l4 {
            L4::Tcp(t) => &mut t.csum,
            L4::Udp(u) => &mut u.csum,
            L4::Icmp(i) => &mut i.csum,
            L4::None => panic!("packet builder: add .tcp/.udp/.icmp before an L4 checksum call"),
        }
    }

    /// Sets the TCP/UDP/ICMP checksum to exactly `c` (`0` on UDP = no checksum).
    pub fn l4_checksum(mut self, c: u16) -> Self {
        *self.l4_csum() = Csum::Set(c);
        self
    }

    /// Makes the TCP/UDP/ICMP checksum wrong.
    pub fn bad_l4_checksum(mut self) -> Self {
        *self.l4_csum() = Csum::Wrong;
        self
    }

    // ---- payload and truncation ----

    /// Sets the payload.
    pub fn payload(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.payload = bytes.as_ref().to_vec();
        self
    }

    /// Sets an `n`-byte payload 0, 1, 2, … 255, 0, 1 …
    pub fn payload_pattern(mut self, n: usize) -> Self {
        self.payload = (0..n).map(|i| i as u8).collect();
        self
    }

    /// Cuts the built frame to `n` bytes (after all lengths and checksums were computed).
    pub fn truncate(mut self, n: usize) -> Self {
        self.truncate = Some(n);
        self
    }
}
