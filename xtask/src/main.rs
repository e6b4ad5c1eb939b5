//! `cargo xtask …`: the developer's front door.
//!
//! - `run --iface IFACE [--config FILE] [--xdp-mode M] [--replace]`: build weir (release) and run it.
//! - `test`: the whole test suite (unit, packet fixtures, netns integration) — what CI runs.
//! - `bench NAME`: a benchmark with its baseline measured in the same run (`bench list`).
//! - `lab up|down`: a client/server namespace pair to try `run` on by hand.

mod bench;
mod bench_http;
mod cargo;
mod lab;

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
    /// Run a benchmark: xdp, pps, steer, synflood, http (see `cargo xtask bench list`).
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
        Cmd::Test { rest } => cargo::test(&rest),
        Cmd::Bench { name, args } => bench::run(&name, &args),
        Cmd::Lab { args } => lab::run(&args),
    }
}
