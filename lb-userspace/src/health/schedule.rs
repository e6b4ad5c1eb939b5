//! When each target is checked: every `interval`, the first check at an offset within the
//! interval that depends only on the group and the target (a hash), so the checks of many
//! targets spread over the interval instead of firing at one instant, and a restart keeps each
//! target's phase. Pure.

use std::{net::SocketAddr, time::Duration};

/// The first check's delay after the checker starts, in `[0, interval)`.
pub fn offset(group: &str, target: SocketAddr, interval: Duration) -> Duration {
    let ms = interval.as_millis().max(1) as u64;
    let h = lb_l7::select::hash_bytes(format!("{group}/{target}").as_bytes());
    Duration::from_millis(h % ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_and_within_the_interval() {
        let t: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let i = Duration::from_secs(5);
        assert_eq!(offset("web", t, i), offset("web", t, i));
        assert_ne!(offset("web", t, i), offset("api", t, i));
        assert!(offset("web", t, i) < i);
    }

    /// 1,000 targets at 5 s: no 100 ms slice holds more than a few times its fair share (20).
    #[test]
    fn a_thousand_targets_spread_over_the_interval() {
        let i = Duration::from_secs(5);
        let mut slices = [0u32; 50];
        for n in 0..1000u32 {
            let t = SocketAddr::from(([127, 0, (n / 250) as u8, (n % 250) as u8 + 1], 8000));
            let o = offset("big", t, i);
            assert!(o < i);
            slices[(o.as_millis() / 100) as usize] += 1;
        }
        let max = *slices.iter().max().unwrap();
        let empty = slices.iter().filter(|&&c| c == 0).count();
        assert!(
            max <= 45,
            "a 100 ms slice holds {max} of 1000 checks: {slices:?}"
        );
        assert_eq!(empty, 0, "{slices:?}");
    }
}
