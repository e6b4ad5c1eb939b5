//! From configured VIPs to `VIPS` map entries.

use std::{collections::BTreeSet, net::IpAddr};

use lb_common::{
    VipInfo, VipKey,
    vip::{VIP_F_NONE, VIP_INDEX_SHARED},
};

use super::to_addr;
use crate::config::{Protocol, VipSpec, l4::INTERFACE_ADDRESS};

/// A VIP with a concrete address and its counter slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedVip {
    /// Index in `VIP_STATS`.
    pub id: u32,
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

/// Expands `"interface"` to the interface's addresses and numbers the VIPs in order.
pub fn resolve(specs: &[VipSpec], interface_addrs: &[IpAddr]) -> Vec<ResolvedVip> {
    let mut out: Vec<ResolvedVip> = Vec::new();
    for spec in specs {
        let addrs: Vec<IpAddr> = if spec.address == INTERFACE_ADDRESS {
            interface_addrs.to_vec()
        } else {
            // `::ffff:a.b.c.d` is the IPv4 address its packets carry.
            spec.address
                .parse()
                .into_iter()
                .map(|a: std::net::IpAddr| a.to_canonical())
                .collect()
        };
        for address in addrs {
            if out
                .iter()
                .any(|v| v.address == address && v.port == spec.port && v.protocol == spec.protocol)
            {
                continue;
            }
            let name = spec.name.clone().unwrap_or_else(|| {
                let host = match address {
                    IpAddr::V4(a) => a.to_string(),
                    IpAddr::V6(a) => format!("[{a}]"),
                };
                format!("{host}:{}/{}", spec.port, spec.protocol.name())
            });
            out.push(ResolvedVip {
                id: out.len() as u32,
                name,
                address,
                port: spec.port,
                protocol: spec.protocol,
            });
        }
    }
    out
}

/// The ids of `vips` (numbered in order by [`resolve`]) made stable across a reload: a VIP the
/// running set has (same address, port and protocol) keeps its id — its counters and its SYN
/// state (mode, auto-mode hysteresis) are keyed by it — and a new one takes the lowest id no VIP
/// of either set uses, so a packet of a removed VIP racing the update is never counted as the
/// new one's; only when those run out does it take a removed VIP's id. Fails when more VIPs
/// than `max` ids are needed.
pub fn renumber(
    vips: Vec<ResolvedVip>,
    running: &[ResolvedVip],
    max: u32,
) -> Result<Vec<ResolvedVip>, String> {
    let same = |a: &ResolvedVip, b: &ResolvedVip| {
        a.address == b.address && a.port == b.port && a.protocol == b.protocol
    };
    let kept: Vec<Option<u32>> = vips
        .iter()
        .map(|v| running.iter().find(|r| same(r, v)).map(|r| r.id))
        .collect();
    let mut used: BTreeSet<u32> = kept.iter().flatten().copied().collect();
    let removed: BTreeSet<u32> = running.iter().map(|r| r.id).collect();
    let mut out = Vec::with_capacity(vips.len());
    for (mut v, k) in vips.into_iter().zip(kept) {
        v.id = match k {
            Some(id) => id,
            None => {
                let id = (0..max)
                    .find(|i| !used.contains(i) && !removed.contains(i))
                    .or_else(|| (0..max).find(|i| !used.contains(i)))
                    .ok_or_else(|| format!("more than {max} VIPs"))?;
                used.insert(id);
                id
            }
        };
        out.push(v);
    }
    Ok(out)
}

/// The map entries for `vips`: services, then one address entry per distinct address.
pub fn entries(vips: &[ResolvedVip]) -> Vec<(VipKey, VipInfo)> {
    let mut out: Vec<(VipKey, VipInfo)> = vips
        .iter()
        .map(|v| {
            (
                VipKey::service(to_addr(v.address), v.port.to_be(), v.protocol.number()),
                VipInfo {
                    id: v.id,
                    flags: VIP_F_NONE,
                },
            )
        })
        .collect();
    let addresses: BTreeSet<IpAddr> = vips.iter().map(|v| v.address).collect();
    out.extend(addresses.into_iter().map(|a| {
        (
            VipKey::address(to_addr(a)),
            VipInfo {
                id: VipInfo::ADDRESS_ID,
                flags: VIP_F_NONE,
            },
        )
    }));
    out
}

/// The `VIP_INDEX` contents for `entries` (table slot `i` holds `entries[i]`): each key's index
/// slot points at `i + 1`, or is `VIP_INDEX_SHARED` when several keys fold to it.
pub fn index(entries: &[(VipKey, VipInfo)]) -> std::collections::BTreeMap<u32, u32> {
    let placed: Vec<(VipKey, VipInfo, u32)> = entries
        .iter()
        .enumerate()
        .map(|(i, (k, v))| (*k, *v, i as u32))
        .collect();
    index_at(&placed)
}

/// As [`index`], for entries placed at the given table slots.
pub fn index_at(entries: &[(VipKey, VipInfo, u32)]) -> std::collections::BTreeMap<u32, u32> {
    let mut index = std::collections::BTreeMap::new();
    for (key, _, slot) in entries {
        index
            .entry(key.index_slot())
            .and_modify(|v| *v = VIP_INDEX_SHARED)
            .or_insert(slot + 1);
    }
    index
}

/// Local addresses an L7 listener serves that are not VIPs: (listener address and port, the
/// addresses). XDP sees only packets that arrive on its interface, and treats those to anything
/// but a VIP as `pass_not_vip`: the deny-list and the SYN defence skip them. A wildcard listener
/// (`0.0.0.0`, `::`) is reachable on every local address of its family (routed to the host
/// through the interface, an address on `lo` say); loopback addresses are left out (a packet from
/// the wire to one is dropped as martian), as are link-local IPv6 ones.
pub fn uncovered(
    listeners: &[std::net::SocketAddr],
    vips: &[ResolvedVip],
    local: &[IpAddr],
) -> Vec<(std::net::SocketAddr, Vec<IpAddr>)> {
    let mut out: Vec<(std::net::SocketAddr, Vec<IpAddr>)> = Vec::new();
    for l in listeners {
        let reachable: Vec<IpAddr> = match l.ip() {
            IpAddr::V4(a) if a.is_unspecified() => {
                local.iter().filter(|a| a.is_ipv4()).copied().collect()
            }
            // `::` takes IPv4 too (weir's IPv6 sockets are dual-stack).
            IpAddr::V6(a) if a.is_unspecified() => local.to_vec(),
            a => local.iter().filter(|x| **x == a).copied().collect(),
        };
        let mut missing: Vec<IpAddr> = reachable
            .into_iter()
            .filter(|a| !a.is_loopback())
            .filter(|a| {
                !vips
                    .iter()
                    .any(|v| v.address == *a && v.port == l.port() && v.protocol == Protocol::Tcp)
            })
            .collect();
        missing.sort();
        missing.dedup();
        if !missing.is_empty() && !out.iter().any(|(o, _)| o == l) {
            out.push((*l, missing));
        }
    }
    out
}

/// The `[[syn.vip]]` overrides (index, address, port) that name no VIP in `vips`: they change
/// nothing.
pub fn unmatched_overrides(
    overrides: &[crate::config::syn::SynVipOverride],
    vips: &[ResolvedVip],
) -> Vec<(usize, String, u16)> {
    overrides
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            let address = o
                .address
                .parse()
                .ok()
                .map(|a: std::net::IpAddr| a.to_canonical());
            !vips.iter().any(|v| {
                v.port == o.port && (o.address == INTERFACE_ADDRESS || address == Some(v.address))
            })
        })
        .map(|(i, o)| (i, o.address.clone(), o.port))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(address: &str, port: u16) -> ResolvedVip {
        ResolvedVip {
            id: 0,
            name: String::new(),
            address: address.parse().unwrap(),
            port,
            protocol: Protocol::Tcp,
        }
    }

    /// A wildcard listener also serves an address on `lo` (routed through the interface): XDP
    /// passed its traffic as not-a-VIP, deny-list and per-source limit skipped, and nothing said so.
    #[test]
    fn listener_addresses_outside_the_vips_are_named() {
        let vips = [resolved("10.201.0.2", 19505), resolved("fd20::2", 19505)];
        let local: Vec<IpAddr> = [
            "10.201.0.2",
            "10.202.0.1",
            "127.0.0.1",
            "fd20::2",
            "::1",
            "fd30::1",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let l = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            uncovered(&[l("0.0.0.0:19505")], &vips, &local),
            [(l("0.0.0.0:19505"), vec![ip("10.202.0.1")])]
        );
        assert_eq!(
            uncovered(&[l("[::]:19505")], &vips, &local),
            [(l("[::]:19505"), vec![ip("10.202.0.1"), ip("fd30::1")])]
        );
        // A listener on a VIP address, or on loopback: nothing to say.
        assert!(
            uncovered(
                &[l("10.201.0.2:19505"), l("127.0.0.1:19505")],
                &vips,
                &local
            )
            .is_empty()
        );
        assert_eq!(
            uncovered(&[l("10.202.0.1:19505")], &vips, &local),
            [(l("10.202.0.1:19505"), vec![ip("10.202.0.1")])]
        );
        // Every local address a VIP on the port: covered.
        let all = [resolved("10.201.0.2", 80), resolved("10.202.0.1", 80)];
        assert!(uncovered(&[l("0.0.0.0:80")], &all, &local).is_empty());
    }

    /// `[[syn.vip]] address = "10.201.0.99"` named no VIP and was accepted without a word.
    #[test]
    fn overrides_that_name_no_vip_are_found() {
        use crate::config::syn::{SynModeSetting, SynVipOverride};
        let o = |address: &str, port: u16| SynVipOverride {
            address: address.into(),
            port,
            mode: SynModeSetting::Always,
        };
        let vips = [resolved("10.201.0.2", 19505)];
        let overrides = [
            o("10.201.0.2", 19505),
            o("10.201.0.99", 19505),
            o("10.201.0.2", 80),
            o("interface", 19505),
            o("interface", 443),
            o("::ffff:10.201.0.2", 19505),
        ];
        assert_eq!(
            unmatched_overrides(&overrides, &vips),
            [
                (1, "10.201.0.99".to_string(), 19505),
                (2, "10.201.0.2".to_string(), 80),
                (4, "interface".to_string(), 443)
            ]
        );
    }

    fn spec(address: &str, port: u16) -> VipSpec {
        VipSpec {
            name: None,
            address: address.into(),
            port,
            protocol: Protocol::Tcp,
        }
    }

    #[test]
    fn interface_expands_and_duplicates_collapse() {
        let ifaddrs: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()];
        let v = resolve(&[spec("interface", 80), spec("10.0.0.1", 80)], &ifaddrs);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].name, "10.0.0.1:80/tcp");
        assert_eq!(v[1].name, "[fd00::1]:80/tcp");
        assert_eq!((v[0].id, v[1].id), (0, 1));
        let e = entries(&v);
        assert_eq!(e.len(), 4, "two services and two address entries");
        assert_eq!(e[0].0.port_be, 80u16.to_be());
        assert_eq!(e[2].1.id, VipInfo::ADDRESS_ID);
        let idx = index(&e);
        assert_eq!(idx.len(), 4);
        assert_eq!(idx[&e[0].0.index_slot()], 1);
    }

    #[test]
    fn a_reload_keeps_the_ids_of_kept_vips_and_gives_new_ones_unused_ids() {
        let running = resolve(&[spec("10.0.0.1", 80), spec("10.0.0.1", 443)], &[]);
        // 80 removed, 8080 added before 443: 443 keeps id 1, 8080 takes 2 (not 80's 0).
        let next = resolve(&[spec("10.0.0.1", 8080), spec("10.0.0.1", 443)], &[]);
        let next = renumber(next, &running, 512).unwrap();
        assert_eq!((next[0].port, next[0].id), (8080, 2));
        assert_eq!((next[1].port, next[1].id), (443, 1));
        // With no unused id left, a removed VIP's id is taken.
        let tight = renumber(
            resolve(&[spec("10.0.0.1", 9), spec("10.0.0.1", 443)], &[]),
            &running,
            2,
        )
        .unwrap();
        assert_eq!((tight[0].id, tight[1].id), (0, 1));
        assert!(
            renumber(
                resolve(&[spec("10.0.0.1", 1), spec("10.0.0.1", 2)], &[]),
                &[],
                1
            )
            .is_err()
        );
    }

    #[test]
    fn keys_sharing_an_index_slot_go_to_the_hash_map() {
        let v = resolve(&[spec("10.0.0.10", 80), spec("0.10.10.0", 80)], &[]);
        let idx = index(&entries(&v)[..2]);
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.values().next(), Some(&VIP_INDEX_SHARED));
    }
}
