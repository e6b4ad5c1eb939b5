//! The `weir` binary's library: everything but `main`, so tests and benchmarks reuse it.

pub mod admin;
pub mod alloc;
pub mod certificates;
pub mod cli;
pub mod config;
pub mod conn_cap;
pub mod discovery;
pub mod health;
pub mod iface_id;
pub mod l7;
pub mod metrics;
pub mod notify;
pub mod overlay;
pub mod proc_stat;
pub mod reload;
pub mod run;
pub mod run_dir;
pub mod stats;
pub mod sysctl;
pub mod top;
pub mod workers;
pub mod xdp;

/// The compiled XDP object, built by build.rs from `lb-ebpf`.
pub static XDP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/weir-xdp"));

/// Benchmark-only programs (`bare_pass`, `bare_drop`, `gen_tx`), built with the XDP object.
pub static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/weir-bench"));

/// The SK_REUSEPORT steering program (`weir_steer`), built with the XDP object.
pub static STEER_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/weir-steer"));

/// Loads one of weir's objects with no CO-RE relocation against the kernel's BTF, which
/// weir's programs need none of (they read packets, sockets' hashes and sysctl names, no
/// kernel structure; `tests::the_objects_need_no_kernel_btf` keeps it so). Relocating against
/// it doubled the control plane's peak heap (52 MiB with it, 27 without; the control plane's
/// RSS kept it: `run::run` now gives freed memory back once up). aya 0.14's loader still
/// parses `/sys/kernel/btf/vmlinux` (5.5 MB here) when it is made, with no way around it;
/// the objects' own BTF (map and function types) is loaded as before.
pub fn load_object(object: &[u8]) -> Result<aya::Ebpf, aya::EbpfError> {
    aya::EbpfLoader::new().btf(None).load(object)
}

#[cfg(test)]
mod tests {
    use object::{Object as _, ObjectSection as _};

    /// `load_object` gives the kernel's BTF to no object: that is right only while none asks
    /// for a CO-RE relocation: the `core_relo` part of `.BTF.ext`, whose header is the
    /// kernel's `btf_ext_header` (magic, version, flags, header length, then offset and
    /// length of func_info, line_info and core_relo).
    #[test]
    fn the_objects_need_no_kernel_btf() {
        for (name, bytes) in [
            ("weir-xdp", super::XDP_OBJECT),
            ("weir-steer", super::STEER_OBJECT),
        ] {
            let file = object::File::parse(bytes).unwrap();
            let ext = file
                .section_by_name(".BTF.ext")
                .and_then(|s| s.data().ok())
                .unwrap_or_default();
            let word = |at: usize| {
                ext.get(at..at + 4)
                    .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            };
            let header_len = word(4).unwrap_or(0);
            // A header without the core_relo fields (24 bytes) has no relocations either.
            let core_relo_len = if header_len >= 32 { word(28) } else { Some(0) };
            assert_eq!(
                core_relo_len,
                Some(0),
                "{name} has CO-RE relocations: load it with the kernel's BTF (`Btf::from_sys_fs`)"
            );
        }
    }
}
