//! `cargo xtask …`: the developer's front door.
//!
//! - `run --iface IFACE [--config FILE] [--xdp-mode M] [--replace]`: build weir (release) and run it.
//! - `test`: the whole test suite (unit, packet fixtures, netns integration) — what CI runs.
//! - `bench NAME`: a benchmark with its baseline measured in the same run (`bench list`);
//!   `bench all [--quick]` runs every one and writes `target/bench/REPORT.md` with charts;
//!   `bench report` rebuilds that report from the results present (no eBPF toolchain needed).
//! - `lab up|down`: a client/server namespace pair to try `run` on by hand.
//! - `demo [--quick]`: the five-minute tour in a lab of namespaces, torn down at the end.
//!
//! Every command first installs what the machine lacks ([`setup`]). xtask itself needs only
//! the stable toolchain: the benchmarks and the lab use weir's crates, whose build builds the
//! eBPF object, so they sit behind the feature `lab`, and `bench`/`lab` re-run xtask with it
//! once the toolchain is there.

#[cfg(feature = "lab")]
mod bench;
#[cfg(feature = "lab")]
mod bench_http;
mod bench_report;
mod cargo;
#[cfg(feature = "lab")]
mod demo;
#[cfg(feature = "lab")]
mod lab;
mod setup;
mod test_report;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build weir in release mode and run it; arguments after the flags go to `weir run`.
    Run {
        #[arg(long, short)]
        iface: Option<String>,
        #[arg(long, short)]
        config: Option<String>,
        #[arg(long)]
        xdp_mode: Option<String>,
        #[arg(long)]
        replace: bool,
        /// More `weir run` arguments.
        #[arg(last = true)]
        rest: Vec<String>,
    },
    /// Run the whole test suite (needs root for the XDP and netns tests).
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(last = true)]
        rest: Vec<String>,
    },
    /// Run a benchmark: xdp, pps, steer, synflood, http; `all` for every one and the report,
    /// `report` to rebuild the report (see `cargo xtask bench list`).
    Bench {
        name: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// A lab of network namespaces to try weir in by hand.
    Lab {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The five-minute tour: weir in a lab of namespaces under traffic, a SYN flood and a
    /// backend failure, shown with `weir top --once`; everything removed at the end.
    Demo {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Run {
            iface,
            config,
            xdp_mode,
            replace,
            rest,
        } => {
            setup::ensure(setup::Needs::Build)?;
            cargo::build_release(&["-p", "lb-userspace", "--bin", "weir"])?;
            let mut args = vec!["run".to_string()];
            for (flag, v) in [
                ("--iface", iface),
                ("--config", config),
                ("--xdp-mode", xdp_mode),
            ] {
                if let Some(v) = v {
                    args.extend([flag.to_string(), v]);
                }
            }
            if replace {
                args.push("--replace".into());
            }
            args.extend(rest);
            cargo::exec_weir(&args)
        }
        Cmd::Test { rest } => {
            cargo::warn_if_short_of_disk();
            setup::ensure(setup::Needs::Tests)?;
            cargo::test(&rest)
        }
        Cmd::Bench { name, args } if name == "report" => bench_report::run(&args),
        Cmd::Bench { name, args } => with_lab("bench", &name, &args),
        Cmd::Lab { args } => with_lab("lab", "", &args),
        Cmd::Demo { args } => with_lab("demo", "", &args),
    }
}

/// `bench`, `lab` and `demo`: run here when built with the feature `lab`.
#[cfg(feature = "lab")]
fn with_lab(cmd: &str, name: &str, args: &[String]) -> anyhow::Result<()> {
    match cmd {
        "bench" => bench::run(name, args),
        "demo" => demo::run(args),
        _ => lab::run(args),
    }
}

/// `bench`, `lab` and `demo` without the feature: install what they need, then become xtask
/// built with it (same process, same arguments).
#[cfg(not(feature = "lab"))]
fn with_lab(cmd: &str, name: &str, args: &[String]) -> anyhow::Result<()> {
    setup::ensure(setup::Needs::Tests)?;
    let mut xtask_args = vec![cmd.to_string()];
    if !name.is_empty() {
        xtask_args.push(name.to_string());
    }
    xtask_args.extend(args.iter().cloned());
    cargo::exec_xtask_with_lab(&xtask_args)
}
