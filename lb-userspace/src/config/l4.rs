//! The L4 part of the configuration: XDP attachment, virtual IPs, the deny-list.

use std::net::IpAddr;

use ipnet::IpNet;
use lb_common::maps::{DENY_ENTRIES, MAX_VIPS};
use serde::Deserialize;

/// `[xdp]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XdpSettings {
    /// How to attach: `auto` (native, else generic with a warning), `native`, `generic`.
    pub mode: XdpModeSetting,
    /// How often the running daemon prints counter rates; 0 turns it off.
    pub stats_interval_seconds: u64,
}

impl Default for XdpSettings {
    fn default() -> Self {
        XdpSettings {
            mode: XdpModeSetting::Auto,
            stats_interval_seconds: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeSetting {
    Auto,
    Native,
    Generic,
}

/// `[[vip]]`: one service the XDP tier recognises.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipSpec {
    /// A label for `weir stats`; defaults to `address:port/protocol`.
    #[serde(default)]
    pub name: Option<String>,
    /// An IPv4/IPv6 address, or `"interface"`: every address of the attached interface.
    pub address: String,
    pub port: u16,
    #[serde(default)]
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => lb_common::proto::TCP,
            Protocol::Udp => lb_common::proto::UDP,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// The special VIP address meaning "the attached interface's own addresses".
pub const INTERFACE_ADDRESS: &str = "interface";

/// `[deny]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenyList {
    /// Source prefixes (`192.0.2.0/24`, `2001:db8::/32`, or a bare address) whose traffic to a VIP
    /// is dropped in XDP.
    pub sources: Vec<String>,
}

impl DenyList {
    /// The prefixes, as validation accepted them (a file that does not parse never gets here).
    pub fn prefixes(&self) -> Vec<IpNet> {
        self.sources
            .iter()
            .filter_map(|s| parse_prefix(s).ok())
            .collect()
    }
}

/// A field-level problem found after parsing: `path` is the TOML key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub path: String,
    pub message: String,
}

impl FieldProblem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldProblem {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Parses one deny-list entry: a prefix with no host bits set, or a bare address. An
/// IPv4-mapped IPv6 one (`::ffff:192.0.2.7`, `::ffff:192.0.2.0/120`) is the IPv4 prefix it
/// names (`192.0.2.7/32`, `192.0.2.0/24`), as HAProxy reads it: an IPv4 client's packets carry
/// the IPv4 address, so the IPv6 form never matched one.
pub fn parse_prefix(s: &str) -> Result<IpNet, String> {
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(addr.to_canonical()));
    }
    let net: IpNet = s
        .parse()
        .map_err(|_| format!("`{s}` is not an IP address or CIDR prefix"))?;
    if net.trunc() != net {
        return Err(format!(
            "`{s}` has host bits set; the prefix is `{}`",
            net.trunc()
        ));
    }
    Ok(unmap_net(net))
}

/// An IPv4-mapped prefix of 96 bits or more (`::ffff:a.b.c.d/n`) as the IPv4 `a.b.c.d/(n-96)`.
fn unmap_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

pub fn validate_vips(vips: &[VipSpec], problems: &mut Vec<FieldProblem>) {
    if vips.len() > MAX_VIPS as usize {
        problems.push(FieldProblem::new(
            "vip",
            format!(
                "{} VIPs configured; at most {MAX_VIPS} are supported",
                vips.len()
            ),
        ));
    }
    let mut seen = std::collections::HashMap::new();
    for (i, v) in vips.iter().enumerate() {
        if v.address != INTERFACE_ADDRESS && v.address.parse::<IpAddr>().is_err() {
            problems.push(FieldProblem::new(
                format!("vip[{i}].address"),
                format!(
                    "`{}` is not an IP address (or \"{INTERFACE_ADDRESS}\")",
                    v.address
                ),
            ));
        }
        if v.port == 0 {
            problems.push(FieldProblem::new(
                format!("vip[{i}].port"),
                "port must be 1-65535",
            ));
        }
        // `::ffff:10.0.0.1` and `10.0.0.1` are one VIP.
        let address = v.address.parse::<IpAddr>().map_or_else(
            |_| v.address.clone(),
            |a: IpAddr| a.to_canonical().to_string(),
        );
        if let Some(first) = seen.insert((address, v.port, v.protocol), i) {
            problems.push(FieldProblem::new(
                format!("vip[{i}]"),
                format!("duplicates vip[{first}] (same address, port and protocol)"),
            ));
        }
    }
}

pub fn validate_deny(deny: &DenyList, problems: &mut Vec<FieldProblem>) {
    let (mut v4, mut v6) = (0u32, 0u32);
    for (i, s) in deny.sources.iter().enumerate() {
        match parse_prefix(s) {
            Ok(IpNet::V4(_)) => v4 += 1,
            Ok(IpNet::V6(_)) => v6 += 1,
            Err(e) => problems.push(FieldProblem::new(format!("deny.sources[{i}]"), e)),
        }
    }
    if v4 > DENY_ENTRIES || v6 > DENY_ENTRIES {
        problems.push(FieldProblem::new(
            "deny.sources",
            format!("at most {DENY_ENTRIES} prefixes per address family"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `::ffff:10.201.0.3` was accepted as an IPv6 entry and never matched the IPv4 client.
    #[test]
    fn ipv4_mapped_entries_are_their_ipv4_prefixes() {
        for (entry, v4) in [
            ("::ffff:10.201.0.3", "10.201.0.3/32"),
            ("::ffff:10.201.0.3/128", "10.201.0.3/32"),
            ("::FFFF:192.0.2.0/120", "192.0.2.0/24"),
            ("::ffff:0:0/96", "0.0.0.0/0"),
        ] {
            assert_eq!(parse_prefix(entry).unwrap().to_string(), v4, "{entry}");
        }
        // Not IPv4-mapped (or shorter than /96): IPv6, as written.
        assert_eq!(parse_prefix("::1").unwrap().to_string(), "::1/128");
        assert_eq!(parse_prefix("::/0").unwrap().to_string(), "::/0");
        assert_eq!(
            parse_prefix("::ffff:0:0/95").unwrap_err(),
            "`::ffff:0:0/95` has host bits set; the prefix is `::fffe:0:0/95`"
        );
        // Counted under IPv4 for the per-family limit.
        let mut problems = Vec::new();
        validate_deny(
            &DenyList {
                sources: vec!["::ffff:10.0.0.1".into()],
            },
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            parse_prefix("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            parse_prefix("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(
            parse_prefix("192.0.2.1/24")
                .unwrap_err()
                .contains("192.0.2.0/24")
        );
        assert!(parse_prefix("bogus").is_err());
        assert!(parse_prefix("10.0.0.0/33").is_err());
    }
}
