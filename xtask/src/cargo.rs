//! Running cargo and the built binaries.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

pub fn status(mut cmd: Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let st = cmd.status().with_context(|| format!("spawning {shown}"))?;
    if !st.success() {
        bail!("{shown} failed: {st}");
    }
    Ok(())
}

pub fn build_release(args: &[&str]) -> anyhow::Result<()> {
    let mut c = cargo();
    c.args(["build", "--release"]).args(args);
    status(c)
}

/// Replaces nothing: runs `target/release/weir ARGS`, forwarding Ctrl-C (same process group).
pub fn exec_weir(args: &[String]) -> anyhow::Result<()> {
    let bin = target_dir().join("release/weir");
    let mut c = Command::new(&bin);
    c.args(args).stdin(Stdio::inherit());
    status(c)
}

/// The whole suite: every default workspace member's unit, fixture and integration tests.
/// The integration tests run the real `weir` binary, which `cargo test` does not build by itself
/// (lb-userspace has no tests/ of its own), so it is built first, with the same profile.
pub fn test(rest: &[String]) -> anyhow::Result<()> {
    let mut b = cargo();
    b.args(["build", "-p", "lb-userspace", "--bin", "weir"]);
    status(b)?;
    let mut c = cargo();
    c.arg("test").arg("--no-fail-fast");
    if !rest.is_empty() {
        c.arg("--").args(rest);
    }
    status(c)
}
