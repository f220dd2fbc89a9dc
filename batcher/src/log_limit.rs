//! A warning that may repeat at any rate (a connection refused, a log write failing) is logged
//! at most once per interval, with the number of times it happened since: a flood of events
//! must not become a flood of log lines that costs more than the events themselves.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    pub const fn new(interval: Duration) -> LogLimit {
        LogLimit { interval, last: None, suppressed: 0 }
    }

    /// An event at `now`: `Some(n)` when it should be logged, `n` being how many events were
    /// not logged since the last line; `None` to stay quiet.
    pub fn event(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now.saturating_duration_since(last) < self.interval) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_of_the_rest() {
        let start = Instant::now();
        let mut limit = LogLimit::new(Duration::from_secs(10));
        assert_eq!(limit.event(start), Some(0));
        for i in 1..1000 {
            assert_eq!(limit.event(start + Duration::from_millis(i)), None);
        }
        assert_eq!(limit.event(start + Duration::from_secs(10)), Some(999));
        assert_eq!(limit.event(start + Duration::from_secs(11)), None);
    }
}
