//! The SYN-flood defence from user space: per-VIP modes and the auto-mode ticks
//! ([`SynControl`]), the settings the SYN-ACK needs from the host, the host sysctls the kernel's
//! cookie path needs ([`HostSysctls`], restored on drop), and the counters `weir stats` shows.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use aya::maps::{Array, MapData, PerCpuArray};
use lb_common::syn::{
    AutoPolicy, AutoState, SYN_COUNTERS, SYN_F_ECN, SYN_F_SACK, SYN_F_TIMESTAMPS, SYN_F_WSCALE,
    SYN_VIP_COOKIES, SYN_VIP_COUNT, SYN_VIP_LIMIT, SynCounter, SynMode, SynSettings, SynVip, names,
};
use tracing::{error, info, warn};

use super::{Dataplane, DataplaneError, ResolvedVip};
use crate::config::syn::SynConfig;

/// A VIP's SYN state and counters (summed over CPUs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipSyn {
    pub id: u32,
    pub mode: SynMode,
    pub cookies: bool,
    /// Indexed by `SynCounter as usize`.
    pub counts: [u64; SYN_COUNTERS as usize],
}

impl VipSyn {
    pub fn get(&self, c: SynCounter) -> u64 {
        self.counts[c as usize]
    }
}

impl Dataplane {
    pub fn set_syn_settings(&mut self, s: SynSettings) -> Result<(), DataplaneError> {
        let mut a: Array<_, SynSettings> = Array::try_from(self.map_mut(names::SYN_SETTINGS)?)
            .map_err(|e| DataplaneError::Map(names::SYN_SETTINGS, e))?;
        a.set(0, s, 0)
            .map_err(|e| DataplaneError::Map(names::SYN_SETTINGS, e))
    }

    /// What the SYN-ACKs promise now (the kernel-side `weir_sysctl` may have withdrawn options).
    pub fn syn_settings(&self) -> Result<SynSettings, DataplaneError> {
        let map = self
            .ebpf
            .map(names::SYN_SETTINGS)
            .ok_or(DataplaneError::Missing("map", names::SYN_SETTINGS))?;
        let a: Array<_, SynSettings> =
            Array::try_from(map).map_err(|e| DataplaneError::Map(names::SYN_SETTINGS, e))?;
        a.get(&0, 0)
            .map_err(|e| DataplaneError::Map(names::SYN_SETTINGS, e))
    }

    /// Attaches `weir_sysctl` (lb-ebpf `sysctl_watch.rs`) to the root of the cgroup v2
    /// hierarchy (`cgroup2` in /proc/self/mountinfo), as a BPF link beside any other program
    /// there: a write that turns off an option the SYN-ACKs promise withdraws it before it
    /// takes effect. The link goes with the process.
    pub fn watch_sysctl_writes(&mut self) -> anyhow::Result<std::path::PathBuf> {
        use aya::programs::{CgroupAttachMode, CgroupSysctl};
        let root =
            cgroup2_root().ok_or_else(|| anyhow::anyhow!("no cgroup2 file system mounted"))?;
        let cgroup = std::fs::File::open(&root)
            .map_err(|e| anyhow::anyhow!("opening {}: {e}", root.display()))?;
        let p: &mut CgroupSysctl = self
            .ebpf
            .program_mut(SYSCTL_PROGRAM)
            .ok_or(DataplaneError::Missing("program", SYSCTL_PROGRAM))?
            .try_into()?;
        p.load()?;
        // A BPF link (kernel ≥ 5.7) sits beside the cgroup's other programs whatever the mode,
        // and `bpf_link_create` refuses the multi flag (EINVAL): the default mode.
        p.attach(cgroup, CgroupAttachMode::Single)?;
        Ok(root)
    }

    pub fn set_syn_vip(&mut self, id: u32, v: SynVip) -> Result<(), DataplaneError> {
        let mut a: Array<_, SynVip> = Array::try_from(self.map_mut(names::VIP_SYN)?)
            .map_err(|e| DataplaneError::Map(names::VIP_SYN, e))?;
        a.set(id, v, 0)
            .map_err(|e| DataplaneError::Map(names::VIP_SYN, e))
    }

    /// The SYN state and counters of VIPs `ids`.
    pub fn syn_state(&self, ids: &[u32]) -> Result<Vec<VipSyn>, DataplaneError> {
        let map = |name| {
            self.ebpf
                .map(name)
                .ok_or(DataplaneError::Missing("map", name))
        };
        read(map(names::VIP_SYN)?, map(names::VIP_SYN_STATS)?, ids)
    }

    /// Zeroes the SYN counters of VIP ids `ids` (see `reset_vip_counters`).
    pub(super) fn reset_syn_counters(
        &mut self,
        ids: &[u32],
        cpus: usize,
    ) -> Result<(), DataplaneError> {
        let mut a: PerCpuArray<_, u64> = PerCpuArray::try_from(self.map_mut(names::VIP_SYN_STATS)?)
            .map_err(|e| DataplaneError::Map(names::VIP_SYN_STATS, e))?;
        for id in ids {
            for k in 0..SYN_COUNTERS {
                let zero = aya::maps::PerCpuValues::try_from(vec![0u64; cpus])
                    .map_err(|e| DataplaneError::Cpus(e.to_string()))?;
                a.set(id * SYN_COUNTERS + k, zero, 0)
                    .map_err(|e| DataplaneError::Map(names::VIP_SYN_STATS, e))?;
            }
        }
        Ok(())
    }

    /// Entries in the per-source rate limiter (for tests and `weir stats`).
    pub fn syn_rate_sources(&self) -> Result<usize, DataplaneError> {
        let m = self
            .ebpf
            .map(names::SYN_RATE)
            .ok_or(DataplaneError::Missing("map", names::SYN_RATE))?;
        let h: aya::maps::HashMap<&MapData, lb_common::syn::SrcKey, lb_common::syn::SynBucket> =
            aya::maps::HashMap::try_from(m).map_err(|e| DataplaneError::Map(names::SYN_RATE, e))?;
        Ok(h.keys().filter(Result::is_ok).count())
    }

    /// Pins the SYN maps `weir stats` reads.
    pub(super) fn pin_syn_maps(&self, dir: &Path) -> anyhow::Result<()> {
        for name in PINNED {
            let map = self
                .ebpf
                .map(name)
                .ok_or(DataplaneError::Missing("map", name))?;
            map.pin(dir.join(name))
                .map_err(|e| anyhow::anyhow!("pinning map {name} in {}: {e}", dir.display()))?;
        }
        Ok(())
    }
}

/// The SYN maps pinned beside the counters.
pub const PINNED: [&str; 3] = [names::VIP_SYN, names::VIP_SYN_STATS, names::SYN_SETTINGS];

/// The `cgroup/sysctl` program in the object.
pub const SYSCTL_PROGRAM: &str = "weir_sysctl";

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a
/// hybrid host), from this process's mount table.
fn cgroup2_root() -> Option<std::path::PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    table.lines().find_map(|l| {
        // `… mount-point … - fstype source options`
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(std::path::PathBuf::from))?
    })
}

fn read(
    vip_syn: &aya::maps::Map,
    stats: &aya::maps::Map,
    ids: &[u32],
) -> Result<Vec<VipSyn>, DataplaneError> {
    let states: Array<&MapData, SynVip> =
        Array::try_from(vip_syn).map_err(|e| DataplaneError::Map(names::VIP_SYN, e))?;
    let counts: PerCpuArray<&MapData, u64> =
        PerCpuArray::try_from(stats).map_err(|e| DataplaneError::Map(names::VIP_SYN_STATS, e))?;
    let mut out = Vec::new();
    for &id in ids {
        let st = states
            .get(&id, 0)
            .map_err(|e| DataplaneError::Map(names::VIP_SYN, e))?;
        let mut c = [0u64; SYN_COUNTERS as usize];
        for (k, slot) in c.iter_mut().enumerate() {
            let per_cpu = counts
                .get(&(id * SYN_COUNTERS + k as u32), 0)
                .map_err(|e| DataplaneError::Map(names::VIP_SYN_STATS, e))?;
            *slot = per_cpu.iter().copied().fold(0u64, u64::wrapping_add);
        }
        out.push(VipSyn {
            id,
            mode: SynMode::from_u32(st.mode),
            cookies: st.cookies(),
            counts: c,
        });
    }
    Ok(out)
}

/// The SYN state of VIPs `ids` from a running daemon's pins in `dir` (`weir stats`); empty when
/// the pins are not there (a daemon of an older build).
pub fn read_pinned(dir: &Path, ids: &[u32]) -> anyhow::Result<Vec<VipSyn>> {
    let open = |name: &str| -> Option<MapData> { MapData::from_pin(dir.join(name)).ok() };
    let (Some(a), Some(b)) = (open(names::VIP_SYN), open(names::VIP_SYN_STATS)) else {
        return Ok(Vec::new());
    };
    Ok(read(
        &aya::maps::Map::Array(a),
        &aya::maps::Map::PerCpuArray(b),
        ids,
    )?)
}

/// What the host's TCP stack will do with a cookie ACK, read from its sysctls: the SYN-ACK must
/// promise exactly that.
pub fn host_settings(cfg: &SynConfig, mtu: Option<u32>) -> SynSettings {
    let num = |k: &str| {
        sysctl_get(k)
            .ok()
            .and_then(|v| v.split_whitespace().last()?.parse::<u64>().ok())
    };
    let mut flags = 0;
    if num("net/ipv4/tcp_sack").unwrap_or(1) != 0 {
        flags |= SYN_F_SACK;
    }
    if num("net/ipv4/tcp_window_scaling").unwrap_or(1) != 0 {
        flags |= SYN_F_WSCALE;
    }
    if num("net/ipv4/tcp_ecn").unwrap_or(2) != 0 {
        flags |= SYN_F_ECN;
    }
    // Only without a per-connection offset does the kernel read the options back unchanged.
    if num("net/ipv4/tcp_timestamps") == Some(2) {
        flags |= SYN_F_TIMESTAMPS;
    }
    // tcp_select_initial_window: ilog2(max(tcp_rmem[2], rmem_max)) - 15, clamped to 0..=14.
    let space = num("net/ipv4/tcp_rmem")
        .unwrap_or(6 << 20)
        .max(num("net/core/rmem_max").unwrap_or(0))
        .max(1);
    let wscale = (63 - space.leading_zeros() as i64 - 15).clamp(0, 14) as u32;
    let mtu = mtu.unwrap_or(1500).clamp(1280, 65_535);
    let (ns_per_syn, bucket_ns) = match cfg.per_source_syn_per_second {
        0 => (0, 0),
        r => {
            let per = 1_000_000_000 / r;
            (per, per.saturating_mul(cfg.per_source_burst.max(1)))
        }
    };
    SynSettings {
        flags,
        mss_v4: (mtu - 40) as u16,
        mss_v6: (mtu - 60) as u16,
        wscale,
        window: 65_535,
        ns_per_syn,
        bucket_ns,
        new_sources_per_sec: cfg.new_sources_per_second,
    }
}

fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key)
}

fn sysctl_get(key: &str) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(sysctl_path(key))?
        .trim()
        .to_string())
}

/// The sysctls of this network namespace the cookie path needs, set while weir runs and
/// restored on drop:
/// - `net.ipv4.tcp_timestamps = 2` (timestamps without per-connection offsets) whenever any VIP
///   can get cookies: the kernel subtracts the offset from the echoed TSval before decoding the
///   options, which would scramble them;
/// - `net.ipv4.tcp_syncookies = 2` while any VIP has cookies on (the helper generates a cookie
///   only then, or when the listener's SYN queue is full), at least 1 otherwise so late cookie
///   ACKs still validate.
///
/// While cookies are on, [`SynControl`]'s ticks re-assert both when something else rewrites
/// them (`sysctl --system`, config management): `tcp_syncookies` off, the helper makes no
/// cookie; `tcp_timestamps` at 1, the kernel subtracts a per-connection offset from the echoed
/// TSval before it decodes the options there, and the connections the XDP cookies answered
/// fail (`e2e_synflood_bridge`).
///
/// They are held jointly with the namespace's other weir daemons (`crate::sysctl`): the
/// originals are recorded in `/run/weir` before the first change, a value goes back only when
/// no running weir of the namespace needs it (the highest asked is in force meanwhile), and the
/// next start restores what daemons killed without their cleanup left.
pub struct HostSysctls {
    syncookies_base: String,
    /// `tcp_timestamps` was set to 2 (it was not 0 at the start).
    timestamps: bool,
}

const SYNCOOKIES: &str = "net/ipv4/tcp_syncookies";

/// The key of the re-assert count in the daemon's note (`weir stats`).
pub const REASSERTED: &str = "syncookies_reasserted";
/// The key of the XDP_TX drop count while cookies were on.
pub const TX_ERRORS: &str = "xdp_tx_errors";
/// The key of the reason cookies are refused on the interface.
pub const COOKIES_REFUSED: &str = "cookies_refused";

/// This namespace's `tcp_syncookies` and how often the daemon on `iface` re-asserted it, and
/// whether its program is on the interface (`super::tier`), for `weir stats` (run in the
/// daemon's namespace).
pub fn host_json(iface: &str) -> serde_json::Value {
    let count = super::pins::read_note(iface, REASSERTED)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let tx_errors = super::pins::read_note(iface, TX_ERRORS)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let attached = super::pins::read_note(iface, super::tier::ATTACHED).map(|v| v == "1");
    let reattached =
        super::pins::read_note(iface, super::tier::REATTACHED).and_then(|v| v.parse::<u64>().ok());
    let trials =
        super::pins::read_note(iface, super::tier::TRIALS).and_then(|v| v.parse::<u64>().ok());
    serde_json::json!({
        "syn_ack": pinned_settings(iface).map(|s| describe(&s)),
        "tcp_syncookies": sysctl_get(SYNCOOKIES).ok(),
        REASSERTED: count,
        TX_ERRORS: tx_errors,
        COOKIES_REFUSED: super::pins::read_note(iface, COOKIES_REFUSED),
        super::tier::ATTACHED: attached,
        super::tier::REATTACHED: reattached,
        super::tier::TRIALS: trials,
        super::tier::VETH_PEER: super::pins::read_note(iface, super::tier::VETH_PEER),
    })
}
/// What the SYN-ACKs of the daemon on `iface` promise now (its pinned `SYN_SETTINGS`).
fn pinned_settings(iface: &str) -> Option<SynSettings> {
    let dir = super::pins::dir_for(&crate::iface_id::IfaceId::here(iface).ok()?);
    let m = aya::maps::MapData::from_pin(dir.join(names::SYN_SETTINGS)).ok()?;
    let a: Array<_, SynSettings> = Array::try_from(aya::maps::Map::Array(m)).ok()?;
    a.get(&0, 0).ok()
}

/// The options a SYN-ACK promises, for the log: `sack wscale=7 ecn timestamps mss=1460/1440`.
fn describe(s: &SynSettings) -> String {
    let mut out = Vec::new();
    if s.flags & SYN_F_SACK != 0 {
        out.push("sack".to_string());
    }
    if s.flags & SYN_F_WSCALE != 0 {
        out.push(format!("wscale={}", s.wscale));
    }
    if s.flags & SYN_F_ECN != 0 {
        out.push("ecn".into());
    }
    if s.flags & SYN_F_TIMESTAMPS != 0 {
        out.push("timestamps".into());
    }
    out.push(format!("mss={}/{}", s.mss_v4, s.mss_v6));
    out.join(" ")
}
const TIMESTAMPS: &str = "net/ipv4/tcp_timestamps";

impl HostSysctls {
    pub fn apply() -> anyhow::Result<HostSysctls> {
        // The values as the host had them before any weir of this namespace changed them
        // (another daemon here, `weir run --iface` on another NIC, may have cookies on now).
        let timestamps = crate::sysctl::original(TIMESTAMPS)?;
        let syncookies = crate::sysctl::original(SYNCOOKIES)?;
        // From here on, a failure drops `h`, which restores what was changed.
        let h = HostSysctls {
            syncookies_base: if syncookies == "0" {
                "1".into()
            } else {
                syncookies
            },
            timestamps: timestamps != "0",
        };
        if timestamps != "0" {
            crate::sysctl::set(TIMESTAMPS, "2")?;
        } else {
            warn!("net.ipv4.tcp_timestamps is 0: SYN cookies will carry the MSS only");
        }
        crate::sysctl::set(SYNCOOKIES, &h.syncookies_base)?;
        Ok(h)
    }

    /// Sets `tcp_syncookies` for "some VIP has cookies on" or not.
    pub fn cookies(&self, on: bool) -> anyhow::Result<()> {
        crate::sysctl::set(SYNCOOKIES, if on { "2" } else { &self.syncookies_base })
    }

    /// With cookies on: puts `tcp_syncookies` back to 2, and `tcp_timestamps` when weir set it,
    /// where something else rewrote them. Returns each one put back with the value found. The
    /// original recorded at the first change stays the one restored at exit.
    pub fn reassert(&self) -> anyhow::Result<Vec<(&'static str, String)>> {
        let mut put_back = Vec::new();
        for (key, name, ours) in [
            (SYNCOOKIES, "net.ipv4.tcp_syncookies", true),
            (TIMESTAMPS, "net.ipv4.tcp_timestamps", self.timestamps),
        ] {
            if !ours {
                continue;
            }
            if let Some(found) = crate::sysctl::reassert(key, "2")? {
                put_back.push((name, found));
            }
        }
        Ok(put_back)
    }
}

impl Drop for HostSysctls {
    fn drop(&mut self) {
        for k in [SYNCOOKIES, TIMESTAMPS] {
            if let Err(e) = crate::sysctl::restore(k) {
                warn!("{e:#}");
            }
        }
    }
}

/// One VIP under control.
struct Controlled {
    id: u32,
    name: String,
    address: std::net::IpAddr,
    port: u16,
    mode: SynMode,
    auto: AutoState,
    last_syns: u64,
}

/// Per-VIP modes, the auto-mode state machines and the host sysctls of a running daemon.
pub struct SynControl {
    vips: Vec<Controlled>,
    policy: AutoPolicy,
    limit: bool,
    tick: Duration,
    /// Time since the last auto-mode step.
    since_step: Duration,
    host: Option<HostSysctls>,
    cookies_on: bool,
    /// How many times `tcp_syncookies` was found rewritten and put back to 2.
    reasserted: u64,
    /// Why cookies are refused on this interface (its veth peer cannot receive XDP_TX frames, or
    /// the XDP_TX counters showed SYN-ACKs being dropped); no VIP gets cookies while set.
    refused: Option<String>,
    /// The interface's XDP_TX counters, read every tick while cookies are on.
    tx_watch: Option<super::veth::TxWatch>,
    /// XDP_TX frames (sent, dropped) of ticks that dropped some, until the tier takes them.
    tx_lost: Option<(u64, u64)>,
    /// SYN-ACKs the interface dropped (XDP_TX errors) while cookies were on.
    tx_errors: u64,
    /// The interface's MTU (the SYN-ACK's MSS), kept for a reload's settings.
    mtu: Option<u32>,
    /// `[syn]` in force, and the SYN-ACK settings last written from it and the host's sysctls
    /// ([`Self::follow_host`]).
    cfg: SynConfig,
    settings: SynSettings,
    /// Whether this daemon takes over the host sysctls (a reload that turns a mode on takes
    /// them then).
    manage_host: bool,
}

impl SynControl {
    /// How often auto mode looks at the SYN rates (and the XDP_TX counters are read).
    pub const TICK: Duration = Duration::from_millis(200);
    /// How often the daemon calls [`Self::tick`]: the `tcp_syncookies` watch runs at every call
    /// (a 10 ms window in which a rewritten value refuses cookies, ≈ 1 % of the SYNs of a 1 s
    /// flood instead of 20 %: the kernel cannot tell us when a sysctl changes), the rest once
    /// per [`Self::TICK`].
    pub const WATCH: Duration = Duration::from_millis(10);

    /// Programs settings and per-VIP modes; takes over the host sysctls when any VIP can get
    /// cookies (`manage_host`; fixtures manage their namespace themselves).
    pub fn start(
        dp: &mut Dataplane,
        cfg: &SynConfig,
        vips: &[ResolvedVip],
        mtu: Option<u32>,
        manage_host: bool,
    ) -> anyhow::Result<SynControl> {
        let hold_ticks =
            ((cfg.auto_hold_seconds * 1000) / Self::TICK.as_millis() as u64).max(1) as u32;
        let mut c = SynControl {
            vips: Vec::new(),
            policy: AutoPolicy {
                on_per_sec: cfg.auto_on_syn_per_second,
                off_per_sec: cfg.auto_off_syn_per_second,
                hold_ticks,
            },
            limit: cfg.per_source_syn_per_second > 0,
            tick: Self::TICK,
            since_step: Duration::ZERO,
            host: None,
            cookies_on: false,
            reasserted: 0,
            refused: None,
            tx_watch: None,
            tx_lost: None,
            tx_errors: 0,
            mtu,
            cfg: cfg.clone(),
            settings: SynSettings::default(),
            manage_host,
        };
        for v in vips
            .iter()
            .filter(|v| v.protocol == crate::config::Protocol::Tcp)
        {
            c.vips.push(Controlled {
                id: v.id,
                name: v.name.clone(),
                address: v.address,
                port: v.port,
                mode: cfg.mode_for(&v.address, v.port),
                auto: AutoState::default(),
                last_syns: 0,
            });
        }
        if manage_host && c.vips.iter().any(|v| v.mode != SynMode::Off) {
            c.host = Some(HostSysctls::apply()?);
        }
        c.settings = host_settings(cfg, mtu);
        dp.set_syn_settings(c.settings)?;
        let ids: Vec<u32> = c.vips.iter().map(|v| v.id).collect();
        for (v, st) in c.vips.iter_mut().zip(dp.syn_state(&ids)?) {
            v.last_syns = st.get(SynCounter::SynSeen);
        }
        c.program(dp)?;
        Ok(c)
    }

    fn flags(&self, v: &Controlled) -> u32 {
        let mut f = 0;
        if v.mode != SynMode::Off {
            f |= SYN_VIP_COUNT;
        }
        if self.limit {
            f |= SYN_VIP_LIMIT;
        }
        let cookies = match v.mode {
            _ if self.refused.is_some() => false,
            SynMode::Off => false,
            SynMode::Auto => v.auto.active,
            SynMode::Always => true,
        };
        if cookies {
            f |= SYN_VIP_COOKIES;
        }
        f
    }

    /// Writes every VIP's flags, with the host sysctl switched first when cookies come on (and
    /// last when they go off), so the helper never runs without it.
    fn program(&mut self, dp: &mut Dataplane) -> anyhow::Result<()> {
        let any = self
            .vips
            .iter()
            .any(|v| self.flags(v) & SYN_VIP_COOKIES != 0);
        if any && !self.cookies_on {
            // What the host does with a cookie ACK may have changed since the last look.
            self.follow_host(dp)?;
            if let Some(h) = &self.host {
                h.cookies(true)?;
            }
        }
        for v in &self.vips {
            dp.set_syn_vip(
                v.id,
                SynVip {
                    flags: self.flags(v),
                    mode: v.mode as u32,
                },
            )?;
        }
        if !any
            && self.cookies_on
            && let Some(h) = &self.host
        {
            h.cookies(false)?;
        }
        self.cookies_on = any;
        Ok(())
    }

    /// Called every [`Self::WATCH`] (`elapsed` since the last call): the `tcp_syncookies` watch;
    /// once [`Self::TICK`] has accumulated, one auto-mode step over it (SYN rates → hysteresis
    /// → flags) and the XDP_TX watch.
    pub fn tick(&mut self, dp: &mut Dataplane, elapsed: Duration) -> anyhow::Result<()> {
        self.watch_host();
        self.since_step += elapsed;
        if self.cookies_on {
            self.follow_host(dp)?;
        }
        if self.since_step < self.tick {
            return Ok(());
        }
        if !self.cookies_on {
            self.follow_host(dp)?;
        }
        let elapsed = std::mem::take(&mut self.since_step);
        let ids: Vec<u32> = self.vips.iter().map(|v| v.id).collect();
        let states = dp.syn_state(&ids)?;
        let secs = elapsed.as_secs_f64().max(1e-3);
        let mut changed = false;
        for (v, st) in self.vips.iter_mut().zip(states) {
            let syns = st.get(SynCounter::SynSeen);
            let rate = (syns.saturating_sub(v.last_syns) as f64 / secs) as u64;
            v.last_syns = syns;
            if v.mode != SynMode::Auto {
                continue;
            }
            let was = v.auto.active;
            if v.auto.step(&self.policy, rate) != was {
                changed = true;
                info!(
                    vip = %v.name,
                    syn_per_second = rate,
                    "SYN cookies {}",
                    if v.auto.active { "on" } else { "off" }
                );
            }
        }
        if changed {
            self.program(dp)?;
        }
        self.watch_tx();
        Ok(())
    }

    /// Refuses cookies on this interface from now on (every VIP's SYNs go to the kernel), with
    /// `why` logged as an error.
    pub fn refuse_cookies(&mut self, dp: &mut Dataplane, why: String) -> anyhow::Result<()> {
        error!("{why}");
        self.refuse_cookies_quietly(dp, why)
    }

    /// [`Self::refuse_cookies`], the caller saying why (or not, when it lifts the refusal at
    /// once: [`Self::clear_refusal`]).
    pub fn refuse_cookies_quietly(
        &mut self,
        dp: &mut Dataplane,
        why: String,
    ) -> anyhow::Result<()> {
        self.refused = Some(why);
        self.program(dp)
    }

    /// Watches the interface's XDP_TX counters (see [`Self::tick`]).
    pub fn watch_xdp_tx(&mut self, watch: super::veth::TxWatch) {
        self.tx_watch = Some(watch);
    }

    /// While cookies are on: a tick's XDP_TX frames, kept when the driver dropped some (SYN-ACKs
    /// lost: [`Self::take_tx_lost`]); what to do about it is the tier's (`super::tier`), which
    /// can look at a veth's peer.
    fn watch_tx(&mut self) {
        let Some((sent, errors)) = self.tx_watch.as_mut().and_then(|w| w.sample()) else {
            return;
        };
        if !self.cookies_on || errors == 0 {
            return;
        }
        self.tx_errors += errors;
        let (s, e) = self.tx_lost.unwrap_or((0, 0));
        self.tx_lost = Some((s + sent, e + errors));
    }

    /// The XDP_TX frames (sent, dropped) of the ticks since the last call that dropped some.
    pub fn take_tx_lost(&mut self) -> Option<(u64, u64)> {
        self.tx_lost.take()
    }

    /// Allows cookies again on this interface (a refusal's cause went away: `why`).
    pub fn lift_refusal(&mut self, dp: &mut Dataplane, why: &str) -> anyhow::Result<()> {
        if self.clear_refusal(dp)? {
            info!("SYN cookies allowed again on this interface: {why}");
        }
        Ok(())
    }

    /// Allows cookies again, saying nothing; whether they were refused.
    pub fn clear_refusal(&mut self, dp: &mut Dataplane) -> anyhow::Result<bool> {
        if self.refused.take().is_none() {
            return Ok(false);
        }
        self.program(dp)?;
        Ok(true)
    }

    /// Why cookies are refused on this interface, if they are.
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// The daemon's state for `weir stats` (`key value` lines for its note, `xdp::pins::PinDir::note`).
    pub fn note(&self) -> String {
        let mut n = format!(
            "{REASSERTED} {}\n{TX_ERRORS} {}\n",
            self.reasserted, self.tx_errors
        );
        if let Some(why) = &self.refused {
            n.push_str(&format!("{COOKIES_REFUSED} {}\n", why.replace('\n', " ")));
        }
        n
    }

    /// While cookies are on, re-asserts `tcp_syncookies = 2` and `tcp_timestamps = 2` (a
    /// warning each time).
    fn watch_host(&mut self) {
        let Some(h) = self.host.as_ref().filter(|_| self.cookies_on) else {
            return;
        };
        match h.reassert() {
            Ok(put_back) => {
                for (name, found) in put_back {
                    self.reasserted += 1;
                    warn!(
                        found = %found,
                        reasserted = self.reasserted,
                        "{name} was rewritten while SYN cookies are on: re-asserted 2"
                    );
                }
            }
            Err(e) => warn!("SYN cookie sysctls: cannot re-assert 2: {e:#}"),
        }
    }

    /// The SYN-ACK settings from the host's sysctls as they are now (`tcp_sack`,
    /// `tcp_window_scaling`, `tcp_ecn`, `tcp_rmem`, …) and the MTU, written when they changed:
    /// the kernel decodes a cookie ACK with its sysctls of the moment and drops one whose
    /// options it would not have offered (`tcp_sack = 0`, the 2019 "SACK panic" mitigation run
    /// on live hosts, failed every cookie ACK of a SACK client: every client). Looked at every
    /// [`Self::WATCH`] while cookies are on, every [`Self::TICK`] otherwise, and when they come on.
    fn follow_host(&mut self, dp: &mut Dataplane) -> anyhow::Result<()> {
        let now = host_settings(&self.cfg, self.mtu);
        if now == self.settings {
            // `weir_sysctl` withdraws an option at a write in any namespace: put back what
            // this one allows.
            if dp.syn_settings()? != now {
                tracing::debug!(now = %describe(&now), "SYN-ACK options withdrawn for a write elsewhere: put back");
                dp.set_syn_settings(now)?;
            }
            return Ok(());
        }
        warn!(
            was = %describe(&self.settings),
            now = %describe(&now),
            "the host's TCP settings changed: the SYN-ACKs XDP answers with follow them"
        );
        dp.set_syn_settings(now)?;
        self.settings = now;
        Ok(())
    }

    /// The interface's MTU changed (`super::tier`): the SYN-ACK's MSS follows it.
    pub fn set_mtu(&mut self, dp: &mut Dataplane, mtu: Option<u32>) -> anyhow::Result<()> {
        self.mtu = mtu;
        self.follow_host(dp)
    }

    /// How many times `tcp_syncookies` or `tcp_timestamps` was found rewritten and put back.
    pub fn reasserted(&self) -> u64 {
        self.reasserted
    }

    pub fn tick_interval(&self) -> Duration {
        self.tick
    }

    /// Whether the daemon must tick: a VIP in auto mode, or host sysctls to watch.
    pub fn needs_ticks(&self) -> bool {
        self.host.is_some() || self.vips.iter().any(|v| v.mode == SynMode::Auto)
    }

    /// Changes one VIP's mode at run time.
    pub fn set_mode(&mut self, dp: &mut Dataplane, id: u32, mode: SynMode) -> anyhow::Result<()> {
        if let Some(v) = self.vips.iter_mut().find(|v| v.id == id)
            && v.mode != mode
        {
            v.mode = mode;
            v.auto = AutoState::default();
        }
        self.program(dp)
    }

    /// A reload's VIPs (ids made stable by `vips::renumber`, counters of new ids zeroed): a kept
    /// VIP keeps its state (mode, auto-mode hysteresis, last SYN count), a new one starts in its
    /// configured mode with its flags written before its map entries go in (the caller's
    /// `Dataplane::set_vips`), and a removed one leaves the list (its flags are cleared by
    /// [`Self::forget`] once its entries are gone).
    pub fn set_vips(
        &mut self,
        dp: &mut Dataplane,
        cfg: &SynConfig,
        vips: &[ResolvedVip],
    ) -> anyhow::Result<()> {
        let mut old = std::mem::take(&mut self.vips);
        for v in vips
            .iter()
            .filter(|v| v.protocol == crate::config::Protocol::Tcp)
        {
            match old
                .iter()
                .position(|o| o.id == v.id && o.address == v.address && o.port == v.port)
            {
                Some(i) => {
                    let mut o = old.swap_remove(i);
                    o.name = v.name.clone();
                    self.vips.push(o);
                }
                None => self.vips.push(Controlled {
                    id: v.id,
                    name: v.name.clone(),
                    address: v.address,
                    port: v.port,
                    mode: cfg.mode_for(&v.address, v.port),
                    auto: AutoState::default(),
                    last_syns: 0,
                }),
            }
        }
        self.reload(dp, cfg)
    }

    /// Clears the SYN state of VIP ids a reload removed (after their map entries are gone).
    pub fn forget(&mut self, dp: &mut Dataplane, ids: &[u32]) -> anyhow::Result<()> {
        for id in ids {
            dp.set_syn_vip(*id, SynVip::default())?;
        }
        Ok(())
    }

    /// Applies a reloaded `[syn]` (SIGHUP): modes, thresholds, hold time, the per-source limit
    /// and the SYN-ACK settings. A reload that gives a VIP a mode other than off when none had
    /// one takes over the host sysctls then (as a start would).
    pub fn reload(&mut self, dp: &mut Dataplane, cfg: &SynConfig) -> anyhow::Result<()> {
        self.policy.on_per_sec = cfg.auto_on_syn_per_second;
        self.policy.off_per_sec = cfg.auto_off_syn_per_second;
        self.policy.hold_ticks =
            ((cfg.auto_hold_seconds * 1000) / Self::TICK.as_millis() as u64).max(1) as u32;
        self.limit = cfg.per_source_syn_per_second > 0;
        self.cfg = cfg.clone();
        let wants_host = self
            .vips
            .iter()
            .any(|v| cfg.mode_for(&v.address, v.port) != SynMode::Off);
        if self.manage_host && self.host.is_none() && wants_host {
            self.host = Some(HostSysctls::apply()?);
        }
        self.settings = host_settings(cfg, self.mtu);
        dp.set_syn_settings(self.settings)?;
        let modes: Vec<(u32, SynMode)> = self
            .vips
            .iter()
            .map(|v| (v.id, cfg.mode_for(&v.address, v.port)))
            .collect();
        for (id, mode) in modes {
            self.set_mode(dp, id, mode)?;
        }
        self.program(dp)
    }
}
