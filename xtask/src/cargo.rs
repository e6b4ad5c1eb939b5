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

/// Becomes `target/release/weir ARGS`: the same process (`cargo run` execs xtask, xtask execs
/// weir), so whatever signals the pid of `cargo xtask run` — Ctrl-C, `kill -TERM`, `timeout`, a
/// supervisor — signals weir itself, and nothing is left behind when it exits.
pub fn exec_weir(args: &[String]) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let bin = target_dir().join("release/weir");
    let err = Command::new(&bin).args(args).exec();
    Err(err).with_context(|| format!("exec {}", bin.display()))
}

/// Becomes `cargo run -p xtask --features lab -- ARGS` (see `main::with_lab`).
#[cfg(not(feature = "lab"))]
pub fn exec_xtask_with_lab(args: &[String]) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let mut c = cargo();
    c.args([
        "run",
        "--quiet",
        "--package",
        "xtask",
        "--features",
        "lab",
        "--",
    ])
    .args(args);
    let err = c.exec();
    Err(err).context("exec cargo run -p xtask --features lab")
}

/// The whole suite: every default workspace member's unit, fixture and integration tests,
/// then the HTTP/1.1 pipeline's fuzz target for a bounded time (`fuzz`; not with a filter).
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
    let (mut tests, mut failures) = crate::test_report::run(c);
    if tests.is_err()
        && crate::test_report::retry(&mut failures, || {
            let mut c = cargo();
            c.arg("test");
            c
        })
    {
        tests = Ok(());
    }
    let fuzzed = if rest.is_empty() {
        fuzz(fuzz_seconds()?)
    } else {
        Ok(())
    };
    // Last, after the fuzz run's long output: a CI log is often read from its tail only.
    failures.print();
    tests.and(fuzzed)
}

/// What a clean clone's suite writes under the target directory (debug build with line
/// tables, no incremental cache, as `.ci/run` runs it: 4.8–5.1 GB measured after whole runs),
/// with room to spare.
const SUITE_DISK_BYTES: u64 = 6 << 30;

/// Says so, before anything is installed or built, when the target directory's file system has
/// less free space than the suite writes: otherwise the first sign is a linker's "No space left
/// on device" minutes into the build.
pub fn warn_if_short_of_disk() {
    let dir = target_dir();
    let probe = dir
        .ancestors()
        .find(|p| p.exists())
        .map_or_else(root, PathBuf::from);
    let Ok(st) = nix::sys::statvfs::statvfs(&probe) else {
        return;
    };
    let free = st.blocks_available() * st.fragment_size();
    if free < SUITE_DISK_BYTES {
        eprintln!(
            "xtask: WARNING: {:.2} GiB free under {}; the suite's build writes about {} GiB there",
            free as f64 / f64::from(1u32 << 30),
            probe.display(),
            SUITE_DISK_BYTES >> 30
        );
    }
}

/// The fuzz run's length: `WEIR_FUZZ_SECONDS` (0 skips it), 45 s by default.
fn fuzz_seconds() -> anyhow::Result<u64> {
    match std::env::var("WEIR_FUZZ_SECONDS") {
        Err(_) => Ok(45),
        Ok(v) => v
            .parse()
            .with_context(|| format!("WEIR_FUZZ_SECONDS={v:?} is not a number of seconds")),
    }
}

/// Runs `lb-l7/fuzz`'s coverage-guided target `h1_pipeline` (cargo-fuzz, libFuzzer) for
/// `seconds`, from the committed seeds plus the corpus earlier runs kept, with the HTTP
/// dictionary. cargo-fuzz needs the nightly toolchain; it is installed when missing.
pub fn fuzz(seconds: u64) -> anyhow::Result<()> {
    if seconds == 0 {
        println!("xtask: fuzzing skipped (WEIR_FUZZ_SECONDS=0)");
        return Ok(());
    }
    let has_fuzz = nightly(&["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_fuzz {
        println!("xtask: cargo-fuzz is missing: installing it (cargo install cargo-fuzz --locked)");
        let mut i = cargo();
        i.args(["install", "cargo-fuzz", "--locked"]);
        status(i)?;
    }
    let dir = root().join("lb-l7");
    std::fs::create_dir_all(dir.join("fuzz/corpus/h1_pipeline"))?;
    println!("xtask: fuzzing the HTTP/1.1 pipeline for {seconds} s (lb-l7/fuzz, h1_pipeline)");
    let max_time = format!("-max_total_time={seconds}");
    let mut f = nightly(&[
        "fuzz",
        "run",
        "--sanitizer",
        "none",
        "h1_pipeline",
        "fuzz/corpus/h1_pipeline",
        "fuzz/seeds",
        "--",
        &max_time,
        "-dict=fuzz/h1.dict",
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
    ]);
    f.current_dir(dir);
    status(f)
}

/// `cargo ARGS` with the nightly toolchain (through rustup, which the machine's nightly is
/// installed with).
fn nightly(args: &[&str]) -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", "nightly", "cargo"]).args(args);
    // `cargo xtask` runs under the stable toolchain's cargo, which set these for it; cargo-fuzz
    // would build with that cargo and rustc.
    c.env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    c.current_dir(root());
    c
}
