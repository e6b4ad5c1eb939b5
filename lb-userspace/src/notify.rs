//! The service manager's view of `weir run` (systemd's `Type=notify` protocol, `sd_notify(3)`):
//! `READY=1` once weir serves, `RELOADING=1` … `READY=1` around each reload, `STOPPING=1` at
//! the stop, `STATUS=` lines `systemctl status` shows, and `WATCHDOG=1` from the main loop while
//! the unit asks for it (`WatchdogSec=`: a control plane stuck in its loop stops pinging and is
//! restarted). Nothing is sent without `NOTIFY_SOCKET`; a failed send is logged once and never
//! stops weir. The workers do not inherit the variables ([`WORKER_ENV_REMOVED`]): the manager
//! listens to the main process only.

use std::{
    sync::atomic::{AtomicBool, Ordering::Relaxed},
    time::Duration,
};

use sd_notify::NotifyState;

/// The variables a worker process is started without.
pub const WORKER_ENV_REMOVED: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// A send failed already (logged once: a missing manager socket fails every send alike).
static FAILED: AtomicBool = AtomicBool::new(false);

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states)
        && !FAILED.swap(true, Relaxed)
    {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// Startup is done: the listeners are served by every worker, XDP is attached.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload begins (`MONOTONIC_USEC` with it, as systemd 253 and later ask).
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

/// A reload is over, applied or refused (`status` says which): serving again either way.
pub fn reloaded(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: draining"),
    ]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// How often the main loop pings, when the unit has a watchdog for this process: half its
/// timeout, as `sd_watchdog_enabled(3)` advises.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
}

pub fn watchdog_ping() {
    send(&[NotifyState::Watchdog]);
}
