//! Metrics of the whole `weir run`, aggregated in the control plane: the L7 workers' counters
//! (named as ALB's CloudWatch metrics), target health, the XDP counters, the generation, DNS
//! discovery's resolutions (`crate::discovery::view`) — served
//! as Prometheus text (`[metrics] address`, [`server`]) and as JSON on the admin API
//! (`GET /v1/metrics`, [`view`]). See `docs/metrics.md`.
//!
//! ```text
//!  weir worker i: atomics (lb_l7::metrics) ──every PERIOD: Figures as one JSON line──► pipe
//!       (WEIR_METRICS_FD, inherited before the sandbox; the worker only writes)        │
//!  weir run: reader task per worker process ──► Store (per slot: base + last, monotonic)
//!            scrape / GET /v1/metrics ──► assemble::view(Store, HealthTable, pinned XDP maps)
//!                                          + assemble::discovery(discovery's Board)
//!                                          ──► JSON (view) | Prometheus text (prom)
//! ```
//!
//! - [`series`]: a worker's figures as flat series, and their wire line.
//! - [`store`]: the sum over workers, kept monotonic across worker restarts.
//! - [`view`]: the JSON shape (stable). [`assemble`]: building it. Pure.
//! - [`prom`]: the Prometheus text of a view, with `prometheus-client`. Pure.
//! - [`push`]: the worker's side. [`server`]: the control plane's HTTP endpoint.

pub mod assemble;
pub mod prom;
pub mod push;
pub mod reader;
pub mod series;
pub mod server;
pub mod source;
pub mod store;
pub mod view;

use std::time::Duration;

/// How often a worker reports: the L7 figures are at most this old (plus the pipe's delay).
pub const PERIOD: Duration = Duration::from_millis(500);

/// The environment variable naming the fd a worker writes its reports to.
pub const FD_ENV: &str = "WEIR_METRICS_FD";

#[cfg(test)]
mod tests;
