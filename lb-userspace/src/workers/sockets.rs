//! The listening sockets: one per (listener, worker), made and kept by the control plane.
//!
//! Keeping them here rather than in the workers means a worker's death closes nothing by
//! accident: the supervisor decides when a dead worker's sockets close (so the kernel migrates
//! their queues to the live workers, [`ListenerGroup::replace`]), the reuseport group and its
//! steering program outlive every worker, and a restarted worker inherits sockets that were
//! listening before it started.

use std::{
    net::SocketAddr,
    os::fd::{AsRawFd, RawFd},
};

use anyhow::Context;
use socket2::Socket;

/// The sockets of one listener, indexed by worker.
pub struct ListenerGroup {
    pub addr: SocketAddr,
    /// Bound even while the host does not have the address (the listener's `freebind`).
    pub freebind: bool,
    pub sockets: Vec<Socket>,
    /// Its slot in the steering program's socket array (`STEER_SOCKETS[slot · 64 + worker]`):
    /// kept for the listener's life, whatever its place in later configurations.
    pub slot: usize,
}

impl ListenerGroup {
    pub fn fd_of(&self, worker: usize) -> RawFd {
        self.sockets[worker].as_raw_fd()
    }

    /// Closes worker `worker`'s socket — the kernel migrates the connections queued on it to the
    /// group's other sockets (with `net.ipv4.tcp_migrate_req` on) — and binds a fresh one for the
    /// worker's restart. The fresh socket joins the group only after the old one is closed, so
    /// nothing migrates into a socket no process serves yet. A group of one socket keeps it: with
    /// no other worker to migrate to, its queue waits for the restart instead.
    /// Returns the fresh socket, or `None` when the socket was kept.
    pub fn replace(&mut self, worker: usize) -> anyhow::Result<Option<&Socket>> {
        if self.sockets.len() < 2 {
            return Ok(None);
        }
        // A placeholder while the old socket closes: an unbound socket, never in the group.
        let placeholder = Socket::new(
            socket2::Domain::for_address(self.addr),
            socket2::Type::STREAM,
            None,
        )?;
        drop(std::mem::replace(&mut self.sockets[worker], placeholder));
        self.sockets[worker] = Socket::from(lb_l7::bind_socket(self.addr, self.freebind)?);
        Ok(Some(&self.sockets[worker]))
    }
}

/// Binds `workers` SO_REUSEPORT sockets for every listener (steering slots in order).
pub fn bind_groups(
    listeners: &[lb_l7::config::Listener],
    workers: usize,
) -> anyhow::Result<Vec<ListenerGroup>> {
    listeners
        .iter()
        .enumerate()
        .map(|(i, l)| bind_group(l, workers, i).with_context(|| format!("listener[{i}]")))
        .collect()
}

/// Binds `workers` SO_REUSEPORT sockets for `listener` (one added by a reload gets a free
/// `slot`).
pub fn bind_group(
    listener: &lb_l7::config::Listener,
    workers: usize,
    slot: usize,
) -> anyhow::Result<ListenerGroup> {
    let (addr, freebind) = (listener.socket_addr(), listener.freebind);
    lb_l7::ensure_port_free(addr, freebind)?;
    let sockets = (0..workers)
        .map(|_| lb_l7::bind_socket(addr, freebind).map(Socket::from))
        .collect::<anyhow::Result<Vec<_>>>()
        .with_context(|| format!("on {addr}"))?;
    Ok(ListenerGroup {
        addr,
        freebind,
        sockets,
        slot,
    })
}
