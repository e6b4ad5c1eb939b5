//! A configuration without listeners (a file cut short by configuration management, the wrong
//! `--config`): legal — an XDP-only daemon needs none — but without `--iface` it serves
//! nothing, and `weir check`, `weir run` and a reload to it said nothing of it. Real binary, in
//! a network namespace. Needs root.

mod common;

use std::time::Duration;

use anyhow::{Result, bail};
use common::{logged::Weir, *};
use weir_tests::lab::{Lab, wait_until};

#[test]
fn a_configuration_without_listeners_is_warned_about() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("nolisten")?;
    let cfg = TempFile::new(
        "no-listener.toml",
        "[load_balancer]\nidle_timeout.timeout_seconds = 60\n",
    );
    let (ok, out, err) = weir_once(&ns, &["check", "--config", cfg.path()])?;
    assert!(ok, "still valid: {err}");
    assert!(out.contains("OK (0 listener(s)"), "{out}");
    assert!(out.contains("warning: no [[listener]]"), "{out}");

    let mut w = Weir::spawn(&ns, &cfg, None)?;
    wait_until(Duration::from_secs(20), "weir to start", || {
        if !w.proc.is_running() {
            bail!("weir exited:\n{}", w.log_at_exit());
        }
        Ok(w.log().contains("weir running"))
    })?;
    assert!(w.log().contains("nothing to serve"), "{}", w.log());
    drop(w);

    // A reload that removes the last listener says so.
    let cfg = TempFile::new(
        "one-listener.toml",
        "[[listener]]\naddress = \"127.0.0.1\"\nport = 8080\n\
         default_action = { type = \"fixed-response\", status_code = 200 }\n",
    );
    let w = Weir::serving(&ns, &cfg, 8080)?;
    std::fs::write(
        cfg.path(),
        "[load_balancer]\nidle_timeout.timeout_seconds = 60\n",
    )?;
    // SAFETY: plain kill(2) on a child pid we own.
    unsafe { libc::kill(w.proc.pid() as i32, libc::SIGHUP) };
    wait_until(Duration::from_secs(10), "the reload's warning", || {
        Ok(w.log().contains("this reload removes every listener"))
    })?;
    Ok(())
}
