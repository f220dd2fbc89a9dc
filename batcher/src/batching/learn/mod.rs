//! What the dispatch policy learns of one model's backend and traffic, from what it sees: how
//! long batches take (a fixed cost per call and a cost per row), how many batches the backend
//! runs side by side, and how requests arrive (the distribution of the gaps between them). All
//! pure: observations come in with their time, nothing here reads a clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

mod arrivals;
mod concurrency;
mod cost;
mod parallel;
mod rate;
mod returns;

pub use self::arrivals::Arrivals;
pub use self::concurrency::Concurrency;
pub use self::cost::CostModel;
pub use self::parallel::Parallelism;
pub use self::rate::DecayingRate;
pub use self::returns::Returns;

/// What the learner needs to know of a batch in flight to learn from its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub rows: usize,
    pub requests: usize,
    /// Batches in flight when it was sent, itself included.
    pub depth: usize,
    pub sent: Instant,
    /// Its predicted time alone, in seconds (0 when nothing is known yet).
    predicted: f64,
    /// How much longer it would take if it had to wait for a batch in flight to finish.
    wait_if_queued: f64,
}

impl Ticket {
    /// What the backend is expected to spend on it, once anything is known.
    pub fn predicted_cost(&self) -> Option<Duration> {
        (self.predicted > 0.0).then(|| Duration::from_secs_f64(self.predicted))
    }
}

/// A partial batch that could go now.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    pub rows: usize,
    pub max_rows: usize,
    /// When it could first have gone (the wait is counted from then).
    pub since: Instant,
    /// Requests queued or in flight, of every group.
    pub outstanding: usize,
}

/// Everything the policy learns of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Learner {
    pub cost: CostModel,
    pub parallel: Parallelism,
    pub arrivals: Arrivals,
    pub concurrency: Concurrency,
    pub returns: Returns,
    last_arrival: Option<Instant>,
    /// When the backend last answered batches, the latest first (as many as may be in flight).
    answers: VecDeque<Instant>,
}

impl Learner {
    pub fn new(max_inflight: usize) -> Learner {
        Learner {
            cost: CostModel::default(),
            parallel: Parallelism::new(max_inflight),
            arrivals: Arrivals::default(),
            concurrency: Concurrency::default(),
            returns: Returns::default(),
            last_arrival: None,
            answers: VecDeque::with_capacity(max_inflight),
        }
    }

    /// When the backend last answered batches, the latest first: when its executors were last
    /// seen free.
    pub fn recent_answers(&self) -> impl Iterator<Item = Instant> + '_ {
        self.answers.iter().copied()
    }

    /// A request of `rows` arrived at `at`; `outstanding` requests are now queued or in flight,
    /// itself included.
    pub fn arrived(&mut self, at: Instant, rows: usize, outstanding: usize) {
        self.concurrency.observe(outstanding);
        self.returns.arrived(at);
        if let Some(last) = self.last_arrival {
            self.arrivals.observe(at.saturating_duration_since(last), rows);
        }
        self.last_arrival = Some(self.last_arrival.map_or(at, |last| last.max(at)));
    }

    /// A batch of `rows` and `requests` goes at `now`, beside the batches `inflight`;
    /// `outstanding` requests remain queued or in flight, this batch's included.
    pub fn sending<'a>(
        &mut self,
        rows: usize,
        requests: usize,
        now: Instant,
        inflight: impl Iterator<Item = &'a Ticket>,
        outstanding: usize,
    ) -> Ticket {
        self.concurrency.batch_sent(outstanding);
        let predicted = self.cost.predict(rows).unwrap_or(0.0);
        let (mut depth, mut wait_if_queued) = (1, f64::INFINITY);
        for ticket in inflight {
            depth += 1;
            let left = (ticket.predicted - now.saturating_duration_since(ticket.sent).as_secs_f64()).max(0.0);
            wait_if_queued = wait_if_queued.min(left);
        }
        let wait_if_queued = if depth == 1 { 0.0 } else { wait_if_queued };
        Ticket { rows, requests, depth, sent: now, predicted, wait_if_queued }
    }

    /// The batch of `ticket` was answered in one call after `latency`.
    pub fn answered(&mut self, ticket: &Ticket, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let answered_at = ticket.sent + latency;
        self.returns.answered(answered_at, ticket.requests);
        self.parallel.fade();
        if ticket.depth <= self.parallel.executors() {
            self.cost.observe(ticket.rows, seconds);
        } else if let Some(previous) = self.answers.front().copied().filter(|&previous| previous > ticket.sent) {
            // It waited behind a batch in flight (as it does under sustained load, when every
            // batch goes beside another): its own time is what came after that one's answer.
            // Measured, not predicted: a prediction would feed its own errors back.
            self.cost.observe(ticket.rows, answered_at.saturating_duration_since(previous).as_secs_f64());
        }
        let at = self.answers.iter().position(|&other| other <= answered_at).unwrap_or(self.answers.len());
        self.answers.insert(at, answered_at);
        self.answers.truncate(self.parallel.depths());
        // Whether it waited can be told only when waiting would have made a clear difference.
        if ticket.depth > 1 && ticket.predicted > 0.0 && ticket.wait_if_queued > 0.25 * ticket.predicted {
            self.parallel.observe(ticket.depth, seconds > ticket.predicted + 0.5 * ticket.wait_if_queued);
        }
    }

    /// Whether a batch sent now beside `inflight` would teach whether the backend runs one more
    /// side by side: the depth is not known, and the batches in flight have long enough to run
    /// for a wait behind them to show.
    pub fn probe_teaches<'a>(&self, now: Instant, inflight: impl Iterator<Item = &'a Ticket>) -> bool {
        let Some(launch) = self.cost.predict(1) else {
            return false;
        };
        let (mut depth, mut soonest) = (1, f64::INFINITY);
        for ticket in inflight {
            depth += 1;
            soonest = soonest.min(ticket.predicted - now.saturating_duration_since(ticket.sent).as_secs_f64());
        }
        self.parallel.worth_probing(depth) && soonest > 0.5 * launch
    }

    /// When a partial batch should be looked at again rather than sent now, the backend being
    /// free to run it; `None`: send it now.
    ///
    /// Waiting pays when more requests are likely to come soon: each that joins saves the launch
    /// cost it would pay in a batch of its own, while every row waiting pays the wait. Requests
    /// are expected from clients on their way back (answered one round trip ago) or, failing
    /// that, from the rhythm of arrivals (the wait maximises P(a request within it) x saving -
    /// wait x rows). The wait never goes past `cap` nor one launch cost (no longer wait can pay)
    /// from when the batch could first have gone. Nothing is waited for when every request the
    /// traffic keeps outstanding is already here.
    pub fn wait_for_more(&self, now: Instant, group: &Pending, cap: Option<Duration>) -> Option<Instant> {
        let Pending { rows, max_rows, since, outstanding } = *group;
        if self.concurrency.all_here(outstanding) || rows >= max_rows {
            return None;
        }
        let (fixed, _) = self.cost.fit()?;
        let one_launch = Duration::from_secs_f64(fixed);
        let latest = since + cap.map_or(one_launch, |cap| cap.min(one_launch));
        if now >= latest {
            return None;
        }
        let room = (max_rows - rows) as f64;
        let benefit = |wait: f64, p: f64, coming: f64| p * coming * fixed - wait * (rows as f64 + p * coming);
        let missing = self.concurrency.peak().saturating_sub(outstanding);
        if let Some((coming, by)) = self.returns.expected(now, missing) {
            let wait = by.saturating_duration_since(now).as_secs_f64();
            if by > now && benefit(wait, 0.9, (coming as f64).min(room)) > 0.0 {
                return Some(by.min(latest));
            }
        }
        let since_last = now.saturating_duration_since(self.last_arrival?);
        let coming = self.arrivals.rows_per_request().min(room);
        let wait = self.arrivals.best_wait(since_last, |wait, p| benefit(wait, p, coming))?;
        Some((now + wait).min(latest))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A batch of `rows` ran alone and took `latency`.
    pub(crate) fn ran_alone(learner: &mut Learner, rows: usize, latency: Duration) {
        let ticket = learner.sending(rows, 1, Instant::now(), std::iter::empty(), 1);
        learner.answered(&ticket, latency);
    }

    #[test]
    fn waiting_pays_inside_a_wave_and_not_after_it_nor_for_a_lone_client() {
        let start = Instant::now();
        let at = |us: u64| start + Duration::from_micros(us);
        let mut learner = Learner::new(2);
        for rows in [1, 8, 4, 8] {
            ran_alone(&mut learner, rows, Duration::from_micros(20_000 + 200 * rows as u64));
        }
        // Waves of 8 requests 50 us apart, every 21 ms.
        let mut t = 0;
        for _ in 0..20 {
            for outstanding in 1..=8 {
                learner.arrived(at(t), 1, outstanding);
                t += 50;
            }
            t += 21_000;
        }
        let pending = |rows| Pending { rows, max_rows: 64, since: at(t), outstanding: rows };
        // The first of a wave: the rest is coming, wait for it.
        learner.arrived(at(t), 1, 1);
        let wait = learner.wait_for_more(at(t), &pending(1), None).expect("waits");
        assert!(wait <= at(t + 1_000), "{:?}", wait - at(t));
        // All 8 here: go.
        assert_eq!(learner.wait_for_more(at(t), &pending(8), None), None);
        // 5 of them, then nothing for 300 us (gaps in a wave are 50 us): the rest is late, go.
        assert_eq!(learner.wait_for_more(at(t + 500), &pending(5), None), None);

        // One client, one request per batch: nothing else is coming, never wait.
        let mut lone = Learner::new(2);
        for i in 0..20 {
            lone.arrived(at(i * 20_500), 1, 1);
            ran_alone(&mut lone, 1, Duration::from_micros(20_200));
        }
        let now = at(20 * 20_500);
        let alone = Pending { rows: 1, max_rows: 64, since: now, outstanding: 1 };
        assert_eq!(lone.wait_for_more(now, &alone, None), None);
        // Even with the count of clients unknown, the gaps say nothing is near.
        lone.concurrency.observe(2);
        assert_eq!(lone.wait_for_more(now, &alone, None), None);
    }
}
