//! `L7Config::validate`: every error with the TOML key path it is about.

use super::*;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// One configuration problem. `path` names real keys of the file, e.g.
/// `listener[0].rule[2].condition[0].values[1]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
    fn range(&mut self, path: impl Into<String>, v: u64, lo: u64, hi: u64) {
        if v < lo || v > hi {
            self.push(path, format!("{v} is out of range {lo}–{hi}"));
        }
    }
}

pub(super) fn validate(c: &L7Config) -> Vec<FieldError> {
    let mut e = Errors(Vec::new());
    load_balancer(&mut e, &c.load_balancer);
    let groups: HashSet<&str> = c.target_group.iter().map(|g| g.name.as_str()).collect();
    // One listener per port: a worker keys its listeners, their sockets and their steering by
    // port (`crate::listening`). Two addresses on one port passed here and one of them then
    // accepted nothing (its connections queued unanswered).
    let mut bound: HashMap<u16, (usize, IpAddr)> = HashMap::new();
    for (i, l) in c.listener.iter().enumerate() {
        let p = format!("listener[{i}]");
        listener(&mut e, &p, l, &groups);
        alpn_policy(&mut e, &p, l, c.load_balancer.routing.http2.enabled);
        match bound.insert(l.port, (i, l.address)) {
            Some((first, addr)) if addr == l.address => e.push(
                format!("listener[{i}].port"),
                format!("port {} is already used by listener[{first}]", l.port),
            ),
            Some((first, addr)) => e.push(
                format!("listener[{i}].port"),
                format!(
                    "port {} is already used by listener[{first}] (on {addr}): one listener per port \
                     (two addresses on one port are not supported; listen on 0.0.0.0, or use two ports)",
                    l.port
                ),
            ),
            None => {}
        }
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, g) in c.target_group.iter().enumerate() {
        let p = format!("target_group[{i}]");
        target_group(&mut e, &p, g);
        target_choice(&mut e, &p, g, &c.load_balancer.availability_zone);
        if let Some(first) = names.insert(g.name.as_str(), i) {
            e.push(
                format!("target_group[{i}].name"),
                format!("name {:?} is already used by target_group[{first}]", g.name),
            );
        }
    }
    e.0
}

/// What is valid but most likely a mistake, each naming its key: `weir check` prints them,
/// `weir run` and a reload log them.
pub(super) fn warnings(c: &L7Config) -> Vec<FieldError> {
    let mut e = Errors(Vec::new());
    for (i, g) in c.target_group.iter().enumerate() {
        // A target of weight 0 takes no new requests: with every one at 0 (and none to come
        // from DNS) the group answers 503 while its targets show healthy. Registrations at run
        // time may bring others, so it is not an error.
        if g.discovery.is_none() && !g.target.is_empty() && g.target.iter().all(|t| t.weight == 0) {
            e.push(
                format!("target_group[{i}].target"),
                format!(
                    "every target of {:?} has weight 0: it takes no request (503) until a target \
                     of weight above 0 is registered",
                    g.name
                ),
            );
        }
    }
    e.0
}

fn load_balancer(e: &mut Errors, lb: &LoadBalancerAttributes) {
    let p = "load_balancer";
    e.range(
        format!("{p}.idle_timeout.timeout_seconds"),
        lb.idle_timeout.timeout_seconds,
        1,
        4000,
    );
    e.range(
        format!("{p}.client_keep_alive.seconds"),
        lb.client_keep_alive.seconds,
        60,
        604_800,
    );
    e.range(
        format!("{p}.connect_timeout_seconds"),
        lb.connect_timeout_seconds,
        1,
        3600,
    );
    e.range(
        format!("{p}.header_read_timeout_seconds"),
        lb.header_read_timeout_seconds,
        1,
        4000,
    );
    e.range(
        format!("{p}.websocket_idle_timeout_seconds"),
        lb.websocket_idle_timeout_seconds,
        0,
        86_400,
    );
    e.range(
        format!("{p}.drain_timeout_seconds"),
        lb.drain_timeout_seconds,
        0,
        3600,
    );
    e.range(
        format!("{p}.max_connections_per_worker"),
        lb.max_connections_per_worker as u64,
        1,
        10_000_000,
    );
    if !lb.health_check_path.is_empty() && !lb.health_check_path.starts_with('/') {
        e.push(
            format!("{p}.health_check_path"),
            "must start with '/' (or be \"\" to turn it off)",
        );
    }
    if http::HeaderName::from_bytes(lb.trace_header.as_bytes()).is_err() {
        e.push(format!("{p}.trace_header"), "not a valid header name");
    }
    upgrade_protocols(e, &format!("{p}.upgrade_protocols"), &lb.upgrade_protocols);
    if lb.access_logs.path.is_empty() {
        e.push(
            format!("{p}.access_logs.path"),
            "empty; use \"-\" for stdout",
        );
    }
}

/// Protocol names (RFC 9110 tokens, no `/version`), not `h2c`/`h2`: weir serves HTTP/2 itself,
/// and a target speaking HTTP/2 on a tunnel would take requests no rule saw.
fn upgrade_protocols(e: &mut Errors, p: &str, list: &[String]) {
    for (i, name) in list.iter().enumerate() {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            e.push(
                format!("{p}[{i}]"),
                format!("{name:?} is not a protocol name (an RFC 9110 token, without /version)"),
            );
        } else if name.eq_ignore_ascii_case("h2c") || name.eq_ignore_ascii_case("h2") {
            e.push(
                format!("{p}[{i}]"),
                "HTTP/2 cannot be tunnelled: a target speaking h2c on an upgraded connection \
                 would take requests that no listener rule saw (weir serves HTTP/2 itself)",
            );
        }
    }
}

/// `alpn_policy` is ALB's for HTTPS listeners: an HTTP listener has no ALPN (it serves
/// HTTP/1.1, and h2c by `routing.http2.enabled`), and `HTTP2Only` with HTTP/2 off would
/// serve no client.
fn alpn_policy(e: &mut Errors, p: &str, l: &Listener, http2: bool) {
    match (l.protocol, l.alpn_policy) {
        (Protocol::Http, Some(_)) => e.push(
            format!("{p}.alpn_policy"),
            "alpn_policy is only used with protocol = \"HTTPS\" (ALPN is negotiated in the TLS \
             handshake; an HTTP listener serves HTTP/1.1, and h2c when routing.http2.enabled)",
        ),
        (Protocol::Https, Some(AlpnPolicy::HTTP2Only)) if !http2 => e.push(
            format!("{p}.alpn_policy"),
            "HTTP2Only with routing.http2.enabled = false would serve no client: enable HTTP/2 \
             or choose HTTP1Only",
        ),
        _ => {}
    }
}

fn listener(e: &mut Errors, p: &str, l: &Listener, groups: &HashSet<&str>) {
    if l.port == 0 {
        e.push(format!("{p}.port"), "port 0 is not allowed");
    }
    if l.freebind && l.address.is_unspecified() {
        e.push(
            format!("{p}.freebind"),
            format!(
                "the wildcard address {} takes every address the host has or gets, so freebind \
                 would do nothing: set `address` to the one that comes later, or remove freebind",
                l.address
            ),
        );
    }
    match l.protocol {
        Protocol::Https if l.certificate.is_empty() => {
            e.push(
                format!("{p}.certificate"),
                "an HTTPS listener needs at least one certificate",
            );
        }
        Protocol::Http if !l.certificate.is_empty() => {
            e.push(
                format!("{p}.certificate"),
                "certificates are only used with protocol = \"HTTPS\"",
            );
        }
        _ => {}
    }
    for (j, cert) in l.certificate.iter().enumerate() {
        let cp = format!("{p}.certificate[{j}]");
        match crate::certs::load_certified_key(&cert.certificate_file, &cert.private_key_file) {
            Ok(k) if crate::certs::dns_names(&k).is_empty() => tracing::warn!(
                key = %format!("{cp}.certificate_file"),
                file = %cert.certificate_file.display(),
                "certificate has no subjectAltName DNS name: SNI never chooses it (clients ignore \
                 the subject CN: rustls, browsers and curl match subjectAltName names only); it \
                 serves only as the default when it is the listener's first"
            ),
            Ok(_) => {}
            Err(err) => {
                let key = match err {
                    crate::certs::TlsError::Key { .. } | crate::certs::TlsError::Mismatch => {
                        "private_key_file"
                    }
                    _ => "certificate_file",
                };
                e.push(format!("{cp}.{key}"), err.to_string());
            }
        }
    }
    action(e, &format!("{p}.default_action"), &l.default_action, groups);
    let mut prios: HashMap<u32, usize> = HashMap::new();
    for (j, r) in l.rule.iter().enumerate() {
        let rp = format!("{p}.rule[{j}]");
        e.range(format!("{rp}.priority"), r.priority as u64, 1, 50_000);
        if let Some(first) = prios.insert(r.priority, j) {
            e.push(
                format!("{rp}.priority"),
                format!("priority {} is already used by rule[{first}]", r.priority),
            );
        }
        if r.condition.is_empty() {
            e.push(
                format!("{rp}.condition"),
                "a rule needs at least one condition (the default action has none)",
            );
        }
        let mut seen: HashMap<&'static str, usize> = HashMap::new();
        for (k, c) in r.condition.iter().enumerate() {
            let cp = format!("{rp}.condition[{k}]");
            let once = !matches!(
                c,
                Condition::HttpHeader { .. } | Condition::QueryString { .. }
            );
            if let Some(first) = seen.insert(c.field_name(), k)
                && once
            {
                e.push(
                    format!("{cp}.field"),
                    format!(
                        "only one {} condition per rule (see condition[{first}])",
                        c.field_name()
                    ),
                );
            }
            condition(e, &cp, c);
        }
        action(e, &format!("{rp}.action"), &r.action, groups);
    }
}

fn condition(e: &mut Errors, p: &str, c: &Condition) {
    let n = match c {
        Condition::HostHeader { values }
        | Condition::PathPattern { values }
        | Condition::HttpRequestMethod { values }
        | Condition::SourceIp { values } => values.len(),
        Condition::HttpHeader { values, .. } => values.len(),
        Condition::QueryString { values } => values.len(),
    };
    if n == 0 {
        e.push(format!("{p}.values"), "at least one value is needed");
    }
    let long = |e: &mut Errors, i: usize, v: &str| {
        if v.len() > 128 {
            e.push(format!("{p}.values[{i}]"), "longer than 128 characters");
        }
    };
    match c {
        Condition::HostHeader { values } | Condition::PathPattern { values } => {
            for (i, v) in values.iter().enumerate() {
                long(e, i, v);
                if v.is_empty() {
                    e.push(format!("{p}.values[{i}]"), "empty value");
                }
            }
        }
        Condition::HttpHeader {
            http_header_name,
            values,
        } => {
            if http::HeaderName::from_bytes(http_header_name.as_bytes()).is_err()
                || http_header_name.contains(['*', '?'])
            {
                e.push(
                    format!("{p}.http_header_name"),
                    "not a valid header name (no wildcards here)",
                );
            }
            for (i, v) in values.iter().enumerate() {
                long(e, i, v);
            }
        }
        Condition::HttpRequestMethod { values } => {
            for (i, v) in values.iter().enumerate() {
                if v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-')
                {
                    e.push(
                        format!("{p}.values[{i}]"),
                        "methods are A-Z, '_' and '-' (case-sensitive)",
                    );
                }
            }
        }
        Condition::QueryString { values } => {
            for (i, v) in values.iter().enumerate() {
                if v.value.is_empty() {
                    e.push(format!("{p}.values[{i}].value"), "empty value");
                }
                if v.key.as_deref() == Some("") {
                    e.push(
                        format!("{p}.values[{i}].key"),
                        "empty key (leave it out to match any key)",
                    );
                }
            }
        }
        Condition::SourceIp { values } => {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<ipnet::IpNet>().is_err() {
                    e.push(
                        format!("{p}.values[{i}]"),
                        format!("{v:?} is not a CIDR block like 10.0.0.0/8"),
                    );
                }
            }
        }
    }
}

fn action(e: &mut Errors, p: &str, a: &Action, groups: &HashSet<&str>) {
    match a {
        Action::Forward {
            target_group,
            target_groups,
            stickiness,
        } => {
            if let Some(st) = stickiness
                && st.enabled
            {
                e.range(
                    format!("{p}.stickiness.duration_seconds"),
                    st.duration_seconds,
                    1,
                    MAX_STICKY_SECONDS,
                );
            }
            match (target_group, target_groups.is_empty()) {
                (Some(_), false) => e.push(
                    p.to_string(),
                    "use either target_group or target_groups, not both",
                ),
                (None, true) => {
                    e.push(p.to_string(), "forward needs target_group or target_groups")
                }
                _ => {}
            }
            if let Some(name) = target_group
                && !groups.contains(name.as_str())
            {
                e.push(
                    format!("{p}.target_group"),
                    format!("no target_group named {name:?}"),
                );
            }
            if target_groups.len() > 5 {
                e.push(format!("{p}.target_groups"), "at most 5 target groups");
            }
            for (i, g) in target_groups.iter().enumerate() {
                if !groups.contains(g.name.as_str()) {
                    e.push(
                        format!("{p}.target_groups[{i}].name"),
                        format!("no target_group named {:?}", g.name),
                    );
                }
                // As ALB: a group once per action (its weight is its share).
                if let Some(first) = target_groups[..i].iter().position(|o| o.name == g.name) {
                    e.push(
                        format!("{p}.target_groups[{i}].name"),
                        format!(
                            "{:?} is already target_groups[{first}] of this action: a group \
                             appears once (give it one weight)",
                            g.name
                        ),
                    );
                }
                e.range(
                    format!("{p}.target_groups[{i}].weight"),
                    g.weight as u64,
                    0,
                    999,
                );
            }
            if !target_groups.is_empty() && target_groups.iter().all(|g| g.weight == 0) {
                e.push(
                    format!("{p}.target_groups"),
                    "at least one weight must be above 0",
                );
            }
        }
        Action::Redirect {
            protocol,
            host,
            port,
            path,
            query,
            ..
        } => {
            if protocol == "#{protocol}"
                && host == "#{host}"
                && port == "#{port}"
                && path == "/#{path}"
            {
                e.push(
                    p.to_string(),
                    "a redirect must change at least one of protocol, host, port, path",
                );
            }
            let proto_ok = matches!(
                protocol.as_str(),
                "#{protocol}" | "HTTP" | "HTTPS" | "http" | "https"
            );
            if !proto_ok {
                e.push(format!("{p}.protocol"), "HTTP, HTTPS or #{protocol}");
            }
            if port != "#{port}" && port.parse::<u16>().map_or(true, |v| v == 0) {
                e.push(format!("{p}.port"), "a port 1–65535 or #{port}");
            }
            if !path.starts_with('/') {
                e.push(format!("{p}.path"), "must start with '/'");
            }
            for (key, v) in [
                ("protocol", protocol),
                ("host", host),
                ("port", port),
                ("path", path),
                ("query", query),
            ] {
                if let Err(why) = redirect_tokens(v) {
                    e.push(format!("{p}.{key}"), why);
                }
            }
            if let Err(why) = redirect_host(host) {
                e.push(format!("{p}.host"), why);
            }
        }
        Action::FixedResponse {
            status_code,
            message_body,
            content_type,
        } => {
            if !matches!(status_code / 100, 2 | 4 | 5) || *status_code > 599 {
                e.push(format!("{p}.status_code"), "a 2XX, 4XX or 5XX code");
            }
            if message_body.len() > 1024 {
                e.push(format!("{p}.message_body"), "at most 1024 bytes");
            }
            if matches!(status_code, 204 | 205) && !message_body.is_empty() {
                e.push(
                    format!("{p}.message_body"),
                    format!("a {status_code} response has no content (RFC 9110): leave it out"),
                );
            }
            if let Some(ct) = content_type
                && http::HeaderValue::from_str(ct).is_err()
            {
                e.push(format!("{p}.content_type"), "not a valid header value");
            }
        }
    }
}

/// The tokens a redirect's component may hold (ALB's).
const REDIRECT_TOKENS: [&str; 5] = ["protocol", "host", "port", "path", "query"];

/// Every `#{…}` in `v` is one of [`REDIRECT_TOKENS`] (an unknown one went out as it was).
fn redirect_tokens(v: &str) -> Result<(), String> {
    let mut rest = v;
    while let Some(at) = rest.find("#{") {
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("{v:?}: \"#{{\" without its '}}'"));
        };
        let name = &after[..end];
        if !REDIRECT_TOKENS.contains(&name) {
            return Err(format!(
                "unknown token #{{{name}}} (#{{protocol}}, #{{host}}, #{{port}}, #{{path}} or \
                 #{{query}})"
            ));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

/// A redirect's `host`, its tokens aside: a host name (letters, digits, `-`, `.`, `_`, `~`,
/// percent-encoding) or a bracketed IPv6 literal — not a port, a path or a query, which the
/// Location would get wrong.
fn redirect_host(host: &str) -> Result<(), String> {
    let mut bare = host.to_string();
    for t in REDIRECT_TOKENS {
        bare = bare.replace(&format!("#{{{t}}}"), "");
    }
    if host.is_empty() {
        return Err("empty (#{host} keeps the request's)".into());
    }
    let v6 = bare.starts_with('[') && bare.ends_with(']') && bare.len() > 2;
    let inner = if v6 {
        &bare[1..bare.len() - 1]
    } else {
        &bare[..]
    };
    let bad = inner.chars().find(|&c| {
        let name = c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '%');
        !(name || (v6 && c == ':'))
    });
    match bad {
        Some(c) => Err(format!(
            "{c:?} is not allowed in a host (a name, or an IPv6 address in brackets; the port, \
             path and query have their own keys)"
        )),
        None => Ok(()),
    }
}

fn stickiness(e: &mut Errors, p: &str, s: &Stickiness) {
    e.range(
        format!("{p}.lb_cookie.duration_seconds"),
        s.lb_cookie.duration_seconds,
        1,
        MAX_STICKY_SECONDS,
    );
    e.range(
        format!("{p}.app_cookie.duration_seconds"),
        s.app_cookie.duration_seconds,
        1,
        MAX_STICKY_SECONDS,
    );
    let name = &s.app_cookie.cookie_name;
    let cp = format!("{p}.app_cookie.cookie_name");
    if s.enabled && s.kind == StickinessType::AppCookie && name.is_empty() {
        e.push(
            cp,
            "type = \"app_cookie\" needs the application's cookie_name",
        );
    } else if !name.is_empty() && !crate::sticky::is_cookie_name(name) {
        e.push(cp, format!("{name:?} is not a cookie name"));
    } else if ["AWSALB", "AWSALBAPP", "AWSALBTG"]
        .iter()
        .any(|r| name.starts_with(r))
    {
        e.push(cp, "AWSALB, AWSALBAPP and AWSALBTG are weir's own cookies");
    }
}

fn target_group(e: &mut Errors, p: &str, g: &TargetGroup) {
    if g.name.is_empty()
        || g.name.len() > 32
        || !g
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || g.name.starts_with('-')
    {
        e.push(
            format!("{p}.name"),
            "1–32 characters, letters, digits and '-', not starting with '-'",
        );
    }
    if g.port == 0 {
        e.push(format!("{p}.port"), "port 0 is not allowed");
    }
    let mut seen = HashMap::new();
    for (j, t) in g.target.iter().enumerate() {
        let tp = format!("{p}.target[{j}]");
        match t.id.parse::<IpAddr>() {
            Ok(ip) => {
                if let Some(why) = unusable_target_ip(ip) {
                    e.push(format!("{tp}.id"), format!("{ip}: {why}"));
                }
                if let Some(first) = seen.insert((ip, t.port.unwrap_or(g.port)), j) {
                    e.push(
                        format!("{tp}.id"),
                        format!("same address and port as target[{first}]"),
                    );
                }
            }
            Err(_) => e.push(
                format!("{tp}.id"),
                format!("{:?} is not an IP address", t.id),
            ),
        }
        if t.port == Some(0) {
            e.push(format!("{tp}.port"), "port 0 is not allowed");
        }
        e.range(format!("{tp}.weight"), t.weight as u64, 0, 999);
    }
    if let Some(d) = &g.discovery {
        discovery(e, &format!("{p}.discovery"), d);
    }
    let alg = &g.load_balancing.algorithm;
    let ap = format!("{p}.load_balancing.algorithm");
    match (alg.kind, &alg.hash_on) {
        (AlgorithmType::ConsistentHash, None) => e.push(
            format!("{ap}.hash_on"),
            "consistent_hash needs hash_on = \"header:NAME\", \"cookie:NAME\" or \"source_ip\"",
        ),
        (AlgorithmType::ConsistentHash, Some(h)) if HashOn::parse(h).is_none() => e.push(
            format!("{ap}.hash_on"),
            "expected \"header:NAME\", \"cookie:NAME\" or \"source_ip\"",
        ),
        (AlgorithmType::ConsistentHash, Some(_)) => {}
        (_, Some(_)) => e.push(
            format!("{ap}.hash_on"),
            "only used with type = \"consistent_hash\"",
        ),
        (_, None) => {}
    }
    if alg.anomaly_mitigation == AnomalyMitigation::On && alg.kind != AlgorithmType::WeightedRandom
    {
        e.push(
            format!("{ap}.anomaly_mitigation"),
            "\"on\" needs type = \"weighted_random\" (as on ALB)",
        );
    }
    e.range(
        format!("{p}.deregistration_delay.timeout_seconds"),
        g.deregistration_delay.timeout_seconds,
        0,
        3600,
    );
    stickiness(e, &format!("{p}.stickiness"), &g.stickiness);
    let h = &g.health_check;
    let hp = format!("{p}.health_check");
    e.range(format!("{hp}.timeout_seconds"), h.timeout_seconds, 2, 120);
    e.range(format!("{hp}.interval_seconds"), h.interval_seconds, 5, 300);
    e.range(
        format!("{hp}.healthy_threshold_count"),
        h.healthy_threshold_count as u64,
        2,
        10,
    );
    e.range(
        format!("{hp}.unhealthy_threshold_count"),
        h.unhealthy_threshold_count as u64,
        2,
        10,
    );
    if h.timeout_seconds >= h.interval_seconds {
        e.push(
            format!("{hp}.timeout_seconds"),
            "must be less than interval_seconds",
        );
    }
    match h.protocol.as_str() {
        "HTTP" | "HTTPS" => {}
        // A connect-only check: a path or a matcher would be parsed and ignored.
        "TCP" => {
            if h.path != "/" {
                e.push(format!("{hp}.path"), "not used with protocol = \"TCP\"");
            }
            if h.matcher.http_code != "200" {
                e.push(
                    format!("{hp}.matcher.http_code"),
                    "not used with protocol = \"TCP\"",
                );
            }
        }
        _ => e.push(format!("{hp}.protocol"), "HTTP, HTTPS or TCP"),
    }
    if h.port != "traffic-port" && h.port.parse::<u16>().map_or(true, |v| v == 0) {
        e.push(format!("{hp}.port"), "\"traffic-port\" or a port 1–65535");
    }
    if !h.path.starts_with('/') {
        e.push(format!("{hp}.path"), "must start with '/'");
    } else if h.path.len() > 1024 {
        e.push(format!("{hp}.path"), "at most 1024 characters (as on ALB)");
    } else if let Some(b) = h.path.bytes().find(|b| !b.is_ascii_graphic()) {
        // It goes into the check's request line as it is: a space, CR or LF there would
        // change the request (header lines injected into it).
        e.push(
            format!("{hp}.path"),
            format!(
                "{:?} is not allowed: visible ASCII only (percent-encode it)",
                b as char
            ),
        );
    }
    if parse_matcher(&h.matcher.http_code).is_none() {
        e.push(
            format!("{hp}.matcher.http_code"),
            "codes 200–499 as \"200\", \"200,202\" or \"200-299\"",
        );
    }
    let cp = format!("{p}.connection_pool");
    e.range(
        format!("{cp}.idle_timeout_seconds"),
        g.connection_pool.idle_timeout_seconds,
        1,
        4000,
    );
    e.range(
        format!("{cp}.max_idle_per_target"),
        g.connection_pool.max_idle_per_target as u64,
        0,
        100_000,
    );
}

/// `[target_group.discovery]`: a DNS name, its record type, resolvers and timings.
fn discovery(e: &mut Errors, p: &str, d: &Discovery) {
    let name = d.name.strip_suffix('.').unwrap_or(&d.name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        e.push(
            format!("{p}.name"),
            format!(
                "{:?} is not a DNS name (labels of 1–63 letters, digits, '-', '_')",
                d.name
            ),
        );
    } else if name.parse::<IpAddr>().is_ok() {
        e.push(
            format!("{p}.name"),
            "an address, not a name: list it in target instead",
        );
    } else if d.kind == DiscoveryType::Srv {
        let mut labels = name.split('.');
        let srv = matches!((labels.next(), labels.next(), labels.next()),
            (Some(s), Some(t), Some(_)) if s.starts_with('_') && t.starts_with('_'));
        if !srv {
            e.push(
                format!("{p}.name"),
                "an SRV name is _service._proto.domain (RFC 2782), e.g. _web._tcp.svc.example",
            );
        }
    }
    for (i, r) in d.resolvers.iter().enumerate() {
        if parse_resolver(r).is_none() {
            e.push(
                format!("{p}.resolvers[{i}]"),
                format!("{r:?} is not IP or IP:PORT (e.g. \"10.0.0.2\", \"10.0.0.2:5353\", \"[fd00::2]:53\")"),
            );
        }
    }
    if d.resolvers.len() > 8 {
        e.push(format!("{p}.resolvers"), "at most 8 resolvers");
    }
    e.range(
        format!("{p}.ttl_floor_seconds"),
        d.ttl_floor_seconds,
        1,
        3600,
    );
    e.range(
        format!("{p}.ttl_ceiling_seconds"),
        d.ttl_ceiling_seconds,
        d.ttl_floor_seconds.clamp(1, 3600),
        86_400,
    );
    e.range(
        format!("{p}.hold_empty_seconds"),
        d.hold_empty_seconds,
        0,
        86_400,
    );
    e.range(format!("{p}.timeout_seconds"), d.timeout_seconds, 1, 30);
    e.range(format!("{p}.max_targets"), d.max_targets as u64, 1, 1000);
}

/// Passive health, slow start, zones and per-target limits (`target::choice`'s settings).
fn target_choice(e: &mut Errors, p: &str, g: &TargetGroup, own_zone: &str) {
    let o = &g.outlier_detection;
    let op = format!("{p}.outlier_detection");
    e.range(
        format!("{op}.consecutive_errors"),
        o.consecutive_errors as u64,
        1,
        1000,
    );
    e.range(
        format!("{op}.base_ejection_time_seconds"),
        o.base_ejection_time_seconds,
        1,
        3600,
    );
    e.range(
        format!("{op}.max_ejection_time_seconds"),
        o.max_ejection_time_seconds,
        o.base_ejection_time_seconds.clamp(1, 3600),
        86_400,
    );
    e.range(
        format!("{op}.max_ejection_percent"),
        o.max_ejection_percent as u64,
        0,
        100,
    );
    let d = g.slow_start.duration_seconds;
    if d != 0 && !(30..=900).contains(&d) {
        e.push(
            format!("{p}.slow_start.duration_seconds"),
            format!("{d}: 0 (off) or 30–900, as on ALB"),
        );
    }
    let l = &g.target_limits;
    let lp = format!("{p}.target_limits");
    e.range(
        format!("{lp}.max_requests"),
        l.max_requests as u64,
        0,
        100_000,
    );
    e.range(format!("{lp}.max_queued"), l.max_queued as u64, 0, 100_000);
    e.range(
        format!("{lp}.queue_timeout_seconds"),
        l.queue_timeout_seconds,
        0,
        3600,
    );
    if !g.load_balancing.cross_zone.enabled.enabled() && own_zone.is_empty() {
        e.push(
            format!("{p}.load_balancing.cross_zone.enabled"),
            "false needs the load balancer's zone: [load_balancer] availability_zone",
        );
    }
}

/// Why `ip` cannot be a target, or `None`: the unspecified address (this host, no one's
/// address), a multicast or the broadcast address — ALB registers unicast addresses only. A
/// loopback address is allowed (a target on the load balancer's host). The file's targets, the
/// admin API's registrations and DNS discovery's answers are held to it.
pub fn unusable_target_ip(ip: IpAddr) -> Option<&'static str> {
    let ip = ip.to_canonical();
    if ip.is_unspecified() {
        Some("the unspecified address is not a target (a unicast address is needed)")
    } else if ip.is_multicast() {
        Some("a multicast address is not a target (a unicast address is needed)")
    } else if matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()) {
        Some("the broadcast address is not a target (a unicast address is needed)")
    } else {
        None
    }
}

/// `"200"`, `"200,202"`, `"200-299"` → inclusive ranges, all within 200–499.
pub fn parse_matcher(s: &str) -> Option<Vec<(u16, u16)>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let v = part.parse().ok()?;
                (v, v)
            }
        };
        if lo > hi || lo < 200 || hi > 499 {
            return None;
        }
        out.push((lo, hi));
    }
    Some(out)
}
