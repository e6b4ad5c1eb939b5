//! The worker's seccomp allow-list: every system call a serving worker makes (found by running
//! the real worker under load with `strace -f`: plain and TLS clients, HTTP/1.1 and HTTP/2,
//! plain and TLS targets, WebSocket, timeouts, the access log, a drain), nothing else. The
//! default action kills the whole process (`SECCOMP_RET_KILL_PROCESS`): a worker made to call
//! anything else — open a file, exec, ptrace, mount, bind, fork — dies by SIGSYS and the
//! supervisor restarts it. Compiled with `seccompiler` (rust-vmm, Firecracker's jailer).
//!
//! What the list leaves out on purpose: `openat` and every path-taking call (sockets,
//! certificates and the access-log file are open before the filter), `clone`/`clone3` (the
//! worker's threads exist before it), `execve`, `socket` other than TCP/IP, `kill` and `tgkill`
//! to another process, executable mappings.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule,
};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("building the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("installing the seccomp filter: {0}")]
    Apply(#[from] seccompiler::Error),
    #[error("no seccomp filter for this architecture ({0})")]
    Arch(&'static str),
}

/// System calls allowed with any arguments.
const ANY_ARGS: &[libc::c_long] = &[
    // I/O on the sockets (and the inherited stdout/stderr, the access-log file).
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_recvmsg,
    libc::SYS_sendmsg,
    libc::SYS_close,
    libc::SYS_shutdown,
    // Client and target connections.
    libc::SYS_accept4,
    libc::SYS_connect,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    // The event loop, its wake-ups, timers and locks.
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    // Memory (mimalloc).
    libc::SYS_munmap,
    libc::SYS_madvise,
    libc::SYS_mremap,
    libc::SYS_brk,
    // Randomness (rustls, hash seeds).
    libc::SYS_getrandom,
    // Signals delivered to the worker, and its exit.
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// x86-64 only names of the same operations.
#[cfg(target_arch = "x86_64")]
const ANY_ARGS_ARCH: &[libc::c_long] = &[libc::SYS_epoll_wait, libc::SYS_poll];
#[cfg(not(target_arch = "x86_64"))]
const ANY_ARGS_ARCH: &[libc::c_long] = &[libc::SYS_ppoll];

fn cond(arg: u8, op: Op, value: u64) -> Result<SeccompCondition, seccompiler::BackendError> {
    SeccompCondition::new(arg, Len::Dword, op, value)
}

/// One rule per allowed value of argument `arg`.
fn one_of(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    values
        .iter()
        .map(|&v| SeccompRule::new(vec![cond(arg, Op::Eq, v)?]))
        .collect()
}

/// `arg` has none of the `mask` bits.
fn without(arg: u8, mask: u64) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    Ok(vec![SeccompRule::new(vec![cond(
        arg,
        Op::MaskedEq(mask),
        0,
    )?])?])
}

/// Calls allowed only with some arguments.
fn with_args(pid: u32) -> Result<Vec<(libc::c_long, Vec<SeccompRule>)>, seccompiler::BackendError> {
    let exec = libc::PROT_EXEC as u64;
    Ok(vec![
        // TCP over IPv4 and IPv6 (targets); nothing else (no netlink, no raw, no unix).
        (
            libc::SYS_socket,
            one_of(0, &[libc::AF_INET as u64, libc::AF_INET6 as u64])?,
        ),
        // Non-blocking mode and close-on-exec, nothing else.
        (libc::SYS_ioctl, one_of(1, &[libc::FIONBIO, libc::FIOCLEX])?),
        (
            libc::SYS_fcntl,
            one_of(
                1,
                &[
                    libc::F_GETFL as u64,
                    libc::F_SETFL as u64,
                    libc::F_GETFD as u64,
                    libc::F_SETFD as u64,
                    libc::F_DUPFD_CLOEXEC as u64,
                ],
            )?,
        ),
        // Memory, never executable.
        (libc::SYS_mmap, without(2, exec)?),
        (libc::SYS_mprotect, without(2, exec)?),
        // abort() signals its own process only.
        (libc::SYS_tgkill, one_of(0, &[u64::from(pid)])?),
        // mimalloc names every region it maps (`prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, …)`,
        // libmimalloc-sys's prim.c): a worker whose memory grew past its first regions
        // (thousands of idle TLS connections) died by SIGSYS there. That option only.
        (libc::SYS_prctl, one_of(0, &[libc::PR_SET_VMA as u64])?),
    ])
}

/// The filter for a worker whose pid is `pid`.
pub fn program(pid: u32) -> Result<BpfProgram, SeccompError> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|_| SeccompError::Arch(std::env::consts::ARCH))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ANY_ARGS
        .iter()
        .chain(ANY_ARGS_ARCH)
        .map(|&nr| (nr, Vec::new()))
        .collect();
    rules.extend(with_args(pid)?);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )?;
    Ok(filter.try_into()?)
}

/// Installs the filter on every thread of this process (`SECCOMP_FILTER_FLAG_TSYNC`), with
/// `PR_SET_NO_NEW_PRIVS` (which TSYNC gives the other threads too).
pub fn apply() -> Result<(), SeccompError> {
    let prog = program(std::process::id())?;
    seccompiler::apply_filter_all_threads(&prog)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_for_this_architecture() {
        let p = program(std::process::id()).unwrap();
        assert!(p.len() > ANY_ARGS.len(), "{} instructions", p.len());
    }

    /// The worker's allocator, mimalloc, maps memory long after the filter is on (a heap that
    /// grows), naming every mapping with `prctl(PR_SET_VMA, …)`: a worker holding thousands of
    /// idle TLS connections died by SIGSYS there. A forked child takes the filter, then has
    /// mimalloc map 2 GiB (more than an arena: straight from the OS).
    #[test]
    /// Also its forced collection (`alloc::release_memory`, which the parking lot calls): it
    /// gives pages back with madvise/munmap.
    fn mimalloc_maps_memory_under_the_filter() {
        use std::alloc::{GlobalAlloc, Layout};
        let a = crate::alloc::Mimalloc;
        let layout = Layout::from_size_align(2 << 30, 4096).unwrap();
        let small = Layout::from_size_align(64, 8).unwrap();
        // mimalloc initialises itself on first use (reading its options): done here, before
        // the filter, as in a worker.
        unsafe { a.dealloc(a.alloc(small), small) };
        let prog = program(std::process::id()).unwrap();
        // SAFETY: the child only installs the filter, allocates with mimalloc and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let code = match seccompiler::apply_filter(&prog) {
                Err(_) => 3,
                Ok(()) => {
                    let p = unsafe { a.alloc(layout) };
                    if p.is_null() {
                        2
                    } else {
                        unsafe { a.dealloc(p, layout) };
                        crate::alloc::release_memory();
                        0
                    }
                }
            };
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            !(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS),
            "mimalloc mapping memory was killed by the filter (SIGSYS)"
        );
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child: status {status:#x}"
        );
    }
}
