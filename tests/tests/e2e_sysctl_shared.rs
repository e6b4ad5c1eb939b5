//! Two weir daemons in one network namespace hold its host sysctls jointly (issue #10 §3):
//! `weir run --iface A` and `weir run --iface B` (one per veth, SYN cookies in auto mode, a
//! worker each) both need `net.ipv4.tcp_timestamps`, `tcp_syncookies` and `tcp_migrate_req`
//! changed. The first to exit leaves them as weir set them (the other still needs them), and the
//! last one's exit puts back the originals:
//!
//! 1. A stops, then B stops: weir's values while B runs, the originals after.
//! 2. A is SIGKILLed, then B stops: weir's values while B runs, the originals after.
//! 3. Both are SIGKILLed: the next `weir run` in the namespace (one that changes nothing) puts
//!    back the originals.
//!
//! Before, the second daemon recorded nothing (it found the values already changed, and the
//! record's lock held): the first's exit put the originals back under it (1), and after the
//! first's SIGKILL nothing ever restored them (2). Needs root.
//!
//! `WEIR_TEST_BIN=/path/to/weir` runs another build (e.g. the one before a fix).

mod common;

use std::{process::Stdio, time::Duration};

use anyhow::{Context as _, Result, bail, ensure};
use common::{sysctl::*, *};
use weir_tests::lab::{Iface, Lab, Ns, Proc, wait_until};

/// One daemon's file: a VIP and a listener on `vip`:`port`, one worker.
fn config(vip: &str, port: u16) -> String {
    format!(
        "[xdp]\nstats_interval_seconds = 0\n\n\
         [[vip]]\naddress = \"{vip}\"\nport = {port}\n\n[workers]\ncount = 1\n\n\
         [load_balancer]\nmax_connections_per_worker = 1000\n\n\
         [[listener]]\naddress = \"{vip}\"\nport = {port}\nprotocol = \"HTTP\"\n\
         default_action = {{ type = \"fixed-response\", status_code = 200 }}\n"
    )
}

/// The namespace's weir files in /run/weir (record, mutex, holder files).
fn sysctl_files(inode: u64) -> Vec<String> {
    let prefix = format!("sysctl-{inode}");
    let mut v: Vec<String> = std::fs::read_dir("/run/weir")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    v.sort();
    v
}

/// The lab: a server namespace with two veths to a client namespace, each with a VIP.
struct World {
    _lab: Lab,
    server: Ns,
    ifaces: [Iface; 2],
    cfgs: [TempFile; 2],
    inode: u64,
}

impl World {
    fn new() -> Result<World> {
        let lab = Lab::new()?;
        let client = lab.add_ns("shc")?;
        let server = lab.add_ns("shs")?;
        let (_c0, s0) = lab.veth(&client, &server)?;
        let (_c1, s1) = lab.veth(&client, &server)?;
        s0.addr("10.79.0.2/24")?;
        s1.addr("10.79.1.2/24")?;
        s0.track_xdp();
        s1.track_xdp();
        set_original(&server)?;
        let cfgs = [
            TempFile::new("sysctl-shared-a.toml", &config("10.79.0.2", 8080)),
            TempFile::new("sysctl-shared-b.toml", &config("10.79.1.2", 8081)),
        ];
        let inode = netns_inode(&server)?;
        Ok(World {
            _lab: lab,
            server,
            ifaces: [s0, s1],
            cfgs,
            inode,
        })
    }

    fn values(&self) -> Result<Vec<String>> {
        values(&self.server)
    }

    /// Daemon `i` (0: A, 1: B) on its veth, once it has asked for all three sysctls (the
    /// values may be weir's already, set by the other daemon): XDP attached (the SYN cookies'
    /// two are set before) and its worker ready (`tcp_migrate_req` is set before workers
    /// start).
    fn start(&self, i: usize) -> Result<Proc> {
        let iface = &self.ifaces[i];
        let mut c = weir_test_command(&self.server);
        c.args([
            "run",
            "--iface",
            iface.name(),
            "--config",
            self.cfgs[i].path(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut p = self.server.spawn_command(c)?;
        let (log, end) = logged::collect_to_eof(p.child_mut().stderr.take().context("stderr")?);
        let ready = || {
            log.lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("worker ready"))
        };
        wait_until(
            Duration::from_secs(30),
            "weir to attach XDP and start its worker",
            || {
                if !p.is_running() {
                    bail!("weir exited:\n{}", logged::to_eof(&log, &end));
                }
                Ok(xdp_attached(iface)? && ready())
            },
        )?;
        ensure!(
            self.values()? == CHANGED,
            "weir's values: {:?}",
            self.values()?
        );
        Ok(p)
    }

    /// Both daemons, A then B.
    fn start_both(&self) -> Result<(Proc, Proc)> {
        let a = self.start(0)?;
        let b = self.start(1)?;
        Ok((a, b))
    }

    fn kill(&self, p: &mut Proc, name: &str) -> Result<()> {
        p.kill()?;
        std::thread::sleep(Duration::from_millis(300));
        ensure!(
            self.values()? == CHANGED,
            "a SIGKILL of {name} runs no cleanup: {:?}",
            self.values()?
        );
        Ok(())
    }

    /// The originals are back and no file of the namespace's sysctls is left.
    fn all_restored(&self, after: &str) -> Result<()> {
        ensure!(
            self.values()? == ORIGINAL,
            "the originals after {after}: {:?}",
            self.values()?
        );
        ensure!(
            sysctl_files(self.inode).is_empty(),
            "left after {after}: {:?}",
            sysctl_files(self.inode)
        );
        Ok(())
    }
}

#[test]
fn two_daemons_in_one_namespace_hold_the_host_sysctls_jointly() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let w = World::new()?;

    // 1. A stops cleanly under B: B's needs stay; B's clean exit restores.
    let (mut a, mut b) = w.start_both()?;
    ensure!(interrupt(&mut a)?, "A did not exit cleanly");
    ensure!(
        w.values()? == CHANGED,
        "A's exit must leave B's needs: found {:?} (the originals are {ORIGINAL:?})",
        w.values()?
    );
    // B still runs on them for a while.
    std::thread::sleep(Duration::from_millis(500));
    ensure!(b.is_running() && w.values()? == CHANGED);
    ensure!(interrupt(&mut b)?, "B did not exit cleanly");
    w.all_restored("the last daemon's clean exit")?;
    eprintln!("1. A stopped: {CHANGED:?} kept for B; B stopped: {ORIGINAL:?}");

    // 2. A is SIGKILLed under B: B's needs stay; B's clean exit restores (A's record too).
    let (mut a, mut b) = w.start_both()?;
    w.kill(&mut a, "A")?;
    std::thread::sleep(Duration::from_millis(500));
    ensure!(b.is_running() && w.values()? == CHANGED);
    ensure!(interrupt(&mut b)?, "B did not exit cleanly");
    w.all_restored("the survivor's clean exit")?;
    eprintln!("2. A killed: {CHANGED:?} kept for B; B stopped: {ORIGINAL:?}");

    // 3. Both SIGKILLed: the next start (no interface, no workers: it changes nothing)
    //    restores.
    let (mut a, mut b) = w.start_both()?;
    w.kill(&mut b, "B")?;
    w.kill(&mut a, "A")?;
    let mut quiet = start(&w.server, &["--no-l7", "--config", w.cfgs[0].path()])?;
    wait_values(
        &w.server,
        ORIGINAL,
        "the next start to restore the originals",
    )?;
    // The restore comes first in its start: give it time to install its signal handlers.
    std::thread::sleep(Duration::from_secs(1));
    ensure!(
        interrupt(&mut quiet)?,
        "the quiet weir did not exit cleanly"
    );
    w.all_restored("the next start after both were killed")?;
    eprintln!("3. both killed: {CHANGED:?}; the next start: {ORIGINAL:?}");
    Ok(())
}
