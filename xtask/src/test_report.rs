//! `cargo test`'s failures, repeated at the end of `cargo xtask test`.
//!
//! The suite's output is long (hundreds of tests, then the fuzz run's statistics), and a CI log
//! is often read from its tail. So `cargo test` runs with its output passed through line by line
//! and watched: each failing test's name and captured output (libtest's `---- NAME stdout ----`
//! sections) and cargo's `to rerun pass …` lines are kept and printed again as the very last
//! thing the command prints.
//!
//! A failing test is run once more, alone (`retry`). If it passes then, it is reported as
//! FLAKY at the end (loudly, with the first run's output) and does not fail the suite; a test
//! that fails twice does. nextest's `--retries` does the same, but nextest runs every test of
//! every binary in parallel, which the namespace and port fixtures of the e2e tests are not
//! written for.

use std::{
    io::{BufRead as _, BufReader, Read, Write as _},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread,
};

use anyhow::{Context, bail};

/// How many lines of a failing test's captured output are repeated (its last ones: the panic).
const KEPT_LINES: usize = 40;

/// What failed, in the order it was seen.
#[derive(Default)]
pub struct Failures {
    /// `test NAME ... FAILED` lines and timeouts.
    tests: Vec<String>,
    /// Each `---- NAME stdout ----` section, its last lines.
    sections: Vec<(String, Vec<String>)>,
    /// cargo's `error: test failed, to rerun pass …` lines (one per failing test binary).
    targets: Vec<String>,
    /// Failed once, passed when run again (set by `retry`).
    flaky: Vec<String>,
    /// The section being read, if any.
    open: Option<usize>,
}

impl Failures {
    fn stdout_line(&mut self, line: &str) {
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"))
        {
            self.sections.push((name.to_string(), Vec::new()));
            self.open = Some(self.sections.len() - 1);
            return;
        }
        if line.starts_with("test ") && line.ends_with(" FAILED") {
            self.tests.push(line.to_string());
        }
        // libtest ends the captured sections with a second `failures:` list of names.
        if line == "failures:" || line.starts_with("test result: ") {
            self.open = None;
        }
        if let Some(i) = self.open {
            let kept = &mut self.sections[i].1;
            kept.push(line.to_string());
            if kept.len() > KEPT_LINES {
                kept.remove(0);
            }
        }
    }

    fn stderr_line(&mut self, line: &str) {
        if line.contains("to rerun pass") || line.contains("targets failed") {
            self.targets.push(line.trim().to_string());
        }
    }

    /// The failed tests' names (`test NAME ... FAILED`).
    fn names(&self) -> Vec<String> {
        self.tests
            .iter()
            .filter_map(|l| l.strip_prefix("test ")?.strip_suffix(" ... FAILED"))
            .map(|n| n.trim_end_matches(" - should panic").to_string())
            .collect()
    }

    /// cargo's arguments that select each failing test binary (`-p weir-tests --test e2e_x`).
    fn target_args(&self) -> Vec<Vec<String>> {
        self.targets
            .iter()
            .filter_map(|l| {
                let args = l.split("to rerun pass `").nth(1)?.split('`').next()?;
                Some(args.split_whitespace().map(str::to_string).collect())
            })
            .collect()
    }

    pub fn print(&self) {
        if self.tests.is_empty() && self.targets.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        if !self.flaky.is_empty() {
            let _ = writeln!(
                out,
                "\n======== xtask: FLAKY: failed, then passed when run again alone ========"
            );
            for t in &self.flaky {
                let _ = writeln!(out, "FLAKY {t}");
            }
        }
        let _ = writeln!(
            out,
            "\n======== xtask: what failed in `cargo test` (first run) ========"
        );
        for (name, lines) in &self.sections {
            let _ = writeln!(out, "---- {name} (last {} lines) ----", lines.len());
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
        for t in &self.tests {
            let _ = writeln!(out, "{t}");
        }
        for t in &self.targets {
            let _ = writeln!(out, "{t}");
        }
    }
}

/// Runs each failed test once more, alone, in its binary (`cargo ARGS -- NAME --exact`, with
/// `cargo` the command `cargo_test` makes). Returns whether every one of them passed; those
/// are recorded as flaky.
pub fn retry(failures: &mut Failures, cargo_test: impl Fn() -> Command) -> bool {
    let names = failures.names();
    let targets = failures.target_args();
    if names.is_empty() || targets.is_empty() {
        // A build error or a binary that failed without naming a test: nothing to retry.
        return false;
    }
    println!(
        "\nxtask: running the {} failed test(s) once more, alone",
        names.len()
    );
    let mut passed = Vec::new();
    let mut all = true;
    for name in &names {
        let mut ok = false;
        for args in &targets {
            let mut c = cargo_test();
            c.args(args).arg("--").arg(name).arg("--exact");
            let out = c.output();
            let Ok(out) = out else { continue };
            let text = String::from_utf8_lossy(&out.stdout);
            // Only the binary that holds the test runs it ("running 1 test").
            if text.contains("running 1 test") {
                ok = out.status.success() && text.contains("test result: ok. 1 passed");
                print!("{text}");
                break;
            }
        }
        if ok {
            passed.push(name.clone());
        } else {
            all = false;
        }
    }
    failures.flaky = passed;
    all
}

/// Runs `cmd` (a `cargo test`), passing its output through and watching it.
pub fn run(mut cmd: Command) -> (anyhow::Result<()>, Failures) {
    let shown = format!("{cmd:?}");
    let failures = Arc::new(Mutex::new(Failures::default()));
    let result = (|| {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {shown}"))?;
        let out = child.stdout.take().context("stdout")?;
        let err = child.stderr.take().context("stderr")?;
        let f = failures.clone();
        let t_out = thread::spawn(move || {
            pass_through(out, false, |l| {
                f.lock().expect("not poisoned").stdout_line(l)
            })
        });
        let f = failures.clone();
        let t_err = thread::spawn(move || {
            pass_through(err, true, |l| {
                f.lock().expect("not poisoned").stderr_line(l)
            })
        });
        let st = child
            .wait()
            .with_context(|| format!("waiting for {shown}"))?;
        let _ = t_out.join();
        let _ = t_err.join();
        if !st.success() {
            bail!("{shown} failed: {st}");
        }
        Ok(())
    })();
    let failures = Arc::try_unwrap(failures)
        .map(|m| m.into_inner().unwrap_or_default())
        .unwrap_or_default();
    (result, failures)
}

/// Copies `from` to our stdout or stderr line by line, handing each line to `watch`. Bytes that
/// are not UTF-8 are passed through unchanged and watched lossily.
fn pass_through(from: impl Read, to_stderr: bool, mut watch: impl FnMut(&str)) {
    let mut r = BufReader::new(from);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let _ = if to_stderr {
            std::io::stderr().lock().write_all(&buf)
        } else {
            std::io::stdout().lock().write_all(&buf)
        };
        let line = String::from_utf8_lossy(&buf);
        watch(line.trim_end_matches(['\n', '\r']));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_failing_tests_and_their_panics() {
        let mut f = Failures::default();
        for l in [
            "running 2 tests",
            "test a::ok ... ok",
            "test b::bad ... FAILED",
            "",
            "failures:",
            "",
            "---- b::bad stdout ----",
            "thread 'b::bad' panicked at src/b.rs:3:5:",
            "boom",
            "",
            "",
            "failures:",
            "    b::bad",
            "",
            "test result: FAILED. 1 passed; 1 failed",
        ] {
            f.stdout_line(l);
        }
        f.stderr_line("error: test failed, to rerun pass `-p weir-tests --test e2e_x`");
        assert_eq!(f.tests, ["test b::bad ... FAILED"]);
        assert_eq!(f.sections.len(), 1);
        assert_eq!(f.sections[0].0, "b::bad");
        assert!(f.sections[0].1.iter().any(|l| l == "boom"));
        assert!(
            !f.sections[0]
                .1
                .iter()
                .any(|l| l.contains("b::bad") && l.starts_with("    "))
        );
        assert_eq!(f.targets.len(), 1);
        assert_eq!(f.names(), ["b::bad"]);
        assert_eq!(
            f.target_args(),
            [["-p", "weir-tests", "--test", "e2e_x"]
                .map(String::from)
                .to_vec()]
        );
    }

    #[test]
    fn a_long_section_keeps_its_last_lines() {
        let mut f = Failures::default();
        f.stdout_line("---- t stdout ----");
        for i in 0..100 {
            f.stdout_line(&format!("line {i}"));
        }
        f.stdout_line("failures:");
        assert_eq!(f.sections[0].1.len(), KEPT_LINES);
        assert_eq!(f.sections[0].1.last().map(String::as_str), Some("line 99"));
    }
}
