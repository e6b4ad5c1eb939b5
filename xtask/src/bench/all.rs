//! `cargo xtask bench all [--quick] [--report-only]`: every benchmark in turn, each in its own
//! process (this binary, `bench NAME`), so that one that fails or leaves its thread pinned does
//! not stop or skew the next; then `target/bench/REPORT.md` (`crate::bench_report`). A failed
//! benchmark is recorded in `all.json` and shown as failed in the report, and the command exits
//! non-zero at the end.
//!
//! `--quick` runs steer and synflood with fewer rounds and `bench http --quick` (the list
//! below): about two minutes of measuring on a 2-core VM, once weir's release build is there.
//! `--report-only` only rebuilds the report (`bench report`).

use std::{
    process::Command,
    time::{Instant, SystemTime},
};

use anyhow::bail;
use serde_json::{Value, json};

use super::report::write_json;
use crate::bench_report;

/// Each benchmark's arguments under `--quick` (without it, each runs with its defaults). xdp
/// and pps take seconds with their defaults; the others run fewer rounds.
const QUICK: [(&str, &[&str]); 5] = [
    ("xdp", &[]),
    ("pps", &[]),
    ("steer", &["--seconds", "3", "--rounds", "2"]),
    ("synflood", &["--rounds", "2", "--hping-secs", "3"]),
    ("http", &["--quick"]),
];

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let (mut quick, mut report_only) = (false, false);
    for a in args {
        match a.as_str() {
            "--quick" => quick = true,
            "--report-only" => report_only = true,
            other => bail!("bench all: unknown option {other} (--quick, --report-only)"),
        }
    }
    if report_only {
        return bench_report::run(&[]);
    }
    let run_started = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut entries: Vec<Value> = Vec::new();
    let mut failed = Vec::new();
    for name in bench_report::BENCHES {
        let bench_args: Vec<&str> = if quick {
            QUICK
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(&[][..], |(_, a)| *a)
                .to_vec()
        } else {
            Vec::new()
        };
        println!("\n=== bench all: {name} {} ===", bench_args.join(" "));
        let started_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let t = Instant::now();
        // /proc/self/exe: this very binary (built with `lab`), even if a build elsewhere
        // replaces target/debug/xtask meanwhile.
        let status = Command::new("/proc/self/exe")
            .arg("bench")
            .arg(name)
            .args(&bench_args)
            .status();
        let seconds = t.elapsed().as_secs_f64();
        let reason = match status {
            Ok(s) if s.success() => None,
            Ok(s) => Some(format!("`bench {name}` ended with {s}")),
            Err(e) => Some(format!("`bench {name}` could not start: {e}")),
        };
        if let Some(r) = &reason {
            eprintln!("bench all: {r}; going on with the next");
            failed.push(name);
        }
        entries.push(json!({
            "name": name, "args": bench_args, "status": if reason.is_some() { "failed" } else { "ok" },
            "reason": reason, "seconds": seconds, "started_unix": started_unix,
        }));
        // Written after every benchmark, so an interrupted run still leaves its record.
        write_json(
            bench_report::RUN_RECORD.trim_end_matches(".json"),
            &json!({"quick": quick, "started_unix": run_started,
                    "started_utc": bench_report::machine::utc(run_started), "benches": entries}),
        )?;
    }
    println!("\n=== bench all: report ===");
    bench_report::run(&[])?;
    if !failed.is_empty() {
        bail!(
            "benchmarks failed: {} (shown as failed in the report)",
            failed.join(", ")
        );
    }
    Ok(())
}
