//! What each HTTP request carries: the same body every time, or one row drawn per request, for
//! the row cache's benchmark: from a Zipf(1.0) law over N distinct values (rank k drawn with
//! probability proportional to 1/k, as popular inputs repeat), or a value never sent before.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

#[derive(Clone)]
pub enum Inputs {
    Fixed(Bytes),
    /// The cumulative probabilities of ranks 1..=N.
    Zipf(Arc<Vec<f64>>),
    /// Every request a value of its own (the next one, shared by all clients).
    Distinct(Arc<AtomicU64>),
}

impl Inputs {
    pub fn zipf(n: u32) -> Inputs {
        let weights: Vec<f64> = (1..=n).map(|k| 1.0 / f64::from(k)).collect();
        let total: f64 = weights.iter().sum();
        let mut sum = 0.0;
        Inputs::Zipf(Arc::new(
            weights
                .iter()
                .map(|w| {
                    sum += w / total;
                    sum
                })
                .collect(),
        ))
    }

    /// Values from `seed` x 1,000,000 on, so runs with other seeds send other values. Below
    /// 2^24 (seeds up to 15) every value is exact as a float32, so no two are the same row.
    pub fn distinct(seed: u64) -> Inputs {
        Inputs::Distinct(Arc::new(AtomicU64::new(seed.saturating_mul(1_000_000))))
    }

    /// The next request's body; `rng` is the client's own generator.
    pub fn body(&self, rng: &mut Rng) -> Bytes {
        let value = match self {
            Inputs::Fixed(body) => return body.clone(),
            Inputs::Zipf(cumulative) => {
                let u = rng.unit();
                cumulative.partition_point(|&c| c < u).min(cumulative.len() - 1) as u64
            }
            Inputs::Distinct(next) => next.fetch_add(1, Ordering::Relaxed),
        };
        Bytes::from(format!("{{\"instances\": [{value}.0]}}"))
    }
}

/// xorshift64*: enough randomness for a load generator, reproducible from a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_draws_rank_k_about_one_kth_as_often_as_rank_1() {
        let inputs = Inputs::zipf(100);
        let mut rng = Rng::new(7);
        let mut counts = vec![0u32; 100];
        for _ in 0..200_000 {
            let body = inputs.body(&mut rng);
            let text = std::str::from_utf8(&body).unwrap();
            let value: f64 = text.trim_start_matches("{\"instances\": [").trim_end_matches("]}").parse().unwrap();
            counts[value as usize] += 1;
        }
        let ratio = f64::from(counts[0]) / f64::from(counts[9]);
        assert!((8.0..12.0).contains(&ratio), "rank 1 / rank 10 = {ratio}");
        assert!(counts.iter().all(|&c| c > 0));
    }

    #[test]
    fn distinct_values_never_repeat() {
        let inputs = Inputs::distinct(2);
        let mut rng = Rng::new(1);
        let a = inputs.body(&mut rng);
        let b = inputs.clone().body(&mut rng);
        assert_ne!(a, b);
        assert_eq!(&a[..], b"{\"instances\": [2000000.0]}");
    }
}
