//! hyper's HTTP/2 engine: hyper's server for HTTP/2 clients, with weir's limits on it (a
//! buffering bound per connection, idle/header-read/write deadlines, cancelled-stream
//! accounting: docs/l7.md, "HTTP/2 clients"). `server` runs a connection (hyper's settings),
//! each request through `crate::http2` (shared with weir's own engine, `crate::h2weir`); `io`
//! is the limits (with `crate::http2::frames`). Never imports the other engines (`crate::layering` checks).

pub mod io;
pub mod server;
