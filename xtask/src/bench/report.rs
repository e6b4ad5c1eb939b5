//! Printing a benchmark's table and writing its JSON under target/bench/.

use std::path::PathBuf;

use serde_json::Value;

use crate::cargo;

/// Writes `target/bench/NAME.json`: `v` plus the `machine` block (host, CPU, cores, kernel,
/// date, commit: `crate::bench_report::machine`), which every result carries so that the report
/// can say where and when each figure came from.
pub fn write_json(name: &str, v: &Value) -> anyhow::Result<PathBuf> {
    let dir = cargo::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.json"));
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "machine".into(),
            crate::bench_report::machine::block(&cargo::root()),
        );
    }
    std::fs::write(&path, serde_json::to_string_pretty(&v)?)?;
    Ok(path)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// "ok" / "MISSED" against a target, for the table.
pub fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}
