//! The health state file is per daemon: two `weir run --iface` daemons in one network namespace
//! (one per veth) and an L7-only daemon beside them, each with its own target group, each write
//! their own file (`/run/weir/<iface>.health.json`, the L7-only one
//! `/run/weir/health-<netns inode>.json`) with only their own targets, through the checks'
//! outcomes; `weir status` names it; stopping a daemon removes its file only: the others' stay,
//! and stay their own. A second L7-only daemon in a namespace (no admin socket to stop its start)
//! finds the file kept by the first and writes none. Before, all of them wrote
//! `health-<netns inode>.json` in turn and the first to exit removed it. Needs root.

mod common;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use common::{logged::Weir, *};
use serde_json::Value;
use weir_tests::lab::{Lab, Ns, Proc, wait_until};

/// One daemon's configuration: a listener on `port` forwarding to group `group`, whose one
/// target (127.0.0.1:`target`, nothing listening: it turns unhealthy) is checked every 5 s.
fn config(port: u16, group: &str, target: u16) -> String {
    format!(
        "[xdp]\nstats_interval_seconds = 0\n\n[workers]\ncount = 1\n\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = {port}\n\
         default_action = {{ type = \"forward\", target_group = \"{group}\" }}\n\n\
         [[target_group]]\nname = \"{group}\"\n\
         target = [{{ id = \"127.0.0.1\", port = {target} }}]\n\
         health_check = {{ interval_seconds = 5, timeout_seconds = 2, \
         healthy_threshold_count = 2, unhealthy_threshold_count = 2 }}\n"
    )
}

/// The file as JSON; `None` while it is not there.
fn file_view(p: &Path) -> Result<Option<Value>> {
    match std::fs::read(p) {
        Ok(t) => Ok(Some(
            serde_json::from_slice(&t).with_context(|| format!("parsing {}", p.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// The group names of a view, each with its targets' ports.
fn groups(v: &Value) -> Vec<(String, Vec<u64>)> {
    v["target_groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            let ports = g["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["port"].as_u64())
                .collect();
            (g["name"].as_str().unwrap_or("").to_string(), ports)
        })
        .collect()
}

/// One daemon of the test and what its file must show.
struct Daemon {
    name: &'static str,
    proc: Proc,
    /// The CLI's options that pick it (`--iface IF`, `--socket PATH`).
    pick: Vec<String>,
    file: PathBuf,
    group: &'static str,
    target: u16,
}

impl Daemon {
    /// Its file is there and shows its group alone, written by it.
    fn file_is_its_own(&self) -> Result<()> {
        let v = file_view(&self.file)?
            .with_context(|| format!("{}'s {} is missing", self.name, self.file.display()))?;
        ensure!(
            groups(&v) == vec![(self.group.to_string(), vec![u64::from(self.target)])],
            "{} shows {:?}, not {}'s group {} alone: {v}",
            self.file.display(),
            groups(&v),
            self.name,
            self.group
        );
        ensure!(
            v["writer"]["pid"] == self.proc.pid(),
            "{} written by pid {}, not {}'s daemon (pid {})",
            self.file.display(),
            v["writer"]["pid"],
            self.name,
            self.proc.pid()
        );
        Ok(())
    }

    /// `weir ARGS` for this daemon in `ns`: (success, stdout, stderr).
    fn cli(&self, ns: &Ns, args: &[&str]) -> Result<(bool, String, String)> {
        let mut a = args.to_vec();
        a.extend(self.pick.iter().map(String::as_str));
        weir_once(ns, &a)
    }

    /// `weir targets health --json` (the live daemon's view, over its socket) shows its group.
    fn api_shows_its_group(&self, ns: &Ns) -> Result<bool> {
        let (ok, out, _) = self.cli(ns, &["targets", "health", "--json"])?;
        Ok(ok && serde_json::from_str::<Value>(&out).is_ok_and(|v| groups(&v).len() == 1))
    }

    /// Its target turned unhealthy in its file (nothing listens on the port).
    fn unhealthy(&self) -> Result<bool> {
        let v = file_view(&self.file)?.context("file")?;
        Ok(v["target_groups"][0]["targets"][0]["state"] == "unhealthy")
    }

    /// SIGINT, a clean exit, and its file gone.
    fn stop(&mut self) -> Result<()> {
        ensure!(
            interrupt(&mut self.proc)?,
            "{} did not exit cleanly",
            self.name
        );
        ensure!(
            !self.file.exists(),
            "{}'s {} left after a clean exit",
            self.name,
            self.file.display()
        );
        Ok(())
    }
}

/// Each of `ds` keeps its own file for `d`, sampled every 100 ms; the number of samples.
fn own_files_for(ds: &[&Daemon], d: Duration) -> Result<usize> {
    let (t0, mut n) = (Instant::now(), 0);
    while t0.elapsed() < d {
        for x in ds {
            x.file_is_its_own()?;
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(n)
}

#[test]
fn daemons_in_one_namespace_keep_their_own_health_files() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let client = lab.add_ns("hfc")?;
    let lb = lab.add_ns("hflb")?;
    let (c0, w0) = lab.veth(&client, &lb)?;
    let (c1, w1) = lab.veth(&client, &lb)?;
    c0.addr("10.95.0.2/24")?;
    w0.addr("10.95.0.1/24")?;
    c1.addr("10.95.1.2/24")?;
    w1.addr("10.95.1.1/24")?;
    let inode = netns_inode(&lb)?;

    let cfg_a = TempFile::new("hf-a.toml", &config(8181, "alpha", 9681));
    let cfg_b = TempFile::new("hf-b.toml", &config(8182, "beta", 9682));
    let cfg_c = TempFile::new("hf-c.toml", &config(8183, "gamma", 9683));
    let mut ifaces = Vec::new();
    for (name, iface, cfg, group, target) in [
        ("A", &w0, &cfg_a, "alpha", 9681),
        ("B", &w1, &cfg_b, "beta", 9682),
    ] {
        let proc = start_weir(&lb, iface, &["--config", cfg.path()])?;
        iface.track_xdp();
        ifaces.push(Daemon {
            name,
            proc,
            pick: vec!["--iface".into(), iface.name().into()],
            file: iface_file(&lb, iface.name(), ".health.json")?,
            group,
            target,
        });
    }
    let mut b = ifaces.pop().context("B")?;
    let mut a = ifaces.pop().context("A")?;
    // The L7-only daemon of the namespace beside them: its socket `admin-<inode>.sock`.
    let mut c = {
        let mut w = Weir::spawn(&lb, &cfg_c, None)?;
        w.wait_workers(1)?;
        Daemon {
            name: "C (L7 only)",
            proc: w.proc,
            pick: vec!["--socket".into(), format!("/run/weir/admin-{inode}.sock")],
            file: health_state_file(&lb)?,
            group: "gamma",
            target: 9683,
        }
    };
    ensure!(c.file == PathBuf::from(format!("/run/weir/health-{inode}.json")));

    // The checkers run (their views are in the API), and a flush (once a second) has passed.
    wait_until(Duration::from_secs(30), "the daemons' health views", || {
        Ok(a.api_shows_its_group(&lb)?
            && b.api_shows_its_group(&lb)?
            && c.api_shows_its_group(&lb)?)
    })?;
    std::thread::sleep(Duration::from_millis(1500));
    // (And every file written: a loaded machine can take longer than 1.5 s for the first.)
    wait_until(Duration::from_secs(10), "the daemons' state files", || {
        for d in [&a, &b, &c] {
            if file_view(&d.file)?.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    for d in [&a, &b, &c] {
        d.file_is_its_own()?;
    }

    // `weir status` says where each file is.
    for d in [&a, &b, &c] {
        let (ok, out, err) = d.cli(&lb, &["status", "--json"])?;
        ensure!(ok, "weir status: {err}");
        let st: Value = serde_json::from_str(&out)?;
        ensure!(
            st["health_file"] == d.file.to_str().unwrap(),
            "status of {}: {st}",
            d.name
        );
        let (ok, out, err) = d.cli(&lb, &["status"])?;
        ensure!(
            ok && out.contains(&format!("health file:  {}\n", d.file.display())),
            "{out}{err}"
        );
    }

    // Each file shows its own daemon's view through the flushes of the checks' outcomes (the
    // targets turn unhealthy within two intervals and a phase, < 15 s): sampled every 100 ms
    // until all are unhealthy, for 6 s at least.
    let t0 = Instant::now();
    let mut samples = 0;
    loop {
        for d in [&a, &b, &c] {
            d.file_is_its_own()?;
        }
        samples += 1;
        let done = a.unhealthy()? && b.unhealthy()? && c.unhealthy()?;
        if done && t0.elapsed() > Duration::from_secs(6) {
            break;
        }
        ensure!(
            t0.elapsed() < Duration::from_secs(25),
            "the files did not follow the checks: {:?} {:?} {:?}",
            file_view(&a.file)?,
            file_view(&b.file)?,
            file_view(&c.file)?
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "{samples} samples of the three files in {:.1} s, through the targets turning unhealthy: each its own daemon's view",
        t0.elapsed().as_secs_f64()
    );

    // Stopping a daemon removes its file only; the others' stay theirs (2.5 s: two flushes).
    a.stop()?;
    let n = own_files_for(&[&b, &c], Duration::from_millis(2500))?;
    c.stop()?;
    let m = own_files_for(&[&b], Duration::from_millis(2500))?;
    b.stop()?;
    eprintln!(
        "after A stopped, B's and C's files theirs in {n} samples; after C stopped, B's in {m}"
    );
    Ok(())
}

/// Two L7-only daemons in one namespace (the second without an admin socket, so nothing stops
/// its start) would share `health-<netns inode>.json`: the second finds it kept by the first,
/// running, and writes none; its own checks' changes leave the first's file alone, and its exit
/// does not remove it.
#[test]
fn a_second_l7_only_daemon_leaves_the_first_ones_file_alone() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("hf2")?;
    let cfg_c = TempFile::new("hf2-c.toml", &config(8183, "gamma", 9683));
    let cfg_d = TempFile::new(
        "hf2-d.toml",
        &format!(
            "[admin]\nenabled = false\n\n{}",
            config(8184, "delta", 9684)
        ),
    );
    let mut c = {
        let mut w = Weir::spawn(&ns, &cfg_c, None)?;
        w.wait_workers(1)?;
        Daemon {
            name: "C",
            proc: w.proc,
            pick: vec![],
            file: health_state_file(&ns)?,
            group: "gamma",
            target: 9683,
        }
    };
    wait_until(Duration::from_secs(10), "C's file", || {
        Ok(c.file_is_its_own().is_ok())
    })?;
    let mut d = Weir::spawn(&ns, &cfg_d, None)?;
    d.wait_workers(1)?;
    // D's target turns unhealthy (a change it would flush): C's file stays C's meanwhile.
    let t0 = Instant::now();
    let mut samples = 0;
    while !d
        .log()
        .lines()
        .any(|l| l.contains("target health") && l.contains("to=unhealthy"))
    {
        c.file_is_its_own()?;
        samples += 1;
        ensure!(
            t0.elapsed() < Duration::from_secs(25),
            "D's target did not turn unhealthy:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    samples += own_files_for(&[&c], Duration::from_millis(1500))?;
    ensure!(
        d.log()
            .contains("the health state file is another running weir's: this daemon writes none"),
        "D did not say it writes no file:\n{}",
        d.log()
    );
    ensure!(interrupt(&mut d.proc)?, "D did not exit cleanly");
    samples += own_files_for(&[&c], Duration::from_millis(1500))?;
    eprintln!(
        "C's file stayed C's in {samples} samples over {:.1} s, through D's target turning unhealthy and D's exit",
        t0.elapsed().as_secs_f64()
    );
    c.stop()
}
