//! `weir check`'s answers an operator reads (the binary's output is the contract): a type error
//! inside an action names its field, an encrypted or too small key says so with its file, and
//! checking an access-log path creates no file. No root needed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("weir-check-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn openssl(&self, args: &str) {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(&self.0)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args}: {out:?}");
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `weir check --config` on `text` written to `dir`: success and stdout + stderr.
fn check(dir: &Dir, text: &str) -> (bool, String) {
    let cfg = dir.path("weir.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

fn https(cert: &Path, key: &Path) -> String {
    format!(
        "[[listener]]\nport = 8443\nprotocol = \"HTTPS\"\n\
         certificate = [{{ certificate_file = {:?}, private_key_file = {:?} }}]\n",
        cert.display().to_string(),
        key.display().to_string()
    )
}

/// It was "field `listener[0].default_action`: invalid type: integer `5`, expected a string".
#[test]
fn a_type_error_in_an_action_names_its_field() {
    let d = Dir::new("action");
    let (ok, said) = check(
        &d,
        "[[listener]]\nport = 8080\ndefault_action = { type = \"forward\", target_group = 5 }\n",
    );
    assert!(!ok, "{said}");
    assert!(
        said.contains(
            "weir.toml:3:53: field `listener[0].default_action.target_group`: invalid type: \
             integer `5`, expected a string"
        ),
        "{said}"
    );
}

/// They were "no items found" and "base64 decode error: InvalidCharacter(45)".
#[test]
fn an_encrypted_key_is_said_to_be_encrypted() {
    let d = Dir::new("encrypted");
    d.openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out plain.key");
    d.openssl("req -x509 -new -key plain.key -subj /CN=a.test -days 1 -out a.crt");
    d.openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass pass:x -out pkcs8.key");
    d.openssl("genrsa -traditional -out rsa.key 2048");
    d.openssl("rsa -in rsa.key -traditional -aes256 -passout pass:x -out legacy.key");
    for (key, kind) in [
        ("pkcs8.key", "PKCS#8 ENCRYPTED PRIVATE KEY"),
        ("legacy.key", "OpenSSL's legacy Proc-Type: 4,ENCRYPTED"),
    ] {
        let (ok, said) = check(&d, &https(&d.path("a.crt"), &d.path(key)));
        assert!(!ok, "{said}");
        assert!(
            said.contains("field `listener[0].certificate[0].private_key_file`"),
            "{said}"
        );
        assert!(said.contains(&d.path(key).display().to_string()), "{said}");
        assert!(
            said.contains(&format!("the key is encrypted ({kind}")),
            "{said}"
        );
        assert!(said.contains("needs an unencrypted key"), "{said}");
    }
}

/// It was "unexpected error: failed to parse private key as RSA, ECDSA, or EdDSA".
#[test]
fn a_1024_bit_rsa_key_is_refused_with_its_size() {
    let d = Dir::new("rsa1024");
    d.openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out small.key");
    d.openssl("req -x509 -new -key small.key -subj /CN=a.test -days 1 -out small.crt");
    let (ok, said) = check(&d, &https(&d.path("small.crt"), &d.path("small.key")));
    assert!(!ok, "{said}");
    assert!(
        said.contains("field `listener[0].certificate[0].private_key_file`"),
        "{said}"
    );
    assert!(
        said.contains(&d.path("small.key").display().to_string()),
        "{said}"
    );
    assert!(
        said.contains("an RSA key of 1024 bits: weir (rustls with aws-lc-rs) signs with RSA keys of 2048 to 8192 bits only"),
        "{said}"
    );
}

/// `weir check` created the access-log file it was asked about.
#[test]
fn checking_an_access_log_path_creates_no_file() {
    let d = Dir::new("log");
    let log = d.path("access.log");
    let text = format!(
        "[load_balancer]\naccess_logs.enabled = true\naccess_logs.path = {:?}\n\
         [[listener]]\nport = 8080\n",
        log.display().to_string()
    );
    let (ok, said) = check(&d, &text);
    assert!(ok, "{said}");
    assert!(!log.exists(), "weir check created {}", log.display());
    let (ok, said) = check(&d, &text.replace("access.log", "missing/access.log"));
    assert!(!ok, "{said}");
    assert!(
        said.contains("field `load_balancer.access_logs.path`: cannot open it for appending"),
        "{said}"
    );
}
