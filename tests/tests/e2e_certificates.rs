//! Listener certificates an operator can see, through the real binary: `weir check` warns of an
//! expired certificate and of one expiring within 30 days (naming listener, file, subject and
//! notAfter) and says nothing of a valid one; a running `weir run` logs the expired one at
//! ERROR, serves it anyway, shows each certificate's notAfter as
//! `weir_certificate_expiry_timestamp_seconds` and describes it on `GET /v1/certificates`
//! (`weir certificates`); a reload that removes a certificate removes its series and entry.
//! The certificates are made by rcgen (OpenSSL 3.0's `req -x509` cannot set dates in the past).
//! The running part needs root.

mod common;

use std::{path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use common::{logged::Weir, *};
use serde_json::Value;
use weir_tests::lab::{Lab, Ns, wait_until};

const PORT: u16 = 8443;
const METRICS: &str = "127.0.0.1:9465";
/// 2021-01-01T00:00:00Z, the expired certificate's notAfter.
const EXPIRED_AT: i64 = 1_609_459_200;

/// A self-signed certificate for `name` (CN and SAN) valid from `from` to `to`, written to
/// `dir/<stem>.pem` with its key in `dir/<stem>.key`: the certificate's path.
fn cert(
    dir: &Path,
    stem: &str,
    name: &str,
    from: time::OffsetDateTime,
    to: time::OffsetDateTime,
) -> Result<String> {
    let mut p = rcgen::CertificateParams::new(vec![name.to_string()])?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.not_before = from;
    p.not_after = to;
    let key = rcgen::KeyPair::generate()?;
    let c = p.self_signed(&key)?;
    let (cp, kp) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&cp, c.pem())?;
    std::fs::write(&kp, key.serialize_pem())?;
    Ok(cp.display().to_string())
}

/// The three certificates: valid for a year, expiring in 10½ days, expired in 2021.
struct Certs {
    _dir: TempDir,
    valid: String,
    soon: String,
    expired: String,
}

fn certs(tag: &str) -> Result<Certs> {
    let dir = std::env::temp_dir().join(format!("weir-certs-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let guard = TempDir(dir.clone());
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let past = rcgen::date_time_ymd(2020, 1, 1);
    Ok(Certs {
        // Half a day past the whole days, so that the days counted are the same whatever
        // second the test reads them in.
        valid: cert(
            &dir,
            "valid",
            "valid.test",
            now - day,
            now + 365 * day + day / 2,
        )?,
        soon: cert(
            &dir,
            "soon",
            "soon.test",
            now - 80 * day,
            now + 10 * day + day / 2,
        )?,
        expired: cert(
            &dir,
            "expired",
            "expired.test",
            past,
            rcgen::date_time_ymd(2021, 1, 1),
        )?,
        _dir: guard,
    })
}

/// An HTTPS listener serving `files` (the first the default), with the admin socket and the
/// metrics page.
fn config(socket: &Path, files: &[&str]) -> String {
    let certs: Vec<String> = files
        .iter()
        .map(|f| {
            let key = f.replace(".pem", ".key");
            format!("{{ certificate_file = \"{f}\", private_key_file = \"{key}\" }}")
        })
        .collect();
    format!(
        "[admin]\nsocket = \"{}\"\n\n[metrics]\naddress = \"{METRICS}\"\n\n\
         [workers]\ncount = 1\n\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = {PORT}\nprotocol = \"HTTPS\"\n\
         certificate = [{}]\n\
         default_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"ok\" }}\n",
        socket.display(),
        certs.join(", ")
    )
}

/// `weir check` warns of the expired and the soon-expiring certificate, each with its
/// listener, file, subject and notAfter, and passes the file (it is served: docs/l7.md); the
/// valid one gets no line. The old binary printed `OK` and nothing else.
#[test]
fn check_warns_of_expired_and_expiring_certificates() -> Result<()> {
    let c = certs("check")?;
    let cfg = TempFile::new(
        "certs-check.toml",
        &config(
            Path::new("/run/weir/unused.sock"),
            &[&c.valid, &c.soon, &c.expired],
        ),
    );
    let out = std::process::Command::new(weir_test_bin())
        .args(["check", "--config", cfg.path()])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |file: &str| {
        stdout
            .lines()
            .find(|l| l.contains(file))
            .map(str::to_string)
    };
    let expired =
        line(&c.expired).with_context(|| format!("no line for the expired one:\n{stdout}"))?;
    assert!(expired.starts_with("warning: "), "{expired}");
    for part in [
        "certificate EXPIRED ",
        "listener 127.0.0.1:8443",
        "(subject \"CN=expired.test\", notAfter 2021-01-01T00:00:00Z)",
        "weir serves it anyway",
    ] {
        assert!(expired.contains(part), "{part:?} not in {expired}");
    }
    let soon = line(&c.soon).with_context(|| format!("no line for the expiring one:\n{stdout}"))?;
    assert!(soon.contains("certificate expires in 10 days"), "{soon}");
    assert!(soon.contains("subject \"CN=soon.test\""), "{soon}");
    assert_eq!(line(&c.valid), None, "{stdout}");
    Ok(())
}

fn curl(ns: &Ns, args: &[&str]) -> Result<String> {
    let mut c = ns.command("curl");
    c.args(["-sS", "--max-time", "10"]).args(args);
    let out = weir_tests::lab::output(&mut c, Duration::from_secs(30))?;
    if !out.status.success() {
        bail!(
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The page's `weir_certificate_expiry_timestamp_seconds` samples: file label → value.
fn expiry_series(ns: &Ns) -> Result<Vec<(String, f64)>> {
    let page = curl(ns, &[&format!("http://{METRICS}/metrics")])?;
    Ok(page
        .lines()
        .filter(|l| l.starts_with("weir_certificate_expiry_timestamp_seconds{"))
        .filter_map(|l| {
            let file = l.split("file=\"").nth(1)?.split('"').next()?.to_string();
            Some((file, l.rsplit_once(' ')?.1.parse().ok()?))
        })
        .collect())
}

/// `weir ARGS --socket S`, which must succeed: stdout.
fn weir(ns: &Ns, socket: &Path, args: &[&str]) -> Result<String> {
    let mut a = args.to_vec();
    a.extend(["--socket", socket.to_str().unwrap()]);
    let (ok, out, err) = weir_once(ns, &a)?;
    if !ok {
        bail!("weir {args:?} failed: {err}");
    }
    Ok(out)
}

/// A running weir: the expired certificate logged at ERROR and served; the metric and the admin
/// endpoint describe both certificates; a reload without the expired one drops its series and
/// entry.
#[test]
fn running_weir_shows_and_reloads_its_certificates() -> Result<()> {
    if !Lab::root_required() {
        return Ok(());
    }
    let c = certs("run")?;
    let lab = Lab::new()?;
    let ns = lab.add_ns("certs")?;
    let socket = std::env::temp_dir().join(format!("weir-certs-{}.sock", std::process::id()));
    let cfg = TempFile::new("certs-run.toml", &config(&socket, &[&c.expired, &c.valid]));
    let w = Weir::serving(&ns, &cfg, PORT)?;
    let log = w.log();
    let loud = log
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("certificate EXPIRED"))
        .with_context(|| format!("no ERROR line for the expired certificate:\n{log}"))?;
    assert!(loud.contains(&c.expired), "{loud}");
    // Served anyway: the default certificate, to a client that does not check it.
    let body = curl(&ns, &["-k", &format!("https://127.0.0.1:{PORT}/")])?;
    assert_eq!(body, "ok");

    let mut series = Vec::new();
    wait_until(Duration::from_secs(10), "the certificate series", || {
        series = expiry_series(&ns)?;
        Ok(series.len() == 2)
    })
    .with_context(|| format!("{series:?}"))?;
    assert!(
        series.contains(&(c.expired.clone(), EXPIRED_AT as f64)),
        "{series:?}"
    );
    let valid_at = series
        .iter()
        .find(|(f, _)| *f == c.valid)
        .context("valid")?
        .1;
    assert!(valid_at > 1.7e9, "{series:?}");

    let v: Value = serde_json::from_str(&weir(&ns, &socket, &["certificates", "--json"])?)?;
    let listener = &v["listeners"][0];
    assert_eq!(listener["listener"], format!("127.0.0.1:{PORT}"));
    let list = listener["certificates"]
        .as_array()
        .context("certificates")?;
    assert_eq!(list.len(), 2, "{v}");
    let (e, ok) = (&list[0], &list[1]);
    assert_eq!(e["file"], c.expired.as_str());
    assert_eq!(e["subject"], "CN=expired.test");
    assert_eq!(e["subject_alt_names"][0], "DNS:expired.test");
    assert_eq!(e["not_after"], "2021-01-01T00:00:00Z");
    assert_eq!(e["not_after_unix"], EXPIRED_AT);
    assert_eq!(e["status"], "expired");
    assert!(e["days_left"].as_i64().context("days_left")? < -365, "{e}");
    assert_eq!(e["key_type"], "EC P-256");
    assert!(e["serial"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
    assert_eq!(
        (ok["status"].as_str(), ok["days_left"].as_i64()),
        (Some("valid"), Some(365))
    );
    let text = weir(
        &ns,
        &socket,
        &["certificates", "--listener", &PORT.to_string()],
    )?;
    assert!(text.contains("EXPIRED"), "{text}");
    assert!(text.contains("(365 days left)"), "{text}");

    // A reload without the expired certificate: its series and its entry go.
    std::fs::write(&cfg.0, config(&socket, &[&c.valid]))?;
    weir(&ns, &socket, &["reload"])?;
    let series = expiry_series(&ns)?;
    assert_eq!(series, [(c.valid.clone(), valid_at)]);
    let v: Value = serde_json::from_str(&weir(&ns, &socket, &["certificates", "--json"])?)?;
    assert_eq!(
        v["listeners"][0]["certificates"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    drop(w);
    Ok(())
}
