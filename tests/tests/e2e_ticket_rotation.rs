//! TLS session-ticket keys rotate (issue #10 §3): `weir run` with two workers and an 8-second
//! rotation. A session made after one rotation resumes on any worker, still resumes after the
//! next rotation (the previous key) — on restarted workers too, which get both keys at start —
//! and no longer after the one after that. Real openssl
//! s_client (`-sess_out` / `-sess_in`, TLS 1.2 tickets), real processes. Needs root.
//!
//! `WEIR_TEST_BIN=/path/to/weir` runs another build (e.g. the one before a fix).

mod common;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Result, bail};
use common::*;
use weir_tests::lab::{Lab, Ns, wait_until};

const PORT: u16 = 8443;
const ROTATED: &str = "TLS session ticket keys rotated";

fn openssl(args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").args(args).output()?;
    if !out.status.success() {
        bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// One s_client connection; whether the session was resumed ("Reused") or new.
fn s_client(ns: &Ns, sess: &Path, save: bool) -> Result<bool> {
    let flag = if save { "-sess_out" } else { "-sess_in" };
    let mut c = ns.command("openssl");
    c.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{PORT}"),
        "-tls1_2",
        "-servername",
        "weir.test",
        flag,
        sess.to_str().unwrap(),
    ])
    .stdin(Stdio::null());
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(10))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match (text.contains("Reused, TLS"), text.contains("New, TLS")) {
        (true, _) => Ok(true),
        (_, true) => Ok(false),
        _ => bail!("no handshake:\n{text}"),
    }
}

/// Resumes `sess` `n` times (fresh source ports: both workers take some); how many resumed.
fn resumed(ns: &Ns, sess: &Path, n: usize) -> Result<usize> {
    let mut k = 0;
    for _ in 0..n {
        k += usize::from(s_client(ns, sess, false)?);
    }
    Ok(k)
}

#[test]
fn a_session_resumes_after_one_ticket_key_rotation_not_two() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("tickets")?;
    let dir = std::env::temp_dir().join(format!("weir-tickets-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (sess1, sess2) = (dir.join("sess1.pem"), dir.join("sess2.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=weir.test",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ])?;
    let cfg = TempFile::new(
        "tickets.toml",
        &format!(
            "[workers]\ncount = 2\ntls_ticket_rotation_seconds = 8\n\n\
             [load_balancer]\nmax_connections_per_worker = 1000\n\n\
             [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\nprotocol = \"HTTPS\"\n\
             certificate = [{{ certificate_file = \"{}\", private_key_file = \"{}\" }}]\n\
             default_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"ok\" }}\n",
            cert.display(),
            key.display()
        ),
    );
    let mut c = weir_test_command(&ns);
    c.args(["run", "--config", cfg.path()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut w = ns.spawn_command(c)?;
    let rotations = Arc::new(Mutex::new(0usize));
    let started: Arc<Mutex<Vec<i32>>> = Arc::default();
    let readies = Arc::new(Mutex::new(0usize));
    {
        let (r, err) = (rotations.clone(), w.child_mut().stderr.take().unwrap());
        let (st, rd) = (started.clone(), readies.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains(ROTATED) {
                    *r.lock().unwrap() += 1;
                } else if line.contains("worker ready") {
                    *rd.lock().unwrap() += 1;
                } else if let Some(pid) = line
                    .split("worker started")
                    .nth(1)
                    .and_then(|r| r.split("pid=Some(").nth(1))
                    .and_then(|r| r.split(')').next())
                    .and_then(|p| p.parse().ok())
                {
                    st.lock().unwrap().push(pid);
                }
            }
        });
    }
    wait_until(Duration::from_secs(20), "weir to listen", || {
        if !w.is_running() {
            bail!("weir exited");
        }
        ns.tcp_listening(PORT)
    })?;
    let count = || *rotations.lock().unwrap();
    let next_rotation = |after: usize| {
        wait_until(Duration::from_secs(12), "a ticket key rotation", || {
            Ok(count() > after)
        })
    };

    // Right after a rotation, a new session; it resumes on both workers.
    next_rotation(count())?;
    let start = count();
    assert!(!s_client(&ns, &sess1, true)?, "the first handshake is full");
    assert_eq!(resumed(&ns, &sess1, 8)?, 8, "resumes on every worker");

    // One rotation later: its key is the previous one, still accepted everywhere; a session
    // made now under the new key resumes everywhere too (every worker got the new key).
    next_rotation(start)?;
    assert_eq!(count(), start + 1);
    assert_eq!(resumed(&ns, &sess1, 8)?, 8, "resumes after one rotation");
    // Both workers killed and restarted: they get the current and the previous key at start.
    let ready_before = *readies.lock().unwrap();
    let pids: Vec<i32> = started.lock().unwrap().clone();
    assert_eq!(pids.len(), 2, "{pids:?}");
    for pid in pids {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )?;
    }
    wait_until(Duration::from_secs(3), "both workers restarted", || {
        Ok(*readies.lock().unwrap() >= ready_before + 2)
    })?;
    assert_eq!(
        resumed(&ns, &sess1, 8)?,
        8,
        "restarted workers resume it after one rotation"
    );
    assert!(!s_client(&ns, &sess2, true)?);
    assert_eq!(
        resumed(&ns, &sess2, 8)?,
        8,
        "the new key is on every worker"
    );
    assert_eq!(count(), start + 1, "no second rotation in between");

    // Two rotations later: the key is gone, a full handshake.
    next_rotation(start + 1)?;
    assert_eq!(resumed(&ns, &sess1, 4)?, 0, "refused after two rotations");
    assert_eq!(
        resumed(&ns, &sess2, 4)?,
        4,
        "the newer session still resumes"
    );

    assert!(interrupt(&mut w)?);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
