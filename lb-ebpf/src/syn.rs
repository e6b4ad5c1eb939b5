//! SYN-flood defence for TCP to a VIP, reading top to bottom:
//!
//! ```text
//! guard → VIP's SYN flags (one array read; 0 = off: done)
//!       → pure SYN: count → per-source token bucket → cookies on? → syn_cookie::answer (XDP_TX)
//!       → anything else, cookies on: socket lookup → established: pass
//!                                                 → listener: cookie ACK? check → pass | drop
//!                                                 → nothing: drop (stray)
//! ```
//!
//! The listening socket is the kernel's: XDP computes the kernel's own cookie for it
//! (`bpf_tcp_gen_syncookie`) and the kernel's cookie path completes the handshake when the ACK
//! arrives, so the accepted socket is an ordinary one (design A in ARCHITECTURE.md).

use aya_ebpf::{
    bindings::{BPF_F_CURRENT_NETNS, bpf_sock, bpf_sock_tuple, tcphdr},
    helpers::{bpf_ktime_get_ns, bpf_sk_release, bpf_skc_lookup_tcp, bpf_tcp_check_syncookie},
    programs::XdpContext,
};
use core::ffi::c_void;
use lb_common::{
    Stat,
    syn::{SYN_VIP_COOKIES, SYN_VIP_LIMIT, SrcKey, SynCounter},
};

use crate::{
    maps::{self, Rate},
    parse::{IPV4_HLEN, IPV6_HLEN, Packet, TCP_HLEN, u8_at, u16_at, u32_at},
    syn_cookie,
};

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_ECE: u8 = 0x40;
pub const TCP_CWR: u8 = 0x80;
/// `BPF_TCP_LISTEN` of `bpf_sock::state`.
const TCP_LISTEN: u32 = 10;

/// Where a TCP segment to a VIP lies: what the SYN path needs besides the packet.
pub struct Seg<'a> {
    pub ctx: &'a XdpContext,
    pub ip_off: usize,
    pub l4_off: usize,
    pub v6: bool,
}

impl Seg<'_> {
    #[inline(always)]
    fn ip_len(&self) -> u32 {
        if self.v6 {
            IPV6_HLEN as u32
        } else {
            IPV4_HLEN as u32
        }
    }
}

/// The SYN defence's decision for a TCP segment to VIP `vip_id`; `None` leaves it to the normal
/// VIP path (pass).
#[inline(always)]
pub fn guard(seg: &Seg, pkt: &Packet, vip_id: u32) -> Option<Stat> {
    let flags = maps::syn_flags(vip_id);
    if flags == 0 {
        return None;
    }
    let th = pkt.bytes::<TCP_HLEN>(seg.l4_off)?;
    let tcp_flags = u8_at(th + 13);
    if tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN {
        maps::count_syn(vip_id, SynCounter::SynSeen);
        let settings = maps::syn_settings()?;
        if flags & SYN_VIP_LIMIT != 0 {
            let key = source(seg, pkt)?;
            match maps::syn_rate(&key, settings, unsafe { bpf_ktime_get_ns() }) {
                Rate::Allow => {}
                Rate::Deny => {
                    maps::count_syn(vip_id, SynCounter::RateLimited);
                    return Some(Stat::DropSynRate);
                }
                Rate::Untracked => maps::count_syn(vip_id, SynCounter::Untracked),
            }
        }
        if flags & SYN_VIP_COOKIES == 0 {
            return None;
        }
        return Some(syn_cookie::answer(seg, pkt, settings, vip_id));
    }
    if flags & SYN_VIP_COOKIES == 0 {
        return None;
    }
    Some(not_syn(seg, pkt, tcp_flags, vip_id))
}

/// The rate limiter's key: the source address (IPv6: its /64).
#[inline(always)]
fn source(seg: &Seg, pkt: &Packet) -> Option<SrcKey> {
    if seg.v6 {
        let ip = pkt.bytes::<IPV6_HLEN>(seg.ip_off)?;
        let w = [
            u32_at(ip + 8),
            u32_at(ip + 12),
            u32_at(ip + 16),
            u32_at(ip + 20),
        ];
        Some(SrcKey::from_words(w, true))
    } else {
        let ip = pkt.bytes::<IPV4_HLEN>(seg.ip_off)?;
        let mapped = u32::from_ne_bytes([0, 0, 0xff, 0xff]);
        Some(SrcKey::from_words([0, 0, mapped, u32_at(ip + 12)], false))
    }
}

/// A segment other than a pure SYN while cookies are on. Established (or half-open) connections
/// pass; an ACK that reaches only the listener must carry a valid cookie; the rest is a stray
/// (ACK/RST/FIN flood) and never reaches the stack.
#[inline(always)]
fn not_syn(seg: &Seg, pkt: &Packet, tcp_flags: u8, vip_id: u32) -> Stat {
    let Some(sk) = lookup(seg, pkt) else {
        maps::count_syn(vip_id, SynCounter::Stray);
        return Stat::DropVipStray;
    };
    let state = unsafe { (*sk).state };
    if state != TCP_LISTEN {
        release(sk);
        return Stat::PassVip;
    }
    if tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST) != TCP_ACK {
        release(sk);
        maps::count_syn(vip_id, SynCounter::Stray);
        return Stat::DropVipStray;
    }
    let valid = check_cookie(seg, pkt, sk);
    release(sk);
    if valid {
        maps::count_syn(vip_id, SynCounter::CookieAckValid);
        Stat::PassSynCookieAck
    } else {
        maps::count_syn(vip_id, SynCounter::CookieAckInvalid);
        Stat::DropSynCookieAck
    }
}

#[inline(always)]
fn check_cookie(seg: &Seg, pkt: &Packet, sk: *mut bpf_sock) -> bool {
    let Some(th) = pkt.bytes::<TCP_HLEN>(seg.l4_off) else {
        return false;
    };
    let r = if seg.v6 {
        let Some(ip) = pkt.bytes::<IPV6_HLEN>(seg.ip_off) else {
            return false;
        };
        unsafe {
            bpf_tcp_check_syncookie(
                sk as *mut c_void,
                ip as *mut c_void,
                IPV6_HLEN as u32,
                th as *mut tcphdr,
                TCP_HLEN as u32,
            )
        }
    } else {
        let Some(ip) = pkt.bytes::<IPV4_HLEN>(seg.ip_off) else {
            return false;
        };
        unsafe {
            bpf_tcp_check_syncookie(
                sk as *mut c_void,
                ip as *mut c_void,
                IPV4_HLEN as u32,
                th as *mut tcphdr,
                TCP_HLEN as u32,
            )
        }
    };
    r == 0
}

/// The kernel's socket for this segment's 4-tuple in the current namespace: an established,
/// request or time-wait socket, else the listener. Must be `release`d.
#[inline(always)]
pub fn lookup(seg: &Seg, pkt: &Packet) -> Option<*mut bpf_sock> {
    let th = pkt.bytes::<4>(seg.l4_off)?;
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    let size = if seg.v6 {
        let ip = pkt.bytes::<IPV6_HLEN>(seg.ip_off)?;
        let t = unsafe { &mut tuple.__bindgen_anon_1.ipv6 };
        t.saddr = [
            u32_at(ip + 8),
            u32_at(ip + 12),
            u32_at(ip + 16),
            u32_at(ip + 20),
        ];
        t.daddr = [
            u32_at(ip + 24),
            u32_at(ip + 28),
            u32_at(ip + 32),
            u32_at(ip + 36),
        ];
        t.sport = u16_at(th);
        t.dport = u16_at(th + 2);
        36
    } else {
        let ip = pkt.bytes::<IPV4_HLEN>(seg.ip_off)?;
        let t = unsafe { &mut tuple.__bindgen_anon_1.ipv4 };
        t.saddr = u32_at(ip + 12);
        t.daddr = u32_at(ip + 16);
        t.sport = u16_at(th);
        t.dport = u16_at(th + 2);
        12
    };
    let sk = unsafe {
        bpf_skc_lookup_tcp(
            seg.ctx.ctx as *mut c_void,
            &mut tuple,
            size,
            BPF_F_CURRENT_NETNS as u64,
            0,
        )
    };
    if sk.is_null() { None } else { Some(sk) }
}

#[inline(always)]
pub fn release(sk: *mut bpf_sock) {
    unsafe { bpf_sk_release(sk as *mut c_void) };
}

#[inline(always)]
pub fn is_listener(sk: *mut bpf_sock) -> bool {
    unsafe { (*sk).state == TCP_LISTEN }
}

/// `ip_len` for the helpers (the fixed IP header).
#[inline(always)]
pub fn ip_len(seg: &Seg) -> u32 {
    seg.ip_len()
}
