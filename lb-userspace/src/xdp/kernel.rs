//! The running kernel against what the XDP tier needs, checked before anything is loaded so an
//! old kernel gets one clear sentence instead of a verifier log about an unknown helper.
//!
//! The floor is the newest helper weir's eBPF objects call (`llvm-objdump -d` on the objects
//! lists them as `call N`): `bpf_xdp_load_bytes` (helper 189, Linux 5.18) in the XDP program.
//! The others are older (`bpf_ktime_get_coarse_ns` 5.11, `bpf_tcp_gen_syncookie` 5.3,
//! `bpf_skc_lookup_tcp` 5.2, `bpf_sk_select_reuseport` 4.19). The L7 workers alone need no
//! floor of their own; moving a dead worker's queued connections to the live ones
//! (`net.ipv4.tcp_migrate_req`) needs 5.14, and without it the supervisor says so and the queue
//! waits for the restart.

use std::fmt;

/// A kernel release's major and minor numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The oldest kernel weir's XDP program loads on.
pub const XDP_MIN: Version = Version {
    major: 5,
    minor: 18,
};

#[derive(Debug, thiserror::Error)]
#[error(
    "weir's XDP program needs Linux >= {XDP_MIN} (it calls bpf_xdp_load_bytes, new in 5.18); \
     this kernel is {release}. Upgrade the kernel, or run the L7 workers alone (weir run without \
     --iface)"
)]
pub struct TooOld {
    pub release: String,
}

impl Version {
    /// `6.18.0-1-amd64` → 6.18; `None` when the release does not start with two numbers.
    pub fn parse(release: &str) -> Option<Version> {
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Version { major, minor })
    }
}

/// The running kernel's release string (`uname -r`), empty if unreadable.
pub fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_string())
        .unwrap_or_default()
}

/// Whether `release` can run the XDP program. A release that does not parse is let through: the
/// load then fails with the kernel's own reason.
pub fn check_xdp(release: &str) -> Result<(), TooOld> {
    match Version::parse(release) {
        Some(v) if v < XDP_MIN => Err(TooOld {
            release: release.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse_to_major_and_minor() {
        let v = |major, minor| Some(Version { major, minor });
        assert_eq!(Version::parse("6.18.0-1-amd64"), v(6, 18));
        assert_eq!(Version::parse("5.18"), v(5, 18));
        assert_eq!(Version::parse("5.4.0-150-generic"), v(5, 4));
        assert_eq!(Version::parse("6.1.0+"), v(6, 1));
        assert_eq!(Version::parse("weird"), None);
        assert_eq!(Version::parse(""), None);
    }

    #[test]
    fn the_xdp_floor_is_5_18() {
        assert!(check_xdp("5.18.0").is_ok());
        assert!(check_xdp("6.1.0-28-cloud-amd64").is_ok());
        assert!(check_xdp("10.0").is_ok());
        assert!(check_xdp("unknown").is_ok());
        let e = check_xdp("5.15.0-91-generic").unwrap_err().to_string();
        assert!(
            e.contains(">= 5.18") && e.contains("5.15.0-91-generic"),
            "{e}"
        );
        assert!(check_xdp("4.19.0").is_err());
    }
}
