//! `cargo xtask demo --quick` (the README's five-minute tour) runs to completion with the weir
//! this test run built, shows `weir top --once` at each step, and leaves nothing behind: no
//! namespace, veth, XDP program, pin, admin socket or process of its lab. Needs root (and
//! hping3 for the flood step, which the demo skips without it).

mod common;

use std::{process::Command, time::Duration};

use anyhow::{Context, Result, ensure};
use common::*;
use weir_tests::lab::Lab;

fn text(c: &mut Command) -> Result<String> {
    let out = weir_tests::lab::output(c, Duration::from_secs(30))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_demo_runs_to_completion_and_leaves_nothing_behind() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let mut c = Command::new(env!("CARGO"));
    c.args(["xtask", "demo", "--quick", "--weir"])
        .arg(weir_bin())
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        // The suite's machine is set up already; xtask then only builds itself with `lab`.
        .env("WEIR_SKIP_SETUP", "1");
    let t0 = std::time::Instant::now();
    // The first run builds xtask with its `lab` feature; the tour itself takes ≈ 40 s.
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(900))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    eprintln!(
        "cargo xtask demo --quick: {} in {:.0} s",
        out.status,
        t0.elapsed().as_secs_f64()
    );
    ensure!(out.status.success(), "the demo failed: {stderr}");
    for want in [
        "== 1/7",
        "examples/demo.toml: OK",
        "== 7/7  teardown",
        "curl: 100 requests: 100 × 200",
        "10.91.0.12 unhealthy after",
        "10.91.0.12 healthy again after",
        "weir stopped by SIGINT (exit status: 0)",
        "demo: done in",
    ] {
        ensure!(stdout.contains(want), "{want:?} missing");
    }
    let frames = stdout.matches("---- weir top --once").count();
    ensure!(frames >= 6, "{frames} weir top frames");
    ensure!(
        stdout.contains("HTTP 0.0.0.0:8080") && stdout.contains("web 10.91.0.11:8000"),
        "the frames show the listener and the targets"
    );
    if stdout.contains("hping3 -S") {
        ensure!(
            stdout.contains("20 real requests during the flood: 20 × 200"),
            "requests under the flood"
        );
        ensure!(
            stdout
                .lines()
                .any(|l| l.starts_with("10.90.0.1:8080") && l.contains(" ON ")),
            "no frame shows cookies on during the flood"
        );
    }

    // Nothing of its lab is left.
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("lab ")?.split(':').next())
        .context("the lab's id")?
        .to_string();
    ensure!(id.starts_with("wt"), "lab id {id:?}");
    let netns = text(Command::new("ip").args(["netns", "list"]))?;
    ensure!(!netns.contains(&id), "namespaces left: {netns}");
    let links = text(Command::new("ip").args(["-d", "-o", "link", "show"]))?;
    ensure!(!links.contains(&id), "links left: {links}");
    for left in [
        format!("/sys/fs/bpf/weir/{id}v0b"),
        format!("/run/weir/{id}v0b.sock"),
        format!("/run/weir/{id}v0b.lock"),
        format!("/tmp/weir-demo-{id}"),
    ] {
        ensure!(!std::path::Path::new(&left).exists(), "{left} left behind");
    }
    let procs = text(Command::new("pgrep").args(["-af", &id]))?;
    ensure!(procs.trim().is_empty(), "processes left: {procs}");
    // No XDP program attached anywhere in the root namespace by the demo (its interfaces are
    // gone with their namespaces; the root one has none of its).
    if let Ok(net) = text(Command::new("bpftool").args(["net", "show"])) {
        ensure!(!net.contains(&id), "bpftool net: {net}");
    }
    Ok(())
}
