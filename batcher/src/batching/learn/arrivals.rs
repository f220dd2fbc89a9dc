//! The rhythm of arrivals: the distribution of the gaps between requests.

use std::time::Duration;

/// The gaps between arrivals, as a histogram with buckets doubling from 16 us (with forgetting),
/// for the expected wait until the next request given the time since the last one: traffic in
/// waves (clients that all come back when a batch is answered) has short gaps inside a wave and
/// long ones between waves, so a second after a wave the next request is far, not near.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrivals {
    buckets: [f64; BUCKETS],
    /// Average rows per request.
    rows: f64,
}

const BUCKETS: usize = 22;
const FIRST_BUCKET_US: f64 = 16.0;

impl Default for Arrivals {
    fn default() -> Self {
        Arrivals { buckets: [0.0; BUCKETS], rows: 1.0 }
    }
}

impl Arrivals {
    pub fn observe(&mut self, gap: Duration, rows: usize) {
        for count in &mut self.buckets {
            *count *= 1.0 - 1.0 / 64.0;
        }
        self.buckets[bucket_of(gap)] += 1.0;
        self.rows += 0.1 * (rows as f64 - self.rows);
    }

    pub fn rows_per_request(&self) -> f64 {
        self.rows.max(1.0)
    }

    /// The expected time until the next arrival, `since` after the last one; `None` when no
    /// gap that long has been seen (nothing is expected).
    pub fn expected_wait(&self, since: Duration) -> Option<Duration> {
        let s = since.as_secs_f64();
        let (mut weight, mut total) = (0.0, 0.0);
        for (i, &count) in self.buckets.iter().enumerate() {
            let (low, high) = bucket_bounds(i);
            if high <= s || count <= 0.0 {
                continue;
            }
            // The bucket's middle, or halfway through what is left of it.
            let typical = (low.max(s) + high) / 2.0;
            weight += count;
            total += count * (typical - s);
        }
        (weight > 0.05).then(|| Duration::from_secs_f64((total / weight).max(0.0)))
    }

    /// The wait, `since` after the last arrival, that maximises `benefit(wait, p)` where `p` is
    /// the probability of a request within it; `None` when no wait has a positive benefit.
    pub fn best_wait(&self, since: Duration, benefit: impl Fn(f64, f64) -> f64) -> Option<Duration> {
        let s = since.as_secs_f64();
        let beyond: f64 = (0..BUCKETS).filter(|&i| bucket_bounds(i).1 > s).map(|i| self.buckets[i]).sum();
        if beyond <= 0.05 {
            return None;
        }
        let (mut best, mut best_wait, mut within) = (0.0, None, 0.0);
        for (i, &count) in self.buckets.iter().enumerate() {
            let high = bucket_bounds(i).1;
            if high <= s {
                continue;
            }
            within += count;
            let wait = high - s;
            let value = benefit(wait, within / beyond);
            if value > best {
                best = value;
                best_wait = Some(wait);
            }
        }
        best_wait.map(Duration::from_secs_f64)
    }
}

fn bucket_of(gap: Duration) -> usize {
    let us = gap.as_secs_f64() * 1e6;
    if us < FIRST_BUCKET_US {
        return 0;
    }
    ((us / FIRST_BUCKET_US).log2().floor() as usize + 1).min(BUCKETS - 1)
}

/// (low, high) of a bucket, in seconds.
fn bucket_bounds(i: usize) -> (f64, f64) {
    let edge = |k: usize| if k == 0 { 0.0 } else { FIRST_BUCKET_US * 2f64.powi(k as i32 - 1) * 1e-6 };
    let high = if i + 1 >= BUCKETS { edge(BUCKETS) * 4.0 } else { edge(i + 1) };
    (edge(i), high)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: f64) -> Duration {
        Duration::from_secs_f64(n / 1000.0)
    }

    #[test]
    fn waves_make_the_next_arrival_near_inside_a_wave_and_far_after_it() {
        let mut a = Arrivals::default();
        // Waves of 8 requests 50 us apart, every 20 ms.
        for _ in 0..20 {
            for _ in 0..7 {
                a.observe(ms(0.05), 1);
            }
            a.observe(ms(20.0), 1);
        }
        let inside = a.expected_wait(ms(0.01)).unwrap();
        assert!(inside < ms(5.0), "{inside:?}");
        let after = a.expected_wait(ms(1.0)).unwrap();
        assert!(after > ms(5.0), "{after:?}");
        assert_eq!(a.expected_wait(Duration::from_secs(100)), None);
    }
}
