//! Counters: what the data path did with each packet.

/// A packet and byte count. Kept per CPU in the maps; user space sums the CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

impl Counter {
    pub fn add(&mut self, other: &Counter) {
        self.packets = self.packets.wrapping_add(other.packets);
        self.bytes = self.bytes.wrapping_add(other.bytes);
    }
}

/// Index into the per-CPU `STATS` array: one entry per decision the XDP program makes.
/// Every packet the program sees increments exactly one of these.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stat {
    /// Not IPv4/IPv6 (ARP, LLDP, …): XDP_PASS.
    PassNotIp = 0,
    /// IP, but not VIP traffic: TCP/UDP to no VIP service, anything else to no VIP address.
    /// XDP_PASS, untouched.
    PassNotVip = 1,
    /// ICMP/ICMPv6 to a VIP address (path MTU discovery, ping), after the deny-list: XDP_PASS.
    PassVipIcmp = 2,
    /// Matched a VIP service and handed to the kernel stack: XDP_PASS.
    PassVip = 3,
    /// Source matched the deny-list, to a VIP address: XDP_DROP.
    DropDenied = 4,
    /// IPv4 or IPv6 fragment to a VIP address: XDP_DROP.
    DropFragment = 5,
    /// A truncated or invalid header (Ethernet, VLAN, IP, TCP, UDP): XDP_DROP.
    DropMalformed = 6,
    /// IPv6 with an extension header (other than a fragment header) to a VIP address: XDP_DROP.
    DropIpv6ExtHeader = 7,
    /// A protocol other than TCP, UDP, ICMP, ICMPv6 to a VIP address: XDP_DROP.
    DropVipProto = 8,
    /// A SYN to a VIP in cookie mode, answered from XDP with a SYN-ACK carrying a SYN cookie:
    /// XDP_TX.
    TxSynCookie = 9,
    /// An ACK to a VIP in cookie mode whose cookie checked out; the kernel makes the
    /// connection: XDP_PASS.
    PassSynCookieAck = 10,
    /// An ACK to a VIP in cookie mode that reached only the listener and whose cookie is wrong:
    /// XDP_DROP.
    DropSynCookieAck = 11,
    /// A SYN over its source's rate limit: XDP_DROP.
    DropSynRate = 12,
    /// A TCP segment (not a SYN) to a VIP in cookie mode with no connection behind it: XDP_DROP.
    DropVipStray = 13,
    /// A SYN to a VIP in cookie mode that XDP could not answer because its IPv4 header has
    /// options (the SYN-ACK is written for a 20-byte header); the kernel answers: XDP_PASS.
    PassSynIpOptions = 14,
    /// A SYN to a VIP in cookie mode to a port nothing listens on; the kernel answers RST:
    /// XDP_PASS.
    PassSynNoListener = 15,
    /// A SYN to a VIP in cookie mode whose 4-tuple already has a socket of its own (TIME-WAIT,
    /// established); the kernel decides: XDP_PASS.
    PassSynNotListener = 16,
    /// A SYN to a VIP in cookie mode for which `bpf_tcp_gen_syncookie` refused a cookie
    /// (`net.ipv4.tcp_syncookies` = 0 or 1 with a calm queue, a full accept queue, …); the kernel
    /// answers (or drops): XDP_PASS.
    PassSynCookieRefused = 17,
    /// A SYN to a VIP in cookie mode whose frame could not grow to the SYN-ACK
    /// (`bpf_xdp_adjust_tail` refused: no tailroom); the kernel answers: XDP_PASS.
    PassSynNoRoom = 18,
}

impl Stat {
    /// Number of entries in `STATS`.
    pub const COUNT: u32 = 19;

    pub const ALL: [Stat; Self::COUNT as usize] = [
        Stat::PassNotIp,
        Stat::PassNotVip,
        Stat::PassVipIcmp,
        Stat::PassVip,
        Stat::DropDenied,
        Stat::DropFragment,
        Stat::DropMalformed,
        Stat::DropIpv6ExtHeader,
        Stat::DropVipProto,
        Stat::TxSynCookie,
        Stat::PassSynCookieAck,
        Stat::DropSynCookieAck,
        Stat::DropSynRate,
        Stat::DropVipStray,
        Stat::PassSynIpOptions,
        Stat::PassSynNoListener,
        Stat::PassSynNotListener,
        Stat::PassSynCookieRefused,
        Stat::PassSynNoRoom,
    ];

    /// Stable snake_case name, used in `weir stats` and its JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Stat::PassNotIp => "pass_not_ip",
            Stat::PassNotVip => "pass_not_vip",
            Stat::PassVipIcmp => "pass_vip_icmp",
            Stat::PassVip => "pass_vip",
            Stat::DropDenied => "drop_denied",
            Stat::DropFragment => "drop_fragment",
            Stat::DropMalformed => "drop_malformed",
            Stat::DropIpv6ExtHeader => "drop_ipv6_ext_header",
            Stat::DropVipProto => "drop_vip_proto",
            Stat::TxSynCookie => "tx_syn_cookie",
            Stat::PassSynCookieAck => "pass_syn_cookie_ack",
            Stat::DropSynCookieAck => "drop_syn_cookie_ack",
            Stat::DropSynRate => "drop_syn_rate",
            Stat::DropVipStray => "drop_vip_stray",
            Stat::PassSynIpOptions => "pass_syn_ip_options",
            Stat::PassSynNoListener => "pass_syn_no_listener",
            Stat::PassSynNotListener => "pass_syn_not_listener",
            Stat::PassSynCookieRefused => "pass_syn_cookie_refused",
            Stat::PassSynNoRoom => "pass_syn_no_room",
        }
    }

    /// The XDP action this decision takes (`true` = pass to the stack).
    pub const fn passes(self) -> bool {
        matches!(
            self,
            Stat::PassNotIp
                | Stat::PassNotVip
                | Stat::PassVipIcmp
                | Stat::PassVip
                | Stat::PassSynCookieAck
                | Stat::PassSynIpOptions
                | Stat::PassSynNoListener
                | Stat::PassSynNotListener
                | Stat::PassSynCookieRefused
                | Stat::PassSynNoRoom
        )
    }

    /// A SYN to a VIP in cookie mode that XDP left to the kernel, each for its reason.
    pub const fn is_syn_fallback(self) -> bool {
        matches!(
            self,
            Stat::PassSynIpOptions
                | Stat::PassSynNoListener
                | Stat::PassSynNotListener
                | Stat::PassSynCookieRefused
                | Stat::PassSynNoRoom
        )
    }

    /// Whether this decision sends the (rewritten) packet back out (XDP_TX).
    pub const fn transmits(self) -> bool {
        matches!(self, Stat::TxSynCookie)
    }

    /// Decisions of the SYN-flood defence (fixtures in `tests/tests/syn_fixtures.rs`).
    pub const fn is_syn_defence(self) -> bool {
        matches!(
            self,
            Stat::TxSynCookie
                | Stat::PassSynCookieAck
                | Stat::DropSynCookieAck
                | Stat::DropSynRate
                | Stat::DropVipStray
        ) || self.is_syn_fallback()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_dense_and_in_index_order() {
        for (i, s) in Stat::ALL.iter().enumerate() {
            assert_eq!(*s as u32, i as u32, "{}", s.name());
        }
    }
}
