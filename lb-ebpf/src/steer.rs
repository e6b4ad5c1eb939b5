//! `weir_steer`: the SK_REUSEPORT program that hands each new connection to the worker the
//! Maglev table names (contract and reasoning: `lb_common::steer`).
//!
//! ```text
//! ports (TCP header, direct access) + addresses (IP header, load_bytes_relative)
//!   → flow_hash → table_slot → STEER_TABLE[active half] → STEER_SOCKETS[listener * 64 + worker]
//! ```
//!
//! Any miss (no live worker, an unknown port, a short header) returns SK_PASS without selecting:
//! the kernel's own reuseport hash then picks a socket, so a connection is never refused here —
//! except while weir shuts down (`SteerConfig::REFUSE`) or for a listener a reload removed
//! (`LISTENER_REFUSE`): then SK_DROP, and the kernel answers the SYN with a RST (ECONNREFUSED)
//! instead of queueing a connection no worker will accept.
#![no_std]
#![no_main]

use aya_ebpf::{
    EbpfContext,
    bindings::{bpf_hdr_start_off::BPF_HDR_START_NET, sk_action, xdp_action},
    helpers::bpf_skb_load_bytes_relative,
    macros::{map, sk_reuseport, xdp},
    maps::{Array, PerCpuArray, ReusePortSockArray},
    programs::{SkReuseportContext, XdpContext},
};
use lb_common::{
    Addr,
    hash::{flow_hash, table_slot},
    proto,
    steer::{LISTENER_REFUSE, MAX_LISTENERS, MAX_WORKERS, STEER_TABLE_MAX, SteerConfig, SteerStat},
};

#[map]
static STEER_CONFIG: Array<SteerConfig> = Array::with_max_entries(1, 0);

#[map]
static STEER_TABLE: Array<u32> = Array::with_max_entries(2 * STEER_TABLE_MAX, 0);

#[map]
static STEER_LISTENERS: Array<u32> = Array::with_max_entries(1 << 16, 0);

#[map]
static STEER_SOCKETS: ReusePortSockArray =
    ReusePortSockArray::with_max_entries(MAX_LISTENERS * MAX_WORKERS, 0);

#[map]
static STEER_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(SteerStat::COUNT, 0);

const ETH_P_IP: u32 = 0x0800;
const ETH_P_IPV6: u32 = 0x86dd;

#[sk_reuseport]
pub fn weir_steer(ctx: SkReuseportContext) -> u32 {
    let stat = steer(&ctx);
    if let Some(c) = STEER_STATS.get_ptr_mut(stat as u32) {
        unsafe { *c += 1 };
    }
    match stat {
        SteerStat::Refused => sk_action::SK_DROP,
        _ => sk_action::SK_PASS,
    }
}

#[inline(always)]
fn steer(ctx: &SkReuseportContext) -> SteerStat {
    if ctx.ip_protocol() != proto::TCP as u32 {
        return SteerStat::Fallback;
    }
    let Some(cfg) = STEER_CONFIG.get(0) else {
        return SteerStat::Error;
    };
    if cfg.table == SteerConfig::REFUSE {
        return SteerStat::Refused;
    }
    let (size, half) = SteerConfig::unpack(cfg.table);
    if size == 0 || size > STEER_TABLE_MAX {
        return SteerStat::Fallback;
    }
    // The TCP header: `data` starts at it for a TCP listener lookup.
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + 4 > end {
        return SteerStat::Error;
    }
    let sport_be = unsafe { *(start as *const u16) };
    let dport_be = unsafe { *((start + 2) as *const u16) };
    let base = match STEER_LISTENERS.get(u16::from_be(dport_be) as u32) {
        Some(&LISTENER_REFUSE) => return SteerStat::Refused,
        Some(&b) if b > 0 => b - 1,
        _ => return SteerStat::Fallback,
    };
    let Some((src, dst)) = addresses(ctx) else {
        return SteerStat::Error;
    };
    let hash = flow_hash(&src, &dst, sport_be, dport_be, proto::TCP, cfg.seed);
    let Some(worker) = table_owner(hash, size, half) else {
        return SteerStat::Error;
    };
    match STEER_SOCKETS.select_reuseport(ctx, base * MAX_WORKERS + worker) {
        Ok(()) => SteerStat::Steered,
        Err(_) => SteerStat::Error,
    }
}

/// The worker in the active table's slot for `hash`.
#[inline(always)]
fn table_owner(hash: u32, size: u32, half: u32) -> Option<u32> {
    let worker = *STEER_TABLE.get(half * STEER_TABLE_MAX + table_slot(hash, size))?;
    (worker < MAX_WORKERS).then_some(worker)
}

/// Test probe (run only through `BPF_PROG_TEST_RUN`): after a 14-byte header the frame holds
/// `src[16] dst[16] sport_be[2] dport_be[2] proto[1] pad[3] seed[4]`; the program writes
/// `hash(seed) hash(config seed) worker` (u32 each, `u32::MAX` = none) over the 12 bytes after
/// it. The same `flow_hash` and `table_owner` as `weir_steer`, so user space can hold the kernel
/// build of them to its own.
#[xdp]
pub fn steer_probe(ctx: XdpContext) -> u32 {
    const REC: usize = 14;
    const OUT: usize = REC + 44;
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + OUT + 12 > end {
        return xdp_action::XDP_ABORTED;
    }
    let rec = unsafe { &*((start + REC) as *const [u8; 44]) };
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&rec[..16]);
    dst.copy_from_slice(&rec[16..32]);
    let (src, dst) = (Addr::from_v6(src), Addr::from_v6(dst));
    let sport_be = u16::from_ne_bytes([rec[32], rec[33]]);
    let dport_be = u16::from_ne_bytes([rec[34], rec[35]]);
    let proto = rec[36];
    let seed = u32::from_ne_bytes([rec[40], rec[41], rec[42], rec[43]]);
    let hash = flow_hash(&src, &dst, sport_be, dport_be, proto, seed);
    let (cfg_hash, worker) = match STEER_CONFIG.get(0) {
        Some(cfg) => {
            let h = flow_hash(&src, &dst, sport_be, dport_be, proto, cfg.seed);
            let (size, half) = SteerConfig::unpack(cfg.table);
            let w = if size == 0 || size > STEER_TABLE_MAX {
                None
            } else {
                table_owner(h, size, half)
            };
            (h, w.unwrap_or(u32::MAX))
        }
        None => (u32::MAX, u32::MAX),
    };
    let out = unsafe { &mut *((start + OUT) as *mut [u8; 12]) };
    out[..4].copy_from_slice(&hash.to_ne_bytes());
    out[4..8].copy_from_slice(&cfg_hash.to_ne_bytes());
    out[8..].copy_from_slice(&worker.to_ne_bytes());
    xdp_action::XDP_PASS
}

/// Source and destination addresses from the IP header (before `data`).
#[inline(always)]
fn addresses(ctx: &SkReuseportContext) -> Option<(Addr, Addr)> {
    match u16::from_be(ctx.eth_protocol() as u16) as u32 {
        ETH_P_IP => {
            let mut a = [0u8; 8];
            load(ctx, 12, &mut a)?;
            Some((
                Addr::from_v4([a[0], a[1], a[2], a[3]]),
                Addr::from_v4([a[4], a[5], a[6], a[7]]),
            ))
        }
        ETH_P_IPV6 => {
            let mut a = [0u8; 32];
            load(ctx, 8, &mut a)?;
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&a[..16]);
            dst.copy_from_slice(&a[16..]);
            Some((Addr::from_v6(src), Addr::from_v6(dst)))
        }
        _ => None,
    }
}

#[inline(always)]
fn load<const N: usize>(ctx: &SkReuseportContext, off: u32, buf: &mut [u8; N]) -> Option<()> {
    let rc = unsafe {
        bpf_skb_load_bytes_relative(
            ctx.as_ptr(),
            off,
            buf.as_mut_ptr() as *mut _,
            N as u32,
            BPF_HDR_START_NET,
        )
    };
    (rc == 0).then_some(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
