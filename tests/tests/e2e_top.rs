//! `weir top` against a live weir (XDP on a veth, two workers, a python3 target) after a known
//! number of requests: `--once` prints the live numbers as plain text (the listener's and the
//! target's request counts equal what was sent); the interactive view under a real terminal
//! (tmux, 80×24) refreshes, shows the numbers, and `q` (then Ctrl-C, then SIGTERM) ends it with
//! status 0 and the terminal restored (tmux's alternate screen off again). Needs root and tmux.

mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use common::*;
use weir_tests::lab::{Iface, Lab, Ns, wait_until};

const VIP: &str = "10.93.0.1";
const PORT: u16 = 8080;
const TARGET_PORT: u16 = 9311;

fn config() -> String {
    format!(
        "[xdp]\nstats_interval_seconds = 0\n\n[workers]\ncount = 2\n\n\
         [[listener]]\naddress = \"0.0.0.0\"\nport = {PORT}\n\
         default_action = {{ type = \"forward\", target_group = \"web\" }}\n\n\
         [[target_group]]\nname = \"web\"\n\
         target = [{{ id = \"127.0.0.1\", port = {TARGET_PORT} }}]\n\
         health_check = {{ path = \"/\", interval_seconds = 5, timeout_seconds = 2, \
         healthy_threshold_count = 2, unhealthy_threshold_count = 2 }}\n"
    )
}

/// `n` requests from the client (one curl, URL globbing): the status codes seen.
fn send(client: &Ns, n: usize) -> Result<Vec<String>> {
    let url = format!("http://{VIP}:{PORT}/?n=[1-{n}]");
    let mut c = client.command("curl");
    c.args([
        "-s",
        "-m",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}\\n",
        &url,
    ]);
    // -o applies to the first URL only: the other bodies go to stdout, so keep the codes.
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(60))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.len() == 3 && l.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
        .collect())
}

/// The whitespace-separated fields of the first line starting with `prefix`.
fn row(screen: &str, prefix: &str) -> Option<Vec<String>> {
    screen
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
}

/// What the pane's shell prints once `weir top` has exited.
const EXITED: &str = "weir-top-exited";

/// A tmux server of this test's own (`-L`), killed on drop.
struct Tmux(String);

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.0]);
        c
    }
    fn run(&self, args: &[&str]) -> Result<String> {
        let out = weir_tests::lab::output(self.cmd().args(args), Duration::from_secs(10))?;
        ensure!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
    fn screen(&self) -> Result<String> {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }
    fn alternate_on(&self) -> Result<bool> {
        Ok(self
            .run(&["display-message", "-p", "-t", "top", "#{alternate_on}"])?
            .trim()
            == "1")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").stderr(Stdio::null()).status();
    }
}

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `weir top` under tmux (80×24) until `key` ends it; returns the screen seen while it ran
/// (once it shows `want`) and its exit status.
fn interactive(
    lb: &Ns,
    iface: &Iface,
    key: &str,
    want: &dyn Fn(&str) -> bool,
) -> Result<(String, i32)> {
    let tmux = Tmux(format!("weir-top-{}-{key}", std::process::id()));
    let status_file = std::env::temp_dir().join(format!(
        "weir-top-{}-{}.status",
        std::process::id(),
        key.replace('-', "")
    ));
    let _ = std::fs::remove_file(&status_file);
    let netns = lb.netns().context("lab namespace")?;
    // The pane's shell writes top's exit status and a line after it ([`EXITED`]), then stays so
    // the screen can be read after.
    let script = format!(
        "nsenter --net=/run/netns/{netns} -- {} top --iface {} --interval 0.5; echo $? > {}; echo {EXITED}; sleep 30",
        weir_bin().display(),
        iface.name(),
        status_file.display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "80",
        "-y",
        "24",
        "sh",
        "-c",
        &script,
    ])?;
    let mut screen = String::new();
    wait_until(Duration::from_secs(20), "weir top's screen", || {
        screen = tmux.screen()?;
        Ok(want(&screen))
    })
    .with_context(|| format!("last screen:\n{screen}"))?;
    ensure!(
        tmux.alternate_on()?,
        "weir top is not on the alternate screen"
    );
    match key {
        // SIGTERM to weir top itself (the pane's shell waits for it).
        "SIGTERM" => {
            let pid = tmux
                .run(&["display-message", "-p", "-t", "top", "#{pane_pid}"])?
                .trim()
                .to_string();
            let children = weir_tests::lab::output(
                Command::new("pgrep").args(["-P", &pid]),
                Duration::from_secs(5),
            )?;
            let top = String::from_utf8_lossy(&children.stdout)
                .split_whitespace()
                .next()
                .context("weir top's pid")?
                .parse::<i32>()?;
            // SAFETY: kill(2) on a process of this test.
            unsafe { libc::kill(top, libc::SIGTERM) };
        }
        key => {
            tmux.run(&["send-keys", "-t", "top", key])?;
        }
    }
    let t0 = Instant::now();
    let code = loop {
        if let Ok(s) = std::fs::read_to_string(&status_file)
            && !s.trim().is_empty()
        {
            break s.trim().parse::<i32>()?;
        }
        if t0.elapsed() > Duration::from_secs(5) {
            bail!(
                "weir top did not exit within 5 s of {key}:\n{}",
                tmux.screen()?
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_file(&status_file);
    // What top wrote as it exited (leaving the alternate screen) reaches tmux through the pane's
    // terminal, which tmux may not have read yet when the status is in the file: the shell's
    // line after it on the screen says tmux has read all of top's.
    wait_until(Duration::from_secs(5), "the pane's shell after top", || {
        Ok(tmux.screen()?.contains(EXITED))
    })?;
    ensure!(
        !tmux.alternate_on()?,
        "the terminal was left on the alternate screen"
    );
    Ok((screen, code))
}

#[test]
fn top_shows_the_live_numbers_once_and_under_a_terminal() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let client = lab.add_ns("client")?;
    let lb = lab.add_ns("lb")?;
    let (c0, w0) = lab.veth(&client, &lb)?;
    c0.addr("10.93.0.2/24")?;
    w0.addr(&format!("{VIP}/24"))?;
    let mut target = lb.command("python3");
    target
        .args(["-m", "http.server", "--bind", "127.0.0.1"])
        .arg(TARGET_PORT.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _target = lb.spawn_command(target)?;
    lb.wait_tcp_listen(TARGET_PORT, Duration::from_secs(10))?;
    let cfg = TempFile::new("top.toml", &config());
    let mut weir = start_weir(&lb, &w0, &["--config", cfg.path()])?;
    w0.track_xdp();
    let json = |args: &[&str]| -> Result<serde_json::Value> {
        let mut a = args.to_vec();
        a.extend(["--json", "--iface", w0.name()]);
        let (ok, out, err) = weir_once(&lb, &a)?;
        ensure!(ok, "weir {args:?}: {err}");
        Ok(serde_json::from_str(&out)?)
    };
    wait_until(
        Duration::from_secs(30),
        "two workers and a healthy target",
        || {
            let Ok(s) = json(&["status"]) else {
                return Ok(false);
            };
            let h = json(&["targets", "health"])?;
            Ok(s["workers"]["running"] == 2
                && h["target_groups"][0]["targets"][0]["state"] == "healthy")
        },
    )?;

    // --once after a known number of requests.
    const SENT: usize = 37;
    let codes = send(&client, SENT)?;
    assert_eq!(codes.len(), SENT, "{codes:?}");
    assert!(codes.iter().all(|c| c == "200"), "{codes:?}");
    let mut text = String::new();
    // The workers report every 500 ms: the count reaches the control plane within a second.
    wait_until(
        Duration::from_secs(10),
        "weir top --once to count the requests",
        || {
            let (ok, out, err) = weir_once(
                &lb,
                &["top", "--once", "--interval", "0.5", "--iface", w0.name()],
            )?;
            ensure!(ok, "weir top --once: {err}");
            text = out;
            Ok(row(&text, ":8080 HTTP 0.0.0.0").is_some_and(|r| r[4] == SENT.to_string()))
        },
    )
    .with_context(|| format!("last frame:\n{text}"))?;
    eprintln!("weir top --once after {SENT} requests:\n{text}");
    assert!(!text.contains('\x1b'), "escape codes in --once: {text:?}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    let pid = weir.pid().to_string();
    assert!(
        text.starts_with(&format!("weir top  pid {pid}  gen 1")),
        "{text}"
    );
    assert!(text.contains("workers 2/2"), "{text}");
    assert!(
        text.contains(&format!("XDP {} native", w0.name())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{VIP}:{PORT}         auto   off")),
        "{text}"
    );
    // `:PORT PROTOCOL ADDRESS` REQ/s REQUESTS CONNS; the codes on a line of their own
    // (`CODES (all listeners)  T2XX N …`): every request a target's 2xx.
    let listener = row(&text, ":8080 HTTP 0.0.0.0").unwrap();
    assert_eq!(listener[4], SENT.to_string(), "{text}");
    let codes = row(&text, "CODES (all listeners)").unwrap();
    assert_eq!(
        (codes[3].as_str(), codes[4].clone()),
        ("T2XX", SENT.to_string()),
        "{text}"
    );
    let target = row(&text, &format!("web 127.0.0.1:{TARGET_PORT}")).context("target row")?;
    assert_eq!(target[2], "healthy", "{text}");
    assert_eq!(target[4], SENT.to_string(), "{text}");
    // XDP counted the requests' packets as VIP traffic, as `weir stats` does (one keep-alive
    // connection: at least a packet per request).
    let stats = stats(&lb, &w0)?;
    assert!(packets(&stats, "pass_vip") >= SENT as u64, "{stats}");

    // Interactive, under a terminal: refreshes show new requests; q quits with status 0.
    if !have_tmux() {
        eprintln!("skipped the interactive part: tmux is not installed");
    } else {
        const MORE: usize = 13;
        let codes = send(&client, MORE)?;
        assert_eq!(codes.len(), MORE);
        let total = (SENT + MORE).to_string();
        let (screen, code) = interactive(&lb, &w0, "q", &|s: &str| {
            row(s, ":8080 HTTP 0.0.0.0").is_some_and(|r| r[4] == total) && s.contains("rates over")
        })?;
        eprintln!("weir top under tmux (80x24):\n{screen}");
        assert_eq!(code, 0, "weir top's exit status after q");
        assert_eq!(screen.lines().count(), 24, "{screen}");
        assert!(screen.lines().all(|l| l.chars().count() <= 80));
        assert!(screen.contains("healthy"), "{screen}");
        assert!(screen.contains(&format!("pid {pid}")), "{screen}");
        // Ctrl-C quits the same way (raw mode delivers it as a key).
        let (_, code) = interactive(&lb, &w0, "C-c", &|s: &str| s.contains("rates over"))?;
        assert_eq!(code, 0, "weir top's exit status after Ctrl-C");
        // SIGTERM (a closing SSH session's supervisor, `timeout`): the same clean exit.
        let (_, code) = interactive(&lb, &w0, "SIGTERM", &|s: &str| s.contains("rates over"))?;
        assert_eq!(code, 0, "weir top's exit status after SIGTERM");
    }
    assert!(interrupt(&mut weir)?, "weir exits cleanly");
    Ok(())
}

#[test]
fn once_without_a_daemon_fails_with_the_reason() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("none")?;
    let (ok, out, err) = weir_once(
        &ns,
        &[
            "top",
            "--once",
            "--interval",
            "0.1",
            "--iface",
            "wt-no-such0",
        ],
    )?;
    assert!(!ok, "{out}");
    assert!(err.contains("no weir daemon to show"), "{err}");
    // Its default socket, named by the interface and this namespace (`wt-no-such0:<inode>.sock`).
    assert!(err.contains("/run/weir/wt-no-such0:"), "{err}");
    // Without --once and without a terminal: the way to script it.
    let (ok, _, err) = weir_once(&ns, &["top", "--iface", "wt-no-such0"])?;
    assert!(!ok);
    assert!(err.contains("use `weir top --once`"), "{err}");
    Ok(())
}
