//! The CLI writing into a pipe whose reader is gone (`weir targets health | head -1`): weir ends
//! quietly with status 141, as a coreutils tool killed by SIGPIPE shows in the shell. It
//! panicked (`failed printing to stdout: Broken pipe`) with a backtrace. A real pipe, its read
//! end closed before weir writes; no daemon, no root needed.

mod common;

use std::{os::unix::process::ExitStatusExt as _, process::Stdio};

use anyhow::Result;
use common::*;

/// `weir ARGS` with stdout a pipe nobody reads: (exit code, signal, stderr).
fn into_closed_pipe(args: &[&str]) -> Result<(Option<i32>, Option<i32>, String)> {
    let (read, write) = nix::unistd::pipe()?;
    drop(read);
    let mut c = std::process::Command::new(weir_test_bin());
    c.args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped());
    // `output` keeps the stdout given (`lab::output` would make it a pipe of its own).
    let out = c.output()?;
    Ok((
        out.status.code(),
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() -> Result<()> {
    let cfg = TempFile::new(
        "pipe.toml",
        "[[listener]]\nport = 19590\ndefault_action = { type = \"fixed-response\", status_code = 200 }\n",
    );
    for args in [
        vec!["check", "--config", cfg.path()],
        // No listener: two lines (the second a warning).
        vec!["check", "--config", "/dev/null"],
        vec!["check"],
    ] {
        let (code, signal, err) = into_closed_pipe(&args)?;
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
        assert!(
            code == Some(141) || signal == Some(libc::SIGPIPE),
            "{args:?}: exit {code:?}, signal {signal:?}: {err}"
        );
        assert!(err.is_empty(), "{args:?}: quietly: {err}");
    }
    Ok(())
}
