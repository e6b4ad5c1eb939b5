//! Constant-verdict XDP programs (pass-through, drop, bounce) loaded with the raw `bpf(2)` syscall and attached as a BPF link,
//! so no object file, compiler or bpffs is needed. Closing the link fd detaches it.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> io::Result<OwnedFd> {
    // SAFETY: attr is a zero-initialised bpf_attr-sized buffer laid out for `cmd`; the kernel
    // reads at most its size.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as u32) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a successful PROG_LOAD / LINK_CREATE returns a new fd we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

fn put32(a: &mut [u8; 128], at: usize, v: u32) {
    a[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(a: &mut [u8; 128], at: usize, v: u64) {
    a[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Loads `r0 = action; exit` (0 aborted, 1 drop, 2 pass, 3 tx).
pub(crate) fn load_return(action: u8) -> io::Result<OwnedFd> {
    // mov64 r0, action; exit
    let insns: [[u8; 8]; 2] = [
        [0xb7, 0, 0, 0, action, 0, 0, 0],
        [0x95, 0, 0, 0, 0, 0, 0, 0],
    ];
    let license = CString::new("GPL").unwrap_or_default();
    let mut a = [0u8; 128];
    put32(&mut a, 0, BPF_PROG_TYPE_XDP);
    put32(&mut a, 4, insns.len() as u32);
    put64(&mut a, 8, insns.as_ptr() as u64);
    put64(&mut a, 16, license.as_ptr() as u64);
    a[48..55].copy_from_slice(b"lab_ret");
    put32(&mut a, 68, BPF_XDP);
    bpf(BPF_PROG_LOAD, &mut a)
}

/// Attaches `prog` to interface `ifindex` of the calling thread's namespace.
/// `flags`: 0 (any), 2 (XDP_FLAGS_SKB_MODE) or 4 (XDP_FLAGS_DRV_MODE).
pub(crate) fn link_create(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let mut a = [0u8; 128];
    put32(&mut a, 0, prog.as_raw_fd() as u32);
    put32(&mut a, 4, ifindex);
    put32(&mut a, 8, BPF_XDP);
    put32(&mut a, 12, flags);
    bpf(BPF_LINK_CREATE, &mut a)
}
