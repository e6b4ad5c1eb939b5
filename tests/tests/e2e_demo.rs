//! `cargo xtask demo --quick` (the README's five-minute tour) runs to completion with the weir
//! this test run built, shows `weir top --once` at each step, and leaves nothing behind: no
//! namespace, veth, XDP program, pin, admin socket or process of its lab. Needs root (and
//! hping3 for the flood step, which the demo skips without it).

mod common;

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use common::weir_bin;
use weir_tests::lab::Lab;

/// One demo at a time (each floods its lab).
static ONE: Mutex<()> = Mutex::new(());

/// `cargo xtask demo --quick --weir <this run's weir>`.
fn demo() -> Command {
    let mut c = Command::new(env!("CARGO"));
    c.args(["xtask", "demo", "--quick", "--weir"])
        .arg(weir_bin())
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        // The suite's machine is set up already; xtask then only builds itself with `lab`.
        .env("WEIR_SKIP_SETUP", "1");
    c
}

fn text(c: &mut Command) -> Result<String> {
    let out = weir_tests::lab::output(c, Duration::from_secs(30))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Nothing of lab `id` is left: namespaces, links, pins, socket, lock, files, processes.
fn nothing_left(id: &str) -> Result<()> {
    ensure!(id.starts_with("wt"), "lab id {id:?}");
    let netns = text(Command::new("ip").args(["netns", "list"]))?;
    ensure!(!netns.contains(id), "namespaces left: {netns}");
    let links = text(Command::new("ip").args(["-d", "-o", "link", "show"]))?;
    ensure!(!links.contains(id), "links left: {links}");
    let demo = std::path::PathBuf::from(format!("/tmp/weir-demo-{id}"));
    ensure!(!demo.exists(), "{} left behind", demo.display());
    // The daemon's pins, socket, lock, note, named `<iface>:<netns inode>…`.
    for dir in ["/sys/fs/bpf/weir", "/run/weir"] {
        let left: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("{id}v0b")))
            .collect();
        ensure!(left.is_empty(), "left behind in {dir}: {left:?}");
    }
    let procs = text(Command::new("pgrep").args(["-af", id]))?;
    ensure!(procs.trim().is_empty(), "processes left: {procs}");
    // No XDP program of the demo anywhere (its interfaces went with their namespaces; the root
    // namespace has none of its).
    if let Ok(net) = text(Command::new("bpftool").args(["net", "show"])) {
        ensure!(!net.contains(id), "bpftool net: {net}");
    }
    Ok(())
}

fn lab_id(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("lab ")?.split(':').next())
        .map(str::to_string)
}

#[test]
fn the_demo_runs_to_completion_and_leaves_nothing_behind() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = demo();
    let t0 = Instant::now();
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
        stdout.contains(":8080 HTTP 0.0.0.0") && stdout.contains("web 10.91.0.11:8000"),
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
    nothing_left(&lab_id(&stdout).context("the lab's id")?)?;
    Ok(())
}

/// Ctrl-C in the middle (SIGINT to the pid `cargo xtask demo` started as: cargo and xtask exec,
/// so it is the demo's): the demo stops weir, removes its lab, and fails with the reason.
#[test]
fn an_interrupted_demo_leaves_nothing_behind() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = demo();
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn()?;
    let out = child.stdout.take().context("stdout")?;
    let err = child.stderr.take().context("stderr")?;
    let errors = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    // Read until weir runs (the lab is up, XDP attached), then interrupt.
    let mut lines = BufReader::new(out).lines();
    let mut seen = String::new();
    let t0 = Instant::now();
    loop {
        let Some(line) = lines.next().transpose()? else {
            bail!("the demo ended before weir ran:\n{seen}");
        };
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("weir pid ") {
            break;
        }
        ensure!(
            t0.elapsed() < Duration::from_secs(900),
            "no weir after 900 s"
        );
    }
    let id = lab_id(&seen).context("the lab's id")?;
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait()?;
    let errors = errors.join().unwrap_or_default();
    eprintln!("{seen}{}\n{errors}", rest.join("\n"));
    ensure!(!status.success(), "an interrupted demo exits non-zero");
    ensure!(
        errors.contains("interrupted (SIGINT or SIGTERM)"),
        "the reason: {errors}"
    );
    ensure!(
        rest.iter().any(|l| l.starts_with("weir exited ")),
        "weir was stopped by the teardown"
    );
    nothing_left(&id)
}
