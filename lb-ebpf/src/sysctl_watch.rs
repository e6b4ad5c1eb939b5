//! `weir_sysctl`, a `cgroup/sysctl` program on the root of the cgroup v2 hierarchy: it sees a
//! write to `/proc/sys` before the write takes effect. The kernel decodes a cookie ACK with its
//! sysctls of the moment and drops one whose options it would not have offered; the control
//! plane reads them every 10 ms at best (`SynControl::follow_host`). So a write that turns off
//! an option the SYN-ACKs promise — `tcp_sack`, `tcp_window_scaling` or `tcp_ecn` to 0,
//! `tcp_timestamps` to anything but 2 — withdraws it from `SYN_SETTINGS` here, at once.
//! Promising less is always safe (the client's ACK then claims less); the control plane puts
//! back what the sysctls of weir's own namespace allow (a write in another namespace withdrew
//! it too: the program cannot tell whose it was). Only writes by uid 0 (as the host sees it)
//! count: a user who made a network namespace of their own in an unprivileged user namespace
//! can write its sysctls, and writing them in a loop would otherwise keep options withdrawn
//! from weir's SYN-ACKs. Every write is allowed.

use aya_ebpf::{
    bindings::BPF_F_SYSCTL_BASE_NAME,
    helpers::{bpf_get_current_uid_gid, generated as helper},
    macros::cgroup_sysctl,
    programs::SysctlContext,
};
use lb_common::syn::{SYN_F_ECN, SYN_F_SACK, SYN_F_TIMESTAMPS, SYN_F_WSCALE};

use crate::maps;

#[cgroup_sysctl]
pub fn weir_sysctl(ctx: SysctlContext) -> i32 {
    let withdrawn = withdrawn(&ctx);
    if withdrawn != 0 {
        maps::withdraw_syn_options(withdrawn);
    }
    // Allow the write (0 would refuse it with EPERM).
    1
}

/// Longest base name read: `tcp_window_scaling`.
const NAME: usize = 20;

/// The `SYN_F_*` options a write takes away (0: none, or not a write).
#[inline(always)]
fn withdrawn(ctx: &SysctlContext) -> u32 {
    // SAFETY: the kernel's context for this call.
    if unsafe { (*ctx.sysctl).write } == 0 {
        return 0;
    }
    // The low half: the uid in the initial user namespace.
    if bpf_get_current_uid_gid() as u32 != 0 {
        return 0;
    }
    let mut name = [0u8; NAME];
    // SAFETY: the buffer and its length; a longer name is -E2BIG (not one of ours).
    let len = unsafe {
        helper::bpf_sysctl_get_name(
            ctx.sysctl,
            name.as_mut_ptr().cast(),
            NAME as u64,
            BPF_F_SYSCTL_BASE_NAME as u64,
        )
    };
    if len <= 0 {
        return 0;
    }
    let len = len as usize;
    let mut value = [0u8; 4];
    // SAFETY: as above; a longer value is copied cut (and -E2BIG): its first bytes are enough.
    unsafe {
        helper::bpf_sysctl_get_new_value(ctx.sysctl, value.as_mut_ptr().cast(), value.len() as u64)
    };
    let first = if value[0] == b' ' || value[0] == b'\t' {
        value[1]
    } else {
        value[0]
    };
    if is(&name, len, b"tcp_sack") && first == b'0' {
        SYN_F_SACK
    } else if is(&name, len, b"tcp_window_scaling") && first == b'0' {
        SYN_F_WSCALE
    } else if is(&name, len, b"tcp_ecn") && first == b'0' {
        SYN_F_ECN
    } else if is(&name, len, b"tcp_timestamps") && first != b'2' {
        SYN_F_TIMESTAMPS
    } else {
        0
    }
}

/// `name[..len] == want`, byte by byte (no `memcmp` in BPF).
#[inline(always)]
fn is<const N: usize>(name: &[u8; NAME], len: usize, want: &[u8; N]) -> bool {
    if len != N || N > NAME {
        return false;
    }
    let mut i = 0;
    while i < N {
        if name[i] != want[i] {
            return false;
        }
        i += 1;
    }
    true
}
