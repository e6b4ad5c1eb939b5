//! `[load_balancer]`: ALB load balancer attributes plus weir's own limits.

use serde::Deserialize;

/// `{ enabled = bool }`, the shape of many ALB attributes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    pub enabled: bool,
}

const ON: Toggle = Toggle { enabled: true };
const OFF: Toggle = Toggle { enabled: false };

fn off() -> Toggle {
    OFF
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadBalancerAttributes {
    /// `idle_timeout.timeout_seconds`, 1–4000, default 60: client side and target side.
    pub idle_timeout: IdleTimeout,
    /// `client_keep_alive.seconds`, 60–604800, default 3600: a client connection is closed
    /// (gracefully) after this long even when busy.
    pub client_keep_alive: ClientKeepAlive,
    pub routing: Routing,
    /// weir: connect timeout to a target (ALB: 10 s, not configurable there).
    pub connect_timeout_seconds: u64,
    /// weir: a request's headers must arrive within this many seconds of its first byte, or the
    /// client gets 408 and the connection is closed (slowloris).
    pub header_read_timeout_seconds: u64,
    /// weir: client connections per worker; more are accepted and closed at once, counted as
    /// `RejectedConnectionCount`.
    pub max_connections_per_worker: usize,
    /// weir: path answered `200 OK` by weir itself on every listener, before rules. "" = off.
    pub health_check_path: String,
    /// weir: name of the trace id header (ALB: `X-Amzn-Trace-Id`).
    pub trace_header: String,
    /// weir: an HTTP/2 connection is closed gracefully (GOAWAY) after this many requests, like
    /// ALB's fixed 10,000; 0 = no limit.
    pub http2_max_requests_per_connection: u64,
    /// weir: which engine serves HTTP/2 clients: weir's own (`"weir"`, the default,
    /// `crate::h2weir`) or hyper's server (`"hyper"`). Taken per connection from the
    /// generation it starts in.
    pub http2_engine: Http2Engine,
    /// weir: idle timeout of a WebSocket (upgraded) tunnel; default 0 = `idle_timeout`.
    pub websocket_idle_timeout_seconds: u64,
    /// weir: how long `serve` waits for in-flight requests after shutdown is asked.
    pub drain_timeout_seconds: u64,
    /// weir: largest request body forwarded, in bytes (nginx's `client_max_body_size`); a
    /// larger one gets 413 and the connection is closed. Default 0 = no limit, like ALB with
    /// instance and IP targets.
    pub max_request_body_bytes: u64,
    /// weir: the `Upgrade` protocols an HTTP/1.1 request may tunnel to a target (compared
    /// case-insensitively, without a `/version`); default `["websocket"]`, ALB's only one. An
    /// `Upgrade` naming anything else (`h2c`, …) is removed with `HTTP2-Settings` and the request
    /// is forwarded as an ordinary one. `h2c` cannot be listed.
    pub upgrade_protocols: Vec<String>,
    pub access_logs: AccessLogs,
    /// weir: the availability zone this load balancer runs in (compared with targets'
    /// `availability_zone`); needed by target groups with `load_balancing.cross_zone.enabled =
    /// false`. "" = unknown.
    pub availability_zone: String,
}

impl Default for LoadBalancerAttributes {
    fn default() -> Self {
        LoadBalancerAttributes {
            idle_timeout: IdleTimeout::default(),
            client_keep_alive: ClientKeepAlive::default(),
            routing: Routing::default(),
            connect_timeout_seconds: 10,
            header_read_timeout_seconds: 10,
            max_connections_per_worker: 10_000,
            health_check_path: "/weir-health".into(),
            trace_header: "X-Amzn-Trace-Id".into(),
            http2_max_requests_per_connection: 10_000,
            http2_engine: Http2Engine::default(),
            websocket_idle_timeout_seconds: 0,
            drain_timeout_seconds: 30,
            max_request_body_bytes: 0,
            upgrade_protocols: vec!["websocket".into()],
            access_logs: AccessLogs::default(),
            availability_zone: String::new(),
        }
    }
}

/// `http2_engine`: `"hyper"` or `"weir"`; anything else is refused when the file is read.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Http2Engine {
    /// hyper's HTTP/2 server (`crate::h2`).
    Hyper,
    /// weir's own HTTP/2 engine (`crate::h2weir` over `crate::h2conn`).
    #[default]
    Weir,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdleTimeout {
    pub timeout_seconds: u64,
}
impl Default for IdleTimeout {
    fn default() -> Self {
        IdleTimeout {
            timeout_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientKeepAlive {
    pub seconds: u64,
}
impl Default for ClientKeepAlive {
    fn default() -> Self {
        ClientKeepAlive { seconds: 3600 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Routing {
    /// `routing.http2.enabled`, default true.
    pub http2: Toggle,
    pub http: RoutingHttp,
}
impl Default for Routing {
    fn default() -> Self {
        Routing {
            http2: ON,
            http: RoutingHttp::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingHttp {
    pub desync_mitigation_mode: DesyncMitigationMode,
    #[serde(default = "off")]
    pub drop_invalid_header_fields: Toggle,
    pub xff_header_processing: XffHeaderProcessing,
    #[serde(default = "off")]
    pub xff_client_port: Toggle,
    #[serde(default = "off")]
    pub preserve_host_header: Toggle,
}
impl Default for RoutingHttp {
    fn default() -> Self {
        RoutingHttp {
            desync_mitigation_mode: DesyncMitigationMode::Defensive,
            drop_invalid_header_fields: OFF,
            xff_header_processing: XffHeaderProcessing::default(),
            xff_client_port: OFF,
            preserve_host_header: OFF,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DesyncMitigationMode {
    Monitor,
    #[default]
    Defensive,
    Strictest,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct XffHeaderProcessing {
    pub mode: XffMode,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum XffMode {
    #[default]
    Append,
    Preserve,
    Remove,
}

/// `access_logs.enabled` (default false) and `access_logs.path` (`-` = stdout).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessLogs {
    #[serde(default)]
    pub enabled: bool,
    pub path: String,
}
impl Default for AccessLogs {
    fn default() -> Self {
        AccessLogs {
            enabled: false,
            path: "-".into(),
        }
    }
}
