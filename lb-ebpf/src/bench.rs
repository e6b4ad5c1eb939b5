//! Programs for benchmarks only: the baselines weir is measured against, and the traffic
//! generator that `BPF_PROG_RUN` with live frames drives (`cargo xtask bench pps`).
#![no_std]
#![no_main]

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_F_CURRENT_NETNS, bpf_sock, bpf_sock_tuple, iphdr, tcphdr, xdp_action},
    helpers::{
        bpf_get_prandom_u32, bpf_sk_release, bpf_skc_lookup_tcp, bpf_tcp_gen_syncookie,
        bpf_tcp_raw_gen_syncookie_ipv4, bpf_xdp_adjust_tail,
    },
    macros::xdp,
    programs::XdpContext,
};

/// The cheapest possible program: the floor for "a packet not for a VIP".
#[xdp]
pub fn bare_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The floor for dropping a flood.
#[xdp]
pub fn bare_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// A drop that first reads the headers a real program must read (Ethernet type, IP version and
/// destination, TCP destination port): separates the cost of touching packet memory from the
/// cost of weir's decisions in `cargo xtask bench pps`.
#[xdp]
pub fn touch_drop(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + 38 > end {
        return xdp_action::XDP_DROP;
    }
    // SAFETY: bounds checked above; volatile so the reads are not optimised away.
    let sum = unsafe {
        core::ptr::read_volatile((start + 12) as *const u16) as u32
            ^ core::ptr::read_volatile((start + 14) as *const u8) as u32
            ^ core::ptr::read_volatile((start + 30) as *const u32)
            ^ core::ptr::read_volatile((start + 36) as *const u16) as u32
    };
    if sum == 0x1234_5678 {
        xdp_action::XDP_PASS
    } else {
        xdp_action::XDP_DROP
    }
}

/// The generator: run with `BPF_F_TEST_XDP_LIVE_FRAMES`, every frame it is given is transmitted
/// out of the interface named in the context.
#[xdp]
pub fn gen_tx(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

/// Length of the flood generator's frame: Ethernet, IPv4 (no options), TCP (no options).
const GEN_FRAME: usize = 14 + 20 + 20;

/// The Linux-layout SYN the generator sends (74 bytes: MSS, SACK-permitted, timestamp, NOP,
/// window scale, as a Linux client's connect() writes them), set by user space at load
/// (`EbpfLoader::set_global`): live-frames pages are recycled with whatever the receiver left in
/// them (weir turns them into SYN-ACKs in place), so every run starts by rewriting the whole
/// frame from here. A global, not a map: this object is also loaded by iproute2 (libbpf), which
/// refuses aya's legacy map sections.
#[unsafe(no_mangle)]
static GEN_TEMPLATE_LINUX: [u32; 19] = [0; 19];

/// Length of the Linux-layout generator's frame: 20 bytes of TCP options more.
const GEN_FRAME_LINUX: usize = GEN_FRAME + 20;

/// The SYN-flood generator (`cargo xtask bench synflood`): run with
/// `BPF_F_TEST_XDP_LIVE_FRAMES`, each repetition writes the template SYN with a random source in
/// 198.18.0.0/15 (RFC 2544's benchmarking range, never on-link in a lab) and a random source
/// port, both checksums fixed incrementally, and transmits it out of the interface named in the
/// context. (The tests flood from a packet socket, `weir_tests::lab::SynFlood`: a locked-down
/// kernel refuses live frames.)
#[xdp]
pub fn gen_syn_flood_linux(ctx: XdpContext) -> u32 {
    gen_syn::<GEN_FRAME_LINUX>(&ctx, &GEN_TEMPLATE_LINUX)
}

/// Writes the `FRAME`-byte SYN of `template` (a whole number of 16-bit halves), with a random
/// source and port, and transmits it.
#[inline(always)]
fn gen_syn<const FRAME: usize>(ctx: &XdpContext, template: &[u32]) -> u32 {
    let have = ctx.data_end() - ctx.data();
    if have != FRAME && unsafe { bpf_xdp_adjust_tail(ctx.ctx, FRAME as i32 - have as i32) } != 0 {
        return xdp_action::XDP_ABORTED;
    }
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + FRAME > end {
        return xdp_action::XDP_ABORTED;
    }
    // Volatile: the value is patched in at load time, not the zeros compiled here.
    let word = |i: usize| unsafe { core::ptr::read_volatile(&template[i]) };
    for i in 0..FRAME / 4 {
        unsafe { *((start + 4 * i) as *mut u32) = word(i) };
    }
    if FRAME % 4 == 2 {
        unsafe { *((start + FRAME - 2) as *mut u16) = word(FRAME / 4) as u16 };
    }
    let (ip, th) = (start + 14, start + 14 + 20);
    let r = unsafe { bpf_get_prandom_u32() };
    let src = (0xc612_0000u32 | (r & 0x1_ffff)).to_be();
    let sport = (((r >> 17) as u16) | 1024).to_be();
    unsafe {
        let old_src = *((ip + 12) as *const u32);
        let old_sport = *(th as *const u16);
        *((ip + 12) as *mut u32) = src;
        *(th as *mut u16) = sport;
        let ip_csum = (ip + 10) as *mut u16;
        *ip_csum = csum_replace(*ip_csum, old_src, src);
        let tcp_csum = (th + 16) as *mut u16;
        let c = csum_replace(*tcp_csum, old_src, src);
        *tcp_csum = csum_replace(c, old_sport as u32, sport as u32);
    }
    xdp_action::XDP_TX
}

/// The flood's far side: drops what is addressed to the generator's spoofed range
/// (198.18.0.0/15: SYN-ACKs to nobody, as on the Internet they would leave and vanish) and passes
/// the rest, so the client namespace spends nothing on the replies to the flood. Also gives the
/// client's veth the XDP program that receiving XDP_TX frames on veth needs.
#[xdp]
pub fn sink_spoofed(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + 14 + 20 > end {
        return xdp_action::XDP_PASS;
    }
    let (ethertype, dst) = unsafe {
        (
            *((start + 12) as *const u16),
            *((start + 14 + 16) as *const u32),
        )
    };
    if ethertype == 0x0800u16.to_be() && u32::from_be(dst) & 0xfffe_0000 == 0xc612_0000 {
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_PASS
}

/// The one IPv4 address (network order) [`sink_not_to`] lets through, set at load.
#[unsafe(no_mangle)]
static SINK_KEEP: u32 = 0;

/// The far side of a flood from random sources (hping3 `--rand-source`): drops every IPv4 frame
/// not addressed to `SINK_KEEP` (the legitimate client), as the Internet would lose the SYN-ACKs
/// to spoofed sources, and passes the rest (ARP, the client's own traffic).
#[xdp]
pub fn sink_not_to(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + 14 + 20 > end {
        return xdp_action::XDP_PASS;
    }
    let (ethertype, dst) = unsafe {
        (
            *((start + 12) as *const u16),
            *((start + 14 + 16) as *const u32),
        )
    };
    let keep = unsafe { core::ptr::read_volatile(&SINK_KEEP) };
    if ethertype == 0x0800u16.to_be() && dst != keep {
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_PASS
}

/// RFC 1624 incremental update of a checksum for a 32-bit word changing from `old` to `new`
/// (all values as they lie in memory).
#[inline(always)]
fn csum_replace(csum: u16, old: u32, new: u32) -> u16 {
    let mut sum = (!csum) as u64
        + ((!old) & 0xffff) as u64
        + ((!old) >> 16) as u64
        + (new & 0xffff) as u64
        + (new >> 16) as u64;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

// ---- The cookie designs' XDP cost, measured apart (`cargo xtask bench synflood`) ----
// On an Ethernet/IPv4/TCP SYN without options (fixed offsets); all return XDP_PASS and leave
// the packet alone, so TestRun may repeat them.

const TH: usize = 14 + 20;

/// The socket lookup design A needs first (listener-bound cookies).
#[xdp]
pub fn cookie_lookup_v4(ctx: XdpContext) -> u32 {
    if let Some(sk) = listener_v4(&ctx) {
        unsafe { bpf_sk_release(sk as *mut c_void) };
    }
    xdp_action::XDP_PASS
}

/// Design A's cookie: lookup + `bpf_tcp_gen_syncookie` on the listener.
#[xdp]
pub fn cookie_a_v4(ctx: XdpContext) -> u32 {
    let Some(sk) = listener_v4(&ctx) else {
        return xdp_action::XDP_ABORTED;
    };
    let (start, end) = (ctx.data(), ctx.data_end());
    let r = if start + TH + 20 <= end {
        unsafe {
            bpf_tcp_gen_syncookie(
                sk as *mut c_void,
                (start + 14) as *mut c_void,
                20,
                (start + TH) as *mut tcphdr,
                20,
            )
        }
    } else {
        -1
    };
    unsafe { bpf_sk_release(sk as *mut c_void) };
    if r < 0 {
        xdp_action::XDP_ABORTED
    } else {
        xdp_action::XDP_PASS
    }
}

/// Design B's cookie: `bpf_tcp_raw_gen_syncookie_ipv4`, no socket.
#[xdp]
pub fn cookie_b_v4(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + TH + 20 > end {
        return xdp_action::XDP_ABORTED;
    }
    let r = unsafe {
        bpf_tcp_raw_gen_syncookie_ipv4((start + 14) as *mut iphdr, (start + TH) as *mut tcphdr, 20)
    };
    if r < 0 {
        xdp_action::XDP_ABORTED
    } else {
        xdp_action::XDP_PASS
    }
}

#[inline(always)]
fn listener_v4(ctx: &XdpContext) -> Option<*mut bpf_sock> {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + TH + 4 > end {
        return None;
    }
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    unsafe {
        let t = &mut tuple.__bindgen_anon_1.ipv4;
        t.saddr = *((start + 14 + 12) as *const u32);
        t.daddr = *((start + 14 + 16) as *const u32);
        t.sport = *((start + TH) as *const u16);
        t.dport = *((start + TH + 2) as *const u16);
    }
    let sk = unsafe {
        bpf_skc_lookup_tcp(
            ctx.ctx as *mut c_void,
            &mut tuple,
            12,
            BPF_F_CURRENT_NETNS as u64,
            0,
        )
    };
    if sk.is_null() { None } else { Some(sk) }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
