//! weir's own HTTP/2 engine: the driver of the sans-I/O protocol core (`crate::h2conn`) over a
//! client connection (TLS with ALPN h2, or h2c prior knowledge handed over by the HTTP/1.1
//! engine through the accept loop). One task per connection and no task per stream: the task
//! owns the `Connection`, the client's I/O and every stream's request future
//! (`crate::http2::service::handle`, the same phases as hyper's engine), and polls them itself
//! (`streams`: a slot per stream, woken through its own waker). `recv` is a stream's request
//! body, fed from the connection's DATA frames and handing flow-control credit back only as the
//! pipeline consumes it; `head` turns a pipeline response head into an HTTP/2 one; `server`
//! is the connection loop (reads drained, then one write per batch; deadlines; GOAWAY on stop,
//! keep-alive, the request limit, abuse); `send_queues` the streams' spare send queues. Selected by `[load_balancer] http2_engine = "weir"`,
//! the default (docs/l7.md). Never imports the other engines (`crate::layering` checks).

pub mod head;
pub mod recv;
pub mod send_queues;
pub mod server;
mod streams;
