//! Byte-for-byte and checksum agreement with etherparse.

use super::*;

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
