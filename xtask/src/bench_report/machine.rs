//! The `machine` block every benchmark JSON carries: which machine, kernel and commit a figure
//! came from, and when. Gathered from /proc and git; a field that cannot be read is `null`.

use std::{path::Path, process::Command, time::SystemTime};

use serde_json::{Value, json};

/// The machine block for a result measured now, in the workspace at `root`.
pub fn block(root: &Path) -> Value {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let (commit, dirty) = git_commit(root);
    json!({
        "hostname": read_trimmed("/proc/sys/kernel/hostname"),
        "cpu_model": cpu_model(&cpuinfo),
        "cores": cores(&cpuinfo),
        "kernel": read_trimmed("/proc/sys/kernel/osrelease"),
        "date_utc": utc(now),
        "unix_time": now,
        "git_commit": commit,
        "git_dirty": dirty,
    })
}

/// One line naming a machine block: `host (CPU model, N cores, Linux R)`.
pub fn describe(m: &Value) -> String {
    let s = |k: &str| m[k].as_str().unwrap_or("?").to_string();
    let cores = m["cores"]
        .as_u64()
        .map_or_else(|| "? cores".to_string(), |c| format!("{c} cores"));
    format!(
        "{} ({}, {cores}, Linux {})",
        s("hostname"),
        s("cpu_model"),
        s("kernel")
    )
}

/// The block's date, `YYYY-MM-DD HH:MM UTC`, or `unknown date`.
pub fn date(m: &Value) -> String {
    m["date_utc"]
        .as_str()
        .map_or_else(|| "unknown date".to_string(), str::to_string)
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The first `model name` of /proc/cpuinfo (x86), else `Model`/`CPU part` lines (arm).
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Model", "Hardware"].iter().find_map(|key| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_string())
        })
    })
}

/// Logical CPUs: `processor` lines of /proc/cpuinfo (not this process's affinity, which a
/// benchmark may have narrowed).
pub fn cores(cpuinfo: &str) -> Option<usize> {
    let n = cpuinfo
        .lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(k, _)| k.trim() == "processor")
        })
        .count();
    if n > 0 {
        Some(n)
    } else {
        std::thread::available_parallelism().ok().map(|n| n.get())
    }
}

/// (HEAD's hash, whether tracked files differ from it), or nulls outside a git tree.
fn git_commit(root: &Path) -> (Option<String>, Option<bool>) {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]).filter(|c| !c.is_empty());
    let dirty = commit
        .as_ref()
        .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    (commit, dirty)
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the epoch (proleptic Gregorian calendar).
pub fn utc(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_443_200 + 3_723), "2026-12-05 05:02:03 UTC");
    }

    #[test]
    fn cpu_model_and_cores_from_cpuinfo() {
        let x86 = "processor\t: 0\nmodel name\t: AMD EPYC 7R13 Processor\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7R13 Processor\n";
        assert_eq!(cpu_model(x86).as_deref(), Some("AMD EPYC 7R13 Processor"));
        assert_eq!(cores(x86), Some(2));
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn this_machine_block_names_what_it_can() {
        let m = block(&crate::cargo::root());
        assert!(m["hostname"].is_string(), "{m}");
        assert!(m["kernel"].is_string(), "{m}");
        assert!(m["cores"].as_u64().is_some_and(|c| c >= 1), "{m}");
        assert!(m["date_utc"].as_str().is_some_and(|d| d.ends_with(" UTC")));
        assert!(describe(&m).contains("Linux "), "{}", describe(&m));
    }
}
