//! What `weir run`'s control plane holds once it serves. Loading the eBPF objects made aya
//! parse the kernel's BTF (`/sys/kernel/btf/vmlinux`, 5.5 MB here) and relocate against it,
//! and the ~50 MB that took stayed in the control plane's RSS for as long as it ran (freed to
//! the allocator, not to the system): 49 MB of anonymous memory for a daemon serving one
//! listener, where HAProxy's master holds a few. Real binary, L7 only (the steering program
//! is loaded with the workers), in a network namespace. Needs root.

mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use common::{logged::Weir, *};
use weir_tests::lab::Lab;

/// Anonymous memory of a process, in KiB (`RssAnon` of `/proc/PID/status`).
fn rss_anon_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no RssAnon")
}

/// The bound: the control plane's own state (configuration, tables, the runtime's threads'
/// heaps) with room to spare; 10 MiB measured (release and debug builds), 49 before.
const BOUND_KIB: u64 = 24 * 1024;

#[test]
fn the_control_plane_gives_back_what_loading_the_programs_took() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("footprint")?;
    let cfg = TempFile::new(
        "footprint.toml",
        "[workers]\ncount = 2\n\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = 8080\n\
         default_action = { type = \"fixed-response\", status_code = 200, message_body = \"ok\" }\n",
    );
    let w = Weir::serving(&ns, &cfg, 8080)?;
    // Once up, nothing allocates much: the figure is steady (read it twice, 0.5 s apart, and
    // keep the smaller, so a sample taken mid-report is not what is judged).
    let first = rss_anon_kib(w.proc.pid())?;
    std::thread::sleep(Duration::from_millis(500));
    let anon = first.min(rss_anon_kib(w.proc.pid())?);
    assert!(
        anon <= BOUND_KIB,
        "the control plane holds {anon} KiB of anonymous memory once up (bound {BOUND_KIB})"
    );
    Ok(())
}
