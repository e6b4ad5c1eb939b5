//! The README's first command under signals: `cargo xtask run --iface IF` is signalled by pid,
//! as a supervisor, `timeout` or a script does (not through the terminal's process group), with
//! SIGINT and with SIGTERM. Afterwards nothing of weir may be left: no process, no XDP program on
//! the interface. Before xtask exec'd weir it ran weir as a child and died of the signal itself,
//! leaving weir running, attached, orphaned.
//!
//! `cargo xtask run` builds weir in release mode: the first run of this test pays that build
//! (minutes on a cold machine). Needs root.

mod common;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail, ensure};
use common::*;
use weir_tests::lab::{Lab, wait_until};

/// The pids of processes whose command line has both `weir` and `iface` in it.
fn weir_pids_on(iface: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            args.first().is_some_and(|a| a.ends_with(b"weir")) && args.contains(&iface.as_bytes())
        })
        .collect()
}

/// Kills what a failed run left behind, so the lab can go.
struct KillLeftovers(String);

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        for pid in weir_pids_on(&self.0) {
            // SAFETY: kill(2) on a pid that runs weir on this test's interface.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn signal_cargo_xtask_run(signal: i32, name: &str) -> Result<()> {
    let lab = Lab::new()?;
    let a = lab.add_ns("a")?;
    let b = lab.add_ns("b")?;
    let (_a0, b0) = lab.veth(&a, &b)?;
    b0.track_xdp();
    let _leftovers = KillLeftovers(b0.name().to_string());
    let cfg = TempFile::new(
        "xtask-run.toml",
        "[[vip]]\naddress = \"10.76.0.2\"\nport = 80\n",
    );
    // nsenter execs cargo (no fork for a network namespace), cargo execs xtask, xtask execs
    // weir: one pid all along, the one signalled.
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{}", b.netns().context("netns")?))
        .arg("--")
        .arg(env!("CARGO"))
        .args(["xtask", "run", "--iface", b0.name(), "--config", cfg.path()])
        .args(["--", "--no-l7"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("WEIR_SKIP_SETUP", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut p = b.spawn_command(c)?;
    // The first run builds weir in release mode.
    wait_until(
        Duration::from_secs(1200),
        "cargo xtask run to attach XDP",
        || {
            if !p.is_running() {
                bail!("cargo xtask run exited before attaching");
            }
            xdp_attached(&b0)
        },
    )?;
    // SAFETY: kill(2) on the pid of the child we spawned.
    unsafe { libc::kill(p.pid() as i32, signal) };
    let exited = p.wait_timeout(Duration::from_secs(15))?;
    ensure!(
        exited.is_some(),
        "{name}: `cargo xtask run` still running 15 s after the signal"
    );
    // What the old xtask left: weir, orphaned, still attached.
    let left = weir_pids_on(b0.name());
    ensure!(
        left.is_empty(),
        "{name}: weir left running after `cargo xtask run` got the signal: pids {left:?}"
    );
    ensure!(
        !xdp_attached(&b0)?,
        "{name}: XDP still attached after `cargo xtask run` got the signal"
    );
    Ok(())
}

#[test]
fn cargo_xtask_run_leaves_nothing_behind_on_sigint_or_sigterm() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    signal_cargo_xtask_run(libc::SIGINT, "SIGINT")?;
    signal_cargo_xtask_run(libc::SIGTERM, "SIGTERM")
}
