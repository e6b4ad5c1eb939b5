//! The maps, named as `lb_common::maps` says, and small helpers that wrap each lookup.
//! Every lookup is checked; a missing entry never panics or faults, it just counts nothing.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, lpm_trie::Key},
};
use lb_common::{
    Counter, Stat, VipEntry, VipInfo, VipKey, deny,
    maps::{
        DENY_ENTRIES, MAX_VIPS, SETTINGS_F_DENY_V4, SETTINGS_F_DENY_V6, Settings, VIPS_ENTRIES,
    },
    syn::{
        InsertBudget, SYN_COUNTERS, SYN_RATE_ENTRIES, SrcKey, SynBucket, SynCounter, SynSettings,
        SynVip,
    },
    vip::{VIP_INDEX_EMPTY, VIP_INDEX_SHARED, VIP_INDEX_SLOTS},
};

#[map]
static VIPS: HashMap<VipKey, VipInfo> = HashMap::with_max_entries(VIPS_ENTRIES, 0);

#[map]
static VIP_INDEX: Array<u32> = Array::with_max_entries(VIP_INDEX_SLOTS, 0);

#[map]
static VIP_TABLE: Array<VipEntry> = Array::with_max_entries(VIPS_ENTRIES, 0);

#[map]
static STATS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(Stat::COUNT, 0);

#[map]
static VIP_STATS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(MAX_VIPS, 0);

#[map]
static DENY_V4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(DENY_ENTRIES, 0);

#[map]
static DENY_V4_FULL: Array<u64> = Array::with_max_entries(deny::V4_BITMAP_WORDS, 0);

#[map]
static DENY_V4_PARTIAL: Array<u64> = Array::with_max_entries(deny::V4_BITMAP_WORDS, 0);

#[map]
static DENY_V6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(DENY_ENTRIES, 0);

#[map]
static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);

#[inline(always)]
fn add(counter: Option<*mut Counter>, len: u64) {
    if let Some(c) = counter {
        // Per-CPU slot: no other CPU writes it, so plain adds are exact.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
    }
}

#[inline(always)]
pub fn count(stat: Stat, len: u64) {
    add(STATS.get_ptr_mut(stat as u32), len);
}

#[inline(always)]
pub fn count_vip(vip: VipInfo, len: u64) {
    add(VIP_STATS.get_ptr_mut(vip.id), len);
}

/// The VIP entry for `key`: the direct-mapped index first (two array reads), the hash map only
/// for an index slot several keys share.
#[inline(always)]
pub fn vip(key: &VipKey) -> Option<VipInfo> {
    let slot = *VIP_INDEX.get(key.index_slot())?;
    match slot {
        VIP_INDEX_EMPTY => None,
        // SAFETY: entries are only replaced whole by user space; a racing reader sees the old or
        // the new value of a preallocated element, both valid `VipInfo`s.
        VIP_INDEX_SHARED => unsafe { VIPS.get(key).copied() },
        _ => {
            let entry = VIP_TABLE.get(slot - 1)?;
            same_key(&entry.key, key).then_some(entry.info)
        }
    }
}

/// Compares two keys as five words (cheaper for the verifier and the JIT than byte-wise).
#[inline(always)]
fn same_key(a: &VipKey, b: &VipKey) -> bool {
    let a: &[u32; 5] = unsafe { &*(a as *const VipKey as *const [u32; 5]) };
    let b: &[u32; 5] = unsafe { &*(b as *const VipKey as *const [u32; 5]) };
    a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4]
}

#[inline(always)]
fn settings_flags() -> u32 {
    SETTINGS.get(0).map_or(0, |s| s.flags)
}

/// The IPv4 deny-list: the /24 bitmaps answer alone unless a longer prefix lives in the /24
/// (see `lb_common::deny`).
#[inline(always)]
pub fn denied_v4(src: [u8; 4]) -> bool {
    if settings_flags() & SETTINGS_F_DENY_V4 == 0 {
        return false;
    }
    let (word, mask) = deny::bitmap_slot(deny::v4_block(src));
    if DENY_V4_FULL.get(word).is_some_and(|w| w & mask != 0) {
        return true;
    }
    DENY_V4_PARTIAL.get(word).is_some_and(|w| w & mask != 0)
        && DENY_V4.get(Key::new(32, src)).is_some()
}

#[inline(always)]
pub fn denied_v6(src: [u8; 16]) -> bool {
    settings_flags() & SETTINGS_F_DENY_V6 != 0 && DENY_V6.get(Key::new(128, src)).is_some()
}

// ---- SYN-flood defence (see `syn.rs`) ----

#[map]
static VIP_SYN: Array<SynVip> = Array::with_max_entries(MAX_VIPS, 0);

#[map]
static VIP_SYN_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_VIPS * SYN_COUNTERS, 0);

#[map]
static SYN_SETTINGS: Array<SynSettings> = Array::with_max_entries(1, 0);

#[map]
static SYN_RATE: LruHashMap<SrcKey, SynBucket> = LruHashMap::with_max_entries(SYN_RATE_ENTRIES, 0);

#[map]
static SYN_BUDGET: PerCpuArray<InsertBudget> = PerCpuArray::with_max_entries(1, 0);

/// The VIP's `SYN_VIP_*` flags; 0 (off) when it has no entry.
#[inline(always)]
pub fn syn_flags(vip_id: u32) -> u32 {
    VIP_SYN.get(vip_id).map_or(0, |v| v.flags)
}

#[inline(always)]
pub fn syn_settings() -> Option<&'static SynSettings> {
    SYN_SETTINGS.get(0)
}

/// Takes the `SYN_F_*` options in `mask` out of what the SYN-ACKs promise (`sysctl_watch.rs`).
#[inline(always)]
pub fn withdraw_syn_options(mask: u32) {
    if let Some(s) = SYN_SETTINGS.get_ptr_mut(0) {
        // SAFETY: the map's value; a plain store of one u32 (the XDP program reads the whole
        // struct: it sees the old flags or the new ones).
        unsafe { (*s).flags &= !mask };
    }
}

#[inline(always)]
pub fn count_syn(vip_id: u32, c: SynCounter) {
    if let Some(p) = VIP_SYN_STATS.get_ptr_mut(vip_id * SYN_COUNTERS + c as u32) {
        // Per-CPU slot: plain add is exact.
        unsafe { *p += 1 };
    }
}

pub enum Rate {
    Allow,
    Deny,
    /// Unknown source and the flood guard forbids inserting it: not limited.
    Untracked,
}

/// The per-source token bucket. Known sources are updated in place (no map update call); a new
/// source is inserted only while this CPU's insertion budget for the second lasts, so a flood
/// of spoofed sources cannot push real clients out of the LRU.
#[inline(always)]
pub fn syn_rate(key: &SrcKey, s: &SynSettings, now_ns: u64) -> Rate {
    if let Some(b) = SYN_RATE.get_ptr_mut(key) {
        // Racing CPUs may lose an update: the limit is approximate by design.
        return if unsafe { (*b).take(now_ns, s.ns_per_syn, s.bucket_ns) } {
            Rate::Allow
        } else {
            Rate::Deny
        };
    }
    let Some(budget) = SYN_BUDGET.get_ptr_mut(0) else {
        return Rate::Untracked;
    };
    if !unsafe { (*budget).admit(now_ns, s.new_sources_per_sec) } {
        return Rate::Untracked;
    }
    let first = SynBucket::first(now_ns, s.ns_per_syn, s.bucket_ns);
    let _ = SYN_RATE.insert(key, &first, 0);
    Rate::Allow
}
