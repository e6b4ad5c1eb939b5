//! `cargo xtask bench NAME`: each benchmark measures weir beside its baseline in the same run,
//! prints a table with the ratio, and writes `target/bench/NAME.json`.

mod pps;
mod report;
mod steer;
mod synflood;
mod xdp;

pub use xdp::flag;

use anyhow::bail;

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
        other => bail!("no benchmark `{other}` (cargo xtask bench list)"),
    }
}
