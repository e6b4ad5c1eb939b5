//! Test harnesses shared by weir's integration tests, fixtures and benchmarks.
//!
//! - [`packet`]: a fluent builder of raw Ethernet frames with correct (or deliberately wrong)
//!   checksums, and a decoder to assert on frames field by field.
//! - [`lab`]: network-namespace labs (namespaces, veths, addresses, routes, XDP attachments,
//!   processes) that clean up after themselves, panics included.

pub mod lab;
pub mod packet;
