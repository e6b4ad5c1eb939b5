//! Shared by the integration tests: finding and running the real `weir` binary in a lab.

#![allow(dead_code)]

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use weir_tests::lab::{Iface, Ns, Proc, wait_until};

pub mod http;
pub mod logged;
pub mod sysctl;

/// `target/<profile>/weir`, built by the same `cargo test` that built this test.
pub fn weir_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps/..");
    let bin = dir.join("weir");
    assert!(
        bin.exists(),
        "{} missing: `cargo xtask test` builds it before the tests (or `cargo build -p lb-userspace`)",
        bin.display()
    );
    bin
}

/// Writes `text` to a config file that lives as long as the returned guard.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str, text: &str) -> TempFile {
        Self::with_bytes(name, text.as_bytes())
    }

    pub fn with_bytes(name: &str, bytes: &[u8]) -> TempFile {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("weir-test-{}-{n}-{name}", std::process::id()));
        std::fs::write(&path, bytes).expect("write temp file");
        TempFile(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `weir` in `ns`'s network namespace but the host's mount namespace (`nsenter --net`, not
/// `ip netns exec`, which remounts /sys): its pins in /sys/fs/bpf are then the ones `weir stats`
/// sees, as on a host where weir runs in the root namespace.
pub fn weir_command(ns: &Ns) -> Command {
    weir_command_of(ns, weir_bin())
}

/// The `weir` binary `WEIR_TEST_BIN=/path/to/weir` names (another build, e.g. the one before a
/// fix), else [`weir_bin`].
pub fn weir_test_bin() -> PathBuf {
    std::env::var_os("WEIR_TEST_BIN").map_or_else(weir_bin, PathBuf::from)
}

/// [`weir_command`] running [`weir_test_bin`]: for the tests that offer `WEIR_TEST_BIN`.
pub fn weir_test_command(ns: &Ns) -> Command {
    weir_command_of(ns, weir_test_bin())
}

fn weir_command_of(ns: &Ns, bin: PathBuf) -> Command {
    let mut c = Command::new("nsenter");
    if let Some(netns) = ns.netns() {
        c.arg(format!("--net=/run/netns/{netns}"));
    }
    c.arg("--").arg(bin);
    c
}

/// Runs `weir ARGS` in `ns` to completion (bounded), returning (success, stdout, stderr).
pub fn weir_once(ns: &Ns, args: &[&str]) -> Result<(bool, String, String)> {
    command_once(weir_command(ns), args)
}

/// Runs command `c` with `args` to completion (bounded: 30 s), returning (success, stdout,
/// stderr).
pub fn command_once(mut c: std::process::Command, args: &[&str]) -> Result<(bool, String, String)> {
    c.args(args).stdin(Stdio::null());
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(30))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `weir run` in `ns`, returned once XDP is attached to `iface`.
pub fn start_weir(ns: &Ns, iface: &Iface, args: &[&str]) -> Result<Proc> {
    let mut c = weir_command(ns);
    c.arg("run").arg("--iface").arg(iface.name()).args(args);
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut p = ns.spawn_command(c)?;
    wait_until(Duration::from_secs(20), "weir to attach XDP", || {
        if !p.is_running() {
            bail!("weir exited before attaching");
        }
        xdp_attached(iface)
    })?;
    Ok(p)
}

/// Whether `iface` has an XDP program (per `ip -d link show`).
pub fn xdp_attached(iface: &Iface) -> Result<bool> {
    let shown = iface.show().context("ip link show")?;
    Ok(shown.contains("prog/xdp"))
}

/// Sends SIGINT to `p` and waits (≤ 10 s) for it to exit; returns whether it exited cleanly.
pub fn interrupt(p: &mut Proc) -> Result<bool> {
    // SAFETY: plain kill(2) on a child pid we own.
    unsafe { libc::kill(p.pid() as i32, libc::SIGINT) };
    match p.wait_timeout(Duration::from_secs(10))? {
        Some(st) => Ok(st.success()),
        None => bail!("weir did not exit within 10 s of SIGINT"),
    }
}

/// `weir stats --json --iface IFACE` in `ns`, parsed.
pub fn stats(ns: &Ns, iface: &Iface) -> Result<serde_json::Value> {
    let (ok, out, err) = weir_once(
        ns,
        &[
            "stats",
            "--json",
            "--interval",
            "0",
            "--iface",
            iface.name(),
        ],
    )?;
    if !ok {
        bail!("weir stats failed: {err}");
    }
    Ok(serde_json::from_str(&out)?)
}

pub fn packets(stats: &serde_json::Value, stat: &str) -> u64 {
    stats["stats"][stat]["packets"].as_u64().unwrap_or(0)
}

/// pid of each `weir worker --index i … <marker> …` process (one argument equal to `marker`,
/// e.g. the config path), by index, from /proc.
pub fn worker_pids(marker: &str) -> std::collections::HashMap<usize, i32> {
    let mut out = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.get(1).map(String::as_str) == Some("worker")
            && args.iter().any(|a| a == marker)
            && let Some(i) = args
                .iter()
                .position(|a| a == "--index")
                .and_then(|i| args.get(i + 1))
            && let Ok(i) = i.parse()
        {
            out.insert(i, pid);
        }
    }
    out
}

/// A directory removed, with what is in it, on drop.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `curl` of `url` from `client` (≤ 10 s): (HTTP code, connect seconds, bytes received);
/// 0 and NaN stand for what curl did not report.
pub fn curl_timing(client: &Ns, url: &str) -> Result<(u16, f64, u64)> {
    let mut c = client.command("curl");
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "--max-time",
        "10",
        "-w",
        "%{http_code} %{time_connect} %{size_download}",
        url,
    ]);
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(15))?;
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    let mut w = s.split_whitespace();
    let code = w.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let connect = w.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    let size = w.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok((code, connect, size))
}

/// A throwaway self-signed RSA certificate for `CN=weir.test` (valid one day), written by
/// `openssl` to `dir/cert.pem` with its key in `dir/key.pem`: (certificate, key).
pub fn self_signed_cert(dir: &std::path::Path) -> Result<(PathBuf, PathBuf)> {
    self_signed_cert_with(dir, &["-newkey", "rsa:2048"])
}

/// [`self_signed_cert`] with `openssl req` arguments `key_args` choosing the key instead of
/// RSA, e.g. `["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]`.
pub fn self_signed_cert_with(
    dir: &std::path::Path,
    key_args: &[&str],
) -> Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509"])
        .args(key_args)
        .args(["-nodes", "-days", "1", "-subj", "/CN=weir.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()?;
    if !out.status.success() {
        bail!("openssl: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok((cert, key))
}

/// The health state file of `ns`'s L7-only daemon: `/run/weir/health-<netns inode>.json` (a
/// `weir run --iface IF` daemon's is [`iface_file`]`(ns, IF, ".health.json")`).
pub fn health_state_file(ns: &Ns) -> Result<PathBuf> {
    let inode = netns_inode(ns)?;
    Ok(format!("/run/weir/health-{inode}.json").into())
}

/// The inode of `ns`'s network namespace: what weir names its per-namespace files after.
pub fn netns_inode(ns: &Ns) -> Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let netns = ns.netns().context("a lab namespace")?;
    Ok(std::fs::metadata(format!("/run/netns/{netns}"))?.ino())
}

/// The stem weir names the files of the daemon on `iface` of `ns` by: `<iface>:<netns inode>`.
pub fn iface_stem(ns: &Ns, iface: &str) -> Result<String> {
    Ok(lb_userspace::iface_id::IfaceId::in_netns(iface, netns_inode(ns)?).stem())
}

/// `/run/weir/<iface>:<netns inode><suffix>`: the daemon on `iface` of `ns`'s lock (`.lock`),
/// note (`.note`), admin socket (`.sock`), health file (`.health.json`).
pub fn iface_file(ns: &Ns, iface: &str, suffix: &str) -> Result<PathBuf> {
    Ok(format!("/run/weir/{}{suffix}", iface_stem(ns, iface)?).into())
}

/// The pin directory of the daemon on `iface` of `ns`.
pub fn pin_dir(ns: &Ns, iface: &str) -> Result<PathBuf> {
    Ok(format!("/sys/fs/bpf/weir/{}", iface_stem(ns, iface)?).into())
}

/// The health view (ALB's describe-target-health per group), as the control plane wrote it.
pub fn health_view(ns: &Ns) -> Result<serde_json::Value> {
    let p = health_state_file(ns)?;
    let text = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    Ok(serde_json::from_slice(&text)?)
}

/// The UTC time of day, in seconds, of a tracing line (`2026-…T01:02:03.456789Z …`).
pub fn time_of_day(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?.split('T').nth(1)?;
    let t = t.strip_suffix('Z')?;
    let mut p = t.split(':');
    let (h, m, s): (f64, f64, f64) = (
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
    );
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Splits an access-log line into fields: spaces separate, `"…"` (with `\"` and `\\`) groups.
/// `None` when a quote is left open or something follows a closing quote.
pub fn access_log_fields(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while chars.peek().is_some() {
        let mut f = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => f.push(chars.next()?),
                    '"' => break,
                    c => f.push(c),
                }
            }
            if !matches!(chars.next(), None | Some(' ')) {
                return None;
            }
        } else {
            for c in chars.by_ref() {
                if c == ' ' {
                    break;
                }
                f.push(c);
            }
        }
        out.push(f);
    }
    Some(out)
}
