//! Target selection algorithms. Pure: the caller passes counters, randomness and the hash key.

/// Which algorithm a target group uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    LeastOutstandingRequests,
    WeightedRandom,
    /// Weighted rendezvous (highest random weight) hashing of a per-request key.
    ConsistentHash,
}

/// One target as selection sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Candidate {
    pub weight: u32,
    pub outstanding: u64,
    /// Stable hash of the target's identity (address:port), for consistent hashing.
    pub id_hash: u64,
    /// Healthy (or fail-open) and not already tried for this request.
    pub eligible: bool,
    /// Slow start: thousandths of the picks this target turns away (0 = its full share).
    pub holdback: u16,
}

/// Inputs that vary per request.
#[derive(Debug, Clone, Copy)]
pub struct Draw {
    /// A counter incremented per request (round robin position, tie breaking).
    pub seq: u64,
    /// A random number.
    pub random: u64,
    /// Hash of the consistent-hash key, if the request has one.
    pub key: Option<u64>,
}

/// Picks an index into `c`, or `None` if no candidate is eligible with weight > 0. A
/// candidate in slow start keeps a pick with probability `1 - holdback/1000`, else the pick is
/// made again without it (see `slow_start`); when nothing else is left it keeps it.
pub fn pick(alg: Algorithm, c: &[Candidate], d: Draw) -> Option<usize> {
    let first = pick_once(alg, c, d)?;
    if !held_back(&c[first], d) {
        return Some(first);
    }
    // Slow start only: a copy of the candidates without the ones turned away so far.
    let mut rest = c.to_vec();
    let mut kept = first;
    for _ in 0..c.len() {
        rest[kept].eligible = false;
        match pick_once(alg, &rest, d) {
            None => return Some(first),
            Some(i) if !held_back(&rest[i], d) => return Some(i),
            Some(i) => kept = i,
        }
    }
    Some(first)
}

/// Does slow start turn this pick of `x` away? The roll is the request's key's (so a key stays
/// on the target once the ramp passed it) or else random.
fn held_back(x: &Candidate, d: Draw) -> bool {
    if x.holdback == 0 {
        return false;
    }
    let seed = match d.key {
        Some(k) => k ^ 0x5851_f42d_4c95_7f2d,
        None => d.random,
    };
    (mix(seed ^ x.id_hash) % 1000) < x.holdback as u64
}

fn pick_once(alg: Algorithm, c: &[Candidate], d: Draw) -> Option<usize> {
    let usable = |x: &Candidate| x.eligible && x.weight > 0;
    let total: u64 = c
        .iter()
        .filter(|x| usable(x))
        .map(|x| x.weight as u64)
        .sum();
    if total == 0 {
        return None;
    }
    match alg {
        Algorithm::RoundRobin => by_weight(c, d.seq % total),
        Algorithm::WeightedRandom => by_weight(c, d.random % total),
        Algorithm::LeastOutstandingRequests => {
            let n = c.len();
            let start = (d.seq % n as u64) as usize;
            let mut best: Option<usize> = None;
            for k in 0..n {
                let i = (start + k) % n;
                if !usable(&c[i]) {
                    continue;
                }
                best = match best {
                    // a.outstanding / a.weight < b.outstanding / b.weight, without division.
                    Some(b)
                        if (c[i].outstanding as u128) * (c[b].weight as u128)
                            >= (c[b].outstanding as u128) * (c[i].weight as u128) =>
                    {
                        Some(b)
                    }
                    _ => Some(i),
                };
            }
            best
        }
        Algorithm::ConsistentHash => match d.key {
            None => by_weight(c, d.seq % total),
            Some(key) => {
                let mut best: Option<(usize, f64)> = None;
                for (i, x) in c.iter().enumerate().filter(|(_, x)| usable(x)) {
                    let h = mix(key ^ x.id_hash);
                    // u in (0, 1); score = -w / ln(u): weighted rendezvous hashing.
                    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                    let score = -(x.weight as f64) / u.ln();
                    if best.is_none_or(|(_, s)| score > s) {
                        best = Some((i, score));
                    }
                }
                best.map(|(i, _)| i)
            }
        },
    }
}

/// The candidate whose cumulative weight range holds `point` (< total usable weight).
fn by_weight(c: &[Candidate], mut point: u64) -> Option<usize> {
    for (i, x) in c.iter().enumerate() {
        if !x.eligible || x.weight == 0 {
            continue;
        }
        if point < x.weight as u64 {
            return Some(i);
        }
        point -= x.weight as u64;
    }
    None
}

/// What target choice knows of one target besides its weight (`eligible` turns these into
/// `Candidate::eligible`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    pub weight: u32,
    /// State `healthy`.
    pub healthy: bool,
    /// Not `unused` or `draining` (fail-open may use it).
    pub routable: bool,
    /// Passive health ejected it.
    pub ejected: bool,
    /// In weir's zone, or cross-zone is on.
    pub local: bool,
    /// At its concurrency cap.
    pub full: bool,
    /// Already failed to connect for this request.
    pub tried: bool,
    /// SRV priority (discovered targets; 0 for the others): lower first.
    pub priority: u16,
}

/// Which targets a request may go to, in tiers: healthy, not ejected and local (cross-zone
/// off: weir's zone while it has one); else healthy and not ejected in any zone; else, when no
/// target at all is healthy and not ejected, every routable target (ALB's fail-open, ejected
/// ones included). The first two tiers take only the lowest priority that has such a target
/// not yet tried (SRV priorities, RFC 2782: a higher one is a backup, used while no target of
/// a lower one is up). Within the tier, targets at their concurrency cap are left out unless all
/// are (the request then queues at the one picked). Tried targets never.
pub fn eligible(f: &[Facts], out: &mut [bool]) {
    let up = |x: &Facts| x.weight > 0 && x.healthy && !x.ejected;
    let base = |x: &Facts| x.weight > 0 && x.routable && !x.tried;
    let first = f
        .iter()
        .filter(|x| base(x) && up(x))
        .map(|x| x.priority)
        .min();
    let up_first = |x: &Facts| base(x) && up(x) && Some(x.priority) == first;
    let tiers: [&dyn Fn(&Facts) -> bool; 3] =
        [&|x| up_first(x) && x.local, &|x| up_first(x), &|x| base(x)];
    let fail_open = !f.iter().any(up);
    let in_tier = tiers[..if fail_open { 3 } else { 2 }]
        .iter()
        .find(|t| f.iter().any(t));
    let Some(in_tier) = in_tier else {
        out.iter_mut().for_each(|o| *o = false);
        return;
    };
    let room = f.iter().any(|x| in_tier(x) && !x.full);
    for (o, x) in out.iter_mut().zip(f) {
        *o = in_tier(x) && !(room && x.full);
    }
}

/// What `eligible` and `pick` come to for a group of one target: it is picked when it has
/// a weight, is routable and was not tried (a target that is not up is the fail-open tier's;
/// at its cap it queues; slow start has no other target to turn a pick to).
pub fn only_one(f: &Facts) -> bool {
    f.weight > 0 && f.routable && !f.tried
}

/// Weighted choice among `weights` (a forward action's target groups).
pub fn pick_weighted(weights: &[u32], random: u64) -> Option<usize> {
    let total: u64 = weights.iter().map(|&w| w as u64).sum();
    if total == 0 {
        return None;
    }
    let mut point = random % total;
    for (i, &w) in weights.iter().enumerate() {
        if point < w as u64 {
            return Some(i);
        }
        point -= w as u64;
    }
    None
}

/// FNV-1a, then a finaliser: a stable 64-bit hash for keys and target identities.
pub fn hash_bytes(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Candidate {
                weight: w,
                outstanding: 0,
                id_hash: hash_bytes(format!("10.0.0.{i}:80").as_bytes()),
                eligible: true,
                holdback: 0,
            })
            .collect()
    }

    fn draw(seq: u64) -> Draw {
        Draw {
            seq,
            random: seq.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            key: None,
        }
    }

    /// `only_one` is what the tiers and every algorithm decide for a group of one target, in
    /// every state, at its cap or not, in slow start or not, with a key or without.
    #[test]
    fn one_target_is_what_eligible_and_pick_decide() {
        let algs = [
            Algorithm::RoundRobin,
            Algorithm::LeastOutstandingRequests,
            Algorithm::WeightedRandom,
            Algorithm::ConsistentHash,
        ];
        for bits in 0..(1u32 << 8) {
            let b = |i: u32| bits & (1 << i) != 0;
            let f = Facts {
                weight: if b(0) { 3 } else { 0 },
                healthy: b(1),
                routable: b(2),
                ejected: b(3),
                local: b(4),
                full: b(5),
                tried: b(6),
                priority: u16::from(b(7)),
            };
            let mut ok = [false];
            eligible(&[f], &mut ok);
            for (alg, holdback, seq) in algs
                .into_iter()
                .flat_map(|a| [(a, 0, 1), (a, 999, 2), (a, 500, 7)])
            {
                let c = Candidate {
                    weight: f.weight,
                    outstanding: seq,
                    id_hash: 42,
                    eligible: ok[0],
                    holdback,
                };
                for key in [None, Some(seq)] {
                    let d = Draw { key, ..draw(seq) };
                    let picked = pick(alg, &[c], d) == Some(0);
                    assert_eq!(picked, only_one(&f), "{f:?} {alg:?} {holdback}");
                }
            }
        }
    }

    #[test]
    fn round_robin_follows_weights() {
        let c = cands(&[1, 2, 0]);
        let picks: Vec<_> = (0..6)
            .map(|s| pick(Algorithm::RoundRobin, &c, draw(s)).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 1, 1, 0, 1, 1]);
    }

    #[test]
    fn ineligible_and_empty() {
        let mut c = cands(&[1, 1]);
        c[0].eligible = false;
        for s in 0..4 {
            assert_eq!(pick(Algorithm::RoundRobin, &c, draw(s)), Some(1));
        }
        c[1].eligible = false;
        assert_eq!(pick(Algorithm::LeastOutstandingRequests, &c, draw(0)), None);
        assert_eq!(pick(Algorithm::WeightedRandom, &[], draw(0)), None);
    }

    #[test]
    fn least_outstanding_prefers_idle_and_rotates_ties() {
        let mut c = cands(&[1, 1, 1]);
        c[0].outstanding = 5;
        c[1].outstanding = 2;
        c[2].outstanding = 2;
        let picks: Vec<_> = (0..4)
            .map(|s| pick(Algorithm::LeastOutstandingRequests, &c, draw(s)).unwrap())
            .collect();
        assert!(picks.iter().all(|&p| p != 0));
        assert!(picks.contains(&1) && picks.contains(&2));
        // weight 3 with 3 outstanding ties with weight 1 with 1 outstanding; 2 outstanding loses.
        let mut c = cands(&[3, 1]);
        c[0].outstanding = 2;
        c[1].outstanding = 1;
        assert_eq!(
            pick(Algorithm::LeastOutstandingRequests, &c, draw(1)),
            Some(0)
        );
    }

    #[test]
    fn weighted_random_distribution() {
        let c = cands(&[1, 3]);
        let mut n = [0u32; 2];
        let mut rng = fastrand::Rng::with_seed(7);
        for s in 0..40_000 {
            let d = Draw {
                seq: s,
                random: rng.u64(..),
                key: None,
            };
            n[pick(Algorithm::WeightedRandom, &c, d).unwrap()] += 1;
        }
        let share = n[1] as f64 / 40_000.0;
        assert!((0.72..0.78).contains(&share), "share {share}");
    }

    #[test]
    fn consistent_hash_is_stable_and_moves_little() {
        let c = cands(&[1, 1, 1, 1, 1]);
        let keyed = |c: &[Candidate], k: u64| {
            pick(
                Algorithm::ConsistentHash,
                c,
                Draw {
                    seq: k,
                    random: 0,
                    key: Some(hash_bytes(&k.to_le_bytes())),
                },
            )
            .unwrap()
        };
        let before: Vec<_> = (0..2000).map(|k| keyed(&c, k)).collect();
        let again: Vec<_> = (0..2000).map(|k| keyed(&c, k)).collect();
        assert_eq!(before, again);
        let mut c2 = c.clone();
        c2[4].eligible = false;
        let after: Vec<_> = (0..2000).map(|k| keyed(&c2, k)).collect();
        for (b, a) in before.iter().zip(&after) {
            if *b != 4 {
                assert_eq!(a, b, "a key not on the removed target moved");
            }
        }
        let on4 = before.iter().filter(|&&b| b == 4).count();
        assert!(
            (300..500).contains(&on4),
            "{on4} of 2000 keys on one of 5 targets"
        );
    }

    fn shares(alg: Algorithm, c: &[Candidate], n: u64, keyed: bool) -> Vec<f64> {
        let mut count = vec![0u64; c.len()];
        let mut rng = fastrand::Rng::with_seed(11);
        for s in 0..n {
            let d = Draw {
                seq: s,
                random: rng.u64(..),
                key: keyed.then(|| hash_bytes(&s.to_le_bytes())),
            };
            count[pick(alg, c, d).unwrap()] += 1;
        }
        count.iter().map(|&k| k as f64 / n as f64).collect()
    }

    #[test]
    fn slow_start_scales_the_share_for_every_algorithm() {
        for alg in [
            Algorithm::RoundRobin,
            Algorithm::WeightedRandom,
            Algorithm::ConsistentHash,
        ] {
            for (hold, want) in [(0u16, 0.25), (500, 0.125), (900, 0.025)] {
                let mut c = cands(&[1, 1, 1, 1]);
                c[3].holdback = hold;
                let keyed = alg == Algorithm::ConsistentHash;
                let got = shares(alg, &c, 40_000, keyed)[3];
                assert!(
                    (got - want).abs() < 0.01,
                    "{alg:?} holdback {hold}: share {got}, want {want}"
                );
            }
        }
        // Least outstanding: the idle newcomer would win every pick; the ramp caps it.
        let mut c = cands(&[1, 1]);
        c[0].outstanding = 3;
        c[1].holdback = 700;
        let got = shares(Algorithm::LeastOutstandingRequests, &c, 20_000, false)[1];
        assert!((got - 0.3).abs() < 0.02, "share {got}");
        // Nothing else left: the held-back target still takes the request.
        let mut c = cands(&[1, 1]);
        c[0].eligible = false;
        c[1].holdback = 999;
        assert_eq!(shares(Algorithm::RoundRobin, &c, 100, false)[1], 1.0);
    }

    #[test]
    fn slow_start_moves_a_hashed_key_once() {
        let mut c = cands(&[1, 1, 1]);
        let key = |k: u64, c: &[Candidate]| {
            let d = Draw {
                seq: 0,
                random: k.wrapping_mul(7),
                key: Some(hash_bytes(&k.to_le_bytes())),
            };
            pick(Algorithm::ConsistentHash, c, d).unwrap()
        };
        let mut on2 = vec![false; 3000];
        for hold in (0..=900).rev().step_by(100) {
            c[2].holdback = hold;
            for (k, was) in on2.iter_mut().enumerate() {
                let now = key(k as u64, &c) == 2;
                assert!(
                    now || !*was,
                    "key {k} left the ramping target at holdback {hold}"
                );
                *was = now;
            }
        }
    }

    fn facts(n: usize) -> Vec<Facts> {
        vec![
            Facts {
                weight: 1,
                healthy: true,
                routable: true,
                local: true,
                ..Facts::default()
            };
            n
        ]
    }

    fn which(f: &[Facts]) -> Vec<usize> {
        let mut out = vec![false; f.len()];
        eligible(f, &mut out);
        (0..f.len()).filter(|&i| out[i]).collect()
    }

    #[test]
    fn tiers_ejected_zone_fail_open_and_full() {
        let mut f = facts(4);
        assert_eq!(which(&f), vec![0, 1, 2, 3]);
        f[0].ejected = true;
        f[1].healthy = false;
        assert_eq!(which(&f), vec![2, 3]);
        // Zones: the local tier while it has a target.
        f[2].local = false;
        assert_eq!(which(&f), vec![3]);
        f[3].tried = true;
        assert_eq!(which(&f), vec![2], "local target tried: another zone");
        f[2].tried = true;
        assert_eq!(
            which(&f),
            Vec::<usize>::new(),
            "healthy ones exist, all tried"
        );
        // Fail-open: nothing healthy and not ejected: every routable one, ejected included.
        let mut f = facts(3);
        f[0].ejected = true;
        f[1].healthy = false;
        f[2].healthy = false;
        f[2].routable = false;
        assert_eq!(which(&f), vec![0, 1]);
        // Full targets are left out while another has room.
        let mut f = facts(3);
        f[0].full = true;
        assert_eq!(which(&f), vec![1, 2]);
        f[1].full = true;
        f[2].full = true;
        assert_eq!(which(&f), vec![0, 1, 2], "all full: the pick queues");
        f[2].weight = 0;
        assert_eq!(which(&f), vec![0, 1]);
    }

    #[test]
    fn a_higher_priority_is_a_backup_while_a_lower_one_is_up() {
        // 0 and 1 at priority 10, 2 and 3 at 20 (a backup), 4 at 30.
        let mut f = facts(5);
        for (x, p) in f.iter_mut().zip([10, 10, 20, 20, 30]) {
            x.priority = p;
        }
        assert_eq!(which(&f), vec![0, 1]);
        f[0].healthy = false;
        assert_eq!(which(&f), vec![1], "one of the first priority is enough");
        f[1].ejected = true;
        assert_eq!(which(&f), vec![2, 3], "none of it up: the next priority");
        // The zone tier works within the priority in use: a local backup does not win over a
        // remote target of a lower priority.
        f[1].ejected = false;
        f[1].local = false;
        assert_eq!(which(&f), vec![1]);
        // A target of the first priority tried (its connection failed): the retry goes to the
        // next priority.
        f[1].tried = true;
        assert_eq!(which(&f), vec![2, 3]);
        // Weight 0 takes no requests, and does not hold its priority.
        f[1].tried = false;
        f[1].weight = 0;
        f[2].weight = 0;
        assert_eq!(which(&f), vec![3]);
        // Nothing up at all: fail-open over every routable target, whatever its priority.
        for x in &mut f {
            x.healthy = false;
        }
        assert_eq!(which(&f), vec![0, 3, 4]);
    }

    #[test]
    fn weighted_groups() {
        assert_eq!(pick_weighted(&[0, 5], 3), Some(1));
        assert_eq!(pick_weighted(&[0, 0], 3), None);
        assert_eq!(pick_weighted(&[2, 1], 2), Some(1));
    }
}
