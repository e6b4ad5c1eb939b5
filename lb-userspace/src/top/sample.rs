//! Reading a [`Sample`]: the XDP counters from the daemon's pinned maps (as `weir stats`), the
//! rest from its admin API, the workers' CPU time from `/proc`. Nothing here fails: what cannot
//! be read is recorded as such and shows as "n/a" or a reason.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::snapshot::Sample;
use crate::{
    admin::{client, model::Status, path},
    cli::TopArgs,
    stats::read_pinned,
    xdp::pins,
};

/// How long one admin request may take before the frame shows it as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the samples come from.
pub struct Source {
    socket: Option<PathBuf>,
    iface: Option<String>,
    rt: tokio::runtime::Runtime,
}

impl Source {
    pub fn new(args: &TopArgs) -> anyhow::Result<Source> {
        Ok(Source {
            socket: args.socket.clone(),
            iface: args.iface.clone(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    fn get<T: DeserializeOwned>(&self, socket: &std::path::Path, uri: &str) -> Result<T, String> {
        let v = self
            .rt
            .block_on(async {
                tokio::time::timeout(CALL_TIMEOUT, client::call(socket, "GET", uri, None)).await
            })
            .map_err(|_| format!("no answer within {CALL_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        serde_json::from_value(v).map_err(|e| format!("unexpected answer to {uri}: {e}"))
    }

    /// One reading of everything.
    pub fn sample(&self) -> Sample {
        let socket = path::for_client(self.socket.as_deref(), self.iface.as_deref())
            .map_err(|e| format!("{e:#}"));
        let status: Result<Status, String> = socket
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|s| self.get(s, "/v1/status"));
        // The XDP counters' rates are over the time between two of these reads.
        let at = Instant::now();
        let xdp = self.xdp(status.as_ref().ok());
        let ok_socket = socket.as_ref().ok().filter(|_| status.is_ok());
        let ask = |uri: &str| ok_socket.and_then(|s| self.get::<Value>(s, uri).ok());
        let listeners = ok_socket.and_then(|s| self.get(s, "/v1/listeners").ok());
        let health = ask("/v1/target-health");
        let metrics = ask("/v1/metrics");
        let worker_cpu = status
            .as_ref()
            .map(|s| {
                s.workers
                    .processes
                    .iter()
                    .filter_map(|w| Some((w.index, w.pid, cpu_ticks(w.pid)?)))
                    .collect()
            })
            .unwrap_or_default();
        Sample {
            at,
            xdp,
            status,
            listeners,
            health,
            metrics,
            worker_cpu,
            ticks_per_second: ticks_per_second(),
        }
    }

    /// The interface asked for, else the one the daemon reports, else the only one with pins.
    fn xdp(&self, status: Option<&Status>) -> Result<(String, crate::xdp::Counters), String> {
        let iface = match (&self.iface, status) {
            (Some(i), _) => i.clone(),
            (None, Some(s)) => match s.xdp.first() {
                Some(x) => x.iface.clone(),
                None => return Err("not attached (L7 only)".into()),
            },
            (None, None) => match pins::running_interfaces().as_slice() {
                [one] => one.clone(),
                [] => return Err("no weir daemon with XDP found (no pins)".into()),
                _ => return Err("weir runs on several interfaces: pick one with --iface".into()),
            },
        };
        read_pinned(&iface)
            .map(|c| (iface.clone(), c))
            .map_err(|e| format!("{iface}: {e:#}"))
    }
}

/// A process's user + system CPU time in clock ticks (`/proc/PID/stat` fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&s)
}

/// Fields 14 (utime) and 15 (stime) of a stat line.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    use crate::proc_stat::number;
    Some(number(stat, 14)? + number(stat, 15)?)
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_fields_14_and_15() {
        let line = "4242 (weir (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 70 30 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(line), Some(100));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert_eq!(parse_cpu_ticks("1 (x) S 1"), None);
    }
}
