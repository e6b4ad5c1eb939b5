//! `cargo xtask bench report`: `target/bench/REPORT.md` and its PNG charts, built from the
//! benchmark results present there (`NAME.json`, and `all.json` from `bench all`), without
//! running anything. `bench all` ends with it.
//!
//! Needs no eBPF toolchain (xtask without the feature `lab` builds it), so it is unit-tested in
//! the plain `cargo test`. The `machine` block every result carries is made here too.

mod charts;
mod inputs;
// Gathering the block is used by the benchmarks (feature `lab`); reading it by the report.
#[cfg_attr(not(feature = "lab"), allow(dead_code))]
pub mod machine;
mod sections;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;

#[cfg(feature = "lab")]
pub use inputs::{BENCHES, RUN_RECORD};
use inputs::{Inputs, Outcome};

/// The report's file name in its directory.
pub const REPORT: &str = "REPORT.md";

/// `bench report [--dir DIR]` (default `target/bench`).
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut dir = crate::cargo::target_dir().join("bench");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => dir = it.next().context("--dir DIR")?.into(),
            other => bail!("bench report: unknown option {other} (only --dir DIR)"),
        }
    }
    let path = build(&dir)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Reads the results in `dir` and writes `dir/REPORT.md` and its charts.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let inputs = inputs::load(dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let md = render(&inputs, &machine::utc(now), dir)?;
    let path = dir.join(REPORT);
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The report's markdown for `inputs`, built at `built` (a date); its charts are written to
/// `chart_dir`, where the markdown links them by file name.
pub fn render(inputs: &Inputs, built: &str, chart_dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(chart_dir)?;
    let mut md = String::from("# weir benchmark report\n\n");
    md.push_str(&format!(
        "Built {built} from the results in this directory (`cargo xtask bench all` measures and \
         builds it; `cargo xtask bench report` rebuilds it from the JSON files). Every figure \
         names the machine and date it was measured on; each benchmark measures its baseline \
         in the same run.\n\n"
    ));
    md.push_str(&summary(inputs));
    for (name, outcome) in &inputs.benches {
        md.push_str(&format!("\n## {}\n\n", title(name)));
        match outcome {
            Outcome::NotRun => md.push_str(&format!(
                "**not run** — no `{name}.json` here (`cargo xtask bench {name}`).\n"
            )),
            Outcome::Failed { reason } => {
                md.push_str(&format!("**failed** — {}\n", one_line(reason)))
            }
            Outcome::Measured(v) => {
                md.push_str(&sections::provenance(v));
                md.push_str("\n\n");
                let s = sections::of(name, v);
                md.push_str(&s.markdown);
                for (file, bars) in &s.charts {
                    charts::draw(&chart_dir.join(file), bars)?;
                }
            }
        }
    }
    Ok(md)
}

fn title(name: &str) -> &'static str {
    match name {
        "xdp" => "XDP: ns/packet per path (`bench xdp`)",
        "pps" => "XDP: packets/s through a veth (`bench pps`)",
        "steer" => "Connection steering: Maglev vs the kernel's hash (`bench steer`)",
        "synflood" => "SYN flood: weir's XDP cookies vs the kernel alone (`bench synflood`)",
        _ => "L7: weir vs HAProxy and nginx (`bench http`)",
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The table of every benchmark's state, where and when it was measured.
fn summary(inputs: &Inputs) -> String {
    let run_secs = |name: &str| -> String {
        inputs
            .run
            .as_ref()
            .and_then(|r| r["benches"].as_array())
            .and_then(|b| b.iter().find(|e| e["name"] == name))
            .and_then(|e| e["seconds"].as_f64())
            .map_or("–".into(), |s| format!("{s:.0} s"))
    };
    let rows: Vec<Vec<String>> = inputs
        .benches
        .iter()
        .map(|(name, o)| {
            let (state, machine, date) = match o {
                Outcome::NotRun => ("not run".to_string(), "–".into(), "–".into()),
                Outcome::Failed { .. } => ("**failed**".to_string(), "–".into(), "–".into()),
                Outcome::Measured(v) => (
                    "measured".to_string(),
                    machine_cell(&v["machine"]),
                    machine::date(&v["machine"]),
                ),
            };
            vec![format!("`{name}`"), state, machine, date, run_secs(name)]
        })
        .collect();
    let mut s = sections::table(
        &[
            "benchmark",
            "result",
            "machine",
            "measured",
            "time in last `bench all`",
        ],
        &rows,
    );
    if let Some(run) = &inputs.run {
        let quick = if run["quick"] == true {
            " with `--quick`"
        } else {
            ""
        };
        let started = run["started_utc"]
            .as_str()
            .map_or_else(|| machine::date(&run["machine"]), str::to_string);
        s.push_str(&format!(
            "\nLast `bench all`{quick}: started {started} on {}.\n",
            machine::describe(&run["machine"])
        ));
    }
    s
}

fn machine_cell(m: &Value) -> String {
    if m.is_object() {
        machine::describe(m)
    } else {
        "unrecorded".into()
    }
}

#[cfg(test)]
mod tests;
