//! The `weir` command line.

use std::{net::IpAddr, path::PathBuf};

use clap::{Parser, Subcommand};

use crate::{admin::model::TargetSpec, config::XdpModeSetting};

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
    /// A live view of the running daemon, like `top`: XDP actions, SYN floods, listeners,
    /// targets, workers (`q` quits; `--once` prints one frame as plain text).
    Top(TopArgs),
    /// The running daemon: configuration generation, workers, uptime, XDP mode per interface.
    Status(ClientArgs),
    /// The listeners the daemon serves (ALB's describe-listeners).
    Listeners(ClientArgs),
    /// A listener's rules by priority, the default rule last (ALB's describe-rules).
    Rules(RulesArgs),
    /// The listeners' certificates as served: subject, SANs, issuer, serial, validity, days
    /// left, key type (HAProxy's `show ssl cert`).
    Certificates(CertificatesArgs),
    /// Apply the configuration file again: validated completely first, a bad file changes nothing.
    Reload(ClientArgs),
    /// Target groups' targets: health, registration (ALB's register-targets, …).
    Targets {
        #[command(subcommand)]
        command: TargetsCommand,
    },
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

#[derive(Debug, Clone, clap::Args)]
pub struct TopArgs {
    /// The daemon's admin socket. Default: the daemon of this network namespace, or the one
    /// attached to --iface.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// The daemon attached to this interface (its pinned XDP counters and its admin socket).
    /// Default: the interface the daemon reports XDP attached to.
    #[arg(long, short)]
    pub iface: Option<String>,
    /// Seconds between refreshes; rates are the changes between two refreshes.
    #[arg(long, default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,
    /// Print one frame as plain text (rates over --interval) and exit: for scripts.
    #[arg(long)]
    pub once: bool,
}

/// A refresh interval: 0.1 s to one hour.
fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.1..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}`: the interval is 0.1 to 3600 seconds")),
    }
}

/// How the admin CLI verbs reach a daemon and print its answer.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The daemon's admin socket (its `[admin] socket`). Default: the daemon of this network
    /// namespace (docs/admin-api.md).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// The daemon attached to this interface (`/run/weir/IFACE.sock`).
    #[arg(long, short)]
    pub iface: Option<String>,
    /// Print the API's JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    /// The listener's port.
    #[arg(long)]
    pub listener: u16,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct CertificatesArgs {
    /// Only the listener on this port.
    #[arg(long)]
    pub listener: Option<u16>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum TargetsCommand {
    /// Each target's state and reason code (ALB's describe-target-health).
    Health {
        /// Only this target group.
        #[arg(long, value_parser = parse_group)]
        target_group: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// A target group's registered targets (the file's, those registered at run time and those
    /// discovered), each with where it comes from.
    List {
        /// The target group's name.
        #[arg(long, value_parser = parse_group)]
        target_group: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// DNS discovery per discovering target group (HAProxy's `show resolvers`): the name and
    /// record type asked, the targets in force, the last resolution and its outcome, failures
    /// in a row, the next resolution, the generation the last change made.
    Discovery {
        /// Only this target group (an error if it does not discover).
        #[arg(long, value_parser = parse_group)]
        target_group: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Register targets at run time (ALB's register-targets): a new configuration generation
    /// for every worker; a new target gets traffic once its health checks pass. Not persisted:
    /// a reload applies the file, which keeps a target only if the file has it.
    Register(TargetChange),
    /// Deregister targets at run time (ALB's deregister-targets): no new requests, in-flight
    /// ones finish (those still waiting for a response at the group's deregistration delay get
    /// a 502); `draining` until nothing is in flight to it or that delay is over. Deregistering
    /// a draining target again succeeds and changes nothing. Not persisted: a reload applies
    /// the file, which registers the target again if the file has it.
    Deregister(TargetChange),
}

#[derive(Debug, clap::Args)]
pub struct TargetChange {
    /// The target group's name.
    #[arg(long, value_parser = parse_group)]
    pub target_group: String,
    /// `IP`, `IP:PORT` or `[IPv6]:PORT`; repeat for several. Without a port: the group's.
    #[arg(long = "target", required = true, value_parser = parse_target)]
    pub targets: Vec<TargetSpec>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// A target group name as ALB (and weir's configuration) allows: 1–32 letters, digits and `-`,
/// not starting with `-` (so it goes into a request path as it is).
pub fn parse_group(s: &str) -> Result<String, String> {
    let ok = (1..=32).contains(&s.len())
        && !s.starts_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}`: a target group name is 1-32 letters, digits and '-', not starting with '-'"
        ))
    }
}

/// `ID[:PORT]` as ALB's `Id=…,Port=…`: `10.0.0.1`, `10.0.0.1:8080`, `::1`, `[::1]:8080`.
pub fn parse_target(s: &str) -> Result<TargetSpec, String> {
    let bad = || format!("`{s}`: expected IP, IP:PORT or [IPv6]:PORT");
    let port = |p: &str| match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{s}`: the port must be 1-65535")),
        Ok(p) => Ok(Some(p)),
    };
    let (ip, port) = if let Ok(ip) = s.parse::<IpAddr>() {
        (ip, None)
    } else if let Some(rest) = s.strip_prefix('[') {
        let (ip, p) = rest.split_once("]:").ok_or_else(bad)?;
        (
            ip.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?.into(),
            port(p)?,
        )
    } else {
        let (ip, p) = s.rsplit_once(':').ok_or_else(bad)?;
        (
            ip.parse::<std::net::Ipv4Addr>().map_err(|_| bad())?.into(),
            port(p)?,
        )
    };
    Ok(TargetSpec {
        id: ip.to_string(),
        port,
    })
}

/// Writes a command's output to stdout, flushed. A reader that went away (`weir targets health
/// | head -1`: EPIPE) ends weir quietly with status 141, what the shell shows for a coreutils
/// tool killed by SIGPIPE: weir ignores SIGPIPE (Rust's runtime sets it so; the daemon and the
/// workers must, and a CLI verb writing to a daemon that closed its socket gets an error to
/// report rather than a silent death), so `println!` panicked with a backtrace. Any other write
/// error is reported and exits 1.
pub fn out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => {
            eprintln!("weir: error: writing to stdout: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_like_alb_ids_and_ports() {
        let t = |id: &str, port| TargetSpec {
            id: id.into(),
            port,
        };
        assert_eq!(parse_target("10.0.0.1"), Ok(t("10.0.0.1", None)));
        assert_eq!(parse_target("10.0.0.1:8080"), Ok(t("10.0.0.1", Some(8080))));
        assert_eq!(parse_target("::1"), Ok(t("::1", None)));
        assert_eq!(parse_target("[::1]:81"), Ok(t("::1", Some(81))));
        assert!(parse_target("10.0.0.1:0").unwrap_err().contains("1-65535"));
        assert!(parse_target("web-1:80").is_err());
        assert!(parse_target("10.0.0.1:80:1").is_err());
        assert!(parse_target("[::1]").is_err());
        assert_eq!(parse_group("web-1"), Ok("web-1".into()));
        for bad in ["", "-web", "a b", "web/x", &"a".repeat(33)] {
            assert!(parse_group(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_admin_verb_parses_with_json_and_socket() {
        use clap::Parser as _;
        let cli = Cli::try_parse_from([
            "weir",
            "targets",
            "register",
            "--target-group",
            "web",
            "--target",
            "10.0.0.1:80",
            "--target",
            "10.0.0.2",
            "--json",
            "--socket",
            "/tmp/a.sock",
        ])
        .unwrap();
        let Command::Targets {
            command: TargetsCommand::Register(c),
        } = cli.command
        else {
            panic!("{cli:?}")
        };
        assert_eq!(c.targets.len(), 2);
        assert!(c.client.json);
        assert_eq!(
            c.client.socket.as_deref(),
            Some(std::path::Path::new("/tmp/a.sock"))
        );
        for argv in [
            &["weir", "status", "--json"][..],
            &["weir", "listeners"],
            &["weir", "rules", "--listener", "80"],
            &["weir", "reload"],
            &[
                "weir",
                "top",
                "--once",
                "--interval",
                "0.5",
                "--iface",
                "eth0",
            ],
            &["weir", "targets", "health", "--target-group", "g"],
            &["weir", "targets", "discovery", "--json"],
            &["weir", "targets", "discovery", "--target-group", "g"],
            &[
                "weir",
                "targets",
                "deregister",
                "--target-group",
                "g",
                "--target",
                "::1",
            ],
        ] {
            Cli::try_parse_from(argv).unwrap();
        }
        assert!(
            Cli::try_parse_from(["weir", "targets", "register", "--target-group", "g"]).is_err()
        );
        for bad in ["0", "-1", "nan", "x", "7200"] {
            assert!(
                Cli::try_parse_from(["weir", "top", "--interval", bad]).is_err(),
                "{bad}"
            );
        }
    }
}
