//! The flow hash: one 32-bit value per transport flow that the XDP program, the SK_REUSEPORT
//! program and user space compute identically.
//!
//! # Definition
//!
//! Two cases, both Bob Jenkins' lookup3 exactly as Linux implements it (`include/linux/jhash.h`),
//! so a C reference is one call away:
//!
//! - **IPv4** (both addresses IPv4-mapped), [`flow_hash_v4`]:
//!   `jhash_3words(saddr, daddr, ports, seed ^ proto)` — one `final` round, the cheap path that
//!   nearly all traffic takes.
//! - **IPv6** (anything else), [`flow_hash_v6`]: `jhash2(k, 10, seed)` over ten words
//!   `k[0..4]` = `src`, `k[4..8]` = `dst`, `k[8]` = ports, `k[9]` = `proto` — three `mix`
//!   rounds and a `final`.
//!
//! Every word is its 4 bytes **as on the wire, read little-endian** (`u32::from_le_bytes`):
//! `saddr`/`daddr` are the 4 address bytes, `ports` is the source port's 2 wire bytes followed by
//! the destination port's. That is what Linux code gets from a native load of `iph->saddr` or of
//! the in-memory struct `{ u8 src[16]; u8 dst[16]; __be16 sport; __be16 dport; u32 proto; }` on
//! a little-endian machine (x86-64, arm64, `bpfel`). Byte-wise the definition does not depend on
//! the host: it is a function of the packet's bytes. [`flow_hash`] takes [`Addr`]s and picks the
//! case, so both sides can call it; a caller that already knows the family calls the variant.
//!
//! # Byte order of the inputs
//!
//! - **Addresses** are [`Addr`]: 16 bytes in network order, IPv4 as `::ffff:a.b.c.d`
//!   ([`flow_hash_v4`] takes the 4 bytes as they are on the wire).
//! - **Ports** are `u16`s holding the port *in network order*, i.e. the value a native 2-byte load
//!   from the TCP/UDP header yields, or equivalently `port.to_be()` for a host-order `port`
//!   (`src_port_be.to_ne_bytes()` are the two bytes on the wire). Sources that hand out host-order
//!   ports — `bpf_sock::src_port`, `SocketAddr::port()` — must convert with `.to_be()` first;
//!   `bpf_sock::dst_port` and the `__be16` fields of packet headers are already in this form.
//! - **proto** is the IP protocol number ([`crate::proto`]).
//!
//! The flow is hashed as seen in the client's packets (source = client, destination = VIP); the
//! hash is *not* symmetric, both steering points see the same direction.
//!
//! # Cost and verifier friendliness
//!
//! Fixed-size arrays, constant indexes, wrapping arithmetic, no loops, no panics, one branch (the
//! family), `#[inline(always)]`: the BPF verifier sees straight-line code. A test program built
//! from this module for `bpfel-unknown-none` passed the verifier and reproduced
//! [`KNOWN_ANSWERS`] and 2,000 random inputs through `BPF_PROG_TEST_RUN` (kernel 6.18).
//!
//! Measured cost (x86-64 release, 2.6 GHz Xeon, `tests/maglev.rs`, `bench_flow_hash`; per hash,
//! independent calls as consecutive packets are / dependent-chain latency): IPv4 path 2.0 / 5.4
//! ns, IPv6 path 4.7 / 17 ns. In the kernel (`BPF_PROG_TEST_RUN`, kernel 6.18, JIT, time over
//! an XDP program doing the same loads and stores without hashing): [`flow_hash_v4`] ~6 ns,
//! [`flow_hash`] on IPv4 ~9 ns, on IPv6 ~26 ns (v1 ISA) / ~21 ns (`-C target-cpu=v3`). The BPF
//! JIT has no rotate (two shifts and an or, plus masks without `alu32`), and [`Addr`]'s 1-byte
//! alignment makes LLVM load the addresses byte by byte (word loads saved another ~6 ns on
//! IPv6); the data path should call [`flow_hash_v4`] on the IPv4 header's addresses directly.
//!
//! [`table_slot`] maps the hash onto a table of any size with a multiply and a shift (no
//! division, no zero check needed).
//!
//! # Known answers
//!
//! [`KNOWN_ANSWERS`] pins input/output pairs, computed with Linux's C `jhash2`/`jhash_3words`;
//! a kernel-side test (`BPF_PROG_TEST_RUN`) must reproduce them with the eBPF build of this code.

use crate::Addr;

/// lookup3's arbitrary starting value (`JHASH_INITVAL` in Linux).
pub const JHASH_INITVAL: u32 = 0xdead_beef;

/// lookup3's `mix()` (`__jhash_mix`): reversibly mixes three words.
#[inline(always)]
const fn mix(mut a: u32, mut b: u32, mut c: u32) -> (u32, u32, u32) {
    a = a.wrapping_sub(c);
    a ^= c.rotate_left(4);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a);
    b ^= a.rotate_left(6);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b);
    c ^= b.rotate_left(8);
    b = b.wrapping_add(a);
    a = a.wrapping_sub(c);
    a ^= c.rotate_left(16);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a);
    b ^= a.rotate_left(19);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b);
    c ^= b.rotate_left(4);
    b = b.wrapping_add(a);
    (a, b, c)
}

/// lookup3's `final()` (`__jhash_final`): avalanches three words into `c`.
#[inline(always)]
const fn finalize(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(24));
    c
}

/// Linux's `jhash_3words(a, b, c, initval)`: hashes three words with a seed.
///
/// User space uses it for Maglev's per-backend permutation; it is as cheap as a single `final`.
#[inline(always)]
pub const fn jhash_3words(a: u32, b: u32, c: u32, initval: u32) -> u32 {
    let init = initval.wrapping_add(JHASH_INITVAL).wrapping_add(3 << 2);
    finalize(
        a.wrapping_add(init),
        b.wrapping_add(init),
        c.wrapping_add(init),
    )
}

/// The 4 words of a 16-byte address, each read little-endian.
#[inline(always)]
const fn addr_words(addr: &Addr) -> [u32; 4] {
    let b = addr.0;
    [
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
    ]
}

/// The hash of a transport flow, identical in the kernel and in user space.
///
/// `src`/`dst` are the packet's source and destination addresses; `src_port_be`/`dst_port_be`
/// its ports in network byte order (see the [module docs](self) for exactly what that means);
/// `proto` the IP protocol; `seed` the fleet-wide seed from config, so every host maps a flow to
/// the same slot. When both addresses are IPv4-mapped this is [`flow_hash_v4`] of their IPv4
/// bytes, otherwise [`flow_hash_v6`].
#[inline(always)]
pub const fn flow_hash(
    src: &Addr,
    dst: &Addr,
    src_port_be: u16,
    dst_port_be: u16,
    proto: u8,
    seed: u32,
) -> u32 {
    let s = addr_words(src);
    let d = addr_words(dst);
    let ports = ports_word(src_port_be, dst_port_be);
    if is_v4_mapped(&s) && is_v4_mapped(&d) {
        v4_words(s[3], d[3], ports, proto, seed)
    } else {
        v6_words(&s, &d, ports, proto, seed)
    }
}

/// [`flow_hash`] of an IPv4 flow: Linux `jhash_3words(saddr, daddr, ports, seed ^ proto)`.
///
/// `src`/`dst` are the 4 address bytes as on the wire (`iph->saddr`), ports as in [`flow_hash`].
#[inline(always)]
pub const fn flow_hash_v4(
    src: [u8; 4],
    dst: [u8; 4],
    src_port_be: u16,
    dst_port_be: u16,
    proto: u8,
    seed: u32,
) -> u32 {
    v4_words(
        u32::from_le_bytes(src),
        u32::from_le_bytes(dst),
        ports_word(src_port_be, dst_port_be),
        proto,
        seed,
    )
}

/// [`flow_hash`] of an IPv6 flow: Linux `jhash2(k, 10, seed)` over `src`, `dst`, ports, `proto`.
///
/// Meant for addresses that are not both IPv4-mapped; [`flow_hash`] never takes this path for
/// an IPv4 flow (calling this with IPv4-mapped addresses gives a different, equally good hash).
#[inline(always)]
pub const fn flow_hash_v6(
    src: &[u8; 16],
    dst: &[u8; 16],
    src_port_be: u16,
    dst_port_be: u16,
    proto: u8,
    seed: u32,
) -> u32 {
    v6_words(
        &addr_words(&Addr(*src)),
        &addr_words(&Addr(*dst)),
        ports_word(src_port_be, dst_port_be),
        proto,
        seed,
    )
}

/// The source port's wire bytes then the destination port's, read little-endian.
#[inline(always)]
const fn ports_word(src_port_be: u16, dst_port_be: u16) -> u32 {
    let sp = src_port_be.to_ne_bytes();
    let dp = dst_port_be.to_ne_bytes();
    u32::from_le_bytes([sp[0], sp[1], dp[0], dp[1]])
}

/// `::ffff:0:0/96` in words: bytes `0..12` are `0, …, 0, 0xff, 0xff`.
#[inline(always)]
const fn is_v4_mapped(w: &[u32; 4]) -> bool {
    w[0] == 0 && w[1] == 0 && w[2] == 0xffff_0000
}

#[inline(always)]
const fn v4_words(src: u32, dst: u32, ports: u32, proto: u8, seed: u32) -> u32 {
    jhash_3words(src, dst, ports, seed ^ proto as u32)
}

/// `jhash2(k, 10, seed)` unrolled: three `mix` rounds over `k[0..9]`, `k[9]` into `final`.
#[inline(always)]
const fn v6_words(s: &[u32; 4], d: &[u32; 4], ports: u32, proto: u8, seed: u32) -> u32 {
    // jhash2: a = b = c = JHASH_INITVAL + (length << 2) + initval, with length = 10 words.
    let init = JHASH_INITVAL.wrapping_add(10 << 2).wrapping_add(seed);
    let (a, b, c) = mix(
        init.wrapping_add(s[0]),
        init.wrapping_add(s[1]),
        init.wrapping_add(s[2]),
    );
    let (a, b, c) = mix(
        a.wrapping_add(s[3]),
        b.wrapping_add(d[0]),
        c.wrapping_add(d[1]),
    );
    let (a, b, c) = mix(
        a.wrapping_add(d[2]),
        b.wrapping_add(d[3]),
        c.wrapping_add(ports),
    );
    finalize(a.wrapping_add(proto as u32), b, c)
}

/// Maps `hash` onto `0..table_size` (Lemire's multiply-shift: `hash * table_size / 2^32`).
///
/// Uniform for a uniform `hash`, one multiply and a shift, no division; the result is always
/// `< table_size` when `table_size > 0`, and `0` when it is `0` (the caller must still treat an
/// empty table as "no owner"). Both steering points must pick the Maglev slot with this function.
#[inline(always)]
pub const fn table_slot(hash: u32, table_size: u32) -> u32 {
    ((hash as u64 * table_size as u64) >> 32) as u32
}

/// One pinned input/output pair of [`flow_hash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownAnswer {
    pub src: Addr,
    pub dst: Addr,
    /// Network order, like the packet (`port.to_be()`).
    pub src_port_be: u16,
    /// Network order, like the packet (`port.to_be()`).
    pub dst_port_be: u16,
    pub proto: u8,
    pub seed: u32,
    /// `flow_hash(src, dst, src_port_be, dst_port_be, proto, seed)`.
    pub hash: u32,
}

const V6_CLIENT: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
];
const V6_VIP: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80,
];

/// Known answers of [`flow_hash`], computed with Linux's `jhash_3words()` (IPv4) and `jhash2()`
/// (IPv6) compiled from C. The kernel-side implementation must reproduce every one (run them
/// through `BPF_PROG_TEST_RUN`).
pub const KNOWN_ANSWERS: [KnownAnswer; 8] = [
    // 192.0.2.1:40000 -> 198.51.100.10:80 TCP, seed 0.
    KnownAnswer {
        src: Addr::from_v4([192, 0, 2, 1]),
        dst: Addr::from_v4([198, 51, 100, 10]),
        src_port_be: 40000u16.to_be(),
        dst_port_be: 80u16.to_be(),
        proto: crate::proto::TCP,
        seed: 0,
        hash: 0x430f_80d6,
    },
    // Same flow, seed 0x5eed_0001.
    KnownAnswer {
        src: Addr::from_v4([192, 0, 2, 1]),
        dst: Addr::from_v4([198, 51, 100, 10]),
        src_port_be: 40000u16.to_be(),
        dst_port_be: 80u16.to_be(),
        proto: crate::proto::TCP,
        seed: 0x5eed_0001,
        hash: 0x0164_f22b,
    },
    // Next source port.
    KnownAnswer {
        src: Addr::from_v4([192, 0, 2, 1]),
        dst: Addr::from_v4([198, 51, 100, 10]),
        src_port_be: 40001u16.to_be(),
        dst_port_be: 80u16.to_be(),
        proto: crate::proto::TCP,
        seed: 0x5eed_0001,
        hash: 0xf945_2d01,
    },
    // Same addresses and ports over UDP.
    KnownAnswer {
        src: Addr::from_v4([192, 0, 2, 1]),
        dst: Addr::from_v4([198, 51, 100, 10]),
        src_port_be: 40000u16.to_be(),
        dst_port_be: 80u16.to_be(),
        proto: crate::proto::UDP,
        seed: 0x5eed_0001,
        hash: 0x82dc_b264,
    },
    // [2001:db8::1]:40000 -> [2001:db8::80]:443 TCP.
    KnownAnswer {
        src: Addr::from_v6(V6_CLIENT),
        dst: Addr::from_v6(V6_VIP),
        src_port_be: 40000u16.to_be(),
        dst_port_be: 443u16.to_be(),
        proto: crate::proto::TCP,
        seed: 0x5eed_0001,
        hash: 0x4232_737f,
    },
    // All zero: the degenerate input.
    KnownAnswer {
        src: Addr([0; 16]),
        dst: Addr([0; 16]),
        src_port_be: 0,
        dst_port_be: 0,
        proto: 0,
        seed: 0,
        hash: 0xc0fe_d4b2,
    },
    // IPv4-mapped source, native IPv6 destination: the IPv6 path.
    KnownAnswer {
        src: Addr::from_v4([192, 0, 2, 1]),
        dst: Addr::from_v6(V6_VIP),
        src_port_be: 40000u16.to_be(),
        dst_port_be: 443u16.to_be(),
        proto: crate::proto::TCP,
        seed: 0x5eed_0001,
        hash: 0x0940_68a0,
    },
    // All ones on the IPv4 path.
    KnownAnswer {
        src: Addr::from_v4([255; 4]),
        dst: Addr::from_v4([255; 4]),
        src_port_be: 0xffff,
        dst_port_be: 0xffff,
        proto: 0xff,
        seed: 0xffff_ffff,
        hash: 0x1153_590a,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(o: [u8; 4]) -> Addr {
        Addr::from_v4(o)
    }

    #[test]
    fn known_answers() {
        for (i, k) in KNOWN_ANSWERS.iter().enumerate() {
            let h = flow_hash(
                &k.src,
                &k.dst,
                k.src_port_be,
                k.dst_port_be,
                k.proto,
                k.seed,
            );
            assert_eq!(h, k.hash, "vector {i}: got {h:#010x}");
        }
    }

    /// `jhash_3words` against Linux's values for the same inputs (from the C reference).
    #[test]
    fn jhash_3words_known_answers() {
        assert_eq!(jhash_3words(0, 0, 0, 0), 0x1b68_e557);
        assert_eq!(jhash_3words(1, 2, 3, 0x5eed_0001), 0xf03c_fb8c);
    }

    #[test]
    fn variants_agree_with_flow_hash() {
        for k in KNOWN_ANSWERS {
            let (sp, dp) = (k.src_port_be, k.dst_port_be);
            let want = match (k.src.as_v4(), k.dst.as_v4()) {
                (Some(s), Some(d)) => flow_hash_v4(s, d, sp, dp, k.proto, k.seed),
                _ => flow_hash_v6(&k.src.0, &k.dst.0, sp, dp, k.proto, k.seed),
            };
            assert_eq!(want, k.hash);
        }
    }

    #[test]
    fn is_const_evaluable() {
        const H: u32 = flow_hash(&Addr([0; 16]), &Addr([0; 16]), 0, 0, 0, 0);
        assert_eq!(H, KNOWN_ANSWERS[5].hash);
        const H4: u32 = flow_hash_v4([255; 4], [255; 4], 0xffff, 0xffff, 0xff, 0xffff_ffff);
        assert_eq!(H4, KNOWN_ANSWERS[7].hash);
    }

    #[test]
    fn seed_changes_the_hash() {
        let (s, d) = (v4([10, 0, 0, 1]), v4([10, 0, 0, 2]));
        let a = flow_hash(&s, &d, 1234u16.to_be(), 80u16.to_be(), 6, 1);
        let b = flow_hash(&s, &d, 1234u16.to_be(), 80u16.to_be(), 6, 2);
        assert_ne!(a, b);
    }

    #[test]
    fn every_field_matters() {
        let (s, d) = (v4([10, 0, 0, 1]), v4([10, 0, 0, 2]));
        let base = flow_hash(&s, &d, 1234u16.to_be(), 80u16.to_be(), 6, 7);
        let others = [
            flow_hash(&d, &s, 1234u16.to_be(), 80u16.to_be(), 6, 7),
            flow_hash(&s, &d, 80u16.to_be(), 1234u16.to_be(), 6, 7),
            flow_hash(&s, &d, 1235u16.to_be(), 80u16.to_be(), 6, 7),
            flow_hash(&s, &d, 1234u16.to_be(), 81u16.to_be(), 6, 7),
            flow_hash(&s, &d, 1234u16.to_be(), 80u16.to_be(), 17, 7),
            flow_hash(&v4([10, 0, 0, 3]), &d, 1234u16.to_be(), 80u16.to_be(), 6, 7),
            flow_hash(&s, &v4([10, 0, 0, 3]), 1234u16.to_be(), 80u16.to_be(), 6, 7),
        ];
        for (i, h) in others.iter().enumerate() {
            assert_ne!(*h, base, "variant {i}");
        }
    }

    #[test]
    fn ipv4_and_its_v6_lookalike_differ() {
        // Same low 4 bytes, but native IPv6 (no ::ffff: prefix).
        let mut s6 = [0u8; 16];
        s6[12..].copy_from_slice(&[10, 0, 0, 1]);
        let mut d6 = [0u8; 16];
        d6[12..].copy_from_slice(&[10, 0, 0, 2]);
        let h4 = flow_hash(&v4([10, 0, 0, 1]), &v4([10, 0, 0, 2]), 1, 2, 6, 0);
        let h6 = flow_hash(&Addr::from_v6(s6), &Addr::from_v6(d6), 1, 2, 6, 0);
        assert_ne!(h4, h6);
    }

    #[test]
    fn table_slot_stays_in_range() {
        for m in [0u32, 1, 2, 251, 16_381, 65_537, 131_071, u32::MAX] {
            for h in [0u32, 1, 0x7fff_ffff, 0x8000_0000, u32::MAX] {
                let s = table_slot(h, m);
                if m == 0 {
                    assert_eq!(s, 0);
                } else {
                    assert!(s < m, "h={h:#x} m={m} -> {s}");
                }
            }
        }
        assert_eq!(table_slot(u32::MAX, 251), 250);
        assert_eq!(table_slot(0x8000_0000, 100), 50);
    }
}
