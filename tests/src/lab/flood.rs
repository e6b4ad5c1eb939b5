//! A spoofed-source SYN flood out of a lab interface, from user space: an AF_PACKET socket
//! (qdisc bypassed) sending batches of `sendmmsg`, each frame the caller's template SYN with a
//! random source in 198.18.0.0/15 (RFC 2544's benchmarking range, never on-link in a lab) and a
//! random source port, both checksums fixed. Bounded in packets and time; stops by itself.
//!
//! The tests once sent their floods with the kernel's `BPF_F_TEST_XDP_LIVE_FRAMES` (weir's
//! `gen_syn_flood` programs), which a locked-down kernel refuses (`EPERM`, seen on 6.18 with
//! lockdown in integrity mode). A packet socket is the same kernel path a NIC's frames take
//! into a veth, reaches a few hundred thousand SYNs a second here, and works everywhere. Written
//! by hand, not with a crate: it is a loop around `sendmmsg(2)` over the lab's own frames.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use super::veth::Iface;

/// Frames per `sendmmsg` call.
const BATCH: usize = 64;
/// The spoofed sources: 198.18.0.0/15.
const SOURCE_NET: u32 = 0xc612_0000;
const SOURCE_MASK: u32 = 0x0001_ffff;

/// When the flood stops by itself.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub packets: u64,
    pub time: Duration,
}

/// A running flood ([`Iface::syn_flood`]).
pub struct SynFlood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Iface {
    /// Starts a SYN flood out of this interface: `template` is an Ethernet/IPv4/TCP SYN (any TCP
    /// options), sent again and again with a random source address and port.
    pub fn syn_flood(&self, template: &[u8], bounds: Bounds) -> Result<SynFlood> {
        let frame = Template::new(template)?;
        let ifindex = self.ifindex()?;
        let fd = self
            .ns()
            .in_ns(|| packet_socket(ifindex))?
            .with_context(|| format!("a packet socket on {}", self.name()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (stop2, sent2) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || send_until(&fd, &frame, bounds, &stop2, &sent2));
        Ok(SynFlood {
            stop,
            sent,
            thread: Some(thread),
        })
    }
}

impl SynFlood {
    /// Frames sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits for the flood to reach its bounds; frames sent in all, or the error that stopped
    /// it early.
    pub fn wait(mut self) -> Result<u64> {
        let t = self.thread.take().context("stopped twice")?;
        t.join()
            .map_err(|_| anyhow::anyhow!("the flood thread panicked"))??;
        Ok(self.sent())
    }

    /// Stops the flood; frames sent in all, or the error that stopped it early.
    pub fn stop(mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let t = self.thread.take().context("stopped twice")?;
        t.join()
            .map_err(|_| anyhow::anyhow!("the flood thread panicked"))??;
        Ok(self.sent())
    }
}

impl Drop for SynFlood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn packet_socket(ifindex: u32) -> io::Result<OwnedFd> {
    // Protocol 0: the socket sends only, it receives nothing.
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid start.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the given size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let one: libc::c_int = 1;
    // SAFETY: an int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn send_until(
    fd: &OwnedFd,
    template: &Template,
    bounds: Bounds,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> Result<()> {
    let mut frames = vec![template.bytes.clone(); BATCH];
    let mut rng = Rng::seeded();
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed)
        && sent.load(Ordering::Relaxed) < bounds.packets
        && start.elapsed() < bounds.time
    {
        for f in &mut frames {
            template.spoof(f, rng.next());
        }
        let mut iov: Vec<libc::iovec> = frames
            .iter_mut()
            .map(|f| libc::iovec {
                iov_base: f.as_mut_ptr().cast(),
                iov_len: f.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|v| {
                // SAFETY: msghdr is plain data; all-zero is a valid start.
                let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
                h.msg_iov = v;
                h.msg_iovlen = 1;
                libc::mmsghdr {
                    msg_hdr: h,
                    msg_len: 0,
                }
            })
            .collect();
        // SAFETY: `msgs` holds BATCH headers, each pointing at one live frame buffer.
        let n = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                msgs.len() as libc::c_uint,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // The device's queue is full (or a signal came): try again.
                Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR) => std::thread::yield_now(),
                _ => return Err(e).context("sendmmsg on the flood's packet socket"),
            }
            continue;
        }
        sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// The caller's SYN and where its source fields are.
struct Template {
    bytes: Vec<u8>,
    ip: usize,
    tcp: usize,
}

impl Template {
    fn new(frame: &[u8]) -> Result<Template> {
        ensure!(frame.len() >= 14 + 20 + 20, "a SYN is at least 54 bytes");
        ensure!(
            frame[12..14] == [0x08, 0x00],
            "an IPv4 frame without VLAN tags"
        );
        let ip = 14;
        let ihl = usize::from(frame[ip] & 0x0f) * 4;
        if frame[ip] >> 4 != 4 || ihl < 20 || frame[ip + 9] != 6 {
            bail!("an IPv4 TCP frame");
        }
        let tcp = ip + ihl;
        ensure!(frame.len() >= tcp + 20, "a whole TCP header");
        Ok(Template {
            bytes: frame.to_vec(),
            ip,
            tcp,
        })
    }

    /// Rewrites `f` (a copy of the template, perhaps spoofed before) with the source address and
    /// port taken from `r`, fixing both checksums incrementally (RFC 1624).
    fn spoof(&self, f: &mut [u8], r: u32) {
        let src = (SOURCE_NET | (r & SOURCE_MASK)).to_be_bytes();
        let sport = ((r >> 17) as u16 | 1024).to_be_bytes();
        let (ip, tcp) = (self.ip, self.tcp);
        let old_src: [u8; 4] = f[ip + 12..ip + 16].try_into().expect("4 bytes");
        let old_sport: [u8; 2] = f[tcp..tcp + 2].try_into().expect("2 bytes");
        f[ip + 12..ip + 16].copy_from_slice(&src);
        f[tcp..tcp + 2].copy_from_slice(&sport);
        let ip_sum = csum_update(read16(f, ip + 10), &old_src, &src);
        write16(f, ip + 10, ip_sum);
        let tcp_sum = csum_update(read16(f, tcp + 16), &old_src, &src);
        let tcp_sum = csum_update(tcp_sum, &old_sport, &sport);
        write16(f, tcp + 16, tcp_sum);
    }
}

fn read16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

fn write16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// A one's-complement checksum updated for `old` bytes becoming `new` (RFC 1624, eqn. 3),
/// each an even number of bytes in network order.
fn csum_update(sum: u16, old: &[u8], new: &[u8]) -> u16 {
    let words = |b: &[u8]| -> Vec<u32> {
        b.chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .collect()
    };
    let mut acc = u32::from(!sum);
    for w in words(old) {
        acc += u32::from(!(w as u16));
    }
    for w in words(new) {
        acc += w;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// xorshift32: the sources need to differ, not to be unpredictable.
struct Rng(u32);

impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos());
        Rng(t | 1)
    }

    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Packet;

    /// Every spoofed frame is still a valid SYN: both checksums verify after any number of
    /// rewrites, and the source stays in the benchmarking range.
    #[test]
    fn spoofed_frames_keep_valid_checksums() {
        let syn = || {
            Packet::new()
                .eth([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4("198.18.0.1", "10.0.0.2")
                .tcp(1024, 80)
                .syn()
                .seq(1)
        };
        // hping3's layout (no options) and a Linux client's.
        let linux = syn().mss(1460).sack_perm().timestamp(1, 0).nop().wscale(7);
        for layout in [syn().build(), linux.build()] {
            let t = Template::new(&layout).unwrap();
            let mut f = layout.clone();
            let mut rng = Rng(12345);
            for _ in 0..1000 {
                t.spoof(&mut f, rng.next());
                let src: [u8; 4] = f[t.ip + 12..t.ip + 16].try_into().unwrap();
                assert_eq!(u32::from_be_bytes(src) & !SOURCE_MASK, SOURCE_NET);
                let reparsed = crate::packet::Frame::parse(&f).unwrap();
                assert!(reparsed.checksums_ok(), "{reparsed:?}");
            }
        }
    }
}
