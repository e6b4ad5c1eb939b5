//! Two `weir run --iface` daemons, each in its own network namespace, on interfaces of the same
//! name (`eth0` of two containers). weir named a daemon's lock, note, admin socket, health file
//! and pins by the interface's name alone (`/run/weir/eth0.lock`, `/sys/fs/bpf/weir/eth0`): the
//! second daemon was refused ("admin socket /run/weir/<if>.sock: another process answers on it";
//! with `[admin] enabled = false`, "another weir is already running on `<if>`"), and `weir stats`
//! and `weir status` run in a namespace without a daemon reported the other namespace's. Now
//! the files are named by the interface and its namespace: both run, each CLI finds its own,
//! and a second daemon on the same interface of the same namespace is still refused, as is a
//! start beside a weir of an earlier version on its interface (its lock named the old way).
//!
//! Real binary (`WEIR_TEST_BIN` runs another build, e.g. the one before the fix), XDP on veths
//! in network namespaces. Needs root.

mod common;

use std::{process::Stdio, time::Duration};

use anyhow::{Context, Result, bail};
use common::*;
use serde_json::Value;
use weir_tests::lab::{Iface, Lab, Ns, Proc, wait_until};

const VIP_A: &str = "10.93.0.2";
const VIP_B: &str = "10.94.0.2";

struct Two {
    lab: Lab,
    a: Ns,
    b: Ns,
    ia: Iface,
    ib: Iface,
}

/// Namespaces `a` and `b`, each with an interface named `<lab id>vs` (its peer in a third).
fn setup() -> Result<Two> {
    let lab = Lab::new()?;
    let (a, b, peers) = (lab.add_ns("sa")?, lab.add_ns("sb")?, lab.add_ns("sp")?);
    let name = format!("{}vs", lab.id());
    let (ia, _) = lab.veth_named(&a, &name, &peers, &format!("{}vpa", lab.id()))?;
    let (ib, _) = lab.veth_named(&b, &name, &peers, &format!("{}vpb", lab.id()))?;
    ia.addr(&format!("{VIP_A}/24"))?;
    ib.addr(&format!("{VIP_B}/24"))?;
    Ok(Two { lab, a, b, ia, ib })
}

fn config(vip: &str, admin: bool) -> TempFile {
    TempFile::new(
        "same-name.toml",
        &format!("[admin]\nenabled = {admin}\n\n[[vip]]\naddress = \"{vip}\"\nport = 8080\n"),
    )
}

/// `weir run --iface IF --no-l7` in `ns`, returned once XDP is attached; its stderr, should it
/// exit first, in the error.
fn start(ns: &Ns, iface: &Iface, cfg: &TempFile) -> Result<Proc> {
    let log = TempFile::new("same-name.log", "");
    let mut c = weir_test_command(ns);
    c.args(["run", "--iface", iface.name(), "--config", cfg.path()])
        .arg("--no-l7")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log.0)?);
    let mut p = ns.spawn_command(c)?;
    let attached = wait_until(Duration::from_secs(20), "weir to attach XDP", || {
        if !p.is_running() {
            bail!("weir exited before attaching");
        }
        xdp_attached(iface)
    });
    match attached {
        Ok(()) => Ok(p),
        Err(e) => Err(e.context(std::fs::read_to_string(&log.0).unwrap_or_default())),
    }
}

/// `weir ARGS` in `ns` (nsenter --net: the host's /sys) to completion: (ok, stdout, stderr).
fn cli(ns: &Ns, args: &[&str]) -> Result<(bool, String, String)> {
    command_once(weir_test_command(ns), args)
}

/// `weir stats --json` in `ns` (`EXTRA` after it), parsed.
fn stats_json(ns: &Ns, extra: &[&str]) -> Result<Value> {
    let mut args = vec!["stats", "--json", "--interval", "0"];
    args.extend_from_slice(extra);
    let (ok, out, err) = cli(ns, &args)?;
    anyhow::ensure!(ok, "weir stats {extra:?}: {err}");
    serde_json::from_str(&out).with_context(|| out.clone())
}

/// Each namespace's `weir stats` (with and without `--iface`) and `weir status` show its own
/// daemon: its VIP, its pid.
fn each_finds_its_own(t: &Two, pa: u32, pb: u32) -> Result<()> {
    let name = t.ia.name();
    for (ns, vip, pid) in [(&t.a, VIP_A, pa), (&t.b, VIP_B, pb)] {
        for extra in [&[][..], &["--iface", name][..]] {
            let st = stats_json(ns, extra)?;
            assert_eq!(st["interface"], name, "{}: {st}", ns.short());
            assert_eq!(
                st["vips"][0]["address"],
                vip,
                "{} {extra:?}: {st}",
                ns.short()
            );
            assert_eq!(st["host"]["xdp_attached"], true, "{}: {st}", ns.short());
        }
        let (ok, out, err) = cli(ns, &["status", "--json"])?;
        assert!(ok, "{}: weir status: {err}", ns.short());
        let status: Value = serde_json::from_str(&out)?;
        assert_eq!(status["pid"], pid, "{}: {status}", ns.short());
        // `ip netns exec` (a /sys of its own, no pins): the daemon of this namespace is named.
        let (ok, _, err) =
            command_once(ns.command(weir_test_bin()), &["stats", "--interval", "0"])?;
        assert!(
            !ok && err.contains(&format!("runs (pid {pid}")),
            "{}: {err}",
            ns.short()
        );
    }
    Ok(())
}

#[test]
fn daemons_on_same_named_interfaces_of_two_namespaces_both_run() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let t = setup()?;
    let (cfg_a, cfg_b) = (config(VIP_A, true), config(VIP_B, true));
    let mut da = start(&t.a, &t.ia, &cfg_a)?;
    let mut db = start(&t.b, &t.ib, &cfg_b).context("the second namespace's daemon")?;
    each_finds_its_own(&t, da.pid(), db.pid())?;

    // A second daemon on the same interface of the same namespace is refused: by the admin
    // socket its first answers on, and without one by the interface's lock.
    let refused = |cfg: &TempFile| -> Result<String> {
        let args = [
            "run",
            "--iface",
            t.ia.name(),
            "--config",
            cfg.path(),
            "--no-l7",
        ];
        let (ok, _, err) = cli(&t.a, &args)?;
        assert!(!ok, "a second daemon on {} started", t.ia.name());
        Ok(err)
    };
    let err = refused(&config(VIP_A, true))?;
    assert!(err.contains("already running"), "{err}");
    let err = refused(&config(VIP_A, false))?;
    assert!(
        err.contains(&format!(
            "another weir is already running on `{}`",
            t.ia.name()
        )),
        "{err}"
    );
    assert!(xdp_attached(&t.ia)? && xdp_attached(&t.ib)?);
    each_finds_its_own(&t, da.pid(), db.pid())?;

    assert!(interrupt(&mut db)?, "b's daemon exits 0");
    // a's daemon, its files and pins, were not b's.
    let st = stats_json(&t.a, &[])?;
    assert_eq!(st["vips"][0]["address"], VIP_A, "{st}");
    assert!(interrupt(&mut da)?, "a's daemon exits 0");
    for ns in [&t.a, &t.b] {
        let lock = iface_file(ns, t.ia.name(), ".lock")?;
        assert!(!lock.exists(), "{} left", lock.display());
        assert!(!pin_dir(ns, t.ia.name())?.exists());
    }
    drop(t.lab);
    Ok(())
}

/// A weir of an earlier version holds `/run/weir/<if>.lock` (the interface's name alone): a
/// start on that interface of its namespace is refused, naming it; the same name in another
/// namespace is another interface, and its daemon runs.
#[test]
fn an_earlier_versions_lock_refuses_a_start_in_its_namespace_only() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let t = setup()?;
    let legacy = format!("/run/weir/{}.lock", t.ia.name());
    std::fs::create_dir_all("/run/weir")?;
    // The earlier daemon's lock, as it held it (`flock`), by a process of namespace a.
    let mut holder = t.a.spawn(&["flock", &legacy, "sleep", "60"])?;
    wait_until(Duration::from_secs(5), "the earlier weir's lock", || {
        anyhow::ensure!(holder.is_running(), "flock exited");
        let free = std::process::Command::new("flock")
            .args(["-n", &legacy, "true"])
            .status()?
            .success();
        Ok(!free)
    })?;
    let (cfg_a, cfg_b) = (config(VIP_A, true), config(VIP_B, true));
    let args = [
        "run",
        "--iface",
        t.ia.name(),
        "--config",
        cfg_a.path(),
        "--no-l7",
    ];
    let (ok, _, err) = cli(&t.a, &args)?;
    assert!(!ok, "a start beside the earlier weir");
    assert!(
        err.contains(&format!(
            "a weir of an earlier version is running on `{}` (pid {}",
            t.ia.name(),
            holder.pid()
        )),
        "{err}"
    );
    assert!(!xdp_attached(&t.ia)?);
    let lock = iface_file(&t.a, t.ia.name(), ".lock")?;
    assert!(!lock.exists(), "the refused start left {}", lock.display());
    // `weir stats` there names it too, rather than "no weir daemon".
    let (ok, _, err) = cli(&t.a, &["stats", "--interval", "0", "--iface", t.ia.name()])?;
    assert!(!ok && err.contains("earlier version"), "{err}");

    let mut db = start(&t.b, &t.ib, &cfg_b).context("a daemon in the other namespace")?;
    let st = stats_json(&t.b, &[])?;
    assert_eq!(st["vips"][0]["address"], VIP_B, "{st}");
    assert!(interrupt(&mut db)?);
    holder.kill()?;
    let _ = std::fs::remove_file(&legacy);
    Ok(())
}

/// A VLAN's interface is named `<parent>.<vid>` (`eth0.100`), and bpffs refuses a `.` in any
/// name: weir could not make its pin directory there (`mkdir /sys/fs/bpf/weir/eth0.100…`:
/// EPERM) and exited before attaching. The name is escaped in its files' stem now.
#[test]
fn a_daemon_runs_on_an_interface_whose_name_has_a_dot() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let (a, peers) = (lab.add_ns("sa")?, lab.add_ns("sp")?);
    let name = format!("{}v.7", lab.id());
    let (ia, _) = lab.veth_named(&a, &name, &peers, &format!("{}vp7", lab.id()))?;
    ia.addr(&format!("{VIP_A}/24"))?;
    let mut d = start(&a, &ia, &config(VIP_A, true)).context("weir on a dotted interface")?;
    let st = stats_json(&a, &[])?;
    assert_eq!(st["interface"], name.as_str(), "{st}");
    assert_eq!(st["vips"][0]["address"], VIP_A, "{st}");
    let (ok, out, err) = cli(&a, &["status", "--json"])?;
    assert!(ok, "weir status: {err}");
    let status: Value = serde_json::from_str(&out)?;
    assert_eq!(status["pid"], d.pid(), "{status}");
    let pins = pin_dir(&a, &name)?;
    assert!(pins.exists(), "{} missing", pins.display());
    assert!(interrupt(&mut d)?, "the daemon exits 0");
    assert!(!pins.exists(), "{} left", pins.display());
    assert!(!iface_file(&a, &name, ".lock")?.exists());
    drop(lab);
    Ok(())
}
