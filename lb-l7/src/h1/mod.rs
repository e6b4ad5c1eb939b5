//! weir's own HTTP/1.1 engine: the client side of every HTTP/1.1 connection (plain or TLS)
//! and the target side of the requests it forwards.
//!
//! Why not hyper here (hyper still serves HTTP/2 clients, `proxy::accept`): a proxy does not
//! need a request as an object with a streaming body, only the head (to route and rewrite)
//! and the body's framing (to relay it: a length as it is, chunked re-encoded). hyper's
//! client hands each request to the connection's task through a channel and wakes it, and its
//! connections keep read and write buffers while idle; that cost weir ~1.4× HAProxy's CPU per request and ~40 KB per idle
//! connection. Here a request is: one read, an `httparse` parse, the shared route decision
//! (`proxy::service::decide`), one write to a pooled target connection, one read, one write
//! to the client — all in the connection's own task; an idle connection holds no buffer.
//!
//! `codec` is pure (heads, framing, the chunked scanner and re-encoder); `relay` moves bodies
//! and tunnels; `forward` talks to targets (`upgrade`, pure: which 101 it honours); `server`
//! runs a client connection; `body` is a target's response as an `http_body::Body`, for HTTP/2
//! clients (hyper's server), which are forwarded over the same raw pooled connections; `fuzz`
//! is the pipeline the fuzz target drives.

pub mod body;
pub mod codec;
pub mod desync;
pub mod forward;
pub mod idle;
pub mod relay;
pub mod server;
pub mod stream;
pub mod upgrade;

#[cfg(test)]
mod codec_fuzz;
#[cfg(test)]
mod codec_tests;
/// The request pipeline as a pure function and its invariant, for the fuzz target.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
