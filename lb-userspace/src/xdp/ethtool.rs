//! The few ethtool queries weir needs, through the `SIOCETHTOOL` ioctl on a socket, so they answer
//! for the calling thread's network namespace (as `ethtool` does; /sys/class/net answers for
//! whoever mounted /sys): the driver's name, the queue counts, and the driver's statistics
//! by name.
//!
//! Hand-written: the crates that speak ethtool (`ethtool`, `neli`) do it over generic netlink
//! with an async runtime and cover none of these better than the ioctl, which every kernel
//! since 2.6 answers.

use std::io;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETHTOOL_GCHANNELS: u32 = 0x3c;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;

/// `struct ethtool_drvinfo`.
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// Runs one `SIOCETHTOOL` request on `iface` with `data` as its buffer (starting with the cmd).
fn ioctl(iface: &str, data: *mut libc::c_void) -> io::Result<()> {
    let name = iface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    // SAFETY: an ifreq zeroed then given a NUL-terminated name and a pointer to a buffer laid out
    // for the command in its first word, which the caller keeps alive for the call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(name) {
            *dst = *src as libc::c_char;
        }
        req.ifr_ifru.ifru_data = data.cast();
        let rc = libc::ioctl(fd, SIOCETHTOOL as _, &mut req);
        let err = io::Error::last_os_error();
        libc::close(fd);
        if rc < 0 { Err(err) } else { Ok(()) }
    }
}

fn drvinfo(iface: &str) -> io::Result<DrvInfo> {
    // SAFETY: DrvInfo is plain integers and byte arrays: all zeroes is a valid value.
    let mut info: DrvInfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    ioctl(iface, (&mut info as *mut DrvInfo).cast())?;
    Ok(info)
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The name of `iface`'s driver (`veth`, `mlx5_core`, `ena`, …).
pub fn driver(iface: &str) -> io::Result<String> {
    Ok(c_string(&drvinfo(iface)?.driver))
}

/// `struct ethtool_channels` (`ethtool -l`): the queue counts, maxima first.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Channels {
    cmd: u32,
    pub max_rx: u32,
    pub max_tx: u32,
    pub max_other: u32,
    pub max_combined: u32,
    pub rx_count: u32,
    pub tx_count: u32,
    pub other_count: u32,
    pub combined_count: u32,
}

impl Channels {
    /// The counts `ethtool -l` would show as "Combined" (maximum, current).
    pub fn combined(max: u32, current: u32) -> Channels {
        Channels {
            max_combined: max,
            combined_count: current,
            ..Channels::default()
        }
    }
}

/// `iface`'s queue counts (`ethtool -l`).
pub fn channels(iface: &str) -> io::Result<Channels> {
    let mut c = Channels {
        cmd: ETHTOOL_GCHANNELS,
        ..Channels::default()
    };
    ioctl(iface, (&mut c as *mut Channels).cast())?;
    Ok(c)
}

/// The driver's statistics (`ethtool -S`), by name.
pub fn stats(iface: &str) -> io::Result<Vec<(String, u64)>> {
    let n = drvinfo(iface)?.n_stats as usize;
    if n == 0 {
        return Ok(Vec::new());
    }
    // struct ethtool_gstrings { u32 cmd, string_set, len; u8 data[len * 32] }, as u32 words.
    let mut strings = vec![0u32; 3 + n * ETH_GSTRING_LEN / 4];
    strings[..3].copy_from_slice(&[ETHTOOL_GSTRINGS, ETH_SS_STATS, n as u32]);
    ioctl(iface, strings.as_mut_ptr().cast())?;
    // struct ethtool_stats { u32 cmd, n_stats; u64 data[n_stats] }, as u64 words.
    let mut values = vec![0u64; 1 + n];
    values[0] = u64::from(ETHTOOL_GSTATS) | (n as u64) << 32;
    if cfg!(target_endian = "big") {
        values[0] = (u64::from(ETHTOOL_GSTATS) << 32) | n as u64;
    }
    ioctl(iface, values.as_mut_ptr().cast())?;
    let got = (strings[2] as usize).min(n);
    let bytes: Vec<u8> = strings[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    Ok((0..got)
        .map(|i| {
            let name = c_string(&bytes[i * ETH_GSTRING_LEN..(i + 1) * ETH_GSTRING_LEN]);
            (name, values[1 + i])
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_answers_or_says_why() {
        // `lo` has no ethtool driver info in some kernels; either way no panic, and a bad name
        // is an error, not UB.
        let _ = driver("lo");
        assert!(driver("").is_err());
        assert!(driver("a-name-far-too-long-for-ifnamsiz").is_err());
        assert!(stats("no-such-iface0").is_err());
    }
}
