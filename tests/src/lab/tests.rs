//! Self-tests of the lab: real namespaces, veths, TCP, XDP, and that nothing survives a drop
//! or a panic. They need root (CI is root); elsewhere they print why they skip.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use super::*;

fn leftovers(id: &str) -> Vec<String> {
    let netns = cmd::ip(None, &["netns", "list"]).unwrap_or_default();
    let links = cmd::ip(None, &["-o", "link", "show"]).unwrap_or_default();
    netns
        .lines()
        .chain(links.lines())
        .filter(|l| l.contains(id))
        .map(str::to_string)
        .collect()
}

fn pair(lab: &Lab) -> (Ns, Ns, Iface, Iface) {
    let c = lab.add_ns("client").unwrap();
    let s = lab.add_ns("server").unwrap();
    let (ci, si) = lab.veth(&c, &s).unwrap();
    ci.addr("10.77.0.1/24").unwrap().addr("fd77::1/64").unwrap();
    si.addr("10.77.0.2/24").unwrap().addr("fd77::2/64").unwrap();
    (c, s, ci, si)
}

fn echo_once(client: &Ns, listener: &TcpListener, to: &str) {
    let mut conn = client
        .in_ns(|| TcpStream::connect_timeout(&to.parse().unwrap(), Duration::from_secs(5)))
        .unwrap()
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"ping").unwrap();
    let (mut acc, peer) = listener.accept().unwrap();
    acc.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0; 4];
    acc.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    acc.write_all(b"pong").unwrap();
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
    assert!(
        peer.ip()
            .to_string()
            .starts_with(if to.starts_with('[') { "fd77" } else { "10.77" })
    );
}

#[test]
fn tcp_between_two_namespaces_then_nothing_left() {
    crate::require_root!();
    let lab = Lab::new().unwrap();
    let id = lab.id().to_string();
    let (client, server, _, si) = pair(&lab);
    assert_eq!(si.ns().short(), "server");
    assert_eq!(lab.ns("client").netns(), client.netns());
    let before = server.counters().unwrap();
    let l4 = server
        .in_ns(|| TcpListener::bind("10.77.0.2:8080"))
        .unwrap()
        .unwrap();
    let l6 = server
        .in_ns(|| TcpListener::bind("[fd77::2]:8080"))
        .unwrap()
        .unwrap();
    server
        .wait_tcp_listen(8080, Duration::from_secs(5))
        .unwrap();
    assert!(
        !client.tcp_listening(8080).unwrap(),
        "listeners must be per namespace"
    );
    echo_once(&client, &l4, "10.77.0.2:8080");
    echo_once(&client, &l6, "[fd77::2]:8080");
    let d = server.counters().unwrap().delta(&before);
    assert_eq!(d.get("TcpPassiveOpens"), 2, "server deltas:\n{d}");
    assert_eq!(d.get("TcpActiveOpens"), 0);
    assert!(client.counters().unwrap().get("TcpActiveOpens") >= 2);
    assert!(server.counters().unwrap().get("Ip6InReceives") > 0);
    assert!(!leftovers(&id).is_empty());
    drop((l4, l6));
    drop(lab);
    assert_eq!(leftovers(&id), Vec::<String>::new());
}

#[test]
fn panic_inside_a_test_leaves_nothing_behind() {
    crate::require_root!();
    let mut seen = (String::new(), 0u32);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::new().unwrap();
        let ns = lab.add_ns("victim").unwrap();
        let (host, inner) = lab.veth(&lab.root(), &ns).unwrap();
        inner.addr("fd78::1/64").unwrap();
        let p = ns.spawn(&["sleep", "300"]).unwrap();
        // One more process that the lab alone owns (its Proc is forgotten).
        let orphan = ns.spawn(&["sleep", "301"]).unwrap();
        seen = (lab.id().to_string(), orphan.pid());
        std::mem::forget(orphan);
        assert!(!leftovers(lab.id()).is_empty());
        assert!(host.show().unwrap().contains(host.name()));
        let _keep = p;
        panic!("deliberate");
    }));
    assert!(r.is_err());
    let (id, pid) = seen;
    assert_eq!(leftovers(&id), Vec::<String>::new());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "orphan still running: {stat}"
    );
}

#[test]
fn python_server_spawned_in_namespace_is_killed_on_drop() {
    crate::require_root!();
    let lab = Lab::new().unwrap();
    let (client, server, _, _) = pair(&lab);
    let script = "import socket\n\
                  s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                  s.bind(('10.77.0.2', 9000)); s.listen()\n\
                  while True:\n    c,_=s.accept(); c.sendall(b'hello'); c.close()\n";
    let mut p = server.spawn(&["python3", "-c", script]).unwrap();
    server
        .wait_tcp_listen(9000, Duration::from_secs(10))
        .unwrap();
    let mut conn = client
        .in_ns(|| {
            TcpStream::connect_timeout(&"10.77.0.2:9000".parse().unwrap(), Duration::from_secs(5))
        })
        .unwrap()
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = String::new();
    conn.read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello");
    assert!(p.is_running());
    let pid = p.pid();
    drop(p);
    assert!(std::fs::read_to_string(format!("/proc/{pid}/stat")).is_err());
    // `exec` runs to completion in the namespace.
    assert!(
        client
            .exec(&["ip", "-o", "addr"])
            .unwrap()
            .contains("10.77.0.1")
    );
    assert!(client.sh("cat /proc/net/dev").unwrap().contains("lo:"));
}

#[test]
fn sysctls_and_nstat_are_per_namespace() {
    crate::require_root!();
    let lab = Lab::new().unwrap();
    let a = lab.add_ns("a").unwrap();
    let b = lab.add_ns("b").unwrap();
    a.sysctl("net.ipv4.tcp_syncookies", "2").unwrap();
    b.sysctl("net.ipv4.tcp_syncookies", "0").unwrap();
    assert_eq!(a.sysctl_get("net.ipv4.tcp_syncookies").unwrap(), "2");
    assert_eq!(b.sysctl_get("net.ipv4.tcp_syncookies").unwrap(), "0");
    // Fresh namespaces count from zero, whatever the host did.
    assert_eq!(a.counters().unwrap().get("TcpActiveOpens"), 0);
    assert!(a.counters().unwrap().0.contains_key("TcpExtSyncookiesSent"));
    // The thread is back where it was after each guard.
    let me = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    {
        let _g = a.enter().unwrap();
        assert_ne!(std::fs::read_link("/proc/thread-self/ns/net").unwrap(), me);
        let _g2 = lab.root().enter().unwrap();
    }
    assert_eq!(std::fs::read_link("/proc/thread-self/ns/net").unwrap(), me);
}

#[test]
fn veth_knobs_xdp_pass_and_gateway() {
    crate::require_root!();
    let lab = Lab::new().unwrap();
    let id = lab.id().to_string();
    let (client, server, ci, si) = pair(&lab);
    ci.mtu(1400).unwrap().tx_checksum_off().unwrap();
    assert!(ci.show().unwrap().contains("mtu 1400"));
    let k = client.exec(&["ethtool", "-k", ci.name()]).unwrap();
    assert!(k.contains("tx-checksumming: off"), "{k}");
    let mac = "02:aa:bb:cc:dd:ee".parse().unwrap();
    si.set_mac(mac).unwrap();
    assert_eq!(si.mac().unwrap(), mac);
    assert!(
        server
            .addrs(si.name())
            .unwrap()
            .contains(&"fd77::2".parse().unwrap())
    );

    // Pass-through XDP in native mode on both ends; traffic still flows.
    si.attach_xdp_pass(XdpMode::Native).unwrap();
    ci.attach_xdp_pass(XdpMode::Native).unwrap();
    assert!(si.show().unwrap().contains("xdp"), "{}", si.show().unwrap());
    let l = server
        .in_ns(|| TcpListener::bind("10.77.0.2:8081"))
        .unwrap()
        .unwrap();
    echo_once(&client, &l, "10.77.0.2:8081");

    // Replies to off-link (spoofed) sources go to the sink router, not on-link.
    let gw = lab
        .sink_gateway(
            &server,
            "gw",
            &[
                ("10.78.0.1/30", "10.78.0.2/30"),
                ("fd78::1/64", "fd78::2/64"),
            ],
        )
        .unwrap();
    assert_eq!(
        gw.gw_if.ns().sysctl_get("net.ipv4.ip_forward").unwrap(),
        "0"
    );
    let r = server.ip(&["route", "get", "198.18.7.7"]).unwrap();
    assert!(r.contains("via 10.78.0.2"), "{r}");
    let r = server.ip(&["-6", "route", "get", "2001:db8::7"]).unwrap();
    assert!(r.contains("via fd78::2"), "{r}");
    assert!(
        server
            .ip(&["route", "get", "10.77.0.1"])
            .unwrap()
            .contains(si.name())
    );

    // Two labs at once never collide.
    let other = Lab::new().unwrap();
    assert_ne!(other.id(), lab.id());
    let c2 = other.add_ns("client").unwrap();
    assert_ne!(c2.netns(), client.netns());
    drop(other);
    drop(lab);
    assert_eq!(leftovers(&id), Vec::<String>::new());
}

#[test]
fn interface_names_fit() {
    assert_eq!(base36(0), "0");
    assert_eq!(base36(35), "z");
    assert_eq!(base36(36), "10");
    // Worst case pid (2^22) and a two-digit lab and veth counter.
    let id = format!("wt{}x{}", base36(4_194_304), base36(1295));
    assert!(format!("{id}v{}a", base36(1295)).len() <= 15);
}

/// The kernel as an independent checksum judge: frames from the packet builder, injected on
/// the client veth, are accepted by the server's stack when their checksums are right and
/// counted as checksum errors when they are wrong; the server's SYN-ACK, captured on the
/// wire, decodes with a valid checksum once the server side sends full checksums.
#[test]
fn injected_builder_frames_are_judged_by_the_kernel() {
    use crate::packet::{Packet, flags};
    crate::require_root!();
    let lab = Lab::new().unwrap();
    let (client, server, ci, si) = pair(&lab);
    si.tx_checksum_off().unwrap();
    let (cmac, smac) = (ci.mac().unwrap(), si.mac().unwrap());
    let wire = ci.wire().unwrap();
    let udp = server
        .in_ns(|| std::net::UdpSocket::bind("0.0.0.0:7000"))
        .unwrap()
        .unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let udp6 = server
        .in_ns(|| std::net::UdpSocket::bind("[fd77::2]:7000"))
        .unwrap()
        .unwrap();
    udp6.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let before = server.counters().unwrap();

    let base4 = Packet::new()
        .eth(cmac, smac)
        .ipv4("10.77.0.1", "10.77.0.2")
        .udp(5555, 7000);
    let base6 = Packet::new()
        .eth(cmac, smac)
        .ipv6("fd77::1", "fd77::2")
        .udp(5555, 7000);
    wire.send(&base4.clone().bad_l4_checksum().payload(b"bad").build())
        .unwrap();
    wire.send(&base4.clone().bad_ip_checksum().payload(b"bad").build())
        .unwrap();
    wire.send(&base6.clone().bad_l4_checksum().payload(b"bad").build())
        .unwrap();
    wire.send(&base4.clone().payload(b"good4").build()).unwrap();
    wire.send(&base6.clone().payload(b"good6").build()).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = udp.recv_from(&mut buf).unwrap();
    assert_eq!(
        (&buf[..n], from.to_string().as_str()),
        (&b"good4"[..], "10.77.0.1:5555")
    );
    let (n, _) = udp6.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"good6");
    let d = server.counters().unwrap().delta(&before);
    assert_eq!(d.get("UdpInCsumErrors"), 1, "{d}");
    assert_eq!(d.get("Udp6InCsumErrors"), 1, "{d}");
    assert_eq!(d.get("IpExtInCsumErrors"), 1, "{d}");

    // A SYN with options to a listener: the kernel answers SYN-ACK to our ISN + 1.
    let _l = server
        .in_ns(|| TcpListener::bind("10.77.0.2:8082"))
        .unwrap()
        .unwrap();
    let syn = Packet::new()
        .eth(cmac, smac)
        .ipv4("10.77.0.1", "10.77.0.2")
        .df()
        .tcp(40001, 8082)
        .syn()
        .seq(1000)
        .mss(1400)
        .sack_perm()
        .timestamp(1, 0)
        .nop()
        .wscale(7);
    wire.send(&syn.build()).unwrap();
    let (f, _) = wire
        .recv_matching(Duration::from_secs(5), |dir, f| {
            dir == Dir::In && f.tcp().is_some_and(|t| t.dport == 40001)
        })
        .unwrap()
        .expect("no SYN-ACK");
    let t = f.tcp().unwrap();
    assert_eq!(t.flags, flags::SYN | flags::ACK, "{}", f.summary());
    assert_eq!(t.ack, 1001);
    assert!(
        t.options.contains(&crate::packet::TcpOpt::Mss(1460)),
        "{}",
        f.summary()
    );
    assert!(f.checksums_ok(), "{}", f.summary());
    // Our client stack has no such connection and answers the SYN-ACK with a RST; either
    // way the server counted a passive open attempt.
    let _ = client;
}

/// Native XDP_TX on a veth bounces frames only while the peer has an XDP program too: the
/// lab pitfall, shown with a constant XDP_TX program on the server end.
#[test]
fn native_xdp_tx_on_veth_needs_a_program_on_the_peer() {
    use crate::packet::Packet;
    crate::require_root!();
    let lab = Lab::new().unwrap();
    let (_, _, ci, si) = pair(&lab);
    si.attach_xdp_return(3, XdpMode::Native).unwrap();
    let wire = ci.wire().unwrap();
    let frame = |seq| {
        Packet::new()
            .eth(ci.mac().unwrap(), si.mac().unwrap())
            .ipv4("10.77.0.1", "10.77.0.2")
            .udp(1, 9)
            .payload([seq])
            .build()
    };
    let bounced = |seq: u8| {
        wire.send(&frame(seq)).unwrap();
        wire.recv_matching(Duration::from_millis(300), |d, f| {
            d == Dir::In && f.payload == [seq]
        })
        .unwrap()
        .is_some()
    };
    assert!(!bounced(1), "XDP_TX bounced without a program on the peer");
    ci.attach_xdp_pass(XdpMode::Native).unwrap();
    assert!(
        bounced(2),
        "XDP_TX did not bounce with a pass program on the peer"
    );
}
