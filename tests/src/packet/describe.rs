//! Human-readable views of a frame: a one-line summary, a field list, and field-by-field
//! diffs for assertions.

use std::fmt::Write;

use super::parse::{Frame, IpInfo, L4Info};
use super::tcp_opt::flags;

fn ok(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "ok",
        Some(false) => "BAD",
        None => "unchecked",
    }
}

impl Frame {
    /// Every field as `(name, value)`, in header order: `eth.src`, `vlan0.vid`, `ip.ttl`,
    /// `tcp.flags`, `tcp.options`, `tcp.csum` ("0x1a2b ok" / "0x1a2b BAD"), `payload.len`…
    pub fn fields(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, val: String| v.push((k.to_string(), val));
        put("eth.dst", self.eth.dst.to_string());
        put("eth.src", self.eth.src.to_string());
        for (i, t) in self.eth.vlans.iter().enumerate() {
            put(&format!("vlan{i}.tpid"), format!("{:#06x}", t.tpid));
            put(&format!("vlan{i}.vid"), t.vid.to_string());
            put(&format!("vlan{i}.pcp"), t.pcp.to_string());
        }
        put("eth.type", format!("{:#06x}", self.eth.ethertype));
        match &self.ip {
            Some(IpInfo::V4(h)) => {
                put("ip.src", h.src.to_string());
                put("ip.dst", h.dst.to_string());
                put("ip.ihl", h.ihl.to_string());
                put("ip.tos", format!("{:#04x}", h.tos));
                put("ip.len", h.total_len.to_string());
                put("ip.id", h.id.to_string());
                put(
                    "ip.flags",
                    format!(
                        "{}{}",
                        if h.df { "DF" } else { "" },
                        if h.mf { "MF" } else { "" }
                    ),
                );
                put("ip.frag", h.frag_offset.to_string());
                put("ip.ttl", h.ttl.to_string());
                put("ip.proto", h.proto.to_string());
                put(
                    "ip.csum",
                    format!("{:#06x} {}", h.checksum, ok(Some(h.checksum_ok))),
                );
                if !h.options.is_empty() {
                    put("ip.options", format!("{:02x?}", h.options));
                }
            }
            Some(IpInfo::V6(h)) => {
                put("ip.src", h.src.to_string());
                put("ip.dst", h.dst.to_string());
                put("ip.tclass", format!("{:#04x}", h.traffic_class));
                put("ip.flow", h.flow_label.to_string());
                put("ip.plen", h.payload_len.to_string());
                put("ip.nh", h.next_header.to_string());
                put("ip.ttl", h.hop_limit.to_string());
                for (i, e) in h.ext.iter().enumerate() {
                    let frag = e
                        .fragment
                        .map(|(o, m, id)| format!(" frag off {o} M {m} id {id}"))
                        .unwrap_or_default();
                    put(
                        &format!("ext{i}"),
                        format!("kind {} nh {} len {}{frag}", e.kind, e.next_header, e.len),
                    );
                }
                put("ip.proto", h.upper_proto.to_string());
            }
            None => {}
        }
        match &self.l4 {
            Some(L4Info::Tcp(t)) => {
                put("tcp.sport", t.sport.to_string());
                put("tcp.dport", t.dport.to_string());
                put("tcp.seq", t.seq.to_string());
                put("tcp.ack", t.ack.to_string());
                put("tcp.flags", flags::render(t.flags));
                put("tcp.win", t.window.to_string());
                put("tcp.doff", t.data_offset.to_string());
                let o: Vec<String> = t.options.iter().map(|o| o.to_string()).collect();
                put("tcp.options", o.join(","));
                put(
                    "tcp.csum",
                    format!("{:#06x} {}", t.checksum, ok(t.checksum_ok)),
                );
            }
            Some(L4Info::Udp(u)) => {
                put("udp.sport", u.sport.to_string());
                put("udp.dport", u.dport.to_string());
                put("udp.len", u.len.to_string());
                put(
                    "udp.csum",
                    format!("{:#06x} {}", u.checksum, ok(u.checksum_ok)),
                );
            }
            Some(L4Info::Icmp(i)) => {
                let n = if i.v6 { "icmp6" } else { "icmp" };
                put(&format!("{n}.type"), i.typ.to_string());
                put(&format!("{n}.code"), i.code.to_string());
                put(&format!("{n}.rest"), format!("{:02x?}", i.rest));
                put(
                    &format!("{n}.csum"),
                    format!("{:#06x} {}", i.checksum, ok(i.checksum_ok)),
                );
            }
            None => {}
        }
        put("payload.len", self.payload.len().to_string());
        v
    }

    /// One line, tcpdump-like:
    /// `02:00:00:00:00:01 > 02:00:00:00:00:02 vlan 10 | 10.0.0.1 > 10.0.0.2 ttl 64 id 0 [ok] | tcp 1000 > 80 [S] seq 1 ack 0 win 65535 [mss 1460] [ok] | 0 bytes`
    pub fn summary(&self) -> String {
        let mut s = format!("{} > {}", self.eth.src, self.eth.dst);
        for t in &self.eth.vlans {
            let _ = write!(
                s,
                " vlan {}{}",
                t.vid,
                if t.tpid == 0x88a8 { "(ad)" } else { "" }
            );
        }
        match &self.ip {
            Some(IpInfo::V4(h)) => {
                let _ = write!(
                    s,
                    " | {} > {} ttl {} id {} tos {:#x}",
                    h.src, h.dst, h.ttl, h.id, h.tos
                );
                if h.df {
                    s.push_str(" DF");
                }
                if h.mf || h.frag_offset != 0 {
                    let _ = write!(s, " frag {}{}", h.frag_offset, if h.mf { "+" } else { "" });
                }
                let _ = write!(s, " [{}]", ok(Some(h.checksum_ok)));
            }
            Some(IpInfo::V6(h)) => {
                let _ = write!(
                    s,
                    " | {} > {} hlim {} tc {:#x}",
                    h.src, h.dst, h.hop_limit, h.traffic_class
                );
                for e in &h.ext {
                    let _ = write!(s, " ext{}", e.kind);
                }
            }
            None => {
                let _ = write!(s, " type {:#06x}", self.eth.ethertype);
            }
        }
        match &self.l4 {
            Some(L4Info::Tcp(t)) => {
                let o: Vec<String> = t.options.iter().map(|o| o.to_string()).collect();
                let _ = write!(
                    s,
                    " | tcp {} > {} [{}] seq {} ack {} win {} [{}] [{}]",
                    t.sport,
                    t.dport,
                    flags::render(t.flags),
                    t.seq,
                    t.ack,
                    t.window,
                    o.join(","),
                    ok(t.checksum_ok)
                );
            }
            Some(L4Info::Udp(u)) => {
                let _ = write!(
                    s,
                    " | udp {} > {} len {} [{}]",
                    u.sport,
                    u.dport,
                    u.len,
                    ok(u.checksum_ok)
                );
            }
            Some(L4Info::Icmp(i)) => {
                let n = if i.v6 { "icmp6" } else { "icmp" };
                let _ = write!(
                    s,
                    " | {n} type {} code {} [{}]",
                    i.typ,
                    i.code,
                    ok(i.checksum_ok)
                );
            }
            None => {}
        }
        let _ = write!(s, " | {} bytes", self.payload.len());
        s
    }
}

/// A one-line description of any byte string: the [summary](Frame::summary), or the parse
/// error and the frame's length.
pub fn describe(bytes: &[u8]) -> String {
    match Frame::parse(bytes) {
        Ok(f) => f.summary(),
        Err(e) => format!("<unparseable {} bytes: {e}>", bytes.len()),
    }
}

/// Field-by-field differences between two frames, one line per differing field
/// (`ip.ttl: expected 64, got 63`); also payload bytes. Empty when the frames are equal.
pub fn diff(expected: &[u8], actual: &[u8]) -> Vec<String> {
    let (e, a) = match (Frame::parse(expected), Frame::parse(actual)) {
        (Ok(e), Ok(a)) => (e, a),
        (e, a) => {
            if expected == actual {
                return vec![];
            }
            let show =
                |r: Result<Frame, _>| r.map(|f| f.summary()).unwrap_or_else(|e| format!("<{e}>"));
            return vec![format!("frame: expected {}, got {}", show(e), show(a))];
        }
    };
    let (ef, af) = (e.fields(), a.fields());
    let mut out = Vec::new();
    for (k, ev) in &ef {
        match af.iter().find(|(ak, _)| ak == k) {
            Some((_, av)) if av == ev => {}
            Some((_, av)) => out.push(format!("{k}: expected {ev}, got {av}")),
            None => out.push(format!("{k}: expected {ev}, missing")),
        }
    }
    for (k, av) in &af {
        if !ef.iter().any(|(ek, _)| ek == k) {
            out.push(format!("{k}: unexpected {av}"));
        }
    }
    if e.payload != a.payload && e.payload.len() == a.payload.len() {
        let at = e
            .payload
            .iter()
            .zip(&a.payload)
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        out.push(format!("payload: first difference at byte {at}"));
    }
    out
}

/// Panics with a readable field-by-field diff (and both summaries) unless the frames are equal
/// byte for byte.
#[track_caller]
pub fn assert_frames_eq(expected: &[u8], actual: &[u8]) {
    if expected == actual {
        return;
    }
    let mut d = diff(expected, actual);
    if d.is_empty() {
        d.push("frames differ in bytes not covered by decoded fields (e.g. link padding)".into());
    }
    panic!(
        "frames differ:\n  expected: {}\n  actual:   {}\n  {}",
        describe(expected),
        describe(actual),
        d.join("\n  ")
    );
}
