//! A group's queues (requests that may share a batch: one version, signature and row layout),
//! one FIFO per subject, and how one batch is filled from them: deficit round-robin by rows.
//!
//! Each pass gives every subject, in round-robin order, a quantum of `capacity / subjects` rows
//! (at least 1). Within its quantum a subject takes whole requests from the head of its queue;
//! a request larger than a whole batch is split, one quantum at a time. Passes repeat while
//! anything fits, so a lone subject still fills the batch. The subject served first moves to
//! the back, so the next batch starts with the next subject.

use std::collections::VecDeque;
use std::time::Instant;

use super::batch::{Part, RequestId};

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
    /// Since when the policy has been waiting for more rows while it could have sent (the wait
    /// is bounded from then; the batch's reason says it waited).
    pub waiting_since: Option<Instant>,
}

impl Group {
    /// One batch of at most `capacity` rows from the group's queues (see the module doc).
    pub fn fill(&mut self, capacity: usize) -> Vec<Part> {
        fill_batch(self, capacity)
    }

    pub fn oldest_arrival(&self) -> Option<Instant> {
        self.subjects.iter().filter_map(|s| s.queue.front().map(|q| q.arrived)).min()
    }
}

fn fill_batch(group: &mut Group, capacity: usize) -> Vec<Part> {
    if !group.mergeable {
        return take_alone(group);
    }
    let capacity = capacity.max(1);
    let first_subject = group.subjects.front().map(|s| s.subject.clone());
    let quantum = capacity.div_ceil(group.subjects.len().max(1)).max(1);
    let mut parts: Vec<Part> = Vec::new();
    let mut remaining = capacity;
    loop {
        let mut progress = false;
        for subject in group.subjects.iter_mut() {
            let mut allowance = quantum;
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
                group.rows -= take;
                remaining -= take;
                allowance = allowance.saturating_sub(take);
                progress = true;
            }
        }
        if !progress || remaining == 0 {
            break;
        }
    }
    group.subjects.retain(|s| !s.queue.is_empty());
    if group.subjects.front().map(|s| &s.subject) == first_subject.as_ref() {
        group.subjects.rotate_left(1);
    }
    parts
}

/// A request that cannot share a batch goes whole and alone.
fn take_alone(group: &mut Group) -> Vec<Part> {
    let Some(subject) = group.subjects.front_mut() else {
        return Vec::new();
    };
    let Some(head) = subject.queue.pop_front() else {
        return Vec::new();
    };
    group.rows -= head.rows - head.sent;
    group.subjects.retain(|s| !s.queue.is_empty());
    vec![Part { id: head.id, rows: head.sent..head.rows, last: true }]
}
