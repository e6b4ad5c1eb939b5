//! `cargo xtask bench xdp`: ns/packet of each path through weir's XDP program, timed by
//! `BPF_PROG_TEST_RUN` with a large repeat count, beside a bare `XDP_PASS` program in the same
//! run. Rounds alternate program and baseline; the median of the rounds is reported.
//!
//! Targets (issue #2): a packet not for a VIP ≤ 2× the bare program; a VIP packet through match,
//! deny-list and counters ≤ 30 ns.

use aya::{
    Ebpf,
    programs::{TestRun, TestRunOptions, Xdp},
};
use lb_userspace::{
    BENCH_OBJECT,
    config::{Protocol, VipSpec},
    xdp::{Dataplane, vips},
};
use serde_json::json;
use weir_tests::packet::Packet;

use super::report::{median, verdict, write_json};

struct Path {
    name: &'static str,
    frame: Vec<u8>,
    /// Target in ns, or a multiple of the bare program's cost.
    target: Target,
}

enum Target {
    None,
    Ns(f64),
    TimesBare(f64),
}

fn paths() -> Vec<Path> {
    let vip = "10.0.0.10";
    vec![
        Path {
            name: "not_vip_tcp",
            frame: Packet::new()
                .ipv4("198.51.100.7", "10.0.0.77")
                .tcp(40000, 80)
                .ack()
                .payload_pattern(64)
                .build(),
            target: Target::TimesBare(2.0),
        },
        Path {
            name: "not_ip_arp",
            frame: {
                let mut f = Packet::new().ipv4("198.51.100.7", vip).udp(1, 1).build();
                f[12..14].copy_from_slice(&[0x08, 0x06]);
                f
            },
            target: Target::TimesBare(2.0),
        },
        Path {
            name: "vip_tcp_v4",
            frame: Packet::new()
                .ipv4("198.51.100.7", vip)
                .tcp(40000, 80)
                .ack()
                .payload_pattern(64)
                .build(),
            target: Target::Ns(30.0),
        },
        Path {
            name: "vip_tcp_v6",
            frame: Packet::new()
                .ipv6("fc00::7", "fc00::10")
                .tcp(40000, 443)
                .ack()
                .payload_pattern(64)
                .build(),
            target: Target::Ns(30.0),
        },
        Path {
            name: "vip_denied_v4",
            frame: Packet::new()
                .ipv4("192.0.2.99", vip)
                .tcp(40000, 80)
                .syn()
                .build(),
            target: Target::Ns(30.0),
        },
        Path {
            name: "vip_icmp_v4",
            frame: Packet::new()
                .ipv4("198.51.100.7", vip)
                .icmp_echo(1, 1)
                .build(),
            target: Target::None,
        },
        Path {
            name: "malformed_ip",
            frame: Packet::new()
                .ipv4("198.51.100.7", vip)
                .tcp(1, 80)
                .truncate(24)
                .build(),
            target: Target::None,
        },
    ]
}

fn time(prog: &Xdp, frame: &[u8], repeat: u32) -> anyhow::Result<f64> {
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::new()
    })?;
    // The kernel reports the mean time of one run.
    Ok(r.duration.as_nanos() as f64)
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let repeat: u32 = flag(args, "--repeat").unwrap_or(1_000_000);
    let rounds: usize = flag(args, "--rounds").unwrap_or(5);
    let deny_prefixes: u32 = flag(args, "--deny-prefixes").unwrap_or(1000);

    let mut dp = Dataplane::load()?;
    let specs: Vec<VipSpec> = [("10.0.0.10", 80), ("fc00::10", 443)]
        .iter()
        .map(|(a, p)| VipSpec {
            name: None,
            address: (*a).into(),
            port: *p,
            protocol: Protocol::Tcp,
        })
        .collect();
    dp.set_vips(&vips::resolve(&specs, &[]))?;
    // A realistic deny-list: `deny_prefixes` /24s across 100.64/10 plus the one the denied path hits.
    let mut deny: Vec<ipnet::IpNet> = (0..deny_prefixes)
        .map(|i| {
            format!("100.{}.{}.0/24", 64 + (i >> 8) % 64, i & 255)
                .parse()
                .unwrap()
        })
        .collect();
    deny.push("192.0.2.0/24".parse()?);
    deny.push("2001:db8:bad::/48".parse()?);
    dp.set_deny_list(&deny)?;

    let mut bench = Ebpf::load(BENCH_OBJECT)?;
    let bare: &mut Xdp = bench
        .program_mut("bare_pass")
        .expect("bare_pass")
        .try_into()?;
    bare.load()?;

    println!(
        "bench xdp: BPF_PROG_TEST_RUN, repeat {repeat}, {rounds} alternating rounds, median; deny-list {} prefixes",
        deny.len()
    );
    println!(
        "{:<16} {:>10} {:>10} {:>8} {:>14} {:>7}",
        "path", "weir ns", "bare ns", "ratio", "target", ""
    );
    let mut rows = Vec::new();
    for p in paths() {
        let (mut w, mut b) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            b.push(time(bare, &p.frame, repeat)?);
            w.push(time(dp.program(), &p.frame, repeat)?);
        }
        let (w, b) = (median(w), median(b));
        let ratio = w / b;
        let (target, ok) = match p.target {
            Target::None => ("-".to_string(), true),
            Target::Ns(ns) => (format!("<= {ns} ns"), w <= ns),
            Target::TimesBare(x) => (format!("<= {x}x bare"), ratio <= x),
        };
        println!(
            "{:<16} {:>10.1} {:>10.1} {:>8.2} {:>14} {:>7}",
            p.name,
            w,
            b,
            ratio,
            target,
            verdict(ok)
        );
        rows.push(json!({"path": p.name, "weir_ns": w, "bare_pass_ns": b, "ratio": ratio, "target": target, "met": ok}));
    }
    let path = write_json(
        "xdp",
        &json!({"repeat": repeat, "rounds": rounds, "deny_prefixes": deny.len(), "paths": rows}),
    )?;
    println!("wrote {}", path.display());
    Ok(())
}

pub fn flag<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}
