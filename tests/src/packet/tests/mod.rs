//! Builder and parser checked against an independent implementation (etherparse), against
//! hand vectors, round trips, and a no-panic sweep over truncated and mutated frames.

mod etherparse_compat;
mod fields;
mod robustness;

use etherparse::{
    NetHeaders, PacketBuilder, PacketHeaders, TcpOptionElement as E, TransportHeader, ip_number,
};

use super::*;

const SRC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const DST: [u8; 6] = [2, 0, 0, 0, 0, 2];
const V6A: [u8; 16] = [0xfc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6B: [u8; 16] = [0xfc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn ep_bytes<T>(b: etherparse::PacketBuilderStep<T>, payload: &[u8]) -> Vec<u8>
where
    etherparse::PacketBuilderStep<T>: EpWrite,
{
    let mut v = Vec::new();
    b.ep_write(&mut v, payload);
    v
}

trait EpWrite {
    fn ep_write(self, v: &mut Vec<u8>, payload: &[u8]);
}
impl EpWrite for etherparse::PacketBuilderStep<etherparse::TcpHeader> {
    fn ep_write(self, v: &mut Vec<u8>, p: &[u8]) {
        self.write(v, p).unwrap()
    }
}
impl EpWrite for etherparse::PacketBuilderStep<etherparse::UdpHeader> {
    fn ep_write(self, v: &mut Vec<u8>, p: &[u8]) {
        self.write(v, p).unwrap()
    }
}
impl EpWrite for etherparse::PacketBuilderStep<etherparse::Icmpv4Header> {
    fn ep_write(self, v: &mut Vec<u8>, p: &[u8]) {
        self.write(v, p).unwrap()
    }
}
impl EpWrite for etherparse::PacketBuilderStep<etherparse::Icmpv6Header> {
    fn ep_write(self, v: &mut Vec<u8>, p: &[u8]) {
        self.write(v, p).unwrap()
    }
}

/// Checksums computed by etherparse from the parsed headers equal the fields we wrote.
fn etherparse_checksums_agree(frame: &[u8]) {
    let h = PacketHeaders::from_ethernet_slice(frame).unwrap();
    let payload = h.payload.slice();
    match (h.net.unwrap(), h.transport.unwrap()) {
        (NetHeaders::Ipv4(ip, _), t) => {
            assert_eq!(ip.header_checksum, ip.calc_header_checksum());
            match t {
                TransportHeader::Tcp(t) => {
                    assert_eq!(t.checksum, t.calc_checksum_ipv4(&ip, payload).unwrap())
                }
                TransportHeader::Udp(u) => {
                    assert_eq!(u.checksum, u.calc_checksum_ipv4(&ip, payload).unwrap())
                }
                TransportHeader::Icmpv4(i) => {
                    assert_eq!(i.checksum, i.icmp_type.calc_checksum(payload))
                }
                TransportHeader::Icmpv6(_) => panic!("icmpv6 over ipv4"),
            }
        }
        (NetHeaders::Ipv6(ip, _), t) => match t {
            TransportHeader::Tcp(t) => {
                assert_eq!(t.checksum, t.calc_checksum_ipv6(&ip, payload).unwrap())
            }
            TransportHeader::Udp(u) => {
                assert_eq!(u.checksum, u.calc_checksum_ipv6(&ip, payload).unwrap())
            }
            TransportHeader::Icmpv6(i) => {
                assert_eq!(
                    i.checksum,
                    i.icmp_type
                        .calc_checksum(ip.source, ip.destination, payload)
                        .unwrap()
                )
            }
            TransportHeader::Icmpv4(_) => panic!("icmp over ipv6"),
        },
    }
}
