//! `weir`: see `weir --help`, README.md and ARCHITECTURE.md.

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use lb_userspace::{
    cli::{Cli, Command, StatsArgs, out},
    run,
    stats::{self, read_pinned},
    xdp::pins,
};

// mimalloc (`lb_userspace::alloc`: why, and why not the `mimalloc` crate's own wrapper).
#[global_allocator]
static ALLOC: lb_userspace::alloc::Mimalloc = lb_userspace::alloc::Mimalloc;

fn main() -> std::process::ExitCode {
    if let Err(e) = init_logging() {
        eprintln!("weir: error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run(_) | Command::Worker { .. }) {
        unblock_signals();
    }
    let result = match cli.command {
        Command::Run(args) => close_inherited_on_exec().and_then(|()| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(Into::into)
                .and_then(|rt| rt.block_on(run::run(args)))
        }),
        Command::Check { config } => check(config.as_deref()),
        Command::Stats(args) => show_stats(&args),
        Command::Top(args) => lb_userspace::top::run(&args),
        Command::Worker { index, config } => {
            lb_userspace::workers::child::main(index, config.as_deref())
        }
        // The admin API's verbs.
        verb @ (Command::Status(_)
        | Command::Listeners(_)
        | Command::Rules(_)
        | Command::Certificates(_)
        | Command::Reload(_)
        | Command::Targets { .. }) => lb_userspace::admin::verbs::run(&verb),
    };
    exit(result)
}

/// Empties the signal mask weir inherited, before any thread starts (threads inherit it). A
/// mask survives exec: a parent that blocked SIGTERM and SIGINT to `sigwait` for them (a
/// script's runner, a supervisor, a test harness) would otherwise pass the block to weir and,
/// through it, to every worker, and neither would ever see a stop. (Found with workers left
/// running for minutes after their control plane was killed: SIGTERM pending, blocked.)
fn unblock_signals() {
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
}

/// Marks every descriptor `weir run` inherited beyond stdin, stdout and stderr close-on-exec,
/// before it opens any of its own: the workers get only what the supervisor hands them (their
/// sockets, pipes), never a lock, socket or file of whatever started weir. (Found with a script's
/// `flock FILE weir run`: the workers kept the lock held after weir exited.)
fn close_inherited_on_exec() -> anyhow::Result<()> {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // Before Linux 5.11: one by one.
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Ok(());
    };
    for entry in dir.flatten() {
        if let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
            && fd > 2
        {
            // SAFETY: fcntl on a descriptor number; a stale one (the read_dir's own) fails.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

/// Logs on stderr: text, coloured only on a terminal (a file or a pipe — a journal, a log shipper
/// — gets plain text), or one JSON object per line with `WEIR_LOG_FORMAT=json`. Workers inherit
/// weir's stderr and environment and decide the same way. `RUST_LOG` filters (default `info`).
fn init_logging() -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let format = std::env::var("WEIR_LOG_FORMAT").unwrap_or_default();
    match format.as_str() {
        "" | "text" => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init(),
        "json" => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .init(),
        other => {
            bail!("WEIR_LOG_FORMAT={other:?}: the log formats are `text` (the default) and `json`")
        }
    }
    Ok(())
}

fn exit(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn check(path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let validated = lb_userspace::reload::validate(path)?;
    // As `weir run` opens it before it starts a worker, without creating it.
    lb_userspace::reload::check_access_log(&validated.config, &validated.text)?;
    let cfg = &validated.config;
    out(format_args!(
        "{}: OK ({} listener(s), {} target group(s), {} VIP spec(s), {} deny prefix(es))\n",
        cfg.source,
        cfg.l7.listener.len(),
        cfg.l7.target_group.len(),
        cfg.vip_specs().len(),
        cfg.deny.sources.len()
    ));
    for w in cfg.l7.warnings() {
        out(format_args!("warning: {}: {w}\n", cfg.source));
    }
    let now = lb_userspace::certificates::now_unix();
    for w in lb_userspace::certificates::warnings(&validated.certificates, now) {
        out(format_args!(
            "warning: {}: certificate {}\n",
            cfg.source, w.message
        ));
    }
    if cfg.l7.listener.is_empty() {
        out(format_args!(
            "warning: no [[listener]]: weir serves nothing from this file but its XDP tier \
             (`weir run --iface`); without --iface, nothing at all\n"
        ));
    }
    Ok(())
}

/// The interface `weir stats` reports on: `--iface`, else the only one of this network
/// namespace with a daemon.
fn stats_iface(args: &StatsArgs) -> anyhow::Result<String> {
    if let Some(i) = &args.iface {
        return Ok(i.clone());
    }
    match pins::running_interfaces().as_slice() {
        [one] => Ok(one.clone()),
        [] => match pins::live_daemons().as_slice() {
            // `ip netns exec`: the daemon runs, its pins are in another mount of /sys.
            [(id, pid)] => bail!("{}", pins::pins_not_visible(id, *pid)),
            [] => match pins::legacy_daemons().as_slice() {
                [(iface, pid), ..] => bail!("{}", pins::legacy_running(iface, *pid)),
                [] => {
                    let socket = lb_userspace::admin::path::l7_default().is_ok_and(|p| p.exists());
                    let daemons = lb_userspace::admin::procs::daemons();
                    bail!("{}", stats::no_pins(socket, &daemons))
                }
            },
            many => bail!(
                "weir runs on several interfaces ({}), but no pins are visible under {} \
                 from this mount namespace (`ip netns exec` mounts a /sys of its own): run \
                 `weir stats --iface IF` where they are (`nsenter -t PID -m -n`)",
                many.iter()
                    .map(|(i, p)| format!("{}: pid {p}", i.name()))
                    .collect::<Vec<_>>()
                    .join(", "),
                pins::BPFFS_ROOT
            ),
        },
        many => bail!(
            "weir runs on several interfaces ({}); pick one with --iface",
            many.join(", ")
        ),
    }
}

fn show_stats(args: &StatsArgs) -> anyhow::Result<()> {
    let iface = stats_iface(args)?;
    let before = read_pinned(&iface)?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.interval.max(0.0)));
    let now = read_pinned(&iface)?;
    let mut r = stats::report(&iface, &before, &now, t0.elapsed());
    r["host"] = lb_userspace::xdp::syn::host_json(&iface);
    // The note says what the daemon saw while it lived: a daemon killed with SIGKILL leaves it,
    // and its pins, claiming XDP attached. Its lock, free, says it is gone.
    let id = lb_userspace::iface_id::IfaceId::here(&iface)?;
    let gone = pins::daemon_gone(&id).then(|| {
        let made = std::fs::metadata(pins::dir_for(&id))
            .and_then(|m| m.modified())
            .ok();
        stats::mark_gone(&mut r, &iface, made)
    });
    if args.json {
        out(format_args!("{r}\n"));
    } else {
        out(format_args!("{}", stats::table(&r)));
    }
    match gone {
        Some(why) => bail!("{why}"),
        None => Ok(()),
    }
}
