//! Builder and parser checked against an independent implementation (etherparse), against
//! hand vectors, round trips, and a no-panic sweep over truncated and mutated frames.

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

#[test]
fn tcp4_syn_with_options_is_byte_identical_to_etherparse() {
    let ours = Packet::new()
        .eth(SRC, DST)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2])
        .ttl(20)
        .df()
        .tcp(40000, 80)
        .syn()
        .seq(0x01020304)
        .mss(1460)
        .sack_perm()
        .timestamp(7, 0)
        .nop()
        .wscale(7)
        .payload(b"hello")
        .build();
    let theirs = ep_bytes(
        PacketBuilder::ethernet2(SRC, DST)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 20)
            .tcp(40000, 80, 0x01020304, 65535)
            .syn()
            .options(&[
                E::MaximumSegmentSize(1460),
                E::SelectiveAcknowledgementPermitted,
                E::Timestamp(7, 0),
                E::Noop,
                E::WindowScale(7),
            ])
            .unwrap(),
        b"hello",
    );
    assert_frames_eq(&theirs, &ours);
    // 4 + 2 + 10 + 1 + 3 = 20 option bytes: data offset 10.
    assert_eq!(ours[14 + 20 + 12] >> 4, 10);
}

#[test]
fn tcp6_ack_psh_is_byte_identical_to_etherparse() {
    let ours = Packet::new()
        .eth(SRC, DST)
        .ipv6(V6A, V6B)
        .ttl(9)
        .tcp(1, 65535)
        .ack()
        .psh()
        .seq(5)
        .ack_seq(77)
        .window(100)
        .payload_pattern(1001)
        .build();
    let payload: Vec<u8> = (0..1001).map(|i| i as u8).collect();
    let theirs = ep_bytes(
        PacketBuilder::ethernet2(SRC, DST)
            .ipv6(V6A, V6B, 9)
            .tcp(1, 65535, 5, 100)
            .ack(77)
            .psh(),
        &payload,
    );
    assert_frames_eq(&theirs, &ours);
}

#[test]
fn udp_and_icmp_both_families_match_etherparse() {
    let p = b"odd-length payload";
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (
            Packet::new()
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2])
                .df()
                .udp(53, 5353)
                .payload(p)
                .build(),
            ep_bytes(
                PacketBuilder::ethernet2(SRC, DST)
                    .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                    .udp(53, 5353),
                p,
            ),
        ),
        (
            Packet::new()
                .ipv6(V6A, V6B)
                .udp(53, 5353)
                .payload(p)
                .build(),
            ep_bytes(
                PacketBuilder::ethernet2(SRC, DST)
                    .ipv6(V6A, V6B, 64)
                    .udp(53, 5353),
                p,
            ),
        ),
        (
            Packet::new()
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2])
                .df()
                .icmp_echo(0x1234, 9)
                .payload(p)
                .build(),
            ep_bytes(
                PacketBuilder::ethernet2(SRC, DST)
                    .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                    .icmpv4_echo_request(0x1234, 9),
                p,
            ),
        ),
        (
            Packet::new()
                .ipv6(V6A, V6B)
                .icmp_echo(0x1234, 9)
                .payload(p)
                .build(),
            ep_bytes(
                PacketBuilder::ethernet2(SRC, DST)
                    .ipv6(V6A, V6B, 64)
                    .icmpv6_echo_request(0x1234, 9),
                p,
            ),
        ),
    ];
    for (ours, theirs) in cases {
        assert_frames_eq(&theirs, &ours);
        assert!(
            Frame::parse(&ours).unwrap().checksums_ok(),
            "{}",
            describe(&ours)
        );
    }
}

#[test]
fn vlan_and_qinq_match_etherparse() {
    use etherparse::VlanId;
    let ours = Packet::new()
        .vlan(100)
        .ipv4("10.0.0.1", "10.0.0.2")
        .df()
        .udp(1, 2)
        .build();
    let theirs = ep_bytes(
        PacketBuilder::ethernet2(SRC, DST)
            .single_vlan(VlanId::try_new(100).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2),
        &[],
    );
    assert_frames_eq(&theirs, &ours);

    let q = Packet::new()
        .qinq(10, 20)
        .ipv6("fc00::1", "fc00::2")
        .udp(1, 2)
        .build();
    let h = PacketHeaders::from_ethernet_slice(&q).unwrap();
    match h.vlan.unwrap() {
        etherparse::VlanHeader::Double(d) => {
            assert_eq!(d.outer.vlan_id.value(), 10);
            assert_eq!(d.inner.vlan_id.value(), 20);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(&q[12..14], &[0x88, 0xa8]);
    assert_eq!(&q[16..18], &[0x81, 0x00]);
    let f = Frame::parse(&q).unwrap();
    assert_eq!(
        f.eth
            .vlans
            .iter()
            .map(|t| (t.tpid, t.vid))
            .collect::<Vec<_>>(),
        [(0x88a8, 10), (0x8100, 20)]
    );
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

#[test]
fn ipv4_options_and_ipv6_extension_headers_checksum_and_chain() {
    // IPv4 with 3 option bytes (router alert is 4; use NOP NOP NOP) -> padded to 4, IHL 6.
    let f4 = Packet::new()
        .ipv4("192.0.2.1", "198.51.100.7")
        .ip_options(&[1, 1, 1])
        .tos(0xb8)
        .ecn(3)
        .ip_id(4242)
        .tcp(5, 6)
        .build();
    assert_eq!(f4[14] & 0xf, 6);
    assert_eq!(f4[15], 0xbb);
    etherparse_checksums_agree(&f4);
    let p = Frame::parse(&f4).unwrap();
    assert_eq!(p.ipv4().unwrap().options, vec![1, 1, 1, 0]);
    assert_eq!(p.ipv4().unwrap().id, 4242);
    assert!(p.checksums_ok());

    // IPv6: hop-by-hop (router alert option, 4 bytes -> PadN 2) then dest-opts then TCP.
    let f6 = Packet::new()
        .ipv6("2001:db8::1", "2001:db8::2")
        .hop_by_hop(&[5, 2, 0, 0])
        .dest_opts(&[])
        .tcp(1000, 443)
        .syn()
        .mss(1220)
        .payload(b"abc")
        .build();
    etherparse_checksums_agree(&f6);
    let h = PacketHeaders::from_ethernet_slice(&f6).unwrap();
    match h.net.unwrap() {
        NetHeaders::Ipv6(ip, ext) => {
            assert_eq!(ip.next_header, ip_number::IPV6_HEADER_HOP_BY_HOP);
            assert!(ext.hop_by_hop_options.is_some());
            assert!(ext.destination_options.is_some());
        }
        _ => unreachable!(),
    }
    let p = Frame::parse(&f6).unwrap();
    let v6 = p.ipv6().unwrap();
    assert_eq!(
        v6.ext
            .iter()
            .map(|e| (e.kind, e.next_header, e.len))
            .collect::<Vec<_>>(),
        [(0, 60, 8), (60, 6, 8)]
    );
    assert_eq!(v6.upper_proto, proto::TCP);
    assert_eq!(v6.payload_len as usize, 16 + 24 + 3);
    assert!(p.checksums_ok(), "{}", p.summary());
    assert_eq!(p.payload, b"abc");

    // Fragment header: an atomic fragment (offset 0, M=0) is still checksummable.
    let fr = Packet::new()
        .ipv6("fc00::1", "fc00::2")
        .fragment(0, false, 0xdeadbeef)
        .udp(1, 2)
        .payload(b"z")
        .build();
    let p = Frame::parse(&fr).unwrap();
    assert_eq!(
        p.ipv6().unwrap().ext[0].fragment,
        Some((0, false, 0xdeadbeef))
    );
    assert_eq!(p.udp().unwrap().checksum_ok, Some(true));
    // A first fragment with M set: headers decode, the checksum cannot be judged.
    let fr = Packet::new()
        .ipv6("fc00::1", "fc00::2")
        .fragment(0, true, 1)
        .udp(1, 2)
        .build();
    assert_eq!(Frame::parse(&fr).unwrap().udp().unwrap().checksum_ok, None);
    // A later fragment: no L4 at all.
    let fr = Packet::new()
        .ipv6("fc00::1", "fc00::2")
        .fragment(3, false, 1)
        .udp(1, 2)
        .build();
    let p = Frame::parse(&fr).unwrap();
    assert!(p.l4.is_none());
    assert_eq!(p.payload.len(), 8);
}

#[test]
fn ipv4_fragment_fields_and_overrides() {
    let f = Packet::new()
        .ipv4("10.0.0.1", "10.0.0.2")
        .mf()
        .frag_offset(185)
        .ip_id(7)
        .udp(1, 2)
        .build();
    assert_eq!(&f[20..22], &(0x2000u16 | 185).to_be_bytes());
    let p = Frame::parse(&f).unwrap();
    let h = p.ipv4().unwrap();
    assert!(h.mf && !h.df && h.frag_offset == 185 && h.checksum_ok);
    assert!(p.l4.is_none(), "non-first fragment has no L4 header");

    // Deliberately wrong version / IHL / proto / total length are written as asked.
    let w = Packet::new()
        .ipv4("10.0.0.1", "10.0.0.2")
        .ip_version(6)
        .tcp(1, 2)
        .build();
    assert_eq!(w[14], 0x65);
    assert!(Frame::parse(&w).is_err());
    let w = Packet::new()
        .ipv4("10.0.0.1", "10.0.0.2")
        .ihl(4)
        .tcp(1, 2)
        .build();
    assert_eq!(w[14], 0x44);
    assert!(matches!(Frame::parse(&w), Err(ParseError::Invalid { .. })));
    let w = Packet::new()
        .ipv4("10.0.0.1", "10.0.0.2")
        .ihl(15)
        .tcp(1, 2)
        .build();
    assert!(Frame::parse(&w).is_err());
    let w = Packet::new()
        .ipv4("10.0.0.1", "10.0.0.2")
        .ip_proto(99)
        .tcp(1, 2)
        .build();
    let p = Frame::parse(&w).unwrap();
    assert_eq!(p.ipv4().unwrap().proto, 99);
    assert!(p.l4.is_none());
    let w = Packet::new()
        .ipv4("10.0.0.1", "10.0.0.2")
        .ip_total_len(1000)
        .tcp(1, 2)
        .build();
    assert!(Frame::parse(&w).is_err());
    let w = Packet::new()
        .ipv6("fc00::1", "fc00::2")
        .ip_proto(59)
        .tcp(1, 2)
        .build();
    let p = Frame::parse(&w).unwrap();
    assert_eq!(p.ipv6().unwrap().next_header, 59);
    assert!(p.l4.is_none());
}

#[test]
fn wrong_checksums_on_purpose() {
    for f in [
        Packet::new()
            .ipv4("10.0.0.1", "10.0.0.2")
            .bad_ip_checksum()
            .tcp(1, 2)
            .build(),
        Packet::new()
            .ipv4("10.0.0.1", "10.0.0.2")
            .tcp(1, 2)
            .bad_l4_checksum()
            .build(),
        Packet::new()
            .ipv6("fc00::1", "fc00::2")
            .tcp(1, 2)
            .bad_l4_checksum()
            .build(),
        Packet::new()
            .ipv6("fc00::1", "fc00::2")
            .udp(1, 2)
            .bad_l4_checksum()
            .build(),
        Packet::new()
            .ipv6("fc00::1", "fc00::2")
            .icmp_echo(1, 2)
            .bad_l4_checksum()
            .build(),
        Packet::new()
            .ipv4("10.0.0.1", "10.0.0.2")
            .icmp_echo(1, 2)
            .bad_l4_checksum()
            .build(),
        Packet::new()
            .ipv4("10.0.0.1", "10.0.0.2")
            .udp(1, 2)
            .l4_checksum(0x1234)
            .build(),
    ] {
        assert!(
            !Frame::parse(&f).unwrap().checksums_ok(),
            "{}",
            describe(&f)
        );
    }
    let good = Packet::new().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build();
    let bad = Packet::new()
        .ipv4("10.0.0.1", "10.0.0.2")
        .tcp(1, 2)
        .bad_l4_checksum()
        .build();
    assert_eq!(diff(&good, &bad).len(), 1, "{:?}", diff(&good, &bad));
    assert!(diff(&good, &bad)[0].starts_with("tcp.csum: expected"));
    // UDP over IPv4 without checksum is legal and reported as unchecked.
    let none = Packet::new()
        .ipv4("10.0.0.1", "10.0.0.2")
        .udp(1, 2)
        .l4_checksum(0)
        .build();
    let p = Frame::parse(&none).unwrap();
    assert_eq!(p.udp().unwrap().checksum_ok, None);
    assert!(p.checksums_ok());
}

#[test]
fn hand_vector_known_ipv4_udp() {
    // A hand-assembled frame: 10.0.0.1:1234 -> 10.0.0.2:80 UDP "hi", id 1, TTL 64.
    // By hand: IPv4 words 4500+001e+0001+0000+4011+0a00+0001+0a00+0002 = 9933 -> ~ = 66cc.
    // UDP: pseudo 0a00+0001+0a00+0002+0011+000a = 141e, header 04d2+0050+000a = 052c,
    // data 6869: 141e+052c+6869 = 81b3 -> ~ = 7e4c.
    #[rustfmt::skip]
    let expected: [u8; 44] = [
        2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00,
        0x45, 0x00, 0x00, 0x1e, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x66, 0xcc,
        10, 0, 0, 1, 10, 0, 0, 2,
        0x04, 0xd2, 0x00, 0x50, 0x00, 0x0a, 0x7e, 0x4c, b'h', b'i',
    ];
    let ours = Packet::new()
        .ipv4("10.0.0.1", "10.0.0.2")
        .ip_id(1)
        .udp(1234, 80)
        .payload(b"hi")
        .build();
    assert_frames_eq(&expected, &ours);
}

#[test]
fn round_trip_fields() {
    let f = Packet::new()
        .eth("aa:bb:cc:dd:ee:ff", "11:22:33:44:55:66")
        .vlan_tag(VlanTag {
            tpid: ETH_P_8021Q,
            pcp: 5,
            dei: true,
            vid: 4095,
        })
        .ipv4("1.2.3.4", "5.6.7.8")
        .ttl(1)
        .tos(0x10)
        .df()
        .tcp(65535, 0)
        .flags(
            flags::FIN
                | flags::SYN
                | flags::RST
                | flags::PSH
                | flags::ACK
                | flags::URG
                | flags::ECE
                | flags::CWR,
        )
        .seq(u32::MAX)
        .ack_seq(123)
        .window(0)
        .tcp_opt(TcpOpt::Sack(vec![(1, 2), (3, 4)]))
        .tcp_opt(TcpOpt::Other {
            kind: 30,
            data: vec![9, 9],
        })
        .build();
    let p = Frame::parse(&f).unwrap();
    assert_eq!(p.eth.src.to_string(), "aa:bb:cc:dd:ee:ff");
    assert_eq!(
        p.eth.vlans[0],
        VlanTag {
            tpid: 0x8100,
            pcp: 5,
            dei: true,
            vid: 4095
        }
    );
    let ip = p.ipv4().unwrap();
    assert_eq!(
        (ip.ttl, ip.tos, ip.df, ip.src.to_string()),
        (1, 0x10, true, "1.2.3.4".into())
    );
    let t = p.tcp().unwrap();
    assert_eq!(
        (t.sport, t.dport, t.seq, t.ack, t.window, t.flags),
        (65535, 0, u32::MAX, 123, 0, 0xff)
    );
    assert_eq!(
        t.options,
        vec![
            TcpOpt::Sack(vec![(1, 2), (3, 4)]),
            TcpOpt::Other {
                kind: 30,
                data: vec![9, 9]
            }
        ]
    );
    assert_eq!(t.data_offset, 5 + 6);
    assert_eq!(flags::render(t.flags), "FSRPUEW.");
    assert_eq!(p.ports(), Some((65535, 0)));
    assert!(p.checksums_ok());
    let s = p.summary();
    assert!(
        s.contains("tcp 65535 > 0") && s.contains("sack 1:2 3:4"),
        "{s}"
    );
    // Data offset override is written as given even when it lies.
    let lie = Packet::new()
        .ipv4("1.1.1.1", "2.2.2.2")
        .tcp(1, 2)
        .data_offset(4)
        .build();
    assert_eq!(lie[14 + 20 + 12], 0x40);
    assert!(Frame::parse(&lie).is_err());
}

#[test]
fn truncation_at_every_byte_never_panics() {
    let full = Packet::new()
        .qinq(1, 2)
        .ipv6("fc00::1", "fc00::2")
        .hop_by_hop(&[])
        .tcp(1, 2)
        .syn()
        .mss(1)
        .timestamp(1, 2)
        .payload(b"data")
        .build();
    for n in 0..full.len() {
        let cut = Packet::new()
            .qinq(1, 2)
            .ipv6("fc00::1", "fc00::2")
            .hop_by_hop(&[])
            .tcp(1, 2)
            .syn()
            .mss(1)
            .timestamp(1, 2)
            .payload(b"data")
            .truncate(n)
            .build();
        assert_eq!(cut, full[..n]);
        assert!(
            Frame::parse(&cut).is_err(),
            "cut at {n} parsed: {}",
            describe(&cut)
        );
    }
    assert!(Frame::parse(&full).is_ok());
}

#[test]
fn mutated_frames_never_panic() {
    let seeds = [
        Packet::new()
            .ipv4("10.0.0.1", "10.0.0.2")
            .ip_options(&[7, 7, 4])
            .tcp(1, 2)
            .mss(9)
            .sack_perm()
            .build(),
        Packet::new()
            .ipv6("fc00::1", "fc00::2")
            .hop_by_hop(&[1, 0])
            .fragment(0, false, 1)
            .udp(1, 2)
            .build(),
        Packet::new()
            .vlan(3)
            .ipv6("fc00::1", "fc00::2")
            .icmp_echo(1, 1)
            .build(),
    ];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for seed in &seeds {
        for _ in 0..3000 {
            let mut f = seed.clone();
            for _ in 0..(1 + rnd() % 4) {
                let i = (rnd() as usize) % f.len();
                f[i] = rnd() as u8;
            }
            let _ = Frame::parse(&f).map(|p| (p.summary(), p.fields()));
            let _ = describe(&f);
        }
    }
}

#[test]
fn tcp_option_padding_layout() {
    // MSS + WS = 7 bytes -> one EOL pad byte, data offset 7.
    let f = Packet::new()
        .ipv4("1.1.1.1", "2.2.2.2")
        .tcp(1, 2)
        .mss(0x0102)
        .wscale(14)
        .build();
    let tcp = &f[34..];
    assert_eq!(tcp[12] >> 4, 7);
    assert_eq!(&tcp[20..28], &[2, 4, 1, 2, 3, 3, 14, 0]);
    // Linux-style SYN layout: MSS, SACK_PERM, TS, NOP, WS = 20 bytes, no padding.
    let f = Packet::new()
        .ipv4("1.1.1.1", "2.2.2.2")
        .tcp(1, 2)
        .mss(1460)
        .sack_perm()
        .timestamp(1, 2)
        .nop()
        .wscale(7)
        .build();
    assert_eq!(f[34 + 12] >> 4, 10);
    assert_eq!(
        &f[54..74],
        &[
            2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 3, 3, 7
        ]
    );
    assert_eq!(f.len(), 74);
}

#[test]
#[should_panic(expected = "add .tcp(..) before")]
fn misuse_panics_with_a_hint() {
    let _ = Packet::new().ipv4("1.1.1.1", "2.2.2.2").udp(1, 2).syn();
}

#[test]
fn ipv6_routing_header_is_padded_and_chained() {
    let f = Packet::new()
        .ipv6("fc00::1", "fc00::2")
        .ext(ExtHeader::Routing {
            typ: 4,
            segments_left: 0,
            data: vec![0; 4 + 16],
        })
        .udp(1, 2)
        .payload(b"x")
        .build();
    etherparse_checksums_agree(&f);
    let p = Frame::parse(&f).unwrap();
    let v6 = p.ipv6().unwrap();
    assert_eq!(v6.next_header, proto::ROUTING);
    assert_eq!((v6.ext[0].len, v6.ext[0].next_header), (24, proto::UDP));
    assert_eq!(p.udp().unwrap().checksum_ok, Some(true));
    assert_eq!(p.payload, b"x");
}
