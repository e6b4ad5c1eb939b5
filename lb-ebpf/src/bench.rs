//! Programs for benchmarks only: the baselines weir is measured against, and the traffic
//! generator that `BPF_PROG_RUN` with live frames drives (`cargo xtask bench pps`).
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

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

/// The generator: run with `BPF_F_TEST_XDP_LIVE_FRAMES`, every frame it is given is transmitted
/// out of the interface named in the context.
#[xdp]
pub fn gen_tx(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
