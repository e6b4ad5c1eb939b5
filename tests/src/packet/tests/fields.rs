//! Field layout, overrides, deliberate breakage, hand vectors, round trips.

use super::*;

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
