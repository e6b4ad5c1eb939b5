//! The state file `weir targets health` reads: the [`HealthSnapshot`] as JSON under
//! `/run/weir/`, one per network namespace (`health-<netns inode>.json`, as the sysctl record),
//! replaced atomically (written beside, then renamed) so a reader never sees half of it.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::table::HealthSnapshot;

/// This network namespace's state file.
pub fn path() -> anyhow::Result<PathBuf> {
    let ns = crate::sysctl::Netns::current()?;
    Ok(Path::new(crate::sysctl::RECORD_DIR).join(format!("health-{}.json", ns.inode)))
}

pub fn write(path: &Path, snapshot: &HealthSnapshot) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(snapshot)?;
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

pub fn read(path: &Path) -> anyhow::Result<HealthSnapshot> {
    let text = std::fs::read(path).with_context(|| {
        format!(
            "reading {} (is `weir run` with target groups running in this network namespace?)",
            path.display()
        )
    })?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_then_read_back() {
        let dir = std::env::temp_dir().join(format!("weir-health-file-{}", std::process::id()));
        let p = dir.join("health.json");
        let cfg: lb_l7::L7Config = toml::from_str(
            "[[listener]]\nport = 80\ndefault_action = { type = \"forward\", target_group = \"g\" }\n\
             [[target_group]]\nname = \"g\"\ntarget = [{ id = \"10.0.0.1\" }]",
        )
        .unwrap();
        let snap = super::super::HealthTable::new(&cfg).unwrap().snapshot();
        write(&p, &snap).unwrap();
        assert_eq!(read(&p).unwrap(), snap);
        assert!(!p.with_extension("json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
