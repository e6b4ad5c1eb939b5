//! The socket channel: how the control plane hands a running worker the listening sockets of a
//! listener added by a reload. A Unix `SOCK_SEQPACKET` socketpair per worker (the worker's end
//! inherited, its fd in `WEIR_SOCKETS_FD`), one message per reload: the listeners' addresses as
//! text (space-separated) and their sockets as `SCM_RIGHTS`, in the same order. One message per
//! reload, because the kernel queues few messages (`net.unix.max_dgram_qlen`, 10) on a socket
//! its reader has not read yet.
//!
//! The control plane sends a listener's sockets *before* the configuration generation that names
//! it (on the control channel, `crate::control`), so when a worker applies that generation the
//! sockets are already queued here: [`take_all`] reads them without waiting. A worker started
//! later inherits every listening socket instead (`WEIR_LISTEN_FDS`).
//!
//! The channel also carries the access-log file the control plane opened again after a log
//! rotation ([`send_access_log`]; text [`ACCESS_LOG`], one descriptor): a worker in its sandbox
//! opens no file, and the new file may be one only root can open.
//!
//! `recvmsg` is in the worker's seccomp list; receiving a descriptor needs no privilege.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Most sockets in one message (below the kernel's `SCM_MAX_FD`, 253).
pub const MAX_SOCKETS: usize = 64;
/// Longest text of one message (64 addresses of at most 47 characters and their spaces).
const MAX_TEXT: usize = 64 * 48;

/// The text of a message carrying the access-log file.
pub const ACCESS_LOG: &str = "access-log";

/// What was queued on the channel.
#[derive(Debug, Default)]
pub struct Taken {
    /// Listening sockets, in the order sent.
    pub sockets: Vec<(SocketAddr, OwnedFd)>,
    /// The access-log file last sent, if any.
    pub access_log: Option<OwnedFd>,
}

/// One message.
enum Message {
    Sockets(Vec<(SocketAddr, OwnedFd)>),
    AccessLog(OwnedFd),
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("socket channel: {0}")]
    Io(#[from] std::io::Error),
    #[error("socket channel: {0} addresses came with {1} sockets")]
    Count(usize, usize),
    #[error("socket channel: the access log came with {0} descriptors")]
    AccessLogCount(usize),
    #[error("socket channel: `{0}` is not a socket address")]
    Address(String),
}

/// A connected `SOCK_SEQPACKET` pair, both ends close-on-exec (the caller clears the flag on the
/// end a child inherits).
pub fn pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair writes two descriptors into `fds` on success.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends `sockets` (each listening on its address) over `channel` in one message, without
/// blocking. A full channel or a worker gone is an error: the caller restarts the worker, which
/// then inherits every socket.
pub fn send(channel: &impl AsRawFd, sockets: &[(SocketAddr, RawFd)]) -> std::io::Result<()> {
    if sockets.is_empty() {
        return Ok(());
    }
    if sockets.len() > MAX_SOCKETS {
        return Err(std::io::Error::other(format!(
            "{} sockets in one message (at most {MAX_SOCKETS})",
            sockets.len()
        )));
    }
    let text = sockets
        .iter()
        .map(|(a, _)| a.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let fds: Vec<RawFd> = sockets.iter().map(|(_, fd)| *fd).collect();
    send_fds(channel, &text, &fds)
}

/// Sends the access-log file, opened again by the control plane, without blocking.
pub fn send_access_log(channel: &impl AsRawFd, file: &impl AsRawFd) -> std::io::Result<()> {
    send_fds(channel, ACCESS_LOG, &[file.as_raw_fd()])
}

/// One message: `text` and `fds` as `SCM_RIGHTS`.
fn send_fds(channel: &impl AsRawFd, text: &str, fds: &[RawFd]) -> std::io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: text.as_ptr() as *mut libc::c_void,
        iov_len: text.len(),
    };
    let data_len = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(data_len as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer holds CMSG_SPACE(all the fds) bytes, so the first header and
    // its data fit in it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
        let data = libc::CMSG_DATA(cmsg) as *mut RawFd;
        for (i, fd) in fds.iter().enumerate() {
            std::ptr::write_unaligned(data.add(i), *fd);
        }
    }
    // SAFETY: `msg` points at live buffers (above).
    let rc = unsafe {
        libc::sendmsg(
            channel.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// One message, without blocking: `None` when nothing is queued (or the other end is gone).
fn recv_one(channel: RawFd) -> Result<Option<Message>, ChannelError> {
    let mut text = vec![0u8; MAX_TEXT];
    let mut iov = libc::iovec {
        iov_base: text.as_mut_ptr() as *mut libc::c_void,
        iov_len: text.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space =
        unsafe { libc::CMSG_SPACE((MAX_SOCKETS * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: msghdr is plain data; every pointer set below outlives the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points at live buffers (above).
    let n = unsafe {
        libc::recvmsg(
            channel,
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock => Ok(None),
            _ => Err(e.into()),
        };
    }
    // Owned at once, so every descriptor received is closed whatever happens next.
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `msg`'s control part; the CMSG_* walk stays inside it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned((data as *const RawFd).add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if n == 0 && fds.is_empty() {
        // The control plane's end is closed: nothing more will come.
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&text[..n as usize]).into_owned();
    if text == ACCESS_LOG {
        let n = fds.len();
        return match fds.pop() {
            Some(fd) if n == 1 => Ok(Some(Message::AccessLog(fd))),
            _ => Err(ChannelError::AccessLogCount(n)),
        };
    }
    let addrs = text
        .split_whitespace()
        .map(|a| {
            a.parse::<SocketAddr>()
                .map_err(|_| ChannelError::Address(a.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.len() != fds.len() {
        return Err(ChannelError::Count(addrs.len(), fds.len()));
    }
    Ok(Some(Message::Sockets(addrs.into_iter().zip(fds).collect())))
}

/// Everything queued on `channel` now: the sockets in the order sent, the last access log.
pub fn take_all(channel: &impl AsRawFd) -> Result<Taken, ChannelError> {
    let mut out = Taken::default();
    while let Some(m) = recv_one(channel.as_raw_fd())? {
        match m {
            Message::Sockets(s) => out.sockets.extend(s),
            Message::AccessLog(f) => out.access_log = Some(f),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_arrive_with_their_addresses_in_order_and_nothing_blocks() {
        let (a, b) = pair().unwrap();
        assert!(
            take_all(&b).unwrap().sockets.is_empty(),
            "an empty channel does not block"
        );
        let l1 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let l2 = std::net::TcpListener::bind("[::1]:0").unwrap();
        let (x1, x2) = (l1.local_addr().unwrap(), l2.local_addr().unwrap());
        send(&a, &[(x1, l1.as_raw_fd())]).unwrap();
        send(&a, &[(x2, l2.as_raw_fd()), (x1, l1.as_raw_fd())]).unwrap();
        let got = take_all(&b).unwrap().sockets;
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, x1);
        assert_eq!(got[1].0, x2);
        assert_eq!(got[2].0, x1);
        // The descriptor received is the same listening socket.
        let r = std::net::TcpListener::from(got.into_iter().next().unwrap().1);
        assert_eq!(r.local_addr().unwrap(), x1);
        let _c = std::net::TcpStream::connect(x1).unwrap();
        assert!(r.accept().is_ok());
        drop(a);
        let t = take_all(&b).unwrap();
        assert!(
            t.sockets.is_empty() && t.access_log.is_none(),
            "a closed channel reads as empty"
        );
    }

    #[test]
    fn an_access_log_file_travels_between_sockets_and_the_last_one_counts() {
        use std::io::{Read as _, Write as _};
        let (a, b) = pair().unwrap();
        let dir = std::env::temp_dir().join(format!("weir-chan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (p1, p2) = (dir.join("one.log"), dir.join("two.log"));
        let f1 = std::fs::File::create(&p1).unwrap();
        let f2 = std::fs::File::create(&p2).unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let x = l.local_addr().unwrap();
        send_access_log(&a, &f1).unwrap();
        send(&a, &[(x, l.as_raw_fd())]).unwrap();
        send_access_log(&a, &f2).unwrap();
        let got = take_all(&b).unwrap();
        assert_eq!(got.sockets.len(), 1);
        assert_eq!(got.sockets[0].0, x);
        let mut log = std::fs::File::from(got.access_log.expect("the access log"));
        log.write_all(b"line\n").unwrap();
        let mut two = String::new();
        std::fs::File::open(&p2)
            .unwrap()
            .read_to_string(&mut two)
            .unwrap();
        assert_eq!(two, "line\n", "the last file sent");
        assert_eq!(std::fs::read_to_string(&p1).unwrap(), "");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
