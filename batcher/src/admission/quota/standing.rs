//! Where a limited caller stands after an admission: the small value each ingress turns into
//! its own answer (REST: headers; gRPC: metadata), with the two fields of
//! draft-ietf-httpapi-ratelimit-headers-11 (the latest revision, May 2026) written here once:
//!
//! - `RateLimit-Policy`: every limit of the caller's plan for the model, as quota policy items
//!   (`"default:rate";q=40;w=2, "default:requests_day";q=10000;w=86400`).
//! - `RateLimit`: where each stands now (`"default:rate";r=12;t=1, ...`): `r` the requests (or
//!   rows) still available, `t` the seconds until the whole quota is available again (the
//!   bucket full, the window over). On a refusal, only the limits that refused are listed,
//!   each with `t` = the seconds until this request would fit, so that `Retry-After` (the
//!   longest of them) is never earlier than the end of any effective window listed, as the
//!   draft asks.

use std::fmt::Write;
use std::sync::Arc;

use super::decide::{LimitState, Wait};
use super::plan::LimitSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    limits: Arc<LimitSet>,
    /// `(index in limits.limits, state)`: every limit after an admission, the refusing ones
    /// after a refusal, none when the store could not be asked.
    states: Vec<(usize, LimitState)>,
}

impl Standing {
    pub fn new(limits: Arc<LimitSet>, states: Vec<(usize, LimitState)>) -> Standing {
        Standing { limits, states }
    }

    /// The plan the caller's limits came from.
    pub fn plan(&self) -> &str {
        &self.limits.plan
    }

    /// The `RateLimit-Policy` field value.
    pub fn policy_field(&self) -> &str {
        self.limits.policy_field()
    }

    /// The limits this standing is about.
    pub fn limits(&self) -> &LimitSet {
        &self.limits
    }

    /// The `RateLimit` field value; `None` when the counters are unknown (the store failed
    /// and `on_store_failure = "allow"` let the request through).
    pub fn ratelimit_field(&self) -> Option<String> {
        if self.states.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(self.states.len() * 40);
        for (i, (index, state)) in self.states.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let micros = match state.wait {
                Wait::For(wait) => wait,
                Wait::No | Wait::Never => state.reset_us,
            };
            let _ = write!(out, "{};r={};t={}", self.limits.quoted_name(*index), state.remaining, seconds(micros));
        }
        Some(out)
    }
}

/// Whole seconds, rounded up: a client that waits this long has waited long enough.
pub fn seconds(micros: u64) -> u64 {
    micros.div_ceil(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::quota::decide::Bucket;
    use crate::admission::quota::limits::{Period, RateSpec, Window};
    use crate::admission::quota::plan::{Counted, Limit, LimitKind};

    fn limits() -> Arc<LimitSet> {
        Arc::new(LimitSet::new(
            "default",
            vec![
                Limit {
                    kind: LimitKind::Rate {
                        rate: RateSpec { count: 20, period: Period::Second },
                        bucket: Bucket::new(RateSpec { count: 20, period: Period::Second }, 40),
                    },
                    model: None,
                },
                Limit {
                    kind: LimitKind::Quota { counted: Counted::Rows, count: 100, window: Window::Day },
                    model: Some("m".into()),
                },
            ],
        ))
    }

    #[test]
    fn fields_follow_the_draft() {
        let admitted = Standing::new(
            limits(),
            vec![
                (0, LimitState { remaining: 12, reset_us: 1_400_000, wait: Wait::No }),
                (1, LimitState { remaining: 40, reset_us: 3_600_000_000, wait: Wait::No }),
            ],
        );
        assert_eq!(
            admitted.policy_field(),
            "\"default:rate\";q=40;w=2, \"default:m:rows_day\";q=100;qu=\"rows\";w=86400"
        );
        assert_eq!(
            admitted.ratelimit_field().unwrap(),
            "\"default:rate\";r=12;t=2, \"default:m:rows_day\";r=40;t=3600"
        );
        // A refusal lists the limit that refused, with the wait for this request.
        let refused = Standing::new(
            limits(),
            vec![(0, LimitState { remaining: 0, reset_us: 2_000_000, wait: Wait::For(50_000) })],
        );
        assert_eq!(refused.ratelimit_field().unwrap(), "\"default:rate\";r=0;t=1");
        let unknown = Standing::new(limits(), Vec::new());
        assert_eq!(unknown.ratelimit_field(), None);
        assert_eq!(unknown.plan(), "default");
    }
}
