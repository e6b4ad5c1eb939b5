//! What a fresh machine lacks, checked and installed before anything is built: the eBPF
//! toolchain (the nightly's `rust-src`, `bpf-linker` built on LLVM 22, its Debian packages) for
//! every command that builds weir, and the real tools the tests and benchmarks drive.
//!
//! Each step says what it found missing and what it runs. xtask itself depends on nothing that
//! builds eBPF, so it always starts and can explain.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The LLVM the machine's nightly is built on; bpf-linker must be built against the same one.
const LLVM: &str = "22";

/// What a command needs on the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Building weir: the eBPF toolchain.
    Build,
    /// Building weir and running the tests or benchmarks: the toolchain plus the real tools.
    Tests,
}

/// Debian packages for the eBPF toolchain: bpf-linker links against LLVM 22.
const BUILD_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
];

/// The real clients, servers and tools the tests and benchmarks drive.
const TEST_PACKAGES: &[&str] = &[
    "iproute2",
    "ethtool",
    "curl",
    "openssl",
    "python3",
    "wrk",
    "nghttp2-client",
    "haproxy",
    "nginx",
    "hping3",
    "procps",
    // e2e_privileges makes a sandboxed worker call a forbidden syscall from outside.
    "gdb",
    // prlimit, setpriv.
    "util-linux",
    // useradd, for weir's own `weir` user.
    "passwd",
    // e2e_discovery's DNS server (the binary alone: the `dnsmasq` package also starts a
    // system-wide service on port 53).
    "dnsmasq-base",
    // The HTTP/1.1 fuzz target: libfuzzer-sys builds libFuzzer with g++.
    "g++",
    // e2e_top drives `weir top` in a real terminal.
    "tmux",
    // lb-l7's h2_conformance drives weir's HTTP/2 servers with real Python clients.
    "python3-h2",
    "python3-httpx",
];

/// Checks and installs what `needs` asks for. `WEIR_SKIP_SETUP=1` skips it (a machine set up
/// some other way).
pub fn ensure(needs: Needs) -> anyhow::Result<()> {
    if std::env::var_os("WEIR_SKIP_SETUP").is_some_and(|v| v == "1") {
        return Ok(());
    }
    let mut packages: Vec<&str> = BUILD_PACKAGES.to_vec();
    if needs == Needs::Tests {
        packages.extend(TEST_PACKAGES);
    }
    debian_packages(&packages)?;
    if needs == Needs::Tests {
        // The packaged daemons are not wanted running: tests and benchmarks start their own.
        let _ = Command::new("systemctl")
            .args(["disable", "--now", "nginx", "haproxy"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    nightly_rust_src()?;
    bpf_linker()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn debian_packages(wanted: &[&str]) -> anyhow::Result<()> {
    if Command::new("dpkg-query")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        println!("xtask: not a Debian-like system (no dpkg): install by hand: {wanted:?}");
        return Ok(());
    }
    let missing: Vec<&str> = wanted.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages: {}; install them as root: apt-get install {}",
            missing.join(" "),
            missing.join(" ")
        );
    }
    println!("xtask: installing Debian packages: {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn rustup(args: &[&str]) -> Command {
    let mut c = Command::new("rustup");
    c.args(args);
    c
}

/// The eBPF object builds with the machine's nightly (LLVM 22) and its `rust-src`.
fn nightly_rust_src() -> anyhow::Result<()> {
    let version = rustup(&["run", "nightly", "rustc", "-vV"])
        .output()
        .context("running rustup")?;
    if !version.status.success() {
        println!("xtask: no nightly toolchain: installing it (rustup toolchain install nightly)");
        run(&mut rustup(&[
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    } else {
        let text = String::from_utf8_lossy(&version.stdout);
        if let Some(llvm) = text.lines().find_map(|l| l.strip_prefix("LLVM version: "))
            && !llvm.starts_with(&format!("{LLVM}."))
        {
            println!(
                "xtask: warning: the nightly's LLVM is {llvm}; bpf-linker is built on LLVM {LLVM} \
                 and an LLVM-23 nightly is known to fail to link the eBPF object"
            );
        }
    }
    let components = rustup(&["component", "list", "--installed", "--toolchain", "nightly"])
        .output()
        .context("running rustup")?;
    if !String::from_utf8_lossy(&components.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        println!("xtask: the nightly lacks rust-src: installing it");
        run(&mut rustup(&[
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

/// bpf-linker 0.13, built against the Debian LLVM 22.
fn bpf_linker() -> anyhow::Result<()> {
    let present = Command::new("bpf-linker")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!(
        "xtask: bpf-linker is missing: building it against LLVM {LLVM} (a few minutes): \
         cargo install bpf-linker --version ~0.13 --no-default-features --features llvm-{LLVM}"
    );
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args([
        "install",
        "bpf-linker",
        "--version",
        "~0.13",
        "--no-default-features",
    ])
    .args(["--features", &format!("llvm-{LLVM}")])
    .env("LLVM_PREFIX", format!("/usr/lib/llvm-{LLVM}"));
    run(&mut c)?;
    // `cargo install` puts it in ~/.cargo/bin, which a fresh shell may not have on PATH.
    if Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("bpf-linker was installed but is not on PATH: add ~/.cargo/bin to PATH");
    }
    Ok(())
}

fn run(c: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{c:?}");
    let st = c.status().with_context(|| format!("spawning {shown}"))?;
    if !st.success() {
        bail!("{shown} failed: {st}");
    }
    Ok(())
}
