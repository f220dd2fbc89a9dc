//! The decision, as a pure function of the counters' values before the request and the time
//! (`now`, microseconds since the epoch, passed in: no clock is read here): admit or refuse,
//! and where each limit then stands (remaining, until when, how long to wait).
//!
//! A caller's counters are kept together in a record (one per caller, and one per caller and
//! model for a model's own limits), a field per limit:
//! - a **token bucket** (`rate` with `burst`) is kept as GCRA does it: the theoretical arrival
//!   time (TAT) of the next request, to the microsecond. Each request moves it one interval
//!   (`period / count`) later; a request is refused when that would put it more than `burst`
//!   intervals ahead of now. The bucket is full again once the TAT is in the past.
//! - a **calendar window** (`requests` or `rows` per minute/hour/day/month) is kept as the
//!   window's end and the count so far: a field holding another window's end reads as zero.
//!
//! A field matters until its TAT or its window's end, plus [`EXPIRY_GRACE_US`]; a record until
//! its last field. [`step`] is the arithmetic the Redis script repeats in Lua
//! (store/script.lua); keep them the same. Everything else is computed here from the values
//! the script read.

use super::limits::RateSpec;

/// Counters outlive what they count by this much, so that a node whose clock is a little
/// behind still finds the counter of a window another node has just closed.
pub const EXPIRY_GRACE_US: u64 = 60_000_000;

/// A token bucket: one token per `interval_us`, at most `burst` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub interval_us: u64,
    pub burst: u64,
}

impl Bucket {
    /// `rate.count` tokens per period, rounded to a whole microsecond per token (up, so the
    /// bucket never grants more than the rate).
    pub fn new(rate: RateSpec, burst: u64) -> Bucket {
        Bucket { interval_us: rate.period.micros().div_ceil(rate.count).max(1), burst }
    }

    /// How far ahead of now the TAT may run: `burst` intervals.
    pub fn capacity_us(&self) -> u64 {
        self.interval_us.saturating_mul(self.burst)
    }
}

/// What a counter enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Bucket(Bucket),
    /// At most `limit` in the window ending at `end_us`.
    Window {
        limit: u64,
        end_us: u64,
    },
}

/// One counter an admission looks at: where it is kept (a record of the admission, a field in
/// it), its rule and what this request costs it (1 for a request, the request's rows for a
/// rows quota).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub record: usize,
    pub field: &'static str,
    pub rule: Rule,
    pub cost: u64,
}

impl Check {
    /// Which window a stored count belongs to: its end (0 for a bucket, whose value is a time).
    pub fn window_end(&self) -> u64 {
        match self.rule {
            Rule::Bucket(_) => 0,
            Rule::Window { end_us, .. } => end_us,
        }
    }

    /// Until when a value written by this check matters (microseconds since the epoch).
    pub fn expires_us(&self, value: u64) -> u64 {
        let until = match self.rule {
            Rule::Bucket(_) => value,
            Rule::Window { end_us, .. } => end_us,
        };
        until.saturating_add(EXPIRY_GRACE_US)
    }
}

/// The counters of one request: the store keys of its records and every check on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub records: Vec<String>,
    pub checks: Vec<Check>,
}

/// One counter's arithmetic: whether the request fits, and the value to store if every counter
/// lets it through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub room: bool,
    pub next: u64,
}

/// `prior`: the stored value, 0 when there is none (or it counts another window).
pub fn step(rule: &Rule, cost: u64, prior: u64, now: u64) -> Step {
    match *rule {
        Rule::Bucket(bucket) => {
            let next = prior.max(now).saturating_add(bucket.interval_us.saturating_mul(cost));
            Step { room: next - now <= bucket.capacity_us(), next }
        }
        Rule::Window { limit, .. } => {
            let next = prior.saturating_add(cost);
            Step { room: next <= limit, next }
        }
    }
}

/// How long a refused request would have to wait for this counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The counter had room.
    No,
    /// Microseconds until the request would fit (if nothing else is counted meanwhile).
    For(u64),
    /// It never will: it costs more than the whole limit (a request of more rows than the
    /// window allows).
    Never,
}

/// Where a counter stands after the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitState {
    /// Requests (or rows) still available now.
    pub remaining: u64,
    /// Microseconds until the whole limit is available again: the bucket full, the window over.
    pub reset_us: u64,
    pub wait: Wait,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub admitted: bool,
    /// One per check, in order.
    pub limits: Vec<LimitState>,
    /// When admitted: per check, the value to store.
    pub writes: Vec<u64>,
}

/// The request is admitted only if every counter has room; a refused request changes nothing.
/// `priors[i]` is the stored value of `checks[i]` (0 when absent).
pub fn decide(checks: &[Check], priors: &[u64], now: u64) -> Decision {
    let steps: Vec<Step> =
        checks.iter().zip(priors).map(|(check, &prior)| step(&check.rule, check.cost, prior, now)).collect();
    let admitted = steps.len() == checks.len() && steps.iter().all(|s| s.room);
    let limits = checks
        .iter()
        .zip(priors)
        .zip(&steps)
        .map(|((check, &prior), step)| standing(check, prior, step, admitted, now))
        .collect();
    let writes = if admitted { steps.iter().map(|s| s.next).collect() } else { Vec::new() };
    Decision { admitted, limits, writes }
}

fn standing(check: &Check, prior: u64, step: &Step, admitted: bool, now: u64) -> LimitState {
    match check.rule {
        Rule::Bucket(bucket) => {
            let tat = if admitted { step.next } else { prior.max(now) };
            let headroom = (now + bucket.capacity_us()).saturating_sub(tat);
            let wait = match step.room {
                true => Wait::No,
                false => Wait::For((step.next - now).saturating_sub(bucket.capacity_us()).max(1)),
            };
            LimitState { remaining: headroom / bucket.interval_us, reset_us: tat.saturating_sub(now), wait }
        }
        Rule::Window { limit, end_us } => {
            let used = if admitted { step.next } else { prior };
            let reset_us = end_us.saturating_sub(now);
            let wait = match (step.room, check.cost > limit) {
                (true, _) => Wait::No,
                (false, true) => Wait::Never,
                (false, false) => Wait::For(reset_us.max(1)),
            };
            LimitState { remaining: limit.saturating_sub(used), reset_us, wait }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::quota::limits::{parse_rate, Period};

    const S: u64 = 1_000_000;
    /// Some instant, in microseconds since the epoch.
    const T0: u64 = 1_776_085_542 * S;

    fn bucket(rate: &str, burst: u64) -> Check {
        Check { record: 0, field: "rate", rule: Rule::Bucket(Bucket::new(parse_rate(rate).unwrap(), burst)), cost: 1 }
    }

    fn window(limit: u64, end_us: u64, cost: u64) -> Check {
        Check { record: 0, field: "requests_day", rule: Rule::Window { limit, end_us }, cost }
    }

    /// Runs requests at the given instants through one check, as a store would: returns the
    /// admitted ones' standings and keeps the value.
    struct Counter {
        value: u64,
    }

    impl Counter {
        fn at(&mut self, check: &Check, now: u64) -> Decision {
            let decision = decide(std::slice::from_ref(check), &[self.value], now);
            if decision.admitted {
                self.value = decision.writes[0];
            }
            decision
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let check = bucket("20/s", 40);
        let mut counter = Counter { value: 0 };
        for i in 0..40 {
            let d = counter.at(&check, T0);
            assert!(d.admitted, "request {i}");
            assert_eq!(d.limits[0].remaining, 39 - i);
        }
        let refused = counter.at(&check, T0);
        assert!(!refused.admitted);
        assert_eq!(refused.limits[0].wait, Wait::For(S / 20));
        assert_eq!(refused.limits[0].remaining, 0);
        // Full again 2 s after the burst (40 tokens at 20/s).
        assert_eq!(refused.limits[0].reset_us, 2 * S);
        // One token comes back every 50 ms.
        assert!(counter.at(&check, T0 + S / 20).admitted);
        assert!(!counter.at(&check, T0 + S / 20).admitted);
        // After a long pause the bucket is full, never fuller.
        let d = counter.at(&check, T0 + 3600 * S);
        assert_eq!((d.admitted, d.limits[0].remaining), (true, 39));
    }

    #[test]
    fn a_bucket_of_one_spaces_requests() {
        let check = bucket("1/minute", 1);
        let mut counter = Counter { value: 0 };
        assert!(counter.at(&check, T0).admitted);
        let refused = counter.at(&check, T0 + 10 * S);
        assert_eq!(refused.limits[0].wait, Wait::For(50 * S));
        assert!(counter.at(&check, T0 + 60 * S).admitted);
    }

    #[test]
    fn rates_round_up_to_whole_microseconds() {
        let b = Bucket::new(RateSpec { count: 3, period: Period::Second }, 3);
        assert_eq!(b.interval_us, 333_334);
        let b = Bucket::new(RateSpec { count: 5_000_000, period: Period::Second }, 1);
        assert_eq!(b.interval_us, 1);
    }

    #[test]
    fn a_window_counts_until_it_ends() {
        let end = T0 + 30 * S;
        let mut counter = Counter { value: 0 };
        let d = counter.at(&window(10, end, 4), T0);
        assert_eq!((d.admitted, d.limits[0].remaining, d.limits[0].reset_us), (true, 6, 30 * S));
        assert_eq!(d.writes, vec![4]);
        assert_eq!(window(10, end, 4).expires_us(4), end + EXPIRY_GRACE_US);
        assert!(counter.at(&window(10, end, 6), T0).admitted);
        let refused = counter.at(&window(10, end, 1), T0 + 10 * S);
        assert_eq!(refused.limits[0], LimitState { remaining: 0, reset_us: 20 * S, wait: Wait::For(20 * S) });
        // More than the whole limit never fits, whatever is left.
        let never = Counter { value: 0 }.at(&window(10, end, 11), T0);
        assert_eq!((never.admitted, never.limits[0].wait, never.limits[0].remaining), (false, Wait::Never, 10));
    }

    #[test]
    fn a_request_is_admitted_only_if_every_limit_has_room_and_a_refusal_counts_nothing() {
        let end = T0 + 60 * S;
        let checks = [bucket("10/s", 10), window(100, end, 1), window(50, end, 30)];
        let d = decide(&checks, &[0, 5, 30], T0);
        // The rows window (30 used + 30 > 50) refuses; the others had room.
        assert!(!d.admitted);
        assert!(d.writes.is_empty());
        assert_eq!(d.limits[0], LimitState { remaining: 10, reset_us: 0, wait: Wait::No });
        assert_eq!(d.limits[1], LimitState { remaining: 95, reset_us: 60 * S, wait: Wait::No });
        assert_eq!(d.limits[2], LimitState { remaining: 20, reset_us: 60 * S, wait: Wait::For(60 * S) });
        let d = decide(&checks, &[0, 5, 10], T0);
        assert!(d.admitted);
        assert_eq!(d.writes, vec![T0 + S / 10, 6, 40]);
        assert_eq!(checks[0].expires_us(T0 + S / 10), T0 + S / 10 + EXPIRY_GRACE_US);
        assert_eq!((checks[0].window_end(), checks[1].window_end()), (0, end));
        assert_eq!((d.limits[0].remaining, d.limits[1].remaining, d.limits[2].remaining), (9, 94, 10));
    }

    #[test]
    fn a_clock_behind_another_nodes_never_underflows() {
        // The stored TAT was written by a node whose clock is ahead.
        let check = bucket("1/s", 2);
        let d = decide(std::slice::from_ref(&check), &[T0 + 10 * S], T0);
        assert!(!d.admitted);
        assert_eq!(d.limits[0].remaining, 0);
        let d = decide(&[window(5, T0 - S, 1)], &[0], T0);
        assert_eq!(d.limits[0].reset_us, 0);
    }
}
