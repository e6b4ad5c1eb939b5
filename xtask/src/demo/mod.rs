//! `cargo xtask demo [--quick] [--weir PATH]`: the five-minute tour. Builds a lab of network
//! namespaces (a client, weir on a veth, three python3 backends), runs weir with
//! `examples/demo.toml`, and shows `weir top --once` at each step: traffic (curl, wrk), a short
//! bounded SYN flood (hping3, spoofed sources, inside the lab only), a backend killed and
//! restored. Then everything is removed — also on Ctrl-C, SIGTERM or a failed step.
//!
//! `--quick`: fewer requests and a shorter load (the test suite's `e2e_demo`). `--weir PATH`:
//! that binary instead of building weir in release mode.

mod tour;
mod world;

use std::{
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::{Context, bail};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use crate::{bench::flag, cargo};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Fails once Ctrl-C or SIGTERM arrived: every step checks, and the error unwinds through the
/// guards that tear the lab down.
pub fn check() -> anyhow::Result<()> {
    if STOP.load(Ordering::Relaxed) {
        bail!("interrupted (SIGINT or SIGTERM): tearing down");
    }
    Ok(())
}

/// Sleeps `d`, waking for Ctrl-C.
pub fn pause(d: Duration) -> anyhow::Result<()> {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        check()?;
        std::thread::sleep(Duration::from_millis(50).min(end - std::time::Instant::now()));
    }
    check()
}

pub struct Options {
    pub quick: bool,
    pub weir: PathBuf,
    pub config: PathBuf,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    for a in args {
        if a.starts_with("--") && !["--quick", "--weir"].contains(&a.as_str()) {
            bail!("cargo xtask demo: unknown option {a} (options: --quick, --weir PATH)");
        }
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("the demo needs root: it makes network namespaces and attaches XDP");
    }
    // A handler that only raises the flag: every step checks it and unwinds through the
    // teardown. (Blocking the signals instead would leave them blocked in weir and the other
    // children, which inherit the mask.)
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { sigaction(sig, &action) }.context("installing the SIGINT/SIGTERM handler")?;
    }
    let weir = match flag::<String>(args, "--weir") {
        Some(p) => PathBuf::from(p),
        None => {
            println!("demo: building weir (release)");
            cargo::build_release(&["-p", "lb-userspace", "--bin", "weir"])?;
            cargo::target_dir().join("release/weir")
        }
    };
    if !weir.exists() {
        bail!("{}: no such weir binary", weir.display());
    }
    let opts = Options {
        quick: args.iter().any(|a| a == "--quick"),
        weir,
        config: cargo::root().join("examples/demo.toml"),
    };
    let started = std::time::Instant::now();
    let result = tour::run(&opts);
    match &result {
        Ok(()) => println!(
            "\ndemo: done in {:.0} s; the lab, weir and its XDP program are gone",
            started.elapsed().as_secs_f64()
        ),
        Err(e) => eprintln!("\ndemo: stopped: {e:#}\ndemo: the lab was torn down"),
    }
    result
}
