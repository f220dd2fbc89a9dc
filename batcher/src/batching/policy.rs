//! The batching policy of one model, as a pure state machine: no clock (the caller passes
//! `now`), no I/O, no tokio. The async shell (`model_task`) feeds it arrivals, cancellations and
//! finished batches, and asks it what to do next.
//!
//! - Requests are grouped by a key `G` (version, signature, per-row shapes and dtypes): only
//!   requests of one group can share a batch. Within a group each subject (the caller nginx
//!   authenticated) has its own FIFO queue, and batches are filled round-robin across subjects
//!   (deficit round-robin by rows) so a heavy caller cannot starve the others.
//! - Adaptive dispatch: while fewer than `max_inflight` batches are out, a group goes at once
//!   (no timer on an idle system) unless `max_delay` asks to wait for a fuller batch, counted
//!   from the arrival of its oldest request; a full group always goes. While all slots are busy,
//!   arrivals gather into the next batch. Across groups, the oldest waiting request goes first.
//! - When the backend is learnt to queue batches (see `pace`), a partial batch is held while
//!   another is in flight (at most one batch time), so that it grows instead of waiting in the
//!   backend with few rows.
//! - A request larger than `max_batch_size` is split across batches; a request that would fit a
//!   batch on its own is never split (that would only add latency).
//! - `allowed_batch_sizes` pads a batch up to the next allowed size.
//! - Expired requests leave the queue before any batch is built, so they are never sent.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

pub use super::batch::{padded_size, Arrival, Batch, Limits, Next, Part, Reason, RequestId};
use super::fill::fill_batch;
use super::pace::Pace;

#[derive(Debug, Clone)]
pub(super) struct Queued {
    pub id: RequestId,
    pub rows: usize,
    pub sent: usize,
    pub arrived: Instant,
    pub deadline: Instant,
}

#[derive(Debug)]
pub(super) struct SubjectQueue {
    pub subject: String,
    pub queue: VecDeque<Queued>,
}

#[derive(Debug)]
pub(super) struct Group {
    pub mergeable: bool,
    /// Round-robin order: the front subject is served first in the next batch.
    pub subjects: VecDeque<SubjectQueue>,
    /// Rows not yet sent.
    pub rows: usize,
}

impl Group {
    fn oldest_arrival(&self) -> Option<Instant> {
        self.subjects.iter().filter_map(|s| s.queue.front().map(|q| q.arrived)).min()
    }
}

pub struct ModelQueue<G> {
    limits: Limits,
    groups: BTreeMap<G, Group>,
    /// Where each queued request is, for cancellation.
    index: HashMap<RequestId, (G, String)>,
    inflight: usize,
    pace: Pace,
    /// No queued request has a deadline before this (it may be earlier than the true minimum
    /// after removals, which only costs a scan that finds nothing).
    deadline_hint: Option<Instant>,
}

impl<G: Ord + Clone> ModelQueue<G> {
    pub fn new(limits: Limits) -> Self {
        ModelQueue {
            limits,
            groups: BTreeMap::new(),
            index: HashMap::new(),
            inflight: 0,
            pace: Pace::default(),
            deadline_hint: None,
        }
    }

    /// New limits (a reload): the queue is kept; batches from now on are built with them.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn queued_requests(&self) -> usize {
        self.index.len()
    }

    pub fn queued_rows(&self) -> usize {
        self.groups.values().map(|g| g.rows).sum()
    }

    pub fn inflight(&self) -> usize {
        self.inflight
    }

    pub fn push(&mut self, arrival: Arrival<G>) {
        let rows = arrival.rows.max(1);
        let group = self.groups.entry(arrival.group.clone()).or_insert_with(|| Group {
            mergeable: arrival.mergeable,
            subjects: VecDeque::new(),
            rows: 0,
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

    /// A batch finished (successfully or not) after `latency`: its backend slot is free again.
    pub fn batch_done(&mut self, latency: Option<Duration>, stacked: bool) {
        self.inflight = self.inflight.saturating_sub(1);
        if let Some(latency) = latency {
            self.pace.record(latency, stacked);
        }
    }

    /// What to do now. Call [`ModelQueue::expire`] first with the same `now`. A `Dispatch`
    /// takes a backend slot; call again until it says to wait.
    pub fn next(&mut self, now: Instant) -> Next<G> {
        if self.index.is_empty() {
            self.deadline_hint = None;
        }
        let deadline_wake = self.deadline_hint;
        if self.inflight >= self.limits.max_inflight {
            return deadline_wake.map_or(Next::Idle, Next::WaitUntil);
        }
        let mut best: Option<(&G, Instant, Reason)> = None;
        let mut delay_wake: Option<Instant> = None;
        // Hold partial batches while a queueing backend is busy, for at most one batch time.
        let hold = match self.pace.batch_time() {
            Some(batch_time) if self.inflight > 0 && self.pace.backend_queues() => {
                Some(batch_time.max(self.limits.max_delay))
            }
            _ => None,
        };
        for (key, group) in &self.groups {
            let Some(oldest) = group.oldest_arrival() else {
                continue;
            };
            let wait = hold.unwrap_or(self.limits.max_delay);
            let ready_at = oldest + wait;
            let reason = if !group.mergeable {
                Reason::Alone
            } else if group.rows >= self.limits.max_batch_size {
                Reason::Full
            } else if wait.is_zero() {
                Reason::SlotFree
            } else if now >= ready_at && hold.is_some() {
                Reason::HoldElapsed
            } else if now >= ready_at {
                Reason::DelayElapsed
            } else {
                delay_wake = Some(delay_wake.map_or(ready_at, |w| w.min(ready_at)));
                continue;
            };
            if best.is_none_or(|(_, best_oldest, _)| oldest < best_oldest) {
                best = Some((key, oldest, reason));
            }
        }
        let Some((key, oldest, reason)) = best else {
            let wake = [delay_wake, deadline_wake].into_iter().flatten().min();
            return wake.map_or(Next::Idle, Next::WaitUntil);
        };
        let key = key.clone();
        let Some(group) = self.groups.get_mut(&key) else {
            return Next::Idle;
        };
        let parts = fill_batch(group, self.limits.max_batch_size);
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
        let stacked = self.inflight > 0;
        self.inflight += 1;
        Next::Dispatch(Batch { group: key, parts, rows, padded_rows, reason, oldest_arrival: oldest, stacked })
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
