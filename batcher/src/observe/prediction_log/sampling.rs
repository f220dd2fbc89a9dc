//! Which requests the prediction log keeps: the decision is a function of the request id alone,
//! so the request and its response are kept together and every daemon (behind any number of
//! nginx servers) decides the same for the same id. The id's point in [0, 1) is the first 8
//! bytes of SHA-256(request id), big-endian, divided by 2^64; a request is kept when its point
//! is below the model's rate. In Python:
//!
//! ```python
//! int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") / 2**64 < rate
//! ```
//!
//! A higher rate keeps a superset of what a lower one keeps. A request without an id (not sent
//! through nginx's `tfgate-proxy.conf`) is decided by a random point instead.

use std::collections::BTreeMap;

use aws_lc_rs::digest::{digest, SHA256};

/// The request id's point in [0, 1).
pub fn point(request_id: &str) -> f64 {
    if request_id.is_empty() {
        return random_point();
    }
    let hash = digest(&SHA256, request_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_ref()[..8]);
    to_unit(u64::from_be_bytes(first))
}

/// `x / 2^64`, exact in f64 for the top 53 bits (so the point is always below 1).
fn to_unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn random_point() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // Without randomness, keep nothing rather than everything.
        return 1.0;
    }
    to_unit(u64::from_le_bytes(bytes))
}

/// The sampling rates in force: `[prediction_log] sampling_rate` and the models' own
/// `prediction_log_sampling_rate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    pub default: f64,
    pub models: BTreeMap<String, f64>,
}

impl Rates {
    pub fn for_model(&self, model: &str) -> f64 {
        self.models.get(model).copied().unwrap_or(self.default)
    }

    /// The rate `request_id` was kept at, or `None` when it is not kept.
    pub fn decide(&self, model: &str, request_id: &str) -> Option<f64> {
        let rate = self.for_model(model);
        if rate <= 0.0 {
            return None;
        }
        (rate >= 1.0 || point(request_id) < rate).then_some(rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_point_is_the_documented_hash() {
        // python3 -c 'import hashlib; print(int.from_bytes(hashlib.sha256(b"abc").digest()[:8], "big") / 2**64)'
        // SHA-256("abc") starts ba7816bf8f01cfea.
        let expected = 0xba78_16bf_8f01_cfea_u64 as f64 / 2f64.powi(64);
        assert!((point("abc") - expected).abs() < 1e-15);
        assert_eq!(point("abc"), point("abc"));
        assert!(to_unit(u64::MAX) < 1.0);
    }

    #[test]
    fn rates_per_model_and_their_extremes() {
        let rates = Rates { default: 0.0, models: [("all".to_string(), 1.0), ("half".to_string(), 0.5)].into() };
        assert_eq!(rates.decide("other", "x"), None);
        assert_eq!(rates.decide("all", "x"), Some(1.0));
        let kept = (0..10_000).filter(|i| rates.decide("half", &format!("{i:032x}")).is_some()).count();
        // Binomial(10000, 0.5): sd 50; 5 sd either way.
        assert!((4750..=5250).contains(&kept), "{kept}");
        // A higher rate keeps whatever a lower one kept.
        let low = Rates { default: 0.1, models: BTreeMap::new() };
        let high = Rates { default: 0.3, models: BTreeMap::new() };
        for i in 0..2000 {
            let id = format!("req-{i}");
            if low.decide("m", &id).is_some() {
                assert!(high.decide("m", &id).is_some(), "{id}");
            }
        }
    }
}
