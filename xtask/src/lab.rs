//! `cargo xtask lab [--seconds N]`: a client namespace wired to the host by a veth, to try weir by
//! hand. It stays up until Ctrl-C (or N seconds), then removes everything it made.
//!
//! ```text
//! host: weirlab0 10.88.0.1/24 fd88::1/64  ◄──veth──►  ns <lab>-client: eth0 10.88.0.2/24 fd88::2/64
//! ```

use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};
use weir_tests::lab::Lab;

use crate::bench::flag;

pub const HOST_IFACE: &str = "weirlab0";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let seconds: Option<u64> = flag(args, "--seconds");
    // Block the signals before any thread starts so `sigwait` receives them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().context("blocking SIGINT/SIGTERM")?;

    let lab = Lab::new()?;
    let client = lab.add_ns("client")?;
    let (host, c0) = lab.veth_named(&lab.root(), HOST_IFACE, &client, "eth0")?;
    host.addr("10.88.0.1/24")?.addr("fd88::1/64")?;
    c0.addr("10.88.0.2/24")?.addr("fd88::2/64")?;
    host.track_xdp();
    let ns = client.netns().unwrap_or_default().to_string();
    println!(
        "lab up: host {HOST_IFACE} 10.88.0.1 / fd88::1  <->  netns {ns}: eth0 10.88.0.2 / fd88::2"
    );
    println!("  run weir:     cargo xtask run --iface {HOST_IFACE}");
    println!("  send traffic: ip netns exec {ns} curl -s http://10.88.0.1:8080/");
    println!("  watch:        weir stats --iface {HOST_IFACE}");
    match seconds {
        Some(s) => {
            println!("lab: up for {s} s");
            std::thread::sleep(Duration::from_secs(s));
        }
        None => {
            println!("lab: Ctrl-C to tear down");
            let sig = signals.wait()?;
            println!("lab: {sig:?}, tearing down");
        }
    }
    drop(lab);
    Ok(())
}
