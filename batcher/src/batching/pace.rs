//! What the policy learns about the backend from finished batches.
//!
//! A batch sent while another is still in flight ("stacked") either runs beside it (several
//! executors or targets) or waits for it (one executor: the backend queues it). In the second
//! case, a partial batch sent early only queues behind the busy executor with the few rows it
//! has, and its own fixed cost is then paid for those few rows; held until the backend is free,
//! it grows. The two cases show in latencies: stacked batches of a queueing backend take
//! markedly longer than batches sent alone.

use std::time::Duration;

/// Weight of the newest observation in the moving averages.
const WEIGHT: f64 = 0.2;
/// Stacked batches taking this much longer than lone ones mean the backend queues them.
const QUEUEING_RATIO: f64 = 1.5;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pace {
    /// Seconds, moving average, of batches sent while nothing else was in flight.
    alone: Option<f64>,
    /// Seconds, moving average, of batches sent while others were in flight.
    stacked: Option<f64>,
}

impl Pace {
    pub fn record(&mut self, latency: Duration, stacked: bool) {
        let slot = if stacked { &mut self.stacked } else { &mut self.alone };
        let x = latency.as_secs_f64();
        *slot = Some(slot.map_or(x, |avg| avg + WEIGHT * (x - avg)));
    }

    /// Whether batches sent while the backend is busy wait for it.
    pub fn backend_queues(&self) -> bool {
        matches!((self.alone, self.stacked), (Some(a), Some(s)) if s > QUEUEING_RATIO * a)
    }

    /// How long one batch takes when sent alone.
    pub fn batch_time(&self) -> Option<Duration> {
        self.alone.and_then(|s| Duration::try_from_secs_f64(s).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn learns_whether_the_backend_queues() {
        let mut pace = Pace::default();
        assert!(!pace.backend_queues() && pace.batch_time().is_none());
        pace.record(ms(10), false);
        pace.record(ms(11), true);
        assert!(!pace.backend_queues(), "parallel: stacked batches are as fast");
        for _ in 0..10 {
            pace.record(ms(20), true);
        }
        assert!(pace.backend_queues(), "serial: stacked batches wait");
        assert_eq!(pace.batch_time(), Some(ms(10)));
        for _ in 0..20 {
            pace.record(ms(10), true);
        }
        assert!(!pace.backend_queues(), "and it forgets when that changes");
    }
}
