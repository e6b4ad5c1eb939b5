//! Answering a SYN from XDP: the SYN becomes, in place, a SYN-ACK whose sequence number is the
//! kernel's SYN cookie for the listening socket, and goes back out of the interface (XDP_TX).
//!
//! The SYN-ACK always has a 40-byte TCP header: MSS, then either the timestamp option (with
//! SACK-permitted in its padding) or NOPs, then window scale or NOPs. The cookie itself encodes
//! only the client's MSS; window scale, SACK and ECN ride in the low 6 bits of our TSval exactly
//! as the kernel's `cookie_init_timestamp` puts them, and the kernel decodes them from the
//! client's TSecr when the ACK arrives (`lb_common::syn::ts`). Without a client timestamp there
//! is nowhere to keep them, so the SYN-ACK offers only the MSS (as the kernel's cookies do).

use aya_ebpf::{
    bindings::{bpf_sock, tcphdr},
    helpers::{
        bpf_ktime_get_coarse_ns, bpf_tcp_gen_syncookie, bpf_xdp_adjust_tail, bpf_xdp_load_bytes,
    },
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

/// TCP header length of every SYN-ACK weir sends.
const SYNACK_TCP_LEN: usize = 40;
const TTL: u8 = 64;
/// Option positions and lengths are masked to 0..=63 for the verifier (options are ≤ 40 bytes).
const POS_MASK: usize = 63;
/// The options' stack copy: any masked position plus the 6 bytes an option is read at.
const OPTIONS_BUF: usize = 72;
const IPPROTO_TCP: u8 = 6;
const TCPOPT_NOP: u8 = 1;
const NOPS: u32 = u32::from_ne_bytes([TCPOPT_NOP; 4]);

/// What the SYN carried that the SYN-ACK needs.
struct Syn {
    sport: u16,
    dport: u16,
    seq: u32,
    wscale: Option<u8>,
    sack: bool,
    tsval: Option<u32>,
    ecn: bool,
}

/// Answers a pure SYN to a VIP in cookie mode. Falls back to the stack (which answers with its
/// own cookie) where XDP cannot: IPv4 options, no listener, a helper refusing.
#[inline(always)]
pub fn answer(seg: &Seg, pkt: &Packet, s: &SynSettings, vip_id: u32) -> Stat {
    if !seg.v6 && seg.l4_off != seg.ip_off + IPV4_HLEN {
        return Stat::PassVip;
    }
    let Some(sk) = syn::lookup(seg, pkt) else {
        // Nothing listens: the kernel's RST is the right answer.
        return Stat::PassVip;
    };
    if !syn::is_listener(sk) {
        syn::release(sk);
        return Stat::PassVip;
    }
    let cookie = gen_cookie(seg, pkt, sk);
    syn::release(sk);
    let (Some(cookie), Some(syn)) = (cookie, parse_syn(seg, pkt)) else {
        return Stat::PassVip;
    };
    if !resize(seg) {
        return Stat::PassVip;
    }
    // The frame changed under us: a fresh view of it.
    let pkt = Packet::new(seg.ctx);
    if !write_synack(seg, &pkt, &syn, cookie, s) {
        return Stat::DropMalformed;
    }
    maps::count_syn(vip_id, SynCounter::CookieSent);
    Stat::TxSynCookie
}

/// `bpf_tcp_gen_syncookie` wants the TCP header length to equal the SYN's data offset, as a
/// constant the verifier can check against the packet: one arm per possible length.
#[inline(always)]
fn gen_cookie(seg: &Seg, pkt: &Packet, sk: *mut bpf_sock) -> Option<u32> {
    let th = pkt.bytes::<TCP_HLEN>(seg.l4_off)?;
    let doff = u8_at(th + 12) >> 4;
    let ip_len = syn::ip_len(seg);
    let ip = if seg.v6 {
        pkt.bytes::<IPV6_HLEN>(seg.ip_off)?
    } else {
        pkt.bytes::<IPV4_HLEN>(seg.ip_off)?
    };
    macro_rules! arms {
        ($($words:literal),*) => {
            match doff {
                $($words => {
                    let th = pkt.bytes::<{ $words * 4 }>(seg.l4_off)?;
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
                _ => return None,
            }
        };
    }
    let r = arms!(5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    // Low 32 bits: the cookie; bits 32..48: the MSS it encodes; negative: an error.
    if r < 0 { None } else { Some(r as u32) }
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

/// Makes the frame exactly as long as the SYN-ACK (it loses the SYN's options and any payload
/// or Ethernet padding, or grows for a SYN without options).
#[inline(always)]
fn resize(seg: &Seg) -> bool {
    let want = seg.l4_off + SYNACK_TCP_LEN;
    let have = seg.ctx.data_end() - seg.ctx.data();
    let delta = want as i32 - have as i32;
    delta == 0 || unsafe { bpf_xdp_adjust_tail(seg.ctx.ctx, delta) } == 0
}

#[inline(always)]
fn write_synack(seg: &Seg, pkt: &Packet, syn: &Syn, cookie: u32, s: &SynSettings) -> bool {
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

    // Pseudo-header sum: protocol and TCP length, plus the addresses once written (all in
    // memory order, like every word summed here).
    let mut sum = (IPPROTO_TCP as u16).to_be() as u64 + (SYNACK_TCP_LEN as u16).to_be() as u64;
    let (th, mss) = if seg.v6 {
        let Some(ip) = pkt.bytes::<{ IPV6_HLEN + SYNACK_TCP_LEN }>(seg.ip_off) else {
            return false;
        };
        let th = ipv6_header(ip);
        for i in 0..8 {
            sum += u32_at(ip + 8 + 4 * i) as u64;
        }
        (th, s.mss_v6)
    } else {
        let Some(ip) = pkt.bytes::<{ IPV4_HLEN + SYNACK_TCP_LEN }>(seg.ip_off) else {
            return false;
        };
        let th = ipv4_header(ip);
        sum += u32_at(ip + 12) as u64 + u32_at(ip + 16) as u64;
        (th, s.mss_v4)
    };

    let with_ts = s.flags & SYN_F_TIMESTAMPS != 0 && syn.tsval.is_some();
    let sack = with_ts && syn.sack && s.flags & SYN_F_SACK != 0;
    let wscale = if with_ts && s.flags & SYN_F_WSCALE != 0 {
        syn.wscale
    } else {
        None
    };
    let ecn = with_ts && syn.ecn && s.flags & SYN_F_ECN != 0;

    put_u16(th, syn.dport);
    put_u16(th + 2, syn.sport);
    put_u32(th + 4, cookie.to_be());
    put_u32(th + 8, syn.seq.wrapping_add(1).to_be());
    put_u8(th + 12, ((SYNACK_TCP_LEN / 4) as u8) << 4);
    put_u8(th + 13, TCP_SYN | TCP_ACK | if ecn { TCP_ECE } else { 0 });
    put_u16(th + 14, (s.window.min(65_535) as u16).to_be());
    put_u32(th + 16, 0); // checksum (filled below), urgent pointer
    put_u32(
        th + 20,
        u32::from_ne_bytes([2, 4, (mss >> 8) as u8, mss as u8]),
    );
    if with_ts {
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
    } else {
        put_u32(th + 24, NOPS);
        put_u32(th + 28, NOPS);
        put_u32(th + 32, NOPS);
    }
    match wscale {
        Some(_) => put_u32(
            th + 36,
            u32::from_ne_bytes([TCPOPT_NOP, 3, 3, s.wscale as u8]),
        ),
        None => put_u32(th + 36, NOPS),
    }
    for i in 0..SYNACK_TCP_LEN / 4 {
        sum += u32_at(th + 4 * i) as u64;
    }
    put_u16(th + 16, !fold(sum));
    true
}

/// IPv4 header of the SYN-ACK, at `ip` (60 bytes checked); returns where TCP starts.
#[inline(always)]
fn ipv4_header(ip: usize) -> usize {
    let (src, dst) = (u32_at(ip + 12), u32_at(ip + 16));
    put_u8(ip, 0x45);
    put_u8(ip + 1, 0);
    put_u16(ip + 2, ((IPV4_HLEN + SYNACK_TCP_LEN) as u16).to_be());
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
    ip + IPV4_HLEN
}

/// IPv6 header of the SYN-ACK, at `ip` (80 bytes checked); returns where TCP starts.
#[inline(always)]
fn ipv6_header(ip: usize) -> usize {
    put_u32(ip, 0x6000_0000u32.to_be());
    put_u16(ip + 4, (SYNACK_TCP_LEN as u16).to_be());
    put_u8(ip + 6, IPPROTO_TCP);
    put_u8(ip + 7, TTL);
    for i in 0..4 {
        let (a, b) = (ip + 8 + 4 * i, ip + 24 + 4 * i);
        let (src, dst) = (u32_at(a), u32_at(b));
        put_u32(a, dst);
        put_u32(b, src);
    }
    ip + IPV6_HLEN
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
