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
            spec.address.parse().into_iter().collect()
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
    let mut index = std::collections::BTreeMap::new();
    for (i, (key, _)) in entries.iter().enumerate() {
        index
            .entry(key.index_slot())
            .and_modify(|v| *v = VIP_INDEX_SHARED)
            .or_insert(i as u32 + 1);
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn keys_sharing_an_index_slot_go_to_the_hash_map() {
        let v = resolve(&[spec("10.0.0.10", 80), spec("0.10.10.0", 80)], &[]);
        let idx = index(&entries(&v)[..2]);
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.values().next(), Some(&VIP_INDEX_SHARED));
    }
}
