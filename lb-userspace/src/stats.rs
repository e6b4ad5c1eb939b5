//! `weir stats` and the daemon's periodic line: counter totals and per-second rates.

use std::{fmt::Write as _, time::Duration};

use anyhow::Context as _;
use aya::maps::{Map, MapData};
use lb_common::{Counter, Stat, proto, syn::SynCounter};
use serde_json::{Value, json};

use crate::xdp::{Counters, pins};

/// The counters of the daemon attached to `iface`, from its pinned maps (`weir stats`, `weir top`).
/// The daemon is the one of this network namespace's `iface` (`crate::iface_id`).
pub fn read_pinned(iface: &str) -> anyhow::Result<Counters> {
    let id = crate::iface_id::IfaceId::here(iface)?;
    let dir = pins::dir_for(&id);
    if !dir.exists() {
        match (pins::lock_holder(&id), pins::legacy_holder(iface)) {
            (Some(pid), _) => anyhow::bail!("{}", pins::pins_not_visible(&id, pid)),
            (None, Some(pid)) => anyhow::bail!("{}", pins::legacy_running(iface, pid)),
            (None, None) => anyhow::bail!(
                "no weir daemon is running on `{iface}` of this network namespace (no pins in {})",
                dir.display()
            ),
        }
    }
    let open = |name: &str| {
        MapData::from_pin(dir.join(name))
            .with_context(|| format!("opening {}/{name}", dir.display()))
    };
    let stats = Map::PerCpuArray(open(lb_common::maps::STATS)?);
    let vip_stats = Map::PerCpuArray(open(lb_common::maps::VIP_STATS)?);
    let vips = Map::HashMap(open(lb_common::maps::VIPS)?);
    let mut counters = Counters::read(&stats, &vip_stats, &vips)?;
    counters.syn = crate::xdp::syn::read_pinned(&dir, &counters.tcp_vip_ids())?;
    Ok(counters)
}

fn rate(now: u64, before: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    now.saturating_sub(before) as f64 / secs
}

fn counter_json(now: Counter, before: Counter, secs: f64) -> Value {
    json!({
        "packets": now.packets,
        "bytes": now.bytes,
        "pps": rate(now.packets, before.packets, secs),
        "bps": rate(now.bytes, before.bytes, secs) * 8.0,
    })
}

fn proto_name(p: u8) -> &'static str {
    match p {
        proto::TCP => "tcp",
        proto::UDP => "udp",
        _ => "?",
    }
}

/// One JSON object: totals and rates over `elapsed` between two snapshots.
/// What `weir stats` says when no interface has weir's pinned maps: an L7-only daemon (its
/// default admin socket here, or a `weir run` process: pids `daemons`, whatever its socket)
/// has no XDP tier, so no L4 figures; else no daemon runs at all.
pub fn no_pins(default_socket: bool, daemons: &[u32]) -> String {
    let root = crate::xdp::pins::BPFFS_ROOT;
    if default_socket || !daemons.is_empty() {
        let pids = match daemons {
            [] => String::new(),
            [one] => format!(" (pid {one})"),
            many => format!(
                " (pids {})",
                many.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        format!(
            "weir is running without the XDP tier{pids}: no pinned maps under {root}, so no L4 \
             statistics (`weir stats` shows the XDP counters); the L7 figures are in `weir status`, \
             `weir top --once` and the metrics page (`[metrics] address`)"
        )
    } else {
        format!("no weir daemon is running (no `weir run` process, no pinned maps under {root})")
    }
}

pub fn report(iface: &str, before: &Counters, now: &Counters, elapsed: Duration) -> Value {
    let secs = elapsed.as_secs_f64();
    let mut stats = serde_json::Map::new();
    for s in Stat::ALL {
        stats.insert(
            s.name().into(),
            counter_json(now.stat(s), before.stat(s), secs),
        );
    }
    let vips: Vec<Value> = now
        .vips
        .iter()
        .map(|v| {
            let prev = before
                .vips
                .iter()
                .find(|p| p.id == v.id)
                .map_or(Counter::default(), |p| p.counter);
            let mut o = counter_json(v.counter, prev, secs);
            let o = o.as_object_mut().expect("object");
            o.insert("id".into(), v.id.into());
            o.insert("address".into(), v.address.to_string().into());
            o.insert("port".into(), v.port.into());
            o.insert("protocol".into(), proto_name(v.protocol).into());
            if let Some(syn) = syn_json(before, now, v.id, secs) {
                o.insert("syn".into(), syn);
            }
            Value::Object(o.clone())
        })
        .collect();
    json!({
        "interface": iface,
        "interval_seconds": secs,
        "packets_total": now.total_packets(),
        "stats": stats,
        "vips": vips,
    })
}

/// A VIP's SYN defence: mode, whether cookies are on now, counters and their rates.
fn syn_json(before: &Counters, now: &Counters, id: u32, secs: f64) -> Option<Value> {
    let cur = now.syn.iter().find(|s| s.id == id)?;
    let prev = before.syn.iter().find(|s| s.id == id);
    let mut o = serde_json::Map::new();
    o.insert("mode".into(), cur.mode.name().into());
    o.insert("cookies".into(), cur.cookies.into());
    for c in SynCounter::ALL {
        let was = prev.map_or(0, |p| p.get(c));
        o.insert(c.name().into(), cur.get(c).into());
        o.insert(
            format!("{}_per_second", c.name()),
            rate(cur.get(c), was, secs).into(),
        );
    }
    Some(Value::Object(o))
}

/// The daemon whose pins are read is gone (killed with SIGKILL: its lock is free, its pins and
/// note stale): the report says XDP is not attached, drops what the note claims of a live
/// daemon, and says since when the pins are there. `made`: the pin directory's time.
pub fn mark_gone(report: &mut Value, iface: &str, made: Option<std::time::SystemTime>) -> String {
    let since = made.map_or_else(|| "an unknown time".to_string(), lb_l7::access_log::rfc3339);
    let stem = crate::iface_id::IfaceId::here(iface)
        .map_or_else(|_| format!("{iface}:<netns inode>"), |id| id.stem());
    let why = format!(
        "the weir daemon on `{iface}` is gone (no process holds {}/{stem}.lock; killed without \
         its cleanup?): XDP is not attached by weir, and the counters are its stale pins' \
         (made {since}); the next `weir run --iface {iface}` replaces them",
        pins::LOCK_ROOT
    );
    if let Some(host) = report.get_mut("host").and_then(Value::as_object_mut) {
        for k in ["veth_peer", "syn_ack", "cookies_refused"] {
            host.remove(k);
        }
        host.insert("xdp_attached".into(), false.into());
        host.insert("daemon".into(), "gone".into());
        host.insert("stale_pins_since".into(), since.into());
    } else {
        report["host"] =
            json!({"xdp_attached": false, "daemon": "gone", "stale_pins_since": since});
    }
    why
}

/// A human table of the same report.
pub fn table(report: &Value) -> String {
    let mut out = String::new();
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let _ = writeln!(
        out,
        "weir on {} (rates over {:.1} s)",
        report["interface"].as_str().unwrap_or("?"),
        num(report, "interval_seconds")
    );
    let _ = writeln!(
        out,
        "{:<24} {:>14} {:>16} {:>12} {:>12}",
        "counter", "packets", "bytes", "pkt/s", "Mbit/s"
    );
    if let Some(stats) = report["stats"].as_object() {
        for s in Stat::ALL {
            let c = &stats[s.name()];
            let _ = writeln!(
                out,
                "{:<24} {:>14} {:>16} {:>12.0} {:>12.3}",
                s.name(),
                num(c, "packets"),
                num(c, "bytes"),
                num(c, "pps"),
                num(c, "bps") / 1e6
            );
        }
    }
    if let Some(vips) = report["vips"].as_array() {
        let _ = writeln!(
            out,
            "\n{:<32} {:>14} {:>16} {:>12} {:>12}",
            "vip", "packets", "bytes", "pkt/s", "Mbit/s"
        );
        for v in vips {
            let name = format!(
                "{}:{}/{}",
                v["address"].as_str().unwrap_or("?"),
                v["port"],
                v["protocol"].as_str().unwrap_or("?")
            );
            let _ = writeln!(
                out,
                "{:<32} {:>14} {:>16} {:>12.0} {:>12.3}",
                name,
                num(v, "packets"),
                num(v, "bytes"),
                num(v, "pps"),
                num(v, "bps") / 1e6
            );
        }
    }
    syn_fallbacks(&mut out, report);
    if let Some(v) = report["host"]["tcp_syncookies"].as_str() {
        let _ = writeln!(
            out,
            "net.ipv4.tcp_syncookies = {v} (found rewritten and re-asserted by weir {} times)",
            report["host"]["syncookies_reasserted"]
        );
    }
    if let Some(promise) = report["host"]["syn_ack"].as_str() {
        let _ = writeln!(out, "SYN-ACKs answered from XDP promise: {promise}");
    }
    if let Some(peer) = report["host"]["veth_peer"].as_str() {
        let _ = writeln!(
            out,
            "veth peer (takes the SYN-ACKs sent with XDP_TX): {peer}"
        );
    }
    if let Some(why) = report["host"]["cookies_refused"].as_str() {
        let _ = writeln!(out, "SYN COOKIES REFUSED on this interface: {why}");
    }
    if report["host"]["daemon"] == "gone" {
        let _ = writeln!(
            out,
            "XDP NOT ATTACHED: the daemon is gone (stale pins since {})",
            report["host"]["stale_pins_since"].as_str().unwrap_or("?")
        );
    } else if report["host"]["xdp_attached"].as_bool() == Some(false) {
        let _ = writeln!(
            out,
            "XDP NOT ATTACHED: the interface is gone (deleted); weir attaches again when one of its name is back"
        );
    }
    if let Some(n) = report["host"]["xdp_reattached"].as_u64().filter(|n| *n > 0) {
        let _ = writeln!(
            out,
            "XDP attached again to an interface made anew under its name: {n} times"
        );
    }
    if let Some(n) = report["host"]["xdp_tx_errors"].as_u64().filter(|n| *n > 0) {
        let _ = writeln!(
            out,
            "SYN-ACKs dropped by the driver (XDP_TX errors) while cookies were on: {n}"
        );
    }
    if let Some(n) = report["host"]["syn_cookie_trials"]
        .as_u64()
        .filter(|n| *n > 0)
    {
        let _ = writeln!(
            out,
            "SYN cookies tried again after SYN-ACKs were dropped: {n} times"
        );
    }
    if let Some(vips) = report["vips"].as_array() {
        let with_syn: Vec<&Value> = vips.iter().filter(|v| v.get("syn").is_some()).collect();
        if !with_syn.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<32} {:>6} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
                "vip (SYN defence)",
                "mode",
                "cookies",
                "syn/s",
                "cookies/s",
                "ack ok",
                "ack bad",
                "limited",
                "stray"
            );
        }
        for v in with_syn {
            let s = &v["syn"];
            let name = format!("{}:{}", v["address"].as_str().unwrap_or("?"), v["port"]);
            let _ = writeln!(
                out,
                "{:<32} {:>6} {:>7} {:>10.0} {:>10.0} {:>10} {:>10} {:>10} {:>8}",
                name,
                s["mode"].as_str().unwrap_or("?"),
                if s["cookies"].as_bool() == Some(true) {
                    "on"
                } else {
                    "off"
                },
                num(s, "syn_seen_per_second"),
                num(s, "cookies_sent_per_second"),
                // As text: a JSON value's Display ignores the width.
                s["cookie_acks_valid"].to_string(),
                s["cookie_acks_invalid"].to_string(),
                s["rate_limited"].to_string(),
                s["stray"].to_string(),
            );
        }
    }
    out
}

/// One line under the counters when SYNs to VIPs in cookie mode went to the kernel: how many a
/// second for each reason (the `pass_syn_*` rows), so the reason stands out.
fn syn_fallbacks(out: &mut String, report: &Value) {
    let stats = &report["stats"];
    let reasons: Vec<String> = Stat::ALL
        .into_iter()
        .filter(|s| s.is_syn_fallback())
        .filter(|s| stats[s.name()]["packets"].as_u64().unwrap_or(0) > 0)
        .map(|s| {
            let pps = stats[s.name()]["pps"].as_f64().unwrap_or(0.0);
            format!("{} {pps:.0}/s", s.name().trim_start_matches("pass_syn_"))
        })
        .collect();
    if !reasons.is_empty() {
        let _ = writeln!(
            out,
            "SYNs left to the kernel (not answered from XDP): {}",
            reasons.join(", ")
        );
    }
}

/// The daemon's one-line summary.
pub fn line(report: &Value) -> String {
    let s = &report["stats"];
    let pps = |k: &str| s[k]["pps"].as_f64().unwrap_or(0.0);
    let dropped: f64 = Stat::ALL
        .iter()
        .filter(|st| !st.passes())
        .map(|st| pps(st.name()))
        .sum();
    format!(
        "{:.0} pkt/s seen: vip {:.0}/s, not vip {:.0}/s, dropped {:.0}/s (denied {:.0}/s, malformed {:.0}/s)",
        Stat::ALL.iter().map(|st| pps(st.name())).sum::<f64>(),
        pps(Stat::PassVip.name()),
        pps(Stat::PassNotVip.name()),
        dropped,
        pps(Stat::DropDenied.name()),
        pps(Stat::DropMalformed.name()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_deltas_over_time() {
        let before = Counters {
            stats: vec![Counter::default(); Stat::COUNT as usize],
            ..Default::default()
        };
        let mut now = before.clone();
        now.stats[Stat::PassVip as usize] = Counter {
            packets: 200,
            bytes: 20_000,
        };
        let r = report("eth0", &before, &now, Duration::from_secs(2));
        assert_eq!(r["stats"]["pass_vip"]["pps"], 100.0);
        assert_eq!(r["stats"]["pass_vip"]["bps"], 80_000.0);
        assert_eq!(r["packets_total"], 200);
        assert!(table(&r).contains("pass_vip"));
        assert!(!table(&r).contains("left to the kernel"));
        assert!(line(&r).starts_with("100 pkt/s"));
    }

    #[test]
    fn syn_fallbacks_show_by_reason() {
        let before = Counters {
            stats: vec![Counter::default(); Stat::COUNT as usize],
            ..Default::default()
        };
        let mut now = before.clone();
        now.stats[Stat::PassSynNoRoom as usize].packets = 50;
        now.stats[Stat::PassSynCookieRefused as usize].packets = 10;
        let r = report("eth0", &before, &now, Duration::from_secs(1));
        assert_eq!(r["stats"]["pass_syn_no_room"]["packets"], 50);
        assert_eq!(r["stats"]["pass_syn_cookie_refused"]["pps"], 10.0);
        let t = table(&r);
        assert!(
            t.contains(
                "left to the kernel (not answered from XDP): cookie_refused 10/s, no_room 50/s"
            ),
            "{t}"
        );
    }
}

#[cfg(test)]
mod gone_tests {
    use super::*;

    /// A daemon killed with SIGKILL left its note ("attached", the veth peer's pass program) and
    /// pins: the report says XDP is not attached and the daemon gone, never what the note says.
    #[test]
    fn a_gone_daemons_report_claims_nothing_of_its_note() {
        let c = Counters {
            stats: vec![Counter::default(); Stat::COUNT as usize],
            ..Default::default()
        };
        let mut r = report("eth0", &c, &c, Duration::from_secs(1));
        r["host"] = json!({"xdp_attached": true, "veth_peer": "p0, with weir's pass program",
                           "syn_ack": "sack mss=1460/1440", "tcp_syncookies": "1"});
        let made = std::time::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let why = mark_gone(&mut r, "eth0", Some(made));
        assert!(why.contains("the weir daemon on `eth0` is gone"), "{why}");
        assert_eq!(r["host"]["xdp_attached"], false);
        assert_eq!(r["host"]["daemon"], "gone");
        assert!(r["host"].get("veth_peer").is_none() && r["host"].get("syn_ack").is_none());
        let t = table(&r);
        assert!(
            t.contains("XDP NOT ATTACHED: the daemon is gone (stale pins since 2026-"),
            "{t}"
        );
        assert!(
            !t.contains("veth peer") && !t.contains("interface is gone"),
            "{t}"
        );
    }
}

#[cfg(test)]
mod syn_tests {
    use super::*;
    use crate::xdp::{VipCounter, syn::VipSyn};
    use lb_common::syn::SynMode;

    #[test]
    fn vips_show_their_syn_mode_and_counter_rates() {
        let vip = VipCounter {
            id: 3,
            address: "10.0.0.1".parse().unwrap(),
            port: 80,
            protocol: proto::TCP,
            counter: Counter::default(),
        };
        let syn = |sent: u64, cookies: bool| VipSyn {
            id: 3,
            mode: SynMode::Auto,
            cookies,
            counts: [0, sent, 0, 0, 0, 0, 0, 0],
        };
        let before = Counters {
            stats: vec![Counter::default(); Stat::COUNT as usize],
            vips: vec![vip.clone()],
            syn: vec![syn(100, false)],
        };
        let now = Counters {
            syn: vec![syn(1100, true)],
            ..before.clone()
        };
        let r = report("eth0", &before, &now, Duration::from_secs(1));
        let s = &r["vips"][0]["syn"];
        assert_eq!(s["mode"], "auto");
        assert_eq!(s["cookies"], true);
        assert_eq!(s["cookies_sent"], 1100);
        assert_eq!(s["cookies_sent_per_second"], 1000.0);
        let t = table(&r);
        assert!(t.contains("SYN defence") && t.contains(" auto "), "{t}");
        assert!(!t.contains("tcp_syncookies"), "{t}");
        // Every column under its heading: the row as wide as the header.
        let lines: Vec<&str> = t
            .lines()
            .skip_while(|l| !l.contains("SYN defence"))
            .collect();
        assert_eq!(lines[0].len(), lines[1].len(), "{t}");
    }

    #[test]
    fn the_host_syncookies_line_shows_value_and_reassertions() {
        let c = Counters {
            stats: vec![Counter::default(); Stat::COUNT as usize],
            ..Default::default()
        };
        let mut r = report("eth0", &c, &c, Duration::from_secs(1));
        r["host"] = json!({"tcp_syncookies": "2", "syncookies_reasserted": 3});
        let t = table(&r);
        assert!(!t.contains("REFUSED") && !t.contains("XDP_TX"), "{t}");
        assert!(
            !t.contains("XDP NOT ATTACHED")
                && !t.contains("made anew")
                && !t.contains("tried again"),
            "{t}"
        );
        r["host"]["cookies_refused"] = json!("its veth peer is unreachable");
        r["host"]["xdp_tx_errors"] = json!(70);
        r["host"]["xdp_attached"] = json!(false);
        r["host"]["syn_ack"] = json!("sack wscale=7 mss=1460/1440");
        r["host"]["xdp_reattached"] = json!(2);
        r["host"]["syn_cookie_trials"] = json!(4);
        r["host"]["veth_peer"] = json!("p0, with weir's pass program");
        let refused = table(&r);
        assert!(
            refused.contains("XDP NOT ATTACHED: the interface is gone")
                && refused.contains("XDP promise: sack wscale=7 mss=1460/1440")
                && refused.contains("with XDP_TX): p0, with weir's pass program")
                && refused.contains("under its name: 2 times"),
            "{refused}"
        );
        assert!(
            refused.contains("SYN COOKIES REFUSED on this interface: its veth peer is unreachable")
                && refused.contains("(XDP_TX errors) while cookies were on: 70")
                && refused.contains("tried again after SYN-ACKs were dropped: 4 times"),
            "{refused}"
        );
        assert!(
            t.contains(
                "net.ipv4.tcp_syncookies = 2 (found rewritten and re-asserted by weir 3 times)"
            ),
            "{t}"
        );
    }
}

#[cfg(test)]
mod no_pins_tests {
    use super::no_pins;

    /// An L7-only daemon on a socket of its own (`--socket`, `[admin] socket`): `weir stats`
    /// said "no weir daemon is running" while `weir status --socket` showed it.
    #[test]
    fn an_l7_only_daemon_is_named_not_denied() {
        for (socket, pids) in [
            (false, &[4242u32][..]),
            (true, &[][..]),
            (false, &[1, 2][..]),
        ] {
            let m = no_pins(socket, pids);
            assert!(m.starts_with("weir is running without the XDP tier"), "{m}");
            assert!(!m.contains("no weir daemon"), "{m}");
            assert!(
                m.contains("weir status") && m.contains("metrics page"),
                "{m}"
            );
        }
        assert!(no_pins(false, &[4242]).contains("(pid 4242)"));
        assert!(no_pins(false, &[1, 2]).contains("(pids 1, 2)"));
        let none = no_pins(false, &[]);
        assert!(none.starts_with("no weir daemon is running"), "{none}");
    }
}
