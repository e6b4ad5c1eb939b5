//! `[[listener]]`, its rules and actions.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

pub(crate) fn default_listener_address() -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// weir: address to bind, default `0.0.0.0`.
    #[serde(default = "default_listener_address")]
    pub address: IpAddr,
    pub port: u16,
    /// weir: bind `address` even while no interface of the host has it (`IP_FREEBIND`): an
    /// address that comes later — a VRRP/keepalived or BGP-announced VIP, DHCP's — is served
    /// from the moment it arrives. The per-listener form of `net.ipv4.ip_nonlocal_bind = 1`.
    #[serde(default)]
    pub freebind: bool,
    #[serde(default)]
    pub protocol: Protocol,
    /// HTTPS only: certificates; the first is the default, the others are chosen by SNI.
    #[serde(default)]
    pub certificate: Vec<Certificate>,
    /// HTTPS only (validation refuses it on an HTTP listener): the ALPN policy, default
    /// `HTTP2Preferred` ([`Listener::alpn`]).
    #[serde(default)]
    pub alpn_policy: Option<AlpnPolicy>,
    #[serde(default = "default_default_action")]
    pub default_action: Action,
    #[serde(default)]
    pub rule: Vec<Rule>,
}

impl Listener {
    /// The listener's ALPN policy (`HTTP2Preferred` when not set).
    pub fn alpn(&self) -> AlpnPolicy {
        self.alpn_policy.unwrap_or_default()
    }

    /// The address and port the listener binds.
    pub fn socket_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.address, self.port)
    }
}

fn default_default_action() -> Action {
    Action::FixedResponse {
        status_code: 404,
        content_type: Some("text/plain".into()),
        message_body: "weir: no rule matched\n".into(),
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
}

impl Protocol {
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }
}

/// ALB's ALPN policies. `HTTP2Preferred` (weir's default) offers h2 then http/1.1. Over TLS
/// a connection speaks HTTP/2 only when ALPN chose h2; `HTTP2Only` refuses a client that does
/// not (an ALPN list without h2, or none: the alert `no_application_protocol`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum AlpnPolicy {
    #[default]
    HTTP2Preferred,
    HTTP2Optional,
    HTTP1Only,
    HTTP2Only,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub certificate_file: PathBuf,
    pub private_key_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// 1–50000, lowest first, unique per listener.
    pub priority: u32,
    #[serde(default)]
    pub condition: Vec<Condition>,
    pub action: Action,
}

/// One rule condition; `field` is ALB's condition name.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "field", deny_unknown_fields)]
pub enum Condition {
    #[serde(rename = "host-header")]
    HostHeader { values: Vec<String> },
    #[serde(rename = "path-pattern")]
    PathPattern { values: Vec<String> },
    #[serde(rename = "http-header")]
    HttpHeader {
        http_header_name: String,
        values: Vec<String>,
    },
    #[serde(rename = "http-request-method")]
    HttpRequestMethod { values: Vec<String> },
    #[serde(rename = "query-string")]
    QueryString { values: Vec<QueryStringValue> },
    #[serde(rename = "source-ip")]
    SourceIp { values: Vec<String> },
}

impl Condition {
    pub fn field_name(&self) -> &'static str {
        match self {
            Condition::HostHeader { .. } => "host-header",
            Condition::PathPattern { .. } => "path-pattern",
            Condition::HttpHeader { .. } => "http-header",
            Condition::HttpRequestMethod { .. } => "http-request-method",
            Condition::QueryString { .. } => "query-string",
            Condition::SourceIp { .. } => "source-ip",
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueryStringValue {
    #[serde(default)]
    pub key: Option<String>,
    pub value: String,
}

/// A rule's (terminal) action; `type` is ALB's action type.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Action {
    /// `target_group = "name"`, or `target_groups = [{ name, weight }]` (up to 5, weights 0–999).
    #[serde(rename = "forward")]
    Forward {
        #[serde(default)]
        target_group: Option<String>,
        #[serde(default)]
        target_groups: Vec<WeightedTargetGroup>,
        /// Group stickiness (ALB's `TargetGroupStickinessConfig`): a client keeps its group.
        #[serde(default)]
        stickiness: Option<GroupStickiness>,
    },
    /// Components default to the request's own (`#{protocol}` etc.); at least one must change.
    #[serde(rename = "redirect")]
    Redirect {
        #[serde(default = "tok_protocol")]
        protocol: String,
        #[serde(default = "tok_host")]
        host: String,
        #[serde(default = "tok_port")]
        port: String,
        #[serde(default = "tok_path")]
        path: String,
        #[serde(default = "tok_query")]
        query: String,
        status_code: RedirectStatus,
    },
    #[serde(rename = "fixed-response")]
    FixedResponse {
        status_code: u16,
        #[serde(default)]
        content_type: Option<String>,
        #[serde(default)]
        message_body: String,
    },
}

fn tok_protocol() -> String {
    "#{protocol}".into()
}
fn tok_host() -> String {
    "#{host}".into()
}
fn tok_port() -> String {
    "#{port}".into()
}
fn tok_path() -> String {
    "/#{path}".into()
}
fn tok_query() -> String {
    "#{query}".into()
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum RedirectStatus {
    #[serde(rename = "HTTP_301")]
    Http301,
    #[serde(rename = "HTTP_302")]
    Http302,
}

impl RedirectStatus {
    pub fn code(self) -> u16 {
        match self {
            RedirectStatus::Http301 => 301,
            RedirectStatus::Http302 => 302,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WeightedTargetGroup {
    pub name: String,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// `stickiness = { enabled = true, duration_seconds = 3600 }` on a forward action.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupStickiness {
    #[serde(default)]
    pub enabled: bool,
    /// 1–604800 (required when enabled, like ALB's `DurationSeconds`).
    #[serde(default)]
    pub duration_seconds: u64,
}

impl Action {
    /// The weighted target groups of a forward action, whichever form was written.
    pub fn forward_groups(&self) -> Vec<WeightedTargetGroup> {
        match self {
            Action::Forward {
                target_group,
                target_groups,
                ..
            } => {
                let mut v = target_groups.clone();
                if let Some(name) = target_group {
                    v.insert(
                        0,
                        WeightedTargetGroup {
                            name: name.clone(),
                            weight: 1,
                        },
                    );
                }
                v
            }
            _ => Vec::new(),
        }
    }
}
