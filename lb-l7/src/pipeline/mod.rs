//! The request pipeline both engines drive, in Pingora-like phases: parse checks (`parse`) →
//! route (`decide`) → pick target and forward with the retry rules (`attempt`) → prepare
//! upstream (`prepare`) → respond (`respond`) → log (`crate::access_log`). It knows no engine:
//! `crate::h1` (weir's HTTP/1.1 engine) and `crate::http2` (HTTP/2 requests, for hyper's
//! engine `crate::h2` and weir's `crate::h2weir`) import it, never the other way
//! (`crate::layering` checks). What it speaks to targets is HTTP/1.1:
//! `codec` (heads, framing, the chunked scanner; pure, with the desync classification of
//! `desync`) and `relay` (bodies and tunnels), which the HTTP/1.1 engine uses for its clients
//! too; `early` watches a target for its answer while a request body still goes to it (both
//! engines' uploads). This module holds what a request's phases share: the generation (`Shared`) and the
//! client connection (`ConnInfo`).

pub mod attempt;
pub mod codec;
pub mod decide;
pub mod desync;
pub mod early;
pub mod normal;
pub mod parse;
pub mod prepare;
pub mod readbuf;
pub mod relay;
pub mod respond;

#[cfg(test)]
pub(crate) mod codec_fuzz;
#[cfg(test)]
mod codec_tests;

use crate::access_log::AccessLog;
use crate::config::{L7Config, Listener};
use crate::metrics::Metrics;
use crate::rules::RuleSet;
use crate::target::GroupRt;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::time::Duration;

/// Everything a worker's tasks share (read-only apart from atomics and pools): one
/// configuration generation (`config` … `trace_header`) and the worker-wide state every generation
/// shares (`metrics` …, `Arc`s cloned into each). A task holds the generation it started in;
/// a request keeps it to its end, a connection moves to the newest one between requests
/// ([`Shared::newest`], `crate::generation`).
#[derive(Debug)]
pub struct Shared {
    /// The generation's number (the control plane's; 0 for a configuration given directly).
    pub generation: u64,
    pub config: Arc<L7Config>,
    pub groups: HashMap<String, Arc<GroupRt>>,
    /// The listeners' rules and TLS, in listener order (the sockets are the worker's).
    pub listeners: Vec<Arc<ListenerRt>>,
    pub limits: Limits,
    /// `[load_balancer] trace_header` as a header name, parsed once.
    pub trace_header: http::HeaderName,
    /// The worker's newest generation, once a reload replaced the first: one cell every
    /// generation of the worker shares (`crate::generation::switch` fills it). Not a link from
    /// each generation to the next: a task (or the worker) still holding an old generation
    /// keeps that one alive, not every generation made after it.
    pub latest: Arc<Latest>,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
    pub worker_index: usize,
    /// Turns true when the worker stops.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Deadlines of idle HTTP/1.1 connections (fired by the worker's ticker and at stop).
    pub idle: Arc<crate::idle::IdleDeadlines>,
    /// The ports the worker listens on: HTTP/2 connections wait there for their listener's
    /// removal (`crate::listener_ports`).
    pub ports: Arc<crate::listener_ports::ListenerPorts>,
    /// Deadlines of requests waiting for a target's response head (not fired at stop:
    /// in-flight requests drain).
    pub timers: Arc<crate::idle::IdleDeadlines>,
    /// The time as of the last tick (see `CoarseClock`).
    pub clock: Arc<crate::idle::CoarseClock>,
    /// The `ConnState` of HTTP/1.1 connections: weir's engine does not use it (hyper's path
    /// does), so they share one instead of allocating one each.
    pub h1_state: Arc<ConnState>,
    /// Targets that left the configuration and still finish their requests.
    pub draining: Arc<crate::draining::Draining>,
    /// The worker's open target connections and their cap (`crate::target_conns`).
    pub target_conns: Arc<crate::target_conns::TargetConns>,
}

/// A worker's newest generation (see `Shared::latest`).
#[derive(Debug)]
pub struct Latest {
    /// Its number: a task on the newest generation learns it is with one relaxed load.
    pub number: AtomicU64,
    /// It, once a reload replaced the first (`None` before: the first holds no cycle to itself).
    pub shared: arc_swap::ArcSwapOption<Shared>,
}

impl Latest {
    pub fn new(first: u64) -> Arc<Latest> {
        Arc::new(Latest {
            number: AtomicU64::new(first),
            shared: Default::default(),
        })
    }

    /// Makes `new` the newest generation.
    pub fn store(&self, new: Arc<Shared>) {
        let number = new.generation;
        self.shared.store(Some(new));
        self.number.store(number, Release);
    }
}

impl Shared {
    /// The newest generation, when this one was replaced (one atomic load when it was not).
    pub fn newest(&self) -> Option<Arc<Shared>> {
        if self.latest.number.load(Acquire) == self.generation {
            return None;
        }
        self.latest
            .shared
            .load_full()
            .filter(|n| !std::ptr::eq(Arc::as_ptr(n), self))
    }

    /// The listener on `port` in this generation (ports are unique in a configuration), if
    /// the generation has one there.
    pub fn listener_on(&self, port: u16) -> Option<&Arc<ListenerRt>> {
        self.listeners.iter().find(|l| l.config.port == port)
    }
}

/// A request body weir does not forward (it answered itself) is read and dropped up to this
/// size so the connection can go on; a larger one closes the connection.
pub(crate) const MAX_DISCARD: u64 = 1024 * 1024;

/// Completes once shutdown was asked (or the sender is gone).
pub async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|&s| s).await;
}

/// Durations and sizes taken from `[load_balancer]`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub client_keep_alive: Duration,
    pub connect_timeout: Duration,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub drain_timeout: Duration,
    pub websocket_idle_timeout: Duration,
    pub h2_max_requests: u64,
    /// Largest request body forwarded; `None`: no limit.
    pub max_request_body: Option<u64>,
}

impl Limits {
    pub fn from_config(c: &L7Config) -> Limits {
        let lb = &c.load_balancer;
        Limits {
            idle_timeout: Duration::from_secs(lb.idle_timeout.timeout_seconds),
            client_keep_alive: Duration::from_secs(lb.client_keep_alive.seconds),
            connect_timeout: Duration::from_secs(lb.connect_timeout_seconds),
            header_read_timeout: Duration::from_secs(lb.header_read_timeout_seconds),
            max_connections: lb.max_connections_per_worker,
            drain_timeout: Duration::from_secs(lb.drain_timeout_seconds),
            h2_max_requests: lb.http2_max_requests_per_connection,
            max_request_body: (lb.max_request_body_bytes > 0).then_some(lb.max_request_body_bytes),
            websocket_idle_timeout: Duration::from_secs(match lb.websocket_idle_timeout_seconds {
                0 => lb.idle_timeout.timeout_seconds,
                s => s,
            }),
        }
    }
}

/// One listener at run time.
#[derive(Debug)]
pub struct ListenerRt {
    pub index: usize,
    pub config: Listener,
    pub rules: RuleSet,
    /// The port as text (for `Host` rewriting without formatting per request).
    pub port_text: String,
    /// X-Forwarded-Proto and -Port values.
    pub forwarded: crate::headers::ListenerForwarded,
    /// HTTPS: which certificate an SNI name gets.
    pub sni: Option<Arc<crate::tls::SniResolver>>,
    /// HTTPS: the TLS server configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// State one client connection shares between its I/O wrapper and its requests.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Requests whose response has not finished.
    pub in_flight: AtomicUsize,
    /// Requests seen so far on this connection.
    pub requests: AtomicU64,
    /// Wakes the connection task to close gracefully (HTTP/2 GOAWAY after
    /// `http2_max_requests_per_connection` requests, like ALB).
    pub close_gracefully: tokio::sync::Notify,
    /// Streams cancelled (reset by either side, or dropped) before their response ended.
    pub cancelled: AtomicU64,
    /// Set when the cancelled streams made the connection an abuser (`h2rules::abusive`): it
    /// gets GOAWAY and little time to finish.
    pub abusive: AtomicBool,
    /// Set when the connection's drain deadline passed (the time its streams had after its
    /// GOAWAY): the streams it still has are dropped by weir, not cancelled by the client, and
    /// logged as cut (`access_log::CUT_AT_DRAIN_DEADLINE`).
    pub cut_at_drain: AtomicBool,
    /// HTTP/2: idle (no stream in flight, after one) since when, for the worker's list of
    /// idle connections it registers in (`idle::IdleDeadlines::register`), which may close it
    /// to make room at the connection limit.
    pub idle: crate::idle::IdleMark,
}

/// At the connection limit the worker asks an idle HTTP/2 connection to close through its
/// `close_gracefully` (its engine sends GOAWAY: `ConnState::idle` says why).
impl crate::idle::Reclaimable for ConnState {
    fn mark(&self) -> &crate::idle::IdleMark {
        &self.idle
    }
    fn close_idle(&self) {
        self.close_gracefully.notify_one();
    }
}

/// What requests know about their client connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub listener: Arc<ListenerRt>,
    pub peer: SocketAddr,
    /// The address the client connected to ([`local_ip`]): the Host weir generates for a
    /// request without one names it.
    pub local: IpAddr,
    /// Boxed: a plain connection (most idle ones) then pays one pointer for it.
    pub tls: Option<Box<TlsInfo>>,
    pub state: Arc<ConnState>,
    /// This client in X-Forwarded-For.
    pub xff_client: http::HeaderValue,
    /// Its listener was removed by a reload: the request being served is the last (HTTP/1.1
    /// `connection: close`).
    pub closing: bool,
}

impl ConnInfo {
    /// The same connection under generation `sh`: its listener's rules and TLS facts from there
    /// (the listener on the same port). Callers move a connection only to a generation that
    /// still has its listener ([`Shared::listener_on`]); one whose listener a reload removed
    /// stays in its generation and closes.
    pub fn in_generation(&self, sh: &Shared) -> ConnInfo {
        let listener = sh
            .listener_on(self.listener.config.port)
            .cloned()
            .unwrap_or_else(|| self.listener.clone());
        ConnInfo::new(
            sh,
            listener,
            self.peer,
            self.local,
            self.tls.clone(),
            self.state.clone(),
        )
    }

    pub fn new(
        sh: &Shared,
        listener: Arc<ListenerRt>,
        peer: SocketAddr,
        local: IpAddr,
        tls: Option<Box<TlsInfo>>,
        state: Arc<ConnState>,
    ) -> ConnInfo {
        let http = &sh.config.load_balancer.routing.http;
        let xff_client = crate::headers::xff_client(
            crate::rules::canonical_ip(peer.ip()),
            http.xff_client_port.enabled.then_some(peer.port()),
        );
        ConnInfo {
            listener,
            peer,
            local,
            tls,
            state,
            xff_client,
            closing: false,
        }
    }

    /// The same connection, told its listener is gone (see `closing`).
    pub fn closing(&self) -> ConnInfo {
        ConnInfo {
            listener: self.listener.clone(),
            peer: self.peer,
            local: self.local,
            tls: self.tls.clone(),
            state: self.state.clone(),
            xff_client: self.xff_client.clone(),
            closing: true,
        }
    }
}

/// The address a client connected to: its listener's, or for a listener on a wildcard
/// address (0.0.0.0, ::) the accepted socket's own (`local_addr`: getsockname, asked once per
/// connection), an IPv4-mapped one as IPv4; the listener's if the kernel will not say.
pub fn local_ip(
    listener: &Listener,
    local_addr: impl FnOnce() -> std::io::Result<SocketAddr>,
) -> IpAddr {
    let ip = match listener.address {
        a if !a.is_unspecified() => a,
        a => local_addr().map_or(a, |l| l.ip()),
    };
    crate::rules::canonical_ip(ip)
}

#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// The suite's OpenSSL name, as ALB's `ssl_cipher` (`crate::tls::openssl_cipher_name`).
    pub cipher: &'static str,
    /// `TLSv1.2` or `TLSv1.3`, as ALB's `ssl_protocol`.
    pub protocol: &'static str,
    pub sni: Option<String>,
    pub alpn_h2: bool,
    /// The certificate the connection got (its `certificate_file`): the access log's
    /// `chosen_cert_arn`.
    pub chosen_cert: Option<String>,
}
