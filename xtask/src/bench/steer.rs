//! `cargo xtask bench steer`: new connections per second through `weir run` with Maglev steering
//! (the SK_REUSEPORT program) beside the kernel's default SO_REUSEPORT hash, same workers, same
//! client, runs alternated; plus the steering program's own cost per decision, from the kernel's
//! BPF run-time statistics over those real connections.
//!
//! The client is wrk with `Connection: close` (one new TCP connection per request) in a client
//! namespace; weir runs in a server namespace across a veth. Bounded: `--seconds` per run.
//! Targets (issue #4): steering ≥ the default hash's connections/s; the decision ≤ 15 ns.
//! cpumap redirect from XDP is not implemented (see ARCHITECTURE.md).

use std::{process::Command, time::Duration};

use anyhow::{Context, bail};
use serde_json::json;
use weir_tests::lab::{Lab, Ns, wait_until};

use super::{
    report::{median, verdict, write_json},
    xdp::flag,
};
use crate::cargo;

const SERVER: &str = "10.81.0.2";

fn weir(ns: &Ns, config: &str) -> anyhow::Result<weir_tests::lab::Proc> {
    let mut c = Command::new("nsenter");
    c.arg(format!(
        "--net=/run/netns/{}",
        ns.netns().unwrap_or_default()
    ))
    .arg("--")
    .arg(cargo::target_dir().join("release/weir"))
    .args(["run", "--config", config])
    .env("RUST_LOG", "warn");
    let mut p = ns.spawn_command(c)?;
    wait_until(Duration::from_secs(20), "weir to listen", || {
        if !p.is_running() {
            bail!("weir exited");
        }
        ns.tcp_listening(8080)
    })?;
    std::thread::sleep(Duration::from_millis(300));
    Ok(p)
}

/// wrk's Requests/sec with one new connection per request.
fn wrk(client: &Ns, seconds: u64, conns: u32) -> anyhow::Result<f64> {
    let out = client.exec(&[
        "wrk",
        "-t2",
        &format!("-c{conns}"),
        &format!("-d{seconds}s"),
        "-H",
        "Connection: close",
        &format!("http://{SERVER}:8080/"),
    ])?;
    out.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output:\n{out}"))
}

/// (run count, total ns) of the loaded `weir_steer` program(s).
fn steer_stats() -> (u64, u64) {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.name_as_str() == Some(lb_common::steer::PROGRAM))
        .fold((0, 0), |(c, t), p| {
            (c + p.run_count(), t + p.run_time().as_nanos() as u64)
        })
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let seconds: u64 = flag(args, "--seconds").unwrap_or(5).min(60);
    let rounds: usize = flag(args, "--rounds").unwrap_or(3);
    let workers: usize = flag(args, "--workers").unwrap_or(2);
    let conns: u32 = flag(args, "--connections").unwrap_or(32);
    cargo::build_release(&["-p", "lb-userspace", "--bin", "weir"])?;

    let lab = Lab::new()?;
    let client = lab.add_ns("client")?;
    let server = lab.add_ns("server")?;
    let (c0, s0) = lab.veth(&client, &server)?;
    c0.addr("10.81.0.1/24")?;
    s0.addr(&format!("{SERVER}/24"))?;
    // Connections closed by the client leave TIME_WAIT there; let it reuse them.
    client.sysctl("net.ipv4.tcp_tw_reuse", "1")?;
    client.sysctl("net.ipv4.ip_local_port_range", "1024 65000")?;

    let dir = std::env::temp_dir().join(format!("weir-bench-steer-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = |mode: &str| -> anyhow::Result<String> {
        let p = dir.join(format!("{mode}.toml"));
        std::fs::write(
            &p,
            format!(
                "[workers]\ncount = {workers}\nsteering = \"{mode}\"\n\n[[listener]]\nport = 8080\n\
                 default_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"ok\" }}\n"
            ),
        )?;
        Ok(p.display().to_string())
    };
    let (maglev_cfg, kernel_cfg) = (config("maglev")?, config("kernel")?);
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).context("BPF_ENABLE_STATS")?;

    println!(
        "bench steer: {workers} workers, wrk -c{conns} Connection: close, {seconds} s per run, {rounds} alternating rounds"
    );
    let (mut maglev, mut kernel, mut decision_ns) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let mut w = weir(&server, &kernel_cfg)?;
        let k = wrk(&client, seconds, conns)?;
        drop(w.kill());
        let mut w = weir(&server, &maglev_cfg)?;
        let (c0, t0) = steer_stats();
        let m = wrk(&client, seconds, conns)?;
        let (c1, t1) = steer_stats();
        drop(w.kill());
        let ns = (t1 - t0) as f64 / (c1 - c0).max(1) as f64;
        println!(
            "round {r}: kernel hash {k:>9.0} conn/s   maglev {m:>9.0} conn/s   steering decision {ns:.1} ns over {} runs",
            c1 - c0
        );
        kernel.push(k);
        maglev.push(m);
        decision_ns.push(ns);
    }
    let (m, k, ns) = (median(maglev), median(kernel), median(decision_ns));
    println!(
        "{:<22} {:>12} {:>12} {:>8} {:>10}",
        "", "maglev", "kernel", "ratio", "target"
    );
    println!(
        "{:<22} {:>12.0} {:>12.0} {:>8.3} {:>10} {}",
        "new connections/s",
        m,
        k,
        m / k,
        ">= 1.0",
        verdict(m >= k)
    );
    println!(
        "{:<22} {:>12.1} {:>12} {:>8} {:>10} {}",
        "decision ns/connection",
        ns,
        "-",
        "-",
        "<= 15",
        verdict(ns <= 15.0)
    );
    let path = write_json(
        "steer",
        &json!({"workers": workers, "seconds": seconds, "rounds": rounds, "maglev_conn_per_s": m,
                "kernel_conn_per_s": k, "ratio": m / k, "decision_ns": ns, "cpumap": "not implemented"}),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    println!("wrote {}", path.display());
    Ok(())
}
