//! Answering a SYN from XDP: the SYN becomes, in place, a SYN-ACK whose sequence number is the
//! kernel's SYN cookie for the listening socket, and goes back out of the interface (XDP_TX).
//!
//! The SYN-ACK's options depend on what the SYN offered (RFC 7323: no timestamp, window scale or
//! SACK the SYN did not offer). A SYN with a timestamp gets a 40-byte TCP header: MSS, the
//! timestamp option (with SACK-permitted in its padding, or NOPs), then window scale or NOPs.
//! The cookie itself encodes only the client's MSS; window scale, SACK and ECN ride in the low 6
//! bits of our TSval exactly as the kernel's `cookie_init_timestamp` puts them, and the kernel
//! decodes them from the client's TSecr when the ACK arrives (`lb_common::syn::ts`). Without a
//! client timestamp there is nowhere to keep them, so the SYN-ACK is a 24-byte header with the
//! MSS alone (as the kernel's cookies do).
//!
//! The frame is resized to the SYN-ACK. A SYN without options (hping3 and most flood tools: a
//! 54-byte frame) grows by only 4 bytes to the MSS-only answer. A veth hands XDP a frame sent
//! from a socket with little tailroom: with a 40-byte answer (20 bytes of growth)
//! `bpf_xdp_adjust_tail` refused every one of 2000 hping3 SYNs in `e2e_synflood_hping3`, all
//! left to the kernel; 4 bytes fit. A 60-byte minimum frame from a NIC (6 bytes of padding)
//! shrinks to it. A SYN with a timestamp has at least 32 bytes of TCP header, so its answer grows
//! by 8 bytes at most.
//!
//! Every SYN XDP leaves to the kernel is counted under its reason (`Stat::PassSyn*`).

use aya_ebpf::{
    bindings::{bpf_sock, tcphdr},
    helpers::{
        bpf_ktime_get_coarse_ns, bpf_tcp_gen_syncookie, bpf_xdp_adjust_tail, bpf_xdp_load_bytes,
    },
    macros::map,
    maps::PerCpuArray,
};
use core::ffi::c_void;
use lb_common::{
    Stat,
    syn::{SYN_F_ECN, SYN_F_SACK, SYN_F_TIMESTAMPS, SYN_F_WSCALE, SynCounter, SynSettings, ts},
};

use crate::{
    maps,
    parse::{
        IPV4_HLEN, IPV6_HLEN, Packet, TCP_HLEN, put_u8, put_u16, put_u32, u8_at, u16_at, u32_at,
    },
    syn::{self, Seg, TCP_ACK, TCP_CWR, TCP_ECE, TCP_SYN},
};

/// TCP header length of a SYN-ACK with the timestamp option (MSS, SACK, TS, window scale).
const SYNACK_TS_LEN: usize = 40;
/// TCP header length of a SYN-ACK with the MSS option alone.
const SYNACK_MSS_LEN: usize = 24;
const TTL: u8 = 64;
/// Option positions and lengths are masked to 0..=63 for the verifier (options are ≤ 40 bytes).
const POS_MASK: usize = 63;
/// The options' stack copy: any masked position plus the 6 bytes an option is read at.
const OPTIONS_BUF: usize = 72;
const IPPROTO_TCP: u8 = 6;
const TCPOPT_NOP: u8 = 1;
const NOPS: u32 = u32::from_ne_bytes([TCPOPT_NOP; 4]);

/// What the SYN carried that the SYN-ACK needs.
#[derive(Clone, Copy)]
struct Syn {
    sport: u16,
    dport: u16,
    seq: u32,
    wscale: Option<u8>,
    sack: bool,
    tsval: Option<u32>,
    ecn: bool,
}

/// One `Syn` per CPU, written and read back between the option parser and the SYN-ACK (see
/// [`settle`]).
#[map]
static SYN_SCRATCH: PerCpuArray<Syn> = PerCpuArray::with_max_entries(1, 0);

/// The parsed SYN, through map memory: the verifier knows nothing of what it reads back, so the
/// option parser's many paths (each with its own constants) meet in one state here and the
/// SYN-ACK code after them is verified once, not once per path (over a million instructions
/// otherwise). Recent kernels inline a per-CPU array lookup: a few instructions.
#[inline(always)]
fn settle(syn: Syn) -> Option<Syn> {
    let p = SYN_SCRATCH.get_ptr_mut(0)?;
    unsafe {
        core::ptr::write_volatile(p, syn);
        Some(core::ptr::read_volatile(p))
    }
}

/// Answers a pure SYN to a VIP in cookie mode. Falls back to the stack (which answers with its
/// own cookie, or a RST) where XDP cannot, each reason counted under its own stat: IPv4 options,
/// no listener, another socket on the 4-tuple, the helper refusing, no room for the SYN-ACK. A
/// TCP header longer than the frame is dropped (the kernel would discard it too).
#[inline(always)]
pub fn answer(seg: &Seg, pkt: &Packet, s: &SynSettings, vip_id: u32) -> Stat {
    if !seg.v6 && seg.l4_off != seg.ip_off + IPV4_HLEN {
        return Stat::PassSynIpOptions;
    }
    let Some(sk) = syn::lookup(seg, pkt) else {
        // Nothing listens: the kernel's RST is the right answer.
        return Stat::PassSynNoListener;
    };
    if !syn::is_listener(sk) {
        syn::release(sk);
        return Stat::PassSynNotListener;
    }
    let cookie = gen_cookie(seg, pkt, sk);
    syn::release(sk);
    let cookie = match cookie {
        Ok(c) => c,
        Err(stat) => return stat,
    };
    let Some(syn) = parse_syn(seg, pkt).and_then(settle) else {
        return Stat::DropMalformed;
    };
    let with_ts = s.flags & SYN_F_TIMESTAMPS != 0 && syn.tsval.is_some();
    let tcp_len = if with_ts {
        SYNACK_TS_LEN
    } else {
        SYNACK_MSS_LEN
    };
    if !resize(seg, tcp_len) {
        return Stat::PassSynNoRoom;
    }
    // The frame changed under us: a fresh view of it.
    let pkt = Packet::new(seg.ctx);
    if !write_synack(seg, &pkt, &syn, cookie, s, with_ts) {
        return Stat::DropMalformed;
    }
    maps::count_syn(vip_id, SynCounter::CookieSent);
    Stat::TxSynCookie
}

/// `bpf_tcp_gen_syncookie` wants the TCP header length to equal the SYN's data offset, as a
/// constant the verifier can check against the packet: one arm per possible length.
/// A header shorter than its data offset says is `DropMalformed`; the helper refusing (no
/// cookies in this namespace, a full accept queue) is `PassSynCookieRefused`.
#[inline(always)]
fn gen_cookie(seg: &Seg, pkt: &Packet, sk: *mut bpf_sock) -> Result<u32, Stat> {
    const MALFORMED: Stat = Stat::DropMalformed;
    let th = pkt.bytes::<TCP_HLEN>(seg.l4_off).ok_or(MALFORMED)?;
    let doff = u8_at(th + 12) >> 4;
    let ip_len = syn::ip_len(seg);
    let ip = if seg.v6 {
        pkt.bytes::<IPV6_HLEN>(seg.ip_off).ok_or(MALFORMED)?
    } else {
        pkt.bytes::<IPV4_HLEN>(seg.ip_off).ok_or(MALFORMED)?
    };
    macro_rules! arms {
        ($($words:literal),*) => {
            match doff {
                $($words => {
                    let th = pkt.bytes::<{ $words * 4 }>(seg.l4_off).ok_or(MALFORMED)?;
                    unsafe {
                        bpf_tcp_gen_syncookie(
                            sk as *mut c_void,
                            ip as *mut c_void,
                            ip_len,
                            th as *mut tcphdr,
                            $words * 4,
                        )
                    }
                })*
                _ => return Err(MALFORMED),
            }
        };
    }
    let r = arms!(5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    // Low 32 bits: the cookie; bits 32..48: the MSS it encodes; negative: an error.
    if r < 0 {
        Err(Stat::PassSynCookieRefused)
    } else {
        Ok(r as u32)
    }
}

/// Ports, sequence number and the options the SYN-ACK echoes. The options are copied to the
/// stack (`bpf_xdp_load_bytes`) and walked there: variable-offset packet reads in a loop are what
/// LLVM reorders past the verifier's bounds checks.
#[inline(always)]
fn parse_syn(seg: &Seg, pkt: &Packet) -> Option<Syn> {
    let th = pkt.bytes::<TCP_HLEN>(seg.l4_off)?;
    let flags = u8_at(th + 13);
    let mut syn = Syn {
        sport: u16_at(th),
        dport: u16_at(th + 2),
        seq: u32::from_be(u32_at(th + 4)),
        wscale: None,
        sack: false,
        tsval: None,
        ecn: flags & (TCP_ECE | TCP_CWR) == TCP_ECE | TCP_CWR,
    };
    let doff = (u8_at(th + 12) >> 4) as u32;
    if doff <= 5 {
        return Some(syn);
    }
    if doff == 10 && linux_layout(pkt, seg.l4_off, &mut syn) {
        return Some(syn);
    }
    // Opaque to LLVM, then masked: the verifier must see the length bounded by the buffer, and
    // LLVM would otherwise fold the mask into a form the verifier cannot bound from below.
    let opt_len = (core::hint::black_box(doff * 4 - TCP_HLEN as u32) & POS_MASK as u32) as usize;
    if opt_len == 0 {
        return Some(syn);
    }
    let mut buf = [0u8; OPTIONS_BUF];
    let r = unsafe {
        bpf_xdp_load_bytes(
            seg.ctx.ctx,
            (seg.l4_off + TCP_HLEN) as u32,
            buf.as_mut_ptr() as *mut c_void,
            opt_len as u32,
        )
    };
    if r != 0 {
        return Some(syn);
    }
    // At most 10 options (a SYN has 5 to 8). The position goes through `black_box` and a mask
    // each step: LLVM cannot drop the mask, so the verifier sees every read bounded by the buffer
    // (padded so an option's 6 bytes at any masked position fit), and the mask merges the
    // verifier's states instead of multiplying them.
    let mut i = 0usize;
    for _ in 0..10 {
        let j = core::hint::black_box(i) & POS_MASK;
        if j >= opt_len {
            break;
        }
        let kind = buf[j];
        if kind == 0 {
            break;
        }
        if kind == TCPOPT_NOP {
            i = j + 1;
            continue;
        }
        let len = buf[j + 1] as usize;
        if len < 2 {
            break;
        }
        if kind == 3 && len == 3 {
            syn.wscale = Some(buf[j + 2]);
        } else if kind == 4 {
            syn.sack = true;
        } else if kind == 8 && len == 10 {
            syn.tsval = Some(u32::from_be_bytes([
                buf[j + 2],
                buf[j + 3],
                buf[j + 4],
                buf[j + 5],
            ]));
        }
        i = j + len;
    }
    Some(syn)
}

/// The fast path for the layout Linux (and Android) clients send, read at constant offsets:
/// MSS, SACK-permitted, timestamps, NOP, window scale (20 option bytes). Anything else takes the
/// general walk.
#[inline(always)]
fn linux_layout(pkt: &Packet, l4_off: usize, syn: &mut Syn) -> bool {
    let Some(th) = pkt.bytes::<{ TCP_HLEN + 20 }>(l4_off) else {
        return false;
    };
    let o = th + TCP_HLEN;
    if u8_at(o) != 2
        || u8_at(o + 1) != 4
        || u32_at(o + 4) != u32::from_ne_bytes([4, 2, 8, 10])
        || u32_at(o + 16) != u32::from_ne_bytes([TCPOPT_NOP, 3, 3, u8_at(o + 19)])
    {
        return false;
    }
    syn.sack = true;
    syn.tsval = Some(u32::from_be(u32_at(o + 8)));
    syn.wscale = Some(u8_at(o + 19));
    true
}

/// Makes the frame exactly as long as a SYN-ACK with a `tcp_len`-byte header (it loses the
/// SYN's options and any payload or Ethernet padding, or grows for a SYN with fewer options).
/// Growing needs tailroom, which the driver decides.
#[inline(always)]
fn resize(seg: &Seg, tcp_len: usize) -> bool {
    let want = seg.l4_off + tcp_len;
    let have = seg.ctx.data_end() - seg.ctx.data();
    let delta = want as i32 - have as i32;
    delta == 0 || unsafe { bpf_xdp_adjust_tail(seg.ctx.ctx, delta) } == 0
}

/// Rewrites the frame (already resized) into the SYN-ACK: with the timestamp (and what it
/// carries) a 40-byte TCP header, else the MSS alone in 24 bytes. One body for both: a copy per
/// length doubles what the verifier walks after the option parser's many paths.
#[inline(always)]
fn write_synack(
    seg: &Seg,
    pkt: &Packet,
    syn: &Syn,
    cookie: u32,
    s: &SynSettings,
    with_ts: bool,
) -> bool {
    let Some(eth) = pkt.bytes::<12>(0) else {
        return false;
    };
    let (d0, d1, s0, s1) = (
        u32_at(eth),
        u16_at(eth + 4),
        u32_at(eth + 6),
        u16_at(eth + 10),
    );
    put_u32(eth, s0);
    put_u16(eth + 4, s1);
    put_u32(eth + 6, d0);
    put_u16(eth + 10, d1);

    let tcp_len = if with_ts {
        SYNACK_TS_LEN
    } else {
        SYNACK_MSS_LEN
    };
    // Pseudo-header sum: protocol and TCP length, plus the addresses once written (all in
    // memory order, like every word summed here).
    let mut sum = (IPPROTO_TCP as u16).to_be() as u64 + (tcp_len as u16).to_be() as u64;
    // The IP and TCP headers are checked as one range from the IP header (checked apart, LLVM
    // rebases TCP writes on the IP pointer past its checked range); the longer range with a
    // timestamp.
    let (th, mss) = if seg.v6 {
        let ip = if with_ts {
            pkt.bytes::<{ IPV6_HLEN + SYNACK_TS_LEN }>(seg.ip_off)
        } else {
            pkt.bytes::<{ IPV6_HLEN + SYNACK_MSS_LEN }>(seg.ip_off)
        };
        let Some(ip) = ip else {
            return false;
        };
        ipv6_header(ip, tcp_len);
        for i in 0..8 {
            sum += u32_at(ip + 8 + 4 * i) as u64;
        }
        (ip + IPV6_HLEN, s.mss_v6)
    } else {
        let ip = if with_ts {
            pkt.bytes::<{ IPV4_HLEN + SYNACK_TS_LEN }>(seg.ip_off)
        } else {
            pkt.bytes::<{ IPV4_HLEN + SYNACK_MSS_LEN }>(seg.ip_off)
        };
        let Some(ip) = ip else {
            return false;
        };
        ipv4_header(ip, tcp_len);
        sum += u32_at(ip + 12) as u64 + u32_at(ip + 16) as u64;
        (ip + IPV4_HLEN, s.mss_v4)
    };

    put_u16(th, syn.dport);
    put_u16(th + 2, syn.sport);
    put_u32(th + 4, cookie.to_be());
    put_u32(th + 8, syn.seq.wrapping_add(1).to_be());
    put_u8(th + 12, ((tcp_len / 4) as u8) << 4);
    put_u16(th + 14, (s.window.min(65_535) as u16).to_be());
    put_u32(th + 16, 0); // checksum (filled below), urgent pointer
    put_u32(
        th + 20,
        u32::from_ne_bytes([2, 4, (mss >> 8) as u8, mss as u8]),
    );
    let ecn = with_ts && ts_options(th, syn, s);
    put_u8(th + 13, TCP_SYN | TCP_ACK | if ecn { TCP_ECE } else { 0 });
    for i in 0..SYNACK_MSS_LEN / 4 {
        sum += u32_at(th + 4 * i) as u64;
    }
    if with_ts {
        for i in SYNACK_MSS_LEN / 4..SYNACK_TS_LEN / 4 {
            sum += u32_at(th + 4 * i) as u64;
        }
    }
    put_u16(th + 16, !fold(sum));
    true
}

/// The 16 option bytes after the MSS of a 40-byte SYN-ACK (`th` has 40 bytes checked): SACK
/// (or NOPs) and the timestamp whose TSval carries window scale, SACK and ECN, then window scale
/// (or NOPs). Returns whether ECN is on.
#[inline(always)]
fn ts_options(th: usize, syn: &Syn, s: &SynSettings) -> bool {
    let sack = syn.sack && s.flags & SYN_F_SACK != 0;
    let wscale = if s.flags & SYN_F_WSCALE != 0 {
        syn.wscale
    } else {
        None
    };
    let ecn = syn.ecn && s.flags & SYN_F_ECN != 0;
    // The coarse clock (up to a tick behind) is cheaper, and a TSval behind the kernel's
    // later ones is what PAWS needs.
    let now_ms = (unsafe { bpf_ktime_get_coarse_ns() } / 1_000_000) as u32;
    let tsval = ts::tsval(now_ms, ts::options(wscale, sack, ecn));
    let lead = if sack {
        [4, 2]
    } else {
        [TCPOPT_NOP, TCPOPT_NOP]
    };
    put_u32(th + 24, u32::from_ne_bytes([lead[0], lead[1], 8, 10]));
    put_u32(th + 28, tsval.to_be());
    put_u32(th + 32, syn.tsval.unwrap_or(0).to_be());
    match wscale {
        Some(_) => put_u32(
            th + 36,
            u32::from_ne_bytes([TCPOPT_NOP, 3, 3, s.wscale as u8]),
        ),
        None => put_u32(th + 36, NOPS),
    }
    ecn
}

/// IPv4 header of the SYN-ACK, at `ip` (20 bytes checked), for `tcp_len` bytes of TCP header.
#[inline(always)]
fn ipv4_header(ip: usize, tcp_len: usize) {
    let (src, dst) = (u32_at(ip + 12), u32_at(ip + 16));
    put_u8(ip, 0x45);
    put_u8(ip + 1, 0);
    put_u16(ip + 2, ((IPV4_HLEN + tcp_len) as u16).to_be());
    put_u16(ip + 4, 0);
    put_u16(ip + 6, 0x4000u16.to_be()); // DF
    put_u8(ip + 8, TTL);
    put_u8(ip + 9, IPPROTO_TCP);
    put_u16(ip + 10, 0);
    put_u32(ip + 12, dst);
    put_u32(ip + 16, src);
    let mut sum = 0u64;
    for i in 0..5 {
        sum += u32_at(ip + 4 * i) as u64;
    }
    put_u16(ip + 10, !fold(sum));
}

/// IPv6 header of the SYN-ACK, at `ip` (40 bytes checked), for `tcp_len` bytes of TCP header.
#[inline(always)]
fn ipv6_header(ip: usize, tcp_len: usize) {
    put_u32(ip, 0x6000_0000u32.to_be());
    put_u16(ip + 4, (tcp_len as u16).to_be());
    put_u8(ip + 6, IPPROTO_TCP);
    put_u8(ip + 7, TTL);
    for i in 0..4 {
        let (a, b) = (ip + 8 + 4 * i, ip + 24 + 4 * i);
        let (src, dst) = (u32_at(a), u32_at(b));
        put_u32(a, dst);
        put_u32(b, src);
    }
}

/// Folds a sum of 32-bit words into the 16-bit ones'-complement sum.
#[inline(always)]
fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}
