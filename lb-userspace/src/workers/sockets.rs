//! The listening sockets: one per (listener, worker), made and kept by the control plane.
//!
//! Keeping them here rather than in the workers means a worker's death closes nothing: the
//! connections queued on its socket wait for its replacement, which inherits the same socket,
//! instead of being reset; and the steering program's socket array never loses an entry.

use std::{
    net::SocketAddr,
    os::fd::{AsRawFd, RawFd},
};

use anyhow::Context;
use socket2::Socket;

/// The sockets of one listener, indexed by worker.
pub struct ListenerGroup {
    pub addr: SocketAddr,
    pub sockets: Vec<Socket>,
}

impl ListenerGroup {
    pub fn fd_of(&self, worker: usize) -> RawFd {
        self.sockets[worker].as_raw_fd()
    }
}

/// Binds `workers` SO_REUSEPORT sockets for every listener address.
pub fn bind_groups(addrs: &[SocketAddr], workers: usize) -> anyhow::Result<Vec<ListenerGroup>> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let sockets = (0..workers)
                .map(|_| lb_l7::bind_socket(*addr).map(Socket::from))
                .collect::<anyhow::Result<Vec<_>>>()
                .with_context(|| format!("listener[{i}] on {addr}"))?;
            Ok(ListenerGroup {
                addr: *addr,
                sockets,
            })
        })
        .collect()
}
