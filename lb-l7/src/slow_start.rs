//! Slow start (ALB's `slow_start.duration_seconds`): a target that becomes healthy gets a
//! share of its group's requests that rises linearly from `MIN_PERMILLE` of its full share to
//! all of it over the duration (Envoy's slow start with aggression 1 and its 10 % floor).
//!
//! ALB's entry rule: a target enters slow start when it becomes healthy while at least one
//! other target of the group is healthy and not in slow start; so the targets of a new group,
//! or the first target to pass its checks, start at full weight.
//!
//! How the ramp applies, for every algorithm: the algorithm picks as usual; a target in slow
//! start then keeps the request with probability `ramp`, else the pick is made again without
//! it (`select::pick`). Its share is thus its full share × `ramp`: round robin and
//! weighted_random directly; with least_outstanding_requests (which ALB refuses to combine with
//! slow start; weir allows it) the new, idle target would otherwise win every pick, so the ramp
//! caps its share; with consistent_hash the roll is the key's own (a hash of key and target),
//! so a key moves to the new target once, when the ramp passes its roll, and stays there.
//! Pure: the caller passes the times.

use std::time::Duration;

/// The share a target starts slow start with, in thousandths of its full share.
pub const MIN_PERMILLE: u16 = 100;

/// The share (thousandths of its full share) of a target `elapsed` into a slow start of
/// `duration`: linear from `MIN_PERMILLE` at its start to 1000 at its end.
pub fn permille(elapsed: Duration, duration: Duration) -> u16 {
    if duration.is_zero() || elapsed >= duration {
        return 1000;
    }
    let linear = (elapsed.as_millis() * 1000 / duration.as_millis()) as u16;
    linear.max(MIN_PERMILLE)
}

/// How many thousandths of its picks a target `elapsed` into slow start turns away.
pub fn holdback(elapsed: Duration, duration: Duration) -> u16 {
    1000 - permille(elapsed, duration)
}

/// Does a target becoming healthy enter slow start? `others_settled`: another target of the
/// group is healthy and not in slow start (ALB's rule).
pub fn enters(duration: Duration, others_settled: bool) -> bool {
    !duration.is_zero() && others_settled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ramp_is_linear_from_the_floor_to_full() {
        let d = Duration::from_secs(100);
        let at = |s: u64| permille(Duration::from_secs(s), d);
        assert_eq!(at(0), MIN_PERMILLE);
        assert_eq!(at(5), MIN_PERMILLE);
        assert_eq!(at(25), 250);
        assert_eq!(at(50), 500);
        assert_eq!(at(99), 990);
        assert_eq!(at(100), 1000);
        assert_eq!(at(1000), 1000);
        assert_eq!(holdback(Duration::from_secs(50), d), 500);
        assert_eq!(permille(Duration::from_secs(3), Duration::ZERO), 1000);
    }

    #[test]
    fn alb_entry_rule() {
        let d = Duration::from_secs(30);
        assert!(enters(d, true));
        assert!(
            !enters(d, false),
            "the only healthy target starts at full weight"
        );
        assert!(!enters(Duration::ZERO, true), "off");
    }
}
