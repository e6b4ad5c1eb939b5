//! `dist/weir.service`: `systemd-analyze verify` accepts it, and weir does its whole job with
//! exactly the capabilities the unit leaves it (`CapabilityBoundingSet`), not full root: XDP
//! attached with SYN cookies on, Maglev steering, workers in their sandbox serving a request.
//! Run under `setpriv` with that bounding set, as systemd would (this machine runs no systemd).
//! Needs root, systemd-analyze and setpriv (skipped without the tools, outside CI).

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail, ensure};
use common::*;
use weir_tests::lab::{Iface, Lab, Ns, wait_until};

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/weir.service")
}

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("CI").is_some() {
        panic!("{tool} is missing under CI");
    }
    found
}

/// The unit's `KEY=` value.
fn unit_value(unit: &str, key: &str) -> Result<String> {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .with_context(|| format!("no {key}= in the unit"))
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() -> Result<()> {
    if !Lab::root_required() || !have("systemd-analyze") {
        return Ok(());
    }
    // verify checks that the executables exist: point the unit at the built binary.
    let unit = std::fs::read_to_string(unit_path())?;
    let local = unit.replace("/usr/local/bin/weir", weir_bin().to_str().context("utf-8")?);
    let dir = std::env::temp_dir().join(format!("weir-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("weir.service");
    std::fs::write(&path, local)?;
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()?;
    let _ = std::fs::remove_dir_all(&dir);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    // verify also loads the units ours names (network-online.target, …) and, on a machine
    // where systemd is not PID 1 (a container, a CI runner), says so about the host: only
    // what it says of our file counts.
    let ours: Vec<&str> = said.lines().filter(|l| l.contains("weir")).collect();
    if !said.trim().is_empty() {
        eprintln!("systemd-analyze verify said:\n{said}");
    }
    if !out.status.success() && ours.is_empty() {
        eprintln!("systemd-analyze verify failed on the host, not on the unit: not judged");
    }
    ensure!(
        ours.is_empty(),
        "systemd-analyze verify: {}\n{}",
        out.status,
        ours.join("\n")
    );
    Ok(())
}

/// setpriv's `--bounding-set` for the unit's `CapabilityBoundingSet`, without `drop`.
fn bounding_set(drop: &[&str]) -> Result<String> {
    let unit = std::fs::read_to_string(unit_path())?;
    let caps = unit_value(&unit, "CapabilityBoundingSet")?;
    // setpriv's syntax: -all,+bpf,+net_admin,…
    Ok(std::iter::once("-all".to_string())
        .chain(
            caps.split_whitespace()
                .filter(|c| !drop.contains(c))
                .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase())),
        )
        .collect::<Vec<_>>()
        .join(","))
}

/// `weir run --iface IF` in `lb`'s namespace under `bounding`, as systemd would start it.
fn weir_under(bounding: &str, lb: &Ns, iface: &Iface, cfg: &TempFile) -> Result<Command> {
    let mut c = Command::new("setpriv");
    c.arg(format!("--bounding-set={bounding}"))
        .arg("--inh-caps=-all")
        .arg("--")
        .arg("nsenter")
        .arg(format!("--net=/run/netns/{}", lb.netns().context("netns")?))
        .arg("--")
        .arg(weir_bin())
        .args(["run", "--iface", iface.name(), "--config", cfg.path()]);
    Ok(c)
}

struct Rig {
    _lab: Lab,
    client: Ns,
    lb: Ns,
    l0: Iface,
    cfg: TempFile,
}

fn rig() -> Result<Rig> {
    let lab = Lab::new()?;
    let client = lab.add_ns("client")?;
    let lb = lab.add_ns("lb")?;
    let (c0, l0) = lab.veth(&client, &lb)?;
    c0.addr("10.75.0.1/24")?;
    l0.addr("10.75.0.2/24")?;
    // The peer of weir's veth needs an XDP program to receive XDP_TX frames (SYN-ACKs).
    c0.attach_xdp_pass(weir_tests::lab::XdpMode::Native)?;
    l0.track_xdp();
    let cfg = TempFile::new(
        "unit-caps.toml",
        "[[vip]]\naddress = \"10.75.0.2\"\nport = 80\n\n[syn]\nmode = \"always\"\n\n\
         [workers]\ncount = 2\n\n[[listener]]\nport = 80\n\
         default_action = { type = \"fixed-response\", status_code = 200, message_body = \"capped\" }\n",
    );
    Ok(Rig {
        _lab: lab,
        client,
        lb,
        l0,
        cfg,
    })
}

#[test]
fn weir_runs_with_only_the_units_capabilities() -> Result<()> {
    if !Lab::root_required() || !have("setpriv") {
        return Ok(());
    }
    let Rig {
        client,
        lb,
        l0,
        cfg,
        ..
    } = &rig()?;
    let mut weir = lb.spawn_command(weir_under(&bounding_set(&[])?, lb, l0, cfg)?)?;
    wait_until(Duration::from_secs(20), "weir to attach and listen", || {
        if !weir.is_running() {
            bail!("weir exited under the unit's capabilities (see its stderr above)");
        }
        Ok(xdp_attached(l0)? && lb.tcp_listening(80)?)
    })?;
    let mut body = String::new();
    wait_until(Duration::from_secs(10), "a request through weir", || {
        let out = client.exec(&["curl", "-s", "--max-time", "2", "http://10.75.0.2/"]);
        body = out.unwrap_or_default();
        Ok(body == "capped")
    })?;
    let stats = stats(lb, l0)?;
    ensure!(
        packets(&stats, "tx_syn_cookie") >= 1,
        "the SYN was not answered from XDP under the unit's capabilities: {stats}"
    );
    // Both workers run as `weir` by now: stopping them needs CAP_KILL (without it, found by this
    // test, SIGINT left the sandboxed workers running and weir waiting).
    ensure!(interrupt(&mut weir)?, "weir did not exit cleanly");
    ensure!(
        !lb.tcp_listening(80)?,
        "a worker still listens after weir exited"
    );
    Ok(())
}

/// Without CAP_KILL or CAP_SETPCAP weir would start workers it cannot stop or sandbox: it refuses
/// to start, names the capability, and leaves nothing behind.
#[test]
fn weir_refuses_to_start_without_kill_or_setpcap() -> Result<()> {
    if !Lab::root_required() || !have("setpriv") {
        return Ok(());
    }
    for missing in ["CAP_KILL", "CAP_SETPCAP"] {
        let Rig { lb, l0, cfg, .. } = &rig()?;
        let log = TempFile::new("unit-caps.stderr", "");
        let mut c = weir_under(&bounding_set(&[missing])?, lb, l0, cfg)?;
        c.stderr(std::fs::File::create(log.path())?);
        let mut weir = lb.spawn_command(c)?;
        let exited = weir.wait_timeout(Duration::from_secs(20))?;
        ensure!(exited.is_some(), "weir without {missing} kept running");
        let said = std::fs::read_to_string(log.path())?;
        ensure!(
            said.contains(missing) && said.contains("CapabilityBoundingSet"),
            "weir without {missing} did not say so:\n{said}"
        );
        ensure!(!xdp_attached(l0)?, "XDP left attached without {missing}");
        ensure!(!lb.tcp_listening(80)?, "a worker listens without {missing}");
    }
    Ok(())
}
