//! `weir check`'s answers an operator reads (the binary's output is the contract): a type error
//! inside an action names its field. No root needed.

use std::path::PathBuf;
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

