//! `weir stats` while a daemon runs without the XDP tier: it says so (and where the L7 figures
//! are), not that no daemon runs. The daemon here is a stand-in whose command line is a
//! daemon's (`weir run`, as `/proc` shows it), on no default admin socket: what a daemon
//! started with `[admin] socket` elsewhere looks like.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

#[test]
fn stats_names_a_daemon_running_without_xdp() {
    if std::fs::read_dir("/sys/fs/bpf/weir").is_ok_and(|mut d| d.next().is_some()) {
        eprintln!("skipped: an XDP daemon has pins here (`weir stats` shows them)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("weir-stats-l7-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("run"), "sleep 30\n").unwrap();
    // argv: `weir run` (a shell running the script `run`).
    let mut fake = Command::new("/bin/sh")
        .arg0("weir")
        .arg("run")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .spawn()
        .expect("/bin/sh");
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["stats", "--interval", "0"])
        .output()
        .unwrap();
    let _ = fake.kill();
    let _ = fake.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("weir is running without the XDP tier"),
        "{err}"
    );
    assert!(
        err.contains(&fake.id().to_string()),
        "the daemon's pid: {err}"
    );
    assert!(!err.contains("no weir daemon is running"), "{err}");
}
