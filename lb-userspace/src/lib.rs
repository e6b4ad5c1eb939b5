//! The `weir` binary's library: everything but `main`, so tests and benchmarks reuse it.

pub mod admin;
pub mod alloc;
pub mod cli;
pub mod config;
pub mod conn_cap;
pub mod discovery;
pub mod health;
pub mod l7;
pub mod metrics;
pub mod notify;
pub mod overlay;
pub mod proc_stat;
pub mod reload;
pub mod run;
pub mod run_dir;
pub mod stats;
pub mod sysctl;
pub mod top;
pub mod workers;
pub mod xdp;

/// The compiled XDP object, built by build.rs from `lb-ebpf`.
pub static XDP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/weir-xdp"));

/// Benchmark-only programs (`bare_pass`, `bare_drop`, `gen_tx`), built with the XDP object.
pub static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/weir-bench"));

/// The SK_REUSEPORT steering program (`weir_steer`), built with the XDP object.
pub static STEER_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/weir-steer"));
