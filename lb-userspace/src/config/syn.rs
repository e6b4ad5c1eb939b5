//! `[syn]`: the SYN-flood defence (see ARCHITECTURE.md, "SYN floods").
//!
//! ```toml
//! [syn]
//! mode = "auto"                   # every VIP: off | auto | always
//! auto_on_syn_per_second = 5000   # auto: cookies on at this SYN rate per VIP …
//! auto_off_syn_per_second = 1000  # … and off once below this …
//! auto_hold_seconds = 5           # … for this long
//! per_source_syn_per_second = 0   # token bucket per source (IPv6: per /64); 0 = no limit
//! per_source_burst = 100
//! new_sources_per_second = 10000  # per CPU; above it the limiter stops tracking new sources
//! veth_peer = "attach"            # on a veth: attach | trust (VethPeerSetting; read at start)
//!
//! [[syn.vip]]                     # per-VIP overrides
//! address = "192.0.2.10"          # or "interface"
//! port = 443
//! mode = "always"
//! ```

use lb_common::syn::SynMode;
use serde::Deserialize;

use super::l4::{FieldProblem, INTERFACE_ADDRESS};

/// `[syn] veth_peer`: what weir does about a veth's peer, which must run a native XDP program
/// to receive the SYN-ACKs weir sends with XDP_TX (`xdp::veth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VethPeerSetting {
    /// Check the peer; attach weir's pass program to it when it has no native XDP program;
    /// refuse cookies on the interface when the peer cannot be reached or attached to (a
    /// generic-mode program on it), and look at it again while weir runs.
    Attach,
    /// Do not look at the peer (the operator vouches for it); the XDP_TX error watch still
    /// switches cookies off when SYN-ACKs are being dropped, and tries them again later
    /// (`xdp::tier`).
    Trust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SynModeSetting {
    Off,
    Auto,
    Always,
}

impl SynModeSetting {
    pub fn mode(self) -> SynMode {
        match self {
            SynModeSetting::Off => SynMode::Off,
            SynModeSetting::Auto => SynMode::Auto,
            SynModeSetting::Always => SynMode::Always,
        }
    }
}

/// `[syn]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynConfig {
    pub mode: SynModeSetting,
    pub auto_on_syn_per_second: u64,
    pub auto_off_syn_per_second: u64,
    pub auto_hold_seconds: u64,
    pub per_source_syn_per_second: u64,
    pub per_source_burst: u64,
    pub new_sources_per_second: u64,
    pub veth_peer: VethPeerSetting,
    pub vip: Vec<SynVipOverride>,
}

impl Default for SynConfig {
    fn default() -> Self {
        SynConfig {
            mode: SynModeSetting::Auto,
            auto_on_syn_per_second: 5000,
            auto_off_syn_per_second: 1000,
            auto_hold_seconds: 5,
            per_source_syn_per_second: 0,
            per_source_burst: 100,
            new_sources_per_second: 10_000,
            veth_peer: VethPeerSetting::Attach,
            vip: Vec::new(),
        }
    }
}

/// `[[syn.vip]]`: the mode of the VIPs with this address (or `"interface"`) and port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynVipOverride {
    pub address: String,
    pub port: u16,
    pub mode: SynModeSetting,
}

impl SynConfig {
    /// The mode of the VIP at `address:port` (`address` as configured in `[[vip]]`).
    pub fn mode_for(&self, address: &std::net::IpAddr, port: u16) -> SynMode {
        self.vip
            .iter()
            .find(|o| {
                o.port == port
                    && (o.address == INTERFACE_ADDRESS
                        || o.address
                            .parse()
                            .ok()
                            .map(|a: std::net::IpAddr| a.to_canonical())
                            == Some(address.to_canonical()))
            })
            .map_or(self.mode, |o| o.mode)
            .mode()
    }

    pub fn validate(&self, problems: &mut Vec<FieldProblem>) {
        if self.auto_off_syn_per_second > self.auto_on_syn_per_second {
            problems.push(FieldProblem::new(
                "syn.auto_off_syn_per_second",
                "must not exceed auto_on_syn_per_second (hysteresis)",
            ));
        }
        if self.auto_on_syn_per_second == 0 {
            problems.push(FieldProblem::new(
                "syn.auto_on_syn_per_second",
                "must be at least 1 (use mode = \"always\" for cookies all the time)",
            ));
        }
        if self.per_source_syn_per_second > 0 && self.per_source_burst == 0 {
            problems.push(FieldProblem::new(
                "syn.per_source_burst",
                "must be at least 1 when per_source_syn_per_second is set",
            ));
        }
        if self.per_source_syn_per_second > 1_000_000_000 {
            problems.push(FieldProblem::new(
                "syn.per_source_syn_per_second",
                "at most 1000000000",
            ));
        }
        for (i, o) in self.vip.iter().enumerate() {
            if o.address != INTERFACE_ADDRESS && o.address.parse::<std::net::IpAddr>().is_err() {
                problems.push(FieldProblem::new(
                    format!("syn.vip[{i}].address"),
                    format!(
                        "`{}` is not an IP address (or \"{INTERFACE_ADDRESS}\")",
                        o.address
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_pick_the_mode_per_vip() {
        let c: SynConfig = toml::from_str(
            "mode = \"off\"\n[[vip]]\naddress = \"10.0.0.1\"\nport = 80\nmode = \"always\"\n",
        )
        .unwrap();
        assert_eq!(
            c.mode_for(&"10.0.0.1".parse().unwrap(), 80),
            SynMode::Always
        );
        assert_eq!(c.mode_for(&"10.0.0.1".parse().unwrap(), 81), SynMode::Off);
        assert_eq!(c.mode_for(&"10.0.0.2".parse().unwrap(), 80), SynMode::Off);
        assert_eq!(SynConfig::default().mode, SynModeSetting::Auto);
    }

    #[test]
    fn validation_names_fields() {
        let c = SynConfig {
            auto_on_syn_per_second: 10,
            auto_off_syn_per_second: 20,
            per_source_syn_per_second: 5,
            per_source_burst: 0,
            vip: vec![SynVipOverride {
                address: "nope".into(),
                port: 1,
                mode: SynModeSetting::Off,
            }],
            ..SynConfig::default()
        };
        let mut p = Vec::new();
        c.validate(&mut p);
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "syn.auto_off_syn_per_second",
                "syn.per_source_burst",
                "syn.vip[0].address"
            ]
        );
    }
}

#[cfg(test)]
mod file_tests {
    use crate::config::Config;

    #[test]
    fn the_config_file_carries_syn_and_locates_its_errors() {
        let ok = Config::parse(
            "weir.toml",
            "[syn]\nmode = \"always\"\nper_source_syn_per_second = 50\n\n[[syn.vip]]\n\
             address = \"interface\"\nport = 443\nmode = \"off\"\n",
        )
        .unwrap();
        assert_eq!(ok.syn.per_source_syn_per_second, 50);
        assert_eq!(ok.syn.vip.len(), 1);
        let err = Config::parse(
            "weir.toml",
            "[syn]\nmode = \"auto\"\n\n[[syn.vip]]\naddress = \"bogus\"\nport = 1\nmode = \"off\"\n",
        )
        .unwrap_err();
        let e = err.issues[0].to_string();
        assert!(
            e.starts_with("weir.toml:5:11: field `syn.vip[0].address`"),
            "{e}"
        );
        let err = Config::parse("weir.toml", "[syn]\nmode = \"sometimes\"\n").unwrap_err();
        assert!(err.issues[0].to_string().contains("syn.mode"), "{err}");
    }
}
