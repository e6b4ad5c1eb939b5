//! `cargo xtask bench pps`: packets per second handled by weir's XDP program on a veth, fed by an
//! in-repo generator, beside a bare `XDP_DROP` program on the same veth in the same run.
//!
//! The generator is `gen_tx` run by `BPF_PROG_RUN` with live frames from inside the sender's
//! namespace: each repetition transmits the frame out of the sender's veth, so the receiving
//! veth's XDP program runs as it would for a NIC queue. The flood is a TCP SYN flood to a VIP from
//! a deny-listed prefix (weir drops it in XDP after VIP match, deny-list and counters). Rounds
//! alternate weir and the baseline; medians are reported. The count is bounded (`--packets`).
//!
//! On veth the receiver's work runs on the sender's CPU inside the send call, so the rate is the
//! whole path's: generator + veth + receiving program. Target (issue #2): weir ≥ 0.9× bare.

use std::time::Instant;

use anyhow::{Context, ensure};
use aya::{
    Ebpf,
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
};
use lb_common::Stat;
use lb_userspace::{
    BENCH_OBJECT,
    config::{Protocol, VipSpec},
    xdp::{Dataplane, vips},
};
use serde_json::json;
use weir_tests::{
    lab::{Iface, Lab, Ns},
    packet::Packet,
};

use super::{
    report::{median, verdict, write_json},
    xdp::flag,
};

const VIP: &str = "10.90.0.2";

/// Sum of the receiving veth's XDP drop counters (`ethtool -S`), for either program.
fn xdp_drops(ns: &Ns, iface: &Iface) -> anyhow::Result<u64> {
    let out = ns.exec(&["ethtool", "-S", iface.name()])?;
    Ok(out
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .filter(|(k, _)| k.starts_with("rx_queue_") && k.ends_with("_xdp_drops"))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum())
}

/// Sends `packets` frames through the generator; returns elapsed seconds.
fn flood(
    sender: &Ns,
    gen_prog: &Xdp,
    frame: &[u8],
    ctx: &[u8],
    packets: u32,
) -> anyhow::Result<f64> {
    sender.in_ns(|| -> anyhow::Result<f64> {
        let t = Instant::now();
        gen_prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ctx_in: Some(ctx),
                repeat: packets,
                attrs: TestRunAttrs::new().xdp_live_frames(64),
                ..TestRunOptions::new()
            })
            .map_err(super::live_frames_error)?;
        Ok(t.elapsed().as_secs_f64())
    })?
}

struct Round {
    pps: f64,
    handled: u64,
}

#[allow(clippy::too_many_arguments)] // one call site, every argument distinct
fn measure(
    sender: &Ns,
    dut: &Ns,
    d0: &Iface,
    prog: &mut Xdp,
    gen_prog: &Xdp,
    frame: &[u8],
    ctx: &[u8],
    packets: u32,
) -> anyhow::Result<Round> {
    let link = dut.in_ns(|| prog.attach(d0.name(), XdpMode::Driver))??;
    let before = xdp_drops(dut, d0)?;
    let secs = flood(sender, gen_prog, frame, ctx, packets);
    let handled = xdp_drops(dut, d0)? - before;
    prog.detach(link)?;
    let secs = secs?;
    Ok(Round {
        pps: handled as f64 / secs,
        handled,
    })
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let packets: u32 = flag(args, "--packets").unwrap_or(5_000_000);
    let rounds: usize = flag(args, "--rounds").unwrap_or(3);
    ensure!(packets <= 100_000_000, "--packets is bounded at 100M");

    let lab = Lab::new()?;
    let sender = lab.add_ns("gen")?;
    let dut = lab.add_ns("dut")?;
    let (g0, d0) = lab.veth(&sender, &dut)?;
    g0.addr("10.90.0.1/24")?;
    d0.addr(&format!("{VIP}/24"))?;
    d0.track_xdp();

    let mut dp = Dataplane::load()?;
    let vip = VipSpec {
        name: None,
        address: VIP.into(),
        port: 80,
        protocol: Protocol::Tcp,
    };
    dp.set_vips(&vips::resolve(&[vip], &[]))?;
    dp.set_deny_list(&["192.0.2.0/24".parse()?])?;

    // Two instances of the benchmark object: the generator and the baseline are used at once.
    let mut generator = Ebpf::load(BENCH_OBJECT)?;
    let gen_prog: &mut Xdp = generator
        .program_mut("gen_tx")
        .context("gen_tx")?
        .try_into()?;
    gen_prog.load()?;
    let gen_prog: &Xdp = gen_prog;
    let mut baseline = Ebpf::load(BENCH_OBJECT)?;
    let bare: &mut Xdp = baseline
        .program_mut("bare_drop")
        .context("bare_drop")?
        .try_into()?;
    bare.load()?;
    // A third reference: a drop that reads the headers, to separate the cost of touching packet
    // memory (which no real program avoids) from the cost of weir's decisions.
    let mut reader = Ebpf::load(BENCH_OBJECT)?;
    let touch: &mut Xdp = reader
        .program_mut("touch_drop")
        .context("touch_drop")?
        .try_into()?;
    touch.load()?;
    let frame = Packet::new()
        .eth(g0.mac()?, d0.mac()?)
        .ipv4("192.0.2.7", VIP)
        .tcp(40000, 80)
        .syn()
        .build();
    let ctx = super::live_ctx(frame.len(), g0.ifindex()?);

    println!(
        "bench pps: {packets} SYNs from a denied prefix per round, {rounds} alternating rounds, veth native XDP"
    );
    let (mut weir_pps, mut bare_pps, mut touch_pps) = (Vec::new(), Vec::new(), Vec::new());
    let mut weir_counted_ok = true;
    for r in 0..rounds {
        let b = measure(&sender, &dut, &d0, bare, gen_prog, &frame, &ctx, packets)?;
        let t = measure(&sender, &dut, &d0, touch, gen_prog, &frame, &ctx, packets)?;
        let before = dp.counters()?.stat(Stat::DropDenied).packets;
        let w = measure(
            &sender,
            &dut,
            &d0,
            dp.program(),
            gen_prog,
            &frame,
            &ctx,
            packets,
        )?;
        let counted = dp.counters()?.stat(Stat::DropDenied).packets - before;
        weir_counted_ok &= counted == w.handled;
        println!(
            "round {r}: bare {:>10.0} pps ({} handled)   header-reading drop {:>10.0} pps   weir {:>10.0} pps ({} handled, {} counted drop_denied)",
            b.pps, b.handled, t.pps, w.pps, w.handled, counted
        );
        bare_pps.push(b.pps);
        touch_pps.push(t.pps);
        weir_pps.push(w.pps);
    }
    let (w, b, t) = (median(weir_pps), median(bare_pps), median(touch_pps));
    let ratio = w / b;
    println!(
        "{:<10} {:>14} {:>14} {:>8} {:>10}",
        "", "weir pps", "bare_drop pps", "ratio", "target"
    );
    println!(
        "{:<10} {:>14.0} {:>14.0} {:>8.3} {:>10} {}",
        "syn_denied",
        w,
        b,
        ratio,
        ">= 0.9",
        verdict(ratio >= 0.9)
    );
    println!(
        "reference: a drop that only reads the headers: {t:.0} pps ({:.3} of bare); weir is {:.3} of it",
        t / b,
        w / t
    );
    ensure!(
        weir_counted_ok,
        "weir's drop_denied counter disagrees with the veth's XDP drop count"
    );
    let path = write_json(
        "pps",
        &json!({"packets_per_round": packets, "rounds": rounds, "weir_pps": w, "bare_drop_pps": b,
                "header_reading_drop_pps": t, "ratio": ratio, "met": ratio >= 0.9}),
    )?;
    println!("wrote {}", path.display());
    Ok(())
}
