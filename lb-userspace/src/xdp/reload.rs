//! A reload of the XDP tier, in place: the program stays attached (no detach, no re-attach) and
//! its maps are rewritten — the VIPs (`[[vip]]`, or the listeners' ports when there is none),
//! the deny-list, the SYN settings — in an order that loses no packet of a kept VIP.

use lb_common::maps::MAX_VIPS;

use super::{Dataplane, ResolvedVip, syn::SynControl, vips};
use crate::config::Config;

/// Applies `cfg`'s VIPs (`"interface"` ones on `addrs`, the interface's addresses now),
/// deny-list and `[syn]` to the running tier; returns the VIPs now in force (ids kept for the VIPs `running` has, `vips::renumber`).
///
/// Order: the counters of ids new VIPs take are zeroed and their SYN flags written first, then
/// the VIP maps (`Dataplane::set_vips`: entries in before the index points at them, removed
/// ones out of the index before the table), then the removed VIPs' SYN flags cleared, then the
/// deny-list.
pub fn apply(
    dp: &mut Dataplane,
    syn: &mut SynControl,
    addrs: &[std::net::IpAddr],
    running: &[ResolvedVip],
    cfg: &Config,
) -> anyhow::Result<Vec<ResolvedVip>> {
    let next = vips::renumber(vips::resolve(&cfg.vip_specs(), addrs), running, MAX_VIPS)
        .map_err(anyhow::Error::msg)?;
    let fresh: Vec<u32> = next
        .iter()
        .filter(|v| !running.iter().any(|r| r.id == v.id && same(r, v)))
        .map(|v| v.id)
        .collect();
    let removed: Vec<u32> = running
        .iter()
        .filter(|r| !next.iter().any(|v| v.id == r.id))
        .map(|r| r.id)
        .collect();
    dp.reset_vip_counters(&fresh)?;
    syn.set_vips(dp, &cfg.syn, &next)?;
    dp.set_vips(&next)?;
    syn.forget(dp, &removed)?;
    dp.set_deny_list(&cfg.deny.prefixes())?;
    for v in next.iter().filter(|v| fresh.contains(&v.id)) {
        tracing::info!(vip = %v.name, id = v.id, "VIP added");
    }
    for r in running.iter().filter(|r| removed.contains(&r.id)) {
        tracing::info!(vip = %r.name, id = r.id, "VIP removed");
    }
    Ok(next)
}

fn same(a: &ResolvedVip, b: &ResolvedVip) -> bool {
    a.address == b.address && a.port == b.port && a.protocol == b.protocol
}
