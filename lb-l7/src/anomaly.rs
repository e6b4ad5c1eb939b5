//! Anomaly detection and mitigation (ALB's "automatic target weights", weighted_random only):
//! a target whose error ratio stands out from its group's is flagged anomalous and, when
//! mitigation is on, its weight is halved every second down to 1/16 (never zero: a trickle
//! shows when it recovers). An anomalous target is judged on its last second alone, so a
//! recovery shows at once even though mitigation starved it of traffic; its weight then comes
//! back four-fold per second. Pure: the worker's one-second ticker feeds `tick` each target's
//! counts (`target.rs` keeps the state).
//!
//! An error is a 5xx answer, a refused or failed connection, or a target that timed out,
//! closed or sent a malformed response before answering.

/// Too few targets to tell an outlier from the group (ALB needs 3 as well).
pub const MIN_TARGETS: usize = 3;
/// Recent requests per second (decayed) a target needs before it can be judged.
pub const MIN_RATE: f64 = 2.0;
/// An anomalous target's error ratio is at least this…
pub const MIN_RATIO: f64 = 0.10;
/// …and at least this many times the group's median ratio plus `MARGIN`.
pub const TIMES_MEDIAN: f64 = 2.0;
pub const MARGIN: f64 = 0.05;
/// Weight shift at most: 1/16 of the configured weight.
pub const MAX_SHIFT: u8 = 4;
/// Requests an anomalous target needs in one second to be judged on that second alone.
pub const MIN_LAST: u64 = 2;
/// Each second, the averages keep this much of their past (half-life ≈ 2.4 s).
const KEEP: f64 = 0.75;

/// A target's decayed request and error rates.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub requests: f64,
    pub errors: f64,
}

impl Rates {
    /// Folds one second's counts in.
    pub fn fold(&mut self, requests: u64, errors: u64) {
        self.requests = KEEP * self.requests + (1.0 - KEEP) * requests as f64;
        self.errors = KEEP * self.errors + (1.0 - KEEP) * errors as f64;
    }

    fn ratio(&self) -> Option<f64> {
        (self.requests >= MIN_RATE).then(|| (self.errors / self.requests).min(1.0))
    }
}

/// One target's detection state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TargetTick {
    pub rates: Rates,
    pub anomalous: bool,
}

/// One second of the group: `counts[i]` = (requests, errors) target `i` had in it. Updates
/// rates and verdicts.
pub fn tick(state: &mut [TargetTick], counts: &[(u64, u64)]) {
    for (s, &(r, e)) in state.iter_mut().zip(counts) {
        s.rates.fold(r, e);
    }
    // An anomalous target with a clean last second has recovered: its history (from when it
    // had its full share of traffic) no longer speaks for it.
    let rates: Vec<Rates> = state.iter().map(|s| s.rates).collect();
    let clean = bar(&rates).unwrap_or(MIN_RATIO);
    for (s, &(r, e)) in state.iter_mut().zip(counts) {
        let last = e as f64 / r.max(1) as f64;
        if s.anomalous && r >= MIN_LAST && last < clean {
            s.rates.errors = s.rates.requests * last;
        }
    }
    let rates: Vec<Rates> = state.iter().map(|s| s.rates).collect();
    for (s, v) in state.iter_mut().zip(classify(&rates)) {
        s.anomalous = v;
    }
}

/// The error ratio an outlier reaches: at least `MIN_RATIO` and well above the group's lower
/// median; `None` when the group is too small or too quiet to judge.
fn bar(rates: &[Rates]) -> Option<f64> {
    if rates.len() < MIN_TARGETS {
        return None;
    }
    let mut ratios: Vec<f64> = rates.iter().filter_map(Rates::ratio).collect();
    if ratios.len() < MIN_TARGETS {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    // The lower median: with half the group failing, the healthy half sets the bar.
    let median = ratios[(ratios.len() - 1) / 2];
    Some(MIN_RATIO.max(TIMES_MEDIAN * median + MARGIN))
}

/// Which targets are anomalous: their error ratio reaches `bar`; at most half the group
/// (rounded down), worst first.
pub fn classify(rates: &[Rates]) -> Vec<bool> {
    let mut out = vec![false; rates.len()];
    let Some(bar) = bar(rates) else {
        return out;
    };
    let mut outliers: Vec<(usize, f64)> = rates
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.ratio().filter(|&x| x >= bar).map(|x| (i, x)))
        .collect();
    outliers.sort_by(|a, b| b.1.total_cmp(&a.1));
    for &(i, _) in outliers.iter().take(rates.len() / 2) {
        out[i] = true;
    }
    out
}

/// The next weight shift of a target (its weight counts `>> shift`): one more each second it
/// is anomalous and mitigation is on, two less each second it is not.
pub fn next_shift(shift: u8, anomalous: bool, mitigate: bool) -> u8 {
    if anomalous && mitigate {
        (shift + 1).min(MAX_SHIFT)
    } else {
        shift.saturating_sub(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(v: &[(f64, f64)]) -> Vec<Rates> {
        v.iter()
            .map(|&(requests, errors)| Rates { requests, errors })
            .collect()
    }

    #[test]
    fn one_failing_target_among_healthy_ones() {
        let r = rates(&[(50.0, 0.0), (50.0, 1.0), (50.0, 50.0), (50.0, 0.5)]);
        assert_eq!(classify(&r), [false, false, true, false]);
    }

    #[test]
    fn a_group_failing_alike_has_no_outlier() {
        // Everybody at 30 %: a bad dependency, not a bad host.
        let r = rates(&[(50.0, 15.0), (50.0, 15.0), (50.0, 16.0), (50.0, 14.0)]);
        assert_eq!(classify(&r), [false; 4]);
    }

    #[test]
    fn small_ratios_and_quiet_targets_are_not_judged() {
        // 8 % is below the floor even though it is far above a zero median.
        let r = rates(&[(50.0, 0.0), (50.0, 0.0), (50.0, 4.0)]);
        assert_eq!(classify(&r), [false; 3]);
        // A failing target with almost no traffic is not judged yet.
        let r = rates(&[(50.0, 0.0), (50.0, 0.0), (1.0, 1.0)]);
        assert_eq!(classify(&r), [false; 3]);
        // Two targets: no group to compare with.
        assert_eq!(classify(&rates(&[(50.0, 0.0), (50.0, 50.0)])), [false; 2]);
    }

    #[test]
    fn at_most_half_the_group_worst_first() {
        let r = rates(&[
            (50.0, 0.0),
            (50.0, 40.0),
            (50.0, 50.0),
            (50.0, 30.0),
            (50.0, 0.0),
        ]);
        // The median is 30/50: only ratios ≥ 2·0.6+0.05 would count — none does.
        assert_eq!(classify(&r), [false; 5]);
        let r = rates(&[
            (50.0, 0.0),
            (50.0, 40.0),
            (50.0, 50.0),
            (50.0, 30.0),
            (50.0, 0.0),
            (50.0, 0.0),
            (50.0, 0.0),
        ]);
        // Median 0: three outliers, at most 3 of 7 flagged.
        assert_eq!(classify(&r), [false, true, true, true, false, false, false]);
        let r = rates(&[(50.0, 0.0), (50.0, 40.0), (50.0, 50.0), (50.0, 0.0)]);
        // Two of four may be flagged.
        assert_eq!(classify(&r), [false, true, true, false]);
        let r = rates(&[(50.0, 0.0), (50.0, 40.0), (50.0, 50.0)]);
        // Two of three failing: the group's own median fails, nothing stands out.
        assert_eq!(classify(&r), [false; 3]);
        let r = rates(&[(50.0, 0.0), (50.0, 50.0), (50.0, 0.0)]);
        assert_eq!(classify(&r), [false, true, false]);
    }

    #[test]
    fn rates_decay_and_shifts_ramp_both_ways() {
        let mut r = Rates::default();
        for _ in 0..20 {
            r.fold(100, 100);
        }
        assert!((r.errors / r.requests - 1.0).abs() < 1e-9);
        let before = r.errors;
        r.fold(100, 0);
        assert!(r.errors < before && r.requests > 99.0);

        let mut s = 0;
        for want in [1, 2, 3, 4, 4] {
            s = next_shift(s, true, true);
            assert_eq!(s, want);
        }
        assert_eq!(
            next_shift(4, true, false),
            2,
            "mitigation off: back to full weight"
        );
        for want in [2, 0, 0] {
            s = next_shift(s, false, true);
            assert_eq!(s, want);
        }
    }

    /// Five seconds failing at full share, then healthy at the 1/16 trickle: flagged at once,
    /// cleared on the first clean second, and not flagged again after.
    #[test]
    fn flagged_fast_and_cleared_on_the_first_clean_second() {
        let mut st = [TargetTick::default(); 4];
        let mut flagged_at = None;
        for sec in 0..5 {
            tick(&mut st, &[(50, 0), (50, 0), (50, 0), (50, 50)]);
            if st[3].anomalous && flagged_at.is_none() {
                flagged_at = Some(sec);
            }
        }
        assert_eq!(flagged_at, Some(0), "{st:?}");
        assert!(st[..3].iter().all(|s| !s.anomalous));
        tick(&mut st, &[(60, 0), (60, 0), (60, 0), (4, 0)]);
        assert!(
            !st[3].anomalous,
            "recovered on its first clean second: {st:?}"
        );
        for _ in 0..5 {
            tick(&mut st, &[(50, 0), (50, 0), (50, 0), (50, 1)]);
            assert!(!st[3].anomalous, "stays normal: {st:?}");
        }
        // Still failing in its trickle: stays flagged.
        let mut st = [TargetTick::default(); 4];
        for _ in 0..3 {
            tick(&mut st, &[(50, 0), (50, 0), (50, 0), (50, 50)]);
        }
        tick(&mut st, &[(60, 0), (60, 0), (60, 0), (4, 4)]);
        assert!(st[3].anomalous);
        // Too few requests in the last second to judge: the history decides.
        tick(&mut st, &[(60, 0), (60, 0), (60, 0), (1, 0)]);
        assert!(st[3].anomalous);
    }
}
