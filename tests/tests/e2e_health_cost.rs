//! What active health checks cost the control plane (issue #12): `weir run` checks a group of
//! 1,000 targets (127.0.1.1 … 127.0.4.250, port 9000, all answered by one python asyncio
//! server) every 5 s; the CPU time of the `weir run` process (the control plane: the checker
//! and the supervisor, not the workers) over 20 s is printed as a share of one core and
//! bounded (`cargo test --release -p weir-tests --test e2e_health_cost -- --nocapture` for the
//! number docs/l7.md gives). Needs root (a network namespace, so 127.0.0.0/8 and the port are the test's own).

mod common;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use common::*;
use serde_json::Value;
use weir_tests::lab::{Lab, Ns, wait_until};

const TARGETS: usize = 1000;
const MEASURE: Duration = Duration::from_secs(20);

const SERVER: &str = r#"
import asyncio
async def answer(r, w):
    try:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await w.drain()
    except Exception:
        pass
    w.close()
async def main():
    s = await asyncio.start_server(answer, "0.0.0.0", 9000, backlog=4096)
    async with s:
        await s.serve_forever()
asyncio.run(main())
"#;

/// utime + stime of `pid`, in clock ticks (/proc/PID/stat fields 14 and 15).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command: field 3 is f[0], so fields 14 and 15 are f[11] and f[12].
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn healthy_count(ns: &Ns) -> Result<u64> {
    let Ok(text) = std::fs::read(health_state_file(ns)?) else {
        return Ok(0);
    };
    let v: Value = serde_json::from_slice(&text)?;
    Ok(v["target_groups"][0]["HealthyHostCount"]
        .as_u64()
        .unwrap_or(0))
}

#[test]
fn a_thousand_targets_every_five_seconds_cost_little_cpu() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("hcost")?;
    let script = TempFile::new("server.py", SERVER);
    let mut c = ns.command("python3");
    c.arg(script.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let _server = ns.spawn_command(c)?;
    ns.wait_tcp_listen(9000, Duration::from_secs(10))?;

    let targets: Vec<String> = (0..TARGETS)
        .map(|n| format!("{{ id = \"127.0.{}.{}\" }}", n / 250 + 1, n % 250 + 1))
        .collect();
    let cfg = TempFile::new(
        "cost.toml",
        &format!(
            "[workers]\ncount = 1\n\n[[listener]]\naddress = \"127.0.0.1\"\nport = 8080\n\
             default_action = {{ type = \"forward\", target_group = \"big\" }}\n\n\
             [[target_group]]\nname = \"big\"\nport = 9000\n\
             health_check = {{ path = \"/\", interval_seconds = 5, timeout_seconds = 2, healthy_threshold_count = 2, unhealthy_threshold_count = 2 }}\n\
             target = [{}]\n",
            targets.join(", ")
        ),
    );
    let mut cmd = weir_command(&ns);
    cmd.args(["run", "--config", cfg.path()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut weir = ns.spawn_command(cmd)?;
    let (lines, end) = logged::collect_to_eof(weir.child_mut().stderr.take().unwrap());
    let t0 = Instant::now();
    wait_until(Duration::from_secs(20), "1,000 healthy targets", || {
        if !weir.is_running() {
            bail!("weir exited:\n{}", logged::to_eof(&lines, &end));
        }
        std::thread::sleep(Duration::from_millis(200));
        Ok(healthy_count(&ns)? == TARGETS as u64)
    })?;
    eprintln!("1,000 targets healthy {:.1?} after start", t0.elapsed());
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", weir.pid()))?;
    assert_eq!(
        comm.trim(),
        "weir",
        "the pid measured is weir's (nsenter execs it)"
    );

    // SAFETY: sysconf has no preconditions.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let (c0, at) = (cpu_ticks(weir.pid())?, Instant::now());
    std::thread::sleep(MEASURE);
    let (c1, took) = (cpu_ticks(weir.pid())?, at.elapsed());
    let share = (c1 - c0) as f64 / ticks_per_s / took.as_secs_f64();
    let checks = TARGETS as f64 * took.as_secs_f64() / 5.0;
    eprintln!(
        "control plane CPU over {took:.1?}: {:.2} s = {:.2} % of one core for ~{checks:.0} checks ({:.0} µs a check)",
        (c1 - c0) as f64 / ticks_per_s,
        share * 100.0,
        (c1 - c0) as f64 / ticks_per_s / checks * 1e6
    );
    assert_eq!(healthy_count(&ns)?, TARGETS as u64, "all stayed healthy");
    // Generous bounds for a shared machine: the unoptimised build (`cargo test`) is many times
    // slower than the release build the documented number comes from.
    let bound = if cfg!(debug_assertions) { 0.40 } else { 0.10 };
    assert!(
        share < bound,
        "the checker costs {:.1} % of a core (bound {:.0} %)",
        share * 100.0,
        bound * 100.0
    );
    assert!(interrupt(&mut weir)?);
    Ok(())
}
