//! Serialisation of a [`Packet`](super::Packet) into frame bytes, checksums included.

use std::net::{IpAddr, Ipv4Addr};

use super::Packet;
use super::checksum::{internet_checksum, l4_checksum};
use super::layers::*;

fn pad_to(v: &mut Vec<u8>, multiple: usize) {
    while !v.len().is_multiple_of(multiple) {
        v.push(0);
    }
}

/// Option TLVs padded with Pad1/PadN so that 2 + len is a multiple of 8.
fn pad_ipv6_options(opts: &[u8]) -> Vec<u8> {
    let mut v = opts.to_vec();
    let pad = (8 - (2 + v.len()) % 8) % 8;
    match pad {
        0 => {}
        1 => v.push(0),
        n => {
            v.extend([1, (n - 2) as u8]);
            v.extend(std::iter::repeat_n(0, n - 2));
        }
    }
    v
}

fn encode_ext(h: &ExtHeader, next: u8, out: &mut Vec<u8>) {
    let start = out.len();
    match h {
        ExtHeader::HopByHop(o) | ExtHeader::DestOpts(o) => {
            let body = pad_ipv6_options(o);
            out.extend([next, ((2 + body.len()) / 8 - 1) as u8]);
            out.extend(body);
        }
        ExtHeader::Routing {
            typ,
            segments_left,
            data,
        } => {
            out.extend([next, 0, *typ, *segments_left]);
            out.extend(data);
            let mut body = out.split_off(start);
            pad_to(&mut body, 8);
            body[1] = (body.len() / 8 - 1) as u8;
            out.extend(body);
        }
        ExtHeader::Fragment { offset, more, id } => {
            out.extend([next, 0]);
            out.extend(((offset << 3) | u16::from(*more)).to_be_bytes());
            out.extend(id.to_be_bytes());
        }
    }
}

impl Packet {
    /// The protocol number of the L4 layer as it goes into pseudo-headers.
    fn l4_proto(&self) -> Option<u8> {
        match &self.l4 {
            L4::None => None,
            L4::Tcp(_) => Some(proto::TCP),
            L4::Udp(_) => Some(proto::UDP),
            L4::Icmp(_) => Some(if matches!(self.l3, L3::V6(_)) {
                proto::ICMPV6
            } else {
                proto::ICMP
            }),
        }
    }

    fn addrs(&self) -> (IpAddr, IpAddr) {
        match &self.l3 {
            L3::V4(h) => (h.src.into(), h.dst.into()),
            L3::V6(h) => (h.src.into(), h.dst.into()),
            L3::None => (Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::UNSPECIFIED.into()),
        }
    }

    /// L4 header + payload with the checksum filled in.
    fn encode_l4(&self) -> Vec<u8> {
        let (src, dst) = self.addrs();
        let proto = self.l4_proto().unwrap_or(0);
        let mut seg = Vec::with_capacity(64 + self.payload.len());
        let (csum_at, csum) = match &self.l4 {
            L4::None => {
                seg.extend(&self.payload);
                return seg;
            }
            L4::Tcp(t) => {
                seg.extend(t.sport.to_be_bytes());
                seg.extend(t.dport.to_be_bytes());
                seg.extend(t.seq.to_be_bytes());
                seg.extend(t.ack.to_be_bytes());
                seg.extend([0, t.flags]);
                seg.extend(t.window.to_be_bytes());
                seg.extend([0, 0]);
                seg.extend(t.urg_ptr.to_be_bytes());
                for o in &t.options {
                    o.encode(&mut seg);
                }
                pad_to(&mut seg, 4);
                let doff = t.data_offset.unwrap_or((seg.len() / 4) as u8);
                seg[12] = doff << 4;
                (16, t.csum)
            }
            L4::Udp(u) => {
                let len = u.len.unwrap_or((8 + self.payload.len()) as u16);
                seg.extend(u.sport.to_be_bytes());
                seg.extend(u.dport.to_be_bytes());
                seg.extend(len.to_be_bytes());
                seg.extend([0, 0]);
                (6, u.csum)
            }
            L4::Icmp(i) => {
                let v6 = matches!(self.l3, L3::V6(_));
                let typ = i.typ.unwrap_or(match (v6, i.reply) {
                    (false, false) => 8,
                    (false, true) => 0,
                    (true, false) => 128,
                    (true, true) => 129,
                });
                seg.extend([typ, i.code, 0, 0]);
                seg.extend(i.rest);
                (2, i.csum)
            }
        };
        seg.extend(&self.payload);
        let correct = match &self.l4 {
            L4::Icmp(_) if proto == proto::ICMP => internet_checksum(&seg),
            L4::Udp(_) => match l4_checksum(src, dst, proto, &seg) {
                0 => 0xffff,
                c => c,
            },
            _ => l4_checksum(src, dst, proto, &seg),
        };
        seg[csum_at..csum_at + 2].copy_from_slice(&csum.resolve(correct).to_be_bytes());
        seg
    }

    fn encode_l3(&self, seg: Vec<u8>) -> (u16, Vec<u8>) {
        match &self.l3 {
            L3::None => (0x88b5, seg),
            L3::V4(h) => {
                let mut hdr = Vec::with_capacity(60 + seg.len());
                let mut opts = h.options.clone();
                pad_to(&mut opts, 4);
                let ihl = h.ihl.unwrap_or((5 + opts.len() / 4) as u8);
                let total = h.total_len.unwrap_or((20 + opts.len() + seg.len()) as u16);
                let frag =
                    (u16::from(h.df) << 14) | (u16::from(h.mf) << 13) | (h.frag_offset & 0x1fff);
                let proto = h.proto.or(self.l4_proto()).unwrap_or(255);
                hdr.extend([(h.version << 4) | (ihl & 0xf), h.tos]);
                hdr.extend(total.to_be_bytes());
                hdr.extend(h.id.to_be_bytes());
                hdr.extend(frag.to_be_bytes());
                hdr.extend([h.ttl, proto, 0, 0]);
                hdr.extend(h.src.octets());
                hdr.extend(h.dst.octets());
                hdr.extend(opts);
                let c = h.csum.resolve(internet_checksum(&hdr));
                hdr[10..12].copy_from_slice(&c.to_be_bytes());
                hdr.extend(seg);
                (ETH_P_IP, hdr)
            }
            L3::V6(h) => {
                let upper = self.l4_proto().unwrap_or(proto::NONE);
                let mut ext = Vec::new();
                for (i, e) in h.ext.iter().enumerate() {
                    let next = h.ext.get(i + 1).map_or(upper, ExtHeader::proto);
                    encode_ext(e, next, &mut ext);
                }
                let first = h
                    .next_header
                    .unwrap_or(h.ext.first().map_or(upper, ExtHeader::proto));
                let plen = h.payload_len.unwrap_or((ext.len() + seg.len()) as u16);
                let vtf = (u32::from(h.version) << 28)
                    | (u32::from(h.traffic_class) << 20)
                    | (h.flow_label & 0xfffff);
                let mut out = Vec::with_capacity(40 + ext.len() + seg.len());
                out.extend(vtf.to_be_bytes());
                out.extend(plen.to_be_bytes());
                out.extend([first, h.hop_limit]);
                out.extend(h.src.octets());
                out.extend(h.dst.octets());
                out.extend(ext);
                out.extend(seg);
                (ETH_P_IPV6, out)
            }
        }
    }

    /// Serialises the frame: Ethernet, tags, L3, L4, payload, checksums; then applies
    /// [`truncate`](Packet::truncate).
    pub fn build(&self) -> Vec<u8> {
        let (ethertype, l3) = self.encode_l3(self.encode_l4());
        let mut out = Vec::with_capacity(18 + 8 * self.eth.vlans.len() + l3.len());
        out.extend(self.eth.dst.0);
        out.extend(self.eth.src.0);
        for t in &self.eth.vlans {
            out.extend(t.tpid.to_be_bytes());
            let tci = (u16::from(t.pcp & 7) << 13) | (u16::from(t.dei) << 12) | (t.vid & 0xfff);
            out.extend(tci.to_be_bytes());
        }
        out.extend(self.eth.ethertype.unwrap_or(ethertype).to_be_bytes());
        out.extend(l3);
        if let Some(n) = self.truncate {
            out.truncate(n);
        }
        out
    }
}
