//! `RLIMIT_NOFILE` sized for the workers before they start (they inherit it).
//!
//! A worker holds up to `max_connections_per_worker` client connections and, while they wait
//! for a response, about as many target connections, plus its listening sockets and a few of
//! its own (epoll, the signal pipe, stdio, the access log): it needs
//! `max_connections_per_worker × 2 + slack` descriptors. The control plane raises the soft limit
//! to that (and the hard one when it may), or refuses to start and says what to set. Past the
//! limit anyway (the process table is shared), the worker's accept loop sheds connections instead
//! of spinning (`lb_l7::proxy::fd_limit`).

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors a worker needs besides its connections.
pub const SLACK: u64 = 256;

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

/// Raises this process's limit so a worker gets `need`; returns the soft limit in force.
pub fn ensure(max_connections_per_worker: usize, listeners: usize) -> Result<u64, NofileError> {
    let need = needed(max_connections_per_worker, listeners);
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(NofileError::Read)?;
    let set = match plan(need, soft, hard) {
        Plan::Enough => return Ok(soft),
        Plan::RaiseSoft(n) => setrlimit(Resource::RLIMIT_NOFILE, n, hard),
        Plan::RaiseBoth(n) => setrlimit(Resource::RLIMIT_NOFILE, n, n),
    };
    set.map(|()| need).map_err(|e| NofileError::TooLow {
        need,
        max: max_connections_per_worker,
        slack: SLACK,
        soft,
        hard,
        why: e.desc().to_string(),
    })
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
    fn the_soft_limit_is_raised_within_the_hard_one_first() {
        assert_eq!(plan(100, 1024, 4096), Plan::Enough);
        assert_eq!(plan(2000, 1024, 4096), Plan::RaiseSoft(2000));
        assert_eq!(plan(5000, 1024, 4096), Plan::RaiseBoth(5000));
    }
}
