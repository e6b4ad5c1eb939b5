//! Virtual IPs: the `VIPS` map's key and value.

use crate::Addr;

/// Key of the `VIPS` hash map.
///
/// Two kinds of entries share the map:
/// - a service entry `(address, port, protocol)` for each configured VIP, and
/// - an address entry `(address, 0, 0)` for each distinct VIP address, so packets that carry no
///   ports (fragments, ICMP, other protocols) can still be recognised as "to a VIP address".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipKey {
    pub addr: Addr,
    /// Destination port in network byte order, as read from the packet; 0 for an address entry.
    pub port_be: u16,
    /// IP protocol (`proto::TCP` / `proto::UDP`); 0 for an address entry.
    pub proto: u8,
    pub _pad: u8,
}

impl VipKey {
    #[inline(always)]
    pub const fn service(addr: Addr, port_be: u16, proto: u8) -> Self {
        VipKey {
            addr,
            port_be,
            proto,
            _pad: 0,
        }
    }

    #[inline(always)]
    pub const fn address(addr: Addr) -> Self {
        Self::service(addr, 0, 0)
    }
}

/// Value of the `VIPS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipInfo {
    /// Index of this VIP in `VIP_STATS` (`< maps::MAX_VIPS`). Address entries use `ADDRESS_ID`.
    pub id: u32,
    /// `VIP_F_*` bits.
    pub flags: u32,
}

impl VipInfo {
    /// The `id` of an address entry (it has no counters of its own).
    pub const ADDRESS_ID: u32 = u32::MAX;
}

/// Flag bits of `VipInfo::flags`. None are defined yet; SYN protection and steering add theirs.
pub const VIP_F_NONE: u32 = 0;
