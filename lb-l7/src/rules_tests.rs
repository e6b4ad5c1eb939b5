//! Rule evaluation against a table of ALB's documented examples.

use crate::config::{Action, L7Config};
use crate::rules::{RequestFacts, RuleSet};
use http::HeaderMap;

const CONFIG: &str = r#"
[[listener]]
port = 80
default_action = { type = "fixed-response", status_code = 404, message_body = "default" }

[[listener.rule]]
priority = 10
condition = [{ field = "host-header", values = ["*.example.com"] }]
action = { type = "forward", target_group = "wild" }

[[listener.rule]]
priority = 5
condition = [{ field = "host-header", values = ["api.example.com"] },
             { field = "path-pattern", values = ["/v?/*", "/health"] }]
action = { type = "forward", target_group = "api" }

[[listener.rule]]
priority = 20
condition = [{ field = "http-header", http_header_name = "User-Agent", values = ["*Chrome*", "*Safari*"] }]
action = { type = "forward", target_group = "browsers" }

[[listener.rule]]
priority = 30
condition = [{ field = "http-request-method", values = ["PATCH", "CUSTOM"] }]
action = { type = "forward", target_group = "methods" }

[[listener.rule]]
priority = 40
condition = [{ field = "query-string", values = [{ key = "version", value = "v1" }, { value = "*example*" }] }]
action = { type = "forward", target_group = "query" }

[[listener.rule]]
priority = 50
condition = [{ field = "source-ip", values = ["192.0.2.0/24", "2001:db8::/32"] }]
action = { type = "redirect", protocol = "HTTPS", port = "443", status_code = "HTTP_301" }

[[listener.rule]]
priority = 60
condition = [{ field = "path-pattern", values = ["/img/*"] }]
action = { type = "fixed-response", status_code = 503, message_body = "images off" }

[[target_group]]
name = "wild"
[[target_group]]
name = "api"
[[target_group]]
name = "browsers"
[[target_group]]
name = "methods"
[[target_group]]
name = "query"
"#;

/// What a request should get: a target group name, "redirect", or "fixed:<status>".
fn outcome(a: &Action) -> String {
    match a {
        Action::Forward {
            target_group: Some(g),
            ..
        } => g.clone(),
        Action::Forward { .. } => "weighted".into(),
        Action::Redirect { .. } => "redirect".into(),
        Action::FixedResponse { status_code, .. } => format!("fixed:{status_code}"),
    }
}

#[test]
fn alb_rule_table() {
    let cfg: L7Config = toml::from_str(CONFIG).unwrap();
    assert_eq!(cfg.validate(), vec![]);
    let rules = RuleSet::compile(&cfg.listener[0]);
    // (host, method, path, query, headers, source ip) → outcome, matched priority
    type Row<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a str,
        &'a str,
        u32,
    );
    #[rustfmt::skip]
    let table: &[Row] = &[
        ("api.example.com", "GET", "/v1/users", "", &[], "10.0.0.1", "api", 5),
        ("API.EXAMPLE.COM", "GET", "/v2/x", "", &[], "10.0.0.1", "api", 5),           // host is case-insensitive
        ("api.example.com", "GET", "/V1/users", "", &[], "10.0.0.1", "wild", 10),     // path is case-sensitive
        ("api.example.com", "GET", "/v10/users", "", &[], "10.0.0.1", "wild", 10),    // ? is exactly one char
        ("api.example.com", "GET", "/health", "x=1", &[], "10.0.0.1", "api", 5),      // query is not part of the path
        ("www.example.com", "GET", "/", "", &[], "10.0.0.1", "wild", 10),
        ("example.com", "GET", "/", "", &[], "10.0.0.1", "fixed:404", 0),             // *.example.com ≠ example.com
        ("other.org", "GET", "/", "", &[("user-agent", "Mozilla/5.0 chrome/120")], "10.0.0.1", "browsers", 20),
        ("other.org", "GET", "/", "", &[("user-agent", "curl/8")], "10.0.0.1", "fixed:404", 0),
        ("other.org", "PATCH", "/", "", &[], "10.0.0.1", "methods", 30),
        ("other.org", "patch", "/", "", &[], "10.0.0.1", "fixed:404", 0),             // method is case-sensitive
        ("other.org", "CUSTOM", "/", "", &[], "10.0.0.1", "methods", 30),             // custom methods
        ("other.org", "GET", "/", "version=V1", &[], "10.0.0.1", "query", 40),        // query is case-insensitive
        ("other.org", "GET", "/", "a=1&version=v1", &[], "10.0.0.1", "query", 40),
        ("other.org", "GET", "/", "version=v2", &[], "10.0.0.1", "fixed:404", 0),
        ("other.org", "GET", "/", "q=my%20example%20text", &[], "10.0.0.1", "query", 40), // keyless, wildcard, decoded
        ("other.org", "GET", "/", "", &[("x-forwarded-for", "192.0.2.9")], "10.0.0.1", "fixed:404", 0), // never XFF
        ("other.org", "GET", "/", "", &[], "192.0.2.200", "redirect", 50),
        ("other.org", "GET", "/", "", &[], "::ffff:192.0.2.1", "redirect", 50),      // v4-mapped peer
        ("other.org", "GET", "/", "", &[], "2001:db8::5", "redirect", 50),
        ("other.org", "GET", "/img/a.png", "", &[], "10.0.0.1", "fixed:503", 60),
        ("api.example.com", "GET", "/img/a.png", "", &[], "192.0.2.1", "wild", 10),  // priority order
    ];
    for (i, (host, method, path, query, hdrs, ip, want, prio)) in table.iter().enumerate() {
        let mut headers = HeaderMap::new();
        for (k, v) in hdrs.iter() {
            headers.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let facts = RequestFacts {
            host: Some(host),
            path,
            query: (!query.is_empty()).then_some(*query),
            method,
            headers: &headers,
            source_ip: ip.parse().unwrap(),
        };
        let m = rules.evaluate(&facts);
        assert_eq!(
            (outcome(m.action), m.priority),
            (want.to_string(), *prio),
            "row {i}: {host} {method} {path}?{query}"
        );
    }
}

/// Only a listener with a path-pattern condition has its requests' paths normalized for the
/// rules (`pipeline::normal`): the others do not pay for it.
#[test]
fn a_rule_set_knows_whether_it_matches_paths() {
    let cfg: L7Config = toml::from_str(CONFIG).unwrap();
    assert!(RuleSet::compile(&cfg.listener[0]).matches_paths());
    let hosts_only: L7Config = toml::from_str(
        r#"
[[listener]]
port = 80
[[listener.rule]]
priority = 1
condition = [{ field = "host-header", values = ["a.example"] }]
action = { type = "fixed-response", status_code = 403 }
"#,
    )
    .unwrap();
    assert!(!RuleSet::compile(&hosts_only.listener[0]).matches_paths());
}
