//! What the report is built from: each benchmark's `NAME.json` and the record of the last
//! `bench all` run (`all.json`), read from one directory.

use std::{collections::BTreeMap, path::Path};

use anyhow::Context;
use serde_json::Value;

/// The benchmarks, in the order `bench all` runs them and the report shows them.
pub const BENCHES: [&str; 5] = ["xdp", "pps", "steer", "synflood", "http"];

/// The record `bench all` writes beside the results.
pub const RUN_RECORD: &str = "all.json";

/// One benchmark's state in the report.
#[derive(Debug)]
pub enum Outcome {
    /// Its JSON, current (not older than a failure of it in the last `bench all`).
    Measured(Value),
    /// It failed in the last `bench all` and has no result from after that run.
    Failed { reason: String },
    /// No result and no failure recorded.
    NotRun,
}

/// Everything the report shows.
#[derive(Debug)]
pub struct Inputs {
    pub benches: Vec<(&'static str, Outcome)>,
    /// The last `bench all` run's record, if any.
    pub run: Option<Value>,
}

/// Reads `NAME.json` for every benchmark and `all.json` from `dir`. A file that is missing
/// means "not run"; one that is not JSON fails its benchmark's entry.
pub fn load(dir: &Path) -> anyhow::Result<Inputs> {
    let mut results = BTreeMap::new();
    let mut unreadable = BTreeMap::new();
    for name in BENCHES {
        match read(&dir.join(format!("{name}.json"))) {
            Ok(Some(v)) => {
                results.insert(name.to_string(), v);
            }
            Ok(None) => {}
            Err(e) => {
                unreadable.insert(name, format!("{e:#}"));
            }
        }
    }
    let run = read(&dir.join(RUN_RECORD)).unwrap_or(None);
    let mut inputs = from_values(results, run);
    for (name, outcome) in &mut inputs.benches {
        if let Some(reason) = unreadable.remove(name) {
            *outcome = Outcome::Failed { reason };
        }
    }
    Ok(inputs)
}

fn read(path: &Path) -> anyhow::Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(s) => serde_json::from_str(&s)
            .map(Some)
            .with_context(|| format!("{} is not JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The outcome of every benchmark from the parsed results (by name) and run record.
pub fn from_values(mut results: BTreeMap<String, Value>, run: Option<Value>) -> Inputs {
    let benches = BENCHES
        .iter()
        .map(|name| {
            let result = results.remove(*name);
            let failed = run.as_ref().and_then(|r| failure(r, name));
            let outcome = match (result, failed) {
                // A result measured after the failed run (`bench NAME` alone) stands.
                (Some(v), Some((_, started))) if unix_time(&v).is_some_and(|t| t >= started) => {
                    Outcome::Measured(v)
                }
                (_, Some((reason, _))) => Outcome::Failed { reason },
                (Some(v), None) => Outcome::Measured(v),
                (None, None) => Outcome::NotRun,
            };
            (*name, outcome)
        })
        .collect();
    Inputs { benches, run }
}

/// (reason, start time) when the run record lists `name` as failed.
fn failure(run: &Value, name: &str) -> Option<(String, u64)> {
    let entry = run["benches"]
        .as_array()?
        .iter()
        .find(|b| b["name"] == name)?;
    (entry["status"] == "failed").then(|| {
        (
            format!(
                "in the last `bench all`: {}",
                entry["reason"].as_str().unwrap_or("no reason recorded")
            ),
            entry["started_unix"].as_u64().unwrap_or(0),
        )
    })
}

/// When a result was measured (its machine block), seconds since the epoch.
pub fn unix_time(v: &Value) -> Option<u64> {
    v["machine"]["unix_time"].as_u64()
}
