//! Listeners and their rules as the admin API shows them (ALB's `describe-listeners` and
//! `describe-rules`), built from the configuration the daemon serves. Pure.

use lb_l7::config::{Action, Condition, L7Config, Listener};
use serde::{Deserialize, Serialize};

/// `GET /v1/listeners`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerList {
    pub listeners: Vec<ListenerView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerView {
    pub address: String,
    pub port: u16,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    pub alpn_policy: String,
    /// HTTPS: the certificate files, the default first.
    pub certificates: Vec<String>,
    pub default_action: ActionView,
    /// Rules besides the default one.
    pub rule_count: usize,
}

/// `GET /v1/listeners/{port}/rules`: by priority, the default rule last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleList {
    pub port: u16,
    pub rules: Vec<RuleView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleView {
    /// `"1"`…`"50000"`, or `"default"` (ALB writes priorities as strings).
    pub priority: String,
    pub is_default: bool,
    pub conditions: Vec<ConditionView>,
    pub action: ActionView,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionView {
    /// ALB's field name: `path-pattern`, `host-header`, …
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_name: Option<String>,
    /// Query-string pairs as `key=value` (`=value` without a key).
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ActionView {
    #[serde(rename = "forward")]
    Forward {
        target_groups: Vec<WeightedGroup>,
        /// Group stickiness, in seconds, when on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stickiness_seconds: Option<u64>,
    },
    #[serde(rename = "redirect")]
    Redirect {
        protocol: String,
        host: String,
        port: String,
        path: String,
        query: String,
        status_code: u16,
    },
    #[serde(rename = "fixed-response")]
    FixedResponse {
        status_code: u16,
        content_type: Option<String>,
        message_body: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightedGroup {
    pub name: String,
    pub weight: u32,
}

pub fn listeners(cfg: &L7Config) -> ListenerList {
    ListenerList {
        listeners: cfg.listener.iter().map(listener).collect(),
    }
}

fn listener(l: &Listener) -> ListenerView {
    ListenerView {
        address: l.address.to_string(),
        port: l.port,
        protocol: match l.protocol {
            lb_l7::config::Protocol::Http => "HTTP",
            lb_l7::config::Protocol::Https => "HTTPS",
        }
        .into(),
        alpn_policy: format!("{:?}", l.alpn()),
        certificates: l
            .certificate
            .iter()
            .map(|c| c.certificate_file.display().to_string())
            .collect(),
        default_action: action(&l.default_action),
        rule_count: l.rule.len(),
    }
}

/// The rules of the listener on `port` (the first one, if several addresses share the port);
/// `None` when no listener has it.
pub fn rules(cfg: &L7Config, port: u16) -> Option<RuleList> {
    let l = cfg.listener.iter().find(|l| l.port == port)?;
    let mut sorted: Vec<_> = l.rule.iter().collect();
    sorted.sort_by_key(|r| r.priority);
    let mut rules: Vec<RuleView> = sorted
        .into_iter()
        .map(|r| RuleView {
            priority: r.priority.to_string(),
            is_default: false,
            conditions: r.condition.iter().map(condition).collect(),
            action: action(&r.action),
        })
        .collect();
    rules.push(RuleView {
        priority: "default".into(),
        is_default: true,
        conditions: Vec::new(),
        action: action(&l.default_action),
    });
    Some(RuleList { port, rules })
}

fn condition(c: &Condition) -> ConditionView {
    let (header, values) = match c {
        Condition::HostHeader { values }
        | Condition::PathPattern { values }
        | Condition::HttpRequestMethod { values }
        | Condition::SourceIp { values } => (None, values.clone()),
        Condition::HttpHeader {
            http_header_name,
            values,
        } => (Some(http_header_name.clone()), values.clone()),
        Condition::QueryString { values } => (
            None,
            values
                .iter()
                .map(|v| format!("{}={}", v.key.as_deref().unwrap_or(""), v.value))
                .collect(),
        ),
    };
    ConditionView {
        field: c.field_name().into(),
        http_header_name: header,
        values,
    }
}

fn action(a: &Action) -> ActionView {
    match a {
        Action::Forward { stickiness, .. } => ActionView::Forward {
            target_groups: a
                .forward_groups()
                .into_iter()
                .map(|g| WeightedGroup {
                    name: g.name,
                    weight: g.weight,
                })
                .collect(),
            stickiness_seconds: stickiness
                .as_ref()
                .filter(|s| s.enabled)
                .map(|s| s.duration_seconds),
        },
        Action::Redirect {
            protocol,
            host,
            port,
            path,
            query,
            status_code,
        } => ActionView::Redirect {
            protocol: protocol.clone(),
            host: host.clone(),
            port: port.clone(),
            path: path.clone(),
            query: query.clone(),
            status_code: status_code.code(),
        },
        Action::FixedResponse {
            status_code,
            content_type,
            message_body,
        } => ActionView::FixedResponse {
            status_code: *status_code,
            content_type: content_type.clone(),
            message_body: message_body.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const CFG: &str = r#"
[[listener]]
port = 80
default_action = { type = "forward", target_group = "web" }
[[listener.rule]]
priority = 20
condition = [{ field = "path-pattern", values = ["/api/*"] }]
action = { type = "forward", target_groups = [{ name = "api", weight = 3 }, { name = "web" }] }
[[listener.rule]]
priority = 10
condition = [{ field = "http-header", http_header_name = "x-env", values = ["beta"] },
             { field = "query-string", values = [{ key = "v", value = "2" }] }]
action = { type = "fixed-response", status_code = 503, message_body = "down" }
[[target_group]]
name = "web"
target = [{ id = "10.0.0.1" }]
[[target_group]]
name = "api"
target = [{ id = "10.0.0.2", port = 8080 }]
"#;

    #[test]
    fn rules_come_by_priority_with_the_default_last() {
        let cfg = L7Config::from_toml_str(CFG).unwrap();
        let r = rules(&cfg, 80).unwrap();
        let prios: Vec<_> = r.rules.iter().map(|r| r.priority.as_str()).collect();
        assert_eq!(prios, ["10", "20", "default"]);
        assert_eq!(
            r.rules[0].conditions[0].http_header_name.as_deref(),
            Some("x-env")
        );
        assert_eq!(r.rules[0].conditions[1].values, ["v=2"]);
        assert_eq!(
            r.rules[1].action,
            ActionView::Forward {
                target_groups: vec![
                    WeightedGroup {
                        name: "api".into(),
                        weight: 3
                    },
                    WeightedGroup {
                        name: "web".into(),
                        weight: 1
                    }
                ],
                stickiness_seconds: None
            }
        );
        assert!(r.rules[2].is_default);
        assert!(rules(&cfg, 81).is_none());
    }

    #[test]
    fn listeners_show_protocol_and_counts_and_round_trip() {
        let cfg = L7Config::from_toml_str(CFG).unwrap();
        let l = listeners(&cfg);
        assert_eq!(l.listeners.len(), 1);
        assert_eq!(l.listeners[0].protocol, "HTTP");
        assert_eq!(l.listeners[0].rule_count, 2);
        let json = serde_json::to_string(&l).unwrap();
        assert!(json.contains(r#""type":"forward""#), "{json}");
        assert_eq!(serde_json::from_str::<ListenerList>(&json).unwrap(), l);
    }
}
