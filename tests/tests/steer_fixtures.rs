//! The kernel build of the flow hash and the Maglev table lookup, held to the user-space build
//! through `BPF_PROG_TEST_RUN` (`steer_probe` shares `weir_steer`'s code): the pinned known
//! answers, thousands of random tuples, and a table flip. Needs root (BPF).

use std::net::IpAddr;

use lb_common::{Addr, hash::KNOWN_ANSWERS};
use lb_userspace::{
    workers::steer::{Steering, owner},
    xdp::run_frame,
};

const SEED: u32 = 0x5eed_0007;

/// Runs the probe on one record; returns (hash with the record's seed, hash with the config's
/// seed, worker).
fn probe(
    s: &mut Steering,
    src: Addr,
    dst: Addr,
    sport_be: u16,
    dport_be: u16,
    proto: u8,
    seed: u32,
) -> (u32, u32, u32) {
    let mut frame = vec![0u8; 14];
    frame.extend_from_slice(&src.0);
    frame.extend_from_slice(&dst.0);
    frame.extend_from_slice(&sport_be.to_ne_bytes());
    frame.extend_from_slice(&dport_be.to_ne_bytes());
    frame.extend_from_slice(&[proto, 0, 0, 0]);
    frame.extend_from_slice(&seed.to_ne_bytes());
    frame.extend_from_slice(&[0u8; 12]);
    let (action, out) = run_frame(s.probe().unwrap(), &frame).unwrap();
    assert_eq!(action, 2, "XDP_PASS");
    let word = |i: usize| u32::from_ne_bytes(out[58 + 4 * i..62 + 4 * i].try_into().unwrap());
    (word(0), word(1), word(2))
}

fn addr(ip: IpAddr) -> Addr {
    lb_userspace::xdp::to_addr(ip)
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn ip(&mut self, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::from((u128::from(self.next()) << 64 | u128::from(self.next())).to_be_bytes())
        } else {
            IpAddr::from((self.next() as u32).to_be_bytes())
        }
    }
}

#[test]
fn kernel_hash_matches_the_pinned_known_answers() {
    let mut s = Steering::load(4, SEED).expect("load weir-steer (needs root)");
    for (i, ka) in KNOWN_ANSWERS.iter().enumerate() {
        let (h, _, _) = probe(
            &mut s,
            ka.src,
            ka.dst,
            ka.src_port_be,
            ka.dst_port_be,
            ka.proto,
            ka.seed,
        );
        assert_eq!(
            h, ka.hash,
            "known answer {i}: kernel {h:#x}, pinned {:#x}",
            ka.hash
        );
    }
}

#[test]
fn kernel_and_user_name_the_same_owner_before_and_after_a_flip() {
    let mut s = Steering::load(4, SEED).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for live in [vec![0u32, 1, 2, 3], vec![0, 1, 3], vec![0, 1, 2, 3]] {
        s.set_live(&live).unwrap();
        for i in 0..2000 {
            let v6 = i % 3 == 0;
            let (src, dst) = (rng.ip(v6), rng.ip(v6));
            let (sport, dport) = (rng.next() as u16, rng.next() as u16);
            let (_, h, worker) = probe(
                &mut s,
                addr(src),
                addr(dst),
                sport.to_be(),
                dport.to_be(),
                6,
                0,
            );
            let user_h = lb_common::hash::flow_hash(
                &addr(src),
                &addr(dst),
                sport.to_be(),
                dport.to_be(),
                6,
                SEED,
            );
            assert_eq!(h, user_h, "hash of {src}:{sport} -> {dst}:{dport}");
            let want = owner(&live, 4, SEED, (src, sport), (dst, dport)).unwrap();
            assert_eq!(
                worker, want,
                "owner of {src}:{sport} -> {dst}:{dport} with live {live:?}"
            );
        }
    }
}

#[test]
fn no_live_worker_means_no_owner() {
    let mut s = Steering::load(4, SEED).unwrap();
    s.set_live(&[]).unwrap();
    let (_, _, worker) = probe(
        &mut s,
        Addr::from_v4([10, 0, 0, 1]),
        Addr::from_v4([10, 0, 0, 2]),
        1,
        2,
        6,
        0,
    );
    assert_eq!(worker, u32::MAX);
}
