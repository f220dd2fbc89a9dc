//! When a `dns://` name is resolved next: the pure timing rules the resolving task follows.

use std::time::{Duration, Instant};

/// The shortest wait a record TTL can bring: TTL 0 (common for local records) must not turn
/// into a query loop.
pub const MIN_TTL_WAIT: Duration = Duration::from_secs(1);
/// Resolutions brought forward by failing targets come at most this often per name: under load
/// a dead replica fails many calls a second.
pub const MIN_EARLY_GAP: Duration = Duration::from_secs(1);
/// A name with no address yet is asked again this soon after a failed resolution (it has no
/// target to serve with meanwhile), or sooner when the interval is shorter.
pub const RETRY_WITHOUT_TARGETS: Duration = Duration::from_secs(1);

/// The wait after an answer with addresses: the interval, or the TTL when it is shorter, so the
/// addresses are never used past their validity for longer than one lookup takes.
pub fn after_answer(interval: Duration, ttl: Duration) -> Duration {
    interval.min(ttl.max(MIN_TTL_WAIT))
}

/// The wait after a failed or empty resolution (the last good addresses stay in use).
pub fn after_failure(interval: Duration, has_targets: bool) -> Duration {
    if has_targets {
        interval
    } else {
        interval.min(RETRY_WITHOUT_TARGETS)
    }
}

/// When to resolve after a target of the name failed at `now`: at once, but not sooner than
/// [`MIN_EARLY_GAP`] after the last resolution started, and never later than `scheduled`.
pub fn early(last_started: Instant, now: Instant, scheduled: Instant) -> Instant {
    (last_started + MIN_EARLY_GAP).max(now).min(scheduled)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_ttl_shortens_the_interval_down_to_a_floor() {
        assert_eq!(after_answer(S(5), S(30)), S(5));
        assert_eq!(after_answer(S(5), S(2)), S(2));
        assert_eq!(after_answer(S(5), S(0)), MIN_TTL_WAIT);
        assert_eq!(
            after_answer(Duration::from_millis(300), S(0)),
            Duration::from_millis(300),
            "the key wins below the floor"
        );
        // /etc/hosts answers carry the largest TTL.
        assert_eq!(after_answer(S(5), S(u64::from(u32::MAX))), S(5));
    }

    #[test]
    fn failures_retry_soon_only_without_targets() {
        assert_eq!(after_failure(S(10), true), S(10));
        assert_eq!(after_failure(S(10), false), RETRY_WITHOUT_TARGETS);
        assert_eq!(after_failure(Duration::from_millis(200), false), Duration::from_millis(200));
    }

    #[test]
    fn early_resolutions_are_rate_limited() {
        let t0 = Instant::now();
        let scheduled = t0 + S(10);
        assert_eq!(early(t0, t0 + Duration::from_millis(10), scheduled), t0 + MIN_EARLY_GAP);
        assert_eq!(early(t0, t0 + S(3), scheduled), t0 + S(3), "long after the last one: now");
        assert_eq!(
            early(t0, t0, t0 + Duration::from_millis(500)),
            t0 + Duration::from_millis(500),
            "never later than planned"
        );
    }
}
