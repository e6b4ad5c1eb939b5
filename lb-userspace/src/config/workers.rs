//! `[workers]`: how many L7 worker processes, where they run, how connections reach them, and
//! the unprivileged identity and seccomp sandbox they run in.

use lb_common::steer::{MAX_LISTENERS, MAX_WORKERS};
use serde::Deserialize;

use super::FieldProblem;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Worker processes; 0 = one per CPU (one per RX queue on a host with RSS on every CPU).
    pub count: usize,
    /// Pin worker `i` to CPU `i mod CPUs`.
    pub pin_cpus: bool,
    /// `maglev`: an SK_REUSEPORT program hands each connection to its Maglev owner (the flow
    /// hash every host computes alike). `kernel`: the kernel's own SO_REUSEPORT hash.
    pub steering: Steering,
    /// Seed of the flow hash and the Maglev table; the same on every host of a fleet.
    pub hash_seed: u32,
    /// First delay before restarting a worker that died; doubles per quick death, up to 5 s.
    pub restart_delay_ms: u64,
    /// The user workers run as once their sockets and files are open. The default, `weir`, is
    /// created by `weir run` (a system user without home or shell) when missing; where it cannot
    /// be created the workers run as `nobody`. Any other user must exist.
    pub user: String,
    /// The workers' group; unset: the user's primary group. Supplementary groups are dropped.
    pub group: Option<String>,
    /// The seccomp allow-list (a syscall outside it kills the worker, which is restarted).
    /// `false` only to debug a worker killed by SIGSYS; the user and capability drop stay.
    pub seccomp: bool,
    /// Seconds between TLS session-ticket key rotations (default 6 h). The control plane sends
    /// every worker the new key and the previous one: a ticket resumes for at least one
    /// interval and at most two.
    pub tls_ticket_rotation_seconds: u64,
    /// A running worker that has not reported for this long is hung (its runtime no longer
    /// gets back to its timers: a task that never yields, a deadlock, SIGSTOP): it is killed
    /// (SIGKILL), so its queued connections move to the others, and restarted. 0: off (a
    /// debugger holding a worker stopped).
    pub watchdog_seconds: u64,
}

/// The longest TLS session-ticket rotation interval (RFC 8446's longest ticket lifetime).
pub const MAX_TICKET_ROTATION_SECONDS: u64 = 7 * 24 * 3600;

/// The shortest watchdog: four report periods (`crate::metrics::PERIOD`), so one late report is
/// never a hang.
pub const MIN_WATCHDOG_SECONDS: u64 = 2;
/// The longest watchdog (an hour): longer is as good as off, which is `0`.
pub const MAX_WATCHDOG_SECONDS: u64 = 3600;

/// The default worker user, which `weir run` creates when it is missing.
pub const DEFAULT_USER: &str = "weir";
/// Where the default user cannot be created: the user every Linux system has.
pub const FALLBACK_USER: &str = "nobody";

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            count: 0,
            pin_cpus: true,
            steering: Steering::Maglev,
            hash_seed: 0x5eed_0001,
            restart_delay_ms: 100,
            user: DEFAULT_USER.into(),
            group: None,
            seccomp: true,
            tls_ticket_rotation_seconds: 6 * 3600,
            watchdog_seconds: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Steering {
    Maglev,
    Kernel,
}

impl WorkerSettings {
    /// The number of workers to run on this host.
    pub fn resolved_count(&self) -> usize {
        if self.count > 0 {
            return self.count;
        }
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_WORKERS as usize)
    }

    pub fn validate(&self, listeners: usize, problems: &mut Vec<FieldProblem>) {
        if self.count > MAX_WORKERS as usize {
            problems.push(FieldProblem::new(
                "workers.count",
                format!("at most {MAX_WORKERS} workers"),
            ));
        }
        if self.user.is_empty() {
            problems.push(FieldProblem::new("workers.user", "a user name is required"));
        }
        if self.group.as_deref() == Some("") {
            problems.push(FieldProblem::new(
                "workers.group",
                "a group name, or leave it out for the user's primary group",
            ));
        }
        if !(1..=MAX_TICKET_ROTATION_SECONDS).contains(&self.tls_ticket_rotation_seconds) {
            problems.push(FieldProblem::new(
                "workers.tls_ticket_rotation_seconds",
                format!("between 1 and {MAX_TICKET_ROTATION_SECONDS} (7 days, the longest ticket lifetime TLS 1.3 allows)"),
            ));
        }
        if self.watchdog_seconds != 0
            && !(MIN_WATCHDOG_SECONDS..=MAX_WATCHDOG_SECONDS).contains(&self.watchdog_seconds)
        {
            problems.push(FieldProblem::new(
                "workers.watchdog_seconds",
                format!("0 (off) or between {MIN_WATCHDOG_SECONDS} and {MAX_WATCHDOG_SECONDS}: a worker reports twice a second"),
            ));
        }
        if listeners > MAX_LISTENERS as usize {
            problems.push(FieldProblem::new(
                "listener",
                format!("at most {MAX_LISTENERS} listeners can be steered"),
            ));
        }
    }
}
