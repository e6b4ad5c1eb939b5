//! The host sysctls weir changes in its network namespace (issue #10 §3), for the tests of their
//! restore: which ones, their values before and under weir, and a `weir run` to change them.

use std::{process::Stdio, time::Duration};

use anyhow::Result;
use weir_tests::lab::{Ns, Proc, wait_until};

use super::weir_test_command;

/// The sysctls `weir run` with XDP (SYN cookies in auto mode) and L7 workers changes.
pub const KEYS: [&str; 3] = [
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_migrate_req",
];
/// What the namespace has before weir, chosen so weir changes each of them.
pub const ORIGINAL: [&str; 3] = ["1", "0", "0"];
/// What weir sets.
pub const CHANGED: [&str; 3] = ["2", "1", "1"];

/// Sets [`KEYS`] in `ns` to [`ORIGINAL`].
pub fn set_original(ns: &Ns) -> Result<()> {
    for (k, v) in KEYS.iter().zip(ORIGINAL) {
        ns.sysctl(k, v)?;
    }
    Ok(())
}

/// The values of [`KEYS`] in `ns`.
pub fn values(ns: &Ns) -> Result<Vec<String>> {
    KEYS.iter().map(|k| ns.sysctl_get(k)).collect()
}

/// Waits (≤ 20 s) for [`values`] in `ns` to be `want`.
pub fn wait_values(ns: &Ns, want: [&str; 3], what: &str) -> Result<()> {
    wait_until(Duration::from_secs(20), what, || Ok(values(ns)? == want))
}

/// `weir run ARGS` in `ns` (the `WEIR_TEST_BIN` build if set); stderr to the test's.
pub fn start(ns: &Ns, args: &[&str]) -> Result<Proc> {
    let mut c = weir_test_command(ns);
    c.arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    ns.spawn_command(c)
}
