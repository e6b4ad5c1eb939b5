//! Host sysctls weir changes are restored after a SIGKILL (issue #10 §3): `weir run` with XDP
//! (SYN cookies in auto mode) and two L7 workers changes `net.ipv4.tcp_timestamps`,
//! `tcp_syncookies` and `tcp_migrate_req` in its network namespace, recording the originals in
//! `/run/weir/sysctl-<netns inode>` first. Killed with SIGKILL, it leaves them changed; the next
//! start restores the originals (shown by a start that changes nothing, and by a full start
//! whose exit then restores the originals, not the values the killed one left). Needs root.
//!
//! `WEIR_TEST_BIN=/path/to/weir` runs another build (e.g. the one before a fix).

mod common;

use std::{path::PathBuf, time::Duration};

use anyhow::{Result, bail};
use common::{sysctl::*, *};
use weir_tests::lab::{Iface, Lab, Ns, Proc, wait_until};

const VIP: &str = "10.78.0.2";
const PORT: u16 = 8080;
/// The whole of weir (XDP on `iface`, two workers), once it has changed all three sysctls.
fn start_full(ns: &Ns, iface: &Iface, cfg: &TempFile) -> Result<Proc> {
    let mut p = start(ns, &["--iface", iface.name(), "--config", cfg.path()])?;
    wait_until(
        Duration::from_secs(20),
        "weir to change the sysctls",
        || {
            if !p.is_running() {
                bail!("weir exited");
            }
            Ok(values(ns)? == CHANGED && xdp_attached(iface)?)
        },
    )?;
    Ok(p)
}

#[test]
fn sysctls_left_by_a_sigkilled_weir_are_restored_by_the_next_start() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let client = lab.add_ns("sysc")?;
    let server = lab.add_ns("syss")?;
    let (_c0, s0) = lab.veth(&client, &server)?;
    s0.addr(&format!("{VIP}/24"))?;
    set_original(&server)?;
    let cfg = TempFile::new(
        "sysctl.toml",
        &format!(
            "[[vip]]\naddress = \"{VIP}\"\nport = {PORT}\n\n[workers]\ncount = 2\n\n\
             [load_balancer]\nmax_connections_per_worker = 1000\n\n\
             [[listener]]\naddress = \"{VIP}\"\nport = {PORT}\nprotocol = \"HTTP\"\n\
             default_action = {{ type = \"fixed-response\", status_code = 200 }}\n"
        ),
    );
    let inode = netns_inode(&server)?;
    let record = PathBuf::from(format!("/run/weir/sysctl-{inode}"));

    // 1. Killed: the sysctls stay changed, the record of the originals stays.
    let mut w = start_full(&server, &s0, &cfg)?;
    assert!(
        record.exists(),
        "{} written before the changes",
        record.display()
    );
    w.kill()?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(values(&server)?, CHANGED, "SIGKILL runs no cleanup");
    assert!(record.exists());

    // 2. A start that changes nothing (no interface, no workers) restores them at once.
    let mut quiet = start(&server, &["--no-l7", "--config", cfg.path()])?;
    wait_values(&server, ORIGINAL, "the next start to restore the originals")?;
    assert!(!record.exists(), "the record is removed once restored");
    // The restore comes first in its start: give it time to install its signal handlers.
    std::thread::sleep(Duration::from_secs(1));
    assert!(interrupt(&mut quiet)?);
    assert_eq!(values(&server)?, ORIGINAL);

    // 3. Killed again, then a full start: it changes them again, and its exit puts back the
    //    originals, not the values the killed weir left.
    let mut w = start_full(&server, &s0, &cfg)?;
    w.kill()?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(values(&server)?, CHANGED);
    let mut w = start_full(&server, &s0, &cfg)?;
    // The values were already the changed ones: let it finish starting (workers up).
    std::thread::sleep(Duration::from_secs(2));
    assert!(w.is_running());
    assert!(interrupt(&mut w)?);
    assert_eq!(
        values(&server)?,
        ORIGINAL,
        "the originals after a clean exit"
    );
    assert!(!record.exists(), "a clean exit removes the record");
    Ok(())
}
