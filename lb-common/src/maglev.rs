//! Weighted Maglev lookup tables (user space only; the data path just indexes the result).
//!
//! # Algorithm
//!
//! Maglev (Eisenbud et al., NSDI'16, §3.4) fills a table of `M` slots, `M` prime, so that every
//! slot names a backend, backends own near-equal shares, and a change in the backend set moves
//! few slots. Each backend gets its own permutation of the slots,
//!
//! ```text
//! offset = h1(id) % M
//! skip   = h2(id) % (M - 1) + 1
//! permutation[j] = (offset + j * skip) % M        j = 0, 1, …, M-1
//! ```
//!
//! which visits every slot exactly once because `M` is prime and `1 <= skip < M`. Backends then
//! take turns: on its turn a backend claims the next slot of its permutation that is still free.
//! The table is full after exactly `M` claims.
//!
//! **Weights** follow Katran's `MaglevHashV2` (Cilium does the same with floats): every round,
//! each backend adds its weight to an accumulator, and takes a turn only when the accumulator
//! reaches the largest weight, which it then subtracts. The heaviest backends claim a slot every
//! round, a backend of half that weight every other round, and weight 0 never claims one. Shares
//! come out proportional to the weights to within a slot or two; with equal weights every backend
//! owns `⌊M/N⌋` or `⌈M/N⌉` slots exactly.
//!
//! `h1`/`h2` are [`jhash_3words`] of the backend id with two different tags and the config seed,
//! so every host that has the same seed and backend set builds the same table. Backends are
//! sorted by id before the turns start: the input order does not matter.
//!
//! # Sizes
//!
//! With equal weights the max/min share ratio is at most `⌈M/N⌉ / ⌊M/N⌋`, so `M > 100·N` keeps
//! the imbalance within 1 %. [`TABLE_SIZES`] lists the supported primes (Cilium's list, each
//! just under a power of two) and [`table_size_for`] picks the smallest that satisfies this.
//!
//! # Disruption
//!
//! Removing one of `N` backends frees its slots; because every other backend's turn order shifts
//! slightly, a few of *their* slots move too (Maglev trades minimal disruption for balance, §3.4
//! of the paper). Measured with equal weights over seeds 1..=48, removing the first, middle and
//! last backend (`tests/maglev.rs`, `measure_disruption`), the slots that change **beyond** the
//! removed backend's own share, as % of `M`, mean / max:
//!
//! | N   | M = [`table_size_for`]`(N)` | M = 16381   | M = 65521   |
//! |-----|-----------------------------|-------------|-------------|
//! | 2   | 251: 0 / 0                  | 0 / 0       | 0 / 0       |
//! | 4   | 509: 1.47 / 6.09            | 0.15 / 0.51 | 0.08 / 0.82 |
//! | 8   | 1021: 2.07 / 3.62           | 0.45 / 1.67 | 0.20 / 0.45 |
//! | 16  | 2039: 2.16 / 3.14           | 0.66 / 1.50 | 0.30 / 0.48 |
//! | 32  | 4093: 1.93 / 2.54           | 0.86 / 1.27 | 0.38 / 0.58 |
//! | 64  | 8191: 1.58 / 2.65           | 1.07 / 1.32 | 0.48 / 0.60 |
//! | 100 | 16381: 1.33 / 1.52          | (same)      | 0.57 / 0.63 |
//! | 163 | 16381: 1.61 / 1.86          | (same)      | 0.68 / 0.74 |
//!
//! The tests assert, with margin over the worst case measured: extra disruption ≤ 8 % of `M`
//! below 16381 slots, ≤ 2.5 % of `M` at the default 16381 and up, ≤ 1 % of `M` at 65521 and up.
//! Bigger tables disrupt less; the default keeps it under 2 % for every pool it is meant for.
//! Adding the backend back rebuilds exactly the original table, since the table is a function of
//! the set (and a drained backend, weight 0, builds the same table as a removed one).

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::hash::jhash_3words;

/// The supported table sizes: primes just below powers of two, from 251 to 131071 (the list
/// Cilium accepts for `--bpf-lb-maglev-table-size`).
pub const TABLE_SIZES: [u32; 10] = [
    251, 509, 1_021, 2_039, 4_093, 8_191, 16_381, 32_749, 65_521, 131_071,
];

/// The largest table [`build`] accepts (512 KiB as a BPF array of `u32`).
pub const MAX_TABLE_SIZE: u32 = 131_071;

/// Slots per backend that keep the worst-case imbalance within 1 % (`M > 100·N`).
pub const MIN_SLOTS_PER_BACKEND: u32 = 100;

/// The default table size: 16381.
///
/// - It keeps the imbalance ≤ 1 % for up to 163 backends (`163 · 100 < 16381`): one worker per
///   CPU on hosts of up to 163 CPUs, and target pools of that size.
/// - It costs 64 KiB (`16381 × 4` bytes) as a BPF array of `u32`; one table per VIP for the
///   [`crate::maps::MAX_VIPS`] = 512 services is 32 MiB, still modest, whereas 65521 would be
///   128 MiB.
/// - It builds in well under a millisecond, so rebuilding on every membership change is free.
///
/// Cilium chose the same default for the same reasons. Larger pools use [`table_size_for`].
pub const DEFAULT_TABLE_SIZE: u32 = 16_381;

/// Tags that make `h1` and `h2` independent functions of the backend id.
const H1_TAG: u32 = 0x6d61_676c; // "magl"
const H2_TAG: u32 = 0x736b_6970; // "skip"

/// A backend to spread flows over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Backend {
    /// Stable identity (worker index, target id). It seeds the backend's permutation, so it must
    /// not change while the backend lives, and it is what the table's slots hold.
    pub id: u32,
    /// Relative weight; 0 means "owns no slots" (drained).
    pub weight: u32,
}

impl Backend {
    pub const fn new(id: u32, weight: u32) -> Self {
        Backend { id, weight }
    }
}

/// Why [`build`] produced no table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No backend has a nonzero weight (the set is empty or fully drained). There is no owner
    /// to name; the caller decides what "no backend" means (drop, pass to the kernel's default).
    NoBackends,
    /// Two backends share this id.
    DuplicateId(u32),
    /// The table size is not a prime in `2..=MAX_TABLE_SIZE`.
    BadTableSize(u32),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoBackends => f.write_str("no backend with a nonzero weight"),
            Error::DuplicateId(id) => write!(f, "backend id {id} appears more than once"),
            Error::BadTableSize(m) => write!(
                f,
                "Maglev table size {m} is not a prime in 2..={MAX_TABLE_SIZE}"
            ),
        }
    }
}

impl core::error::Error for Error {}

/// The smallest supported size with more than 100 slots per backend (imbalance ≤ 1 %).
///
/// `n_backends` counts backends with nonzero weight. Beyond 1310 backends no listed size
/// qualifies and the largest, [`MAX_TABLE_SIZE`], is returned (imbalance then exceeds 1 %).
pub fn table_size_for(n_backends: usize) -> u32 {
    let needed = (n_backends as u64).saturating_mul(MIN_SLOTS_PER_BACKEND as u64);
    TABLE_SIZES
        .iter()
        .copied()
        .find(|&m| u64::from(m) > needed)
        .unwrap_or(MAX_TABLE_SIZE)
}

/// Whether `m` is a table size [`build`] accepts: a prime in `2..=MAX_TABLE_SIZE`.
pub fn is_valid_table_size(m: u32) -> bool {
    if !(2..=MAX_TABLE_SIZE).contains(&m) {
        return false;
    }
    let mut d = 2u32;
    while d * d <= m {
        if m.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// Builds the lookup table: `M = table_size` slots, each holding the `id` of a backend.
///
/// Backends with weight 0 own no slot. Every slot is filled. The result depends only on the
/// *set* of `(id, weight)` pairs, `table_size` and `seed` — not on the order of `backends`.
/// If more backends have a nonzero weight than there are slots, the ones whose turn never comes
/// (the highest ids in the last round) own nothing; [`table_size_for`] avoids that.
///
/// Cost: `O(M log M)` slot probes for equal weights (the permutation walk needs no division):
/// 1.1–1.6 ms at `M = 65537` with 10–100 backends, 0.24 ms at the default 16381 with 64
/// (release build, 2.6 GHz Xeon, `tests/maglev.rs`, `bench_build`).
pub fn build(backends: &[Backend], table_size: u32, seed: u32) -> Result<Vec<u32>, Error> {
    if !is_valid_table_size(table_size) {
        return Err(Error::BadTableSize(table_size));
    }
    let mut sorted: Vec<Backend> = backends.to_vec();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(Error::DuplicateId(w[0].id));
    }
    sorted.retain(|b| b.weight > 0);
    let max_weight = match sorted.iter().map(|b| b.weight).max() {
        Some(w) => u64::from(w),
        None => return Err(Error::NoBackends),
    };
    let mut turns: Vec<Turn> = sorted
        .iter()
        .map(|b| Turn::new(*b, table_size, seed))
        .collect();
    Ok(fill(&mut turns, table_size, max_weight))
}

/// A backend's place in its permutation and its weight accumulator.
struct Turn {
    id: u32,
    weight: u64,
    acc: u64,
    /// The next slot of the permutation to try (`< M`).
    next: u32,
    skip: u32,
}

impl Turn {
    fn new(b: Backend, m: u32, seed: u32) -> Self {
        let (offset, skip) = offset_skip(b.id, m, seed);
        Turn {
            id: b.id,
            weight: u64::from(b.weight),
            acc: 0,
            next: offset,
            skip,
        }
    }

    /// Advances to the following slot of the permutation (`next + skip mod M`, no division).
    fn advance(&mut self, m: u32) {
        // next < m and skip < m, and m <= MAX_TABLE_SIZE, so neither side overflows.
        self.next = if self.next >= m - self.skip {
            self.next - (m - self.skip)
        } else {
            self.next + self.skip
        };
    }
}

/// The backend's permutation start and stride for a prime `m >= 2`.
fn offset_skip(id: u32, m: u32, seed: u32) -> (u32, u32) {
    let h1 = jhash_3words(id, H1_TAG, 0, seed);
    let h2 = jhash_3words(id, H2_TAG, 0, seed);
    let offset = h1 % m;
    let skip = h2 % (m - 1) + 1;
    (offset, skip)
}

/// Runs the weighted turns until all `m` slots are claimed.
///
/// `turns` is non-empty, sorted by id, every weight is in `1..=max_weight`, so each round at least
/// one backend (a heaviest one) claims a slot and the loop ends after at most `m` rounds.
fn fill(turns: &mut [Turn], m: u32, max_weight: u64) -> Vec<u32> {
    let mut table = vec![0u32; m as usize];
    let mut taken = vec![false; m as usize];
    let mut claimed = 0u32;
    loop {
        for t in turns.iter_mut() {
            t.acc += t.weight;
            if t.acc < max_weight {
                continue;
            }
            t.acc -= max_weight;
            // A free slot exists (claimed < m) and the permutation visits every slot.
            while taken[t.next as usize] {
                t.advance(m);
            }
            taken[t.next as usize] = true;
            table[t.next as usize] = t.id;
            t.advance(m);
            claimed += 1;
            if claimed == m {
                return table;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_sizes_are_the_valid_ones() {
        for m in TABLE_SIZES {
            assert!(is_valid_table_size(m), "{m}");
        }
        assert_eq!(*TABLE_SIZES.last().unwrap(), MAX_TABLE_SIZE);
        assert!(TABLE_SIZES.contains(&DEFAULT_TABLE_SIZE));
        assert!(TABLE_SIZES.windows(2).all(|w| w[0] < w[1]));
        for m in [0, 1, 4, 9, 65_536, 16_383, MAX_TABLE_SIZE + 2, u32::MAX] {
            assert!(!is_valid_table_size(m), "{m}");
        }
        assert!(is_valid_table_size(2));
        assert!(is_valid_table_size(7));
        assert!(is_valid_table_size(65_537));
    }

    #[test]
    fn table_size_for_picks_smallest_over_100_per_backend() {
        assert_eq!(table_size_for(0), 251);
        assert_eq!(table_size_for(2), 251);
        assert_eq!(table_size_for(3), 509);
        assert_eq!(table_size_for(163), DEFAULT_TABLE_SIZE);
        assert_eq!(table_size_for(164), 32_749);
        assert_eq!(table_size_for(1_310), 131_071);
        assert_eq!(table_size_for(1_311), MAX_TABLE_SIZE);
        assert_eq!(table_size_for(usize::MAX), MAX_TABLE_SIZE);
        for n in 1..=1_310usize {
            let m = table_size_for(n);
            assert!(m as usize > 100 * n);
        }
    }

    #[test]
    fn offset_and_skip_are_in_range() {
        for m in [2u32, 3, 7, 251, MAX_TABLE_SIZE] {
            for id in [0u32, 1, 2, 1000, u32::MAX] {
                let (o, s) = offset_skip(id, m, 42);
                assert!(o < m && (1..m).contains(&s), "m={m} id={id}: ({o}, {s})");
            }
        }
    }

    #[test]
    fn permutation_visits_every_slot() {
        let m = 251;
        let mut t = Turn::new(Backend::new(9, 1), m, 3);
        let mut seen = vec![false; m as usize];
        for _ in 0..m {
            assert!(!seen[t.next as usize]);
            seen[t.next as usize] = true;
            t.advance(m);
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn errors() {
        let b = [Backend::new(1, 1)];
        assert_eq!(build(&[], 251, 0), Err(Error::NoBackends));
        assert_eq!(
            build(&[Backend::new(1, 0), Backend::new(2, 0)], 251, 0),
            Err(Error::NoBackends)
        );
        assert_eq!(
            build(&[Backend::new(5, 1), Backend::new(5, 2)], 251, 0),
            Err(Error::DuplicateId(5))
        );
        assert_eq!(build(&b, 250, 0), Err(Error::BadTableSize(250)));
        assert_eq!(build(&b, 0, 0), Err(Error::BadTableSize(0)));
        assert_eq!(build(&b, u32::MAX, 0), Err(Error::BadTableSize(u32::MAX)));
    }

    #[test]
    fn tiny_tables() {
        assert_eq!(build(&[Backend::new(7, 1)], 2, 0), Ok(vec![7, 7]));
        let t = build(&[Backend::new(1, 1), Backend::new(2, 1)], 2, 0).unwrap();
        let mut s = t.clone();
        s.sort();
        assert_eq!(s, vec![1, 2]);
        // More backends than slots: the table is still full.
        let many: Vec<Backend> = (0..10).map(|i| Backend::new(i, 1)).collect();
        let t = build(&many, 7, 0).unwrap();
        assert_eq!(t.len(), 7);
        assert!(t.iter().all(|id| *id < 10));
    }

    /// The paper's pseudo-code taken literally (`(offset + j * skip) % M` with a multiply, a
    /// `next[i]` counter per backend) plus Katran V2's weight accumulators: the optimised
    /// [`fill`] must agree with it slot for slot.
    fn reference(backends: &[Backend], m: u32, seed: u32) -> Vec<u32> {
        let mut live: Vec<Backend> = backends.iter().copied().filter(|b| b.weight > 0).collect();
        live.sort();
        let max_w = live.iter().map(|b| b.weight as u64).max().unwrap();
        let perm: Vec<(u64, u64)> = live
            .iter()
            .map(|b| {
                let (o, s) = offset_skip(b.id, m, seed);
                (o as u64, s as u64)
            })
            .collect();
        let mut next = vec![0u64; live.len()];
        let mut acc = vec![0u64; live.len()];
        let mut entry: Vec<Option<u32>> = vec![None; m as usize];
        let mut n = 0;
        loop {
            for i in 0..live.len() {
                acc[i] += live[i].weight as u64;
                if acc[i] < max_w {
                    continue;
                }
                acc[i] -= max_w;
                let mut c = (perm[i].0 + next[i] * perm[i].1) % m as u64;
                while entry[c as usize].is_some() {
                    next[i] += 1;
                    c = (perm[i].0 + next[i] * perm[i].1) % m as u64;
                }
                entry[c as usize] = Some(live[i].id);
                next[i] += 1;
                n += 1;
                if n == m {
                    return entry.into_iter().map(Option::unwrap).collect();
                }
            }
        }
    }

    #[test]
    fn matches_the_reference() {
        let sets: [&[Backend]; 4] = [
            &[Backend::new(0, 1), Backend::new(1, 1), Backend::new(2, 1)],
            &[
                Backend::new(10, 3),
                Backend::new(4, 1),
                Backend::new(7, 0),
                Backend::new(99, 2),
            ],
            &[Backend::new(u32::MAX, 5), Backend::new(0, 5)],
            &[Backend::new(1, 1); 1],
        ];
        for set in sets {
            for m in [7u32, 251, 4_093] {
                for seed in [0u32, 1, 0xffff_ffff] {
                    assert_eq!(build(set, m, seed).unwrap(), reference(set, m, seed));
                }
            }
        }
        let many: Vec<Backend> = (0..50).map(|i| Backend::new(i * 3, 1 + i % 5)).collect();
        assert_eq!(build(&many, 8_191, 5).unwrap(), reference(&many, 8_191, 5));
    }

    #[test]
    fn extreme_weights_terminate() {
        let t = build(&[Backend::new(1, 1), Backend::new(2, u32::MAX)], 251, 0).unwrap();
        assert_eq!(t.len(), 251);
        assert!(t.iter().filter(|&&id| id == 1).count() <= 1);
    }
}
