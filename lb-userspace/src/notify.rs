//! The service manager's view of `weir run` (systemd's `Type=notify` protocol, `sd_notify(3)`):
//! `READY=1` once weir serves, `RELOADING=1` … `READY=1` around each reload, `STOPPING=1` at
//! the stop, `STATUS=` lines `systemctl status` shows, and `WATCHDOG=1` from the main loop while
//! the unit asks for it (`WatchdogSec=`: a control plane stuck in its loop stops pinging and is
//! restarted). Nothing is sent without `NOTIFY_SOCKET`; a failed send is logged once and never
//! stops weir. The workers do not inherit the variables ([`WORKER_ENV_REMOVED`]): the manager
//! listens to the main process only.
//!
//! The socket is a path or, with a leading `@`, a name in the abstract namespace
//! (`sd_notify(3)`; managers in containers use those). The `sd-notify` crate gives the
//! messages and the watchdog's variables; the send is done here ([`send_to`]) because the
//! crate (0.5) connects to paths only: under an abstract socket every message failed, and
//! `READY=1` never reached the manager, which killed weir at its start timeout.

use std::{
    ffi::OsStr,
    io,
    os::unix::{ffi::OsStrExt, net::UnixDatagram},
    sync::atomic::{AtomicBool, Ordering::Relaxed},
    time::Duration,
};

use sd_notify::NotifyState;

/// The variables a worker process is started without.
pub const WORKER_ENV_REMOVED: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// A send failed already (logged once: a missing manager socket fails every send alike).
static FAILED: AtomicBool = AtomicBool::new(false);

fn send(states: &[NotifyState]) {
    let Some(addr) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let msg: String = states.iter().map(|s| format!("{s}\n")).collect();
    if let Err(e) = send_to(&addr, &msg)
        && !FAILED.swap(true, Relaxed)
    {
        tracing::warn!(error = %e, socket = ?addr, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// One datagram to the manager's socket `addr`: a path, or `@name` in the abstract namespace.
fn send_to(addr: &OsStr, msg: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    match addr.as_bytes() {
        [b'@', name @ ..] => {
            use std::os::linux::net::SocketAddrExt;
            let at = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.connect_addr(&at)?;
        }
        a if a.starts_with(b"vsock:") => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a vsock NOTIFY_SOCKET (a manager outside this VM) is not supported",
            ));
        }
        _ => sock.connect(addr)?,
    }
    if sock.send(msg.as_bytes())? != msg.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "incomplete write"));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;

    fn received(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn a_path_socket_gets_the_message() {
        let dir = std::env::temp_dir().join(format!("weir-notify-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let manager = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), "READY=1\nSTATUS=x\n").unwrap();
        assert_eq!(received(&manager), "READY=1\nSTATUS=x\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `@name`: the abstract namespace (the crate's own send took it for a path, `ENOENT`).
    #[test]
    fn an_abstract_socket_gets_the_message() {
        let name = format!("weir-notify-unit-{}", std::process::id());
        let at = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let manager = UnixDatagram::bind_addr(&at).unwrap();
        send_to(OsStr::new(&format!("@{name}")), "READY=1\n").unwrap();
        assert_eq!(received(&manager), "READY=1\n");
    }

    #[test]
    fn nobody_listening_and_vsock_are_errors_not_panics() {
        let gone = format!("@weir-notify-nobody-{}", std::process::id());
        assert!(send_to(OsStr::new(&gone), "READY=1\n").is_err());
        let e = send_to(OsStr::new("vsock:2:1234"), "READY=1\n").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    }
}
