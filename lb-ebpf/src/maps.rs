//! The maps, named as `lb_common::maps` says, and small helpers that wrap each lookup.
//! Every lookup is checked; a missing entry never panics or faults, it just counts nothing.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, PerCpuArray, lpm_trie::Key},
};
use lb_common::{
    Counter, Stat, VipInfo, VipKey,
    maps::{
        DENY_ENTRIES, MAX_VIPS, SETTINGS_F_DENY_V4, SETTINGS_F_DENY_V6, Settings, VIPS_ENTRIES,
    },
};

#[map]
static VIPS: HashMap<VipKey, VipInfo> = HashMap::with_max_entries(VIPS_ENTRIES, 0);

#[map]
static STATS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(Stat::COUNT, 0);

#[map]
static VIP_STATS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(MAX_VIPS, 0);

#[map]
static DENY_V4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(DENY_ENTRIES, 0);

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

#[inline(always)]
pub fn vip(key: &VipKey) -> Option<VipInfo> {
    // SAFETY: entries are only replaced whole by user space; a racing reader sees the old or the
    // new value of a preallocated element, both valid `VipInfo`s.
    unsafe { VIPS.get(key).copied() }
}

#[inline(always)]
fn settings_flags() -> u32 {
    SETTINGS.get(0).map_or(0, |s| s.flags)
}

#[inline(always)]
pub fn denied_v4(src: [u8; 4]) -> bool {
    settings_flags() & SETTINGS_F_DENY_V4 != 0 && DENY_V4.get(Key::new(32, src)).is_some()
}

#[inline(always)]
pub fn denied_v6(src: [u8; 16]) -> bool {
    settings_flags() & SETTINGS_F_DENY_V6 != 0 && DENY_V6.get(Key::new(128, src)).is_some()
}
