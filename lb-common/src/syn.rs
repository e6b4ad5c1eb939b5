//! SYN-flood defence: the map types the XDP SYN path shares with user space, and the pure logic
//! both sides rely on (token-bucket math, the auto-mode hysteresis), unit-tested here.
//!
//! The design (see ARCHITECTURE.md, "SYN floods"): while cookies are on for a VIP, XDP answers its
//! SYNs with a SYN-ACK carrying the kernel's own SYN cookie (`bpf_tcp_gen_syncookie` on the
//! listening socket), and checks the final ACK (`bpf_tcp_check_syncookie`) before the kernel's
//! cookie path turns it into an established socket in the listener's accept queue.

use crate::Addr;

/// Map names (checked against the object at load, like `maps::ALL`).
pub mod names {
    /// Array `VipInfo::id -> SynVip`: the SYN state of each VIP.
    pub const VIP_SYN: &str = "VIP_SYN";
    /// Per-CPU array `VipInfo::id * SYN_COUNTERS + SynCounter -> u64`.
    pub const VIP_SYN_STATS: &str = "VIP_SYN_STATS";
    /// Array of one `SynSettings`.
    pub const SYN_SETTINGS: &str = "SYN_SETTINGS";
    /// LRU hash `SrcKey -> SynBucket`: per-source SYN token buckets.
    pub const SYN_RATE: &str = "SYN_RATE";
    /// Per-CPU array of one `InsertBudget`: new `SYN_RATE` entries this second on this CPU.
    pub const SYN_BUDGET: &str = "SYN_BUDGET";

    pub const ALL: [&str; 5] = [VIP_SYN, VIP_SYN_STATS, SYN_SETTINGS, SYN_RATE, SYN_BUDGET];
}

/// Sources tracked by the per-source rate limiter.
pub const SYN_RATE_ENTRIES: u32 = 65_536;

/// A VIP's protection mode (config `[syn] mode`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SynMode {
    /// SYNs always go to the kernel.
    Off = 0,
    /// Cookies from XDP while the VIP's SYN rate is above a threshold (with hysteresis).
    Auto = 1,
    /// Cookies from XDP for every SYN.
    Always = 2,
}

impl SynMode {
    pub const fn name(self) -> &'static str {
        match self {
            SynMode::Off => "off",
            SynMode::Auto => "auto",
            SynMode::Always => "always",
        }
    }

    pub const fn from_u32(v: u32) -> SynMode {
        match v {
            1 => SynMode::Auto,
            2 => SynMode::Always,
            _ => SynMode::Off,
        }
    }
}

/// `SynVip::flags`: count this VIP's SYNs (auto and always modes).
pub const SYN_VIP_COUNT: u32 = 1 << 0;
/// `SynVip::flags`: apply the per-source SYN rate limit.
pub const SYN_VIP_LIMIT: u32 = 1 << 1;
/// `SynVip::flags`: XDP answers SYNs with cookies and checks the ACKs now.
pub const SYN_VIP_COOKIES: u32 = 1 << 2;

/// Value of `VIP_SYN`. All zero (no flags) is "off": the packet path then costs one array read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynVip {
    /// `SYN_VIP_*` bits; the data path reads only these.
    pub flags: u32,
    /// `SynMode as u32`, for `weir stats`.
    pub mode: u32,
}

impl SynVip {
    pub const fn cookies(&self) -> bool {
        self.flags & SYN_VIP_COOKIES != 0
    }
}

/// Per-VIP SYN counters (index within a VIP's `SYN_COUNTERS` slots of `VIP_SYN_STATS`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynCounter {
    /// Pure SYNs seen (modes auto and always, or with a rate limit).
    SynSeen = 0,
    /// SYN-ACKs with a cookie sent from XDP.
    CookieSent = 1,
    /// ACKs whose cookie checked out (passed to the kernel, which creates the socket).
    CookieAckValid = 2,
    /// ACKs to a listener whose cookie did not check out: dropped.
    CookieAckInvalid = 3,
    /// SYNs over their source's rate: dropped.
    RateLimited = 4,
    /// Other segments (RST, FIN, ACK, …) with no connection behind them: dropped.
    Stray = 5,
    /// SYNs whose source could not be tracked (flood guard: no LRU insert), let through.
    Untracked = 6,
}

impl SynCounter {
    pub const ALL: [SynCounter; 7] = [
        SynCounter::SynSeen,
        SynCounter::CookieSent,
        SynCounter::CookieAckValid,
        SynCounter::CookieAckInvalid,
        SynCounter::RateLimited,
        SynCounter::Stray,
        SynCounter::Untracked,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            SynCounter::SynSeen => "syn_seen",
            SynCounter::CookieSent => "cookies_sent",
            SynCounter::CookieAckValid => "cookie_acks_valid",
            SynCounter::CookieAckInvalid => "cookie_acks_invalid",
            SynCounter::RateLimited => "rate_limited",
            SynCounter::Stray => "stray",
            SynCounter::Untracked => "untracked_sources",
        }
    }
}

/// Slots per VIP in `VIP_SYN_STATS`.
pub const SYN_COUNTERS: u32 = 8;

/// `SynSettings::flags`: the host accepts SACK in cookies (`net.ipv4.tcp_sack`).
pub const SYN_F_SACK: u32 = 1 << 0;
/// The host accepts window scaling in cookies (`net.ipv4.tcp_window_scaling`).
pub const SYN_F_WSCALE: u32 = 1 << 1;
/// The host accepts ECN in cookies (`net.ipv4.tcp_ecn` != 0).
pub const SYN_F_ECN: u32 = 1 << 2;
/// The host decodes options from cookie timestamps (`net.ipv4.tcp_timestamps` = 2, no offset).
pub const SYN_F_TIMESTAMPS: u32 = 1 << 3;

/// Global SYN settings, `SYN_SETTINGS[0]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynSettings {
    /// `SYN_F_*` bits.
    pub flags: u32,
    /// MSS the SYN-ACK announces (IPv4, IPv6).
    pub mss_v4: u16,
    pub mss_v6: u16,
    /// Window scale the SYN-ACK announces: what the kernel will pick for the socket.
    pub wscale: u32,
    /// Unscaled window of the SYN-ACK.
    pub window: u32,
    /// Per-source limit: nanoseconds of credit one SYN costs (0 = no limit).
    pub ns_per_syn: u64,
    /// Bucket depth in nanoseconds of credit (burst × `ns_per_syn`).
    pub bucket_ns: u64,
    /// New sources the limiter may start tracking per second per CPU; above it the flood guard
    /// stops inserting (Katran's lesson), so a spoofed flood cannot evict real clients.
    pub new_sources_per_sec: u64,
}

/// Key of `SYN_RATE`: the source address, IPv6 cut to its /64.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SrcKey {
    pub addr: Addr,
}

impl SrcKey {
    /// From the four address words as in the packet: IPv4-mapped words are kept, IPv6 keeps
    /// its first 64 bits.
    #[inline(always)]
    pub fn from_words(w: [u32; 4], v6: bool) -> Self {
        let w = if v6 { [w[0], w[1], 0, 0] } else { w };
        SrcKey {
            addr: Addr::from_words(w),
        }
    }
}

/// Value of `SYN_RATE`: a token bucket kept as nanoseconds of credit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynBucket {
    pub credit_ns: u64,
    pub last_ns: u64,
}

impl SynBucket {
    /// A new source's bucket, its first SYN already taken.
    #[inline(always)]
    pub const fn first(now_ns: u64, ns_per_syn: u64, bucket_ns: u64) -> Self {
        SynBucket {
            credit_ns: bucket_ns.saturating_sub(ns_per_syn),
            last_ns: now_ns,
        }
    }

    /// Refills by the time elapsed (capped at `bucket_ns`) and takes one SYN if there is credit.
    #[inline(always)]
    pub fn take(&mut self, now_ns: u64, ns_per_syn: u64, bucket_ns: u64) -> bool {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        let mut credit = self.credit_ns.saturating_add(elapsed);
        if credit > bucket_ns {
            credit = bucket_ns;
        }
        self.last_ns = now_ns;
        if credit >= ns_per_syn {
            self.credit_ns = credit - ns_per_syn;
            true
        } else {
            self.credit_ns = credit;
            false
        }
    }
}

/// `SYN_BUDGET[0]`, per CPU: how many sources this CPU started tracking in the current second.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsertBudget {
    pub window_start_ns: u64,
    pub inserted: u64,
}

impl InsertBudget {
    /// Whether one more source may be inserted now (and counts it if so).
    #[inline(always)]
    pub fn admit(&mut self, now_ns: u64, per_sec: u64) -> bool {
        if now_ns.saturating_sub(self.window_start_ns) >= 1_000_000_000 {
            self.window_start_ns = now_ns;
            self.inserted = 0;
        }
        if self.inserted >= per_sec {
            return false;
        }
        self.inserted += 1;
        true
    }
}

/// TCP-timestamp encoding of the options a cookie cannot carry, as the kernel's
/// `cookie_init_timestamp` writes and `cookie_timestamp_decode` reads them: the low 6 bits of
/// the SYN-ACK's TSval (echoed by the client as TSecr).
pub mod ts {
    pub const BITS: u32 = 6;
    pub const WSCALE_MASK: u32 = 0xf;
    pub const SACK: u32 = 1 << 4;
    pub const ECN: u32 = 1 << 5;

    /// The option bits: the client's window scale (or the mask for "none"), SACK, ECN.
    #[inline(always)]
    pub const fn options(wscale: Option<u8>, sack: bool, ecn: bool) -> u32 {
        let mut o = match wscale {
            Some(w) if w <= 14 => w as u32,
            Some(_) => 14,
            None => WSCALE_MASK,
        };
        if sack {
            o |= SACK;
        }
        if ecn {
            o |= ECN;
        }
        o
    }

    /// The TSval for a SYN-ACK sent at `now_ms` (milliseconds of the monotonic clock, the TCP
    /// clock): `now_ms` with its low bits replaced by `options`, never ahead of `now_ms`, so the
    /// kernel's later TSvals on the connection never go backwards (the client's PAWS).
    #[inline(always)]
    pub const fn tsval(now_ms: u32, options: u32) -> u32 {
        let ts = ((now_ms >> BITS) << BITS) | options;
        if ts > now_ms {
            ts.wrapping_sub(1 << BITS)
        } else {
            ts
        }
    }
}

/// The auto mode's hysteresis: cookies turn on when the VIP's SYN rate reaches `on_per_sec`, and
/// off once it has stayed below `off_per_sec` for `hold_ticks` consecutive ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoPolicy {
    pub on_per_sec: u64,
    pub off_per_sec: u64,
    pub hold_ticks: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AutoState {
    pub active: bool,
    calm_ticks: u32,
}

impl AutoState {
    /// One tick with the SYN rate measured over it; returns whether cookies are on afterwards.
    pub fn step(&mut self, policy: &AutoPolicy, syn_per_sec: u64) -> bool {
        if !self.active {
            if syn_per_sec >= policy.on_per_sec {
                self.active = true;
                self.calm_ticks = 0;
            }
        } else if syn_per_sec < policy.off_per_sec {
            self.calm_ticks += 1;
            if self.calm_ticks >= policy.hold_ticks {
                self.active = false;
                self.calm_ticks = 0;
            }
        } else {
            self.calm_ticks = 0;
        }
        self.active
    }
}

const _: () = assert!(core::mem::size_of::<SrcKey>() == 16);
const _: () = assert!(core::mem::size_of::<SynSettings>() == 40);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let per = 10_000_000; // 100 SYN/s
        let depth = 5 * per; // burst 5
        let mut b = SynBucket::first(0, per, depth);
        let allowed = (0..10).filter(|_| b.take(0, per, depth)).count();
        assert_eq!(allowed, 4, "burst of 5, the first already taken");
        assert!(!b.take(per - 1, per, depth), "not refilled yet");
        assert!(b.take(per, per, depth), "one SYN's worth after 10 ms");
        // A long idle refills to the depth, never beyond.
        let t = 1_000_000_000_000;
        let n = (0..100).filter(|_| b.take(t, per, depth)).count();
        assert_eq!(n, 5);
    }

    #[test]
    fn bucket_tolerates_clock_going_backwards() {
        let mut b = SynBucket::first(100, 10, 100);
        assert!(b.take(50, 10, 100));
        assert_eq!(b.last_ns, 50);
    }

    #[test]
    fn insert_budget_resets_each_second() {
        let mut g = InsertBudget::default();
        let n = (0..10).filter(|_| g.admit(5, 3)).count();
        assert_eq!(n, 3);
        assert!(!g.admit(999_999_999, 3), "same window");
        assert!(g.admit(1_000_000_005, 3), "next window");
    }

    #[test]
    fn auto_mode_hysteresis() {
        let p = AutoPolicy {
            on_per_sec: 1000,
            off_per_sec: 200,
            hold_ticks: 3,
        };
        let mut s = AutoState::default();
        assert!(!s.step(&p, 999));
        assert!(s.step(&p, 1000), "on at the threshold");
        assert!(s.step(&p, 500), "between the thresholds: stays on");
        assert!(s.step(&p, 100));
        assert!(s.step(&p, 100));
        assert!(s.step(&p, 300), "a busy tick resets the calm count");
        assert!(s.step(&p, 100));
        assert!(s.step(&p, 100));
        assert!(!s.step(&p, 100), "off after 3 calm ticks");
        assert!(!s.step(&p, 999));
    }

    #[test]
    fn timestamp_encoding_matches_the_kernel() {
        // cookie_init_timestamp: wscale 7, SACK, no ECN.
        let o = ts::options(Some(7), true, false);
        assert_eq!(o, 7 | ts::SACK);
        let v = ts::tsval(1_000_000, o);
        assert_eq!(v & 0x3f, o);
        assert!(v <= 1_000_000 && 1_000_000 - v < 64);
        assert_eq!(ts::options(None, false, true), 0xf | ts::ECN);
        assert_eq!(ts::options(Some(15), false, false), 14);
        // Low bits of now below the options: the previous 64 ms block.
        assert_eq!(ts::tsval(64 * 10 + 1, 5), 64 * 9 + 5);
    }

    #[test]
    fn ipv6_sources_share_their_64() {
        let a = SrcKey::from_words([1, 2, 3, 4], true);
        let b = SrcKey::from_words([1, 2, 9, 9], true);
        assert_eq!(a, b);
        let c = SrcKey::from_words([0, 0, 0xffff_0000, 7], false);
        assert_eq!(c.addr, Addr::from_words([0, 0, 0xffff_0000, 7]));
    }
}
