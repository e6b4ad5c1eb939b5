//! `cargo xtask lab`: namespaces to try weir by hand (being built).

pub fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask lab: not yet")
}
