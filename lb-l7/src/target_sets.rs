//! Run-time target sets: the targets in force of some groups, replacing the file's lists.
//!
//! The control plane keeps the targets registered and deregistered at run time (the admin API,
//! `weir targets register|deregister`) and those found by discovery in an overlay over the file
//! (`lb-userspace/src/overlay.rs`) and sends its outcome with each configuration generation
//! (`control::ConfigGeneration::target_sets`): for every group the overlay touches, the
//! targets in force. [`apply`] is the one function both sides build a group's targets with,
//! so the control plane's view (the admin API, the health checker) and every worker agree.
//! Pure.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::config::{L7Config, Target, TargetGroup};

/// One target in force: its address, and the weight and priority it has when the file does
/// not list it (discovery's SRV records give both; a registered target has weight 1 and
/// priority 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SetTarget {
    pub addr: SocketAddr,
    pub weight: u32,
    pub priority: u16,
}

impl SetTarget {
    /// A target of weight 1 and priority 0 (registered, or found by A/AAAA records).
    pub fn plain(addr: SocketAddr) -> SetTarget {
        SetTarget {
            addr,
            weight: 1,
            priority: 0,
        }
    }
}

/// Group name → the targets in force (in the order they are to be used).
pub type TargetSets = BTreeMap<String, Vec<SetTarget>>;

/// A file target's address: its IP and its port, the group's when it names none. `None` for an
/// id that is not an IP address (the file's validation refuses it).
pub fn address(group: &TargetGroup, t: &Target) -> Option<SocketAddr> {
    let ip: IpAddr = t.id.parse().ok()?;
    Some(SocketAddr::new(ip, t.port.unwrap_or(group.port)))
}

/// `config` with the targets of every group named in `sets` replaced by its set: a target the
/// file has keeps its entry (weight, zone, priority 0); any other gets the set's weight and
/// priority and no zone. Groups not in `sets` keep the file's targets; a set naming a group the
/// configuration lacks is ignored.
pub fn apply(config: &L7Config, sets: &TargetSets) -> L7Config {
    let mut out = config.clone();
    for g in &mut out.target_group {
        if let Some(set) = sets.get(&g.name) {
            g.target = targets(g, set);
        }
    }
    out
}

fn targets(group: &TargetGroup, set: &[SetTarget]) -> Vec<Target> {
    set.iter()
        .map(|s| {
            group
                .target
                .iter()
                .find(|t| address(group, t) == Some(s.addr))
                .cloned()
                .unwrap_or_else(|| Target {
                    id: s.addr.ip().to_string(),
                    port: Some(s.addr.port()),
                    weight: s.weight,
                    availability_zone: None,
                    priority: s.priority,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> L7Config {
        toml::from_str(
            r#"
[[listener]]
port = 8080
default_action = { type = "forward", target_group = "a" }
[[target_group]]
name = "a"
port = 9000
target = [{ id = "10.0.0.1", weight = 5, availability_zone = "z1" }, { id = "10.0.0.2", port = 81 }]
[[target_group]]
name = "b"
target = [{ id = "10.0.0.3" }]
"#,
        )
        .unwrap()
    }

    fn ids(c: &L7Config, g: usize) -> Vec<(String, Option<u16>, u32)> {
        c.target_group[g]
            .target
            .iter()
            .map(|t| (t.id.clone(), t.port, t.weight))
            .collect()
    }

    #[test]
    fn a_set_replaces_its_group_and_file_targets_keep_their_entry() {
        let sets = TargetSets::from([(
            "a".to_string(),
            vec![
                SetTarget {
                    addr: "10.0.0.9:9000".parse().unwrap(),
                    weight: 7,
                    priority: 20,
                },
                // The file's entry wins over the set's weight and priority.
                SetTarget {
                    addr: "10.0.0.1:9000".parse().unwrap(),
                    weight: 3,
                    priority: 10,
                },
            ],
        )]);
        let c = apply(&cfg(), &sets);
        assert_eq!(
            ids(&c, 0),
            [
                ("10.0.0.9".into(), Some(9000), 7),
                ("10.0.0.1".into(), None, 5)
            ]
        );
        let prio: Vec<u16> = c.target_group[0]
            .target
            .iter()
            .map(|t| t.priority)
            .collect();
        assert_eq!(prio, [20, 0]);
        assert_eq!(
            c.target_group[0].target[1].availability_zone.as_deref(),
            Some("z1")
        );
        // Untouched group, unknown group ignored.
        assert_eq!(ids(&c, 1), ids(&cfg(), 1));
        let c = apply(&cfg(), &TargetSets::from([("nope".to_string(), vec![])]));
        assert_eq!(ids(&c, 0), ids(&cfg(), 0));
    }

    #[test]
    fn an_empty_set_leaves_the_group_without_targets_and_ports_match_exactly() {
        let c = apply(&cfg(), &TargetSets::from([("a".to_string(), vec![])]));
        assert!(c.target_group[0].target.is_empty());
        // 10.0.0.2 is on port 81 in the file: port 9000 is another target.
        let sets = TargetSets::from([(
            "a".to_string(),
            vec![SetTarget::plain("10.0.0.2:9000".parse().unwrap())],
        )]);
        assert_eq!(
            ids(&apply(&cfg(), &sets), 0),
            [("10.0.0.2".into(), Some(9000), 1)]
        );
    }
}
