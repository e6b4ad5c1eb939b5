//! weir's own HTTP/1.1 engine: the client side of every HTTP/1.1 connection (plain or TLS),
//! driving the request pipeline (`crate::pipeline`) and forwarding over its target connections.
//!
//! Why not hyper here (hyper still serves HTTP/2 clients, `crate::h2`): a proxy does not
//! need a request as an object with a streaming body, only the head (to route and rewrite)
//! and the body's framing (to relay it: a length as it is, chunked re-encoded). hyper's
//! client hands each request to the connection's task through a channel and wakes it, and its
//! connections keep read and write buffers while idle; that cost weir ~1.4× HAProxy's CPU per request and ~40 KB per idle
//! connection. Here a request is: one read, an `httparse` parse, the shared route decision
//! (`pipeline::decide`), one write to a pooled target connection, one read, one write
//! to the client — all in the connection's own task; an idle connection holds no buffer.
//!
//! `server` runs a client connection (a connection that turns out to speak h2c is handed to
//! the HTTP/2 engine the accept loop gives it); `forward` relays a request to a target and its
//! response to the client (`upload`: its body, watching for an early answer; `upgrade`, pure:
//! which 101 it honours); `slot` the per-thread spare blocks each request's future lives in;
//! `stream` is the client's stream; `fuzz` is the pipeline the fuzz target drives. The HTTP/1.1 wire format both
//! engines speak to targets (`codec`, `relay`, `desync`) is the pipeline's.
//! Never imports `crate::h2` (`crate::layering` checks).

pub mod forward;
pub mod server;
mod slot;
pub mod stream;
pub mod upgrade;
mod upload;

/// The request pipeline as a pure function and its invariant, for the fuzz target.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;

/// The worker's sweep of this engine's per-thread spares (`slot`): returns the bytes released
/// (nominally).
pub fn trim_spares() -> usize {
    slot::trim()
}

/// Spare blocks held on this thread (`slot`).
#[cfg(test)]
pub(crate) fn spares_held() -> usize {
    slot::held()
}

/// `n` turn-sized futures out at once and dropped: the slot pool as a burst leaves it.
#[cfg(test)]
pub(crate) fn fill_spares_for_test(n: usize) {
    slot::fill_for_test(n);
}
