//! Rows per second, from recent arrivals: an exponentially decaying count, so a burst is felt
//! at once and forgotten within a few seconds.

use std::time::Instant;

/// How long an arrival keeps counting, in seconds (its weight falls by e over this time).
const MEMORY: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DecayingRate {
    /// Decayed rows as of `at`.
    rows: f64,
    at: Option<Instant>,
}

impl DecayingRate {
    pub fn add(&mut self, rows: usize, now: Instant) {
        self.rows = self.decayed(now) + rows as f64;
        self.at = Some(self.at.map_or(now, |at| at.max(now)));
    }

    pub fn per_second(&self, now: Instant) -> f64 {
        self.decayed(now) / MEMORY
    }

    fn decayed(&self, now: Instant) -> f64 {
        match self.at {
            Some(at) => self.rows * (-now.saturating_duration_since(at).as_secs_f64() / MEMORY).exp(),
            None => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_steady_stream_reads_as_its_rate_and_fades_when_it_stops() {
        let start = Instant::now();
        let mut rate = DecayingRate::default();
        assert_eq!(rate.per_second(start), 0.0);
        // 200 rows per second for 5 s.
        let mut at = start;
        for _ in 0..1000 {
            at += Duration::from_millis(5);
            rate.add(1, at);
        }
        let steady = rate.per_second(at);
        assert!((190.0..=210.0).contains(&steady), "{steady}");
        let later = rate.per_second(at + Duration::from_secs(3));
        assert!(later < 0.06 * steady, "{later}");
    }
}
