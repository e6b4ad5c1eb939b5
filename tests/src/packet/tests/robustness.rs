//! The parser never panics: truncation at every byte and random mutation.

use super::*;

#[test]
fn truncation_at_every_byte_never_panics() {
    let full = Packet::new()
        .qinq(1, 2)
        .ipv6("fc00::1", "fc00::2")
        .hop_by_hop(&[])
        .tcp(1, 2)
        .syn()
        .mss(1)
        .timestamp(1, 2)
        .payload(b"data")
        .build();
    for n in 0..full.len() {
        let cut = Packet::new()
            .qinq(1, 2)
            .ipv6("fc00::1", "fc00::2")
            .hop_by_hop(&[])
            .tcp(1, 2)
            .syn()
            .mss(1)
            .timestamp(1, 2)
            .payload(b"data")
            .truncate(n)
            .build();
        assert_eq!(cut, full[..n]);
        assert!(
            Frame::parse(&cut).is_err(),
            "cut at {n} parsed: {}",
            describe(&cut)
        );
    }
    assert!(Frame::parse(&full).is_ok());
}

#[test]
fn mutated_frames_never_panic() {
    let seeds = [
        Packet::new()
            .ipv4("10.0.0.1", "10.0.0.2")
            .ip_options(&[7, 7, 4])
            .tcp(1, 2)
            .mss(9)
            .sack_perm()
            .build(),
        Packet::new()
            .ipv6("fc00::1", "fc00::2")
            .hop_by_hop(&[1, 0])
            .fragment(0, false, 1)
            .udp(1, 2)
            .build(),
        Packet::new()
            .vlan(3)
            .ipv6("fc00::1", "fc00::2")
            .icmp_echo(1, 1)
            .build(),
    ];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for seed in &seeds {
        for _ in 0..3000 {
            let mut f = seed.clone();
            for _ in 0..(1 + rnd() % 4) {
                let i = (rnd() as usize) % f.len();
                f[i] = rnd() as u8;
            }
            let _ = Frame::parse(&f).map(|p| (p.summary(), p.fields()));
            let _ = describe(&f);
        }
    }
}
