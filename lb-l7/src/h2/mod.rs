//! The HTTP/2 engine: hyper's server for HTTP/2 clients, with weir's limits on it (a buffering
//! bound per connection, idle/header-read/write deadlines, cancelled-stream accounting:
//! docs/l7.md, "HTTP/2 clients"). `server` runs a connection (hyper's settings), `service`
//! one request through the pipeline (`crate::pipeline`), `forward` sends it over the same raw
//! pooled HTTP/1.1 target connections as the HTTP/1.1 engine and `body` hands the target's
//! response to hyper (`unread`: a response of weir's own before the request body was read);
//! `orphan` finishes a target's response whose stream was reset; `io`,
//! `frames` and `h2rules` are the limits. Never imports `crate::h1` (`crate::layering`
//! checks).

pub mod body;
pub mod forward;
pub mod frames;
pub mod h2rules;
pub mod io;
pub mod orphan;
pub mod server;
pub mod service;
pub mod unread;
