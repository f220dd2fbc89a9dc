//! The batching policy of one model, as a pure state machine: no clock (the caller passes
//! `now`), no I/O, no tokio. The async shell (`model_task`) feeds it arrivals, cancellations and
//! finished batches, and asks it what to do next.
//!
//! - Requests are grouped by a key `G` (version, signature, per-row shapes and dtypes): only
//!   requests of one group can share a batch. Within a group each subject (the caller nginx
//!   authenticated) has its own FIFO queue, and batches are filled round-robin across subjects
//!   (deficit round-robin by rows) so a heavy caller cannot starve the others.
//! - When a batch goes is [`decide`](super::decide)'s business, from what the queue learns
//!   ([`Learner`]): the backend's cost per call and per row, how many batches it runs side by
//!   side, and the rhythm of arrivals.
//! - A request larger than `max_batch_size` is split across batches; a request that would fit a
//!   batch on its own is never split (that would only add latency).
//! - `allowed_batch_sizes` pads a batch up to the next allowed size.
//! - Overload: a request that cannot be answered before its deadline, by the queue ahead of it
//!   (in fairness and priority order) and the backend's learnt cost and parallelism, is refused
//!   as it arrives ([`Admission::Refused`]); rows that could not finish before their deadline
//!   even if sent now leave the queue unsent ([`Next::Late`]), as do expired ones; and a batch
//!   whose call was abandoned (its deadline passed) still counts as running on the backend until
//!   its predicted end, since the backend keeps computing it.
//! - Callers have classes (priority and weight, from their plan); see `group`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

pub use super::batch::{
    padded_size, Admission, Arrival, Batch, BatchId, Class, Dispatch, Limits, Next, Part, Reason, RequestId,
};
use super::decide::{decide, Verdict, View};
use super::group::{Group, Queued, SubjectQueue, LOWER_SHARE};
use super::learn::{DecayingRate, Learner, Ticket};

pub struct ModelQueue<G> {
    limits: Limits,
    groups: BTreeMap<G, Group>,
    /// Where each queued request is, for cancellation.
    index: HashMap<RequestId, (G, String)>,
    /// Batches sent and not answered.
    inflight: HashMap<BatchId, Ticket>,
    /// Batches whose calls were abandoned (their deadline passed): the backend is still
    /// computing them, until these predicted ends.
    abandoned: Vec<Instant>,
    next_batch: BatchId,
    learner: Learner,
    /// Rows admitted lately, per priority: the rows of higher classes that will arrive while a
    /// request waits and go before it.
    admitted: BTreeMap<i32, DecayingRate>,
    /// No queued request has a deadline before this (it may be earlier than the true minimum
    /// after removals, which only costs a scan that finds nothing).
    deadline_hint: Option<Instant>,
}

impl<G: Ord + Clone> ModelQueue<G> {
    pub fn new(limits: Limits) -> Self {
        ModelQueue {
            groups: BTreeMap::new(),
            index: HashMap::new(),
            inflight: HashMap::new(),
            abandoned: Vec::new(),
            next_batch: 1,
            learner: Learner::new(limits.max_inflight),
            deadline_hint: None,
            admitted: BTreeMap::new(),
            limits,
        }
    }

    /// New limits (a reload): the queue is kept; batches from now on are built with them.
    pub fn set_limits(&mut self, limits: Limits) {
        self.learner.parallel.resize(limits.max_inflight);
        self.limits = limits;
    }

    /// What the queue has learnt (for tests and diagnostics).
    pub fn learner(&self) -> &Learner {
        &self.learner
    }

    pub fn queued_requests(&self) -> usize {
        self.index.len()
    }

    pub fn queued_rows(&self) -> usize {
        self.groups.values().map(|g| g.rows).sum()
    }

    /// Batches the backend is running: in flight, and abandoned but not yet done.
    pub fn inflight(&self) -> usize {
        self.inflight.len() + self.abandoned.len()
    }

    /// Requests queued or in flight (a request split across batches may count twice).
    fn outstanding(&self) -> usize {
        self.index.len() + self.inflight.values().map(|t| t.requests).sum::<usize>()
    }

    /// A request arrives at `now`: queued, or refused when it cannot be answered before its
    /// deadline (see [`ModelQueue::predicted_finish`]).
    pub fn push(&mut self, arrival: Arrival<G>, now: Instant) -> Admission {
        let rows = arrival.rows.max(1);
        if let Some(finish) = self.predicted_finish(&arrival.group, &arrival.subject, arrival.class, rows, now) {
            if finish + answer_margin(arrival.deadline.saturating_duration_since(arrival.arrived)) > arrival.deadline {
                let late = finish.saturating_duration_since(arrival.deadline);
                let allowed = arrival.deadline.saturating_duration_since(now);
                return Admission::Refused { retry_after: late.max(allowed) };
            }
        }
        let outstanding = self.outstanding() + 1;
        self.learner.arrived(arrival.arrived, rows, outstanding);
        self.admitted.entry(arrival.class.priority).or_default().add(rows, now);
        let group = self.groups.entry(arrival.group.clone()).or_insert_with(|| Group {
            mergeable: arrival.mergeable,
            subjects: VecDeque::new(),
            rows: 0,
            waiting_since: None,
        });
        group.rows += rows;
        let queued = Queued { id: arrival.id, rows, sent: 0, arrived: arrival.arrived, deadline: arrival.deadline };
        match group.subjects.iter_mut().find(|s| s.subject == arrival.subject) {
            Some(subject) => {
                subject.class = arrival.class;
                subject.queue.push_back(queued);
            }
            None => group.subjects.push_back(SubjectQueue {
                subject: arrival.subject.clone(),
                class: arrival.class,
                queue: VecDeque::from([queued]),
            }),
        }
        self.index.insert(arrival.id, (arrival.group, arrival.subject));
        self.deadline_hint = Some(match self.deadline_hint {
            Some(hint) => hint.min(arrival.deadline),
            None => arrival.deadline,
        });
        Admission::Queued
    }

    /// When a request of `rows` from `subject` (of `class`) arriving now would be answered, by
    /// what was learnt: the backend's work in flight, then the rows served before it (every
    /// higher class's, those queued and those arriving while it waits; the lower classes'
    /// share; of its own class what weighted round-robin serves others while it waits its
    /// turn), in full batches on the backend's executors. `None` while the cost is not known
    /// well enough to refuse anything on it.
    pub fn predicted_finish(&self, key: &G, subject: &str, class: Class, rows: usize, now: Instant) -> Option<Instant> {
        if !self.learner.cost.confident() {
            return None;
        }
        // The wait decides how many rows of higher classes arrive meanwhile, which lengthens
        // the wait: twice round is close enough (the second adds what the first one's wait
        // brings).
        let first = self.finish_after(self.rows_ahead(key, subject, class, rows, 0.0, now), now)?;
        if !self.admitted.range(class.priority + 1..).any(|(_, rate)| rate.per_second(now) >= 1.0) {
            return Some(first);
        }
        let waited = first.saturating_duration_since(now).as_secs_f64();
        self.finish_after(self.rows_ahead(key, subject, class, rows, waited, now), now)
    }

    /// When `ahead` rows, the last of them a new request's, would be answered.
    fn finish_after(&self, ahead: usize, now: Instant) -> Option<Instant> {
        let (fixed, per_row) = self.learner.cost.fit()?;
        let batch = self.limits.max_batch_size.max(1);
        let batches = ahead.div_ceil(batch).max(1);
        // Batches ahead are full ones (a single one: the rows there are now).
        let seconds = if batches == 1 { fixed + per_row * ahead as f64 } else { fixed + per_row * batch as f64 };
        let mut free = self.executors_free(now);
        let batch_time = Duration::from_secs_f64(seconds);
        // Whole rounds on every executor at once, then the last batches one by one: a request
        // of many rows costs as few steps as one of a few.
        let executors = free.len().max(1);
        let whole_rounds = batches.saturating_sub(1) / executors;
        let Ok(rounds) = u32::try_from(whole_rounds) else {
            return Some(now + NEVER);
        };
        if let Some(latest) = free.iter().max().copied() {
            let round_time = batch_time.saturating_mul(rounds);
            free.iter_mut().for_each(|at| *at = latest.max(*at) + round_time);
        }
        let mut finish = now;
        for _ in 0..batches - whole_rounds * executors {
            let Some(earliest) = free.iter_mut().min() else { break };
            *earliest += batch_time;
            finish = *earliest;
        }
        Some(finish)
    }

    /// Rows served before (and with) a new request of `rows` from `subject` that would wait
    /// `waiting` seconds: see [`ModelQueue::predicted_finish`]. Every group of the model shares
    /// the backend, so their rows count alike.
    fn rows_ahead(&self, key: &G, subject: &str, class: Class, rows: usize, waiting: f64, now: Instant) -> usize {
        let batch = self.limits.max_batch_size.max(1);
        let same_class =
            || self.groups.values().flat_map(|g| g.subjects.iter()).filter(|s| s.class.priority == class.priority);
        let total_weight: u64 =
            same_class().filter(|s| s.subject != subject).map(|s| u64::from(s.class.weight)).sum::<u64>()
                + u64::from(class.weight);
        let own_queued = self
            .groups
            .get(key)
            .and_then(|g| g.subjects.iter().find(|s| s.subject == subject))
            .map_or(0, SubjectQueue::rows);
        // Batches until the request's last row is served, taking its weighted share of each.
        let own_share = (batch as u64 * u64::from(class.weight)).div_ceil(total_weight).max(1) as usize;
        let turns = (own_queued + rows).div_ceil(own_share).max(1);
        let mut ahead = own_queued + rows;
        for other in self.groups.values().flat_map(|g| g.subjects.iter()) {
            if other.subject == subject && other.class.priority == class.priority {
                continue;
            }
            let queued = other.rows();
            ahead += match other.class.priority.cmp(&class.priority) {
                std::cmp::Ordering::Greater => queued,
                std::cmp::Ordering::Equal => {
                    let share = (batch as u64 * u64::from(other.class.weight)).div_ceil(total_weight).max(1) as usize;
                    // A caller with a turn's worth queued keeps sending: it takes its share of
                    // every turn, not only of those its queue covers now.
                    if queued >= share {
                        turns * share
                    } else {
                        queued
                    }
                }
                std::cmp::Ordering::Less => queued.min(turns * (batch / LOWER_SHARE).max(1)),
            };
        }
        let arriving: f64 =
            self.admitted.range(class.priority + 1..).map(|(_, rate)| rate.per_second(now) * waiting).sum();
        ahead.saturating_add(arriving as usize)
    }

    /// Executors the backend is known to have, within the batches the model may send at once.
    fn executors(&self) -> usize {
        self.learner.parallel.executors().min(self.limits.max_inflight).max(1)
    }

    /// When each of the backend's executors is done with the work already sent to it (running,
    /// queued at the backend, or abandoned but still computed). The backend runs batches first
    /// come, first served; each executor was last seen free when the backend last answered, so
    /// the batches in flight are laid out from there, in the order they were sent. Anchoring on
    /// answers, not on earlier predictions, keeps an error from carrying over.
    fn executors_free(&self, now: Instant) -> Vec<Instant> {
        let mut free = self.backend_schedule(|_, _| ());
        free.iter_mut().for_each(|at| *at = (*at).max(now));
        free
    }

    /// Lays out the batches the backend has (abandoned ones first: they were sent before those
    /// still in flight), telling `visit` each in-flight batch's predicted end; returns when each
    /// executor is free.
    fn backend_schedule(&self, mut visit: impl FnMut(BatchId, Instant)) -> Vec<Instant> {
        let executors = self.executors();
        let mut free: Vec<Option<Instant>> = self.learner.recent_answers().take(executors).map(Some).collect();
        free.resize(executors, None);
        let earliest =
            |free: &mut Vec<Option<Instant>>| -> usize { (0..free.len()).min_by_key(|&i| free[i]).unwrap_or(0) };
        for &end in &self.abandoned {
            let slot = earliest(&mut free);
            free[slot] = Some(free[slot].map_or(end, |at| at.max(end)));
        }
        let mut inflight: Vec<(&BatchId, &Ticket)> = self.inflight.iter().collect();
        inflight.sort_unstable_by_key(|(id, _)| **id);
        for (&id, ticket) in inflight {
            let slot = earliest(&mut free);
            let starts = free[slot].map_or(ticket.sent, |at| at.max(ticket.sent));
            let end = starts + ticket.predicted_cost().unwrap_or_default();
            free[slot] = Some(end);
            visit(id, end);
        }
        let since_ever = self.inflight.values().map(|t| t.sent).min();
        free.into_iter().map(|at| at.or(since_ever).unwrap_or_else(Instant::now)).collect()
    }

    /// When the backend could start a batch sent now.
    fn backend_free_at(&self, now: Instant) -> Instant {
        self.executors_free(now).into_iter().min().unwrap_or(now)
    }

    /// Removes a request whose client went away; false when it had already left the queue
    /// (all its rows sent). Rows of it already in flight are answered and discarded.
    pub fn cancel(&mut self, id: RequestId) -> bool {
        let Some((key, subject)) = self.index.remove(&id) else {
            return false;
        };
        self.remove_where(&key, &subject, |q| q.id == id);
        true
    }

    /// Removes and returns the requests whose deadline has passed, each with how many of its
    /// rows had been sent already (a split request may expire half way).
    pub fn expire(&mut self, now: Instant) -> Vec<(RequestId, usize)> {
        if self.deadline_hint.is_none_or(|hint| hint > now) {
            return Vec::new();
        }
        let mut expired = Vec::new();
        let mut next_hint: Option<Instant> = None;
        for group in self.groups.values_mut() {
            for subject in &mut group.subjects {
                subject.queue.retain(|q| {
                    if q.deadline <= now {
                        expired.push((q.id, q.sent));
                        group.rows -= q.rows - q.sent;
                        false
                    } else {
                        next_hint = Some(next_hint.map_or(q.deadline, |h| h.min(q.deadline)));
                        true
                    }
                });
            }
            group.subjects.retain(|s| !s.queue.is_empty());
        }
        self.groups.retain(|_, g| !g.subjects.is_empty());
        for (id, _) in &expired {
            self.index.remove(id);
        }
        self.deadline_hint = next_hint;
        expired
    }

    /// Batch `id` finished: its backend slot is free again. `latency` when it was answered in
    /// one call (what the learning uses); `None` when it failed, was skipped or was split.
    pub fn batch_done(&mut self, id: BatchId, latency: Option<Duration>) {
        let Some(ticket) = self.inflight.remove(&id) else {
            return;
        };
        if let Some(latency) = latency {
            self.learner.answered(&ticket, latency);
        }
    }

    /// Batch `id`'s call was given up at `now` (its deadline passed): TF Serving goes on
    /// computing it, so it holds its slot until its predicted end.
    pub fn batch_abandoned(&mut self, id: BatchId, now: Instant) {
        let mut end = None;
        self.backend_schedule(|batch, at| {
            if batch == id {
                end = Some(at);
            }
        });
        if self.inflight.remove(&id).is_none() {
            return;
        }
        if let Some(end) = end.filter(|&end| end > now) {
            self.abandoned.push(end);
        }
    }

    /// What to do now. Call [`ModelQueue::expire`] first with the same `now`. A `Dispatch`
    /// takes a backend slot; call again until it says to wait.
    pub fn next(&mut self, now: Instant) -> Next<G> {
        if self.index.is_empty() {
            self.deadline_hint = None;
        }
        self.abandoned.retain(|end| *end > now);
        let mut chosen: Option<(G, Instant, Reason)> = None;
        let mut wake = self.deadline_hint;
        if let Some(end) = self.abandoned.iter().min() {
            wake = Some(wake.map_or(*end, |w| w.min(*end)));
        }
        let outstanding = self.outstanding();
        let inflight = self.inflight();
        let probe = self.learner.probe_teaches(now, self.inflight.values());
        for (key, group) in self.groups.iter_mut() {
            let Some(oldest) = group.oldest_arrival() else {
                continue;
            };
            let view = View {
                mergeable: group.mergeable,
                rows: group.rows,
                oldest,
                waiting_since: group.waiting_since,
                outstanding,
                probe,
            };
            match decide(&self.limits, &self.learner, &view, inflight, now) {
                Verdict::Send(reason) => {
                    if chosen.as_ref().is_none_or(|(_, best, _)| oldest < *best) {
                        chosen = Some((key.clone(), oldest, reason));
                    }
                }
                Verdict::WaitUntil(at) => {
                    group.waiting_since.get_or_insert(now);
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                }
                Verdict::Hold => {}
            }
        }
        let Some((key, oldest, reason)) = chosen else {
            return wake.map_or(Next::Idle, Next::WaitUntil);
        };
        let late = self.late(&key, now);
        if !late.is_empty() {
            return Next::Late(late);
        }
        let Some(group) = self.groups.get_mut(&key) else {
            return Next::Idle;
        };
        let parts = group.fill(self.limits.max_batch_size);
        group.waiting_since = None;
        let rows: usize = parts.iter().map(|p| p.rows.len()).sum();
        for part in parts.iter().filter(|p| p.last) {
            self.index.remove(&part.id);
        }
        if group.subjects.is_empty() {
            self.groups.remove(&key);
        }
        let padded_rows =
            if reason == Reason::Alone { rows } else { padded_size(rows, &self.limits.allowed_batch_sizes) };
        let reason = if reason != Reason::Alone && rows >= self.limits.max_batch_size { Reason::Full } else { reason };
        let id = self.next_batch;
        self.next_batch += 1;
        let outstanding = self.outstanding();
        let ticket = self.learner.sending(padded_rows, parts.len(), now, self.inflight.values(), outstanding);
        let cost = ticket.predicted_cost();
        self.inflight.insert(id, ticket);
        Next::Dispatch(Batch { id, group: key, parts, rows, padded_rows, reason, oldest_arrival: oldest, cost })
    }

    /// The requests of group `key` that could not finish before their deadline even if their
    /// batch went now (by the learnt cost of the batch it would be), taken out of the queue.
    fn late(&mut self, key: &G, now: Instant) -> Vec<(RequestId, usize)> {
        if !self.learner.cost.confident() {
            return Vec::new();
        }
        let Some(rows) = self.groups.get(key).map(|g| g.rows.min(self.limits.max_batch_size)) else {
            return Vec::new();
        };
        let Some(seconds) = self.learner.cost.predict(rows) else {
            return Vec::new();
        };
        // It may wait at the backend behind batches sent before it.
        let done = self.backend_free_at(now) + Duration::from_secs_f64(seconds);
        let Some(group) = self.groups.get_mut(key) else {
            return Vec::new();
        };
        let mut late = Vec::new();
        for subject in &mut group.subjects {
            subject.queue.retain(|q| {
                if q.deadline < done {
                    late.push((q.id, q.sent));
                    group.rows -= q.rows - q.sent;
                    false
                } else {
                    true
                }
            });
        }
        group.subjects.retain(|s| !s.queue.is_empty());
        if group.subjects.is_empty() {
            self.groups.remove(key);
        }
        for (id, _) in &late {
            self.index.remove(id);
        }
        late
    }

    fn remove_where(&mut self, key: &G, subject: &str, matches: impl Fn(&Queued) -> bool) {
        let Some(group) = self.groups.get_mut(key) else {
            return;
        };
        if let Some(queue) = group.subjects.iter_mut().find(|s| s.subject == subject) {
            queue.queue.retain(|q| {
                let hit = matches(q);
                if hit {
                    group.rows -= q.rows - q.sent;
                }
                !hit
            });
        }
        group.subjects.retain(|s| !s.queue.is_empty());
        if group.subjects.is_empty() {
            self.groups.remove(key);
        }
    }
}

/// A prediction too far out to compute: later than any deadline (they are at most an hour).
const NEVER: Duration = Duration::from_secs(365 * 86_400);

/// How much sooner than its deadline a request must be predicted to be answered to be taken:
/// 5% of its time, at most 50 ms. The answer still has its way back through nginx to the
/// caller, and the caller's clock started before the request reached the daemon; without this
/// the queue fills to the very deadline and the last answers reach their callers just too late.
fn answer_margin(allowed: Duration) -> Duration {
    (allowed / 20).min(Duration::from_millis(50))
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
