//! The admin API: JSON over HTTP/1.1 on a root-only Unix socket of `weir run`, versioned paths
//! (`/v1/…`), and the CLI verbs on it (`weir status`, `weir targets register`, …). The protocol
//! is documented in `docs/admin-api.md`.
//!
//! - [`api`]: routing and answers, without I/O, over an [`api::AdminState`]. Pure.
//! - [`error`], [`model`], [`views`]: the API's objects (errors, status and targets, listeners
//!   and rules; DNS discovery's records are `crate::discovery::view`'s). Pure.
//! - [`daemon`]: the running control plane as an `AdminState`, with the delegates the other parts
//!   of `weir run` provide.
//! - [`procs`]: the worker processes as `/proc` shows them.
//! - [`path`]: where a daemon's socket is (daemon and CLI).
//! - [`server`]: the socket (stale ones removed, mode 0600) and the hyper server.
//! - [`client`], [`verbs`], [`text`]: the CLI side.

pub mod api;
pub mod client;
pub mod daemon;
pub mod error;
pub mod model;
pub mod path;
pub mod procs;
pub mod server;
pub mod text;
pub mod verbs;
pub mod views;
pub mod wiring;

use std::{path::PathBuf, sync::Arc};

pub use daemon::{Daemon, Delegates};
pub use server::{Bound, Server};

use crate::{config::Config, xdp::attach::Attachment};

/// Binds the daemon's admin socket (`None` with `[admin] enabled = false`). Called before
/// `weir run` starts anything: a socket another daemon answers on stops the start.
pub fn bind(cfg: &Config, iface: Option<&str>) -> anyhow::Result<Option<Bound>> {
    if !cfg.admin.enabled {
        return Ok(None);
    }
    let p = path::for_daemon(&cfg.admin, iface)?;
    Ok(Some(server::bind(&p)?))
}

/// Serves the bound socket once the control plane runs. The server stops and its socket is
/// removed when the returned value is dropped.
pub fn serve(
    bound: Option<Bound>,
    cfg: &Config,
    config_path: Option<PathBuf>,
    xdp: Vec<model::XdpInterface>,
    delegates: Delegates,
) -> anyhow::Result<Option<Server>> {
    let Some(b) = bound else { return Ok(None) };
    let socket = b.path().to_path_buf();
    let daemon = Daemon::new(cfg, config_path, socket, xdp, delegates);
    Ok(Some(b.serve(Arc::new(daemon))?))
}

/// How an attachment shows in `weir status`.
pub fn xdp_interface(a: &Attachment) -> model::XdpInterface {
    model::XdpInterface {
        iface: a.iface.clone(),
        mode: a.mode.name().into(),
        attached: true,
        syn_cookies_refused: None,
    }
}
