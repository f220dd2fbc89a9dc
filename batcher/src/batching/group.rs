//! A group's queues (requests that may share a batch: one version, signature and row layout),
//! one FIFO per subject, and how one batch is filled from them.
//!
//! - Classes: a subject's plan gives it a priority; higher classes fill a batch first. While a
//!   lower class has rows waiting, it is kept [`LOWER_SHARE`] of every batch, so it is slowed
//!   down by a flood of higher classes, never starved outright.
//! - Within a class, deficit round-robin by rows, weighted: each pass gives every subject, in
//!   round-robin order, a quantum of rows in proportion to its plan's weight (at least 1).
//!   Within its quantum a subject takes whole requests from the head of its queue; a request
//!   larger than a whole batch is split, one quantum at a time. Passes repeat while anything
//!   fits, so a lone subject still fills the batch. The subject served first moves to the
//!   back, so the next batch starts with the next subject.

use std::collections::VecDeque;
use std::time::Instant;

use super::batch::{Class, Part, RequestId};

/// The share of each batch kept for lower classes while they have rows waiting (1/8, at least
/// one row): a higher class flooding the model slows them down but cannot stop them.
pub const LOWER_SHARE: usize = 8;

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
    /// The class of its latest request (a subject's plan does not change between requests but
    /// on a reload).
    pub class: Class,
    pub queue: VecDeque<Queued>,
}

impl SubjectQueue {
    pub fn rows(&self) -> usize {
        self.queue.iter().map(|q| q.rows - q.sent).sum()
    }
}

#[derive(Debug)]
pub(super) struct Group {
    pub mergeable: bool,
    /// Round-robin order: the front subject is served first in the next batch.
    pub subjects: VecDeque<SubjectQueue>,
    /// Rows not yet sent.
    pub rows: usize,
    /// Since when the policy has been waiting for more rows while it could have sent (the wait
    /// is bounded from then; the batch's reason says it waited).
    pub waiting_since: Option<Instant>,
}

impl Group {
    /// One batch of at most `capacity` rows from the group's queues (see the module doc).
    pub fn fill(&mut self, capacity: usize) -> Vec<Part> {
        if !self.mergeable {
            return self.take_alone();
        }
        let capacity = capacity.max(1);
        let first_subject = self.subjects.front().map(|s| s.subject.clone());
        let mut priorities: Vec<i32> = self.subjects.iter().map(|s| s.class.priority).collect();
        priorities.sort_unstable_by(|a, b| b.cmp(a));
        priorities.dedup();
        let mut parts: Vec<Part> = Vec::new();
        let mut remaining = capacity;
        // The highest class leaves the lower ones their share; then each class in turn; then
        // whatever is left goes to anyone, highest first.
        let reserve = if priorities.len() > 1 { (capacity / LOWER_SHARE).max(1) } else { 0 };
        for (i, &priority) in priorities.iter().enumerate() {
            let budget = if i == 0 { remaining.saturating_sub(reserve) } else { remaining };
            remaining -= self.take_class(priority, budget, capacity, &mut parts);
        }
        for &priority in &priorities {
            if remaining == 0 {
                break;
            }
            remaining -= self.take_class(priority, remaining, capacity, &mut parts);
        }
        self.subjects.retain(|s| !s.queue.is_empty());
        if self.subjects.front().map(|s| &s.subject) == first_subject.as_ref() {
            self.subjects.rotate_left(1);
        }
        parts
    }

    /// Up to `budget` rows from the subjects of class `priority`, weighted round-robin; rows
    /// taken. A request no larger than `capacity` (a whole batch) is never split.
    fn take_class(&mut self, priority: i32, budget: usize, capacity: usize, parts: &mut Vec<Part>) -> usize {
        let total_weight: u64 =
            self.subjects.iter().filter(|s| s.class.priority == priority).map(|s| u64::from(s.class.weight)).sum();
        if total_weight == 0 || budget == 0 {
            return 0;
        }
        let mut remaining = budget;
        loop {
            let mut progress = false;
            for subject in self.subjects.iter_mut().filter(|s| s.class.priority == priority) {
                let share = capacity as u64 * u64::from(subject.class.weight);
                let mut allowance = (share.div_ceil(total_weight) as usize).max(1);
                while remaining > 0 && allowance > 0 {
                    let Some(head) = subject.queue.front_mut() else {
                        break;
                    };
                    let left = head.rows - head.sent;
                    let take = if left <= remaining {
                        left
                    } else if left > capacity {
                        // Too large for any batch: split it.
                        remaining.min(allowance)
                    } else {
                        // Fits a batch of its own: wait for the next one rather than split.
                        break;
                    };
                    let start = head.sent;
                    head.sent += take;
                    let last = head.sent == head.rows;
                    let id = head.id;
                    if last {
                        subject.queue.pop_front();
                    }
                    match parts.iter_mut().find(|p| p.id == id) {
                        // Rows of a split request already in this batch: extend them.
                        Some(part) => {
                            part.rows.end += take;
                            part.last = last;
                        }
                        None => parts.push(Part { id, rows: start..start + take, last }),
                    }
                    self.rows -= take;
                    remaining -= take;
                    allowance = allowance.saturating_sub(take);
                    progress = true;
                }
            }
            if !progress || remaining == 0 {
                break;
            }
        }
        budget - remaining
    }

    /// A request that cannot share a batch goes whole and alone.
    fn take_alone(&mut self) -> Vec<Part> {
        let Some(subject) = self.subjects.front_mut() else {
            return Vec::new();
        };
        let Some(head) = subject.queue.pop_front() else {
            return Vec::new();
        };
        self.rows -= head.rows - head.sent;
        self.subjects.retain(|s| !s.queue.is_empty());
        vec![Part { id: head.id, rows: head.sent..head.rows, last: true }]
    }

    pub fn oldest_arrival(&self) -> Option<Instant> {
        self.subjects.iter().filter_map(|s| s.queue.front().map(|q| q.arrived)).min()
    }
}
