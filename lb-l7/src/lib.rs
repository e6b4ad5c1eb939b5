//! weir's L7 worker: TLS (rustls), HTTP/1.1 (weir's own engine, `h1`) and HTTP/2 (hyper's,
//! `h2`, or weir's own, `h2weir` over the protocol core `h2conn`: `[load_balancer]
//! http2_engine`), ALB listener rules, target groups, pooled keep-alive forwarding. See
//! docs/l7.md.
//!
//! Layering (no import cycles; `layering` checks): `worker`, `listening`, `generation` (which
//! build and run generations) → `accept` → the engines `h1`, `h2`, `h2weir` (never each
//! other) → `http2` (HTTP/2 requests, no engine) → `pipeline` (the request's phases, no
//! engine) → the rest (`target`, `pool`, `rules`,
//! `select`, `headers`, `upstream`, `idle`, `draining`, `tls`, `config`, …).
//!
//! Pure modules: `rules`, `wildcard`, `select`, `outlier`, `slow_start`, `headers`,
//! `pool::PoolPolicy`, `pipeline::codec`, `pipeline::parse`,
//! `pipeline::respond::redirect_location`, `access_log::Record::format`.

pub mod accept;
pub mod access_log;
pub mod anomaly;
pub mod body;
pub mod cert_info;
pub mod certs;
pub mod config;
pub mod control;
pub mod draining;
pub mod expiry;
pub mod generation;
pub mod h1;
pub mod h2;
pub mod h2conn;
pub mod h2weir;
pub mod headers;
pub mod http2;
pub mod idle;
pub mod linger;
pub mod listener_ports;
pub mod listening;
pub mod log_limit;
pub mod metrics;
pub mod outlier;
pub mod pipeline;
pub mod pool;
pub mod rules;
pub mod select;
pub mod slow_start;
pub mod socket_channel;
pub mod spares;
pub mod sticky;
pub mod target;
pub mod target_conns;
pub mod target_health;
pub mod target_limit;
pub mod target_sets;
pub mod tcp_or_tls;
pub mod tickets;
pub mod tls;
pub mod upstream;
pub mod wildcard;
mod worker;

#[cfg(test)]
mod layering;
#[cfg(test)]
mod rules_tests;

pub use access_log::AccessLogTarget;
pub use config::{FieldError, L7Config};
pub use metrics::{Metrics, MetricsSnapshot};
pub use target::TargetState;
pub use worker::{MetricsHandle, Worker, WorkerOptions, bind_socket, ensure_port_free};
