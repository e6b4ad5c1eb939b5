//! A target group's `[target_group.health_check]`, compiled for the checker: protocol, port,
//! path, timings, thresholds and the matcher. Pure.

use std::{net::SocketAddr, time::Duration};

use lb_l7::config::{HealthCheck, parse_matcher};

use super::state::Thresholds;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `GET path`, the status line read and matched.
    Http,
    /// The same over TLS, the target's certificate not verified (as ALB).
    Https,
    /// Connect only.
    Tcp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Tcp => "TCP",
        }
    }
}

/// ALB's matcher: status codes and ranges (`"200"`, `"200,202"`, `"200-299"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher(Vec<(u16, u16)>);

impl Matcher {
    pub fn parse(s: &str) -> Option<Matcher> {
        parse_matcher(s).map(Matcher)
    }
    pub fn matches(&self, code: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub protocol: Protocol,
    /// `None`: the target's own (traffic) port.
    pub port: Option<u16>,
    pub path: String,
    pub timeout: Duration,
    pub interval: Duration,
    pub thresholds: Thresholds,
    pub matcher: Matcher,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("health_check.protocol: {0:?} is not HTTP, HTTPS or TCP")]
    Protocol(String),
    #[error("health_check.port: {0:?} is not \"traffic-port\" or a port")]
    Port(String),
    #[error("health_check.matcher.http_code: {0:?} is not a list of codes or ranges")]
    Matcher(String),
}

impl Settings {
    /// From a validated configuration (`L7Config::validate` already refused what this refuses).
    pub fn from_config(h: &HealthCheck) -> Result<Settings, SettingsError> {
        let protocol = match h.protocol.as_str() {
            "HTTP" => Protocol::Http,
            "HTTPS" => Protocol::Https,
            "TCP" => Protocol::Tcp,
            p => return Err(SettingsError::Protocol(p.into())),
        };
        let port = match h.port.as_str() {
            "traffic-port" => None,
            p => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| SettingsError::Port(p.into()))?,
            ),
        };
        let matcher = Matcher::parse(&h.matcher.http_code)
            .ok_or_else(|| SettingsError::Matcher(h.matcher.http_code.clone()))?;
        Ok(Settings {
            protocol,
            port,
            path: h.path.clone(),
            timeout: Duration::from_secs(h.timeout_seconds),
            interval: Duration::from_secs(h.interval_seconds),
            thresholds: Thresholds {
                healthy: h.healthy_threshold_count,
                unhealthy: h.unhealthy_threshold_count,
            },
            matcher,
        })
    }

    /// Where the check of `target` goes.
    pub fn check_addr(&self, target: SocketAddr) -> SocketAddr {
        SocketAddr::new(target.ip(), self.port.unwrap_or(target.port()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matcher_takes_codes_lists_and_ranges() {
        let one = Matcher::parse("200").unwrap();
        assert!(one.matches(200) && !one.matches(201) && !one.matches(404));
        let list = Matcher::parse("200,202").unwrap();
        assert!(list.matches(200) && list.matches(202) && !list.matches(201));
        let range = Matcher::parse("200-299").unwrap();
        assert!(range.matches(200) && range.matches(250) && range.matches(299));
        assert!(!range.matches(199) && !range.matches(300) && !range.matches(301));
        let mixed = Matcher::parse("200-204, 404").unwrap();
        assert!(mixed.matches(404) && mixed.matches(204) && !mixed.matches(403));
        assert_eq!(Matcher::parse("500"), None);
        assert_eq!(Matcher::parse("299-200"), None);
        assert_eq!(Matcher::parse(""), None);
    }

    #[test]
    fn alb_defaults_and_ports() {
        let s = Settings::from_config(&HealthCheck::default()).unwrap();
        assert_eq!(s.protocol, Protocol::Http);
        assert_eq!((s.port, s.path.as_str()), (None, "/"));
        assert_eq!(s.interval, Duration::from_secs(30));
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(
            s.thresholds,
            Thresholds {
                healthy: 5,
                unhealthy: 2
            }
        );
        let t: SocketAddr = "10.0.0.1:8080".parse().unwrap();
        assert_eq!(s.check_addr(t), t);
        let h = HealthCheck {
            port: "9000".into(),
            protocol: "TCP".into(),
            ..HealthCheck::default()
        };
        let s = Settings::from_config(&h).unwrap();
        assert_eq!(s.protocol, Protocol::Tcp);
        assert_eq!(s.check_addr(t), "10.0.0.1:9000".parse().unwrap());
        let bad = HealthCheck {
            protocol: "UDP".into(),
            ..HealthCheck::default()
        };
        assert_eq!(
            Settings::from_config(&bad),
            Err(SettingsError::Protocol("UDP".into()))
        );
    }
}
