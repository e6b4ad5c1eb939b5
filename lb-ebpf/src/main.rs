//! weir's XDP program. The packet path reads top to bottom:
//!
//! ```text
//! weir_xdp → ethernet (+ one 802.1Q/802.1ad tag) → ipv4 | ipv6 → tcp/udp ports → VIP lookup
//!          → deny-list → count → TCP: SYN-flood defence (`syn.rs`) → verdict
//! ```
//!
//! Every decision ends in [`verdict`], which counts the packet under exactly one [`Stat`] and
//! returns the XDP action that stat stands for. Nothing here logs per packet.
#![no_std]
#![no_main]

mod maps;
mod parse;
mod syn;
mod syn_cookie;
mod sysctl_watch;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use lb_common::{Addr, Stat, VipInfo, VipKey, proto};

use crate::{
    parse::{L3, Packet},
    syn::Seg,
};

#[xdp]
pub fn weir_xdp(ctx: XdpContext) -> u32 {
    let pkt = Packet::new(&ctx);
    let stat = match parse::l3(&pkt) {
        Err(stat) => stat,
        Ok(L3::V4 { off }) => ipv4(&ctx, &pkt, off),
        Ok(L3::V6 { off }) => ipv6(&ctx, &pkt, off),
    };
    verdict(stat, pkt.len())
}

/// Passes every frame. `weir run` attaches it to the peer of a veth it runs on when that peer has
/// no native XDP program: a veth delivers XDP_TX frames only to a peer running one (GRO gives
/// the peer a ring, but the veth never wakes it), so without it every SYN-ACK weir sends is lost
/// (`lb-userspace/src/xdp/veth.rs`).
#[xdp]
pub fn weir_peer_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// Counts the packet under `stat` and returns its action.
#[inline(always)]
fn verdict(stat: Stat, len: u64) -> u32 {
    maps::count(stat, len);
    if stat.passes() {
        xdp_action::XDP_PASS
    } else if stat.transmits() {
        xdp_action::XDP_TX
    } else {
        xdp_action::XDP_DROP
    }
}

#[inline(always)]
fn ipv4(ctx: &XdpContext, pkt: &Packet, off: usize) -> Stat {
    let Some(ip) = parse::ipv4(pkt, off) else {
        return Stat::DropMalformed;
    };
    let dst = Addr::from_v4_word(ip.dst);
    if ip.is_fragment {
        return address_only(dst, || maps::denied_v4(ip.src_octets()), Stat::DropFragment);
    }
    match ip.proto {
        proto::TCP | proto::UDP => {
            let seg = Seg {
                ctx,
                ip_off: off,
                l4_off: ip.l4_off,
                v6: false,
            };
            service(pkt, &seg, ip.proto, dst, || {
                maps::denied_v4(ip.src_octets())
            })
        }
        proto::ICMP => address_only(dst, || maps::denied_v4(ip.src_octets()), Stat::PassVipIcmp),
        _ => address_only(dst, || maps::denied_v4(ip.src_octets()), Stat::DropVipProto),
    }
}

#[inline(always)]
fn ipv6(ctx: &XdpContext, pkt: &Packet, off: usize) -> Stat {
    let Some(ip) = parse::ipv6(pkt, off) else {
        return Stat::DropMalformed;
    };
    let dst = ip.dst;
    match ip.next_header {
        proto::TCP | proto::UDP => {
            let seg = Seg {
                ctx,
                ip_off: off,
                l4_off: ip.l4_off,
                v6: true,
            };
            service(pkt, &seg, ip.next_header, dst, || {
                maps::denied_v6(ip.src_octets())
            })
        }
        proto::ICMPV6 => address_only(dst, || maps::denied_v6(ip.src_octets()), Stat::PassVipIcmp),
        parse::IPV6_FRAGMENT => {
            address_only(dst, || maps::denied_v6(ip.src_octets()), Stat::DropFragment)
        }
        nh if parse::is_ipv6_extension(nh) => address_only(
            dst,
            || maps::denied_v6(ip.src_octets()),
            Stat::DropIpv6ExtHeader,
        ),
        _ => address_only(dst, || maps::denied_v6(ip.src_octets()), Stat::DropVipProto),
    }
}

/// TCP or UDP: the destination (address, port, protocol) decides whether this is VIP traffic;
/// TCP to a VIP then goes through the SYN-flood defence (`syn::guard`).
#[inline(always)]
fn service(pkt: &Packet, seg: &Seg, proto: u8, dst: Addr, denied: impl FnOnce() -> bool) -> Stat {
    let Some(dport_be) = parse::dst_port(pkt, seg.l4_off, proto) else {
        return Stat::DropMalformed;
    };
    let Some(vip) = maps::vip(&VipKey::service(dst, dport_be, proto)) else {
        return Stat::PassNotVip;
    };
    if denied() {
        return Stat::DropDenied;
    }
    maps::count_vip(vip, pkt.len());
    if proto == proto::TCP
        && let Some(stat) = syn::guard(seg, pkt, vip.id)
    {
        return stat;
    }
    Stat::PassVip
}

/// A packet without usable ports: whether its destination is a VIP address decides.
/// Not to a VIP address → passed untouched; to one → deny-list, then `on_vip`.
#[inline(always)]
fn address_only(dst: Addr, denied: impl FnOnce() -> bool, on_vip: Stat) -> Stat {
    if maps::vip(&VipKey::address(dst)).is_none() {
        return Stat::PassNotVip;
    }
    if denied() { Stat::DropDenied } else { on_vip }
}

#[allow(dead_code)]
const _: () = assert!(VipInfo::ADDRESS_ID == u32::MAX);

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
