//! Phases parse and route (`decide`), shared by both engines, and the access log record
//! every request starts with (`new_record`).

use super::{ConnInfo, Shared, parse, respond};
use crate::access_log::{Record, rfc3339};
use crate::body::Body;
use crate::config::Action;
use crate::rules::RequestFacts;
use crate::select::pick_weighted;
use crate::sticky;
use crate::target::GroupRt;
use compact_str::CompactString;
use http::{Request, Response, Version, header};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

/// The access log record of a request, before routing.
pub fn new_record(
    sh: &Shared,
    ci: &ConnInfo,
    method: &http::Method,
    uri: &http::Uri,
    version: Version,
    headers: &http::HeaderMap,
) -> Record {
    let h2 = version == Version::HTTP_2;
    let kind = match (ci.tls.is_some(), h2, crate::headers::wants_upgrade(headers)) {
        (_, true, _) => "h2",
        (false, _, true) => "ws",
        (true, _, true) => "wss",
        (true, ..) => "https",
        _ => "http",
    };
    let scheme = ci.listener.config.protocol.scheme();
    let host = host_of(headers, uri).unwrap_or_default();
    let port = ci.listener.config.port;
    // An IPv6 literal in brackets, as in a URL (`host_of` took them off).
    let (open, close) = if host.contains(':') {
        ("[", "]")
    } else {
        ("", "")
    };
    Record {
        kind,
        elb: format!("weir/{}", sh.worker_index),
        client: Some(ci.peer),
        request: format!(
            "{} {scheme}://{open}{host}{close}:{port}{} {:?}",
            method,
            super::codec::request_target(uri),
            version
        ),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string(),
        ssl_cipher: ci.tls.as_ref().map(|t| t.cipher),
        ssl_protocol: ci.tls.as_ref().map(|t| t.protocol),
        domain_name: ci.tls.as_ref().and_then(|t| t.sni.clone()),
        chosen_cert: ci.tls.as_ref().and_then(|t| t.chosen_cert.clone()),
        matched_rule_priority: -1,
        request_creation_time: rfc3339(SystemTime::now()),
        trace_id: "-".into(),
        ..Record::default()
    }
}

/// Host without port: the `Host` header, or the HTTP/2 `:authority`.
pub fn host_of(headers: &http::HeaderMap, uri: &http::Uri) -> Option<CompactString> {
    host_from(crate::headers::first(headers, &header::HOST), uri)
}

/// [`host_of`] with the `Host` value at hand (`parse::Checked`).
pub fn host_from(host: Option<&http::HeaderValue>, uri: &http::Uri) -> Option<CompactString> {
    let raw = host
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))?;
    let host = if let Some(rest) = raw.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        // The bytes after the last ':' (a byte search: `rsplit_once(':')` costs a call).
        match raw.bytes().rposition(|b| b == b':') {
            Some(i) if raw.as_bytes()[i + 1..].iter().all(u8::is_ascii_digit) => &raw[..i],
            _ => raw,
        }
    };
    Some(CompactString::from(host))
}

/// A request phase parse refused: counted, logged, answered.
fn refused<'s>(
    sh: &Shared,
    ci: &ConnInfo,
    r: parse::Reject,
    counted: bool,
    log: Option<&mut Record>,
) -> Decision<'s> {
    let m = &sh.metrics;
    let count = r.desync && !counted;
    if count {
        m.desync_non_compliant.fetch_add(1, Relaxed);
    }
    m.elb_status(r.status);
    tracing::debug!(status = r.status, reason = r.reason, peer = %ci.peer, "request rejected");
    if let Some(l) = log {
        l.error_reason = Some(r.reason);
        if count {
            l.classification = Some("Severe");
            l.classification_reason = Some(r.reason);
        }
    }
    Decision::Respond(respond::elb(r.status, r.close))
}

/// What to do with a request: weir answers it itself, or it goes to a target group.
pub enum Decision<'s> {
    Respond(Response<Body>),
    Forward(Route<'s>),
}

/// Where phase route sends a request.
pub struct Route<'s> {
    pub group: &'s GroupRt,
    /// The request's host (without port), for the forwarded `Host`. Inline up to 24 bytes
    /// (an IP address, most names): a `String` cost an allocation per request.
    pub host: Option<CompactString>,
    /// Group stickiness: the response sets `AWSALBTG` lasting this long.
    pub group_cookie: Option<Duration>,
    /// Desync mitigation (`pipeline::desync`): the target connection is closed after this request,
    /// never pooled. `decide` leaves it false; the HTTP/1.1 engine sets it.
    pub close_target: bool,
}

/// Phases parse and route, shared by the HTTP/1.1 engine and the hyper (HTTP/2) path.
/// `counted`: the request was already counted as non-compliant (the HTTP/1.1 engine's desync
/// classification), so a refusal here does not count it again.
pub fn decide<'s, B>(
    sh: &'s Shared,
    ci: &ConnInfo,
    req: &Request<B>,
    counted: bool,
    mut log: Option<&mut Record>,
) -> Decision<'s> {
    let lb = &sh.config.load_balancer;
    let m = &sh.metrics;

    // Phase parse.
    if !lb.health_check_path.is_empty() && req.uri().path() == lb.health_check_path {
        return Decision::Respond(respond::fixed(200, Some("text/plain"), "OK\n"));
    }
    let checked = parse::check(
        req.method(),
        req.uri(),
        req.version(),
        req.headers(),
        &sh.trace_header,
    )
    .and_then(|c| parse::check_body_length(req.headers(), sh.limits.max_request_body).map(|()| c));
    let checked = match checked {
        Ok(c) => c,
        Err(r) => return refused(sh, ci, r, counted, log),
    };

    // Phase route.
    let host = match checked.host_name {
        Some(name) => Some(CompactString::from(name)),
        None => host_from(checked.host, req.uri()),
    };
    // The rules see the path and host as the target will read them (`normal`); a listener
    // whose rules never look at the path does not normalize it.
    let rule_path = if ci.listener.rules.matches_paths() {
        super::normal::rule_path(req.uri().path())
    } else {
        std::borrow::Cow::Borrowed(req.uri().path())
    };
    let facts = RequestFacts {
        host: host.as_deref().map(super::normal::rule_host),
        path: &rule_path,
        query: req.uri().query(),
        method: req.method().as_str(),
        headers: req.headers(),
        source_ip: ci.peer.ip(),
    };
    let matched = ci.listener.rules.evaluate(&facts);
    m.rule_evaluations
        .fetch_add(matched.evaluations as u64, Relaxed);
    if let Some(l) = log.as_deref_mut() {
        l.matched_rule_priority = matched.priority as i64;
    }

    match matched.action {
        Action::FixedResponse {
            status_code,
            content_type,
            message_body,
        } => {
            m.fixed_responses.fetch_add(1, Relaxed);
            // ALB counts a rule's own answers under HTTPCode_ELB_* too.
            m.elb_status(*status_code);
            if let Some(l) = log {
                l.actions_executed.push("fixed-response");
            }
            Decision::Respond(respond::fixed(
                *status_code,
                content_type.as_deref(),
                message_body,
            ))
        }
        Action::Redirect {
            protocol,
            host: h,
            port,
            path,
            query,
            status_code,
        } => {
            m.redirects.fetch_add(1, Relaxed);
            m.elb_status(status_code.code());
            let facts = respond::RedirectFacts {
                protocol: ci.listener.config.protocol.scheme(),
                host: host.as_deref().unwrap_or(""),
                port: ci.listener.config.port,
                path: req.uri().path(),
                query: req.uri().query().unwrap_or(""),
            };
            let loc = respond::redirect_location(protocol, h, port, path, query, &facts);
            if let Some(l) = log {
                l.actions_executed.push("redirect");
                l.redirect_url = Some(loc.clone());
            }
            Decision::Respond(respond::redirect(status_code.code(), &loc))
        }
        Action::Forward {
            target_group,
            target_groups,
            stickiness,
        } => {
            // Phase pick_target, first half: the target group (the one the client sticks to,
            // with group stickiness).
            let stick_for = stickiness
                .as_ref()
                .filter(|s| s.enabled && !target_groups.is_empty())
                .map(|s| Duration::from_secs(s.duration_seconds));
            let stuck = stick_for.and_then(|_| {
                let lines = || {
                    req.headers()
                        .get_all(header::COOKIE)
                        .into_iter()
                        .map(|v| v.as_bytes())
                };
                let token = sticky::cookie(lines(), sticky::GROUP_COOKIE)
                    .or_else(|| sticky::cookie(lines(), sticky::GROUP_COOKIE_CORS))?;
                target_groups
                    .iter()
                    .filter(|g| g.weight > 0)
                    .find(|g| {
                        sh.groups
                            .get(g.name.as_str())
                            .is_some_and(|rt| rt.token.as_bytes() == token)
                    })
                    .map(|g| g.name.as_str())
            });
            let name = match (target_group, target_groups.as_slice()) {
                _ if stuck.is_some() => stuck,
                (Some(n), []) => Some(n.as_str()),
                (_, groups) => {
                    let w: Vec<u32> = groups.iter().map(|g| g.weight).collect();
                    pick_weighted(&w, fastrand::u64(..)).map(|i| groups[i].name.as_str())
                }
            };
            let Some(group) = name.and_then(|n| sh.groups.get(n)) else {
                m.elb_status(503);
                return Decision::Respond(respond::elb(503, false));
            };
            if let Some(l) = log {
                l.actions_executed.push("forward");
                l.target_group = Some(group.name.clone());
            }
            Decision::Forward(Route {
                group,
                host,
                group_cookie: stick_for,
                close_target: false,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{RequestFacts, RuleSet};

    fn host(h: &str) -> Option<CompactString> {
        let mut m = http::HeaderMap::new();
        m.insert(header::HOST, h.parse().unwrap());
        host_of(&m, &"/".parse().unwrap())
    }

    #[test]
    fn ipv6_host_loses_brackets_and_port_for_the_rules() {
        assert_eq!(host("[::1]:19410").as_deref(), Some("::1"));
        assert_eq!(host("[2001:db8::5]").as_deref(), Some("2001:db8::5"));
        assert_eq!(host("a.example:80").as_deref(), Some("a.example"));
        assert_eq!(host("127.0.0.1:8080").as_deref(), Some("127.0.0.1"));
        // A host-header rule on the address matches it with or without a port.
        let cfg: crate::config::L7Config = toml::from_str(
            r#"
[[listener]]
port = 80
[[listener.rule]]
priority = 1
condition = [{ field = "host-header", values = ["::1"] }]
action = { type = "fixed-response", status_code = 200 }
"#,
        )
        .unwrap();
        let rules = RuleSet::compile(&cfg.listener[0]);
        for h in ["[::1]:19410", "[::1]"] {
            let h = host(h);
            let facts = RequestFacts {
                host: h.as_deref(),
                path: "/",
                query: None,
                method: "GET",
                headers: &http::HeaderMap::new(),
                source_ip: "::1".parse().unwrap(),
            };
            assert_eq!(rules.evaluate(&facts).priority, 1, "{h:?}");
        }
    }
}
