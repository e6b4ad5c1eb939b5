//! The XDP tier from user space: load the object, fill its maps, attach it, read its counters.
//!
//! - [`Dataplane`]: the loaded object (program verified by the kernel, maps created); fixtures and
//!   benchmarks use it without attaching.
//! - [`attach`]: preflight checks and attachment to an interface, detached on drop.
//! - [`pins`]: the per-interface bpffs directory `weir stats` reads, removed on exit.

pub mod attach;
pub mod ethtool;
pub mod kernel;
pub mod link_watch;
pub mod netns;
pub mod pins;
pub mod reload;
pub mod syn;
pub mod tier;
pub mod veth;
pub mod vips;

use std::net::IpAddr;

use aya::{
    Ebpf,
    maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray, lpm_trie::Key},
    programs::Xdp,
};
use ipnet::IpNet;
use lb_common::{
    Addr, Counter, Stat, VipEntry, VipInfo, VipKey, deny,
    maps::{self as names, SETTINGS_F_DENY_V4, SETTINGS_F_DENY_V6, Settings},
    vip::VIP_INDEX_EMPTY,
};

pub use vips::ResolvedVip;

/// Runs `prog` once on `frame` through `BPF_PROG_TEST_RUN` (in the caller's network namespace):
/// (XDP action, the frame as the program left it). The one place fixtures call the kernel's test
/// runner for a single frame.
pub fn run_frame(prog: &Xdp, frame: &[u8]) -> Result<(u32, Vec<u8>), aya::programs::ProgramError> {
    use aya::programs::{TestRun, TestRunOptions};
    // Room for a program that grows the frame (a SYN-ACK with more options than the SYN).
    let mut out = vec![0u8; frame.len() + 512];
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ..TestRunOptions::new()
    })?;
    out.truncate(r.data_size_out as usize);
    Ok((r.return_value, out))
}

/// The name of the XDP program in the object.
pub const PROGRAM: &str = "weir_xdp";

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error(
        "the kernel refused weir's eBPF object: {0} (weir needs Linux >= 5.18 with BTF and \
         CAP_BPF/CAP_NET_ADMIN; run as root)"
    )]
    Load(#[source] aya::EbpfError),
    #[error(transparent)]
    Kernel(#[from] kernel::TooOld),
    #[error("the kernel's verifier rejected the XDP program `{PROGRAM}`: {0}")]
    Verify(#[source] aya::programs::ProgramError),
    #[error("the eBPF object has no {0} `{1}` (build mismatch between lb-common and lb-ebpf)")]
    Missing(&'static str, &'static str),
    #[error("map `{0}`: {1}")]
    Map(&'static str, #[source] aya::maps::MapError),
    #[error("map `{0}` is full")]
    Full(&'static str),
    #[error("cannot count the possible CPUs: {0}")]
    Cpus(String),
}

/// weir's loaded eBPF object.
pub struct Dataplane {
    ebpf: Ebpf,
    /// The `VIP_INDEX` slots last written (to clear the ones a reload no longer uses).
    index_slots: Vec<u32>,
    /// Each VIP key's `VIP_TABLE` slot (kept across reloads).
    table_slots: std::collections::HashMap<VipKey, u32>,
    /// The words of the `DENY_V4_FULL` and `DENY_V4_PARTIAL` bitmaps last written non-zero:
    /// the ones a new deny-list clears. (Scanning the arrays for them was one lookup per word,
    /// 2 × 262,144 system calls, ~0.5 s of the control plane's loop at every reload.)
    deny_words: [std::collections::BTreeSet<u32>; 2],
}

impl Dataplane {
    /// Loads the embedded object and the XDP program into the kernel (no attachment).
    pub fn load() -> Result<Self, DataplaneError> {
        kernel::check_xdp(&kernel::release())?;
        let mut ebpf = crate::load_object(crate::XDP_OBJECT).map_err(DataplaneError::Load)?;
        for name in names::ALL.iter().chain(&lb_common::syn::names::ALL) {
            let name = *name;
            if ebpf.map(name).is_none() {
                return Err(DataplaneError::Missing("map", name));
            }
        }
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or(DataplaneError::Missing("program", PROGRAM))?
            .try_into()
            .map_err(DataplaneError::Verify)?;
        prog.load().map_err(DataplaneError::Verify)?;
        Ok(Dataplane {
            ebpf,
            index_slots: Vec::new(),
            table_slots: std::collections::HashMap::new(),
            deny_words: Default::default(),
        })
    }

    /// The loaded XDP program (for attaching, or `TestRun`).
    pub fn program(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(PROGRAM)
            .and_then(|p| p.try_into().ok())
            .expect("checked in load")
    }

    fn map_mut(&mut self, name: &'static str) -> Result<&mut aya::maps::Map, DataplaneError> {
        self.ebpf
            .map_mut(name)
            .ok_or(DataplaneError::Missing("map", name))
    }

    /// Programs the VIPs: one service entry each, plus one address entry per distinct address,
    /// into the hash map, the table and the direct-mapped index. Entries not in `vips` are
    /// removed, so this also serves a reload, in place while the program runs: a key keeps its
    /// table slot, a new key is written into a slot no index entry points at before the index
    /// points at it, and a removed key leaves the index before the hash map; so a packet racing
    /// the update sees each key's old or new entry whole, and a kept VIP is found throughout.
    pub fn set_vips(&mut self, vips: &[ResolvedVip]) -> Result<(), DataplaneError> {
        let wanted = vips::entries(vips);
        // Table slots: kept keys keep theirs; new keys take slots free before and after.
        let old_slots = std::mem::take(&mut self.table_slots);
        let mut slots: std::collections::HashMap<VipKey, u32> = wanted
            .iter()
            .filter_map(|(k, _)| old_slots.get(k).map(|s| (*k, *s)))
            .collect();
        let mut taken: std::collections::BTreeSet<u32> =
            old_slots.values().chain(slots.values()).copied().collect();
        for (k, _) in &wanted {
            if slots.contains_key(k) {
                continue;
            }
            let free = (0..names::VIPS_ENTRIES)
                .find(|s| !taken.contains(s))
                .or_else(|| (0..names::VIPS_ENTRIES).find(|s| !slots.values().any(|v| v == s)))
                .ok_or(DataplaneError::Full(names::VIP_TABLE))?;
            taken.insert(free);
            slots.insert(*k, free);
        }
        let placed: Vec<(VipKey, VipInfo, u32)> =
            wanted.iter().map(|(k, i)| (*k, *i, slots[k])).collect();
        let index = vips::index_at(&placed);

        let mut entries: Array<_, VipEntry> = Array::try_from(self.map_mut(names::VIP_TABLE)?)
            .map_err(|e| DataplaneError::Map(names::VIP_TABLE, e))?;
        for (key, info, slot) in &placed {
            let entry = VipEntry {
                key: *key,
                info: *info,
            };
            entries
                .set(*slot, entry, 0)
                .map_err(|e| DataplaneError::Map(names::VIP_TABLE, e))?;
        }

        let mut table: HashMap<_, VipKey, VipInfo> = HashMap::try_from(self.map_mut(names::VIPS)?)
            .map_err(|e| DataplaneError::Map(names::VIPS, e))?;
        let stale: Vec<VipKey> = table
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !wanted.iter().any(|(w, _)| w == k))
            .collect();
        for (key, info) in &wanted {
            table
                .insert(key, info, 0)
                .map_err(|e| DataplaneError::Map(names::VIPS, e))?;
        }

        let old_index = std::mem::take(&mut self.index_slots);
        let mut idx: Array<_, u32> = Array::try_from(self.map_mut(names::VIP_INDEX)?)
            .map_err(|e| DataplaneError::Map(names::VIP_INDEX, e))?;
        for (slot, value) in &index {
            idx.set(*slot, *value, 0)
                .map_err(|e| DataplaneError::Map(names::VIP_INDEX, e))?;
        }
        for slot in old_index.iter().filter(|s| !index.contains_key(s)) {
            idx.set(*slot, VIP_INDEX_EMPTY, 0)
                .map_err(|e| DataplaneError::Map(names::VIP_INDEX, e))?;
        }
        self.index_slots = index.into_keys().collect();

        let mut table: HashMap<_, VipKey, VipInfo> = HashMap::try_from(self.map_mut(names::VIPS)?)
            .map_err(|e| DataplaneError::Map(names::VIPS, e))?;
        for key in stale {
            table
                .remove(&key)
                .map_err(|e| DataplaneError::Map(names::VIPS, e))?;
        }
        self.table_slots = slots;
        Ok(())
    }

    /// Zeroes the counters of VIP ids a reload gives to new VIPs (an id a removed VIP had
    /// counts from 0 again), before their entries go in.
    pub fn reset_vip_counters(&mut self, ids: &[u32]) -> Result<(), DataplaneError> {
        if ids.is_empty() {
            return Ok(());
        }
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| DataplaneError::Cpus(e.to_string()))?;
        let mut stats: PerCpuArray<_, Counter> =
            PerCpuArray::try_from(self.map_mut(names::VIP_STATS)?)
                .map_err(|e| DataplaneError::Map(names::VIP_STATS, e))?;
        for id in ids {
            let zero = aya::maps::PerCpuValues::try_from(vec![Counter::default(); cpus])
                .map_err(|e| DataplaneError::Cpus(e.to_string()))?;
            stats
                .set(*id, zero, 0)
                .map_err(|e| DataplaneError::Map(names::VIP_STATS, e))?;
        }
        self.reset_syn_counters(ids, cpus)
    }

    /// Programs the deny-list (replacing what was there) and the settings flags that say which
    /// family's trie is worth walking.
    pub fn set_deny_list(&mut self, prefixes: &[IpNet]) -> Result<(), DataplaneError> {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for p in prefixes {
            match p {
                IpNet::V4(n) => v4.push(Key::new(n.prefix_len().into(), n.network().octets())),
                IpNet::V6(n) => v6.push(Key::new(n.prefix_len().into(), n.network().octets())),
            }
        }
        replace_trie(self.map_mut(names::DENY_V4)?, names::DENY_V4, &v4)?;
        let (full, partial) = deny_v4_bitmaps(prefixes);
        let [mut full_words, mut partial_words] = std::mem::take(&mut self.deny_words);
        write_bitmap(
            self.map_mut(names::DENY_V4_FULL)?,
            names::DENY_V4_FULL,
            &full,
            &mut full_words,
        )?;
        write_bitmap(
            self.map_mut(names::DENY_V4_PARTIAL)?,
            names::DENY_V4_PARTIAL,
            &partial,
            &mut partial_words,
        )?;
        self.deny_words = [full_words, partial_words];
        replace_trie(self.map_mut(names::DENY_V6)?, names::DENY_V6, &v6)?;
        let mut flags = 0;
        if !v4.is_empty() {
            flags |= SETTINGS_F_DENY_V4;
        }
        if !v6.is_empty() {
            flags |= SETTINGS_F_DENY_V6;
        }
        let mut settings: Array<_, Settings> = Array::try_from(self.map_mut(names::SETTINGS)?)
            .map_err(|e| DataplaneError::Map(names::SETTINGS, e))?;
        settings
            .set(
                0,
                Settings {
                    flags,
                    _reserved: 0,
                },
                0,
            )
            .map_err(|e| DataplaneError::Map(names::SETTINGS, e))
    }

    /// The counters as they are now.
    pub fn counters(&self) -> Result<Counters, DataplaneError> {
        let map = |name| {
            self.ebpf
                .map(name)
                .ok_or(DataplaneError::Missing("map", name))
        };
        let mut c = Counters::read(
            map(names::STATS)?,
            map(names::VIP_STATS)?,
            map(names::VIPS)?,
        )?;
        c.syn = self.syn_state(&c.tcp_vip_ids())?;
        Ok(c)
    }

    /// Pins the maps `weir stats` reads into `dir`.
    pub fn pin_maps(&self, dir: &std::path::Path) -> anyhow::Result<()> {
        for name in pins::PINNED {
            let map = self
                .ebpf
                .map(name)
                .ok_or(DataplaneError::Missing("map", name))?;
            map.pin(dir.join(name))
                .map_err(|e| anyhow::anyhow!("pinning map {name} in {}: {e}", dir.display()))?;
        }
        self.pin_syn_maps(dir)
    }
}

type Bitmap = std::collections::BTreeMap<u32, u64>;

/// The /24 bitmaps for the IPv4 prefixes (sparse: word index → bits).
fn deny_v4_bitmaps(prefixes: &[IpNet]) -> (Bitmap, Bitmap) {
    let (mut full, mut partial) = (Bitmap::new(), Bitmap::new());
    for p in prefixes {
        let IpNet::V4(n) = p else { continue };
        let (first, count) = deny::v4_blocks_covered(n.network().octets(), n.prefix_len());
        let target = if n.prefix_len() <= 24 {
            &mut full
        } else {
            &mut partial
        };
        for block in first..first + count {
            let (word, mask) = deny::bitmap_slot(block);
            *target.entry(word).or_default() |= mask;
        }
    }
    (full, partial)
}

/// Writes `bits` into a bitmap array, zeroing every other word that is set now.
/// Writes `bits` into the bitmap array and zeroes the words of `written` (the ones written
/// before, by this `Dataplane`: its maps start zeroed) that `bits` no longer has; `written`
/// becomes `bits`' words. A failure leaves `written` a superset of the words not zero.
fn write_bitmap(
    map: &mut aya::maps::Map,
    name: &'static str,
    bits: &Bitmap,
    written: &mut std::collections::BTreeSet<u32>,
) -> Result<(), DataplaneError> {
    let mut arr: Array<_, u64> = Array::try_from(map).map_err(|e| DataplaneError::Map(name, e))?;
    for (i, w) in bits {
        written.insert(*i);
        arr.set(*i, *w, 0)
            .map_err(|e| DataplaneError::Map(name, e))?;
    }
    let stale: Vec<u32> = written
        .iter()
        .filter(|i| !bits.contains_key(i))
        .copied()
        .collect();
    for i in stale {
        arr.set(i, 0, 0).map_err(|e| DataplaneError::Map(name, e))?;
        written.remove(&i);
    }
    Ok(())
}

fn replace_trie<const N: usize>(
    map: &mut aya::maps::Map,
    name: &'static str,
    entries: &[Key<[u8; N]>],
) -> Result<(), DataplaneError> {
    let mut trie: LpmTrie<_, [u8; N], u32> =
        LpmTrie::try_from(map).map_err(|e| DataplaneError::Map(name, e))?;
    let old: Vec<Key<[u8; N]>> = trie.keys().filter_map(Result::ok).collect();
    for k in old {
        trie.remove(&k).map_err(|e| DataplaneError::Map(name, e))?;
    }
    for k in entries {
        trie.insert(k, 1, 0)
            .map_err(|e| DataplaneError::Map(name, e))?;
    }
    Ok(())
}

/// Counter totals summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Indexed by `Stat as usize`.
    pub stats: Vec<Counter>,
    /// One entry per configured VIP service, ordered by id.
    pub vips: Vec<VipCounter>,
    /// The SYN defence's state and counters of the TCP VIPs, ordered by id.
    pub syn: Vec<syn::VipSyn>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipCounter {
    pub id: u32,
    pub address: IpAddr,
    pub port: u16,
    pub protocol: u8,
    pub counter: Counter,
}

impl Counters {
    /// Reads the three maps (from a loaded object or from pins).
    pub fn read(
        stats: &aya::maps::Map,
        vip_stats: &aya::maps::Map,
        vips: &aya::maps::Map,
    ) -> Result<Self, DataplaneError> {
        let stats_map: PerCpuArray<&MapData, Counter> =
            PerCpuArray::try_from(stats).map_err(|e| DataplaneError::Map(names::STATS, e))?;
        let vip_stats: PerCpuArray<&MapData, Counter> = PerCpuArray::try_from(vip_stats)
            .map_err(|e| DataplaneError::Map(names::VIP_STATS, e))?;
        let vips: HashMap<&MapData, VipKey, VipInfo> =
            HashMap::try_from(vips).map_err(|e| DataplaneError::Map(names::VIPS, e))?;
        let sum = |m: &PerCpuArray<&MapData, Counter>, name, i: u32| {
            let per_cpu = m.get(&i, 0).map_err(|e| DataplaneError::Map(name, e))?;
            let mut total = Counter::default();
            per_cpu.iter().for_each(|c| total.add(c));
            Ok::<_, DataplaneError>(total)
        };
        let mut out = Counters::default();
        for s in Stat::ALL {
            out.stats.push(sum(&stats_map, names::STATS, s as u32)?);
        }
        for entry in vips.iter().filter_map(Result::ok) {
            let (key, info) = entry;
            if info.id == VipInfo::ADDRESS_ID {
                continue;
            }
            out.vips.push(VipCounter {
                id: info.id,
                address: to_ip(key.addr),
                port: u16::from_be(key.port_be),
                protocol: key.proto,
                counter: sum(&vip_stats, names::VIP_STATS, info.id)?,
            });
        }
        out.vips.sort_by_key(|v| v.id);
        Ok(out)
    }

    /// The ids of the TCP VIPs (the ones with SYN state).
    pub fn tcp_vip_ids(&self) -> Vec<u32> {
        self.vips
            .iter()
            .filter(|v| v.protocol == lb_common::proto::TCP)
            .map(|v| v.id)
            .collect()
    }

    pub fn stat(&self, s: Stat) -> Counter {
        self.stats.get(s as usize).copied().unwrap_or_default()
    }

    /// Packets counted under any stat: every packet the program saw.
    pub fn total_packets(&self) -> u64 {
        self.stats.iter().map(|c| c.packets).sum()
    }
}

pub fn to_ip(a: Addr) -> IpAddr {
    match a.as_v4() {
        Some(v4) => IpAddr::from(v4),
        None => IpAddr::from(a.0),
    }
}

pub fn to_addr(ip: IpAddr) -> Addr {
    match ip {
        IpAddr::V4(v4) => Addr::from_v4(v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Addr::from_v4(v4.octets()),
            None => Addr::from_v6(v6.octets()),
        },
    }
}
