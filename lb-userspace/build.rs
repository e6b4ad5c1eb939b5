//! Builds the eBPF object (`lb-ebpf`) for `bpfel-unknown-none` with the pinned nightly and
//! bpf-linker, and leaves it in OUT_DIR for `include_bytes_aligned!`.

fn main() -> anyhow::Result<()> {
    // aya-build watches lb-ebpf itself; the shared contract changes the object too.
    println!("cargo:rerun-if-changed=../lb-common/src");
    let ebpf = aya_build::Package {
        name: "lb-ebpf",
        root_dir: "../lb-ebpf",
        ..Default::default()
    };
    // `nightly` here is the machine's preinstalled 1.97 nightly (LLVM 22), which matches
    // bpf-linker built against llvm-22 by .ci/run. A nightly with LLVM 23 fails to link.
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::Nightly)
}
