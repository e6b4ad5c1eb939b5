//! The `weir` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::XdpModeSetting;

#[derive(Debug, Parser)]
#[command(
    name = "weir",
    version,
    about = "weir: an XDP L4 tier in front of L7 workers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the load balancer: attach XDP to --iface (if given) and serve the L7 listeners.
    Run(RunArgs),
    /// Validate a configuration file; prints every error with file, line and field.
    Check {
        /// The file to check (the embedded default when omitted).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Show the running daemon's XDP counters: totals and per-second rates.
    Stats(StatsArgs),
    /// One L7 worker process (started by `weir run`, with its listening sockets inherited).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        index: usize,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The interface to attach XDP to. Without it only the L7 workers run.
    #[arg(long, short)]
    pub iface: Option<String>,
    /// Configuration file (TOML). Without it the embedded default serves.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// XDP attach mode; overrides `[xdp] mode`.
    #[arg(long, value_enum)]
    pub xdp_mode: Option<XdpModeSetting>,
    /// Replace an XDP program already attached to the interface.
    #[arg(long)]
    pub replace: bool,
    /// Do not start the L7 workers (XDP tier only).
    #[arg(long)]
    pub no_l7: bool,
    /// Counter summary interval in seconds; overrides `[xdp] stats_interval_seconds` (0 = off).
    #[arg(long)]
    pub stats_interval: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// The interface whose daemon to read (default: the only one running).
    #[arg(long, short)]
    pub iface: Option<String>,
    /// Seconds between the two samples the rates come from.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}
