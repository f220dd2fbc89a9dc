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
//! - Expired requests leave the queue before any batch is built, so they are never sent.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

pub use super::batch::{padded_size, Arrival, Batch, BatchId, Dispatch, Limits, Next, Part, Reason, RequestId};
use super::decide::{decide, Verdict, View};
use super::group::{Group, Queued, SubjectQueue};
use super::learn::{Learner, Ticket};

pub struct ModelQueue<G> {
    limits: Limits,
    groups: BTreeMap<G, Group>,
    /// Where each queued request is, for cancellation.
    index: HashMap<RequestId, (G, String)>,
    /// Batches sent and not answered.
    inflight: HashMap<BatchId, Ticket>,
    next_batch: BatchId,
    learner: Learner,
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
            next_batch: 1,
            learner: Learner::new(limits.max_inflight),
            deadline_hint: None,
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

    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Requests queued or in flight (a request split across batches may count twice).
    fn outstanding(&self) -> usize {
        self.index.len() + self.inflight.values().map(|t| t.requests).sum::<usize>()
    }

    pub fn push(&mut self, arrival: Arrival<G>) {
        let rows = arrival.rows.max(1);
        let outstanding = self.outstanding() + 1;
        self.learner.arrived(arrival.arrived, rows, outstanding);
        let group = self.groups.entry(arrival.group.clone()).or_insert_with(|| Group {
            mergeable: arrival.mergeable,
            subjects: VecDeque::new(),
            rows: 0,
            waiting_since: None,
        });
        group.rows += rows;
        let queued = Queued { id: arrival.id, rows, sent: 0, arrived: arrival.arrived, deadline: arrival.deadline };
        match group.subjects.iter_mut().find(|s| s.subject == arrival.subject) {
            Some(subject) => subject.queue.push_back(queued),
            None => group
                .subjects
                .push_back(SubjectQueue { subject: arrival.subject.clone(), queue: VecDeque::from([queued]) }),
        }
        self.index.insert(arrival.id, (arrival.group, arrival.subject));
        self.deadline_hint = Some(match self.deadline_hint {
            Some(hint) => hint.min(arrival.deadline),
            None => arrival.deadline,
        });
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

    /// What to do now. Call [`ModelQueue::expire`] first with the same `now`. A `Dispatch`
    /// takes a backend slot; call again until it says to wait.
    pub fn next(&mut self, now: Instant) -> Next<G> {
        if self.index.is_empty() {
            self.deadline_hint = None;
        }
        let mut chosen: Option<(G, Instant, Reason)> = None;
        let mut wake = self.deadline_hint;
        let outstanding = self.outstanding();
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
            match decide(&self.limits, &self.learner, &view, self.inflight.len(), now) {
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
        self.inflight.insert(id, ticket);
        Next::Dispatch(Batch { id, group: key, parts, rows, padded_rows, reason, oldest_arrival: oldest })
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

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
