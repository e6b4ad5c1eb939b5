//! The admin API without I/O: a request (method, path, query, body) is routed ([`route`]) and
//! answered ([`handle`]) from an [`AdminState`], the part of the control plane that knows the
//! answers. Everything here is deterministic and tested with a fake state.

use std::{future::Future, net::IpAddr, sync::Arc};

use serde::Serialize;

use super::{
    error::ApiError,
    model::{
        DiscoveryList, Reloaded, Status, TargetList, TargetSpec, TargetsChanged, TargetsRequest,
    },
    views,
};
use crate::config::Config;

/// What the control plane answers the admin API with. The delegates for changes (reload,
/// register, deregister) answer `NotImplemented` where the control plane has none.
pub trait AdminState: Send + Sync + 'static {
    fn status(&self) -> Status;
    /// The configuration the workers serve now.
    fn config(&self) -> Arc<Config>;
    /// The registered targets of `group` (known to exist in [`AdminState::config`]).
    fn targets(&self, group: &str) -> Result<TargetList, ApiError>;
    /// ALB's `describe-target-health` for every group, or the one named.
    fn target_health(&self, group: Option<&str>) -> Result<serde_json::Value, ApiError>;
    fn reload(&self) -> impl Future<Output = Result<Reloaded, ApiError>> + Send;
    /// The aggregate of every worker and the XDP tier (`crate::metrics::view::MetricsView`).
    fn metrics(&self) -> Result<serde_json::Value, ApiError> {
        Err(ApiError::not_implemented("metrics"))
    }
    /// The certificates the listeners serve now, described at the moment of the call (the
    /// listener on `port` only, known to exist).
    fn certificates(
        &self,
        _port: Option<u16>,
    ) -> Result<crate::certificates::CertificateList, ApiError> {
        Err(ApiError::not_implemented("certificates"))
    }
    /// DNS discovery's state of every discovering group (`group`: only that one, known to
    /// exist and to discover), by group name.
    fn discovery(
        &self,
        _group: Option<&str>,
    ) -> Result<Vec<crate::discovery::view::GroupDiscovery>, ApiError> {
        Err(ApiError::not_implemented(
            "DNS discovery (no L7 workers run: --no-l7 or no listeners)",
        ))
    }
    /// `targets` are checked (addresses, ports) and the group exists.
    fn register(
        &self,
        group: &str,
        targets: Vec<TargetSpec>,
    ) -> impl Future<Output = Result<TargetsChanged, ApiError>> + Send;
    fn deregister(
        &self,
        group: &str,
        targets: Vec<TargetSpec>,
    ) -> impl Future<Output = Result<TargetsChanged, ApiError>> + Send;
}

/// The largest request body read.
pub const MAX_BODY: usize = 64 * 1024;
/// The most targets one request may name (ALB's `RegisterTargets` takes at most 20 per call;
/// weir is more generous but bounded).
pub const MAX_TARGETS: usize = 1000;

/// An endpoint, with what the path named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Status,
    Listeners,
    Rules(u16),
    TargetsGet(String),
    TargetsRegister(String),
    TargetsDeregister(String),
    TargetHealth(Option<String>),
    /// Every discovering group's DNS discovery.
    Discovery,
    /// One group's.
    GroupDiscovery(String),
    Reload,
    Metrics,
    /// Every listener's certificates (`Some(port)`: that listener's).
    Certificates(Option<u16>),
}

/// Maps a request line to its endpoint, or the error to answer.
pub fn route(method: &str, path: &str, query: Option<&str>) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let only = |allowed: &'static str, r: Route| {
        if method == allowed {
            Ok(r)
        } else {
            Err(ApiError::method_not_allowed(method, path, allowed))
        }
    };
    match segs.as_slice() {
        ["v1", "status"] => only("GET", Route::Status),
        ["v1", "listeners"] => only("GET", Route::Listeners),
        ["v1", "listeners", port, "rules"] => only("GET", Route::Rules(port_of(port)?)),
        ["v1", "listeners", port, "certificates"] => {
            only("GET", Route::Certificates(Some(port_of(port)?)))
        }
        ["v1", "certificates"] => only("GET", Route::Certificates(None)),
        ["v1", "target-groups", name, "targets"] => {
            let name = name.to_string();
            match method {
                "GET" => Ok(Route::TargetsGet(name)),
                "POST" => Ok(Route::TargetsRegister(name)),
                "DELETE" => Ok(Route::TargetsDeregister(name)),
                _ => Err(ApiError::method_not_allowed(
                    method,
                    path,
                    "GET, POST, DELETE",
                )),
            }
        }
        ["v1", "target-groups", name, "discovery"] => {
            only("GET", Route::GroupDiscovery(name.to_string()))
        }
        ["v1", "discovery"] => only("GET", Route::Discovery),
        ["v1", "target-health"] => only("GET", Route::TargetHealth(target_group_param(query)?)),
        ["v1", "reload"] => only("POST", Route::Reload),
        ["v1", "metrics"] => only("GET", Route::Metrics),
        _ => Err(ApiError::not_found(path)),
    }
}

fn port_of(seg: &str) -> Result<u16, ApiError> {
    seg.parse()
        .map_err(|_| ApiError::invalid_request(format!("`{seg}` is not a port")))
}

/// `target_group=NAME` (the only parameter); names are letters, digits and `-`, so nothing is
/// percent-decoded.
fn target_group_param(query: Option<&str>) -> Result<Option<String>, ApiError> {
    let mut group = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("target_group", v)) if !v.is_empty() => group = Some(v.to_string()),
            _ => {
                return Err(ApiError::invalid_request(format!(
                    "unknown query parameter `{pair}` (only target_group=NAME)"
                )));
            }
        }
    }
    Ok(group)
}

/// An answer: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    /// A 405's `Allow` (RFC 9110 §15.5.6): the endpoint's methods.
    pub allow: Option<&'static str>,
}

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Answer {
        Answer {
            status: e.status,
            body: json(&e.body()),
            allow: e.allow,
        }
    }
}

fn json<T: Serialize>(v: &T) -> serde_json::Value {
    // Our own types: maps with string keys only, so this cannot fail.
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn ok<T: Serialize>(v: &T) -> Answer {
    Answer {
        status: 200,
        body: json(v),
        allow: None,
    }
}

/// Answers one request.
pub async fn handle<S: AdminState>(
    state: &S,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Answer {
    match answer(state, method, path, query, body).await {
        Ok(a) => a,
        Err(e) => e.into(),
    }
}

async fn answer<S: AdminState>(
    state: &S,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<Answer, ApiError> {
    let route = route(method, path, query)?;
    let wants_body = matches!(
        route,
        Route::TargetsRegister(_) | Route::TargetsDeregister(_)
    );
    if !wants_body && !body.is_empty() {
        return Err(ApiError::invalid_request(format!(
            "{method} {path} takes no request body"
        )));
    }
    let cfg = state.config();
    let group_exists = |g: &str| {
        cfg.l7
            .target_group(g)
            .map(|_| ())
            .ok_or_else(|| ApiError::target_group_not_found(g))
    };
    Ok(match route {
        Route::Status => ok(&state.status()),
        Route::Listeners => ok(&views::listeners(&cfg.l7)),
        Route::Rules(port) => ok(&views::rules(&cfg.l7, port)
            .ok_or_else(|| ApiError::listener_not_found(&port.to_string()))?),
        Route::TargetsGet(g) => {
            group_exists(&g)?;
            ok(&state.targets(&g)?)
        }
        Route::TargetsRegister(g) => {
            group_exists(&g)?;
            ok(&state.register(&g, targets_body(body)?).await?)
        }
        Route::TargetsDeregister(g) => {
            group_exists(&g)?;
            ok(&state.deregister(&g, targets_body(body)?).await?)
        }
        Route::TargetHealth(g) => {
            if let Some(g) = &g {
                group_exists(g)?;
            }
            ok(&state.target_health(g.as_deref())?)
        }
        Route::Discovery => ok(&DiscoveryList {
            target_groups: state.discovery(None)?,
        }),
        Route::GroupDiscovery(g) => {
            group_exists(&g)?;
            if cfg
                .l7
                .target_group(&g)
                .is_some_and(|t| t.discovery.is_none())
            {
                return Err(ApiError::discovery_not_configured(&g));
            }
            let one = state
                .discovery(Some(&g))?
                .into_iter()
                .find(|r| r.target_group == g);
            ok(&one.ok_or_else(|| ApiError::discovery_not_configured(&g))?)
        }
        Route::Reload => ok(&state.reload().await?),
        Route::Metrics => ok(&state.metrics()?),
        Route::Certificates(port) => {
            if let Some(p) = port
                && !cfg.l7.listener.iter().any(|l| l.port == p)
            {
                return Err(ApiError::listener_not_found(&p.to_string()));
            }
            ok(&state.certificates(port)?)
        }
    })
}

/// A register/deregister body: one to [`MAX_TARGETS`] targets, each an IP address and a port
/// that is not 0.
pub fn targets_body(body: &[u8]) -> Result<Vec<TargetSpec>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::invalid_request(
            r#"a JSON body is required: {"targets": [{"id": "10.0.0.1", "port": 80}]}"#,
        ));
    }
    let req: TargetsRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("request body: {e}")))?;
    if req.targets.is_empty() || req.targets.len() > MAX_TARGETS {
        return Err(ApiError::invalid_request(format!(
            "between 1 and {MAX_TARGETS} targets per request"
        )));
    }
    for t in &req.targets {
        check_target(t)?;
    }
    Ok(req.targets)
}

/// ALB's rule for `ip` targets: the id is a unicast IP address (loopback allowed); a port is
/// 1–65535.
pub fn check_target(t: &TargetSpec) -> Result<(), ApiError> {
    let Ok(ip) = t.id.parse::<IpAddr>() else {
        return Err(ApiError::invalid_target(format!(
            "target id `{}` is not an IP address",
            t.id
        )));
    };
    if let Some(why) = lb_l7::config::unusable_target_ip(ip) {
        return Err(ApiError::invalid_target(format!("target {}: {why}", t.id)));
    }
    if t.port == Some(0) {
        return Err(ApiError::invalid_target(format!(
            "target {}: port 0 is not allowed",
            t.id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
