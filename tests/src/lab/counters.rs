//! Absolute SNMP/netstat counters of one namespace, named like `nstat` names them
//! (`TcpExtSyncookiesSent`, `IpInReceives`, `Ip6InReceives`, `UdpInDatagrams`…).
//!
//! Read straight from `/proc/thread-self/net/{snmp,netstat,snmp6}` while the thread is inside
//! the namespace: `nstat`'s history file is shared between namespaces, so its deltas lie.

use std::collections::BTreeMap;
use std::fmt;

/// A snapshot of counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters(pub BTreeMap<String, i64>);

impl Counters {
    /// The counter's value, 0 when the kernel does not have it.
    pub fn get(&self, name: &str) -> i64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// Counters that changed since `earlier`, as `self - earlier`.
    pub fn delta(&self, earlier: &Counters) -> Counters {
        Counters(
            self.0
                .iter()
                .filter_map(|(k, v)| {
                    let d = v - earlier.get(k);
                    (d != 0).then(|| (k.clone(), d))
                })
                .collect(),
        )
    }

    /// Parses the two-line-per-group format of `/proc/net/snmp` and `/proc/net/netstat`
    /// (`TcpExt: A B\nTcpExt: 1 2`) and the `name value` lines of `/proc/net/snmp6`.
    pub fn parse_into(&mut self, text: &str) {
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let names: Vec<&str> = lines[i].split_whitespace().collect();
            match names.first() {
                Some(first) if first.ends_with(':') && i + 1 < lines.len() => {
                    let prefix = first.trim_end_matches(':');
                    let values: Vec<&str> = lines[i + 1].split_whitespace().collect();
                    for (n, v) in names.iter().zip(&values).skip(1) {
                        if let Ok(v) = v.parse() {
                            self.0.insert(format!("{prefix}{n}"), v);
                        }
                    }
                    i += 2;
                }
                Some(name) if names.len() == 2 => {
                    if let Ok(v) = names[1].parse() {
                        self.0.insert(name.to_string(), v);
                    }
                    i += 1;
                }
                _ => i += 1,
            }
        }
    }

    /// Reads the counters of the namespace the current thread is in.
    pub fn read_current() -> std::io::Result<Counters> {
        let mut c = Counters::default();
        for f in ["snmp", "netstat", "snmp6"] {
            match std::fs::read_to_string(format!("/proc/thread-self/net/{f}")) {
                Ok(t) => c.parse_into(&t),
                Err(e) if f == "snmp6" && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(c)
    }
}

impl fmt::Display for Counters {
    /// The non-zero counters, one `name value` per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in self.0.iter().filter(|(_, v)| **v != 0) {
            writeln!(f, "{k} {v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_formats() {
        let mut c = Counters::default();
        c.parse_into(
            "Tcp: RtoAlgorithm MaxConn ActiveOpens\nTcp: 1 -1 7\nUdp: InDatagrams\nUdp: 3\n",
        );
        c.parse_into("TcpExt: SyncookiesSent ListenDrops\nTcpExt: 5 0\n");
        c.parse_into("Ip6InReceives                   \t12\nIp6InHdrErrors 0\n");
        assert_eq!(c.get("TcpActiveOpens"), 7);
        assert_eq!(c.get("TcpMaxConn"), -1);
        assert_eq!(c.get("UdpInDatagrams"), 3);
        assert_eq!(c.get("TcpExtSyncookiesSent"), 5);
        assert_eq!(c.get("Ip6InReceives"), 12);
        assert_eq!(c.get("Nope"), 0);
        let mut later = c.clone();
        later.0.insert("TcpActiveOpens".into(), 9);
        assert_eq!(
            later.delta(&c).0.into_iter().collect::<Vec<_>>(),
            [("TcpActiveOpens".to_string(), 2)]
        );
    }
}
