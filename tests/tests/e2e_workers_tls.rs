//! `weir run` with several worker processes shares one TLS session ticket key: a session made on
//! one worker resumes on whichever worker the next connection is steered to. Real openssl
//! s_client, real processes. Needs root (the steering program).

mod common;

use std::{process::Command, time::Duration};

use anyhow::{Result, bail};
use common::*;
use weir_tests::lab::{Lab, wait_until};

fn openssl(args: &[&str]) -> Result<String> {
    let out = Command::new("openssl").args(args).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn sessions_resume_across_worker_processes() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let lab = Lab::new()?;
    let ns = lab.add_ns("tls")?;
    let dir = std::env::temp_dir().join(format!("weir-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (cert, key, sess) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("sess.pem"),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
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
        "tls.toml",
        &format!(
            "[workers]\ncount = 4\n\n[[listener]]\naddress = \"127.0.0.1\"\nport = 8443\nprotocol = \"HTTPS\"\n\
             certificate = [{{ certificate_file = \"{}\", private_key_file = \"{}\" }}]\n\
             default_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"ok\" }}\n",
            cert.display(),
            key.display()
        ),
    );
    let mut c = weir_command(&ns);
    c.args(["run", "--config", cfg.path()]);
    let mut weir = ns.spawn_command(c)?;
    wait_until(Duration::from_secs(20), "weir to listen", || {
        if !weir.is_running() {
            bail!("weir exited");
        }
        ns.tcp_listening(8443)
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let s_client = |extra: &[&str]| -> Result<String> {
        let mut args = vec![
            "s_client",
            "-connect",
            "127.0.0.1:8443",
            "-tls1_2",
            "-servername",
            "weir.test",
        ];
        args.extend_from_slice(extra);
        let mut c = ns.command("openssl");
        c.args(&args).stdin(std::process::Stdio::null());
        let out = weir_tests::lab::output(&mut c, Duration::from_secs(10))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let first = s_client(&["-sess_out", sess.to_str().unwrap()])?;
    assert!(
        first.contains("New, TLS"),
        "first handshake is full:\n{first}"
    );
    // Sixteen reconnections from fresh source ports: with 4 workers most land on another worker.
    let mut reused = 0;
    for _ in 0..16 {
        let out = s_client(&["-sess_in", sess.to_str().unwrap()])?;
        if out.contains("Reused, TLS") {
            reused += 1;
        }
    }
    assert_eq!(
        reused, 16,
        "every reconnection resumed the session, whichever worker took it"
    );
    assert!(interrupt(&mut weir)?);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
