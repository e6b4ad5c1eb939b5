//! `RLIMIT_NOFILE` sized for the workers before they start (they inherit it).
//!
//! A worker holds up to `max_connections_per_worker` client connections and, while they wait
//! for a response, about as many target connections, plus its listening sockets and a few of
//! its own (epoll, the signal pipe, stdio, the access log): it needs
//! `max_connections_per_worker × 2 + slack` descriptors. The control plane raises the soft limit
//! to that (and the hard one when it may). When it cannot: a `max_connections_per_worker` set in
//! the file makes weir refuse to start, saying what to set; left at its default (10,000), the
//! workers take as many connections as the limit fits, with a warning (HAProxy sizes its default
//! `maxconn` from the limit the same way). Past the limit anyway (descriptors held elsewhere),
//! the worker's accept loop sheds connections instead of spinning (`lb_l7::accept::fd_limit`).
//!
//! Target connections are bounded to their half of the budget: the one target connection per
//! client connection this assumes holds for HTTP/1.1 only, and an HTTP/2 connection fans out to
//! one per concurrent stream (up to 128), so two dozen HTTP/2 connections with slow responses
//! took a worker's every descriptor (target connects failed with EMFILE, 502, and accept shed
//! new clients). Each worker counts its open target connections against
//! [`target_connections`] (what its limit leaves once its client connections, listeners and
//! slack are set aside: `max_connections_per_worker` when weir sized the limit, more when the
//! limit is larger), as nginx's `worker_connections` counts upstream connections; at the cap
//! an idle pooled one is closed, else the request is refused (HTTP/1.1 503, HTTP/2
//! REFUSED_STREAM on weir's engine, 503 on hyper's), never a 502 (`lb_l7::target_conns`).

use std::path::Path;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors a worker needs besides its connections and listening sockets: an idle worker
/// holds 14 (its epolls, an eventfd, pipes, stdio, the control and socket channels, the
/// metrics page), and a few come and go (a certificate read at a reload, a resolver's socket).
/// It was 256, which left a worker under a supervisor's `LimitNOFILE=256` one connection
/// (`(256 − 256 − listeners) / 2`, at least 1): every other client was refused.
pub const SLACK: u64 = 64;

/// What a worker needs.
pub fn needed(max_connections_per_worker: usize, listeners: usize) -> u64 {
    (max_connections_per_worker as u64)
        .saturating_mul(2)
        .saturating_add(SLACK)
        .saturating_add(listeners as u64)
}

#[derive(Debug, thiserror::Error)]
pub enum NofileError {
    #[error(
        "each L7 worker needs {need} open files ([load_balancer] max_connections_per_worker = {max} × 2 + {slack}), \
         but RLIMIT_NOFILE is {soft} (hard limit {hard}) and cannot be raised ({why}): \
         raise it (systemd: LimitNOFILE={need}; shell: ulimit -Hn {need}; ulimit -n {need}) \
         or lower max_connections_per_worker"
    )]
    TooLow {
        need: u64,
        max: usize,
        slack: u64,
        soft: u64,
        hard: u64,
        why: String,
    },
    #[error("reading RLIMIT_NOFILE: {0}")]
    Read(nix::Error),
}

/// Whether the configuration file sets `[load_balancer] max_connections_per_worker` (the
/// embedded default does not). An unreadable file counts as setting it: no silent resizing.
pub fn connections_set(config: Option<&Path>) -> bool {
    let Some(path) = config else {
        return false;
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return true;
    };
    connections_set_in(&text)
}

/// [`connections_set`] of a configuration's text.
pub fn connections_set_in(text: &str) -> bool {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return true;
    };
    doc.as_table()
        .get("load_balancer")
        .and_then(|lb| lb.get("max_connections_per_worker"))
        .is_some()
}

/// The connections a worker can hold within `limit` descriptors (at most `max`, at least 1).
pub fn fit(max: usize, listeners: usize, limit: u64) -> usize {
    let room = limit.saturating_sub(SLACK + listeners as u64) / 2;
    (max as u64).min(room).max(1) as usize
}

/// How [`ensure`] sized the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sized {
    /// The limit (soft, in force) fits the configured connections.
    Fits(u64),
    /// The unset default did not fit: the limit is its hard value, and each worker takes
    /// `connections`.
    Lowered { limit: u64, connections: usize },
}

/// What to do about limits `(soft, hard)` for `need`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Enough,
    /// Raise the soft limit to this (within the hard one).
    RaiseSoft(u64),
    /// Raise both limits to this (needs CAP_SYS_RESOURCE).
    RaiseBoth(u64),
}

pub fn plan(need: u64, soft: u64, hard: u64) -> Plan {
    if soft >= need {
        Plan::Enough
    } else if hard >= need {
        Plan::RaiseSoft(need)
    } else {
        Plan::RaiseBoth(need)
    }
}

/// Raises this process's limit (the workers inherit it) so a worker can hold
/// `max_connections_per_worker`; `set`: whether the file sets that number (see the module doc).
pub fn ensure(
    max_connections_per_worker: usize,
    listeners: usize,
    set: bool,
) -> Result<Sized, NofileError> {
    let need = needed(max_connections_per_worker, listeners);
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(NofileError::Read)?;
    let raised = match plan(need, soft, hard) {
        Plan::Enough => return Ok(Sized::Fits(soft)),
        Plan::RaiseSoft(n) => setrlimit(Resource::RLIMIT_NOFILE, n, hard),
        Plan::RaiseBoth(n) => setrlimit(Resource::RLIMIT_NOFILE, n, n),
    };
    match raised {
        Ok(()) => Ok(Sized::Fits(need)),
        Err(_) if !set && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() => {
            Ok(Sized::Lowered {
                limit: hard,
                connections: fit(max_connections_per_worker, listeners, hard),
            })
        }
        Err(e) => Err(NofileError::TooLow {
            need,
            max: max_connections_per_worker,
            slack: SLACK,
            soft,
            hard,
            why: e.desc().to_string(),
        }),
    }
}

/// The target connections a worker may hold within `limit` descriptors beside `connections`
/// client connections and `listeners` (at least 1).
pub fn target_connections(limit: u64, connections: usize, listeners: usize) -> usize {
    let room = limit
        .saturating_sub(connections as u64)
        .saturating_sub(SLACK + listeners as u64);
    usize::try_from(room).unwrap_or(usize::MAX).max(1)
}

/// In the worker: the target connection cap within this process's limit (inherited from the
/// control plane) beside `connections` client connections; `None` when the limit cannot be
/// read (no cap then, as before).
pub fn worker_target_connections(connections: usize, listeners: usize) -> Option<usize> {
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    Some(target_connections(soft, connections, listeners))
}

/// In the worker: the connection limit to apply. The configured one, unless the file leaves it
/// unset and this process's limit (inherited from the control plane) does not fit it.
pub fn worker_connections(max: usize, listeners: usize, set: bool) -> usize {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) if !set => fit(max, listeners, soft),
        _ => max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twice_the_connections_plus_slack() {
        assert_eq!(needed(10_000, 2), 20_000 + SLACK + 2);
        assert_eq!(needed(usize::MAX, 1), u64::MAX);
    }

    #[test]
    fn the_default_shrinks_to_what_the_limit_fits() {
        assert_eq!(fit(10_000, 2, 20_000), (20_000 - SLACK as usize - 2) / 2);
        assert_eq!(fit(10_000, 2, 1 << 20), 10_000);
        assert_eq!(fit(10_000, 2, 10), 1);
        // A supervisor's LimitNOFILE=256: room for ~95 connections (it was 1).
        assert_eq!(fit(10_000, 1, 256), 95);
        assert!(
            needed(100, 1) <= 1024,
            "a small explicit setting fits a small limit"
        );
    }

    #[test]
    fn target_connections_get_what_the_clients_leave() {
        // The limit weir sizes: as many target connections as client connections.
        assert_eq!(target_connections(needed(1000, 2), 1000, 2), 1000);
        // A default fitted to a small limit: (1024 − 64 − 1) / 2 = 479 clients, 480 targets.
        let clients = fit(10_000, 1, 1024);
        assert_eq!(target_connections(1024, clients, 1), 480);
        // A larger limit than needed: the rest.
        assert_eq!(
            target_connections(100_000, 1000, 1),
            100_000 - 1000 - SLACK as usize - 1
        );
        assert_eq!(target_connections(10, 1000, 1), 1);
        // RLIM_INFINITY: all but the clients, slack and listener.
        assert_eq!(
            target_connections(u64::MAX, 1, 1) as u64,
            u64::MAX - SLACK - 2
        );
    }

    #[test]
    fn only_a_file_that_sets_the_key_sets_it() {
        let dir = std::env::temp_dir().join(format!("weir-nofile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b, c) = (dir.join("a.toml"), dir.join("b.toml"), dir.join("c.toml"));
        std::fs::write(&a, "[load_balancer]\nmax_connections_per_worker = 5\n").unwrap();
        std::fs::write(&b, "load_balancer.max_connections_per_worker = 5\n").unwrap();
        std::fs::write(&c, "[load_balancer]\nidle_timeout.timeout_seconds = 5\n").unwrap();
        assert!(connections_set(Some(&a)));
        assert!(connections_set(Some(&b)));
        assert!(!connections_set(Some(&c)));
        assert!(!connections_set(None));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_soft_limit_is_raised_within_the_hard_one_first() {
        assert_eq!(plan(100, 1024, 4096), Plan::Enough);
        assert_eq!(plan(2000, 1024, 4096), Plan::RaiseSoft(2000));
        assert_eq!(plan(5000, 1024, 4096), Plan::RaiseBoth(5000));
    }
}
