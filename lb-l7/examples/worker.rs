//! Runs one L7 worker from a weir TOML file, until SIGINT/SIGTERM.
//!
//! `cargo run -p lb-l7 --release --example worker -- CONFIG.toml [--threads N]`
//!
//! The L4 keys of a weir file (`xdp`, `vip`, `deny`) are ignored. `--threads 1` (default) runs
//! a single-threaded runtime: one worker on one core, as `cargo xtask bench http` measures it.

use lb_l7::{L7Config, Worker, WorkerOptions};

// glibc malloc costs ~10 % of a proxied request; mimalloc much less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        anyhow::bail!("usage: worker CONFIG.toml [--threads N]");
    };
    let threads: usize = match args.iter().position(|a| a == "--threads") {
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(1),
        None => 1,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let text = std::fs::read_to_string(path)?;
    let mut table: toml::Table = toml::from_str(&text)?;
    for l4 in ["xdp", "vip", "deny"] {
        table.remove(l4);
    }
    let config: L7Config = table.try_into()?;
    let errors = config.validate();
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{path}: {e}");
        }
        std::process::exit(2);
    }
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    rt.block_on(async move {
        let worker = Worker::bind(Arc::new(config), WorkerOptions::default())?;
        for a in worker.local_addrs() {
            eprintln!("weir l7 worker listening on {a}");
        }
        worker
            .serve(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            })
            .await
    })
}
