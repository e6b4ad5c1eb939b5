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

/// Picks an index into `c`, or `None` if no candidate is eligible with weight > 0.
pub fn pick(alg: Algorithm, c: &[Candidate], d: Draw) -> Option<usize> {
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

    #[test]
    fn weighted_groups() {
        assert_eq!(pick_weighted(&[0, 5], 3), Some(1));
        assert_eq!(pick_weighted(&[0, 0], 3), None);
        assert_eq!(pick_weighted(&[2, 1], 2), Some(1));
    }
}
