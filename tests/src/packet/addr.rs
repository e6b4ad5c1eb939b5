//! Address types and the conversions the builder accepts (`&str` literals, std types, arrays).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(format!("bad MAC {s:?}"));
        }
        for (o, p) in out.iter_mut().zip(parts) {
            *o = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC {s:?}"))?;
        }
        Ok(Mac(out))
    }
}

/// Anything the builder accepts as a MAC: `"02:00:00:00:00:01"`, `[u8; 6]`, [`Mac`].
/// A malformed literal panics (it is a bug in the test, not input).
pub trait IntoMac {
    /// The conversion.
    fn into_mac(self) -> Mac;
}
impl IntoMac for Mac {
    fn into_mac(self) -> Mac {
        self
    }
}
impl IntoMac for [u8; 6] {
    fn into_mac(self) -> Mac {
        Mac(self)
    }
}
impl IntoMac for &str {
    fn into_mac(self) -> Mac {
        self.parse().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Anything the builder accepts as an IPv4 address: `"10.0.0.1"`, `[u8; 4]`, `Ipv4Addr`.
pub trait IntoV4 {
    /// The conversion (panics on a malformed literal).
    fn into_v4(self) -> Ipv4Addr;
}
impl IntoV4 for Ipv4Addr {
    fn into_v4(self) -> Ipv4Addr {
        self
    }
}
impl IntoV4 for [u8; 4] {
    fn into_v4(self) -> Ipv4Addr {
        self.into()
    }
}
impl IntoV4 for &str {
    fn into_v4(self) -> Ipv4Addr {
        self.parse()
            .unwrap_or_else(|_| panic!("bad IPv4 address {self:?}"))
    }
}

/// Anything the builder accepts as an IPv6 address: `"fc00::1"`, `[u8; 16]`, `Ipv6Addr`.
pub trait IntoV6 {
    /// The conversion (panics on a malformed literal).
    fn into_v6(self) -> Ipv6Addr;
}
impl IntoV6 for Ipv6Addr {
    fn into_v6(self) -> Ipv6Addr {
        self
    }
}
impl IntoV6 for [u8; 16] {
    fn into_v6(self) -> Ipv6Addr {
        self.into()
    }
}
impl IntoV6 for &str {
    fn into_v6(self) -> Ipv6Addr {
        self.parse()
            .unwrap_or_else(|_| panic!("bad IPv6 address {self:?}"))
    }
}
