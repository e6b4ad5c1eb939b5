//! Listener rule evaluation, ALB semantics. Pure: no I/O, no clocks.
//!
//! Rules run by priority (lowest first); within a condition values are OR'ed, across conditions
//! AND'ed; the default action comes last (matched priority 0).

use crate::config::{Action, Condition, Listener};
use crate::wildcard::matches;
use http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// What rules may look at, taken from one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// Host without port (from `Host` or the HTTP/2 `:authority`).
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a str,
    pub headers: &'a HeaderMap,
    /// The TCP peer; never X-Forwarded-For.
    pub source_ip: IpAddr,
}

#[derive(Debug, Clone)]
enum Cond {
    Host(Vec<String>),
    Path(Vec<String>),
    Header(http::HeaderName, Vec<String>),
    Method(Vec<String>),
    Query(Vec<(Option<String>, String)>),
    SourceIp(Vec<IpNet>),
}

#[derive(Debug, Clone)]
struct CompiledRule {
    priority: u32,
    conds: Vec<Cond>,
    action: Action,
}

/// A listener's rules, sorted and ready to evaluate.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    default_action: Action,
    /// A rule has a path-pattern condition (only then is the path normalized for them).
    matches_paths: bool,
}

/// The outcome of rule evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'a> {
    /// `matched_rule_priority`: the rule's priority, 0 for the default action.
    pub priority: u32,
    pub action: &'a Action,
    /// Rules evaluated (the `RuleEvaluations` metric).
    pub evaluations: u32,
}

impl RuleSet {
    /// Compiles a listener's rules. Invalid values (already reported by `validate`) never match.
    pub fn compile(listener: &Listener) -> RuleSet {
        let mut rules: Vec<CompiledRule> = listener
            .rule
            .iter()
            .map(|r| CompiledRule {
                priority: r.priority,
                conds: r.condition.iter().map(compile_cond).collect(),
                action: r.action.clone(),
            })
            .collect();
        rules.sort_by_key(|r| r.priority);
        let matches_paths = rules
            .iter()
            .any(|r| r.conds.iter().any(|c| matches!(c, Cond::Path(_))));
        RuleSet {
            rules,
            default_action: listener.default_action.clone(),
            matches_paths,
        }
    }

    /// Whether a rule matches on the path: without one, the path the rules see is not needed
    /// (`pipeline::normal::rule_path` is not paid for).
    pub fn matches_paths(&self) -> bool {
        self.matches_paths
    }

    pub fn evaluate<'s>(&'s self, f: &RequestFacts<'_>) -> Matched<'s> {
        let mut evaluations = 0;
        for r in &self.rules {
            evaluations += 1;
            if r.conds.iter().all(|c| cond_matches(c, f)) {
                return Matched {
                    priority: r.priority,
                    action: &r.action,
                    evaluations,
                };
            }
        }
        Matched {
            priority: 0,
            action: &self.default_action,
            evaluations,
        }
    }
}

fn compile_cond(c: &Condition) -> Cond {
    match c {
        Condition::HostHeader { values } => Cond::Host(values.clone()),
        Condition::PathPattern { values } => Cond::Path(values.clone()),
        Condition::HttpHeader {
            http_header_name,
            values,
        } => match http::HeaderName::from_bytes(http_header_name.as_bytes()) {
            Ok(name) => Cond::Header(name, values.clone()),
            Err(_) => Cond::Method(Vec::new()),
        },
        Condition::HttpRequestMethod { values } => Cond::Method(values.clone()),
        Condition::QueryString { values } => Cond::Query(
            values
                .iter()
                .map(|v| (v.key.clone(), v.value.clone()))
                .collect(),
        ),
        Condition::SourceIp { values } => {
            Cond::SourceIp(values.iter().filter_map(|v| v.parse().ok()).collect())
        }
    }
}

fn cond_matches(c: &Cond, f: &RequestFacts<'_>) -> bool {
    match c {
        Cond::Host(pats) => f
            .host
            .is_some_and(|h| pats.iter().any(|p| matches(p, h, true))),
        Cond::Path(pats) => pats.iter().any(|p| matches(p, f.path, false)),
        Cond::Header(name, pats) => f
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| pats.iter().any(|p| matches(p, v, true))),
        Cond::Method(vals) => vals.iter().any(|m| m == f.method),
        Cond::Query(pairs) => {
            let q = parse_query(f.query.unwrap_or(""));
            pairs.iter().any(|(key, val)| {
                q.iter().any(|(k, v)| {
                    key.as_ref().is_none_or(|kp| matches(kp, k, true)) && matches(val, v, true)
                })
            })
        }
        Cond::SourceIp(nets) => {
            let ip = canonical_ip(f.source_ip);
            nets.iter().any(|n| n.contains(&ip))
        }
    }
}

/// `::ffff:a.b.c.d` → `a.b.c.d`, so IPv4 CIDRs match dual-stack sockets.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// `a=1&b&c=x%20y` → decoded pairs (`b` has the value "").
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}
