//! A second `weir run` started on a listener another daemon serves — the operator's "start the
//! new one, then roll back" mistake. Its SO_REUSEPORT sockets joined the first daemon's group:
//! it took every new connection, and its steering program replaced the first one's, so once it
//! exited the first daemon refused every connection until restarted (`weir status` said all
//! was well). The second start now fails, naming the port, and the first serves throughout.
//! Real binary, L7 only, in a network namespace. Needs root.

mod common;

use std::time::Duration;

use anyhow::{Result, bail};
use common::{logged::Weir, *};
use weir_tests::lab::{Lab, Ns};

fn config(dir: &TempDir, name: &str, body: &str) -> TempFile {
    TempFile::new(
        &format!("second-{name}.toml"),
        &format!(
            "[workers]\ncount = 2\n\n\
             [admin]\nsocket = \"{}/{name}.sock\"\n\n\
             [[listener]]\naddress = \"127.0.0.1\"\nport = 8080\n\
             default_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"{body}\" }}\n",
            dir.0.display()
        ),
    )
}

/// Five new connections' answers.
fn answers(ns: &Ns) -> Result<Vec<String>> {
    (0..5)
        .map(|_| {
            ns.exec(&["curl", "-s", "--max-time", "2", "http://127.0.0.1:8080/"])
                .or_else(|e| Ok(format!("failed: {e}")))
        })
        .collect()
}

#[test]
fn a_second_daemon_on_a_served_listener_refuses_to_start() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("second")?;
    let dir = TempDir(std::env::temp_dir().join(format!("weir-second-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let (first_cfg, second_cfg) = (
        config(&dir, "first", "first"),
        config(&dir, "second", "second"),
    );
    let mut first = Weir::serving(&ns, &first_cfg, 8080)?;
    assert_eq!(answers(&ns)?, vec!["first"; 5]);

    let mut second = Weir::spawn(&ns, &second_cfg, None)?;
    let (status, log) = match second.exited(Duration::from_secs(20)) {
        Ok(x) => x,
        Err(e) => {
            let during = answers(&ns)?;
            bail!("the second weir did not exit ({e}); new connections went to: {during:?}");
        }
    };
    assert!(!status.success(), "the second weir exited 0:\n{log}");
    assert!(
        log.contains("127.0.0.1:8080 is in use") && log.contains("another weir daemon"),
        "the second weir says why:\n{log}"
    );
    // The first daemon serves on, its steering intact.
    assert_eq!(answers(&ns)?, vec!["first"; 5]);
    assert!(first.proc.is_running());
    Ok(())
}
