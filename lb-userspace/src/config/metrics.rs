//! `[metrics]`: the Prometheus page of the control plane (`docs/metrics.md`).

use std::net::SocketAddr;

use serde::Deserialize;

use super::{FieldProblem, VipSpec};

/// The page's path on the address.
pub const PATH: &str = "/metrics";

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Where `weir run` serves `GET /metrics` (plain HTTP, no authentication), e.g.
    /// `"127.0.0.1:9464"`. Unset (the default): no page. The same figures are on the admin
    /// socket (`GET /v1/metrics`) either way.
    pub address: Option<SocketAddr>,
}

impl MetricsSettings {
    /// The address must not be a data-plane port: a listener's (the workers' sockets hold it,
    /// and the page would be served to clients) or a TCP `[[vip]]`'s (XDP answers there).
    pub fn validate(
        &self,
        listeners: &[lb_l7::config::Listener],
        vips: Option<&[VipSpec]>,
        problems: &mut Vec<FieldProblem>,
    ) {
        let Some(a) = self.address else { return };
        if a.port() == 0 {
            problems.push(FieldProblem::new(
                "metrics.address",
                "port 0: give the port Prometheus scrapes (9464 is the usual one)",
            ));
            return;
        }
        let overlaps =
            |ip: std::net::IpAddr| ip == a.ip() || ip.is_unspecified() || a.ip().is_unspecified();
        if let Some(l) = listeners
            .iter()
            .find(|l| l.port == a.port() && overlaps(l.address))
        {
            problems.push(FieldProblem::new(
                "metrics.address",
                format!(
                    "{a} is the data-plane port of the listener on {}:{}: the metrics page needs a port of its own",
                    l.address, l.port
                ),
            ));
            return;
        }
        if let Some(v) = vips
            .unwrap_or_default()
            .iter()
            .find(|v| v.port == a.port() && matches!(v.protocol, super::Protocol::Tcp))
        {
            problems.push(FieldProblem::new(
                "metrics.address",
                format!(
                    "port {} is a [[vip]] port ({}): XDP handles it, the metrics page needs a port of its own",
                    a.port(),
                    v.address
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn errors(text: &str) -> String {
        match Config::parse("t.toml", text) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_page_is_off_by_default_and_takes_an_address() {
        let c = Config::parse("t.toml", "").unwrap();
        assert_eq!(c.metrics.address, None);
        let c = Config::parse("t.toml", "[metrics]\naddress = \"127.0.0.1:9464\"\n").unwrap();
        assert_eq!(c.metrics.address, Some("127.0.0.1:9464".parse().unwrap()));
        assert!(errors("[metrics]\naddress = \"localhost\"\n").contains("metrics.address"));
        assert!(errors("[metrics]\npath = \"/m\"\n").contains("unknown field"));
    }

    #[test]
    fn a_data_plane_port_is_refused_with_its_location() {
        let listener = "[[listener]]\nport = 8080\n";
        let e = errors(&format!(
            "{listener}[metrics]\naddress = \"127.0.0.1:8080\"\n"
        ));
        assert!(
            e.contains("t.toml:4:11: field `metrics.address`")
                && e.contains("data-plane port of the listener on 0.0.0.0:8080"),
            "{e}"
        );
        // Another address on the listener's port does not overlap a listener on one address.
        let one = "[[listener]]\naddress = \"10.0.0.1\"\nport = 8080\n";
        assert_eq!(
            errors(&format!("{one}[metrics]\naddress = \"127.0.0.1:8080\"\n")),
            ""
        );
        let vip = "[[vip]]\naddress = \"interface\"\nport = 9464\n";
        let e = errors(&format!("{vip}[metrics]\naddress = \"127.0.0.1:9464\"\n"));
        assert!(e.contains("is a [[vip]] port"), "{e}");
        assert!(errors("[metrics]\naddress = \"127.0.0.1:0\"\n").contains("port 0"));
    }
}
