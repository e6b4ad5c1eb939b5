//! Virtual IPs: the `VIPS` map's key and value.

use crate::Addr;

/// Key of the `VIPS` hash map.
///
/// Lookups go `VIP_INDEX[key.index_slot()]` → `VIP_TABLE[slot - 1]` (key compared), falling back to
/// the `VIPS` hash map only for slots that several keys share: two array reads for almost every
/// packet instead of a hash computation.
///
/// Two kinds of entries share the map:
/// - a service entry `(address, port, protocol)` for each configured VIP, and
/// - an address entry `(address, 0, 0)` for each distinct VIP address, so packets that carry no
///   ports (fragments, ICMP, other protocols) can still be recognised as "to a VIP address".
#[repr(C, align(4))]
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

impl VipKey {
    /// The slot of this key in `VIP_INDEX`: a fold of address, port and protocol to 16 bits.
    ///
    /// The XDP program looks here first: an empty slot proves "not a VIP" with one array read
    /// (inlined by the verifier, no hashing), so most non-VIP packets never touch the hash map.
    #[inline(always)]
    pub fn index_slot(&self) -> u32 {
        let a = &self.addr.0;
        let folded = u16::from_ne_bytes([a[12], a[13]])
            ^ u16::from_ne_bytes([a[14], a[15]])
            ^ u16::from_ne_bytes([a[8], a[9]])
            ^ u16::from_ne_bytes([a[10], a[11]])
            ^ self.port_be
            ^ self.proto as u16;
        folded as u32
    }
}

/// Slots in `VIP_INDEX` (`index_slot` yields 16 bits).
pub const VIP_INDEX_SLOTS: u32 = 1 << 16;
/// `VIP_INDEX` value: no VIP key folds to this slot.
pub const VIP_INDEX_EMPTY: u32 = 0;
/// `VIP_INDEX` value: several keys fold to this slot; look the key up in `VIPS`.
pub const VIP_INDEX_SHARED: u32 = u32::MAX;

/// An entry of `VIP_TABLE`: the key (to confirm a `VIP_INDEX` hit) and its value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipEntry {
    pub key: VipKey,
    pub info: VipInfo,
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

// The XDP program compares keys as five u32 words.
const _: () = assert!(core::mem::size_of::<VipKey>() == 20 && core::mem::align_of::<VipKey>() == 4);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_slot_folds_address_port_and_protocol() {
        let a = VipKey::service(Addr::from_v4([10, 0, 0, 10]), 80u16.to_be(), 6);
        let same_fold = VipKey::service(Addr::from_v4([0, 10, 10, 0]), 80u16.to_be(), 6);
        assert_eq!(
            a.index_slot(),
            same_fold.index_slot(),
            "a collision the fixtures use"
        );
        assert_ne!(
            a.index_slot(),
            VipKey::service(a.addr, 81u16.to_be(), 6).index_slot()
        );
        assert_ne!(a.index_slot(), VipKey::address(a.addr).index_slot());
        assert!(a.index_slot() < VIP_INDEX_SLOTS);
    }
}
