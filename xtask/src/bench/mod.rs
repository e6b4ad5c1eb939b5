//! `cargo xtask bench NAME`: each benchmark measures weir beside its baseline in the same run,
//! prints a table with the ratio, and writes `target/bench/NAME.json` (with the machine it ran
//! on). `bench all` runs them all and writes `target/bench/REPORT.md` (`crate::bench_report`).

mod all;
mod pps;
pub mod report;
mod steer;
mod synflood;
mod xdp;

pub use xdp::flag;

use anyhow::bail;
use aya::programs::ProgramError;

/// Whether a live-frames `BPF_PROG_RUN` failed because the kernel refuses live frames: the
/// packet generators of `pps` and `synflood` transmit with `BPF_F_TEST_XDP_LIVE_FRAMES`, which a
/// locked-down kernel refuses (`EPERM`, seen on 6.18 with lockdown in integrity mode).
fn live_frames_refused(e: &ProgramError) -> bool {
    matches!(e, ProgramError::SyscallError(s)
        if s.io_error.raw_os_error() == Some(nix::errno::Errno::EPERM as i32))
}

/// `struct xdp_md` for a live-frames run: transmit out of `ifindex`.
pub(super) fn live_ctx(frame_len: usize, ifindex: u32) -> Vec<u8> {
    let md: [u32; 6] = [0, frame_len as u32, 0, ifindex, 0, 0];
    md.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

/// A live-frames `BPF_PROG_RUN`'s error, saying what a refusal means.
fn live_frames_error(e: ProgramError) -> anyhow::Error {
    if live_frames_refused(&e) {
        anyhow::anyhow!(
            "the kernel refuses BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES (EPERM, as root: a \
             locked-down kernel does; see /sys/kernel/security/lockdown), and this benchmark's \
             packet generator needs it: run it on a kernel without lockdown"
        )
    } else {
        anyhow::Error::new(e).context("BPF_PROG_RUN live frames")
    }
}

const LIST: &[(&str, &str)] = &[
    (
        "xdp",
        "ns/packet per XDP path through BPF_PROG_TEST_RUN, beside a bare XDP_PASS program",
    ),
    (
        "pps",
        "packets/s through a veth from a live-frames generator: weir vs a bare XDP_DROP",
    ),
    (
        "steer",
        "new connections/s with Maglev steering vs the kernel's SO_REUSEPORT hash",
    ),
    (
        "synflood",
        "spoofed SYN flood: kernel-only cookies vs weir's XDP cookies; SYN path ns in TestRun",
    ),
    (
        "http",
        "L7 req/s and latency: weir vs HAProxy and nginx, one worker on one core",
    ),
    (
        "all",
        "every benchmark above, then target/bench/REPORT.md with charts (--quick, --report-only)",
    ),
    (
        "report",
        "target/bench/REPORT.md and its charts from the JSON results present",
    ),
];

pub fn run(name: &str, args: &[String]) -> anyhow::Result<()> {
    match name {
        "list" => {
            for (n, what) in LIST {
                println!("{n:<8} {what}");
            }
            Ok(())
        }
        "xdp" => xdp::run(args),
        "pps" => pps::run(args),
        "steer" => steer::run(args),
        "synflood" => synflood::run(args),
        "http" => crate::bench_http::run(args),
        "all" => all::run(args),
        "report" => crate::bench_report::run(args),
        other => bail!("no benchmark `{other}` (cargo xtask bench list)"),
    }
}
