//! Finding another network namespace by the id this one gives it (the `link_netnsid` of a veth
//! whose peer lives there), and running code inside it.
//!
//! The kernel names a peer's namespace only by that id, relative to ours; it has no way to open
//! a namespace by id. So the candidates a root process can see — named namespaces
//! (`/run/netns`, `ip netns`), and every process's (`/proc/<pid>/ns/net`: the host's, containers')
//! — are each asked for their id with `RTM_GETNSID` (`NETNSA_FD`), as `ip` does to print
//! `link-netns NAME`. Hand-written for the same reason as [`super::ethtool`]: one request.

use std::{
    collections::HashSet,
    fs::File,
    io,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

const RTM_NEWNSID: u16 = 88;
const RTM_GETNSID: u16 = 90;
const NETNSA_NSID: u16 = 1;
const NETNSA_FD: u16 = 3;

/// The id this namespace gives the namespace of `ns` (an open `/proc/…/ns/net` or
/// `/run/netns/…`), `None` when it has none.
pub fn nsid_of(ns: &File) -> io::Result<Option<i32>> {
    // nlmsghdr (16) + rtgenmsg (1, padded to 4) + nlattr (4) + u32 fd.
    let mut req = [0u8; 28];
    req[0..4].copy_from_slice(&28u32.to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETNSID.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = libc::AF_UNSPEC as u8;
    req[20..22].copy_from_slice(&8u16.to_ne_bytes());
    req[22..24].copy_from_slice(&NETNSA_FD.to_ne_bytes());
    req[24..28].copy_from_slice(&(ns.as_raw_fd() as u32).to_ne_bytes());
    let mut resp = [0u8; 512];
    // SAFETY: a netlink socket we own and close; buffers live across the calls.
    let n = unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        let sent = libc::sendto(
            fd,
            req.as_ptr().cast(),
            req.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        );
        let n = if sent < 0 {
            -1
        } else {
            libc::recv(fd, resp.as_mut_ptr().cast(), resp.len(), 0)
        };
        let err = io::Error::last_os_error();
        libc::close(fd);
        if n < 0 {
            return Err(err);
        }
        n as usize
    };
    parse_nsid(&resp[..n])
}

/// The NETNSA_NSID of an `RTM_NEWNSID` answer (or the error of an `NLMSG_ERROR`).
fn parse_nsid(msg: &[u8]) -> io::Result<Option<i32>> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(msg.get(at..at + 4)?.try_into().ok()?))
    };
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "short RTM_GETNSID answer");
    let kind = u16::from_ne_bytes(
        msg.get(4..6)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    if kind == libc::NLMSG_ERROR as u16 {
        let errno = word(16).ok_or_else(bad)? as i32;
        return Err(io::Error::from_raw_os_error(-errno));
    }
    if kind != RTM_NEWNSID {
        return Err(bad());
    }
    let total = (word(0).ok_or_else(bad)? as usize).min(msg.len());
    let mut at = 20;
    while at + 4 <= total {
        let len = u16::from_ne_bytes([msg[at], msg[at + 1]]) as usize;
        let ty = u16::from_ne_bytes([msg[at + 2], msg[at + 3]]);
        if len < 4 {
            break;
        }
        if ty == NETNSA_NSID {
            let id = word(at + 4).ok_or_else(bad)? as i32;
            return Ok((id >= 0).then_some(id));
        }
        at += (len + 3) & !3;
    }
    Ok(None)
}

/// Where the namespace with id `nsid` (in this namespace's numbering) can be opened, if any of
/// the candidates is it.
pub fn find(nsid: i32) -> Option<PathBuf> {
    let own = std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| (m.dev(), m.ino()))
        .ok();
    let mut seen = HashSet::new();
    own.map(|o| seen.insert(o));
    candidates().into_iter().find(|path| {
        let Ok(file) = File::open(path) else {
            return false;
        };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        seen.insert((meta.dev(), meta.ino())) && nsid_of(&file).ok().flatten() == Some(nsid)
    })
}

fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["/run/netns", "/var/run/netns"] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            out.extend(rd.filter_map(Result::ok).map(|e| e.path()));
        }
    }
    out.push(PathBuf::from("/proc/1/ns/net"));
    if let Ok(rd) = std::fs::read_dir("/proc") {
        out.extend(
            rd.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .map(|e| e.path().join("ns/net")),
        );
    }
    out
}

/// Runs `f` on a thread of its own inside the namespace at `path` (the caller's thread never
/// changes namespace; processes `f` spawns start there too).
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let file = File::open(path)?;
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("thread in the peer's namespace panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers_and_errors() {
        // RTM_NEWNSID: header, rtgenmsg, NETNSA_NSID = 3.
        let mut m = vec![0u8; 28];
        m[0..4].copy_from_slice(&28u32.to_ne_bytes());
        m[4..6].copy_from_slice(&RTM_NEWNSID.to_ne_bytes());
        m[20..22].copy_from_slice(&8u16.to_ne_bytes());
        m[22..24].copy_from_slice(&NETNSA_NSID.to_ne_bytes());
        m[24..28].copy_from_slice(&3i32.to_ne_bytes());
        assert_eq!(parse_nsid(&m).unwrap(), Some(3));
        m[24..28].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(parse_nsid(&m).unwrap(), None);
        let mut e = vec![0u8; 20];
        e[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        e[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        assert_eq!(
            parse_nsid(&e).unwrap_err().raw_os_error(),
            Some(libc::EPERM)
        );
        assert!(parse_nsid(&[1, 2]).is_err());
    }

    #[test]
    fn own_namespace_has_no_id_of_itself_or_says_why() {
        let f = File::open("/proc/self/ns/net").unwrap();
        // Asking for our own namespace's id: none assigned, or an error without privileges.
        let _ = nsid_of(&f);
    }
}
