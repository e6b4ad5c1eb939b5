//! SYN-flood defence fixtures through `BPF_PROG_TEST_RUN`: SYN → exact SYN-ACK (IPv4, IPv6,
//! VLAN, with and without options, option-less in 54- and 60-byte frames), valid and invalid cookie ACKs, strays, established flows,
//! modes off/always/auto and their transitions, per-source rate limits and the flood guard,
//! and every SYN left to the kernel counted under its reason.
//!
//! The cookie helpers work on the kernel's listening socket in the namespace `TestRun` runs in
//! (the caller's), so every test runs inside a lab namespace with real listeners on the VIPs
//! (addresses on `lo`) and that namespace's `tcp_syncookies = 2`, `tcp_timestamps = 2`. Needs
//! root.

use std::{
    net::{TcpListener, TcpStream},
    time::Duration,
};

use lb_common::{
    Stat,
    syn::{SynCounter, SynMode, ts},
};
use lb_userspace::{
    config::{
        Protocol, VipSpec,
        syn::{SynConfig, SynModeSetting},
    },
    xdp::{Dataplane, run_frame, syn::SynControl, vips},
};
use weir_tests::{
    lab::{Lab, Ns},
    packet::{Frame, Packet, TcpOpt, assert_frames_eq},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const VIP4: &str = "10.0.0.10";
const VIP6: &str = "fc00::10";
const CLIENT4: &str = "198.51.100.7";
const CLIENT6: &str = "fc00::7";
const MAC_C: &str = "02:00:00:00:00:01";
const MAC_S: &str = "02:00:00:00:00:02";
/// VIP ids: 0 = VIP4:80, 1 = VIP6:443, 2 = VIP4:81 (nothing listens).
const PORT4: u16 = 80;
const PORT6: u16 = 443;
const PORT_NONE: u16 = 81;

struct Fx {
    _lab: Lab,
    ns: Ns,
    dp: Dataplane,
    syn: SynControl,
    _listeners: (TcpListener, TcpListener),
}

fn config(mode: SynModeSetting) -> SynConfig {
    SynConfig {
        mode,
        auto_on_syn_per_second: 1000,
        auto_off_syn_per_second: 200,
        auto_hold_seconds: 1,
        ..SynConfig::default()
    }
}

fn setup(cfg: &SynConfig) -> Option<Fx> {
    if !Lab::root_required() {
        return None;
    }
    let lab = Lab::new().unwrap();
    let ns = lab.add_ns("syn").unwrap();
    ns.ip(&["addr", "add", &format!("{VIP4}/32"), "dev", "lo"])
        .unwrap();
    // `nodad`: usable at once (a tentative address fails the bind below with EADDRNOTAVAIL).
    ns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{VIP6}/128"),
        "dev",
        "lo",
        "nodad",
    ])
    .unwrap();
    ns.sysctl("net.ipv4.tcp_syncookies", "2").unwrap();
    ns.sysctl("net.ipv4.tcp_timestamps", "2").unwrap();
    // tcp_rmem[2] = 6 MiB (above the host's rmem_max of 4 MiB): the kernel's window scale 7.
    ns.sysctl("net.ipv4.tcp_rmem", "4096 131072 6291456")
        .unwrap();
    let listeners = ns
        .in_ns(|| {
            (
                TcpListener::bind((VIP4, PORT4)).unwrap(),
                TcpListener::bind((VIP6, PORT6)).unwrap(),
            )
        })
        .unwrap();
    let mut dp = Dataplane::load().expect("load XDP object (needs root)");
    let specs = [(VIP4, PORT4), (VIP6, PORT6), (VIP4, PORT_NONE)].map(|(a, p)| VipSpec {
        name: None,
        address: a.into(),
        port: p,
        protocol: Protocol::Tcp,
    });
    let resolved = vips::resolve(&specs, &[]);
    dp.set_vips(&resolved).unwrap();
    // The settings are read from this namespace's sysctls.
    let syn = ns
        .in_ns(|| SynControl::start(&mut dp, cfg, &resolved, Some(1500), false))
        .unwrap()
        .unwrap();
    Some(Fx {
        _lab: lab,
        ns,
        dp,
        syn,
        _listeners: listeners,
    })
}

impl Fx {
    /// Runs one frame; returns (action, output, the one stat that moved).
    fn run(&mut self, frame: &[u8]) -> (u32, Vec<u8>, Stat) {
        let before = self.dp.counters().unwrap();
        let _in = self.ns.enter().unwrap();
        let (action, out) = run_frame(self.dp.program(), frame).expect("BPF_PROG_TEST_RUN");
        let after = self.dp.counters().unwrap();
        let moved: Vec<Stat> = Stat::ALL
            .into_iter()
            .filter(|s| after.stat(*s).packets != before.stat(*s).packets)
            .collect();
        assert_eq!(moved.len(), 1, "exactly one stat moves, got {moved:?}");
        let s = moved[0];
        assert_eq!(after.stat(s).packets - before.stat(s).packets, 1);
        (action, out, s)
    }

    fn syn_count(&self, vip: u32, c: SynCounter) -> u64 {
        let st = self.dp.syn_state(&[vip]).unwrap();
        st[0].get(c)
    }
}

/// A Linux-like SYN: MSS, SACK-permitted, timestamps, NOP, window scale; ECN setup flags.
fn syn4(src: &str, sport: u16) -> Packet {
    Packet::new()
        .eth(MAC_C, MAC_S)
        .ipv4(src, VIP4)
        .df()
        .tcp(sport, PORT4)
        .syn()
        .ece()
        .cwr()
        .seq(1000)
        .window(64240)
        .mss(1460)
        .sack_perm()
        .timestamp(12345, 0)
        .nop()
        .wscale(7)
}

fn syn6(sport: u16) -> Packet {
    Packet::new()
        .eth(MAC_C, MAC_S)
        .ipv6(CLIENT6, VIP6)
        .tcp(sport, PORT6)
        .syn()
        .seq(7)
        .mss(1440)
        .sack_perm()
        .timestamp(999, 0)
        .nop()
        .wscale(9)
}

fn now_ms() -> u32 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64 * 1000 + t.tv_nsec as u64 / 1_000_000) as u32
}

/// The SYN-ACK weir must send for a Linux-like SYN, given the two values only the kernel knows
/// (the cookie) and the clock decides (TSval).
fn expect_synack(v6: bool, vlan: Option<u16>, cookie: u32, tsval: u32, ecn: bool) -> Vec<u8> {
    let mut p = Packet::new().eth(MAC_S, MAC_C);
    if let Some(v) = vlan {
        p = p.vlan(v);
    }
    let (p, client_ts, ack, mss) = if v6 {
        (p.ipv6(VIP6, CLIENT6).tcp(PORT6, 40001), 999, 8, 1440)
    } else {
        (
            p.ipv4(VIP4, CLIENT4).df().tcp(PORT4, 40000),
            12345,
            1001,
            1460,
        )
    };
    let mut p = p.syn().ack().seq(cookie).ack_seq(ack).window(65535);
    if ecn {
        p = p.ece();
    }
    // The namespace's tcp_rmem[2] (6 MiB, see `setup`) gives the kernel window scale 7.
    p.mss(mss)
        .sack_perm()
        .timestamp(tsval, client_ts)
        .nop()
        .wscale(7)
        .build()
}

fn tcp_of(frame: &[u8]) -> weir_tests::packet::TcpInfo {
    Frame::parse(frame).unwrap().tcp().unwrap().clone()
}

/// TSval of the SYN-ACK: the encoded options in the low 6 bits, from the coarse clock (a tick
/// behind at most) rounded down to its 64 ms block: never ahead of the clock, at most ≈ 70 ms
/// behind.
fn check_tsval(tsval: u32, wscale: u8, ecn: bool, before_ms: u32) {
    assert_eq!(
        tsval & 0x3f,
        ts::options(Some(wscale), true, ecn),
        "TSval option bits"
    );
    assert!(
        tsval.wrapping_add(64 + 20) >= before_ms && tsval <= now_ms(),
        "TSval {tsval} vs clock {before_ms}..{}",
        now_ms()
    );
}

#[test]
fn syn_becomes_exact_synack_and_its_ack_checks_out_v4() {
    let Some(mut fx) = setup(&config(SynModeSetting::Always)) else {
        return;
    };
    let t0 = now_ms();
    let syn = syn4(CLIENT4, 40000).build();
    let (action, out, stat) = fx.run(&syn);
    assert_eq!((action, stat), (XDP_TX, Stat::TxSynCookie));
    let tcp = tcp_of(&out);
    let tsval = match tcp.options[2] {
        TcpOpt::Timestamp(v, _) => v,
        ref o => panic!("third option {o:?}"),
    };
    check_tsval(tsval, 7, true, t0);
    assert_frames_eq(&expect_synack(false, None, tcp.seq, tsval, true), &out);
    assert!(Frame::parse(&out).unwrap().checksums_ok());
    assert_eq!(fx.syn_count(0, SynCounter::CookieSent), 1);
    assert_eq!(fx.syn_count(0, SynCounter::SynSeen), 1);

    // The client's ACK: the cookie + 1, our TSval echoed.
    let ack = |ack_seq: u32| {
        Packet::new()
            .eth(MAC_C, MAC_S)
            .ipv4(CLIENT4, VIP4)
            .df()
            .tcp(40000, PORT4)
            .ack()
            .seq(1001)
            .ack_seq(ack_seq)
            .nop()
            .nop()
            .timestamp(12346, tsval)
            .build()
    };
    let good = ack(tcp.seq.wrapping_add(1));
    let (action, out, stat) = fx.run(&good);
    assert_eq!((action, stat), (XDP_PASS, Stat::PassSynCookieAck));
    assert_eq!(out, good, "a passed ACK is untouched");
    let (action, _, stat) = fx.run(&ack(tcp.seq.wrapping_add(2)));
    assert_eq!((action, stat), (XDP_DROP, Stat::DropSynCookieAck));
    // Same cookie from another source port: the cookie is bound to the 4-tuple.
    let other = Packet::new()
        .eth(MAC_C, MAC_S)
        .ipv4(CLIENT4, VIP4)
        .tcp(40002, PORT4)
        .ack()
        .seq(1001)
        .ack_seq(tcp.seq.wrapping_add(1))
        .build();
    let (action, _, stat) = fx.run(&other);
    assert_eq!((action, stat), (XDP_DROP, Stat::DropSynCookieAck));
    assert_eq!(fx.syn_count(0, SynCounter::CookieAckValid), 1);
    assert_eq!(fx.syn_count(0, SynCounter::CookieAckInvalid), 2);
}

#[test]
fn ipv6_and_vlan_syns_get_exact_synacks() {
    let Some(mut fx) = setup(&config(SynModeSetting::Always)) else {
        return;
    };
    let t0 = now_ms();
    let (action, out, stat) = fx.run(&syn6(40001).build());
    assert_eq!((action, stat), (XDP_TX, Stat::TxSynCookie));
    let tcp = tcp_of(&out);
    let TcpOpt::Timestamp(tsval, _) = tcp.options[2] else {
        panic!("{:?}", tcp.options)
    };
    check_tsval(tsval, 9, false, t0);
    assert_frames_eq(&expect_synack(true, None, tcp.seq, tsval, false), &out);
    let ack = Packet::new()
        .eth(MAC_C, MAC_S)
        .ipv6(CLIENT6, VIP6)
        .tcp(40001, PORT6)
        .ack()
        .seq(8)
        .ack_seq(tcp.seq.wrapping_add(1))
        .build();
    assert_eq!(fx.run(&ack).2, Stat::PassSynCookieAck);
    assert_eq!(fx.syn_count(1, SynCounter::CookieAckValid), 1);

    let tagged = syn4(CLIENT4, 40000).vlan(42).build();
    let (action, out, _) = fx.run(&tagged);
    assert_eq!(action, XDP_TX);
    let tcp = tcp_of(&out);
    let TcpOpt::Timestamp(tsval, _) = tcp.options[2] else {
        panic!()
    };
    assert_frames_eq(&expect_synack(false, Some(42), tcp.seq, tsval, true), &out);
}

#[test]
fn other_option_layouts_take_the_general_walk() {
    let Some(mut fx) = setup(&config(SynModeSetting::Always)) else {
        return;
    };
    // macOS/iOS order: MSS, NOP, WS, NOP, NOP, TS, SACK-permitted, EOL, EOL (24 bytes).
    let mac = Packet::new()
        .eth(MAC_C, MAC_S)
        .ipv4(CLIENT4, VIP4)
        .df()
        .tcp(40000, PORT4)
        .syn()
        .seq(1000)
        .mss(1460)
        .nop()
        .wscale(6)
        .nop()
        .nop()
        .timestamp(12345, 0)
        .sack_perm()
        .tcp_opt(TcpOpt::Eol)
        .tcp_opt(TcpOpt::Eol)
        .build();
    let t0 = now_ms();
    let (action, out, _) = fx.run(&mac);
    assert_eq!(action, XDP_TX);
    let tcp = tcp_of(&out);
    let TcpOpt::Timestamp(tsval, _) = tcp.options[2] else {
        panic!("{:?}", tcp.options)
    };
    check_tsval(tsval, 6, false, t0);
    assert_frames_eq(&expect_synack(false, None, tcp.seq, tsval, false), &out);
    // Windows order, no timestamps: MSS, NOP, WS, NOP, NOP, SACK-permitted. Nothing can carry
    // the window scale or SACK through the cookie: MSS only.
    let win = Packet::new()
        .eth(MAC_C, MAC_S)
        .ipv4(CLIENT4, VIP4)
        .tcp(40001, PORT4)
        .syn()
        .mss(1460)
        .nop()
        .wscale(8)
        .nop()
        .nop()
        .sack_perm()
        .build();
    let (action, out, _) = fx.run(&win);
    assert_eq!(action, XDP_TX);
    assert_eq!(tcp_of(&out).options, [TcpOpt::Mss(1460)]);
    assert_eq!(out.len(), 58, "MSS only: a 24-byte TCP header");
}

/// hping3's SYN: no TCP options, a 54-byte frame.
fn bare_syn(sport: u16) -> Vec<u8> {
    Packet::new()
        .eth(MAC_C, MAC_S)
        .ipv4(CLIENT4, VIP4)
        .tcp(sport, PORT4)
        .syn()
        .seq(5)
        .window(512)
        .build()
}

/// The SYN-ACK to a SYN without a timestamp: MSS alone (a 24-byte TCP header, a 58-byte frame).
fn expect_mss_only_synack(sport: u16, cookie: u32) -> Vec<u8> {
    Packet::new()
        .eth(MAC_S, MAC_C)
        .ipv4(VIP4, CLIENT4)
        .df()
        .tcp(PORT4, sport)
        .syn()
        .ack()
        .seq(cookie)
        .ack_seq(6)
        .window(65535)
        .mss(1460)
        .build()
}

/// Runs `syn` (from `sport`), expects the exact MSS-only SYN-ACK, then checks the cookie with
/// the kernel through the client's ACK (`bpf_tcp_check_syncookie`): right, and wrong. (Wrong in
/// bits 8..15: the low two bits are the MSS index, and the default MSS's index 0 plus one is
/// another valid index.)
fn answers_mss_only_with_a_valid_cookie(fx: &mut Fx, syn: &[u8], sport: u16) {
    let (action, out, stat) = fx.run(syn);
    assert_eq!((action, stat), (XDP_TX, Stat::TxSynCookie));
    assert_eq!(out.len(), 14 + 20 + 24, "MSS only: the frame is 58 bytes");
    let cookie = tcp_of(&out).seq;
    assert_frames_eq(&expect_mss_only_synack(sport, cookie), &out);
    assert!(Frame::parse(&out).unwrap().checksums_ok());
    let ack = |ack_seq: u32| {
        Packet::new()
            .eth(MAC_C, MAC_S)
            .ipv4(CLIENT4, VIP4)
            .tcp(sport, PORT4)
            .ack()
            .seq(6)
            .ack_seq(ack_seq)
            .build()
    };
    let (action, _, stat) = fx.run(&ack(cookie.wrapping_add(1)));
    assert_eq!((action, stat), (XDP_PASS, Stat::PassSynCookieAck));
    let (action, _, stat) = fx.run(&ack((cookie ^ 0xff00).wrapping_add(1)));
    assert_eq!((action, stat), (XDP_DROP, Stat::DropSynCookieAck));
}

#[test]
fn option_less_54_byte_syn_gets_an_exact_mss_only_synack() {
    let Some(mut fx) = setup(&config(SynModeSetting::Always)) else {
        return;
    };
    let syn = bare_syn(1234);
    assert_eq!(syn.len(), 54);
    answers_mss_only_with_a_valid_cookie(&mut fx, &syn, 1234);
    assert_eq!(fx.syn_count(0, SynCounter::CookieSent), 1);
    assert_eq!(fx.syn_count(0, SynCounter::CookieAckValid), 1);
}

#[test]
fn option_less_syn_in_a_60_byte_minimum_frame_gets_the_same_synack() {
    let Some(mut fx) = setup(&config(SynModeSetting::Always)) else {
        return;
    };
    // What a NIC delivers: the 54-byte SYN padded with 6 bytes to Ethernet's minimum.
    let mut syn = bare_syn(1235);
    syn.extend_from_slice(&[0; 6]);
    answers_mss_only_with_a_valid_cookie(&mut fx, &syn, 1235);
}

#[test]
fn syns_without_timestamps_get_mss_only() {
    let Some(mut fx) = setup(&config(SynModeSetting::Always)) else {
        return;
    };
    // MSS only, a payload, padding: shrinks to the same 58-byte SYN-ACK.
    let fat = Packet::new()
        .eth(MAC_C, MAC_S)
        .ipv4(CLIENT4, VIP4)
        .tcp(1236, PORT4)
        .syn()
        .seq(5)
        .mss(1400)
        .payload_pattern(300)
        .build();
    let (action, out, _) = fx.run(&fat);
    assert_eq!(action, XDP_TX);
    assert_frames_eq(&expect_mss_only_synack(1236, tcp_of(&out).seq), &out);
    // IPv6, no options: 74 bytes grow by 4.
    let bare6 = Packet::new()
        .eth(MAC_C, MAC_S)
        .ipv6(CLIENT6, VIP6)
        .tcp(1237, PORT6)
        .syn()
        .seq(9)
        .build();
    let (action, out, _) = fx.run(&bare6);
    assert_eq!(action, XDP_TX);
    let want = Packet::new()
        .eth(MAC_S, MAC_C)
        .ipv6(VIP6, CLIENT6)
        .tcp(PORT6, 1237)
        .syn()
        .ack()
        .seq(tcp_of(&out).seq)
        .ack_seq(10)
        .window(65535)
        .mss(1440)
        .build();
    assert_frames_eq(&want, &out);
    assert!(Frame::parse(&out).unwrap().checksums_ok());
}

#[test]
fn every_syn_left_to_the_kernel_is_counted_by_reason() {
    let Some(mut fx) = setup(&config(SynModeSetting::Always)) else {
        return;
    };
    let v4 = || Packet::new().eth(MAC_C, MAC_S);
    // IPv4 options (a router alert).
    let opts = v4()
        .ipv4(CLIENT4, VIP4)
        .ip_options(&[0x94, 4, 0, 0])
        .tcp(2000, PORT4)
        .syn()
        .build();
    assert_eq!(fx.run(&opts).2, Stat::PassSynIpOptions);
    // Nothing listens on the port: the kernel's RST.
    let none = v4().ipv4(CLIENT4, VIP4).tcp(2001, PORT_NONE).syn().build();
    assert_eq!(fx.run(&none).2, Stat::PassSynNoListener);
    // The 4-tuple has its own socket (an established connection over lo).
    let client = fx
        .ns
        .in_ns(|| TcpStream::connect((VIP4, PORT4)).unwrap())
        .unwrap();
    let local = client.local_addr().unwrap();
    let again = v4()
        .ipv4(local.ip().to_string().as_str(), VIP4)
        .tcp(local.port(), PORT4)
        .syn()
        .build();
    assert_eq!(fx.run(&again).2, Stat::PassSynNotListener);
    // The kernel's cookie helper refuses: cookies off (0), or only on overflow (1).
    for value in ["0", "1"] {
        fx.ns.sysctl("net.ipv4.tcp_syncookies", value).unwrap();
        let (action, _, stat) = fx.run(&bare_syn(2002));
        assert_eq!(
            (action, stat),
            (XDP_PASS, Stat::PassSynCookieRefused),
            "{value}"
        );
    }
    fx.ns.sysctl("net.ipv4.tcp_syncookies", "2").unwrap();
    // A data offset past the frame's end: dropped, as the kernel would.
    let short = v4()
        .ipv4(CLIENT4, VIP4)
        .tcp(2003, PORT4)
        .syn()
        .data_offset(15)
        .build();
    let (action, _, stat) = fx.run(&short);
    assert_eq!((action, stat), (XDP_DROP, Stat::DropMalformed));
    assert_eq!(fx.run(&bare_syn(2004)).2, Stat::TxSynCookie);
    let c = fx.dp.counters().unwrap();
    for s in [
        Stat::PassSynIpOptions,
        Stat::PassSynNoListener,
        Stat::PassSynNotListener,
    ] {
        assert_eq!(c.stat(s).packets, 1, "{}", s.name());
    }
    assert_eq!(c.stat(Stat::PassSynCookieRefused).packets, 2);
    // No room to grow (`PassSynNoRoom`) needs a driver without tailroom: BPF_PROG_TEST_RUN
    // always gives a page. e2e_synflood's hping3 flood covers the veth's page-pool fragments.
    assert_eq!(c.stat(Stat::PassSynNoRoom).packets, 0);
    assert_eq!(
        c.stat(Stat::PassVip).packets,
        0,
        "no SYN is an unexplained pass"
    );
    drop(client);
}

#[test]
fn strays_and_established_flows_in_cookie_mode() {
    let Some(mut fx) = setup(&config(SynModeSetting::Always)) else {
        return;
    };
    // RST, FIN and data with no connection behind them never reach the stack.
    for p in [
        Packet::new().ipv4(CLIENT4, VIP4).tcp(5, PORT4).rst(),
        Packet::new().ipv4(CLIENT4, VIP4).tcp(5, PORT4).fin(),
        Packet::new()
            .ipv4(CLIENT4, VIP4)
            .tcp(5, PORT_NONE)
            .ack()
            .payload(b"x"),
    ] {
        let (action, _, stat) = fx.run(&p.build());
        assert_eq!((action, stat), (XDP_DROP, Stat::DropVipStray));
    }
    // A SYN where nothing listens goes to the kernel (which answers RST).
    let (action, _, stat) = fx.run(
        &Packet::new()
            .ipv4(CLIENT4, VIP4)
            .tcp(5, PORT_NONE)
            .syn()
            .build(),
    );
    assert_eq!((action, stat), (XDP_PASS, Stat::PassSynNoListener));
    // An established connection's segments pass: a real connection over lo.
    let client = fx
        .ns
        .in_ns(|| TcpStream::connect((VIP4, PORT4)).unwrap())
        .unwrap();
    let local = client.local_addr().unwrap();
    wait_server_established(&fx.ns, local.port());
    let data = Packet::new()
        .ipv4(local.ip().to_string().as_str(), VIP4)
        .tcp(local.port(), PORT4)
        .ack()
        .psh()
        .payload(b"GET /")
        .build();
    let (action, _, stat) = fx.run(&data);
    assert_eq!((action, stat), (XDP_PASS, Stat::PassVip));
    assert_eq!(fx.syn_count(0, SynCounter::Stray), 2);
    assert_eq!(fx.syn_count(2, SynCounter::Stray), 1);
}

/// Waits (≤ 2 s) until the server's side of the connection from client port `port` to
/// PORT4 is established in `ns` (`/proc/net/tcp`, state 01): the client's `connect` returns
/// when it has sent its ACK, and on a loaded machine the listener may take that ACK later.
fn wait_server_established(ns: &weir_tests::lab::Ns, port: u16) {
    let want = format!(":{PORT4:04X} ");
    let peer = format!(":{port:04X} 01 ");
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let table = ns
            .in_ns(|| std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap())
            .unwrap();
        if table
            .lines()
            .any(|l| l.contains(&want) && l.contains(&peer))
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server side of client port {port} never established:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn mode_off_passes_everything_and_auto_switches_with_hysteresis() {
    let Some(mut fx) = setup(&config(SynModeSetting::Off)) else {
        return;
    };
    let syn = syn4(CLIENT4, 40000).build();
    let stray = Packet::new()
        .ipv4(CLIENT4, VIP4)
        .tcp(5, PORT4)
        .ack()
        .build();
    let (action, out, stat) = fx.run(&syn);
    assert_eq!((action, stat), (XDP_PASS, Stat::PassVip));
    assert_eq!(out, syn);
    assert_eq!(
        fx.run(&stray).2,
        Stat::PassVip,
        "off: the kernel judges ACKs"
    );
    assert_eq!(
        fx.syn_count(0, SynCounter::SynSeen),
        0,
        "off: nothing counted"
    );

    // Auto: below the threshold SYNs pass and are counted.
    fx.syn.set_mode(&mut fx.dp, 0, SynMode::Auto).unwrap();
    let t = SynControl::TICK;
    for _ in 0..10 {
        assert_eq!(fx.run(&syn).2, Stat::PassVip);
    }
    // 10 SYNs in 200 ms = 50/s: stays off.
    fx.syn.tick(&mut fx.dp, t).unwrap();
    assert_eq!(fx.run(&syn).2, Stat::PassVip);
    assert!(!fx.dp.syn_state(&[0]).unwrap()[0].cookies);
    // 300 SYNs in 200 ms = 1500/s ≥ 1000/s: on.
    for _ in 0..300 {
        fx.run(&syn);
    }
    fx.syn.tick(&mut fx.dp, t).unwrap();
    let st = &fx.dp.syn_state(&[0]).unwrap()[0];
    assert!(st.cookies && st.mode == SynMode::Auto);
    assert_eq!(fx.run(&syn).2, Stat::TxSynCookie);
    assert_eq!(fx.run(&stray).2, Stat::DropSynCookieAck);
    // Calm (below 200/s) for a whole hold (1 s = 5 ticks) turns it off; 4 ticks do not.
    for _ in 0..4 {
        fx.syn.tick(&mut fx.dp, t).unwrap();
    }
    assert_eq!(fx.run(&syn).2, Stat::TxSynCookie, "still within the hold");
    for _ in 0..5 {
        fx.syn.tick(&mut fx.dp, t).unwrap();
    }
    assert_eq!(fx.run(&syn).2, Stat::PassVip, "off after the hold");
    // A reloaded configuration (SIGHUP in `weir run`) switches the mode.
    fx.syn
        .reload(&mut fx.dp, &config(SynModeSetting::Always))
        .unwrap();
    assert_eq!(fx.run(&syn).2, Stat::TxSynCookie, "reloaded as always");
    fx.syn
        .reload(&mut fx.dp, &config(SynModeSetting::Off))
        .unwrap();
    assert_eq!(fx.run(&syn).2, Stat::PassVip, "reloaded as off");
    // Always, then off again, at run time.
    fx.syn.set_mode(&mut fx.dp, 0, SynMode::Always).unwrap();
    assert_eq!(fx.run(&syn).2, Stat::TxSynCookie);
    fx.syn.set_mode(&mut fx.dp, 0, SynMode::Off).unwrap();
    assert_eq!(fx.run(&syn).2, Stat::PassVip);
}

/// Pins the calling thread to one CPU: the flood guard's insertion budget is per CPU.
fn pin_to_cpu0() {
    let mut set = nix::sched::CpuSet::new();
    set.set(0).unwrap();
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
}

#[test]
fn per_source_rate_limit_and_flood_guard() {
    let cfg = SynConfig {
        per_source_syn_per_second: 1,
        per_source_burst: 3,
        new_sources_per_second: 5,
        ..config(SynModeSetting::Always)
    };
    let Some(mut fx) = setup(&cfg) else {
        return;
    };
    pin_to_cpu0();
    let started = std::time::Instant::now();
    let real = "203.0.113.1";
    let stats: Vec<Stat> = (0..5)
        .map(|i| fx.run(&syn4(real, 30000 + i).build()).2)
        .collect();
    assert_eq!(
        stats,
        [
            Stat::TxSynCookie,
            Stat::TxSynCookie,
            Stat::TxSynCookie,
            Stat::DropSynRate,
            Stat::DropSynRate
        ],
        "burst of 3, then 1/s"
    );
    assert_eq!(fx.syn_count(0, SynCounter::RateLimited), 2);
    // IPv6: one bucket per /64.
    let v6 = |src: &str| Packet::new().ipv6(src, VIP6).tcp(1, PORT6).syn().build();
    for i in 0..3 {
        assert_eq!(
            fx.run(&v6(&format!("2001:db8:1:2::{i}"))).2,
            Stat::TxSynCookie
        );
    }
    assert_eq!(fx.run(&v6("2001:db8:1:2:ffff::1")).2, Stat::DropSynRate);
    assert_eq!(fx.run(&v6("2001:db8:1:3::1")).2, Stat::TxSynCookie);
    // Tracked so far: the real client and two /64s. The budget (5 new sources a second on
    // this CPU) has 2 left; a spoofed flood gets those and then goes untracked.
    let tracked = fx.dp.syn_rate_sources().unwrap();
    assert_eq!(tracked, 3);
    for i in 0..50u32 {
        let src = format!("100.64.{}.{}", i / 250, i % 250 + 1);
        assert_eq!(fx.run(&syn4(&src, 1).build()).2, Stat::TxSynCookie);
    }
    // The budget renews each second: on a machine so loaded that this test spans several
    // seconds, each further second may admit 5 more (never more).
    let windows = started.elapsed().as_secs() + 1;
    let sources = fx.dp.syn_rate_sources().unwrap() as u64;
    assert!(
        sources >= 5 && sources <= 5 * windows,
        "the flood guard stops inserting: {sources} sources over {windows} window(s)"
    );
    assert!(fx.syn_count(0, SynCounter::Untracked) >= 50 - (sources - 3));
    // The real client's bucket survived the flood: still limited.
    assert_eq!(fx.run(&syn4(real, 30010).build()).2, Stat::DropSynRate);
}

#[test]
fn a_reload_turns_the_per_source_limit_on() {
    let Some(mut fx) = setup(&config(SynModeSetting::Always)) else {
        return;
    };
    pin_to_cpu0();
    let src = "203.0.113.7";
    for i in 0..5 {
        assert_eq!(
            fx.run(&syn4(src, 31000 + i).build()).2,
            Stat::TxSynCookie,
            "no limit configured"
        );
    }
    // A reloaded `[syn]` (SIGHUP in `weir run`) with a per-source limit: in force at once.
    let limited = SynConfig {
        per_source_syn_per_second: 1,
        per_source_burst: 3,
        ..config(SynModeSetting::Always)
    };
    fx.syn.reload(&mut fx.dp, &limited).unwrap();
    let stats: Vec<Stat> = (0..5)
        .map(|i| fx.run(&syn4(src, 31100 + i).build()).2)
        .collect();
    assert_eq!(
        stats,
        [
            Stat::TxSynCookie,
            Stat::TxSynCookie,
            Stat::TxSynCookie,
            Stat::DropSynRate,
            Stat::DropSynRate
        ],
        "burst of 3, then 1/s, from the reload on"
    );
}
