//! Clients on their way back: in a closed loop each answered request is followed, one round
//! trip later, by that client's next request. Arrivals are matched to the answers before them
//! (oldest first), which measures the round trip; answers not matched yet are requests expected
//! soon. In an open loop arrivals owe nothing to answers: the matches then measure long, spread
//! delays, and the expectation they give is weak and late.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Answers remembered at most (a bound on memory, far above any batch).
const REMEMBERED: usize = 4096;
/// An answer this many spreads past the typical round trip is not coming back (a client left).
const STALE_SPREADS: f64 = 4.0;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Returns {
    /// Answers not matched by an arrival yet: when, and how many requests.
    unmatched: VecDeque<(Instant, usize)>,
    unmatched_requests: usize,
    /// Moving mean and mean deviation of the round trip, in seconds.
    trip: Option<(f64, f64)>,
}

impl Returns {
    pub fn answered(&mut self, at: Instant, requests: usize) {
        if requests == 0 {
            return;
        }
        self.unmatched.push_back((at, requests));
        self.unmatched_requests += requests;
        while self.unmatched.len() > REMEMBERED {
            self.drop_oldest();
        }
    }

    pub fn arrived(&mut self, at: Instant) {
        let horizon = self.horizon();
        while let Some(&(answered, _)) = self.unmatched.front() {
            let trip = at.saturating_duration_since(answered).as_secs_f64();
            if horizon.is_some_and(|h| trip > h) {
                self.drop_oldest();
                continue;
            }
            self.learn(trip);
            if let Some(front) = self.unmatched.front_mut() {
                front.1 -= 1;
                self.unmatched_requests -= 1;
                if front.1 == 0 {
                    self.unmatched.pop_front();
                }
            }
            return;
        }
    }

    /// Requests expected back soon, at most `missing`, and by when most of them will be here.
    pub fn expected(&self, now: Instant, missing: usize) -> Option<(usize, Instant)> {
        let (mean, spread) = self.trip?;
        let horizon = self.horizon()?;
        let (mut coming, mut by) = (0, None);
        for &(answered, requests) in &self.unmatched {
            let age = now.saturating_duration_since(answered).as_secs_f64();
            if age > horizon || coming >= missing {
                continue;
            }
            coming += requests.min(missing - coming);
            by = Some(answered + Duration::from_secs_f64(mean + spread));
        }
        by.map(|by| (coming, by))
    }

    fn horizon(&self) -> Option<f64> {
        self.trip.map(|(mean, spread)| mean + STALE_SPREADS * spread.max(mean * 0.25))
    }

    fn learn(&mut self, trip: f64) {
        self.trip = Some(match self.trip {
            None => (trip, trip * 0.25),
            Some((mean, spread)) => {
                let mean = mean + 0.05 * (trip - mean);
                (mean, spread + 0.05 * ((trip - mean).abs() - spread))
            }
        });
    }

    fn drop_oldest(&mut self) {
        if let Some((_, requests)) = self.unmatched.pop_front() {
            self.unmatched_requests -= requests;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_loop_comes_back_one_round_trip_after_its_answers() {
        let start = Instant::now();
        let at = |us: u64| start + Duration::from_micros(us);
        let mut r = Returns::default();
        let mut t = 0;
        for _ in 0..50 {
            r.answered(at(t), 8);
            for i in 0..8 {
                r.arrived(at(t + 300 + 20 * i));
            }
            t += 20_000;
        }
        r.answered(at(t), 8);
        let (coming, by) = r.expected(at(t + 10), 8).expect("expected back");
        assert_eq!(coming, 8);
        assert!(by > at(t + 300) && by < at(t + 600), "{:?}", by - at(t));
        // Three are back: five to come, no more than are missing.
        for i in 0..3 {
            r.arrived(at(t + 300 + 20 * i));
        }
        assert_eq!(r.expected(at(t + 400), 5).map(|e| e.0), Some(5));
        assert_eq!(r.expected(at(t + 400), 2).map(|e| e.0), Some(2));
        // Clients that never came back are forgotten.
        assert_eq!(r.expected(at(t + 50_000), 5), None);
    }
}
