//! Packet fixtures: (description, input frame, expected XDP action, expected output) run through
//! `BPF_PROG_TEST_RUN` against the real compiled XDP program, as Katran's and Cilium's testers do.
//! Each case also checks that exactly one counter — the one the case names — moved by one packet
//! and the frame's bytes, and that VIP cases moved their VIP's counter.
//!
//! Needs root (BPF). The kernel's test harness refuses frames shorter than an Ethernet header
//! (14 bytes), as drivers never hand XDP one, so truncation starts at the IP header.

use lb_common::Stat;
use lb_userspace::{
    config::{Protocol, VipSpec},
    xdp::{Dataplane, run_frame, vips},
};
use weir_tests::packet::Packet;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

const VIP4: &str = "10.0.0.10";
const VIP6: &str = "fc00::10";
const CLIENT4: &str = "198.51.100.7";
const CLIENT6: &str = "fc00::7";
const DENIED4: &str = "192.0.2.99"; // in 192.0.2.0/24
const DENIED6: &str = "2001:db8:bad::1"; // in 2001:db8:bad::/48
const OTHER4: &str = "10.0.0.77";
const OTHER6: &str = "fc00::77";
/// Folds to the same `VipKey::index_slot` as VIP4 for the same port and protocol.
const FOLDS_LIKE_VIP4: &str = "0.10.10.0";

struct Case {
    name: &'static str,
    frame: Vec<u8>,
    stat: Stat,
    /// The VIP id whose counter must move.
    vip: Option<u32>,
}

fn case(name: &'static str, p: Packet, stat: Stat, vip: Option<u32>) -> Case {
    Case {
        name,
        frame: p.build(),
        stat,
        vip,
    }
}

fn v4(src: &str, dst: &str) -> Packet {
    Packet::new().ipv4(src, dst)
}

fn v6(src: &str, dst: &str) -> Packet {
    Packet::new().ipv6(src, dst)
}

/// An Ethernet header with this ethertype and `rest` after it.
fn raw(ethertype: [u8; 2], rest: &[u8]) -> Vec<u8> {
    let mut f = vec![
        0x02,
        0,
        0,
        0,
        0,
        2,
        0x02,
        0,
        0,
        0,
        0,
        1,
        ethertype[0],
        ethertype[1],
    ];
    f.extend_from_slice(rest);
    f
}

fn cases() -> Vec<Case> {
    use Stat::*;
    let tcp_vip = || v4(CLIENT4, VIP4).tcp(40000, 80).syn();
    let eth_ip = 14;
    let eth_ip_tcp = 14 + 20;
    let mut c = vec![
        // Layer 2.
        Case {
            name: "ARP passes untouched",
            frame: raw([0x08, 0x06], &[0; 28]),
            stat: PassNotIp,
            vip: None,
        },
        Case {
            name: "IPv4 ethertype with no IP header",
            frame: raw([0x08, 0x00], &[]),
            stat: DropMalformed,
            vip: None,
        },
        Case {
            name: "802.1Q tag cut short",
            frame: raw([0x81, 0x00], &[]),
            stat: DropMalformed,
            vip: None,
        },
        case(
            "802.1Q tagged TCP to a VIP",
            tcp_vip().vlan(100),
            PassVip,
            Some(0),
        ),
        case(
            "802.1ad tagged IPv6 TCP to a VIP",
            v6(CLIENT6, VIP6).tcp(40000, 443).syn().qinq(10, 20),
            PassNotIp,
            None,
        ),
        // IPv4 services.
        case("IPv4 TCP SYN to a VIP", tcp_vip(), PassVip, Some(0)),
        case(
            "IPv4 TCP data to a VIP",
            v4(CLIENT4, VIP4)
                .tcp(40000, 80)
                .ack()
                .psh()
                .payload(b"GET / HTTP/1.1\r\n\r\n"),
            PassVip,
            Some(0),
        ),
        case(
            "IPv4 with options (IHL 8) to a VIP",
            v4(CLIENT4, VIP4).ip_options(&[1; 12]).tcp(40000, 80).syn(),
            PassVip,
            Some(0),
        ),
        case(
            "IPv4 UDP to a UDP VIP",
            v4(CLIENT4, VIP4).udp(5353, 53).payload(b"q"),
            PassVip,
            Some(1),
        ),
        case(
            "IPv4 UDP to a TCP VIP's port",
            v4(CLIENT4, VIP4).udp(5353, 80),
            PassNotVip,
            None,
        ),
        case(
            "IPv4 TCP to a VIP address, other port",
            v4(CLIENT4, VIP4).tcp(40000, 22).syn(),
            PassNotVip,
            None,
        ),
        case(
            "IPv4 TCP to another address",
            v4(CLIENT4, OTHER4).tcp(40000, 80).syn(),
            PassNotVip,
            None,
        ),
        // The direct-mapped index: shared slots and false hits.
        case(
            "TCP to the first of two VIPs sharing an index slot",
            v4(CLIENT4, VIP4).tcp(1, 8080).syn(),
            PassVip,
            Some(3),
        ),
        case(
            "TCP to the second of two VIPs sharing an index slot",
            v4(CLIENT4, FOLDS_LIKE_VIP4).tcp(1, 8080).syn(),
            PassVip,
            Some(4),
        ),
        case(
            "UDP whose index slot holds another VIP",
            v4(CLIENT4, FOLDS_LIKE_VIP4).udp(1, 53),
            PassNotVip,
            None,
        ),
        // IPv4 malformed.
        case("IPv4 IHL 4", tcp_vip().ihl(4), DropMalformed, None),
        case(
            "IPv4 header claiming version 5",
            tcp_vip().ip_version(5),
            DropMalformed,
            None,
        ),
        case(
            "IPv4 header cut at 10 bytes",
            tcp_vip().truncate(eth_ip + 10),
            DropMalformed,
            None,
        ),
        case(
            "IPv4 TCP header cut at 10 bytes",
            tcp_vip().truncate(eth_ip_tcp + 10),
            DropMalformed,
            None,
        ),
        case(
            "IPv4 TCP header cut at 19 bytes",
            tcp_vip().truncate(eth_ip_tcp + 19),
            DropMalformed,
            None,
        ),
        case(
            "IPv4 UDP header cut at 4 bytes",
            v4(CLIENT4, VIP4).udp(1, 53).truncate(eth_ip_tcp + 4),
            DropMalformed,
            None,
        ),
        case(
            "IPv4 options running past the frame",
            v4(CLIENT4, VIP4)
                .ip_options(&[1; 40])
                .tcp(40000, 80)
                .truncate(eth_ip + 60 + 8),
            DropMalformed,
            None,
        ),
        // Deny-list.
        case(
            "denied IPv4 source to a VIP",
            v4(DENIED4, VIP4).tcp(40000, 80).syn(),
            DropDenied,
            None,
        ),
        case(
            "denied IPv4 source to another address",
            v4(DENIED4, OTHER4).tcp(40000, 80).syn(),
            PassNotVip,
            None,
        ),
        case(
            "denied IPv4 source, ICMP to a VIP address",
            v4(DENIED4, VIP4).icmp_echo(1, 1),
            DropDenied,
            None,
        ),
        // Fragments and other protocols.
        case(
            "IPv4 first fragment to a VIP",
            tcp_vip().mf(),
            DropFragment,
            None,
        ),
        case(
            "IPv4 later fragment to a VIP address",
            v4(CLIENT4, VIP4).frag_offset(185).udp(1, 2),
            DropFragment,
            None,
        ),
        case(
            "IPv4 fragment to another address",
            v4(CLIENT4, OTHER4).mf().udp(1, 2),
            PassNotVip,
            None,
        ),
        case(
            "ICMP echo to a VIP address",
            v4(CLIENT4, VIP4).icmp_echo(7, 1),
            PassVipIcmp,
            None,
        ),
        case(
            "ICMP echo to another address",
            v4(CLIENT4, OTHER4).icmp_echo(7, 1),
            PassNotVip,
            None,
        ),
        case(
            "GRE to a VIP address",
            v4(CLIENT4, VIP4).udp(1, 2).ip_proto(47),
            DropVipProto,
            None,
        ),
        case(
            "GRE to another address",
            v4(CLIENT4, OTHER4).udp(1, 2).ip_proto(47),
            PassNotVip,
            None,
        ),
        // IPv6.
        case(
            "IPv6 TCP SYN to a VIP",
            v6(CLIENT6, VIP6).tcp(40000, 443).syn(),
            PassVip,
            Some(2),
        ),
        case(
            "IPv6 TCP to a VIP behind 802.1Q",
            v6(CLIENT6, VIP6).tcp(40000, 443).syn().vlan(7),
            PassVip,
            Some(2),
        ),
        case(
            "IPv6 UDP to another address",
            v6(CLIENT6, OTHER6).udp(1, 443),
            PassNotVip,
            None,
        ),
        case(
            "denied IPv6 source to a VIP",
            v6(DENIED6, VIP6).tcp(40000, 443).syn(),
            DropDenied,
            None,
        ),
        case(
            "ICMPv6 echo to a VIP address",
            v6(CLIENT6, VIP6).icmp_echo(1, 1),
            PassVipIcmp,
            None,
        ),
        case(
            "IPv6 hop-by-hop header to a VIP address",
            v6(CLIENT6, VIP6).hop_by_hop(&[]).tcp(40000, 443).syn(),
            DropIpv6ExtHeader,
            None,
        ),
        case(
            "IPv6 fragment header to a VIP address",
            v6(CLIENT6, VIP6).fragment(0, true, 9).tcp(40000, 443).syn(),
            DropFragment,
            None,
        ),
        case(
            "IPv6 hop-by-hop to another address",
            v6(CLIENT6, OTHER6).hop_by_hop(&[]).udp(1, 2),
            PassNotVip,
            None,
        ),
        case(
            "IPv6 GRE to a VIP address",
            v6(CLIENT6, VIP6).udp(1, 2).ip_proto(47),
            DropVipProto,
            None,
        ),
        case(
            "IPv6 header cut at 39 bytes",
            v6(CLIENT6, VIP6).tcp(40000, 443).truncate(14 + 39),
            DropMalformed,
            None,
        ),
        case(
            "IPv6 TCP header cut at 12 bytes",
            v6(CLIENT6, VIP6).tcp(40000, 443).truncate(14 + 40 + 12),
            DropMalformed,
            None,
        ),
        case(
            "IPv6 header claiming version 4",
            v6(CLIENT6, VIP6).tcp(40000, 443).ip_version(4),
            DropMalformed,
            None,
        ),
        case(
            "IPv6 to an IPv4-mapped address",
            v6(CLIENT6, "::ffff:10.0.0.10").tcp(40000, 80).syn(),
            DropMalformed,
            None,
        ),
    ];
    c.retain(|x| !x.frame.is_empty());
    c
}

fn vip(address: &str, port: u16, protocol: Protocol) -> VipSpec {
    VipSpec {
        name: None,
        address: address.into(),
        port,
        protocol,
    }
}

fn dataplane() -> Dataplane {
    let mut dp = Dataplane::load().expect("load XDP object (needs root)");
    let specs = [
        vip(VIP4, 80, Protocol::Tcp),
        vip(VIP4, 53, Protocol::Udp),
        vip(VIP6, 443, Protocol::Tcp),
        // These two fold to the same VIP_INDEX slot: their lookups go through the hash map.
        vip(VIP4, 8080, Protocol::Tcp),
        vip(FOLDS_LIKE_VIP4, 8080, Protocol::Tcp),
    ];
    dp.set_vips(&vips::resolve(&specs, &[])).unwrap();
    dp.set_deny_list(&[
        "192.0.2.0/24".parse().unwrap(),
        // Longer than /24: the /24 bitmap says "ask the trie" for all of 198.51.100.0/24.
        "198.51.100.128/25".parse().unwrap(),
        "203.0.113.9/32".parse().unwrap(),
        "2001:db8:bad::/48".parse().unwrap(),
    ])
    .unwrap();
    dp
}

fn run(dp: &mut Dataplane, frame: &[u8]) -> (u32, Vec<u8>) {
    run_frame(dp.program(), frame).expect("BPF_PROG_TEST_RUN")
}

#[test]
fn every_case_takes_its_action_and_counts_once() {
    let mut dp = dataplane();
    let mut failures = Vec::new();
    for c in cases() {
        let before = dp.counters().unwrap();
        let (action, out) = run(&mut dp, &c.frame);
        let after = dp.counters().unwrap();
        let want = if c.stat.passes() { XDP_PASS } else { XDP_DROP };
        if action != want {
            failures.push(format!("{}: action {action}, want {want}", c.name));
        }
        if want == XDP_PASS && out != c.frame {
            failures.push(format!("{}: passed frame was modified", c.name));
        }
        for s in Stat::ALL {
            let d = after.stat(s).packets - before.stat(s).packets;
            let db = after.stat(s).bytes - before.stat(s).bytes;
            let (wp, wb) = if s == c.stat {
                (1, c.frame.len() as u64)
            } else {
                (0, 0)
            };
            if (d, db) != (wp, wb) {
                failures.push(format!(
                    "{}: {} moved by {d} packets/{db} bytes, want {wp}/{wb}",
                    c.name,
                    s.name()
                ));
            }
        }
        for v in &after.vips {
            let prev = before.vips.iter().find(|p| p.id == v.id).unwrap().counter;
            let d = v.counter.packets - prev.packets;
            let want = u64::from(c.vip == Some(v.id));
            if d != want {
                failures.push(format!(
                    "{}: VIP {} moved by {d}, want {want}",
                    c.name, v.id
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_stat_is_reached_by_some_case() {
    let reached: Vec<Stat> = cases().iter().map(|c| c.stat).collect();
    // The SYN-flood defence's decisions need listeners and modes: tests/tests/syn_fixtures.rs.
    for s in Stat::ALL.into_iter().filter(|s| !s.is_syn_defence()) {
        assert!(reached.contains(&s), "no fixture reaches {}", s.name());
    }
}

#[test]
fn an_empty_deny_list_denies_nothing_and_reload_removes_vips() {
    let mut dp = dataplane();
    dp.set_deny_list(&[]).unwrap();
    let (action, _) = run(&mut dp, &v4(DENIED4, VIP4).tcp(1, 80).syn().build());
    assert_eq!(action, XDP_PASS);
    // A reload that shrinks the list clears the bitmaps' old bits.
    dp.set_deny_list(&["192.0.2.0/23".parse().unwrap()])
        .unwrap();
    dp.set_deny_list(&["10.9.9.9/32".parse().unwrap()]).unwrap();
    let (action, _) = run(&mut dp, &v4("192.0.3.1", VIP4).tcp(1, 80).syn().build());
    assert_eq!(action, XDP_PASS, "192.0.2.0/23 was removed");
    let (action, _) = run(&mut dp, &v4("10.9.9.9", VIP4).tcp(1, 80).syn().build());
    assert_eq!(action, XDP_DROP);
    let (action, _) = run(&mut dp, &v4("10.9.9.8", VIP4).tcp(1, 80).syn().build());
    assert_eq!(action, XDP_PASS);
    // Reprogram with only the IPv6 VIP: the IPv4 VIP and its address entry are gone.
    dp.set_vips(&vips::resolve(&[vip(VIP6, 443, Protocol::Tcp)], &[]))
        .unwrap();
    let before = dp.counters().unwrap();
    run(&mut dp, &v4(CLIENT4, VIP4).tcp(1, 80).syn().build());
    run(&mut dp, &v4(CLIENT4, VIP4).mf().udp(1, 2).build());
    let after = dp.counters().unwrap();
    assert_eq!(
        after.stat(Stat::PassNotVip).packets - before.stat(Stat::PassNotVip).packets,
        2
    );
    assert_eq!(after.vips.len(), 1);
}

/// A deny-list is rewritten at every reload and every change of the interface's addresses,
/// in the control plane's loop (which also runs the SYN defence's 10 ms watch). Clearing the
/// old bitmap words scanned both /24 bitmaps, one system call per word (2 × 262,144): ~0.5 s
/// per rewrite in a release build, several seconds in a debug one.
#[test]
fn a_deny_list_is_rewritten_in_milliseconds() {
    let mut dp = dataplane();
    let started = std::time::Instant::now();
    for i in 0..10 {
        if i % 2 == 0 {
            dp.set_deny_list(&[
                "192.0.2.0/23".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ])
        } else {
            dp.set_deny_list(&["198.51.100.7/32".parse().unwrap()])
        }
        .unwrap();
    }
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(1),
        "10 rewrites took {took:?}"
    );
    // The last list is the one in force, and only it.
    let (action, _) = run(&mut dp, &v4("198.51.100.7", VIP4).tcp(1, 80).syn().build());
    assert_eq!(action, XDP_DROP);
    for from in ["192.0.3.1", "10.1.2.3"] {
        let (action, _) = run(&mut dp, &v4(from, VIP4).tcp(1, 80).syn().build());
        assert_eq!(action, XDP_PASS, "{from}");
    }
}

#[test]
fn object_defines_every_map_the_contract_names() {
    // Dataplane::load checks lb_common::maps::ALL against the object; loading is the assertion.
    Dataplane::load().unwrap();
}
