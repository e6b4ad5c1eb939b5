//! The L7 part of weir's TOML file: `[load_balancer]`, `[[listener]]`, `[[target_group]]`.
//!
//! Names follow ALB's attribute names; ALB's dotted attribute keys are TOML dotted keys
//! (`idle_timeout.timeout_seconds = 60` inside `[load_balancer]`). Every struct denies unknown
//! fields so a typo is an error, not a silently ignored setting.

mod lb;
mod listener;
mod target_group;
mod validate;

pub use lb::*;
pub use listener::*;
pub use target_group::*;
pub use validate::{FieldError, parse_matcher, unusable_target_ip};

use serde::Deserialize;

/// The whole L7 configuration of one weir process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L7Config {
    #[serde(default)]
    pub load_balancer: LoadBalancerAttributes,
    #[serde(default)]
    pub listener: Vec<Listener>,
    #[serde(default)]
    pub target_group: Vec<TargetGroup>,
}

impl Default for L7Config {
    /// The embedded default: one plain HTTP listener on 0.0.0.0:8080 whose default action is a
    /// fixed 200 response, no target groups, health path `/weir-health`.
    fn default() -> Self {
        L7Config {
            load_balancer: LoadBalancerAttributes::default(),
            listener: vec![Listener {
                address: default_listener_address(),
                port: 8080,
                freebind: false,
                protocol: Protocol::Http,
                certificate: Vec::new(),
                alpn_policy: None,
                default_action: Action::FixedResponse {
                    status_code: 200,
                    content_type: Some("text/plain".into()),
                    message_body: "weir: no targets configured\n".into(),
                },
                rule: Vec::new(),
            }],
            target_group: Vec::new(),
        }
    }
}

impl L7Config {
    /// Parses the L7 part of a weir TOML document (the whole file, or the table left after the
    /// L4 keys were split off).
    pub fn from_toml_str(s: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(s)
    }

    /// Every problem found, each naming the TOML key path it is about. Empty means valid.
    pub fn validate(&self) -> Vec<FieldError> {
        validate::validate(self)
    }

    /// What is valid but most likely a mistake (e.g. a group whose every target has weight
    /// 0), each naming its key. Empty when nothing looks wrong.
    pub fn warnings(&self) -> Vec<FieldError> {
        validate::warnings(self)
    }

    /// The target group with this name.
    pub fn target_group(&self, name: &str) -> Option<&TargetGroup> {
        self.target_group.iter().find(|g| g.name == name)
    }
}

#[cfg(test)]
mod tests;
