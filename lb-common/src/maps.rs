//! Map names and sizes. The eBPF program's `#[map]` statics carry exactly these names (a fixture
//! test loads the object and checks every one), so user space never spells a name itself.

/// Hash map `VipKey -> VipInfo`.
pub const VIPS: &str = "VIPS";
/// Array `VipKey::index_slot() -> 0 | table slot + 1 | VIP_INDEX_SHARED`.
pub const VIP_INDEX: &str = "VIP_INDEX";
/// Array `table slot -> VipEntry` (the entries `VIP_INDEX` points at).
pub const VIP_TABLE: &str = "VIP_TABLE";
/// Per-CPU array `Stat -> Counter`.
pub const STATS: &str = "STATS";
/// Per-CPU array `VipInfo::id -> Counter`.
pub const VIP_STATS: &str = "VIP_STATS";
/// LPM trie `Key<[u8; 4]> -> u32` of denied IPv4 source prefixes.
pub const DENY_V4: &str = "DENY_V4";
/// Array `word -> u64`: one bit per IPv4 /24 wholly denied (see `deny`).
pub const DENY_V4_FULL: &str = "DENY_V4_FULL";
/// Array `word -> u64`: one bit per IPv4 /24 holding a longer denied prefix (see `deny`).
pub const DENY_V4_PARTIAL: &str = "DENY_V4_PARTIAL";
/// LPM trie `Key<[u8; 16]> -> u32` of denied IPv6 source prefixes.
pub const DENY_V6: &str = "DENY_V6";
/// Array of one `Settings`.
pub const SETTINGS: &str = "SETTINGS";

/// Every map the XDP object must define.
pub const ALL: [&str; 10] = [
    VIPS,
    VIP_INDEX,
    VIP_TABLE,
    STATS,
    VIP_STATS,
    DENY_V4,
    DENY_V4_FULL,
    DENY_V4_PARTIAL,
    DENY_V6,
    SETTINGS,
];

/// Most VIP services (address, port, protocol) one host serves.
pub const MAX_VIPS: u32 = 512;
/// `VIPS` holds services plus one address entry per distinct address.
pub const VIPS_ENTRIES: u32 = 2 * MAX_VIPS;
/// Most deny-list prefixes per family.
pub const DENY_ENTRIES: u32 = 65_536;

/// Global switches read once per packet from `SETTINGS[0]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `SETTINGS_F_*` bits.
    pub flags: u32,
    pub _reserved: u32,
}

/// The IPv4 deny-list has entries (skips the trie walk when it is empty).
pub const SETTINGS_F_DENY_V4: u32 = 1 << 0;
/// The IPv6 deny-list has entries.
pub const SETTINGS_F_DENY_V6: u32 = 1 << 1;
